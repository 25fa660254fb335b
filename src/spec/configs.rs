//! Configs: files from the repo that berth delivers to the hosts, as
//! Compose's top-level `configs:` (`file:`, `content:`, `environment:`),
//! a service's `configs:` (short and long syntax), and repo-relative bind
//! mounts (`./conf/x.conf:/etc/x.conf:ro`, a file or a directory).
//!
//! Input: the stack's tree and the repo on disk. Output: the stack's
//! [`ConfigSpec`]s (bytes read and digested at load, so a plan compares
//! digests and shows diffs without a host), each service's [`ConfigRef`]s
//! and its container's [`ConfigFileSpec`]s, and (per host, at placement)
//! the bind mounts that put the delivered copies in the container.
//! Invariants: a config never leaves the repo (a path climbing out, a
//! symlink, or a missing file is a located error); it never holds a
//! credential (a PEM private key, an OpenPGP message, anything under
//! `secrets/` is refused with a pointer to `secrets:`).
//!
//! On a host a config version lives in its own directory, named by its
//! digest (see [`store_dir`]), on disk (not tmpfs: configs survive a
//! reboot). A container of a service without `x-berth.reload` mounts its
//! version read-only, so a changed config is a changed spec and replaces
//! exactly the readers. With `x-berth.reload` the container mounts a
//! directory of its own ([`live_dir`]) whose entries are symlinks berth
//! swaps atomically, so the running container sees the new bytes when it
//! is told to reload, and never half a file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use super::config_types::*;
use super::model::{ContainerSpec, MountKind, MountSpec};
use super::read::{Cx, FileRef};
use super::values::{self, repo_relative};
use super::yaml::Node;

/// Where config versions live on a host unless its `configs_dir` says
/// otherwise, below `<project>/<host>/`: on disk, so a rebooted host
/// restarts its containers with their files.
pub const HOST_DIR: &str = "/var/lib/berth/configs";

/// Mode of a delivered config file unless the service says otherwise:
/// Compose's default, readable by everyone (configs are not secrets).
pub const DEFAULT_MODE: u32 = 0o444;

/// Largest config berth delivers (all files of a directory together): a
/// config is a file an operator reviews in a plan, not a data set.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// Prefix of the name of a config that comes from a repo-relative bind
/// mount: its path as written, so `./conf/x.conf` never clashes with a
/// declared config (whose names have no `/` or leading `.`).
const BIND_PREFIX: &str = "./";

const CONFIG_KEYS: &[&str] = &["file", "content", "environment"];
const CONFIG_UNSUPPORTED: &[&str] = &["external", "name", "template_driver", "labels", "driver"];
const CONFIG_REF_KEYS: &[&str] = &["source", "target", "uid", "gid", "mode"];
const RELOAD_KEYS: &[&str] = &["signal", "exec", "check"];

