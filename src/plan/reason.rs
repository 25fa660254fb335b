//! Why a change is planned, and what keeps one from being applied, as
//! values: the diff decides them, `render::reason` words them (the JSON plan
//! carries those words, so its shape does not change).

use serde::{Deserialize, Serialize};

use crate::observed::ContainerState;
use crate::placement::Slot;

/// Why a container is created, replaced or removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The repo asks for a replica that berth has no evidence of having
    /// run here: a new service, a scale-up, a replica placed here.
    New,
    /// A replica berth had created on this host is gone from it: removed
    /// outside berth (the commit did not move since every container was
    /// deployed, or a higher replica of the same spec runs; see the diff).
    Missing,
    /// The container has the wanted spec but is not running: stopped
    /// outside berth.
    NotRunning(ContainerState),
    /// The spec changed; the dotted paths of the changed fields, in spec
    /// order (details in `Change::fields`).
    SpecChanged { fields: Vec<String> },
    /// Settings edited in place on the host (`docker update`).
    HandEdited { fields: Vec<String> },
    /// A replace: the repo takes over (`x-berth.adopt`) this container,
    /// which berth did not manage; `fields` are what the repo's spec
    /// changes on it besides berth's labels (empty: the repo reproduces it).
    TakeOver {
        container: String,
        fields: Vec<String>,
    },
    /// A removal: the container carries no berth labels.
    Unlabelled,
    /// A removal: the stack is no longer in the repo.
    StackGone,
    /// A removal: the service is no longer in the repo.
    ServiceGone,
    /// A removal: the replica is placed on another host now.
    Moved,
    /// A removal: the replica is placed on another host now, and the named
    /// volumes it mounts (engine-side names) stay here with their data: the
    /// new replica starts with empty ones, so `apply` refuses the plan
    /// without `--allow-volume-move`. berth never removes a volume.
    MovedLeavingData { volumes: Vec<String> },
    /// A removal: fewer replicas are wanted.
    ScaledDown,
    /// A removal: what a replace or a failed release left behind.
    Leftover(Leftover),
    /// Configs changed in the repo, taken in place (`x-berth.reload`).
    ConfigChanged { configs: Vec<String> },
    /// Config copies on the host differ from the repo's bytes (edited by
    /// hand, or removed): put back.
    ConfigDrift { configs: Vec<String> },
    /// The spec is the same, but its image's tag names other bytes in the
    /// registry than the container runs: `from` and `to` as the words show
    /// them (`sha256:` and 12 hex digits; the full new digest is the
    /// change's `desired.digest`).
    TagMoved {
        tag: String,
        from: String,
        to: String,
    },
}

/// A container left by a replace or a failed release (named with one of
/// the `.berth-*` suffixes), and so never a slot's live container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Leftover {
    /// `.berth-old`: the old container of an interrupted replace.
    Retired,
    /// `.berth-new`: the new container of an interrupted start-first replace.
    Started,
    /// `.berth-failed`: the record of a failed release the repo no longer asks for.
    Failed,
    /// Anything else the plan found to clean up.
    Other,
}

impl Reason {
    /// Every reason without data, for reading a reason back from its words.
    pub const PLAIN: [Reason; 11] = [
        Reason::New,
        Reason::Missing,
        Reason::Unlabelled,
        Reason::StackGone,
        Reason::ServiceGone,
        Reason::Moved,
        Reason::ScaledDown,
        Reason::Leftover(Leftover::Retired),
        Reason::Leftover(Leftover::Started),
        Reason::Leftover(Leftover::Failed),
        Reason::Leftover(Leftover::Other),
    ];
}

/// What keeps a wanted container from being created: apply refuses the
/// plan until someone fixes it on the host (berth never touches what it
/// does not manage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Blocker {
    /// A container berth does not manage (or of another project) has the
    /// wanted name: creating it would fail with a name conflict.
    NameTaken,
}

/// A tag that moved in its registry under a running container whose
/// service keeps what runs: reported, not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MovedTag {
    pub slot: Slot,
    /// Engine-side container name.
    pub name: String,
    /// The image as the repo names it (`reg/app:2.1`).
    pub image: String,
    /// The digest the container runs.
    pub from: String,
    /// The digest the tag names now.
    pub to: String,
}
