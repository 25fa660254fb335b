//! secrets: turns the stacks' `secrets:` into files berth can deliver.
//!
//! Input: the validated [`Project`]. Output: every service's
//! `container.secrets` (the digest of each encrypted file: what a plan
//! compares, so `berth plan` needs no key) and, at apply, the plaintexts the
//! plan needs ([`Plaintexts`]), decrypted with the runner's key.
//! Invariant: a plaintext only ever lives in memory, in [`SecretBytes`]
//! (zeroized on drop, `<redacted>` when printed); it reaches a host through
//! the SSH connection's stdin, never an argument or a file on the runner.
//!
//! On the host a secret is a file on tmpfs under `secrets_dir` (default
//! [`HOST_DIR`](crate::spec::secret_paths::HOST_DIR)), one directory
//! per encrypted-file digest, so a rollback restarts the old container with
//! the old value while the new one reads the new.

pub mod commands;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use sha2::{Digest as _, Sha256};

use crate::error::{hinted, Hint};
use crate::openpgp::{self, RunnerKey, SecretBytes};
use crate::spec::{Diagnostic, Project, SecretFileSpec, SpecError};

use crate::spec::secret_paths::DEFAULT_MODE;

/// Fills `container.secrets` of every service from the stack's encrypted
/// files. Refuses a file that is not an OpenPGP message: a repo must never
/// hold a credential in the clear.
pub fn attach(project: &mut Project) -> Result<(), SpecError> {
    let mut diagnostics = Vec::new();
    for stack in &mut project.stacks {
        let mut digests: BTreeMap<String, String> = BTreeMap::new();
        for (name, secret) in &stack.secrets {
            let path = project.root.join(&secret.file);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    diagnostics.push(Diagnostic {
                        location: secret.location.clone(),
                        message: format!(
                            "cannot read secret file `{}` of secret `{name}`: {e}",
                            secret.file.display()
                        ),
                        help: None,
                    });
                    continue;
                }
            };
            if !openpgp::is_message(&bytes) {
                diagnostics.push(Diagnostic {
                    location: secret.location.clone(),
                    message: format!(
                        "secret file `{}` of secret `{name}` is not an OpenPGP message",
                        secret.file.display()
                    ),
                    help: Some(format!(
                        "berth only deploys encrypted secrets: `berth secret encrypt --recipient <cert> PLAINTEXT -o {}` (or `gpg --encrypt`), and never commit the plaintext",
                        secret.file.display()
                    )),
                });
                continue;
            }
            digests.insert(name.clone(), digest(&bytes));
        }
        let numeric = |v: &Option<String>| {
            v.as_deref()
                .is_none_or(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
        };
        for service in &stack.services {
            for r in service
                .secrets
                .iter()
                .filter(|r| !numeric(&r.uid) || !numeric(&r.gid))
            {
                diagnostics.push(Diagnostic {
                    location: r.location.clone(),
                    message: format!(
                        "service `{}`: `uid` and `gid` of secret `{}` must be numbers",
                        service.name, r.source
                    ),
                    help: Some(
                        "the file is made on the host, which does not know the image's user names: write e.g. `uid: \"101\"`".into(),
                    ),
                });
            }
        }
        for service in &mut stack.services {
            service.container.secrets = service
                .secrets
                .iter()
                .filter_map(|r| {
                    let digest = digests.get(&r.source)?;
                    Some((
                        r.source.clone(),
                        SecretFileSpec {
                            digest: digest.clone(),
                            target: r.target.clone(),
                            uid: r.uid.clone().unwrap_or_else(|| "0".into()),
                            gid: r.gid.clone().unwrap_or_else(|| "0".into()),
                            mode: r.mode.unwrap_or(DEFAULT_MODE),
                        },
                    ))
                })
                .collect();
        }
    }
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(SpecError::from(diagnostics))
    }
}

/// `sha256:<hex>` of an encrypted file.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Where the runner's private key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `--key-file` / `BERTH_KEY_FILE`.
    File(PathBuf),
    /// The armoured key itself, from an environment variable (CI secret stores).
    Env { var: String, key: SecretBytes },
}

/// The runner's key options, as the CLI collected them.
#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    pub source: Option<KeySource>,
    /// `BERTH_KEY_PASSPHRASE`, for a passphrase-protected key.
    pub passphrase: Option<SecretBytes>,
}

impl KeyOptions {
    pub fn is_set(&self) -> bool {
        self.source.is_some()
    }

