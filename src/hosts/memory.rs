//! An in-memory engine for fast unit tests of plan and apply logic. It
//! records every mutating call so tests can assert idempotence.
