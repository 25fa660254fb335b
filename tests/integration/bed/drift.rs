//! What changed on a host behind berth's back shows in `plan` and
//! `status`, and the next apply heals it.

use super::{apply, plan, two_stack_repo};
use crate::support::{berth, expect_code, Bed, Failed};

#[test]
fn drift_is_planned_then_healed() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-drift";
    let _scope = bed.scope(project);
    let repo = two_stack_repo(bed, project, 18084);
    expect_code(&apply(&repo, &[]), 0);
    // By hand: stop the worker, remove one web replica.
    bed.docker_ok("edge-3", &["stop", "-t", "1", "batch-worker-1"]);
    let web_host = if bed.containers("edge-1", project).contains_key("site-web-1") {
        "edge-1"
    } else {
        "edge-2"
    };
    bed.docker_ok(web_host, &["rm", "-f", "site-web-1"]);

    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout.contains("+ site/web.1") && run.stdout.contains("[drift]"),
        "{run}"
    );
    check!(
        run.stdout.contains("~ batch/worker.1") && run.stdout.contains("exited"),
        "{run}"
    );
    check!(run.stdout.contains("repair drift"), "{run}");

    expect_code(&apply(&repo, &[]), 0);
    check!(
        bed.containers(web_host, project)
            .get("site-web-1")
            .map(|c| c.state.as_str())
            == Some("running"),
        "site-web-1 not restored on {web_host}"
    );
    check!(
        bed.containers("edge-3", project)
            .get("batch-worker-1")
            .map(|c| c.state.as_str())
            == Some("running"),
        "worker not restarted"
    );
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);

    // Edited in place by hand: the plan names the field that drifted.
    bed.docker_ok(
        "edge-3",
        &[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "batch-worker-1",
        ],
    );
    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout
            .contains("~ batch/worker.1 replace [drift] (resources.memory changed on the host")
            && run
                .stdout
                .contains("~ resources.memory = 67108864 -> unset"),
        "{run}"
    );
    expect_code(&apply(&repo, &[]), 0);
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);
    Ok(())
}

#[test]
fn status_shows_containers_and_sync() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-status";
    let _scope = bed.scope(project);
    let repo = two_stack_repo(bed, project, 18086);
    expect_code(&apply(&repo, &[]), 0);
    let path = repo.path().display().to_string();
    let run = berth(repo.path(), &["status", "--repo", &path]);
    expect_code(&run, 0);
    check!(
        run.stdout.contains("edge-3") && run.stdout.contains("batch-worker-1"),
        "{run}"
    );
    check!(run.stdout.contains(&bed.get("BED_WORKER")), "{run}");
    check!(
        run.stdout.contains("running") && run.stdout.contains("in sync"),
        "{run}"
    );
    check!(
        run.stdout.contains("healthy"),
        "web replicas should show their health\n{run}"
    );
    let run = berth(repo.path(), &["status", "--repo", &path, "--labels"]);
    expect_code(&run, 0);
    let commit = repo.git(&["rev-parse", "HEAD"]);
    for label in [
        format!("berth.commit = {}", commit.trim()),
        "berth.commit-author = Berth Test <test@berth.invalid>".to_string(),
        format!("berth.origin = {path}"),
        "berth.runner = ".to_string(),
        "berth.applied-at = ".to_string(),
        format!("berth.version = {}", env!("CARGO_PKG_VERSION")),
    ] {
        check!(
            run.stdout.contains(&label),
            "status --labels lacks `{label}`\n{run}"
        );
    }
    Ok(())
}
