//! Digests in the plan: each create and replace pinned to the digest its
//! image's tag was resolved to, and a tag that moved under a running
//! container planned as a replace (or shown as available, where the
//! service's `pull_policy` keeps what runs).
//!
//! Input: the plan [`diff`](super::diff) made, the desired and observed
//! state, and image -> digest as `registry` resolved it. Pure, like the
//! diff; the resolution is I/O and happens before.

use std::collections::{BTreeMap, BTreeSet};

use super::{is_retired, Action, Change, CurrentContainer, MovedTag, Plan, Reason};
use crate::labels;
use crate::observed::{HostObservation, ObservedContainer};
use crate::placement::{DesiredContainer, DesiredState};
use crate::spec::{ImageRef, PullPolicy};

/// Hex digits of a digest the plan's words show.
const SHOWN_HEX: usize = 12;

/// `sha256:4f2c8a1b9e0d`: a digest as the plan's words show it.
pub fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => {
            format!(
                "{algorithm}:{}",
                hex.chars().take(SHOWN_HEX).collect::<String>()
            )
        }
        None => digest.chars().take(SHOWN_HEX).collect(),
    }
}

/// Whether a service follows its tag when the tag moves under a running
/// container: `always` does, and so does the default policy for an image
/// without a tag or with `:latest` (`explicit`: the service wrote its
/// `pull_policy`); `missing` pins what runs until the spec changes;
/// `daily`, `weekly`, `every_<d>` follow once berth's last check of the
/// image on that host is older than that (see [`due`]); `never` is not
/// resolved at all.
pub fn follows(policy: PullPolicy, explicit: bool, image: &str, have: &HostObservation) -> bool {
    match policy {
        PullPolicy::Always => true,
        PullPolicy::Never => false,
        PullPolicy::Missing => {
            let r = ImageRef::split(image);
            !explicit && r.digest.is_none() && r.tag.as_deref().is_none_or(|t| t == "latest")
        }
        PullPolicy::Every(period) => due(period, have.image_checks.get(image).copied()),
    }
}

/// Whether a refresh policy of `period` follows a moved tag, `since` the
/// last time berth resolved the image and deployed what its tag named on
/// the host (the record beside the run lock; None: never recorded). Not
/// the engine's `LastTagTime`: a pull by digest does not refresh it, and
/// some engines report none.
pub fn due(period: std::time::Duration, since: Option<std::time::Duration>) -> bool {
    since.is_none_or(|since| since > period)
}

/// Host -> the images whose tag berth resolved and deployed there, for the
/// record [`due`] reads: the images of `plan`'s creates and replaces on
/// `done` hosts (applied without error) whose service has a refresh
/// policy (`refresh`: (stack, service) pairs) and that carry a digest. A
/// repair (drift) is left out: it may bring back what ran rather than what
/// the tag names.
pub fn checked(
    plan: &Plan,
    done: &BTreeSet<String>,
    refresh: &BTreeSet<(String, String)>,
) -> BTreeMap<String, BTreeSet<String>> {
    plan.hosts
        .iter()
        .filter(|h| done.contains(&h.host))
        .map(|h| {
            let images = h
                .changes
                .iter()
                .filter(|c| !c.drift && c.action != Action::Reload)
                .filter(|c| refresh.contains(&(c.slot.stack.clone(), c.slot.service.clone())))
                .filter_map(|c| c.desired.as_ref())
                .filter(|d| d.digest.is_some())
                .map(|d| d.spec.image.clone())
                .collect();
            (h.host.clone(), images)
        })
        .collect()
}

