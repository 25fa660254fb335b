//! Configs at apply: delivering the versions a host's new containers read
//! (one command per host, before any container changes), reloading a
//! running container in place (`x-berth.reload`), and removing versions
//! nothing reads any more.
//!
//! A reload, per replica: point the container's live link at the new
//! version (an atomic rename on the host), run `check` in the container,
//! send the signal (or run `exec`), then the service's gates and
//! `x-berth.validate`. When any of them fails, the previous version is
//! linked again and the reload sent again, and the step fails naming the
//! host, the replica, the configs and the output. No container is stopped
//! or restarted. Each step says its end state, so a run killed halfway
//! leaves the old or the new file (never a mix), and the next plan sees
//! which and finishes the job.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, Context as _};

use super::context::{ApplyContext, ServicePolicy};
use super::host::Host;
use super::outcome::{step, HostReport, Step};
use crate::hosts::config_files::{self, Link, Version};
use crate::hosts::{labels, Engine};
use crate::placement::Slot;
use crate::plan::{Action, Change, HostPlan};
use crate::spec::configs::{self, ConfigFileSpec, ReloadSpec};

/// Longest a `check` or `exec` reload command may run in the container.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A reload that failed, and whether the previous config is back: kept in
/// the error's chain for the report.
#[derive(Debug)]
pub struct RolledBack(pub bool);

impl std::fmt::Display for RolledBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 {
            f.write_str("the previous config is back and was reloaded")
        } else {
            f.write_str("putting the previous config back failed too")
        }
    }
}

/// The project's config directory on the engine's host, below its
/// `configs_dir`.
fn project_dir(engine: &dyn Engine, ctx: &ApplyContext) -> String {
    let configs_dir = ctx
        .configs_dirs
        .get(engine.host())
        .map_or(configs::HOST_DIR, String::as_str);
    configs::project_dir(configs_dir, &ctx.project, engine.host())
}

fn base(engine: &dyn Engine, ctx: &ApplyContext) -> String {
    format!("{}{}", engine.shell().root(), project_dir(engine, ctx))
}

fn hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}

/// The live link of a reloading config of `slot`, at `file`'s version.
fn link(base: &str, slot: &Slot, name: &str, file: &ConfigFileSpec) -> Link {
    let (dir, file_name) =
        configs::live_dir(&slot.stack, &slot.service, slot.replica, &file.target);
    Link {
        live: format!("{base}/{dir}"),
        name: file_name,
        version: configs::version(file),
        from: Some(format!(
            "{base}/{}",
            configs::store_dir(&slot.stack, &slot.service, name, file)
        )),
        hex: Some(hex(&file.digest)),
        uid: file.uid.clone(),
        gid: file.gid.clone(),
        mode: file.mode,
    }
}

/// Writes the config versions the host's new (and reloading) containers
/// read, and points the live links of containers about to be created at
/// theirs: one remote command, before any container changes. A version
/// already there with the right bytes is left alone; one edited on the
/// host is written again.
pub(super) async fn deliver(
    engine: &dyn Engine,
    hp: &HostPlan,
    ctx: &ApplyContext,
    report: &mut HostReport,
) -> anyhow::Result<()> {
    let base = base(engine, ctx);
    let mut versions: Vec<Version<'_>> = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    for c in hp.changes.iter().filter(|c| c.action != Action::Remove) {
        let Some(desired) = &c.desired else { continue };
        for (name, file) in &desired.spec.configs {
            let dir = format!(
                "{base}/{}",
                configs::store_dir(&c.slot.stack, &c.slot.service, name, file)
            );
            if !versions.iter().any(|v| v.dir == dir) {
                let data = ctx.configs.get(&file.digest).ok_or_else(|| {
                    anyhow!(
                        "config `{name}` of `{}/{}` ({}) is not in the repo read for this apply",
                        c.slot.stack,
                        c.slot.service,
                        file.digest
                    )
                })?;
                versions.push(Version {
                    dir,
                    hex: hex(&file.digest),
                    files: &data.files,
                    is_dir: data.dir,
                    uid: file.uid.clone(),
                    gid: file.gid.clone(),
                    mode: file.mode,
                });
            }
            // A reload swaps its links itself, replica by replica.
            if file.reload && c.action != Action::Reload {
                links.push(link(&base, &c.slot, name, file));
            }
        }
    }
    if versions.is_empty() && links.is_empty() {
        return Ok(());
    }
    let what = format!(
        "{} version(s), {} live link(s)",
        versions.len(),
        links.len()
    );
    step(
        report,
        Step::Configs,
        &what,
        config_files::deliver(engine.shell(), engine.who(), &versions, &links),
    )
    .await
}

/// What to put back when a reload is undone.
pub(super) struct Undo {
    links: Vec<Link>,
}

