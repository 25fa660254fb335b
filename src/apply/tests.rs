//! The executor on the in-memory engine: what each host ends up with, and
//! in what order it got there.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::hosts::memory::MemoryEngine;
use crate::hosts::Engine;
use crate::observed::ContainerStatus;
use crate::plan::{Action, Change, HostPlan, Plan};

fn status(running: bool, health: Option<&str>) -> ContainerStatus {
    ContainerStatus {
        running,
        restart_count: 0,
        exit_code: if running { None } else { Some(3) },
        health: health.and_then(crate::observed::Health::parse),
        health_log: Some("wget: server returned error: HTTP/1.0 404 Not Found".into()),
    }
}

fn secret_spec(digest: &str) -> crate::spec::ContainerSpec {
    let mut spec = crate::spec::ContainerSpec {
        image: "reg/app:1".into(),
        restart: crate::spec::RestartPolicy::UnlessStopped,
        ..Default::default()
    };
    spec.secrets.insert(
        "db".into(),
        crate::spec::SecretFileSpec {
            digest: digest.into(),
            target: "/run/secrets/db".into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o400,
        },
    );
    spec
}

fn one_change(action: Action, spec: crate::spec::ContainerSpec, current: Option<&str>) -> Plan {
    let slot = crate::placement::Slot {
        stack: "st".into(),
        service: "app".into(),
        replica: 1,
    };
    Plan {
        format_version: crate::plan::PLAN_FORMAT_VERSION,
        project: "p".into(),
        commit: None,
        hosts: vec![HostPlan {
            host: "h".into(),
            pulls: vec![],
            networks: vec![],
            volumes: vec![],
            changes: vec![Change {
                action,
                name: slot.container_name(),
                slot,
                current: current.map(|id| crate::plan::CurrentContainer {
                    id: id.into(),
                    image: "reg/app:1".into(),
                    state: crate::observed::ContainerState::Running,
                    spec_hash: None,
                }),
                desired: Some(crate::plan::DesiredRef {
                    spec_hash: crate::placement::spec_hash(&spec),
                    spec,
                    digest: None,
                }),
                reason: crate::plan::Reason::New,
                drift: false,
                fields: vec![],
                failed_before: None,
                configs: Vec::new(),
            }],
            blocked: vec![],
            available: vec![],
        }],
        unreachable: vec![],
        environment: Vec::new(),
        rollouts: Vec::new(),
        swarms: Vec::new(),
    }
}

fn context(plaintexts: &[(&str, &str)]) -> ApplyContext {
    ApplyContext {
        project: "p".into(),
        metadata: BTreeMap::new(),
        health_timeout: Duration::from_secs(2),
        services: BTreeMap::new(),
        parallel: 1,
        rollout_parallel: 16,
        host_operations: HOST_OPERATIONS,
        secrets: std::sync::Arc::new(crate::secrets::Plaintexts::from_map(
            plaintexts
                .iter()
                .map(|(d, v)| {
                    (
                        d.to_string(),
                        crate::openpgp::SecretBytes::new(v.as_bytes().to_vec()),
                    )
                })
                .collect(),
        )),
        secrets_dirs: BTreeMap::from([("h".to_string(), "/sec".to_string())]),
        configs_dirs: Default::default(),
        prune_secrets: true,
        configs: Default::default(),
        prune_configs: false,
        stop: Default::default(),
    }
}

/// An in-memory host `h` with the test image, and the engine map apply takes.
fn one_host() -> (MemoryEngine, BTreeMap<String, Box<dyn Engine>>) {
    let engine = MemoryEngine::new("h");
    engine.add_image("reg/app:1");
    let engines = BTreeMap::from([("h".to_string(), Box::new(engine.clone()) as Box<dyn Engine>)]);
    (engine, engines)
}

#[tokio::test]
async fn secrets_are_delivered_before_their_readers_and_old_versions_pruned() {
    let (engine, engines) = one_host();

    let first = one_change(Action::Create, secret_spec("sha256:aaaaaaaaaaaa11"), None);
    let report = apply(
        &first,
        &engines,
        &context(&[("sha256:aaaaaaaaaaaa11", "one")]),
    )
    .await;
    assert!(report.failed_hosts().is_empty(), "{report:?}");
    let v1 = "/sec/p/st/app/aaaaaaaaaaaa/db";
    let log = engine.mutations();
    let wrote = log.iter().position(|m| m == &format!("write_secret {v1}"));
    let created = log.iter().position(|m| m == "create st-app-1");
    assert!(wrote.is_some() && wrote < created, "{log:?}");
    assert_eq!(
        engine.secret_files().get(v1),
        Some(&(crate::secrets::digest(b"one"), "0:0".to_string(), 0o400))
    );

    // A new version replaces the reader; the old version goes once no
    // container uses it.
    let id = engine
        .container("st-app-1")
        .map(|c| c.id)
        .unwrap_or_default();
    let second = one_change(
        Action::Replace,
        secret_spec("sha256:bbbbbbbbbbbb22"),
        Some(&id),
    );
    let report = apply(
        &second,
        &engines,
        &context(&[("sha256:bbbbbbbbbbbb22", "two")]),
    )
    .await;
    assert!(report.failed_hosts().is_empty(), "{report:?}");
    let files: Vec<String> = engine.secret_files().into_keys().collect();
    assert_eq!(files, vec!["/sec/p/st/app/bbbbbbbbbbbb/db".to_string()]);
}

