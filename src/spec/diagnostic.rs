//! What spec reports: problems in the user's files, each at its place.
//! A leaf below every reader, so each can report without importing the
//! loader that calls it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A place in a user's file, for error messages (`file:line:col`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    /// Path relative to the repo root, as the user would type it.
    pub file: PathBuf,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// One problem in the user's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    pub help: Option<String>,
}

/// Everything wrong with a repo, reported together.
#[derive(Debug, Clone, Default)]
pub struct SpecError {
    pub diagnostics: Vec<Diagnostic>,
    /// What the load would have warned about had it worked (an unset
    /// variable read as empty, an ignored `build`): often the cause of the
    /// errors, so they are shown before them. Not part of [`Display`].
    pub warnings: Vec<Diagnostic>,
}

impl From<Vec<Diagnostic>> for SpecError {
    fn from(diagnostics: Vec<Diagnostic>) -> SpecError {
        SpecError {
            diagnostics,
            warnings: Vec::new(),
        }
    }
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

pub(crate) fn file_location(file: impl Into<PathBuf>) -> Location {
    Location {
        file: file.into(),
        line: 0,
        column: 0,
    }
}

pub(crate) fn io_problem(file: impl Into<PathBuf>, error: &std::io::Error) -> Diagnostic {
    let message = if error.kind() == std::io::ErrorKind::InvalidData {
        "the file is not UTF-8 text".to_string()
    } else {
        format!("cannot read: {error}")
    };
    Diagnostic {
        location: file_location(file),
        message,
        help: None,
    }
}
