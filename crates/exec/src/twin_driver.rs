//! The `twin` driver: carries a plan out against the **simulated** digital twin of the site
//! (`ferry-twin`), in virtual time — or paced to real time with a speed factor, for a demo.
//!
//! The world can live in memory (a rehearsal) or in the journal (`ferry apply --driver twin`).
//! In the journal each run has a world of its own, shared with the runs that roll it back: a
//! snapshot under the driver state `twin/run-N` (N the apply run) and a log under the same key
//! of every change the driver made to it since — each step begun, each wait with what ended
//! in it and the time it ended at, each gate given up. The twin is deterministic, so the
//! snapshot and the log replayed give the world back exactly (each wait's outcome and time
//! are checked as they replay). What the driver writes per step is one log entry, whatever the
//! run's length. The log is written, in one durable commit, when `wait` reports an end (before
//! the executor records it) and when a gate is given up; after a crash, a step begun since the
//! last such commit is not in the replayed world and starts again, which is safe because
//! nothing of it had taken effect there. The twin's own record of every step (how many times
//! its effects were applied, how it ended) answers `inspect`.
//!
//! Loading a world replays its log and writes the result as the new snapshot (forgetting the
//! entries it includes, in the same commit), so a resume replays only what happened since the
//! last one. A journal of the ferry before worlds were kept per run has one world under
//! `twin`: a run whose steps it recorded carries on with a copy of it.

use crate::driver::{Driver, DriverError, Inspection, Outcome};
use crate::journal::{Event, Journal, RunId, RunKind};
use ferry_model::{Facts, Plan, PlannedStep, Profile};
use ferry_twin::{StepStatus, World};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Key of the one twin world of a journal written before worlds were kept per run.
pub const TWIN_STATE: &str = "twin";

/// Key of the world of the runs rooted at `root` (an apply run and its rollbacks): its snapshot
/// in the driver state, its log in the driver log.
pub fn world_key(root: RunId) -> String {
    format!("{TWIN_STATE}/run-{root}")
}

/// The run whose world `run` acts on: its parent for a rollback, else itself.
pub fn world_root(journal: &Journal, run: RunId) -> Result<RunId, DriverError> {
    let s = journal.run(run)?;
    Ok(match (s.kind, s.parent) {
        (RunKind::Rollback, Some(p)) => p,
        _ => run,
    })
}

/// What the journal keeps of a twin: its world and the inputs it was built from.
#[derive(Serialize, Deserialize)]
struct Saved {
    input_hash: String,
    world: World,
}

/// One change the driver made to the world, as its log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Op {
    /// `World::begin` of the run's step.
    Begin { run: RunId, step: String },
    /// `wait`: the world advanced until one of the run's steps ended (`ended`) or the deadline
    /// passed; its clock then read `now`.
    Wait {
        run: RunId,
        deadline: Option<i64>,
        ended: Option<(String, Outcome)>,
        now: i64,
    },
    /// `World::cancel` of a gate past its timeout.
    Cancel { run: RunId, step: String },
}

/// Where a persistent twin keeps its world.
struct Store<'j> {
    journal: &'j Journal,
    /// The run whose world this is; `None` until the driver's first run is recorded.
    root: Option<RunId>,
    /// Changes not yet in the journal.
    unsaved: Vec<Op>,
}

pub struct TwinDriver<'j> {
    world: World,
    input_hash: String,
    store: Option<Store<'j>>,
    /// Virtual seconds per real second; `None`: as fast as possible.
    speed: Option<f64>,
}

