//! Small text formats Compose users already know: Go durations (`1m30s`),
//! Docker memory sizes (`512m`), CPU counts (`0.5`), shell words, names.
//!
//! Each parser returns `Err(reason)` with a lowercase reason that callers
//! prefix with what was being read.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// A duration written the Go/Compose way; in the JSON schemas it is a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration(pub Duration);

impl schemars::JsonSchema for GoDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: numbers with units ns, us, ms, s, m, h, e.g. `30s`, `1m30s`, `500ms`.",
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$",
            "examples": ["30s"]
        })
    }
}

/// A Go/Compose duration: one or more `<number><unit>` with units `ns`, `us`
/// (or `µs`), `ms`, `s`, `m`, `h`; decimals allowed (`1.5h`); `0` alone is fine.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text, false)
}

/// The period of `pull_policy: every_<period>`: a [`duration`] that may
/// also count days (`d`) and weeks (`w`), as Compose reads it (`every_2d`,
/// `every_1w12h`; the Compose schema writes these with `d` and `w`).
pub(crate) fn period(text: &str) -> Result<Duration, String> {
    parse_duration(text, true)
}

fn parse_duration(text: &str, days: bool) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    if text.starts_with('-') {
        return Err("a duration cannot be negative".to_string());
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" if days => 24.0 * 3600e9,
            "w" if days => 7.0 * 24.0 * 3600e9,
            "" => return Err(format!("`{text}` has no unit")),
            other => return Err(format!("`{text}` has an unknown unit `{other}`")),
        };
        total_ns += value * scale;
        rest = after;
    }
    // About 292 years: far beyond any timeout, and safe to convert.
    if !total_ns.is_finite() || total_ns > 9.2e18 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// A Docker memory size: bytes, or a number with `b`, `k`, `m`, `g`, `t`
