//! Registry credentials for pulls, from the runner's Docker config as
//! `docker login` writes it. They go to the engine with the pull request
//! only: never logged, never in an error.

use std::path::Path;

use base64::Engine as _;
use bollard::auth::DockerCredentials;

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

/// Credentials for `registry` from the runner's Docker config file
/// `config_json` (`--docker-config`, else `~/.docker/config.json`; the
/// command line picks it), as `docker login` writes it:
/// `auths.<registry>.auth` (base64 of `user:password`) or `identitytoken`.
/// Credential helpers (`credsStore`, `credHelpers`) are not run: CI runners
/// usually have plain `auths`, and running helper binaries from a
/// reconciler is a choice to make on purpose. None (anonymous pull) when
/// there is no config or no entry.
pub fn registry_credentials(
    config_json: Option<&Path>,
    registry: &str,
) -> Option<DockerCredentials> {
    let text = std::fs::read_to_string(config_json?).ok()?;
    credentials_from_config(&text, registry)
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
}
