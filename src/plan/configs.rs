//! What the plan makes of configs (see `spec::configs`): a changed config
//! replaces its readers, or reloads them when the service says
//! `x-berth.reload`; a copy edited on the host is drift. Pure: decides
//! from the desired spec, the container's labels and the digests the host
//! reported of its copies.

use serde::{Deserialize, Serialize};

use crate::observed::ConfigObservation;
use crate::placement::DesiredContainer;
use crate::spec::configs::{self, ConfigFileSpec};

/// A config a change delivers, and how it differs from the host's copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigDiff {
    /// The config's name (`haproxy.cfg`; `./conf/x.conf` for a bind mount).
    pub config: String,
    /// `sha256:<hex>` of the host's copy; None when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_digest: Option<String>,
    /// `sha256:<hex>` of the repo's.
    pub new_digest: String,
    /// Unified diff of the host's copy against the repo's (cut at
    /// [`DIFF_LINES`] lines); None for a binary file or a directory, whose
    /// digests say it, or when the host's copy could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// Longest diff a plan shows of one config.
pub const DIFF_LINES: usize = 200;

/// A changed config's field path: `configs.<name>.digest`.
pub(crate) fn config_of(field: &str) -> Option<&str> {
    field.strip_prefix("configs.")?.strip_suffix(".digest")
}

/// A mount of a delivered version of a config, below `base` (the project's
/// config directory on the host, see [`mount_base`]): its host path moves
/// with the version, so it says nothing the config's digest does not. A
/// live directory's mount (reload mode) never moves with a version: when
/// it changes, the container needs it mounted anew, so it stays a field.
pub(crate) fn is_config_mount(
    field: &str,
    old: Option<&str>,
    new: Option<&str>,
    base: Option<&str>,
) -> bool {
    let Some(base) = base else { return false };
    let under = format!("{base}/");
    let live = format!("{base}/.live/");
    field.starts_with("mounts")
        && (old.is_some() || new.is_some())
        && [old, new]
            .iter()
            .flatten()
            .all(|v| v.contains(&under) && !v.contains(&live))
}

/// The project's config directory on the host that `d`'s config mounts
/// come from (as `spec::configs::with_mounts` made them), or None when it
/// mounts none.
pub(crate) fn mount_base(d: &DesiredContainer) -> Option<String> {
    d.spec.configs.iter().find_map(|(name, file)| {
        let suffix = format!("/{}", host_mount(&d.slot, name, file));
        d.spec
            .mounts
            .iter()
            .find_map(|m| m.source.strip_suffix(&suffix).map(str::to_string))
    })
}

/// A config's mount source below the project's directory: its version's
/// `data`, or (reload mode) its live directory.
fn host_mount(slot: &crate::placement::Slot, name: &str, file: &ConfigFileSpec) -> String {
    if file.reload {
        configs::live_dir(&slot.stack, &slot.service, slot.replica, &file.target).0
    } else {
        format!(
            "{}/data",
            configs::store_dir(&slot.stack, &slot.service, name, file)
        )
    }
}

/// What the host has of a config a container reads: (hex of the bytes
/// there, whether the container runs them: false for a live link swapped
/// by a run that was stopped before its reload).
pub(crate) fn on_host(
    d: &DesiredContainer,
    name: &str,
    file: &ConfigFileSpec,
    obs: &ConfigObservation,
) -> Option<(String, bool)> {
    if file.reload {
        let (dir, base) =
            configs::live_dir(&d.slot.stack, &d.slot.service, d.slot.replica, &file.target);
        let copy = obs.live.get(&format!("{dir}/{base}"))?;
        Some((copy.hex.clone(), copy.reloaded == copy.version))
    } else {
        let dir = configs::store_dir(&d.slot.stack, &d.slot.service, name, file);
        let hex = obs.store.get(&dir)?;
        Some((hex.clone(), true))
    }
}

pub(crate) fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The diffs of `names`, digests only: `ops` fills in the text from the
/// host's copies (I/O), see [`unified`].
pub(crate) fn diffs(
    d: &DesiredContainer,
    names: &[String],
    obs: Option<&ConfigObservation>,
) -> Vec<ConfigDiff> {
    names
        .iter()
        .filter_map(|n| {
            let f = d.spec.configs.get(n)?;
            Some(ConfigDiff {
                config: n.clone(),
                old_digest: obs
                    .and_then(|o| on_host(d, n, f, o))
                    .filter(|(h, _)| !h.is_empty())
                    .map(|(h, _)| format!("sha256:{h}")),
                new_digest: f.digest.clone(),
                diff: None,
            })
        })
        .collect()
}

