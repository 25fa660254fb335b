//! Discovery driven by the rollout: a real HAProxy (no health checks,
//! retries or redispatch of its own) learns which replicas serve only from
//! berth's Runtime API calls, and a `command` target logs each call.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::apply;
use crate::support::{expect_code, Bed, Failed, HOSTS};

/// Port each replica publishes on its host; the frontend's on loopback.
const PORT: u16 = 18131;
const FRONTEND: u16 = 18132;

/// One web replica per host, one host at a time, published to both targets.
fn web(img: &str, body: &str) -> String {
    format!(
        "services:\n  web:\n    image: {img}\n    ports: [\"{PORT}:80\"]\n    stop_grace_period: 2s\n    deploy:\n      mode: global\n      update_config:\n        parallelism: 1\n        monitor: 1s\n    x-berth:\n      publish: {{port: {PORT}, to: [lb, hooks], backend: web}}\n      validate:\n        - http: {{ url: \"http://127.0.0.1:{PORT}/\", status: 200, body_contains: \"{body}\" }}\n          timeout: 5s\n"
    )
}

/// One command to HAProxy's admin socket, from the runner.
fn admin(socket: &std::path::Path, command: &str) -> String {
    let out = std::process::Command::new("socat")
        .args([
            "-t",
            "5",
            "-",
            &format!("UNIX-CONNECT:{}", socket.display()),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                writeln!(stdin, "{command}")?;
            }
            child.wait_with_output()
        })
        .expect("run socat");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `name address:port state` of each server of backend `web`, sorted
/// (state: HAProxy's `srv_admin_state`, 0 when in service).
fn servers(socket: &std::path::Path) -> Vec<String> {
    let answer = admin(socket, "show servers state web");
    let mut lines = answer.lines().skip(1);
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches('#')
        .split_whitespace()
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (name, addr, port, admin_state) = (
        col("srv_name"),
        col("srv_addr"),
        col("srv_port"),
        col("srv_admin_state"),
    );
    let mut out: Vec<String> = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == header.len())
        .map(|f| format!("{} {}:{} {}", f[name], f[addr], f[port], f[admin_state]))
        .collect();
    out.sort();
    out
}

