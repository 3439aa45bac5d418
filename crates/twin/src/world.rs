//! The simulated world: clusters, nodes and the behaviours their profiles select, driven by
//! steps that begin and end in virtual time, and by the world's own events (replication
//! converging, devices re-registering, a backup promoting itself).
//!
//! Everything here is deterministic for a given seed: collections are ordered, randomness comes
//! from the world's own ChaCha generator, and time is a number that only `advance` moves.

use crate::impact::Accumulated;
use ferry_model::condition::{eval, Scope};
use ferry_model::plan::Phase;
use ferry_model::{
    Cluster, Effect, FactValue, Facts, Fault, FaultKind, Faults, Outcome, Plan, PlannedStep,
    Profile, Severity, Site, StepKind, VendorVersion, Wait,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// A run's number (as the executor's journal numbers it).
pub type RunId = i64;

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("cluster `{cluster}` uses profile `{profile}`, which is not loaded")]
    UnknownProfile { cluster: String, profile: String },
    #[error("the plan names cluster `{0}`, which is not in the site")]
    UnknownCluster(String),
    #[error("step `{step}` names node `{node}`, which is not in cluster `{cluster}`")]
    UnknownNode {
        step: String,
        cluster: String,
        node: String,
    },
    #[error("fault {index}: {message}")]
    BadFault { index: usize, message: String },
}

/// What became of a step, as the twin recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub enum StepStatus {
    Running,
    Ended(Outcome),
}

/// The twin's own record of a step: how many times its effects were applied, and how it ended.
/// This is the witness that no step takes effect twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Times its effects took place (an attempt that failed applies nothing).
    pub applications: u32,
    /// Times it was begun (retries after a failure).
    pub attempts: u32,
    pub started: i64,
    pub ended: Option<i64>,
    pub outcome: Option<Outcome>,
}

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct TraceEntry {
    pub run: RunId,
    pub step: String,
    pub cluster: String,
    pub node: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub kind: StepKind,
    pub phase: Phase,
    pub start: i64,
    pub end: i64,
    pub outcome: Outcome,
}

/// Something the world did that breaks a rule (an oversubscribed server, a wrong switchover,
/// a configuration change lost), at the moment it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub time: i64,
    pub cluster: String,
    pub node: Option<String>,
    /// The step it concerns, when one.
    pub step: Option<String>,
    pub rule: String,
    pub message: String,
    /// How the auditor reports it (an inhibitor unless the profile says otherwise).
    #[serde(default = "inhibitor")]
    pub severity: Severity,
}

fn inhibitor() -> Severity {
    Severity::Inhibitor
}

/// A line of the world's log: product log events (by code), promotions, replication states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct LogEvent {
    pub time: i64,
    pub cluster: String,
    pub node: Option<String>,
    pub code: String,
    pub text: String,
}

/// One node as the twin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub role: String,
    /// The version it ran when the world was built.
    pub original: VendorVersion,
    /// The version the site wants it on.
    pub target: VendorVersion,
    pub active: VendorVersion,
    pub inactive: Option<VendorVersion>,
    /// The version an in-place install replaced, kept to restore from.
    pub backup: Option<VendorVersion>,
    /// The inactive slot was removed: no switching back to the version it held then (a later
    /// install fills the slot again, and a switch puts the old active version there).
    pub revert_impossible: bool,
    pub exists: bool,
    pub stopped: bool,
    pub crashed: bool,
    /// Running steps that take the node down.
    pub down: u32,
    pub agent_down: bool,
    pub link_failed: bool,
    pub unhealthy_fault: bool,
    pub healthy: bool,
    pub upgrade_mode: bool,
    pub single_user: bool,
    pub services_pending: bool,
    pub facts: Facts,
    /// Configuration changes held by the active and the inactive side.
    pub config_active: BTreeSet<u64>,
    pub config_inactive: BTreeSet<u64>,
    /// The configuration changes its last `snapshot` holds (`None`: no snapshot taken).
    #[serde(default)]
    pub config_snapshot: Option<BTreeSet<u64>>,
    pub last_start: i64,
    pub gen: u64,
    /// Replication state per replication group the node belongs to.
    pub repl: BTreeMap<usize, u8>,
    pub repl_stuck: Option<u8>,
    /// Its services have not started since its version changed: they wait for replication.
    pub awaiting_replication: bool,
    /// When it last logged each event code.
    #[serde(default)]
    pub last_logged: BTreeMap<String, i64>,
    /// A configuration server that started and has not finished initialising: it does not
    /// serve yet (no clients, no promotion, no redundancy).
    #[serde(default)]
    pub initialising: bool,
}

/// A group of devices homed on one node (`ferry_model::redundancy`: a server's own devices,
/// or a CM group of the site's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceHome {
    pub spec: usize,
    pub home: usize,
    pub count: f64,
    /// The servers that back them up, in the order they register to them.
    #[serde(default)]
    pub backups: Vec<usize>,
    /// With none of their servers serving, they register to the least loaded other serving
    /// server of the spec's roles (no backup stated).
    #[serde(default = "yes")]
    pub any_peer: bool,
    /// Where they are registered (`None`: unregistered).
    pub at: Option<usize>,
    /// Where they are going and when they get there.
    pub moving: Option<(usize, i64)>,
    /// Held on their backup by a `fail_over_devices` step.
    pub pinned: bool,
    /// The version of the server they last registered to (their loads).
    pub loads: VendorVersion,
    /// How many could not register for lack of capacity.
    pub rejected: f64,
    pub gen: u64,
}

fn yes() -> bool {
    true
}

/// An HA pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairState {
    pub spec: usize,
    pub members: [usize; 2],
    /// Index into `members` of the active one.
    pub active: Option<usize>,
    pub formed: bool,
    pub gen: u64,
    pub promotion_pending: bool,
    /// The active member's data link failed and an incident said so (the pair's `link_rule`).
    #[serde(default)]
    pub link_flagged: bool,
}

/// Client sessions homed on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientGroup {
    pub home: usize,
    pub count: f64,
    pub at: Option<usize>,
    pub moving: Option<(usize, i64)>,
    pub gen: u64,
    /// The version of the server the clients last held their sessions with (set when they
    /// leave it).
    #[serde(default)]
    pub session: Option<VendorVersion>,
}

/// Data collection of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorState {
    pub sources: Vec<String>,
    pub servers: Vec<usize>,
    /// links[source][server index in `servers`]
    pub links: Vec<Vec<bool>>,
    pub interval_s: i64,
    /// Per source: whether the current interval has had a moment with no server collecting.
    pub gap: Vec<bool>,
    pub dual_ip: Vec<bool>,
    /// Per server: it collects from its survivable source because its main link failed.
    #[serde(default)]
    pub survivable: Vec<bool>,
}

/// A dependency outside the product on a fact's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependencyState {
    pub spec: usize,
    pub recorded: Option<FactValue>,
    pub active: bool,
}

