//! apply: executes a [`Plan`] on the hosts, exactly as it was shown.
//!
//! Input: the plan and one connected [`Engine`] per host. Output: an
//! [`ApplyReport`] of what was done and what failed. Invariants: hosts are
//! independent and proceed in parallel, so one failing host never stops the
//! others; on a host, removals come first (they free ports and names), then
//! creates and replaces in `depends_on` order, each gated on the new
//! container running and healthy; a failed replace puts the old container
//! back, so a failed step leaves the old version serving. Every step states
//! its end state and may be re-run after a crash: the next plan sees the
//! leftovers (a `.berth-old` container, a half-started new one) and finishes
//! the job.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::hosts::{labels, ContainerStatus, Engine};
use crate::placement::canonical_json;
use crate::plan::{Action, Change, HostPlan, Plan, RETIRED_SUFFIX};

/// What a run knows beyond the plan.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub project: String,
    /// Labels every created container carries besides its identity (commit,
    /// origin, runner...), so `docker inspect` alone tells where it came from.
    pub metadata: BTreeMap<String, String>,
    /// Longest wait for a new container to run and report healthy.
    pub health_timeout: Duration,
    /// `(stack, service)` -> depth in the `depends_on` graph (0 = no deps):
    /// lower depths are created/replaced first.
    pub service_order: BTreeMap<(String, String), usize>,
    /// Hosts applied at once.
    pub parallel: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub hosts: Vec<HostReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub steps: Vec<StepReport>,
    pub seconds: f64,
    /// The error that stopped this host, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// `pull`, `network`, `volume`, `create`, `replace`, `remove`.
    pub step: String,
    pub target: String,
    pub ok: bool,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ApplyReport {
    pub fn failed_hosts(&self) -> Vec<&HostReport> {
        self.hosts.iter().filter(|h| h.error.is_some()).collect()
    }
    pub fn changed(&self) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.steps)
            .filter(|s| s.ok && matches!(s.step.as_str(), "create" | "replace" | "remove"))
            .count()
    }
}

/// Applies every host's part of the plan, hosts in parallel (bounded).
pub async fn apply(
    plan: &Plan,
    engines: &BTreeMap<String, Box<dyn Engine>>,
    ctx: &ApplyContext,
) -> ApplyReport {
    let work = plan.hosts.iter().filter_map(|hp| {
        let engine = engines.get(&hp.host)?;
        Some(apply_host(engine.as_ref(), hp, ctx))
    });
    let mut hosts: Vec<HostReport> = stream::iter(work)
        .buffer_unordered(ctx.parallel.max(1))
        .collect()
        .await;
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    ApplyReport { hosts }
}

