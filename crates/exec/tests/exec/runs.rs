//! One run at a time on a set of nodes, in one state directory: a run that another process
//! carries out (it holds the run's lock) keeps every other `apply` and `resume` on any of its
//! nodes out, whatever the driver.

use super::*;

fn scripted() -> ScriptDriver {
    let world = Rc::new(RefCell::new(World {
        now: 1_000_000,
        ..World::default()
    }));
    ScriptDriver::new(&world, Script::default())
}

fn new_run(example: &str) -> NewRun {
    NewRun {
        kind: RunKind::Apply,
        driver: "twin".into(),
        inputs: Some(example_inputs(example)),
        ..Default::default()
    }
}

fn unwindowed(example: &str) -> Plan {
    let mut plan = example_plan(example);
    plan.window = None;
    plan.window_s = None;
    plan
}

/// While another process carries out run 1 (it holds the lock), a new run of the same plan
/// and a resume of an earlier run on the same nodes are refused, naming run 1; a site on other
/// nodes goes ahead.
#[test]
fn a_run_under_way_keeps_other_runs_off_its_nodes() {
    let dir = TempDir::new("under-way");
    let plan = unwindowed("linux-ha-pair");
    let other = unwindowed("linux-ha-pubsub");
    let opts = Options::default();
    // Run 1, paused earlier, then run 2, being carried out by "another process".
    let elsewhere = Journal::open(&dir.0).expect("journal");
    let paused = elsewhere
        .create_run(&plan, 10, &new_run("linux-ha-pair"))
        .expect("run 1");
    elsewhere
        .set_status(paused, RunStatus::Paused)
        .expect("paused");
    let busy = elsewhere
        .create_run(&plan, 20, &new_run("linux-ha-pair"))
        .expect("run 2");
    let _lock = elsewhere.lock_run(busy).expect("lock");

    let here = Journal::open(&dir.0).expect("journal");
    let refused = |what: &str, r: Result<Report, ExecError>| {
        let e = match r {
            Ok(report) => panic!("{what}: ran as run {}: {report:?}", report.run),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(&format!("run {busy}")) && e.contains("being carried out"),
            "{what}: {e}"
        );
        assert!(e.contains("kv/kv-a"), "{what} names the nodes: {e}");
    };
    let mut d = scripted();
    refused(
        "a new run",
        apply(
            &here,
            &plan,
            &new_run("linux-ha-pair"),
            &mut d,
            &opts,
            &mut (),
        ),
    );
    refused("a resume", resume(&here, paused, &mut d, &opts, &mut ()));
    assert_eq!(here.runs().expect("runs").len(), 2, "no run was added");
    let report = apply(
        &here,
        &other,
        &new_run("linux-ha-pubsub"),
        &mut d,
        &opts,
        &mut (),
    )
    .expect("another site's run");
    assert_eq!(report.status, RunStatus::Complete);
}
