//! The executor, its journal, the manual driver and the rollback planner, driven through real
//! example plans and small made-up ones by a scripted driver with a virtual clock: order and
//! every limit kind on the recorded timeline, gate timeouts, pauses and approvals, retries, the
//! failure policies, the window check, crash recovery for every `Inspection`, estimates from
//! observed durations, and the upgrade of an old journal file.

use ferry_exec::{
    apply, medians, parse_answer, restrict, resume, rollback_plan, Answer, Driver, DriverError,
    Event, ExecError, FailurePolicy, Input, Inspection, Journal, ManualDriver, NewRun, Options,
    Outcome, Report, RollbackScope, RunId, RunInputs, RunKind, RunStatus, StepState,
};
use ferry_model::plan::{LimitGroup, Load};
use ferry_model::{Estimate, Phase, Plan, PlannedStep, StepKind};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// A state directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("ferry-exec-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------------------------------------
// The scripted driver
// ------------------------------------------------------------------------------------------

/// The world the scripted driver acts on; shared by the drivers of one test so that a "crash"
/// (dropping the executor and its driver) leaves it as it was.
#[derive(Default)]
struct World {
    now: i64,
    /// Started steps and the virtual time they end (`None`: never, until cancelled).
    running: BTreeMap<String, Option<i64>>,
    /// Ended steps and how (the driver's own record, read by `inspect`).
    ended: HashMap<String, Outcome>,
    /// Ends to report on the next `wait` (a start of a step that had already ended).
    to_report: VecDeque<(String, Outcome)>,
    /// How many times each step was applied (took effect).
    applied: HashMap<String, u32>,
    /// Every attempt that took effect: (step, start, end).
    timeline: Vec<(String, i64, i64)>,
    /// The step whose start the driver failed at.
    crashed_at: Option<String>,
    started_at: HashMap<String, i64>,
    cancelled: Vec<String>,
}

/// How the scripted driver behaves.
#[derive(Default, Clone)]
struct Script {
    /// Per step: seconds it takes (else its planned duration, at least 1 s).
    durations: HashMap<String, i64>,
    /// Per step: the outcome of each attempt in turn (else done).
    outcomes: HashMap<String, Vec<Outcome>>,
    /// Steps that never end by themselves.
    hang: BTreeSet<String>,
    /// Fail (outcome unknown) at this start, counting from 1; `true`: after applying the step.
    crash_at_start: Option<(usize, bool)>,
}

struct ScriptDriver {
    world: Rc<RefCell<World>>,
    script: Script,
    starts: usize,
}

impl ScriptDriver {
    fn new(world: &Rc<RefCell<World>>, script: Script) -> ScriptDriver {
        ScriptDriver {
            world: world.clone(),
            script,
            starts: 0,
        }
    }
}

impl Driver for ScriptDriver {
    fn now(&self) -> i64 {
        self.world.borrow().now
    }

    fn start(&mut self, _run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        self.starts += 1;
        let crash = self.script.crash_at_start;
        if crash.is_some_and(|c| c.0 == self.starts) {
            self.world.borrow_mut().crashed_at = Some(step.id.clone());
        }
        if crash == Some((self.starts, false)) {
            return Err(DriverError::Other(
                "lost the connection before applying".into(),
            ));
        }
        let mut w = self.world.borrow_mut();
        if w.running.contains_key(&step.id) {
            return Ok(());
        }
        if let Some(o) = w.ended.get(&step.id).cloned() {
            if !matches!(o, Outcome::Failed(_)) {
                w.to_report.push_back((step.id.clone(), o));
                return Ok(());
            }
        }
        *w.applied.entry(step.id.clone()).or_default() += 1;
        let now = w.now;
        let end = (!self.script.hang.contains(&step.id)).then(|| {
            now + self
                .script
                .durations
                .get(&step.id)
                .copied()
                .unwrap_or(step.duration_s as i64)
                .max(1)
        });
        w.running.insert(step.id.clone(), end);
        w.started_at.insert(step.id.clone(), now);
        w.ended.remove(&step.id);
        if crash == Some((self.starts, true)) {
            return Err(DriverError::Other(
                "lost the connection after applying".into(),
            ));
        }
        Ok(())
    }

    fn wait(
        &mut self,
        _run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        let mut w = self.world.borrow_mut();
        if let Some(r) = w.to_report.pop_front() {
            return Ok(Some(r));
        }
        let next = w
            .running
            .iter()
            .filter_map(|(id, end)| end.map(|e| (e, id.clone())))
            .min();
        match (next, deadline) {
            (Some((end, _)), Some(d)) if d < end => {
                w.now = w.now.max(d);
                Ok(None)
            }
            (None, Some(d)) => {
                w.now = w.now.max(d);
                Ok(None)
            }
            (None, None) => Err(DriverError::Other("nothing is running".into())),
            (Some((end, id)), _) => {
                w.now = end;
                w.running.remove(&id);
                let attempt = w.applied[&id] as usize;
                let outcome = self
                    .script
                    .outcomes
                    .get(&id)
                    .and_then(|v| v.get(attempt - 1).cloned())
                    .unwrap_or(Outcome::Done);
                let start = w.started_at[&id];
                w.timeline.push((id.clone(), start, end));
                w.ended.insert(id.clone(), outcome.clone());
                Ok(Some((id, outcome)))
            }
        }
    }

    fn cancel(&mut self, _run: RunId, step_id: &str) -> Result<(), DriverError> {
        let mut w = self.world.borrow_mut();
        w.running.remove(step_id);
        w.cancelled.push(step_id.to_string());
        Ok(())
    }

    fn inspect(&mut self, _run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        let w = self.world.borrow();
        Ok(if let Some(o) = w.ended.get(&step.id) {
            Inspection::Ended(o.clone())
        } else if w.running.contains_key(&step.id) {
            Inspection::Running
        } else {
            Inspection::NotStarted
        })
    }
}

