//! What every op shares: reading the repo, opening the fleet, planning,
//! and the history check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::apply::ServicePolicy;
use crate::error::{Error, Reach};
use crate::hosts::fleet::{Fleet, FleetOptions, LockRequest};
use crate::hosts::HostObservation;
use crate::placement::{self, CurrentPlacement};
use crate::plan::{self as planning, Plan};
use crate::source::history::Rewound;
use crate::source::{self, Checkout, SourceOptions};
use crate::spec::{self, DependsCondition, Project, SpecError};

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
    placement::place(&project, &CurrentPlacement::new()).map_err(SpecError::from)?;
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
/// place, also when the load fails (before its errors are printed).
pub(super) fn read_spec(root: &std::path::Path, profiles: &[String]) -> Result<Project, SpecError> {
    let options = spec::LoadOptions {
        profiles: profiles.to_vec(),
        environment: None,
    };
    match spec::load_with(root, &options) {
        Ok(loaded) => {
            spec::log_warnings(&loaded.warnings);
            Ok(loaded.project)
        }
        Err(e) => {
            spec::log_warnings(&e.warnings);
            Err(e)
        }
    }
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
        keepalive: settings.keepalive,
        docker_timeout: settings.docker_timeout,
        identity_file: hosts.identity_file.clone(),
        ssh_config: hosts.ssh_config.clone().or(settings.ssh_config.clone()),
        ssh_kex: settings.ssh_kex.clone(),
        docker_config: hosts.docker_config.clone(),
        parallel: parallel(loaded, hosts),
        lock: lock_timeout.map(|timeout| LockRequest {
            key: loaded.project.name.clone(),
            holder: crate::hosts::lock::holder_description(commit),
            timeout,
        }),
        aged_images: aged_images(&loaded.project),
        observe_configs: loaded
            .project
            .stacks
            .iter()
            .any(|s| s.services.iter().any(|x| !x.container.configs.is_empty())),
        adopt: loaded
            .project
            .stacks
            .iter()
            .flat_map(|s| &s.services)
            .filter_map(|s| s.adopt.as_ref())
            .flat_map(|a| a.names().iter().cloned())
            .collect(),
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

/// The images of services with a refresh `pull_policy` (`daily`, `weekly`,
/// `every_<d>`), in the engine's form: the plan needs to know how long ago
/// a host pulled them, which costs an inspect each, so only these are asked.
fn aged_images(project: &Project) -> BTreeSet<String> {
    project
        .stacks
        .iter()
        .flat_map(|s| &s.services)
        .filter(|s| matches!(s.pull_policy, spec::PullPolicy::Every(_)))
        .map(|s| spec::ImageRef::split(&s.container.image).engine_form())
        .collect()
}

/// The (stack, service) pairs with a refresh `pull_policy` (`daily`,
/// `weekly`, `every_<d>`).
pub(super) fn refresh_services(project: &Project) -> BTreeSet<(String, String)> {
    project
        .stacks
        .iter()
        .flat_map(|st| {
            st.services
                .iter()
                .filter(|s| matches!(s.pull_policy, spec::PullPolicy::Every(_)))
                .map(|s| (st.name.clone(), s.name.clone()))
        })
        .collect()
}

/// How many hosts are contacted (and changed) at once.
pub(super) fn parallel(loaded: &Loaded, hosts: &HostOptions) -> usize {
    hosts
        .parallel
        .unwrap_or(loaded.project.inventory.settings.parallel)
        .max(1)
}

/// Desired state against observed: the plan, its images pinned to the
/// digests their tags name now (see [`plan_pinned`]).
pub(super) async fn make_plan(
    loaded: &Loaded,
    fleet: &Fleet,
    only_hosts: &[String],
    hosts: &HostOptions,
) -> anyhow::Result<Plan> {
    Ok(plan_pinned(loaded, fleet, only_hosts, hosts).await?.plan)
}

/// A plan and the digests its images were resolved to.
pub(super) struct Pinned {
    pub plan: Plan,
    /// Image as written -> `sha256:…`, every image the plan resolved.
    pub digests: BTreeMap<String, String>,
}

/// Desired state against observed, then the images resolved to digests
/// (see [`crate::registry`]) and the plan pinned to them: creates and
/// replaces carry their digest, a tag that moved under a running container
/// is a replace (or is shown as available). Everything but the resolution
/// is pure once the observation is in.
pub(super) async fn plan_pinned(
    loaded: &Loaded,
    fleet: &Fleet,
    only_hosts: &[String],
    hosts: &HostOptions,
) -> anyhow::Result<Pinned> {
    let current = planning::current_placement(&fleet.observed);
    let mut desired = placement::place(&loaded.project, &current).map_err(SpecError::from)?;
    if !only_hosts.is_empty() {
        desired.hosts.retain(|h, _| only_hosts.contains(h));
    }
    let mut plan = planning::diff(
        &desired,
        &fleet.observed,
        fleet.unreachable.clone(),
        loaded.checkout.commit.as_ref().map(|c| c.id.clone()),
    );
    let digests = resolve_digests(loaded, fleet, &desired, hosts).await?;
    planning::digests::pin(
        &mut plan,
        &desired,
        &fleet.observed,
        &digests,
        &explicit_pull_policies(&loaded.project),
    );
    let unpullable = planning::never_pulled(&plan, &desired, &fleet.observed);
    let mut problems = never_pulled_problems(&loaded.project, unpullable);
    problems.extend(engine_too_old_problems(
        &loaded.project,
        &plan,
        &fleet.observed,
    ));
    if !problems.is_empty() {
        return Err(SpecError::from(problems).into());
    }
    plan.environment = spec::environment_variables(&loaded.project)
        .into_iter()
        .map(|v| planning::EnvironmentValue {
            name: v.name,
            value: v.shown_value,
            stacks: v.stacks,
        })
        .collect();
    let policies = service_policies(&loaded.project);
    plan.rollouts = crate::apply::schedule::planned(&plan, |stack, service| {
        policies
            .get(&(stack.to_string(), service.to_string()))
            .map(|p| (p.depends_on.clone(), p.update.clone()))
            .unwrap_or_default()
    });
    Ok(Pinned { plan, digests })
}

/// How each service rolls out: what it waits for in its stack's
/// `depends_on` graph (validated acyclic by spec), its update/rollback
/// config and checks.
pub(super) fn service_policies(project: &Project) -> BTreeMap<(String, String), ServicePolicy> {
    let mut policies = BTreeMap::new();
    for stack in &project.stacks {
        for s in &stack.services {
            policies.insert(
                (stack.name.clone(), s.name.clone()),
                ServicePolicy {
                    depends_on: s
                        .depends_on
                        .iter()
                        .map(|(dep, condition)| {
                            // A container sharing `dep`'s network is made
                            // with the id of `dep`'s container on its host:
                            // it waits until `dep` has rolled out everywhere
                            // (the rollout treats every condition but
                            // `service_started` so), never for a first batch.
                            if s.network_peer.as_deref() == Some(dep.as_str()) {
                                (dep.clone(), DependsCondition::ServiceHealthy)
                            } else {
                                (dep.clone(), *condition)
                            }
                        })
                        .collect(),
                    update: s.deploy.update.clone(),
                    rollback: s.deploy.rollback.clone(),
                    validate: s.validate.clone(),
                    reload: s.reload.clone(),
                    publish: s
                        .publish
                        .as_ref()
                        .map(|p| crate::discovery::Publishing::new(p, &project.inventory)),
                },
            );
        }
    }
    policies
}

/// The (stack, service) pairs that write their `pull_policy`: the default
/// policy follows a moved `:latest`, a written `missing` does not.
fn explicit_pull_policies(project: &Project) -> BTreeSet<(String, String)> {
    project
        .stacks
        .iter()
        .flat_map(|s| {
            s.services
                .iter()
                .filter(|x| x.pull_policy_at.is_some())
                .map(|x| (s.name.clone(), x.name.clone()))
        })
        .collect()
}

/// Every image the plan needs (those of the containers wanted on the
/// reachable hosts, but `pull_policy: never`), resolved to its digest as
/// `settings.resolve_from` says: one request per distinct image, all in
/// parallel. An error names each registry and image that failed; no host
/// has been changed then.
async fn resolve_digests(
    loaded: &Loaded,
    fleet: &Fleet,
    desired: &placement::DesiredState,
    hosts: &HostOptions,
) -> anyhow::Result<BTreeMap<String, String>> {
    let settings = &loaded.project.inventory.settings;
    // Image -> the first (by name) reachable host that wants it.
    let mut images: BTreeMap<&str, &str> = BTreeMap::new();
    for (host, want) in &desired.hosts {
        if !fleet.observed.contains_key(host) {
            continue;
        }
        for d in &want.containers {
            if d.pull_policy != spec::PullPolicy::Never {
                images.entry(d.spec.image.as_str()).or_insert(host.as_str());
            }
        }
    }
    if images.is_empty() {
        return Ok(BTreeMap::new());
    }
    let started = std::time::Instant::now();
    let resolved = match settings.resolve_from {
        spec::ResolveFrom::None => return Ok(BTreeMap::new()),
        spec::ResolveFrom::Runner => {
            let resolver = crate::registry::Resolver::new(crate::registry::RegistryOptions {
                insecure: settings.insecure_registries.clone(),
                docker_config: hosts.docker_config.clone(),
                connect_timeout: hosts.connect_timeout.unwrap_or(settings.connect_timeout),
                timeout: RESOLVE_TIMEOUT,
            });
            resolver
                .resolve_all(&images.keys().map(|i| i.to_string()).collect())
                .await?
        }
        spec::ResolveFrom::Host => {
            let asked = images.iter().filter_map(|(image, host)| {
                let engine = fleet.engines.get(*host)?;
                Some(async move {
                    let digest =
                        tokio::time::timeout(RESOLVE_TIMEOUT, engine.distribution_digest(image))
                            .await
                            .map_err(|_| {
                                anyhow::anyhow!(
                                    "host `{host}` did not resolve image `{image}` within {}",
                                    humantime::format_duration(RESOLVE_TIMEOUT)
                                )
                            })
                            .and_then(|r| r);
                    (image.to_string(), digest)
                })
            });
            let mut resolved = BTreeMap::new();
            let mut failed = Vec::new();
            for (image, result) in futures::future::join_all(asked).await {
                match result {
                    Ok(d) if crate::registry::is_digest(&d) => {
                        resolved.insert(image, d);
                    }
                    Ok(d) => failed.push(anyhow::anyhow!(
                        "the engine named no usable digest for image `{image}` (`{d}`)"
                    )),
                    Err(e) => failed.push(e),
                }
            }
            if failed.len() == 1 {
                return Err(failed.remove(0));
            }
            if !failed.is_empty() {
                return Err(crate::error::Problems::of(&failed).into());
            }
            resolved
        }
    };
    tracing::debug!(
        "resolved {} image(s) to digests in {} ms",
        resolved.len(),
        started.elapsed().as_millis()
    );
    Ok(resolved)
}

/// Longest one image's resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Each container a plan would create from an image its host lacks while
/// `pull_policy: never` forbids pulling, at the `pull_policy` of its service.
fn never_pulled_problems(
    project: &Project,
    unpullable: Vec<(String, placement::Slot, String)>,
) -> Vec<spec::Diagnostic> {
    unpullable
        .into_iter()
        .map(|(host, slot, image)| {
            let service = project
                .stacks
                .iter()
                .find(|s| s.name == slot.stack)
                .and_then(|s| s.services.iter().find(|x| x.name == slot.service));
            spec::Diagnostic {
                location: service
                    .and_then(|s| s.pull_policy_at.clone().or(Some(s.location.clone())))
                    .unwrap_or_default(),
                message: format!(
                    "image `{image}` is not on host `{host}` and `pull_policy` of service `{}` is `never`",
                    slot.service
                ),
                help: Some(format!(
                    "load the image on `{host}` first (`docker pull` or `docker load` there), or write `pull_policy: missing` so berth pulls it"
                )),
            }
        })
        .collect()
}

/// Each service the plan would create on a host whose engine is too old for
/// one of its keys (healthcheck `start_interval`, `annotations`), at the
/// service: said before any change, where the engine would refuse the
/// create halfway through an apply. `docker compose` refuses these too.
fn engine_too_old_problems(
    project: &Project,
    plan: &Plan,
    observed: &BTreeMap<String, HostObservation>,
) -> Vec<spec::Diagnostic> {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for host in &plan.hosts {
        let Some((major, minor)) = observed.get(&host.host).and_then(|o| o.api_version) else {
            continue;
        };
        for c in &host.changes {
            let Some(d) = &c.desired else { continue };
            let Some((key, (need_major, need_minor))) =
                crate::hosts::docker::create::api_needed(&d.spec)
            else {
                continue;
            };
            if (major, minor) >= (need_major, need_minor)
                || !seen.insert((
                    host.host.clone(),
                    c.slot.stack.clone(),
                    c.slot.service.clone(),
                ))
            {
                continue;
            }
            let location = project
                .stacks
                .iter()
                .find(|s| s.name == c.slot.stack)
                .and_then(|s| s.services.iter().find(|x| x.name == c.slot.service))
                .map(|s| s.location.clone())
                .unwrap_or_default();
            problems.push(spec::Diagnostic {
                location,
                message: format!(
                    "service `{}` sets `{key}`, which needs Docker Engine API {need_major}.{need_minor}, and host `{}` speaks {major}.{minor}",
                    c.slot.service, host.host
                ),
                help: Some(format!(
                    "upgrade Docker on `{}` (Engine 25 speaks API 1.44), or remove `{key}` from the service",
                    host.host
                )),
            });
        }
    }
    problems
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
            state: crate::observed::ContainerState::Running,
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

    /// `pull_policy: never` and a host without the image: the plan stops,
    /// at the `pull_policy` line, naming the image and the host; an image
    /// the plan pulls there for another service is fine.
    #[test]
    fn an_image_never_pulled_and_absent_stops_the_plan() {
        let dir = crate::spec::test_support::repo(&[
            ("berth.yaml", "project: p\nhosts:\n  - {name: h, address: 10.0.0.1}\n"),
            ("stacks/web/compose.yaml", "services:\n  site:\n    image: reg/site:1\n    pull_policy: never\n  api:\n    image: reg/api:1\n  twin:\n    image: reg/api:1\n    pull_policy: never\n"),
        ]);
        let project = spec::load(dir.path()).expect("loads");
        let desired = placement::place(&project, &CurrentPlacement::new()).expect("placed");
        let observed = BTreeMap::from([(
            "h".to_string(),
            HostObservation {
                images: ["reg/api:0".to_string()].into(),
                ..Default::default()
            },
        )]);
        let plan = planning::diff(&desired, &observed, Vec::new(), None);
        assert_eq!(plan.hosts[0].pulls, vec!["reg/api:1".to_string()]);
        let problems =
            never_pulled_problems(&project, planning::never_pulled(&plan, &desired, &observed));
        assert_eq!(
            SpecError::from(problems).to_string(),
            "stacks/web/compose.yaml:4:18: image `reg/site:1` is not on host `h` and `pull_policy` of service `site` is `never`\n  \
             help: load the image on `h` first (`docker pull` or `docker load` there), or write `pull_policy: missing` so berth pulls it"
        );
    }

    /// A key the host's engine is too old for stops the plan at the
    /// service, naming the key, the host and both versions; a newer engine,
    /// or one whose version is unknown, is left to decide.
    #[test]
    fn a_key_too_new_for_the_engine_stops_the_plan() {
        let dir = crate::spec::test_support::repo(&[
            ("berth.yaml", "project: p\nhosts:\n  - {name: old, address: 10.0.0.1}\n  - {name: new, address: 10.0.0.2}\n  - {name: mem, address: 10.0.0.3}\n"),
            ("stacks/web/compose.yaml", "services:\n  api:\n    image: reg/api:1\n    deploy: {mode: global}\n    healthcheck:\n      test: [CMD, \"true\"]\n      start_interval: 1s\n"),
        ]);
        let project = spec::load(dir.path()).expect("loads");
        let desired = placement::place(&project, &CurrentPlacement::new()).expect("placed");
        let engine = |version| HostObservation {
            api_version: version,
            ..Default::default()
        };
        let observed = BTreeMap::from([
            ("old".to_string(), engine(Some((1, 41)))),
            ("new".to_string(), engine(Some((1, 44)))),
            ("mem".to_string(), engine(None)),
        ]);
        let plan = planning::diff(&desired, &observed, Vec::new(), None);
        assert_eq!(
            SpecError::from(engine_too_old_problems(&project, &plan, &observed)).to_string(),
            "stacks/web/compose.yaml:2:3: service `api` sets `healthcheck.start_interval`, which needs Docker Engine API 1.44, and host `old` speaks 1.41\n  \
             help: upgrade Docker on `old` (Engine 25 speaks API 1.44), or remove `healthcheck.start_interval` from the service"
        );
    }
}
