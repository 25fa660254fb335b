//! Faults on purpose, injected during a real apply with the bed's fault
//! verbs: the link to a host cut silently, its sshd or Docker Engine
//! restarted, the registry down, berth stopped by SIGTERM. Each test
//! asserts the run ends in bounded time with the right exit code and
//! report, no plaintext secret in any output, every slot whole on every
//! host, and that the next run converges (and a third is a no-op).
//!
//! Waits are kept short by the test's berth.yaml (`keepalive: 1s`,
//! `docker_timeout: 10s`), and every fault is undone by a guard, so a
//! failing test never leaves the bed broken for the next one. The slow
//! faults that need only one host (SIGTERM, disk full, engine restart) run
//! at once, each on its own host with a berth.yaml naming only that host.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{apply, plan};
use crate::support::gpg::Gpg;
use crate::support::{berth_spawn, expect_code, finish, Bed, Failed, Repo, Run, HOSTS};

/// A fault injected with `testbed.sh VERB [HOST]`, undone with `undo` when
/// dropped (idempotent verbs: undoing twice is harmless).
struct Fault {
    script: PathBuf,
    undo: Vec<String>,
}

impl Fault {
    fn inject(bed: &Bed, verb: &str, undo: &str, host: Option<&str>) -> Fault {
        let args: Vec<String> = std::iter::once(verb.to_string())
            .chain(host.map(str::to_string))
            .collect();
        let undo = std::iter::once(undo.to_string())
            .chain(host.map(str::to_string))
            .collect();
        let fault = Fault {
            script: bed.script.clone(),
            undo,
        };
        fault.run(&args);
        fault
    }

    fn run(&self, args: &[String]) {
        let out = std::process::Command::new("bash")
            .arg(&self.script)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run testbed.sh");
        assert!(
            out.status.success(),
            "testbed.sh {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Undoes the fault now (the guard then does nothing new).
    fn restore(&self) {
        self.run(&self.undo);
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.script)
            .args(&self.undo)
            .stdin(std::process::Stdio::null())
            .output();
    }
}

/// A project whose stack `rel` runs `web` on every host, one batch per
/// host, reading secret `db`; berth.yaml with short bounds.
struct Release {
    repo: Repo,
    _gpg: Gpg,
    key_file: PathBuf,
    secret: String,
    report: PathBuf,
    _dir: tempfile::TempDir,
}

impl Release {
    fn new(bed: &Bed, project: &str) -> Release {
        let gpg = Gpg::new();
        let runner = gpg.generate("Runner <runner@berth.invalid>");
        let dir = tempfile::tempdir().expect("temp dir");
        let key_file = gpg.export_secret(&runner, &dir.path().join("runner.asc"));
        let repo = bed.repo(project);
        repo.write(
            "berth.yaml",
            &bed.inventory(project).replace(
                "  connect_timeout: 5s\n",
                "  connect_timeout: 5s\n  keepalive: 1s\n  docker_timeout: 10s\n",
            ),
        );
        let secret = format!("fault-secret-{}", std::process::id());
        repo.write_bytes(
            "stacks/rel/secrets/db.asc",
            &gpg.encrypt(secret.as_bytes(), &[&runner]),
        );
        Release {
            repo,
            _gpg: gpg,
            key_file,
            secret,
            report: dir.path().join("report.json"),
            _dir: dir,
        }
    }

