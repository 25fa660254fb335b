//! fleet: the hosts of one run, from connect to close — connect to every
//! host in parallel, take the run locks (apply), observe what berth manages
//! there, and close everything again.
//!
//! Input: the hosts to contact and [`FleetOptions`]. Output: a [`Fleet`]
//! holding an [`Engine`] per reachable host, what each runs, and which hosts
//! could not be reached or locked. Invariant: a `Fleet` owns every
//! connection, lock and socket of the run; [`Fleet::close`] ends them
//! gracefully, and dropping a `Fleet` still ends them (ssh masters shut down
//! on drop, lock shells are killed, the runtime directory is removed), so no
//! caller closes anything by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};

use super::connect::{connect_locking, TryLock};
use super::lock::{HostLock, LockError};
use super::{ConnectOptions, Engine, HostObservation};
use crate::plan::UnreachableHost;
use crate::spec::HostConfig;

/// Longest runtime directory that leaves room for the socket names under it
/// (`/.ssh-connectionXXXXXX/master` is 30 bytes) within the ~104-byte limit
/// of a unix socket path.
const MAX_RUNTIME_DIR_LEN: usize = 70;

/// Hosts let go of at once when a run ends: each is a local ssh process
/// and one round trip, so more at once only adds processes.
const CLOSE_PARALLEL: usize = 32;

/// How to reach and lock the hosts of one run.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Where the run's private directory is made (`/tmp` by default; see
    /// `--runtime-dir`).
    pub runtime_base: PathBuf,
    /// known_hosts file; None = `~/.ssh/known_hosts`. Checking is always strict.
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// SSH keepalive probe interval (see [`ConnectOptions::keepalive`]).
    pub keepalive: Duration,
    /// Longest wait for one Docker API call.
    pub docker_timeout: Duration,
    /// Overrides every host's identity file (e.g. `--identity`).
    pub identity_file: Option<PathBuf>,
    /// ssh_config file for the connections; None: none (`-F /dev/null`).
    pub ssh_config: Option<PathBuf>,
    /// ssh's `KexAlgorithms` (`settings.ssh_kex`); None: ssh's own.
    pub ssh_kex: Option<String>,
    /// The runner's Docker `config.json`, for registry credentials on
    /// pulls; None: anonymous pulls.
    pub docker_config: Option<PathBuf>,
    /// How many hosts to contact at once (at least 1).
    pub parallel: usize,
    /// Take the run lock on every host before observing it (apply).
    pub lock: Option<LockRequest>,
    /// Images (in the engine's form) whose age a refresh `pull_policy`
    /// needs: each host that has one is asked when it last tagged it.
    pub aged_images: BTreeSet<String>,
    /// Read the project's config copies on every host too (the project has
    /// configs), in parallel with the engine's lists.
    pub observe_configs: bool,
    /// Names of containers the repo asks berth to take over
    /// (`x-berth.adopt`): each host that has one it does not manage
    /// inspects it, for the plan's comparison.
    pub adopt: BTreeSet<String>,
}

/// The run lock to take on every host.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// What is locked: the project's name.
    pub key: String,
    /// Who we are, as a waiting run sees it.
    pub holder: String,
    /// Longest wait for another run's lock.
    pub timeout: Duration,
}

/// A host whose run lock another run held past the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub host: String,
    /// The other run, as it described itself.
    pub holder: String,
}

/// The connected hosts of one run and what they run.
pub struct Fleet {
    /// One engine per reachable (and, with a lock, locked) host.
    pub engines: BTreeMap<String, Box<dyn Engine>>,
    pub observed: BTreeMap<String, HostObservation>,
    /// Sorted by host.
    pub unreachable: Vec<UnreachableHost>,
    /// Hosts whose run lock another run held past the timeout. When not
    /// empty, no host was observed and every lock taken was released.
    pub lock_held: Vec<HeldLock>,
    locks: Vec<HostLock>,
    /// Held for its `Drop`: removes the sockets' directory with the fleet.
    _runtime_dir: RuntimeDir,
}

