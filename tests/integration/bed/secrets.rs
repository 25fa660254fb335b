//! Secrets on the hosts: files on tmpfs that never appear in the clear, a
//! changed secret replacing exactly its readers, and key problems that
//! change no host.

use super::{berth_in, container_ids};
use crate::support::gpg::Gpg;
use crate::support::{expect_code, Bed, Failed, Repo, Run};

/// Keys made by GnuPG as operators make them: the runner's (exported to a
/// key file berth is given) and an operator's; secrets are encrypted to both.
struct SecretRepo {
    repo: Repo,
    gpg: Gpg,
    runner: String,
    operator: String,
    key_file: std::path::PathBuf,
    stack: String,
    _keys: tempfile::TempDir,
}

impl SecretRepo {
    /// Stack `stack`: `app` (2 replicas on the web hosts) reads secret `db`;
    /// `side` (1 replica) reads none.
    fn new(bed: &Bed, project: &str, stack: &str, plaintext: &str) -> SecretRepo {
        let gpg = Gpg::new();
        let runner = gpg.generate("Runner <runner@berth.invalid>");
        let operator = gpg.generate("Operator <ops@berth.invalid>");
        let keys = tempfile::tempdir().expect("key dir");
        let key_file = gpg.export_secret(&runner, &keys.path().join("runner.asc"));
        let repo = bed.repo(project);
        repo.write(
            &format!("stacks/{stack}/compose.yaml"),
            &format!(
                "services:\n  app:\n    image: {img}\n    secrets:\n      - db\n      - {{ source: token, target: /etc/app/token, uid: \"101\", gid: \"102\", mode: 0440 }}\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.labels.role == web]\n  side:\n    image: {img}\n    deploy:\n      replicas: 1\n      placement:\n        constraints: [node.labels.role == web]\nsecrets:\n  db:\n    file: ./secrets/db.asc\n  token:\n    file: ./secrets/token.pgp\n",
                img = bed.get("BED_WEB_V1")
            ),
        );
        let s = SecretRepo {
            repo,
            gpg,
            runner,
            operator,
            key_file,
            stack: stack.to_string(),
            _keys: keys,
        };
        s.set_secret(plaintext);
        // A binary message (gpg without --armor) for the second secret.
        let token = s
            .gpg
            .encrypt_binary(b"token-0e5d", &[&s.runner, &s.operator]);
        s.repo
            .write_bytes(&format!("stacks/{stack}/secrets/token.pgp"), &token);
        s.repo.commit("app with secrets");
        s
    }

    fn secret_file(&self) -> String {
        format!("stacks/{}/secrets/db.asc", self.stack)
    }

    /// `gpg --encrypt` to the runner and the operator.
    fn set_secret(&self, plaintext: &str) {
        let message = self
            .gpg
            .encrypt(plaintext.as_bytes(), &[&self.runner, &self.operator]);
        self.repo.write_bytes(&self.secret_file(), &message);
    }

    fn run(&self, command: &str, extra: &[&str]) -> Run {
        berth_in(&self.repo, command, extra)
    }

    fn apply_with_key(&self, extra: &[&str]) -> Run {
        let key = self.key_file.display().to_string();
        let mut args = vec!["--key-file", key.as_str()];
        args.extend_from_slice(extra);
        self.run("apply", &args)
    }
}

