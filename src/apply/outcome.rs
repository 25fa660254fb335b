//! What an apply did, host by host and step by step: the report's data,
//! and the one place a finished step is logged and recorded.

use std::time::Instant;

use serde::Serialize;

pub use super::policy::HostOutcome;
use crate::spec::FailureAction;

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub hosts: Vec<HostReport>,
    /// Services whose rollout failed, with what was done about it.
    pub rollouts: Vec<RolloutReport>,
    /// Why the run stopped early (`SIGTERM`, `SIGINT`): it started no new
    /// batch after that, and what was in flight finished or was rolled back.
    /// Only when the request left a batch or a service unstarted: one that
    /// came after the last batch started changed nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub steps: Vec<StepReport>,
    pub seconds: f64,
    /// The first error on this host, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What became of the host (see `policy::host_outcome`), set when the
    /// run ends.
    pub outcome: HostOutcome,
}

/// A kind of step apply takes on a host, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Pull,
    Network,
    Volume,
    Secrets,
    Create,
    Replace,
    Remove,
    Rollback,
    /// Config files delivered to the host.
    Configs,
    /// A running container took a changed config in place.
    Reload,
    /// A reload failed: the previous config put back and reloaded.
    ReloadRollback,
    /// A replica published to its service's discovery targets
    /// (`x-berth.publish`), once validated or back in service.
    Publish,
    /// A replica retired from its discovery targets (drained, then
    /// removed) before it stopped.
    Retire,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Pull => "pull",
            Step::Network => "network",
            Step::Volume => "volume",
            Step::Secrets => "secrets",
            Step::Create => "create",
            Step::Replace => "replace",
            Step::Remove => "remove",
            Step::Rollback => "rollback",
            Step::Configs => "configs",
            Step::Reload => "reload",
            Step::ReloadRollback => "reload_rollback",
            Step::Publish => "publish",
            Step::Retire => "retire",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of a service whose rollout failed: its `failure_action`, done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutOutcome {
    RolledBack,
    Paused,
    Continued,
}

impl From<FailureAction> for RolloutOutcome {
    fn from(action: FailureAction) -> RolloutOutcome {
        match action {
            FailureAction::Rollback => RolloutOutcome::RolledBack,
            FailureAction::Pause => RolloutOutcome::Paused,
            FailureAction::Continue => RolloutOutcome::Continued,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: Step,
    pub target: String,
    pub ok: bool,
    pub seconds: f64,
    /// Of `seconds`, the time spent waiting on gates (health, validation,
    /// monitor): the rest is berth's own overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_seconds: Option<f64>,
    /// Of `seconds`, the time the Docker Engine took to stop the old
    /// container and start the new one (the two calls themselves): work a
    /// stop-first update cannot overlap, whatever tool runs it. What is
    /// left after the waits and this is berth's own overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub stack: String,
    pub service: String,
    pub outcome: RolloutOutcome,
    pub failures: Vec<String>,
}

impl ApplyReport {
    pub fn failed_hosts(&self) -> Vec<&HostReport> {
        self.hosts.iter().filter(|h| h.error.is_some()).collect()
    }
    pub fn changed(&self) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.steps)
            .filter(|s| s.ok && matches!(s.step, Step::Create | Step::Replace | Step::Remove))
            .count()
    }
}

/// Runs one step on a host and records it in the host's report.
pub(super) async fn step<F>(
    report: &mut HostReport,
    what: Step,
    target: &str,
    fut: F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let result = fut.await;
    record(report, what, target, started, result.as_ref().err());
    result
}

/// Records a finished step (and logs it).
pub(super) fn record(
    report: &mut HostReport,
    what: Step,
    target: &str,
    started: Instant,
    err: Option<&anyhow::Error>,
) {
    let seconds = started.elapsed().as_secs_f64();
    report.seconds += seconds;
    match err {
        None => tracing::info!(host = %report.host, "{what} {target} ({seconds:.1}s)"),
        Some(e) => tracing::warn!(host = %report.host, "{what} {target} failed: {e:#}"),
    }
    report.steps.push(StepReport {
        step: what,
        target: target.to_string(),
        ok: err.is_none(),
        seconds,
        waited_seconds: None,
        engine_seconds: None,
        detail: err.map(|e| format!("{e:#}")),
    });
}
