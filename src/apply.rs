//! apply: executes a [`Plan`] on the hosts, exactly as it was shown.
//!
//! Input: the plan and one connected [`Engine`] per host. Output: an
//! [`ApplyReport`] of what was done and what failed.
//!
//! Two phases. First every host is prepared in parallel (pulls, networks,
//! volumes, removals — removals first free ports and names); a host that
//! fails here is left out of the rollouts, and the other hosts go on. Then
//! each service is rolled out across hosts in batches of
//! `update_config.parallelism`, services in `depends_on` order: each new
//! container must run, report healthy, pass the `x-berth.validate` checks and
//! stay healthy for `monitor` before the next batch starts. The container it
//! replaces is kept, stopped and renamed `<name>.berth-old`, until the whole
//! service has rolled out, so a rollback needs no pull. On a failure,
//! `failure_action` decides: `rollback` (default) puts every replaced
//! container of the service back, `pause` stops the rollout where it is,
//! `continue` goes on; batches not yet started are never touched. The
//! failed new container is kept, stopped, as `<name>.berth-failed` so its
//! logs can be read and the next plan can say this release failed before.
//!
//! Every step says its end state and may be re-run after a crash: the next
//! plan sees the leftovers (`.berth-old`, `.berth-new`, `.berth-failed`) and
//! finishes the job.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tracing::Instrument as _;

use crate::hosts::labels;
use crate::hosts::observed::ContainerStatus;
use crate::hosts::Engine;
use crate::placement::canonical_json;
use crate::plan::{Action, Change, HostPlan, Plan, FAILED_SUFFIX, NEW_SUFFIX, RETIRED_SUFFIX};
use crate::spec::secret_paths;
use crate::spec::{FailureAction, UpdateConfig, UpdateOrder, ValidateCheck};

/// How one service rolls out: from its Compose `deploy` and `x-berth`.
#[derive(Debug, Clone, Default)]
pub struct ServicePolicy {
    /// Depth in the stack's `depends_on` graph: lower rolls out first.
    pub depth: usize,
    pub update: UpdateConfig,
    pub rollback: UpdateConfig,
    pub validate: Vec<ValidateCheck>,
}

/// What a run knows beyond the plan.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub project: String,
    /// Labels every created container carries besides its identity (commit,
    /// origin, runner...), so `docker inspect` alone tells where it came from.
    pub metadata: BTreeMap<String, String>,
    /// Longest wait for a new container to run and report healthy.
    pub health_timeout: Duration,
    /// `(stack, service)` -> how it rolls out.
    pub services: BTreeMap<(String, String), ServicePolicy>,
    /// Hosts prepared at once.
    pub parallel: usize,
    /// Decrypted secrets the plan's new containers read, by digest.
    pub secrets: std::sync::Arc<crate::secrets::Plaintexts>,
    /// Host -> its `secrets_dir`.
    pub secrets_dirs: BTreeMap<String, String>,
    /// Remove secret files no container uses any more, after the rollouts
    /// (the project has or had secrets).
    pub prune_secrets: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub hosts: Vec<HostReport>,
    /// Services whose rollout failed, with what was done about it.
    pub rollouts: Vec<RolloutReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub steps: Vec<StepReport>,
    pub seconds: f64,
    /// The first error on this host, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// `pull`, `network`, `volume`, `create`, `replace`, `remove`, `rollback`.
    pub step: String,
    pub target: String,
    pub ok: bool,
    pub seconds: f64,
    /// Of `seconds`, the time spent waiting on gates (health, validation,
    /// monitor): the rest is berth's own overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub stack: String,
    pub service: String,
    /// `rolled_back`, `paused`, `continued`.
    pub outcome: String,
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
            .filter(|s| s.ok && matches!(s.step.as_str(), "create" | "replace" | "remove"))
            .count()
    }
}

/// Stack, `depends_on` depth, service: the order services roll out in.
type RolloutKey = (String, usize, String);