/// Version directories (`<digest prefix>`) of a service's secrets on a host.
fn secret_versions(
    bed: &Bed,
    host: &str,
    project: &str,
    stack: &str,
    service: &str,
) -> Vec<String> {
    let dir = std::path::Path::new(&bed.secrets_dir(host))
        .join(project)
        .join(stack)
        .join(service);
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn secret_is_a_file_on_tmpfs_never_in_the_clear() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-secret";
    let _scope = bed.scope(project);
    let plaintext = "pw-7c1e0b5d9a3f-not-for-your-eyes";
    let s = SecretRepo::new(bed, project, "vault", plaintext);
    let report = s._keys.path().join("report.json");
    let report_arg = report.display().to_string();
    let run = s.apply_with_key(&["--report", &report_arg]);
    expect_code(&run, 0);

    let mut readers = 0;
    for host in ["edge-1", "edge-2"] {
        for (name, c) in bed.containers(host, project) {
            let inspect = bed.docker_ok(host, &["inspect", &c.id]);
            check!(
                !inspect.contains(plaintext),
                "docker inspect of {name} on {host} shows the secret"
            );
            if name.starts_with("vault-side-") {
                check!(
                    !inspect.contains("/run/secrets/db"),
                    "{name} does not use the secret but has it mounted"
                );
                continue;
            }
            readers += 1;
            let value = bed.docker_ok(host, &["exec", &name, "cat", "/run/secrets/db"]);
            check!(value == plaintext, "{name} on {host} read {value:?}");
            let meta = bed.docker_ok(
                host,
                &["exec", &name, "stat", "-c", "%a %u:%g", "/run/secrets/db"],
            );
            check!(
                meta.trim() == "400 0:0",
                "{name}: /run/secrets/db is {meta:?}"
            );
            // Compose long syntax: another target, owner and mode.
            let token = bed.docker_ok(host, &["exec", &name, "cat", "/etc/app/token"]);
            check!(token == "token-0e5d", "{name} read token {token:?}");
            let meta = bed.docker_ok(
                host,
                &["exec", &name, "stat", "-c", "%a %u:%g", "/etc/app/token"],
            );
            check!(
                meta.trim() == "440 101:102",
                "{name}: /etc/app/token is {meta:?}"
            );
            let write = bed.docker(
                host,
                &["exec", &name, "sh", "-c", "echo x > /run/secrets/db"],
            );
            check!(!write.status.success(), "{name} could write its secret");
        }
        // On the host: one file, mode 0400, on tmpfs.
        let versions = secret_versions(bed, host, project, "vault", "app");
        // One directory per secret version: db's and token's.
        check!(versions.len() == 2, "{host}: versions {versions:?}");
        let db_version = versions
            .iter()
            .find(|v| {
                std::path::Path::new(&bed.secrets_dir(host))
                    .join(project)
                    .join("vault/app")
                    .join(v)
                    .join("db")
                    .exists()
            })
            .ok_or("no version directory holds db")?;
        let dir = format!(
            "{}/{project}/vault/app/{}",
            bed.secrets_dir(host),
            db_version
        );
        let meta = std::fs::metadata(format!("{dir}/db"))?;
        use std::os::unix::fs::MetadataExt as _;
        check!(
            meta.mode() & 0o777 == 0o400,
            "{host}: mode {:o}",
            meta.mode()
        );
        let fs = std::process::Command::new("stat")
            .args(["-f", "-c", "%T", &dir])
            .output()?;
        check!(
            String::from_utf8_lossy(&fs.stdout).trim() == "tmpfs",
            "{host}: {dir} is not on tmpfs"
        );
    }
    check!(
        readers == 2,
        "expected 2 containers reading the secret, saw {readers}"
    );
    let report = std::fs::read_to_string(&report)?;
    for (what, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("report", &report),
    ] {
        check!(!text.contains(plaintext), "the secret is in berth's {what}");
    }
    // The secret is the gpg message as committed: the operator's own key
    // reads it too (two recipients).
    let message = std::fs::read(s.repo.path().join(s.secret_file()))?;
    check!(
        s.gpg.decrypt(&message) == plaintext.as_bytes(),
        "gpg cannot read it back"
    );

    // Removing the service removes its secret from the hosts.
    let compose = std::fs::read_to_string(s.repo.path().join("stacks/vault/compose.yaml"))?;
    let without_app = compose
        .replace("  app:\n", "  gone:\n")
        .replace(
            "    secrets:\n      - db\n      - { source: token, target: /etc/app/token, uid: \"101\", gid: \"102\", mode: 0440 }\n",
            "",
        );
    s.repo.write("stacks/vault/compose.yaml", &without_app);
    s.repo.commit("app leaves");
    let run = s.apply_with_key(&[]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        let left = secret_versions(bed, host, project, "vault", "app");
        check!(
            left.is_empty(),
            "{host} still holds the removed service's secret: {left:?}"
        );
    }
    Ok(())
}

