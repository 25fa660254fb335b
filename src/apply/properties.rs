//! Properties of plan and apply together, on random repos and hosts, over
//! the in-memory engine: the promises berth makes to a timer that runs it
//! every few minutes.
//!
//! - **Convergence**: whatever the hosts run (an older release, crashed,
//!   removed or half-replaced containers), `apply(plan)` followed by a fresh
//!   plan is empty, and every wanted slot has exactly one running container.
//! - **Stable placement**: a change to one service, or a new or removed
//!   service or stack, moves no replica of anything else (nor any replica of
//!   the changed service that still exists), and plans no change for any
//!   other service.
//! - **Faults**: an engine call failing at any step of an apply leaves every
//!   slot whole; the next apply converges as above.
//!
//! Repos are written to disk and read by `spec::load_with`, as a user's would
//! be, so the properties cover the loader, placement, the diff and the
//! rollout together. Each property runs a few hundred cases in seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::{apply, ApplyContext, ApplyReport, ServicePolicy, HOST_OPERATIONS};
use crate::hosts::memory::MemoryEngine;
use crate::hosts::{Docker, Engine};
use crate::observed::HostObservation;
use crate::placement::{self, Slot};
use crate::plan::{self, Action, Plan};
use crate::spec::{self, Project};

const PROJECT: &str = "p";
const ROLES: [&str; 2] = ["front", "back"];

/// One host of the inventory; hosts 0 and 1 always exist, with the two
/// roles, so every constraint has an eligible host.
#[derive(Debug, Clone)]
struct HostGen {
    role: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct ServiceGen {
    replicas: u32,
    global: bool,
    /// `node.labels.role == ROLES[i]`.
    constraint: Option<usize>,
    image: u8,
    /// A value of `environment.LEVEL`: part of the spec hash.
    level: u8,
    /// Mounts the stack's named volume `data`.
    volume: bool,
    start_first: bool,
    parallelism: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct StackGen {
    /// Service `i` is named `svc<i>`; None: not in this version of the repo.
    services: Vec<Option<ServiceGen>>,
}

#[derive(Debug, Clone)]
struct World {
    hosts: Vec<HostGen>,
    /// Stack `i` is named `st<i>`; None: not in the repo.
    stacks: Vec<Option<StackGen>>,
}

fn service() -> impl Strategy<Value = ServiceGen> {
    (
        0u32..4,
        prop::bool::weighted(0.2),
        prop::option::of(0usize..2),
        1u8..3,
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        0u32..3,
    )
        .prop_map(
            |(replicas, global, constraint, image, level, volume, start_first, parallelism)| {
                ServiceGen {
                    replicas,
                    global,
                    constraint,
                    image,
                    level,
                    volume,
                    start_first,
                    parallelism,
                }
            },
        )
}

fn stack() -> impl Strategy<Value = StackGen> {
    prop::collection::vec(prop::option::weighted(0.8, service()), 1..4)
        .prop_map(|services| StackGen { services })
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(0usize..2, 0..3),
        prop::collection::vec(prop::option::weighted(0.85, stack()), 1..4),
    )
        .prop_map(|(extra, stacks)| {
            let hosts = [0, 1]
                .into_iter()
                .chain(extra)
                .map(|role| HostGen { role })
                .collect();
            World { hosts, stacks }
        })
}

/// A release after `world`: any service, stack or setting may change.
fn release(world: &World) -> impl Strategy<Value = World> {
    let hosts = world.hosts.clone();
    prop::collection::vec(prop::option::weighted(0.85, stack()), 1..4).prop_map(move |stacks| {
        World {
            hosts: hosts.clone(),
            stacks,
        }
    })
}

/// One change to one part of the repo, which must move nothing else.
#[derive(Debug, Clone)]
enum Unrelated {
    /// Service `service` of stack `stack` (indices modulo what exists)
    /// gets a new image, environment or replica count.
    Edit {
        stack: usize,
        service: usize,
        image: u8,
        level: u8,
        replicas: u32,
    },
    AddService(usize, ServiceGen),
    RemoveService {
        stack: usize,
        service: usize,
    },
    AddStack(StackGen),
    RemoveStack(usize),
    /// A new host joins the inventory, with role `ROLES[i]`.
    AddHost(usize),
}

fn unrelated() -> impl Strategy<Value = Unrelated> {
    prop_oneof![
        (0usize..64, 0usize..64, 1u8..4, 0u8..4, 0u32..5).prop_map(
            |(stack, service, image, level, replicas)| Unrelated::Edit {
                stack,
                service,
                image,
                level,
                replicas,
            }
        ),
        (0usize..64, service()).prop_map(|(s, g)| Unrelated::AddService(s, g)),
        (0usize..64, 0usize..64)
            .prop_map(|(stack, service)| Unrelated::RemoveService { stack, service }),
        stack().prop_map(Unrelated::AddStack),
        (0usize..64).prop_map(Unrelated::RemoveStack),
        (0usize..2).prop_map(Unrelated::AddHost),
    ]
}

/// Something that happened to a host's containers between runs.
#[derive(Debug, Clone)]
enum Mishap {
    Crash,
    Removed,
    /// A run killed after renaming the old container aside.
    RenamedOld,
    /// A run killed while its start-first container was being checked.
    RenamedNew,
}

fn mishaps() -> impl Strategy<Value = Vec<(usize, Mishap)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            prop_oneof![
                Just(Mishap::Crash),
                Just(Mishap::Removed),
                Just(Mishap::RenamedOld),
                Just(Mishap::RenamedNew),
            ],
        ),
        0..4,
    )
}

