//! A stack's Compose file as Compose itself would see it, before the typed
//! reading in `compose`: every transform here works on the YAML tree, so
//! each value keeps the file, line and column it was written at.
//!
//! Order (Compose's): read the stack's `.env`; per file, interpolate and
//! make `env_file` paths repo-relative; merge `include`d files; resolve
//! `extends`; drop services of inactive `profiles`; read `env_file`s into
//! `environment` (where `environment` wins); fill `environment` entries
//! written without a value from the variables. Then `compose::read_stack`.
//!
//! When `hosts[].variables` change what a stack says, the stack is read
//! once per distinct set of host values, and the containers that differ
//! are kept per host in [`Resolution::per_host`].
//!
//! Never reads outside the repo: every path is checked lexically and, when
//! it exists, again after following symlinks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compose::{self, repo_relative, StackSource};
use super::diagnostic::Diagnostic;
use super::dotenv::{self, template_message};
use super::interpolate::{interpolate_tree, TreeProblemKind};
use super::model::{Inventory, Location, Stack};
use super::model::{Resolution, UsedVariable, VariableOrigin};
use super::read::Cx;
use super::yaml::{self, Kind, Node};

/// What one stack is read with.
pub(crate) struct StackInput<'a> {
    pub root: &'a Path,
    pub name: &'a str,
    /// The stack file, repo-relative.
    pub file: &'a Path,
    pub inventory: Option<&'a Inventory>,
    pub environment: &'a BTreeMap<String, String>,
    /// `--profile` values.
    pub profiles: &'a [String],
}

/// A stack read, with its problems and warnings.
pub(crate) struct StackOutcome {
    pub stack: Option<Stack>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Nested `include`/`extends` deeper than this is surely a loop.
const MAX_DEPTH: usize = 16;

pub(crate) fn load_stack(input: &StackInput<'_>) -> StackOutcome {
    let empty = BTreeMap::new();
    let project_vars = input.inventory.map_or(&empty, |i| &i.compose.variables);
    let dotenv = read_dotenv(input);
    let base = Pass::run(input, &dotenv, project_vars, None);
    let host_vars = input.inventory.map(|i| &i.compose.host_variables);
    let host_names: BTreeSet<&String> = host_vars
        .iter()
        .flat_map(|h| h.values().flat_map(|v| v.keys()))
        .collect();
    let used_host: Vec<&String> = base
        .looked_up
        .iter()
        .filter(|n| host_names.contains(n))
        .collect();
    let (Some(inventory), Some(host_vars), false) =
        (input.inventory, host_vars, used_host.is_empty())
    else {
        return base.finish(dotenv);
    };
    // Hosts grouped by the values they give the host variables this stack uses.
    let mut groups: BTreeMap<Vec<Option<&String>>, Vec<String>> = BTreeMap::new();
    for host in &inventory.hosts {
        let vars = host_vars.get(&host.name);
        let key = used_host
            .iter()
            .map(|n| vars.and_then(|v| v.get(*n)))
            .collect();
        groups.entry(key).or_default().push(host.name.clone());
    }
    let mut groups: Vec<Vec<String>> = groups.into_values().collect();
    groups.sort();
    let mut passes: Vec<(Vec<String>, Pass)> = groups
        .into_iter()
        .map(|hosts| {
            let vars = hosts
                .first()
                .and_then(|h| host_vars.get(h))
                .cloned()
                .unwrap_or_default();
            let pass = Pass::run(input, &dotenv, project_vars, Some((&hosts, &vars)));
            (hosts, pass)
        })
        .collect();
    let (_, first) = passes.remove(0);
    let mut outcome = first.finish(dotenv);
    for (hosts, pass) in passes {
        let other = pass.finish(DotEnv::default());
        outcome.errors.extend(other.errors);
        outcome.warnings.extend(other.warnings);
        let (Some(stack), Some(variant)) = (outcome.stack.as_mut(), other.stack) else {
            continue;
        };
        merge_variant(stack, variant, &hosts, &mut outcome.errors);
    }
    outcome
}

/// Records the containers of `variant` (read with `hosts`' variables) that
/// differ from `stack`'s; anything else differing is an error.
fn merge_variant(
    stack: &mut Stack,
    variant: Stack,
    hosts: &[String],
    errors: &mut Vec<Diagnostic>,
) {
    let names = |s: &Stack| {
        s.services
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>()
    };
    let same_shape = names(stack) == names(&variant)
        && stack.networks == variant.networks
        && stack.volumes == variant.volumes
        && stack.secrets == variant.secrets;
    if !same_shape {
        errors.push(Diagnostic {
            location: Location {
                file: stack.file.clone(),
                line: 0,
                column: 0,
            },
            message: format!(
                "stack `{}` declares different services, networks, volumes or secrets on host(s) {} through `hosts[].variables`",
                stack.name,
                hosts.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
            ),
            help: Some("host variables may change a service's settings, not which services and resources a stack declares".to_string()),
        });
        return;
    }
    for (mine, theirs) in stack.services.iter().zip(variant.services) {
        let same_rest = mine.deploy == theirs.deploy
            && mine.depends_on == theirs.depends_on
            && mine.validate == theirs.validate
            && mine.secrets == theirs.secrets;
        if !same_rest {
            errors.push(Diagnostic {
                location: mine.location.clone(),
                message: format!(
                    "service `{}` has different `deploy`, `depends_on`, `secrets` or `x-berth` on host(s) {} through `hosts[].variables`",
                    mine.name,
                    hosts.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
                ),
                help: Some("host variables may change a container's settings (image, environment, command, ...), not how the service is placed or checked".to_string()),
            });
            continue;
        }
        if theirs.container != mine.container {
            let per_host = stack
                .resolution
                .per_host
                .entry(mine.name.clone())
                .or_default();
            for host in hosts {
                per_host.insert(host.clone(), theirs.container.clone());
            }
        }
    }
    // A config whose bytes differ here (a `content:` reading a host
    // variable): kept for the containers of `per_host` that read it.
    for config in variant.configs.into_values() {
        let digest = &config.data.digest;
        if !stack.configs.values().any(|c| &c.data.digest == digest) {
            stack
                .resolution
                .config_variants
                .entry(digest.clone())
                .or_insert(config);
        }
    }
    for (name, used) in variant.resolution.variables {
        stack.resolution.variables.entry(name).or_insert(used);
    }
}

/// The stack's `.env`, parsed.
#[derive(Default)]
struct DotEnv {
    /// Repo-relative path, when the file exists.
    file: Option<PathBuf>,
    values: BTreeMap<String, (String, usize)>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Variables from the environment used inside `.env`.
    used: BTreeMap<String, UsedVariable>,
}

fn read_dotenv(input: &StackInput<'_>) -> DotEnv {
    let dir = input.file.parent().unwrap_or(Path::new(""));
    let file = dir.join(".env");
    let mut out = DotEnv::default();
    let Some(text) = read_in_repo(input.root, &file, &mut out.errors, None) else {
        return out;
    };
    let mut looked: BTreeSet<String> = BTreeSet::new();
    let (entries, problems) = dotenv::parse(&text, &mut |name| {
        let value = input.environment.get(name).cloned();
        if value.is_some() {
            looked.insert(name.to_string());
        }
        value
    });
    for problem in problems {
        let diag = Diagnostic {
            location: Location {
                file: file.clone(),
                line: problem.line,
                column: problem.column,
            },
            message: problem.message,
            help: problem.unset.as_ref().map(|name| {
                format!(
                    "set `{name}` earlier in `{}`, or write `${{{name}:-default}}`",
                    file.display()
                )
            }),
        };
        if problem.unset.is_some() {
            out.warnings.push(diag);
        } else {
            out.errors.push(diag);
        }
    }
    for name in looked {
        if let Some(value) = input.environment.get(&name) {
            let line = text
                .lines()
                .position(|l| l.contains(&format!("${name}")) || l.contains(&format!("${{{name}")))
                .map_or(0, |i| i + 1);
            out.used.insert(
                name,
                UsedVariable {
                    value: value.clone(),
                    origin: VariableOrigin::Environment,
                    location: Location {
                        file: file.clone(),
                        line,
                        column: 1,
                    },
                },
            );
        }
    }
    out.values = entries
        .into_iter()
        .map(|e| (e.key, (e.value, e.line)))
        .collect();
    out.file = Some(file);
    out
}

/// Reads a repo file as text. None (and no problem) when it does not exist
/// and `at` is None; a problem when it leaves the repo through a symlink.
fn read_in_repo(
    root: &Path,
    file: &Path,
    errors: &mut Vec<Diagnostic>,
    at: Option<&Location>,
) -> Option<String> {
    let full = root.join(file);
    let here = || {
        at.cloned().unwrap_or(Location {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
        })
    };
    if !full.is_file() {
        if at.is_some() {
            errors.push(Diagnostic {
                location: here(),
                message: format!("file `{}` does not exist", file.display()),
                help: Some(
                    "create it, or fix the path (relative to the file that names it)".to_string(),
                ),
            });
        }
        return None;
    }
    let inside = match (full.canonicalize(), root.canonicalize()) {
        (Ok(real), Ok(root)) => real.starts_with(root),
        _ => false,
    };
    if !inside {
        errors.push(Diagnostic {
            location: here(),
            message: format!("`{}` leads outside the repo (a symlink)", file.display()),
            help: Some(
                "berth only reads files committed in the repo: copy the file into it".to_string(),
            ),
        });
        return None;
    }
    match std::fs::read_to_string(&full) {
        Ok(text) => Some(text),
        Err(e) => {
            errors.push(Diagnostic {
                location: here(),
                message: format!("cannot read `{}`: {e}", file.display()),
                help: None,
            });
            None
        }
    }
}

/// One reading of the stack with one set of variables.
struct Pass<'i> {
    input: &'i StackInput<'i>,
    layers: Layers<'i>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    used: BTreeMap<String, UsedVariable>,
    looked_up: BTreeSet<String>,
    /// Where each variable was used: (file, line, column) -> names, so a
    /// service's container can list the variables written into it.
    uses: BTreeMap<(PathBuf, usize, usize), BTreeSet<String>>,
    files: BTreeSet<PathBuf>,
    /// Parsed and interpolated files, by repo-relative path.
    cache: HashMap<PathBuf, Option<Node>>,
    stack: Option<Stack>,
    profiles: Vec<String>,
    /// A value could not be interpolated: reading the typed model would
    /// only add confusing errors about the unexpanded text.
    interpolation_failed: bool,
}