#[tokio::test]
async fn a_secret_not_decrypted_stops_the_host_before_any_container_change() {
    let (engine, engines) = one_host();
    let plan = one_change(Action::Create, secret_spec("sha256:cccccccccccc"), None);
    let report = apply(&plan, &engines, &context(&[])).await;
    assert_eq!(report.failed_hosts().len(), 1);
    assert!(engine.containers().is_empty());
}

#[test]
fn readiness_follows_health() {
    assert_eq!(readiness(&status(true, None)), Readiness::Ready);
    assert_eq!(readiness(&status(true, Some("healthy"))), Readiness::Ready);
    assert!(matches!(
        readiness(&status(true, Some("starting"))),
        Readiness::Waiting(_)
    ));
    match readiness(&status(true, Some("unhealthy"))) {
        Readiness::Failed(why) => assert!(why.contains("404 Not Found"), "{why}"),
        other => panic!("expected failure, got {other:?}"),
    }
    match readiness(&status(false, None)) {
        Readiness::Failed(why) => assert_eq!(why, "container exited with code 3"),
        other => panic!("expected failure, got {other:?}"),
    }
}

/// A host `h` running `replicas` old containers of `<stack>/<service>` from
/// `reg/app:1`, each to be replaced by `reg/app:2`; returns the changes.
fn seed_replaces(engine: &MemoryEngine, stack: &str, service: &str, replicas: u32) -> Vec<Change> {
    seed_replaces_to(engine, stack, service, replicas, "reg/app:2")
}

/// As [`seed_replaces`], to `image` (which the host has).
fn seed_replaces_to(
    engine: &MemoryEngine,
    stack: &str,
    service: &str,
    replicas: u32,
    image: &str,
) -> Vec<Change> {
    engine.add_image(image);
    (1..=replicas)
        .map(|replica| {
            let slot = crate::placement::Slot {
                stack: stack.into(),
                service: service.into(),
                replica,
            };
            let id = engine.add_container(
                &slot.container_name(),
                "reg/app:1",
                BTreeMap::from([(crate::labels::PROJECT.to_string(), "p".to_string())]),
                "running",
            );
            let spec = crate::spec::ContainerSpec {
                image: image.into(),
                restart: crate::spec::RestartPolicy::UnlessStopped,
                ..Default::default()
            };
            Change {
                action: Action::Replace,
                name: slot.container_name(),
                slot,
                current: Some(crate::plan::CurrentContainer {
                    id,
                    image: "reg/app:1".into(),
                    state: crate::observed::ContainerState::Running,
                    spec_hash: None,
                }),
                desired: Some(crate::plan::DesiredRef {
                    spec_hash: crate::placement::spec_hash(&spec),
                    spec,
                    digest: None,
                }),
                reason: crate::plan::Reason::SpecChanged {
                    fields: vec!["image".into()],
                },
                drift: false,
                fields: vec![],
                failed_before: None,
                configs: Vec::new(),
            }
        })
        .collect()
}

/// The plan of `changes` on host `h`, and one in-memory `h` with both images.
fn rollout_plan(changes: Vec<Change>) -> Plan {
    Plan {
        format_version: crate::plan::PLAN_FORMAT_VERSION,
        project: "p".into(),
        commit: None,
        hosts: vec![HostPlan {
            host: "h".into(),
            pulls: vec![],
            networks: vec![],
            volumes: vec![],
            changes,
            blocked: vec![],
            available: vec![],
        }],
        unreachable: vec![],
        environment: Vec::new(),
        rollouts: Vec::new(),
        swarms: Vec::new(),
    }
}

fn rollout_host() -> (MemoryEngine, BTreeMap<String, Box<dyn Engine>>) {
    let (engine, engines) = one_host();
    engine.add_image("reg/app:2");
    (engine, engines)
}

/// A context where `(stack, service)` rolls out as `policy` says.
fn rollout_context(services: &[(&str, &str, ServicePolicy)]) -> ApplyContext {
    let mut ctx = context(&[]);
    ctx.prune_secrets = false;
    ctx.services = services
        .iter()
        .map(|(stack, service, p)| ((stack.to_string(), service.to_string()), p.clone()))
        .collect();
    ctx
}

/// A policy that waits for `after` (healthy), in batches of `parallelism`.
fn policy(after: &[&str], parallelism: u32, action: crate::spec::FailureAction) -> ServicePolicy {
    let mut p = ServicePolicy {
        depends_on: after
            .iter()
            .map(|d| (d.to_string(), crate::spec::DependsCondition::ServiceHealthy))
            .collect(),
        ..Default::default()
    };
    p.update.parallelism = parallelism;
    p.update.failure_action = action;
    p
}

/// `(name, image, state)` of every container on the host.
fn containers(engine: &MemoryEngine) -> Vec<(String, String, String)> {
    engine
        .containers()
        .into_iter()
        .map(|c| (c.name, c.image, c.state))
        .collect()
}

