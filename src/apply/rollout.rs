//! The rollout executor: services roll out as the schedule says (each as
//! soon as what it `depends_on` is there, up to `settings.rollout_parallel`
//! at once, stacks independent), each one's members in batches; every new
//! container gated (see `gate`), and on a failure what `failure_action`
//! says (see `policy`): put back, paused or continued. The old container
//! waits, stopped and renamed, until the whole service is through, so a
//! rollback needs no pull. Container operations on a host go through its
//! bound (see `host`), whichever service they belong to.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures::future::join_all;
use futures::stream::{self, FuturesUnordered, StreamExt};
use tracing::Instrument as _;

use super::context::{ApplyContext, ServicePolicy};
use super::host::{Host, Hosts};
use super::outcome::{record, ApplyReport, HostOutcome, HostReport, RolloutReport, Step};
use super::policy::{
    after_batch, allowed_failures, batch_size, classify, host_outcome, Fault, Next, RESTORE_RETRY,
    RESTORE_WINDOW,
};
use super::publish::{publish, unpublish};
use super::schedule::{self, Schedule};
use super::{gate, prepare, reload};
use crate::hosts::{is_lost, labels};
use crate::placement::canonical_json;
use crate::plan::{Action, Change, Plan, FAILED_SUFFIX, NEW_SUFFIX, RETIRED_SUFFIX};
use crate::spec::{FailureAction, UpdateOrder};

