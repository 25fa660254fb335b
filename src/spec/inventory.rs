//! `berth.yaml`: the project name, the hosts and how to reach them.
//!
//! Two steps, as everywhere in `spec`: [`read`] turns the YAML tree into the
//! raw types below (every key and type checked, places kept), and
//! [`validate`] applies defaults and the checks that span several fields or
//! hosts. The raw types also generate `schemas/berth.schema.json`, so the
//! schema editors use and the keys berth accepts come from one definition
//! (a test keeps the key lists used by [`read`] equal to the schema's).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;

use super::model::ComposeSettings;
use super::model::{
    HostConfig, Inventory, Location, ResolveFrom, Settings, SwarmTarget, Transport,
};
use super::read::{Cx, Field, Fields};
use super::values::{is_name, is_slug, GoDuration};
use super::yaml::Node;

/// berth inventory: the hosts berth deploys to, how to reach them, and run settings.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "berth.yaml")]
pub(crate) struct RawInventory {
    /// Ownership scope: berth labels every container it creates with
    /// `berth.project` and never touches containers of another project, so
    /// several repos can share hosts. Default `default`.
    #[schemars(pattern(r"^[a-z0-9][a-z0-9_-]*$"))]
    pub project: Option<String>,
    /// Connection settings every host inherits unless it sets its own.
    pub defaults: Option<RawHostDefaults>,
    /// How berth runs: parallelism, timeouts, SSH host keys.
    pub settings: Option<RawSettings>,
    /// Who may read the repo's encrypted secrets.
    pub secrets: Option<RawSecretSettings>,
    /// The Docker hosts berth manages. At least one.
    #[schemars(length(min = 1))]
    pub hosts: Vec<RawHost>,
    /// Compose variables for every stack (`${NAME}` in compose files). The
    /// runner's environment and a stack's `.env` take precedence over them;
    /// a host's own `variables` over these.
    #[serde(default)]
    #[schemars(schema_with = "variable_map_schema")]
    pub variables: BTreeMap<String, String>,
    /// Per-stack settings, by stack name (the directory under `stacks/`).
    #[serde(default)]
    pub stacks: BTreeMap<String, RawStackSettings>,
    #[serde(skip)]
    pub variables_at: BTreeMap<String, Location>,
    /// Where berth publishes validated replicas (HAProxy, commands), by
    /// name: services list them in `x-berth.publish.to`.
    // Read into `discovery_targets` by `discovery::read_targets`; here for the schema.
    #[allow(dead_code)]
    #[serde(default)]
    pub discovery: Vec<super::discovery::RawDiscoveryTarget>,
    #[serde(skip)]
    pub discovery_targets: Vec<super::discovery::DiscoveryTarget>,
}

/// Settings of one stack.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StackSettings")]
pub(crate) struct RawStackSettings {
    /// Compose profiles to enable for this stack, besides `--profile`.
    /// Services without `profiles:` always run.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// The `kind: swarm` target (by name) this stack is deployed to, as
    /// Swarm services; default: placed on the hosts. The same as listing
    /// the stack in that target's `stacks`.
    pub target: Option<String>,
    #[serde(skip)]
    pub at: Location,
    #[serde(skip)]
    pub target_at: Option<Location>,
}

/// Connection settings shared by all hosts.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HostDefaults")]
pub(crate) struct RawHostDefaults {
    /// SSH user. Default: the ssh config's (`settings.ssh_config`), else `root`.
    pub user: Option<String>,
    /// SSH port. Default: the ssh config's (`settings.ssh_config`), else 22.
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// SSH private key; `~` is the home directory, a relative path is relative
    /// to the repo root. Default: the ssh agent and the user's default keys.
    pub identity_file: Option<String>,
    /// Path of the Docker Engine socket on the host. Default `/var/run/docker.sock`.
    pub docker_socket: Option<String>,
    /// `ssh` (default) or `local` (the machine berth runs on, no SSH).
    pub transport: Option<Transport>,
    /// Directory on the host for decrypted secrets; must be on tmpfs (berth
    /// mounts one there if it is not and it may). Default `/run/berth/secrets`.
    pub secrets_dir: Option<String>,
    /// Directory on the host where config files from the repo are kept, on
    /// disk (they must survive a reboot). Default `/var/lib/berth/configs`.
    pub configs_dir: Option<String>,
    #[serde(skip)]
    pub identity_file_at: Option<Location>,
}

