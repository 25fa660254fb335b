//! The Swarm targets' part of `plan` and `apply`, beside the hosts': connect
//! to each target's manager, read the project's services, plan them
//! (`swarm::diff`, images pinned to the digests they resolve to now) and
//! apply the plan. A repo without Swarm targets never gets here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::stages::{HostOptions, Loaded};
use crate::apply::{HostOutcome, HostReport, Step, StepReport};
use crate::hosts::swarm::{self, Manager};
use crate::hosts::ConnectOptions;
use crate::plan::UnreachableHost;
use crate::spec::{self, SpecError};
use crate::swarm::{DesiredService, SwarmObservation, SwarmPlan};

/// The Swarm targets of a run: each connected manager and what it runs.
#[derive(Default)]
pub(super) struct Swarms {
    managers: Vec<Manager>,
    observed: BTreeMap<String, SwarmObservation>,
    pub unreachable: Vec<UnreachableHost>,
}

impl Swarms {
    pub fn is_empty(&self) -> bool {
        self.managers.is_empty() && self.unreachable.is_empty()
    }

    pub async fn close(mut self) {
        for m in &mut self.managers {
            m.close().await;
        }
    }
}

/// Connects to every Swarm target's manager and reads the project's
/// services there. A target that fails is unreachable; the others go on.
pub(super) async fn open(loaded: &Loaded, hosts: &HostOptions) -> Swarms {
    let mut swarms = Swarms::default();
    let targets = &loaded.project.inventory.swarms;
    if targets.is_empty() {
        return swarms;
    }
    let settings = &loaded.project.inventory.settings;
    let opts = ConnectOptions {
        known_hosts: hosts.known_hosts.clone().or(settings.known_hosts.clone()),
        connect_timeout: hosts.connect_timeout.unwrap_or(settings.connect_timeout),
        keepalive: settings.keepalive,
        docker_timeout: settings.docker_timeout,
        runtime_dir: hosts.runtime_dir.clone(),
        identity_file: hosts.identity_file.clone(),
        ssh_config: hosts.ssh_config.clone().or(settings.ssh_config.clone()),
        docker_config: hosts.docker_config.clone(),
        ssh_kex: settings.ssh_kex.clone(),
    };
    let connected = futures::future::join_all(targets.iter().enumerate().map(|(i, t)| {
        let opts = &opts;
        async move {
            let manager = swarm::connect(t, opts, i).await?;
            match manager.observe(&loaded.project.name).await {
                Ok(observed) => Ok((manager, observed)),
                Err(e) => {
                    let mut manager = manager;
                    manager.close().await;
                    Err(e)
                }
            }
        }
    }))
    .await;
    for (target, result) in targets.iter().zip(connected) {
        match result {
            Ok((manager, observed)) => {
                swarms.observed.insert(manager.name.clone(), observed);
                swarms.managers.push(manager);
            }
            Err(e) => swarms.unreachable.push(UnreachableHost {
                host: target.manager.name.clone(),
                error: format!("{e:#}"),
            }),
        }
    }
    swarms
}

/// The desired services and each reachable target's plan. Images are
/// resolved as `settings.resolve_from` says, as for hosts.
pub(super) async fn plan(
    loaded: &Loaded,
    swarms: &Swarms,
    hosts: &HostOptions,
) -> anyhow::Result<(Vec<DesiredService>, Vec<SwarmPlan>)> {
    let project = &loaded.project;
    let images: BTreeSet<String> = project
        .swarm_stacks
        .iter()
        .filter(|s| {
            project
                .inventory
                .swarm_of(&s.name)
                .is_some_and(|t| swarms.observed.contains_key(&t.manager.name))
        })
        .flat_map(|s| &s.services)
        .filter(|s| s.pull_policy != spec::PullPolicy::Never)
        .map(|s| s.container.image.clone())
        .filter(|i| spec::ImageRef::split(i).digest.is_none())
        .collect();
    let digests = resolve(loaded, swarms, hosts, &images).await?;
    let desired = crate::swarm::desired(project, &digests).map_err(SpecError::from)?;
    let plans = swarms
        .managers
        .iter()
        .map(|m| crate::swarm::diff(&m.name, &desired, &swarms.observed[&m.name]))
        .collect();
    Ok((desired, plans))
}

async fn resolve(
    loaded: &Loaded,
    swarms: &Swarms,
    hosts: &HostOptions,
    images: &BTreeSet<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let settings = &loaded.project.inventory.settings;
    if images.is_empty() {
        return Ok(BTreeMap::new());
    }
    match settings.resolve_from {
        spec::ResolveFrom::None => Ok(BTreeMap::new()),
        spec::ResolveFrom::Runner => {
            let resolver = crate::registry::Resolver::new(crate::registry::RegistryOptions {
                insecure: settings.insecure_registries.clone(),
                docker_config: hosts.docker_config.clone(),
                connect_timeout: hosts.connect_timeout.unwrap_or(settings.connect_timeout),
                timeout: Duration::from_secs(30),
            });
            resolver.resolve_all(images).await
        }
        spec::ResolveFrom::Host => {
            let Some(manager) = swarms.managers.first() else {
                return Ok(BTreeMap::new());
            };
            let mut out = BTreeMap::new();
            for image in images {
                out.insert(image.clone(), manager.distribution_digest(image).await?);
            }
            Ok(out)
        }
    }
}

/// Applies each target's plan (targets in parallel), as one report entry
/// per target: a failure names the service and its tasks' errors.
pub(super) async fn apply(
    loaded: &Loaded,
    swarms: &Swarms,
    plans: &[SwarmPlan],
    desired: &[DesiredService],
    timeout: Duration,
) -> Vec<HostReport> {
    let commit = loaded.checkout.commit.as_ref().map(|c| c.id.as_str());
    let runs = plans.iter().filter(|p| !p.is_empty()).filter_map(|plan| {
        let manager = swarms.managers.iter().find(|m| m.name == plan.target)?;
        let ctx = swarm::ApplyContext {
            project: &loaded.project.name,
            commit,
            desired,
            timeout,
        };
        Some(async move {
            let t = std::time::Instant::now();
            let applied = manager.apply(plan, &ctx).await;
            report(&plan.target, applied, t.elapsed().as_secs_f64())
        })
    });
    futures::future::join_all(runs).await
}

fn report(target: &str, applied: swarm::Applied, seconds: f64) -> HostReport {
    let outcome = match (&applied.error, applied.rolled_back) {
        (None, _) => HostOutcome::Converged,
        (Some(_), true) => HostOutcome::RolledBack,
        (Some(_), false) if applied.steps.len() > 1 => HostOutcome::Incomplete,
        (Some(_), false) => HostOutcome::Untouched,
    };
    HostReport {
        host: target.to_string(),
        steps: applied
            .steps
            .into_iter()
            .map(|s| StepReport {
                step: match s.what {
                    "network" => Step::Network,
                    "create" => Step::Create,
                    "remove" => Step::Remove,
                    _ => Step::Replace,
                },
                target: s.target,
                ok: s.error.is_none(),
                seconds: s.seconds,
                waited_seconds: None,
                engine_seconds: None,
                detail: s.error,
            })
            .collect(),
        seconds,
        error: applied.error,
        outcome,
    }
}
