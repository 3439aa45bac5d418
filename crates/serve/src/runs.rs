//! Carrying runs out for `ferry serve`: a run of a site (an uploaded site file or a built-in
//! example) planned and started with the twin or the manual runbook on a blocking thread of
//! its own, through the executor and its journal, as `ferry apply` does; resumed after an
//! approval; and every step change published to the live views (server-sent events) and the
//! metrics.

use crate::metrics::Metrics;
use crate::store::{RunRecord, Store};
use crate::Config;
use ferry_exec::{
    Change, Driver, DriverError, ExecError, FailurePolicy, Inspection, Journal, NewRun, Observer,
    Options, Outcome, Progress, RunId, RunInputs, RunKind, RunStatus, StepState,
};
use ferry_model::{Facts, Plan, PlannedStep, StepKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How a run started from the server carries its steps out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DriverChoice {
    /// The digital twin: nothing real is touched.
    #[default]
    Twin,
    /// The operator runbook: each step answered done, failed or skip from the dashboard, the
    /// API or `ferry step`.
    Manual,
}

impl DriverChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverChoice::Twin => "twin",
            DriverChoice::Manual => "manual",
        }
    }
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// `example:NAME`, or the uploaded file's name.
    pub site_name: String,
    pub site_text: String,
    pub driver: DriverChoice,
    /// The twin's seed.
    pub seed: u64,
    /// The twin's pace: virtual seconds per real second (`None`: as fast as it goes).
    pub speed: Option<f64>,
    /// Carry the run out whatever the booked window says.
    pub ignore_window: bool,
    pub by: String,
}

/// A change the live views show: a step started or ended, a run's status changed, an approval
/// or an answer given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    pub run: RunId,
    /// `step`, `run`, `approval` or `answer`.
    pub kind: &'static str,
    pub step: Option<String>,
    /// The step's state (`running`, `done`, ...) or the run's status.
    pub state: String,
    /// Seconds since the Unix epoch (the driver's clock for step changes).
    pub at: i64,
    pub by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The site does not load or plan: its diagnostics, at file, line and key.
    #[error("{0}")]
    BadSite(String),
    /// The request cannot be carried out as given (a bad site, a run on the same nodes).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// Starts and resumes runs, and tells the live views what changes.
pub struct Runner {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<RunEvent>,
}

impl Runner {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Runner {
        Runner {
            config,
            store,
            metrics,
            events: broadcast::channel(1024).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: RunEvent) {
        let _ = self.events.send(event);
    }

    /// The text of a site argument: `example:NAME` (built into the binary) or not found.
    pub fn example(&self, name: &str) -> Option<&'static str> {
        self.config
            .examples
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    pub fn example_names(&self) -> Vec<&'static str> {
        self.config.examples.iter().map(|(n, _)| *n).collect()
    }

