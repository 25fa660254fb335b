//! known_hosts: checks an SSH host key against the text of an OpenSSH
//! `known_hosts` file.
//!
//! libgit2 consults only `~/.ssh/known_hosts` and leaves an unknown host to the
//! certificate callback, so berth decides itself: `BERTH_KNOWN_HOSTS` works and
//! an unknown host is an error, never trust on first use.
//!
//! Input: the file's text, the host, the port and the key blob (SSH wire
//! format, as the server sent it). Output: a [`HostKeyStatus`]. Pure.
//!
//! Supported: plain and `[host]:port` patterns, comma lists, `*`/`?`
//! wildcards, `!` negation, hashed `|1|salt|hmac` entries and `@revoked`.
//! `@cert-authority` lines are skipped: libssh2 does not offer host
//! certificates.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// What the file says about a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostKeyStatus {
    /// An entry for the host carries exactly this key.
    Known,
    /// The key is listed under `@revoked` for the host.
    Revoked,
    /// Entries exist for the host, none with this key; the key types they
    /// list, so a caller can tell a changed key from an unlisted key type.
    Changed { known_types: Vec<String> },
    /// No entry names the host.
    Unknown,
}

/// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
pub(crate) fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks `key` for `host:port` against the lines of a `known_hosts` file.
/// Malformed lines are skipped, as OpenSSH does.
pub(crate) fn check(known_hosts: &str, host: &str, port: u16, key: &[u8]) -> HostKeyStatus {
    let name = lookup_name(host, port);
    let mut known = false;
    let mut other_types = Vec::new();
    for line in known_hosts.lines() {
        let Some(entry) = parse_line(line) else {
            continue;
        };
        if !hosts_match(entry.hosts, &name) {
            continue;
        }
        match entry.marker {
            Marker::CertAuthority => {}
            Marker::Revoked => {
                if entry.key == key {
                    return HostKeyStatus::Revoked;
                }
            }
            Marker::None => {
                if entry.key == key {
                    known = true;
                } else if !other_types.iter().any(|t| t == entry.key_type) {
                    other_types.push(entry.key_type.to_owned());
                }
            }
        }
    }
    if known {
        HostKeyStatus::Known
    } else if other_types.is_empty() {
        HostKeyStatus::Unknown
    } else {
        HostKeyStatus::Changed {
            known_types: other_types,
        }
    }
}

/// The key type named inside a wire-format key blob (`ssh-ed25519`, ...).
pub(crate) fn key_type(blob: &[u8]) -> Option<&str> {
    let len_bytes: [u8; 4] = blob.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

/// The SHA256 fingerprint as `ssh-keygen -l` prints it, so a user can
/// compare it with what the server's admin publishes.
pub(crate) fn fingerprint(blob: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Entry<'a> {
    marker: Marker,
    hosts: &'a str,
    key_type: &'a str,
    key: Vec<u8>,
}

fn parse_line(line: &str) -> Option<Entry<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let key = STANDARD.decode(fields.next()?).ok()?;
    Some(Entry {
        marker,
        hosts: first,
        key_type,
        key,
    })
}

/// OpenSSH semantics: any positive pattern must match and no negated one.
fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if glob_match(pattern.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `salt|hash`, both base64: hash = HMAC-SHA1(key = salt, message = name).
fn hashed_match(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` matches any run, `?` one byte; everything else (`[`, `]`) is literal.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMo8wRZjTbX3qJ+a9+A1EW0mvQJ/iUPQSOGOGnbuUvOz";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILt7/AL+IAaNKlSJInX9G6cSptWkaEq78WYinbU6aMFj";
    /// `git.example.com` and `[git.example.com]:2222`, hashed by `ssh-keygen -H`.
    const HASHED: &str = "\
|1|yubWHd3WSjjrmKfUIk4NBn12oZU=|Ce83GB23W5RfCi27Z94m3O65Syk= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMo8wRZjTbX3qJ+a9+A1EW0mvQJ/iUPQSOGOGnbuUvOz
|1|UIy5hKYi0YAffrtxLMArIrtvA7o=|eSDBOdlQCMDm76VgsbSnJC0w/h0= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMo8wRZjTbX3qJ+a9+A1EW0mvQJ/iUPQSOGOGnbuUvOz
";

    fn key(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn plain_entry_matches_its_key_only() {
        let file = format!("# comment\n\ngit.example.com,10.0.0.5 ssh-ed25519 {K1} me@laptop\n");
        assert_eq!(
            check(&file, "git.example.com", 22, &key(K1)),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(&file, "GIT.Example.com", 22, &key(K1)),
            HostKeyStatus::Known
        );
        assert_eq!(check(&file, "10.0.0.5", 22, &key(K1)), HostKeyStatus::Known);
        assert_eq!(
            check(&file, "git.example.com", 22, &key(K2)),
            HostKeyStatus::Changed {
                known_types: vec!["ssh-ed25519".into()]
            }
        );
        assert_eq!(
            check(&file, "other.example.com", 22, &key(K1)),
            HostKeyStatus::Unknown
        );
        // A plain entry does not cover another port.
        assert_eq!(
            check(&file, "git.example.com", 2222, &key(K1)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn bracketed_port_entry() {
        let file = format!("[git.example.com]:2222 ssh-ed25519 {K1}\n");
        assert_eq!(
            check(&file, "git.example.com", 2222, &key(K1)),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(&file, "git.example.com", 22, &key(K1)),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            check(&file, "git.example.com", 2222, &key(K2)),
            HostKeyStatus::Changed {
                known_types: vec!["ssh-ed25519".into()]
            }
        );
    }

    #[test]
    fn hashed_entries() {
        assert_eq!(
            check(HASHED, "git.example.com", 22, &key(K1)),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(HASHED, "git.example.com", 2222, &key(K1)),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(HASHED, "git.example.com", 2223, &key(K1)),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            check(HASHED, "git.example.org", 22, &key(K1)),
            HostKeyStatus::Unknown
        );
        assert!(matches!(
            check(HASHED, "git.example.com", 22, &key(K2)),
            HostKeyStatus::Changed { .. }
        ));
    }

    #[test]
    fn wildcards_negation_and_revocation() {
        let file = format!(
            "*.example.com,!evil.example.com ssh-ed25519 {K1}\n\
             @revoked * ssh-ed25519 {K2}\n\
             @cert-authority *.example.com ssh-ed25519 {K2}\n"
        );
        assert_eq!(
            check(&file, "git.example.com", 22, &key(K1)),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(&file, "evil.example.com", 22, &key(K1)),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            check(&file, "git.example.com", 22, &key(K2)),
            HostKeyStatus::Revoked
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let file = format!(
            "garbage\nhost ssh-ed25519 !!notbase64!!\n@weird host x y\nhost ssh-ed25519 {K1}\n"
        );
        assert_eq!(check(&file, "host", 22, &key(K1)), HostKeyStatus::Known);
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"abbc"));
        assert!(glob_match(b"[h*]:22?2", b"[host]:2222"));
        assert!(!glob_match(b"host", b"host2"));
        assert!(glob_match(b"*.*.com", b"a.b.com"));
    }

    #[test]
    fn key_type_and_fingerprint() {
        assert_eq!(key_type(&key(K1)), Some("ssh-ed25519"));
        assert_eq!(key_type(b"\0\0"), None);
        // As printed by `ssh-keygen -lf` for K1.
        assert_eq!(
            fingerprint(&key(K1)),
            "SHA256:TxchXmLxamMi9wfFirgGT3GVZtrmAI918mEXkoi0PXo"
        );
    }
}
