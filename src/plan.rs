//! plan: the diff of desired against observed state, as a value.
//!
//! Input: the [`DesiredState`] and what each host reported. Output: a
//! [`Plan`] that every renderer reads and that `apply` executes exactly.
//! Invariants: pure and synchronous (no I/O); sorted by host, stack, service,
//! replica; "changed or not" is decided by the canonical spec hash alone, the
//! field diff only explains it. Actions are pull, create network/volume,
//! create, replace and remove — never a volume removal.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use crate::import;
use crate::labels;
use crate::observed::{ContainerState, HostObservation, LiveSettings, ObservedContainer};
use crate::placement::{CurrentPlacement, DesiredContainer, DesiredHost, DesiredState, Slot};
use crate::spec::{ContainerSpec, ImageRef, NetworkSpec, PullPolicy, VolumeSpec};

pub mod configs;
pub mod digests;
pub mod reason;

pub use reason::{Blocker, Leftover, MovedTag, Reason};

pub const PLAN_FORMAT_VERSION: u32 = 1;

/// JSON Schema (draft 2020-12) of `berth plan --format json`, checked in as
/// `schemas/plan.schema.json`.
pub fn plan_schema() -> serde_json::Value {
    schemars::schema_for!(Plan).to_value()
}

/// Suffix of the name an old container carries while its replacement starts.
pub const RETIRED_SUFFIX: &str = ".berth-old";
/// Suffix of a new container started beside the old one (`order: start-first`).
pub const NEW_SUFFIX: &str = ".berth-new";
/// Suffix of a new container that failed its gates, kept stopped for its logs.
pub const FAILED_SUFFIX: &str = ".berth-failed";

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    /// Version of this JSON shape (`schemas/plan.schema.json`); bumped on
    /// any incompatible change.
    pub format_version: u32,
    pub project: String,
    /// The commit the desired state was read at (None: not a git checkout).
    pub commit: Option<String>,
    pub hosts: Vec<HostPlan>,
    /// Hosts that could not be observed, with the cause; they get no actions.
    pub unreachable: Vec<UnreachableHost>,
    /// Compose variables whose value came from the environment of the
    /// machine that planned (not from the repo), so a reviewer sees what
    /// steered the plan. Values of secret-looking names are `<redacted>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvironmentValue>,
    /// How apply will roll each service with creates or replaces out: its
    /// batches in order, what it waits for. Computed by the same function
    /// apply runs (`apply::schedule::planned`), for reviewers and tools;
    /// apply never reads it back. Empty when nothing rolls out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<PlannedRollout>,
    /// What apply does on each Swarm target (`kind: swarm`): its services
    /// created, updated or removed, field by field. Empty without Swarm
    /// targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swarms: Vec<crate::swarm::SwarmPlan>,
}

/// How apply will roll one service out (see [`Plan::rollouts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlannedRollout {
    pub stack: String,
    pub service: String,
    /// `update_config.order`: `stop-first` or `start-first` (start-first
    /// only where the old container runs).
    pub order: String,
    /// `update_config.parallelism` (0: all at once).
    pub parallelism: u32,
    /// Services of the same stack it waits for (`depends_on`), as
    /// `<service>: <condition>`: `service_started` waits for their first
    /// batch, any other condition for their whole rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The batches, in order: a batch's members go at once, and the next
    /// batch starts when all of them passed their gates. One batch when no
    /// replica of the service serves (nothing to guard).
    pub batches: Vec<Vec<RolloutMember>>,
}

/// One container of a planned rollout batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RolloutMember {
    pub host: String,
    /// The container's name (the slot).
    pub container: String,
}

/// A variable taken from the runner's environment, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvironmentValue {
    pub name: String,
    /// The value, or `<redacted>` when the name looks secret.
    pub value: String,
    /// Stacks that use it.
    pub stacks: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnreachableHost {
    pub host: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostPlan {
    pub host: String,
    /// Images to pull before any container is created.
    pub pulls: Vec<String>,
    pub networks: Vec<NetworkSpec>,
    pub volumes: Vec<VolumeSpec>,
    /// Sorted by stack, service, replica; removals of leftovers last.
    pub changes: Vec<Change>,
    /// Wanted containers that cannot be created until someone acts on the
    /// host; apply refuses a plan that has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<Blocked>,
    /// Tags that moved in their registry under running containers whose
    /// `pull_policy` keeps what runs (`missing`, or a refresh policy not yet
    /// due): shown, not applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available: Vec<MovedTag>,
}

/// A wanted container that cannot be created, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Blocked {
    pub slot: Slot,
    /// Engine-side container name.
    pub name: String,
    pub blocker: Blocker,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Replace,
    Remove,
    // A running container takes a changed config in place
    // (`x-berth.reload`): no restart. (A plain comment: a doc comment
    // would change the schema's shape of the enum.)
    Reload,
}

/// One container-level change on one host.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(into = "ChangeJson", try_from = "ChangeJson")]
pub struct Change {
    pub action: Action,
    pub slot: Slot,
    /// Engine-side container name.
    pub name: String,
    /// The container there now (replace, remove).
    pub current: Option<CurrentContainer>,
    /// What should be there (create, replace).
    pub desired: Option<DesiredRef>,
    /// Why; in words (and in the JSON plan) through `render::reason`.
    pub reason: Reason,
    /// True when the change repairs the host rather than following the repo.
    pub drift: bool,
    /// Field-by-field difference for a replace of a changed spec.
    pub fields: Vec<FieldChange>,
    /// ID of the kept `.berth-failed` container when this very spec already
    /// failed its gates on this host: the plan says so instead of retrying blindly.
    pub failed_before: Option<String>,
    /// The configs this change delivers anew, with their diffs.
    pub configs: Vec<configs::ConfigDiff>,
}

impl Change {
    /// Name of the kept `.berth-failed` container when this spec failed here before.
    pub fn failed_name(&self) -> Option<String> {
        self.failed_before
            .as_ref()
            .map(|_| format!("{}{FAILED_SUFFIX}", self.name))
    }

    /// The reason in words, as every plan format shows it.
    pub fn reason_text(&self) -> String {
        crate::render::reason::with_failed_before(&self.reason, self.failed_name().as_deref())
    }
}

/// One container-level change on one host.
///
/// (The JSON shape of [`Change`]: the reason in words.)
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Change")]
struct ChangeJson {
    action: Action,
    slot: Slot,
    /// Engine-side container name.
    name: String,
    /// The container there now (replace, remove).
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<CurrentContainer>,
    /// What should be there (create, replace).
    #[serde(skip_serializing_if = "Option::is_none")]
    desired: Option<DesiredRef>,
    /// Why, in a few words: "new", "image, environment.LOG_LEVEL", "service no longer in the repo".
    reason: String,
    /// True when the change repairs the host rather than following the repo.
    drift: bool,
    /// Field-by-field difference for a replace of a changed spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldChange>,
    /// ID of the kept `.berth-failed` container when this very spec already
    /// failed its gates on this host: the plan says so instead of retrying blindly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_before: Option<String>,
    /// The configs this change delivers anew (changed in the repo, or
    /// edited on the host), with a diff of the host's copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    configs: Vec<configs::ConfigDiff>,
}

