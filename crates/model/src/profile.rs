//! Profiles: how one product must be upgraded, as data.
//!
//! A profile names the product's roles, its version graph, the per-node procedure, the ordering,
//! concurrency and capacity rules between steps, preflight checks and the rollback procedure.
//! Every rule carries the ID of the vendor rule it encodes. The engine knows no product; it only
//! reads this. The on-disk format is documented in `docs/profiles.md`.

use crate::fact::FactValue;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub profile: ProfileMeta,
    #[serde(default, rename = "role")]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub versions: VersionRules,
    #[serde(default, rename = "upgrade_type")]
    pub upgrade_types: Vec<UpgradeTypeRule>,
    #[serde(default, rename = "fact")]
    pub facts: Vec<FactSpec>,
    #[serde(default)]
    pub procedure: Procedure,
    #[serde(default)]
    pub rollback: Procedure,
    #[serde(default, rename = "check")]
    pub checks: Vec<Check>,
    #[serde(default, rename = "measure")]
    pub measures: Vec<MeasureRule>,
    /// What running work ahead of the window costs (`[[staging_cost]]`): stated by every plan
    /// that stages work of a cluster of this profile.
    #[serde(default, rename = "staging_cost")]
    pub staging_costs: Vec<StagingCostRule>,
    /// How the digital twin simulates this product (`[twin]`).
    #[serde(default)]
    pub twin: crate::twin::TwinSpec,
    /// How the ssh driver reads nodes (`[ssh]`: failure patterns and probes).
    #[serde(default, skip_serializing_if = "crate::ssh::SshSpec::is_empty")]
    pub ssh: crate::ssh::SshSpec,
    /// How `ferry discover` and `ferry check --ssh` read the cluster from its nodes' CLI.
    #[serde(
        default,
        skip_serializing_if = "crate::discover::DiscoverSpec::is_empty"
    )]
    pub discover: crate::discover::DiscoverSpec,
}

impl Profile {
    /// The names of the profile's roles, in the profile's order (for messages that list them).
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.name.as_str()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMeta {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Roles whose versions are the cluster's version (its `from` and version path), when the
    /// cluster mixes products with their own numbering. Empty: every role.
    #[serde(default)]
    pub version_roles: Vec<String>,
    /// Strategies this profile offers besides `fastest` and `one-at-a-time` (which always
    /// exist): its own, or the shared ones its rules tell apart (`SHARED_STRATEGIES`).
    #[serde(default)]
    pub strategies: Vec<String>,
    /// Strategy names this profile no longer offers, and what plans them now: a site or a
    /// command line that still says one is planned with its `now`, and told so.
    #[serde(default, rename = "renamed_strategy")]
    pub renamed_strategies: Vec<RenamedStrategy>,
}

/// Strategies every profile understands.
pub const BASE_STRATEGIES: [&str; 2] = ["fastest", "one-at-a-time"];

/// Strategies with one meaning across profiles, which a profile offers by listing them in
/// `strategies` when its rules tell them apart: `documented`, the documents' own task order
/// without their optional parallel steps; `balanced`, the servers that serve devices taken out
/// in the fewest batches that keep every device group served within capacity
/// (`[[procedure.batch]]`). A cluster whose profile does not offer one is planned with
/// `fastest`, and the plan says so.
pub const SHARED_STRATEGIES: [&str; 2] = ["documented", "balanced"];

/// A strategy name a profile no longer offers (`[[profile.renamed_strategy]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenamedStrategy {
    /// The old name.
    pub name: String,
    /// The strategy that plans what it did.
    pub now: String,
    /// Why, in words, for the message.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub title: String,
    /// Fewest nodes of this role a cluster may have.
    #[serde(default)]
    pub min: u32,
    /// Most nodes of this role a cluster may have (`None`: no limit).
    #[serde(default)]
    pub max: Option<u32>,
    /// Rule ID behind `min`/`max`, if any.
    #[serde(default)]
    pub rule: Option<String>,
    /// The role's nodes run builds of their own, not the cluster's `target`: a site must give
    /// their target (`targets.ROLE` on the cluster, or `target` on the node).
    #[serde(default)]
    pub own_target: bool,
}

