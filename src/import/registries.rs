//! Registries the host's engine pulls from over plain HTTP, and the line of
//! `berth.yaml` that lets berth ask them for digests the same way.
//!
//! An engine set up with `insecure-registries` pulls from those registries
//! over HTTP; berth's plan asks the registry of every image for its digest
//! over HTTPS unless `settings.insecure_registries` lists it, so an
//! imported repo would stop at its first plan. The import reads the
//! engine's registry config (`docker info`'s `RegistryConfig`) and decides
//! as the engine does ([`plain_http`]); [`with_insecure_registries`] adds
//! the missing names to the repo's `berth.yaml`. Pure: the caller reads the
//! engine and the file, writes the file, and checks it still loads.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::spec::ImageRef;

/// The engine's registry config, as `docker info` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineRegistries {
    /// `IndexConfigs` entries with `Secure: false`: `host[:port]`.
    pub insecure: BTreeSet<String>,
    /// `IndexConfigs` entries with `Secure: true` (`docker.io` among them).
    pub secure: BTreeSet<String>,
    /// `InsecureRegistryCIDRs` (`127.0.0.0/8` by default).
    pub insecure_cidrs: Vec<String>,
}

/// The registries of `images` that the engine reaches over plain HTTP,
/// decided as the engine decides (`isSecureIndex`): a registry configured
/// by name is what its config says; otherwise one whose address falls in
/// an insecure CIDR is plain HTTP. Only addresses written as IPs (and
/// `localhost`) are matched against the CIDRs: a host name would need the
/// host's own DNS, which the runner's may not agree with.
pub fn plain_http<'a>(
    images: impl IntoIterator<Item = &'a str>,
    engine: &EngineRegistries,
) -> BTreeSet<String> {
    images
        .into_iter()
        .map(|image| ImageRef::split(image).registry())
        .filter(|registry| {
            if engine.insecure.contains(registry) {
                return true;
            }
            if engine.secure.contains(registry) {
                return false;
            }
            let ips = addresses(registry);
            engine
                .insecure_cidrs
                .iter()
                .any(|cidr| ips.iter().any(|ip| in_cidr(*ip, cidr)))
        })
        .collect()
}

/// The IPs `host[:port]` names without a lookup.
fn addresses(registry: &str) -> Vec<IpAddr> {
    let host = if let Some(v6) = registry.strip_prefix('[') {
        v6.split_once(']').map_or(v6, |(h, _)| h)
    } else {
        registry.split_once(':').map_or(registry, |(h, _)| h)
    };
    if host == "localhost" {
        return vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ];
    }
    host.parse::<IpAddr>().into_iter().collect()
}

/// Whether `ip` is in `cidr` (`10.0.0.0/8`, `fd00::/8`); a malformed CIDR
/// matches nothing.
fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    let prefix = |a: u128, b: u128, width: u32| {
        bits <= width && (bits == 0 || (a ^ b) >> (width - bits) == 0)
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            prefix(u128::from(u32::from(a)), u128::from(u32::from(b)), 32)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix(u128::from(a), u128::from(b), 128),
        _ => false,
    }
}

