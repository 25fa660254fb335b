//! `berth plan`: the diff between the repo and the hosts; changes nothing.

use std::path::PathBuf;

use super::stages::{HostOptions, LoadOptions};
use crate::error::{Error, Reach};
use crate::plan::{Plan, SavedPlan};
use crate::render::short;
use crate::report::write_atomic;

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub load: LoadOptions,
    pub hosts: HostOptions,
    /// Save the plan, bound to the commit and to what each host runs now,
    /// for `apply --plan FILE`.
    pub save: Option<PathBuf>,
}

/// The plan, computed (and saved, with `save`).
#[derive(Debug, Clone)]
pub struct Planned {
    /// Unreachable hosts are in `plan.unreachable`.
    pub plan: Plan,
}

/// Reads the repo, observes the hosts and diffs them. Hosts running a
/// commit that `apply` would refuse to leave are logged as warnings.
pub async fn plan(opts: &PlanOptions) -> Result<Planned, Error> {
    let loaded = super::stages::load(&opts.load)
        .await
        .map_err(Error::at(Reach::NotContacted))?;
    let fleet = super::stages::open_fleet(&loaded, &opts.load, &opts.hosts, None).await?;
    let mut plan =
        super::stages::plan_pinned(&loaded, &fleet, &opts.load.only_hosts, &opts.hosts).await;
    if let Ok(pinned) = &mut plan {
        super::config_diffs::fill(&mut pinned.plan, &loaded, &fleet).await;
    }
    let swarms = super::swarm::open(&loaded, &opts.hosts).await;
    let swarm_plans = match swarms.is_empty() {
        true => Ok(Vec::new()),
        false => super::swarm::plan(&loaded, &swarms, &opts.hosts)
            .await
            .map(|(_, plans)| plans),
    };
    let swarms_unreachable = swarms.unreachable.clone();
    swarms.close().await;
    let observed = crate::plan::summarize(&fleet.observed);
    let rewound = super::stages::rewound(&loaded, &fleet);
    fleet.close().await;
    for r in &rewound {
        tracing::warn!(
            "host `{}` runs commit {}: {}; `berth apply` refuses this commit without --allow-rewind",
            r.host,
            short(&r.commit),
            r.why
        );
    }
    let super::stages::Pinned { mut plan, digests } = plan.map_err(Error::at(Reach::NotChanged))?;
    plan.swarms = swarm_plans.map_err(Error::at(Reach::NotChanged))?;
    plan.unreachable.extend(swarms_unreachable);
    if let Some(path) = &opts.save {
        let saved = SavedPlan {
            plan: plan.clone(),
            observed,
            digests,
        };
        let json = serde_json::to_string_pretty(&saved).map_err(anyhow::Error::from)?;
        write_atomic(path, &(json + "\n"))?;
        tracing::info!("saved the plan to `{}`", path.display());
    }
    Ok(Planned { plan })
}
