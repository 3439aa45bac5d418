//! The auditor: checks a run's trace against the profile's rules, independently of the planner.
//!
//! It reads the profiles' order, sequence and limit rules and the checks that can be judged on
//! a run (an order giving way to a capacity limit read on the site as the planner reads it),
//! and applies them to what actually ran (each step's start and end in the twin's trace)
//! and to the world's end state; it adds the twin's incidents (a server over capacity, a wrong
//! switchover, a step started while a gate before it did not hold). It never looks at the
//! plan's edges, limits or schedule: the plan is only read for each cluster's upgrade type,
//! strategy and version path, which decide which of the profile's rules apply.

use crate::world::{TraceEntry, World};
use ferry_model::condition::{eval, Scope};
use ferry_model::profile::{CheckTest, Procedure, StepSelector};
use ferry_model::{Plan, Severity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A rule broken during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Violation {
    pub rule: String,
    /// `inhibitor` for a broken rule; a check's own severity for what the check reports
    /// (running past the booked window is a warning where the profile's check says so).
    pub severity: Severity,
    /// Virtual time (seconds since the Unix epoch) when it happened.
    pub time: i64,
    pub cluster: String,
    pub node: Option<String>,
    pub step: Option<String>,
    pub message: String,
}

fn selects(sel: &StepSelector, e: &TraceEntry) -> bool {
    sel.step.contains(&e.action)
        && (sel.roles.is_empty() || e.role.as_ref().is_some_and(|r| sel.roles.contains(r)))
}

/// The leg of the version path a step belongs to (steps of earlier legs carry `@VERSION`).
fn leg_of(step: &str, path: &[String]) -> usize {
    let legs = path.len().saturating_sub(1).max(1);
    let last = step.rsplit('/').next().unwrap_or(step);
    match last.rsplit_once('@') {
        Some((_, v)) => path.iter().skip(1).position(|p| p == v).unwrap_or(legs - 1),
        None => legs - 1,
    }
}

fn leg_of_planned(
    p: &ferry_model::PlannedStep,
    path: &[String],
    rollback: bool,
    legs: usize,
) -> usize {
    if rollback {
        legs - 1
    } else {
        leg_of(&p.id, path).min(legs - 1)
    }
}

/// The steps an order puts before others, ready to say which had not ended when a step
/// started: the one that ended last, or, when every one that ran had ended, the first by ID
/// that never ran. Steps of nodes whose load a capacity limit orders instead (the order gives
/// way there) hold back only their own node's steps.
struct LateSteps<'a> {
    everywhere: Candidates<'a>,
    on_node: HashMap<&'a str, Candidates<'a>>,
}

/// Steps with when they ended, latest first (ties by ID), and those that never ran, by ID.
#[derive(Default)]
struct Candidates<'a> {
    ran: Vec<(i64, &'a str)>,
    unrun: Vec<&'a str>,
}

impl<'a> Candidates<'a> {
    fn add(&mut self, id: &'a str, end: Option<i64>) {
        match end {
            Some(end) => self.ran.push((end, id)),
            None => self.unrun.push(id),
        }
    }

    fn sort(&mut self) {
        self.ran
            .sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        self.unrun.sort_unstable();
    }

    /// The step (other than `t`'s own) that ended last, if after `t` started.
    fn ran_late(&self, t: &TraceEntry) -> Option<(i64, &'a str)> {
        self.ran
            .iter()
            .find(|(_, id)| *id != t.step)
            .filter(|(end, _)| *end > t.start)
            .copied()
    }

    fn unrun(&self, t: &TraceEntry) -> Option<&'a str> {
        self.unrun.iter().find(|id| **id != t.step).copied()
    }
}

impl<'a> LateSteps<'a> {
    fn new(
        expected: &[&'a ferry_model::PlannedStep],
        ended: &HashMap<&str, i64>,
        yielding: &[(ferry_model::capacity::Partition, f64)],
    ) -> LateSteps<'a> {
        let gives_way: HashSet<&str> = yielding
            .iter()
            .flat_map(|(p, _)| p.loads.iter().map(|(n, _)| n.as_str()))
            .collect();
        let mut everywhere = Candidates::default();
        let mut on_node: HashMap<&'a str, Candidates<'a>> = HashMap::new();
        for b in expected {
            let end = ended.get(b.id.as_str()).copied();
            let node = b.node.as_deref().unwrap_or_default();
            if gives_way.contains(node) {
                on_node.entry(node).or_default().add(&b.id, end);
            } else {
                everywhere.add(&b.id, end);
            }
        }
        everywhere.sort();
        on_node.values_mut().for_each(Candidates::sort);
        LateSteps {
            everywhere,
            on_node,
        }
    }

