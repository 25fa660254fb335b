//! run: wires the pipeline stages together for one command. The CLI builds
//! a [`RunOptions`] and calls one function here; nothing here knows clap.
//!
//! Order matters for trust: the repo is read and validated completely before
//! any host is contacted, so bad input never touches a host.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use futures::stream::{self, StreamExt};

use crate::apply::{self, ApplyContext, ApplyReport, ServicePolicy};
use crate::hosts::lock::{HostLock, LockError};
use crate::hosts::{self, ConnectOptions, Engine, HostObservation};
use crate::placement::{self, CurrentPlacement};
use crate::plan::{self, Plan, UnreachableHost};
use crate::secrets::{self, KeyOptions, Plaintexts};
use crate::source::{self, Checkout, SourceOptions};
use crate::spec::{self, Project, SpecError};

/// Runner-side options shared by every command.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub source: SourceOptions,
    /// Overrides `settings.known_hosts` of berth.yaml.
    pub known_hosts: Option<PathBuf>,
    /// Overrides every host's identity file.
    pub identity_file: Option<PathBuf>,
    /// Overrides `settings.parallel`.
    pub parallel: Option<usize>,
    /// Overrides `settings.connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// Only these hosts (by inventory name); empty = all.
    pub only_hosts: Vec<String>,
    pub health_timeout: Duration,
    /// Take the run lock on every host before observing it, waiting up to
    /// this long (apply). None: no lock (plan, status).
    pub lock_timeout: Option<Duration>,
    /// The runner's private key, for the secrets a plan's new containers read.
    pub key: KeyOptions,
    /// Certificates allowed to sign deployable commits (`--trust`); None:
    /// signatures are not checked.
    pub trust: Option<PathBuf>,
    /// Deploy a commit that is not a descendant of what the hosts run.
    pub allow_rewind: bool,
}

/// The repo, read and validated.
pub struct Loaded {
    pub checkout: Checkout,
    pub project: Project,
}

