//! A saved plan (`plan --save`, then `apply --plan`): applied exactly as
//! saved, or refused when a host or the repo moved on or the file was edited.

use super::{apply, two_stack_repo};
use crate::support::{berth, expect_code, Bed, Failed, HOSTS};

#[test]
fn saved_plan_applies_exactly_or_refuses() -> Result<(), Failed> {
    let bed = &Bed::take();
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
