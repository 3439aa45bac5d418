//! The `ferry` binary as a user runs it: exit codes, output formats, determinism, `--explain`,
//! diagnostics for bad input, and snapshots of every example's report and plan.

use std::path::PathBuf;

mod agent;
mod board;
mod conventions;
mod discover;
mod fuzz;
mod gates;
mod hardening;
mod odds;
mod runs;
mod safety;
mod schema;
use std::process::{Command, Output};

/// Runs ferry as a user would; `check` judges the booked window as of a moment before every
/// built-in example's window (`FERRY_NOW`), so their reports do not change with the date.
fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("FERRY_NOW", "2026-06-01T00:00:00Z")
        .output()
        .expect("run ferry")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn examples() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("examples dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    names.sort();
    names
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn every_example_checks_with_the_expected_exit_code() {
    for name in examples() {
        let o = ferry(&["check", &format!("example:{name}")]);
        let want = if name.contains("inhibitors") { 1 } else { 0 };
        assert_eq!(
            o.status.code(),
            Some(want),
            "{name}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let j = json(&ferry(&[
            "check",
            &format!("example:{name}"),
            "--format",
            "json",
        ]));
        assert_eq!(j["schema_version"], 1);
        let inhibitors = j["inhibitors"].as_u64().expect("inhibitors count");
        assert_eq!(inhibitors > 0, want == 1, "{name}");
        for f in j["findings"].as_array().expect("findings") {
            for key in [
                "key", "rule", "severity", "cluster", "node", "message", "remedy",
            ] {
                assert!(f.get(key).is_some(), "{name}: finding lacks {key}: {f}");
            }
        }
    }
}

