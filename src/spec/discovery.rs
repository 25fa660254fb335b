//! Discovery declared in the repo: the targets in `berth.yaml`
//! (`discovery:`, each a name, a kind and the kind's own keys) and a
//! service's `x-berth.publish` (which host port of each replica to publish,
//! to which targets, in which HAProxy backend).
//!
//! Read like the rest of `spec`: [`read_targets`] and [`read_publish`] pull
//! typed values out of the tree, reporting every problem with its place;
//! [`check_references`] checks, once the stacks are read, that every
//! `publish.to` names a target of `berth.yaml` and that a service published
//! to HAProxy names its backend. What the targets do lives in
//! `crate::discovery`.

use std::collections::BTreeSet;
use std::time::Duration;

use schemars::JsonSchema;

use super::diagnostic::Diagnostic;
pub use super::discovery_types::*;
use super::read::Cx;
use super::values::{is_name, GoDuration};
use super::yaml::Node;

/// One entry of `discovery:` (the schema's view; [`read_targets`] reads the tree).
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DiscoveryTarget")]
#[allow(dead_code)] // the schema's
pub(crate) struct RawDiscoveryTarget {
    /// Unique name, what a service's `x-berth.publish.to` lists.
    pub name: String,
    /// `haproxy` (Runtime API over the host's SSH connection) or `command`
    /// (commands run where berth runs).
    #[schemars(regex(pattern = r"^(haproxy|command)$"))]
    pub kind: String,
    /// `haproxy`: the inventory host HAProxy runs on.
    pub host: Option<String>,
    /// `haproxy`: its admin socket on that host. Default `/run/haproxy/admin.sock`.
    pub socket: Option<String>,
    /// How long a drained replica's sessions may take to end before berth
    /// stops it anyway. Default `30s`.
    pub drain_timeout: Option<GoDuration>,
    /// `command`: run (with `sh -c`) once a replica passed its gates and
    /// checks, with `BERTH_ADDRESS`, `BERTH_PORT`, `BERTH_HOST`,
    /// `BERTH_PROJECT`, `BERTH_STACK`, `BERTH_SERVICE`, `BERTH_REPLICA` and
    /// `BERTH_TARGET` set.
    pub on_promote: Option<String>,
    /// `command`: run, with the same environment, before a replica is stopped.
    pub on_retire: Option<String>,
    /// `command`: longest run of one command. Default `30s`.
    pub timeout: Option<GoDuration>,
}

/// A service's `x-berth.publish` (the schema's view).
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Publish")]
#[allow(dead_code)] // the schema's: `read_publish` reads the tree
pub(crate) struct RawPublish {
    /// The host port each replica serves on, at its host's `address`.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// The `discovery:` targets of berth.yaml to publish the replicas to.
    #[schemars(length(min = 1))]
    pub to: Vec<String>,
    /// The HAProxy backend the replicas join (with a `haproxy` target).
    pub backend: Option<String>,
}

pub(crate) const TARGET_KEYS: &[&str] = &[
    "name",
    "kind",
    "host",
    "socket",
    "drain_timeout",
    "on_promote",
    "on_retire",
    "timeout",
];
const HAPROXY_KEYS: &[&str] = &["name", "kind", "host", "socket", "drain_timeout"];
const COMMAND_KEYS: &[&str] = &[
    "name",
    "kind",
    "drain_timeout",
    "on_promote",
    "on_retire",
    "timeout",
];
pub(crate) const PUBLISH_KEYS: &[&str] = &["port", "to", "backend"];

/// Reads `discovery:`: a list of targets with unique names. `hosts`: the
/// inventory's host names, which an `haproxy` target's `host` must be.
pub(crate) fn read_targets(
    cx: &mut Cx,
    node: &Node,
    hosts: &BTreeSet<String>,
) -> Vec<DiscoveryTarget> {
    let mut out: Vec<DiscoveryTarget> = Vec::new();
    for item in cx.seq(node, "`discovery`").unwrap_or_default() {
        let Some(target) = read_target(cx, item, hosts) else {
            continue;
        };
        if let Some(first) = out.iter().find(|t| t.name == target.name) {
            cx.error_help(
                item,
                format!(
                    "duplicate discovery target `{}` (first at line {})",
                    target.name, first.location.line
                ),
                "give every target in `discovery` its own `name`",
            );
            continue;
        }
        out.push(target);
    }
    out
}