impl From<Change> for ChangeJson {
    fn from(c: Change) -> ChangeJson {
        ChangeJson {
            reason: c.reason_text(),
            action: c.action,
            slot: c.slot,
            name: c.name,
            current: c.current,
            desired: c.desired,
            drift: c.drift,
            fields: c.fields,
            failed_before: c.failed_before,
            configs: c.configs,
        }
    }
}

impl TryFrom<ChangeJson> for Change {
    type Error = String;

    fn try_from(c: ChangeJson) -> Result<Change, String> {
        let mut change = Change {
            action: c.action,
            slot: c.slot,
            name: c.name,
            current: c.current,
            desired: c.desired,
            reason: Reason::New,
            drift: c.drift,
            fields: c.fields,
            failed_before: c.failed_before,
            configs: c.configs,
        };
        let paths: Vec<String> = change.fields.iter().map(|f| f.field.clone()).collect();
        change.reason =
            crate::render::reason::parse(&c.reason, &paths, change.failed_name().as_deref())
                .ok_or_else(|| format!("unknown reason `{}` for `{}`", c.reason, change.name))?;
        Ok(change)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CurrentContainer {
    pub id: String,
    pub image: String,
    pub state: ContainerState,
    pub spec_hash: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DesiredRef {
    pub spec: ContainerSpec,
    pub spec_hash: String,
    /// The manifest digest `spec.image` was resolved to at plan time
    /// (`sha256:…`): apply creates the container from `name@digest`. None
    /// where tags are not resolved (`pull_policy: never`,
    /// `settings.resolve_from: none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldChange {
    /// Dotted path, e.g. `image`, `environment.LOG_LEVEL`, `ports[0]`.
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.hosts.iter().all(|h| {
            h.changes.is_empty()
                && h.blocked.is_empty()
                && h.networks.is_empty()
                && h.volumes.is_empty()
                && h.pulls.is_empty()
        }) && self.swarms.iter().all(|s| s.is_empty())
    }

    /// Swarm service changes of one kind, on every Swarm target.
    pub fn swarm_count(&self, action: crate::swarm::ServiceAction) -> usize {
        self.swarms.iter().map(|s| s.count(action)).sum()
    }

    pub fn count(&self, action: Action) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.changes)
            .filter(|c| c.action == action)
            .count()
    }

    /// The secrets the containers this plan creates must read, as
    /// `(stack, secret name, digest of the encrypted file)`.
    pub fn secrets_read(&self) -> BTreeSet<(String, String, String)> {
        self.hosts
            .iter()
            .flat_map(|h| &h.changes)
            .filter(|c| c.action != Action::Remove && c.action != Action::Reload)
            .filter_map(|c| Some((&c.slot.stack, c.desired.as_ref()?)))
            .flat_map(|(stack, d)| {
                d.spec
                    .secrets
                    .iter()
                    .map(move |(name, f)| (stack.clone(), name.clone(), f.digest.clone()))
            })
            .collect()
    }

    /// Every blocked container, with its host.
    pub fn blocked(&self) -> impl Iterator<Item = (&str, &Blocked)> {
        self.hosts
            .iter()
            .flat_map(|h| h.blocked.iter().map(move |b| (h.host.as_str(), b)))
    }

    /// Replicas the plan moves off a host that keeps their named volumes
    /// (and so their data), with that host: `apply` refuses them without
    /// `--allow-volume-move`.
    pub fn volume_moves(&self) -> impl Iterator<Item = (&str, &Change)> {
        self.hosts.iter().flat_map(|h| {
            h.changes
                .iter()
                .filter(|c| matches!(c.reason, Reason::MovedLeavingData { .. }))
                .map(move |c| (h.host.as_str(), c))
        })
    }

    pub fn drift_count(&self) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.changes)
            .filter(|c| c.drift)
            .count()
            + self
                .swarms
                .iter()
                .flat_map(|s| &s.changes)
                .filter(|c| c.drift)
                .count()
    }
}

/// Where each slot runs now, for sticky placement.
pub fn current_placement(observed: &BTreeMap<String, HostObservation>) -> CurrentPlacement {
    let mut current = CurrentPlacement::new();
    for (host, obs) in observed {
        for c in &obs.containers {
            if is_retired(c) {
                continue;
            }
            if let Some(slot) = slot_of(c) {
                current.entry(slot).or_default().insert(host.clone());
            }
        }
    }
    current
}

/// The diff. `observed` holds only reachable hosts; the others are listed in
/// `unreachable` and get no actions.
pub fn diff(
    desired: &DesiredState,
    observed: &BTreeMap<String, HostObservation>,
    unreachable: Vec<UnreachableHost>,
    commit: Option<String>,
) -> Plan {
    // Changes made while the repo's commit did not move are drift, not deploys.
    let deployed_commits: BTreeSet<&str> = observed
        .values()
        .flat_map(|o| &o.containers)
        .filter_map(|c| c.labels.get(labels::COMMIT).map(String::as_str))
        .collect();
    let commit_unchanged = match &commit {
        Some(c) => deployed_commits.len() == 1 && deployed_commits.contains(c.as_str()),
        None => false,
    };
    let evidence = Evidence::of(desired, observed, &unreachable, commit_unchanged);

    let mut hosts = Vec::new();
    for (host, want) in &desired.hosts {
        let Some(have) = observed.get(host) else {
            continue;
        };
        let mut changes = Vec::new();
        let mut blocked = Vec::new();
        let mut live: BTreeMap<&str, &ObservedContainer> = BTreeMap::new();
        let mut retired = Vec::new();
        for c in &have.containers {
            if is_retired(c) {
                retired.push(c);
            } else {
                live.insert(c.name.as_str(), c);
            }
        }

        for d in &want.containers {
            match live.remove(d.name.as_str()) {
                None if want.adopt.contains(&d.name) && have.adoptable.contains_key(&d.name) => {
                    if let Some(c) = have.adoptable.get(&d.name) {
                        changes.push(take_over(d, c));
                    }
                }
                None if have.foreign_names.contains(&d.name) => {
                    blocked.push(Blocked {
                        slot: d.slot.clone(),
                        name: d.name.clone(),
                        blocker: Blocker::NameTaken,
                    });
                }
                None => {
                    let lost = evidence.lost(host, d);
                    changes.push(Change {
                        action: Action::Create,
                        slot: d.slot.clone(),
                        name: d.name.clone(),
                        current: None,
                        desired: Some(desired_ref(d)),
                        reason: if lost { Reason::Missing } else { Reason::New },
                        drift: lost,
                        fields: Vec::new(),
                        failed_before: None,
                        configs: Vec::new(),
                    });
                }
                Some(c) => {
                    let change = compare(d, c, commit_unchanged);
                    if let Some(change) = review_configs(change, d, c, have.configs.as_ref()) {
                        changes.push(change);
                    }
                }
            }
        }

        for c in live.into_values() {
            let slot = slot_of(c).unwrap_or_else(|| Slot {
                stack: String::new(),
                service: c.name.clone(),
                replica: 0,
            });
            let reason = match removal_reason(desired, &slot) {
                Reason::Moved => match named_volumes(c) {
                    volumes if volumes.is_empty() => Reason::Moved,
                    volumes => Reason::MovedLeavingData { volumes },
                },
                other => other,
            };
            changes.push(Change {
                action: Action::Remove,
                name: c.name.clone(),
                slot,
                current: Some(current_of(c)),
                desired: None,
                reason,
                drift: false,
                fields: Vec::new(),
                failed_before: None,
                configs: Vec::new(),
            });
        }
        changes.sort_by(|a, b| (&a.slot, a.action).cmp(&(&b.slot, b.action)));
        for c in retired {
            let (base, leftover) = leftover_of(&c.name);
            if leftover == Leftover::Failed {
                let hash = c.labels.get(labels::SPEC_HASH);
                let retry = changes.iter_mut().find(|ch| {
                    ch.name == base && ch.desired.as_ref().map(|d| &d.spec_hash) == hash
                });
                if let Some(ch) = retry {
                    ch.failed_before = Some(c.id.clone());
                    continue;
                }
            }
            changes.push(Change {
                action: Action::Remove,
                name: c.name.clone(),
                slot: slot_of(c).unwrap_or(Slot {
                    stack: String::new(),
                    service: c.name.clone(),
                    replica: 0,
                }),
                current: Some(current_of(c)),
                desired: None,
                reason: Reason::Leftover(leftover),
                drift: leftover != Leftover::Failed,
                fields: Vec::new(),
                failed_before: None,
                configs: Vec::new(),
            });
        }

        let pulls = pulls(&changes, want, have);
        let networks = want
            .networks
            .values()
            .filter(|(_, n)| !n.external && !have.networks.contains(&n.name))
            .map(|(_, n)| n.clone())
            .collect();
        let volumes = want
            .volumes
            .values()
            .filter(|(_, v)| !v.external && !have.volumes.contains(&v.name))
            .map(|(_, v)| v.clone())
            .collect();

        hosts.push(HostPlan {
            host: host.clone(),
            pulls,
            networks,
            volumes,
            changes,
            blocked,
            available: Vec::new(),
        });
    }

    Plan {
        format_version: PLAN_FORMAT_VERSION,
        project: desired.project.clone(),
        commit,
        hosts,
        unreachable,
        environment: Vec::new(),
        rollouts: Vec::new(),
        swarms: Vec::new(),
    }
}

