//! A stack given to a Swarm target (`kind: swarm`), on the bed's three
//! engines joined into one Swarm for the test (`testbed.sh swarm-up`; left
//! again with `swarm-down` when the test ends, however it ends, so the
//! plain-container tests find three standalone engines).

use std::collections::BTreeSet;
use std::process::Command;

use super::{apply, plan};
use crate::support::{expect_code, Bed, Failed, Repo};

/// The bed's engines in one Swarm until dropped.
struct SwarmUp<'a>(&'a Bed);

impl<'a> SwarmUp<'a> {
    fn new(bed: &'a Bed) -> SwarmUp<'a> {
        swarm_verb(bed, "swarm-up");
        SwarmUp(bed)
    }
}

impl Drop for SwarmUp<'_> {
    fn drop(&mut self) {
        swarm_verb(self.0, "swarm-down");
    }
}

fn swarm_verb(bed: &Bed, verb: &str) {
    let out = Command::new("bash")
        .arg(&bed.script)
        .arg(verb)
        .output()
        .expect("run testbed.sh");
    assert!(
        out.status.success(),
        "testbed.sh {verb} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repo whose only target is the Swarm, managed through edge-1.
fn swarm_repo(bed: &Bed, project: &str, image: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "berth.yaml",
        &format!(
            "project: {project}\n\
             defaults:\n  user: root\n  identity_file: {key}\n\
             settings:\n  known_hosts: {kh}\n  connect_timeout: 5s\n{insecure}\
             hosts:\n\
             \x20 - name: cluster\n    kind: swarm\n    address: {a1}\n    stacks: [web]\n",
            key = bed.get("BED_KEY"),
            kh = bed.get("BED_KNOWN_HOSTS"),
            insecure = bed.insecure_registries(),
            a1 = bed.addr("edge-1"),
        ),
    );
    write_web(&repo, image);
    repo.commit("web on the swarm");
    repo
}

fn write_web(repo: &Repo, image: &str) {
    repo.write(
        "stacks/web/compose.yaml",
        &format!(
            "services:\n  site:\n    image: {image}\n    ports: [\"18090:80\"]\n    environment:\n      GREETING: hello\n    deploy:\n      replicas: 2\n      placement:\n        max_replicas_per_node: 1\n        constraints: [\"node.hostname != edge-1\"]\n"
        ),
    );
}

fn inspect(bed: &Bed, format: &str) -> String {
    bed.docker_ok(
        "edge-1",
        &["service", "inspect", "web_site", "--format", format],
    )
    .trim()
    .to_string()
}

/// Nodes running a task of `web_site`.
fn nodes(bed: &Bed) -> BTreeSet<String> {
    bed.docker_ok(
        "edge-1",
        &[
            "service",
            "ps",
            "web_site",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ],
    )
    .lines()
    .filter(|l| l.contains("Running"))
    .filter_map(|l| l.split_whitespace().next().map(str::to_string))
    .collect()
}

/// Create, "No changes" with `Version.Index` kept, drift healed, an image
/// change planned and rolled out, and a bad release rolled back by the
/// Swarm with berth exiting 1 and the old image still serving.
#[test]
fn a_stack_on_a_swarm_converges_heals_and_fails_honestly() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-swarm";
    let _scope = bed.scope(project);
    let _swarm = SwarmUp::new(bed);
    let repo = swarm_repo(bed, project, &bed.get("BED_WEB_V1"));

    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout.contains("cluster (Swarm)")
            && run.stdout.contains("+ web_site create (new)")
            && run
                .stdout
                .contains("Plan: 1 to create, 0 to replace, 0 to remove."),
        "{run}"
    );
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    check!(
        nodes(bed) == BTreeSet::from(["edge-2".to_string(), "edge-3".to_string()]),
        "tasks on {:?}, wanted edge-2 and edge-3\n{run}",
        nodes(bed)
    );
    check!(
        inspect(bed, "{{.Spec.Mode.Replicated.Replicas}} {{index .Spec.Labels \"com.docker.stack.namespace\"}}")
            == "2 web",
        "{}",
        inspect(bed, "{{json .Spec}}")
    );
    check!(
        inspect(bed, "{{.Spec.TaskTemplate.ContainerSpec.Image}}").contains("@sha256:"),
        "image not pinned to a digest"
    );
    // `docker stack` sees berth's services.
    let stack = bed.docker_ok("edge-1", &["stack", "ps", "web", "--format", "{{.Name}}"]);
    check!(stack.lines().count() >= 2, "docker stack ps web: {stack}");
    for node in ["edge-2", "edge-3"] {
        let page = bed.http_get(node, 18090);
        check!(
            page.contains("berth-test web v1"),
            "{node}:18090 said {page:?}"
        );
    }

    // Nothing changed: plan and apply say so, and touch nothing.
    let version = inspect(bed, "{{.Version.Index}}");
    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");
    expect_code(&apply(&repo, &["--detailed-exitcode"]), 0);
    check!(
        inspect(bed, "{{.Version.Index}}") == version,
        "Version.Index moved on a no-op apply"
    );

    // Scaled by hand: drift, healed.
    bed.docker_ok("edge-1", &["service", "scale", "--detach", "web_site=1"]);
    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout.contains("~ web_site update [drift] (replicas)")
            && run.stdout.contains("~ replicas = 1 -> 2"),
        "{run}"
    );
    expect_code(&apply(&repo, &[]), 0);
    check!(nodes(bed).len() == 2, "not healed: {:?}", nodes(bed));
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);

    // A new image: exactly that field, rolled out.
    write_web(&repo, &bed.get("BED_WEB_V2"));
    repo.commit("v2");
    let run = plan(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout.contains("~ web_site update (image)")
            && run
                .stdout
                .contains("Plan: 0 to create, 0 to replace, 1 to update, 0 to remove."),
        "{run}"
    );
    expect_code(&apply(&repo, &["--detailed-exitcode"]), 2);
    for node in ["edge-2", "edge-3"] {
        let page = bed.http_get(node, 18090);
        check!(
            page.contains("berth-test web v2"),
            "{node}:18090 said {page:?}"
        );
    }

    // A release whose healthcheck fails: the Swarm rolls back, berth
    // exits 1 naming the service and the task error, v2 still serves.
    write_web(&repo, &bed.get("BED_WEB_BAD"));
    repo.commit("bad");
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    let said = format!("{}{}", run.stdout, run.stderr);
    check!(
        said.contains("service `web_site`: the Swarm rolled the update back: ")
            && said.contains("; task web_site."),
        "{run}"
    );
    check!(
        inspect(bed, "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
            .starts_with(&bed.get("BED_WEB_V2")),
        "not rolled back: {}",
        inspect(bed, "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
    );
    for node in ["edge-2", "edge-3"] {
        let page = bed.http_get(node, 18090);
        check!(
            page.contains("berth-test web v2"),
            "{node}:18090 said {page:?}"
        );
    }
    Ok(())
}
