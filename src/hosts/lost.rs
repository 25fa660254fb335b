//! The mark on an error that is about the way to a host, not about what was
//! asked of it: the connection is gone or refused, or nothing answered in
//! time. The apply executor reads it (through `apply::policy::classify`) to
//! tell a host that went dark mid-run, which is dropped from the run, from
//! a release that failed on a host that answers, where `failure_action`
//! applies.
//!
//! The transports set it where they see the cause: the Docker API client
//! for transport errors and request timeouts, the SSH shell when `ssh`
//! itself fails (exit 255). Everything else (an engine that answers with an
//! error, a check that fails) stays unmarked.

use std::fmt;

/// Context on an error: the host did not answer. Its text says how, and is
/// read after the host's name like any other context.
#[derive(Debug, Clone)]
pub struct Lost(pub String);

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `err`, marked as the host not answering, with `how` as its context.
pub fn lost(err: anyhow::Error, how: impl Into<String>) -> anyhow::Error {
    err.context(Lost(how.into()))
}

/// A new error saying the host did not answer.
pub fn lost_msg(how: impl Into<String>) -> anyhow::Error {
    anyhow::Error::msg(Lost(how.into()))
}

/// Whether `err` (or any error it wraps) carries the mark, whatever
/// context was added on top of it since.
pub fn is_lost(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Lost>().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn the_mark_survives_context_added_later_and_reads_as_text() {
        let marked = lost(
            anyhow::anyhow!("broken pipe"),
            "no answer from the Docker Engine",
        );
        let wrapped = Err::<(), _>(marked)
            .context("host `a`: cannot start container `x`")
            .context("replace of `x` failed")
            .unwrap_err();
        assert!(is_lost(&wrapped));
        assert_eq!(
            format!("{wrapped:#}"),
            "replace of `x` failed: host `a`: cannot start container `x`: no answer from the Docker Engine: broken pipe"
        );
        assert!(is_lost(&lost_msg("gone").context("more")));
        assert!(!is_lost(&anyhow::anyhow!(
            "Docker Engine answered 500: no space left on device"
        )));
    }
}
