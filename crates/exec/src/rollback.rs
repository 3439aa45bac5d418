//! Rolling back a run: plan again from the run's stored inputs with the facts a driver observes
//! now, and turn the plan's rollback procedure into a plan the executor can carry out.
//!
//! The observed facts of a cluster replace the site file's facts of the same name, so a
//! rollback procedure whose steps depend on the cluster's state (which side serves, what was
//! already switched) is chosen from what is true now rather than from what was planned. How far
//! the run got (its journal: which steps ended done, which failed) decides the procedure's
//! `run` conditions.

use crate::executor::RollbackScope;
use crate::journal::{Journal, JournalError, RunId, RunInputs, StepState};
use ferry_model::plan::Edge;
use ferry_model::{Facts, Plan, PlannedStep, ProgressState, RunProgress, StepProgress};
use ferry_profiles::{load_site, ProfileSet};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("the stored profile `{name}` no longer loads: {message}")]
    Profile { name: String, message: String },
    #[error("the stored site {site} no longer loads: {message}")]
    Site { site: String, message: String },
    #[error("the driver observed facts of cluster `{0}`, which the site does not have")]
    UnknownCluster(String),
    #[error("cannot plan the rollback: {0}")]
    Plan(#[from] ferry_plan::PlanError),
    #[error("the rollback plan has no step for {0}")]
    Empty(RollbackScope),
}

/// The profiles and the site of a run's stored inputs, loaded again.
pub fn load_inputs(inputs: &RunInputs) -> Result<(ProfileSet, ferry_model::Site), RollbackError> {
    let mut set = ProfileSet::builtin().map_err(|e| RollbackError::Profile {
        name: "built-in".into(),
        message: e.to_string(),
    })?;
    for (name, text) in &inputs.profiles {
        set.add(&format!("journal:{name}.toml"), text)
            .map_err(|e| RollbackError::Profile {
                name: name.clone(),
                message: e.to_string(),
            })?;
    }
    let site =
        load_site(&inputs.site_name, &inputs.site_text, &set).map_err(|e| RollbackError::Site {
            site: inputs.site_name.clone(),
            message: e.to_string(),
        })?;
    Ok((set, site))
}

/// The profiles a site uses, by name (each copied once, however many clusters use it).
pub fn used_profiles(
    site: &ferry_model::Site,
    set: &ProfileSet,
) -> BTreeMap<String, ferry_model::Profile> {
    let mut used = BTreeMap::new();
    for c in &site.clusters {
        if !used.contains_key(&c.profile) {
            if let Some(p) = set.get(&c.profile) {
                used.insert(c.profile.clone(), p.profile.clone());
            }
        }
    }
    used
}

/// The upgrade plan of stored `inputs` (the site and profile texts a run is started from), with
/// the site and the profiles it uses: what a run is started with when no plan file is given
/// (`ferry serve`).
pub fn upgrade_plan(
    inputs: &RunInputs,
) -> Result<
    (
        Plan,
        ferry_model::Site,
        BTreeMap<String, ferry_model::Profile>,
    ),
    RollbackError,
> {
    let (set, site) = load_inputs(inputs)?;
    let opts = ferry_plan::PlanOptions {
        strategy: inputs.strategy.clone(),
        ..Default::default()
    };
    let plan = ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        inputs.input_hash(),
        &opts,
    )?;
    let profiles = used_profiles(&site, &set);
    Ok((plan, site, profiles))
}

/// How far run `run` got, from its journal: every step of its plan, with its cluster, its
/// node's role and its state.
pub fn run_progress(journal: &Journal, run: RunId) -> Result<RunProgress, JournalError> {
    let plan = journal.plan(run)?;
    run_progress_of(journal, run, &plan)
}

/// As `run_progress`, for a caller that holds the run's plan.
pub fn run_progress_of(
    journal: &Journal,
    run: RunId,
    plan: &Plan,
) -> Result<RunProgress, JournalError> {
    let states = journal.steps_of(run, plan)?;
    Ok(RunProgress {
        steps: plan
            .steps
            .iter()
            .zip(states)
            .map(|(s, st)| StepProgress {
                id: s.id.clone(),
                cluster: s.cluster.clone(),
                role: s.role.clone(),
                state: match st.state {
                    StepState::Done | StepState::Skipped => ProgressState::Done,
                    StepState::Failed => ProgressState::Failed,
                    StepState::Pending | StepState::Running => ProgressState::Open,
                },
            })
            .collect(),
    })
}

