//! `volumes:` and `tmpfs:` of a service, as sorted [`MountSpec`]s and
//! tmpfs mounts.
//!
//! A named volume must be declared at the top level and becomes its
//! engine-side name; a bind mount of an absolute path is the host's path;
//! one relative to the stack's directory is a config (the repo's bytes,
//! delivered to each host: `configs::bind`); an anonymous volume is refused because its data would be lost
//! on every replace.

use std::collections::{BTreeMap, BTreeSet};

use super::decls::Decls;
use super::model::{ContainerSpec, MountKind, MountSpec};
use super::read::{Cx, Fields};
use super::values;
use super::yaml::{Kind, Node};

const MOUNT_KEYS: &[&str] = &[
    "type",
    "source",
    "target",
    "read_only",
    "tmpfs",
    "bind",
    "volume",
    "consistency",
];
const MOUNT_UNSUPPORTED: &[&str] = &["image"];
const BIND_KEYS: &[&str] = &["create_host_path", "propagation", "selinux"];
const VOLUME_KEYS: &[&str] = &["nocopy", "subpath"];
const PROPAGATIONS: &[&str] = &[
    "shared", "slave", "private", "rshared", "rslave", "rprivate",
];

/// Options of a bind mount besides `ro`, from either syntax.
#[derive(Default)]
struct BindOptions {
    propagation: Option<String>,
    selinux: Option<String>,
}

/// `volumes:` of a service: named volumes and absolute bind mounts, plus
/// long-syntax `type: tmpfs` entries (returned as tmpfs mounts).
pub(crate) fn mounts(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    decls: &Decls<'_>,
) -> (Vec<MountSpec>, BTreeMap<String, String>) {
    let mut mounts = Vec::new();
    let mut tmpfs = BTreeMap::new();
    let Some(items) = cx.seq(node, &format!("`volumes` of {what}")) else {
        return (mounts, tmpfs);
    };
    for item in items {
        if let Kind::Map(_) = item.kind {
            match long_mount(cx, item, what, decls) {
                Some(LongMount::Mount(m)) => mounts.push(m),
                Some(LongMount::Tmpfs(target, options)) => {
                    tmpfs.insert(target, options);
                }
                None => {}
            }
            continue;
        }
        let Some(text) = cx.string(item, &format!("a volume of {what}")) else {
            continue;
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, options) = match parts.as_slice() {
            [target] => {
                anonymous_volume(cx, item, what, target);
                continue;
            }
            [source, target] => (*source, *target, ""),
            [source, target, options] => (*source, *target, *options),
            _ => {
                cx.error_help(
                    item,
                    format!("{what} volume `{text}` has too many `:`"),
                    "write `volume:/path[:ro]` or `/host/path:/path[:ro]`",
                );
                continue;
            }
        };
        let mut read_only = false;
        let mut ok = true;
        let mut bind = BindOptions::default();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option {
                "ro" => read_only = true,
                "rw" => read_only = false,
                other => {
                    let here = format!("{what} volume `{text}`");
                    ok &= mount_option(cx, item, &here, other, &mut bind);
                }
            }
        }
        let written = Written {
            kind: None,
            source,
            target,
            read_only,
            bind,
        };
        if ok {
            mounts.extend(mount(cx, item, what, decls, written));
        }
    }
    mounts.sort();
    (mounts, tmpfs)
}

fn anonymous_volume(cx: &mut Cx, node: &Node, what: &str, target: &str) {
    cx.error_help(
        node,
        format!("{what} has an anonymous volume at `{target}`"),
        "an anonymous volume's data is lost whenever berth replaces the container: name it (`data:{target}`) and declare it under top-level `volumes:`",
    );
}