/// Run settings.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Settings")]
pub(crate) struct RawSettings {
    /// How many hosts berth contacts at once. Default 16.
    #[schemars(range(min = 1))]
    pub parallel: Option<u32>,
    /// How many services `apply` rolls out at once, across stacks (a
    /// service still waits for what it `depends_on`). Default 16.
    #[schemars(range(min = 1))]
    pub rollout_parallel: Option<u32>,
    /// How long to wait for an SSH connection, as a Go duration (`10s`, `1m`). Default `10s`.
    pub connect_timeout: Option<GoDuration>,
    /// How often an idle SSH connection is probed (ssh's
    /// `ServerAliveInterval`); after 3 probes unanswered the host is taken
    /// as gone: a link cut silently (no RST) ends every call on it within
    /// 3 × this, and the host is dropped from the run. Default `15s`.
    pub keepalive: Option<GoDuration>,
    /// Longest wait for one Docker Engine API call (create, start, rename,
    /// inspect...; a stop also allows for its grace period, a pull for the
    /// download). A call past it means the host did not answer. Default `2m`.
    pub docker_timeout: Option<GoDuration>,
    /// known_hosts file checked strictly for every SSH host and every jump
    /// host on the way (`~` is the home directory). Default: the ssh config's
    /// `UserKnownHostsFile` (with `ssh_config`), else `~/.ssh/known_hosts`.
    pub known_hosts: Option<String>,
    /// A Compose variable used without a default and set nowhere is an
    /// error instead of an empty string with a warning. Default `false`.
    pub strict_variables: Option<bool>,
    /// Variables that may come from the environment of the machine running
    /// berth (e.g. `TAG` set by CI). With `--trust`, a value taken from the
    /// environment for any other name is refused: a signed commit must not
    /// be steerable from outside it.
    pub environment_variables: Option<Vec<String>>,
    #[serde(skip)]
    pub known_hosts_at: Option<Location>,
    #[serde(skip)]
    pub environment_variables_at: Option<Location>,
    /// An OpenSSH client config to honour (`~/.ssh/config`; `~` is the home
    /// directory, a relative path is relative to the repo root): host aliases
    /// as `address`, `ProxyJump`, `IdentityAgent`, per-host users and ports.
    /// berth.yaml's own settings win over it, and host keys stay strictly
    /// checked, on jump hosts too. Default: none (a runner's ssh config is
    /// ignored).
    pub ssh_config: Option<String>,
    #[serde(skip)]
    pub ssh_config_at: Option<Location>,
    /// The SSH key exchange to use, as ssh's `KexAlgorithms` (for example
    /// `curve25519-sha256`), for every host and jump host. Opt-in, for
    /// large fleets: OpenSSH's default post-quantum exchange costs the
    /// runner about 0.1 s of CPU per connection, `curve25519-sha256` about a
    /// tenth of that, but it is not post-quantum (traffic recorded today
    /// could be decrypted by a future quantum computer). Default: ssh's own
    /// (the ssh config's, with `ssh_config`).
    #[schemars(pattern(r"^[+^-]?[a-z0-9@.-]+(,[a-z0-9@.-]+)*$"))]
    pub ssh_kex: Option<String>,
    /// Registries (`host[:port]`, as in image names) that berth asks for
    /// image digests over plain HTTP instead of HTTPS, like Docker's
    /// `insecure-registries`. Default: none.
    pub insecure_registries: Option<Vec<String>>,
    /// Where image tags are resolved to digests at plan time: `runner` (the
    /// machine running berth asks each registry, with the credentials of
    /// its Docker config), `host` (the first host that runs the image asks
    /// through its engine, over berth's connection), or `none` (tags are
    /// not resolved nor pinned, and a moved tag goes unnoticed). Default `runner`.
    pub resolve_from: Option<ResolveFrom>,
}

/// Secret settings.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SecretSettings")]
pub(crate) struct RawSecretSettings {
    /// OpenPGP certificate files (relative to the repo root) that every
    /// secret is encrypted to: the runners' keys and the operators' own.
    /// `berth secret rekey` re-encrypts every secret to exactly these.
    pub recipients: Vec<String>,
    #[serde(skip)]
    pub recipients_at: Vec<Location>,
}

/// One Docker host.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Host")]
pub(crate) struct RawHost {
    /// Unique name, used in plans and in `node.hostname` placement constraints.
    #[schemars(pattern(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"))]
    pub name: String,
    /// IP address or DNS name for SSH. Required unless `transport: local`.
    pub address: Option<String>,
    /// SSH port. Default from `defaults.port`, else the ssh config's
    /// (`settings.ssh_config`), else 22.
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// SSH user. Default from `defaults.user`, else the ssh config's
    /// (`settings.ssh_config`), else `root`.
    pub user: Option<String>,
    /// SSH private key (`~` is the home directory, relative paths are
    /// relative to the repo root). Default from `defaults.identity_file`.
    pub identity_file: Option<String>,
    /// Path of the Docker Engine socket on the host. Default `/var/run/docker.sock`.
    pub docker_socket: Option<String>,
    /// `ssh` or `local`. Default from `defaults.transport`, else `ssh`.
    pub transport: Option<Transport>,
    /// Directory on the host for decrypted secrets (tmpfs). Default from
    /// `defaults.secrets_dir`, else `/run/berth/secrets`.
    pub secrets_dir: Option<String>,
    /// Directory on the host for config files from the repo (on disk).
    /// Default from `defaults.configs_dir`, else `/var/lib/berth/configs`.
    pub configs_dir: Option<String>,
    /// `host` (default): berth places containers on this Docker host.
    /// `swarm`: this is a manager of a Docker Swarm; the stacks in `stacks`
    /// are deployed to the Swarm as services, and the Swarm places them.
    pub kind: Option<TargetKind>,
    /// For `kind: swarm`: the stacks (directories under `stacks/`)
    /// deployed to this Swarm. A stack's `target:` does the same.
    #[serde(default)]
    pub stacks: Vec<String>,
    /// Free-form labels matched by `deploy.placement.constraints`
    /// (`node.labels.role == web`).
    #[serde(default)]
    #[schemars(schema_with = "label_map_schema")]
    pub labels: BTreeMap<String, String>,
    /// Compose variables for this host only: a `deploy.mode: global`
    /// service can say `${REGION}` and get each host's value. They take
    /// precedence over the top-level `variables`.
    #[serde(default)]
    #[schemars(schema_with = "variable_map_schema")]
    pub variables: BTreeMap<String, String>,
    #[serde(skip)]
    pub at: Location,
    #[serde(skip)]
    pub name_at: Location,
    #[serde(skip)]
    pub identity_file_at: Option<Location>,
    #[serde(skip)]
    pub stacks_at: Vec<Location>,
}

/// What a target in `hosts` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TargetKind {
    /// A Docker host: berth places and runs containers on it.
    #[default]
    Host,
    /// A Docker Swarm manager: berth deploys services to its Swarm.
    Swarm,
}

/// Label values may be written as numbers or booleans; they are read as text.
fn label_map_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": { "type": ["string", "number", "boolean"] },
        "propertyNames": { "pattern": "^[A-Za-z0-9][A-Za-z0-9._/-]*$" }
    })
}

/// Variable values may be written as numbers or booleans; they are read as text.
fn variable_map_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": { "type": ["string", "number", "boolean"] },
        "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }
    })
}