/// Reads the top-level `configs:`. `environment` holds the values of the
/// variables `environment:` configs name (looked up by the resolver, so
/// the plan names them like any other variable).
pub(crate) fn read_top(
    cx: &mut Cx,
    node: &Node,
    stack_dir: &Path,
    root: &Path,
    environment: &BTreeMap<String, String>,
) -> BTreeMap<String, ConfigSpec> {
    let mut out = BTreeMap::new();
    let Some(fields) = cx.map(node, "`configs`") else {
        return out;
    };
    for entry in fields.entries {
        let key = entry.name;
        if !values::is_name(key) {
            cx.error_help(
                entry.key,
                format!("config name `{key}` is not valid"),
                "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
            );
            continue;
        }
        let what = format!("config `{key}`");
        let Some(body) = cx.map(entry.value, &what) else {
            continue;
        };
        for field in &body.entries {
            if CONFIG_UNSUPPORTED.contains(&field.name) {
                let help = if field.name == "external" {
                    "berth has no config store on the hosts: keep the file in the repo and write `file: ./<path>`"
                } else {
                    "berth supports `file`, `content` and `environment`"
                };
                cx.error_help(
                    field.key,
                    format!("unsupported key `{}` in {what}", field.name),
                    help,
                );
            } else if !CONFIG_KEYS.contains(&field.name) && !field.name.starts_with("x-") {
                cx.unknown_key(field, &what, CONFIG_KEYS);
            }
        }
        let sources: Vec<_> = body
            .entries
            .iter()
            .filter(|f| CONFIG_KEYS.contains(&f.name))
            .collect();
        let field = match sources.as_slice() {
            [one] => *one,
            [] => {
                cx.error_help(
                    entry.key,
                    format!("{what} has none of `file`, `content` and `environment`"),
                    "point it at a file of the repo: `file: ./<path>`",
                );
                continue;
            }
            [_, second, ..] => {
                cx.error_help(
                    second.key,
                    format!("{what} has more than one of `file`, `content` and `environment`"),
                    "keep one source for the config",
                );
                continue;
            }
        };
        let Some(text) = cx.string(field.value, &format!("`{}` of {what}", field.name)) else {
            continue;
        };
        let (origin, data) = match field.name {
            "file" => {
                let Some((relative, data)) =
                    read_path(cx, field.value, &what, stack_dir, root, &text)
                else {
                    continue;
                };
                (ConfigOrigin::Path(relative), data)
            }
            "content" => (ConfigOrigin::Content, ConfigData::file(text.into_bytes())),
            _ => match environment.get(&text) {
                Some(value) => (
                    ConfigOrigin::Environment(text.clone()),
                    ConfigData::file(value.clone().into_bytes()),
                ),
                None => {
                    cx.error_help(
                        field.value,
                        format!("{what} reads variable `{text}`, which is set nowhere"),
                        format!("set `{text}` in berth's environment, the stack's `.env` or `variables:` of `berth.yaml`"),
                    );
                    continue;
                }
            },
        };
        if let Some(why) = secret_shape(&data, &origin) {
            refuse_secret(cx, field.value, &what, why);
            continue;
        }
        out.insert(
            key.to_string(),
            ConfigSpec {
                origin,
                data,
                location: cx.at(entry.key),
            },
        );
    }
    out
}

fn refuse_secret(cx: &mut Cx, node: &Node, what: &str, why: &str) {
    cx.error_help(
        node,
        format!("{what} looks like a secret ({why}); configs are delivered in the clear and shown in plans"),
        "keep credentials as secrets: encrypt the file (`berth secret encrypt -o stacks/<stack>/secrets/<name>.pgp <file>`), declare it under top-level `secrets:` and list it in the service's `secrets:`",
    );
}

/// Why a config looks like a credential, or None.
pub fn secret_shape(data: &ConfigData, origin: &ConfigOrigin) -> Option<&'static str> {
    if let ConfigOrigin::Path(path) = origin {
        let under_secrets = |p: &Path| p.components().any(|c| c.as_os_str() == "secrets");
        if under_secrets(path) || data.files.keys().any(|f| under_secrets(Path::new(f))) {
            return Some("it is under a `secrets` directory");
        }
    }
    for bytes in data.files.values() {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 20)]);
        if text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----") {
            return Some("it holds a PEM private key");
        }
        if text.contains("-----BEGIN PGP MESSAGE-----") {
            return Some("it holds an OpenPGP message");
        }
    }
    None
}