fn read_target(cx: &mut Cx, node: &Node, hosts: &BTreeSet<String>) -> Option<DiscoveryTarget> {
    let fields = cx.map(node, "a target of `discovery`")?;
    let name = match fields.value("name") {
        Some(v) => {
            let name = cx.string(v, "`name` of a target of `discovery`")?;
            if !is_name(&name) {
                cx.error_help(
                    v,
                    format!("discovery target name `{name}` is not valid"),
                    "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
                );
                return None;
            }
            name
        }
        None => {
            cx.error_help(
                node,
                "a target of `discovery` has no `name`",
                "give it a `name:` that services list in `x-berth.publish.to`",
            );
            return None;
        }
    };
    let what = format!("discovery target `{name}`");
    let kind_node = match fields.value("kind") {
        Some(v) => v,
        None => {
            cx.error_help(
                node,
                format!("{what} has no `kind`"),
                "set `kind: haproxy` or `kind: command`",
            );
            return None;
        }
    };
    let keys = match kind_node.scalar() {
        Some("haproxy") => HAPROXY_KEYS,
        Some("command") => COMMAND_KEYS,
        _ => {
            cx.error_help(
                kind_node,
                format!(
                    "`kind` of {what} must be `haproxy` or `command`, found {}",
                    kind_node.describe()
                ),
                "`haproxy` drives an HAProxy's Runtime API; `command` runs your own commands (Consul, DNS, a file provider...)",
            );
            return None;
        }
    };
    let mut ok = true;
    for field in &fields.entries {
        if !keys.contains(&field.name) {
            if TARGET_KEYS.contains(&field.name) {
                cx.error_help(
                    field.key,
                    format!(
                        "`{}` of {what} does not apply to kind `{}`",
                        field.name,
                        kind_node.scalar().unwrap_or_default()
                    ),
                    format!(
                        "a `{}` target takes: {}",
                        kind_node.scalar().unwrap_or_default(),
                        keys.join(", ")
                    ),
                );
            } else {
                cx.unknown_key(field, &what, keys);
            }
            ok = false;
        }
    }
    let drain_timeout = positive(
        cx,
        fields.value("drain_timeout"),
        "drain_timeout",
        &what,
        &mut ok,
    )
    .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
    let kind = if keys == HAPROXY_KEYS {
        let host = match fields.value("host") {
            Some(v) => {
                let host = cx.string(v, &format!("`host` of {what}"))?;
                if !hosts.contains(&host) {
                    cx.error_help(
                        v,
                        format!("`host` of {what} names no host of `hosts`: `{host}`"),
                        "berth reaches HAProxy's admin socket over the SSH connection of an inventory host: name that host",
                    );
                    ok = false;
                }
                host
            }
            None => {
                cx.error_help(
                    node,
                    format!("{what} has no `host`"),
                    "name the inventory host HAProxy runs on, e.g. `host: edge-1`",
                );
                return None;
            }
        };
        let socket = match fields.value("socket") {
            Some(v) => {
                let socket = cx.string(v, &format!("`socket` of {what}"))?;
                if !socket.starts_with('/')
                    || socket.contains(|c: char| c == '\'' || c.is_control())
                {
                    cx.error_help(
                        v,
                        format!("`socket` of {what} must be an absolute path, found `{socket}`"),
                        "the path of HAProxy's `stats socket ... level admin`, e.g. `/run/haproxy/admin.sock`",
                    );
                    ok = false;
                }
                socket
            }
            None => DEFAULT_HAPROXY_SOCKET.to_string(),
        };
        DiscoveryKind::Haproxy { host, socket }
    } else {
        let mut command = |key: &str| -> Option<String> {
            let v = fields.value(key)?;
            let line = cx.string(v, &format!("`{key}` of {what}"))?;
            if line.trim().is_empty() {
                cx.error(v, format!("`{key}` of {what} is empty"));
                return None;
            }
            Some(line)
        };
        let (on_promote, on_retire) = (command("on_promote"), command("on_retire"));
        if on_promote.is_none() && on_retire.is_none() {
            cx.error_help(
                node,
                format!("{what} has neither `on_promote` nor `on_retire`"),
                "set `on_promote:` (run once a replica is validated) and/or `on_retire:` (run before it stops)",
            );
            return None;
        }
        let timeout = positive(cx, fields.value("timeout"), "timeout", &what, &mut ok)
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT);
        DiscoveryKind::Command {
            on_promote,
            on_retire,
            timeout,
        }
    };
    ok.then(|| DiscoveryTarget {
        name,
        kind,
        drain_timeout,
        location: cx.at(node),
    })
}

