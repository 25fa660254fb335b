//! The gates a new container passes before its rollout goes on: it runs
//! without restarts, reports healthy (if it has a healthcheck), passes every
//! `x-berth.validate` check (exec in the container; http and tcp from the
//! host itself, over its connection), and stays healthy for `monitor`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::context::{ApplyContext, ServicePolicy};
use super::policy::{Backoff, CHECK_RETRY, MONITOR_POLL, READY_FALLBACK_POLL, READY_POLL};
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

/// Waits until the container runs and, if it has a healthcheck, is healthy,
/// bounded by `timeout`. Looks again whenever the host's event stream says
/// something about the container, and at [`READY_FALLBACK_POLL`] besides;
/// without a stream (or once it is lost), at [`READY_POLL`].
pub async fn wait_ready(engine: &dyn Engine, id: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_ready_paced(engine, id, timeout, READY_FALLBACK_POLL).await
}

/// [`wait_ready`] with the poll beside the event stream given.
async fn wait_ready_paced(
    engine: &dyn Engine,
    id: &str,
    timeout: Duration,
    fallback: Backoff,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    // Subscribed before the first look, so no event after it is missed.
    let mut events = engine.container_events();
    let mut backoff = if events.is_some() {
        fallback
    } else {
        READY_POLL
    };
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
        let pause = backoff
            .pause()
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(10));
        match events.as_mut() {
            Some(rx) => {
                if !event_about(rx, id, pause).await {
                    // The stream is gone: poll at the usual pace from now on.
                    events = None;
                    backoff = READY_POLL;
                }
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// Waits up to `within` for an event about container `id`. False when the
/// stream has ended (nothing more will come).
async fn event_about(
    rx: &mut tokio::sync::broadcast::Receiver<String>,
    id: &str,
    within: Duration,
) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    let about = async {
        loop {
            match rx.recv().await {
                Ok(about) if about == id => return true,
                Ok(_) => {}
                // Missed some: one of them may have been this container's.
                Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            }
        }
    };
    tokio::time::timeout(within, about).await.unwrap_or(true)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::hosts::memory::MemoryEngine;

    /// A running container on an in-memory host that reports events, its
    /// health `starting`.
    fn starting() -> (MemoryEngine, String) {
        let engine = MemoryEngine::new("h");
        engine.enable_events();
        let id = engine.add_container("s-web-1", "reg/app:1", BTreeMap::new(), "running");
        engine.set_container_health(&id, Some("starting"));
        (engine, id)
    }

    /// So slow a poll that only an event can end the wait in time.
    const NEVER: Backoff = Backoff::new(Duration::from_secs(600), Duration::from_secs(600));

    #[tokio::test]
    async fn a_health_event_ends_the_wait_before_the_next_poll() {
        let (engine, id) = starting();
        let healthy = {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                engine.set_container_health(&id, Some("healthy"));
            }
        };
        let gate = wait_ready_paced(&engine, &id, Duration::from_secs(900), NEVER);
        let (ready, ()) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(gate, healthy)
        })
        .await
        .expect("the gate waited for its poll, not the event");
        ready.expect("ready");
    }

    #[tokio::test]
    async fn a_lost_event_stream_leaves_the_gate_polling() {
        let (engine, id) = starting();
        let lost = {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // The stream goes; the container turns healthy with no event.
                engine.end_events();
                tokio::time::sleep(Duration::from_millis(50)).await;
                engine.set_container_health(&id, Some("healthy"));
            }
        };
        let gate = wait_ready_paced(&engine, &id, Duration::from_secs(900), NEVER);
        let (ready, ()) =
            tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(gate, lost) })
                .await
                .expect("the gate hung on a lost stream");
        ready.expect("ready");
    }

    #[tokio::test]
    async fn an_unhealthy_event_fails_the_gate_at_once() {
        let (engine, id) = starting();
        let unhealthy = {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                engine.set_container_health(&id, Some("unhealthy"));
            }
        };
        let gate = wait_ready_paced(&engine, &id, Duration::from_secs(900), NEVER);
        let (ready, ()) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(gate, unhealthy)
        })
        .await
        .expect("the gate waited for its poll, not the event");
        let e = ready.expect_err("unhealthy fails the gate");
        assert!(format!("{e:#}").contains("unhealthy"), "{e:#}");
    }
}
