//! The import on inspected-container fixtures, and the round trip that
//! matters: the files it writes load, and the plan of the loaded repo takes
//! each container over with nothing to change but what it names.

use std::collections::{BTreeMap, BTreeSet};

use super::compose::{import, ImportOptions};
use super::*;
use crate::observed::HostObservation;
use crate::placement::{self, CurrentPlacement};
use crate::plan::{self, Action, Reason};

fn healthcheck(test: &[&str], interval_s: i64) -> EngineHealthcheck {
    EngineHealthcheck {
        test: test.iter().map(|s| s.to_string()).collect(),
        interval_ns: interval_s * 1_000_000_000,
        timeout_ns: 3_000_000_000,
        start_period_ns: 0,
        retries: 3,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The bed's web image: busybox httpd, a healthcheck, `PATH` set.
fn web_image() -> ImageDefaults {
    ImageDefaults {
        cmd: Vec::new(),
        entrypoint: strings(&["/bin/busybox", "httpd", "-f", "-p", "80"]),
        env: strings(&["PATH=/bin"]),
        user: String::new(),
        working_dir: "/www".into(),
        labels: BTreeMap::from([("org.example.image".into(), "web".into())]),
        healthcheck: Some(healthcheck(
            &["CMD", "/bin/busybox", "wget", "-q", "localhost"],
            1,
        )),
    }
}

/// `docker-compose up` (1.x) of project `shop`, service `web`.
fn compose_web() -> InspectedContainer {
    InspectedContainer {
        id: "a1".into(),
        name: "shop_web_1".into(),
        image: "10.77.0.1:5000/web:v1".into(),
        state: "running".into(),
        labels: BTreeMap::from([
            ("com.docker.compose.project".into(), "shop".into()),
            ("com.docker.compose.service".into(), "web".into()),
            ("com.docker.compose.container-number".into(), "1".into()),
            ("org.example.image".into(), "web".into()),
            ("team".into(), "shop $crew".into()),
        ]),
        entrypoint: web_image().entrypoint,
        env: strings(&["PATH=/bin", "MODE=prod", "DB_PASSWORD=hunter2"]),
        working_dir: "/www".into(),
        healthcheck: web_image().healthcheck,
        restart: ("always".into(), 0),
        ports: vec![PortSpec {
            host_ip: None,
            published: Some(8080),
            target: 80,
            protocol: "tcp".into(),
        }],
        mounts: vec![
            InspectedMount {
                kind: "volume".into(),
                name: "shop_data".into(),
                destination: "/data".into(),
                read_write: true,
                ..Default::default()
            },
            InspectedMount {
                kind: "bind".into(),
                source: "/srv/conf".into(),
                destination: "/conf".into(),
                read_write: false,
                propagation: "rprivate".into(),
                ..Default::default()
            },
        ],
        network_mode: "shop_default".into(),
        networks: BTreeSet::from(["shop_default".into()]),
        image_defaults: web_image(),
        ..Default::default()
    }
}

/// `docker run -d --name solo -v solodata:/data --restart unless-stopped
/// --health-cmd ... web:v1 sh -c ...` with its own entrypoint.
fn solo() -> InspectedContainer {
    InspectedContainer {
        id: "b2".into(),
        name: "solo".into(),
        image: "10.77.0.1:5000/web:v1".into(),
        state: "running".into(),
        labels: BTreeMap::from([("org.example.image".into(), "web".into())]),
        entrypoint: strings(&["/bin/busybox", "sh", "-c"]),
        cmd: strings(&["echo $HOME && exec /bin/busybox httpd -f -p 80"]),
        env: strings(&["PATH=/bin"]),
        working_dir: "/www".into(),
        healthcheck: Some(healthcheck(&["CMD-SHELL", "true"], 2)),
        restart: ("unless-stopped".into(), 0),
        mounts: vec![InspectedMount {
            kind: "volume".into(),
            name: "solodata".into(),
            destination: "/data".into(),
            read_write: true,
            ..Default::default()
        }],
        network_mode: "default".into(),
        networks: BTreeSet::from(["bridge".into()]),
        image_defaults: web_image(),
        ..Default::default()
    }
}

fn options(host: &str) -> ImportOptions {
    ImportOptions {
        host: host.into(),
        ..Default::default()
    }
}

#[test]
fn the_spec_holds_only_what_differs_from_the_image() {
    let spec = observed_spec(&compose_web());
    assert_eq!(spec.entrypoint, None);
    assert_eq!(spec.command, None);
    assert_eq!(spec.healthcheck, None);
    assert_eq!(spec.working_dir, None);
    assert_eq!(
        spec.environment.keys().collect::<Vec<_>>(),
        ["DB_PASSWORD", "MODE"]
    );
    // Compose's labels and the image's are not the container's own.
    assert_eq!(spec.labels.keys().collect::<Vec<_>>(), ["team"]);
    assert_eq!(spec.restart, RestartPolicy::Always);
    assert_eq!(
        spec.networks,
        BTreeMap::from([("shop_default".to_string(), Vec::new())])
    );

    let spec = observed_spec(&solo());
    assert_eq!(
        spec.entrypoint,
        Some(strings(&["/bin/busybox", "sh", "-c"]))
    );
    assert!(spec.command.is_some());
    assert_eq!(spec.network_mode.as_deref(), Some("bridge"));
    assert_eq!(spec.healthcheck.map(|h| h.interval_ms), Some(2000));
}

#[test]
fn compose_projects_group_and_other_containers_stand_alone() {
    let mut stopped = solo();
    stopped.name = "old".into();
    stopped.state = "exited".into();
    let mut managed = solo();
    managed.name = "web-site-1".into();
    managed
        .labels
        .insert(crate::labels::PROJECT.into(), "ops".into());
    let imported = import(&[compose_web(), solo(), stopped, managed], &options("h1"));
    let names: Vec<&str> = imported.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["shop", "solo"]);
    assert_eq!(
        imported.skipped,
        [
            "`old` is exited (only running containers are imported)",
            "`web-site-1` is managed by berth project `ops` already",
        ]
    );
    let shop = &imported.stacks[0];
    assert_eq!(shop.containers, ["shop_web_1"]);
    assert_eq!(shop.left_out, ["`shop_web_1`: environment.DB_PASSWORD"]);
    // The credential's value is never written; its name is, with what to do.
    assert!(!shop.compose.contains("hunter2"), "{}", shop.compose);
    assert!(shop.compose.contains("# DB_PASSWORD: left out"));
    assert!(shop.compose.contains("berth secret encrypt"));
    assert!(shop.compose.contains("container_name: \"shop_web_1\""));
    assert!(shop.compose.contains("adopt: \"shop_web_1\""));
    // `$` is doubled so Compose interpolation leaves it.
    assert!(shop.compose.contains("\"shop $$crew\""), "{}", shop.compose);

    // `--project` keeps one Compose project; a stack name taken gets the host's.
    let only = import(
        &[compose_web(), solo()],
        &ImportOptions {
            host: "h2".into(),
            project: Some("shop".into()),
            taken: BTreeSet::from(["shop".to_string()]),
        },
    );
    let names: Vec<&str> = only.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["shop-h2"]);
}