/// Reads a repo path (relative to the stack's directory) as a config: a
/// file, or a directory's files. Located errors for a path out of the
/// repo, a missing one, a symlink, or one too big.
fn read_path(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    stack_dir: &Path,
    root: &Path,
    path: &str,
) -> Option<(PathBuf, ConfigData)> {
    let Some(relative) = repo_relative(stack_dir, path) else {
        cx.error_help(
            node,
            format!("{what}: `{path}` is outside the repo"),
            "berth delivers files from the repo: keep the file in the repo (e.g. next to the stack's compose.yaml) and use a relative path, or bind-mount an absolute host path",
        );
        return None;
    };
    let on_disk = root.join(&relative);
    let meta = match std::fs::symlink_metadata(&on_disk) {
        Ok(meta) => meta,
        Err(_) => {
            cx.error_help(
                node,
                format!("{what}: `{}` does not exist", relative.display()),
                "commit the file, or fix the path (relative to the stack's directory)",
            );
            return None;
        }
    };
    let mut data = ConfigData::default();
    let mut problem = None;
    if meta.file_type().is_symlink() {
        problem = Some(format!("`{}` is a symbolic link", relative.display()));
    } else if meta.is_dir() {
        data.dir = true;
        walk(&on_disk, "", &mut data.files, &mut problem);
    } else {
        match std::fs::read(&on_disk) {
            Ok(bytes) => {
                data.files.insert(String::new(), bytes);
            }
            Err(e) => problem = Some(format!("cannot read `{}`: {e}", relative.display())),
        }
    }
    let size: usize = data.files.values().map(Vec::len).sum();
    if problem.is_none() && size > MAX_BYTES {
        problem = Some(format!(
            "`{}` holds {size} bytes, more than berth delivers as a config ({MAX_BYTES})",
            relative.display()
        ));
    }
    if let Some(problem) = problem {
        cx.error_help(
            node,
            format!("{what}: {problem}"),
            "a config is plain files of the repo (no links, names without newlines or backslashes, 4 MiB at most): for data, use a volume",
        );
        return None;
    }
    data.digest = digest_of(&data);
    Some((relative, data))
}

/// The files under `dir`, by path relative to the config's directory.
fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut BTreeMap<String, Vec<u8>>,
    problem: &mut Option<String>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            *problem = Some(format!("cannot read `{}`: {e}", dir.display()));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(['\n', '\\', '\t']) {
            *problem = Some(format!(
                "file name `{}` has a newline, tab or backslash",
                name.escape_default()
            ));
            return;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            *problem = Some(format!("`{rel}` in the directory is a symbolic link"));
            return;
        } else if kind.is_dir() {
            walk(&entry.path(), &rel, out, problem);
        } else {
            match std::fs::read(entry.path()) {
                Ok(bytes) => {
                    out.insert(rel, bytes);
                }
                Err(e) => {
                    *problem = Some(format!("cannot read `{rel}`: {e}"));
                    return;
                }
            }
        }
    }
}