/// How versions are read and which upgrades are supported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRules {
    /// How many leading numbers make the "release" (CMS: 2, `R19.1`).
    #[serde(default = "default_release_numbers")]
    pub release_numbers: usize,
    /// Rule ID for the supported-path check (a source outside every edge is an inhibitor).
    #[serde(default)]
    pub rule: Option<String>,
    /// Direct upgrades: `from` and `to` are version patterns (`3.2`, `3.3`, `12.x`, `*`).
    #[serde(default, rename = "edge")]
    pub edges: Vec<VersionEdge>,
    /// Mandatory intermediate hops: a source matching `from` must first go to `via`.
    #[serde(default, rename = "hop")]
    pub hops: Vec<VersionHop>,
    /// The embedded operating system's major version, by product version pattern.
    #[serde(default, rename = "os")]
    pub os: Vec<OsRelease>,
    /// Letter tags of the vendor's marketing names for releases (`su` in `14SU3`): a site
    /// version carrying one is refused, with `build_form`, unless `aliases` maps it.
    #[serde(default)]
    pub marketing_tags: Vec<String>,
    /// What a build number looks like (`14.0.1.13900-155`), shown when a marketing name is refused.
    #[serde(default)]
    pub build_form: Option<String>,
    /// Marketing names the profile maps to their build numbers (`"14SU3" = "14.0.1.13900-155"`).
    #[serde(default)]
    pub aliases: std::collections::BTreeMap<String, String>,
}

impl VersionRules {
    /// Whether `text` is written in the vendor's marketing notation (a tag of `marketing_tags`).
    pub fn is_marketing(&self, text: &str) -> bool {
        crate::VendorVersion::parse(text).is_ok_and(|v| {
            v.tokens().iter().any(|t| {
                matches!(t, crate::version::Token::Tag(tag) if self.marketing_tags.iter().any(|m| m.eq_ignore_ascii_case(tag)))
            })
        })
    }

    /// The build number a marketing name maps to (`aliases`, the name's case ignored).
    pub fn alias(&self, text: &str) -> Option<&str> {
        let text = text.trim();
        self.aliases
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, build)| build.as_str())
    }
}

fn default_release_numbers() -> usize {
    2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEdge {
    pub from: Vec<String>,
    pub to: String,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionHop {
    pub from: Vec<String>,
    pub to: String,
    pub via: String,
    pub rule: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsRelease {
    pub versions: String,
    pub os_major: u32,
}

/// Picks the upgrade type. The first rule whose `when` holds wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeTypeRule {
    pub name: String,
    pub rule: String,
    #[serde(default)]
    pub when: Option<Condition>,
    #[serde(default)]
    pub description: String,
}

/// The type a fact must have in a site file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FactType,
    /// For a string fact: the values a site may give (empty: any string).
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// The method of procedure records this fact's value where the site gives it: a cluster's
    /// among the values of the change (the upgrade ISO, its checksum), a node's among the
    /// values to compare after the upgrade.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mop: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactType {
    Bool,
    Integer,
    Number,
    String,
    List,
    Table,
    /// An RFC 3339 date-time, written as a TOML datetime or a string.
    Datetime,
}

impl FactType {
    pub fn accepts(self, v: &FactValue) -> bool {
        matches!(
            (self, v),
            (FactType::Bool, FactValue::Bool(_))
                | (FactType::Integer, FactValue::Int(_))
                | (FactType::Number, FactValue::Int(_) | FactValue::Float(_))
                | (FactType::String, FactValue::String(_))
                | (FactType::Datetime, FactValue::String(_))
                | (FactType::List, FactValue::List(_))
                | (FactType::Table, FactValue::Table(_))
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FactType::Bool => "bool",
            FactType::Integer => "integer",
            FactType::Number => "number",
            FactType::String => "string",
            FactType::List => "list",
            FactType::Table => "table",
            FactType::Datetime => "datetime",
        }
    }
}

/// A set of steps and the rules that order them. Used for the upgrade and for the rollback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    #[serde(default, rename = "step")]
    pub steps: Vec<StepTemplate>,
    #[serde(default, rename = "order")]
    pub orders: Vec<OrderRule>,
    #[serde(default, rename = "sequence")]
    pub sequences: Vec<SequenceRule>,
    #[serde(default, rename = "limit")]
    pub limits: Vec<LimitRule>,
    #[serde(default, rename = "batch")]
    pub batches: Vec<BatchRule>,
}