    /// Leaves only `host` in berth.yaml: the runs never reach the other
    /// hosts, so a fault on one of them (injected by another test at the
    /// same time) cannot touch these runs.
    fn only(self, host: &str) -> Release {
        let path = self.repo.path().join("berth.yaml");
        let text = std::fs::read_to_string(&path).expect("read berth.yaml");
        let mut kept = String::new();
        let mut skip = false;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("  - name: ") {
                skip = name != host;
            } else if !line.starts_with("    ") {
                skip = false;
            }
            if !skip {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        assert!(kept.contains(&format!("  - name: {host}\n")), "{kept}");
        self.repo.write("berth.yaml", &kept);
        self
    }

    /// Commits `image` as the release on every host, with `extra` in
    /// `update_config`.
    fn release(&self, image: &str, extra: &str) {
        self.release_on(image, extra, "");
    }

    /// As [`Release::release`], on the hosts `constraint` selects (none: all).
    fn release_on(&self, image: &str, extra: &str, constraint: &str) {
        let placement = if constraint.is_empty() {
            String::new()
        } else {
            format!("      placement:\n        constraints: [{constraint}]\n")
        };
        self.repo.write(
            "stacks/rel/compose.yaml",
            &format!(
                "services:\n  web:\n    image: {image}\n    stop_grace_period: 1s\n    secrets: [db]\n    deploy:\n      mode: global\n{placement}      update_config:\n        parallelism: 1\n{extra}secrets:\n  db:\n    file: ./secrets/db.asc\n"
            ),
        );
        self.repo.commit(image);
    }

    /// Commits `image` as the release of `web` as three replicas on
    /// `host` ([`SIGTERM_SLOTS`]), one batch each, with `extra` in
    /// `update_config`.
    fn release_replicas(&self, image: &str, extra: &str, host: &str) {
        self.repo.write(
            "stacks/rel/compose.yaml",
            &format!(
                "services:\n  web:\n    image: {image}\n    stop_grace_period: 1s\n    secrets: [db]\n    deploy:\n      replicas: {n}\n      placement:\n        constraints: [node.hostname == {host}]\n      update_config:\n        parallelism: 1\n{extra}secrets:\n  db:\n    file: ./secrets/db.asc\n",
                n = SIGTERM_SLOTS.len()
            ),
        );
        self.repo.commit(image);
    }

    /// The next run converges on `image`: every slot of
    /// [`Release::release_replicas`] on `host` runs it, nothing else is
    /// there, and a fresh plan is empty.
    fn converges_replicas(
        &self,
        bed: &Bed,
        project: &str,
        image: &str,
        host: &str,
    ) -> Result<(), Failed> {
        let run = self.apply();
        self.check_quiet(&run)?;
        expect_code(&run, 0);
        let want: Vec<_> = SIGTERM_SLOTS
            .iter()
            .map(|n| (n.to_string(), image.to_string(), "running".to_string()))
            .collect();
        let s = slots(bed, host, project);
        check!(s == want, "{host} after the next run: {s:?}\n{run}");
        expect_code(&plan(&self.repo, &["--detailed-exitcode"]), 0);
        Ok(())
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--key-file".into(),
            self.key_file.display().to_string(),
            "--report".into(),
            self.report.display().to_string(),
        ]
    }

    fn apply(&self) -> Run {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let run = apply(&self.repo, &args);
        eprintln!("apply: exit {} in {:?}", run.code, started.elapsed());
        run
    }

    fn spawn(&self) -> Background {
        let path = self.repo.path().display().to_string();
        let mut args = vec!["apply".to_string(), "--repo".into(), path];
        args.extend(self.args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Background(Some(berth_spawn(self.repo.path(), &args)))
    }

    fn report(&self) -> Result<serde_json::Value, Failed> {
        let text = std::fs::read_to_string(&self.report)
            .map_err(|e| format!("no report at {}: {e}", self.report.display()))?;
        check!(!text.contains(&self.secret), "the report shows the secret");
        serde_json::from_str(&text).map_err(|e| format!("report: {e}").into())
    }

    /// The run showed no plaintext secret.
    fn check_quiet(&self, run: &Run) -> Result<(), Failed> {
        check!(
            !run.stdout.contains(&self.secret) && !run.stderr.contains(&self.secret),
            "the secret is in the output\n{run}"
        );
        Ok(())
    }

    /// The next run converges on `image` (every host of `hosts` one
    /// `rel-web-1`, running it), and a fresh plan is empty; with `third`, a
    /// third run is a no-op too.
    fn converges(
        &self,
        bed: &Bed,
        project: &str,
        image: &str,
        hosts: &[&str],
        third: bool,
    ) -> Result<(), Failed> {
        let run = self.apply();
        self.check_quiet(&run)?;
        expect_code(&run, 0);
        for host in hosts {
            let names = slots(bed, host, project);
            check!(
                names
                    == [(
                        "rel-web-1".to_string(),
                        image.to_string(),
                        "running".to_string()
                    )],
                "{host} after the next run: {names:?}\n{run}"
            );
        }
        if third {
            let again = self.apply();
            expect_code(&again, 0);
            check!(
                again.stdout.contains("No changes"),
                "the third run was not a no-op\n{again}"
            );
        }
        expect_code(&plan(&self.repo, &["--detailed-exitcode"]), 0);
        Ok(())
    }
}

/// A berth run in the background; killed if the test gives up on it.
struct Background(Option<std::process::Child>);

impl Background {
    fn finish(mut self, what: &str) -> Result<Run, Failed> {
        let child = self.0.take().ok_or("berth was already collected")?;
        Ok(finish(child, what))
    }