/// A service's `configs:` (short: a name; long: `source`, `target`, `uid`,
/// `gid`, `mode`).
pub(crate) fn read_refs(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    declared: &BTreeSet<String>,
) -> Vec<ConfigRef> {
    let Some(items) = cx.seq(node, &format!("`configs` of {what}")) else {
        return Vec::new();
    };
    let mut out: Vec<ConfigRef> = Vec::new();
    for item in items {
        let Some(FileRef {
            source_node,
            source,
            target,
            uid,
            gid,
            mode,
        }) = cx.file_ref(item, what, "config", CONFIG_REF_KEYS)
        else {
            continue;
        };
        if !declared.contains(&source) {
            let names: Vec<&str> = declared.iter().map(String::as_str).collect();
            let mut help = String::new();
            if let Some(close) = values::suggest(&source, &names) {
                help.push_str(&format!("did you mean `{close}`? "));
            }
            help.push_str(&format!(
                "declare it under top-level `configs:` (`{source}: {{file: ./{source}}}`)"
            ));
            cx.error_help(
                source_node,
                format!("undefined config `{source}` in {what}"),
                help,
            );
            continue;
        }
        let numeric = |v: &Option<String>| {
            v.as_deref()
                .is_none_or(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
        };
        if !numeric(&uid) || !numeric(&gid) {
            cx.error_help(
                item,
                format!("{what}: `uid` and `gid` of config `{source}` must be numbers"),
                "the file is made on the host, which does not know the image's user names: write e.g. `uid: \"101\"`",
            );
            continue;
        }
        let target = match target {
            Some(t) if t.starts_with('/') => t,
            Some(t) => {
                cx.error(
                    item,
                    format!(
                        "{what}: config target `{t}` must be an absolute path in the container"
                    ),
                );
                continue;
            }
            None => format!("/{source}"),
        };
        if out.iter().any(|c| c.target == target) {
            cx.error(item, format!("{what} puts two configs at `{target}`"));
            continue;
        }
        out.push(ConfigRef {
            source,
            target,
            uid,
            gid,
            mode,
            location: cx.at(item),
        });
    }
    out
}

/// A repo-relative bind mount (`./conf/x.conf:/etc/x.conf`) as a config:
/// read and checked here, where the mount is written, and declared in
/// `binds` under its name (`./conf/x.conf`) for the stack. Always
/// delivered read-only: the container must not change the repo's copy.
pub(crate) fn bind(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    source: &str,
    target: &str,
    at: (&Path, &Path),
    binds: &mut BTreeMap<String, ConfigSpec>,
) -> Option<ConfigRef> {
    let (stack_dir, root) = at;
    let shown = format!("{what}: bind mount `{source}`");
    let (relative, data) = read_path(cx, node, &shown, stack_dir, root, source)?;
    let origin = ConfigOrigin::Path(relative.clone());
    if let Some(why) = secret_shape(&data, &origin) {
        refuse_secret(cx, node, &shown, why);
        return None;
    }
    let name = format!(
        "{BIND_PREFIX}{}",
        source.trim_start_matches("./").trim_end_matches('/')
    );
    binds.entry(name.clone()).or_insert(ConfigSpec {
        origin,
        data,
        location: cx.at(node),
    });
    Some(ConfigRef {
        source: name,
        target: target.to_string(),
        uid: None,
        gid: None,
        mode: None,
        location: cx.at(node),
    })
}

/// `x-berth.reload`.
pub(crate) fn read_reload(cx: &mut Cx, node: &Node, what: &str) -> Option<ReloadSpec> {
    let here = format!("`x-berth.reload` of {what}");
    let fields = cx.map_with(node, &here, RELOAD_KEYS)?;
    let command = |cx: &mut Cx, key: &str| {
        let v = fields.value(key)?;
        let words = cx.strings(v, &format!("`{key}` of {here}"))?;
        if words.is_empty() {
            cx.error(v, format!("`{key}` of {here} is empty"));
            return None;
        }
        Some(words)
    };
    let exec = command(cx, "exec");
    let check = command(cx, "check");
    let signal = fields
        .value("signal")
        .and_then(|v| cx.string(v, &format!("`signal` of {here}")));
    if let (Some(signal), Some(v)) = (&signal, fields.value("signal")) {
        let name = signal.trim_start_matches("SIG");
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+');
        if !valid {
            cx.error_help(
                v,
                format!("`signal` of {here} is not a signal name: `{signal}`"),
                "write e.g. `SIGHUP` or `SIGUSR1`",
            );
        }
    }
    match (&signal, &exec) {
        (None, None) => {
            cx.error_help(
                node,
                format!("{here} has neither `signal` nor `exec`"),
                "say how the container reloads: `signal: SIGHUP`, or `exec: [nginx, -s, reload]`",
            );
            None
        }
        (Some(_), Some(_)) => {
            cx.error_help(
                node,
                format!("{here} has both `signal` and `exec`"),
                "keep one way to reload",
            );
            None
        }
        _ => Some(ReloadSpec {
            signal,
            exec,
            check,
        }),
    }
}

/// Fills `container.configs` of the services of a stack from their refs,
/// and checks what reload mode needs: a target below a directory of its
/// own (that directory is mounted whole). A directory config reloads like
/// a file: its live link names a whole copy of the directory.
pub(crate) fn attach(
    cx: &mut Cx,
    configs: &BTreeMap<String, ConfigSpec>,
    service: &mut super::model::Service,
) {
    let reload = service.reload.is_some();
    for r in &service.configs {
        let Some(config) = configs.get(&r.source) else {
            continue;
        };
        if reload && (r.target == "/" || parent(&r.target) == "/") {
            cx.report(
                r.location.clone(),
                format!(
                    "service `{}` reloads config `{}` in place, so its directory is mounted whole, and `{}` is at the root",
                    service.name, r.source, r.target
                ),
                Some("put the file in a directory of its own, e.g. `/etc/app/app.conf`".into()),
            );
            continue;
        }
        service.container.configs.insert(
            r.source.clone(),
            ConfigFileSpec {
                digest: config.data.digest.clone(),
                target: r.target.clone(),
                uid: r.uid.clone().unwrap_or_else(|| "0".into()),
                gid: r.gid.clone().unwrap_or_else(|| "0".into()),
                mode: r.mode.unwrap_or(DEFAULT_MODE),
                dir: config.data.dir,
                reload,
            },
        );
    }
}

fn parent(target: &str) -> &str {
    match target.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((dir, _)) => dir,
    }
}

