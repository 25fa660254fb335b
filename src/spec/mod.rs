//! spec: reads `berth.yaml` and `stacks/<name>/compose.yaml` into a validated
//! [`Project`].
//!
//! Input: a directory (a checkout). Output: a `Project`, or every problem
//! found at once, each with `file:line:col`, the key, and a help line.
//! Invariant: an unknown or unsupported key is always an error, never ignored
//! (an ignored `volumes:` loses data). Pure: touches no host.
//!
//! How: `yaml` builds a tree whose every node knows its place; `read` pulls
//! typed values out of it, recording problems instead of stopping;
//! `inventory` and `compose` (with `service` and `deploy`) map the trees to
//! the model; `schema` generates the JSON Schemas from the raw types.

mod compose;
#[cfg(test)]
mod compose_tests;
pub mod config;
mod config_types;
pub mod configs;
#[cfg(test)]
mod corpus_tests;
mod decls;
mod deploy;
mod diagnostic;
pub mod discovery;
mod discovery_types;
mod dotenv;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
mod interpolate;
mod inventory;
pub mod model;
mod mounts;
mod ports;
mod read;
mod resolve;
mod restart;
mod schema;
pub mod secret_paths;
mod service;
#[cfg(test)]
mod service_keys_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod values;
pub mod variables;
#[cfg(test)]
mod wild_corpus_tests;
mod yaml;

pub use diagnostic::{Diagnostic, Location, SpecError};
pub use image::ImageRef;
pub use model::*;
pub use restart::RestartPolicy;
pub use schema::{inventory_schema, x_berth_schema};
pub use variables::{check_environment_allowed, environment_variables, FromEnvironment};

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};

use diagnostic::{file_location, io_problem};
use read::Cx;

const INVENTORY_FILE: &str = "berth.yaml";
const STACKS_DIR: &str = "stacks";

/// How to read a repo beyond its files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Compose profiles to enable (`--profile`), besides each stack's
    /// `stacks.<name>.profiles` in berth.yaml.
    pub profiles: Vec<String>,
    /// The variables of the environment berth runs in, the first source of
    /// Compose interpolation. None: the process environment.
    pub environment: Option<BTreeMap<String, String>>,
}

/// A repo read and validated, with what the user should still hear about.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: Project,
    /// Problems that do not stop the load (an unset variable read as
    /// empty, an obsolete `version:`), sorted like errors. Show them.
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates the repo at `root` with the process environment and
/// no `--profile`. Warnings are logged (also when the load fails); use
/// [`load_with`] to get them.
pub fn load(root: &Path) -> Result<Project, SpecError> {
    match load_with(root, &LoadOptions::default()) {
        Ok(loaded) => {
            log_warnings(&loaded.warnings);
            Ok(loaded.project)
        }
        Err(e) => {
            log_warnings(&e.warnings);
            Err(e)
        }
    }
}

/// Logs each warning at its place, with its help, as every command shows
/// them: before the errors when the load failed, since a variable read as
/// empty is often what made a value wrong.
pub fn log_warnings(warnings: &[Diagnostic]) {
    for warning in warnings {
        match &warning.help {
            Some(help) => {
                tracing::warn!("{}: {}\n  help: {help}", warning.location, warning.message)
            }
            None => tracing::warn!("{}: {}", warning.location, warning.message),
        }
    }
}

/// Reads and validates the repo at `root`. Every problem in every file is
/// reported, sorted by file, line and column; when there are problems, the
/// warnings gathered on the way come with them.
pub fn load_with(root: &Path, options: &LoadOptions) -> Result<Loaded, SpecError> {
    let mut diagnostics = Vec::new();
    let mut warnings = Vec::new();
    let process_env;
    let environment = match &options.environment {
        Some(env) => env,
        None => {
            process_env = std::env::vars().collect::<BTreeMap<_, _>>();
            &process_env
        }
    };
    let inventory = load_inventory(root, &mut diagnostics);
    let stacks = load_stacks(
        root,
        inventory.as_ref().map(|(_, i)| i),
        environment,
        &options.profiles,
        &mut diagnostics,
        &mut warnings,
    );
    if let Some((_, inventory)) = &inventory {
        diagnostics.extend(discovery::check_references(&inventory.discovery, &stacks));
    }
    sort_diagnostics(&mut warnings);
    match inventory {
        Some((name, inventory)) if diagnostics.is_empty() => Ok(Loaded {
            project: {
                let (swarm_stacks, stacks) = stacks
                    .into_iter()
                    .partition(|s| inventory.swarm_of(&s.name).is_some());
                Project {
                    root: root.to_path_buf(),
                    name,
                    inventory,
                    stacks,
                    swarm_stacks,
                }
            },
            warnings,
        }),
        _ => {
            sort_diagnostics(&mut diagnostics);
            Err(SpecError {
                diagnostics,
                warnings,
            })
        }
    }
}

fn sort_diagnostics(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (
            &a.location.file,
            a.location.line,
            a.location.column,
            &a.message,
        )
            .cmp(&(
                &b.location.file,
                b.location.line,
                b.location.column,
                &b.message,
            ))
    });
    diagnostics.dedup();
}

/// Reads and validates `berth.yaml` alone (the project name and the
/// inventory), for commands that need no stack.
pub fn load_inventory_only(root: &Path) -> Result<(String, Inventory), SpecError> {
    let mut diagnostics = Vec::new();
    match load_inventory(root, &mut diagnostics) {
        Some(found) if diagnostics.is_empty() => Ok(found),
        _ => Err(SpecError::from(diagnostics)),
    }
}

