//! Getting a host ready before any service rolls out: images pulled,
//! networks and volumes created, secret files delivered, removed services'
//! containers gone (first: they free ports and names). And, after the
//! rollouts, secret versions no container reads any more removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::anyhow;
use tracing::Instrument as _;

use super::context::ApplyContext;
use super::outcome::{step, HostReport};
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
    for c in hp.changes.iter().filter(|c| c.action != Action::Remove) {
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
        "secrets",
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

/// Pulls, networks, volumes and removals on one host. Stops at the first
/// failure: the host then takes no part in the rollouts.
pub(super) async fn prepare_host(
    engine: &dyn Engine,
    hp: &HostPlan,
    ctx: &ApplyContext,
) -> HostReport {
    let started = Instant::now();
    let mut report = HostReport {
        host: hp.host.clone(),
        steps: Vec::new(),
        seconds: 0.0,
        error: None,
    };
    let result: anyhow::Result<()> = async {
        for image in &hp.pulls {
            let span = tracing::info_span!("pull", %image);
            step(
                &mut report,
                "pull",
                image,
                engine.pull(image).instrument(span),
            )
            .await?;
        }
        let labels = BTreeMap::from([(labels::PROJECT.to_string(), ctx.project.clone())]);
        for net in &hp.networks {
            step(
                &mut report,
                "network",
                &net.name,
                engine.create_network(net, &labels),
            )
            .await?;
        }
        for vol in &hp.volumes {
            step(
                &mut report,
                "volume",
                &vol.name,
                engine.create_volume(vol, &labels),
            )
            .await?;
        }
        deliver_secrets(engine, hp, ctx, &mut report).await?;
        for c in hp.changes.iter().filter(|c| c.action == Action::Remove) {
            let Some(current) = &c.current else { continue };
            let fut = async {
                engine.stop_container(&current.id, None).await?;
                engine.remove_container(&current.id).await
            };
            step(&mut report, "remove", &c.name, fut).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(host = %hp.host, "{e:#}");
        report.error = Some(format!("{e:#}"));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}
