//! The container image, built from the repo's Dockerfile on the bed and run
//! as CI runs it: `berth plan` and `berth apply` of the example repo against
//! the three hosts from inside a container, as the image's unprivileged
//! user, with the SSH key and known_hosts mounted read-only.
//!
//! The bed has no registry outside itself: the runtime stage is built on
//! the Debian base `testbed.sh image-base` imports on edge-1 (debootstrap,
//! cached between runs), and the Rust `build` stage, which starts FROM the
//! Rust image on Docker Hub and compiles berth, is stood in for by a stage
//! that puts the berth binary these tests run where the build stage
//! installs it. Every other line is the repo's Dockerfile as written, the
//! final stage's included, so the image is what `docker build .` makes but
//! for how its binary was compiled (that stage, its Debian build packages
//! and its `cargo build --release --locked`, stays untested here). The
//! `prebuilt` target, for a binary built elsewhere, is built and run too. The container runs on
//! edge-1's engine with host networking, i.e. in edge-1's network namespace,
//! from where the three hosts' sshd (10.77.0.1x) are reachable. The GitHub
//! Action's script (the step of `action.yml` that runs berth) is run too, as
//! the runner would run it, with `docker` pointed at edge-1's engine and the
//! container on that engine's default bridge network.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{docker_cli, Bed, Failed, Repo, HOSTS};

/// The tag the test builds on edge-1 (removed with the bed's engines by `down`).
const IMAGE: &str = "berth-bed/berth:test";
/// The Dockerfile's `prebuilt` target, built beside it.
const PREBUILT: &str = "berth-bed/berth:prebuilt";

fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The docker CLI against edge-1's engine, with the classic builder (the
/// bed's Docker has no buildx).
fn docker(bed: &Bed, args: &[&str]) -> Output {
    Command::new(docker_cli())
        .arg("-H")
        .arg(format!("unix://{}", bed.sock("edge-1")))
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("run docker CLI")
}

/// The repo's Dockerfile with its Rust `build` stage (from `FROM
/// ${RUST_IMAGE} AS build` to the next `FROM`) replaced by a stage that
/// copies `berth` from the build context to where the build stage installs
/// it. Refuses a Dockerfile where the build stage no longer installs to
/// that path, or the final stage no longer copies it from there, so the
/// stand-in cannot drift from what it stands for.
fn with_build_stage_stood_in(dockerfile: &str) -> Result<String, Failed> {
    const BINARY: &str = "/usr/local/bin/berth";
    let lines: Vec<&str> = dockerfile.lines().collect();
    let from = |l: &&str| l.starts_with("FROM ");
    let start = lines
        .iter()
        .position(|l| l.starts_with("FROM ${RUST_IMAGE} AS build"))
        .ok_or("the Dockerfile has no `FROM ${RUST_IMAGE} AS build` stage")?;
    let end = lines[start + 1..]
        .iter()
        .position(from)
        .map(|i| start + 1 + i)
        .ok_or("the Dockerfile has no stage after `build`")?;
    let stage = lines[start..end].join("\n");
    check!(
        stage.contains(&format!("install -m 0755 target/release/berth {BINARY}")),
        "the build stage no longer installs berth at {BINARY}:\n{stage}"
    );
    let last = lines.iter().rposition(from).unwrap_or(end);
    let final_stage = lines[last..].join("\n");
    check!(
        lines[last].trim() == "FROM runtime"
            && final_stage.contains(&format!("COPY --from=build {BINARY} {BINARY}")),
        "the final stage no longer copies berth from the build stage:\n{final_stage}"
    );
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.push(
        "# Stood in for by the test: the binary the tests run, where the build stage installs it.",
    );
    out.push("FROM runtime AS build");
    let copy = format!("COPY berth {BINARY}");
    out.push(&copy);
    out.extend_from_slice(&lines[end..]);
    Ok(out.join("\n") + "\n")
}

