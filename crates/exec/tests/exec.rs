//! The executor, its journal and the manual driver, driven through real example plans: order
//! and limits, failure policy `stop`, pause and resume, crash recovery through `inspect`, and
//! the operator runbook answered from the journal.

use ferry_exec::{
    apply, next_batch, parse_answer, resume, Answer, Clock, Driver, DriverError, Event, ExecError,
    Input, Journal, ManualDriver, Options, Outcome, RunId, RunStatus, StepState,
};
use ferry_model::{Plan, PlannedStep};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
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

/// A clock that advances one second per reading.
struct TickClock(Cell<i64>);

impl TickClock {
    fn new() -> TickClock {
        TickClock(Cell::new(1_000_000))
    }
}

impl Clock for TickClock {
    fn now(&self) -> i64 {
        let t = self.0.get();
        self.0.set(t + 1);
        t
    }
}

/// Test double: records every call, fails the steps it is told to, errors (outcome unknown)
/// on others, and answers `inspect` from a table.
#[derive(Default)]
struct RecordingDriver {
    calls: Vec<String>,
    inspected: Vec<String>,
    fail: HashSet<String>,
    error: HashSet<String>,
    inspect_answers: HashMap<String, Outcome>,
}

impl Driver for RecordingDriver {
    fn run(&mut self, _run: RunId, step: &PlannedStep) -> Result<Outcome, DriverError> {
        if self.error.contains(&step.id) {
            return Err(DriverError::Other("connection lost".into()));
        }
        self.calls.push(step.id.clone());
        if self.fail.contains(&step.id) {
            return Ok(Outcome::Failed("install failed".into()));
        }
        Ok(Outcome::Done)
    }

    fn inspect(&mut self, _run: RunId, step_id: &str) -> Result<Option<Outcome>, DriverError> {
        self.inspected.push(step_id.to_string());
        Ok(self.inspect_answers.get(step_id).cloned())
    }
}

fn example_plan(name: &str) -> Plan {
    let path = format!("{}/../../examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site(&path, &text, &set).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        format!("hash-of-{name}"),
        &PlanOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn states(j: &Journal, run: RunId) -> HashMap<String, StepState> {
    j.steps(run)
        .expect("steps")
        .into_iter()
        .map(|s| (s.id, s.state))
        .collect()
}

fn assert_order_respects_edges(plan: &Plan, calls: &[String]) {
    let pos: HashMap<&str, usize> = calls
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    for s in &plan.steps {
        let Some(&me) = pos.get(s.id.as_str()) else {
            continue;
        };
        for a in &s.after {
            let before = pos
                .get(a.as_str())
                .unwrap_or_else(|| panic!("`{}` ran but `{a}` before it did not", s.id));
            assert!(*before < me, "`{}` ran before `{a}`", s.id);
        }
    }
}

#[test]
fn journal_round_trip_and_durability_settings() {
    let dir = TempDir::new("journal");
    let plan = example_plan("linux-ha-pair");
    let first = &plan.steps[0].id;
    let run = {
        let j = Journal::open(&dir.0).expect("open");
        assert_eq!(j.durability().expect("pragmas"), ("wal".to_string(), 2));
        assert!(dir.0.join("journal.sqlite").exists());
        let run = j.start_run(&plan, 100).expect("start run");
        j.record(run, first, Event::Started, 101, "")
            .expect("started");
        j.answer(run, first, &Answer::Failed("disk full".into()), 102)
            .expect("answer");
        assert_eq!(
            j.answer_for(run, first).expect("read answer"),
            Some(Answer::Failed("disk full".into()))
        );
        run
    };
    // Reopened: everything is still there.
    let j = Journal::open(&dir.0).expect("reopen");
    assert_eq!(j.durability().expect("pragmas"), ("wal".to_string(), 2));
    assert_eq!(j.plan(run).expect("plan"), plan);
    let runs = j.runs().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].input_hash, plan.input_hash);
    assert_eq!(runs[0].created, 100);
    assert_eq!(runs[0].status, RunStatus::Running);
    let steps = j.steps(run).expect("steps");
    assert_eq!(steps.len(), plan.steps.len());
    assert_eq!(steps[0].state, StepState::Running);
    assert_eq!(steps[0].started, Some(101));
    assert!(steps[1..].iter().all(|s| s.state == StepState::Pending));

    // A failure clears the answer, so a retry waits for a new one.
    j.record(run, first, Event::Failed, 103, "disk full")
        .expect("failed");
    assert_eq!(j.answer_for(run, first).expect("answer"), None);
    let steps = j.steps(run).expect("steps");
    assert_eq!(steps[0].state, StepState::Failed);
    assert_eq!(
        (steps[0].ended, steps[0].detail.as_str()),
        (Some(103), "disk full")
    );
    j.set_status(run, RunStatus::Failed).expect("status");
    assert_eq!(j.run(run).expect("run").status, RunStatus::Failed);
    assert_eq!(j.latest_run().expect("latest"), run);
    assert!(matches!(
        j.run(run + 1),
        Err(ferry_exec::JournalError::NoRun(_))
    ));
    let events = j.events(run).expect("events");
    assert_eq!(
        events.iter().map(|e| e.event).collect::<Vec<_>>(),
        vec![Event::Started, Event::Failed]
    );
}