    /// Sends `signal` to berth.
    fn signal(&self, signal: libc::c_int) -> Result<(), Failed> {
        let child = self.0.as_ref().ok_or("berth was already collected")?;
        let pid = libc::pid_t::try_from(child.id()).map_err(|e| format!("pid: {e}"))?;
        // SAFETY: kill(2) of a child we started and have not reaped.
        unsafe { libc::kill(pid, signal) };
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `(name, image, state)` of the project's containers on `host`.
fn slots(bed: &Bed, host: &str, project: &str) -> Vec<(String, String, String)> {
    bed.containers(host, project)
        .into_iter()
        .map(|(name, c)| (name, c.image, c.state))
        .collect()
}

/// Every slot of `host` is whole: `rel-web-1` is running (old and serving,
/// or new and validated), or its old container waits as
/// `rel-web-1.berth-old` for the next run; never two running.
fn whole(bed: &Bed, host: &str, project: &str) -> Result<(), Failed> {
    let s = slots(bed, host, project);
    let running = s.iter().filter(|(_, _, st)| st == "running").count();
    let serving = s
        .iter()
        .any(|(n, _, st)| n == "rel-web-1" && st == "running");
    let kept = s.iter().any(|(n, _, _)| n == "rel-web-1.berth-old");
    check!(running <= 1 && (serving || kept), "{host}: {s:?}");
    Ok(())
}

/// Waits (up to 60 s) until `host` runs `image` as `rel-web-1`.
fn wait_for_image(bed: &Bed, host: &str, project: &str, image: &str) -> Result<(), Failed> {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if bed
            .containers(host, project)
            .get("rel-web-1")
            .is_some_and(|c| c.image == image && c.state == "running")
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{host} never ran {image}").into())
}

/// The report's `outcome` of each host, in host order.
fn outcomes(json: &serde_json::Value) -> Vec<String> {
    HOSTS
        .iter()
        .map(|h| {
            json["hosts"]
                .as_array()
                .and_then(|hs| hs.iter().find(|x| x["host"] == *h))
                .map(|x| x["outcome"].as_str().unwrap_or("-").to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Two hosts go dark mid-rollout, each its own way: the link to edge-3 is
/// cut silently (no RST: only the SSH keepalive notices), and edge-2's sshd
/// is restarted (its sessions cut, the SSH master dies). Both are dropped
/// with their slots whole; edge-1 keeps the release; no rollback.
#[test]
fn hosts_lost_mid_rollout_are_dropped_and_the_others_keep_the_release() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-hostlost";
    let _scope = bed.scope(project);
    let rel = Release::new(bed, project);
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));
    rel.release(&v1, "");
    expect_code(&rel.apply(), 0);
    rel.release(&v2, "        monitor: 1s\n");

    let started = Instant::now();
    let child = rel.spawn();
    // edge-1's new container is up and in its gate: cut the other two.
    wait_for_image(bed, "edge-1", project, &v2)?;
    let link = Fault::inject(bed, "link-drop", "link-restore", Some("edge-3"));
    let sshd = Fault::inject(bed, "sshd-restart", "sshd-start", Some("edge-2"));
    let run = child.finish("berth apply (edge-2 and edge-3 lost)")?;
    let took = started.elapsed();
    eprintln!("apply with two hosts lost: {took:?}");
    link.restore();
    drop(sshd);
    rel.check_quiet(&run)?;
    expect_code(&run, 1);
    // keepalive 1s x 3, the restore window (10 s), and the run's own work.
    check!(took < Duration::from_secs(45), "took {took:?}\n{run}");
    check!(
        run.stderr.contains("host `edge-2` stopped answering")
            && run.stderr.contains("host `edge-3` stopped answering")
            && run.stdout.contains("host(s): 1 converged, 2 unreachable")
            && run.stderr.contains("`edge-1` converged")
            && !run.stderr.contains("rolled back"),
        "{run}"
    );
    let json = rel.report()?;
    check!(
        outcomes(&json) == ["converged", "unreachable", "unreachable"]
            && json["rollouts"].as_array().is_some_and(|r| r.is_empty())
            && json["summary"]["unreachable"] == 2,
        "{json:#}"
    );
    let s = slots(bed, "edge-1", project);
    check!(
        s == [("rel-web-1".to_string(), v2.clone(), "running".to_string())],
        "edge-1 lost its good release: {s:?}"
    );
    whole(bed, "edge-2", project)?;
    whole(bed, "edge-3", project)?;
    rel.converges(bed, project, &v2, &HOSTS, true)
}

/// Three slow faults at once, each on its own host (and each run reaching
/// only its host): SIGTERM to berth mid-rollout on edge-1, edge-2's disk
/// full, edge-3's engine restarted mid-rollout. Each is checked in full;
/// together they take the time of the slowest.
#[test]
fn sigterm_a_full_disk_and_an_engine_restart_on_three_hosts_at_once() -> Result<(), Failed> {
    let bed = &Bed::take();
    // A bed made by an older testbed.sh gets edge-2's own file system here.
    bed_script(bed, &["disk-up"]);
    let bed: &Bed = bed;
    let (sigterm, disk, engine) = std::thread::scope(|s| {
        let sigterm = s.spawn(|| sigterm_mid_rollout_finishes_the_batch_and_writes_the_report(bed));
        let disk = s.spawn(|| a_full_disk_fails_its_host_and_the_old_container_keeps_serving(bed));
        let engine =
            s.spawn(|| an_engine_restarted_mid_rollout_leaves_the_old_container_serving(bed));
        (
            joined(sigterm.join()),
            joined(disk.join()),
            joined(engine.join()),
        )
    });
    match (sigterm, disk, engine) {
        (Ok(()), Ok(()), Ok(())) => Ok(()),
        (sigterm, disk, engine) => Err(format!(
            "SIGTERM on {SIGTERM_HOST}: {}\n\ndisk full on {DISK_HOST}: {}\n\nengine restarted on edge-3: {}",
            verdict(sigterm),
            verdict(disk),
            verdict(engine)
        )
        .into()),
    }
}

/// A scenario thread's result, its panic (a failed `assert!`) as a failure.
fn joined(result: std::thread::Result<Result<(), Failed>>) -> Result<(), Failed> {
    result.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_string());
        Err(text.into())
    })
}

fn verdict(result: Result<(), Failed>) -> String {
    match result {
        Ok(()) => "passed".to_string(),
        Err(e) => format!("FAILED: {e:?}"),
    }
}

/// The Docker Engine of the host being rolled out restarts while the new
/// container is gated: the old one serves again once the engine is back
/// (no slot left empty, no duplicate), the host is reported unreachable
/// for this run, and the next run converges.
fn an_engine_restarted_mid_rollout_leaves_the_old_container_serving(
    bed: &Bed,
) -> Result<(), Failed> {
    let project = "t-enginerestart";
    let _scope = bed.scope_on(project, &["edge-3"]);
    let rel = Release::new(bed, project).only("edge-3");
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));
    let edge3 = "node.hostname == edge-3";
    rel.release_on(&v1, "", edge3);
    expect_code(&rel.apply(), 0);
    // A long monitor: the restart lands inside the gate.
    rel.release_on(&v2, "        monitor: 8s\n", edge3);
    let started = Instant::now();
    let child = rel.spawn();
    wait_for_image(bed, "edge-3", project, &v2)?;
    let fault = Fault::inject(bed, "engine-restart", "engine-start", Some("edge-3"));
    let run = child.finish("berth apply (edge-3's engine restarted)")?;
    let took = started.elapsed();
    drop(fault);
    rel.check_quiet(&run)?;
    expect_code(&run, 1);
    check!(took < Duration::from_secs(45), "took {took:?}\n{run}");
    check!(
        run.stderr.contains("host `edge-3` stopped answering"),
        "{run}"
    );
    let json = rel.report()?;
    check!(outcomes(&json)[2] == "unreachable", "{json:#}");
    let s = slots(bed, "edge-3", project);
    let running: Vec<_> = s.iter().filter(|(_, _, st)| st == "running").collect();
    check!(
        running == [&("rel-web-1".to_string(), v1.clone(), "running".to_string())],
        "edge-3 should serve the old release again, once: {s:?}"
    );
    rel.converges(bed, project, &v2, &["edge-3"], false)
}

