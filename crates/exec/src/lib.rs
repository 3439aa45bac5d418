//! `ferry-exec`: carries out a plan. The executor runs the plan's step graph through a
//! `Driver`, writing every step to the journal before it starts and after it ends, so a run
//! survives a crash and no step takes effect twice.

pub mod driver;
pub mod executor;
pub mod journal;
pub mod manual;

pub use driver::{Driver, DriverError, Outcome};
pub use executor::{
    apply, next_batch, resume, validate, window_end, Clock, ExecError, FailurePolicy, Options,
    Report, SystemClock,
};
pub use journal::{
    Answer, Event, EventRecord, Journal, JournalError, RunId, RunStatus, RunSummary, StepState,
    StepStatus, DEFAULT_STATE_DIR, JOURNAL_FILE,
};
pub use manual::{parse_answer, Input, ManualDriver};