#[test]
fn every_example_runs_in_an_order_that_keeps_every_edge() {
    for name in [
        "linux-ha-pair",
        "ucm-standard",
        "genesys-framework",
        "cms-ha",
        "ccm4-large",
    ] {
        let dir = TempDir::new("order");
        let plan = example_plan(name);
        let j = Journal::open(&dir.0).expect("open");
        let mut d = RecordingDriver::default();
        let r = apply(&j, &plan, &mut d, &TickClock::new(), &Options::default()).expect("apply");
        assert_eq!(r.status, RunStatus::Complete, "{name}: {r:?}");
        assert_eq!(r.done, plan.steps.len(), "{name}");
        assert_eq!(d.calls.len(), plan.steps.len(), "{name}: each step once");
        assert_order_respects_edges(&plan, &d.calls);
        // The journal: each step started before it ended, once.
        let ev = j.events(r.run).expect("events");
        assert_eq!(ev.len(), 2 * plan.steps.len());
        for pair in ev.chunks(2) {
            assert_eq!(
                (pair[0].event, pair[1].event),
                (Event::Started, Event::Done)
            );
            assert_eq!(pair[0].step, pair[1].step);
            assert!(pair[0].time < pair[1].time);
        }
        assert_eq!(j.run(r.run).expect("run").status, RunStatus::Complete);
    }
}

#[test]
fn batches_keep_limits_and_the_parallel_cap() {
    for name in ["genesys-framework", "ccm4-large", "ucm-standard"] {
        let plan = example_plan(name);
        for parallel in [1, 3, usize::MAX] {
            let mut st: HashMap<String, StepState> = HashMap::new();
            let mut rounds = 0;
            loop {
                let batch: Vec<String> = next_batch(&plan, &st, &[], parallel)
                    .iter()
                    .map(|s| s.id.clone())
                    .collect();
                if batch.is_empty() {
                    break;
                }
                assert!(batch.len() <= parallel);
                for g in &plan.limits {
                    if let Some(m) = g.max_concurrent {
                        let n = batch.iter().filter(|b| g.steps.contains(b)).count();
                        assert!(n <= m as usize, "{name}: group {} runs {n} > {m}", g.rule);
                    }
                }
                for b in &batch {
                    let s = plan.steps.iter().find(|s| &s.id == b).expect("step");
                    assert!(s.after.iter().all(|a| st.get(a) == Some(&StepState::Done)));
                }
                // With these running, nothing else in a full group may be added.
                let more = next_batch(&plan, &st, &batch, parallel);
                assert!(more.iter().all(|m| !batch.contains(&m.id)));
                for b in batch {
                    st.insert(b, StepState::Done);
                }
                rounds += 1;
            }
            assert_eq!(st.len(), plan.steps.len(), "{name}: every step scheduled");
            if parallel == 1 {
                assert_eq!(rounds, plan.steps.len());
            }
        }
    }
}

#[test]
fn a_failed_step_stops_the_run_and_resume_retries_it() {
    let dir = TempDir::new("fail");
    let plan = example_plan("ucm-standard");
    let j = Journal::open(&dir.0).expect("open");
    let bad = plan.steps[plan.steps.len() / 2].id.clone();
    let mut d = RecordingDriver::default();
    d.fail.insert(bad.clone());
    let r = apply(&j, &plan, &mut d, &TickClock::new(), &Options::default()).expect("apply");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.failed, vec![(bad.clone(), "install failed".to_string())]);
    assert_eq!(
        d.calls.last(),
        Some(&bad),
        "no step starts after the failure"
    );
    assert_eq!(r.done + 1 + r.pending, plan.steps.len());
    assert!(r.pending > 0);
    assert_eq!(j.run(r.run).expect("run").status, RunStatus::Failed);

    let done_before: HashSet<String> = d.calls[..d.calls.len() - 1].iter().cloned().collect();
    let mut d2 = RecordingDriver::default();
    let r2 = resume(&j, r.run, &mut d2, &TickClock::new(), &Options::default()).expect("resume");
    assert_eq!(r2.status, RunStatus::Complete);
    assert_eq!(
        d2.calls.first(),
        Some(&bad),
        "the failed step is tried again first"
    );
    assert!(
        d2.calls.iter().all(|c| !done_before.contains(c)),
        "done steps never re-run"
    );
    assert_eq!(d.calls.len() - 1 + d2.calls.len(), plan.steps.len());
}

