//! The run lock: two berth runs (two cron ticks, a timer and a CI job on
//! another machine) must never change the same host at once.
//!
//! The lock is a `flock` on `/run/lock/berth-<project>.lock` on the host,
//! held by a shell started over the run's own SSH connection and kept alive
//! by its stdin. When the run ends — or is killed with -9 — stdin closes, the
//! shell exits and the kernel drops the lock: a killed run never leaves a
//! lock that blocks forever. The holder (runner, pid, start time, commit) is
//! written beside the lock so a waiting run can say who holds it, and the
//! commit the last apply deployed is kept beside it too (told to the shell
//! on its stdin, read back when the next run takes the lock): a run that
//! only removed containers leaves no label to say how far the host got.
//! Beside it too, per image, when berth last resolved its tag and deployed
//! what it named on this host (`<lock>.checked`, lines `<unix secs>
//! <image>`): what `pull_policy: daily`/`weekly` count from. Like the
//! commit record it lives in `/run/lock`, so a reboot forgets it (the next
//! run then follows a moved tag at once).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::shell::{quote, Shell};

/// Held while the run changes the host; dropping it releases the lock.
#[derive(Debug, Default)]
pub struct HostLock {
    child: Option<Child>,
    host: String,
    /// The commit the last apply on this host recorded, if any.
    applied: Option<String>,
}

impl HostLock {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The commit the last apply deployed here, as it recorded it.
    pub fn last_applied(&self) -> Option<&str> {
        self.applied.as_deref()
    }

