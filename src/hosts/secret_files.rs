//! Secret files on a host: the shell scripts that deliver and prune them.
//!
//! A plaintext goes to the host through the connection's stdin and is
//! written to tmpfs only: the script refuses a directory on disk (and mounts
//! a tmpfs there when it may). Files are written to a temporary name and
//! renamed, so a container never sees half a secret.

use std::collections::BTreeSet;
use std::time::Duration;

use super::file_scripts::{numeric_id, prune_versions, read_exactly, REMOVE_EMPTY_DIRS};
use super::shell::{quote, Shell};

use crate::openpgp::SecretBytes;

/// One secret file to deliver.
pub struct SecretFile<'a> {
    /// Absolute path on the host (see [`crate::spec::secret_paths::host_path`]).
    pub path: String,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
    pub content: &'a SecretBytes,
}

/// Longest a secret delivery or clean-up may take on a host.
const SECRET_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivers `files` under `secrets_dir` in one remote command: the values
/// go through the connection's stdin onto the host's tmpfs. `who` names
/// the host in errors. Paths are the host's, under the shell's
/// [`Shell::root`].
pub async fn write(
    shell: &dyn Shell,
    who: &str,
    secrets_dir: &str,
    files: &[SecretFile<'_>],
) -> anyhow::Result<()> {
    let root = shell.root();
    let rooted: Vec<SecretFile<'_>> = files
        .iter()
        .map(|f| SecretFile {
            path: format!("{root}{}", f.path),
            uid: f.uid.clone(),
            gid: f.gid.clone(),
            mode: f.mode,
            content: f.content,
        })
        .collect();
    let script = write_script(&format!("{root}{secrets_dir}"), &rooted)
        .map_err(|e| anyhow::anyhow!("{who}: {e}"))?;
    let input = write_input(files);
    let (code, output) = shell
        .run(who, &script, Some(input.expose()), SECRET_TIMEOUT)
        .await?;
    if code != 0 {
        anyhow::bail!(
            "{who}: cannot write secret files under `{secrets_dir}`: {}",
            output.trim()
        );
    }
    Ok(())
}

/// Removes the secret versions under `project_dir` that no container uses
/// any more (`keep`: `<stack>/<service>/<version>`).
pub async fn prune(
    shell: &dyn Shell,
    who: &str,
    project_dir: &str,
    keep: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let script = prune_script(&format!("{}{project_dir}", shell.root()), keep);
    let (code, output) = shell.run(who, &script, None, SECRET_TIMEOUT).await?;
    if code != 0 {
        anyhow::bail!(
            "{who}: cannot remove unused secrets under `{project_dir}`: {}",
            output.trim()
        );
    }
    Ok(())
}

/// Ensures `secrets_dir` is on tmpfs, then writes every file from the
/// script's stdin, where their contents follow one another in order
/// ([`write_input`]): one remote command for all of a host's secrets.
pub fn write_script(secrets_dir: &str, files: &[SecretFile<'_>]) -> Result<String, String> {
    let mut script = format!(
        r#"set -e
umask 077
root={root}
mkdir -p "$root"
if [ "$(stat -f -c %T "$root")" != tmpfs ]; then
  # Never hide what is there: mount only on an empty directory.
  if [ -n "$(ls -A "$root")" ]; then
    echo "$root is not on tmpfs and is not empty: berth will neither write secrets to disk nor mount over it (set secrets_dir in berth.yaml to a tmpfs directory)" >&2
    exit 3
  fi
  mount -t tmpfs -o mode=0700,size=16m berth-secrets "$root" 2>/dev/null || {{
    echo "$root is not on tmpfs and a tmpfs cannot be mounted there: berth does not write secrets to disk (set secrets_dir in berth.yaml to a tmpfs directory)" >&2
    exit 3
  }}
fi
tmp=
trap 'rm -f "$tmp"' EXIT
"#,
        root = quote(secrets_dir),
    );
    for file in files {
        if !numeric_id(&file.uid) || !numeric_id(&file.gid) {
            return Err(format!(
                "secret `{}`: uid and gid must be numbers (found `{}:{}`)",
                file.path, file.uid, file.gid
            ));
        }
        let (dir, name) = file
            .path
            .rsplit_once('/')
            .ok_or_else(|| format!("secret path `{}` is not absolute", file.path))?;
        script.push_str(&format!(
            r#"mkdir -p {dir}
tmp={dir}/.{name}.$$
{read}chown {uid}:{gid} "$tmp"
chmod {mode:o} "$tmp"
mv -f "$tmp" {path}
"#,
            dir = quote(dir),
            name = name.replace(['\'', '/'], "_"),
            read = read_exactly("\"$tmp\"", file.content.len(), &file.path),
            uid = file.uid,
            gid = file.gid,
            mode = file.mode,
            path = quote(&file.path),
        ));
    }
    script.push_str("trap - EXIT\n");
    Ok(script)
}

/// The stdin of [`write_script`]: the contents, back to back. Zeroized on drop.
pub fn write_input(files: &[SecretFile<'_>]) -> SecretBytes {
    let mut input = Vec::with_capacity(files.iter().map(|f| f.content.len()).sum());
    for f in files {
        input.extend_from_slice(f.content.expose());
    }
    SecretBytes::new(input)
}

/// Removes `<stack>/<service>/<version>` directories under `project_dir`
/// that no container uses (`keep`), then empty parents. A missing
/// `project_dir` is fine: the project never had secrets on this host.
pub fn prune_script(project_dir: &str, keep: &BTreeSet<String>) -> String {
    format!(
        "set -e\ndir={dir}\n[ -d \"$dir\" ] || exit 0\ncd \"$dir\"\n{prune}{REMOVE_EMPTY_DIRS}",
        dir = quote(project_dir),
        prune = prune_versions("*/*/*", keep),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, input: &[u8]) -> (i32, String) {
        use std::io::Write as _;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn refuses_names_for_owners() {
        let content = SecretBytes::new(b"x".to_vec());
        let file = SecretFile {
            path: "/run/berth/secrets/p/s/a/0/db".into(),
            uid: "www-data".into(),
            gid: "0".into(),
            mode: 0o400,
            content: &content,
        };
        let err = write_script("/run/berth/secrets", &[file])
            .err()
            .unwrap_or_default();
        assert!(err.contains("must be numbers"), "{err}");
    }

    #[test]
    fn writes_every_file_on_tmpfs_with_owner_and_mode() {
        // /dev/shm is tmpfs on every Linux box.
        let root = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
        let dir = root.path().to_string_lossy().into_owned();
        let first = SecretBytes::new(b"hunter2\n".to_vec());
        // Binary, with newlines and NULs: framing must not care.
        let second = SecretBytes::new(vec![0, 10, 255, 10, 0, b'x']);
        let empty = SecretBytes::new(Vec::new());
        let uid = unsafe { libc::geteuid() }.to_string();
        let gid = unsafe { libc::getegid() }.to_string();
        let file = |path: &str, mode: u32, content| SecretFile {
            path: format!("{dir}/{path}"),
            uid: uid.clone(),
            gid: gid.clone(),
            mode,
            content,
        };
        let files = [
            file("p/app/api/0123456789ab/db", 0o440, &first),
            file("p/app/api/ffffffffffff/cert", 0o400, &second),
            file("p/app/web/aaaaaaaaaaaa/none", 0o400, &empty),
        ];
        let script = write_script(&dir, &files).expect("script");
        assert!(!script.contains("hunter2"), "values go through stdin");
        let (code, err) = run(&script, write_input(&files).expose());
        assert_eq!(code, 0, "{err}");
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&files[0].path).expect("written");
        assert_eq!(meta.mode() & 0o777, 0o440);
        assert_eq!(meta.uid().to_string(), uid);
        assert_eq!(std::fs::read(&files[0].path).expect("read"), b"hunter2\n");
        assert_eq!(
            std::fs::read(&files[1].path).expect("read"),
            vec![0, 10, 255, 10, 0, b'x']
        );
        assert_eq!(std::fs::read(&files[2].path).expect("read"), b"");
        // Nothing else is left in the directory (no temporary file).
        let entries = std::fs::read_dir(format!("{dir}/p/app/api/0123456789ab"))
            .expect("dir")
            .count();
        assert_eq!(entries, 1);

        // Input cut short: an error, and no half-written file in place.
        let short = [file("p/app/api/000000000000/db", 0o400, &first)];
        let (code, _) = run(&write_script(&dir, &short).expect("script"), b"hun");
        assert_ne!(code, 0);
        assert!(!std::path::Path::new(&short[0].path).exists());
    }

    /// Writes one root-owned 0400 file under `dir`; returns it and how the script ended.
    fn write_one<'a>(dir: &str, content: &'a SecretBytes) -> (SecretFile<'a>, i32, String) {
        let file = SecretFile {
            path: format!("{dir}/p/s/a/0/db"),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o400,
            content,
        };
        let (code, err) = run(
            &write_script(dir, std::slice::from_ref(&file)).expect("script"),
            content.expose(),
        );
        (file, code, err)
    }

    #[test]
    fn never_writes_a_secret_to_disk() {
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("disk dir");
        let dir = disk.path().to_string_lossy().into_owned();
        let content = SecretBytes::new(b"v".to_vec());
        let (file, code, err) = write_one(&dir, &content);
        let fs = std::process::Command::new("stat")
            .args(["-f", "-c", "%T", &dir])
            .output()
            .expect("stat");
        let fs = String::from_utf8_lossy(&fs.stdout).trim().to_string();
        let _ = std::process::Command::new("umount").arg(&dir).status();
        if unsafe { libc::geteuid() } == 0 {
            // Root may mount a tmpfs there, and the file lands on it.
            assert_eq!(code, 0, "{err}");
            assert_eq!(fs, "tmpfs");
        } else {
            assert_eq!(code, 3);
            assert!(err.contains("is not on tmpfs"), "{err}");
            assert!(!std::path::Path::new(&file.path).exists());
        }
    }

    #[test]
    fn never_mounts_over_a_directory_with_files() {
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("disk dir");
        let dir = disk.path().to_string_lossy().into_owned();
        std::fs::write(disk.path().join("keep-me"), "data").expect("write");
        let content = SecretBytes::new(b"v".to_vec());
        let (file, code, err) = write_one(&dir, &content);
        let _ = std::process::Command::new("umount").arg(&dir).status();
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("is not empty"), "{err}");
        assert!(disk.path().join("keep-me").exists());
        assert!(!std::path::Path::new(&file.path).exists());
    }

    #[test]
    fn prune_keeps_versions_in_use_and_removes_the_rest() {
        let root = tempfile::tempdir().expect("dir");
        let base = root.path();
        for v in ["app/api/aaa", "app/api/bbb", "app/web/ccc", "old/gone/ddd"] {
            std::fs::create_dir_all(base.join(v)).expect("mkdir");
            std::fs::write(base.join(v).join("db"), "x").expect("write");
        }
        let keep = BTreeSet::from(["app/api/bbb".to_string(), "app/web/ccc".to_string()]);
        let (code, err) = run(&prune_script(&base.to_string_lossy(), &keep), b"");
        assert_eq!(code, 0, "{err}");
        assert!(!base.join("app/api/aaa").exists());
        assert!(base.join("app/api/bbb/db").exists());
        assert!(base.join("app/web/ccc/db").exists());
        assert!(!base.join("old").exists(), "empty parents are removed");
        let (code, err) = run(&prune_script("/nonexistent/berth", &keep), b"");
        assert_eq!(code, 0, "{err}");
    }
}
