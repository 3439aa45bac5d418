//! How a step of a run ended, as drivers, the twin and the journal report it; how far a run
//! got, as the planning of its rollback reads it.

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    Done,
    /// The step failed, with the reason.
    Failed(String),
    /// The step was deliberately not carried out (or had nothing to do); steps after it may start.
    Skipped,
}

/// How far a run got, for planning its rollback: every step of its plan with its cluster, the
/// role of its node and how it stands. The rollback procedure's `run` conditions read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    pub steps: Vec<StepProgress>,
}

/// One step of a run, as `RunProgress` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepProgress {
    pub id: String,
    pub cluster: String,
    /// The role of the step's node (`None`: a cluster-wide step).
    pub role: Option<String>,
    pub state: ProgressState,
}

/// Where a step of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressState {
    /// Not started, or started and not ended.
    Open,
    /// Ended done, or skipped.
    Done,
    Failed,
}
