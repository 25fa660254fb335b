//! hosts: talks to each host's Docker Engine — over one SSH connection per
//! host (openssh native mux, strict known_hosts, the remote Docker socket
//! forwarded to a local unix socket, bollard on top), or the local socket for
//! `transport: local`.
//!
//! Input: the inventory. Output: an [`Engine`] per host, and through it the
//! [`HostObservation`] of what berth manages there. Invariant: only containers,
//! networks and volumes labelled with this project are ever listed, so
//! unmanaged ones are never touched.

pub mod docker;
pub mod fleet;
pub mod lock;
pub mod memory;
pub mod secret_files;
pub mod ssh;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::spec::{ContainerSpec, HostConfig, NetworkSpec, VolumeSpec};

/// Labels berth writes on everything it creates.
pub mod labels {
    pub const PROJECT: &str = "berth.project";
    pub const STACK: &str = "berth.stack";
    pub const SERVICE: &str = "berth.service";
    pub const REPLICA: &str = "berth.replica";
    pub const SPEC_HASH: &str = "berth.spec-hash";
    /// Canonical JSON of the `ContainerSpec`, so a plan can diff field by field.
    pub const SPEC: &str = "berth.spec";
    pub const COMMIT: &str = "berth.commit";
    /// Set on an old container kept (stopped, renamed) during a replace.
    pub const RETIRED: &str = "berth.retired";
}

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
    /// or `library/`; compare with [`docker::canonical_image_ref`]).
    pub images: BTreeSet<String>,
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

/// Every Docker operation berth needs on a host. The SSH + bollard engine is
/// the real one; the in-memory one serves fast unit tests of plan/apply logic.
/// Each mutating call says its end state, so it may be re-run after a crash.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Inventory name of the host.
    fn host(&self) -> &str;
    /// Lists the project's containers (all states), and the host's networks,
    /// volumes and images: a handful of list calls, never one per container.
    async fn observe(&self, project: &str) -> anyhow::Result<HostObservation>;
    /// Ensures the image is present (registry auth from the runner's Docker config).
    async fn pull(&self, image: &str) -> anyhow::Result<()>;
    async fn create_network(
        &self,
        spec: &NetworkSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()>;
    async fn create_volume(
        &self,
        spec: &VolumeSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()>;
    /// Creates (does not start) a container; returns its ID.
    async fn create_container(
        &self,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<String>;
    async fn start_container(&self, id: &str) -> anyhow::Result<()>;
    /// Stops within `grace` seconds (then kill); already stopped is fine.
    async fn stop_container(&self, id: &str, grace: Option<u64>) -> anyhow::Result<()>;
    /// Removes the container (force); already gone is fine. Never removes volumes.
    async fn remove_container(&self, id: &str) -> anyhow::Result<()>;
    async fn rename_container(&self, id: &str, new_name: &str) -> anyhow::Result<()>;
    async fn status(&self, id: &str) -> anyhow::Result<ContainerStatus>;
    /// Runs a command inside the container; returns exit code and combined output.
    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> anyhow::Result<(i64, String)>;
    /// Runs a shell command on the host itself (not in a container), over
    /// the host's SSH connection: for checks that must see what the host
    /// sees (`x-berth.validate` http and tcp). Returns exit code and output.
    async fn host_exec(&self, script: &str, timeout: Duration) -> anyhow::Result<(i64, String)> {
        let _ = (script, timeout);
        anyhow::bail!(
            "host `{}`: running commands on the host is not supported here",
            self.host()
        )
    }
    /// Delivers secret files (see [`secret_files`]) in one remote command:
    /// the values go through the connection's stdin onto the host's tmpfs.
    async fn write_secrets(
        &self,
        secrets_dir: &str,
        files: &[secret_files::SecretFile<'_>],
    ) -> anyhow::Result<()> {
        let _ = (secrets_dir, files);
        anyhow::bail!(
            "host `{}`: delivering secrets is not supported here",
            self.host()
        )
    }
    /// Removes the secret versions under `project_dir` that no container
    /// uses any more (`keep`: `<stack>/<service>/<version>`).
    async fn prune_secrets(
        &self,
        project_dir: &str,
        keep: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let _ = (project_dir, keep);
        Ok(())
    }
    /// Takes the run lock for `key` (the project) on the host, waiting up to
    /// `timeout`; held until the returned guard is released or the process
    /// dies. Engines with nothing to share (in-memory) need not lock.
    async fn lock(
        &self,
        key: &str,
        holder: &str,
        timeout: Duration,
    ) -> Result<lock::HostLock, lock::LockError> {
        let _ = (key, holder, timeout);
        Ok(lock::HostLock::none())
    }
    /// Closes the connection and removes the forwarded socket.
    async fn close(&self);
}

/// Runner-side options for connecting to hosts.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// known_hosts file; None = `~/.ssh/known_hosts`. Checking is always strict.
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Short directory for SSH control sockets and forwarded Docker sockets.
    pub runtime_dir: PathBuf,
    /// Overrides every host's identity file (e.g. `--identity`).
    pub identity_file: Option<PathBuf>,
    /// ssh_config file for the connections (`--ssh-config`); None: none.
    pub ssh_config: Option<PathBuf>,
}

/// Connects to one host. Errors name the host and the cause (unreachable,
/// host key mismatch, auth refused, engine not answering).
pub async fn connect(host: &HostConfig, opts: &ConnectOptions) -> anyhow::Result<Box<dyn Engine>> {
    ssh::connect(host, opts).await
}
