//! `berth secret ...` as an operator uses it, with keys made by GnuPG: no
//! host is involved, so these run without the test bed.

use crate::support::gpg::Gpg;
use crate::support::{berth_env, Repo};

/// A repo whose berth.yaml lists the runner's and the operator's
/// certificates as recipients; returns the repo, gpg, and both fingerprints.
fn repo_with_recipients() -> (Repo, Gpg, String, String, tempfile::TempDir) {
    let gpg = Gpg::new();
    let runner = gpg.generate("Runner <runner@berth.invalid>");
    let operator = gpg.generate("Operator <ops@berth.invalid>");
    let keys = tempfile::tempdir().expect("keys");
    gpg.export_secret(&operator, &keys.path().join("operator.key"));
    gpg.export_secret(&runner, &keys.path().join("runner.key"));
    let repo = Repo::new();
    repo.write("keys/runner.asc", &gpg.export_public(&runner));
    repo.write("keys/operator.asc", &gpg.export_public(&operator));
    repo.write(
        "berth.yaml",
        "project: s\nsecrets:\n  recipients: [keys/runner.asc, keys/operator.asc]\nhosts:\n  - name: h\n    address: 10.77.0.99\n",
    );
    (repo, gpg, runner, operator, keys)
}

fn key_arg(keys: &tempfile::TempDir, name: &str) -> String {
    keys.path().join(name).display().to_string()
}

