//! A request to stop a run early (SIGTERM from systemd stopping the unit,
//! Ctrl-C): set once by whoever hears the signal, read by the executor at
//! the only points where stopping leaves every slot whole, between
//! batches. What is in flight finishes, or is rolled back, as it would be
//! anyway.

use std::sync::{Arc, OnceLock};

/// Shared by clones: the signal watcher keeps one, the executor another.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<OnceLock<String>>);

impl Stop {
    /// Asks the run to stop; `why` names the cause (`SIGTERM`). The first
    /// request wins.
    pub fn request(&self, why: &str) {
        let _ = self.0.set(why.to_string());
    }

    /// Why the run was asked to stop, if it was.
    pub fn requested(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}
