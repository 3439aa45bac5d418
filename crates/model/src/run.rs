//! How a step of a run ended, as drivers, the twin and the journal report it.

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    Done,
    /// The step failed, with the reason.
    Failed(String),
    /// The step was deliberately not carried out (or had nothing to do); steps after it may start.
    Skipped,
}
