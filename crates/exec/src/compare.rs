//! Odds and costs of plans: a plan rehearsed many times against the twin gives its window's
//! P50 and P90, the probability of ending inside the booked window and the median of each
//! service cost; plans compared on those figures are marked when no other plan beats them
//! (Pareto), and one is recommended by the site's objectives (`[site.objectives]`).
//!
//! Deterministic: the seeds are 1 to N, as `ferry rehearse --runs N`, and the figures do not
//! depend on the number of threads that rehearse.

use crate::rehearse::{each_seed, thousands, Rehearsal, Rehearse, RehearseError};
use ferry_model::{Finding, Objectives, Plan, Severity};
use ferry_plan::render::{duration, percent};
use ferry_twin::{summarise, Distribution, RunFigures};
use serde::Serialize;
use std::collections::BTreeMap;

/// The rule of the finding a plan gets when its odds of ending inside the booked window are
/// below the site's `min_fit`.
pub const FIT_RULE: &str = "FERRY-FIT";

/// What a plan costs the service, each figure the median over the rehearsals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Costs {
    pub calls_failed: f64,
    /// Every kind of device together (phones, IM&P users, ...).
    pub device_minutes_unregistered: f64,
    pub mixed_version_minutes: f64,
    /// The configuration freeze, from its start to its release (the longest of any cluster).
    pub freeze_s: u64,
    /// How long a configuration change made on a node holding the configuration would be lost
    /// on its switch: from an install there to its switch (the longest of any cluster).
    pub config_at_risk_s: u64,
    /// Every HA pair together.
    pub minutes_without_redundancy: f64,
    /// Everything else the twin measures for the site's products, by the name `ferry rehearse`
    /// gives it (zero where a plan's rehearsals never saw it).
    pub figures: BTreeMap<String, f64>,
}

/// Figures of `ferry_twin::figures` that `Costs` names, counts in a sum, or that are no cost.
fn named_elsewhere(name: &str) -> bool {
    matches!(
        name,
        "calls failed"
            | "calls attempted"
            | "mixed-version minutes"
            | "HA pairs: minutes without redundancy"
            | "staging: configuration frozen minutes"
            | "staging: configuration at-risk minutes"
    ) || name.ends_with(": device-minutes unregistered")
}

/// One rehearsal's costs, before the medians.
fn run_costs(x: &Rehearsal, f: &RunFigures) -> BTreeMap<String, f64> {
    let get = |k: &str| f.figures.get(k).copied().unwrap_or(0.0);
    let mut c = BTreeMap::new();
    c.insert("calls_failed".to_string(), get("calls failed"));
    c.insert(
        "device_minutes_unregistered".to_string(),
        f.figures
            .iter()
            .filter(|(k, _)| k.ends_with(": device-minutes unregistered"))
            .fold(0.0, |sum, (_, v)| sum + v),
    );
    c.insert(
        "mixed_version_minutes".to_string(),
        get("mixed-version minutes"),
    );
    let longest = |of: fn(&ferry_twin::impact::Accumulated) -> f64| {
        x.world
            .clusters
            .iter()
            .map(|c| of(&c.acc))
            .fold(0.0, f64::max)
            .round()
    };
    c.insert("freeze_s".to_string(), longest(|a| a.frozen_s));
    c.insert(
        "config_at_risk_s".to_string(),
        longest(|a| a.config_at_risk_s),
    );
    c.insert(
        "minutes_without_redundancy".to_string(),
        get("HA pairs: minutes without redundancy"),
    );
    for (k, v) in &f.figures {
        if !named_elsewhere(k) {
            c.insert(format!("figure:{k}"), *v);
        }
    }
    c
}

/// The odds and costs of one plan, from its rehearsals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Odds {
    /// Rehearsals, seeds 1 to `runs`.
    pub runs: u32,
    /// Runs that completed with every node on target and no broken rule.
    pub clean_runs: usize,
    /// Runs in which the auditor found a broken rule.
    pub runs_with_broken_rule: usize,
    pub window_p50_s: u64,
    pub window_p90_s: u64,
    /// The share of the runs that ended inside the booked window (`None` without one).
    pub fit_probability: Option<f64>,
    pub costs: Costs,
}

