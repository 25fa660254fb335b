//! discovery: tells load balancers and registries which replicas serve.
//!
//! Input: a service's [`Publishing`] (its `x-berth.publish` with the
//! targets it names and the hosts' addresses) and one [`Replica`]. Output:
//! the replica added to ([`promote`]) or drained from and taken out of
//! ([`retire`]) every target, or an error naming the target.
//!
//! The rollout calls these at fixed points, so the order per replica is
//! create -> gates -> validate -> promote new -> retire old -> stop old: a
//! replica that failed its gates is never promoted, and one that is put
//! back after a failure is promoted again. A replica is one slot (host,
//! address, port): the old and the new container of a slot are the same
//! entry in a target, so both calls say their end state and may be re-run
//! after a crash.
//!
//! Kinds: `command` ([`command`], run on the runner) and `haproxy`
//! ([`haproxy`], its Runtime API over the HAProxy host's SSH connection).

pub mod command;
pub mod haproxy;
mod replica;

pub use replica::{Publishing, Reach, Replica};

use crate::spec::discovery::DiscoveryKind;

/// Adds the replica to every target, in order; the first failure stops
/// and is returned (the rollout then treats the replica as failed).
pub async fn promote(p: &Publishing, r: &Replica, reach: &dyn Reach) -> anyhow::Result<()> {
    for target in &p.targets {
        let started = std::time::Instant::now();
        let done = match &target.kind {
            DiscoveryKind::Command { .. } => command::promote(target, p, r).await,
            DiscoveryKind::Haproxy { .. } => haproxy::promote(target, p, r, reach).await,
        };
        done.map_err(|e| {
            e.context(format!(
                "publishing {} to `{}` failed",
                r.describe(),
                target.name
            ))
        })?;
        tracing::info!(
            "published {} to `{}` ({:.1} s)",
            r.describe(),
            target.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Drains the replica from every target and takes it out, in the reverse
/// order of [`promote`]. Every target is tried; the first failure is
/// returned (the rollout then leaves the replica running).
pub async fn retire(p: &Publishing, r: &Replica, reach: &dyn Reach) -> anyhow::Result<()> {
    let mut first = None;
    for target in p.targets.iter().rev() {
        let started = std::time::Instant::now();
        let done = match &target.kind {
            DiscoveryKind::Command { .. } => command::retire(target, p, r).await,
            DiscoveryKind::Haproxy { .. } => haproxy::retire(target, p, r, reach).await,
        };
        match done {
            Ok(()) => tracing::info!(
                "retired {} from `{}` ({:.1} s)",
                r.describe(),
                target.name,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                let e = e.context(format!(
                    "retiring {} from `{}` failed",
                    r.describe(),
                    target.name
                ));
                tracing::warn!("{e:#}");
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}