/// What the observation says about a wanted container that is absent from
/// its host: was it there before (removed outside berth: drift, repaired),
/// or is it the repo's change (a plain create)? Drift needs evidence that
/// berth had created this very replica on this host; a replica of the same
/// service, or the same replica on another host, is no such evidence (a
/// scale-up adds replicas of a deployed spec, a placement change moves a
/// replica). The evidence, for a replica that is not moving here:
/// - the commit did not move since every container was deployed
///   (`commit_unchanged`): the repo asks for nothing new, so what is
///   missing was lost; or
/// - a higher replica of the same service and spec runs: berth numbers a
///   service's replicas from 1 and scales down from the top, so a lower
///   one that is absent was there.
///
/// A replica wanted on one host only (not `global`) that runs on no host
/// seen while some host is unreachable may run there: no evidence then.
struct Evidence<'a> {
    /// Slot -> the hosts where it runs now (reachable hosts only).
    live: CurrentPlacement,
    /// Slot -> the hosts that want it.
    wanted: BTreeMap<&'a Slot, BTreeSet<&'a str>>,
    /// (stack, service, spec hash) -> the highest replica that runs it.
    highest: BTreeMap<(&'a str, &'a str, &'a str), u32>,
    commit_unchanged: bool,
    some_unreachable: bool,
}

impl<'a> Evidence<'a> {
    fn of(
        desired: &'a DesiredState,
        observed: &'a BTreeMap<String, HostObservation>,
        unreachable: &[UnreachableHost],
        commit_unchanged: bool,
    ) -> Evidence<'a> {
        let mut wanted: BTreeMap<&Slot, BTreeSet<&str>> = BTreeMap::new();
        for (host, want) in &desired.hosts {
            for d in &want.containers {
                wanted.entry(&d.slot).or_default().insert(host.as_str());
            }
        }
        let mut highest: BTreeMap<(&str, &str, &str), u32> = BTreeMap::new();
        for c in observed.values().flat_map(|o| &o.containers) {
            if is_retired(c) {
                continue;
            }
            let (Some(stack), Some(service), Some(hash), Some(replica)) = (
                c.labels.get(labels::STACK),
                c.labels.get(labels::SERVICE),
                c.labels.get(labels::SPEC_HASH),
                c.labels
                    .get(labels::REPLICA)
                    .and_then(|r| r.parse::<u32>().ok()),
            ) else {
                continue;
            };
            let top = highest
                .entry((stack.as_str(), service.as_str(), hash.as_str()))
                .or_default();
            *top = (*top).max(replica);
        }
        Evidence {
            live: current_placement(observed),
            wanted,
            highest,
            commit_unchanged,
            some_unreachable: !unreachable.is_empty(),
        }
    }

    /// Whether `d`, wanted on `host` and absent there, was removed outside
    /// berth (see [`Evidence`]).
    fn lost(&self, host: &str, d: &DesiredContainer) -> bool {
        let wanted = self.wanted.get(&d.slot);
        let wants = |h: &str| wanted.is_some_and(|w| w.contains(h));
        let live = self.live.get(&d.slot);
        // Running on a host that no longer wants it: placement moves it here.
        if live.is_some_and(|l| l.iter().any(|h| h != host && !wants(h))) {
            return false;
        }
        let only_here = wanted.is_none_or(|w| w.len() <= 1);
        if only_here && live.is_none_or(|l| l.is_empty()) && self.some_unreachable {
            return false;
        }
        let gap = self
            .highest
            .get(&(
                d.slot.stack.as_str(),
                d.slot.service.as_str(),
                d.spec_hash.as_str(),
            ))
            .is_some_and(|top| *top > d.slot.replica);
        self.commit_unchanged || gap
    }
}

/// The images to pull before `changes` run on a host: those the containers
/// created or replaced need, as their services' `pull_policy` says
/// (`always`: even when the host has the image; `daily`, `weekly`,
/// `every_<d>`: also when the host's copy was last tagged longer ago than
/// that, as Compose decides; `never`: not at all, and [`never_pulled`]
/// stops the plan when the host lacks it). A reload keeps its running
/// container, whose image is on the host already: it pulls nothing.
fn pulls(changes: &[Change], want: &DesiredHost, have: &HostObservation) -> Vec<String> {
    let policy: BTreeMap<&str, PullPolicy> = want
        .containers
        .iter()
        .map(|d| (d.name.as_str(), d.pull_policy))
        .collect();
    let mut pulls = BTreeSet::new();
    for c in changes.iter().filter(|c| c.action != Action::Reload) {
        let Some(d) = &c.desired else { continue };
        let image = d.spec.image.as_str();
        let wanted = match policy.get(c.name.as_str()).copied().unwrap_or_default() {
            PullPolicy::Never => false,
            PullPolicy::Always => true,
            PullPolicy::Missing => !on_host(image, have),
            PullPolicy::Every(period) => !on_host(image, have) || stale(image, period, have),
        };
        if wanted {
            pulls.insert(image.to_string());
        }
    }
    pulls.into_iter().collect()
}