/// One cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub profile: String,
    pub upgrade_type: String,
    pub strategy: String,
    /// The plan stages work of this cluster ahead of the window (its `staging` conditions).
    #[serde(default)]
    pub staging: bool,
    pub facts: Facts,
    pub nodes: Vec<NodeState>,
    pub frozen: bool,
    pub read_only: bool,
    pub options: BTreeMap<String, f64>,
    pub devices: Vec<DeviceHome>,
    pub pairs: Vec<PairState>,
    pub clients: Vec<ClientGroup>,
    pub collector: Option<CollectorState>,
    pub dependencies: Vec<DependencyState>,
    /// Hosts whose agent is disconnected, since when.
    pub agents_down: BTreeMap<String, i64>,
    /// Hosts the controller has given up on (their agent was down longer than the timeout).
    pub hosts_declared: BTreeSet<String>,
    pub agent_gen: u64,
    /// Per host whose agent is disconnected: the `agent_gen` of that disconnection, which its
    /// switchover timeout (`HostLost`) carries; another host's agent coming or going leaves it.
    #[serde(default)]
    pub agent_down_gen: BTreeMap<String, u64>,
    /// Gates of this cluster waiting for their condition.
    pub waiting: Vec<(RunId, String)>,
    /// What each gate of `waiting` waits for, in the same order (not saved: rebuilt from the
    /// running steps when a loaded world first settles).
    #[serde(skip)]
    pub(crate) waiting_gates: WaitingGates,
    /// Counts over its nodes read at every event (not saved: built with the world, or when a
    /// loaded world is attached).
    #[serde(skip)]
    pub(crate) tallies: crate::tallies::Tallies,
    /// When any of its nodes (or the cluster) last logged each event code.
    #[serde(default)]
    pub last_logged: BTreeMap<String, i64>,
    pub next_change: u64,
    pub acc: Accumulated,
    pub accounted_at: i64,
    pub first_window_start: Option<i64>,
    pub last_end: Option<i64>,
    /// Steps begun ahead of the window (the staging phase).
    #[serde(default)]
    pub staged_steps: u64,
}

/// A gate waiting for its condition: its node, its waits and when it started.
#[derive(Debug, Clone)]
pub(crate) struct WaitingGate {
    pub node: Option<usize>,
    pub waits: Vec<Wait>,
    pub started: i64,
    /// Its place in the order gates began (increasing along the list).
    seq: u64,
    /// The node whose own state alone decides its condition (a node's health or log event),
    /// when one does.
    local: Option<usize>,
}

/// The waiting gates of a cluster, beside its `waiting` list, and the nodes changed since the
/// gates were last judged: a gate whose condition only its node's own state decides is judged
/// again only when that node changed, the others at every settling. A cache that compares
/// equal to any other, so that a world loaded from JSON equals the world that was saved.
#[derive(Debug, Clone)]
pub(crate) struct WaitingGates {
    gates: Vec<WaitingGate>,
    next_seq: u64,
    /// Per node: the `seq` of its waiting gates that only its own state decides.
    by_node: HashMap<usize, Vec<u64>>,
    /// The `seq` of the other waiting gates, in order.
    others: Vec<u64>,
    /// Every gate is to be judged again (a world just built or loaded).
    all_changed: bool,
    changed: Vec<usize>,
    marked: Vec<bool>,
}

impl Default for WaitingGates {
    fn default() -> Self {
        WaitingGates {
            gates: Vec::new(),
            next_seq: 0,
            by_node: HashMap::new(),
            others: Vec::new(),
            all_changed: true,
            changed: Vec::new(),
            marked: Vec::new(),
        }
    }
}

impl PartialEq for WaitingGates {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The node whose own state alone decides every wait of a gate on node `node`.
fn local_node(node: Option<usize>, waits: &[Wait]) -> Option<usize> {
    let n = node?;
    waits
        .iter()
        .all(|w| matches!(w, Wait::Healthy | Wait::Event(_)))
        .then_some(n)
}

impl WaitingGates {
    pub(crate) fn len(&self) -> usize {
        self.gates.len()
    }

    /// A gate starts waiting (after every gate already waiting).
    pub(crate) fn push(&mut self, node: Option<usize>, waits: Vec<Wait>, started: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let local = local_node(node, &waits);
        match local {
            Some(n) => {
                self.by_node.entry(n).or_default().push(seq);
                // Not judged yet.
                self.node_changed(n);
            }
            None => self.others.push(seq),
        }
        self.gates.push(WaitingGate {
            node,
            waits,
            started,
            seq,
            local,
        });
    }

