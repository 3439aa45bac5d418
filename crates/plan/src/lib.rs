//! The planner: from a site and its profiles to a plan: version paths, upgrade types,
//! preflight findings, the step graph, its schedule, estimates and the rollback plan.
//!
//! Pure and deterministic: no IO, no clock; the same inputs give the same plan, byte for byte.

pub mod batch;
pub mod checks;
pub use ferry_model::condition;
pub mod explain;
pub mod graph;
pub mod occupancy;
pub mod path;
pub mod render;
pub mod report;
pub mod schedule;
pub mod stage;

use condition::{eval, Scope};
use ferry_model::plan::{Edge, LimitGroup as PlanLimit, SCHEMA_VERSION};
use ferry_model::{
    Cluster, ClusterPlan, Finding, Measure, Phase, Plan, PlannedStep, Profile, Severity, Site,
};
use graph::{build, BuildInput, Graph};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

pub use explain::explain;
pub use schedule::ScheduleError;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cluster `{cluster}` uses profile `{profile}`, which is not loaded")]
    UnknownProfile { cluster: String, profile: String },
    /// A cluster's steps cannot be ordered: its profile's rules contradict each other (a
    /// cluster whose nodes run different versions is a finding instead).
    #[error("cluster `{cluster}` (profile `{profile}`): cannot schedule: {source}")]
    Schedule {
        cluster: String,
        profile: String,
        source: Box<ScheduleError>,
    },
    #[error("cannot schedule: {0}")]
    Site(#[from] ScheduleError),
}

/// The engine's rule for clusters whose nodes run different versions.
pub const MIXED_VERSIONS_RULE: &str = "FERRY-MIXED-VERSIONS";

/// The rule of the finding `check` gives a site whose booked window has already closed: a
/// matter of the booking, not of a vendor's rule.
pub const WINDOW_CLOSED_RULE: &str = "FERRY-WINDOW";

/// Nodes that should share a version and do not: the nodes of the profile's `version_roles`
/// together (when it names them), else the nodes of each role. Empty when all agree.
fn mixed_versions<'c>(cluster: &'c Cluster, profile: &Profile) -> Vec<&'c ferry_model::Node> {
    let roles = &profile.profile.version_roles;
    let groups: Vec<Vec<&ferry_model::Node>> = if roles.is_empty() {
        profile
            .roles
            .iter()
            .map(|r| cluster.nodes.iter().filter(|n| n.role == r.name).collect())
            .collect()
    } else {
        vec![cluster
            .nodes
            .iter()
            .filter(|n| roles.contains(&n.role))
            .collect()]
    };
    groups
        .into_iter()
        .filter(|g| g.iter().any(|n| n.version != g[0].version))
        .flatten()
        .collect()
}

/// The finding for a cluster whose nodes run different versions: a warning when the plan can
/// still order its steps, an inhibitor (and no steps) when `unschedulable` says why not.
fn mixed_versions_finding(
    cluster: &Cluster,
    profile: &Profile,
    nodes: &[&ferry_model::Node],
    unschedulable: Option<&ScheduleError>,
) -> Finding {
    let list = nodes
        .iter()
        .map(|n| format!("{} ({}) runs {}", n.name, n.role, n.version))
        .collect::<Vec<_>>()
        .join(", ");
    let (severity, consequence, remedy) = match unschedulable {
        Some(ScheduleError::Cycle { steps, rules }) => (
            Severity::Inhibitor,
            format!(
                "from these versions the rules {} of profile `{}` cannot all be kept (through steps {}), so no step is planned for this cluster",
                rules.join(", "),
                profile.profile.name,
                steps.join(", ")
            ),
            "Bring the nodes behind to the version the others run first (upgrade them, or restore them from backup), or correct their `version` in the site file if it is wrong; then plan again.",
        ),
        Some(e) => (
            Severity::Inhibitor,
            format!("from these versions the steps cannot be ordered ({e}), so no step is planned for this cluster"),
            "Bring the nodes behind to the version the others run first (upgrade them, or restore them from backup), or correct their `version` in the site file if it is wrong; then plan again.",
        ),
        None => (
            Severity::Warning,
            "the plan takes each node from its own version to its target, along the path from the oldest".to_string(),
            "Check the nodes' `version` in the site file: a cluster normally runs one version. If a node was left behind by an earlier upgrade, consider bringing it level first.",
        ),
    };
    Finding {
        key: format!("mixed-versions/{}", cluster.name),
        rule: MIXED_VERSIONS_RULE.to_string(),
        severity,
        cluster: Some(cluster.name.clone()),
        node: None,
        message: format!(
            "the nodes of cluster {} run different versions: {list}; {consequence}",
            cluster.name
        ),
        remedy: remedy.to_string(),
    }
}

/// Choices the user makes when planning.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Overrides every cluster's strategy (`fastest`, `one-at-a-time`, or a profile's own).
    pub strategy: Option<String>,
    /// Observed step durations in seconds per (profile, action), e.g. the medians of past runs:
    /// they replace the profile's estimate of every matching step, which is then marked
    /// `estimate: observed`.
    pub estimates: BTreeMap<(String, String), u64>,
    /// The spread of those observed durations per (profile, action), as factors of the median
    /// (`[low, high]`), where there were enough of them: the step carries it (`spread`), and
    /// the twin draws its duration in it instead of the profile's `duration_spread`.
    pub spreads: BTreeMap<(String, String), [f64; 2]>,
    /// The run whose rollback is planned: how far it got decides the rollback procedure's
    /// `run` conditions. `None` (a plan made before any run): they hold.
    pub progress: Option<ferry_model::RunProgress>,
    /// Stage work ahead of the window even when the site books no staging period: the steps
    /// the profiles let run while their nodes keep serving are planned just before the window.
    pub stage: bool,
}