    /// Loads the key, or None when none was given. Blocking (crypto).
    pub fn load(&self) -> anyhow::Result<Option<RunnerKey>> {
        let passphrase = self.passphrase.as_ref();
        match &self.source {
            None => Ok(None),
            Some(KeySource::File(path)) => RunnerKey::from_file(path, passphrase)
                .map(Some)
                .map_err(|e| hinted(format!("cannot load the runner's key: {e}"), e.help())),
            Some(KeySource::Env { var, key }) => {
                RunnerKey::from_bytes(key.expose(), &format!("${var}"), passphrase)
                    .map(Some)
                    .map_err(|e| hinted(format!("cannot load the runner's key: {e}"), e.help()))
            }
        }
    }
}

/// Decrypted secrets, by digest of their encrypted file.
#[derive(Debug, Default)]
pub struct Plaintexts(BTreeMap<String, SecretBytes>);

impl Plaintexts {
    pub fn get(&self, digest: &str) -> Option<&SecretBytes> {
        self.0.get(digest)
    }

    /// For tests of later stages: plaintexts without decrypting.
    #[cfg(test)]
    pub(crate) fn from_map(map: BTreeMap<String, SecretBytes>) -> Self {
        Plaintexts(map)
    }
}

/// One encrypted file a plan needs in the clear.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeededSecret {
    /// Relative to the repo root.
    pub file: PathBuf,
    pub name: String,
    pub stack: String,
    pub digest: String,
}

/// The encrypted files behind `reads` (`(stack, secret name, digest)`, see
/// [`Plan::secrets_read`](crate::plan::Plan::secrets_read)): what must be
/// decrypted before apply.
pub fn needed(reads: &BTreeSet<(String, String, String)>, project: &Project) -> Vec<NeededSecret> {
    reads
        .iter()
        .filter_map(|(stack, name, digest)| {
            let spec = project.stacks.iter().find(|s| &s.name == stack)?;
            let file = spec.secrets.get(name)?.file.clone();
            Some(NeededSecret {
                file,
                name: name.clone(),
                stack: stack.clone(),
                digest: digest.clone(),
            })
        })
        .collect()
}

/// Decrypts what the plan needs, before any host is changed: a missing or
/// wrong key, or a broken file, fails the run here, naming the file.
/// Blocking (crypto).
pub fn decrypt_needed(
    root: &Path,
    needed: &[NeededSecret],
    key: Option<&RunnerKey>,
) -> anyhow::Result<Plaintexts> {
    let mut out = Plaintexts::default();
    if needed.is_empty() {
        return Ok(out);
    }
    let Some(key) = key else {
        let files: Vec<String> = needed
            .iter()
            .map(|n| format!("`{}`", n.file.display()))
            .collect();
        return Err(Hint::new(
            format!(
                "this plan starts containers that read secrets ({}), but no private key was given to decrypt them",
                files.join(", ")
            ),
            "pass --key-file, or set BERTH_KEY_FILE or BERTH_KEY (the armoured key); `berth plan` needs no key",
        )
        .into());
    };
    for n in needed {
        if out.0.contains_key(&n.digest) {
            continue;
        }
        let bytes = std::fs::read(root.join(&n.file))
            .with_context(|| format!("cannot read secret file `{}`", n.file.display()))?;
        if digest(&bytes) != n.digest {
            return Err(anyhow!(
                "secret file `{}` changed while berth was running; run again",
                n.file.display()
            ));
        }
        let plaintext = openpgp::decrypt(&bytes, key).map_err(|e| {
            hinted(
                format!(
                    "cannot decrypt secret `{}` of stack `{}` (`{}`): {e}",
                    n.name,
                    n.stack,
                    n.file.display()
                ),
                e.help(),
            )
        })?;
        out.0.insert(n.digest.clone(), plaintext);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_names_the_files_and_what_to_do() {
        let needed = vec![NeededSecret {
            file: "stacks/app/secrets/db.pgp".into(),
            name: "db".into(),
            stack: "app".into(),
            digest: "sha256:00".into(),
        }];
        let err = decrypt_needed(Path::new("/nonexistent"), &needed, None)
            .err()
            .map(|e| crate::error::Error::from(e).render())
            .unwrap_or_default();
        assert!(err.contains("`stacks/app/secrets/db.pgp`"), "{err}");
        assert!(err.contains("--key-file"), "{err}");
    }
}
