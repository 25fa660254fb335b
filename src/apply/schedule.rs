//! Which services roll out, when, and in which batches: pure functions of
//! the plan, the hosts that were prepared and each service's `depends_on`.
//!
//! The services form a dependency graph: stacks are independent, and inside
//! a stack a service waits only for the services it `depends_on` (a
//! dependency with nothing to roll out is already there). Every service
//! whose dependencies are satisfied may roll out at once, up to
//! `settings.rollout_parallel`; [`Schedule`] says which are ready and what a
//! failure cancels, and the executor (`rollout`) only does what it says.
//!
//! Within a service the members are interleaved across hosts (the 1st
//! replica of every host, then the 2nd...), so a batch never takes all of
//! one host's replicas first; batches guard replicas that serve, so a
//! service with none serving goes in one batch ([`batch_len`]).

use std::collections::BTreeMap;

use crate::plan::{Action, Change, Plan, PlannedRollout, RolloutMember};
use crate::spec::{DependsCondition, FailureAction, UpdateConfig, UpdateOrder};

/// A member of a rollout: the host, and the create or replace there.
pub type Member<'a> = (&'a str, &'a Change);

/// One service's rollout: its members, host by host, in batch order.
#[derive(Debug, Clone)]
pub struct ServiceRollout<'a> {
    pub stack: String,
    pub service: String,
    /// `(host, change)`: the creates and replaces of this service.
    pub members: Vec<Member<'a>>,
    /// The rollouts (indices in the same list) this one waits for, with
    /// the `depends_on` condition it waits for.
    pub after: Vec<(usize, DependsCondition)>,
}

/// The rollouts of `plan`, sorted by stack and service. `prepared` says
/// whether a host was prepared (its other changes are left out);
/// `depends_on` gives a service's dependencies in its stack, with their
/// conditions.
pub fn rollouts<'a>(
    plan: &'a Plan,
    prepared: impl Fn(&str) -> bool,
    depends_on: impl Fn(&str, &str) -> Vec<(String, DependsCondition)>,
) -> Vec<ServiceRollout<'a>> {
    let mut services: BTreeMap<(&str, &str), Vec<Member<'a>>> = BTreeMap::new();
    for hp in plan.hosts.iter().filter(|hp| prepared(&hp.host)) {
        for c in hp.changes.iter().filter(|c| c.action != Action::Remove) {
            services
                .entry((c.slot.stack.as_str(), c.slot.service.as_str()))
                .or_default()
                .push((hp.host.as_str(), c));
        }
    }
    let index: BTreeMap<(&str, &str), usize> = services
        .keys()
        .enumerate()
        .map(|(i, key)| (*key, i))
        .collect();
    services
        .into_iter()
        .map(|((stack, service), members)| {
            let after = depends_on(stack, service)
                .into_iter()
                .filter_map(|(dep, cond)| Some((*index.get(&(stack, dep.as_str()))?, cond)))
                .collect();
            ServiceRollout {
                stack: stack.to_string(),
                service: service.to_string(),
                members: interleave(members),
                after,
            }
        })
        .collect()
}

/// The rollouts apply will run for `plan`, as [`Plan::rollouts`] shows
/// them: the members of [`rollouts`] in the batches of [`batch_len`], as
/// the executor takes them (every host counted as prepared: a host whose
/// preparation fails drops out of its batches at apply). `policy`: each
/// (stack, service)'s `depends_on` and update config, as apply has them
/// (passed in: this stage does not know the executor's types).
pub fn planned(
    plan: &Plan,
    policy: impl Fn(&str, &str) -> (Vec<(String, DependsCondition)>, UpdateConfig),
) -> Vec<PlannedRollout> {
    rollouts(plan, |_| true, |stack, service| policy(stack, service).0)
        .into_iter()
        .map(|r| {
            let (depends_on, update) = policy(&r.stack, &r.service);
            let batch = batch_len(&r.members, update.parallelism);
            PlannedRollout {
                order: match update.order {
                    UpdateOrder::StopFirst => "stop-first",
                    UpdateOrder::StartFirst => "start-first",
                }
                .to_string(),
                parallelism: update.parallelism,
                after: depends_on
                    .iter()
                    .map(|(dep, condition)| format!("{dep}: {}", condition_name(*condition)))
                    .collect(),
                batches: r
                    .members
                    .chunks(batch)
                    .map(|chunk| {
                        chunk
                            .iter()
                            .map(|(host, c)| RolloutMember {
                                host: host.to_string(),
                                container: c.name.clone(),
                            })
                            .collect()
                    })
                    .collect(),
                stack: r.stack,
                service: r.service,
            }
        })
        .collect()
}

