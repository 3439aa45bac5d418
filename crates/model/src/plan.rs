//! Plans: the product of a site and its profiles. A plan is a file a user reviews, keeps and
//! applies later; its `input_hash` ties it to the inputs it was made from.

use crate::finding::Finding;
use serde::{Deserialize, Serialize};

/// Version of the JSON layout of plans and reports. Fields may be added, never renamed.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest step a plan holds, in seconds (about 31 years): the planner caps an estimate
/// there, and a plan whose step is longer is refused.
pub const MAX_STEP_S: u64 = 1_000_000_000;

/// The largest moment or total a plan holds, in seconds from its start (a million steps of
/// the longest length): far below `u64::MAX` and `i64::MAX`, so no sum of them overflows.
pub const MAX_PLAN_S: u64 = 1_000_000 * MAX_STEP_S;

/// What kind of work a step is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Something an engineer or driver does.
    #[default]
    Action,
    /// Wait until a condition holds (replication state 2, a log event).
    Gate,
    /// Stop for a person's approval.
    Pause,
    /// A sync point the planner puts between two large sets of steps that an order rule
    /// orders (every step before it ends before any step after it starts), instead of an edge
    /// between every pair: nothing to do, it ends as it starts. Never a profile's step.
    Sync,
}

/// When a step runs relative to the maintenance window.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the window (e.g. 24 hours before): does not count towards its length.
    Prepare,
    /// Ahead of the window, in the site's staging period (or just before the window): work the
    /// profile lets run while the node keeps serving (a step's `stage` rule). Does not count
    /// towards the window's length.
    Staging,
    /// Inside the window.
    #[default]
    Window,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Staging => "staging",
            Phase::Window => "window",
        }
    }

    pub fn is_window(&self) -> bool {
        *self == Phase::Window
    }
}

/// Where a step's planned duration comes from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Estimate {
    /// The profile's estimate (minutes, per-fact additions).
    #[default]
    Profile,
    /// The median of the durations observed in past runs (`ferry plan --estimates-from`).
    Observed,
}

impl Estimate {
    pub fn is_profile(&self) -> bool {
        *self == Estimate::Profile
    }
}

/// What the node's service does while a step runs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    /// No effect on service.
    #[default]
    None,
    /// Serving, with reduced redundancy or capacity.
    Degraded,
    /// Not serving.
    Down,
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Degraded => "degraded",
            Impact::Down => "down",
        }
    }
}

/// Why one step waits for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub rule: String,
    pub note: String,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct PlannedStep {
    /// Stable ID: `cluster/node/action` (or `cluster/action` for cluster-wide steps).
    pub id: String,
    pub cluster: String,
    pub node: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub title: String,
    pub kind: StepKind,
    pub phase: Phase,
    /// Steps that must end before this one starts.
    pub after: Vec<String>,
    /// Rule IDs behind this step and behind the edges into it.
    pub rules: Vec<String>,
    pub start_s: u64,
    pub duration_s: u64,
    /// Where `duration_s` comes from; absent in JSON when it is the profile's estimate.
    #[serde(default, skip_serializing_if = "Estimate::is_profile")]
    pub estimate: Estimate,
    /// With an observed estimate, the spread of the observed durations (low and high factor
    /// around the median) when there were enough of them: the twin draws the step's duration
    /// in it instead of the profile's `duration_spread`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<[f64; 2]>,
    pub impact: Impact,
    pub impact_note: String,
    pub instructions: String,
    pub verify: String,
    pub warning: Option<String>,
    /// The version this step brings its node to (the end of its leg of the version path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What the step does to the world (the profile's effects, with their conditions decided).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<crate::effect::Effect>,
    /// How many times the executor may try the step again after it fails.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// A gate that has not ended after this long fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// The step belongs to the rollback procedure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl PlannedStep {
    pub fn end_s(&self) -> u64 {
        self.start_s.saturating_add(self.duration_s)
    }
}

/// Per cluster: where it goes and how.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct ClusterPlan {
    pub name: String,
    pub profile: String,
    pub from: String,
    pub target: String,
    /// Versions the cluster passes through, from the current to the target.
    pub path: Vec<String>,
    pub upgrade_type: String,
    /// Rule behind the upgrade type.
    pub upgrade_type_rule: String,
    pub strategy: String,
    /// Window-phase span of this cluster's steps.
    pub makespan_s: u64,
    /// The plan stages work of this cluster ahead of the window (the site books a staging
    /// period, or the plan was made with `--stage`): the profile's `staging` conditions hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub staging: bool,
    /// The values of the change a method of procedure records, where the site gives them: the
    /// cluster facts its profile marks `mop = true` (the upgrade ISO's name, its checksum).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<RecordedValue>,
    /// Every node: its address, versions before and after, and the counts to compare after the
    /// upgrade (the devices the profile's twin homes on it, and its own facts marked `mop`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeRecord>,
}

