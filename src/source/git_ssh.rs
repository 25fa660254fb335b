//! What fetching a repo over SSH may use: a leaf of plain data that the
//! command line fills in and the git callbacks read.

use std::path::PathBuf;

/// What fetching a repo over SSH may use, from the runner's flags and
/// environment: the command line reads them, so every setting berth takes
/// is found in one place (`berth --help`).
#[derive(Debug, Clone, Default)]
pub struct GitSsh {
    /// Private key files to offer first, in order (`--git-ssh-key`, then
    /// `GIT_SSH_KEY`): servers drop the connection after a few failed keys.
    pub key_files: Vec<PathBuf>,
    /// Whether an ssh-agent is there to ask (`SSH_AUTH_SOCK` is set).
    pub agent: bool,
    /// The runner's home: `~/.ssh/id_ed25519`, `~/.ssh/id_rsa` and
    /// `~/.ssh/known_hosts` are under it.
    pub home: Option<PathBuf>,
    /// The user name for URLs without `user@`, as ssh would use (`USER`);
    /// None: `git`.
    pub user: Option<String>,
    /// The known_hosts file for the server's key (`--known-hosts`); None:
    /// `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
}
