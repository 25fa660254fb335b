//! The validated, typed form of a berth repo: what every later stage reads.
//!
//! Produced only by `spec::load`, so holding a `Project` means the inventory
//! and every stack passed validation. `ContainerSpec` is canonical: its serde
//! form (sorted maps, normalised values) is what `berth.spec-hash` hashes, so
//! two specs that mean the same thing serialise to the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::diagnostic::Location;

/// The whole repo after validation.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    /// Scope of ownership on the hosts: containers labelled with another
    /// project are never touched, so several repos can share hosts.
    pub name: String,
    pub inventory: Inventory,
    /// Sorted by name. The stacks placed on hosts: those assigned to a
    /// Swarm target are in `swarm_stacks` instead.
    pub stacks: Vec<Stack>,
    /// Stacks deployed to a Swarm target (`kind: swarm` in berth.yaml) as
    /// Swarm services, sorted by name; placement never sees them.
    pub swarm_stacks: Vec<Stack>,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    /// Sorted by name; names unique.
    pub hosts: Vec<HostConfig>,
    pub settings: Settings,
    /// Certificate files (repo-relative) every secret is encrypted to
    /// (`secrets.recipients`); empty when berth.yaml names none.
    pub recipients: Vec<PathBuf>,
    /// Compose variables and profiles set in berth.yaml.
    pub compose: ComposeSettings,
    /// `discovery:`: where validated replicas are published; names unique.
    pub discovery: Vec<super::discovery_types::DiscoveryTarget>,
    /// Swarm targets (`kind: swarm`), sorted by name: not in `hosts`.
    pub swarms: Vec<SwarmTarget>,
}

impl Inventory {
    /// The Swarm target a stack is deployed to, if any.
    pub fn swarm_of(&self, stack: &str) -> Option<&SwarmTarget> {
        self.swarms
            .iter()
            .find(|s| s.stacks.iter().any(|(name, _)| name == stack))
    }
}

/// A Docker Swarm that berth deploys whole stacks to, as Swarm services
/// through the Engine API of one of its managers (reached like a host).
#[derive(Debug, Clone)]
pub struct SwarmTarget {
    /// The manager berth talks to: its name is the target's name.
    pub manager: HostConfig,
    /// The stacks assigned to it (its `stacks:` and every stack whose
    /// `target:` names it), sorted, each where it was assigned.
    pub stacks: Vec<(String, Location)>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// How many hosts are contacted at once.
    pub parallel: usize,
    /// How many services apply rolls out at once.
    pub rollout_parallel: usize,
    pub connect_timeout: std::time::Duration,
    /// SSH keepalive probe interval (`settings.keepalive`).
    pub keepalive: std::time::Duration,
    /// Longest wait for one Docker API call (`settings.docker_timeout`).
    pub docker_timeout: std::time::Duration,
    /// known_hosts file used for every SSH host; None means `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// The user's ssh config, honoured for aliases, ProxyJump, agents, users
    /// and ports; None: no ssh config at all (`-F /dev/null`).
    pub ssh_config: Option<PathBuf>,
    /// ssh's `KexAlgorithms` for every connection (`settings.ssh_kex`);
    /// None: ssh's own choice.
    pub ssh_kex: Option<String>,
    /// Registries asked for digests over plain HTTP (`host[:port]`).
    pub insecure_registries: std::collections::BTreeSet<String>,
    /// Where tags are resolved to digests.
    pub resolve_from: ResolveFrom,
}

/// Where image tags are resolved to digests at plan time
/// (`settings.resolve_from`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ResolveFrom {
    /// The machine running berth asks each registry (its Docker config's
    /// credentials; plain HTTP only for `insecure_registries`).
    #[default]
    Runner,
    /// A host that runs the image asks through its engine
    /// (`/distribution/{name}/json`), over berth's connection.
    Host,
    /// Tags are not resolved: nothing is pinned, moved tags go unnoticed.
    None,
}

