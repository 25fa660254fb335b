//! report: what a run did, for machines — a JSON run report and a Prometheus
//! textfile for node_exporter's textfile collector.
//!
//! Input: the plan and, after `apply`, the [`ApplyReport`]. Output: files.
//! Invariants: written atomically (temp file + rename) so a collector never
//! reads half a file; contains no secret values (plans carry digests only).

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;
use serde::Serialize;

use crate::apply::{ApplyReport, HostOutcome, RolloutReport, Step, StepReport};
use crate::plan::{Action, Plan};

/// The JSON run report (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub berth_version: String,
    pub command: String,
    pub project: String,
    pub commit: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    /// `finished_at` as unix seconds, for metrics.
    pub finished_unix: f64,
    pub duration_seconds: f64,
    pub exit_code: u8,
    pub outcome: RunOutcome,
    pub summary: Summary,
    pub hosts: Vec<HostRun>,
    /// Per service whose rollout failed: rolled back, paused or continued,
    /// with the failures (host, replica, check and its output).
    pub rollouts: Vec<RolloutReport>,
}

/// How a run ended, as the report and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The hosts matched the repo.
    NoChanges,
    /// Apply changed the hosts and every host succeeded.
    Converged,
    /// Plan found changes to make.
    ChangesPlanned,
    /// A host could not be reached, or a step on one failed.
    Failed,
    /// Another run held a host's run lock: nothing changed.
    LockHeld,
    /// Apply was stopped by a signal (SIGTERM, SIGINT): no new batch
    /// started after it; the hosts say how far each got.
    Stopped,
}

impl RunOutcome {
    /// The outcome of a run that planned `plan` and, for apply, did `applied`:
    /// the same facts the exit code is picked from.
    pub fn of(plan: &Plan, applied: Option<&ApplyReport>) -> RunOutcome {
        let failed_hosts = applied.is_some_and(|a| !a.failed_hosts().is_empty());
        if applied.is_some_and(|a| a.stopped.is_some()) {
            RunOutcome::Stopped
        } else if !plan.unreachable.is_empty() || failed_hosts {
            RunOutcome::Failed
        } else if plan.is_empty() {
            RunOutcome::NoChanges
        } else if applied.is_some() {
            RunOutcome::Converged
        } else {
            RunOutcome::ChangesPlanned
        }
    }

