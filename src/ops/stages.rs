//! What every op shares: reading the repo, opening the fleet, planning,
//! and the history check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::error::{Error, Reach};
use crate::hosts::fleet::{Fleet, FleetOptions, LockRequest};
use crate::hosts::HostObservation;
use crate::placement::{self, CurrentPlacement};
use crate::plan::{self as planning, Plan};
use crate::source::history::Rewound;
use crate::source::{self, Checkout, SourceOptions};
use crate::spec::{self, Project, SpecError};

/// Where the repo comes from and which of its hosts a command covers.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub source: SourceOptions,
    /// Certificates allowed to sign deployable commits (`--trust`); None:
    /// signatures are not checked.
    pub trust: Option<PathBuf>,
    /// Only these hosts (by inventory name); empty = all.
    pub only_hosts: Vec<String>,
    /// Compose profiles to enable (`--profile`), besides each stack's
    /// `profiles` in berth.yaml.
    pub profiles: Vec<String>,
}

/// How to reach the hosts. Each `Option` overrides the matching setting
/// of berth.yaml.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Overrides `settings.known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Overrides every host's identity file.
    pub identity_file: Option<PathBuf>,
    /// Overrides `settings.parallel`.
    pub parallel: Option<usize>,
    /// Overrides `settings.connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// An ssh_config file for the connections; None: none at all.
    pub ssh_config: Option<PathBuf>,
    /// Where the run's private socket directory is made.
    pub runtime_dir: PathBuf,
    /// The runner's Docker `config.json`, for registry credentials on
    /// pulls; None: anonymous pulls.
    pub docker_config: Option<PathBuf>,
}

/// The repo, read and validated.
pub struct Loaded {
    pub checkout: Checkout,
    pub project: Project,
}

