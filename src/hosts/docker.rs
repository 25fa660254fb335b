//! The [`Engine`] over the Docker Engine API (bollard), shared by both
//! transports: `ssh` hands it a forwarded unix socket, `local` the host's own.
//!
//! Everything here speaks API 1.41 at most (Docker 20.10): the connection is
//! version-negotiated, and no field newer than 1.41 is ever set (for example
//! no healthcheck `StartInterval`, which needs 1.44). Every error names the
//! host and the container, network or image it concerns.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use base64::Engine as _;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    HostConfigLogConfig, Mount, MountType, NetworkConnectRequest, NetworkCreateRequest,
    NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptions,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt as _;

use super::{labels, ContainerStatus, Engine, HostObservation, ObservedContainer};
use crate::spec::{ContainerSpec, MountKind, NetworkSpec, VolumeSpec};

/// The oldest Engine API berth talks to: Docker 20.10, what Debian 11/12 and
/// Ubuntu 20.04/22.04 ship. Older engines lack fields berth sets.
pub const MIN_API_VERSION: (usize, usize) = (1, 41);

/// Longest exec output kept; the rest is drained and dropped so the command
/// never blocks on a full pipe.
const EXEC_OUTPUT_LIMIT: usize = 64 * 1024;

/// Longest healthcheck output kept for error messages.
const HEALTH_LOG_LIMIT: usize = 500;

/// Grace assumed for a stop without an explicit one when sizing the request
/// timeout: the container's own `StopTimeout` is unknown here, so allow for a
/// long one rather than give up while the engine is still stopping it.
const STOP_TIMEOUT_FALLBACK_SECS: u64 = 600;

/// A Docker Engine, with the host it belongs to for error messages.
pub struct DockerEngine {
    host: String,
    /// `host `edge-1` (root@10.77.0.11:22)`: the prefix of every error.
    who: String,
    docker: Docker,
    /// Container ID -> name, learned from `observe` and `create_container`,
    /// so errors about an ID can name the container.
    names: std::sync::Mutex<HashMap<String, String>>,
    /// The SSH connection the socket goes through; None for `transport: local`.
    tunnel: tokio::sync::Mutex<Option<super::ssh::Tunnel>>,
    /// The host's `secrets_dir`: where secret mounts come from.
    secrets_dir: String,
}

/// Longest a secret delivery or clean-up may take on a host.
const SECRET_TIMEOUT: Duration = Duration::from_secs(30);

impl DockerEngine {
    /// Runs `script` with `sh` on the host (over the SSH connection, or here
    /// for `transport: local`), feeding `input` to its stdin: values that must
    /// not appear in a process list go this way. Returns exit code and output.
    async fn run_script(
        &self,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> anyhow::Result<(i64, String)> {
        use tokio::io::AsyncWriteExt as _;
        let mut command = match self.tunnel.lock().await.as_ref() {
            Some(tunnel) => tunnel.command(&format!("sh -c '{}'", script.replace('\'', "'\\''"))),
            None => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(script);
                c
            }
        };
        command
            .stdin(if input.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let run = async {
            let mut child = command.spawn()?;
            let stdin = child.stdin.take();
            // Feed stdin while collecting the output: a script that stops
            // early (and closes its stdin) must be heard, not an EPIPE.
            let feed = async move {
                if let (Some(bytes), Some(mut stdin)) = (input, stdin) {
                    let _ = stdin.write_all(bytes).await;
                    let _ = stdin.shutdown().await;
                }
            };
            let ((), output) = tokio::join!(feed, child.wait_with_output());
            output
        };
        let output = match tokio::time::timeout(timeout, run).await {
            Ok(result) => result.map_err(|e| {
                anyhow::Error::new(e)
                    .context(format!("{}: cannot run a command on the host", self.who))
            })?,
            Err(_) => anyhow::bail!(
                "{}: command on the host timed out after {} s",
                self.who,
                timeout.as_secs()
            ),
        };
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok((
            i64::from(output.status.code().unwrap_or(-1)),
            truncate(&text, 64 * 1024),
        ))
    }

    /// `who` is how errors name the host, e.g. ``host `edge-1` (root@10.77.0.11:22)``.
    pub(crate) fn new(
        host: String,
        who: String,
        docker: Docker,
        tunnel: Option<super::ssh::Tunnel>,
        secrets_dir: String,
    ) -> Self {
        DockerEngine {
            host,
            who,
            docker,
            names: std::sync::Mutex::new(HashMap::new()),
            tunnel: tokio::sync::Mutex::new(tunnel),
            secrets_dir,
        }
    }

    /// An error about `what` on this host, caused by a Docker API error.
    fn fail(&self, what: impl std::fmt::Display, err: DockerError) -> anyhow::Error {
        engine_cause(err).context(format!("{}: {what}", self.who))
    }

    /// `` `web-api-1` `` when the ID is known, else the short ID.
    fn container(&self, id: &str) -> String {
        let name = self
            .names
            .lock()
            .ok()
            .and_then(|names| names.get(id).cloned());
        match name {
            Some(name) => format!("container `{name}`"),
            None => format!("container `{}`", short_id(id)),
        }
    }

    fn remember(&self, id: &str, name: &str) {
        if let Ok(mut names) = self.names.lock() {
            names.insert(id.to_string(), name.to_string());
        }
    }

    async fn network_exists(&self, name: &str) -> anyhow::Result<bool> {
        // The `name` filter matches substrings: compare exactly.
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.fail(format_args!("cannot list networks named `{name}`"), e))?;
        Ok(networks.iter().any(|n| n.name.as_deref() == Some(name)))
    }
}

