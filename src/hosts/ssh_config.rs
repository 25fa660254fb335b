//! `settings.ssh_config`: reaching hosts the way the user's own `ssh` does
//! (host aliases as `address`, `ProxyJump` bastions, `IdentityAgent`,
//! per-host users and ports) without giving up berth's rules.
//!
//! berth never hands the user's file to ssh as it is. For each connection it
//! writes a small config into the run's runtime directory and passes that
//! with `-F`:
//!
//! 1. berth's fixed options, for every host: strict host key checking, no
//!    prompts, a bare connection (no remote or local command, no tty),
//!    berth's `known_hosts` when one is set, its connect timeout and
//!    keepalive. ssh keeps the first value it reads for an option, and a
//!    `ProxyJump` hop is a second `ssh` that reads the same `-F` file but none
//!    of the first one's command-line options: written first, these reach the
//!    jump hosts too, so a bastion's host key is checked as strictly as the
//!    host's.
//! 2. `Include` of the user's file: everything not fixed above (`HostName`,
//!    `User`, `Port`, `ProxyJump`, `IdentityFile`, `IdentityAgent`, ...).
//! 3. berth's defaults (user `root`, port 22) for what neither berth.yaml nor
//!    the user's file sets.
//!
//! Without an ssh config berth passes `-F /dev/null`: a runner's
//! `~/.ssh/config` never changes what berth does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::spec::HostConfig;

/// SSH user when neither berth.yaml nor the ssh config names one.
pub(crate) const DEFAULT_USER: &str = "root";
/// SSH port when neither berth.yaml nor the ssh config names one.
pub(crate) const DEFAULT_PORT: u16 = 22;

/// Distinguishes the config files of several connections within one run.
static CONFIG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A path as one ssh config argument: double-quoted (spaces), `%` doubled
/// where ssh expands tokens. A path ssh could not read back is refused.
fn quoted(path: &Path, tokens: bool) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("path `{}` is not UTF-8", path.display()))?;
    if text.contains(|c: char| c == '"' || c.is_control()) {
        return Err(format!(
            "path `{text}` contains a double quote or a control character, which an ssh config cannot hold"
        ));
    }
    let text = if tokens {
        text.replace('%', "%%")
    } else {
        text.to_string()
    };
    Ok(format!("\"{text}\""))
}

/// Unanswered keepalive probes after which ssh ends the connection
/// (ssh's default `ServerAliveCountMax`, said here so the bound is known).
pub const ALIVE_COUNT: u32 = 3;

/// The config berth passes to ssh when the user has one (see the module
/// documentation for its three parts). Pure.
pub(crate) fn wrapper_text(
    user_config: &Path,
    known_hosts: Option<&Path>,
    connect_timeout: Duration,
    alive_interval: Duration,
    kex: Option<&str>,
) -> Result<String, String> {
    let mut text = String::from(
        "# Written by berth for one run. berth's options come first: ssh keeps the\n\
         # first value it reads, for the host and for every ProxyJump hop alike.\n\
         Host *\n  StrictHostKeyChecking yes\n  BatchMode yes\n\
         \x20 RemoteCommand none\n  RequestTTY no\n  PermitLocalCommand no\n",
    );
    if let Some(known_hosts) = known_hosts {
        text.push_str(&format!(
            "  UserKnownHostsFile {}\n",
            quoted(known_hosts, true)?
        ));
    }
    text.push_str(&format!(
        "  ConnectTimeout {}\n  ServerAliveInterval {}\n  ServerAliveCountMax {}\n",
        connect_timeout.as_secs().max(1),
        alive_interval.as_secs().max(1),
        ALIVE_COUNT
    ));
    if let Some(kex) = kex {
        text.push_str(&format!("  KexAlgorithms {kex}\n"));
    }
    text.push_str(&format!(
        "# The user's config: aliases, ProxyJump, IdentityAgent, users, ports.\n\
         Include {}\n\
         # berth's defaults, for what neither berth.yaml nor that config sets.\n\
         Host *\n  User {DEFAULT_USER}\n  Port {DEFAULT_PORT}\n",
        quoted(user_config, false)?
    ));
    Ok(text)
}

/// The config berth passes to ssh when the user has none but
/// `settings.ssh_kex` is set: the key exchange alone (berth's other options
/// are on ssh's command line). `kex` is checked when berth.yaml is read to
/// be one line of `KexAlgorithms` names. Pure.
pub(crate) fn kex_text(kex: &str) -> String {
    format!("# Written by berth for one run: settings.ssh_kex.\nHost *\n  KexAlgorithms {kex}\n")
}

/// Writes the config for one connection into the runtime directory (which
/// the run removes at its end); returns its path.
pub(crate) fn write_wrapper(runtime_dir: &Path, text: &str) -> Result<PathBuf, String> {
    let n = CONFIG_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = runtime_dir.join(format!("ssh-config-{n}"));
    std::fs::write(&path, text)
        .map_err(|e| format!("cannot write ssh config `{}`: {e}", path.display()))?;
    Ok(path)
}

/// What ssh makes of a destination under a config (`ssh -G`), for messages
/// that name the real host, user, port and jump host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// `ProxyJump` as configured (`bastion`, `a,b`); None without one.
    pub jump: Option<String>,
    /// The first `UserKnownHostsFile`.
    pub known_hosts: Option<String>,
}

/// Parses `ssh -G` output (`key value` lines, lowercase keys). Pure.
pub(crate) fn parse_resolved(text: &str) -> Resolved {
    let mut r = Resolved::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(' ') else {
            continue;
        };
        let value = value.trim();
        match key {
            "hostname" => r.hostname = Some(value.to_string()),
            "user" => r.user = Some(value.to_string()),
            "port" => r.port = value.parse().ok(),
            "proxyjump" if value != "none" => r.jump = Some(value.to_string()),
            "userknownhostsfile" => {
                r.known_hosts = value.split_whitespace().next().map(str::to_string)
            }
            _ => {}
        }
    }
    r
}

