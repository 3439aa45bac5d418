//! Faults to inject into a rehearsal (`ferry rehearse --faults FILE`): what goes wrong, where and
//! when. The file is TOML, one `[[fault]]` table per fault.

use serde::{Deserialize, Serialize};

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The node crashes (stops serving) when the step starts; the step fails.
    Crash,
    /// The step's install fails; the node stays on its version.
    InstallFailure,
    /// The node's replication never gets past `state` (3 out of sync, 4 failed).
    ReplicationStuck,
    /// The node's data link fails; the node itself keeps running.
    LinkFailure,
    /// The step runs `factor` times as long as estimated.
    SlowStep,
    /// An operator changes the configuration when the step starts.
    ConfigChange,
    /// The node's service starts but never reports healthy.
    Unhealthy,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::InstallFailure => "install_failure",
            FaultKind::ReplicationStuck => "replication_stuck",
            FaultKind::LinkFailure => "link_failure",
            FaultKind::SlowStep => "slow_step",
            FaultKind::ConfigChange => "config_change",
            FaultKind::Unhealthy => "unhealthy",
        }
    }
}

/// One fault. It fires when step `step` starts (a step ID, or `*/ACTION` for the first step
/// with that action), or at `at_min` minutes into the run, on node `node` (the step's node when
/// omitted), with `probability` (default 1) in each run of a Monte Carlo rehearsal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub at_min: Option<f64>,
    /// Replication state the node is stuck at (`replication_stuck`, default 4).
    #[serde(default)]
    pub state: Option<u8>,
    /// How many times longer the step runs (`slow_step`, default 3).
    #[serde(default)]
    pub factor: Option<f64>,
    /// A crashed node comes back after this many minutes (default: it stays down).
    #[serde(default)]
    pub recover_min: Option<f64>,
    #[serde(default)]
    pub probability: Option<f64>,
}

/// A faults file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
}
