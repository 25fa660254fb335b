//! The gates a new container passes before its rollout goes on: it runs
//! without restarts, reports healthy (if it has a healthcheck), passes every
//! `x-berth.validate` check (exec in the container; http and tcp from the
//! host itself, over its connection), and stays healthy for `monitor`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::context::{ApplyContext, ServicePolicy};
use super::policy::{CHECK_RETRY, MONITOR_POLL, READY_POLL};
use crate::hosts::Engine;
use crate::observed::{ContainerStatus, Health};
use crate::spec::ValidateCheck;

/// The gates of a started container, in order, each bounded: running
/// without restarts, healthy (if the image or spec has a healthcheck),
/// every `x-berth.validate` check, then still healthy after `monitor`.
pub(super) async fn gate(
    engine: &dyn Engine,
    id: &str,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<Duration> {
    let waiting = Instant::now();
    wait_ready(engine, id, ctx.health_timeout).await?;
    for check in &policy.validate {
        run_check(engine, id, check)
            .await
            .with_context(|| format!("validation failed: {}", describe(check)))?;
    }
    if !policy.update.monitor.is_zero() {
        let until = Instant::now() + policy.update.monitor;
        let mut poll = MONITOR_POLL;
        while Instant::now() < until {
            tokio::time::sleep(poll.pause().min(until - Instant::now())).await;
            let status = engine.status(id).await?;
            if let Readiness::Failed(why) = readiness(&status) {
                bail!(
                    "during the {}s monitor period: {why}",
                    policy.update.monitor.as_secs()
                );
            }
        }
    }
    Ok(waiting.elapsed())
}

fn describe(check: &ValidateCheck) -> String {
    match check {
        ValidateCheck::Exec { command, .. } => format!("exec `{}`", command.join(" ")),
        ValidateCheck::Http { url, status, .. } => format!("http GET {url} (want {status})"),
        ValidateCheck::Tcp { port, .. } => format!("tcp port {port}"),
    }
}

/// One validation check, retried at [`CHECK_RETRY`] until its timeout.
async fn run_check(engine: &dyn Engine, id: &str, check: &ValidateCheck) -> anyhow::Result<()> {
    let timeout = match check {
        ValidateCheck::Exec { timeout, .. }
        | ValidateCheck::Http { timeout, .. }
        | ValidateCheck::Tcp { timeout, .. } => *timeout,
    };
    let deadline = Instant::now() + timeout;
    let mut backoff = CHECK_RETRY;
    let mut pause = backoff.pause();
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let attempt = match check {
            ValidateCheck::Exec { command, .. } => {
                let (code, output) = engine.exec(id, command, left).await?;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!("exited with {code}: {}", trim_output(&output)))
                }
            }
            ValidateCheck::Http {
                url,
                status,
                body_contains,
                ..
            } => http_check(engine, url, *status, body_contains.as_deref(), left).await,
            ValidateCheck::Tcp { port, .. } => {
                let script = format!(
                    "if command -v nc >/dev/null 2>&1; then nc -z -w {s} 127.0.0.1 {port}; \
                     else timeout {s} bash -c '</dev/tcp/127.0.0.1/{port}'; fi",
                    s = left.as_secs().max(1)
                );
                let (code, output) = engine.host_exec(&script, left).await?;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "port {port} does not accept connections on the host {}",
                        trim_output(&output)
                    ))
                }
            }
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(why) if Instant::now() + pause >= deadline => bail!("{why}"),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = backoff.pause();
            }
        }
    }
}

/// GET `url` from the host itself (over its SSH connection), so the check
/// sees what the host's network sees, not the runner's.
async fn http_check(
    engine: &dyn Engine,
    url: &str,
    want: u16,
    body_contains: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    if url.contains('\'') {
        return Err(format!("url `{url}` must not contain a single quote"));
    }
    let secs = timeout.as_secs().max(1);
    let script = format!(
        "if command -v curl >/dev/null 2>&1; then curl -sS --max-time {secs} -w '\\nberth-http-status %{{http_code}}' '{url}'; \
         else wget -q -S -T {secs} -O - '{url}' 2>&1; fi"
    );
    let (code, output) = engine
        .host_exec(&script, timeout + Duration::from_secs(5))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let (body, status) = match output.rsplit_once("berth-http-status ") {
        Some((body, status)) => (body.to_string(), status.trim().parse::<u16>().unwrap_or(0)),
        None => {
            // wget -S prints the status line in its headers.
            let status = output
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("HTTP/")
                        .and_then(|r| r.split_whitespace().nth(1))
                })
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (output.clone(), status)
        }
    };
    if status == 0 {
        return Err(format!(
            "no HTTP answer (exit {code}): {}",
            trim_output(&output)
        ));
    }
    if status != want {
        return Err(format!(
            "status {status}, want {want}: {}",
            trim_output(&body)
        ));
    }
    if let Some(needle) = body_contains {
        if !body.contains(needle) {
            return Err(format!(
                "body does not contain `{needle}`: {}",
                trim_output(&body)
            ));
        }
    }
    Ok(())
}

fn trim_output(s: &str) -> String {
    let s = s.trim();
    let cut: String = s.chars().take(300).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Waits until the container runs and, if it has a healthcheck, is healthy.
/// Polled at [`READY_POLL`], bounded by `timeout`.
pub async fn wait_ready(engine: &dyn Engine, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut backoff = READY_POLL;
    loop {
        let status = engine.status(id).await?;
        match readiness(&status) {
            Readiness::Ready => return Ok(()),
            Readiness::Failed(why) => bail!("{why}"),
            Readiness::Waiting(why) => {
                if Instant::now() >= deadline {
                    bail!("not ready after {}s: {why}", timeout.as_secs());
                }
            }
        }
        tokio::time::sleep(backoff.pause()).await;
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Waiting(String),
    Failed(String),
}

/// The gate decision, a plain function of the container's status.
pub fn readiness(s: &ContainerStatus) -> Readiness {
    if !s.running {
        return Readiness::Failed(match s.exit_code {
            Some(code) => format!("container exited with code {code}"),
            None => "container is not running".into(),
        });
    }
    if s.restart_count > 0 {
        return Readiness::Failed(format!("container restarted {} time(s)", s.restart_count));
    }
    let log = || {
        s.health_log
            .as_deref()
            .filter(|l| !l.is_empty())
            .map(|l| format!("; last check said: {l}"))
            .unwrap_or_default()
    };
    match s.health {
        None | Some(Health::Healthy) => Readiness::Ready,
        Some(Health::Unhealthy) => {
            Readiness::Failed(format!("healthcheck reports unhealthy{}", log()))
        }
        Some(other @ Health::Starting) => {
            Readiness::Waiting(format!("health is `{other}`{}", log()))
        }
    }
}
