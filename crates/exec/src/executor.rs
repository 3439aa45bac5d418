//! The executor: runs a plan's step graph through a driver, several steps at once where the
//! plan's rules allow, journaling every step before it starts and after it ends, so that a run
//! can be resumed after a crash without any step taking effect twice.
//!
//! It is event-driven: a step becomes *ready* when its last `after` step is done or skipped
//! (a counter per step) — and, for a step of the staging phase or the window, once every step
//! of the prepare phase is done or skipped: the window opens after the work before it — and
//! ready steps start in schedule order — prepare phase first, then staging, then planned
//! start, then plan order — while `Options::parallel` and every limit group allow. A plan that
//! books a window waits for it (`Options::window_opens`): its window steps are held
//! until the driver's clock reaches the window's start, or until the operator opens it early
//! (an approval of the pseudo-step `open-window`); meanwhile the run says what it waits for,
//! journaled, so that `status` shows it and `resume` waits again after a crash. A
//! ready step that a limit holds back is parked on that limit and looked at again only when a
//! member of the limit ends, so the work per step does not grow with the size of the plan.
//!
//! Limits: a `max_concurrent` group lets that many of its steps run at once; a capacity group
//! keeps, per partition, `base` plus the weights of its running members at most `capacity` (a
//! member whose load alone exceeds the capacity runs only while no other member of its
//! partition runs, or it would never start).
//!
//! Time is read only through `Driver::now`; the executor blocks only in `Driver::wait`, with
//! the nearest deadline of a running gate, and fails a gate that passes its `timeout_s`.

use crate::driver::{Driver, DriverError, Inspection, Outcome};
use crate::journal::{
    Event, Journal, JournalError, NewRun, RunId, RunStatus, StepEvent, StepState,
};
use crate::window::{self, WindowRefusal};
use ferry_model::{Phase, Plan, PlannedStep, StepKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What the executor does when a step fails (after its retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// No new step starts; running steps are waited for; the run is reported as failed and can
    /// be resumed once the cause is fixed.
    #[default]
    Stop,
    /// As `stop`, and the report asks for the rollback of the failed step's node.
    RollbackNode,
    /// As `stop`, and the report asks for the rollback of everything the plan touches.
    RollbackAll,
}

impl FailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Stop => "stop",
            FailurePolicy::RollbackNode => "rollback-node",
            FailurePolicy::RollbackAll => "rollback-all",
        }
    }
}

/// Which rollback steps a failure asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(tag = "scope", rename_all = "kebab-case")]
pub enum RollbackScope {
    /// The rollback steps of one node, and the cluster-wide rollback steps of its cluster.
    Node { cluster: String, node: String },
    /// Every rollback step of one cluster (the failed step was cluster-wide).
    Cluster { cluster: String },
    /// Every rollback step of the plan.
    All,
}

impl std::fmt::Display for RollbackScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollbackScope::Node { cluster, node } => write!(f, "node {cluster}/{node}"),
            RollbackScope::Cluster { cluster } => write!(f, "cluster {cluster}"),
            RollbackScope::All => f.write_str("every cluster"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// At most this many steps at once; `None`: as many as the plan's rules allow.
    pub parallel: Option<usize>,
    /// Stop (status `paused`) once each of these steps is done.
    pub pause_after: Vec<String>,
    /// Refuse to start a window-phase step whose planned duration would end after this time
    /// (seconds since the Unix epoch, driver clock). `None`: no check.
    pub window_end: Option<i64>,
    pub policy: FailurePolicy,
    /// Approve every pause step (rehearsals, demos); the approvals are journaled.
    pub approve_all: bool,
    /// The operator goes on whatever the booked window says (`--ignore-window`): journaled
    /// with the run when `resume` takes it (a new run records it through `NewRun`). The
    /// check itself is off when `window_end` is `None`.
    pub ignore_window: bool,
    /// Window steps do not start before this time (driver clock), unless the operator opens
    /// the window early with an approval of `OPEN_WINDOW`: a plan that books a window waits
    /// for it after the work ahead of it (`window_opens`). `None`: they start as soon as the
    /// steps they follow are done.
    pub window_opens: Option<i64>,
    /// While it waits for the window, the executor looks for that approval this often (driver
    /// seconds: a real clock, where an approval comes from another process). `None`: it waits
    /// for the window's opening in one go (a simulated clock jumps to it).
    pub window_poll_s: Option<u64>,
    /// The plan's point of no return (driver clock): a window step that starts at or after it
    /// comes with a warning, once per run.
    pub point_of_no_return: Option<i64>,
    /// At the point of no return, pause (status `paused`) until the operator approves
    /// `POINT_OF_NO_RETURN`.
    pub stop_at_point_of_no_return: bool,
}

/// The pseudo-step an operator approves to go on past the point of no return
/// (`ferry approve point-of-no-return`).
pub const POINT_OF_NO_RETURN: &str = "point-of-no-return";

/// The plan's point of no return, in seconds since the Unix epoch, when it books a window.
pub fn point_of_no_return(plan: &Plan) -> Option<i64> {
    let w = plan.window.as_ref()?;
    Some(w.start_epoch_s + i64::try_from(plan.point_of_no_return_s?).ok()?)
}

/// The pseudo-step an operator approves to open the window early (`ferry approve open-window`).
pub const OPEN_WINDOW: &str = "open-window";

/// The end of the plan's booked window, when the plan has one.
pub fn window_end(plan: &Plan) -> Option<i64> {
    let w = plan.window.as_ref()?;
    let len = plan.window_s?;
    Some(w.start_epoch_s + len as i64)
}

