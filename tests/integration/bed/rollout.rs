//! Rolling updates: batches, health gates, `start-first`, the failure
//! actions (rollback, pause, continue), no request dropped behind a load
//! balancer, and a rollout killed halfway.

use super::{apply, events, plan};
use crate::support::{berth_spawn, expect_code, Bed, Failed, HOSTS};

#[test]
fn failed_replace_rolls_back_to_old_container() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-rollback";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let compose = |img: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    ports: [\"18085:80\"]\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n"
        )
    };
    repo.write("stacks/site/compose.yaml", &compose(&bed.get("BED_WEB_V1")));
    repo.commit("v1");
    expect_code(&apply(&repo, &[]), 0);
    let before = bed.containers("edge-1", project);

    repo.write(
        "stacks/site/compose.yaml",
        &compose(&bed.get("BED_WEB_BAD")),
    );
    repo.commit("bad release");
    let run = apply(&repo, &["--health-timeout", "30"]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("edge-1") && run.stderr.contains("site-web-1"),
        "{run}"
    );
    check!(
        run.stderr.contains("unhealthy"),
        "the failed check is not named\n{run}"
    );
    check!(run.stderr.contains("rolled back"), "{run}");
    let after = bed.containers("edge-1", project);
    check!(
        after.keys().collect::<Vec<_>>() == ["site-web-1", "site-web-1.berth-failed"],
        "expected the old container back and the failed one kept: {after:?}"
    );
    check!(
        after["site-web-1.berth-failed"].state == "exited"
            && after["site-web-1.berth-failed"].image == bed.get("BED_WEB_BAD"),
        "the failed release is not kept stopped for inspection: {after:?}"
    );
    check!(
        after["site-web-1"].id == before["site-web-1"].id,
        "the old container was not kept"
    );
    check!(
        after["site-web-1"].state == "running",
        "old container not running"
    );
    let body = bed.http_get("edge-1", 18085);
    check!(
        body.trim() == "berth-test web v1",
        "v1 not serving after rollback: {body:?}"
    );
    // The next plan says this release failed before instead of retrying blindly.
    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout
            .contains("this spec failed before here, see `site-web-1.berth-failed`"),
        "{run}"
    );
    Ok(())
}

/// A web service on every host (global), rolled one host at a time.
fn global_web(img: &str, port: Option<u16>, update: &str, validate: &str) -> String {
    let ports = port
        .map(|p| format!("    ports: [\"{p}:80\"]\n"))
        .unwrap_or_default();
    format!(
        "services:\n  web:\n    image: {img}\n{ports}    stop_grace_period: 2s\n    deploy:\n      mode: global\n      update_config:\n        parallelism: 1\n{update}{validate}"
    )
}