/// A mount option besides `ro`/`rw`, from the short syntax (`:z`) or the
/// long one (`consistency`, `volume.nocopy`). The macOS consistency flags
/// have no effect on a Linux engine (nor with `docker compose` there): a
/// warning. SELinux relabelling and propagation are recorded in `bind`
/// (a named volume refuses them later, in [`mount`]); `nocopy` changes what
/// the container sees and berth cannot pass it to the engine yet: refused,
/// saying what to do. Returns whether the mount may still be built.
fn mount_option(
    cx: &mut Cx,
    node: &Node,
    here: &str,
    option: &str,
    bind: &mut BindOptions,
) -> bool {
    let (slot, kind) = match option {
        "z" | "Z" => (&mut bind.selinux, "SELinux relabel"),
        _ if PROPAGATIONS.contains(&option) => (&mut bind.propagation, "propagation"),
        _ => (&mut None, ""),
    };
    if !kind.is_empty() {
        if let Some(before) = slot.replace(option.to_string()) {
            if before != option {
                cx.error_help(
                    node,
                    format!("{here}: {kind} `{before}` and `{option}` are both set"),
                    "keep one of them",
                );
                return false;
            }
        }
        return true;
    }
    let help = match option {
        "cached" | "delegated" | "consistent" => {
            cx.warn(
                node,
                format!("{here}: option `{option}` has no effect on a Linux host"),
                "it tunes file sharing of Docker Desktop on macOS: remove it to silence this warning",
            );
            return true;
        }
        "nocopy" => "berth cannot ask the engine to skip copying the image's files into a new volume yet: remove it",
        _ => "berth supports `ro`, `rw`, SELinux `z`/`Z`, propagation `shared`, `slave`, `private`, `rshared`, `rslave`, `rprivate` (and ignores the macOS-only `cached`, `delegated`, `consistent` with a warning)",
    };
    cx.error_help(
        node,
        format!("{here}: option `{option}` is not supported"),
        help,
    );
    false
}

/// A bind mount of a path relative to a home directory (`~/data`): the
/// home of whoever runs `docker compose`, which means nothing on another
/// host. (A path relative to the stack's directory is a config: the
/// repo's bytes, delivered to the host; see `configs::bind`.)
fn relative_bind(cx: &mut Cx, node: &Node, what: &str, source: &str) {
    cx.error_help(
        node,
        format!("{what}: bind mount source `{source}` is relative to a home directory"),
        "`~` is the home of whoever runs `docker compose`; berth runs containers on other hosts as the engine's user: use an absolute host path (`/home/me/data:/data`) or a named volume",
    );
}

/// A mount as written, before its source is resolved.
struct Written<'s> {
    /// The long syntax's `type`; None for the short syntax.
    kind: Option<MountKind>,
    source: &'s str,
    target: &'s str,
    read_only: bool,
    bind: BindOptions,
}

/// Builds a mount from a source as written: absolute path = bind, relative
/// path = error, a name = a declared volume.
fn mount(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    decls: &Decls<'_>,
    written: Written<'_>,
) -> Option<MountSpec> {
    let Written {
        kind,
        source,
        target,
        read_only,
        bind,
    } = written;
    if !target.starts_with('/') {
        cx.error(
            node,
            format!("{what}: mount target `{target}` must be an absolute path in the container"),
        );
        return None;
    }
    let absolute = source.starts_with('/');
    let named = !absolute
        && kind != Some(MountKind::Bind)
        && !source.starts_with(['.', '~'])
        && !source.contains('/');
    if kind == Some(MountKind::Volume) && !named {
        cx.error_help(
            node,
            format!("{what}: `type: volume` needs a volume name as `source`, found `{source}`"),
            "for a host path use `type: bind`",
        );
        return None;
    }
    if absolute {
        return Some(MountSpec {
            kind: MountKind::Bind,
            source: source.to_string(),
            target: target.to_string(),
            read_only,
            propagation: bind.propagation,
            selinux: bind.selinux,
        });
    }
    // A volume may be relabelled (the engine does it, as for a bind), but
    // has no propagation of its own.
    if let Some(option) = bind.propagation.as_deref().filter(|_| named) {
        cx.error_help(
            node,
            format!("{what}: propagation `{option}` of volume `{source}` needs a bind mount"),
            "propagation applies to bind mounts only: remove it",
        );
        return None;
    }
    if !named {
        if source.starts_with('~') {
            relative_bind(cx, node, what, source);
        } else if let Some(r) = super::configs::bind(
            cx,
            node,
            what,
            source,
            target,
            (decls.stack_dir, decls.root),
            &mut decls.binds.borrow_mut(),
        ) {
            decls.bind_refs.borrow_mut().push(r);
        }
        return None;
    }
    let Some(volume) = decls.volumes.get(source) else {
        let declared: Vec<&str> = decls.volumes.keys().map(String::as_str).collect();
        let mut help = String::new();
        if let Some(close) = values::suggest(source, &declared) {
            help.push_str(&format!("did you mean `{close}`? "));
        }
        help.push_str(&format!(
            "declare it under top-level `volumes:` (`volumes: {{{source}: {{}}}}`)"
        ));
        cx.error_help(node, format!("undefined volume `{source}` in {what}"), help);
        return None;
    };
    Some(MountSpec {
        kind: MountKind::Volume,
        source: volume.name.clone(),
        target: target.to_string(),
        read_only,
        propagation: None,
        selinux: bind.selinux,
    })
}

