//! `ports:` of a service, short (`"127.0.0.1:8080:80/udp"`, ranges) and
//! long syntax, as sorted [`PortSpec`]s, one per published port.
//!
//! Ports are published on each host that runs a replica (`mode: host`);
//! Swarm's `ingress` routing mesh does not exist without Swarm and is refused.

use super::model::PortSpec;
use super::read::Cx;
use super::yaml::{Kind, Node};

/// `name` and `app_protocol` describe a port for people and tools; Compose
/// passes neither to the engine, so reading them as text is all there is.
const PORT_KEYS: &[&str] = &[
    "target",
    "published",
    "host_ip",
    "protocol",
    "mode",
    "name",
    "app_protocol",
];

pub(crate) fn ports(cx: &mut Cx, node: &Node, what: &str) -> Vec<PortSpec> {
    let Some(items) = cx.seq(node, &format!("`ports` of {what}")) else {
        return Vec::new();
    };
    let mut out: Vec<(PortSpec, &Node)> = Vec::new();
    for item in items {
        if let Kind::Map(_) = item.kind {
            if let Some(port) = long_port(cx, item, what) {
                out.push((port, item));
            }
            continue;
        }
        let Some(text) = cx.stringify(item, &format!("a port of {what}")) else {
            continue;
        };
        match parse_port(&text) {
            Ok(ports) => out.extend(ports.into_iter().map(|p| (p, item))),
            Err(reason) => cx.error_help(
                item,
                format!("{what} port `{text}`: {reason}"),
                "write `[host_ip:][host_port:]container_port[/udp]`, e.g. `8080:80` or `127.0.0.1:5432:5432`",
            ),
        }
    }
    for (i, (port, item)) in out.iter().enumerate() {
        let Some(published) = port.published else {
            continue;
        };
        let clash = out[..i].iter().any(|(other, _)| {
            other.published == Some(published)
                && other.protocol == port.protocol
                && (other.host_ip.is_none()
                    || port.host_ip.is_none()
                    || other.host_ip == port.host_ip)
        });
        if clash {
            cx.error(
                item,
                format!(
                    "{what} publishes host port {published}/{} twice",
                    port.protocol
                ),
            );
        }
    }
    let mut ports: Vec<PortSpec> = out.into_iter().map(|(p, _)| p).collect();
    ports.sort();
    ports.dedup();
    ports
}

fn long_port(cx: &mut Cx, node: &Node, what: &str) -> Option<PortSpec> {
    let fields = cx.map_with(node, &format!("a port of {what}"), PORT_KEYS)?;
    for key in ["name", "app_protocol"] {
        if let Some(v) = fields.value(key) {
            cx.string(v, &format!("`{key}` of a port of {what}"));
        }
    }
    let Some(target) = fields.value("target") else {
        cx.error_help(
            node,
            format!("a port of {what} has no `target`"),
            "set `target:` to the container port",
        );
        return None;
    };
    let target = cx.int(target, &format!("`target` of a port of {what}"), 1, 65535)? as u16;
    let published = match fields.value("published") {
        None => None,
        Some(v) => {
            let text = cx.stringify(v, &format!("`published` of a port of {what}"))?;
            match port_number(&text, "host port") {
                Ok(p) => Some(p),
                Err(reason) => {
                    cx.error(v, format!("{what} port: {reason}"));
                    return None;
                }
            }
        }
    };
    let host_ip = match fields.value("host_ip") {
        None => None,
        Some(v) => {
            let ip = cx.string(v, &format!("`host_ip` of a port of {what}"))?;
            if ip.parse::<std::net::IpAddr>().is_err() {
                cx.error(
                    v,
                    format!("`host_ip` of a port of {what} is not an IP address: `{ip}`"),
                );
                return None;
            }
            Some(ip)
        }
    };
    let protocol = match fields.value("protocol") {
        None => "tcp".to_string(),
        Some(v) => {
            let protocol = cx
                .string(v, &format!("`protocol` of a port of {what}"))?
                .to_ascii_lowercase();
            if protocol != "tcp" && protocol != "udp" {
                cx.error(
                    v,
                    format!(
                        "`protocol` of a port of {what} must be `tcp` or `udp`, found `{protocol}`"
                    ),
                );
                return None;
            }
            protocol
        }
    };
    if let Some(v) = fields.value("mode") {
        match v.scalar() {
            Some("host") => {}
            Some("ingress") => cx.error_help(
                v,
                format!("{what}: port mode `ingress` needs Docker Swarm"),
                "berth publishes ports on each host running a replica: write `mode: host` or drop `mode`",
            ),
            _ => cx.error(v, format!("`mode` of a port of {what} must be `host`, found {}", v.describe())),
        }
    }
    Some(PortSpec {
        host_ip,
        published,
        target,
        protocol,
    })
}