fn running(name: &str, image: &str) -> (String, String, String) {
    (name.into(), image.into(), "running".into())
}

fn position(log: &[String], entry: &str) -> usize {
    log.iter()
        .position(|m| m == entry)
        .unwrap_or_else(|| panic!("`{entry}` not in {log:?}"))
}

#[tokio::test]
async fn depends_on_rolls_a_service_out_after_what_it_depends_on() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    // The plan lists `web` first; `web` depends on `db`.
    let mut changes = seed_replaces(&engine, "s", "web", 1);
    changes.extend(seed_replaces(&engine, "s", "db", 1));
    let ctx = rollout_context(&[
        ("s", "web", policy(&["db"], 1, Rollback)),
        ("s", "db", policy(&[], 1, Rollback)),
    ]);
    // Slow enough that web would overtake db if it did not wait.
    engine.set_latency(Duration::from_millis(5));
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    assert!(report.rollouts.is_empty(), "{report:?}");
    let log = engine.mutations();
    assert!(
        position(&log, "start s-db-1") < position(&log, "stop s-web-1"),
        "db is up before web is touched: {log:?}"
    );
}

#[tokio::test]
async fn a_failure_in_the_first_batch_pauses_before_the_next_batch() {
    use crate::spec::FailureAction::Pause;
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 4);
    let ctx = rollout_context(&[("s", "web", policy(&[], 2, Pause))]);
    // The first replica's new container cannot be created.
    engine.fail_next("create", "no space left on device");
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;

    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(report.rollouts[0].outcome, RolloutOutcome::Paused);
    assert!(report.rollouts[0].failures[0].contains("no space left on device"));
    // Batch 1 (replicas 1 and 2) ran: 1 failed and serves the old image
    // again, 2 passed and keeps the new one (its old container is gone).
    // Batch 2 (replicas 3 and 4) never started.
    assert_eq!(
        containers(&engine),
        vec![
            running("s-web-1", "reg/app:1"),
            running("s-web-2", "reg/app:2"),
            running("s-web-3", "reg/app:1"),
            running("s-web-4", "reg/app:1"),
        ]
    );
    // Their new containers were made while batch 1 rolled, and went again
    // unstarted; their old ones were never touched.
    let log = engine.mutations();
    for n in [3, 4] {
        let made = format!("s-web-{n}.berth-new");
        let touched: Vec<&String> = log
            .iter()
            .filter(|m| m.contains(&format!("s-web-{n}")))
            .filter(|m| **m != format!("create {made}") && **m != format!("remove {made}"))
            .collect();
        assert!(touched.is_empty(), "{touched:?} in {log:?}");
    }
    assert!(report.hosts[0].error.is_some());
}

/// A host that cannot make the new container (its disk full) fails the
/// member before the old container is touched: it never stopped, so it
/// serves on (on a full disk a stopped container may not start again).
/// And when setting the old one aside fails after its stop, it is started
/// again under its name.
#[tokio::test]
async fn a_new_container_that_cannot_be_made_leaves_the_old_one_untouched() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 1);
    let ctx = rollout_context(&[("s", "web", policy(&[], 1, Rollback))]);
    engine.fail_next("create", "no space left on device");
    let report = apply(&rollout_plan(changes.clone()), &engines, &ctx).await;

    let error = report.hosts[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("no space left on device")
            && error.contains("the previous container `s-web-1` (reg/app:1) serves on"),
        "{error}"
    );
    assert_eq!(containers(&engine), vec![running("s-web-1", "reg/app:1")]);
    let log = engine.mutations();
    assert!(
        !log.iter()
            .any(|m| m.starts_with("stop ") || m.starts_with("rename ")),
        "the old container was touched: {log:?}"
    );

    engine.clear_mutations();
    engine.fail_next("rename", "no space left on device");
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    let error = report.hosts[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("the previous container `s-web-1` (reg/app:1) serves on"),
        "{error}"
    );
    assert_eq!(containers(&engine), vec![running("s-web-1", "reg/app:1")]);
    assert!(
        engine.mutations().contains(&"start s-web-1".to_string()),
        "{:?}",
        engine.mutations()
    );
}

#[tokio::test]
async fn a_failure_rolls_back_every_replaced_replica_of_the_service() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 4);
    let ctx = rollout_context(&[("s", "web", policy(&[], 2, Rollback))]);
    engine.fail_next("create", "no space left on device");
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;

    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(report.rollouts[0].outcome, RolloutOutcome::RolledBack);
    // Replica 2 had passed: its new container went and the old came back.
    assert_eq!(
        containers(&engine),
        (1..=4)
            .map(|n| running(&format!("s-web-{n}"), "reg/app:1"))
            .collect::<Vec<_>>()
    );
    let steps: Vec<(&str, &str, bool)> = report.hosts[0]
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.target.as_str(), s.ok))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("replace", "s-web-1", false),
            ("replace", "s-web-2", true),
            ("rollback", "s-web-2", true),
        ]
    );
}

