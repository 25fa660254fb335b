//! Config files on a host: the shell scripts that deliver, swap, read back
//! and prune them, each one remote command per host over any [`Shell`].
//!
//! Layout under the project's directory (`spec::configs::project_dir`):
//! `<stack>/<service>/<slug>/<version>/data` holds one version of a config
//! (a file, or a directory of files), written under a temporary name and
//! renamed into place, so no container ever mounts half of one. A
//! reloading container mounts `.live/<stack>/<service>/<replica>/<dir>/`,
//! whose entries are symlinks into its own copies (`..berth/<file>/<version>`);
//! a swap renames a new symlink over the old one, which is atomic: a reader
//! (or a `kill -9` of berth) sees the old file or the new one, never a mix.
//! A directory config swaps the same way: the link names a whole copy of
//! the directory, so a reader sees all of the old files or all of the new.
//! Not tmpfs: configs are not secrets, and must survive a reboot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use super::file_scripts::{numeric_id, prune_versions, read_exactly, shown, REMOVE_EMPTY_DIRS};
use super::shell::{quote, Shell};
use crate::observed::{ConfigObservation, LiveCopy};

/// Longest a config delivery, swap or clean-up may take on a host.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(60);

/// The digest function every script uses: hex sha256 of a file, or of a
/// directory's listing (as `spec::configs::digest_of` computes it).
const DIGEST_FN: &str = r#"digest() {
  if [ -d "$1" ]; then
    (cd "$1" && find . -type f | LC_ALL=C sort | while IFS= read -r f; do
      printf '%s  %s\n' "$(sha256sum < "$f" | cut -c1-64)" "$f"
    done) | sha256sum | cut -c1-64
  elif [ -f "$1" ]; then
    sha256sum < "$1" | cut -c1-64
  fi
}
"#;

/// One version of a config to have on the host.
pub struct Version<'a> {
    /// Absolute version directory on the host (`.../<version>`).
    pub dir: String,
    /// Hex sha256 the written `data` must have.
    pub hex: String,
    /// A directory's files by relative path, or one file under `""`.
    pub files: &'a BTreeMap<String, Vec<u8>>,
    pub is_dir: bool,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
}

/// One live link: `<live dir>/<name>` pointing at its own copy of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Absolute live directory on the host.
    pub live: String,
    /// File name in it (the target's base name).
    pub name: String,
    /// The version to link (its name, e.g. `0123456789ab`).
    pub version: String,
    /// The absolute version directory in the store to copy from, when the
    /// live directory lacks its copy; None to link a copy already there.
    pub from: Option<String>,
    /// Hex sha256 the live copy must have: one that differs (edited on
    /// the host) is copied again from `from`.
    pub hex: Option<String>,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
}