impl Fleet {
    /// Connects to `hosts` in parallel (bounded by `opts.parallel`), locks
    /// them when asked, and observes the project's containers on each: one
    /// SSH handshake and a few list calls per host. A host that fails is
    /// listed as unreachable; the others go on.
    pub async fn open(
        hosts: &[&HostConfig],
        project: &str,
        opts: &FleetOptions,
    ) -> anyhow::Result<Fleet> {
        let runtime_dir = RuntimeDir::create(&opts.runtime_base)?;
        let connect_opts = ConnectOptions {
            known_hosts: opts.known_hosts.clone(),
            connect_timeout: opts.connect_timeout,
            keepalive: opts.keepalive,
            docker_timeout: opts.docker_timeout,
            runtime_dir: runtime_dir.path().to_path_buf(),
            identity_file: opts.identity_file.clone(),
            ssh_config: opts.ssh_config.clone(),
            ssh_kex: opts.ssh_kex.clone(),
            docker_config: opts.docker_config.clone(),
        };
        let parallel = opts.parallel.max(1);
        let try_lock = opts.lock.as_ref().map(|l| TryLock {
            key: &l.key,
            holder: &l.holder,
        });
        let what = &ObserveWhat {
            aged: &opts.aged_images,
            adopt: &opts.adopt,
            configs: opts.observe_configs,
            configs_dirs: hosts
                .iter()
                .map(|h| (h.name.clone(), h.configs_dir.clone()))
                .collect(),
        };
        // Each host on its own: connect (its lock tried meanwhile, see
        // `connect_locking`), then observe at once if its lock is held or
        // none is wanted. A host observed before another turns out held
        // is observed again below, after the locks are taken in order.
        let connected: Vec<_> = stream::iter(hosts.iter().map(|host| {
            let connect_opts = connect_opts.clone();
            async move {
                let started = std::time::Instant::now();
                let (engine, locked) = connect_locking(host, &connect_opts, try_lock)
                    .await
                    .map_err(|e| (host.name.clone(), e))?;
                let observed = match &locked {
                    None | Some(Ok(_)) => {
                        let observed = observe_adopting(engine.as_ref(), project, what).await;
                        tracing::debug!(
                            host = %host.name,
                            "connected and observed after {} ms",
                            started.elapsed().as_millis()
                        );
                        Some(observed)
                    }
                    Some(Err(_)) => None,
                };
                Ok::<_, (String, anyhow::Error)>((engine, locked, observed))
            }
        }))
        .buffer_unordered(parallel)
        .collect()
        .await;

        let mut fleet = Fleet {
            engines: BTreeMap::new(),
            observed: BTreeMap::new(),
            unreachable: Vec::new(),
            lock_held: Vec::new(),
            locks: Vec::new(),
            _runtime_dir: runtime_dir,
        };
        let mut observed = Vec::new();
        let mut contended = false;
        let mut lock_failed = Vec::new();
        for r in connected {
            match r {
                Ok((engine, locked, obs)) => {
                    let host = engine.host().to_string();
                    fleet.engines.insert(host.clone(), engine);
                    match locked {
                        Some(Ok(lock)) => fleet.locks.push(lock),
                        Some(Err(LockError::Held { .. })) => contended = true,
                        Some(Err(LockError::Failed(e))) => lock_failed.push((host.clone(), e)),
                        None => {}
                    }
                    observed.extend(obs.map(|obs| (host, obs)));
                }
                Err((host, e)) => fleet.unreachable(host, e).await,
            }
        }
        // A host that cannot be locked takes no part; the others keep theirs.
        for (host, e) in lock_failed {
            fleet.unreachable(host, e).await;
        }

        if let (true, Some(lock)) = (contended, &opts.lock) {
            // Another run holds some host: let go of every lock and take
            // them again in name order, waiting, so two runs cannot
            // deadlock; what was observed meanwhile may be stale.
            for lock in std::mem::take(&mut fleet.locks) {
                lock.release().await;
            }
            observed.clear();
            match lock_in_order(&fleet.engines, lock).await {
                Ok((locks, failed)) => {
                    fleet.locks = locks;
                    for (host, e) in failed {
                        fleet.unreachable(host, e).await;
                    }
                }
                Err(held) => {
                    fleet.lock_held = held;
                    return Ok(fleet);
                }
            }
            observed = stream::iter(fleet.engines.values().map(|engine| async move {
                (
                    engine.host().to_string(),
                    observe_adopting(engine.as_ref(), project, what).await,
                )
            }))
            .buffer_unordered(parallel)
            .collect()
            .await;
        }

        for (host, result) in observed {
            match result {
                Ok(obs) => {
                    fleet.observed.insert(host, obs);
                }
                Err(e) => fleet.unreachable(host, e).await,
            }
        }
        fleet.unreachable.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(fleet)
    }

