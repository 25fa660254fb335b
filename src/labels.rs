//! The labels berth writes on everything it creates: how a later run finds
//! what it manages and tells which slot, spec and commit each container is.

pub const PROJECT: &str = "berth.project";
pub const STACK: &str = "berth.stack";
pub const SERVICE: &str = "berth.service";
pub const REPLICA: &str = "berth.replica";
pub const SPEC_HASH: &str = "berth.spec-hash";
/// Canonical JSON of the `ContainerSpec`, so a plan can diff field by field.
pub const SPEC: &str = "berth.spec";
pub const COMMIT: &str = "berth.commit";
/// Set on an old container kept (stopped, renamed) during a replace.
pub const RETIRED: &str = "berth.retired";