/// Turns a bollard error into a cause that reads well after the context:
/// the engine's own message for API errors, the transport error otherwise.
fn engine_cause(err: DockerError) -> anyhow::Error {
    match err {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => anyhow!("Docker Engine answered {status_code}: {}", message.trim()),
        DockerError::RequestTimeoutError => anyhow!("the Docker Engine did not answer in time"),
        other => anyhow::Error::new(other).context("no answer from the Docker Engine"),
    }
}

fn status_code(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[async_trait]
impl Engine for DockerEngine {
    fn host(&self) -> &str {
        &self.host
    }

    /// Four list calls, issued together: containers (filtered by the project
    /// label on the engine side), networks, volumes, images. Health comes
    /// from the list's `Status` text, so there is no per-container inspect.
    async fn observe(&self, project: &str) -> anyhow::Result<HostObservation> {
        // All containers in one call: the project's are observed in full,
        // the others only by name, so a plan can say a name is taken.
        let containers = self.docker.list_containers(Some(
            ListContainersOptionsBuilder::default().all(true).build(),
        ));
        let networks = self.docker.list_networks(None);
        let volumes = self
            .docker
            .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>);
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>);
        let (containers, networks, volumes, images) =
            tokio::join!(containers, networks, volumes, images);
        let what = format!("cannot read the state of project `{project}`");
        let containers = containers.map_err(|e| self.fail(&what, e))?;
        let networks = networks.map_err(|e| self.fail(&what, e))?;
        let volumes = volumes.map_err(|e| self.fail(&what, e))?;
        let images = images.map_err(|e| self.fail(&what, e))?;

        let mut observation = HostObservation::default();
        for c in containers {
            let Some(id) = c.id else { continue };
            let name = c
                .names
                .as_ref()
                .and_then(|names| names.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let labels = c.labels.unwrap_or_default();
            if labels.get(labels::PROJECT).map(String::as_str) != Some(project) {
                observation.foreign_names.insert(name);
                continue;
            }
            self.remember(&id, &name);
            observation.containers.push(ObservedContainer {
                id,
                name,
                labels: labels.into_iter().collect(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                health: c.status.as_deref().and_then(health_from_status),
                created: c.created.unwrap_or_default(),
                live: None,
            });
        }
        observation.containers.sort_by(|a, b| a.name.cmp(&b.name));
        // One inspect per managed container, all at once on the same
        // connection: the list call does not carry what `docker update` edits.
        let live = futures::future::join_all(
            observation
                .containers
                .iter()
                .map(|c| self.docker.inspect_container(&c.id, None)),
        )
        .await;
        for (c, inspected) in observation.containers.iter_mut().zip(live) {
            c.live = inspected
                .ok()
                .and_then(|i| i.host_config)
                .map(|h| live_settings(&h));
        }
        observation.networks = networks.into_iter().filter_map(|n| n.name).collect();
        observation.volumes = volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        observation.images = images
            .into_iter()
            .flat_map(|i| i.repo_tags.into_iter().chain(i.repo_digests))
            .filter(|r| !r.starts_with("<none>"))
            .collect();
        Ok(observation)
    }

    /// Pulls `image` (a tag, or `latest` when none is given: an empty tag
    /// would pull every tag). Registry credentials come from the runner's
    /// Docker config, see [`registry_credentials`]; they are sent to the
    /// engine only, never logged.
    async fn pull(&self, image: &str) -> anyhow::Result<()> {
        let (from_image, tag) = split_image_ref(image);
        let credentials = registry_credentials(&registry_of(&from_image));
        let options = CreateImageOptionsBuilder::default()
            .from_image(&from_image)
            .tag(&tag)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let mut first_error = None;
        while let Some(item) = stream.next().await {
            if let Err(err) = item {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            None => Ok(()),
            Some(DockerError::DockerStreamError { error }) => Err(anyhow!(
                "{}: cannot pull image `{image}`: {}",
                self.who,
                error.trim()
            )),
            Some(err) => Err(self.fail(format_args!("cannot pull image `{image}`"), err)),
        }
    }

    /// Creates the network unless one of that name exists. The existence
    /// check comes first because API 1.41 engines create a second network
    /// of the same name instead of refusing (`CheckDuplicate` is gone from
    /// newer API models, so it cannot be asked for).
    async fn create_network(
        &self,
        spec: &NetworkSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        if self.network_exists(&spec.name).await? {
            return Ok(());
        }
        let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        all_labels.extend(labels.clone());
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: spec.driver.clone(),
            internal: Some(spec.internal),
            // Standalone containers may join; harmless off Swarm.
            attachable: Some(true),
            labels: Some(all_labels),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            Err(err) if status_code(&err) == Some(409) => Ok(()),
            Err(err) => Err(self.fail(format_args!("cannot create network `{}`", spec.name), err)),
        }
    }

    /// Creates the volume; the engine returns an existing one of the same
    /// name and driver as is, so this may be re-run.
    async fn create_volume(
        &self,
        spec: &VolumeSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        all_labels.extend(labels.clone());
        let request = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            driver: spec.driver.clone(),
            labels: Some(all_labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| self.fail(format_args!("cannot create volume `{}`", spec.name), e))
    }

    /// Creates the container and joins all its networks. API 1.41 accepts
    /// only one network at create, so the first (by name) is joined there and
    /// the others with `connect` before the container ever starts. A
    /// half-made container (create worked, connect failed) is removed again,
    /// so the call either fully happens or leaves nothing behind.
    async fn create_container(
        &self,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<String> {
        let (body, more_networks) = create_body(spec, labels, &self.secrets_dir)
            .map_err(|e| anyhow!("{}: cannot create container `{name}`: {e}", self.who))?;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(err) if status_code(&err) == Some(409) => {
                return Err(anyhow!(
                    "{}: container name `{name}` is already in use\n  help: a container \
                     berth does not manage has this name; rename or remove it on the host",
                    self.who
                ))
            }
            Err(err) if status_code(&err) == Some(404) => {
                return Err(self.fail(
                    format_args!(
                        "cannot create container `{name}` (is image `{}` pulled and every network created?)",
                        spec.image
                    ),
                    err,
                ))
            }
            Err(err) => {
                return Err(self.fail(format_args!("cannot create container `{name}`"), err))
            }
        };
        self.remember(&created.id, name);
        for (network, endpoint) in more_networks {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(endpoint),
            };
            if let Err(err) = self.docker.connect_network(&network, request).await {
                let _ = self.remove_container(&created.id).await;
                return Err(self.fail(
                    format_args!("cannot connect container `{name}` to network `{network}`"),
                    err,
                ));
            }
        }
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> anyhow::Result<()> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| self.fail(format_args!("cannot start {}", self.container(id)), e))
    }

    /// Already stopped (304) and already gone (404) both count as stopped,
    /// so a step re-run after a crash succeeds.
    async fn stop_container(&self, id: &str, grace: Option<u64>) -> anyhow::Result<()> {
        let mut options = StopContainerOptionsBuilder::default();
        if let Some(grace) = grace {
            options = options.t(i32::try_from(grace).unwrap_or(i32::MAX));
        }
        // The engine answers only once the container is down: allow for the grace.
        let wait = grace.unwrap_or(STOP_TIMEOUT_FALLBACK_SECS) + 60;
        let docker = self.docker.clone().with_timeout(Duration::from_secs(wait));
        match docker.stop_container(id, Some(options.build())).await {
            Ok(()) => Ok(()),
            Err(err) if matches!(status_code(&err), Some(304 | 404)) => Ok(()),
            Err(err) => Err(self.fail(format_args!("cannot stop {}", self.container(id)), err)),
        }
    }

    /// Force-removes the container, never its volumes (`v=false`: named
    /// volumes hold data, and anonymous ones are left for the user too).
    async fn remove_container(&self, id: &str) -> anyhow::Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if status_code(&err) == Some(404) => Ok(()),
            Err(err) => Err(self.fail(format_args!("cannot remove {}", self.container(id)), err)),
        }
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> anyhow::Result<()> {
        let options = RenameContainerOptions {
            name: new_name.to_string(),
        };
        match self.docker.rename_container(id, options).await {
            Ok(()) => {
                self.remember(id, new_name);
                Ok(())
            }
            Err(err) if status_code(&err) == Some(409) => Err(anyhow!(
                "{}: cannot rename {} to `{new_name}`: that name is already in use",
                self.who,
                self.container(id)
            )),
            Err(err) => Err(self.fail(
                format_args!("cannot rename {} to `{new_name}`", self.container(id)),
                err,
            )),
        }
    }

    async fn status(&self, id: &str) -> anyhow::Result<ContainerStatus> {
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.fail(format_args!("cannot inspect {}", self.container(id)), e))?;
        let state = inspect.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let health = state.health.unwrap_or_default();
        // The newest check that said something: the one a failed health
        // gate wants to show (the engine adds an empty entry on stop).
        let health_log = health
            .log
            .as_deref()
            .unwrap_or_default()
            .iter()
            .rev()
            .filter_map(|entry| entry.output.as_deref())
            .map(str::trim)
            .find(|out| !out.is_empty())
            .map(|out| truncate(out, HEALTH_LOG_LIMIT));
        Ok(ContainerStatus {
            running,
            restart_count: inspect.restart_count.unwrap_or(0),
            exit_code: if running { None } else { state.exit_code },
            // A stopped container keeps its last health (often `unhealthy`
            // from being stopped); it means nothing until it runs again.
            health: match health.status {
                Some(HealthStatusEnum::STARTING) if running => Some("starting".into()),
                Some(HealthStatusEnum::HEALTHY) if running => Some("healthy".into()),
                Some(HealthStatusEnum::UNHEALTHY) if running => Some("unhealthy".into()),
                _ => None,
            },
            health_log,
        })
    }

    /// Runs `command` with stdout and stderr attached, keeps the first
    /// 64 KiB of combined output, and gives up after `timeout`. Docker has no
    /// way to kill an exec: on timeout the process may live on in the
    /// container until it ends by itself.
    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> anyhow::Result<(i64, String)> {
        let what = || {
            format!(
                "cannot run `{}` in {}",
                command.join(" "),
                self.container(id)
            )
        };
        let run = async {
            let exec = self
                .docker
                .create_exec(
                    id,
                    CreateExecOptions::<String> {
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        cmd: Some(command.to_vec()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| self.fail(what(), e))?;
            let started = self
                .docker
                .start_exec(&exec.id, Some(StartExecOptions::default()))
                .await
                .map_err(|e| self.fail(what(), e))?;
            let mut output = Vec::new();
            let mut truncated = false;
            if let StartExecResults::Attached {
                output: mut stream, ..
            } = started
            {
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.fail(what(), e))?;
                    let bytes = chunk.into_bytes();
                    let room = EXEC_OUTPUT_LIMIT.saturating_sub(output.len());
                    if bytes.len() > room {
                        truncated = true;
                    }
                    output.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            }
            // The exit code can lag the end of the output by a moment.
            let mut exit_code = None;
            for _ in 0..50 {
                let inspect = self
                    .docker
                    .inspect_exec(&exec.id)
                    .await
                    .map_err(|e| self.fail(what(), e))?;
                if inspect.running != Some(true) {
                    exit_code = inspect.exit_code;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut text = String::from_utf8_lossy(&output).into_owned();
            if truncated {
                text.push_str("\n[output truncated at 64 KiB]");
            }
            let code = exit_code.ok_or_else(|| {
                anyhow!("{}: no exit code (the command was still running)", what())
            })?;
            Ok((code, text))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(anyhow!(
                "{}: {}: timed out after {} s",
                self.who,
                what(),
                timeout.as_secs_f64()
            )),
        }
    }

    async fn host_exec(&self, script: &str, timeout: Duration) -> anyhow::Result<(i64, String)> {
        self.run_script(script, None, timeout).await
    }

    async fn write_secrets(
        &self,
        secrets_dir: &str,
        files: &[super::secret_files::SecretFile<'_>],
    ) -> anyhow::Result<()> {
        let script = super::secret_files::write_script(secrets_dir, files)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.who))?;
        let input = super::secret_files::write_input(files);
        let (code, output) = self
            .run_script(&script, Some(input.expose()), SECRET_TIMEOUT)
            .await?;
        if code != 0 {
            anyhow::bail!(
                "{}: cannot write secret files under `{secrets_dir}`: {}",
                self.who,
                output.trim()
            );
        }
        Ok(())
    }

    async fn prune_secrets(
        &self,
        project_dir: &str,
        keep: &std::collections::BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let script = super::secret_files::prune_script(project_dir, keep);
        let (code, output) = self.run_script(&script, None, SECRET_TIMEOUT).await?;
        if code != 0 {
            anyhow::bail!(
                "{}: cannot remove unused secrets under `{project_dir}`: {}",
                self.who,
                output.trim()
            );
        }
        Ok(())
    }

    async fn lock(
        &self,
        key: &str,
        holder: &str,
        timeout: Duration,
    ) -> Result<super::lock::HostLock, super::lock::LockError> {
        let script = super::lock::script(key, holder, timeout);
        let command = match self.tunnel.lock().await.as_ref() {
            Some(tunnel) => tunnel.command(&format!("sh -c '{script}'")),
            None => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(&script);
                c
            }
        };
        super::lock::acquire(command, &self.host, timeout)
            .await
            .map_err(|e| match e {
                super::lock::LockError::Failed(err) => {
                    super::lock::LockError::Failed(err.context(self.who.clone()))
                }
                held => held,
            })
    }

    async fn close(&self) {
        if let Some(tunnel) = self.tunnel.lock().await.take() {
            tunnel.close().await;
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Health from a container list `Status` such as `Up 3 seconds (healthy)`,
/// `Up 1 second (health: starting)` or `Up 2 minutes (unhealthy)`: API 1.41
/// has no `Health` field in the list, and an inspect per container would
/// make `observe` cost one call per container.
pub fn health_from_status(status: &str) -> Option<String> {
    let status = status.trim_end();
    if status.ends_with("(healthy)") {
        Some("healthy".into())
    } else if status.ends_with("(unhealthy)") {
        Some("unhealthy".into())
    } else if status.ends_with("(health: starting)") {
        Some("starting".into())
    } else {
        None
    }
}

/// Splits an image reference into the `fromImage` and `tag` of a pull:
/// `10.77.0.1:5000/berth/web:v1` -> (`10.77.0.1:5000/berth/web`, `v1`);
/// `redis@sha256:ab…` -> (`redis`, `sha256:ab…`) (the engine takes a digest
/// in `tag`; a digest wins over a tag); `redis` -> (`redis`, `latest`),
/// because an empty tag pulls every tag of the repository.
pub fn split_image_ref(reference: &str) -> (String, String) {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    // A tag is after the last `:` of the last path component; a `:` before
    // the last `/` is a registry port.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let tag = digest.or(tag).unwrap_or("latest");
    (repo.to_string(), tag.to_string())
}

/// The registry a repository lives on: its first path component when that
/// looks like a host (has a `.` or `:`, or is `localhost`), else Docker Hub
/// (`docker.io`).
pub fn registry_of(repository: &str) -> String {
    match repository.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            normalize_registry(first)
        }
        _ => "docker.io".to_string(),
    }
}

/// The form of an image reference that the engine lists in `RepoTags` /
/// `RepoDigests`: Docker Hub's `docker.io/` and `library/` prefixes dropped,
/// `:latest` added when there is neither tag nor digest. Lets the plan ask
/// "is this image present?" of [`HostObservation::images`](super::HostObservation).
pub fn canonical_image_ref(reference: &str) -> String {
    let mut r = reference;
    for prefix in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = r.strip_prefix(prefix) {
            r = rest;
            break;
        }
    }
    if let Some(rest) = r.strip_prefix("library/") {
        if !rest.contains('/') {
            r = rest;
        }
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`; `https://10.77.0.1:5000` ->
/// `10.77.0.1:5000`: the key forms `docker login` writes, reduced to a host.
fn normalize_registry(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// Credentials for `registry` from the runner's Docker config
/// (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), as
/// `docker login` writes them: `auths.<registry>.auth` (base64 of
/// `user:password`) or `identitytoken`. Credential helpers (`credsStore`,
/// `credHelpers`) are not run: CI runners usually have plain `auths`, and
/// running helper binaries from a reconciler is a choice to make on purpose.
/// None (anonymous pull) when there is no config or no entry.
pub fn registry_credentials(registry: &str) -> Option<DockerCredentials> {
    let path = docker_config_path()?;
    let text = std::fs::read_to_string(path).ok()?;
    credentials_from_config(&text, registry)
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

/// The pure half of [`registry_credentials`].
pub fn credentials_from_config(config_json: &str, registry: &str) -> Option<DockerCredentials> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let wanted = normalize_registry(registry);
    let entry = auths
        .iter()
        .find(|(key, _)| normalize_registry(key) == wanted)
        .map(|(_, entry)| entry)?;
    let mut credentials = DockerCredentials {
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    };
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        credentials.username = Some(user.to_string());
        credentials.password = Some(password.to_string());
    }
    if let Some(token) = entry.get("identitytoken").and_then(|t| t.as_str()) {
        credentials.identitytoken = Some(token.to_string());
    }
    if credentials.username.is_none() && credentials.identitytoken.is_none() {
        return None;
    }
    Some(credentials)
}

/// A Compose restart policy as the engine wants it.
/// The editable settings of an inspected container, zeros read as unset.
fn live_settings(h: &bollard::models::HostConfig) -> super::LiveSettings {
    let set = |v: Option<i64>| v.filter(|n| *n > 0);
    let restart = match h.restart_policy.as_ref() {
        Some(p) => match p.name {
            Some(RestartPolicyNameEnum::ALWAYS) => "always".to_string(),
            Some(RestartPolicyNameEnum::UNLESS_STOPPED) => "unless-stopped".to_string(),
            Some(RestartPolicyNameEnum::ON_FAILURE) => {
                match p.maximum_retry_count.filter(|n| *n > 0) {
                    Some(n) => format!("on-failure:{n}"),
                    None => "on-failure".to_string(),
                }
            }
            _ => "no".to_string(),
        },
        None => "no".to_string(),
    };
    super::LiveSettings {
        restart,
        memory: set(h.memory),
        memory_reservation: set(h.memory_reservation),
        nano_cpus: set(h.nano_cpus),
        pids_limit: set(h.pids_limit),
    }
}

fn restart_policy(restart: &str) -> Result<Option<RestartPolicy>, String> {
    let (name, retries) = match restart.split_once(':') {
        Some((name, n)) => (name, Some(n)),
        None => (restart, None),
    };
    let name = match name {
        "" => return Ok(None),
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => return Err(format!("unknown restart policy `{restart}`")),
    };
    let maximum_retry_count = match retries {
        None => None,
        Some(_) if name != RestartPolicyNameEnum::ON_FAILURE => {
            return Err(format!("unknown restart policy `{restart}`"))
        }
        Some(n) => Some(
            n.parse::<i64>()
                .map_err(|_| format!("restart policy `{restart}`: `{n}` is not a number"))?,
        ),
    };
    Ok(Some(RestartPolicy {
        name: Some(name),
        maximum_retry_count,
    }))
}

/// Milliseconds as the engine's nanoseconds; 0 (engine default) as None.
fn nanos(ms: u64) -> Option<i64> {
    (ms > 0).then(|| i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX))
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The create request for `spec`, plus the networks to connect after create
/// (API 1.41 takes one network at create; the first by name goes there).
/// `labels` (berth's own) are added to the spec's labels and win on a clash.
/// Secrets become read-only bind mounts of the files apply delivered under
/// `secrets_dir` (through `Mounts`, which fails on a missing file where
/// `Binds` would quietly mount an empty directory).
pub fn create_body(
    spec: &ContainerSpec,
    labels: &BTreeMap<String, String>,
    secrets_dir: &str,
) -> Result<(ContainerCreateBody, Vec<(String, EndpointSettings)>), String> {
    let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    all_labels.extend(labels.clone());

    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                // Empty: the engine picks a free port.
                host_port: Some(port.published.map(|p| p.to_string()).unwrap_or_default()),
            });
    }

    // Bind mounts go through `Binds`, like Compose: it creates a missing host
    // directory, where `Mounts` would fail. A path with `:` cannot be said in
    // `Binds` and takes `Mounts` (which requires it to exist).
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for m in &spec.mounts {
        match m.kind {
            MountKind::Bind if !m.source.contains(':') && !m.target.contains(':') => {
                let mode = if m.read_only { ":ro" } else { "" };
                binds.push(format!("{}:{}{mode}", m.source, m.target));
            }
            kind => mounts.push(Mount {
                typ: Some(match kind {
                    MountKind::Bind => MountType::BIND,
                    MountKind::Volume => MountType::VOLUME,
                }),
                source: Some(m.source.clone()),
                target: Some(m.target.clone()),
                read_only: m.read_only.then_some(true),
                ..Default::default()
            }),
        }
    }

    if !spec.secrets.is_empty() {
        let label = |key: &str| {
            labels
                .get(key)
                .ok_or_else(|| format!("a container with secrets needs the `{key}` label"))
        };
        let (project, stack, service) = (
            label(labels::PROJECT)?,
            label(labels::STACK)?,
            label(labels::SERVICE)?,
        );
        for (name, file) in &spec.secrets {
            mounts.push(Mount {
                typ: Some(MountType::BIND),
                source: Some(crate::secrets::host_path(
                    secrets_dir,
                    project,
                    stack,
                    service,
                    name,
                    file,
                )),
                target: Some(file.target.clone()),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }

    let endpoint = |aliases: &Vec<String>| EndpointSettings {
        aliases: non_empty(aliases.clone()),
        ..Default::default()
    };
    // BTreeMap: sorted by name, so "first" is stable.
    let mut networks = spec.networks.iter();
    let first = networks.next();
    let more: Vec<(String, EndpointSettings)> = networks
        .map(|(name, aliases)| (name.clone(), endpoint(aliases)))
        .collect();

    let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
        // Empty: keep the image's test, override only the timings.
        test: non_empty(h.test.clone()),
        interval: nanos(h.interval_ms),
        timeout: nanos(h.timeout_ms),
        retries: (h.retries > 0).then_some(i64::from(h.retries)),
        start_period: nanos(h.start_period_ms),
        // `start_interval` needs API 1.44: never set.
        start_interval: None,
    });

    let host_config = HostConfig {
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        network_mode: first.map(|(name, _)| name.clone()),
        restart_policy: restart_policy(&spec.restart)?,
        readonly_rootfs: spec.read_only.then_some(true),
        cap_add: non_empty(spec.cap_add.clone()),
        cap_drop: non_empty(spec.cap_drop.clone()),
        security_opt: non_empty(spec.security_opt.clone()),
        memory: spec.resources.memory,
        memory_reservation: spec.resources.memory_reservation,
        nano_cpus: spec.resources.nano_cpus,
        pids_limit: spec.resources.pids_limit,
        log_config: spec.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: Some(l.driver.clone()),
            config: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
        }),
        tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone().into_iter().collect()),
        ulimits: non_empty(
            spec.ulimits
                .iter()
                .map(|(name, u)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect(),
        ),
        ..Default::default()
    };

    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: non_empty(
            spec.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(all_labels),
        exposed_ports: non_empty(exposed),
        healthcheck,
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        stop_timeout: spec
            .stop_grace_period
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        host_config: Some(host_config),
        networking_config: first.map(|(name, aliases)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name.clone(), endpoint(aliases))])),
        }),
        ..Default::default()
    };
    Ok((body, more))
}