/// Reads the repo and validates it, placement included (with no knowledge
/// of the hosts: port clashes and impossible constraints are found here,
/// before any host is contacted).
pub async fn load(opts: &RunOptions) -> anyhow::Result<Loaded> {
    let source_opts = opts.source.clone();
    let checkout = tokio::task::spawn_blocking(move || source::resolve(&source_opts))
        .await
        .context("source stage panicked")??;
    if let Some(trust) = opts.trust.clone() {
        let checked = checkout.clone();
        tokio::task::spawn_blocking(move || verify_signature(&checked, &trust))
            .await
            .context("signature check panicked")??;
    }
    let mut project = spec::load(&checkout.root)?;
    if opts.trust.is_some() {
        refuse_unsigned_inputs(&checkout, &project)?;
    }
    secrets::attach(&mut project)?;
    if !opts.only_hosts.is_empty() {
        for name in &opts.only_hosts {
            if !project.inventory.hosts.iter().any(|h| &h.name == name) {
                anyhow::bail!(
                    "--host `{name}` is not in berth.yaml (hosts: {})",
                    project
                        .inventory
                        .hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    placement::place(&project, &CurrentPlacement::new())
        .map_err(|diagnostics| SpecError { diagnostics })?;
    if let Some(p) = opts.parallel {
        project.inventory.settings.parallel = p.max(1);
    }
    if let Some(t) = opts.connect_timeout {
        project.inventory.settings.connect_timeout = t;
    }
    if opts.known_hosts.is_some() {
        project.inventory.settings.known_hosts = opts.known_hosts.clone();
    }
    Ok(Loaded { checkout, project })
}

/// Refuses a commit not signed by a key in the runner's trust file: a
/// compromised repo cannot deploy. Blocking (git2, crypto).
fn verify_signature(checkout: &Checkout, trust: &std::path::Path) -> anyhow::Result<()> {
    let Some(commit) = &checkout.commit else {
        anyhow::bail!(
            "--trust checks commit signatures, but `{}` is not in a git repo; no host was contacted",
            checkout.root.display()
        );
    };
    if checkout.dirty {
        anyhow::bail!(
            "--trust checks commit signatures, but `{}` has uncommitted changes that no signature covers; no host was contacted\n  help: commit (signed) or discard them",
            checkout.root.display()
        );
    }
    let trusted = source::signature::TrustedSigners::from_file(trust)?;
    let repo = git2::Repository::discover(&checkout.root)
        .with_context(|| format!("cannot open the git repo at `{}`", checkout.root.display()))?;
    let oid = git2::Oid::from_str(&commit.id)?;
    let signer =
        source::signature::verify_commit(&repo, oid, &trusted, std::time::SystemTime::now())
            .map_err(|e| anyhow::anyhow!("{e}\nno host was contacted."))?;
    tracing::info!(
        "commit {} is signed by {}{}",
        crate::render::short(&commit.id),
        signer.fingerprint,
        signer
            .user_id
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default()
    );
    Ok(())
}

/// With `--trust`, every file berth read must be in the signed commit: a
/// file git ignores is read from the work tree but covered by no signature.
fn refuse_unsigned_inputs(checkout: &Checkout, project: &Project) -> anyhow::Result<()> {
    let repo = git2::Repository::discover(&checkout.root)
        .with_context(|| format!("cannot open the git repo at `{}`", checkout.root.display()))?;
    let Some(workdir) = repo.workdir() else {
        return Ok(());
    };
    let root = checkout
        .root
        .canonicalize()
        .unwrap_or_else(|_| checkout.root.clone());
    let workdir = workdir
        .canonicalize()
        .unwrap_or_else(|_| workdir.to_path_buf());
    let inputs = std::iter::once(PathBuf::from("berth.yaml"))
        .chain(project.inventory.recipients.iter().cloned())
        .chain(project.stacks.iter().flat_map(|s| {
            std::iter::once(s.file.clone()).chain(s.secrets.values().map(|x| x.file.clone()))
        }));
    let mut outside = Vec::new();
    for input in inputs {
        let Ok(rel) = root.join(&input).strip_prefix(&workdir).map(PathBuf::from) else {
            continue;
        };
        let status = repo.status_file(&rel).unwrap_or(git2::Status::WT_NEW);
        if status.is_ignored() || status.is_wt_new() || status.is_index_new() {
            outside.push(format!("`{}`", input.display()));
        }
    }
    if outside.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "--trust: {} {} not in the signed commit (ignored or never committed), so no signature covers {}; no host was contacted\n  help: commit {} (signed), or remove {} from the work tree",
        outside.join(", "),
        if outside.len() == 1 { "is" } else { "are" },
        if outside.len() == 1 { "it" } else { "them" },
        if outside.len() == 1 { "it" } else { "them" },
        if outside.len() == 1 { "it" } else { "them" },
    )
}

/// Hosts running a commit that the checked-out commit does not descend
/// from: host -> (commit, why). Empty when the source is not a git repo.
pub fn rewound_from(loaded: &Loaded, obs: &Observation) -> Vec<(String, String, String)> {
    rewound(&loaded.checkout, &obs.observed, &obs.recorded_commits())
}

/// `recorded`: host -> the commit its last apply recorded beside the run
/// lock; it counts like a container label (an apply that only removed
/// containers leaves no label).
fn rewound(
    checkout: &Checkout,
    observed: &BTreeMap<String, HostObservation>,
    recorded: &BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    let Some(head) = &checkout.commit else {
        return Vec::new();
    };
    let mut applied: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // Leftovers of an interrupted or failed rollout (`.berth-failed` keeps a
    // release that never served) say nothing about what the host runs.
    let leftover = |name: &str| {
        [plan::RETIRED_SUFFIX, plan::NEW_SUFFIX, plan::FAILED_SUFFIX]
            .iter()
            .any(|suffix| name.ends_with(suffix))
    };
    for (host, o) in observed {
        for c in o.containers.iter().filter(|c| !leftover(&c.name)) {
            if let Some(commit) = c.labels.get(crate::hosts::labels::COMMIT) {
                if commit != &head.id {
                    applied
                        .entry(commit.as_str())
                        .or_default()
                        .insert(host.as_str());
                }
            }
        }
    }
    for (host, commit) in recorded {
        if commit != &head.id {
            applied
                .entry(commit.as_str())
                .or_default()
                .insert(host.as_str());
        }
    }
    if applied.is_empty() {
        return Vec::new();
    }
    let (repo, head_oid) = match git2::Repository::discover(&checkout.root)
        .and_then(|r| git2::Oid::from_str(&head.id).map(|oid| (r, oid)))
    {
        Ok(found) => found,
        // A commit without its repo: history cannot be checked, so every
        // other commit counts as a possible step back.
        Err(e) => {
            return applied
                .into_iter()
                .flat_map(|(commit, on)| {
                    let why = format!("the repo's history cannot be read ({})", e.message());
                    on.into_iter()
                        .map(move |host| (host.to_string(), commit.to_string(), why.clone()))
                })
                .collect();
        }
    };
    let mut out = Vec::new();
    for (commit, on) in applied {
        let known = git2::Oid::from_str(commit)
            .ok()
            .filter(|c| repo.find_commit(*c).is_ok());
        let why = match known {
            None => format!(
                "{} is not in this repo's history",
                crate::render::short(commit)
            ),
            Some(c) => match source::signature::is_descendant_or_equal(&repo, head_oid, c) {
                Ok(true) => continue,
                Ok(false) => format!(
                    "{} is not a descendant of {}",
                    crate::render::short(&head.id),
                    crate::render::short(commit)
                ),
                Err(e) => format!(
                    "cannot compare with {}: {e:#}",
                    crate::render::short(commit)
                ),
            },
        };
        for host in on {
            out.push((host.to_string(), commit.to_string(), why.clone()));
        }
    }
    out
}

/// Apply refuses to go backwards unless told to: an old commit, or one from
/// a rewritten history, would silently undo what was deployed since.
pub fn refuse_rewind(loaded: &Loaded, obs: &Observation, opts: &RunOptions) -> anyhow::Result<()> {
    let rewound = rewound_from(loaded, obs);
    if rewound.is_empty() || opts.allow_rewind {
        return Ok(());
    }
    let lines: Vec<String> = rewound
        .iter()
        .map(|(host, commit, why)| format!("host `{host}` runs commit {commit}: {why}"))
        .collect();
    anyhow::bail!(
        "refusing to go backwards; no host was changed:\n  - {}\n  help: deploy a newer commit (undo with `git revert`), or pass --allow-rewind to deploy this one on purpose",
        lines.join("\n  - ")
    )
}

/// Decrypts the secrets the plan's new containers read, before any host is
/// changed. Errors name the file and end with "no host was changed".
pub async fn unlock_secrets(
    loaded: &Loaded,
    plan: &Plan,
    opts: &RunOptions,
) -> anyhow::Result<Plaintexts> {
    let needed = secrets::needed(&plan.secrets_read(), &loaded.project);
    if needed.is_empty() {
        return Ok(Plaintexts::default());
    }
    let key = opts.key.clone();
    let root = loaded.checkout.root.clone();
    tokio::task::spawn_blocking(move || {
        let key = key.load()?;
        secrets::decrypt_needed(&root, &needed, key.as_ref())
    })
    .await
    .context("secrets stage panicked")?
    .map_err(|e| anyhow::anyhow!("{e:#}\nno host was changed."))
}

/// Connected hosts and what they run.
pub struct Observation {
    pub engines: BTreeMap<String, Box<dyn Engine>>,
    pub observed: BTreeMap<String, HostObservation>,
    pub unreachable: Vec<UnreachableHost>,
    /// Hosts whose run lock another run held past the timeout: host -> holder.
    pub lock_held: Vec<(String, String)>,
    locks: Vec<HostLock>,
    runtime_dir: PathBuf,
}

impl Observation {
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

    /// Closes every connection and removes the runtime directory.
    pub async fn close(self) {
        for lock in self.locks {
            lock.release().await;
        }
        for engine in self.engines.values() {
            engine.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// Connects to every host in parallel (bounded by `settings.parallel`) and
/// observes it: one SSH handshake and a few list calls per host.
pub async fn observe(loaded: &Loaded, opts: &RunOptions) -> anyhow::Result<Observation> {
    let runtime_dir = runtime_dir()?;
    let settings = &loaded.project.inventory.settings;
    let connect_opts = ConnectOptions {
        known_hosts: settings.known_hosts.clone(),
        connect_timeout: settings.connect_timeout,
        runtime_dir: runtime_dir.clone(),
        identity_file: opts.identity_file.clone(),
    };
    let project_name = loaded.project.name.as_str();
    let hosts = loaded
        .project
        .inventory
        .hosts
        .iter()
        .filter(|h| opts.only_hosts.is_empty() || opts.only_hosts.contains(&h.name));
    let parallel = settings.parallel.max(1);
    let connected: Vec<_> = stream::iter(hosts.map(|host| {
        let connect_opts = connect_opts.clone();
        async move {
            hosts::connect(host, &connect_opts)
                .await
                .map_err(|e| (host.name.clone(), e))
        }
    }))
    .buffer_unordered(parallel)
    .collect()
    .await;

    let mut observation = Observation {
        engines: BTreeMap::new(),
        observed: BTreeMap::new(),
        unreachable: Vec::new(),
        lock_held: Vec::new(),
        locks: Vec::new(),
        runtime_dir,
    };
    let unreachable = |observation: &mut Observation, host: String, e: anyhow::Error| {
        tracing::error!(host = %host, "{e:#}");
        observation.unreachable.push(UnreachableHost {
            host,
            error: format!("{e:#}"),
        });
    };
    for r in connected {
        match r {
            Ok(engine) => {
                observation
                    .engines
                    .insert(engine.host().to_string(), engine);
            }
            Err((host, e)) => unreachable(&mut observation, host, e),
        }
    }

    // Lock before observing: the plan must see what the previous holder
    // left, not what was there before it finished.
    if let Some(timeout) = opts.lock_timeout {
        let holder =
            hosts::lock::holder_description(loaded.checkout.commit.as_ref().map(|c| c.id.as_str()));
        match lock_all(
            &observation.engines,
            project_name,
            &holder,
            timeout,
            parallel,
        )
        .await
        {
            Ok(locks) => observation.locks = locks,
            Err(LockFailure::Held(held)) => {
                observation.lock_held = held;
                return Ok(observation);
            }
            Err(LockFailure::Failed(host, e)) => {
                if let Some(engine) = observation.engines.remove(&host) {
                    engine.close().await;
                }
                unreachable(&mut observation, host, e);
            }
        }
    }

    let observed: Vec<_> = stream::iter(observation.engines.values().map(|engine| async move {
        (
            engine.host().to_string(),
            engine.observe(project_name).await,
        )
    }))
    .buffer_unordered(parallel)
    .collect()
    .await;
    for (host, result) in observed {
        match result {
            Ok(obs) => {
                observation.observed.insert(host, obs);
            }
            Err(e) => {
                if let Some(engine) = observation.engines.remove(&host) {
                    engine.close().await;
                }
                unreachable(&mut observation, host, e);
            }
        }
    }
    observation.unreachable.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(observation)
}

enum LockFailure {
    /// Host -> holder, for every host whose lock stayed held.
    Held(Vec<(String, String)>),
    Failed(String, anyhow::Error),
}

/// Takes the run lock on every host. First every host at once without
/// waiting (the common, uncontended case: one round trip); if any is held,
/// those taken are released and the hosts are locked one by one in name
/// order, each waiting up to what is left of `timeout`. A run never waits
/// while holding a lock out of that order, so two runs cannot deadlock.
async fn lock_all(
    engines: &BTreeMap<String, Box<dyn Engine>>,
    project: &str,
    holder: &str,
    timeout: Duration,
    parallel: usize,
) -> Result<Vec<HostLock>, LockFailure> {
    let results: Vec<_> = stream::iter(engines.values().map(|engine| async move {
        (
            engine.host().to_string(),
            engine.lock(project, holder, Duration::ZERO).await,
        )
    }))
    .buffer_unordered(parallel)
    .collect()
    .await;
    let mut locks = Vec::new();
    let mut contended = false;
    let mut failed = None;
    for (host, r) in results {
        match r {
            Ok(lock) => locks.push(lock),
            Err(LockError::Held { .. }) => contended = true,
            Err(LockError::Failed(e)) => failed = Some((host, e)),
        }
    }
    if !contended && failed.is_none() {
        return Ok(locks);
    }
    for lock in locks.drain(..) {
        lock.release().await;
    }
    if let Some((host, e)) = failed {
        return Err(LockFailure::Failed(host, e));
    }

    let deadline = std::time::Instant::now() + timeout;
    for (host, engine) in engines {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match engine.lock(project, holder, left).await {
            Ok(lock) => locks.push(lock),
            Err(e) => {
                for lock in locks {
                    lock.release().await;
                }
                return Err(match e {
                    LockError::Held { holder } => LockFailure::Held(vec![(host.clone(), holder)]),
                    LockError::Failed(e) => LockFailure::Failed(host.clone(), e),
                });
            }
        }
    }
    Ok(locks)
}

/// Desired state against observed: the plan. Pure once the observation is in.
pub fn make_plan(loaded: &Loaded, obs: &Observation, opts: &RunOptions) -> anyhow::Result<Plan> {
    let current = plan::current_placement(&obs.observed);
    let mut desired = placement::place(&loaded.project, &current)
        .map_err(|diagnostics| SpecError { diagnostics })?;
    if !opts.only_hosts.is_empty() {
        desired.hosts.retain(|h, _| opts.only_hosts.contains(h));
    }
    Ok(plan::diff(
        &desired,
        &obs.observed,
        obs.unreachable.clone(),
        loaded.checkout.commit.as_ref().map(|c| c.id.clone()),
    ))
}

/// Executes the plan on the hosts it covers.
pub async fn apply_plan(
    loaded: &Loaded,
    obs: &Observation,
    plan: &Plan,
    secrets: Plaintexts,
    opts: &RunOptions,
) -> ApplyReport {
    // Clean up secret files only where the project has or had secrets: it
    // costs a remote command per host.
    let prune_secrets = loaded.project.stacks.iter().any(|s| !s.secrets.is_empty())
        || obs
            .observed
            .values()
            .flat_map(|o| &o.containers)
            .filter_map(|c| c.labels.get(crate::hosts::labels::SPEC))
            .filter_map(|spec| serde_json::from_str::<crate::spec::ContainerSpec>(spec).ok())
            .any(|spec| !spec.secrets.is_empty());
    let ctx = ApplyContext {
        project: loaded.project.name.clone(),
        metadata: metadata(&loaded.checkout),
        health_timeout: opts.health_timeout,
        services: service_policies(&loaded.project),
        parallel: loaded.project.inventory.settings.parallel,
        secrets: std::sync::Arc::new(secrets),
        secrets_dirs: loaded
            .project
            .inventory
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.secrets_dir.clone()))
            .collect(),
        prune_secrets,
    };
    apply::apply(plan, &obs.engines, &ctx).await
}

/// Audit labels: where a container came from and why, readable with
/// `docker inspect` alone. Not part of the spec hash, so they never cause a
/// replace by themselves.
fn metadata(checkout: &Checkout) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("berth.version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert("berth.origin".into(), checkout.origin.clone());
    m.insert(
        "berth.applied-at".into(),
        crate::report::rfc3339(std::time::SystemTime::now()),
    );
    m.insert("berth.runner".into(), runner_hostname());
    if let Some(c) = &checkout.commit {
        m.insert(crate::hosts::labels::COMMIT.into(), c.id.clone());
        m.insert("berth.commit-author".into(), c.author.clone());
        m.insert(
            "berth.commit-date".into(),
            crate::report::rfc3339(
                std::time::UNIX_EPOCH + Duration::from_secs(c.time.max(0) as u64),
            ),
        );
        m.insert("berth.commit-summary".into(), c.summary.clone());
    }
    m
}

fn runner_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// How each service rolls out: its depth in its stack's `depends_on` graph
/// (validated acyclic by spec), its update/rollback config and checks.
pub fn service_policies(project: &Project) -> BTreeMap<(String, String), ServicePolicy> {
    let mut policies = BTreeMap::new();
    for stack in &project.stacks {
        let deps: BTreeMap<&str, Vec<&str>> = stack
            .services
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.depends_on.keys().map(String::as_str).collect(),
                )
            })
            .collect();
        fn depth<'a>(s: &'a str, deps: &BTreeMap<&'a str, Vec<&'a str>>, seen: usize) -> usize {
            if seen > deps.len() {
                return 0;
            }
            deps.get(s)
                .map(|ds| {
                    ds.iter()
                        .map(|d| 1 + depth(d, deps, seen + 1))
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        }
        for s in &stack.services {
            policies.insert(
                (stack.name.clone(), s.name.clone()),
                ServicePolicy {
                    depth: depth(&s.name, &deps, 0),
                    update: s.deploy.update.clone(),
                    rollback: s.deploy.rollback.clone(),
                    validate: s.validate.clone(),
                },
            );
        }
    }
    policies
}

/// A short, private directory for SSH control sockets and forwarded Docker
/// sockets (unix socket paths must stay under ~100 bytes).
fn runtime_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("BERTH_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let dir = base.join(format!("berth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create runtime directory `{}`", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::ObservedContainer;

    fn commit(repo: &git2::Repository, message: &str) -> String {
        let sig = git2::Signature::now("t", "t@berth.invalid").expect("signature");
        let tree_id = repo.index().and_then(|mut i| i.write_tree()).expect("tree");
        let tree = repo.find_tree(tree_id).expect("tree");
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    fn running(name: &str, commit: &str) -> ObservedContainer {
        ObservedContainer {
            id: name.into(),
            name: name.into(),
            labels: BTreeMap::from([(crate::hosts::labels::COMMIT.to_string(), commit.into())]),
            image: "img".into(),
            state: "running".into(),
            health: None,
            created: 0,
            live: None,
        }
    }

    #[test]
    fn only_what_hosts_really_run_counts_as_going_backwards() {
        let dir = tempfile::tempdir().expect("dir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        let old = commit(&repo, "one");
        let new = commit(&repo, "two");
        let checkout_at = |id: &str| Checkout {
            root: dir.path().to_path_buf(),
            commit: Some(source::CommitInfo {
                id: id.into(),
                summary: String::new(),
                author: String::new(),
                time: 0,
            }),
            origin: "test".into(),
            dirty: false,
        };
        let hosts = |containers: Vec<ObservedContainer>| {
            BTreeMap::from([(
                "h".to_string(),
                HostObservation {
                    containers,
                    ..Default::default()
                },
            )])
        };

        let none = BTreeMap::new();
        // Forward: fine.
        assert!(rewound(
            &checkout_at(&new),
            &hosts(vec![running("a-1", &old)]),
            &none
        )
        .is_empty());
        // Back to the older commit while the host runs the newer one.
        let back = rewound(
            &checkout_at(&old),
            &hosts(vec![running("a-1", &new)]),
            &none,
        );
        assert_eq!(back.len(), 1);
        assert!(back[0].2.contains("is not a descendant of"), "{back:?}");
        // A failed release kept for its logs is not what the host runs.
        let failed = hosts(vec![
            running("a-1", &old),
            running("a-1.berth-failed", &new),
        ]);
        assert!(rewound(&checkout_at(&old), &failed, &none).is_empty());
        // An apply that only removed containers recorded its commit.
        let recorded = BTreeMap::from([("h".to_string(), new.clone())]);
        let only_old = hosts(vec![running("a-1", &old)]);
        assert_eq!(rewound(&checkout_at(&old), &only_old, &recorded).len(), 1);
        // A commit this repo has never seen (a rewritten history).
        let stranger = "0123456789abcdef0123456789abcdef01234567";
        let gone = rewound(
            &checkout_at(&new),
            &hosts(vec![running("a-1", stranger)]),
            &none,
        );
        assert!(gone[0].2.contains("not in this repo's history"), "{gone:?}");
    }
}