/// How berth reaches a host's Docker Engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Over SSH, forwarding the remote Docker socket.
    Ssh,
    /// The Docker socket of the machine berth runs on (no SSH).
    Local,
}

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub name: String,
    pub address: String,
    /// None when berth.yaml sets none: the ssh config's, else 22.
    pub port: Option<u16>,
    /// None when berth.yaml sets none: the ssh config's, else `root`.
    pub user: Option<String>,
    /// None: use the ssh agent / default keys.
    pub identity_file: Option<PathBuf>,
    pub labels: BTreeMap<String, String>,
    /// Path of the Docker socket on the host.
    pub docker_socket: String,
    /// Directory on the host (tmpfs) where decrypted secrets are delivered.
    pub secrets_dir: String,
    /// Directory on the host (on disk) where config files are delivered,
    /// without a trailing `/`.
    pub configs_dir: String,
    pub transport: Transport,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    /// `stacks/<name>/compose.yaml`, relative to the repo root.
    pub file: PathBuf,
    /// Sorted by name.
    pub services: Vec<Service>,
    /// Networks declared by the stack (key as written, e.g. `default`, `back`).
    /// Every stack has a `default` network that services join when they list none.
    pub networks: BTreeMap<String, NetworkSpec>,
    /// Named volumes declared by the stack (key as written).
    pub volumes: BTreeMap<String, VolumeSpec>,
    /// Secrets declared by the stack (key as written): encrypted files in the repo.
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Configs declared by the stack (key as written) and the repo-relative
    /// bind mounts its services use: repo bytes delivered to the hosts.
    pub configs: BTreeMap<String, super::config_types::ConfigSpec>,
    /// How the Compose file was resolved: the other files read, where each
    /// variable came from, per-host containers from host variables.
    pub resolution: Resolution,
}

impl Stack {
    /// The bytes of every config the stack's containers read, on any host
    /// (the hosts' own variants included).
    pub fn config_data(&self) -> impl Iterator<Item = &super::config_types::ConfigData> {
        self.configs
            .values()
            .chain(self.resolution.config_variants.values())
            .map(|c| &c.data)
    }
}

/// A stack-level secret (`secrets: {db_password: {file: ./secrets/db.pgp}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The encrypted file, relative to the repo root (`stacks/web/secrets/db.pgp`);
    /// checked to exist when the spec is loaded.
    pub file: PathBuf,
    pub location: Location,
}

/// A service's use of a stack secret, delivered as a read-only file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Key in the stack's `secrets:`.
    pub source: String,
    /// Absolute path in the container; default `/run/secrets/<source>`.
    pub target: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// File mode; None = Compose's default 0444.
    pub mode: Option<u32>,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct NetworkSpec {
    /// Engine-side name: `<stack>_<key>` unless `name:` or `external` says otherwise.
    pub name: String,
    pub driver: Option<String>,
    pub external: bool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// Driver options (`com.docker.network.bridge.name`, ...), as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// None = attachable, berth's default (standalone containers join it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// None = the engine picks the driver and a free subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamSpec>,
}

/// `ipam:` of a network: address management as Compose writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct IpamSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One address pool of a network's `ipam.config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct IpamPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Addresses the driver must not hand out, by host name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct VolumeSpec {
    /// Engine-side name: `<stack>_<key>` unless `name:` or `external` says otherwise.
    pub name: String,
    pub driver: Option<String>,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
    /// Driver options (`type`, `o`, `device` of the `local` driver: NFS,
    /// tmpfs, a bind), as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub location: Location,
    pub deploy: Deploy,
    /// Services of the same stack that must be created/replaced first,
    /// with the condition to wait for.
    pub depends_on: BTreeMap<String, DependsCondition>,
    pub container: ContainerSpec,
    pub validate: Vec<ValidateCheck>,
    /// Secrets the service reads, sorted by target; the secrets stage turns
    /// them into files and digests in `container.secrets`.
    pub secrets: Vec<SecretRef>,
    /// Configs the service reads (`configs:` and repo-relative binds),
    /// sorted by target; turned into `container.configs` at load.
    pub configs: Vec<super::config_types::ConfigRef>,
    /// `x-berth.reload`: a changed config is reloaded in place instead of
    /// replacing the container.
    pub reload: Option<super::config_types::ReloadSpec>,
    /// `container_name`: the engine-side name of the service's one container
    /// per host, instead of `<stack>-<service>-<replica>`. Validation makes
    /// sure no host runs two replicas of it.
    pub container_name: Option<String>,
    /// `pull_policy`. Not part of the container spec: as in Compose,
    /// changing it does not recreate containers.
    pub pull_policy: PullPolicy,
    /// Where `pull_policy` is written, for the error when a `never`
    /// image is not on a host.
    pub pull_policy_at: Option<Location>,
    /// Services of the same stack whose changes replace this service's
    /// containers too (`depends_on.<svc>.restart: true`, and the service
    /// whose network namespace `network_mode: service:<svc>` shares). Their
    /// spec hashes go into `container.follows` when the desired state is built.
    pub follows: BTreeSet<String>,
    /// `network_mode: service:<svc>`: the service whose container on the
    /// same host this one joins (placement checks it runs there).
    pub network_peer: Option<String>,
    /// Where `build:` is written when the service also names an `image`:
    /// berth deploys the image and builds nothing (said in a load warning).
    pub build_ignored: Option<Location>,
    /// `x-berth.adopt`: the containers berth does not manage that this
    /// service's containers take over (replace once).
    pub adopt: Option<Adopt>,
    /// `x-berth.publish`: the replicas' host port, published to discovery
    /// targets once validated and retired before they stop.
    pub publish: Option<super::discovery_types::Publish>,
}

