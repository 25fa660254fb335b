//! The [`Docker`] trait over the Docker Engine API (bollard), shared by both
//! transports: `ssh` hands it a forwarded unix socket, `local` the host's own.
//! Only the API: what runs in the host's shell is [`super::shell`]'s.
//!
//! Everything here speaks API 1.41 at most (Docker 20.10): the connection is
//! version-negotiated, and no field newer than 1.41 is ever set (for example
//! no healthcheck `StartInterval`, which needs 1.44). Every error names the
//! host and the container, network or image it concerns.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{HealthStatusEnum, NetworkConnectRequest, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    RenameContainerOptions, StopContainerOptionsBuilder,
};
use bollard::Docker as Client;
use futures::StreamExt as _;

use super::engine::Docker;
use super::shell::truncate;
use crate::labels;
use crate::observed::{
    ContainerState, ContainerStatus, Health, HostObservation, LiveSettings, ObservedContainer,
};
use crate::spec::{ContainerSpec, ImageRef, NetworkSpec, RestartPolicy, VolumeSpec};
use auth::registry_credentials;

pub mod auth;
pub mod create;
mod inspect;
pub use create::create_body;

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
    docker: Client,
    /// Container ID -> name, learned from `observe` and `create_container`,
    /// so errors about an ID can name the container.
    names: std::sync::Mutex<HashMap<String, String>>,
    /// The host's `secrets_dir`: where secret mounts come from.
    secrets_dir: String,
    /// The runner's Docker `config.json`, for registry credentials.
    docker_config: Option<PathBuf>,
    /// The host's event stream, opened by the first gate that asks (see
    /// [`Docker::container_events`]); `None` inside when no runtime was
    /// there to run it.
    events: std::sync::OnceLock<Option<EventFeed>>,
}

/// Events kept for receivers that fell behind; one that lags only looks
/// at its container again, so a small buffer is enough.
const EVENT_BUFFER: usize = 256;

/// One `/events` stream of a host, filtered to containers berth labels,
/// fanned out to every gate waiting on the host. When the stream ends (the
/// connection or the engine went away) the sender is dropped: waiting gates
/// see the channel closed, later ones get none, and all of them poll.
struct EventFeed {
    sender: std::sync::Arc<std::sync::Mutex<Option<Sender>>>,
    task: tokio::task::AbortHandle,
}

type Sender = tokio::sync::broadcast::Sender<String>;

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventFeed {
    fn open(docker: &Client, host: &str) -> Option<EventFeed> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
        let sender = std::sync::Arc::new(std::sync::Mutex::new(Some(sender)));
        let (feed, docker, host) = (sender.clone(), docker.clone(), host.to_string());
        let task = runtime.spawn(async move {
            let filters = HashMap::from([
                ("type", vec!["container"]),
                ("label", vec![labels::PROJECT]),
            ]);
            let options = EventsOptionsBuilder::default().filters(&filters).build();
            let mut stream = docker.events(Some(options));
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        let Some(id) = event.actor.and_then(|a| a.id) else {
                            continue;
                        };
                        if let Ok(sender) = feed.lock() {
                            if let Some(sender) = sender.as_ref() {
                                // No receiver right now is fine: nobody waits.
                                let _ = sender.send(id);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%host, "event stream ended: {e}; gates poll");
                        break;
                    }
                }
            }
            if let Ok(mut sender) = feed.lock() {
                sender.take();
            }
        });
        Some(EventFeed {
            sender,
            task: task.abort_handle(),
        })
    }

    /// A receiver, while the stream lasts.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.sender.lock().ok()?.as_ref()?.subscribe())
    }
}