/// A `depends_on` condition as Compose spells it.
fn condition_name(condition: DependsCondition) -> String {
    serde_json::to_value(condition)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{condition:?}"))
}

/// Members ranked by their place on their host, then by host.
fn interleave(members: Vec<Member<'_>>) -> Vec<Member<'_>> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ranked: Vec<(usize, Member)> = members
        .into_iter()
        .map(|m| {
            let n = seen.entry(m.0).or_default();
            *n += 1;
            (*n, m)
        })
        .collect();
    ranked.sort_by(|a, b| (a.0, a.1 .0).cmp(&(b.0, b.1 .0)));
    ranked.into_iter().map(|(_, m)| m).collect()
}

/// How many members of a rollout go at once. Batches exist to keep
/// replicas serving while others are replaced: when no member replaces a
/// running container (a new service, or every replica down), all of them
/// go at once, still gated and still rolled back on failure. Otherwise
/// `update_config.parallelism`, where 0 means all.
pub fn batch_len(members: &[Member<'_>], parallelism: u32) -> usize {
    let serving = members.iter().any(|(_, c)| {
        c.current
            .as_ref()
            .is_some_and(|o| o.state == crate::observed::ContainerState::Running)
    });
    if !serving || parallelism == 0 {
        return members.len().max(1);
    }
    usize::try_from(parallelism).unwrap_or(usize::MAX)
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waits for its dependencies (or for a free slot).
    Waiting,
    /// Rolling out; `started` once its first batch passed its gates.
    Running { started: bool },
    /// Every member passed, or it failed with `continue` (what passed stays).
    Done { failed: bool },
    /// Failed and stopped (`rollback` or `pause`): its stack halts.
    Halted,
    /// Never started: a dependency failed, or its stack halted.
    Cancelled,
}

/// Why a rollout was cancelled: the service whose failure caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    pub rollout: usize,
    /// Index of the failed rollout (a dependency, or a service of the same
    /// stack whose `failure_action` halts it).
    pub because: usize,
}

/// The dependency graph of a run's rollouts, as it progresses: a pure state
/// machine the executor feeds with what happened and asks what to start.
#[derive(Debug, Clone)]
pub struct Schedule {
    stacks: Vec<String>,
    after: Vec<Vec<(usize, DependsCondition)>>,
    states: Vec<State>,
    /// Rollouts at once (`settings.rollout_parallel`), at least 1.
    limit: usize,
}

