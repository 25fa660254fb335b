//! trust: with `--trust`, the checked-out commit must be signed by a key in
//! the runner's trust file, and every file berth reads must be in that
//! commit. Blocking (git2, crypto): call from `spawn_blocking`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::checkout::Checkout;
use super::signature;
use crate::error::{hinted, Hint};

/// Refuses a commit not signed by a key in the runner's trust file: a
/// compromised repo cannot deploy.
pub fn verify_signature(checkout: &Checkout, trust: &Path) -> anyhow::Result<()> {
    let Some(commit) = &checkout.commit else {
        anyhow::bail!(
            "--trust checks commit signatures, but `{}` is not in a git repo",
            checkout.root.display()
        );
    };
    if checkout.dirty {
        return Err(Hint::new(
            format!(
                "--trust checks commit signatures, but `{}` has uncommitted changes that no signature covers",
                checkout.root.display()
            ),
            "commit (signed) or discard them",
        )
        .into());
    }
    let trusted = signature::TrustedSigners::from_file(trust)?;
    let repo = git2::Repository::discover(&checkout.root)
        .with_context(|| format!("cannot open the git repo at `{}`", checkout.root.display()))?;
    let oid = git2::Oid::from_str(&commit.id)?;
    let signer = signature::verify_commit(&repo, oid, &trusted, std::time::SystemTime::now())
        .map_err(|e| hinted(e.to_string(), e.help()))?;
    tracing::info!(
        "commit {} is signed by {}{}",
        crate::render::short(&commit.id),
        signer.fingerprint,
        signer
            .user_id
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default()
    );
    Ok(())
}

/// With `--trust`, every file berth read (`inputs`, relative to the
/// checkout's root) must be in the signed commit: a file git ignores is read
/// from the work tree but covered by no signature.
pub fn refuse_unsigned_inputs(
    checkout: &Checkout,
    inputs: impl IntoIterator<Item = PathBuf>,
) -> anyhow::Result<()> {
    let repo = git2::Repository::discover(&checkout.root)
        .with_context(|| format!("cannot open the git repo at `{}`", checkout.root.display()))?;
    let Some(workdir) = repo.workdir() else {
        return Ok(());
    };
    let root = checkout
        .root
        .canonicalize()
        .unwrap_or_else(|_| checkout.root.clone());
    let workdir = workdir
        .canonicalize()
        .unwrap_or_else(|_| workdir.to_path_buf());
    let mut outside = Vec::new();
    for input in inputs {
        let Ok(rel) = root.join(&input).strip_prefix(&workdir).map(PathBuf::from) else {
            continue;
        };
        let status = repo.status_file(&rel).unwrap_or(git2::Status::WT_NEW);
        if status.is_ignored() || status.is_wt_new() || status.is_index_new() {
            outside.push(format!("`{}`", input.display()));
        }
    }
    if outside.is_empty() {
        return Ok(());
    }
    let them = if outside.len() == 1 { "it" } else { "them" };
    Err(Hint::new(
        format!(
            "--trust: {} {} not in the signed commit (ignored or never committed), so no signature covers {them}",
            outside.join(", "),
            if outside.len() == 1 { "is" } else { "are" },
        ),
        format!("commit {them} (signed), or remove {them} from the work tree"),
    )
    .into())
}