    /// The step that had not ended when `t` started, with its end (`None`: it never ran).
    fn first_late(&self, t: &TraceEntry) -> Option<(&'a str, Option<i64>)> {
        let own = self.on_node.get(t.node.as_deref().unwrap_or_default());
        let groups = std::iter::once(&self.everywhere).chain(own);
        let ran = groups
            .clone()
            .filter_map(|g| g.ran_late(t))
            .min_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        if let Some((end, id)) = ran {
            return Some((id, Some(end)));
        }
        groups.filter_map(|g| g.unrun(t)).min().map(|id| (id, None))
    }
}

/// A run to audit: the plan whose `steps` the executor carried out as run `run` (for a
/// rollback, a plan whose steps are the rollback steps).
#[derive(Debug, Clone, Copy)]
pub struct RunPlan<'a> {
    pub run: i64,
    pub plan: &'a Plan,
    /// Cluster facts the plan was made with over the site's (a rollback planned from what
    /// the driver observed), so that its rules' conditions are read as the planner read them.
    pub facts: Option<&'a BTreeMap<String, ferry_model::Facts>>,
}

/// Audits a plan's runs as the twin tests and rehearsals make them: each run of the trace
/// carried out the plan's steps, or its rollback steps when it was a rollback run.
pub fn audit(w: &World, plan: &Plan) -> Vec<Violation> {
    // The rollback steps as a plan of their own, made only when a run carried them out.
    let rollback = (!w.rollback_runs.is_empty()).then(|| Plan {
        steps: plan.rollback.clone(),
        edges: Vec::new(),
        rollback: Vec::new(),
        rollback_edges: Vec::new(),
        limits: Vec::new(),
        rollback_limits: Vec::new(),
        occupancy: Vec::new(),
        findings: Vec::new(),
        measures: Vec::new(),
        clusters: plan.clusters.clone(),
        site: plan.site.clone(),
        strategy: plan.strategy.clone(),
        input_hash: plan.input_hash.clone(),
        window: plan.window.clone(),
        stage: plan.stage.clone(),
        staging: plan.staging.clone(),
        staging_costs: plan.staging_costs.clone(),
        batches: plan.batches.clone(),
        backouts: Vec::new(),
        change: None,
        ..*plan
    });
    let runs: Vec<RunPlan> = w
        .trace
        .iter()
        .map(|e| e.run)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|run| RunPlan {
            run,
            plan: match &rollback {
                Some(rollback) if w.rollback_runs.contains(&run) => rollback,
                _ => plan,
            },
            facts: None,
        })
        .collect();
    audit_runs(w, &runs)
}

/// Audits the given runs.
pub fn audit_runs(w: &World, runs: &[RunPlan]) -> Vec<Violation> {
    let mut out = Vec::new();
    let index: std::collections::HashMap<&str, usize> = w
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    // The trace per run and cluster, in the order it was written.
    let mut by: std::collections::HashMap<(i64, usize), Vec<&TraceEntry>> = Default::default();
    let mut last_run: Vec<Option<i64>> = vec![None; w.clusters.len()];
    for e in &w.trace {
        if let Some(&ci) = index.get(e.cluster.as_str()) {
            by.entry((e.run, ci)).or_default().push(e);
            last_run[ci] = Some(e.run);
        }
    }
    for rp in runs {
        let rollback = w.rollback_runs.contains(&rp.run);
        // The plan's steps per cluster, in plan order.
        let mut intended: Vec<Vec<&ferry_model::PlannedStep>> = vec![Vec::new(); w.clusters.len()];
        for p in &rp.plan.steps {
            if let Some(&ci) = index.get(p.cluster.as_str()) {
                intended[ci].push(p);
            }
        }
        for (ci, intended) in intended.iter().enumerate() {
            if let Some(mine) = by.get(&(rp.run, ci)) {
                let facts = rp.facts.and_then(|f| f.get(&w.clusters[ci].name));
                let run = RunOfCluster {
                    plan: rp.plan,
                    intended,
                    entries: mine,
                    rollback,
                    facts,
                };
                audit_cluster(w, ci, &run, &mut out);
            }
        }
    }
    // The end checks judge where an upgrade ends: not a cluster whose last run rolled it back
    // (its nodes are meant to be back on the versions they had).
    for (ci, last) in last_run.iter().enumerate() {
        if last.is_some_and(|r| !w.rollback_runs.contains(&r)) {
            end_checks(w, ci, &mut out);
            services_left_inactive(w, ci, &mut out);
        }
    }
    for i in &w.incidents {
        out.push(Violation {
            rule: i.rule.clone(),
            severity: i.severity,
            time: i.time,
            cluster: i.cluster.clone(),
            node: i.node.clone(),
            step: i.step.clone(),
            message: i.message.clone(),
        });
    }
    out.sort_by(|a, b| {
        (a.time, &a.cluster, &a.rule, &a.message).cmp(&(b.time, &b.cluster, &b.rule, &b.message))
    });
    out.dedup();
    out
}

