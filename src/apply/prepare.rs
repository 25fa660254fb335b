//! Getting a host ready before any service rolls out: images pulled,
//! networks and volumes created, secret files delivered, removed services'
//! containers gone (first: they free ports and names). And, after the
//! rollouts, secret versions no container reads any more removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::anyhow;
use futures::future::join_all;
use tracing::Instrument as _;

use super::context::ApplyContext;
use super::host::Host;
use super::outcome::{record, step, HostReport, Step};
use crate::hosts::secret_files::SecretFile;
use crate::hosts::{labels, Engine};
use crate::plan::{Action, HostPlan};
use crate::spec::secret_paths;

/// Writes the secret files the host's new containers read, before any
/// container changes: each version in its own directory, so the running
/// containers keep reading theirs.
async fn deliver_secrets(
    engine: &dyn Engine,
    hp: &HostPlan,
    ctx: &ApplyContext,
    report: &mut HostReport,
) -> anyhow::Result<()> {
    let secrets_dir = ctx
        .secrets_dirs
        .get(&hp.host)
        .map(String::as_str)
        .unwrap_or(secret_paths::HOST_DIR);
    let mut files: Vec<SecretFile<'_>> = Vec::new();
    // A reload keeps its container, and with it the secrets it reads.
    for c in hp
        .changes
        .iter()
        .filter(|c| c.action != Action::Remove && c.action != Action::Reload)
    {
        let Some(desired) = &c.desired else { continue };
        for (name, file) in &desired.spec.secrets {
            let path = secret_paths::host_path(
                secrets_dir,
                &ctx.project,
                &c.slot.stack,
                &c.slot.service,
                name,
                file,
            );
            if files.iter().any(|f| f.path == path) {
                continue;
            }
            let content = ctx.secrets.get(&file.digest).ok_or_else(|| {
                anyhow!(
                    "secret `{name}` of `{}/{}` was not decrypted before apply",
                    c.slot.stack,
                    c.slot.service
                )
            })?;
            files.push(SecretFile {
                path,
                uid: file.uid.clone(),
                gid: file.gid.clone(),
                mode: file.mode,
                content,
            });
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let what = format!("{} file(s) under {secrets_dir}", files.len());
    step(
        report,
        Step::Secrets,
        &what,
        engine.write_secrets(secrets_dir, &files),
    )
    .await
}

/// Removes the secret versions no container of the project uses any more
/// (kept `.berth-failed` containers keep theirs).
pub(super) async fn prune_secrets(engine: &dyn Engine, ctx: &ApplyContext) -> anyhow::Result<()> {
    let secrets_dir = ctx
        .secrets_dirs
        .get(engine.host())
        .map(String::as_str)
        .unwrap_or(secret_paths::HOST_DIR);
    let observed = engine.observe(&ctx.project).await?;
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for c in &observed.containers {
        let used = (|| {
            let spec: crate::spec::ContainerSpec =
                serde_json::from_str(c.labels.get(labels::SPEC)?).ok()?;
            Some(secret_paths::dirs_in_use(
                c.labels.get(labels::STACK)?,
                c.labels.get(labels::SERVICE)?,
                &spec,
            ))
        })();
        match used {
            Some(dirs) => keep.extend(dirs),
            // Cannot tell what it reads: removing anything could stop it
            // from starting again.
            None => {
                tracing::warn!(
                    host = engine.host(),
                    "not removing unused secrets: container `{}` has no readable berth spec label",
                    c.name
                );
                return Ok(());
            }
        }
    }
    let project_dir = format!("{}/{}", secrets_dir.trim_end_matches('/'), ctx.project);
    engine.prune_secrets(&project_dir, &keep).await
}

/// Pulls, networks, volumes, secrets and removals on one host. Stops at
/// the first failure: the host then takes no part in the rollouts. The
/// pulls (one per image: the plan lists each once) all go at once, beside
/// the networks, volumes and secrets, which need no image; removals come
/// last, so a host whose pull fails has lost nothing.
pub(super) async fn prepare_host(
    host: Host<'_>,
    hp: &HostPlan,
    ctx: &ApplyContext,
    on: &super::host::Hosts<'_>,
) -> HostReport {
    let engine = host.engine;
    let started = Instant::now();
    let empty = || HostReport {
        host: hp.host.clone(),
        steps: Vec::new(),
        seconds: 0.0,
        error: None,
        outcome: Default::default(),
    };
    let mut report = empty();
    let pulls = join_all(hp.pulls.iter().map(|image| async move {
        let started = Instant::now();
        let span = tracing::info_span!("pull", %image);
        (image, started, engine.pull(image).instrument(span).await)
    }));
    let mut others = empty();
    let setup = async {
        let labels = BTreeMap::from([(labels::PROJECT.to_string(), ctx.project.clone())]);
        for net in &hp.networks {
            step(
                &mut others,
                Step::Network,
                &net.name,
                engine.create_network(net, &labels),
            )
            .await?;
        }
        for vol in &hp.volumes {
            step(
                &mut others,
                Step::Volume,
                &vol.name,
                engine.create_volume(vol, &labels),
            )
            .await?;
        }
        deliver_secrets(engine, hp, ctx, &mut others).await?;
        super::reload::deliver(engine, hp, ctx, &mut others).await
    };
    let (pulled, setup) = tokio::join!(pulls, setup);
    let mut result: anyhow::Result<()> = Ok(());
    for (image, started, pull) in pulled {
        record(&mut report, Step::Pull, image, started, pull.as_ref().err());
        if let (Err(e), Ok(())) = (pull, &result) {
            result = Err(e);
        }
    }
    report.steps.append(&mut others.steps);
    let mut result = result.and(setup);
    if result.is_ok() {
        // Removed services' containers, all at once within the host's bound.
        let removals = hp
            .changes
            .iter()
            .filter(|c| c.action == Action::Remove)
            .filter_map(|c| Some((c, c.current.as_ref()?)))
            .map(|(c, current)| async move {
                let started = Instant::now();
                // A replica scaled away leaves discovery (drained) first;
                // one that cannot be retired is not stopped.
                let policy = ctx
                    .services
                    .get(&(c.slot.stack.clone(), c.slot.service.clone()))
                    .filter(|_| current.state == crate::observed::ContainerState::Running);
                if let Some(policy) = policy {
                    if let Err(e) = super::publish::unpublish(on, host.name, c, policy, ctx).await {
                        let e = e.context(format!("`{}` was not removed: it serves on", c.name));
                        return (c, started, Err(e));
                    }
                }
                let removed = host
                    .op(async {
                        engine.stop_container(&current.id, None).await?;
                        engine.remove_container(&current.id).await
                    })
                    .await;
                (c, started, removed)
            });
        for (c, started, removed) in join_all(removals).await {
            record(
                &mut report,
                Step::Remove,
                &c.name,
                started,
                removed.as_ref().err(),
            );
            if let (Err(e), Ok(())) = (removed, &result) {
                result = Err(e);
            }
        }
    }
    if let Err(e) = result {
        if crate::hosts::is_lost(&e) {
            // The executor drops the host from the run (see `host`).
            report.outcome = super::outcome::HostOutcome::Unreachable;
        }
        tracing::error!(host = %hp.host, "{e:#}");
        report.error = Some(format!("{e:#}"));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}
