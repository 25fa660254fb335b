//! End-to-end tests of berth against the real test bed: three hosts, each
//! its own Docker Engine behind its own sshd, a local registry with test
//! images (`tests/bed/testbed.sh`).
//!
//! Every test here begins with `let bed = &Bed::take();`, which brings the
//! bed up on first use and lets one test at a time hold it (see
//! `support/session.rs`), and works in a project of its own, cleaned off the
//! hosts before and after by `let _scope = bed.scope(project);`, mostly in a
//! repo from `bed.repo(project)` (a berth.yaml naming the three hosts). The
//! scenario helpers below serve more than one topic.

mod compose;
mod configs;
mod converge;
mod digests;
mod discovery;
mod drift;
mod faults;
mod image;
mod import;
mod lock;
mod plan_file;
mod report;
mod rollout;
mod secrets;
mod ssh;
mod swarm;
mod trust;
mod validate;
mod volumes;

use crate::support::{berth, Bed, Repo, Run, HOSTS};

/// A repo of two stacks on the bed: `web` (2 replicas on role=web hosts,
/// fixed port) and `jobs` (a global worker on role=worker hosts).
fn two_stack_repo(bed: &Bed, project: &str, port: u16) -> Repo {
    let repo = bed.repo(project);
    repo.write(
        "stacks/site/compose.yaml",
        &format!(
            "services:\n  web:\n    image: {img}\n    ports: [\"{port}:80\"]\n    environment:\n      GREETING: hello\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.labels.role == web]\n",
            img = bed.get("BED_WEB_V1")
        ),
    );
    repo.write(
        "stacks/batch/compose.yaml",
        &format!(
            "services:\n  worker:\n    image: {img}\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n      placement:\n        constraints: [\"node.labels.role == worker\"]\n",
            img = bed.get("BED_WORKER")
        ),
    );
    repo.commit("two stacks");
    repo
}

/// `berth <command> --repo <repo> <extra>...`, run inside the repo.
fn berth_in(repo: &Repo, command: &str, extra: &[&str]) -> Run {
    let path = repo.path().display().to_string();
    let mut args = vec![command, "--repo", path.as_str()];
    args.extend_from_slice(extra);
    berth(repo.path(), &args)
}

fn apply(repo: &Repo, extra: &[&str]) -> Run {
    berth_in(repo, "apply", extra)
}

fn plan(repo: &Repo, extra: &[&str]) -> Run {
    berth_in(repo, "plan", extra)
}

/// `docker events` of one container on one host: (unix nanos, action).
fn events(bed: &Bed, host: &str, id: &str, since: u64) -> Vec<(u128, String)> {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 1)
        .unwrap_or_default();
    bed.docker_ok(
        host,
        &[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            &format!("container={id}"),
            "--format",
            "{{.TimeNano}} {{.Action}}",
        ],
    )
    .lines()
    .filter_map(|l| {
        let (t, a) = l.split_once(' ')?;
        Some((t.parse().ok()?, a.to_string()))
    })
    .collect()
}

/// name -> id of the project's containers on every host.
fn container_ids(bed: &Bed, project: &str) -> std::collections::BTreeMap<String, String> {
    HOSTS
        .iter()
        .flat_map(|h| bed.containers(h, project))
        .map(|(name, c)| (name, c.id))
        .collect()
}
