use std::collections::BTreeMap;

use super::*;
use crate::spec;

const BERTH: &str = "project: p\n\
    hosts:\n\
    \x20 - {name: edge-1, address: 10.0.0.1}\n\
    \x20 - {name: cluster, kind: swarm, address: 10.0.0.11, stacks: [web]}\n";

const WEB: &str = "services:\n\
    \x20 site:\n\
    \x20   image: reg/web:1\n\
    \x20   environment: {LEVEL: info}\n\
    \x20   ports: ['8080:80']\n\
    \x20   deploy:\n\
    \x20     replicas: 2\n\
    \x20     placement: {constraints: ['node.labels.role == web']}\n";

fn load(files: &[(&str, &str)]) -> Result<spec::Project, spec::SpecError> {
    let dir = spec::test_support::repo(files);
    spec::load(dir.path())
}

fn observed_as(desired: &[DesiredService], version: u64) -> SwarmObservation {
    SwarmObservation {
        services: desired
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    ObservedService {
                        name: d.name.clone(),
                        stack: d.stack.clone(),
                        service: d.service.clone(),
                        version,
                        shape: d.shape.clone(),
                        spec_hash: Some(d.shape.hash()),
                    },
                )
            })
            .collect(),
        networks: vec!["web_default".into()],
    }
}

/// A stack given to a Swarm target is not placed on the hosts (its
/// constraint names a label no host has), and becomes `web_site` with its
/// image pinned, host-mode port, replicas and constraint.
#[test]
fn a_swarm_stack_becomes_services_not_containers() {
    let project = load(&[
        ("berth.yaml", BERTH),
        ("stacks/web/compose.yaml", WEB),
        (
            "stacks/api/compose.yaml",
            "services:\n  api:\n    image: reg/api:1\n",
        ),
    ])
    .expect("loads");
    assert_eq!(project.inventory.hosts.len(), 1);
    assert_eq!(project.inventory.swarms[0].manager.name, "cluster");
    let names: Vec<&str> = project.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api"]);
    let digests = BTreeMap::from([("reg/web:1".to_string(), "sha256:abc".to_string())]);
    let desired = desired(&project, &digests).expect("maps");
    assert_eq!(desired.len(), 1);
    let d = &desired[0];
    assert_eq!(
        (d.target.as_str(), d.name.as_str()),
        ("cluster", "web_site")
    );
    assert_eq!(d.shape.image, "reg/web:1@sha256:abc");
    assert_eq!(d.shape.replicas, Some(2));
    assert_eq!(d.shape.constraints, ["node.labels.role == web"]);
    assert_eq!(
        d.shape.ports,
        [ShapePort {
            published: 8080,
            target: 80,
            protocol: "tcp".into(),
            mode: "host".into()
        }]
    );
    assert_eq!(d.networks[0].name, "web_default");
}

