//! Rehearsals: a plan carried out by the executor against the **simulated** twin of its site, in
//! virtual time and an in-memory journal, with faults when asked; then audited and measured.
//! With a failure policy that asks for it, the rollback is rehearsed too, planned again from
//! what the twin observes and how far the run got. A Monte Carlo rehearsal repeats this over many seeds.
//!
//! Deterministic: the same inputs and seed give the same rehearsal, byte for byte.

use crate::executor::{apply, ExecError, FailurePolicy, Options, Report};
use crate::journal::{Journal, JournalError, NewRun, RunInputs, RunKind};
use crate::rollback::{restrict, rollback_plan, run_progress_of, RollbackError};
use crate::twin_driver::TwinDriver;
use ferry_model::{Faults, Plan, Profile, Site};
use ferry_twin::{
    audit_runs, figures, impact, summarise, Impact, RunFigures, RunPlan, Summary, Violation, World,
};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error("the twin cannot be built: {0}")]
    Twin(#[from] ferry_twin::TwinError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
}

/// What to rehearse.
pub struct Rehearse<'a> {
    pub site: &'a Site,
    pub profiles: &'a BTreeMap<String, Profile>,
    /// The texts the plan was made from (to plan a rollback again).
    pub inputs: &'a RunInputs,
    pub plan: &'a Plan,
    pub faults: &'a Faults,
    pub policy: FailurePolicy,
}

/// One rehearsal.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Rehearsal {
    pub seed: u64,
    pub report: Report,
    /// The rollback's run, when the failure policy asked for one.
    pub rollback: Option<Report>,
    pub violations: Vec<Violation>,
    pub impact: Impact,
    /// The window the site booked, when it books one: (start, end) in virtual time.
    pub booked: Option<(i64, i64)>,
    #[serde(skip)]
    pub world: World,
}

/// The JSON of `ferry rehearse --format json`: one rehearsal ([`RehearsalReport`]) or, with
/// `--runs N` above 1, a Monte Carlo rehearsal ([`MonteCarloReport`]). Fields may be added,
/// never renamed. Written through [`RehearseReport::to_json`].
#[derive(Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RehearseReport<'a> {
    Once(RehearsalReport<'a>),
    Runs(MonteCarloReport<'a>),
}

/// One rehearsal of a plan, as `ferry rehearse --format json` writes it. The fields are in
/// name order, as the output has them.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RehearsalReport<'a> {
    pub input_hash: &'a str,
    /// Whether the work ended inside the booked window (`null`: the site books none).
    pub inside_window: Option<bool>,
    /// What the twin saw (`--trace`; `null` without it).
    pub log: Option<&'a [ferry_twin::LogEvent]>,
    pub rehearsal: &'a Rehearsal,
    pub schema_version: u32,
    pub site: &'a str,
    /// Every step's real start and end (`--trace`; `null` without it).
    pub trace: Option<&'a [ferry_twin::TraceEntry]>,
}

/// A Monte Carlo rehearsal (`--runs N`), as `ferry rehearse --format json` writes it: each
/// run's figures in seed order and their summary.
#[derive(Serialize, schemars::JsonSchema)]
pub struct MonteCarloReport<'a> {
    pub input_hash: &'a str,
    pub runs: &'a [RunFigures],
    pub schema_version: u32,
    pub site: &'a str,
    pub summary: &'a Summary,
}

impl RehearseReport<'_> {
    /// Pretty JSON with every object's keys in name order (the layout `ferry rehearse` has
    /// always written), and a final newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        sorted_json(self)
    }
}

/// `value` as pretty JSON with the keys of every object, nested ones too, in name order.
pub fn sorted_json(value: &impl Serialize) -> serde_json::Result<String> {
    Ok(serde_json::to_string_pretty(&serde_json::to_value(value)?)? + "\n")
}

impl Rehearsal {
    /// Whether the work ended inside the booked window.
    pub fn inside_window(&self) -> Option<bool> {
        let (_, end) = self.booked?;
        let last = self.world.trace.iter().map(|e| e.end).max()?;
        Some(last <= end)
    }

    pub fn figures(&self) -> RunFigures {
        let broken = self
            .violations
            .iter()
            .filter(|v| v.severity == ferry_model::Severity::Inhibitor)
            .count();
        RunFigures {
            seed: self.seed,
            completed: self.report.status == crate::journal::RunStatus::Complete,
            on_target: self.impact.clusters.iter().all(|c| c.on_target),
            window_s: self.impact.window_s,
            inside_window: self.inside_window(),
            violations: broken,
            warnings: self.violations.len() - broken,
            figures: figures(&self.impact),
        }
    }
}