/// The whole point: the written files load, and the plan of the loaded
/// repo against the host takes every container over, naming only what the
/// import left out (the credential), never its value.
#[test]
fn the_imported_repo_loads_and_its_plan_takes_each_container_over() {
    let containers = [compose_web(), solo()];
    let imported = import(&containers, &options("h1"));
    let mut files: Vec<(String, String)> = vec![(
        "berth.yaml".into(),
        "project: p\nhosts:\n  - {name: h1, address: 10.0.0.1}\n  - {name: h2, address: 10.0.0.2}\n"
            .into(),
    )];
    for s in &imported.stacks {
        files.push((format!("stacks/{}/compose.yaml", s.name), s.compose.clone()));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let dir = crate::spec::test_support::repo(&refs);
    let project = match crate::spec::load(dir.path()) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{}", imported.stacks[0].compose),
    };
    let desired = placement::place(&project, &CurrentPlacement::new()).expect("placed");
    assert!(desired.hosts["h2"].containers.is_empty());
    let observed = BTreeMap::from([
        (
            "h1".to_string(),
            HostObservation {
                foreign_names: containers.iter().map(|c| c.name.clone()).collect(),
                adoptable: containers
                    .iter()
                    .map(|c| (c.name.clone(), c.clone()))
                    .collect(),
                volumes: ["shop_data".to_string(), "solodata".into()].into(),
                networks: ["shop_default".to_string(), "bridge".into()].into(),
                images: ["10.77.0.1:5000/web:v1".to_string()].into(),
                ..Default::default()
            },
        ),
        ("h2".to_string(), HostObservation::default()),
    ]);
    let plan = plan::diff(&desired, &observed, Vec::new(), None);
    let h1 = &plan.hosts[0];
    assert!(h1.blocked.is_empty(), "{:?}", h1.blocked);
    assert!(h1.pulls.is_empty() && h1.networks.is_empty() && h1.volumes.is_empty());
    let changes: Vec<(&str, Action, &Reason)> = h1
        .changes
        .iter()
        .map(|c| (c.name.as_str(), c.action, &c.reason))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "shop_web_1",
                Action::Replace,
                &Reason::TakeOver {
                    container: "shop_web_1".into(),
                    fields: vec!["environment.DB_PASSWORD".into()],
                }
            ),
            (
                "solo",
                Action::Replace,
                &Reason::TakeOver {
                    container: "solo".into(),
                    fields: Vec::new(),
                }
            ),
        ]
    );
    let web = &h1.changes[0];
    assert_eq!(web.current.as_ref().map(|c| c.id.as_str()), Some("a1"));
    let shown = serde_json::to_string(&plan).expect("json");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(
        (web.fields[0].old.as_deref(), web.fields[0].new.as_deref()),
        (Some("(sensitive)"), None)
    );
    assert_eq!(
        web.reason_text(),
        "takes over `shop_web_1`, a container berth did not manage; the repo changes environment.DB_PASSWORD"
    );
    // A saved plan reads its reasons back.
    let back: plan::Plan = serde_json::from_str(&shown).expect("reads back");
    assert_eq!(back.hosts[0].changes[1].reason, h1.changes[1].reason);

    // Without `x-berth.adopt`, the same names block the plan instead.
    let mut plain = desired.clone();
    for h in plain.hosts.values_mut() {
        h.adopt.clear();
    }
    let plan = plan::diff(&plain, &observed, Vec::new(), None);
    assert!(plan.hosts[0].changes.is_empty());
    assert_eq!(plan.hosts[0].blocked.len(), 2);
}

