//! apply: executes a [`Plan`] on the hosts, exactly as it was shown.
//!
//! Input: the plan and one connected [`Engine`] per host. Output: an
//! [`ApplyReport`] of what was done and what failed.
//!
//! Two phases. First every host is prepared in parallel (pulls, all at
//! once beside networks, volumes and secrets; then removals, which free
//! ports and names); a host that fails here is left out of the rollouts,
//! and the other hosts go on. Then the services roll out as a dependency
//! graph (see `schedule`): stacks are independent, a service waits only for
//! what it `depends_on`, up to `settings.rollout_parallel` services at once
//! and a few container operations at once per host. Each service goes
//! across its hosts in batches of `update_config.parallelism` where
//! replicas serve (all at once where none does): each new container must
//! run, report healthy, pass the `x-berth.validate` checks and stay healthy
//! for `monitor` before the next batch starts. The container it
//! replaces is kept, stopped and renamed `<name>.berth-old`, until the whole
//! service has rolled out, so a rollback needs no pull. On a failure,
//! `failure_action` decides: `rollback` (default) puts every replaced
//! container of the service back, `pause` stops the rollout where it is,
//! `continue` goes on; batches not yet started are never touched. A failed
//! service's dependants never start, and with `rollback` or `pause` neither
//! does any service of its stack not started yet; other stacks go on. The
//! failed new container is kept, stopped, as `<name>.berth-failed` so its
//! logs can be read and the next plan can say this release failed before.
//!
//! Every step says its end state and may be re-run after a crash: the next
//! plan sees the leftovers (`.berth-old`, `.berth-new`, `.berth-failed`) and
//! finishes the job.

mod context;
mod gate;
mod host;
mod outcome;
pub mod policy;
mod prepare;
#[cfg(test)]
mod properties;
mod publish;
mod reload;
mod rollout;
pub mod schedule;
mod stop;
#[cfg(test)]
mod tests;

// The face of the module: files inside `apply` import each other by path,
// never through these, so no file imports its parent.
pub use context::{ApplyContext, ServicePolicy, HOST_OPERATIONS};
pub use gate::{readiness, wait_ready, Readiness};
pub use outcome::{
    ApplyReport, HostOutcome, HostReport, RolloutOutcome, RolloutReport, Step, StepReport,
};
pub use rollout::apply;
pub use stop::Stop;
