//! Configs from the repo on the hosts: reloaded in place (same container,
//! same start time, new behaviour served) for exactly their readers, put
//! back when a check or a validation fails, replacing their readers in the
//! default mode, repo-relative bind mounts of a file and a directory, a
//! copy edited on a host seen as drift and restored (and removed once the
//! project drops its configs), a run killed during a reload, and a
//! credential refused as a config.
//!
//! busybox `httpd` re-reads its config on SIGHUP; its `.ext:type` lines
//! set the Content-Type it serves, which is how a test sees which config a
//! server runs.

use std::process::Command;

use super::{apply, berth_in, plan};
use crate::support::{berth_spawn, expect_code, finish, Bed, Failed, Repo, HOSTS};

/// Removes a project's config copies from every host, now and when dropped
/// (they live on the hosts' disks, which the container clean-up leaves).
struct Copies<'a> {
    bed: &'a Bed,
    project: String,
}

impl<'a> Copies<'a> {
    fn new(bed: &'a Bed, project: &str) -> Copies<'a> {
        let copies = Copies {
            bed,
            project: project.to_string(),
        };
        copies.clean();
        copies
    }

    fn clean(&self) {
        for host in HOSTS {
            let _ = self.bed.ssh(
                host,
                &format!("rm -rf /var/lib/berth/configs/{}", self.project),
            );
        }
    }
}

impl Drop for Copies<'_> {
    fn drop(&mut self) {
        self.clean();
    }
}

/// `httpd.conf` that serves `.html` as `text/x-berth-<kind>`.
fn conf(kind: &str) -> String {
    format!(".html:text/x-berth-{kind}\n")
}

/// Stack `cfg`: `web` (2 replicas on the web hosts, httpd as PID 1 reading
/// config `httpd`, reloaded with SIGHUP after a check; validated by the
/// type it serves) and `side` (reads no config).
fn reload_repo(bed: &Bed, project: &str, port: u16, check: &str) -> Repo {
    let repo = bed.repo(project);
    repo.write(
        "stacks/cfg/compose.yaml",
        &format!(
            r#"services:
  web:
    image: {img}
    entrypoint: [httpd, -f, -p, "80", -h, /www, -c, /etc/httpd/httpd.conf]
    stop_grace_period: 1s
    ports: ["{port}:80"]
    configs:
      - source: httpd
        target: /etc/httpd/httpd.conf
    deploy:
      replicas: 2
      placement:
        constraints: [node.labels.role == web]
    x-berth:
      reload:
        signal: SIGHUP
        check:
          - sh
          - -c
          - "{check}"
      validate:
        - exec:
            - sh
            - -c
            - "! wget -q -S -O /dev/null http://127.0.0.1/index.html 2>&1 | grep -qi x-berth-bad"
          timeout: 2s
  side:
    image: {img}
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.labels.role == web]
configs:
  httpd:
    file: ./httpd.conf
"#,
            img = bed.get("BED_WEB_V1"),
        ),
    );
    repo.write("stacks/cfg/httpd.conf", &conf("one"));
    repo.commit("httpd with a config");
    repo
}

/// The check of [`reload_repo`]: the file must set an x-berth type.
const CHECK_TYPE: &str = "grep -q '^.html:text/x-berth-' /etc/httpd/httpd.conf || { echo 'httpd.conf sets no x-berth type' >&2; exit 1; }";