/// The slots of `world` in a given stack: which services exist.
fn services_of(world: &World) -> Vec<(usize, usize)> {
    world
        .stacks
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.as_ref()?)))
        .flat_map(|(i, s)| {
            s.services
                .iter()
                .enumerate()
                .filter(|(_, g)| g.is_some())
                .map(move |(j, _)| (i, j))
        })
        .collect()
}

fn host_name(i: usize) -> String {
    format!("h{i}")
}

impl World {
    fn apply_change(&self, change: &Unrelated) -> World {
        let mut next = self.clone();
        let existing = services_of(self);
        let stacks: Vec<usize> = (0..self.stacks.len())
            .filter(|i| self.stacks[*i].is_some())
            .collect();
        match change {
            Unrelated::Edit {
                stack,
                service,
                image,
                level,
                replicas,
            } => {
                if let Some(&(i, j)) = existing.get((stack + service) % existing.len().max(1)) {
                    if let Some(Some(s)) = next.stacks[i].as_mut().map(|s| &mut s.services[j]) {
                        s.image = *image;
                        s.level = *level;
                        s.replicas = *replicas;
                    }
                }
            }
            Unrelated::AddService(stack, g) => {
                if let Some(&i) = stacks.get(stack % stacks.len().max(1)) {
                    if let Some(s) = next.stacks[i].as_mut() {
                        s.services.push(Some(g.clone()));
                    }
                }
            }
            Unrelated::RemoveService { stack, service } => {
                if let Some(&(i, j)) = existing.get((stack + service) % existing.len().max(1)) {
                    if let Some(s) = next.stacks[i].as_mut() {
                        s.services[j] = None;
                    }
                }
            }
            Unrelated::AddStack(g) => next.stacks.push(Some(g.clone())),
            Unrelated::RemoveStack(stack) => {
                if let Some(&i) = stacks.get(stack % stacks.len().max(1)) {
                    next.stacks[i] = None;
                }
            }
            Unrelated::AddHost(role) => next.hosts.push(HostGen { role: *role }),
        }
        next
    }