/// `x-berth.adopt` must name the container the service gets: otherwise
/// the take-over would replace one container and leave another.
#[test]
fn adopting_a_name_the_service_does_not_get_is_refused() {
    let dir = crate::spec::test_support::repo(&[
        (
            "berth.yaml",
            "project: p\nhosts:\n  - {name: h, address: 10.0.0.1}\n",
        ),
        (
            "stacks/web/compose.yaml",
            "services:\n  site:\n    image: reg/site:1\n    x-berth:\n      adopt: web_site_1\n",
        ),
    ]);
    let project = crate::spec::load(dir.path()).expect("loads");
    let problems = placement::place(&project, &CurrentPlacement::new()).expect_err("refused");
    assert_eq!(
        problems[0].message,
        "stack `web`: service `site` takes over container `web_site_1` (`x-berth.adopt`), but its container on host `h` is named `web-site-1`"
    );
    assert_eq!(
        problems[0].help.as_deref(),
        Some("add `container_name: web_site_1` to the service, so the container keeps its name")
    );
}

/// One name takes over replica 1's container: a service scaled up beside
/// it places its other replicas under berth's names, adopting nothing else.
#[test]
fn one_adopted_name_is_replica_ones_and_more_replicas_are_placed() {
    let dir = crate::spec::test_support::repo(&[
        (
            "berth.yaml",
            "project: p\nhosts:\n  - {name: h, address: 10.0.0.1}\n",
        ),
        (
            "stacks/web/compose.yaml",
            "services:\n  site:\n    image: reg/site:1\n    deploy: {replicas: 3}\n    x-berth:\n      adopt: web-site-1\n",
        ),
    ]);
    let project = crate::spec::load(dir.path()).expect("loads");
    let desired = placement::place(&project, &CurrentPlacement::new()).expect("placed");
    let names: Vec<&str> = desired.hosts["h"]
        .containers
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["web-site-1", "web-site-2", "web-site-3"]);
    assert_eq!(
        desired.hosts["h"].adopt,
        BTreeSet::from(["web-site-1".to_string()])
    );
}