/// Where the host keeps the copy of config `name` that a container of
/// `slot` reads, below the project's directory, given the spec it reads it
/// with (for a replace, the old container's): for diffs.
pub fn host_copy(slot: &crate::placement::Slot, name: &str, file: &ConfigFileSpec) -> String {
    if file.reload {
        let (dir, base) = configs::live_dir(&slot.stack, &slot.service, slot.replica, &file.target);
        format!("{dir}/{base}")
    } else {
        format!(
            "{}/data",
            configs::store_dir(&slot.stack, &slot.service, name, file)
        )
    }
}

/// A unified diff of `old` against `new`, cut at [`DIFF_LINES`] lines;
/// None when either is not text.
pub fn unified(name: &str, old: &[u8], new: &[u8]) -> Option<String> {
    let old = std::str::from_utf8(old).ok()?;
    let new = std::str::from_utf8(new).ok()?;
    if old.contains('\0') || new.contains('\0') {
        return None;
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (host)"), &format!("{name} (repo)"))
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > DIFF_LINES {
        Some(format!(
            "{}\n… {} more lines",
            lines[..DIFF_LINES].join("\n"),
            lines.len() - DIFF_LINES
        ))
    } else {
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{LiveCopy, ObservedContainer};
    use crate::placement::{canonical_json, spec_hash, Slot};
    use crate::plan::{Action, Change, Reason};
    use crate::spec::ContainerSpec;
    use std::collections::BTreeMap;

    const V1: &str = "sha256:1111111111111111aaaa";
    const V2: &str = "sha256:2222222222222222bbbb";

    fn spec(digest: &str, reload: bool) -> ContainerSpec {
        let mut spec = ContainerSpec {
            image: "reg/web:1".into(),
            ..Default::default()
        };
        spec.configs.insert(
            "httpd".into(),
            ConfigFileSpec {
                digest: digest.into(),
                target: "/etc/httpd/httpd.conf".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: configs::DEFAULT_MODE,
                dir: false,
                reload,
            },
        );
        configs::with_mounts(spec, configs::HOST_DIR, "p", "h", "s", "web", 1)
    }

    fn desired(spec: ContainerSpec) -> DesiredContainer {
        DesiredContainer {
            slot: Slot {
                stack: "s".into(),
                service: "web".into(),
                replica: 1,
            },
            name: "s-web-1".into(),
            spec_hash: spec_hash(&spec),
            spec,
            pull_policy: Default::default(),
        }
    }

    fn running(spec: &ContainerSpec) -> ObservedContainer {
        ObservedContainer {
            id: "c1".into(),
            name: "s-web-1".into(),
            labels: BTreeMap::from([
                (crate::labels::SPEC.to_string(), canonical_json(spec)),
                (crate::labels::SPEC_HASH.to_string(), spec_hash(spec)),
                (crate::labels::STACK.to_string(), "s".into()),
                (crate::labels::SERVICE.to_string(), "web".into()),
                (crate::labels::REPLICA.to_string(), "1".into()),
            ]),
            image: "reg/web:1".into(),
            state: crate::observed::ContainerState::Running,
            health: None,
            created: 0,
            live: None,
        }
    }

    fn live(hex: &str, version: &str, reloaded: &str) -> ConfigObservation {
        ConfigObservation {
            store: BTreeMap::new(),
            live: BTreeMap::from([(
                ".live/s/web/1/etc_httpd/httpd.conf".to_string(),
                LiveCopy {
                    version: version.into(),
                    hex: hex.into(),
                    reloaded: reloaded.into(),
                },
            )]),
        }
    }

    fn plan(
        d: &DesiredContainer,
        c: &ObservedContainer,
        obs: &ConfigObservation,
    ) -> Option<Change> {
        super::super::review_configs(super::super::compare(d, c, false), d, c, Some(obs))
    }

    #[test]
    fn a_changed_reloadable_config_is_a_reload_until_the_host_runs_it() {
        let old = spec(V1, true);
        let c = running(&old);
        let d = desired(spec(V2, true));
        let h1 = hex(V1).to_string();
        let h2 = hex(V2).to_string();
        let change = plan(&d, &c, &live(&h1, "111111111111", "111111111111")).expect("a change");
        assert_eq!(change.action, Action::Reload);
        assert_eq!(
            change.reason,
            Reason::ConfigChanged {
                configs: vec!["httpd".into()]
            }
        );
        assert!(!change.drift);
        assert_eq!(
            change.configs[0].old_digest.as_deref(),
            Some(&*format!("sha256:{h1}"))
        );
        // Swapped but never reloaded (a run killed in between): again.
        let pending = plan(&d, &c, &live(&h2, "222222222222", "111111111111")).expect("pending");
        assert_eq!(pending.action, Action::Reload);
        // Reloaded: nothing, though the container's labels keep v1.
        assert!(plan(&d, &c, &live(&h2, "222222222222", "222222222222")).is_none());
    }

    #[test]
    fn a_moved_configs_dir_or_a_new_live_directory_replaces_instead_of_reloading() {
        let h1 = hex(V1).to_string();
        let obs = live(&h1, "111111111111", "111111111111");
        // The same config, its host's `configs_dir` moved: the container
        // must mount the new directory.
        let c = running(&spec(V1, true));
        let mut moved = spec(V1, true);
        moved.mounts.clear();
        let moved = configs::with_mounts(moved, "/srv/configs", "p", "h", "s", "web", 1);
        let change = plan(&desired(moved), &c, &obs).expect("a change");
        assert_eq!(change.action, Action::Replace);
        assert!(
            change.fields.iter().any(|f| f.field.starts_with("mounts")),
            "{:?}",
            change.fields
        );
        // A second reloaded config in a directory not mounted yet.
        let mut more = spec(V1, true);
        more.mounts.clear();
        more.configs.insert(
            "extra".into(),
            ConfigFileSpec {
                target: "/etc/extra/extra.conf".into(),
                ..more.configs["httpd"].clone()
            },
        );
        let more = configs::with_mounts(more, configs::HOST_DIR, "p", "h", "s", "web", 1);
        let change = plan(&desired(more), &c, &obs).expect("a change");
        assert_eq!(change.action, Action::Replace);
    }

    #[test]
    fn a_reload_pulls_nothing_even_under_pull_policy_always() {
        use crate::spec::PullPolicy;
        let c = running(&spec(V1, true));
        let mut d = desired(spec(V2, true));
        d.pull_policy = PullPolicy::Always;
        let h1 = hex(V1).to_string();
        let reload = plan(&d, &c, &live(&h1, "111111111111", "111111111111")).expect("a change");
        assert_eq!(reload.action, Action::Reload);
        let want = crate::placement::DesiredHost {
            containers: vec![d.clone()],
            ..Default::default()
        };
        let have = crate::observed::HostObservation {
            images: ["reg/web:1".to_string()].into(),
            ..Default::default()
        };
        assert!(super::super::pulls(std::slice::from_ref(&reload), &want, &have).is_empty());
        // The same container replaced: `always` pulls.
        let replace = Change {
            action: Action::Replace,
            ..reload
        };
        assert_eq!(
            super::super::pulls(&[replace], &want, &have),
            vec!["reg/web:1".to_string()]
        );
    }

    #[test]
    fn a_hand_edited_copy_is_drift_and_a_changed_default_config_a_replace() {
        let d = desired(spec(V1, true));
        let c = running(&d.spec);
        let h1 = hex(V1).to_string();
        assert!(plan(&d, &c, &live(&h1, "111111111111", "111111111111")).is_none());
        let edited = plan(&d, &c, &live("00ff", "111111111111", "111111111111")).expect("drift");
        assert_eq!(edited.action, Action::Reload);
        assert!(edited.drift);
        assert_eq!(
            edited.reason,
            Reason::ConfigDrift {
                configs: vec!["httpd".into()]
            }
        );

        // Without `x-berth.reload`: a new digest replaces, named as a config.
        let old = spec(V1, false);
        let c = running(&old);
        let d = desired(spec(V2, false));
        let obs = ConfigObservation::default();
        let change = plan(&d, &c, &obs).expect("a change");
        assert_eq!(change.action, Action::Replace);
        assert_eq!(
            change.reason,
            Reason::SpecChanged {
                fields: vec!["configs.httpd.digest".into()]
            },
            "the mount's new host path is not a field of its own"
        );
        assert_eq!(
            crate::render::reason::text(&change.reason),
            "config httpd changed"
        );
        // Its version on the host edited by hand: drift, a replace.
        let same = desired(spec(V1, false));
        let c = running(&same.spec);
        let dir = configs::store_dir("s", "web", "httpd", &same.spec.configs["httpd"]);
        let mut obs = ConfigObservation::default();
        obs.store.insert(dir.clone(), hex(V1).to_string());
        assert!(plan(&same, &c, &obs).is_none());
        obs.store.insert(dir, "00ff".into());
        let drift = plan(&same, &c, &obs).expect("drift");
        assert_eq!((drift.action, drift.drift), (Action::Replace, true));
        assert_eq!(
            crate::render::reason::text(&drift.reason),
            "config httpd edited on the host"
        );
    }

    #[test]
    fn a_unified_diff_names_the_file_and_is_cut() {
        let diff = unified("httpd.conf", b".html:text/a\n", b".html:text/b\n").expect("text");
        assert!(diff.contains("--- httpd.conf (host)"), "{diff}");
        assert!(diff.contains("-.html:text/a"), "{diff}");
        assert!(diff.contains("+.html:text/b"), "{diff}");
        assert_eq!(unified("x", &[0, 1, 2], b"x"), None);
        let long: String = (0..500).map(|i| format!("{i}\n")).collect();
        let cut = unified("x", b"", long.as_bytes()).expect("text");
        assert!(cut.ends_with("more lines"), "{cut}");
    }
}
