//! Runs: what `ferry apply`, `resume`, `rollback`, `status`, `approve` and `step` share —
//! carrying out a plan through a driver, with the journal in a state directory, and progress
//! on the terminal. The commands' arguments are in `cmd/`.

use crate::confirm;
use crate::exit::bad;
use crate::load::{read, render_diag, write_out, Loaded};
use anyhow::Result;
use clap::ValueEnum;
use ferry_exec::{
    Answer, Change, Driver, DriverError, ExecError, FailurePolicy, Input, Inspection, Journal,
    JournalError, ManualDriver, NewRun, Observer, Options, Outcome, Progress, Report, RunId,
    RunKind, RunStatus, StepState,
};
use ferry_model::{Facts, Plan, PlannedStep, StepKind};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How steps are carried out. Adding a driver: a variant here and an arm in `with_driver`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum DriverKind {
    /// An operator runbook: each step's card is shown and the operator answers done, failed
    /// or skip (at the terminal, or with `ferry step` from another shell).
    Manual,
    /// The digital twin: a simulation of the site, in virtual time (or paced with --speed).
    /// Nothing real is touched. Its world is kept in the state directory.
    Twin,
    /// The ferry agent on each node (its `address`), over HTTPS: stage signed packages,
    /// switch, revert, health and replication gates.
    Agent,
    /// The nodes' own CLI over SSH (the system's OpenSSH, host keys checked strictly): the
    /// commands, checks and waits of each step's `ssh` table in the profile. Steps without
    /// one are the operator's, answered with `ferry step`.
    Ssh,
}

impl DriverKind {
    fn name(self) -> &'static str {
        match self {
            DriverKind::Manual => "manual",
            DriverKind::Twin => "twin",
            DriverKind::Agent => "agent",
            DriverKind::Ssh => "ssh",
        }
    }

    fn from_name(name: &str) -> Option<DriverKind> {
        DriverKind::value_variants()
            .iter()
            .copied()
            .find(|d| d.name() == name)
    }
}

/// What to do when a step fails.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PolicyArg {
    /// Start no new step, wait for the running ones, report the run as failed.
    Stop,
    /// As stop, then roll back the failed step's node (and its cluster's cluster-wide steps).
    RollbackNode,
    /// As stop, then roll back every node the plan touches.
    RollbackAll,
}

impl From<PolicyArg> for FailurePolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Stop => FailurePolicy::Stop,
            PolicyArg::RollbackNode => FailurePolicy::RollbackNode,
            PolicyArg::RollbackAll => FailurePolicy::RollbackAll,
        }
    }
}

/// Settings shared by `apply`, `resume` and `rollback`.
pub struct RunArgs {
    pub state: PathBuf,
    pub driver: Option<DriverKind>,
    pub pause_after: Vec<String>,
    pub parallel: Option<usize>,
    pub policy: PolicyArg,
    pub approve_all: bool,
    pub ignore_window: bool,
    /// Who carries the run out (`--by`, or the OS user).
    pub by: String,
    /// `--yes`: no confirmation asked (apply and rollback with a real driver).
    pub yes: bool,
    /// Pause at the plan's point of no return for `ferry approve point-of-no-return`.
    pub stop_at_point_of_no_return: bool,
    /// Twin driver: the seed of its randomness, virtual seconds per real second, faults.
    pub seed: u64,
    pub speed: Option<f64>,
    pub faults: Option<PathBuf>,
    /// Agent driver: how to reach and authenticate to the agents, where the packages are.
    pub agent: ferry_exec::AgentOptions,
    /// Ssh driver: how it connects.
    pub ssh: ferry_exec::SshOptions,
    /// `--format json`: the run's outcome as JSON on standard output at the end, and
    /// everything else (progress, the runbook's cards) on standard error.
    pub json: bool,
}

impl RunArgs {
    /// Writes what the run says along the way: to standard output, or to standard error when
    /// standard output is kept for the JSON outcome.
    fn say(&self, text: &str) -> Result<()> {
        if self.json {
            eprint!("{text}");
            Ok(())
        } else {
            write_out(None, text)
        }
    }

    /// Where the drivers write the operator's cards and command output.
    fn driver_output(&self) -> Box<dyn std::io::Write + Send> {
        if self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    }
}

/// What the drivers that act on the site's nodes are built from (the twin, the agents, ssh).
pub struct TwinSetup {
    /// The run whose twin world this is (see `ferry_exec::world_root`); `None` for a new run.
    pub root: Option<RunId>,
    pub site: ferry_model::Site,
    pub profiles: BTreeMap<String, ferry_model::Profile>,
    pub input_hash: String,
    /// The plan the world is built for (the upgrade plan, also for its rollback).
    pub plan: Plan,
    pub faults: ferry_model::Faults,
    pub seed: u64,
    pub speed: Option<f64>,
    pub agent: ferry_exec::AgentOptions,
    pub ssh: ferry_exec::SshOptions,
}

impl DriverKind {
    /// Whether the driver acts on the site's nodes (and so needs the site).
    fn needs_site(self) -> bool {
        !matches!(self, DriverKind::Manual)
    }
}

/// The profiles a site uses, by name (each copied once, however many clusters use it).
pub fn used_profiles(
    site: &ferry_model::Site,
    set: &ferry_profiles::ProfileSet,
) -> BTreeMap<String, ferry_model::Profile> {
    ferry_exec::used_profiles(site, set)
}

