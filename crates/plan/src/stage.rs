//! Staging: which steps run ahead of the window, while their nodes keep serving.
//!
//! A step runs ahead (the staging phase) when its profile step has a `stage` rule whose
//! condition holds, every step it waits for runs before the window or ahead of it too, and,
//! when the rule says it goes `with` other steps, one of those runs ahead as well. Anything
//! else stays in the window. No window step then comes before a staged one: every edge still
//! goes forward in phase order, and keeps its rule ID.

use crate::graph::Graph;
use ferry_model::plan::StageDecision;
use ferry_model::Phase;
use std::collections::{BTreeMap, BTreeSet};

/// Moves the graph's stageable steps that may run ahead of the window into the staging phase
/// (their stage rule is added to their rules) and says, for each stageable step, what became
/// of it. The largest set that keeps every edge forward: steps are dropped from the candidates
/// until none waits for a window step and every `with` is met.
pub fn decide(g: &mut Graph) -> Vec<StageDecision> {
    if g.stageable.is_empty() {
        return Vec::new();
    }
    let mut preds: BTreeMap<usize, Vec<(usize, &str)>> = BTreeMap::new();
    for (f, t, rule, _) in &g.edges {
        if g.stageable.contains_key(t) {
            preds.entry(*t).or_default().push((*f, rule.as_str()));
        }
    }
    let mut staged: BTreeSet<usize> = g
        .stageable
        .keys()
        .copied()
        .filter(|&i| g.insts[i].step.phase == Phase::Window)
        .collect();
    let mut kept_by: BTreeMap<usize, String> = BTreeMap::new();
    loop {
        let mut dropped = Vec::new();
        for &i in &staged {
            let waits = preds
                .get(&i)
                .into_iter()
                .flatten()
                .find(|(p, _)| g.insts[*p].step.phase == Phase::Window && !staged.contains(p));
            if let Some((p, rule)) = waits {
                dropped.push((
                    i,
                    format!(
                        "it waits for `{}` ({rule}), which stays in the window",
                        g.insts[*p].step.id
                    ),
                ));
                continue;
            }
            let with = &g.stageable[&i].with;
            if !with.is_empty() {
                let cluster = &g.insts[i].step.cluster;
                let met = staged.iter().any(|&o| {
                    o != i
                        && &g.insts[o].step.cluster == cluster
                        && with.contains(&g.insts[o].step.action)
                });
                if !met {
                    dropped.push((
                        i,
                        format!(
                            "it goes ahead only with {}, and none of them does",
                            with.iter()
                                .map(|w| format!("`{w}`"))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ));
                }
            }
        }
        if dropped.is_empty() {
            break;
        }
        for (i, why) in dropped {
            staged.remove(&i);
            kept_by.insert(i, why);
        }
    }
    let mut out = Vec::new();
    for (&i, st) in &g.stageable {
        let step = &mut g.insts[i].step;
        let runs_ahead = staged.contains(&i);
        if runs_ahead {
            step.phase = Phase::Staging;
            if !step.rules.contains(&st.rule) {
                step.rules.push(st.rule.clone());
            }
        }
        out.push(StageDecision {
            step: step.id.clone(),
            rule: st.rule.clone(),
            note: st.note.clone(),
            staged: runs_ahead,
            kept_by: kept_by.remove(&i).unwrap_or_default(),
        });
    }
    out
}