impl Odds {
    /// No run broke a rule (a run may still have stopped on a failed step: the twin's steps
    /// and gates fail now and then, and the share of such runs is a figure of its own).
    pub fn keeps_the_rules(&self) -> bool {
        self.runs_with_broken_rule == 0
    }

    /// The share of the runs that did not complete with every node on target.
    pub fn unfinished_share(&self) -> f64 {
        if self.runs == 0 {
            return 0.0;
        }
        1.0 - self.clean_runs as f64 / f64::from(self.runs)
    }
}

/// Rehearses the plan `runs` times (seeds 1 to `runs`, as `ferry rehearse --runs`) on `workers`
/// threads: its window's P50 and P90, its odds of ending inside the booked window and the
/// median of each cost. `None` when `runs` is 0.
pub fn odds(r: &Rehearse<'_>, runs: u32, workers: usize) -> Result<Option<Odds>, RehearseError> {
    if runs == 0 {
        return Ok(None);
    }
    let seeds: Vec<u64> = (1..=u64::from(runs)).collect();
    let per_run = each_seed(r, &seeds, workers, |x| {
        let f = x.figures();
        let c = run_costs(&x, &f);
        (f, c)
    })?;
    let figures: Vec<RunFigures> = per_run.iter().map(|(f, _)| f.clone()).collect();
    let summary = summarise(&figures);
    let mut keys: Vec<&String> = per_run.iter().flat_map(|(_, c)| c.keys()).collect();
    keys.sort();
    keys.dedup();
    let median = |k: &str| {
        let v: Vec<f64> = per_run
            .iter()
            .map(|(_, c)| c.get(k).copied().unwrap_or(0.0))
            .collect();
        Distribution::of(&v).median
    };
    let costs = Costs {
        calls_failed: median("calls_failed"),
        device_minutes_unregistered: median("device_minutes_unregistered"),
        mixed_version_minutes: median("mixed_version_minutes"),
        freeze_s: median("freeze_s").max(0.0) as u64,
        config_at_risk_s: median("config_at_risk_s").max(0.0) as u64,
        minutes_without_redundancy: median("minutes_without_redundancy"),
        figures: keys
            .iter()
            .filter_map(|k| Some((k.strip_prefix("figure:")?.to_string(), median(k))))
            .collect(),
    };
    Ok(Some(Odds {
        runs,
        clean_runs: figures
            .iter()
            .filter(|f| f.completed && f.on_target && f.violations == 0)
            .count(),
        runs_with_broken_rule: figures.iter().filter(|f| f.violations > 0).count(),
        window_p50_s: summary.window_s.median.max(0.0) as u64,
        window_p90_s: summary.window_s.p90.max(0.0) as u64,
        fit_probability: summary.inside_window,
        costs,
    }))
}

/// Writes the odds into the plan (`window_p50_s`, `window_p90_s`, `fit_probability`), with
/// the finding `FERRY-FIT` when they are below the site's `min_fit`.
pub fn state_odds(plan: &mut Plan, odds: Option<&Odds>, objectives: &Objectives) {
    let Some(o) = odds else {
        plan.rehearsed_runs = 0;
        return;
    };
    plan.rehearsed_runs = o.runs;
    plan.window_p50_s = Some(o.window_p50_s);
    plan.window_p90_s = Some(o.window_p90_s);
    plan.fit_probability = o.fit_probability;
    if let Some(f) = fit_finding(plan, objectives) {
        plan.findings.push(f);
    }
}

