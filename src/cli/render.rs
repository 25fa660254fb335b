//! What each command's outcome looks like: stdout, stderr, and the report
//! and metrics files. No decision is made here: the outcome and its exit
//! code are given.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use super::outcome::Outcome;
use crate::apply::ApplyReport;
use crate::error::{Error, Reach};
use crate::hosts::fleet::HeldLock;
use crate::ops::{ApplyOutcome, Planned, Status, Sync, Validated};
use crate::plan::Plan;
use crate::render;
use crate::report::{write_atomic, RunReport};

/// Output format of `berth plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

/// How a command's outcome is shown and kept.
#[derive(Debug, Clone)]
pub struct Rendering {
    /// `plan` or `apply`, in reports.
    pub command: &'static str,
    pub started: SystemTime,
    pub format: PlanFormat,
    /// `plan --out FILE`.
    pub out: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    /// `status --labels`.
    pub labels: bool,
}

impl Rendering {
    pub fn new(command: &'static str) -> Rendering {
        Rendering {
            command,
            started: SystemTime::now(),
            format: PlanFormat::Human,
            out: None,
            report: None,
            metrics: None,
            labels: false,
        }
    }
}

/// Shows `outcome` (which exits with `code`) and writes its files.
pub fn outcome(outcome: &Outcome, code: u8, how: &Rendering) -> anyhow::Result<()> {
    match outcome {
        Outcome::Validated(v) => validated(v),
        Outcome::Planned(p) => planned(p, how)?,
        Outcome::Applied(a) => applied(a),
        Outcome::Status(s) => status(s, how.labels),
    }
    write_reports(outcome, code, how)
}

fn validated(v: &Validated) {
    println!(
        "{} is valid: {} host(s), {} stack(s), {} service(s).",
        v.root.display(),
        v.hosts,
        v.stacks,
        v.services
    );
}

fn planned(p: &Planned, how: &Rendering) -> anyhow::Result<()> {
    let rendered = match how.format {
        PlanFormat::Human => render::human(&p.plan),
        PlanFormat::Json => render::json(&p.plan) + "\n",
        PlanFormat::Markdown => render::markdown(&p.plan),
    };
    match &how.out {
        Some(path) => {
            write_atomic(path, &rendered)?;
            show_plan(&p.plan);
        }
        None if how.format == PlanFormat::Human => show_plan(&p.plan),
        None => print!("{rendered}"),
    }
    Ok(())
}

/// The human plan on stdout.
pub fn show_plan(plan: &Plan) {
    print!("{}", render::human(plan));
}

fn applied(a: &ApplyOutcome) {
    match a {
        ApplyOutcome::LockHeld { held, .. } => error(&lock_held(held)),
        ApplyOutcome::NothingToDo { .. } => {}
        ApplyOutcome::Applied { plan, report } => apply_summary(plan, report),
    }
}

fn apply_summary(plan: &Plan, report: &ApplyReport) {
    let failed = report.failed_hosts();
    let changed = report.changed();
    if failed.is_empty() && plan.unreachable.is_empty() && report.stopped.is_none() {
        println!(
            "Apply complete: {changed} container change(s) on {} host(s).",
            report.hosts.len()
        );
        return;
    }
    let (summary, problems) = incomplete(plan, report);
    println!("{summary}");
    error(&problems);
}

