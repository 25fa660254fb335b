//! GnuPG as an operator uses it: a throwaway keyring (GNUPGHOME) that
//! generates real keys, encrypts secrets to several recipients and signs git
//! commits. A missing `gpg` fails the test loudly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Gpg {
    /// Short path: gpg-agent's socket lives here.
    pub home: tempfile::TempDir,
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("g")
            .tempdir_in("/tmp")
            .expect("GNUPGHOME");
        Gpg { home }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs gpg in batch mode; panics with its stderr on failure.
    pub fn run(&self, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
        self.run_with_passphrase(args, input, "")
    }

    /// [`Gpg::run`] for keys protected by `passphrase`.
    pub fn run_with_passphrase(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        passphrase: &str,
    ) -> Vec<u8> {
        use std::io::Write as _;
        let mut child = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home())
            .args([
                "--batch",
                "--yes",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gpg must be installed (apt-get install gnupg; ci/install-deps.sh does)");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(bytes) = input {
            stdin.write_all(bytes).expect("write to gpg");
        }
        drop(stdin);
        let out = child.wait_with_output().expect("gpg runs");
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A new Curve25519 key (signing primary, encryption subkey) without a
    /// passphrase; returns its fingerprint.
    pub fn generate(&self, user_id: &str) -> String {
        self.run(
            &[
                "--quick-gen-key",
                user_id,
                "future-default",
                "default",
                "never",
            ],
            None,
        );
        let listing = String::from_utf8_lossy(
            &self.run(&["--with-colons", "--list-secret-keys", user_id], None),
        )
        .into_owned();
        listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("fingerprint")
            .to_string()
    }

    /// The armoured secret key, as a runner would be given it.
    pub fn export_secret(&self, fpr: &str, to: &Path) -> PathBuf {
        std::fs::write(
            to,
            self.run(&["--armor", "--export-secret-keys", fpr], None),
        )
        .expect("write key");
        to.to_path_buf()
    }

    /// The armoured public certificate.
    pub fn export_public(&self, fpr: &str) -> String {
        String::from_utf8(self.run(&["--armor", "--export", fpr], None)).expect("armour")
    }

    /// `gpg --encrypt` to every recipient (armoured).
    pub fn encrypt(&self, plaintext: &[u8], recipients: &[&str]) -> Vec<u8> {
        let mut args = vec!["--trust-model", "always", "--armor", "--encrypt"];
        for r in recipients {
            args.push("-r");
            args.push(r);
        }
        self.run(&args, Some(plaintext))
    }

    /// `gpg --encrypt` to every recipient, binary (a `.pgp` file).
    pub fn encrypt_binary(&self, plaintext: &[u8], recipients: &[&str]) -> Vec<u8> {
        let mut args = vec!["--trust-model", "always", "--encrypt"];
        for r in recipients {
            args.push("-r");
            args.push(r);
        }
        self.run(&args, Some(plaintext))
    }

    /// `gpg --decrypt` with this keyring's keys.
    pub fn decrypt(&self, message: &[u8]) -> Vec<u8> {
        self.run(&["--decrypt"], Some(message))
    }
}
