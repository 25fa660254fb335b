//! The SSH connection to a host (openssh, native mux, strict known_hosts)
//! with the remote Docker socket forwarded to a local unix socket: a
//! [`Tunnel`], which is also the host's [`Shell`].
//!
//! Files: everything lives in `ConnectOptions::runtime_dir` (made and
//! removed by the [`super::fleet::Fleet`]; unix socket paths are limited to
//! about 100 bytes, so it is short): openssh's
//! `.ssh-connection*/master` control socket and one `<hash>-<n>.sock`
//! forwarded socket per connection. A stale socket file of the same path is
//! removed before forwarding (ssh would fail with "Address already in use"),
//! and the socket is removed again on close or drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use openssh::{ControlPersist, ForwardType, KnownHosts, Session, SessionBuilder, Socket};
use sha2::{Digest as _, Sha256};

use async_trait::async_trait;

use super::shell::{quote, Shell};
use super::ssh_config::{self, Resolved, DEFAULT_PORT, DEFAULT_USER};
use crate::spec::HostConfig;

/// Runner-side options for connecting to hosts.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// known_hosts file; None = `~/.ssh/known_hosts`. Checking is always strict.
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// How often an idle connection is probed (`ServerAliveInterval`);
    /// after [`ssh_config::ALIVE_COUNT`] unanswered probes ssh ends it, and every call
    /// on it fails: the bound on noticing a link cut silently.
    pub keepalive: Duration,
    /// Longest wait for one Docker Engine API call.
    pub docker_timeout: Duration,
    /// Short directory for SSH control sockets and forwarded Docker sockets
    /// (made and removed by the run's [`super::fleet::Fleet`]).
    pub runtime_dir: PathBuf,
    /// Overrides every host's identity file (e.g. `--identity`).
    pub identity_file: Option<PathBuf>,
    /// The user's ssh config: `--ssh-config` / `BERTH_SSH_CONFIG`, else
    /// `settings.ssh_config`; None = none at all (`-F /dev/null`).
    pub ssh_config: Option<PathBuf>,
    /// ssh's `KexAlgorithms` for the connection and its jump hosts
    /// (`settings.ssh_kex`); None: ssh's own choice.
    pub ssh_kex: Option<String>,
    /// The runner's Docker `config.json` (`--docker-config`), for registry
    /// credentials on pulls; None: anonymous pulls.
    pub docker_config: Option<PathBuf>,
}

/// How long an idle SSH master outlives its last use. The master is a
/// separate `ssh` process: if berth is killed, this bounds how long it stays
/// behind. It is generous because a rolling update may leave one host idle
/// for a while (delays, waiting on health) and an expired master makes the
/// next Docker call fail.
const MASTER_IDLE_SECS: usize = 600;

/// Distinguishes forwarded sockets of several connections to the same host
/// within one run.
static SOCKET_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The host with berth's default user and port filled in when no ssh
/// config is in use; with one, what berth.yaml leaves unset stays unset so
/// the config decides (berth's defaults come after it, in the config).
pub(super) fn with_defaults(host: &HostConfig, opts: &ConnectOptions) -> HostConfig {
    let mut host = host.clone();
    if opts.ssh_config.clone().is_none() {
        host.user.get_or_insert_with(|| DEFAULT_USER.to_string());
        host.port.get_or_insert(DEFAULT_PORT);
    }
    host
}

/// `root@10.77.0.11:22`, `root@[fd00::1]:22`; with an ssh config, only what
/// berth.yaml sets (`my-alias`, `deploy@my-alias`).
pub(super) fn ssh_target(host: &HostConfig) -> String {
    let user = host
        .user
        .as_ref()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    match host.port {
        Some(port) if host.address.contains(':') => {
            format!("{user}[{}]:{port}", host.address)
        }
        Some(port) => format!("{user}{}:{port}", host.address),
        None => format!("{user}{}", host.address),
    }
}