/// Plans again from `inputs` with the `observed` cluster facts laid over the site's, and
/// returns the rollback of every node the upgrade touches as an executable plan: the plan's
/// `rollback` steps, `rollback_edges` and `rollback_limits`, no window, no rollback of its own.
/// `progress` is how far the run being rolled back got (`run_progress`); without it, every
/// step whose `run` condition may hold is kept.
pub fn rollback_plan(
    inputs: &RunInputs,
    observed: &BTreeMap<String, Facts>,
    progress: Option<&RunProgress>,
) -> Result<Plan, RollbackError> {
    let (set, mut site) = load_inputs(inputs)?;
    for (cluster, facts) in observed {
        let c = site
            .clusters
            .iter_mut()
            .find(|c| &c.name == cluster)
            .ok_or_else(|| RollbackError::UnknownCluster(cluster.clone()))?;
        c.facts
            .extend(facts.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let opts = ferry_plan::PlanOptions {
        strategy: inputs.strategy.clone(),
        progress: progress.cloned(),
        ..Default::default()
    };
    let upgrade = ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        inputs.input_hash(),
        &opts,
    )?;
    Ok(Plan {
        steps: upgrade.rollback,
        edges: upgrade.rollback_edges,
        makespan_s: upgrade.rollback_makespan_s,
        prepare_s: 0,
        // A rollback runs nothing ahead of the window.
        staging_s: 0,
        stage: None,
        staging: Vec::new(),
        staging_costs: Vec::new(),
        lower_bound_s: 0,
        sequential_s: 0,
        window_s: None,
        window: None,
        measures: Vec::new(),
        limits: upgrade.rollback_limits,
        occupancy: Vec::new(),
        batches: Vec::new(),
        rollback: Vec::new(),
        rollback_edges: Vec::new(),
        rollback_limits: Vec::new(),
        rollback_makespan_s: 0,
        point_of_no_return_s: None,
        backouts: Vec::new(),
        ..upgrade
    })
}

/// The part of a rollback plan that `scope` asks for: for a node, its own steps and the
/// cluster-wide steps of its cluster; for a cluster, every step of it. Ordering through the
/// steps left out is kept (if A must precede B, which must precede C, and B is left out, A
/// still precedes C).
pub fn restrict(plan: Plan, scope: &RollbackScope) -> Result<Plan, RollbackError> {
    let keep = |s: &PlannedStep| match scope {
        RollbackScope::All => true,
        RollbackScope::Cluster { cluster } => &s.cluster == cluster,
        RollbackScope::Node { cluster, node } => {
            &s.cluster == cluster && s.node.as_ref().is_none_or(|n| n == node)
        }
    };
    if matches!(scope, RollbackScope::All) {
        return Ok(plan);
    }
    let index = plan.step_index();
    // Per step, in a topological order: the kept steps it must wait for.
    let n = plan.steps.len();
    let mut indeg: Vec<usize> = plan.steps.iter().map(|s| s.after.len()).collect();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in plan.steps.iter().enumerate() {
        for a in &s.after {
            if let Some(&p) = index.get(a.as_str()) {
                succs[p].push(i);
            }
        }
    }
    let mut waits: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut queue: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let kept: Vec<bool> = plan.steps.iter().map(keep).collect();
    while let Some(p) = queue.pop() {
        let passed: BTreeSet<usize> = if kept[p] {
            BTreeSet::from([p])
        } else {
            waits[p].clone()
        };
        for &c in &succs[p] {
            waits[c].extend(passed.iter().copied());
            indeg[c] -= 1;
            if indeg[c] == 0 {
                queue.push(c);
            }
        }
    }
    let ids: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
    let kept_ids: BTreeSet<&str> = (0..n)
        .filter(|&i| kept[i])
        .map(|i| ids[i].as_str())
        .collect();
    let edges: Vec<Edge> = plan
        .edges
        .iter()
        .filter(|e| kept_ids.contains(e.from.as_str()) && kept_ids.contains(e.to.as_str()))
        .cloned()
        .collect();
    let limits = plan
        .limits
        .iter()
        .map(|g| {
            let mut g = g.clone();
            g.steps.retain(|s| kept_ids.contains(s.as_str()));
            g.loads.retain(|l| kept_ids.contains(l.step.as_str()));
            g
        })
        .filter(|g| !g.steps.is_empty() || !g.loads.is_empty())
        .collect();
    let mut steps = Vec::new();
    for (i, mut s) in plan.steps.into_iter().enumerate() {
        if kept[i] {
            s.after = waits[i].iter().map(|&p| ids[p].clone()).collect();
            steps.push(s);
        }
    }
    if steps.is_empty() {
        return Err(RollbackError::Empty(scope.clone()));
    }
    Ok(Plan {
        steps,
        edges,
        limits,
        ..plan
    })
}