/// A value of the change, named by its fact.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct RecordedValue {
    pub name: String,
    pub description: String,
    pub value: String,
}

/// A node as the method of procedure records it before the change.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub version: String,
    pub target: String,
    /// Values before the upgrade to compare after it (`phones: 1200`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<RecordedValue>,
}

/// A group of steps the rules limit (one at a time, a few at a time, or by capacity).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct LimitGroup {
    pub rule: String,
    pub note: String,
    pub steps: Vec<String>,
    pub max_concurrent: Option<u32>,
    pub capacity: Option<f64>,
    /// With `capacity`: what each member step loads, and on which partition (the server the
    /// load lands on). Partitions start at their `base` load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loads: Vec<Load>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub base: std::collections::BTreeMap<String, f64>,
}

/// The load one step of a capacity group puts on a partition while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Load {
    pub step: String,
    pub partition: String,
    pub weight: f64,
}

/// What one partition of a capacity limit carries along the schedule (a secondary and the
/// devices of its primaries): its peak, and the spans in which it carries other nodes' loads.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Occupancy {
    pub cluster: String,
    pub rule: String,
    /// The partition: the node that takes the loads (the value of the limit's `per_fact`).
    pub partition: String,
    /// What is counted (the limit's `weight_fact`, e.g. `devices`).
    pub what: String,
    /// The limit, and the partition's own load.
    pub max: f64,
    pub base: f64,
    /// The highest load, its own included, and from when to when it lasts first.
    pub peak: f64,
    pub peak_start_s: u64,
    pub peak_end_s: u64,
    /// Every span in which it carries other nodes' loads, in order.
    pub spans: Vec<OccupancySpan>,
    /// The longest such span should not exceed this (seconds), when the limit says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_span_s: Option<u64>,
}

/// A span in which a partition carries other nodes' loads without a break.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct OccupancySpan {
    pub start_s: u64,
    pub end_s: u64,
    /// The highest load in the span, its own included.
    pub peak: f64,
    /// The nodes whose loads it carries in the span, in the order they arrive.
    pub nodes: Vec<String>,
}

/// The batches a `[[procedure.batch]]` rule put a cluster's nodes in (the `balanced`
/// strategy): while one batch is out, every group of `devices` keeps a serving server within
/// capacity, except where `findings` say it cannot.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Batching {
    pub cluster: String,
    pub rule: String,
    pub note: String,
    /// What the batches keep served (the profile's device names, e.g. `phones`).
    pub devices: Vec<String>,
    /// Node names per batch, in the order the batches go.
    pub batches: Vec<Vec<String>>,
    /// In a cluster that passes through intermediate versions: the version of the leg these
    /// batches belong to (none on the last leg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
    /// Whether these are the fewest batches (false: the search ran out of budget and settled
    /// for a first fit).
    pub fewest: bool,
}

/// A reported span of the plan (e.g. the time in which no server collects data).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Measure {
    pub cluster: String,
    pub name: String,
    pub rule: String,
    pub description: String,
    /// From the start of `phase` (absent in JSON: the window).
    pub start_s: u64,
    /// Its length, across phases: from a staging step to a window step it includes the time
    /// between the staging period and the window.
    pub duration_s: u64,
    /// The phase `start_s` is counted in.
    #[serde(default, skip_serializing_if = "Phase::is_window")]
    pub phase: Phase,
}

/// Why a step the profile lets run ahead of the window is (or is not) in the staging phase.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct StageDecision {
    pub step: String,
    /// The rule that lets it run ahead (its profile step's `stage`).
    pub rule: String,
    pub note: String,
    /// Whether it runs ahead of the window.
    pub staged: bool,
    /// Why it stays in the window, when it does: the step it waits for there, or the steps it
    /// goes with (`stage.with`) of which none runs ahead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kept_by: String,
}

