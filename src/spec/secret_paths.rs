//! Where a delivered secret lives on a host: a pure function of the
//! project, the slot and the [`SecretFileSpec`], shared by the stage that
//! writes the files (apply), the mapping that mounts them (hosts) and the
//! inventory default. Kept here, below all of them, so none imports another
//! for a path.

use super::model::{ContainerSpec, SecretFileSpec};

/// Where secret files live on a host unless berth.yaml says otherwise
/// (`secrets_dir`): `/run` is tmpfs on every systemd host.
pub const HOST_DIR: &str = "/run/berth/secrets";

/// Default mode of a delivered secret: its owner reads it, nobody else.
pub const DEFAULT_MODE: u32 = 0o400;

/// The file on the host that holds one secret for one service, under the
/// host's `secrets_dir`.
pub fn host_path(
    secrets_dir: &str,
    project: &str,
    stack: &str,
    service: &str,
    name: &str,
    file: &SecretFileSpec,
) -> String {
    format!(
        "{}/{project}/{}/{name}",
        secrets_dir.trim_end_matches('/'),
        version_dir(stack, service, file)
    )
}

/// `<stack>/<service>/<version>`, relative to the project's directory: one
/// directory per version of a secret, so a container restarted after a
/// rollback (or a reboot) finds exactly the file it was made with. The
/// version is the first 12 hex of the encrypted file's digest, plus owner
/// and mode when they are not the default `0:0 0400`.
pub fn version_dir(stack: &str, service: &str, file: &SecretFileSpec) -> String {
    let short: String = file
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&file.digest)
        .chars()
        .take(12)
        .collect();
    if file.uid == "0" && file.gid == "0" && file.mode == DEFAULT_MODE {
        format!("{stack}/{service}/{short}")
    } else {
        format!(
            "{stack}/{service}/{short}-{}-{}-{:o}",
            file.uid, file.gid, file.mode
        )
    }
}

/// The [`version_dir`]s a container's spec reads its secrets from.
pub fn dirs_in_use(stack: &str, service: &str, spec: &ContainerSpec) -> Vec<String> {
    spec.secrets
        .values()
        .map(|f| version_dir(stack, service, f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_is_per_project_stack_service_and_version() {
        let mut file = SecretFileSpec {
            digest: "sha256:0123456789abcdef".into(),
            target: "/run/secrets/db".into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: DEFAULT_MODE,
        };
        assert_eq!(
            host_path(HOST_DIR, "p", "app", "api", "db", &file),
            "/run/berth/secrets/p/app/api/0123456789ab/db"
        );
        // Another owner or mode is another version: the old file stays as it was.
        file.uid = "101".into();
        file.mode = 0o440;
        assert_eq!(
            host_path(HOST_DIR, "p", "app", "api", "db", &file),
            "/run/berth/secrets/p/app/api/0123456789ab-101-0-440/db"
        );
    }

    #[test]
    fn dirs_in_use_are_relative_to_the_project_dir() {
        let mut spec = ContainerSpec::default();
        spec.secrets.insert(
            "db".into(),
            SecretFileSpec {
                digest: "sha256:aaaaaaaaaaaaffff".into(),
                target: "/run/secrets/db".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: DEFAULT_MODE,
            },
        );
        assert_eq!(
            dirs_in_use("app", "api", &spec),
            vec!["app/api/aaaaaaaaaaaa"]
        );
    }
}
