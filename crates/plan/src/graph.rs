//! The step graph of one cluster: profile step templates instantiated per node, and the edges
//! that the procedure order, order rules and sequence rules put between them.

use crate::condition::{eval, fact, Scope as EvalScope};
use ferry_model::plan::{Edge, MAX_STEP_S};
use ferry_model::profile::{BatchRule, NodeFilter, Procedure, Scope, StepSelector, StepTemplate};
use ferry_model::redundancy::{Redundancy, Shortfall};
use ferry_model::{
    Cluster, Effect, Estimate, Impact, Node, PlannedStep, Profile, Severity, StepKind,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An order between more step pairs than this (with at least two steps on each side) goes
/// through a sync step instead of an edge per pair: the edges of a large cluster would grow
/// with the square of its nodes.
pub const SYNC_ABOVE_EDGES: usize = 1024;

/// One step instance with what the scheduler needs besides the plain step.
#[derive(Debug, Clone)]
pub struct Inst {
    pub step: PlannedStep,
    /// Index of the template in the procedure (its documented order); `None` for a sync step.
    pub template: Option<usize>,
}

/// A concurrency or capacity group over step instances.
#[derive(Debug, Clone)]
pub struct LimitGroup {
    pub rule: String,
    pub note: String,
    pub members: Vec<usize>,
    pub max_concurrent: Option<u32>,
    /// Per member: (partition, weight); per partition: base weight; and the maximum.
    pub capacity: Option<CapacityGroup>,
}

#[derive(Debug, Clone)]
pub struct CapacityGroup {
    pub max: f64,
    pub weight: BTreeMap<usize, (String, f64)>,
    pub base: BTreeMap<String, f64>,
    /// What the weights count (the limit's `weight_fact`), for messages.
    pub what: String,
    pub severity: Severity,
    /// Loads that stay on their partition after the step that put them there.
    pub hold: Option<HoldGroup>,
}

/// The held loads of a capacity group: a member of `from` puts its node's load on the node's
/// partition when it starts, and the load stays until a step of `until` on that node ends.
#[derive(Debug, Clone)]
pub struct HoldGroup {
    pub from: BTreeSet<usize>,
    pub until: BTreeSet<usize>,
    /// The longest a partition should carry other nodes' loads without a break, and where
    /// that figure comes from (the profile's default, or the site's fact).
    pub max_span: Option<(u64, String)>,
    /// The cluster fact a site sets it with.
    pub max_span_fact: Option<String>,
}

/// An order that gave way to a capacity limit on a partition that cannot carry all its loads
/// at once (`yields_to`): reported with the plan's findings.
#[derive(Debug, Clone)]
pub struct Yielded {
    pub order_rule: String,
    pub limit_rule: String,
    pub note: String,
    pub what: String,
    pub partition: ferry_model::capacity::Partition,
    pub max: f64,
}

/// A step instance the profile lets run ahead of the window (its template's `stage`, whose
/// condition holds for it): whether it does is decided on the whole graph (`stage::decide`).
#[derive(Debug, Clone)]
pub struct Stageable {
    pub rule: String,
    pub note: String,
    /// It runs ahead only together with a step of one of these actions, of its cluster.
    pub with: Vec<String>,
}

/// The batches a `[[procedure.batch]]` rule put a cluster's nodes in, and what no batching
/// avoids (reported with the plan's findings).
#[derive(Debug, Clone)]
pub struct Batched {
    pub rule: String,
    pub note: String,
    pub devices: Vec<String>,
    pub batches: Vec<Vec<String>>,
    pub fewest: bool,
    /// The leg's version, in a cluster that passes through intermediate versions.
    pub leg: Option<String>,
    /// (node, what its absence costs whatever the batches): a group with no other server, or a
    /// server over capacity (the node then goes alone).
    pub unavoidable: Vec<(String, String)>,
    /// Servers that take over others' devices in some batch without a stated capacity, in
    /// words (the batches assume they can carry them).
    pub uncapped: Vec<String>,
    /// Nodes the other rules order both ways, left out of the batches.
    pub left_out: Vec<Vec<String>>,
}

/// Steps, edges and limits of (part of) a plan.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub insts: Vec<Inst>,
    /// (from, to, rule, note)
    pub edges: Vec<(usize, usize, String, String)>,
    pub limits: Vec<LimitGroup>,
    /// Orders that gave way to a capacity limit, per partition.
    pub yielded: Vec<Yielded>,
    /// Instances the profile lets run ahead of the window, when the plan stages.
    pub stageable: BTreeMap<usize, Stageable>,
    /// Batches of the batch rules that apply.
    pub batched: Vec<Batched>,
}