#[tokio::test]
async fn continue_goes_on_past_a_failure_but_its_dependants_wait() {
    use crate::spec::FailureAction::{Continue, Rollback};
    let (engine, engines) = rollout_host();
    let mut changes = seed_replaces(&engine, "s", "web", 3);
    changes.extend(seed_replaces(&engine, "s", "worker", 1));
    changes.extend(seed_replaces(&engine, "s", "site", 1));
    let mut ctx = rollout_context(&[
        ("s", "web", policy(&[], 1, Continue)),
        ("s", "worker", policy(&[], 1, Rollback)),
        ("s", "site", policy(&["web"], 1, Rollback)),
    ]);
    // One at a time, so the injected failure meets `web` (before `worker`).
    ctx.rollout_parallel = 1;
    engine.fail_next("create", "no space left on device");
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;

    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(report.rollouts[0].outcome, RolloutOutcome::Continued);
    // `site` waits for a `web` that did not fully roll out; `worker` does
    // not depend on it and goes on.
    assert_eq!(
        containers(&engine),
        vec![
            running("s-site-1", "reg/app:1"),
            running("s-web-1", "reg/app:1"),
            running("s-web-2", "reg/app:2"),
            running("s-web-3", "reg/app:2"),
            running("s-worker-1", "reg/app:2"),
        ]
    );
    let error = report.hosts[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("s-web-1"), "{error}");
}

#[tokio::test]
async fn a_failed_service_halts_the_rest_of_its_stack_only() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let mut changes = seed_replaces(&engine, "s", "db", 1);
    changes.extend(seed_replaces(&engine, "s", "web", 1));
    changes.extend(seed_replaces(&engine, "s", "worker", 1));
    changes.extend(seed_replaces(&engine, "t", "api", 1));
    let mut ctx = rollout_context(&[
        ("s", "db", policy(&[], 1, Rollback)),
        ("s", "web", policy(&["db"], 1, Rollback)),
        ("s", "worker", policy(&[], 1, Rollback)),
        ("t", "api", policy(&[], 1, Rollback)),
    ]);
    // One at a time, in order: the injected failure meets `db` first.
    ctx.rollout_parallel = 1;
    engine.fail_next("create", "no space left on device");
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;

    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(
        (
            report.rollouts[0].service.as_str(),
            report.rollouts[0].outcome
        ),
        ("db", RolloutOutcome::RolledBack)
    );
    // `web` depends on `db`, and `worker` had not started when `db` rolled
    // back: neither is touched. Stack `t` is independent: rolled out.
    assert_eq!(
        containers(&engine),
        vec![
            running("s-db-1", "reg/app:1"),
            running("s-web-1", "reg/app:1"),
            running("s-worker-1", "reg/app:1"),
            running("t-api-1", "reg/app:2"),
        ]
    );
    let log = engine.mutations();
    assert!(
        !log.iter()
            .any(|m| m.contains("s-web-1") || m.contains("s-worker-1")),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_failing_stack_rolls_back_while_the_other_converges_beside_it() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    // Stack `bad`: its new image reports unhealthy. Stack `good`: fine.
    engine.set_image_health("reg/bad:2", "unhealthy");
    let mut changes = seed_replaces_to(&engine, "bad", "web", 2, "reg/bad:2");
    changes.extend(seed_replaces(&engine, "good", "web", 2));
    changes.extend(seed_replaces(&engine, "good", "api", 1));
    let ctx = rollout_context(&[
        ("bad", "web", policy(&[], 1, Rollback)),
        ("good", "web", policy(&[], 1, Rollback)),
        ("good", "api", policy(&["web"], 1, Rollback)),
    ]);
    engine.set_latency(Duration::from_millis(2));
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;

    let failed: Vec<(&str, RolloutOutcome)> = report
        .rollouts
        .iter()
        .map(|r| (r.stack.as_str(), r.outcome))
        .collect();
    assert_eq!(failed, vec![("bad", RolloutOutcome::RolledBack)]);
    assert!(report.rollouts[0].failures[0].contains("unhealthy"));
    assert_eq!(
        containers(&engine),
        vec![
            running("bad-web-1", "reg/app:1"),
            (
                "bad-web-1.berth-failed".into(),
                "reg/bad:2".into(),
                "exited".into()
            ),
            running("bad-web-2", "reg/app:1"),
            running("good-api-1", "reg/app:2"),
            running("good-web-1", "reg/app:2"),
            running("good-web-2", "reg/app:2"),
        ]
    );
}

/// `n` services of stack `s` (`svc1`..), each one new replica from
/// `reg/app:2`, nothing serving.
fn new_services(n: u32, replicas: u32) -> Vec<Change> {
    let spec = crate::spec::ContainerSpec {
        image: "reg/app:2".into(),
        restart: crate::spec::RestartPolicy::UnlessStopped,
        ..Default::default()
    };
    (1..=n)
        .flat_map(|i| (1..=replicas).map(move |r| (i, r)))
        .map(|(i, replica)| {
            let slot = crate::placement::Slot {
                stack: "s".into(),
                service: format!("svc{i}"),
                replica,
            };
            Change {
                action: Action::Create,
                name: slot.container_name(),
                slot,
                current: None,
                desired: Some(crate::plan::DesiredRef {
                    spec_hash: crate::placement::spec_hash(&spec),
                    spec: spec.clone(),
                    digest: None,
                }),
                reason: crate::plan::Reason::New,
                drift: false,
                fields: vec![],
                failed_before: None,
                configs: Vec::new(),
            }
        })
        .collect()
}