/// Connects bollard to a unix socket, negotiates the API version down to
/// the engine's, and checks the engine answers: `_ping` first (works on any
/// version, so its failure means "not answering", not "too old").
pub(crate) async fn open(socket: &str, timeout: Duration) -> Result<Docker, OpenError> {
    let docker = Docker::connect_with_socket(socket, 120, bollard::API_DEFAULT_VERSION)
        .map_err(|e| OpenError::NotAnswering(e.to_string()))?;
    match tokio::time::timeout(timeout, docker.ping()).await {
        Err(_) => {
            return Err(OpenError::NotAnswering(format!(
                "no answer within {} s",
                timeout.as_secs()
            )))
        }
        Ok(Err(err)) => return Err(OpenError::NotAnswering(describe(&err))),
        Ok(Ok(_)) => {}
    }
    let docker = match tokio::time::timeout(timeout, docker.negotiate_version()).await {
        Err(_) => {
            return Err(OpenError::NotAnswering(format!(
                "no answer to `/version` within {} s",
                timeout.as_secs()
            )))
        }
        Ok(Err(err)) => return Err(OpenError::NotAnswering(describe(&err))),
        Ok(Ok(docker)) => docker,
    };
    let version = docker.client_version();
    if (version.major_version, version.minor_version) < MIN_API_VERSION {
        return Err(OpenError::TooOld(format!(
            "{}.{}",
            version.major_version, version.minor_version
        )));
    }
    Ok(docker)
}

