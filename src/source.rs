//! source: turns `--repo` (a git URL or a local path) into a checkout on disk.
//!
//! Input: [`SourceOptions`]. Output: a [`Checkout`] naming the commit.
//! Invariant: a failed fetch is an error, never a silent use of a stale cache.
//!
//! - An existing directory is used in place (PR plans run on the PR's
//!   checkout). If it lies in a git work tree, the commit is HEAD and `dirty`
//!   says whether anything under the directory differs from it.
//! - A URL is cloned once into `cache_dir` and fetched on every run (see
//!   [`remote`]); SSH host keys are checked against known_hosts (see
//!   [`auth`]).

mod auth;
mod checkout;
mod git_ssh;
pub mod history;
mod known_hosts;
mod remote;
pub mod signature;
pub mod trust;
mod url;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use git2::{ErrorCode, Repository, StatusOptions};

use crate::error::Hint;

use checkout::commit_info;
pub use checkout::{Checkout, CommitInfo};
pub use git_ssh::GitSsh;

#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// A git URL (`ssh://`, `https://`, `file://`, `user@host:path`) or a local path.
    pub repo: String,
    /// Branch, tag or commit; None = the remote's default branch (URL) or the
    /// current checkout (local path).
    pub git_ref: Option<String>,
    /// Where URL repos are cloned, one directory per URL.
    pub cache_dir: PathBuf,
    /// What fetching over SSH may use.
    pub ssh: GitSsh,
}

/// Blocking (git2): call from `spawn_blocking`.
///
/// An existing directory wins over URL syntax, so a local directory named
/// like `host:path` still works.
pub fn resolve(opts: &SourceOptions) -> Result<Checkout> {
    let repo = opts.repo.as_str();
    let path = Path::new(repo);
    if path.is_dir() {
        if let Some(git_ref) = &opts.git_ref {
            bail!(
                "`--ref {git_ref}` works only with a git URL; check out the ref yourself \
                 (`git -C {repo} checkout {git_ref}`) or pass the repo's URL"
            );
        }
        return resolve_local(path, repo);
    }
    if url::is_git_url(repo) {
        return remote::resolve(repo, opts.git_ref.as_deref(), &opts.cache_dir, &opts.ssh);
    }
    let what = if path.exists() {
        "is not a directory"
    } else {
        "does not exist"
    };
    Err(Hint::new(
        format!("repo `{repo}` is neither a directory nor a git URL ({what})"),
        "pass the directory holding `berth.yaml`, or a URL such as `git@host:org/repo.git`, \
         `ssh://git@host/org/repo.git` or `https://host/org/repo.git`",
    )
    .into())
}

fn resolve_local(root: &Path, given: &str) -> Result<Checkout> {
    let (commit, dirty) = local_git_state(root)?;
    Ok(Checkout {
        root: root.to_path_buf(),
        commit,
        origin: given.to_owned(),
        dirty,
    })
}

/// HEAD's commit and the dirty flag for `root`, or (None, false) outside git.
/// `root` may be a subdirectory of the work tree (berth files kept in a
/// monorepo); then only changes under it make the checkout dirty.
fn local_git_state(root: &Path) -> Result<(Option<CommitInfo>, bool)> {
    let repo = match Repository::discover(root) {
        Ok(repo) => repo,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok((None, false)),
        Err(e) if e.code() == ErrorCode::Owner => {
            return Err(Hint::new(
                format!(
                    "cannot read the git repository around `{}`: {}",
                    root.display(),
                    e.message()
                ),
                "run berth as the checkout's owner, or add it to git's `safe.directory`",
            )
            .into())
        }
        Err(e) => bail!(
            "cannot read the git repository around `{}`: {}",
            root.display(),
            e.message()
        ),
    };
    let Some(workdir) = repo.workdir() else {
        // A bare repo has no files to plan from: its contents are not a commit.
        return Ok((None, false));
    };
    let rel = relative_to(root, workdir)?;

    let commit = match repo.head() {
        Ok(head) => {
            let commit = head.peel_to_commit().map_err(|e| {
                anyhow!(
                    "cannot read HEAD of the git repository `{}`: {}",
                    workdir.display(),
                    e.message()
                )
            })?;
            Some(commit_info(&commit))
        }
        // A fresh `git init`: nothing committed yet.
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => None,
        Err(e) => bail!(
            "cannot read HEAD of the git repository `{}`: {}",
            workdir.display(),
            e.message()
        ),
    };
    let dirty = has_changes_under(&repo, &rel).with_context(|| {
        format!(
            "cannot read the status of the git repository `{}`",
            workdir.display()
        )
    })?;
    Ok((commit, dirty))
}

/// `root` relative to the work tree, with `/` separators ("" for the top).
fn relative_to(root: &Path, workdir: &Path) -> Result<String> {
    let canonical = |p: &Path| {
        p.canonicalize()
            .with_context(|| format!("cannot resolve the path `{}`", p.display()))
    };
    let (root, workdir) = (canonical(root)?, canonical(workdir)?);
    let rel = root.strip_prefix(&workdir).map_err(|_| {
        anyhow!(
            "`{}` is not inside the git work tree `{}`",
            root.display(),
            workdir.display()
        )
    })?;
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// Staged, unstaged or untracked (not ignored) changes under `rel`.
fn has_changes_under(repo: &Repository, rel: &str) -> Result<bool, git2::Error> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(false);
    // A pathspec narrows the scan in a big monorepo; glob characters in the
    // directory name would change its meaning, so then scan everything and
    // filter below.
    if !rel.is_empty() && !rel.contains(['*', '?', '[', '\\']) {
        opts.pathspec(rel);
    }
    let statuses = repo.statuses(Some(&mut opts))?;
    let prefix = format!("{rel}/");
    let changed = statuses.iter().any(|entry| {
        let path = entry.path_bytes();
        let under = rel.is_empty() || path == rel.as_bytes() || path.starts_with(prefix.as_bytes());
        under && entry.status() != git2::Status::CURRENT && !entry.status().is_ignored()
    });
    Ok(changed)
}

#[cfg(test)]
mod tests;