/// Compose's short port syntax: `[host_ip:][published[-end]:]target[-end][/protocol]`,
/// ranges expanded one port per entry.
pub(crate) fn parse_port(text: &str) -> Result<Vec<PortSpec>, String> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, protocol)) => (spec, protocol.to_ascii_lowercase()),
        None => (text, "tcp".to_string()),
    };
    if protocol != "tcp" && protocol != "udp" {
        return Err(format!(
            "protocol `{protocol}` is not supported (use tcp or udp)"
        ));
    }
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after.split_once(']').ok_or("unclosed `[` in the host IP")?;
        let rest = rest
            .strip_prefix(':')
            .ok_or("expected `:` after the host IP")?;
        (Some(ip), rest)
    } else {
        match spec.matches(':').count() {
            0 | 1 => (None, spec),
            2 => {
                let (ip, rest) = spec.split_once(':').ok_or("bad port")?;
                (Some(ip), rest)
            }
            _ => {
                return Err(
                    "too many `:` (write an IPv6 host IP in brackets: `[::1]:8080:80`)".to_string(),
                )
            }
        }
    };
    if let Some(ip) = host_ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("`{ip}` is not an IP address"));
        }
    }
    let (published, target) = match rest.split_once(':') {
        Some((published, target)) => (Some(published).filter(|p| !p.is_empty()), target),
        None => (None, rest),
    };
    let (target_start, target_end) = port_range(target, "container port")?;
    let count = target_end - target_start;
    let published = match published {
        None => None,
        Some(text) => {
            let (start, end) = port_range(text, "host port")?;
            if end - start != count {
                return Err(if end == start {
                    "one host port for a range of container ports".to_string()
                } else if count == 0 {
                    "a range of host ports for one container port is not supported: publish one host port".to_string()
                } else {
                    "the host and container port ranges differ in length".to_string()
                });
            }
            Some(start)
        }
    };
    Ok((0..=count)
        .map(|i| PortSpec {
            host_ip: host_ip.map(str::to_string),
            published: published.map(|p| p + i),
            target: target_start + i,
            protocol: protocol.clone(),
        })
        .collect())
}

fn port_range(text: &str, which: &str) -> Result<(u16, u16), String> {
    match text.split_once('-') {
        Some((start, end)) => {
            let (start, end) = (port_number(start, which)?, port_number(end, which)?);
            if start > end {
                return Err(format!("{which} range `{text}` ends before it starts"));
            }
            Ok((start, end))
        }
        None => {
            let port = port_number(text, which)?;
            Ok((port, port))
        }
    }
}

fn port_number(text: &str, which: &str) -> Result<u16, String> {
    let number: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{which} `{text}` is not a number"))?;
    if (1..=65535).contains(&number) {
        Ok(number as u16)
    } else {
        Err(format!("{which} {number} is out of range (1-65535)"))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_port;
    use crate::spec::PortSpec;

    fn port(
        host_ip: Option<&str>,
        published: Option<u16>,
        target: u16,
        protocol: &str,
    ) -> PortSpec {
        PortSpec {
            host_ip: host_ip.map(str::to_string),
            published,
            target,
            protocol: protocol.to_string(),
        }
    }

    #[test]
    fn short_ports() {
        assert_eq!(parse_port("80").unwrap(), [port(None, None, 80, "tcp")]);
        assert_eq!(
            parse_port("8080:80").unwrap(),
            [port(None, Some(8080), 80, "tcp")]
        );
        assert_eq!(
            parse_port("127.0.0.1:8080:80/udp").unwrap(),
            [port(Some("127.0.0.1"), Some(8080), 80, "udp")]
        );
        assert_eq!(
            parse_port("127.0.0.1::80").unwrap(),
            [port(Some("127.0.0.1"), None, 80, "tcp")]
        );
        assert_eq!(
            parse_port("[::1]:53:53/udp").unwrap(),
            [port(Some("::1"), Some(53), 53, "udp")]
        );
        assert_eq!(
            parse_port("8080-8081:80-81").unwrap(),
            [
                port(None, Some(8080), 80, "tcp"),
                port(None, Some(8081), 81, "tcp")
            ]
        );
        assert_eq!(parse_port("9000-9001").unwrap().len(), 2);
    }

    #[test]
    fn bad_ports() {
        for (text, reason) in [
            ("80800:80", "host port 80800 is out of range (1-65535)"),
            ("8080:0", "container port 0 is out of range (1-65535)"),
            ("x:80", "host port `x` is not a number"),
            ("80/sctp", "protocol `sctp` is not supported (use tcp or udp)"),
            ("1.2.3:80:80", "`1.2.3` is not an IP address"),
            ("8080-8082:80-81", "the host and container port ranges differ in length"),
            ("8080-8081:80", "a range of host ports for one container port is not supported: publish one host port"),
            ("81-80", "container port range `81-80` ends before it starts"),
            ("a:b:c:d", "too many `:` (write an IPv6 host IP in brackets: `[::1]:8080:80`)"),
        ] {
            assert_eq!(parse_port(text).unwrap_err(), reason, "{text}");
        }
    }
}
