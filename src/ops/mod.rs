//! ops: one function per command — [`validate()`], [`plan()`], [`apply()`],
//! [`status()`], [`config()`], [`import()`] — each taking its own options struct and returning an
//! outcome value. An op never prints (it may log) and never picks an exit
//! code: `cli` renders the outcome and maps it to one. Nothing here knows clap.
//!
//! Order matters for trust: the repo is read and validated completely
//! ([`load`]) before any host is contacted, so bad input never touches a
//! host. Hosts are reached through a [`Fleet`], which owns every connection
//! and lock of the run and closes them when the op is done with it.

mod apply;
mod config;
mod config_diffs;
mod context;
mod import;
mod plan;
mod saved_plan;
mod stages;
mod status;
mod swarm;
mod validate;

pub use apply::{apply, ApplyOptions, ApplyOutcome};
pub use config::{config, ConfigOptions, Resolved};
pub use import::{import, ImportOptions, ImportReport};
pub use plan::{plan, PlanOptions, Planned};
pub use stages::{HostOptions, LoadOptions, Loaded};
pub use status::{status, ContainerRow, HostStatus, Status, StatusOptions, Sync};
pub use validate::{validate, ValidateOptions, Validated};
