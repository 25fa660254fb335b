//! `berth apply`: make the hosts match the repo (or a saved plan).
//!
//! Stages, each stopping the run before any host is changed when it fails:
//! read the repo, connect and lock every host, observe, plan (or verify the
//! saved plan), refuse to go backwards, decrypt the secrets the plan needs;
//! then execute the plan and record the deployed commit beside each lock.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::stages::{HostOptions, LoadOptions, Loaded};
use crate::apply::ApplyReport;
use crate::error::{Error, Hint, Reach};
use crate::hosts::fleet::{Fleet, HeldLock};
use crate::plan::Plan;
use crate::secrets::{self, KeyOptions, Plaintexts};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub load: LoadOptions,
    pub hosts: HostOptions,
    /// Longest wait for a new container to run and report healthy.
    pub health_timeout: Duration,
    /// Longest wait for another run's lock on a host.
    pub lock_timeout: Duration,
    /// The runner's private key, for the secrets a plan's new containers read.
    pub key: KeyOptions,
    /// Deploy a commit that is not a descendant of what the hosts run.
    pub allow_rewind: bool,
    /// Apply this plan (from `plan --save`) instead of planning anew.
    pub saved_plan: Option<PathBuf>,
    /// Set by a signal: the run starts no new batch and ends (see
    /// [`crate::apply::Stop`]).
    pub stop: crate::apply::Stop,
    /// Move replicas whose named volumes (and data) stay on their old host.
    pub allow_volume_move: bool,
}

/// What an apply did.
#[derive(Debug, Clone)]
pub enum ApplyOutcome {
    /// Another run held a host's run lock past the timeout: nothing was
    /// planned and no host was changed.
    LockHeld {
        project: String,
        commit: Option<String>,
        held: Vec<HeldLock>,
    },
    /// The plan was empty (unreachable hosts are in `plan.unreachable`).
    NothingToDo { plan: Plan },
    /// The plan was executed; `report` says how each host fared.
    Applied { plan: Plan, report: ApplyReport },
}

/// Runs an apply. `show_plan` is called with the plan once it is final and
/// before any host is changed, so the user sees it while it runs.
pub async fn apply(
    opts: &ApplyOptions,
    show_plan: impl FnOnce(&Plan),
) -> Result<ApplyOutcome, Error> {
    let loaded = super::stages::load(&opts.load)
        .await
        .map_err(Error::at(Reach::NotContacted))?;
    let mut fleet =
        super::stages::open_fleet(&loaded, &opts.load, &opts.hosts, Some(opts.lock_timeout))
            .await?;
    let swarms = super::swarm::open(&loaded, &opts.hosts).await;
    let outcome = on_fleet(&loaded, &mut fleet, &swarms, opts, show_plan).await;
    swarms.close().await;
    fleet.close().await;
    outcome
}