impl World {
    /// Lets every running step end (done) without anyone recording it: what happens to the
    /// world while the executor is down.
    fn finish_running(&mut self) {
        for (id, end) in std::mem::take(&mut self.running) {
            let end = end.unwrap_or(self.now);
            self.now = self.now.max(end);
            let start = self.started_at[&id];
            self.timeline.push((id.clone(), start, end));
            self.ended.insert(id, Outcome::Done);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Plans
// ------------------------------------------------------------------------------------------

fn example_text(name: &str) -> String {
    let path = format!("{}/../../examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn example_plan_with(name: &str, opts: &PlanOptions) -> Plan {
    let text = example_text(name);
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site(name, &text, &set).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        format!("hash-of-{name}"),
        opts,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn example_plan(name: &str) -> Plan {
    example_plan_with(name, &PlanOptions::default())
}

/// The inputs `ferry apply` stores for an example: its text and the built-in profiles it uses.
fn example_inputs(name: &str) -> RunInputs {
    site_inputs(name, &example_text(name))
}

/// The inputs `ferry apply` stores for a site text named `name`.
fn site_inputs(name: &str, text: &str) -> RunInputs {
    let text = text.to_string();
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site(name, &text, &set).expect("site");
    RunInputs {
        site_name: name.to_string(),
        site_text: text,
        profiles: site
            .clusters
            .iter()
            .map(|c| {
                (
                    c.profile.clone(),
                    set.get(&c.profile).expect("p").text.clone(),
                )
            })
            .collect(),
        strategy: None,
    }
}

/// A made-up step: (id, after, seconds, kind).
fn step(id: &str, after: &[&str], secs: u64, kind: StepKind) -> PlannedStep {
    let (cluster, node) = match id.split('/').collect::<Vec<_>>()[..] {
        [c, n, _] => (c.to_string(), Some(n.to_string())),
        [c, _] => (c.to_string(), None),
        _ => ("c".to_string(), None),
    };
    PlannedStep {
        id: id.to_string(),
        cluster,
        node,
        role: None,
        action: id.rsplit('/').next().unwrap_or(id).to_string(),
        title: format!("title of {id}"),
        kind,
        phase: Phase::Window,
        after: after.iter().map(|s| s.to_string()).collect(),
        rules: vec!["T-01".into()],
        start_s: 0,
        duration_s: secs,
        estimate: Estimate::Profile,
        spread: None,
        impact: ferry_model::Impact::None,
        impact_note: String::new(),
        instructions: format!("do {id}"),
        verify: String::new(),
        warning: None,
        version: None,
        effects: Vec::new(),
        retries: 0,
        timeout_s: None,
        rollback: false,
    }
}

fn made_up(steps: Vec<PlannedStep>, limits: Vec<LimitGroup>) -> Plan {
    let mut p = example_plan("linux-ha-pair");
    p.steps = steps;
    p.limits = limits;
    p.window = None;
    p.window_s = None;
    p
}

fn limit(rule: &str, steps: &[&str], max: Option<u32>) -> LimitGroup {
    LimitGroup {
        rule: rule.into(),
        note: String::new(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        max_concurrent: max,
        capacity: None,
        loads: Vec::new(),
        base: BTreeMap::new(),
    }
}

// ------------------------------------------------------------------------------------------
// Running and checking
// ------------------------------------------------------------------------------------------

struct Ran {
    report: Report,
    world: Rc<RefCell<World>>,
    journal: Journal,
}

fn run_with(plan: &Plan, script: Script, opts: &Options) -> Ran {
    let journal = Journal::in_memory().expect("journal");
    let world = Rc::new(RefCell::new(World {
        now: 1_000_000,
        ..World::default()
    }));
    let mut d = ScriptDriver::new(&world, script);
    let report = apply(&journal, plan, &NewRun::default(), &mut d, opts, &mut ())
        .unwrap_or_else(|e| panic!("apply: {e}"));
    Ran {
        report,
        world,
        journal,
    }
}

fn run(plan: &Plan, opts: &Options) -> Ran {
    run_with(plan, Script::default(), opts)
}

/// Every edge, every limit and the parallel cap hold on the recorded timeline.
fn assert_timeline_keeps_the_rules(plan: &Plan, timeline: &[(String, i64, i64)], cap: usize) {
    let when: HashMap<&str, (i64, i64)> = timeline
        .iter()
        .map(|(id, s, e)| (id.as_str(), (*s, *e)))
        .collect();
    for s in &plan.steps {
        let Some(&(start, _)) = when.get(s.id.as_str()) else {
            continue;
        };
        for a in &s.after {
            let (_, end) = when
                .get(a.as_str())
                .unwrap_or_else(|| panic!("`{}` ran but `{a}` before it did not", s.id));
            assert!(*end <= start, "`{}` started before `{a}` ended", s.id);
        }
    }
    // Sweep: at each start, what runs (ends at the same instant come first).
    let mut events: Vec<(i64, bool, &str)> = Vec::new();
    for (id, s, e) in timeline {
        events.push((*s, true, id));
        events.push((*e, false, id));
    }
    events.sort_by_key(|&(t, starting, id)| (t, starting, id));
    let mut now: BTreeSet<&str> = BTreeSet::new();
    for (t, starting, id) in events {
        if !starting {
            now.remove(id);
            continue;
        }
        now.insert(id);
        assert!(
            now.len() <= cap,
            "at {t}: {} steps run, cap {cap}",
            now.len()
        );
        for g in &plan.limits {
            if let Some(m) = g.max_concurrent {
                let n = now
                    .iter()
                    .filter(|r| g.steps.iter().any(|x| x == *r))
                    .count();
                assert!(n <= m as usize, "at {t}: limit {} runs {n} > {m}", g.rule);
            }
            if let Some(cap) = g.capacity {
                let mut per: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
                for l in g.loads.iter().filter(|l| now.contains(l.step.as_str())) {
                    let e = per.entry(l.partition.as_str()).or_default();
                    e.0 += l.weight;
                    e.1 += 1;
                }
                for (part, (load, members)) in per {
                    let base = g.base.get(part).copied().unwrap_or(0.0);
                    assert!(
                        members == 1 || base + load <= cap + 1e-9,
                        "at {t}: {} on {part} carries {} > {cap} with {members} steps",
                        g.rule,
                        base + load
                    );
                }
            }
        }
    }
}

fn max_overlap(timeline: &[(String, i64, i64)]) -> usize {
    let mut events: Vec<(i64, i32)> = Vec::new();
    for (_, s, e) in timeline {
        events.push((*s, 1));
        events.push((*e, -1));
    }
    events.sort();
    let (mut n, mut best) = (0i32, 0i32);
    for (_, d) in events {
        n += d;
        best = best.max(n);
    }
    best as usize
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn journal_round_trip_durability_and_in_memory() {
    let dir = TempDir::new("journal");
    let plan = example_plan("linux-ha-pair");
    let first = &plan.steps[0].id;
    let inputs = example_inputs("linux-ha-pair");
    let new = NewRun {
        kind: RunKind::Apply,
        parent: None,
        driver: "manual".into(),
        inputs: Some(inputs.clone()),
        ignore_window: false,
        supersede: false,
        by: None,
    };
    let run = {
        let j = Journal::open(&dir.0).expect("open");
        assert_eq!(j.durability().expect("pragmas"), ("wal".to_string(), 2));
        assert!(dir.0.join("journal.sqlite").exists());
        let run = j.create_run(&plan, 100, &new).expect("start run");
        j.record(run, first, Event::Started, 101, "")
            .expect("started");
        j.answer(run, first, &Answer::Failed("disk full".into()), 102)
            .expect("answer");
        j.approve(run, first, "operator", 103).expect("approve");
        j.put_driver_state("twin/world", "{\"v\":1}")
            .expect("state");
        j.put_driver_state("twin/world", "{\"v\":2}")
            .expect("state");
        run
    };
    // Reopened: everything is still there.
    let j = Journal::open(&dir.0).expect("reopen");
    assert_eq!(j.durability().expect("pragmas"), ("wal".to_string(), 2));
    assert_eq!(j.plan(run).expect("plan"), plan);
    assert_eq!(j.inputs(run).expect("inputs"), Some(inputs));
    let summary = j.run(run).expect("run");
    assert_eq!(
        (summary.kind, summary.parent, summary.driver.as_str()),
        (RunKind::Apply, None, "manual")
    );
    assert_eq!((summary.created, summary.status), (100, RunStatus::Running));
    assert_eq!(
        j.answer_for(run, first).expect("answer"),
        Some(Answer::Failed("disk full".into()))
    );
    assert_eq!(j.approvals(run).expect("approvals")[0].step, *first);
    assert_eq!(
        j.driver_state("twin/world").expect("state").as_deref(),
        Some("{\"v\":2}")
    );
    assert_eq!(j.driver_state("other").expect("state"), None);
    let steps = j.steps(run).expect("steps");
    assert_eq!(
        (steps[0].state, steps[0].started, steps[0].attempts),
        (StepState::Running, Some(101), 1)
    );
    // A failure clears the answer, so a retry waits for a new one.
    j.record(run, first, Event::Failed, 104, "disk full")
        .expect("failed");
    assert_eq!(j.answer_for(run, first).expect("answer"), None);
    assert_eq!(j.steps(run).expect("steps")[0].detail, "disk full");
    assert!(matches!(
        j.run(run + 1),
        Err(ferry_exec::JournalError::NoRun(_))
    ));

    // A run being carried out is locked; a second lock is refused until the first is dropped.
    let lock = j.lock_run(run).expect("lock");
    let other = Journal::open(&dir.0).expect("second connection");
    assert!(other.run_is_active(run).expect("active"));
    assert!(matches!(
        other.lock_run(run),
        Err(ferry_exec::JournalError::Busy { .. })
    ));
    drop(lock);
    assert!(!other.run_is_active(run).expect("active"));

    // In memory: the same schema, nothing on disk, never locked.
    let m = Journal::in_memory().expect("in memory");
    let r = m.create_run(&plan, 5, &new).expect("run");
    assert_eq!(m.run(r).expect("run").driver, "manual");
    assert!(!m.run_is_active(r).expect("active"));
    m.approve(r, first, "x", 6).expect("approve");
    assert_eq!(m.path(), std::path::Path::new(":memory:"));
}

/// The schema a ferry wrote before schema versions (rusqlite_migration) began: the tables as
/// they were created then, the `runs` columns added to them with `ALTER TABLE`, and
/// `user_version` never set.
const UNVERSIONED_SCHEMA: &str = "
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL,
    input_hash TEXT NOT NULL, plan TEXT NOT NULL, created INTEGER NOT NULL, status TEXT NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL REFERENCES runs(id), step TEXT NOT NULL, event TEXT NOT NULL,
    time INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '');
CREATE INDEX events_run_step ON events(run, step);
CREATE TABLE answers (run INTEGER NOT NULL REFERENCES runs(id), step TEXT NOT NULL,
    answer TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', time INTEGER NOT NULL,
    PRIMARY KEY (run, step));
CREATE TABLE approvals (run INTEGER NOT NULL REFERENCES runs(id), step TEXT NOT NULL,
    time INTEGER NOT NULL, by TEXT NOT NULL DEFAULT 'operator', PRIMARY KEY (run, step));
CREATE TABLE driver_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE run_plans (run INTEGER PRIMARY KEY REFERENCES runs(id), plan TEXT NOT NULL);
CREATE TABLE driver_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,
    entry TEXT NOT NULL);
CREATE INDEX driver_log_key ON driver_log(key, seq);
CREATE TABLE answer_log (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL REFERENCES runs(id), step TEXT NOT NULL, answer TEXT NOT NULL,
    time INTEGER NOT NULL, by TEXT NOT NULL DEFAULT '', early INTEGER NOT NULL DEFAULT 0);
CREATE INDEX answer_log_run ON answer_log(run, step);
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'apply';
ALTER TABLE runs ADD COLUMN parent INTEGER;
ALTER TABLE runs ADD COLUMN driver TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN inputs TEXT;
ALTER TABLE runs ADD COLUMN rollback TEXT;
ALTER TABLE runs ADD COLUMN message TEXT;
ALTER TABLE runs ADD COLUMN ignore_window INTEGER;
ALTER TABLE runs ADD COLUMN superseded_by INTEGER;
ALTER TABLE runs ADD COLUMN started_by TEXT;
PRAGMA application_id = 1718776441;
";

fn user_version(dir: &std::path::Path) -> i64 {
    rusqlite::Connection::open(dir.join("journal.sqlite"))
        .expect("sqlite")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

/// A journal written before schema versions opens, takes version 1 (rusqlite_migration's
/// `user_version`), keeps its runs and steps, and opens again unchanged; a new journal starts
/// at the latest version.
#[test]
fn a_journal_without_schema_version_is_migrated() {
    let dir = TempDir::new("unversioned");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let plan = example_plan("linux-ha-pair");
    {
        let c = rusqlite::Connection::open(dir.0.join("journal.sqlite")).expect("sqlite");
        c.execute_batch(UNVERSIONED_SCHEMA)
            .expect("unversioned schema");
        c.execute(
            "INSERT INTO runs (site, input_hash, plan, created, status, kind, driver, started_by)
             VALUES (?1, ?2, ?3, 7, 'paused', 'apply', 'manual', 'ines')",
            rusqlite::params![
                plan.site,
                plan.input_hash,
                serde_json::to_string(&plan).expect("json")
            ],
        )
        .expect("run");
        c.execute(
            "INSERT INTO events (run, step, event, time) VALUES (1, ?1, 'started', 8), (1, ?1, 'done', 9)",
            rusqlite::params![plan.steps[0].id],
        )
        .expect("events");
    }
    assert_eq!(user_version(&dir.0), 0);
    for _ in 0..2 {
        let j = Journal::open(&dir.0).expect("migrated");
        let run = j.run(1).expect("run");
        assert_eq!(
            (run.driver.as_str(), run.status, run.started_by.as_deref()),
            ("manual", RunStatus::Paused, Some("ines"))
        );
        assert_eq!(j.steps(1).expect("steps")[0].state, StepState::Done);
        drop(j);
        assert_eq!(user_version(&dir.0), 1);
    }
    let fresh = TempDir::new("versioned");
    drop(Journal::open(&fresh.0).expect("new journal"));
    assert_eq!(user_version(&fresh.0), 1);
    // A journal of a newer ferry (a higher version) is refused, saying so.
    rusqlite::Connection::open(fresh.0.join("journal.sqlite"))
        .expect("sqlite")
        .execute_batch("PRAGMA user_version = 99")
        .expect("ahead");
    let e = Journal::open(&fresh.0).err().expect("refused").to_string();
    assert!(e.contains("newer ferry"), "{e}");
}

#[test]
fn an_old_journal_file_is_upgraded_in_place() {
    let dir = TempDir::new("upgrade");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let plan = example_plan("linux-ha-pair");
    {
        // The schema of the first ferry-exec: no kind, parent, driver, inputs; no approvals.
        let c = rusqlite::Connection::open(dir.0.join("journal.sqlite")).expect("sqlite");
        c.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL,
                input_hash TEXT NOT NULL, plan TEXT NOT NULL, created INTEGER NOT NULL,
                status TEXT NOT NULL);
             CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                run INTEGER NOT NULL REFERENCES runs(id), step TEXT NOT NULL,
                event TEXT NOT NULL, time INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '');
             CREATE TABLE answers (run INTEGER NOT NULL REFERENCES runs(id), step TEXT NOT NULL,
                answer TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', time INTEGER NOT NULL,
                PRIMARY KEY (run, step));",
        )
        .expect("old schema");
        c.execute(
            "INSERT INTO runs (site, input_hash, plan, created, status) VALUES (?1, ?2, ?3, 7, 'paused')",
            rusqlite::params![plan.site, plan.input_hash, serde_json::to_string(&plan).expect("json")],
        )
        .expect("old run");
        c.execute(
            "INSERT INTO events (run, step, event, time) VALUES (1, ?1, 'started', 8), (1, ?1, 'done', 9)",
            rusqlite::params![plan.steps[0].id],
        )
        .expect("old events");
    }
    let j = Journal::open(&dir.0).expect("upgraded");
    let old = j.run(1).expect("old run");
    assert_eq!(
        (old.kind, old.parent, old.driver.as_str(), old.status),
        (RunKind::Apply, None, "", RunStatus::Paused)
    );
    assert_eq!(j.inputs(1).expect("inputs"), None);
    assert_eq!(j.steps(1).expect("steps")[0].state, StepState::Done);
    // Who started it and who answered is not known of an old run; new answers say it.
    assert_eq!(old.started_by, None);
    assert_eq!(j.steps(1).expect("steps")[0].answered_by, None);
    j.answer_given(
        1,
        &plan.steps[2].id,
        &Answer::Done,
        10,
        &ferry_exec::AnswerGiven {
            by: "ines".into(),
            early: true,
        },
    )
    .expect("answer log table");
    let third = &j.steps(1).expect("steps")[2];
    assert_eq!(
        (third.answered_by.as_deref(), third.early),
        (Some("ines"), true)
    );
    j.approve(1, &plan.steps[1].id, "operator", 10)
        .expect("approvals table");
    let new = j
        .create_run(
            &plan,
            11,
            &NewRun {
                kind: RunKind::Rollback,
                parent: Some(1),
                driver: "manual".into(),
                inputs: None,
                ignore_window: false,
                supersede: false,
                by: Some("hana".into()),
            },
        )
        .expect("new run");
    assert_eq!(j.run(new).expect("run").parent, Some(1));
    assert_eq!(j.run(new).expect("run").started_by.as_deref(), Some("hana"));
    drop(j);
    // Opening again changes nothing more.
    let j = Journal::open(&dir.0).expect("reopened");
    assert_eq!(j.runs().expect("runs").len(), 2);
}

#[test]
fn every_limit_and_edge_holds_on_the_timeline_at_every_parallel_setting() {
    // (example, parallel, at least this many steps at once somewhere)
    let cases: &[(&str, Option<usize>, usize)] = &[
        ("linux-ha-pair", None, 1),
        ("ucm-standard", None, 2),
        ("ucm-parallel", None, 3),
        ("ucm-parallel", Some(2), 2),
        ("genesys-framework", None, 2),
        ("genesys-framework", Some(1), 1),
        ("ccm4-large", None, 2),
        ("ccm4-large", Some(3), 2),
        ("cms-ha", None, 1),
    ];
    for &(name, parallel, overlap) in cases {
        let plan = example_plan(name);
        let opts = Options {
            parallel,
            approve_all: true,
            ..Options::default()
        };
        let r = run(&plan, &opts);
        assert_eq!(
            r.report.status,
            RunStatus::Complete,
            "{name}: {:?}",
            r.report
        );
        assert_eq!(r.report.done, plan.steps.len(), "{name}");
        let w = r.world.borrow();
        assert!(
            plan.steps.iter().all(|s| w.applied.get(&s.id) == Some(&1)),
            "{name}: each step applied once"
        );
        assert_timeline_keeps_the_rules(&plan, &w.timeline, parallel.unwrap_or(usize::MAX));
        let most = max_overlap(&w.timeline);
        assert!(
            most >= overlap,
            "{name} {parallel:?}: at most {most} at once"
        );
        if parallel == Some(1) {
            assert_eq!(most, 1);
        }
        // The journal: each step started once before it ended once.
        let ev = r.journal.events(r.report.run).expect("events");
        assert_eq!(ev.len(), 2 * plan.steps.len(), "{name}");
    }
}

#[test]
fn capacity_limits_keep_the_partition_load_and_let_an_oversized_step_run_alone() {
    // Partition p (base 2, capacity 10): a=5, b=5, c=4 and big=12 (alone over the capacity).
    let steps = vec![
        step("c/n1/a", &[], 100, StepKind::Action),
        step("c/n2/b", &[], 100, StepKind::Action),
        step("c/n3/c", &[], 100, StepKind::Action),
        step("c/n4/big", &[], 100, StepKind::Action),
        step("c/n5/free", &[], 100, StepKind::Action),
    ];
    let mut cap = limit("T-CAP", &["c/n1/a", "c/n2/b", "c/n3/c", "c/n4/big"], None);
    cap.capacity = Some(10.0);
    cap.base = BTreeMap::from([("p".to_string(), 2.0)]);
    cap.loads = [
        ("c/n1/a", 5.0),
        ("c/n2/b", 5.0),
        ("c/n3/c", 4.0),
        ("c/n4/big", 12.0),
    ]
    .iter()
    .map(|(s, w)| Load {
        step: s.to_string(),
        partition: "p".into(),
        weight: *w,
    })
    .collect();
    let plan = made_up(steps, vec![cap]);
    let r = run(&plan, &Options::default());
    assert_eq!(r.report.status, RunStatus::Complete, "{:?}", r.report);
    let w = r.world.borrow();
    assert_timeline_keeps_the_rules(&plan, &w.timeline, usize::MAX);
    let at: HashMap<&str, (i64, i64)> = w
        .timeline
        .iter()
        .map(|(id, s, e)| (id.as_str(), (*s, *e)))
        .collect();
    // `big` overlaps no other member; `free` (not a member) runs from the start.
    let big = at["c/n4/big"];
    for m in ["c/n1/a", "c/n2/b", "c/n3/c"] {
        assert!(at[m].1 <= big.0 || at[m].0 >= big.1, "{m} overlaps big");
    }
    assert_eq!(at["c/n5/free"].0, 1_000_000);
}

/// A sync point (the planner's stand-in for an order rule such as LHA-03 between two large
/// sets of steps) is never the driver's: it is done, started and ended in the journal, as the
/// last step before it ends, and the steps after it start right then, as they would have with
/// an edge from every step before it.
#[test]
fn a_sync_point_passes_without_the_driver_as_the_last_step_before_it_ends_lha_03() {
    let mut sync = step(
        "c/sync-LHA-03",
        &["c/n1/stage", "c/n2/stage"],
        0,
        StepKind::Sync,
    );
    sync.rules = vec!["LHA-03".into()];
    let plan = made_up(
        vec![
            step("c/n1/stage", &[], 10, StepKind::Action),
            step("c/n2/stage", &[], 30, StepKind::Action),
            sync,
            step("c/n1/switch", &["c/sync-LHA-03"], 5, StepKind::Action),
            step("c/n2/switch", &["c/sync-LHA-03"], 5, StepKind::Action),
        ],
        vec![],
    );
    let r = run(&plan, &Options::default());
    assert_eq!(r.report.status, RunStatus::Complete, "{:?}", r.report);
    assert_eq!(r.report.done, 5);
    let w = r.world.borrow();
    assert!(
        !w.applied.contains_key("c/sync-LHA-03"),
        "the driver was asked to start the sync point"
    );
    let start = |id: &str| w.started_at[id];
    // n2's stage is the last to end, at +30.
    assert_eq!(
        (start("c/n1/stage"), start("c/n2/stage")),
        (1_000_000, 1_000_000)
    );
    assert_eq!(start("c/n1/switch"), 1_000_030);
    assert_eq!(start("c/n2/switch"), 1_000_030);
    let ev = r.journal.events(r.report.run).expect("events");
    let sync_events: Vec<(Event, i64)> = ev
        .iter()
        .filter(|e| e.step == "c/sync-LHA-03")
        .map(|e| (e.event, e.time))
        .collect();
    assert_eq!(
        sync_events,
        vec![(Event::Started, 1_000_030), (Event::Done, 1_000_030)]
    );
}

#[test]
fn a_gate_past_its_timeout_is_cancelled_and_fails() {
    let mut gate = step("c/n1/replicated", &["c/n1/install"], 60, StepKind::Gate);
    gate.timeout_s = Some(600);
    let plan = made_up(
        vec![
            step("c/n1/install", &[], 100, StepKind::Action),
            gate,
            step("c/n1/switch", &["c/n1/replicated"], 100, StepKind::Action),
            step("c/n2/other", &[], 5000, StepKind::Action),
        ],
        vec![],
    );
    // (the gate hangs?, status, switch applied?)
    for (hang, status, switched) in [
        (true, RunStatus::Failed, false),
        (false, RunStatus::Complete, true),
    ] {
        let mut script = Script::default();
        if hang {
            script.hang.insert("c/n1/replicated".into());
        }
        let r = run_with(&plan, script, &Options::default());
        assert_eq!(r.report.status, status, "{:?}", r.report);
        let w = r.world.borrow();
        assert_eq!(w.applied.contains_key("c/n1/switch"), switched);
        if hang {
            assert_eq!(r.report.timed_out, vec!["c/n1/replicated".to_string()]);
            assert_eq!(w.cancelled, vec!["c/n1/replicated".to_string()]);
            assert_eq!(
                r.report.failed,
                vec![(
                    "c/n1/replicated".to_string(),
                    "timed out after 600 s".to_string()
                )]
            );
            // Timed out at its deadline, and the step already under way was waited for.
            let failed_at = r
                .journal
                .events(r.report.run)
                .expect("events")
                .into_iter()
                .find(|e| e.event == Event::Failed)
                .expect("failed event")
                .time;
            assert_eq!(failed_at, 1_000_000 + 100 + 600);
            assert!(w.timeline.iter().any(|(id, ..)| id == "c/n2/other"));
        } else {
            assert!(r.report.timed_out.is_empty());
        }
    }
}

#[test]
fn pause_after_stops_once_the_step_is_done_and_resume_continues() {
    let plan = example_plan("linux-ha-pair");
    let point = plan.steps[2].id.clone();
    let journal = Journal::in_memory().expect("journal");
    let world = Rc::new(RefCell::new(World::default()));
    let opts = Options {
        pause_after: vec![point.clone()],
        ..Options::default()
    };
    let mut d = ScriptDriver::new(&world, Script::default());
    let r = apply(&journal, &plan, &NewRun::default(), &mut d, &opts, &mut ()).expect("apply");
    assert_eq!(r.status, RunStatus::Paused);
    assert!(r.message.as_deref().unwrap_or("").contains(&point));
    assert_eq!(journal.run(r.run).expect("run").status, RunStatus::Paused);
    assert!(r.pending > 0);
    let states: HashMap<String, StepState> = journal
        .steps(r.run)
        .expect("steps")
        .into_iter()
        .map(|s| (s.id, s.state))
        .collect();
    assert_eq!(states[&point], StepState::Done);
    // Nothing starts after the pause point is done.
    let point_end = world
        .borrow()
        .timeline
        .iter()
        .find(|t| t.0 == point)
        .expect("point ran")
        .2;
    assert!(world.borrow().timeline.iter().all(|t| t.1 < point_end));

    let mut d2 = ScriptDriver::new(&world, Script::default());
    let r2 = resume(&journal, r.run, &mut d2, &opts, &mut ()).expect("resume");
    assert_eq!(r2.status, RunStatus::Complete);
    let w = world.borrow();
    assert!(plan.steps.iter().all(|s| w.applied[&s.id] == 1));
    assert_timeline_keeps_the_rules(&plan, &w.timeline, usize::MAX);
}

#[test]
fn a_pause_step_waits_for_its_approval() {
    // A real profile pause: the go/no-go call before a parallel refresh.
    let plan = example_plan("ucm-refresh");
    let pause = plan
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Pause)
        .expect("a pause step")
        .id
        .clone();
    // (approve every pause?, approved in the journal before resuming?)
    for approve_all in [false, true] {
        let journal = Journal::in_memory().expect("journal");
        let world = Rc::new(RefCell::new(World::default()));
        let opts = Options {
            approve_all,
            ..Options::default()
        };
        let mut d = ScriptDriver::new(&world, Script::default());
        let r = apply(&journal, &plan, &NewRun::default(), &mut d, &opts, &mut ()).expect("apply");
        if approve_all {
            assert_eq!(r.status, RunStatus::Complete);
            let a = journal.approvals(r.run).expect("approvals");
            assert!(a.iter().any(|a| a.step == pause && a.by == "--approve"));
            continue;
        }
        assert_eq!(r.status, RunStatus::Paused, "{r:?}");
        assert_eq!(r.awaiting_approval.as_deref(), Some(pause.as_str()));
        assert_eq!(
            r.message.as_deref(),
            Some(
                format!(
                    "waiting for approval of {pause}: ferry approve {pause} --run {}",
                    r.run
                )
                .as_str()
            )
        );
        assert!(!world.borrow().applied.contains_key(&pause));
        // Resuming without an approval pauses again, starting nothing new.
        let applied_before = world.borrow().applied.len();
        let mut d2 = ScriptDriver::new(&world, Script::default());
        let again = resume(&journal, r.run, &mut d2, &opts, &mut ()).expect("resume");
        assert_eq!(again.status, RunStatus::Paused);
        assert_eq!(world.borrow().applied.len(), applied_before);
        journal
            .approve(r.run, &pause, "operator", 5)
            .expect("approve");
        let mut d3 = ScriptDriver::new(&world, Script::default());
        let done = resume(&journal, r.run, &mut d3, &opts, &mut ()).expect("resume");
        assert_eq!(done.status, RunStatus::Complete, "{done:?}");
        assert_eq!(world.borrow().applied[&pause], 1);
    }
}

#[test]
fn a_failed_step_with_retries_left_is_started_again() {
    let failed = || Outcome::Failed("service did not start".into());
    // (retries, outcomes of its attempts, status, applications, retried)
    let cases = [
        (2, vec![failed(), failed()], RunStatus::Complete, 3, 2),
        (1, vec![failed(), failed()], RunStatus::Failed, 2, 1),
        (0, vec![failed()], RunStatus::Failed, 1, 0),
        (3, vec![], RunStatus::Complete, 1, 0),
    ];
    for (retries, outcomes, status, applied, retried) in cases {
        let mut flaky = step("c/n1/restart", &["c/n1/install"], 30, StepKind::Action);
        flaky.retries = retries;
        let plan = made_up(
            vec![
                step("c/n1/install", &[], 100, StepKind::Action),
                flaky,
                step("c/n1/check", &["c/n1/restart"], 10, StepKind::Action),
            ],
            vec![],
        );
        let script = Script {
            outcomes: HashMap::from([("c/n1/restart".to_string(), outcomes)]),
            ..Script::default()
        };
        let r = run_with(&plan, script, &Options::default());
        assert_eq!(r.report.status, status, "retries {retries}: {:?}", r.report);
        assert_eq!(r.world.borrow().applied["c/n1/restart"], applied);
        assert_eq!(r.report.retried.len(), retried);
        let steps = r.journal.steps(r.report.run).expect("steps");
        assert_eq!(steps[1].attempts, applied);
    }
}

#[test]
fn each_failure_policy_stops_new_work_and_names_the_rollback_it_wants() {
    let plan = example_plan("ucm-standard");
    let bad = plan
        .steps
        .iter()
        .find(|s| s.node.is_some() && s.phase == Phase::Window)
        .expect("a node step")
        .clone();
    let node = RollbackScope::Node {
        cluster: bad.cluster.clone(),
        node: bad.node.clone().expect("node"),
    };
    for (policy, wanted) in [
        (FailurePolicy::Stop, None),
        (FailurePolicy::RollbackNode, Some(node)),
        (FailurePolicy::RollbackAll, Some(RollbackScope::All)),
    ] {
        let script = Script {
            outcomes: HashMap::from([(bad.id.clone(), vec![Outcome::Failed("boom".into())])]),
            ..Script::default()
        };
        let opts = Options {
            policy,
            approve_all: true,
            ..Options::default()
        };
        let r = run_with(&plan, script, &opts);
        assert_eq!(r.report.status, RunStatus::Failed, "{policy:?}");
        assert_eq!(r.report.failed, vec![(bad.id.clone(), "boom".to_string())]);
        assert_eq!(r.report.rollback, wanted, "{policy:?}");
        let summary = r.journal.run(r.report.run).expect("run");
        assert_eq!(summary.rollback_wanted, wanted);
        assert_eq!(summary.status, RunStatus::Failed);
        // No step starts after the failure; the ones under way were waited for and ended.
        let w = r.world.borrow();
        let failed_at = w.timeline.iter().find(|t| t.0 == bad.id).expect("ran").2;
        assert!(w.timeline.iter().all(|t| t.1 < failed_at), "{policy:?}");
        assert!(w.running.is_empty());
        assert!(r.report.pending > 0);
    }
}

/// The booked window, judged on the driver's clock (the scripted driver starts at 1,000,000 s):
/// `window_end` relative to the start, how long the first window step really takes, and what
/// the run says (`None`: it completes).
#[test]
fn window_work_is_not_started_when_the_booked_window_has_closed_or_is_too_short() {
    let plan = example_plan("linux-ha-pair");
    let first_window = plan
        .steps
        .iter()
        .find(|s| s.phase == Phase::Window)
        .expect("window step")
        .id
        .clone();
    let left = ferry_exec::window::remaining_window_work(&plan, |i| Some(plan.steps[i].duration_s))
        .expect("window work");
    // linux-ha-pair as planned: one chain of 15 minutes.
    assert_eq!(left, 15 * 60);
    // With nothing done, the window work's longest chain is the plan's own lower bound (the
    // order rules alone; limits can only lengthen it).
    for name in [
        "ucm-standard",
        "ucm-refresh",
        "ccm4-large",
        "genesys-framework",
        "cms-ha",
    ] {
        let p = example_plan(name);
        let chain = ferry_exec::window::remaining_window_work(&p, |i| Some(p.steps[i].duration_s))
            .expect("window work");
        assert_eq!(chain, p.lower_bound_s, "{name}");
        // Half of the first step done: the chain is shorter by at most that much.
        let first = p
            .steps
            .iter()
            .position(|s| s.phase == Phase::Window)
            .expect("step");
        let half = p.steps[first].duration_s / 2;
        let less = ferry_exec::window::remaining_window_work(&p, |i| {
            Some(p.steps[i].duration_s - if i == first { half } else { 0 })
        })
        .expect("window work");
        assert!(less <= chain && chain - less <= half, "{name}");
        // Everything settled: nothing left.
        assert_eq!(
            ferry_exec::window::remaining_window_work(&p, |_| None),
            None
        );
    }
    let check = |window_end: Option<i64>, first_takes: Option<i64>, expected: Option<&str>| {
        let mut script = Script::default();
        if let Some(t) = first_takes {
            script.durations.insert(first_window.clone(), t);
        }
        let opts = Options {
            window_end: window_end.map(|e| 1_000_000 + e),
            ..Options::default()
        };
        let r = run_with(&plan, script, &opts);
        let stored = r.journal.run(r.report.run).expect("run").message;
        match expected {
            None => {
                assert_eq!(r.report.status, RunStatus::Complete, "{:?}", r.report);
                assert_eq!(stored, None);
            }
            Some(phrase) => {
                assert_eq!(r.report.status, RunStatus::Stopped);
                let m = r.report.message.clone().unwrap_or_default();
                assert!(m.contains(phrase), "{phrase:?} not in {m}");
                // Dates with their zone, and what to change.
                assert!(m.contains("-05:00") && m.contains("--ignore-window"), "{m}");
                assert_eq!(stored.as_deref(), Some(m.as_str()), "journaled as said");
                let w = r.world.borrow();
                if phrase == "not started" {
                    // Refused at the step: the window's work had begun.
                    assert!(w.applied.contains_key(&first_window), "{m}");
                } else {
                    // Refused before anything: not even the work before the window.
                    assert!(w.applied.is_empty(), "{m}: {:?}", w.applied);
                }
            }
        }
    };
    // Closed before the run: nothing starts.
    check(Some(-1), None, Some("has closed (it is now 1970-01-12"));
    check(Some(0), None, Some("has closed"));
    // Open, but shorter than the work left in it.
    check(
        Some(left as i64 - 1),
        None,
        Some("does not fit in what is left of the booked window"),
    );
    // Long enough as planned; the first window step takes far longer, so a later one would
    // overrun: not started.
    check(
        Some(3 * left as i64),
        Some(3 * left as i64),
        Some("not started"),
    );
    // No window to keep (none booked, or --ignore-window).
    check(None, Some(3 * left as i64), None);
    check(Some(10 * left as i64), None, None);
}

#[test]
fn after_a_crash_nothing_is_applied_twice_and_nothing_is_skipped() {
    // How the world is left by the crash: the step not applied (NotStarted), applied and still
    // under way (Running), applied and ended while nobody recorded it (Ended).
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Left {
        NotStarted,
        Running,
        Ended,
    }
    for name in ["linux-ha-pair", "genesys-framework"] {
        let plan = example_plan(name);
        for crash_at in [1, 2, 5, 8] {
            for left in [Left::NotStarted, Left::Running, Left::Ended] {
                let journal = Journal::in_memory().expect("journal");
                let world = Rc::new(RefCell::new(World::default()));
                let script = Script {
                    crash_at_start: Some((crash_at, left != Left::NotStarted)),
                    ..Script::default()
                };
                let mut d = ScriptDriver::new(&world, script);
                let err = apply(
                    &journal,
                    &plan,
                    &NewRun::default(),
                    &mut d,
                    &Options::default(),
                    &mut (),
                )
                .expect_err("the driver failed");
                let ExecError::Driver { steps, .. } = err else {
                    panic!("{err}")
                };
                let run = journal.latest_run().expect("run");
                assert_eq!(journal.run(run).expect("run").status, RunStatus::Stopped);
                drop(d);
                if left == Left::Ended {
                    world.borrow_mut().finish_running();
                }
                let mut fresh = ScriptDriver::new(&world, Script::default());
                let r = resume(&journal, run, &mut fresh, &Options::default(), &mut ())
                    .expect("resume");
                assert_eq!(r.status, RunStatus::Complete, "{name} {crash_at} {left:?}");
                let w = world.borrow();
                for s in &plan.steps {
                    assert_eq!(
                        w.applied.get(&s.id),
                        Some(&1),
                        "{name} crash at {crash_at} {left:?}: {}",
                        s.id
                    );
                }
                // Every step journaled as started at the crash was inspected (the crashed one,
                // and those started with it but not yet handed to the driver), and said what the
                // world says.
                let inspected: Vec<&String> = r.recovered.iter().map(|x| &x.0).collect();
                assert_eq!(inspected, steps.iter().collect::<Vec<_>>());
                let crashed = w.crashed_at.as_ref().expect("crashed step");
                assert!(steps.contains(crashed));
                let said = &r.recovered.iter().find(|x| &x.0 == crashed).expect("x").1;
                let want = match left {
                    Left::NotStarted => Inspection::NotStarted,
                    Left::Running => Inspection::Running,
                    Left::Ended => Inspection::Ended(Outcome::Done),
                };
                assert_eq!(said, &want, "{name} {crash_at}");
                assert_timeline_keeps_the_rules(&plan, &w.timeline, usize::MAX);
            }
        }
    }
}

#[test]
fn observed_durations_replace_the_profile_estimates_when_planning() {
    let plan = example_plan("linux-ha-pair");
    let journal = Journal::in_memory().expect("journal");
    // Two runs; every step of one action takes 100 s, then 300 s: the median is 200 s.
    let action = plan.steps[0].action.clone();
    for secs in [100, 300] {
        let world = Rc::new(RefCell::new(World::default()));
        let script = Script {
            durations: plan
                .steps
                .iter()
                .filter(|s| s.action == action)
                .map(|s| (s.id.clone(), secs))
                .collect(),
            ..Script::default()
        };
        let mut d = ScriptDriver::new(&world, script);
        let r = apply(
            &journal,
            &plan,
            &NewRun::default(),
            &mut d,
            &Options::default(),
            &mut (),
        )
        .expect("apply");
        assert_eq!(r.status, RunStatus::Complete);
    }
    let durations = journal.durations().expect("durations");
    let key = ("linux-ha".to_string(), action.clone());
    let n = plan.steps.iter().filter(|s| s.action == action).count();
    assert_eq!(durations[&key].len(), 2 * n);
    let estimates = medians(&durations);
    assert_eq!(estimates[&key], 200);
    let replanned = example_plan_with(
        "linux-ha-pair",
        &PlanOptions {
            estimates: BTreeMap::from([(key.clone(), 200)]),
            ..PlanOptions::default()
        },
    );
    for s in &replanned.steps {
        if s.action == action {
            assert_eq!(
                (s.duration_s, s.estimate),
                (200, Estimate::Observed),
                "{}",
                s.id
            );
        } else {
            assert_eq!(s.estimate, Estimate::Profile, "{}", s.id);
        }
    }
    let json = serde_json::to_string(&replanned).expect("json");
    assert!(json.contains("\"estimate\":\"observed\""));
    assert!(!serde_json::to_string(&plan)
        .expect("json")
        .contains("\"estimate\""));
    assert!(ferry_plan::render::text::render_text(&replanned).contains("(observed)"));
}

#[test]
fn the_rollback_is_planned_from_the_stored_inputs_and_restricted_to_a_node() {
    let inputs = example_inputs("ucm-standard");
    let upgrade = example_plan("ucm-standard");
    let all = rollback_plan(&inputs, &BTreeMap::new(), None).expect("rollback plan");
    assert_eq!(all.steps, upgrade.rollback);
    assert_eq!(all.input_hash, inputs.input_hash());
    assert!(all.rollback.is_empty() && all.window.is_none());
    ferry_exec::validate(&all, &Options::default()).expect("executable");

    let s = all
        .steps
        .iter()
        .find(|s| s.node.is_some())
        .expect("a node step");
    let (cluster, node) = (s.cluster.clone(), s.node.clone().expect("node"));
    let scope = RollbackScope::Node {
        cluster: cluster.clone(),
        node: node.clone(),
    };
    let part = restrict(all.clone(), &scope).expect("restricted");
    assert!(!part.steps.is_empty());
    for s in &part.steps {
        assert_eq!(s.cluster, cluster);
        assert!(s.node.as_ref().is_none_or(|n| *n == node), "{}", s.id);
    }
    ferry_exec::validate(&part, &Options::default()).expect("executable");
    // Ordering through left-out steps is kept: whatever preceded a kept step (transitively)
    // in the full rollback still precedes it.
    let r = run(
        &part,
        &Options {
            approve_all: true,
            ..Options::default()
        },
    );
    assert_eq!(r.report.status, RunStatus::Complete);
    let ends: HashMap<String, i64> = r
        .world
        .borrow()
        .timeline
        .iter()
        .map(|t| (t.0.clone(), t.2))
        .collect();
    let starts: HashMap<String, i64> = r
        .world
        .borrow()
        .timeline
        .iter()
        .map(|t| (t.0.clone(), t.1))
        .collect();
    let before = |a: &str, b: &str| -> bool {
        // Does `a` precede `b` in the full rollback graph?
        let mut stack = vec![b.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            let st = all.steps.iter().find(|s| s.id == x).expect("step");
            for p in &st.after {
                if p == a {
                    return true;
                }
                if seen.insert(p.clone()) {
                    stack.push(p.clone());
                }
            }
        }
        false
    };
    for a in &part.steps {
        for b in &part.steps {
            if before(&a.id, &b.id) {
                assert!(ends[&a.id] <= starts[&b.id], "{} before {}", a.id, b.id);
            }
        }
    }
    // Observed facts of an unknown cluster are refused.
    let observed = BTreeMap::from([("nope".to_string(), ferry_model::Facts::new())]);
    assert!(rollback_plan(&inputs, &observed, None).is_err());
}

#[test]
fn the_manual_runbook_completes_a_plan_answered_through_the_journal() {
    let plan = example_plan("linux-ha-pair");
    let j = Journal::in_memory().expect("journal");
    let run = j.start_run(&plan, 10).expect("run");
    let skipped = plan.steps[1].id.clone();
    for s in &plan.steps {
        let a = if s.id == skipped {
            Answer::Skip
        } else {
            Answer::Done
        };
        j.answer(run, &s.id, &a, 11).expect("answer");
    }
    let mut out = Vec::new();
    let r = {
        let mut d = ManualDriver::new(
            &j,
            &plan,
            Input::Journal {
                every: Duration::from_millis(5),
                max_wait: Some(Duration::from_secs(2)),
            },
            Box::new(&mut out),
            Box::new(|| 0),
        );
        resume(&j, run, &mut d, &Options::default(), &mut ()).expect("run")
    };
    assert_eq!(r.status, RunStatus::Complete);
    assert_eq!((r.done, r.skipped), (plan.steps.len() - 1, 1));
    let text = String::from_utf8(out).expect("utf-8");
    for (i, s) in plan.steps.iter().enumerate() {
        assert!(text.contains(&format!("step {}/{}", i + 1, plan.steps.len())));
        assert!(text.contains(&s.title), "{}", s.title);
        assert!(text.contains(&s.rules.join(", ")));
        if let Some(first) = s.instructions.trim().lines().next() {
            assert!(text.contains(first.trim()));
        }
    }
}

#[test]
fn the_manual_runbook_takes_typed_answers_for_one_or_several_steps() {
    // Three independent steps under way at once, answered by number and by ID.
    let plan = made_up(
        vec![
            step("c/n1/a", &[], 60, StepKind::Action),
            step("c/n2/b", &[], 60, StepKind::Action),
            step("c/n3/c", &[], 60, StepKind::Action),
            step("c/n3/d", &["c/n3/c"], 60, StepKind::Action),
        ],
        vec![],
    );
    // (typed lines, status, done, failed reason)
    let cases: &[(&str, RunStatus, usize, Option<&str>)] = &[
        (
            "done\n2 done\nc/n1/a skip\n9 done\n3 done\ndone\n",
            RunStatus::Complete,
            3,
            None,
        ),
        (
            "1 done\n2 done\n3 failed  disk full \n",
            RunStatus::Failed,
            2,
            Some("disk full"),
        ),
    ];
    for &(typed, status, done, reason) in cases {
        let j = Journal::in_memory().expect("journal");
        let mut out = Vec::new();
        let r = {
            let mut d = ManualDriver::new(
                &j,
                &plan,
                Input::Lines(Box::new(std::io::Cursor::new(typed))),
                Box::new(&mut out),
                Box::new(|| 7),
            );
            apply(
                &j,
                &plan,
                &NewRun::default(),
                &mut d,
                &Options::default(),
                &mut (),
            )
            .expect("apply")
        };
        assert_eq!(r.status, status, "{typed:?}: {r:?}");
        assert_eq!(r.done, done, "{typed:?}");
        assert_eq!(r.failed.first().map(|f| f.1.as_str()), reason);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("under way:"), "{text}");
        // A line that names no step under way is asked again.
        assert_eq!(
            text.contains("please answer"),
            typed.contains("9 done"),
            "{text}"
        );
    }
    assert_eq!(parse_answer("skip"), Some(Answer::Skip));
    assert_eq!(parse_answer("later"), None);
}

#[test]
fn the_manual_runbook_after_a_crash_keeps_answers_and_waits_for_the_rest() {
    let plan = example_plan("linux-ha-pair");
    let j = Journal::in_memory().expect("journal");
    // Typed input ends before the first step is answered: the driver fails, the step stays
    // started. An answer given meanwhile (`ferry step done`) ends it on resume: Ended.
    let r = {
        let mut d = ManualDriver::new(
            &j,
            &plan,
            Input::Lines(Box::new(std::io::Cursor::new(""))),
            Box::new(std::io::sink()),
            Box::new(|| 0),
        );
        apply(
            &j,
            &plan,
            &NewRun::default(),
            &mut d,
            &Options::default(),
            &mut (),
        )
    };
    assert!(matches!(
        r,
        Err(ExecError::Driver {
            source: DriverError::InputClosed { .. },
            ..
        })
    ));
    let run = j.latest_run().expect("run");
    let under_way: Vec<String> = j
        .steps(run)
        .expect("steps")
        .into_iter()
        .filter(|s| s.state == StepState::Running)
        .map(|s| s.id)
        .collect();
    assert!(!under_way.is_empty());

    // Without an answer: inspect says the step is under way; polling gives up after its limit.
    let mut d = ManualDriver::new(
        &j,
        &plan,
        Input::Journal {
            every: Duration::from_millis(5),
            max_wait: Some(Duration::from_millis(30)),
        },
        Box::new(std::io::sink()),
        Box::new(|| 0),
    );
    let err = resume(&j, run, &mut d, &Options::default(), &mut ()).expect_err("no answer");
    assert!(matches!(
        err,
        ExecError::Driver {
            source: DriverError::Timeout { .. },
            ..
        }
    ));

    for s in &plan.steps {
        j.answer(run, &s.id, &Answer::Done, 1).expect("answer");
    }
    let mut d = ManualDriver::new(
        &j,
        &plan,
        Input::Journal {
            every: Duration::from_millis(5),
            max_wait: Some(Duration::from_secs(2)),
        },
        Box::new(std::io::sink()),
        Box::new(|| 0),
    );
    let r = resume(&j, run, &mut d, &Options::default(), &mut ()).expect("resume");
    assert_eq!(r.status, RunStatus::Complete);
    assert_eq!(
        r.recovered,
        under_way
            .into_iter()
            .map(|id| (id, Inspection::Ended(Outcome::Done)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_large_plan_runs_with_limits_through_an_in_memory_journal() {
    // 5,000 steps: 500 chains of 10, chains grouped ten to a one-at-a-time limit.
    let mut steps = Vec::new();
    let mut limits = Vec::new();
    for c in 0..500 {
        for k in 0..10 {
            let id = format!("c/n{c}/s{k}");
            let prev = format!("c/n{c}/s{}", k.max(1) - 1);
            let after: Vec<&str> = if k == 0 { vec![] } else { vec![prev.as_str()] };
            steps.push(step(&id, &after, 10 + (c % 7) as u64, StepKind::Action));
        }
        if c % 10 == 0 {
            let members: Vec<String> = (c..c + 10).map(|x| format!("c/n{x}/s5")).collect();
            let refs: Vec<&str> = members.iter().map(String::as_str).collect();
            limits.push(limit(&format!("T-{c}"), &refs, Some(1)));
        }
    }
    let plan = made_up(steps, limits);
    let r = run(&plan, &Options::default());
    assert_eq!(r.report.status, RunStatus::Complete);
    assert_eq!(r.report.done, 5000);
    assert_timeline_keeps_the_rules(&plan, &r.world.borrow().timeline, usize::MAX);
}

// ------------------------------------------------------------------------------------------
// Rehearsals: the executor against the simulated twin
// ------------------------------------------------------------------------------------------

fn example_names() -> Vec<String> {
    let dir = format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".toml")
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// Rehearses an example through the executor and the twin driver.
fn rehearse_example(
    name: &str,
    strategy: Option<&str>,
    faults: &str,
    policy: FailurePolicy,
    seed: u64,
) -> ferry_exec::Rehearsal {
    rehearse_site(name, &example_text(name), strategy, faults, policy, seed)
}

/// Rehearses a site text through the executor and the twin driver.
fn rehearse_site(
    name: &str,
    text: &str,
    strategy: Option<&str>,
    faults: &str,
    policy: FailurePolicy,
    seed: u64,
) -> ferry_exec::Rehearsal {
    let mut inputs = site_inputs(name, text);
    inputs.strategy = strategy.map(str::to_string);
    rehearse_inputs(&inputs, faults, policy, seed)
}

/// Rehearses a site text of a test's own (built-in profiles, its own strategy, seed 1).
fn rehearse_own_site(text: &str, faults: &str, policy: FailurePolicy) -> ferry_exec::Rehearsal {
    rehearse_site("site.toml", text, None, faults, policy, 1)
}

fn rehearse_inputs(
    inputs: &RunInputs,
    faults: &str,
    policy: FailurePolicy,
    seed: u64,
) -> ferry_exec::Rehearsal {
    let name = inputs.site_name.as_str();
    let text = &inputs.site_text;
    let strategy = inputs.strategy.as_deref();
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site(name, text, &set).expect("site");
    let plan = ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        inputs.input_hash(),
        &PlanOptions {
            strategy: strategy.map(str::to_string),
            ..PlanOptions::default()
        },
    )
    .expect("plan");
    let profiles: BTreeMap<String, ferry_model::Profile> = site
        .clusters
        .iter()
        .map(|c| {
            (
                c.profile.clone(),
                set.get(&c.profile).unwrap().profile.clone(),
            )
        })
        .collect();
    let faults = ferry_profiles::load_faults("faults.toml", faults).expect("faults");
    let r = ferry_exec::Rehearse {
        site: &site,
        profiles: &profiles,
        inputs,
        plan: &plan,
        faults: &faults,
        policy,
    };
    ferry_exec::rehearse(&r, seed).expect("rehearsal")
}

fn broken(r: &ferry_exec::Rehearsal) -> Vec<String> {
    r.violations
        .iter()
        .filter(|v| v.severity == ferry_model::Severity::Inhibitor)
        .map(|v| format!("{} {}", v.rule, v.message))
        .collect()
}

#[test]
fn every_example_rehearses_through_the_executor_to_its_target_with_no_rule_broken() {
    for name in example_names() {
        let r = rehearse_example(&name, None, "", FailurePolicy::Stop, 1);
        if name.contains("inhibitors") {
            // The twin shows why an inhibitor inhibits: a failed step or a broken rule.
            assert!(
                !broken(&r).is_empty() || r.report.status != RunStatus::Complete,
                "{name}: the inhibitors went unnoticed"
            );
            continue;
        }
        assert_eq!(
            r.report.status,
            RunStatus::Complete,
            "{name}: {:?}",
            r.report
        );
        assert!(broken(&r).is_empty(), "{name}: {:#?}", broken(&r));
        for c in &r.impact.clusters {
            assert!(c.on_target, "{name}: {:?}", c.off_target);
        }
    }
}

#[test]
fn a_rehearsal_is_the_same_for_the_same_seed() {
    let a = rehearse_example("ucm-standard", None, "", FailurePolicy::Stop, 5);
    let b = rehearse_example("ucm-standard", None, "", FailurePolicy::Stop, 5);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(a.world.trace, b.world.trace);
}

#[test]
fn a_failure_with_policy_rollback_all_is_rolled_back_to_the_original_versions() {
    for (name, step) in [
        ("ucm-standard", "ucm-hq/cucm-sub2/switch-version"),
        ("linux-ha-pubsub", "db/db-sub3/switch"),
    ] {
        let faults = format!("[[fault]]\nkind = \"install_failure\"\nstep = \"{step}\"\n");
        let r = rehearse_example(name, None, &faults, FailurePolicy::RollbackAll, 1);
        assert_eq!(r.report.status, RunStatus::Failed, "{name}");
        let rb = r.rollback.as_ref().expect("a rollback was rehearsed");
        assert_eq!(rb.status, RunStatus::Complete, "{name}: {rb:?}");
        assert!(broken(&r).is_empty(), "{name}: {:#?}", broken(&r));
        for c in &r.impact.clusters {
            assert!(
                c.on_target,
                "{name}: back on the original versions: {:?}",
                c.off_target
            );
        }
    }
}

/// CCM-16, from the document: "Performing configuration tasks during the upgrade causes an
/// upgrade failure." An operator's change as the secondary's CallManager upgrade starts fails
/// that step through the executor, and the failure policy applies: `stop` leaves the cluster
/// short of its target, `rollback-all` puts every server back on 3.3(4).
#[test]
fn a_configuration_change_during_an_upgrade_fails_it_and_the_failure_policy_applies_ccm_16() {
    let site = r#"
[site]
name = "change-during-upgrade"

[[cluster]]
name = "ccm"
profile = "cisco-callmanager4"
target = "4.0(1)"

[[cluster.node]]
name = "pub"
role = "publisher"
version = "3.3(4)"
facts = { os_version = "2000.2.5sr2", terminal_services = false }

[[cluster.node]]
name = "sec"
role = "secondary"
version = "3.3(4)"
facts = { devices = 0, os_version = "2000.2.5sr2", terminal_services = false }

[[cluster.node]]
name = "pri"
role = "primary"
version = "3.3(4)"
facts = { devices = 600, backup = "sec", os_version = "2000.2.5sr2", terminal_services = false }
"#;
    let change = "[[fault]]\nkind = \"config_change\"\nstep = \"ccm/sec/install-subscriber\"\n";
    let check = |policy: FailurePolicy, rollback: Option<RunStatus>, on_target: bool| {
        let r = rehearse_own_site(site, change, policy);
        assert_eq!(
            r.report.status,
            RunStatus::Failed,
            "{policy:?}: {:?}",
            r.report
        );
        assert_eq!(r.report.failed.len(), 1, "{policy:?}");
        let (step, reason) = &r.report.failed[0];
        assert_eq!(step, "ccm/sec/install-subscriber", "{policy:?}");
        assert!(reason.starts_with("CCM-16:"), "{policy:?}: {reason}");
        assert_eq!(
            r.rollback.as_ref().map(|b| b.status),
            rollback,
            "{policy:?}"
        );
        assert_eq!(
            r.impact.clusters[0].on_target, on_target,
            "{policy:?}: {:?}",
            r.impact.clusters[0].off_target
        );
    };
    check(FailurePolicy::Stop, None, false);
    // After the rollback "on target" means back on the versions the servers ran.
    check(FailurePolicy::RollbackAll, Some(RunStatus::Complete), true);
}

#[test]
fn a_monte_carlo_rehearsal_summarises_every_seed() {
    let text = example_text("linux-ha-pair");
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site("linux-ha-pair", &text, &set).expect("site");
    let inputs = example_inputs("linux-ha-pair");
    let plan = ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        inputs.input_hash(),
        &PlanOptions::default(),
    )
    .expect("plan");
    let profiles: BTreeMap<String, ferry_model::Profile> = site
        .clusters
        .iter()
        .map(|c| {
            (
                c.profile.clone(),
                set.get(&c.profile).unwrap().profile.clone(),
            )
        })
        .collect();
    let faults = ferry_profiles::load_faults(
        "f.toml",
        "[[fault]]\nkind = \"slow_step\"\nstep = \"*/stage\"\nfactor = 20\nprobability = 0.5\n",
    )
    .expect("faults");
    let r = ferry_exec::Rehearse {
        site: &site,
        profiles: &profiles,
        inputs: &inputs,
        plan: &plan,
        faults: &faults,
        policy: FailurePolicy::Stop,
    };
    let (runs, summary) = ferry_exec::monte_carlo(&r, 10..50).expect("monte carlo");
    assert_eq!(runs.len(), 40);
    assert_eq!(
        runs.iter().map(|r| r.seed).collect::<Vec<_>>(),
        (10..50).collect::<Vec<_>>()
    );
    assert_eq!(summary.runs, 40);
    // Half the runs have a twenty-times slower stage: the window spreads, some overrun.
    assert!(
        summary.window_s.max > 2.0 * summary.window_s.min,
        "{summary:?}"
    );
    let inside = summary.inside_window.expect("the site books a window");
    assert!(inside > 0.2 && inside < 0.9, "{inside}");
    let (again, _) = ferry_exec::monte_carlo(&r, 10..50).expect("monte carlo");
    assert_eq!(runs, again);
}

#[test]
fn the_callmanager_and_cms_procedures_run_end_to_end_through_the_manual_runbook() {
    // Disks, menus and consoles: every step is an operator's, answered through the journal
    // (as `ferry step done` would), with each card showing what to do and how to check it.
    for (name, must_show) in [
        ("ccm4-large", "Subscriber Preparation Disk"),
        ("cms-ha", "Single-user mode"),
    ] {
        let plan = example_plan(name);
        let j = Journal::in_memory().expect("journal");
        let run = j.start_run(&plan, 10).expect("run");
        for s in &plan.steps {
            j.answer(run, &s.id, &Answer::Done, 11).expect("answer");
        }
        let mut out = Vec::new();
        let r = {
            let mut d = ManualDriver::new(
                &j,
                &plan,
                Input::Journal {
                    every: Duration::from_millis(1),
                    max_wait: Some(Duration::from_secs(2)),
                },
                Box::new(&mut out),
                Box::new(|| 0),
            );
            let opts = Options {
                approve_all: true,
                ..Options::default()
            };
            resume(&j, run, &mut d, &opts, &mut ()).expect("run")
        };
        assert_eq!(r.status, RunStatus::Complete, "{name}: {r:?}");
        assert_eq!(r.done, plan.steps.len(), "{name}");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains(must_show),
            "{name}: the runbook shows `{must_show}`"
        );
        for s in &plan.steps {
            assert!(text.contains(&s.id), "{name}: {}", s.id);
            if let Some(first) = s.verify.trim().lines().next() {
                assert!(text.contains(first.trim()), "{name}: {}", s.id);
            }
        }
    }
}

#[test]
fn the_rollback_follows_the_masters_state_gen_19_gen_20() {
    // Master operational (a Management Layer install fails): proxies go back first (GEN-19).
    // Master down (the primary crashes while its new backup starts): master first (GEN-20).
    for (faults, master_first) in [
        (
            "[[fault]]\nkind = \"install_failure\"\nstep = \"genesys/ms-b/install-ml\"\n",
            false,
        ),
        (
            "[[fault]]\nkind = \"crash\"\nnode = \"confserv\"\nstep = \"genesys/confserv-bk/cs-start-new-backup-813\"\n",
            true,
        ),
    ] {
        let r = rehearse_example("genesys-framework", None, faults, FailurePolicy::RollbackAll, 1);
        assert_eq!(r.report.status, RunStatus::Failed, "{faults}");
        let rb = r.rollback.as_ref().expect("rolled back");
        assert_eq!(rb.status, RunStatus::Complete, "{faults}: {rb:?}");
        let run2: Vec<_> = r.world.trace.iter().filter(|e| e.run == rb.run).collect();
        let master_back = run2
            .iter()
            .filter(|e| {
                e.action.starts_with("rb-start-old")
                    && e.role.as_deref().is_some_and(|x| x == "cs_primary" || x == "cs_backup")
            })
            .map(|e| e.end)
            .max()
            .expect("the master goes back");
        let proxies_start = run2
            .iter()
            .filter(|e| {
                e.action.starts_with("rb-stop")
                    && e.role.as_deref().is_some_and(|x| x.starts_with("cs_proxy"))
            })
            .map(|e| e.start)
            .min()
            .expect("the proxies go back");
        assert_eq!(master_back <= proxies_start, master_first, "{faults}");
        // The rollback broke no rule of the rollback procedure.
        let start = run2.iter().map(|e| e.start).min().unwrap();
        let late: Vec<_> = r
            .violations
            .iter()
            .filter(|v| v.time >= start && v.severity == ferry_model::Severity::Inhibitor)
            .collect();
        assert!(late.is_empty(), "{faults}: {late:#?}");
    }
}

/// A CUCM publisher with two subscribers and an IM&P pair, 12.5 to 14 (a standard upgrade),
/// written for these tests from the document's sentences.
const RIVERSIDE: &str = r#"[site]
name = "riverside"
window = { start = "2027-03-06T21:00:00+01:00", hours = 10 }

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8", imp_subscriber = "14.0.1.13900-8" }
facts = { configured_devices = 1800, upgrade_source = "sftp" }

[[cluster.node]]
name = "cm-a"
role = "publisher"
version = "12.5.1.14900-63"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2027-03-06T08:00:00+01:00" }

[[cluster.node]]
name = "cm-b"
role = "subscriber"
version = "12.5.1.14900-63"
facts = { devices = 900, replication_state = 2 }

[[cluster.node]]
name = "cm-c"
role = "subscriber"
version = "12.5.1.14900-63"
facts = { devices = 900, replication_state = 2 }

[[cluster.node]]
name = "pres-a"
role = "imp_publisher"
version = "12.5.1.14900-4"
facts = { users = 600, replication_state = 2 }

[[cluster.node]]
name = "pres-b"
role = "imp_subscriber"
version = "12.5.1.14900-4"
facts = { users = 600, replication_state = 2 }
"#;

/// UCM-06. The document: free_common_space "removes the inactive side in the common partition
/// ... You will not be able to switch back to the inactive version after installing this
/// file"; "When you reboot to the new software, the old software version remains on the
/// system. This allows you to revert". The version lost is the one inactive before the upgrade:
/// a rollback after the switch goes back to the old version, in a rehearsal as on the node.
#[test]
fn a_rollback_rehearsal_after_free_common_space_switches_back_ucm_06() {
    let site = RIVERSIDE.replacen(
        "facts = { devices = 900, replication_state = 2 }",
        "facts = { devices = 900, replication_state = 2, planned_cops = [\"ciscocm.free_common_space_v1.6.cop.sgn\"] }",
        1,
    );
    // The last IM&P switch fails: everything is rolled back, cm-b included.
    let faults = "[[fault]]\nkind = \"install_failure\"\nstep = \"cm/pres-b/imp-switch-version\"\n";
    let r = rehearse_site(
        "riverside",
        &site,
        None,
        faults,
        FailurePolicy::RollbackAll,
        1,
    );
    assert_eq!(r.report.status, RunStatus::Failed);
    let rb = r.rollback.as_ref().expect("a rollback was rehearsed");
    assert_eq!(rb.status, RunStatus::Complete, "{rb:?}");
    assert!(
        rb.ran.iter().any(|s| s == "cm/cm-b/revert-version"),
        "{rb:?}"
    );
    for c in &r.impact.clusters {
        assert!(
            c.on_target,
            "back on the versions before: {:?}",
            c.off_target
        );
    }
}

/// UCM-25. The document: "If the upgrade of Unified Communications Manager nodes is successful
/// but the upgrade of IM and Presence nodes fails, you must either: perform another upgrade of
/// both ... or perform a DRS restore". The rollback asks for that choice in that case only: not
/// when a CUCM node's own upgrade failed. (In the documented order, in which the IM&P nodes
/// install after the CUCM phase; the fastest plan installs the IM&P publisher earlier, UCM-13.)
#[test]
fn the_imp_recovery_choice_is_offered_only_when_cucm_succeeded_ucm_25() {
    fn check(failing_step: &str, offered: bool) {
        let faults = format!("[[fault]]\nkind = \"install_failure\"\nstep = \"{failing_step}\"\n");
        let r = rehearse_site(
            "riverside",
            RIVERSIDE,
            Some("documented"),
            &faults,
            FailurePolicy::RollbackAll,
            1,
        );
        assert_eq!(r.report.status, RunStatus::Failed, "{failing_step}");
        let rb = r.rollback.as_ref().expect("a rollback was rehearsed");
        assert_eq!(rb.status, RunStatus::Complete, "{failing_step}: {rb:?}");
        assert_eq!(
            rb.ran.iter().any(|s| s == "cm/imp-failure-recovery"),
            offered,
            "{failing_step}: {:?}",
            rb.ran
        );
        for c in &r.impact.clusters {
            assert!(c.on_target, "{failing_step}: {:?}", c.off_target);
        }
    }
    // A CUCM subscriber's install fails: CUCM did not succeed, no IM&P was touched.
    check("cm/cm-c/install-inactive", false);
    // The CUCM publisher's switch fails.
    check("cm/cm-a/switch-version", false);
    // CUCM is upgraded, then an IM&P install or switch fails: the documented case.
    check("cm/pres-a/imp-install-inactive", true);
    check("cm/pres-b/imp-switch-version", true);
}

#[test]
fn a_step_the_profile_lets_retry_is_tried_again_in_a_rehearsal() {
    let faults = "[[fault]]\nkind = \"install_failure\"\nstep = \"db/db-sub1/stage\"\n";
    let r = rehearse_example("linux-ha-pubsub", None, faults, FailurePolicy::Stop, 1);
    assert_eq!(r.report.status, RunStatus::Complete, "{:?}", r.report);
    assert_eq!(r.report.retried, vec!["db/db-sub1/stage".to_string()]);
    let record = &r.world.records[&(r.report.run, "db/db-sub1/stage".to_string())];
    assert_eq!((record.attempts, record.applications), (2, 1));
}

#[path = "exec/lab.rs"]
mod lab;
#[path = "exec/runs.rs"]
mod runs;
#[path = "exec/ssh.rs"]
mod ssh;

#[path = "exec/odds.rs"]
mod odds;
#[path = "exec/plan_numbers.rs"]
mod plan_numbers;
#[path = "exec/twin_journal.rs"]
mod twin_journal;

// ------------------------------------------------------------------------------------------
// Staging: work ahead of the window, then the window
// ------------------------------------------------------------------------------------------

/// An instant as RFC 3339 in UTC (`2026-12-05T07:00:00Z`).
fn utc_rfc3339(epoch_s: i64) -> String {
    let days = epoch_s.div_euclid(86_400);
    let secs = epoch_s.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The site text with a staging period of `hours` booked to end `gap_h` hours before its
/// window opens (unless it books one), and the window's start (seconds since the Unix epoch).
fn with_staging_period(text: &str, hours: i64, gap_h: i64) -> (String, i64) {
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site("site.toml", text, &set).expect("site");
    let w = site.window.expect("the site books a window");
    if site.stage.is_some() {
        // Booked already (`ucm-staged`).
        return (text.to_string(), w.start_epoch_s);
    }
    let start = w.start_epoch_s - (hours + gap_h) * 3600;
    let line = format!(
        "stage = {{ start = \"{}\", hours = {hours} }}",
        utc_rfc3339(start)
    );
    let at = text
        .lines()
        .position(|l| l.trim_start().starts_with("window ="))
        .expect("window line");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(at + 1, &line);
    (lines.join("\n") + "\n", w.start_epoch_s)
}

/// Every example, with a staging period booked the day of its window, rehearses through the
/// executor with every strategy (the site's own, and each one `ferry plan --compare` offers):
/// what may run ahead runs in the staging period, the window's work waits for the window to
/// open (virtual time jumps to it), and the auditor finds no broken rule (the inhibitor
/// examples still show why they inhibit). UCM-02, UCM-04, UCM-15, LHA-03, CMS-09.
#[test]
fn every_example_with_a_staging_period_rehearses_with_no_rule_broken_ucm_02() {
    let mut staged_any = Vec::new();
    let strategies = [
        None,
        Some("fastest"),
        Some("documented"),
        Some("balanced"),
        Some("one-at-a-time"),
    ];
    for name in example_names() {
        for strategy in strategies {
            let (text, opens) = with_staging_period(&example_text(&name), 10, 2);
            let r = rehearse_site(&name, &text, strategy, "", FailurePolicy::Stop, 1);
            let name = format!("{name} ({})", strategy.unwrap_or("the site's strategy"));
            if name.contains("inhibitors") {
                assert!(
                    !broken(&r).is_empty() || r.report.status != RunStatus::Complete,
                    "{name}: the inhibitors went unnoticed"
                );
                continue;
            }
            assert_eq!(
                r.report.status,
                RunStatus::Complete,
                "{name}: {:?}",
                r.report
            );
            assert!(broken(&r).is_empty(), "{name}: {:#?}", broken(&r));
            for c in &r.impact.clusters {
                assert!(c.on_target, "{name}: {:?}", c.off_target);
            }
            let trace = &r.world.trace;
            let staged: Vec<_> = trace.iter().filter(|e| e.phase == Phase::Staging).collect();
            for e in trace.iter().filter(|e| e.phase == Phase::Window) {
                assert!(
                    e.start >= opens,
                    "{name}: {} started {} s before the window opened",
                    e.step,
                    opens - e.start
                );
            }
            for e in &staged {
                assert!(
                    e.end <= opens,
                    "{name}: staged {} ended after the window opened",
                    e.step
                );
            }
            if !staged.is_empty() {
                staged_any.push(name.clone());
            }
        }
    }
    for name in [
        "ucm-standard",
        "ucm-staged",
        "ucm-cucm-only-standard",
        "linux-ha-pair",
        "cms-ha",
    ] {
        assert!(
            staged_any
                .iter()
                .any(|n| n.starts_with(&format!("{name} ("))),
            "{name} stages nothing: {staged_any:?}"
        );
    }
}

/// A CUCM + IM&P standard upgrade (12.5 to 14) that installs in the day and switches at night.
const DAY_AND_NIGHT: &str = r#"
[site]
name = "harbour-collab"
window = { start = "2027-03-06T21:00:00+01:00", hours = 6 }
stage = { start = "2027-03-06T08:00:00+01:00", hours = 9 }

[[cluster]]
name = "uc"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8", imp_subscriber = "14.0.1.13900-8" }
facts = { configured_devices = 3000, upgrade_source = "sftp" }

[[cluster.node]]
name = "uc-pub"
role = "publisher"
version = "12.5.1.17900-64"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2027-03-05T22:00:00+01:00" }

[[cluster.node]]
name = "uc-sub1"
role = "subscriber"
version = "12.5.1.17900-64"
facts = { devices = 1200, replication_state = 2 }

[[cluster.node]]
name = "im-pub"
role = "imp_publisher"
version = "12.5.1.17900-7"
facts = { users = 800, replication_state = 2 }
"#;

/// UCM-04: "If you make changes to the database after an upgrade, you must repeat those changes
/// after switching to the new software", so the freeze starts with the first install; UCM-21:
/// settings changed "for a short period of time after you install" may be lost. The rehearsal
/// measures what installing in the day costs: the freeze from the staging period's first step
/// to its release at the end of the window, and the time a change on the publisher would have
/// been lost on its switch.
#[test]
fn a_staged_rehearsal_measures_the_freeze_and_the_changes_at_risk_ucm_04_ucm_21() {
    let r = rehearse_own_site(DAY_AND_NIGHT, "", FailurePolicy::Stop);
    assert_eq!(r.report.status, RunStatus::Complete, "{:?}", r.report);
    assert!(broken(&r).is_empty(), "{:#?}", broken(&r));
    let c = &r.impact.clusters[0];
    let st = c.staging.as_ref().expect("the run staged work");
    // Freeze, installs and install-log checks of three nodes.
    assert_eq!(st.staged_steps, 7);
    // From the freeze step's end (it opens the staging period at 08:00 and takes 15 minutes,
    // give or take the twin's spread) to 21:00, and the window's work after it.
    let window_min = r.impact.window_s as f64 / 60.0;
    let frozen = st.configuration_frozen_minutes;
    assert!(
        frozen >= 13.0 * 60.0 - 20.0 + window_min && frozen <= 13.0 * 60.0 + window_min,
        "{st:?}, window {window_min} min"
    );
    // From the publisher's install to its switch: most of the day.
    assert!(st.configuration_at_risk_minutes > 10.0 * 60.0, "{st:?}");
    let text = ferry_exec::rehearse::rehearsal_text(&r, &plan_of(DAY_AND_NIGHT), false);
    assert!(text.contains("configuration frozen"), "{text}");
    // The same site without its staging period: nothing staged, no staging figures.
    let unstaged = rehearse_own_site(
        &DAY_AND_NIGHT.replace(
            "stage = { start = \"2027-03-06T08:00:00+01:00\", hours = 9 }\n",
            "",
        ),
        "",
        FailurePolicy::Stop,
    );
    assert!(unstaged.impact.clusters[0].staging.is_none());
    assert!(unstaged.impact.window_s > r.impact.window_s);
}

/// The plan of a site text of a test's own.
fn plan_of(text: &str) -> Plan {
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site("site.toml", text, &set).expect("site");
    ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        "test".into(),
        &PlanOptions::default(),
    )
    .expect("plan")
}

/// A pair that stages its packages in the afternoon and switches in the evening (linux-ha,
/// LHA-03: "stage everywhere while serving").
const STAGED_PAIR: &str = r#"
[site]
name = "cache-pair"
window = { start = "2027-02-13T19:00:00+00:00", hours = 1 }
stage = { start = "2027-02-13T13:00:00+00:00", hours = 4 }

[[cluster]]
name = "cache"
profile = "linux-ha"
target = "3.4.0"

[[cluster.node]]
name = "cache-1"
role = "primary"
version = "3.3.2"

[[cluster.node]]
name = "cache-2"
role = "backup"
version = "3.3.2"
"#;

/// The scripted driver, with an operator who looks at the run each time the executor waits
/// with nothing under way: what the journal says then, and (when told to) an approval of the
/// pseudo-step `open-window` given from "another shell".
struct Watching<'j> {
    inner: ScriptDriver,
    journal: &'j Journal,
    open_early: bool,
    seen: Vec<(i64, Option<String>)>,
}

impl Driver for Watching<'_> {
    fn now(&self) -> i64 {
        self.inner.now()
    }
    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        self.inner.start(run, step)
    }
    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        if self.inner.world.borrow().running.is_empty() {
            let message = self.journal.run(run).expect("run").message;
            self.seen.push((self.now(), message));
            if self.open_early {
                self.journal
                    .approve(run, ferry_exec::OPEN_WINDOW, "operator", self.now())
                    .expect("approve");
                return Ok(None);
            }
        }
        self.inner.wait(run, deadline)
    }
    fn cancel(&mut self, run: RunId, step_id: &str) -> Result<(), DriverError> {
        self.inner.cancel(run, step_id)
    }
    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        self.inner.inspect(run, step)
    }
}