impl<'j> TwinDriver<'j> {
    /// A twin in memory (a rehearsal).
    pub fn new(world: World) -> TwinDriver<'static> {
        TwinDriver {
            world,
            input_hash: String::new(),
            store: None,
            speed: None,
        }
    }

    /// The twin of the runs rooted at `root` kept in `journal`, or a new one from `build`: for a
    /// new run (`root` is `None`: its world is saved once the run is recorded), or for a run
    /// whose world is not in the journal yet and none of whose steps ended. A run with ended
    /// steps and no world, or whose world was built for other inputs, is an error.
    pub fn persistent(
        journal: &'j Journal,
        root: Option<RunId>,
        input_hash: &str,
        profiles: &BTreeMap<String, Profile>,
        build: impl FnOnce() -> Result<World, ferry_twin::TwinError>,
    ) -> Result<TwinDriver<'j>, DriverError> {
        let built = |w: Result<World, ferry_twin::TwinError>| {
            w.map_err(|e| DriverError::Other(e.to_string()))
        };
        let world = match root {
            None => built(build())?,
            Some(r) => match load(journal, r, Some(input_hash), profiles, true)? {
                Some(w) => w,
                None if lineage_has_ended(journal, r)? => {
                    return Err(DriverError::Other(format!(
                        "the twin's world of run {r} is not in the journal {}, though steps of \
it ended (the ferry before this one kept one world per state directory, and another run's \
replaced it): the twin cannot carry run {r} on; start a new run",
                        journal.path().display()
                    )))
                }
                None => {
                    // Nothing of the run took effect: a world as built, saved before use.
                    let text = snapshot(input_hash, &built(build())?)?;
                    journal.put_driver_state_if_absent(&world_key(r), &text)?;
                    load(journal, r, Some(input_hash), profiles, false)?.ok_or_else(|| {
                        DriverError::Other(format!("the twin's world of run {r} vanished"))
                    })?
                }
            },
        };
        Ok(TwinDriver {
            world,
            input_hash: input_hash.to_string(),
            store: Some(Store {
                journal,
                root,
                unsaved: Vec::new(),
            }),
            speed: None,
        })
    }

    /// The twin of a site's runs kept in `journal` (`persistent`), its world built, when none
    /// is kept, from the site, the profiles it uses, the upgrade `plan`, `faults` and `seed`:
    /// what `ferry apply --driver twin` and `ferry serve` both carry a run out with.
    #[allow(clippy::too_many_arguments)]
    pub fn for_site(
        journal: &'j Journal,
        root: Option<RunId>,
        input_hash: &str,
        site: &ferry_model::Site,
        profiles: &BTreeMap<String, Profile>,
        plan: &ferry_model::Plan,
        faults: &ferry_model::Faults,
        seed: u64,
    ) -> Result<TwinDriver<'j>, DriverError> {
        TwinDriver::persistent(journal, root, input_hash, profiles, || {
            World::build(site, profiles, plan, faults, seed)
        })
    }

    /// Makes `run` the root of a new world and saves the world as it is, the snapshot its log
    /// starts from; the driver then carries on with the world read back from that snapshot,
    /// as a replay would (nothing the snapshot leaves out can make them differ).
    fn bind(&mut self, run: RunId) -> Result<(), DriverError> {
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        if store.root.is_some() {
            return Ok(());
        }
        store.root = Some(run);
        let text = snapshot(&self.input_hash, &self.world)?;
        store
            .journal
            .checkpoint_driver_state(&world_key(run), &text, None)?;
        let profiles = std::mem::take(&mut self.world.profiles);
        let mut again: Saved = serde_json::from_str(&text)
            .map_err(|e| DriverError::Other(format!("the saved twin cannot be read: {e}")))?;
        again.world.profiles = profiles;
        self.world = again.world;
        Ok(())
    }

    /// Paces virtual time: `speed` virtual seconds pass per real second.
    pub fn with_speed(mut self, speed: Option<f64>) -> Self {
        self.speed = speed.filter(|s| *s > 0.0);
        self
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn into_world(self) -> World {
        self.world
    }

    /// Keeps a change for the log; before the first change of a new run's world, saves the
    /// world as it was built (the snapshot the log starts from).
    fn log(&mut self, run: RunId, op: Op) -> Result<(), DriverError> {
        self.bind(run)?;
        if let Some(store) = &mut self.store {
            store.unsaved.push(op);
        }
        Ok(())
    }

    /// Hands the changes kept since the last time to the journal, as one log entry written in
    /// the same commit as the next step events the executor records: the end `wait` reports
    /// (or the gate it gives up) is durable in the log when, and only when, the executor has
    /// recorded it.
    fn flush(&mut self) -> Result<(), DriverError> {
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        let (Some(root), false) = (store.root, store.unsaved.is_empty()) else {
            return Ok(());
        };
        let entry = serde_json::to_string(&store.unsaved)
            .map_err(|e| DriverError::Other(format!("cannot log the twin's changes: {e}")))?;
        store.journal.stage_driver_log(&world_key(root), entry);
        store.unsaved.clear();
        Ok(())
    }
}

impl Drop for Store<'_> {
    /// What the executor did not commit is lost with the driver, as in a crash: a driver that
    /// loads the world again must not find it written after its own snapshot.
    fn drop(&mut self) {
        if let Some(root) = self.root {
            self.journal.discard_staged(&world_key(root));
        }
    }
}

/// The world as a snapshot's text.
fn snapshot(input_hash: &str, world: &World) -> Result<String, DriverError> {
    #[derive(Serialize)]
    struct SavedRef<'a> {
        input_hash: &'a str,
        world: &'a World,
    }
    serde_json::to_string(&SavedRef { input_hash, world })
        .map_err(|e| DriverError::Other(format!("cannot save the twin: {e}")))
}

