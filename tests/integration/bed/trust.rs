//! `--trust`: only commits signed by a trusted key deploy, never an older
//! one unless asked, and nothing from outside the commit steers them.

use super::container_ids;
use crate::support::gpg::Gpg;
use crate::support::{berth, berth_env, expect_code, Bed, Failed};

#[test]
fn only_trusted_signed_commits_deploy() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-signed";
    let _scope = bed.scope(project);
    let gpg = Gpg::new();
    let signer = gpg.generate("Release Manager <release@berth.invalid>");
    let intruder = gpg.generate("Intruder <intruder@berth.invalid>");
    let runner_dir = tempfile::tempdir()?;
    let trust = runner_dir.path().join("trusted.asc");
    std::fs::write(&trust, gpg.export_public(&signer))?;
    let trust = trust.display().to_string();

    let repo = bed.repo(project);
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
