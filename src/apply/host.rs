//! One host as the executor uses it: its engine, and its bound on container
//! operations at once, shared by every rollout that touches the host; and
//! which hosts stopped answering during the run (dropped: no rollout starts
//! anything on them any more).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::hosts::Engine;

/// The hosts of a run, each with its own bound.
pub(super) struct Hosts<'a> {
    engines: &'a BTreeMap<String, Box<dyn Engine>>,
    slots: BTreeMap<&'a str, Semaphore>,
    /// Hosts dropped from the run: they stopped answering.
    lost: Mutex<BTreeSet<String>>,
    /// Discovery steps (publish, retire) taken anywhere in the run, by the
    /// replica's host: they happen inside other steps, so they are noted
    /// here and joined to the host reports at the end.
    discovery: Mutex<Vec<(String, super::outcome::StepReport)>>,
}

impl<'a> Hosts<'a> {
    /// `operations`: container operations at once per host (at least 1).
    pub fn new(engines: &'a BTreeMap<String, Box<dyn Engine>>, operations: usize) -> Self {
        let slots = engines
            .keys()
            .map(|h| (h.as_str(), Semaphore::new(operations.max(1))))
            .collect();
        Hosts {
            engines,
            slots,
            lost: Mutex::new(BTreeSet::new()),
            discovery: Mutex::new(Vec::new()),
        }
    }

    /// Notes a discovery step of a replica on `host`.
    pub fn note_discovery(&self, host: &str, step: super::outcome::StepReport) {
        if let Ok(mut steps) = self.discovery.lock() {
            steps.push((host.to_string(), step));
        }
    }

    /// The discovery steps noted so far, in the order they ended.
    pub fn take_discovery(&self) -> Vec<(String, super::outcome::StepReport)> {
        self.discovery
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// Drops `host` from the run: it stopped answering.
    pub fn lose(&self, host: &str) {
        if let Ok(mut lost) = self.lost.lock() {
            if lost.insert(host.to_string()) {
                tracing::warn!(%host, "host stopped answering: dropped from this run, its containers are left as they are");
            }
        }
    }

    /// Whether `host` was dropped from the run.
    pub fn is_lost(&self, host: &str) -> bool {
        self.lost.lock().map(|l| l.contains(host)).unwrap_or(false)
    }

    /// The hosts dropped from the run.
    pub fn lost(&self) -> BTreeSet<String> {
        self.lost.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The host of that name, if it has a connection.
    pub fn get(&self, name: &str) -> Option<Host<'_>> {
        let (name, engine) = self.engines.get_key_value(name)?;
        let slots = self.slots.get(name.as_str())?;
        Some(Host {
            name,
            engine: engine.as_ref(),
            slots,
        })
    }
}

/// Discovery targets reach a host (HAProxy's) over the run's connections;
/// not over one dropped from the run.
impl crate::discovery::Reach for Hosts<'_> {
    fn engine(&self, host: &str) -> Option<&dyn Engine> {
        if self.is_lost(host) {
            return None;
        }
        self.engines.get(host).map(|e| e.as_ref())
    }
}

/// A host's engine and its bound.
#[derive(Clone, Copy)]
pub(super) struct Host<'a> {
    pub name: &'a str,
    pub engine: &'a dyn Engine,
    slots: &'a Semaphore,
}

impl Host<'_> {
    /// Runs one container operation (create, start, stop, rename, remove)
    /// once the host has a free slot. Waits on gates take none, so a slow
    /// health check never holds up another service's create.
    pub async fn op<T>(&self, operation: impl Future<Output = T>) -> T {
        // The semaphore is never closed: acquiring cannot fail.
        let _slot = self.slots.acquire().await.ok();
        operation.await
    }
}

/// How long the probe after a failure waits for the host to answer.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Host<'_> {
    /// Whether the host still answers: its Docker Engine lists the
    /// project's containers, over its connection, within [`PROBE_TIMEOUT`].
    /// Asked after a failure that does not say by itself whether the host
    /// or the release is at fault.
    pub async fn answers(&self, project: &str) -> bool {
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.engine.observe(project)).await,
            Ok(Ok(_))
        )
    }
}
