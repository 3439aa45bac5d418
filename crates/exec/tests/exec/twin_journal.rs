//! The twin driver with its world in a journal on disk (`ferry apply --driver twin`): what it
//! writes per step does not grow with the run.

use super::*;
use ferry_exec::TwinDriver;

/// Bytes this thread has written through system calls (Linux's per-thread I/O accounting):
/// SQLite writes from the thread that commits, so this is what the journal cost the run.
fn thread_bytes_written() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    text.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

/// A site of `clusters` copies of the `linux-ha-pubsub` example (a publisher and four
/// subscribers each, 22 steps), without a booked window.
fn pubsub_fleet(clusters: usize) -> (String, ferry_model::Site, Plan, RunInputs) {
    let example = example_text("linux-ha-pubsub");
    let (head, cluster) = example.split_once("[[cluster]]").expect("a cluster");
    let mut text: String = head
        .lines()
        .filter(|l| !l.starts_with("window"))
        .map(|l| format!("{l}\n"))
        .collect();
    for i in 0..clusters {
        text.push_str("[[cluster]]");
        text.push_str(
            &cluster
                .replace("name = \"db\"", &format!("name = \"db{i}\""))
                .replace("\"db-", &format!("\"db{i}-")),
        );
    }
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site("fleet.toml", &text, &set).unwrap_or_else(|e| panic!("{e:?}"));
    let inputs = RunInputs {
        site_name: "fleet.toml".into(),
        site_text: text.clone(),
        profiles: [(
            "linux-ha".to_string(),
            set.get("linux-ha").expect("linux-ha").text.clone(),
        )]
        .into(),
        strategy: None,
    };
    let plan = ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        inputs.input_hash(),
        &PlanOptions::default(),
    )
    .expect("plan");
    (text, site, plan, inputs)
}

fn used_profiles(site: &ferry_model::Site) -> BTreeMap<String, ferry_model::Profile> {
    let set = ProfileSet::builtin().expect("built-in profiles");
    site.clusters
        .iter()
        .map(|c| {
            (
                c.profile.clone(),
                set.get(&c.profile).expect("profile").profile.clone(),
            )
        })
        .collect()
}

/// Bytes written per step by `apply` through the twin driver with its world in the journal, and
/// the steps that ran.
fn bytes_per_step(clusters: usize) -> (f64, usize) {
    let (_, site, plan, inputs) = pubsub_fleet(clusters);
    let profiles = used_profiles(&site);
    let dir = TempDir::new("twin-bytes");
    let journal = Journal::open(&dir.0).expect("journal");
    let before = thread_bytes_written();
    let mut driver = TwinDriver::persistent(&journal, None, &plan.input_hash, &profiles, || {
        ferry_twin::World::build(&site, &profiles, &plan, &Default::default(), 1)
    })
    .expect("twin");
    let new = NewRun {
        driver: "twin".into(),
        inputs: Some(inputs),
        ..Default::default()
    };
    let opts = Options {
        approve_all: true,
        ..Default::default()
    };
    let report = apply(&journal, &plan, &new, &mut driver, &opts, &mut ()).expect("apply");
    // (A replication gate may time out in a fleet this size: the steps that ran count.)
    assert!(
        report.ran.len() * 5 > plan.steps.len() * 4,
        "{:?}",
        report.message
    );
    let ran = report.ran.len();
    ((thread_bytes_written() - before) as f64 / ran as f64, ran)
}

/// What the journal writes per step of a twin run stays the same whether the run has 88 steps
/// or four times as many: the world is not written again whenever a step ends. (Bytes, not
/// time: the figure does not depend on the machine's speed.)
#[test]
fn the_twin_journal_writes_as_much_per_step_in_a_long_run_as_in_a_short_one() {
    let (short, few) = bytes_per_step(4);
    let (long, many) = bytes_per_step(16);
    eprintln!("bytes written per step: {short:.0} over {few} steps, {long:.0} over {many}");
    assert!(
        long < short * 1.5,
        "bytes written per step: {short:.0} over {few} steps, {long:.0} over {many} ({:.2}x)",
        long / short
    );
}

