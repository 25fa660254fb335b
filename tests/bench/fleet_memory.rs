//! The planner and the scheduler at fleet scale, without SSH or Docker:
//! `berth plan`, a no-op `berth apply` and an update of every service, run
//! through the real ops (repo loading, fleet, plan, rollout schedule, run
//! lock, report) against in-memory engines that answer each Docker API call
//! after a set latency. Built only with the `bench-memory` feature (see
//! `tests/bench/README.md`, `fleet_memory.sh`); a default build of berth has
//! no in-memory hosts.
//!
//! Settings, from the environment: `HOSTS` (200), `SERVICES` per host (5,
//! each `deploy.mode: global`), `LATENCY_MS` per Docker API call (5),
//! `CONNECT_MS` for a connection (4 round trips: 20), `RUNS` (5),
//! `PARALLEL` (berth's `settings.parallel`; default: berth's own).
//! Prints wall time and the process's peak resident memory (`VmHWM`, reset
//! before each figure) per figure, medians over the runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth::hosts::memory::MemoryEngine;
use berth::ops::{self, ApplyOptions, ApplyOutcome, HostOptions, LoadOptions, PlanOptions};
use berth::source::{GitSsh, SourceOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn env_num(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => Ok(v
            .parse()
            .map_err(|e| format!("{name}={v}: not a number: {e}"))?),
        Err(_) => Ok(default),
    }
}

/// `berth.yaml` and one stack of `services` global services on `hosts`
/// hosts, every image at `tag`. Digests are not resolved (no registry).
fn write_repo(dir: &Path, hosts: u64, services: u64, tag: &str, parallel: u64) -> Result<()> {
    let mut yaml = String::from("project: fleet\nsettings:\n  resolve_from: none\n");
    if parallel > 0 {
        yaml.push_str(&format!("  parallel: {parallel}\n"));
    }
    yaml.push_str("hosts:\n");
    for h in 1..=hosts {
        // Never dialled: every host is served from memory.
        yaml.push_str(&format!(
            "  - {{name: edge-{h:03}, address: 192.0.2.{}}}\n",
            h % 250 + 1
        ));
    }
    std::fs::write(dir.join("berth.yaml"), yaml)?;
    let mut compose = String::from("services:\n");
    for s in 1..=services {
        compose.push_str(&format!(
            "  s{s:02}:\n    image: registry.example/app/s{s:02}:{tag}\n    deploy:\n      mode: global\n"
        ));
    }
    std::fs::create_dir_all(dir.join("stacks/app"))?;
    std::fs::write(dir.join("stacks/app/compose.yaml"), compose)?;
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// The process's peak resident set since the last [`reset_peak`], in KiB.
fn peak_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("VmHWM without a value")?
        .parse()?)
}

/// Resets the peak resident set to the current one (Linux: `5` to
/// `/proc/self/clear_refs`).
fn reset_peak() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One timed figure: wall seconds and peak MiB.
struct Sample {
    seconds: f64,
    peak_mib: f64,
}

async fn timed<F, T>(f: F) -> Result<(T, Sample)>
where
    F: std::future::Future<Output = T>,
{
    reset_peak()?;
    let started = Instant::now();
    let out = f.await;
    let seconds = started.elapsed().as_secs_f64();
    let peak_mib = peak_kib()? as f64 / 1024.0;
    Ok((out, Sample { seconds, peak_mib }))
}

