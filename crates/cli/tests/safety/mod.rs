//! Safe execution defaults (issue 14, item 8): `apply` and `rollback` with a real driver ask
//! for a confirmation (`--yes` for scripts, refused without a terminal), answers to steps that
//! have not started need `--early` and are never learned as durations, and approvals, answers
//! and runs record who gave them. Every site here is this module's own.

use super::*;

/// A linux-ha pair of this module's own, with `window` as its `[site] window` (or none).
fn kv_site(dir: &Scratch, window: Option<&str>) -> (String, String, Vec<serde_json::Value>) {
    let text = format!(
        r#"[site]
name = "kv-lab"
{}

[[cluster]]
name = "kv"
profile = "linux-ha"
target = "2.1.0"
facts = {{ service = "kv" }}

[[cluster.node]]
name = "kv-east"
role = "primary"
version = "2.0.3"

[[cluster.node]]
name = "kv-west"
role = "backup"
version = "2.0.3"
"#,
        window.map(|w| format!("window = {w}")).unwrap_or_default()
    );
    let site = dir.path("site.toml");
    std::fs::write(&site, text).expect("site");
    let plan = dir.path("plan.json");
    let o = ferry(&["plan", &site, "--format", "json", "-o", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");
    let steps = j["steps"].as_array().expect("steps").clone();
    (site, plan, steps)
}

fn said(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// Runs `ferry ARGS` on a real pseudo-terminal (util-linux `script`), typing `typed`; `None`
/// when `script` is not installed.
fn on_a_terminal(args: &[&str], typed: &str) -> Option<Output> {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_ferry"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let mut child = Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        // Typed once the program waits for it (a terminal drops nothing typed ahead, but a
        // slow start must not see the end of the input first).
        std::thread::sleep(std::time::Duration::from_millis(1500));
        stdin.write_all(typed.as_bytes()).expect("type");
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    Some(child.wait_with_output().expect("script ends"))
}

/// Confirmation, without a terminal: a real driver's `apply` and `rollback` are refused (exit
/// 2, saying to pass --yes, nothing journaled); the twin needs none; `--yes` goes on.
#[test]
fn a_real_driver_needs_a_confirmation_and_without_a_terminal_yes() {
    let dir = Scratch::new("confirm-no-tty");
    let (site, plan, _) = kv_site(
        &dir,
        Some(r#"{ start = "2030-03-02T21:00:00+01:00", hours = 4 }"#),
    );
    let state = dir.path("state");
    for driver in ["manual", "ssh", "agent"] {
        let o = spawn(&[
            "apply", &plan, "--site", &site, "--state", &state, "--driver", driver,
        ])
        .wait_with_output()
        .expect("apply");
        assert_eq!(o.status.code(), Some(2), "{driver}: {}", said(&o));
        let e = stderr(&o);
        for part in [
            "pass --yes",
            "not a terminal",
            "site kv-lab",
            "kv/kv-east, kv/kv-west",
            "2030-03-02 21:00 +01:00 to 2030-03-03 01:00 +01:00",
        ] {
            assert!(e.contains(part), "{driver}: no `{part}` in {e}");
        }
        assert!(
            !PathBuf::from(&state).exists(),
            "{driver}: nothing journaled"
        );
    }
    // The twin touches nothing: no confirmation. Its rollback neither; the same rollback
    // through a real driver does.
    let o = ferry(&[
        "apply",
        &plan,
        "--site",
        &site,
        "--state",
        &state,
        "--driver",
        "twin",
        "--ignore-window",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let o = ferry(&["rollback", "1", "--state", &state, "--driver", "manual"]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(
        stderr(&o).contains("pass --yes") && stderr(&o).contains("rollback of run 1"),
        "{}",
        stderr(&o)
    );
    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(
        j["runs"].as_array().map(Vec::len),
        Some(1),
        "no rollback run"
    );
    let o = ferry(&["rollback", "1", "--state", &state]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
}

/// Confirmation on a real terminal: the summary is shown, `n` aborts with nothing done, `y`
/// carries the run out.
#[test]
fn on_a_terminal_n_aborts_and_y_proceeds() {
    let dir = Scratch::new("confirm-tty");
    let (site, plan, steps) = kv_site(
        &dir,
        Some(r#"{ start = "2030-03-02T21:00:00+01:00", hours = 4 }"#),
    );
    let state = dir.path("state");
    let first = steps[0]["id"].as_str().expect("id").to_string();
    let args = [
        "apply",
        &plan,
        "--site",
        &site,
        "--state",
        &state,
        "--ignore-window",
        "--parallel",
        "1",
        "--pause-after",
        &first,
    ];
    let Some(o) = on_a_terminal(&args, "n\n") else {
        eprintln!("util-linux `script` is not installed: the terminal is not tested");
        return;
    };
    let text = said(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    for part in [
        "about to carry out the apply of site kv-lab",
        "manual driver",
        "kv/kv-east, kv/kv-west",
        "2030-03-02 21:00 +01:00",
        "carry it out? [y/N]",
        "not confirmed: nothing was done",
    ] {
        assert!(text.contains(part), "no `{part}` in {text}");
    }
    assert!(!PathBuf::from(&state).exists(), "nothing journaled: {text}");
    let o = on_a_terminal(&args, "y\ndone\n").expect("script");
    let text = said(&o);
    assert!(
        text.contains(&format!("── step 1/{}", steps.len())),
        "{text}"
    );
    assert!(!text.contains("not confirmed"), "{text}");
    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j["run"]["status"], "paused", "{text}");
    assert_eq!(j["steps"][0]["state"], "done", "{text}");
}

/// Early answers: `ferry step done` for a step that has not started is refused (exit 2,
/// saying why) unless `--early`; early answers are journaled and shown as such, with who gave
/// them, and `plan --estimates-from` never learns their (empty) durations. Identity: the run
/// and its answers record who gave them (`--by`, or the OS user).
#[test]
fn early_answers_need_early_and_every_answer_says_who_gave_it() {
    let dir = Scratch::new("early");
    let (site, plan, steps) = kv_site(&dir, None);
    let state = dir.path("state");
    let ids: Vec<String> = steps
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "apply",
            &plan,
            "--site",
            &site,
            "--state",
            &state,
            "--yes",
            "--by",
            "kim",
            "--parallel",
            "1",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("apply");
    wait_for_status(&state, "1", |j| j["steps"][0]["state"] == "running");
    // The second step has not started: refused without --early, and nothing recorded.
    let o = ferry(&["step", "done", &ids[1], "--state", &state]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(
        stderr(&o).contains("has not started") && stderr(&o).contains("--early"),
        "{}",
        stderr(&o)
    );
    // Every other step ahead of time, by name (none starts while the first runs: --parallel 1).
    for id in &ids[1..] {
        let o = ferry(&[
            "step", "done", id, "--state", &state, "--early", "--by", "mo",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", said(&o));
        assert!(stdout(&o).contains("(early), by mo"), "{}", stdout(&o));
    }
    // The running step, answered by the OS user (USER).
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["step", "done", &ids[0], "--state", &state])
        .env("USER", "lee")
        .output()
        .expect("step");
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let out = child.wait_with_output().expect("apply ends");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j["run"]["status"], "complete");
    assert_eq!(j["run"]["started_by"], "kim");
    assert_eq!(j["steps"][0]["answered_by"], "lee");
    assert_eq!(j["steps"][0]["early"], false);
    for s in &j["steps"].as_array().expect("steps")[1..] {
        assert_eq!(
            (&s["answered_by"], &s["early"]),
            (&"mo".into(), &true.into())
        );
    }
    let text = stdout(&ferry(&["status", "--state", &state]));
    assert!(text.contains("started by kim"), "{text}");
    assert!(text.contains("[answered by lee]"), "{text}");
    assert!(text.contains("[answered early by mo]"), "{text}");
    // Learned: only the step answered while it ran (its action), never the early ones.
    let first_action = steps[0]["action"].as_str().expect("action");
    let p = json(&ferry(&[
        "plan",
        &site,
        "--estimates-from",
        &state,
        "--format",
        "json",
    ]));
    for s in p["steps"].as_array().expect("steps") {
        let observed = s["estimate"] == "observed";
        assert_eq!(
            observed,
            s["action"] == first_action,
            "{}: estimate {}",
            s["id"],
            s["estimate"]
        );
    }
    // A name that is no name is bad input.
    let o = ferry(&["step", "done", &ids[0], "--state", &state, "--by", " "]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
}

/// Approvals and rollbacks record who gave them: the OS user (USER), or `--by`; `status`
/// shows it.
#[test]
fn approvals_record_who_gave_them() {
    let dir = Scratch::new("approver");
    let (site, plan, steps) = kv_site(
        &dir,
        Some(r#"{ start = "2030-03-02T21:00:00+01:00", hours = 4 }"#),
    );
    let state = dir.path("state");
    let first = steps[0]["id"].as_str().expect("id");
    // A run paused after its first step, through the twin (nothing real is touched).
    let o = ferry(&[
        "apply",
        &plan,
        "--site",
        &site,
        "--state",
        &state,
        "--driver",
        "twin",
        "--pause-after",
        first,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["approve", "open-window", "--state", &state])
        .env("USER", "pat")
        .output()
        .expect("approve");
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j["approvals"][0]["by"], "pat", "{j}");
    let o = ferry(&["approve", "open-window", "--state", &state, "--by", "olga"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let j = json(&ferry(&["status", "--state", &state, "--format", "json"]));
    assert_eq!(j["approvals"][0]["by"], "olga", "{j}");
    let text = stdout(&ferry(&["status", "--state", &state]));
    assert!(text.contains("open-window  by olga"), "{text}");
    // A rollback records who started it.
    let o = ferry(&["rollback", "1", "--state", &state, "--by", "nell"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let j = json(&ferry(&[
        "status", "2", "--state", &state, "--format", "json",
    ]));
    assert_eq!(j["run"]["kind"], "rollback");
    assert_eq!(j["run"]["started_by"], "nell");
    assert!(stdout(&ferry(&["status", "2", "--state", &state])).contains("started by nell"));
}
