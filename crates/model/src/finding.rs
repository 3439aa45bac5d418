//! Preflight findings: machine-readable, stable across runs, each tied to a rule ID.

use serde::{Deserialize, Serialize};

/// How much a finding matters. `Inhibitor` blocks the upgrade.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    schemars::JsonSchema,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Inhibitor,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Inhibitor => "inhibitor",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One preflight finding. `key` is stable: the same site gives the same keys on every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Finding {
    pub key: String,
    pub rule: String,
    pub severity: Severity,
    pub cluster: Option<String>,
    pub node: Option<String>,
    pub message: String,
    pub remedy: String,
}