/// Whether a plan of `site` with `opts` stages work ahead of the window.
pub fn stages(site: &Site, opts: &PlanOptions) -> bool {
    opts.stage || site.stage.is_some()
}

/// SHA-256 over named input texts, in the order given.
pub fn input_hash(parts: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    for (name, text) in parts {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.len().to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything planned for one cluster before the site-wide schedule.
struct ClusterWork {
    plan: ClusterPlan,
    graph: Graph,
    rollback: Graph,
    findings: Vec<Finding>,
    batches: Vec<ferry_model::plan::Batching>,
}

/// The engine's rule for strategies a cluster's profile does not offer as asked.
pub const STRATEGY_RULE: &str = "FERRY-STRATEGY";

/// The strategy `cluster` is planned with, and a finding when it is not the one asked for: a
/// strategy its profile renamed is planned under its new name (a warning that says what to
/// write), and a shared or another profile's strategy that this profile does not offer is
/// planned as `fastest` (an info finding).
fn strategy_of(
    opts: &PlanOptions,
    cluster: &Cluster,
    profile: &Profile,
) -> (String, Option<Finding>) {
    let asked = opts
        .strategy
        .clone()
        .or_else(|| cluster.strategy.clone())
        .unwrap_or_else(|| "fastest".to_string());
    let meta = &profile.profile;
    if ferry_model::profile::BASE_STRATEGIES.contains(&asked.as_str())
        || meta.strategies.contains(&asked)
    {
        return (asked, None);
    }
    let finding = |severity, now: &str, message: String, remedy: String| Finding {
        key: format!("strategy/{}", cluster.name),
        rule: STRATEGY_RULE.to_string(),
        severity,
        cluster: Some(cluster.name.clone()),
        node: None,
        message,
        remedy: remedy.replace("{now}", now),
    };
    let said = if opts.strategy.is_some() {
        format!("`--strategy {asked}`")
    } else {
        format!("`strategy = \"{asked}\"` in the site file")
    };
    if let Some(r) = meta.renamed_strategies.iter().find(|r| r.name == asked) {
        let why = if r.note.is_empty() {
            String::new()
        } else {
            format!(": {}", r.note)
        };
        let remedy = match (opts.strategy.is_some(), r.now == "fastest") {
            (true, true) => "Leave `--strategy` out (`fastest` is the default), or write `--strategy fastest`.",
            (true, false) => "Write `--strategy {now}`.",
            (false, true) => "Remove the cluster's `strategy` from the site file (`fastest` is the default), or write `strategy = \"fastest\"`.",
            (false, false) => "Write `strategy = \"{now}\"` in the cluster's table of the site file.",
        };
        let f = finding(
            Severity::Warning,
            &r.now,
            format!(
                "{said}: profile `{}` renamed strategy `{asked}` to `{}`{why}; cluster {} is planned with `{}`",
                meta.name, r.now, cluster.name, r.now
            ),
            remedy.to_string(),
        );
        return (r.now.clone(), Some(f));
    }
    let offered: Vec<&str> = ferry_model::profile::BASE_STRATEGIES
        .iter()
        .copied()
        .chain(meta.strategies.iter().map(String::as_str))
        .collect();
    let f = finding(
        Severity::Info,
        "fastest",
        format!(
            "{said}: profile `{}` does not offer strategy `{asked}` (it offers {}), so cluster {} is planned with `fastest`",
            meta.name,
            offered.join(", "),
            cluster.name
        ),
        "Nothing to do when this is meant; plan the cluster with a strategy its profile offers to choose otherwise.".to_string(),
    );
    ("fastest".to_string(), Some(f))
}

/// The plan's own strategy: the one asked for on the command line (under its new name where a
/// profile of the site renamed it), else `fastest`.
fn plan_strategy<'p>(
    opts: &PlanOptions,
    site: &Site,
    profiles: &impl Fn(&str) -> Option<&'p Profile>,
) -> String {
    let Some(asked) = &opts.strategy else {
        return "fastest".into();
    };
    site.clusters
        .iter()
        .filter_map(|c| profiles(&c.profile))
        .flat_map(|p| p.profile.renamed_strategies.iter())
        .find(|r| &r.name == asked)
        .map(|r| r.now.clone())
        .unwrap_or_else(|| asked.clone())
}

/// The cluster as it is during leg `h` of `path`: nodes below the leg's end go to it.
fn leg_cluster(cluster: &Cluster, path: &[ferry_model::VendorVersion], h: usize) -> Cluster {
    let last = h + 2 == path.len();
    let mut c = cluster.clone();
    for n in &mut c.nodes {
        let orig = n.version.clone();
        if h > 0 && orig < path[h] {
            n.version = path[h].clone();
        }
        if !last && n.target > path[h + 1] {
            n.target = if n.version < path[h + 1] {
                path[h + 1].clone()
            } else {
                n.version.clone()
            };
        }
    }
    c
}

fn plan_cluster(
    site: &Site,
    site_facts: &checks::SiteFacts<'_>,
    cluster: &Cluster,
    profile: &Profile,
    strategy: &str,
    opts: &PlanOptions,
) -> ClusterWork {
    let estimates = &opts.estimates;
    let staging = stages(site, opts);
    let mut findings = Vec::new();
    let upgrading: Vec<_> = cluster.nodes.iter().filter(|n| n.upgrading()).collect();
    // The cluster's version is read from the profile's `version_roles` (all roles if none).
    let defines = |n: &ferry_model::Node| {
        let roles = &profile.profile.version_roles;
        roles.is_empty() || roles.contains(&n.role)
    };
    let pool: Vec<&ferry_model::Node> = if upgrading.iter().any(|n| defines(n)) {
        upgrading.iter().copied().filter(|n| defines(n)).collect()
    } else {
        upgrading.clone()
    };
    let from = pool
        .iter()
        .map(|n| n.version.clone())
        .min()
        .unwrap_or_else(|| cluster.target.clone());
    let path_rule = profile.versions.rule.clone().unwrap_or_default();
    for n in &upgrading {
        if path::version_path(&profile.versions, &n.version, &n.target).is_none() {
            findings.push(Finding {
                key: format!("unsupported-path/{}/{}", cluster.name, n.name),
                rule: path_rule.clone(),
                severity: Severity::Inhibitor,
                cluster: Some(cluster.name.clone()),
                node: Some(n.name.clone()),
                message: format!(
                    "no supported upgrade from {} to {} for {} ({})",
                    n.version, n.target, n.name, profile.profile.name
                ),
                remedy: "Upgrade the node to a supported source version first; profile versions list the supported edges and hops.".into(),
            });
        }
    }
    let path = path::version_path(&profile.versions, &from, &cluster.target)
        .unwrap_or_else(|| vec![from.clone(), cluster.target.clone()]);
    let legs = if path.len() < 2 { 1 } else { path.len() - 1 };
    let mut graph = Graph::default();
    let mut types: Vec<(String, String)> = Vec::new();
    let mut prev_sinks: Vec<usize> = Vec::new();
    for h in 0..legs {
        let leg = if path.len() < 2 {
            cluster.clone()
        } else {
            leg_cluster(cluster, &path, h)
        };
        let (ut, ut_rule) = path::upgrade_type(profile, &leg, strategy, (h, legs));
        let suffix = if legs > 1 && h + 1 < legs {
            format!("@{}", path[h + 1])
        } else {
            String::new()
        };
        let g = build(&BuildInput {
            cluster: &leg,
            profile,
            procedure: &profile.procedure,
            upgrade_type: &ut,
            strategy,
            id_suffix: &suffix,
            leg: (h, legs),
            estimates,
            run: None,
            staging,
        });
        let base = graph.append(g);
        // Each phase of this leg starts after the same phase of the previous leg has ended.
        let leg_range = base..graph.insts.len();
        let rule = path::hop_rule(&profile.versions, &path[0], &cluster.target)
            .unwrap_or_else(|| path_rule.clone());
        let mut sinks = Vec::new();
        for phase in [Phase::Prepare, Phase::Window] {
            let in_leg = |i: &usize| leg_range.contains(i) && graph.insts[*i].step.phase == phase;
            let has_pred: BTreeSet<usize> = graph
                .edges
                .iter()
                .filter(|e| in_leg(&e.0) && in_leg(&e.1))
                .map(|e| e.1)
                .collect();
            let has_succ: BTreeSet<usize> = graph
                .edges
                .iter()
                .filter(|e| in_leg(&e.0) && in_leg(&e.1))
                .map(|e| e.0)
                .collect();
            let sources: Vec<usize> = leg_range
                .clone()
                .filter(|i| in_leg(i) && !has_pred.contains(i))
                .collect();
            sinks.extend(
                leg_range
                    .clone()
                    .filter(|i| in_leg(i) && !has_succ.contains(i)),
            );
            let before: Vec<usize> = prev_sinks
                .iter()
                .copied()
                .filter(|&s| graph.insts[s].step.phase == phase)
                .collect();
            let note = format!("the whole cluster reaches {} before going further", path[h]);
            let ends = graph::Ends {
                cluster: &cluster.name,
                rule: &rule,
                note: &note,
                id_suffix: &suffix,
            };
            let title = || format!("The whole cluster reaches {} before going further", path[h]);
            if !graph::order_through_sync(&mut graph, &before, &sources, &ends, title) {
                for &s in &before {
                    for &t in &sources {
                        graph.edges.push((s, t, rule.clone(), note.clone()));
                    }
                }
            }
        }
        prev_sinks = sinks;
        if !types.iter().any(|(t, _)| *t == ut) {
            types.push((ut, ut_rule));
        }
    }
    let (first_type, first_rule) = types.first().cloned().unwrap_or_default();
    let scope = Scope {
        cluster,
        profile,
        upgrade_type: Some(&first_type),
        strategy,
        leg: (0, legs),
        run: None,
        staging,
    };
    findings.extend(checks::run(
        site, site_facts, cluster, profile, &scope, &graph,
    ));
    for l in &graph.limits {
        if let Some(c) = &l.capacity {
            for (m, (part, w)) in &c.weight {
                let base = c.base.get(part).copied().unwrap_or(0.0);
                if w + base > c.max {
                    let step = &graph.insts[*m].step;
                    findings.push(Finding {
                        key: format!("capacity/{}/{}", cluster.name, step.id),
                        rule: l.rule.clone(),
                        severity: c.severity,
                        cluster: Some(cluster.name.clone()),
                        node: step.node.clone(),
                        message: format!(
                            "during `{}` on {} the load on {part} would be {} (limit {}): {}",
                            step.action,
                            step.node.as_deref().unwrap_or(&cluster.name),
                            w + base,
                            c.max,
                            l.note
                        ),
                        remedy: "Re-home devices so that no server carries more than the limit during the upgrade, or plan the upgrade off-peak and short.".into(),
                    });
                }
            }
        }
    }
    for y in &graph.yielded {
        findings.push(yield_finding(cluster, y));
    }
    let batches = batch_results(cluster, std::mem::take(&mut graph.batched), &mut findings);
    let rollback = build(&BuildInput {
        cluster,
        profile,
        procedure: &profile.rollback,
        upgrade_type: &first_type,
        strategy,
        id_suffix: "",
        leg: (0, 1),
        estimates,
        run: opts.progress.as_ref(),
        staging: false,
    });
    ClusterWork {
        plan: ClusterPlan {
            name: cluster.name.clone(),
            profile: profile.profile.name.clone(),
            from: from.to_string(),
            target: cluster.target.to_string(),
            path: path.iter().map(|v| v.to_string()).collect(),
            upgrade_type: types
                .iter()
                .map(|t| t.0.as_str())
                .collect::<Vec<_>>()
                .join(" then "),
            upgrade_type_rule: first_rule,
            strategy: strategy.to_string(),
            makespan_s: 0,
            staging,
            values: recorded_values(profile, &cluster.facts),
            nodes: cluster
                .nodes
                .iter()
                .map(|n| node_record(profile, n))
                .collect(),
        },
        graph,
        rollback,
        findings,
        batches,
    }
}

/// The batches of a cluster's batch rules for the plan, and the findings of what they could
/// not avoid.
fn batch_results(
    cluster: &Cluster,
    batched: Vec<graph::Batched>,
    findings: &mut Vec<Finding>,
) -> Vec<ferry_model::plan::Batching> {
    let mut out = Vec::new();
    for b in batched {
        if b.batches.is_empty() && b.left_out.is_empty() {
            continue;
        }
        for (node, text) in &b.unavoidable {
            findings.push(Finding {
                key: format!("batch/{}/{}/{node}", cluster.name, b.rule),
                rule: b.rule.clone(),
                severity: Severity::Warning,
                cluster: Some(cluster.name.clone()),
                node: Some(node.clone()),
                message: text.clone(),
                remedy: format!(
                    "State more servers for these {} (another server in their group, or room on their backups), or accept the loss while {node} is out.",
                    b.devices.join(" and ")
                ),
            });
        }
        for (n, set) in b.left_out.iter().enumerate() {
            findings.push(Finding {
                key: format!("batch-interleaved/{}/{}/{n}", cluster.name, b.rule),
                rule: b.rule.clone(),
                severity: Severity::Info,
                cluster: Some(cluster.name.clone()),
                node: None,
                message: format!(
                    "the other rules order the steps of {} both ways (they take turns), so the batches of {} leave them to those rules",
                    set.join(" and "),
                    b.devices.join(" and ")
                ),
                remedy: String::new(),
            });
        }
        for (n, text) in b.uncapped.iter().enumerate() {
            findings.push(Finding {
                key: format!("batch-capacity/{}/{}/{n}", cluster.name, b.rule),
                rule: b.rule.clone(),
                severity: Severity::Info,
                cluster: Some(cluster.name.clone()),
                node: None,
                message: text.clone(),
                remedy: String::new(),
            });
        }
        if !b.fewest {
            findings.push(Finding {
                key: format!("batch-search/{}/{}", cluster.name, b.rule),
                rule: b.rule.clone(),
                severity: Severity::Info,
                cluster: Some(cluster.name.clone()),
                node: None,
                message: format!(
                    "the search for the fewest batches of {} stopped at its budget: the {} batches are a first fit, which keeps every group served but may not be the fewest",
                    b.devices.join(" and "),
                    b.batches.len()
                ),
                remedy: String::new(),
            });
        }
        out.push(ferry_model::plan::Batching {
            cluster: cluster.name.clone(),
            rule: b.rule,
            note: b.note,
            devices: b.devices,
            batches: b.batches,
            leg: b.leg,
            fewest: b.fewest,
        });
    }
    out
}

/// An order that gave way to a capacity limit on a partition: which nodes take turns there,
/// and what the order's rule loses.
fn yield_finding(cluster: &Cluster, y: &graph::Yielded) -> Finding {
    let p = &y.partition;
    let amount = |x: f64| {
        if x.fract() == 0.0 {
            format!("{}", x as i64)
        } else {
            format!("{x:.2}")
        }
    };
    let nodes = p
        .loads
        .iter()
        .map(|(n, w)| format!("{} of {n}", amount(*w)))
        .collect::<Vec<_>>()
        .join(", ");
    let own = if p.base > 0.0 {
        format!(" and {} of its own", amount(p.base))
    } else {
        String::new()
    };
    Finding {
        key: format!("capacity-yield/{}/{}/{}", cluster.name, y.order_rule, p.name),
        rule: y.order_rule.clone(),
        severity: Severity::Warning,
        cluster: Some(cluster.name.clone()),
        node: cluster.node(&p.name).map(|n| n.name.clone()),
        message: format!(
            "{} cannot take the {} of every node it backs at once ({}: {nodes}{own}; at most {}, {}): they go to it in turn. {}",
            p.name,
            if y.what.is_empty() { "load" } else { &y.what },
            amount(p.total()),
            amount(y.max),
            y.limit_rule,
            y.note
        )
        .trim_end()
        .to_string(),
        remedy: format!(
            "Home the {} so that {} can take all of them at once (at most {}), or accept that they take turns.",
            if y.what.is_empty() { "load" } else { &y.what },
            p.name,
            amount(y.max)
        ),
    }
}

/// The shortest window any plan of `site` keeping its profiles' order, gate and limit rules
/// could reach: the least lower bound over `strategies` (each for every cluster, and the
/// site's own choice), staged and not. Staging is allowed whether or not the site books a
/// staging period. Each lower bound is the planner's (`schedule::lower_bound`): the longest
/// chain of dependent window steps or a limit group's work over its width.
pub fn rules_lower_bound<'p>(
    site: &Site,
    profiles: impl Fn(&str) -> Option<&'p Profile> + Copy,
    strategies: &[String],
    opts: &PlanOptions,
) -> Result<u64, PlanError> {
    let mut best: Option<u64> = None;
    let choices = std::iter::once(None).chain(strategies.iter().map(|s| Some(s.clone())));
    for strategy in choices {
        for stage in [false, true] {
            let o = PlanOptions {
                strategy: strategy.clone(),
                stage,
                ..opts.clone()
            };
            let bound = window_lower_bound(site, &profiles, &o)?;
            best = Some(best.map_or(bound, |b| b.min(bound)));
        }
    }
    Ok(best.unwrap_or(0))
}

