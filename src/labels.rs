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
/// The image as the repo names it (`reg/app:2.1`), on a container created
/// from its pinned digest: people read the tag, the engine runs the bytes.
pub const IMAGE: &str = "berth.image";
/// The manifest digest the plan resolved the image to (`sha256:…`): the
/// container is created from `name@digest`, so every host runs the same
/// bytes even when the tag moves during the rollout.
pub const IMAGE_DIGEST: &str = "berth.image-digest";