/// Whether the host's copy of `image` was last tagged longer ago than
/// `period` (Compose: `now > LastTagTime + period`); without a known tag
/// time it is, as Compose treats a zero `LastTagTime`.
fn stale(image: &str, period: std::time::Duration, have: &HostObservation) -> bool {
    have.image_ages
        .get(&ImageRef::split(image).engine_form())
        .is_none_or(|age| *age > period)
}

/// The engine lists Docker Hub images without `docker.io/library/`:
/// compare in its form, or a no-op run would pull every time.
fn on_host(image: &str, have: &HostObservation) -> bool {
    have.images.contains(&ImageRef::split(image).engine_form())
}

/// The containers `plan` creates or replaces from an image their host
/// lacks while their service's `pull_policy` is `never`, as (host, slot,
/// image): applying would fail there, so the plan stops first. An image the
/// plan pulls on that host for another service is there in time (Compose
/// too pulls every image before it creates a container).
pub fn never_pulled(
    plan: &Plan,
    desired: &DesiredState,
    observed: &BTreeMap<String, HostObservation>,
) -> Vec<(String, Slot, String)> {
    let mut missing = Vec::new();
    for host in &plan.hosts {
        let (Some(want), Some(have)) = (desired.hosts.get(&host.host), observed.get(&host.host))
        else {
            continue;
        };
        for c in &host.changes {
            let Some(d) = &c.desired else { continue };
            let never = want
                .containers
                .iter()
                .any(|w| w.name == c.name && w.pull_policy == PullPolicy::Never);
            if never && !on_host(&d.spec.image, have) && !host.pulls.contains(&d.spec.image) {
                missing.push((host.host.clone(), c.slot.clone(), d.spec.image.clone()));
            }
        }
    }
    missing
}

/// A running container whose spec hash matches is unchanged; anything else
/// is a replace, with the reason spelled out.
fn compare(d: &DesiredContainer, c: &ObservedContainer, commit_unchanged: bool) -> Option<Change> {
    let hash = c.labels.get(labels::SPEC_HASH);
    let mut change = Change {
        action: Action::Replace,
        slot: d.slot.clone(),
        name: d.name.clone(),
        current: Some(current_of(c)),
        desired: Some(desired_ref(d)),
        reason: Reason::New,
        drift: false,
        fields: Vec::new(),
        failed_before: None,
        configs: Vec::new(),
    };
    if hash != Some(&d.spec_hash) {
        let old: Option<ContainerSpec> = c
            .labels
            .get(labels::SPEC)
            .and_then(|s| serde_json::from_str(s).ok());
        change.fields = match &old {
            Some(old) => field_diff(old, &d.spec),
            None => vec![FieldChange {
                field: "spec".into(),
                old: Some("(unknown: container has no berth.spec label)".into()),
                new: Some(d.spec_hash.chars().take(12).collect()),
            }],
        };
        change.reason = Reason::SpecChanged {
            fields: paths(&change.fields),
        };
        change.drift = commit_unchanged && old.is_none();
        return Some(change);
    }
    if !c.state.is_up() {
        change.reason = Reason::NotRunning(c.state.clone());
        change.drift = true;
        return Some(change);
    }
    if let Some(live) = &c.live {
        let edited = hand_edits(live, &d.spec);
        if !edited.is_empty() {
            change.reason = Reason::HandEdited {
                fields: paths(&edited),
            };
            change.fields = edited;
            change.drift = true;
            return Some(change);
        }
    }
    None
}

/// The replace that takes over `c`, a container berth does not manage that
/// the repo adopts (`x-berth.adopt`): its fields are what the repo's spec
/// changes on it, compared as [`import::comparable`] specs (empty when the
/// repo reproduces it; berth's labels are added either way).
fn take_over(d: &DesiredContainer, c: &import::InspectedContainer) -> Change {
    let mut fields = field_diff(
        &import::comparable(&import::observed_spec(c)),
        &import::comparable(&d.spec),
    );
    // Plans are posted where many read them: a credential's value (or a
    // digest one could guess it from) is never shown, only that it differs.
    for f in &mut fields {
        if f.field
            .strip_prefix("environment.")
            .is_some_and(crate::spec::looks_secret)
        {
            for value in [&mut f.old, &mut f.new].into_iter().flatten() {
                *value = "(sensitive)".into();
            }
        }
    }
    Change {
        action: Action::Replace,
        slot: d.slot.clone(),
        name: d.name.clone(),
        current: Some(CurrentContainer {
            id: c.id.clone(),
            image: c.image.clone(),
            state: ContainerState::parse(&c.state),
            spec_hash: None,
        }),
        desired: Some(desired_ref(d)),
        reason: Reason::TakeOver {
            container: c.name.clone(),
            fields: paths(&fields),
        },
        drift: false,
        fields,
        failed_before: None,
        configs: Vec::new(),
    }
}

/// Settings edited in place on the host, as field changes from what the
/// host has now (old) to what the repo says (new).
fn hand_edits(live: &LiveSettings, spec: &ContainerSpec) -> Vec<FieldChange> {
    let show = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "unset".into());
    let mut fields = Vec::new();
    if live.restart != spec.restart {
        fields.push(FieldChange {
            field: "restart".into(),
            old: Some(format!("{:?}", live.restart.to_string())),
            new: Some(format!("{:?}", spec.restart.to_string())),
        });
    }
    for (field, now, want) in [
        ("resources.memory", live.memory, spec.resources.memory),
        (
            "resources.memory_reservation",
            live.memory_reservation,
            spec.resources.memory_reservation,
        ),
        (
            "resources.nano_cpus",
            live.nano_cpus,
            spec.resources.nano_cpus,
        ),
        (
            "resources.pids_limit",
            live.pids_limit,
            spec.resources.pids_limit,
        ),
    ] {
        if now != want {
            fields.push(FieldChange {
                field: field.into(),
                old: Some(show(now)),
                new: Some(show(want)),
            });
        }
    }
    fields
}

/// The dotted paths of `fields`, in order.
fn paths(fields: &[FieldChange]) -> Vec<String> {
    fields.iter().map(|f| f.field.clone()).collect()
}

fn removal_reason(desired: &DesiredState, slot: &Slot) -> Reason {
    let in_repo = |f: &dyn Fn(&DesiredContainer) -> bool| {
        desired.hosts.values().flat_map(|h| &h.containers).any(f)
    };
    if slot.stack.is_empty() {
        Reason::Unlabelled
    } else if !in_repo(&|d| d.slot.stack == slot.stack) {
        Reason::StackGone
    } else if !in_repo(&|d| d.slot.stack == slot.stack && d.slot.service == slot.service) {
        Reason::ServiceGone
    } else if in_repo(&|d| d.slot == *slot) {
        Reason::Moved
    } else {
        Reason::ScaledDown
    }
}

