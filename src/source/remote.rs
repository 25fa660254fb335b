//! remote: the cache of a repo named by URL, brought up to date and checked
//! out at the wanted commit on every run.
//!
//! Layout: `cache_dir/<name>-<sha256 of url>/` is a normal clone with a work
//! tree (later stages read files from it); `cache_dir/.<dir>.lock` serialises
//! runs; `cache_dir/.<dir>.tmp/` holds a clone in progress.
//!
//! Invariants:
//! - A failed fetch is an error; the stale checkout is never returned.
//! - A run killed at any point leaves a cache the next run can use or
//!   replaces: a first clone is made in the temp dir and renamed into place;
//!   lock files left inside `.git` are removed (the run holds the cache lock,
//!   so no one else is writing); a cache that does not open, has another
//!   origin, or fails locally (not over the network) is cloned afresh.
//! - The work tree is exactly the commit: a forced checkout, then untracked
//!   and ignored files removed, so a stack deleted upstream vanishes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, ErrorClass, ErrorCode, FetchOptions, FetchPrune, Oid, ProxyOptions, Repository,
};

use super::checkout::{commit_info, Checkout};
use super::git_ssh::GitSsh;
use super::{auth, url};
use crate::error::{hinted, Hint};

/// Every branch (as `origin/*`) and every tag, forced and pruned, so the
/// cache mirrors the remote even after force-pushes and deletions.
const REFSPECS: [&str; 2] = [
    "+refs/heads/*:refs/remotes/origin/*",
    "+refs/tags/*:refs/tags/*",
];

/// Brings the cache of `url` up to date and checks out `git_ref` (None: the
/// remote's default branch). Blocking; waits for another run using the same
/// cache.
pub(crate) fn resolve(
    url: &str,
    git_ref: Option<&str>,
    cache_dir: &Path,
    ssh: &GitSsh,
) -> Result<Checkout> {
    let shown = url::redact(url);
    fs::create_dir_all(cache_dir).with_context(|| {
        format!(
            "cannot create the cache directory `{}`",
            cache_dir.display()
        )
    })?;
    let name = url::cache_name(url);
    let cache = Cache {
        url,
        ssh,
        shown: &shown,
        dir: cache_dir.join(&name),
        tmp: cache_dir.join(format!(".{name}.tmp")),
    };
    let _lock = CacheLock::acquire(&cache_dir.join(format!(".{name}.lock")))?;

    let (mut repo, mut head, fresh) = cache.sync()?;
    let mut oid = resolve_target(&repo, git_ref, head.as_deref(), &shown)?;
    if let Err(e) = checkout(&repo, oid) {
        if fresh {
            return Err(checkout_error(&cache, oid, &e));
        }
        tracing::warn!(
            cache = %cache.dir.display(),
            "checkout in the cache failed ({}); cloning afresh",
            e.message()
        );
        drop(repo);
        (repo, head) = cache.clone_fresh()?;
        oid = resolve_target(&repo, git_ref, head.as_deref(), &shown)?;
        checkout(&repo, oid).map_err(|e| checkout_error(&cache, oid, &e))?;
    }

    let commit = repo
        .find_commit(oid)
        .with_context(|| format!("cannot read commit `{oid}` in `{}`", cache.dir.display()))?;
    let info = commit_info(&commit);
    tracing::info!(repo = %shown, commit = %info.id, "checked out {}", git_ref.unwrap_or("the default branch"));
    Ok(Checkout {
        root: cache.dir.clone(),
        commit: Some(info),
        origin: shown.clone(),
        dirty: false,
    })
}

fn checkout_error(cache: &Cache<'_>, oid: Oid, e: &git2::Error) -> anyhow::Error {
    anyhow!(
        "cannot check out commit `{oid}` of `{}` in `{}`: {}",
        cache.shown,
        cache.dir.display(),
        e.message()
    )
}

struct Cache<'a> {
    url: &'a str,
    ssh: &'a GitSsh,
    /// The URL with any password masked, for messages.
    shown: &'a str,
    dir: PathBuf,
    tmp: PathBuf,
}

