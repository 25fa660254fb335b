//! `berth secret ...`: what operators do with the repo's encrypted files.
//! Blocking (crypto, files, the editor); the CLI calls these directly.
//!
//! Every command keeps the plaintext in [`SecretBytes`]; the one place it
//! touches a file is `edit`, in a private (0700) directory on tmpfs (it
//! refuses without one), overwritten before it is removed.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use sequoia_openpgp::Cert;

use crate::error::{hinted, Hint};
use crate::openpgp::{self, RunnerKey, SecretBytes};

/// The certificates secrets are encrypted to: berth.yaml's
/// `secrets.recipients` (when `repo` has a berth.yaml) plus `extra` files.
pub fn recipient_certs(repo: &Path, extra: &[PathBuf]) -> anyhow::Result<Vec<Cert>> {
    let mut certs = Vec::new();
    if repo.join("berth.yaml").is_file() {
        let (_, inventory) = crate::spec::load_inventory_only(repo)?;
        for file in &inventory.recipients {
            certs.extend(openpgp::read_certs(&repo.join(file))?);
        }
    }
    for file in extra {
        certs.extend(openpgp::read_certs(file)?);
    }
    let mut seen = BTreeSet::new();
    certs.retain(|c| seen.insert(c.fingerprint().to_hex()));
    Ok(certs)
}

/// Encrypts `input` (a file, or stdin for `-`) to `recipients`; writes the
/// armoured message to `out` (atomically) or stdout.
pub fn encrypt(input: &Path, recipients: &[Cert], out: Option<&Path>) -> anyhow::Result<()> {
    if recipients.is_empty() {
        bail!(
            "no recipients: pass --recipient CERT_FILE, or list certificates under `secrets.recipients` in berth.yaml"
        );
    }
    let plaintext = if input == Path::new("-") {
        let mut buf =
            openpgp::read_zeroizing(&mut std::io::stdin()).context("cannot read stdin")?;
        SecretBytes::new(std::mem::take(&mut *buf))
    } else {
        SecretBytes::new(
            std::fs::read(input).with_context(|| format!("cannot read `{}`", input.display()))?,
        )
    };
    let message = openpgp::encrypt(&plaintext, recipients)?;
    match out {
        Some(path) => write_replacing(path, &message),
        None => std::io::stdout()
            .write_all(&message)
            .context("cannot write to stdout"),
    }
}

/// The plaintext of an encrypted file.
pub fn decrypt(file: &Path, key: &RunnerKey) -> anyhow::Result<SecretBytes> {
    let message =
        std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    openpgp::decrypt(&message, key).map_err(|e| {
        hinted(
            format!("cannot decrypt `{}`: {e}", file.display()),
            e.help(),
        )
    })
}

/// One line per recipient of `file`: its key ID and, when `known` has its
/// certificate, who that is.
pub fn recipients(file: &Path, known: &[Cert]) -> anyhow::Result<Vec<String>> {
    let message =
        std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let ids = openpgp::message_recipients(&message)
        .map_err(|e| hinted(format!("`{}`: {e}", file.display()), e.help()))?;
    Ok(ids
        .iter()
        .map(|id| match openpgp::cert_for_recipient(known, id) {
            Some(cert) => format!("{id}  {}", openpgp::describe_cert(cert)),
            None => format!(
                "{id}  (certificate not in berth.yaml's secrets.recipients nor --recipient)"
            ),
        })
        .collect())
}