/// Seed 004: "you can manually switch to the new software at a later time". The executor runs
/// the staged steps, then waits, with nothing under way, for the booked window to open (the
/// scripted clock jumps to it) and says so in the journal; an operator's approval of
/// `open-window` opens it early; a window too short for the work left refuses the run before
/// anything starts, staging included (UCM-02, LHA-03).
#[test]
fn a_staged_plan_waits_for_its_window_or_an_approval_ucm_02() {
    let plan = plan_of(STAGED_PAIR);
    assert!(plan.steps.iter().any(|s| s.phase == Phase::Staging));
    let opens = 1_000_000 + 3 * 3600;
    let run_from = |opens: i64, open_early: bool, window_end: Option<i64>| {
        let journal = Journal::in_memory().expect("journal");
        let world = Rc::new(RefCell::new(World {
            now: 1_000_000,
            ..World::default()
        }));
        let mut d = Watching {
            inner: ScriptDriver::new(&world, Script::default()),
            journal: &journal,
            open_early,
            seen: Vec::new(),
        };
        let opts = Options {
            window_opens: Some(opens),
            window_poll_s: Some(60),
            window_end,
            ..Options::default()
        };
        let report = apply(&journal, &plan, &NewRun::default(), &mut d, &opts, &mut ())
            .unwrap_or_else(|e| panic!("apply: {e}"));
        let stored = journal.run(report.run).expect("run").message;
        let seen = d.seen.clone();
        let timeline = world.borrow().timeline.clone();
        (report, stored, seen, timeline)
    };
    let run = |open_early: bool, window_end: Option<i64>| run_from(opens, open_early, window_end);
    let phase_of = |id: &str| plan.steps.iter().find(|s| s.id == id).expect("step").phase;
    // Waits: the staged steps first, the window's at its opening.
    let (report, stored, seen, timeline) = run(false, None);
    assert_eq!(report.status, RunStatus::Complete, "{report:?}");
    assert_eq!(
        stored, None,
        "the waiting message goes once the window opens"
    );
    let staged_end = timeline
        .iter()
        .filter(|t| phase_of(&t.0) == Phase::Staging)
        .map(|t| t.2)
        .max()
        .expect("staged steps ran");
    let window_start = timeline
        .iter()
        .filter(|t| phase_of(&t.0) == Phase::Window)
        .map(|t| t.1)
        .min()
        .expect("window steps ran");
    assert!(staged_end < opens);
    assert_eq!(window_start, opens);
    let (at, message) = seen.first().cloned().expect("the executor waited");
    assert!(at >= staged_end && at < opens);
    let message = message.expect("the wait is journaled");
    assert!(
        message.contains("waiting for the booked window to open at 1970-01-12")
            && message.contains("+00:00")
            && message.contains("ferry approve open-window"),
        "{message}"
    );
    // Opened early by the operator: the window's work starts at once.
    let (report, _, _, timeline) = run(true, None);
    assert_eq!(report.status, RunStatus::Complete, "{report:?}");
    let window_start = timeline
        .iter()
        .filter(|t| phase_of(&t.0) == Phase::Window)
        .map(|t| t.1)
        .min()
        .expect("window steps ran");
    assert!(window_start < opens, "{window_start} vs {opens}");
    // A window shorter than the work left in it: nothing starts, not even the staging.
    let (report, _, _, timeline) = run(false, Some(opens + 60));
    assert_eq!(report.status, RunStatus::Stopped, "{report:?}");
    assert!(
        report
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("does not fit"),
        "{report:?}"
    );
    assert!(timeline.is_empty(), "{timeline:?}");
    // The window open already when the run starts: the staging still to run holds its work
    // back, so a window that would hold the window's work alone but not the staging first is
    // too short as well.
    let now = 1_000_000;
    let end = now + plan.makespan_s as i64 + plan.staging_s as i64 / 2;
    let (report, _, _, timeline) = run_from(now - 60, false, Some(end));
    assert_eq!(report.status, RunStatus::Stopped, "{report:?}");
    assert!(timeline.is_empty(), "{timeline:?}");
    let (report, _, _, _) = run_from(
        now - 60,
        false,
        Some(now + (plan.makespan_s + plan.staging_s) as i64),
    );
    assert_eq!(report.status, RunStatus::Complete, "{report:?}");
}