/// Builds the image, on the bed's base, in a build context of its own with a
/// stripped copy of the berth binary: as `docker build .` does, the Rust
/// stage stood in for ([`with_build_stage_stood_in`]), tagged [`IMAGE`];
/// and `--target prebuilt`, tagged [`PREBUILT`].
fn build_image(bed: &Bed) -> Result<(), Failed> {
    let out = Command::new("bash")
        .arg(&bed.script)
        .args(["image-base", "edge-1"])
        .stdin(std::process::Stdio::null())
        .output()?;
    check!(
        out.status.success(),
        "testbed.sh image-base failed:\n{}",
        text(&out)
    );
    let base = String::from_utf8_lossy(&out.stdout).trim().to_string();
    check!(!base.is_empty(), "testbed.sh image-base printed no image");

    let ctx = tempfile::tempdir()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        with_build_stage_stood_in(&dockerfile)?,
    )?;
    // The debug binary is mostly debug info: strip it so the context is small.
    let binary = ctx.path().join("berth");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&binary)
        .arg(env!("CARGO_BIN_EXE_berth"))
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), &binary)?;
    }
    chmod(&binary, 0o755)?;
    let ctx_path = ctx.path().display().to_string();
    let base_arg = format!("BASE_IMAGE={base}");
    for (target, tag) in [(None, IMAGE), (Some("prebuilt"), PREBUILT)] {
        let mut args = vec!["build", "-q", "--build-arg", &base_arg, "-t", tag];
        if let Some(target) = target {
            args.extend(["--target", target]);
        }
        args.push(&ctx_path);
        let out = docker(bed, &args);
        check!(
            out.status.success(),
            "docker build of the Dockerfile ({}) failed:\n{}",
            target.unwrap_or("its final stage"),
            text(&out)
        );
    }
    Ok(())
}