impl Graph {
    pub fn plain_edges(&self) -> Vec<Edge> {
        self.edges
            .iter()
            .map(|(f, t, rule, note)| Edge {
                from: self.insts[*f].step.id.clone(),
                to: self.insts[*t].step.id.clone(),
                rule: rule.clone(),
                note: note.clone(),
            })
            .collect()
    }

    /// Makes room for the steps and edges of `parts`, to be appended.
    pub fn reserve<'a>(&mut self, parts: impl Iterator<Item = &'a Graph> + Clone) {
        self.insts
            .reserve_exact(parts.clone().map(|g| g.insts.len()).sum());
        self.edges.reserve_exact(parts.map(|g| g.edges.len()).sum());
    }

    /// Appends another graph, shifting its indices.
    pub fn append(&mut self, other: Graph) -> usize {
        // Into an empty graph with no room made: the other graph as it is, without a copy.
        if self.insts.capacity() == 0
            && self.edges.capacity() == 0
            && self.limits.is_empty()
            && self.yielded.is_empty()
        {
            *self = other;
            return 0;
        }
        let base = self.insts.len();
        self.insts.extend(other.insts);
        self.edges.extend(
            other
                .edges
                .into_iter()
                .map(|(f, t, r, n)| (f + base, t + base, r, n)),
        );
        for mut l in other.limits {
            l.members.iter_mut().for_each(|m| *m += base);
            if let Some(c) = &mut l.capacity {
                c.weight = std::mem::take(&mut c.weight)
                    .into_iter()
                    .map(|(k, v)| (k + base, v))
                    .collect();
                if let Some(h) = &mut c.hold {
                    h.from = h.from.iter().map(|m| m + base).collect();
                    h.until = h.until.iter().map(|m| m + base).collect();
                }
            }
            self.limits.push(l);
        }
        self.yielded.extend(other.yielded);
        self.stageable
            .extend(other.stageable.into_iter().map(|(i, s)| (i + base, s)));
        self.batched.extend(other.batched);
        base
    }
}

/// A step text with `{node}`, `{fact.NAME}` and the like filled in for this instance.
fn filled(text: &str, cluster: &Cluster, node: Option<&Node>) -> String {
    if text.contains('{') {
        crate::checks::fill(text, cluster, node, "")
    } else {
        text.to_string()
    }
}

fn node_selected(filter: NodeFilter, n: &Node) -> bool {
    match filter {
        NodeFilter::Upgrading => n.upgrading(),
        NodeFilter::All => true,
        NodeFilter::Unchanged => !n.upgrading(),
    }
}

/// A step's planned duration: the observed one for its (profile, action) when `estimates` has
/// it, else the profile's estimate.
fn duration_s(
    t: &StepTemplate,
    cluster: &Cluster,
    node: Option<&Node>,
    estimates: &BTreeMap<(String, String), u64>,
) -> (u64, Estimate) {
    if !estimates.is_empty() {
        if let Some(&s) = estimates.get(&(cluster.profile.clone(), t.id.clone())) {
            return (s.min(MAX_STEP_S), Estimate::Observed);
        }
    }
    (profile_duration_s(t, cluster, node), Estimate::Profile)
}

fn profile_duration_s(t: &StepTemplate, cluster: &Cluster, node: Option<&Node>) -> u64 {
    let mut minutes = t.minutes;
    if let Some(pf) = &t.per_fact {
        if let Some(x) = fact(cluster, node, &pf.fact).and_then(|v| v.as_f64()) {
            minutes += (x.max(0.0) / pf.per).ceil() * pf.minutes;
        }
    }
    seconds(minutes * 60.0)
}

/// Seconds as a step's length: rounded, and within 0 and `MAX_STEP_S` (NaN is 0).
fn seconds(s: f64) -> u64 {
    if s.is_nan() {
        0
    } else {
        (s.round().clamp(0.0, MAX_STEP_S as f64)) as u64
    }
}

