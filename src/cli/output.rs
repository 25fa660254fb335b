//! What each command prints and which exit code it returns. The work itself
//! happens in `run`; this file only sequences it and talks to the terminal.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{exit, PlanFormat};
use crate::apply::ApplyReport;
use crate::plan::Plan;
use crate::render;
use crate::report::{write_atomic, RunReport};
use crate::run::{self, Loaded, RunOptions};
use crate::spec::SpecError;

/// What plan/apply print and write besides the exit code.
#[derive(Debug, Clone)]
pub struct PlanOutput {
    pub format: PlanFormat,
    pub out: Option<PathBuf>,
    /// `plan --save FILE`.
    pub save: Option<PathBuf>,
    /// `apply --plan FILE`.
    pub saved_plan: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    pub detailed_exitcode: bool,
}

pub async fn validate(opts: &RunOptions) -> anyhow::Result<u8> {
    let loaded = run::load(opts).await?;
    let services: usize = loaded.project.stacks.iter().map(|s| s.services.len()).sum();
    println!(
        "{} is valid: {} host(s), {} stack(s), {} service(s).",
        loaded.checkout.root.display(),
        loaded.project.inventory.hosts.len(),
        loaded.project.stacks.len(),
        services
    );
    Ok(exit::OK)
}

pub async fn plan(opts: &RunOptions, out: &PlanOutput) -> anyhow::Result<u8> {
    let started = SystemTime::now();
    let loaded = run::load(opts).await?;
    let obs = run::observe(&loaded, opts).await?;
    let plan = run::make_plan(&loaded, &obs, opts);
    let observed = crate::plan::summarize(&obs.observed);
    let rewound = run::rewound_from(&loaded, &obs);
    obs.close().await;
    for (host, commit, why) in &rewound {
        tracing::warn!(
            "host `{host}` runs commit {}: {why}; `berth apply` refuses this commit without --allow-rewind",
            render::short(commit)
        );
    }
    let plan = plan?;
    if let Some(path) = &out.save {
        let saved = crate::plan::SavedPlan {
            plan: plan.clone(),
            observed,
        };
        let json = serde_json::to_string_pretty(&saved)?;
        write_atomic(path, &(json + "\n"))?;
        tracing::info!("saved the plan to `{}`", path.display());
    }
    let rendered = match out.format {
        PlanFormat::Human => render::human(&plan),
        PlanFormat::Json => render::json(&plan) + "\n",
        PlanFormat::Markdown => render::markdown(&plan),
    };
    match &out.out {
        Some(path) => {
            write_atomic(path, &rendered)?;
            print_plan(&loaded, &plan);
        }
        None if out.format == PlanFormat::Human => print_plan(&loaded, &plan),
        None => print!("{rendered}"),
    }
    let code = if !plan.unreachable.is_empty() {
        exit::ERROR
    } else if out.detailed_exitcode && !plan.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    };
    write_reports(out, "plan", &plan, None, started, code)?;
    Ok(code)
}

fn write_reports(
    out: &PlanOutput,
    command: &str,
    plan: &Plan,
    applied: Option<&ApplyReport>,
    started: SystemTime,
    code: u8,
) -> anyhow::Result<()> {
    if out.report.is_none() && out.metrics.is_none() {
        return Ok(());
    }
    let report = RunReport::new(command, plan, applied, started, code);
    if let Some(path) = &out.report {
        write_atomic(path, &(report.to_json() + "\n"))?;
    }
    if let Some(path) = &out.metrics {
        write_atomic(path, &report.to_prometheus())?;
    }
    Ok(())
}