#[tokio::test]
async fn services_roll_out_at_once_within_both_bounds() {
    // Eight independent services: a host takes at most `host_operations`
    // container operations at once...
    let (engine, engines) = rollout_host();
    engine.set_latency(Duration::from_millis(10));
    let mut ctx = rollout_context(&[]);
    ctx.host_operations = 3;
    let report = apply(&rollout_plan(new_services(8, 1)), &engines, &ctx).await;
    assert!(report.failed_hosts().is_empty(), "{report:?}");
    assert_eq!(engine.containers().len(), 8);
    assert_eq!(engine.max_in_flight(), 3);

    // ...and no more than `rollout_parallel` services roll out at once
    // (one replica each: one operation at a time each).
    let (engine, engines) = rollout_host();
    engine.set_latency(Duration::from_millis(10));
    ctx.host_operations = 100;
    ctx.rollout_parallel = 2;
    let report = apply(&rollout_plan(new_services(8, 1)), &engines, &ctx).await;
    assert!(report.failed_hosts().is_empty(), "{report:?}");
    assert_eq!(engine.max_in_flight(), 2);
}

#[tokio::test]
async fn batches_guard_serving_replicas_and_a_new_service_goes_at_once() {
    use crate::spec::FailureAction::Rollback;
    // Nothing serves: all four replicas at once, `parallelism: 1` or not.
    let (engine, engines) = rollout_host();
    engine.set_latency(Duration::from_millis(10));
    let ctx = rollout_context(&[("s", "svc1", policy(&[], 1, Rollback))]);
    let report = apply(&rollout_plan(new_services(1, 4)), &engines, &ctx).await;
    assert!(report.failed_hosts().is_empty(), "{report:?}");
    assert_eq!(engine.containers().len(), 4);
    assert_eq!(engine.max_in_flight(), 4);

    let log = engine.mutations();
    assert!(
        position(&log, "create s-svc1-4") < position(&log, "start s-svc1-1"),
        "{log:?}"
    );

    // Four serving replicas: one at a time, each started before the next
    // is stopped (their old containers then go all at once).
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "svc1", 4);
    engine.set_latency(Duration::from_millis(10));
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    assert!(report.failed_hosts().is_empty(), "{report:?}");
    let log = engine.mutations();
    for n in 1..4 {
        assert!(
            position(&log, &format!("start s-svc1-{n}"))
                < position(&log, &format!("stop s-svc1-{}", n + 1)),
            "{log:?}"
        );
        // The next one's new container is made meanwhile, off the path.
        assert!(
            position(&log, &format!("create s-svc1-{}.berth-new", n + 1))
                < position(&log, &format!("start s-svc1-{n}")),
            "{log:?}"
        );
    }
}

#[tokio::test]
async fn a_new_service_that_fails_goes_away_whole() {
    use crate::spec::FailureAction::Rollback;
    // All replicas at once, one of them unhealthy: every new one goes (the
    // failed one kept for its logs), as a rollback of a replace would.
    let (engine, engines) = rollout_host();
    let ctx = rollout_context(&[("s", "svc1", policy(&[], 1, Rollback))]);
    engine.fail_next("start", "port is already allocated");
    let report = apply(&rollout_plan(new_services(1, 3)), &engines, &ctx).await;
    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(report.rollouts[0].outcome, RolloutOutcome::RolledBack);
    let names: Vec<String> = engine.containers().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["s-svc1-1.berth-failed".to_string()]);
}

/// Three in-memory hosts `a`, `b`, `c`, each running replica 1, 2, 3 of
/// `s/site` from `reg/app:1`, to be replaced by `reg/app:2`, in batches of
/// one with `failure_action: rollback`.
type ThreeHosts = (
    Vec<MemoryEngine>,
    BTreeMap<String, Box<dyn Engine>>,
    Plan,
    ApplyContext,
);

fn three_hosts() -> ThreeHosts {
    let mut engines = BTreeMap::new();
    let mut memories = Vec::new();
    let mut hosts = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let engine = MemoryEngine::new(name);
        engine.add_image("reg/app:1");
        let mut change = seed_replaces(&engine, "s", "site", 1).remove(0);
        change.slot.replica = i as u32 + 1;
        change.name = change.slot.container_name();
        if let Some(current) = &change.current {
            let seeded = engine.container(&current.id).map(|c| c.id);
            if let Some(id) = seeded {
                futures::executor::block_on(crate::hosts::Docker::rename_container(
                    &engine,
                    &id,
                    &change.name,
                ))
                .unwrap();
            }
        }
        engine.clear_mutations();
        hosts.push(HostPlan {
            host: name.into(),
            pulls: vec![],
            networks: vec![],
            volumes: vec![],
            changes: vec![change],
            blocked: vec![],
            available: vec![],
        });
        engines.insert(
            name.to_string(),
            Box::new(engine.clone()) as Box<dyn Engine>,
        );
        memories.push(engine);
    }
    let mut plan = rollout_plan(vec![]);
    plan.hosts = hosts;
    let ctx = rollout_context(&[(
        "s",
        "site",
        policy(&[], 1, crate::spec::FailureAction::Rollback),
    )]);
    (memories, engines, plan, ctx)
}