/// When the window steps of a plan may start: the booked window's opening, for every plan
/// that books one. The work before it (prepare, staging) runs first; no window step starts
/// before the window opens, even when that work ends early (a rehearsal whose preparation
/// ran faster than planned, an operator who applies ahead of the window). `None`: no window
/// is booked, and window steps start as soon as the steps they follow are done.
pub fn window_opens(plan: &Plan) -> Option<i64> {
    plan.window.as_ref().map(|w| w.start_epoch_s)
}

/// What a call to `apply` or `resume` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Report {
    pub run: RunId,
    pub status: RunStatus,
    pub steps: usize,
    pub done: usize,
    pub skipped: usize,
    pub pending: usize,
    /// Steps that failed (after their retries), with the reason.
    pub failed: Vec<(String, String)>,
    /// Steps found started but not ended, and what the driver said about them.
    pub recovered: Vec<(String, Inspection)>,
    /// Steps started by this call, in the order started (a retried step once per attempt).
    pub ran: Vec<String>,
    /// Why the run stopped or paused.
    pub message: Option<String>,
    /// The rollback the failure policy asks for.
    pub rollback: Option<RollbackScope>,
    /// The pause step that waits for `ferry approve`.
    pub awaiting_approval: Option<String>,
    /// Failed steps started again because they had retries left (once per retry).
    pub retried: Vec<String>,
    /// Gates failed because they passed their timeout.
    pub timed_out: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the driver failed{}; what became of the steps under way is unknown (resume asks the driver): {source}", under_way(.steps))]
    Driver {
        /// The steps started and not ended when the driver failed.
        steps: Vec<String>,
        source: DriverError,
    },
    #[error("the plan cannot be executed: {0}")]
    BadPlan(String),
}

fn under_way(steps: &[String]) -> String {
    if steps.is_empty() {
        String::new()
    } else {
        format!(" with {} under way", steps.join(", "))
    }
}

/// One step of the run, as the executor sees it change.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub step: &'a PlannedStep,
    /// The step's position in the plan, from 1.
    pub number: usize,
    pub total: usize,
    /// Steps done or skipped so far.
    pub settled: usize,
    /// Driver clock.
    pub at: i64,
    pub change: Change<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// The step was started (attempt 1, or more for a retry).
    Started { attempt: u32 },
    /// The step ended after `took_s` seconds.
    Ended { outcome: &'a Outcome, took_s: i64 },
}

/// Told of every step that starts or ends (progress bars, log lines).
pub trait Observer {
    fn progress(&mut self, p: &Progress<'_>);

    /// The run waits with nothing under way (for the booked window to open): why, and until
    /// when.
    fn waiting(&mut self, _message: &str) {}

    /// Something the operator must know and that does not stop the run (the point of no
    /// return reached).
    fn warn(&mut self, _message: &str) {}
}

/// An observer that ignores everything.
impl Observer for () {
    fn progress(&mut self, _: &Progress<'_>) {}
}

/// Checks that step IDs are unique, every `after` and every limit member names a step, the
/// graph has no cycle, and every pause point names a step.
pub fn validate(plan: &Plan, opts: &Options) -> Result<(), ExecError> {
    plan_numbers(plan).map_err(ExecError::BadPlan)?;
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(plan.steps.len());
    for (i, s) in plan.steps.iter().enumerate() {
        if index.insert(s.id.as_str(), i).is_some() {
            return Err(ExecError::BadPlan(format!("step `{}` appears twice", s.id)));
        }
    }
    let mut indeg: Vec<usize> = vec![0; plan.steps.len()];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); plan.steps.len()];
    for (i, s) in plan.steps.iter().enumerate() {
        for a in &s.after {
            let Some(&p) = index.get(a.as_str()) else {
                return Err(ExecError::BadPlan(format!(
                    "step `{}` comes after `{a}`, which is not in the plan",
                    s.id
                )));
            };
            out[p].push(i);
            indeg[i] += 1;
        }
    }
    for g in &plan.limits {
        let named = g.steps.iter().chain(g.loads.iter().map(|l| &l.step));
        if let Some(x) = named.clone().find(|x| !index.contains_key(x.as_str())) {
            return Err(ExecError::BadPlan(format!(
                "limit `{}` names step `{x}`, which is not in the plan",
                g.rule
            )));
        }
    }
    for p in &opts.pause_after {
        if !index.contains_key(p.as_str()) {
            return Err(ExecError::BadPlan(format!(
                "pause point `{p}` is not a step of the plan"
            )));
        }
    }
    // Kahn: every step must be reachable in a topological order.
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
        let stuck: Vec<&str> = (0..plan.steps.len())
            .filter(|&i| indeg[i] > 0)
            .take(8)
            .map(|i| plan.steps[i].id.as_str())
            .collect();
        return Err(ExecError::BadPlan(format!(
            "the steps' `after` lists form a cycle through {}",
            stuck.join(", ")
        )));
    }
    Ok(())
}