/// Rehearses the plan once with `seed`.
pub fn rehearse(r: &Rehearse<'_>, seed: u64) -> Result<Rehearsal, RehearseError> {
    let world = World::build(r.site, r.profiles, r.plan, r.faults, seed)?;
    let journal = Journal::for_rehearsal()?;
    let mut driver = TwinDriver::new(world);
    let opts = Options {
        approve_all: true,
        policy: r.policy,
        window_end: None,
        // Work staged ahead of the window is done in the staging period; the window's work
        // waits for the window (the twin's clock jumps to it).
        window_opens: crate::executor::window_opens(r.plan),
        ..Options::default()
    };
    let new = NewRun {
        kind: RunKind::Apply,
        parent: None,
        driver: "twin".into(),
        inputs: None,
        ignore_window: false,
        supersede: false,
        by: None,
    };
    let report = apply(&journal, r.plan, &new, &mut driver, &opts, &mut ())?;
    let mut rollback = None;
    let mut rollback_plan_used = None;
    let mut observed_facts = None;
    if let Some(scope) = &report.rollback {
        use crate::driver::Driver;
        let observed = driver.observe().map_err(|source| ExecError::Driver {
            steps: Vec::new(),
            source,
        })?;
        let progress = run_progress_of(&journal, report.run, r.plan)?;
        let rb = restrict(rollback_plan(r.inputs, &observed, Some(&progress))?, scope)?;
        observed_facts = Some(observed);
        let new = NewRun {
            kind: RunKind::Rollback,
            parent: Some(report.run),
            driver: "twin".into(),
            inputs: None,
            ignore_window: false,
            supersede: false,
            by: None,
        };
        let opts = Options {
            approve_all: true,
            ..Options::default()
        };
        rollback = Some(apply(&journal, &rb, &new, &mut driver, &opts, &mut ())?);
        rollback_plan_used = Some(rb);
    }
    let mut world = driver.into_world();
    world.finish();
    let mut runs = vec![RunPlan {
        run: report.run,
        plan: r.plan,
        facts: None,
    }];
    if let (Some(rb), Some(rep)) = (&rollback_plan_used, &rollback) {
        runs.push(RunPlan {
            run: rep.run,
            plan: rb,
            facts: observed_facts.as_ref(),
        });
    }
    let violations = audit_runs(&world, &runs);
    let impact = impact(&world, rollback.is_some());
    let booked = r.site.window.as_ref().map(|w| {
        (
            w.start_epoch_s,
            w.start_epoch_s + (w.hours * 3600.0).round() as i64,
        )
    });
    Ok(Rehearsal {
        seed,
        report,
        rollback,
        violations,
        impact,
        booked,
        world,
    })
}

/// Rehearses the plan once per seed in `seeds`, on every core, and summarises.
pub fn monte_carlo(
    r: &Rehearse<'_>,
    seeds: std::ops::Range<u64>,
) -> Result<(Vec<RunFigures>, Summary), RehearseError> {
    monte_carlo_on(r, seeds, cores())
}

/// `monte_carlo` on `workers` threads: the result does not depend on their number.
pub fn monte_carlo_on(
    r: &Rehearse<'_>,
    seeds: std::ops::Range<u64>,
    workers: usize,
) -> Result<(Vec<RunFigures>, Summary), RehearseError> {
    let seeds: Vec<u64> = seeds.collect();
    let all = each_seed(r, &seeds, workers, |x| x.figures())?;
    let summary = summarise(&all);
    Ok((all, summary))
}

