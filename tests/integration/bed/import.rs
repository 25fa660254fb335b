//! `berth import` on hosts that run containers berth never saw: started by
//! hand with `docker run` and by docker-compose (1.x, the Debian package),
//! one of its services scaled to three containers. The imported repo
//! validates (its berth.yaml given the bed's plain-HTTP registry by the
//! import), its plan takes every container over naming only what it does
//! not reproduce, the apply replaces each once keeping its named volume's
//! data, and a second apply changes nothing.

use std::process::Command;

use super::{apply, plan};
use crate::support::{berth, expect_code, Bed, Failed, Repo};

const PROJECT: &str = "t-import";
/// The Compose project started by hand on edge-1 and edge-2.
const COMPOSE_PROJECT: &str = "impshop";

/// Removes what the test started by hand on the hosts (containers under
/// their names, whether berth took them over or not; their volumes and the
/// Compose network), now and when dropped, even when the test fails.
struct HandStarted<'a> {
    bed: &'a Bed,
}

impl HandStarted<'_> {
    fn clean(&self) {
        let by_host: [(&str, &[&str]); 3] = [
            (
                "edge-1",
                &[
                    "imp-solo",
                    "impshop_web_1",
                    "impshop_cache_1",
                    "impshop_cache_2",
                    "impshop_cache_3",
                ],
            ),
            ("edge-2", &["imp-side", "impshop_web_1", "impshop_cache_1"]),
            ("edge-3", &["imp-far"]),
        ];
        for (host, names) in by_host {
            for name in names {
                for leftover in ["", ".berth-old", ".berth-new", ".berth-failed"] {
                    let _ = self
                        .bed
                        .docker(host, &["rm", "-f", &format!("{name}{leftover}")]);
                }
            }
            for volume in ["imp-data", "impshop_data"] {
                let _ = self.bed.docker(host, &["volume", "rm", "-f", volume]);
            }
            let _ = self.bed.docker(host, &["network", "rm", "impshop_default"]);
        }
    }
}

impl Drop for HandStarted<'_> {
    fn drop(&mut self) {
        self.clean();
    }
}