    /// Drops `host` from the run (closing its connection) and lists it as
    /// unreachable with the cause.
    async fn unreachable(&mut self, host: String, e: anyhow::Error) {
        if let Some(engine) = self.engines.remove(&host) {
            engine.close().await;
        }
        let error = crate::error::one_line(&e);
        tracing::error!(host = %host, "{error}");
        self.unreachable.push(UnreachableHost { host, error });
    }

    /// Host -> the commit the last apply there recorded (read when the run
    /// lock was taken; apply only).
    pub fn recorded_commits(&self) -> BTreeMap<String, String> {
        self.locks
            .iter()
            .filter_map(|l| Some((l.host().to_string(), l.last_applied()?.to_string())))
            .collect()
    }

    /// Records `commit` as deployed on `hosts` (through their run locks).
    pub async fn record_applied(&mut self, commit: &str, hosts: &BTreeSet<String>) {
        for lock in self.locks.iter_mut().filter(|l| hosts.contains(l.host())) {
            if let Err(e) = lock.record_applied(commit).await {
                tracing::warn!(
                    host = lock.host(),
                    "cannot record the applied commit: {e:#}"
                );
            }
        }
    }

    /// Records, through the run locks, that berth resolved each image of
    /// `checked` (host -> images as the repo writes them) and deployed what
    /// its tag named there now (see `hosts::lock`).
    pub async fn record_checked(&mut self, checked: &BTreeMap<String, BTreeSet<String>>) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        for lock in self.locks.iter_mut() {
            let Some(images) = checked.get(lock.host()).filter(|i| !i.is_empty()) else {
                continue;
            };
            if let Err(e) = lock.record_checked(images, now).await {
                tracing::warn!(
                    host = lock.host(),
                    "cannot record when the images were checked: {e:#}"
                );
            }
        }
    }

    /// Releases every lock (waiting for the lock shells to exit, so the next
    /// run can take them at once), closes every connection and removes the
    /// runtime directory.
    /// Hosts are let go of side by side (each is a round trip: the lock
    /// shell's exit, the ssh master's), locks first: a lock shell still
    /// writing the applied commit must not lose its connection.
    pub async fn close(mut self) {
        let started = std::time::Instant::now();
        stream::iter(std::mem::take(&mut self.locks))
            .for_each_concurrent(CLOSE_PARALLEL, HostLock::release)
            .await;
        let released = started.elapsed();
        stream::iter(self.engines.values())
            .for_each_concurrent(CLOSE_PARALLEL, |engine| engine.close())
            .await;
        tracing::debug!(
            "run locks released after {} ms, connections closed after {} ms",
            released.as_millis(),
            started.elapsed().as_millis()
        );
        // The runtime directory goes with `self`.
    }
}

/// Takes the run lock on every host one by one in name order, each
/// waiting up to what is left of `request.timeout`: a run never waits while
/// holding a lock out of that order, so two runs cannot deadlock. A host
/// whose lock shell fails is returned beside the locks (it takes no part in
/// the run). Another run holding a lock past the timeout: every lock taken
/// is released, and that host and holder returned.
async fn lock_in_order(
    engines: &BTreeMap<String, Box<dyn Engine>>,
    request: &LockRequest,
) -> Result<(Vec<HostLock>, Vec<(String, anyhow::Error)>), Vec<HeldLock>> {
    let (key, holder) = (request.key.as_str(), request.holder.as_str());
    let deadline = std::time::Instant::now() + request.timeout;
    let (mut locks, mut failed) = (Vec::new(), Vec::new());
    for (host, engine) in engines {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match engine.lock(key, holder, left).await {
            Ok(lock) => locks.push(lock),
            Err(LockError::Failed(e)) => failed.push((host.clone(), e)),
            Err(LockError::Held { holder }) => {
                for lock in locks {
                    lock.release().await;
                }
                return Err(vec![HeldLock {
                    host: host.clone(),
                    holder,
                }]);
            }
        }
    }
    Ok((locks, failed))
}