/// (optionally followed by `b`, any case), binary multiples as `docker run -m`.
pub(crate) fn memory(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (for example `512m` or `1g`)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{text}` has an unknown unit `{other}` (use b, k, m, g or t)"
            ))
        }
    };
    let bytes = (value * scale).floor();
    if bytes < 1.0 || bytes > i64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as i64)
}

/// CPUs as Docker's NanoCpus (`0.5` -> 500000000).
pub(crate) fn nano_cpus(text: &str) -> Result<i64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of CPUs (for example `0.5`)"))?;
    if !value.is_finite() || value <= 0.0 || value > 1e6 {
        return Err(format!("`{text}` is not a positive number of CPUs"));
    }
    Ok((value * 1e9).round() as i64)
}

/// Splits a command line the way Compose does for a string `command:` or
/// `entrypoint:` (POSIX shell words: quotes and backslashes, no expansion).
pub(crate) fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".to_string()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".to_string()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Err("trailing backslash".to_string()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `[a-z0-9][a-z0-9_-]*`: project and stack names (they become label values
/// and engine-side name prefixes).
pub(crate) fn is_slug(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: host, service, network and volume keys.
pub(crate) fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Why `name` cannot name a container berth makes: `(what is wrong, help)`.
pub(crate) fn container_name_problem(name: &str) -> Option<(&'static str, &'static str)> {
    if name.len() < 2 || !is_name(name) {
        Some((
            "is not a valid container name",
            "use at least two of letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        ))
    } else if name.contains(".berth-") {
        // `.berth-old`, `.berth-new`, `.berth-failed` mark replace leftovers.
        Some((
            "ends like the names berth gives containers it keeps during a replace",
            "choose a name without the `.berth-` suffix",
        ))
    } else {
        None
    }
}

/// The closest candidate within a small edit distance (or sharing a long
/// prefix, like `frontend` and `front`), for "did you mean". The distance
/// is optimal string alignment: a swap of two neighbours (`imgae`) counts
/// as one edit.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(word, c), *c))
        .filter(|(d, c)| {
            *d <= limit
                || (c.len().min(word.len()) >= 4 && (c.starts_with(word) || word.starts_with(c)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Whether `addr` lies in `subnet` (`172.28.0.0/16`, `fd00:1::/64`). None
/// when `subnet` is not a CIDR of the address's family: the engine judges
/// a malformed subnet when it creates the network.
pub(crate) fn in_subnet(addr: std::net::IpAddr, subnet: &str) -> Option<bool> {
    use std::net::IpAddr;
    let (net, bits) = subnet.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    match (addr, net.parse::<IpAddr>().ok()?) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            Some(u32::from(a) & mask == u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            Some(u128::from(a) & mask == u128::from(n) & mask)
        }
        _ => None,
    }
}

/// `path` (relative to the stack's directory) as a path relative to the repo
/// root, or None when it is absolute or climbs out of the repo.
pub(crate) fn repo_relative(stack_dir: &Path, path: &str) -> Option<PathBuf> {
    let joined = stack_dir.join(path);
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for component in joined.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_subnets() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(in_subnet(ip("172.28.0.10"), "172.28.0.0/16"), Some(true));
        assert_eq!(in_subnet(ip("172.29.0.10"), "172.28.0.0/16"), Some(false));
        assert_eq!(in_subnet(ip("10.1.2.3"), "0.0.0.0/0"), Some(true));
        assert_eq!(in_subnet(ip("10.1.2.3"), "10.1.2.3/32"), Some(true));
        assert_eq!(in_subnet(ip("fd00:1::5"), "fd00:1::/64"), Some(true));
        assert_eq!(in_subnet(ip("fd00:2::5"), "fd00:1::/64"), Some(false));
        // Another family, or not a CIDR: not ours to judge.
        assert_eq!(in_subnet(ip("fd00:1::5"), "172.28.0.0/16"), None);
        assert_eq!(in_subnet(ip("172.28.0.1"), "172.28.0.0/40"), None);
        assert_eq!(in_subnet(ip("172.28.0.1"), "172.28.0.0"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration("2us").unwrap(), Duration::from_micros(2));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("0").unwrap(), Duration::ZERO);
        assert_eq!(duration("10").unwrap_err(), "`10` has no unit");
        assert!(duration("5x").unwrap_err().contains("unknown unit `x`"));
        assert!(duration("-1s").is_err());
        assert!(duration("").is_err());
        assert!(duration("s").is_err());
    }

    /// `every_<period>` counts days and weeks too; plain durations do not.
    #[test]
    fn periods() {
        assert_eq!(period("2d").unwrap(), Duration::from_secs(2 * 24 * 3600));
        assert_eq!(
            period("1w12h").unwrap(),
            Duration::from_secs(7 * 24 * 3600 + 12 * 3600)
        );
        assert_eq!(period("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert!(duration("2d").unwrap_err().contains("unknown unit `d`"));
        assert!(period("2y").unwrap_err().contains("unknown unit `y`"));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(memory("512m").unwrap(), 512 * 1024 * 1024);
        assert_eq!(memory("1g").unwrap(), 1 << 30);
        assert_eq!(memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(memory("1024").unwrap(), 1024);
        assert_eq!(memory("64MB").unwrap(), 64 << 20);
        assert_eq!(memory("2kb").unwrap(), 2048);
        assert!(memory("12q").is_err());
        assert!(memory("m").is_err());
        assert!(memory("0").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(nano_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(nano_cpus("2").unwrap(), 2_000_000_000);
        assert!(nano_cpus("0").is_err());
        assert!(nano_cpus("lots").is_err());
    }

    #[test]
    fn words() {
        assert_eq!(
            shell_words(r#"sh -c 'echo "hi there"' a\ b "x\"y""#).unwrap(),
            vec!["sh", "-c", "echo \"hi there\"", "a b", "x\"y"]
        );
        assert_eq!(shell_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_words("''").unwrap(), vec![""]);
        assert!(shell_words("echo 'oops").is_err());
    }

    #[test]
    fn dollars() {}

    #[test]
    fn names_and_suggestions() {
        assert!(is_slug("web-1_a"));
        assert!(!is_slug("Web"));
        assert!(!is_slug("-web"));
        assert!(is_name("Edge-1.a_b"));
        assert!(!is_name(".x"));
        assert_eq!(suggest("volumez", &["volumes", "image"]), Some("volumes"));
        assert_eq!(suggest("zzz", &["volumes", "image"]), None);
        assert_eq!(suggest("imgae", &["volumes", "image"]), Some("image"));
        assert_eq!(suggest("frontend", &["front", "back"]), Some("front"));
        assert_eq!(suggest("port", &["user"]), None);
    }
}