/// The certificates behind every recipient of `message`, or an error
/// naming the ones `known` lacks.
fn certs_of_recipients(file: &Path, message: &[u8], known: &[Cert]) -> anyhow::Result<Vec<Cert>> {
    let ids = openpgp::message_recipients(message)
        .map_err(|e| hinted(format!("`{}`: {e}", file.display()), e.help()))?;
    let mut certs: Vec<Cert> = Vec::new();
    let mut missing = Vec::new();
    for id in &ids {
        match openpgp::cert_for_recipient(known, id) {
            Some(cert) => {
                if !certs.iter().any(|c| c.fingerprint() == cert.fingerprint()) {
                    certs.push(cert.clone());
                }
            }
            None => missing.push(id.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Hint::new(
            format!(
                "`{}` is also encrypted to {}, whose certificate berth does not have, so it cannot keep them as recipients",
                file.display(),
                missing.join(", ")
            ),
            "pass their certificate with --recipient CERT_FILE, or list it under `secrets.recipients` in berth.yaml",
        )
        .into());
    }
    Ok(certs)
}

/// What `edit` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Edited {
    /// The editor saved the same plaintext: the file was left as it was.
    Unchanged,
    /// Re-encrypted to the same recipients (their primary fingerprints).
    Rewritten(Vec<String>),
}

/// Decrypts `file` into a private temporary file, runs `editor` on it, and
/// re-encrypts the result to the same recipients.
pub fn edit(file: &Path, key: &RunnerKey, known: &[Cert], editor: &str) -> anyhow::Result<Edited> {
    let message =
        std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let recipients = certs_of_recipients(file, &message, known)?;
    let before = openpgp::decrypt(&message, key).map_err(|e| {
        hinted(
            format!("cannot decrypt `{}`: {e}", file.display()),
            e.help(),
        )
    })?;

    // A private (0700) directory on tmpfs: the plaintext, and whatever the
    // editor writes beside it (swap, backup files), never reach a disk.
    let base = tmpfs_dir()?;
    let scratch_dir = tempfile::Builder::new()
        .prefix("berth-secret-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a private directory in `{}`", base.display()))?;
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret".into());
    let scratch = scratch_dir.path().join(name);
    let after = (|| -> anyhow::Result<SecretBytes> {
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&scratch)?;
            f.write_all(before.expose())?;
        }
        // Ctrl-C goes to the editor; berth waits and cleans up.
        let _guard = InterruptGuard::new();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&scratch)
            .status()
            .with_context(|| format!("cannot run the editor `{editor}`"))?;
        if !status.success() {
            bail!(
                "the editor `{editor}` exited with {status}; `{}` was not changed",
                file.display()
            );
        }
        // Editors often replace the file rather than write into it: read by path.
        Ok(SecretBytes::new(
            std::fs::read(&scratch).context("cannot read the edited file back")?,
        ))
    })();
    // Overwrite every file the editor left, then remove the directory.
    if let Ok(entries) = std::fs::read_dir(scratch_dir.path()) {
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) {
                if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
                    let _ = f.write_all(&vec![0u8; len as usize]);
                    let _ = f.sync_all();
                }
            }
        }
    }
    drop(scratch_dir);
    let after = after?;
    if after == before {
        return Ok(Edited::Unchanged);
    }
    let rewritten = openpgp::encrypt(&after, &recipients)?;
    write_replacing(file, &rewritten)?;
    Ok(Edited::Rewritten(
        recipients
            .iter()
            .map(|c| c.fingerprint().to_hex())
            .collect(),
    ))
}