    /// The repo's files: berth.yaml and one compose file per stack.
    fn files(&self) -> Vec<(String, String)> {
        let mut inventory = format!("project: {PROJECT}\nhosts:\n");
        for (i, h) in self.hosts.iter().enumerate() {
            inventory.push_str(&format!(
                "  - name: {}\n    address: 10.0.0.{}\n    labels: {{ role: {} }}\n",
                host_name(i),
                i + 1,
                ROLES[h.role]
            ));
        }
        let mut files = vec![("berth.yaml".to_string(), inventory)];
        for (i, s) in self.stacks.iter().enumerate() {
            let Some(s) = s else { continue };
            let mut compose = String::from("services:\n");
            let mut any_volume = false;
            for (j, g) in s.services.iter().enumerate() {
                let Some(g) = g else { continue };
                compose.push_str(&format!(
                    "  svc{j}:\n    image: reg/app:{}\n    environment:\n      LEVEL: \"{}\"\n",
                    g.image, g.level
                ));
                if g.volume {
                    any_volume = true;
                    compose.push_str("    volumes:\n      - data:/data\n");
                }
                compose.push_str("    deploy:\n");
                if g.global {
                    compose.push_str("      mode: global\n");
                } else {
                    compose.push_str(&format!("      replicas: {}\n", g.replicas));
                }
                compose.push_str(&format!(
                    "      update_config:\n        parallelism: {}\n        order: {}\n",
                    g.parallelism,
                    if g.start_first {
                        "start-first"
                    } else {
                        "stop-first"
                    }
                ));
                if let Some(role) = g.constraint {
                    compose.push_str(&format!(
                        "      placement:\n        constraints:\n          - node.labels.role == {}\n",
                        ROLES[role]
                    ));
                }
            }
            if s.services.iter().all(Option::is_none) {
                compose = "services: {}\n".into();
            }
            if any_volume {
                compose.push_str("volumes:\n  data: {}\n");
            }
            files.push((format!("stacks/st{i}/compose.yaml"), compose));
        }
        files
    }

    fn load(&self) -> Project {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in self.files() {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let options = spec::LoadOptions {
            environment: Some(BTreeMap::new()),
            ..Default::default()
        };
        match spec::load_with(dir.path(), &options) {
            Ok(loaded) => loaded.project,
            Err(e) => panic!("generated repo refused: {e}\n{:#?}", self.files()),
        }
    }
}

/// The hosts of a world, each an in-memory engine with nothing on it.
struct Fleet {
    engines: BTreeMap<String, MemoryEngine>,
    boxed: BTreeMap<String, Box<dyn Engine>>,
}

impl Fleet {
    fn new(hosts: usize) -> Fleet {
        let engines: BTreeMap<String, MemoryEngine> = (0..hosts)
            .map(|i| (host_name(i), MemoryEngine::new(&host_name(i))))
            .collect();
        let boxed = engines
            .iter()
            .map(|(n, e)| (n.clone(), Box::new(e.clone()) as Box<dyn Engine>))
            .collect();
        Fleet { engines, boxed }
    }

    async fn observe(&self) -> BTreeMap<String, HostObservation> {
        let mut observed = BTreeMap::new();
        for (name, engine) in &self.engines {
            observed.insert(name.clone(), engine.observe(PROJECT).await.unwrap());
        }
        observed
    }

    /// Plans `project` against what the hosts run now, as `berth plan` does.
    async fn plan(&self, project: &Project) -> Plan {
        let observed = self.observe().await;
        let current = plan::current_placement(&observed);
        let desired = placement::place(project, &current)
            .unwrap_or_else(|e| panic!("placement refused: {e:?}"));
        plan::diff(&desired, &observed, Vec::new(), None)
    }

    async fn apply(&self, project: &Project, plan: &Plan) -> ApplyReport {
        apply(plan, &self.boxed, &context(project)).await
    }

    /// Plans and applies `project`; panics when the run fails.
    async fn converge(&self, project: &Project) {
        let plan = self.plan(project).await;
        let report = self.apply(project, &plan).await;
        assert_clean(&report);
    }

    /// Where each slot's live containers run (name without a suffix).
    fn slots(&self) -> BTreeMap<Slot, Vec<(String, String)>> {
        let mut slots: BTreeMap<Slot, Vec<(String, String)>> = BTreeMap::new();
        for (host, engine) in &self.engines {
            for c in engine.containers() {
                let Some(slot) = slot_of(&c.labels) else {
                    continue;
                };
                slots
                    .entry(slot)
                    .or_default()
                    .push((host.clone(), format!("{} {}", c.name, c.state)));
            }
        }
        slots
    }