/// The registry is down for a new image: met where the plan resolves its
/// tag, and (without resolution) while the hosts pull it. Either way
/// nothing is replaced anywhere and the error names the registry and the
/// image.
#[test]
fn a_registry_down_during_pulls_replaces_nothing() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-registry";
    let _scope = bed.scope(project);
    let rel = Release::new(bed, project);
    let v1 = bed.get("BED_WEB_V1");
    rel.release(&v1, "");
    expect_code(&rel.apply(), 0);
    // A tag no host has: pushed from edge-1, then removed there.
    let registry = bed.get("BED_WEB_V2");
    let (repository, _) = registry.rsplit_once(':').ok_or("image without a tag")?;
    let fresh = format!("{repository}:fault-{}", std::process::id());
    // (Pulled first: on a bed just brought up, edge-1 may not hold v2 yet.)
    bed.docker_ok("edge-1", &["pull", &bed.get("BED_WEB_V2")]);
    bed.docker_ok("edge-1", &["tag", &bed.get("BED_WEB_V2"), &fresh]);
    bed.docker_ok("edge-1", &["push", &fresh]);
    bed.docker_ok("edge-1", &["rmi", &fresh]);

    let fault = Fault::inject(bed, "registry-stop", "registry-start", None);
    rel.release(&fresh, "");
    // Met first where the plan resolves the tag to its digest: the run ends
    // before any host is touched, naming the registry and the image.
    let started = Instant::now();
    let run = rel.apply();
    let took = started.elapsed();
    rel.check_quiet(&run)?;
    expect_code(&run, 1);
    check!(took < Duration::from_secs(30), "took {took:?}\n{run}");
    check!(
        run.stderr.contains("10.77.0.1:5000") && run.stderr.contains(&fresh),
        "{run}"
    );
    for host in HOSTS {
        let s = slots(bed, host, project);
        check!(
            s == [("rel-web-1".to_string(), v1.clone(), "running".to_string())],
            "{host} was changed: {s:?}"
        );
    }

    // Without resolution (`resolve_from: none`) the fault meets the pulls.
    let inventory = std::fs::read_to_string(rel.repo.path().join("berth.yaml"))?;
    rel.repo.write(
        "berth.yaml",
        &inventory.replace(
            "  keepalive: 1s\n",
            "  keepalive: 1s\n  resolve_from: none\n",
        ),
    );
    rel.repo.commit("resolve_from: none");
    let started = Instant::now();
    let run = rel.apply();
    let took = started.elapsed();
    rel.check_quiet(&run)?;
    expect_code(&run, 1);
    check!(took < Duration::from_secs(30), "took {took:?}\n{run}");
    check!(
        run.stderr.contains(&format!("cannot pull image `{fresh}`"))
            && run.stderr.contains("10.77.0.1:5000/v2/"),
        "{run}"
    );
    let json = rel.report()?;
    check!(
        outcomes(&json) == ["untouched", "untouched", "untouched"],
        "{json:#}"
    );
    for host in HOSTS {
        let s = slots(bed, host, project);
        check!(
            s == [("rel-web-1".to_string(), v1.clone(), "running".to_string())],
            "{host} was changed: {s:?}"
        );
    }
    fault.restore();
    rel.converges(bed, project, &fresh, &HOSTS, false)
}

