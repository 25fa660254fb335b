//! The rollout's decisions, as plain functions: how long to wait between
//! polls ([`Backoff`]), how many failures a service tolerates, and what a
//! failure does to the service (what it does to the rest of its stack is
//! the schedule's). Pure: the
//! executor (`rollout`, `gate`) sleeps and calls the engine; this only says.

use std::time::Duration;

use crate::spec::{FailureAction, UpdateConfig};

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
