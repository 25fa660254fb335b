//! What a run knows beyond the plan: the project, the labels every new
//! container carries, and how each service rolls out.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::spec::{DependsCondition, UpdateConfig, ValidateCheck};

/// Container operations (create, start, stop, rename, remove) at once on
/// one host: Docker Engines slow down past a few concurrent creates, and
/// waiting on gates holds no slot.
pub const HOST_OPERATIONS: usize = 4;

/// How one service rolls out: from its Compose `deploy` and `x-berth`.
#[derive(Debug, Clone, Default)]
pub struct ServicePolicy {
    /// The services of its stack it waits for (`depends_on`), with the
    /// condition: `service_started` waits for their first batch to pass,
    /// the others for their whole rollout.
    pub depends_on: Vec<(String, DependsCondition)>,
    pub update: UpdateConfig,
    pub rollback: UpdateConfig,
    pub validate: Vec<ValidateCheck>,
    /// `x-berth.reload`: configs are reloaded in place (see `reload`).
    pub reload: Option<crate::spec::configs::ReloadSpec>,
    /// `x-berth.publish`: where each validated replica is published (see
    /// `crate::discovery`).
    pub publish: Option<crate::discovery::Publishing>,
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
    /// Services rolling out at once (`settings.rollout_parallel`).
    pub rollout_parallel: usize,
    /// Container operations at once per host ([`HOST_OPERATIONS`]).
    pub host_operations: usize,
    /// Decrypted secrets the plan's new containers read, by digest.
    pub secrets: std::sync::Arc<crate::secrets::Plaintexts>,
    /// Host -> its `secrets_dir`.
    pub secrets_dirs: BTreeMap<String, String>,
    /// Host -> its `configs_dir` (a host not listed: the default).
    pub configs_dirs: BTreeMap<String, String>,
    /// Remove secret files no container uses any more, after the rollouts
    /// (the project has or had secrets).
    pub prune_secrets: bool,
    /// Configs by digest: the repo's bytes the plan's containers read.
    pub configs: std::sync::Arc<BTreeMap<String, crate::spec::configs::ConfigData>>,
    /// Remove config versions no container reads any more, after the
    /// rollouts (the project has or had configs).
    pub prune_configs: bool,
    /// Set when the run is asked to stop (a signal): no new batch starts.
    pub stop: super::stop::Stop,
}