/// A short, private directory (mode 0700: it holds sockets that give root
/// on the hosts) for SSH control sockets and forwarded Docker sockets,
/// one per run, removed when dropped.
struct RuntimeDir(PathBuf);

impl RuntimeDir {
    /// `<base>/berth-<pid>`. Unix socket paths must stay under ~100 bytes,
    /// so a base too long for the socket names under it is refused here,
    /// before any host is contacted.
    fn create(base: &Path) -> anyhow::Result<RuntimeDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = base.join(format!("berth-{}", std::process::id()));
        let len = dir.as_os_str().len();
        if len > MAX_RUNTIME_DIR_LEN {
            anyhow::bail!(
                "runtime directory `{}` is {len} bytes long; unix socket paths allow about 100, so it must be at most {MAX_RUNTIME_DIR_LEN}",
                dir.display()
            );
        }
        // A leftover of an earlier process with the same pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                anyhow::anyhow!("cannot create runtime directory `{}`: {e}", dir.display())
            })?;
        Ok(RuntimeDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Longest the read of the check record beside the run lock may take.
const CHECKS_TIMEOUT: Duration = Duration::from_secs(30);

/// What `engine` runs, with the ages of the `aged` images it has and, when
/// any image is aged (a service has a refresh `pull_policy`), when berth
/// last checked each image there (the record beside the run lock).
async fn observe(
    engine: &dyn Engine,
    project: &str,
    aged: &BTreeSet<String>,
) -> anyhow::Result<HostObservation> {
    let checks = async {
        if aged.is_empty() {
            return Ok(BTreeMap::new());
        }
        let script = super::lock::checks_script(engine.shell().root(), project);
        let (code, out) = engine
            .shell()
            .run(engine.who(), &script, None, CHECKS_TIMEOUT)
            .await?;
        if code != 0 {
            anyhow::bail!(
                "{}: cannot read when berth last checked the images (exit {code}): {}",
                engine.who(),
                out.trim()
            );
        }
        let now = SystemTime::now();
        Ok(super::lock::parse_checks(&out)
            .into_iter()
            .map(|(image, secs)| {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
                (image, now.duration_since(at).unwrap_or_default())
            })
            .collect())
    };
    let (obs, checks) = tokio::join!(engine.observe(project), checks);
    let mut obs = obs?;
    obs.image_checks = checks?;
    let present: Vec<String> = aged.intersection(&obs.images).cloned().collect();
    if !present.is_empty() {
        let tagged = engine.last_tagged(&present).await?;
        obs.image_ages = ages(&tagged, SystemTime::now());
    }
    Ok(obs)
}

/// [`observe`], then [`adoptable`]: what one host's observation is.
async fn observe_adopting(
    engine: &dyn Engine,
    project: &str,
    what: &ObserveWhat<'_>,
) -> anyhow::Result<HostObservation> {
    let configs_dir = what
        .configs_dirs
        .get(engine.host())
        .map_or(crate::spec::configs::HOST_DIR, String::as_str);
    let dir = crate::spec::configs::project_dir(configs_dir, project, engine.host());
    let obs = if what.configs {
        let (obs, files) = tokio::join!(
            observe(engine, project, what.aged),
            super::config_files::observe(engine.shell(), engine.who(), &dir)
        );
        let mut obs = obs?;
        obs.configs = Some(files?);
        obs
    } else {
        let mut obs = observe(engine, project, what.aged).await?;
        // The repo dropped its configs: their files go once their
        // containers do, so apply must see them to prune them.
        if containers_read_configs(&obs) {
            obs.configs =
                Some(super::config_files::observe(engine.shell(), engine.who(), &dir).await?);
        }
        obs
    };
    adoptable(engine, obs, what.adopt).await
}

/// Whether a container of the project on the host reads delivered config
/// files (by the spec in its labels): then the host's config files are
/// observed even when the repo has none left, so the apply that removes
/// or replaces the container also prunes them.
fn containers_read_configs(obs: &HostObservation) -> bool {
    obs.containers
        .iter()
        .filter_map(|c| c.labels.get(crate::labels::SPEC))
        .filter_map(|spec| serde_json::from_str::<crate::spec::ContainerSpec>(spec).ok())
        .any(|spec| !spec.configs.is_empty())
}

/// What a host's observation covers beyond the project's containers.
struct ObserveWhat<'a> {
    aged: &'a BTreeSet<String>,
    adopt: &'a BTreeSet<String>,
    /// The project's config files on the host (only when the repo has some).
    configs: bool,
    /// Host -> its `configs_dir`.
    configs_dirs: BTreeMap<String, String>,
}

