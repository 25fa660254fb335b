//! url: tells a git URL from anything else and derives what berth needs from
//! one: the SSH port for the host-key check, the cache directory name, and a
//! form safe to print. Pure string work, no I/O.

use sha2::{Digest, Sha256};

/// Schemes libgit2 fetches over (with the `https` and `ssh` features).
const SCHEMES: [&str; 6] = [
    "ssh://",
    "git+ssh://",
    "ssh+git://",
    "https://",
    "http://",
    "file://",
];

/// True for `scheme://...` with a scheme from [`SCHEMES`], and for the
/// scp-like `[user@]host:path` (a colon before any slash, as git decides).
pub(crate) fn is_git_url(s: &str) -> bool {
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if let Some(scheme) = SCHEMES.iter().find(|p| lower.starts_with(**p)) {
        return s.len() > scheme.len();
    }
    scp_like(s).is_some()
}

/// `[user@]host:path` → host, when `s` has that shape and no scheme.
fn scp_like(s: &str) -> Option<&str> {
    if s.contains("://") {
        return None;
    }
    let (before, path) = s.split_once(':')?;
    if before.contains('/') || path.is_empty() {
        return None;
    }
    let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
    (!host.is_empty()).then_some(host)
}

/// The port an SSH URL connects to (22 unless the URL names one); None for
/// URLs that are not SSH.
pub(crate) fn ssh_port(url: &str) -> Option<u16> {
    let lower = url.to_ascii_lowercase();
    let rest = ["ssh://", "git+ssh://", "ssh+git://"]
        .iter()
        .find_map(|p| lower.strip_prefix(p).map(|_| &url[p.len()..]));
    let Some(rest) = rest else {
        return scp_like(url).map(|_| 22);
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = if let Some(after_v6) = host_port.strip_prefix('[') {
        after_v6.split_once("]:").map(|(_, p)| p)
    } else {
        host_port.split_once(':').map(|(_, p)| p)
    };
    Some(port.and_then(|p| p.parse().ok()).unwrap_or(22))
}

/// `<name>-<16 hex of sha256(url)>`: readable in `ls`, unique per URL so two
/// repos with the same last path segment never share a cache.
pub(crate) fn cache_name(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let last = trimmed.rsplit(['/', ':']).next().unwrap_or_default();
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    name = name.trim_start_matches(['.', '-']).to_owned();
    if name.is_empty() {
        name = "repo".to_owned();
    }
    let digest = hex::encode(Sha256::digest(url.as_bytes()));
    format!("{name}-{}", &digest[..16])
}

/// The URL with any password replaced by `***`: a token in an https URL must
/// not reach logs, reports or container labels.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls() {
        for url in [
            "ssh://git@example.com/org/repo.git",
            "SSH://example.com:2222/repo",
            "git+ssh://git@example.com/repo",
            "https://example.com/org/repo.git",
            "http://example.com/repo",
            "file:///srv/git/repo.git",
            "git@example.com:org/repo.git",
            "example.com:repo",
        ] {
            assert!(is_git_url(url), "{url}");
        }
        for not_url in [
            "garbage",
            "./stacks",
            "/no/such/dir",
            "dir/with:colon",
            "host:",
            ":path",
            "ftp://example.com/repo",
            "https://",
            "git@example.com: org/repo",
        ] {
            assert!(!is_git_url(not_url), "{not_url}");
        }
    }

    #[test]
    fn ssh_ports() {
        assert_eq!(ssh_port("ssh://git@example.com/repo"), Some(22));
        assert_eq!(ssh_port("ssh://git@example.com:2222/repo"), Some(2222));
        assert_eq!(ssh_port("ssh://[::1]:2200/repo"), Some(2200));
        assert_eq!(ssh_port("ssh://[::1]/repo"), Some(22));
        assert_eq!(ssh_port("git@example.com:org/repo.git"), Some(22));
        assert_eq!(ssh_port("https://example.com:8443/repo"), None);
        assert_eq!(ssh_port("file:///srv/repo"), None);
    }

    #[test]
    fn cache_names() {
        let a = cache_name("git@example.com:org/infra.git");
        assert!(
            a.starts_with("infra-") && a.len() == "infra-".len() + 16,
            "{a}"
        );
        assert_ne!(a, cache_name("git@example.com:other/infra.git"));
        assert!(cache_name("file:///srv/my repo/").starts_with("my-repo-"));
        assert!(cache_name("https://example.com/").starts_with("example.com-"));
        assert!(cache_name("file:///..").starts_with("repo-"));
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("https://ci:s3cret@example.com/org/repo.git"),
            "https://ci:***@example.com/org/repo.git"
        );
        assert_eq!(
            redact("https://ci@example.com/repo"),
            "https://ci@example.com/repo"
        );
        assert_eq!(
            redact("git@example.com:org/repo.git"),
            "git@example.com:org/repo.git"
        );
    }
}
