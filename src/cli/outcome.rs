//! What a command did, for `render` and `exit::code`.

use crate::ops;

/// What a command did.
#[derive(Debug)]
pub enum Outcome {
    Validated(ops::Validated),
    Planned(ops::Planned),
    Applied(ops::ApplyOutcome),
    Status(ops::Status),
}
