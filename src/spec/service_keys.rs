//! Service keys that map one to one onto the Docker Engine's container
//! settings (`extra_hosts`, `dns`, `sysctls`, `init`, `stop_signal`, …), read
//! with Compose's syntax and normalised so the same meaning gives the same
//! [`ContainerSpec`]. Keys that involve other services (`network_mode:
//! service:`, `links`, `container_name`) are read in `service.rs`, where the
//! stack is known.
//!
//! Each value is checked here, at its place in the file, for what the
//! engine would otherwise refuse at apply time (a malformed `extra_hosts`
//! line, an `oom_score_adj` out of range, a device path that is not one).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::spec::read::{Cx, Fields};
use crate::spec::yaml::{Kind, Node};
use crate::spec::{values, ContainerSpec, DeviceRequestSpec, DeviceSpec};

/// Reads the engine-level keys the service sets into `container`.
pub(super) fn read(cx: &mut Cx, fields: &Fields<'_>, what: &str, container: &mut ContainerSpec) {
    let of = |key: &str| format!("`{key}` of {what}");
    if let Some(v) = fields.value("expose") {
        container.expose = expose(cx, v, &of("expose"));
    }
    if let Some(v) = fields.value("domainname") {
        container.domainname = cx.string(v, &of("domainname"));
        if let Some(name) = &container.domainname {
            if !is_dns_name(name) {
                cx.error(
                    v,
                    format!("{} is not a valid domain name: `{name}`", of("domainname")),
                );
            }
        }
    }
    for (key, slot) in [
        ("privileged", &mut container.privileged),
        ("stdin_open", &mut container.stdin_open),
        ("tty", &mut container.tty),
    ] {
        if let Some(v) = fields.value(key) {
            *slot = cx.bool(v, &of(key)).unwrap_or(false);
        }
    }
    if let Some(v) = fields.value("init") {
        container.init = cx.bool(v, &of("init"));
    }
    if let Some(v) = fields.value("stop_signal") {
        container.stop_signal = stop_signal(cx, v, &of("stop_signal"));
    }
    if let Some(v) = fields.value("extra_hosts") {
        container.extra_hosts = extra_hosts(cx, v, &of("extra_hosts"));
    }
    if let Some(v) = fields.value("dns") {
        container.dns = one_or_more(cx, v, &of("dns"));
        for server in &container.dns {
            if server.parse::<IpAddr>().is_err() {
                cx.error_help(
                    v,
                    format!("{}: `{server}` is not an IP address", of("dns")),
                    "name resolvers by address, e.g. `dns: [1.1.1.1, 9.9.9.9]`",
                );
            }
        }
    }
    if let Some(v) = fields.value("dns_search") {
        container.dns_search = one_or_more(cx, v, &of("dns_search"));
    }
    if let Some(v) = fields.value("dns_opt") {
        container.dns_opt = one_or_more(cx, v, &of("dns_opt"));
    }
    if let Some(v) = fields.value("sysctls") {
        container.sysctls = required_pairs(cx, v, &of("sysctls"));
    }
    if let Some(v) = fields.value("devices") {
        let (devices, cdi) = devices(cx, v, &of("devices"));
        container.devices = devices;
        // As the Docker CLI sends them: one request to the `cdi` driver.
        if !cdi.is_empty() {
            container.resources.device_requests.push(DeviceRequestSpec {
                driver: Some("cdi".to_string()),
                device_ids: cdi,
                ..DeviceRequestSpec::default()
            });
        }
    }
    if let Some(v) = fields.value("shm_size") {
        container.shm_size = cx.memory(v, &of("shm_size"));
    }
    if let Some(v) = fields.value("platform") {
        container.platform = platform(cx, v, &of("platform"));
    }
    if let Some(v) = fields.value("runtime") {
        container.runtime = cx.string(v, &of("runtime"));
    }
    if let Some(v) = fields.value("ipc") {
        container.ipc =
            namespace_mode(cx, v, &of("ipc"), &["none", "private", "shareable", "host"]);
    }
    if let Some(v) = fields.value("pid") {
        container.pid = namespace_mode(cx, v, &of("pid"), &["host"]);
    }
    if let Some(v) = fields.value("group_add") {
        let mut groups = cx.strings(v, &of("group_add")).unwrap_or_default();
        groups.sort();
        groups.dedup();
        container.group_add = groups;
    }
    if let Some(v) = fields.value("cgroup_parent") {
        container.cgroup_parent = cx.string(v, &of("cgroup_parent"));
    }
    if let Some(v) = fields.value("oom_score_adj") {
        container.oom_score_adj = cx.int(v, &of("oom_score_adj"), -1000, 1000);
    }
    if let Some(v) = fields.value("storage_opt") {
        container.storage_opt = cx.string_map(v, &of("storage_opt")).unwrap_or_default();
    }
    if let Some(v) = fields.value("userns_mode") {
        container.userns_mode = cx.string(v, &of("userns_mode"));
        if container
            .userns_mode
            .as_deref()
            .is_some_and(|m| m != "host")
        {
            cx.error_help(
                v,
                format!("{} must be `host`, found {}", of("userns_mode"), v.describe()),
                "`host` turns off user namespace remapping for this container; without the key the engine's setting applies",
            );
        }
    }
    if let Some(v) = fields.value("memswap_limit") {
        container.memswap_limit = if v.as_i64() == Some(-1) {
            Some(-1)
        } else {
            cx.memory(v, &of("memswap_limit"))
        };
    }
    if let Some(v) = fields.value("cpu_shares") {
        container.cpu_shares = cx.int(v, &of("cpu_shares"), 0, 262_144);
    }
    if let Some(v) = fields.value("cpuset") {
        container.cpuset = cx.stringify(v, &of("cpuset"));
        if let Some(set) = &container.cpuset {
            if !is_cpu_list(set) {
                cx.error_help(
                    v,
                    format!("{} is not a CPU list: `{set}`", of("cpuset")),
                    "write CPU numbers and ranges, e.g. `0-3` or `0,2`",
                );
            }
        }
    }
    if let Some(v) = fields.value("annotations") {
        container.annotations = required_pairs(cx, v, &of("annotations"));
    }
}