/// The preflight findings: the same findings the plan carries.
pub fn check<'p>(
    site: &Site,
    profiles: impl Fn(&str) -> Option<&'p Profile>,
    opts: &PlanOptions,
) -> Result<Vec<Finding>, PlanError> {
    Ok(plan(site, profiles, String::new(), opts)?.findings)
}

fn sort_findings(site: &Site, mut findings: Vec<Finding>) -> Vec<Finding> {
    let pos: std::collections::HashMap<&str, usize> = site
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let at = |c: &Option<String>| {
        c.as_deref()
            .and_then(|c| pos.get(c).copied())
            .unwrap_or(usize::MAX)
    };
    // By cluster (in site order), severity and key; equal ones keep their order.
    let mut order: Vec<(usize, Severity, usize)> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| (at(&f.cluster), f.severity, i))
        .collect();
    order.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| findings[a.2].key.cmp(&findings[b.2].key))
            .then(a.2.cmp(&b.2))
    });
    permute(
        &mut findings,
        order.into_iter().map(|(_, _, i)| i).collect(),
    );
    findings.dedup_by(|a, b| a.key == b.key);
    findings
}

/// A scheduled graph: steps in schedule order with `after`, rules and times set, the edges,
/// and the lower bound of its window phase.
struct Finished {
    steps: Vec<PlannedStep>,
    edges: Vec<Edge>,
    lower_bound_s: u64,
    occupancy: Vec<ferry_model::plan::Occupancy>,
    /// What the occupancy of capacity groups with held loads gives.
    findings: Vec<Finding>,
}