/// Writes every version that is missing or whose bytes differ from `hex`
/// (edited by hand), then sets `links`: one remote command, the files'
/// bytes on its stdin (see [`deliver_input`]).
pub fn deliver_script(versions: &[Version<'_>], links: &[Link]) -> Result<String, String> {
    let mut script = format!("set -e\numask 022\n{DIGEST_FN}");
    script.push_str("t=\ntrap '[ -z \"$t\" ] || rm -rf \"$t\"' EXIT\n");
    for v in versions {
        if !numeric_id(&v.uid) || !numeric_id(&v.gid) {
            return Err(format!(
                "config `{}`: uid and gid must be numbers (found `{}:{}`)",
                v.dir, v.uid, v.gid
            ));
        }
        let total: usize = v.files.values().map(Vec::len).sum();
        let _ = write!(
            script,
            "v={dir}\nif [ -d \"$v\" ] && [ \"$(digest \"$v/data\")\" = {hex} ]; then\n  dd bs=1 count={total} of=/dev/null 2>/dev/null\nelse\n  t=\"$v.tmp.$$\"; rm -rf \"$t\"; mkdir -p \"$t\"\n",
            dir = quote(&v.dir),
            hex = v.hex,
        );
        for (rel, bytes) in v.files.iter() {
            let path = if v.is_dir {
                format!("data/{rel}")
            } else {
                "data".to_string()
            };
            if let Some((dir, _)) = path.rsplit_once('/') {
                let _ = writeln!(script, "  mkdir -p \"$t\"/{}", quote(dir));
            }
            script.push_str(&read_exactly(
                &format!("\"$t\"/{}", quote(&path)),
                bytes.len(),
                &format!("config {}", v.dir),
            ));
        }
        let _ = write!(
            script,
            "  [ -e \"$t/data\" ] || mkdir -p \"$t/data\"\n  chown -R {uid}:{gid} \"$t/data\"\n  find \"$t/data\" -type f -exec chmod {mode:o} {{}} +\n  find \"$t/data\" -type d -exec chmod 755 {{}} +\n  [ \"$(digest \"$t/data\")\" = {hex} ] || {{ echo \"config {shown}: written bytes do not match the repo\" >&2; exit 5; }}\n  if [ -e \"$v\" ]; then mv \"$v\" \"$v.old.$$\"; fi\n  mv \"$t\" \"$v\"; t=\n  rm -rf \"$v.old.$$\"\nfi\n",
            uid = v.uid,
            gid = v.gid,
            mode = v.mode,
            hex = v.hex,
            shown = shown(&v.dir),
        );
    }
    script.push_str(&links_script(links)?);
    // A container created after this reads these versions from its start.
    script.push_str(&mark_script(links));
    script.push_str("trap - EXIT\n");
    Ok(script)
}

/// Sets each link, printing `was <live>/<name> <old version>` first (empty
/// when there was none), so a swap can be undone.
fn links_script(links: &[Link]) -> Result<String, String> {
    let mut script = String::new();
    for l in links {
        if !numeric_id(&l.uid) || !numeric_id(&l.gid) {
            return Err(format!(
                "config `{}/{}`: uid and gid must be numbers",
                l.live, l.name
            ));
        }
        if l.name.is_empty() || l.name.contains('/') || l.version.contains('/') {
            return Err(format!(
                "config link `{}/{}` is not a file name",
                l.live, l.name
            ));
        }
        // A copy is a file or a directory (then its files get the mode).
        // A file is renamed over a hand-edited copy at once; a directory
        // cannot be, so it is moved aside first: only a repair of a copy
        // edited on the host has that gap, never a swap (a new link).
        let copy = match &l.from {
            Some(from) => format!(
                "if [ ! -e \"$c/$n\" ] || [ \"$(digest \"$c/$n\")\" != {hex} ]; then\n  rm -rf \"$c/.$n.tmp\"\n  cp -R {from}/data \"$c/.$n.tmp\"\n  chown -R {uid}:{gid} \"$c/.$n.tmp\"\n  find \"$c/.$n.tmp\" -type f -exec chmod {mode:o} {{}} +\n  find \"$c/.$n.tmp\" -type d -exec chmod 755 {{}} +\n  if [ -d \"$c/$n\" ]; then mv \"$c/$n\" \"$c/.$n.old\"; fi\n  mv -f \"$c/.$n.tmp\" \"$c/$n\"\n  rm -rf \"$c/.$n.old\"\nfi\n",
                from = quote(from),
                hex = quote(l.hex.as_deref().unwrap_or("-")),
                uid = l.uid,
                gid = l.gid,
                mode = l.mode,
            ),
            None => "[ -e \"$c/$n\" ] || { echo \"config version $c/$n is gone\" >&2; exit 6; }\n"
                .to_string(),
        };
        let _ = write!(
            script,
            "l={live}; f={name}; n={version}; c=\"$l/..berth/$f\"\nmkdir -p \"$c\"\n{copy}echo \"was $l/$f $(readlink \"$l/$f\" 2>/dev/null | sed 's|.*/||')\"\nln -sfn \"..berth/$f/$n\" \"$l/.$f.link\"\nmv -Tf \"$l/.$f.link\" \"$l/$f\"\n",
            live = quote(&l.live),
            name = quote(&l.name),
            version = quote(&l.version),
        );
    }
    Ok(script)
}

/// Records, per link, that the container reloaded the version it points
/// at (`..berth/<file>/.reloaded`): a run killed between a swap and its
/// reload leaves the two apart, and the next plan reloads again.
fn mark_script(links: &[Link]) -> String {
    let mut script = String::new();
    for l in links {
        let _ = writeln!(
            script,
            "c={live}/..berth/{name}; mkdir -p \"$c\"; printf '%s\\n' {version} > \"$c/.reloaded.tmp\"; mv -f \"$c/.reloaded.tmp\" \"$c/.reloaded\"",
            live = quote(&l.live),
            name = quote(&l.name),
            version = quote(&l.version),
        );
    }
    script
}

/// Records that the container behind each of `links` runs the version it
/// points at (after a reload, or when it is created reading it).
pub async fn mark(shell: &dyn Shell, who: &str, links: &[Link]) -> anyhow::Result<()> {
    let script = format!("set -e\n{}", mark_script(links));
    let (code, output) = shell.run(who, &script, None, CONFIG_TIMEOUT).await?;
    if code != 0 {
        anyhow::bail!("{who}: cannot record a config reload: {}", output.trim());
    }
    Ok(())
}

/// The stdin of [`deliver_script`]: every version's files, back to back.
pub fn deliver_input(versions: &[Version<'_>]) -> Vec<u8> {
    let mut input = Vec::new();
    for v in versions {
        for bytes in v.files.values() {
            input.extend_from_slice(bytes);
        }
    }
    input
}

/// Delivers `versions` and sets `links` in one remote command. `root` is
/// the shell's [`Shell::root`], already in the paths.
pub async fn deliver(
    shell: &dyn Shell,
    who: &str,
    versions: &[Version<'_>],
    links: &[Link],
) -> anyhow::Result<()> {
    if versions.is_empty() && links.is_empty() {
        return Ok(());
    }
    let script = deliver_script(versions, links).map_err(|e| anyhow::anyhow!("{who}: {e}"))?;
    let input = deliver_input(versions);
    let (code, output) = shell
        .run(who, &script, Some(&input), CONFIG_TIMEOUT)
        .await?;
    if code != 0 {
        anyhow::bail!("{who}: cannot write config files: {}", output.trim());
    }
    Ok(())
}

/// Points `links` at their versions (copies already in the live
/// directories, or copied from the store): the atomic swap of a reload.
/// Returns, per link, the version it pointed at before (None: none).
pub async fn swap(
    shell: &dyn Shell,
    who: &str,
    links: &[Link],
) -> anyhow::Result<Vec<Option<String>>> {
    let script = format!(
        "set -e\numask 022\n{DIGEST_FN}{}",
        links_script(links).map_err(|e| anyhow::anyhow!("{who}: {e}"))?
    );
    let (code, output) = shell.run(who, &script, None, CONFIG_TIMEOUT).await?;
    if code != 0 {
        anyhow::bail!("{who}: cannot swap config files: {}", output.trim());
    }
    Ok(parse_was(&output, links.len()))
}

fn parse_was(output: &str, n: usize) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = output
        .lines()
        .filter_map(|l| l.strip_prefix("was "))
        .map(|rest| {
            rest.rsplit_once(' ')
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        })
        .collect();
    out.resize(n, None);
    out
}

/// Lists the project's config copies under `project_dir` with their
/// digests: `S <version dir> <hex>` and `L <live file> <version> <hex>
/// <version last reloaded, or ->`.
pub fn observe_script(project_dir: &str) -> String {
    format!(
        r#"{DIGEST_FN}d={dir}
[ -d "$d" ] || exit 0
cd "$d"
for v in */*/*/*; do
  [ -d "$v" ] || continue
  case "$v" in *.tmp.*|*.old.*) continue ;; esac
  echo "S $v $(digest "$v/data")"
done
[ -d .live ] || exit 0
for f in .live/*/*/*/*/*; do
  [ -L "$f" ] || continue
  r=$(cat "${{f%/*}}/..berth/${{f##*/}}/.reloaded" 2>/dev/null || true)
  echo "L $f $(readlink "$f" | sed 's|.*/||') $(digest "$f") ${{r:--}}"
done
"#,
        dir = quote(project_dir)
    )
}