/// The Content-Type `host:port` serves `index.html` with, from the runner.
fn content_type(bed: &Bed, host: &str, port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-I", "--max-time", "5"])
        .arg(format!("http://{}:{port}/index.html", bed.addr(host)))
        .output();
    let Ok(out) = out else {
        return String::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// (host, container name, id, start time) of the project's containers whose
/// name starts with `prefix`.
fn started(bed: &Bed, project: &str, prefix: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for host in HOSTS {
        for (name, c) in bed.containers(host, project) {
            if name.starts_with(prefix) {
                let at = bed
                    .docker_ok(host, &["inspect", "-f", "{{.State.StartedAt}}", &c.id])
                    .trim()
                    .to_string();
                out.push((host.to_string(), name, c.id, at));
            }
        }
    }
    out.sort();
    out
}

/// What the container named `name` on `host` reads at `path`.
fn read_in(bed: &Bed, host: &str, name: &str, path: &str) -> String {
    bed.docker(host, &["exec", name, "cat", path])
        .stdout
        .iter()
        .map(|&b| b as char)
        .collect()
}

#[test]
fn a_changed_config_is_reloaded_in_place_for_exactly_its_readers() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-cfg-reload";
    let _scope = bed.scope(project);
    let _copies = Copies::new(bed, project);
    let port = 18121;
    let repo = reload_repo(bed, project, port, CHECK_TYPE);
    expect_code(&apply(&repo, &[]), 0);
    for host in ["edge-1", "edge-2"] {
        let served = content_type(bed, host, port);
        check!(served == "text/x-berth-one", "{host} serves {served:?}");
    }
    let before = started(bed, project, "cfg-");
    check!(before.len() == 3, "{before:?}");

    repo.write("stacks/cfg/httpd.conf", &conf("two"));
    repo.commit("httpd serves type two");
    let planned = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&planned, 2);
    for replica in ["cfg/web.1", "cfg/web.2"] {
        check!(
            planned
                .stdout
                .lines()
                .any(|l| l.contains(replica) && l.contains("reload (config httpd changed)")),
            "no reload of {replica}\n{planned}"
        );
    }
    check!(!planned.stdout.contains("cfg/side"), "{planned}");
    check!(
        planned.stdout.contains("-.html:text/x-berth-one")
            && planned.stdout.contains("+.html:text/x-berth-two"),
        "no diff of the file\n{planned}"
    );
    check!(planned.stdout.contains("2 to reload in place"), "{planned}");
    let json = plan(&repo, &["--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout)?;
    let reloads: Vec<&serde_json::Value> = value["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["changes"].as_array().into_iter().flatten())
        .filter(|c| c["action"] == "reload")
        .collect();
    check!(reloads.len() == 2, "{json}");
    check!(
        reloads.iter().all(|c| c["configs"][0]["config"] == "httpd"
            && c["configs"][0]["diff"]
                .as_str()
                .is_some_and(|d| d.contains("+.html:text/x-berth-two"))),
        "{json}"
    );

    let report = repo.path().join("report.json");
    let metrics = repo.path().join("berth.prom");
    let run = apply(
        &repo,
        &[
            "--report",
            report.to_str().ok_or("path")?,
            "--metrics",
            metrics.to_str().ok_or("path")?,
        ],
    );
    expect_code(&run, 0);
    let after = started(bed, project, "cfg-");
    check!(
        before == after,
        "a reload restarted or replaced a container:\nbefore {before:?}\nafter {after:?}"
    );
    for host in ["edge-1", "edge-2"] {
        let served = content_type(bed, host, port);
        check!(served == "text/x-berth-two", "{host} serves {served:?}");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    check!(
        json["summary"]["reload"] == 2
            && json["summary"]["reloaded"] == 2
            && json["summary"]["reload_rollbacks"] == 0
            && json["summary"]["replace"] == 0,
        "{json:#}"
    );
    let prom = std::fs::read_to_string(&metrics)?;
    check!(
        prom.lines()
            .any(|l| l.starts_with("berth_host_reloads{") && l.ends_with(" 1")),
        "{prom}"
    );
    // Converged: the containers keep the digest they were made with, the
    // host copies have the repo's.
    let again = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&again, 0);
    Ok(())
}

#[test]
fn a_bad_config_is_put_back_and_the_run_fails() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-cfg-bad";
    let _scope = bed.scope(project);
    let _copies = Copies::new(bed, project);
    let port = 18122;
    let repo = reload_repo(bed, project, port, CHECK_TYPE);
    expect_code(&apply(&repo, &[]), 0);
    let before = started(bed, project, "cfg-web");
    let report = repo.path().join("report.json");
    let report_arg = ["--report", report.to_str().ok_or("path")?];

    // The check fails on the first replica: the rest is never touched.
    repo.write("stacks/cfg/httpd.conf", ".html:text/plain\n");
    repo.commit("a type the check refuses");
    let run = apply(&repo, &report_arg);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("replica")
            && run.stderr.contains("config `httpd`")
            && run.stderr.contains("httpd.conf sets no x-berth type")
            && run.stderr.contains("host `edge-"),
        "the error names no host, replica, config or output\n{run}"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    check!(json["summary"]["reload_rollbacks"] == 1, "{json:#}");
    let touched: Vec<&str> = json["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| {
            h["steps"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["step"] == "reload"))
        })
        .filter_map(|h| h["host"].as_str())
        .collect();
    check!(touched.len() == 1, "one host tried the reload: {json:#}");
    for (host, name, _, _) in &before {
        let served = content_type(bed, host, port);
        check!(served == "text/x-berth-one", "{host} serves {served:?}");
        let file = read_in(bed, host, name, "/etc/httpd/httpd.conf");
        check!(file == conf("one"), "{name} on {host} reads {file:?}");
    }

    // Passes the check, fails validation after the reload: put back too.
    repo.write("stacks/cfg/httpd.conf", &conf("bad"));
    repo.commit("a type the validation refuses");
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(run.stderr.contains("validation failed"), "{run}");
    for (host, name, _, _) in &before {
        let served = content_type(bed, host, port);
        check!(served == "text/x-berth-one", "{host} serves {served:?}");
        let file = read_in(bed, host, name, "/etc/httpd/httpd.conf");
        check!(file == conf("one"), "{name} on {host} reads {file:?}");
    }
    check!(
        started(bed, project, "cfg-web") == before,
        "a failed reload restarted a container"
    );
    Ok(())
}