/// Image of each host's `rel-web-1`.
fn images(bed: &Bed, project: &str) -> Vec<String> {
    HOSTS
        .iter()
        .map(|h| {
            bed.containers(h, project)
                .get("rel-web-1")
                .map(|c| c.image.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn bad_release_stops_after_first_batch() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-badrel";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));
    repo.write(
        "stacks/rel/compose.yaml",
        &global_web(&v1, Some(18090), "", ""),
    );
    repo.commit("v1");
    expect_code(&apply(&repo, &[]), 0);
    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();

    // v2 fails its validation: the page must still say v1.
    let validate = "    x-berth:\n      validate:\n        - exec: [\"grep\", \"-q\", \"v1\", \"/www/index.html\"]\n          timeout: 2s\n";
    repo.write(
        "stacks/rel/compose.yaml",
        &global_web(&v2, Some(18090), "", validate),
    );
    repo.commit("v2 with a failing check");
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(
        run.stderr
            .contains("host `edge-1`: replace of `rel-web-1` (rel/web replica 1) failed"),
        "the report does not name host, service and replica\n{run}"
    );
    check!(
        run.stderr
            .contains("validation failed: exec `grep -q v1 /www/index.html`")
            && run.stderr.contains("exited with 1"),
        "the failed check and its output are not shown\n{run}"
    );
    check!(run.stderr.contains("rolled back"), "{run}");
    check!(
        images(bed, project) == [v1.clone(), v1.clone(), v1.clone()],
        "not all hosts on v1: {:?}",
        images(bed, project)
    );
    for (i, host) in HOSTS.iter().enumerate().skip(1) {
        let now = bed.containers(host, project);
        check!(
            now == before[i],
            "{host} was touched though its batch never started: {now:?}"
        );
    }
    for host in HOSTS {
        check!(
            bed.http_get(host, 18090).trim() == "berth-test web v1",
            "{host} does not serve v1"
        );
    }
    Ok(())
}

#[test]
fn start_first_new_is_healthy_before_old_stops() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-startfirst";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let order = "        order: start-first\n";
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));
    repo.write("stacks/rel/compose.yaml", &global_web(&v1, None, order, ""));
    repo.commit("v1");
    expect_code(&apply(&repo, &[]), 0);
    let old = bed.containers("edge-1", project)["rel-web-1"].id.clone();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        - 1;
    repo.write("stacks/rel/compose.yaml", &global_web(&v2, None, order, ""));
    repo.commit("v2");
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    let new = bed.containers("edge-1", project)["rel-web-1"].clone();
    check!(new.image == v2 && new.id != old, "not replaced: {new:?}");
    let new_events = events(bed, "edge-1", &new.id, since);
    let old_events = events(bed, "edge-1", &old, since);
    let healthy = new_events
        .iter()
        .find(|(_, a)| a == "health_status: healthy")
        .map(|(t, _)| *t)
        .ok_or(format!(
            "new container never reported healthy: {new_events:?}"
        ))?;
    let stopped = old_events
        .iter()
        .find(|(_, a)| a == "kill" || a == "stop" || a == "die")
        .map(|(t, _)| *t)
        .ok_or(format!("old container never stopped: {old_events:?}"))?;
    check!(
        healthy < stopped,
        "old container stopped {} ms before the new one was healthy\nnew: {new_events:?}\nold: {old_events:?}",
        (healthy - stopped) / 1_000_000
    );
    // A fixed host port makes start-first impossible: said before any host is touched.
    repo.write(
        "stacks/rel/compose.yaml",
        &global_web(&v2, Some(18092), order, ""),
    );
    repo.commit("start-first with a fixed port");
    let run = plan(&repo, &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("service `web` uses `update_config.order: start-first` but publishes fixed host port 18092: on host `edge-1`")
            && run.stderr.contains("stop-first"),
        "{run}"
    );
    Ok(())
}

/// Accepts TCP connections on 127.0.0.1:`port` inside a host's network
/// namespace, until dropped (bounded to 5 minutes in any case).
struct Listener(std::process::Child);

