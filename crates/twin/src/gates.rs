//! Gates: what a waiting step waits for, and the watch that notes every step started while a
//! gate the profile orders before it does not hold.

use crate::world::{Conditions, Event, World};
use ferry_model::profile::{Procedure, Scope as StepScope};
use ferry_model::{Effect, PlannedStep, StepKind, Wait};

fn waits(step: &PlannedStep) -> impl Iterator<Item = &Wait> {
    step.effects.iter().filter_map(|e| match e {
        Effect::Wait(w) => Some(w),
        _ => None,
    })
}

pub(crate) fn describe(w: &Wait) -> String {
    match w {
        Wait::Replication(roles) => format!("replication state 2 on every {}", roles.join("/")),
        Wait::Registered => "the node's devices to register to it".into(),
        Wait::Event(codes) => format!("log event {}", codes.join(" or ")),
        Wait::Collecting => "data collection from every source".into(),
        Wait::IntervalArchived => "the next interval archive".into(),
        Wait::Healthy => "the node to report healthy".into(),
        Wait::AllServing => "every server of the cluster to run".into(),
        Wait::SwitchedOver(roles) => format!("the {} to switch over", roles.join("/")),
        Wait::ClientsMoved => "every client to leave the node".into(),
    }
}

pub(crate) fn describe_waits(step: &PlannedStep) -> String {
    let v: Vec<String> = waits(step).map(describe).collect();
    if v.is_empty() {
        "its condition".into()
    } else {
        v.join(" and ")
    }
}

/// Whether one wait condition holds now, for node `ni` (a gate that started at `started`).
pub(crate) fn holds(w: &World, ci: usize, ni: Option<usize>, wait: &Wait, started: i64) -> bool {
    match wait {
        Wait::Replication(roles) => crate::replication::good(w, ci, roles),
        Wait::Registered => ni.is_none_or(|n| w.provides(ci, n) && crate::devices::home(w, ci, n)),
        Wait::Event(codes) => {
            let c = &w.clusters[ci];
            match ni {
                Some(n) => {
                    let node = &c.nodes[n];
                    codes.iter().any(|code| {
                        node.last_logged
                            .get(code)
                            .is_some_and(|&t| t >= node.last_start)
                    })
                }
                None => codes.iter().any(|code| c.last_logged.contains_key(code)),
            }
        }
        Wait::Collecting => ni.is_some_and(|n| crate::collector::collects_all(w, ci, n)),
        Wait::IntervalArchived => {
            crate::collector::next_archive(w, ci, started).is_none_or(|t| w.now >= t)
        }
        Wait::Healthy => ni.is_none_or(|n| w.provides(ci, n) && w.clusters[ci].nodes[n].healthy),
        Wait::AllServing => (0..w.clusters[ci].nodes.len())
            .all(|n| !w.clusters[ci].nodes[n].exists || w.provides(ci, n)),
        Wait::SwitchedOver(roles) => {
            ni.is_none_or(|n| crate::pairs::switched_over(w, ci, n, roles))
        }
        Wait::ClientsMoved => ni.is_none_or(|n| crate::config::clients_moved(w, ci, n)),
    }
}

/// The waits of a gate step, in the order written.
pub(crate) fn waits_of(step: &PlannedStep) -> Vec<Wait> {
    waits(step).cloned().collect()
}

/// Every wait of a running gate holds.
pub(crate) fn all_hold(
    w: &World,
    ci: usize,
    ni: Option<usize>,
    waits: &[Wait],
    started: i64,
) -> bool {
    waits.iter().all(|wt| holds(w, ci, ni, wt, started))
}

/// A gate starts waiting.
pub(crate) fn on_wait_start(w: &mut World, ci: usize, ni: Option<usize>, wait: &Wait) {
    match wait {
        Wait::Registered => {
            if let Some(n) = ni {
                crate::devices::release(w, ci, n);
            }
        }
        Wait::IntervalArchived => {
            if let Some(t) = crate::collector::next_archive(w, ci, w.now) {
                w.schedule(t, Event::Recheck { cluster: ci });
            }
        }
        _ => {}
    }
}

/// Wait effects of a template as they apply to node `ni` (its `if` decided on the world now).
fn template_waits(
    conditions: &Conditions<'_>,
    ni: Option<usize>,
    effects: &[Effect],
    out: &mut Vec<Wait>,
) {
    for e in effects {
        match e {
            Effect::Wait(x) => out.push(x.clone()),
            Effect::If { when, then } if conditions.holds(ni, when) => {
                template_waits(conditions, ni, then, out)
            }
            _ => {}
        }
    }
}

/// Notes an incident when `step` starts while a gate that an order rule of the profile puts
/// before it does not hold.
pub(crate) fn watch(
    w: &mut World,
    ci: usize,
    ni: Option<usize>,
    step: &PlannedStep,
    rollback: bool,
) {
    for (rule, msg) in unheld_gates(w, ci, ni, step, rollback) {
        w.step_incident(ci, ni, &step.id, &rule, msg);
    }
}

/// What `watch` notes, in order: (rule, message) per gate that does not hold.
fn unheld_gates(
    w: &World,
    ci: usize,
    ni: Option<usize>,
    step: &PlannedStep,
    rollback: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let conditions = w.conditions(ci);
    let profile = w.profile_arc(ci);
    let proc: &Procedure = if rollback {
        &profile.rollback
    } else {
        &profile.procedure
    };
    let role = step.role.clone();
    for o in &proc.orders {
        let then_ok = o.then.step.contains(&step.action)
            && (o.then.roles.is_empty() || role.as_ref().is_some_and(|r| o.then.roles.contains(r)));
        if !then_ok || !o.when.as_ref().is_none_or(|c| conditions.holds(None, c)) {
            continue;
        }
        let cluster = w.clusters[ci].name.clone();
        let gates: Vec<&ferry_model::profile::StepTemplate> = proc
            .steps
            .iter()
            .filter(|t| {
                t.kind == StepKind::Gate
                    && o.before.step.contains(&t.id)
                    && w.planned.contains(&(cluster.clone(), t.id.clone()))
            })
            .collect();
        for t in gates {
            let nodes: Vec<Option<usize>> = match t.scope {
                StepScope::Cluster => vec![None],
                StepScope::Node => w
                    .nodes_with_roles(
                        ci,
                        if t.roles.is_empty() {
                            &o.before.roles
                        } else {
                            &t.roles
                        },
                    )
                    .into_iter()
                    .filter(|&m| {
                        let r = &w.clusters[ci].nodes[m].role;
                        w.clusters[ci].nodes[m].exists
                            && (t.roles.is_empty() || t.roles.contains(r))
                            && (o.before.roles.is_empty() || o.before.roles.contains(r))
                            && Some(m) != ni
                    })
                    .map(Some)
                    .collect(),
            };
            for gn in nodes {
                let mut ws = Vec::new();
                template_waits(&conditions, gn, &t.effects, &mut ws);
                for wt in ws {
                    if matches!(wt, Wait::IntervalArchived) {
                        continue;
                    }
                    if !holds(w, ci, gn, &wt, w.now) {
                        let at = gn
                            .map(|g| format!(" on {}", w.clusters[ci].nodes[g].name))
                            .unwrap_or_default();
                        let msg = format!(
                            "{} started while `{}`{at} did not hold: {}",
                            step.id,
                            t.id,
                            describe(&wt)
                        );
                        out.push((o.rule.clone(), msg));
                    }
                }
            }
        }
    }
    out
}
