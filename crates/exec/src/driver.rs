//! The `Driver` trait: what carries out the steps of a plan (a twin, an operator, ssh, an agent).
//!
//! Contract: a driver's operations are **idempotent, keyed by the run and the step's ID**.
//! Starting a step that is under way or ended done or skipped must not apply it a second time
//! (its end is reported by the next `wait`); starting a step whose last attempt failed begins
//! a new attempt (a retry). `inspect` must report what became of a step the executor started
//! but did not record as ended (after a crash), so that no step takes effect twice and none is
//! skipped.
//!
//! Time: the executor reads the time only through `Driver::now`. A real driver returns the
//! system clock and blocks in `wait`; a simulated one keeps virtual time and advances it inside
//! `wait` to the next step's end (or to the deadline).

use crate::journal::{JournalError, RunId};
use ferry_model::{Facts, PlannedStep};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use ferry_model::Outcome;

/// What became of a step that the journal shows started but not ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(tag = "inspection", content = "outcome", rename_all = "kebab-case")]
pub enum Inspection {
    /// The step never took effect: starting it again is safe.
    NotStarted,
    /// The step is still under way: the executor waits for it.
    Running,
    /// The step ended while nobody recorded it.
    Ended(Outcome),
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
    /// The driver's clock, seconds since the Unix epoch (virtual time for a simulated driver).
    fn now(&self) -> i64;

    /// The run this driver carries out was just recorded, with this number, and nothing of it
    /// has started: a driver that keeps state of its own per run sets it up here.
    fn attach_run(&mut self, _run: RunId) -> Result<(), DriverError> {
        Ok(())
    }

    /// Begins a step. Idempotent per (run, step id): beginning a step that already began or
    /// ended applies nothing again.
    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError>;

    /// Blocks until one started step ends, or until `deadline` (driver clock) passes:
    /// `Ok(None)` at the deadline.
    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError>;

    /// Stops waiting for a started step (a gate past its timeout).
    fn cancel(&mut self, run: RunId, step_id: &str) -> Result<(), DriverError>;

    /// After a crash: what became of a step that the journal shows started but not ended.
    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError>;

    /// Facts the driver observes now, per cluster name (used to choose a rollback procedure).
    fn observe(&mut self) -> Result<BTreeMap<String, Facts>, DriverError> {
        Ok(Default::default())
    }
}

/// The system clock, seconds since the Unix epoch: what a driver that acts in the real world
/// returns from `Driver::now`.
pub fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