/// Safe execution defaults: an answer given before its step started (`ferry step ... --early`)
/// took none of the step's time, so it is never learned as a duration; an answer given while
/// the step ran is. Each case: (answered early, the durations learned for the step's action).
#[test]
fn early_answers_are_never_learned_as_durations() {
    fn check(early: bool, expected: Vec<u64>) {
        let j = Journal::in_memory().expect("journal");
        let plan = example_plan("linux-ha-pair");
        let run = j.start_run(&plan, 0).expect("run");
        let step = &plan.steps[0];
        let given = ferry_exec::AnswerGiven {
            by: "jo".into(),
            early,
        };
        j.answer_given(run, &step.id, &Answer::Done, 50, &given)
            .expect("answer");
        j.record(run, &step.id, Event::Started, 100, "")
            .expect("started");
        j.record(
            run,
            &step.id,
            Event::Done,
            if early { 101 } else { 400 },
            "",
        )
        .expect("done");
        let learned = j.durations().expect("durations");
        let profile = plan.clusters[0].profile.clone();
        assert_eq!(
            learned
                .get(&(profile, step.action.clone()))
                .cloned()
                .unwrap_or_default(),
            expected,
            "answered early: {early}"
        );
    }
    check(false, vec![300]);
    check(true, vec![]);
}