/// An error naming the host, with what to do next when there is something.
pub(super) fn failure(who: &str, message: &str, help: Option<&str>) -> anyhow::Error {
    crate::error::hinted(format!("{who}: {message}"), help.map(str::to_string))
}

/// Opens the SSH connection to `host` and forwards its Docker socket
/// (`host.docker_socket`) to a fresh local socket; `who` names the host in
/// errors.
///
/// Runs the system `ssh` client (it must be installed) with: strict host
/// key checking against `opts.known_hosts` (or `~/.ssh/known_hosts`): an
/// unknown or changed key is an error, never accepted; the key
/// `opts.identity_file`, else the host's `identity_file`, else the agent and
/// default keys; no password prompts (`BatchMode`). The user's
/// `~/.ssh/config` is ignored, so runs behave the same on every runner,
/// unless `opts.ssh_config` (`--ssh-config`, `BERTH_SSH_CONFIG`) names an
/// ssh config file to use instead (for example for `ProxyJump` or per-host options);
/// berth's own settings above still take precedence.
///
/// Errors say what failed: unreachable, host key mismatch or unknown,
/// authentication refused.
pub(super) async fn open_tunnel(
    host: &HostConfig,
    opts: &ConnectOptions,
    who: &str,
) -> anyhow::Result<Tunnel> {
    let keyfile = opts.identity_file.as_ref().or(host.identity_file.as_ref());
    if let Some(key) = keyfile {
        if !key.exists() {
            return Err(failure(
                who,
                &format!("identity file `{}` does not exist", key.display()),
                None,
            ));
        }
    }
    if let Some(known_hosts) = &opts.known_hosts {
        if !known_hosts.exists() {
            return Err(failure(
                who,
                &format!("known_hosts file `{}` does not exist", known_hosts.display()),
                Some("berth checks host keys strictly: create it with the hosts' keys (after checking their fingerprints)"),
            ));
        }
    }
    let config = match opts.ssh_config.clone() {
        Some(user_config) => {
            Some(config_for(&user_config, opts).map_err(|(e, help)| failure(who, &e, help))?)
        }
        None => None,
    };

    let mut builder = SessionBuilder::default();
    if let Some(user) = &host.user {
        builder.user(user.clone());
    }
    if let Some(port) = host.port {
        builder.port(port);
    }
    builder
        .known_hosts_check(KnownHosts::Strict)
        .connect_timeout(opts.connect_timeout.max(Duration::from_secs(1)))
        .server_alive_interval(opts.keepalive.max(Duration::from_secs(1)))
        .control_directory(&opts.runtime_dir)
        .control_persist(match std::num::NonZeroUsize::new(MASTER_IDLE_SECS) {
            Some(idle) => ControlPersist::IdleFor(idle),
            None => ControlPersist::ClosedAfterInitialConnection,
        });
    if let Some(key) = keyfile {
        builder.keyfile(key);
    }
    if let Some(known_hosts) = &opts.known_hosts {
        builder.user_known_hosts_file(known_hosts);
    }
    let kex_only = match (&config, &opts.ssh_kex) {
        (None, Some(kex)) => Some(
            ssh_config::write_wrapper(&opts.runtime_dir, &ssh_config::kex_text(kex))
                .map_err(|e| failure(who, &e, None))?,
        ),
        _ => None,
    };
    match config.as_ref().or(kex_only.as_ref()) {
        Some(config) => builder.config_file(config),
        None => builder.config_file("/dev/null"),
    };

    // ssh's ConnectTimeout covers the TCP connect and the key exchange; this
    // bound also covers authentication (an agent that never answers).
    let limit = opts.connect_timeout * 2 + Duration::from_secs(10);
    let session = match tokio::time::timeout(limit, builder.connect_mux(&host.address)).await {
        Err(_) => {
            return Err(failure(
                who,
                &format!(
                    "cannot reach `{}`: no SSH session within {} s",
                    host.address,
                    limit.as_secs()
                ),
                Some("check the address, the network path and firewalls"),
            ))
        }
        Ok(Err(err)) => {
            return Err(ssh_failure(who, host, opts, keyfile, config.as_deref(), &err).await)
        }
        Ok(Ok(session)) => session,
    };

    let local = socket_path(&opts.runtime_dir, &host.name);
    let local_str = local.to_str().map(str::to_string).ok_or_else(|| {
        failure(
            who,
            &format!(
                "runtime directory `{}` is not UTF-8",
                opts.runtime_dir.display()
            ),
            None,
        )
    })?;
    remove_stale(&local).map_err(|e| failure(who, &e, None))?;
    let remote = PathBuf::from(&host.docker_socket);
    if let Err(err) = session
        .request_port_forward(
            ForwardType::Local,
            Socket::from(local.as_path()),
            Socket::from(remote.as_path()),
        )
        .await
    {
        let _ = session.close().await;
        let _ = std::fs::remove_file(&local);
        return Err(anyhow::Error::new(err).context(format!(
            "{who}: cannot forward the Docker socket `{}` to `{}`",
            host.docker_socket,
            local.display()
        )));
    }
    Ok(Tunnel {
        control: session.control_socket().to_path_buf(),
        socket: local_str,
        remote,
        open: tokio::sync::Mutex::new(Some((session, SocketFile(local)))),
    })
}