impl Schedule {
    pub fn new(rollouts: &[ServiceRollout<'_>], limit: usize) -> Schedule {
        Schedule {
            stacks: rollouts.iter().map(|r| r.stack.clone()).collect(),
            after: rollouts.iter().map(|r| r.after.clone()).collect(),
            states: vec![State::Waiting; rollouts.len()],
            limit: limit.max(1),
        }
    }

    pub fn state(&self, rollout: usize) -> State {
        self.states[rollout]
    }

    fn running(&self) -> usize {
        self.states
            .iter()
            .filter(|s| matches!(s, State::Running { .. }))
            .count()
    }

    /// Whether a dependency is there for its dependant: rolled out (or
    /// with its first batch up, for `service_started`).
    fn satisfied(&self, dep: usize, condition: DependsCondition) -> bool {
        match self.states[dep] {
            State::Done { failed } => !failed,
            State::Running { started } => started && condition == DependsCondition::ServiceStarted,
            _ => false,
        }
    }

    /// The rollouts to start now, in order, marked running: every waiting
    /// one whose dependencies are satisfied, while fewer than the limit run.
    pub fn ready(&mut self) -> Vec<usize> {
        let mut free = self.limit.saturating_sub(self.running());
        let mut ready = Vec::new();
        for i in 0..self.states.len() {
            if free == 0 {
                break;
            }
            let waiting = self.states[i] == State::Waiting;
            if waiting && self.after[i].iter().all(|&(d, c)| self.satisfied(d, c)) {
                self.states[i] = State::Running { started: false };
                ready.push(i);
                free -= 1;
            }
        }
        ready
    }

    /// The first batch of `rollout` passed its gates.
    pub fn started(&mut self, rollout: usize) {
        if let State::Running { .. } = self.states[rollout] {
            self.states[rollout] = State::Running { started: true };
        }
    }

    /// `rollout` finished: `None` when every member passed, else the
    /// `failure_action` that was taken. Returns the rollouts this cancels:
    /// a failed service's dependants (and theirs), and with `rollback` or
    /// `pause` every service of its stack not started yet. Other stacks are
    /// never touched.
    pub fn finished(&mut self, rollout: usize, failure: Option<FailureAction>) -> Vec<Cancelled> {
        self.states[rollout] = match failure {
            None => State::Done { failed: false },
            Some(FailureAction::Continue) => State::Done { failed: true },
            Some(_) => State::Halted,
        };
        let mut cancelled = Vec::new();
        if self.states[rollout] == State::Halted {
            for i in 0..self.states.len() {
                if self.states[i] == State::Waiting && self.stacks[i] == self.stacks[rollout] {
                    self.states[i] = State::Cancelled;
                    cancelled.push(Cancelled {
                        rollout: i,
                        because: rollout,
                    });
                }
            }
        }
        // Dependants of anything that failed or was cancelled, to a fixpoint.
        loop {
            let mut more = false;
            for i in 0..self.states.len() {
                if self.states[i] != State::Waiting {
                    continue;
                }
                let broken = self.after[i].iter().find(|&&(d, _)| {
                    matches!(
                        self.states[d],
                        State::Done { failed: true } | State::Halted | State::Cancelled
                    )
                });
                if let Some(&(d, _)) = broken {
                    self.states[i] = State::Cancelled;
                    let because = cancelled
                        .iter()
                        .find(|c: &&Cancelled| c.rollout == d)
                        .map_or(d, |c| c.because);
                    cancelled.push(Cancelled {
                        rollout: i,
                        because,
                    });
                    more = true;
                }
            }
            if !more {
                break;
            }
        }
        cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::context::ServicePolicy;
    use crate::placement::Slot;
    use crate::plan::{CurrentContainer, HostPlan};
    use DependsCondition::{ServiceHealthy, ServiceStarted};

    fn change(stack: &str, service: &str, replica: u32, action: Action) -> Change {
        let slot = Slot {
            stack: stack.into(),
            service: service.into(),
            replica,
        };
        Change {
            action,
            name: slot.container_name(),
            slot,
            current: None,
            desired: None,
            reason: crate::plan::Reason::New,
            drift: false,
            fields: vec![],
            failed_before: None,
            configs: Vec::new(),
        }
    }

    fn host(name: &str, changes: Vec<Change>) -> HostPlan {
        HostPlan {
            host: name.into(),
            pulls: vec![],
            networks: vec![],
            volumes: vec![],
            blocked: vec![],
            available: vec![],
            changes,
        }
    }

    fn plan(hosts: Vec<HostPlan>) -> Plan {
        Plan {
            format_version: 1,
            project: "p".into(),
            commit: None,
            hosts,
            unreachable: vec![],
            environment: Vec::new(),
            rollouts: Vec::new(),
            swarms: Vec::new(),
        }
    }

    /// A replace of a running container of `service`, replica `replica`.
    fn serving(stack: &str, service: &str, replica: u32) -> Change {
        let mut c = change(stack, service, replica, Action::Replace);
        c.current = Some(CurrentContainer {
            id: format!("id-{replica}"),
            image: "reg/app:1".into(),
            state: crate::observed::ContainerState::Running,
            spec_hash: None,
        });
        c
    }

    #[test]
    fn the_plan_shows_the_batches_apply_runs() {
        let plan = plan(vec![
            host(
                "a",
                vec![
                    serving("s", "web", 1),
                    serving("s", "web", 2),
                    change("s", "db", 1, Action::Create),
                ],
            ),
            host("b", vec![serving("s", "web", 3)]),
        ]);
        let mut web = ServicePolicy::default();
        web.update.parallelism = 2;
        web.update.order = UpdateOrder::StartFirst;
        web.depends_on = vec![("db".into(), ServiceStarted)];
        let mut db = ServicePolicy::default();
        db.update.parallelism = 1;
        let policies = BTreeMap::from([
            (("s".to_string(), "web".to_string()), web),
            (("s".to_string(), "db".to_string()), db),
        ]);
        // Service, order, what it waits for, batches (`container@host`).
        type Shown = (String, String, Vec<String>, Vec<Vec<String>>);
        let policy = |stack: &str, service: &str| {
            let p = policies
                .get(&(stack.to_string(), service.to_string()))
                .cloned()
                .unwrap_or_default();
            (p.depends_on, p.update)
        };
        let shown: Vec<Shown> = planned(&plan, policy)
            .into_iter()
            .map(|r| {
                (
                    r.service,
                    r.order,
                    r.after,
                    r.batches
                        .iter()
                        .map(|b| {
                            b.iter()
                                .map(|m| format!("{}@{}", m.container, m.host))
                                .collect()
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                // Nothing of db serves: one batch, whatever its parallelism.
                (
                    "db".to_string(),
                    "stop-first".to_string(),
                    vec![],
                    vec![vec!["s-db-1@a".to_string()]]
                ),
                // web serves: batches of 2, hosts interleaved.
                (
                    "web".to_string(),
                    "start-first".to_string(),
                    vec!["db: service_started".to_string()],
                    vec![
                        vec!["s-web-1@a".to_string(), "s-web-3@b".to_string()],
                        vec!["s-web-2@a".to_string()]
                    ]
                ),
            ]
        );
    }

    #[test]
    fn one_rollout_per_service_with_its_dependencies_and_hosts_interleaved() {
        let plan = plan(vec![
            host(
                "a",
                vec![
                    change("s", "web", 1, Action::Create),
                    change("s", "web", 2, Action::Create),
                    change("s", "db", 1, Action::Replace),
                    change("s", "old", 1, Action::Remove),
                ],
            ),
            host("b", vec![change("s", "web", 3, Action::Create)]),
            host("down", vec![change("s", "web", 4, Action::Create)]),
        ]);
        // web depends on db (in the plan) and on cache (nothing to do).
        let deps = |_: &str, service: &str| match service {
            "web" => vec![
                ("cache".to_string(), ServiceStarted),
                ("db".to_string(), ServiceHealthy),
            ],
            _ => vec![],
        };
        let order = rollouts(&plan, |h| h != "down", deps);
        type Shown = (String, Vec<String>, Vec<(usize, DependsCondition)>);
        let shown: Vec<Shown> = order
            .iter()
            .map(|r| {
                (
                    r.service.clone(),
                    r.members
                        .iter()
                        .map(|(h, c)| format!("{}@{h}", c.name))
                        .collect(),
                    r.after.clone(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("db".to_string(), vec!["s-db-1@a".to_string()], vec![]),
                (
                    "web".to_string(),
                    vec![
                        "s-web-1@a".to_string(),
                        "s-web-3@b".to_string(),
                        "s-web-2@a".to_string()
                    ],
                    vec![(0, ServiceHealthy)]
                ),
            ]
        );
    }

    #[test]
    fn batches_guard_only_replicas_that_serve() {
        let mut replace = change("s", "web", 1, Action::Replace);
        replace.current = Some(CurrentContainer {
            id: "x".into(),
            image: "i".into(),
            state: "running".into(),
            spec_hash: None,
        });
        let creates = [
            change("s", "web", 2, Action::Create),
            change("s", "web", 3, Action::Create),
        ];
        let new: Vec<Member> = creates.iter().map(|c| ("a", c)).collect();
        assert_eq!(batch_len(&new, 1), 2, "nothing serves: all at once");
        let mut mixed = new.clone();
        mixed.push(("a", &replace));
        assert_eq!(batch_len(&mixed, 1), 1);
        assert_eq!(batch_len(&mixed, 0), 3);
        if let Some(c) = replace.current.as_mut() {
            c.state = "exited".into();
        }
        let down: Vec<Member> = vec![("a", &replace), ("b", &creates[0])];
        assert_eq!(batch_len(&down, 1), 2, "all down: all at once");
        assert_eq!(batch_len(&[], 1), 1);
    }

    /// A schedule of `(stack, after)` rollouts.
    fn schedule(nodes: &[(&str, Vec<(usize, DependsCondition)>)], limit: usize) -> Schedule {
        let rollouts: Vec<ServiceRollout> = nodes
            .iter()
            .enumerate()
            .map(|(i, (stack, after))| ServiceRollout {
                stack: stack.to_string(),
                service: format!("svc{i}"),
                members: vec![],
                after: after.clone(),
            })
            .collect();
        Schedule::new(&rollouts, limit)
    }

    #[test]
    fn independent_services_start_together_dependants_after() {
        // s: 0 <- 1 (healthy) <- 2 (started); 3 alone; t: 4.
        let mut s = schedule(
            &[
                ("s", vec![]),
                ("s", vec![(0, ServiceHealthy)]),
                ("s", vec![(1, ServiceStarted)]),
                ("s", vec![]),
                ("t", vec![]),
            ],
            16,
        );
        assert_eq!(s.ready(), vec![0, 3, 4]);
        assert_eq!(s.ready(), Vec::<usize>::new(), "nothing else is ready");
        s.started(0);
        assert_eq!(s.ready(), Vec::<usize>::new(), "healthy waits for the end");
        assert!(s.finished(0, None).is_empty());
        assert_eq!(s.ready(), vec![1]);
        s.started(1);
        assert_eq!(s.ready(), vec![2], "started: the first batch is enough");
    }

    #[test]
    fn no_more_than_the_limit_run_at_once() {
        let mut s = schedule(&[("s", vec![]), ("t", vec![]), ("u", vec![])], 2);
        assert_eq!(s.ready(), vec![0, 1]);
        assert_eq!(s.ready(), Vec::<usize>::new());
        s.finished(1, None);
        assert_eq!(s.ready(), vec![2]);
        assert_eq!(s.state(0), State::Running { started: false });
        assert_eq!(s.state(1), State::Done { failed: false });
    }

    #[test]
    fn a_halting_failure_cancels_its_stack_never_another() {
        // s: 0, 1 <- 0, 2 (independent of 0, waits for a slot); t: 3.
        let mut s = schedule(
            &[
                ("s", vec![]),
                ("s", vec![(0, ServiceHealthy)]),
                ("s", vec![]),
                ("t", vec![]),
            ],
            1,
        );
        assert_eq!(s.ready(), vec![0]);
        let cancelled = s.finished(0, Some(FailureAction::Rollback));
        assert_eq!(
            cancelled,
            vec![
                Cancelled {
                    rollout: 1,
                    because: 0
                },
                Cancelled {
                    rollout: 2,
                    because: 0
                }
            ]
        );
        assert_eq!(s.ready(), vec![3], "stack t goes on");
        assert_eq!(s.state(0), State::Halted);
    }

    #[test]
    fn continue_cancels_only_the_dependants_transitively() {
        // 0 <- 1 <- 2; 3 independent, same stack.
        let mut s = schedule(
            &[
                ("s", vec![]),
                ("s", vec![(0, ServiceStarted)]),
                ("s", vec![(1, ServiceHealthy)]),
                ("s", vec![]),
            ],
            1,
        );
        assert_eq!(s.ready(), vec![0]);
        let cancelled = s.finished(0, Some(FailureAction::Continue));
        assert_eq!(
            cancelled
                .iter()
                .map(|c| (c.rollout, c.because))
                .collect::<Vec<_>>(),
            vec![(1, 0), (2, 0)]
        );
        assert_eq!(s.ready(), vec![3]);
        assert_eq!(s.state(0), State::Done { failed: true });
    }

    #[test]
    fn a_late_start_signal_does_not_revive_a_finished_rollout() {
        let mut s = schedule(&[("s", vec![])], 1);
        s.ready();
        s.finished(0, None);
        s.started(0);
        assert_eq!(s.state(0), State::Done { failed: false });
    }
}
