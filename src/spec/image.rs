//! Docker image references, checked against the grammar of
//! `distribution/reference` so a typo fails at `plan` time, not in a pull on
//! some host halfway through an apply.
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path-component ( "/" path-component )*
//! domain    := host [ ":" port ]         (first component with `.` or `:`, or `localhost`)
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest    := algorithm ":" hex         (sha256: 64 lowercase hex digits)
//! ```

use std::fmt;

/// Registry hosts that all mean Docker Hub, in the forms users and
/// `docker login` write them.
pub const DOCKER_HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// An image reference split into its parts: the one parser of references
/// in berth. The spec checks it ([`ImageRef::parse`]); the plan compares it
/// with what an engine lists ([`ImageRef::engine_form`]); a pull asks for it
/// by repository and tag ([`ImageRef::pull_args`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `[domain/]path` as written: `10.77.0.1:5000/berth/web`, `redis`.
    pub name: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits without checking: a tag is after the last `:` of the last
    /// path component (a `:` before the last `/` is a registry port), a
    /// digest after `@`.
    pub fn split(reference: &str) -> ImageRef {
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        ImageRef {
            name: name.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        }
    }

    /// Splits and checks against the grammar above.
    pub fn parse(reference: &str) -> Result<ImageRef, String> {
        if reference.is_empty() {
            return Err("the reference is empty".to_string());
        }
        if reference.chars().any(char::is_whitespace) {
            return Err("it contains whitespace".to_string());
        }
        let r = ImageRef::split(reference);
        if let Some(digest) = &r.digest {
            check_digest(digest)?;
        }
        if let Some(tag) = &r.tag {
            check_tag(tag)?;
        }
        check_name(&r.name)?;
        Ok(r)
    }

    /// The form an engine lists in `RepoTags` / `RepoDigests`: Docker Hub's
    /// `docker.io/` and `library/` prefixes dropped, `:latest` added when
    /// there is neither tag nor digest. Lets the plan ask "is this image
    /// present?" of what a host reported.
    pub fn engine_form(&self) -> String {
        let mut name = self.name.as_str();
        for host in DOCKER_HUB_HOSTS {
            if let Some(rest) = name.strip_prefix(host).and_then(|r| r.strip_prefix('/')) {
                name = rest;
                break;
            }
        }
        if let Some(rest) = name.strip_prefix("library/") {
            if !rest.contains('/') {
                name = rest;
            }
        }
        ImageRef {
            name: name.to_string(),
            ..self.clone()
        }
        .to_string()
    }

    /// The `fromImage` and `tag` of a pull: a digest wins over a tag (the
    /// engine takes a digest in `tag`), and no tag is `latest`, because an
    /// empty tag pulls every tag of the repository.
    pub fn pull_args(&self) -> (String, String) {
        let tag = self
            .digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest");
        (self.name.clone(), tag.to_string())
    }

    /// The registry the image lives on: the first path component when that
    /// looks like a host (has a `.` or `:`, or is `localhost`), else Docker
    /// Hub; every Docker Hub alias is `docker.io`.
    pub fn registry(&self) -> String {
        match self.name.split_once('/') {
            Some((first, _))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if DOCKER_HUB_HOSTS.contains(&first) {
                    DOCKER_HUB_HOSTS[0].to_string()
                } else {
                    first.to_string()
                }
            }
            _ => DOCKER_HUB_HOSTS[0].to_string(),
        }
    }
}

/// As written, with `:latest` when there is neither tag nor digest: what
/// the plan shows is exactly what gets pulled.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match (&self.tag, &self.digest) {
            (None, None) => f.write_str(":latest")?,
            (Some(tag), _) => write!(f, ":{tag}")?,
            (None, Some(_)) => {}
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The checked reference as the spec keeps it (see [`ImageRef`]'s `Display`).
pub(crate) fn canonical(reference: &str) -> Result<String, String> {
    ImageRef::parse(reference).map(|r| r.to_string())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err("the repository name is longer than 255 characters".to_string());
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        let is_domain = first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase());
        if is_domain {
            check_domain(first)?;
            components.remove(0);
        }
    }
    for component in components {
        check_path_component(component)?;
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || format!("`{domain}` is not a valid registry host");
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match after {
            "" => (None, None),
            _ => (None, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
    }
    Ok(())
}

fn check_path_component(component: &str) -> Result<(), String> {
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".to_string());
    }
    let bad = || {
        if component.is_empty() {
            "the repository name has an empty path component".to_string()
        } else {
            format!("`{component}` is not a valid repository name component")
        }
    };
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let chars: Vec<char> = component.chars().collect();
    let mut i = 0;
    loop {
        let start = i;
        while i < chars.len() && alnum(chars[i]) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        if i == chars.len() {
            return Ok(());
        }
        match chars[i] {
            '.' => i += 1,
            '_' if chars.get(i + 1) == Some(&'_') => i += 2,
            '_' => i += 1,
            '-' => {
                while i < chars.len() && chars[i] == '-' {
                    i += 1;
                }
            }
            _ => return Err(bad()),
        }
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let ok = tag.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a valid tag (letters, digits, `_`, `.` and `-`, at most 128, not starting with `.` or `-`)"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let bad = |why: &str| format!("`{digest}` is not a valid digest: {why}");
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| bad("expected `sha256:<64 hex digits>`"))?;
    let hex_ok =
        |len: usize| hex.len() == len && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    match algorithm {
        "sha256" if hex_ok(64) => Ok(()),
        "sha512" if hex_ok(128) => Ok(()),
        "sha256" => Err(bad("sha256 needs 64 lowercase hex digits")),
        "sha512" => Err(bad("sha512 needs 128 lowercase hex digits")),
        _ => Err(bad("the algorithm must be sha256 or sha512")),
    }
}