/// A string, or a list of strings (`dns: 1.1.1.1` or `dns: [1.1.1.1]`).
fn one_or_more(cx: &mut Cx, node: &Node, what: &str) -> Vec<String> {
    match node.kind {
        Kind::Seq(_) => cx.strings(node, what).unwrap_or_default(),
        _ => cx.string(node, what).into_iter().collect(),
    }
}

/// A mapping or `KEY=VALUE` list where every key has a value.
fn required_pairs(cx: &mut Cx, node: &Node, what: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in cx.pairs(node, what, true).unwrap_or_default() {
        match pair.value {
            Some(value) if !pair.key.is_empty() => {
                out.insert(pair.key, value);
            }
            _ => cx.error_help(
                pair.node,
                format!("`{}` in {what} has no value", pair.key),
                "write `KEY=VALUE` in a list, or `KEY: VALUE` in a mapping",
            ),
        }
    }
    out
}

/// `expose: [80, "8080/udp", "3000-3002"]` as sorted `<port>/<protocol>`
/// keys, ranges expanded as the Docker CLI does.
fn expose(cx: &mut Cx, node: &Node, what: &str) -> Vec<String> {
    let Some(items) = cx.seq(node, what) else {
        return Vec::new();
    };
    let mut out: Vec<(u16, String)> = Vec::new();
    for item in items {
        let Some(text) = cx.stringify(item, &format!("an item of {what}")) else {
            continue;
        };
        match parse_expose(&text) {
            Ok(ports) => out.extend(ports),
            Err(reason) => cx.error_help(
                item,
                format!("{what}: `{text}` {reason}"),
                "write a container port, optionally with a protocol or as a range: `80`, `53/udp`, `3000-3005`",
            ),
        }
    }
    out.sort();
    out.dedup();
    out.into_iter()
        .map(|(port, protocol)| format!("{port}/{protocol}"))
        .collect()
}

