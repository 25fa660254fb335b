//! Running a script on a host: over its SSH connection (a new channel on the
//! connection's master, no new handshake), or with the local `sh` for
//! `transport: local`. The checks that must see what the host sees, secret
//! delivery and the run lock all go this way.
//!
//! The [`Shell`] trait is the transport only: how to start `sh -c` on the
//! host. What berth runs there (the secret and lock scripts) is built once,
//! in [`super::secret_files`] and [`super::lock`], on top of any shell.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt as _;

/// A way to run `sh -c <script>` on one host.
#[async_trait]
pub trait Shell: Send + Sync {
    /// A command that runs `script` with `sh` on the host, not yet spawned:
    /// for scripts that live as long as the run (the run lock).
    fn command(&self, script: &str) -> tokio::process::Command;

    /// Where the host's `/` is for the paths berth puts in its scripts:
    /// empty for a real host. The in-memory host of the tests keeps its
    /// files under a temporary directory and says so here, so the real
    /// secret and lock scripts run against it unchanged.
    fn root(&self) -> &str {
        ""
    }

    /// Runs `script`, its `input` fed to stdin (values that must not
    /// appear in a process list go this way); returns its exit code and
    /// combined output (cut at 64 KiB). `who` names the host in errors.
    async fn run(
        &self,
        who: &str,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> anyhow::Result<(i64, String)> {
        run_command(self.command(script), who, input, timeout).await
    }

    /// Ends the connection; later commands fail. Best effort.
    async fn close(&self) {}
}

/// `s` as one word for a POSIX shell, single-quoted unless it needs no
/// quoting: the one way berth quotes what it hands to a remote `sh`.
/// `shell-escape` (cargo's own, and already built for `openssh`) quotes as
/// berth did by hand (`'` becomes `'\''`), and `!` too, which an
/// interactive shell would expand. A NUL never reaches a shell: starting
/// the command refuses it.
pub fn quote(s: &str) -> String {
    shell_escape::unix::escape(std::borrow::Cow::Borrowed(s)).into_owned()
}

/// The runner's own `sh`, for `transport: local`.
#[derive(Debug, Default)]
pub struct LocalShell;

#[async_trait]
impl Shell for LocalShell {
    fn command(&self, script: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(script);
        c
    }
}

/// Longest output [`run_command`] keeps.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// [`Shell::run`] for any command: spawns it with `input` on its stdin,
/// waits at most `timeout`, and returns its exit code and combined output.
pub async fn run_command(
    mut command: tokio::process::Command,
    who: &str,
    input: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<(i64, String)> {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = async {
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        // Feed stdin while collecting the output: a script that stops
        // early (and closes its stdin) must be heard, not an EPIPE.
        let feed = async move {
            if let (Some(bytes), Some(mut stdin)) = (input, stdin) {
                let _ = stdin.write_all(bytes).await;
                let _ = stdin.shutdown().await;
            }
        };
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(result) => result.map_err(|e| {
            anyhow::Error::new(e).context(format!("{who}: cannot run a command on the host"))
        })?,
        Err(_) => anyhow::bail!(
            "{who}: command on the host timed out after {} s",
            timeout.as_secs()
        ),
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((
        i64::from(output.status.code().unwrap_or(-1)),
        truncate(&text, OUTPUT_LIMIT),
    ))
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(quote("echo hi"), "'echo hi'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ééé", 3), "é…");
    }

    #[tokio::test]
    async fn runs_locally_with_stdin() {
        let (code, out) = LocalShell
            .run(
                "host `h`",
                "cat; echo; exit 3",
                Some(b"fed"),
                Duration::from_secs(5),
            )
            .await
            .expect("runs");
        assert_eq!((code, out.as_str()), (3, "fed\n"));
    }
}