fn outcomes(report: &ApplyReport) -> Vec<(&str, HostOutcome)> {
    report
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.outcome))
        .collect()
}

/// The link to `c` is cut as its replica is about to be replaced: that is
/// no verdict on the release, so `a` and `b` keep it (no rollback), `c` is
/// dropped from the run as it was, and the report says so host by host.
#[tokio::test]
async fn a_host_that_goes_dark_is_dropped_and_the_others_converge() {
    let (engines, boxed, plan, ctx) = three_hosts();
    engines[2].go_dark_at("stop");
    let report = apply(&plan, &boxed, &ctx).await;

    assert!(report.rollouts.is_empty(), "no release failure: {report:?}");
    assert_eq!(
        outcomes(&report),
        vec![
            ("a", HostOutcome::Converged),
            ("b", HostOutcome::Converged),
            ("c", HostOutcome::Unreachable),
        ]
    );
    assert_eq!(
        containers(&engines[0]),
        vec![running("s-site-1", "reg/app:2")]
    );
    assert_eq!(
        containers(&engines[1]),
        vec![running("s-site-2", "reg/app:2")]
    );
    // `c` still serves its old container; the new one, made while the
    // batch before rolled, was never started and cannot be removed from a
    // host that does not answer: the next plan removes it.
    assert_eq!(
        containers(&engines[2]),
        vec![
            running("s-site-3", "reg/app:1"),
            (
                "s-site-3.berth-new".into(),
                "reg/app:2".into(),
                "created".into()
            ),
        ]
    );
    let error = report.hosts[2].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("host `c` stopped answering during the replace of `s-site-3`")
            && error.contains("no answer from the host"),
        "{error}"
    );
    assert_eq!(report.failed_hosts().len(), 1);
}

/// A host lost in the first batch takes no part in the later ones, and a
/// release failure after it rolls back only the hosts that still answer.
#[tokio::test]
async fn a_release_failure_after_a_host_went_dark_rolls_back_the_others_only() {
    let (engines, boxed, plan, ctx) = three_hosts();
    // `a` goes dark while its new container is gated; `c`'s fails its gate.
    engines[0].go_dark_at("status");
    engines[2].set_image_health("reg/app:2", "unhealthy");
    let report = apply(&plan, &boxed, &ctx).await;

    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(report.rollouts[0].outcome, RolloutOutcome::RolledBack);
    assert_eq!(
        report.rollouts[0].failures.len(),
        1,
        "only `c` failed the release"
    );
    assert_eq!(
        outcomes(&report),
        vec![
            ("a", HostOutcome::Unreachable),
            ("b", HostOutcome::RolledBack),
            ("c", HostOutcome::RolledBack),
        ]
    );
    // `a` is as it was left: its new container and the old one beside it,
    // for the next run to finish (the engine there never answered again).
    let names: Vec<String> = engines[0]
        .containers()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["s-site-1", "s-site-1.berth-old"]);
    assert_eq!(
        containers(&engines[1]),
        vec![running("s-site-2", "reg/app:1")]
    );
    assert!(engines[2]
        .containers()
        .iter()
        .any(|c| c.name == "s-site-3" && c.image == "reg/app:1" && c.state == "running"));
}

/// An engine that restarts while a new container is gated answers again
/// within the restore window: the old container serves again (no slot left
/// empty), the host is still dropped from this run, and nothing is doubled.
#[tokio::test]
async fn an_engine_back_within_seconds_gets_its_old_container_back() {
    let (engines, boxed, plan, ctx) = three_hosts();
    engines[2].go_dark_at("status");
    let back = engines[2].clone();
    let revive = tokio::spawn(async move {
        // Dark from its first status poll until about a second later.
        while !back.mutations().iter().any(|m| m == "start s-site-3") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        back.come_back();
    });
    let report = apply(&plan, &boxed, &ctx).await;
    revive.await.unwrap();

    assert!(report.rollouts.is_empty(), "{report:?}");
    assert_eq!(report.hosts[2].outcome, HostOutcome::Unreachable);
    let c = containers(&engines[2]);
    assert!(c.contains(&running("s-site-3", "reg/app:1")), "{c:?}");
    assert_eq!(
        c.iter().filter(|(_, _, s)| s == "running").count(),
        1,
        "{c:?}"
    );
    assert_eq!(
        containers(&engines[0]),
        vec![running("s-site-1", "reg/app:2")]
    );
}

/// A failure that does not say whose it is (a check timing out) is the
/// host's when the host no longer answers a probe after it.
#[tokio::test]
async fn an_unmarked_failure_on_a_silent_host_is_the_hosts() {
    let (engines, boxed, plan, ctx) = three_hosts();
    engines[1].fail_next("start", "i/o timeout");
    engines[1].go_dark_at("observe");
    let report = apply(&plan, &boxed, &ctx).await;
    assert!(report.rollouts.is_empty(), "{report:?}");
    assert_eq!(
        outcomes(&report),
        vec![
            ("a", HostOutcome::Converged),
            ("b", HostOutcome::Unreachable),
            ("c", HostOutcome::Converged),
        ]
    );
}

