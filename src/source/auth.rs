//! auth: the git2 callbacks that authenticate berth to a git server and the
//! server to berth.
//!
//! - Credentials: for SSH, the key named by `--git-ssh-key` (or
//!   `GIT_SSH_KEY`), then ssh-agent, then `~/.ssh/id_ed25519` and
//!   `~/.ssh/id_rsa`, each tried once; for https, git's credential helper,
//!   once. libgit2 calls the callback again after every rejected credential,
//!   so without a cap a wrong key loops forever.
//! - Host keys: checked against `--known-hosts` (default
//!   `~/.ssh/known_hosts`) by [`super::known_hosts`]; an unknown or changed
//!   key fails the fetch. TLS certificates get libgit2's default checks.
//!
//! libgit2 replaces a callback's error message with a generic one ("invalid
//! or unknown remote ssh hostkey"), so the callbacks also record their own
//! message in [`Failure`] for the caller to report.
//!
//! Nothing here reads the environment: the command line hands over what
//! the runner's flags and environment say, as [`GitSsh`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

use super::git_ssh::GitSsh;
use super::known_hosts::{self, HostKeyStatus};

/// Every credential callback call after this many is refused.
const MAX_CREDENTIAL_ATTEMPTS: usize = 6;

/// Why a callback refused, and what to do about it when there is something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

impl Refusal {
    fn new(message: String, help: &str) -> Refusal {
        Refusal {
            message,
            help: Some(help.to_owned()),
        }
    }
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal {
            message,
            help: None,
        }
    }
}

/// The first refusal a callback produced during one fetch.
#[derive(Debug, Default)]
pub(crate) struct Failure(RefCell<Option<Refusal>>);

impl Failure {
    pub(crate) fn take(&self) -> Option<Refusal> {
        self.0.borrow_mut().take()
    }

    fn record(&self, refusal: Refusal) -> git2::Error {
        let error = git2::Error::from_str(&refusal.message);
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(refusal);
        }
        error
    }
}

/// Callbacks for one fetch of `url` (already redacted in `shown`).
pub(crate) fn callbacks<'a>(
    url: &'a str,
    shown: &'a str,
    ssh: &'a GitSsh,
    failure: &'a Failure,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut creds = CredentialState::default();
    callbacks.credentials(move |url, username, allowed| {
        creds
            .next(url, shown, ssh, username, allowed)
            .map_err(|m| failure.record(m))
    });
    let port = super::url::ssh_port(url).unwrap_or(22);
    callbacks.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: libgit2's own verification against the system roots.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        check_host_key(ssh, host, port, hostkey.hostkey()).map_err(|m| failure.record(m))?;
        Ok(CertificateCheckStatus::CertificateOk)
    });
    callbacks
}

/// One SSH credential to offer.
#[derive(Debug, Clone)]
enum SshSource {
    Agent,
    KeyFile(PathBuf),
}

impl SshSource {
    fn describe(&self) -> String {
        match self {
            SshSource::Agent => "ssh-agent".to_owned(),
            SshSource::KeyFile(path) => format!("`{}`", path.display()),
        }
    }
}

#[derive(Default)]
struct CredentialState {
    calls: usize,
    ssh_queue: Option<VecDeque<SshSource>>,
    tried: Vec<String>,
    helper_tried: bool,
    default_tried: bool,
}