    /// Plans the site and starts its run on a thread of its own; returns the run's number once
    /// the journal has it (blocking: call it off the async threads).
    pub fn start(self: &Arc<Self>, req: StartRequest) -> Result<RunId, RunError> {
        let inputs = inputs_of(&req.site_name, &req.site_text)?;
        let (plan, site, profiles) =
            ferry_exec::upgrade_plan(&inputs).map_err(|e| RunError::BadSite(e.to_string()))?;
        let opts = options(&plan, req.driver, req.ignore_window);
        ferry_exec::validate(&plan, &opts).map_err(|e| RunError::Refused(e.to_string()))?;
        let new = NewRun {
            kind: RunKind::Apply,
            parent: None,
            driver: req.driver.as_str().into(),
            inputs: Some(inputs.clone()),
            ignore_window: req.ignore_window,
            supersede: false,
            by: Some(req.by.clone()),
        };
        let (tx, rx) = std::sync::mpsc::channel::<Result<RunId, RunError>>();
        let me = self.clone();
        let dir = self.store.journal_dir().to_path_buf();
        std::thread::spawn(move || {
            let journal = match Journal::open(&dir) {
                Ok(j) => j,
                Err(e) => {
                    let _ = tx.send(Err(RunError::Failed(e.to_string())));
                    return;
                }
            };
            let run_id = Arc::new(AtomicI64::new(0));
            let mut observer = me.observer(&site, run_id.clone());
            let hash = inputs.input_hash();
            let attached = Attached {
                run: run_id.clone(),
                tx: tx.clone(),
            };
            let result = match req.driver {
                DriverChoice::Twin => ferry_exec::TwinDriver::for_site(
                    &journal,
                    None,
                    &hash,
                    &site,
                    &profiles,
                    &plan,
                    &ferry_model::Faults::default(),
                    req.seed,
                )
                .map_err(|source| ExecError::Driver {
                    steps: Vec::new(),
                    source,
                })
                .and_then(|d| {
                    let mut d = Attaching {
                        inner: d.with_speed(req.speed),
                        attached,
                    };
                    ferry_exec::apply(&journal, &plan, &new, &mut d, &opts, &mut observer)
                }),
                DriverChoice::Manual => {
                    let mut d = Attaching {
                        inner: manual_driver(&journal, &plan),
                        attached,
                    };
                    ferry_exec::apply(&journal, &plan, &new, &mut d, &opts, &mut observer)
                }
            };
            me.ended(&journal, run_id.load(Ordering::SeqCst), result, &tx);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(RunError::Failed("the run's thread ended".into())))
    }

    /// Carries a paused, stopped or failed run on, on a thread of its own (after an approval,
    /// or when an operator resumes it). Refused while a process carries it out.
    pub fn resume(self: &Arc<Self>, run: RunId) -> Result<(), RunError> {
        let record = self
            .store
            .run(run)
            .map_err(|e| RunError::Refused(e.to_string()))?;
        if record.active {
            return Err(RunError::Refused(format!(
                "run {run} is being carried out now"
            )));
        }
        if record.summary.status == RunStatus::Complete {
            return Err(RunError::Refused(format!("run {run} is complete")));
        }
        let driver = match record.summary.driver.as_str() {
            "twin" => DriverChoice::Twin,
            "manual" => DriverChoice::Manual,
            other => {
                return Err(RunError::Refused(format!(
                    "run {run} was started with driver `{other}`: resume it with `ferry resume`"
                )))
            }
        };
        let me = self.clone();
        let dir = self.store.journal_dir().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel::<Result<RunId, RunError>>();
        std::thread::spawn(move || {
            let journal = match Journal::open(&dir) {
                Ok(j) => j,
                Err(e) => {
                    let _ = tx.send(Err(RunError::Failed(e.to_string())));
                    return;
                }
            };
            let result = me.resume_on(&journal, run, driver, &record, &tx);
            me.ended(&journal, run, result, &tx);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(RunError::Failed("the run's thread ended".into())))
            .map(|_| ())
    }

    fn resume_on(
        self: &Arc<Self>,
        journal: &Journal,
        run: RunId,
        driver: DriverChoice,
        record: &RunRecord,
        tx: &std::sync::mpsc::Sender<Result<RunId, RunError>>,
    ) -> Result<ferry_exec::Report, ExecError> {
        // Held before the caller is answered: a run another process carries out, or one on
        // nodes another run holds, is refused to the caller.
        let _held = journal.lock_run(run)?;
        ferry_exec::admission::admit_resume(journal, run)?;
        let _ = tx.send(Ok(run));
        let inputs = journal
            .inputs(run)?
            .ok_or_else(|| ExecError::BadPlan(format!("run {run} has no stored inputs")))?;
        let (set, site) =
            ferry_exec::load_inputs(&inputs).map_err(|e| ExecError::BadPlan(e.to_string()))?;
        let profiles = ferry_exec::used_profiles(&site, &set);
        let ignore_window = record.summary.ignore_window_since.is_some();
        let opts = options(&record.plan, driver, ignore_window);
        let run_id = Arc::new(AtomicI64::new(run));
        let mut observer = self.observer(&site, run_id.clone());
        let attached = Attached {
            run: run_id,
            tx: tx.clone(),
        };
        match driver {
            DriverChoice::Twin => {
                let root =
                    ferry_exec::world_root(journal, run).map_err(|source| ExecError::Driver {
                        steps: Vec::new(),
                        source,
                    })?;
                let d = ferry_exec::TwinDriver::for_site(
                    journal,
                    Some(root),
                    &inputs.input_hash(),
                    &site,
                    &profiles,
                    &record.plan,
                    &ferry_model::Faults::default(),
                    0,
                )
                .map_err(|source| ExecError::Driver {
                    steps: Vec::new(),
                    source,
                })?;
                let mut d = Attaching { inner: d, attached };
                ferry_exec::resume(journal, run, &mut d, &opts, &mut observer)
            }
            DriverChoice::Manual => {
                let mut d = Attaching {
                    inner: manual_driver(journal, &record.plan),
                    attached,
                };
                ferry_exec::resume(journal, run, &mut d, &opts, &mut observer)
            }
        }
    }

    /// After a run's call to the executor: its status published, an error before the run
    /// was journaled sent back to the caller.
    fn ended(
        &self,
        journal: &Journal,
        run: RunId,
        result: Result<ferry_exec::Report, ExecError>,
        tx: &std::sync::mpsc::Sender<Result<RunId, RunError>>,
    ) {
        match result {
            Ok(report) => self.publish(RunEvent {
                run: report.run,
                kind: "run",
                step: report.awaiting_approval.clone(),
                state: report.status.as_str().into(),
                at: ferry_exec::system_now(),
                by: None,
            }),
            Err(e) => {
                let refused = matches!(
                    e,
                    ExecError::BadPlan(_)
                        | ExecError::Journal(
                            ferry_exec::JournalError::Conflict(_)
                                | ferry_exec::JournalError::Busy { .. }
                        )
                );
                let message = e.to_string();
                // Sent only if the run was not journaled yet (the caller still waits).
                let _ = tx.send(Err(if refused {
                    RunError::Refused(message.clone())
                } else {
                    RunError::Failed(message.clone())
                }));
                if run > 0 {
                    if let Ok(s) = journal.run(run) {
                        self.publish(RunEvent {
                            run,
                            kind: "run",
                            step: None,
                            state: s.status.as_str().into(),
                            at: ferry_exec::system_now(),
                            by: None,
                        });
                    }
                }
            }
        }
    }

    fn observer(&self, site: &ferry_model::Site, run: Arc<AtomicI64>) -> LiveObserver {
        LiveObserver {
            run,
            events: self.events.clone(),
            metrics: self.metrics.clone(),
            profiles: site
                .clusters
                .iter()
                .map(|c| (c.name.clone(), c.profile.clone()))
                .collect(),
        }
    }
}

/// The texts a run is started from: the site, and the built-in profiles it uses.
fn inputs_of(name: &str, text: &str) -> Result<RunInputs, RunError> {
    let set = ferry_profiles::ProfileSet::builtin()
        .map_err(|e| RunError::Failed(format!("the built-in profiles do not load: {e}")))?;
    let site = ferry_profiles::load_site(name, text, &set)
        .map_err(|e| RunError::BadSite(site_errors(&e)))?;
    Ok(RunInputs {
        site_name: name.into(),
        site_text: text.into(),
        profiles: site
            .clusters
            .iter()
            .filter_map(|c| {
                set.get(&c.profile)
                    .map(|p| (c.profile.clone(), p.text.clone()))
            })
            .collect(),
        strategy: None,
    })
}

/// A site's diagnostics, one a line, each at its file, line and key.
fn site_errors(e: &ferry_profiles::InputErrors) -> String {
    e.errors
        .iter()
        .map(|d| {
            let mut line = d.to_string();
            if !d.key.is_empty() {
                line.push_str(&format!(" [key {}]", d.key));
            }
            if let Some(h) = &d.help {
                line.push_str(&format!(" (help: {h})"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The executor's options for a run from the server: stop on a failure, the booked window
/// kept unless ignored (the twin's clock jumps to its opening; a real clock looks for an early
/// opening every second).
fn options(plan: &Plan, driver: DriverChoice, ignore_window: bool) -> Options {
    Options {
        parallel: None,
        pause_after: Vec::new(),
        window_end: (!ignore_window)
            .then(|| ferry_exec::window_end(plan))
            .flatten(),
        policy: FailurePolicy::Stop,
        approve_all: false,
        ignore_window,
        window_opens: (!ignore_window)
            .then(|| ferry_exec::window_opens(plan))
            .flatten(),
        window_poll_s: (driver != DriverChoice::Twin).then_some(1),
        point_of_no_return: ferry_exec::point_of_no_return(plan),
        stop_at_point_of_no_return: false,
    }
}

fn manual_driver<'a>(journal: &'a Journal, plan: &Plan) -> ferry_exec::ManualDriver<'a> {
    ferry_exec::ManualDriver::new(
        journal,
        plan,
        ferry_exec::Input::Journal {
            every: std::time::Duration::from_millis(200),
            max_wait: None,
        },
        Box::new(std::io::sink()),
        Box::new(ferry_exec::system_now),
    )
}

/// Where the number of a run goes once the executor has journaled it.
struct Attached {
    run: Arc<AtomicI64>,
    tx: std::sync::mpsc::Sender<Result<RunId, RunError>>,
}

/// A driver that tells the caller the run's number when the executor attaches it.
struct Attaching<D> {
    inner: D,
    attached: Attached,
}

impl<D: Driver> Driver for Attaching<D> {
    fn now(&self) -> i64 {
        self.inner.now()
    }
    fn attach_run(&mut self, run: RunId) -> Result<(), DriverError> {
        self.attached.run.store(run, Ordering::SeqCst);
        let r = self.inner.attach_run(run);
        let _ = self.attached.tx.send(Ok(run));
        r
    }
    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        self.inner.start(run, step)
    }
    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        self.inner.wait(run, deadline)
    }
    fn cancel(&mut self, run: RunId, step_id: &str) -> Result<(), DriverError> {
        self.inner.cancel(run, step_id)
    }
    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        self.inner.inspect(run, step)
    }
    fn observe(&mut self) -> Result<BTreeMap<String, Facts>, DriverError> {
        self.inner.observe()
    }
}

/// Publishes every step change (after the executor journaled it) and times ended steps.
struct LiveObserver {
    run: Arc<AtomicI64>,
    events: broadcast::Sender<RunEvent>,
    metrics: Arc<Metrics>,
    /// Cluster name to profile name.
    profiles: BTreeMap<String, String>,
}

impl Observer for LiveObserver {
    fn progress(&mut self, p: &Progress<'_>) {
        let state = match p.change {
            Change::Started { .. } => "running".to_string(),
            Change::Ended { outcome, took_s } => {
                let word = match outcome {
                    Outcome::Done => "done",
                    Outcome::Skipped => "skipped",
                    Outcome::Failed(_) => "failed",
                };
                let profile = self
                    .profiles
                    .get(&p.step.cluster)
                    .map(String::as_str)
                    .unwrap_or("");
                self.metrics
                    .step_ended(profile, &p.step.action, word, took_s.max(0) as f64);
                word.to_string()
            }
        };
        let _ = self.events.send(RunEvent {
            run: self.run.load(Ordering::SeqCst),
            kind: "step",
            step: Some(p.step.id.clone()),
            state,
            at: p.at,
            by: None,
        });
    }
}

/// The pause steps of a run that wait for an approval now: the run is paused, the step has not
/// started, has no approval, and every step it follows is settled.
pub fn waiting_for_approval(record: &RunRecord) -> Vec<&PlannedStep> {
    if record.summary.status != RunStatus::Paused {
        return Vec::new();
    }
    let state: BTreeMap<&str, StepState> = record
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.state))
        .collect();
    record
        .plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Pause)
        .filter(|s| state.get(s.id.as_str()) == Some(&StepState::Pending))
        .filter(|s| !record.approvals.iter().any(|a| a.step == s.id))
        .filter(|s| {
            s.after
                .iter()
                .all(|a| state.get(a.as_str()).is_some_and(|st| st.is_settled()))
        })
        .collect()
}