    /// Records `commit` as deployed: written by the lock shell before it
    /// exits, so the record and the release cannot cross.
    pub async fn record_applied(&mut self, commit: &str) -> anyhow::Result<()> {
        if !is_commit_id(commit) {
            anyhow::bail!("not a commit id: {commit}");
        }
        let Some(stdin) = self.child.as_mut().and_then(|c| c.stdin.as_mut()) else {
            return Ok(());
        };
        stdin
            .write_all(format!("applied {commit}\n").as_bytes())
            .await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Records that berth resolved each of `images` and deployed what its
    /// tag named on this host, at `at` (seconds since the epoch): one line
    /// per image, replacing that image's earlier line.
    pub async fn record_checked(
        &mut self,
        images: &BTreeSet<String>,
        at: u64,
    ) -> anyhow::Result<()> {
        let Some(stdin) = self.child.as_mut().and_then(|c| c.stdin.as_mut()) else {
            return Ok(());
        };
        let mut lines = String::new();
        for image in images {
            if !is_image_word(image) {
                anyhow::bail!("not an image reference: {image}");
            }
            lines.push_str(&format!("checked {at} {image}\n"));
        }
        stdin.write_all(lines.as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    pub async fn release(mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}

#[derive(Debug)]
pub enum LockError {
    /// Another run still held the lock when `--lock-timeout` ran out.
    Held {
        holder: String,
    },
    Failed(anyhow::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { holder } => {
                write!(f, "the run lock is held by another berth run ({holder})")
            }
            LockError::Failed(e) => write!(f, "cannot take the run lock: {e:#}"),
        }
    }
}

/// Who we are, as a waiting run will see it: only `[A-Za-z0-9=:._ -]` so it
/// can sit inside the single-quoted remote script.
pub fn holder_description(commit: Option<&str>) -> String {
    let runner = gethostname::gethostname().to_string_lossy().into_owned();
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let commit = commit.map(|c| c.get(..12).unwrap_or(c)).unwrap_or("none");
    let text = format!(
        "runner={runner} pid={} started={started} commit={commit}",
        std::process::id()
    );
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=:._ -".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An image reference as one word the lock script can keep on a line.
fn is_image_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
}

/// The lock file's directory and name for `key`, as shell assignments
/// (`d`, `f`): `/run/lock` where it is writable, else `/tmp`.
fn lock_path(root: &str, key: &str) -> String {
    let key: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let root = if root.is_empty() {
        String::new()
    } else {
        quote(root)
    };
    format!("d={root}/run/lock; [ -d $d ] && [ -w $d ] || d={root}/tmp; f=$d/berth-{key}.lock;")
}

/// Prints the check record beside the lock for `key` (see the module
/// doc); nothing when there is none. Read without the lock: a plan only
/// reads, and the record is replaced by a rename.
pub fn checks_script(root: &str, key: &str) -> String {
    format!("{} cat $f.checked 2>/dev/null; true", lock_path(root, key))
}

/// The check record as [`checks_script`] prints it: image -> when (seconds
/// since the epoch). Lines that are not `<secs> <image>` are skipped.
pub fn parse_checks(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (secs, image) = line.trim().split_once(' ')?;
            let image = image.trim();
            is_image_word(image).then_some(())?;
            Some((image.to_string(), secs.parse().ok()?))
        })
        .collect()
}

fn is_commit_id(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The shell run on the host. Prints `berth-lock-waiting <holder>` when it
/// has to wait, then `berth-lock-acquired [<last applied commit>]` or
/// `berth-lock-held <holder>`. While held it reads `applied <commit>` and
/// `checked <secs> <image>` lines.
/// `root` is the shell's [`Shell::root`]: empty on a real host.
pub fn script(root: &str, key: &str, holder: &str, timeout: Duration) -> String {
    // Quoted twice (single quotes around the script, double around this).
    let holder: String = holder.chars().filter(|c| !"'\"$`\\".contains(*c)).collect();
    format!(
        "{path} \
         exec 9>>$f || {{ echo berth-lock-error cannot open $f; exit 1; }}; \
         if ! flock -n 9; then \
           [ {secs} -gt 0 ] && echo berth-lock-waiting $(cat $f.holder 2>/dev/null); \
           if [ {secs} -eq 0 ] || ! flock -w {secs} 9; then echo berth-lock-held $(cat $f.holder 2>/dev/null); exit 3; fi; \
         fi; \
         echo \"{holder}\" > $f.holder; echo berth-lock-acquired $(cat $f.applied 2>/dev/null); \
         while read -r w c i; do case $w in \
           applied) echo $c > $f.applied.new && mv -f $f.applied.new $f.applied;; \
           checked) {{ [ -f $f.checked ] && while read -r t n; do [ \"$n\" = \"$i\" ] || echo \"$t $n\"; done < $f.checked; echo \"$c $i\"; }} > $f.checked.new && mv -f $f.checked.new $f.checked;; \
         esac; done",
        path = lock_path(root, key),
        secs = timeout.as_secs(),
    )
}

/// Takes the run lock for `key` on the host behind `shell`, waiting up to
/// `timeout`; `who` names the host in errors.
pub async fn take(
    shell: &dyn Shell,
    host: &str,
    who: &str,
    key: &str,
    holder: &str,
    timeout: Duration,
) -> Result<HostLock, LockError> {
    let script = script(shell.root(), key, holder, timeout);
    acquire(shell.command(&script), host, timeout)
        .await
        .map_err(|e| match e {
            LockError::Failed(err) => LockError::Failed(err.context(who.to_string())),
            held => held,
        })
}

/// Runs `command` (the lock script, locally or over SSH) and waits for its
/// verdict, bounded by the lock timeout plus a margin for the connection.
async fn acquire(
    mut command: Command,
    host: &str,
    timeout: Duration,
) -> Result<HostLock, LockError> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        LockError::Failed(anyhow::Error::new(e).context("cannot start the lock shell"))
    })?;
    let Some(stdout) = child.stdout.take() else {
        return Err(LockError::Failed(anyhow::anyhow!(
            "lock shell has no stdout"
        )));
    };
    let mut lines = BufReader::new(stdout).lines();
    let verdict = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(holder) = line.strip_prefix("berth-lock-waiting") {
                tracing::info!(
                    host = %host,
                    "waiting up to {}s for the run lock, held by {}",
                    timeout.as_secs(),
                    holder.trim()
                );
            } else if let Some(applied) = line.strip_prefix("berth-lock-acquired") {
                let applied = applied.trim();
                return Ok(Ok(is_commit_id(applied).then(|| applied.to_string())));
            } else if let Some(holder) = line.strip_prefix("berth-lock-held") {
                return Ok(Err(holder.trim().to_string()));
            } else if let Some(why) = line.strip_prefix("berth-lock-error") {
                return Err(std::io::Error::other(why.trim().to_string()));
            }
        }
        Err(std::io::Error::other(
            "the lock shell ended without an answer",
        ))
    };
    match tokio::time::timeout(timeout + Duration::from_secs(30), verdict).await {
        Ok(Ok(Ok(applied))) => Ok(HostLock {
            child: Some(child),
            host: host.to_string(),
            applied,
        }),
        Ok(Ok(Err(holder))) => Err(LockError::Held {
            holder: if holder.is_empty() {
                "unknown holder".into()
            } else {
                holder
            },
        }),
        Ok(Err(e)) => {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), err.read_to_string(&mut stderr))
                        .await;
            }
            let stderr = stderr.trim();
            Err(LockError::Failed(if stderr.is_empty() {
                anyhow::Error::new(e)
            } else {
                anyhow::anyhow!("{e}: {stderr}")
            }))
        }
        Err(_) => Err(LockError::Failed(anyhow::anyhow!(
            "no answer from the lock shell within {}s",
            (timeout + Duration::from_secs(30)).as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_is_safe_inside_single_quotes() {
        let h = holder_description(Some("0123456789abcdef"));
        assert!(h.starts_with("runner="), "{h}");
        assert!(h.contains(" commit=0123456789ab"), "{h}");
        assert!(!h.contains('\''));
    }

    #[tokio::test]
    async fn a_second_local_lock_waits_then_reports_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Same script, run locally, rooted in the temp dir (its `/tmp`).
        std::fs::create_dir(dir.path().join("tmp")).expect("tmp");
        let local = |holder: &str, secs| {
            let s = script(
                &dir.path().to_string_lossy(),
                "t",
                holder,
                Duration::from_secs(secs),
            );
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            c
        };
        let first = acquire(local("first run", 1), "local", Duration::from_secs(1))
            .await
            .expect("first lock");
        match acquire(local("second run", 1), "local", Duration::from_secs(1)).await {
            Err(LockError::Held { holder }) => assert_eq!(holder, "first run"),
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        assert_eq!(first.last_applied(), None);
        let mut first = first;
        let commit = "0123456789abcdef0123456789abcdef01234567";
        first.record_applied(commit).await.expect("record");
        first.release().await;
        let again = acquire(local("third run", 1), "local", Duration::from_secs(1)).await;
        match again {
            Ok(lock) => assert_eq!(lock.last_applied(), Some(commit)),
            Err(e) => panic!("lock not released: {e:?}"),
        }
    }

    /// The check record: written through the lock shell, one line per
    /// image (a later check replaces the earlier one), read back without
    /// the lock.
    #[tokio::test]
    async fn checks_are_recorded_beside_the_lock_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tmp")).expect("tmp");
        let root = dir.path().to_string_lossy().to_string();
        let local = |script: String| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            c
        };
        let read = || async {
            let out = local(checks_script(&root, "p"))
                .output()
                .await
                .expect("read");
            parse_checks(&String::from_utf8_lossy(&out.stdout))
        };
        assert!(read().await.is_empty());
        let take = || {
            acquire(
                local(script(&root, "p", "run", Duration::from_secs(1))),
                "local",
                Duration::from_secs(1),
            )
        };
        let a = "10.77.0.1:5000/berth/web:live".to_string();
        let b = "redis:7".to_string();
        let mut lock = take().await.expect("lock");
        lock.record_checked(&BTreeSet::from([a.clone(), b.clone()]), 100)
            .await
            .expect("record");
        lock.release().await;
        let mut lock = take().await.expect("lock again");
        lock.record_checked(&BTreeSet::from([a.clone()]), 200)
            .await
            .expect("record");
        assert!(lock
            .record_checked(&BTreeSet::from(["bad image; rm -rf /".to_string()]), 1)
            .await
            .is_err());
        lock.release().await;
        assert_eq!(read().await, BTreeMap::from([(a, 200), (b, 100)]));
        assert!(parse_checks("junk\n12 \nx y\n").is_empty());
    }
}