enum LongMount {
    Mount(MountSpec),
    /// Target and `--tmpfs` options.
    Tmpfs(String, String),
}

fn long_mount(cx: &mut Cx, node: &Node, what: &str, decls: &Decls<'_>) -> Option<LongMount> {
    let item = format!("a volume of {what}");
    let fields = cx.map(node, &item)?;
    for field in &fields.entries {
        if MOUNT_UNSUPPORTED.contains(&field.name) {
            cx.error_help(
                field.key,
                format!("unsupported key `{}` in {item}", field.name),
                format!("berth supports: {}", MOUNT_KEYS.join(", ")),
            );
        } else if !MOUNT_KEYS.contains(&field.name) {
            cx.unknown_key(field, &item, MOUNT_KEYS);
        }
    }
    let kind = match fields.value("type") {
        None => {
            cx.error_help(
                node,
                format!("{item} has no `type`"),
                "set `type:` to `volume`, `bind` or `tmpfs`",
            );
            return None;
        }
        Some(v) => cx.string(v, &format!("`type` of {item}"))?,
    };
    let target = match fields.value("target") {
        None => {
            cx.error_help(
                node,
                format!("{item} has no `target`"),
                "set `target:` to the path in the container",
            );
            return None;
        }
        Some(v) => cx.string(v, &format!("`target` of {item}"))?,
    };
    let read_only = fields
        .value("read_only")
        .and_then(|v| cx.bool(v, &format!("`read_only` of {item}")))
        .unwrap_or(false);
    let bind = long_mount_options(cx, &fields, &item, &kind)?;
    let source = fields
        .value("source")
        .map(|v| (v, cx.string(v, &format!("`source` of {item}"))));
    if kind != "tmpfs" {
        if let Some(f) = fields.get("tmpfs") {
            cx.error(f.key, format!("{item}: `tmpfs` options need `type: tmpfs`"));
        }
    }
    match kind.as_str() {
        "volume" | "bind" => {
            let Some((source_node, source)) = source else {
                if kind == "volume" {
                    anonymous_volume(cx, node, what, &target);
                } else {
                    cx.error(node, format!("{item} has no `source`"));
                }
                return None;
            };
            let source = source?;
            let kind = if kind == "bind" {
                MountKind::Bind
            } else {
                MountKind::Volume
            };
            let written = Written {
                kind: Some(kind),
                source: &source,
                target: &target,
                read_only,
                bind,
            };
            mount(cx, source_node, what, decls, written).map(LongMount::Mount)
        }
        "tmpfs" => {
            if let Some((source_node, _)) = source {
                cx.error(
                    source_node,
                    format!("{item}: a tmpfs mount has no `source`"),
                );
            }
            if !target.starts_with('/') {
                cx.error(
                    node,
                    format!(
                        "{what}: mount target `{target}` must be an absolute path in the container"
                    ),
                );
                return None;
            }
            let mut options = Vec::new();
            if read_only {
                options.push("ro".to_string());
            }
            if let Some(v) = fields.value("tmpfs") {
                let tmpfs_what = format!("`tmpfs` of {item}");
                let opts = cx.map_with(v, &tmpfs_what, &["size", "mode"])?;
                if let Some(size) = opts.value("size") {
                    options.push(format!(
                        "size={}",
                        cx.memory(size, &format!("`size` of {tmpfs_what}"))?
                    ));
                }
                if let Some(mode) = opts.value("mode") {
                    options.push(format!(
                        "mode={:o}",
                        cx.file_mode(mode, &format!("`mode` of {tmpfs_what}"))?
                    ));
                }
            }
            Some(LongMount::Tmpfs(target, options.join(",")))
        }
        other => {
            cx.error_help(
                fields.value("type").unwrap_or(node),
                format!("{item}: type `{other}` is not supported"),
                "berth supports `volume`, `bind` and `tmpfs`",
            );
            None
        }
    }
}