#[tokio::main]
async fn main() -> Result<()> {
    let hosts = env_num("HOSTS", 200)?;
    let services = env_num("SERVICES", 5)?;
    let latency = Duration::from_millis(env_num("LATENCY_MS", 5)?);
    let connect = Duration::from_millis(env_num("CONNECT_MS", 20)?);
    let runs = env_num("RUNS", 5)?.max(1);
    let parallel = env_num("PARALLEL", 0)?;

    let repo = tempfile::tempdir()?;
    let runtime = tempfile::tempdir()?;
    write_repo(repo.path(), hosts, services, "1", parallel)?;
    git(repo.path(), &["init", "-q"])?;
    git(repo.path(), &["add", "-A"])?;
    git(repo.path(), &["commit", "-qm", "v1"])?;

    let engines: BTreeMap<String, MemoryEngine> = (1..=hosts)
        .map(|h| {
            let name = format!("edge-{h:03}");
            let engine = MemoryEngine::new(&name);
            engine.set_call_latency(latency);
            engine.enable_events();
            (name, engine)
        })
        .collect();
    if !berth::hosts::memory::serve(engines.clone(), connect) {
        return Err("hosts were served already".into());
    }

    let load = LoadOptions {
        source: SourceOptions {
            repo: repo.path().to_string_lossy().into_owned(),
            git_ref: None,
            cache_dir: runtime.path().join("cache"),
            ssh: GitSsh::default(),
        },
        trust: None,
        only_hosts: Vec::new(),
        profiles: Vec::new(),
    };
    let host_opts = HostOptions {
        known_hosts: None,
        identity_file: None,
        parallel: None,
        connect_timeout: None,
        ssh_config: None,
        runtime_dir: runtime.path().to_path_buf(),
        docker_config: None,
    };
    let plan_opts = PlanOptions {
        load: load.clone(),
        hosts: host_opts.clone(),
        save: None,
    };
    let apply_opts = ApplyOptions {
        load,
        hosts: host_opts,
        health_timeout: Duration::from_secs(60),
        lock_timeout: Duration::from_secs(30),
        key: Default::default(),
        allow_rewind: false,
        saved_plan: None,
        stop: Default::default(),
        allow_volume_move: false,
    };
    let apply = || async {
        match ops::apply(&apply_opts, |_| {}).await {
            Ok(ApplyOutcome::Applied { report, .. }) => {
                let failed = report.failed_hosts();
                match failed.first() {
                    None => Ok(report.changed()),
                    Some(h) => Err(format!(
                        "{} host(s) failed, first {}: {}",
                        failed.len(),
                        h.host,
                        h.error.as_deref().unwrap_or("")
                    )),
                }
            }
            Ok(ApplyOutcome::NothingToDo { .. }) => Ok(0),
            Ok(ApplyOutcome::LockHeld { .. }) => Err("a run lock was held".into()),
            Err(e) => Err(format!("{e}")),
        }
    };

    let containers = hosts * services;
    let (changed, first) = timed(apply()).await?;
    let changed = changed?;
    if changed as u64 != containers {
        return Err(format!("first converge changed {changed}, expected {containers}").into());
    }

    let (mut plans, mut noops, mut updates) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let (planned, s) = timed(ops::plan(&plan_opts)).await?;
        let planned = planned.map_err(|e| format!("plan: {e}"))?;
        if !planned.plan.is_empty() || !planned.plan.unreachable.is_empty() {
            return Err("the plan of a converged fleet is not empty".into());
        }
        plans.push(s);
        let (changed, s) = timed(apply()).await?;
        if changed? != 0 {
            return Err("a no-op apply changed something".into());
        }
        noops.push(s);
        // Every service to a new tag: the scheduler's whole rollout.
        let tag = if run % 2 == 0 { "2" } else { "1" };
        write_repo(repo.path(), hosts, services, tag, parallel)?;
        git(repo.path(), &["commit", "-qam", tag])?;
        let (changed, s) = timed(apply()).await?;
        let changed = changed?;
        if changed as u64 != containers {
            return Err(format!("update changed {changed}, expected {containers}").into());
        }
        updates.push(s);
    }

    let row = |name: &str, samples: &[Sample]| {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.1} |",
            median(samples.iter().map(|s| s.seconds).collect()),
            samples
                .iter()
                .map(|s| s.seconds)
                .fold(f64::INFINITY, f64::min),
            samples.iter().map(|s| s.seconds).fold(0.0, f64::max),
            median(samples.iter().map(|s| s.peak_mib).collect()),
        );
    };
    println!(
        "in-memory fleet: {hosts} hosts x {services} services ({containers} containers), \
         {} ms per Docker API call, {} ms per connection, parallel {}, {runs} run(s), nproc {}",
        latency.as_millis(),
        connect.as_millis(),
        if parallel > 0 {
            parallel.to_string()
        } else {
            "berth's default".into()
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "first converge: {:.3} s, peak {:.1} MiB",
        first.seconds, first.peak_mib
    );
    println!("| figure | median s | min s | max s | peak RSS MiB (median) |");
    println!("|---|---|---|---|---|");
    row("plan", &plans);
    row("no-op apply", &noops);
    row("update all", &updates);
    Ok(())
}
