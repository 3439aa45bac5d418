//! What a step does to the world, in the terms the digital twin simulates: the effects a step
//! template carries (instantiated into every planned step) and the conditions a gate waits for.
//!
//! Effects are generic: they speak of slots, services, devices, HA pairs, links and facts, never
//! of a product. A profile says which effects each of its steps has; the twin carries them out.
//! In TOML an effect is a bare name (`"switch"`) or a table with one key
//! (`{ set_fact = { name = "terminal_services", value = false } }`).

use crate::fact::FactValue;
use crate::profile::Condition;
use serde::{Deserialize, Serialize};

/// One effect of a step. Unless said otherwise an effect acts on the step's node, when the step
/// ends; a node whose step has `impact = "down"` does not serve while the step runs.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// The node's target version goes into its inactive slot; the active version keeps running.
    InstallInactive,
    /// The target version replaces the active one; the old version is kept only as a backup to
    /// restore from (an in-place upgrade). The node's other services wait for `activate_services`.
    InstallInPlace,
    /// The inactive version becomes active. Configuration made on the old side since the install
    /// does not reach the new side.
    Switch,
    /// The node goes back to the version it ran before the run: a switch back when that version
    /// is in the inactive slot, a restore from backup otherwise. Skipped when it already runs it;
    /// fails when it has no copy of it (its inactive slot was removed after the switch).
    Revert,
    /// The inactive slot is removed, and with it the version it holds now: no switching back to
    /// that version. A later install fills the slot, and a switch puts the old active version
    /// there, so a revert after that switch still works.
    RemoveInactive,
    /// The node's service stops when the step starts, and stays stopped until a `start`.
    Stop,
    /// The node's service starts (as backup when its HA partner is active).
    Start,
    /// The node's service starts in upgrade mode (a configuration server taking over a running
    /// pair's database); it reports ready after its initialisation.
    StartUpgradeMode,
    /// The node restarts: down while the step runs, serving after it (replication set up anew).
    Restart,
    /// The services of the nodes of these roles on this node's host stop when the step starts.
    StopOnHost(Vec<String>),
    /// The services of the nodes of these roles on this node's host start when the step ends.
    StartOnHost(Vec<String>),
    /// A node fact takes this value.
    SetFact { name: String, value: FactValue },
    /// Every item of list fact `from` is added to list fact `to`.
    CopyItems { from: String, to: String },
    /// The trailing number of a string fact goes up by one (`CCM0300` becomes `CCM0301`).
    IncrementFact(String),
    /// Service parameters in this list fact take their values for the new version.
    ClampParameters(String),
    /// Services left inactive by an in-place install are activated.
    ActivateServices,
    /// The cluster's configuration freeze starts (`true`) or ends (`false`).
    Freeze(bool),
    /// The cluster's configuration store turns read-only (`true`) or writable again (`false`).
    ReadOnly(bool),
    /// A controller option is set to the number of seconds in a cluster fact (or the default).
    SetOption {
        name: String,
        seconds_fact: String,
        #[serde(default)]
        default_s: Option<f64>,
    },
    /// A controller option is deleted.
    DeleteOption(String),
    /// Whatever depends on the named dependency's fact is pointed at its current value.
    Repoint(String),
    /// The node's configuration is copied aside, tagged with the step and the time (a backup of
    /// its administration data).
    Snapshot,
    /// The node's configuration is put back from its last `snapshot` (a backup migrated back
    /// onto it): configuration changes made on it since that snapshot are lost.
    RestoreSnapshot,
    /// The node's devices register to their backup server now, and stay there until a
    /// `registered` gate on this node brings them home.
    FailOverDevices,
    /// The node is its host's agent and is disconnected from the controller while the step runs.
    AgentDown,
    /// Every data link of the cluster is busied out.
    BusyOutLinks,
    /// Data links come up to the servers of these roles (every server when empty).
    ReleaseLinks {
        #[serde(default)]
        roles: Vec<String>,
    },
    /// Administration of the node is restricted to one user (`true`) or open again (`false`).
    SingleUser(bool),
    /// The node's HA pair is set up: roles assigned, heartbeat running.
    SetupRoles,
    /// The node's HA pair exchanges roles.
    ReverseRoles,
    /// The step fails when `test` does not hold on the node as the twin sees it when the step
    /// starts (e.g. a COP file missing on the node).
    Require {
        rule: String,
        /// Boxed, like `If`'s condition, so that an effect stays small: every planned step
        /// carries its effects.
        test: Box<Condition>,
        message: String,
    },
    /// A configuration change an operator makes while the step runs (or as it starts) makes the
    /// step fail, under this rule: the upgrade it carries out breaks. A change refused because
    /// the configuration is read-only changes nothing and fails nothing.
    FailsOnConfigChange(String),
    /// The step fails unless the node's inactive slot holds its target version.
    ExpectInactiveTarget,
    /// The step fails unless the node's active version is its target.
    ExpectActiveTarget,
    /// A gate: the step ends once this holds (or fails at its timeout).
    Wait(Wait),
    /// Effects that apply only where a condition holds, decided when the plan is made.
    If {
        when: Box<Condition>,
        then: Vec<Effect>,
    },
}

