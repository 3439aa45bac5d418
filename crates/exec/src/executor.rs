//! The executor: runs a plan's step graph through a driver, journaling every step before it
//! starts and after it ends, so that a run can be resumed after a crash without any step taking
//! effect twice.
//!
//! A step starts when every step in its `after` list is done or skipped. Among ready steps the
//! one scheduled first (phase, planned start, plan order) goes first. `next_batch` chooses the
//! steps that may run together under the plan's `max_concurrent` limit groups and the
//! `parallel` setting; this version of the executor carries them out one after another, which
//! keeps every limit trivially. Failure policy: `stop` (no new step starts after a failure).

use crate::driver::{Driver, DriverError, Outcome};
use crate::journal::{Event, Journal, JournalError, RunId, RunStatus, StepState};
use ferry_model::{Phase, Plan, PlannedStep};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Where the executor reads the time (seconds since the Unix epoch). Tests pass a fixed clock.
pub trait Clock {
    fn now(&self) -> i64;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// What the executor does when a step fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// No new step starts; the run is reported as failed and can be resumed once fixed.
    #[default]
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// At most this many steps at once (at least 1).
    pub parallel: usize,
    /// Stop (status `paused`) after each of these steps is done.
    pub pause_after: Vec<String>,
    /// Refuse to start a window-phase step whose planned duration would end after this time
    /// (seconds since the Unix epoch). `None`: no check.
    pub window_end: Option<i64>,
    pub policy: FailurePolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallel: 1,
            pause_after: Vec::new(),
            window_end: None,
            policy: FailurePolicy::Stop,
        }
    }
}

/// The end of the plan's booked window, when the plan has one.
pub fn window_end(plan: &Plan) -> Option<i64> {
    let w = plan.window.as_ref()?;
    let len = plan.window_s?;
    Some(w.start_epoch_s + len as i64)
}

/// What a call to `apply` or `resume` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub run: RunId,
    pub status: RunStatus,
    pub steps: usize,
    pub done: usize,
    pub skipped: usize,
    pub pending: usize,
    /// Steps that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Steps found started but not ended, and what the driver said about them.
    pub recovered: Vec<(String, Option<Outcome>)>,
    /// Steps carried out by this call, in order.
    pub ran: Vec<String>,
    /// Why the run stopped or paused.
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("step `{step}`: the driver failed and its outcome is unknown (resume will ask again): {source}")]
    Driver { step: String, source: DriverError },
    #[error("the plan cannot be executed: {0}")]
    BadPlan(String),
}

/// Checks that step IDs are unique, every `after` names a step, the graph has no cycle, and
/// every pause point names a step.
pub fn validate(plan: &Plan, opts: &Options) -> Result<(), ExecError> {
    let mut ids = HashSet::new();
    for s in &plan.steps {
        if !ids.insert(s.id.as_str()) {
            return Err(ExecError::BadPlan(format!("step `{}` appears twice", s.id)));
        }
    }
    for s in &plan.steps {
        for a in &s.after {
            if !ids.contains(a.as_str()) {
                return Err(ExecError::BadPlan(format!(
                    "step `{}` comes after `{a}`, which is not in the plan",
                    s.id
                )));
            }
        }
    }
    for p in &opts.pause_after {
        if !ids.contains(p.as_str()) {
            return Err(ExecError::BadPlan(format!(
                "pause point `{p}` is not a step of the plan"
            )));
        }
    }
    // Kahn: every step must be reachable in a topological order.
    let index: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut indeg: Vec<usize> = plan.steps.iter().map(|s| s.after.len()).collect();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); plan.steps.len()];
    for (i, s) in plan.steps.iter().enumerate() {
        for a in &s.after {
            out[index[a.as_str()]].push(i);
        }
    }
    let mut queue: Vec<usize> = (0..plan.steps.len()).filter(|&i| indeg[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop() {
        seen += 1;
        for &j in &out[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                queue.push(j);
            }
        }
    }
    if seen != plan.steps.len() {
        return Err(ExecError::BadPlan(
            "the steps' `after` lists form a cycle".into(),
        ));
    }
    Ok(())
}

fn order_key(plan: &Plan) -> Vec<usize> {
    let mut order: Vec<usize> = (0..plan.steps.len()).collect();
    order.sort_by_key(|&i| {
        let s = &plan.steps[i];
        (s.phase != Phase::Prepare, s.start_s, i)
    });
    order
}

/// The steps that may start now, in schedule order: pending steps whose `after` steps are all
/// done or skipped, added one by one while fewer than `parallel` steps run and no
/// `max_concurrent` limit group would exceed its width.
pub fn next_batch<'p>(
    plan: &'p Plan,
    states: &HashMap<String, StepState>,
    running: &[String],
    parallel: usize,
) -> Vec<&'p PlannedStep> {
    let mut busy: Vec<&str> = running.iter().map(String::as_str).collect();
    let mut batch = Vec::new();
    let state = |id: &str| states.get(id).copied().unwrap_or(StepState::Pending);
    for i in order_key(plan) {
        if busy.len() >= parallel.max(1) {
            break;
        }
        let s = &plan.steps[i];
        if state(&s.id) != StepState::Pending || busy.contains(&s.id.as_str()) {
            continue;
        }
        if !s.after.iter().all(|a| state(a).is_settled()) {
            continue;
        }
        let within_limits = plan.limits.iter().all(|g| match g.max_concurrent {
            Some(m) if g.steps.contains(&s.id) => {
                let n = busy
                    .iter()
                    .filter(|b| g.steps.iter().any(|x| x == *b))
                    .count();
                n < m as usize
            }
            _ => true,
        });
        if within_limits {
            busy.push(&s.id);
            batch.push(s);
        }
    }
    batch
}

