//! One stack's Compose file: the top level (`services`, `networks`,
//! `volumes`, `secrets`) and the checks across services (`depends_on`
//! targets and cycles). Service keys are read in `service.rs`, `deploy:` and
//! `x-berth` in `deploy.rs`.
//!
//! Engine-side names follow Compose: a declared network or volume `data` of
//! stack `web` is `web_data` unless it sets `name:` or is `external`.
//! `name:` at the top level may only repeat the stack's name (the directory
//! decides it); `version:` is obsolete in Compose and ignored; other `x-*`
//! keys are ignored at the top level, where Compose files keep anchors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::decls::Decls;
use super::model::{
    DependsCondition, Inventory, IpamPool, IpamSpec, Location, NetworkSpec, SecretSpec, Stack,
    VolumeSpec,
};
use super::read::{read_labels, Cx, Fields};
use super::service::{self, ServiceDraft};
use super::values::is_name;
use super::yaml::Node;

/// Where a stack lives, for names and paths in the result and in messages.
pub(crate) struct StackSource<'a> {
    pub name: &'a str,
    /// `stacks/<name>/compose.yaml`, relative to the repo root.
    pub file: &'a Path,
    /// The repo root on disk, to check that secret files exist.
    pub root: &'a Path,
    /// Values of the variables named by `environment:` configs.
    pub config_env: &'a BTreeMap<String, String>,
}

const TOP_KEYS: &[&str] = &[
    "services", "networks", "volumes", "secrets", "configs", "name", "version",
];
const NETWORK_KEYS: &[&str] = &[
    "name",
    "driver",
    "external",
    "internal",
    "labels",
    "driver_opts",
    "attachable",
    "enable_ipv6",
    "ipam",
];
const NETWORK_UNSUPPORTED: &[&str] = &["enable_ipv4"];
const IPAM_KEYS: &[&str] = &["driver", "config", "options"];
const IPAM_POOL_KEYS: &[&str] = &["subnet", "ip_range", "gateway", "aux_addresses"];
const VOLUME_KEYS: &[&str] = &["name", "driver", "external", "labels", "driver_opts"];
const VOLUME_UNSUPPORTED: &[&str] = &[];
const SECRET_KEYS: &[&str] = &["file"];
const SECRET_UNSUPPORTED: &[&str] = &[
    "environment",
    "external",
    "name",
    "content",
    "driver",
    "driver_opts",
    "template_driver",
    "labels",
];