/// Which nodes a node-scope step runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeFilter {
    /// Only nodes whose version is below their target (the default).
    #[default]
    Upgrading,
    /// Every node of the step's roles, including ones already on target.
    All,
    /// Only nodes already on their target (e.g. a reboot of nodes that are not upgraded).
    Unchanged,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One instance per matching node.
    #[default]
    Node,
    /// One instance per cluster.
    Cluster,
}

/// One step of the procedure, instantiated per node (or once per cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTemplate {
    /// Action name, unique within the procedure (`install-inactive`, `switch-version`).
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub scope: Scope,
    /// Roles whose nodes run this step (node scope). Empty: every role.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub nodes: NodeFilter,
    #[serde(default)]
    pub when: Option<Condition>,
    #[serde(default)]
    pub kind: crate::plan::StepKind,
    #[serde(default)]
    pub phase: crate::plan::Phase,
    /// Default duration in minutes.
    pub minutes: f64,
    /// Extra duration that grows with a numeric fact of the node (or cluster).
    #[serde(default)]
    pub per_fact: Option<PerFact>,
    /// Whether the node serves while this runs.
    #[serde(default)]
    pub impact: crate::plan::Impact,
    /// What the service loses while this runs, in words (impact annotations of behaviour rules).
    #[serde(default)]
    pub impact_note: String,
    /// Rule IDs this step carries out or is annotated with.
    #[serde(default)]
    pub rules: Vec<String>,
    /// What the engineer does.
    #[serde(default)]
    pub instructions: String,
    /// How the engineer confirms it worked.
    #[serde(default)]
    pub verify: String,
    /// A warning that travels with the step into the plan (e.g. "revert impossible afterwards").
    #[serde(default)]
    pub warning: Option<String>,
    /// Whether this step starts after the node's previous step (default true). False for steps
    /// that are placed only by order rules.
    #[serde(default = "yes")]
    pub follows_previous: bool,
    /// What the step does to the world, for the digital twin (see `ferry_model::effect`).
    #[serde(default)]
    pub effects: Vec<crate::effect::Effect>,
    /// How many times the executor may try the step again after it fails.
    #[serde(default)]
    pub retries: u32,
    /// A gate fails when its condition does not hold after this many minutes (default: the
    /// twin's `gate_timeout_factor` times the estimate).
    #[serde(default)]
    pub timeout_minutes: Option<f64>,
    /// How the ssh driver carries the step out (commands, verification, waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<crate::ssh::StepSsh>,
    /// The step may run ahead of the window, in the staging phase, because its node keeps
    /// serving while it runs: the rule that says so. Only when the plan stages, and only when
    /// every step it waits for runs ahead too (or before the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageRule>,
}

/// Why and when a step may run ahead of the window (`stage = { rule = "UCM-02" }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRule {
    /// The rule that lets the step run while the node keeps serving.
    pub rule: String,
    /// Only where this holds (node context for node-scope steps).
    #[serde(default)]
    pub when: Option<Condition>,
    /// Runs ahead only together with one of these steps (of its cluster): a configuration
    /// freeze that starts with the first install goes ahead only when an install does.
    #[serde(default)]
    pub with: Vec<String>,
    /// Why, in words, for `--explain`.
    #[serde(default)]
    pub note: String,
}