/// ``user `root` `` or, when the ssh config chooses it, `the ssh user`.
pub(super) fn user_named(host: &HostConfig) -> String {
    match &host.user {
        Some(user) => format!("user `{user}`"),
        None => "the ssh user".to_string(),
    }
}

/// Checks the user's ssh config exists (ssh's `Include` would silently skip
/// a missing one) and writes the config berth passes with `-F`.
fn config_for(
    user_config: &Path,
    opts: &ConnectOptions,
) -> Result<PathBuf, (String, Option<&'static str>)> {
    if !user_config.is_file() {
        return Err((
            format!("ssh config `{}` does not exist", user_config.display()),
            Some("fix `settings.ssh_config` in berth.yaml (or `BERTH_SSH_CONFIG`), or remove it to use no ssh config"),
        ));
    }
    // ssh reads a relative `Include` under ~/.ssh: hand it absolute paths.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let known_hosts = opts.known_hosts.as_deref().map(absolute);
    let text = ssh_config::wrapper_text(
        &absolute(user_config),
        known_hosts.as_deref(),
        opts.connect_timeout,
        opts.keepalive,
        opts.ssh_kex.as_deref(),
    )
    .map_err(|e| (e, None))?;
    ssh_config::write_wrapper(&opts.runtime_dir, &text).map_err(|e| (e, None))
}

/// `<runtime_dir>/<8 hex of the host name's hash>-<n>.sock`: short whatever
/// the host's name, unique per connection within the run.
fn socket_path(runtime_dir: &Path, host_name: &str) -> PathBuf {
    let hash = Sha256::digest(host_name.as_bytes());
    let n = SOCKET_COUNTER.fetch_add(1, Ordering::Relaxed);
    runtime_dir.join(format!("{}-{n}.sock", hex::encode(&hash[..4])))
}

/// ssh cannot bind a path that exists, and never removes its forwarded
/// sockets itself (not on `cancel`, not on exit).
fn remove_stale(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "cannot remove stale socket `{}`: {e}",
            path.display()
        )),
    }
}