/// `docker run` of the image on edge-1, as CI would run it: the repo at
/// /repo (read-only), the key material under /keys (read-only, the key
/// readable through the group passed with --group-add), /out writable.
fn run_berth(bed: &Bed, repo: &Path, keys: &Path, out_dir: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<String> = [
        "run",
        "--rm",
        "--pull=never",
        "--network",
        "host",
        "--group-add",
        "0",
        "-e",
        "BERTH_IDENTITY=/keys/id",
        "-e",
        "BERTH_KNOWN_HOSTS=/keys/known_hosts",
        "-e",
        "NO_COLOR=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (from, to) in [(repo, "/repo:ro"), (keys, "/keys:ro"), (out_dir, "/out")] {
        argv.push("-v".into());
        argv.push(format!("{}:{to}", from.display()));
    }
    argv.push(IMAGE.into());
    argv.extend(args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    docker(bed, &argv)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn chmod(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[test]
fn image_plans_and_applies_the_example_repo() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "example";
    let _scope = bed.scope(project);
    build_image(bed)?;

    // The image's user, entrypoint and working directory, as documented.
    let out = docker(
        bed,
        &[
            "inspect",
            "-f",
            "{{.Config.User}} {{.Config.WorkingDir}} {{json .Config.Entrypoint}}",
            IMAGE,
        ],
    );
    let config = String::from_utf8_lossy(&out.stdout).trim().to_string();
    check!(
        config == r#"berth /repo ["/usr/bin/tini","--","/usr/local/bin/berth"]"#,
        "image config: {config}"
    );
    for image in [IMAGE, PREBUILT] {
        let out = docker(bed, &["run", "--rm", "--pull=never", image, "--version"]);
        check!(
            String::from_utf8_lossy(&out.stdout).trim()
                == concat!("berth ", env!("CARGO_PKG_VERSION")),
            "berth --version in {image}:\n{}",
            text(&out)
        );
    }

    // The example repo as a user keeps it: a git checkout, owned by the
    // runner's user (root here), not by the container's.
    let (repo, commit) = example_checkout()?;

    // The key readable by its group only (ssh rejects it otherwise), that
    // group given to the container.
    let keys = tempfile::tempdir()?;
    chmod(keys.path(), 0o750)?;
    std::fs::copy(bed.get("BED_KEY"), keys.path().join("id"))?;
    chmod(&keys.path().join("id"), 0o640)?;
    std::fs::copy(bed.get("BED_KNOWN_HOSTS"), keys.path().join("known_hosts"))?;
    chmod(&keys.path().join("known_hosts"), 0o644)?;
    let out_dir = tempfile::tempdir()?;
    chmod(out_dir.path(), 0o770)?;

    let plan = run_berth(
        bed,
        repo.path(),
        keys.path(),
        out_dir.path(),
        &["plan", "--detailed-exitcode"],
    );
    let shown = String::from_utf8_lossy(&plan.stdout).into_owned();
    check!(code(&plan) == 2, "plan in the container:\n{}", text(&plan));
    check!(
        shown.contains(&format!("Planned at commit {}", &commit[..12])),
        "the plan should name the checkout's commit (git must read /repo):\n{}",
        text(&plan)
    );
    for host in HOSTS {
        check!(
            shown.lines().any(|l| l == host),
            "the plan has no section for {host}:\n{}",
            text(&plan)
        );
    }

    let apply = run_berth(
        bed,
        repo.path(),
        keys.path(),
        out_dir.path(),
        &[
            "apply",
            "--detailed-exitcode",
            "--report",
            "/out/report.json",
            "--metrics",
            "/out/berth.prom",
        ],
    );
    check!(
        code(&apply) == 2,
        "apply in the container:\n{}",
        text(&apply)
    );
    let total: usize = HOSTS.iter().map(|h| bed.containers(h, project).len()).sum();
    check!(
        total >= 4,
        "the example should run at least 4 containers, runs {total}\n{}",
        text(&apply)
    );
    let report = std::fs::read_to_string(out_dir.path().join("report.json"))?;
    check!(
        report.contains("\"outcome\": \"converged\""),
        "report.json written in /out: {report}"
    );
    check!(
        out_dir.path().join("berth.prom").exists(),
        "no metrics file in /out"
    );

    let again = run_berth(
        bed,
        repo.path(),
        keys.path(),
        out_dir.path(),
        &["apply", "--detailed-exitcode"],
    );
    check!(
        code(&again) == 0 && String::from_utf8_lossy(&again.stdout).contains("No changes."),
        "a second apply from the image should change nothing:\n{}",
        text(&again)
    );
    Ok(())
}

/// The example repo in a fresh git checkout owned by the runner's user
/// (root here), readable by the container's user.
fn example_checkout() -> Result<(Repo, String), Failed> {
    let repo = Repo::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo");
    copy_tree(&example, repo.path())?;
    let commit = repo.commit("the example repo");
    chmod(repo.path(), 0o755)?;
    Ok((repo, commit))
}

/// `KEY=value` lines of a `$GITHUB_OUTPUT` file.
fn outputs(path: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_actions_script_plans_and_applies_from_the_image() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "example";
    let _scope = bed.scope(project);
    build_image(bed)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let action: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("action.yml"))?)?;
    let script = action["runs"]["steps"]
        .as_sequence()
        .and_then(|steps| steps.iter().find(|s| s["id"] == "run"))
        .and_then(|s| s["run"].as_str())
        .ok_or("action.yml has no step with id `run`")?
        .to_string();

    let (workspace, _) = example_checkout()?;
    let runner_temp = tempfile::tempdir()?;
    let key = std::fs::read_to_string(bed.get("BED_KEY"))?;
    let known_hosts = std::fs::read_to_string(bed.get("BED_KNOWN_HOSTS"))?;
    for (command, args) in [("plan", ""), ("apply", "--lock-timeout 30")] {
        let output = runner_temp.path().join(format!("output-{command}"));
        let summary = runner_temp.path().join(format!("summary-{command}"));
        // As a composite action's `shell: bash` step runs: bash -e -o pipefail.
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
            .env("DOCKER_HOST", format!("unix://{}", bed.sock("edge-1")))
            .env("IMAGE", IMAGE)
            .env("COMMAND", command)
            .env("REPO", ".")
            .env("SSH_KEY", &key)
            .env("SSH_KNOWN_HOSTS", &known_hosts)
            .env("PGP_KEY", "")
            .env("PGP_PASSPHRASE", "")
            .env("PLAN_FORMAT", "markdown")
            .env("ARGS", args)
            .env("GITHUB_WORKSPACE", workspace.path())
            .env("RUNNER_TEMP", runner_temp.path())
            .env("GITHUB_RUN_ID", "1")
            .env("GITHUB_JOB", command)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .stdin(std::process::Stdio::null())
            .output()?;
        check!(
            out.status.success(),
            "the action's script ({command}) failed:\n{}",
            text(&out)
        );
        let got = outputs(&output);
        check!(
            got.get("exitcode").map(String::as_str) == Some("2"),
            "berth {command} from the action should exit 2 (changes), outputs {got:?}:\n{}",
            text(&out)
        );
        let dir = PathBuf::from(got.get("dir").ok_or("no `dir` output")?);
        check!(
            !dir.parent().is_some_and(|d| d.join("keys").exists()),
            "the key files should be gone after the run"
        );
        if command == "plan" {
            let plan = std::fs::read_to_string(got.get("plan").ok_or("no `plan` output")?)?;
            check!(
                HOSTS.iter().all(|h| plan.contains(h)),
                "plan.md should name every host:\n{plan}"
            );
            let shown = std::fs::read_to_string(&summary)?;
            check!(shown == plan, "the run summary should show the plan");
        } else {
            let report = std::fs::read_to_string(got.get("report").ok_or("no `report` output")?)?;
            check!(
                report.contains("\"outcome\": \"converged\""),
                "report.json: {report}"
            );
            check!(dir.join("berth.prom").exists(), "no berth.prom in {dir:?}");
            let total: usize = HOSTS.iter().map(|h| bed.containers(h, project).len()).sum();
            check!(
                total >= 4,
                "the example should run at least 4 containers, runs {total}"
            );
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
