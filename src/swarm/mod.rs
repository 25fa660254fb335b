//! swarm: stacks deployed to a Docker Swarm as services — the pure part.
//!
//! Input: the project's Swarm stacks (`spec`) and, per Swarm target, what
//! its manager reported (the adapter in `hosts::swarm` turns each inspected
//! `ServiceSpec` into a [`ServiceShape`]). Output: a [`SwarmPlan`] per
//! target, which the plan renderers show and `apply` executes.
//!
//! A [`ServiceShape`] is the normalised part of a `ServiceSpec` berth
//! decides: the fields it sets, with the engine's defaults written out
//! (an absent duration is 0), so a spec read back from the manager equals
//! the one berth sent. "Changed or not" is the equality of the two shapes;
//! the field diff (flattened JSON, dotted paths) only explains it. A service
//! whose `berth.spec-hash` label matches the repo but whose shape does not
//! was changed by hand: the update repairs drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod desired;
pub mod shape;

pub use desired::{desired, DesiredService};
pub use shape::*;

/// A Swarm service berth manages, as its manager reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedService {
    /// Engine-side name, `<stack>_<service>`.
    pub name: String,
    pub stack: String,
    pub service: String,
    /// `Version.Index`: an update names it, so a service changed since it
    /// was read is refused by the manager ("update out of sequence").
    pub version: u64,
    /// The shape of its spec; None when berth cannot read it back.
    pub shape: ServiceShape,
    /// Its `berth.spec-hash` label.
    pub spec_hash: Option<String>,
}

/// What a Swarm target's manager reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwarmObservation {
    /// The project's services, by engine-side name.
    pub services: BTreeMap<String, ObservedService>,
    /// Names of the networks the Swarm has.
    pub networks: Vec<String>,
}

/// What `apply` does to one Swarm target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SwarmPlan {
    /// The target's name in berth.yaml.
    pub target: String,
    /// Overlay networks to create first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<SwarmNetwork>,
    /// Sorted by stack, service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ServiceChange>,
}

/// What happens to a Swarm service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    Create,
    Update,
    Remove,
}

/// One service-level change on a Swarm target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceChange {
    pub action: ServiceAction,
    pub stack: String,
    pub service: String,
    /// Engine-side name, `<stack>_<service>`.
    pub name: String,
    /// True when the update repairs a change made on the Swarm by hand.
    #[serde(default)]
    pub drift: bool,
    /// `Version.Index` of the service as planned (update, remove).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Field by field, for an update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
    /// What the service becomes (create, update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<ServiceShape>,
}

/// One field of a service that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldDiff {
    /// Dotted path, e.g. `image`, `replicas`, `environment.LOG_LEVEL`.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

impl ServiceChange {
    /// The fields in a few words, as the plan's reason.
    pub fn reason(&self) -> String {
        match self.action {
            ServiceAction::Create => "new".to_string(),
            ServiceAction::Remove => "service no longer in the repo".to_string(),
            ServiceAction::Update => {
                let mut names: Vec<&str> = self.fields.iter().map(|f| f.field.as_str()).collect();
                if names.len() > 4 {
                    let more = names.len() - 3;
                    names.truncate(3);
                    return format!("{}, and {more} more", names.join(", "));
                }
                names.join(", ")
            }
        }
    }
}

impl SwarmPlan {
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.changes.is_empty()
    }

    pub fn count(&self, action: ServiceAction) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// The plan of one Swarm target: desired services against observed ones.
/// Pure. A service the repo no longer has (of a stack this target runs or
/// ran for this project) is removed; networks are only ever created.
pub fn diff(target: &str, desired: &[DesiredService], observed: &SwarmObservation) -> SwarmPlan {
    let mut changes = Vec::new();
    let mut wanted_networks: BTreeMap<String, SwarmNetwork> = BTreeMap::new();
    for d in desired.iter().filter(|d| d.target == target) {
        for n in &d.networks {
            if !observed.networks.contains(&n.name) {
                wanted_networks.insert(n.name.clone(), n.clone());
            }
        }
        match observed.services.get(&d.name) {
            None => changes.push(ServiceChange {
                action: ServiceAction::Create,
                stack: d.stack.clone(),
                service: d.service.clone(),
                name: d.name.clone(),
                drift: false,
                version: None,
                fields: Vec::new(),
                desired: Some(d.shape.clone()),
            }),
            Some(o) if o.shape != d.shape => changes.push(ServiceChange {
                action: ServiceAction::Update,
                stack: d.stack.clone(),
                service: d.service.clone(),
                name: d.name.clone(),
                drift: o.spec_hash.as_deref() == Some(d.shape.hash().as_str()),
                version: Some(o.version),
                fields: field_diff(&o.shape, &d.shape),
                desired: Some(d.shape.clone()),
            }),
            Some(_) => {}
        }
    }
    for o in observed.services.values() {
        if !desired
            .iter()
            .any(|d| d.target == target && d.name == o.name)
        {
            changes.push(ServiceChange {
                action: ServiceAction::Remove,
                stack: o.stack.clone(),
                service: o.service.clone(),
                name: o.name.clone(),
                drift: false,
                version: Some(o.version),
                fields: Vec::new(),
                desired: None,
            });
        }
    }
    changes.sort_by(|a, b| (&a.stack, &a.service).cmp(&(&b.stack, &b.service)));
    SwarmPlan {
        target: target.to_string(),
        networks: wanted_networks.into_values().collect(),
        changes,
    }
}

/// Field-by-field difference of two shapes, by dotted path.
pub fn field_diff(old: &ServiceShape, new: &ServiceShape) -> Vec<FieldDiff> {
    let old = flatten(old);
    let new = flatten(new);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| FieldDiff {
            field: k.clone(),
            old: old.get(k).cloned(),
            new: new.get(k).cloned(),
        })
        .collect()
}

fn flatten(shape: &ServiceShape) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(value) = serde_json::to_value(shape) {
        flatten_value("", &value, &mut out);
    }
    out
}

fn flatten_value(path: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten_value(&p, v, out);
            }
        }
        // Lists of plain values read best whole (`command`, `test`).
        Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
            out.insert(path.to_string(), value.to_string());
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_value(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::String(s) => {
            out.insert(path.to_string(), format!("{s:?}"));
        }
        Value::Null => {}
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests;