/// The step's effects for this instance: conditional effects decided, in the order written.
fn effects(list: &[Effect], scope: &EvalScope<'_>, node: Option<&Node>) -> Vec<Effect> {
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        match e {
            Effect::If { when, then } => {
                if eval(when, scope, node) {
                    out.extend(effects(then, scope, node));
                }
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// A gate's timeout: the template's, else the profile's factor times the estimate.
fn timeout_s(t: &StepTemplate, profile: &Profile, duration_s: u64) -> Option<u64> {
    if t.kind != StepKind::Gate {
        return None;
    }
    Some(match t.timeout_minutes {
        Some(m) => seconds(m * 60.0),
        None => seconds(duration_s as f64 * profile.twin.gate_timeout_factor),
    })
}

/// What the graph of one cluster is built from.
pub struct BuildInput<'a> {
    pub cluster: &'a Cluster,
    pub profile: &'a Profile,
    pub procedure: &'a Procedure,
    pub upgrade_type: &'a str,
    pub strategy: &'a str,
    /// Appended to every step ID (used when a cluster passes through intermediate versions).
    pub id_suffix: &'a str,
    /// Which leg of the version path this is: (index, count).
    pub leg: (usize, usize),
    /// Observed durations per (profile, action) that replace the profile's estimates.
    pub estimates: &'a BTreeMap<(String, String), u64>,
    /// The run whose rollback is built (`run` conditions), when one is known.
    pub run: Option<&'a ferry_model::RunProgress>,
    /// The plan stages work ahead of the window: `staging` conditions hold, and steps with a
    /// `stage` rule are noted as stageable.
    pub staging: bool,
}

pub fn build(input: &BuildInput<'_>) -> Graph {
    let BuildInput {
        cluster,
        profile,
        procedure,
        upgrade_type,
        strategy,
        id_suffix,
        leg,
        estimates,
        run,
        staging,
    } = *input;
    let scope = EvalScope {
        cluster,
        profile,
        upgrade_type: Some(upgrade_type),
        strategy,
        leg,
        run,
        staging,
    };
    let mut g = Graph::default();
    // Instances per template, in template order.
    let mut by_template: Vec<Vec<usize>> = Vec::with_capacity(procedure.steps.len());
    // Per instance: the position of its node in the cluster (`None`: cluster-wide).
    let mut node_pos: Vec<Option<usize>> = Vec::new();
    // Each node's target version as text, made at its first step.
    let mut targets: Vec<Option<String>> = vec![None; cluster.nodes.len()];
    for (ti, t) in procedure.steps.iter().enumerate() {
        let mut here = Vec::new();
        // Which of the template's texts have `{...}` to fill in.
        let to_fill = |text: &str| text.contains('{');
        let (title_fills, instructions_fill, verify_fills) = (
            to_fill(&t.title),
            to_fill(&t.instructions),
            to_fill(&t.verify),
        );
        let text = |fills: bool, text: &str, node: Option<&Node>| {
            if fills {
                crate::checks::fill(text, cluster, node, "")
            } else {
                text.to_string()
            }
        };
        let mut push = |at: Option<(usize, &Node)>, g: &mut Graph| {
            let node = at.map(|(_, n)| n);
            let (duration_s, estimate) = duration_s(t, cluster, node, estimates);
            let mut id = String::with_capacity(
                cluster.name.len()
                    + node.map_or(0, |n| n.name.len() + 1)
                    + t.id.len()
                    + id_suffix.len()
                    + 1,
            );
            id.push_str(&cluster.name);
            id.push('/');
            if let Some(n) = node {
                id.push_str(&n.name);
                id.push('/');
            }
            id.push_str(&t.id);
            id.push_str(id_suffix);
            let version = at.map(|(k, n)| {
                targets[k]
                    .get_or_insert_with(|| n.target.to_string())
                    .clone()
            });
            g.insts.push(Inst {
                step: PlannedStep {
                    id,
                    cluster: cluster.name.clone(),
                    node: node.map(|n| n.name.clone()),
                    role: node.map(|n| n.role.clone()),
                    action: t.id.clone(),
                    title: text(title_fills, &t.title, node),
                    kind: t.kind,
                    phase: t.phase,
                    after: Vec::new(),
                    rules: t.rules.clone(),
                    start_s: 0,
                    duration_s,
                    estimate,
                    spread: None,
                    impact: t.impact,
                    impact_note: t.impact_note.clone(),
                    instructions: text(instructions_fill, &t.instructions, node),
                    verify: text(verify_fills, &t.verify, node),
                    warning: t.warning.as_deref().map(|w| filled(w, cluster, node)),
                    version,
                    effects: effects(&t.effects, &scope, node),
                    retries: t.retries,
                    timeout_s: timeout_s(t, profile, duration_s),
                    rollback: false,
                },
                template: Some(ti),
            });
            let i = g.insts.len() - 1;
            if let Some(st) = t.stage.as_ref().filter(|_| staging) {
                if st.when.as_ref().is_none_or(|c| eval(c, &scope, node)) {
                    g.stageable.insert(
                        i,
                        Stageable {
                            rule: st.rule.clone(),
                            note: st.note.clone(),
                            with: st.with.clone(),
                        },
                    );
                }
            }
            i
        };
        match t.scope {
            Scope::Cluster => {
                if t.when.as_ref().is_none_or(|c| eval(c, &scope, None)) {
                    here.push(push(None, &mut g));
                    node_pos.push(None);
                }
            }
            Scope::Node => {
                for (k, n) in cluster.nodes.iter().enumerate() {
                    if (t.roles.is_empty() || t.roles.contains(&n.role))
                        && node_selected(t.nodes, n)
                        && t.when.as_ref().is_none_or(|c| eval(c, &scope, Some(n)))
                    {
                        here.push(push(Some((k, n)), &mut g));
                        node_pos.push(Some(k));
                    }
                }
            }
        }
        by_template.push(here);
    }
    procedure_edges(
        &mut g,
        procedure,
        &by_template,
        &node_pos,
        cluster.nodes.len(),
    );
    // The instances of the templates named `ids` that `keep` keeps, in instance order.
    let instances = |g: &Graph, ids: &[String], keep: &dyn Fn(&Inst) -> bool| -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut templates = 0;
        for (ti, t) in procedure.steps.iter().enumerate() {
            if ids.contains(&t.id) {
                templates += 1;
                out.extend(
                    by_template[ti]
                        .iter()
                        .copied()
                        .filter(|&i| keep(&g.insts[i])),
                );
            }
        }
        if templates > 1 {
            out.sort_unstable();
        }
        out
    };
    // The instances a selector picks, in instance order.
    let selected = |g: &Graph, sel: &StepSelector| -> Vec<usize> {
        instances(g, &sel.step, &|inst: &Inst| {
            sel.roles.is_empty()
                || inst
                    .step
                    .role
                    .as_ref()
                    .is_some_and(|r| sel.roles.contains(r))
        })
    };
    for o in &procedure.orders {
        if !o.when.as_ref().is_none_or(|c| eval(c, &scope, None)) {
            continue;
        }
        let before = selected(&g, &o.before);
        let then = selected(&g, &o.then);
        let yielding = ferry_model::capacity::yielding(o, &procedure.limits, cluster, |l| {
            l.when.as_ref().is_none_or(|c| eval(c, &scope, None))
        });
        if yielding.is_empty() {
            let title = || {
                format!(
                    "Every {} has ended before any {} starts",
                    selection(&o.before),
                    selection(&o.then)
                )
            };
            let ends = Ends {
                cluster: &cluster.name,
                rule: &o.rule,
                note: &o.note,
                id_suffix,
            };
            if order_through_sync(&mut g, &before, &then, &ends, title) {
                continue;
            }
        }
        let node_of = |i: usize| g.insts[i].step.node.as_deref().unwrap_or_default();
        let mut gave_way = false;
        for &b in &before {
            for &t in &then {
                if b == t {
                    continue;
                }
                if ferry_model::capacity::gives_way(&yielding, node_of(b), node_of(t)) {
                    gave_way = true;
                    continue;
                }
                g.edges.push((b, t, o.rule.clone(), o.note.clone()));
            }
        }
        if gave_way {
            if let Some(y) = &o.yields_to {
                for (p, max) in yielding {
                    let what = procedure
                        .limits
                        .iter()
                        .filter(|l| l.rule == y.rule)
                        .find_map(|l| l.capacity.as_ref())
                        .map(|c| c.weight_fact.clone())
                        .unwrap_or_default();
                    g.yielded.push(Yielded {
                        order_rule: o.rule.clone(),
                        limit_rule: y.rule.clone(),
                        note: y.note.clone(),
                        what,
                        partition: p,
                        max,
                    });
                }
            }
        }
    }
    for s in &procedure.sequences {
        if !s.when.as_ref().is_none_or(|c| eval(c, &scope, None)) {
            continue;
        }
        // Per node (by position): its first and last step of the sequence.
        let mut spans: Vec<Option<(usize, usize)>> = vec![None; cluster.nodes.len()];
        for (i, &k) in node_pos.iter().enumerate() {
            let (Some(k), Some(t)) = (k, g.insts[i].template) else {
                continue;
            };
            if s.steps.contains(&procedure.steps[t].id) {
                let span = spans[k].get_or_insert((i, i));
                span.1 = i;
            }
        }
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        for role in &s.roles {
            for (k, _) in cluster
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| &n.role == role)
            {
                if let Some(block) = spans[k] {
                    blocks.push(block);
                }
            }
        }
        for w in blocks.windows(2) {
            g.edges
                .push((w[0].1, w[1].0, s.rule.clone(), s.note.clone()));
        }
    }
    // The node of each instance, and nodes by name (made at the first need).
    let node_of = |i: usize| {
        node_pos
            .get(i)
            .copied()
            .flatten()
            .map(|k| &cluster.nodes[k])
    };
    let by_name: std::cell::OnceCell<HashMap<&str, &Node>> = std::cell::OnceCell::new();
    let node_named = |name: &str| {
        by_name
            .get_or_init(|| {
                cluster
                    .nodes
                    .iter()
                    .rev()
                    .map(|n| (n.name.as_str(), n))
                    .collect()
            })
            .get(name)
            .copied()
    };
    for b in &procedure.batches {
        if b.when.as_ref().is_none_or(|c| eval(c, &scope, None)) {
            batch_edges(&mut g, b, cluster, profile, procedure, &node_pos);
            if let Some(last) = g.batched.last_mut() {
                last.leg = id_suffix.strip_prefix('@').map(str::to_string);
            }
        }
    }
    for l in &procedure.limits {
        if !l.when.as_ref().is_none_or(|c| eval(c, &scope, None)) {
            continue;
        }
        let members = selected(&g, &l.steps);
        let capacity = l.capacity.as_ref().map(|c| {
            let mut weight = BTreeMap::new();
            let mut base = BTreeMap::new();
            for &m in &members {
                let node = node_of(m);
                let w = fact(cluster, node, &c.weight_fact)
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                let part = match &c.per_fact {
                    Some(f) => fact(cluster, node, f)
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    None => String::new(),
                };
                if c.include_named_node {
                    let b = node_named(&part)
                        .and_then(|n| n.facts.get(&c.weight_fact))
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0);
                    base.insert(part.clone(), b);
                }
                weight.insert(m, (part, w));
            }
            let hold = c.hold.as_ref().map(|h| {
                let from = members
                    .iter()
                    .copied()
                    .filter(|&m| {
                        g.insts[m]
                            .template
                            .is_some_and(|t| h.from.contains(&procedure.steps[t].id))
                    })
                    .collect();
                let until = instances(&g, &h.until, &|inst: &Inst| inst.step.node.is_some())
                    .into_iter()
                    .collect();
                let site_hours = h
                    .max_hours_fact
                    .as_ref()
                    .and_then(|f| {
                        cluster
                            .facts
                            .get(f)
                            .and_then(|v| v.as_f64())
                            .map(|x| (f, x))
                    })
                    .filter(|(_, x)| *x > 0.0);
                let max_span = match (site_hours, h.max_hours) {
                    (Some((f, x)), _) => Some((x, format!("the site's {f}"))),
                    (None, Some(x)) => {
                        Some((x, format!("the {} profile's default", profile.profile.name)))
                    }
                    (None, None) => None,
                }
                .map(|(x, why)| ((x * 3600.0).round() as u64, why));
                HoldGroup {
                    from,
                    until,
                    max_span,
                    max_span_fact: h.max_hours_fact.clone(),
                }
            });
            CapacityGroup {
                max: c.max,
                weight,
                base,
                what: c.weight_fact.clone(),
                severity: c.severity,
                hold,
            }
        });
        match &l.per_fact {
            // One group per value of the fact (steps on nodes without it are not limited).
            Some(f) => {
                let mut parts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for &m in &members {
                    let node = node_of(m);
                    if let Some(v) = fact(cluster, node, f) {
                        parts.entry(v.to_string()).or_default().push(m);
                    }
                }
                for (value, members) in parts {
                    g.limits.push(LimitGroup {
                        rule: l.rule.clone(),
                        note: format!("{} ({f} = {value})", l.note),
                        members,
                        max_concurrent: l.max_concurrent,
                        capacity: None,
                    });
                }
            }
            None => g.limits.push(LimitGroup {
                rule: l.rule.clone(),
                note: l.note.clone(),
                members,
                max_concurrent: l.max_concurrent,
                capacity,
            }),
        }
    }
    // A large cluster's steps stay in this graph until the plan is made: no room to spare.
    g.insts.shrink_to_fit();
    g.edges.shrink_to_fit();
    g
}