/// Parses [`observe_script`]'s output.
pub fn parse_observation(output: &str) -> ConfigObservation {
    let mut obs = ConfigObservation::default();
    for line in output.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["S", path, hex] => {
                obs.store.insert(path.to_string(), hex.to_string());
            }
            ["S", path] => {
                obs.store.insert(path.to_string(), String::new());
            }
            ["L", path, version, hex, reloaded] => {
                obs.live.insert(
                    path.to_string(),
                    LiveCopy {
                        version: version.to_string(),
                        hex: hex.to_string(),
                        reloaded: reloaded.to_string(),
                    },
                );
            }
            ["L", path, version, reloaded] => {
                obs.live.insert(
                    path.to_string(),
                    LiveCopy {
                        version: version.to_string(),
                        hex: String::new(),
                        reloaded: reloaded.to_string(),
                    },
                );
            }
            _ => {}
        }
    }
    obs
}

/// Reads the config copies of a project on a host (one remote command).
pub async fn observe(
    shell: &dyn Shell,
    who: &str,
    project_dir: &str,
) -> anyhow::Result<ConfigObservation> {
    let script = observe_script(&format!("{}{project_dir}", shell.root()));
    let (code, output) = shell.run(who, &script, None, CONFIG_TIMEOUT).await?;
    if code != 0 {
        anyhow::bail!(
            "{who}: cannot read config files under `{project_dir}`: {}",
            output.trim()
        );
    }
    Ok(parse_observation(&output))
}