/// Why [`open`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The engine did not answer, with the transport's words.
    NotAnswering(String),
    /// The engine's API version, older than [`MIN_API_VERSION`].
    TooOld(String),
}

/// A bollard error with its causes on one line.
fn describe(err: &DockerError) -> String {
    let mut text = match err {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => format!("Docker Engine answered {status_code}: {}", message.trim()),
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{HealthcheckSpec, LoggingSpec, MountSpec, PortSpec, Resources, Ulimit};

    #[test]
    fn splits_image_references() {
        let cases = [
            (
                "10.77.0.1:5000/berth/web:v1",
                ("10.77.0.1:5000/berth/web", "v1"),
            ),
            (
                "10.77.0.1:5000/berth/web",
                ("10.77.0.1:5000/berth/web", "latest"),
            ),
            ("redis", ("redis", "latest")),
            ("redis:7.2", ("redis", "7.2")),
            ("library/redis:7", ("library/redis", "7")),
            (
                "localhost:5000/a/b/c:1.0-rc1",
                ("localhost:5000/a/b/c", "1.0-rc1"),
            ),
            ("redis@sha256:0123abcd", ("redis", "sha256:0123abcd")),
            (
                "10.77.0.1:5000/web:v1@sha256:0123abcd",
                ("10.77.0.1:5000/web", "sha256:0123abcd"),
            ),
            ("ghcr.io/o/r:tag", ("ghcr.io/o/r", "tag")),
        ];
        for (input, (repo, tag)) in cases {
            assert_eq!(
                split_image_ref(input),
                (repo.to_string(), tag.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn finds_registries() {
        assert_eq!(registry_of("10.77.0.1:5000/berth/web"), "10.77.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/r"), "ghcr.io");
        assert_eq!(registry_of("localhost/r"), "localhost");
        assert_eq!(registry_of("redis"), "docker.io");
        assert_eq!(registry_of("bitnami/redis"), "docker.io");
        assert_eq!(registry_of("docker.io/library/redis"), "docker.io");
    }

    #[test]
    fn canonicalizes_references_like_repo_tags() {
        assert_eq!(canonical_image_ref("redis"), "redis:latest");
        assert_eq!(canonical_image_ref("docker.io/library/redis:7"), "redis:7");
        assert_eq!(
            canonical_image_ref("docker.io/bitnami/redis"),
            "bitnami/redis:latest"
        );
        assert_eq!(
            canonical_image_ref("10.77.0.1:5000/berth/web"),
            "10.77.0.1:5000/berth/web:latest"
        );
        assert_eq!(
            canonical_image_ref("10.77.0.1:5000/berth/web:v1"),
            "10.77.0.1:5000/berth/web:v1"
        );
        assert_eq!(canonical_image_ref("redis@sha256:ab"), "redis@sha256:ab");
    }

    #[test]
    fn parses_health_from_status() {
        assert_eq!(
            health_from_status("Up 3 seconds (healthy)").as_deref(),
            Some("healthy")
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(
            health_from_status("Up 2 minutes (unhealthy)").as_deref(),
            Some("unhealthy")
        );
        assert_eq!(health_from_status("Up 2 minutes"), None);
        assert_eq!(health_from_status("Exited (0) 3 seconds ago"), None);
        assert_eq!(health_from_status("Exited (137) 1 second ago"), None);
        assert_eq!(health_from_status("Created"), None);
        assert_eq!(health_from_status(""), None);
    }

    #[test]
    fn reads_registry_auth_from_docker_config() {
        // "ci:s3cr:et" -> password may contain `:`.
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cr:et");
        let config = format!(
            r#"{{"auths": {{"https://10.77.0.1:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "ghcr.io": {{"identitytoken": "tok"}},
                "empty.example": {{}} }},
               "credsStore": "desktop"}}"#
        );
        let c = credentials_from_config(&config, "10.77.0.1:5000").expect("registry entry");
        assert_eq!(c.username.as_deref(), Some("ci"));
        assert_eq!(c.password.as_deref(), Some("s3cr:et"));
        assert_eq!(c.serveraddress.as_deref(), Some("10.77.0.1:5000"));
        let hub = credentials_from_config(&config, "docker.io").expect("hub entry");
        assert_eq!(hub.username.as_deref(), Some("ci"));
        let ghcr = credentials_from_config(&config, "ghcr.io").expect("token entry");
        assert_eq!(ghcr.identitytoken.as_deref(), Some("tok"));
        assert!(credentials_from_config(&config, "empty.example").is_none());
        assert!(credentials_from_config(&config, "quay.io").is_none());
        assert!(credentials_from_config("not json", "quay.io").is_none());
    }

    #[test]
    fn maps_restart_policies() {
        let p = restart_policy("on-failure:3")
            .expect("valid")
            .expect("some");
        assert_eq!(p.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(p.maximum_retry_count, Some(3));
        let p = restart_policy("unless-stopped")
            .expect("valid")
            .expect("some");
        assert_eq!(p.name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(p.maximum_retry_count, None);
        assert!(restart_policy("").expect("valid").is_none());
        assert!(restart_policy("sometimes").is_err());
        assert!(restart_policy("always:3").is_err());
        assert!(restart_policy("on-failure:x").is_err());
    }

    fn full_spec() -> ContainerSpec {
        ContainerSpec {
            image: "10.77.0.1:5000/berth/web:v1".into(),
            command: Some(vec!["httpd".into(), "-f".into()]),
            entrypoint: Some(vec!["/entry".into()]),
            environment: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "x=y".into())]),
            ports: vec![
                PortSpec {
                    host_ip: None,
                    published: Some(8080),
                    target: 80,
                    protocol: "tcp".into(),
                },
                PortSpec {
                    host_ip: Some("127.0.0.1".into()),
                    published: None,
                    target: 80,
                    protocol: "tcp".into(),
                },
                PortSpec {
                    host_ip: None,
                    published: Some(53),
                    target: 53,
                    protocol: "udp".into(),
                },
            ],
            mounts: vec![
                MountSpec {
                    kind: MountKind::Volume,
                    source: "web_data".into(),
                    target: "/data".into(),
                    read_only: false,
                },
                MountSpec {
                    kind: MountKind::Bind,
                    source: "/etc/web".into(),
                    target: "/conf".into(),
                    read_only: true,
                },
            ],
            networks: BTreeMap::from([
                ("web_front".into(), vec!["api".into(), "web".into()]),
                ("web_back".into(), vec!["api".into()]),
            ]),
            labels: BTreeMap::from([
                ("team".into(), "ops".into()),
                ("berth.project".into(), "spoofed".into()),
            ]),
            healthcheck: Some(HealthcheckSpec {
                test: vec!["CMD".into(), "wget".into(), "-q".into(), "localhost".into()],
                interval_ms: 1000,
                timeout_ms: 500,
                retries: 3,
                start_period_ms: 0,
                start_interval_ms: 0,
            }),
            restart: "on-failure:5".into(),
            user: Some("1000:1000".into()),
            read_only: true,
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            security_opt: vec!["no-new-privileges:true".into()],
            resources: Resources {
                memory: Some(64 << 20),
                memory_reservation: Some(32 << 20),
                nano_cpus: Some(500_000_000),
                pids_limit: Some(100),
            },
            logging: Some(LoggingSpec {
                driver: "json-file".into(),
                options: BTreeMap::from([("max-size".into(), "10m".into())]),
            }),
            tmpfs: BTreeMap::from([("/tmp".into(), "size=64m".into())]),
            ulimits: BTreeMap::from([(
                "nofile".into(),
                Ulimit {
                    soft: 1024,
                    hard: 2048,
                },
            )]),
            stop_grace_period: Some(30),
            working_dir: Some("/www".into()),
            hostname: Some("web1".into()),
            secrets: BTreeMap::from([(
                "db".into(),
                crate::spec::SecretFileSpec {
                    digest: "sha256:0123456789abcdef".into(),
                    target: "/run/secrets/db".into(),
                    uid: "0".into(),
                    gid: "0".into(),
                    mode: 0o400,
                },
            )]),
            ..Default::default()
        }
    }

    #[test]
    fn maps_a_full_spec_to_the_create_request() {
        let labels = BTreeMap::from([
            ("berth.project".to_string(), "demo".to_string()),
            ("berth.stack".to_string(), "app".to_string()),
            ("berth.service".to_string(), "web".to_string()),
        ]);
        let (body, more) =
            create_body(&full_spec(), &labels, "/run/berth/secrets").expect("valid spec");
        let host = body.host_config.clone().expect("host config");

        assert_eq!(body.image.as_deref(), Some("10.77.0.1:5000/berth/web:v1"));
        assert_eq!(body.cmd, Some(vec!["httpd".to_string(), "-f".to_string()]));
        assert_eq!(body.entrypoint, Some(vec!["/entry".to_string()]));
        assert_eq!(body.env, Some(vec!["A=1".to_string(), "B=x=y".to_string()]));
        let l = body.labels.clone().expect("labels");
        assert_eq!(l.get("team").map(String::as_str), Some("ops"));
        assert_eq!(
            l.get("berth.project").map(String::as_str),
            Some("demo"),
            "berth's label wins"
        );

        let mut exposed = body.exposed_ports.clone().expect("exposed");
        exposed.sort();
        assert_eq!(exposed, vec!["53/udp".to_string(), "80/tcp".to_string()]);
        let ports = host.port_bindings.clone().expect("bindings");
        let web = ports["80/tcp"].clone().expect("80/tcp");
        assert_eq!(web.len(), 2);
        assert_eq!(web[0].host_port.as_deref(), Some("8080"));
        assert_eq!(web[0].host_ip, None);
        assert_eq!(web[1].host_port.as_deref(), Some(""), "ephemeral");
        assert_eq!(web[1].host_ip.as_deref(), Some("127.0.0.1"));

        assert_eq!(host.binds, Some(vec!["/etc/web:/conf:ro".to_string()]));
        let mounts = host.mounts.clone().expect("mounts");
        assert_eq!(mounts.len(), 2, "the volume and the secret");
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source.as_deref(), Some("web_data"));
        assert_eq!(mounts[0].read_only, None);

        // One network at create (API 1.41), the first by name; the rest after.
        assert_eq!(host.network_mode.as_deref(), Some("web_back"));
        let endpoints = body
            .networking_config
            .clone()
            .and_then(|n| n.endpoints_config)
            .expect("endpoints");
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints["web_back"].aliases, Some(vec!["api".to_string()]));
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].0, "web_front");
        assert_eq!(
            more[0].1.aliases,
            Some(vec!["api".to_string(), "web".to_string()])
        );

        let hc = body.healthcheck.clone().expect("healthcheck");
        assert_eq!(hc.interval, Some(1_000_000_000));
        assert_eq!(hc.timeout, Some(500_000_000));
        assert_eq!(hc.retries, Some(3));
        assert_eq!(hc.start_period, None);
        assert_eq!(hc.start_interval, None);

        let restart = host.restart_policy.clone().expect("restart");
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(5));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges:true".to_string()])
        );
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_reservation, Some(32 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(100));
        let log = host.log_config.clone().expect("log config");
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(
            log.config
                .and_then(|c| c.get("max-size").cloned())
                .as_deref(),
            Some("10m")
        );
        assert_eq!(
            host.tmpfs
                .clone()
                .and_then(|t| t.get("/tmp").cloned())
                .as_deref(),
            Some("size=64m")
        );
        let ulimits = host.ulimits.clone().expect("ulimits");
        assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
        assert_eq!((ulimits[0].soft, ulimits[0].hard), (Some(1024), Some(2048)));
        assert_eq!(body.stop_timeout, Some(30));
        assert_eq!(body.working_dir.as_deref(), Some("/www"));
        assert_eq!(body.hostname.as_deref(), Some("web1"));

        // A secret is a read-only mount of the delivered file, by digest;
        // nothing about it reaches the environment.
        let secret = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/run/secrets/db"))
            .expect("secret mount");
        assert_eq!(
            secret.source.as_deref(),
            Some("/run/berth/secrets/demo/app/web/0123456789ab/db")
        );
        assert_eq!(secret.read_only, Some(true));
        assert_eq!(secret.typ, Some(MountType::BIND));
        let json = serde_json::to_string(&body).expect("serialises");
        // No field newer than API 1.41.
        assert!(!json.contains("StartInterval"), "{json}");
    }

    #[test]
    fn maps_a_minimal_spec_without_empty_fields() {
        let spec = ContainerSpec {
            image: "redis:7".into(),
            ..Default::default()
        };
        let (body, more) =
            create_body(&spec, &BTreeMap::new(), "/run/berth/secrets").expect("valid");
        assert!(more.is_empty());
        assert!(body.networking_config.is_none());
        assert!(body.env.is_none());
        assert!(body.exposed_ports.is_none());
        assert!(body.healthcheck.is_none());
        let host = body.host_config.expect("host config");
        assert!(host.network_mode.is_none());
        assert!(host.restart_policy.is_none());
        assert!(host.port_bindings.is_none());
        assert!(host.binds.is_none() && host.mounts.is_none());
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
