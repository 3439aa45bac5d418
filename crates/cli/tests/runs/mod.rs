//! Runs that share a state directory: one run at a time on a set of nodes (a second `apply` on
//! them is refused while one is under way or unfinished, `--supersede` starts it knowingly),
//! the twin's world kept per run (another site's run does not replace it; a journal from the
//! ferry before that still resumes), `status` on a read-only journal, and a database that is
//! not a ferry journal refused and left untouched.

use super::*;

/// `ferry apply PLAN --site SITE --state STATE --driver twin --approve EXTRA...`.
fn twin_apply(plan: &str, site: &str, state: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "apply",
        plan,
        "--site",
        site,
        "--state",
        state,
        "--driver",
        "twin",
        "--approve",
    ];
    args.extend_from_slice(extra);
    ferry(&args)
}

fn said(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// Two `ferry apply` runs of the same plan on one state directory: the second is refused
/// (exit 2, naming the run under way) while the first is carried out, and after it was killed
/// (the run is then unfinished: `resume`, `rollback` or `--supersede`); a site with no node in
/// common runs beside it; a copy of the site under another name, on the same nodes, does not.
#[test]
fn a_second_apply_on_the_same_nodes_is_refused_while_a_run_is_under_way_or_unfinished() {
    let dir = Scratch::new("one-run-per-nodes");
    let (site, plan, _) = plan_example_into(&dir, "linux-ha-pair");
    let state = dir.path("state");
    // Run 1: the manual runbook, waiting for answers that never come.
    let mut first = spawn(&["apply", &plan, "--site", &site, "--state", &state, "--yes"]);
    wait_for_status(&state, "1", |j| {
        j["active"] == true
            && j["steps"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["state"] == "running"))
    });
    // The same plan again, through the twin: refused, naming run 1 under way.
    let o = twin_apply(&plan, &site, &state, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    let e = stderr(&o);
    assert!(
        e.contains("run 1") && e.contains("being carried out"),
        "{e}"
    );
    assert!(e.contains("kv/kv-a"), "names the nodes in common: {e}");
    // Another site, on other nodes: it runs beside run 1 (as run 2).
    let other = Scratch::new("one-run-per-nodes-other");
    let (other_site, other_plan, _) = plan_example_into(&other, "linux-ha-pubsub");
    let o = twin_apply(&other_plan, &other_site, &state, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    // The same nodes under another site name: refused (a node is its address, or its name).
    let copy = Scratch::new("one-run-per-nodes-copy");
    let text = std::fs::read_to_string(&site)
        .expect("site")
        .replace("name = \"lab-pair\"", "name = \"lab-pair-copy\"");
    let copy_site = copy.path("site.toml");
    std::fs::write(&copy_site, text).expect("site copy");
    let copy_plan = copy.path("plan.json");
    let o = ferry(&["plan", &copy_site, "--format", "json", "-o", &copy_plan]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = twin_apply(&copy_plan, &copy_site, &state, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(stderr(&o).contains("run 1"), "{}", stderr(&o));

    // kill -9: run 1 is no longer under way, but unfinished on these nodes.
    first.kill().expect("kill apply");
    first.wait().expect("reap apply");
    let o = twin_apply(&plan, &site, &state, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    let e = stderr(&o);
    for part in [
        "run 1",
        "not finished",
        &format!("ferry resume --state {state} 1"),
        &format!("ferry rollback --state {state} 1"),
        "--supersede",
    ] {
        assert!(e.contains(part), "{part:?} not in {e}");
    }
    let runs = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(runs["runs"].as_array().expect("runs").len(), 2, "{runs}");
    // Knowingly: run 3 starts, and run 1 is marked as superseded by it.
    let o = twin_apply(&plan, &site, &state, &["--supersede"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let j = json(&ferry(&[
        "status", "1", "--state", &state, "--format", "json",
    ]));
    assert_eq!(j["run"]["superseded_by"], 3, "{j}");
    assert!(stdout(&ferry(&["status", "1", "--state", &state])).contains("superseded by run 3"));
    // The latest run on these nodes is complete: a new apply goes ahead.
    let o = twin_apply(&plan, &site, &state, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
}

/// The twin's world is kept per run: a second site's run in the same state directory does not
/// replace the first's, so resuming the first carries on with its own world.
#[test]
fn another_sites_twin_run_does_not_replace_the_world_of_a_paused_one() {
    let dir = Scratch::new("twin-per-run");
    let (site, plan, ids) = plan_example_into(&dir, "linux-ha-pair");
    let state = dir.path("state");
    let o = twin_apply(&plan, &site, &state, &["--pause-after", "kv/kv-b/stage"]);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert!(stdout(&o).contains("paused"), "{}", stdout(&o));
    let other = Scratch::new("twin-per-run-other");
    let (other_site, other_plan, other_ids) = plan_example_into(&other, "linux-ha-pubsub");
    let o = twin_apply(&other_plan, &other_site, &state, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let o = ferry(&["resume", "1", "--state", &state, "--approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    // Each run's twin saw each of its steps take effect once.
    for (run, ids) in [(1, &ids), (2, &other_ids)] {
        let record = twin_record_of(&state, run);
        assert_eq!(record.len(), ids.len(), "run {run}");
        for id in ids {
            assert_eq!(record[id], (1, "done".to_string()), "run {run}: {id}");
        }
    }
}

/// A journal written by the ferry before worlds were kept per run (commit 447c0ec: the twin
/// in the driver state `twin`), paused after `kv/kv-b/stage` of `linux-ha-pair` with seed 7:
/// `resume` carries on with its saved world, every step taking effect once.
#[test]
fn a_journal_written_before_per_run_twin_worlds_still_resumes() {
    let dir = Scratch::new("old-twin-journal");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).expect("state");
    let sql = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/journal-twin-paused-447c0ec.sql"),
    )
    .expect("fixture");
    let c = rusqlite::Connection::open(PathBuf::from(&state).join("journal.sqlite")).expect("db");
    c.execute_batch(&sql).expect("the old journal");
    c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .expect("wal");
    drop(c);
    let st = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(st["run"]["status"], "paused", "{st}");
    let o = ferry(&["resume", "--state", &state, "--approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let st = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    let ids: Vec<String> = st["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    let record = twin_record_of(&state, 1);
    assert_eq!(record.len(), ids.len());
    for id in &ids {
        assert_eq!(record[id], (1, "done".to_string()), "{id}");
    }
}

/// Runs `ferry ARGS` as an unprivileged user when this test runs as root (root writes through
/// any permission), so that a read-only journal is read-only for it.
/// The binary is linked (or copied) into `dir` first: the checkout it was built in may sit in a
/// directory only root can enter (a `mktemp -d` folder is mode 0700).
fn ferry_unprivileged(dir: &Scratch, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let bin = dir.path("ferry-bin");
    if !std::path::Path::new(&bin).exists() {
        std::fs::hard_link(env!("CARGO_BIN_EXE_ferry"), &bin)
            .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_ferry"), &bin).map(|_| ()))
            .expect("put the ferry binary where an unprivileged user can run it");
    }
    let mut c = Command::new(&bin);
    c.args(args).env("NO_COLOR", "1");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.uid(65534).gid(65534);
    }
    c.output().expect("run ferry")
}

/// Every file of a directory with its bytes.
fn files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("file"),
            )
        })
        .collect();
    out.sort();
    out
}

fn set_mode(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `status` reads a journal it cannot write (the files and the directory read-only), and
/// changes nothing there.
#[test]
fn status_reads_a_read_only_journal_and_changes_nothing() {
    let dir = Scratch::new("read-only");
    let (site, plan, _) = plan_example_into(&dir, "linux-ha-pair");
    let state = dir.path("state");
    let o = twin_apply(&plan, &site, &state, &["--pause-after", "kv/kv-b/stage"]);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    let before = files(&state);
    for (name, _) in &before {
        set_mode(&format!("{state}/{name}"), 0o444);
    }
    set_mode(&state, 0o555);
    let text = ferry_unprivileged(&dir, &["status", "--state", &state]);
    let j = ferry_unprivileged(
        &dir,
        &["status", "1", "--state", &state, "--format", "json"],
    );
    set_mode(&state, 0o755);
    assert_eq!(text.status.code(), Some(0), "{}", said(&text));
    assert!(stdout(&text).contains("status paused"), "{}", stdout(&text));
    assert_eq!(j.status.code(), Some(0), "{}", said(&j));
    assert_eq!(json(&j)["run"]["status"], "paused");
    assert_eq!(files(&state), before, "status changed the state directory");
}

/// A file at `journal.sqlite` that is not a ferry journal (another program's SQLite database,
/// or not a database at all) is refused with exit 2 by every command, and left as it was.
#[test]
fn a_database_that_is_not_a_ferry_journal_is_refused_and_left_untouched() {
    let dir = Scratch::new("foreign");
    let (site, plan, _) = plan_example_into(&dir, "linux-ha-pair");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).expect("state");
    let db = format!("{state}/journal.sqlite");
    let c = rusqlite::Connection::open(&db).expect("db");
    c.execute_batch(
        "CREATE TABLE contacts (name TEXT, phone TEXT);
         INSERT INTO contacts VALUES ('Ann', '555-0100');",
    )
    .expect("a foreign database");
    drop(c);
    let check = |what: &str| {
        let before = files(&state);
        for args in [
            vec!["status", "--state", &state],
            vec!["resume", "--state", &state],
            vec!["rollback", "--state", &state],
            vec!["step", "done", "kv/kv-a/snapshot-config", "--state", &state],
            vec!["apply", &plan, "--site", &site, "--state", &state, "--yes"],
            vec!["plan", &site, "--estimates-from", &state],
        ] {
            let o = ferry(&args);
            assert_eq!(o.status.code(), Some(2), "{what} {args:?}: {}", said(&o));
            assert!(
                stderr(&o).contains("is not a ferry journal"),
                "{what} {args:?}: {}",
                stderr(&o)
            );
            assert_eq!(files(&state), before, "{what} {args:?} changed it");
        }
    };
    check("another program's database");
    std::fs::write(&db, "name,phone\nAnn,555-0100\n").expect("text");
    check("a text file");
}