/// `x-berth.adopt`: the running containers, which berth does not manage,
/// that a service takes over (`berth import` writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Adopt {
    /// One name: the service's container must get it (`container_name`,
    /// or `<stack>-<service>-1`); placement checks it.
    Name(String),
    /// One name per replica, replica 1 first (a Compose service scaled to
    /// several containers): each replica is named after the container it
    /// takes over, and keeps that name while the list stays.
    Replicas(Vec<String>),
}

impl Adopt {
    /// Every container taken over.
    pub fn names(&self) -> &[String] {
        match self {
            Adopt::Name(name) => std::slice::from_ref(name),
            Adopt::Replicas(names) => names,
        }
    }

    /// The name of replica `replica` (1-based), when the list names it.
    pub fn replica_name(&self, replica: u32) -> Option<&str> {
        match self {
            Adopt::Name(_) => None,
            Adopt::Replicas(names) => replica
                .checked_sub(1)
                .and_then(|i| names.get(i as usize))
                .map(String::as_str),
        }
    }
}

/// `pull_policy`, as Compose defines it (`build` is refused: berth never
/// builds). The plan decides the pulls from it, for the containers it
/// creates or replaces on a host: `Missing` pulls an image the host lacks,
/// `Every` also one the host last tagged longer ago than its period (as
/// Compose's `mustPull`), `Always` pulls it whether or not the host has it,
/// `Never` never pulls (and an image the host lacks stops the plan). Whether
/// a tag that moved in the registry replaces running containers is the
/// plan's decision from the policy (`plan::digests::follows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// `missing` (and its old spelling `if_not_present`): pull when the
    /// host lacks the image. The default.
    #[default]
    Missing,
    /// `always`: pull whenever a container of the service is created or
    /// replaced.
    Always,
    /// `never`: use what the host has; never pull.
    Never,
    /// `daily`, `weekly`, `every_<duration>`: pull when the host lacks the
    /// image or last tagged it (pulled it) longer ago than this.
    Every(std::time::Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependsCondition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    pub mode: DeployMode,
    /// Replicas for `Replicated` (default 1); ignored for `Global`.
    pub replicas: u32,
    /// Each constraint is `(lhs, op, rhs)`, e.g. `node.labels.role == web`.
    pub constraints: Vec<Constraint>,
    /// 0 = unlimited.
    pub max_replicas_per_node: u32,
    pub update: UpdateConfig,
    pub rollback: UpdateConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployMode {
    Replicated,
    Global,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// `node.hostname`, `node.labels.<key>` (also `node.role`, `node.id` are rejected at validation).
    pub attribute: ConstraintAttribute,
    pub equal: bool,
    pub value: String,
    /// As written, for messages.
    pub text: String,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintAttribute {
    Hostname,
    Label(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateConfig {
    /// Batch size; 0 = all at once. Default 1.
    pub parallelism: u32,
    pub delay: std::time::Duration,
    pub order: UpdateOrder,
    pub failure_action: FailureAction,
    pub monitor: std::time::Duration,
    pub max_failure_ratio: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: std::time::Duration::ZERO,
            order: UpdateOrder::StopFirst,
            failure_action: FailureAction::Rollback,
            monitor: std::time::Duration::ZERO,
            max_failure_ratio: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Rollback,
    Pause,
    Continue,
}

/// An `x-berth.validate` check, run after a new container is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidateCheck {
    Exec {
        command: Vec<String>,
        timeout: std::time::Duration,
    },
    Http {
        url: String,
        status: u16,
        body_contains: Option<String>,
        timeout: std::time::Duration,
    },
    Tcp {
        port: u16,
        timeout: std::time::Duration,
    },
}

/// What a container is, independent of which replica it is. Canonical: the
/// JSON of this struct is hashed into `berth.spec-hash` and kept in the
/// `berth.spec` label so the next plan can diff field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    /// Engine-side network names, with aliases (the service name is always an alias).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthcheckSpec>,
    /// `no`, `always`, `on-failure[:N]`, `unless-stopped`. Default `unless-stopped`
    /// for berth-managed services (a reconciler expects containers to stay up).
    pub restart: super::restart::RestartPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,
    /// Mount point -> options (e.g. `size=64m`), as in `docker run --tmpfs`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Seconds; None = engine default (10 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Secret name -> the file berth delivers for it; filled by the secrets
    /// stage. Holds the encrypted file's digest, never the value, so a plan
    /// without the key still sees a change.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretFileSpec>,
    /// Compose variables the service's container settings were written
    /// with, and their values (`sha256:` and 8 bytes of digest for names
    /// that look secret), so a plan names the variable behind a change
    /// (`~ variables.TAG = "1.4" -> "1.5"`). Not sent to the engine.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,

    // Keys added later: each is skipped when unset, so the canonical JSON
    // (and the spec hash) of a service that does not use them is unchanged
    // and upgrading berth replaces no container.
    /// `expose`: `<port>/<protocol>`, sorted; ports the container listens on
    /// without publishing them (Config.ExposedPorts, with `ports`' targets).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// `init`: None = the engine's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `stop_signal`, as written (`SIGQUIT`, `SIGRTMIN+3`, `9`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `network_mode`: `host`, `none`, `bridge` or `container:<name>`
    /// (`service:<svc>` is resolved to its container's name). When set,
    /// `networks` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `extra_hosts` as `host:ip` lines, in the order written (the order of
    /// /etc/hosts lines for one name matters).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Resolvers, in order of preference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceSpec>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Bytes of /dev/shm; None = the engine's default (64 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// `os[/arch[/variant]]`: the engine refuses an image of another platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// `ipc`: `none`, `private`, `shareable`, `host`, `container:<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// `pid`: `host` or `container:<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// Sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// `memswap_limit` in bytes; -1 = unlimited swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<i64>,
    /// `cpu_shares`: relative CPU weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// `cpuset`: CPUs the container may use (`0-3`, `0,1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// `annotations` (HostConfig.Annotations; needs Docker API 1.43).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Config name -> the file (or directory) berth delivers for it: the
    /// digest of the repo's bytes, so a change replaces (or reloads) exactly
    /// the readers. The mounts themselves are in `mounts`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, super::config_types::ConfigFileSpec>,
    /// Fixed addresses (`networks.<n>.ipv4_address`, `ipv6_address`), by
    /// engine-side network name; each is inside the network's declared
    /// subnet, and validation allows one container of the service per host.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, NetworkAddress>,
    /// Service name -> spec hash of each service this one follows (see
    /// [`Service::follows`]): filled when the desired state is built, so a
    /// change there is a change here, named in the plan as `follows.<svc>`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub follows: BTreeMap<String, String>,
}

/// A container's fixed address on one network, in canonical form
/// (`fd00::5`, not `fd00:0::0005`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct NetworkAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

/// A host device made available in the container (`devices:`).
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, schemars::JsonSchema,
)]
pub struct DeviceSpec {
    pub host: String,
    pub container: String,
    /// cgroup permissions, `rwm` by default.
    pub permissions: String,
}