impl CredentialState {
    fn next(
        &mut self,
        url: &str,
        shown: &str,
        ssh: &GitSsh,
        username: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, Refusal> {
        self.calls += 1;
        if self.calls > MAX_CREDENTIAL_ATTEMPTS {
            return Err(self.exhausted(shown, username));
        }
        if allowed.contains(CredentialType::USERNAME) {
            // An SSH URL without `user@`: ssh would use the local user too.
            return Cred::username(&local_user(ssh)).map_err(|e| e.message().to_owned().into());
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = username.map_or_else(|| local_user(ssh), str::to_owned);
            let queue = self.ssh_queue.get_or_insert_with(|| ssh_sources(ssh));
            while let Some(source) = queue.pop_front() {
                self.tried.push(source.describe());
                let cred = match &source {
                    SshSource::Agent => Cred::ssh_key_from_agent(&user),
                    SshSource::KeyFile(key) => {
                        let public = public_key_beside(key);
                        Cred::ssh_key(&user, public.as_deref(), key, None)
                    }
                };
                match cred {
                    Ok(cred) => return Ok(cred),
                    Err(e) => tracing::debug!("skipping {}: {}", source.describe(), e.message()),
                }
            }
            return Err(self.exhausted(shown, Some(&user)));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !self.helper_tried {
            self.helper_tried = true;
            self.tried.push("git's credential helper".to_owned());
            let config = git2::Config::open_default().map_err(|e| e.message().to_owned())?;
            if let Ok(cred) = Cred::credential_helper(&config, url, username) {
                return Ok(cred);
            }
        }
        if allowed.contains(CredentialType::DEFAULT) && !self.default_tried {
            self.default_tried = true;
            self.tried
                .push("the system's default credentials".to_owned());
            return Cred::default().map_err(|e| e.message().to_owned().into());
        }
        Err(self.exhausted(shown, username))
    }

    fn exhausted(&self, shown: &str, username: Option<&str>) -> Refusal {
        let who = username.map(|u| format!(" as `{u}`")).unwrap_or_default();
        let tried = if self.tried.is_empty() {
            "no credentials were available".to_owned()
        } else {
            format!("tried {}", self.tried.join(", "))
        };
        let help = if self.ssh_queue.is_some() {
            "load the deploy key into ssh-agent, or set `BERTH_GIT_SSH_KEY` to its private key \
             file"
        } else {
            "configure a git credential helper that has a token for this server, or use an ssh URL"
        };
        Refusal::new(
            format!("authentication to `{shown}`{who} failed ({tried})"),
            help,
        )
    }
}

/// The order berth offers SSH keys in: an explicitly configured key first
/// (servers drop the connection after a few failed keys), then the agent,
/// then OpenSSH's default key files that exist.
fn ssh_sources(ssh: &GitSsh) -> VecDeque<SshSource> {
    let mut sources: VecDeque<SshSource> = ssh
        .key_files
        .iter()
        .cloned()
        .map(SshSource::KeyFile)
        .collect();
    if ssh.agent {
        sources.push_back(SshSource::Agent);
    }
    if let Some(home) = &ssh.home {
        for name in ["id_ed25519", "id_rsa"] {
            let path = home.join(".ssh").join(name);
            if path.is_file() {
                sources.push_back(SshSource::KeyFile(path));
            }
        }
    }
    sources
}

fn public_key_beside(private: &Path) -> Option<PathBuf> {
    let mut name = private.file_name()?.to_os_string();
    name.push(".pub");
    let public = private.with_file_name(name);
    public.is_file().then_some(public)
}

fn local_user(ssh: &GitSsh) -> String {
    ssh.user.clone().unwrap_or_else(|| "git".to_owned())
}

/// `--known-hosts`, else `~/.ssh/known_hosts`.
fn known_hosts_path(ssh: &GitSsh) -> Result<PathBuf, String> {
    if let Some(path) = &ssh.known_hosts {
        return Ok(path.clone());
    }
    ssh.home
        .as_ref()
        .map(|h| h.join(".ssh").join("known_hosts"))
        .ok_or_else(|| {
            "cannot find a known_hosts file: neither `BERTH_KNOWN_HOSTS` nor `HOME` is set"
                .to_owned()
        })
}

fn check_host_key(ssh: &GitSsh, host: &str, port: u16, key: Option<&[u8]>) -> Result<(), Refusal> {
    let Some(key) = key else {
        return Err(format!("the ssh server `{host}` sent no host key berth can check").into());
    };
    let path = known_hosts_path(ssh)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display()).into()),
    };
    host_key_verdict(&text, &path, host, port, key)
}