    /// Whether the run did what it was asked (for the success metric).
    pub fn succeeded(self) -> bool {
        !matches!(
            self,
            RunOutcome::Failed | RunOutcome::LockHeld | RunOutcome::Stopped
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub create: usize,
    pub replace: usize,
    pub remove: usize,
    /// Containers planned to take a changed config in place (`x-berth.reload`).
    pub reload: usize,
    /// Reloads done, and reloads undone (the previous config put back).
    pub reloaded: usize,
    pub reload_rollbacks: usize,
    /// Replicas published to their discovery targets (`x-berth.publish`),
    /// and retired (drained, then removed) from them.
    pub published: usize,
    pub retired: usize,
    pub drift: usize,
    /// Hosts not reached, or dropped from an apply when they stopped answering.
    pub unreachable: usize,
    pub failed_hosts: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostRun {
    pub host: String,
    /// Whether berth reached the host and it answered to the end of the
    /// run (false for a host dropped because it stopped answering).
    pub reachable: bool,
    /// What apply did to the host: `converged`, `rolled_back`,
    /// `unreachable`, `untouched` or `incomplete` (absent for plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<HostOutcome>,
    /// Changes planned on this host (all of them, drift included).
    pub planned: usize,
    pub drift: usize,
    /// Steps taken by apply, in order (empty for plan).
    pub steps: Vec<StepReport>,
    pub duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunReport {
    pub fn new(
        command: &str,
        plan: &Plan,
        applied: Option<&ApplyReport>,
        started: SystemTime,
        exit_code: u8,
    ) -> RunReport {
        let finished = SystemTime::now();
        let mut hosts: Vec<HostRun> = plan
            .hosts
            .iter()
            .map(|h| {
                let done = applied.and_then(|a| a.hosts.iter().find(|r| r.host == h.host));
                let outcome = applied.map(|_| done.map_or(HostOutcome::Untouched, |d| d.outcome));
                HostRun {
                    host: h.host.clone(),
                    reachable: outcome != Some(HostOutcome::Unreachable),
                    outcome,
                    planned: h.changes.len(),
                    drift: h.changes.iter().filter(|c| c.drift).count(),
                    steps: done.map(|d| d.steps.clone()).unwrap_or_default(),
                    duration_seconds: done.map(|d| d.seconds).unwrap_or(0.0),
                    error: done.and_then(|d| d.error.clone()),
                }
            })
            .collect();
        hosts.extend(plan.unreachable.iter().map(|u| HostRun {
            host: u.host.clone(),
            reachable: false,
            outcome: applied.map(|_| HostOutcome::Unreachable),
            planned: 0,
            drift: 0,
            steps: Vec::new(),
            duration_seconds: 0.0,
            error: Some(u.error.clone()),
        }));
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        let failed_hosts = hosts
            .iter()
            .filter(|h| h.reachable && h.error.is_some())
            .count();
        let outcome = RunOutcome::of(plan, applied);
        RunReport {
            berth_version: env!("CARGO_PKG_VERSION").into(),
            command: command.into(),
            project: plan.project.clone(),
            commit: plan.commit.clone(),
            started_at: rfc3339(started),
            finished_at: rfc3339(finished),
            finished_unix: finished
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            duration_seconds: finished
                .duration_since(started)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            exit_code,
            outcome,
            summary: Summary {
                create: plan.count(Action::Create),
                replace: plan.count(Action::Replace),
                remove: plan.count(Action::Remove),
                reload: plan.count(Action::Reload),
                reloaded: count_steps(applied, crate::apply::Step::Reload, true),
                reload_rollbacks: count_steps(applied, crate::apply::Step::ReloadRollback, true),
                published: count_steps(applied, crate::apply::Step::Publish, true),
                retired: count_steps(applied, crate::apply::Step::Retire, true),
                drift: plan.drift_count(),
                unreachable: hosts.iter().filter(|h| !h.reachable).count(),
                failed_hosts,
            },
            hosts,
            rollouts: applied.map(|a| a.rollouts.clone()).unwrap_or_default(),
        }
    }

    /// A run that gave up waiting for the run lock on `held` (host, the
    /// other run): it planned nothing and changed no host.
    pub fn lock_held(
        command: &str,
        project: &str,
        commit: Option<&str>,
        held: &[crate::hosts::fleet::HeldLock],
        started: SystemTime,
        exit_code: u8,
    ) -> RunReport {
        let plan = Plan {
            format_version: crate::plan::PLAN_FORMAT_VERSION,
            project: project.into(),
            commit: commit.map(str::to_string),
            hosts: Vec::new(),
            unreachable: Vec::new(),
            environment: Vec::new(),
            rollouts: Vec::new(),
            swarms: Vec::new(),
        };
        let mut report = RunReport::new(command, &plan, None, started, exit_code);
        report.outcome = RunOutcome::LockHeld;
        report.hosts = held
            .iter()
            .map(|held| HostRun {
                host: held.host.clone(),
                reachable: true,
                outcome: None,
                planned: 0,
                drift: 0,
                steps: Vec::new(),
                duration_seconds: 0.0,
                error: Some(format!(
                    "the run lock is held by another berth run ({})",
                    held.holder
                )),
            })
            .collect();
        report.summary.failed_hosts = report.hosts.len();
        report
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Prometheus text exposition format, for node_exporter's textfile collector.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let project = escape_label(&self.project);
        let finished = self.finished_unix;
        let mut metric = |name: &str, help: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let run = format!("project=\"{project}\",command=\"{}\"", self.command);
        metric(
            "berth_last_run_timestamp_seconds",
            "When the last berth run finished (unix time).",
            vec![(run.clone(), finished)],
        );
        metric(
            "berth_last_run_success",
            "1 if the last run converged or found no changes, 0 if it failed.",
            vec![(
                run.clone(),
                if self.outcome.succeeded() { 1.0 } else { 0.0 },
            )],
        );
        metric(
            "berth_last_run_duration_seconds",
            "Wall time of the last run.",
            vec![(run.clone(), self.duration_seconds)],
        );
        let per_host = |f: &dyn Fn(&HostRun) -> f64| -> Vec<(String, f64)> {
            self.hosts
                .iter()
                .map(|h| (format!("{run},host=\"{}\"", escape_label(&h.host)), f(h)))
                .collect()
        };
        metric(
            "berth_host_up",
            "1 if berth reached the host's Docker Engine.",
            per_host(&|h| if h.reachable { 1.0 } else { 0.0 }),
        );
        metric(
            "berth_host_changes",
            "Container changes planned on the host (create, replace, remove).",
            per_host(&|h| h.planned as f64),
        );
        metric(
            "berth_host_drift",
            "Changes that repair drift on the host (made outside berth).",
            per_host(&|h| h.drift as f64),
        );
        let steps = |kind: crate::apply::Step| {
            per_host(&|h| h.steps.iter().filter(|s| s.step == kind && s.ok).count() as f64)
        };
        metric(
            "berth_host_reloads",
            "Containers that took a changed config in place (no restart).",
            steps(crate::apply::Step::Reload),
        );
        metric(
            "berth_host_reload_rollbacks",
            "Reloads undone: the previous config put back and reloaded.",
            steps(crate::apply::Step::ReloadRollback),
        );
        metric(
            "berth_host_publishes",
            "Replicas published to their discovery targets.",
            steps(crate::apply::Step::Publish),
        );
        metric(
            "berth_host_retires",
            "Replicas retired (drained, then removed) from their discovery targets.",
            steps(crate::apply::Step::Retire),
        );
        let drained = |h: &HostRun| {
            h.steps
                .iter()
                .filter(|s| s.step == crate::apply::Step::Retire && s.ok)
                .map(|s| s.seconds)
                .sum::<f64>()
        };
        metric(
            "berth_host_retire_seconds",
            "Time spent retiring replicas from discovery, drains included.",
            per_host(&drained),
        );
        metric(
            "berth_host_duration_seconds",
            "Time apply spent on the host.",
            per_host(&|h| h.duration_seconds),
        );
        // A rollout that failed its checks and put the old container back:
        // the run still fails, but this says why, for the dashboard and alerts.
        metric(
            "berth_host_rollbacks",
            "Rollback steps apply took on the host (failed checks, previous container restored).",
            per_host(&|h| h.steps.iter().filter(|s| s.step == Step::Rollback).count() as f64),
        );
        metric(
            "berth_host_success",
            "1 if the host was reached and every step on it succeeded.",
            per_host(&|h| {
                if h.reachable && h.error.is_none() {
                    1.0
                } else {
                    0.0
                }
            }),
        );
        out
    }
}

/// Steps of `kind` that ended `ok` (or not) in an apply, on every host.
fn count_steps(applied: Option<&ApplyReport>, kind: crate::apply::Step, ok: bool) -> usize {
    applied
        .map(|a| {
            a.hosts
                .iter()
                .flat_map(|h| &h.steps)
                .filter(|s| s.step == kind && s.ok == ok)
                .count()
        })
        .unwrap_or(0)
}

/// Writes `content` to `path` atomically: a temp file beside it, then rename.
pub fn write_atomic(path: &Path, content: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, content).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write `{}`", path.display())
    })
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `2026-11-22T21:50:34Z` from a SystemTime (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(unreachable: bool, changes: bool) -> Plan {
        Plan {
            format_version: crate::plan::PLAN_FORMAT_VERSION,
            project: "p".into(),
            commit: None,
            hosts: vec![crate::plan::HostPlan {
                host: "a".into(),
                pulls: if changes { vec!["img".into()] } else { vec![] },
                networks: vec![],
                volumes: vec![],
                changes: vec![],
                blocked: vec![],
                available: vec![],
            }],
            unreachable: if unreachable {
                vec![crate::plan::UnreachableHost {
                    host: "b".into(),
                    error: "down".into(),
                }]
            } else {
                vec![]
            },
            environment: vec![],
            rollouts: Vec::new(),
            swarms: Vec::new(),
        }
    }

    /// The outcome comes from what the run found and did, never from the
    /// exit code it was given, and reads as before in the JSON.
    #[test]
    fn the_outcome_follows_the_run_not_the_exit_code() {
        let started = SystemTime::now();
        let failed = ApplyReport {
            hosts: vec![crate::apply::HostReport {
                host: "a".into(),
                steps: vec![],
                seconds: 0.0,
                error: Some("boom".into()),
                outcome: crate::apply::HostOutcome::Untouched,
            }],
            rollouts: vec![],
            stopped: None,
        };
        let ok = ApplyReport {
            hosts: vec![],
            rollouts: vec![],
            stopped: None,
        };
        let outcome = |plan: &Plan, applied: Option<&ApplyReport>| {
            RunReport::new("apply", plan, applied, started, 0).outcome
        };
        assert_eq!(outcome(&plan(false, false), None), RunOutcome::NoChanges);
        assert_eq!(
            outcome(&plan(false, true), None),
            RunOutcome::ChangesPlanned
        );
        assert_eq!(outcome(&plan(true, true), None), RunOutcome::Failed);
        assert_eq!(
            outcome(&plan(false, true), Some(&ok)),
            RunOutcome::Converged
        );
        assert_eq!(
            outcome(&plan(false, true), Some(&failed)),
            RunOutcome::Failed
        );
        let report = RunReport::new("plan", &plan(false, true), None, started, 2);
        assert!(report
            .to_json()
            .contains("\"outcome\": \"changes_planned\""));
        assert!(report
            .to_prometheus()
            .contains("berth_last_run_success{project=\"p\",command=\"plan\"} 1"));
        let report = RunReport::lock_held("apply", "p", None, &[], started, 3);
        assert!(report.to_json().contains("\"outcome\": \"lock_held\""));
    }

    /// Rollback steps are counted per host, so the dashboard and the
    /// alert rules in ci/ can name them.
    #[test]
    fn metrics_count_rollbacks_per_host() {
        let step = |step: Step, ok: bool| StepReport {
            step,
            target: "web/api.1".into(),
            ok,
            seconds: 0.1,
            waited_seconds: None,
            engine_seconds: None,
            detail: None,
        };
        let applied = ApplyReport {
            hosts: vec![crate::apply::HostReport {
                host: "a".into(),
                steps: vec![
                    step(Step::Replace, false),
                    step(Step::Rollback, true),
                    step(Step::Rollback, true),
                ],
                seconds: 1.0,
                error: Some("validation failed".into()),
                outcome: HostOutcome::RolledBack,
            }],
            rollouts: vec![],
            stopped: None,
        };
        let report = RunReport::new(
            "apply",
            &plan(false, false),
            Some(&applied),
            SystemTime::now(),
            1,
        );
        let text = report.to_prometheus();
        assert!(
            text.contains("berth_host_rollbacks{project=\"p\",command=\"apply\",host=\"a\"} 2\n"),
            "{text}"
        );
    }

    /// Discovery steps are counted in the summary and per host, with the
    /// time retiring (draining) took.
    #[test]
    fn publishes_and_retires_are_counted() {
        let step = |step: Step, ok: bool, seconds: f64| StepReport {
            step,
            target: "web-app-1".into(),
            ok,
            seconds,
            waited_seconds: None,
            engine_seconds: None,
            detail: None,
        };
        let applied = ApplyReport {
            hosts: vec![crate::apply::HostReport {
                host: "a".into(),
                steps: vec![
                    step(Step::Retire, true, 1.5),
                    step(Step::Replace, true, 3.0),
                    step(Step::Publish, true, 0.25),
                    step(Step::Retire, true, 1.0),
                    step(Step::Publish, false, 0.5),
                ],
                seconds: 3.0,
                error: None,
                outcome: HostOutcome::Converged,
            }],
            rollouts: vec![],
            stopped: None,
        };
        let report = RunReport::new(
            "apply",
            &plan(false, true),
            Some(&applied),
            SystemTime::now(),
            0,
        );
        let json = report.to_json();
        assert!(json.contains("\"published\": 1,"), "{json}");
        assert!(json.contains("\"retired\": 2,"), "{json}");
        let text = report.to_prometheus();
        for line in [
            "berth_host_publishes{project=\"p\",command=\"apply\",host=\"a\"} 1\n",
            "berth_host_retires{project=\"p\",command=\"apply\",host=\"a\"} 2\n",
            "berth_host_retire_seconds{project=\"p\",command=\"apply\",host=\"a\"} 2.5\n",
        ] {
            assert!(text.contains(line), "no {line:?} in {text}");
        }
    }

    #[test]
    fn rfc3339_of_known_instants() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_384_234);
        assert_eq!(rfc3339(t), "2026-11-22T21:50:34Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
