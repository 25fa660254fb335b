//! What a service may refer to while it is read: the stack's declared
//! networks, volumes and secrets, and the inventory. Below the readers of
//! services and mounts, so neither imports the other for it.

use std::collections::BTreeMap;

use super::model::{Inventory, NetworkSpec, SecretSpec, VolumeSpec};

/// What a service may refer to: the stack's declarations and the inventory
/// (None when `berth.yaml` itself has problems).
pub(crate) struct Decls<'a> {
    pub stack: &'a str,
    pub networks: &'a BTreeMap<String, NetworkSpec>,
    pub volumes: &'a BTreeMap<String, VolumeSpec>,
    pub secrets: &'a BTreeMap<String, SecretSpec>,
    pub inventory: Option<&'a Inventory>,
}
