//! source: turns `--repo` (a git URL or a local path) into a checkout on disk.
//!
//! Input: [`SourceOptions`]. Output: a [`Checkout`] naming the commit.
//! Invariant: a failed fetch is an error, never a silent use of a stale cache.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// A git URL (`ssh://`, `https://`, `file://`, `user@host:path`) or a local path.
    pub repo: String,
    /// Branch, tag or commit; None = the remote's default branch (URL) or the
    /// current checkout (local path).
    pub git_ref: Option<String>,
    /// Where URL repos are cloned, one directory per URL.
    pub cache_dir: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CommitInfo {
    pub id: String,
    pub summary: String,
    pub author: String,
    /// Seconds since the epoch.
    pub time: i64,
}

#[derive(Debug, Clone)]
pub struct Checkout {
    /// Directory holding `berth.yaml`.
    pub root: PathBuf,
    /// None when the local path is not a git repo.
    pub commit: Option<CommitInfo>,
    /// The URL or path as given, for labels and reports.
    pub origin: String,
    /// True when a local checkout has uncommitted changes.
    pub dirty: bool,
}

/// Blocking (git2): call from `spawn_blocking`.
pub fn resolve(opts: &SourceOptions) -> anyhow::Result<Checkout> {
    let _ = opts;
    todo!("source::resolve")
}
