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
use std::path::PathBuf;

use super::{ContainerSpec, Diagnostic, Location, Project, SpecError};

/// Compose-related settings of `berth.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeSettings {
    /// Top-level `variables:`.
    pub variables: BTreeMap<String, String>,
    pub variables_at: BTreeMap<String, Location>,
    /// `hosts[].variables`, by host name (hosts without any are absent).
    pub host_variables: BTreeMap<String, BTreeMap<String, String>>,
    /// `settings.strict_variables`.
    pub strict_variables: bool,
    /// `settings.environment_variables`; None when berth.yaml does not say.
    pub environment_variables: Option<Vec<String>>,
    pub environment_variables_at: Option<Location>,
    /// `stacks.<name>.profiles`, with where they are written.
    pub stack_profiles: BTreeMap<String, (Vec<String>, Location)>,
}

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VariableOrigin {
    /// The environment of the machine running berth.
    Environment,
    /// A stack's `.env` (repo-relative path).
    DotEnv(PathBuf),
    /// `hosts[].variables` of these hosts.
    Host(Vec<String>),
    /// The top-level `variables:` of berth.yaml.
    Project,
}

impl std::fmt::Display for VariableOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariableOrigin::Environment => write!(f, "the environment"),
            VariableOrigin::DotEnv(file) => write!(f, "`{}`", file.display()),
            VariableOrigin::Host(hosts) => write!(
                f,
                "`variables` of host {}",
                hosts
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            VariableOrigin::Project => write!(f, "`variables` in `berth.yaml`"),
        }
    }
}

/// One variable a stack used, and the value it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedVariable {
    pub value: String,
    pub origin: VariableOrigin,
    /// Where it is first used (a Compose file, `.env` or env file).
    pub location: Location,
}

impl UsedVariable {
    /// The value as a plan may show it: `<redacted>` for names that look secret.
    pub fn shown_value(&self, name: &str) -> String {
        if looks_secret(name) {
            "<redacted>".to_string()
        } else {
            self.value.clone()
        }
    }
}

/// Names like `DB_PASSWORD`, `API_TOKEN`, `SECRET_KEY`: their values are
/// never shown.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"]
        .iter()
        .any(|word| upper.contains(word))
}

/// How a stack's Compose file was resolved, beyond the model itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolution {
    /// Repo files read besides the stack file (`.env`, `env_file`s,
    /// `extends` and `include` files), repo-relative, sorted. `--trust`
    /// must check these are in the signed commit like the stack file.
    pub files: Vec<PathBuf>,
    /// Every variable used, by name.
    pub variables: BTreeMap<String, UsedVariable>,
    /// Profiles that were active for this stack.
    pub profiles: Vec<String>,
    /// Service -> host -> the container for that host, for services whose
    /// container differs per host through `hosts[].variables`. A host not
    /// listed runs the service's own `container`.
    pub per_host: BTreeMap<String, BTreeMap<String, ContainerSpec>>,
}

impl Resolution {
    /// The container `service` runs on `host`: the host's own when host
    /// variables make it differ, else `default`. Secrets are attached to the
    /// service's container after loading, so they are taken from `default`.
    pub fn container_for<'a>(
        &'a self,
        service: &str,
        host: &str,
        default: &'a ContainerSpec,
    ) -> std::borrow::Cow<'a, ContainerSpec> {
        match self.per_host.get(service).and_then(|hosts| hosts.get(host)) {
            Some(spec) if spec.secrets == default.secrets => std::borrow::Cow::Borrowed(spec),
            Some(spec) => {
                let mut spec = spec.clone();
                spec.secrets = default.secrets.clone();
                std::borrow::Cow::Owned(spec)
            }
            None => std::borrow::Cow::Borrowed(default),
        }
    }
}

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
        Err(SpecError { diagnostics })
    }
}
