//! The same change on many hosts, shown once: a plan across 200 hosts reads
//! as one line per service that changes, with per-host detail kept only
//! where hosts differ (drift, a spec that failed there before, another
//! current image) — those are what a reviewer must see by name.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{Action, Change, HostPlan, Plan};

/// Fewest identical changes shown as one group. Below it the host-by-host
/// view is as short, and keeps each replica's name (`web/site.2`).
pub const GROUP_MIN: usize = 4;

/// Host names listed before "+N more".
const HOSTS_SHOWN: usize = 4;

/// Changes that are the same on at least [`GROUP_MIN`] replicas, with
/// where they are.
pub struct Group<'a> {
    /// The first member: what every member does.
    pub change: &'a Change,
    /// Host of each member, in plan order.
    pub hosts: Vec<&'a str>,
}

impl Group<'_> {
    /// `shop/web`: the service, without a replica number.
    pub fn label(&self) -> String {
        let c = self.change;
        if c.slot.stack.is_empty() {
            c.name.clone()
        } else {
            format!("{}/{}", c.slot.stack, c.slot.service)
        }
    }

    /// `60 replicas on edge-01..edge-60`.
    pub fn spread(&self) -> String {
        format!(
            "{} replicas on {}",
            self.hosts.len(),
            hosts_text(&self.hosts)
        )
    }
}

/// The grouped part of a plan: changes, pulls, networks and volumes the
/// same on many hosts. What is not in here is shown host by host.
#[derive(Default)]
pub struct Grouped<'a> {
    pub changes: Vec<Group<'a>>,
    /// Image -> hosts that pull it.
    pub pulls: Vec<(&'a str, Vec<&'a str>)>,
    /// Network name -> hosts that create it.
    pub networks: Vec<(&'a str, Vec<&'a str>)>,
    /// Volume name -> hosts that create it.
    pub volumes: Vec<(&'a str, Vec<&'a str>)>,
    grouped: BTreeSet<*const Change>,
}

impl<'a> Grouped<'a> {
    pub fn of(plan: &'a Plan) -> Grouped<'a> {
        // Candidates by service and action, so finding a change's group
        // compares it only with the few variants of its own service.
        type Candidate<'a> = (&'a Change, Vec<(&'a str, &'a Change)>);
        let mut by_service: BTreeMap<(&str, &str, Action), Vec<Candidate<'a>>> = BTreeMap::new();
        for h in &plan.hosts {
            for c in h.changes.iter().filter(|c| groupable(c)) {
                let key = (c.slot.stack.as_str(), c.slot.service.as_str(), c.action);
                let candidates = by_service.entry(key).or_default();
                match candidates.iter_mut().find(|(first, _)| same(first, c)) {
                    Some((_, members)) => members.push((h.host.as_str(), c)),
                    None => candidates.push((c, vec![(h.host.as_str(), c)])),
                }
            }
        }
        let mut out = Grouped::default();
        for (first, members) in by_service.into_values().flatten() {
            if members.len() < GROUP_MIN {
                continue;
            }
            out.grouped
                .extend(members.iter().map(|(_, c)| *c as *const Change));
            out.changes.push(Group {
                change: first,
                hosts: members.iter().map(|(h, _)| *h).collect(),
            });
        }
        out.changes.sort_by(|a, b| {
            (&a.change.slot, a.change.action).cmp(&(&b.change.slot, b.change.action))
        });
        out.pulls = common(plan, |h| h.pulls.iter().map(String::as_str).collect());
        out.networks = common(plan, |h| {
            h.networks.iter().map(|n| n.name.as_str()).collect()
        });
        out.volumes = common(plan, |h| {
            h.volumes.iter().map(|v| v.name.as_str()).collect()
        });
        out
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.pulls.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
    }

    /// Whether `c` is shown in a group rather than under its host.
    pub fn has(&self, c: &Change) -> bool {
        self.grouped.contains(&(c as *const Change))
    }

    pub fn has_pull(&self, image: &str) -> bool {
        self.pulls.iter().any(|(i, _)| *i == image)
    }

    pub fn has_network(&self, name: &str) -> bool {
        self.networks.iter().any(|(n, _)| *n == name)
    }

    pub fn has_volume(&self, name: &str) -> bool {
        self.volumes.iter().any(|(v, _)| *v == name)
    }
}

/// Drift and a spec that already failed on the host are that host's own
/// story: always shown under the host.
fn groupable(c: &Change) -> bool {
    !c.drift && c.failed_before.is_none()
}

/// The same change: same service, action, reason and field diff, from the
/// same current container image and spec to the same desired spec.
fn same(a: &Change, b: &Change) -> bool {
    a.action == b.action
        && a.slot.stack == b.slot.stack
        && a.slot.service == b.slot.service
        && (!a.slot.stack.is_empty() || a.name == b.name)
        && a.reason == b.reason
        && a.fields == b.fields
        && a.desired.as_ref().map(|d| &d.spec_hash) == b.desired.as_ref().map(|d| &d.spec_hash)
        && a.current.as_ref().map(|c| (&c.image, &c.spec_hash))
            == b.current.as_ref().map(|c| (&c.image, &c.spec_hash))
}

