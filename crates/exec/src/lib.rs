//! `ferry-exec`: carries out a plan. The executor runs the plan's step graph through a
//! `Driver`, several steps at once where the rules allow, writing every step to the journal
//! before it starts and after it ends, so a run survives a crash and no step takes effect twice.

pub mod admission;
pub mod agent_driver;
pub mod compare;
pub mod discover;
pub mod driver;
pub mod environment;
pub mod executor;
pub mod journal;
pub mod manual;
pub mod rehearse;
pub mod rollback;
pub mod ssh_driver;
pub mod twin_driver;
pub mod window;

pub use admission::{run_nodes, NodeRef, RunConflict, RunConflicts};
pub use agent_driver::{random_hex, AgentDriver, AgentOptions, NodeSurvey};
pub use discover::{DiscoverError, Discoverer, FoundNode, NodeReading, ToRead};
pub use driver::{system_now, Driver, DriverError, Inspection, Outcome};
pub use executor::{
    apply, point_of_no_return, resume, validate, window_end, window_opens, Change, ExecError,
    FailurePolicy, Observer, Options, Progress, Report, RollbackScope, OPEN_WINDOW,
    POINT_OF_NO_RETURN,
};
pub use journal::{
    medians, spreads, AdmissionLock, Answer, AnswerGiven, Approval, Event, EventRecord, Journal,
    JournalError, NewRun, RunId, RunInputs, RunKind, RunLock, RunStatus, RunSummary, StepEvent,
    StepState, StepStatus, APPLICATION_ID, DEFAULT_STATE_DIR, JOURNAL_FILE,
};
pub use manual::{parse_answer, Input, ManualDriver};
pub use rehearse::{
    each_seed, monte_carlo, monte_carlo_on, rehearse, sorted_json, MonteCarloReport, Rehearsal,
    RehearsalReport, Rehearse, RehearseError, RehearseReport,
};
pub use rollback::{
    load_inputs, restrict, rollback_plan, run_progress, run_progress_of, upgrade_plan,
    used_profiles, RollbackError,
};
pub use ssh_driver::{ssh_log_key, SshDriver, SshOptions, SSH_STATE};
pub use twin_driver::{run_world, saved_world, world_key, world_root, TwinDriver, TWIN_STATE};
pub use window::WindowRefusal;