/// Schedules a graph and turns it into plan steps, moving the steps out of the graph. The
/// lower bound is the graph's as the rules give it, before the edges the schedule adds for held
/// loads (a choice of this schedule, not a rule).
fn finish(mut graph: Graph, site: &Site) -> Result<Finished, PlanError> {
    let prep = schedule::prepare(&graph)?;
    let schedule::Scheduled { start, edges: held } = schedule::schedule_holding(&graph, &prep);
    let lower_bound_s = schedule::lower_bound_prepared(&graph, &prep, Phase::Window);
    let (occupancy, findings) = occupancy::occupancy(&graph, &start, site);
    let prep = if held.is_empty() {
        prep
    } else {
        graph.edges.extend(held);
        schedule::prepare(&graph)?
    };
    // Each step names the rules of the edges into it, after its own.
    let Graph {
        mut insts,
        edges: graph_edges,
        ..
    } = graph;
    for (_, t, rule, _) in &graph_edges {
        let rules = &mut insts[*t].step.rules;
        if !rule.is_empty() && !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    let afters: Vec<Vec<String>> = prep
        .adj
        .preds
        .iter()
        .map(|preds| preds.iter().map(|&p| insts[p].step.id.clone()).collect())
        .collect();
    let edges: Vec<Edge> = graph_edges
        .into_iter()
        .map(|(f, t, rule, note)| Edge {
            from: insts[f].step.id.clone(),
            to: insts[t].step.id.clone(),
            rule,
            note,
        })
        .collect();
    let mut steps: Vec<PlannedStep> = insts
        .into_iter()
        .zip(afters)
        .zip(start)
        .map(|((inst, after), start_s)| PlannedStep {
            start_s,
            after,
            ..inst.step
        })
        .collect();
    // Sort small keys, then move the steps into that order in place.
    let mut order: Vec<(ferry_model::Phase, u64, usize)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.phase, s.start_s, i))
        .collect();
    order.sort_unstable();
    permute(&mut steps, order.into_iter().map(|(_, _, i)| i).collect());
    Ok(Finished {
        steps,
        edges,
        lower_bound_s,
        occupancy,
        findings,
    })
}

