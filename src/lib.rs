//! berth: a declarative GitOps reconciler for Docker hosts.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `source` → `spec` → `placement` → desired state; `hosts` → observed state;
//! `plan::diff(desired, observed)` → `render`; `apply` → `report`.
//! `cli` parses a command and calls one function in `ops`, which runs the
//! stages and returns an outcome; errors take one shape (`error`).
//! `import` turns containers started outside berth into specs and Compose
//! files (`berth import`, and the plan's take-over comparison).
//! `swarm` maps stacks given to a Swarm target to Swarm services and plans
//! them (pure); `hosts::swarm` talks to the Swarm's manager.
//! `labels` and `observed` are plain data below both `hosts` (which reports
//! them) and the pure stages (which read them), so data flows one way.

pub mod apply;
pub mod cli;
pub mod discovery;
pub mod error;
pub mod hosts;
pub mod import;
pub mod labels;
pub mod observed;
pub mod openpgp;
pub mod ops;
pub mod placement;
pub mod plan;
pub mod registry;
pub mod render;
pub mod report;
pub mod secrets;
pub mod source;
pub mod spec;
pub mod swarm;