pub async fn apply(opts: &RunOptions, out: &PlanOutput) -> anyhow::Result<u8> {
    let started = SystemTime::now();
    let detailed = out.detailed_exitcode;
    let loaded = run::load(opts).await?;
    let obs = run::observe(&loaded, opts).await?;
    if !obs.lock_held.is_empty() {
        let held = obs.lock_held.clone();
        obs.close().await;
        let stderr = std::io::stderr();
        let mut err = stderr.lock();
        for (host, holder) in &held {
            let _ = writeln!(
                err,
                "error: host `{host}`: the run lock is held by another berth run ({holder})"
            );
        }
        let _ = writeln!(
            err,
            "\nno host was changed.\nhelp: wait for that run to finish, or raise --lock-timeout; a killed run releases its lock at once"
        );
        return Ok(exit::LOCK_HELD);
    }
    let planned = match &out.saved_plan {
        Some(path) => saved_plan(path, &loaded, &obs, opts),
        None => run::make_plan(&loaded, &obs, opts),
    };
    let plan = match planned.and_then(|p| run::refuse_rewind(&loaded, &obs, opts).map(|()| p)) {
        Ok(p) => p,
        Err(e) => {
            obs.close().await;
            return Err(e);
        }
    };
    print_plan(&loaded, &plan);
    if plan.is_empty() {
        obs.close().await;
        let code = if plan.unreachable.is_empty() {
            exit::OK
        } else {
            exit::ERROR
        };
        write_reports(out, "apply", &plan, None, started, code)?;
        return Ok(code);
    }
    let secrets = match run::unlock_secrets(&loaded, &plan, opts).await {
        Ok(s) => s,
        Err(e) => {
            obs.close().await;
            return Err(e);
        }
    };
    let report = run::apply_plan(&loaded, &obs, &plan, secrets, opts).await;
    let mut obs = obs;
    if let Some(commit) = &loaded.checkout.commit {
        // What a later run compares against to refuse going backwards.
        let done: std::collections::BTreeSet<String> = report
            .hosts
            .iter()
            .filter(|h| h.error.is_none())
            .map(|h| h.host.clone())
            .collect();
        obs.record_applied(&commit.id, &done).await;
    }
    obs.close().await;

    let failed = report.failed_hosts();
    let changed = report.changed();
    if failed.is_empty() && plan.unreachable.is_empty() {
        println!(
            "Apply complete: {changed} container change(s) on {} host(s).",
            report.hosts.len()
        );
        let code = if detailed { exit::CHANGES } else { exit::OK };
        write_reports(out, "apply", &plan, Some(&report), started, code)?;
        return Ok(code);
    }
    println!(
        "Apply incomplete: {changed} container change(s) made; {} host(s) failed, {} unreachable.",
        failed.len(),
        plan.unreachable.len()
    );
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    for h in failed {
        let _ = writeln!(
            err,
            "error: host `{}`: {}",
            h.host,
            h.error.as_deref().unwrap_or("")
        );
    }
    for u in &plan.unreachable {
        let _ = writeln!(err, "error: host `{}` was not reached: {}", u.host, u.error);
    }
    let _ = writeln!(
        err,
        "\nhelp: the other hosts converged; fix the host(s) above and run `berth apply` again"
    );
    write_reports(out, "apply", &plan, Some(&report), started, exit::ERROR)?;
    Ok(exit::ERROR)
}

/// The saved plan, if it still describes the hosts and the commit.
fn saved_plan(
    path: &std::path::Path,
    loaded: &Loaded,
    obs: &run::Observation,
    opts: &RunOptions,
) -> anyhow::Result<Plan> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the saved plan `{}`", path.display()))?;
    let saved: crate::plan::SavedPlan = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a plan saved by `berth plan --save`",
            path.display()
        )
    })?;
    if saved.plan.format_version != crate::plan::PLAN_FORMAT_VERSION {
        anyhow::bail!(
            "saved plan `{}` has format version {}, this berth reads {}; plan again",
            path.display(),
            saved.plan.format_version,
            crate::plan::PLAN_FORMAT_VERSION
        );
    }
    let commit_now = loaded.checkout.commit.as_ref().map(|c| c.id.clone());
    let mut moved = Vec::new();
    if saved.plan.project != loaded.project.name {
        moved.push(format!(
            "the plan is for project `{}`, the repo is project `{}`",
            saved.plan.project, loaded.project.name
        ));
    }
    if saved.plan.commit != commit_now {
        moved.push(format!(
            "the repo is at commit {}, the plan was made at {}",
            commit_now.as_deref().map(render::short).unwrap_or("(none)"),
            saved
                .plan
                .commit
                .as_deref()
                .map(render::short)
                .unwrap_or("(none)")
        ));
    }
    moved.extend(crate::plan::moved_since(
        &saved.observed,
        &crate::plan::summarize(&obs.observed),
    ));
    if !moved.is_empty() {
        anyhow::bail!(
            "the saved plan `{}` no longer matches; no host was changed:\n  - {}\nhelp: run `berth plan --save` again and review the new plan",
            path.display(),
            moved.join("\n  - ")
        );
    }
    // Same commit, same hosts: planning again must give the same changes.
    // A plan file edited by hand (another image, a secret mounted elsewhere)
    // does not, and what runs always comes from the (verified) checkout.
    let fresh = run::make_plan(loaded, obs, opts)?;
    let changes = |p: &Plan| -> Vec<(String, String, String, Option<String>)> {
        p.hosts
            .iter()
            .flat_map(|h| {
                h.changes.iter().map(move |c| {
                    (
                        h.host.clone(),
                        format!("{:?}", c.action),
                        c.name.clone(),
                        c.desired
                            .as_ref()
                            .map(|d| crate::placement::spec_hash(&d.spec)),
                    )
                })
            })
            .collect()
    };
    if changes(&saved.plan) != changes(&fresh) {
        anyhow::bail!(
            "the saved plan `{}` is not what commit {} plans for these hosts (was it edited?); no host was changed\nhelp: run `berth plan --save` again and review the new plan",
            path.display(),
            commit_now.as_deref().map(render::short).unwrap_or("(none)")
        );
    }
    Ok(fresh)
}