/// Every number of a plan within the range the planner makes (a plan file may have been
/// edited by hand): steps no longer than `MAX_STEP_S`, moments and totals within
/// `MAX_PLAN_S`, a window ferry can read, limits that admit a step. The message names the
/// step or group and the key.
fn plan_numbers(plan: &Plan) -> Result<(), String> {
    use ferry_model::plan::{MAX_PLAN_S, MAX_STEP_S};
    for s in plan.steps.iter().chain(&plan.rollback) {
        for (key, value, max) in [
            ("duration_s", s.duration_s, MAX_STEP_S),
            ("timeout_s", s.timeout_s.unwrap_or(0), MAX_STEP_S),
            ("start_s", s.start_s, MAX_PLAN_S),
            ("retries", u64::from(s.retries), 100),
        ] {
            if value > max {
                return Err(format!(
                    "step `{}`: `{key}` is {value}, above the most a plan holds ({max})",
                    s.id
                ));
            }
        }
    }
    for (key, value) in [
        ("makespan_s", plan.makespan_s),
        ("prepare_s", plan.prepare_s),
        ("lower_bound_s", plan.lower_bound_s),
        ("sequential_s", plan.sequential_s),
        ("rollback_makespan_s", plan.rollback_makespan_s),
        ("window_s", plan.window_s.unwrap_or(0)),
    ] {
        if value > MAX_PLAN_S {
            return Err(format!(
                "`{key}` is {value}, above the most a plan holds ({MAX_PLAN_S})"
            ));
        }
    }
    for m in &plan.measures {
        if m.start_s > MAX_PLAN_S || m.duration_s > MAX_PLAN_S {
            return Err(format!(
                "measure `{}/{}`: its start or length is above the most a plan holds ({MAX_PLAN_S})",
                m.cluster, m.name
            ));
        }
    }
    if let Some(w) = &plan.window {
        // Moments ferry shows: years -9999 to 9999; offsets within a day.
        let moment = -377_705_116_800..=253_402_300_799;
        if !moment.contains(&w.start_epoch_s) {
            return Err(format!(
                "`window.start_epoch_s` is {}, not a moment ferry can show",
                w.start_epoch_s
            ));
        }
        if w.offset_s.abs() >= 86_400 {
            return Err(format!(
                "`window.offset_s` is {}: a UTC offset is less than a day",
                w.offset_s
            ));
        }
        if !(w.hours.is_finite() && w.hours > 0.0 && w.hours <= 336.0) {
            return Err(format!(
                "`window.hours` is {}: a booked window lasts more than 0 and at most 336 hours",
                w.hours
            ));
        }
    }
    for g in plan.limits.iter().chain(&plan.rollback_limits) {
        if g.max_concurrent == Some(0) {
            return Err(format!(
                "limit `{}`: `max_concurrent` is 0, so none of its steps could start",
                g.rule
            ));
        }
        let weights = g
            .capacity
            .iter()
            .chain(g.loads.iter().map(|l| &l.weight))
            .chain(g.base.values());
        for w in weights {
            if !(w.is_finite() && (0.0..=1e12).contains(w)) {
                return Err(format!(
                    "limit `{}`: a capacity, load or base of {w}; they lie within 0 and 10^12",
                    g.rule
                ));
            }
        }
    }
    Ok(())
}

/// Starts a new run of `plan` (recorded as `new` says) and carries it out. Refused
/// (`JournalError::Conflict`) while another run on its nodes is under way, or unfinished
/// (unless `new.supersede`): see `admission`.
pub fn apply(
    journal: &Journal,
    plan: &Plan,
    new: &NewRun,
    driver: &mut dyn Driver,
    opts: &Options,
    observer: &mut dyn Observer,
) -> Result<Report, ExecError> {
    validate(plan, opts)?;
    let (run, _lock) = crate::admission::begin_run(journal, plan, driver.now(), new)?;
    if let Err(source) = driver.attach_run(run) {
        let e = ExecError::Driver {
            steps: Vec::new(),
            source,
        };
        journal.set_outcome(run, RunStatus::Stopped, Some(&e.to_string()))?;
        return Err(e);
    }
    execute(journal, run, plan, driver, opts, observer)
}

/// Continues a run: steps started but not ended are inspected through the driver first;
/// steps done or skipped are never run again; failed steps are tried again, with their
/// retries afresh. Refused (`JournalError::Busy`) while another process carries the run out,
/// and (`JournalError::Conflict`) while another process carries out a run on its nodes.
pub fn resume(
    journal: &Journal,
    run: RunId,
    driver: &mut dyn Driver,
    opts: &Options,
    observer: &mut dyn Observer,
) -> Result<Report, ExecError> {
    let _lock = journal.lock_run(run)?;
    crate::admission::admit_resume(journal, run)?;
    let plan = journal.plan(run)?;
    validate(&plan, opts)?;
    if opts.ignore_window {
        journal.set_ignore_window(run, driver.now())?;
    }
    execute(journal, run, &plan, driver, opts, observer)
}

/// Why no new step starts, in increasing precedence for the run's final status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Halt {
    Paused,
    Stopped,
    Failed,
}

/// Ready-set key: prepare phase first, then staging, then planned start, then plan order.
type Key = (Phase, u64, usize);

/// A limit the executor keeps: a `max_concurrent` group (weights 1), or one partition of a
/// capacity group.
#[derive(Debug, Clone)]
struct Slot {
    capacity: f64,
    base: f64,
    load: f64,
    running: u32,
}

impl Slot {
    fn fits(&self, running: u32, load: f64, weight: f64) -> bool {
        running == 0 || self.base + load + weight <= self.capacity + 1e-9
    }
}

