//! The [`Engine`] trait: every operation berth needs on a host, so the
//! apply executor runs the same against a real host and the in-memory one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;

use super::{lock, secret_files};
use crate::observed::{ContainerStatus, HostObservation};
use crate::spec::{ContainerSpec, NetworkSpec, VolumeSpec};

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