pub async fn status(opts: &RunOptions, show_labels: bool) -> anyhow::Result<u8> {
    let loaded = run::load(opts).await?;
    let obs = run::observe(&loaded, opts).await?;
    let current = crate::plan::current_placement(&obs.observed);
    let desired = crate::placement::place(&loaded.project, &current);
    let mut out = String::new();
    for (host, o) in &obs.observed {
        out.push_str(&format!("{host}\n"));
        if o.containers.is_empty() {
            out.push_str("  (no containers managed by berth)\n");
        }
        let want = desired.as_ref().ok().and_then(|d| d.hosts.get(host));
        let mut rows = vec![[
            "NAME".to_string(),
            "IMAGE".to_string(),
            "STATE".to_string(),
            "HEALTH".to_string(),
            "REPO".to_string(),
        ]];
        let mut containers: Vec<_> = o.containers.iter().collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        for c in containers {
            let hash = c.labels.get(crate::hosts::labels::SPEC_HASH);
            let sync = match want.and_then(|w| w.containers.iter().find(|d| d.name == c.name)) {
                Some(d) if Some(&d.spec_hash) == hash => "in sync",
                Some(_) => "differs",
                None => "not in repo",
            };
            rows.push([
                c.name.clone(),
                c.image.clone(),
                c.state.clone(),
                c.health.clone().unwrap_or_else(|| "-".into()),
                sync.to_string(),
            ]);
        }
        if rows.len() > 1 {
            let widths: Vec<usize> = (0..5)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                out.push_str(&format!(
                    "  {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2],
                    w3 = widths[3]
                ));
            }
        }
        if show_labels {
            for c in &o.containers {
                out.push_str(&format!("  {}:\n", c.name));
                for (k, v) in c.labels.iter().filter(|(k, _)| {
                    k.starts_with("berth.") && k.as_str() != crate::hosts::labels::SPEC
                }) {
                    out.push_str(&format!("    {k} = {v}\n"));
                }
            }
        }
        out.push('\n');
    }
    for u in &obs.unreachable {
        out.push_str(&format!("{}\n  ! unreachable: {}\n\n", u.host, u.error));
    }
    print!("{out}");
    let unreachable = !obs.unreachable.is_empty();
    obs.close().await;
    Ok(if unreachable { exit::ERROR } else { exit::OK })
}

fn print_plan(loaded: &Loaded, plan: &Plan) {
    if let Some(c) = &loaded.checkout.commit {
        tracing::debug!("planning at {} ({})", c.id, c.summary);
    }
    if loaded.checkout.dirty {
        tracing::warn!("the checkout has uncommitted changes: the plan includes them");
    }
    print!("{}", render::human(plan));
}

/// `error: ...`, then `Caused by:` lines; spec errors print each problem
/// with its location and help, and say no host was contacted.
pub fn print_error(e: &anyhow::Error) {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    if let Some(spec) = e.downcast_ref::<SpecError>() {
        for d in &spec.diagnostics {
            let _ = writeln!(err, "error: {}: {}", d.location, d.message);
            if let Some(help) = &d.help {
                let _ = writeln!(err, "  help: {help}");
            }
        }
        let _ = writeln!(
            err,
            "\n{} problem(s) found; no host was contacted.",
            spec.diagnostics.len()
        );
        return;
    }
    let _ = writeln!(err, "error: {e}");
    let causes: Vec<_> = e.chain().skip(1).collect();
    if !causes.is_empty() {
        let _ = writeln!(err, "\nCaused by:");
        for c in causes {
            let _ = writeln!(err, "    {c}");
        }
    }
}