impl Listener {
    fn start(bed: &Bed, host: &str, port: u16) -> Listener {
        let netns = bed.get(&format!("BED_NETNS_{}", host.replace('-', "_")));
        let code = format!(
            "import signal, socket\nsignal.alarm(300)\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen(64)\nwhile True:\n    c, _ = s.accept()\n    c.close()\n"
        );
        let child = std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args(["python3", "-c", &code])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start listener");
        std::thread::sleep(std::time::Duration::from_millis(500));
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn failure_actions_rollback_pause_continue() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-actions";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));
    // The v2 check passes on edge-1 and edge-3 (something listens on 7777
    // there), and fails on edge-2.
    let _l1 = Listener::start(bed, "edge-1", 7777);
    let _l3 = Listener::start(bed, "edge-3", 7777);
    let validate =
        "    x-berth:\n      validate:\n        - tcp: { port: 7777 }\n          timeout: 2s\n";
    let cases = [
        ("rollback", [v1.clone(), v1.clone(), v1.clone()]),
        ("pause", [v2.clone(), v1.clone(), v1.clone()]),
        ("continue", [v2.clone(), v1.clone(), v2.clone()]),
    ];
    for (action, expected) in cases {
        repo.write("stacks/rel/compose.yaml", &global_web(&v1, None, "", ""));
        repo.commit("v1");
        expect_code(&apply(&repo, &[]), 0);
        check!(
            images(bed, project) == [v1.clone(), v1.clone(), v1.clone()],
            "{action}: reset to v1 failed"
        );
        let update = format!("        failure_action: {action}\n");
        repo.write(
            "stacks/rel/compose.yaml",
            &global_web(&v2, None, &update, validate),
        );
        repo.commit(&format!("v2, {action}"));
        let run = apply(&repo, &[]);
        expect_code(&run, 1);
        check!(
            run.stderr.contains("host `edge-2`: replace of `rel-web-1`")
                && run.stderr.contains("validation failed: tcp port 7777"),
            "{action}: the failure on edge-2 is not reported\n{run}"
        );
        let now = images(bed, project);
        check!(
            now == expected,
            "{action}: expected {expected:?}, hosts run {now:?}\n{run}"
        );
    }
    Ok(())
}

#[test]
fn rolling_release_through_haproxy_drops_no_request() -> Result<(), Failed> {
    let bed = &Bed::take();
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let project = "t-haproxy";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));
    let port = 18093;
    let monitor = "        monitor: 2s\n";
    // Checked from each host, over its SSH connection, before the next batch.
    let validate = format!(
        "    x-berth:\n      validate:\n        - http: {{ url: \"http://127.0.0.1:{port}/\", status: 200, body_contains: \"web v2\" }}\n"
    );
    repo.write(
        "stacks/rel/compose.yaml",
        &global_web(&v1, Some(port), monitor, ""),
    );
    repo.commit("v1");
    expect_code(&apply(&repo, &[]), 0);

    // HAProxy on loopback in front of the three replicas, health checks on.
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("haproxy.cfg");
    let servers: String = HOSTS
        .iter()
        .map(|h| {
            format!(
                "  server {h} {}:{port} check inter 200ms fall 1 rise 2\n",
                bed.addr(h)
            )
        })
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 256\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  retries 3\n  option redispatch 1\n  retry-on all-retryable-errors\n\
             frontend web\n  bind 127.0.0.1:18094\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n  option httpchk GET /health\n{servers}"
        ),
    )?;
    let mut haproxy = std::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .stdin(std::process::Stdio::null())
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_secs(1));

    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let looper = {
        let (done, ok, failed) = (done.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut versions = std::collections::BTreeSet::new();
            // Bounded: at most 3000 requests or 120 s.
            for _ in 0..3000 {
                if done.load(Ordering::SeqCst) || started.elapsed().as_secs() > 120 {
                    break;
                }
                let out = std::process::Command::new("curl")
                    .args([
                        "-s",
                        "--max-time",
                        "3",
                        "-w",
                        "\n%{http_code}",
                        "http://127.0.0.1:18094/",
                    ])
                    .output();
                match out {
                    Ok(o) if String::from_utf8_lossy(&o.stdout).ends_with("\n200") => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        versions.insert(
                            String::from_utf8_lossy(&o.stdout)
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .to_string(),
                        );
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            versions
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    repo.write(
        "stacks/rel/compose.yaml",
        &global_web(&v2, Some(port), monitor, &validate),
    );
    repo.commit("v2");
    let run = apply(&repo, &[]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    done.store(true, Ordering::SeqCst);
    let versions = looper.join().map_err(|_| "request loop panicked")?;
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    expect_code(&run, 0);
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    check!(ok > 50, "too few requests went through: {ok}");
    check!(
        failed == 0,
        "{failed} of {} requests failed during the rollout",
        ok + failed
    );
    check!(
        versions.contains("berth-test web v1") && versions.contains("berth-test web v2"),
        "the loop did not see both versions: {versions:?}"
    );
    check!(
        images(bed, project) == [v2.clone(), v2.clone(), v2.clone()],
        "not every replica on v2"
    );
    eprintln!("haproxy rollout: {ok} requests, {failed} failed");
    Ok(())
}

#[test]
fn killed_rollout_converges_on_next_run() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-killroll";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let path = repo.path().display().to_string();
    let mut image = bed.get("BED_WEB_V1");
    repo.write(
        "stacks/rel/compose.yaml",
        &global_web(&image, Some(18095), "", ""),
    );
    repo.commit("v1");
    expect_code(&apply(&repo, &[]), 0);
    // Kill -9 at several points of a three-batch rollout, then run again.
    for (i, delay_ms) in [300u64, 1200, 2500, 4000].into_iter().enumerate() {
        image = if i % 2 == 0 {
            bed.get("BED_WEB_V2")
        } else {
            bed.get("BED_WEB_V1")
        };
        repo.write(
            "stacks/rel/compose.yaml",
            &global_web(&image, Some(18095), "", ""),
        );
        repo.commit(&format!("release {i}"));
        let mut child = berth_spawn(repo.path(), &["apply", "--repo", &path]);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();

        let run = apply(&repo, &["--lock-timeout", "30"]);
        expect_code(&run, 0);
        for host in HOSTS {
            let cs = bed.containers(host, project);
            let names: Vec<&String> = cs.keys().collect();
            check!(
                names == ["rel-web-1"],
                "after a kill at {delay_ms} ms, {host} has {names:?}\n{run}"
            );
            check!(
                cs["rel-web-1"].state == "running" && cs["rel-web-1"].image == image,
                "after a kill at {delay_ms} ms, {host} runs {:?}",
                cs["rel-web-1"]
            );
        }
        expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);
    }
    Ok(())
}

/// Two stacks roll out side by side: the bad release of one rolls back
/// without holding up or touching the other, and the run's error names
/// only the bad one.
#[test]
fn failing_stack_rolls_back_while_the_good_one_converges() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-twostacks";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let (v1, v2, bad) = (
        bed.get("BED_WEB_V1"),
        bed.get("BED_WEB_V2"),
        bed.get("BED_WEB_BAD"),
    );
    let stack = |img: &str, port: u16| global_web(img, Some(port), "", "");
    repo.write("stacks/good/compose.yaml", &stack(&v1, 18094));
    repo.write("stacks/bad/compose.yaml", &stack(&v1, 18095));
    repo.commit("v1 of both");
    expect_code(&apply(&repo, &[]), 0);
    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();

    repo.write("stacks/good/compose.yaml", &stack(&v2, 18094));
    repo.write("stacks/bad/compose.yaml", &stack(&bad, 18095));
    repo.commit("good v2, bad release");
    let run = apply(&repo, &["--health-timeout", "30"]);
    expect_code(&run, 1);
    // The run's error: its `error:` lines (the log lines come before).
    let error: String = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect::<Vec<_>>()
        .join("\n");
    check!(
        error.contains("host `edge-1`: replace of `bad-web-1` (bad/web replica 1) failed")
            && error.contains("unhealthy")
            && error.contains("rolled back"),
        "the error does not name the bad release\n{run}"
    );
    check!(
        !error.contains("good"),
        "the error names the good stack\n{run}"
    );
    for (i, host) in HOSTS.iter().enumerate() {
        let good = bed.http_get(host, 18094);
        check!(
            good.trim() == "berth-test web v2",
            "{host}: the good stack does not serve v2: {good:?}\n{run}"
        );
        let served = bed.http_get(host, 18095);
        check!(
            served.trim() == "berth-test web v1",
            "{host}: the bad stack does not serve v1 again: {served:?}\n{run}"
        );
        let now = bed.containers(host, project);
        check!(
            now.get("bad-web-1").map(|c| &c.id) == before[i].get("bad-web-1").map(|c| &c.id),
            "{host}: the bad stack's old container was not kept: {now:?}"
        );
    }
    // The next plan leaves the good stack alone and offers the bad
    // release again.
    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        !run.stdout.contains("good-web") && run.stdout.contains("bad-web-1"),
        "{run}"
    );
    Ok(())
}
