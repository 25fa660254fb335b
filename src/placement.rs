//! placement: decides which replica of which service runs on which host.
//!
//! Input: the validated [`Project`] and where replicas run today. Output: the
//! [`DesiredState`] — per host, the containers, networks and volumes that
//! should exist, each container with its canonical spec hash.
//! Invariants: deterministic (same input, same output); sticky (a replica
//! stays on its host while that host is still eligible, so an unrelated
//! change never reshuffles containers); spread (new replicas go to the
//! eligible host with the fewest replicas of that service).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::spec::{
    Adopt, ContainerSpec, Deploy, DeployMode, Diagnostic, HostConfig, NetworkSpec, Project,
    PullPolicy, Service, Stack, VolumeSpec,
};

/// One replica of one service: the identity a container carries in its labels.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct Slot {
    pub stack: String,
    pub service: String,
    pub replica: u32,
}

impl Slot {
    /// Engine-side container name, as Compose names them: `<stack>-<service>-<n>`.
    pub fn container_name(&self) -> String {
        format!("{}-{}-{}", self.stack, self.service, self.replica)
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}.{}", self.stack, self.service, self.replica)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContainer {
    pub slot: Slot,
    pub name: String,
    pub spec: ContainerSpec,
    /// sha256 of the canonical JSON of `spec`.
    pub spec_hash: String,
    /// The service's `pull_policy`: whether the plan pulls the image for
    /// this container (not part of the spec: changing it replaces nothing).
    pub pull_policy: PullPolicy,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredHost {
    /// Sorted by stack, service, replica.
    pub containers: Vec<DesiredContainer>,
    /// Networks the host's containers join (engine-side name), external ones included.
    pub networks: BTreeMap<String, (String, NetworkSpec)>,
    /// Named volumes the host's containers mount, keyed by engine-side name,
    /// with the stack that declares them.
    pub volumes: BTreeMap<String, (String, VolumeSpec)>,
    /// Names of containers here the repo takes over (`x-berth.adopt`):
    /// a container of that name berth does not manage is replaced once,
    /// not a blocker.
    pub adopt: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub project: String,
    /// Every inventory host, even one with nothing to run (so prunes happen there).
    pub hosts: BTreeMap<String, DesiredHost>,
}

/// Where each slot runs now: slot -> host name. Built from the observation.
pub type CurrentPlacement = BTreeMap<Slot, BTreeSet<String>>;

/// The canonical hash of a container spec: the hex sha256 of its JSON, whose
/// maps are sorted (BTreeMap) and whose defaults are normalised by `spec`.
pub fn spec_hash(spec: &ContainerSpec) -> String {
    let json = canonical_json(spec);
    hex::encode(Sha256::digest(json.as_bytes()))
}

/// The JSON kept in the `berth.spec` label and hashed into `berth.spec-hash`.
pub fn canonical_json(spec: &ContainerSpec) -> String {
    // Serialising plain data with string keys cannot fail.
    serde_json::to_string(spec).unwrap_or_default()
}

/// Assigns every replica to a host. Errors (with the service's location) when
/// a service cannot be placed as asked, e.g. two replicas would bind the same
/// host port on one host.
pub fn place(
    project: &Project,
    current: &CurrentPlacement,
) -> Result<DesiredState, Vec<Diagnostic>> {
    let mut state = DesiredState {
        project: project.name.clone(),
        hosts: project
            .inventory
            .hosts
            .iter()
            .map(|h| (h.name.clone(), DesiredHost::default()))
            .collect(),
    };
    let mut problems = Vec::new();

    for stack in &project.stacks {
        let base_hashes = base_hashes(stack);
        for service in &stack.services {
            let eligible: Vec<&HostConfig> = project
                .inventory
                .hosts
                .iter()
                .filter(|h| host_is_eligible(h, &service.deploy))
                .collect();
            if eligible.is_empty() {
                problems.push(Diagnostic {
                    location: service.location.clone(),
                    message: format!(
                        "stack `{}`: service `{}` has no eligible host",
                        stack.name, service.name
                    ),
                    help: Some("check `deploy.placement.constraints` against the host labels in `berth.yaml`".into()),
                });
                continue;
            }
            let assignment = assign(stack, service, &eligible, current);
            if let Err(d) = assignment.as_ref() {
                problems.push(d.clone());
                continue;
            }
            let assignment = assignment.unwrap_or_default();
            if let Some(problem) = start_first_port_clash(stack, service, &assignment) {
                problems.push(problem);
                continue;
            }
            for (slot, host) in assignment {
                // `hosts[].variables` may give a host its own container.
                let spec = with_follows(
                    stack
                        .resolution
                        .container_for(&service.name, &host, &service.container)
                        .into_owned(),
                    service,
                    &base_hashes,
                );
                // Configs are mounted from this host's copies.
                let configs_dir = project
                    .inventory
                    .hosts
                    .iter()
                    .find(|h| h.name == host)
                    .map_or(crate::spec::configs::HOST_DIR, |h| h.configs_dir.as_str());
                let spec = crate::spec::configs::with_mounts(
                    spec,
                    configs_dir,
                    &project.name,
                    &host,
                    &stack.name,
                    &service.name,
                    slot.replica,
                );
                // A list of `x-berth.adopt` names the replicas it covers.
                let name = service
                    .adopt
                    .as_ref()
                    .and_then(|a| a.replica_name(slot.replica))
                    .map(str::to_string)
                    .or_else(|| service.container_name.clone())
                    .unwrap_or_else(|| slot.container_name());
                match &service.adopt {
                    Some(Adopt::Replicas(names)) if names.contains(&name) => {
                        state.hosts.entry(host.clone()).or_default().adopt.insert(name.clone());
                    }
                    Some(Adopt::Replicas(_)) => {}
                    Some(Adopt::Name(adopt)) if *adopt == name => {
                        state.hosts.entry(host.clone()).or_default().adopt.insert(adopt.clone());
                    }
                    // The one name is replica 1's: the others keep berth's names.
                    Some(Adopt::Name(adopt)) if slot.replica == 1 => problems.push(Diagnostic {
                        location: service.location.clone(),
                        message: format!(
                            "stack `{}`: service `{}` takes over container `{adopt}` (`x-berth.adopt`), but its container on host `{host}` is named `{name}`",
                            stack.name, service.name
                        ),
                        help: Some(format!("add `container_name: {adopt}` to the service, so the container keeps its name")),
                    }),
                    Some(Adopt::Name(_)) | None => {}
                }
                let desired = state.hosts.entry(host).or_default();
                add_stack_resources(desired, stack, &spec);
                desired.containers.push(DesiredContainer {
                    name,
                    slot,
                    spec_hash: spec_hash(&spec),
                    spec,
                    pull_policy: service.pull_policy,
                });
            }
        }
    }

    for (host, desired) in &mut state.hosts {
        desired.containers.sort_by(|a, b| a.slot.cmp(&b.slot));
        problems.extend(port_conflicts(project, host, desired));
        problems.extend(name_checks(project, host, desired));
    }

    if problems.is_empty() {
        Ok(state)
    } else {
        Err(problems)
    }
}

/// `start-first` runs the new container beside the old one: both cannot
/// bind the same fixed host port.
fn start_first_port_clash(
    stack: &Stack,
    service: &Service,
    assignment: &[(Slot, String)],
) -> Option<Diagnostic> {
    if service.deploy.update.order != crate::spec::UpdateOrder::StartFirst {
        return None;
    }
    let port = service.container.ports.iter().find_map(|p| p.published)?;
    let (_, host) = assignment.first()?;
    Some(Diagnostic {
        location: service.location.clone(),
        message: format!(
            "stack `{}`: service `{}` uses `update_config.order: start-first` but publishes fixed host port {port}: on host `{host}` the new container cannot bind it while the old one runs",
            stack.name, service.name
        ),
        help: Some("use `order: stop-first`, or publish no fixed host port (put a proxy in front)".into()),
    })
}

fn host_is_eligible(host: &HostConfig, deploy: &Deploy) -> bool {
    deploy.constraints.iter().all(|c| c.matches(host))
}

/// Replicas of one service -> hosts. Sticky first, then spread.
fn assign(
    stack: &Stack,
    service: &Service,
    eligible: &[&HostConfig],
    current: &CurrentPlacement,
) -> Result<Vec<(Slot, String)>, Diagnostic> {
    let slot = |replica| Slot {
        stack: stack.name.clone(),
        service: service.name.clone(),
        replica,
    };
    if service.deploy.mode == DeployMode::Global {
        // One replica per eligible host; replica 1 on each, so the name is stable.
        return Ok(eligible.iter().map(|h| (slot(1), h.name.clone())).collect());
    }
    let max_per_host = match service.deploy.max_replicas_per_node {
        0 => u32::MAX,
        n => n,
    };
    let capacity = (eligible.len() as u64) * u64::from(max_per_host);
    if u64::from(service.deploy.replicas) > capacity {
        return Err(Diagnostic {
            location: service.location.clone(),
            message: format!(
                "stack `{}`: service `{}` wants {} replicas but {} eligible host(s) with `max_replicas_per_node: {}` hold only {}",
                stack.name, service.name, service.deploy.replicas, eligible.len(), max_per_host, capacity
            ),
            help: Some("lower `deploy.replicas`, raise `max_replicas_per_node`, or label more hosts".into()),
        });
    }

    let mut count: BTreeMap<&str, u32> = eligible.iter().map(|h| (h.name.as_str(), 0)).collect();
    let mut placed: Vec<(Slot, String)> = Vec::new();
    let mut unplaced = Vec::new();
    for replica in 1..=service.deploy.replicas {
        let here = current.get(&slot(replica)).and_then(|hosts| {
            hosts
                .iter()
                .find(|h| count.get(h.as_str()).is_some_and(|n| *n < max_per_host))
        });
        match here {
            Some(host) => {
                if let Some(n) = count.get_mut(host.as_str()) {
                    *n += 1;
                }
                placed.push((slot(replica), host.clone()));
            }
            None => unplaced.push(replica),
        }
    }
    for replica in unplaced {
        // Fewest replicas of this service first; ties by host name (BTreeMap order).
        let Some((&host, _)) = count
            .iter()
            .filter(|(_, n)| **n < max_per_host)
            .min_by_key(|(_, n)| **n)
        else {
            break;
        };
        if let Some(n) = count.get_mut(host) {
            *n += 1;
        }
        placed.push((slot(replica), host.to_string()));
    }
    placed.sort();
    Ok(placed)
}

/// Each service's spec hash before `follows` is filled in.
fn base_hashes(stack: &Stack) -> BTreeMap<&str, String> {
    stack
        .services
        .iter()
        .map(|s| (s.name.as_str(), spec_hash(&s.container)))
        .collect()
}

/// The service's container spec with the hashes of the services it follows.
fn with_follows(
    mut container: ContainerSpec,
    service: &Service,
    base_hashes: &BTreeMap<&str, String>,
) -> ContainerSpec {
    for name in &service.follows {
        if let Some(hash) = base_hashes.get(name.as_str()) {
            container.follows.insert(name.clone(), hash.clone());
        }
    }
    container
}

fn add_stack_resources(desired: &mut DesiredHost, stack: &Stack, spec: &ContainerSpec) {
    for net in spec.networks.keys() {
        if let Some(ns) = stack.networks.values().find(|n| &n.name == net) {
            desired
                .networks
                .entry(net.clone())
                .or_insert_with(|| (stack.name.clone(), ns.clone()));
        }
    }
    for mount in &spec.mounts {
        if mount.kind != crate::spec::MountKind::Volume {
            continue;
        }
        if let Some(vs) = stack.volumes.values().find(|v| v.name == mount.source) {
            desired
                .volumes
                .entry(mount.source.clone())
                .or_insert_with(|| (stack.name.clone(), vs.clone()));
        }
    }
}

/// Container names are unique on a host (a `container_name` may clash with
/// another service's), and a service that shares another's network
/// (`network_mode: service:<name>`) needs that service's container on the
/// same host.
fn name_checks(project: &Project, host: &str, desired: &DesiredHost) -> Vec<Diagnostic> {
    let service_of = |slot: &Slot| {
        project
            .stacks
            .iter()
            .find(|s| s.name == slot.stack)
            .and_then(|s| s.services.iter().find(|sv| sv.name == slot.service))
    };
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, &Slot> = BTreeMap::new();
    for c in &desired.containers {
        let location = service_of(&c.slot)
            .map(|s| s.location.clone())
            .unwrap_or_default();
        if let Some(first) = seen.insert(c.name.as_str(), &c.slot) {
            problems.push(Diagnostic {
                location: location.clone(),
                message: format!(
                    "stack `{}`: service `{}` wants the container name `{}` on host `{host}`, already used there by `{}/{}`",
                    c.slot.stack, c.slot.service, c.name, first.stack, first.service
                ),
                help: Some("give each service its own `container_name`, or spread them with `deploy.placement.constraints`".into()),
            });
        }
        let Some(peer) = service_of(&c.slot).and_then(|s| s.network_peer.as_ref()) else {
            continue;
        };
        let here = desired
            .containers
            .iter()
            .any(|o| o.slot.stack == c.slot.stack && &o.slot.service == peer);
        if !here {
            problems.push(Diagnostic {
                location,
                message: format!(
                    "stack `{}`: service `{}` shares the network of `{peer}` (`network_mode: service:{peer}`), which does not run on host `{host}`",
                    c.slot.stack, c.slot.service
                ),
                help: Some(format!("give both services the same placement, or run `{peer}` with `deploy.mode: global`")),
            });
        }
    }
    problems
}

/// Two containers on one host binding the same host port would make the
/// second fail at start: refuse at plan time, naming both.
fn port_conflicts(project: &Project, host: &str, desired: &DesiredHost) -> Vec<Diagnostic> {
    let mut seen: BTreeMap<(String, u16, String), &Slot> = BTreeMap::new();
    let mut problems = Vec::new();
    for c in &desired.containers {
        for p in &c.spec.ports {
            let Some(published) = p.published else {
                continue;
            };
            let ip = p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into());
            let key = (ip, published, p.protocol.clone());
            if let Some(first) = seen.get(&key) {
                let location = project
                    .stacks
                    .iter()
                    .find(|s| s.name == c.slot.stack)
                    .and_then(|s| s.services.iter().find(|sv| sv.name == c.slot.service))
                    .map(|sv| sv.location.clone())
                    .unwrap_or_default();
                let same_service = first.stack == c.slot.stack && first.service == c.slot.service;
                problems.push(Diagnostic {
                    location,
                    message: if same_service {
                        format!(
                            "stack `{}`: service `{}` publishes host port {} twice on host `{}`",
                            c.slot.stack, c.slot.service, published, host
                        )
                    } else {
                        format!(
                            "stack `{}`: service `{}` publishes host port {} on host `{}`, already published there by `{}/{}`",
                            c.slot.stack, c.slot.service, published, host, first.stack, first.service
                        )
                    },
                    help: Some(if same_service {
                        "spread the replicas with `deploy.placement.max_replicas_per_node: 1`, or drop the fixed host port".into()
                    } else {
                        "give one of them another host port, or constrain them to different hosts".into()
                    }),
                });
            } else {
                seen.insert(key, &c.slot);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{
        Constraint, ConstraintAttribute, Inventory, Location, PortSpec, Settings, Transport,
        UpdateConfig,
    };

    fn host(name: &str, role: &str) -> HostConfig {
        HostConfig {
            name: name.into(),
            address: format!("{name}.example"),
            port: None,
            user: None,
            identity_file: None,
            labels: BTreeMap::from([("role".to_string(), role.to_string())]),
            docker_socket: "/var/run/docker.sock".into(),
            secrets_dir: "/run/berth/secrets".into(),
            configs_dir: crate::spec::configs::HOST_DIR.into(),
            transport: Transport::Ssh,
            location: Location::default(),
        }
    }

    fn service(
        name: &str,
        replicas: u32,
        mode: DeployMode,
        constraints: Vec<Constraint>,
    ) -> Service {
        Service {
            name: name.into(),
            location: Location::default(),
            deploy: Deploy {
                mode,
                replicas,
                constraints,
                max_replicas_per_node: 0,
                update: UpdateConfig::default(),
                rollback: UpdateConfig::default(),
            },
            depends_on: BTreeMap::new(),
            container: ContainerSpec {
                image: format!("reg/{name}:1"),
                restart: crate::spec::RestartPolicy::UnlessStopped,
                ..Default::default()
            },
            validate: Vec::new(),
            secrets: Vec::new(),
            configs: Vec::new(),
            reload: None,
            container_name: None,
            pull_policy: Default::default(),
            pull_policy_at: None,
            follows: Default::default(),
            network_peer: None,
            build_ignored: None,
            adopt: None,
            publish: None,
        }
    }

    fn role(value: &str) -> Constraint {
        Constraint {
            attribute: ConstraintAttribute::Label("role".into()),
            equal: true,
            value: value.into(),
            text: format!("node.labels.role == {value}"),
            location: Location::default(),
        }
    }

    fn project(services: Vec<Service>) -> Project {
        Project {
            root: "/repo".into(),
            name: "p".into(),
            inventory: Inventory {
                hosts: vec![host("a", "web"), host("b", "web"), host("c", "worker")],
                settings: Settings {
                    parallel: 4,
                    rollout_parallel: 16,
                    connect_timeout: std::time::Duration::from_secs(5),
                    keepalive: std::time::Duration::from_secs(15),
                    docker_timeout: std::time::Duration::from_secs(120),
                    known_hosts: None,
                    ssh_config: None,
                    ssh_kex: None,
                    insecure_registries: Default::default(),
                    resolve_from: Default::default(),
                },
                recipients: Vec::new(),
                compose: Default::default(),
                discovery: Vec::new(),
                swarms: Vec::new(),
            },
            stacks: vec![Stack {
                name: "s".into(),
                file: "stacks/s/compose.yaml".into(),
                services,
                networks: BTreeMap::new(),
                volumes: BTreeMap::new(),
                secrets: BTreeMap::new(),
                configs: BTreeMap::new(),
                resolution: Default::default(),
            }],
            swarm_stacks: Vec::new(),
        }
    }

    fn names(state: &DesiredState, host: &str) -> Vec<String> {
        state.hosts[host]
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn replicas_spread_over_eligible_hosts() {
        let p = project(vec![service(
            "api",
            3,
            DeployMode::Replicated,
            vec![role("web")],
        )]);
        let state = place(&p, &CurrentPlacement::new()).expect("placed");
        assert_eq!(names(&state, "a"), ["s-api-1", "s-api-3"]);
        assert_eq!(names(&state, "b"), ["s-api-2"]);
        assert!(names(&state, "c").is_empty());
    }

    #[test]
    fn placement_is_sticky() {
        let p = project(vec![service(
            "api",
            2,
            DeployMode::Replicated,
            vec![role("web")],
        )]);
        let mut current = CurrentPlacement::new();
        let slot = |r| Slot {
            stack: "s".into(),
            service: "api".into(),
            replica: r,
        };
        current.insert(slot(1), ["b".to_string()].into());
        current.insert(slot(2), ["a".to_string()].into());
        let state = place(&p, &current).expect("placed");
        assert_eq!(names(&state, "a"), ["s-api-2"]);
        assert_eq!(names(&state, "b"), ["s-api-1"]);
    }

    #[test]
    fn a_replica_on_a_host_no_longer_eligible_moves() {
        let p = project(vec![service(
            "api",
            1,
            DeployMode::Replicated,
            vec![role("web")],
        )]);
        let mut current = CurrentPlacement::new();
        current.insert(
            Slot {
                stack: "s".into(),
                service: "api".into(),
                replica: 1,
            },
            ["c".to_string()].into(),
        );
        let state = place(&p, &current).expect("placed");
        assert_eq!(names(&state, "a"), ["s-api-1"]);
        assert!(names(&state, "c").is_empty());
    }

    #[test]
    fn global_runs_once_per_eligible_host() {
        let p = project(vec![service("agent", 1, DeployMode::Global, vec![])]);
        let state = place(&p, &CurrentPlacement::new()).expect("placed");
        for h in ["a", "b", "c"] {
            assert_eq!(names(&state, h), ["s-agent-1"]);
        }
    }

    #[test]
    fn two_replicas_on_one_host_cannot_share_a_fixed_port() {
        let mut svc = service("api", 3, DeployMode::Replicated, vec![role("web")]);
        svc.container.ports.push(PortSpec {
            host_ip: None,
            published: Some(8080),
            target: 80,
            protocol: "tcp".into(),
        });
        let errors = place(&project(vec![svc]), &CurrentPlacement::new()).expect_err("conflict");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message,
            "stack `s`: service `api` publishes host port 8080 twice on host `a`"
        );
        assert!(errors[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("max_replicas_per_node"));
    }

    #[test]
    fn spec_hash_changes_with_the_spec_only() {
        let a = service("api", 1, DeployMode::Replicated, vec![]).container;
        let mut b = a.clone();
        assert_eq!(spec_hash(&a), spec_hash(&b));
        b.environment.insert("X".into(), "1".into());
        assert_ne!(spec_hash(&a), spec_hash(&b));
    }
}
