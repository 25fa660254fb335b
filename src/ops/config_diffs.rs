//! The text of a plan's config diffs: the host's copy of each config a
//! change delivers, read back (one command per host, each file cut at
//! [`READ_CAP`]) and diffed against the repo's bytes. I/O, so apart from
//! the pure plan; a host that cannot be read leaves digests only.

use std::collections::BTreeMap;

use super::stages::Loaded;
use crate::hosts::config_files;
use crate::hosts::fleet::Fleet;
use crate::labels;
use crate::plan::configs::{host_copy, unified};
use crate::plan::{Plan, Reason};
use crate::spec::configs::{project_dir, ConfigData, ConfigFileSpec, HOST_DIR};

/// Most bytes of a host's copy read for a diff.
const READ_CAP: usize = 64 * 1024;

/// Fills `diff` of every config diff in `plan` that is text on both sides.
pub(super) async fn fill(plan: &mut Plan, loaded: &Loaded, fleet: &Fleet) {
    let repo: BTreeMap<&str, &ConfigData> = loaded
        .project
        .stacks
        .iter()
        .flat_map(|s| s.config_data())
        .map(|c| (c.digest.as_str(), c))
        .collect();
    for hp in &mut plan.hosts {
        let (Some(engine), Some(observed)) =
            (fleet.engines.get(&hp.host), fleet.observed.get(&hp.host))
        else {
            continue;
        };
        let configs_dir = loaded
            .project
            .inventory
            .hosts
            .iter()
            .find(|h| h.name == hp.host)
            .map_or(HOST_DIR, |h| h.configs_dir.as_str());
        let base = project_dir(configs_dir, &plan.project, &hp.host);
        // (change, diff) -> path on the host, for the text configs.
        let mut wanted: Vec<(usize, usize, Option<String>)> = Vec::new();
        for (ci, c) in hp.changes.iter().enumerate() {
            let Some(desired) = &c.desired else { continue };
            let old_spec: Option<crate::spec::ContainerSpec> = c.current.as_ref().and_then(|cur| {
                let found = observed.containers.iter().find(|o| o.id == cur.id)?;
                serde_json::from_str(found.labels.get(labels::SPEC)?).ok()
            });
            for (di, d) in c.configs.iter().enumerate() {
                let Some(file) = desired.spec.configs.get(&d.config) else {
                    continue;
                };
                if repo.get(d.new_digest.as_str()).is_none_or(|data| data.dir) {
                    continue;
                }
                let on_host: Option<&ConfigFileSpec> = match &c.reason {
                    Reason::ConfigDrift { .. } | Reason::ConfigChanged { .. } => Some(file),
                    _ => old_spec.as_ref().and_then(|s| s.configs.get(&d.config)),
                };
                let path = on_host
                    .filter(|f| !f.dir)
                    .map(|f| format!("{base}/{}", host_copy(&c.slot, &d.config, f)));
                wanted.push((ci, di, path));
            }
        }
        let paths: Vec<String> = wanted.iter().filter_map(|(_, _, p)| p.clone()).collect();
        let read = match config_files::read_files(engine.shell(), engine.who(), &paths, READ_CAP)
            .await
        {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(host = %hp.host, "cannot read config copies for the plan's diffs: {e:#}");
                continue;
            }
        };
        let mut read = read.into_iter();
        for (ci, di, path) in wanted {
            let old = match path {
                Some(_) => read.next().flatten().unwrap_or_default(),
                None => Vec::new(),
            };
            let d = &mut hp.changes[ci].configs[di];
            if let Some(data) = repo.get(d.new_digest.as_str()) {
                d.diff = unified(&d.config, &old, data.bytes());
            }
        }
    }
}
