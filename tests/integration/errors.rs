//! What a user reads on stderr when a command fails, whole, for the main
//! failure paths that need no test bed: a repo that does not validate, a
//! host nobody answers on, a missing key, a bad `--plan` file. Temporary
//! paths are replaced with `[REPO]`.

use std::path::Path;

use crate::support::write_file;

/// A repo whose one host refuses connections at once (nothing listens on
/// port 1 of the loopback address).
fn repo(compose: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(
        dir.path(),
        "berth.yaml",
        "project: errs\nsettings:\n  connect_timeout: 2s\nhosts:\n  - name: nowhere\n    address: 127.0.0.1\n    port: 1\n    user: root\n",
    );
    write_file(dir.path(), "stacks/web/compose.yaml", compose);
    dir
}

/// Runs berth in `dir`; returns the exit code and stderr with `dir` as `[REPO]`.
fn berth(dir: &Path, args: &[&str]) -> (i32, String) {
    let run = crate::support::berth(dir, args);
    let stderr = run.stderr.replace(&dir.display().to_string(), "[REPO]");
    (run.code, stderr)
}

const GOOD: &str = "services:\n  web:\n    image: nginx:1.27\n";

#[test]
fn a_repo_that_does_not_validate() {
    let dir = repo("services:\n  web:\n    image: nginx:1.27\n    volumez: [data:/data]\n");
    let (code, stderr) = berth(dir.path(), &["validate", "--repo", "."]);
    assert_eq!(code, 1, "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_host_that_refuses_the_connection() {
    let dir = repo(GOOD);
    let (code, stderr) = berth(dir.path(), &["plan", "--repo", "."]);
    assert_eq!(code, 1, "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_saved_plan_that_is_not_there() {
    let dir = repo(GOOD);
    let (code, stderr) = berth(
        dir.path(),
        &["apply", "--repo", ".", "--plan", "missing.json"],
    );
    assert_eq!(code, 1, "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_saved_plan_that_is_not_a_plan() {
    let dir = repo(GOOD);
    std::fs::write(dir.path().join("plan.json"), "{\"hello\": 1}\n").expect("write");
    let (code, stderr) = berth(dir.path(), &["apply", "--repo", ".", "--plan", "plan.json"]);
    assert_eq!(code, 1, "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn decrypting_without_a_key() {
    let dir = repo(GOOD);
    std::fs::write(dir.path().join("db.pgp"), "not really\n").expect("write");
    let (code, stderr) = berth(dir.path(), &["secret", "decrypt", "db.pgp"]);
    assert_eq!(code, 1, "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_repo_that_does_not_validate_still_shows_its_warnings() {
    // The unset variable is why the image is wrong: its warning comes first.
    let dir = repo("services:\n  web:\n    image: \"nginx:${TAG}\"\n");
    let (code, stderr) = berth(dir.path(), &["validate", "--repo", "."]);
    assert_eq!(code, 1, "{stderr}");
    insta::assert_snapshot!(stderr);
}
