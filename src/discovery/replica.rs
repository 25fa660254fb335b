//! What discovery is told: a service's publishing and one replica; and how
//! a target reaches a host.

use std::collections::BTreeMap;

use crate::hosts::Engine;
use crate::spec::discovery::DiscoveryTarget;

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
