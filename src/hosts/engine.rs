//! What berth needs of a host, in two halves: the [`Docker`] API calls, and
//! a [`Shell`] to run scripts on the host itself.
//!
//! Why two: they vary apart. A Swarm manager or a Podman socket answers the
//! Docker calls in its own way (services instead of containers, no
//! `docker update`), and would implement [`Docker`] only; the host's shell
//! — where secrets are written to tmpfs and the run lock is taken — stays
//! the same whatever engine runs there. So secret delivery
//! ([`secret_files`]) and the run lock ([`lock`]) are written once, on top
//! of any [`Shell`], and no backend reimplements them.
//!
//! [`Engine`] is the two together, as the apply executor and the fleet hold
//! a host: the Docker calls, plus the shell-based operations as provided
//! methods. [`Host`] puts a real Docker and a real shell together
//! ([`super::connect`] builds it); the in-memory engine of the tests is one
//! too, with a fake Docker API and a shell rooted in a temporary directory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::shell::Shell;
use super::{lock, secret_files};
use crate::observed::{ContainerStatus, HostObservation};
use crate::spec::{ContainerSpec, NetworkSpec, VolumeSpec};

/// The Docker Engine API calls berth makes on one host. The bollard engine
/// is the real one; the in-memory one serves fast unit tests of plan/apply
/// logic. Each mutating call says its end state, so it may be re-run after
/// a crash.
#[async_trait]
pub trait Docker: Send + Sync {
    /// Inventory name of the host.
    fn host(&self) -> &str;
    /// Lists the project's containers (all states), and the host's networks,
    /// volumes and images: a handful of list calls, never one per container.
    async fn observe(&self, project: &str) -> anyhow::Result<HostObservation>;
    /// When the host last tagged (pulled) each of `images` it has (the
    /// engine's `LastTagTime`), for the refresh `pull_policy`s: one inspect
    /// per image, so asked only for the images those policies name. An
    /// image the host lacks, or never tagged itself, has no entry.
    async fn last_tagged(&self, images: &[String]) -> anyhow::Result<BTreeMap<String, SystemTime>>;
    /// Inspects the named containers in full, with their images' defaults:
    /// for `berth import` (every container on the host) and for the plan of
    /// a take-over (`x-berth.adopt`). A name no container has is left out.
    /// Engines that cannot say refuse.
    async fn inspect_containers(
        &self,
        names: &[String],
    ) -> anyhow::Result<Vec<crate::import::InspectedContainer>> {
        let _ = names;
        anyhow::bail!(
            "host `{}`: this engine cannot inspect containers berth does not manage",
            self.host()
        )
    }
    /// How the engine reaches registries (`docker info`'s `RegistryConfig`):
    /// for `berth import`, which lists the registries the host pulls from
    /// over plain HTTP in `settings.insecure_registries`. `None` when the
    /// engine cannot say.
    async fn registry_config(
        &self,
    ) -> anyhow::Result<Option<crate::import::registries::EngineRegistries>> {
        Ok(None)
    }
    /// Ensures the image is present (registry auth from the runner's Docker config).
    async fn pull(&self, image: &str) -> anyhow::Result<()>;
    /// The manifest digest `image`'s tag names now in its registry, asked
    /// by the engine (`/distribution/{name}/json`, registry auth from the
    /// runner's Docker config): for `settings.resolve_from: host`.
    async fn distribution_digest(&self, image: &str) -> anyhow::Result<String> {
        anyhow::bail!(
            "host `{}` cannot resolve image `{image}` to a digest through its engine",
            self.host()
        )
    }
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
    /// Sends `signal` (`SIGHUP`) to the container's main process: a config
    /// reload (`x-berth.reload`). A backend without it says so.
    async fn signal(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        anyhow::bail!(
            "host `{}`: cannot send {signal} to container `{id}`: this engine cannot signal containers",
            self.host()
        )
    }
    /// The IDs of berth's containers as the engine reports events about
    /// them (start, die, health status...), from one event stream per host:
    /// a hint to look at a container again now, so a gate sees health
    /// change as it happens instead of at its next poll. Only a hint: the
    /// gate still decides from [`Docker::status`], and keeps a slower poll
    /// beside it, so a lost or silent stream costs time, never a hang.
    /// `None` when the engine has none (the default).
    fn container_events(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }
}

/// A host as the executor holds it: its [`Docker`] API and its [`Shell`].
/// Everything done through the shell is a provided method built on
/// [`Engine::shell`], so a backend supplies only the two halves.
#[async_trait]
pub trait Engine: Docker {
    /// The host's shell: over its SSH connection, or the local `sh`.
    fn shell(&self) -> &dyn Shell;
    /// How errors name the host, e.g. ``host `edge-1` (root@10.77.0.11:22)``.
    fn who(&self) -> &str;