/// The ports an `expose` entry names.
pub(crate) fn parse_expose(text: &str) -> Result<Vec<(u16, String)>, String> {
    let (ports, protocol) = match text.split_once('/') {
        Some((ports, protocol)) => (ports, protocol.to_ascii_lowercase()),
        None => (text, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "has an unknown protocol `{protocol}` (use tcp, udp or sctp)"
        ));
    }
    let port = |p: &str| match p.trim().parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("is not a port number from 1 to 65535".to_string()),
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if first > last {
        return Err("is a range that ends before it starts".to_string());
    }
    Ok((first..=last).map(|p| (p, protocol.clone())).collect())
}

/// `SIGTERM`, `TERM`, `SIGRTMIN+3` or a signal number.
fn stop_signal(cx: &mut Cx, node: &Node, what: &str) -> Option<String> {
    let signal = cx.stringify(node, what)?;
    let valid = match signal.parse::<u32>() {
        Ok(n) => (1..=64).contains(&n),
        Err(_) => {
            !signal.is_empty()
                && signal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
        }
    };
    if valid {
        Some(signal)
    } else {
        cx.error_help(
            node,
            format!("{what} is not a signal: `{signal}`"),
            "write a signal name like `SIGQUIT`, or its number",
        );
        None
    }
}

/// `extra_hosts` in list (`host:ip`, `host=ip`) or mapping form (`host:
/// ip`, `host: [ip, ip]`), as `host:ip` lines the engine reads. The address
/// may be `host-gateway` (the engine puts in the host's own address).
fn extra_hosts(cx: &mut Cx, node: &Node, what: &str) -> Vec<String> {
    let mut entries: Vec<(String, String, &Node)> = Vec::new();
    match &node.kind {
        Kind::Seq(items) => {
            for item in items {
                let Some(text) = cx.string(item, &format!("an item of {what}")) else {
                    continue;
                };
                // `=` first: Compose's own form, and it cannot be part of an address.
                let split = text.split_once('=').or_else(|| text.split_once(':'));
                match split {
                    Some((host, ip)) => entries.push((host.to_string(), ip.to_string(), item)),
                    None => cx.error_help(
                        item,
                        format!("{what}: `{text}` has no address"),
                        "write `name:address` or `name=address`, e.g. `db.local=10.0.0.5`",
                    ),
                }
            }
        }
        Kind::Map(pairs) => {
            for (key, value) in pairs {
                let host = key.key_text().unwrap_or_default().to_string();
                let one = format!("`{host}` in {what}");
                let addresses = match value.kind {
                    Kind::Seq(_) => cx.strings(value, &one).unwrap_or_default(),
                    _ => cx.string(value, &one).into_iter().collect(),
                };
                for ip in addresses {
                    entries.push((host.clone(), ip, value));
                }
            }
        }
        _ => cx.error(
            node,
            format!(
                "{what} must be a list of `name:address` or a mapping, found {}",
                node.describe()
            ),
        ),
    }
    let mut out = Vec::new();
    for (host, ip, at) in entries {
        let host = host.trim();
        let ip = ip.trim();
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        if !is_dns_name(host) {
            cx.error(at, format!("{what}: `{host}` is not a host name"));
        } else if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
            cx.error_help(
                at,
                format!("{what}: `{ip}` (for `{host}`) is not an IP address"),
                "write an IPv4 or IPv6 address, or `host-gateway` for the host's own address",
            );
        } else {
            out.push(format!("{host}:{ip}"));
        }
    }
    out
}

