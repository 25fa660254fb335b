//! What a host reports about the containers, networks, volumes and images
//! berth manages there: plain data, read by the plan and the gates.

use std::collections::{BTreeMap, BTreeSet};

/// A container berth manages, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The image reference the container was created from.
    pub image: String,
    pub state: ContainerState,
    /// None without a healthcheck.
    pub health: Option<Health>,
    /// Seconds since the epoch.
    pub created: i64,
    /// The settings `docker update` can change by hand, as the engine has
    /// them now; None where the engine was not asked (in-memory engine).
    pub live: Option<LiveSettings>,
}

/// A running container's settings that can be edited in place (`docker
/// update`), read back so the plan can name hand edits as drift.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSettings {
    pub restart: crate::spec::RestartPolicy,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// What one host has that belongs to the project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostObservation {
    pub containers: Vec<ObservedContainer>,
    /// Engine-side names of every network on the host (managed or not: a
    /// stack may join an external one).
    pub networks: BTreeSet<String>,
    /// Engine-side names of every volume on the host.
    pub volumes: BTreeSet<String>,
    /// Names of containers on the host that this project does not manage
    /// (never touched; listed so a plan can say a wanted name is taken).
    pub foreign_names: BTreeSet<String>,
    /// Image references present on the host, as the engine lists them:
    /// `repo:tag` and `repo@sha256:…` (Docker Hub names without `docker.io/`
    /// or `library/`; compare with [`ImageRef::engine_form`](crate::spec::ImageRef::engine_form)).
    pub images: BTreeSet<String>,
    /// How long ago the host last tagged (pulled) each of the images a
    /// refresh `pull_policy` (`daily`, `weekly`, `every_<d>`) needs, in the
    /// form of `images`: read at observation, from the engine's
    /// `LastTagTime` and the runner's clock, so the plan decides from data.
    /// An image on the host without an entry has no known tag time and
    /// counts as stale, as Compose counts a zero `LastTagTime`.
    pub image_ages: BTreeMap<String, std::time::Duration>,
    /// How long ago berth last resolved each image's tag and deployed what
    /// it named on this host (image as the repo writes it), from the record
    /// beside the run lock (see `hosts::lock`): what `daily`/`weekly`
    /// count from before following a moved tag. Read with `image_ages`
    /// (only when a service has a refresh policy); an image without an
    /// entry was never recorded and counts as due.
    pub image_checks: BTreeMap<String, std::time::Duration>,
    /// The Docker Engine API version (major, minor) the connection speaks,
    /// so a plan can refuse a key the engine would reject before any change
    /// is made; None where unknown (the in-memory engine).
    pub api_version: Option<(usize, usize)>,
    /// Containers this project does not manage that the repo asks berth to
    /// take over (`x-berth.adopt`), inspected in full by name, so the plan
    /// can compare them with the repo's spec. Only those asked for.
    pub adoptable: BTreeMap<String, crate::import::InspectedContainer>,
    /// Container ID -> the `RepoDigests` of the image it runs
    /// (`reg/app@sha256:…`), from the list calls (no extra request): what
    /// the plan compares a tag's resolved digest against. A container
    /// without an entry runs an image with no known registry digest.
    pub running_digests: BTreeMap<String, Vec<String>>,
    /// The project's config files on the host (see `hosts::config_files`);
    /// None when not read (the project has no configs).
    pub configs: Option<ConfigObservation>,
}

/// The config copies on a host, as its `sha256sum` reports them: what a
/// plan compares with the repo's digests to find hand edits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigObservation {
    /// `<stack>/<service>/<slug>/<version>` -> hex sha256 of its `data`.
    pub store: BTreeMap<String, String>,
    /// `.live/<stack>/<service>/<replica>/<dir>/<file>` -> what it links.
    pub live: BTreeMap<String, LiveCopy>,
}

/// A reloading container's config file on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveCopy {
    /// The version its link points at.
    pub version: String,
    /// Hex sha256 of the file the link reaches.
    pub hex: String,
    /// The version the container last reloaded (`-`: none recorded).
    pub reloaded: String,
}

/// A container's live state, for health gates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub running: bool,
    pub restart_count: i64,
    pub exit_code: Option<i64>,
    /// None without a healthcheck (or while not running).
    pub health: Option<Health>,
    /// Last healthcheck output, trimmed, for error messages.
    pub health_log: Option<String>,
}

/// A container's engine state. Serialized as the engine's word (`running`,
/// `exited`, …) so plans, saved plans and reports keep their JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A state this berth does not know (a newer engine), kept as reported.
    Other(String),
}

impl ContainerState {
    /// The engine's word for the state.
    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Other(s) => s,
        }
    }

    /// The state the engine names `word`; never fails, an unknown word is kept.
    pub fn parse(word: &str) -> ContainerState {
        match word {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            other => ContainerState::Other(other.to_string()),
        }
    }

    /// Running, or restarting by its restart policy: the engine keeps it up,
    /// so the plan does not count it as stopped outside berth.
    pub fn is_up(&self) -> bool {
        matches!(self, ContainerState::Running | ContainerState::Restarting)
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for ContainerState {
    fn from(word: &str) -> ContainerState {
        ContainerState::parse(word)
    }
}

impl serde::Serialize for ContainerState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ContainerState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ContainerState, D::Error> {
        let word = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(ContainerState::parse(&word))
    }
}

impl schemars::JsonSchema for ContainerState {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
    fn inline_schema() -> bool {
        true
    }
}

/// A healthcheck's verdict (Docker's `starting`, `healthy`, `unhealthy`);
/// a container without a healthcheck has none (`Option<Health>`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// The engine's word for the verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }

    /// The verdict the engine names `word`; None for `none`, empty or unknown words.
    pub fn parse(word: &str) -> Option<Health> {
        match word {
            "starting" => Some(Health::Starting),
            "healthy" => Some(Health::Healthy),
            "unhealthy" => Some(Health::Unhealthy),
            _ => None,
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
