//! The rollout executor: each service in its turn (see `schedule`), its
//! members in batches; every new container gated (see `gate`), and on a
//! failure what `failure_action` says (see `policy`): put back, paused or
//! continued. The old container waits, stopped and renamed, until the whole
//! service is through, so a rollback needs no pull.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use tracing::Instrument as _;

use super::context::{ApplyContext, ServicePolicy};
use super::outcome::{record, ApplyReport, HostReport, RolloutReport, Step};
use super::policy::{after_batch, allowed_failures, batch_size, halts_stack, Next};
use super::{gate, prepare, schedule};
use crate::hosts::{labels, Engine};
use crate::placement::canonical_json;
use crate::plan::{Action, Change, Plan, FAILED_SUFFIX, NEW_SUFFIX, RETIRED_SUFFIX};
use crate::spec::{FailureAction, UpdateOrder};

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
        Some(prepare::prepare_host(engine.as_ref(), hp, ctx).instrument(span))
    });
    let mut hosts: BTreeMap<String, HostReport> = stream::iter(prepared)
        .buffer_unordered(ctx.parallel.max(1))
        .map(|r| (r.host.clone(), r))
        .collect()
        .await;

    let order = schedule::rollouts(
        plan,
        |host| hosts.get(host).is_some_and(|r| r.error.is_none()),
        |stack, service| {
            ctx.services
                .get(&(stack.to_string(), service.to_string()))
                .map_or(0, |p| p.depth)
        },
    );
    let mut rollouts = Vec::new();
    let mut halted_stacks: BTreeSet<String> = BTreeSet::new();
    for schedule::ServiceRollout {
        stack,
        service,
        members,
    } in order
    {
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
        if let Some((outcome, report)) = roll_out(&members, &policy, engines, ctx, &mut hosts)
            .instrument(span)
            .await
        {
            if halts_stack(outcome) {
                halted_stacks.insert(stack.clone());
            }
            rollouts.push(report);
        }
    }

    if ctx.prune_secrets {
        let pruned = plan.hosts.iter().filter_map(|hp| {
            let engine = engines.get(&hp.host)?;
            hosts.get(&hp.host)?;
            Some(async move {
                (
                    hp.host.clone(),
                    prepare::prune_secrets(engine.as_ref(), ctx).await,
                )
            })
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
pub(super) async fn roll_out(
    members: &[(&str, &Change)],
    policy: &ServicePolicy,
    engines: &BTreeMap<String, Box<dyn Engine>>,
    ctx: &ApplyContext,
    hosts: &mut BTreeMap<String, HostReport>,
) -> Option<(FailureAction, RolloutReport)> {
    let first = members.first()?.1;
    let (stack, service) = (first.slot.stack.clone(), first.slot.service.clone());
    let batch = batch_size(policy.update.parallelism, members.len());
    let allowed_failures = allowed_failures(&policy.update, members.len());
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
                Step::Create
            } else {
                Step::Replace
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
        if let Next::Failed { action, stop } =
            after_batch(&policy.update, failures.len(), allowed_failures)
        {
            outcome = Some(action);
            if stop {
                break;
            }
        }
    }

    match outcome {
        Some(FailureAction::Rollback) => {
            let rb_batch = batch_size(policy.rollback.parallelism, done.len());
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
                            Step::Rollback,
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
    let report = RolloutReport {
        stack,
        service,
        outcome: outcome.into(),
        failures,
    };
    Some((outcome, report))
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
    let old_running = old.is_some_and(|o| o.state == crate::observed::ContainerState::Running);
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
        match gate::gate(engine, &id, policy, ctx).await {
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
            Ok(id) => gate::gate(engine, id, policy, ctx).await,
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