#[test]
fn a_changed_config_replaces_exactly_its_readers_by_default() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-cfg-replace";
    let _scope = bed.scope(project);
    let _copies = Copies::new(bed, project);
    let port = 18123;
    let repo = bed.repo(project);
    repo.write(
        "stacks/pg/compose.yaml",
        &format!(
            "services:\n  web:\n    image: {img}\n    ports: [\"{port}:80\"]\n    configs:\n      - source: page\n        target: /www/index.html\n        mode: 0440\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.labels.role == web]\n  side:\n    image: {img}\n    stop_grace_period: 1s\n    deploy:\n      placement:\n        constraints: [node.labels.role == web]\nconfigs:\n  page:\n    file: ./page.html\n",
            img = bed.get("BED_WEB_V1")
        ),
    );
    repo.write("stacks/pg/page.html", "page one\n");
    repo.commit("a page from the repo");
    expect_code(&apply(&repo, &[]), 0);
    for host in ["edge-1", "edge-2"] {
        let body = bed.http_get(host, port);
        check!(body == "page one\n", "{host} serves {body:?}");
    }
    let before = started(bed, project, "pg-");

    repo.write("stacks/pg/page.html", "page two\n");
    repo.commit("page two");
    let planned = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&planned, 2);
    let replaces: Vec<&str> = planned
        .stdout
        .lines()
        .filter(|l| l.contains("replace (config page changed)"))
        .collect();
    check!(replaces.len() == 2, "{planned}");
    check!(!planned.stdout.contains("pg/side"), "{planned}");
    check!(planned.stdout.contains("+page two"), "{planned}");
    expect_code(&apply(&repo, &[]), 0);
    let after = started(bed, project, "pg-");
    for ((_, name, id, _), (_, _, new_id, _)) in before.iter().zip(&after) {
        if name.starts_with("pg-web") {
            check!(id != new_id, "{name} was not replaced");
        } else {
            check!(id == new_id, "{name} reads no config but was replaced");
        }
    }
    for host in ["edge-1", "edge-2"] {
        let body = bed.http_get(host, port);
        check!(body == "page two\n", "{host} serves {body:?}");
    }
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);
    Ok(())
}

#[test]
fn repo_relative_binds_are_delivered_and_hand_edits_are_drift() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-cfg-bind";
    let _scope = bed.scope(project);
    let _copies = Copies::new(bed, project);
    let port = 18124;
    let repo = bed.repo(project);
    repo.write(
        "stacks/bind/compose.yaml",
        &format!(
            "services:\n  web:\n    image: {img}\n    ports: [\"{port}:80\"]\n    volumes:\n      - ./site:/www:ro\n      - ./conf/httpd.conf:/etc/httpd.conf:ro\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n",
            img = bed.get("BED_WEB_V1")
        ),
    );
    repo.write("stacks/bind/site/index.html", "from the repo\n");
    repo.write("stacks/bind/site/health", "ok\n");
    repo.write("stacks/bind/conf/httpd.conf", &conf("bind"));
    repo.commit("binds of a directory and a file");
    expect_code(&apply(&repo, &[]), 0);
    check!(
        bed.http_get("edge-1", port) == "from the repo\n",
        "the directory is not served"
    );
    let served = content_type(bed, "edge-1", port);
    check!(
        served == "text/x-berth-bind",
        "the file is not used: {served:?}"
    );

    // Edited by hand on the host: drift, named, and repaired.
    let edit = bed.ssh(
        "edge-1",
        &format!(
            "for f in /var/lib/berth/configs/{project}/edge-1/bind/web/site/*/data/index.html; do echo hacked > \"$f\"; done"
        ),
    );
    check!(edit.status.success(), "cannot edit the host copy");
    check!(
        bed.http_get("edge-1", port) == "hacked\n",
        "the edit did not reach the container"
    );
    let planned = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&planned, 2);
    check!(
        planned
            .stdout
            .contains("[drift] (config ./site edited on the host)"),
        "{planned}"
    );
    expect_code(&apply(&repo, &[]), 0);
    check!(
        bed.http_get("edge-1", port) == "from the repo\n",
        "the repo's copy is not back"
    );
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);

    // The project drops its binds, so it has no configs at all: the
    // container is replaced, and the files it read leave the host.
    repo.write(
        "stacks/bind/compose.yaml",
        &format!(
            "services:\n  web:\n    image: {img}\n    ports: [\"{port}:80\"]\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n",
            img = bed.get("BED_WEB_V1")
        ),
    );
    repo.commit("no binds");
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    let none_left = bed.ssh(
        "edge-1",
        &format!("! find /var/lib/berth/configs/{project} -type f | grep -q ."),
    );
    check!(
        none_left.status.success(),
        "config files left on edge-1 under /var/lib/berth/configs/{project}\n{run}"
    );
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);
    Ok(())
}