/// Applies the plan: hosts prepared in parallel, then services rolled out
/// across hosts in batches.
pub async fn apply(
    plan: &Plan,
    engines: &BTreeMap<String, Box<dyn Engine>>,
    ctx: &ApplyContext,
) -> ApplyReport {
    let prepared = plan.hosts.iter().filter_map(|hp| {
        let engine = engines.get(&hp.host)?;
        let span = tracing::info_span!("prepare", host = %hp.host);
        Some(prepare_host(engine.as_ref(), hp, ctx).instrument(span))
    });
    let mut hosts: BTreeMap<String, HostReport> = stream::iter(prepared)
        .buffer_unordered(ctx.parallel.max(1))
        .map(|r| (r.host.clone(), r))
        .collect()
        .await;

    // Services in stack, depends_on depth, name order; members host by host.
    let mut services: BTreeMap<RolloutKey, Vec<(&str, &Change)>> = BTreeMap::new();
    for hp in &plan.hosts {
        if hosts.get(&hp.host).is_none_or(|r| r.error.is_some()) {
            continue;
        }
        for c in hp.changes.iter().filter(|c| c.action != Action::Remove) {
            let depth = ctx
                .services
                .get(&(c.slot.stack.clone(), c.slot.service.clone()))
                .map(|p| p.depth)
                .unwrap_or(0);
            services
                .entry((c.slot.stack.clone(), depth, c.slot.service.clone()))
                .or_default()
                .push((hp.host.as_str(), c));
        }
    }

    // Interleave hosts inside each service (1st replica of every host, then
    // the 2nd...), so a batch never takes all of one host's replicas first.
    for members in services.values_mut() {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ranked: Vec<(usize, (&str, &Change))> = members
            .iter()
            .map(|m| {
                let n = seen.entry(m.0).or_default();
                *n += 1;
                (*n, *m)
            })
            .collect();
        ranked.sort_by(|a, b| (a.0, a.1 .0).cmp(&(b.0, b.1 .0)));
        *members = ranked.into_iter().map(|(_, m)| m).collect();
    }

    let mut rollouts = Vec::new();
    let mut halted_stacks: BTreeSet<String> = BTreeSet::new();
    for ((stack, _, service), members) in services {
        if halted_stacks.contains(&stack) {
            for (host, c) in members {
                if let Some(r) = hosts.get_mut(host) {
                    r.error.get_or_insert_with(|| {
                        format!(
                            "`{}` not rolled out: an earlier service of stack `{stack}` failed",
                            c.name
                        )
                    });
                }
            }
            continue;
        }
        let policy = ctx
            .services
            .get(&(stack.clone(), service.clone()))
            .cloned()
            .unwrap_or_default();
        let span = tracing::info_span!("rollout", service = %format!("{stack}/{service}"));
        if let Some(report) = roll_out(&members, &policy, engines, ctx, &mut hosts)
            .instrument(span)
            .await
        {
            if report.outcome != "continued" {
                halted_stacks.insert(stack.clone());
            }
            rollouts.push(report);
        }
    }

    if ctx.prune_secrets {
        let pruned = plan.hosts.iter().filter_map(|hp| {
            let engine = engines.get(&hp.host)?;
            hosts.get(&hp.host)?;
            Some(async move { (hp.host.clone(), prune_secrets(engine.as_ref(), ctx).await) })
        });
        for (host, result) in join_all(pruned).await {
            if let (Err(e), Some(r)) = (result, hosts.get_mut(&host)) {
                tracing::warn!(%host, "{e:#}");
                r.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    ApplyReport {
        hosts: hosts.into_values().collect(),
        rollouts,
    }
}

/// Writes the secret files the host's new containers read, before any
/// container changes: each version in its own directory, so the running
/// containers keep reading theirs.
async fn deliver_secrets(
    engine: &dyn Engine,
    hp: &HostPlan,
    ctx: &ApplyContext,
    report: &mut HostReport,
) -> anyhow::Result<()> {
    let secrets_dir = ctx
        .secrets_dirs
        .get(&hp.host)
        .map(String::as_str)
        .unwrap_or(secret_paths::HOST_DIR);
    let mut files: Vec<crate::hosts::secret_files::SecretFile<'_>> = Vec::new();
    for c in hp.changes.iter().filter(|c| c.action != Action::Remove) {
        let Some(desired) = &c.desired else { continue };
        for (name, file) in &desired.spec.secrets {
            let path = secret_paths::host_path(
                secrets_dir,
                &ctx.project,
                &c.slot.stack,
                &c.slot.service,
                name,
                file,
            );
            if files.iter().any(|f| f.path == path) {
                continue;
            }
            let content = ctx.secrets.get(&file.digest).ok_or_else(|| {
                anyhow!(
                    "secret `{name}` of `{}/{}` was not decrypted before apply",
                    c.slot.stack,
                    c.slot.service
                )
            })?;
            files.push(crate::hosts::secret_files::SecretFile {
                path,
                uid: file.uid.clone(),
                gid: file.gid.clone(),
                mode: file.mode,
                content,
            });
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let what = format!("{} file(s) under {secrets_dir}", files.len());
    step(
        report,
        "secrets",
        &what,
        engine.write_secrets(secrets_dir, &files),
    )
    .await
}

/// Removes the secret versions no container of the project uses any more
/// (kept `.berth-failed` containers keep theirs).
async fn prune_secrets(engine: &dyn Engine, ctx: &ApplyContext) -> anyhow::Result<()> {
    let secrets_dir = ctx
        .secrets_dirs
        .get(engine.host())
        .map(String::as_str)
        .unwrap_or(secret_paths::HOST_DIR);
    let observed = engine.observe(&ctx.project).await?;
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for c in &observed.containers {
        let used = (|| {
            let spec: crate::spec::ContainerSpec =
                serde_json::from_str(c.labels.get(labels::SPEC)?).ok()?;
            Some(secret_paths::dirs_in_use(
                c.labels.get(labels::STACK)?,
                c.labels.get(labels::SERVICE)?,
                &spec,
            ))
        })();
        match used {
            Some(dirs) => keep.extend(dirs),
            // Cannot tell what it reads: removing anything could stop it
            // from starting again.
            None => {
                tracing::warn!(
                    host = engine.host(),
                    "not removing unused secrets: container `{}` has no readable berth spec label",
                    c.name
                );
                return Ok(());
            }
        }
    }
    let project_dir = format!("{}/{}", secrets_dir.trim_end_matches('/'), ctx.project);
    engine.prune_secrets(&project_dir, &keep).await
}

/// Pulls, networks, volumes and removals on one host. Stops at the first
/// failure: the host then takes no part in the rollouts.
async fn prepare_host(engine: &dyn Engine, hp: &HostPlan, ctx: &ApplyContext) -> HostReport {
    let started = Instant::now();
    let mut report = HostReport {
        host: hp.host.clone(),
        steps: Vec::new(),
        seconds: 0.0,
        error: None,
    };
    let result: anyhow::Result<()> = async {
        for image in &hp.pulls {
            let span = tracing::info_span!("pull", %image);
            step(
                &mut report,
                "pull",
                image,
                engine.pull(image).instrument(span),
            )
            .await?;
        }
        let labels = BTreeMap::from([(labels::PROJECT.to_string(), ctx.project.clone())]);
        for net in &hp.networks {
            step(
                &mut report,
                "network",
                &net.name,
                engine.create_network(net, &labels),
            )
            .await?;
        }
        for vol in &hp.volumes {
            step(
                &mut report,
                "volume",
                &vol.name,
                engine.create_volume(vol, &labels),
            )
            .await?;
        }
        deliver_secrets(engine, hp, ctx, &mut report).await?;
        for c in hp.changes.iter().filter(|c| c.action == Action::Remove) {
            let Some(current) = &c.current else { continue };
            let fut = async {
                engine.stop_container(&current.id, None).await?;
                engine.remove_container(&current.id).await
            };
            step(&mut report, "remove", &c.name, fut).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(host = %hp.host, "{e:#}");
        report.error = Some(format!("{e:#}"));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn step<F>(report: &mut HostReport, what: &str, target: &str, fut: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let result = fut.await;
    record(report, what, target, started, result.as_ref().err());
    result
}

fn record(
    report: &mut HostReport,
    what: &str,
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
        step: what.to_string(),
        target: target.to_string(),
        ok: err.is_none(),
        seconds,
        waited_seconds: None,
        detail: err.map(|e| format!("{e:#}")),
    });
}

/// A member of a rollout whose new container passed its gates; the old one
/// (if any) waits, stopped and renamed, until the service is done.
struct Started<'a> {
    host: &'a str,
    /// Time spent waiting on the gates.
    waited: Duration,
    change: &'a Change,
    new_id: String,
    old_id: Option<String>,
    old_was_running: bool,
}

/// Rolls one service out over its members in batches. Returns a report when
/// something failed.
async fn roll_out(
    members: &[(&str, &Change)],
    policy: &ServicePolicy,
    engines: &BTreeMap<String, Box<dyn Engine>>,
    ctx: &ApplyContext,
    hosts: &mut BTreeMap<String, HostReport>,
) -> Option<RolloutReport> {
    let first = members.first()?.1;
    let (stack, service) = (first.slot.stack.clone(), first.slot.service.clone());
    let batch = match policy.update.parallelism {
        0 => members.len().max(1),
        n => n as usize,
    };
    let allowed_failures =
        (policy.update.max_failure_ratio * members.len() as f64).floor() as usize;
    let mut done: Vec<Started> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut outcome = None;

    for (i, chunk) in members.chunks(batch).enumerate() {
        if i > 0 && !policy.update.delay.is_zero() {
            tokio::time::sleep(policy.update.delay).await;
        }
        tracing::info!(
            "rolling out `{stack}/{service}`: batch {} of {} ({})",
            i + 1,
            members.len().div_ceil(batch),
            chunk
                .iter()
                .map(|(h, c)| format!("{}@{h}", c.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let results = join_all(chunk.iter().map(|(host, c)| async move {
            let started = Instant::now();
            let engine = engines
                .get(*host)
                .ok_or_else(|| anyhow!("no connection to host `{host}`"));
            let result = match engine {
                Ok(engine) => start_member(engine.as_ref(), host, c, policy, ctx).await,
                Err(e) => Err(e),
            };
            (*host, *c, started, result)
        }))
        .await;
        for (host, c, started, result) in results {
            let what = if c.action == Action::Create {
                "create"
            } else {
                "replace"
            };
            let report = hosts.get_mut(host);
            match result {
                Ok(s) => {
                    if let Some(r) = report {
                        record(r, what, &c.name, started, None);
                        if let Some(last) = r.steps.last_mut() {
                            last.waited_seconds = Some(s.waited.as_secs_f64());
                        }
                    }
                    done.push(s);
                }
                Err(e) => {
                    let e = e.context(format!(
                        "host `{host}`: {what} of `{}` ({stack}/{service} replica {}) failed",
                        c.name, c.slot.replica
                    ));
                    if let Some(r) = report {
                        record(r, what, &c.name, started, Some(&e));
                        r.error.get_or_insert_with(|| format!("{e:#}"));
                    }
                    failures.push(format!("{e:#}"));
                }
            }
        }
        if failures.len() > allowed_failures {
            outcome = Some(policy.update.failure_action);
            if policy.update.failure_action != FailureAction::Continue {
                break;
            }
        }
    }

    match outcome {
        Some(FailureAction::Rollback) => {
            let rb_batch = match policy.rollback.parallelism {
                0 => done.len().max(1),
                n => n as usize,
            };
            tracing::warn!(
                "rolling back `{stack}/{service}`: {} replaced container(s)",
                done.len()
            );
            for chunk in done.chunks(rb_batch) {
                let results = join_all(chunk.iter().map(|s| async move {
                    let started = Instant::now();
                    let r = match engines.get(s.host) {
                        Some(engine) => undo(engine.as_ref(), s).await,
                        None => Err(anyhow!("no connection to host `{}`", s.host)),
                    };
                    (s, started, r)
                }))
                .await;
                for (s, started, r) in results {
                    if let Some(report) = hosts.get_mut(s.host) {
                        record(
                            report,
                            "rollback",
                            &s.change.name,
                            started,
                            r.as_ref().err(),
                        );
                        report.error.get_or_insert_with(|| {
                            format!(
                                "`{}` rolled back: another replica of `{stack}/{service}` failed",
                                s.change.name
                            )
                        });
                    }
                }
            }
        }
        _ => {
            // Success, pause or continue: what passed stays; its old containers go.
            join_all(done.iter().map(|s| async move {
                if let (Some(engine), Some(old)) = (engines.get(s.host), &s.old_id) {
                    if let Err(e) = engine.remove_container(old).await {
                        tracing::warn!(host = %s.host, "could not remove the old `{}`: {e:#}", s.change.name);
                    }
                }
            }))
            .await;
        }
    }
    let outcome = outcome?;
    Some(RolloutReport {
        stack,
        service,
        outcome: match outcome {
            FailureAction::Rollback => "rolled_back",
            FailureAction::Pause => "paused",
            FailureAction::Continue => "continued",
        }
        .to_string(),
        failures,
    })
}

/// Brings one slot to its new container and gates it. On failure the slot
/// is put back as it was (the old container serving again) and the failed
/// container is kept, stopped, as `<name>.berth-failed`.
async fn start_member<'a>(
    engine: &dyn Engine,
    host: &'a str,
    c: &'a Change,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<Started<'a>> {
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
    let old_running = old.is_some_and(|o| o.state == "running");
    let retired = format!("{}{RETIRED_SUFFIX}", c.name);
    let start_first = policy.update.order == UpdateOrder::StartFirst && old_running;

    if let Some(failed) = &c.failed_before {
        // A new attempt supersedes the record of the last failed one.
        engine.remove_container(failed).await?;
    }
    let mut waited = Duration::ZERO;
    let new_id = if start_first {
        // New beside old, under a temporary name; old keeps serving until the new one passes.
        let temp = format!("{}{NEW_SUFFIX}", c.name);
        let id = engine
            .create_container(&temp, &desired.spec, &labels)
            .await?;
        match gate(engine, &id, policy, ctx).await {
            Ok(w) => waited = w,
            Err(e) => {
                keep_failed(engine, &id, &c.name).await;
                return Err(e);
            }
        }
        if let Some(old) = old {
            let grace = old_grace(c);
            engine.stop_container(&old.id, grace).await?;
            engine.rename_container(&old.id, &retired).await?;
        }
        engine.rename_container(&id, &c.name).await?;
        id
    } else {
        if let Some(old) = old {
            engine.stop_container(&old.id, old_grace(c)).await?;
            engine.rename_container(&old.id, &retired).await?;
        }
        let created = engine
            .create_container(&c.name, &desired.spec, &labels)
            .await;
        let gated = match &created {
            Ok(id) => gate(engine, id, policy, ctx).await,
            Err(_) => Ok(Duration::ZERO),
        };
        let failure = match (&created, gated) {
            (Err(e), _) => Some(anyhow!("{e:#}")),
            (Ok(_), Err(e)) => Some(e),
            (Ok(_), Ok(w)) => {
                waited = w;
                None
            }
        };
        if let Some(e) = failure {
            if let Ok(id) = &created {
                keep_failed(engine, id, &c.name).await;
            }
            if let Some(old) = old {
                let restored = restore(engine, &old.id, &c.name, old_running).await;
                return Err(match restored {
                    Ok(()) => e.context(format!(
                        "rolled back: the previous container `{}` ({}) serves again",
                        c.name, old.image
                    )),
                    Err(re) => e.context(format!(
                        "rollback also failed ({re:#}); the previous container is kept as `{retired}`"
                    )),
                });
            }
            return Err(e);
        }
        created?
    };
    Ok(Started {
        host,
        waited,
        change: c,
        new_id,
        old_id: old.map(|o| o.id.clone()),
        old_was_running: old_running,
    })
}

fn old_grace(c: &Change) -> Option<u64> {
    c.desired.as_ref().and_then(|d| d.spec.stop_grace_period)
}

/// Puts a kept old container back under its name, running if it was.
async fn restore(engine: &dyn Engine, old_id: &str, name: &str, start: bool) -> anyhow::Result<()> {
    engine.rename_container(old_id, name).await?;
    if start {
        engine.start_container(old_id).await?;
    }
    Ok(())
}

/// Rolls back a member that had passed: its (healthy) new container goes,
/// the old one returns.
async fn undo(engine: &dyn Engine, s: &Started<'_>) -> anyhow::Result<()> {
    let name = &s.change.name;
    engine.stop_container(&s.new_id, Some(10)).await?;
    engine.remove_container(&s.new_id).await?;
    if let Some(old) = &s.old_id {
        restore(engine, old, name, s.old_was_running).await?;
    }
    Ok(())
}

/// Stops a container that failed its gates and keeps it as
/// `<name>.berth-failed` for its logs; best effort.
async fn keep_failed(engine: &dyn Engine, id: &str, name: &str) {
    let _ = engine.stop_container(id, Some(2)).await;
    let failed = format!("{name}{FAILED_SUFFIX}");
    if let Err(e) = engine.rename_container(id, &failed).await {
        tracing::warn!("could not keep the failed `{name}` for inspection: {e:#}");
        let _ = engine.remove_container(id).await;
    }
}

/// The gates, in order, each bounded: started and running without restarts,
/// healthy (if the image or spec has a healthcheck), every `x-berth.validate`
/// check, then still healthy after `monitor`.
async fn gate(
    engine: &dyn Engine,
    id: &str,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<Duration> {
    engine.start_container(id).await?;
    let waiting = Instant::now();
    wait_ready(engine, id, ctx.health_timeout).await?;
    for check in &policy.validate {
        run_check(engine, id, check)
            .await
            .with_context(|| format!("validation failed: {}", describe(check)))?;
    }
    if !policy.update.monitor.is_zero() {
        let until = Instant::now() + policy.update.monitor;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(500).min(until - Instant::now())).await;
            let status = engine.status(id).await?;
            if let Readiness::Failed(why) = readiness(&status) {
                bail!(
                    "during the {}s monitor period: {why}",
                    policy.update.monitor.as_secs()
                );
            }
        }
    }
    Ok(waiting.elapsed())
}

fn describe(check: &ValidateCheck) -> String {
    match check {
        ValidateCheck::Exec { command, .. } => format!("exec `{}`", command.join(" ")),
        ValidateCheck::Http { url, status, .. } => format!("http GET {url} (want {status})"),
        ValidateCheck::Tcp { port, .. } => format!("tcp port {port}"),
    }
}

/// One validation check, retried with a short backoff until its timeout.
async fn run_check(engine: &dyn Engine, id: &str, check: &ValidateCheck) -> anyhow::Result<()> {
    let timeout = match check {
        ValidateCheck::Exec { timeout, .. }
        | ValidateCheck::Http { timeout, .. }
        | ValidateCheck::Tcp { timeout, .. } => *timeout,
    };
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(200);
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let attempt = match check {
            ValidateCheck::Exec { command, .. } => {
                let (code, output) = engine.exec(id, command, left).await?;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!("exited with {code}: {}", trim_output(&output)))
                }
            }
            ValidateCheck::Http {
                url,
                status,
                body_contains,
                ..
            } => http_check(engine, url, *status, body_contains.as_deref(), left).await,
            ValidateCheck::Tcp { port, .. } => {
                let script = format!(
                    "if command -v nc >/dev/null 2>&1; then nc -z -w {s} 127.0.0.1 {port}; \
                     else timeout {s} bash -c '</dev/tcp/127.0.0.1/{port}'; fi",
                    s = left.as_secs().max(1)
                );
                let (code, output) = engine.host_exec(&script, left).await?;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "port {port} does not accept connections on the host {}",
                        trim_output(&output)
                    ))
                }
            }
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(why) if Instant::now() + pause >= deadline => bail!("{why}"),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// GET `url` from the host itself (over its SSH connection), so the check
/// sees what the host's network sees, not the runner's.
async fn http_check(
    engine: &dyn Engine,
    url: &str,
    want: u16,
    body_contains: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    if url.contains('\'') {
        return Err(format!("url `{url}` must not contain a single quote"));
    }
    let secs = timeout.as_secs().max(1);
    let script = format!(
        "if command -v curl >/dev/null 2>&1; then curl -sS --max-time {secs} -w '\\nberth-http-status %{{http_code}}' '{url}'; \
         else wget -q -S -T {secs} -O - '{url}' 2>&1; fi"
    );
    let (code, output) = engine
        .host_exec(&script, timeout + Duration::from_secs(5))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let (body, status) = match output.rsplit_once("berth-http-status ") {
        Some((body, status)) => (body.to_string(), status.trim().parse::<u16>().unwrap_or(0)),
        None => {
            // wget -S prints the status line in its headers.
            let status = output
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("HTTP/")
                        .and_then(|r| r.split_whitespace().nth(1))
                })
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (output.clone(), status)
        }
    };
    if status == 0 {
        return Err(format!(
            "no HTTP answer (exit {code}): {}",
            trim_output(&output)
        ));
    }
    if status != want {
        return Err(format!(
            "status {status}, want {want}: {}",
            trim_output(&body)
        ));
    }
    if let Some(needle) = body_contains {
        if !body.contains(needle) {
            return Err(format!(
                "body does not contain `{needle}`: {}",
                trim_output(&body)
            ));
        }
    }
    Ok(())
}

fn trim_output(s: &str) -> String {
    let s = s.trim();
    let cut: String = s.chars().take(300).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Waits until the container runs and, if it has a healthcheck, is healthy.
/// Short backoff (100 ms, then 200 and 250 ms), bounded by `timeout`.
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
        // Status is one cheap call over an open connection: a tight cap keeps
        // berth's own share of each batch small (health is seen within 250 ms).
        pause = (pause * 2).min(Duration::from_millis(250));
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

    fn secret_spec(digest: &str) -> crate::spec::ContainerSpec {
        let mut spec = crate::spec::ContainerSpec {
            image: "reg/app:1".into(),
            restart: "unless-stopped".into(),
            ..Default::default()
        };
        spec.secrets.insert(
            "db".into(),
            crate::spec::SecretFileSpec {
                digest: digest.into(),
                target: "/run/secrets/db".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o400,
            },
        );
        spec
    }

    fn one_change(action: Action, spec: crate::spec::ContainerSpec, current: Option<&str>) -> Plan {
        let slot = crate::placement::Slot {
            stack: "st".into(),
            service: "app".into(),
            replica: 1,
        };
        Plan {
            format_version: crate::plan::PLAN_FORMAT_VERSION,
            project: "p".into(),
            commit: None,
            hosts: vec![HostPlan {
                host: "h".into(),
                pulls: vec![],
                networks: vec![],
                volumes: vec![],
                changes: vec![Change {
                    action,
                    name: slot.container_name(),
                    slot,
                    current: current.map(|id| crate::plan::CurrentContainer {
                        id: id.into(),
                        image: "reg/app:1".into(),
                        state: "running".into(),
                        spec_hash: None,
                    }),
                    desired: Some(crate::plan::DesiredRef {
                        spec_hash: crate::placement::spec_hash(&spec),
                        spec,
                    }),
                    reason: "test".into(),
                    drift: false,
                    fields: vec![],
                    failed_before: None,
                }],
            }],
            unreachable: vec![],
        }
    }

    fn context(plaintexts: &[(&str, &str)]) -> ApplyContext {
        ApplyContext {
            project: "p".into(),
            metadata: BTreeMap::new(),
            health_timeout: Duration::from_secs(2),
            services: BTreeMap::new(),
            parallel: 1,
            secrets: std::sync::Arc::new(crate::secrets::Plaintexts::from_map(
                plaintexts
                    .iter()
                    .map(|(d, v)| {
                        (
                            d.to_string(),
                            crate::openpgp::SecretBytes::new(v.as_bytes().to_vec()),
                        )
                    })
                    .collect(),
            )),
            secrets_dirs: BTreeMap::from([("h".to_string(), "/sec".to_string())]),
            prune_secrets: true,
        }
    }

    /// An in-memory host `h` with the test image, and the engine map apply takes.
    fn one_host() -> (
        crate::hosts::memory::MemoryEngine,
        BTreeMap<String, Box<dyn Engine>>,
    ) {
        let engine = crate::hosts::memory::MemoryEngine::new("h");
        engine.add_image("reg/app:1");
        let engines =
            BTreeMap::from([("h".to_string(), Box::new(engine.clone()) as Box<dyn Engine>)]);
        (engine, engines)
    }

    #[tokio::test]
    async fn secrets_are_delivered_before_their_readers_and_old_versions_pruned() {
        let (engine, engines) = one_host();

        let first = one_change(Action::Create, secret_spec("sha256:aaaaaaaaaaaa11"), None);
        let report = apply(
            &first,
            &engines,
            &context(&[("sha256:aaaaaaaaaaaa11", "one")]),
        )
        .await;
        assert!(report.failed_hosts().is_empty(), "{report:?}");
        let v1 = "/sec/p/st/app/aaaaaaaaaaaa/db";
        let log = engine.mutations();
        let wrote = log.iter().position(|m| m == &format!("write_secret {v1}"));
        let created = log.iter().position(|m| m == "create st-app-1");
        assert!(wrote.is_some() && wrote < created, "{log:?}");
        assert_eq!(
            engine.secret_files().get(v1),
            Some(&(crate::secrets::digest(b"one"), "0:0".to_string(), 0o400))
        );

        // A new version replaces the reader; the old version goes once no
        // container uses it.
        let id = engine
            .container("st-app-1")
            .map(|c| c.id)
            .unwrap_or_default();
        let second = one_change(
            Action::Replace,
            secret_spec("sha256:bbbbbbbbbbbb22"),
            Some(&id),
        );
        let report = apply(
            &second,
            &engines,
            &context(&[("sha256:bbbbbbbbbbbb22", "two")]),
        )
        .await;
        assert!(report.failed_hosts().is_empty(), "{report:?}");
        let files: Vec<String> = engine.secret_files().into_keys().collect();
        assert_eq!(files, vec!["/sec/p/st/app/bbbbbbbbbbbb/db".to_string()]);
    }

    #[tokio::test]
    async fn a_secret_not_decrypted_stops_the_host_before_any_container_change() {
        let (engine, engines) = one_host();
        let plan = one_change(Action::Create, secret_spec("sha256:cccccccccccc"), None);
        let report = apply(&plan, &engines, &context(&[])).await;
        assert_eq!(report.failed_hosts().len(), 1);
        assert!(engine.containers().is_empty());
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
