//! What a resolved source is: the directory, the commit and its summary.
//! Below `source` and its URL and local-path readers, so both build it
//! without importing each other.

use std::path::PathBuf;

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
    /// The URL or path as given, for labels and reports (a password in a URL
    /// is masked).
    pub origin: String,
    /// True when a local checkout has uncommitted changes.
    pub dirty: bool,
}

/// The commit as labels and reports show it.
pub(super) fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let author = commit.author();
    CommitInfo {
        id: commit.id().to_string(),
        summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
        author: format!(
            "{} <{}>",
            String::from_utf8_lossy(author.name_bytes()),
            String::from_utf8_lossy(author.email_bytes())
        ),
        time: commit.time().seconds(),
    }
}