/// One run of one cluster to audit.
struct RunOfCluster<'a> {
    plan: &'a Plan,
    /// The plan's steps of the cluster, in plan order.
    intended: &'a [&'a ferry_model::PlannedStep],
    /// The cluster's trace in the run, in the order it was written.
    entries: &'a [&'a TraceEntry],
    rollback: bool,
    /// Cluster facts the plan was made with over the site's.
    facts: Option<&'a ferry_model::Facts>,
}

fn audit_cluster(w: &World, ci: usize, run: &RunOfCluster<'_>, out: &mut Vec<Violation>) {
    let RunOfCluster {
        plan,
        intended,
        entries,
        rollback,
        facts,
    } = *run;
    let c = &w.clusters[ci];
    let planned_with;
    let site_cluster = match facts {
        Some(f) => {
            let mut view = w.site.clusters[ci].clone();
            view.facts
                .extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
            planned_with = view;
            &planned_with
        }
        None => &w.site.clusters[ci],
    };
    let profile = w.profile(ci);
    let cp = plan.clusters.iter().find(|p| p.name == c.name);
    let path: Vec<String> = cp.map(|p| p.path.clone()).unwrap_or_default();
    let types: Vec<String> = cp
        .map(|p| p.upgrade_type.split(" then ").map(str::to_string).collect())
        .unwrap_or_else(|| vec![c.upgrade_type.clone()]);
    let legs = path.len().saturating_sub(1).max(1);
    let proc: &Procedure = if rollback {
        &profile.rollback
    } else {
        &profile.procedure
    };
    // The leg of each planned step.
    let intended_legs: Vec<usize> = intended
        .iter()
        .map(|p| leg_of_planned(p, &path, rollback, legs))
        .collect();
    let mut by_leg: Vec<Vec<&TraceEntry>> = vec![Vec::new(); legs];
    for e in entries {
        let h = if rollback {
            legs - 1
        } else {
            leg_of(&e.step, &path)
        };
        by_leg[h.min(legs - 1)].push(e);
    }
    for (h, leg_entries) in by_leg.iter().enumerate() {
        if leg_entries.is_empty() {
            continue;
        }
        let ut = types.get(h).or(types.last()).cloned().unwrap_or_default();
        let scope = Scope {
            cluster: site_cluster,
            profile,
            upgrade_type: Some(&ut),
            strategy: &c.strategy,
            leg: if rollback { (0, 1) } else { (h, legs) },
            run: None,
            // A rollback is never staged.
            staging: !rollback && cp.is_some_and(|p| p.staging),
        };
        let applies = |cond: &Option<ferry_model::profile::Condition>| {
            cond.as_ref().is_none_or(|x| eval(x, &scope, None))
        };
        // When each step of the leg first ended.
        let mut ended: HashMap<&str, i64> = HashMap::new();
        for e in leg_entries {
            ended
                .entry(e.step.as_str())
                .and_modify(|t| *t = (*t).min(e.end))
                .or_insert(e.end);
        }
        for o in proc.orders.iter().filter(|o| applies(&o.when)) {
            // Where the order gives way to a capacity limit, a node's steps do not hold back
            // the others' (the limit orders them).
            let yielding = ferry_model::capacity::yielding(o, &proc.limits, site_cluster, |l| {
                applies(&l.when)
            });
            // The steps the plan meant to run before, in this leg.
            let expected: Vec<&ferry_model::PlannedStep> = intended
                .iter()
                .zip(&intended_legs)
                .filter(|(_, &leg)| leg == h)
                .map(|(p, _)| *p)
                .filter(|p| {
                    o.before.step.contains(&p.action)
                        && (o.before.roles.is_empty()
                            || p.role.as_ref().is_some_and(|r| o.before.roles.contains(r)))
                })
                .collect();
            if expected.is_empty() {
                continue;
            }
            let late_steps = LateSteps::new(&expected, &ended, &yielding);
            for t in leg_entries.iter().filter(|e| selects(&o.then, e)) {
                // The first expected step that had not ended when `t` started.
                if let Some((b, end)) = late_steps.first_late(t) {
                    let when = match end {
                        Some(end) => format!("{} s before {b} ended", end - t.start),
                        None => format!("before {b} had run"),
                    };
                    out.push(Violation {
                        rule: o.rule.clone(),
                        severity: Severity::Inhibitor,
                        time: t.start,
                        cluster: c.name.clone(),
                        node: t.node.clone(),
                        step: Some(t.step.clone()),
                        message: format!(
                            "{} started {when}: {}",
                            t.step,
                            if o.note.is_empty() {
                                "the profile orders them"
                            } else {
                                &o.note
                            }
                        ),
                    });
                }
            }
        }
        for s in proc.sequences.iter().filter(|s| applies(&s.when)) {
            // Per node: the first start and the last end of its steps in the sequence.
            let mut spans: HashMap<&str, (i64, i64)> = HashMap::new();
            for e in leg_entries.iter().filter(|e| s.steps.contains(&e.action)) {
                if let Some(n) = e.node.as_deref() {
                    spans
                        .entry(n)
                        .and_modify(|(a, b)| {
                            *a = (*a).min(e.start);
                            *b = (*b).max(e.end);
                        })
                        .or_insert((e.start, e.end));
                }
            }
            let mut blocks: Vec<(i64, i64, String)> = Vec::new();
            for role in &s.roles {
                for n in site_cluster.nodes.iter().filter(|n| &n.role == role) {
                    if let Some(&(start, end)) = spans.get(n.name.as_str()) {
                        blocks.push((start, end, n.name.clone()));
                    }
                }
            }
            for pair in blocks.windows(2) {
                let (prev, next) = (&pair[0], &pair[1]);
                if next.0 < prev.1 {
                    out.push(Violation {
                        rule: s.rule.clone(),
                        severity: Severity::Inhibitor,
                        time: next.0,
                        cluster: c.name.clone(),
                        node: Some(next.2.clone()),
                        step: None,
                        message: format!(
                            "{} started its {} {} s before {} finished: {}",
                            next.2,
                            s.steps.join("/"),
                            prev.1 - next.0,
                            prev.2,
                            if s.note.is_empty() {
                                "one node at a time"
                            } else {
                                &s.note
                            }
                        ),
                    });
                }
            }
        }
        for l in proc.limits.iter().filter(|l| applies(&l.when)) {
            let Some(max) = l.max_concurrent else {
                continue;
            };
            let mut parts: BTreeMap<String, Vec<&TraceEntry>> = BTreeMap::new();
            for e in leg_entries.iter().copied().filter(|e| selects(&l.steps, e)) {
                let part = match &l.per_fact {
                    Some(f) => e
                        .node
                        .as_deref()
                        .and_then(|n| site_cluster.node(n))
                        .and_then(|n| n.facts.get(f))
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    None => String::new(),
                };
                parts.entry(part).or_default().push(e);
            }
            for (part, members) in parts {
                let mut points: Vec<(i64, i32, &str)> = Vec::new();
                for e in &members {
                    if e.end > e.start {
                        points.push((e.start, 1, e.step.as_str()));
                        points.push((e.end, -1, e.step.as_str()));
                    }
                }
                points.sort();
                let mut running = 0i32;
                let mut reported = false;
                for (t, d, step) in points {
                    running += d;
                    if running > max as i32 && !reported {
                        reported = true;
                        let on = if part.is_empty() {
                            String::new()
                        } else {
                            format!(" on {part}")
                        };
                        out.push(Violation {
                            rule: l.rule.clone(),
                            severity: Severity::Inhibitor,
                            time: t,
                            cluster: c.name.clone(),
                            node: None,
                            step: Some(step.to_string()),
                            message: format!(
                                "{running} steps limited by {} ran at once{on} (at most {max}): {}",
                                l.rule,
                                if l.note.is_empty() {
                                    "a concurrency limit"
                                } else {
                                    &l.note
                                }
                            ),
                        });
                    }
                    if running <= max as i32 {
                        reported = false;
                    }
                }
            }
        }
    }
    if !rollback {
        staged_as_allowed(w, ci, site_cluster, &types, entries, out);
        run_checks(w, ci, entries, out);
    }
}

