//! The `[twin]` section of a profile: which generic behaviours the digital twin composes for the
//! product, and their parameters (times, capacities, event codes), each with the rule behind it.
//!
//! Times are minutes unless a name says seconds. A `[low, high]` pair is a range the twin draws
//! from with the run's seed.

use crate::profile::{Condition, PerFact};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinSpec {
    /// Actual step durations are drawn between `low × estimate` and `high × estimate`, the
    /// estimate being the median: half the draws below it, half above.
    #[serde(default = "default_spread")]
    pub duration_spread: [f64; 2],
    /// Gates fail when their condition does not hold after this many times their estimate.
    #[serde(default = "default_gate_timeout")]
    pub gate_timeout_factor: f64,
    /// Roles of the node whose active side holds the cluster's configuration (a change made
    /// there is lost when that side stops being active).
    #[serde(default)]
    pub config_master: Vec<String>,
    /// Rule behind the configuration freeze: a change made during it is a violation.
    #[serde(default)]
    pub freeze_rule: Option<String>,
    /// Rule behind configuration lost on switch or revert, or to a `restore_snapshot`.
    #[serde(default)]
    pub config_rule: Option<String>,
    /// Node fact naming the host a node runs on (nodes on one host share its agent).
    #[serde(default)]
    pub host_fact: Option<String>,
    /// Nodes of these roles do not exist before a step installs them (a new server).
    #[serde(default)]
    pub absent_roles: Vec<String>,
    #[serde(default, rename = "replication")]
    pub replication: Vec<ReplicationSpec>,
    #[serde(default, rename = "devices")]
    pub devices: Vec<DeviceSpec>,
    #[serde(default, rename = "ha_pair")]
    pub ha_pairs: Vec<HaPairSpec>,
    #[serde(default)]
    pub controller: Option<ControllerSpec>,
    #[serde(default)]
    pub config_store: Option<ConfigStoreSpec>,
    #[serde(default)]
    pub collector: Option<CollectorSpec>,
    #[serde(default, rename = "dependency")]
    pub dependencies: Vec<DependencySpec>,
    #[serde(default)]
    pub user_changes: Option<UserChangesSpec>,
    #[serde(default)]
    pub services: Option<ServicesSpec>,
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// Facts the twin reports about the cluster's state (read by the rollback's procedure choice).
    #[serde(default, rename = "observe")]
    pub observe: Vec<ObserveSpec>,
}

impl Default for TwinSpec {
    fn default() -> Self {
        TwinSpec {
            duration_spread: default_spread(),
            gate_timeout_factor: default_gate_timeout(),
            config_master: Vec::new(),
            freeze_rule: None,
            config_rule: None,
            host_fact: None,
            absent_roles: Vec::new(),
            replication: Vec::new(),
            devices: Vec::new(),
            ha_pairs: Vec::new(),
            controller: None,
            config_store: None,
            collector: None,
            dependencies: Vec::new(),
            user_changes: None,
            services: None,
            health: None,
            observe: Vec::new(),
        }
    }
}

fn default_spread() -> [f64; 2] {
    [0.9, 1.25]
}

fn default_gate_timeout() -> f64 {
    4.0
}

/// A replicated database: a master and the nodes that replicate from it, with states
/// 0 initializing, 1 setup running, 2 good, 3 out of sync, 4 failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSpec {
    pub name: String,
    pub rule: String,
    /// Every node of these roles takes part.
    pub roles: Vec<String>,
    /// The role of the database master.
    pub master: String,
    /// From a restart to state 1.
    #[serde(default = "default_setup")]
    pub setup_min: [f64; 2],
    /// From state 1 to state 2, when the node runs the master's version.
    pub converge_min: [f64; 2],
    /// Extra convergence time with a numeric cluster fact (a large database).
    #[serde(default)]
    pub per_fact: Option<PerFact>,
    /// A node fact holding the state before the run (default 2).
    #[serde(default)]
    pub state_fact: Option<String>,
    /// Services on nodes other than the master do not start until their state is 2.
    #[serde(default)]
    pub services_wait: bool,
}

fn default_setup() -> [f64; 2] {
    [1.0, 3.0]
}

