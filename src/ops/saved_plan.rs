//! `apply --plan FILE`: a plan saved by `plan --save` is applied only while
//! it still describes the repo and the hosts; what runs always comes from
//! the (verified) checkout, never from the file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use super::stages::{HostOptions, Loaded, Pinned};
use crate::error::Hint;
use crate::hosts::fleet::Fleet;
use crate::plan::{self as planning, Plan, SavedPlan, PLAN_FORMAT_VERSION};
use crate::render::short;
use crate::spec::{self, FromEnvironment};

/// What to do when a saved plan no longer applies.
const AGAIN: &str = "run `berth plan --save` again and review the new plan";

/// The saved plan, if it still describes the hosts, the commit and the
/// image bytes (each image's tag must name the digest it named then).
pub(super) async fn verify(
    path: &Path,
    loaded: &Loaded,
    fleet: &Fleet,
    only_hosts: &[String],
    hosts: &HostOptions,
) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the saved plan `{}`", path.display()))?;
    let saved: SavedPlan = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a plan saved by `berth plan --save`",
            path.display()
        )
    })?;
    if saved.plan.format_version != PLAN_FORMAT_VERSION {
        return Err(Hint::new(
            format!(
                "saved plan `{}` has format version {}, this berth reads {}",
                path.display(),
                saved.plan.format_version,
                PLAN_FORMAT_VERSION
            ),
            AGAIN,
        )
        .into());
    }
    let commit_now = loaded.checkout.commit.as_ref().map(|c| c.id.clone());
    let mut moved = Vec::new();
    if saved.plan.project != loaded.project.name {
        moved.push(format!(
            "the plan is for project `{}`, the repo is project `{}`",
            saved.plan.project, loaded.project.name
        ));
    }
    if saved.plan.commit != commit_now {
        moved.push(format!(
            "the repo is at commit {}, the plan was made at {}",
            commit_now.as_deref().map(short).unwrap_or("(none)"),
            saved.plan.commit.as_deref().map(short).unwrap_or("(none)")
        ));
    }
    moved.extend(environment_moved(
        &saved.plan.environment,
        &spec::environment_variables(&loaded.project),
    ));
    moved.extend(planning::moved_since(
        &saved.observed,
        &planning::summarize(&fleet.observed),
    ));
    if !moved.is_empty() {
        return Err(Hint::new(
            format!(
                "the saved plan `{}` no longer matches:\n  - {}",
                path.display(),
                moved.join("\n  - ")
            ),
            AGAIN,
        )
        .into());
    }
    // Same commit, same hosts: planning again must give the same changes.
    // A plan file edited by hand (another image, a secret mounted elsewhere)
    // does not, and what runs always comes from the (verified) checkout.
    let Pinned {
        plan: fresh,
        digests,
    } = super::stages::plan_pinned(loaded, fleet, only_hosts, hosts).await?;
    let retagged = digests_moved(&saved.digests, &digests);
    if !retagged.is_empty() {
        return Err(Hint::new(
            format!(
                "the saved plan `{}` no longer matches: an image's tag names other bytes now:\n  - {}",
                path.display(),
                retagged.join("\n  - ")
            ),
            AGAIN,
        )
        .into());
    }
    if changes(&saved.plan) != changes(&fresh) {
        return Err(Hint::new(
            format!(
                "the saved plan `{}` is not what commit {} plans for these hosts (was it edited?)",
                path.display(),
                commit_now.as_deref().map(short).unwrap_or("(none)")
            ),
            AGAIN,
        )
        .into());
    }
    Ok(fresh)
}

/// Each image whose tag names another digest now than when the plan was
/// saved, e.g. "image `reg/app:2.1`: sha256:aa… when the plan was saved,
/// sha256:bb… now" (whole digests: the reviewer compares them). An image
/// the saved plan did not resolve is not compared (a plan saved by a berth
/// without digests, or one that resolved none).
fn digests_moved(saved: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    saved
        .iter()
        .filter_map(|(image, then)| {
            let now = now.get(image)?;
            (now != then)
                .then(|| format!("image `{image}`: {then} when the plan was saved, {now} now"))
        })
        .collect()
}

/// Each change of `plan` as host, action, container and the hash of what
/// it would run.
fn changes(plan: &Plan) -> Vec<(String, String, String, Option<String>)> {
    plan.hosts
        .iter()
        .flat_map(|h| {
            h.changes.iter().map(move |c| {
                (
                    h.host.clone(),
                    format!("{:?}", c.action),
                    c.name.clone(),
                    c.desired
                        .as_ref()
                        .map(|d| crate::placement::spec_hash(&d.spec)),
                )
            })
        })
        .collect()
}

/// Variables from the environment that differ from when the plan was made:
/// the same commit can plan something else when CI sets another `TAG`.
/// Redacted values are compared through the changes they cause instead.
fn environment_moved(saved: &[planning::EnvironmentValue], now: &[FromEnvironment]) -> Vec<String> {
    let mut moved = Vec::new();
    for before in saved {
        match now.iter().find(|v| v.name == before.name) {
            None => moved.push(format!(
                "variable `{}` came from the environment when the plan was made, and does not now",
                before.name
            )),
            Some(v) if v.shown_value != before.value => moved.push(format!(
                "variable `{}` from the environment was `{}` when the plan was made, is `{}` now",
                v.name, before.value, v.shown_value
            )),
            Some(_) => {}
        }
    }
    for v in now {
        if !saved.iter().any(|b| b.name == v.name) {
            moved.push(format!(
                "variable `{}` now comes from the environment (`{}`), not when the plan was made",
                v.name, v.shown_value
            ));
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(name: &str, value: &str) -> FromEnvironment {
        FromEnvironment {
            name: name.into(),
            shown_value: value.into(),
            value: value.into(),
            stacks: vec!["web".into()],
            location: spec::Location {
                file: "stacks/web/compose.yaml".into(),
                line: 3,
                column: 12,
            },
        }
    }

    fn saved(name: &str, value: &str) -> planning::EnvironmentValue {
        planning::EnvironmentValue {
            name: name.into(),
            value: value.into(),
            stacks: vec!["web".into()],
        }
    }

    #[test]
    fn an_image_whose_tag_moved_is_named_with_both_digests() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let map = |d: &str| BTreeMap::from([("reg/app:2.1".to_string(), d.to_string())]);
        assert!(digests_moved(&map(&a), &map(&a)).is_empty());
        assert_eq!(
            digests_moved(&map(&a), &map(&b)),
            [format!(
                "image `reg/app:2.1`: {a} when the plan was saved, {b} now"
            )]
        );
        // A plan saved without digests binds none.
        assert!(digests_moved(&BTreeMap::new(), &map(&b)).is_empty());
    }

    #[test]
    fn a_variable_from_the_environment_that_moved_is_named() {
        assert!(environment_moved(&[saved("TAG", "v1")], &[now("TAG", "v1")]).is_empty());
        assert_eq!(
            environment_moved(&[saved("TAG", "v1")], &[now("TAG", "v2")]),
            ["variable `TAG` from the environment was `v1` when the plan was made, is `v2` now"]
        );
        assert_eq!(environment_moved(&[saved("TAG", "v1")], &[]).len(), 1);
        assert_eq!(environment_moved(&[], &[now("TAG", "v1")]).len(), 1);
    }
}