/// `obs` with the containers of `adopt` that the host has and the project
/// does not manage inspected in full: one inspect each, only when asked.
async fn adoptable(
    engine: &dyn Engine,
    mut obs: HostObservation,
    adopt: &BTreeSet<String>,
) -> anyhow::Result<HostObservation> {
    let names: Vec<String> = adopt.intersection(&obs.foreign_names).cloned().collect();
    if !names.is_empty() {
        for c in engine.inspect_containers(&names).await? {
            obs.adoptable.insert(c.name.clone(), c);
        }
    }
    Ok(obs)
}

/// How long before `now` each image was last tagged; a time ahead of
/// `now` (clocks apart) counts as just now.
fn ages(tagged: &BTreeMap<String, SystemTime>, now: SystemTime) -> BTreeMap<String, Duration> {
    tagged
        .iter()
        .map(|(image, at)| (image.clone(), now.duration_since(*at).unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host is asked for its config files while a container there still
    /// reads some, even when the repo has dropped them all.
    #[test]
    fn config_files_are_observed_while_a_container_reads_them() {
        use crate::observed::{ContainerState, ObservedContainer};
        let container = |spec: &crate::spec::ContainerSpec| ObservedContainer {
            id: "c1".into(),
            name: "s-web-1".into(),
            labels: BTreeMap::from([(
                crate::labels::SPEC.to_string(),
                crate::placement::canonical_json(spec),
            )]),
            image: "reg/web:1".into(),
            state: ContainerState::Running,
            health: None,
            created: 0,
            live: None,
        };
        let plain = crate::spec::ContainerSpec {
            image: "reg/web:1".into(),
            ..Default::default()
        };
        let mut reading = plain.clone();
        reading.configs.insert(
            "app".into(),
            crate::spec::configs::ConfigFileSpec {
                digest: "sha256:00".into(),
                target: "/etc/app.conf".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o444,
                dir: false,
                reload: false,
            },
        );
        let host = |containers| HostObservation {
            containers,
            ..Default::default()
        };
        assert!(!containers_read_configs(&host(vec![])));
        assert!(!containers_read_configs(&host(vec![container(&plain)])));
        assert!(containers_read_configs(&host(vec![
            container(&plain),
            container(&reading)
        ])));
    }

    /// Only the images asked for and present are aged, from their last
    /// tag time; a pull makes an image fresh again.
    #[tokio::test]
    async fn observe_ages_the_asked_images_the_host_has() {
        let engine = crate::hosts::memory::MemoryEngine::new("h");
        let day = Duration::from_secs(24 * 3600);
        let two_days_ago = SystemTime::now() - 2 * day;
        engine.add_image_tagged("reg/old:1", two_days_ago);
        engine.add_image_tagged("reg/other:1", two_days_ago);
        engine.add_image("reg/untagged:1");
        let asked: BTreeSet<String> = ["reg/old:1", "reg/untagged:1", "reg/absent:1"]
            .map(String::from)
            .into();
        let obs = observe(&engine, "p", &asked).await.expect("observe");
        assert_eq!(
            obs.image_ages.keys().collect::<Vec<_>>(),
            ["reg/old:1"],
            "{:?}",
            obs.image_ages
        );
        assert!(obs.image_ages["reg/old:1"] >= 2 * day);
        crate::hosts::Docker::pull(&engine, "reg/old:1")
            .await
            .expect("pull");
        let obs = observe(&engine, "p", &asked).await.expect("observe");
        assert!(obs.image_ages["reg/old:1"] < day);
    }

    #[test]
    fn refuses_runtime_dirs_too_long_for_sockets() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(80)));
        let err = RuntimeDir::create(&long).err().expect("too long");
        assert!(format!("{err}").contains("at most 70"), "{err}");
    }

    #[test]
    fn the_runtime_dir_is_private_and_goes_with_its_guard() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = tempfile::tempdir().expect("tempdir");
        let dir = RuntimeDir::create(base.path()).expect("create");
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }
}