pub(crate) const TOP_KEYS: &[&str] = &[
    "project",
    "defaults",
    "settings",
    "secrets",
    "hosts",
    "variables",
    "stacks",
    "discovery",
];
pub(crate) const STACK_SETTINGS_KEYS: &[&str] = &["profiles", "target"];
pub(crate) const SECRETS_KEYS: &[&str] = &["recipients"];
pub(crate) const DEFAULTS_KEYS: &[&str] = &[
    "user",
    "port",
    "identity_file",
    "docker_socket",
    "transport",
    "secrets_dir",
    "configs_dir",
];
pub(crate) const SETTINGS_KEYS: &[&str] = &[
    "parallel",
    "rollout_parallel",
    "connect_timeout",
    "keepalive",
    "docker_timeout",
    "known_hosts",
    "ssh_config",
    "ssh_kex",
    "strict_variables",
    "environment_variables",
    "insecure_registries",
    "resolve_from",
];
pub(crate) const HOST_KEYS: &[&str] = &[
    "name",
    "address",
    "port",
    "user",
    "identity_file",
    "docker_socket",
    "transport",
    "secrets_dir",
    "configs_dir",
    "kind",
    "stacks",
    "labels",
    "variables",
];

const DEFAULT_PROJECT: &str = "default";
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
const DEFAULT_PARALLEL: usize = 16;
/// Services rolled out at once: enough that a fleet's independent services
/// go together, few enough that the runner's connections stay responsive.
const DEFAULT_ROLLOUT_PARALLEL: usize = 16;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
const DEFAULT_DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads the tree into raw types, reporting unknown keys and wrong types.
pub(crate) fn read(cx: &mut Cx, root: &Node) -> RawInventory {
    let mut raw = RawInventory::default();
    if root.is_null() {
        cx.error_help(
            root,
            "`berth.yaml` is empty",
            "list the hosts to deploy to under `hosts:`",
        );
        return raw;
    }
    let Some(top) = cx.map_with(root, "`berth.yaml`", TOP_KEYS) else {
        return raw;
    };
    if let Some(field) = top.get("project") {
        raw.project = cx.string(field.value, "`project`");
        if let Some(name) = &raw.project {
            if !is_slug(name) {
                cx.error_help(
                    field.value,
                    format!("project name `{name}` is not valid"),
                    "use lowercase letters, digits, `_` and `-`, starting with a letter or digit",
                );
            }
        }
    }
    if let Some(node) = top.value("defaults") {
        raw.defaults = read_defaults(cx, node);
    }
    if let Some(node) = top.value("settings") {
        raw.settings = read_settings(cx, node);
    }
    if let Some(node) = top.value("secrets") {
        raw.secrets = read_secret_settings(cx, node);
    }
    if let Some(node) = top.value("variables") {
        let (values, at) = read_variables(cx, node, "`variables`");
        raw.variables = values;
        raw.variables_at = at;
    }
    if let Some(node) = top.value("stacks") {
        raw.stacks = read_stack_settings(cx, node);
    }
    match top.get("hosts") {
        None => cx.error_help(
            root,
            "`berth.yaml` has no `hosts:`",
            "list at least one host, e.g. `hosts: [{name: edge-1, address: 10.0.0.11}]`",
        ),
        Some(field) => {
            if let Some(items) = cx.seq(field.value, "`hosts`") {
                if items.is_empty() {
                    cx.error_help(
                        field.key,
                        "`hosts` is empty",
                        "list at least one host to deploy to",
                    );
                }
                raw.hosts = items.iter().filter_map(|h| read_host(cx, h)).collect();
            }
        }
    }
    if let Some(node) = top.value("discovery") {
        let hosts = raw.hosts.iter().map(|h| h.name.clone()).collect();
        raw.discovery_targets = super::discovery::read_targets(cx, node, &hosts);
    }
    raw
}

fn read_defaults(cx: &mut Cx, node: &Node) -> Option<RawHostDefaults> {
    let fields = cx.map_with(node, "`defaults`", DEFAULTS_KEYS)?;
    let what = "`defaults`";
    let conn = read_connection(cx, &fields, what);
    Some(RawHostDefaults {
        user: conn.user,
        port: conn.port,
        identity_file: conn.identity_file,
        docker_socket: conn.docker_socket,
        transport: conn.transport,
        secrets_dir: conn.secrets_dir,
        configs_dir: conn.configs_dir,
        identity_file_at: conn.identity_file_at,
    })
}

