//! The rollout's decisions, as plain functions: how long to wait between
//! polls ([`Backoff`]), whose fault a failure is ([`classify`]), how many
//! failures a service tolerates, what a failure does to the service (what
//! it does to the rest of its stack is the schedule's), and what became of
//! each host ([`host_outcome`]). Pure: the executor (`rollout`, `gate`)
//! sleeps and calls the engine; this only says.

use std::time::Duration;

use serde::Serialize;

use crate::spec::{FailureAction, UpdateConfig};

/// Whose fault a failed step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The host answered and the new container failed (it did not start,
    /// turned unhealthy, failed a check) or the engine refused the step:
    /// a verdict on the release, so it counts towards the service's
    /// `max_failure_ratio` and `failure_action` applies.
    Release,
    /// The host stopped answering (connection gone, no answer in time): an
    /// infrastructure fault that says nothing about the release. The host
    /// is dropped from the run, its slots left as they are, and the other
    /// hosts go on, as Swarm and Kubernetes do when a node goes dark.
    Host,
}

/// Whose fault a failure is: the host's when the error is marked as a lost
/// connection (`lost`), or when the host did not answer a cheap probe sent
/// after it (`answers`; a check that timed out over a link that was cut is
/// not the release's fault); else the release's. The executor probes only
/// unmarked errors.
pub fn classify(lost: bool, answers: bool) -> Fault {
    if lost || !answers {
        Fault::Host
    } else {
        Fault::Release
    }
}

/// What became of a host in an apply, as the summary, the `help:` line and
/// the JSON report say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    /// Every change planned for it was made.
    #[default]
    Converged,
    /// A release failed: its replicas here were put back (the old
    /// containers serve) or the new ones never came up.
    RolledBack,
    /// It stopped answering and was dropped from the run: every slot is as
    /// it was left (old and serving, new and validated, or a leftover the
    /// next run finishes).
    Unreachable,
    /// Nothing was changed on it: preparing it failed (a pull, a secret),
    /// or its rollouts were cancelled by a failure elsewhere.
    Untouched,
    /// Some of its changes were made and others failed or were not made
    /// (`failure_action: pause` or `continue`, or a service cancelled
    /// after another one went through).
    Incomplete,
}

impl HostOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            HostOutcome::Converged => "converged",
            HostOutcome::RolledBack => "rolled back",
            HostOutcome::Unreachable => "unreachable",
            HostOutcome::Untouched => "untouched",
            HostOutcome::Incomplete => "incomplete",
        }
    }
}

/// What became of a host, from what happened to it: `lost` when it was
/// dropped from the run (or never prepared because it stopped answering),
/// `put_back` when a replica there was rolled back or its new container
/// failed, `changed` when a create, replace or remove went through there,
/// and `failed` when it ended with an error.
pub fn host_outcome(lost: bool, put_back: bool, changed: bool, failed: bool) -> HostOutcome {
    if lost {
        HostOutcome::Unreachable
    } else if put_back {
        HostOutcome::RolledBack
    } else if !failed {
        HostOutcome::Converged
    } else if changed {
        HostOutcome::Incomplete
    } else {
        HostOutcome::Untouched
    }
}

/// Exponential backoff between polls: `first`, then doubled each time up to
/// `max`. Every wait in a rollout is one of the constants below, so their
/// pace is read and tuned in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }

    /// The pause before the next attempt; the one after it is longer, up to `max`.
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }
}

/// Container status while waiting for a new container to be ready: one
/// cheap call over an open connection, so a tight cap keeps berth's own
/// share of each batch small (health is seen within 250 ms).
pub const READY_POLL: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(250));

/// Container status while waiting for a new container to be ready, on a
/// host whose engine reports events (see `Docker::container_events`): each
/// event about the container wakes the gate at once, so this slower poll is
/// only the bound on what a lost or silent stream can cost.
pub const READY_FALLBACK_POLL: Backoff =
    Backoff::new(Duration::from_millis(250), Duration::from_secs(1));

/// A failed `x-berth.validate` check, tried again until its timeout: the
/// service may need a moment after it reports healthy.
pub const CHECK_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));