/// Turns a failed `ssh` connect into an error that says what to do. openssh
/// hands over ssh's own stderr, which is the only place the cause is told.
/// With an ssh config, `ssh -G` says which host, user, port and known_hosts
/// were really used, and a failed jump host is tried alone to learn why.
async fn ssh_failure(
    who: &str,
    host: &HostConfig,
    opts: &ConnectOptions,
    keyfile: Option<&PathBuf>,
    config: Option<&Path>,
    err: &openssh::Error,
) -> anyhow::Error {
    let io = match err {
        openssh::Error::Connect(io) => io,
        openssh::Error::Master(io) => {
            return failure(
                who,
                &format!(
                    "cannot create the SSH control directory in `{}`: {io}",
                    opts.runtime_dir.display()
                ),
                None,
            )
        }
        other => return anyhow!("{who}: ssh failed: {other}"),
    };
    if io.kind() == std::io::ErrorKind::NotFound && io.raw_os_error().is_some() {
        return failure(
            who,
            &format!("cannot run the `ssh` client: {io}"),
            Some("install OpenSSH's client (Debian: `apt-get install openssh-client`)"),
        );
    }
    let resolved = match config {
        Some(config) => ssh_config::resolve(config, &host.address, Some(host))
            .await
            .unwrap_or_default(),
        None => Resolved::default(),
    };
    let known_hosts = |resolved: &Resolved| {
        opts.known_hosts
            .as_ref()
            .map(|p| p.display().to_string())
            .or_else(|| resolved.known_hosts.clone())
            .unwrap_or_else(|| "~/.ssh/known_hosts".to_string())
    };
    let stderr = io.to_string();
    if let (Some(config), Some(jump)) = (config, &resolved.jump) {
        // The master only sees the proxy's connection close; the jump
        // host's own ssh knows why.
        if stderr.contains("UNKNOWN port 65535") {
            let target = format!(
                "{}:{}",
                resolved.hostname.as_deref().unwrap_or(&host.address),
                resolved.port.unwrap_or(DEFAULT_PORT)
            );
            let log = opts.runtime_dir.join(format!(
                "jump-{}.log",
                hex::encode(&Sha256::digest(host.name.as_bytes())[..4])
            ));
            let limit = opts.connect_timeout + Duration::from_secs(5);
            let hop = ssh_config::first_hop(jump);
            let by_hand = format!(
                "try `ssh -F {} {}` by hand",
                opts.ssh_config.clone().unwrap_or_default().display(),
                host.address
            );
            if let Some(log) = ssh_config::probe_first_hop(config, jump, &target, &log, limit).await
            {
                if log.contains("open failed") || log.contains("stdio forwarding failed") {
                    let why = log
                        .lines()
                        .find(|l| l.contains("open failed"))
                        .and_then(|l| l.split("open failed:").nth(1))
                        .map_or("it refused to forward", str::trim);
                    return failure(
                        who,
                        &format!("jump host `{jump}` cannot reach `{target}`: {why}"),
                        Some(&format!("check the path from the jump host to the host and sshd there; {by_hand}")),
                    );
                }
                let hop_resolved = ssh_config::resolve(config, &hop, None)
                    .await
                    .unwrap_or_default();
                let address = hop_resolved
                    .hostname
                    .clone()
                    .unwrap_or_else(|| hop.trim_start_matches("ssh://").to_string());
                let user = hop_resolved.user.clone().unwrap_or_else(|| "?".into());
                let (message, help) = classify_ssh_error(
                    &log,
                    &SshContext {
                        address: &address,
                        port: hop_resolved.port.unwrap_or(DEFAULT_PORT),
                        user: &user,
                        known_hosts: &known_hosts(&hop_resolved),
                        key: "the keys your ssh config gives it",
                        timeout: opts.connect_timeout,
                    },
                );
                return failure(
                    who,
                    &format!("through jump host `{jump}`: {message}"),
                    help.as_deref(),
                );
            }
            return failure(
                who,
                &format!(
                    "the connection through jump host `{jump}` closed during the SSH handshake"
                ),
                Some(&format!(
                    "check the path from the jump host to `{target}` and sshd there; {by_hand}"
                )),
            );
        }
    }
    let key = match keyfile {
        Some(k) => format!("key `{}`", k.display()),
        None => "the ssh agent and default keys".to_string(),
    };
    let user = host
        .user
        .clone()
        .or_else(|| resolved.user.clone())
        .unwrap_or_else(|| DEFAULT_USER.to_string());
    let (message, help) = classify_ssh_error(
        &stderr,
        &SshContext {
            address: resolved.hostname.as_deref().unwrap_or(&host.address),
            port: host.port.or(resolved.port).unwrap_or(DEFAULT_PORT),
            user: &user,
            known_hosts: &known_hosts(&resolved),
            key: &key,
            timeout: opts.connect_timeout,
        },
    );
    failure(who, &message, help.as_deref())
}

