//! The discovery model (`discovery:` targets, `x-berth.publish`), below
//! both `model` (which holds it) and `discovery` (which reads it).

use std::time::Duration;

use serde::Serialize;

use super::diagnostic::Location;

/// How long berth waits for a drained replica's sessions to end before it
/// stops the replica anyway, when a target sets no `drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest run of an `on_promote`/`on_retire` command without `timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The HAProxy admin socket when a target names none (Debian's package).
pub const DEFAULT_HAPROXY_SOCKET: &str = "/run/haproxy/admin.sock";

/// A place berth tells about validated replicas (`discovery:` in berth.yaml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryTarget {
    /// Unique; what `x-berth.publish.to` names.
    pub name: String,
    pub kind: DiscoveryKind,
    /// How long a drained replica's sessions may take to end before berth
    /// stops it anyway.
    pub drain_timeout: Duration,
    #[serde(skip)]
    pub location: Location,
}

/// What a target is, with its own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DiscoveryKind {
    /// An HAProxy driven through its Runtime API: the admin socket on an
    /// inventory host, reached over that host's SSH connection.
    Haproxy {
        /// The inventory host HAProxy runs on.
        host: String,
        /// Its admin socket (`stats socket ... level admin`) on that host.
        socket: String,
    },
    /// Commands run on the runner, with the replica in the environment.
    Command {
        on_promote: Option<String>,
        on_retire: Option<String>,
        timeout: Duration,
    },
}

impl DiscoveryKind {
    /// As written in berth.yaml.
    pub fn name(&self) -> &'static str {
        match self {
            DiscoveryKind::Haproxy { .. } => "haproxy",
            DiscoveryKind::Command { .. } => "command",
        }
    }
}

/// A service's `x-berth.publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publish {
    /// The host port each replica serves on (on its host's address).
    pub port: u16,
    /// The targets, by name, in the order written.
    pub to: Vec<String>,
    /// The HAProxy backend its replicas join (needed with a `haproxy` target).
    pub backend: Option<String>,
    #[serde(skip)]
    pub location: Location,
}