/// `ssh -G` for `destination` under `config`; None when ssh cannot tell.
pub(crate) async fn resolve(
    config: &Path,
    destination: &str,
    host: Option<&HostConfig>,
) -> Option<Resolved> {
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.arg("-F").arg(config).arg("-G");
    if let Some(host) = host {
        if let Some(user) = &host.user {
            ssh.arg("-l").arg(user);
        }
        if let Some(port) = host.port {
            ssh.arg("-p").arg(port.to_string());
        }
    }
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        ssh.arg("--")
            .arg(destination)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    out.status
        .success()
        .then(|| parse_resolved(&String::from_utf8_lossy(&out.stdout)))
}

/// The first hop of a `ProxyJump` value as an `ssh` destination
/// (`[user@]host[:port]` becomes `ssh://[user@]host[:port]`). Pure.
pub(crate) fn first_hop(jump: &str) -> String {
    let hop = jump.split(',').next().unwrap_or(jump).trim();
    if hop.starts_with("ssh://") {
        hop.to_string()
    } else {
        format!("ssh://{hop}")
    }
}

/// Redoes the first jump hop alone (what `ProxyJump` runs: `ssh -W
/// host:port hop`), bounded by `limit`, and returns its log. A jump hop's
/// own errors never reach the master's log (ssh sends a proxy's stderr to
/// /dev/null when it runs in the background), so this is the only way to
/// tell the user why the bastion refused.
pub(crate) async fn probe_first_hop(
    config: &Path,
    jump: &str,
    target: &str,
    log: &Path,
    limit: Duration,
) -> Option<String> {
    let _ = std::fs::remove_file(log);
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.arg("-F")
        .arg(config)
        .arg("-E")
        .arg(log)
        .arg("-W")
        .arg(target)
        .arg(first_hop(jump))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let status = tokio::time::timeout(limit, ssh.status()).await;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    match status {
        Ok(Ok(status)) if !status.success() => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berth_options_come_before_the_users_config_and_defaults_after() {
        let text = wrapper_text(
            Path::new("/home/me/.ssh/config"),
            Some(Path::new("/etc/berth/known hosts %h")),
            Duration::from_secs(5),
            Duration::from_secs(15),
            None,
        )
        .expect("text");
        insta::assert_snapshot!(text, @r###"
        # Written by berth for one run. berth's options come first: ssh keeps the
        # first value it reads, for the host and for every ProxyJump hop alike.
        Host *
          StrictHostKeyChecking yes
          BatchMode yes
          RemoteCommand none
          RequestTTY no
          PermitLocalCommand no
          UserKnownHostsFile "/etc/berth/known hosts %%h"
          ConnectTimeout 5
          ServerAliveInterval 15
          ServerAliveCountMax 3
        # The user's config: aliases, ProxyJump, IdentityAgent, users, ports.
        Include "/home/me/.ssh/config"
        # berth's defaults, for what neither berth.yaml nor that config sets.
        Host *
          User root
          Port 22
        "###);
    }

    #[test]
    fn without_berth_known_hosts_the_configs_own_applies() {
        let text = wrapper_text(
            Path::new("/c"),
            None,
            Duration::from_millis(10),
            Duration::from_secs(15),
            None,
        )
        .expect("text");
        assert!(!text.contains("UserKnownHostsFile"), "{text}");
        assert!(text.contains("ConnectTimeout 1\n"), "{text}");
    }

    #[test]
    fn refuses_paths_an_ssh_config_cannot_hold() {
        let err = wrapper_text(
            Path::new("/a\"b"),
            None,
            Duration::from_secs(1),
            Duration::from_secs(1),
            None,
        )
        .expect_err("quote");
        assert!(err.contains("double quote"), "{err}");
    }

    /// `settings.ssh_kex` goes in berth's own part, before the user's
    /// config (whose value it overrides, for jump hosts too); without a
    /// user config it is the whole file.
    #[test]
    fn the_key_exchange_is_berths_option() {
        let text = wrapper_text(
            Path::new("/c"),
            None,
            Duration::from_secs(5),
            Duration::from_secs(15),
            Some("curve25519-sha256"),
        )
        .expect("text");
        let kex = text
            .find("  KexAlgorithms curve25519-sha256\n")
            .expect(&text);
        assert!(kex < text.find("Include").expect("include"), "{text}");
        assert_eq!(
            kex_text("curve25519-sha256"),
            "# Written by berth for one run: settings.ssh_kex.\nHost *\n  KexAlgorithms curve25519-sha256\n"
        );
    }

    #[test]
    fn parses_ssh_g_output() {
        let r = parse_resolved(
            "user deploy\nhostname 10.77.0.12\nport 2222\nproxyjump bastion\n\
             userknownhostsfile /k/known_hosts /k/known_hosts2\nproxycommand none\n",
        );
        assert_eq!(
            r,
            Resolved {
                hostname: Some("10.77.0.12".into()),
                user: Some("deploy".into()),
                port: Some(2222),
                jump: Some("bastion".into()),
                known_hosts: Some("/k/known_hosts".into()),
            }
        );
        assert_eq!(parse_resolved("proxyjump none\n").jump, None);
    }

    #[test]
    fn first_hop_is_an_ssh_url() {
        assert_eq!(first_hop("bastion"), "ssh://bastion");
        assert_eq!(first_hop("ops@b1:2222,b2"), "ssh://ops@b1:2222");
        assert_eq!(first_hop("ssh://b"), "ssh://b");
    }
}