#[test]
fn haproxy_learns_replicas_from_the_rollout_and_drops_no_request() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-disc";
    let _scope = bed.scope(project);
    let (v1, v2) = (bed.get("BED_WEB_V1"), bed.get("BED_WEB_V2"));

    // HAProxy with an empty backend and nothing of its own to hide a drop:
    // no health checks, no retries, no redispatch.
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("admin.sock");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 256\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  retries 0\n\
             frontend web\n  bind 127.0.0.1:{FRONTEND}\n  default_backend web\n\
             backend web\n  balance roundrobin\n",
            socket.display()
        ),
    )?;
    /// Ends the HAProxy this test started, however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stop = Stop(
        std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    for _ in 0..50 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A server berth did not add: never touched.
    check!(
        admin(&socket, "add server web/manual 127.0.0.1:9").starts_with("New server"),
        "could not add the hand-made server"
    );

    let log = dir.path().join("hooks.log");
    let repo = bed.repo(project);
    let inventory = std::fs::read_to_string(repo.path().join("berth.yaml"))?;
    repo.write(
        "berth.yaml",
        &format!(
            "{inventory}discovery:\n  - name: lb\n    kind: haproxy\n    host: edge-1\n    socket: {}\n    drain_timeout: 10s\n  - name: hooks\n    kind: command\n    on_promote: echo \"$BERTH_EVENT $BERTH_HOST $BERTH_ADDRESS:$BERTH_PORT $BERTH_PROJECT $BERTH_STACK/$BERTH_SERVICE.$BERTH_REPLICA\" >> {log}\n    on_retire: echo \"$BERTH_EVENT $BERTH_HOST $BERTH_ADDRESS:$BERTH_PORT\" >> {log}\n",
            socket.display(),
            log = log.display()
        ),
    );
    repo.write("stacks/rel/compose.yaml", &web(&v1, "web v1"));
    repo.commit("v1");
    let run = apply(&repo, &[]);
    expect_code(&run, 0);

    let expected: Vec<String> = {
        let mut e: Vec<String> = HOSTS
            .iter()
            .map(|h| format!("t-disc.rel.web.1.{h} {}:{PORT} 0", bed.addr(h)))
            .collect();
        e.push("manual 127.0.0.1:9 1".to_string());
        e.sort();
        e
    };
    check!(
        servers(&socket) == expected,
        "after v1 HAProxy lists {:?}, expected {expected:?}\n{run}",
        servers(&socket)
    );
    let promoted: Vec<String> = HOSTS
        .iter()
        .map(|h| format!("promote {h} {}:{PORT} t-disc rel/web.1", bed.addr(h)))
        .collect();
    // A new service's replicas start at once: in any order.
    let logged = std::fs::read_to_string(&log)?;
    let mut lines: Vec<&str> = logged.lines().collect();
    lines.sort();
    check!(lines == promoted, "hooks after v1:\n{logged}");
    std::fs::write(&log, "")?;

    // v2 under a bounded request loop: 3000 requests or 120 s at most.
    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let looper = {
        let (done, ok, failed) = (done.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut versions = std::collections::BTreeSet::new();
            for _ in 0..3000 {
                if done.load(Ordering::SeqCst) || started.elapsed().as_secs() > 120 {
                    break;
                }
                let out = std::process::Command::new("curl")
                    .args(["-s", "--max-time", "3", "-w", "\n%{http_code}"])
                    .arg(format!("http://127.0.0.1:{FRONTEND}/"))
                    .output();
                match out {
                    Ok(o) if String::from_utf8_lossy(&o.stdout).ends_with("\n200") => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        let body = String::from_utf8_lossy(&o.stdout).into_owned();
                        versions.insert(body.lines().next().unwrap_or_default().to_string());
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
    repo.write("stacks/rel/compose.yaml", &web(&v2, "web v2"));
    repo.commit("v2");
    let report = dir.path().join("report.json");
    let run = apply(&repo, &["--report", report.to_str().ok_or("path")?]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    done.store(true, Ordering::SeqCst);
    let versions = looper.join().map_err(|_| "request loop panicked")?;
    expect_code(&run, 0);
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("discovery rollout: {ok} requests, {failed} failed");
    check!(ok > 50, "too few requests went through: {ok}");
    check!(
        failed == 0,
        "{failed} of {} requests failed during the rollout\n{run}",
        ok + failed
    );
    check!(
        versions.contains("berth-test web v1") && versions.contains("berth-test web v2"),
        "the loop did not see both versions: {versions:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    check!(
        json["summary"]["published"] == 3 && json["summary"]["retired"] == 3,
        "{:#}",
        json["summary"]
    );
    check!(
        servers(&socket) == expected,
        "after v2 HAProxy lists {:?}, expected {expected:?}",
        servers(&socket)
    );
    // One host at a time, each whole before the next: the old replica
    // retired before its stop, the new one promoted once validated.
    let logged = std::fs::read_to_string(&log)?;
    let lines: Vec<&str> = logged.lines().collect();
    let mut hosts_rolled: Vec<&str> = lines
        .chunks(2)
        .filter_map(|pair| {
            let h = pair[0].strip_prefix("retire ")?.split(' ').next()?;
            let addr = bed.addr(h);
            (pair.len() == 2
                && pair[0] == format!("retire {h} {addr}:{PORT}")
                && pair[1] == format!("promote {h} {addr}:{PORT} t-disc rel/web.1"))
            .then_some(h)
        })
        .collect();
    hosts_rolled.sort();
    check!(
        lines.len() == 6 && hosts_rolled == HOSTS,
        "hooks during v2:\n{logged}"
    );
    std::fs::write(&log, "")?;

    // A bad release (its check wants a page v2 does not serve) fails on
    // the first host and is never published: the v2 replicas stay.
    repo.write("stacks/rel/compose.yaml", &web(&v1, "web v9"));
    repo.commit("bad");
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(
        servers(&socket) == expected,
        "after the bad release HAProxy lists {:?}, expected {expected:?}\n{run}",
        servers(&socket)
    );
    let logged = std::fs::read_to_string(&log)?;
    let lines: Vec<&str> = logged.lines().collect();
    let put_back = lines.first().and_then(|l| l.split(' ').nth(1)).map(|h| {
        [
            format!("retire {h} {}:{PORT}", bed.addr(h)),
            format!("promote {h} {}:{PORT} t-disc rel/web.1", bed.addr(h)),
        ]
    });
    check!(
        put_back.is_some_and(|p| lines == p),
        "hooks during the bad release (its replica is never promoted; the old one is, once back):\n{logged}"
    );
    for host in HOSTS {
        let body = bed.http_get(host, PORT);
        check!(body.contains("web v2"), "{host} serves {body:?}");
    }
    drop(stop);
    Ok(())
}