#[cfg(test)]
mod tests {
    use super::{canonical, ImageRef};

    #[test]
    fn splits_for_a_pull() {
        let cases = [
            (
                "10.77.0.1:5000/berth/web:v1",
                ("10.77.0.1:5000/berth/web", "v1"),
            ),
            (
                "10.77.0.1:5000/berth/web",
                ("10.77.0.1:5000/berth/web", "latest"),
            ),
            ("redis", ("redis", "latest")),
            ("redis:7.2", ("redis", "7.2")),
            ("library/redis:7", ("library/redis", "7")),
            (
                "localhost:5000/a/b/c:1.0-rc1",
                ("localhost:5000/a/b/c", "1.0-rc1"),
            ),
            ("redis@sha256:0123abcd", ("redis", "sha256:0123abcd")),
            (
                "10.77.0.1:5000/web:v1@sha256:0123abcd",
                ("10.77.0.1:5000/web", "sha256:0123abcd"),
            ),
            ("ghcr.io/o/r:tag", ("ghcr.io/o/r", "tag")),
        ];
        for (input, (repo, tag)) in cases {
            assert_eq!(
                ImageRef::split(input).pull_args(),
                (repo.to_string(), tag.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn finds_registries() {
        let registry = |r: &str| ImageRef::split(r).registry();
        assert_eq!(registry("10.77.0.1:5000/berth/web"), "10.77.0.1:5000");
        assert_eq!(registry("ghcr.io/o/r"), "ghcr.io");
        assert_eq!(registry("localhost/r"), "localhost");
        assert_eq!(registry("redis"), "docker.io");
        assert_eq!(registry("bitnami/redis"), "docker.io");
        assert_eq!(registry("docker.io/library/redis"), "docker.io");
        assert_eq!(registry("index.docker.io/library/redis"), "docker.io");
    }

    #[test]
    fn engine_form_is_how_repo_tags_list_it() {
        let form = |r: &str| ImageRef::split(r).engine_form();
        assert_eq!(form("redis"), "redis:latest");
        assert_eq!(form("docker.io/library/redis:7"), "redis:7");
        assert_eq!(form("docker.io/bitnami/redis"), "bitnami/redis:latest");
        assert_eq!(
            form("10.77.0.1:5000/berth/web"),
            "10.77.0.1:5000/berth/web:latest"
        );
        assert_eq!(
            form("10.77.0.1:5000/berth/web:v1"),
            "10.77.0.1:5000/berth/web:v1"
        );
        assert_eq!(form("redis@sha256:ab"), "redis@sha256:ab");
        assert_eq!(form("docker.io/library/a/b"), "library/a/b:latest");
    }

    #[test]
    fn good_references() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (input, expected) in [
            ("nginx", "nginx:latest"),
            ("nginx:1.27-alpine", "nginx:1.27-alpine"),
            ("library/nginx", "library/nginx:latest"),
            (
                "registry.example.com:5000/team/api:v1.2.3",
                "registry.example.com:5000/team/api:v1.2.3",
            ),
            ("localhost/api", "localhost/api:latest"),
            ("localhost:5000/api", "localhost:5000/api:latest"),
            ("[::1]:5000/api:x", "[::1]:5000/api:x"),
            ("ghcr.io/a__b/c-d--e.f:tag_1", "ghcr.io/a__b/c-d--e.f:tag_1"),
            (
                "Registry.Example.com/api",
                "Registry.Example.com/api:latest",
            ),
        ] {
            assert_eq!(canonical(input).as_deref(), Ok(expected), "{input}");
        }
        let pinned = format!("nginx@{digest}");
        assert_eq!(canonical(&pinned).unwrap(), pinned);
        let both = format!("nginx:1.27@{digest}");
        assert_eq!(canonical(&both).unwrap(), both);
    }

    #[test]
    fn bad_references() {
        for (input, reason) in [
            ("", "empty"),
            ("Nginx", "lowercase"),
            ("team/Api", "lowercase"),
            ("nginx latest", "whitespace"),
            ("nginx:", "not a valid tag"),
            ("nginx:-x", "not a valid tag"),
            ("nginx@sha256:abc", "64 lowercase hex"),
            ("nginx@md5:abc", "sha256 or sha512"),
            ("a//b", "empty path component"),
            ("a/b-", "not a valid repository name component"),
            ("_a", "not a valid repository name component"),
            ("exa mple.com/a", "whitespace"),
            ("-bad.com/a", "registry host"),
        ] {
            let err = canonical(input).unwrap_err();
            assert!(err.contains(reason), "{input}: {err}");
        }
    }
}