async fn on_fleet(
    loaded: &Loaded,
    fleet: &mut Fleet,
    swarms: &super::swarm::Swarms,
    opts: &ApplyOptions,
    show_plan: impl FnOnce(&Plan),
) -> Result<ApplyOutcome, Error> {
    if !fleet.lock_held.is_empty() {
        return Ok(ApplyOutcome::LockHeld {
            project: loaded.project.name.clone(),
            commit: loaded.checkout.commit.as_ref().map(|c| c.id.clone()),
            held: fleet.lock_held.clone(),
        });
    }
    // Until the plan runs, a failure leaves every host as it was.
    let unchanged = Error::at(Reach::NotChanged);
    let plan = match &opts.saved_plan {
        Some(path) => {
            super::saved_plan::verify(path, loaded, fleet, &opts.load.only_hosts, &opts.hosts).await
        }
        None => super::stages::make_plan(loaded, fleet, &opts.load.only_hosts, &opts.hosts).await,
    }
    .map_err(&unchanged)?;
    let mut plan = plan;
    if opts.saved_plan.is_none() {
        super::config_diffs::fill(&mut plan, loaded, fleet).await;
    }
    let swarm_desired = if swarms.is_empty() {
        Vec::new()
    } else {
        if opts.saved_plan.is_some() {
            return Err(unchanged(
                Hint::new(
                    "`apply --plan` does not cover Swarm targets yet",
                    "run `berth apply` without `--plan` for a repo with `kind: swarm` targets",
                )
                .into(),
            ));
        }
        let (desired, plans) = super::swarm::plan(loaded, swarms, &opts.hosts)
            .await
            .map_err(&unchanged)?;
        plan.swarms = plans;
        plan.unreachable.extend(swarms.unreachable.iter().cloned());
        desired
    };
    refuse_rewind(loaded, fleet, opts.allow_rewind).map_err(&unchanged)?;
    show_plan(&plan);
    let blocked = crate::render::blocked_lines(&plan);
    if !blocked.is_empty() {
        return Err(unchanged(
            Hint::new(
                format!("the plan is blocked:\n  - {}", blocked.join("\n  - ")),
                "rename or remove those containers on their host (berth never touches a container it does not manage), then run `berth apply` again",
            )
            .into(),
        ));
    }
    refuse_volume_moves(&plan, opts.allow_volume_move).map_err(&unchanged)?;
    if plan.is_empty() {
        return Ok(ApplyOutcome::NothingToDo { plan });
    }
    let secrets = unlock_secrets(loaded, &plan, &opts.key)
        .await
        .map_err(&unchanged)?;
    let ctx = crate::apply::ApplyContext {
        stop: opts.stop.clone(),
        ..super::context::apply_context(
            loaded,
            fleet,
            secrets,
            opts.health_timeout,
            super::stages::parallel(loaded, &opts.hosts),
        )
    };
    let mut report = crate::apply::apply(&plan, &fleet.engines, &ctx).await;
    report.hosts.extend(
        super::swarm::apply(
            loaded,
            swarms,
            &plan.swarms,
            &swarm_desired,
            opts.health_timeout,
        )
        .await,
    );
    if let Some(commit) = &loaded.checkout.commit {
        // What a later run compares against to refuse going backwards.
        let done: BTreeSet<String> = report
            .hosts
            .iter()
            .filter(|h| h.error.is_none())
            .map(|h| h.host.clone())
            .collect();
        fleet.record_applied(&commit.id, &done).await;
    }
    // When each refresh service's tag was last followed, per host: what
    // `daily`/`weekly` count from.
    let done: BTreeSet<String> = report
        .hosts
        .iter()
        .filter(|h| h.error.is_none())
        .map(|h| h.host.clone())
        .collect();
    let refresh = super::stages::refresh_services(&loaded.project);
    fleet
        .record_checked(&crate::plan::digests::checked(&plan, &done, &refresh))
        .await;
    Ok(ApplyOutcome::Applied { plan, report })
}

/// Apply refuses to go backwards unless told to: an old commit, or one from
/// a rewritten history, would silently undo what was deployed since.
fn refuse_rewind(loaded: &Loaded, fleet: &Fleet, allow_rewind: bool) -> anyhow::Result<()> {
    let rewound = super::stages::rewound(loaded, fleet);
    if rewound.is_empty() || allow_rewind {
        return Ok(());
    }
    let lines: Vec<String> = rewound
        .iter()
        .map(|r| format!("host `{}` runs commit {}: {}", r.host, r.commit, r.why))
        .collect();
    Err(Hint::new(
        format!("refusing to go backwards:\n  - {}", lines.join("\n  - ")),
        "deploy a newer commit (undo with `git revert`), or pass --allow-rewind to deploy this one on purpose",
    )
    .into())
}

/// A replica moved off a host leaves its named volumes there: berth copies
/// no data and removes no volume, so the new replica starts empty. Apply
/// does that only when told to.
fn refuse_volume_moves(plan: &Plan, allow: bool) -> anyhow::Result<()> {
    let lines: Vec<String> = plan
        .volume_moves()
        .map(|(host, c)| format!("`{}` leaves host `{host}`: {}", c.slot, c.reason_text()))
        .collect();
    if lines.is_empty() || allow {
        return Ok(());
    }
    Err(Hint::new(
        format!(
            "refusing to move replicas away from their data:\n  - {}",
            lines.join("\n  - ")
        ),
        "copy the volumes' data to the new host first (the old volumes are kept), then pass --allow-volume-move; or keep the replica where it is (its host's labels, `deploy.placement`)",
    )
    .into())
}

/// Decrypts the secrets the plan's new containers read, before any host is
/// changed. Errors name the file.
async fn unlock_secrets(
    loaded: &Loaded,
    plan: &Plan,
    key: &KeyOptions,
) -> anyhow::Result<Plaintexts> {
    let needed = secrets::needed(&plan.secrets_read(), &loaded.project);
    if needed.is_empty() {
        return Ok(Plaintexts::default());
    }
    let key = key.clone();
    let root = loaded.checkout.root.clone();
    tokio::task::spawn_blocking(move || {
        let key = key.load()?;
        secrets::decrypt_needed(&root, &needed, key.as_ref())
    })
    .await
    .context("secrets stage panicked")?
}