/// A duration longer than zero, if written; a problem clears `ok`.
fn positive(
    cx: &mut Cx,
    node: Option<&Node>,
    key: &str,
    what: &str,
    ok: &mut bool,
) -> Option<Duration> {
    let v = node?;
    let d = cx.duration(v, &format!("`{key}` of {what}"));
    match d {
        Some(d) if !d.is_zero() => Some(d),
        Some(_) => {
            cx.error(v, format!("`{key}` of {what} must be longer than zero"));
            *ok = false;
            None
        }
        None => {
            *ok = false;
            None
        }
    }
}

/// Reads a service's `x-berth.publish` (`what`: ``service `web` ``).
pub(crate) fn read_publish(cx: &mut Cx, node: &Node, what: &str) -> Option<Publish> {
    let here = format!("`x-berth.publish` of {what}");
    let fields = cx.map_with(node, &here, PUBLISH_KEYS)?;
    let port = match fields.value("port") {
        Some(v) => cx
            .int(v, &format!("`port` of {here}"), 1, 65535)
            .map(|p| p as u16),
        None => {
            cx.error_help(
                node,
                format!("{here} has no `port`"),
                "set the host port each replica serves on, e.g. `port: 8081` (as in `ports: [\"8081:80\"]`)",
            );
            None
        }
    };
    let to = match fields.value("to") {
        Some(v) => match cx.strings(v, &format!("`to` of {here}")) {
            Some(to) if to.is_empty() => {
                cx.error_help(
                    v,
                    format!("`to` of {here} is empty"),
                    "list the `discovery:` targets of berth.yaml to publish to",
                );
                None
            }
            to => to,
        },
        None => {
            cx.error_help(
                node,
                format!("{here} has no `to`"),
                "list the `discovery:` targets of berth.yaml to publish to, e.g. `to: [lb]`",
            );
            None
        }
    };
    let mut backend_ok = true;
    let backend = fields.value("backend").and_then(|v| {
        let backend = cx.string(v, &format!("`backend` of {here}"));
        if backend.as_deref().is_some_and(|b| !is_haproxy_name(b)) {
            cx.error_help(
                v,
                format!(
                    "`backend` of {here} is not an HAProxy backend name: `{}`",
                    backend.as_deref().unwrap_or_default()
                ),
                "use letters, digits, `-`, `_`, `.` and `:`",
            );
        }
        backend_ok = backend.as_deref().is_some_and(is_haproxy_name);
        backend
    });
    let (port, to) = (port?, to?);
    if !backend_ok {
        return None;
    }
    Some(Publish {
        port,
        to,
        backend,
        location: cx.at(node),
    })
}