/// `bind:`, `volume:` and `consistency` of a long-syntax mount. Returns
/// the bind's options, or None when the mount cannot be built.
fn long_mount_options(
    cx: &mut Cx,
    fields: &Fields<'_>,
    item: &str,
    kind: &str,
) -> Option<BindOptions> {
    let mut ok = true;
    let mut bind = BindOptions::default();
    if let Some(v) = fields.value("consistency") {
        if let Some(text) = cx.string(v, &format!("`consistency` of {item}")) {
            if ["cached", "delegated", "consistent"].contains(&text.as_str()) {
                ok &= mount_option(cx, v, item, &text, &mut bind);
            } else {
                cx.error_help(
                    v,
                    format!("{item}: `consistency: {text}` is not supported"),
                    "`consistency` tunes Docker Desktop on macOS (`cached`, `delegated`, `consistent`) and does nothing on Linux: remove it",
                );
                ok = false;
            }
        }
    }
    if let Some(f) = fields.get("bind").filter(|f| !f.value.is_null()) {
        let here = format!("`bind` of {item}");
        if kind != "bind" {
            cx.error(f.key, format!("{item}: `bind` options need `type: bind`"));
            return None;
        }
        let opts = cx.map_with(f.value, &here, BIND_KEYS)?;
        // berth mounts binds like `docker compose` (the engine's `Binds`),
        // which creates a missing host directory: `true` is what happens.
        if let Some(v) = opts.value("create_host_path") {
            if cx.bool(v, &format!("`create_host_path` of {here}")) == Some(false) {
                cx.error_help(
                    v,
                    format!("{here}: `create_host_path: false` is not supported"),
                    "berth lets the engine create a missing host directory, as `docker compose` does by default: remove it",
                );
                ok = false;
            }
        }
        let choices: [(&str, &[&str]); 2] =
            [("propagation", PROPAGATIONS), ("selinux", &["z", "Z"])];
        for (key, allowed) in choices {
            let Some(v) = opts.value(key) else { continue };
            let Some(text) = cx.string(v, &format!("`{key}` of {here}")) else {
                ok = false;
                continue;
            };
            if allowed.contains(&text.as_str()) {
                ok &= mount_option(cx, v, &here, &text, &mut bind);
            } else {
                let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
                cx.error_help(
                    v,
                    format!("{here}: `{key}: {text}` is not one of the engine's values"),
                    format!("use one of {}", list.join(", ")),
                );
                ok = false;
            }
        }
    }
    if let Some(f) = fields.get("volume").filter(|f| !f.value.is_null()) {
        let here = format!("`volume` of {item}");
        if kind != "volume" {
            cx.error(
                f.key,
                format!("{item}: `volume` options need `type: volume`"),
            );
            return None;
        }
        let opts = cx.map_with(f.value, &here, VOLUME_KEYS)?;
        if let Some(v) = opts.value("nocopy") {
            if cx.bool(v, &format!("`nocopy` of {here}")) == Some(true) {
                ok &= mount_option(cx, v, &here, "nocopy", &mut bind);
            }
        }
        if let Some(v) = opts.value("subpath") {
            cx.error_help(
                v,
                format!("{here}: `subpath` is not supported"),
                "berth cannot mount part of a volume yet: mount the whole volume and point the program at the sub-directory",
            );
            ok = false;
        }
    }
    ok.then_some(bind)
}

/// `tmpfs:` of a service: one path or a list of `/path[:options]`.
pub(crate) fn tmpfs(cx: &mut Cx, node: &Node, what: &str, out: &mut BTreeMap<String, String>) {
    let items: Vec<&Node> = match &node.kind {
        Kind::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    for item in items {
        let Some(text) = cx.string(item, &format!("`tmpfs` of {what}")) else {
            continue;
        };
        let (path, options) = text.split_once(':').unwrap_or((&text, ""));
        if !path.starts_with('/') {
            cx.error(
                item,
                format!("{what}: tmpfs path `{path}` must be absolute"),
            );
            continue;
        }
        if out.insert(path.to_string(), options.to_string()).is_some() {
            cx.error(item, format!("{what} mounts a tmpfs at `{path}` twice"));
        }
    }
}

pub(crate) fn check_mount_targets(
    cx: &mut Cx,
    container: &ContainerSpec,
    fields: &Fields<'_>,
    what: &str,
) {
    let mut seen = BTreeSet::new();
    let targets = container
        .mounts
        .iter()
        .map(|m| m.target.as_str())
        .chain(container.tmpfs.keys().map(String::as_str));
    let mut twice = BTreeSet::new();
    for target in targets {
        if !seen.insert(target) {
            twice.insert(target);
        }
    }
    let at = fields.get("volumes").or_else(|| fields.get("tmpfs"));
    if let Some(field) = at {
        for target in twice {
            cx.error(
                field.key,
                format!("{what} mounts `{target}` more than once"),
            );
        }
    }
}