/// Reads and checks a stack file. Problems go to `cx`; the stack is still
/// returned so later checks can run, and the caller fails if `cx` has any.
pub(crate) fn read_stack(
    cx: &mut Cx,
    root_node: &Node,
    source: &StackSource<'_>,
    inventory: Option<&Inventory>,
) -> Stack {
    let mut stack = Stack {
        name: source.name.to_string(),
        file: source.file.to_path_buf(),
        services: Vec::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        configs: BTreeMap::new(),
        resolution: super::model::Resolution::default(),
    };
    if root_node.is_null() {
        cx.error_help(
            root_node,
            "the stack file is empty",
            "define the stack's containers under `services:`",
        );
        return stack;
    }
    let Some(top) = cx.map(root_node, "a Compose file") else {
        return stack;
    };
    for field in &top.entries {
        if TOP_KEYS.contains(&field.name) || field.name.starts_with("x-") {
            continue;
        }
        cx.unknown_key(field, "a Compose file", TOP_KEYS);
    }
    // Compose's project name prefixes the engine-side names of networks and
    // volumes (`<name>_data`); berth's stack is still named after its
    // directory. A file migrated from `docker compose` keeps its volumes.
    let prefix = match top.get("name") {
        None => source.name.to_string(),
        Some(field) => match field.value.scalar() {
            Some(name) if is_project_name(name) => name.to_string(),
            _ => {
                cx.error_help(
                    field.value,
                    format!(
                        "`name: {}` is not a valid Compose project name",
                        field.value.scalar().unwrap_or_default()
                    ),
                    "use lowercase letters, digits, `_` and `-`, starting with a letter or digit (or remove `name:` to use the directory name)",
                );
                source.name.to_string()
            }
        },
    };
    let prefix = prefix.as_str();
    if let Some(node) = top.value("networks") {
        stack.networks = read_networks(cx, node, prefix);
    }
    if let Some(node) = top.value("volumes") {
        stack.volumes = read_volumes(cx, node, prefix);
    }
    if let Some(node) = top.value("secrets") {
        stack.secrets = read_secrets(cx, node, source);
    }
    let stack_dir = source.file.parent().unwrap_or(Path::new(""));
    if let Some(node) = top.value("configs") {
        stack.configs =
            super::configs::read_top(cx, node, stack_dir, source.root, source.config_env);
    }
    // Every config written, even one refused: its users get no second
    // "undefined config" error.
    let config_names: BTreeSet<String> = top
        .value("configs")
        .and_then(|node| match &node.kind {
            super::yaml::Kind::Map(entries) => Some(
                entries
                    .iter()
                    .filter_map(|(k, _)| k.key_text().map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default();
    let binds = std::cell::RefCell::new(BTreeMap::new());
    let bind_refs = std::cell::RefCell::new(Vec::new());

    let mut drafts = Vec::new();
    match top.get("services") {
        None => cx.error_help(
            root_node,
            "the stack file has no `services:`",
            "define the stack's containers under `services:`",
        ),
        Some(field) if field.value.is_null() => {}
        Some(field) => {
            let decls = Decls {
                stack: prefix,
                networks: &stack.networks,
                volumes: &stack.volumes,
                secrets: &stack.secrets,
                inventory,
                configs: &config_names,
                stack_dir,
                root: source.root,
                binds: &binds,
                bind_refs: &bind_refs,
            };
            if let Some(services) = cx.map(field.value, "`services`") {
                for entry in &services.entries {
                    if !is_name(entry.name) {
                        cx.error_help(
                            entry.key,
                            format!("service name `{}` is not valid", entry.name),
                            "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
                        );
                        continue;
                    }
                    drafts.push(service::read_service(
                        cx,
                        entry.name,
                        entry.key,
                        entry.value,
                        &decls,
                    ));
                }
            }
        }
    }

    if drafts.iter().any(|d| d.joins_default) && !stack.networks.contains_key("default") {
        stack.networks.insert(
            "default".to_string(),
            NetworkSpec {
                name: format!("{prefix}_default"),
                ..NetworkSpec::default()
            },
        );
    }
    service::check_stack(cx, &mut drafts, source.name);
    check_depends_on(cx, &mut drafts, source.name);
    stack.services = drafts.into_iter().map(|d| d.service).collect();
    stack.services.sort_by(|a, b| a.name.cmp(&b.name));
    stack.configs.extend(binds.into_inner());
    for service in &mut stack.services {
        super::configs::attach(cx, &stack.configs, service);
    }
    stack
}

/// Reports keys that are neither supported nor `x-` extensions, telling a
/// Compose key berth leaves out apart from a typo.
fn check_keys(
    cx: &mut Cx,
    fields: &Fields<'_>,
    what: &str,
    supported: &[&str],
    unsupported: &[&str],
) {
    for field in &fields.entries {
        // `x-` extensions are allowed in every Compose mapping.
        if supported.contains(&field.name) || field.name.starts_with("x-") {
            continue;
        }
        if unsupported.contains(&field.name) {
            cx.error_help(
                field.key,
                format!("unsupported key `{}` in {what}", field.name),
                format!("berth supports: {}", supported.join(", ")),
            );
        } else {
            cx.unknown_key(field, what, supported);
        }
    }
}

/// A declared name, as Compose would name it on the engine.
fn engine_name(
    cx: &mut Cx,
    fields: &Fields<'_>,
    stack: &str,
    key: &str,
    what: &str,
) -> (String, bool) {
    let external = match fields.get("external") {
        Some(f) if matches!(f.value.kind, super::yaml::Kind::Map(_)) => {
            cx.error_help(
                f.value,
                format!("`external` of {what} must be `true` or `false`"),
                "the old `external: {name: x}` form is gone from Compose: write `external: true` and `name: x`",
            );
            false
        }
        Some(f) if !f.value.is_null() => cx
            .bool(f.value, &format!("`external` of {what}"))
            .unwrap_or(false),
        _ => false,
    };
    let name = fields
        .value("name")
        .and_then(|v| cx.string(v, &format!("`name` of {what}")));
    if external {
        for other in [
            "driver",
            "driver_opts",
            "internal",
            "labels",
            "attachable",
            "enable_ipv6",
            "ipam",
        ] {
            if let Some(f) = fields.get(other) {
                cx.error_help(
                    f.key,
                    format!("{what} is `external` but sets `{other}`"),
                    "an external resource is created outside berth; remove the other keys",
                );
            }
        }
    }
    let engine = match name {
        Some(name) => name,
        None if external => key.to_string(),
        None => format!("{stack}_{key}"),
    };
    (engine, external)
}

fn declared_entries<'n>(
    cx: &mut Cx,
    node: &'n Node,
    what: &str,
    kind: &str,
) -> Vec<(&'n str, &'n Node, Option<Fields<'n>>)> {
    let Some(fields) = cx.map(node, what) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in fields.entries {
        if !is_name(entry.name) {
            cx.error_help(
                entry.key,
                format!("{kind} name `{}` is not valid", entry.name),
                "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
            );
            continue;
        }
        let body = if entry.value.is_null() {
            Some(Fields {
                entries: Vec::new(),
            })
        } else {
            cx.map(entry.value, &format!("{kind} `{}`", entry.name))
        };
        out.push((entry.name, entry.key, body));
    }
    out
}

fn read_networks(cx: &mut Cx, node: &Node, stack: &str) -> BTreeMap<String, NetworkSpec> {
    let mut out = BTreeMap::new();
    for (key, _, body) in declared_entries(cx, node, "`networks`", "network") {
        let Some(fields) = body else { continue };
        let what = format!("network `{key}`");
        check_keys(cx, &fields, &what, NETWORK_KEYS, NETWORK_UNSUPPORTED);
        let (name, external) = engine_name(cx, &fields, stack, key, &what);
        let spec = NetworkSpec {
            name,
            external,
            driver: fields
                .value("driver")
                .and_then(|v| cx.string(v, &format!("`driver` of {what}"))),
            internal: fields
                .value("internal")
                .and_then(|v| cx.bool(v, &format!("`internal` of {what}")))
                .unwrap_or(false),
            labels: read_labels(cx, &fields, &what),
            driver_opts: driver_opts(cx, &fields, &what),
            attachable: fields
                .value("attachable")
                .and_then(|v| cx.bool(v, &format!("`attachable` of {what}"))),
            enable_ipv6: fields
                .value("enable_ipv6")
                .and_then(|v| cx.bool(v, &format!("`enable_ipv6` of {what}"))),
            ipam: fields
                .value("ipam")
                .filter(|v| !v.is_null())
                .and_then(|v| read_ipam(cx, v, &what)),
        };
        out.insert(key.to_string(), spec);
    }
    out
}

fn read_volumes(cx: &mut Cx, node: &Node, stack: &str) -> BTreeMap<String, VolumeSpec> {
    let mut out = BTreeMap::new();
    for (key, _, body) in declared_entries(cx, node, "`volumes`", "volume") {
        let Some(fields) = body else { continue };
        let what = format!("volume `{key}`");
        check_keys(cx, &fields, &what, VOLUME_KEYS, VOLUME_UNSUPPORTED);
        let (name, external) = engine_name(cx, &fields, stack, key, &what);
        let spec = VolumeSpec {
            name,
            external,
            driver: fields
                .value("driver")
                .and_then(|v| cx.string(v, &format!("`driver` of {what}"))),
            labels: read_labels(cx, &fields, &what),
            driver_opts: driver_opts(cx, &fields, &what),
        };
        out.insert(key.to_string(), spec);
    }
    out
}

/// `driver_opts` of a network or volume: passed to the driver as written.
fn driver_opts(cx: &mut Cx, fields: &Fields<'_>, what: &str) -> BTreeMap<String, String> {
    fields
        .value("driver_opts")
        .filter(|v| !v.is_null())
        .and_then(|v| cx.string_map(v, &format!("`driver_opts` of {what}")))
        .unwrap_or_default()
}

/// `ipam:` of a network. Addresses are the engine's to check: it refuses a
/// bad subnet when the network is created, naming it.
fn read_ipam(cx: &mut Cx, node: &Node, what: &str) -> Option<IpamSpec> {
    let here = format!("`ipam` of {what}");
    let fields = cx.map_with(node, &here, IPAM_KEYS)?;
    let mut ipam = IpamSpec {
        driver: fields
            .value("driver")
            .and_then(|v| cx.string(v, &format!("`driver` of {here}"))),
        options: fields
            .value("options")
            .filter(|v| !v.is_null())
            .and_then(|v| cx.string_map(v, &format!("`options` of {here}")))
            .unwrap_or_default(),
        config: Vec::new(),
    };
    let Some(config) = fields.value("config").filter(|v| !v.is_null()) else {
        return Some(ipam);
    };
    for item in cx.seq(config, &format!("`config` of {here}"))? {
        let pool_what = format!("a pool of `config` of {here}");
        let Some(pool) = cx.map_with(item, &pool_what, IPAM_POOL_KEYS) else {
            continue;
        };
        let mut text = |key: &str| {
            pool.value(key)
                .and_then(|v| cx.string(v, &format!("`{key}` of {pool_what}")))
        };
        let (subnet, ip_range, gateway) = (text("subnet"), text("ip_range"), text("gateway"));
        let aux_addresses = pool
            .value("aux_addresses")
            .filter(|v| !v.is_null())
            .and_then(|v| cx.string_map(v, &format!("`aux_addresses` of {pool_what}")))
            .unwrap_or_default();
        ipam.config.push(IpamPool {
            subnet,
            ip_range,
            gateway,
            aux_addresses,
        });
    }
    Some(ipam)
}

fn read_secrets(
    cx: &mut Cx,
    node: &Node,
    source: &StackSource<'_>,
) -> BTreeMap<String, SecretSpec> {
    let mut out = BTreeMap::new();
    let stack_dir = source.file.parent().unwrap_or(Path::new(""));
    for (key, key_node, body) in declared_entries(cx, node, "`secrets`", "secret") {
        let Some(fields) = body else { continue };
        let what = format!("secret `{key}`");
        // Compose's other sources of a secret: each gets its own message,
        // and no second one about the missing `file`.
        if let Some(field) = ["external", "environment", "content"]
            .iter()
            .find_map(|k| fields.get(k))
        {
            let dir = stack_dir.display();
            let (message, why) = match field.name {
                "external" => (
                    format!("{what} is `external`, and berth has no secret store on the hosts"),
                    "berth keeps secrets OpenPGP-encrypted in the repo",
                ),
                "environment" => (
                    format!("{what} is read from an environment variable"),
                    "berth keeps secrets OpenPGP-encrypted in the repo, so a plan can show a change and no runner's environment decides what deploys",
                ),
                _ => (
                    format!("{what} has its value in `content`"),
                    "a secret's value must not be in the repo in the clear",
                ),
            };
            cx.error_help(
                field.key,
                message,
                format!("{why}; encrypt the value (`berth secret encrypt -o {dir}/secrets/{key}.pgp -`) and write `{key}: {{file: ./secrets/{key}.pgp}}` in place of `{}`", field.name),
            );
            // Declared, so the services using it get no second error.
            out.insert(
                key.to_string(),
                SecretSpec {
                    file: stack_dir.join("secrets").join(format!("{key}.pgp")),
                    location: cx.at(key_node),
                },
            );
            continue;
        }
        for field in &fields.entries {
            if SECRET_UNSUPPORTED.contains(&field.name) {
                cx.error_help(
                    field.key,
                    format!("unsupported key `{}` in {what}", field.name),
                    "berth reads secrets from OpenPGP-encrypted files in the repo: write `file: ./secrets/<name>.pgp`",
                );
            } else if !SECRET_KEYS.contains(&field.name) && !field.name.starts_with("x-") {
                cx.unknown_key(field, &what, SECRET_KEYS);
            }
        }
        let Some(file_field) = fields.get("file") else {
            cx.error_help(
                key_node,
                format!("{what} has no `file`"),
                "point it at an encrypted file in the repo: `file: ./secrets/<name>.pgp`",
            );
            continue;
        };
        let Some(path) = cx.string(file_field.value, &format!("`file` of {what}")) else {
            continue;
        };
        // Declared even when the file is wrong, so services using it get no
        // second "undefined secret" error; the load fails on the first one.
        let file = match repo_relative(stack_dir, &path) {
            None => {
                cx.error_help(
                    file_field.value,
                    format!("`file` of {what} must stay inside the repo, found `{path}`"),
                    "keep encrypted secrets in the repo, e.g. `stacks/<stack>/secrets/`, and use a relative path",
                );
                PathBuf::from(path)
            }
            Some(relative) => {
                if !source.root.join(&relative).is_file() {
                    cx.error_help(
                        file_field.value,
                        format!("secret file `{}` of {what} does not exist", relative.display()),
                        "encrypt the secret into that file and commit it, or fix the path (relative to the stack's directory)",
                    );
                }
                relative
            }
        };
        out.insert(
            key.to_string(),
            SecretSpec {
                file,
                location: cx.at(key_node),
            },
        );
    }
    out
}

pub(crate) use super::values::repo_relative;

/// `depends_on` must name services of the same stack and must not loop.
fn check_depends_on(cx: &mut Cx, drafts: &mut [ServiceDraft], stack: &str) {
    let names: BTreeSet<String> = drafts.iter().map(|d| d.service.name.clone()).collect();
    for draft in drafts.iter_mut() {
        for dep in std::mem::take(&mut draft.depends_on) {
            if names.contains(&dep.name) {
                draft
                    .service
                    .depends_on
                    .insert(dep.name.clone(), dep.condition);
            } else {
                let help = match super::values::suggest(
                    &dep.name,
                    &names.iter().map(String::as_str).collect::<Vec<_>>(),
                ) {
                    Some(close) => format!(
                        "did you mean `{close}`? services of this stack: {}",
                        join(&names)
                    ),
                    None => format!("services of this stack: {}", join(&names)),
                };
                cx.report(
                    dep.location,
                    format!(
                        "service `{}` depends on `{}`, which is not a service of stack `{stack}`",
                        draft.service.name, dep.name
                    ),
                    Some(help),
                );
            }
        }
    }
    let graph: Graph<'_> = drafts
        .iter()
        .map(|d| {
            (
                d.service.name.as_str(),
                (&d.service.depends_on, &d.depends_at),
            )
        })
        .collect();
    let mut search = CycleSearch {
        graph: &graph,
        state: BTreeMap::new(),
        path: Vec::new(),
        cycles: Vec::new(),
    };
    for start in graph.keys() {
        if !search.state.contains_key(start) {
            search.visit(start);
        }
    }
    let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
    for cycle in search.cycles {
        let mut members: Vec<&str> = cycle[..cycle.len() - 1].to_vec();
        members.sort_unstable();
        if !reported.insert(members) {
            continue;
        }
        cx.report(
            graph[cycle[0]].1.clone(),
            format!(
                "dependency cycle: {}",
                cycle.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" -> ")
            ),
            Some("break the cycle: berth starts dependencies first, so one of these must not wait for the others".to_string()),
        );
    }
}

/// Service -> (its dependencies, where its `depends_on` is written).
type Graph<'a> = BTreeMap<&'a str, (&'a BTreeMap<String, DependsCondition>, &'a Location)>;

/// Depth-first search that records a cycle at every back edge (linear time).
struct CycleSearch<'g, 'a> {
    graph: &'g Graph<'a>,
    /// false while on the current path, true when finished.
    state: BTreeMap<&'a str, bool>,
    path: Vec<&'a str>,
    cycles: Vec<Vec<&'a str>>,
}

impl<'a> CycleSearch<'_, 'a> {
    fn visit(&mut self, node: &'a str) {
        self.state.insert(node, false);
        self.path.push(node);
        if let Some((deps, _)) = self.graph.get(node) {
            for dep in deps.keys() {
                let Some((dep, _)) = self.graph.get_key_value(dep.as_str()) else {
                    continue;
                };
                match self.state.get(dep) {
                    None => self.visit(dep),
                    Some(false) => {
                        let from = self.path.iter().position(|n| n == dep).unwrap_or(0);
                        let mut cycle = self.path[from..].to_vec();
                        cycle.push(dep);
                        self.cycles.push(cycle);
                    }
                    Some(true) => {}
                }
            }
        }
        self.path.pop();
        self.state.insert(node, true);
    }
}

fn join(names: &BTreeSet<String>) -> String {
    names
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compose's rule for project names: lowercase letters, digits, `_` and
/// `-`, starting with a letter or digit.
fn is_project_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::repo_relative;
    use std::path::{Path, PathBuf};

    #[test]
    fn secret_paths_stay_in_the_repo() {
        let dir = Path::new("stacks/web");
        assert_eq!(
            repo_relative(dir, "./secrets/db.pgp"),
            Some(PathBuf::from("stacks/web/secrets/db.pgp"))
        );
        assert_eq!(
            repo_relative(dir, "../../shared/x.pgp"),
            Some(PathBuf::from("shared/x.pgp"))
        );
        assert_eq!(repo_relative(dir, "../../../x.pgp"), None);
        assert_eq!(repo_relative(dir, "/etc/passwd"), None);
    }
}