/// Reads files (at most `cap` bytes each) for the plan's diffs: one
/// command, each file framed by its length; None for a missing one.
pub async fn read_files(
    shell: &dyn Shell,
    who: &str,
    paths: &[String],
    cap: usize,
) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut script = String::new();
    for p in paths {
        let _ = writeln!(
            script,
            "p={p}; if [ -f \"$p\" ]; then echo \"F $(head -c {cap} \"$p\" | base64 -w0)\"; else echo M; fi",
            p = quote(&format!("{}{p}", shell.root())),
        );
    }
    let (_, output) = shell.run(who, &script, None, CONFIG_TIMEOUT).await?;
    use base64::Engine as _;
    let mut out: Vec<Option<Vec<u8>>> = output
        .lines()
        .filter(|l| l.starts_with('F') || *l == "M")
        .map(|l| {
            l.strip_prefix("F ").or(l.strip_prefix('F')).and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
        })
        .collect();
    out.resize(paths.len(), None);
    Ok(out)
}

/// Removes what no container needs any more: version directories not in
/// `keep` (`<stack>/<service>/<slug>/<version>`), live directories not in
/// `live` (`.live/<stack>/<service>/<replica>/<dir>`), and in the kept
/// live directories every copy no link points at; then empty parents.
pub fn prune_script(project_dir: &str, keep: &BTreeSet<String>, live: &BTreeSet<String>) -> String {
    let words = |set: &BTreeSet<String>| {
        set.iter()
            .map(|k| k.replace(['\'', ' ', '"', '$', '`', '\\'], "_"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r#"set -e
d={dir}
[ -d "$d" ] || exit 0
cd "$d"
{prune}if [ -d .live ]; then
  for l in .live/*/*/*/*; do
    [ -d "$l" ] || continue
    case " {live} " in *" $l "*) ;; *) rm -rf -- "$l"; continue ;; esac
    for c in "$l"/..berth/*/*; do
      [ -e "$c" ] || continue
      f=${{c%/*}}; f=${{f##*/}}
      [ "$(readlink "$l/$f" 2>/dev/null | sed 's|.*/||')" = "${{c##*/}}" ] || rm -rf -- "$c"
    done
  done
fi
{REMOVE_EMPTY_DIRS}"#,
        dir = quote(project_dir),
        prune = prune_versions("*/*/*/*", keep),
        live = words(live),
    )
}

/// Runs [`prune_script`] on a host.
pub async fn prune(
    shell: &dyn Shell,
    who: &str,
    project_dir: &str,
    keep: &BTreeSet<String>,
    live: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let script = prune_script(&format!("{}{project_dir}", shell.root()), keep, live);
    let (code, output) = shell.run(who, &script, None, CONFIG_TIMEOUT).await?;
    if code != 0 {
        anyhow::bail!(
            "{who}: cannot remove unused configs under `{project_dir}`: {}",
            output.trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::configs::{digest_of, ConfigData};

    fn run(script: &str, input: &[u8]) -> (i32, String, String) {
        use std::io::Write as _;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input);
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn hex(data: &ConfigData) -> String {
        digest_of(data).trim_start_matches("sha256:").to_string()
    }

    fn me() -> (String, String) {
        (
            unsafe { libc::geteuid() }.to_string(),
            unsafe { libc::getegid() }.to_string(),
        )
    }

    #[test]
    fn delivers_files_and_directories_that_the_host_digests_alike() {
        let root = tempfile::tempdir().expect("dir");
        let base = root.path().to_string_lossy().into_owned();
        let (uid, gid) = me();
        let file = ConfigData::file(b"listen 80\n".to_vec());
        let mut dir = ConfigData {
            dir: true,
            ..ConfigData::default()
        };
        dir.files.insert("a.conf".into(), b"a\n".to_vec());
        dir.files.insert("sub/b.conf".into(), vec![0, 10, 255]);
        dir.digest = digest_of(&dir);
        let versions = [
            Version {
                dir: format!("{base}/s/web/app/v1"),
                hex: hex(&file),
                files: &file.files,
                is_dir: false,
                uid: uid.clone(),
                gid: gid.clone(),
                mode: 0o440,
            },
            Version {
                dir: format!("{base}/s/web/conf/v2"),
                hex: hex(&dir),
                files: &dir.files,
                is_dir: true,
                uid: uid.clone(),
                gid: gid.clone(),
                mode: 0o444,
            },
        ];
        let script = deliver_script(&versions, &[]).expect("script");
        let (code, _, err) = run(&script, &deliver_input(&versions));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            std::fs::read(format!("{base}/s/web/app/v1/data")).expect("file"),
            b"listen 80\n"
        );
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(format!("{base}/s/web/app/v1/data")).expect("meta");
        assert_eq!(meta.mode() & 0o777, 0o440);
        assert_eq!(
            std::fs::read(format!("{base}/s/web/conf/v2/data/sub/b.conf")).expect("file"),
            vec![0, 10, 255]
        );
        // The host's digests are the repo's.
        let (code, out, err) = run(&observe_script(&base), b"");
        assert_eq!(code, 0, "{err}");
        let obs = parse_observation(&out);
        assert_eq!(obs.store["s/web/app/v1"], hex(&file), "{out}");
        assert_eq!(obs.store["s/web/conf/v2"], hex(&dir), "{out}");

        // Edited by hand: seen, and the next delivery puts the repo's bytes back.
        std::fs::write(format!("{base}/s/web/app/v1/data"), "hacked\n").expect("edit");
        let (_, out, _) = run(&observe_script(&base), b"");
        assert_ne!(parse_observation(&out).store["s/web/app/v1"], hex(&file));
        let (code, _, err) = run(&script, &deliver_input(&versions));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            std::fs::read(format!("{base}/s/web/app/v1/data")).expect("file"),
            b"listen 80\n"
        );
        // Input cut short: an error, and the version is not in place.
        let short = [Version {
            dir: format!("{base}/s/web/app/v9"),
            hex: versions[0].hex.clone(),
            files: versions[0].files,
            is_dir: false,
            uid: uid.clone(),
            gid: gid.clone(),
            mode: 0o440,
        }];
        let (code, _, _) = run(&deliver_script(&short, &[]).expect("script"), b"list");
        assert_ne!(code, 0);
        assert!(!std::path::Path::new(&format!("{base}/s/web/app/v9")).exists());
    }

    #[test]
    fn a_directory_swaps_whole_through_its_link() {
        let root = tempfile::tempdir().expect("dir");
        let base = root.path().to_string_lossy().into_owned();
        let (uid, gid) = me();
        let dir = |files: &[(&str, &str)]| {
            let mut data = ConfigData {
                dir: true,
                ..ConfigData::default()
            };
            for (name, text) in files {
                data.files
                    .insert(name.to_string(), text.as_bytes().to_vec());
            }
            data.digest = digest_of(&data);
            &*Box::leak(Box::new(data))
        };
        let one = dir(&[("index.html", "one\n"), ("sub/a.txt", "a\n")]);
        let two = dir(&[("index.html", "two\n")]);
        let version = |name: &str, data: &'static ConfigData| Version {
            dir: format!("{base}/s/web/site/{name}"),
            hex: hex(data),
            files: &data.files,
            is_dir: true,
            uid: uid.clone(),
            gid: gid.clone(),
            mode: 0o444,
        };
        let versions = [version("v1", one), version("v2", two)];
        let live = format!("{base}/.live/s/web/1/www");
        let link = |v: &str, data: &ConfigData| Link {
            live: live.clone(),
            name: "site".into(),
            version: v.into(),
            from: Some(format!("{base}/s/web/site/{v}")),
            hex: Some(hex(data)),
            uid: uid.clone(),
            gid: gid.clone(),
            mode: 0o444,
        };
        let script = deliver_script(&versions, &[link("v1", one)]).expect("script");
        let (code, _, err) = run(&script, &deliver_input(&versions));
        assert_eq!(code, 0, "{err}");
        let read = |f: &str| std::fs::read_to_string(format!("{live}/site/{f}")).ok();
        assert_eq!(read("index.html").as_deref(), Some("one\n"));
        assert_eq!(read("sub/a.txt").as_deref(), Some("a\n"));

        let swap =
            |links: &[Link]| format!("set -e\n{DIGEST_FN}{}", links_script(links).expect("links"));
        let (code, out, err) = run(&swap(&[link("v2", two)]), b"");
        assert_eq!(code, 0, "{err}");
        assert_eq!(parse_was(&out, 1), vec![Some("v1".to_string())]);
        assert_eq!(read("index.html").as_deref(), Some("two\n"));
        assert_eq!(
            read("sub/a.txt"),
            None,
            "the old directory's files are gone whole"
        );
        let (_, out, _) = run(&observe_script(&base), b"");
        let copy = &parse_observation(&out).live[".live/s/web/1/www/site"];
        assert_eq!(
            (copy.version.as_str(), copy.hex.as_str()),
            ("v2", hex(two).as_str())
        );

        // A copy edited on the host is copied again from the store.
        std::fs::write(format!("{live}/site/index.html"), "hacked\n").expect("edit");
        let (code, _, err) = run(&swap(&[link("v2", two)]), b"");
        assert_eq!(code, 0, "{err}");
        assert_eq!(read("index.html").as_deref(), Some("two\n"));

        // Back to v1 from the live directory's own copy; prune drops v2's.
        let mut back = link("v1", one);
        back.from = None;
        let (code, _, err) = run(&swap(&[back]), b"");
        assert_eq!(code, 0, "{err}");
        assert_eq!(read("sub/a.txt").as_deref(), Some("a\n"));
        let keep = BTreeSet::new();
        let lives = BTreeSet::from([".live/s/web/1/www".to_string()]);
        let (code, _, err) = run(&prune_script(&base, &keep, &lives), b"");
        assert_eq!(code, 0, "{err}");
        assert!(!std::path::Path::new(&format!("{live}/..berth/site/v2")).exists());
        assert_eq!(read("index.html").as_deref(), Some("one\n"));
    }

    #[test]
    fn links_swap_atomically_and_report_what_they_replaced() {
        let root = tempfile::tempdir().expect("dir");
        let base = root.path().to_string_lossy().into_owned();
        let (uid, gid) = me();
        let one = ConfigData::file(b"one\n".to_vec());
        let two = ConfigData::file(b"two\n".to_vec());
        let version = |name: &str, data: &'static ConfigData| Version {
            dir: format!("{base}/s/web/app/{name}"),
            hex: hex(data),
            files: &data.files,
            is_dir: false,
            uid: uid.clone(),
            gid: gid.clone(),
            mode: 0o444,
        };
        let one: &'static ConfigData = Box::leak(Box::new(one));
        let two: &'static ConfigData = Box::leak(Box::new(two));
        let versions = [version("v1", one), version("v2", two)];
        let live = format!("{base}/.live/s/web/1/etc_app");
        let link = |v: &str| Link {
            live: live.clone(),
            name: "app.conf".into(),
            version: v.into(),
            from: Some(format!("{base}/s/web/app/{v}")),
            hex: None,
            uid: uid.clone(),
            gid: gid.clone(),
            mode: 0o444,
        };
        let script = deliver_script(&versions, &[link("v1")]).expect("script");
        let (code, out, err) = run(&script, &deliver_input(&versions));
        assert_eq!(code, 0, "{err}");
        assert_eq!(parse_was(&out, 1), vec![None]);
        let read = || std::fs::read_to_string(format!("{live}/app.conf")).expect("read");
        assert_eq!(read(), "one\n");
        let swap = format!(
            "set -e\n{DIGEST_FN}{}",
            links_script(&[link("v2")]).expect("links")
        );
        let (code, out, err) = run(&swap, b"");
        assert_eq!(code, 0, "{err}");
        assert_eq!(parse_was(&out, 1), vec![Some("v1".to_string())]);
        assert_eq!(read(), "two\n");
        assert!(std::fs::symlink_metadata(format!("{live}/app.conf"))
            .expect("meta")
            .file_type()
            .is_symlink());
        let (_, out, _) = run(&observe_script(&base), b"");
        let obs = parse_observation(&out);
        let copy = &obs.live[".live/s/web/1/etc_app/app.conf"];
        assert_eq!(
            (copy.version.as_str(), copy.hex.as_str()),
            ("v2", hex(two).as_str())
        );
        // Delivered with v1 (marked), swapped to v2 (not yet reloaded).
        assert_eq!(copy.reloaded, "v1", "{out}");
        // Back to v1, from the live directory's own copy.
        let mut back = link("v1");
        back.from = None;
        let (code, _, err) = run(
            &format!(
                "set -e\n{DIGEST_FN}{}",
                links_script(&[back]).expect("links")
            ),
            b"",
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(read(), "one\n");

        // Prune keeps what is linked and listed, removes the rest.
        let keep = BTreeSet::from(["s/web/app/v1".to_string()]);
        let lives = BTreeSet::from([".live/s/web/1/etc_app".to_string()]);
        let (code, _, err) = run(&prune_script(&base, &keep, &lives), b"");
        assert_eq!(code, 0, "{err}");
        assert!(!std::path::Path::new(&format!("{base}/s/web/app/v2")).exists());
        assert!(std::path::Path::new(&format!("{base}/s/web/app/v1/data")).exists());
        assert_eq!(read(), "one\n");
        assert!(!std::path::Path::new(&format!("{live}/..berth/app.conf/v2")).exists());
        let (code, _, err) = run(
            &prune_script(&base, &BTreeSet::new(), &BTreeSet::new()),
            b"",
        );
        assert_eq!(code, 0, "{err}");
        assert!(!std::path::Path::new(&live).exists());
    }
}