/// Pins the plan's creates and replaces to `resolved` digests, plans a
/// replace for each running container whose tag moved (when its service
/// follows, see [`follows`]; else lists it in `available`), and pulls what
/// the pinned containers need by digest. `explicit`: the (stack, service)
/// pairs that wrote a `pull_policy`.
pub fn pin(
    plan: &mut Plan,
    desired: &DesiredState,
    observed: &BTreeMap<String, HostObservation>,
    resolved: &BTreeMap<String, String>,
    explicit: &BTreeSet<(String, String)>,
) {
    for host in &mut plan.hosts {
        let (Some(want), Some(have)) = (desired.hosts.get(&host.host), observed.get(&host.host))
        else {
            continue;
        };
        let live: BTreeMap<&str, &ObservedContainer> = have
            .containers
            .iter()
            .filter(|c| !is_retired(c))
            .map(|c| (c.name.as_str(), c))
            .collect();
        let blocked: BTreeSet<&str> = host.blocked.iter().map(|b| b.name.as_str()).collect();
        for d in &want.containers {
            let Some(digest) = resolved.get(&d.spec.image) else {
                continue;
            };
            let follow = follows(
                d.pull_policy,
                explicit.contains(&(d.slot.stack.clone(), d.slot.service.clone())),
                &d.spec.image,
                have,
            );
            let running = live
                .get(d.name.as_str())
                .map(|c| running_digests(&d.spec.image, c, have))
                .unwrap_or_default();
            let change = host
                .changes
                .iter_mut()
                .find(|c| c.name == d.name && c.desired.is_some());
            if let Some(change) = change {
                // A reload keeps its container, and the image it runs: it
                // pulls nothing, and a moved tag is planned once it is done.
                if change.action == Action::Reload {
                    continue;
                }
                // A repair (not the repo's change) of a service that keeps
                // what runs brings back the same bytes.
                let keep =
                    !follow && change.drift && !running.is_empty() && !running.contains(digest);
                if let Some(want) = change.desired.as_mut() {
                    want.digest = Some(if keep {
                        running[0].clone()
                    } else {
                        digest.clone()
                    });
                }
                continue;
            }
            if blocked.contains(d.name.as_str()) {
                continue;
            }
            let Some(c) = live.get(d.name.as_str()) else {
                continue;
            };
            // Unknown (built on the host, or pulled from elsewhere): the
            // plan cannot say the tag moved.
            if running.is_empty() || running.contains(digest) || !c.state.is_up() {
                continue;
            }
            if follow {
                host.changes.push(moved_replace(d, c, &running[0], digest));
            } else {
                host.available.push(MovedTag {
                    slot: d.slot.clone(),
                    name: d.name.clone(),
                    image: d.spec.image.clone(),
                    from: running[0].clone(),
                    to: digest.clone(),
                });
            }
        }
        host.changes
            .sort_by(|a, b| (&a.slot, a.action).cmp(&(&b.slot, b.action)));
        host.pulls = pulls(host.pulls.clone(), &host.changes, want, have);
    }
}

/// The replace of a container whose tag moved.
fn moved_replace(d: &DesiredContainer, c: &ObservedContainer, from: &str, to: &str) -> Change {
    let r = ImageRef::split(&d.spec.image);
    Change {
        action: Action::Replace,
        slot: d.slot.clone(),
        name: d.name.clone(),
        current: Some(CurrentContainer {
            id: c.id.clone(),
            image: c.image.clone(),
            state: c.state.clone(),
            spec_hash: c.labels.get(labels::SPEC_HASH).cloned(),
        }),
        desired: Some(super::DesiredRef {
            spec: d.spec.clone(),
            spec_hash: d.spec_hash.clone(),
            digest: Some(to.to_string()),
        }),
        reason: Reason::TagMoved {
            tag: r.tag.unwrap_or_else(|| "latest".into()),
            from: short(from),
            to: short(to),
        },
        drift: false,
        fields: Vec::new(),
        failed_before: None,
        configs: Vec::new(),
    }
}

/// The digests (`sha256:…`) of `image`'s repository that the image
/// container `c` runs is known by on the host (its `RepoDigests`); empty
/// when none is known.
pub fn running_digests(image: &str, c: &ObservedContainer, have: &HostObservation) -> Vec<String> {
    let repository = repository(image);
    have.running_digests
        .get(&c.id)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let (name, digest) = r.split_once('@')?;
            (name == repository).then(|| digest.to_string())
        })
        .collect()
}

/// The repository of `image` in the engine's form (`redis`,
/// `10.77.0.1:5000/berth/web`), as `RepoDigests` names it.
fn repository(image: &str) -> String {
    let r = ImageRef::split(image);
    let probe = ImageRef {
        name: r.name,
        tag: None,
        digest: Some("x".into()),
    }
    .engine_form();
    probe
        .split_once('@')
        .map(|(n, _)| n.to_string())
        .unwrap_or(probe)
}

/// `reg/app:2.1@sha256:…`: what a host pulls for a pinned container (the
/// engine pulls the digest; berth then tags it `reg/app:2.1`).
pub fn pinned(image: &str, digest: &str) -> String {
    let r = ImageRef::split(image);
    ImageRef {
        name: r.name,
        tag: Some(r.tag.unwrap_or_else(|| "latest".into())),
        digest: Some(digest.to_string()),
    }
    .to_string()
}