/// The twin for a journaled run: its site and profiles from the run's stored inputs, its world
/// built (when none is saved yet) for the upgrade plan of the run, or of its parent.
fn twin_for_run(journal: &Journal, run: RunId, args: &RunArgs) -> Result<TwinSetup> {
    let summary = journal.run(run)?;
    let inputs = journal.inputs(run)?.ok_or_else(|| {
        bad(format!(
            "run {run} has no stored inputs (it was started by an older ferry): the twin cannot be built"
        ))
    })?;
    let (set, site) =
        ferry_exec::load_inputs(&inputs).map_err(|e| bad(format!("run {run}: {e}")))?;
    let upgrade = match (summary.kind, summary.parent) {
        (RunKind::Rollback, Some(p)) => journal.plan(p)?,
        _ => journal.plan(run)?,
    };
    Ok(TwinSetup {
        root: Some(ferry_exec::world_root(journal, run).map_err(|e| bad(e.to_string()))?),
        profiles: used_profiles(&site, &set),
        site,
        input_hash: inputs.input_hash(),
        plan: upgrade,
        faults: read_faults(args.faults.as_deref())?,
        seed: args.seed,
        speed: args.speed,
        agent: args.agent.clone(),
        ssh: args.ssh.clone(),
    })
}

/// Reads a faults file (exit 2 with a located diagnostic when it is bad).
pub fn read_faults(path: Option<&Path>) -> Result<ferry_model::Faults> {
    match path {
        None => Ok(ferry_model::Faults::default()),
        Some(p) => {
            let text = read(p)?;
            ferry_profiles::load_faults(&p.display().to_string(), &text)
                .map_err(|e| bad(render_diag(e)))
        }
    }
}

fn open(state: &Path) -> Result<Journal> {
    Journal::open(state).map_err(open_failure)
}

/// A journal that cannot be opened: a full disk or a damaged file is the environment's
/// failure (exit 4), anything else bad input.
fn open_failure(e: JournalError) -> anyhow::Error {
    match ferry_exec::environment::journal_failure(&e) {
        Some(f) => anyhow::Error::new(f),
        None => bad(format!("cannot open the journal: {e}")),
    }
}

/// The executor's options; `ignore_window`: the booked window is not checked, nor waited for
/// (the flag given now, or journaled for the run).
fn options(plan: &Plan, args: &RunArgs, ignore_window: bool, kind: DriverKind) -> Options {
    Options {
        parallel: args.parallel,
        pause_after: args.pause_after.clone(),
        window_end: if ignore_window {
            None
        } else {
            ferry_exec::window_end(plan)
        },
        policy: args.policy.into(),
        approve_all: args.approve_all,
        ignore_window: args.ignore_window,
        window_opens: if ignore_window {
            None
        } else {
            ferry_exec::window_opens(plan)
        },
        // On a real clock an operator may open the window early from another shell: look for
        // the approval every second. The twin's virtual clock jumps to the window's opening.
        window_poll_s: (kind != DriverKind::Twin).then_some(1),
        point_of_no_return: ferry_exec::point_of_no_return(plan),
        stop_at_point_of_no_return: args.stop_at_point_of_no_return,
    }
}

/// Carries out `f` with a driver of `kind` for `plan`, and progress shown as the terminal
/// allows: a progress bar when standard error is a terminal, else one line per change.
fn with_driver<T>(
    kind: DriverKind,
    args: &RunArgs,
    journal: &Journal,
    plan: &Plan,
    twin: Option<&TwinSetup>,
    f: impl FnOnce(&mut dyn Driver, &mut dyn Observer) -> Result<T, ExecError>,
) -> Result<T, ExecError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(plan.steps.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let mut observer: Box<dyn Observer> = match &bar {
        Some(b) => Box::new(BarProgress {
            bar: b.clone(),
            running: BTreeSet::new(),
        }),
        None => Box::new(LineProgress { json: args.json }),
    };
    let result = match kind {
        DriverKind::Manual => {
            let driver = manual(journal, plan, args).answered_by(&args.by);
            match &bar {
                Some(b) => f(
                    &mut Suspending {
                        inner: driver,
                        bar: b.clone(),
                    },
                    observer.as_mut(),
                ),
                None => {
                    let mut driver = driver;
                    f(&mut driver, observer.as_mut())
                }
            }
        }
        DriverKind::Twin => match twin {
            None => Err(ExecError::BadPlan(
                "the twin driver needs the site the plan was made from".into(),
            )),
            Some(t) => match ferry_exec::TwinDriver::for_site(
                journal,
                t.root,
                &t.input_hash,
                &t.site,
                &t.profiles,
                &t.plan,
                &t.faults,
                t.seed,
            ) {
                Ok(driver) => {
                    let mut driver = driver.with_speed(t.speed);
                    f(&mut driver, observer.as_mut())
                }
                Err(source) => Err(ExecError::Driver {
                    steps: Vec::new(),
                    source,
                }),
            },
        },
        DriverKind::Agent => match twin {
            None => Err(ExecError::BadPlan(
                "the agent driver needs the site the plan was made from".into(),
            )),
            // Its set-up fails only on what the site or the options say (a node without an
            // address, no credentials, an unreadable CA): bad input.
            Some(t) => {
                match ferry_exec::AgentDriver::new(journal, &t.site, &t.profiles, t.agent.clone()) {
                    Ok(mut driver) => match driver.missing_packages(&plan.steps).as_slice() {
                        [] => f(&mut driver, observer.as_mut()),
                        missing => Err(ExecError::BadPlan(format!(
                            "the plan stages packages that are not there: {}",
                            missing.join(", ")
                        ))),
                    },
                    Err(source) => Err(ExecError::BadPlan(source.to_string())),
                }
            }
        },
        DriverKind::Ssh => match twin {
            None => Err(ExecError::BadPlan(
                "the ssh driver needs the site the plan was made from".into(),
            )),
            Some(t) => match ferry_exec::SshDriver::new(
                journal,
                t.site.clone(),
                t.profiles.clone(),
                t.ssh.clone(),
                args.driver_output(),
            ) {
                // Not suspended: its waits are long and print nothing but operator cards.
                Ok(mut driver) => f(&mut driver, observer.as_mut()),
                Err(source) => Err(ExecError::Driver {
                    steps: Vec::new(),
                    source,
                }),
            },
        },
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result
}

fn manual<'a>(journal: &'a Journal, plan: &Plan, args: &RunArgs) -> ManualDriver<'a> {
    let input = if std::io::stdin().is_terminal() {
        Input::Lines(Box::new(std::io::stdin().lock()))
    } else {
        Input::Journal {
            every: Duration::from_millis(200),
            max_wait: None,
        }
    };
    ManualDriver::new(
        journal,
        plan,
        input,
        args.driver_output(),
        Box::new(ferry_exec::system_now),
    )
}