    async fn mishap(&self, which: usize, mishap: &Mishap) {
        let all: Vec<(MemoryEngine, String)> = self
            .engines
            .values()
            .flat_map(|e| e.containers().into_iter().map(move |c| (e.clone(), c.id)))
            .collect();
        let Some((engine, id)) = all.get(which % all.len().max(1)) else {
            return;
        };
        let Some(c) = engine.container(id) else {
            return;
        };
        match mishap {
            Mishap::Crash => engine.crash_container(id, 137),
            Mishap::Removed => engine.remove_container(id).await.unwrap(),
            Mishap::RenamedOld => {
                engine.stop_container(id, None).await.unwrap();
                let name = format!("{}{}", c.name, plan::RETIRED_SUFFIX);
                engine.rename_container(id, &name).await.unwrap();
            }
            Mishap::RenamedNew => {
                let name = format!("{}{}", c.name, plan::NEW_SUFFIX);
                engine.rename_container(id, &name).await.unwrap();
            }
        }
    }
}

fn slot_of(labels: &BTreeMap<String, String>) -> Option<Slot> {
    Some(Slot {
        stack: labels.get(crate::labels::STACK)?.clone(),
        service: labels.get(crate::labels::SERVICE)?.clone(),
        replica: labels.get(crate::labels::REPLICA)?.parse().ok()?,
    })
}

fn context(project: &Project) -> ApplyContext {
    let services = project
        .stacks
        .iter()
        .flat_map(|st| {
            st.services.iter().map(|s| {
                (
                    (st.name.clone(), s.name.clone()),
                    ServicePolicy {
                        depends_on: Vec::new(),
                        update: s.deploy.update.clone(),
                        rollback: s.deploy.rollback.clone(),
                        validate: Vec::new(),
                        reload: None,
                        publish: None,
                    },
                )
            })
        })
        .collect();
    ApplyContext {
        project: PROJECT.into(),
        metadata: BTreeMap::new(),
        health_timeout: Duration::from_secs(2),
        services,
        parallel: 4,
        rollout_parallel: 16,
        host_operations: HOST_OPERATIONS,
        secrets: Default::default(),
        secrets_dirs: project
            .inventory
            .hosts
            .iter()
            .map(|h| (h.name.clone(), "/sec".to_string()))
            .collect(),
        configs_dirs: Default::default(),
        prune_secrets: false,
        configs: Default::default(),
        prune_configs: false,
        stop: Default::default(),
    }
}

fn assert_clean(report: &ApplyReport) {
    assert!(
        report.failed_hosts().is_empty() && report.rollouts.is_empty(),
        "apply failed: {report:#?}"
    );
}

/// Every slot the repo wants has exactly one container, running, under its
/// own name, from the wanted spec, on the host placement chose; nothing else
/// is left.
async fn assert_whole(fleet: &Fleet, project: &Project) -> Result<(), TestCaseError> {
    let observed = fleet.observe().await;
    let desired = placement::place(project, &plan::current_placement(&observed)).unwrap();
    let mut want: BTreeMap<Slot, Vec<(String, String)>> = BTreeMap::new();
    for (host, d) in &desired.hosts {
        for c in &d.containers {
            want.entry(c.slot.clone())
                .or_default()
                .push((host.clone(), format!("{} running", c.name)));
            if let Some(runs) = fleet.engines[host].container(&c.name) {
                let differs = plan::field_diff(&runs.spec, &c.spec);
                prop_assert!(
                    differs.is_empty(),
                    "{} on {host} does not run the repo's spec: {differs:?}",
                    c.slot
                );
            }
        }
    }
    let mut have = fleet.slots();
    for v in have.values_mut() {
        v.sort();
    }
    for v in want.values_mut() {
        v.sort();
    }
    prop_assert_eq!(have, want, "slots differ from the repo");
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking replays whole runs: bounded, so a failure reports in seconds.
        max_shrink_iters: 2000,
        max_shrink_time: 30_000,
        // A failure prints its shrunk case; nothing is written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A world, a later release of it, and what happened in between.
fn two_releases() -> impl Strategy<Value = (World, World, Vec<(usize, Mishap)>)> {
    world().prop_flat_map(|w| {
        let next = release(&w);
        (Just(w), next, mishaps())
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever the hosts run, one apply reaches the repo: a fresh plan is
    /// empty and every slot has one running container.
    #[test]
    fn apply_then_plan_is_empty((before, after, mishaps) in two_releases()) {
        runtime().block_on(async {
            let fleet = Fleet::new(before.hosts.len());
            fleet.converge(&before.load()).await;
            for (which, m) in &mishaps {
                fleet.mishap(*which, m).await;
            }
            let project = after.load();
            fleet.converge(&project).await;
            let again = fleet.plan(&project).await;
            prop_assert!(again.is_empty(), "not converged: {again:#?}");
            assert_whole(&fleet, &project).await?;
            Ok(())
        })?;
    }

    /// A change to one part of the repo (or a new host) moves no other
    /// replica, and plans nothing for the services it did not touch.
    #[test]
    fn placement_is_stable(
        (before, change) in world().prop_flat_map(|w| (Just(w), unrelated()))
    ) {
        runtime().block_on(async {
            let after = before.apply_change(&change);
            let fleet = Fleet::new(after.hosts.len());
            fleet.converge(&before.load()).await;
            let project = after.load();
            let observed = fleet.observe().await;
            let current = plan::current_placement(&observed);
            let desired = placement::place(&project, &current).unwrap();
            let placed: BTreeSet<(&Slot, &String)> = desired
                .hosts
                .iter()
                .flat_map(|(h, d)| d.containers.iter().map(move |c| (&c.slot, h)))
                .collect();
            let wanted: BTreeSet<&Slot> = placed.iter().map(|(s, _)| *s).collect();
            // Every replica still wanted stays on the host it runs on.
            for (slot, hosts) in &current {
                if !wanted.contains(slot) {
                    continue;
                }
                for host in hosts {
                    prop_assert!(
                        placed.contains(&(slot, host)),
                        "{slot} left {host} after {change:?}: now on {:?}",
                        placed.iter().filter(|(s, _)| *s == slot).map(|(_, h)| h).collect::<Vec<_>>()
                    );
                }
            }
            // Only the services the change touched have changes (and, on a
            // new host, the global services that now run there too).
            let touched: BTreeSet<(String, String)> = touched(&before, &after);
            let new_host = (after.hosts.len() > before.hosts.len())
                .then(|| host_name(after.hosts.len() - 1));
            let plan = plan::diff(&desired, &observed, Vec::new(), None);
            for h in &plan.hosts {
                for c in &h.changes {
                    // The repo's change (a scale-up, a replica placed on a
                    // new host) is never taken for one made outside berth.
                    prop_assert!(
                        !c.drift,
                        "{} on {}: {:?} counted as drift after {change:?}",
                        c.slot, h.host, c.reason
                    );
                    let key = (c.slot.stack.clone(), c.slot.service.clone());
                    let joins = new_host.as_ref() == Some(&h.host) && c.action == Action::Create;
                    prop_assert!(
                        touched.contains(&key) || joins,
                        "{} on {}: {:?} ({:?}) after {change:?}, which touched {touched:?}",
                        c.slot, h.host, c.action, c.reason
                    );
                }
            }
            Ok(())
        })?;
    }

    /// An engine call failing at any step of an apply leaves every slot with
    /// its old or its new container, and the next apply converges.
    #[test]
    fn a_fault_at_any_step_heals_on_the_next_apply(
        (before, after, _) in two_releases(),
        host in any::<usize>(),
        call in 0usize..40,
    ) {
        runtime().block_on(async {
            let fleet = Fleet::new(before.hosts.len());
            fleet.converge(&before.load()).await;
            let project = after.load();
            let plan = fleet.plan(&project).await;
            let faulty = &fleet.engines[&host_name(host % before.hosts.len())];
            faulty.fail_call(Some(call));
            let _ = fleet.apply(&project, &plan).await;
            faulty.fail_call(None);
            // No slot is left without a serving container or with two.
            for (slot, containers) in fleet.slots() {
                let live: Vec<_> = containers
                    .iter()
                    .filter(|(_, what)| what.ends_with(" running"))
                    .collect();
                let mut hosts: Vec<&String> = live.iter().map(|(h, _)| h).collect();
                hosts.dedup();
                prop_assert!(
                    hosts.len() == live.len(),
                    "{slot} has two live containers on one host: {containers:?}"
                );
            }
            fleet.converge(&project).await;
            let again = fleet.plan(&project).await;
            prop_assert!(again.is_empty(), "not converged after the fault: {again:#?}");
            assert_whole(&fleet, &project).await?;
            Ok(())
        })?;
    }
}

/// The services whose definition differs between two worlds.
fn touched(before: &World, after: &World) -> BTreeSet<(String, String)> {
    let all = |w: &World| -> BTreeMap<(String, String), ServiceGen> {
        w.stacks
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?)))
            .flat_map(|(i, s)| {
                s.services.iter().enumerate().filter_map(move |(j, g)| {
                    Some(((format!("st{i}"), format!("svc{j}")), g.clone()?))
                })
            })
            .collect()
    };
    let (a, b) = (all(before), all(after));
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// One service of `replicas` (`role`: constrained to `ROLES[role]`).
fn one_service(replicas: u32, role: Option<usize>) -> ServiceGen {
    ServiceGen {
        replicas,
        global: false,
        constraint: role,
        image: 1,
        level: 0,
        volume: false,
        start_first: false,
        parallelism: 1,
    }
}

/// The changes of `plan` as (host, slot, action, reason, drift), sorted.
fn changes_of(plan: &Plan) -> Vec<(String, String, Action, plan::Reason, bool)> {
    let mut all: Vec<_> = plan
        .hosts
        .iter()
        .flat_map(|h| {
            h.changes.iter().map(move |c| {
                (
                    h.host.clone(),
                    c.slot.to_string(),
                    c.action,
                    c.reason.clone(),
                    c.drift,
                )
            })
        })
        .collect();
    all.sort();
    all
}

/// A scaled-up replica and one that placement moves to another host are
/// the commit's creates; a replica removed by hand below a running higher
/// one is drift, and so is any removed one while the commit did not move.
#[tokio::test]
async fn only_a_replica_berth_had_created_there_is_missing() {
    use plan::Reason;
    let world = |svc0: u32, svc1_role: usize| World {
        hosts: vec![HostGen { role: 0 }, HostGen { role: 1 }],
        stacks: vec![Some(StackGen {
            services: vec![
                Some(one_service(svc0, None)),
                Some(one_service(1, Some(svc1_role))),
            ],
        })],
    };
    let fleet = Fleet::new(2);
    let before = world(2, 0);
    let project = before.load();
    let mut context = context(&project);
    context
        .metadata
        .insert(crate::labels::COMMIT.into(), "c1".into());
    let first = fleet.plan(&project).await;
    assert_clean(&apply(&first, &fleet.boxed, &context).await);
    let on = |host: &str, slot: &str| {
        fleet.engines[host]
            .containers()
            .into_iter()
            .find(|c| c.name == slot)
    };
    // Replica 1 of st0/svc0 is removed by hand.
    let (host1, removed) = ["h0", "h1"]
        .into_iter()
        .find_map(|h| Some((h, on(h, "st0-svc0-1")?)))
        .expect("st0/svc0.1 runs");
    fleet.engines[host1]
        .remove_container(&removed.id)
        .await
        .unwrap();

    // The commit did not move: the removed replica is drift.
    let observed = fleet.observe().await;
    let desired = placement::place(&project, &plan::current_placement(&observed)).unwrap();
    let same = plan::diff(&desired, &observed, Vec::new(), Some("c1".into()));
    assert_eq!(
        changes_of(&same),
        vec![(
            host1.to_string(),
            "st0/svc0.1".into(),
            Action::Create,
            Reason::Missing,
            true
        )]
    );

    // A new commit scales svc0 up and moves svc1 to the other role: the
    // removed replica is still drift (replica 2 of its spec runs), replica
    // 3 and the moved one are plain creates.
    let after = world(3, 1).load();
    let desired = placement::place(&after, &plan::current_placement(&observed)).unwrap();
    let next = plan::diff(&desired, &observed, Vec::new(), Some("c2".into()));
    let mut creates: Vec<_> = changes_of(&next)
        .into_iter()
        .filter(|c| c.2 == Action::Create)
        .map(|(_, slot, _, reason, drift)| (slot, reason, drift))
        .collect();
    creates.sort();
    assert_eq!(
        creates,
        vec![
            ("st0/svc0.1".into(), Reason::Missing, true),
            ("st0/svc0.3".into(), Reason::New, false),
            ("st0/svc1.1".into(), Reason::New, false),
        ]
    );
    assert!(
        changes_of(&next).iter().any(|c| c.0 == "h0"
            && c.1 == "st0/svc1.1"
            && c.2 == Action::Remove
            && c.3 == Reason::Moved),
        "{:?}",
        changes_of(&next)
    );
    assert_eq!(next.drift_count(), 1);
    // Shown as the user reads it: the commit's creates say so.
    let human = crate::render::human(&next);
    assert_eq!(human.matches("missing on the host").count(), 1, "{human}");
}
