//! Tags resolved to digests in the plan and pinned at apply: a tag pushed
//! again is a planned replace (or, with `pull_policy: missing`, reported
//! as available), every host runs the digest the plan named even when the
//! tag moves mid-rollout, a saved plan is refused when a tag moved since,
//! and registries that want credentials or are down are said so by name.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{apply, plan};
use crate::support::{
    berth, berth_env, berth_spawn, docker_cli, expect_code, finish, Bed, Failed, Repo, HOSTS,
};

/// Builds a new image on edge-3's engine (`FROM` the bed's worker image,
/// with `marker` as a label: a new config, so a new manifest digest, and no
/// layer to build) and pushes it as `image`; returns its digest. The tag is
/// then removed from edge-3, so hosts get the bytes only by pulling.
fn push_build(bed: &Bed, image: &str, marker: &str) -> Result<String, Failed> {
    let sock = format!("unix://{}", bed.sock("edge-3"));
    let dockerfile = format!(
        "FROM {}\nLABEL berth.test.build=\"{marker}\"\n",
        bed.get("BED_WORKER")
    );
    let mut build = Command::new(docker_cli())
        .args(["-H", &sock, "build", "-q", "-t", image, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    build
        .stdin
        .take()
        .ok_or_else(|| Failed::from("no stdin for docker build"))?
        .write_all(dockerfile.as_bytes())?;
    let out = build.wait_with_output()?;
    check!(
        out.status.success(),
        "docker build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bed.docker_ok("edge-3", &["push", "-q", image]);
    let digests = bed.docker_ok(
        "edge-3",
        &[
            "image",
            "inspect",
            "-f",
            "{{join .RepoDigests \" \"}}",
            image,
        ],
    );
    let repository = image.rsplit_once(':').map_or(image, |(r, _)| r);
    let digest = digests
        .split_whitespace()
        .find_map(|d| d.strip_prefix(&format!("{repository}@")))
        .map(str::to_string)
        .ok_or_else(|| Failed::from(format!("no digest of `{image}` after push: {digests}")))?;
    bed.docker_ok("edge-3", &["rmi", image]);
    Ok(digest)
}

/// `sha256:` and the first 12 hex digits, as the plan's words show a digest.
fn short(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// What each host's container `name` was created from (`Config.Image`)
/// and the tag kept in its `berth.image` label.
fn created_from(bed: &Bed, hosts: &[&str], name: &str) -> Vec<(String, String)> {
    hosts
        .iter()
        .map(|h| {
            let out = bed.docker_ok(
                h,
                &[
                    "inspect",
                    "-f",
                    "{{.Config.Image}} {{index .Config.Labels \"berth.image\"}}",
                    name,
                ],
            );
            let (image, tag) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
            (image.to_string(), tag.to_string())
        })
        .collect()
}

/// A repo with one global service `app/worker` of `image` on every host,
/// with the `pull_policy` line `policy` (may be empty) and `extra` keys.
fn global_repo(bed: &Bed, project: &str, image: &str, policy: &str, extra: &str) -> Repo {
    let repo = bed.repo(project);
    repo.write(
        "stacks/app/compose.yaml",
        &format!(
            "services:\n  worker:\n    image: {image}\n{policy}    stop_grace_period: 1s\n    deploy:\n      mode: global\n{extra}"
        ),
    );
    repo.commit("one global worker");
    repo
}

#[test]
fn a_tag_pushed_again_is_a_planned_replace_and_every_host_runs_the_new_digest() -> Result<(), Failed>
{
    let bed = &Bed::take();
    let project = "t-dig-moved";
    let _scope = bed.scope(project);
    let image = format!("{}/berth/t-dig-moved:live", bed.get("BED_REGISTRY"));
    let repository = image.trim_end_matches(":live");
    let first = push_build(bed, &image, "first")?;
    let repo = global_repo(bed, project, &image, "    pull_policy: always\n", "");

    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains(&format!("image = \"{image}\" ({}…)", short(&first))),
        "the plan does not name the digest of its creates\n{run}"
    );
    let pinned = (format!("{repository}@{first}"), image.clone());
    check!(
        created_from(bed, &HOSTS, "app-worker-1") == vec![pinned.clone(); 3],
        "not created from the pinned digest with the tag in a label: {:?}",
        created_from(bed, &HOSTS, "app-worker-1")
    );
    let again = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&again, 0);

    // Pushed again under the same tag: a planned replace on every host,
    // apart from the commit's changes, naming both digests.
    let second = push_build(bed, &image, "second")?;
    let moved = format!("tag live moved: {}… -> {}…", short(&first), short(&second));
    let shown = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&shown, 2);
    check!(shown.stdout.contains(&moved), "{shown}");
    check!(
        shown
            .stdout
            .contains("Plan: 0 to create, 3 to replace, 0 to remove."),
        "{shown}"
    );
    // The hosts' engines name the same digest (`settings.resolve_from: host`).
    let inventory = bed
        .inventory(project)
        .replace("settings:\n", "settings:\n  resolve_from: host\n");
    repo.write("berth.yaml", &inventory);
    repo.commit("resolve through the hosts");
    let through_hosts = plan(&repo, &[]);
    expect_code(&through_hosts, 0);
    check!(through_hosts.stdout.contains(&moved), "{through_hosts}");

    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    check!(run.stdout.contains(&moved), "{run}");
    let now = (format!("{repository}@{second}"), image.clone());
    check!(
        created_from(bed, &HOSTS, "app-worker-1") == vec![now; 3],
        "not every host runs the new digest: {:?}",
        created_from(bed, &HOSTS, "app-worker-1")
    );
    let after = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&after, 0);
    Ok(())
}

