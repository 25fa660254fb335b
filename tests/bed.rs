//! End-to-end tests of berth against the real test bed: three hosts, each its
//! own Docker Engine behind its own sshd, a local registry with test images.
//!
//! The harness brings the bed up when it is not running (and tears down what
//! it started), then runs the tests one at a time: they share three hosts,
//! and some stop a host's sshd. When the bed cannot come up every test fails
//! with a message saying how to start it; nothing passes silently.

mod support;

use std::time::Instant;

use libtest_mimic::{Arguments, Failed, Trial};
use support::{berth, berth_env, berth_spawn, expect_code, finish, Bed, Repo, HOSTS};

type BedTest = fn(&Bed) -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);

    let tests: Vec<(&str, BedTest)> = vec![
        (
            "apply_places_replicas_and_serves_http",
            apply_places_replicas_and_serves_http,
        ),
        ("second_apply_changes_nothing", second_apply_changes_nothing),
        (
            "compose_as_people_write_it_applies_and_follows_dotenv",
            compose_as_people_write_it_applies_and_follows_dotenv,
        ),
        (
            "image_change_replaces_only_that_service",
            image_change_replaces_only_that_service,
        ),
        (
            "removed_service_keeps_its_volume_and_data",
            removed_service_keeps_its_volume_and_data,
        ),
        ("drift_is_planned_then_healed", drift_is_planned_then_healed),
        (
            "unreachable_host_fails_run_others_converge",
            unreachable_host_fails_run_others_converge,
        ),
        ("host_key_mismatch_is_refused", host_key_mismatch_is_refused),
        (
            "malformed_inputs_fail_before_any_host",
            malformed_inputs_fail_before_any_host,
        ),
        (
            "failed_replace_rolls_back_to_old_container",
            failed_replace_rolls_back_to_old_container,
        ),
        (
            "status_shows_containers_and_sync",
            status_shows_containers_and_sync,
        ),
        ("example_repo_applies", example_repo_applies),
        (
            "concurrent_applies_take_turns",
            concurrent_applies_take_turns,
        ),
        (
            "bad_release_stops_after_first_batch",
            bad_release_stops_after_first_batch,
        ),
        (
            "start_first_new_is_healthy_before_old_stops",
            start_first_new_is_healthy_before_old_stops,
        ),
        (
            "failure_actions_rollback_pause_continue",
            failure_actions_rollback_pause_continue,
        ),
        (
            "rolling_release_through_haproxy_drops_no_request",
            rolling_release_through_haproxy_drops_no_request,
        ),
        (
            "depends_on_orders_creation_after_health",
            depends_on_orders_creation_after_health,
        ),
        (
            "failing_stack_rolls_back_while_the_good_one_converges",
            failing_stack_rolls_back_while_the_good_one_converges,
        ),
        (
            "killed_rollout_converges_on_next_run",
            killed_rollout_converges_on_next_run,
        ),
        (
            "saved_plan_applies_exactly_or_refuses",
            saved_plan_applies_exactly_or_refuses,
        ),
        (
            "reports_and_metrics_for_success_and_failure",
            reports_and_metrics_for_success_and_failure,
        ),
        (
            "killed_lock_holder_does_not_block",
            killed_lock_holder_does_not_block,
        ),
        (
            "secret_is_a_file_on_tmpfs_never_in_the_clear",
            secret_is_a_file_on_tmpfs_never_in_the_clear,
        ),
        (
            "secret_change_replaces_exactly_its_readers",
            secret_change_replaces_exactly_its_readers,
        ),
        (
            "secret_key_problems_change_no_host",
            secret_key_problems_change_no_host,
        ),
        (
            "only_trusted_signed_commits_deploy",
            only_trusted_signed_commits_deploy,
        ),
        (
            "compose_service_keys_reach_the_engine",
            compose_service_keys_reach_the_engine,
        ),
        (
            "ssh_config_reaches_a_host_only_through_a_bastion",
            ssh_config_reaches_a_host_only_through_a_bastion,
        ),
    ];

    // List mode and filtered-out runs need no bed.
    let listing = args.list;
    let mut started_here = false;
    let bed: Result<Bed, String> = if listing {
        Err("listing only".into())
    } else if Bed::is_up() {
        Bed::load()
    } else {
        let t = Instant::now();
        eprintln!("test bed is not up: starting it with tests/bed/testbed.sh up");
        match Bed::bring_up() {
            Ok(built) => {
                // `up` on a bed that only lacked its bastion adds just that:
                // the bed was not started here, so it stays up at the end.
                started_here = built;
                eprintln!("test bed up in {:.1}s", t.elapsed().as_secs_f64());
                Bed::load()
            }
            Err(e) => Err(e),
        }
    };

    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            let bed = bed.clone();
            Trial::test(name, move || match &bed {
                Ok(bed) => f(bed),
                Err(e) => Err(format!(
                    "the test bed is not available: {e}\n\
                     help: start it as root with `bash tests/bed/testbed.sh up` \
                     (it installs docker.io, openssh-server, docker-registry and busybox-static with apt)"
                )
                .into()),
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if started_here && std::env::var_os("BERTH_BED_KEEP").is_none() {
        eprintln!("tearing down the test bed this run started (set BERTH_BED_KEEP=1 to keep it)");
        Bed::tear_down();
    }
    conclusion.exit();
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

/// A repo of two stacks on the bed: `web` (2 replicas on role=web hosts,
/// fixed port) and `jobs` (a global worker on role=worker hosts).
fn two_stack_repo(bed: &Bed, project: &str, port: u16) -> Repo {
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

fn apply(repo: &Repo, extra: &[&str]) -> support::Run {
    let path = repo.path().display().to_string();
    let mut args = vec!["apply", "--repo", path.as_str()];
    args.extend_from_slice(extra);
    berth(repo.path(), &args)
}

fn plan(repo: &Repo, extra: &[&str]) -> support::Run {
    let path = repo.path().display().to_string();
    let mut args = vec!["plan", "--repo", path.as_str()];
    args.extend_from_slice(extra);
    berth(repo.path(), &args)
}

fn apply_places_replicas_and_serves_http(bed: &Bed) -> Result<(), Failed> {
    let project = "t-place";
    let _scope = bed.scope(project);
    let repo = two_stack_repo(bed, project, 18081);
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("Plan: 3 to create, 0 to replace, 0 to remove."),
        "{run}"
    );
    // Not a terminal: plain lines, never a progress bar or colour codes.
    check!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "progress bar or escape codes in a non-TTY log\n{run}"
    );
    // Nothing serves yet: both replicas go in one batch (still gated).
    check!(
        run.stderr.contains("rolling out `site/web`: batch 1 of 1"),
        "{run}"
    );

    let edge1 = bed.containers("edge-1", project);
    let edge2 = bed.containers("edge-2", project);
    let edge3 = bed.containers("edge-3", project);
    // Spread: one web replica on each role=web host; the worker only on edge-3.
    let web_names: Vec<String> = edge1.keys().chain(edge2.keys()).cloned().collect();
    check!(
        edge1.len() == 1 && edge2.len() == 1,
        "web replicas not spread: {edge1:?} {edge2:?}"
    );
    let mut sorted = web_names.clone();
    sorted.sort();
    check!(
        sorted == ["site-web-1", "site-web-2"],
        "unexpected names {sorted:?}"
    );
    check!(
        edge3.keys().collect::<Vec<_>>() == ["batch-worker-1"],
        "worker should run only on edge-3: {edge3:?}"
    );
    for (host, cs) in [("edge-1", &edge1), ("edge-2", &edge2), ("edge-3", &edge3)] {
        for (name, c) in cs.iter() {
            check!(c.state == "running", "{name} on {host} is {}", c.state);
        }
    }
    for host in ["edge-1", "edge-2"] {
        let body = bed.http_get(host, 18081);
        check!(
            body.trim() == "berth-test web v1",
            "{host}:18081 answered {body:?}"
        );
    }
    // Labels a person can audit with docker inspect alone.
    let commit = repo.git(&["rev-parse", "HEAD"]);
    let labels = bed.docker_ok(
        "edge-3",
        &["inspect", "-f", "{{json .Config.Labels}}", "batch-worker-1"],
    );
    check!(
        labels.contains(commit.trim()),
        "commit label missing: {labels}"
    );
    check!(
        labels.contains("\"berth.stack\":\"batch\""),
        "stack label missing: {labels}"
    );
    Ok(())
}

/// A stack written the way people write Compose files: image repo from
/// `.env`, tag from the environment, `env_file`, anchors and merge keys, an
/// `extends`ed service, a profile left out. Applied, served, idempotent;
/// a changed `.env` value replaces exactly the services that use it.
fn compose_as_people_write_it_applies_and_follows_dotenv(bed: &Bed) -> Result<(), Failed> {
    let project = "t-compose";
    let _scope = bed.scope(project);
    let web_image = bed.get("BED_WEB_V1");
    let Some((web_repo, web_tag)) = web_image.rsplit_once(':') else {
        return Err(format!("no tag in {web_image}").into());
    };
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    let dotenv = |greeting: &str| {
        format!(
            "# committed stack variables\nWEB_REPO={web_repo}\nWORKER_IMAGE=\"{}\"\nGREETING={greeting}\n",
            bed.get("BED_WORKER")
        )
    };
    repo.write("stacks/site/.env", &dotenv("hello"));
    repo.write(
        "stacks/site/web.env",
        "LOG_LEVEL=info\nexport MODE='production'\n",
    );
    repo.write(
        "stacks/site/compose.yaml",
        "\
version: \"3.8\"
x-defaults: &defaults
  restart: unless-stopped
  stop_grace_period: 1s
services:
  web:
    <<: *defaults
    image: ${WEB_REPO}:${WEB_TAG:?set WEB_TAG}
    ports: [\"18095:80\"]
    env_file: web.env
    environment:
      GREETING: ${GREETING:-hi}
    deploy:
      replicas: 2
      placement:
        constraints: [node.labels.role == web]
  worker:
    <<: *defaults
    image: ${WORKER_IMAGE}
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == worker]
  worker-b:
    extends: worker
    environment:
      QUEUE: b
  edge:
    image: ${WORKER_IMAGE}
    container_name: site-edge
    expose: [\"8080\"]
    depends_on:
      web: {condition: service_healthy}
    deploy:
      placement:
        constraints: [node.hostname == edge-1]
  debug:
    image: ${WORKER_IMAGE}
    profiles: [debug]
",
    );
    repo.commit("compose as people write it");
    let path = repo.path().display().to_string();
    let env = [("WEB_TAG", web_tag)];
    let run = berth_env(repo.path(), &["apply", "--repo", &path], &env);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("Plan: 5 to create, 0 to replace, 0 to remove."),
        "{run}"
    );
    // `container_name` names the container; `expose` reaches the engine.
    let exposed = bed.docker_ok(
        "edge-1",
        &[
            "inspect",
            "-f",
            "{{json .Config.ExposedPorts}}",
            "site-edge",
        ],
    );
    check!(exposed.contains("8080/tcp"), "site-edge exposes {exposed}");
    check!(
        run.stderr.contains("`version` is obsolete"),
        "no warning about `version`\n{run}"
    );
    for host in ["edge-1", "edge-2"] {
        let body = bed.http_get(host, 18095);
        check!(
            body.trim() == "berth-test web v1",
            "{host}:18095 answered {body:?}"
        );
    }
    // The environment of every web replica, whichever host it landed on.
    let web_env = || {
        ["edge-1", "edge-2"]
            .iter()
            .flat_map(|host| {
                bed.containers(host, project)
                    .into_keys()
                    .filter(|n| n.starts_with("site-web-"))
                    .map(|n| bed.docker_ok(host, &["inspect", "-f", "{{json .Config.Env}}", &n]))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let envs = web_env();
    check!(
        envs.len() == 2
            && envs
                .iter()
                .all(|e| e.contains("GREETING=hello") && e.contains("MODE=production")),
        "web environment: {envs:?}"
    );
    let edge3: Vec<String> = bed.containers("edge-3", project).keys().cloned().collect();
    check!(
        edge3 == ["site-worker-1", "site-worker-b-1"],
        "edge-3 runs {edge3:?} (debug is in a profile left out)"
    );

    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    let run = berth_env(
        repo.path(),
        &["apply", "--repo", &path, "--detailed-exitcode"],
        &env,
    );
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(before == after, "a no-op apply changed containers");

    repo.write("stacks/site/.env", &dotenv("bonjour"));
    repo.commit("greeting");
    let run = berth_env(repo.path(), &["apply", "--repo", &path], &env);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("Plan: 0 to create, 2 to replace, 0 to remove."),
        "only the web replicas use GREETING\n{run}"
    );
    check!(
        run.stdout
            .contains("~ variables.GREETING = \"hello\" -> \"bonjour\""),
        "the plan must name the variable that changed\n{run}"
    );
    let workers = bed.containers("edge-3", project);
    check!(
        workers == before[2],
        "the workers were touched: {workers:?}"
    );
    let envs = web_env();
    check!(
        envs.len() == 2 && envs.iter().all(|e| e.contains("GREETING=bonjour")),
        "web environment: {envs:?}"
    );
    Ok(())
}

fn second_apply_changes_nothing(bed: &Bed) -> Result<(), Failed> {
    let project = "t-idem";
    let _scope = bed.scope(project);
    let repo = two_stack_repo(bed, project, 18082);
    expect_code(&apply(&repo, &[]), 0);
    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();

    let run = apply(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(
        before == after,
        "containers changed on a no-op apply:\n{before:?}\n{after:?}"
    );

    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");
    Ok(())
}

fn image_change_replaces_only_that_service(bed: &Bed) -> Result<(), Failed> {
    let project = "t-image";
    let _scope = bed.scope(project);
    let repo = two_stack_repo(bed, project, 18083);
    // Deploy from the git URL (clone into the cache), as a timer would.
    let url = repo.url();
    let run = berth(repo.path(), &["apply", "--repo", &url]);
    expect_code(&run, 0);
    let worker_before = bed.containers("edge-3", project);

    let compose = std::fs::read_to_string(repo.path().join("stacks/site/compose.yaml"))?;
    repo.write(
        "stacks/site/compose.yaml",
        &compose.replace(&bed.get("BED_WEB_V1"), &bed.get("BED_WEB_V2")),
    );
    let commit = repo.commit("web v2");

    let run = berth(
        repo.path(),
        &["plan", "--repo", &url, "--detailed-exitcode"],
    );
    expect_code(&run, 2);
    check!(
        run.stdout.contains(&commit[..12]),
        "plan does not name the commit\n{run}"
    );
    check!(
        run.stdout.contains("~ site/web.1") && run.stdout.contains("~ site/web.2"),
        "{run}"
    );
    check!(run.stdout.contains("replace (image)"), "{run}");
    check!(
        run.stdout.contains(&format!(
            "~ image = \"{}\" -> \"{}\"",
            bed.get("BED_WEB_V1"),
            bed.get("BED_WEB_V2")
        )),
        "field diff missing\n{run}"
    );
    check!(
        !run.stdout.contains("batch/worker"),
        "worker must not change\n{run}"
    );
    check!(
        run.stdout
            .contains("Plan: 0 to create, 2 to replace, 0 to remove."),
        "{run}"
    );

    let run = berth(repo.path(), &["apply", "--repo", &url]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        let body = bed.http_get(host, 18083);
        check!(
            body.trim() == "berth-test web v2",
            "{host} answered {body:?}"
        );
    }
    check!(
        bed.containers("edge-3", project) == worker_before,
        "worker was touched"
    );
    let run = berth(
        repo.path(),
        &["plan", "--repo", &url, "--detailed-exitcode"],
    );
    expect_code(&run, 0);
    Ok(())
}

fn removed_service_keeps_its_volume_and_data(bed: &Bed) -> Result<(), Failed> {
    let project = "t-volume";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    repo.write(
        "stacks/store/compose.yaml",
        &format!(
            "services:\n  keeper:\n    image: {img}\n    entrypoint: [\"sh\", \"-c\", \"echo precious > /data/marker; exec sleep 100000\"]\n    stop_grace_period: 1s\n    volumes:\n      - store:/data\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-2]\n  other:\n    image: {img}\n    stop_grace_period: 1s\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-2]\nvolumes:\n  store: {{}}\n",
            img = bed.get("BED_WORKER")
        ),
    );
    repo.commit("keeper with a volume");
    expect_code(&apply(&repo, &[]), 0);
    check!(
        bed.containers("edge-2", project)
            .contains_key("store-keeper-1"),
        "keeper not created"
    );

    let compose = std::fs::read_to_string(repo.path().join("stacks/store/compose.yaml"))?;
    let without_keeper = {
        let start = compose.find("  keeper:").ok_or("no keeper")?;
        let end = compose.find("  other:").ok_or("no other")?;
        format!("{}{}", &compose[..start], &compose[end..])
    };
    repo.write("stacks/store/compose.yaml", &without_keeper);
    repo.commit("drop keeper");
    let run = plan(&repo, &[]);
    check!(
        run.stdout.contains("- store/keeper.1")
            && run.stdout.contains("service no longer in the repo"),
        "{run}"
    );
    check!(
        !run.stdout.contains("volume store_store"),
        "a volume must never be planned for removal\n{run}"
    );
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    let left = bed.containers("edge-2", project);
    check!(
        !left.contains_key("store-keeper-1"),
        "keeper still there: {left:?}"
    );
    check!(
        left.contains_key("store-other-1"),
        "other service was removed: {left:?}"
    );
    let data = bed.docker_ok(
        "edge-2",
        &[
            "run",
            "--rm",
            "--pull=never",
            "--entrypoint",
            "cat",
            "-v",
            "store_store:/data",
            &bed.get("BED_WORKER"),
            "/data/marker",
        ],
    );
    check!(data.trim() == "precious", "volume data lost: {data:?}");
    Ok(())
}

fn drift_is_planned_then_healed(bed: &Bed) -> Result<(), Failed> {
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

fn unreachable_host_fails_run_others_converge(bed: &Bed) -> Result<(), Failed> {
    let project = "t-down";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    repo.write(
        "stacks/all/compose.yaml",
        &format!(
            "services:\n  worker:\n    image: {img}\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n",
            img = bed.get("BED_WORKER")
        ),
    );
    repo.commit("global worker");
    bed.control("sshd-stop", "edge-3");
    let run = apply(&repo, &[]);
    bed.control("sshd-start", "edge-3");
    expect_code(&run, 1);
    check!(
        run.stderr.contains("edge-3"),
        "error does not name the host\n{run}"
    );
    check!(
        !run.stderr.contains("`edge-1`") && !run.stderr.contains("`edge-2`"),
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

fn host_key_mismatch_is_refused(bed: &Bed) -> Result<(), Failed> {
    let project = "t-hostkey";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    repo.write(
        "stacks/all/compose.yaml",
        &format!(
            "services:\n  worker:\n    image: {img}\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n",
            img = bed.get("BED_WORKER")
        ),
    );
    repo.commit("global worker");
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

fn malformed_inputs_fail_before_any_host(bed: &Bed) -> Result<(), Failed> {
    // The inventory points at a closed port: if berth contacted a host the
    // output would carry a connection error instead of the spec error.
    let inventory = "project: t-bad\nhosts:\n  - name: edge-1\n    address: 127.0.0.1\n    port: 1\n    labels: { role: web }\n";
    let img = bed.get("BED_WEB_V1");
    let cases: Vec<(&str, String, &str)> = vec![
        ("yaml syntax error", format!("services:\n  web:\n    image: {img}\n    ports: [\"80:80\"\n"), "stacks/web/compose.yaml:"),
        ("unknown key", format!("services:\n  web:\n    image: {img}\n    volumez: [data:/data]\n"), "stacks/web/compose.yaml:4:5"),
        ("bad port", format!("services:\n  web:\n    image: {img}\n    ports: [\"80800:80\"]\n"), "stacks/web/compose.yaml:4:"),
        ("impossible constraint", format!("services:\n  web:\n    image: {img}\n    deploy:\n      placement:\n        constraints: [node.labels.role == db]\n"), "stacks/web/compose.yaml:6:"),
        ("bad image", "services:\n  web:\n    image: \"Not A/Valid:Image\"\n".to_string(), "stacks/web/compose.yaml:3:"),
    ];
    for (what, compose, location) in cases {
        let repo = Repo::new();
        repo.write("berth.yaml", inventory);
        repo.write("stacks/web/compose.yaml", &compose);
        repo.commit(what);
        for cmd in ["validate", "plan", "apply"] {
            let path = repo.path().display().to_string();
            let run = berth(repo.path(), &[cmd, "--repo", &path]);
            expect_code(&run, 1);
            check!(
                run.stderr.contains(location),
                "{what}: `{cmd}` does not point at {location}\n{run}"
            );
            check!(
                run.stderr.contains("no host was contacted"),
                "{what}\n{run}"
            );
            check!(
                !run.stderr.contains("unreachable") && !run.stderr.contains("refused"),
                "{what}: a host was contacted\n{run}"
            );
        }
    }
    // A stack directory without its compose file.
    let repo = Repo::new();
    repo.write("berth.yaml", inventory);
    repo.write("stacks/ghost/README", "no compose file here\n");
    repo.commit("ghost stack");
    let path = repo.path().display().to_string();
    let run = berth(repo.path(), &["plan", "--repo", &path]);
    expect_code(&run, 1);
    check!(run.stderr.contains("stacks/ghost/compose.yaml"), "{run}");

    // A secret committed in the clear is refused, never deployed.
    let repo = Repo::new();
    repo.write("berth.yaml", inventory);
    repo.write("stacks/web/secrets/db.pgp", "not really encrypted\n");
    repo.write(
        "stacks/web/compose.yaml",
        &format!("services:\n  web:\n    image: {img}\n    secrets: [db]\nsecrets:\n  db:\n    file: ./secrets/db.pgp\n"),
    );
    repo.commit("secret");
    let path = repo.path().display().to_string();
    let run = berth(repo.path(), &["apply", "--repo", &path]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("stacks/web/compose.yaml:")
            && run.stderr.contains(
                "secret file `stacks/web/secrets/db.pgp` of secret `db` is not an OpenPGP message"
            )
            && run.stderr.contains("berth secret encrypt"),
        "{run}"
    );
    check!(!run.stderr.contains("not really encrypted"), "{run}");
    check!(run.stderr.contains("no host was contacted"), "{run}");
    Ok(())
}

fn failed_replace_rolls_back_to_old_container(bed: &Bed) -> Result<(), Failed> {
    let project = "t-rollback";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

fn status_shows_containers_and_sync(bed: &Bed) -> Result<(), Failed> {
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

/// The README's tour: the example repo, applied to the bed as it is shipped.
fn example_repo_applies(bed: &Bed) -> Result<(), Failed> {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo");
    let project = "example";
    let _scope = bed.scope(project);
    let path = example.display().to_string();
    let run = berth(&example, &["apply", "--repo", &path, "--detailed-exitcode"]);
    expect_code(&run, 2);
    let run = berth(&example, &["apply", "--repo", &path, "--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");
    let total: usize = HOSTS.iter().map(|h| bed.containers(h, project).len()).sum();
    check!(
        total >= 4,
        "example should run at least 4 containers, runs {total}"
    );
    Ok(())
}

fn concurrent_applies_take_turns(bed: &Bed) -> Result<(), Failed> {
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

fn killed_lock_holder_does_not_block(bed: &Bed) -> Result<(), Failed> {
    let project = "t-lockkill";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    let compose = |img: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n"
        )
    };
    // A release that never turns healthy keeps the first run busy, holding the lock.
    repo.write(
        "stacks/hold/compose.yaml",
        &compose(&bed.get("BED_WEB_BAD")),
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
    repo.write("stacks/hold/compose.yaml", &compose(&bed.get("BED_WEB_V1")));
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

fn saved_plan_applies_exactly_or_refuses(bed: &Bed) -> Result<(), Failed> {
    let project = "t-saved";
    let _scope = bed.scope(project);
    let repo = two_stack_repo(bed, project, 18088);
    expect_code(&apply(&repo, &[]), 0);
    let path = repo.path().display().to_string();
    let saved = repo.path().join("plan.json").display().to_string();
    let retag = |from: &str, to: &str| -> Result<String, Failed> {
        let compose = std::fs::read_to_string(repo.path().join("stacks/site/compose.yaml"))?;
        repo.write(
            "stacks/site/compose.yaml",
            &compose.replace(&bed.get(from), &bed.get(to)),
        );
        Ok(repo.commit(to))
    };

    // Reviewed, then applied as saved.
    retag("BED_WEB_V1", "BED_WEB_V2")?;
    let shown = berth(repo.path(), &["plan", "--repo", &path, "--save", &saved]);
    expect_code(&shown, 0);
    let run = berth(repo.path(), &["apply", "--repo", &path, "--plan", &saved]);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("Plan: 0 to create, 2 to replace, 0 to remove."),
        "{run}"
    );
    check!(
        run.stdout.starts_with(&shown.stdout),
        "apply did not run the plan it showed\n{shown}\n{run}"
    );
    for host in ["edge-1", "edge-2"] {
        check!(
            bed.http_get(host, 18088).trim() == "berth-test web v2",
            "{host} not on v2"
        );
    }

    // Saved, then a container it covers is changed by hand: refused.
    retag("BED_WEB_V2", "BED_WEB_V1")?;
    expect_code(
        &berth(repo.path(), &["plan", "--repo", &path, "--save", &saved]),
        0,
    );
    let web_host = if bed.containers("edge-1", project).contains_key("site-web-1") {
        "edge-1"
    } else {
        "edge-2"
    };
    bed.docker_ok(web_host, &["stop", "-t", "1", "site-web-1"]);
    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    let run = berth(repo.path(), &["apply", "--repo", &path, "--plan", &saved]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&format!(
            "host `{web_host}`: container `site-web-1` changed (state running -> exited)"
        )),
        "refusal does not name the host and container\n{run}"
    );
    check!(run.stderr.contains("no host was changed"), "{run}");
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(before == after, "a refused saved plan changed containers");

    // A new commit after saving is refused too.
    expect_code(
        &berth(repo.path(), &["plan", "--repo", &path, "--save", &saved]),
        0,
    );
    repo.write("stacks/site/NOTES", "unrelated\n");
    repo.commit("notes");
    let run = berth(repo.path(), &["apply", "--repo", &path, "--plan", &saved]);
    expect_code(&run, 1);
    check!(run.stderr.contains("the plan was made at"), "{run}");

    // A saved plan edited by hand (another image) is refused: what runs
    // comes from the commit, never from the file.
    expect_code(
        &berth(repo.path(), &["plan", "--repo", &path, "--save", &saved]),
        0,
    );
    let text = std::fs::read_to_string(&saved)?;
    check!(text.contains(&bed.get("BED_WEB_V1")), "{text}");
    std::fs::write(
        &saved,
        text.replace(&bed.get("BED_WEB_V1"), &bed.get("BED_WEB_BAD")),
    )?;
    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    let run = berth(repo.path(), &["apply", "--repo", &path, "--plan", &saved]);
    expect_code(&run, 1);
    check!(run.stderr.contains("was it edited?"), "{run}");
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(before == after, "an edited saved plan changed containers");
    Ok(())
}

/// Checks a Prometheus textfile the way promtool would: HELP and TYPE before
/// each metric's samples, sample lines `name{labels} value`, numeric values.
fn check_prometheus(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut declared = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().ok_or("TYPE without a name")?;
            if parts.next() != Some("gauge") {
                return Err(format!("unexpected TYPE line: {line}"));
            }
            declared.insert(name.to_string());
        } else if line.starts_with("# HELP ") || line.is_empty() {
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or(format!("bad sample: {line}"))?;
            let name = series.split('{').next().unwrap_or_default();
            if !declared.contains(name) {
                return Err(format!("sample before its TYPE: {line}"));
            }
            if !series.ends_with('}') || series.matches('"').count() % 2 != 0 {
                return Err(format!("bad labels: {line}"));
            }
            let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
            samples.push((series.to_string(), value));
        }
    }
    Ok(samples)
}

fn reports_and_metrics_for_success_and_failure(bed: &Bed) -> Result<(), Failed> {
    let project = "t-report";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    let compose = |img: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-2]\n"
        )
    };
    repo.write("stacks/rep/compose.yaml", &compose(&bed.get("BED_WEB_V1")));
    repo.commit("v1");
    let report = repo.path().join("report.json");
    let metrics = repo.path().join("berth.prom");
    let outputs = [
        "--report",
        report.to_str().ok_or("path")?,
        "--metrics",
        metrics.to_str().ok_or("path")?,
    ];

    // Success.
    expect_code(&apply(&repo, &outputs), 0);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    check!(
        json["outcome"] == "converged" && json["exit_code"] == 0,
        "{json:#}"
    );
    check!(json["summary"]["create"] == 1, "{json:#}");
    let edge2 = json["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["host"] == "edge-2"))
        .ok_or("no edge-2")?;
    check!(
        edge2["steps"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["step"] == "create" && s["ok"] == true)),
        "{json:#}"
    );
    let samples = check_prometheus(&std::fs::read_to_string(&metrics)?)?;
    check!(
        samples
            .iter()
            .any(|(s, v)| s.starts_with("berth_last_run_success{") && *v == 1.0),
        "{samples:?}"
    );

    // Failure with rollback.
    repo.write("stacks/rep/compose.yaml", &compose(&bed.get("BED_WEB_BAD")));
    repo.commit("bad");
    let mut args = outputs.to_vec();
    args.extend(["--health-timeout", "30"]);
    expect_code(&apply(&repo, &args), 1);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    check!(
        json["outcome"] == "failed" && json["exit_code"] == 1,
        "{json:#}"
    );
    check!(json["summary"]["failed_hosts"] == 1, "{json:#}");
    let edge2 = json["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["host"] == "edge-2"))
        .ok_or("no edge-2")?;
    let error = edge2["error"].as_str().unwrap_or_default();
    check!(
        error.contains("rolled back") && error.contains("unhealthy"),
        "{json:#}"
    );
    check!(
        json["rollouts"][0]["service"] == "web"
            && json["rollouts"][0]["outcome"] == "rolled_back"
            && json["rollouts"][0]["failures"][0]
                .as_str()
                .is_some_and(|f| f.contains("unhealthy")),
        "{json:#}"
    );
    let samples = check_prometheus(&std::fs::read_to_string(&metrics)?)?;
    check!(
        samples
            .iter()
            .any(|(s, v)| s.starts_with("berth_last_run_success{") && *v == 0.0),
        "{samples:?}"
    );
    check!(
        samples
            .iter()
            .any(|(s, v)| s.starts_with("berth_host_success{")
                && s.contains("host=\"edge-2\"")
                && *v == 0.0),
        "{samples:?}"
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

fn bad_release_stops_after_first_batch(bed: &Bed) -> Result<(), Failed> {
    let project = "t-badrel";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

fn start_first_new_is_healthy_before_old_stops(bed: &Bed) -> Result<(), Failed> {
    let project = "t-startfirst";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

fn failure_actions_rollback_pause_continue(bed: &Bed) -> Result<(), Failed> {
    let project = "t-actions";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

fn rolling_release_through_haproxy_drops_no_request(bed: &Bed) -> Result<(), Failed> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let project = "t-haproxy";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

fn killed_rollout_converges_on_next_run(bed: &Bed) -> Result<(), Failed> {
    let project = "t-killroll";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

fn depends_on_orders_creation_after_health(bed: &Bed) -> Result<(), Failed> {
    let project = "t-depends";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    // `app` sorts before `db` by name: only depends_on can put db first.
    repo.write(
        "stacks/dep/compose.yaml",
        &format!(
            "services:\n  app:\n    image: {worker}\n    stop_grace_period: 1s\n    depends_on:\n      db: {{ condition: service_healthy }}\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n  db:\n    image: {web}\n    deploy:\n      placement:\n        constraints: [node.hostname == edge-1]\n",
            worker = bed.get("BED_WORKER"),
            web = bed.get("BED_WEB_V1"),
        ),
    );
    repo.commit("app depends on db");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        - 1;
    expect_code(&apply(&repo, &[]), 0);
    let cs = bed.containers("edge-1", project);
    let (app, db) = (
        cs.get("dep-app-1").ok_or("no app")?,
        cs.get("dep-db-1").ok_or("no db")?,
    );
    let db_healthy = events(bed, "edge-1", &db.id, since)
        .into_iter()
        .find(|(_, a)| a == "health_status: healthy")
        .map(|(t, _)| t)
        .ok_or("db never reported healthy")?;
    let app_created = events(bed, "edge-1", &app.id, since)
        .into_iter()
        .find(|(_, a)| a == "create")
        .map(|(t, _)| t)
        .ok_or("no create event for app")?;
    check!(
        db_healthy < app_created,
        "app was created {} ms before db was healthy",
        (db_healthy - app_created) / 1_000_000
    );
    Ok(())
}

/// Two stacks roll out side by side: the bad release of one rolls back
/// without holding up or touching the other, and the run's error names
/// only the bad one.
fn failing_stack_rolls_back_while_the_good_one_converges(bed: &Bed) -> Result<(), Failed> {
    let project = "t-twostacks";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
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

/// Keys made by GnuPG as operators make them: the runner's (exported to a
/// key file berth is given) and an operator's; secrets are encrypted to both.
struct SecretRepo {
    repo: Repo,
    gpg: support::gpg::Gpg,
    runner: String,
    operator: String,
    key_file: std::path::PathBuf,
    stack: String,
    _keys: tempfile::TempDir,
}

impl SecretRepo {
    /// Stack `stack`: `app` (2 replicas on the web hosts) reads secret `db`;
    /// `side` (1 replica) reads none.
    fn new(bed: &Bed, project: &str, stack: &str, plaintext: &str) -> SecretRepo {
        let gpg = support::gpg::Gpg::new();
        let runner = gpg.generate("Runner <runner@berth.invalid>");
        let operator = gpg.generate("Operator <ops@berth.invalid>");
        let keys = tempfile::tempdir().expect("key dir");
        let key_file = gpg.export_secret(&runner, &keys.path().join("runner.asc"));
        let repo = Repo::new();
        repo.write("berth.yaml", &bed.inventory(project));
        repo.write(
            &format!("stacks/{stack}/compose.yaml"),
            &format!(
                "services:\n  app:\n    image: {img}\n    secrets:\n      - db\n      - {{ source: token, target: /etc/app/token, uid: \"101\", gid: \"102\", mode: 0440 }}\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.labels.role == web]\n  side:\n    image: {img}\n    deploy:\n      replicas: 1\n      placement:\n        constraints: [node.labels.role == web]\nsecrets:\n  db:\n    file: ./secrets/db.asc\n  token:\n    file: ./secrets/token.pgp\n",
                img = bed.get("BED_WEB_V1")
            ),
        );
        let s = SecretRepo {
            repo,
            gpg,
            runner,
            operator,
            key_file,
            stack: stack.to_string(),
            _keys: keys,
        };
        s.set_secret(plaintext);
        // A binary message (gpg without --armor) for the second secret.
        let token = s
            .gpg
            .encrypt_binary(b"token-0e5d", &[&s.runner, &s.operator]);
        s.repo
            .write_bytes(&format!("stacks/{stack}/secrets/token.pgp"), &token);
        s.repo.commit("app with secrets");
        s
    }

    fn secret_file(&self) -> String {
        format!("stacks/{}/secrets/db.asc", self.stack)
    }

    /// `gpg --encrypt` to the runner and the operator.
    fn set_secret(&self, plaintext: &str) {
        let message = self
            .gpg
            .encrypt(plaintext.as_bytes(), &[&self.runner, &self.operator]);
        let path = self.repo.path().join(self.secret_file());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, message).expect("write secret");
    }

    fn run(&self, command: &str, extra: &[&str]) -> support::Run {
        let path = self.repo.path().display().to_string();
        let mut args = vec![command, "--repo", path.as_str()];
        args.extend_from_slice(extra);
        berth(self.repo.path(), &args)
    }

    fn apply_with_key(&self, extra: &[&str]) -> support::Run {
        let key = self.key_file.display().to_string();
        let mut args = vec!["--key-file", key.as_str()];
        args.extend_from_slice(extra);
        self.run("apply", &args)
    }
}

/// Version directories (`<digest prefix>`) of a service's secrets on a host.
fn secret_versions(
    bed: &Bed,
    host: &str,
    project: &str,
    stack: &str,
    service: &str,
) -> Vec<String> {
    let dir = std::path::Path::new(&bed.secrets_dir(host))
        .join(project)
        .join(stack)
        .join(service);
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// name -> id of the project's containers on every host.
fn container_ids(bed: &Bed, project: &str) -> std::collections::BTreeMap<String, String> {
    HOSTS
        .iter()
        .flat_map(|h| bed.containers(h, project))
        .map(|(name, c)| (name, c.id))
        .collect()
}

fn secret_is_a_file_on_tmpfs_never_in_the_clear(bed: &Bed) -> Result<(), Failed> {
    let project = "t-secret";
    let _scope = bed.scope(project);
    let plaintext = "pw-7c1e0b5d9a3f-not-for-your-eyes";
    let s = SecretRepo::new(bed, project, "vault", plaintext);
    let report = s._keys.path().join("report.json");
    let report_arg = report.display().to_string();
    let run = s.apply_with_key(&["--report", &report_arg]);
    expect_code(&run, 0);

    let mut readers = 0;
    for host in ["edge-1", "edge-2"] {
        for (name, c) in bed.containers(host, project) {
            let inspect = bed.docker_ok(host, &["inspect", &c.id]);
            check!(
                !inspect.contains(plaintext),
                "docker inspect of {name} on {host} shows the secret"
            );
            if name.starts_with("vault-side-") {
                check!(
                    !inspect.contains("/run/secrets/db"),
                    "{name} does not use the secret but has it mounted"
                );
                continue;
            }
            readers += 1;
            let value = bed.docker_ok(host, &["exec", &name, "cat", "/run/secrets/db"]);
            check!(value == plaintext, "{name} on {host} read {value:?}");
            let meta = bed.docker_ok(
                host,
                &["exec", &name, "stat", "-c", "%a %u:%g", "/run/secrets/db"],
            );
            check!(
                meta.trim() == "400 0:0",
                "{name}: /run/secrets/db is {meta:?}"
            );
            // Compose long syntax: another target, owner and mode.
            let token = bed.docker_ok(host, &["exec", &name, "cat", "/etc/app/token"]);
            check!(token == "token-0e5d", "{name} read token {token:?}");
            let meta = bed.docker_ok(
                host,
                &["exec", &name, "stat", "-c", "%a %u:%g", "/etc/app/token"],
            );
            check!(
                meta.trim() == "440 101:102",
                "{name}: /etc/app/token is {meta:?}"
            );
            let write = bed.docker(
                host,
                &["exec", &name, "sh", "-c", "echo x > /run/secrets/db"],
            );
            check!(!write.status.success(), "{name} could write its secret");
        }
        // On the host: one file, mode 0400, on tmpfs.
        let versions = secret_versions(bed, host, project, "vault", "app");
        // One directory per secret version: db's and token's.
        check!(versions.len() == 2, "{host}: versions {versions:?}");
        let db_version = versions
            .iter()
            .find(|v| {
                std::path::Path::new(&bed.secrets_dir(host))
                    .join(project)
                    .join("vault/app")
                    .join(v)
                    .join("db")
                    .exists()
            })
            .ok_or("no version directory holds db")?;
        let dir = format!(
            "{}/{project}/vault/app/{}",
            bed.secrets_dir(host),
            db_version
        );
        let meta = std::fs::metadata(format!("{dir}/db"))?;
        use std::os::unix::fs::MetadataExt as _;
        check!(
            meta.mode() & 0o777 == 0o400,
            "{host}: mode {:o}",
            meta.mode()
        );
        let fs = std::process::Command::new("stat")
            .args(["-f", "-c", "%T", &dir])
            .output()?;
        check!(
            String::from_utf8_lossy(&fs.stdout).trim() == "tmpfs",
            "{host}: {dir} is not on tmpfs"
        );
    }
    check!(
        readers == 2,
        "expected 2 containers reading the secret, saw {readers}"
    );
    let report = std::fs::read_to_string(&report)?;
    for (what, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("report", &report),
    ] {
        check!(!text.contains(plaintext), "the secret is in berth's {what}");
    }
    // The secret is the gpg message as committed: the operator's own key
    // reads it too (two recipients).
    let message = std::fs::read(s.repo.path().join(s.secret_file()))?;
    check!(
        s.gpg.decrypt(&message) == plaintext.as_bytes(),
        "gpg cannot read it back"
    );

    // Removing the service removes its secret from the hosts.
    let compose = std::fs::read_to_string(s.repo.path().join("stacks/vault/compose.yaml"))?;
    let without_app = compose
        .replace("  app:\n", "  gone:\n")
        .replace(
            "    secrets:\n      - db\n      - { source: token, target: /etc/app/token, uid: \"101\", gid: \"102\", mode: 0440 }\n",
            "",
        );
    s.repo.write("stacks/vault/compose.yaml", &without_app);
    s.repo.commit("app leaves");
    let run = s.apply_with_key(&[]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        let left = secret_versions(bed, host, project, "vault", "app");
        check!(
            left.is_empty(),
            "{host} still holds the removed service's secret: {left:?}"
        );
    }
    Ok(())
}

fn secret_change_replaces_exactly_its_readers(bed: &Bed) -> Result<(), Failed> {
    let project = "t-secret-change";
    let _scope = bed.scope(project);
    let s = SecretRepo::new(bed, project, "vault2", "first-value-1b2c");
    expect_code(&s.apply_with_key(&[]), 0);
    let before = container_ids(bed, project);

    s.set_secret("second-value-9f8e");
    s.repo.commit("rotate db");
    // A pull request's plan: no key anywhere.
    let run = s.run("plan", &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(run.stdout.contains("secret db changed"), "{run}");
    check!(
        run.stdout.contains("~ vault2/app.1") && run.stdout.contains("~ vault2/app.2"),
        "{run}"
    );
    check!(
        !run.stdout.contains("vault2/side"),
        "side reads no secret\n{run}"
    );
    check!(
        run.stdout
            .contains("Plan: 0 to create, 2 to replace, 0 to remove."),
        "{run}"
    );
    check!(!run.stdout.contains("second-value"), "{run}");

    let run = s.apply_with_key(&[]);
    expect_code(&run, 0);
    let after = container_ids(bed, project);
    for (name, id) in &before {
        let replaced = after.get(name) != Some(id);
        check!(
            replaced == name.starts_with("vault2-app-"),
            "{name}: replaced = {replaced}\nbefore {before:?}\nafter {after:?}"
        );
    }
    for host in ["edge-1", "edge-2"] {
        for name in bed
            .containers(host, project)
            .keys()
            .filter(|n| n.starts_with("vault2-app-"))
        {
            let value = bed.docker_ok(host, &["exec", name, "cat", "/run/secrets/db"]);
            check!(value == "second-value-9f8e", "{name} reads {value:?}");
        }
        let versions = secret_versions(bed, host, project, "vault2", "app");
        check!(
            versions.len() == 2,
            "{host}: db's old version not pruned (db and token remain): {versions:?}"
        );
    }
    let run = s.run("plan", &["--detailed-exitcode"]);
    expect_code(&run, 0);

    // A reboot empties the host's tmpfs: the reader cannot start without its
    // file (never an empty directory in its place), the plan shows it as
    // drift, and apply delivers the secret again.
    std::fs::remove_dir_all(format!("{}/{project}", bed.secrets_dir("edge-1")))?;
    let restart = bed.docker("edge-1", &["restart", "vault2-app-1"]);
    check!(
        !restart.status.success(),
        "vault2-app-1 restarted without its secret file"
    );
    let run = s.run("plan", &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout.contains("~ vault2/app.1") && run.stdout.contains("[drift]"),
        "{run}"
    );
    expect_code(&s.apply_with_key(&[]), 0);
    let value = bed.docker_ok(
        "edge-1",
        &["exec", "vault2-app-1", "cat", "/run/secrets/db"],
    );
    check!(
        value == "second-value-9f8e",
        "after the reboot vault2-app-1 reads {value:?}"
    );
    Ok(())
}

fn secret_key_problems_change_no_host(bed: &Bed) -> Result<(), Failed> {
    let project = "t-secret-keys";
    let _scope = bed.scope(project);
    let s = SecretRepo::new(bed, project, "vault3", "v1-secret-aa11");
    expect_code(&s.apply_with_key(&[]), 0);
    let before = container_ids(bed, project);
    let versions_before: Vec<Vec<String>> = ["edge-1", "edge-2"]
        .iter()
        .map(|h| secret_versions(bed, h, project, "vault3", "app"))
        .collect();
    let unchanged = |why: &str| -> Result<(), Failed> {
        check!(
            container_ids(bed, project) == before,
            "{why}: a container changed"
        );
        let versions: Vec<Vec<String>> = ["edge-1", "edge-2"]
            .iter()
            .map(|h| secret_versions(bed, h, project, "vault3", "app"))
            .collect();
        check!(versions == versions_before, "{why}: a secret was written");
        Ok(())
    };
    s.set_secret("v2-secret-bb22");
    s.repo.commit("rotate");
    let file = s.secret_file();

    // No key at all.
    let run = s.run("apply", &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&file) && run.stderr.contains("no private key"),
        "{run}"
    );
    check!(run.stderr.contains("no host was changed"), "{run}");
    unchanged("no key")?;

    // A key the secret was not encrypted to.
    let stranger = s.gpg.generate("Stranger <stranger@berth.invalid>");
    let stranger_key = s
        .gpg
        .export_secret(&stranger, &s._keys.path().join("stranger.asc"));
    let key = stranger_key.display().to_string();
    let run = s.run("apply", &["--key-file", &key]);
    expect_code(&run, 1);
    check!(run.stderr.contains(&file), "{run}");
    check!(run.stderr.contains("no host was changed"), "{run}");
    unchanged("wrong key")?;

    // A corrupted message (armour intact, ciphertext damaged).
    let path = s.repo.path().join(&file);
    let text = std::fs::read_to_string(&path)?;
    // The encrypted data comes last (the recipients' key packets first):
    // damage a full line near the end, so no recipient can read it.
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with('=') || l.starts_with("-----END"))
        .unwrap_or(lines.len());
    let mid = end.saturating_sub(2);
    let damaged: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == mid {
                l.chars().rev().collect::<String>()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, damaged + "\n")?;
    s.repo.commit("damaged");
    let run = s.apply_with_key(&[]);
    expect_code(&run, 1);
    check!(run.stderr.contains(&file), "{run}");
    check!(run.stderr.contains("no host was changed"), "{run}");
    unchanged("corrupted message")?;
    for text in [&run.stdout, &run.stderr] {
        check!(
            !text.contains("secret-bb22") && !text.contains("secret-aa11"),
            "{run}"
        );
    }
    Ok(())
}

fn only_trusted_signed_commits_deploy(bed: &Bed) -> Result<(), Failed> {
    let project = "t-signed";
    let _scope = bed.scope(project);
    let gpg = support::gpg::Gpg::new();
    let signer = gpg.generate("Release Manager <release@berth.invalid>");
    let intruder = gpg.generate("Intruder <intruder@berth.invalid>");
    let runner_dir = tempfile::tempdir()?;
    let trust = runner_dir.path().join("trusted.asc");
    std::fs::write(&trust, gpg.export_public(&signer))?;
    let trust = trust.display().to_string();

    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    let stack = |greeting: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    environment:\n      GREETING: {greeting}\n    deploy:\n      replicas: 1\n      placement:\n        constraints: [node.hostname == edge-1]\n",
            img = bed.get("BED_WEB_V1")
        )
    };
    repo.write("stacks/signed/compose.yaml", &stack("one"));
    let first = repo.commit_signed("signed one", &gpg, &signer);
    let path = repo.path().display().to_string();
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "--repo", path.as_str(), "--trust", trust.as_str()];
        args.extend_from_slice(extra);
        berth(repo.path(), &args)
    };
    let run = apply(&[]);
    expect_code(&run, 0);
    let deployed = container_ids(bed, project);

    // Unsigned.
    repo.write("stacks/signed/compose.yaml", &stack("two"));
    let unsigned = repo.commit("unsigned two");
    let run = apply(&[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&unsigned) && run.stderr.contains("not signed"),
        "{run}"
    );
    check!(
        container_ids(bed, project) == deployed,
        "unsigned commit changed a host"
    );

    // Signed, by a key the runner does not trust.
    repo.write("stacks/signed/compose.yaml", &stack("three"));
    let untrusted = repo.commit_signed("intruder three", &gpg, &intruder);
    let run = apply(&[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&untrusted) && run.stderr.contains(&intruder[24..]),
        "must name the commit and the signer's key\n{run}"
    );
    check!(
        container_ids(bed, project) == deployed,
        "untrusted commit changed a host"
    );

    // Tampered: a trusted signature over different content.
    repo.write("stacks/signed/compose.yaml", &stack("four"));
    let good = repo.commit_signed("signed four", &gpg, &signer);
    let object = repo.git(&["cat-file", "commit", &good]);
    let forged = object.replace("signed four", "signed four (and something else)");
    let forged_path = runner_dir.path().join("forged");
    std::fs::write(&forged_path, forged)?;
    let forged_id = repo
        .git(&[
            "hash-object",
            "-t",
            "commit",
            "-w",
            &forged_path.display().to_string(),
        ])
        .trim()
        .to_string();
    repo.git(&["reset", "-q", "--hard", &forged_id]);
    let run = apply(&[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&forged_id) && run.stderr.contains(&signer[24..]),
        "{run}"
    );
    check!(
        container_ids(bed, project) == deployed,
        "tampered commit changed a host"
    );

    // Signed and trusted: deploys.
    repo.git(&["reset", "-q", "--hard", &good]);
    let run = apply(&[]);
    expect_code(&run, 0);
    let latest = container_ids(bed, project);
    check!(latest != deployed, "the signed commit was not deployed");

    // Going back to an older (signed) commit is refused...
    repo.git(&["reset", "-q", "--hard", &first]);
    let run = apply(&[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains("backwards") && run.stderr.contains(&good[..12]),
        "{run}"
    );
    check!(
        container_ids(bed, project) == latest,
        "rewind changed a host"
    );
    // ...unless asked for.
    let run = apply(&["--allow-rewind"]);
    expect_code(&run, 0);
    check!(
        container_ids(bed, project) != latest,
        "--allow-rewind did not deploy"
    );

    // An apply that only removes containers leaves no label behind; the
    // commit it deployed is recorded beside the run lock, so going back to
    // before it is refused too.
    repo.write(
        "stacks/signedx/compose.yaml",
        &format!(
            "services:\n  side:\n    image: {img}\n    deploy:\n      replicas: 1\n      placement:\n        constraints: [node.hostname == edge-1]\n",
            img = bed.get("BED_WEB_V1")
        ),
    );
    let with_side = repo.commit_signed("side service", &gpg, &signer);
    expect_code(&apply(&[]), 0);
    repo.remove("stacks/signedx");
    let side_removed = repo.commit_signed("side service removed", &gpg, &signer);
    let run = apply(&[]);
    expect_code(&run, 0);
    check!(run.stdout.contains("- signedx/side.1"), "{run}");
    let removed = container_ids(bed, project);
    repo.git(&["reset", "-q", "--hard", &with_side]);
    let run = apply(&[]);
    expect_code(&run, 1);
    check!(run.stderr.contains("backwards"), "{run}");
    check!(
        container_ids(bed, project) == removed,
        "rewind changed a host"
    );

    // A signed commit must not be steerable from outside it: a Compose
    // value from the runner's environment is refused before any host is
    // contacted, unless berth.yaml names the variable.
    repo.git(&["reset", "-q", "--hard", &side_removed]);
    repo.write("stacks/signed/compose.yaml", &stack("${GREETING}"));
    repo.commit_signed("greeting from the environment", &gpg, &signer);
    let apply_env = || {
        let args = ["apply", "--repo", path.as_str(), "--trust", trust.as_str()];
        berth_env(repo.path(), &args, &[("GREETING", "five")])
    };
    let run = apply_env();
    expect_code(&run, 1);
    check!(
        run.stderr
            .contains("variable `GREETING` takes its value from the environment")
            && run.stderr.contains("no host was contacted"),
        "{run}"
    );
    check!(
        container_ids(bed, project) == removed,
        "an environment value changed a host under --trust"
    );
    repo.write(
        "berth.yaml",
        &bed.inventory(project).replace(
            "settings:\n",
            "settings:\n  environment_variables: [GREETING]\n",
        ),
    );
    repo.commit_signed("GREETING may come from CI", &gpg, &signer);
    let run = apply_env();
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("GREETING=five from the environment (stacks: signed)"),
        "the plan must name the value that came from the environment\n{run}"
    );
    Ok(())
}

/// Compose keys that map onto engine settings arrive on the containers as
/// written (read back with `docker inspect`), a sidecar shares the web
/// container's network by `network_mode: service:`, and a second apply
/// changes nothing.
fn compose_service_keys_reach_the_engine(bed: &Bed) -> Result<(), Failed> {
    let project = "t-keys";
    let _scope = bed.scope(project);
    let repo = Repo::new();
    repo.write("berth.yaml", &bed.inventory(project));
    let compose = |web: &str| {
        format!(
            r#"services:
  web:
    image: {web}
    container_name: t-keys-web
    hostname: www
    domainname: example.test
    expose: ["9000", "9001/udp"]
    extra_hosts:
      - "db.internal=10.1.2.3"
      - "gateway:host-gateway"
    dns: [10.77.0.1]
    dns_search: example.test
    sysctls:
      net.core.somaxconn: 1024
    init: true
    stop_signal: SIGQUIT
    stop_grace_period: 1s
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == web]
      restart_policy: {{condition: on-failure, max_attempts: 2}}
  sidecar:
    image: {worker}
    network_mode: service:web
    stop_grace_period: 1s
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == web]
"#,
            worker = bed.get("BED_WORKER"),
        )
    };
    repo.write("stacks/keys/compose.yaml", &compose(&bed.get("BED_WEB_V1")));
    repo.commit("service keys");
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        let names: Vec<String> = bed.containers(host, project).into_keys().collect();
        check!(
            names == ["keys-sidecar-1", "t-keys-web"],
            "{host}: unexpected containers {names:?}"
        );
        let inspect = |format: &str, name: &str| {
            bed.docker_ok(host, &["inspect", "-f", format, name])
                .trim()
                .to_string()
        };
        let web = "t-keys-web";
        let cases = [
            ("{{.Config.Hostname}}", "www"),
            ("{{.Config.Domainname}}", "example.test"),
            ("{{json .HostConfig.ExtraHosts}}", r#"["db.internal:10.1.2.3","gateway:host-gateway"]"#),
            ("{{json .HostConfig.Dns}}", r#"["10.77.0.1"]"#),
            ("{{json .HostConfig.DnsSearch}}", r#"["example.test"]"#),
            ("{{json .HostConfig.Sysctls}}", r#"{"net.core.somaxconn":"1024"}"#),
            ("{{json .HostConfig.Init}}", "true"),
            ("{{.Config.StopSignal}}", "SIGQUIT"),
            ("{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "on-failure:2"),
        ];
        for (format, want) in cases {
            let got = inspect(format, web);
            check!(got == want, "{host}: {format} is {got:?}, want {want:?}");
        }
        let exposed = inspect("{{json .Config.ExposedPorts}}", web);
        check!(
            exposed.contains("\"9000/tcp\"") && exposed.contains("\"9001/udp\""),
            "{host}: exposed ports {exposed}"
        );
        // The engine resolved the name to the web container's ID at create.
        let web_id = inspect("{{.Id}}", web);
        let mode = inspect("{{.HostConfig.NetworkMode}}", "keys-sidecar-1");
        check!(
            mode == format!("container:{web_id}"),
            "{host}: sidecar network mode {mode}, web is {web_id}"
        );
        let hosts_file = bed.docker_ok(host, &["exec", web, "cat", "/etc/hosts"]);
        check!(
            hosts_file.contains("10.1.2.3\tdb.internal"),
            "{host}: /etc/hosts lacks the extra host:\n{hosts_file}"
        );
        let body = bed.docker_ok(
            host,
            &[
                "exec",
                "keys-sidecar-1",
                "wget",
                "-qO-",
                "http://127.0.0.1/",
            ],
        );
        check!(
            body.contains("berth-test web v1"),
            "{host}: the sidecar does not reach web over the shared network: {body:?}"
        );
    }

    let run = apply(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");

    // A new web image replaces the sidecar too: its network namespace was
    // the old web container's. The plan says why.
    repo.write("stacks/keys/compose.yaml", &compose(&bed.get("BED_WEB_V2")));
    repo.commit("web v2");
    let run = plan(&repo, &[]);
    expect_code(&run, 0);
    check!(
        run.stdout.contains("keys/sidecar.1 replace (follows.web)"),
        "{run}"
    );
    expect_code(&apply(&repo, &[]), 0);
    for host in ["edge-1", "edge-2"] {
        let web_id = bed
            .docker_ok(host, &["inspect", "-f", "{{.Id}}", "t-keys-web"])
            .trim()
            .to_string();
        let mode = bed
            .docker_ok(
                host,
                &[
                    "inspect",
                    "-f",
                    "{{.HostConfig.NetworkMode}}",
                    "keys-sidecar-1",
                ],
            )
            .trim()
            .to_string();
        check!(
            mode == format!("container:{web_id}"),
            "{host}: sidecar network mode {mode}, web is now {web_id}"
        );
        let body = bed.docker_ok(
            host,
            &[
                "exec",
                "keys-sidecar-1",
                "wget",
                "-qO-",
                "http://127.0.0.1/",
            ],
        );
        check!(body.contains("berth-test web v2"), "{host}: {body:?}");
    }
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

fn ssh_config_reaches_a_host_only_through_a_bastion(bed: &Bed) -> Result<(), Failed> {
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
             settings:\n  known_hosts: {kh}\n  connect_timeout: 5s\n{settings}\
             hosts:\n\
             \x20 - name: edge-1\n    address: {a1}\n    identity_file: {key}\n    secrets_dir: {s1}\n\
             \x20 - name: edge-2\n    address: {edge2}\n    secrets_dir: {s2}\n",
            kh = bed.get("BED_KNOWN_HOSTS"),
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