/// The summary line and the error of an apply that did not converge
/// everywhere: what became of each host (converged, rolled back,
/// incomplete, untouched, unreachable), each failed host's error, and a
/// `help:` line that says per host what happened and what to do.
fn incomplete(plan: &Plan, report: &ApplyReport) -> (String, Error) {
    use crate::apply::HostOutcome as O;
    let named = |outcome: O| -> Vec<String> {
        report
            .hosts
            .iter()
            .filter(|h| h.outcome == outcome)
            .map(|h| format!("`{}`", h.host))
            .collect()
    };
    let mut unreachable = named(O::Unreachable);
    unreachable.extend(plan.unreachable.iter().map(|u| format!("`{}`", u.host)));
    unreachable.sort();
    let groups = [
        (named(O::Converged), "converged"),
        (named(O::RolledBack), "rolled back"),
        (named(O::Incomplete), "incomplete"),
        (named(O::Untouched), "untouched"),
        (unreachable, "unreachable"),
    ];
    let counts: Vec<String> = groups
        .iter()
        .filter(|(hosts, _)| !hosts.is_empty())
        .map(|(hosts, what)| format!("{} {what}", hosts.len()))
        .collect();
    let summary = format!(
        "Apply {}: {} container change(s) made; host(s): {}.",
        match &report.stopped {
            Some(why) => format!("stopped by {why}"),
            None => "incomplete".to_string(),
        },
        report.changed(),
        counts.join(", ")
    );
    let problems = report
        .failed_hosts()
        .iter()
        .map(|h| {
            format!(
                "host `{}` ({}): {}",
                h.host,
                h.outcome.as_str(),
                h.error.as_deref().unwrap_or("")
            )
        })
        .chain(
            plan.unreachable
                .iter()
                .map(|u| format!("host `{}` was not reached: {}", u.host, u.error)),
        )
        .collect();
    let [converged, rolled_back, partial, untouched, unreachable] = groups.map(|(h, _)| h);
    let mut help = Vec::new();
    if let Some(why) = &report.stopped {
        help.push(format!(
            "{why} stopped berth between batches: every replica is either old and serving or new and validated"
        ));
    }
    if !converged.is_empty() {
        help.push(format!("{} converged", converged.join(", ")));
    }
    if !rolled_back.is_empty() {
        help.push(format!(
            "the release failed and was rolled back on {} (the previous containers serve; a failed one is kept as `<name>.berth-failed` for its logs): fix the release in the repo",
            rolled_back.join(", ")
        ));
    }
    if !partial.is_empty() {
        help.push(format!(
            "{} is only partly updated: fix the error above",
            partial.join(", ")
        ));
    }
    if !untouched.is_empty() {
        help.push(format!(
            "nothing was changed on {}: fix the error above",
            untouched.join(", ")
        ));
    }
    if !unreachable.is_empty() {
        help.push(format!(
            "{} did not answer and was left as it was: bring it back",
            unreachable.join(", ")
        ));
    }
    let help = format!(
        "{}; then run `berth apply` again, which finishes what this run left",
        help.join("; ")
    );
    (summary, Error::of(problems).with_help(help))
}

/// Another run holds the lock of `held`'s hosts.
fn lock_held(held: &[HeldLock]) -> Error {
    let problems = held
        .iter()
        .map(|h| {
            format!(
                "host `{}`: the run lock is held by another berth run ({})",
                h.host, h.holder
            )
        })
        .collect();
    Error::of(problems)
        .reached(Reach::NotChanged)
        .with_help("wait for that run to finish, or raise --lock-timeout; a killed run releases its lock at once")
}