/// What a gate waits for.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Wait {
    /// Every node of these roles reports replication state 2 (good).
    Replication(Vec<String>),
    /// The node's own devices are registered to it again.
    Registered,
    /// The node has logged one of these events since it last started.
    Event(Vec<String>),
    /// The node collects data from every one of its data sources.
    Collecting,
    /// The next interval archive has completed.
    IntervalArchived,
    /// The node serves and reports healthy.
    Healthy,
    /// Every node of the cluster serves.
    AllServing,
    /// The HA pair of these roles has an active member on another host than this node's.
    SwitchedOver(Vec<String>),
    /// No client session is left on the node, and its own clients are connected elsewhere.
    ClientsMoved,
}

impl Effect {
    /// Short name for messages and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Effect::InstallInactive => "install_inactive",
            Effect::InstallInPlace => "install_in_place",
            Effect::Switch => "switch",
            Effect::Revert => "revert",
            Effect::RemoveInactive => "remove_inactive",
            Effect::Stop => "stop",
            Effect::Start => "start",
            Effect::StartUpgradeMode => "start_upgrade_mode",
            Effect::Restart => "restart",
            Effect::StopOnHost(_) => "stop_on_host",
            Effect::StartOnHost(_) => "start_on_host",
            Effect::SetFact { .. } => "set_fact",
            Effect::CopyItems { .. } => "copy_items",
            Effect::IncrementFact(_) => "increment_fact",
            Effect::ClampParameters(_) => "clamp_parameters",
            Effect::ActivateServices => "activate_services",
            Effect::Freeze(_) => "freeze",
            Effect::ReadOnly(_) => "read_only",
            Effect::SetOption { .. } => "set_option",
            Effect::DeleteOption(_) => "delete_option",
            Effect::Repoint(_) => "repoint",
            Effect::Snapshot => "snapshot",
            Effect::RestoreSnapshot => "restore_snapshot",
            Effect::FailOverDevices => "fail_over_devices",
            Effect::AgentDown => "agent_down",
            Effect::BusyOutLinks => "busy_out_links",
            Effect::ReleaseLinks { .. } => "release_links",
            Effect::SingleUser(_) => "single_user",
            Effect::SetupRoles => "setup_roles",
            Effect::ReverseRoles => "reverse_roles",
            Effect::Require { .. } => "require",
            Effect::FailsOnConfigChange(_) => "fails_on_config_change",
            Effect::ExpectInactiveTarget => "expect_inactive_target",
            Effect::ExpectActiveTarget => "expect_active_target",
            Effect::Wait(_) => "wait",
            Effect::If { .. } => "if",
        }
    }
}