/// Devices (phones, users) homed on nodes, failing over while their node does not serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// What they are called in reports (`phones`, `IM&P users`).
    pub name: String,
    pub rule: String,
    /// Nodes of these roles serve devices.
    pub roles: Vec<String>,
    /// Node fact: how many devices are homed on the node.
    pub fact: String,
    /// Node fact naming the node's backup server (a string), or its backups in the order the
    /// devices try them (a list); without it the devices spread over the other serving nodes of
    /// `roles`.
    #[serde(default)]
    pub backup_fact: Option<String>,
    /// Cluster fact listing the device groups and the servers that serve each, in order (a CM
    /// group: its first server is home, the others back it up): a list of tables
    /// `{ name, servers = [...], <fact> = count }`, `<fact>` being this spec's `fact`. When the
    /// cluster states it, it replaces the nodes' own `fact` and `backup_fact` for these devices:
    /// they register only to the servers of their group. See `ferry_model::redundancy`.
    #[serde(default)]
    pub groups_fact: Option<String>,
    /// At most this many devices registered to a server that takes over other servers' devices
    /// (a backup); a server taking back its own devices is not limited.
    #[serde(default)]
    pub capacity: Option<f64>,
    /// Node fact (else cluster fact) giving a server's `capacity`, in place of the number.
    #[serde(default)]
    pub capacity_fact: Option<String>,
    #[serde(default)]
    pub capacity_rule: Option<String>,
    /// How devices refused by a server over `capacity` are reported (default: an inhibitor).
    #[serde(default = "inhibitor")]
    pub capacity_severity: crate::Severity,
    /// Seconds from a server's loss to its devices registering elsewhere.
    #[serde(default = "default_failover")]
    pub failover_s: [f64; 2],
    /// Minutes devices are unregistered when they move to a server on a version they have not
    /// run (they fetch new loads and re-register).
    #[serde(default)]
    pub reregister_min: [f64; 2],
    #[serde(default)]
    pub reregister_rule: Option<String>,
    #[serde(default)]
    pub calls: Option<CallSpec>,
}

fn inhibitor() -> crate::Severity {
    crate::Severity::Inhibitor
}

fn default_failover() -> [f64; 2] {
    [30.0, 90.0]
}

/// The call load between a cluster's devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    pub rule: String,
    /// Cluster fact: call attempts per hour (falls back to `per_device_hour` × devices).
    #[serde(default)]
    pub per_hour_fact: Option<String>,
    #[serde(default)]
    pub per_device_hour: f64,
    /// A call between devices registered to servers on different versions fails.
    #[serde(default)]
    pub fail_across_versions: bool,
}

/// How an HA pair promotes its backup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promotion {
    /// The backup sends a heartbeat to the primary and takes over when it gets no answer.
    #[default]
    Heartbeat,
    /// The cluster's controller promotes the backup when it loses the primary.
    Controller,
}

/// Pairs of nodes, one active and one standby: the n-th node of `roles[0]` with the n-th of
/// `roles[1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaPairSpec {
    pub name: String,
    pub rule: String,
    /// Two roles: the primary's, then the backup's.
    pub roles: Vec<String>,
    #[serde(default)]
    pub promotion: Promotion,
    /// Seconds between heartbeats (heartbeat promotion).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_s: f64,
    /// A node fact whose value `primary` marks the primary (instead of the role order).
    #[serde(default)]
    pub primary_fact: Option<String>,
    /// The pair works only after a `setup_roles` step.
    #[serde(default)]
    pub needs_setup: bool,
    /// Rule behind "a failed data link alone does not promote the backup".
    #[serde(default)]
    pub link_rule: Option<String>,
}

fn default_heartbeat() -> f64 {
    20.0
}

/// A controller that supervises hosts through their agents and switches HA pairs over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSpec {
    /// Rule behind the switchover timeout (a host's agent down for longer causes a wrong switchover).
    pub rule: String,
    /// Rule behind "no switchover on a host whose agent is being upgraded".
    pub hold_rule: String,
    /// Roles of the controller's nodes (an HA pair of them, or one).
    pub controllers: Vec<String>,
    /// Roles of the agent nodes, one per host (`host_fact` names the host).
    pub agents: Vec<String>,
    /// The option that holds the switchover timeout, in seconds (absent: switch at once).
    pub timeout_option: String,
    /// Seconds the controller takes to notice a lost component.
    #[serde(default = "default_detect")]
    pub detect_s: f64,
}

fn default_detect() -> f64 {
    5.0
}

/// Log event codes a configuration server writes.
///
/// A server started normally logs `new_instance` (a new version), then, once initialised,
/// `backup_connected` when its partner runs: before that `backup_to_older` (soon after the
/// start) when the partner runs an older version, else `initialized`; alone it logs only
/// `initialized`. A server started in upgrade mode logs `new_instance`, then `upgrade_mode`
/// (or `upgrade_mode_requested` where it was forced), `initialized`, and a ready event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigEvents {
    /// A new instance starts (before it connects).
    #[serde(default)]
    pub new_instance: Option<String>,
    /// Started as backup and connected to the running primary.
    pub backup_connected: String,
    /// Started as backup of a primary that runs an older version it can back up (logged
    /// before `backup_connected`).
    #[serde(default)]
    pub backup_to_older: Option<String>,
    /// Initialised: before `backup_connected` next to a partner on the same version, alone,
    /// and in upgrade mode before the ready event.
    #[serde(default)]
    pub initialized: Option<String>,
    /// Upgrade mode forced by an option at start (where `forced_upgrade_mode` holds): logged
    /// instead of `upgrade_mode`.
    #[serde(default)]
    pub upgrade_mode_requested: Option<String>,
    /// Running in upgrade mode (detected by itself).
    pub upgrade_mode: String,
    /// Ready in upgrade mode, on the same database.
    pub ready_same_db: String,
    /// Ready in upgrade mode, on an upgraded database.
    pub ready_db_upgraded: String,
}

