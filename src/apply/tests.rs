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
                }),
                reason: crate::plan::Reason::New,
                drift: false,
                fields: vec![],
                failed_before: None,
            }],
            blocked: vec![],
        }],
        unreachable: vec![],
        environment: Vec::new(),
    }
}

fn context(plaintexts: &[(&str, &str)]) -> ApplyContext {
    ApplyContext {
        project: "p".into(),
        metadata: BTreeMap::new(),
        health_timeout: Duration::from_secs(2),
        services: BTreeMap::new(),
        parallel: 1,
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
        prune_secrets: true,
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
                image: "reg/app:2".into(),
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
                }),
                reason: crate::plan::Reason::SpecChanged {
                    fields: vec!["image".into()],
                },
                drift: false,
                fields: vec![],
                failed_before: None,
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
        }],
        unreachable: vec![],
        environment: Vec::new(),
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

fn policy(depth: usize, parallelism: u32, action: crate::spec::FailureAction) -> ServicePolicy {
    let mut p = ServicePolicy {
        depth,
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
    // The plan lists `web` first; `web` depends on `db` (depth 1 > 0).
    let mut changes = seed_replaces(&engine, "s", "web", 1);
    changes.extend(seed_replaces(&engine, "s", "db", 1));
    let ctx = rollout_context(&[
        ("s", "web", policy(1, 1, Rollback)),
        ("s", "db", policy(0, 1, Rollback)),
    ]);
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
    let ctx = rollout_context(&[("s", "web", policy(0, 2, Pause))]);
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
    let log = engine.mutations();
    assert!(
        !log.iter()
            .any(|m| m.contains("s-web-3") || m.contains("s-web-4")),
        "{log:?}"
    );
    assert!(report.hosts[0].error.is_some());
}

#[tokio::test]
async fn a_failure_rolls_back_every_replaced_replica_of_the_service() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let changes = seed_replaces(&engine, "s", "web", 4);
    let ctx = rollout_context(&[("s", "web", policy(0, 2, Rollback))]);
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
async fn continue_goes_on_past_a_failure_and_keeps_the_stack_going() {
    use crate::spec::FailureAction::{Continue, Rollback};
    let (engine, engines) = rollout_host();
    let mut changes = seed_replaces(&engine, "s", "web", 3);
    changes.extend(seed_replaces(&engine, "s", "worker", 1));
    let ctx = rollout_context(&[
        ("s", "web", policy(0, 1, Continue)),
        ("s", "worker", policy(1, 1, Rollback)),
    ]);
    engine.fail_next("create", "no space left on device");
    let report = apply(&rollout_plan(changes), &engines, &ctx).await;

    assert_eq!(report.rollouts.len(), 1, "{report:?}");
    assert_eq!(report.rollouts[0].outcome, RolloutOutcome::Continued);
    assert_eq!(
        containers(&engine),
        vec![
            running("s-web-1", "reg/app:1"),
            running("s-web-2", "reg/app:2"),
            running("s-web-3", "reg/app:2"),
            running("s-worker-1", "reg/app:2"),
        ]
    );
}

#[tokio::test]
async fn a_failed_service_halts_the_rest_of_its_stack_only() {
    use crate::spec::FailureAction::Rollback;
    let (engine, engines) = rollout_host();
    let mut changes = seed_replaces(&engine, "s", "db", 1);
    changes.extend(seed_replaces(&engine, "s", "web", 1));
    changes.extend(seed_replaces(&engine, "t", "api", 1));
    let ctx = rollout_context(&[
        ("s", "db", policy(0, 1, Rollback)),
        ("s", "web", policy(1, 1, Rollback)),
        ("t", "api", policy(0, 1, Rollback)),
    ]);
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
    // `web` comes after `db` in stack `s`: not touched. Stack `t` is
    // independent: rolled out.
    assert_eq!(
        containers(&engine),
        vec![
            running("s-db-1", "reg/app:1"),
            running("s-web-1", "reg/app:1"),
            running("t-api-1", "reg/app:2"),
        ]
    );
    let log = engine.mutations();
    assert!(!log.iter().any(|m| m.contains("s-web-1")), "{log:?}");
}
