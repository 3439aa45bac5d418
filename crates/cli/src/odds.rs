//! The odds a plan states and the comparison of plans: the command line composes the pure
//! planner (plans, the rules' lower bound) with the Monte Carlo rehearsals of `ferry-exec`.

use crate::exit::bad;
use crate::load::{plan_error, Loaded};
use crate::runs::used_profiles;
use anyhow::Result;
use ferry_exec::compare::{self, Candidate, Comparison, Odds};
use ferry_exec::{FailurePolicy, Rehearse, RehearseError};
use ferry_model::{Plan, Site};
use ferry_plan::PlanOptions;

/// How many times `ferry plan` and `ferry check` rehearse a plan for its odds by default.
pub const DEFAULT_RUNS: u32 = 500;

fn profile_of<'a>(l: &'a Loaded) -> impl Fn(&str) -> Option<&'a ferry_model::Profile> + Copy {
    move |n| l.profiles.get(n).map(|p| &p.profile)
}

/// Every strategy a plan of the site may use (those of every profile, then the site's
/// profiles' own).
pub fn strategies(l: &Loaded, site: &Site) -> Vec<String> {
    ferry_profiles::site::strategies(site, profile_of(l))
}

fn twin_error(site: &str, e: RehearseError) -> anyhow::Error {
    match e {
        RehearseError::Twin(e) => bad(format!("{site}: cannot rehearse: {e}")),
        e => anyhow::Error::new(e),
    }
}

/// Rehearses `plan` of `site` `runs` times (seeds 1 to `runs`); `None` when `runs` is 0.
/// `strategy` is the one the plan was made with (`None`: each cluster's own), kept with the
/// inputs a rollback would be planned from, as `ferry rehearse` keeps it.
pub fn rehearse_plan(
    l: &Loaded,
    site: &Site,
    plan: &Plan,
    strategy: Option<String>,
    runs: u32,
) -> Result<Option<Odds>> {
    let profiles = used_profiles(site, &l.profiles);
    let mut inputs = l.inputs.clone();
    inputs.strategy = strategy;
    let faults = ferry_model::Faults::default();
    let r = Rehearse {
        site,
        profiles: &profiles,
        inputs: &inputs,
        plan,
        faults: &faults,
        policy: FailurePolicy::Stop,
    };
    compare::odds(&r, runs, ferry_exec::rehearse::cores())
        .map_err(|e| twin_error(&l.inputs.site_name, e))
}

/// The plan of `site` with what `ferry plan` states beside it: the rules' lower bound, and,
/// unless `runs` is 0, its odds (with the `FERRY-FIT` warning below the site's `min_fit`).
pub fn plan_with_odds(l: &Loaded, site: &Site, opts: &PlanOptions, runs: u32) -> Result<Plan> {
    Ok(plan_and_odds(l, site, opts, runs)?.0)
}

/// [`plan_with_odds`], with the odds themselves (`None` when `runs` is 0), for the MOP's risk
/// summary.
pub fn plan_and_odds(
    l: &Loaded,
    site: &Site,
    opts: &PlanOptions,
    runs: u32,
) -> Result<(Plan, Option<Odds>)> {
    let mut plan = ferry_plan::plan(site, profile_of(l), l.hash.clone(), opts)
        .map_err(|e| plan_error(l, e))?;
    plan.rules_lower_bound_s = Some(
        ferry_plan::rules_lower_bound(site, profile_of(l), &strategies(l, site), opts)
            .map_err(|e| plan_error(l, e))?,
    );
    let odds = rehearse_plan(l, site, &plan, opts.strategy.clone(), runs)?;
    compare::state_odds(&mut plan, odds.as_ref(), &site.objectives);
    Ok((plan, odds))
}

/// The MOP's risk summary from the plan's odds: the window's P50 and P90, P(fit), and the
/// medians of what the rehearsals cost the service (failed calls, minutes without
/// redundancy, device-minutes unregistered).
pub fn risk(odds: &Odds) -> ferry_plan::render::mop::Risk {
    let c = &odds.costs;
    let figures = vec![
        ("calls failed".to_string(), c.calls_failed),
        (
            "HA pairs: minutes without redundancy".to_string(),
            c.minutes_without_redundancy,
        ),
        (
            "device-minutes unregistered".to_string(),
            c.device_minutes_unregistered,
        ),
    ];
    ferry_plan::render::mop::Risk {
        runs: odds.runs as usize,
        window_p50_s: odds.window_p50_s,
        window_p90_s: odds.window_p90_s,
        fit_probability: odds.fit_probability,
        figures,
    }
}

/// Every strategy, with and without staging where the site books it (or `opts.stage` asks
/// for it), planned, rehearsed `runs` times and compared.
pub fn compare_plans(l: &Loaded, opts: &PlanOptions, runs: u32) -> Result<Comparison> {
    let site = &l.site;
    let strategies = strategies(l, site);
    let unstaged = Site {
        stage: None,
        ..site.clone()
    };
    let staging = site.stage.is_some() || opts.stage;
    let mut plans: Vec<(Plan, &Site)> = Vec::new();
    for s in &strategies {
        let o = PlanOptions {
            strategy: Some(s.clone()),
            stage: false,
            ..opts.clone()
        };
        let plan = ferry_plan::plan(&unstaged, profile_of(l), l.hash.clone(), &o)
            .map_err(|e| plan_error(l, e))?;
        plans.push((plan, &unstaged));
        if staging {
            let o = PlanOptions { stage: true, ..o };
            let plan = ferry_plan::plan(site, profile_of(l), l.hash.clone(), &o)
                .map_err(|e| plan_error(l, e))?;
            // A site whose profiles stage nothing has one plan per strategy.
            if plan.stages() {
                plans.push((plan, site));
            }
        }
    }
    let bound = ferry_plan::rules_lower_bound(site, profile_of(l), &strategies, opts)
        .map_err(|e| plan_error(l, e))?;
    let mut candidates = Vec::new();
    for (plan, s) in &plans {
        let odds = rehearse_plan(l, s, plan, Some(plan.strategy.clone()), runs.max(1))?
            .ok_or_else(|| bad("a comparison rehearses every plan at least once"))?;
        candidates.push(Candidate { plan, odds });
    }
    Ok(compare::compare(site, &candidates, bound, runs.max(1)))
}