/// A batch rule: the nodes of its roles with a block, split into batches
/// (`crate::batch`), each batch's blocks after every block of the batch before. A node's block
/// is its instances of the rule's steps; the order the other rules already put between two
/// nodes' blocks is kept (the earlier one's batch is not later).
fn batch_edges(
    g: &mut Graph,
    rule: &BatchRule,
    cluster: &Cluster,
    profile: &Profile,
    procedure: &Procedure,
    node_pos: &[Option<usize>],
) {
    // Per node position: its steps that the rule batches, in instance order.
    let mut on_node: Vec<Vec<usize>> = vec![Vec::new(); cluster.nodes.len()];
    for (i, &k) in node_pos.iter().enumerate() {
        if let (Some(k), Some(t)) = (k, g.insts[i].template) {
            if rule.steps.contains(&procedure.steps[t].id) {
                on_node[k].push(i);
            }
        }
    }
    let mut nodes: Vec<String> = Vec::new();
    let mut blocks: Vec<Vec<usize>> = Vec::new();
    for (n, block) in cluster
        .nodes
        .iter()
        .zip(on_node)
        .filter(|(n, _)| rule.roles.contains(&n.role))
    {
        if !block.is_empty() {
            nodes.push(n.name.clone());
            blocks.push(block);
        }
    }
    let redundancy: Vec<Redundancy> = rule
        .devices
        .iter()
        .filter_map(|d| profile.twin.devices.iter().find(|s| &s.name == d))
        .map(|s| Redundancy::of(s, cluster))
        .collect();
    // A node that serves no group, as home or backup, is out of service without a cost: it is
    // left out of the batches.
    let serves = |name: &str| {
        redundancy.iter().any(|r| {
            r.servers
                .iter()
                .position(|(s, _)| s == name)
                .is_some_and(|x| {
                    r.groups
                        .iter()
                        .any(|g| g.count > 0.0 && (g.servers.contains(&x) || g.peers.contains(&x)))
                })
        })
    };
    let keep: Vec<bool> = nodes.iter().map(|n| serves(n)).collect();
    let mut k = keep.iter();
    nodes.retain(|_| *k.next().unwrap_or(&false));
    let mut k = keep.iter();
    blocks.retain(|_| *k.next().unwrap_or(&false));
    if nodes.is_empty() {
        return;
    }
    // Which blocks the rules already put after which.
    let mut owner = vec![usize::MAX; g.insts.len()];
    for (ni, b) in blocks.iter().enumerate() {
        for &i in b {
            owner[i] = ni;
        }
    }
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); g.insts.len()];
    for (f, t, _, _) in &g.edges {
        succs[*f].push(*t);
    }
    let mut before = BTreeSet::new();
    for (a, block) in blocks.iter().enumerate() {
        let mut seen = vec![false; g.insts.len()];
        let mut stack = block.clone();
        while let Some(x) = stack.pop() {
            for &y in &succs[x] {
                if !seen[y] {
                    seen[y] = true;
                    if owner[y] != usize::MAX && owner[y] != a {
                        before.insert((a, owner[y]));
                    }
                    stack.push(y);
                }
            }
        }
    }
    let before: Vec<(usize, usize)> = before.into_iter().collect();
    let result = crate::batch::batches(crate::batch::Input {
        nodes: &nodes,
        redundancy: &redundancy,
        before: &before,
    });
    let names = |b: &[usize]| {
        b.iter()
            .map(|&m| nodes[m].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = rule.devices.join(" and ");
    let count = result.batches.len();
    for (j, w) in result.batches.windows(2).enumerate() {
        let note = format!(
            "batch {} of {count} ({}) starts once batch {} ({}) is back: while a batch is out, every group of {what} keeps a serving server within capacity. {}",
            j + 2,
            names(&w[1]),
            j + 1,
            names(&w[0]),
            rule.note
        );
        let note = note.trim_end().to_string();
        for &a in &w[0] {
            for &b in &w[1] {
                let (Some(&last), Some(&first)) = (blocks[a].last(), blocks[b].first()) else {
                    continue;
                };
                g.edges.push((last, first, rule.rule.clone(), note.clone()));
            }
        }
    }
    let amount = |x: f64| {
        if x.fract() == 0.0 {
            format!("{}", x as i64)
        } else {
            format!("{x:.2}")
        }
    };
    let mut unavoidable = Vec::new();
    for (r, s, set) in &result.unavoidable {
        let red = &redundancy[*r];
        let who = names(set);
        let verb = if set.len() == 1 { "is" } else { "are" };
        let text = match s {
            Shortfall::Unserved { group } => {
                let grp = &red.groups[*group];
                let servers = grp
                    .servers
                    .iter()
                    .map(|&x| red.servers[x].0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "the {} {} of {} have no server but {servers}: they are unregistered while {who} {verb} out, whatever the batches",
                    amount(grp.count),
                    red.what,
                    grp.name,
                )
            }
            Shortfall::OverCapacity {
                server,
                load,
                capacity,
            } => format!(
                "while {who} {verb} out, {} would carry {} {} (capacity {}): {who} {} in a batch of {}, and the {} above the capacity cannot register",
                red.servers[*server].0,
                amount(*load),
                red.what,
                amount(*capacity),
                if set.len() == 1 { "goes" } else { "go" },
                if set.len() == 1 { "its own" } else { "their own" },
                red.what
            ),
        };
        let first = set.first().map(|&m| nodes[m].clone()).unwrap_or_default();
        unavoidable.push((first, text));
    }
    // Servers that carry others' devices while a batch is out, with no capacity stated.
    let mut uncapped = Vec::new();
    for (ri, red) in redundancy.iter().enumerate() {
        let mut peak: BTreeMap<usize, f64> = BTreeMap::new();
        for b in &result.batches {
            let mut out = vec![false; red.servers.len()];
            for &m in b {
                if let Some(x) = red.servers.iter().position(|(s, _)| s == &nodes[m]) {
                    out[x] = true;
                }
            }
            let p = red.place(&out);
            for (gi, grp) in red.groups.iter().enumerate() {
                if let Some(x) = p.at[gi] {
                    if grp.servers.first() != Some(&x) && red.servers[x].1.is_none() {
                        let e = peak.entry(x).or_insert(0.0);
                        *e = e.max(p.load[x]);
                    }
                }
            }
        }
        if !peak.is_empty() {
            let fact = rule
                .devices
                .get(ri)
                .and_then(|d| profile.twin.devices.iter().find(|s| &s.name == d))
                .and_then(|s| s.capacity_fact.clone());
            let list = peak
                .iter()
                .map(|(&x, &l)| format!("{} up to {}", red.servers[x].0, amount(l)))
                .collect::<Vec<_>>()
                .join(", ");
            uncapped.push(format!(
                "while a batch is out, {list} {} carry {} of other servers, and no capacity is stated for {}: the batches assume {} can{}",
                if peak.len() == 1 { "would" } else { "would each" },
                red.what,
                if peak.len() == 1 { "it" } else { "them" },
                if peak.len() == 1 { "it" } else { "they" },
                fact.map(|f| format!(" (state the fact `{f}` to limit them)"))
                    .unwrap_or_default()
            ));
        }
    }
    g.batched.push(Batched {
        rule: rule.rule.clone(),
        note: rule.note.clone(),
        devices: rule.devices.clone(),
        batches: result
            .batches
            .iter()
            .map(|b| b.iter().map(|&m| nodes[m].clone()).collect())
            .collect(),
        fewest: result.fewest,
        leg: None,
        unavoidable,
        uncapped,
        left_out: result
            .left_out
            .iter()
            .map(|u| u.iter().map(|&m| nodes[m].clone()).collect())
            .collect(),
    });
}

/// Procedure order: a node step follows the nearest earlier template that has an instance on
/// the same node or a cluster-wide instance; a cluster step follows every instance of the
/// nearest earlier template that has any. Each phase is its own
/// sequence: steps look back only at steps of their own phase.
fn procedure_edges(
    g: &mut Graph,
    procedure: &Procedure,
    by_template: &[Vec<usize>],
    node_pos: &[Option<usize>],
    nodes: usize,
) {
    // Per template and node position: its instance there. A node template has at most one
    // instance per node, a cluster template at most one in all.
    let mut on_node: Vec<usize> = vec![usize::MAX; by_template.len() * nodes];
    for (ti, insts) in by_template.iter().enumerate() {
        for &p in insts {
            if let Some(k) = node_pos[p] {
                on_node[ti * nodes + k] = p;
            }
        }
    }
    let mut new_edges = Vec::new();
    for (ti, insts) in by_template.iter().enumerate() {
        let t = &procedure.steps[ti];
        if !t.follows_previous {
            continue;
        }
        for &i in insts {
            let node = g.insts[i].step.node.as_deref();
            let pos = node_pos[i];
            // Each phase is its own sequence: the whole prepare phase comes before the window.
            for prev in (0..ti)
                .rev()
                .filter(|&p| procedure.steps[p].phase == t.phase)
            {
                // Instances on the same node or cluster-wide, in instance order.
                let candidates: Vec<usize> = match pos {
                    Some(k) if procedure.steps[prev].scope == Scope::Node => {
                        let p = on_node[prev * nodes + k];
                        if p == usize::MAX {
                            Vec::new()
                        } else {
                            vec![p]
                        }
                    }
                    _ => by_template[prev].clone(),
                };
                if candidates.is_empty() {
                    continue;
                }
                let rule = t
                    .rules
                    .first()
                    .cloned()
                    .or_else(|| procedure.steps[prev].rules.first().cloned())
                    .unwrap_or_default();
                let note = match &node {
                    Some(n) => format!(
                        "procedure order on {n}: `{}` comes after `{}`",
                        t.id, procedure.steps[prev].id
                    ),
                    None => format!(
                        "procedure order: `{}` comes after `{}`",
                        t.id, procedure.steps[prev].id
                    ),
                };
                for p in candidates {
                    new_edges.push((p, i, rule.clone(), note.clone()));
                }
                break;
            }
        }
    }
    g.edges.extend(new_edges);
}

/// The steps a selector picks, for a sync step's title: "`switch` (subscriber)".
fn selection(sel: &StepSelector) -> String {
    let steps = sel
        .step
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join("/");
    if sel.roles.is_empty() {
        steps
    } else {
        format!("{steps} ({})", sel.roles.join(", "))
    }
}

/// What the edges of an order carry, and where a sync step for it goes.
pub(crate) struct Ends<'a> {
    pub cluster: &'a str,
    pub rule: &'a str,
    pub note: &'a str,
    /// The step IDs' suffix of this leg of the version path.
    pub id_suffix: &'a str,
}