/// The host of the SIGTERM scenario: three replicas there, one batch each,
/// stand in for three hosts, so the other hosts are free for other faults.
const SIGTERM_HOST: &str = "edge-1";

/// The SIGTERM scenario's slots: `rel-web-1` to `rel-web-3`.
const SIGTERM_SLOTS: [&str; 3] = ["rel-web-1", "rel-web-2", "rel-web-3"];

/// SIGTERM mid-rollout (systemd stopping the unit): the batch in flight
/// finishes, no new one starts, the report is written, exit 4; a second
/// signal ends berth at once, still leaving every slot whole. Three
/// replicas on one host, one batch each.
fn sigterm_mid_rollout_finishes_the_batch_and_writes_the_report(bed: &Bed) -> Result<(), Failed> {
    let project = "t-sigterm";
    let host = SIGTERM_HOST;
    let _scope = bed.scope_on(project, &[SIGTERM_HOST]);
    let rel = Release::new(bed, project).only(host);
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));
    rel.release_replicas(&v1, "", host);
    expect_code(&rel.apply(), 0);
    rel.release_replicas(&v2, "        monitor: 1s\n", host);

    let child = rel.spawn();
    wait_for_image(bed, host, project, &v2)?;
    child.signal(libc::SIGTERM)?;
    let run = child.finish("berth apply (SIGTERM)")?;
    rel.check_quiet(&run)?;
    expect_code(&run, 4);
    check!(
        run.stdout.contains("Apply stopped by SIGTERM") && run.stderr.contains("SIGTERM"),
        "{run}"
    );
    let json = rel.report()?;
    check!(
        json["outcome"] == "stopped" && json["exit_code"] == 4,
        "{json:#}"
    );
    let s = slots(bed, host, project);
    let image = |name: &str| {
        s.iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, image, _)| image.clone())
            .unwrap_or_default()
    };
    // Replica 1 passed before the signal; replica 3's batch never started.
    check!(
        image("rel-web-1") == v2 && image("rel-web-3") == v1,
        "{s:?}\n{run}"
    );
    let names: Vec<&str> = s.iter().map(|(n, _, _)| n.as_str()).collect();
    check!(
        names == SIGTERM_SLOTS && s.iter().all(|(_, _, st)| st == "running"),
        "{host} is not whole after SIGTERM: {s:?}"
    );
    rel.converges_replicas(bed, project, &v2, host)?;

    // Twice: berth ends at once (128 + 15), and the next run finishes.
    rel.release_replicas(&v1, "        monitor: 1s\n", host);
    let child = rel.spawn();
    wait_for_image(bed, host, project, &v1)?;
    child.signal(libc::SIGTERM)?;
    std::thread::sleep(Duration::from_millis(200));
    child.signal(libc::SIGTERM)?;
    let run = child.finish("berth apply (SIGTERM twice)")?;
    rel.check_quiet(&run)?;
    expect_code(&run, 143);
    let s = slots(bed, host, project);
    for slot in SIGTERM_SLOTS {
        // Serving, or its old container kept for the next run; never two.
        let old = format!("{slot}.berth-old");
        let of: Vec<_> = s
            .iter()
            .filter(|(n, _, _)| n == slot || *n == old)
            .collect();
        let running = of.iter().filter(|(_, _, st)| st == "running").count();
        check!(
            running <= 1 && !of.is_empty(),
            "{slot} is not whole after two signals: {s:?}"
        );
    }
    rel.converges_replicas(bed, project, &v1, host)
}