/// Every step carried out ahead of the window (the staging phase) is one its profile lets run
/// while its node keeps serving: a `stage` rule whose condition holds. Anything else ran in
/// the staging phase against the profile's rules (a hand-edited plan, say): broken under the
/// step's own first rule.
fn staged_as_allowed(
    w: &World,
    ci: usize,
    site_cluster: &ferry_model::Cluster,
    types: &[String],
    entries: &[&TraceEntry],
    out: &mut Vec<Violation>,
) {
    let c = &w.clusters[ci];
    let profile = w.profile(ci);
    let ut = types.first().cloned().unwrap_or_default();
    let scope = Scope {
        cluster: site_cluster,
        profile,
        upgrade_type: Some(&ut),
        strategy: &c.strategy,
        leg: (0, 1),
        run: None,
        staging: true,
    };
    for e in entries
        .iter()
        .filter(|e| e.phase == ferry_model::Phase::Staging)
    {
        let template = profile.procedure.steps.iter().find(|t| t.id == e.action);
        let node = e.node.as_deref().and_then(|n| site_cluster.node(n));
        let allowed = template
            .and_then(|t| t.stage.as_ref())
            .is_some_and(|st| st.when.as_ref().is_none_or(|x| eval(x, &scope, node)));
        if allowed {
            continue;
        }
        out.push(Violation {
            rule: template
                .and_then(|t| t.rules.first().cloned())
                .unwrap_or_default(),
            severity: Severity::Inhibitor,
            time: e.start,
            cluster: c.name.clone(),
            node: e.node.clone(),
            step: Some(e.step.clone()),
            message: format!(
                "{} ran ahead of the window, which its profile does not allow: its node does not keep serving while it runs (no `stage` rule)",
                e.step
            ),
        });
    }
}

