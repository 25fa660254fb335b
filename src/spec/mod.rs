//! spec: reads `berth.yaml` and `stacks/<name>/compose.yaml` into a validated
//! [`Project`].
//!
//! Input: a directory (a checkout). Output: a `Project`, or every problem
//! found at once, each with `file:line:col`, the key, and a help line.
//! Invariant: an unknown or unsupported key is always an error, never ignored
//! (an ignored `volumes:` loses data). Pure: touches no host.

pub mod model;

pub use model::*;

use std::path::Path;

/// One problem in the user's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    pub help: Option<String>,
}

/// Everything wrong with a repo, reported together.
#[derive(Debug, Clone)]
pub struct SpecError {
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", d.location, d.message)?;
            if let Some(help) = &d.help {
                write!(f, "\n  help: {help}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Reads and validates the repo at `root`.
pub fn load(root: &Path) -> Result<Project, SpecError> {
    let _ = root;
    todo!("spec::load")
}