    /// The gate at `k` stops waiting.
    pub(crate) fn remove(&mut self, k: usize) {
        let g = self.gates.remove(k);
        let list = match g.local {
            Some(n) => self.by_node.get_mut(&n),
            None => Some(&mut self.others),
        };
        if let Some(list) = list {
            if let Some(i) = list.iter().position(|&s| s == g.seq) {
                list.remove(i);
            }
            if list.is_empty() {
                if let Some(n) = g.local {
                    self.by_node.remove(&n);
                }
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &WaitingGate> {
        self.gates.iter()
    }

    pub(crate) fn get(&self, k: usize) -> &WaitingGate {
        &self.gates[k]
    }

    /// Node `ni` changed: its gates are judged again at the next settling.
    pub(crate) fn node_changed(&mut self, ni: usize) {
        if self.all_changed {
            return;
        }
        if self.marked.len() <= ni {
            self.marked.resize(ni + 1, false);
        }
        if !self.marked[ni] {
            self.marked[ni] = true;
            self.changed.push(ni);
        }
    }

    /// The places of the gates to judge, in order: every gate not decided by one node's own
    /// state, and the gates of the nodes changed since the gates were last judged.
    pub(crate) fn to_judge(&self) -> Vec<usize> {
        if self.all_changed {
            return (0..self.gates.len()).collect();
        }
        let mut seqs: Vec<u64> = self.others.clone();
        for n in &self.changed {
            if let Some(list) = self.by_node.get(n) {
                seqs.extend_from_slice(list);
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        seqs.iter()
            .filter_map(|s| self.gates.binary_search_by_key(s, |g| g.seq).ok())
            .collect()
    }

    /// Every gate was judged and none holds: no node has changed since.
    pub(crate) fn judged(&mut self) {
        self.all_changed = false;
        for n in self.changed.drain(..) {
            self.marked[n] = false;
        }
    }
}

/// The step as a running step keeps it: what the twin reads of it, without the texts for
/// the operator (instructions, verification, warning, impact note) nor the order it was planned
/// in (`after`, `rules`), which on a large plan are most of its size.
fn what_the_twin_reads(step: &PlannedStep) -> PlannedStep {
    PlannedStep {
        id: step.id.clone(),
        cluster: step.cluster.clone(),
        node: step.node.clone(),
        role: step.role.clone(),
        action: step.action.clone(),
        title: step.title.clone(),
        kind: step.kind,
        phase: step.phase,
        after: Vec::new(),
        rules: Vec::new(),
        start_s: step.start_s,
        duration_s: step.duration_s,
        estimate: step.estimate,
        spread: step.spread,
        impact: step.impact,
        impact_note: String::new(),
        instructions: String::new(),
        verify: String::new(),
        warning: None,
        version: step.version.clone(),
        effects: step.effects.clone(),
        retries: step.retries,
        timeout_s: step.timeout_s,
        rollback: step.rollback,
    }
}

/// A step the twin is carrying out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub step: PlannedStep,
    pub cluster: usize,
    pub node: Option<usize>,
    pub started: i64,
    /// When it ends (`None`: a gate waiting for its condition).
    pub ends: Option<i64>,
    /// A gate fails at this time.
    pub deadline: Option<i64>,
    /// The step will fail, with this reason, when it ends.
    pub fail: Option<String>,
}

/// The world's own events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    StepEnd {
        run: RunId,
        step: String,
    },
    GateTimeout {
        run: RunId,
        step: String,
    },
    Recheck {
        cluster: usize,
    },
    Replication {
        cluster: usize,
        node: usize,
        group: usize,
        state: u8,
        gen: u64,
    },
    DevicesArrive {
        cluster: usize,
        home: usize,
        gen: u64,
    },
    ClientsArrive {
        cluster: usize,
        group: usize,
        gen: u64,
    },
    Promote {
        cluster: usize,
        pair: usize,
        gen: u64,
    },
    HostLost {
        cluster: usize,
        host: String,
        gen: u64,
    },
    Log {
        cluster: usize,
        node: usize,
        code: String,
        text: String,
        gen: u64,
    },
    Ready {
        cluster: usize,
        node: usize,
        gen: u64,
    },
    Healthy {
        cluster: usize,
        node: usize,
        gen: u64,
    },
    Recover {
        cluster: usize,
        node: usize,
    },
    Fault {
        index: usize,
    },
}

/// A fault of the faults file, with what this run drew for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmedFault {
    pub fault: Fault,
    pub fires: bool,
    pub fired: bool,
}

/// The simulated world. See the crate documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    pub now: i64,
    pub start: i64,
    pub seed: u64,
    seq: u64,
    rng: ChaCha8Rng,
    /// Not saved with the world: `attach` gives them back after loading.
    #[serde(skip)]
    pub profiles: BTreeMap<String, Arc<Profile>>,
    pub site: Site,
    pub clusters: Vec<ClusterState>,
    #[serde(with = "crate::serde_pairs")]
    queue: BTreeMap<(i64, u64), Event>,
    #[serde(with = "crate::serde_pairs")]
    running: BTreeMap<(RunId, String), Running>,
    #[serde(with = "crate::serde_pairs")]
    pub records: BTreeMap<(RunId, String), Record>,
    finished: VecDeque<(RunId, String, Outcome)>,
    pub faults: Vec<ArmedFault>,
    pub trace: Vec<TraceEntry>,
    pub incidents: Vec<Incident>,
    pub log: Vec<LogEvent>,
    /// Changes to service parameters made by the upgrade (node, text), in order.
    pub parameter_changes: Vec<(String, String)>,
    /// Runs that carry out a rollback procedure.
    pub rollback_runs: BTreeSet<RunId>,
    /// (cluster, action) of every step the plan has, upgrade and rollback: a gate the plan does
    /// not have (its condition does not hold for the site) constrains nothing.
    pub planned: BTreeSet<(String, String)>,
    /// While a step's end effects apply: when that step began. A server the step starts has
    /// been launching since then, so its initialisation counts from there.
    #[serde(default)]
    pub(crate) step_began: Option<i64>,
    /// Clusters and nodes by name (not saved: `attach` builds them again).
    #[serde(skip)]
    names: Names,
}

/// Conditions read on one cluster as the twin sees it (`World::conditions`).
pub(crate) struct Conditions<'w> {
    w: &'w World,
    ci: usize,
    view: std::cell::OnceCell<Cluster>,
}

impl Conditions<'_> {
    /// Whether `test` holds on the cluster (on node `ni`, when given).
    pub(crate) fn holds(&self, ni: Option<usize>, test: &ferry_model::profile::Condition) -> bool {
        let view = self.view.get_or_init(|| self.w.cluster_view(self.ci));
        let c = &self.w.clusters[self.ci];
        let scope = Scope {
            cluster: view,
            profile: self.w.profile(self.ci),
            upgrade_type: Some(&c.upgrade_type),
            strategy: &c.strategy,
            leg: (0, 1),
            run: None,
            staging: c.staging,
        };
        eval(test, &scope, ni.map(|n| &view.nodes[n]))
    }
}

/// Clusters, nodes and roles by name, so that a step finds its node without a search; built
/// once from the clusters, whose names and roles never change.
#[derive(Debug, Clone, Default)]
struct Names {
    built: bool,
    clusters: HashMap<String, usize>,
    nodes: Vec<HashMap<String, usize>>,
    /// Per cluster and role: its nodes, in site order.
    roles: Vec<HashMap<String, Vec<usize>>>,
}

impl Names {
    fn of(clusters: &[ClusterState]) -> Names {
        let mut names = Names {
            built: true,
            ..Names::default()
        };
        for (ci, c) in clusters.iter().enumerate() {
            names.clusters.entry(c.name.clone()).or_insert(ci);
            let mut nodes = HashMap::with_capacity(c.nodes.len());
            let mut roles: HashMap<String, Vec<usize>> = HashMap::new();
            for (ni, n) in c.nodes.iter().enumerate() {
                nodes.entry(n.name.clone()).or_insert(ni);
                roles.entry(n.role.clone()).or_default().push(ni);
            }
            names.nodes.push(nodes);
            names.roles.push(roles);
        }
        names
    }
}

pub(crate) fn draw(rng: &mut ChaCha8Rng, r: [f64; 2]) -> f64 {
    if r[1] > r[0] {
        rng.random_range(r[0]..=r[1])
    } else {
        r[0]
    }
}

/// A duration factor between `lo` and `hi` whose median is 1: half the draws fall uniformly
/// below the estimate, half above it (the estimate is the most likely half-way point; a long
/// tail above it when `hi - 1 > 1 - lo`).
fn spread(rng: &mut ChaCha8Rng, [lo, hi]: [f64; 2]) -> f64 {
    if hi <= lo {
        return lo;
    }
    let (lo, hi) = (lo.min(1.0), hi.max(1.0));
    let u: f64 = rng.random_range(0.0..1.0);
    if u < 0.5 {
        lo + (1.0 - lo) * (2.0 * u)
    } else {
        1.0 + (hi - 1.0) * (2.0 * u - 1.0)
    }
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 50.0 {
        // Normal approximation for large means.
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        return (lambda + z * lambda.sqrt()).round().max(0.0) as u64;
    }
    let l = (-lambda).exp();
    let mut k = 0u64;
    let mut p = 1.0;
    loop {
        p *= rng.random_range(0.0..1.0f64);
        if p <= l {
            return k;
        }
        k += 1;
    }
}

