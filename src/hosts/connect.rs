//! Connecting to a host: the SSH connection (or nothing, for `transport:
//! local`) and the Docker Engine behind it, checked to answer and to be new
//! enough, put together as the host's [`Engine`]: its [`DockerEngine`] (the
//! API over the forwarded socket) and its shell (the same SSH connection,
//! or the local `sh`).

use super::docker::{self, DockerEngine, OpenError};
use super::engine::{Engine, Host};
use super::shell::{LocalShell, Shell};
use super::ssh::{self, failure, ConnectOptions};
use crate::spec::{HostConfig, Transport};

/// Connects to `host` and checks its Docker Engine answers.
///
/// `transport: ssh` goes over one SSH connection (see [`ssh::open_tunnel`]
/// for how ssh is run); `transport: local` talks to `host.docker_socket` on
/// this machine.
///
/// Errors name the host and say what failed: unreachable, host key
/// mismatch or unknown, authentication refused, engine not answering.
pub async fn connect(host: &HostConfig, opts: &ConnectOptions) -> anyhow::Result<Box<dyn Engine>> {
    let host = &ssh::with_defaults(host, opts);
    match host.transport {
        Transport::Local => connect_local(host, opts).await,
        Transport::Ssh => connect_ssh(host, opts).await,
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
) -> anyhow::Result<Box<dyn Engine>> {
    let who = who(host);
    let docker = docker::open(&host.docker_socket, opts.connect_timeout, opts.docker_timeout)
        .await
        .map_err(|e| match e {
            OpenError::NotAnswering(detail) => failure(
                &who,
                &format!(
                    "Docker Engine not answering at `{}`: {detail}",
                    host.docker_socket
                ),
                Some("check that dockerd runs here and that this user may use its socket (root, or group `docker`)"),
            ),
            OpenError::TooOld(version) => too_old(&who, &version),
        })?;
    let api = DockerEngine::new(
        host.name.clone(),
        who.clone(),
        docker,
        host.secrets_dir.clone(),
        opts.docker_config.clone(),
    );
    Ok(Box::new(Host::new(
        Box::new(api),
        Box::new(LocalShell),
        who,
    )))
}

fn too_old(who: &str, version: &str) -> anyhow::Error {
    let (major, minor) = docker::MIN_API_VERSION;
    failure(
        who,
        &format!("the Docker Engine speaks API {version}; berth needs {major}.{minor} (Docker 20.10) or newer"),
        Some("upgrade Docker on the host"),
    )
}

async fn connect_ssh(host: &HostConfig, opts: &ConnectOptions) -> anyhow::Result<Box<dyn Engine>> {
    let who = who(host);
    let tunnel = ssh::open_tunnel(host, opts, &who).await?;
    match docker::open(
        tunnel.docker_socket(),
        opts.connect_timeout,
        opts.docker_timeout,
    )
    .await
    {
        Ok(docker) => {
            let api = DockerEngine::new(
                host.name.clone(),
                who.clone(),
                docker,
                host.secrets_dir.clone(),
                opts.docker_config.clone(),
            );
            Ok(Box::new(Host::new(Box::new(api), Box::new(tunnel), who)))
        }
        Err(OpenError::TooOld(version)) => {
            tunnel.close().await;
            Err(too_old(&who, &version))
        }
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
            tunnel.close().await;
            Err(failure(
                &who,
                &format!(
                    "Docker Engine not answering at `{}` on the host: {detail}",
                    host.docker_socket
                ),
                Some(&format!(
                    "check that dockerd runs on the host and that {} may use its socket (root, or group `docker`); the path is `docker_socket` in berth.yaml",
                    ssh::user_named(host)
                )),
            ))
        }
    }
}