/// The twin driver, failing as a `kill -9` would at its `crash_at`-th wait: the world moves no
/// further, and what it had not written to the journal is lost with it.
struct Crashing<'j> {
    inner: TwinDriver<'j>,
    waits: usize,
    crash_at: usize,
}

impl Driver for Crashing<'_> {
    fn now(&self) -> i64 {
        self.inner.now()
    }
    fn attach_run(&mut self, run: RunId) -> Result<(), DriverError> {
        self.inner.attach_run(run)
    }
    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        self.inner.start(run, step)
    }
    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        self.waits += 1;
        if self.waits == self.crash_at {
            return Err(DriverError::Other("killed".into()));
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

/// An example's plan without its booked window, the profiles it uses and its inputs.
fn unwindowed(
    example: &str,
) -> (
    ferry_model::Site,
    Plan,
    BTreeMap<String, ferry_model::Profile>,
    RunInputs,
) {
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site(example, &example_text(example), &set).expect("site");
    let mut plan = example_plan(example);
    plan.window = None;
    plan.window_s = None;
    let profiles = used_profiles(&site);
    (site, plan, profiles, example_inputs(example))
}

/// `apply --driver twin` killed at wait after wait, each time resumed from the journal (the
/// world's snapshot and log replayed) until the run completes: every step took effect exactly
/// once in the twin and ended exactly once in the journal, and the world replayed from the
/// journal is the one the last driver carried on with.
#[test]
fn a_twin_run_killed_at_any_wait_resumes_with_every_step_taking_effect_once() {
    for example in ["ucm-standard", "genesys-framework", "linux-ha-pubsub"] {
        let (site, plan, profiles, inputs) = unwindowed(example);
        let build = || ferry_twin::World::build(&site, &profiles, &plan, &Default::default(), 3);
        let new = NewRun {
            driver: "twin".into(),
            inputs: Some(inputs),
            ..Default::default()
        };
        let opts = Options {
            approve_all: true,
            ..Default::default()
        };
        for first in [1, 2, 5, 9] {
            let dir = TempDir::new("twin-kill");
            let journal = Journal::open(&dir.0).expect("journal");
            let mut crash_at = first;
            let mut d = Crashing {
                inner: TwinDriver::persistent(&journal, None, &plan.input_hash, &profiles, build)
                    .expect("twin"),
                waits: 0,
                crash_at,
            };
            let mut result = apply(&journal, &plan, &new, &mut d, &opts, &mut ());
            let mut crashes = 0;
            let world = loop {
                match result {
                    Ok(report) => {
                        assert_eq!(report.status, RunStatus::Complete, "{example}: {report:?}");
                        break d.inner.into_world();
                    }
                    Err(ExecError::Driver { .. }) => crashes += 1,
                    Err(e) => panic!("{example}: {e}"),
                }
                assert!(crashes < 100, "{example}: never completes");
                crash_at += 3;
                d = Crashing {
                    inner: TwinDriver::persistent(
                        &journal,
                        Some(1),
                        &plan.input_hash,
                        &profiles,
                        build,
                    )
                    .expect("the twin from the journal"),
                    waits: 0,
                    crash_at,
                };
                result = resume(&journal, 1, &mut d, &opts, &mut ());
            };
            assert!(crashes > 0, "{example}: killed at least once");
            let events = journal.events(1).expect("events");
            for s in &plan.steps {
                let record = &world.records[&(1, s.id.clone())];
                assert_eq!(
                    record.applications, 1,
                    "{example} (first kill at wait {first}): {} took effect {} times",
                    s.id, record.applications
                );
                let ends = events
                    .iter()
                    .filter(|e| e.step == s.id && e.event != Event::Started)
                    .count();
                assert_eq!(
                    ends, 1,
                    "{example}: {} ended {ends} times in the journal",
                    s.id
                );
            }
            let replayed = ferry_exec::saved_world(&journal, 1, &profiles)
                .expect("replay")
                .expect("a world");
            assert_eq!(
                serde_json::to_value(&replayed).expect("json"),
                serde_json::to_value(&world).expect("json"),
                "{example}: the replayed world is the world"
            );
        }
    }
}