/// The decision and its message, apart from the file I/O so tests can check
/// the wording.
fn host_key_verdict(
    text: &str,
    path: &Path,
    host: &str,
    port: u16,
    key: &[u8],
) -> Result<(), Refusal> {
    let name = known_hosts::lookup_name(host, port);
    let offered = known_hosts::key_type(key).unwrap_or("unknown");
    let fingerprint = known_hosts::fingerprint(key);
    let keyscan = if port == 22 {
        format!("ssh-keyscan {host}")
    } else {
        format!("ssh-keyscan -p {port} {host}")
    };
    match known_hosts::check(text, host, port, key) {
        HostKeyStatus::Known => Ok(()),
        HostKeyStatus::Unknown => Err(Refusal::new(
            format!(
                "ssh host `{name}` is not in `{}` (it offered {offered} key {fingerprint})",
                path.display()
            ),
            &format!(
                "check the fingerprint with the server's admin, then add it with `{keyscan} >> {}` \
                 or point `BERTH_KNOWN_HOSTS` at a file that has it",
                path.display()
            ),
        )),
        HostKeyStatus::Revoked => Err(format!(
            "ssh host `{name}` offered {offered} key {fingerprint}, which `{}` marks @revoked",
            path.display()
        )
        .into()),
        HostKeyStatus::Changed { known_types } if known_types.iter().any(|t| t == offered) => {
            Err(Refusal::new(
                format!(
                    "ssh host key of `{name}` does not match `{}`: it offered {offered} key \
                     {fingerprint}; someone may be intercepting the connection, or the host key \
                     changed",
                    path.display()
                ),
                "confirm the new key with the server's admin before replacing the entry",
            ))
        }
        HostKeyStatus::Changed { known_types } => Err(Refusal::new(
            format!(
                "ssh host `{name}` offered a {offered} key ({fingerprint}) but `{}` lists only {} \
                 for it",
                path.display(),
                known_types.join(", ")
            ),
            &format!("add its {offered} key after checking the fingerprint"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMo8wRZjTbX3qJ+a9+A1EW0mvQJ/iUPQSOGOGnbuUvOz";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILt7/AL+IAaNKlSJInX9G6cSptWkaEq78WYinbU6aMFj";

    fn key(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn host_key_messages() {
        let path = Path::new("/etc/berth/known_hosts");
        let file =
            format!("git.example.com ssh-ed25519 {K1}\n[git.example.com]:2222 ssh-rsa {K2}\n");
        assert!(host_key_verdict(&file, path, "git.example.com", 22, &key(K1)).is_ok());

        let unknown = host_key_verdict(&file, path, "other.example.com", 22, &key(K1)).unwrap_err();
        assert!(
            unknown
                .message
                .contains("ssh host `other.example.com` is not in `/etc/berth/known_hosts`"),
            "{unknown:?}"
        );
        assert!(
            unknown
                .help
                .as_deref()
                .unwrap_or_default()
                .contains("ssh-keyscan other.example.com >>"),
            "{unknown:?}"
        );

        let changed = host_key_verdict(&file, path, "git.example.com", 22, &key(K2)).unwrap_err();
        assert!(changed.message.contains("does not match"), "{changed:?}");

        let other_type =
            host_key_verdict(&file, path, "git.example.com", 2222, &key(K1)).unwrap_err();
        assert!(
            other_type.message.contains("lists only ssh-rsa"),
            "{other_type:?}"
        );
    }

    #[test]
    fn credential_attempts_are_capped() {
        let mut state = CredentialState {
            ssh_queue: Some(VecDeque::new()),
            ..CredentialState::default()
        };
        let err = state
            .next(
                "u",
                "ssh://git@example.com/repo",
                &GitSsh::default(),
                Some("git"),
                CredentialType::SSH_KEY,
            )
            .err()
            .unwrap();
        assert!(
            err.message
                .contains("authentication to `ssh://git@example.com/repo` as `git` failed"),
            "{err:?}"
        );
        for _ in 0..MAX_CREDENTIAL_ATTEMPTS {
            let _ = state.next("u", "u", &GitSsh::default(), None, CredentialType::USERNAME);
        }
        assert!(state
            .next("u", "u", &GitSsh::default(), None, CredentialType::USERNAME)
            .is_err());
    }

    #[test]
    fn ssh_keys_are_offered_in_the_order_the_runner_gave_them() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/id_rsa"), "").unwrap();
        let ssh = GitSsh {
            key_files: vec![PathBuf::from("/keys/deploy"), PathBuf::from("/keys/other")],
            agent: true,
            home: Some(home.path().to_path_buf()),
            user: Some("ci".into()),
            known_hosts: None,
        };
        let offered: Vec<String> = ssh_sources(&ssh).iter().map(SshSource::describe).collect();
        assert_eq!(
            offered,
            [
                "`/keys/deploy`".to_string(),
                "`/keys/other`".to_string(),
                "ssh-agent".to_string(),
                format!("`{}`", home.path().join(".ssh/id_rsa").display()),
            ]
        );
        assert_eq!(local_user(&ssh), "ci");
        assert_eq!(local_user(&GitSsh::default()), "git");
        assert_eq!(
            known_hosts_path(&ssh),
            Ok(home.path().join(".ssh/known_hosts"))
        );
        assert!(known_hosts_path(&GitSsh::default())
            .unwrap_err()
            .contains("neither `BERTH_KNOWN_HOSTS` nor `HOME` is set"));
    }
}