struct Run<'a> {
    journal: &'a Journal,
    run: RunId,
    plan: &'a Plan,
    opts: &'a Options,
    driver: &'a mut dyn Driver,
    observer: &'a mut dyn Observer,
    index: HashMap<&'a str, usize>,
    succs: Vec<Vec<usize>>,
    /// Per step: how many of its `after` steps are not yet done or skipped (plus one for a
    /// window step while a prepare step is open).
    unsettled_preds: Vec<u32>,
    /// Prepare-phase steps not yet done or skipped: the staging and window steps wait for all
    /// of them.
    prepare_open: usize,
    /// Whether window steps may start (`Options::window_opens` reached, or the window opened
    /// early by an approval).
    window_open: bool,
    /// The run has warned that it reached the point of no return.
    warned_point_of_no_return: bool,
    /// Window steps ready while the window has not opened: they start when it opens.
    held: BTreeSet<Key>,
    /// The run's journaled message says it waits for the window.
    waiting_noted: bool,
    state: Vec<StepState>,
    /// Per step: starts in this call (retries are counted against it).
    tries: Vec<u32>,
    started_at: Vec<i64>,
    /// Per step: whether it holds its slots now.
    holding: Vec<bool>,
    detail: Vec<String>,
    slots: Vec<Slot>,
    step_slots: Vec<Vec<(usize, f64)>>,
    ready: BTreeSet<Key>,
    parked: Vec<BTreeSet<Key>>,
    /// Slots that gained room since the last dispatch.
    released: Vec<usize>,
    running: usize,
    settled: usize,
    parallel: usize,
    /// (deadline, step) of every running gate with a timeout.
    deadlines: BTreeSet<(i64, usize)>,
    pause_after: HashSet<&'a str>,
    halt: Option<Halt>,
    report: Report,
    /// Events not yet written: they go to the journal in one commit before the driver starts
    /// anything or is waited on.
    pending: Vec<StepEvent>,
    /// Steps journaled as started whose driver start is still to come, in order.
    to_launch: Vec<usize>,
}

fn execute(
    journal: &Journal,
    run: RunId,
    plan: &Plan,
    driver: &mut dyn Driver,
    opts: &Options,
    observer: &mut dyn Observer,
) -> Result<Report, ExecError> {
    journal.set_outcome(run, RunStatus::Running, None)?;
    let mut r = Run::new(journal, run, plan, driver, opts, observer);
    let result = r.carry_out();
    if let Err(e @ ExecError::Driver { .. }) = &result {
        journal.set_outcome(run, RunStatus::Stopped, Some(&e.to_string()))?;
    }
    result
}

