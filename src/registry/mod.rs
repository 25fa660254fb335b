//! registry: image tags resolved to manifest digests, at plan time, so
//! what a plan names is what apply runs (the bytes, not a tag that may move).
//!
//! Input: the distinct images a plan needs (as written in the repo), the
//! runner's Docker config (credentials, as `docker login` wrote them) and
//! the registries berth.yaml marks insecure. Output: image -> `sha256:…`.
//! Invariants: one request chain per distinct image, all in parallel, each
//! bounded in time; an image written with `@sha256:` is used as is (no
//! request); plain HTTP only for registries listed in
//! `settings.insecure_registries`; credentials are sent to the registry (or
//! its token service) only, never logged or put in an error.
//!
//! The digest is the one the registry names for the tag
//! (`Docker-Content-Digest`): for a multi-platform image that is its
//! manifest list / OCI index, which pins every platform's manifest at once
//! (the index is content-addressed too), and each host's engine picks its
//! own platform from it when it pulls — as `docker pull` by tag records it
//! in `RepoDigests`, so a running container compares against the same
//! digest. Swarm pins services the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use base64::Engine as _;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, USER_AGENT, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Digest as _;

use crate::error::{Hint, Problems};
use crate::hosts::docker::auth::registry_credentials;
use crate::spec::ImageRef;

pub mod challenge;

use challenge::Challenge;

/// The manifest kinds berth accepts, newest first: a registry answers a
/// tag with the digest of the kind it stores.
const ACCEPTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or token answer read (a manifest list of many
/// platforms is tens of KiB).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Images resolved at once; the rest wait their turn.
const IN_FLIGHT: usize = 32;

/// How the registries are reached.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `host[:port]` of registries reached over plain HTTP
    /// (`settings.insecure_registries`); every other one over HTTPS.
    pub insecure: BTreeSet<String>,
    /// The runner's Docker `config.json` (`--docker-config`), for credentials.
    pub docker_config: Option<PathBuf>,
    /// Longest a TCP connect may take.
    pub connect_timeout: Duration,
    /// Longest one image's resolution may take, all its requests together.
    pub timeout: Duration,
}

type Https = hyper_tls::HttpsConnector<HttpConnector>;

/// TCP with the run's connect timeout, no Nagle delay.
fn connector(opts: &RegistryOptions) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(opts.connect_timeout));
    http.set_nodelay(true);
    http
}

/// A registry client for one run: one connection pool, shared by all the
/// images it resolves. The TLS half is made on first use: a run that asks
/// only plain-HTTP registries never loads the system's CA certificates.
pub struct Resolver {
    http: Client<HttpConnector, Full<Bytes>>,
    https: std::sync::OnceLock<Client<Https, Full<Bytes>>>,
    opts: RegistryOptions,
}

impl Resolver {
    pub fn new(opts: RegistryOptions) -> Resolver {
        Resolver {
            http: Client::builder(TokioExecutor::new()).build(connector(&opts)),
            https: std::sync::OnceLock::new(),
            opts,
        }
    }

    fn https(&self) -> &Client<Https, Full<Bytes>> {
        self.https.get_or_init(|| {
            let mut http = connector(&self.opts);
            http.enforce_http(false);
            Client::builder(TokioExecutor::new())
                .build(hyper_tls::HttpsConnector::new_with_connector(http))
        })
    }