/// Reorders `items` so that position `k` holds the item that was at `from[k]` (`from` is a
/// permutation), in place: each cycle of the permutation is walked once.
fn permute<T>(items: &mut [T], mut from: Vec<usize>) {
    for start in 0..from.len() {
        let mut k = start;
        // Follow the cycle through `start`, marking each position done by pointing it at itself.
        while from[k] != start {
            let next = from[k];
            items.swap(k, next);
            from[k] = k;
            k = next;
        }
        from[k] = k;
    }
}

fn phase_end(steps: &[PlannedStep], phase: Phase) -> u64 {
    steps
        .iter()
        .filter(|s| s.phase == phase)
        .map(|s| s.end_s())
        .max()
        .unwrap_or(0)
}

/// The plan's limit groups of a joined graph (groups with members only).
fn limit_groups(graph: &Graph) -> Vec<PlanLimit> {
    graph
        .limits
        .iter()
        .filter(|l| !l.members.is_empty())
        .map(|l| PlanLimit {
            rule: l.rule.clone(),
            note: l.note.clone(),
            steps: l
                .members
                .iter()
                .map(|&m| graph.insts[m].step.id.clone())
                .collect(),
            max_concurrent: l.max_concurrent,
            capacity: l.capacity.as_ref().map(|c| c.max),
            loads: l
                .capacity
                .iter()
                .flat_map(|c| c.weight.iter())
                .map(|(&m, (partition, weight))| ferry_model::plan::Load {
                    step: graph.insts[m].step.id.clone(),
                    partition: partition.clone(),
                    weight: *weight,
                })
                .collect(),
            base: l
                .capacity
                .as_ref()
                .map(|c| c.base.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// A cluster's work staged ahead of the window that does not fit the booked staging period:
/// the rest would still run when the window opens.
fn staging_overrun(
    site: &Site,
    cluster: &str,
    staged: &[&&PlannedStep],
    decisions: &[ferry_model::plan::StageDecision],
) -> Option<Finding> {
    let period = site.stage.as_ref()?;
    let booked = (period.hours * 3600.0).round() as u64;
    let ends = staged.iter().map(|s| s.end_s()).max()?;
    if ends <= booked {
        return None;
    }
    let rule = decisions
        .iter()
        .find(|d| staged.iter().any(|s| s.id == d.step))
        .map(|d| d.rule.clone())
        .unwrap_or_default();
    Some(Finding {
        key: format!("staging-overrun/{cluster}"),
        rule,
        severity: Severity::Warning,
        cluster: Some(cluster.to_string()),
        node: None,
        message: format!(
            "the work of {cluster} staged ahead of the window takes {}, longer than the booked staging period ({}, from {}): the rest still runs when the window opens, and the window's work waits for it",
            render::duration(ends),
            render::duration(booked),
            render::site_time(Some(period), period.start_epoch_s)
        ),
        remedy: "Book a longer staging period, or start it earlier (`[site] stage`).".into(),
    })
}

/// The facts of `facts` that `profile` marks `mop = true`, in the profile's order.
fn recorded_values(
    profile: &Profile,
    facts: &ferry_model::Facts,
) -> Vec<ferry_model::plan::RecordedValue> {
    profile
        .facts
        .iter()
        .filter(|f| f.mop)
        .filter_map(|f| {
            facts
                .get(&f.name)
                .map(|v| ferry_model::plan::RecordedValue {
                    name: f.name.clone(),
                    description: f.description.clone(),
                    value: v.to_string(),
                })
        })
        .collect()
}

/// A node as the method of procedure records it: the devices the profile's twin homes on it
/// (each `[[twin.devices]]` fact of a role it has), then its facts marked `mop = true`.
fn node_record(profile: &Profile, n: &ferry_model::Node) -> ferry_model::plan::NodeRecord {
    let mut before: Vec<ferry_model::plan::RecordedValue> = profile
        .twin
        .devices
        .iter()
        .filter(|d| d.roles.contains(&n.role))
        .filter_map(|d| {
            n.facts
                .get(&d.fact)
                .map(|v| ferry_model::plan::RecordedValue {
                    name: d.name.clone(),
                    description: format!("{} registered (fact `{}`)", d.name, d.fact),
                    value: v.to_string(),
                })
        })
        .collect();
    for v in recorded_values(profile, &n.facts) {
        if !before.iter().any(|b| b.name == v.name) {
            before.push(v);
        }
    }
    ferry_model::plan::NodeRecord {
        name: n.name.clone(),
        role: n.role.clone(),
        address: n.address.clone(),
        version: n.version.to_string(),
        target: n.target.to_string(),
        before,
    }
}

/// Plans the whole site.
pub fn plan<'p>(
    site: &Site,
    profiles: impl Fn(&str) -> Option<&'p Profile>,
    input_hash: String,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let mut plan = plan_site(site, &profiles, input_hash, opts)?;
    if opts.progress.is_none() {
        plan.point_of_no_return_s = plan
            .window_s
            .map(|w| w.saturating_sub(plan.rollback_makespan_s));
        plan.backouts = backouts(site, &profiles, &plan, opts)?;
    }
    Ok(plan)
}

/// A backout per stage of the window. A stage is the window work of one role of one cluster;
/// it ends when the last of its steps ends. Each backout is the rollback procedure planned for
/// a run that got that far: every step that ended by then done, the rest not started.
fn backouts<'p>(
    site: &Site,
    profiles: &dyn Fn(&str) -> Option<&'p Profile>,
    plan: &Plan,
    opts: &PlanOptions,
) -> Result<Vec<ferry_model::plan::Backout>, PlanError> {
    let mut stages: Vec<(String, String, u64, Vec<String>)> = Vec::new();
    for s in plan.steps.iter().filter(|s| s.phase == Phase::Window) {
        let Some(role) = &s.role else { continue };
        let i = match stages
            .iter()
            .position(|(c, r, ..)| c == &s.cluster && r == role)
        {
            Some(i) => i,
            None => {
                stages.push((s.cluster.clone(), role.clone(), 0, Vec::new()));
                stages.len() - 1
            }
        };
        let stage = &mut stages[i];
        stage.2 = stage.2.max(s.end_s());
        if s.kind == ferry_model::StepKind::Action && !s.verify.trim().is_empty() {
            stage.3.push(s.id.clone());
        }
    }
    stages.sort_by_key(|st| st.2); // stable: order of first appearance at equal ends
    let mut out = Vec::new();
    for (cluster, role, at_s, triggers) in stages {
        let progress = ferry_model::RunProgress {
            steps: plan
                .steps
                .iter()
                .map(|s| ferry_model::StepProgress {
                    id: s.id.clone(),
                    cluster: s.cluster.clone(),
                    role: s.role.clone(),
                    state: if s.phase != Phase::Window || s.end_s() <= at_s {
                        ferry_model::ProgressState::Done
                    } else {
                        ferry_model::ProgressState::Open
                    },
                })
                .collect(),
        };
        let o = PlanOptions {
            progress: Some(progress),
            ..opts.clone()
        };
        let p = plan_site(site, profiles, plan.input_hash.clone(), &o)?;
        // Nodes whose running version a step ended by then has changed: only theirs are undone.
        let changed: BTreeSet<(&str, &str)> = plan
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Window && s.end_s() <= at_s)
            .filter(|s| {
                s.effects.iter().any(|e| {
                    matches!(
                        e,
                        ferry_model::effect::Effect::Switch
                            | ferry_model::effect::Effect::InstallInPlace
                    )
                })
            })
            .filter_map(|s| Some((s.cluster.as_str(), s.node.as_deref()?)))
            .collect();
        let kept: Vec<&PlannedStep> = p
            .rollback
            .iter()
            .filter(|s| {
                s.node
                    .as_deref()
                    .is_none_or(|n| changed.contains(&(s.cluster.as_str(), n)))
            })
            .collect();
        out.push(ferry_model::plan::Backout {
            stage: format!("after {cluster} {role}"),
            cluster,
            role,
            at_s,
            triggers,
            steps: kept.iter().map(|s| s.id.clone()).collect(),
            duration_s: backout_length(&kept, &p.rollback_limits),
            ends_in_window: plan
                .window_s
                .map(|w| at_s.saturating_add(p.rollback_makespan_s) <= w),
        });
    }
    Ok(out)
}

/// The length of the rollback steps `kept` (a subset of a planned rollback), scheduled again in
/// their planned order: each as early as the steps it comes after (among `kept`) and the
/// `max_concurrent` of its limit groups allow.
fn backout_length(kept: &[&PlannedStep], limits: &[ferry_model::plan::LimitGroup]) -> u64 {
    let mut order: Vec<&PlannedStep> = kept.to_vec();
    order.sort_by_key(|s| s.start_s); // stable: planned order kept at equal starts
    let mut placed: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for s in order {
        let mut at = s
            .after
            .iter()
            .filter_map(|a| placed.get(a.as_str()).map(|p| p.1))
            .max()
            .unwrap_or(0);
        let groups: Vec<(u32, &Vec<String>)> = limits
            .iter()
            .filter(|g| g.steps.contains(&s.id))
            .filter_map(|g| Some((g.max_concurrent?, &g.steps)))
            .collect();
        // Candidate starts: `at`, then every end of a placed step after it.
        let mut ends: Vec<u64> = placed.values().map(|p| p.1).filter(|e| *e > at).collect();
        ends.sort_unstable();
        let fits = |t: u64| {
            groups.iter().all(|(max, members)| {
                let busy = members
                    .iter()
                    .filter_map(|m| placed.get(m.as_str()))
                    .filter(|(a, b)| *a < t.saturating_add(s.duration_s).max(t + 1) && *b > t)
                    .count();
                busy < *max as usize
            })
        };
        if !fits(at) {
            at = ends.into_iter().find(|t| fits(*t)).unwrap_or(at);
        }
        placed.insert(s.id.as_str(), (at, at.saturating_add(s.duration_s)));
    }
    placed.values().map(|p| p.1).max().unwrap_or(0)
}

/// Each cluster's work (its graphs, plan record and findings) planned with `opts`, with its
/// profile; a cluster whose mixed versions leave nothing sensible to order gets the finding
/// and no steps.
fn cluster_works<'p>(
    site: &Site,
    profiles: &dyn Fn(&str) -> Option<&'p Profile>,
    opts: &PlanOptions,
) -> Result<Vec<(ClusterWork, &'p Profile)>, PlanError> {
    let mut works = Vec::new();
    let site_facts = checks::SiteFacts::new(site);
    for cluster in &site.clusters {
        let profile = profiles(&cluster.profile).ok_or_else(|| PlanError::UnknownProfile {
            cluster: cluster.name.clone(),
            profile: cluster.profile.clone(),
        })?;
        let (strategy, strategy_finding) = strategy_of(opts, cluster, profile);
        let mut work = plan_cluster(site, &site_facts, cluster, profile, &strategy, opts);
        work.findings.extend(strategy_finding);
        let mixed = mixed_versions(cluster, profile);
        let unschedulable = schedule::prepare(&work.graph)
            .and_then(|_| schedule::prepare(&work.rollback))
            .err();
        match (unschedulable, mixed.is_empty()) {
            (None, true) => {}
            (None, false) => work
                .findings
                .push(mixed_versions_finding(cluster, profile, &mixed, None)),
            (Some(e), false) => {
                // Nothing sensible can be ordered: the cluster gets the finding and no steps.
                work.findings
                    .push(mixed_versions_finding(cluster, profile, &mixed, Some(&e)));
                work.graph = Graph::default();
                work.rollback = Graph::default();
            }
            (Some(source), true) => {
                return Err(PlanError::Schedule {
                    cluster: cluster.name.clone(),
                    profile: cluster.profile.clone(),
                    source: Box::new(source),
                })
            }
        }
        works.push((work, profile));
    }
    Ok(works)
}

