//! `berth status`: per host, the containers berth manages and whether each
//! matches the repo.

use std::collections::BTreeMap;

use super::stages::{HostOptions, LoadOptions};
use crate::error::{Error, Reach};
use crate::labels;
use crate::plan::UnreachableHost;

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub load: LoadOptions,
    pub hosts: HostOptions,
}

/// What runs on the reachable hosts, by host name.
#[derive(Debug, Clone)]
pub struct Status {
    pub hosts: Vec<HostStatus>,
    pub unreachable: Vec<UnreachableHost>,
}

#[derive(Debug, Clone)]
pub struct HostStatus {
    pub host: String,
    /// Sorted by name.
    pub containers: Vec<ContainerRow>,
}

#[derive(Debug, Clone)]
pub struct ContainerRow {
    pub name: String,
    /// The image as the repo names it (`reg/app:2.1`).
    pub image: String,
    pub state: crate::observed::ContainerState,
    pub health: Option<crate::observed::Health>,
    pub sync: Sync,
    /// Every `berth.*` label but the full spec.
    pub labels: BTreeMap<String, String>,
}

/// How a container compares with the repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// The repo wants this container, as it is.
    InSync,
    /// The repo wants this container, with another spec.
    Differs,
    /// The repo does not want it on this host.
    NotInRepo,
}

pub async fn status(opts: &StatusOptions) -> Result<Status, Error> {
    let loaded = super::stages::load(&opts.load)
        .await
        .map_err(Error::at(Reach::NotContacted))?;
    let mut fleet = super::stages::open_fleet(&loaded, &opts.load, &opts.hosts, None).await?;
    let observed = std::mem::take(&mut fleet.observed);
    let unreachable = std::mem::take(&mut fleet.unreachable);
    fleet.close().await;
    let current = crate::plan::current_placement(&observed);
    let desired = crate::placement::place(&loaded.project, &current);
    let hosts = observed
        .into_iter()
        .map(|(host, o)| {
            let want = desired.as_ref().ok().and_then(|d| d.hosts.get(&host));
            let mut containers: Vec<ContainerRow> = o
                .containers
                .into_iter()
                .map(|c| {
                    let hash = c.labels.get(labels::SPEC_HASH);
                    let sync =
                        match want.and_then(|w| w.containers.iter().find(|d| d.name == c.name)) {
                            Some(d) if Some(&d.spec_hash) == hash => Sync::InSync,
                            Some(_) => Sync::Differs,
                            None => Sync::NotInRepo,
                        };
                    // As the repo names it: a container created from its
                    // pinned digest keeps the tag in a label.
                    let image = c.labels.get(labels::IMAGE).cloned().unwrap_or(c.image);
                    ContainerRow {
                        labels: c
                            .labels
                            .into_iter()
                            .filter(|(k, _)| k.starts_with("berth.") && k.as_str() != labels::SPEC)
                            .collect(),
                        name: c.name,
                        image,
                        state: c.state,
                        health: c.health,
                        sync,
                    }
                })
                .collect();
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            HostStatus { host, containers }
        })
        .collect();
    Ok(Status { hosts, unreachable })
}