/// Applies the plan: hosts prepared in parallel, then every service rolled
/// out across its hosts as soon as the schedule lets it.
pub async fn apply(
    plan: &Plan,
    engines: &BTreeMap<String, Box<dyn crate::hosts::Engine>>,
    ctx: &ApplyContext,
) -> ApplyReport {
    let on = Hosts::new(engines, ctx.host_operations);
    if let Some(why) = ctx.stop.requested() {
        return stopped_before_start(plan, why);
    }
    let prepared = plan.hosts.iter().filter_map(|hp| {
        let host = on.get(&hp.host)?;
        let span = tracing::info_span!("prepare", host = %hp.host);
        Some(prepare::prepare_host(host, hp, ctx, &on).instrument(span))
    });
    let mut hosts: BTreeMap<String, HostReport> = stream::iter(prepared)
        .buffer_unordered(ctx.parallel.max(1))
        .map(|r| (r.host.clone(), r))
        .collect()
        .await;
    for r in hosts.values() {
        if r.outcome == HostOutcome::Unreachable {
            on.lose(&r.host);
        }
    }

    let order = schedule::rollouts(
        plan,
        |host| hosts.get(host).is_some_and(|r| r.error.is_none()),
        |stack, service| {
            ctx.services
                .get(&(stack.to_string(), service.to_string()))
                .map(|p| p.depends_on.clone())
                .unwrap_or_default()
        },
    );
    let mut schedule = Schedule::new(&order, ctx.rollout_parallel);
    let mut rollouts = Vec::new();
    // A rollout says here when its first batch passed (`service_started`).
    let (first_batch, mut first_batches) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut running = FuturesUnordered::new();
    // Whether a stop request left work undone (a batch or a service not
    // started): only then did it change how the run ends. A signal that
    // comes once everything has started its last batch changes nothing.
    let mut cut_short = false;
    loop {
        // Once asked to stop, no service starts; those running stop
        // after their batch in flight.
        let ready = match ctx.stop.requested() {
            None => schedule.ready(),
            Some(_) => Vec::new(),
        };
        for i in ready {
            let r = &order[i];
            let policy = ctx
                .services
                .get(&(r.stack.clone(), r.service.clone()))
                .cloned()
                .unwrap_or_default();
            let span =
                tracing::info_span!("rollout", service = %format!("{}/{}", r.stack, r.service));
            let (first_batch, on) = (first_batch.clone(), &on);
            running.push(async move {
                let passed = move || {
                    // The receiver lives as long as this loop.
                    let _ = first_batch.send(i);
                };
                let rolled = roll_out(&r.members, &policy, on, ctx, passed)
                    .instrument(span)
                    .await;
                (i, rolled)
            });
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some(i) = first_batches.recv() => schedule.started(i),
            Some((i, rolled)) = running.next() => {
                let Rolled { journal, failed, stopped } = rolled;
                cut_short |= stopped;
                merge(&mut hosts, journal);
                let failure = failed.as_ref().map(|(action, _)| *action);
                rollouts.extend(failed.map(|(_, report)| report));
                for c in schedule.finished(i, failure) {
                    let cause = &order[c.because];
                    for (host, change) in &order[c.rollout].members {
                        if let Some(r) = hosts.get_mut(*host) {
                            r.error.get_or_insert_with(|| {
                                format!(
                                    "`{}` not rolled out: `{}/{}` failed before it",
                                    change.name, cause.stack, cause.service
                                )
                            });
                        }
                    }
                }
            }
            else => break,
        }
    }
    if let Some(why) = ctx.stop.requested() {
        for (i, r) in order.iter().enumerate() {
            if schedule.state(i) != schedule::State::Waiting {
                continue;
            }
            cut_short = true;
            for (host, change) in &r.members {
                if let Some(report) = hosts.get_mut(*host) {
                    report
                        .error
                        .get_or_insert_with(|| not_started(&change.name, why));
                }
            }
        }
    }
    // In the order services are listed, whichever finished first.
    rollouts.sort_by(|a: &RolloutReport, b| (&a.stack, &a.service).cmp(&(&b.stack, &b.service)));

    if ctx.prune_secrets {
        let pruned = plan.hosts.iter().filter_map(|hp| {
            let engine = engines.get(&hp.host)?;
            hosts.get(&hp.host)?;
            if on.is_lost(&hp.host) {
                return None;
            }
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

    if ctx.prune_configs {
        let pruned = plan.hosts.iter().filter_map(|hp| {
            let engine = engines.get(&hp.host)?;
            hosts.get(&hp.host)?;
            if on.is_lost(&hp.host) {
                return None;
            }
            Some(async move { (hp.host.clone(), reload::prune(engine.as_ref(), ctx).await) })
        });
        for (host, result) in join_all(pruned).await {
            if let (Err(e), Some(r)) = (result, hosts.get_mut(&host)) {
                tracing::warn!(%host, "{e:#}");
                r.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    for (host, step) in on.take_discovery() {
        if let Some(r) = hosts.get_mut(&host) {
            r.steps.push(step);
        }
    }
    let lost = on.lost();
    for r in hosts.values_mut() {
        let put_back = r.steps.iter().any(|s| {
            (s.ok && matches!(s.step, Step::Rollback | Step::ReloadRollback))
                || (!s.ok && matches!(s.step, Step::Replace | Step::Create | Step::Reload))
        });
        let changed = r.steps.iter().any(|s| {
            s.ok && matches!(
                s.step,
                Step::Create | Step::Replace | Step::Remove | Step::Reload
            )
        });
        r.outcome = host_outcome(lost.contains(&r.host), put_back, changed, r.error.is_some());
    }
    ApplyReport {
        hosts: hosts.into_values().collect(),
        rollouts,
        stopped: ctx
            .stop
            .requested()
            .filter(|_| cut_short)
            .map(str::to_string),
    }
}

/// Why a change was not made: the run was asked to stop first.
fn not_started(name: &str, why: &str) -> String {
    format!("`{name}` not rolled out: berth was stopped ({why}) before it started")
}

/// The report of a run asked to stop before it changed anything.
fn stopped_before_start(plan: &Plan, why: &str) -> ApplyReport {
    let hosts = plan
        .hosts
        .iter()
        .map(|hp| HostReport {
            host: hp.host.clone(),
            steps: Vec::new(),
            seconds: 0.0,
            error: Some(format!(
                "nothing changed: berth was stopped ({why}) before it started"
            )),
            outcome: HostOutcome::Untouched,
        })
        .collect();
    ApplyReport {
        hosts,
        rollouts: Vec::new(),
        stopped: Some(why.to_string()),
    }
}

/// What one service's rollout did: the steps it took on each host (merged
/// into the host reports when it ends), and what was done about a failure.
pub(super) struct Rolled {
    journal: BTreeMap<String, HostReport>,
    failed: Option<(FailureAction, RolloutReport)>,
    /// A stop request kept a batch of it from starting.
    stopped: bool,
}

/// The journal's report for `host`, started empty.
fn journal_of<'j>(journal: &'j mut BTreeMap<String, HostReport>, host: &str) -> &'j mut HostReport {
    journal
        .entry(host.to_string())
        .or_insert_with(|| HostReport {
            host: host.to_string(),
            steps: Vec::new(),
            seconds: 0.0,
            error: None,
            outcome: Default::default(),
        })
}

/// Adds a rollout's steps to the host reports; a host keeps its first error.
fn merge(hosts: &mut BTreeMap<String, HostReport>, journal: BTreeMap<String, HostReport>) {
    for (host, j) in journal {
        if let Some(r) = hosts.get_mut(&host) {
            r.steps.extend(j.steps);
            r.seconds += j.seconds;
            if r.error.is_none() {
                r.error = j.error;
            }
        }
    }
}

/// A member of a rollout whose new container passed its gates; the old one
/// (if any) waits, stopped and renamed, until the service is done.
struct Started<'a> {
    host: &'a str,
    /// Time spent waiting on the gates.
    waited: Duration,
    /// Time the engine took to stop the old container and start the new
    /// one (the calls themselves; see [`StepReport::engine_seconds`]).
    engine: Duration,
    change: &'a Change,
    new_id: String,
    old_id: Option<String>,
    old_was_running: bool,
    /// A reload in place (no new container): how to put the old config back.
    undo_reload: Option<reload::Undo>,
}

/// Rolls one service out over its members in batches (see
/// [`schedule::batch_len`]); `first_batch` is called once the first batch
/// passed. Its steps go to the returned journal.
pub(super) async fn roll_out(
    members: &[(&str, &Change)],
    policy: &ServicePolicy,
    on: &Hosts<'_>,
    ctx: &ApplyContext,
    first_batch: impl FnOnce(),
) -> Rolled {
    let mut journal: BTreeMap<String, HostReport> = BTreeMap::new();
    let Some((_, first)) = members.first() else {
        return Rolled {
            journal,
            failed: None,
            stopped: false,
        };
    };
    let (stack, service) = (first.slot.stack.clone(), first.slot.service.clone());
    let batch = schedule::batch_len(members, policy.update.parallelism);
    let allowed_failures = allowed_failures(&policy.update, members.len());
    let mut done: Vec<Started> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut outcome = None;
    let mut first_batch = Some(first_batch);
    let mut stopped = false;
    let chunks: Vec<&[(&str, &Change)]> = members.chunks(batch).collect();
    // The next batch's new containers, made while this batch rolls (see `make`).
    let mut made_ahead: Option<Vec<Option<anyhow::Result<Made<'_>>>>> = None;

    for (i, chunk) in chunks.iter().enumerate() {
        if let Some(why) = ctx.stop.requested().filter(|_| i > 0) {
            // Asked to stop: what passed stays (its old containers go
            // below), the rest is left as it is (what was made for it
            // goes below too).
            for (host, c) in members.iter().skip(i * batch) {
                if !on.is_lost(host) {
                    journal_of(&mut journal, host)
                        .error
                        .get_or_insert_with(|| not_started(&c.name, why));
                }
            }
            tracing::warn!(
                "`{stack}/{service}`: stopped before batch {} ({why})",
                i + 1
            );
            stopped = true;
            break;
        }
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
        // A host dropped from the run is left as it is: its members are
        // not started, and do not count as failures of the release (what
        // was made ahead for them stays: the host does not answer).
        let mut made = made_ahead.take().map(Vec::into_iter);
        let members_made: Vec<_> = chunk
            .iter()
            .map(|m| (m, made.as_mut().and_then(Iterator::next).flatten()))
            .filter(|((host, _), _)| !on.is_lost(host))
            .collect();
        let rolling = join_all(
            members_made
                .into_iter()
                .map(|((host, c), made)| async move {
                    let started = Instant::now();
                    let result = match on.get(host) {
                        Some(h) => {
                            let member = if c.action == Action::Reload {
                                reload::reload_member(h, c, policy, ctx).await.map(
                                    |(waited, undo)| Started {
                                        host: h.name,
                                        waited,
                                        engine: Duration::ZERO,
                                        change: c,
                                        new_id: String::new(),
                                        old_id: None,
                                        old_was_running: true,
                                        undo_reload: Some(undo),
                                    },
                                )
                            } else {
                                start_member(h, c, made, policy, ctx, on).await
                            };
                            match member {
                                Ok(s) => Ok(s),
                                Err(e) => {
                                    let lost = is_lost(&e);
                                    let answers = !lost && h.answers(&ctx.project).await;
                                    Err((classify(lost, answers), e))
                                }
                            }
                        }
                        None => Err((Fault::Host, anyhow!("no connection to host `{host}`"))),
                    };
                    (*host, *c, started, result)
                }),
        );
        let ahead = async {
            match chunks.get(i + 1) {
                Some(next) => Some(make_all(next, on, ctx).await),
                None => None,
            }
        };
        let (results, ahead) = tokio::join!(rolling, ahead);
        made_ahead = ahead;
        for (host, c, started, result) in results {
            let what = match c.action {
                Action::Create => Step::Create,
                Action::Reload => Step::Reload,
                _ => Step::Replace,
            };
            let report = journal_of(&mut journal, host);
            match result {
                Ok(s) => {
                    record(report, what, &c.name, started, None);
                    if let Some(last) = report.steps.last_mut() {
                        last.waited_seconds = Some(s.waited.as_secs_f64());
                        if !s.engine.is_zero() {
                            last.engine_seconds = Some(s.engine.as_secs_f64());
                        }
                    }
                    done.push(s);
                }
                Err((Fault::Release, e)) => {
                    reload_rollback(report, c, started, &e);
                    let e = e.context(format!(
                        "host `{host}`: {what} of `{}` ({stack}/{service} replica {}) failed",
                        c.name, c.slot.replica
                    ));
                    record(report, what, &c.name, started, Some(&e));
                    report.error.get_or_insert_with(|| format!("{e:#}"));
                    failures.push(format!("{e:#}"));
                }
                Err((Fault::Host, e)) => {
                    reload_rollback(report, c, started, &e);
                    on.lose(host);
                    let e = e.context(format!(
                        "host `{host}` stopped answering during the {what} of `{}` ({stack}/{service} replica {}); it was dropped from this run and its containers are left as they are",
                        c.name, c.slot.replica
                    ));
                    record(report, what, &c.name, started, Some(&e));
                    report.error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        match after_batch(&policy.update, failures.len(), allowed_failures) {
            Next::Proceed => {
                if let Some(signal) = first_batch.take() {
                    signal();
                }
            }
            Next::Failed { action, stop } => {
                outcome = Some(action);
                if stop {
                    break;
                }
            }
        }
    }

    // Made for a batch that will not run: never started, so they just go
    // (but on a host dropped since: the next plan removes those).
    if let Some(unused) = made_ahead {
        join_all(
            unused
                .into_iter()
                .flatten()
                .flatten()
                .map(|made| async move {
                    if on.is_lost(made.host) {
                        return;
                    }
                    if let Some(h) = on.get(made.host) {
                        discard(h, &made.id).await;
                    }
                }),
        )
        .await;
    }

    match outcome {
        Some(FailureAction::Rollback) => {
            let rb_batch = batch_size(policy.rollback.parallelism, done.len());
            tracing::warn!(
                "rolling back `{stack}/{service}`: {} replaced container(s)",
                done.len()
            );
            for chunk in done.chunks(rb_batch) {
                // A host dropped since keeps its new, validated container.
                let reachable = chunk.iter().filter(|s| !on.is_lost(s.host));
                let results = join_all(reachable.map(|s| async move {
                    let started = Instant::now();
                    let r = match on.get(s.host) {
                        Some(h) => match &s.undo_reload {
                            Some(u) => reload::undo(h, s.change, u, policy).await,
                            None => undo(h, s, policy, ctx, on).await,
                        },
                        None => Err(anyhow!("no connection to host `{}`", s.host)),
                    };
                    (s, started, r)
                }))
                .await;
                for (s, started, r) in results {
                    if r.as_ref().is_err_and(is_lost) {
                        on.lose(s.host);
                    }
                    let report = journal_of(&mut journal, s.host);
                    record(
                        report,
                        if s.undo_reload.is_some() {
                            Step::ReloadRollback
                        } else {
                            Step::Rollback
                        },
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
        _ => {
            // Success, pause or continue: what passed stays; its old containers go.
            join_all(done.iter().map(|s| async move {
                if on.is_lost(s.host) {
                    // The next run removes the leftover.
                    return;
                }
                if let (Some(h), Some(old)) = (on.get(s.host), &s.old_id) {
                    if let Err(e) = h.op(h.engine.remove_container(old)).await {
                        tracing::warn!(host = %s.host, "could not remove the old `{}`: {e:#}", s.change.name);
                    }
                }
            }))
            .await;
        }
    }
    let failed = outcome.map(|action| {
        (
            action,
            RolloutReport {
                stack,
                service,
                outcome: action.into(),
                failures,
            },
        )
    });
    Rolled {
        journal,
        failed,
        stopped,
    }
}

/// Records the put-back of a failed reload (its error carries
/// [`reload::RolledBack`]), failed when the previous config is not back.
fn reload_rollback(report: &mut HostReport, c: &Change, started: Instant, e: &anyhow::Error) {
    if let Some(back) = e.downcast_ref::<reload::RolledBack>() {
        let failed = (!back.0).then(|| anyhow!("{back}"));
        record(
            report,
            Step::ReloadRollback,
            &c.name,
            started,
            failed.as_ref(),
        );
    }
}

/// A slot's new container, created and not started (see [`make`]).
struct Made<'a> {
    host: &'a str,
    id: String,
    /// Made as `<name>.berth-new`: the old container still had the name.
    temp: bool,
}

/// Makes the new containers of a batch, each on its host (`None` for a
/// reload in place, which makes none).
async fn make_all<'a>(
    chunk: &[(&str, &Change)],
    on: &'a Hosts<'_>,
    ctx: &ApplyContext,
) -> Vec<Option<anyhow::Result<Made<'a>>>> {
    join_all(chunk.iter().map(|(host, c)| async move {
        if c.action == Action::Reload {
            return None;
        }
        Some(match on.get(host) {
            // Its members will not start (see `roll_out`).
            _ if on.is_lost(host) => Err(anyhow!("host `{host}` was dropped from this run")),
            Some(h) => make(h, c, ctx).await,
            None => Err(anyhow!("no connection to host `{host}`")),
        })
    }))
    .await
}

/// Creates the slot's new container without starting it: under the slot's
/// name when it is free, else as `<name>.berth-new` until the old one is out
/// of the way. A created container takes nothing a serving one holds (no
/// process, host port or address until it starts), so this runs while the
/// old container still serves: before its stop, or while the batch before
/// is gating, which takes `create` off the path of a rolling update. One
/// left by a killed run is a `.berth-new` leftover the next plan removes.
async fn make<'a>(host: Host<'a>, c: &Change, ctx: &ApplyContext) -> anyhow::Result<Made<'a>> {
    let engine = host.engine;
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
    if let Some(digest) = &desired.digest {
        // The engine creates from `name@digest`; the tag stays for people.
        labels.insert(labels::IMAGE.into(), desired.spec.image.clone());
        labels.insert(labels::IMAGE_DIGEST.into(), digest.clone());
    }

    if let Some(failed) = &c.failed_before {
        // A new attempt supersedes the record of the last failed one.
        host.op(engine.remove_container(failed)).await?;
    }
    let temp = c.current.is_some();
    let name = if temp {
        format!("{}{NEW_SUFFIX}", c.name)
    } else {
        c.name.clone()
    };
    let id = host
        .op(engine.create_container(&name, &desired.spec, &labels))
        .await?;
    Ok(Made {
        host: host.name,
        id,
        temp,
    })
}

/// Removes a made container that never started; best effort.
async fn discard(host: Host<'_>, id: &str) {
    if let Err(e) = host.op(host.engine.remove_container(id)).await {
        tracing::warn!(host = %host.name, "could not remove an unused new container: {e:#}");
    }
}

/// Brings one slot to its new container and gates it. On failure the slot
/// is put back as it was (the old container serving again) and the failed
/// container is kept, stopped, as `<name>.berth-failed`. `made`: its new
/// container, if it was made ahead (else it is made here).
async fn start_member<'a>(
    host: Host<'a>,
    c: &'a Change,
    made: Option<anyhow::Result<Made<'a>>>,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
    on: &Hosts<'_>,
) -> anyhow::Result<Started<'a>> {
    let engine = host.engine;
    let old = c.current.as_ref();
    let old_running = old.is_some_and(|o| o.state == crate::observed::ContainerState::Running);
    let retired = format!("{}{RETIRED_SUFFIX}", c.name);
    let start_first = policy.update.order == UpdateOrder::StartFirst && old_running;
    let making = async {
        match made {
            Some(made) => made,
            None => make(host, c, ctx).await,
        }
    };

    let mut waited = Duration::ZERO;
    let mut engine_time;
    let new_id = if start_first {
        // New beside old, under a temporary name; old keeps serving until the new one passes.
        let id = making.await?.id;
        match start_gate_publish(host, &id, c, policy, ctx, on).await {
            Ok((w, start)) => (waited, engine_time) = (w, start),
            Err(e) => {
                keep_failed(host, &id, &c.name).await;
                return Err(e);
            }
        }
        if let Some(old) = old {
            let grace = old_grace(c);
            let set_aside = host
                .op(async {
                    let stopping = Instant::now();
                    engine.stop_container(&old.id, grace).await?;
                    engine_time += stopping.elapsed();
                    engine.rename_container(&old.id, &retired).await
                })
                .await;
            if let Err(e) = set_aside {
                // The old container could not be set aside: it keeps the
                // slot (running again if it was stopped), and the new one
                // is stopped, so the slot never has two live containers.
                keep_failed(host, &id, &c.name).await;
                return Err(match restart_in_place(host, &old.id).await {
                    Ok(()) => e.context(format!(
                        "the previous container `{}` ({}) serves on",
                        c.name, old.image
                    )),
                    Err(re) => e.context(format!(
                        "restarting the previous container `{}` also failed ({re:#})",
                        c.name
                    )),
                });
            }
        }
        host.op(engine.rename_container(&id, &c.name)).await?;
        id
    } else {
        // The new container is made before the old one stops: a host that
        // cannot make it (its disk full, the engine refusing) fails here
        // with the old container untouched and serving. A stopped container
        // may not start again on a full disk, so stopping first could leave
        // the slot empty. Only a first batch waits for this: later batches
        // were made ahead, while the batch before them gated.
        let made = match making.await {
            Ok(made) => made,
            Err(e) => {
                return Err(match old.filter(|_| old_running) {
                    Some(old) => e.context(format!(
                        "the previous container `{}` ({}) serves on",
                        c.name, old.image
                    )),
                    None => e,
                })
            }
        };
        // A published old replica is retired (drained) from discovery
        // before it stops; one that cannot be serves on, as published as
        // it can be.
        if old_running {
            if let Err(e) = unpublish(on, host.name, c, policy, ctx).await {
                discard(host, &made.id).await;
                if let Err(pe) = publish(on, host.name, c, policy, ctx).await {
                    tracing::warn!("{pe:#}");
                }
                return Err(e.context(format!(
                    "the previous container `{}` was not stopped: it serves on",
                    c.name
                )));
            }
        }
        let stopped = match old {
            Some(old) => {
                host.op(async {
                    let stopping = Instant::now();
                    engine.stop_container(&old.id, old_grace(c)).await?;
                    let stopped_in = stopping.elapsed();
                    engine.rename_container(&old.id, &retired).await?;
                    Ok(stopped_in)
                })
                .await
            }
            None => Ok(Duration::ZERO),
        };
        engine_time = *stopped.as_ref().unwrap_or(&Duration::ZERO);
        if let Err(e) = stopped {
            discard(host, &made.id).await;
            // The old container still has its name: running again if it was.
            return Err(match old.filter(|_| old_running && !is_lost(&e)) {
                Some(old) => match restart_in_place(host, &old.id).await {
                    Ok(()) => {
                        if let Err(pe) = publish(on, host.name, c, policy, ctx).await {
                            tracing::warn!("{pe:#}");
                        }
                        e.context(format!(
                            "the previous container `{}` ({}) serves on",
                            c.name, old.image
                        ))
                    }
                    Err(re) => e.context(format!(
                        "restarting the previous container `{}` also failed ({re:#})",
                        c.name
                    )),
                },
                None => e,
            });
        }
        let created = if made.temp {
            match host.op(engine.rename_container(&made.id, &c.name)).await {
                Ok(()) => Ok(made.id),
                Err(e) => {
                    discard(host, &made.id).await;
                    Err(e)
                }
            }
        } else {
            Ok(made.id)
        };
        let (created, failure) = match created {
            Ok(id) => match start_gate_publish(host, &id, c, policy, ctx, on).await {
                Ok((w, start)) => {
                    waited = w;
                    engine_time += start;
                    (Some(id), None)
                }
                Err(e) => (Some(id), Some(e)),
            },
            Err(e) => (None, Some(e)),
        };
        if let Some(e) = failure {
            if let Some(old) = old {
                let restored = put_back(
                    host,
                    created.as_deref(),
                    c,
                    &old.id,
                    old_running,
                    is_lost(&e),
                )
                .await;
                // Back in service, so back in discovery.
                let republished = match &restored {
                    Ok(()) if old_running => publish(on, host.name, c, policy, ctx).await,
                    _ => Ok(()),
                };
                return Err(match (restored, republished) {
                    (Ok(()), Err(pe)) => e.context(format!(
                        "rolled back: the previous container `{}` ({}) serves again, but publishing it again failed ({pe:#})",
                        c.name, old.image
                    )),
                    (Ok(()), Ok(())) => e.context(format!(
                        "rolled back: the previous container `{}` ({}) serves again",
                        c.name, old.image
                    )),
                    (Err(re), _) => e.context(format!(
                        "rollback also failed ({re:#}); the previous container is kept as `{retired}`"
                    )),
                });
            }
            if let Some(id) = &created {
                keep_failed(host, id, &c.name).await;
            }
            return Err(e);
        }
        created.ok_or_else(|| anyhow!("no container was created for `{}`", c.name))?
    };
    Ok(Started {
        host: host.name,
        waited,
        engine: engine_time,
        change: c,
        new_id,
        old_id: old.map(|o| o.id.clone()),
        old_was_running: old_running,
        undo_reload: None,
    })
}

/// [`start_and_gate`], then publishes the slot's replica to the service's
/// discovery targets: publishing is the last gate, so a replica that
/// failed its checks is never published.
async fn start_gate_publish(
    host: Host<'_>,
    id: &str,
    c: &Change,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
    on: &Hosts<'_>,
) -> anyhow::Result<(Duration, Duration)> {
    let gated = start_and_gate(host, id, policy, ctx).await?;
    publish(on, host.name, c, policy, ctx).await?;
    Ok(gated)
}

/// Starts a created container (in a slot of its host) and waits on its
/// gates (in none). Returns the time spent on the gates, and the engine's
/// time to start it.
async fn start_and_gate(
    host: Host<'_>,
    id: &str,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<(Duration, Duration)> {
    let start = host
        .op(async {
            let starting = Instant::now();
            host.engine.start_container(id).await?;
            anyhow::Ok(starting.elapsed())
        })
        .await?;
    Ok((gate::gate(host.engine, id, policy, ctx).await?, start))
}

fn old_grace(c: &Change) -> Option<u64> {
    c.desired.as_ref().and_then(|d| d.spec.stop_grace_period)
}

/// After a failed new container (`created`, if it was), puts the old one
/// back: the new one kept as `<name>.berth-failed`, the old one under its
/// name, running if it was. When the failure was the host not answering
/// (`lost`: an engine restarting, a connection dropped), tried again at
/// [`RESTORE_RETRY`] for up to [`RESTORE_WINDOW`], so an engine back within
/// seconds leaves no slot empty; a host gone for longer is left as it is.
async fn put_back(
    host: Host<'_>,
    created: Option<&str>,
    c: &Change,
    old_id: &str,
    start: bool,
    lost: bool,
) -> anyhow::Result<()> {
    let until = Instant::now() + RESTORE_WINDOW;
    let mut pause = RESTORE_RETRY;
    loop {
        if let Some(id) = created {
            keep_failed(host, id, &c.name).await;
        }
        match restore(host, old_id, &c.name, start).await {
            Err(e) if lost && is_lost(&e) && Instant::now() < until => {
                tokio::time::sleep(pause.pause()).await;
            }
            done => return done,
        }
    }
}

/// Starts a container that still has its name, if it is not running.
async fn restart_in_place(host: Host<'_>, id: &str) -> anyhow::Result<()> {
    let engine = host.engine;
    host.op(async {
        if !engine.status(id).await?.running {
            engine.start_container(id).await?;
        }
        Ok(())
    })
    .await
}

/// Puts a kept old container back under its name, running if it was.
async fn restore(host: Host<'_>, old_id: &str, name: &str, start: bool) -> anyhow::Result<()> {
    let engine = host.engine;
    host.op(async {
        engine.rename_container(old_id, name).await?;
        if start {
            engine.start_container(old_id).await?;
        }
        Ok(())
    })
    .await
}

/// Rolls back a member that had passed: its (healthy) new container goes,
/// the old one returns. Both are the slot's one entry in discovery: it is
/// retired (drained) before the new container stops and published again
/// once the old one runs.
async fn undo(
    host: Host<'_>,
    s: &Started<'_>,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
    on: &Hosts<'_>,
) -> anyhow::Result<()> {
    let (engine, name) = (host.engine, &s.change.name);
    if let Err(e) = unpublish(on, host.name, s.change, policy, ctx).await {
        // The rollback goes on: the old container takes the slot back.
        tracing::warn!(host = %host.name, "{e:#}");
    }
    host.op(async {
        engine.stop_container(&s.new_id, Some(10)).await?;
        engine.remove_container(&s.new_id).await
    })
    .await?;
    if let Some(old) = &s.old_id {
        restore(host, old, name, s.old_was_running).await?;
        if s.old_was_running {
            publish(on, host.name, s.change, policy, ctx).await?;
        }
    }
    Ok(())
}

/// Stops a container that failed its gates and keeps it as
/// `<name>.berth-failed` for its logs; best effort.
async fn keep_failed(host: Host<'_>, id: &str, name: &str) {
    let engine = host.engine;
    host.op(async {
        let _ = engine.stop_container(id, Some(2)).await;
        let failed = format!("{name}{FAILED_SUFFIX}");
        if let Err(e) = engine.rename_container(id, &failed).await {
            tracing::warn!("could not keep the failed `{name}` for inspection: {e:#}");
            let _ = engine.remove_container(id).await;
        }
    })
    .await;
}
