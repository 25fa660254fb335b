//! `berth config`: the resolved Compose model of the repo's stacks, as berth
//! understood it (interpolated, merged, profiles applied, defaults filled).
//! Reads a local checkout only; contacts no host.

use std::path::PathBuf;

use crate::error::{Error, Reach};
use crate::spec;

#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// A local directory holding `berth.yaml`.
    pub repo: PathBuf,
    /// One stack, or every stack.
    pub stack: Option<String>,
    /// Compose profiles to enable, besides each stack's in berth.yaml.
    pub profiles: Vec<String>,
}

/// The resolved model as YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub yaml: String,
}

pub fn config(opts: &ConfigOptions) -> Result<Resolved, Error> {
    let not_contacted = Error::at(Reach::NotContacted);
    let project = super::stages::read_spec(&opts.repo, &opts.profiles)
        .map_err(|e| not_contacted(e.into()))?;
    let yaml = spec::config::render(&project, opts.stack.as_deref())
        .map_err(|e| not_contacted(anyhow::Error::msg(e)))?;
    Ok(Resolved { yaml })
}
