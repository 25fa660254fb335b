//! hosts: talks to each host's Docker Engine — over one SSH connection per
//! host (openssh native mux, strict known_hosts, the remote Docker socket
//! forwarded to a local unix socket, bollard on top), or the local socket for
//! `transport: local`.
//!
//! Input: the inventory. Output: an [`Engine`] per host (its [`Docker`] API
//! and its [`Shell`]), and through it the
//! [`HostObservation`] of what berth manages there. Invariant: only containers,
//! networks and volumes labelled with this project are ever listed, so
//! unmanaged ones are never touched.

pub mod config_files;
pub mod connect;
pub mod docker;
mod engine;
mod file_scripts;
pub mod fleet;
pub mod lock;
pub mod lost;
#[cfg(any(test, feature = "bench-memory"))]
pub mod memory;
pub mod secret_files;
pub mod shell;
pub mod ssh;
pub mod ssh_config;
pub mod swarm;

// The face of the module. Files inside `hosts` import each other by path
// (`super::ssh::…`), never through these, so no file imports its parent.
pub use crate::labels;
pub use crate::observed::{ContainerStatus, HostObservation, LiveSettings, ObservedContainer};
pub use connect::connect;
pub use engine::{Docker, Engine, Host};
pub use lost::{is_lost, lost, lost_msg};
pub use shell::Shell;
pub use ssh::ConnectOptions;
