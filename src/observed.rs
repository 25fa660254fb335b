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
    /// Engine state: `created`, `running`, `paused`, `restarting`, `exited`, `dead`.
    pub state: String,
    /// `starting`, `healthy`, `unhealthy`; None without a healthcheck.
    pub health: Option<String>,
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
    /// In `ContainerSpec::restart` form: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub restart: String,
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
    /// The Docker Engine API version (major, minor) the connection speaks,
    /// so a plan can refuse a key the engine would reject before any change
    /// is made; None where unknown (the in-memory engine).
    pub api_version: Option<(usize, usize)>,
}

/// A container's live state, for health gates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub running: bool,
    pub restart_count: i64,
    pub exit_code: Option<i64>,
    /// `starting`, `healthy`, `unhealthy`; None without a healthcheck.
    pub health: Option<String>,
    /// Last healthcheck output, trimmed, for error messages.
    pub health_log: Option<String>,
}