#[test]
fn a_saved_plan_is_refused_when_its_tag_moved_since() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-dig-saved";
    let _scope = bed.scope(project);
    let image = format!("{}/berth/t-dig-saved:live", bed.get("BED_REGISTRY"));
    let first = push_build(bed, &image, "first")?;
    let repo = global_repo(bed, project, &image, "    pull_policy: always\n", "");
    expect_code(&apply(&repo, &[]), 0);
    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();

    let second = push_build(bed, &image, "second")?;
    let saved = repo.path().join("plan.json").display().to_string();
    let shown = plan(&repo, &["--save", &saved]);
    expect_code(&shown, 0);
    check!(
        shown.stdout.contains(&format!(
            "tag live moved: {}… -> {}…",
            short(&first),
            short(&second)
        )),
        "{shown}"
    );
    let third = push_build(bed, &image, "third")?;
    let run = apply(&repo, &["--plan", &saved]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&format!(
            "image `{image}`: {second} when the plan was saved, {third} now"
        )),
        "the refusal does not name the image and both digests\n{run}"
    );
    check!(run.stderr.contains("no host was changed"), "{run}");
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(before == after, "a refused saved plan changed containers");
    Ok(())
}

#[test]
fn with_pull_policy_missing_a_moved_tag_is_available_not_applied() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-dig-missing";
    let _scope = bed.scope(project);
    let image = format!("{}/berth/t-dig-missing:live", bed.get("BED_REGISTRY"));
    let repository = image.trim_end_matches(":live");
    let first = push_build(bed, &image, "first")?;
    let repo = global_repo(bed, project, &image, "    pull_policy: missing\n", "");
    expect_code(&apply(&repo, &[]), 0);

    let second = push_build(bed, &image, "second")?;
    let shown = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&shown, 0);
    check!(
        shown.stdout.contains(&format!(
            "app/worker.1 {image} moved: {}… -> {}…, available, not applied",
            short(&first),
            short(&second)
        )),
        "{shown}"
    );
    check!(
        shown.stdout.contains("3 container(s) run a tag that moved"),
        "{shown}"
    );
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    let pinned = (format!("{repository}@{first}"), image.clone());
    check!(
        created_from(bed, &HOSTS, "app-worker-1") == vec![pinned; 3],
        "a moved tag was applied under `pull_policy: missing`"
    );
    Ok(())
}

