//! Helpers shared by the planner's tests: load sites with the built-in profiles, plan them,
//! and ask questions of the plan the way an engineer would.
#![allow(dead_code)]

use ferry_model::{Finding, Plan, PlannedStep, Severity};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};

pub fn profiles() -> ProfileSet {
    ProfileSet::builtin().unwrap_or_else(|e| panic!("built-in profiles must load: {e:?}"))
}

/// The text of `examples/NAME.toml`.
pub fn example(name: &str) -> String {
    let path = format!("{}/../../examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Plans a site text with a strategy (`None`: each cluster's own, else fastest).
pub fn plan_with(site: &str, strategy: Option<&str>) -> Plan {
    let set = profiles();
    let site = load_site("test.toml", site, &set)
        .unwrap_or_else(|e| panic!("site must load: {:?}", miette::Report::new(e)));
    ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        "test".into(),
        &PlanOptions {
            strategy: strategy.map(str::to_string),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("plan: {e}"))
}

pub fn plan(site: &str) -> Plan {
    plan_with(site, None)
}

/// The findings of the checks that could be judged (the "unknown: cannot judge" findings of
/// checks whose fact the site does not state are left out: `all_findings` has them).
pub fn findings(site: &str) -> Vec<Finding> {
    all_findings(site)
        .into_iter()
        .filter(|f| !f.key.contains("/unknown/"))
        .collect()
}

/// Every finding of the preflight, the checks that could not be judged included.
pub fn all_findings(site: &str) -> Vec<Finding> {
    let set = profiles();
    let site = load_site("test.toml", site, &set)
        .unwrap_or_else(|e| panic!("site must load: {:?}", miette::Report::new(e)));
    ferry_plan::check(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        &PlanOptions::default(),
    )
    .expect("check")
}

/// The findings of the checks that could be judged (a plan's, without its "unknown: cannot
/// judge" findings).
pub fn judged(f: &[Finding]) -> Vec<Finding> {
    f.iter()
        .filter(|x| !x.key.contains("/unknown/"))
        .cloned()
        .collect()
}

/// Findings of one rule.
pub fn findings_of<'a>(f: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    f.iter().filter(|x| x.rule == rule).collect()
}

pub fn inhibitors(f: &[Finding]) -> Vec<&Finding> {
    f.iter()
        .filter(|x| x.severity == Severity::Inhibitor)
        .collect()
}

/// The step with this ID (`cluster/node/action`), or a panic listing the IDs there are.
pub fn step<'a>(plan: &'a Plan, id: &str) -> &'a PlannedStep {
    plan.steps.iter().find(|s| s.id == id).unwrap_or_else(|| {
        panic!(
            "no step {id}; steps: {}",
            plan.steps
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Steps of one action (on any node, or on nodes of `role` when given).
pub fn steps_of<'a>(plan: &'a Plan, action: &str, role: Option<&str>) -> Vec<&'a PlannedStep> {
    plan.steps
        .iter()
        .filter(|s| s.action == action && role.is_none_or(|r| s.role.as_deref() == Some(r)))
        .collect()
}

/// Every step in `first` ends before every step in `then` starts (same phase assumed).
pub fn assert_all_before(first: &[&PlannedStep], then: &[&PlannedStep]) {
    assert!(!first.is_empty() && !then.is_empty(), "empty step set");
    for a in first {
        for b in then {
            assert!(
                a.phase < b.phase || (a.phase == b.phase && a.end_s() <= b.start_s),
                "{} (ends {}) must end before {} starts ({})",
                a.id,
                a.end_s(),
                b.id,
                b.start_s
            );
        }
    }
}

/// No two of these steps overlap in time.
pub fn assert_one_at_a_time(steps: &[&PlannedStep]) {
    for (i, a) in steps.iter().enumerate() {
        for b in &steps[i + 1..] {
            assert!(
                a.end_s() <= b.start_s || b.end_s() <= a.start_s,
                "{} [{}..{}] overlaps {} [{}..{}]",
                a.id,
                a.start_s,
                a.end_s(),
                b.id,
                b.start_s,
                b.end_s()
            );
        }
    }
}

/// At least two of these steps run at the same time.
pub fn assert_some_overlap(steps: &[&PlannedStep]) {
    let any = steps.iter().enumerate().any(|(i, a)| {
        steps[i + 1..]
            .iter()
            .any(|b| a.start_s < b.end_s() && b.start_s < a.end_s())
    });
    assert!(
        any,
        "expected some of {:?} to run in parallel",
        steps.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
}

/// The actions of a node's steps, in start order.
pub fn node_actions(plan: &Plan, node: &str) -> Vec<String> {
    plan.steps
        .iter()
        .filter(|s| s.node.as_deref() == Some(node))
        .map(|s| s.action.clone())
        .collect()
}

/// The position of each action in the plan's overall start order (first instance).
pub fn first_start(plan: &Plan, action: &str) -> u64 {
    plan.steps
        .iter()
        .filter(|s| s.action == action)
        .map(|s| s.start_s)
        .min()
        .unwrap_or_else(|| panic!("no {action} step"))
}

/// The spans in which each node is out of service by a strategy's batches: from the start of
/// its first step of `actions` to the end of its last, per node, in plan order.
pub fn out_spans(plan: &Plan, actions: &[&str]) -> Vec<(String, u64, u64)> {
    let mut spans: Vec<(String, u64, u64)> = Vec::new();
    for s in plan
        .steps
        .iter()
        .filter(|s| actions.contains(&s.action.as_str()))
    {
        let Some(node) = &s.node else { continue };
        match spans.iter_mut().find(|(n, _, _)| n == node) {
            Some(x) => {
                x.1 = x.1.min(s.start_s);
                x.2 = x.2.max(s.end_s());
            }
            None => spans.push((node.clone(), s.start_s, s.end_s())),
        }
    }
    spans
}

/// At every moment some node is out (see `out_spans`), every group of servers keeps one that
/// is not, and every server stays within `capacity` (when given) with the devices of the groups
/// it then carries: each group registers to its first server in service.
pub fn assert_every_group_served(
    plan: &Plan,
    actions: &[&str],
    groups: &[(&[&str], f64)],
    capacity: Option<f64>,
) {
    let spans = out_spans(plan, actions);
    assert!(!spans.is_empty(), "no step of {actions:?} in the plan");
    for (_, at, _) in &spans {
        let out: Vec<&str> = spans
            .iter()
            .filter(|(_, s, e)| s <= at && at < e)
            .map(|(n, _, _)| n.as_str())
            .collect();
        let mut load: std::collections::BTreeMap<&str, f64> = Default::default();
        for (servers, count) in groups {
            let serving = servers.iter().find(|s| !out.contains(s));
            let Some(serving) = serving else {
                panic!("at {at} s every server of {servers:?} is out ({out:?})");
            };
            *load.entry(serving).or_default() += count;
        }
        if let Some(cap) = capacity {
            for (server, l) in load {
                let foreign = groups.iter().any(|(g, _)| {
                    g[0] != server && g.iter().find(|s| !out.contains(s)) == Some(&server)
                });
                assert!(
                    !foreign || l <= cap,
                    "at {at} s {server} carries {l} devices (capacity {cap}) while {out:?} are out"
                );
            }
        }
    }
}

/// A strategy the cluster's profile does not offer plans the cluster as `fastest`, says so in
/// an info finding of rule FERRY-STRATEGY, and changes nothing else.
pub fn assert_planned_as_fastest(site: &str, strategy: &str) {
    let fastest = plan_with(site, Some("fastest"));
    let other = plan_with(site, Some(strategy));
    for c in &other.clusters {
        assert_eq!(c.strategy, "fastest", "{strategy}: cluster {}", c.name);
        let f = other
            .findings
            .iter()
            .find(|f| f.rule == "FERRY-STRATEGY" && f.cluster.as_deref() == Some(&c.name))
            .unwrap_or_else(|| panic!("{strategy}: no FERRY-STRATEGY finding for {}", c.name));
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.message
                .contains(&format!("does not offer strategy `{strategy}`"))
                && f.message.contains("planned with `fastest`"),
            "{}",
            f.message
        );
    }
    let times = |p: &Plan| {
        p.steps
            .iter()
            .map(|s| (s.id.clone(), s.start_s, s.duration_s))
            .collect::<Vec<_>>()
    };
    assert_eq!(times(&other), times(&fastest), "{strategy}");
    assert_eq!(other.edges, fastest.edges, "{strategy}");
}

/// The phase a step is planned in, as the plan's JSON names it (`prepare`, `staging`, `window`).
pub fn phase_name(s: &PlannedStep) -> String {
    serde_json::to_value(s.phase)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The actions of the plan's steps in `phase`, each with its node (`cluster` steps: `-`),
/// sorted: `node/action`.
pub fn in_phase(plan: &Plan, phase: &str) -> Vec<String> {
    let mut v: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| phase_name(s) == phase)
        .map(|s| format!("{}/{}", s.node.as_deref().unwrap_or("-"), s.action))
        .collect();
    v.sort();
    v
}

/// The plan as JSON (what `ferry plan --format json` writes).
pub fn plan_json(plan: &Plan) -> serde_json::Value {
    serde_json::to_value(plan).expect("a plan serialises")
}

/// A site text with `line` (e.g. a staging period) added to its `[site]` table, right after
/// its `window = ...` line.
pub fn with_site_line(site: &str, line: &str) -> String {
    let at = site
        .lines()
        .position(|l| l.trim_start().starts_with("window ="))
        .expect("the site books a window");
    let mut lines: Vec<&str> = site.lines().collect();
    lines.insert(at + 1, line);
    lines.join("\n") + "\n"
}

/// Every ordering edge of the plan goes forward in phase order: no step of an earlier phase
/// waits for a step of a later one.
pub fn assert_edges_go_forward(plan: &Plan) {
    let rank = |p: &str| match p {
        "prepare" => 0,
        "staging" => 1,
        _ => 2,
    };
    for s in &plan.steps {
        for a in &s.after {
            let before = step(plan, a);
            assert!(
                rank(&phase_name(before)) <= rank(&phase_name(s)),
                "{} ({}) waits for {} ({})",
                s.id,
                phase_name(s),
                a,
                phase_name(before)
            );
        }
    }
}