/// What [`classify_ssh_error`] needs to word its message.
struct SshContext<'a> {
    address: &'a str,
    port: u16,
    user: &'a str,
    known_hosts: &'a str,
    /// ``key `/path` `` or `the ssh agent and default keys`.
    key: &'a str,
    timeout: Duration,
}

/// Message and help for ssh's stderr. Pure, so the wording is tested
/// against the messages OpenSSH really prints.
fn classify_ssh_error(stderr: &str, cx: &SshContext<'_>) -> (String, Option<String>) {
    let lower = stderr.to_lowercase();
    let endpoint = if cx.address.contains(':') {
        format!("[{}]:{}", cx.address, cx.port)
    } else {
        format!("{}:{}", cx.address, cx.port)
    };
    // known_hosts names a non-default port as `[addr]:port`.
    let known_name = if cx.port == 22 {
        cx.address.to_string()
    } else {
        format!("[{}]:{}", cx.address, cx.port)
    };
    let never = "berth never skips host key checks";
    if lower.contains("remote host identification has changed")
        || (lower.contains("host key verification failed")
            && !lower.contains("host key is known for"))
    {
        return (
            format!(
                "host key of `{}` does not match known_hosts `{}`",
                cx.address, cx.known_hosts
            ),
            Some(format!(
                "if the host was reinstalled, update known_hosts (`ssh-keygen -f {} -R '{known_name}'`, then add the new key after checking its fingerprint); {never}",
                cx.known_hosts
            )),
        );
    }
    if lower.contains("host key is known for") {
        return (
            format!(
                "host key of `{}` is not in known_hosts `{}`",
                cx.address, cx.known_hosts
            ),
            Some(format!(
                "add it after checking its fingerprint: `ssh-keyscan -p {} {} >> {}`; {never}",
                cx.port, cx.address, cx.known_hosts
            )),
        );
    }
    if lower.contains("permission denied (") {
        return (
            format!("authentication refused for user `{}` with {}", cx.user, cx.key),
            Some(format!(
                "add the public key to `~{}/.ssh/authorized_keys` on the host, or choose another key with `identity_file` in berth.yaml or `--identity`",
                cx.user
            )),
        );
    }
    if lower.contains("could not resolve hostname") {
        return (
            format!("cannot resolve `{}`", cx.address),
            Some("check the host's `address` in berth.yaml and this runner's DNS".to_string()),
        );
    }
    let unreachable = |why: String, help: &str| {
        (
            format!("cannot reach `{endpoint}`: {why}"),
            Some(help.to_string()),
        )
    };
    if lower.contains("connection refused") {
        return unreachable(
            "connection refused".into(),
            "is sshd running on the host and listening on that port?",
        );
    }
    if lower.contains("timed out") {
        return unreachable(
            format!("no answer within {} s", cx.timeout.as_secs().max(1)),
            "check the address, the network path and firewalls",
        );
    }
    if lower.contains("no route to host") || lower.contains("network is unreachable") {
        return unreachable(
            "no route to host".into(),
            "check the address, the network path and firewalls",
        );
    }
    if lower.contains("connection closed by")
        || lower.contains("connection reset")
        || lower.contains("kex_exchange_identification")
    {
        return unreachable(
            "the host closed the connection during the SSH handshake".into(),
            "check sshd on the host (its logs, `MaxStartups`, `AllowUsers`)",
        );
    }
    let last = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message");
    (format!("ssh failed: {last}"), None)
}

