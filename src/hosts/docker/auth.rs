//! Registry credentials for pulls and digest resolution, from the runner's
//! Docker config as `docker login` writes it (its `auths`, or the
//! credential helper it names). They go to the engine with the pull
//! request, or to the registry, only: never logged, never in an error.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::Hint;
use crate::spec::image::DOCKER_HUB_HOSTS;

/// `https://index.docker.io/v1/` -> `docker.io`; `https://10.77.0.1:5000` ->
/// `10.77.0.1:5000`: the key forms `docker login` writes, reduced to a host.
fn normalize_registry(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = key.split('/').next().unwrap_or(key);
    if DOCKER_HUB_HOSTS.contains(&host) {
        DOCKER_HUB_HOSTS[0].to_string()
    } else {
        host.to_string()
    }
}

/// Longest a credential helper may take to answer.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest helper answer read (a JSON object with a token).
const HELPER_OUTPUT_LIMIT: u64 = 64 * 1024;

/// Credentials for `registry` from the runner's Docker config file
/// `config_json` (`--docker-config`, else `~/.docker/config.json`; the
/// command line picks it), as `docker login` leaves them: from the
/// credential helper the config names for that registry (`credHelpers`,
/// else `credsStore`), run as `docker-credential-<helper> get` with the
/// registry on stdin, as the Docker CLI runs it; else (no helper, or the
/// helper has nothing for that registry) from `auths.<registry>`: `auth`
/// (base64 of `user:password`) or `identitytoken`. Ok(None) (anonymous)
/// when there is no config or no entry. A helper that is missing, fails or
/// does not answer in time is an error naming it: a run must not go on
/// anonymously when the user set up credentials. What a helper answers is
/// never logged; one helper answer per registry is kept for the process.
pub async fn registry_credentials(
    config_json: Option<&Path>,
    registry: &str,
) -> anyhow::Result<Option<DockerCredentials>> {
    let Some(path) = config_json else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    if let Some(helper) = helper_for(&text, registry) {
        if let Some(found) = from_helper(&helper, registry).await? {
            return Ok(Some(found));
        }
    }
    Ok(credentials_from_config(&text, registry))
}

/// The credential helper the config names for `registry`: its
/// `credHelpers` entry, else `credsStore`; None when it names none.
pub fn helper_for(config_json: &str, registry: &str) -> Option<String> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let wanted = normalize_registry(registry);
    let helper = config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|helpers| {
            helpers
                .iter()
                .find(|(key, _)| normalize_registry(key) == wanted)
                .and_then(|(_, helper)| helper.as_str())
        })
        .or_else(|| config.get("credsStore").and_then(|s| s.as_str()))?;
    (!helper.is_empty()).then(|| helper.to_string())
}