/// The named volumes (engine-side names) a container mounts, read from
/// the spec it was created from (its `berth.spec` label): where its data is.
fn named_volumes(c: &ObservedContainer) -> Vec<String> {
    let Some(spec) = c
        .labels
        .get(labels::SPEC)
        .and_then(|json| serde_json::from_str::<ContainerSpec>(json).ok())
    else {
        return Vec::new();
    };
    let volumes: BTreeSet<String> = spec
        .mounts
        .into_iter()
        .filter(|m| m.kind == crate::spec::MountKind::Volume && !m.source.is_empty())
        .map(|m| m.source)
        .collect();
    volumes.into_iter().collect()
}

/// A plan saved for later (`berth plan --save`), bound to what it was
/// computed from: applying it is refused when the commit or any host's
/// managed containers moved since, so what was reviewed is what runs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SavedPlan {
    pub plan: Plan,
    /// Per host, the managed containers the plan was computed against.
    pub observed: BTreeMap<String, Vec<ObservedSummary>>,
    /// Every image the plan resolved, as written -> the digest its tag
    /// named then: applying is refused when one names another now.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, String>,
}

/// The part of an observed container that a plan depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObservedSummary {
    pub name: String,
    pub id: String,
    pub state: ContainerState,
    pub spec_hash: Option<String>,
}

/// What each host runs, reduced to what a plan depends on, sorted by name.
pub fn summarize(
    observed: &BTreeMap<String, HostObservation>,
) -> BTreeMap<String, Vec<ObservedSummary>> {
    observed
        .iter()
        .map(|(host, obs)| {
            let mut cs: Vec<ObservedSummary> = obs
                .containers
                .iter()
                .map(|c| ObservedSummary {
                    name: c.name.clone(),
                    id: c.id.clone(),
                    state: c.state.clone(),
                    spec_hash: c.labels.get(labels::SPEC_HASH).cloned(),
                })
                .collect();
            cs.sort_by(|a, b| a.name.cmp(&b.name));
            (host.clone(), cs)
        })
        .collect()
}