#[test]
fn a_run_killed_during_a_reload_leaves_whole_files_and_the_next_converges() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-cfg-kill";
    let _scope = bed.scope(project);
    let _copies = Copies::new(bed, project);
    let port = 18125;
    // A slow check: the swap is done, the reload not yet.
    let repo = reload_repo(bed, project, port, "sleep 4");
    expect_code(&apply(&repo, &[]), 0);
    let before = started(bed, project, "cfg-web");
    repo.write("stacks/cfg/httpd.conf", &conf("two"));
    repo.commit("type two");

    let path = repo.path().display().to_string();
    let mut child = berth_spawn(repo.path(), &["apply", "--repo", &path]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut swapped = false;
    while !swapped && std::time::Instant::now() < deadline {
        swapped = before.iter().any(|(host, name, _, _)| {
            read_in(bed, host, name, "/etc/httpd/httpd.conf") == conf("two")
        });
        if !swapped {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let killed = finish(child, "berth apply (killed)");
    check!(swapped, "no replica got the new file in time\n{killed}");
    for (host, name, _, _) in &before {
        let file = read_in(bed, host, name, "/etc/httpd/httpd.conf");
        check!(
            file == conf("one") || file == conf("two"),
            "{name} on {host} reads a partial file: {file:?}"
        );
    }
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        let served = content_type(bed, host, port);
        check!(
            served == "text/x-berth-two",
            "{host} serves {served:?}\n{run}"
        );
    }
    check!(
        started(bed, project, "cfg-web") == before,
        "a container was restarted"
    );
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);
    Ok(())
}

#[test]
fn a_private_key_as_a_config_is_refused_with_a_pointer_to_secrets() -> Result<(), Failed> {
    let bed = &Bed::take();
    let repo = bed.repo("t-cfg-key");
    repo.write(
        "stacks/k/compose.yaml",
        &format!(
            "services:\n  web:\n    image: {}\n    configs: [tls]\nconfigs:\n  tls:\n    file: ./tls.key\n",
            bed.get("BED_WEB_V1")
        ),
    );
    repo.write(
        "stacks/k/tls.key",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+3\n-----END PRIVATE KEY-----\n",
    );
    repo.commit("a key as a config");
    let run = berth_in(&repo, "plan", &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("stacks/k/compose.yaml:7:11")
            && run
                .stderr
                .contains("looks like a secret (it holds a PEM private key)")
            && run.stderr.contains("`secrets:`"),
        "{run}"
    );
    Ok(())
}