/// A driver whose output and prompts appear with the progress bar hidden.
struct Suspending<D> {
    inner: D,
    bar: ProgressBar,
}

impl<D: Driver> Driver for Suspending<D> {
    fn now(&self) -> i64 {
        self.inner.now()
    }
    fn attach_run(&mut self, run: RunId) -> Result<(), DriverError> {
        self.inner.attach_run(run)
    }
    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        self.bar.suspend(|| self.inner.start(run, step))
    }
    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        self.bar.suspend(|| self.inner.wait(run, deadline))
    }
    fn cancel(&mut self, run: RunId, step_id: &str) -> Result<(), DriverError> {
        self.bar.suspend(|| self.inner.cancel(run, step_id))
    }
    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        self.bar.suspend(|| self.inner.inspect(run, step))
    }
    fn observe(&mut self) -> Result<BTreeMap<String, Facts>, DriverError> {
        self.bar.suspend(|| self.inner.observe())
    }
}

fn took(s: i64) -> String {
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min", (s + 30) / 60)
    }
}

fn outcome_word(o: &Outcome) -> String {
    match o {
        Outcome::Done => "done".into(),
        Outcome::Skipped => "skipped".into(),
        Outcome::Failed(r) => format!("failed ({r})"),
    }
}

/// Plain progress lines: `[12/55] started ucm/ucm-pub/switch-version`; on standard error
/// when standard output is kept for the JSON outcome (`json`).
struct LineProgress {
    json: bool,
}

impl LineProgress {
    fn line(&self, text: &str) {
        if self.json {
            eprint!("{text}");
        } else {
            let _ = write_out(None, text);
        }
    }
}

impl Observer for LineProgress {
    fn waiting(&mut self, message: &str) {
        self.line(&format!("{message}\n"));
    }

    fn warn(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn progress(&mut self, p: &Progress<'_>) {
        let line = match p.change {
            Change::Started { attempt } if attempt > 1 => format!(
                "[{}/{}] started {} (attempt {attempt})\n",
                p.number, p.total, p.step.id
            ),
            Change::Started { .. } => {
                format!("[{}/{}] started {}\n", p.number, p.total, p.step.id)
            }
            Change::Ended { outcome, took_s } => format!(
                "[{}/{}] {} {} in {}\n",
                p.number,
                p.total,
                outcome_word(outcome),
                p.step.id,
                took(took_s)
            ),
        };
        self.line(&line);
    }
}

/// A progress bar: steps done or skipped of all, the steps under way, the time elapsed.
struct BarProgress {
    bar: ProgressBar,
    running: BTreeSet<String>,
}

impl Observer for BarProgress {
    fn waiting(&mut self, message: &str) {
        self.bar.println(message);
        self.bar.set_message(message.to_string());
    }

    fn warn(&mut self, message: &str) {
        self.bar.println(format!("warning: {message}"));
    }