/// `pull_policy: daily` counts from when berth last followed the tag on a
/// host (the record beside the run lock), not from the engine's tag time:
/// a tag pushed again just after a deploy is available, not applied; once
/// that record is a day old, the moved tag is a planned replace; once
/// followed, the next push waits again.
#[test]
fn with_pull_policy_daily_a_moved_tag_is_followed_a_day_after_the_last_check() -> Result<(), Failed>
{
    let bed = &Bed::take();
    let project = "t-dig-daily";
    let _scope = bed.scope(project);
    let image = format!("{}/berth/t-dig-daily:live", bed.get("BED_REGISTRY"));
    let repository = image.trim_end_matches(":live");
    let first = push_build(bed, &image, "first")?;
    let repo = global_repo(bed, project, &image, "    pull_policy: daily\n", "");
    expect_code(&apply(&repo, &[]), 0);

    let second = push_build(bed, &image, "second")?;
    let shown = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&shown, 0);
    check!(
        shown.stdout.contains(&format!(
            "app/worker.1 {image} moved: {}… -> {}…, available, not applied",
            short(&first),
            short(&second)
        )),
        "checked just now, yet not shown as available\n{shown}"
    );

    // Each host's record says berth checked the image two days ago.
    let age = format!(
        "f=/run/lock/berth-{project}.lock.checked; grep -qF ' {image}' $f && sed -i \"s|^[0-9]* |$(( $(date +%s) - 172800 )) |\" $f"
    );
    for host in HOSTS {
        check!(
            bed.ssh(host, &age).status.success(),
            "no check of `{image}` recorded beside the run lock on {host}"
        );
    }
    let moved = format!("tag live moved: {}… -> {}…", short(&first), short(&second));
    let due = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&due, 2);
    check!(due.stdout.contains(&moved), "{due}");
    check!(
        due.stdout
            .contains("Plan: 0 to create, 3 to replace, 0 to remove."),
        "{due}"
    );
    expect_code(&apply(&repo, &[]), 0);
    let now = (format!("{repository}@{second}"), image.clone());
    check!(
        created_from(bed, &HOSTS, "app-worker-1") == vec![now; 3],
        "not every host followed the tag: {:?}",
        created_from(bed, &HOSTS, "app-worker-1")
    );

    // Followed just now: the next push waits its day again.
    let third = push_build(bed, &image, "third")?;
    let again = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&again, 0);
    check!(
        again.stdout.contains(&format!(
            "moved: {}… -> {}…, available, not applied",
            short(&second),
            short(&third)
        )),
        "{again}"
    );
    Ok(())
}