fn read_saved(text: &str, profiles: &BTreeMap<String, Profile>) -> Result<Saved, DriverError> {
    let mut s: Saved = serde_json::from_str(text)
        .map_err(|e| DriverError::Other(format!("the saved twin cannot be read: {e}")))?;
    s.world
        .attach(profiles)
        .map_err(|e| DriverError::Other(e.to_string()))?;
    Ok(s)
}

/// Whether a step of run `root`, or of a rollback of it, ended.
fn lineage_has_ended(journal: &Journal, root: RunId) -> Result<bool, DriverError> {
    let mut runs = vec![root];
    runs.extend(
        journal
            .runs()?
            .into_iter()
            .filter(|r| r.kind == RunKind::Rollback && r.parent == Some(root))
            .map(|r| r.id),
    );
    for r in runs {
        if journal.events(r)?.iter().any(|e| e.event != Event::Started) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The world of the runs rooted at `root`: its snapshot with its log replayed (written back as
/// the new snapshot when `compact`), or a copy of the world a journal of an older ferry kept
/// for every run, when that world recorded steps of these runs. `None`: no world for them.
fn load(
    journal: &Journal,
    root: RunId,
    input_hash: Option<&str>,
    profiles: &BTreeMap<String, Profile>,
    compact: bool,
) -> Result<Option<World>, DriverError> {
    let key = world_key(root);
    let check_hash = |saved: &Saved| match input_hash {
        Some(h) if saved.input_hash != h => Err(DriverError::Other(format!(
            "the twin's world of run {root} was built for other inputs (hash {}) than the run's \
({h}): the journal was changed",
            saved.input_hash
        ))),
        _ => Ok(()),
    };
    let Some(text) = journal.driver_state(&key)? else {
        // A journal of the ferry before worlds were kept per run.
        let Some(text) = journal.driver_state(TWIN_STATE)? else {
            return Ok(None);
        };
        let saved = read_saved(&text, profiles)?;
        let runs: std::collections::BTreeSet<RunId> =
            saved.world.records.keys().map(|(run, _)| *run).collect();
        let seen = runs
            .into_iter()
            .any(|run| world_root(journal, run).is_ok_and(|r| r == root));
        if !seen || input_hash.is_some_and(|h| h != saved.input_hash) {
            return Ok(None);
        }
        if compact && !journal.is_read_only() {
            journal.put_driver_state_if_absent(&key, &text)?;
        }
        return Ok(Some(saved.world));
    };
    let saved = read_saved(&text, profiles)?;
    check_hash(&saved)?;
    let mut world = saved.world;
    let log = journal.driver_log(&key)?;
    let mut plans = Plans::new(journal);
    for (seq, entry) in &log {
        let ops: Vec<Op> = serde_json::from_str(entry).map_err(|e| {
            DriverError::Other(format!(
                "the twin's log of run {root} (entry {seq}) cannot be read: {e}"
            ))
        })?;
        for op in ops {
            replay(&mut world, op, &mut plans).map_err(|e| {
                DriverError::Other(format!(
                    "the twin's log of run {root} (entry {seq}) does not replay as it was \
recorded: {e}; the journal was changed, or written by a ferry whose twin behaves otherwise"
                ))
            })?;
        }
    }
    if let (true, Some((last, _))) = (compact && !journal.is_read_only(), log.last()) {
        let text = snapshot(&saved.input_hash, &world)?;
        journal.checkpoint_driver_state(&key, &text, Some(*last))?;
        // Carried on from the snapshot as read back, as a later replay will be.
        world = read_saved(&text, profiles)?.world;
    }
    Ok(Some(world))
}

/// The plans of the runs a log names, read from the journal once each.
struct Plans<'j> {
    journal: &'j Journal,
    by_run: HashMap<RunId, (Plan, HashMap<String, usize>)>,
}

impl<'j> Plans<'j> {
    fn new(journal: &'j Journal) -> Plans<'j> {
        Plans {
            journal,
            by_run: HashMap::new(),
        }
    }

    fn step(&mut self, run: RunId, id: &str) -> Result<&PlannedStep, String> {
        if !self.by_run.contains_key(&run) {
            let plan = self.journal.plan(run).map_err(|e| e.to_string())?;
            let index = plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect();
            self.by_run.insert(run, (plan, index));
        }
        let (plan, index) = &self.by_run[&run];
        index
            .get(id)
            .map(|&i| &plan.steps[i])
            .ok_or_else(|| format!("run {run} has no step `{id}`"))
    }
}

/// Carries one logged change out again, checking that a wait ends as it did.
fn replay(world: &mut World, op: Op, plans: &mut Plans<'_>) -> Result<(), String> {
    match op {
        Op::Begin { run, step } => world.begin(run, plans.step(run, &step)?),
        Op::Wait {
            run,
            deadline,
            ended,
            now,
        } => {
            let again = advance(world, run, deadline);
            if again != ended || world.now != now {
                return Err(format!(
                    "a wait of run {run} ended {} at {}, the log says {} at {now}",
                    ended_text(&again),
                    world.now,
                    ended_text(&ended)
                ));
            }
        }
        Op::Cancel { run, step } => world.cancel(run, &step),
    }
    Ok(())
}

fn ended_text(e: &Option<(String, Outcome)>) -> String {
    match e {
        None => "nothing".into(),
        Some((id, o)) => format!("{id} ({o:?})"),
    }
}

/// Moves the world on until one of `run`'s steps ends or `deadline` passes.
fn advance(world: &mut World, run: RunId, deadline: Option<i64>) -> Option<(String, Outcome)> {
    loop {
        match world.advance(deadline) {
            Some((r, id, o)) if r == run => break Some((id, o)),
            // A step of another run (it cannot happen in one process; ignore it).
            Some(_) => continue,
            None => break None,
        }
    }
}

/// The twin world of the runs `run` belongs to, as saved in the journal (its log replayed),
/// with `profiles` attached; the journal is not written. `None`: no world is saved for them.
pub fn saved_world(
    journal: &Journal,
    run: RunId,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Option<World>, DriverError> {
    let root = world_root(journal, run)?;
    load(journal, root, None, profiles, false)
}

/// As `saved_world`, with the profiles of the run's stored inputs.
pub fn run_world(journal: &Journal, run: RunId) -> Result<Option<World>, DriverError> {
    let inputs = journal
        .inputs(run)?
        .ok_or_else(|| DriverError::Other(format!("run {run} has no stored inputs")))?;
    let (set, site) =
        crate::rollback::load_inputs(&inputs).map_err(|e| DriverError::Other(e.to_string()))?;
    // Each profile copied once, however many clusters use it.
    let mut profiles = std::collections::BTreeMap::new();
    for c in &site.clusters {
        if !profiles.contains_key(&c.profile) {
            if let Some(p) = set.get(&c.profile) {
                profiles.insert(c.profile.clone(), p.profile.clone());
            }
        }
    }
    saved_world(journal, run, &profiles)
}

impl Driver for TwinDriver<'_> {
    fn now(&self) -> i64 {
        self.world.now
    }

    /// A new run's world is saved as built, before anything of the run starts.
    fn attach_run(&mut self, run: RunId) -> Result<(), DriverError> {
        self.bind(run)
    }

    /// Begins the step in the world. It is logged with the next write (when a step ends or a
    /// gate is given up), not here: after a crash a step the replayed world has not seen
    /// begins again, which is safe because nothing of it had taken effect there.
    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        self.log(
            run,
            Op::Begin {
                run,
                step: step.id.clone(),
            },
        )?;
        self.world.begin(run, step);
        Ok(())
    }

    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        let before = self.world.now;
        // With nothing under way (waiting for the booked window to open), virtual time jumps
        // to the deadline at once, even when paced.
        let idle = self.world.running().next().is_none();
        // Logged before the world moves (a new run's first change saves the world as built).
        self.log(
            run,
            Op::Wait {
                run,
                deadline,
                ended: None,
                now: before,
            },
        )?;
        let ended = advance(&mut self.world, run, deadline);
        if let Some(Op::Wait {
            ended: e, now: n, ..
        }) = self.store.as_mut().and_then(|s| s.unsaved.last_mut())
        {
            *e = ended.clone();
            *n = self.world.now;
        }
        if let Some(speed) = self.speed.filter(|_| !idle) {
            let real = (self.world.now - before) as f64 / speed;
            if real > 0.0 {
                std::thread::sleep(std::time::Duration::from_secs_f64(real.min(3600.0)));
            }
        }
        if ended.is_some() {
            // Written before the executor records the end: what the journal says ended, the
            // replayed world has ended too.
            self.flush()?;
        }
        if ended.is_none() && deadline.is_none() {
            return Err(DriverError::Other(
                "the twin has nothing left to happen while steps are under way".into(),
            ));
        }
        Ok(ended)
    }

    fn cancel(&mut self, run: RunId, step_id: &str) -> Result<(), DriverError> {
        self.log(
            run,
            Op::Cancel {
                run,
                step: step_id.to_string(),
            },
        )?;
        self.world.cancel(run, step_id);
        self.flush()
    }

    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        Ok(match self.world.status(run, &step.id) {
            None => Inspection::NotStarted,
            Some(StepStatus::Running) => Inspection::Running,
            Some(StepStatus::Ended(o)) => Inspection::Ended(o),
        })
    }

    fn observe(&mut self) -> Result<BTreeMap<String, Facts>, DriverError> {
        Ok(self.world.observe())
    }
}
