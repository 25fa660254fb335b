//! Which services roll out, in what order, with which members: a pure
//! function of the plan, the hosts that were prepared and each service's
//! `depends_on` depth.
//!
//! Services go in stack, depth, name order (a service after everything it
//! depends on); within one, the members are interleaved across hosts (the
//! 1st replica of every host, then the 2nd...), so a batch never takes all
//! of one host's replicas first.

use std::collections::BTreeMap;

use crate::plan::{Action, Change, Plan};

/// A member of a rollout: the host, and the create or replace there.
pub type Member<'a> = (&'a str, &'a Change);

/// One service's rollout: its members, host by host, in batch order.
#[derive(Debug, Clone)]
pub struct ServiceRollout<'a> {
    pub stack: String,
    pub service: String,
    /// `(host, change)`: the creates and replaces of this service.
    pub members: Vec<Member<'a>>,
}

/// The rollouts of `plan`, in order. `prepared` says whether a host was
/// prepared (its others changes are left out); `depth` is a service's depth
/// in its stack's `depends_on` graph (lower first).
pub fn rollouts<'a>(
    plan: &'a Plan,
    prepared: impl Fn(&str) -> bool,
    depth: impl Fn(&str, &str) -> usize,
) -> Vec<ServiceRollout<'a>> {
    // Stack, depends_on depth, service: the order services roll out in.
    let mut services: BTreeMap<(&str, usize, &str), Vec<Member<'a>>> = BTreeMap::new();
    for hp in plan.hosts.iter().filter(|hp| prepared(&hp.host)) {
        for c in hp.changes.iter().filter(|c| c.action != Action::Remove) {
            let (stack, service) = (c.slot.stack.as_str(), c.slot.service.as_str());
            services
                .entry((stack, depth(stack, service), service))
                .or_default()
                .push((hp.host.as_str(), c));
        }
    }
    services
        .into_iter()
        .map(|((stack, _, service), members)| ServiceRollout {
            stack: stack.to_string(),
            service: service.to_string(),
            members: interleave(members),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Slot;
    use crate::plan::HostPlan;

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
        }
    }

    fn host(name: &str, changes: Vec<Change>) -> HostPlan {
        HostPlan {
            host: name.into(),
            pulls: vec![],
            networks: vec![],
            volumes: vec![],
            blocked: vec![],
            changes,
        }
    }

    #[test]
    fn orders_by_stack_then_depth_and_interleaves_hosts() {
        let plan = Plan {
            format_version: 1,
            project: "p".into(),
            commit: None,
            hosts: vec![
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
            ],
            unreachable: vec![],
            environment: Vec::new(),
        };
        let depth = |_: &str, service: &str| usize::from(service == "web");
        let order = rollouts(&plan, |h| h != "down", depth);
        let shown: Vec<(String, Vec<String>)> = order
            .iter()
            .map(|r| {
                (
                    r.service.clone(),
                    r.members
                        .iter()
                        .map(|(h, c)| format!("{}@{h}", c.name))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("db".to_string(), vec!["s-db-1@a".to_string()]),
                (
                    "web".to_string(),
                    vec![
                        "s-web-1@a".to_string(),
                        "s-web-3@b".to_string(),
                        "s-web-2@a".to_string()
                    ]
                ),
            ]
        );
    }
}