/// The cores this machine offers (1 when it cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Rehearses the plan once per seed on `workers` threads and keeps what `keep` takes of each
/// rehearsal, in the order of `seeds` whatever the number of threads; the error of the first
/// seed (in that order) that failed.
pub fn each_seed<T: Send>(
    r: &Rehearse<'_>,
    seeds: &[u64],
    workers: usize,
    keep: impl Fn(Rehearsal) -> T + Sync,
) -> Result<Vec<T>, RehearseError> {
    let workers = workers.clamp(1, seeds.len().max(1));
    let keep = &keep;
    // Worker `w` takes the seeds at positions w, w + workers, ...
    let results: Vec<Vec<(usize, Result<T, RehearseError>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    (w..seeds.len())
                        .step_by(workers)
                        .map(|i| (i, rehearse(r, seeds[i]).map(keep)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a rehearsal thread does not panic"))
            .collect()
    });
    let mut slots: Vec<Option<Result<T, RehearseError>>> = (0..seeds.len()).map(|_| None).collect();
    for (i, x) in results.into_iter().flatten() {
        slots[i] = Some(x);
    }
    slots
        .into_iter()
        .map(|x| x.expect("every seed rehearsed"))
        .collect()
}

fn dur(s: i64) -> String {
    ferry_plan::render::duration(s.max(0) as u64)
}

/// A count with thousands separated by commas: `712,505`.
pub(crate) fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// When, relative to the window's opening: `+2h 05m` (or before it: `-30m`).
fn at(plan: &Plan, booked: Option<(i64, i64)>, world_start: i64, t: i64) -> String {
    let open = booked.map_or(world_start + plan.prepare_s as i64, |b| b.0);
    let rel = t - open;
    let wall = (rel >= 0)
        .then(|| ferry_plan::render::wall_clock(plan, rel as u64))
        .flatten()
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    if rel < 0 {
        format!("-{}", dur(-rel))
    } else {
        format!("+{}{wall}", dur(rel))
    }
}

/// A rehearsal for the terminal.
pub fn rehearsal_text(r: &Rehearsal, plan: &Plan, trace: bool) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "Rehearsal of {} against its digital twin (a simulation: nothing real is touched), seed {}\n\n",
        plan.site, r.seed
    ));
    let rep = &r.report;
    t.push_str(&format!(
        "run: {} — {} of {} steps done, {} skipped\n",
        rep.status.as_str(),
        rep.done,
        rep.steps,
        rep.skipped
    ));
    for (id, why) in &rep.failed {
        t.push_str(&format!("  failed: {id}: {why}\n"));
    }
    if let Some(m) = &rep.message {
        t.push_str(&format!("  {m}\n"));
    }
    if let Some(rb) = &r.rollback {
        t.push_str(&format!(
            "rollback: {} — {} of {} steps done, {} skipped\n",
            rb.status.as_str(),
            rb.done,
            rb.steps,
            rb.skipped
        ));
        for (id, why) in &rb.failed {
            t.push_str(&format!("  failed: {id}: {why}\n"));
        }
    }
    let window = r.impact.window_s;
    t.push_str(&format!(
        "window: {} (planned {}, lower bound {})",
        dur(window),
        dur(plan.makespan_s as i64),
        dur(plan.lower_bound_s as i64)
    ));
    match (r.booked, r.inside_window()) {
        (Some((a, b)), Some(inside)) => {
            let last = r.world.trace.iter().map(|e| e.end).max().unwrap_or(a);
            if inside {
                t.push_str(&format!(
                    "; ends {} before the booked {} window closes\n",
                    dur(b - last),
                    dur(b - a)
                ));
            } else {
                t.push_str(&format!(
                    "; runs {} past the booked {} window\n",
                    dur(last - b),
                    dur(b - a)
                ));
            }
        }
        _ => t.push('\n'),
    }
    let broken: Vec<&Violation> = r
        .violations
        .iter()
        .filter(|v| v.severity == ferry_model::Severity::Inhibitor)
        .collect();
    t.push_str(&format!(
        "rules: {} broken, {} warning(s) (the auditor checks every order, sequence, limit and check rule on what ran)\n",
        broken.len(),
        r.violations.len() - broken.len()
    ));
    for v in &r.violations {
        t.push_str(&format!(
            "  {} {} at {}: {}\n",
            if v.severity == ferry_model::Severity::Inhibitor {
                "BROKEN "
            } else {
                "warning"
            },
            v.rule,
            at(plan, r.booked, r.world.start, v.time),
            v.message
        ));
    }
    t.push_str("\nservice impact:\n");
    for c in &r.impact.clusters {
        t.push_str(&format!(
            "  cluster {} (window {})\n",
            c.cluster,
            dur(c.window_s)
        ));
        let mut line = |k: &str, v: String| t.push_str(&format!("    {k:36} {v}\n"));
        for (name, m) in &c.device_minutes_unregistered {
            line(
                &format!("{name} unregistered"),
                format!("{} device-minutes", thousands(*m)),
            );
        }
        if c.mixed_version_minutes > 0.0 {
            line(
                "on mixed versions",
                format!("{} min", thousands(c.mixed_version_minutes)),
            );
        }
        if c.calls_attempted > 0 {
            let pct = 100.0 * c.calls_failed as f64 / c.calls_attempted as f64;
            line(
                "calls",
                format!(
                    "{} attempted, {} failed ({pct:.1}%)",
                    thousands(c.calls_attempted as f64),
                    thousands(c.calls_failed as f64)
                ),
            );
        }
        for p in &c.pairs {
            line(
                &p.pair,
                format!(
                    "{} min without redundancy, {} min without an active member",
                    thousands(p.minutes_without_redundancy),
                    thousands(p.minutes_without_active)
                ),
            );
        }
        if c.read_only_minutes > 0.0 {
            line(
                "configuration read-only",
                format!("{} min", thousands(c.read_only_minutes)),
            );
        }
        if c.intervals_not_collected > 0 {
            line(
                "intervals not collected",
                c.intervals_not_collected.to_string(),
            );
        }
        if c.config_changes_made > 0 {
            line(
                "configuration changes",
                format!(
                    "{} made, {} lost, {} refused",
                    c.config_changes_made, c.config_changes_lost, c.config_changes_refused
                ),
            );
        }
        if c.user_settings_lost > 0 {
            line("user settings lost", c.user_settings_lost.to_string());
        }
        if c.client_sessions_lost > 0 || c.client_minutes_disconnected > 0.0 {
            line(
                "client sessions",
                format!(
                    "{} lost, {} client-minutes disconnected",
                    c.client_sessions_lost,
                    thousands(c.client_minutes_disconnected)
                ),
            );
        }
        for (name, m) in &c.dependency_minutes_broken {
            line(&format!("{name} broken"), format!("{} min", thousands(*m)));
        }
        if c.wrong_switchovers > 0 {
            line("wrong switchovers", c.wrong_switchovers.to_string());
        }
        if let Some(st) = &c.staging {
            line(
                "staged ahead of the window",
                format!("{} step(s)", st.staged_steps),
            );
            line(
                "configuration frozen",
                format!("{} min", thousands(st.configuration_frozen_minutes)),
            );
            line(
                "configuration at risk",
                format!(
                    "{} min (a change made then is lost on the switch)",
                    thousands(st.configuration_at_risk_minutes)
                ),
            );
        }
        if c.on_target {
            line(
                "end state",
                "every node on the version it should end on".into(),
            );
        } else {
            line(
                "end state",
                format!("NOT on target: {}", c.off_target.join("; ")),
            );
        }
    }
    if !r.world.parameter_changes.is_empty() {
        t.push_str("\nservice parameters changed by the upgrade:\n");
        for (node, c) in &r.world.parameter_changes {
            t.push_str(&format!("  {node}: {c}\n"));
        }
    }
    if trace {
        t.push_str("\ntimeline (from the window's opening):\n");
        let mut entries: Vec<_> = r.world.trace.iter().collect();
        entries.sort_by_key(|e| (e.start, e.end, e.step.clone()));
        for e in entries {
            let o = match &e.outcome {
                ferry_model::Outcome::Done => "done".to_string(),
                ferry_model::Outcome::Skipped => "skipped".to_string(),
                ferry_model::Outcome::Failed(m) => format!("FAILED: {m}"),
            };
            t.push_str(&format!(
                "  {:>24} {:>8}  {}  {o}\n",
                at(plan, r.booked, r.world.start, e.start),
                dur(e.end - e.start),
                e.step
            ));
        }
        t.push_str("\nwhat the twin saw:\n");
        for l in &r.world.log {
            t.push_str(&format!(
                "  {:>24}  {:18} {}\n",
                at(plan, r.booked, r.world.start, l.time),
                l.code,
                l.text
            ));
        }
    }
    t
}