/// A forwarded socket file, removed when dropped: a run that ends without
/// `close` (an error, a panic) still leaves no socket behind.
#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The SSH connection to a host, with its Docker socket forwarded. Dropping
/// it without `close` still ends the ssh master (openssh's `Session` drop)
/// and removes the socket.
#[derive(Debug)]
pub struct Tunnel {
    /// The ssh master's control socket: new channels go through it.
    control: PathBuf,
    /// The local end of the forwarded Docker socket.
    socket: String,
    remote: PathBuf,
    /// None once closed.
    open: tokio::sync::Mutex<Option<(Session, SocketFile)>>,
}

impl Tunnel {
    /// The local unix socket that reaches the host's Docker Engine.
    pub fn docker_socket(&self) -> &str {
        &self.socket
    }

    /// Whether the host refused a forwarded channel, from the ssh master's
    /// log: sshd then says only "open failed" (the socket does not exist, or
    /// the user may not use it), so that is all there is to tell.
    pub fn channel_refused(&self) -> bool {
        let Some(dir) = self.control.parent() else {
            return false;
        };
        std::fs::read_to_string(dir.join("log"))
            .is_ok_and(|log| log.lines().any(|l| l.contains("open failed")))
    }
}

#[async_trait]
impl Shell for Tunnel {
    /// Runs `sh -c <script>` on the host over this connection (a new
    /// channel on the existing master: no new handshake).
    fn command(&self, script: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.arg("-S").arg(&self.control).args([
            "-o",
            "ControlMaster=no",
            "-o",
            "BatchMode=yes",
            "-T",
        ]);
        // The master is connected already: a client of it needs no config,
        // and the user's could only interfere (`RemoteCommand`, ...).
        c.args(["-F", "/dev/null"]);
        // Its own process group: a Ctrl-C at berth's terminal is berth's
        // to handle (it finishes the batch in flight), and must not cut the
        // commands that batch still runs on the host, or the run lock.
        c.process_group(0);
        c.arg("berth-host")
            .arg("--")
            .arg(format!("sh -c {}", quote(script)));
        c
    }