/// A cost of running work ahead of the window, stated by a plan that stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingCostRule {
    pub rule: String,
    /// What it costs, in words.
    pub text: String,
    /// A `[[measure]]` of the profile whose length the plan states with it (e.g. the freeze).
    #[serde(default)]
    pub measure: Option<String>,
    /// Only where this holds.
    #[serde(default)]
    pub when: Option<Condition>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerFact {
    pub fact: String,
    /// Add `minutes` for every `per` units of the fact.
    pub per: f64,
    pub minutes: f64,
}

/// Selects step instances: a step id (or several) on nodes of some roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSelector {
    pub step: Vec<String>,
    /// Roles the step's node must have. Empty: any (and cluster-scope steps).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Every selected `before` instance ends before any selected `then` instance starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRule {
    pub rule: String,
    pub before: StepSelector,
    pub then: StepSelector,
    #[serde(default)]
    pub when: Option<Condition>,
    /// Why, in words, for `--explain`.
    #[serde(default)]
    pub note: String,
    /// The order gives way to a capacity limit where the two cannot both be kept.
    #[serde(default)]
    pub yields_to: Option<YieldTo>,
}

/// An order that gives way to the capacity limit of rule `rule` (a `[[procedure.limit]]` with
/// `capacity`): on a partition that cannot carry the loads of all its nodes at once, a node's
/// `before` steps no longer hold back the `then` steps of the other nodes, so that their loads
/// can move onto it in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YieldTo {
    pub rule: String,
    /// What giving way costs, in words: reported with the partitions where it happens.
    #[serde(default)]
    pub note: String,
}

/// Nodes pass through a block of steps one node at a time, in role order then site order:
/// the block of each node starts after the block of the node before it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceRule {
    pub rule: String,
    /// Role order. Nodes of one role go in the order the site lists them.
    pub roles: Vec<String>,
    /// The steps that make a node's block; the block runs from the first of these on the node
    /// to the last.
    pub steps: Vec<String>,
    #[serde(default)]
    pub when: Option<Condition>,
    #[serde(default)]
    pub note: String,
}

/// Nodes whose block of steps takes them out of service go in batches: the fewest batches such
/// that, while one batch is out, every group of the named devices keeps a serving server and no
/// server carries more than its capacity (`ferry_model::redundancy`). Each batch's blocks start
/// once every block of the batch before has ended; within a batch the other rules still apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRule {
    pub rule: String,
    /// Nodes of these roles are batched (the upgrading ones with a block).
    pub roles: Vec<String>,
    /// The steps that make a node's block, from the first on the node to the last: the block
    /// should end once the node serves again (a gate on its devices, say).
    pub steps: Vec<String>,
    /// The `[[twin.devices]]` (by name) whose groups every batch must keep served.
    pub devices: Vec<String>,
    #[serde(default)]
    pub when: Option<Condition>,
    #[serde(default)]
    pub note: String,
}

/// At most `max_concurrent` selected steps at once, and (with `capacity`) a weighted limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRule {
    pub rule: String,
    pub steps: StepSelector,
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    /// With `max_concurrent`: the limit applies separately to each value of this fact
    /// (e.g. `host`: at most N steps at a time on each host).
    #[serde(default)]
    pub per_fact: Option<String>,
    #[serde(default)]
    pub capacity: Option<Capacity>,
    #[serde(default)]
    pub when: Option<Condition>,
    #[serde(default)]
    pub note: String,
}

/// A weighted limit: the running steps' nodes' `weight_fact` summed per value of `per_fact`
/// (plus the weight of the node that value names, when `include_named_node`) stays at or under `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub weight_fact: String,
    pub max: f64,
    #[serde(default)]
    pub per_fact: Option<String>,
    #[serde(default)]
    pub include_named_node: bool,
    /// How a plan or a rehearsal over the limit is reported (default: a warning).
    #[serde(default = "warning")]
    pub severity: crate::Severity,
    /// The load stays on its partition after some steps end, until a later step.
    #[serde(default)]
    pub hold: Option<CapacityHold>,
}

fn warning() -> crate::Severity {
    crate::Severity::Warning
}