    /// Every image of `images` (as written) to its digest, or an error
    /// naming each image and registry that failed, each with its `help:`
    /// (several at once: [`Problems`]).
    pub async fn resolve_all(
        &self,
        images: &BTreeSet<String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let results: Vec<(String, anyhow::Result<String>)> =
            futures::stream::iter(images.iter().cloned())
                .map(|image| async move {
                    let result = self.resolve(&image).await;
                    (image, result)
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
        let mut digests = BTreeMap::new();
        let mut failed = Vec::new();
        for (image, result) in results {
            match result {
                Ok(digest) => {
                    digests.insert(image, digest);
                }
                Err(e) => failed.push(e),
            }
        }
        failed.sort_by_key(|e| e.to_string());
        match failed.len() {
            0 => Ok(digests),
            1 => Err(failed.remove(0)),
            // Each image's own message and `help:` (a wrong password for
            // one registry, another one down: two different remedies).
            _ => Err(Problems::of(&failed).into()),
        }
    }

    /// The digest `image` names now in its registry.
    pub async fn resolve(&self, image: &str) -> anyhow::Result<String> {
        let reference = ImageRef::split(image);
        if let Some(digest) = reference.digest {
            return Ok(digest);
        }
        let registry = reference.registry();
        match tokio::time::timeout(self.opts.timeout, self.lookup(image, &reference)).await {
            Ok(result) => result,
            Err(_) => Err(Hint::new(
                format!(
                    "registry `{registry}` did not answer for image `{image}` within {}",
                    humantime::format_duration(self.opts.timeout)
                ),
                HELP_UNREACHABLE,
            )
            .into()),
        }
    }

    async fn lookup(&self, image: &str, reference: &ImageRef) -> anyhow::Result<String> {
        let target = Target::of(reference, &self.opts.insecure);
        let url = target.manifest_url(reference.tag.as_deref().unwrap_or("latest"));
        let credentials =
            registry_credentials(self.opts.docker_config.as_deref(), &target.registry).await?;
        let basic = credentials.as_ref().and_then(|c| {
            let user = c.username.as_deref()?;
            let password = c.password.as_deref().unwrap_or_default();
            Some(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        let refresh_token = credentials.as_ref().and_then(|c| c.identitytoken.clone());
        let has_credentials = basic.is_some() || refresh_token.is_some();

        let mut answer = self.send(&target, Method::HEAD, &url, None, image).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            let challenge = answer
                .headers
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            let authorization = match challenge {
                Some(Challenge::Basic) => match &basic {
                    Some(b) => format!("Basic {b}"),
                    None => return Err(no_credentials(&target.registry, image)),
                },
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let scope =
                        scope.unwrap_or_else(|| format!("repository:{}:pull", target.repository));
                    let token = self
                        .token(
                            &target,
                            image,
                            &realm,
                            service.as_deref(),
                            &scope,
                            basic.as_deref(),
                            refresh_token.as_deref(),
                        )
                        .await?;
                    format!("Bearer {token}")
                }
                None => {
                    return Err(anyhow!(
                        "registry `{}` asked for credentials for image `{image}` in a way berth does not know (`WWW-Authenticate` missing or not Basic/Bearer)",
                        target.registry
                    ))
                }
            };
            answer = self
                .send(&target, Method::HEAD, &url, Some(&authorization), image)
                .await?;
            if answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN {
                return Err(refused(&target.registry, image, has_credentials));
            }
            if !answer.status.is_success() || digest_header(&answer.headers).is_none() {
                // Some registries do not answer HEAD with a digest: ask for
                // the manifest itself and hash it.
                answer = self
                    .send(&target, Method::GET, &url, Some(&authorization), image)
                    .await?;
            }
        } else if answer.status.is_success() && digest_header(&answer.headers).is_none() {
            answer = self.send(&target, Method::GET, &url, None, image).await?;
        }
        match answer.status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(Hint::new(
                    format!(
                        "image `{image}` is not in registry `{}` (no manifest for that tag)",
                        target.registry
                    ),
                    "check the image name and tag, or push the image first; an image that is only on the hosts needs `pull_policy: never`",
                )
                .into())
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(refused(&target.registry, image, has_credentials))
            }
            s => {
                return Err(anyhow!(
                    "registry `{}` answered {s} for image `{image}`",
                    target.registry
                ))
            }
        }
        if let Some(digest) = digest_header(&answer.headers) {
            return Ok(digest);
        }
        match answer.body {
            Some(body) if !body.is_empty() => Ok(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))),
            _ => Err(anyhow!(
                "registry `{}` named no digest for image `{image}` (no `Docker-Content-Digest`, no manifest)",
                target.registry
            )),
        }
    }

    /// A bearer token for `scope` from the registry's token service, asked
    /// with the runner's credentials when it has some (anonymous otherwise).
    #[allow(clippy::too_many_arguments)]
    async fn token(
        &self,
        target: &Target,
        image: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        basic: Option<&str>,
        refresh_token: Option<&str>,
    ) -> anyhow::Result<String> {
        let realm_target = Target::of_url(realm, &self.opts.insecure).ok_or_else(|| {
            anyhow!(
                "registry `{}` named a token service berth cannot use: `{realm}`",
                target.registry
            )
        })?;
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let answer = match refresh_token {
            // `docker login` to an OAuth registry keeps a refresh token:
            // trade it, as the Docker client does.
            Some(refresh) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh),
                    ("client_id", "berth"),
                ];
                form.extend(query.iter().copied());
                self.post_form(&realm_target, realm, &encode_query(&form), image)
                    .await?
            }
            None => {
                let url = format!(
                    "{realm}{}{}",
                    if realm.contains('?') { '&' } else { '?' },
                    encode_query(&query)
                );
                let authorization = basic.map(|b| format!("Basic {b}"));
                self.send(
                    &realm_target,
                    Method::GET,
                    &url,
                    authorization.as_deref(),
                    image,
                )
                .await?
            }
        };
        if answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN {
            return Err(refused(
                &target.registry,
                image,
                basic.is_some() || refresh_token.is_some(),
            ));
        }
        if !answer.status.is_success() {
            return Err(anyhow!(
                "the token service of registry `{}` answered {} for image `{image}`",
                target.registry,
                answer.status
            ));
        }
        let body: serde_json::Value = serde_json::from_slice(&answer.body.unwrap_or_default())
            .map_err(|_| {
                anyhow!(
                    "the token service of registry `{}` answered something other than a token",
                    target.registry
                )
            })?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow!(
                    "the token service of registry `{}` gave no token",
                    target.registry
                )
            })
    }

    async fn post_form(
        &self,
        target: &Target,
        url: &str,
        form: &str,
        image: &str,
    ) -> anyhow::Result<Answer> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(USER_AGENT, user_agent())
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form.to_string())))
            .map_err(|e| anyhow!("registry `{}`: bad token URL: {e}", target.registry))?;
        self.exchange(target, request, true, image).await
    }

    /// One request; the body is read for GET and POST only.
    async fn send(
        &self,
        target: &Target,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        image: &str,
    ) -> anyhow::Result<Answer> {
        let read_body = method != Method::HEAD;
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header(USER_AGENT, user_agent())
            .header(ACCEPT, ACCEPTS);
        if let Some(a) = authorization {
            let mut value = HeaderValue::from_str(a)
                .map_err(|_| anyhow!("registry `{}`: unusable credentials", target.registry))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| anyhow!("registry `{}`: bad URL `{url}`: {e}", target.registry))?;
        self.exchange(target, request, read_body, image).await
    }

    async fn exchange(
        &self,
        target: &Target,
        request: Request<Full<Bytes>>,
        read_body: bool,
        image: &str,
    ) -> anyhow::Result<Answer> {
        let response = if target.base.starts_with("https://") {
            self.https().request(request).await
        } else {
            self.http.request(request).await
        }
        .map_err(|e| unreachable_error(target, image, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = if read_body {
            let collected = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await
                .map_err(|e| {
                    anyhow!(
                        "registry `{}`: cannot read the answer for image `{image}`: {e}",
                        target.registry
                    )
                })?;
            Some(collected.to_bytes())
        } else {
            None
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// What to do when a registry cannot be reached.
const HELP_UNREACHABLE: &str = "check that the registry is up and reachable from this machine; `settings.resolve_from: host` resolves through the hosts' engines instead";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Option<Bytes>,
}

/// Where one image's manifests are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// As users and `docker login` name it: `docker.io`, `10.77.0.1:5000`.
    registry: String,
    /// `https://registry-1.docker.io`, `http://10.77.0.1:5000`.
    base: String,
    /// `library/redis`, `berth/web`.
    repository: String,
}

impl Target {
    fn of(reference: &ImageRef, insecure: &BTreeSet<String>) -> Target {
        let registry = reference.registry();
        let written_domain = reference
            .name
            .split_once('/')
            .map(|(first, _)| first)
            .filter(|first| first.contains('.') || first.contains(':') || *first == "localhost");
        let path = match written_domain {
            Some(domain) => &reference.name[domain.len() + 1..],
            None => reference.name.as_str(),
        };
        let hub = registry == crate::spec::image::DOCKER_HUB_HOSTS[0];
        let repository = if hub && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let host = if hub {
            "registry-1.docker.io".to_string()
        } else {
            registry.clone()
        };
        let scheme = if insecure.contains(&registry) {
            "http"
        } else {
            "https"
        };
        Target {
            base: format!("{scheme}://{host}"),
            registry,
            repository,
        }
    }

    /// The token service at `url`, named by its host; plain HTTP only when
    /// that host is marked insecure too.
    fn of_url(url: &str, insecure: &BTreeSet<String>) -> Option<Target> {
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.split('/').next()?.to_string();
        if scheme == "http" && !insecure.contains(&host) {
            return None;
        }
        if scheme != "http" && scheme != "https" {
            return None;
        }
        Some(Target {
            base: format!("{scheme}://{host}"),
            registry: host,
            repository: String::new(),
        })
    }

    fn manifest_url(&self, tag: &str) -> String {
        format!("{}/v2/{}/manifests/{tag}", self.base, self.repository)
    }
}

fn user_agent() -> &'static str {
    concat!("berth/", env!("CARGO_PKG_VERSION"))
}

/// `Docker-Content-Digest`, when it is a well-formed digest.
fn digest_header(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("docker-content-digest")?.to_str().ok()?.trim();
    is_digest(value).then(|| value.to_string())
}

/// `sha256:` and 64 lowercase hex digits.
pub fn is_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `a=b&c=d`, each value percent-encoded.
fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn no_credentials(registry: &str, image: &str) -> anyhow::Error {
    Hint::new(
        format!(
            "registry `{registry}` wants credentials for image `{image}`, and the runner's Docker config has none for it"
        ),
        format!(
            "run `docker login {registry}` on this machine, or pass --docker-config with a config that has an `auths` entry for `{registry}`"
        ),
    )
    .into()
}

fn refused(registry: &str, image: &str, had_credentials: bool) -> anyhow::Error {
    if !had_credentials {
        return no_credentials(registry, image);
    }
    Hint::new(
        format!(
            "registry `{registry}` refused the credentials from the runner's Docker config for image `{image}`"
        ),
        format!(
            "run `docker login {registry}` again on this machine (or fix its `auths` entry in the Docker config berth reads)"
        ),
    )
    .into()
}

/// A connection that failed: said with the registry, and with the one
/// remedy for a plain-HTTP registry asked over HTTPS.
fn unreachable_error(
    target: &Target,
    image: &str,
    err: &hyper_util::client::legacy::Error,
) -> anyhow::Error {
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        if !cause.contains(&text) {
            if !cause.is_empty() {
                cause.push_str(": ");
            }
            cause.push_str(&text);
        }
        source = e.source();
    }
    let tls = target.base.starts_with("https://")
        && [
            "ssl",
            "tls",
            "wrong version number",
            "certificate",
            "handshake",
        ]
        .iter()
        .any(|w| cause.to_lowercase().contains(w));
    if tls {
        return Hint::new(
            format!(
                "registry `{}` for image `{image}`: HTTPS failed: {cause}",
                target.registry
            ),
            format!(
                "if `{}` serves plain HTTP on purpose, list it in `settings.insecure_registries` in berth.yaml",
                target.registry
            ),
        )
        .into();
    }
    Hint::new(
        format!(
            "registry `{}` is not reachable for image `{image}` ({}): {cause}",
            target.registry, target.base
        ),
        HELP_UNREACHABLE,
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_registry_repository_and_scheme() {
        let insecure = BTreeSet::from(["10.77.0.1:5000".to_string()]);
        let t = |image: &str| Target::of(&ImageRef::split(image), &insecure);
        assert_eq!(
            t("redis:7"),
            Target {
                registry: "docker.io".into(),
                base: "https://registry-1.docker.io".into(),
                repository: "library/redis".into(),
            }
        );
        assert_eq!(
            t("docker.io/grafana/grafana").manifest_url("latest"),
            "https://registry-1.docker.io/v2/grafana/grafana/manifests/latest"
        );
        assert_eq!(
            t("10.77.0.1:5000/berth/web:v1").manifest_url("v1"),
            "http://10.77.0.1:5000/v2/berth/web/manifests/v1"
        );
        assert_eq!(t("ghcr.io/org/app:2").base, "https://ghcr.io");
        assert_eq!(t("localhost/app").repository, "app");
        // A token service over plain HTTP only where marked insecure.
        assert!(Target::of_url("http://auth.example/token", &insecure).is_none());
        assert!(Target::of_url("http://10.77.0.1:5000/token", &insecure).is_some());
        assert!(Target::of_url("https://auth.docker.io/token", &insecure).is_some());
    }

    #[test]
    fn digests_and_queries_are_checked_and_encoded() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(is_digest(&d));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("sha512:{}", "a".repeat(64))));
        assert_eq!(
            encode_query(&[
                ("scope", "repository:library/redis:pull"),
                ("service", "a b")
            ]),
            "scope=repository%3Alibrary%2Fredis%3Apull&service=a%20b"
        );
    }

    /// Two registries down at once: each is named, each with its `help:`.
    #[tokio::test]
    async fn several_failures_keep_each_help() {
        let resolver = Resolver::new(RegistryOptions {
            insecure: BTreeSet::from(["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()]),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        });
        let images = BTreeSet::from(["127.0.0.1:1/a:1".to_string(), "127.0.0.1:2/b:1".to_string()]);
        let err = resolver.resolve_all(&images).await.expect_err("both down");
        let shown = crate::error::Error::from(err).render();
        for registry in ["127.0.0.1:1", "127.0.0.1:2"] {
            assert!(
                shown.contains(&format!("error: registry `{registry}` is not reachable")),
                "{shown}"
            );
        }
        assert_eq!(
            shown
                .matches(&format!("  help: {HELP_UNREACHABLE}\n"))
                .count(),
            2,
            "{shown}"
        );
    }

    /// One request as the fake registry below saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A registry on loopback that wants a bearer token from its own token
    /// service, which gives one only for the refresh token `rt-secret`
    /// (what `docker login` keeps as `identitytoken` for an OAuth
    /// registry): HTTP/1.1 with keep-alive, at most 16 requests, each
    /// connection read for 10 s at most.
    async fn oauth_registry(
        digest: &'static str,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let registry = listener.local_addr().expect("addr").to_string();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let realm = format!("http://{registry}/token");
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let realm = realm.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = tokio::io::BufReader::new(read);
                    for _ in 0..16 {
                        let request = async {
                            let mut line = String::new();
                            read.read_line(&mut line).await.ok()?;
                            if line.is_empty() {
                                return None;
                            }
                            let mut headers = Vec::new();
                            loop {
                                let mut h = String::new();
                                read.read_line(&mut h).await.ok()?;
                                let h = h.trim_end().to_string();
                                if h.is_empty() {
                                    break;
                                }
                                let (n, v) = h.split_once(':')?;
                                headers.push((n.trim().to_string(), v.trim().to_string()));
                            }
                            let mut seen = Seen {
                                line: line.trim_end().to_string(),
                                headers,
                                body: String::new(),
                            };
                            let len: usize = seen
                                .header("content-length")
                                .and_then(|l| l.parse().ok())
                                .unwrap_or(0);
                            let mut body = vec![0; len.min(4096)];
                            read.read_exact(&mut body).await.ok()?;
                            seen.body = String::from_utf8_lossy(&body).into_owned();
                            Some(seen)
                        };
                        let Ok(Some(req)) =
                            tokio::time::timeout(Duration::from_secs(10), request).await
                        else {
                            return;
                        };
                        log.lock().expect("log").push(req.clone());
                        let answer = if req.line.starts_with("POST /token ") {
                            if req.body.contains("refresh_token=rt-secret") {
                                (
                                    200,
                                    String::new(),
                                    r#"{"access_token": "at-1"}"#.to_string(),
                                )
                            } else {
                                (401, String::new(), String::new())
                            }
                        } else if req.header("authorization") == Some("Bearer at-1") {
                            (
                                200,
                                format!("Docker-Content-Digest: {digest}\r\n"),
                                String::new(),
                            )
                        } else {
                            (
                                401,
                                format!(
                                    "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\n"
                                ),
                                String::new(),
                            )
                        };
                        let (code, extra, body) = answer;
                        let text = format!(
                            "HTTP/1.1 {code} X\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if write.write_all(text.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (registry, seen)
    }

    /// `identitytoken` in `auths` (an OAuth registry's refresh token) is
    /// traded at the registry's token service as the Docker client does
    /// (POST, `grant_type=refresh_token`, the scope and service asked);
    /// the access token then opens the manifest. The bed's registry (htpasswd,
    /// Basic) issues no identity tokens, so this speaks to a fake one.
    #[tokio::test]
    async fn an_identity_token_is_traded_for_an_access_token() {
        const D: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
        let (registry, seen) = oauth_registry(D).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.json");
        let write_config = |token: &str| {
            std::fs::write(
                &config,
                format!(r#"{{"auths": {{"{registry}": {{"identitytoken": "{token}"}}}}}}"#),
            )
            .expect("config")
        };
        let resolver = Resolver::new(RegistryOptions {
            insecure: BTreeSet::from([registry.clone()]),
            docker_config: Some(config.clone()),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
        });
        write_config("rt-secret");
        let image = format!("{registry}/team/app:2");
        assert_eq!(resolver.resolve(&image).await.expect("resolved"), D);
        let requests = seen.lock().expect("log").clone();
        let lines: Vec<&str> = requests.iter().map(|r| r.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "HEAD /v2/team/app/manifests/2 HTTP/1.1",
                "POST /token HTTP/1.1",
                "HEAD /v2/team/app/manifests/2 HTTP/1.1",
            ]
        );
        let post = &requests[1];
        assert_eq!(
            post.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            post.body,
            "grant_type=refresh_token&refresh_token=rt-secret&client_id=berth&scope=repository%3Ateam%2Fapp%3Apull&service=fake"
        );
        assert_eq!(
            post.header("authorization"),
            None,
            "no Basic beside the token"
        );

        // A refresh token the service refuses: said, with the help line.
        write_config("rt-stale");
        let err = resolver.resolve(&image).await.expect_err("refused");
        let shown = crate::error::one_line(&err);
        assert!(
            shown.contains(&format!(
                "registry `{registry}` refused the credentials from the runner's Docker config for image `{image}`"
            )),
            "{shown}"
        );
        assert!(shown.contains("help: run `docker login"), "{shown}");
        assert!(!shown.contains("rt-stale"), "{shown}");
    }

    #[tokio::test]
    async fn an_image_written_with_a_digest_needs_no_request() {
        let resolver = Resolver::new(RegistryOptions {
            timeout: Duration::from_millis(10),
            connect_timeout: Duration::from_millis(10),
            ..Default::default()
        });
        let d = format!("sha256:{}", "b".repeat(64));
        let image = format!("registry.invalid/app:1@{d}");
        assert_eq!(resolver.resolve(&image).await.ok(), Some(d));
    }
}