/// `text` (a `berth.yaml`) with `registries` added to
/// `settings.insecure_registries`, a comment saying why above them; `None`
/// when the file is not in a shape this edit is sure of (a `settings` that
/// is not a block mapping at the top level, or one that has an
/// `insecure_registries` already): the caller then says what to add. The
/// caller checks the result loads and lists them.
pub fn with_insecure_registries(text: &str, registries: &[String], host: &str) -> Option<String> {
    if registries.is_empty() {
        return Some(text.to_string());
    }
    let list = registries
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ");
    let comment = format!(
        "# Added by `berth import`: host `{host}`'s engine pulls from these over plain HTTP."
    );
    let lines: Vec<&str> = text.lines().collect();
    // A top-level key starts at column 0 (comments and blank lines aside).
    let top_level = |l: &str| !l.is_empty() && !l.starts_with([' ', '\t', '#']);
    let settings_at = lines.iter().position(|l| {
        l.strip_prefix("settings")
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    });
    let Some(at) = settings_at else {
        // No settings yet (and no other spelling of the key): a new block.
        if lines
            .iter()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("settings"))
        {
            return None;
        }
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!(
            "settings:\n  {comment}\n  insecure_registries: [{list}]\n"
        ));
        return Some(out);
    };
    // `settings:` alone on its line (a trailing comment aside): a block.
    let after = lines[at]["settings".len()..].trim_start();
    let value = after.strip_prefix(':')?.trim();
    if !(value.is_empty() || value.starts_with('#')) {
        return None;
    }
    let children: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| !top_level(l))
        .copied()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let indent: String = match children.first() {
        Some(first) => first.chars().take_while(|c| *c == ' ').collect(),
        None => "  ".into(),
    };
    if indent.is_empty() || children.first().is_some_and(|f| f.starts_with('\t')) {
        return None;
    }
    let has_key = children.iter().any(|l| {
        l.strip_prefix(indent.as_str()).is_some_and(|k| {
            k.trim_start_matches(['"', '\''])
                .starts_with("insecure_registries")
        })
    });
    if has_key {
        return None;
    }
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(at + 1, format!("{indent}{comment}"));
    out.insert(at + 2, format!("{indent}insecure_registries: [{list}]"));
    let mut text = out.join("\n");
    text.push('\n');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bed's engines: two registries by name, the default CIDR.
    fn bed() -> EngineRegistries {
        EngineRegistries {
            insecure: BTreeSet::from(["10.77.0.1:5000".into(), "10.77.0.1:5001".into()]),
            secure: BTreeSet::from(["docker.io".into()]),
            insecure_cidrs: vec!["127.0.0.0/8".into(), "fd00::/8".into(), "bad".into()],
        }
    }

    #[test]
    fn registries_are_plain_http_as_the_engine_decides() {
        let found = plain_http(
            [
                "10.77.0.1:5000/berth/web:v1",
                "10.77.0.1:5000/berth/worker:v1",
                "nginx:1.25",
                "docker.io/library/redis",
                "registry.example/app:1",
                "127.0.0.1:5002/loop:1",
                "localhost:5003/loop:1",
                "[fd00::7]:5000/six:1",
                "10.0.0.9:5000/other:1",
            ],
            &bed(),
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            [
                "10.77.0.1:5000",
                "127.0.0.1:5002",
                "[fd00::7]:5000",
                "localhost:5003"
            ]
        );
        // Named secure wins over a CIDR, as in the engine.
        let mut engine = bed();
        engine.secure.insert("127.0.0.1:5002".into());
        assert!(plain_http(["127.0.0.1:5002/loop:1"], &engine).is_empty());
        assert!(in_cidr("10.1.2.3".parse().unwrap(), "10.0.0.0/8"));
        assert!(!in_cidr("11.1.2.3".parse().unwrap(), "10.0.0.0/8"));
        assert!(in_cidr("11.1.2.3".parse().unwrap(), "0.0.0.0/0"));
        assert!(!in_cidr("10.1.2.3".parse().unwrap(), "fd00::/8"));
        assert!(!in_cidr("10.1.2.3".parse().unwrap(), "10.0.0.0/33"));
    }

    #[test]
    fn the_inventory_gets_the_registries_where_it_is_safe_to_add_them() {
        let add = ["10.77.0.1:5000".to_string()];
        let edit = |text: &str| with_insecure_registries(text, &add, "edge-1");
        let comment =
            "# Added by `berth import`: host `edge-1`'s engine pulls from these over plain HTTP.";

        // No settings: a block at the end.
        assert_eq!(
            edit("project: p\nhosts:\n  - {name: edge-1, address: 10.0.0.1}").as_deref(),
            Some(format!("project: p\nhosts:\n  - {{name: edge-1, address: 10.0.0.1}}\nsettings:\n  {comment}\n  insecure_registries: [\"10.77.0.1:5000\"]\n").as_str())
        );
        // A block of settings: a key of it, at its indentation.
        assert_eq!(
            edit("project: p\nsettings:  # ours\n    # known hosts\n    known_hosts: kh\nhosts: []\n").as_deref(),
            Some(format!("project: p\nsettings:  # ours\n    {comment}\n    insecure_registries: [\"10.77.0.1:5000\"]\n    # known hosts\n    known_hosts: kh\nhosts: []\n").as_str())
        );
        // Shapes it is not sure of are left alone.
        for text in [
            "project: p\nsettings: {known_hosts: kh}\n",
            "project: p\nsettings:\n  insecure_registries: [other:5000]\n",
            "project: p\n\"settings\":\n  known_hosts: kh\n",
            "{project: p, settings: {parallel: 2}}\n",
        ] {
            assert_eq!(edit(text), None, "{text}");
        }
        assert_eq!(
            with_insecure_registries("project: p\n", &[], "h").as_deref(),
            Some("project: p\n")
        );
    }
}