impl World {
    /// Builds the world of a site before its plan runs. `profiles` must hold every profile the
    /// site uses; `plan` gives each cluster's upgrade type and strategy and the window; faults
    /// are drawn with `seed` (a fault with `probability` p fires in a fraction p of seeds).
    pub fn build(
        site: &Site,
        profiles: &BTreeMap<String, Profile>,
        plan: &Plan,
        faults: &Faults,
        seed: u64,
    ) -> Result<World, TwinError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // The world starts with the work before the window: preparation, then staging (in the
        // booked staging period, else just before the window).
        let window_start = plan
            .window
            .as_ref()
            .map(|w| w.start_epoch_s)
            .unwrap_or(1_800_000_000);
        let staging_start = if plan.stages() {
            plan.staging_start_epoch_s()
                .unwrap_or(window_start - plan.staging_s as i64)
        } else {
            window_start
        };
        let start = staging_start - plan.prepare_s as i64;
        let mut used = BTreeMap::new();
        let mut clusters = Vec::new();
        for c in &site.clusters {
            let profile = profiles
                .get(&c.profile)
                .ok_or_else(|| TwinError::UnknownProfile {
                    cluster: c.name.clone(),
                    profile: c.profile.clone(),
                })?;
            used.insert(c.profile.clone(), Arc::new(profile.clone()));
            let cp = plan.clusters.iter().find(|p| p.name == c.name);
            let upgrade_type = cp
                .map(|p| {
                    p.upgrade_type
                        .split(" then ")
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default();
            let strategy = cp
                .map(|p| p.strategy.clone())
                .unwrap_or_else(|| "fastest".into());
            clusters.push(crate::setup::cluster_state(
                c,
                profile,
                upgrade_type,
                strategy,
                cp.is_some_and(|p| p.staging),
                start,
                &mut rng,
            ));
        }
        let names = Names::of(&clusters);
        for s in plan.steps.iter().chain(&plan.rollback) {
            let Some(&ci) = names.clusters.get(&s.cluster) else {
                return Err(TwinError::UnknownCluster(s.cluster.clone()));
            };
            if let Some(n) = &s.node {
                if !names.nodes[ci].contains_key(n) {
                    return Err(TwinError::UnknownNode {
                        step: s.id.clone(),
                        cluster: s.cluster.clone(),
                        node: n.clone(),
                    });
                }
            }
        }
        let mut armed = Vec::new();
        for (index, f) in faults.faults.iter().enumerate() {
            if f.step.is_none() && f.at_min.is_none() && f.kind != FaultKind::ReplicationStuck {
                return Err(TwinError::BadFault {
                    index,
                    message: format!("a `{}` fault needs `step` or `at_min`", f.kind.as_str()),
                });
            }
            if let Some(pat) = &f.step {
                // A fault on a step the plan does not have would never fire: a mistake.
                let steps = || plan.steps.iter().chain(&plan.rollback);
                let known = match pat.strip_prefix("*/") {
                    Some(action) => steps().any(|s| s.action == action),
                    None => steps().any(|s| &s.id == pat),
                };
                if !known {
                    return Err(TwinError::BadFault {
                        index,
                        message: format!(
                            "no step `{pat}` in the plan (nor in its rollback): the fault would never fire; \
`ferry plan SITE --format json` lists the step IDs, and `*/ACTION` names an action on every node"
                        ),
                    });
                }
            }
            if f.step.is_none() && f.node.is_none() {
                return Err(TwinError::BadFault {
                    index,
                    message: format!("a `{}` fault at a time needs `node`", f.kind.as_str()),
                });
            }
            if let Some(n) = &f.node {
                if !clusters
                    .iter()
                    .any(|c| c.nodes.iter().any(|x| &x.name == n))
                {
                    return Err(TwinError::BadFault {
                        index,
                        message: format!("no node `{n}` in the site"),
                    });
                }
            }
            let p = f.probability.unwrap_or(1.0).clamp(0.0, 1.0);
            let fires = p >= 1.0 || rng.random_range(0.0..1.0) < p;
            armed.push(ArmedFault {
                fault: f.clone(),
                fires,
                fired: false,
            });
        }
        let mut w = World {
            now: start,
            start,
            seed,
            seq: 0,
            rng,
            profiles: used,
            site: site.clone(),
            clusters,
            queue: BTreeMap::new(),
            running: BTreeMap::new(),
            records: BTreeMap::new(),
            finished: VecDeque::new(),
            faults: armed,
            trace: Vec::new(),
            incidents: Vec::new(),
            log: Vec::new(),
            parameter_changes: Vec::new(),
            rollback_runs: BTreeSet::new(),
            planned: plan
                .steps
                .iter()
                .chain(&plan.rollback)
                .map(|s| (s.cluster.clone(), s.action.clone()))
                .collect(),
            step_began: None,
            names,
        };
        for ci in 0..w.clusters.len() {
            crate::tallies::build(&mut w, ci);
        }
        for i in 0..w.faults.len() {
            let f = &w.faults[i];
            if !f.fires {
                continue;
            }
            if let Some(m) = f.fault.at_min {
                let t = start + (m * 60.0).round() as i64;
                w.schedule(t, Event::Fault { index: i });
            } else if f.fault.step.is_none() {
                w.fire_fault(i, None);
            }
        }
        for ci in 0..w.clusters.len() {
            w.settle(ci);
        }
        Ok(w)
    }

    pub(crate) fn schedule(&mut self, t: i64, e: Event) {
        self.seq += 1;
        self.queue.insert((t.max(self.now), self.seq), e);
    }

    pub(crate) fn draw(&mut self, r: [f64; 2]) -> f64 {
        draw(&mut self.rng, r)
    }

    pub(crate) fn profile(&self, ci: usize) -> &Profile {
        &self.profiles[&self.clusters[ci].profile]
    }

    /// The cluster's profile, to hold while the world changes.
    pub(crate) fn profile_arc(&self, ci: usize) -> Arc<Profile> {
        Arc::clone(&self.profiles[&self.clusters[ci].profile])
    }

    pub(crate) fn incident(&mut self, ci: usize, node: Option<usize>, rule: &str, message: String) {
        self.incident_of(ci, node, rule, Severity::Inhibitor, message);
    }

    /// An incident of the given severity.
    pub(crate) fn incident_of(
        &mut self,
        ci: usize,
        node: Option<usize>,
        rule: &str,
        severity: Severity,
        message: String,
    ) {
        let c = &self.clusters[ci];
        self.incidents.push(Incident {
            time: self.now,
            cluster: c.name.clone(),
            node: node.map(|n| c.nodes[n].name.clone()),
            step: None,
            rule: rule.to_string(),
            message,
            severity,
        });
    }

    /// An incident about a step.
    pub(crate) fn step_incident(
        &mut self,
        ci: usize,
        node: Option<usize>,
        step: &str,
        rule: &str,
        message: String,
    ) {
        self.incident(ci, node, rule, message);
        if let Some(i) = self.incidents.last_mut() {
            i.step = Some(step.to_string());
        }
    }

    pub(crate) fn note(&mut self, ci: usize, node: Option<usize>, code: &str, text: String) {
        let now = self.now;
        let c = &mut self.clusters[ci];
        c.last_logged.insert(code.to_string(), now);
        if let Some(n) = node {
            c.nodes[n].last_logged.insert(code.to_string(), now);
            c.waiting_gates.node_changed(n);
        }
        let c = &self.clusters[ci];
        self.log.push(LogEvent {
            time: self.now,
            cluster: c.name.clone(),
            node: node.map(|n| c.nodes[n].name.clone()),
            code: code.to_string(),
            text,
        });
    }

    fn cluster_index(&self, name: &str) -> Option<usize> {
        if self.names.built {
            return self.names.clusters.get(name).copied();
        }
        self.clusters.iter().position(|c| c.name == name)
    }

    pub(crate) fn node_index(&self, ci: usize, name: &str) -> Option<usize> {
        if self.names.built {
            return self.names.nodes[ci].get(name).copied();
        }
        self.clusters[ci].nodes.iter().position(|n| n.name == name)
    }

    /// The nodes of cluster `ci` with one of `roles` (every node when `roles` is empty), in
    /// site order.
    pub(crate) fn nodes_with_roles(&self, ci: usize, roles: &[String]) -> Vec<usize> {
        let nodes = &self.clusters[ci].nodes;
        if roles.is_empty() {
            return (0..nodes.len()).collect();
        }
        if !self.names.built {
            return (0..nodes.len())
                .filter(|&n| roles.contains(&nodes[n].role))
                .collect();
        }
        let mut out: Vec<usize> = roles
            .iter()
            .filter_map(|r| self.names.roles[ci].get(r))
            .flatten()
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The first node of cluster `ci` with role `role` (in site order) that `keep` keeps,
    /// found through the roles' index when it is built.
    pub(crate) fn first_of_role(
        &self,
        ci: usize,
        role: &str,
        keep: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.names.built {
            return self.names.roles[ci]
                .get(role)?
                .iter()
                .copied()
                .find(|&n| keep(n));
        }
        (0..self.clusters[ci].nodes.len())
            .find(|&n| self.clusters[ci].nodes[n].role == role && keep(n))
    }

    /// The node runs and is not taken down by a step (its own services may still wait).
    pub(crate) fn up(&self, ci: usize, ni: usize) -> bool {
        let n = &self.clusters[ci].nodes[ni];
        n.exists && !n.stopped && !n.crashed && n.down == 0
    }

    /// The node provides its service: up, and (where the profile says so) its services have
    /// started, which after a version change waits for its database replication to be good,
    /// and a configuration server has initialised.
    pub fn provides(&self, ci: usize, ni: usize) -> bool {
        let n = &self.clusters[ci].nodes[ni];
        self.up(ci, ni) && !n.awaiting_replication && !n.initialising
    }

    pub(crate) fn host_of(&self, ci: usize, ni: usize) -> Option<String> {
        let f = self.profile(ci).twin.host_fact.as_ref()?;
        self.clusters[ci].nodes[ni]
            .facts
            .get(f)
            .map(|v| v.to_string())
    }

    /// The cluster as its profile's conditions see it now: versions are the active ones, facts
    /// the twin's.
    pub(crate) fn cluster_view(&self, ci: usize) -> Cluster {
        let c = &self.clusters[ci];
        let site = &self.site.clusters[ci];
        Cluster {
            name: site.name.clone(),
            profile: site.profile.clone(),
            target: site.target.clone(),
            strategy: site.strategy.clone(),
            facts: c.facts.clone(),
            nodes: site
                .nodes
                .iter()
                .zip(&c.nodes)
                .map(|(v, n)| ferry_model::Node {
                    name: v.name.clone(),
                    role: v.role.clone(),
                    version: n.active.clone(),
                    target: v.target.clone(),
                    address: v.address.clone(),
                    facts: n.facts.clone(),
                })
                .chain(site.nodes.iter().skip(c.nodes.len()).cloned())
                .collect(),
        }
    }

    pub(crate) fn holds(
        &self,
        ci: usize,
        ni: Option<usize>,
        test: &ferry_model::profile::Condition,
    ) -> bool {
        self.conditions(ci).holds(ni, test)
    }

    /// The profile's conditions on cluster `ci` as it is now, for several readings while the
    /// world does not change: its view is made once, at the first.
    pub(crate) fn conditions(&self, ci: usize) -> Conditions<'_> {
        Conditions {
            w: self,
            ci,
            view: std::cell::OnceCell::new(),
        }
    }

    // -----------------------------------------------------------------------------------
    // Steps
    // -----------------------------------------------------------------------------------

    /// Gives a loaded world its profiles back (they are not saved with it).
    pub fn attach(&mut self, profiles: &BTreeMap<String, Profile>) -> Result<(), TwinError> {
        for c in &self.clusters {
            if !self.profiles.contains_key(&c.profile) {
                let p = profiles
                    .get(&c.profile)
                    .ok_or_else(|| TwinError::UnknownProfile {
                        cluster: c.name.clone(),
                        profile: c.profile.clone(),
                    })?;
                self.profiles.insert(c.profile.clone(), Arc::new(p.clone()));
            }
        }
        if !self.names.built {
            self.names = Names::of(&self.clusters);
        }
        for ci in 0..self.clusters.len() {
            if !self.clusters[ci].tallies.built() {
                crate::tallies::build(self, ci);
            }
        }
        Ok(())
    }

    /// A node by cluster and node name.
    pub fn node(&self, cluster: &str, node: &str) -> Option<&NodeState> {
        let ci = self.cluster_index(cluster)?;
        self.node_index(ci, node)
            .map(|ni| &self.clusters[ci].nodes[ni])
    }

    /// Whether a node provides its service now (runs, and its services have started).
    pub fn serving(&self, cluster: &str, node: &str) -> bool {
        self.cluster_index(cluster)
            .and_then(|ci| self.node_index(ci, node).map(|ni| self.provides(ci, ni)))
            .unwrap_or(false)
    }

    /// Devices of a device group registered to a node now.
    pub fn registered(&self, cluster: &str, node: &str) -> f64 {
        let Some(ci) = self.cluster_index(cluster) else {
            return 0.0;
        };
        let Some(ni) = self.node_index(ci, node) else {
            return 0.0;
        };
        self.clusters[ci]
            .devices
            .iter()
            .filter(|d| d.at == Some(ni))
            .map(|d| d.count - d.rejected)
            .sum()
    }

    /// Marks a run as carrying out the rollback procedure (the auditor and the gate watch then
    /// read the profile's rollback rules for it).
    pub fn mark_rollback(&mut self, run: RunId) {
        self.rollback_runs.insert(run);
    }

    /// What the twin knows of a step.
    pub fn status(&self, run: RunId, step: &str) -> Option<StepStatus> {
        let key = (run, step.to_string());
        if self.running.contains_key(&key) {
            return Some(StepStatus::Running);
        }
        self.records
            .get(&key)
            .and_then(|r| r.outcome.clone())
            .map(StepStatus::Ended)
    }

    /// Steps running now.
    pub fn running(&self) -> impl Iterator<Item = &(RunId, String)> {
        self.running.keys()
    }

    /// Begins a step now. Beginning a step that already began or ended does nothing.
    pub fn begin(&mut self, run: RunId, step: &PlannedStep) {
        let key = (run, step.id.clone());
        let retry = self
            .records
            .get(&key)
            .is_some_and(|r| matches!(r.outcome, Some(Outcome::Failed(_))));
        if self.running.contains_key(&key) || (self.records.contains_key(&key) && !retry) {
            return;
        }
        let Some(ci) = self.cluster_index(&step.cluster) else {
            self.finished.push_back((
                run,
                step.id.clone(),
                Outcome::Failed(format!("no cluster `{}` in the twin", step.cluster)),
            ));
            return;
        };
        let ni = step.node.as_deref().and_then(|n| self.node_index(ci, n));
        if step.rollback {
            self.rollback_runs.insert(run);
        }
        self.touch(ci);
        let rec = self.records.entry(key.clone()).or_insert(Record {
            applications: 0,
            attempts: 0,
            started: self.now,
            ended: None,
            outcome: None,
        });
        rec.attempts += 1;
        rec.started = self.now;
        rec.ended = None;
        rec.outcome = None;
        if step.phase == Phase::Window && self.clusters[ci].first_window_start.is_none() {
            self.clusters[ci].first_window_start = Some(self.now);
        }
        if step.phase == Phase::Staging {
            self.clusters[ci].staged_steps += 1;
        }
        // Faults bound to this step.
        let changes_before = self.config_changes_applied(ci);
        let mut fail: Option<String> = None;
        let mut factor = 1.0;
        for i in 0..self.faults.len() {
            let f = &self.faults[i];
            if !f.fires || f.fired {
                continue;
            }
            let Some(pat) = &f.fault.step else { continue };
            let matches = match pat.strip_prefix("*/") {
                Some(action) => step.action == action,
                None => pat == &step.id,
            };
            if !matches {
                continue;
            }
            match f.fault.kind {
                FaultKind::SlowStep => {
                    factor = f.fault.factor.unwrap_or(3.0).max(0.0);
                    self.faults[i].fired = true;
                }
                FaultKind::InstallFailure => {
                    fail = Some("the install failed".into());
                    self.faults[i].fired = true;
                }
                FaultKind::Crash => {
                    let node = f.fault.node.clone().or(step.node.clone());
                    fail = Some(format!(
                        "{} crashed during the step",
                        node.as_deref().unwrap_or("the node")
                    ));
                    self.fire_fault(i, Some((ci, ni)));
                }
                _ => self.fire_fault(i, Some((ci, ni))),
            }
        }
        // Checks the step makes before it acts.
        let conditions = self.conditions(ci);
        for e in &step.effects {
            if let Effect::Require {
                rule,
                test,
                message,
            } = e
            {
                if fail.is_none() && !conditions.holds(ni, test) {
                    fail = Some(format!("{rule}: {message}"));
                }
            }
        }
        let rollback = self.rollback_runs.contains(&run);
        crate::gates::watch(self, ci, ni, step, rollback);
        let mut ends = None;
        let mut deadline = None;
        let waits: Vec<Wait> = step
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Wait(w) => Some(w.clone()),
                _ => None,
            })
            .collect();
        // The spread of the durations observed for the step, when the plan learned it from
        // past runs; the profile's otherwise.
        let spread_range = step.spread.unwrap_or(self.profile(ci).twin.duration_spread);
        if fail.is_some() {
            let d = (step.duration_s as f64 / 2.0).max(1.0);
            ends = Some(self.now + d.round() as i64);
        } else if waits.is_empty() {
            let f = spread(&mut self.rng, spread_range) * factor;
            ends = Some(self.now + (step.duration_s as f64 * f).round() as i64);
        } else {
            if let Some(t) = step.timeout_s {
                deadline = Some(self.now + (t as f64 * factor.max(1.0)).round() as i64);
            }
            self.gates_in_step(ci);
            self.clusters[ci].waiting.push(key.clone());
            let now = self.now;
            self.clusters[ci].waiting_gates.push(ni, waits.clone(), now);
        }
        if fail.is_none() {
            crate::effects::at_start(self, ci, ni, step);
        }
        if step.impact == ferry_model::Impact::Down {
            if let Some(n) = ni {
                self.node_changed(ci, n);
                self.clusters[ci].nodes[n].down += 1;
            }
        }
        self.running.insert(
            key.clone(),
            Running {
                step: what_the_twin_reads(step),
                cluster: ci,
                node: ni,
                started: self.now,
                ends,
                deadline,
                fail,
            },
        );
        // A configuration change made as this step started breaks it too.
        if self.config_changes_applied(ci) > changes_before {
            self.fail_on_config_change(&key);
        }
        if let Some(t) = ends {
            self.schedule(
                t,
                Event::StepEnd {
                    run,
                    step: step.id.clone(),
                },
            );
        }
        if let Some(t) = deadline {
            self.schedule(
                t,
                Event::GateTimeout {
                    run,
                    step: step.id.clone(),
                },
            );
        }
        // Gates start waiting: some have something to do when they start (devices come home).
        for w in &waits {
            crate::gates::on_wait_start(self, ci, ni, w);
        }
        self.settle(ci);
    }

    /// Stops waiting for a running step (the executor gave up on it): it ends as failed.
    pub fn cancel(&mut self, run: RunId, step: &str) {
        let key = (run, step.to_string());
        if self.running.contains_key(&key) {
            self.end_step(&key, Some("cancelled: the executor stopped waiting".into()));
        }
    }

    /// Moves virtual time forward, carrying out the world's events, until a step ends (returned)
    /// or `deadline` passes (`None` returned; the clock then reads the deadline). Without a
    /// deadline and with nothing left to happen, returns `None` at once.
    pub fn advance(&mut self, deadline: Option<i64>) -> Option<(RunId, String, Outcome)> {
        loop {
            if let Some(done) = self.finished.pop_front() {
                return Some(done);
            }
            let Some((&(t, seq), _)) = self.queue.iter().next() else {
                if let Some(d) = deadline {
                    self.now = self.now.max(d);
                }
                return None;
            };
            if deadline.is_some_and(|d| t > d) {
                self.now = self.now.max(deadline.unwrap_or(t));
                return None;
            }
            let event = self.queue.remove(&(t, seq)).expect("event present");
            self.now = self.now.max(t);
            self.handle(event);
        }
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::StepEnd { run, step } => {
                let key = (run, step);
                if let Some(r) = self.running.get(&key) {
                    if r.ends == Some(self.now) {
                        let fail = r.fail.clone();
                        self.end_step(&key, fail);
                    }
                }
            }
            Event::GateTimeout { run, step } => {
                let key = (run, step);
                if let Some(r) = self.running.get(&key) {
                    if r.deadline == Some(self.now) && r.ends.is_none() {
                        let waited = self.now - r.started;
                        let what = crate::gates::describe_waits(&r.step);
                        self.end_step(
                            &key,
                            Some(format!("timed out after {waited} s waiting for {what}")),
                        );
                    }
                }
            }
            Event::Recheck { cluster } => {
                self.touch(cluster);
                self.settle(cluster);
            }
            Event::Replication {
                cluster,
                node,
                group,
                state,
                gen,
            } => crate::replication::on_event(self, cluster, node, group, state, gen),
            Event::DevicesArrive { cluster, home, gen } => {
                crate::devices::arrive(self, cluster, home, gen)
            }
            Event::ClientsArrive {
                cluster,
                group,
                gen,
            } => crate::config::clients_arrive(self, cluster, group, gen),
            Event::Promote { cluster, pair, gen } => {
                crate::pairs::promote(self, cluster, pair, gen)
            }
            Event::HostLost { cluster, host, gen } => {
                crate::pairs::host_lost(self, cluster, &host, gen)
            }
            Event::Log {
                cluster,
                node,
                code,
                text,
                gen,
            } => {
                if self.clusters[cluster].nodes[node].gen == gen {
                    self.touch(cluster);
                    self.note(cluster, Some(node), &code, text);
                    self.settle(cluster);
                }
            }
            Event::Ready { cluster, node, gen } => crate::config::ready(self, cluster, node, gen),
            Event::Healthy { cluster, node, gen } => {
                if self.clusters[cluster].nodes[node].gen == gen {
                    self.touch(cluster);
                    self.node_changed(cluster, node);
                    let n = &mut self.clusters[cluster].nodes[node];
                    if !n.unhealthy_fault {
                        n.healthy = true;
                    }
                    self.settle(cluster);
                }
            }
            Event::Recover { cluster, node } => {
                self.touch(cluster);
                self.node_changed(cluster, node);
                let n = &mut self.clusters[cluster].nodes[node];
                n.crashed = false;
                n.link_failed = false;
                n.gen += 1;
                let name = n.name.clone();
                self.note(cluster, Some(node), "recovered", format!("{name} is back"));
                crate::effects::started(self, cluster, node, false);
                self.settle(cluster);
            }
            Event::Fault { index } => self.fire_fault(index, None),
        }
    }

    /// Carries out a fault now, on its node (or at `at`, the step's cluster and node, when it
    /// names none).
    fn fire_fault(&mut self, index: usize, at: Option<(usize, Option<usize>)>) {
        let f = self.faults[index].fault.clone();
        self.faults[index].fired = true;
        let located = f.node.as_deref().and_then(|name| {
            self.clusters.iter().enumerate().find_map(|(ci, c)| {
                c.nodes
                    .iter()
                    .position(|n| n.name == name)
                    .map(|ni| (ci, Some(ni)))
            })
        });
        let Some((ci, node)) = located.or(at) else {
            return;
        };
        if f.kind == FaultKind::ConfigChange {
            crate::config::change(self, ci);
            self.settle(ci);
            return;
        }
        let Some(ni) = node else {
            return;
        };
        self.touch(ci);
        let name = self.clusters[ci].nodes[ni].name.clone();
        match f.kind {
            FaultKind::Crash => {
                self.node_changed(ci, ni);
                self.clusters[ci].nodes[ni].crashed = true;
                self.clusters[ci].nodes[ni].healthy = false;
                self.clusters[ci].nodes[ni].gen += 1;
                self.note(
                    ci,
                    Some(ni),
                    "crash",
                    format!("{name} crashed (injected fault)"),
                );
                if let Some(m) = f.recover_min {
                    let t = self.now + (m * 60.0).round() as i64;
                    self.schedule(
                        t,
                        Event::Recover {
                            cluster: ci,
                            node: ni,
                        },
                    );
                }
            }
            FaultKind::ReplicationStuck => {
                let state = f.state.unwrap_or(4).min(4);
                self.node_changed(ci, ni);
                self.clusters[ci].nodes[ni].repl_stuck = Some(state);
                crate::replication::stick(self, ci, ni, state);
            }
            FaultKind::LinkFailure => {
                self.node_changed(ci, ni);
                self.clusters[ci].nodes[ni].link_failed = true;
                self.note(
                    ci,
                    Some(ni),
                    "link-failure",
                    format!(
                        "the data link of {name} failed (injected fault); the node keeps running"
                    ),
                );
                if let Some(m) = f.recover_min {
                    let t = self.now + (m * 60.0).round() as i64;
                    self.schedule(
                        t,
                        Event::Recover {
                            cluster: ci,
                            node: ni,
                        },
                    );
                }
            }
            FaultKind::ConfigChange => {}
            FaultKind::Unhealthy => {
                self.node_changed(ci, ni);
                self.clusters[ci].nodes[ni].unhealthy_fault = true;
                self.clusters[ci].nodes[ni].healthy = false;
            }
            FaultKind::SlowStep | FaultKind::InstallFailure => {}
        }
        self.settle(ci);
    }

    /// Ends a running step now: its effects apply unless it failed; then the cluster settles.
    pub(crate) fn end_step(&mut self, key: &(RunId, String), fail: Option<String>) {
        if let Some(ci) = self.end_step_unsettled(key, fail, None) {
            self.settle(ci);
        }
    }

    /// `end_step` without the settling after it: the cluster of the step that ended, if it
    /// ran. `waiting_at` is the step's place in its cluster's `waiting` list, when known.
    fn end_step_unsettled(
        &mut self,
        key: &(RunId, String),
        fail: Option<String>,
        waiting_at: Option<usize>,
    ) -> Option<usize> {
        let r = self.running.remove(key)?;
        let ci = r.cluster;
        self.touch(ci);
        // Only a gate without an end waits.
        if r.ends.is_none() {
            self.gates_in_step(ci);
            let c = &mut self.clusters[ci];
            let at = waiting_at
                .filter(|&k| c.waiting.get(k) == Some(key))
                .or_else(|| c.waiting.iter().position(|k| k == key));
            if let Some(k) = at {
                c.waiting.remove(k);
                c.waiting_gates.remove(k);
            }
        }
        if r.step.impact == ferry_model::Impact::Down {
            if let Some(n) = r.node {
                self.node_changed(ci, n);
                let node = &mut self.clusters[ci].nodes[n];
                node.down = node.down.saturating_sub(1);
            }
        }
        let outcome = match fail {
            Some(reason) => {
                crate::effects::undo_start(self, ci, r.node, &r.step);
                Outcome::Failed(reason)
            }
            None => {
                self.step_began = Some(r.started);
                let o = crate::effects::at_end(self, ci, r.node, &r.step);
                self.step_began = None;
                o
            }
        };
        let rec = self
            .records
            .get_mut(key)
            .expect("a running step has a record");
        // A failed attempt applied nothing.
        if !matches!(outcome, Outcome::Failed(_)) {
            rec.applications += 1;
        }
        rec.ended = Some(self.now);
        rec.outcome = Some(outcome.clone());
        let c = &mut self.clusters[ci];
        c.last_end = Some(c.last_end.map_or(self.now, |t| t.max(self.now)));
        self.trace.push(TraceEntry {
            run: key.0,
            step: key.1.clone(),
            cluster: r.step.cluster.clone(),
            node: r.step.node.clone(),
            role: r.step.role.clone(),
            action: r.step.action.clone(),
            kind: r.step.kind,
            phase: r.step.phase,
            start: r.started,
            end: self.now,
            outcome: outcome.clone(),
        });
        self.finished.push_back((key.0, key.1.clone(), outcome));
        Some(ci)
    }

    /// Configuration changes made in the cluster and not refused, so far.
    fn config_changes_applied(&self, ci: usize) -> u64 {
        let a = &self.clusters[ci].acc;
        a.config_changes_made
            .saturating_sub(a.config_changes_refused)
    }

    /// An operator changed the configuration of cluster `ci` now: every running step of it
    /// with `fails_on_config_change` fails (when it ends).
    pub(crate) fn fail_steps_broken_by_config_change(&mut self, ci: usize) {
        let keys: Vec<(RunId, String)> = self
            .running
            .iter()
            .filter(|(_, r)| r.cluster == ci)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.fail_on_config_change(&key);
        }
    }

    /// The running step `key` fails when it ends, if a configuration change breaks it
    /// (`fails_on_config_change`) and it is not failing already.
    fn fail_on_config_change(&mut self, key: &(RunId, String)) {
        let Some(r) = self.running.get(key) else {
            return;
        };
        let Some(rule) = r.step.effects.iter().find_map(|e| match e {
            Effect::FailsOnConfigChange(rule) => Some(rule.clone()),
            _ => None,
        }) else {
            return;
        };
        if r.fail.is_some() {
            return;
        }
        let (ci, ni) = (r.cluster, r.node);
        let what = match ni {
            Some(n) => format!("the upgrade of {}", self.clusters[ci].nodes[n].name),
            None => format!("`{}`", r.step.title),
        };
        let reason = format!("{rule}: a configuration change was made during {what}, which failed");
        self.note(ci, ni, "upgrade-failed", reason.clone());
        if let Some(r) = self.running.get_mut(key) {
            r.fail = Some(reason);
        }
    }

    /// Integrates the cluster's impact figures up to now, with the state as it was.
    pub(crate) fn touch(&mut self, ci: usize) {
        let from = self.clusters[ci].accounted_at;
        if self.now > from {
            crate::impact::account(self, ci, from, self.now);
            self.clusters[ci].accounted_at = self.now;
        }
    }

    /// After a change: devices, clients, pairs, collection and waiting gates catch up. The
    /// first waiting gate (in the order they began) whose condition holds ends, the cluster
    /// catches up with what that changed, and so on until no waiting gate's condition holds.
    pub(crate) fn settle(&mut self, ci: usize) {
        loop {
            crate::pairs::settle(self, ci);
            crate::devices::route(self, ci);
            crate::config::route_clients(self, ci);
            crate::collector::settle(self, ci);
            self.gates_in_step(ci);
            let c = &self.clusters[ci];
            let Some(k) = c.waiting_gates.to_judge().into_iter().find(|&k| {
                let g = c.waiting_gates.get(k);
                crate::gates::all_hold(self, ci, g.node, &g.waits, g.started)
            }) else {
                // No gate left unjudged holds either.
                debug_assert!(
                    !c.waiting_gates
                        .iter()
                        .any(|g| crate::gates::all_hold(self, ci, g.node, &g.waits, g.started)),
                    "a waiting gate of {} holds but was not judged again",
                    c.name
                );
                self.clusters[ci].waiting_gates.judged();
                return;
            };
            let key = c.waiting[k].clone();
            let Some(fail) = self.running.get(&key).map(|r| r.fail.clone()) else {
                // Not running (a world saved inconsistently): it waits for nothing.
                let c = &mut self.clusters[ci];
                c.waiting.remove(k);
                c.waiting_gates.remove(k);
                continue;
            };
            self.end_step_unsettled(&key, fail, Some(k));
        }
    }

    /// Rebuilds the cluster's `waiting_gates` from the running steps when they are not in
    /// step with its `waiting` list (a world just loaded).
    fn gates_in_step(&mut self, ci: usize) {
        let c = &self.clusters[ci];
        if c.waiting_gates.len() == c.waiting.len() {
            return;
        }
        let mut gates = WaitingGates::default();
        for key in &c.waiting {
            let r = self.running.get(key);
            gates.push(
                r.and_then(|r| r.node),
                r.map(|r| crate::gates::waits_of(&r.step))
                    .unwrap_or_default(),
                r.map_or(self.now, |r| r.started),
            );
        }
        self.clusters[ci].waiting_gates = gates;
    }

    /// Node `ni` of cluster `ci` changed (its state, its log): the gates its own state decides
    /// are judged again at the next settling.
    pub(crate) fn node_changed(&mut self, ci: usize, ni: usize) {
        self.clusters[ci].waiting_gates.node_changed(ni);
    }

    /// Draws user settings changed on a node since its install or switch and lost to the
    /// database resynchronisation.
    pub(crate) fn user_changes_lost(&mut self, ci: usize, ni: usize) {
        let Some(u) = self.profile(ci).twin.user_changes.clone() else {
            return;
        };
        let devices: f64 = self.clusters[ci]
            .devices
            .iter()
            .filter(|d| d.at == Some(ni) || d.home == ni)
            .filter(|d| self.profile(ci).twin.devices[d.spec].name == u.devices)
            .map(|d| d.count)
            .sum();
        let lambda = u.per_hour_per_1000 * devices / 1000.0 * u.lost_within_min / 60.0;
        let lost = poisson(&mut self.rng, lambda);
        if lost > 0 {
            self.clusters[ci].acc.user_settings_lost += lost;
            let name = self.clusters[ci].nodes[ni].name.clone();
            self.note(
                ci,
                Some(ni),
                "user-settings-lost",
                format!("{lost} user setting(s) changed on phones of {name} were lost to the database resynchronisation"),
            );
        }
    }

    /// Accounts every cluster up to now (call before reading the impact).
    pub fn finish(&mut self) {
        for ci in 0..self.clusters.len() {
            self.touch(ci);
        }
    }

    /// Facts the twin observes now, per cluster (profile `[[twin.observe]]`).
    pub fn observe(&self) -> BTreeMap<String, Facts> {
        let mut out = BTreeMap::new();
        for (ci, c) in self.clusters.iter().enumerate() {
            let mut facts = Facts::new();
            for o in &self.profile(ci).twin.observe {
                let any = c
                    .nodes
                    .iter()
                    .enumerate()
                    .any(|(ni, n)| o.serving_any.contains(&n.role) && self.provides(ci, ni));
                facts.insert(o.fact.clone(), FactValue::Bool(any));
            }
            if !facts.is_empty() {
                out.insert(c.name.clone(), facts);
            }
        }
        out
    }
}