/// The server address a helper is asked for, as `docker login` stored it:
/// Docker Hub under its index URL, any other registry by its host.
fn helper_server(registry: &str) -> String {
    if normalize_registry(registry) == DOCKER_HUB_HOSTS[0] {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// Helper answers of this process, by (helper, registry): a run pulls an
/// image on many hosts and must not run the helper for each pull.
type HelperCache = Mutex<BTreeMap<(String, String), Option<DockerCredentials>>>;

fn helper_cache() -> &'static HelperCache {
    static CACHE: OnceLock<HelperCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Runs `docker-credential-<helper> get` for `registry` (see
/// [`registry_credentials`]): Ok(None) when the helper has no credentials
/// for it.
async fn from_helper(helper: &str, registry: &str) -> anyhow::Result<Option<DockerCredentials>> {
    let key = (helper.to_string(), normalize_registry(registry));
    if let Some(known) = helper_cache()
        .lock()
        .ok()
        .and_then(|c| c.get(&key).cloned())
    {
        return Ok(known);
    }
    let found = ask_helper(
        &format!("docker-credential-{helper}"),
        registry,
        HELPER_TIMEOUT,
    )
    .await?;
    if let Ok(mut cache) = helper_cache().lock() {
        cache.insert(key, found.clone());
    }
    Ok(found)
}

/// Runs `program get` (a credential helper) for `registry`, waiting at
/// most `timeout`: Ok(None) when it has no credentials for it.
async fn ask_helper(
    program: &str,
    registry: &str,
    timeout: Duration,
) -> anyhow::Result<Option<DockerCredentials>> {
    let server = helper_server(registry);
    let help = format!(
        "install `{program}` on this machine (on PATH), or remove the helper for `{registry}` (`credHelpers`, `credsStore`) from the Docker config berth reads (--docker-config)"
    );
    let mut child = tokio::process::Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "is not installed (not found on PATH)".to_string()
            } else {
                format!("cannot be started: {e}")
            };
            Hint::new(
                format!("the Docker credential helper `{program}` for registry `{registry}` {why}"),
                help.clone(),
            )
        })?;
    let answer = async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(server.as_bytes()).await?;
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let read_out = async {
            match stdout {
                Some(s) => s
                    .take(HELPER_OUTPUT_LIMIT)
                    .read_to_end(&mut out)
                    .await
                    .map(drop),
                None => Ok(()),
            }
        };
        let read_err = async {
            match stderr {
                Some(s) => s
                    .take(HELPER_OUTPUT_LIMIT)
                    .read_to_end(&mut err)
                    .await
                    .map(drop),
                None => Ok(()),
            }
        };
        let (a, b) = tokio::join!(read_out, read_err);
        a?;
        b?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out, err))
    };
    let (status, out, err) = match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            return Err(Hint::new(
                format!("the Docker credential helper `{program}` for registry `{registry}` failed: {e}"),
                help,
            )
            .into())
        }
        Err(_) => {
            return Err(Hint::new(
                format!(
                    "the Docker credential helper `{program}` for registry `{registry}` did not answer within {}",
                    humantime::format_duration(timeout)
                ),
                "check that the helper works without a prompt (`echo <registry> | docker-credential-<helper> get`), or remove it from the Docker config berth reads",
            )
            .into())
        }
    };
    let found = if status.success() {
        Some(parse_helper_answer(&out, registry).ok_or_else(|| {
            Hint::new(
                format!(
                    "the Docker credential helper `{program}` for registry `{registry}` answered something other than credentials"
                ),
                help.clone(),
            )
        })?)
    } else {
        // On failure a helper says why on stdout (the protocol's error
        // message) or stderr; no secret is in either then.
        let said = String::from_utf8_lossy(if out.is_empty() { &err } else { &out })
            .trim()
            .chars()
            .take(300)
            .collect::<String>();
        if said.contains("credentials not found") {
            None
        } else {
            return Err(Hint::new(
                format!(
                    "the Docker credential helper `{program}` for registry `{registry}` failed ({status}): {said}"
                ),
                help,
            )
            .into());
        }
    };
    Ok(found)
}

/// A helper's `get` answer (`{"ServerURL", "Username", "Secret"}`) as
/// credentials: a `Username` of `<token>` makes the secret an identity
/// token, as the Docker CLI reads it.
fn parse_helper_answer(out: &[u8], registry: &str) -> Option<DockerCredentials> {
    let answer: serde_json::Value = serde_json::from_slice(out).ok()?;
    let username = answer.get("Username")?.as_str()?;
    let secret = answer.get("Secret")?.as_str()?;
    let mut credentials = DockerCredentials {
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    };
    if username == "<token>" {
        credentials.identitytoken = Some(secret.to_string());
    } else {
        credentials.username = Some(username.to_string());
        credentials.password = Some(secret.to_string());
    }
    Some(credentials)
}