#[test]
fn edit_round_trips_and_keeps_the_recipients() {
    let (repo, gpg, runner, operator, keys) = repo_with_recipients();
    // Written by gpg, to both recipients, as an operator would.
    let message = gpg.encrypt(b"user=app\npassword=old-9d2\n", &[&runner, &operator]);
    repo.write(
        "stacks/a/secrets/db.asc",
        &String::from_utf8(message).expect("armour"),
    );
    let file = "stacks/a/secrets/db.asc";

    let before = berth_env(repo.path(), &["secret", "recipients", file], &[]);
    assert_eq!(before.code, 0, "{before}");
    assert!(
        before.stdout.contains("Runner <runner@berth.invalid>"),
        "{before}"
    );
    assert!(
        before.stdout.contains("Operator <ops@berth.invalid>"),
        "{before}"
    );

    // The "editor" replaces the password line, like sed -i would.
    let operator_key = key_arg(&keys, "operator.key");
    let edit = berth_env(
        repo.path(),
        &["secret", "edit", "--key-file", &operator_key, file],
        &[("EDITOR", "sed -i s/old-9d2/new-4f7/")],
    );
    assert_eq!(edit.code, 0, "{edit}");
    assert!(
        edit.stderr
            .contains("re-encrypted to the same 2 recipient(s)"),
        "{edit}"
    );
    for text in [&edit.stdout, &edit.stderr] {
        assert!(
            !text.contains("new-4f7") && !text.contains("old-9d2"),
            "{edit}"
        );
    }
    let on_disk = std::fs::read_to_string(repo.path().join(file)).expect("read");
    assert!(
        on_disk.starts_with("-----BEGIN PGP MESSAGE-----"),
        "{on_disk}"
    );
    assert!(!on_disk.contains("new-4f7"));

    // The runner's key and GnuPG (the operator's keyring) both read the new value.
    let runner_key = key_arg(&keys, "runner.key");
    let dec = berth_env(
        repo.path(),
        &["secret", "decrypt", "--key-file", &runner_key, file],
        &[],
    );
    assert_eq!(dec.code, 0, "{dec}");
    assert_eq!(dec.stdout, "user=app\npassword=new-4f7\n");
    assert_eq!(
        gpg.decrypt(on_disk.as_bytes()),
        b"user=app\npassword=new-4f7\n"
    );

    let after = berth_env(repo.path(), &["secret", "recipients", file], &[]);
    assert_eq!(after.code, 0, "{after}");
    let who = |out: &str| -> Vec<String> {
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.split_once("  ").map(|x| x.1).unwrap_or(l).to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(who(&before.stdout), who(&after.stdout));

    // Saving without a change leaves the file as it was, byte for byte.
    let same = berth_env(
        repo.path(),
        &["secret", "edit", "--key-file", &runner_key, file],
        &[("EDITOR", "true")],
    );
    assert_eq!(same.code, 0, "{same}");
    assert!(same.stderr.contains("unchanged"), "{same}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join(file)).expect("read"),
        on_disk
    );
    // No plaintext was left behind in the temporary directory.
    let leftovers: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("berth-secret-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn encrypt_then_rekey_to_berth_yaml_recipients() {
    let (repo, gpg, runner, _operator, keys) = repo_with_recipients();
    repo.write(
        "stacks/a/compose.yaml",
        "services:\n  api:\n    image: reg/api:1\n    secrets: [token]\nsecrets:\n  token:\n    file: ./secrets/token.asc\n",
    );
    // Encrypted to the runner only, from stdin.
    let runner_cert = repo.path().join("keys/runner.asc").display().to_string();
    let plain = repo.path().join("plain.txt");
    std::fs::write(&plain, "tok-55aa\n").expect("write");
    let plain_arg = plain.display().to_string();
    let enc = berth_env(
        repo.path(),
        &[
            "secret",
            "encrypt",
            "--repo",
            "/nonexistent-no-berth-yaml",
            "--recipient",
            &runner_cert,
            "-o",
            "stacks/a/secrets/token.asc",
            &plain_arg,
        ],
        &[],
    );
    assert_eq!(enc.code, 0, "{enc}");
    std::fs::remove_file(&plain).expect("rm plaintext");
    let rec = berth_env(
        repo.path(),
        &["secret", "recipients", "stacks/a/secrets/token.asc"],
        &[],
    );
    assert_eq!(rec.stdout.lines().count(), 1, "{rec}");

    // rekey: now to both berth.yaml recipients; a second rekey changes nothing.
    let runner_key = key_arg(&keys, "runner.key");
    let rekey = berth_env(
        repo.path(),
        &["secret", "rekey", "--key-file", &runner_key],
        &[],
    );
    assert_eq!(rekey.code, 0, "{rekey}");
    assert!(
        rekey
            .stdout
            .contains("re-encrypted  stacks/a/secrets/token.asc"),
        "{rekey}"
    );
    let rec = berth_env(
        repo.path(),
        &["secret", "recipients", "stacks/a/secrets/token.asc"],
        &[],
    );
    assert!(rec.stdout.contains("Operator <ops@berth.invalid>"), "{rec}");
    let message = std::fs::read(repo.path().join("stacks/a/secrets/token.asc")).expect("read");
    assert_eq!(gpg.decrypt(&message), b"tok-55aa\n");
    let again = berth_env(
        repo.path(),
        &["secret", "rekey", "--key-file", &runner_key],
        &[],
    );
    assert!(
        again
            .stdout
            .contains("unchanged     stacks/a/secrets/token.asc"),
        "{again}"
    );
    let _ = runner;
}

#[test]
fn decrypt_without_a_usable_key_says_what_to_do() {
    let (repo, gpg, runner, _operator, _keys) = repo_with_recipients();
    let message = gpg.encrypt(b"x", &[&runner]);
    repo.write("s.asc", &String::from_utf8(message).expect("armour"));
    let run = berth_env(repo.path(), &["secret", "decrypt", "s.asc"], &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("--key-file"), "{run}");
}

/// Runs Sequoia's `sq` (Debian's package; ci/install-deps.sh installs it).
fn sq(args: &[&str], dir: &std::path::Path) -> Vec<u8> {
    let out = std::process::Command::new("sq")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("sq must be installed (apt-get install sq; ci/install-deps.sh does)");
    assert!(
        out.status.success(),
        "sq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn messages_from_sq_decrypt_with_a_key_from_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    sq(
        &[
            "key",
            "generate",
            "--userid",
            "<runner@berth.invalid>",
            "--export",
            "runner.pgp",
        ],
        dir.path(),
    );
    let cert = sq(&["key", "extract-cert", "runner.pgp"], dir.path());
    std::fs::write(dir.path().join("runner.cert"), cert).expect("write cert");
    std::fs::write(dir.path().join("plain"), "from-sq-31c\n").expect("write");
    sq(
        &[
            "encrypt",
            "--recipient-cert",
            "runner.cert",
            "--output",
            "db.pgp",
            "plain",
        ],
        dir.path(),
    );
    std::fs::remove_file(dir.path().join("plain")).expect("rm");
    let key = std::fs::read_to_string(dir.path().join("runner.pgp")).expect("armoured key");
    // The armoured key itself in BERTH_KEY, as a CI secret store passes it.
    let run = berth_env(
        dir.path(),
        &["secret", "decrypt", "db.pgp"],
        &[("BERTH_KEY", key.as_str())],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout, "from-sq-31c\n");
    // And berth's own messages are read by sq.
    std::fs::write(dir.path().join("p2"), "to-sq-77d\n").expect("write");
    let enc = berth_env(
        dir.path(),
        &[
            "secret",
            "encrypt",
            "--repo",
            "/nonexistent",
            "-r",
            "runner.cert",
            "-o",
            "back.asc",
            "p2",
        ],
        &[],
    );
    assert_eq!(enc.code, 0, "{enc}");
    let back = sq(
        &["decrypt", "--recipient-key", "runner.pgp", "back.asc"],
        dir.path(),
    );
    assert_eq!(back, b"to-sq-77d\n");
}

#[test]
fn a_passphrase_protected_key_takes_berth_key_passphrase() {
    let gpg = Gpg::new();
    let pass = "correct horse 42";
    gpg.run_with_passphrase(
        &[
            "--quick-gen-key",
            "Locked <locked@berth.invalid>",
            "future-default",
            "default",
            "never",
        ],
        None,
        pass,
    );
    let dir = tempfile::tempdir().expect("dir");
    let key = dir.path().join("locked.asc");
    std::fs::write(
        &key,
        gpg.run_with_passphrase(&["--armor", "--export-secret-keys", "Locked"], None, pass),
    )
    .expect("write key");
    std::fs::write(
        dir.path().join("s.asc"),
        gpg.encrypt(b"behind-a-passphrase", &["Locked"]),
    )
    .expect("write message");
    let key = key.display().to_string();
    let args = ["secret", "decrypt", "s.asc"];

    let run = berth_env(dir.path(), &args, &[("BERTH_KEY_FILE", key.as_str())]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("BERTH_KEY_PASSPHRASE"), "{run}");

    let run = berth_env(
        dir.path(),
        &args,
        &[
            ("BERTH_KEY_FILE", key.as_str()),
            ("BERTH_KEY_PASSPHRASE", "wrong"),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("does not unlock"), "{run}");
    assert!(
        !run.stderr.contains("wrong\n") && !run.stderr.contains(pass),
        "{run}"
    );

    let run = berth_env(
        dir.path(),
        &args,
        &[
            ("BERTH_KEY_FILE", key.as_str()),
            ("BERTH_KEY_PASSPHRASE", pass),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout, "behind-a-passphrase");
}

#[test]
fn trust_covers_every_file_berth_reads() {
    let gpg = Gpg::new();
    let signer = gpg.generate("Release <release@berth.invalid>");
    let keys = tempfile::tempdir().expect("keys");
    let trust = keys.path().join("trusted.asc");
    std::fs::write(&trust, gpg.export_public(&signer)).expect("trust file");
    let trust = trust.display().to_string();
    let repo = Repo::new();
    repo.write(
        "berth.yaml",
        "project: s\nhosts:\n  - name: h\n    address: 10.77.0.99\n",
    );
    repo.write(
        "stacks/a/compose.yaml",
        "services:\n  api:\n    image: reg/api:1\n",
    );
    repo.write(".gitignore", "stacks/extra/\n");
    let path = repo.path().display().to_string();
    let validate = || {
        berth_env(
            repo.path(),
            &["validate", "--repo", &path, "--trust", &trust],
            &[],
        )
    };

    let unsigned = repo.commit("unsigned");
    let run = validate();
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains(&format!("commit {unsigned} is not signed")),
        "{run}"
    );

    repo.commit_signed("signed", &gpg, &signer);
    let run = validate();
    assert_eq!(run.code, 0, "{run}");

    // A stack git ignores is read from the work tree, but no signature covers it.
    repo.write(
        "stacks/extra/compose.yaml",
        "services:\n  x:\n    image: reg/x:1\n",
    );
    let run = validate();
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("`stacks/extra/compose.yaml` is not in the signed commit"),
        "{run}"
    );
}
