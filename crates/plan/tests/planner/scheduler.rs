//! Scheduler invariants on random step graphs: every edge kept, every limit kept, the
//! makespan between the lower bound and the one-at-a-time total, the same answer every time.

use ferry_model::{Impact, Phase, PlannedStep, Severity, StepKind};
use ferry_plan::graph::{CapacityGroup, Graph, Inst, LimitGroup};
use ferry_plan::schedule::{lower_bound, schedule, sequential};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn step(i: usize, duration_s: u64, phase: Phase) -> Inst {
    Inst {
        step: PlannedStep {
            id: format!("c/n{i}/s"),
            cluster: "c".into(),
            node: Some(format!("n{i}")),
            role: None,
            action: "s".into(),
            title: "s".into(),
            kind: StepKind::Action,
            phase,
            after: vec![],
            rules: vec!["T-01".into()],
            start_s: 0,
            duration_s,
            estimate: Default::default(),
            spread: None,
            impact: Impact::None,
            impact_note: String::new(),
            instructions: String::new(),
            verify: String::new(),
            warning: None,
            version: None,
            effects: Vec::new(),
            retries: 0,
            timeout_s: None,
            rollback: false,
        },
        template: Some(i),
    }
}

/// Random DAGs: edges only from lower to higher index; a few limit groups, some weighted.
fn graphs() -> impl Strategy<Value = Graph> {
    (2usize..28)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec((0u64..5000, any::<bool>()), n),
                proptest::collection::vec((0..n, 0..n), 0..n * 2),
                proptest::collection::vec(
                    (
                        proptest::collection::vec(0..n, 1..n),
                        1u32..4,
                        proptest::option::of((1u32..6, 0u64..4000)),
                    ),
                    0..3,
                ),
            )
        })
        .prop_map(|(nodes, edges, limits)| {
            // Prepare-phase steps only come first, so no window step precedes a prepare step.
            let n = nodes.len();
            let prepare_upto = nodes.iter().take_while(|(_, p)| *p).count();
            let mut g = Graph::default();
            for (i, (d, _)) in nodes.iter().enumerate() {
                g.insts.push(step(
                    i,
                    *d,
                    if i < prepare_upto {
                        Phase::Prepare
                    } else {
                        Phase::Window
                    },
                ));
            }
            for (a, b) in edges {
                if a < b {
                    g.edges.push((a, b, "T-01".into(), String::new()));
                }
            }
            for (members, width, cap) in limits {
                let mut members: Vec<usize> = members.into_iter().filter(|m| *m < n).collect();
                members.sort();
                members.dedup();
                let capacity = cap.map(|(parts, max)| CapacityGroup {
                    max: max as f64,
                    weight: members
                        .iter()
                        .map(|&m| {
                            (
                                m,
                                (format!("p{}", m as u32 % parts), (m as f64 * 97.0) % 1500.0),
                            )
                        })
                        .collect(),
                    base: BTreeMap::new(),
                    what: String::new(),
                    severity: Severity::Warning,
                    hold: None,
                });
                g.limits.push(LimitGroup {
                    rule: "T-02".into(),
                    note: String::new(),
                    members,
                    max_concurrent: Some(width),
                    capacity,
                });
            }
            g
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn schedules_keep_every_rule(g in graphs()) {
        let start = schedule(&g).expect("acyclic graphs schedule");
        let end = |i: usize| start[i] + g.insts[i].step.duration_s;
        // Edges within a phase are kept; prepare always precedes the window.
        for (a, b, _, _) in &g.edges {
            if g.insts[*a].step.phase == g.insts[*b].step.phase {
                prop_assert!(end(*a) <= start[*b], "edge {a}->{b}");
            }
        }
        // At any step's start, each limit's running members are within the width and capacity.
        for l in &g.limits {
            for &m in &l.members {
                let t = start[m];
                let phase = g.insts[m].step.phase;
                let running: Vec<usize> = l.members.iter().copied()
                    .filter(|&o| g.insts[o].step.phase == phase && start[o] <= t && t < end(o) && g.insts[o].step.duration_s > 0)
                    .collect();
                if let Some(w) = l.max_concurrent {
                    prop_assert!(running.len() <= w as usize, "{} running > {w}", running.len());
                }
                if let Some(c) = &l.capacity {
                    let mut load: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
                    for o in &running {
                        let (p, w) = &c.weight[o];
                        let e = load.entry(p.as_str()).or_default();
                        e.0 += w;
                        e.1 += 1;
                    }
                    for (p, (sum, count)) in load {
                        prop_assert!(sum <= c.max || count == 1, "partition {p} load {sum} > {} at t={t}: {:?}", c.max,
                            running.iter().map(|o| (o, start[*o], end(*o), &c.weight[o])).collect::<Vec<_>>());
                    }
                }
            }
        }
        let makespan = (0..g.insts.len()).filter(|&i| g.insts[i].step.phase == Phase::Window).map(end).max().unwrap_or(0);
        let lb = lower_bound(&g, Phase::Window).expect("bound");
        prop_assert!(lb <= makespan, "lower bound {lb} > makespan {makespan}");
        prop_assert!(makespan <= sequential(&g, Phase::Window), "makespan above one-at-a-time");
        prop_assert_eq!(schedule(&g).expect("again"), start, "same graph, same schedule");
    }

    #[test]
    fn without_limits_the_schedule_meets_the_lower_bound(mut g in graphs()) {
        g.limits.clear();
        let start = schedule(&g).expect("schedule");
        let makespan = (0..g.insts.len()).filter(|&i| g.insts[i].step.phase == Phase::Window).map(|i| start[i] + g.insts[i].step.duration_s).max().unwrap_or(0);
        prop_assert_eq!(makespan, lower_bound(&g, Phase::Window).expect("bound"));
    }
}

#[test]
fn a_cycle_is_an_error_naming_its_rules() {
    let mut g = Graph::default();
    g.insts.push(step(0, 10, Phase::Window));
    g.insts.push(step(1, 10, Phase::Window));
    g.edges.push((0, 1, "T-01".into(), String::new()));
    g.edges.push((1, 0, "T-02".into(), String::new()));
    let err = schedule(&g).expect_err("cycle");
    let text = err.to_string();
    assert!(
        text.contains("T-01") && text.contains("T-02") && text.contains("c/n0/s"),
        "{text}"
    );
}