fn read_settings(cx: &mut Cx, node: &Node) -> Option<RawSettings> {
    let fields = cx.map_with(node, "`settings`", SETTINGS_KEYS)?;
    let mut raw = RawSettings::default();
    if let Some(v) = fields.value("parallel") {
        raw.parallel = cx
            .int(v, "`settings.parallel`", 1, i64::from(u32::MAX))
            .map(|n| n as u32);
    }
    if let Some(v) = fields.value("rollout_parallel") {
        raw.rollout_parallel = cx
            .int(v, "`settings.rollout_parallel`", 1, i64::from(u32::MAX))
            .map(|n| n as u32);
    }
    if let Some(v) = fields.value("connect_timeout") {
        raw.connect_timeout = cx.duration(v, "`settings.connect_timeout`").map(GoDuration);
        if raw.connect_timeout == Some(GoDuration(Duration::ZERO)) {
            cx.error(v, "`settings.connect_timeout` must be longer than zero");
            raw.connect_timeout = None;
        }
    }
    for (key, slot) in [
        ("keepalive", &mut raw.keepalive),
        ("docker_timeout", &mut raw.docker_timeout),
    ] {
        if let Some(v) = fields.value(key) {
            let what = format!("`settings.{key}`");
            *slot = cx.duration(v, &what).map(GoDuration);
            if slot.as_ref().is_some_and(|d| d.0 < Duration::from_secs(1)) {
                cx.error(v, format!("{what} must be at least 1s"));
                *slot = None;
            }
        }
    }
    if let Some(v) = fields.value("known_hosts") {
        raw.known_hosts = cx.string(v, "`settings.known_hosts`");
        raw.known_hosts_at = Some(cx.at(v));
    }
    if let Some(v) = fields.value("strict_variables") {
        raw.strict_variables = cx.bool(v, "`settings.strict_variables`");
    }
    if let Some(v) = fields.value("environment_variables") {
        raw.environment_variables_at = Some(cx.at(v));
        if let Some(names) = cx.strings(v, "`settings.environment_variables`") {
            for name in &names {
                if !is_variable_name(name) {
                    cx.error_help(
                        v,
                        format!(
                            "`{name}` in `settings.environment_variables` is not a variable name"
                        ),
                        "use letters, digits and `_`, not starting with a digit",
                    );
                }
            }
            raw.environment_variables = Some(names);
        }
    }
    if let Some(v) = fields.value("ssh_config") {
        raw.ssh_config = cx.string(v, "`settings.ssh_config`");
        raw.ssh_config_at = Some(cx.at(v));
    }
    if let Some(v) = fields.value("ssh_kex") {
        if let Some(kex) = cx.string(v, "`settings.ssh_kex`") {
            if is_kex_list(&kex) {
                raw.ssh_kex = Some(kex);
            } else {
                cx.error_help(
                    v,
                    format!("`settings.ssh_kex` is not a list of key exchange algorithms: `{kex}`"),
                    "give ssh's `KexAlgorithms` names separated by commas, e.g. `curve25519-sha256` (`ssh -Q kex` lists them)",
                );
            }
        }
    }
    if let Some(v) = fields.value("insecure_registries") {
        raw.insecure_registries = cx.strings(v, "`settings.insecure_registries`");
    }
    if let Some(v) = fields.value("resolve_from") {
        raw.resolve_from = match v.scalar() {
            Some("runner") => Some(ResolveFrom::Runner),
            Some("host") => Some(ResolveFrom::Host),
            Some("none") => Some(ResolveFrom::None),
            _ => {
                cx.error(
                    v,
                    format!(
                        "`settings.resolve_from` must be `runner`, `host` or `none`, found {}",
                        v.describe()
                    ),
                );
                None
            }
        };
    }
    Some(raw)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: the names Compose interpolation can refer to.
pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A mapping of variable names to values (numbers and booleans as text).
fn read_variables(
    cx: &mut Cx,
    node: &Node,
    what: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, Location>) {
    let mut values = BTreeMap::new();
    let mut at = BTreeMap::new();
    let Some(fields) = cx.map(node, what) else {
        return (values, at);
    };
    for field in fields.entries {
        if !is_variable_name(field.name) {
            cx.error_help(
                field.key,
                format!("`{}` in {what} is not a variable name", field.name),
                "use letters, digits and `_`, not starting with a digit",
            );
            continue;
        }
        let value = if field.value.is_null() {
            Some(String::new())
        } else {
            cx.stringify(field.value, &format!("`{}` in {what}", field.name))
        };
        if let Some(value) = value {
            values.insert(field.name.to_string(), value);
            at.insert(field.name.to_string(), cx.at(field.key));
        }
    }
    (values, at)
}

fn read_stack_settings(cx: &mut Cx, node: &Node) -> BTreeMap<String, RawStackSettings> {
    let mut out = BTreeMap::new();
    let Some(fields) = cx.map(node, "`stacks`") else {
        return out;
    };
    for field in fields.entries {
        let what = format!("stack `{}` in `stacks`", field.name);
        if !is_slug(field.name) {
            cx.error_help(
                field.key,
                format!("stack name `{}` in `stacks` is not valid", field.name),
                "name a directory under `stacks/`",
            );
            continue;
        }
        let mut raw = RawStackSettings {
            at: cx.at(field.key),
            ..RawStackSettings::default()
        };
        if !field.value.is_null() {
            let Some(body) = cx.map_with(field.value, &what, STACK_SETTINGS_KEYS) else {
                continue;
            };
            if let Some(v) = body.value("profiles") {
                raw.profiles = cx
                    .strings(v, &format!("`profiles` of {what}"))
                    .unwrap_or_default();
            }
            if let Some(v) = body.value("target") {
                raw.target = cx.string(v, &format!("`target` of {what}"));
                raw.target_at = Some(cx.at(v));
            }
        }
        out.insert(field.name.to_string(), raw);
    }
    out
}

fn read_secret_settings(cx: &mut Cx, node: &Node) -> Option<RawSecretSettings> {
    let fields = cx.map_with(node, "`secrets`", SECRETS_KEYS)?;
    let mut raw = RawSecretSettings::default();
    if let Some(v) = fields.value("recipients") {
        for item in cx.seq(v, "`secrets.recipients`").unwrap_or_default() {
            if let Some(path) = cx.string(item, "a certificate file in `secrets.recipients`") {
                raw.recipients.push(path);
                raw.recipients_at.push(cx.at(item));
            }
        }
    }
    Some(raw)
}

/// The connection keys hosts and `defaults` share.
#[derive(Default)]
struct Connection {
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<String>,
    identity_file_at: Option<Location>,
    docker_socket: Option<String>,
    transport: Option<Transport>,
    secrets_dir: Option<String>,
    configs_dir: Option<String>,
}

/// A directory on the host berth writes below (`secrets_dir`,
/// `configs_dir`): absolute, below `/`, without `..`, no quote or control
/// character (it goes into the host's shell scripts).
fn host_dir(cx: &mut Cx, node: &Node, what: &str, help: &str) -> Option<String> {
    let dir = cx.string(node, what)?;
    let unsafe_dir = dir.trim_end_matches('/').is_empty()
        || dir.split('/').any(|part| part == "..")
        || dir.contains(|c: char| c == '\'' || c.is_control());
    if !dir.starts_with('/') || unsafe_dir {
        cx.error_help(
            node,
            format!("{what} must be an absolute path below `/`, without `..`, found `{dir}`"),
            help,
        );
        return None;
    }
    Some(dir)
}

fn read_connection(cx: &mut Cx, fields: &Fields<'_>, what: &str) -> Connection {
    let mut conn = Connection::default();
    if let Some(v) = fields.value("user") {
        conn.user = cx.string(v, &format!("`user` of {what}"));
        if let Some(user) = &conn.user {
            if user.is_empty() || user.contains(|c: char| c.is_whitespace() || c == '@') {
                cx.error(
                    v,
                    format!("`user` of {what} is not a valid user name: `{user}`"),
                );
                conn.user = None;
            }
        }
    }
    if let Some(v) = fields.value("port") {
        conn.port = cx
            .int(v, &format!("`port` of {what}"), 1, 65535)
            .map(|p| p as u16);
    }
    if let Some(v) = fields.value("identity_file") {
        conn.identity_file = cx.string(v, &format!("`identity_file` of {what}"));
        conn.identity_file_at = Some(cx.at(v));
    }
    if let Some(v) = fields.value("docker_socket") {
        conn.docker_socket = cx.string(v, &format!("`docker_socket` of {what}"));
        if let Some(socket) = &conn.docker_socket {
            if !socket.starts_with('/') {
                cx.error_help(
                    v,
                    format!("`docker_socket` of {what} must be an absolute path, found `{socket}`"),
                    "the usual path is `/var/run/docker.sock`",
                );
                conn.docker_socket = None;
            }
        }
    }
    if let Some(v) = fields.value("secrets_dir") {
        conn.secrets_dir = host_dir(
            cx,
            v,
            &format!("`secrets_dir` of {what}"),
            "the default is `/run/berth/secrets` (tmpfs on systemd hosts)",
        );
    }
    if let Some(v) = fields.value("configs_dir") {
        conn.configs_dir = host_dir(
            cx,
            v,
            &format!("`configs_dir` of {what}"),
            "the default is `/var/lib/berth/configs` (on disk: configs must survive a reboot)",
        );
    }
    if let Some(v) = fields.value("transport") {
        conn.transport = match v.scalar() {
            Some("ssh") => Some(Transport::Ssh),
            Some("local") => Some(Transport::Local),
            _ => {
                cx.error(
                    v,
                    format!(
                        "`transport` of {what} must be `ssh` or `local`, found {}",
                        v.describe()
                    ),
                );
                None
            }
        };
    }
    conn
}

fn read_host(cx: &mut Cx, node: &Node) -> Option<RawHost> {
    let fields = cx.map(node, "a host")?;
    let name_field = fields.get("name");
    let name = name_field
        .and_then(|f| f.value.scalar())
        .map(str::to_string);
    let what = match &name {
        Some(n) => format!("host `{n}`"),
        None => "a host".to_string(),
    };
    for field in &fields.entries {
        if !HOST_KEYS.contains(&field.name) {
            cx.unknown_key(field, &what, HOST_KEYS);
        }
    }
    let name = match (name_field, name) {
        (Some(field), Some(name)) => {
            if !is_name(&name) {
                cx.error_help(
                    field.value,
                    format!("host name `{name}` is not valid"),
                    "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
                );
            }
            name
        }
        (Some(field), None) => {
            cx.error(
                field.value,
                format!(
                    "`name` of a host must be a string, found {}",
                    field.value.describe()
                ),
            );
            String::new()
        }
        (None, _) => {
            cx.error_help(
                node,
                "a host has no `name`",
                "give every host a unique `name:`",
            );
            String::new()
        }
    };
    let conn = read_connection(cx, &fields, &what);
    let address = fields
        .value("address")
        .and_then(|v| read_address(cx, v, &what));
    let labels = fields
        .value("labels")
        .and_then(|v| read_labels(cx, v, &what))
        .unwrap_or_default();
    let variables = fields
        .value("variables")
        .map(|v| read_variables(cx, v, &format!("`variables` of {what}")).0)
        .unwrap_or_default();
    let kind = match fields.value("kind") {
        None => None,
        Some(v) => match v.scalar() {
            Some("host") => Some(TargetKind::Host),
            Some("swarm") => Some(TargetKind::Swarm),
            _ => {
                cx.error(
                    v,
                    format!(
                        "`kind` of {what} must be `host` or `swarm`, found {}",
                        v.describe()
                    ),
                );
                None
            }
        },
    };
    let mut stacks = Vec::new();
    let mut stacks_at = Vec::new();
    if let Some(v) = fields.value("stacks") {
        for item in cx
            .seq(v, &format!("`stacks` of {what}"))
            .unwrap_or_default()
        {
            if let Some(stack) = cx.string(item, &format!("a stack in `stacks` of {what}")) {
                stacks.push(stack);
                stacks_at.push(cx.at(item));
            }
        }
    }
    Some(RawHost {
        kind,
        stacks,
        stacks_at,
        variables,
        name_at: name_field.map_or_else(|| cx.at(node), |f: Field<'_>| cx.at(f.value)),
        at: cx.at(node),
        name,
        address,
        port: conn.port,
        user: conn.user,
        identity_file: conn.identity_file,
        identity_file_at: conn.identity_file_at,
        docker_socket: conn.docker_socket,
        transport: conn.transport,
        secrets_dir: conn.secrets_dir,
        configs_dir: conn.configs_dir,
        labels,
    })
}

fn read_address(cx: &mut Cx, node: &Node, what: &str) -> Option<String> {
    let address = cx.string(node, &format!("`address` of {what}"))?;
    let colons = address.matches(':').count();
    let problem = if address.is_empty() {
        Some(("is empty", "write an IP address or a DNS name"))
    } else if address.contains('@') {
        Some(("contains `@`", "set the SSH user with `user:`"))
    } else if colons == 1 {
        Some(("contains a port", "set the SSH port with `port:`"))
    } else if address.contains(|c: char| c.is_whitespace() || c == '/') {
        Some((
            "is not an IP address or DNS name",
            "write an IP address or a DNS name",
        ))
    } else {
        None
    };
    if let Some((why, help)) = problem {
        cx.error_help(
            node,
            format!("`address` of {what} {why}: `{address}`"),
            help,
        );
    }
    // Kept even when wrong (the load fails anyway) so it is not also "missing".
    Some(address)
}

fn read_labels(cx: &mut Cx, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
    let labels = cx.string_map(node, &format!("`labels` of {what}"))?;
    let mut ok = true;
    for key in labels.keys() {
        let mut chars = key.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !valid {
            cx.error_help(
                node,
                format!("label key `{key}` of {what} is not valid"),
                "use letters, digits, `.`, `_`, `-` and `/`, so constraints like `node.labels.<key> == value` can name it",
            );
            ok = false;
        }
    }
    ok.then_some(labels)
}

/// Applies defaults and checks across hosts. Returns the project name and
/// the inventory, or None when anything was reported.
pub(crate) fn validate(cx: &mut Cx, raw: RawInventory, root: &Path) -> Option<(String, Inventory)> {
    let errors_before = cx.diags.len();
    let defaults = raw.defaults.unwrap_or_default();
    let settings = raw.settings.unwrap_or_default();
    let default_identity = defaults
        .identity_file
        .as_deref()
        .and_then(|p| expand(cx, p, root, defaults.identity_file_at.as_ref()));
    let known_hosts = settings
        .known_hosts
        .as_deref()
        .and_then(|p| expand(cx, p, root, settings.known_hosts_at.as_ref()));
    let ssh_config = settings
        .ssh_config
        .as_deref()
        .and_then(|p| expand(cx, p, root, settings.ssh_config_at.as_ref()));
    let recipients = recipients(cx, raw.secrets.unwrap_or_default(), root);

    let stack_targets: Vec<(String, String, Location)> = raw
        .stacks
        .iter()
        .filter_map(|(name, s)| {
            Some((
                name.clone(),
                s.target.clone()?,
                s.target_at.clone().unwrap_or_else(|| s.at.clone()),
            ))
        })
        .collect();
    let mut compose = ComposeSettings {
        variables: raw.variables,
        variables_at: raw.variables_at,
        strict_variables: settings.strict_variables.unwrap_or(false),
        environment_variables: settings.environment_variables.clone(),
        environment_variables_at: settings.environment_variables_at.clone(),
        stack_profiles: raw
            .stacks
            .into_iter()
            .map(|(name, s)| (name, (s.profiles, s.at)))
            .collect(),
        host_variables: BTreeMap::new(),
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut hosts = Vec::with_capacity(raw.hosts.len());
    let mut swarms: Vec<SwarmTarget> = Vec::new();
    for host in raw.hosts {
        if host.name.is_empty() {
            continue;
        }
        if let Some(line) = seen.insert(host.name.clone(), host.name_at.line) {
            cx.report(
                host.name_at.clone(),
                format!("duplicate host name `{}` (first at line {line})", host.name),
                Some(
                    "host names must be unique: placement and plans refer to hosts by name"
                        .to_string(),
                ),
            );
            continue;
        }
        let transport = host
            .transport
            .or(defaults.transport)
            .unwrap_or(Transport::Ssh);
        let address = match (host.address, transport) {
            (Some(address), _) => address,
            (None, Transport::Local) => String::new(),
            (None, Transport::Ssh) => {
                cx.report(
                    host.at.clone(),
                    format!("host `{}` has no `address`", host.name),
                    Some("set `address:` (an IP or DNS name), or `transport: local` for the machine berth runs on".to_string()),
                );
                continue;
            }
        };
        let identity_file = match &host.identity_file {
            Some(p) => expand(cx, p, root, host.identity_file_at.as_ref()),
            None => default_identity.clone(),
        };
        let swarm = host.kind == Some(TargetKind::Swarm);
        if !swarm && !host.stacks.is_empty() {
            cx.report(
                host.stacks_at[0].clone(),
                format!("host `{}` lists `stacks`, which only a `kind: swarm` target takes", host.name),
                Some("hosts run every stack their labels and the stacks' placement allow; write `kind: swarm` if this is a Swarm manager".to_string()),
            );
            continue;
        }
        if swarm {
            let unsupported = [
                ("labels", !host.labels.is_empty()),
                ("variables", !host.variables.is_empty()),
            ];
            if let Some((key, _)) = unsupported.iter().find(|(_, set)| *set) {
                cx.report(
                    host.at.clone(),
                    format!("swarm target `{}` sets `{key}`, which berth does not support on a Swarm yet", host.name),
                    Some("remove it: label the Swarm's nodes (`docker node update --label-add`) and use `node.labels.*` constraints, or top-level `variables`".to_string()),
                );
                continue;
            }
        }
        if !host.variables.is_empty() {
            compose
                .host_variables
                .insert(host.name.clone(), host.variables);
        }
        let config = HostConfig {
            name: host.name,
            address,
            // Unset stays unset: the ssh config, else berth's default, decides.
            port: host.port.or(defaults.port),
            user: host.user.or_else(|| defaults.user.clone()),
            identity_file,
            labels: host.labels,
            docker_socket: host
                .docker_socket
                .or_else(|| defaults.docker_socket.clone())
                .unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
            secrets_dir: host
                .secrets_dir
                .or_else(|| defaults.secrets_dir.clone())
                .unwrap_or_else(|| super::secret_paths::HOST_DIR.to_string()),
            configs_dir: host
                .configs_dir
                .or_else(|| defaults.configs_dir.clone())
                .unwrap_or_else(|| super::configs::HOST_DIR.to_string())
                .trim_end_matches('/')
                .to_string(),
            transport,
            location: host.at,
        };
        if swarm {
            swarms.push(SwarmTarget {
                manager: config,
                stacks: host.stacks.into_iter().zip(host.stacks_at).collect(),
            });
        } else {
            hosts.push(config);
        }
    }
    assign_stacks(cx, &mut swarms, stack_targets);
    warn_shared_endpoints(cx, &hosts);
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    if cx.diags.len() > errors_before {
        return None;
    }
    let inventory = Inventory {
        hosts,
        settings: Settings {
            parallel: settings.parallel.map_or(DEFAULT_PARALLEL, |p| p as usize),
            rollout_parallel: settings
                .rollout_parallel
                .map_or(DEFAULT_ROLLOUT_PARALLEL, |p| p as usize),
            connect_timeout: settings
                .connect_timeout
                .map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            keepalive: settings.keepalive.map_or(DEFAULT_KEEPALIVE, |d| d.0),
            docker_timeout: settings
                .docker_timeout
                .map_or(DEFAULT_DOCKER_TIMEOUT, |d| d.0),
            known_hosts,
            ssh_config,
            ssh_kex: settings.ssh_kex,
            insecure_registries: settings
                .insecure_registries
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    r.trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string()
                })
                .collect(),
            resolve_from: settings.resolve_from.unwrap_or_default(),
        },
        recipients,
        compose,
        discovery: raw.discovery_targets,
        swarms,
    };
    let project = raw.project.unwrap_or_else(|| DEFAULT_PROJECT.to_string());
    if cx.diags.len() > errors_before {
        return None;
    }
    Some((project, inventory))
}

/// Adds each stack whose `target:` names a Swarm target to its `stacks`,
/// then checks every stack goes to one target at most, and each `target:`
/// names a `kind: swarm` target.
fn assign_stacks(
    cx: &mut Cx,
    swarms: &mut [SwarmTarget],
    targets: Vec<(String, String, Location)>,
) {
    for (stack, target, at) in targets {
        match swarms.iter_mut().find(|s| s.manager.name == target) {
            Some(swarm) => {
                if !swarm.stacks.iter().any(|(name, _)| *name == stack) {
                    swarm.stacks.push((stack, at));
                }
            }
            None => cx.report(
                at,
                format!("`target` of stack `{stack}` names `{target}`, which is no `kind: swarm` target"),
                Some(format!(
                    "Swarm targets: {}; a stack without `target` is placed on the hosts",
                    if swarms.is_empty() {
                        "none".to_string()
                    } else {
                        swarms
                            .iter()
                            .map(|s| format!("`{}`", s.manager.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )),
            ),
        }
    }
    let mut owner: HashMap<String, String> = HashMap::new();
    for swarm in swarms.iter_mut() {
        swarm.stacks.sort_by(|a, b| a.0.cmp(&b.0));
        for (stack, at) in &swarm.stacks {
            if let Some(first) = owner.insert(stack.clone(), swarm.manager.name.clone()) {
                if first != swarm.manager.name {
                    cx.report(
                        at.clone(),
                        format!(
                            "stack `{stack}` is given to two Swarm targets, `{first}` and `{}`",
                            swarm.manager.name
                        ),
                        Some("deploy each stack to one target".to_string()),
                    );
                }
            }
        }
    }
    swarms.sort_by(|a, b| a.manager.name.cmp(&b.manager.name));
}

/// Certificate files in the repo: relative, inside it, and present.
fn recipients(cx: &mut Cx, raw: RawSecretSettings, root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (path, at) in raw.recipients.into_iter().zip(raw.recipients_at) {
        let relative = PathBuf::from(&path);
        let inside = relative.is_relative()
            && relative.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
        if !inside {
            cx.report(
                at,
                format!("recipient certificate `{path}` must be a path inside the repo"),
                Some("commit the public certificates, e.g. `keys/runner.asc`, and list them relative to the repo root".into()),
            );
        } else if !root.join(&relative).is_file() {
            cx.report(
                at,
                format!("recipient certificate `{path}` does not exist"),
                Some("export it (`gpg --export --armor FPR > keys/NAME.asc` or `sq cert export`) and commit it".into()),
            );
        } else {
            out.push(relative);
        }
    }
    out
}

/// `~/x` is under the home directory; a relative path is under the repo root.
fn expand(cx: &mut Cx, path: &str, root: &Path, at: Option<&Location>) -> Option<PathBuf> {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    let expanded = if path == "~" {
        home()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home().map(|h| h.join(rest))
    } else if path.starts_with('~') {
        cx.report(
            at.cloned().unwrap_or_default(),
            format!("cannot expand `{path}`: only `~/` (the current user's home) is supported"),
            None,
        );
        return None;
    } else {
        return Some(root.join(path));
    };
    if expanded.is_none() {
        cx.report(
            at.cloned().unwrap_or_default(),
            format!("cannot expand `{path}`: HOME is not set"),
            Some("set HOME, or write an absolute path".to_string()),
        );
    }
    expanded
}

/// Two inventory hosts that are one machine (the same SSH endpoint and
/// engine socket, or both `transport: local`) take one run lock and share
/// one engine: apply would wait for its own lock and place containers twice
/// on one engine. An alias in `settings.ssh_config` can hide this, so it is a
/// warning, not an error.
fn warn_shared_endpoints(cx: &mut Cx, hosts: &[HostConfig]) {
    let mut seen: HashMap<(String, String), &str> = HashMap::new();
    for host in hosts {
        let endpoint = match host.transport {
            Transport::Local => "this machine".to_string(),
            Transport::Ssh => {
                let user = host
                    .user
                    .as_deref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default();
                let port = host.port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{user}{}{port}", host.address)
            }
        };
        let key = (endpoint.clone(), host.docker_socket.clone());
        match seen.get(&key) {
            Some(first) => cx.warn_at(
                host.location.clone(),
                format!("hosts `{first}` and `{}` are the same machine ({endpoint}, engine `{}`)", host.name, host.docker_socket),
                "apply locks each host, so it would wait for its own lock, and both names would place containers on one engine: list each machine once (give it more roles with `labels`)",
            ),
            None => {
                seen.insert(key, &host.name);
            }
        }
    }
}

/// ssh's `KexAlgorithms` syntax: names of `[a-z0-9@.-]` separated by
/// commas, optionally after one `+`, `-` or `^`; nothing that could end
/// the line it is written on in an ssh config. Pure.
fn is_kex_list(text: &str) -> bool {
    let names = text.strip_prefix(['+', '-', '^']).unwrap_or(text);
    !names.is_empty()
        && names.split(',').all(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "@.-".contains(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml;

    fn load(text: &str) -> (Option<(String, Inventory)>, Vec<String>) {
        let mut cx = Cx::new("berth.yaml", false);
        let root = yaml::parse(text).unwrap().root;
        let raw = read(&mut cx, &root);
        let result = validate(&mut cx, raw, Path::new("/repo"));
        let messages = cx
            .diags
            .iter()
            .map(|d| format!("{}: {}", d.location, d.message))
            .collect();
        (result, messages)
    }

    /// Two names for one machine load, with a warning at the second that
    /// names both; the same address on another port is another machine.
    #[test]
    fn two_names_for_one_machine_are_a_warning() {
        let mut cx = Cx::new("berth.yaml", false);
        let root = yaml::parse(
            "hosts:\n\
             \x20 - {name: a, address: 10.0.0.1, user: root}\n\
             \x20 - {name: b, address: 10.0.0.1, user: root}\n\
             \x20 - {name: c, address: 10.0.0.1, user: root, port: 2201}\n\
             \x20 - {name: l1, transport: local}\n\
             \x20 - {name: l2, transport: local}\n",
        )
        .unwrap()
        .root;
        let raw = read(&mut cx, &root);
        let result = validate(&mut cx, raw, Path::new("/repo"));
        assert!(result.is_some() && cx.diags.is_empty(), "{:?}", cx.diags);
        let warnings: Vec<String> = cx
            .warnings
            .iter()
            .map(|d| format!("{}: {}", d.location, d.message))
            .collect();
        assert_eq!(
            warnings,
            vec![
                "berth.yaml:3:5: hosts `a` and `b` are the same machine (root@10.0.0.1, engine `/var/run/docker.sock`)",
                "berth.yaml:6:5: hosts `l1` and `l2` are the same machine (this machine, engine `/var/run/docker.sock`)",
            ]
        );
    }

    #[test]
    fn defaults_apply_and_hosts_sort() {
        let (result, messages) = load(
            "project: shop\n\
             defaults: {user: deploy, port: 2222, identity_file: keys/id}\n\
             settings: {parallel: 4, rollout_parallel: 3, connect_timeout: 1m, keepalive: 2s}\n\
             hosts:\n\
             \x20 - {name: web-2, address: 10.0.0.2, labels: {role: web, zone: 1}}\n\
             \x20 - {name: db-1, address: db.example.com, port: 22, user: root}\n\
             \x20 - {name: box, transport: local}\n",
        );
        assert_eq!(messages, Vec::<String>::new());
        let (project, inventory) = result.unwrap();
        assert_eq!(project, "shop");
        let names: Vec<_> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["box", "db-1", "web-2"]);
        let web = &inventory.hosts[2];
        assert_eq!(
            (web.port, web.user.as_deref()),
            (Some(2222), Some("deploy"))
        );
        assert_eq!(
            web.identity_file.as_deref(),
            Some(Path::new("/repo/keys/id"))
        );
        assert_eq!(web.labels["zone"], "1");
        assert_eq!(web.docker_socket, "/var/run/docker.sock");
        assert_eq!(web.location.line, 5);
        let db = &inventory.hosts[1];
        assert_eq!((db.port, db.user.as_deref()), (Some(22), Some("root")));
        assert_eq!(inventory.settings.ssh_config, None);
        assert_eq!(inventory.hosts[0].transport, Transport::Local);
        assert_eq!(inventory.settings.parallel, 4);
        assert_eq!(inventory.settings.rollout_parallel, 3);
        assert_eq!(inventory.settings.connect_timeout, Duration::from_secs(60));
        assert_eq!(inventory.settings.keepalive, Duration::from_secs(2));
        assert_eq!(inventory.settings.docker_timeout, Duration::from_secs(120));
    }

    #[test]
    fn problems_are_all_reported() {
        let (result, messages) = load(
            "project: Shop\n\
             settings: {parallel: 0, connect_timeout: 10}\n\
             hosts:\n\
             \x20 - {name: a, address: 'root@10.0.0.1', prot: 22}\n\
             \x20 - {name: a, address: 10.0.0.2}\n\
             \x20 - {name: b}\n\
             \x20 - {name: c, address: x, transport: carrier-pigeon}\n",
        );
        assert!(result.is_none());
        assert_eq!(
            messages,
            [
                "berth.yaml:1:10: project name `Shop` is not valid",
                "berth.yaml:2:22: `settings.parallel` must be an integer from 1 to 4294967295, found `0`",
                "berth.yaml:2:42: `settings.connect_timeout`: `10` has no unit",
                "berth.yaml:4:41: unknown key `prot` in host `a`",
                "berth.yaml:4:24: `address` of host `a` contains `@`: `root@10.0.0.1`",
                "berth.yaml:7:38: `transport` of host `c` must be `ssh` or `local`, found `carrier-pigeon`",
                "berth.yaml:5:12: duplicate host name `a` (first at line 4)",
                "berth.yaml:6:5: host `b` has no `address`",
            ]
        );
    }

    /// `settings.ssh_kex` is kept as written when it is a `KexAlgorithms`
    /// list, and refused (with where and why) when it could smuggle other
    /// ssh options into the config berth writes.
    #[test]
    fn ssh_kex_is_a_list_of_algorithm_names() {
        let (result, messages) = load(
            "settings: {ssh_kex: 'curve25519-sha256,curve25519-sha256@libssh.org'}\nhosts: [{name: a, address: b}]\n",
        );
        assert_eq!(messages, Vec::<String>::new());
        let (_, inventory) = result.unwrap();
        assert_eq!(
            inventory.settings.ssh_kex.as_deref(),
            Some("curve25519-sha256,curve25519-sha256@libssh.org")
        );
        let (_, messages) = load(
            "settings: {ssh_kex: \"curve25519-sha256\\n  ProxyCommand sh\"}\nhosts: [{name: a, address: b}]\n",
        );
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("`settings.ssh_kex` is not a list of key exchange algorithms"),
            "{messages:?}"
        );
        assert!(is_kex_list("^sntrup761x25519-sha512@openssh.com"));
        assert!(!is_kex_list("a,,b") && !is_kex_list("") && !is_kex_list("A b"));
    }

    #[test]
    fn ssh_config_is_a_path_like_the_others() {
        let (result, messages) =
            load("settings: {ssh_config: ssh/config}\nhosts: [{name: a, address: my-alias}]\n");
        assert_eq!(messages, Vec::<String>::new());
        let (_, inventory) = result.unwrap();
        assert_eq!(
            inventory.settings.ssh_config.as_deref(),
            Some(Path::new("/repo/ssh/config"))
        );
        let host = &inventory.hosts[0];
        assert_eq!((host.user.as_deref(), host.port), (None, None));
        let (_, messages) = load("settings: {ssh_config: [a]}\nhosts: [{name: a, address: b}]\n");
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("`settings.ssh_config`"),
            "{messages:?}"
        );
    }

    #[test]
    fn no_hosts_is_an_error() {
        let (_, messages) = load("project: x\n");
        assert_eq!(messages, ["berth.yaml:1:1: `berth.yaml` has no `hosts:`"]);
        let (_, messages) = load("hosts: []\n");
        assert_eq!(messages, ["berth.yaml:1:1: `hosts` is empty"]);
        let (_, messages) = load("");
        assert_eq!(messages, ["berth.yaml:1:1: `berth.yaml` is empty"]);
    }
}