/// Every setting the import writes, in its less common forms, survives
/// the round trip through the loader unchanged: a Docker Hub image named
/// without registry or tag, an anonymous volume, a bind with propagation,
/// a published port on one address, UDP, `on-failure:3`, two networks,
/// user and working directory, and the flags; what it cannot write
/// (`tmpfs`, `devices`, limits) is exactly what the plan names.
#[test]
fn every_written_setting_round_trips_and_the_rest_is_named() {
    let anonymous = "a".repeat(64);
    let c = InspectedContainer {
        id: "k1".into(),
        name: "kitchen".into(),
        image: "nginx".into(),
        state: "running".into(),
        cmd: strings(&["nginx", "-g", "daemon off;"]),
        entrypoint: strings(&["/docker-entrypoint.sh"]),
        env: strings(&["PATH=/usr/bin", "NGINX_VERSION=1.25", "EMPTY="]),
        user: "101:101".into(),
        working_dir: "/srv".into(),
        healthcheck: Some(EngineHealthcheck {
            test: strings(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"]),
            interval_ns: 1_500_000_000,
            timeout_ns: 0,
            start_period_ns: 10_000_000_000,
            retries: 0,
        }),
        restart: ("on-failure".into(), 3),
        ports: vec![
            PortSpec {
                host_ip: Some("127.0.0.1".into()),
                published: Some(8443),
                target: 443,
                protocol: "tcp".into(),
            },
            PortSpec {
                host_ip: None,
                published: Some(5353),
                target: 53,
                protocol: "udp".into(),
            },
        ],
        mounts: vec![
            InspectedMount {
                kind: "volume".into(),
                name: anonymous.clone(),
                destination: "/cache".into(),
                read_write: true,
                ..Default::default()
            },
            InspectedMount {
                kind: "bind".into(),
                source: "/mnt/shared".into(),
                destination: "/shared".into(),
                read_write: true,
                propagation: "rslave".into(),
                ..Default::default()
            },
        ],
        network_mode: "front".into(),
        networks: BTreeSet::from(["front".into(), "back".into()]),
        privileged: true,
        read_only: true,
        tty: true,
        stdin_open: true,
        init: Some(true),
        cap_add: strings(&["NET_ADMIN"]),
        cap_drop: strings(&["MKNOD"]),
        extra_hosts: strings(&["db:10.0.0.9"]),
        dns: strings(&["10.0.0.2"]),
        tmpfs: BTreeMap::from([("/run".into(), "size=64m".into())]),
        memory: 256 * 1024 * 1024,
        image_defaults: ImageDefaults {
            cmd: strings(&["nginx", "-g", "daemon off;"]),
            entrypoint: strings(&["/docker-entrypoint.sh"]),
            env: strings(&["PATH=/usr/bin", "NGINX_VERSION=1.25"]),
            ..Default::default()
        },
        ..Default::default()
    };
    let imported = import(std::slice::from_ref(&c), &options("h1"));
    let stack = &imported.stacks[0];
    assert_eq!(stack.left_out, ["`kitchen`: tmpfs, resources"]);
    let dir = crate::spec::test_support::repo(&[
        (
            "berth.yaml",
            "project: p\nhosts:\n  - {name: h1, address: 10.0.0.1}\n",
        ),
        ("stacks/kitchen/compose.yaml", &stack.compose),
    ]);
    let project = match crate::spec::load(dir.path()) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{}", stack.compose),
    };
    let desired = placement::place(&project, &CurrentPlacement::new()).expect("placed");
    let d = &desired.hosts["h1"].containers[0];
    let fields = plan::field_diff(&comparable(&observed_spec(&c)), &comparable(&d.spec));
    let paths: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        paths,
        ["resources.memory", "tmpfs./run"],
        "{fields:#?}\n{}",
        stack.compose
    );
}

