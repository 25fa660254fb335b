//! Connecting to a host: the SSH connection (or nothing, for `transport:
//! local`) and the Docker Engine behind it, checked to answer and to be new
//! enough, put together as the host's [`Engine`]: its [`DockerEngine`] (the
//! API over the forwarded socket) and its shell (the same SSH connection,
//! or the local `sh`).

use std::time::Duration;

use super::docker::{self, DockerEngine, OpenError};
use super::engine::{Engine, Host};
use super::lock::{self, HostLock, LockError};
use super::shell::{LocalShell, Shell};
use super::ssh::{self, failure, ConnectOptions};
use crate::spec::{HostConfig, Transport};

/// The run lock to try while connecting (see [`connect_locking`]).
#[derive(Debug, Clone, Copy)]
pub struct TryLock<'a> {
    /// What is locked: the project's name.
    pub key: &'a str,
    /// Who we are, as a waiting run sees it.
    pub holder: &'a str,
}

/// What trying the run lock while connecting gave, when it was asked for.
pub type Locked = Option<Result<HostLock, LockError>>;

/// Connects to `host` and checks its Docker Engine answers.
///
/// `transport: ssh` goes over one SSH connection (see [`ssh::open_tunnel`]
/// for how ssh is run); `transport: local` talks to `host.docker_socket` on
/// this machine.
///
/// Errors name the host and say what failed: unreachable, host key
/// mismatch or unknown, authentication refused, engine not answering.
pub async fn connect(host: &HostConfig, opts: &ConnectOptions) -> anyhow::Result<Box<dyn Engine>> {
    Ok(connect_locking(host, opts, None).await?.0)
}

/// [`connect`], and the run lock tried at once (without waiting) when
/// `lock` asks for it. The lock shell starts as soon as the SSH connection
/// is up, beside the Docker Engine's first calls (ping, version), so the
/// lock costs no round trip of its own: a no-op apply takes as long as a
/// plan. It is exactly the lock [`Engine::lock`] takes, over the same
/// connection; a lock taken on a host whose engine then does not answer is
/// released before the error is returned.
pub async fn connect_locking(
    host: &HostConfig,
    opts: &ConnectOptions,
    lock: Option<TryLock<'_>>,
) -> anyhow::Result<(Box<dyn Engine>, Locked)> {
    #[cfg(feature = "bench-memory")]
    if let Some((engine, delay)) = super::memory::served(&host.name) {
        tokio::time::sleep(delay).await;
        let who = engine.who().to_string();
        let locked = try_lock(engine.shell(), host, &who, lock).await;
        return Ok((Box::new(engine), locked));
    }
    let host = &ssh::with_defaults(host, opts);
    match host.transport {
        Transport::Local => connect_local(host, opts, lock).await,
        Transport::Ssh => connect_ssh(host, opts, lock).await,
    }
}

/// Tries the run lock over `shell`, without waiting for another holder.
async fn try_lock(
    shell: &dyn Shell,
    host: &HostConfig,
    who: &str,
    lock: Option<TryLock<'_>>,
) -> Locked {
    let lock = lock?;
    Some(
        lock::take(
            shell,
            &host.name,
            who,
            lock.key,
            lock.holder,
            Duration::ZERO,
        )
        .await,
    )
}

/// Lets go of a lock taken for a host that is then given up.
async fn release(locked: Locked) {
    if let Some(Ok(lock)) = locked {
        lock.release().await;
    }
}

fn who(host: &HostConfig) -> String {
    match host.transport {
        Transport::Ssh => format!("host `{}` ({})", host.name, ssh::ssh_target(host)),
        Transport::Local => format!("host `{}` (unix://{})", host.name, host.docker_socket),
    }
}

async fn connect_local(
    host: &HostConfig,
    opts: &ConnectOptions,
    lock: Option<TryLock<'_>>,
) -> anyhow::Result<(Box<dyn Engine>, Locked)> {
    let who = who(host);
    let (opened, locked) = tokio::join!(
        docker::open(
            &host.docker_socket,
            opts.connect_timeout,
            opts.docker_timeout
        ),
        try_lock(&LocalShell, host, &who, lock)
    );
    let docker = match opened {
        Ok(docker) => docker,
        Err(e) => {
            release(locked).await;
            return Err(match e {
                OpenError::NotAnswering(detail) => failure(
                    &who,
                    &format!(
                        "Docker Engine not answering at `{}`: {detail}",
                        host.docker_socket
                    ),
                    Some("check that dockerd runs here and that this user may use its socket (root, or group `docker`)"),
                ),
                OpenError::TooOld(version) => too_old(&who, &version),
            });
        }
    };
    let api = DockerEngine::new(
        host.name.clone(),
        who.clone(),
        docker,
        host.secrets_dir.clone(),
        opts.docker_config.clone(),
    );
    let engine: Box<dyn Engine> = Box::new(Host::new(Box::new(api), Box::new(LocalShell), who));
    Ok((engine, locked))
}

fn too_old(who: &str, version: &str) -> anyhow::Error {
    let (major, minor) = docker::MIN_API_VERSION;
    failure(
        who,
        &format!("the Docker Engine speaks API {version}; berth needs {major}.{minor} (Docker 20.10) or newer"),
        Some("upgrade Docker on the host"),
    )
}

async fn connect_ssh(
    host: &HostConfig,
    opts: &ConnectOptions,
    lock: Option<TryLock<'_>>,
) -> anyhow::Result<(Box<dyn Engine>, Locked)> {
    let who = who(host);
    let started = std::time::Instant::now();
    let tunnel = ssh::open_tunnel(host, opts, &who).await?;
    let ssh_up = started.elapsed();
    let ((opened, engine_up), (locked, lock_up)) = tokio::join!(
        async {
            let opened = docker::open(
                tunnel.docker_socket(),
                opts.connect_timeout,
                opts.docker_timeout,
            )
            .await;
            (opened, started.elapsed())
        },
        async {
            let locked = try_lock(&tunnel, host, &who, lock).await;
            (locked, started.elapsed())
        }
    );
    // Where a run's first round trips go (`BERTH_LOG=berth=debug`).
    tracing::debug!(
        host = %host.name,
        "ssh up after {} ms, engine answered after {} ms{}",
        ssh_up.as_millis(),
        engine_up.as_millis(),
        match &locked {
            Some(_) => format!(", run lock answered after {} ms", lock_up.as_millis()),
            None => String::new(),
        }
    );
    let failed = match opened {
        Ok(docker) => {
            let api = DockerEngine::new(
                host.name.clone(),
                who.clone(),
                docker,
                host.secrets_dir.clone(),
                opts.docker_config.clone(),
            );
            let engine: Box<dyn Engine> = Box::new(Host::new(Box::new(api), Box::new(tunnel), who));
            return Ok((engine, locked));
        }
        Err(OpenError::TooOld(version)) => too_old(&who, &version),
        Err(OpenError::NotAnswering(detail)) => {
            // The forward itself never fails for a bad remote path: only
            // its use does, and the ssh master logs that the host refused.
            let detail = if tunnel.channel_refused() {
                format!(
                    "sshd could not open it (it does not exist, or {} may not use it)",
                    ssh::user_named(host)
                )
            } else {
                detail
            };
            failure(
                &who,
                &format!(
                    "Docker Engine not answering at `{}` on the host: {detail}",
                    host.docker_socket
                ),
                Some(&format!(
                    "check that dockerd runs on the host and that {} may use its socket (root, or group `docker`); the path is `docker_socket` in berth.yaml",
                    ssh::user_named(host)
                )),
            )
        }
    };
    release(locked).await;
    tunnel.close().await;
    Err(failed)
}