    fn progress(&mut self, p: &Progress<'_>) {
        match p.change {
            Change::Started { .. } => {
                self.running.insert(p.step.id.clone());
            }
            Change::Ended { outcome, took_s } => {
                self.running.remove(&p.step.id);
                if let Outcome::Failed(_) = outcome {
                    self.bar.println(format!(
                        "{} {} after {}",
                        p.step.id,
                        outcome_word(outcome),
                        took(took_s)
                    ));
                }
            }
        }
        self.bar.set_position(p.settled as u64);
        let names: Vec<&str> = self.running.iter().map(String::as_str).collect();
        self.bar.set_message(names.join(", "));
    }
}

/// What a run did, for the terminal.
fn report_text(r: &Report, kind: RunKind, state: &Path, driver: &str) -> String {
    let mut text = format!(
        "\n{} run {}: {} — {} of {} steps done, {} skipped, {} pending",
        kind.as_str(),
        r.run,
        r.status.as_str(),
        r.done,
        r.steps,
        r.skipped,
        r.pending
    );
    for (id, inspection) in &r.recovered {
        let said = match inspection {
            Inspection::NotStarted => "had not taken effect; started again".to_string(),
            Inspection::Running => "still under way".to_string(),
            Inspection::Ended(o) => format!("had ended: {}", outcome_word(o)),
        };
        text.push_str(&format!("\nrecovered: {id} {said}"));
    }
    for id in &r.retried {
        text.push_str(&format!("\nretried: {id}"));
    }
    for (id, reason) in &r.failed {
        text.push_str(&format!("\nfailed: {id}: {reason}"));
    }
    if let Some(m) = &r.message {
        text.push_str(&format!("\n{m}"));
    }
    if r.status != RunStatus::Complete {
        text.push_str(&format!(
            "\nsee `ferry status --state {} {}`; continue with `ferry resume --state {} {}`{}",
            state.display(),
            r.run,
            state.display(),
            r.run,
            // Credentials and paths are not journaled: the driver's options are given again.
            match driver {
                "agent" => " and the same --agent-* and --packages options",
                "ssh" => " and the same --ssh-* options",
                _ => "",
            }
        ));
    }
    text.push('\n');
    text
}

/// What `apply`, `resume` and `rollback --format json` print at the end: the run's outcome.
/// Plain data with stable field names (fields may be added, never renamed).
#[derive(serde::Serialize)]
pub struct RunOutcome {
    pub schema_version: u32,
    /// The run's number (`ferry status RUN`).
    pub run: RunId,
    /// `apply` or `rollback`.
    pub kind: &'static str,
    /// `complete`, `paused`, `stopped`, `failed` ... (as `ferry status` says).
    pub state: &'static str,
    pub driver: String,
    /// The plan's steps, and how many are done, skipped, failed and still pending.
    pub steps: usize,
    pub done: usize,
    pub skipped: usize,
    pub failed: usize,
    pub pending: usize,
    /// Each failed step and why.
    pub failures: Vec<StepFailure>,
    /// Failed steps started again (once per retry).
    pub retried: Vec<String>,
    /// The pause step that waits for `ferry approve`.
    pub awaiting_approval: Option<String>,
    /// Why the run stopped or paused.
    pub message: Option<String>,
    /// The rollback the failure policy started, when it did.
    pub rollback: Option<Box<RunOutcome>>,
}

/// A failed step and why it failed.
#[derive(serde::Serialize)]
pub struct StepFailure {
    pub step: String,
    pub reason: String,
}

impl RunOutcome {
    fn new(r: &Report, kind: RunKind, driver: String) -> RunOutcome {
        RunOutcome {
            schema_version: ferry_model::plan::SCHEMA_VERSION,
            run: r.run,
            kind: kind.as_str(),
            state: r.status.as_str(),
            driver,
            steps: r.steps,
            done: r.done,
            skipped: r.skipped,
            failed: r.failed.len(),
            pending: r.pending,
            failures: r
                .failed
                .iter()
                .map(|(step, reason)| StepFailure {
                    step: step.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            retried: r.retried.clone(),
            awaiting_approval: r.awaiting_approval.clone(),
            message: r.message.clone(),
            rollback: None,
        }
    }
}

/// How a run ended: the exit code, and its outcome (none when it never started).
pub struct Finished {
    code: ExitCode,
    outcome: Option<RunOutcome>,
}

impl Finished {
    fn code(code: u8) -> Finished {
        Finished {
            code: ExitCode::from(code),
            outcome: None,
        }
    }
}

/// The exit code, after the outcome is printed as JSON (`--format json`).
fn emit(args: &RunArgs, f: Result<Finished>) -> Result<ExitCode> {
    let f = f?;
    if args.json {
        if let Some(o) = &f.outcome {
            write_out(None, &(serde_json::to_string_pretty(o)? + "\n"))?;
        }
    }
    Ok(f.code)
}

/// Prints what a run did (text) or keeps it for the JSON outcome, starts the rollback its
/// failure policy asks for (not for a rollback run), and gives the exit code: 0 when the run
/// completed, 1 otherwise.
fn finish(
    journal: &Journal,
    result: Result<Report, ExecError>,
    kind: RunKind,
    args: &RunArgs,
) -> Result<Finished> {
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            return exec_error(e).map(|code| Finished {
                code,
                outcome: None,
            })
        }
    };
    let driver = journal
        .run(report.run)
        .map(|s| s.driver)
        .unwrap_or_default();
    if !args.json {
        write_out(None, &report_text(&report, kind, &args.state, &driver))?;
    }
    let mut outcome = RunOutcome::new(&report, kind, driver);
    if report.rollback.is_some() && kind == RunKind::Apply {
        args.say("the failure policy asks for a rollback: starting it\n")?;
        // Confirmed with the run it backs out: not asked again.
        outcome.rollback = rollback_run(journal, report.run, args, false)?
            .outcome
            .map(Box::new);
    }
    Ok(Finished {
        code: if report.status == RunStatus::Complete {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
        outcome: Some(outcome),
    })
}

/// The executor's errors as the command line reports them.
fn exec_error(e: ExecError) -> Result<ExitCode> {
    match e {
        ExecError::BadPlan(m) => Err(bad(format!("the plan cannot be executed: {m}"))),
        ExecError::Journal(
            e @ (JournalError::Busy { .. }
            | JournalError::Conflict(_)
            | JournalError::NotAJournal { .. }),
        ) => Err(bad(e.to_string())),
        // The driver could not keep its state in the journal: an environment failure.
        ExecError::Driver {
            source: ferry_exec::DriverError::Journal(e),
            ..
        } => Err(e.into()),
        e @ ExecError::Driver { .. } => {
            eprintln!("ferry: {e}");
            Ok(ExitCode::from(1))
        }
        e => Err(e.into()),
    }
}

pub fn apply(
    loaded: &Loaded,
    plan_path: &Path,
    site: &str,
    args: &RunArgs,
    supersede: bool,
) -> Result<ExitCode> {
    let text = read(plan_path)?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "{}: not a ferry plan (make one with `ferry plan SITE --format json -o PLAN.json`): {e}",
            plan_path.display()
        ))
    })?;
    if loaded.hash != plan.input_hash {
        return Err(bad(format!(
            "{}: the site or a profile changed since this plan was made (plan input hash {}, now {}); \
make a new plan with `ferry plan {site} --format json -o {}`",
            plan_path.display(),
            short(&plan.input_hash),
            short(&loaded.hash),
            plan_path.display()
        )));
    }
    let kind = args.driver.unwrap_or(DriverKind::Manual);
    let opts = options(&plan, args, args.ignore_window, kind);
    ferry_exec::validate(&plan, &opts).map_err(|e| bad(format!("{}: {e}", plan_path.display())))?;
    let mut inputs = loaded.inputs.clone();
    inputs.strategy = (plan.strategy != "fastest").then(|| plan.strategy.clone());
    let new = NewRun {
        kind: RunKind::Apply,
        parent: None,
        driver: kind.name().to_string(),
        inputs: Some(inputs),
        ignore_window: args.ignore_window,
        supersede,
        by: Some(args.by.clone()),
    };
    let twin = match kind {
        k if k.needs_site() => Some(TwinSetup {
            root: None,
            site: loaded.site.clone(),
            profiles: used_profiles(&loaded.site, &loaded.profiles),
            input_hash: loaded.hash.clone(),
            plan: plan.clone(),
            faults: read_faults(args.faults.as_deref())?,
            seed: args.seed,
            speed: args.speed,
            agent: args.agent.clone(),
            ssh: args.ssh.clone(),
        }),
        _ => None,
    };
    if let (DriverKind::Twin, Some(t)) = (kind, &twin) {
        check_faults(t, args.faults.as_deref())?;
    }
    let summary = confirm::RunSummary {
        what: format!("apply of site {} (a new run)", plan.site),
        driver: kind.name(),
        by: args.by.clone(),
        nodes: node_ids(&plan),
        steps: plan.steps.len(),
        phases: phase_counts(&plan),
        window: booked_window_text(
            &plan,
            if args.ignore_window {
                "ignored: --ignore-window"
            } else {
                "no window step starts before it opens"
            },
        ),
    };
    if kind != DriverKind::Twin && !confirm::confirm(&summary, args.yes, "apply")? {
        return Ok(ExitCode::from(1));
    }
    let journal = open(&args.state)?;
    let result = with_driver(kind, args, &journal, &plan, twin.as_ref(), |d, o| {
        ferry_exec::apply(&journal, &plan, &new, d, &opts, o)
    });
    emit(args, finish(&journal, result, RunKind::Apply, args))
}

