//! The normalised part of a Swarm `ServiceSpec` berth decides (see the
//! `swarm` module doc), and the names and labels it goes by. Plain data:
//! the mapping from the repo (`desired`), the plan (`swarm`) and the
//! adapter (`hosts::swarm`) all read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Label on a Swarm service with the hash of the shape berth last gave it.
pub const SPEC_HASH_LABEL: &str = "berth.spec-hash";
/// The label `docker stack` reads: `docker stack ps <stack>` lists berth's services.
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// What berth decides of one Swarm service, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct ServiceShape {
    /// The image, pinned to its digest when berth resolved one
    /// (`name:tag@sha256:…`).
    pub image: String,
    /// `replicated` or `global`.
    pub mode: String,
    /// Replicas of a `replicated` service; None for `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    /// The image's entrypoint replaced (Swarm's `Command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The image's command replaced (Swarm's `Args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The containers' labels (Compose `labels:`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Published ports, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ShapePort>,
    /// Network name -> the service's aliases on it, sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<ShapeHealth>,
    /// Placement constraints as Swarm reads them, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// 0: unlimited.
    #[serde(default)]
    pub max_replicas_per_node: u64,
    pub update_config: ShapeUpdate,
    pub rollback_config: ShapeUpdate,
    /// Swarm's restart condition: `any`, `on-failure` or `none`.
    pub restart: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Nanoseconds; 0: the engine's default (10 s).
    #[serde(default)]
    pub stop_grace_period_ns: i64,
}

/// One published port. Ports are published in `host` mode: each task's
/// node publishes it, as a host target's container does.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ShapePort {
    pub published: u16,
    pub target: u16,
    pub protocol: String,
    /// `host` or `ingress`.
    pub mode: String,
}

/// A healthcheck; durations in nanoseconds (0: the engine's default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShapeHealth {
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub retries: i64,
    pub start_period_ns: i64,
}

/// `update_config` / `rollback_config`; durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct ShapeUpdate {
    pub parallelism: u64,
    pub delay_ns: i64,
    /// `rollback`, `pause` or `continue`.
    pub failure_action: String,
    pub monitor_ns: i64,
    pub max_failure_ratio: f64,
    /// `stop-first` or `start-first`.
    pub order: String,
}

impl ServiceShape {
    /// Hash of the canonical JSON, for [`SPEC_HASH_LABEL`].
    pub fn hash(&self) -> String {
        use sha2::Digest as _;
        let json = serde_json::to_string(self).unwrap_or_default();
        let digest = sha2::Sha256::digest(json.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// An overlay network a stack declares, as berth creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SwarmNetwork {
    pub name: String,
    pub stack: String,
    pub internal: bool,
}