/// Items (pulls, networks, volumes) on at least [`GROUP_MIN`] hosts, with those hosts.
fn common<'a>(
    plan: &'a Plan,
    items: impl Fn(&'a HostPlan) -> Vec<&'a str>,
) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut on: BTreeMap<&'a str, Vec<&'a str>> = BTreeMap::new();
    for h in &plan.hosts {
        for item in items(h) {
            on.entry(item).or_default().push(h.host.as_str());
        }
    }
    on.into_iter()
        .filter(|(_, hosts)| hosts.len() >= GROUP_MIN)
        .collect()
}

/// Host names, short: runs of a shared prefix and consecutive numbers as
/// ranges (`edge-01..edge-60, db-1`), and past a few items `+N more`.
pub fn hosts_text(hosts: &[&str]) -> String {
    let mut names: Vec<&str> = hosts.to_vec();
    names.dedup();
    let key = |name: &'_ str| match split_number(name) {
        Some(s) => (s.prefix.to_string(), Some(s.n)),
        None => (name.to_string(), None),
    };
    names.sort_by(|a, b| (key(a), *a).cmp(&(key(b), *b)));
    names.dedup();
    // Runs of the same prefix, digit width and consecutive numbers.
    let mut runs: Vec<Vec<&str>> = Vec::new();
    for name in names {
        let extends = runs
            .last()
            .and_then(|run| run.last())
            .is_some_and(|last| follows(last, name));
        match runs.last_mut() {
            Some(run) if extends => run.push(name),
            _ => runs.push(vec![name]),
        }
    }
    let mut items: Vec<(String, usize)> = Vec::new();
    for run in runs {
        if run.len() >= 3 {
            items.push((format!("{}..{}", run[0], run[run.len() - 1]), run.len()));
        } else {
            items.extend(run.iter().map(|n| (n.to_string(), 1)));
        }
    }
    if items.len() <= HOSTS_SHOWN + 1 {
        return items
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
    }
    let more: usize = items[HOSTS_SHOWN..].iter().map(|(_, n)| n).sum();
    let shown: Vec<&str> = items[..HOSTS_SHOWN]
        .iter()
        .map(|(s, _)| s.as_str())
        .collect();
    format!("{} +{more} more", shown.join(", "))
}

/// A name's trailing number: `edge-07` -> (`edge-`, 7, 2 digits, padded).
struct Numbered<'a> {
    prefix: &'a str,
    n: u64,
    digits: usize,
    padded: bool,
}

fn split_number(name: &str) -> Option<Numbered<'_>> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, number) = name.split_at(name.len() - digits);
    Some(Numbered {
        prefix,
        n: number.parse().ok()?,
        digits,
        padded: digits > 1 && number.starts_with('0'),
    })
}

/// `b` comes right after `a`: same prefix, the next number, written alike
/// (`edge-09`, `edge-10`; `web-9`, `web-10`; not `edge-09`, `edge-010`).
fn follows(a: &str, b: &str) -> bool {
    match (split_number(a), split_number(b)) {
        (Some(a), Some(b)) => {
            a.prefix == b.prefix
                && a.n.checked_add(1) == Some(b.n)
                && (a.digits == b.digits || (!a.padded && !b.padded))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_read_as_ranges() {
        let edge: Vec<String> = (1..=60).map(|i| format!("edge-{i:02}")).collect();
        let edge: Vec<&str> = edge.iter().map(String::as_str).collect();
        assert_eq!(hosts_text(&edge), "edge-01..edge-60");
        let gaps: Vec<&str> = edge
            .iter()
            .copied()
            .filter(|h| *h != "edge-07" && *h != "edge-42")
            .collect();
        assert_eq!(
            hosts_text(&gaps),
            "edge-01..edge-06, edge-08..edge-41, edge-43..edge-60"
        );
        // Unpadded numbers sort by value, not as text.
        assert_eq!(
            hosts_text(&["web-10", "web-9", "web-11", "db-1", "web-8"]),
            "db-1, web-8..web-11"
        );
        assert_eq!(hosts_text(&["a-1", "a-2"]), "a-1, a-2");
        assert_eq!(hosts_text(&["e-08", "e-09", "e-10"]), "e-08..e-10");
        assert_eq!(
            hosts_text(&["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]),
            "alpha, bravo, charlie, delta +3 more"
        );
        assert_eq!(
            hosts_text(&["alpha", "bravo", "charlie", "delta", "echo"]),
            "alpha, bravo, charlie, delta, echo"
        );
    }
}