#[test]
fn pause_after_then_resume_completes_without_rerunning() {
    let dir = TempDir::new("pause");
    let plan = example_plan("linux-ha-pair");
    let j = Journal::open(&dir.0).expect("open");
    let mut d = RecordingDriver::default();
    let opts = Options {
        pause_after: vec![plan.steps[2].id.clone()],
        ..Options::default()
    };
    // The pause point is wherever that step falls in the executed order.
    let r = apply(&j, &plan, &mut d, &TickClock::new(), &opts).expect("apply");
    assert_eq!(r.status, RunStatus::Paused);
    assert_eq!(d.calls.last(), Some(&plan.steps[2].id));
    assert!(r.pending > 0);
    assert_eq!(j.run(r.run).expect("run").status, RunStatus::Paused);

    let mut d2 = RecordingDriver::default();
    let r2 = resume(&j, r.run, &mut d2, &TickClock::new(), &Options::default()).expect("resume");
    assert_eq!(r2.status, RunStatus::Complete);
    assert!(d2.calls.iter().all(|c| !d.calls.contains(c)));
    assert_eq!(d.calls.len() + d2.calls.len(), plan.steps.len());
    let mut all = d.calls.clone();
    all.extend(d2.calls.iter().cloned());
    assert_order_respects_edges(&plan, &all);
    assert!(states(&j, r.run).values().all(|s| *s == StepState::Done));
}

#[test]
fn an_interrupted_step_is_inspected_before_anything_else() {
    for (said, rerun) in [(Some(Outcome::Done), false), (None, true)] {
        let dir = TempDir::new("crash");
        let plan = example_plan("linux-ha-pair");
        let j = Journal::open(&dir.0).expect("open");
        let lost = plan.steps[3].id.clone();
        let mut d = RecordingDriver::default();
        d.error.insert(lost.clone());
        let err = apply(&j, &plan, &mut d, &TickClock::new(), &Options::default())
            .expect_err("the driver lost the step");
        assert!(matches!(err, ExecError::Driver { ref step, .. } if *step == lost));
        let run = j.latest_run().expect("run");
        assert_eq!(states(&j, run)[&lost], StepState::Running);
        let ran_before = d.calls.clone();

        let mut d2 = RecordingDriver::default();
        if let Some(o) = &said {
            d2.inspect_answers.insert(lost.clone(), o.clone());
        }
        let r = resume(&j, run, &mut d2, &TickClock::new(), &Options::default()).expect("resume");
        assert_eq!(r.status, RunStatus::Complete);
        assert_eq!(
            d2.inspected,
            vec![lost.clone()],
            "only the interrupted step"
        );
        assert_eq!(r.recovered, vec![(lost.clone(), said.clone())]);
        assert_eq!(d2.calls.contains(&lost), rerun, "{said:?}");
        assert!(d2.calls.iter().all(|c| !ran_before.contains(c)));
        assert_eq!(
            ran_before.len() + d2.calls.len() + usize::from(!rerun),
            plan.steps.len()
        );
    }
}

#[test]
fn a_step_that_would_end_after_the_window_is_not_started() {
    let dir = TempDir::new("window");
    let plan = example_plan("linux-ha-pair");
    let j = Journal::open(&dir.0).expect("open");
    let clock = TickClock::new();
    let mut d = RecordingDriver::default();
    let opts = Options {
        window_end: Some(clock.0.get() + 5),
        ..Options::default()
    };
    let r = apply(&j, &plan, &mut d, &clock, &opts).expect("apply");
    assert_eq!(r.status, RunStatus::Stopped);
    assert!(
        r.message.as_deref().unwrap_or("").contains("window"),
        "{r:?}"
    );
    assert!(d.calls.iter().all(|c| {
        plan.steps.iter().find(|s| &s.id == c).expect("step").phase == ferry_model::Phase::Prepare
    }));
}

#[test]
fn the_manual_runbook_completes_a_plan_answered_through_the_journal() {
    let dir = TempDir::new("manual");
    let plan = example_plan("linux-ha-pair");
    let j = Journal::open(&dir.0).expect("open");
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
        resume(&j, run, &mut d, &TickClock::new(), &Options::default()).expect("run")
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
fn the_manual_runbook_reads_typed_answers_and_times_out_without_one() {
    let dir = TempDir::new("typed");
    let plan = example_plan("linux-ha-pair");
    let j = Journal::open(&dir.0).expect("open");
    let typed = "hello\ndone\nfailed  service did not start \n";
    let mut out = Vec::new();
    let r = {
        let mut d = ManualDriver::new(
            &j,
            &plan,
            Input::Lines(Box::new(std::io::Cursor::new(typed))),
            Box::new(&mut out),
            Box::new(|| 7),
        );
        apply(&j, &plan, &mut d, &TickClock::new(), &Options::default()).expect("apply")
    };
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.done, 1);
    assert_eq!(r.failed[0].1, "service did not start");
    assert!(String::from_utf8(out)
        .expect("utf-8")
        .contains("please answer"));
    assert_eq!(parse_answer("skip"), Some(Answer::Skip));
    assert_eq!(parse_answer("later"), None);

    // Polling the journal with no answer gives up after its limit; the step stays started.
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
    let err =
        resume(&j, r.run, &mut d, &TickClock::new(), &Options::default()).expect_err("no answer");
    assert!(matches!(
        err,
        ExecError::Driver {
            source: DriverError::Timeout { .. },
            ..
        }
    ));
    assert_eq!(j.run(r.run).expect("run").status, RunStatus::Stopped);
}
