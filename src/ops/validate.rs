//! `berth validate`: reads and checks the repo; contacts no host.

use std::path::PathBuf;

use super::stages::LoadOptions;
use crate::error::{Error, Reach};

#[derive(Debug, Clone)]
pub struct ValidateOptions {
    pub load: LoadOptions,
}

/// A valid repo, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The directory holding `berth.yaml`.
    pub root: PathBuf,
    pub hosts: usize,
    pub stacks: usize,
    pub services: usize,
}

/// Reads the repo and validates all of it (placement included); an invalid
/// repo is an error listing every problem.
pub async fn validate(opts: &ValidateOptions) -> Result<Validated, Error> {
    let loaded = super::stages::load(&opts.load)
        .await
        .map_err(Error::at(Reach::NotContacted))?;
    Ok(Validated {
        root: loaded.checkout.root,
        hosts: loaded.project.inventory.hosts.len(),
        stacks: loaded.project.stacks.len(),
        services: loaded.project.stacks.iter().map(|s| s.services.len()).sum(),
    })
}