/// The pure half of [`registry_credentials`].
pub fn credentials_from_config(config_json: &str, registry: &str) -> Option<DockerCredentials> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let wanted = normalize_registry(registry);
    let entry = auths
        .iter()
        .find(|(key, _)| normalize_registry(key) == wanted)
        .map(|(_, entry)| entry)?;
    let mut credentials = DockerCredentials {
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    };
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        credentials.username = Some(user.to_string());
        credentials.password = Some(password.to_string());
    }
    if let Some(token) = entry.get("identitytoken").and_then(|t| t.as_str()) {
        credentials.identitytoken = Some(token.to_string());
    }
    if credentials.username.is_none() && credentials.identitytoken.is_none() {
        return None;
    }
    Some(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_registry_auth_from_docker_config() {
        // "ci:s3cr:et" -> password may contain `:`.
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cr:et");
        let config = format!(
            r#"{{"auths": {{"https://10.77.0.1:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "ghcr.io": {{"identitytoken": "tok"}},
                "empty.example": {{}} }},
               "credsStore": "desktop"}}"#
        );
        let c = credentials_from_config(&config, "10.77.0.1:5000").expect("registry entry");
        assert_eq!(c.username.as_deref(), Some("ci"));
        assert_eq!(c.password.as_deref(), Some("s3cr:et"));
        assert_eq!(c.serveraddress.as_deref(), Some("10.77.0.1:5000"));
        let hub = credentials_from_config(&config, "docker.io").expect("hub entry");
        assert_eq!(hub.username.as_deref(), Some("ci"));
        let ghcr = credentials_from_config(&config, "ghcr.io").expect("token entry");
        assert_eq!(ghcr.identitytoken.as_deref(), Some("tok"));
        assert!(credentials_from_config(&config, "empty.example").is_none());
        assert!(credentials_from_config(&config, "quay.io").is_none());
        assert!(credentials_from_config("not json", "quay.io").is_none());
    }

    #[test]
    fn the_helper_is_the_registrys_own_else_the_store() {
        let config = r#"{"credsStore": "desktop",
            "credHelpers": {"https://10.77.0.1:5001": "bed", "ghcr.io": ""}}"#;
        assert_eq!(helper_for(config, "10.77.0.1:5001").as_deref(), Some("bed"));
        assert_eq!(helper_for(config, "quay.io").as_deref(), Some("desktop"));
        // An empty entry names no helper (and does not fall back to the store).
        assert_eq!(helper_for(config, "ghcr.io"), None);
        assert_eq!(helper_for(r#"{"auths": {}}"#, "quay.io"), None);
        assert_eq!(helper_server("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(helper_server("10.77.0.1:5001"), "10.77.0.1:5001");
    }

    #[test]
    fn a_helper_answer_is_a_password_or_an_identity_token() {
        let basic = parse_helper_answer(
            br#"{"ServerURL": "r", "Username": "ci", "Secret": "pw"}"#,
            "r",
        )
        .expect("credentials");
        assert_eq!(
            (basic.username.as_deref(), basic.password.as_deref()),
            (Some("ci"), Some("pw"))
        );
        let token = parse_helper_answer(
            br#"{"ServerURL": "r", "Username": "<token>", "Secret": "rt"}"#,
            "r",
        )
        .expect("token");
        assert_eq!(token.identitytoken.as_deref(), Some("rt"));
        assert_eq!(token.username, None);
        assert!(parse_helper_answer(b"not json", "r").is_none());
    }

    /// A helper that is missing or fails is an error naming it, with a
    /// help line; its output on failure is said, never its answer.
    #[tokio::test]
    async fn a_missing_or_failing_helper_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"credHelpers": {"missing.example": "berth-test-absent"}}"#,
        )
        .expect("config");
        let err = registry_credentials(Some(&config), "missing.example")
            .await
            .expect_err("no such helper");
        let shown = crate::error::one_line(&err);
        assert!(
            shown.contains("the Docker credential helper `docker-credential-berth-test-absent` for registry `missing.example` is not installed"),
            "{shown}"
        );
        assert!(
            shown.contains("help: install `docker-credential-berth-test-absent`"),
            "{shown}"
        );
        // A helper that hangs is given up on, named.
        let slow = dir.path().join("docker-credential-slow");
        std::fs::write(&slow, "#!/bin/sh\nsleep 5\n").expect("helper");
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let started = std::time::Instant::now();
        let err = ask_helper(
            &slow.display().to_string(),
            "r.example",
            Duration::from_millis(300),
        )
        .await
        .expect_err("too slow");
        assert!(started.elapsed() < Duration::from_secs(3));
        let shown = crate::error::one_line(&err);
        assert!(
            shown.contains(
                "docker-credential-slow` for registry `r.example` did not answer within 300ms"
            ),
            "{shown}"
        );
        // No config: anonymous, no helper run.
        assert!(registry_credentials(None, "missing.example")
            .await
            .expect("none")
            .is_none());
    }
}
