//! The `haproxy` target: an HAProxy driven through its Runtime API (the
//! admin socket, `stats socket ... level admin`), reached by running `socat`
//! on the HAProxy host over that host's SSH connection — no agent, no port
//! opened. Each replica is one dynamic server (`add server`) named
//! `<project>.<stack>.<service>.<replica>.<host>` in the service's backend
//! (a global service's replicas share a number, one per host): the project
//! in the name marks berth's own, so servers it did not add (or another
//! project's) are never touched.
//!
//! Runtime servers live in HAProxy's memory: a reload forgets them, and
//! the next promote of the replica adds it again.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use super::replica::{Publishing, Reach, Replica};
use crate::hosts::shell::quote;
use crate::hosts::Engine;
use crate::spec::discovery::{DiscoveryKind, DiscoveryTarget};

/// Longest wait for one Runtime API command.
const API_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a drained server's sessions are counted.
const DRAIN_POLL: Duration = Duration::from_millis(200);
/// How long `del server` may be refused for connections still closing
/// after the drain.
const DELETE_GRACE: Duration = Duration::from_secs(5);

/// The server name of a replica: berth's mark of ownership.
pub fn server_name(r: &Replica) -> String {
    format!(
        "{}.{}.{}.{}.{}",
        r.project, r.stack, r.service, r.replica, r.host
    )
}

/// The HAProxy host's connection and socket, and the service's backend.
struct Api<'a> {
    engine: &'a dyn Engine,
    socket: &'a str,
    backend: &'a str,
}

fn api<'a>(
    target: &'a DiscoveryTarget,
    p: &'a Publishing,
    reach: &'a dyn Reach,
) -> anyhow::Result<Api<'a>> {
    let DiscoveryKind::Haproxy { host, socket } = &target.kind else {
        bail!("discovery target `{}` is not an HAProxy", target.name);
    };
    let backend = p.backend.as_deref().ok_or_else(|| {
        anyhow!(
            "no `x-berth.publish.backend` for HAProxy target `{}`",
            target.name
        )
    })?;
    let engine = reach.engine(host).ok_or_else(|| {
        anyhow!(
            "no connection to host `{host}`, where HAProxy target `{}` runs",
            target.name
        )
    })?;
    Ok(Api {
        engine,
        socket,
        backend,
    })
}

impl Api<'_> {
    /// Sends one command to the admin socket; returns HAProxy's answer.
    async fn send(&self, command: &str) -> anyhow::Result<String> {
        let script = format!(
            "printf '%s\\n' {} | socat -t 10 - UNIX-CONNECT:{}",
            quote(command),
            quote(self.socket)
        );
        let (code, output) = self.engine.host_exec(&script, API_TIMEOUT).await?;
        match code {
            0 => Ok(output.trim().to_string()),
            127 => Err(anyhow!(
                "{}: `socat` is not installed (berth talks to HAProxy's admin socket with it)\nhelp: install it on that host, e.g. `apt-get install socat`",
                self.engine.who()
            )),
            _ => Err(anyhow!(
                "{}: cannot reach HAProxy's admin socket `{}` (exit {code}): {}",
                self.engine.who(),
                self.socket,
                output.trim()
            )),
        }
    }

    /// Sends a command whose only good answer is none (or one of `ok`).
    async fn expect(&self, command: &str, ok: &[&str]) -> anyhow::Result<()> {
        let answer = self.send(command).await?;
        if answer.is_empty() || ok.iter().any(|o| answer.starts_with(o)) {
            Ok(())
        } else {
            Err(anyhow!("HAProxy refused `{command}`: {answer}"))
        }
    }

    /// The backend's servers: name -> (address, port).
    async fn servers(&self) -> anyhow::Result<Vec<(String, String, u16)>> {
        let answer = self
            .send(&format!("show servers state {}", self.backend))
            .await?;
        parse_servers_state(&answer).ok_or_else(|| {
            anyhow!(
                "HAProxy has no backend `{}` (or answered: {answer})",
                self.backend
            )
        })
    }

    /// Current and queued sessions of one server; None once it is gone.
    async fn sessions(&self, server: &str) -> anyhow::Result<Option<u64>> {
        let answer = self
            .send(&format!("show stat {} 4 -1", self.backend))
            .await?;
        Ok(parse_sessions(&answer, server))
    }
}

/// Adds the replica's server (or points the existing one at it) and puts
/// it in service. The end state is checked, not assumed.
pub async fn promote(
    target: &DiscoveryTarget,
    p: &Publishing,
    r: &Replica,
    reach: &dyn Reach,
) -> anyhow::Result<()> {
    let api = api(target, p, reach)?;
    let server = format!("{}/{}", api.backend, server_name(r));
    let added = api
        .send(&format!("add server {server} {}:{}", r.address, r.port))
        .await?;
    if !added.starts_with("New server registered") {
        if !added.starts_with("Already exists") {
            bail!("HAProxy refused to add server `{server}`: {added}");
        }
        // Left by an earlier run: make sure it points at the replica.
        api.send(&format!(
            "set server {server} addr {} port {}",
            r.address, r.port
        ))
        .await?;
    }
    api.expect(&format!("set server {server} state ready"), &[])
        .await?;
    let name = server_name(r);
    match api
        .servers()
        .await?
        .into_iter()
        .find(|(n, _, _)| *n == name)
    {
        Some((_, address, port)) if address == r.address && port == r.port => Ok(()),
        Some((_, address, port)) => bail!(
            "HAProxy's server `{server}` points at {address}:{port}, not {}:{}",
            r.address,
            r.port
        ),
        None => bail!("HAProxy does not list server `{server}` after adding it"),
    }
}