/// A Compose v2 container already has berth's name (`<project>-<service>-1`,
/// so no `container_name` is written); host networking and a disabled
/// image healthcheck round-trip too.
#[test]
fn compose_v2_names_host_networking_and_no_healthcheck_round_trip() {
    let mut c = compose_web();
    c.name = "shop-web-1".into();
    c.env = strings(&["PATH=/bin"]);
    c.network_mode = "host".into();
    c.networks = BTreeSet::from(["host".into()]);
    c.ports.clear();
    c.healthcheck = Some(EngineHealthcheck {
        test: strings(&["NONE"]),
        ..Default::default()
    });
    let imported = import(std::slice::from_ref(&c), &options("h1"));
    let stack = &imported.stacks[0];
    assert!(
        !stack.compose.contains("container_name"),
        "{}",
        stack.compose
    );
    let dir = crate::spec::test_support::repo(&[
        (
            "berth.yaml",
            "project: p\nhosts:\n  - {name: h1, address: 10.0.0.1}\n",
        ),
        ("stacks/shop/compose.yaml", &stack.compose),
    ]);
    let project = match crate::spec::load(dir.path()) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{}", stack.compose),
    };
    let desired = placement::place(&project, &CurrentPlacement::new()).expect("placed");
    let d = &desired.hosts["h1"].containers[0];
    assert_eq!(d.name, "shop-web-1");
    let fields = plan::field_diff(&comparable(&observed_spec(&c)), &comparable(&d.spec));
    assert!(fields.is_empty(), "{fields:#?}\n{}", stack.compose);
}

/// `shop_web_<n>`: container `n` of service `web` scaled with
/// `docker-compose up --scale web=N` (no fixed host port, which would
/// keep it from scaling).
fn scaled_web(n: u32) -> InspectedContainer {
    let mut c = compose_web();
    c.id = format!("w{n}");
    c.name = format!("shop_web_{n}");
    c.labels
        .insert("com.docker.compose.container-number".into(), n.to_string());
    c.ports.clear();
    c
}

