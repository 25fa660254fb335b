//! An in-memory engine for fast unit tests of plan and apply logic. It
//! records every mutating call so tests can assert idempotence.
//!
//! It fakes the two transports only, never berth's own logic on top of
//! them: the [`Docker`] API is a model kept in memory, and the [`Shell`] is
//! the runner's real `sh`, with the host's `/` at a private temporary
//! directory on tmpfs ([`Shell::root`]). So secret delivery and the run lock
//! run their real scripts here too; what they leave on the "host" is read
//! back from that directory ([`MemoryEngine::secret_files`]). Secret files
//! are chowned as on a real host, so tests that deliver secrets owned by
//! `0:0` need the runner to be root, as the test bed does.
//!
//! It behaves like a Docker Engine where that matters to berth: names are
//! unique, creating needs the image and the networks to exist (volumes are
//! created on demand, as Docker does), stop and remove of something already
//! stopped or gone succeed, `observe` sees only the project's containers.
//! Clones share state, so a test can hand a boxed clone to the code under
//! test and keep one to inspect.
//!
//! Every mutating call is logged, whether or not it changed anything, as
//! `<op> <name>` with container names (not IDs) as they were at the time of
//! the call: `pull <image>`, `create_network <name>`, `create_volume <name>`,
//! `create <name>`, `start <name>`, `stop <name>`, `remove <name>`,
//! `rename <old> <new>` (a container already gone is named by the ID asked
//! for; IDs are `mem-<n>`). A call that fails (injected or not) is not logged.
//! A script run on the host logs the files it left changed, as
//! `write_secret <path>` and `remove_secret <path>` (host paths; secrets are
//! the only files berth keeps outside the run lock's directory).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};
use async_trait::async_trait;

use super::engine::{Docker, Engine};
use super::shell::{self, Shell};
use crate::labels;
use crate::observed::{
    ContainerState, ContainerStatus, Health, HostObservation, ObservedContainer,
};
use crate::spec::{ContainerSpec, MountKind, NetworkSpec, VolumeSpec};

/// A container in a [`MemoryEngine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryContainer {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    /// `created`, `running`, `exited`.
    pub state: String,
    pub health: Option<String>,
    pub created: i64,
    /// The spec it was created from (default for seeded containers).
    pub spec: ContainerSpec,
    pub restart_count: i64,
    pub exit_code: Option<i64>,
}

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, MemoryContainer>,
    networks: BTreeSet<String>,
    volumes: BTreeSet<String>,
    images: BTreeSet<String>,
    /// Image -> when it was last tagged (pulled) here, for `last_tagged`.
    tagged: BTreeMap<String, SystemTime>,
    mutations: Vec<String>,
    next_id: u64,
    /// Image -> health its new containers report (None: no healthcheck).
    image_health: BTreeMap<String, Option<String>>,
    failing_pulls: BTreeSet<String>,
    exec_default: Option<(i64, String)>,
    exec_by_image: BTreeMap<String, (i64, String)>,
    /// Operation -> message of its next, one-time failure.
    fail_next: BTreeMap<String, String>,
    /// Engine calls still to go before one fails (see [`MemoryEngine::fail_call`]).
    fail_call: Option<usize>,
    closed: bool,
    /// The host stopped answering: every call fails as a lost connection.
    dark: bool,
    /// The operation whose next call makes the host go dark.
    dark_at: Option<String>,
    /// How long each container operation takes (see [`MemoryEngine::set_latency`]).
    latency: Duration,
    /// How long every Docker API call takes on top, as one round trip (see
    /// [`MemoryEngine::set_call_latency`]).
    call_latency: Duration,
    /// Container operations under way, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
    /// Events about containers (their IDs), once [`MemoryEngine::enable_events`]
    /// was called; dropped by [`MemoryEngine::end_events`].
    events: Option<tokio::sync::broadcast::Sender<String>>,
}

impl State {
    fn id_of(&self, id_or_name: &str) -> Option<String> {
        if self.containers.contains_key(id_or_name) {
            return Some(id_or_name.to_string());
        }
        self.containers
            .values()
            .find(|c| c.name == id_or_name)
            .map(|c| c.id.clone())
    }