    /// As [`Shell::run`], but `ssh` itself failing (exit 255: the master
    /// or the link to the host is gone) is an error marked
    /// [`lost`](super::lost): no berth script exits 255 on its own.
    async fn run(
        &self,
        who: &str,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> anyhow::Result<(i64, String)> {
        let (code, output) =
            super::shell::run_command(self.command(script), who, input, timeout).await?;
        if code == 255 {
            let said = output.trim().lines().last().unwrap_or("").to_string();
            return Err(super::lost::lost_msg(format!(
                "{who}: the SSH connection is gone ({})",
                super::shell::truncate(&said, 200)
            )));
        }
        Ok((code, output))
    }

    /// Cancels the forward, ends the ssh master, removes the socket file.
    /// Best effort: a host that already went away is closed too.
    async fn close(&self) {
        let Some((session, local)) = self.open.lock().await.take() else {
            return;
        };
        let _ = session
            .close_port_forward(
                ForwardType::Local,
                Socket::from(local.0.as_path()),
                Socket::from(self.remote.as_path()),
            )
            .await;
        let _ = session.close().await;
        drop(local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Transport;

    fn cx() -> SshContext<'static> {
        SshContext {
            address: "10.77.0.11",
            port: 22,
            user: "root",
            known_hosts: "/var/tmp/kh",
            key: "key `/k/id`",
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn classifies_changed_host_key() {
        let stderr = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
            Host key for 10.77.0.11 has changed and you have requested strict checking.\n\
            Host key verification failed.";
        let (message, help) = classify_ssh_error(stderr, &cx());
        assert_eq!(
            message,
            "host key of `10.77.0.11` does not match known_hosts `/var/tmp/kh`"
        );
        let help = help.expect("help");
        assert!(
            help.contains("ssh-keygen -f /var/tmp/kh -R '10.77.0.11'"),
            "{help}"
        );
        assert!(help.contains("berth never skips host key checks"), "{help}");
    }

    #[test]
    fn classifies_unknown_host_key() {
        let stderr = "No ED25519 host key is known for 10.77.0.11 and you have requested strict checking.\r\nHost key verification failed.";
        let (message, help) = classify_ssh_error(stderr, &cx());
        assert_eq!(
            message,
            "host key of `10.77.0.11` is not in known_hosts `/var/tmp/kh`"
        );
        assert!(help
            .expect("help")
            .contains("ssh-keyscan -p 22 10.77.0.11 >> /var/tmp/kh"));
    }

    #[test]
    fn names_non_default_ports_as_known_hosts_does() {
        let mut c = cx();
        c.port = 2222;
        let (_, help) = classify_ssh_error("Host key verification failed.", &c);
        assert!(help.expect("help").contains("-R '[10.77.0.11]:2222'"));
    }

    #[test]
    fn classifies_auth_and_network_failures() {
        let (m, _) = classify_ssh_error("root@10.77.0.11: Permission denied (publickey).", &cx());
        assert_eq!(m, "authentication refused for user `root` with key `/k/id`");
        let (m, _) = classify_ssh_error(
            "connect to host 10.77.0.11 port 22: Connection refused",
            &cx(),
        );
        assert_eq!(m, "cannot reach `10.77.0.11:22`: connection refused");
        let (m, _) = classify_ssh_error(
            "connect to host 10.77.0.11 port 22: Connection timed out",
            &cx(),
        );
        assert_eq!(m, "cannot reach `10.77.0.11:22`: no answer within 5 s");
        let (m, _) = classify_ssh_error(
            "connect to host 10.77.0.11 port 22: No route to host",
            &cx(),
        );
        assert_eq!(m, "cannot reach `10.77.0.11:22`: no route to host");
        let (m, _) = classify_ssh_error(
            "Could not resolve hostname nowhere: Name or service not known",
            &cx(),
        );
        assert_eq!(m, "cannot resolve `10.77.0.11`");
        let (m, h) = classify_ssh_error("something new\nand odd\n", &cx());
        assert_eq!(m, "ssh failed: and odd");
        assert!(h.is_none());
    }

    #[test]
    fn defaults_fill_in_only_without_an_ssh_config() {
        let host = HostConfig {
            name: "db".into(),
            address: "db-alias".into(),
            port: None,
            user: None,
            identity_file: None,
            labels: Default::default(),
            docker_socket: "/var/run/docker.sock".into(),
            secrets_dir: "/run/berth/secrets".into(),
            configs_dir: crate::spec::configs::HOST_DIR.into(),
            transport: Transport::Ssh,
            location: Default::default(),
        };
        let mut opts = ConnectOptions {
            known_hosts: None,
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(15),
            docker_timeout: Duration::from_secs(120),
            runtime_dir: PathBuf::from("/tmp/x"),
            identity_file: None,
            ssh_config: None,
            ssh_kex: None,
            docker_config: None,
        };
        assert_eq!(ssh_target(&with_defaults(&host, &opts)), "root@db-alias:22");
        opts.ssh_config = Some(PathBuf::from("/home/me/.ssh/config"));
        assert_eq!(ssh_target(&with_defaults(&host, &opts)), "db-alias");
        let deploy = HostConfig {
            user: Some("deploy".into()),
            ..host
        };
        assert_eq!(
            ssh_target(&with_defaults(&deploy, &opts)),
            "deploy@db-alias"
        );
    }

    #[test]
    fn socket_paths_are_short_and_unique() {
        let dir = Path::new("/tmp/berth-123");
        let a = socket_path(
            dir,
            "a-very-long-host-name-that-would-not-fit-in-a-socket-path.example.com",
        );
        let b = socket_path(
            dir,
            "a-very-long-host-name-that-would-not-fit-in-a-socket-path.example.com",
        );
        assert_ne!(a, b);
        assert!(a.as_os_str().len() < 40, "{}", a.display());
        assert!(a.starts_with(dir));
    }

    #[test]
    fn removing_a_missing_stale_socket_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.sock");
        assert!(remove_stale(&path).is_ok());
        std::fs::write(&path, b"").expect("write");
        assert!(remove_stale(&path).is_ok());
        assert!(!path.exists());
    }
}