/// A booked window is never entered early: a rehearsal whose preparation runs faster than
/// planned waits for the window's opening before its first window step (the configuration
/// freeze of cisco-ucm, UCM-04, used to start at 19:55 for a 20:00 window). A site of this
/// test's own, rehearsed with several seeds.
#[test]
fn no_window_step_starts_before_the_booked_window_opens_ucm_04() {
    let site = r#"
[site]
name = "harbour-pbx"
window = { start = "2026-11-14T20:00:00-05:00", hours = 12 }

[[cluster]]
name = "pbx"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-7" }

[[cluster.node]]
name = "pbx-pub"
role = "publisher"
version = "12.5.1.11900-146"

[[cluster.node]]
name = "pbx-sub"
role = "subscriber"
version = "12.5.1.11900-146"
facts = { devices = 800 }

[[cluster.node]]
name = "pbx-imp"
role = "imp_publisher"
version = "12.5.1.11900-10"
"#;
    for seed in 1..=6 {
        let r = rehearse_site("site.toml", site, None, "", FailurePolicy::Stop, seed);
        let (opens, _) = r.booked.expect("a booked window");
        let early: Vec<String> = r
            .world
            .trace
            .iter()
            .filter(|e| e.phase == ferry_model::Phase::Window && e.start < opens)
            .map(|e| format!("{} at {} s before the window", e.step, opens - e.start))
            .collect();
        assert!(early.is_empty(), "seed {seed}: {early:?}");
        assert!(
            r.world
                .trace
                .iter()
                .any(|e| e.phase == ferry_model::Phase::Window),
            "seed {seed}: window work ran"
        );
    }
}