/// Nothing changed: no plan. A tag moved: an update of the image alone.
/// Scaled by hand: drift, planned back to the repo's replicas.
#[test]
fn plans_are_empty_then_name_the_fields_and_drift() {
    let project = load(&[("berth.yaml", BERTH), ("stacks/web/compose.yaml", WEB)]).unwrap();
    let digests = BTreeMap::from([("reg/web:1".to_string(), "sha256:abc".to_string())]);
    let wanted = desired(&project, &digests).unwrap();
    let same = observed_as(&wanted, 7);
    assert!(diff("cluster", &wanted, &same).is_empty());

    let moved = BTreeMap::from([("reg/web:1".to_string(), "sha256:def".to_string())]);
    let plan = diff("cluster", &desired(&project, &moved).unwrap(), &same);
    assert_eq!(plan.changes.len(), 1);
    let c = &plan.changes[0];
    assert_eq!(
        (c.action, c.drift, c.version),
        (ServiceAction::Update, false, Some(7))
    );
    assert_eq!(
        c.fields,
        [FieldDiff {
            field: "image".into(),
            old: Some("\"reg/web:1@sha256:abc\"".into()),
            new: Some("\"reg/web:1@sha256:def\"".into()),
        }]
    );

    let mut scaled = same.clone();
    scaled.services.get_mut("web_site").unwrap().shape.replicas = Some(1);
    let plan = diff("cluster", &wanted, &scaled);
    let c = &plan.changes[0];
    assert!(c.drift);
    assert_eq!(c.reason(), "replicas");
    assert_eq!(
        (c.fields[0].old.as_deref(), c.fields[0].new.as_deref()),
        (Some("1"), Some("2"))
    );

    // A service of the project the repo no longer has is removed; a
    // missing network is created first.
    let mut extra = same.clone();
    extra.networks.clear();
    let mut old = extra.services["web_site"].clone();
    old.name = "web_old".into();
    old.service = "old".into();
    extra.services.insert("web_old".into(), old);
    let plan = diff("cluster", &wanted, &extra);
    assert_eq!(plan.networks[0].name, "web_default");
    assert_eq!(plan.changes[0].action, ServiceAction::Remove);
    assert_eq!(plan.changes[0].name, "web_old");
}

/// Keys berth cannot deploy to a Swarm yet are refused at the service,
/// never dropped.
#[test]
fn keys_not_deployed_to_a_swarm_are_refused() {
    let project = load(&[
        ("berth.yaml", BERTH),
        (
            "stacks/web/compose.yaml",
            "services:\n  site:\n    image: reg/web:1\n    volumes: ['data:/data']\nvolumes:\n  data: {}\n",
        ),
    ])
    .unwrap();
    let problems = desired(&project, &BTreeMap::new()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        format!("{}: {}", problems[0].location, problems[0].message),
        "stacks/web/compose.yaml:2:3: service `site` of stack `web` sets `mounts`, which berth does not deploy to a Swarm yet (stack `web` goes to Swarm target `cluster`)"
    );
}

/// berth.yaml: `stacks` only on a Swarm target, a `target:` must name one,
/// a stack goes to one target, an assigned stack must exist.
#[test]
fn swarm_targets_are_checked_where_written() {
    let messages = |berth: &str| -> Vec<String> {
        match load(&[("berth.yaml", berth), ("stacks/web/compose.yaml", WEB)]) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.location, d.message))
                .collect(),
        }
    };
    assert_eq!(
        messages("hosts:\n  - {name: a, address: x, stacks: [web]}\n"),
        ["berth.yaml:2:36: host `a` lists `stacks`, which only a `kind: swarm` target takes"]
    );
    assert_eq!(
        messages("hosts:\n  - {name: a, address: x}\nstacks:\n  web: {target: a}\n"),
        ["berth.yaml:4:17: `target` of stack `web` names `a`, which is no `kind: swarm` target"]
    );
    assert_eq!(
        messages("hosts:\n  - {name: s, kind: swarm, address: x, stacks: [web, nope]}\n"),
        ["berth.yaml:2:54: swarm target `s` is given stack `nope`, which is no stack of the repo"]
    );
    assert_eq!(
        messages("hosts:\n  - {name: s, kind: swarm, address: x, stacks: [web]}\n  - {name: t, kind: swarm, address: y}\nstacks:\n  web: {target: t}\n"),
        ["berth.yaml:5:17: stack `web` is given to two Swarm targets, `s` and `t`"]
    );
    assert_eq!(
        messages("hosts:\n  - {name: s, kind: cluster, address: x}\n"),
        ["berth.yaml:2:21: `kind` of host `s` must be `host` or `swarm`, found `cluster`"]
    );
    // A per-stack `target:` does what the target's `stacks:` does.
    assert_eq!(
        messages("hosts:\n  - {name: s, kind: swarm, address: x}\nstacks:\n  web: {target: s}\n"),
        Vec::<String>::new()
    );
}