impl Cache<'_> {
    /// An up-to-date repo, the remote's default branch (`refs/heads/...`, if
    /// it has one), and whether the repo was cloned just now.
    fn sync(&self) -> Result<(Repository, Option<String>, bool)> {
        let Some(repo) = self.open_existing()? else {
            let (repo, head) = self.clone_fresh()?;
            return Ok((repo, head, true));
        };
        match fetch(&repo, self.url, self.shown, self.ssh) {
            Ok(head) => Ok((repo, head, false)),
            Err(e) => {
                let stale = hinted(
                    format!(
                        "fetch of `{}` failed: {}; not planning from the stale cache at `{}`",
                        self.shown,
                        e.message,
                        self.dir.display()
                    ),
                    e.help.clone(),
                );
                if e.remote {
                    return Err(stale);
                }
                // Not a network, TLS, SSH or auth failure: the cache itself
                // may be damaged. A fresh clone settles it either way.
                tracing::warn!(
                    cache = %self.dir.display(),
                    "fetch failed ({}); the cache may be damaged, trying a fresh clone",
                    e.message
                );
                drop(repo);
                match self.clone_fresh() {
                    Ok((repo, head)) => Ok((repo, head, true)),
                    Err(clone_err) => {
                        tracing::debug!("fresh clone failed too: {clone_err:#}");
                        Err(stale)
                    }
                }
            }
        }
    }

    /// The cache repo if it exists and is sound; otherwise removes whatever
    /// is there so a clone can take its place.
    fn open_existing(&self) -> Result<Option<Repository>> {
        if fs::symlink_metadata(&self.dir).is_err() {
            return Ok(None);
        }
        match self.check_existing() {
            Ok(repo) => Ok(Some(repo)),
            Err(reason) => {
                tracing::warn!(cache = %self.dir.display(), "cache is unusable ({reason}); cloning afresh");
                remove_path(&self.dir)?;
                Ok(None)
            }
        }
    }

    fn check_existing(&self) -> Result<Repository, String> {
        let git_dir = self.dir.join(".git");
        remove_stale_locks(&git_dir, false);
        remove_stale_locks(&git_dir.join("refs"), true);
        let repo = Repository::open(&self.dir).map_err(|e| e.message().to_owned())?;
        if repo.is_bare() {
            return Err("it has no work tree".to_owned());
        }
        {
            let origin = repo
                .find_remote("origin")
                .map_err(|e| format!("no `origin` remote: {}", e.message()))?;
            if origin.url().ok() != Some(self.url) {
                let found = origin.url().map(url::redact).unwrap_or_default();
                return Err(format!("its origin is `{found}`, not `{}`", self.shown));
            }
        }
        Ok(repo)
    }

    /// Clones into the temp dir, then renames it over the cache dir, so a
    /// killed clone never looks like a cache.
    fn clone_fresh(&self) -> Result<(Repository, Option<String>)> {
        remove_path(&self.tmp)?;
        let head = self.clone_into_tmp().inspect_err(|_| {
            let _ = remove_path(&self.tmp);
        })?;
        remove_path(&self.dir)?;
        fs::rename(&self.tmp, &self.dir).with_context(|| {
            format!(
                "cannot move the new clone `{}` to `{}`",
                self.tmp.display(),
                self.dir.display()
            )
        })?;
        let repo = Repository::open(&self.dir).map_err(|e| {
            anyhow!(
                "cannot open the new clone `{}`: {}",
                self.dir.display(),
                e.message()
            )
        })?;
        Ok((repo, head))
    }

    fn clone_into_tmp(&self) -> Result<Option<String>> {
        tracing::info!(repo = %self.shown, "cloning into `{}`", self.dir.display());
        let repo = Repository::init(&self.tmp).map_err(|e| {
            anyhow!(
                "cannot create a git repository in `{}`: {}",
                self.tmp.display(),
                e.message()
            )
        })?;
        repo.remote_with_fetch("origin", self.url, REFSPECS[0])
            .and_then(|_| repo.remote_add_fetch("origin", REFSPECS[1]))
            .map_err(|e| {
                anyhow!(
                    "cannot add the remote `{}` to `{}`: {}",
                    self.shown,
                    self.tmp.display(),
                    e.message()
                )
            })?;
        fetch(&repo, self.url, self.shown, self.ssh).map_err(|e| {
            hinted(
                format!("clone of `{}` failed: {}", self.shown, e.message),
                e.help,
            )
        })
    }
}