/// Container status during the `monitor` period, at an even pace.
pub const MONITOR_POLL: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_millis(500));

/// Putting an old container back after the host stopped answering (an
/// engine restarting, a connection dropping): tried again at this pace...
pub const RESTORE_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));

/// ...for this long, so an engine back within seconds leaves no slot
/// empty, and a host gone for longer holds up its batch no more than this.
pub const RESTORE_WINDOW: Duration = Duration::from_secs(10);

/// How many members of a rollout go at once: `update_config.parallelism`,
/// where 0 means all of them.
pub fn batch_size(parallelism: u32, members: usize) -> usize {
    match parallelism {
        0 => members.max(1),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// Failures a service of `members` replicas tolerates before its
/// `failure_action` applies (`max_failure_ratio`, rounded down).
pub fn allowed_failures(update: &UpdateConfig, members: usize) -> usize {
    (update.max_failure_ratio * members as f64).floor() as usize
}

/// What the rollout does after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on with the next batch (no failure over the tolerance yet).
    Proceed,
    /// Failed over the tolerance: the outcome is `failure_action`, and the
    /// rollout goes on (`continue`) or stops here (`rollback`, `pause`).
    Failed { action: FailureAction, stop: bool },
}

/// The decision after a batch, from the failures so far.
pub fn after_batch(update: &UpdateConfig, failures: usize, allowed: usize) -> Next {
    if failures <= allowed {
        return Next::Proceed;
    }
    Next::Failed {
        action: update.failure_action,
        stop: update.failure_action != FailureAction::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_or_a_silent_host_is_the_hosts_fault() {
        assert_eq!(classify(true, true), Fault::Host);
        assert_eq!(classify(true, false), Fault::Host);
        assert_eq!(classify(false, false), Fault::Host);
        assert_eq!(classify(false, true), Fault::Release);
    }

    #[test]
    fn what_became_of_a_host() {
        use HostOutcome::*;
        // (lost, put back, changed, failed)
        assert_eq!(host_outcome(false, false, true, false), Converged);
        assert_eq!(host_outcome(false, false, false, false), Converged);
        assert_eq!(host_outcome(true, false, true, true), Unreachable);
        assert_eq!(host_outcome(true, true, true, true), Unreachable);
        assert_eq!(host_outcome(false, true, true, true), RolledBack);
        assert_eq!(host_outcome(false, true, false, true), RolledBack);
        assert_eq!(host_outcome(false, false, false, true), Untouched);
        assert_eq!(host_outcome(false, false, true, true), Incomplete);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = READY_POLL;
        let pauses: Vec<u128> = (0..4).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, vec![100, 200, 250, 250]);
        let mut b = CHECK_RETRY;
        let pauses: Vec<u128> = (0..6).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, vec![200, 400, 800, 1600, 2000, 2000]);
        let mut b = MONITOR_POLL;
        assert_eq!(
            (b.pause(), b.pause()),
            (Duration::from_millis(500), Duration::from_millis(500))
        );
    }

    #[test]
    fn batches_and_tolerance() {
        assert_eq!(batch_size(0, 5), 5);
        assert_eq!(batch_size(0, 0), 1);
        assert_eq!(batch_size(2, 5), 2);
        let mut update = UpdateConfig {
            max_failure_ratio: 0.5,
            ..Default::default()
        };
        assert_eq!(allowed_failures(&update, 5), 2);
        update.max_failure_ratio = 0.0;
        assert_eq!(allowed_failures(&update, 5), 0);
    }

    #[test]
    fn failure_action_decides_whether_to_stop() {
        let mut update = UpdateConfig::default();
        assert_eq!(after_batch(&update, 0, 0), Next::Proceed);
        for (action, stop) in [
            (FailureAction::Rollback, true),
            (FailureAction::Pause, true),
            (FailureAction::Continue, false),
        ] {
            update.failure_action = action;
            assert_eq!(after_batch(&update, 1, 0), Next::Failed { action, stop });
            assert_eq!(after_batch(&update, 1, 1), Next::Proceed);
        }
    }
}