/// SIGTERM mid-rollout: the batch in flight finishes, no new batch or
/// service starts, every slot is whole, and the report says why.
#[tokio::test]
async fn a_stop_request_ends_the_run_after_the_batch_in_flight() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let mut changes = seed_replaces(&engine, "s", "web", 3);
    changes.extend(seed_replaces(&engine, "s", "worker", 1));
    let ctx = rollout_context(&[
        ("s", "web", policy(&[], 1, Rollback)),
        ("s", "worker", policy(&["web"], 1, Rollback)),
    ]);
    engine.set_latency(Duration::from_millis(20));
    let (watched, stop) = (engine.clone(), ctx.stop.clone());
    let signal = tokio::spawn(async move {
        while !watched
            .mutations()
            .iter()
            .any(|m| m == "create s-web-1.berth-new")
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.request("SIGTERM");
    });
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    signal.await.unwrap();

    assert_eq!(report.stopped.as_deref(), Some("SIGTERM"));
    assert!(report.rollouts.is_empty(), "{report:?}");
    assert_eq!(
        containers(&engine),
        vec![
            running("s-web-1", "reg/app:2"),
            running("s-web-2", "reg/app:1"),
            running("s-web-3", "reg/app:1"),
            running("s-worker-1", "reg/app:1"),
        ]
    );
    assert_eq!(report.hosts[0].outcome, HostOutcome::Incomplete);
    let error = report.hosts[0].error.as_deref().unwrap_or_default();
    assert_eq!(
        error,
        "`s-web-2` not rolled out: berth was stopped (SIGTERM) before it started"
    );
    // Asked before it starts, a run changes nothing.
    engine.clear_mutations();
    let ctx = rollout_context(&[]);
    ctx.stop.request("SIGINT");
    let again = apply(
        &rollout_plan(seed_replaces(&engine, "t", "x", 1)),
        &engines,
        &ctx,
    )
    .await;
    assert_eq!(again.hosts[0].outcome, HostOutcome::Untouched);
    assert!(engine.mutations().is_empty(), "{:?}", engine.mutations());
}

/// A signal that comes while the last batch is in flight stops nothing:
/// that batch finishes as it would, no work is left, so the run ends with
/// its real outcome (converged, exit 0), not as stopped.
#[tokio::test]
async fn a_stop_request_after_the_last_batch_started_leaves_the_real_outcome() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 2);
    let ctx = rollout_context(&[("s", "web", policy(&[], 1, Rollback))]);
    engine.set_latency(Duration::from_millis(20));
    let (watched, stop) = (engine.clone(), ctx.stop.clone());
    // The second (last) batch is in flight: its old container stops.
    let signal = tokio::spawn(async move {
        while !watched.mutations().iter().any(|m| m == "stop s-web-2") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.request("SIGTERM");
    });
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    signal.await.unwrap();

    assert_eq!(ctx.stop.requested(), Some("SIGTERM"));
    assert_eq!(report.stopped, None, "{report:?}");
    assert_eq!(report.hosts[0].outcome, HostOutcome::Converged);
    assert_eq!(report.hosts[0].error, None);
    assert_eq!(
        containers(&engine),
        vec![
            running("s-web-1", "reg/app:2"),
            running("s-web-2", "reg/app:2")
        ]
    );
}

/// A replace reports the engine's own stop and start apart from berth's
/// time: `engine_seconds` covers the two calls (each 30 ms here), and the
/// step's `seconds` cover them, the renames and the gate too.
#[tokio::test]
async fn a_replace_reports_the_engines_stop_and_start_apart() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 1);
    let ctx = rollout_context(&[("s", "web", policy(&[], 1, Rollback))]);
    engine.set_latency(Duration::from_millis(30));
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    let step = report.hosts[0]
        .steps
        .iter()
        .find(|s| s.step == crate::apply::Step::Replace)
        .unwrap_or_else(|| panic!("no replace step: {report:?}"));
    let engine_seconds = step.engine_seconds.expect("engine_seconds");
    assert!(
        (0.06..0.5).contains(&engine_seconds),
        "stop + start at 30 ms each: {engine_seconds}"
    );
    assert!(step.seconds >= engine_seconds, "{step:?}");
}

