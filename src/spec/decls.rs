//! What a service may refer to while it is read: the stack's declared
//! networks, volumes and secrets, and the inventory. Below the readers of
//! services and mounts, so neither imports the other for it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::model::{Inventory, NetworkSpec, SecretSpec, VolumeSpec};

/// What a service may refer to: the stack's declarations and the inventory
/// (None when `berth.yaml` itself has problems).
pub(crate) struct Decls<'a> {
    pub stack: &'a str,
    pub networks: &'a BTreeMap<String, NetworkSpec>,
    pub volumes: &'a BTreeMap<String, VolumeSpec>,
    pub secrets: &'a BTreeMap<String, SecretSpec>,
    pub inventory: Option<&'a Inventory>,
    /// Names of the stack's declared configs.
    pub configs: &'a BTreeSet<String>,
    /// The stack's directory (repo-relative) and the repo root, for
    /// repo-relative bind mounts, which become configs.
    pub stack_dir: &'a Path,
    pub root: &'a Path,
    /// Configs made from repo-relative bind mounts, by name (for the stack),
    /// and the uses of them by the service being read (taken by it).
    pub binds: &'a RefCell<BTreeMap<String, super::configs::ConfigSpec>>,
    pub bind_refs: &'a RefCell<Vec<super::configs::ConfigRef>>,
}