/// The profile's checks that can be judged on a run: inhibitors that held when it started,
/// end versions that must match, step durations bounded by a fact, the booked window.
fn run_checks(w: &World, ci: usize, entries: &[&TraceEntry], out: &mut Vec<Violation>) {
    let c = &w.clusters[ci];
    let site_cluster = &w.site.clusters[ci];
    let profile = w.profile(ci);
    let scope = run_scope(w, ci);
    let first = entries.iter().map(|e| e.start).min().unwrap_or(w.start);
    let last = entries.iter().map(|e| e.end).max().unwrap_or(w.now);
    for check in &profile.checks {
        if !check.when.as_ref().is_none_or(|x| eval(x, &scope, None)) {
            continue;
        }
        let mut v = |node: Option<String>, time: i64, message: String| {
            out.push(check_violation(check, &c.name, node, time, message))
        };
        match &check.test {
            CheckTest::Node(test) if check.severity == Severity::Inhibitor => {
                for n in &site_cluster.nodes {
                    if eval(test, &scope, Some(n)) {
                        v(
                            Some(n.name.clone()),
                            first,
                            format!(
                                "the run started although check `{}` (an inhibitor) holds on {}",
                                check.id, n.name
                            ),
                        );
                    }
                }
            }
            CheckTest::Cluster(test)
                if check.severity == Severity::Inhibitor && eval(test, &scope, None) =>
            {
                v(
                    None,
                    first,
                    format!(
                        "the run started although check `{}` (an inhibitor) holds",
                        check.id
                    ),
                );
            }
            CheckTest::StepWithinFact { step, fact } => {
                for e in entries.iter().filter(|e| &e.action == step) {
                    let limit = e
                        .node
                        .as_deref()
                        .and_then(|n| c.nodes.iter().find(|x| x.name == n))
                        .and_then(|n| n.facts.get(fact))
                        .or_else(|| c.facts.get(fact))
                        .and_then(|x| x.as_f64());
                    if let Some(limit) = limit {
                        let took = (e.end - e.start) as f64;
                        if took > limit {
                            v(
                                e.node.clone(),
                                e.start + limit as i64,
                                format!("{} took {took} s, longer than {fact} ({limit} s)", e.step),
                            );
                        }
                    }
                }
            }
            CheckTest::FitsWindow {} => {
                if let Some(win) = &w.site.window {
                    let window_end = win.start_epoch_s + (win.hours * 3600.0).round() as i64;
                    let window_start = entries
                        .iter()
                        .filter(|e| e.phase == ferry_model::plan::Phase::Window)
                        .map(|e| e.start)
                        .min()
                        .unwrap_or(first);
                    if last > window_end {
                        v(
                            None,
                            window_end,
                            format!(
                                "the work ran {} min past the end of the booked window (started {} min after it opened)",
                                (last - window_end) / 60,
                                (window_start - win.start_epoch_s) / 60
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// The scope the profile's checks are read in: the site's cluster as the plan saw it.
fn run_scope(w: &World, ci: usize) -> Scope<'_> {
    let c = &w.clusters[ci];
    Scope {
        cluster: &w.site.clusters[ci],
        profile: w.profile(ci),
        upgrade_type: Some(&c.upgrade_type),
        strategy: &c.strategy,
        leg: (0, 1),
        run: None,
        staging: c.staging,
    }
}

fn check_violation(
    check: &ferry_model::profile::Check,
    cluster: &str,
    node: Option<String>,
    time: i64,
    message: String,
) -> Violation {
    Violation {
        rule: check.rule.clone(),
        severity: check.severity,
        time,
        cluster: cluster.to_string(),
        node,
        step: None,
        message,
    }
}

/// Checks on the world's end state: nodes whose versions must match.
fn end_checks(w: &World, ci: usize, out: &mut Vec<Violation>) {
    let c = &w.clusters[ci];
    let profile = w.profile(ci);
    let scope = run_scope(w, ci);
    let last = c.last_end.unwrap_or(w.now);
    for check in &profile.checks {
        if !check.when.as_ref().is_none_or(|x| eval(x, &scope, None)) {
            continue;
        }
        let mut v = |node: Option<String>, time: i64, message: String| {
            out.push(check_violation(check, &c.name, node, time, message))
        };
        match &check.test {
            CheckTest::VersionsMatch {
                roles,
                numbers,
                with_roles,
            } if check.severity == Severity::Inhibitor => {
                let ends: Vec<&crate::world::NodeState> = c
                    .nodes
                    .iter()
                    .filter(|n| n.exists && roles.contains(&n.role))
                    .collect();
                let same = |a: &ferry_model::VendorVersion, b: &ferry_model::VendorVersion| {
                    match numbers {
                        Some(k) => a.same_prefix(b, *k),
                        None => a == b,
                    }
                };
                let others: Vec<&crate::world::NodeState> = if with_roles.is_empty() {
                    ends.iter().take(1).copied().collect()
                } else {
                    c.nodes
                        .iter()
                        .filter(|n| n.exists && with_roles.contains(&n.role))
                        .collect()
                };
                for n in &ends {
                    for o in &others {
                        if !same(&n.active, &o.active) {
                            v(
                                Some(n.name.clone()),
                                last,
                                format!(
                                    "{} ends on {} and {} on {}: they must match (check `{}`)",
                                    n.name, n.active, o.name, o.active, check.id
                                ),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Services an in-place install left inactive (profile `[twin.services]`) that no step
/// activated by the end: the server runs, but without them.
fn services_left_inactive(w: &World, ci: usize, out: &mut Vec<Violation>) {
    let Some(spec) = &w.profile(ci).twin.services else {
        return;
    };
    let c = &w.clusters[ci];
    let last = c.last_end.unwrap_or(w.now);
    for n in c.nodes.iter().filter(|n| n.exists && n.services_pending) {
        out.push(Violation {
            rule: spec.rule.clone(),
            severity: Severity::Inhibitor,
            time: last,
            cluster: c.name.clone(),
            node: Some(n.name.clone()),
            step: None,
            message: format!(
                "{} runs {} but the services its upgrade left inactive were never activated",
                n.name, n.active
            ),
        });
    }
}