/// A host-path-safe form of a name: `./conf/x.conf` -> `_conf_x.conf`.
pub fn slug(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// The project's directory on a host, below the host's `configs_dir`: the
/// host's name is part of it, so two inventory names for one machine (or a
/// test bed's hosts sharing a disk) never prune each other's files.
pub fn project_dir(configs_dir: &str, project: &str, host: &str) -> String {
    format!("{}/{project}/{host}", configs_dir.trim_end_matches('/'))
}

/// The version of a config: the first 12 hex of its digest, plus owner and
/// mode when they are not the default `0:0 0444`.
pub fn version(file: &ConfigFileSpec) -> String {
    let short: String = file
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&file.digest)
        .chars()
        .take(12)
        .collect();
    if file.uid == "0" && file.gid == "0" && file.mode == DEFAULT_MODE {
        short
    } else {
        format!("{short}-{}-{}-{:o}", file.uid, file.gid, file.mode)
    }
}

/// `<stack>/<service>/<slug>/<version>`, relative to [`project_dir`]: the
/// directory holding one version of a config as `data` (a file, or a
/// directory of files).
pub fn store_dir(stack: &str, service: &str, name: &str, file: &ConfigFileSpec) -> String {
    format!("{stack}/{service}/{}/{}", slug(name), version(file))
}

/// `.live/<stack>/<service>/<replica>/<slug of the target's directory>`,
/// relative to [`project_dir`]: the directory a reloading container mounts
/// at its config's directory, and the file name in it.
pub fn live_dir(stack: &str, service: &str, replica: u32, target: &str) -> (String, String) {
    let dir = parent(target);
    let name = target.rsplit('/').next().unwrap_or_default().to_string();
    (
        format!(".live/{stack}/{service}/{replica}/{}", slug(dir)),
        name,
    )
}