/// Orders every step of `before` before every step of `then` through a new sync step (edges
/// from each of `before` to it and from it to each of `then`, with the order's rule and note)
/// when an edge per pair would take more than `SYNC_ABOVE_EDGES` edges. It does not when the
/// two sets share a step or their steps are not all of one phase. Returns whether it did.
pub(crate) fn order_through_sync(
    g: &mut Graph,
    before: &[usize],
    then: &[usize],
    ends: &Ends<'_>,
    title: impl FnOnce() -> String,
) -> bool {
    if before.len() < 2
        || then.len() < 2
        || before.len().saturating_mul(then.len()) <= SYNC_ABOVE_EDGES
    {
        return false;
    }
    let phase = g.insts[before[0]].step.phase;
    let mut sides: Vec<usize> = before.iter().chain(then).copied().collect();
    sides.sort_unstable();
    if sides.windows(2).any(|w| w[0] == w[1])
        || sides.iter().any(|&i| g.insts[i].step.phase != phase)
    {
        return false;
    }
    let prefix = format!("{}/sync-{}", ends.cluster, ends.rule);
    let taken = |id: &str| g.insts.iter().any(|i| i.step.id == id);
    let mut id = format!("{prefix}{}", ends.id_suffix);
    let mut n = 1;
    while taken(&id) {
        n += 1;
        id = format!("{prefix}-{n}{}", ends.id_suffix);
    }
    let sync = g.insts.len();
    g.insts.push(Inst {
        step: PlannedStep {
            id,
            cluster: ends.cluster.to_string(),
            node: None,
            role: None,
            action: "sync".into(),
            title: title(),
            kind: StepKind::Sync,
            phase,
            after: Vec::new(),
            rules: vec![ends.rule.to_string()],
            start_s: 0,
            duration_s: 0,
            estimate: Estimate::Profile,
            spread: None,
            impact: Impact::None,
            impact_note: String::new(),
            instructions: "Nothing to do: the steps after this point start once every step before it has ended.".into(),
            verify: String::new(),
            warning: None,
            version: None,
            effects: Vec::new(),
            retries: 0,
            timeout_s: None,
            rollback: false,
        },
        template: None,
    });
    for &b in before {
        g.edges
            .push((b, sync, ends.rule.to_string(), ends.note.to_string()));
    }
    for &t in then {
        g.edges
            .push((sync, t, ends.rule.to_string(), ends.note.to_string()));
    }
    true
}