    fn injected(&mut self, op: &str, host: &str, what: &str) -> anyhow::Result<()> {
        if self.dark_at.as_deref() == Some(op) {
            self.dark = true;
        }
        if self.dark {
            return Err(crate::hosts::lost::lost_msg("no answer from the host")
                .context(format!("host `{host}` (memory): {what}")));
        }
        if let Some(n) = self.fail_call {
            self.fail_call = n.checked_sub(1);
            if n == 0 {
                return Err(anyhow!("host `{host}` (memory): {what}: injected failure"));
            }
        }
        match self.fail_next.remove(op) {
            Some(message) => Err(anyhow!("host `{host}` (memory): {what}: {message}")),
            None => Ok(()),
        }
    }

    /// Tells event receivers about container `id`, as a Docker Engine
    /// reports a start, a death or a health change.
    fn event(&self, id: &str) {
        if let Some(events) = &self.events {
            let _ = events.send(id.to_string());
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("mem-{}", self.next_id)
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct MemoryEngine {
    host: String,
    /// ``host `<name>` (memory)``: how errors name it.
    who: String,
    state: Arc<Mutex<State>>,
    shell: MemoryShell,
}

impl MemoryEngine {
    /// A host named `host` with nothing on it. Its filesystem is a fresh
    /// directory on tmpfs (`/dev/shm`), removed with the last clone.
    pub fn new(host: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        MemoryEngine {
            host: host.to_string(),
            who: format!("host `{host}` (memory)"),
            shell: MemoryShell::new(state.clone()),
            state,
        }
    }

    /// The state; a test that panicked while holding it poisoned it, and the
    /// state is still what that test left, so carry on with it.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every mutating call so far, in order (see the module docs).
    pub fn mutations(&self) -> Vec<String> {
        self.state().mutations.clone()
    }

    /// Forgets the calls so far, e.g. between a first and a second apply.
    pub fn clear_mutations(&self) {
        self.state().mutations.clear();
    }

    /// Every container, whatever its project, sorted by name.
    pub fn containers(&self) -> Vec<MemoryContainer> {
        let mut all: Vec<_> = self.state().containers.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The container of that ID or name.
    pub fn container(&self, id_or_name: &str) -> Option<MemoryContainer> {
        let state = self.state();
        let id = state.id_of(id_or_name)?;
        state.containers.get(&id).cloned()
    }

    pub fn networks(&self) -> BTreeSet<String> {
        self.state().networks.clone()
    }

    pub fn volumes(&self) -> BTreeSet<String> {
        self.state().volumes.clone()
    }

    pub fn images(&self) -> BTreeSet<String> {
        self.state().images.clone()
    }

    /// The files on the host outside the run lock's directory (the
    /// delivered secrets): host path -> (digest of the content, `uid:gid`,
    /// mode). Never the value itself, so a test dump cannot show it.
    pub fn secret_files(&self) -> BTreeMap<String, (String, String, u32)> {
        self.shell.files()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Seeds an image as present, without logging a mutation.
    pub fn add_image(&self, image: &str) {
        self.state().images.insert(image.to_string());
    }

    /// Seeds an image as present, last tagged (pulled) at `at`, without
    /// logging a mutation.
    pub fn add_image_tagged(&self, image: &str, at: SystemTime) {
        let mut st = self.state();
        st.images.insert(image.to_string());
        st.tagged.insert(image.to_string(), at);
    }

    /// Seeds a network, without logging a mutation.
    pub fn add_network(&self, name: &str) {
        self.state().networks.insert(name.to_string());
    }

    /// Seeds a volume, without logging a mutation.
    pub fn add_volume(&self, name: &str) {
        self.state().volumes.insert(name.to_string());
    }

    /// Seeds a container (e.g. one a previous run created, or an unmanaged
    /// one), without logging a mutation; returns its ID.
    pub fn add_container(
        &self,
        name: &str,
        image: &str,
        labels: BTreeMap<String, String>,
        state: &str,
    ) -> String {
        let mut st = self.state();
        let id = st.new_id();
        let created = st.next_id as i64;
        st.containers.insert(
            id.clone(),
            MemoryContainer {
                id: id.clone(),
                name: name.to_string(),
                labels,
                image: image.to_string(),
                state: state.to_string(),
                health: None,
                created,
                spec: ContainerSpec {
                    image: image.to_string(),
                    ..Default::default()
                },
                restart_count: 0,
                exit_code: (state == "exited").then_some(0),
            },
        );
        id
    }

    /// Containers created from `image` from now on report `health`
    /// (`starting`, `healthy`, `unhealthy`). Without this, a container
    /// reports `healthy` when its spec has a healthcheck, else no health.
    pub fn set_image_health(&self, image: &str, health: &str) {
        self.state()
            .image_health
            .insert(image.to_string(), Some(health.to_string()));
    }

    /// Changes the health of an existing container (ID or name), e.g. to
    /// make one turn unhealthy after start.
    pub fn set_container_health(&self, id_or_name: &str, health: Option<&str>) {
        let mut st = self.state();
        if let Some(id) = st.id_of(id_or_name) {
            if let Some(c) = st.containers.get_mut(&id) {
                c.health = health.map(str::to_string);
            }
            st.event(&id);
        }
    }

    /// Makes the container (ID or name) exit with `code`, as a crash would.
    pub fn crash_container(&self, id_or_name: &str, code: i64) {
        let mut st = self.state();
        if let Some(id) = st.id_of(id_or_name) {
            if let Some(c) = st.containers.get_mut(&id) {
                c.state = "exited".into();
                c.exit_code = Some(code);
                c.restart_count += 1;
            }
            st.event(&id);
        }
    }

    /// From now on the engine reports events (see
    /// `Docker::container_events`) on starts, health changes and crashes,
    /// as a Docker Engine's event stream does. Off by default: gates poll.
    pub fn enable_events(&self) {
        let mut st = self.state();
        if st.events.is_none() {
            st.events = Some(tokio::sync::broadcast::channel(64).0);
        }
    }

    /// Ends the event stream, as a lost connection would: waiting receivers
    /// see it closed, and no new ones are handed out.
    pub fn end_events(&self) {
        self.state().events = None;
    }

    /// Pulls of `image` fail (every time).
    pub fn fail_pull(&self, image: &str) {
        self.state().failing_pulls.insert(image.to_string());
    }

    /// The next call of `op` fails with `message` (once). `op` is one of
    /// `observe`, `pull`, `create_network`, `create_volume`, `create`,
    /// `start`, `stop`, `remove`, `rename`, `status`, `exec`, and `shell`
    /// (the next script run on the host: secret delivery, pruning, a
    /// validation on the host).
    pub fn fail_next(&self, op: &str, message: &str) {
        self.state()
            .fail_next
            .insert(op.to_string(), message.to_string());
    }

    /// The host stops answering now: every later call (the Docker API and
    /// the shell) fails as a lost connection does, marked
    /// [`lost`](crate::hosts::lost), and changes nothing.
    pub fn go_dark(&self) {
        self.state().dark = true;
    }

    /// The host stops answering at the next call of `op` (that call
    /// included; `op` as for [`MemoryEngine::fail_next`]): a link cut
    /// mid-rollout.
    pub fn go_dark_at(&self, op: &str) {
        self.state().dark_at = Some(op.to_string());
    }

    /// The host answers again (after [`MemoryEngine::go_dark`]).
    pub fn come_back(&self) {
        let mut st = self.state();
        st.dark = false;
        st.dark_at = None;
    }

    /// The engine call `n` calls from now (0: the next one), whatever its
    /// operation (those [`fail_next`](Self::fail_next) lists but `shell`),
    /// fails once: a fault at any step of a run. None: no such fault.
    pub fn fail_call(&self, n: Option<usize>) {
        self.state().fail_call = n;
    }

    /// What `exec` returns in every container (default: exit 0, no output).
    pub fn set_exec_result(&self, code: i64, output: &str) {
        self.state().exec_default = Some((code, output.to_string()));
    }

    /// What `exec` returns in containers of `image`; wins over the default.
    pub fn set_image_exec_result(&self, image: &str, code: i64, output: &str) {
        self.state()
            .exec_by_image
            .insert(image.to_string(), (code, output.to_string()));
    }

    /// Container operations (`create`, `start`, `stop`, `remove`,
    /// `rename`) take `latency` from now on, as over a network: so a test
    /// can see how many a caller runs at once.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Every Docker API call takes `latency` from now on, as one round trip
    /// to a remote engine: `observe` two (the lists, then the project's
    /// containers inspected side by side, as [`super::docker`] does), a
    /// container operation one on top of [`MemoryEngine::set_latency`]'s.
    /// For benchmarks of the planner and the scheduler at fleet scale.
    pub fn set_call_latency(&self, latency: Duration) {
        self.state().call_latency = latency;
    }

    /// Waits `n` round trips of [`MemoryEngine::set_call_latency`].
    async fn round_trips(&self, n: u32) {
        let latency = self.state().call_latency * n;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// The most container operations that were ever under way at once
    /// (with a latency set; otherwise each is instant and counts alone).
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    /// Counts a container operation as under way until the guard drops,
    /// after its latency.
    async fn busy(&self) -> Busy {
        let latency = {
            let mut st = self.state();
            st.in_flight += 1;
            st.max_in_flight = st.max_in_flight.max(st.in_flight);
            st.latency + st.call_latency
        };
        let busy = Busy(self.state.clone());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        busy
    }
}

impl Engine for MemoryEngine {
    fn shell(&self) -> &dyn Shell {
        &self.shell
    }

    fn who(&self) -> &str {
        &self.who
    }
}

/// A container operation under way (see [`MemoryEngine::max_in_flight`]).
struct Busy(Arc<Mutex<State>>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        st.in_flight = st.in_flight.saturating_sub(1);
    }
}

#[async_trait]
impl Docker for MemoryEngine {
    fn host(&self) -> &str {
        &self.host
    }

    async fn observe(&self, project: &str) -> anyhow::Result<HostObservation> {
        self.round_trips(2).await;
        let mut st = self.state();
        st.injected(
            "observe",
            &self.host,
            &format!("cannot read the state of project `{project}`"),
        )?;
        let mut containers: Vec<ObservedContainer> = st
            .containers
            .values()
            .filter(|c| c.labels.get(labels::PROJECT).map(String::as_str) == Some(project))
            .map(|c| ObservedContainer {
                id: c.id.clone(),
                name: c.name.clone(),
                labels: c.labels.clone(),
                image: c.image.clone(),
                state: ContainerState::parse(&c.state),
                health: if c.state == "running" {
                    c.health.as_deref().and_then(Health::parse)
                } else {
                    None
                },
                created: c.created,
                live: None,
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let foreign_names = st
            .containers
            .values()
            .filter(|c| c.labels.get(labels::PROJECT).map(String::as_str) != Some(project))
            .map(|c| c.name.clone())
            .collect();
        Ok(HostObservation {
            containers,
            foreign_names,
            networks: st.networks.clone(),
            volumes: st.volumes.clone(),
            images: st.images.clone(),
            image_ages: BTreeMap::new(),
            api_version: None,
            ..HostObservation::default()
        })
    }

    async fn last_tagged(&self, images: &[String]) -> anyhow::Result<BTreeMap<String, SystemTime>> {
        self.round_trips(1).await;
        let st = self.state();
        Ok(images
            .iter()
            .filter(|i| st.images.contains(*i))
            .filter_map(|i| Some((i.clone(), *st.tagged.get(i)?)))
            .collect())
    }

    async fn pull(&self, image: &str) -> anyhow::Result<()> {
        self.round_trips(1).await;
        let mut st = self.state();
        st.injected("pull", &self.host, &format!("cannot pull image `{image}`"))?;
        if st.failing_pulls.contains(image) {
            bail!(
                "{}: cannot pull image `{image}`: manifest unknown",
                self.who()
            );
        }
        st.images.insert(image.to_string());
        st.tagged.insert(image.to_string(), SystemTime::now());
        st.mutations.push(format!("pull {image}"));
        Ok(())
    }

    async fn create_network(
        &self,
        spec: &NetworkSpec,
        _labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.round_trips(1).await;
        let mut st = self.state();
        st.injected(
            "create_network",
            &self.host,
            &format!("cannot create network `{}`", spec.name),
        )?;
        st.networks.insert(spec.name.clone());
        st.mutations.push(format!("create_network {}", spec.name));
        Ok(())
    }

    async fn create_volume(
        &self,
        spec: &VolumeSpec,
        _labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.round_trips(1).await;
        let mut st = self.state();
        st.injected(
            "create_volume",
            &self.host,
            &format!("cannot create volume `{}`", spec.name),
        )?;
        st.volumes.insert(spec.name.clone());
        st.mutations.push(format!("create_volume {}", spec.name));
        Ok(())
    }

    async fn create_container(
        &self,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<String> {
        let _busy = self.busy().await;
        let mut st = self.state();
        st.injected(
            "create",
            &self.host,
            &format!("cannot create container `{name}`"),
        )?;
        if st.containers.values().any(|c| c.name == name) {
            bail!("{}: container name `{name}` is already in use", self.who());
        }
        if !st.images.contains(&spec.image) {
            bail!(
                "{}: cannot create container `{name}`: Docker Engine answered 404: No such image: {}",
                self.who(),
                spec.image
            );
        }
        if let Some(missing) = spec.networks.keys().find(|n| !st.networks.contains(*n)) {
            bail!(
                "{}: cannot create container `{name}`: Docker Engine answered 404: network {missing} not found",
                self.who()
            );
        }
        for m in &spec.mounts {
            if m.kind == MountKind::Volume {
                st.volumes.insert(m.source.clone());
            }
        }
        let has_check = spec
            .healthcheck
            .as_ref()
            .is_some_and(|h| h.test.first().map(String::as_str) != Some("NONE"));
        let health = match st.image_health.get(&spec.image) {
            Some(health) => health.clone(),
            None => has_check.then(|| "healthy".to_string()),
        };
        let mut all_labels = spec.labels.clone();
        all_labels.extend(labels.clone());
        let id = st.new_id();
        let created = st.next_id as i64;
        st.containers.insert(
            id.clone(),
            MemoryContainer {
                id: id.clone(),
                name: name.to_string(),
                labels: all_labels,
                image: spec.image.clone(),
                state: "created".into(),
                health,
                created,
                spec: spec.clone(),
                restart_count: 0,
                exit_code: None,
            },
        );
        st.mutations.push(format!("create {name}"));
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> anyhow::Result<()> {
        let _busy = self.busy().await;
        let mut st = self.state();
        st.injected(
            "start",
            &self.host,
            &format!("cannot start container `{id}`"),
        )?;
        let Some(c) = st.containers.get_mut(id) else {
            bail!(
                "{}: cannot start container `{id}`: no such container",
                self.who()
            );
        };
        c.state = "running".into();
        c.exit_code = None;
        let name = c.name.clone();
        st.mutations.push(format!("start {name}"));
        st.event(id);
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Option<u64>) -> anyhow::Result<()> {
        let _busy = self.busy().await;
        let mut st = self.state();
        st.injected("stop", &self.host, &format!("cannot stop container `{id}`"))?;
        let name = match st.containers.get_mut(id) {
            Some(c) => {
                if c.state == "running" {
                    c.state = "exited".into();
                    c.exit_code = Some(0);
                }
                c.name.clone()
            }
            None => id.to_string(),
        };
        st.mutations.push(format!("stop {name}"));
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> anyhow::Result<()> {
        let _busy = self.busy().await;
        let mut st = self.state();
        st.injected(
            "remove",
            &self.host,
            &format!("cannot remove container `{id}`"),
        )?;
        let name = match st.containers.remove(id) {
            Some(c) => c.name,
            None => id.to_string(),
        };
        st.mutations.push(format!("remove {name}"));
        Ok(())
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> anyhow::Result<()> {
        let _busy = self.busy().await;
        let mut st = self.state();
        st.injected(
            "rename",
            &self.host,
            &format!("cannot rename container `{id}`"),
        )?;
        if st
            .containers
            .values()
            .any(|c| c.name == new_name && c.id != id)
        {
            bail!(
                "{}: cannot rename container `{id}` to `{new_name}`: that name is already in use",
                self.who()
            );
        }
        let Some(c) = st.containers.get_mut(id) else {
            bail!(
                "{}: cannot rename container `{id}`: no such container",
                self.who()
            );
        };
        let old = std::mem::replace(&mut c.name, new_name.to_string());
        st.mutations.push(format!("rename {old} {new_name}"));
        Ok(())
    }

    async fn status(&self, id: &str) -> anyhow::Result<ContainerStatus> {
        self.round_trips(1).await;
        let mut st = self.state();
        st.injected(
            "status",
            &self.host,
            &format!("cannot inspect container `{id}`"),
        )?;
        let Some(c) = st.containers.get(id) else {
            bail!(
                "{}: cannot inspect container `{id}`: no such container",
                self.who()
            );
        };
        let running = c.state == "running";
        Ok(ContainerStatus {
            running,
            restart_count: c.restart_count,
            exit_code: if running { None } else { c.exit_code },
            health: if running {
                c.health.as_deref().and_then(Health::parse)
            } else {
                None
            },
            health_log: match c.health.as_deref() {
                Some("unhealthy") => Some("healthcheck failed (memory engine)".into()),
                _ => None,
            },
        })
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        _timeout: Duration,
    ) -> anyhow::Result<(i64, String)> {
        self.round_trips(1).await;
        let mut st = self.state();
        st.injected(
            "exec",
            &self.host,
            &format!("cannot run `{}` in container `{id}`", command.join(" ")),
        )?;
        let Some(c) = st.containers.get(id) else {
            bail!(
                "{}: cannot exec in container `{id}`: no such container",
                self.who()
            );
        };
        if c.state != "running" {
            bail!(
                "{}: cannot run `{}` in container `{}`: Docker Engine answered 409: container is not running",
                self.who(),
                command.join(" "),
                c.name
            );
        }
        Ok(st
            .exec_by_image
            .get(&c.image)
            .or(st.exec_default.as_ref())
            .cloned()
            .unwrap_or((0, String::new())))
    }

    fn container_events(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.state().events.as_ref().map(|e| e.subscribe())
    }
}

/// The in-memory host's shell: the runner's `sh`, run in the host's
/// directory, with [`Shell::root`] saying where the host's `/` is.
#[derive(Debug, Clone)]
struct MemoryShell {
    root: Arc<tempfile::TempDir>,
    /// `root` as text, for the scripts.
    root_text: String,
    state: Arc<Mutex<State>>,
}

/// The directories of the run lock on a host (see [`super::lock`]): what
/// the lock shell writes there is not a mutation of the host.
const LOCK_DIRS: [&str; 2] = ["run/lock", "tmp"];

impl MemoryShell {
    fn new(state: Arc<Mutex<State>>) -> MemoryShell {
        // tmpfs, as the secret scripts demand of where they write; the
        // test bed and every Linux runner have it.
        let root = tempfile::Builder::new()
            .prefix("berth-memory-host")
            .tempdir_in("/dev/shm")
            .expect("a temporary directory on /dev/shm");
        for dir in LOCK_DIRS {
            std::fs::create_dir_all(root.path().join(dir)).expect("the host's lock directories");
        }
        MemoryShell {
            root_text: root.path().to_string_lossy().into_owned(),
            root: Arc::new(root),
            state,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every file under the host's `/` but the lock's: host path ->
    /// (digest, `uid:gid`, mode).
    fn files(&self) -> BTreeMap<String, (String, String, u32)> {
        let mut files = BTreeMap::new();
        walk(self.root.path(), self.root.path(), &mut files);
        files
    }
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, (String, String, u32)>) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        if LOCK_DIRS.iter().any(|d| rel == Path::new(d)) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &path, files);
        } else if meta.is_file() {
            let content = std::fs::read(&path).unwrap_or_default();
            files.insert(
                format!("/{}", rel.to_string_lossy()),
                (
                    crate::secrets::digest(&content),
                    format!("{}:{}", meta.uid(), meta.gid()),
                    meta.mode() & 0o7777,
                ),
            );
        }
    }
}

#[async_trait]
impl Shell for MemoryShell {
    fn command(&self, script: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(script).current_dir(self.root.path());
        c
    }

    fn root(&self) -> &str {
        &self.root_text
    }

    /// Runs the script for real, then logs what it changed on the host.
    async fn run(
        &self,
        who: &str,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> anyhow::Result<(i64, String)> {
        {
            let mut st = self.state();
            if st.closed {
                bail!("{who}: the connection is closed");
            }
            if let Some(message) = st.fail_next.remove("shell") {
                bail!("{who}: cannot run a command on the host: {message}");
            }
            if st.dark_at.as_deref() == Some("shell") {
                st.dark = true;
            }
            if st.dark {
                return Err(crate::hosts::lost::lost_msg("no answer from the host")
                    .context(format!("{who}: cannot run a command on the host")));
            }
        }
        let before = self.files();
        let result = shell::run_command(self.command(script), who, input, timeout).await;
        let after = self.files();
        let mut st = self.state();
        for (path, file) in &after {
            if before.get(path) != Some(file) {
                st.mutations.push(format!("write_secret {path}"));
            }
        }
        for path in before.keys().filter(|p| !after.contains_key(*p)) {
            st.mutations.push(format!("remove_secret {path}"));
        }
        result
    }

    async fn close(&self) {
        self.state().closed = true;
    }
}

/// In-memory hosts that [`super::connect`] hands out instead of dialling
/// (the `bench-memory` feature only, never in a default build): inventory
/// host name -> its engine, and how long a connection takes (an SSH
/// handshake's round trips). Set once per process, by the fleet benchmark.
#[cfg(feature = "bench-memory")]
static SERVED: std::sync::OnceLock<(BTreeMap<String, MemoryEngine>, Duration)> =
    std::sync::OnceLock::new();

/// Makes every later connection to a host named in `engines` reach that
/// in-memory engine, after `connect` (see [`SERVED`]). False when hosts
/// were served already in this process.
#[cfg(feature = "bench-memory")]
pub fn serve(engines: BTreeMap<String, MemoryEngine>, connect: Duration) -> bool {
    SERVED.set((engines, connect)).is_ok()
}

/// The served engine of `host`, open again (a run closed it at its end),
/// and the connection's delay; None when `host` is not served.
#[cfg(feature = "bench-memory")]
pub(crate) fn served(host: &str) -> Option<(MemoryEngine, Duration)> {
    let (engines, connect) = SERVED.get()?;
    let engine = engines.get(host)?.clone();
    engine.state().closed = false;
    Some((engine, *connect))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HealthcheckSpec;

    fn spec(image: &str, healthcheck: bool) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            healthcheck: healthcheck.then(|| HealthcheckSpec {
                test: vec!["CMD".into(), "true".into()],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn project(name: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(labels::PROJECT.to_string(), name.to_string())])
    }

    #[tokio::test]
    async fn behaves_like_docker_for_a_replace() {
        let engine = MemoryEngine::new("edge-1");
        let handle = engine.clone();
        let e: Box<dyn Engine> = Box::new(engine);

        let err = e
            .create_container("web-1", &spec("web:v1", true), &project("demo"))
            .await
            .expect_err("image missing");
        assert!(err.to_string().contains("No such image"), "{err}");

        e.pull("web:v1").await.expect("pull");
        let old = e
            .create_container("web-1", &spec("web:v1", true), &project("demo"))
            .await
            .expect("create");
        e.start_container(&old).await.expect("start");
        let err = e
            .create_container("web-1", &spec("web:v1", true), &project("demo"))
            .await
            .expect_err("name conflict");
        assert!(
            err.to_string().contains("`web-1` is already in use"),
            "{err}"
        );

        e.rename_container(&old, "web-1-old").await.expect("rename");
        let new = e
            .create_container("web-1", &spec("web:v1", true), &project("demo"))
            .await
            .expect("create after rename");
        e.start_container(&new).await.expect("start");
        let status = e.status(&new).await.expect("status");
        assert!(status.running);
        assert_eq!(status.health, Some(Health::Healthy));
        e.stop_container(&old, Some(1)).await.expect("stop");
        e.stop_container(&old, Some(1))
            .await
            .expect("stop again is fine");
        e.remove_container(&old).await.expect("remove");
        e.remove_container(&old)
            .await
            .expect("remove again is fine");

        assert_eq!(
            handle.mutations(),
            [
                "pull web:v1",
                "create web-1",
                "start web-1",
                "rename web-1 web-1-old",
                "create web-1",
                "start web-1",
                "stop web-1-old",
                "stop web-1-old",
                "remove web-1-old",
                // Gone already: named by the ID it was asked for.
                "remove mem-1",
            ]
        );
        e.close().await;
        assert!(handle.is_closed());
    }

    #[tokio::test]
    async fn observes_only_the_project() {
        let e = MemoryEngine::new("edge-1");
        e.add_container("mine", "web:v1", project("demo"), "running");
        e.add_container("theirs", "web:v1", project("other"), "running");
        e.add_container("unmanaged", "web:v1", BTreeMap::new(), "exited");
        e.add_network("bridge");
        e.add_volume("data");
        e.add_image("web:v1");
        let seen = e.observe("demo").await.expect("observe");
        let names: Vec<_> = seen.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["mine"]);
        assert!(seen.networks.contains("bridge"));
        assert!(seen.volumes.contains("data"));
        assert!(seen.images.contains("web:v1"));
        assert!(e.mutations().is_empty(), "seeding is not a mutation");
    }

    #[tokio::test]
    async fn health_exec_and_failures_are_configurable() {
        let e = MemoryEngine::new("edge-1");
        e.add_image("web:v2");
        e.add_image("plain:1");
        e.set_image_health("web:v2", "unhealthy");
        e.set_image_exec_result("web:v2", 1, "boom");
        e.fail_pull("broken:1");

        let bad = e
            .create_container("a", &spec("web:v2", true), &project("demo"))
            .await
            .expect("create");
        e.start_container(&bad).await.expect("start");
        let status = e.status(&bad).await.expect("status");
        assert_eq!(status.health, Some(Health::Unhealthy));
        assert!(status.health_log.is_some());
        let cmd = vec!["true".to_string()];
        assert_eq!(
            e.exec(&bad, &cmd, Duration::from_secs(1))
                .await
                .expect("exec"),
            (1, "boom".to_string())
        );

        let plain = e
            .create_container("b", &spec("plain:1", false), &project("demo"))
            .await
            .expect("create");
        e.exec(&plain, &cmd, Duration::from_secs(1))
            .await
            .expect_err("not running");
        e.start_container(&plain).await.expect("start");
        assert_eq!(e.status(&plain).await.expect("status").health, None);
        assert_eq!(
            e.exec(&plain, &cmd, Duration::from_secs(1))
                .await
                .expect("exec"),
            (0, String::new())
        );

        e.crash_container("b", 137);
        let status = e.status(&plain).await.expect("status");
        assert!(!status.running);
        assert_eq!(status.exit_code, Some(137));
        assert_eq!(status.restart_count, 1);

        assert!(e.pull("broken:1").await.is_err());
        e.fail_next("start", "injected");
        let err = e.start_container(&plain).await.expect_err("injected");
        assert!(err.to_string().contains("injected"), "{err}");
        e.start_container(&plain).await.expect("only once");
        assert!(
            !e.mutations().iter().any(|m| m.contains("broken")),
            "failed calls are not logged"
        );
    }

    #[tokio::test]
    async fn secrets_and_the_run_lock_run_their_real_scripts_on_the_host() {
        let engine = MemoryEngine::new("edge-1");
        let e: &dyn Engine = &engine;
        let content = crate::openpgp::SecretBytes::new(b"hunter2".to_vec());
        let uid = unsafe { libc::geteuid() }.to_string();
        let gid = unsafe { libc::getegid() }.to_string();
        let file = |version: &str| super::super::secret_files::SecretFile {
            path: format!("/run/berth/secrets/p/st/app/{version}/db"),
            uid: uid.clone(),
            gid: gid.clone(),
            mode: 0o440,
            content: &content,
        };
        e.write_secrets("/run/berth/secrets", &[file("aaa"), file("bbb")])
            .await
            .expect("delivered");
        let owner = format!("{uid}:{gid}");
        let digest = crate::secrets::digest(b"hunter2");
        assert_eq!(
            engine.secret_files(),
            BTreeMap::from([
                (file("aaa").path, (digest.clone(), owner.clone(), 0o440)),
                (file("bbb").path, (digest, owner, 0o440)),
            ])
        );
        e.prune_secrets(
            "/run/berth/secrets/p",
            &BTreeSet::from(["st/app/bbb".to_string()]),
        )
        .await
        .expect("pruned");
        assert_eq!(
            engine.secret_files().into_keys().collect::<Vec<_>>(),
            [file("bbb").path]
        );
        assert_eq!(
            engine.mutations(),
            [
                format!("write_secret {}", file("aaa").path),
                format!("write_secret {}", file("bbb").path),
                format!("remove_secret {}", file("aaa").path),
            ]
        );

        // The real lock script, with flock, on the host's /run/lock.
        let first = e
            .lock("p", "first run", Duration::ZERO)
            .await
            .expect("first lock");
        match e.lock("p", "second run", Duration::ZERO).await {
            Err(super::super::lock::LockError::Held { holder }) => {
                assert_eq!(holder, "first run")
            }
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        first.release().await;
        e.lock("p", "third run", Duration::ZERO)
            .await
            .expect("released")
            .release()
            .await;
        assert_eq!(engine.mutations().len(), 3, "the lock changes nothing");

        engine.fail_next("shell", "connection reset");
        let err = e
            .prune_secrets("/run/berth/secrets/p", &BTreeSet::new())
            .await
            .expect_err("injected");
        assert!(err.to_string().contains("connection reset"), "{err}");
    }
}
