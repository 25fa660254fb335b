//! berth's integration tests, one binary: `cargo test --test integration`.
//!
//! One module per topic. Those under `bed::` run berth against the test bed
//! (three Docker hosts behind sshd, `tests/bed/testbed.sh`); the others
//! (`errors`, `docs`, `layout`, `monitoring`, `packaging`, `secret_cli`,
//! `templates`) need no bed and run in parallel. Pick tests with a filter:
//! `-- <name>` for one test, `-- bed::` for the bed tests, `-- --skip bed::`
//! for the rest.
//!
//! A new test is a plain `#[test]` function in the module of its topic (a
//! new topic is a file here, or under `bed/`, plus its `mod` line). A test
//! that needs hosts goes under `bed/` and begins with
//! `let bed = &Bed::take();`: the first such call in a run brings the bed up
//! (failing every bed test, loudly, when it cannot come up), and the returned
//! turn keeps the other bed tests waiting until this one ends; a run that
//! brought the bed up tears it down at exit unless `BERTH_BED_KEEP=1`.
//! It then works in a project of its own, `let _scope = bed.scope("t-…");`,
//! which cleans the hosts before and after. Helpers used by more than one
//! module go in `support/` (the bed, repos, running berth) or `bed/mod.rs`
//! (bed scenarios). A test may return `Result<(), Failed>` to use `check!`
//! and `?`, or use `assert!`.

#[macro_use]
mod support;

mod bed;
mod docs;
mod errors;
mod layout;
mod monitoring;
mod packaging;
mod secret_cli;
mod templates;