/// A Compose service scaled to three containers is one service with three
/// replicas, each taking over its container under its name (in container
/// number order, 10 after 2); the plan takes all three over, naming only
/// what the file does not reproduce, and what one replica runs
/// differently from the first.
#[test]
fn a_scaled_compose_service_imports_as_replicas_that_take_over_every_container() {
    let mut third = scaled_web(10);
    third.env = strings(&["PATH=/bin", "MODE=debug", "DB_PASSWORD=hunter2"]);
    let containers = [third, scaled_web(2), scaled_web(1)];
    let imported = import(&containers, &options("h1"));
    assert!(imported.skipped.is_empty(), "{:?}", imported.skipped);
    let stack = &imported.stacks[0];
    assert_eq!(
        stack.containers,
        ["shop_web_1", "shop_web_2", "shop_web_10"]
    );
    assert!(
        stack.compose.contains("      replicas: 3\n"),
        "{}",
        stack.compose
    );
    assert!(
        stack
            .compose
            .contains("      adopt: [\"shop_web_1\", \"shop_web_2\", \"shop_web_10\"]\n"),
        "{}",
        stack.compose
    );
    assert!(
        !stack.compose.contains("container_name"),
        "{}",
        stack.compose
    );

    let dir = crate::spec::test_support::repo(&[
        (
            "berth.yaml",
            "project: p\nhosts:\n  - {name: h1, address: 10.0.0.1}\n  - {name: h2, address: 10.0.0.2}\n",
        ),
        ("stacks/shop/compose.yaml", &stack.compose),
    ]);
    let project = match crate::spec::load(dir.path()) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{}", stack.compose),
    };
    let desired = placement::place(&project, &CurrentPlacement::new()).expect("placed");
    let names: Vec<(&str, u32)> = desired.hosts["h1"]
        .containers
        .iter()
        .map(|d| (d.name.as_str(), d.slot.replica))
        .collect();
    assert_eq!(
        names,
        [("shop_web_1", 1), ("shop_web_2", 2), ("shop_web_10", 3)]
    );
    assert!(desired.hosts["h2"].containers.is_empty());
    let observed = BTreeMap::from([(
        "h1".to_string(),
        HostObservation {
            foreign_names: containers.iter().map(|c| c.name.clone()).collect(),
            adoptable: containers
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect(),
            volumes: ["shop_data".to_string()].into(),
            networks: ["shop_default".to_string()].into(),
            images: ["10.77.0.1:5000/web:v1".to_string()].into(),
            ..Default::default()
        },
    )]);
    let plan = plan::diff(&desired, &observed, Vec::new(), None);
    let h1 = &plan.hosts[0];
    assert!(h1.blocked.is_empty(), "{:?}", h1.blocked);
    let changes: Vec<(&str, Action, &Reason)> = h1
        .changes
        .iter()
        .map(|c| (c.name.as_str(), c.action, &c.reason))
        .collect();
    let took = |name: &str, fields: &[&str]| Reason::TakeOver {
        container: name.into(),
        fields: strings(fields),
    };
    assert_eq!(
        changes,
        [
            (
                "shop_web_1",
                Action::Replace,
                &took("shop_web_1", &["environment.DB_PASSWORD"])
            ),
            (
                "shop_web_2",
                Action::Replace,
                &took("shop_web_2", &["environment.DB_PASSWORD"])
            ),
            (
                "shop_web_10",
                Action::Replace,
                &took(
                    "shop_web_10",
                    &["environment.DB_PASSWORD", "environment.MODE"]
                )
            ),
        ]
    );
    assert_eq!(
        h1.changes[2].current.as_ref().map(|c| c.id.as_str()),
        Some("w10")
    );
}

/// The list form of `x-berth.adopt` names replicas: not more containers
/// than the service runs, not beside `container_name`, each name once and
/// a valid container name, at the place it is written.
#[test]
fn a_list_of_containers_to_adopt_is_checked_against_the_service() {
    let load = |service: &str| {
        let compose = format!("services:\n  site:\n    image: reg/site:1\n{service}");
        let dir = crate::spec::test_support::repo(&[
            (
                "berth.yaml",
                "project: p\nhosts:\n  - {name: h, address: 10.0.0.1}\n",
            ),
            ("stacks/web/compose.yaml", &compose),
        ]);
        match crate::spec::load(dir.path()) {
            Ok(_) => String::from("loaded"),
            Err(e) => e.to_string(),
        }
    };
    let shown = load("    x-berth:\n      adopt: [a_1, a_2]\n");
    assert!(
        shown.contains("stacks/web/compose.yaml:5:14")
            && shown.contains("`x-berth.adopt` of service `site` takes over 2 containers, but the service runs 1 replica(s)")
            && shown.contains("help: set `deploy.replicas: 2`"),
        "{shown}"
    );
    let shown = load("    container_name: site\n    deploy: {replicas: 2, placement: {max_replicas_per_node: 1}}\n    x-berth:\n      adopt: [a_1, a_2]\n");
    assert!(
        shown.contains("sets `container_name` and lists the containers `x-berth.adopt` takes over"),
        "{shown}"
    );
    let shown = load("    deploy: {replicas: 2}\n    x-berth:\n      adopt: [a_1, a_1]\n");
    assert!(shown.contains("names `a_1` twice"), "{shown}");
    let shown = load("    deploy: {replicas: 2}\n    x-berth:\n      adopt: [a_1, a.berth-old]\n");
    assert!(
        shown.contains("names `a.berth-old`, which ends like the names berth gives"),
        "{shown}"
    );
    let shown = load("    x-berth:\n      adopt: []\n");
    assert!(shown.contains("is an empty list"), "{shown}");
    // Fewer names than replicas: the others get berth's names.
    assert_eq!(
        load("    deploy: {replicas: 3}\n    x-berth:\n      adopt: [a_1]\n"),
        "loaded"
    );
}