/// A load held on its partition beyond the step that put it there (devices that failed over
/// stay on the backup until their server is back): from the start of a `from` step on a node
/// until the end of the first `until` step on the same node after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityHold {
    /// Steps (of the limit's) whose start puts the node's load on its partition to stay.
    pub from: Vec<String>,
    /// Steps whose end takes the node's load back off its partition.
    pub until: Vec<String>,
    /// The longest a partition should carry other nodes' loads without a break, in hours;
    /// a plan that keeps one longer carries a warning.
    #[serde(default)]
    pub max_hours: Option<f64>,
    /// A number fact of the cluster that replaces `max_hours` for a site.
    #[serde(default)]
    pub max_hours_fact: Option<String>,
}

/// A span of the plan whose length the plan reports (e.g. the time no server collects data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureRule {
    pub name: String,
    pub rule: String,
    /// From the start of the earliest instance of this step...
    pub from_step: String,
    /// ...to the end of the latest instance of this step.
    pub to_step: String,
    #[serde(default)]
    pub description: String,
}

/// A condition over the cluster being planned (and, for node-scope uses, the node).
///
/// Written in TOML as an inline table with one key, e.g. `{ upgrade_type = ["refresh"] }` or
/// `{ all = [ { fact = { name = "devices", gt = 5000 } }, { roles = ["primary"] } ] }`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// The cluster's upgrade type is one of these.
    UpgradeType(Vec<String>),
    /// The plan's strategy is one of these.
    Strategy(Vec<String>),
    /// At least one node of these roles is upgrading.
    Upgrading(Vec<String>),
    /// The node has one of these roles (node context only).
    Roles(Vec<String>),
    /// A test on a fact of the node (falling back to the cluster's facts).
    Fact(FactTest),
    /// A test on a fact of the cluster only.
    ClusterFact(FactTest),
    /// A version test on the nodes of some roles (all of them must pass).
    Version(VersionTest),
    /// Some node of `roles` (any role when empty) satisfies `test` (evaluated in that node's context).
    AnyNode(NodeTest),
    /// Whether this is (true) or is not (false) the first leg of a path through intermediate
    /// versions; a direct upgrade has one leg, both first and last.
    FirstLeg(bool),
    /// Whether this is (true) or is not (false) the last leg.
    LastLeg(bool),
    /// What the run being rolled back did: see `RunTest`. Only a rollback planned after a run
    /// knows; in a plan made before any run it holds, so that the plan's rollback section lists
    /// every step a rollback may need.
    Run(RunTest),
    /// Whether (true) or not (false) the plan stages work ahead of the window (the site books a
    /// staging period, or the plan is made with `--stage`).
    Staging(bool),
}

/// A test on the run being rolled back: its steps on the nodes of `roles` (every step of the
/// cluster when empty).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunTest {
    #[serde(default)]
    pub roles: Vec<String>,
    pub steps: RunSteps,
}

/// What `RunTest` asks of the steps it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunSteps {
    /// There is at least one, and every one ended done (or skipped).
    Done,
    /// One of them failed.
    Failed,
}

/// A condition evaluated on the nodes of some roles.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTest {
    #[serde(default)]
    pub roles: Vec<String>,
    pub test: Box<Condition>,
}

/// Tests on one fact. Every test given must hold. A missing fact fails every test but `missing`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactTest {
    pub name: String,
    #[serde(default)]
    pub eq: Option<FactValue>,
    #[serde(default)]
    pub ne: Option<FactValue>,
    #[serde(default)]
    pub gt: Option<f64>,
    #[serde(default)]
    pub ge: Option<f64>,
    #[serde(default)]
    pub lt: Option<f64>,
    #[serde(default)]
    pub le: Option<f64>,
    /// The number is below the number of this other fact (of the node, else of the cluster);
    /// fails when either is missing or not a number.
    #[serde(default)]
    pub lt_fact: Option<String>,
    /// The value is one of these.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<FactValue>>,
    /// The value is none of these.
    #[serde(default)]
    pub not_in: Option<Vec<FactValue>>,
    /// A list fact has an item containing this text (or a string fact contains it).
    #[serde(default)]
    pub contains: Option<String>,
    /// A list fact has no item containing this text (or a string fact does not contain it).
    #[serde(default)]
    pub not_contains: Option<String>,
    /// The list has more than this many items.
    #[serde(default)]
    pub len_gt: Option<usize>,
    /// The fact, read as a vendor version, is below this one.
    #[serde(default)]
    pub version_lt: Option<String>,
    /// The fact, read as a vendor version, matches none of these patterns.
    #[serde(default)]
    pub version_not_in: Option<Vec<String>>,
    /// The fact, read as a vendor version, matches one of these patterns.
    #[serde(default)]
    pub version_in: Option<Vec<String>>,
    /// True: the fact is absent. False: the fact is present.
    #[serde(default)]
    pub missing: Option<bool>,
    /// A list fact has an item passing this test; `name` names the field of table items
    /// (empty: the item itself).
    #[serde(default)]
    pub any_item: Option<Box<FactTest>>,
}

