//! The rollout's calls into `crate::discovery`: a slot's replica published
//! to (or retired from) its service's targets, each call noted as a step
//! of the replica's host (see [`Hosts::note_discovery`]).

use std::time::Instant;

use super::context::{ApplyContext, ServicePolicy};
use super::host::Hosts;
use super::outcome::{Step, StepReport};
use crate::plan::Change;

/// Publishes the slot's replica on `host`, if the service is published.
pub(super) async fn publish(
    on: &Hosts<'_>,
    host: &str,
    c: &Change,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<()> {
    tell_targets(Step::Publish, on, host, c, policy, ctx).await
}

/// Retires (drains, then removes) the slot's replica on `host` from the
/// service's discovery targets, before it stops.
pub(super) async fn unpublish(
    on: &Hosts<'_>,
    host: &str,
    c: &Change,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<()> {
    tell_targets(Step::Retire, on, host, c, policy, ctx).await
}

/// One call into the service's discovery targets (`Step::Publish`: promote,
/// `Step::Retire`: retire), noted as a step of the replica's host.
async fn tell_targets(
    step: Step,
    on: &Hosts<'_>,
    host: &str,
    c: &Change,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<()> {
    let Some(p) = &policy.publish else {
        return Ok(());
    };
    let started = Instant::now();
    let replica = p.replica(&ctx.project, host, &c.slot);
    let r = if step == Step::Retire {
        crate::discovery::retire(p, &replica, on).await
    } else {
        crate::discovery::promote(p, &replica, on).await
    };
    note(on, host, step, c, started, r.as_ref().err());
    r
}

fn note(
    on: &Hosts<'_>,
    host: &str,
    step: Step,
    c: &Change,
    started: Instant,
    err: Option<&anyhow::Error>,
) {
    on.note_discovery(
        host,
        StepReport {
            step,
            target: c.name.clone(),
            ok: err.is_none(),
            seconds: started.elapsed().as_secs_f64(),
            waited_seconds: None,
            engine_seconds: None,
            detail: err.map(|e| format!("{e:#}")),
        },
    );
}
