//! Exit codes that gate and input that catches mistakes, as a pipeline meets them (issue 14,
//! points 6, 7 and 9): `--strict`, the failed rehearsed rollback, `--min-fit`, the closed
//! window, each command's own formats, and help that documents what it reads.

use super::*;

/// A linux-ha pair whose window (`{start}`, `{hours}`) and facts are filled per test.
const PAIR: &str = r#"[site]
name = "gatekeeper"
window = { start = "{start}", hours = {hours} }

[[cluster]]
name = "kv"
profile = "linux-ha"
target = "2.1.0"

[[cluster.node]]
name = "kv-a"
role = "primary"
version = "2.0.3"
facts = { {facts} }

[[cluster.node]]
name = "kv-b"
role = "backup"
version = "2.0.3"
facts = { free_mb = 900, healthy = true }
"#;

fn pair(dir: &Scratch, start: &str, hours: f64, facts: &str) -> String {
    let site = dir.path("site.toml");
    let text = PAIR
        .replace("{start}", start)
        .replace("{hours}", &hours.to_string())
        .replace("{facts}", facts);
    std::fs::write(&site, text).unwrap();
    site
}

/// The moment `minutes` from now, as a site writes it (UTC).
fn from_now(minutes: i64) -> String {
    let t = jiff::Timestamp::now().as_second() / 60 * 60 + minutes * 60;
    jiff::Timestamp::from_second(t)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A fact name the profile does not declare (LHA-08 reads `free_mb`): a warning on standard
/// error with the name meant, and the command goes on; with `--strict`, exit 2 at its line.
#[test]
fn an_unknown_fact_warns_and_strict_refuses_it_lha_08() {
    let dir = Scratch::new("strict");
    let site = pair(
        &dir,
        "2026-12-05T22:00:00-05:00",
        4.0,
        "free_bm = 900, healthy = true",
    );
    for cmd in ["check", "plan"] {
        let o = ferry(&[cmd, &site]);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("warning: ")
                && e.contains("site.toml:14")
                && e.contains("unknown fact `free_bm`")
                && e.contains("did you mean `free_mb`?"),
            "{cmd}: {e}"
        );
        let o = ferry(&[cmd, &site, "--strict"]);
        assert_eq!(o.status.code(), Some(2), "{cmd} --strict");
        assert!(
            stderr(&o).contains("cluster[0].node[0].facts.free_bm"),
            "{}",
            stderr(&o)
        );
    }
    let o = ferry(&["rehearse", &site, "--strict"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A rehearsed rollback that fails leaves the site between versions: exit 1, said on
/// standard error (LHA-07's revert, failing on every node).
#[test]
fn rehearse_exits_1_when_the_rehearsed_rollback_fails_lha_07() {
    let dir = Scratch::new("rollback-fails");
    let faults = dir.path("faults.toml");
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"install_failure\"\nstep = \"db/db-sub2/switch\"\n\n[[fault]]\nkind = \"install_failure\"\nstep = \"*/revert\"\n",
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
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(json(&o)["rehearsal"]["rollback"]["status"], "failed");
    assert!(
        stderr(&o).contains("the rehearsed rollback did not complete (failed)"),
        "{}",
        stderr(&o)
    );
}

/// `--min-fit P`: exit 1 when fewer than P of the runs end inside the booked window, 0 when
/// enough do, 2 for a share that is not one (CCM-12: the whole upgrade within one window).
#[test]
fn rehearse_min_fit_gates_on_the_odds_of_the_window_ccm_12() {
    let dir = Scratch::new("min-fit");
    let facts = "free_mb = 900, healthy = true";
    let short = pair(&dir, "2026-12-05T22:00:00-05:00", 0.1, facts);
    let o = ferry(&["rehearse", &short, "--runs", "10", "--min-fit", "0.9"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the odds of fitting the booked window are 0.0% (0 of 10 runs end inside it), below --min-fit 90.0%"),
        "{}",
        stderr(&o)
    );
    let long = pair(&dir, "2026-12-05T22:00:00-05:00", 8.0, facts);
    let o = ferry(&["rehearse", &long, "--runs", "10", "--min-fit", "0.9"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ferry(&["rehearse", &long, "--runs", "10", "--min-fit", "90"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a share from 0 to 1"),
        "{}",
        stderr(&o)
    );
}

/// `check` on the real clock: a window that closed an hour ago is an inhibitor (exit 1);
/// one that opens in an hour is not.
#[test]
fn check_reports_a_booked_window_that_has_closed() {
    let dir = Scratch::new("closed");
    let facts = "free_mb = 900, healthy = true";
    let now = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("FERRY_NOW")
            .output()
            .expect("run ferry")
    };
    let closed = pair(&dir, &from_now(-180), 2.0, facts);
    let o = now(&["check", &closed]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("has already closed"), "{}", stdout(&o));
    let j = {
        let o = now(&["check", &closed, "--format", "json"]);
        json(&o)
    };
    assert!(j.to_string().contains("FERRY-WINDOW"), "{j}");
    let ahead = pair(&dir, &from_now(60), 2.0, facts);
    let o = now(&["check", &ahead]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("has already closed"));
}

/// Each command offers only its own formats, and its help lists them.
#[test]
fn each_command_accepts_only_its_own_formats() {
    for (cmd, format) in [
        (vec!["check", "example:linux-ha-pair"], "mop"),
        (vec!["rehearse", "example:linux-ha-pair"], "svg"),
        (vec!["status"], "dot"),
    ] {
        let mut args = cmd.clone();
        args.extend(["--format", format]);
        let o = ferry(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("invalid value '{format}'"))
                && e.contains("[possible values: text, json]"),
            "{args:?}: {e}"
        );
    }
    let help = stdout(&ferry(&["plan", "--help"]));
    for f in ["text", "json", "mop", "svg", "dot"] {
        assert!(
            help.contains(&format!("- {f}:")) || help.contains(&format!("  {f}")),
            "{f}: {help}"
        );
    }
    let help = stdout(&ferry(&["check", "--help"]));
    assert!(help.contains("json") && !help.contains("mop"), "{help}");
}

/// `rehearse --help` shows the faults file as written, and every command that reads a
/// journal documents `--state` and the run it acts on.
#[test]
fn help_shows_the_faults_file_verbatim_and_documents_state_and_run() {
    let help = stdout(&ferry(&["rehearse", "--help"]));
    assert!(
        help.contains("  [[fault]]\n  kind = \"crash\"            # crash, install_failure"),
        "{help}"
    );
    for cmd in ["status", "resume", "rollback", "approve", "step", "apply"] {
        let help = stdout(&ferry(&[cmd, "--help"]));
        let state = help
            .split("--state <DIR>")
            .nth(1)
            .unwrap_or_else(|| panic!("{cmd}: no --state"));
        assert!(
            state
                .trim_start()
                .starts_with("State directory holding the journal"),
            "{cmd}: {help}"
        );
        if cmd != "apply" {
            assert!(help.contains("the newest when omitted"), "{cmd}: {help}");
        }
    }
}