/// A configuration store: an HA pair (or one) of servers, proxies in front, client sessions.
/// A server serves only once it has initialised after a start; a server in upgrade mode is no
/// one's backup, and while one runs the controller switches no other pair over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigStoreSpec {
    /// Rule behind read-only configuration, lost redundancy and lost sessions (in upgrade mode,
    /// and across versions when `schema_fact` holds).
    pub rule: String,
    /// Roles of the master servers.
    pub servers: Vec<String>,
    /// Roles of the proxies.
    #[serde(default)]
    pub proxies: Vec<String>,
    /// Rule behind "a proxy newer than its master does not start".
    #[serde(default)]
    pub proxy_rule: Option<String>,
    /// Where a newer proxy may start against an older master anyway.
    #[serde(default)]
    pub proxy_exception: Option<Condition>,
    pub events: ConfigEvents,
    /// Where this holds on a server started in upgrade mode, it does not detect upgrade mode by
    /// itself and is started with the option that forces it.
    #[serde(default)]
    pub forced_upgrade_mode: Option<Condition>,
    /// From a start in upgrade mode to ready (a normal start initialises in half the time).
    pub init_min: [f64; 2],
    /// Cluster fact: true when the upgrade changes the database schema (client sessions are then
    /// not kept when clients move to a server on another version).
    #[serde(default)]
    pub schema_fact: Option<String>,
    /// Node fact: client sessions on the node.
    #[serde(default)]
    pub clients_fact: Option<String>,
    /// Seconds a client takes to reconnect.
    #[serde(default = "default_reconnect")]
    pub reconnect_s: [f64; 2],
}

fn default_reconnect() -> [f64; 2] {
    [5.0, 30.0]
}

/// Data collection: data sources feeding servers over links, archived per interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorSpec {
    /// Rule behind the time in which no server collects.
    pub rule: String,
    /// Roles of the collecting servers.
    pub servers: Vec<String>,
    /// Cluster fact listing the data sources (strings, or tables with `name`).
    pub sources_fact: String,
    /// Cluster fact: interval length in minutes.
    #[serde(default)]
    pub interval_fact: Option<String>,
    #[serde(default = "default_interval")]
    pub interval_min: f64,
    /// Roles whose servers have links when the run starts (the others get theirs when
    /// `release_links` names them).
    pub linked_roles: Vec<String>,
    /// Rule behind "the main and the survivable source are never both active on one server".
    #[serde(default)]
    pub dual_source_rule: Option<String>,
    /// Node fact: true when the server can also collect from a survivable source when its main
    /// link fails.
    #[serde(default)]
    pub dual_source_fact: Option<String>,
}

fn default_interval() -> f64 {
    30.0
}

/// Something outside the product that depends on a fact's value (triggers naming a database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencySpec {
    pub name: String,
    pub rule: String,
    /// Cluster or node fact the dependents name.
    pub fact: String,
    /// Only where this holds on the cluster.
    #[serde(default)]
    pub when: Option<Condition>,
}

/// Users' own settings (call forward, message waiting) changed while the database resynchronises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChangesSpec {
    pub rule: String,
    /// Changes per hour per 1,000 devices of the named device group.
    pub per_hour_per_1000: f64,
    pub devices: String,
    /// A change made within this many minutes after an install or a switch on the node the
    /// device is registered to is lost.
    pub lost_within_min: f64,
}

/// Services an in-place install leaves inactive until activated by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSpec {
    pub rule: String,
}

/// Health checks of a node's service after it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    pub rule: String,
    /// Seconds from a start to healthy.
    #[serde(default = "default_healthy")]
    pub healthy_after_s: [f64; 2],
    /// Node fact: false when the node is unhealthy before the run.
    #[serde(default)]
    pub healthy_fact: Option<String>,
}

fn default_healthy() -> [f64; 2] {
    [5.0, 30.0]
}

/// A fact the twin reports: true when some node of `roles` serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveSpec {
    pub fact: String,
    pub serving_any: Vec<String>,
}