/// A Monte Carlo rehearsal for the terminal.
pub fn summary_text(s: &Summary, plan: &Plan, first_seed: u64) -> String {
    let mut t = format!(
        "Monte Carlo rehearsal of {} against its digital twin (a simulation): {} runs, seeds {}..{}\n\n",
        plan.site,
        s.runs,
        first_seed,
        first_seed + s.runs as u64 - 1
    );
    t.push_str(&format!(
        "completed {}/{}, every node on target {}/{}, runs with a broken rule {}\n",
        s.completed, s.runs, s.on_target, s.runs, s.with_violations
    ));
    let w = &s.window_s;
    t.push_str(&format!(
        "window: median {}, p90 {}, worst {} (seed {}), best {}; planned {}\n",
        dur(w.median as i64),
        dur(w.p90 as i64),
        dur(w.max as i64),
        s.worst_seed,
        dur(w.min as i64),
        dur(plan.makespan_s as i64)
    ));
    if let (Some(p), Some(hours)) = (s.inside_window, plan.window.as_ref().map(|w| w.hours)) {
        t.push_str(&format!(
            "probability of finishing inside the booked {hours} h window: {:.0}%\n",
            p * 100.0
        ));
    }
    t.push_str(&format!(
        "\n{:44} {:>12} {:>12} {:>12}\n",
        "figure", "median", "p90", "worst"
    ));
    for (name, d) in &s.figures {
        t.push_str(&format!(
            "{:44} {:>12} {:>12} {:>12}\n",
            name,
            thousands(d.median),
            thousands(d.p90),
            thousands(d.max)
        ));
    }
    t
}