/// Reads the repo and validates it, placement included (with no knowledge
/// of the hosts: port clashes and impossible constraints are found here,
/// before any host is contacted).
pub(super) async fn load(opts: &LoadOptions) -> anyhow::Result<Loaded> {
    let source_opts = opts.source.clone();
    let checkout = tokio::task::spawn_blocking(move || source::resolve(&source_opts))
        .await
        .context("source stage panicked")??;
    if let Some(trust) = opts.trust.clone() {
        let checked = checkout.clone();
        tokio::task::spawn_blocking(move || source::trust::verify_signature(&checked, &trust))
            .await
            .context("signature check panicked")??;
    }
    let mut project = read_spec(&checkout.root, &opts.profiles)?;
    if opts.trust.is_some() {
        source::trust::refuse_unsigned_inputs(&checkout, inputs(&project))?;
        // A signed commit must not be steerable from outside it.
        spec::check_environment_allowed(&project)?;
    }
    crate::secrets::attach(&mut project)?;
    for name in &opts.only_hosts {
        if !project.inventory.hosts.iter().any(|h| &h.name == name) {
            anyhow::bail!(
                "--host `{name}` is not in berth.yaml (hosts: {})",
                project
                    .inventory
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    placement::place(&project, &CurrentPlacement::new())
        .map_err(|diagnostics| SpecError { diagnostics })?;
    if let Some(c) = &checkout.commit {
        tracing::debug!("planning at {} ({})", c.id, c.summary);
    }
    if checkout.dirty {
        tracing::warn!("the checkout has uncommitted changes: the plan includes them");
    }
    Ok(Loaded { checkout, project })
}

/// Reads the spec with the runner's environment and `profiles`; its
/// warnings (unset variables, obsolete keys) go to the log, each with its
/// place.
pub(super) fn read_spec(root: &std::path::Path, profiles: &[String]) -> Result<Project, SpecError> {
    let options = spec::LoadOptions {
        profiles: profiles.to_vec(),
        environment: None,
    };
    let loaded = spec::load_with(root, &options)?;
    for warning in &loaded.warnings {
        match &warning.help {
            Some(help) => {
                tracing::warn!("{}: {}\n  help: {help}", warning.location, warning.message)
            }
            None => tracing::warn!("{}: {}", warning.location, warning.message),
        }
    }
    Ok(loaded.project)
}

/// Every repo file berth read for `project`, relative to the repo root:
/// `.env`, `env_file`s, `extends` and `include` files too.
fn inputs(project: &Project) -> impl Iterator<Item = PathBuf> + '_ {
    std::iter::once(PathBuf::from("berth.yaml"))
        .chain(project.inventory.recipients.iter().cloned())
        .chain(project.stacks.iter().flat_map(|s| {
            std::iter::once(s.file.clone())
                .chain(s.resolution.files.iter().cloned())
                .chain(s.secrets.values().map(|x| x.file.clone()))
        }))
}

/// Connects to, locks (with `lock_timeout`) and observes the hosts the
/// command covers.
pub(super) async fn open_fleet(
    loaded: &Loaded,
    load: &LoadOptions,
    hosts: &HostOptions,
    lock_timeout: Option<Duration>,
) -> Result<Fleet, Error> {
    let settings = &loaded.project.inventory.settings;
    let commit = loaded.checkout.commit.as_ref().map(|c| c.id.as_str());
    let opts = FleetOptions {
        runtime_base: hosts.runtime_dir.clone(),
        known_hosts: hosts.known_hosts.clone().or(settings.known_hosts.clone()),
        connect_timeout: hosts.connect_timeout.unwrap_or(settings.connect_timeout),
        identity_file: hosts.identity_file.clone(),
        ssh_config: hosts.ssh_config.clone().or(settings.ssh_config.clone()),
        docker_config: hosts.docker_config.clone(),
        parallel: parallel(loaded, hosts),
        lock: lock_timeout.map(|timeout| LockRequest {
            key: loaded.project.name.clone(),
            holder: crate::hosts::lock::holder_description(commit),
            timeout,
        }),
    };
    let covered: Vec<_> = loaded
        .project
        .inventory
        .hosts
        .iter()
        .filter(|h| load.only_hosts.is_empty() || load.only_hosts.contains(&h.name))
        .collect();
    Fleet::open(&covered, &loaded.project.name, &opts)
        .await
        .map_err(Error::at(Reach::NotContacted))
}

/// How many hosts are contacted (and changed) at once.
pub(super) fn parallel(loaded: &Loaded, hosts: &HostOptions) -> usize {
    hosts
        .parallel
        .unwrap_or(loaded.project.inventory.settings.parallel)
        .max(1)
}

/// Desired state against observed: the plan. Pure once the observation is in.
pub(super) fn make_plan(
    loaded: &Loaded,
    fleet: &Fleet,
    only_hosts: &[String],
) -> anyhow::Result<Plan> {
    let current = planning::current_placement(&fleet.observed);
    let mut desired = placement::place(&loaded.project, &current)
        .map_err(|diagnostics| SpecError { diagnostics })?;
    if !only_hosts.is_empty() {
        desired.hosts.retain(|h, _| only_hosts.contains(h));
    }
    let mut plan = planning::diff(
        &desired,
        &fleet.observed,
        fleet.unreachable.clone(),
        loaded.checkout.commit.as_ref().map(|c| c.id.clone()),
    );
    plan.environment = spec::environment_variables(&loaded.project)
        .into_iter()
        .map(|v| planning::EnvironmentValue {
            name: v.name,
            value: v.shown_value,
            stacks: v.stacks,
        })
        .collect();
    Ok(plan)
}

/// Hosts running a commit that the checked-out commit does not descend
/// from. Empty when the source is not a git repo.
pub(super) fn rewound(loaded: &Loaded, fleet: &Fleet) -> Vec<Rewound> {
    let applied = applied_commits(&fleet.observed, &fleet.recorded_commits());
    source::history::rewound(&loaded.checkout, &applied)
}

/// Commit -> the hosts that run it: the `berth.commit` labels of what the
/// hosts really run, and `recorded`, host -> the commit its last apply
/// recorded beside the run lock (an apply that only removed containers
/// leaves no label).
fn applied_commits(
    observed: &BTreeMap<String, HostObservation>,
    recorded: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    // Leftovers of an interrupted or failed rollout (`.berth-failed` keeps a
    // release that never served) say nothing about what the host runs.
    let leftover = |name: &str| {
        [
            planning::RETIRED_SUFFIX,
            planning::NEW_SUFFIX,
            planning::FAILED_SUFFIX,
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
    };
    let mut applied: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (host, o) in observed {
        for c in o.containers.iter().filter(|c| !leftover(&c.name)) {
            if let Some(commit) = c.labels.get(crate::labels::COMMIT) {
                applied
                    .entry(commit.clone())
                    .or_default()
                    .insert(host.clone());
            }
        }
    }
    for (host, commit) in recorded {
        applied
            .entry(commit.clone())
            .or_default()
            .insert(host.clone());
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::ObservedContainer;

    fn running(name: &str, commit: &str) -> ObservedContainer {
        ObservedContainer {
            id: name.into(),
            name: name.into(),
            labels: BTreeMap::from([(crate::labels::COMMIT.to_string(), commit.into())]),
            image: "img".into(),
            state: "running".into(),
            health: None,
            created: 0,
            live: None,
        }
    }

    fn on_h(containers: Vec<ObservedContainer>) -> BTreeMap<String, HostObservation> {
        BTreeMap::from([(
            "h".to_string(),
            HostObservation {
                containers,
                ..Default::default()
            },
        )])
    }

    #[test]
    fn only_what_hosts_really_run_counts_as_applied() {
        let h = || BTreeSet::from(["h".to_string()]);
        let none = BTreeMap::new();
        assert_eq!(
            applied_commits(&on_h(vec![running("a-1", "old")]), &none),
            BTreeMap::from([("old".to_string(), h())])
        );
        // A failed release kept for its logs is not what the host runs.
        let failed = on_h(vec![
            running("a-1", "old"),
            running("a-1.berth-failed", "new"),
        ]);
        assert_eq!(
            applied_commits(&failed, &none),
            BTreeMap::from([("old".to_string(), h())])
        );
        // An apply that only removed containers recorded its commit.
        let recorded = BTreeMap::from([("h".to_string(), "new".to_string())]);
        assert_eq!(
            applied_commits(&on_h(vec![]), &recorded),
            BTreeMap::from([("new".to_string(), h())])
        );
    }
}
