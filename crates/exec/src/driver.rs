//! The `Driver` trait: what carries out one step of a plan (a twin, an operator, ssh, an agent).
//!
//! Contract: a driver's operations are **idempotent, keyed by the step's ID** within a run.
//! Running a step that already took effect must not apply it a second time, and `inspect` must
//! report what happened to a step the executor started but did not record as ended (after a
//! crash), so that no step takes effect twice and none is skipped.

use crate::journal::{JournalError, RunId};
use ferry_model::PlannedStep;
use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    Done,
    /// The step failed, with the reason.
    Failed(String),
    /// The step was deliberately not carried out; steps after it may start.
    Skipped,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("input/output: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer for step `{step}` within {waited_s} s")]
    Timeout { step: String, waited_s: u64 },
    #[error("the operator's input ended before step `{step}` was answered")]
    InputClosed { step: String },
    #[error("{0}")]
    Other(String),
}

/// Carries out steps. See the module documentation for the idempotency contract.
pub trait Driver {
    /// Carries out `step` of run `run` and reports how it ended. An `Err` means the outcome is
    /// unknown: the executor leaves the step recorded as started and stops, and a later resume
    /// asks `inspect` about it.
    fn run(&mut self, run: RunId, step: &PlannedStep) -> Result<Outcome, DriverError>;

    /// What happened to a step that was started but not recorded as ended. `None` means the
    /// step has not taken effect, so running it again is safe.
    fn inspect(&mut self, run: RunId, step_id: &str) -> Result<Option<Outcome>, DriverError>;
}