/// The first tmpfs among $XDG_RUNTIME_DIR, /dev/shm and $TMPDIR; there is
/// no safe place for a plaintext without one.
fn tmpfs_dir() -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
        std::env::var_os("TMPDIR").map(PathBuf::from),
    ]
    .into_iter()
    .flatten()
    .collect();
    candidates
        .iter()
        .find(|dir| is_tmpfs(dir))
        .cloned()
        .ok_or_else(|| {
            anyhow::Error::new(Hint::new(
                format!(
                    "no tmpfs to hold the plaintext while you edit (looked at {}); berth does not write secrets to disk",
                    candidates
                        .iter()
                        .map(|d| format!("`{}`", d.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "point TMPDIR at a tmpfs or RAM disk",
            ))
        })
}

// `f_type`'s integer type differs between platforms: the cast is for them.
#[allow(clippy::unnecessary_cast)]
fn is_tmpfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `path` is a valid C string and `stat` a buffer of the right type.
    let rc = unsafe { libc::statfs(path.as_ptr(), stat.as_mut_ptr()) };
    // SAFETY: statfs filled it in when it returned 0.
    rc == 0 && unsafe { stat.assume_init() }.f_type as i64 == TMPFS_MAGIC
}

/// While alive, SIGINT and SIGTERM only interrupt the editor (which gets
/// the default handling back at exec): berth lives on to remove the
/// plaintext.
struct InterruptGuard {
    old: [libc::sigaction; 2],
}

extern "C" fn ignore_signal(_: libc::c_int) {}

impl InterruptGuard {
    fn new() -> Self {
        let mut old: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
        for (i, sig) in [libc::SIGINT, libc::SIGTERM].into_iter().enumerate() {
            // SAFETY: a zeroed sigaction with a handler that does nothing.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = ignore_signal as *const () as usize;
                libc::sigaction(sig, &action, &mut old[i]);
            }
        }
        InterruptGuard { old }
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for (i, sig) in [libc::SIGINT, libc::SIGTERM].into_iter().enumerate() {
            // SAFETY: restores what `new` saved.
            unsafe {
                libc::sigaction(sig, &self.old[i], std::ptr::null_mut());
            }
        }
    }
}

/// What `rekey` did to one file.
#[derive(Debug, PartialEq, Eq)]
pub struct Rekeyed {
    /// Relative to the repo root.
    pub file: PathBuf,
    /// False when it was already encrypted to exactly the listed recipients.
    pub rewritten: bool,
}

/// Re-encrypts every secret the repo's stacks declare to exactly berth.yaml's
/// `secrets.recipients`. Files already encrypted to that set are left alone,
/// so their containers are not replaced for nothing.
pub fn rekey(repo: &Path, key: &RunnerKey) -> anyhow::Result<Vec<Rekeyed>> {
    let project = crate::spec::load(repo)?;
    if project.inventory.recipients.is_empty() {
        return Err(Hint::new(
            "berth.yaml lists no `secrets.recipients`: nothing to re-encrypt to",
            "add `secrets: {recipients: [keys/runner.asc, keys/you.asc]}` and commit those certificates",
        )
        .into());
    }
    let targets = recipient_certs(repo, &[])?;
    let target_fprs: BTreeSet<String> = targets.iter().map(|c| c.fingerprint().to_hex()).collect();
    let files: BTreeSet<PathBuf> = project
        .stacks
        .iter()
        .flat_map(|s| s.secrets.values().map(|x| x.file.clone()))
        .collect();
    let mut out = Vec::new();
    for file in files {
        let path = repo.join(&file);
        let message =
            std::fs::read(&path).with_context(|| format!("cannot read `{}`", file.display()))?;
        let ids = openpgp::message_recipients(&message)
            .map_err(|e| hinted(format!("`{}`: {e}", file.display()), e.help()))?;
        let current: Option<BTreeSet<String>> = ids
            .iter()
            .map(|id| openpgp::cert_for_recipient(&targets, id).map(|c| c.fingerprint().to_hex()))
            .collect();
        if current.as_ref() == Some(&target_fprs) {
            out.push(Rekeyed {
                file,
                rewritten: false,
            });
            continue;
        }
        let plaintext = openpgp::decrypt(&message, key).map_err(|e| {
            hinted(
                format!("cannot decrypt `{}`: {e}", file.display()),
                e.help(),
            )
        })?;
        write_replacing(&path, &openpgp::encrypt(&plaintext, &targets)?)?;
        out.push(Rekeyed {
            file,
            rewritten: true,
        });
    }
    Ok(out)
}

/// Writes next to `path`, then renames over it: never half a file.
fn write_replacing(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot write `{}`: {}", path.display(), e.error))?;
    Ok(())
}