/// Reloads one running container in place: swap, check, reload, gates. On
/// a failure the previous files are linked and reloaded again before the
/// error (with [`RolledBack`] in its chain) is returned.
pub(super) async fn reload_member(
    host: Host<'_>,
    c: &Change,
    policy: &ServicePolicy,
    ctx: &ApplyContext,
) -> anyhow::Result<(Duration, Undo)> {
    let engine = host.engine;
    let desired = c
        .desired
        .as_ref()
        .ok_or_else(|| anyhow!("plan has no desired spec for `{}`", c.name))?;
    let current = c
        .current
        .as_ref()
        .ok_or_else(|| anyhow!("plan has no running container to reload for `{}`", c.name))?;
    let reload = policy.reload.as_ref().ok_or_else(|| {
        anyhow!(
            "`{}/{}` has no `x-berth.reload` in the repo read for this apply",
            c.slot.stack,
            c.slot.service
        )
    })?;
    let names: Vec<&String> = c.configs.iter().map(|d| &d.config).collect();
    let shown = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let base = base(engine, ctx);
    let links: Vec<Link> = desired
        .spec
        .configs
        .iter()
        .filter(|(name, f)| f.reload && names.contains(name))
        .map(|(name, f)| link(&base, &c.slot, name, f))
        .collect();
    let before = host
        .op(config_files::swap(engine.shell(), engine.who(), &links))
        .await?;
    let undo = Undo {
        links: links
            .iter()
            .zip(before)
            .filter_map(|(l, was)| {
                Some(Link {
                    version: was?,
                    from: None,
                    hex: None,
                    ..l.clone()
                })
            })
            .collect(),
    };
    let started = std::time::Instant::now();
    let tried = async {
        if let Some(check) = &reload.check {
            run(engine, &current.id, check, "check").await?;
        }
        send(engine, &current.id, reload).await?;
        super::gate::gate(engine, &current.id, policy, ctx).await
    }
    .await;
    match tried {
        Ok(_) => {
            host.op(config_files::mark(engine.shell(), engine.who(), &links))
                .await?;
            Ok((started.elapsed(), undo))
        }
        Err(e) => {
            let back = put_back(host, &current.id, &undo, reload).await;
            if let Err(b) = &back {
                tracing::error!(host = %host.name, "{}: {b:#}", c.name);
            }
            Err(e
                .context(format!("config {shown} of `{}`", c.name))
                .context(RolledBack(back.is_ok())))
        }
    }
}

/// Undoes a reload that had passed (another replica failed and the
/// service rolls back): the previous files, reloaded.
pub(super) async fn undo(
    host: Host<'_>,
    c: &Change,
    undo: &Undo,
    policy: &ServicePolicy,
) -> anyhow::Result<()> {
    let (Some(current), Some(reload)) = (c.current.as_ref(), policy.reload.as_ref()) else {
        return Ok(());
    };
    put_back(host, &current.id, undo, reload).await
}

async fn put_back(
    host: Host<'_>,
    id: &str,
    undo: &Undo,
    reload: &ReloadSpec,
) -> anyhow::Result<()> {
    if undo.links.is_empty() {
        return Ok(());
    }
    let engine = host.engine;
    host.op(config_files::swap(
        engine.shell(),
        engine.who(),
        &undo.links,
    ))
    .await?;
    send(engine, id, reload)
        .await
        .context("the previous config is back, but reloading it failed")?;
    host.op(config_files::mark(
        engine.shell(),
        engine.who(),
        &undo.links,
    ))
    .await
}

/// Runs `command` in the container; a non-zero exit is an error with its output.
async fn run(engine: &dyn Engine, id: &str, command: &[String], what: &str) -> anyhow::Result<()> {
    let (code, output) = engine.exec(id, command, COMMAND_TIMEOUT).await?;
    if code != 0 {
        anyhow::bail!(
            "{what} `{}` exited with {code}: {}",
            command.join(" "),
            output.trim()
        );
    }
    Ok(())
}

/// Tells the container to reload: its signal, or its `exec` command.
async fn send(engine: &dyn Engine, id: &str, reload: &ReloadSpec) -> anyhow::Result<()> {
    match (&reload.signal, &reload.exec) {
        (Some(signal), _) => {
            let signal = if signal.starts_with("SIG") || signal.parse::<u32>().is_ok() {
                signal.clone()
            } else {
                format!("SIG{signal}")
            };
            engine.signal(id, &signal).await
        }
        (None, Some(exec)) => run(engine, id, exec, "reload").await,
        (None, None) => Ok(()),
    }
}

/// Removes the config versions and live directories no container of the
/// project reads any more (kept `.berth-failed` containers keep theirs).
pub(super) async fn prune(engine: &dyn Engine, ctx: &ApplyContext) -> anyhow::Result<()> {
    let observed = engine.observe(&ctx.project).await?;
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut live: BTreeSet<String> = BTreeSet::new();
    for c in &observed.containers {
        let used = (|| {
            let spec: crate::spec::ContainerSpec =
                serde_json::from_str(c.labels.get(labels::SPEC)?).ok()?;
            let slot = Slot {
                stack: c.labels.get(labels::STACK)?.clone(),
                service: c.labels.get(labels::SERVICE)?.clone(),
                replica: c.labels.get(labels::REPLICA)?.parse().ok()?,
            };
            Some((spec, slot))
        })();
        let Some((spec, slot)) = used else {
            tracing::warn!(
                host = engine.host(),
                "not removing unused configs: container `{}` has no readable berth labels",
                c.name
            );
            return Ok(());
        };
        for (name, file) in &spec.configs {
            if file.reload {
                live.insert(
                    configs::live_dir(&slot.stack, &slot.service, slot.replica, &file.target).0,
                );
            } else {
                keep.insert(configs::store_dir(&slot.stack, &slot.service, name, file));
            }
        }
    }
    config_files::prune(
        engine.shell(),
        engine.who(),
        &project_dir(engine, ctx),
        &keep,
        &live,
    )
    .await
}
