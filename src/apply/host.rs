//! One host as the executor uses it: its engine, and its bound on container
//! operations at once, shared by every rollout that touches the host.

use std::collections::BTreeMap;
use std::future::Future;

use tokio::sync::Semaphore;

use crate::hosts::Engine;

/// The hosts of a run, each with its own bound.
pub(super) struct Hosts<'a> {
    engines: &'a BTreeMap<String, Box<dyn Engine>>,
    slots: BTreeMap<&'a str, Semaphore>,
}

impl<'a> Hosts<'a> {
    /// `operations`: container operations at once per host (at least 1).
    pub fn new(engines: &'a BTreeMap<String, Box<dyn Engine>>, operations: usize) -> Self {
        let slots = engines
            .keys()
            .map(|h| (h.as_str(), Semaphore::new(operations.max(1))))
            .collect();
        Hosts { engines, slots }
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