/// A warning when the rehearsals end inside the booked window less often than the site asks
/// (`[site.objectives] min_fit`, 0.9 when it does not say).
pub fn fit_finding(plan: &Plan, objectives: &Objectives) -> Option<Finding> {
    let p = plan.fit_probability?;
    let min = objectives.min_fit();
    if p >= min {
        return None;
    }
    let hours = plan.window_s?;
    let whose = if objectives.min_fit.is_some() {
        "the site's `[site.objectives] min_fit`"
    } else {
        "ferry's default; a site sets its own with `[site.objectives] min_fit`"
    };
    Some(Finding {
        key: "fit-probability".into(),
        rule: FIT_RULE.into(),
        severity: Severity::Warning,
        cluster: None,
        node: None,
        message: format!(
            "the work ends inside the booked {} window in {} of {} rehearsals against the twin (window P50 {}, P90 {}; estimate {}), below {} ({whose})",
            duration(hours),
            percent(p),
            plan.rehearsed_runs,
            duration(plan.window_p50_s.unwrap_or(0)),
            duration(plan.window_p90_s.unwrap_or(0)),
            duration(plan.makespan_s),
            percent(min),
        ),
        remedy: format!(
            "Book a window of at least the P90 ({}), run work ahead of it (`[site] stage`), or choose another plan: `ferry plan SITE --compare`.",
            duration(plan.window_p90_s.unwrap_or(0))
        ),
    })
}

/// The figures plans are compared on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub window_p50_s: u64,
    pub window_p90_s: u64,
    pub fit_probability: Option<f64>,
    pub costs: Costs,
    /// The share of the rehearsals that did not complete on target (a step or gate failed).
    pub unfinished: f64,
    /// No rehearsal broke a rule: only such plans are marked and recommended.
    pub clean: bool,
}

impl From<&Odds> for Figures {
    fn from(o: &Odds) -> Self {
        Figures {
            window_p50_s: o.window_p50_s,
            window_p90_s: o.window_p90_s,
            fit_probability: o.fit_probability,
            costs: o.costs.clone(),
            unfinished: o.unfinished_share(),
            clean: o.keeps_the_rules(),
        }
    }
}

/// Each plan's figures, every one lower-is-better, in one order for all the plans: P50, P90,
/// the probability of not fitting, the share of runs that did not complete, the named costs,
/// then every other figure any plan has.
fn vectors(plans: &[Figures]) -> Vec<Vec<f64>> {
    let mut names: Vec<&String> = plans.iter().flat_map(|p| p.costs.figures.keys()).collect();
    names.sort();
    names.dedup();
    plans
        .iter()
        .map(|p| {
            let c = &p.costs;
            let mut v = vec![
                p.window_p50_s as f64,
                p.window_p90_s as f64,
                1.0 - p.fit_probability.unwrap_or(0.0),
                p.unfinished,
                c.calls_failed,
                c.device_minutes_unregistered,
                c.mixed_version_minutes,
                c.freeze_s as f64,
                c.config_at_risk_s as f64,
                c.minutes_without_redundancy,
            ];
            v.extend(
                names
                    .iter()
                    .map(|n| c.figures.get(*n).copied().unwrap_or(0.0)),
            );
            v
        })
        .collect()
}

/// Which plans no other plan beats: none is at least as good on every figure and better on
/// one. Plans with a rehearsal that broke a rule are never marked, and do not count against
/// the others.
pub fn pareto(plans: &[Figures]) -> Vec<bool> {
    let v = vectors(plans);
    let beats = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
    };
    (0..plans.len())
        .map(|i| {
            plans[i].clean
                && !(0..plans.len()).any(|j| j != i && plans[j].clean && beats(&v[j], &v[i]))
        })
        .collect()
}