/// A Docker credential helper named in the runner's Docker config
/// (`credHelpers`) is run for the registry, as the Docker CLI runs it: a
/// real executable on PATH speaking the protocol (the registry on stdin,
/// JSON on stdout) gives the bed's authenticated registry its credentials,
/// for the plan's resolution and the hosts' pulls. A helper that is not
/// installed, or fails, is named, exit 1, no host touched.
#[test]
fn a_credential_helper_in_the_docker_config_is_run_for_the_registry() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-dig-helper";
    let _scope = bed.scope(project);
    let image = bed.get("BED_AUTH_WEB_V1");
    let registry = bed.get("BED_AUTH_REGISTRY");
    let (user, password) = (bed.get("BED_AUTH_USER"), bed.get("BED_AUTH_PASSWORD"));
    let repo = bed.repo(project);
    repo.write(
        "stacks/app/compose.yaml",
        &format!("services:\n  web:\n    image: {image}\n    stop_grace_period: 1s\n"),
    );
    repo.commit("an image behind a credential helper");
    let path = repo.path().display().to_string();

    let bin = tempfile::tempdir()?;
    let asked = bin.path().join("asked");
    let helper = bin.path().join("docker-credential-berthbed");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server || true\necho \"$server\" >> {asked}\nif [ \"$server\" = {registry} ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            asked = asked.display()
        ),
    )?;
    let failing = bin.path().join("docker-credential-berthbroken");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'keychain is locked' >&2\nexit 3\n",
    )?;
    for script in [&helper, &failing] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755))?;
    }
    let docker_config = |helper: &str| -> Result<tempfile::TempDir, Failed> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("config.json"),
            format!(
                r#"{{"auths": {{"{registry}": {{}}}}, "credHelpers": {{"{registry}": "{helper}"}}}}"#
            ),
        )?;
        Ok(dir)
    };
    let search = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_with = |command: &str, config: &tempfile::TempDir| {
        berth_env(
            repo.path(),
            &[
                command,
                "--repo",
                &path,
                "--docker-config",
                &config.path().display().to_string(),
            ],
            &[("PATH", search.as_str())],
        )
    };
    let nothing_anywhere = |bed: &Bed| HOSTS.iter().all(|h| bed.containers(h, project).is_empty());

    // Not installed, or failing: named, with what to do; nothing touched.
    let absent = docker_config("berthabsent")?;
    let run = run_with("apply", &absent);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&format!(
            "the Docker credential helper `docker-credential-berthabsent` for registry `{registry}` is not installed"
        )),
        "{run}"
    );
    check!(
        run.stderr
            .contains("help: install `docker-credential-berthabsent`"),
        "{run}"
    );
    check!(run.stderr.contains("no host was changed"), "{run}");
    let broken = docker_config("berthbroken")?;
    let run = run_with("plan", &broken);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&format!(
            "the Docker credential helper `docker-credential-berthbroken` for registry `{registry}` failed"
        )) && run.stderr.contains("keychain is locked"),
        "{run}"
    );
    check!(nothing_anywhere(bed), "a failed helper touched a host");

    // The working helper: resolved, pinned, pulled by the host with the
    // helper's credentials; the secret is in no output. The hosts drop
    // what earlier tests pulled from that registry, so they must pull.
    let repository = format!("{registry}/berth/web");
    for host in HOSTS {
        let listed = bed.docker_ok(host, &["images", "--format", "{{.Repository}} {{.ID}}"]);
        for line in listed.lines() {
            if let Some((name, id)) = line.split_once(' ') {
                if name == repository {
                    bed.docker(host, &["rmi", "-f", id]);
                }
            }
        }
    }
    let good = docker_config("berthbed")?;
    let run = run_with("apply", &good);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains(&format!("image = \"{image}\" (sha256:")),
        "{run}"
    );
    check!(
        !run.stdout.contains(&password) && !run.stderr.contains(&password),
        "the secret was shown\n{run}"
    );
    let asked = std::fs::read_to_string(&asked)?;
    check!(
        asked.lines().next() == Some(registry.as_str()),
        "the helper was not asked for `{registry}`: {asked:?}"
    );
    let web_host = HOSTS
        .iter()
        .find(|h| bed.containers(h, project).contains_key("app-web-1"))
        .ok_or_else(|| Failed::from("app-web-1 runs nowhere"))?;
    let (from, tag) = created_from(bed, &[web_host], "app-web-1").remove(0);
    check!(
        from.starts_with(&format!("{registry}/berth/web@sha256:")) && tag == image,
        "{from} {tag}"
    );
    Ok(())
}

#[test]
fn a_tag_pushed_again_during_the_rollout_changes_nothing_the_plan_named() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-dig-midway";
    let _scope = bed.scope(project);
    let image = format!("{}/berth/t-dig-midway:live", bed.get("BED_REGISTRY"));
    let repository = image.trim_end_matches(":live");
    push_build(bed, &image, "first")?;
    // One host at a time, 3 s apart: room to push while it rolls out.
    let repo = global_repo(
        bed,
        project,
        &image,
        "    pull_policy: always\n",
        "      update_config:\n        parallelism: 1\n        delay: 3s\n",
    );
    expect_code(&apply(&repo, &[]), 0);

    let planned = push_build(bed, &image, "planned")?;
    let path = repo.path().display().to_string();
    let child = berth_spawn(repo.path(), &["apply", "--repo", &path]);
    // Once the first host runs the planned digest, the tag moves again.
    let started = Instant::now();
    // Mid-replace a host may have no `app-worker-1` for a moment.
    let on_planned = |bed: &Bed| {
        HOSTS
            .iter()
            .filter(|h| {
                let out = bed.docker(h, &["inspect", "-f", "{{.Config.Image}}", "app-worker-1"]);
                String::from_utf8_lossy(&out.stdout).trim() == format!("{repository}@{planned}")
            })
            .count()
    };
    while on_planned(bed) == 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The run is waited for whatever happens, then judged.
    let replaced_first = on_planned(bed);
    let later = (replaced_first >= 1).then(|| push_build(bed, &image, "later"));
    let midway = on_planned(bed);
    let run = finish(child, "berth apply");
    check!(
        replaced_first >= 1,
        "no host was replaced within 30 s\n{run}"
    );
    let later = later.ok_or_else(|| Failed::from("not pushed"))??;
    check!(
        midway < 3,
        "the rollout ended before the tag moved again: the test proves nothing\n{run}"
    );
    expect_code(&run, 0);
    check!(
        on_planned(bed) == 3,
        "not every host ended on the planned digest: {:?}",
        created_from(bed, &HOSTS, "app-worker-1")
    );
    // The next plan sees the move.
    let next = plan(&repo, &[]);
    expect_code(&next, 0);
    check!(
        next.stdout.contains(&format!(
            "tag live moved: {}… -> {}…",
            short(&planned),
            short(&later)
        )),
        "{next}"
    );
    Ok(())
}