/// Starts a new run of `plan` and carries it out.
pub fn apply(
    journal: &Journal,
    plan: &Plan,
    driver: &mut dyn Driver,
    clock: &dyn Clock,
    opts: &Options,
) -> Result<Report, ExecError> {
    validate(plan, opts)?;
    let run = journal.start_run(plan, clock.now())?;
    execute(journal, run, plan, driver, clock, opts)
}

/// Continues a run: steps started but not ended are inspected through the driver first;
/// steps done or skipped are never run again; failed steps are tried again.
pub fn resume(
    journal: &Journal,
    run: RunId,
    driver: &mut dyn Driver,
    clock: &dyn Clock,
    opts: &Options,
) -> Result<Report, ExecError> {
    let plan = journal.plan(run)?;
    validate(&plan, opts)?;
    execute(journal, run, &plan, driver, clock, opts)
}

fn execute(
    journal: &Journal,
    run: RunId,
    plan: &Plan,
    driver: &mut dyn Driver,
    clock: &dyn Clock,
    opts: &Options,
) -> Result<Report, ExecError> {
    journal.set_status(run, RunStatus::Running)?;
    let mut states: HashMap<String, StepState> = journal
        .steps(run)?
        .into_iter()
        .map(|s| (s.id, s.state))
        .collect();
    let mut report = Report {
        run,
        status: RunStatus::Running,
        steps: plan.steps.len(),
        done: 0,
        skipped: 0,
        pending: 0,
        failed: Vec::new(),
        recovered: Vec::new(),
        ran: Vec::new(),
        message: None,
    };

    // Earlier failures are tried again (their driver operations are idempotent).
    for st in states.values_mut() {
        if *st == StepState::Failed {
            *st = StepState::Pending;
        }
    }

    // Recovery: ask the driver about every step that started and did not end.
    for s in &plan.steps {
        if states.get(&s.id) != Some(&StepState::Running) {
            continue;
        }
        let found = driver
            .inspect(run, &s.id)
            .map_err(|source| ExecError::Driver {
                step: s.id.clone(),
                source,
            })?;
        let st = match &found {
            Some(o) => end(journal, run, &s.id, o, clock)?,
            None => StepState::Pending,
        };
        states.insert(s.id.clone(), st);
        report.recovered.push((s.id.clone(), found));
    }

    let status = loop {
        // A failure recorded by recovery stops the run like any other.
        if let Some(s) = plan
            .steps
            .iter()
            .find(|s| states.get(&s.id) == Some(&StepState::Failed))
        {
            report.message = Some(format!("step `{}` failed; no new step starts", s.id));
            break RunStatus::Failed;
        }
        let batch = next_batch(plan, &states, &[], opts.parallel);
        let Some(step) = batch.first().copied() else {
            if plan.steps.iter().all(|s| {
                states
                    .get(&s.id)
                    .copied()
                    .unwrap_or(StepState::Pending)
                    .is_settled()
            }) {
                break RunStatus::Complete;
            }
            report.message = Some("no step can start".into());
            break RunStatus::Stopped;
        };
        let now = clock.now();
        if let (Some(end_t), Phase::Window) = (opts.window_end, step.phase) {
            if now + step.duration_s as i64 > end_t {
                report.message = Some(format!(
                    "step `{}` ({} s) would end {} s after the booked window ends; not started",
                    step.id,
                    step.duration_s,
                    now + step.duration_s as i64 - end_t
                ));
                break RunStatus::Stopped;
            }
        }
        journal.record(run, &step.id, Event::Started, now, "")?;
        states.insert(step.id.clone(), StepState::Running);
        let outcome = match driver.run(run, step) {
            Ok(o) => o,
            Err(source) => {
                journal.set_status(run, RunStatus::Stopped)?;
                return Err(ExecError::Driver {
                    step: step.id.clone(),
                    source,
                });
            }
        };
        let st = end(journal, run, &step.id, &outcome, clock)?;
        states.insert(step.id.clone(), st);
        report.ran.push(step.id.clone());
        if st == StepState::Done && opts.pause_after.contains(&step.id) {
            report.message = Some(format!("paused after `{}`; `resume` continues", step.id));
            break RunStatus::Paused;
        }
    };

    journal.set_status(run, status)?;
    report.status = status;
    for s in journal.steps(run)? {
        match s.state {
            StepState::Done => report.done += 1,
            StepState::Skipped => report.skipped += 1,
            StepState::Failed => report.failed.push((s.id, s.detail)),
            StepState::Pending | StepState::Running => report.pending += 1,
        }
    }
    Ok(report)
}

fn end(
    journal: &Journal,
    run: RunId,
    step: &str,
    outcome: &Outcome,
    clock: &dyn Clock,
) -> Result<StepState, ExecError> {
    let now = clock.now();
    Ok(match outcome {
        Outcome::Done => {
            journal.record(run, step, Event::Done, now, "")?;
            StepState::Done
        }
        Outcome::Failed(r) => {
            journal.record(run, step, Event::Failed, now, r)?;
            StepState::Failed
        }
        Outcome::Skipped => {
            journal.record(run, step, Event::Skipped, now, "")?;
            StepState::Skipped
        }
    })
}