/// An observer that keeps the run's warnings.
#[derive(Default)]
struct Warnings(Vec<String>);

impl ferry_exec::Observer for Warnings {
    fn progress(&mut self, _: &ferry_exec::Progress<'_>) {}
    fn warn(&mut self, message: &str) {
        self.0.push(message.to_string());
    }
}

/// Issue 14: "The executor warns, and with --stop-at-point-of-no-return pauses for an approval,
/// when a run reaches that moment" (the last moment at which a backout still ends inside the
/// booked window; UCM-02: the old version stays for revert).
#[test]
fn a_run_warns_at_the_point_of_no_return_and_stops_there_when_asked_ucm_02() {
    // Three steps of an hour each; the point of no return an hour and a half in: the third
    // step starts after it.
    let mut plan = made_up(
        vec![
            step("c/a/one", &[], 3600, StepKind::Action),
            step("c/a/two", &["c/a/one"], 3600, StepKind::Action),
            step("c/a/three", &["c/a/two"], 3600, StepKind::Action),
        ],
        Vec::new(),
    );
    plan.point_of_no_return_s = Some(5400);
    let pnr = 1_000_000 + 5400;
    for stop in [false, true] {
        let journal = Journal::in_memory().expect("journal");
        let world = Rc::new(RefCell::new(World {
            now: 1_000_000,
            ..World::default()
        }));
        let opts = Options {
            point_of_no_return: Some(pnr),
            stop_at_point_of_no_return: stop,
            ..Options::default()
        };
        let mut seen = Warnings::default();
        let mut d = ScriptDriver::new(&world, Script::default());
        let r = apply(
            &journal,
            &plan,
            &NewRun::default(),
            &mut d,
            &opts,
            &mut seen,
        )
        .expect("apply");
        if !stop {
            assert_eq!(r.status, RunStatus::Complete, "{r:?}");
            assert_eq!(seen.0.len(), 1, "{:?}", seen.0);
            assert!(
                seen.0[0].contains("past the point of no return"),
                "{:?}",
                seen.0
            );
            continue;
        }
        assert_eq!(r.status, RunStatus::Paused, "{r:?}");
        assert_eq!(
            r.awaiting_approval.as_deref(),
            Some(ferry_exec::POINT_OF_NO_RETURN)
        );
        assert!(
            r.message
                .as_deref()
                .unwrap_or("")
                .contains("point of no return"),
            "{r:?}"
        );
        assert!(!world.borrow().applied.contains_key("c/a/three"));
        journal
            .approve(r.run, ferry_exec::POINT_OF_NO_RETURN, "operator", pnr)
            .expect("approve");
        let mut d2 = ScriptDriver::new(&world, Script::default());
        let done = resume(&journal, r.run, &mut d2, &opts, &mut seen).expect("resume");
        assert_eq!(done.status, RunStatus::Complete, "{done:?}");
        assert_eq!(world.borrow().applied["c/a/three"], 1);
    }
}