/// Everything that moved between the saved observation and now, one line
/// per host and container, e.g. "host `edge-2`: container `web-api-1` changed
/// (state running -> exited)". Empty: the saved plan still holds.
pub fn moved_since(
    saved: &BTreeMap<String, Vec<ObservedSummary>>,
    now: &BTreeMap<String, Vec<ObservedSummary>>,
) -> Vec<String> {
    let mut moved = Vec::new();
    for (host, before) in saved {
        let Some(after) = now.get(host) else {
            moved.push(format!("host `{host}` could not be observed now"));
            continue;
        };
        let before_by: BTreeMap<&str, &ObservedSummary> =
            before.iter().map(|c| (c.name.as_str(), c)).collect();
        let after_by: BTreeMap<&str, &ObservedSummary> =
            after.iter().map(|c| (c.name.as_str(), c)).collect();
        for (name, b) in &before_by {
            match after_by.get(name) {
                None => moved.push(format!("host `{host}`: container `{name}` is gone")),
                Some(a) if a != b => {
                    let mut what = Vec::new();
                    if a.id != b.id {
                        what.push("recreated".to_string());
                    }
                    if a.state != b.state {
                        what.push(format!("state {} -> {}", b.state, a.state));
                    }
                    if a.spec_hash != b.spec_hash {
                        what.push("spec changed".to_string());
                    }
                    moved.push(format!(
                        "host `{host}`: container `{name}` changed ({})",
                        what.join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
        for name in after_by.keys().filter(|n| !before_by.contains_key(*n)) {
            moved.push(format!("host `{host}`: container `{name}` appeared"));
        }
    }
    for host in now.keys().filter(|h| !saved.contains_key(*h)) {
        moved.push(format!(
            "host `{host}` was not reachable when the plan was saved"
        ));
    }
    moved
}

/// The slot name a leftover belongs to, and which kind it is.
fn leftover_of(name: &str) -> (&str, Leftover) {
    if let Some(base) = name.strip_suffix(RETIRED_SUFFIX) {
        (base, Leftover::Retired)
    } else if let Some(base) = name.strip_suffix(NEW_SUFFIX) {
        (base, Leftover::Started)
    } else if let Some(base) = name.strip_suffix(FAILED_SUFFIX) {
        (base, Leftover::Failed)
    } else {
        (name, Leftover::Other)
    }
}

/// A leftover of a replace (`.berth-old`, `.berth-new`) or the kept record of
/// a failed release (`.berth-failed`): never a slot's live container.
pub fn is_retired(c: &ObservedContainer) -> bool {
    c.name.ends_with(RETIRED_SUFFIX)
        || c.name.ends_with(NEW_SUFFIX)
        || c.name.ends_with(FAILED_SUFFIX)
}

fn slot_of(c: &ObservedContainer) -> Option<Slot> {
    Some(Slot {
        stack: c.labels.get(labels::STACK)?.clone(),
        service: c.labels.get(labels::SERVICE)?.clone(),
        replica: c.labels.get(labels::REPLICA)?.parse().ok()?,
    })
}

fn current_of(c: &ObservedContainer) -> CurrentContainer {
    CurrentContainer {
        id: c.id.clone(),
        image: c.image.clone(),
        state: c.state.clone(),
        spec_hash: c.labels.get(labels::SPEC_HASH).cloned(),
    }
}

fn desired_ref(d: &DesiredContainer) -> DesiredRef {
    DesiredRef {
        spec: d.spec.clone(),
        spec_hash: d.spec_hash.clone(),
        digest: None,
    }
}

/// Field-level diff of two specs: both are flattened to sorted `path = value`
/// lines and compared with `similar`, so the result reads like a config diff.
pub fn field_diff(old: &ContainerSpec, new: &ContainerSpec) -> Vec<FieldChange> {
    let old_lines = flatten_spec(old);
    let new_lines = flatten_spec(new);
    let old_text = render_lines(&old_lines);
    let new_text = render_lines(&new_lines);
    let mut removed: BTreeMap<String, String> = BTreeMap::new();
    let mut added: BTreeMap<String, String> = BTreeMap::new();
    for change in TextDiff::from_lines(&old_text, &new_text).iter_all_changes() {
        let line = change.value().trim_end_matches('\n');
        let Some((path, value)) = line.split_once(" = ") else {
            continue;
        };
        match change.tag() {
            ChangeTag::Delete => {
                removed.insert(path.to_string(), value.to_string());
            }
            ChangeTag::Insert => {
                added.insert(path.to_string(), value.to_string());
            }
            ChangeTag::Equal => {}
        }
    }
    let paths: BTreeSet<String> = removed.keys().chain(added.keys()).cloned().collect();
    let order: Vec<String> = old_lines
        .iter()
        .chain(&new_lines)
        .map(|(p, _)| p.clone())
        .collect();
    let mut fields: Vec<FieldChange> = paths
        .into_iter()
        .map(|p| FieldChange {
            old: removed.get(&p).cloned(),
            new: added.get(&p).cloned(),
            field: p,
        })
        .collect();
    // Spec order (image first), not alphabetical.
    fields.sort_by_key(|f| {
        order
            .iter()
            .position(|p| p == &f.field)
            .unwrap_or(usize::MAX)
    });
    fields
}

fn render_lines(lines: &[(String, String)]) -> String {
    lines.iter().map(|(p, v)| format!("{p} = {v}\n")).collect()
}

/// `path = value` pairs in the spec's own field order.
pub fn flatten_spec(spec: &ContainerSpec) -> Vec<(String, String)> {
    let value = serde_json::to_value(spec).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::new();
    flatten("", &value, &mut out);
    out
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() && !prefix.ends_with(']') => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Array(items) if items.iter().all(|v| !v.is_object()) => {
            out.push((prefix.to_string(), value.to_string()));
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

// Configs (see `plan::configs`): a spec that differs only in configs its
// service reloads is a reload; copies edited on a host are drift.
use crate::observed::ConfigObservation;
use configs::{
    config_of, diffs, hex as config_hex, is_config_mount, mount_base, on_host as config_on_host,
};

/// Reviews what `compare` decided for a running container in the light of
/// its configs: a spec that differs only in configs its service reloads is
/// a reload (or nothing, when the live copies already have the repo's
/// bytes); an unchanged spec whose copies were edited on the host is drift.
fn review_configs(
    change: Option<Change>,
    d: &DesiredContainer,
    c: &ObservedContainer,
    obs: Option<&ConfigObservation>,
) -> Option<Change> {
    if d.spec.configs.is_empty() {
        return change;
    }
    match change {
        Some(mut change) if matches!(change.reason, Reason::SpecChanged { .. }) => {
            let base = mount_base(d);
            change.fields.retain(|f| {
                !is_config_mount(
                    &f.field,
                    f.old.as_deref(),
                    f.new.as_deref(),
                    base.as_deref(),
                )
            });
            let changed: Vec<String> = change
                .fields
                .iter()
                .filter_map(|f| config_of(&f.field))
                .map(str::to_string)
                .collect();
            let only_reloadable = !change.fields.is_empty()
                && change.fields.iter().all(|f| {
                    config_of(&f.field)
                        .and_then(|n| d.spec.configs.get(n))
                        .is_some_and(|f| f.reload)
                });
            if only_reloadable {
                let Some(obs) = obs else {
                    return Some(config_reload(change, d, changed, false, None));
                };
                let stale: Vec<String> = changed
                    .iter()
                    .filter(|n| {
                        d.spec.configs.get(*n).is_none_or(|f| {
                            config_on_host(d, n, f, obs)
                                .is_none_or(|(h, ran)| h != config_hex(&f.digest) || !ran)
                        })
                    })
                    .cloned()
                    .collect();
                if stale.is_empty() {
                    // Reloaded to the repo's bytes in an earlier run: the
                    // container's labels keep the digest it was made with.
                    return config_drift(d, c, obs);
                }
                return Some(config_reload(change, d, stale, false, Some(obs)));
            }
            change.reason = Reason::SpecChanged {
                fields: change.fields.iter().map(|f| f.field.clone()).collect(),
            };
            change.configs = diffs(d, &changed, obs);
            Some(change)
        }
        None => config_drift(d, c, obs?),
        other => other,
    }
}

/// A reload of `names` for a change whose spec differs only in them.
fn config_reload(
    mut change: Change,
    d: &DesiredContainer,
    names: Vec<String>,
    drifted: bool,
    obs: Option<&ConfigObservation>,
) -> Change {
    change.action = Action::Reload;
    change
        .fields
        .retain(|f| config_of(&f.field).is_some_and(|n| names.iter().any(|x| x == n)));
    change.configs = diffs(d, &names, obs);
    change.reason = if drifted {
        Reason::ConfigDrift { configs: names }
    } else {
        Reason::ConfigChanged { configs: names }
    };
    change.drift = drifted;
    change
}

/// The configs of an up-to-date container whose host copies differ from
/// the repo's bytes (edited by hand, or removed): a replace (or a reload)
/// that puts them back. A live copy with the repo's bytes that its
/// container never reloaded (a run stopped between the swap and the
/// reload) is reloaded, and that is no drift.
fn config_drift(
    d: &DesiredContainer,
    c: &ObservedContainer,
    obs: &ConfigObservation,
) -> Option<Change> {
    let mut edited = false;
    let mut names: Vec<String> = Vec::new();
    for (name, f) in &d.spec.configs {
        match config_on_host(d, name, f, obs) {
            Some((h, true)) if h == config_hex(&f.digest) => {}
            Some((h, false)) if h == config_hex(&f.digest) => names.push(name.clone()),
            _ => {
                edited = true;
                names.push(name.clone());
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    let all_reload = names
        .iter()
        .all(|n| d.spec.configs.get(n).is_some_and(|f| f.reload));
    let fields = names
        .iter()
        .map(|n| FieldChange {
            field: format!("configs.{n}.digest"),
            old: config_on_host(d, n, &d.spec.configs[n], obs).map(|(h, _)| format!("sha256:{h}")),
            new: Some(d.spec.configs[n].digest.clone()),
        })
        .collect();
    Some(Change {
        action: if all_reload {
            Action::Reload
        } else {
            Action::Replace
        },
        slot: d.slot.clone(),
        name: d.name.clone(),
        current: Some(current_of(c)),
        desired: Some(desired_ref(d)),
        configs: diffs(d, &names, Some(obs)),
        reason: if edited {
            Reason::ConfigDrift { configs: names }
        } else {
            Reason::ConfigChanged { configs: names }
        },
        drift: edited,
        fields,
        failed_before: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            restart: crate::spec::RestartPolicy::UnlessStopped,
            ..Default::default()
        }
    }

    #[test]
    fn field_diff_names_image_and_env_key() {
        let mut old = spec("reg/api:1.4.2");
        old.environment.insert("LOG_LEVEL".into(), "info".into());
        old.environment.insert("KEEP".into(), "x".into());
        let mut new = spec("reg/api:1.5.0");
        new.environment.insert("LOG_LEVEL".into(), "debug".into());
        new.environment.insert("KEEP".into(), "x".into());
        let fields = field_diff(&old, &new);
        assert_eq!(
            fields,
            vec![
                FieldChange {
                    field: "image".into(),
                    old: Some("\"reg/api:1.4.2\"".into()),
                    new: Some("\"reg/api:1.5.0\"".into()),
                },
                FieldChange {
                    field: "environment.LOG_LEVEL".into(),
                    old: Some("\"info\"".into()),
                    new: Some("\"debug\"".into()),
                },
            ]
        );
    }

    /// The plan on host `h` that wants one container `<stack>-<service>-1`
    /// of `image`, given what `h` has.
    fn plan_one(stack: &str, service: &str, image: &str, have: HostObservation) -> Plan {
        pulling(stack, service, image, have, PullPolicy::Missing).0
    }

    /// Like [`plan_one`], for a service with `pull_policy`; also the
    /// containers [`never_pulled`] stops the plan for.
    fn pulling(
        stack: &str,
        service: &str,
        image: &str,
        have: HostObservation,
        pull_policy: PullPolicy,
    ) -> (Plan, Vec<(String, Slot, String)>) {
        use crate::placement::spec_hash;
        let want = spec(image);
        let slot = Slot {
            stack: stack.into(),
            service: service.into(),
            replica: 1,
        };
        let desired = DesiredState {
            project: "p".into(),
            hosts: BTreeMap::from([(
                "h".to_string(),
                DesiredHost {
                    containers: vec![DesiredContainer {
                        name: slot.container_name(),
                        spec_hash: spec_hash(&want),
                        spec: want,
                        slot,
                        pull_policy,
                    }],
                    ..Default::default()
                },
            )]),
        };
        let observed = BTreeMap::from([("h".to_string(), have)]);
        let plan = diff(&desired, &observed, Vec::new(), None);
        let missing = never_pulled(&plan, &desired, &observed);
        (plan, missing)
    }

    #[test]
    fn pull_policies_decide_the_pulls() {
        let has = |image: &str| HostObservation {
            images: [image.to_string()].into(),
            ..Default::default()
        };
        let pulls = |have, policy| {
            let (plan, missing) = pulling("web", "site", "reg/web:1", have, policy);
            (plan.hosts[0].pulls.clone(), missing.len())
        };
        let one = vec!["reg/web:1".to_string()];
        assert_eq!(pulls(has("reg/web:1"), PullPolicy::Missing), (vec![], 0));
        assert_eq!(
            pulls(has("reg/web:0"), PullPolicy::Missing),
            (one.clone(), 0)
        );
        // `daily` and the like: see `refresh_policies_pull_only_stale_images`.
        // `always`: pulled for the container it creates, present or not.
        assert_eq!(pulls(has("reg/web:1"), PullPolicy::Always), (one, 0));
        // `never`: not pulled; present is fine, absent stops the plan.
        assert_eq!(pulls(has("reg/web:1"), PullPolicy::Never), (vec![], 0));
        let (plan, missing) = pulling(
            "web",
            "site",
            "reg/web:1",
            has("reg/web:0"),
            PullPolicy::Never,
        );
        assert!(plan.hosts[0].pulls.is_empty());
        assert_eq!(
            missing,
            vec![(
                "h".to_string(),
                Slot {
                    stack: "web".into(),
                    service: "site".into(),
                    replica: 1
                },
                "reg/web:1".to_string()
            )]
        );
    }

    /// `daily`, `weekly`, `every_<d>` pull as Compose's `mustPull`: when
    /// the host lacks the image, or last tagged it longer ago than the
    /// period (or at an unknown time); a fresh copy is not pulled again.
    #[test]
    fn refresh_policies_pull_only_stale_images() {
        use std::time::Duration;
        const HOUR: Duration = Duration::from_secs(3600);
        let tagged = |image: &str, ago: Option<Duration>| HostObservation {
            images: [image.to_string()].into(),
            image_ages: ago
                .map(|ago| (image.to_string(), ago))
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let pulls = |image: &str, have, policy| {
            let (plan, missing) = pulling("web", "site", image, have, policy);
            assert!(missing.is_empty());
            plan.hosts[0].pulls.clone()
        };
        let daily = PullPolicy::Every(24 * HOUR);
        let every_12h = PullPolicy::Every(12 * HOUR);
        let one = vec!["reg/web:1".to_string()];

        // Absent: pulled.
        assert_eq!(
            pulls("reg/web:1", tagged("reg/web:0", Some(HOUR)), daily),
            one
        );
        // Tagged 2 days ago with `daily`: stale, pulled.
        assert_eq!(
            pulls("reg/web:1", tagged("reg/web:1", Some(48 * HOUR)), daily),
            one
        );
        // Tagged 1 hour ago with `daily`: fresh, not pulled.
        assert!(pulls("reg/web:1", tagged("reg/web:1", Some(HOUR)), daily).is_empty());
        // `every_12h`: 13 hours is stale, 11 hours is not.
        assert_eq!(
            pulls("reg/web:1", tagged("reg/web:1", Some(13 * HOUR)), every_12h),
            one
        );
        assert!(pulls("reg/web:1", tagged("reg/web:1", Some(11 * HOUR)), every_12h).is_empty());
        // On the host with no known tag time: stale, as Compose's zero time.
        assert_eq!(pulls("reg/web:1", tagged("reg/web:1", None), daily), one);
        // Docker Hub images are aged in the engine's form of their name.
        let hub = "docker.io/library/nginx:1";
        assert!(pulls(hub, tagged("nginx:1", Some(HOUR)), daily).is_empty());
        assert_eq!(
            pulls(hub, tagged("nginx:1", Some(25 * HOUR)), daily),
            vec![hub.to_string()]
        );
    }

    #[test]
    fn an_unchanged_always_service_pulls_nothing() {
        use crate::placement::spec_hash;
        let want = spec("reg/web:1");
        let running = ObservedContainer {
            id: "c1".into(),
            name: "web-site-1".into(),
            labels: BTreeMap::from([
                (labels::STACK.to_string(), "web".to_string()),
                (labels::SERVICE.to_string(), "site".to_string()),
                (labels::REPLICA.to_string(), "1".to_string()),
                (labels::SPEC_HASH.to_string(), spec_hash(&want)),
            ]),
            image: "reg/web:1".into(),
            state: "running".into(),
            health: None,
            created: 0,
            live: None,
        };
        let have = HostObservation {
            containers: vec![running],
            images: ["reg/web:1".to_string()].into(),
            ..Default::default()
        };
        let (plan, _) = pulling("web", "site", "reg/web:1", have, PullPolicy::Always);
        assert!(plan.is_empty(), "{:?}", plan.hosts[0]);
    }

    #[test]
    fn a_wanted_name_taken_by_a_foreign_container_is_called_out() {
        let have = HostObservation {
            foreign_names: ["web-site-1".to_string()].into(),
            ..Default::default()
        };
        let plan = plan_one("web", "site", "reg/web:1", have);
        // Blocked, not a create that would fail with a name conflict.
        assert!(
            plan.hosts[0].changes.is_empty(),
            "{:?}",
            plan.hosts[0].changes
        );
        assert_eq!(
            plan.hosts[0].blocked,
            [Blocked {
                slot: Slot {
                    stack: "web".into(),
                    service: "site".into(),
                    replica: 1
                },
                name: "web-site-1".into(),
                blocker: Blocker::NameTaken,
            }]
        );
        assert!(!plan.is_empty());
        assert_eq!(plan.count(Action::Create), 0);
    }

    fn mount(kind: &str, source: &str, target: &str) -> crate::spec::MountSpec {
        serde_json::from_value(serde_json::json!({
            "kind": kind, "source": source, "target": target, "read_only": false
        }))
        .unwrap()
    }

    /// A replica moved off host `a` (to `b`) by placement, whose running
    /// container on `a` has `spec`.
    fn moved_with(spec: &ContainerSpec) -> Plan {
        let slot = Slot {
            stack: "jobs".into(),
            service: "ledger".into(),
            replica: 1,
        };
        let running = ObservedContainer {
            id: "c1".into(),
            name: "jobs-ledger-1".into(),
            labels: BTreeMap::from([
                (labels::STACK.to_string(), "jobs".to_string()),
                (labels::SERVICE.to_string(), "ledger".to_string()),
                (labels::REPLICA.to_string(), "1".to_string()),
                (
                    labels::SPEC_HASH.to_string(),
                    crate::placement::spec_hash(spec),
                ),
                (
                    labels::SPEC.to_string(),
                    crate::placement::canonical_json(spec),
                ),
            ]),
            image: spec.image.clone(),
            state: ContainerState::Running,
            health: None,
            created: 0,
            live: None,
        };
        let desired = DesiredState {
            project: "p".into(),
            hosts: BTreeMap::from([
                ("a".to_string(), DesiredHost::default()),
                (
                    "b".to_string(),
                    DesiredHost {
                        containers: vec![DesiredContainer {
                            name: slot.container_name(),
                            slot,
                            spec_hash: crate::placement::spec_hash(spec),
                            spec: spec.clone(),
                            pull_policy: PullPolicy::Missing,
                        }],
                        ..Default::default()
                    },
                ),
            ]),
        };
        let observed = BTreeMap::from([
            (
                "a".to_string(),
                HostObservation {
                    containers: vec![running],
                    images: [spec.image.clone()].into(),
                    ..Default::default()
                },
            ),
            (
                "b".to_string(),
                HostObservation {
                    images: [spec.image.clone()].into(),
                    ..Default::default()
                },
            ),
        ]);
        diff(&desired, &observed, Vec::new(), None)
    }

    /// A replica that moves to another host while it mounts named volumes:
    /// the removal on the old host names the volumes whose data stays
    /// there, apply finds it, and a saved plan reads it back.
    #[test]
    fn a_replica_moving_away_from_its_volumes_says_the_data_stays() {
        let mut with_volumes = spec("reg/ledger:1");
        for (kind, source, target) in [
            ("volume", "jobs_ledger-data", "/data"),
            ("bind", "/etc/ledger", "/etc/ledger"),
            ("volume", "jobs_cache", "/cache"),
        ] {
            with_volumes.mounts.push(mount(kind, source, target));
        }
        let plan = moved_with(&with_volumes);
        let removal = &plan.hosts[0].changes[0];
        assert_eq!(
            (plan.hosts[0].host.as_str(), removal.action),
            ("a", Action::Remove)
        );
        assert_eq!(
            removal.reason,
            Reason::MovedLeavingData {
                volumes: vec!["jobs_cache".into(), "jobs_ledger-data".into()]
            }
        );
        assert_eq!(
            removal.reason_text(),
            "replica moved to another host; its named volume(s) `jobs_cache`, `jobs_ledger-data` and their data stay on this host (apply needs --allow-volume-move)"
        );
        assert_eq!(plan.hosts[1].changes[0].action, Action::Create);
        let moves: Vec<(&str, String)> = plan
            .volume_moves()
            .map(|(h, c)| (h, c.slot.to_string()))
            .collect();
        assert_eq!(moves, [("a", "jobs/ledger.1".to_string())]);

        let json = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back.hosts[0].changes[0].reason, removal.reason);
    }

    /// Without named volumes (binds are the operator's own files), a move
    /// is a plain move.
    #[test]
    fn a_replica_moving_without_named_volumes_is_a_plain_move() {
        let mut with_bind = spec("reg/ledger:1");
        with_bind.mounts.push(mount("bind", "/srv/ledger", "/data"));
        let plan = moved_with(&with_bind);
        assert_eq!(plan.hosts[0].changes[0].reason, Reason::Moved);
        assert_eq!(plan.volume_moves().count(), 0);
    }

    /// A spec that failed its gates here before says so, naming the kept
    /// container, and reads back from a saved plan as it was.
    #[test]
    fn a_spec_that_failed_before_is_named_and_reads_back() {
        let want = spec("reg/web:1");
        let have = HostObservation {
            containers: vec![ObservedContainer {
                id: "f00d".into(),
                name: "web-site-1.berth-failed".into(),
                labels: BTreeMap::from([
                    (labels::STACK.to_string(), "web".to_string()),
                    (labels::SERVICE.to_string(), "site".to_string()),
                    (labels::REPLICA.to_string(), "1".to_string()),
                    (
                        labels::SPEC_HASH.to_string(),
                        crate::placement::spec_hash(&want),
                    ),
                ]),
                image: "reg/web:1".into(),
                state: ContainerState::Exited,
                health: None,
                created: 0,
                live: None,
            }],
            ..Default::default()
        };
        let plan = plan_one("web", "site", "reg/web:1", have);
        let change = &plan.hosts[0].changes[0];
        assert_eq!(
            (change.action, &change.reason),
            (Action::Create, &Reason::New)
        );
        assert_eq!(change.failed_before.as_deref(), Some("f00d"));
        assert_eq!(
            change.reason_text(),
            "new; this spec failed before here, see `web-site-1.berth-failed`"
        );
        let text = serde_json::to_string(change).expect("json");
        let back: Change = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back.reason, Reason::New);
        assert_eq!(back.failed_before.as_deref(), Some("f00d"));
    }

    #[test]
    fn a_docker_hub_image_listed_in_short_form_is_not_pulled_again() {
        let have = HostObservation {
            images: ["redis:7".to_string()].into(),
            ..Default::default()
        };
        let plan = plan_one("cache", "redis", "docker.io/library/redis:7", have);
        assert!(plan.hosts[0].pulls.is_empty(), "{:?}", plan.hosts[0].pulls);
        assert_eq!(plan.hosts[0].changes.len(), 1);
    }

    #[test]
    fn a_changed_secret_is_named_in_words() {
        let mut old = ContainerSpec::default();
        old.secrets.insert(
            "db_password".into(),
            crate::spec::SecretFileSpec {
                digest: "sha256:1111".into(),
                target: "/run/secrets/db_password".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o400,
            },
        );
        let mut new = old.clone();
        if let Some(f) = new.secrets.get_mut("db_password") {
            f.digest = "sha256:2222".into();
        }
        let fields = field_diff(&old, &new);
        let reason = Reason::SpecChanged {
            fields: paths(&fields),
        };
        assert_eq!(
            crate::render::reason::text(&reason),
            "secret db_password changed"
        );
    }

    #[test]
    fn field_diff_of_added_port_has_no_old_value() {
        let old = spec("a:1");
        let mut new = spec("a:1");
        new.ports.push(crate::spec::PortSpec {
            host_ip: None,
            published: Some(8080),
            target: 80,
            protocol: "tcp".into(),
        });
        let fields = field_diff(&old, &new);
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].field, "ports[0]");
        assert_eq!(fields[0].old, None);
        assert!(fields[0].new.as_deref().is_some_and(|v| v.contains("8080")));
    }
}
