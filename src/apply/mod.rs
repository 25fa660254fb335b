//! apply: executes a [`Plan`] on the hosts, exactly as it was shown.
//!
//! Input: the plan and one connected [`Engine`] per host. Output: an
//! [`ApplyReport`] of what was done and what failed.
//!
//! Two phases. First every host is prepared in parallel (pulls, networks,
//! volumes, removals — removals first free ports and names); a host that
//! fails here is left out of the rollouts, and the other hosts go on. Then
//! each service is rolled out across hosts in batches of
//! `update_config.parallelism`, services in `depends_on` order: each new
//! container must run, report healthy, pass the `x-berth.validate` checks and
//! stay healthy for `monitor` before the next batch starts. The container it
//! replaces is kept, stopped and renamed `<name>.berth-old`, until the whole
//! service has rolled out, so a rollback needs no pull. On a failure,
//! `failure_action` decides: `rollback` (default) puts every replaced
//! container of the service back, `pause` stops the rollout where it is,
//! `continue` goes on; batches not yet started are never touched. The
//! failed new container is kept, stopped, as `<name>.berth-failed` so its
//! logs can be read and the next plan can say this release failed before.
//!
//! Every step says its end state and may be re-run after a crash: the next
//! plan sees the leftovers (`.berth-old`, `.berth-new`, `.berth-failed`) and
//! finishes the job.

mod context;
mod gate;
mod outcome;
pub mod policy;
mod prepare;
mod rollout;
pub mod schedule;
#[cfg(test)]
mod tests;

// The face of the module: files inside `apply` import each other by path,
// never through these, so no file imports its parent.
pub use context::{ApplyContext, ServicePolicy};
pub use gate::{readiness, wait_ready, Readiness};
pub use outcome::{ApplyReport, HostReport, RolloutReport, StepReport};
pub use rollout::apply;