/// `host[:container[:permissions]]`, and CDI device names
/// (`vendor.com/class=name`, sorted, returned apart: they need Docker API
/// 1.44, which the plan checks per host).
fn devices(cx: &mut Cx, node: &Node, what: &str) -> (Vec<DeviceSpec>, Vec<String>) {
    let Some(items) = cx.seq(node, what) else {
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut cdi = Vec::new();
    for item in items {
        let Some(text) = cx.string(item, &format!("an item of {what}")) else {
            continue;
        };
        if !text.starts_with('/') {
            if is_cdi_name(&text) {
                cdi.push(text);
                continue;
            }
            cx.error_help(
                item,
                format!("{what}: `{text}` is not a device path"),
                "write `/dev/<host device>[:/dev/<in the container>[:rwm]]`, or a CDI device name `<vendor>/<class>=<name>`",
            );
            continue;
        }
        let mut parts = text.splitn(3, ':');
        let host = parts.next().unwrap_or_default().to_string();
        let second = parts.next();
        let third = parts.next();
        // `/dev/x:rw` is a device with permissions, as in the Docker CLI.
        let (container, permissions) = match (second, third) {
            (None, _) => (host.clone(), "rwm".to_string()),
            (Some(p), None) if is_permissions(p) => (host.clone(), p.to_string()),
            (Some(c), None) => (c.to_string(), "rwm".to_string()),
            (Some(c), Some(p)) => (c.to_string(), p.to_string()),
        };
        if !container.starts_with('/') || !is_permissions(&permissions) {
            cx.error_help(
                item,
                format!("{what}: `{text}` is not a device mapping"),
                "write `/dev/<host device>[:/dev/<in the container>[:rwm]]`",
            );
            continue;
        }
        out.push(DeviceSpec {
            host,
            container,
            permissions,
        });
    }
    out.sort();
    out.dedup();
    cdi.sort();
    cdi.dedup();
    (out, cdi)
}

/// A fully qualified CDI device name: `<vendor>/<class>=<name>`
/// (`nvidia.com/gpu=all`).
fn is_cdi_name(text: &str) -> bool {
    let Some((kind, name)) = text.split_once('=') else {
        return false;
    };
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    let word = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    word(vendor, &['.', '-', '_'])
        && word(class, &['.', '-', '_'])
        && word(name, &['.', '-', '_', ':'])
}

fn is_permissions(text: &str) -> bool {
    !text.is_empty() && text.len() <= 3 && text.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// `os[/arch[/variant]]`, e.g. `linux/amd64`, `linux/arm64/v8`.
fn platform(cx: &mut Cx, node: &Node, what: &str) -> Option<String> {
    let text = cx.string(node, what)?;
    let parts: Vec<&str> = text.split('/').collect();
    let valid = (1..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if valid {
        Some(text.to_ascii_lowercase())
    } else {
        cx.error_help(
            node,
            format!("{what} is not a platform: `{text}`"),
            "write `os/arch[/variant]`, e.g. `linux/amd64` or `linux/arm64/v8`",
        );
        None
    }
}

/// `ipc`/`pid`: one of `modes`, or `container:<name>`. `service:<name>` would
/// need the other service's container, which berth names per replica.
fn namespace_mode(cx: &mut Cx, node: &Node, what: &str, modes: &[&str]) -> Option<String> {
    let text = cx.string(node, what)?;
    if modes.contains(&text.as_str()) {
        return Some(text);
    }
    if let Some(name) = text.strip_prefix("container:") {
        if values::is_name(name) {
            return Some(text);
        }
    }
    let help = if let Some(service) = text.strip_prefix("service:") {
        format!("give service `{service}` a `container_name` and write `container:<that name>`")
    } else {
        format!(
            "use one of {}, or `container:<name>`",
            modes
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    cx.error_help(node, format!("{what} is not supported: `{text}`"), help);
    None
}

/// A host or domain name: dot-separated labels of letters, digits and `-`.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// `0-3`, `0,2`, `0-1,4`.
fn is_cpu_list(text: &str) -> bool {
    !text.is_empty()
        && text.split(',').all(|part| {
            let mut bounds = part.splitn(2, '-');
            bounds.all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}
