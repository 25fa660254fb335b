//! A repo that does not validate fails before berth contacts any host.

use crate::support::{berth, expect_code, Bed, Failed, Repo};

#[test]
fn malformed_inputs_fail_before_any_host() -> Result<(), Failed> {
    let bed = &Bed::take();
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