impl DockerEngine {
    /// `who` is how errors name the host, e.g. ``host `edge-1` (root@10.77.0.11:22)``.
    /// `docker_config` is the runner's Docker `config.json`, where pulls
    /// find registry credentials (None: anonymous pulls).
    pub(crate) fn new(
        host: String,
        who: String,
        docker: Client,
        secrets_dir: String,
        docker_config: Option<PathBuf>,
    ) -> Self {
        DockerEngine {
            host,
            who,
            docker,
            names: std::sync::Mutex::new(HashMap::new()),
            secrets_dir,
            docker_config,
            events: std::sync::OnceLock::new(),
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

    /// After a pull by digest of `name:tag@digest`, tags the pulled image
    /// `name:tag` (the engine does not on a pull by digest), so the host
    /// lists the tag as `docker pull` would and its `LastTagTime` says when
    /// it was last refreshed. Nothing to do for a plain tag or digest.
    async fn tag_pinned(&self, reference: &ImageRef) -> anyhow::Result<()> {
        let (Some(tag), Some(digest)) = (&reference.tag, &reference.digest) else {
            return Ok(());
        };
        let source = format!("{}@{digest}", reference.name);
        let options = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(&reference.name)
            .tag(tag)
            .build();
        self.docker
            .tag_image(&source, Some(options))
            .await
            .map_err(|e| self.fail(format_args!("cannot tag image `{source}` as `{tag}`"), e))
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
/// A transport error or a timeout is marked [`lost`](super::lost): the
/// host did not answer, which says nothing about what was asked of it.
fn engine_cause(err: DockerError) -> anyhow::Error {
    match err {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => anyhow!("Docker Engine answered {status_code}: {}", message.trim()),
        DockerError::RequestTimeoutError => {
            super::lost::lost_msg("the Docker Engine did not answer in time")
        }
        other @ (DockerError::IOError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::HyperLegacyError { .. }
        | DockerError::SocketNotFoundError(_)) => super::lost::lost(
            anyhow::Error::new(other),
            "no answer from the Docker Engine",
        ),
        other => anyhow::Error::new(other).context("no answer from the Docker Engine"),
    }
}

/// A time as the engine writes it (RFC 3339, nanoseconds, `Z` or an
/// offset); None when unreadable or before 1970 (the engine's zero time,
/// "never tagged here").
fn rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let zone_at = text.len().saturating_sub(6);
    let zone = text.get(zone_at..)?;
    let ahead = match zone.as_bytes() {
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => *sign == b'+',
        _ => return humantime::parse_rfc3339(text).ok(),
    };
    let hours: u64 = zone.get(1..3)?.parse().ok()?;
    let minutes: u64 = zone.get(4..6)?.parse().ok()?;
    let offset = Duration::from_secs(hours * 3600 + minutes * 60);
    let local = humantime::parse_rfc3339(&format!("{}Z", text.get(..zone_at)?)).ok()?;
    if ahead {
        local.checked_sub(offset)
    } else {
        local.checked_add(offset)
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
impl Docker for DockerEngine {
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
        // Container ID -> image ID, for the digests each one runs.
        let mut image_ids: Vec<(String, String)> = Vec::new();
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
            if let Some(image_id) = &c.image_id {
                image_ids.push((id.clone(), image_id.clone()));
            }
            observation.containers.push(ObservedContainer {
                id,
                name,
                labels: labels.into_iter().collect(),
                image: c.image.unwrap_or_default(),
                state: ContainerState::parse(&c.state.map(|s| s.to_string()).unwrap_or_default()),
                health: c
                    .status
                    .as_deref()
                    .and_then(health_from_status)
                    .as_deref()
                    .and_then(Health::parse),
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
        let digests_of: HashMap<&str, &Vec<String>> = images
            .iter()
            .filter(|i| !i.repo_digests.is_empty())
            .map(|i| (i.id.as_str(), &i.repo_digests))
            .collect();
        observation.running_digests = image_ids
            .iter()
            .filter_map(|(container, image)| {
                Some((container.clone(), digests_of.get(image.as_str())?.to_vec()))
            })
            .collect();
        observation.images = images
            .into_iter()
            .flat_map(|i| i.repo_tags.into_iter().chain(i.repo_digests))
            .filter(|r| !r.starts_with("<none>"))
            .collect();
        let version = self.docker.client_version();
        observation.api_version = Some((version.major_version, version.minor_version));
        Ok(observation)
    }

    /// One image inspect per image, all at once: the list call does not
    /// carry `LastTagTime`. An image gone since the list has no entry.
    async fn last_tagged(&self, images: &[String]) -> anyhow::Result<BTreeMap<String, SystemTime>> {
        let inspected =
            futures::future::join_all(images.iter().map(|i| self.docker.inspect_image(i))).await;
        let mut times = BTreeMap::new();
        for (image, result) in images.iter().zip(inspected) {
            match result {
                Ok(inspect) => {
                    let time = inspect
                        .metadata
                        .and_then(|m| m.last_tag_time)
                        .as_deref()
                        .and_then(rfc3339);
                    if let Some(time) = time {
                        times.insert(image.clone(), time);
                    }
                }
                Err(err) if status_code(&err) == Some(404) => {}
                Err(err) => return Err(self.fail(format!("cannot inspect image `{image}`"), err)),
            }
        }
        Ok(times)
    }

    async fn inspect_containers(
        &self,
        names: &[String],
    ) -> anyhow::Result<Vec<crate::import::InspectedContainer>> {
        self.inspect_named(names).await
    }

    async fn registry_config(
        &self,
    ) -> anyhow::Result<Option<crate::import::registries::EngineRegistries>> {
        let info = self.docker.info().await.map_err(|e| {
            self.fail(
                "cannot read the engine's registry config (`docker info`)",
                e,
            )
        })?;
        let Some(config) = info.registry_config else {
            return Ok(None);
        };
        let mut out = crate::import::registries::EngineRegistries {
            insecure_cidrs: config.insecure_registry_cidrs.unwrap_or_default(),
            ..Default::default()
        };
        for (name, index) in config.index_configs.unwrap_or_default() {
            match index.secure {
                Some(false) => out.insecure.insert(name),
                Some(true) => out.secure.insert(name),
                None => false,
            };
        }
        Ok(Some(out))
    }

    /// Pulls `image` (a tag, or `latest` when none is given: an empty tag
    /// would pull every tag). Registry credentials come from the runner's
    /// Docker config (`--docker-config`), see [`registry_credentials`];
    /// they are sent to the engine only, never logged.
    async fn pull(&self, image: &str) -> anyhow::Result<()> {
        let reference = ImageRef::split(image);
        let (from_image, tag) = reference.pull_args();
        let credentials =
            registry_credentials(self.docker_config.as_deref(), &reference.registry()).await?;
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
            None => self.tag_pinned(&reference).await,
            Some(DockerError::DockerStreamError { error }) => Err(anyhow!(
                "{}: cannot pull image `{image}`: {}",
                self.who,
                error.trim()
            )),
            Some(err) => Err(self.fail(format_args!("cannot pull image `{image}`"), err)),
        }
    }

    /// Asks the engine which digest the tag names in its registry, with
    /// the runner's credentials for that registry (as a pull sends them).
    async fn distribution_digest(&self, image: &str) -> anyhow::Result<String> {
        let reference = ImageRef::split(image);
        if let Some(digest) = reference.digest {
            return Ok(digest);
        }
        let credentials =
            registry_credentials(self.docker_config.as_deref(), &reference.registry()).await?;
        let name = format!(
            "{}:{}",
            reference.name,
            reference.tag.as_deref().unwrap_or("latest")
        );
        let info = self
            .docker
            .inspect_registry_image(&name, credentials)
            .await
            .map_err(|e| {
                self.fail(
                    format_args!(
                        "cannot resolve image `{image}` in registry `{}`",
                        reference.registry()
                    ),
                    e,
                )
            })?;
        Ok(info.descriptor.digest.unwrap_or_default())
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
        let request = create::network_request(spec, labels);
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
        let request = create::volume_request(spec, labels);
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
        if let Some((key, (major, minor))) = create::api_needed(spec) {
            let have = self.docker.client_version();
            if (have.major_version, have.minor_version) < (major, minor) {
                return Err(anyhow!(
                    "{}: cannot create container `{name}`: `{key}` needs Docker Engine API {major}.{minor}, and the engine speaks {}.{}\n  help: upgrade Docker on the host, or remove `{key}` from the service",
                    self.who, have.major_version, have.minor_version
                ));
            }
        }
        // The plan's pin: the engine runs `name@digest`, the tag stays in a label.
        let pinned;
        let spec = match labels.get(labels::IMAGE_DIGEST) {
            Some(digest) => {
                let mut s = spec.clone();
                s.image = format!("{}@{digest}", ImageRef::split(&spec.image).name);
                pinned = s;
                &pinned
            }
            None => spec,
        };
        let (body, more_networks) = create_body(spec, labels, &self.secrets_dir)
            .map_err(|e| anyhow!("{}: cannot create container `{name}`: {e}", self.who))?;
        let mut options = CreateContainerOptionsBuilder::default().name(name);
        if let Some(platform) = &spec.platform {
            options = options.platform(platform);
        }
        let options = options.build();
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
                Some(HealthStatusEnum::STARTING) if running => Some(Health::Starting),
                Some(HealthStatusEnum::HEALTHY) if running => Some(Health::Healthy),
                Some(HealthStatusEnum::UNHEALTHY) if running => Some(Health::Unhealthy),
                _ => None,
            },
            health_log,
        })
    }

    fn container_events(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        let feed = self
            .events
            .get_or_init(|| EventFeed::open(&self.docker, &self.host))
            .as_ref()?;
        feed.subscribe()
    }

    /// Runs `command` with stdout and stderr attached, keeps the first
    /// 64 KiB of combined output, and gives up after `timeout`. Docker has no
    /// way to kill an exec: on timeout the process may live on in the
    /// container until it ends by itself.
    async fn signal(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        let options = bollard::query_parameters::KillContainerOptions {
            signal: signal.to_string(),
        };
        self.docker
            .kill_container(id, Some(options))
            .await
            .map_err(|err| {
                self.fail(
                    format_args!("cannot send {signal} to {}", self.container(id)),
                    err,
                )
            })
    }

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

/// The editable settings of an inspected container, zeros read as unset.
fn live_settings(h: &bollard::models::HostConfig) -> LiveSettings {
    let set = |v: Option<i64>| v.filter(|n| *n > 0);
    let restart = match h.restart_policy.as_ref() {
        Some(p) => match p.name {
            Some(RestartPolicyNameEnum::ALWAYS) => RestartPolicy::Always,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED) => RestartPolicy::UnlessStopped,
            Some(RestartPolicyNameEnum::ON_FAILURE) => RestartPolicy::OnFailure(
                p.maximum_retry_count
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0),
            ),
            _ => RestartPolicy::No,
        },
        None => RestartPolicy::No,
    };
    LiveSettings {
        restart,
        memory: set(h.memory),
        memory_reservation: set(h.memory_reservation),
        nano_cpus: set(h.nano_cpus),
        pids_limit: set(h.pids_limit),
    }
}

/// Connects bollard to a unix socket, negotiates the API version down to
/// the engine's, and checks the engine answers: `_ping` first (works on any
/// version, so its failure means "not answering", not "too old").
/// `calls`: the longest wait for any later API call (`settings.docker_timeout`).
pub(crate) async fn open(
    socket: &str,
    timeout: Duration,
    calls: Duration,
) -> Result<Client, OpenError> {
    let docker =
        Client::connect_with_socket(socket, calls.as_secs().max(1), bollard::API_DEFAULT_VERSION)
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

    /// `LastTagTime` as engines write it: UTC with nanoseconds, or with an
    /// offset; the zero time means "never tagged here".
    #[test]
    fn last_tag_times_are_read_as_engines_write_them() {
        let at = |secs| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(rfc3339("2024-01-02T03:04:05Z"), at(1_704_164_645));
        assert_eq!(
            rfc3339("2024-01-02T03:04:05.5Z"),
            at(1_704_164_645).map(|t| t + Duration::from_millis(500))
        );
        assert_eq!(rfc3339("2024-01-02T05:04:05+02:00"), at(1_704_164_645));
        assert_eq!(rfc3339("2024-01-02T01:04:05-02:00"), at(1_704_164_645));
        assert_eq!(rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339("yesterday"), None);
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
}