/// What running work ahead of the window costs, as the profile says (`[[staging_cost]]`), with
/// the length of the span it names when it names one (a measure).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct StagingCost {
    pub cluster: String,
    pub rule: String,
    pub text: String,
    /// The measure whose length this is, and that length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Plan {
    pub schema_version: u32,
    pub site: String,
    pub strategy: String,
    /// SHA-256 of the site file and every profile it uses.
    pub input_hash: String,
    pub clusters: Vec<ClusterPlan>,
    pub steps: Vec<PlannedStep>,
    pub edges: Vec<Edge>,
    /// Length of the window phase as scheduled.
    pub makespan_s: u64,
    /// Length of the prepare phase as scheduled (work done before the window).
    pub prepare_s: u64,
    /// Length of the staging phase as scheduled (work run ahead of the window while the nodes
    /// keep serving); absent in JSON when nothing is staged.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub staging_s: u64,
    /// The staging period the site books, when it books one: staging step starts are offsets
    /// from its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<crate::site::Window>,
    /// For every step a profile lets run ahead of the window, when the plan stages: whether it
    /// does, under which rule, and what keeps it in the window otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staging: Vec<StageDecision>,
    /// What the staged work costs (the profiles' `[[staging_cost]]`), per cluster that stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staging_costs: Vec<StagingCost>,
    /// No schedule that keeps the rules can be shorter than this.
    pub lower_bound_s: u64,
    /// No plan that keeps the documents' order, gate and limit rules, whatever its strategy
    /// and with staging allowed, has a shorter window than this (the least of the strategies'
    /// lower bounds, staged and not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_lower_bound_s: Option<u64>,
    /// How many times the plan was rehearsed against the twin for its odds (seeds 1 to this,
    /// as `ferry rehearse --runs`); absent when it was not.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub rehearsed_runs: u32,
    /// The window's median and 90th percentile over those rehearsals (nearest rank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_p50_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_p90_s: Option<u64>,
    /// The share of those rehearsals that ended inside the booked window (absent without a
    /// booked window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_probability: Option<f64>,
    /// Every window step one at a time in the documented order.
    pub sequential_s: u64,
    /// Site window length in seconds, when the site books one.
    pub window_s: Option<u64>,
    /// The site's booked window, when it books one: step starts are offsets from its start.
    pub window: Option<crate::site::Window>,
    pub measures: Vec<Measure>,
    pub limits: Vec<LimitGroup>,
    /// Per partition of every capacity limit whose loads stay after their steps: what it
    /// carries along the schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub occupancy: Vec<Occupancy>,
    /// The batches of every `[[procedure.batch]]` rule that applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<Batching>,
    pub findings: Vec<Finding>,
    pub rollback: Vec<PlannedStep>,
    pub rollback_edges: Vec<Edge>,
    /// The rollback procedure's limit groups over `rollback` steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_limits: Vec<LimitGroup>,
    pub rollback_makespan_s: u64,
    /// The point of no return, in seconds from the window's opening: the last moment at which
    /// the whole rollback (`rollback_makespan_s`) begun then still ends inside the booked
    /// window (0 when it is longer than the window). Absent without a booked window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_of_no_return_s: Option<u64>,
    /// A backout per stage of the window: what backing out takes when the change stops after
    /// that stage (the rollback procedure planned for a run that got that far).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backouts: Vec<Backout>,
    /// The change record's own data, as the site gives it (`[site.change]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<crate::site::Change>,
}

/// Backing out after one stage of the window. A stage is the work of one role of one cluster
/// (every window step on its nodes): it ends when the last of them ends.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Backout {
    /// What the stage is, as a person reads it (`after ucm-hq publisher`).
    pub stage: String,
    pub cluster: String,
    pub role: String,
    /// When the stage ends, in seconds from the window's opening.
    pub at_s: u64,
    /// The failed verification of any of these steps (the stage's steps with a verification)
    /// is the trigger to back out.
    pub triggers: Vec<String>,
    /// The rollback steps of this backout, in order, and how long it takes.
    pub steps: Vec<String>,
    pub duration_s: u64,
    /// Whether a backout begun as the stage ends also ends inside the booked window (absent
    /// without a booked window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_in_window: Option<bool>,
}

impl Plan {
    /// Whether some step runs ahead of the window (the staging phase).
    pub fn stages(&self) -> bool {
        self.steps.iter().any(|s| s.phase == Phase::Staging)
    }

    /// When the staging phase starts, in seconds since the Unix epoch: the booked staging
    /// period's start, else (staging without a booked period) just early enough to end as the
    /// window opens. `None` without a booked window.
    pub fn staging_start_epoch_s(&self) -> Option<i64> {
        let w = self.window.as_ref()?;
        Some(match &self.stage {
            Some(s) => s.start_epoch_s,
            None => w.start_epoch_s - self.staging_s as i64,
        })
    }

    /// Each step's position in `steps`, by ID.
    pub fn step_index(&self) -> std::collections::HashMap<&str, usize> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect()
    }
}