/// One host: stop at the first failed step (the rest of the host waits for
/// the next run), never touching another host.
pub async fn apply_host(engine: &dyn Engine, hp: &HostPlan, ctx: &ApplyContext) -> HostReport {
    let started = Instant::now();
    let mut report = HostReport {
        host: hp.host.clone(),
        steps: Vec::new(),
        seconds: 0.0,
        error: None,
    };
    if let Err(e) = run_host(engine, hp, ctx, &mut report).await {
        tracing::error!(host = %hp.host, "{e:#}");
        report.error = Some(format!("{e:#}"));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn run_host(
    engine: &dyn Engine,
    hp: &HostPlan,
    ctx: &ApplyContext,
    report: &mut HostReport,
) -> anyhow::Result<()> {
    let host = hp.host.as_str();
    for image in &hp.pulls {
        step(report, "pull", image, engine.pull(image)).await?;
    }
    for net in &hp.networks {
        let labels = resource_labels(ctx);
        step(
            report,
            "network",
            &net.name,
            engine.create_network(net, &labels),
        )
        .await?;
    }
    for vol in &hp.volumes {
        let labels = resource_labels(ctx);
        step(
            report,
            "volume",
            &vol.name,
            engine.create_volume(vol, &labels),
        )
        .await?;
    }

    let (removes, mut updates): (Vec<&Change>, Vec<&Change>) =
        hp.changes.iter().partition(|c| c.action == Action::Remove);
    for c in removes {
        let Some(current) = &c.current else { continue };
        let fut = async {
            engine.stop_container(&current.id, None).await?;
            engine.remove_container(&current.id).await
        };
        step(report, "remove", &c.name, fut).await?;
    }
    updates.sort_by_key(|c| {
        let depth = ctx
            .service_order
            .get(&(c.slot.stack.clone(), c.slot.service.clone()))
            .copied()
            .unwrap_or(0);
        (
            c.slot.stack.clone(),
            depth,
            c.slot.service.clone(),
            c.slot.replica,
        )
    });
    for c in updates {
        let what = if c.action == Action::Create {
            "create"
        } else {
            "replace"
        };
        step(report, what, &c.name, converge(engine, c, ctx))
            .await
            .with_context(|| format!("host `{host}`: {what} of `{}` failed", c.name))?;
    }
    Ok(())
}

async fn step<F>(report: &mut HostReport, what: &str, target: &str, fut: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let result = fut.await;
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(()) => tracing::info!(host = %report.host, "{what} {target} ({seconds:.1}s)"),
        Err(e) => tracing::warn!(host = %report.host, "{what} {target} failed: {e:#}"),
    }
    report.steps.push(StepReport {
        step: what.to_string(),
        target: target.to_string(),
        ok: result.is_ok(),
        seconds,
        detail: result.as_ref().err().map(|e| format!("{e:#}")),
    });
    result
}

/// Brings one slot to its desired container. Replace is stop-first: the old
/// container is stopped and renamed `<name>.berth-old`, the new one created
/// and gated; on success the old one is removed, on failure the new one is
/// removed and the old one renamed back and started.
async fn converge(engine: &dyn Engine, c: &Change, ctx: &ApplyContext) -> anyhow::Result<()> {
    let desired = c
        .desired
        .as_ref()
        .ok_or_else(|| anyhow!("plan has no desired spec for `{}`", c.name))?;
    let mut labels = ctx.metadata.clone();
    labels.insert(labels::PROJECT.into(), ctx.project.clone());
    labels.insert(labels::STACK.into(), c.slot.stack.clone());
    labels.insert(labels::SERVICE.into(), c.slot.service.clone());
    labels.insert(labels::REPLICA.into(), c.slot.replica.to_string());
    labels.insert(labels::SPEC_HASH.into(), desired.spec_hash.clone());
    labels.insert(labels::SPEC.into(), canonical_json(&desired.spec));

    let old = c.current.as_ref();
    let retired_name = format!("{}{RETIRED_SUFFIX}", c.name);
    if let Some(old) = old {
        engine
            .stop_container(&old.id, desired.spec.stop_grace_period)
            .await?;
        engine.rename_container(&old.id, &retired_name).await?;
    }

    let started = start_new(engine, &c.name, desired, &labels, ctx).await;
    match (started, old) {
        (Ok(()), Some(old)) => engine.remove_container(&old.id).await,
        (Ok(()), None) => Ok(()),
        (Err(e), Some(old)) => {
            // Roll back: the old container serves again.
            let restore = async {
                engine.rename_container(&old.id, &c.name).await?;
                if old.state == "running" {
                    engine.start_container(&old.id).await?;
                }
                anyhow::Ok(())
            };
            match restore.await {
                Ok(()) => Err(e.context(format!(
                    "rolled back: the previous container `{}` ({}) is back",
                    c.name, old.image
                ))),
                Err(re) => Err(e.context(format!(
                    "rollback also failed ({re:#}); the previous container is kept as `{retired_name}`"
                ))),
            }
        }
        (Err(e), None) => Err(e),
    }
}

/// Creates, starts and gates a new container; on failure removes it so the
/// name is free again.
async fn start_new(
    engine: &dyn Engine,
    name: &str,
    desired: &crate::plan::DesiredRef,
    labels: &BTreeMap<String, String>,
    ctx: &ApplyContext,
) -> anyhow::Result<()> {
    let id = engine.create_container(name, &desired.spec, labels).await?;
    let gated = async {
        engine.start_container(&id).await?;
        wait_ready(engine, &id, ctx.health_timeout).await
    }
    .await;
    if let Err(e) = gated {
        let _ = engine.stop_container(&id, Some(1)).await;
        if let Err(re) = engine.remove_container(&id).await {
            tracing::warn!("could not remove failed container `{name}`: {re:#}");
        }
        return Err(e);
    }
    Ok(())
}

/// Waits until the container runs and, if it has a healthcheck, is healthy.
/// Short backoff (100 ms doubling to 1 s), bounded by `timeout`.
pub async fn wait_ready(engine: &dyn Engine, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        let status = engine.status(id).await?;
        match readiness(&status) {
            Readiness::Ready => return Ok(()),
            Readiness::Failed(why) => bail!("{why}"),
            Readiness::Waiting(why) => {
                if Instant::now() >= deadline {
                    bail!("not ready after {}s: {why}", timeout.as_secs());
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Waiting(String),
    Failed(String),
}

/// The gate decision, a plain function of the container's status.
pub fn readiness(s: &ContainerStatus) -> Readiness {
    if !s.running {
        return Readiness::Failed(match s.exit_code {
            Some(code) => format!("container exited with code {code}"),
            None => "container is not running".into(),
        });
    }
    if s.restart_count > 0 {
        return Readiness::Failed(format!("container restarted {} time(s)", s.restart_count));
    }
    let log = || {
        s.health_log
            .as_deref()
            .filter(|l| !l.is_empty())
            .map(|l| format!("; last check said: {l}"))
            .unwrap_or_default()
    };
    match s.health.as_deref() {
        None | Some("healthy") => Readiness::Ready,
        Some("unhealthy") => Readiness::Failed(format!("healthcheck reports unhealthy{}", log())),
        Some(other) => Readiness::Waiting(format!("health is `{other}`{}", log())),
    }
}

fn resource_labels(ctx: &ApplyContext) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::PROJECT.to_string(), ctx.project.clone())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(running: bool, health: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            running,
            restart_count: 0,
            exit_code: if running { None } else { Some(3) },
            health: health.map(str::to_string),
            health_log: Some("wget: server returned error: HTTP/1.0 404 Not Found".into()),
        }
    }

    #[test]
    fn readiness_follows_health() {
        assert_eq!(readiness(&status(true, None)), Readiness::Ready);
        assert_eq!(readiness(&status(true, Some("healthy"))), Readiness::Ready);
        assert!(matches!(
            readiness(&status(true, Some("starting"))),
            Readiness::Waiting(_)
        ));
        match readiness(&status(true, Some("unhealthy"))) {
            Readiness::Failed(why) => assert!(why.contains("404 Not Found"), "{why}"),
            other => panic!("expected failure, got {other:?}"),
        }
        match readiness(&status(false, None)) {
            Readiness::Failed(why) => assert_eq!(why, "container exited with code 3"),
            other => panic!("expected failure, got {other:?}"),
        }
    }
}
