//! Bad input through the binary: numbers out of range, a step of 2^64-1 s, names too long for
//! a table, zone annotations, odd facts and empty clusters exit 2 naming the file; a subscriber
//! behind its publisher is a finding (UCM-09, UCM-19); a damaged journal and a full disk exit 4
//! with what to do; and the README lists every exit code.

use super::{ferry, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A directory of its own under the system's temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("ferry-hardening-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Dir(p)
    }
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{name}.toml"));
    std::fs::read_to_string(p).expect("example")
}

fn builtin_profile(name: &str) -> String {
    let o = ferry(&["profiles", "show", name]);
    stdout(&o)
}

/// `(command's output, expected exit code, fragments stderr must hold)`.
fn check(what: &str, o: &Output, code: i32, fragments: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: exit {:?}\nstdout: {}\nstderr: {err}",
        o.status.code(),
        stdout(o)
    );
    for f in fragments {
        assert!(err.contains(f), "{what}: stderr lacks {f:?}:\n{err}");
    }
}

#[test]
fn profiles_check_refuses_numbers_out_of_range_ucm_17() {
    let d = Dir::new("profiles");
    let text = builtin_profile("cisco-ucm");
    for (from, to, key) in [
        ("numbers = 2, with", "numbers = 4294967296, with", "numbers"),
        (
            "same_prefix = 3",
            "same_prefix = 9223372036854775807",
            "same_prefix",
        ),
    ] {
        let f = d.file("ucm.toml", &text.replacen(from, to, 1));
        let line = text[..text.find(from).unwrap()].matches('\n').count() + 1;
        let o = ferry(&["profiles", "check", &f]);
        check(
            key,
            &o,
            2,
            &[&format!(
                "ucm.toml:{line}: `{key}` must be a whole number from 1 to 16"
            )],
        );
        // Nor does the planner use it.
        let dir = d.path("");
        let o = ferry(&["--profiles", &dir, "plan", "example:ucm-standard"]);
        check(key, &o, 2, &[&format!("ucm.toml:{line}:")]);
    }
}

#[test]
fn a_fact_of_inf_and_a_step_of_2_64_s_are_refused_naming_the_file() {
    let d = Dir::new("arithmetic");
    // A number fact of inf (the per-fact minutes of CMS-05's data copy grow with it).
    let site = d.file(
        "cms.toml",
        &example("cms-ha").replacen("historical_data_gb = 20", "historical_data_gb = inf", 1),
    );
    let o = ferry(&["plan", &site]);
    check(
        "inf fact",
        &o,
        2,
        &["cms.toml:", "historical_data_gb", "found inf"],
    );
    let o = ferry(&["rehearse", &site]);
    check("inf fact", &o, 2, &["cms.toml:"]);

    // A plan whose step lasts 2^64-1 s.
    let site = d.file("pair.toml", &example("linux-ha-pair"));
    let plan_path = d.path("plan.json");
    let o = ferry(&["plan", &site, "--format", "json", "-o", &plan_path]);
    check("plan", &o, 0, &[]);
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let id = plan["steps"][1]["id"].as_str().unwrap().to_string();
    plan["steps"][1]["duration_s"] = serde_json::json!(u64::MAX);
    let edited = d.file("edited.json", &serde_json::to_string(&plan).unwrap());
    let o = ferry(&["rehearse", &edited, "--site", &site]);
    check(
        "2^64-1 s",
        &o,
        2,
        &["edited.json", &format!("step `{id}`"), "duration_s"],
    );
    let state = d.path("state");
    let o = ferry(&[
        "apply",
        &edited,
        "--site",
        &site,
        "--driver",
        "twin",
        "--approve",
        "--state",
        &state,
    ]);
    check("2^64-1 s", &o, 2, &["edited.json", "duration_s"]);
    assert!(!Path::new(&state).exists(), "a refused plan wrote {state}");
}