struct Layers<'i> {
    environment: &'i BTreeMap<String, String>,
    dotenv: BTreeMap<String, String>,
    dotenv_file: Option<PathBuf>,
    host: Option<(Vec<String>, BTreeMap<String, String>)>,
    project: &'i BTreeMap<String, String>,
    strict: bool,
}

impl<'i> Pass<'i> {
    fn run(
        input: &'i StackInput<'i>,
        dotenv: &DotEnv,
        project: &'i BTreeMap<String, String>,
        host: Option<(&[String], &BTreeMap<String, String>)>,
    ) -> Pass<'i> {
        let strict = input.inventory.is_some_and(|i| i.compose.strict_variables);
        let mut profiles: Vec<String> = input.profiles.to_vec();
        if let Some((extra, _)) = input
            .inventory
            .and_then(|i| i.compose.stack_profiles.get(input.name))
        {
            profiles.extend(extra.iter().cloned());
        }
        profiles.sort();
        profiles.dedup();
        let mut pass = Pass {
            input,
            layers: Layers {
                environment: input.environment,
                dotenv: dotenv
                    .values
                    .iter()
                    .map(|(k, (v, _))| (k.clone(), v.clone()))
                    .collect(),
                dotenv_file: dotenv.file.clone(),
                host: host.map(|(h, v)| (h.to_vec(), v.clone())),
                project,
                strict,
            },
            errors: Vec::new(),
            warnings: Vec::new(),
            used: BTreeMap::new(),
            looked_up: BTreeSet::new(),
            uses: BTreeMap::new(),
            files: BTreeSet::new(),
            cache: HashMap::new(),
            stack: None,
            profiles,
            interpolation_failed: false,
        };
        pass.read();
        pass
    }

    fn finish(mut self, dotenv: DotEnv) -> StackOutcome {
        let mut errors = dotenv.errors;
        errors.append(&mut self.errors);
        let mut warnings = dotenv.warnings;
        warnings.append(&mut self.warnings);
        if let Some(file) = &dotenv.file {
            self.files.insert(file.clone());
        }
        if let Some(stack) = self.stack.as_mut() {
            let mut variables = dotenv.used;
            for (name, used) in std::mem::take(&mut self.used) {
                variables.entry(name).or_insert(used);
            }
            stack.resolution = Resolution {
                files: self.files.iter().cloned().collect(),
                variables,
                profiles: self.profiles.clone(),
                per_host: BTreeMap::new(),
                config_variants: BTreeMap::new(),
            };
        }
        StackOutcome {
            stack: self.stack,
            errors,
            warnings,
        }
    }

    /// A variable's value and where it came from, recording the use.
    fn lookup(&mut self, name: &str, at: Location) -> Option<String> {
        self.looked_up.insert(name.to_string());
        self.uses
            .entry((at.file.clone(), at.line, at.column))
            .or_default()
            .insert(name.to_string());
        let layers = &self.layers;
        let found = if let Some(v) = layers.environment.get(name) {
            Some((v.clone(), VariableOrigin::Environment))
        } else if let Some(v) = layers.dotenv.get(name) {
            Some((
                v.clone(),
                VariableOrigin::DotEnv(layers.dotenv_file.clone().unwrap_or_default()),
            ))
        } else if let Some((hosts, v)) = layers
            .host
            .as_ref()
            .and_then(|(h, vars)| vars.get(name).map(|v| (h, v)))
        {
            Some((v.clone(), VariableOrigin::Host(hosts.clone())))
        } else {
            layers
                .project
                .get(name)
                .map(|v| (v.clone(), VariableOrigin::Project))
        };
        let (value, origin) = found?;
        self.used.entry(name.to_string()).or_insert(UsedVariable {
            value: value.clone(),
            origin,
            location: at,
        });
        Some(value)
    }

    fn read(&mut self) {
        let input = self.input;
        let mut cx = Cx::new(input.file, true);
        let Some(mut tree) = self.load_file(input.file, 0) else {
            return;
        };
        if let Some(version) = tree.get("version") {
            self.warnings.push(Diagnostic {
                location: cx.at(version),
                message: "`version` is obsolete and ignored".to_string(),
                help: Some(
                    "remove it: Compose files have no version since the Compose Specification"
                        .to_string(),
                ),
            });
        }
        self.includes(
            &mut tree,
            input.file,
            0,
            &mut vec![input.file.to_path_buf()],
        );
        self.extends(&mut tree, input.file);
        self.profiles(&mut tree);
        self.env_files(&mut tree);
        self.bare_environment(&mut tree);
        if self.interpolation_failed {
            return;
        }
        let config_env = self.config_environment(&tree);
        let source = StackSource {
            name: input.name,
            file: input.file,
            root: input.root,
            config_env: &config_env,
        };
        let mut stack = compose::read_stack(&mut cx, &tree, &source, input.inventory);
        self.attach_variables(&mut stack, &tree);
        self.errors.append(&mut cx.diags);
        self.warnings.append(&mut cx.warnings);
        self.stack = Some(stack);
    }

    /// Records on each service's container the variables its definition
    /// used (after `include`, `extends` and profiles: nodes keep the place
    /// they were written, so uses are found wherever they came from). Keys
    /// that only steer the rollout or placement are left out, so changing
    /// `replicas: ${N}` adds a replica instead of replacing every one.
    fn attach_variables(&self, stack: &mut Stack, tree: &Node) {
        let Some(services) = tree.get("services") else {
            return;
        };
        for service in &mut stack.services {
            let Some(node) = services.get(&service.name) else {
                continue;
            };
            let mut names = BTreeSet::new();
            self.collect_uses(node, self.input.file, true, &mut names);
            service.container.variables = names
                .into_iter()
                .map(|name| {
                    let value = self
                        .used
                        .get(&name)
                        .map(|u| u.value.clone())
                        .unwrap_or_default();
                    let shown = if super::model::looks_secret(&name) {
                        use sha2::Digest as _;
                        format!(
                            "sha256:{}",
                            hex::encode(&sha2::Sha256::digest(value.as_bytes())[..8])
                        )
                    } else {
                        value
                    };
                    (name, shown)
                })
                .collect();
        }
    }

    fn collect_uses(&self, node: &Node, stack_file: &Path, top: bool, out: &mut BTreeSet<String>) {
        /// Service keys that do not go into the container.
        const NOT_IN_CONTAINER: &[&str] =
            &["depends_on", "profiles", "scale", "x-berth", "extends"];
        /// `deploy` keys that do not go into the container.
        const DEPLOY_ROLLOUT: &[&str] = &[
            "mode",
            "replicas",
            "placement",
            "update_config",
            "rollback_config",
            "endpoint_mode",
        ];
        let file = node.file.as_deref().unwrap_or(stack_file).to_path_buf();
        if let Some(names) = self.uses.get(&(file, node.line, node.column)) {
            out.extend(names.iter().cloned());
        }
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .for_each(|i| self.collect_uses(i, stack_file, false, out)),
            Kind::Map(entries) => {
                for (key, value) in entries {
                    let key = key.key_text().unwrap_or_default();
                    if top && NOT_IN_CONTAINER.contains(&key) {
                        continue;
                    }
                    if top && key == "deploy" {
                        if let Kind::Map(deploy) = &value.kind {
                            for (k, v) in deploy {
                                if !DEPLOY_ROLLOUT.contains(&k.key_text().unwrap_or_default()) {
                                    self.collect_uses(v, stack_file, false, out);
                                }
                            }
                        }
                        continue;
                    }
                    self.collect_uses(value, stack_file, false, out);
                }
            }
            _ => {}
        }
    }

    /// Reads, parses and interpolates a Compose file (cached). Nodes of any
    /// file but the stack file carry their file.
    fn load_file(&mut self, file: &Path, depth: usize) -> Option<Node> {
        if let Some(cached) = self.cache.get(file) {
            return cached.clone();
        }
        let mut cx = Cx::new(file, true);
        let loaded = self.parse_file(file, &mut cx, depth);
        self.errors.append(&mut cx.diags);
        self.cache.insert(file.to_path_buf(), loaded.clone());
        loaded
    }

    fn parse_file(&mut self, file: &Path, cx: &mut Cx, _depth: usize) -> Option<Node> {
        let is_stack_file = file == self.input.file;
        let text = if is_stack_file {
            match std::fs::read_to_string(self.input.root.join(file)) {
                Ok(text) => text,
                Err(e) => {
                    cx.diags.push(super::diagnostic::io_problem(file, &e));
                    return None;
                }
            }
        } else {
            self.files.insert(file.to_path_buf());
            read_in_repo(
                self.input.root,
                file,
                &mut cx.diags,
                Some(&Location {
                    file: file.to_path_buf(),
                    line: 0,
                    column: 0,
                }),
            )?
        };
        let mut tree = match yaml::parse(&text) {
            Ok(parsed) => {
                for problem in parsed.problems {
                    cx.yaml_problem(problem);
                }
                parsed.root
            }
            Err(problem) => {
                cx.yaml_problem(problem);
                return None;
            }
        };
        if !is_stack_file {
            tree.set_file(&Arc::from(file));
        }
        let file_loc = file.to_path_buf();
        let problems = {
            let mut lookup = |name: &str, line: usize, column: usize| {
                self.lookup(
                    name,
                    Location {
                        file: file_loc.clone(),
                        line,
                        column,
                    },
                )
            };
            interpolate_tree(&mut tree, &mut lookup)
        };
        let dotenv_hint = self.layers.dotenv_file.clone().unwrap_or_else(|| {
            self.input
                .file
                .parent()
                .unwrap_or(Path::new(""))
                .join(".env")
        });
        for problem in problems {
            let location = Location {
                file: file.to_path_buf(),
                line: problem.line,
                column: problem.column,
            };
            if matches!(problem.kind, TreeProblemKind::Template(_)) || self.layers.strict {
                self.interpolation_failed = true;
            }
            match problem.kind {
                TreeProblemKind::Template(e) => self.errors.push(Diagnostic {
                    location,
                    message: format!("{} in `{}`", template_message(&e), problem.path),
                    help: Some(match e {
                        super::interpolate::TemplateError::Invalid(_) => "write `${NAME}`, `${NAME:-default}`, `${NAME:?message}` or `${NAME:+alternative}`; `$$` is a literal `$`".to_string(),
                        super::interpolate::TemplateError::Required { name, .. } => format!(
                            "set `{name}` in `{}`, in `variables:` of `berth.yaml`, or in the environment berth runs in",
                            dotenv_hint.display()
                        ),
                    }),
                }),
                TreeProblemKind::Unset(name) => {
                    let diag = Diagnostic {
                        location,
                        message: format!(
                            "variable `{name}` is not set: `{}` uses an empty string",
                            problem.path
                        ),
                        help: Some(format!(
                            "set `{name}` in `{}` or in `variables:` of `berth.yaml`, or write `${{{name}:-default}}`",
                            dotenv_hint.display()
                        )),
                    };
                    if self.layers.strict {
                        self.errors.push(Diagnostic {
                            help: Some(format!(
                                "{} (`settings.strict_variables` is on)",
                                diag.help.clone().unwrap_or_default()
                            )),
                            ..diag
                        });
                    } else {
                        self.warnings.push(diag);
                    }
                }
            }
        }
        self.normalise_env_files(&mut tree, file);
        if !is_stack_file {
            self.rebase_files(&mut tree, file);
        }
        Some(tree)
    }

    fn error(&mut self, node: &Node, default_file: &Path, message: String, help: &str) {
        let file = node
            .file
            .as_deref()
            .map_or_else(|| default_file.to_path_buf(), Path::to_path_buf);
        self.errors.push(Diagnostic {
            location: Location {
                file,
                line: node.line,
                column: node.column,
            },
            message,
            help: Some(help.to_string()),
        });
    }

    /// `env_file` of every service as a list of `{path, required}` with
    /// repo-relative paths, so later merges need not know where it was written.
    fn normalise_env_files(&mut self, tree: &mut Node, file: &Path) {
        let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let Some(Node {
            kind: Kind::Map(services),
            ..
        }) = tree.get_mut("services")
        else {
            return;
        };
        let mut problems = Vec::new();
        for (name, service) in services.iter_mut() {
            let name = name.key_text().unwrap_or_default().to_string();
            let Some(env_files) = service.get_mut("env_file") else {
                continue;
            };
            let items: Vec<Node> = match &env_files.kind {
                Kind::Seq(items) => items.clone(),
                Kind::Null => Vec::new(),
                _ => vec![env_files.clone()],
            };
            let mut out = Vec::new();
            for item in items {
                let (path_node, required) = match &item.kind {
                    Kind::Scalar { .. } => (item.clone(), true),
                    Kind::Map(_) => {
                        let required = match item.get("required") {
                            None => true,
                            Some(r) => match r.as_bool() {
                                Some(b) => b,
                                None => {
                                    problems.push((r.clone(), format!("`required` of an `env_file` of service `{name}` must be `true` or `false`, found {}", r.describe()), "write `required: false` for a file that may be missing"));
                                    true
                                }
                            },
                        };
                        if let Kind::Map(entries) = &item.kind {
                            for (k, _) in entries {
                                let key = k.key_text().unwrap_or_default();
                                if !matches!(key, "path" | "required" | "format") {
                                    problems.push((k.clone(), format!("unknown key `{key}` in an `env_file` of service `{name}`"), "supported keys: path, required, format"));
                                }
                            }
                        }
                        if let Some(format) = item.get("format").filter(|f| !f.is_null()) {
                            problems.push((
                                format.clone(),
                                format!(
                                    "unsupported `format` {} of an `env_file` of service `{name}`",
                                    format.describe()
                                ),
                                "berth reads env files in dotenv syntax: remove `format`",
                            ));
                        }
                        match item.get("path") {
                            Some(p) => (p.clone(), required),
                            None => {
                                problems.push((
                                    item.clone(),
                                    format!("an `env_file` of service `{name}` has no `path`"),
                                    "write `- path: ./app.env`",
                                ));
                                continue;
                            }
                        }
                    }
                    _ => {
                        problems.push((
                            item.clone(),
                            format!(
                                "an `env_file` of service `{name}` must be a path, found {}",
                                item.describe()
                            ),
                            "write `env_file: ./app.env` or a list of them",
                        ));
                        continue;
                    }
                };
                let Some(path) = path_node.scalar() else {
                    problems.push((path_node.clone(), format!("`path` of an `env_file` of service `{name}` must be a string, found {}", path_node.describe()), "write the file's path relative to the Compose file"));
                    continue;
                };
                let Some(relative) = repo_relative(&dir, path) else {
                    problems.push((path_node.clone(), format!("`env_file` `{path}` of service `{name}` is outside the repo"), "berth only reads files in the repo: keep env files next to the stack and use a relative path"));
                    continue;
                };
                let at = &path_node;
                let entry = Node::synthetic(
                    Kind::Map(vec![
                        (
                            Node::string("path", at),
                            Node::string(relative.to_string_lossy(), at),
                        ),
                        (
                            Node::string("required", at),
                            Node::synthetic(
                                Kind::Scalar {
                                    text: required.to_string(),
                                    plain: true,
                                },
                                at,
                            ),
                        ),
                    ]),
                    at,
                );
                out.push(entry);
            }
            let at = env_files.clone();
            *env_files = Node::synthetic(Kind::Seq(out), &at);
        }
        for (node, message, help) in problems {
            self.error(&node, file, message, help);
        }
    }

    /// The relative paths of an included or extended file made relative to
    /// the stack's directory, as the Compose Specification resolves them:
    /// from the directory of the file that declares them. Covers
    /// `secrets.<name>.file`, `configs.<name>.file` and the services'
    /// relative bind mounts (short `./src:/dst` and long `type: bind`),
    /// which berth reads from the repo as configs. (`env_file` is made
    /// repo-relative for every file by [`Self::normalise_env_files`].)
    fn rebase_files(&mut self, tree: &mut Node, file: &Path) {
        let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let stack_dir = self
            .input
            .file
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        if dir == stack_dir {
            return;
        }
        // Outside-the-repo paths are left as written, for `compose` to report.
        let rebase = |node: &mut Node| {
            let Some(path) = node.scalar() else { return };
            if let Some(rebased) = rebased_path(&dir, &stack_dir, path) {
                let at = node.clone();
                *node = Node::string(rebased, &at);
            }
        };
        for section in ["secrets", "configs"] {
            let Some(Node {
                kind: Kind::Map(entries),
                ..
            }) = tree.get_mut(section)
            else {
                continue;
            };
            for (_, entry) in entries.iter_mut() {
                if let Some(path_node) = entry.get_mut("file") {
                    rebase(path_node);
                }
            }
        }
        let Some(Node {
            kind: Kind::Map(services),
            ..
        }) = tree.get_mut("services")
        else {
            return;
        };
        for (_, service) in services.iter_mut() {
            let Some(Node {
                kind: Kind::Seq(volumes),
                ..
            }) = service.get_mut("volumes")
            else {
                continue;
            };
            for volume in volumes.iter_mut() {
                match &volume.kind {
                    Kind::Scalar { .. } => {
                        let Some(text) = volume.scalar().map(str::to_string) else {
                            continue;
                        };
                        if !text.starts_with('.') {
                            continue;
                        }
                        let (source, rest) = text.split_once(':').unwrap_or((&text, ""));
                        if let Some(rebased) = rebased_path(&dir, &stack_dir, source) {
                            let text = if rest.is_empty() {
                                rebased
                            } else {
                                format!("{rebased}:{rest}")
                            };
                            let at = volume.clone();
                            *volume = Node::string(text, &at);
                        }
                    }
                    Kind::Map(_) => {
                        let bind = volume.get("type").and_then(Node::scalar) == Some("bind");
                        let Some(source) = volume.get_mut("source") else {
                            continue;
                        };
                        let relative = source.scalar().is_some_and(|s| {
                            s.starts_with('.') || (bind && !s.starts_with(['/', '~']))
                        });
                        if relative {
                            rebase(source);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Merges `include`d files into `tree` (their services, networks,
    /// volumes, secrets and configs); a name defined twice is an error.
    fn includes(&mut self, tree: &mut Node, file: &Path, depth: usize, chain: &mut Vec<PathBuf>) {
        let Some((key, list)) = tree.remove("include") else {
            return;
        };
        let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let items: Vec<Node> = match &list.kind {
            Kind::Seq(items) => items.clone(),
            Kind::Null => Vec::new(),
            _ => {
                self.error(
                    &list,
                    file,
                    format!("`include` must be a list, found {}", list.describe()),
                    "write `include: [path/to/other.yaml]`",
                );
                return;
            }
        };
        let _ = key;
        for item in items {
            let paths: Vec<Node> = match &item.kind {
                Kind::Scalar { .. } => vec![item.clone()],
                Kind::Map(entries) => {
                    for (k, _) in entries {
                        match k.key_text().unwrap_or_default() {
                            "path" => {}
                            "project_directory" | "env_file" => self.error(
                                k,
                                file,
                                format!("unsupported key `{}` in `include`", k.key_text().unwrap_or_default()),
                                "berth reads included files relative to themselves, with the stack's `.env`: remove it",
                            ),
                            other => self.error(k, file, format!("unknown key `{other}` in `include`"), "supported keys: path"),
                        }
                    }
                    match item.get("path") {
                        Some(Node {
                            kind: Kind::Seq(p), ..
                        }) => p.clone(),
                        Some(p) => vec![p.clone()],
                        None => {
                            self.error(
                                &item,
                                file,
                                "an `include` entry has no `path`".to_string(),
                                "write `- path: ../common/db.yaml`",
                            );
                            continue;
                        }
                    }
                }
                _ => {
                    self.error(
                        &item,
                        file,
                        format!(
                            "an `include` entry must be a path, found {}",
                            item.describe()
                        ),
                        "write `include: [path/to/other.yaml]`",
                    );
                    continue;
                }
            };
            for path_node in paths {
                let Some(path) = path_node.scalar() else {
                    self.error(
                        &path_node,
                        file,
                        format!(
                            "an included path must be a string, found {}",
                            path_node.describe()
                        ),
                        "write the path relative to this file",
                    );
                    continue;
                };
                let Some(target) = repo_relative(&dir, path) else {
                    self.error(&path_node, file, format!("included file `{path}` is outside the repo"), "berth only reads files in the repo: use a relative path that stays inside it");
                    continue;
                };
                if chain.contains(&target) || depth >= MAX_DEPTH {
                    self.error(
                        &path_node,
                        file,
                        format!(
                            "`include` of `{}` loops back to a file that includes it",
                            target.display()
                        ),
                        "remove the circular `include`",
                    );
                    continue;
                }
                if !self.input.root.join(&target).is_file() {
                    self.error(
                        &path_node,
                        file,
                        format!("included file `{}` does not exist", target.display()),
                        "fix the path (relative to the file that includes it)",
                    );
                    continue;
                }
                let Some(mut included) = self.load_file(&target, depth + 1) else {
                    continue;
                };
                chain.push(target.clone());
                self.includes(&mut included, &target, depth + 1, chain);
                chain.pop();
                self.extends(&mut included, &target);
                for section in ["services", "networks", "volumes", "secrets", "configs"] {
                    self.merge_section(tree, &included, section, file);
                }
            }
        }
    }

    fn merge_section(&mut self, tree: &mut Node, included: &Node, section: &str, file: &Path) {
        let Some(Node {
            kind: Kind::Map(theirs),
            ..
        }) = included.get(section)
        else {
            return;
        };
        if tree.get(section).is_none_or(Node::is_null) {
            let anchor = included
                .get(section)
                .cloned()
                .unwrap_or_else(|| tree.clone());
            tree.set(
                Node::string(section, &anchor),
                Node::synthetic(Kind::Map(Vec::new()), &anchor),
            );
        }
        let mut conflicts = Vec::new();
        if let Some(Node {
            kind: Kind::Map(ours),
            ..
        }) = tree.get_mut(section)
        {
            for (k, v) in theirs {
                match ours.iter().find(|(o, _)| o.key_text() == k.key_text()) {
                    Some((first, _)) => conflicts.push((k.clone(), first.clone())),
                    None => ours.push((k.clone(), v.clone())),
                }
            }
        }
        let what = section.trim_end_matches('s');
        for (k, first) in conflicts {
            let first_at = Location {
                file: first
                    .file
                    .as_deref()
                    .map_or_else(|| file.to_path_buf(), Path::to_path_buf),
                line: first.line,
                column: first.column,
            };
            self.error(
                &k,
                file,
                format!(
                    "{what} `{}` of an included file is already defined at `{first_at}`",
                    k.key_text().unwrap_or_default()
                ),
                "rename one of them: Compose refuses an `include` that redefines a name",
            );
        }
    }

    /// Resolves `extends` in every service of `tree` (read from `file`).
    fn extends(&mut self, tree: &mut Node, file: &Path) {
        let snapshot = tree.clone();
        let Some(Node {
            kind: Kind::Map(services),
            ..
        }) = tree.get_mut("services")
        else {
            return;
        };
        let names: Vec<String> = services
            .iter()
            .filter(|(_, s)| s.get("extends").is_some())
            .filter_map(|(k, _)| k.key_text().map(str::to_string))
            .collect();
        let mut resolved = Vec::new();
        for name in names {
            let mut chain = Vec::new();
            if let Some(node) = self.resolve_service(&snapshot, file, &name, &mut chain) {
                resolved.push((name, node));
            }
        }
        if let Some(Node {
            kind: Kind::Map(services),
            ..
        }) = tree.get_mut("services")
        {
            for (name, node) in resolved {
                if let Some(entry) = services
                    .iter_mut()
                    .find(|(k, _)| k.key_text() == Some(&name))
                {
                    entry.1 = node;
                }
            }
        }
    }

    /// Service `name` of `tree` (from `file`) with its `extends` applied.
    fn resolve_service(
        &mut self,
        tree: &Node,
        file: &Path,
        name: &str,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Option<Node> {
        let mut service = tree.get("services")?.get(name)?.clone();
        let Some((key, extends)) = service.remove("extends") else {
            return Some(service);
        };
        let (base_name, base_file) = match &extends.kind {
            Kind::Scalar { text, .. } => (text.clone(), None),
            Kind::Map(entries) => {
                for (k, _) in entries {
                    let text = k.key_text().unwrap_or_default();
                    if !matches!(text, "service" | "file") {
                        self.error(
                            k,
                            file,
                            format!("unknown key `{text}` in `extends` of service `{name}`"),
                            "supported keys: service, file",
                        );
                    }
                }
                let Some(base) = extends.get("service").and_then(Node::scalar) else {
                    self.error(
                        &extends,
                        file,
                        format!("`extends` of service `{name}` has no `service`"),
                        "name the service to extend: `extends: {service: base}`",
                    );
                    return None;
                };
                (base.to_string(), extends.get("file").cloned())
            }
            _ => {
                self.error(
                    &key,
                    file,
                    format!(
                        "`extends` of service `{name}` must name a service, found {}",
                        extends.describe()
                    ),
                    "write `extends: base` or `extends: {file: common.yaml, service: base}`",
                );
                return None;
            }
        };
        let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let (base_tree, base_path) = match &base_file {
            None => (tree.clone(), file.to_path_buf()),
            Some(path_node) => {
                let Some(path) = path_node.scalar() else {
                    self.error(
                        path_node,
                        file,
                        format!("`extends.file` of service `{name}` must be a string"),
                        "write the path relative to this file",
                    );
                    return None;
                };
                let Some(target) = repo_relative(&dir, path) else {
                    self.error(path_node, file, format!("`extends.file` `{path}` of service `{name}` is outside the repo"), "berth only reads files in the repo: use a relative path that stays inside it");
                    return None;
                };
                if !self.input.root.join(&target).is_file() {
                    self.error(
                        path_node,
                        file,
                        format!(
                            "`extends.file` `{}` of service `{name}` does not exist",
                            target.display()
                        ),
                        "fix the path (relative to the file that says `extends`)",
                    );
                    return None;
                }
                (self.load_file(&target, chain.len() + 1)?, target)
            }
        };
        let link = (base_path.clone(), base_name.clone());
        if chain.contains(&link) || chain.len() >= MAX_DEPTH {
            self.error(
                &extends,
                file,
                format!("`extends` of service `{name}` loops back to itself"),
                "remove the circular `extends`",
            );
            return None;
        }
        if base_tree
            .get("services")
            .and_then(|s| s.get(&base_name))
            .is_none()
        {
            self.error(
                &extends,
                file,
                format!(
                    "service `{name}` extends `{base_name}`, which is not a service of `{}`",
                    base_path.display()
                ),
                "name a service defined in that file",
            );
            return None;
        }
        chain.push(link);
        let base = self.resolve_service(&base_tree, &base_path, &base_name, chain);
        chain.pop();
        let base = base?;
        Some(merge_service(base, service))
    }

    /// Drops services whose `profiles` are all inactive; a remaining service
    /// that needs one of them is an error.
    fn profiles(&mut self, tree: &mut Node) {
        let active = self.profiles.clone();
        let file = self.input.file.to_path_buf();
        let Some(Node {
            kind: Kind::Map(services),
            ..
        }) = tree.get_mut("services")
        else {
            return;
        };
        let mut disabled: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut problems = Vec::new();
        services.retain_mut(|(key, service)| {
            let Some((_, profiles)) = service.remove("profiles") else {
                return true;
            };
            let names: Vec<String> = match &profiles.kind {
                Kind::Seq(items) => items
                    .iter()
                    .filter_map(|i| i.scalar().map(str::to_string))
                    .collect(),
                Kind::Null => Vec::new(),
                _ => {
                    problems.push((
                        profiles.clone(),
                        format!("`profiles` must be a list, found {}", profiles.describe()),
                        "write `profiles: [debug]`".to_string(),
                    ));
                    return true;
                }
            };
            if names.is_empty() || names.iter().any(|n| active.contains(n)) {
                return true;
            }
            disabled.insert(key.key_text().unwrap_or_default().to_string(), names);
            false
        });
        for (key, service) in services.iter_mut() {
            let name = key.key_text().unwrap_or_default().to_string();
            let Some(deps) = service.get_mut("depends_on") else {
                continue;
            };
            match &mut deps.kind {
                Kind::Seq(items) => {
                    // Reported here, and dropped so it is not also "not a service".
                    items.retain(|item| {
                        let Some(profiles) = item.scalar().and_then(|d| disabled.get(d)) else {
                            return true;
                        };
                        problems.push((
                            item.clone(),
                            format!(
                                "service `{name}` depends on `{}`, which only runs with profile {}",
                                item.scalar().unwrap_or_default(),
                                quoted(profiles)
                            ),
                            profile_help(profiles),
                        ));
                        false
                    });
                }
                Kind::Map(entries) => {
                    entries.retain(|(dep, body)| {
                        let Some(profiles) = dep.key_text().and_then(|d| disabled.get(d)) else {
                            return true;
                        };
                        if body.get("required").and_then(Node::as_bool) == Some(false) {
                            return false;
                        }
                        problems.push((
                            dep.clone(),
                            format!(
                                "service `{name}` depends on `{}`, which only runs with profile {}",
                                dep.key_text().unwrap_or_default(),
                                quoted(profiles)
                            ),
                            profile_help(profiles),
                        ));
                        false
                    });
                }
                _ => {}
            }
        }
        for (node, message, help) in problems {
            self.error(&node, &file, message, &help);
        }
    }

    /// Reads each service's `env_file`s into its `environment`, where the
    /// service's own `environment` wins, as in Compose.
    fn env_files(&mut self, tree: &mut Node) {
        let root = self.input.root.to_path_buf();
        let Some(Node {
            kind: Kind::Map(services),
            ..
        }) = tree.get_mut("services")
        else {
            return;
        };
        let mut jobs = Vec::new();
        for (index, (_, service)) in services.iter_mut().enumerate() {
            if let Some((_, files)) = service.remove("env_file") {
                jobs.push((index, files));
            }
        }
        let mut results: Vec<(usize, Vec<(Node, Node)>)> = Vec::new();
        for (index, files) in jobs {
            let mut values: Vec<(Node, Node)> = Vec::new();
            let Kind::Seq(items) = &files.kind else {
                continue;
            };
            for item in items {
                let (Some(path_node), required) = (
                    item.get("path"),
                    item.get("required").and_then(Node::as_bool).unwrap_or(true),
                ) else {
                    continue;
                };
                let path = PathBuf::from(path_node.scalar().unwrap_or_default());
                let at = Location {
                    file: path_node
                        .file
                        .as_deref()
                        .map_or_else(|| self.input.file.to_path_buf(), Path::to_path_buf),
                    line: path_node.line,
                    column: path_node.column,
                };
                if !root.join(&path).is_file() && !required {
                    continue;
                }
                self.files.insert(path.clone());
                let Some(text) = read_in_repo(&root, &path, &mut self.errors, Some(&at)) else {
                    continue;
                };
                let file_arc: Arc<Path> = Arc::from(path.as_path());
                let mut used_here = Vec::new();
                let (entries, problems) = {
                    let mut lookup = |name: &str| {
                        let value = self.lookup(
                            name,
                            Location {
                                file: path.clone(),
                                line: 0,
                                column: 0,
                            },
                        );
                        used_here.push(name.to_string());
                        value
                    };
                    dotenv::parse(&text, &mut lookup)
                };
                for problem in problems {
                    let diag = Diagnostic {
                        location: Location { file: path.clone(), line: problem.line, column: problem.column },
                        message: problem.message,
                        help: problem.unset.as_ref().map(|n| format!("set `{n}` in the stack's `.env` or in `variables:` of `berth.yaml`, or write `${{{n}:-default}}`")),
                    };
                    if problem.unset.is_some() && !self.layers.strict {
                        self.warnings.push(diag);
                    } else {
                        self.errors.push(diag);
                    }
                }
                for entry in entries {
                    let mut at = Node::synthetic(Kind::Null, path_node);
                    at.file = Some(file_arc.clone());
                    at.line = entry.line;
                    at.column = 1;
                    values.retain(|(k, _)| k.key_text() != Some(entry.key.as_str()));
                    values.push((Node::string(entry.key, &at), Node::string(entry.value, &at)));
                }
            }
            results.push((index, values));
        }
        for (index, values) in results {
            let service = &mut services[index].1;
            let own = environment_entries(service.get("environment"));
            let mut merged = values;
            for (k, v) in own {
                merged.retain(|(m, _)| m.key_text() != k.key_text());
                merged.push((k, v));
            }
            let at = service.clone();
            service.set(
                Node::string("environment", &at),
                Node::synthetic(Kind::Map(merged), service.get("environment").unwrap_or(&at)),
            );
        }
    }

    /// `environment: [HOME]` or `{HOME: }` takes the value from the
    /// variables, as Compose takes it from its environment.
    /// The values of the variables top-level configs read with
    /// `environment: <VAR>`, looked up like any other variable (so the
    /// plan names one that came from the runner's environment).
    fn config_environment(&mut self, tree: &Node) -> BTreeMap<String, String> {
        let file = self.input.file.to_path_buf();
        let mut out = BTreeMap::new();
        let Some(Node {
            kind: Kind::Map(configs),
            ..
        }) = tree.get("configs")
        else {
            return out;
        };
        for (_, config) in configs {
            let Some(var) = config.get("environment") else {
                continue;
            };
            let Some(name) = var.scalar() else { continue };
            let at = Location {
                file: var
                    .file
                    .as_deref()
                    .map_or_else(|| file.clone(), Path::to_path_buf),
                line: var.line,
                column: var.column,
            };
            if let Some(value) = self.lookup(name, at) {
                out.insert(name.to_string(), value);
            }
        }
        out
    }

    fn bare_environment(&mut self, tree: &mut Node) {
        let file = self.input.file.to_path_buf();
        let Some(Node {
            kind: Kind::Map(services),
            ..
        }) = tree.get_mut("services")
        else {
            return;
        };
        let mut fills: Vec<(usize, usize, String, Location)> = Vec::new();
        for (si, (_, service)) in services.iter().enumerate() {
            match service.get("environment").map(|e| &e.kind) {
                Some(Kind::Map(entries)) => {
                    for (ei, (k, v)) in entries.iter().enumerate() {
                        if v.is_null() {
                            let at = Location {
                                file: k
                                    .file
                                    .as_deref()
                                    .map_or_else(|| file.clone(), Path::to_path_buf),
                                line: k.line,
                                column: k.column,
                            };
                            fills.push((si, ei, k.key_text().unwrap_or_default().to_string(), at));
                        }
                    }
                }
                Some(Kind::Seq(items)) => {
                    for (ei, item) in items.iter().enumerate() {
                        if let Some(name) = item.scalar().filter(|t| !t.contains('=')) {
                            let at = Location {
                                file: item
                                    .file
                                    .as_deref()
                                    .map_or_else(|| file.clone(), Path::to_path_buf),
                                line: item.line,
                                column: item.column,
                            };
                            fills.push((si, ei, name.to_string(), at));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut values = Vec::new();
        for (si, ei, name, at) in fills {
            if let Some(value) = self.lookup(&name, at) {
                values.push((si, ei, name, value));
            }
        }
        for (si, ei, name, value) in values {
            let Some(env) = services[si].1.get_mut("environment") else {
                continue;
            };
            match &mut env.kind {
                Kind::Map(entries) => {
                    let key = entries[ei].0.clone();
                    entries[ei].1 = Node::string(value, &key);
                }
                Kind::Seq(items) => {
                    let at = items[ei].clone();
                    items[ei] = Node::string(format!("{name}={value}"), &at);
                }
                _ => {}
            }
        }
    }
}

/// `path`, written in a file of directory `dir`, as a path relative to
/// `stack_dir` (both repo-relative): `./x` below it, `../x` beside it.
/// None when it leaves the repo.
pub(super) fn rebased_path(dir: &Path, stack_dir: &Path, path: &str) -> Option<String> {
    let target = repo_relative(dir, path)?;
    let target: Vec<_> = target.components().collect();
    let base: Vec<_> = stack_dir.components().collect();
    let common = target.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    for part in &target[common..] {
        out.push(part);
    }
    let out = out.to_string_lossy().into_owned();
    Some(if out.starts_with("..") {
        out
    } else if out.is_empty() {
        ".".to_string()
    } else {
        format!("./{out}")
    })
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn profile_help(profiles: &[String]) -> String {
    format!(
        "enable it with `--profile {}` or `stacks.<stack>.profiles` in `berth.yaml`, or mark the dependency `required: false`",
        profiles.first().map(String::as_str).unwrap_or_default()
    )
}

/// `environment` (mapping or `KEY=VALUE` list) as mapping entries.
fn environment_entries(node: Option<&Node>) -> Vec<(Node, Node)> {
    match node.map(|n| &n.kind) {
        Some(Kind::Map(entries)) => entries.clone(),
        Some(Kind::Seq(items)) => items
            .iter()
            .filter_map(|item| {
                let text = item.scalar()?;
                Some(match text.split_once('=') {
                    Some((k, v)) => (Node::string(k, item), Node::string(v, item)),
                    None => (Node::string(text, item), Node::synthetic(Kind::Null, item)),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Keys whose value replaces the base's instead of merging with it.
const OVERRIDE_KEYS: &[&str] = &["command", "entrypoint"];
/// Lists merged as mappings (`KEY=VALUE` items).
const MAPPING_LISTS: &[&str] = &["environment", "labels", "annotations", "sysctls"];

/// Compose's merge of a service over the one it `extends`: mappings merge,
/// the local scalar wins, lists append (with `volumes` and `secrets` unique
/// by target, `ports` by their text), `command`/`entrypoint`/`healthcheck.test`
/// are replaced.
pub(crate) fn merge_service(base: Node, local: Node) -> Node {
    merge_at(base, local, "")
}

fn merge_at(base: Node, local: Node, key: &str) -> Node {
    if OVERRIDE_KEYS.contains(&key) || key == "test" {
        return local;
    }
    if MAPPING_LISTS.contains(&key) {
        if let (Some(b), Some(l)) = (as_pairs(&base), as_pairs(&local)) {
            let mut merged = b;
            for (k, v) in l {
                merged.retain(|(m, _)| m.key_text() != k.key_text());
                merged.push((k, v));
            }
            return Node::synthetic(Kind::Map(merged), &local);
        }
    }
    match (base.kind, local.kind) {
        (Kind::Map(b), Kind::Map(l)) => {
            let mut merged = b;
            for (k, v) in l {
                let name = k.key_text().unwrap_or_default().to_string();
                match merged.iter().position(|(m, _)| m.key_text() == Some(&name)) {
                    Some(i) => {
                        let (bk, bv) = merged.remove(i);
                        let _ = bk;
                        merged.insert(i, (k, merge_at(bv, v, &name)));
                    }
                    None => merged.push((k, v)),
                }
            }
            Node {
                kind: Kind::Map(merged),
                line: local.line,
                column: local.column,
                file: local.file,
            }
        }
        (Kind::Seq(b), Kind::Seq(l)) => {
            let unique = |n: &Node| -> Option<String> {
                match key {
                    "volumes" => n
                        .get("target")
                        .and_then(Node::scalar)
                        .map(str::to_string)
                        .or_else(|| {
                            n.scalar()
                                .map(|t| t.split(':').nth(1).unwrap_or(t).to_string())
                        }),
                    "secrets" | "configs" => n
                        .get("target")
                        .or_else(|| n.get("source"))
                        .and_then(Node::scalar)
                        .or_else(|| n.scalar())
                        .map(str::to_string),
                    _ => n.scalar().map(str::to_string),
                }
            };
            let mut merged = b;
            for item in l {
                if let Some(id) = unique(&item) {
                    merged.retain(|m| unique(m).as_deref() != Some(id.as_str()));
                }
                merged.push(item);
            }
            Node {
                kind: Kind::Seq(merged),
                line: local.line,
                column: local.column,
                file: local.file,
            }
        }
        (_, kind) => Node {
            kind,
            line: local.line,
            column: local.column,
            file: local.file,
        },
    }
}

/// A mapping or `KEY=VALUE` list as mapping entries; None for other shapes.
fn as_pairs(node: &Node) -> Option<Vec<(Node, Node)>> {
    match &node.kind {
        Kind::Map(_) | Kind::Seq(_) => Some(environment_entries(Some(node))),
        _ => None,
    }
}