/// An objective's cap: its name, its value (if the site states it), the plan's figure, and how
/// to show them.
type Cap = (&'static str, Option<f64>, f64, fn(f64) -> String);

/// The objectives a plan's figures miss, each as `name (figure against objective)`.
pub fn unmet(objectives: &Objectives, f: &Figures) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = f.fit_probability {
        let min = objectives.min_fit();
        if p < min {
            out.push(format!("min_fit ({} < {})", percent(p), percent(min)));
        }
    }
    let c = &f.costs;
    let caps: [Cap; 6] = [
        (
            "max_failed_calls",
            objectives.max_failed_calls,
            c.calls_failed,
            |x| format!("{x:.0}"),
        ),
        (
            "max_device_minutes_unregistered",
            objectives.max_device_minutes_unregistered,
            c.device_minutes_unregistered,
            |x| format!("{x:.0}"),
        ),
        (
            "max_mixed_version_minutes",
            objectives.max_mixed_version_minutes,
            c.mixed_version_minutes,
            |x| format!("{x:.0}"),
        ),
        (
            "max_freeze_hours",
            objectives.max_freeze_hours.map(|h| h * 3600.0),
            c.freeze_s as f64,
            |x| duration(x as u64),
        ),
        (
            "max_config_at_risk_hours",
            objectives.max_config_at_risk_hours.map(|h| h * 3600.0),
            c.config_at_risk_s as f64,
            |x| duration(x as u64),
        ),
        (
            "max_minutes_without_redundancy",
            objectives.max_minutes_without_redundancy,
            c.minutes_without_redundancy,
            |x| format!("{x:.0}"),
        ),
    ];
    for (name, cap, value, show) in caps {
        if let Some(cap) = cap {
            if value > cap {
                out.push(format!("{name} ({} > {})", show(value), show(cap)));
            }
        }
    }
    out
}

/// The plan to recommend by the site's objectives, among the plans no other beats (Pareto):
/// of those that meet every objective, the shortest window P90 (then P50, then the likelier to
/// fit, then the first listed); when none meets them all, the one that misses the fewest,
/// then the likeliest to fit, then the shortest P90. `None` when every plan has a rehearsal
/// that broke a rule.
pub fn recommend(objectives: &Objectives, plans: &[Figures]) -> Option<usize> {
    let front = pareto(plans);
    let fit = |f: &Figures| f.fit_probability.unwrap_or(1.0);
    (0..plans.len()).filter(|&i| front[i]).min_by(|&a, &b| {
        let (x, y) = (&plans[a], &plans[b]);
        let (mx, my) = (unmet(objectives, x).len(), unmet(objectives, y).len());
        let by_window = x
            .window_p90_s
            .cmp(&y.window_p90_s)
            .then(x.window_p50_s.cmp(&y.window_p50_s))
            .then(fit(y).total_cmp(&fit(x)));
        if mx == 0 && my == 0 {
            by_window.then(a.cmp(&b))
        } else {
            mx.cmp(&my)
                .then(fit(y).total_cmp(&fit(x)))
                .then(by_window)
                .then(a.cmp(&b))
        }
    })
}

/// One plan of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ComparedPlan {
    pub strategy: String,
    /// Some of its work runs ahead of the window (staging).
    pub staged: bool,
    /// The planned window (the point estimate) and this plan's own lower bound.
    pub window_s: u64,
    pub lower_bound_s: u64,
    pub window_p50_s: u64,
    pub window_p90_s: u64,
    pub fit_probability: Option<f64>,
    pub impact: Costs,
    pub runs: u32,
    /// Runs that completed with every node on target and no broken rule.
    pub clean_runs: usize,
    /// Runs in which the auditor found a broken rule.
    pub runs_with_broken_rule: usize,
    /// No other plan beats it on every figure.
    pub pareto: bool,
    pub recommended: bool,
    /// The objectives it misses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<String>,
}

/// Plans of one site compared.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    pub schema_version: u32,
    pub site: String,
    pub plans: Vec<ComparedPlan>,
    /// The shortest window any plan keeping the documents' order, gate and limit rules could
    /// reach, staging allowed.
    pub rules_lower_bound_s: u64,
    /// The booked window's length, when the site books one.
    pub booked_window_s: Option<u64>,
    /// The objectives the recommendation used: the site's, with `min_fit` defaulted.
    pub objectives: Objectives,
    /// Whether the site stated them (`[site.objectives]`).
    pub objectives_stated: bool,
    pub runs: u32,
}