/// The container `spec` with the bind mounts of its configs, for `host`
/// (whose configs are under `configs_dir`): the version (read-only) at the
/// target, or for a reloading service its live directory at the target's
/// directory. Called per host at placement, so the host paths are in the
/// spec (and its hash): a moved `configs_dir` replaces the readers.
pub fn with_mounts(
    mut spec: ContainerSpec,
    configs_dir: &str,
    project: &str,
    host: &str,
    stack: &str,
    service: &str,
    replica: u32,
) -> ContainerSpec {
    if spec.configs.is_empty() {
        return spec;
    }
    let base = project_dir(configs_dir, project, host);
    let mut live = BTreeSet::new();
    for (name, file) in &spec.configs {
        if file.reload {
            let (dir, _) = live_dir(stack, service, replica, &file.target);
            if live.insert(dir.clone()) {
                spec.mounts.push(MountSpec {
                    kind: MountKind::Bind,
                    source: format!("{base}/{dir}"),
                    target: parent(&file.target).to_string(),
                    read_only: true,
                    propagation: None,
                    selinux: None,
                });
            }
        } else {
            spec.mounts.push(MountSpec {
                kind: MountKind::Bind,
                source: format!("{base}/{}/data", store_dir(stack, service, name, file)),
                target: file.target.clone(),
                read_only: true,
                propagation: None,
                selinux: None,
            });
        }
    }
    spec.mounts.sort();
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    fn file(digest: &str, target: &str, reload: bool) -> ConfigFileSpec {
        ConfigFileSpec {
            digest: digest.into(),
            target: target.into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: DEFAULT_MODE,
            dir: false,
            reload,
        }
    }

    #[test]
    fn a_directory_digest_is_what_sha256sum_lists() {
        let mut data = ConfigData {
            dir: true,
            ..ConfigData::default()
        };
        data.files.insert("b.conf".into(), b"b\n".to_vec());
        data.files.insert("a/x".into(), b"x\n".to_vec());
        // `find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum`
        let listing = format!(
            "{}  ./a/x\n{}  ./b.conf\n",
            hex::encode(Sha256::digest(b"x\n")),
            hex::encode(Sha256::digest(b"b\n"))
        );
        assert_eq!(
            digest_of(&data),
            format!("sha256:{}", hex::encode(Sha256::digest(listing.as_bytes())))
        );
        assert_eq!(
            ConfigData::file(b"x\n".to_vec()).digest,
            format!("sha256:{}", hex::encode(Sha256::digest(b"x\n")))
        );
    }

    #[test]
    fn secrets_are_refused_by_shape_and_place() {
        let key = ConfigData::file(
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
                .to_vec(),
        );
        assert!(secret_shape(&key, &ConfigOrigin::Content).is_some());
        let rsa = ConfigData::file(b"-----BEGIN RSA PRIVATE KEY-----\n".to_vec());
        assert!(secret_shape(&rsa, &ConfigOrigin::Content).is_some());
        let plain = ConfigData::file(b"listen 80;\n".to_vec());
        assert!(secret_shape(&plain, &ConfigOrigin::Content).is_none());
        let under = ConfigOrigin::Path("stacks/web/secrets/app.conf".into());
        assert!(secret_shape(&plain, &under).is_some());
        // A certificate is public.
        let cert = ConfigData::file(b"-----BEGIN CERTIFICATE-----\n".to_vec());
        assert!(secret_shape(&cert, &ConfigOrigin::Content).is_none());
    }

    #[test]
    fn versions_and_live_dirs_are_named_from_digest_and_target() {
        let f = file("sha256:0123456789abcdef", "/etc/httpd/httpd.conf", false);
        assert_eq!(
            store_dir("web", "site", "./conf/httpd.conf", &f),
            "web/site/conf_httpd.conf/0123456789ab"
        );
        let mut owned = f.clone();
        owned.uid = "101".into();
        owned.mode = 0o440;
        assert_eq!(version(&owned), "0123456789ab-101-0-440");
        assert_eq!(
            live_dir("web", "site", 2, "/etc/httpd/httpd.conf"),
            (".live/web/site/2/etc_httpd".into(), "httpd.conf".into())
        );
    }

    #[test]
    fn mounts_are_the_version_or_the_live_directory() {
        let mut spec = ContainerSpec::default();
        spec.configs.insert(
            "app".into(),
            file("sha256:aaaaaaaaaaaaffff", "/etc/app.conf", false),
        );
        let plain = with_mounts(spec.clone(), HOST_DIR, "p", "h1", "s", "web", 1);
        assert_eq!(plain.mounts.len(), 1);
        assert_eq!(
            plain.mounts[0].source,
            "/var/lib/berth/configs/p/h1/s/web/app/aaaaaaaaaaaa/data"
        );
        assert_eq!(plain.mounts[0].target, "/etc/app.conf");
        assert!(plain.mounts[0].read_only);

        let mut reload = ContainerSpec::default();
        reload.configs.insert(
            "a".into(),
            file("sha256:aaaaaaaaaaaaffff", "/etc/app/a.conf", true),
        );
        reload.configs.insert(
            "b".into(),
            file("sha256:bbbbbbbbbbbbffff", "/etc/app/b.conf", true),
        );
        let live = with_mounts(reload, "/srv/configs/", "p", "h1", "s", "web", 3);
        assert_eq!(live.mounts.len(), 1, "one mount per directory");
        assert_eq!(
            live.mounts[0].source,
            "/srv/configs/p/h1/.live/s/web/3/etc_app"
        );
        assert_eq!(live.mounts[0].target, "/etc/app");
    }
}