    /// Runs a shell command on the host itself (not in a container), over
    /// the host's SSH connection: for checks that must see what the host
    /// sees (`x-berth.validate` http and tcp). Returns exit code and output.
    async fn host_exec(&self, script: &str, timeout: Duration) -> anyhow::Result<(i64, String)> {
        self.shell().run(self.who(), script, None, timeout).await
    }

    /// Delivers secret files (see [`secret_files`]) in one remote command:
    /// the values go through the connection's stdin onto the host's tmpfs.
    async fn write_secrets(
        &self,
        secrets_dir: &str,
        files: &[secret_files::SecretFile<'_>],
    ) -> anyhow::Result<()> {
        secret_files::write(self.shell(), self.who(), secrets_dir, files).await
    }

    /// Removes the secret versions under `project_dir` that no container
    /// uses any more (`keep`: `<stack>/<service>/<version>`).
    async fn prune_secrets(
        &self,
        project_dir: &str,
        keep: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        secret_files::prune(self.shell(), self.who(), project_dir, keep).await
    }

    /// Takes the run lock for `key` (the project) on the host, waiting up to
    /// `timeout`; held until the returned guard is released or the process
    /// dies (see [`lock`]).
    async fn lock(
        &self,
        key: &str,
        holder: &str,
        timeout: Duration,
    ) -> Result<lock::HostLock, lock::LockError> {
        lock::take(self.shell(), self.host(), self.who(), key, holder, timeout).await
    }

    /// Closes the connection and removes the forwarded socket.
    async fn close(&self) {
        self.shell().close().await;
    }
}

/// A real host: a [`Docker`] API and the [`Shell`] of the same machine (for
/// `transport: ssh`, both go through one SSH connection, which the shell
/// owns and closes).
pub struct Host {
    docker: Box<dyn Docker>,
    shell: Box<dyn Shell>,
    who: String,
}

impl Host {
    /// `who` is how errors name the host (see [`Engine::who`]).
    pub fn new(docker: Box<dyn Docker>, shell: Box<dyn Shell>, who: String) -> Host {
        Host { docker, shell, who }
    }
}

impl Engine for Host {
    fn shell(&self) -> &dyn Shell {
        self.shell.as_ref()
    }

    fn who(&self) -> &str {
        &self.who
    }
}

/// Every call goes to the host's Docker API as is.
#[async_trait]
impl Docker for Host {
    fn host(&self) -> &str {
        self.docker.host()
    }
    async fn observe(&self, project: &str) -> anyhow::Result<HostObservation> {
        self.docker.observe(project).await
    }
    async fn last_tagged(&self, images: &[String]) -> anyhow::Result<BTreeMap<String, SystemTime>> {
        self.docker.last_tagged(images).await
    }
    async fn inspect_containers(
        &self,
        names: &[String],
    ) -> anyhow::Result<Vec<crate::import::InspectedContainer>> {
        self.docker.inspect_containers(names).await
    }
    async fn registry_config(
        &self,
    ) -> anyhow::Result<Option<crate::import::registries::EngineRegistries>> {
        self.docker.registry_config().await
    }
    async fn pull(&self, image: &str) -> anyhow::Result<()> {
        self.docker.pull(image).await
    }
    async fn distribution_digest(&self, image: &str) -> anyhow::Result<String> {
        self.docker.distribution_digest(image).await
    }
    async fn create_network(
        &self,
        spec: &NetworkSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.docker.create_network(spec, labels).await
    }
    async fn create_volume(
        &self,
        spec: &VolumeSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.docker.create_volume(spec, labels).await
    }
    async fn create_container(
        &self,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<String> {
        self.docker.create_container(name, spec, labels).await
    }
    async fn start_container(&self, id: &str) -> anyhow::Result<()> {
        self.docker.start_container(id).await
    }
    async fn stop_container(&self, id: &str, grace: Option<u64>) -> anyhow::Result<()> {
        self.docker.stop_container(id, grace).await
    }
    async fn remove_container(&self, id: &str) -> anyhow::Result<()> {
        self.docker.remove_container(id).await
    }
    async fn rename_container(&self, id: &str, new_name: &str) -> anyhow::Result<()> {
        self.docker.rename_container(id, new_name).await
    }
    async fn status(&self, id: &str) -> anyhow::Result<ContainerStatus> {
        self.docker.status(id).await
    }
    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> anyhow::Result<(i64, String)> {
        self.docker.exec(id, command, timeout).await
    }
    async fn signal(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        self.docker.signal(id, signal).await
    }
    fn container_events(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.docker.container_events()
    }
}
