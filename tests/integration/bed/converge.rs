//! An apply brings the hosts to what the repo says: replicas placed and
//! serving, a second apply that changes nothing, an image change, a removed
//! service, `depends_on` order, and the example repo of the README.

use super::{apply, events, plan, two_stack_repo};
use crate::support::{berth, expect_code, Bed, Failed, HOSTS};

#[test]
fn apply_places_replicas_and_serves_http() -> Result<(), Failed> {
    let bed = &Bed::take();
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

#[test]
fn second_apply_changes_nothing() -> Result<(), Failed> {
    let bed = &Bed::take();
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

#[test]
fn image_change_replaces_only_that_service() -> Result<(), Failed> {
    let bed = &Bed::take();
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

#[test]
fn removed_service_keeps_its_volume_and_data() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-volume";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
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

/// The README's tour: the example repo, applied to the bed as it is shipped.
#[test]
fn example_repo_applies() -> Result<(), Failed> {
    let bed = &Bed::take();
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

#[test]
fn depends_on_orders_creation_after_health() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-depends";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
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