/// A secret delivered as a read-only file in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SecretFileSpec {
    /// `sha256:<hex>` of the encrypted file in the repo.
    pub digest: String,
    /// Absolute path in the container (`/run/secrets/<name>` by default).
    pub target: String,
    /// Numeric owner of the file on the host; default `0`.
    pub uid: String,
    pub gid: String,
    /// Default 0400: readable by its owner only.
    pub mode: u32,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, schemars::JsonSchema,
)]
pub struct PortSpec {
    /// Host IP to bind; None = all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// None = ephemeral host port (Docker picks); Some = fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u16>,
    pub target: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, schemars::JsonSchema,
)]
pub struct MountSpec {
    /// `volume` (source = engine-side volume name), `bind` (source = host path).
    pub kind: MountKind,
    pub source: String,
    pub target: String,
    // `default`: a saved plan leaves `false` out and must read back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Bind propagation (`rslave`, ...), binds only; None = the engine's
    /// `rprivate`: mounts made on the host later stay invisible inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// SELinux relabel of the mount's host directory (bind or volume): `z`
    /// (shared between containers) or `Z` (private to this one); None =
    /// left as labelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct HealthcheckSpec {
    /// `["NONE"]` disables the image's check; otherwise `CMD`/`CMD-SHELL` form.
    pub test: Vec<String>,
    /// All durations in milliseconds (0 = engine default).
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
    /// Probe interval during the start period (needs Docker API 1.44: the
    /// plan refuses it for a host with an older engine, as `docker compose`
    /// does, rather than drop it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Resources {
    /// Bytes; None = unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// CPUs in billionths (Docker NanoCpus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `deploy.resources.reservations.devices`: GPUs and other devices a
    /// driver (NVIDIA's) hands to the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_requests: Vec<DeviceRequestSpec>,
}