#[derive(Debug)]
struct FetchError {
    message: String,
    /// What to do about it (a host key to check, a key to load).
    help: Option<String>,
    /// The remote side failed (network, TLS, SSH, auth, host key), as
    /// opposed to the local repository.
    remote: bool,
}

/// Fetches every branch and tag of `origin`; returns the remote's default
/// branch as `refs/heads/<name>` when it advertises one.
fn fetch(
    repo: &Repository,
    url: &str,
    shown: &str,
    ssh: &GitSsh,
) -> Result<Option<String>, FetchError> {
    let failure = auth::Failure::default();
    let mut remote = repo.find_remote("origin").map_err(|e| FetchError {
        message: format!("no `origin` remote: {}", e.message()),
        help: None,
        remote: false,
    })?;
    let mut proxy = ProxyOptions::new();
    proxy.auto();
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(auth::callbacks(url, shown, ssh, &failure))
        .proxy_options(proxy)
        .prune(FetchPrune::On)
        .download_tags(AutotagOption::None)
        .update_fetchhead(false);
    tracing::debug!(repo = %shown, "fetching");
    if let Err(e) = remote.fetch(&REFSPECS, Some(&mut opts), Some("berth: fetch")) {
        let from_callback = failure.take();
        let remote = from_callback.is_some() || is_remote_error(&e);
        let refusal = from_callback.unwrap_or_else(|| e.message().to_owned().into());
        return Err(FetchError {
            remote,
            message: refusal.message,
            help: refusal.help,
        });
    }
    // Available after the fetch disconnects: libgit2 keeps the advertised refs.
    let head = remote
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_owned));
    Ok(head)
}

fn is_remote_error(e: &git2::Error) -> bool {
    matches!(
        e.class(),
        ErrorClass::Net
            | ErrorClass::Ssh
            | ErrorClass::Http
            | ErrorClass::Ssl
            | ErrorClass::Callback
    ) || matches!(
        e.code(),
        ErrorCode::Auth | ErrorCode::Certificate | ErrorCode::User
    )
}

/// The commit `git_ref` names among the fetched refs. Branches and tags are
/// looked up by name (an ambiguous name is an error); a hex string of 4 to 40
/// digits that names neither is a commit id, accepted only if a fetched
/// branch or tag reaches it, so an old cache resolves exactly what a fresh
/// clone would.
fn resolve_target(
    repo: &Repository,
    git_ref: Option<&str>,
    default_branch: Option<&str>,
    shown: &str,
) -> Result<Oid> {
    let Some(name) = git_ref else {
        let head = default_branch.ok_or_else(|| {
            Hint::new(
                format!(
                    "cannot tell the default branch of `{shown}` (its HEAD points nowhere, or it \
                     has no commits)"
                ),
                "name a branch, tag or commit with `--ref`",
            )
        })?;
        let branch = head.strip_prefix("refs/heads/").unwrap_or(head);
        return lookup(repo, &format!("refs/remotes/origin/{branch}"))?.ok_or_else(|| {
            anyhow!("the default branch `{branch}` of `{shown}` was not among the fetched branches")
        });
    };

    let (as_branch, as_tag) = if let Some(b) = name.strip_prefix("refs/heads/") {
        (Some(b), None)
    } else if let Some(t) = name.strip_prefix("refs/tags/") {
        (None, Some(t))
    } else {
        (Some(name), Some(name))
    };
    let branch = match as_branch {
        Some(b) => lookup(repo, &format!("refs/remotes/origin/{b}"))?,
        None => None,
    };
    let tag = match as_tag {
        Some(t) => lookup(repo, &format!("refs/tags/{t}"))?,
        None => None,
    };
    match (branch, tag) {
        (Some(b), Some(t)) if b != t => {
            return Err(Hint::new(
                format!("ref `{name}` of `{shown}` names both a branch and a tag"),
                format!("pass `refs/heads/{name}` or `refs/tags/{name}`"),
            )
            .into())
        }
        (Some(oid), _) | (None, Some(oid)) => return Ok(oid),
        (None, None) => {}
    }
    if (4..=40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Some(oid) = find_commit_id(repo, name, shown)? {
            return Ok(oid);
        }
    }
    Err(Hint::new(
        format!("ref `{name}` is not a branch, tag or commit of `{shown}`"),
        "pass a branch or tag name as the remote has it, or a commit id (at least 4 hex digits) \
         on one of them",
    )
    .into())
}