/// A plan to compare: what it is and what its rehearsals gave.
pub struct Candidate<'a> {
    pub plan: &'a Plan,
    pub odds: Odds,
}

/// Compares the plans: Pareto marks and the recommendation by the objectives.
pub fn compare(
    site: &ferry_model::Site,
    candidates: &[Candidate<'_>],
    rules_lower_bound_s: u64,
    runs: u32,
) -> Comparison {
    let figures: Vec<Figures> = candidates.iter().map(|c| Figures::from(&c.odds)).collect();
    let front = pareto(&figures);
    let objectives = &site.objectives;
    let chosen = recommend(objectives, &figures);
    let plans = candidates
        .iter()
        .zip(&figures)
        .enumerate()
        .map(|(i, (c, f))| ComparedPlan {
            strategy: c.plan.strategy.clone(),
            staged: c.plan.stages(),
            window_s: c.plan.makespan_s,
            lower_bound_s: c.plan.lower_bound_s,
            window_p50_s: f.window_p50_s,
            window_p90_s: f.window_p90_s,
            fit_probability: f.fit_probability,
            impact: f.costs.clone(),
            runs: c.odds.runs,
            clean_runs: c.odds.clean_runs,
            runs_with_broken_rule: c.odds.runs_with_broken_rule,
            pareto: front[i],
            recommended: chosen == Some(i),
            unmet: unmet(objectives, f),
        })
        .collect();
    Comparison {
        schema_version: ferry_model::plan::SCHEMA_VERSION,
        site: site.name.clone(),
        plans,
        rules_lower_bound_s,
        booked_window_s: site
            .window
            .as_ref()
            .map(|w| (w.hours * 3600.0).round() as u64),
        objectives: Objectives {
            min_fit: Some(objectives.min_fit()),
            ..objectives.clone()
        },
        objectives_stated: !objectives.is_unset(),
        runs,
    }
}

/// A plan's name in a comparison: its strategy, and `staged` when it runs work ahead.
pub fn plan_name(p: &ComparedPlan) -> String {
    if p.staged {
        format!("{}, staged", p.strategy)
    } else {
        p.strategy.clone()
    }
}

/// The objectives as a site would write them.
fn objectives_text(c: &Comparison) -> String {
    let o = &c.objectives;
    let mut parts = vec![format!("min_fit = {}", o.min_fit())];
    let caps = [
        ("max_failed_calls", o.max_failed_calls),
        (
            "max_device_minutes_unregistered",
            o.max_device_minutes_unregistered,
        ),
        ("max_mixed_version_minutes", o.max_mixed_version_minutes),
        ("max_freeze_hours", o.max_freeze_hours),
        ("max_config_at_risk_hours", o.max_config_at_risk_hours),
        (
            "max_minutes_without_redundancy",
            o.max_minutes_without_redundancy,
        ),
    ];
    for (k, v) in caps {
        if let Some(v) = v {
            parts.push(format!("{k} = {v}"));
        }
    }
    parts.join(", ")
}

/// A comparison for the terminal: one column per plan, one row per figure.
pub fn compare_text(c: &Comparison) -> String {
    let mut t = format!(
        "Plans for {} compared, each rehearsed {} times against its digital twin (a simulation; seeds 1 to {}); figures are medians of the rehearsals\n\n",
        c.site, c.runs, c.runs
    );
    if c.plans.is_empty() {
        t.push_str("no plan to compare\n");
        return t;
    }
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&ComparedPlan) -> String| {
        rows.push((name.to_string(), c.plans.iter().map(f).collect()));
    };
    row("planned window (estimate)", &|p| duration(p.window_s));
    row("its lower bound", &|p| duration(p.lower_bound_s));
    row("window P50", &|p| duration(p.window_p50_s));
    row("window P90", &|p| duration(p.window_p90_s));
    let fit_label = match c.booked_window_s {
        Some(w) => format!("P(fit in the booked {})", duration(w)),
        None => "P(fit): no window booked".to_string(),
    };
    row(&fit_label, &|p| {
        p.fit_probability.map_or_else(|| "-".into(), percent)
    });
    row("calls failed", &|p| thousands(p.impact.calls_failed));
    row("device-minutes unregistered", &|p| {
        thousands(p.impact.device_minutes_unregistered)
    });
    row("mixed-version minutes", &|p| {
        thousands(p.impact.mixed_version_minutes)
    });
    row("configuration freeze", &|p| duration(p.impact.freeze_s));
    row("configuration at risk", &|p| {
        duration(p.impact.config_at_risk_s)
    });
    row("minutes without redundancy", &|p| {
        thousands(p.impact.minutes_without_redundancy)
    });
    let mut others: Vec<&String> = c
        .plans
        .iter()
        .flat_map(|p| p.impact.figures.iter())
        .filter(|(_, v)| **v != 0.0)
        .map(|(k, _)| k)
        .collect();
    others.sort();
    others.dedup();
    for name in others {
        row(name, &|p| {
            thousands(p.impact.figures.get(name).copied().unwrap_or(0.0))
        });
    }
    row("runs complete, on target, no broken rule", &|p| {
        format!("{}/{}", p.clean_runs, p.runs)
    });
    row("runs with a broken rule", &|p| {
        p.runs_with_broken_rule.to_string()
    });
    row("Pareto (no plan beats it on every figure)", &|p| {
        if p.pareto { "yes" } else { "no" }.to_string()
    });
    row("recommended", &|p| {
        if p.recommended { "<<" } else { "" }.to_string()
    });
    let names: Vec<String> = c.plans.iter().map(plan_name).collect();
    let label = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    let widths: Vec<usize> = (0..c.plans.len())
        .map(|i| {
            rows.iter()
                .map(|(_, v)| v[i].chars().count())
                .chain([names[i].chars().count()])
                .max()
                .unwrap_or(0)
                .min(40)
        })
        .collect();
    let mut line = format!("{:label$}", "");
    for (n, w) in names.iter().zip(&widths) {
        line.push_str(&format!("  {n:>w$}"));
    }
    t.push_str(line.trim_end());
    t.push('\n');
    for (name, values) in &rows {
        let mut line = format!("{name:label$}");
        for (v, w) in values.iter().zip(&widths) {
            line.push_str(&format!("  {v:>w$}"));
        }
        t.push_str(line.trim_end());
        t.push('\n');
    }
    t.push('\n');
    let best = c.plans.iter().map(|p| p.lower_bound_s).min().unwrap_or(0);
    t.push_str(&format!(
        "rules lower bound: {}: no plan keeping the documents' order, gate and limit rules has a shorter window, whatever its strategy, staging allowed{}\n",
        duration(c.rules_lower_bound_s),
        if best > c.rules_lower_bound_s {
            format!(
                " (the best lower bound of these plans is {})",
                duration(best)
            )
        } else {
            String::new()
        }
    ));
    t.push_str(&format!(
        "objectives: {}{}; then the shortest window P90\n",
        objectives_text(c),
        if c.objectives_stated {
            " ([site.objectives])"
        } else {
            " (ferry's default: the site states no [site.objectives])"
        }
    ));
    match c.plans.iter().find(|p| p.recommended) {
        Some(p) if p.unmet.is_empty() => t.push_str(&format!(
            "recommended: {}: it meets every objective, with the shortest window P90 ({}) of the plans that do and that no other plan beats\n",
            plan_name(p),
            duration(p.window_p90_s)
        )),
        Some(p) => t.push_str(&format!(
            "recommended: {}: no plan meets every objective; it misses the fewest ({}) and, of those that miss as few, is the likeliest to fit\n",
            plan_name(p),
            p.unmet.join(", ")
        )),
        None => t.push_str(
            "recommended: none: every plan broke a rule in a rehearsal (see `ferry check` and `ferry rehearse`)\n",
        ),
    }
    t
}
