//! Exit codes, as documented in `--help` and the README, and the one
//! function that picks them from what a command did.

use crate::error::Error;
use crate::ops::ApplyOutcome;

use super::outcome::Outcome;

/// Converged, or no changes.
pub const OK: u8 = 0;
/// An error: bad input, an unreachable host, a failed step.
pub const ERROR: u8 = 1;
/// With `--detailed-exitcode`: changes planned (plan) or made (apply).
pub const CHANGES: u8 = 2;
/// Another berth run held a host's run lock past --lock-timeout; nothing was changed.
pub const LOCK_HELD: u8 = 3;
/// `apply` was stopped by SIGTERM or SIGINT: it started no new batch, the
/// one in flight finished or was rolled back, the report was written. (A
/// second signal ends berth at once, with 128 + the signal's number.) A
/// signal that left nothing unstarted gives the run's own code.
pub const STOPPED: u8 = 4;

/// The exit code for a command's result. `detailed`: `--detailed-exitcode`
/// (changes planned or made exit 2 instead of 0).
pub fn code(result: &Result<Outcome, Error>, detailed: bool) -> u8 {
    let changes = |any: bool| if detailed && any { CHANGES } else { OK };
    match result {
        Err(_) => ERROR,
        Ok(Outcome::Validated(_)) => OK,
        Ok(Outcome::Status(status)) if !status.unreachable.is_empty() => ERROR,
        Ok(Outcome::Status(_)) => OK,
        Ok(Outcome::Planned(p)) if !p.plan.unreachable.is_empty() => ERROR,
        Ok(Outcome::Planned(p)) => changes(!p.plan.is_empty()),
        Ok(Outcome::Applied(applied)) => match applied {
            ApplyOutcome::LockHeld { .. } => LOCK_HELD,
            ApplyOutcome::NothingToDo { plan } if !plan.unreachable.is_empty() => ERROR,
            ApplyOutcome::NothingToDo { .. } => OK,
            ApplyOutcome::Applied { report, .. } if report.stopped.is_some() => STOPPED,
            ApplyOutcome::Applied { plan, report }
                if !plan.unreachable.is_empty() || !report.failed_hosts().is_empty() =>
            {
                ERROR
            }
            ApplyOutcome::Applied { .. } => changes(true),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{ApplyReport, HostReport};
    use crate::hosts::fleet::HeldLock;
    use crate::ops::{Planned, Status, Validated};
    use crate::plan::{Plan, UnreachableHost, PLAN_FORMAT_VERSION};

    fn plan(changes: bool, unreachable: bool) -> Plan {
        let mut plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            project: "p".into(),
            commit: None,
            hosts: Vec::new(),
            unreachable: Vec::new(),
            environment: Vec::new(),
            rollouts: Vec::new(),
            swarms: Vec::new(),
        };
        if changes {
            plan.hosts.push(crate::plan::HostPlan {
                host: "a".into(),
                pulls: vec!["img".into()],
                networks: Vec::new(),
                volumes: Vec::new(),
                changes: Vec::new(),
                blocked: Vec::new(),
                available: Vec::new(),
            });
        }
        if unreachable {
            plan.unreachable.push(UnreachableHost {
                host: "b".into(),
                error: "down".into(),
            });
        }
        plan
    }

    fn applied(failed: bool, unreachable: bool) -> Outcome {
        Outcome::Applied(ApplyOutcome::Applied {
            plan: plan(true, unreachable),
            report: ApplyReport {
                hosts: vec![HostReport {
                    host: "a".into(),
                    steps: Vec::new(),
                    seconds: 0.0,
                    error: failed.then(|| "broke".to_string()),
                    outcome: Default::default(),
                }],
                rollouts: Vec::new(),
                stopped: None,
            },
        })
    }

    #[test]
    fn every_outcome_has_its_documented_code() {
        let planned = |changes, unreachable| {
            Outcome::Planned(Planned {
                plan: plan(changes, unreachable),
            })
        };
        let cases: Vec<(Outcome, bool, u8)> = vec![
            (
                Outcome::Validated(Validated {
                    root: ".".into(),
                    hosts: 1,
                    stacks: 1,
                    services: 1,
                }),
                true,
                OK,
            ),
            (planned(false, false), true, OK),
            (planned(true, false), false, OK),
            (planned(true, false), true, CHANGES),
            (planned(true, true), true, ERROR),
            (planned(false, true), false, ERROR),
            (
                Outcome::Applied(ApplyOutcome::NothingToDo {
                    plan: plan(false, false),
                }),
                true,
                OK,
            ),
            (
                Outcome::Applied(ApplyOutcome::NothingToDo {
                    plan: plan(false, true),
                }),
                false,
                ERROR,
            ),
            (applied(false, false), false, OK),
            (applied(false, false), true, CHANGES),
            (applied(true, false), true, ERROR),
            (applied(false, true), false, ERROR),
            (
                Outcome::Applied(ApplyOutcome::LockHeld {
                    project: "p".into(),
                    commit: None,
                    held: vec![HeldLock {
                        host: "a".into(),
                        holder: "pid=1".into(),
                    }],
                }),
                true,
                LOCK_HELD,
            ),
            (
                Outcome::Status(Status {
                    hosts: Vec::new(),
                    unreachable: Vec::new(),
                }),
                false,
                OK,
            ),
            (
                Outcome::Status(Status {
                    hosts: Vec::new(),
                    unreachable: plan(false, true).unreachable,
                }),
                false,
                ERROR,
            ),
        ];
        for (outcome, detailed, want) in cases {
            let got = code(&Ok(outcome), detailed);
            assert_eq!(got, want, "detailed={detailed}");
        }
        assert_eq!(code(&Err(Error::new("bad")), true), ERROR);
    }
}