/// The host whose engine data is a small file system of its own
/// (`testbed.sh fill-disk`).
const DISK_HOST: &str = "edge-2";

/// `testbed.sh ARGS...`, which must succeed.
fn bed_script(bed: &Bed, args: &[&str]) {
    let out = std::process::Command::new("bash")
        .arg(&bed.script)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run testbed.sh");
    assert!(
        out.status.success(),
        "testbed.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// edge-2's disk is full (its engine data: `testbed.sh fill-disk`), first
/// when a new image must be pulled, then when the new container must be
/// made from an image it holds. Each run ends in bounded time with exit 1,
/// naming the host and the engine's own message; the old container keeps
/// serving, the same one; with room again the next run converges.
fn a_full_disk_fails_its_host_and_the_old_container_keeps_serving(bed: &Bed) -> Result<(), Failed> {
    let project = "t-diskfull";
    let _scope = bed.scope_on(project, &[DISK_HOST]);
    let rel = Release::new(bed, project).only(DISK_HOST);
    let only = format!("node.hostname == {DISK_HOST}");
    let v1 = bed.get("BED_WEB_V1");
    rel.release_on(&v1, "", &only);
    expect_code(&rel.apply(), 0);
    let old = bed
        .containers(DISK_HOST, project)
        .get("rel-web-1")
        .map(|c| c.id.clone())
        .ok_or("no rel-web-1 after the first run")?;
    // An image no host holds (v2 with a label of its own: its own config,
    // so pulling it writes even where v2's layers are): built and pushed
    // from edge-1, then removed there.
    let v2 = bed.get("BED_WEB_V2");
    let (repository, _) = v2.rsplit_once(':').ok_or("image without a tag")?;
    let fresh = format!("{repository}:disk-{}", std::process::id());
    bed.docker_ok("edge-1", &["pull", &v2]);
    let context = tempfile::tempdir()?;
    std::fs::write(context.path().join("Dockerfile"), format!("FROM {v2}\n"))?;
    let label = format!("berth.test.disk={}", std::process::id());
    let path = context.path().display().to_string();
    bed.docker_ok(
        "edge-1",
        &["build", "-q", "--label", &label, "-t", &fresh, &path],
    );
    bed.docker_ok("edge-1", &["push", &fresh]);
    bed.docker_ok("edge-1", &["rmi", &fresh]);
    rel.release_on(&fresh, "", &only);

    // The old container serves: the same one, running, alone.
    let serves = |run: &Run| -> Result<(), Failed> {
        let s = bed.containers(DISK_HOST, project);
        let names: Vec<_> = s
            .iter()
            .map(|(n, c)| (n.clone(), c.state.clone()))
            .collect();
        check!(
            s.get("rel-web-1")
                .is_some_and(|c| c.id == old && c.state == "running" && c.image == v1)
                && s.values().filter(|c| c.state == "running").count() == 1,
            "{DISK_HOST} does not serve the old container: {names:?}\n{run}"
        );
        Ok(())
    };
    // One failed run on the full disk: `step` is what the engine was doing.
    let fails = |step: &str| -> Result<(), Failed> {
        let started = Instant::now();
        let run = rel.apply();
        let took = started.elapsed();
        rel.check_quiet(&run)?;
        expect_code(&run, 1);
        check!(took < Duration::from_secs(30), "took {took:?}\n{run}");
        check!(
            run.stderr.contains(&format!("`{DISK_HOST}`"))
                && run.stderr.contains("no space left on device")
                && run.stderr.contains(step),
            "the error does not name the host, the step and the engine's message\n{run}"
        );
        let json = rel.report()?;
        let host = json["hosts"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["host"] == DISK_HOST))
            .ok_or_else(|| format!("no {DISK_HOST} in the report: {json:#}"))?;
        check!(
            host["error"]
                .as_str()
                .is_some_and(|e| e.contains("no space left on device"))
                && host["outcome"] != "converged"
                && json["exit_code"] == 1,
            "{json:#}"
        );
        serves(&run)
    };

    // Full before the pull.
    let disk = Fault::inject(bed, "fill-disk", "free-disk", Some(DISK_HOST));
    // (The image as pinned: `<tag>@<digest>`.)
    fails(&format!("cannot pull image `{fresh}"))?;
    // Full before the container is made: the image is there.
    disk.restore();
    bed.docker_ok(DISK_HOST, &["pull", &fresh]);
    let disk = Fault::inject(bed, "fill-disk", "free-disk", Some(DISK_HOST));
    fails("serves on")?;

    disk.restore();
    rel.converges(bed, project, &fresh, &[DISK_HOST], true)
}