/// HAProxy's proxy and server names: letters, digits, `-_.:`.
pub fn is_haproxy_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Checks each published service against the targets: every `to` names a
/// target, a service published to HAProxy names its `backend`, and it rolls
/// out stop-first (its replicas share one host port, so a new one cannot
/// start beside the old).
pub(crate) fn check_references(
    targets: &[DiscoveryTarget],
    stacks: &[super::model::Stack],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    for stack in stacks {
        for service in &stack.services {
            let Some(publish) = &service.publish else {
                continue;
            };
            let what = format!("service `{}` of stack `{}`", service.name, stack.name);
            for to in &publish.to {
                match targets.iter().find(|t| &t.name == to) {
                    None => out.push(Diagnostic {
                        location: publish.location.clone(),
                        message: format!(
                            "`x-berth.publish.to` of {what} names no discovery target: `{to}`"
                        ),
                        help: Some(if names.is_empty() {
                            "declare it under `discovery:` in berth.yaml".to_string()
                        } else {
                            format!("targets in berth.yaml: {}", names.join(", "))
                        }),
                    }),
                    Some(t) if matches!(t.kind, DiscoveryKind::Haproxy { .. }) && publish.backend.is_none() => {
                        out.push(Diagnostic {
                            location: publish.location.clone(),
                            message: format!(
                                "{what} is published to HAProxy target `{to}` but names no `backend`"
                            ),
                            help: Some("set `x-berth.publish.backend:` to the HAProxy backend its replicas join".to_string()),
                        })
                    }
                    Some(_) => {}
                }
            }
            if service.deploy.update.order == super::model::UpdateOrder::StartFirst {
                out.push(Diagnostic {
                    location: publish.location.clone(),
                    message: format!(
                        "{what} is published on host port {} and rolls out start-first: the new replica cannot bind the port while the old one holds it",
                        publish.port
                    ),
                    help: Some("use `deploy.update_config.order: stop-first` (the default): berth drains the old replica before it stops, so no request is lost".to_string()),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::repo;
    use super::*;

    const HOSTS: &str = "hosts:\n  - name: edge-1\n    address: 10.77.0.11\n  - name: edge-2\n    address: 10.77.0.12\n";

    fn load(berth: &str, compose: &str) -> Result<crate::spec::Project, Vec<String>> {
        let dir = repo(&[("berth.yaml", berth), ("stacks/web/compose.yaml", compose)]);
        crate::spec::load(dir.path()).map_err(|e| {
            e.diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.location, d.message))
                .collect()
        })
    }

    const PUBLISHED: &str = "services:\n  app:\n    image: x\n    ports: [\"8081:80\"]\n    x-berth:\n      publish: {port: 8081, to: [lb, hooks], backend: web}\n";

    #[test]
    fn targets_and_publish_load_to_the_model() {
        let berth = format!(
            "{HOSTS}discovery:\n  - name: lb\n    kind: haproxy\n    host: edge-1\n    socket: /run/lb.sock\n    drain_timeout: 5s\n  - name: hooks\n    kind: command\n    on_promote: echo up\n    timeout: 2s\n"
        );
        let project = load(&berth, PUBLISHED).unwrap();
        let targets = &project.inventory.discovery;
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].name, "lb");
        assert_eq!(targets[0].drain_timeout, Duration::from_secs(5));
        assert_eq!(
            targets[0].kind,
            DiscoveryKind::Haproxy {
                host: "edge-1".into(),
                socket: "/run/lb.sock".into()
            }
        );
        assert_eq!(targets[1].drain_timeout, DEFAULT_DRAIN_TIMEOUT);
        assert_eq!(
            targets[1].kind,
            DiscoveryKind::Command {
                on_promote: Some("echo up".into()),
                on_retire: None,
                timeout: Duration::from_secs(2)
            }
        );
        let publish = project.stacks[0].services[0].publish.clone().unwrap();
        assert_eq!(publish.port, 8081);
        assert_eq!(publish.to, ["lb", "hooks"]);
        assert_eq!(publish.backend.as_deref(), Some("web"));
        assert_eq!(publish.location.line, 6);
    }

    #[test]
    fn socket_defaults_to_debians() {
        let berth = format!("{HOSTS}discovery:\n  - {{name: lb, kind: haproxy, host: edge-2}}\n");
        let compose = "services:\n  app:\n    image: x\n    x-berth:\n      publish: {port: 8081, to: [lb], backend: web}\n";
        let project = load(&berth, compose).unwrap();
        assert_eq!(
            project.inventory.discovery[0].kind,
            DiscoveryKind::Haproxy {
                host: "edge-2".into(),
                socket: DEFAULT_HAPROXY_SOCKET.into()
            }
        );
    }

    #[test]
    fn target_mistakes_are_reported_where_they_are() {
        let berth = format!(
            "{HOSTS}discovery:\n  - name: lb\n    kind: haproxy\n    host: edge-9\n  - name: lb2\n    kind: nginx\n  - kind: command\n    on_promote: x\n  - name: c\n    kind: command\n    host: edge-1\n    on_retire: z\n  - name: d\n    kind: command\n  - name: e\n    kind: haproxy\n    host: edge-1\n    socket: run/x\n    drain_timeout: 0s\n  - name: e\n    kind: command\n    on_retire: y\n"
        );
        let errors = load(&berth, "services:\n  app:\n    image: x\n").unwrap_err();
        assert_eq!(
            errors,
            [
                "berth.yaml:9:11: `host` of discovery target `lb` names no host of `hosts`: `edge-9`",
                "berth.yaml:11:11: `kind` of discovery target `lb2` must be `haproxy` or `command`, found `nginx`",
                "berth.yaml:12:5: a target of `discovery` has no `name`",
                "berth.yaml:16:5: `host` of discovery target `c` does not apply to kind `command`",
                "berth.yaml:18:5: discovery target `d` has neither `on_promote` nor `on_retire`",
                "berth.yaml:23:13: `socket` of discovery target `e` must be an absolute path, found `run/x`",
                "berth.yaml:24:20: `drain_timeout` of discovery target `e` must be longer than zero",
            ]
        );
        let berth = format!(
            "{HOSTS}discovery:\n  - {{name: a, kind: command, on_promote: x}}\n  - {{name: a, kind: command, on_retire: y}}\n"
        );
        assert_eq!(
            load(&berth, "services:\n  app:\n    image: x\n").unwrap_err(),
            ["berth.yaml:8:5: duplicate discovery target `a` (first at line 7)"]
        );
    }

    #[test]
    fn publish_must_name_declared_targets_and_a_backend() {
        let berth = format!("{HOSTS}discovery:\n  - {{name: lb, kind: haproxy, host: edge-1}}\n");
        let errors = load(&berth, PUBLISHED).unwrap_err();
        assert_eq!(
            errors,
            ["stacks/web/compose.yaml:6:16: `x-berth.publish.to` of service `app` of stack `web` names no discovery target: `hooks`"]
        );
        let compose = "services:\n  app:\n    image: x\n    deploy:\n      update_config: {order: start-first}\n    x-berth:\n      publish: {port: 8081, to: [lb]}\n";
        let errors = load(&berth, compose).unwrap_err();
        assert_eq!(
            errors,
            [
                "stacks/web/compose.yaml:7:16: service `app` of stack `web` is published on host port 8081 and rolls out start-first: the new replica cannot bind the port while the old one holds it",
                "stacks/web/compose.yaml:7:16: service `app` of stack `web` is published to HAProxy target `lb` but names no `backend`",
            ]
        );
    }

    #[test]
    fn publish_mistakes_are_reported_where_they_are() {
        let compose = "services:\n  app:\n    image: x\n    x-berth:\n      publish: {port: 0, to: [], backend: \"a b\", tls: true}\n";
        let errors = load(HOSTS, compose).unwrap_err();
        assert_eq!(
            errors,
            [
                "stacks/web/compose.yaml:5:23: `port` of `x-berth.publish` of service `app` must be an integer from 1 to 65535, found `0`",
                "stacks/web/compose.yaml:5:30: `to` of `x-berth.publish` of service `app` is empty",
                "stacks/web/compose.yaml:5:43: `backend` of `x-berth.publish` of service `app` is not an HAProxy backend name: `a b`",
                "stacks/web/compose.yaml:5:50: unknown key `tls` in `x-berth.publish` of service `app`",
            ]
        );
    }
}
