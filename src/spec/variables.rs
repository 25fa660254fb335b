//! Where a Compose variable's value comes from, and what was used.
//!
//! Precedence, highest first (documented in the README):
//! 1. the environment of the machine running berth (as in Compose),
//! 2. the stack directory's `.env` (as in Compose),
//! 3. the host's `hosts[].variables` in `berth.yaml`,
//! 4. the project-wide `variables:` in `berth.yaml`.
//!
//! Compose's own two sources keep their order; berth's are defaults below
//! them, like a repo-wide `.env`, and the more specific host value wins
//! over the project one.
//!
//! Every value used is recorded with its origin, so a plan can say
//! `TAG=4f2c1e from the environment`, and `--trust` runs can refuse a value
//! from the environment that the signed repo does not allow
//! ([`check_environment_allowed`]).

use std::collections::BTreeMap;

use super::diagnostic::{Diagnostic, SpecError};
use super::model::{Location, Project, VariableOrigin};

/// A variable the repo took from the runner's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromEnvironment {
    pub name: String,
    /// The value, or `<redacted>` when the name looks secret.
    pub shown_value: String,
    /// The real value, to compare with a saved plan (never print it).
    pub value: String,
    /// Stacks using it.
    pub stacks: Vec<String>,
    /// First use.
    pub location: Location,
}

/// Every variable whose value came from the environment, sorted by name:
/// what a plan shows as `TAG=4f2c1e from the environment` and records so
/// `apply --plan` can refuse when it differs.
pub fn environment_variables(project: &Project) -> Vec<FromEnvironment> {
    let mut out: BTreeMap<String, FromEnvironment> = BTreeMap::new();
    for stack in &project.stacks {
        for (name, used) in &stack.resolution.variables {
            if used.origin != VariableOrigin::Environment {
                continue;
            }
            let entry = out.entry(name.clone()).or_insert_with(|| FromEnvironment {
                name: name.clone(),
                shown_value: used.shown_value(name),
                value: used.value.clone(),
                stacks: Vec::new(),
                location: used.location.clone(),
            });
            entry.stacks.push(stack.name.clone());
        }
    }
    out.into_values().collect()
}

/// For `--trust` runs, before any host is contacted: refuses every value
/// taken from the environment whose name `settings.environment_variables`
/// does not list, each at the place it is used. A signed commit must decide
/// what is deployed; the environment may only fill the names it allows.
pub fn check_environment_allowed(project: &Project) -> Result<(), SpecError> {
    let allowed = project
        .inventory
        .compose
        .environment_variables
        .as_deref()
        .unwrap_or_default();
    let mut diagnostics = Vec::new();
    for var in environment_variables(project) {
        if allowed.iter().any(|a| a == &var.name) {
            continue;
        }
        diagnostics.push(Diagnostic {
            location: var.location.clone(),
            message: format!(
                "--trust: variable `{}` takes its value from the environment of the machine running berth, which no signature covers",
                var.name
            ),
            help: Some(format!(
                "set `{}` in the stack's `.env` or in `variables:` of `berth.yaml`, or allow it with `settings.environment_variables: [{}]`",
                var.name, var.name
            )),
        });
    }
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(SpecError::from(diagnostics))
    }
}