/// `docker-compose -p impshop up -d [extra]` against one host's engine socket.
fn compose_up(bed: &Bed, host: &str, file: &std::path::Path, extra: &[&str]) -> Result<(), Failed> {
    let out = Command::new("docker-compose")
        .env("DOCKER_HOST", format!("unix://{}", bed.sock(host)))
        .args(["--ansi", "never", "-p", COMPOSE_PROJECT, "-f"])
        .arg(file)
        .args(["up", "-d"])
        .args(extra)
        .output()
        .map_err(|e| {
            format!("cannot run docker-compose (Debian's `docker-compose` package): {e}")
        })?;
    check!(
        out.status.success(),
        "docker-compose up on {host} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// What `docker exec NAME cat FILE` prints on `host`.
fn read_file(bed: &Bed, host: &str, name: &str, file: &str) -> String {
    let out = bed.docker(host, &["exec", name, "cat", file]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn import_takes_over_hand_started_containers_and_keeps_their_data() -> Result<(), Failed> {
    let bed = &Bed::take();
    let _scope = bed.scope(PROJECT);
    let hand = HandStarted { bed };
    hand.clean();
    let web = bed.get("BED_WEB_V1");
    let worker = bed.get("BED_WORKER");

    // By hand: a web server with a named volume holding a file, and a
    // credential in its environment, on edge-1; a labelled worker on edge-2.
    bed.docker_ok(
        "edge-1",
        &[
            "run",
            "-d",
            "--name",
            "imp-solo",
            "--restart",
            "unless-stopped",
            "-e",
            "MODE=solo",
            "-e",
            "API_TOKEN=s3cret-value",
            "-v",
            "imp-data:/data",
            "-p",
            "18310:80",
            &web,
        ],
    );
    bed.docker_ok(
        "edge-1",
        &[
            "exec",
            "imp-solo",
            "sh",
            "-c",
            "echo kept-solo > /data/hello.txt",
        ],
    );
    bed.docker_ok(
        "edge-2",
        &[
            "run", "-d", "--name", "imp-side", "--label", "team=ops", &worker,
        ],
    );
    // And the same Compose project on both hosts, its cache scaled to three
    // containers on edge-1.
    let dir = std::env::temp_dir().join(format!("berth-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\n\
             services:\n\
             \x20 web:\n    image: {web}\n    ports: [\"18311:80\"]\n    environment:\n      GREETING: hi\n    volumes: [\"data:/data\"]\n    restart: always\n\
             \x20 cache:\n    image: {worker}\n    labels:\n      tier: cache\n\
             volumes:\n  data: {{}}\n"
        ),
    )?;
    for host in ["edge-1", "edge-2"] {
        let scale: &[&str] = if host == "edge-1" {
            &["--scale", "cache=3"]
        } else {
            &[]
        };
        compose_up(bed, host, &file, scale)?;
        bed.docker_ok(
            host,
            &[
                "exec",
                "impshop_web_1",
                "sh",
                "-c",
                &format!("echo kept-{host} > /data/hello.txt"),
            ],
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Import both hosts into one repo (berth.yaml names the bed's hosts,
    // and not yet its registry, which serves plain HTTP).
    let repo = Repo::new();
    let registry = bed.get("BED_REGISTRY");
    let inventory = bed
        .inventory(PROJECT)
        .replace(&bed.insecure_registries(), "");
    check!(!inventory.contains(&registry), "{inventory}");
    repo.write("berth.yaml", &inventory);
    let path = repo.path().display().to_string();
    for host in ["edge-1", "edge-2"] {
        let run = berth(repo.path(), &["import", "--host", host, "--out", &path]);
        expect_code(&run, 0);
        check!(run.stdout.contains("takes over"), "{run}");
        // The first import adds the registry; the second finds it listed.
        let added = format!("added `{registry}` to `settings.insecure_registries` in berth.yaml");
        check!(
            run.stdout.contains(&added) == (host == "edge-1"),
            "{host}: {run}"
        );
    }
    let inventory = std::fs::read_to_string(repo.path().join("berth.yaml"))?;
    check!(
        inventory.contains(&format!("  insecure_registries: [\"{registry}\"]\n")),
        "{inventory}"
    );
    // The scaled cache: one service, three replicas, each taking over its
    // container under its name.
    let shop = std::fs::read_to_string(repo.path().join("stacks/impshop/compose.yaml"))?;
    check!(
        shop.contains("      replicas: 3\n")
            && shop.contains(
                "      adopt: [\"impshop_cache_1\", \"impshop_cache_2\", \"impshop_cache_3\"]\n"
            ),
        "{shop}"
    );
    let solo = std::fs::read_to_string(repo.path().join("stacks/imp-solo/compose.yaml"))?;
    check!(
        solo.contains("# API_TOKEN: left out") && !solo.contains("s3cret-value"),
        "the credential must be left out, by name only:\n{solo}"
    );
    for stack in ["impshop", "impshop-edge-2", "imp-side"] {
        let file = repo.path().join(format!("stacks/{stack}/compose.yaml"));
        check!(file.is_file(), "no {}", file.display());
    }
    repo.commit("imported");

    let run = berth(repo.path(), &["validate", "--repo", &path]);
    expect_code(&run, 0);

    // The plan takes each container over: only berth's labels change, but
    // for the credential the import left out, which it names.
    let run = plan(&repo, &["--format", "json"]);
    expect_code(&run, 0);
    let json: serde_json::Value =
        serde_json::from_str(&run.stdout).map_err(|e| format!("plan is not JSON: {e}\n{run}"))?;
    let mut seen = Vec::new();
    for host in json["hosts"].as_array().into_iter().flatten() {
        check!(
            host["blocked"].as_array().is_none_or(|b| b.is_empty()),
            "blocked: {host}"
        );
        for change in host["changes"].as_array().into_iter().flatten() {
            let name = change["name"].as_str().unwrap_or_default().to_string();
            let fields: Vec<&str> = change["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["field"].as_str())
                .collect();
            let reason = change["reason"].as_str().unwrap_or_default();
            check!(change["action"] == "replace", "{change}");
            check!(
                reason.starts_with(&format!("takes over `{name}`")),
                "{change}"
            );
            let expected: &[&str] = if name == "imp-solo" {
                &["environment.API_TOKEN"]
            } else {
                &[]
            };
            check!(fields == expected, "fields of {name}: {fields:?}\n{change}");
            seen.push(format!(
                "{}/{name}",
                host["host"].as_str().unwrap_or_default()
            ));
        }
    }
    seen.sort();
    check!(
        seen == [
            "edge-1/imp-solo",
            "edge-1/impshop_cache_1",
            "edge-1/impshop_cache_2",
            "edge-1/impshop_cache_3",
            "edge-1/impshop_web_1",
            "edge-2/imp-side",
            "edge-2/impshop_cache_1",
            "edge-2/impshop_web_1",
        ],
        "containers taken over: {seen:?}\n{run}"
    );
    check!(!run.stdout.contains("s3cret-value"), "{run}");

    // Apply: one replace each; the names stay, berth manages them now, and
    // the named volumes kept their files.
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("Plan: 0 to create, 8 to replace, 0 to remove."),
        "{run}"
    );
    let edge1 = bed.containers("edge-1", PROJECT);
    let edge2 = bed.containers("edge-2", PROJECT);
    check!(
        edge1.keys().collect::<Vec<_>>()
            == [
                "imp-solo",
                "impshop_cache_1",
                "impshop_cache_2",
                "impshop_cache_3",
                "impshop_web_1"
            ]
            && edge2.keys().collect::<Vec<_>>() == ["imp-side", "impshop_cache_1", "impshop_web_1"],
        "managed after apply: {edge1:?} {edge2:?}"
    );
    for (host, cs) in [("edge-1", &edge1), ("edge-2", &edge2)] {
        for (name, c) in cs.iter() {
            check!(c.state == "running", "{name} on {host} is {}", c.state);
        }
    }
    let kept = read_file(bed, "edge-1", "imp-solo", "/data/hello.txt");
    check!(kept == "kept-solo", "imp-solo's volume: {kept:?}");
    for host in ["edge-1", "edge-2"] {
        let kept = read_file(bed, host, "impshop_web_1", "/data/hello.txt");
        check!(
            kept == format!("kept-{host}"),
            "{host} impshop's volume: {kept:?}"
        );
    }
    let body = bed.http_get("edge-1", 18310);
    check!(
        body.contains("berth-test web"),
        "edge-1:18310 answered {body:?}"
    );

    // Nothing left to do.
    let run = apply(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");

    // No repo yet: `--ssh` writes a berth.yaml naming the host and the
    // registry its container comes from, then imports; that repo plans
    // the take-over as written.
    bed.docker_ok("edge-3", &["run", "-d", "--name", "imp-far", &worker]);
    let fresh = Repo::new();
    let out = fresh.path().join("adopted");
    let out_text = out.display().to_string();
    let key = bed.get("BED_KEY");
    let known_hosts = bed.get("BED_KNOWN_HOSTS");
    let target = format!("root@{}", bed.addr("edge-3"));
    let run = berth(
        fresh.path(),
        &[
            "import",
            "--host",
            "edge-3",
            "--ssh",
            &target,
            "--out",
            &out_text,
            "-i",
            &key,
            "--known-hosts",
            &known_hosts,
        ],
    );
    expect_code(&run, 0);
    let inventory = std::fs::read_to_string(out.join("berth.yaml"))?;
    check!(
        inventory.contains("name: \"edge-3\"")
            && inventory.contains(&format!("address: \"{}\"", bed.addr("edge-3")))
            && inventory.contains(&format!("  insecure_registries: [\"{registry}\"]\n")),
        "{inventory}\n{run}"
    );
    let run = berth(
        fresh.path(),
        &[
            "plan",
            "--repo",
            &out_text,
            "-i",
            &key,
            "--known-hosts",
            &known_hosts,
        ],
    );
    expect_code(&run, 0);
    check!(run.stdout.contains("takes over `imp-far`"), "{run}");
    Ok(())
}