/// One device request, as Compose writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct DeviceRequestSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// How many devices; -1 = all. None when `device_ids` names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// All of these (`gpu`, `compute`, `utility`, ...) must be offered.
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self == &Resources::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct LoggingSpec {
    pub driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

// Compose variables: what berth.yaml sets, and what a stack used (see
// `variables` for where values come from and how plans show them).

/// Compose-related settings of `berth.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeSettings {
    /// Top-level `variables:`.
    pub variables: BTreeMap<String, String>,
    pub variables_at: BTreeMap<String, Location>,
    /// `hosts[].variables`, by host name (hosts without any are absent).
    pub host_variables: BTreeMap<String, BTreeMap<String, String>>,
    /// `settings.strict_variables`.
    pub strict_variables: bool,
    /// `settings.environment_variables`; None when berth.yaml does not say.
    pub environment_variables: Option<Vec<String>>,
    pub environment_variables_at: Option<Location>,
    /// `stacks.<name>.profiles`, with where they are written.
    pub stack_profiles: BTreeMap<String, (Vec<String>, Location)>,
}

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VariableOrigin {
    /// The environment of the machine running berth.
    Environment,
    /// A stack's `.env` (repo-relative path).
    DotEnv(PathBuf),
    /// `hosts[].variables` of these hosts.
    Host(Vec<String>),
    /// The top-level `variables:` of berth.yaml.
    Project,
}

impl std::fmt::Display for VariableOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariableOrigin::Environment => write!(f, "the environment"),
            VariableOrigin::DotEnv(file) => write!(f, "`{}`", file.display()),
            VariableOrigin::Host(hosts) => write!(
                f,
                "`variables` of host {}",
                hosts
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            VariableOrigin::Project => write!(f, "`variables` in `berth.yaml`"),
        }
    }
}

/// One variable a stack used, and the value it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedVariable {
    pub value: String,
    pub origin: VariableOrigin,
    /// Where it is first used (a Compose file, `.env` or env file).
    pub location: Location,
}

impl UsedVariable {
    /// The value as a plan may show it: `<redacted>` for names that look secret.
    pub fn shown_value(&self, name: &str) -> String {
        if looks_secret(name) {
            "<redacted>".to_string()
        } else {
            self.value.clone()
        }
    }
}

/// Names like `DB_PASSWORD`, `API_TOKEN`, `SECRET_KEY`: their values are
/// never shown.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    // `PASS` covers `PASSWORD`, `PASSWD` and the common `DB_PASS`.
    [
        "PASS",
        "PWD",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "PRIVATE",
        "AUTH",
    ]
    .iter()
    .any(|word| upper.contains(word))
}

/// How a stack's Compose file was resolved, beyond the model itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolution {
    /// Repo files read besides the stack file (`.env`, `env_file`s,
    /// `extends` and `include` files), repo-relative, sorted. `--trust`
    /// must check these are in the signed commit like the stack file.
    pub files: Vec<PathBuf>,
    /// Every variable used, by name.
    pub variables: BTreeMap<String, UsedVariable>,
    /// Profiles that were active for this stack.
    pub profiles: Vec<String>,
    /// Service -> host -> the container for that host, for services whose
    /// container differs per host through `hosts[].variables`. A host not
    /// listed runs the service's own `container`.
    pub per_host: BTreeMap<String, BTreeMap<String, ContainerSpec>>,
    /// Configs whose bytes differ on some hosts through `hosts[].variables`
    /// (a `content:` reading a host variable), by digest: the containers
    /// of `per_host` read them, and apply delivers them from here.
    pub config_variants: BTreeMap<String, super::config_types::ConfigSpec>,
}

impl Resolution {
    /// The container `service` runs on `host`: the host's own when host
    /// variables make it differ, else `default`. Secrets are attached to the
    /// service's container after loading, so they are taken from `default`;
    /// configs are read in each host's pass, so a host's own are its own.
    pub fn container_for<'a>(
        &'a self,
        service: &str,
        host: &str,
        default: &'a ContainerSpec,
    ) -> std::borrow::Cow<'a, ContainerSpec> {
        match self.per_host.get(service).and_then(|hosts| hosts.get(host)) {
            Some(spec) if spec.secrets == default.secrets => std::borrow::Cow::Borrowed(spec),
            Some(spec) => {
                let mut spec = spec.clone();
                spec.secrets = default.secrets.clone();
                std::borrow::Cow::Owned(spec)
            }
            None => std::borrow::Cow::Borrowed(default),
        }
    }
}