#[test]
fn secret_change_replaces_exactly_its_readers() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-secret-change";
    let _scope = bed.scope(project);
    let s = SecretRepo::new(bed, project, "vault2", "first-value-1b2c");
    expect_code(&s.apply_with_key(&[]), 0);
    let before = container_ids(bed, project);

    s.set_secret("second-value-9f8e");
    s.repo.commit("rotate db");
    // A pull request's plan: no key anywhere.
    let run = s.run("plan", &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(run.stdout.contains("secret db changed"), "{run}");
    check!(
        run.stdout.contains("~ vault2/app.1") && run.stdout.contains("~ vault2/app.2"),
        "{run}"
    );
    check!(
        !run.stdout.contains("vault2/side"),
        "side reads no secret\n{run}"
    );
    check!(
        run.stdout
            .contains("Plan: 0 to create, 2 to replace, 0 to remove."),
        "{run}"
    );
    check!(!run.stdout.contains("second-value"), "{run}");

    let run = s.apply_with_key(&[]);
    expect_code(&run, 0);
    let after = container_ids(bed, project);
    for (name, id) in &before {
        let replaced = after.get(name) != Some(id);
        check!(
            replaced == name.starts_with("vault2-app-"),
            "{name}: replaced = {replaced}\nbefore {before:?}\nafter {after:?}"
        );
    }
    for host in ["edge-1", "edge-2"] {
        for name in bed
            .containers(host, project)
            .keys()
            .filter(|n| n.starts_with("vault2-app-"))
        {
            let value = bed.docker_ok(host, &["exec", name, "cat", "/run/secrets/db"]);
            check!(value == "second-value-9f8e", "{name} reads {value:?}");
        }
        let versions = secret_versions(bed, host, project, "vault2", "app");
        check!(
            versions.len() == 2,
            "{host}: db's old version not pruned (db and token remain): {versions:?}"
        );
    }
    let run = s.run("plan", &["--detailed-exitcode"]);
    expect_code(&run, 0);

    // A reboot empties the host's tmpfs: the reader cannot start without its
    // file (never an empty directory in its place), the plan shows it as
    // drift, and apply delivers the secret again.
    std::fs::remove_dir_all(format!("{}/{project}", bed.secrets_dir("edge-1")))?;
    let restart = bed.docker("edge-1", &["restart", "vault2-app-1"]);
    check!(
        !restart.status.success(),
        "vault2-app-1 restarted without its secret file"
    );
    let run = s.run("plan", &["--detailed-exitcode"]);
    expect_code(&run, 2);
    check!(
        run.stdout.contains("~ vault2/app.1") && run.stdout.contains("[drift]"),
        "{run}"
    );
    expect_code(&s.apply_with_key(&[]), 0);
    let value = bed.docker_ok(
        "edge-1",
        &["exec", "vault2-app-1", "cat", "/run/secrets/db"],
    );
    check!(
        value == "second-value-9f8e",
        "after the reboot vault2-app-1 reads {value:?}"
    );
    Ok(())
}

#[test]
fn secret_key_problems_change_no_host() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-secret-keys";
    let _scope = bed.scope(project);
    let s = SecretRepo::new(bed, project, "vault3", "v1-secret-aa11");
    expect_code(&s.apply_with_key(&[]), 0);
    let before = container_ids(bed, project);
    let versions_before: Vec<Vec<String>> = ["edge-1", "edge-2"]
        .iter()
        .map(|h| secret_versions(bed, h, project, "vault3", "app"))
        .collect();
    let unchanged = |why: &str| -> Result<(), Failed> {
        check!(
            container_ids(bed, project) == before,
            "{why}: a container changed"
        );
        let versions: Vec<Vec<String>> = ["edge-1", "edge-2"]
            .iter()
            .map(|h| secret_versions(bed, h, project, "vault3", "app"))
            .collect();
        check!(versions == versions_before, "{why}: a secret was written");
        Ok(())
    };
    s.set_secret("v2-secret-bb22");
    s.repo.commit("rotate");
    let file = s.secret_file();

    // No key at all.
    let run = s.run("apply", &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&file) && run.stderr.contains("no private key"),
        "{run}"
    );
    check!(run.stderr.contains("no host was changed"), "{run}");
    unchanged("no key")?;

    // A key the secret was not encrypted to.
    let stranger = s.gpg.generate("Stranger <stranger@berth.invalid>");
    let stranger_key = s
        .gpg
        .export_secret(&stranger, &s._keys.path().join("stranger.asc"));
    let key = stranger_key.display().to_string();
    let run = s.run("apply", &["--key-file", &key]);
    expect_code(&run, 1);
    check!(run.stderr.contains(&file), "{run}");
    check!(run.stderr.contains("no host was changed"), "{run}");
    unchanged("wrong key")?;

    // A corrupted message (armour intact, ciphertext damaged).
    let path = s.repo.path().join(&file);
    let text = std::fs::read_to_string(&path)?;
    // The encrypted data comes last (the recipients' key packets first):
    // damage a full line near the end, so no recipient can read it.
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with('=') || l.starts_with("-----END"))
        .unwrap_or(lines.len());
    let mid = end.saturating_sub(2);
    let damaged: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == mid {
                l.chars().rev().collect::<String>()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, damaged + "\n")?;
    s.repo.commit("damaged");
    let run = s.apply_with_key(&[]);
    expect_code(&run, 1);
    check!(run.stderr.contains(&file), "{run}");
    check!(run.stderr.contains("no host was changed"), "{run}");
    unchanged("corrupted message")?;
    for text in [&run.stdout, &run.stderr] {
        check!(
            !text.contains("secret-bb22") && !text.contains("secret-aa11"),
            "{run}"
        );
    }
    Ok(())
}