/// Which version of a node a test reads.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VersionSide {
    /// The version the node runs now.
    #[default]
    Current,
    /// The version the node must reach.
    Target,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionTest {
    /// Roles whose nodes are tested; empty means the node in context, else every node.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub side: VersionSide,
    /// Matches one of these patterns.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<String>>,
    /// Below this version.
    #[serde(default)]
    pub lt: Option<String>,
    /// At or above this version.
    #[serde(default)]
    pub ge: Option<String>,
    /// Current and target share their first N numbers (an MR/ES update when N = 3).
    #[serde(default)]
    pub same_prefix: Option<usize>,
    /// Current and target differ within their first N numbers.
    #[serde(default)]
    pub differs_within: Option<usize>,
    /// The embedded OS major version changes between current and target.
    #[serde(default)]
    pub os_major_changes: Option<bool>,
    /// The node is below its target (true) or already on it (false).
    #[serde(default)]
    pub upgrading: Option<bool>,
}

/// A preflight check: `test` says what to look for; `severity`, `message` and `remedy` say what to report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Stable name, part of every finding's key.
    pub id: String,
    pub rule: String,
    pub severity: crate::finding::Severity,
    pub test: CheckTest,
    /// Only check clusters where this holds.
    #[serde(default)]
    pub when: Option<Condition>,
    /// Text of the finding. `{node}`, `{cluster}`, `{role}`, `{version}`, `{target}`,
    /// `{fact.NAME}`, `{next.NAME}` (the fact with its trailing number incremented) and the
    /// test's own fields (`{detail}`) are filled in.
    pub message: String,
    #[serde(default)]
    pub remedy: String,
}

/// What a check looks for. Written as `test.node = { ... }`, `test.max_age = { ... }`, and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckTest {
    /// A finding for every node where the condition holds.
    Node(Condition),
    /// One finding for the cluster when the condition holds.
    Cluster(Condition),
    /// Nodes of `roles` must end on versions whose first `numbers` numbers are equal
    /// (`numbers` absent: the whole version). With `with_roles`, each end version of `roles`
    /// must match the end version of every node of `with_roles` instead.
    VersionsMatch {
        roles: Vec<String>,
        #[serde(default)]
        numbers: Option<usize>,
        #[serde(default)]
        with_roles: Vec<String>,
    },
    /// The string items of a list fact must be unique across every cluster of the site.
    UniqueAcrossSite { fact: String },
    /// Service parameters the upgrade will change: the fact is a list of tables
    /// `{ name, value, min, max, suggested, new_suggested }`; one finding per parameter that changes.
    ClampedParameters { fact: String },
    /// The estimate of `step` on a node must not exceed the node's (or cluster's) fact, in seconds.
    StepWithinFact { step: String, fact: String },
    /// The cluster's scheduled window must fit in the site's maintenance window.
    FitsWindow {},
    /// Nodes of `roles` must have equal values of `fact` (a node without it counts as differing).
    FactsMatch { fact: String, roles: Vec<String> },
    /// A datetime fact must lie within `hours` before the site's window start.
    MaxAge {
        fact: String,
        hours: f64,
        #[serde(default)]
        roles: Vec<String>,
    },
}