#[test]
fn a_registry_with_credentials_resolves_with_the_runners_docker_config_or_says_why_not(
) -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-dig-auth";
    let _scope = bed.scope(project);
    let image = bed.get("BED_AUTH_WEB_V1");
    let registry = bed.get("BED_AUTH_REGISTRY");
    let repo = bed.repo(project);
    repo.write(
        "stacks/app/compose.yaml",
        &format!("services:\n  web:\n    image: {image}\n    stop_grace_period: 1s\n"),
    );
    repo.commit("an image behind credentials");
    let good = bed.get("BED_AUTH_DOCKER_CONFIG");
    let wrong = bed.get("BED_AUTH_DOCKER_CONFIG_WRONG");
    let path = repo.path().display().to_string();
    let nothing_anywhere = |bed: &Bed| HOSTS.iter().all(|h| bed.containers(h, project).is_empty());

    // Wrong credentials: said, by registry, before any host is touched.
    for command in ["plan", "apply"] {
        let run = berth(
            repo.path(),
            &[command, "--repo", &path, "--docker-config", &wrong],
        );
        expect_code(&run, 1);
        check!(
            run.stderr.contains(&format!(
                "registry `{registry}` refused the credentials from the runner's Docker config for image `{image}`"
            )),
            "{run}"
        );
        check!(run.stderr.contains("help: run `docker login"), "{run}");
        check!(run.stderr.contains("no host was changed"), "{run}");
        check!(!run.stderr.contains("not-the-password"), "{run}");
    }
    check!(nothing_anywhere(bed), "a failed resolution touched a host");
    // No credentials at all.
    let empty = tempfile::tempdir()?;
    let run = berth(
        repo.path(),
        &[
            "plan",
            "--repo",
            &path,
            "--docker-config",
            &empty.path().display().to_string(),
        ],
    );
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&format!(
            "registry `{registry}` wants credentials for image `{image}`"
        )),
        "{run}"
    );

    // The right ones: resolved, pinned, and pulled by the hosts.
    let run = berth(
        repo.path(),
        &["apply", "--repo", &path, "--docker-config", &good],
    );
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains(&format!("image = \"{image}\" (sha256:")),
        "{run}"
    );
    let web_host = HOSTS
        .iter()
        .find(|h| bed.containers(h, project).contains_key("app-web-1"))
        .ok_or_else(|| Failed::from("app-web-1 runs nowhere"))?;
    let (from, tag) = created_from(bed, &[web_host], "app-web-1").remove(0);
    check!(
        from.starts_with(&format!("{registry}/berth/web@sha256:")) && tag == image,
        "{from} {tag}"
    );

    // A registry that is down: named, exit 1, nothing changed.
    let down = format!("{}:5999/berth/web:v1", bed.get("BED_GATEWAY"));
    let inventory = bed.inventory(project).replace(
        "  insecure_registries: [",
        &format!(
            "  insecure_registries: [\"{}:5999\", ",
            bed.get("BED_GATEWAY")
        ),
    );
    repo.write("berth.yaml", &inventory);
    repo.write(
        "stacks/app/compose.yaml",
        &format!("services:\n  web:\n    image: {down}\n    stop_grace_period: 1s\n"),
    );
    repo.commit("a registry that is down");
    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&format!(
            "registry `{}:5999` is not reachable for image `{down}`",
            bed.get("BED_GATEWAY")
        )),
        "{run}"
    );
    check!(run.stderr.contains("no host was changed"), "{run}");
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(before == after, "a failed resolution changed containers");
    Ok(())
}
