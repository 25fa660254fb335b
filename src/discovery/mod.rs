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

use std::collections::BTreeMap;

use crate::hosts::Engine;
use crate::spec::discovery::{DiscoveryKind, DiscoveryTarget};

/// A service's publishing, as the rollout holds it.
#[derive(Debug, Clone, Default)]
pub struct Publishing {
    /// The host port each replica serves on.
    pub port: u16,
    /// The HAProxy backend its replicas join.
    pub backend: Option<String>,
    /// The targets, in the order `x-berth.publish.to` lists them.
    pub targets: Vec<DiscoveryTarget>,
    /// Inventory host -> its address (what a target is told).
    pub addresses: BTreeMap<String, String>,
}

impl Publishing {
    /// From the repo: the service's `x-berth.publish` and the inventory.
    /// A name that is not a target was refused at load.
    pub fn new(
        publish: &crate::spec::discovery::Publish,
        inventory: &crate::spec::Inventory,
    ) -> Self {
        Publishing {
            port: publish.port,
            backend: publish.backend.clone(),
            targets: publish
                .to
                .iter()
                .filter_map(|name| inventory.discovery.iter().find(|t| &t.name == name))
                .cloned()
                .collect(),
            addresses: inventory
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.address.clone()))
                .collect(),
        }
    }

    /// The replica of `slot` on `host` as targets see it.
    pub fn replica(&self, project: &str, host: &str, slot: &crate::placement::Slot) -> Replica {
        Replica {
            project: project.to_string(),
            stack: slot.stack.clone(),
            service: slot.service.clone(),
            replica: slot.replica,
            host: host.to_string(),
            // A host without an address runs berth itself (`transport: local`).
            address: self
                .addresses
                .get(host)
                .filter(|a| !a.is_empty())
                .cloned()
                .unwrap_or_else(|| "127.0.0.1".to_string()),
            port: self.port,
        }
    }
}

/// One replica, as a target is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub project: String,
    pub stack: String,
    pub service: String,
    pub replica: u32,
    /// Inventory host name.
    pub host: String,
    /// The host's address, where the replica serves.
    pub address: String,
    /// The host port it serves on.
    pub port: u16,
}

impl Replica {
    /// How errors and logs name it: `web/app.1 on edge-1 (10.77.0.11:8081)`.
    pub fn describe(&self) -> String {
        format!(
            "`{}/{}.{}` on `{}` ({}:{})",
            self.stack, self.service, self.replica, self.host, self.address, self.port
        )
    }
}

/// How a target reaches an inventory host's shell (HAProxy's admin socket
/// is on one): the rollout's connections.
pub trait Reach: Sync {
    fn engine(&self, host: &str) -> Option<&dyn Engine>;
}

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