impl<'a> Run<'a> {
    fn new(
        journal: &'a Journal,
        run: RunId,
        plan: &'a Plan,
        driver: &'a mut dyn Driver,
        opts: &'a Options,
        observer: &'a mut dyn Observer,
    ) -> Run<'a> {
        let n = plan.steps.len();
        let index = plan.step_index();
        let mut succs = vec![Vec::new(); n];
        for (i, s) in plan.steps.iter().enumerate() {
            for a in &s.after {
                succs[index[a.as_str()]].push(i);
            }
        }
        let mut slots = Vec::new();
        let mut step_slots: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        for g in &plan.limits {
            if let Some(m) = g.max_concurrent {
                let slot = slots.len();
                slots.push(Slot {
                    capacity: f64::from(m),
                    base: 0.0,
                    load: 0.0,
                    running: 0,
                });
                let members: HashSet<&str> = g.steps.iter().map(String::as_str).collect();
                for m in members {
                    step_slots[index[m]].push((slot, 1.0));
                }
            }
            if let Some(cap) = g.capacity {
                let mut partition_slot: HashMap<&str, usize> = HashMap::new();
                for l in &g.loads {
                    let slot = *partition_slot
                        .entry(l.partition.as_str())
                        .or_insert_with(|| {
                            slots.push(Slot {
                                capacity: cap,
                                base: g.base.get(&l.partition).copied().unwrap_or(0.0),
                                load: 0.0,
                                running: 0,
                            });
                            slots.len() - 1
                        });
                    let i = index[l.step.as_str()];
                    if !step_slots[i].iter().any(|(s, _)| *s == slot) {
                        step_slots[i].push((slot, l.weight.max(0.0)));
                    }
                }
            }
        }
        let parked = vec![BTreeSet::new(); slots.len()];
        Run {
            journal,
            run,
            plan,
            opts,
            driver,
            observer,
            index,
            succs,
            unsettled_preds: vec![0; n],
            prepare_open: 0,
            window_open: opts.window_opens.is_none(),
            warned_point_of_no_return: false,
            held: BTreeSet::new(),
            waiting_noted: false,
            state: vec![StepState::Pending; n],
            tries: vec![0; n],
            started_at: vec![0; n],
            holding: vec![false; n],
            detail: vec![String::new(); n],
            slots,
            step_slots,
            ready: BTreeSet::new(),
            parked,
            released: Vec::new(),
            running: 0,
            settled: 0,
            parallel: opts.parallel.unwrap_or(usize::MAX).max(1),
            deadlines: BTreeSet::new(),
            pause_after: opts.pause_after.iter().map(String::as_str).collect(),
            halt: None,
            report: Report {
                steps: n,
                ..Report::empty(run)
            },
            pending: Vec::new(),
            to_launch: Vec::new(),
        }
    }

    fn key(&self, i: usize) -> Key {
        let s = &self.plan.steps[i];
        // Staging and window steps are ordered by planned start together: the window's wait
        // holds its steps back anyway.
        let phase = if s.phase == Phase::Prepare {
            Phase::Prepare
        } else {
            Phase::Window
        };
        (phase, s.start_s, i)
    }

    fn driver_err(&self, source: DriverError) -> ExecError {
        let steps = (0..self.state.len())
            .filter(|&i| self.state[i] == StepState::Running)
            .map(|i| self.plan.steps[i].id.clone())
            .collect();
        ExecError::Driver { steps, source }
    }

    fn carry_out(&mut self) -> Result<Report, ExecError> {
        self.load_journal()?;
        self.open_window_if_due()?;
        self.judge_window()?;
        loop {
            self.dispatch()?;
            if self.running == 0 {
                if self.halt.is_none() && !self.window_open && !self.held.is_empty() {
                    self.wait_for_window()?;
                    continue;
                }
                break;
            }
            let deadline = match (self.deadlines.first().map(|d| d.0), self.window_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.flush()?;
            match self.driver.wait(self.run, deadline) {
                Ok(Some((id, outcome))) => {
                    // An outcome for a step not running (a cancelled gate) changes nothing.
                    if let Some(&i) = self.index.get(id.as_str()) {
                        if self.state[i] == StepState::Running {
                            self.end(i, outcome)?;
                        }
                    }
                }
                Ok(None) if deadline.is_none() => {
                    return Err(self.driver_err(DriverError::Other(
                        "the driver's wait returned without an outcome and without a deadline"
                            .into(),
                    )));
                }
                Ok(None) => {}
                Err(e) => return Err(self.driver_err(e)),
            }
            self.expire_gates()?;
            self.open_window_if_due()?;
        }
        self.finish()
    }

    /// When the executor next looks at the window while it waits for it to open: its opening,
    /// or sooner on a real clock (an approval may come from another process). `None` when
    /// nothing waits for the window.
    fn window_deadline(&self) -> Option<i64> {
        if self.window_open || self.held.is_empty() {
            return None;
        }
        let opens = self.opts.window_opens?;
        Some(match self.opts.window_poll_s {
            Some(p) => opens.min(self.driver.now().saturating_add(p.max(1) as i64)),
            None => opens,
        })
    }

    /// Opens the window when its time has come or the operator approved `OPEN_WINDOW`: the
    /// held window steps become ready, the journaled waiting message goes, and the window is
    /// judged again now that its work is about to start.
    fn open_window_if_due(&mut self) -> Result<(), ExecError> {
        if self.window_open {
            return Ok(());
        }
        let now = self.driver.now();
        // The journal is asked for an early opening only while window steps wait for it.
        let due = self.opts.window_opens.is_none_or(|t| now >= t)
            || (!self.held.is_empty() && self.journal.approval(self.run, OPEN_WINDOW)?.is_some());
        if !due {
            return Ok(());
        }
        self.window_open = true;
        if std::mem::take(&mut self.waiting_noted) {
            self.journal
                .set_outcome(self.run, RunStatus::Running, None)?;
        }
        let held = std::mem::take(&mut self.held);
        self.ready.extend(held);
        // Its work is about to start (or starts as soon as the staging it waits for ends).
        self.judge_window()
    }

    /// Nothing is under way and window steps wait for the window: says so (journaled, so that
    /// `status` shows it after a crash too) and waits through the driver until the window
    /// opens or the operator opens it.
    fn wait_for_window(&mut self) -> Result<(), ExecError> {
        let Some(opens) = self.opts.window_opens else {
            self.window_open = true;
            return Ok(());
        };
        // Opened early before the run got here (an approval given ahead, a resume after it).
        self.open_window_if_due()?;
        if self.window_open {
            return Ok(());
        }
        if !self.waiting_noted {
            let now = self.driver.now();
            let w = self.plan.window.as_ref();
            let message = format!(
                "waiting for the booked window to open at {} (in {}): the work ahead of it is done; `ferry approve {OPEN_WINDOW} --run {}` opens it now",
                ferry_plan::render::site_time(w, opens),
                ferry_plan::render::duration((opens - now).max(0) as u64),
                self.run
            );
            self.flush()?;
            self.journal
                .set_outcome(self.run, RunStatus::Running, Some(&message))?;
            self.waiting_noted = true;
            self.observer.waiting(&message);
        }
        let deadline = self.window_deadline().unwrap_or(opens);
        match self.driver.wait(self.run, Some(deadline)) {
            Ok(Some((id, outcome))) => {
                if let Some(&i) = self.index.get(id.as_str()) {
                    if self.state[i] == StepState::Running {
                        self.end(i, outcome)?;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return Err(self.driver_err(e)),
        }
        self.open_window_if_due()
    }

    /// Fails every running gate whose deadline has passed (driver clock), after cancelling it.
    fn expire_gates(&mut self) -> Result<(), ExecError> {
        let now = self.driver.now();
        let plan = self.plan;
        while let Some(&(deadline, i)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let step = &plan.steps[i];
            if let Err(e) = self.driver.cancel(self.run, &step.id) {
                return Err(self.driver_err(e));
            }
            self.report.timed_out.push(step.id.clone());
            let t = step.timeout_s.unwrap_or(0);
            self.end(i, Outcome::Failed(format!("timed out after {t} s")))?;
        }
        Ok(())
    }

    /// Reads the run's steps from the journal: done and skipped stay so, failed ones become
    /// pending again, and each started-but-not-ended step is settled through `inspect`.
    fn load_journal(&mut self) -> Result<(), ExecError> {
        let mut interrupted = Vec::new();
        for (i, s) in self
            .journal
            .steps_of(self.run, self.plan)?
            .into_iter()
            .enumerate()
        {
            self.state[i] = match s.state {
                StepState::Failed => StepState::Pending,
                StepState::Running => {
                    interrupted.push((i, s.started.unwrap_or(0)));
                    StepState::Pending
                }
                other => other,
            };
            if self.state[i].is_settled() {
                self.settled += 1;
            }
        }
        for i in 0..self.state.len() {
            self.unsettled_preds[i] = self.plan.steps[i]
                .after
                .iter()
                .filter(|a| !self.state[self.index[a.as_str()]].is_settled())
                .count() as u32;
        }
        // Staging and the window follow the work before them.
        self.prepare_open = (0..self.state.len())
            .filter(|&i| self.plan.steps[i].phase == Phase::Prepare && !self.state[i].is_settled())
            .count();
        if self.prepare_open > 0 {
            for i in 0..self.state.len() {
                if self.plan.steps[i].phase != Phase::Prepare {
                    self.unsettled_preds[i] += 1;
                }
            }
        }
        let plan = self.plan;
        for (i, started) in interrupted {
            let step = &plan.steps[i];
            let found =
                self.driver
                    .inspect(self.run, step)
                    .map_err(|source| ExecError::Driver {
                        steps: vec![step.id.clone()],
                        source,
                    })?;
            self.report.recovered.push((step.id.clone(), found.clone()));
            match found {
                Inspection::NotStarted => {}
                Inspection::Running => {
                    self.tries[i] = 1;
                    self.occupy(i, started);
                }
                Inspection::Ended(o) => {
                    self.tries[i] = 1;
                    self.state[i] = StepState::Running;
                    self.started_at[i] = started;
                    self.end(i, o)?;
                }
            }
        }
        for i in 0..self.state.len() {
            if self.state[i] == StepState::Pending && self.unsettled_preds[i] == 0 {
                self.became_ready(i);
            }
        }
        Ok(())
    }

    /// Marks step `i` running from `at`: it holds its slots and, if a gate, has a deadline.
    fn occupy(&mut self, i: usize, at: i64) {
        self.state[i] = StepState::Running;
        self.started_at[i] = at;
        self.holding[i] = true;
        self.running += 1;
        for &(s, w) in &self.step_slots[i] {
            self.slots[s].running += 1;
            self.slots[s].load += w;
        }
        let step = &self.plan.steps[i];
        if let (StepKind::Gate, Some(t)) = (step.kind, step.timeout_s) {
            self.deadlines.insert((at.saturating_add(t as i64), i));
        }
    }

    fn release(&mut self, i: usize) {
        if !std::mem::take(&mut self.holding[i]) {
            return;
        }
        self.running -= 1;
        for &(s, w) in &self.step_slots[i] {
            let slot = &mut self.slots[s];
            slot.running -= 1;
            slot.load = (slot.load - w).max(0.0);
            self.released.push(s);
        }
        let step = &self.plan.steps[i];
        if let (StepKind::Gate, Some(t)) = (step.kind, step.timeout_s) {
            self.deadlines
                .remove(&(self.started_at[i].saturating_add(t as i64), i));
        }
    }

    /// The first slot of step `i` that has no room for it now.
    fn blocking_slot(&self, i: usize) -> Option<usize> {
        self.step_slots[i].iter().find_map(|&(s, w)| {
            let slot = &self.slots[s];
            (!slot.fits(slot.running, slot.load, w)).then_some(s)
        })
    }

    /// Moves parked steps of `slot`, in order, back to the ready set while the slot would have
    /// room for them all.
    fn readmit(&mut self, slot: usize) {
        let (mut running, mut load) = (self.slots[slot].running, self.slots[slot].load);
        while let Some(&k) = self.parked[slot].first() {
            let w = self.step_slots[k.2]
                .iter()
                .find(|(s, _)| *s == slot)
                .map_or(0.0, |x| x.1);
            if !self.slots[slot].fits(running, load, w) {
                break;
            }
            running += 1;
            load += w;
            self.parked[slot].pop_first();
            self.ready.insert(k);
        }
    }

    /// Writes the pending events in one commit.
    fn flush(&mut self) -> Result<(), ExecError> {
        if !self.pending.is_empty() {
            let events = std::mem::take(&mut self.pending);
            self.journal.record_all(self.run, &events)?;
        }
        Ok(())
    }

    /// Starts every ready step that may start now: their `started` events (and the ends
    /// recorded before them) are written in one commit, then the driver starts each in order.
    fn dispatch(&mut self) -> Result<(), ExecError> {
        self.choose()?;
        self.flush()?;
        let plan = self.plan;
        for i in std::mem::take(&mut self.to_launch) {
            let step = &plan.steps[i];
            if let Err(e) = self.driver.start(self.run, step) {
                return Err(self.driver_err(e));
            }
            let attempt = self.tries[i];
            let at = self.started_at[i];
            self.tell(i, at, Change::Started { attempt });
        }
        Ok(())
    }

    /// Chooses the ready steps that start now, in order, after moving back to the ready set
    /// the parked steps of every slot that gained room.
    fn choose(&mut self) -> Result<(), ExecError> {
        let mut released = std::mem::take(&mut self.released);
        released.sort_unstable();
        released.dedup();
        loop {
            for &s in &released {
                self.readmit(s);
            }
            let parked_any = self.start_ready()?;
            // A step readmitted from one slot and parked on another leaves room in the first:
            // look at that slot's parked steps again. Room only shrinks while this loop runs,
            // so each parked step moves at most once per slot.
            if self.halt.is_some() || !parked_any || released.is_empty() {
                return Ok(());
            }
        }
    }

    /// Starts ready steps in order until the `parallel` cap, parking those a slot holds back.
    /// Returns whether it parked any.
    fn start_ready(&mut self) -> Result<bool, ExecError> {
        let mut parked_any = false;
        while self.halt.is_none() && self.running < self.parallel {
            let Some(k) = self.ready.pop_first() else {
                break;
            };
            let i = k.2;
            if !self.window_open && self.plan.steps[i].phase == Phase::Window {
                self.held.insert(k);
                continue;
            }
            if let Some(s) = self.blocking_slot(i) {
                self.parked[s].insert(k);
                parked_any = true;
            } else if self.may_start(i)? {
                self.start(i)?;
            } else {
                self.ready.insert(k);
            }
        }
        Ok(parked_any)
    }

    /// The checks before a step starts: approval of a pause step, the booked window. A `false`
    /// halts the run (the reason is in the report).
    fn may_start(&mut self, i: usize) -> Result<bool, ExecError> {
        let plan = self.plan;
        let step = &plan.steps[i];
        let now = self.driver.now();
        if step.kind == StepKind::Pause && self.journal.approval(self.run, &step.id)?.is_none() {
            if self.opts.approve_all {
                self.journal.approve(self.run, &step.id, "--approve", now)?;
            } else {
                self.halt(
                    Halt::Paused,
                    format!(
                        "waiting for approval of {}: ferry approve {} --run {}",
                        step.id, step.id, self.run
                    ),
                );
                self.report.awaiting_approval = Some(step.id.clone());
                return Ok(false);
            }
        }
        if let (Some(pnr), Phase::Window) = (self.opts.point_of_no_return, step.phase) {
            if now >= pnr && !self.point_of_no_return_passed(pnr, now, &step.id)? {
                return Ok(false);
            }
        }
        if let (Some(end), Phase::Window) = (self.opts.window_end, step.phase) {
            if now.saturating_add(step.duration_s as i64) > end {
                self.refuse_window(WindowRefusal::StepOverruns {
                    now,
                    end,
                    step: step.id.clone(),
                    duration_s: step.duration_s,
                })?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A window step is due at or after the point of no return `pnr`: warn once; with
    /// `stop_at_point_of_no_return` and no approval of `POINT_OF_NO_RETURN` yet, pause the run
    /// (`false`).
    fn point_of_no_return_passed(
        &mut self,
        pnr: i64,
        now: i64,
        step: &str,
    ) -> Result<bool, ExecError> {
        let when = ferry_plan::render::site_time(self.plan.window.as_ref(), pnr);
        let approved = self
            .journal
            .approval(self.run, POINT_OF_NO_RETURN)?
            .is_some();
        if self.opts.stop_at_point_of_no_return && !approved {
            self.halt(
                Halt::Paused,
                format!(
                    "the run reached the point of no return ({when}) before {step}: a backout started later no longer ends inside the booked window; go on with `ferry approve {POINT_OF_NO_RETURN} --run {}`, or back out with `ferry rollback`",
                    self.run
                ),
            );
            self.report.awaiting_approval = Some(POINT_OF_NO_RETURN.to_string());
            return Ok(false);
        }
        if !self.warned_point_of_no_return {
            self.warned_point_of_no_return = true;
            let late = if now > pnr {
                format!(", {} ago", ferry_plan::render::duration((now - pnr) as u64))
            } else {
                String::new()
            };
            self.observer.warn(&format!(
                "the run is past the point of no return ({when}{late}): a full backout started now no longer ends inside the booked window"
            ));
        }
        Ok(true)
    }

    /// Before anything starts: a booked window that has closed, or whose rest is shorter than
    /// the window work the plan has left, stops the run with nothing started.
    fn judge_window(&mut self) -> Result<(), ExecError> {
        let Some(end) = self.opts.window_end else {
            return Ok(());
        };
        let now = self.driver.now();
        // Window work cannot start before the window opens (unless it is opened early).
        let now = match (self.window_open, self.opts.window_opens) {
            (false, Some(opens)) => now.max(opens),
            _ => now,
        };
        let (plan, state, started) = (self.plan, &self.state, &self.started_at);
        // Once the window is open, staging steps still to run hold its work back.
        let phases: &[Phase] = if self.window_open {
            &[Phase::Staging, Phase::Window]
        } else {
            &[Phase::Window]
        };
        let left = window::remaining_work(plan, phases, |i| match state[i] {
            StepState::Done | StepState::Skipped => None,
            // Under way since before a crash.
            StepState::Running => {
                let ran = u64::try_from(now - started[i]).unwrap_or(0);
                Some(plan.steps[i].duration_s.saturating_sub(ran))
            }
            StepState::Pending | StepState::Failed => Some(plan.steps[i].duration_s),
        });
        let Some(left) = left else {
            return Ok(());
        };
        match window::judge_run(now, end, left) {
            Some(refusal) => self.refuse_window(refusal),
            None => Ok(()),
        }
    }

    /// Stops the run for the booked window, with what the operator must change.
    fn refuse_window(&mut self, refusal: WindowRefusal) -> Result<(), ExecError> {
        let site = match self.journal.inputs(self.run)? {
            Some(inputs) => inputs.site_name,
            None => self.plan.site.clone(),
        };
        let message = refusal.message(
            self.plan,
            window::Remedy {
                run: self.run,
                site: &site,
            },
        );
        self.halt(Halt::Stopped, message);
        Ok(())
    }

    fn halt(&mut self, why: Halt, message: String) {
        if self.halt.as_ref().is_none_or(|h| why > *h) {
            self.halt = Some(why);
            self.report.message = Some(message);
        }
    }

    /// Step `i` starts now: journaled (at the next flush) before the driver is asked.
    fn start(&mut self, i: usize) -> Result<(), ExecError> {
        let now = self.driver.now();
        let plan = self.plan;
        let step = &plan.steps[i];
        self.pending.push(StepEvent {
            step: step.id.clone(),
            event: Event::Started,
            time: now,
            detail: String::new(),
        });
        self.tries[i] += 1;
        self.occupy(i, now);
        self.report.ran.push(step.id.clone());
        self.to_launch.push(i);
        Ok(())
    }

    fn tell(&mut self, i: usize, at: i64, change: Change<'_>) {
        self.observer.progress(&Progress {
            step: &self.plan.steps[i],
            number: i + 1,
            total: self.plan.steps.len(),
            settled: self.settled,
            at,
            change,
        });
    }

    /// Records how step `i` ended and what follows from it.
    fn end(&mut self, i: usize, outcome: Outcome) -> Result<(), ExecError> {
        let now = self.driver.now();
        let plan = self.plan;
        let step = &plan.steps[i];
        let (event, detail, state) = match &outcome {
            Outcome::Done => (Event::Done, "", StepState::Done),
            Outcome::Skipped => (Event::Skipped, "", StepState::Skipped),
            Outcome::Failed(r) => (Event::Failed, r.as_str(), StepState::Failed),
        };
        self.pending.push(StepEvent {
            step: step.id.clone(),
            event,
            time: now,
            detail: detail.to_string(),
        });
        self.release(i);
        self.state[i] = state;
        self.detail[i] = detail.to_string();
        if state.is_settled() {
            self.settled += 1;
        }
        let took_s = now - self.started_at[i];
        self.tell(
            i,
            now,
            Change::Ended {
                outcome: &outcome,
                took_s,
            },
        );
        match outcome {
            Outcome::Done | Outcome::Skipped => {
                self.settled_before(i);
                if state == StepState::Done {
                    self.pause_if_asked(i);
                }
            }
            Outcome::Failed(reason) => {
                if self.tries[i] <= step.retries {
                    self.state[i] = StepState::Pending;
                    self.report.retried.push(step.id.clone());
                    self.ready.insert(self.key(i));
                } else {
                    self.fail(i, &reason);
                }
            }
        }
        Ok(())
    }

    /// Step `i` is done or skipped: the steps after it that wait for nothing else become ready
    /// (and once the last prepare step is, the window's).
    fn settled_before(&mut self, i: usize) {
        let plan = self.plan;
        for j in 0..self.succs[i].len() {
            let s = self.succs[i][j];
            self.unsettled_preds[s] -= 1;
            if self.unsettled_preds[s] == 0 && self.state[s] == StepState::Pending {
                self.became_ready(s);
            }
        }
        if plan.steps[i].phase == Phase::Prepare && self.prepare_open > 0 {
            self.prepare_open -= 1;
            if self.prepare_open == 0 {
                for s in 0..self.state.len() {
                    if plan.steps[s].phase != Phase::Prepare {
                        self.unsettled_preds[s] -= 1;
                        if self.unsettled_preds[s] == 0 && self.state[s] == StepState::Pending {
                            self.became_ready(s);
                        }
                    }
                }
            }
        }
    }

    /// Step `s` waits for nothing any more: it joins the ready set, or, a sync point (nothing
    /// to do), it is done at once, journaled as started and done now, without the driver, and
    /// the steps after it follow as if they came right after the steps before it.
    fn became_ready(&mut self, s: usize) {
        if self.plan.steps[s].kind != StepKind::Sync {
            self.ready.insert(self.key(s));
            return;
        }
        let now = self.driver.now();
        let id = &self.plan.steps[s].id;
        for event in [Event::Started, Event::Done] {
            self.pending.push(StepEvent {
                step: id.clone(),
                event,
                time: now,
                detail: String::new(),
            });
        }
        self.tries[s] += 1;
        self.started_at[s] = now;
        self.state[s] = StepState::Done;
        self.settled += 1;
        self.report.ran.push(id.clone());
        self.settled_before(s);
        self.pause_if_asked(s);
    }

    /// Halts the run after step `i` when it is a pause point (`--pause-after`).
    fn pause_if_asked(&mut self, i: usize) {
        let id = &self.plan.steps[i].id;
        if self.pause_after.contains(id.as_str()) {
            self.halt(
                Halt::Paused,
                format!("paused after `{id}`; `resume` continues"),
            );
        }
    }

    fn fail(&mut self, i: usize, reason: &str) {
        let plan = self.plan;
        let step = &plan.steps[i];
        let wanted = match self.opts.policy {
            FailurePolicy::Stop => None,
            FailurePolicy::RollbackAll => Some(RollbackScope::All),
            FailurePolicy::RollbackNode => Some(match &step.node {
                Some(node) => RollbackScope::Node {
                    cluster: step.cluster.clone(),
                    node: node.clone(),
                },
                None => RollbackScope::Cluster {
                    cluster: step.cluster.clone(),
                },
            }),
        };
        // A second failure elsewhere widens the rollback to everything.
        self.report.rollback = match (self.report.rollback.take(), wanted) {
            (None, w) => w,
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(_), Some(_)) => Some(RollbackScope::All),
            (a, None) => a,
        };
        let mut message = format!(
            "step `{}` failed ({reason}); no new step starts (policy {})",
            step.id,
            self.opts.policy.as_str()
        );
        if let Some(scope) = &self.report.rollback {
            message.push_str(&format!("; rollback of {scope} wanted"));
        }
        self.halt(Halt::Failed, message);
    }

    fn finish(&mut self) -> Result<Report, ExecError> {
        self.flush()?;
        let mut report = std::mem::replace(&mut self.report, Report::empty(self.run));
        for (i, st) in self.state.iter().enumerate() {
            match st {
                StepState::Done => report.done += 1,
                StepState::Skipped => report.skipped += 1,
                StepState::Failed => report
                    .failed
                    .push((self.plan.steps[i].id.clone(), self.detail[i].clone())),
                StepState::Pending | StepState::Running => report.pending += 1,
            }
        }
        report.status = match &self.halt {
            Some(Halt::Failed) => RunStatus::Failed,
            Some(Halt::Stopped) => RunStatus::Stopped,
            Some(Halt::Paused) => RunStatus::Paused,
            None if report.pending == 0 && report.failed.is_empty() => RunStatus::Complete,
            None => {
                report.message = Some("no step can start".into());
                RunStatus::Stopped
            }
        };
        self.journal
            .set_rollback_wanted(self.run, report.rollback.as_ref())?;
        self.journal
            .set_outcome(self.run, report.status, report.message.as_deref())?;
        Ok(report)
    }
}

impl Report {
    fn empty(run: RunId) -> Report {
        Report {
            run,
            status: RunStatus::Running,
            steps: 0,
            done: 0,
            skipped: 0,
            pending: 0,
            failed: Vec::new(),
            recovered: Vec::new(),
            ran: Vec::new(),
            message: None,
            rollback: None,
            awaiting_approval: None,
            retried: Vec::new(),
            timed_out: Vec::new(),
        }
    }
}