/// A faults file whose entries do not fit the site and plan (a step or node it does not
/// have) is bad input, named by the file, before anything is journaled.
fn check_faults(t: &TwinSetup, path: Option<&Path>) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    match ferry_twin::World::build(&t.site, &t.profiles, &t.plan, &t.faults, t.seed) {
        Err(e @ ferry_twin::TwinError::BadFault { .. }) => {
            Err(bad(format!("{}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

fn pick_run(journal: &Journal, run: Option<RunId>, state: &Path) -> Result<RunId> {
    match run {
        Some(r) => {
            journal.run(r).map_err(|e| journal_err(state, e))?;
            Ok(r)
        }
        None => journal.latest_run().map_err(|e| journal_err(state, e)),
    }
}

/// A journal error of `state`: an environment failure (exit 4) when the journal is damaged or
/// cannot be read or written, else bad input (no such run).
fn journal_err(state: &Path, e: JournalError) -> anyhow::Error {
    match ferry_exec::environment::journal_failure(&e) {
        Some(f) => anyhow::Error::new(f),
        None => bad(format!("{}: {e}", state.display())),
    }
}

/// A state directory that must already hold a journal (commands that carry on or answer).
fn existing(state: &Path) -> Result<Journal> {
    no_journal_here(state)?;
    open(state)
}

/// As `existing`, for commands that only read: nothing is written (a journal this user may
/// not write can be read).
fn existing_read_only(state: &Path) -> Result<Journal> {
    no_journal_here(state)?;
    Journal::open_read_only(state).map_err(open_failure)
}

fn no_journal_here(state: &Path) -> Result<()> {
    if !state.join(ferry_exec::JOURNAL_FILE).exists() {
        return Err(bad(format!(
            "{}: no journal here (runs are journaled by `ferry apply --state DIR`)",
            state.display()
        )));
    }
    Ok(())
}

/// Holds `run`'s lock for this process, and checks that no other process carries out a run on
/// its nodes: before a driver is made for it (a driver may read and tidy the run's state).
fn hold(journal: &Journal, run: RunId) -> Result<ferry_exec::RunLock> {
    let lock = journal
        .lock_run(run)
        .map_err(|e| exec_error_text(ExecError::Journal(e)))?;
    ferry_exec::admission::admit_resume(journal, run)
        .map_err(|e| exec_error_text(ExecError::Journal(e)))?;
    Ok(lock)
}

fn exec_error_text(e: ExecError) -> anyhow::Error {
    match exec_error(e) {
        Err(e) => e,
        Ok(_) => bad("the run cannot be carried on"),
    }
}

/// The driver a run was started with, unless the command line names one.
fn driver_of(journal: &Journal, run: RunId, args: &RunArgs) -> Result<DriverKind> {
    if let Some(d) = args.driver {
        return Ok(d);
    }
    let stored = journal.run(run)?.driver;
    if stored.is_empty() {
        return Ok(DriverKind::Manual);
    }
    DriverKind::from_name(&stored).ok_or_else(|| {
        bad(format!(
            "run {run} was started with driver `{stored}`, which this ferry does not have"
        ))
    })
}

pub fn resume(run: Option<RunId>, args: &RunArgs) -> Result<ExitCode> {
    let journal = existing(&args.state)?;
    let run = pick_run(&journal, run, &args.state)?;
    let _held = hold(&journal, run)?;
    let summary = journal.run(run)?;
    let plan = journal.plan(run)?;
    let ignore_window = args.ignore_window || summary.ignore_window_since.is_some();
    let kind = driver_of(&journal, run, args)?;
    let opts = options(&plan, args, ignore_window, kind);
    ferry_exec::validate(&plan, &opts)
        .map_err(|e| bad(format!("{}: run {run}: {e}", args.state.display())))?;
    let twin = match kind {
        k if k.needs_site() => Some(twin_for_run(&journal, run, args)?),
        _ => None,
    };
    let result = with_driver(kind, args, &journal, &plan, twin.as_ref(), |d, o| {
        ferry_exec::resume(&journal, run, d, &opts, o)
    });
    emit(args, finish(&journal, result, summary.kind, args))
}

pub fn rollback(run: Option<RunId>, args: &RunArgs) -> Result<ExitCode> {
    let journal = existing(&args.state)?;
    let run = pick_run(&journal, run, &args.state)?;
    emit(args, rollback_run(&journal, run, args, true))
}

/// Plans the rollback of `run` from its stored inputs and what the driver observes, and
/// carries it out as a new run of kind `rollback`; `ask`: a real driver's rollback is
/// confirmed first (not when the failure policy of a confirmed run starts it).
fn rollback_run(journal: &Journal, run: RunId, args: &RunArgs, ask: bool) -> Result<Finished> {
    let summary = journal.run(run)?;
    if summary.kind == RunKind::Rollback {
        return Err(bad(format!(
            "run {run} is itself a rollback (of run {}); resume it with `ferry resume {run}`",
            summary.parent.map_or("?".into(), |p| p.to_string())
        )));
    }
    // Held while the rollback runs: no `resume` of the parent meanwhile.
    let _parent = journal.lock_run(run).map_err(|e| match e {
        JournalError::Busy { .. } => bad(format!(
            "run {run} is running now (another ferry process carries it out): it cannot be rolled back \
until that process stops; stop it, or wait for it to end"
        )),
        e => bad(e.to_string()),
    })?;
    let inputs = journal.inputs(run)?.ok_or_else(|| {
        bad(format!(
            "run {run} has no stored inputs (it was started by an older ferry), so its rollback \
cannot be planned again; carry out the plan's rollback section by hand"
        ))
    })?;
    let kind = driver_of(journal, run, args)?;
    let scope = summary
        .rollback_wanted
        .clone()
        .unwrap_or(ferry_exec::RollbackScope::All);
    let new = NewRun {
        kind: RunKind::Rollback,
        parent: Some(run),
        driver: kind.name().to_string(),
        inputs: Some(inputs.clone()),
        ignore_window: false,
        supersede: false,
        by: Some(args.by.clone()),
    };
    let opts = Options {
        parallel: args.parallel,
        pause_after: args.pause_after.clone(),
        // A backout runs to its end, inside the booked window or not.
        window_end: None,
        policy: FailurePolicy::Stop,
        approve_all: args.approve_all,
        ignore_window: false,
        window_opens: None,
        window_poll_s: None,
        // A backout is what the point of no return keeps room for: it does not stop there.
        point_of_no_return: None,
        stop_at_point_of_no_return: false,
    };
    // The plan is needed to build the driver, and the driver's observations to plan: observe
    // with a driver for the upgrade plan, then carry out the rollback with a fresh one.
    let upgrade = journal.plan(run)?;
    let twin = match kind {
        k if k.needs_site() => Some(twin_for_run(journal, run, args)?),
        _ => None,
    };
    let observed = with_driver(kind, args, journal, &upgrade, twin.as_ref(), |d, _| {
        d.observe().map_err(|source| ExecError::Driver {
            steps: Vec::new(),
            source,
        })
    })
    .map_err(|e| bad(format!("the driver cannot observe the site: {e}")))?;
    let progress = ferry_exec::run_progress(journal, run)?;
    let plan = ferry_exec::rollback_plan(&inputs, &observed, Some(&progress))
        .and_then(|p| ferry_exec::restrict(p, &scope))
        .map_err(|e| bad(format!("run {run}: {e}")))?;
    ferry_exec::validate(&plan, &opts).map_err(|e| {
        bad(format!(
            "{}: rollback of run {run}: {e}",
            args.state.display()
        ))
    })?;
    args.say(&format!(
        "rolling back run {run} ({scope}): {} step(s)\n",
        plan.steps.len()
    ))?;
    if ask {
        let asked = confirm::RunSummary {
            what: format!("rollback of run {run} (site {}, {scope})", summary.site),
            driver: kind.name(),
            by: args.by.clone(),
            nodes: node_ids(&plan),
            steps: plan.steps.len(),
            phases: String::new(),
            window: booked_window_text(&upgrade, "a rollback runs to its end, window or not"),
        };
        if kind != DriverKind::Twin && !confirm::confirm(&asked, args.yes, "rollback")? {
            return Ok(Finished::code(1));
        }
    }
    let result = with_driver(kind, args, journal, &plan, twin.as_ref(), |d, o| {
        ferry_exec::apply(journal, &plan, &new, d, &opts, o)
    });
    finish(journal, result, RunKind::Rollback, args)
}

/// Every node a plan acts on, as `cluster/node`.
fn node_ids(plan: &Plan) -> Vec<String> {
    ferry_exec::run_nodes(plan, None)
        .into_iter()
        .map(|n| n.id)
        .collect()
}

/// How many of a plan's steps are in each phase: `prepare 3, staging 4, window 12`.
fn phase_counts(plan: &Plan) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &plan.steps {
        *counts.entry(s.phase.as_str()).or_default() += 1;
    }
    ["prepare", "staging", "window"]
        .iter()
        .filter_map(|p| counts.get(p).map(|n| format!("{p} {n}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The plan's booked window with dates and zone, and `note` on how the run keeps to it.
fn booked_window_text(plan: &Plan, note: &str) -> String {
    match (plan.window.as_ref(), ferry_exec::window_end(plan)) {
        (Some(w), Some(end)) => format!(
            "{} to {} ({note})",
            ferry_plan::render::site_time(Some(w), w.start_epoch_s),
            ferry_plan::render::site_time(Some(w), end)
        ),
        _ => "none booked".into(),
    }
}

fn time(t: Option<i64>) -> String {
    t.and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// The run's booked window as `status` shows it.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct BookedWindow {
    /// In the site's zone: `2026-12-05 18:00 -05:00`.
    start: String,
    end: String,
    start_epoch_s: i64,
    end_epoch_s: i64,
    /// `ahead` (not yet open), `open` or `closed`, now.
    state: &'static str,
    /// Whether the executor holds the run's window steps to it (not for a rollback, nor when
    /// `--ignore-window` was given).
    checked: bool,
    /// Whether `--ignore-window` was given for the run.
    ignored: bool,
}

/// The JSON of `ferry status --format json`: the run, its booked window, its steps and
/// approvals, and every run of the state directory. Fields may be added, never renamed; the
/// output has every object's keys in name order.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct StatusReport<'a> {
    /// Whether a ferry process is carrying the run out now (a `running` run that is not
    /// active was interrupted).
    pub active: bool,
    pub approvals: &'a [ferry_exec::Approval],
    pub run: &'a ferry_exec::RunSummary,
    /// Every run of the state directory.
    pub runs: &'a [ferry_exec::RunSummary],
    pub schema_version: u32,
    pub steps: &'a [ferry_exec::StepStatus],
    /// The plan's booked window (`null`: the site books none).
    pub window: Option<&'a BookedWindow>,
}

fn booked_window(plan: &Plan, summary: &ferry_exec::RunSummary, now: i64) -> Option<BookedWindow> {
    let w = plan.window.as_ref()?;
    let end = ferry_exec::window_end(plan)?;
    let at = |t| ferry_plan::render::site_time(Some(w), t);
    Some(BookedWindow {
        start: at(w.start_epoch_s),
        end: at(end),
        start_epoch_s: w.start_epoch_s,
        end_epoch_s: end,
        state: if now < w.start_epoch_s {
            "ahead"
        } else if now < end {
            "open"
        } else {
            "closed"
        },
        checked: summary.kind == RunKind::Apply && summary.ignore_window_since.is_none(),
        ignored: summary.ignore_window_since.is_some(),
    })
}

pub fn status(state: &Path, run: Option<RunId>, json: bool) -> Result<ExitCode> {
    let journal = existing_read_only(state)?;
    let runs = journal.runs()?;
    let run = pick_run(&journal, run, state)?;
    let summary = journal.run(run)?;
    let steps = journal.steps(run)?;
    let approvals = journal.approvals(run)?;
    let active = journal.run_is_active(run)?;
    let window = booked_window(&journal.plan(run)?, &summary, ferry_exec::system_now());
    let text = if json {
        ferry_exec::sorted_json(&StatusReport {
            schema_version: ferry_model::plan::SCHEMA_VERSION,
            run: &summary,
            active,
            window: window.as_ref(),
            steps: &steps,
            approvals: &approvals,
            runs: &runs,
        })?
    } else {
        let mut t = String::new();
        if runs.len() > 1 {
            t.push_str("runs:\n");
            for r in &runs {
                t.push_str(&format!(
                    "  {:>4}  {:8} {:9} {}  {}{}\n",
                    r.id,
                    r.kind.as_str(),
                    r.status.as_str(),
                    time(Some(r.created)),
                    r.site,
                    r.parent
                        .map(|p| format!("  (rolls back run {p})"))
                        .unwrap_or_default()
                ));
            }
            t.push('\n');
        }
        let interrupted = summary.status == RunStatus::Running && !active;
        t.push_str(&format!(
            "run {}  {}  site {}  status {}{}  driver {}  created {}  plan {}\n",
            summary.id,
            summary.kind.as_str(),
            summary.site,
            summary.status.as_str(),
            if interrupted { " (interrupted)" } else { "" },
            if summary.driver.is_empty() {
                "-"
            } else {
                &summary.driver
            },
            time(Some(summary.created)),
            short(&summary.input_hash)
        ));
        if let Some(by) = &summary.started_by {
            t.push_str(&format!("started by {by}\n"));
        }
        if let Some(p) = summary.parent {
            t.push_str(&format!("rolls back run {p}\n"));
        }
        if let Some(by) = summary.superseded_by {
            t.push_str(&format!(
                "superseded by run {by} (started on its nodes with --supersede)\n"
            ));
        }
        if let Some(w) = &window {
            t.push_str(&format!("window {} to {}: {}", w.start, w.end, w.state));
            if let Some(since) = summary.ignore_window_since {
                t.push_str(&format!(
                    "; ignored since {} (--ignore-window)",
                    time(Some(since))
                ));
            } else if !w.checked {
                t.push_str("; not checked (a rollback runs to its end)");
            }
            t.push('\n');
        }
        if let Some(m) = &summary.message {
            t.push_str(&format!("{}: {m}\n", summary.status.as_str()));
        }
        if let Some(scope) = &summary.rollback_wanted {
            t.push_str(&format!(
                "the failure policy asks for the rollback of {scope}: `ferry rollback {}`\n",
                summary.id
            ));
        }
        let count = |s: StepState| steps.iter().filter(|x| x.state == s).count();
        t.push_str(&format!(
            "{} steps: {} done, {} skipped, {} failed, {} running, {} pending\n\n",
            steps.len(),
            count(StepState::Done),
            count(StepState::Skipped),
            count(StepState::Failed),
            count(StepState::Running),
            count(StepState::Pending)
        ));
        t.push_str(&format!(
            "{:>4}  {:8} {:20} {:20} {:>3}  STEP\n",
            "#", "STATE", "STARTED", "ENDED", "TRY"
        ));
        for (i, s) in steps.iter().enumerate() {
            t.push_str(&format!(
                "{:>4}  {:8} {:20} {:20} {:>3}  {}{}{}\n",
                i + 1,
                s.state.as_str(),
                time(s.started),
                time(s.ended),
                s.attempts,
                s.id,
                if s.detail.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", s.detail)
                },
                match (&s.answered_by, s.early) {
                    (Some(by), true) => format!("  [answered early by {by}]"),
                    (None, true) => "  [answered early]".to_string(),
                    (Some(by), false) => format!("  [answered by {by}]"),
                    (None, false) => String::new(),
                }
            ));
        }
        if !approvals.is_empty() {
            t.push_str("\napprovals:\n");
            for a in &approvals {
                t.push_str(&format!(
                    "  {}  {}  by {}\n",
                    time(Some(a.time)),
                    a.step,
                    a.by
                ));
            }
        }
        t
    };
    write_out(None, &text)?;
    Ok(ExitCode::SUCCESS)
}

/// The step `step` of `run`, for commands that answer or approve it: bad input if the run has
/// no such step or the step has already ended.
fn open_step(journal: &Journal, run: RunId, step: &str) -> Result<PlannedStep> {
    let plan = journal.plan(run)?;
    let Some(p) = plan.steps.iter().find(|s| s.id == step) else {
        return Err(bad(format!("run {run} has no step `{step}`")));
    };
    let state = journal
        .steps(run)?
        .into_iter()
        .find(|s| s.id == step)
        .map_or(StepState::Pending, |s| s.state);
    if state.is_settled() {
        return Err(bad(format!(
            "step `{step}` of run {run} is already {}; the answer would change nothing",
            state.as_str()
        )));
    }
    Ok(p.clone())
}

pub fn answer(
    state: &Path,
    run: Option<RunId>,
    step: &str,
    answer: Answer,
    given: &ferry_exec::AnswerGiven,
    json: bool,
) -> Result<ExitCode> {
    let journal = existing(state)?;
    let run = pick_run(&journal, run, state)?;
    open_step(&journal, run, step)?;
    let now_state = journal
        .steps(run)?
        .into_iter()
        .find(|s| s.id == step)
        .map_or(StepState::Pending, |s| s.state);
    // An answer to a step under way is the operator's report of it; one before the step
    // starts would be taken the moment it starts, with nobody doing its work meanwhile.
    let early = now_state != StepState::Running;
    if early && !given.early {
        return Err(bad(format!(
            "step `{step}` of run {run} has not started (it is {}): an answer now would end it the \
moment it starts, before anyone does its work. Answer it once it has started (`ferry status` shows \
it running), or pass --early to give the answer ahead of time (journaled as early, never learned \
as a duration)",
            if now_state == StepState::Failed {
                "failed, waiting to be tried again"
            } else {
                now_state.as_str()
            }
        )));
    }
    let given = ferry_exec::AnswerGiven {
        by: given.by.clone(),
        early,
    };
    journal.answer_given(run, step, &answer, ferry_exec::system_now(), &given)?;
    let word = match &answer {
        Answer::Done => "done".to_string(),
        Answer::Failed(r) => format!("failed: {r}"),
        Answer::Skip => "skip".to_string(),
    };
    let (said, reason) = match &answer {
        Answer::Done => ("done", None),
        Answer::Failed(r) => ("failed", Some(r.clone())),
        Answer::Skip => ("skip", None),
    };
    let text = format!(
        "run {run}, step {step}: {word}{}, by {}\n",
        if early { " (early)" } else { "" },
        given.by
    );
    let value = StepAnswered {
        run,
        step: step.to_string(),
        answer: said,
        reason,
        by: given.by.clone(),
        early,
    };
    say_or_json(json, &text, &value)
}

/// What `ferry step --format json` prints: the answer journaled.
#[derive(serde::Serialize)]
struct StepAnswered {
    run: RunId,
    step: String,
    /// `done`, `failed` or `skip`.
    answer: &'static str,
    reason: Option<String>,
    by: String,
    early: bool,
}

/// What `ferry approve --format json` prints: the approval journaled, and what it means.
#[derive(serde::Serialize)]
struct Approved {
    run: RunId,
    step: String,
    by: String,
    message: String,
}

/// Writes `text`, or `value` as JSON; exit 0.
fn say_or_json(json: bool, text: &str, value: &impl serde::Serialize) -> Result<ExitCode> {
    if json {
        write_out(None, &(serde_json::to_string_pretty(value)? + "\n"))?;
    } else {
        write_out(None, text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn approved(json: bool, run: RunId, step: &str, by: &str, text: String) -> Result<ExitCode> {
    let value = Approved {
        run,
        step: step.to_string(),
        by: by.to_string(),
        message: text.trim_end().to_string(),
    };
    say_or_json(json, &text, &value)
}

pub fn approve(
    state: &Path,
    run: Option<RunId>,
    step: &str,
    by: &str,
    json: bool,
) -> Result<ExitCode> {
    let journal = existing(state)?;
    let run = pick_run(&journal, run, state)?;
    if step == ferry_exec::OPEN_WINDOW {
        return open_window(&journal, run, state, by, json);
    }
    if step == ferry_exec::POINT_OF_NO_RETURN {
        let plan = journal.plan(run)?;
        let Some(at) = ferry_exec::point_of_no_return(&plan) else {
            return Err(bad(format!(
                "run {run}'s plan has no point of no return (it books no window)"
            )));
        };
        journal.approve(run, step, "operator", ferry_exec::system_now())?;
        let text = format!(
            "run {run}: going on past the point of no return ({}); continue with `ferry resume --state {} {run}`\n",
            ferry_plan::render::site_time(plan.window.as_ref(), at),
            state.display()
        );
        return approved(json, run, step, "operator", text);
    }
    let s = open_step(&journal, run, step)?;
    if s.kind != StepKind::Pause {
        return Err(bad(format!(
            "step `{step}` of run {run} is not a pause step; only pause steps wait for an approval \
(answer other steps with `ferry step done|failed|skip`)"
        )));
    }
    journal.approve(run, step, by, ferry_exec::system_now())?;
    let text = format!(
        "run {run}: {step} approved; continue with `ferry resume --state {} {run}`\n",
        state.display()
    );
    approved(json, run, step, by, text)
}

/// `ferry approve open-window`: the operator opens the booked window early for a run that
/// waits for it (its staging is done); a waiting `apply` or `resume` goes on within a second.
fn open_window(
    journal: &Journal,
    run: RunId,
    state: &Path,
    by: &str,
    json: bool,
) -> Result<ExitCode> {
    let plan = journal.plan(run)?;
    let Some(opens) = ferry_exec::window_opens(&plan) else {
        return Err(bad(format!(
            "run {run} does not wait for a window (its plan books none): there is no window to open"
        )));
    };
    let now = ferry_exec::system_now();
    journal.approve(run, ferry_exec::OPEN_WINDOW, by, now)?;
    let when = ferry_plan::render::site_time(plan.window.as_ref(), opens);
    let text = if now >= opens {
        format!("run {run}: the window opened at {when} already; approval recorded\n")
    } else {
        format!(
            "run {run}: the window is opened now, before its booked start ({when}); a waiting `ferry apply` goes on, or continue with `ferry resume --state {} {run}`\n",
            state.display()
        )
    };
    approved(json, run, ferry_exec::OPEN_WINDOW, by, text)
}

/// Observed seconds per (profile, action) in the journal of `state`.
pub type Observed<T> = BTreeMap<(String, String), T>;

/// The median observed seconds per (profile, action) in the journal of `state`, and the spread
/// of those observed often enough (`ferry_exec::spreads`).
pub fn observed_estimates(state: &Path) -> Result<(Observed<u64>, Observed<[f64; 2]>)> {
    let journal = existing_read_only(state)?;
    let durations = journal.durations().map_err(|e| journal_err(state, e))?;
    Ok((
        ferry_exec::medians(&durations),
        ferry_exec::spreads(&durations),
    ))
}