/// The lower bound of the window phase of the plan `plan` would make of `site` with `opts`
/// (its `lower_bound_s`), without scheduling or finishing the plan.
fn window_lower_bound<'p>(
    site: &Site,
    profiles: &dyn Fn(&str) -> Option<&'p Profile>,
    opts: &PlanOptions,
) -> Result<u64, PlanError> {
    let works = cluster_works(site, profiles, opts)?;
    let mut graph = Graph::default();
    if works.len() > 1 {
        graph.reserve(works.iter().map(|(w, _)| &w.graph));
    }
    for (w, _) in works {
        graph.append(w.graph);
    }
    stage::decide(&mut graph);
    let prep = schedule::prepare(&graph)?;
    Ok(schedule::lower_bound_prepared(&graph, &prep, Phase::Window))
}

fn plan_site<'p>(
    site: &Site,
    profiles: &dyn Fn(&str) -> Option<&'p Profile>,
    input_hash: String,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let mut works = cluster_works(site, profiles, opts)?;
    let mut graph = Graph::default();
    let mut rollback = Graph::default();
    if works.len() > 1 {
        graph.reserve(works.iter().map(|(w, _)| &w.graph));
        rollback.reserve(works.iter().map(|(w, _)| &w.rollback));
    }
    let mut clusters = Vec::new();
    let mut findings = Vec::new();
    let mut batches = Vec::new();
    for (w, _) in works.iter_mut() {
        graph.append(std::mem::take(&mut w.graph));
        rollback.append(std::mem::take(&mut w.rollback));
        findings.append(&mut w.findings);
        batches.append(&mut w.batches);
    }
    let staging = stage::decide(&mut graph);
    let limits = limit_groups(&graph);
    let rollback_limits = limit_groups(&rollback);
    let sequential_s = schedule::sequential(&graph, Phase::Window);
    let Finished {
        mut steps,
        edges,
        lower_bound_s,
        occupancy,
        findings: held_findings,
    } = finish(graph, site)?;
    findings.extend(held_findings);
    let Finished {
        steps: mut rollback_steps,
        edges: rollback_edges,
        ..
    } = finish(rollback, site)?;
    for s in &mut rollback_steps {
        s.rollback = true;
    }
    if !opts.spreads.is_empty() {
        let profile_of: BTreeMap<&str, &str> = site
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.profile.as_str()))
            .collect();
        for s in steps.iter_mut().chain(rollback_steps.iter_mut()) {
            if s.estimate != ferry_model::Estimate::Observed {
                continue;
            }
            if let Some(p) = profile_of.get(s.cluster.as_str()) {
                s.spread = opts
                    .spreads
                    .get(&(p.to_string(), s.action.clone()))
                    .copied();
            }
        }
    }
    let mut by_cluster: BTreeMap<&str, Vec<&PlannedStep>> = BTreeMap::new();
    for s in &steps {
        by_cluster.entry(s.cluster.as_str()).or_default().push(s);
    }
    let staging_s = phase_end(&steps, Phase::Staging);
    let prepare_s = phase_end(&steps, Phase::Prepare);
    // Where each phase starts, in seconds from the window's opening: staging in the booked
    // staging period (else just before the window), preparation just before staging.
    let staging_at = match (&site.window, &site.stage) {
        (Some(w), Some(st)) => st.start_epoch_s - w.start_epoch_s,
        _ => -(staging_s as i64),
    };
    let phase_at = |p: Phase| match p {
        Phase::Window => 0,
        Phase::Staging => staging_at,
        Phase::Prepare => {
            if staging_s > 0 {
                staging_at - prepare_s as i64
            } else {
                -(prepare_s as i64)
            }
        }
    };
    let mut measures = Vec::new();
    let mut staging_costs = Vec::new();
    for (w, profile) in &works {
        let mut cp = w.plan.clone();
        let mine = by_cluster
            .get(cp.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        cp.makespan_s = mine
            .iter()
            .filter(|s| s.phase == Phase::Window)
            .map(|s| s.end_s())
            .max()
            .unwrap_or(0);
        let mut mine_measures = Vec::new();
        for m in &profile.measures {
            // From the earliest start to the latest end, across phases.
            let at = |s: &PlannedStep, t: u64| phase_at(s.phase) + t as i64;
            let from = mine
                .iter()
                .filter(|s| s.action == m.from_step)
                .min_by_key(|s| (at(s, s.start_s), s.phase));
            let to = mine
                .iter()
                .filter(|s| s.action == m.to_step)
                .map(|s| at(s, s.end_s()))
                .max();
            if let (Some(from), Some(to)) = (from, to) {
                mine_measures.push(Measure {
                    cluster: cp.name.clone(),
                    name: m.name.clone(),
                    rule: m.rule.clone(),
                    description: m.description.clone(),
                    start_s: from.start_s,
                    duration_s: to.saturating_sub(at(from, from.start_s)).max(0) as u64,
                    phase: from.phase,
                });
            }
        }
        let cluster = site.clusters.iter().find(|c| c.name == cp.name);
        let ut = cp
            .upgrade_type
            .split(" then ")
            .next()
            .unwrap_or_default()
            .to_string();
        if let Some(cluster) = cluster {
            let scope = Scope {
                cluster,
                profile,
                upgrade_type: Some(&ut),
                strategy: &cp.strategy,
                leg: (0, 1),
                run: None,
                staging: cp.staging,
            };
            findings.extend(checks::window_findings(
                site,
                cluster,
                profile,
                &scope,
                cp.makespan_s,
            ));
            let staged: Vec<&&PlannedStep> =
                mine.iter().filter(|s| s.phase == Phase::Staging).collect();
            if !staged.is_empty() {
                for c in &profile.staging_costs {
                    if !c.when.as_ref().is_none_or(|x| eval(x, &scope, None)) {
                        continue;
                    }
                    let measure = c
                        .measure
                        .as_ref()
                        .and_then(|name| mine_measures.iter().find(|m| &m.name == name));
                    staging_costs.push(ferry_model::plan::StagingCost {
                        cluster: cp.name.clone(),
                        rule: c.rule.clone(),
                        text: c.text.clone(),
                        measure: measure.map(|m| m.name.clone()),
                        duration_s: measure.map(|m| m.duration_s),
                    });
                }
                if let Some(f) = staging_overrun(site, &cp.name, &staged, &staging) {
                    findings.push(f);
                }
            }
        }
        measures.append(&mut mine_measures);
        clusters.push(cp);
    }

    Ok(Plan {
        schema_version: SCHEMA_VERSION,
        site: site.name.clone(),
        strategy: plan_strategy(opts, site, &profiles),
        input_hash,
        makespan_s: phase_end(&steps, Phase::Window),
        prepare_s,
        staging_s,
        stage: site.stage.clone(),
        staging,
        staging_costs,
        lower_bound_s,
        sequential_s,
        rules_lower_bound_s: None,
        rehearsed_runs: 0,
        window_p50_s: None,
        window_p90_s: None,
        fit_probability: None,
        window_s: site
            .window
            .as_ref()
            .map(|w| (w.hours * 3600.0).round() as u64),
        window: site.window.clone(),
        clusters,
        steps,
        edges,
        measures,
        limits,
        occupancy,
        batches,
        findings: sort_findings(site, findings),
        rollback_makespan_s: phase_end(&rollback_steps, Phase::Window),
        rollback: rollback_steps,
        rollback_edges,
        rollback_limits,
        point_of_no_return_s: None,
        backouts: Vec::new(),
        change: site.change.clone(),
    })
}