fn load_inventory(root: &Path, out: &mut Vec<Diagnostic>) -> Option<(String, Inventory)> {
    let mut cx = Cx::new(INVENTORY_FILE, false);
    if !root.join(INVENTORY_FILE).is_file() {
        out.push(Diagnostic {
            location: file_location(INVENTORY_FILE),
            message: "inventory file not found".to_string(),
            help: Some(format!(
                "run berth in a repo that has berth.yaml, or pass --repo (looked in `{}`)",
                root.display()
            )),
        });
        return None;
    }
    let result = read_yaml(root, &mut cx).and_then(|tree| {
        let raw = inventory::read(&mut cx, &tree);
        inventory::validate(&mut cx, raw, root)
    });
    let clean = cx.diags.is_empty();
    out.append(&mut cx.diags);
    result.filter(|_| clean)
}

fn load_stacks(
    root: &Path,
    inventory: Option<&Inventory>,
    environment: &BTreeMap<String, String>,
    profiles: &[String],
    out: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Stack> {
    let mut stacks = Vec::new();
    let names = stack_names(root, out);
    if let Some(inventory) = inventory {
        for (name, (_, at)) in &inventory.compose.stack_profiles {
            if !names.contains(name) {
                out.push(Diagnostic {
                    location: at.clone(),
                    message: format!("`stacks.{name}` names no stack of the repo"),
                    help: Some(format!(
                        "stacks are the directories under `stacks/`: {}",
                        names.join(", ")
                    )),
                });
            }
        }
        for swarm in &inventory.swarms {
            for (name, at) in &swarm.stacks {
                if !names.contains(name) {
                    out.push(Diagnostic {
                        location: at.clone(),
                        message: format!(
                            "swarm target `{}` is given stack `{name}`, which is no stack of the repo",
                            swarm.manager.name
                        ),
                        help: Some(format!(
                            "stacks are the directories under `stacks/`: {}",
                            names.join(", ")
                        )),
                    });
                }
            }
        }
    }
    for name in names {
        let dir = Path::new(STACKS_DIR).join(&name);
        let Some(file) = stack_file(root, &dir, &name, out) else {
            continue;
        };
        let outcome = resolve::load_stack(&resolve::StackInput {
            root,
            name: &name,
            file: &file,
            inventory,
            environment,
            profiles,
        });
        out.extend(outcome.errors);
        warnings.extend(outcome.warnings);
        if let Some(stack) = outcome.stack {
            stacks.push(stack);
        }
    }
    stacks.sort_by(|a, b| a.name.cmp(&b.name));
    stacks
}

/// Directories under `stacks/` (hidden ones skipped), checked to be valid names.
fn stack_names(root: &Path, out: &mut Vec<Diagnostic>) -> Vec<String> {
    let entries = match std::fs::read_dir(root.join(STACKS_DIR)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            out.push(io_problem(STACKS_DIR, &e));
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.push(io_problem(STACKS_DIR, &e));
                continue;
            }
        };
        if !entry.path().is_dir() {
            continue;
        }
        let file_name = entry.file_name();
        let name = file_name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if !values::is_slug(&name) {
            out.push(Diagnostic {
                location: file_location(Path::new(STACKS_DIR).join(&*name)),
                message: format!("stack name `{name}` is not valid"),
                help: Some(
                    "rename the directory: lowercase letters, digits, `_` and `-`, starting with a letter or digit"
                        .to_string(),
                ),
            });
            continue;
        }
        names.push(name.into_owned());
    }
    names.sort();
    names
}

/// The names Compose looks for, in its order of preference.
const STACK_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The stack file of a stack directory: exactly one of the names Compose
/// reads (`compose.yaml`, `compose.yml`, `docker-compose.yaml`,
/// `docker-compose.yml`), so a directory copied from a `docker compose`
/// project works as it is.
fn stack_file(root: &Path, dir: &Path, name: &str, out: &mut Vec<Diagnostic>) -> Option<PathBuf> {
    let found: Vec<PathBuf> = STACK_FILES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| root.join(p).is_file())
        .collect();
    match found.as_slice() {
        [one] => Some(one.clone()),
        [first, others @ ..] => {
            let names: Vec<String> = others
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect();
            out.push(Diagnostic {
                location: file_location(first),
                message: format!(
                    "stack `{name}` has more than one Compose file: `{}` and {}",
                    first.display(),
                    names.join(", ")
                ),
                help: Some("keep one of them (berth reads one Compose file per stack; use `include:` to combine files)".to_string()),
            });
            None
        }
        [] => {
            let yaml = dir.join(STACK_FILES[0]);
            out.push(Diagnostic {
                location: file_location(&yaml),
                message: format!("missing stack file for stack `{name}`"),
                help: Some(format!(
                    "add `{}`, or remove the directory `{}`",
                    yaml.display(),
                    dir.display()
                )),
            });
            None
        }
    }
}

/// Reads and parses `cx.file`; syntax errors and YAML-level problems
/// (duplicate keys, tags) go to `cx`. None when there is no tree to check.
fn read_yaml(root: &Path, cx: &mut Cx) -> Option<yaml::Node> {
    let text = match std::fs::read_to_string(root.join(&cx.file)) {
        Ok(text) => text,
        Err(e) => {
            let problem = io_problem(&cx.file, &e);
            cx.diags.push(problem);
            return None;
        }
    };
    match yaml::parse(&text) {
        Ok(parsed) => {
            for problem in parsed.problems {
                cx.yaml_problem(problem);
            }
            Some(parsed.root)
        }
        Err(problem) => {
            cx.yaml_problem(problem);
            None
        }
    }
}