/// A policy whose replicas are published to a `command` target that logs
/// `<event> <replica>` to `log`; `on_promote` runs `promote_fails` after
/// logging (a failing command fails the publish).
fn published(log: &std::path::Path, promote_fails: &str) -> ServicePolicy {
    use crate::spec::discovery::{DiscoveryKind, DiscoveryTarget};
    let log = log.display();
    let mut p = policy(&[], 1, crate::spec::FailureAction::Rollback);
    p.publish = Some(crate::discovery::Publishing {
        port: 8081,
        backend: None,
        targets: vec![DiscoveryTarget {
            name: "hooks".into(),
            kind: DiscoveryKind::Command {
                on_promote: Some(format!(
                    "echo \"promote $BERTH_REPLICA $BERTH_HOST $BERTH_ADDRESS:$BERTH_PORT\" >> {log}; {promote_fails}"
                )),
                on_retire: Some(format!(
                    "echo \"retire $BERTH_REPLICA $BERTH_HOST $BERTH_ADDRESS:$BERTH_PORT\" >> {log}"
                )),
                timeout: Duration::from_secs(10),
            },
            drain_timeout: Duration::from_secs(1),
            location: Default::default(),
        }],
        addresses: BTreeMap::from([("h".to_string(), "10.0.0.5".to_string())]),
    });
    p
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn each_old_replica_is_retired_before_it_stops_and_each_new_one_published_once_validated() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 2);
    let ctx = rollout_context(&[("s", "web", published(&log, "true"))]);
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    assert!(report.rollouts.is_empty(), "{report:?}");
    // One batch at a time: the old replica leaves discovery before it
    // stops, the new one joins once it passed its gates.
    assert_eq!(
        lines(&log),
        [
            "retire 1 h 10.0.0.5:8081",
            "promote 1 h 10.0.0.5:8081",
            "retire 2 h 10.0.0.5:8081",
            "promote 2 h 10.0.0.5:8081",
        ]
    );
    assert_eq!(
        containers(&engine),
        [
            running("s-web-1", "reg/app:2"),
            running("s-web-2", "reg/app:2")
        ]
    );
    // The report has them as steps of the replica's host.
    let mut steps: Vec<(&str, &str, bool)> = report.hosts[0]
        .steps
        .iter()
        .filter(|s| matches!(s.step, Step::Publish | Step::Retire))
        .map(|s| (s.step.as_str(), s.target.as_str(), s.ok))
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            ("publish", "s-web-1", true),
            ("publish", "s-web-2", true),
            ("retire", "s-web-1", true),
            ("retire", "s-web-2", true),
        ]
    );
}

#[tokio::test]
async fn a_failed_release_is_never_published_and_the_old_replica_is_published_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 2);
    let ctx = rollout_context(&[("s", "web", published(&log, "true"))]);
    // The new container of replica 1 never turns healthy.
    engine.set_image_health("reg/app:2", "unhealthy");
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    // Retired before the stop; the one promote is the old container's,
    // back in service (a published new one would be a second).
    assert_eq!(
        lines(&log),
        ["retire 1 h 10.0.0.5:8081", "promote 1 h 10.0.0.5:8081"]
    );
    assert_eq!(
        containers(&engine)
            .into_iter()
            .filter(|c| !c.0.ends_with(".berth-failed"))
            .collect::<Vec<_>>(),
        [
            running("s-web-1", "reg/app:1"),
            running("s-web-2", "reg/app:1")
        ]
    );
}

#[tokio::test]
async fn a_failed_publish_fails_the_release_and_a_rollback_publishes_the_old_replicas_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let flag = dir.path().join("failed-once");
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 2);
    // Publishing replica 2's new container fails (once).
    let fails = format!(
        "if [ \"$BERTH_REPLICA\" = 2 ] && [ ! -e {0} ]; then touch {0}; echo registry down >&2; exit 1; fi",
        flag.display()
    );
    let ctx = rollout_context(&[("s", "web", published(&log, &fails))]);
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;
    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(report.rollouts[0].outcome, RolloutOutcome::RolledBack);
    assert!(
        report.rollouts[0].failures[0].contains("registry down"),
        "{:?}",
        report.rollouts[0].failures
    );
    assert_eq!(
        lines(&log),
        [
            "retire 1 h 10.0.0.5:8081",
            "promote 1 h 10.0.0.5:8081",
            "retire 2 h 10.0.0.5:8081",
            // The new replica 2: refused, so it counts as failed...
            "promote 2 h 10.0.0.5:8081",
            // ...and the old one, put back, is published again.
            "promote 2 h 10.0.0.5:8081",
            // Replica 1 rolls back: its new container leaves discovery
            // before it stops, the old one joins again once it runs.
            "retire 1 h 10.0.0.5:8081",
            "promote 1 h 10.0.0.5:8081",
        ]
    );
    assert_eq!(
        containers(&engine)
            .into_iter()
            .filter(|c| !c.0.ends_with(".berth-failed"))
            .collect::<Vec<_>>(),
        [
            running("s-web-1", "reg/app:1"),
            running("s-web-2", "reg/app:1")
        ]
    );
}

#[tokio::test]
async fn a_replica_scaled_away_is_retired_before_it_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (engine, engines) = rollout_host();
    let mut changes = seed_replaces(&engine, "s", "web", 2);
    let mut gone = changes.remove(1);
    gone.action = Action::Remove;
    gone.desired = None;
    let ctx = rollout_context(&[("s", "web", published(&log, "true"))]);
    let report = apply(&rollout_plan(vec![gone]), &engines, &ctx).await;
    assert!(report.hosts[0].error.is_none(), "{report:?}");
    assert_eq!(lines(&log), ["retire 2 h 10.0.0.5:8081"]);
    assert_eq!(containers(&engine), [running("s-web-1", "reg/app:1")]);
}