/// The host's pulls once its containers are pinned: a pinned image is
/// pulled by digest unless the host already has those bytes (a pull by
/// digest of bytes the host has is a no-op, whatever the policy); what is
/// not pinned is pulled as [`super::diff`] decided.
fn pulls(
    before: Vec<String>,
    changes: &[Change],
    want: &crate::placement::DesiredHost,
    have: &HostObservation,
) -> Vec<String> {
    let never: BTreeSet<&str> = want
        .containers
        .iter()
        .filter(|d| d.pull_policy == PullPolicy::Never)
        .map(|d| d.name.as_str())
        .collect();
    let mut pinned_images = BTreeSet::new();
    let mut pulls: BTreeSet<String> = BTreeSet::new();
    for c in changes {
        let Some(d) = &c.desired else { continue };
        let Some(digest) = &d.digest else { continue };
        if never.contains(c.name.as_str()) {
            continue;
        }
        pinned_images.insert(d.spec.image.clone());
        let there = format!("{}@{digest}", repository(&d.spec.image));
        if !have.images.contains(&there) {
            pulls.insert(pinned(&d.spec.image, digest));
        }
    }
    pulls.extend(before.into_iter().filter(|p| !pinned_images.contains(p)));
    pulls.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{spec_hash, DesiredHost, Slot};
    use crate::spec::ContainerSpec;

    const OLD: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const NEW: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const IMAGE: &str = "10.77.0.1:5000/berth/web:v1";

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: IMAGE.into(),
            ..Default::default()
        }
    }

    fn slot() -> Slot {
        Slot {
            stack: "web".into(),
            service: "site".into(),
            replica: 1,
        }
    }

    /// The plan on host `h` for one `web/site.1` of [`IMAGE`] with
    /// `policy`, resolved to [`NEW`], where `h` runs it from `running`
    /// (None: not there).
    fn planned(policy: PullPolicy, explicit: bool, running: Option<&str>) -> Plan {
        planned_with(policy, explicit, running, |_| {})
    }

    /// [`planned`], with `edit` made to the diff's plan before it is pinned.
    fn planned_with(
        policy: PullPolicy,
        explicit: bool,
        running: Option<&str>,
        edit: impl FnOnce(&mut Plan),
    ) -> Plan {
        planned_seen(policy, explicit, running, |_| {}, edit)
    }

    /// [`planned_with`], with `seen` made to the host's observation first.
    fn planned_seen(
        policy: PullPolicy,
        explicit: bool,
        running: Option<&str>,
        seen: impl FnOnce(&mut HostObservation),
        edit: impl FnOnce(&mut Plan),
    ) -> Plan {
        let want = spec();
        let desired = DesiredState {
            project: "p".into(),
            hosts: BTreeMap::from([(
                "h".to_string(),
                DesiredHost {
                    containers: vec![DesiredContainer {
                        name: slot().container_name(),
                        spec_hash: spec_hash(&want),
                        spec: want.clone(),
                        slot: slot(),
                        pull_policy: policy,
                    }],
                    ..Default::default()
                },
            )]),
        };
        let mut have = HostObservation::default();
        if let Some(digest) = running {
            have.containers.push(ObservedContainer {
                id: "c1".into(),
                name: slot().container_name(),
                labels: BTreeMap::from([
                    (labels::STACK.to_string(), "web".to_string()),
                    (labels::SERVICE.to_string(), "site".to_string()),
                    (labels::REPLICA.to_string(), "1".to_string()),
                    (labels::SPEC_HASH.to_string(), spec_hash(&want)),
                ]),
                image: IMAGE.into(),
                state: "running".into(),
                health: None,
                created: 0,
                live: None,
            });
            have.images.insert(IMAGE.into());
            have.images
                .insert(format!("10.77.0.1:5000/berth/web@{digest}"));
            have.running_digests.insert(
                "c1".into(),
                vec![format!("10.77.0.1:5000/berth/web@{digest}")],
            );
        }
        seen(&mut have);
        let observed = BTreeMap::from([("h".to_string(), have)]);
        let mut plan = super::super::diff(&desired, &observed, Vec::new(), None);
        edit(&mut plan);
        let resolved = BTreeMap::from([(IMAGE.to_string(), NEW.to_string())]);
        let explicit = if explicit {
            BTreeSet::from([("web".to_string(), "site".to_string())])
        } else {
            BTreeSet::new()
        };
        pin(&mut plan, &desired, &observed, &resolved, &explicit);
        plan
    }

    #[test]
    fn a_create_is_pinned_and_pulled_by_digest() {
        let plan = planned(PullPolicy::Missing, false, None);
        let host = &plan.hosts[0];
        assert_eq!(host.changes.len(), 1);
        let d = host.changes[0].desired.as_ref().expect("desired");
        assert_eq!(d.digest.as_deref(), Some(NEW));
        assert_eq!(host.pulls, vec![format!("{IMAGE}@{NEW}")]);
    }

    #[test]
    fn a_moved_tag_is_a_replace_where_the_service_follows() {
        let plan = planned(PullPolicy::Always, true, Some(OLD));
        let host = &plan.hosts[0];
        assert_eq!(host.changes.len(), 1, "{:?}", host.changes);
        let c = &host.changes[0];
        assert_eq!(c.action, Action::Replace);
        assert!(!c.drift);
        assert_eq!(
            c.reason_text(),
            "tag v1 moved: sha256:aaaaaaaaaaaa… -> sha256:bbbbbbbbbbbb…"
        );
        assert_eq!(
            c.desired.as_ref().and_then(|d| d.digest.as_deref()),
            Some(NEW)
        );
        assert_eq!(host.pulls, vec![format!("{IMAGE}@{NEW}")]);
        // The JSON plan reads back as it was written.
        let text = serde_json::to_string(c).expect("json");
        let back: Change = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back.reason, c.reason);
    }

    #[test]
    fn a_service_that_keeps_what_runs_reports_the_moved_tag() {
        let plan = planned(PullPolicy::Missing, true, Some(OLD));
        let host = &plan.hosts[0];
        assert!(host.changes.is_empty(), "{:?}", host.changes);
        assert!(host.pulls.is_empty());
        assert_eq!(
            host.available,
            vec![MovedTag {
                slot: slot(),
                name: "web-site-1".into(),
                image: IMAGE.into(),
                from: OLD.into(),
                to: NEW.into(),
            }]
        );
        assert!(plan.is_empty());
        // Unwritten policy with a fixed tag keeps what runs too; `:latest` follows.
        assert!(planned(PullPolicy::Missing, false, Some(OLD)).hosts[0]
            .changes
            .is_empty());
        let have = HostObservation::default();
        assert!(follows(PullPolicy::Missing, false, "reg/app", &have));
        assert!(follows(PullPolicy::Missing, false, "reg/app:latest", &have));
        assert!(!follows(PullPolicy::Missing, true, "reg/app:latest", &have));
    }

    /// A reload keeps its container and the image it runs: it is not
    /// pinned, pulls nothing, and is not turned into a replace by the tag
    /// that moved (the next plan, once the reload is done, has that).
    #[test]
    fn a_reload_is_not_pinned_and_pulls_nothing() {
        let plan = planned_with(PullPolicy::Always, true, Some(OLD), |plan| {
            let want = spec();
            plan.hosts[0].changes.push(Change {
                action: Action::Reload,
                slot: slot(),
                name: slot().container_name(),
                current: Some(CurrentContainer {
                    id: "c1".into(),
                    image: IMAGE.into(),
                    state: "running".into(),
                    spec_hash: Some(spec_hash(&want)),
                }),
                desired: Some(super::super::DesiredRef {
                    spec_hash: spec_hash(&want),
                    spec: want,
                    digest: None,
                }),
                reason: Reason::ConfigChanged {
                    configs: vec!["site.conf".into()],
                },
                drift: false,
                fields: Vec::new(),
                failed_before: None,
                configs: Vec::new(),
            });
        });
        let host = &plan.hosts[0];
        assert_eq!(host.changes.len(), 1, "{:?}", host.changes);
        let c = &host.changes[0];
        assert_eq!(c.action, Action::Reload);
        assert_eq!(c.desired.as_ref().and_then(|d| d.digest.as_deref()), None);
        assert!(host.pulls.is_empty(), "{:?}", host.pulls);
        let human = crate::render::human(&plan);
        assert!(!human.contains("image = "), "{human}");
    }

    /// Every format shows a moved tag apart from the commit's changes:
    /// followed (a replace) or left as it runs (available).
    #[test]
    fn moved_tags_are_shown_apart() {
        let followed = planned(PullPolicy::Always, true, Some(OLD));
        let human = crate::render::human(&followed);
        assert!(
            human.contains("replace (tag v1 moved: sha256:aaaaaaaaaaaa… -> sha256:bbbbbbbbbbbb…)"),
            "{human}"
        );
        assert!(
            human.contains(&format!("      image = \"{IMAGE}\" (sha256:bbbbbbbbbbbb…)")),
            "{human}"
        );
        let md = crate::render::markdown(&followed);
        assert!(md.contains("#### Tags that moved in the registry"), "{md}");
        assert!(
            md.contains("| `sha256:aaaaaaaaaaaa…` | `sha256:bbbbbbbbbbbb…` | replace |"),
            "{md}"
        );

        let kept = planned(PullPolicy::Missing, true, Some(OLD));
        let human = crate::render::human(&kept);
        assert!(
            human.contains(&format!(
                "  = web/site.1 {IMAGE} moved: sha256:aaaaaaaaaaaa… -> sha256:bbbbbbbbbbbb…, available, not applied"
            )),
            "{human}"
        );
        assert!(human.contains("No changes."), "{human}");
        let md = crate::render::markdown(&kept);
        assert!(
            md.contains("nothing (`pull_policy` keeps what runs)"),
            "{md}"
        );
    }

    #[test]
    fn a_refresh_policy_is_due_once_its_period_passed_since_the_last_check() {
        let day = std::time::Duration::from_secs(24 * 3600);
        assert!(due(day, None), "never checked: due");
        assert!(!due(day, Some(day / 2)));
        assert!(!due(day, Some(day)), "exactly a day: not yet");
        assert!(due(day, Some(day + std::time::Duration::from_secs(1))));
        assert!(!due(7 * day, Some(3 * day)));
    }

    /// `daily` follows a moved tag only when berth's last check of the
    /// image on the host (the record beside the lock) is a day old; the
    /// engine's tag time does not count.
    #[test]
    fn a_daily_service_follows_a_moved_tag_once_a_day_after_its_last_check() {
        let day = std::time::Duration::from_secs(24 * 3600);
        let with_check = |since: Option<std::time::Duration>| {
            planned_seen(
                PullPolicy::Every(day),
                true,
                Some(OLD),
                |have| {
                    // Pulled long ago, as far as the engine says.
                    have.image_ages.insert(IMAGE.into(), 30 * day);
                    if let Some(since) = since {
                        have.image_checks.insert(IMAGE.into(), since);
                    }
                },
                |_| {},
            )
        };
        let recent = with_check(Some(day / 24));
        assert!(recent.hosts[0].changes.is_empty(), "{:?}", recent.hosts[0]);
        assert_eq!(recent.hosts[0].available.len(), 1);
        for since in [Some(2 * day), None] {
            let old = with_check(since);
            let host = &old.hosts[0];
            assert_eq!(host.changes.len(), 1, "{since:?}: {host:?}");
            assert!(matches!(host.changes[0].reason, Reason::TagMoved { .. }));
            assert!(host.available.is_empty());
        }
    }

    /// What apply records as checked: creates and replaces with a digest
    /// of refresh services on the hosts that finished, not repairs.
    #[test]
    fn checks_are_recorded_for_what_refresh_services_deployed() {
        let followed = planned(
            PullPolicy::Every(std::time::Duration::from_secs(60)),
            true,
            Some(OLD),
        );
        let refresh = BTreeSet::from([("web".to_string(), "site".to_string())]);
        let done = BTreeSet::from(["h".to_string()]);
        assert_eq!(
            checked(&followed, &done, &refresh),
            BTreeMap::from([("h".to_string(), BTreeSet::from([IMAGE.to_string()]))])
        );
        assert!(checked(&followed, &BTreeSet::new(), &refresh).is_empty());
        assert_eq!(
            checked(&followed, &done, &BTreeSet::new())["h"],
            BTreeSet::new()
        );
        let mut repair = followed.clone();
        repair.hosts[0].changes[0].drift = true;
        assert!(checked(&repair, &done, &refresh)["h"].is_empty());
    }

    #[test]
    fn an_unmoved_tag_plans_nothing() {
        let plan = planned(PullPolicy::Always, true, Some(NEW));
        assert!(plan.is_empty(), "{:?}", plan.hosts[0]);
        assert!(plan.hosts[0].available.is_empty());
    }

    #[test]
    fn digests_are_shown_short_and_pulled_whole() {
        assert_eq!(short(NEW), "sha256:bbbbbbbbbbbb");
        assert_eq!(pinned("redis:7", NEW), format!("redis:7@{NEW}"));
        assert_eq!(pinned("reg/app", NEW), format!("reg/app:latest@{NEW}"));
        assert_eq!(repository("docker.io/library/redis:7"), "redis");
    }
}