/// The commit a reference points to (through annotated tags); None if there
/// is no such reference.
fn lookup(repo: &Repository, refname: &str) -> Result<Option<Oid>> {
    let reference = match repo.find_reference(refname) {
        Ok(r) => r,
        Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec) => {
            return Ok(None)
        }
        Err(e) => bail!("cannot read `{refname}`: {}", e.message()),
    };
    let commit = reference
        .peel_to_commit()
        .map_err(|e| anyhow!("`{refname}` does not point to a commit: {}", e.message()))?;
    Ok(Some(commit.id()))
}

fn find_commit_id(repo: &Repository, prefix: &str, shown: &str) -> Result<Option<Oid>> {
    let commit = match repo.find_commit_by_prefix(prefix) {
        Ok(c) => c,
        Err(e) if e.code() == ErrorCode::Ambiguous => {
            return Err(Hint::new(
                format!("commit id `{prefix}` is ambiguous in `{shown}`"),
                "give more of its digits",
            )
            .into())
        }
        Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec) => {
            return Ok(None)
        }
        Err(e) => bail!("cannot look up commit `{prefix}`: {}", e.message()),
    };
    let oid = commit.id();
    if !reachable_from_fetched_refs(repo, oid)? {
        return Err(Hint::new(
            format!("commit `{prefix}` is not on any branch or tag of `{shown}`"),
            "push a branch or tag that contains it",
        )
        .into());
    }
    Ok(Some(oid))
}

fn reachable_from_fetched_refs(repo: &Repository, oid: Oid) -> Result<bool> {
    let mut walk = repo.revwalk()?;
    for reference in repo.references()? {
        let reference = reference?;
        let fetched = reference
            .name()
            .is_ok_and(|n| n.starts_with("refs/remotes/origin/") || n.starts_with("refs/tags/"));
        if fetched {
            if let Ok(commit) = reference.peel_to_commit() {
                walk.push(commit.id())?;
            }
        }
    }
    for id in walk {
        if id? == oid {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes the work tree exactly `oid`: forced, untracked and ignored files
/// removed (a hard reset alone keeps them).
fn checkout(repo: &Repository, oid: Oid) -> Result<(), git2::Error> {
    let commit = repo.find_commit(oid)?;
    let mut builder = CheckoutBuilder::new();
    builder.force().remove_untracked(true).remove_ignored(true);
    repo.checkout_tree(commit.as_object(), Some(&mut builder))?;
    repo.set_head_detached(oid)
}

/// Removes `*.lock` files a killed run left in a git dir; recursive for
/// `refs/`. Safe only while holding the [`CacheLock`].
fn remove_stale_locks(dir: &Path, recursive: bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if recursive {
                remove_stale_locks(&path, true);
            }
        } else if path.extension().is_some_and(|e| e == "lock") {
            tracing::warn!("removing `{}` left by an interrupted run", path.display());
            let _ = fs::remove_file(&path);
        }
    }
}

fn remove_path(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.with_context(|| format!("cannot remove `{}`", path.display()))
}

/// An exclusive `flock` on a file beside the cache: two runs (a timer and a
/// person) must not fetch and check out in the same work tree at once. The
/// kernel drops the lock when the process dies, so it never goes stale.
struct CacheLock {
    _file: fs::File,
}

impl CacheLock {
    fn acquire(path: &Path) -> Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open the cache lock `{}`", path.display()))?;
        // std's file locks are `flock(2)` on Linux (stable since Rust 1.89):
        // no unsafe call of our own.
        let held = match file.try_lock() {
            Ok(()) => false,
            Err(fs::TryLockError::WouldBlock) => true,
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock `{}`", path.display()))
            }
        };
        if held {
            tracing::info!(
                "waiting for another berth run to release `{}`",
                path.display()
            );
            loop {
                match file.lock() {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot lock `{}`", path.display()))
                    }
                }
            }
        }
        Ok(Self { _file: file })
    }
}
