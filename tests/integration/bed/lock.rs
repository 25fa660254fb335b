//! The run lock on each host: concurrent applies take turns, and a killed
//! lock holder does not block the next run.

use super::two_stack_repo;
use crate::support::{berth, berth_spawn, expect_code, finish, Bed, Failed, HOSTS};

#[test]
fn concurrent_applies_take_turns() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-lock";
    let _scope = bed.scope(project);
    let repo = two_stack_repo(bed, project, 18087);
    let path = repo.path().display().to_string();
    let args = ["apply", "--repo", path.as_str(), "--lock-timeout", "60"];
    let first = berth_spawn(repo.path(), &args);
    let second = berth_spawn(repo.path(), &args);
    let runs = [
        finish(first, "berth apply (1)"),
        finish(second, "berth apply (2)"),
    ];
    for run in &runs {
        expect_code(run, 0);
    }
    let applied = runs
        .iter()
        .filter(|r| r.stdout.contains("Apply complete: 3"))
        .count();
    let waited = runs
        .iter()
        .filter(|r| {
            r.stdout.contains("No changes.")
                && r.stderr.contains("for the run lock, held by runner=")
        })
        .count();
    check!(
        applied == 1 && waited == 1,
        "expected one run to apply and the other to wait and find nothing to do:\n{}\n{}",
        runs[0],
        runs[1]
    );
    let total: usize = HOSTS.iter().map(|h| bed.containers(h, project).len()).sum();
    check!(total == 3, "expected 3 containers, found {total}");
    Ok(())
}

#[test]
fn killed_lock_holder_does_not_block() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-lockkill";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let compose = |img: &str, extra: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n{extra}    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n"
        )
    };
    // A release whose health check never answers stays `starting`: the
    // first run waits on it, holding the lock, until it is killed (one that
    // turns unhealthy would end that run as soon as the engine says so).
    let web = bed.get("BED_WEB_V1");
    repo.write(
        "stacks/hold/compose.yaml",
        &compose(
            &web,
            "    healthcheck:\n      test: [\"CMD\", \"sleep\", \"600\"]\n      interval: 600s\n      timeout: 600s\n",
        ),
    );
    repo.commit("bad");
    let path = repo.path().display().to_string();
    let mut holder = berth_spawn(
        repo.path(),
        &["apply", "--repo", &path, "--health-timeout", "120"],
    );
    // Wait until its container exists: it then holds the lock and waits for health.
    let started = std::time::Instant::now();
    while bed.containers("edge-1", project).is_empty() && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let holder_pid = holder.id();
    if bed.containers("edge-1", project).is_empty() {
        let _ = holder.kill();
        let _ = holder.wait();
        return Err("first run never created its container".into());
    }
    // A run now must wait for it, and gives up naming the holder.
    let report = repo.path().join("report.json");
    let report_arg = report.display().to_string();
    let run = berth(
        repo.path(),
        &[
            "apply",
            "--repo",
            &path,
            "--lock-timeout",
            "1",
            "--report",
            &report_arg,
        ],
    );
    let _ = holder.kill(); // SIGKILL: no cleanup runs
    let _ = holder.wait();
    expect_code(&run, 3);
    check!(
        run.stderr
            .contains("host `edge-1`: the run lock is held by another berth run (runner=")
            && run.stderr.contains(&format!("pid={holder_pid}")),
        "lock error does not name the holder\n{run}"
    );
    check!(run.stderr.contains("no host was changed"), "{run}");
    // The report says so too, for the timer or CI job that reads it.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&report).map_err(|e| format!("no report after exit 3: {e}"))?,
    )?;
    check!(
        json["outcome"] == "lock_held"
            && json["exit_code"] == 3
            && json["hosts"][0]["host"] == "edge-1"
            && json["hosts"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("pid={holder_pid}"))),
        "the report does not say the lock was held: {json:#}"
    );
    repo.write("stacks/hold/compose.yaml", &compose(&web, ""));
    repo.commit("good");
    let run = berth(
        repo.path(),
        &["apply", "--repo", &path, "--lock-timeout", "20"],
    );
    expect_code(&run, 0);
    let after = bed.containers("edge-1", project);
    check!(
        after.len() == 1
            && after
                .get("hold-web-1")
                .is_some_and(|c| c.image == bed.get("BED_WEB_V1")),
        "expected one v1 container after the killed run: {after:?}\n{run}"
    );
    Ok(())
}
