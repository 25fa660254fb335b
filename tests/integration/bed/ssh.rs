//! Reaching hosts over SSH: an unreachable host fails the run while the
//! others converge, a changed host key is refused, and the user's ssh
//! config reaches a host only through its bastion.

use super::apply;
use crate::support::{berth, expect_code, Bed, Failed, Repo};

/// A repo of one stack: a worker on every host.
fn global_worker(bed: &Bed, project: &str) -> Repo {
    let repo = bed.repo(project);
    repo.write(
        "stacks/all/compose.yaml",
        &format!(
            "services:\n  worker:\n    image: {img}\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n",
            img = bed.get("BED_WORKER")
        ),
    );
    repo.commit("global worker");
    repo
}

#[test]
fn unreachable_host_fails_run_others_converge() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-down";
    let _scope = bed.scope(project);
    let repo = global_worker(bed, project);
    bed.control("sshd-stop", "edge-3");
    let run = apply(&repo, &[]);
    bed.control("sshd-start", "edge-3");
    expect_code(&run, 1);
    check!(
        run.stderr.contains("edge-3"),
        "error does not name the host\n{run}"
    );
    // Only edge-3 is in error; the help says what became of every host.
    check!(
        !run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .any(|l| l.contains("`edge-1`") || l.contains("`edge-2`"))
            && run.stderr.contains("help: `edge-1`, `edge-2` converged"),
        "{run}"
    );
    for host in ["edge-1", "edge-2"] {
        check!(
            bed.containers(host, project)
                .get("all-worker-1")
                .map(|c| c.state.as_str())
                == Some("running"),
            "{host} did not converge\n{run}"
        );
    }
    check!(
        bed.containers("edge-3", project).is_empty(),
        "edge-3 was changed while unreachable"
    );
    // Back up: the next run converges it.
    expect_code(&apply(&repo, &[]), 0);
    check!(
        bed.containers("edge-3", project)
            .contains_key("all-worker-1"),
        "edge-3 not converged after restart"
    );
    Ok(())
}

#[test]
fn host_key_mismatch_is_refused() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-hostkey";
    let _scope = bed.scope(project);
    let repo = global_worker(bed, project);
    let wrong = bed.get("BED_KNOWN_HOSTS_WRONG");
    let run = apply(&repo, &["--known-hosts", &wrong]);
    expect_code(&run, 1);
    check!(run.stderr.contains("edge-3"), "{run}");
    check!(
        run.stderr.contains("host key"),
        "error does not say the host key is wrong\n{run}"
    );
    check!(
        bed.containers("edge-3", project).is_empty(),
        "edge-3 changed despite a bad host key"
    );
    check!(
        bed.containers("edge-1", project)
            .contains_key("all-worker-1"),
        "edge-1 did not converge"
    );
    Ok(())
}

/// Lifts `testbed.sh isolate HOST` when dropped, so a failing test leaves
/// the host reachable for the next one.
struct Isolated<'a> {
    bed: &'a Bed,
    host: &'static str,
}

impl<'a> Isolated<'a> {
    fn new(bed: &'a Bed, host: &'static str) -> Isolated<'a> {
        bed.control("isolate", host);
        Isolated { bed, host }
    }
}

impl Drop for Isolated<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.bed.script)
            .args(["unisolate", self.host])
            .stdin(std::process::Stdio::null())
            .output();
    }
}

#[test]
fn ssh_config_reaches_a_host_only_through_a_bastion() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-jump";
    let _scope = bed.scope(project);
    // The user's ssh config: `hidden-edge` is edge-2, reached through the
    // bastion `jump`; only the bastion names a user (the other falls back
    // to berth's default, root); keys and known_hosts come from here too.
    let ssh_config = format!(
        "Host hidden-edge\n  HostName {edge2}\n  ProxyJump jump\n\
         Host jump\n  HostName {bastion}\n  User root\n\
         Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n",
        edge2 = bed.addr("edge-2"),
        bastion = bed.get("BED_BASTION_ADDR"),
        key = bed.get("BED_KEY"),
        known = bed.get("BED_KNOWN_HOSTS"),
    );
    let inventory = |edge2: &str, settings: &str| {
        format!(
            "project: {project}\n\
             settings:\n  known_hosts: {kh}\n  connect_timeout: 5s\n{insecure}{settings}\
             hosts:\n\
             \x20 - name: edge-1\n    address: {a1}\n    identity_file: {key}\n    secrets_dir: {s1}\n\
             \x20 - name: edge-2\n    address: {edge2}\n    secrets_dir: {s2}\n",
            kh = bed.get("BED_KNOWN_HOSTS"),
            insecure = bed.insecure_registries(),
            a1 = bed.addr("edge-1"),
            key = bed.get("BED_KEY"),
            s1 = bed.secrets_dir("edge-1"),
            s2 = bed.secrets_dir("edge-2"),
        )
    };
    let repo = Repo::new();
    repo.write("ssh/config", &ssh_config);
    // A relative path is relative to the repo root.
    repo.write(
        "berth.yaml",
        &inventory("hidden-edge", "  ssh_config: ssh/config\n"),
    );
    repo.write(
        "stacks/all/compose.yaml",
        &format!(
            "services:\n  worker:\n    image: {img}\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n",
            img = bed.get("BED_WORKER")
        ),
    );
    repo.commit("edge-2 behind a bastion");

    let isolated = Isolated::new(bed, "edge-2");
    check!(
        !bed.ssh("edge-2", "true").status.success(),
        "edge-2's sshd still answers the runner: the isolation does not hold"
    );

    // The bastion's host key is checked too, against berth's known_hosts
    // (it overrides the config's, on the jump as on the host).
    let wrong = bed.get("BED_KNOWN_HOSTS_BASTION_WRONG");
    let run = apply(&repo, &["--known-hosts", &wrong]);
    expect_code(&run, 1);
    check!(run.stderr.contains("host `edge-2`"), "{run}");
    check!(
        run.stderr.contains("jump host `jump`") && run.stderr.contains("host key"),
        "error does not say the bastion's host key is wrong\n{run}"
    );
    check!(
        bed.containers("edge-2", project).is_empty(),
        "edge-2 changed through a bastion with a wrong host key"
    );

    // `--repo .`: the repo-relative ssh config path is relative too.
    let run = berth(repo.path(), &["plan", "--repo", "."]);
    expect_code(&run, 0);
    check!(
        run.stdout.contains("edge-2") && run.stdout.contains("create"),
        "plan does not create on edge-2\n{run}"
    );
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        check!(
            bed.containers(host, project)
                .get("all-worker-1")
                .map(|c| c.state.as_str())
                == Some("running"),
            "{host} did not converge\n{run}"
        );
    }
    let before = bed.containers("edge-2", project);
    let run = apply(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");
    check!(
        bed.containers("edge-2", project) == before,
        "a no-op apply changed edge-2"
    );

    // Without the ssh config the host's own address is all there is, and
    // the runner cannot reach it: the path above went through the bastion.
    repo.write("berth.yaml", &inventory(&bed.addr("edge-2"), ""));
    repo.commit("no ssh config");
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("host `edge-2`"),
        "error does not name the host\n{run}"
    );
    drop(isolated);
    Ok(())
}