/// Drains the replica's server (no new sessions), waits until its
/// sessions end (at most the target's `drain_timeout`, then they are cut),
/// and deletes it. A server that is not there is already retired.
pub async fn retire(
    target: &DiscoveryTarget,
    p: &Publishing,
    r: &Replica,
    reach: &dyn Reach,
) -> anyhow::Result<()> {
    let api = api(target, p, reach)?;
    let name = server_name(r);
    let server = format!("{}/{name}", api.backend);
    let drained = api
        .send(&format!("set server {server} state drain"))
        .await?;
    if drained.starts_with("No such server") {
        return Ok(());
    }
    if !drained.is_empty() {
        bail!("HAProxy refused to drain `{server}`: {drained}");
    }
    let until = Instant::now() + target.drain_timeout;
    loop {
        match api.sessions(&name).await? {
            None => return Ok(()),
            Some(0) => break,
            Some(n) if Instant::now() >= until => {
                tracing::warn!(
                    "`{server}` still had {n} session(s) after {} s of drain: cutting them",
                    target.drain_timeout.as_secs()
                );
                api.expect(&format!("set server {server} state maint"), &[])
                    .await?;
                api.expect(&format!("shutdown sessions server {server}"), &[])
                    .await?;
                break;
            }
            Some(_) => tokio::time::sleep(DRAIN_POLL).await,
        }
    }
    api.expect(
        &format!("set server {server} state maint"),
        &["No such server"],
    )
    .await?;
    let until = Instant::now() + DELETE_GRACE;
    loop {
        let answer = api.send(&format!("del server {server}")).await?;
        if answer.starts_with("Server deleted") || answer.starts_with("No such server") {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("HAProxy refused to delete `{server}`: {answer}");
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// The servers of `show servers state <backend>`: name, address, port.
/// None when the answer is not that table (no such backend).
pub fn parse_servers_state(answer: &str) -> Option<Vec<(String, String, u16)>> {
    let mut lines = answer.lines();
    lines.next().filter(|v| v.trim() == "1")?;
    let header: Vec<&str> = lines
        .next()?
        .trim_start_matches('#')
        .split_whitespace()
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (name, addr, port) = (col("srv_name")?, col("srv_addr")?, col("srv_port")?);
    Some(
        lines
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() == header.len())
            .filter_map(|f| {
                Some((
                    f[name].to_string(),
                    f[addr].to_string(),
                    f[port].parse().ok()?,
                ))
            })
            .collect(),
    )
}

/// The current plus queued sessions of `server` in a `show stat` CSV
/// answer; None when it is not listed.
pub fn parse_sessions(answer: &str, server: &str) -> Option<u64> {
    let mut lines = answer.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (sv, scur, qcur) = (col("svname")?, col("scur")?, col("qcur")?);
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.get(sv) == Some(&server))
        .map(|f| {
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            n(scur) + n(qcur)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_servers_of_a_backend() {
        let answer = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 be 1 p.web.app.1 10.77.0.11 2 0 1 1 0 1 0 0 0 0 0 0 - 8081 - 0 0 - - 0\n3 be 2 manual 10.0.0.9 2 0 1 1 0 1 0 0 0 0 0 0 - 80 - 0 0 - - 0\n";
        assert_eq!(
            parse_servers_state(answer).unwrap(),
            [
                ("p.web.app.1".to_string(), "10.77.0.11".to_string(), 8081),
                ("manual".to_string(), "10.0.0.9".to_string(), 80)
            ]
        );
        assert_eq!(parse_servers_state("Can't find backend.\n"), None);
    }

    #[test]
    fn counts_the_sessions_of_a_server() {
        let answer = "# pxname,svname,qcur,qmax,scur,smax,slim\nbe,p.web.app.1,1,0,3,5,\nbe,BACKEND,0,0,3,5,\n";
        assert_eq!(parse_sessions(answer, "p.web.app.1"), Some(4));
        assert_eq!(parse_sessions(answer, "p.web.app.2"), None);
    }

    #[test]
    fn server_names_carry_the_project() {
        let r = Replica {
            project: "shop".into(),
            stack: "web".into(),
            service: "app".into(),
            replica: 3,
            host: "edge-1".into(),
            address: "10.77.0.11".into(),
            port: 8081,
        };
        assert_eq!(server_name(&r), "shop.web.app.3.edge-1");
    }
}