#[test]
fn inhibitor_examples_find_several_distinct_rules() {
    for name in examples().into_iter().filter(|n| n.contains("inhibitors")) {
        let j = json(&ferry(&[
            "check",
            &format!("example:{name}"),
            "--format",
            "json",
        ]));
        let rules: std::collections::BTreeSet<&str> = j["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["severity"] == "inhibitor")
            .filter_map(|f| f["rule"].as_str())
            .collect();
        assert!(rules.len() >= 2, "{name}: inhibitor rules {rules:?}");
    }
}

#[test]
fn every_example_plans_in_every_format_byte_identically() {
    for name in examples() {
        let site = format!("example:{name}");
        for format in ["text", "json", "mop", "svg", "dot"] {
            let a = ferry(&["plan", &site, "--format", format]);
            assert_eq!(a.status.code(), Some(0), "{name} {format}: {}", stderr(&a));
            let b = ferry(&["plan", &site, "--format", format]);
            assert_eq!(a.stdout, b.stdout, "{name} {format}: two runs differ");
            assert!(!a.stdout.is_empty());
        }
    }
}

#[test]
fn plan_json_keeps_its_contract() {
    for name in examples() {
        let j = json(&ferry(&[
            "plan",
            &format!("example:{name}"),
            "--format",
            "json",
        ]));
        for key in [
            "schema_version",
            "input_hash",
            "clusters",
            "steps",
            "makespan_s",
            "lower_bound_s",
            "sequential_s",
            "findings",
        ] {
            assert!(j.get(key).is_some(), "{name}: plan lacks {key}");
        }
        assert_eq!(j["input_hash"].as_str().map(str::len), Some(64));
        for c in j["clusters"].as_array().expect("clusters") {
            for key in ["name", "profile", "from", "target", "path", "upgrade_type"] {
                assert!(c.get(key).is_some(), "{name}: cluster lacks {key}");
            }
        }
        let steps = j["steps"].as_array().expect("steps");
        assert!(!steps.is_empty(), "{name}: no steps");
        let ids: std::collections::BTreeSet<&str> =
            steps.iter().filter_map(|s| s["id"].as_str()).collect();
        for s in steps {
            for key in [
                "id",
                "cluster",
                "node",
                "action",
                "after",
                "rules",
                "start_s",
                "duration_s",
                "impact",
                "phase",
            ] {
                assert!(s.get(key).is_some(), "{name}: step lacks {key}");
            }
            assert!(
                ["prepare", "staging", "window"].contains(&s["phase"].as_str().unwrap_or("")),
                "{name}: {} has phase {}",
                s["id"],
                s["phase"]
            );
            assert!(
                !s["rules"].as_array().expect("rules").is_empty(),
                "{name}: {} has no rule",
                s["id"]
            );
            for a in s["after"].as_array().expect("after") {
                assert!(
                    ids.contains(a.as_str().expect("id")),
                    "{name}: {} waits for unknown {a}",
                    s["id"]
                );
            }
        }
        let (m, lb, seq) = (
            j["makespan_s"].as_u64().unwrap(),
            j["lower_bound_s"].as_u64().unwrap(),
            j["sequential_s"].as_u64().unwrap(),
        );
        assert!(
            lb <= m && m <= seq,
            "{name}: lower bound {lb} <= window {m} <= sequential {seq}"
        );
    }
}

#[test]
fn every_step_of_every_example_can_be_explained() {
    for name in examples() {
        let j = json(&ferry(&[
            "plan",
            &format!("example:{name}"),
            "--format",
            "json",
        ]));
        let steps = j["steps"].as_array().expect("steps");
        // Through the binary for the first and last step; the library covers the rest quickly.
        for s in [steps.first(), steps.last()].into_iter().flatten() {
            let id = s["id"].as_str().expect("id");
            let o = ferry(&["plan", &format!("example:{name}"), "--explain", id]);
            assert_eq!(o.status.code(), Some(0), "{name} {id}: {}", stderr(&o));
            assert!(stdout(&o).starts_with(id), "{}", stdout(&o));
        }
        let plan: ferry_model::Plan =
            serde_json::from_value(j.clone()).expect("plan JSON reads back");
        for s in &plan.steps {
            let text = ferry_plan::explain(&plan, &s.id).expect("explained");
            for e in plan.edges.iter().filter(|e| e.to == s.id) {
                assert!(
                    text.contains(&e.rule),
                    "{name}: explanation of {} lacks {}",
                    s.id,
                    e.rule
                );
            }
        }
    }
}

/// `ferry profiles show` documents the facts a profile reads, typed: avaya-cms-ha's
/// `acd_links_local` (CMS-05, ACD link connections over LAN facilities local to Communication
/// Manager).
#[test]
fn profiles_show_documents_a_fact_with_its_type_cms_05() {
    let o = ferry(&["profiles", "show", "avaya-cms-ha"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let at = text
        .find("name = \"acd_links_local\"\n")
        .expect("the fact is shown");
    let entry: Vec<&str> = text[at..].lines().take(3).collect();
    assert_eq!(entry[1], "type = \"bool\"", "{entry:?}");
    assert!(
        entry[2].contains("LAN facilities local to its Communication Manager system"),
        "{entry:?}"
    );
    assert!(text.contains("test.node = { fact = { name = \"acd_links_local\", eq = false } }"));
}

#[test]
fn explain_of_an_unknown_step_is_bad_input() {
    let o = ferry(&[
        "plan",
        "example:linux-ha-pair",
        "--explain",
        "kv/kv-a/swich",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no step `kv/kv-a/swich`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn malformed_input_exits_2_naming_file_line_and_key() {
    let dir = tempdir();
    let site = dir.join("bad-site.toml");
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/linux-ha-pair.toml"),
    )
    .unwrap();
    std::fs::write(
        &site,
        text.replacen("role = \"backup\"", "role = \"standby\"", 1),
    )
    .unwrap();
    for cmd in ["check", "plan"] {
        let o = ferry(&[cmd, site.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let err = stderr(&o);
        assert!(err.contains("bad-site.toml:20"), "{err}");
        assert!(err.contains("cluster[0].node[1].role"), "{err}");
        assert!(o.stdout.is_empty(), "nothing on stdout for bad input");
    }
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("broken.toml"),
        "[profile]\nname = \"broken\"\ntitle = \"x\"\n\n[[role]]\nname = \"a\"\nmax = \"one\"\n",
    )
    .unwrap();
    let o = ferry(&[
        "--profiles",
        profiles.to_str().unwrap(),
        "check",
        "example:linux-ha-pair",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("broken.toml:7"), "{}", stderr(&o));
    let o = ferry(&["check", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.toml"), "{}", stderr(&o));
    let o = ferry(&["plan", "example:linux-ha-pair", "--strategy", "reckless"]);
    assert_eq!(o.status.code(), Some(2));
    let o = ferry(&["plan"]);
    assert_eq!(o.status.code(), Some(2));
    let o = ferry(&[
        "plan",
        "example:linux-ha-pair",
        "-o",
        dir.join("no/such/dir/plan.txt").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    let o = ferry(&["check", "example:no-such-example"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("examples: "), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plan_writes_to_a_file_with_output() {
    let dir = tempdir();
    let out = dir.join("plan.svg");
    let o = ferry(&[
        "plan",
        "example:linux-ha-pair",
        "--format",
        "svg",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..40.min(svg.len())]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshots_of_every_example() {
    for name in examples() {
        let site = format!("example:{name}");
        insta::assert_snapshot!(format!("{name}-check"), stdout(&ferry(&["check", &site])));
        insta::assert_snapshot!(format!("{name}-plan"), stdout(&ferry(&["plan", &site])));
        insta::assert_snapshot!(
            format!("{name}-mop"),
            stdout(&ferry(&["plan", &site, "--format", "mop"]))
        );
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(
        format!(
            "ferry-cli-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], ""),
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scratch directory under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("ferry-cli-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the built-in example `name` into `dir` as `site.toml`, its window booked from now
/// (`ferry examples NAME --window-start now`): runs on the real clock pass on any date.
fn example_site_from_now(dir: &Scratch, name: &str) -> String {
    let o = ferry(&["examples", name, "--window-start", "now"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let site = dir.path("site.toml");
    std::fs::write(&site, &o.stdout).expect("write site");
    site
}

fn plan_site_into(dir: &Scratch) -> (String, String) {
    let site = example_site_from_now(dir, "linux-ha-pair");
    let plan = dir.path("plan.json");
    let o = ferry(&["plan", &site, "--format", "json", "-o", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (site, plan)
}

#[test]
fn apply_refuses_a_plan_whose_site_changed() {
    let dir = Scratch::new("changed");
    let (site, plan) = plan_site_into(&dir);
    let mut text = std::fs::read_to_string(&site).expect("site");
    text.push_str("\n# edited after planning\n");
    std::fs::write(&site, text).expect("edit site");
    let state = dir.path("state");
    let o = ferry(&["apply", &plan, "--site", &site, "--state", &state]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed since this plan was made"),
        "{}",
        stderr(&o)
    );
    assert!(!PathBuf::from(&state).exists(), "bad input changes nothing");
}

#[test]
fn apply_with_the_manual_driver_answered_by_ferry_step() {
    let dir = Scratch::new("manual");
    let (site, plan_path) = plan_site_into(&dir);
    let state = dir.path("state");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).expect("plan")).expect("json");
    let ids: Vec<String> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "apply", &plan_path, "--site", &site, "--state", &state, "--yes",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn apply");
    // Wait for the run to be journaled, then answer every step ahead of time.
    let mut tries = 0;
    while ferry(&["status", "--state", &state]).status.code() != Some(0) {
        tries += 1;
        assert!(tries < 200, "the run never appeared in the journal");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = ferry(&["step", "done", "no/such/step", "--state", &state]);
    assert_eq!(o.status.code(), Some(2));
    for (i, id) in ids.iter().enumerate() {
        let verb = if i == 1 { "skip" } else { "done" };
        let o = ferry(&["step", verb, id, "--state", &state, "--early"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let out = child.wait_with_output().expect("apply ends");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("step 1/{}", ids.len())));
    assert!(text.contains("complete"));
    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j["run"]["status"], "complete");
    let states: Vec<&str> = j["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "skipped").count(), 1);
    assert_eq!(
        states.iter().filter(|s| **s == "done").count(),
        ids.len() - 1
    );
    // Nothing left to do: resume completes at once.
    let o = ferry(&["resume", "--state", &state]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn plan_example_into(dir: &Scratch, example: &str) -> (String, String, Vec<String>) {
    let site = example_site_from_now(dir, example);
    let plan = dir.path("plan.json");
    let o = ferry(&["plan", &site, "--format", "json", "-o", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");
    let ids = j["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    (site, plan, ids)
}

/// Starts `ferry ARGS` with no standard input (the manual driver then reads the journal).
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ferry")
}

/// Polls `ferry status` of `run` until `ready` holds for its JSON (for up to two minutes: a
/// loaded machine starts processes slowly).
fn wait_for_status(state: &str, run: &str, ready: impl Fn(&serde_json::Value) -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < until {
        let o = ferry(&["status", run, "--state", state, "--format", "json"]);
        if o.status.code() == Some(0) && ready(&json(&o)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("run {run} in {state} never reached the awaited state");
}

#[test]
fn a_pause_step_waits_for_ferry_approve_and_status_shows_the_approval() {
    let dir = Scratch::new("approve");
    let (site, plan, ids) = plan_example_into(&dir, "ucm-refresh");
    let state = dir.path("state");
    let pause = "ucm-plant/start-parallel-refresh";
    assert!(ids.iter().any(|i| i == pause));
    let child = spawn(&["apply", &plan, "--site", &site, "--state", &state, "--yes"]);
    wait_for_status(&state, "1", |_| true);
    // Every step answered ahead of time; the pause step still needs its approval.
    for id in &ids {
        let o = ferry(&["step", "done", id, "--state", &state, "--early"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let out = child.wait_with_output().expect("apply ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "waiting for approval of {pause}: ferry approve {pause}"
        )),
        "{text}"
    );
    // Only pause steps of the run can be approved.
    for bad_step in [ids[0].as_str(), "no/such/step"] {
        let o = ferry(&["approve", bad_step, "--state", &state]);
        assert_eq!(o.status.code(), Some(2), "{bad_step}: {}", stdout(&o));
    }
    let o = ferry(&["approve", pause, "--state", &state, "--by", "quinn"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j["run"]["status"], "paused");
    assert_eq!(j["run"]["kind"], "apply");
    assert_eq!(j["run"]["driver"], "manual");
    assert_eq!(j["run"]["parent"], serde_json::Value::Null);
    assert_eq!(j["active"], false);
    assert_eq!(j["approvals"][0]["step"], pause);
    assert_eq!(j["approvals"][0]["by"], "quinn");
    let steps = j["steps"].as_array().expect("steps");
    assert!(steps.iter().all(|s| s["attempts"].is_u64()));
    assert!(steps
        .iter()
        .any(|s| s["attempts"] == 1 && s["state"] == "done"));
    let text = stdout(&ferry(&["status", "--state", &state]));
    assert!(
        text.contains("approvals:") && text.contains(pause),
        "{text}"
    );

    let o = ferry(&["resume", "--state", &state]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("] done "),
        "plain progress lines: {}",
        stdout(&o)
    );

    // The journal's durations feed a new plan's estimates; these steps were mostly answered
    // before they started (`--early`), which teaches no duration (the safety tests show what
    // is learned and what is not).
    let o = ferry(&[
        "plan",
        &site,
        "--format",
        "json",
        "--estimates-from",
        &state,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = json(&o);
    assert!(!p["steps"].as_array().expect("steps").is_empty());
    let o = ferry(&["plan", &site, "--estimates-from", &dir.path("nothing-here")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no journal"), "{}", stderr(&o));
}

#[test]
fn a_run_under_way_cannot_be_rolled_back_and_an_interrupted_one_can() {
    let dir = Scratch::new("rollback");
    let (site, plan, _) = plan_example_into(&dir, "linux-ha-pair");
    let state = dir.path("state");
    let mut child = spawn(&["apply", &plan, "--site", &site, "--state", &state, "--yes"]);
    wait_for_status(&state, "1", |j| {
        j["steps"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["state"] == "running"))
    });
    let o = ferry(&["rollback", "--state", &state]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("is running now"), "{}", stderr(&o));
    assert!(stdout(&ferry(&["status", "--state", &state])).contains("status running  driver"));

    // kill -9: the run is interrupted, not running.
    child.kill().expect("kill apply");
    child.wait().expect("reap apply");
    assert!(stdout(&ferry(&["status", "--state", &state])).contains("(interrupted)"));

    let rollback = spawn(&["rollback", "1", "--state", &state, "--yes"]);
    wait_for_status(&state, "2", |_| true);
    let j = json(&ferry(&[
        "status", "2", "--state", &state, "--format", "json",
    ]));
    assert_eq!(j["run"]["kind"], "rollback");
    assert_eq!(j["run"]["parent"], 1);
    let ids: Vec<String> = j["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    assert!(!ids.is_empty());
    for id in &ids {
        let o = ferry(&[
            "step", "done", id, "--run", "2", "--state", &state, "--early",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let out = rollback.wait_with_output().expect("rollback ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("rolling back run 1"), "{text}");
    assert!(text.contains("rollback run 2: complete"), "{text}");
    // A rollback is not rolled back in turn.
    let o = ferry(&["rollback", "2", "--state", &state]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn run_commands_on_a_missing_journal_or_with_bad_arguments_exit_2() {
    let dir = Scratch::new("bad-run-args");
    let (site, plan, _) = plan_example_into(&dir, "linux-ha-pair");
    let missing = dir.path("no-state");
    for args in [
        vec!["resume", "--state", &missing],
        vec!["rollback", "--state", &missing],
        vec!["status", "--state", &missing],
        vec!["approve", "x/y", "--state", &missing],
        vec!["step", "done", "x/y", "--state", &missing],
        vec!["apply", &plan, "--site", &site, "--policy", "sometimes"],
        vec!["apply", &plan, "--site", &site, "--parallel", "0"],
        vec![
            "apply",
            &plan,
            "--site",
            &site,
            "--driver",
            "carrier-pigeon",
        ],
    ] {
        let o = ferry(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}: says why");
    }
    assert!(
        !PathBuf::from(&missing).exists(),
        "bad input changes nothing"
    );
    let help = stdout(&ferry(&["apply", "--help"]));
    for word in [
        "--parallel",
        "--policy",
        "--approve",
        "rollback-node",
        "ferry approve",
    ] {
        assert!(help.contains(word), "apply --help mentions {word}");
    }
}

/// A small deterministic generator for the moments the test kills `ferry` at.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs `ferry ARGS`, killing it (SIGKILL) after `after_ms` unless it ends first. Returns its
/// exit code, or `None` when it was killed.
fn run_or_kill(args: &[&str], after_ms: u64) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ferry");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(after_ms);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if std::time::Instant::now() >= deadline {
            child.kill().expect("kill -9");
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// How many times each step of run 1 took effect in the twin, read from the twin's own record
/// saved in the journal (the witness), and each step's outcome there.
fn twin_record(state: &str) -> std::collections::BTreeMap<String, (u64, String)> {
    twin_record_of(state, 1)
}

/// As `twin_record`, for run `run`: its world replayed from the journal.
fn twin_record_of(state: &str, run: i64) -> std::collections::BTreeMap<String, (u64, String)> {
    let journal =
        ferry_exec::Journal::open_read_only(std::path::Path::new(state)).expect("journal");
    let world = ferry_exec::run_world(&journal, run)
        .expect("the twin's world")
        .expect("the twin is saved");
    world
        .records
        .iter()
        .filter(|((r, _), _)| *r == run)
        .map(|((_, id), rec)| {
            let outcome = match &rec.outcome {
                Some(ferry_model::Outcome::Done) => "done",
                Some(ferry_model::Outcome::Skipped) => "skipped",
                Some(ferry_model::Outcome::Failed(_)) => "failed",
                None => "-",
            };
            (
                id.clone(),
                (u64::from(rec.applications), outcome.to_string()),
            )
        })
        .collect()
}

#[test]
fn apply_killed_at_random_points_resumes_with_no_step_applied_twice_or_skipped() {
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let mut kills = 0;
    let sites = [
        "ucm-standard",
        "ucm-refresh",
        "ccm4-large",
        "genesys-framework",
        "cms-ha",
        "linux-ha-pubsub",
    ];
    let mut round = 0;
    while kills < 210 {
        for example in sites {
            round += 1;
            let dir = Scratch::new(&format!("kill-{round}"));
            let (site, plan, ids) = plan_example_into(&dir, example);
            let state = dir.path("state");
            // How long an uninterrupted run takes here, to kill within it.
            let probe = dir.path("probe");
            let t0 = std::time::Instant::now();
            let full = [
                "apply",
                &plan,
                "--site",
                &site,
                "--driver",
                "twin",
                "--approve",
                "--state",
                &probe,
            ];
            assert_eq!(run_or_kill(&full, 600_000), Some(0), "{example} completes");
            let span = t0.elapsed().as_millis() as u64 + 20;
            // Apply, then resume, killed at random moments until a call completes the run.
            // The twin draws durations around the plan's, so a resumed run may find the rest
            // of the booked window too short as planned; the window is not what this test is
            // about (`--ignore-window`, journaled, holds for the resumes too).
            let apply = [
                "apply",
                &plan,
                "--site",
                &site,
                "--driver",
                "twin",
                "--approve",
                "--ignore-window",
                "--state",
                &state,
            ];
            let resume = ["resume", "--state", &state, "--approve"];
            let mut started = false;
            let mut attempts = 0;
            loop {
                attempts += 1;
                assert!(attempts < 200, "{example}: the run never completed");
                let args: &[&str] = if started { &resume } else { &apply };
                // The later attempts are left to finish, so that every run ends.
                let after = if attempts > 6 {
                    600_000
                } else {
                    dice.below(span)
                };
                match run_or_kill(args, after) {
                    Some(0) => break,
                    Some(code) => {
                        // Killed before the run existed: `resume` finds no run (exit 2).
                        assert!(!started || code != 1, "{example}: exit {code}");
                        started = std::path::Path::new(&state).join("journal.sqlite").exists()
                            && ferry(&["status", "--state", &state]).status.code() == Some(0);
                    }
                    None => {
                        kills += 1;
                        started = std::path::Path::new(&state).join("journal.sqlite").exists()
                            && ferry(&["status", "--state", &state]).status.code() == Some(0);
                    }
                }
            }
            // The journal: the run is complete, every step ended exactly once as done or skipped.
            let st = json(&ferry(&[
                "status", "1", "--state", &state, "--format", "json",
            ]));
            assert_eq!(st["run"]["status"], "complete", "{example}");
            let journal = ferry_exec::Journal::open(std::path::Path::new(&state)).unwrap();
            let events = journal.events(1).unwrap();
            for id in &ids {
                let ends = events
                    .iter()
                    .filter(|e| &e.step == id && e.event != ferry_exec::Event::Started)
                    .count();
                assert_eq!(ends, 1, "{example}: {id} ended {ends} times in the journal");
            }
            // The twin's own record: every step took effect exactly once, none is missing.
            let record = twin_record(&state);
            assert_eq!(record.len(), ids.len(), "{example}: steps the twin saw");
            for id in &ids {
                let (applied, outcome) = &record[id];
                assert_eq!(*applied, 1, "{example}: {id} took effect {applied} times");
                assert!(
                    outcome == "done" || outcome == "skipped",
                    "{example}: {id} {outcome}"
                );
            }
        }
    }
    assert!(kills >= 200, "{kills} kills");
}

/// A CUCM site of mine that still asks for `parallel`, the name the UCM-13 option had.
const STILL_PARALLEL: &str = r#"[site]
name = "ferry-terminal"

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8" }
STRATEGY
facts = { upgrade_source = "sftp" }

[[cluster.node]]
name = "cm-pub"
role = "publisher"
version = "12.5.1.16900-48"

[[cluster.node]]
name = "cm-sub"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 800 }

[[cluster.node]]
name = "pres"
role = "imp_publisher"
version = "12.5.1.16900-5"
facts = { users = 300 }
"#;

#[test]
fn a_site_or_command_line_that_still_says_parallel_is_planned_as_fastest_with_a_warning_ucm_13() {
    let dir = Scratch::new("still-parallel");
    let write = |name: &str, strategy: &str| {
        let path = dir.path(name);
        std::fs::write(&path, STILL_PARALLEL.replace("STRATEGY", strategy)).unwrap();
        path
    };
    let plain = write("plain.toml", "");
    let fastest = stdout(&ferry(&["plan", &plain, "--format", "json"]));
    let steps = |text: &str| {
        let j: serde_json::Value = serde_json::from_str(text).unwrap();
        j["steps"].clone()
    };
    // On the command line: a warning on standard error, and the fastest plan.
    for cmd in ["plan", "rehearse"] {
        let o = ferry(&[cmd, &plain, "--strategy", "parallel", "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("warning: `--strategy parallel` is deprecated: profile `cisco-ucm` renamed it to `fastest`"),
            "{cmd}: {}",
            stderr(&o)
        );
        if cmd == "plan" {
            assert_eq!(steps(&stdout(&o)), steps(&fastest));
            assert_eq!(json(&o)["strategy"], "fastest");
        }
    }
    // In the site file: the plan's finding says what to write.
    let site = write("site.toml", "strategy = \"parallel\"");
    let o = ferry(&["plan", &site]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("[FERRY-STRATEGY] cm: `strategy = \"parallel\"` in the site file: profile `cisco-ucm` renamed strategy `parallel` to `fastest`"),
        "{text}"
    );
    assert!(
        text.contains("remedy: Remove the cluster's `strategy` from the site file"),
        "{text}"
    );
    // A name no profile knows is bad input, for `rehearse` as for `plan`.
    for cmd in ["plan", "rehearse"] {
        let o = ferry(&[cmd, &plain, "--strategy", "parralel"]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        assert!(
            stderr(&o).contains("unknown strategy `parralel`; known: fastest, one-at-a-time, documented, balanced, parallel"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn rehearse_reports_impact_and_exits_by_what_it_found() {
    // A clean example: exit 0, no rule broken, every node on target.
    let o = ferry(&["rehearse", "example:linux-ha-pubsub", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["schema_version"], 1);
    let r = &j["rehearsal"];
    assert_eq!(r["report"]["status"], "complete");
    assert!(r["violations"].as_array().unwrap().is_empty());
    assert_eq!(r["impact"]["clusters"][0]["on_target"], true);
    assert_eq!(j["inside_window"], true);
    // The same input and seed give the same bytes.
    assert_eq!(
        stdout(&o),
        stdout(&ferry(&[
            "rehearse",
            "example:linux-ha-pubsub",
            "--format",
            "json"
        ]))
    );
    // An inhibitor example: the twin shows why (exit 1).
    let o = ferry(&["rehearse", "example:ucm-inhibitors"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("UCM-05"), "{}", stdout(&o));
    // Text names the simulation for what it is.
    let o = ferry(&["rehearse", "example:ucm-standard", "--trace"]);
    assert_eq!(o.status.code(), Some(0));
    let t = stdout(&o);
    assert!(t.contains("a simulation: nothing real is touched"));
    assert!(t.contains("phones unregistered"));
    assert!(t.contains("timeline (from the window's opening)"));
    assert!(t.contains("replication-2"));
}

#[test]
fn rehearse_with_faults_and_a_rollback_policy() {
    let dir = Scratch::new("faults");
    let faults = dir.path("faults.toml");
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"install_failure\"\nstep = \"db/db-sub2/switch\"\n",
    )
    .unwrap();
    let o = ferry(&[
        "rehearse",
        "example:linux-ha-pubsub",
        "--faults",
        &faults,
        "--policy",
        "rollback-all",
        "--format",
        "json",
    ]);
    // The upgrade failed (exit 1), and the rollback brought every node back.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = json(&o);
    let r = &j["rehearsal"];
    assert_eq!(r["report"]["status"], "failed");
    assert_eq!(r["rollback"]["status"], "complete");
    assert_eq!(r["impact"]["clusters"][0]["on_target"], true);
    // A bad faults file is bad input: exit 2, naming the file, line and key.
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"crash\"\nstep = \"x\"\nprobability = 2\n",
    )
    .unwrap();
    let o = ferry(&["rehearse", "example:linux-ha-pubsub", "--faults", &faults]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("faults.toml:4") && e.contains("fault[0].probability"),
        "{e}"
    );
    std::fs::write(&faults, "[[fault]]\nkind = \"meltdown\"\nstep = \"x\"\n").unwrap();
    let o = ferry(&["rehearse", "example:linux-ha-pubsub", "--faults", &faults]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("faults.toml:2"), "{}", stderr(&o));
    // A fault naming a node the site does not have.
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"crash\"\nnode = \"nope\"\nat_min = 1\n",
    )
    .unwrap();
    let o = ferry(&["rehearse", "example:linux-ha-pubsub", "--faults", &faults]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no node `nope`"), "{}", stderr(&o));
}

#[test]
fn rehearse_a_plan_file_and_many_seeds() {
    let dir = Scratch::new("rehearse-plan");
    let (site, plan, _) = plan_example_into(&dir, "linux-ha-pair");
    let o = ferry(&["rehearse", &plan, "--site", &site]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A plan without --site: rehearsed against the site it carries (issue 15); a plan whose
    // site changed: bad input.
    let o = ferry(&["rehearse", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&site)
        .unwrap()
        .replace("hours = 2", "hours = 3");
    std::fs::write(&site, text).unwrap();
    let o = ferry(&["rehearse", &plan, "--site", &site]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("changed since this plan was made"));
    // Monte Carlo: one figure set per seed, and the odds of the window.
    let o = ferry(&[
        "rehearse",
        "example:linux-ha-pair",
        "--runs",
        "20",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["runs"].as_array().unwrap().len(), 20);
    assert_eq!(j["summary"]["runs"], 20);
    assert_eq!(j["summary"]["completed"], 20);
    assert!(j["summary"]["inside_window"].as_f64().is_some());
    let o = ferry(&["rehearse", "example:linux-ha-pair", "--runs", "20"]);
    assert!(stdout(&o).contains("probability of finishing inside the booked"));
}

#[test]
fn apply_resume_and_rollback_through_the_twin_driver() {
    let dir = Scratch::new("twin-driver");
    let (site, plan, ids) = plan_example_into(&dir, "linux-ha-pubsub");
    let state = dir.path("state");
    // Paused after the publisher's switch, resumed, then rolled back.
    let o = ferry(&[
        "apply",
        &plan,
        "--site",
        &site,
        "--driver",
        "twin",
        "--state",
        &state,
        "--pause-after",
        "db/db-pub/switch",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("paused"));
    let o = ferry(&["resume", "--state", &state]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = json(&ferry(&[
        "status", "1", "--state", &state, "--format", "json",
    ]));
    assert_eq!(st["run"]["status"], "complete");
    assert_eq!(st["run"]["driver"], "twin");
    assert_eq!(twin_record(&state).len(), ids.len());
    let o = ferry(&["rollback", "1", "--state", &state]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = json(&ferry(&[
        "status", "2", "--state", &state, "--format", "json",
    ]));
    assert_eq!(st["run"]["kind"], "rollback");
    assert_eq!(st["run"]["parent"], 1);
    // The twin's world after the rollback (run 1's, which its rollback carries on with):
    // every node back on 5.3.9.
    let journal = ferry_exec::Journal::open_read_only(std::path::Path::new(&state)).unwrap();
    let world = ferry_exec::run_world(&journal, 2).unwrap().unwrap();
    for n in &world.clusters[0].nodes {
        assert_eq!(n.active, n.original, "{}", n.name);
    }
}

/// A window booked `from_now_min` minutes from now for `hours`, in the -05:00 zone, as the
/// site file writes it, and how messages write its two ends.
fn window_from_now(from_now_min: i64, hours: f64) -> (String, String, String) {
    let zone = jiff::tz::TimeZone::fixed(jiff::tz::offset(-5));
    let now = jiff::Timestamp::now().as_second() / 60 * 60;
    let start = jiff::Timestamp::from_second(now + from_now_min * 60)
        .expect("start")
        .to_zoned(zone.clone());
    let end = start
        .timestamp()
        .checked_add(jiff::SignedDuration::from_secs((hours * 3600.0) as i64))
        .expect("end")
        .to_zoned(zone);
    (
        start.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        start.strftime("%Y-%m-%d %H:%M %:z").to_string(),
        end.strftime("%Y-%m-%d %H:%M %:z").to_string(),
    )
}

/// `ferry apply` with the manual driver on a site whose window has closed, or is too short
/// for the plan's window work: nothing starts, the message names the window's dates and what to
/// change (in the text and in `status --format json`); `--ignore-window` (given to `apply`,
/// or later to `resume`) lets the run go on, and the journal and `status` say so.
#[test]
fn a_closed_or_short_window_stops_apply_and_ignore_window_goes_on_recorded() {
    // (window opened this many minutes from now, its hours, what the refusal says, where
    // --ignore-window is given).
    let check = |from_now_min: i64, hours: f64, says: &str, ignore_at: &str| {
        let dir = Scratch::new(&format!("window-{ignore_at}"));
        let (start, start_text, end_text) = window_from_now(from_now_min, hours);
        let o = ferry(&["examples", "linux-ha-pair", "--window-start", &start]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o).replace("hours = 2 }", &format!("hours = {hours} }}"));
        let site = dir.path("site.toml");
        std::fs::write(&site, text).expect("site");
        let plan = dir.path("plan.json");
        let o = ferry(&["plan", &site, "--format", "json", "-o", &plan]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let ids: Vec<String> = json(&ferry(&["plan", &site, "--format", "json"]))["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect();
        let state = dir.path("state");
        let booked = format!("the booked window {start_text} to {end_text}");

        let mut args = vec!["apply", &plan, "--site", &site, "--state", &state, "--yes"];
        if ignore_at == "apply" {
            args.push("--ignore-window");
        } else {
            let o = ferry(&args);
            assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
            let out = stdout(&o);
            for part in [booked.as_str(), says, "[site] window", "--ignore-window"] {
                assert!(out.contains(part), "{part:?} not in\n{out}");
            }
            let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
            assert_eq!(j["run"]["status"], "stopped");
            let message = j["run"]["message"].as_str().expect("message");
            assert!(message.contains(&booked) && message.contains(says), "{j}");
            assert_eq!(j["window"]["start"], start_text);
            assert_eq!(j["window"]["end"], end_text);
            assert_eq!(j["window"]["ignored"], false);
            assert_eq!(j["run"]["ignore_window_since"], serde_json::Value::Null);
            assert!(j["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .all(|s| s["state"] == "pending"));
            let t = stdout(&ferry(&["status", "--state", &state]));
            assert!(t.contains("\nstopped: ") && t.contains(&booked), "{t}");
            assert!(
                t.contains(&format!("window {start_text} to {end_text}: ")),
                "{t}"
            );
            args = vec!["resume", "--state", &state, "--ignore-window"];
        }
        // Knowingly outside the window: the run goes on, the operator answering every step.
        let child = spawn(&args);
        wait_for_status(&state, "1", |j| j["run"]["status"] == "running");
        for id in &ids {
            let o = ferry(&["step", "done", id, "--state", &state, "--early"]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
        let out = child.wait_with_output().expect("run ends");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
        assert_eq!(j["run"]["status"], "complete");
        assert_eq!(j["run"]["message"], serde_json::Value::Null);
        assert_eq!(j["window"]["ignored"], true);
        assert_eq!(j["window"]["checked"], false);
        assert!(j["run"]["ignore_window_since"].is_i64(), "{j}");
        let t = stdout(&ferry(&["status", "--state", &state]));
        assert!(t.contains("(--ignore-window)"), "{t}");
    };
    // Closed an hour ago; given to resume.
    check(-180, 2.0, "has closed (it is now ", "resume");
    // Open for five more minutes, but the plan's window work is 15 minutes.
    check(
        -115,
        2.0,
        "does not fit in what is left of the booked window",
        "resume",
    );
    // Given to apply at once: the run starts in a closed window.
    check(-180, 2.0, "", "apply");
}

/// `ferry examples NAME` prints the example as its file holds it; `--window-start` books its
/// window from another moment, keeping its length; bad arguments exit 2.
#[test]
fn examples_print_one_and_book_its_window_where_asked() {
    let check = |args: &[&str], code: i32, expected: &str| {
        let o = ferry(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        let out = if code == 0 { stdout(&o) } else { stderr(&o) };
        assert!(
            out.contains(expected),
            "{args:?}: {expected:?} not in\n{out}"
        );
    };
    let file = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/cms-ha.toml"),
    )
    .expect("example");
    assert_eq!(stdout(&ferry(&["examples", "cms-ha"])), file);
    check(
        &[
            "examples",
            "cms-ha",
            "--window-start",
            "2031-03-01T19:30:00+01:00",
        ],
        0,
        "window = { start = \"2031-03-01T19:30:00+01:00\", hours = 12 }",
    );
    check(
        &["examples", "cms-ha", "--window-start", "tonight"],
        2,
        "--window-start `tonight`",
    );
    check(
        &["examples", "no-such", "--window-start", "now"],
        2,
        "no built-in example",
    );
    check(&["examples", "--window-start", "now"], 2, "NAME");
    // `now` is written in the example's own zone.
    check(
        &["examples", "cms-base-load", "--window-start", "now"],
        0,
        ":00-08:00\", hours = 8 }",
    );
}

/// Seed 004, standard upgrades: "you can manually switch to the new software at a later time".
/// The staged example plans a window of switches, replication waits and post-upgrade tasks,
/// states the freeze it costs (UCM-04), and shows the staging in every format; `--stage`
/// stages a site that books no staging period; `--explain` names the rule behind a staged step.
#[test]
fn the_staged_example_plans_a_short_window_and_states_the_freeze_ucm_02_ucm_04() {
    let o = ferry(&["plan", "example:ucm-staged"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for part in [
        "window:   4h 28m",
        "Staging, ahead of the window (the nodes keep serving): 17 step(s), 4h 40m",
        "booked staging period: 2026-12-05 09:00 -05:00 to 2026-12-05 18:00 -05:00",
        "ucm-hq [UCM-04] (configuration_freeze: 15h 28m)",
        "ucm-hq [UCM-21]",
    ] {
        assert!(text.contains(part), "{part:?} not in\n{text}");
    }
    let j = json(&ferry(&["plan", "example:ucm-staged", "--format", "json"]));
    assert!(j["makespan_s"].as_u64().expect("makespan") <= 4 * 3600 + 50 * 60);
    assert!(j["staging_s"].as_u64().expect("staging_s") > 0);
    let staged: Vec<&str> = j["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["phase"] == "staging")
        .filter_map(|s| s["action"].as_str())
        .collect();
    assert!(staged.contains(&"install-inactive") && staged.contains(&"imp-install-inactive"));
    assert!(!staged.iter().any(|a| a.contains("switch")), "{staged:?}");
    let costs = j["staging_costs"].as_array().expect("staging_costs");
    assert_eq!(costs[0]["rule"], "UCM-04");
    assert_eq!(costs[0]["duration_s"], 15 * 3600 + 28 * 60);
    let mop = stdout(&ferry(&["plan", "example:ucm-staged", "--format", "mop"]));
    assert!(
        mop.contains("## Staging (ahead of the window, the nodes keep serving)")
            && mop.contains("What staging costs")
            && mop.contains("ferry approve open-window"),
        "{mop}"
    );
    let svg = stdout(&ferry(&["plan", "example:ucm-staged", "--format", "svg"]));
    assert!(svg.contains("Staging, ahead of the window"), "svg");
    let dot = stdout(&ferry(&["plan", "example:ucm-staged", "--format", "dot"]));
    assert!(dot.contains("S+0:15"), "dot");
    let e = stdout(&ferry(&[
        "plan",
        "example:ucm-staged",
        "--explain",
        "ucm-hq/cucm-pub/install-inactive",
    ]));
    assert!(
        e.contains("staging phase")
            && e.contains("Runs ahead of the window, while its node keeps serving, by UCM-02"),
        "{e}"
    );
    // The same site unstaged, staged by the plan option: planned to end as the window opens.
    let o = ferry(&["plan", "example:ucm-standard", "--stage"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("window:   4h 28m") && text.contains("no staging period booked"),
        "{text}"
    );
    let plain = stdout(&ferry(&["plan", "example:ucm-standard"]));
    assert!(plain.contains("window:   8h 03m") && !plain.contains("Staging"));
    let o = ferry(&["rehearse", "example:ucm-standard", "--stage"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("staged ahead of the window           17 step(s)")
            && text.contains("configuration frozen"),
        "{text}"
    );
    // Booked for another evening, the staging period keeps its place eleven hours before.
    let o = ferry(&[
        "examples",
        "ucm-staged",
        "--window-start",
        "2031-03-01T19:30:00+01:00",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("stage = { start = \"2031-03-01T02:30:00-05:00\", hours = 9 }"),
        "{}",
        stdout(&o)
    );
}

/// The instant a site text's window opens, in seconds since the Unix epoch (for RFC 3339 times
/// with an offset, as the examples write them).
fn epoch_of(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .expect("RFC 3339")
        .as_second()
}

/// `ferry apply --driver twin` of a staged plan: the staging steps run in the staging period,
/// the run says it waits for the booked window and the twin's clock jumps to its opening, then
/// the window's steps run and the run completes. UCM-02.
#[test]
fn apply_through_the_twin_stages_then_waits_for_the_window_and_completes_ucm_02() {
    let dir = Scratch::new("twin-staged");
    let plan = dir.path("plan.json");
    let o = ferry(&[
        "plan",
        "example:ucm-staged",
        "--format",
        "json",
        "-o",
        &plan,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let state = dir.path("state");
    let o = ferry(&[
        "apply",
        &plan,
        "--site",
        "example:ucm-staged",
        "--driver",
        "twin",
        "--state",
        &state,
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("waiting for the booked window to open at 2026-12-05 20:00 -05:00"),
        "{out}"
    );
    let st = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(st["run"]["status"], "complete");
    assert_eq!(st["run"]["message"], serde_json::Value::Null);
    // The twin's own trace: staged work before the window, the window's work in it.
    let journal =
        ferry_exec::Journal::open_read_only(std::path::Path::new(&state)).expect("journal");
    let world = ferry_exec::run_world(&journal, 1)
        .expect("the twin's world")
        .expect("the twin is saved");
    let saved = serde_json::json!({ "world": serde_json::to_value(&world).expect("twin JSON") });
    let opens = epoch_of("2026-12-05T20:00:00-05:00");
    let trace = saved["world"]["trace"].as_array().expect("trace");
    let staged: Vec<&serde_json::Value> =
        trace.iter().filter(|e| e["phase"] == "staging").collect();
    assert_eq!(staged.len(), 17);
    for e in &staged {
        assert!(e["end"].as_i64().expect("end") <= opens, "{e}");
    }
    let first_window = trace
        .iter()
        .filter(|e| e["phase"] == "window")
        .map(|e| e["start"].as_i64().expect("start"))
        .min()
        .expect("window steps");
    assert_eq!(first_window, opens);
}

/// The manual runbook of a staged plan on the real clock, its window booked two minutes from
/// now: the operator answers the staged steps, the run waits for the window and `status` says
/// so with the window's date and zone; killed with SIGKILL during the wait, `resume` waits
/// again; `ferry approve open-window` opens the window early and the run completes. LHA-03.
#[test]
fn the_manual_runbook_waits_for_the_window_and_resumes_after_a_kill_lha_03() {
    let dir = Scratch::new("manual-staged");
    let (start, start_text, _) = window_from_now(2, 1.0);
    let (stage_start, _, _) = window_from_now(-60, 0.9);
    let site_text = format!(
        r#"[site]
name = "cache-pair"
window = {{ start = "{start}", hours = 1 }}
stage = {{ start = "{stage_start}", hours = 0.9 }}

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
"#
    );
    let site = dir.path("site.toml");
    std::fs::write(&site, site_text).expect("site");
    let plan = dir.path("plan.json");
    let o = ferry(&["plan", &site, "--format", "json", "-o", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");
    let ids_of = |phase: &str| -> Vec<String> {
        j["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|s| s["phase"] == phase)
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    };
    let (staged, window) = (ids_of("staging"), ids_of("window"));
    assert_eq!(staged.len(), 4, "{staged:?}");
    let state = dir.path("state");
    let mut child = spawn(&["apply", &plan, "--site", &site, "--state", &state, "--yes"]);
    wait_for_status(&state, "1", |_| true);
    for id in &staged {
        let o = ferry(&["step", "done", id, "--state", &state, "--early"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let waits = format!("waiting for the booked window to open at {start_text}");
    let waiting = |j: &serde_json::Value| {
        j["run"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&waits))
    };
    wait_for_status(&state, "1", waiting);
    let j1 = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j1["run"]["status"], "running");
    assert_eq!(j1["window"]["state"], "ahead");
    let t = stdout(&ferry(&["status", "--state", &state]));
    assert!(
        t.contains(&format!("running: {waits}")) && t.contains("ferry approve open-window"),
        "{t}"
    );
    assert!(j1["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| window.contains(&s["id"].as_str().unwrap_or_default().to_string()))
        .all(|s| s["state"] == "pending"));
    // kill -9 during the wait.
    child.kill().expect("kill -9");
    let _ = child.wait();
    let t = stdout(&ferry(&["status", "--state", &state]));
    assert!(t.contains("(interrupted)") && t.contains(&waits), "{t}");
    // Resumed, it waits again (its process holds the run, the window's steps still wait); the
    // operator opens the window early.
    let child = spawn(&["resume", "--state", &state]);
    wait_for_status(&state, "1", |j| j["active"] == true && waiting(j));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let j2 = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert!(waiting(&j2) && j2["active"] == true, "{j2}");
    assert!(j2["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| window.contains(&s["id"].as_str().unwrap_or_default().to_string()))
        .all(|s| s["state"] == "pending"));
    let o = ferry(&["approve", "open-window", "--state", &state]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("the window is opened now"),
        "{}",
        stdout(&o)
    );
    for id in &window {
        let o = ferry(&["step", "done", id, "--state", &state, "--early"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let out = child.wait_with_output().expect("resume ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j["run"]["status"], "complete");
    assert_eq!(j["run"]["message"], serde_json::Value::Null);
    assert!(j["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .any(|a| a["step"] == "open-window"));
    // A run that stages nothing waits for its window too, once its preparation is done: this
    // one's opened already, and the approval says so.
    let dir2 = Scratch::new("manual-unstaged");
    let (site2, plan2) = plan_site_into(&dir2);
    let state2 = dir2.path("state");
    let o = ferry(&[
        "apply", &plan2, "--site", &site2, "--state", &state2, "--driver", "twin",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ferry(&["approve", "open-window", "--state", &state2]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("already; approval recorded"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn completions_and_the_manual_page_name_every_command() {
    let commands = [
        "check",
        "plan",
        "apply",
        "status",
        "resume",
        "rollback",
        "approve",
        "step",
        "rehearse",
        "demo",
        "examples",
        "profiles",
        "agent",
        "bench",
        "completions",
        "man",
    ];
    let o = ferry(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bash = stdout(&o);
    assert!(bash.contains("complete -F"), "a bash completion script");
    for c in commands {
        assert!(bash.contains(c), "the bash completion mentions {c}");
    }
    for shell in ["zsh", "fish"] {
        let o = ferry(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("rehearse"), "{shell}");
    }
    let o = ferry(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let man = stdout(&o);
    // roff: after clap_mangen's two-line quote preamble (`.ie`/`.el`), the title, then sections.
    let th = man
        .lines()
        .position(|l| l.starts_with(".TH FERRY 1"))
        .expect(".TH");
    assert!(
        man.lines()
            .take(th)
            .all(|l| l.starts_with(".ie") || l.starts_with(".el")),
        "{man}"
    );
    assert!(man.contains("\n.SH NAME"), "{man}");
    for c in commands {
        assert!(
            man.contains(&format!("ferry\\-{c}")),
            "the man page lists {c}"
        );
    }
    let dir = tempdir();
    let o = ferry(&["man", "--output", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for page in [
        "ferry.1",
        "ferry-plan.1",
        "ferry-agent-status.1",
        "ferry-profiles-show.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).expect(page);
        assert!(text.contains("\n.TH "), "{page}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verbose_json_logs_go_to_stderr_and_stdout_stays_clean() {
    let o = ferry(&[
        "-v",
        "--log-format",
        "json",
        "plan",
        "example:linux-ha-pair",
        "--format",
        "json",
        "--runs",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = json(&o);
    assert!(plan["steps"].is_array(), "stdout is the plan alone");
    let lines: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "loaded the site" && l["level"] == "INFO"),
        "{lines:?}"
    );
    // Without -v: no log lines.
    let o = ferry(&["plan", "example:linux-ha-pair", "--runs", "0"]);
    assert_eq!(stderr(&o), "");
    // RUST_LOG decides when set.
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["plan", "example:linux-ha-pair", "--runs", "0"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(stderr(&o).contains("loaded the site"), "{}", stderr(&o));
}

#[test]
fn a_saved_plan_carries_its_site_and_profiles_and_applies_alone() {
    let dir = Scratch::new("carried");
    let (site, plan) = plan_site_into(&dir);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let inputs = &saved["inputs"];
    assert_eq!(inputs["site_name"], site.as_str());
    assert_eq!(
        inputs["site_text"].as_str(),
        Some(std::fs::read_to_string(&site).unwrap().as_str())
    );
    assert!(inputs["profiles"]["linux-ha"]
        .as_str()
        .is_some_and(|t| t.contains("[profile]")));
    // Without --site: the carried texts; the site file may even be gone.
    std::fs::remove_file(&site).unwrap();
    let state = dir.path("state");
    let o = ferry(&[
        "apply",
        &plan,
        "--driver",
        "twin",
        "--approve",
        "--state",
        &state,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("complete"), "{}", stdout(&o));
    // With --site: it must hash as the plan's.
    let other = example_site_from_now(&dir, "linux-ha-pubsub");
    let o = ferry(&[
        "apply",
        &plan,
        "--site",
        &other,
        "--driver",
        "twin",
        "--state",
        &dir.path("s2"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed since this plan was made"),
        "{}",
        stderr(&o)
    );
    // A plan whose carried site was edited by hand is refused.
    let mut edited = saved.clone();
    edited["inputs"]["site_text"] = serde_json::Value::from(format!(
        "{}\n# edited\n",
        inputs["site_text"].as_str().unwrap()
    ));
    std::fs::write(&plan, serde_json::to_string(&edited).unwrap()).unwrap();
    let o = ferry(&[
        "apply",
        &plan,
        "--driver",
        "twin",
        "--state",
        &dir.path("s3"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("do not hash to its input_hash"),
        "{}",
        stderr(&o)
    );
}