#[test]
fn names_too_long_for_a_table_are_refused_at_load() {
    let d = Dir::new("names");
    let long = "n".repeat(70_000);
    let site = d.file(
        "long.toml",
        &example("linux-ha-pair").replacen("name = \"kv-a\"", &format!("name = \"{long}\""), 1),
    );
    let out = d.path("plan.txt");
    let o = ferry(&["plan", &site, "-o", &out]);
    check(
        "long name",
        &o,
        2,
        &["long.toml:", "a name has at most 128"],
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_window_start_with_a_zone_annotation_reads_in_that_zone() {
    let d = Dir::new("zones");
    let text = example("linux-ha-pair");
    let start = text
        .lines()
        .find_map(|l| {
            l.split_once("start = \"")
                .map(|(_, r)| r.split('"').next().unwrap())
        })
        .expect("a window start")
        .to_string();
    assert!(start.ends_with("-05:00"), "{start}");
    let site = d.file(
        "zoned.toml",
        &text.replacen(&start, &format!("{start}[America/New_York]"), 1),
    );
    let plain = stdout(&ferry(&["plan", "example:linux-ha-pair"]));
    let zoned = ferry(&["plan", &site]);
    check("zoned", &zoned, 0, &[]);
    let opens = |t: &str| {
        t.lines()
            .find(|l| l.contains("site time:"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert_eq!(opens(&stdout(&zoned)), opens(&plain));
    assert!(!opens(&plain).is_empty());
    // A zone without an offset: the zone tells the offset (issue 14: sites may name their
    // IANA zone), and the times read the same.
    let bare = start.trim_end_matches("-05:00");
    let site = d.file(
        "bare.toml",
        &text.replacen(&start, &format!("{bare}[America/New_York]"), 1),
    );
    let o = ferry(&["plan", &site]);
    check("no offset", &o, 0, &[]);
    assert_eq!(opens(&stdout(&o)), opens(&plain));
    // An offset the zone does not have then: refused at the line and key.
    let site = d.file(
        "wrong.toml",
        &text.replacen(&start, &format!("{bare}-05:00[Europe/Paris]"), 1),
    );
    let o = ferry(&["plan", &site]);
    check(
        "wrong offset",
        &o,
        2,
        &["wrong.toml:", "site.window.start", "in Europe/Paris"],
    );
}

#[test]
fn nan_and_negative_facts_and_empty_clusters_are_refused() {
    let d = Dir::new("odd");
    let text = example("linux-ha-pair");
    let fact_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("facts"))
        .expect("a facts line");
    for (name, edited, fragment) in [
        (
            "nan.toml",
            text.replacen(fact_line, "facts = { package_mb = nan }", 1),
            "found NaN",
        ),
        (
            "negative.toml",
            text.replacen(fact_line, "facts = { package_mb = -40 }", 1),
            "found -40",
        ),
        (
            "empty.toml",
            text[..text.find("[[cluster.node]]").unwrap()].to_string(),
            "has no nodes",
        ),
    ] {
        let site = d.file(name, &edited);
        let o = ferry(&["check", &site]);
        check(name, &o, 2, &[&format!("{name}:"), fragment]);
    }
}

/// The CUCM site of a publisher on 12.5 and one subscriber on 10.5.
const BEHIND: &str = r#"[site]
name = "branch"
window = { start = "2026-12-05T22:00:00-05:00", hours = 8 }

[[cluster]]
name = "ucm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"

[[cluster.node]]
name = "pub"
role = "publisher"
version = "12.5.1.17900-64"

[[cluster.node]]
name = "sub"
role = "subscriber"
version = "10.5.2.10000-5"
"#;

#[test]
fn a_subscriber_behind_its_publisher_is_a_finding_and_a_profile_cycle_names_its_files_ucm_09() {
    let d = Dir::new("mixed");
    let site = d.file("branch.toml", BEHIND);
    let o = ferry(&["check", &site]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for words in [
        "[INHIBITOR] FERRY-MIXED-VERSIONS ucm",
        "pub (publisher) runs 12.5.1.17900-64",
        "sub (subscriber) runs 10.5.2.10000-5",
        "UCM-09",
        "remedy: Bring the nodes behind",
    ] {
        assert!(out.contains(words), "{words}: {out}");
    }
    // A profile whose own rules contradict each other: the site, the cluster, the profile and
    // the file it came from are named.
    let pdir = Dir::new("cycle-profiles");
    let profile = builtin_profile("linux-ha").replacen(
        "before = { step = [\"stage\"] }\nthen = { step = [\"switch\"] }",
        "before = { step = [\"switch\"] }\nthen = { step = [\"stage\"] }",
        1,
    );
    let pfile = pdir.file("linux-ha.toml", &profile);
    let site = d.file("pair.toml", &example("linux-ha-pair"));
    let o = ferry(&["--profiles", &pdir.path(""), "plan", &site]);
    check(
        "cycle",
        &o,
        2,
        &[
            "pair.toml: cluster `kv` (profile `linux-ha`): cannot schedule",
            "LHA-03",
            &format!("read from {pfile}"),
        ],
    );
}

/// Runs `ferry` with the file size limited to `max` bytes (a disk that fills up mid-run).
fn ferry_with_file_limit(args: &[&str], max: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args).env("NO_COLOR", "1");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: max as libc::rlim_t,
                rlim_max: max as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().expect("run ferry")
}

#[test]
fn environment_failures_exit_4_with_what_to_do_and_bad_input_2() {
    let d = Dir::new("exit");
    let site = d.file("pair.toml", &example("linux-ha-pair"));
    let plan = d.path("plan.json");
    check(
        "plan",
        &ferry(&["plan", &site, "--format", "json", "-o", &plan]),
        0,
        &[],
    );
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let first = first["steps"][0]["id"].as_str().unwrap().to_string();
    let journaled = |state: &str| {
        let o = ferry(&[
            "apply",
            &plan,
            "--site",
            &site,
            "--driver",
            "twin",
            "--approve",
            "--ignore-window",
            "--state",
            state,
            "--pause-after",
            &first,
        ]);
        check("paused run", &o, 1, &[]);
    };

    // The disk fills up while the run is carried out.
    let state = d.path("full");
    journaled(&state);
    let size = std::fs::metadata(Path::new(&state).join("journal.sqlite"))
        .unwrap()
        .len();
    let o = ferry_with_file_limit(&["resume", "--state", &state], size);
    check(
        "file limit",
        &o,
        4,
        &["journal.sqlite", "healthy disk", "run the command again"],
    );

    // An output file on a full disk.
    let o = ferry(&["plan", &site, "-o", "/dev/full"]);
    check(
        "/dev/full",
        &o,
        4,
        &["/dev/full is full", "free space there"],
    );

    // A journal with corrupted pages.
    let state = d.path("damaged");
    journaled(&state);
    let file = Path::new(&state).join("journal.sqlite");
    let mut bytes = std::fs::read(&file).unwrap();
    for page in (4096..bytes.len()).step_by(4096) {
        for b in &mut bytes[page..page + 64] {
            *b = 0xA5;
        }
    }
    std::fs::write(&file, &bytes).unwrap();
    for cmd in ["resume", "status"] {
        let o = ferry(&[cmd, "--state", &state]);
        check(
            cmd,
            &o,
            4,
            &[
                "journal",
                "is damaged",
                "Keep a copy of the state directory",
            ],
        );
        assert!(!stderr(&o).contains("internal error"));
    }

    // Bad input stays 2: a run the journal does not have, a state directory without one.
    let state = d.path("good");
    journaled(&state);
    check(
        "no run",
        &ferry(&["status", "--state", &state, "99"]),
        2,
        &["99"],
    );
    check(
        "no run",
        &ferry(&["resume", "99", "--state", &state]),
        2,
        &["99"],
    );
    check(
        "no journal",
        &ferry(&["status", "--state", &d.path("none")]),
        2,
        &["no journal here"],
    );
}

#[test]
fn the_readme_lists_every_exit_code() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let table = &readme[readme.find("### Exit codes").expect("an exit-code section")..];
    let codes: Vec<&str> = table
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    assert_eq!(codes, ["0", "1", "2", "3", "4"], "{table}");
    // And `--help` names them too.
    let help = stdout(&ferry(&["--help"]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for c in [
        "0 ok",
        "1 inhibitors",
        "2 bad input",
        "3 internal error",
        "4 environment failure",
    ] {
        assert!(help.contains(c), "--help lacks {c:?}");
    }
}

/// A fault on a step the plan does not have would never fire: `rehearse` and `apply --driver
/// twin` refuse it (exit 2) naming the faults file, and `apply` writes nothing.
#[test]
fn a_fault_on_a_step_the_plan_lacks_is_refused_naming_the_faults_file() {
    let dir = Dir::new("fault-step");
    let site = dir.file("site.toml", &example("linux-ha-pair"));
    let plan = dir.path("plan.json");
    check(
        "plan",
        &ferry(&["plan", &site, "--format", "json", "-o", &plan]),
        0,
        &[],
    );
    let state = dir.path("state");
    for (faults, says) in [
        (
            "[[fault]]\nkind = \"install_failure\"\nstep = \"kv/kv-c/switch\"\n",
            "no step `kv/kv-c/switch` in the plan",
        ),
        (
            "[[fault]]\nkind = \"slow_step\"\nstep = \"*/no-such-action\"\nfactor = 2\n",
            "no step `*/no-such-action` in the plan",
        ),
    ] {
        let file = dir.file("faults.toml", faults);
        check(
            "rehearse",
            &ferry(&["rehearse", &site, "--faults", &file]),
            2,
            &[&file, says],
        );
        check(
            "apply",
            &ferry(&[
                "apply", &plan, "--site", &site, "--driver", "twin", "--faults", &file, "--state",
                &state,
            ]),
            2,
            &[&file, says],
        );
        assert!(!Path::new(&state).exists(), "nothing written: {state}");
    }
    // The same faults file on a step the plan has is taken.
    let file = dir.file(
        "faults.toml",
        "[[fault]]\nkind = \"slow_step\"\nstep = \"*/switch\"\nfactor = 2\n",
    );
    check(
        "rehearse",
        &ferry(&["rehearse", &site, "--faults", &file]),
        0,
        &[],
    );
}
