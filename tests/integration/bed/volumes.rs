//! Data stays put: a replica that must move to another host while it
//! mounts a named volume leaves the volume, and its data, where they are;
//! apply moves it only when told to.

use super::{apply, plan};
use crate::support::{expect_code, Bed, Failed, HOSTS};

/// What `/data/marker` holds in volume `volume` on `host`.
fn marker(bed: &Bed, host: &str, volume: &str) -> String {
    bed.docker_ok(
        host,
        &[
            "run",
            "--rm",
            "--pull=never",
            "--entrypoint",
            "cat",
            "-v",
            &format!("{volume}:/data"),
            &bed.get("BED_WORKER"),
            "/data/marker",
        ],
    )
    .trim()
    .to_string()
}

#[test]
fn a_replica_moved_by_a_label_leaves_its_volume_and_needs_the_flag() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-volmove";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    repo.write(
        "stacks/store/compose.yaml",
        &format!(
            "services:\n  keeper:\n    image: {img}\n    entrypoint: [\"sh\", \"-c\", \"test -f /data/marker || echo precious > /data/marker; exec sleep 100000\"]\n    stop_grace_period: 1s\n    volumes:\n      - store:/data\n    deploy:\n      placement:\n        constraints: [node.labels.zone == a]\nvolumes:\n  store: {{}}\n",
            img = bed.get("BED_WORKER")
        ),
    );
    repo.commit("keeper in zone a");
    expect_code(&apply(&repo, &[]), 0);
    check!(
        bed.containers("edge-1", project)
            .contains_key("store-keeper-1"),
        "keeper not on edge-1 (the only zone a host)"
    );
    let data = marker(bed, "edge-1", "store_store");
    check!(data == "precious", "no marker in the volume: {data:?}");

    // edge-1 leaves zone a, edge-2 joins it: the replica must move.
    let inventory = std::fs::read_to_string(repo.path().join("berth.yaml"))?
        .replace("{ role: web, zone: a }", "{ role: web, zone: c }")
        .replace("{ role: web, zone: b }", "{ role: web, zone: a }");
    repo.write("berth.yaml", &inventory);
    repo.commit("zone a is edge-2 now");

    let run = plan(&repo, &[]);
    expect_code(&run, 0);
    check!(
        run.stdout.contains("- store/keeper.1")
            && run.stdout.contains(
                "replica moved to another host; its named volume(s) `store_store` and their data stay on this host (apply needs --allow-volume-move)"
            ),
        "the plan does not say the data stays\n{run}"
    );
    check!(
        !run.stdout.contains("remove volume") && !run.stdout.contains("- volume"),
        "a volume must never be planned for removal\n{run}"
    );

    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(
        run.stderr
            .contains("refusing to move replicas away from their data")
            && run.stderr.contains("`store/keeper.1` leaves host `edge-1`")
            && run.stderr.contains("help:")
            && run.stderr.contains("--allow-volume-move"),
        "the refusal does not name the replica, the host and the flag\n{run}"
    );
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(before == after, "a refused apply changed containers");

    let run = apply(&repo, &["--allow-volume-move"]);
    expect_code(&run, 0);
    check!(
        bed.containers("edge-2", project)
            .contains_key("store-keeper-1"),
        "keeper not moved to edge-2\n{run}"
    );
    check!(
        !bed.containers("edge-1", project)
            .contains_key("store-keeper-1"),
        "keeper still on edge-1\n{run}"
    );
    // The old volume and its data are still on the old host.
    let volumes = bed.docker_ok("edge-1", &["volume", "ls", "-q"]);
    check!(
        volumes.lines().any(|v| v == "store_store"),
        "the old volume is gone from edge-1: {volumes:?}"
    );
    let data = marker(bed, "edge-1", "store_store");
    check!(
        data == "precious",
        "the old volume's data is lost: {data:?}"
    );
    expect_code(&plan(&repo, &["--detailed-exitcode"]), 0);
    Ok(())
}