fn status(s: &Status, show_labels: bool) {
    let mut out = String::new();
    for h in &s.hosts {
        out.push_str(&format!("{}\n", h.host));
        if h.containers.is_empty() {
            out.push_str("  (no containers managed by berth)\n");
        }
        let mut rows = vec![[
            "NAME".to_string(),
            "IMAGE".to_string(),
            "STATE".to_string(),
            "HEALTH".to_string(),
            "REPO".to_string(),
        ]];
        for c in &h.containers {
            let sync = match c.sync {
                Sync::InSync => "in sync",
                Sync::Differs => "differs",
                Sync::NotInRepo => "not in repo",
            };
            rows.push([
                c.name.clone(),
                c.image.clone(),
                c.state.to_string(),
                c.health
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "-".into()),
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
            for c in &h.containers {
                out.push_str(&format!("  {}:\n", c.name));
                for (k, v) in &c.labels {
                    out.push_str(&format!("    {k} = {v}\n"));
                }
            }
        }
        out.push('\n');
    }
    for u in &s.unreachable {
        out.push_str(&format!("{}\n  ! unreachable: {}\n\n", u.host, u.error));
    }
    print!("{out}");
}

/// `--report` and `--metrics`, for plan and apply.
fn write_reports(outcome: &Outcome, code: u8, how: &Rendering) -> anyhow::Result<()> {
    if how.report.is_none() && how.metrics.is_none() {
        return Ok(());
    }
    let (command, started) = (how.command, how.started);
    let report = match outcome {
        Outcome::Planned(p) => RunReport::new(command, &p.plan, None, started, code),
        Outcome::Applied(ApplyOutcome::LockHeld {
            project,
            commit,
            held,
        }) => RunReport::lock_held(command, project, commit.as_deref(), held, started, code),
        Outcome::Applied(ApplyOutcome::NothingToDo { plan }) => {
            RunReport::new(command, plan, None, started, code)
        }
        Outcome::Applied(ApplyOutcome::Applied { plan, report }) => {
            RunReport::new(command, plan, Some(report), started, code)
        }
        Outcome::Validated(_) | Outcome::Status(_) => return Ok(()),
    };
    if let Some(path) = &how.report {
        write_atomic(path, &(report.to_json() + "\n"))?;
    }
    if let Some(path) = &how.metrics {
        write_atomic(path, &report.to_prometheus())?;
    }
    Ok(())
}

/// Writes an error the one way every error is written (see [`Error::render`]).
pub fn error(e: &Error) {
    let _ = std::io::stderr().lock().write_all(e.render().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link cut to one host mid-release: the others converged, and the
    /// summary and `help:` say so host by host; a release rolled back and a
    /// host never reached read apart from it.
    #[test]
    fn an_incomplete_apply_says_what_became_of_each_host() {
        use crate::apply::{HostOutcome, HostReport};
        let host = |name: &str, outcome: HostOutcome, error: Option<&str>| HostReport {
            host: name.into(),
            steps: Vec::new(),
            seconds: 0.0,
            error: error.map(str::to_string),
            outcome,
        };
        let mut plan = Plan {
            format_version: crate::plan::PLAN_FORMAT_VERSION,
            project: "p".into(),
            commit: None,
            hosts: Vec::new(),
            unreachable: Vec::new(),
            environment: Vec::new(),
            rollouts: Vec::new(),
            swarms: Vec::new(),
        };
        let report = ApplyReport {
            hosts: vec![
                host("edge-1", HostOutcome::Converged, None),
                host("edge-2", HostOutcome::Converged, None),
                host(
                    "edge-3",
                    HostOutcome::Unreachable,
                    Some("host `edge-3` stopped answering during the replace of `rel-site-3` (rel/site replica 3); it was dropped from this run and its containers are left as they are: no answer from the Docker Engine"),
                ),
            ],
            rollouts: Vec::new(),
            stopped: None,
        };
        let (summary, error) = incomplete(&plan, &report);
        insta::assert_snapshot!(format!("{summary}\n{}", error.render()));
        plan.unreachable.push(crate::plan::UnreachableHost {
            host: "edge-4".into(),
            error: "host `edge-4` (root@10.77.0.14:22): cannot reach `10.77.0.14`".into(),
        });
        let report = ApplyReport {
            hosts: vec![
                host("edge-1", HostOutcome::RolledBack, Some("`rel-site-1` rolled back: another replica of `rel/site` failed")),
                host("edge-2", HostOutcome::RolledBack, Some("host `edge-2`: replace of `rel-site-2` (rel/site replica 2) failed: healthcheck reports unhealthy")),
                host("edge-3", HostOutcome::Untouched, Some("`rel-site-3` not rolled out: `rel/db` failed before it")),
            ],
            rollouts: Vec::new(),
            stopped: None,
        };
        let (summary, error) = incomplete(&plan, &report);
        insta::assert_snapshot!(format!("{summary}\n{}", error.render()));
    }

    #[test]
    fn a_held_lock_says_nothing_changed_then_what_to_do() {
        let held = [HeldLock {
            host: "edge-1".into(),
            holder: "runner=ci-7 pid=4242 started=2026-11-29T21:00:00Z commit=0123456789ab".into(),
        }];
        insta::assert_snapshot!(lock_held(&held).render());
    }
}
