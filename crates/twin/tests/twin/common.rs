//! Helpers: plan an example, build its twin, run the plan through it the way an executor
//! would (every step once its `after` steps are done, within the plan's concurrency and
//! capacity limits).
#![allow(dead_code)]

use ferry_model::{Faults, Outcome, Plan, PlannedStep, Profile, Site};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};
use ferry_twin::{audit, impact, Impact, Violation, World};
use std::collections::{BTreeMap, BTreeSet};

pub fn example(name: &str) -> String {
    let path = format!("{}/../../examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn example_names() -> Vec<String> {
    let dir = format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

pub struct Case {
    pub site: Site,
    pub profiles: BTreeMap<String, Profile>,
    pub plan: Plan,
}

#[allow(clippy::needless_update)]
pub fn case_with(site_text: &str, strategy: Option<&str>) -> Case {
    let set = ProfileSet::builtin().unwrap_or_else(|e| panic!("{e:?}"));
    let site = load_site("test.toml", site_text, &set)
        .unwrap_or_else(|e| panic!("site: {:?}", miette::Report::new(e)));
    let plan = ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        "test".into(),
        &PlanOptions {
            strategy: strategy.map(str::to_string),
            ..PlanOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("plan: {e}"));
    let profiles = site
        .clusters
        .iter()
        .map(|c| {
            (
                c.profile.clone(),
                set.get(&c.profile).unwrap().profile.clone(),
            )
        })
        .collect();
    Case {
        site,
        profiles,
        plan,
    }
}

pub fn case(example_name: &str) -> Case {
    case_with(&example(example_name), None)
}

pub fn faults(text: &str) -> Faults {
    toml::from_str(text).unwrap_or_else(|e| panic!("faults: {e}"))
}

pub fn world(c: &Case, faults: &Faults, seed: u64) -> World {
    World::build(&c.site, &c.profiles, &c.plan, faults, seed).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `steps` as run `run_id`: every step once its `after` steps are done or skipped, at most
/// `max_concurrent` at once in each limit group; after a failure no new step starts.
pub fn run_steps(
    w: &mut World,
    plan: &Plan,
    run_id: i64,
    steps: &[PlannedStep],
) -> BTreeMap<String, Outcome> {
    run_steps_until(w, plan, run_id, steps, |_| false)
}

/// As `run_steps`, but returns as soon as `stop` holds after a step started or ended.
pub fn run_steps_until(
    w: &mut World,
    plan: &Plan,
    run_id: i64,
    steps: &[PlannedStep],
    stop: impl Fn(&World) -> bool,
) -> BTreeMap<String, Outcome> {
    let mut outcome: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut running: BTreeSet<String> = BTreeSet::new();
    let mut failed = false;
    loop {
        if !failed {
            for s in steps {
                if outcome.contains_key(&s.id) || running.contains(&s.id) {
                    continue;
                }
                let prepare_pending = s.phase != ferry_model::Phase::Prepare
                    && steps.iter().any(|x| {
                        x.phase == ferry_model::Phase::Prepare
                            && !matches!(
                                outcome.get(&x.id),
                                Some(Outcome::Done) | Some(Outcome::Skipped)
                            )
                    });
                if prepare_pending {
                    continue;
                }
                let ready = s.after.iter().all(|a| {
                    matches!(outcome.get(a), Some(Outcome::Done) | Some(Outcome::Skipped))
                        || !steps.iter().any(|x| &x.id == a)
                });
                if !ready {
                    continue;
                }
                if fits_limits(plan, &running, &s.id) {
                    running.insert(s.id.clone());
                    w.begin(run_id, s);
                    if stop(w) {
                        return outcome;
                    }
                }
            }
        }
        match w.advance(None) {
            Some((_, id, o)) => {
                running.remove(&id);
                if matches!(o, Outcome::Failed(_)) {
                    failed = true;
                }
                outcome.insert(id, o);
                if stop(w) {
                    return outcome;
                }
            }
            None => break,
        }
    }
    outcome
}

/// Whether step `id` may start next to the `running` steps within the plan's limits, as the
/// executor keeps them: each `max_concurrent` group, and each partition of a capacity group
/// (its base plus the running members' loads within the capacity; a member alone always runs).
pub fn fits_limits(plan: &Plan, running: &BTreeSet<String>, id: &str) -> bool {
    plan.limits.iter().all(|g| {
        let width = match g.max_concurrent {
            Some(m) if g.steps.iter().any(|x| x == id) => {
                running.iter().filter(|r| g.steps.contains(r)).count() < m as usize
            }
            _ => true,
        };
        let capacity = match g.capacity {
            Some(cap) => g.loads.iter().filter(|l| l.step == id).all(|l| {
                let others: Vec<f64> = g
                    .loads
                    .iter()
                    .filter(|o| o.partition == l.partition && running.contains(&o.step))
                    .map(|o| o.weight)
                    .collect();
                let base = g.base.get(&l.partition).copied().unwrap_or(0.0);
                others.is_empty() || base + others.iter().sum::<f64>() + l.weight <= cap + 1e-9
            }),
            None => true,
        };
        width && capacity
    })
}

pub struct Rehearsal {
    pub world: World,
    pub outcomes: BTreeMap<String, Outcome>,
    pub violations: Vec<Violation>,
    pub impact: Impact,
}

pub fn rehearse_case(c: &Case, faults: &Faults, seed: u64) -> Rehearsal {
    let mut w = world(c, faults, seed);
    let outcomes = run_steps(&mut w, &c.plan, 1, &c.plan.steps);
    w.finish();
    let violations = audit(&w, &c.plan);
    let impact = impact(&w, false);
    Rehearsal {
        world: w,
        outcomes,
        violations,
        impact,
    }
}

pub fn rehearse(example_name: &str) -> Rehearsal {
    rehearse_case(&case(example_name), &Faults::default(), 1)
}

/// Runs the rollback plan of the case after `r` as run 2.
pub fn roll_back(c: &Case, r: &mut Rehearsal) -> BTreeMap<String, Outcome> {
    r.world.mark_rollback(2);
    let out = run_steps(&mut r.world, &c.plan, 2, &c.plan.rollback);
    r.world.finish();
    r.violations = audit(&r.world, &c.plan);
    r.impact = impact(&r.world, true);
    out
}

pub fn failed(outcomes: &BTreeMap<String, Outcome>) -> Vec<(&String, &Outcome)> {
    outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .collect()
}

pub fn rules(v: &[Violation]) -> BTreeSet<&str> {
    v.iter().map(|x| x.rule.as_str()).collect()
}

/// A copy of the plan in which `later` runs only after `earlier` has ended, and every edge that
/// made `earlier` wait for `later` (directly) is gone: a hand-edited, mis-ordered plan.
pub fn swap_order(plan: &Plan, earlier: &str, later: &str) -> Plan {
    let mut p = plan.clone();
    // Remove every path from `earlier` to `later`: drop `earlier`... `later` dependencies by
    // making `later` independent of anything that follows `earlier`.
    let mut after_earlier: BTreeSet<String> = BTreeSet::new();
    after_earlier.insert(earlier.to_string());
    loop {
        let before = after_earlier.len();
        for s in &p.steps {
            if s.after.iter().any(|a| after_earlier.contains(a)) {
                after_earlier.insert(s.id.clone());
            }
        }
        if after_earlier.len() == before {
            break;
        }
    }
    for s in &mut p.steps {
        if s.id == later {
            s.after.retain(|a| !after_earlier.contains(a));
        }
    }
    for s in &mut p.steps {
        if s.id == earlier {
            s.after.push(later.to_string());
        }
    }
    p
}