/// What `host:port` serves at `path` (curl's `-f`: empty on an HTTP error).
fn get(bed: &Bed, host: &str, port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sSf", "--max-time", "5"])
        .arg(format!("http://{}:{port}{path}", bed.addr(host)))
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn a_directory_config_is_reloaded_whole_in_place_and_put_back() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-cfg-dir";
    let _scope = bed.scope(project);
    let _copies = Copies::new(bed, project);
    let port = 18126;
    let repo = bed.repo(project);
    // httpd serves /srv, the live directory: `site` is a directory config
    // (a repo-relative bind) and `health` a file config beside it.
    repo.write(
        "stacks/dir/compose.yaml",
        &format!(
            r#"services:
  web:
    image: {img}
    entrypoint: [httpd, -f, -p, "80", -h, /srv]
    stop_grace_period: 1s
    ports: ["{port}:80"]
    configs:
      - source: health
        target: /srv/health
    volumes:
      - ./site:/srv/site:ro
    deploy:
      placement:
        constraints: [node.hostname == edge-1]
    x-berth:
      reload:
        signal: SIGHUP
        check: [test, -f, /srv/site/index.html]
configs:
  health:
    content: "ok\n"
"#,
            img = bed.get("BED_WEB_V1")
        ),
    );
    repo.write("stacks/dir/site/index.html", "one\n");
    repo.write("stacks/dir/site/sub/a.txt", "a\n");
    repo.commit("a directory config, reloaded in place");
    expect_code(&apply(&repo, &[]), 0);
    check!(
        get(bed, "edge-1", port, "/site/index.html") == "one\n"
            && get(bed, "edge-1", port, "/site/sub/a.txt") == "a\n",
        "the directory is not served"
    );
    let before = started(bed, project, "dir-web");
    check!(before.len() == 1, "{before:?}");

    repo.write("stacks/dir/site/index.html", "two\n");
    repo.remove("stacks/dir/site/sub/a.txt");
    repo.write("stacks/dir/site/b.txt", "b\n");
    repo.commit("site two");
    let planned = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&planned, 2);
    check!(
        planned.stdout.contains("reload (config ./site changed)"),
        "{planned}"
    );
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    check!(
        get(bed, "edge-1", port, "/site/index.html") == "two\n",
        "{run}"
    );
    check!(
        get(bed, "edge-1", port, "/site/b.txt") == "b\n",
        "a new file is not served"
    );
    check!(
        get(bed, "edge-1", port, "/site/sub/a.txt").is_empty(),
        "a file of the old directory is still served"
    );
    check!(
        started(bed, project, "dir-web") == before,
        "the container was restarted"
    );
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);

    // A directory whose check fails: the previous one is back, whole.
    repo.remove("stacks/dir/site/index.html");
    repo.commit("no index");
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("config `./site`")
            && run.stderr.contains("test -f /srv/site/index.html"),
        "{run}"
    );
    check!(
        get(bed, "edge-1", port, "/site/index.html") == "two\n",
        "the previous directory is not back\n{run}"
    );
    check!(
        get(bed, "edge-1", port, "/site/b.txt") == "b\n",
        "the previous directory is not back whole"
    );
    check!(
        started(bed, project, "dir-web") == before,
        "the container was restarted"
    );
    Ok(())
}

#[test]
fn a_hosts_configs_dir_holds_its_config_files() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-cfg-at";
    let _scope = bed.scope(project);
    let _copies = Copies::new(bed, project);
    let alt = "/var/lib/berth/alt-configs";
    let clean = || {
        let _ = bed.ssh("edge-1", &format!("rm -rf {alt}/{project}"));
    };
    clean();
    let port = 18127;
    let repo = bed.repo(project);
    repo.write(
        "berth.yaml",
        &bed.inventory(project).replace(
            "  - name: edge-1\n",
            &format!("  - name: edge-1\n    configs_dir: {alt}\n"),
        ),
    );
    let compose = |configs: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    ports: [\"{port}:80\"]\n{configs}    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n",
            img = bed.get("BED_WEB_V1")
        )
    };
    repo.write(
        "stacks/at/compose.yaml",
        &(compose("    configs:\n      - source: page\n        target: /www/index.html\n")
            + "configs:\n  page:\n    content: \"from configs_dir\\n\"\n"),
    );
    repo.commit("a config under another configs_dir");
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    let served = bed.http_get("edge-1", port);
    let files = |dir: &str| {
        bed.ssh(
            "edge-1",
            &format!("find {dir}/{project} -type f | grep -q ."),
        )
        .status
        .success()
    };
    let placed = files(alt) && !files("/var/lib/berth/configs");
    let result = (|| {
        check!(
            served == "from configs_dir\n",
            "edge-1 serves {served:?}\n{run}"
        );
        check!(placed, "the config is not (only) under {alt}\n{run}");
        expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);
        // Dropped from the repo: pruned from the host's configs_dir.
        repo.write("stacks/at/compose.yaml", &compose(""));
        repo.commit("no config");
        let run = apply(&repo, &[]);
        expect_code(&run, 0);
        check!(!files(alt), "config files left under {alt}\n{run}");
        Ok(())
    })();
    clean();
    result
}
