//! The ssh driver against real OpenSSH servers on loopback. Each test starts its own `sshd`
//! per node (`/usr/sbin/sshd -D -e -f CONFIG` on 127.0.0.1 and a free port, a host key and a
//! client key made by `ssh-keygen` in a temp dir, strict host-key checking against a
//! known_hosts file written there) whose `ForceCommand` is the fake appliance CLI in
//! `tests/fixtures/fake-appliance.py`, answering from a per-node state file. One sshd per node
//! keeps each node's identity in its own server (its port), as real appliances are separate
//! hosts; they share a state directory so that the publisher's replication view sees every node.
//! Every sshd is killed and the temp dir removed when the test's `Lab` drops, even on failure.
//!
//! The fake appliance is an interactive `admin:` shell on the session's pty (exec requests are
//! refused), asking the 12.x or the 10.x/11.x upgrade dialogue by the version the node runs;
//! the driver knows its prompts only from the cisco-ucm profile's `[[ssh.dialogue]]` tables.

use crate::lab::{Lab, FROM, OTHER_ISO, PASSWORD, TO};
use ferry_exec::{
    apply, restrict, rollback_plan, Answer, Driver, Inspection, Journal, NewRun, Options, Outcome,
    RollbackScope, RunInputs, RunKind, RunStatus, SshDriver, SshOptions,
};
use ferry_model::{Plan, PlannedStep, Profile};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Setup {
    inputs: RunInputs,
    site: ferry_model::Site,
    profiles: BTreeMap<String, Profile>,
    plan: Plan,
}

fn setup(site_text: &str) -> Setup {
    let set = ProfileSet::builtin().expect("built-in profiles");
    let site = load_site("ssh-lab.toml", site_text, &set).unwrap_or_else(|e| panic!("{e:?}"));
    let profiles: BTreeMap<String, Profile> = [(
        "cisco-ucm".to_string(),
        set.get("cisco-ucm").expect("cisco-ucm").profile.clone(),
    )]
    .into();
    let text = set.get("cisco-ucm").expect("cisco-ucm").text.clone();
    let inputs = RunInputs {
        site_name: "ssh-lab.toml".into(),
        site_text: site_text.into(),
        profiles: [("cisco-ucm".to_string(), text)].into(),
        strategy: None,
    };
    let plan = ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        inputs.input_hash(),
        &PlanOptions::default(),
    )
    .expect("plan");
    Setup {
        inputs,
        site,
        profiles,
        plan,
    }
}

fn opts() -> Options {
    Options {
        parallel: None,
        pause_after: Vec::new(),
        window_end: None,
        policy: ferry_exec::FailurePolicy::Stop,
        approve_all: true,
        ignore_window: false,
        window_opens: None,
        window_poll_s: None,
        point_of_no_return: None,
        stop_at_point_of_no_return: false,
    }
}

/// The operator: answers done (as `ferry step done` would, through its own connection to the
/// journal) every step of the plan that the profile leaves to the operator, as it starts.
struct Operator {
    journal: Journal,
    run: i64,
    steps: std::collections::BTreeSet<String>,
}

impl Operator {
    fn new(dir: &Path, run: i64, plan: &Plan, profile: &Profile) -> Operator {
        let steps = plan
            .steps
            .iter()
            .filter(|s| {
                let proc = if s.rollback {
                    &profile.rollback
                } else {
                    &profile.procedure
                };
                let t = proc
                    .steps
                    .iter()
                    .find(|t| t.id == s.action)
                    .expect("template");
                t.ssh.is_none() && s.kind != ferry_model::StepKind::Pause
            })
            .map(|s| s.id.clone())
            .collect();
        Operator {
            journal: Journal::open(dir).expect("journal"),
            run,
            steps,
        }
    }
}

impl ferry_exec::Observer for Operator {
    fn progress(&mut self, p: &ferry_exec::Progress<'_>) {
        if matches!(p.change, ferry_exec::Change::Started { .. }) && self.steps.contains(&p.step.id)
        {
            self.journal
                .answer(self.run, &p.step.id, &Answer::Done, p.at)
                .expect("answer");
        }
    }
}

fn step<'p>(plan: &'p Plan, id: &str) -> &'p PlannedStep {
    plan.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

const THREE: [(&str, &str); 3] = [
    ("cucm-pub", "publisher"),
    ("cucm-sub1", "subscriber"),
    ("cucm-sub2", "subscriber"),
];

#[test]
fn a_cucm_site_is_upgraded_and_reverted_over_ssh() {
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    let lab = Lab::new(
        "apply",
        &[
            ("cucm-pub", "publisher", FROM, ""),
            ("cucm-sub1", "subscriber", FROM, ""),
            ("cucm-sub2", "subscriber", FROM, ""),
        ],
    );
    let s = setup(&lab.site_text(&THREE));
    let journal = Journal::open(&lab.dir.join("journal")).expect("journal");
    let mut operator = Operator::new(
        &lab.dir.join("journal"),
        1,
        &s.plan,
        &s.profiles["cisco-ucm"],
    );
    let new = NewRun {
        kind: RunKind::Apply,
        parent: None,
        driver: "ssh".into(),
        inputs: Some(s.inputs.clone()),
        ignore_window: false,
        supersede: false,
        by: None,
    };
    let mut cards = Vec::new();
    let report = {
        let mut d = SshDriver::new(
            &journal,
            s.site.clone(),
            s.profiles.clone(),
            lab.options(),
            Box::new(&mut cards),
        )
        .expect("driver");
        apply(&journal, &s.plan, &new, &mut d, &opts(), &mut operator).expect("apply")
    };
    assert_eq!(
        report.status,
        RunStatus::Complete,
        "{:?} {:?}",
        report.failed,
        report.message
    );
    assert_eq!(report.run, 1);
    for (n, _) in THREE {
        assert_eq!(lab.node(n)["active"], TO, "{n} runs the target");
        assert_eq!(lab.node(n)["inactive"], FROM, "{n} keeps the old version");
    }
    let cmds = lab.commands();
    // Every node installed once and switched once; the publisher switched first (UCM-09).
    for (n, _) in THREE {
        for c in [
            "utils system upgrade initiate",
            "utils system switch-version",
        ] {
            assert_eq!(
                cmds.iter().filter(|(m, x)| m == n && x == c).count(),
                1,
                "{n}: {c}"
            );
        }
    }
    let first_switch = cmds
        .iter()
        .position(|(_, c)| c == "utils system switch-version")
        .expect("a switch");
    assert_eq!(cmds[first_switch].0, "cucm-pub");
    // The replication gate polled the publisher until every node read 2.
    let polls = cmds
        .iter()
        .filter(|(n, c)| n == "cucm-pub" && c == "utils dbreplication runtimestate")
        .count();
    assert!(polls >= 2, "the gate polled {polls} time(s)");
    let text = String::from_utf8_lossy(&cards);
    assert!(
        text.contains("ferry step done|failed|skip ucm/freeze-configuration --run 1"),
        "{text}"
    );

    // The revert: the rollback planned again from the stored inputs, carried out over ssh.
    let plan = rollback_plan(&s.inputs, &BTreeMap::new(), None)
        .and_then(|p| restrict(p, &RollbackScope::All))
        .expect("rollback plan");
    assert!(plan.steps.iter().any(|s| s.action == "revert-version"));
    let mut operator = Operator::new(&lab.dir.join("journal"), 2, &plan, &s.profiles["cisco-ucm"]);
    let new = NewRun {
        kind: RunKind::Rollback,
        parent: Some(1),
        driver: "ssh".into(),
        inputs: Some(s.inputs.clone()),
        ignore_window: false,
        supersede: false,
        by: None,
    };
    let report = {
        let mut d = SshDriver::new(
            &journal,
            s.site.clone(),
            s.profiles.clone(),
            lab.options(),
            Box::new(std::io::sink()),
        )
        .expect("driver");
        apply(&journal, &plan, &new, &mut d, &opts(), &mut operator).expect("rollback")
    };
    assert_eq!(
        report.status,
        RunStatus::Complete,
        "{:?} {:?}",
        report.failed,
        report.message
    );
    for (n, _) in THREE {
        assert_eq!(lab.node(n)["active"], FROM, "{n} is back on its version");
    }
}

/// Starts one step with a fresh driver and waits for its end.
fn one_step(lab: &Lab, s: &Setup, opts: SshOptions, id: &str) -> Outcome {
    let journal = Journal::open(&lab.dir.join("journal")).expect("journal");
    let mut d = SshDriver::new(
        &journal,
        s.site.clone(),
        s.profiles.clone(),
        opts,
        Box::new(std::io::sink()),
    )
    .expect("driver");
    d.start(7, step(&s.plan, id)).expect("start");
    let (got, o) = d
        .wait(7, Some(ferry_exec::system_now() + 60))
        .expect("wait")
        .expect("an end");
    assert_eq!(got, id);
    o
}

#[test]
fn an_unknown_or_changed_host_key_is_refused_before_any_command_runs() {
    // The install's answers read it; the test sets it itself so that it passes alone too.
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    let lab = Lab::new("hostkey", &[("cucm-pub", "publisher", FROM, "")]);
    let s = setup(&lab.site_text(&[("cucm-pub", "publisher")]));
    let id = "ucm/cucm-pub/install-inactive";
    // Changed: the known_hosts file holds another key for the server.
    lab.known_hosts(false);
    let o = one_step(&lab, &s, lab.options(), id);
    assert!(
        matches!(&o, Outcome::Failed(r) if r.contains("cannot connect") && r.to_lowercase().contains("host key")),
        "{o:?}"
    );
    // Unknown: nothing in the known_hosts file.
    std::fs::write(lab.dir.join("known_hosts"), "").expect("empty known_hosts");
    let o = one_step(&lab, &s, lab.options(), id);
    assert!(
        matches!(&o, Outcome::Failed(r) if r.contains("cannot connect")),
        "{o:?}"
    );
    // accept-new still refuses a changed key.
    lab.known_hosts(false);
    let o = one_step(
        &lab,
        &s,
        SshOptions {
            accept_new: true,
            ..lab.options()
        },
        id,
    );
    assert!(matches!(&o, Outcome::Failed(_)), "{o:?}");
    assert!(lab.commands().is_empty(), "{:?}", lab.commands());
    assert_eq!(lab.node("cucm-pub")["inactive"], "");
    // And with the right key the same step installs.
    lab.known_hosts(true);
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    assert_eq!(one_step(&lab, &s, lab.options(), id), Outcome::Done);
    assert_eq!(lab.node("cucm-pub")["inactive"], TO);
}

#[test]
fn a_command_past_its_timeout_fails_the_step() {
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    let lab = Lab::new("timeout", &[("cucm-pub", "publisher", FROM, "")]);
    lab.set("cucm-pub", "install_s", serde_json::json!(30));
    let mut s = setup(&lab.site_text(&[("cucm-pub", "publisher")]));
    let p = s.profiles.get_mut("cisco-ucm").expect("profile");
    let t = p
        .procedure
        .steps
        .iter_mut()
        .find(|t| t.id == "install-inactive")
        .expect("install-inactive");
    t.ssh.as_mut().expect("ssh").timeout_minutes = Some(2.0 / 60.0);
    let began = Instant::now();
    let o = one_step(&lab, &s, lab.options(), "ucm/cucm-pub/install-inactive");
    assert!(
        matches!(&o, Outcome::Failed(r) if r.contains("did not end within 2 s")),
        "{o:?}"
    );
    assert!(began.elapsed() < Duration::from_secs(20));
}

#[test]
fn after_a_crash_inspect_decides_from_the_verify_probe_and_the_record() {
    let lab = Lab::new("crash", &[("cucm-pub", "publisher", FROM, "")]);
    let s = setup(&lab.site_text(&[("cucm-pub", "publisher")]));
    let journal = Journal::open(&lab.dir.join("journal")).expect("journal");
    let install = step(&s.plan, "ucm/cucm-pub/install-inactive");
    let driver = || {
        SshDriver::new(
            &journal,
            s.site.clone(),
            s.profiles.clone(),
            lab.options(),
            Box::new(std::io::sink()),
        )
        .expect("driver")
    };
    // Interrupted before the install took effect: the inactive slot is empty.
    assert_eq!(
        driver().inspect(3, install).expect("inspect"),
        Inspection::NotStarted
    );
    // Interrupted after it took effect (the ISO is in the inactive slot): done.
    lab.set("cucm-pub", "inactive", serde_json::json!(TO));
    assert_eq!(
        driver().inspect(3, install).expect("inspect"),
        Inspection::Ended(Outcome::Done)
    );
    let probes = lab
        .commands()
        .iter()
        .filter(|(_, c)| c == "show version inactive")
        .count();
    assert_eq!(probes, 2, "{:?}", lab.commands());
    assert!(!lab
        .commands()
        .iter()
        .any(|(_, c)| c.starts_with("utils system")));
    // The decision is recorded: a later inspect answers from the record, without the node.
    let mut d = driver();
    lab.set("cucm-pub", "inactive", serde_json::json!(""));
    assert_eq!(
        d.inspect(3, install).expect("inspect"),
        Inspection::Ended(Outcome::Done)
    );
    // Starting it again applies nothing: its end is reported by the next wait.
    d.start(3, install).expect("start");
    assert_eq!(
        d.wait(3, Some(ferry_exec::system_now() + 5)).expect("wait"),
        Some((install.id.clone(), Outcome::Done))
    );
    assert_eq!(lab.commands().len(), 2);
}

/// Every file of the lab's journal (the database, its write-ahead log) as bytes.
fn journal_bytes(lab: &Lab) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(lab.dir.join("journal")).expect("journal dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            all.extend(std::fs::read(&p).expect("journal file"));
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Upgrades a publisher and two subscribers from `from` to `to` over the appliances'
/// interactive CLI, an upgrade session left open on cucm-sub1 (its appliance asks to assume
/// control). The run must complete; the lab is returned for what the appliances were asked.
/// The password is nowhere in the journal, the cards or the report.
fn upgrade_three(tag: &str, from: &str, to: &str) -> Lab {
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    let lab = Lab::new(
        tag,
        &[
            ("cucm-pub", "publisher", from, ""),
            ("cucm-sub1", "subscriber", from, ""),
            ("cucm-sub2", "subscriber", from, ""),
        ],
    );
    lab.cluster("isos", serde_json::json!([OTHER_ISO, to]));
    lab.set(
        "cucm-sub1",
        "other_upgrade_session",
        serde_json::json!(true),
    );
    let s = setup(&lab.site_text_for(&THREE, from, to));
    let journal = Journal::open(&lab.dir.join("journal")).expect("journal");
    let mut operator = Operator::new(
        &lab.dir.join("journal"),
        1,
        &s.plan,
        &s.profiles["cisco-ucm"],
    );
    let new = NewRun {
        kind: RunKind::Apply,
        parent: None,
        driver: "ssh".into(),
        inputs: Some(s.inputs.clone()),
        ignore_window: false,
        supersede: false,
        by: None,
    };
    let mut cards = Vec::new();
    let report = {
        let mut d = SshDriver::new(
            &journal,
            s.site.clone(),
            s.profiles.clone(),
            lab.options(),
            Box::new(&mut cards),
        )
        .expect("driver");
        apply(&journal, &s.plan, &new, &mut d, &opts(), &mut operator).expect("apply")
    };
    assert_eq!(
        report.status,
        RunStatus::Complete,
        "{:?} {:?}\n{:?}",
        report.failed,
        report.message,
        lab.dialogue()
    );
    for (n, _) in THREE {
        assert_eq!(lab.node(n)["active"], to, "{n} runs the target");
        assert_eq!(lab.node(n)["inactive"], from, "{n} keeps the old version");
        // The file chosen is the listed line naming the site's ISO: the second.
        assert_eq!(
            lab.answer_to(n, "Please select an option (1 - 2")
                .as_deref(),
            Some("2"),
            "{n}"
        );
        assert_eq!(
            lab.answer_to(n, "Password:").as_deref(),
            Some("<password>"),
            "{n}"
        );
    }
    assert_eq!(
        lab.answer_to("cucm-sub1", "assume control").as_deref(),
        Some("yes")
    );
    for n in ["cucm-pub", "cucm-sub2"] {
        assert_eq!(lab.answer_to(n, "assume control"), None, "{n}");
    }
    drop(journal);
    assert!(
        !contains(&journal_bytes(&lab), PASSWORD),
        "the journal holds the password"
    );
    assert!(!contains(&cards, PASSWORD), "the cards show the password");
    assert!(!format!("{report:?}").contains(PASSWORD));
    lab
}

/// UCM-02, UCM-23: a standard upgrade of 12.5 nodes through the 12.x dialogue: the subscribers
/// are offered the publisher's download credentials (declined), "continue after download" and
/// "switch-version after upgrade" come before the file list; sub1's open session is taken over.
#[test]
fn a_12_5_cluster_upgrades_through_the_12x_dialogue_standard() {
    let lab = upgrade_three("std125", "12.5.1.11900-146", TO);
    for n in ["cucm-sub1", "cucm-sub2"] {
        assert_eq!(
            lab.answer_to(n, "download credentials of the publisher")
                .as_deref(),
            Some("no"),
            "{n}"
        );
    }
    assert_eq!(lab.answer_to("cucm-pub", "download credentials"), None);
    for (n, _) in THREE {
        assert_eq!(
            lab.answer_to(n, "Continue with upgrade after download")
                .as_deref(),
            Some("yes")
        );
        assert_eq!(
            lab.answer_to(n, "Switch-version server after upgrade")
                .as_deref(),
            Some("no"),
            "a standard upgrade switches in a later step"
        );
        assert_eq!(lab.answer_to(n, "Automatically switch versions"), None);
        assert_eq!(
            lab.answer_to(n, "Do you really want to switch between versions")
                .as_deref(),
            Some("yes")
        );
    }
}

/// UCM-03: a refresh upgrade of 12.5 nodes (12.5 to 15: the OS major changes) through the 12.x
/// dialogue, switching after the install.
#[test]
fn a_12_5_cluster_upgrades_through_the_12x_dialogue_refresh() {
    let lab = upgrade_three("ref125", "12.5.1.11900-146", "15.0.1.11900-23");
    for (n, _) in THREE {
        assert_eq!(
            lab.answer_to(n, "Switch-version server after upgrade")
                .as_deref(),
            Some("yes"),
            "{n}"
        );
    }
    assert_eq!(
        lab.answer_to("cucm-sub2", "download credentials of the publisher")
            .as_deref(),
        Some("no")
    );
}

/// UCM-02: a standard upgrade of 11.5 nodes through the 10.x/11.x dialogue: no credentials
/// question, the switch asked after the file is chosen, then the start.
#[test]
fn an_11_5_cluster_upgrades_through_the_older_dialogue_standard() {
    let lab = upgrade_three("std115", "11.5.1.10000-6", "12.5.1.11900-146");
    for (n, _) in THREE {
        assert_eq!(lab.answer_to(n, "download credentials"), None, "{n}");
        assert_eq!(
            lab.answer_to(n, "Continue with upgrade after download"),
            None
        );
        assert_eq!(
            lab.answer_to(n, "Automatically switch versions").as_deref(),
            Some("no"),
            "{n}"
        );
        assert_eq!(
            lab.answer_to(n, "Start installation").as_deref(),
            Some("yes")
        );
    }
}

/// UCM-03: a refresh upgrade of 10.5 nodes (10.5 to 12.5: the OS major changes) through the
/// 10.x/11.x dialogue, switching when the install succeeds.
#[test]
fn an_older_cluster_upgrades_through_the_older_dialogue_refresh() {
    let lab = upgrade_three("ref105", "10.5.2.15900-8", "12.5.1.11900-146");
    for (n, _) in THREE {
        assert_eq!(
            lab.answer_to(n, "Automatically switch versions").as_deref(),
            Some("yes"),
            "{n}"
        );
    }
}

/// UCM-02: a question no dialogue of the profile expects stops the step as failed, naming the
/// question; nothing is answered, and nothing more is sent to the appliance.
#[test]
fn a_question_the_profile_does_not_know_fails_the_step_naming_it() {
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    let lab = Lab::new("unknown", &[("cucm-pub", "publisher", FROM, "")]);
    let question = "Do you want to copy the TFTP files to the new partition? (yes/no): ";
    lab.set("cucm-pub", "extra_question", serde_json::json!(question));
    let s = setup(&lab.site_text(&[("cucm-pub", "publisher")]));
    let o = one_step(&lab, &s, lab.options(), "ucm/cucm-pub/install-inactive");
    assert!(
        matches!(&o, Outcome::Failed(r) if r.contains("asked `Do you want to copy the TFTP files to the new partition? (yes/no):`") && r.contains("upgrade-keep-version")),
        "{o:?}"
    );
    let d = lab.dialogue();
    let last = d.last().expect("a question");
    assert_eq!(
        (last.1.as_str(), last.2.as_str()),
        ("ASK", question.trim()),
        "{d:?}"
    );
    assert_eq!(lab.node("cucm-pub")["inactive"], "");
    let cmds = lab.commands();
    assert_eq!(
        cmds.last().map(|(_, c)| c.as_str()),
        Some("utils system upgrade initiate"),
        "{cmds:?}"
    );
}

/// UCM-02: a wrong answer is re-asked by the appliance, and the re-asked question is one the
/// dialogue does not expect: the step fails rather than answering it again blindly.
#[test]
fn an_answer_the_appliance_refuses_fails_the_step_at_the_repeated_question() {
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    let lab = Lab::new("reask", &[("cucm-pub", "publisher", FROM, "")]);
    let mut s = setup(&lab.site_text(&[("cucm-pub", "publisher")]));
    let p = s.profiles.get_mut("cisco-ucm").expect("profile");
    let d = p
        .ssh
        .dialogues
        .iter_mut()
        .find(|d| d.name == "upgrade-keep-version")
        .expect("dialogue");
    let q = d.variants[0]
        .prompts
        .iter_mut()
        .find(|p| p.expect.contains("Continue with upgrade"))
        .expect("prompt");
    q.answer = Some("y".into());
    let o = one_step(&lab, &s, lab.options(), "ucm/cucm-pub/install-inactive");
    assert!(
        matches!(&o, Outcome::Failed(r) if r.contains("asked `Continue with upgrade after download (yes/no):`")),
        "{o:?}"
    );
    let got: Vec<_> = lab
        .dialogue()
        .into_iter()
        .filter(|(_, k, t)| k == "GOT" && t == "y")
        .collect();
    assert_eq!(got.len(), 1, "answered once: {got:?}");
}

/// The upgrade password never appears in what ferry records or says, even when the appliance
/// echoes it and the step fails with what it printed.
#[test]
fn the_upgrade_password_appears_nowhere_in_a_failure() {
    std::env::set_var("FERRY_UPGRADE_PASSWORD", PASSWORD);
    let lab = Lab::new("secret", &[("cucm-pub", "publisher", FROM, "")]);
    lab.set("cucm-pub", "echo_password", serde_json::json!(true));
    lab.set("cucm-pub", "hang_after_password", serde_json::json!(true));
    let mut s = setup(&lab.site_text(&[("cucm-pub", "publisher")]));
    let p = s.profiles.get_mut("cisco-ucm").expect("profile");
    let d = p
        .ssh
        .dialogues
        .iter_mut()
        .find(|d| d.name == "upgrade-keep-version")
        .expect("dialogue");
    for p in d.variants[0].prompts.iter_mut() {
        if p.expect.contains("SMTP") {
            p.timeout_seconds = Some(3.0);
        }
    }
    let journal = Journal::open(&lab.dir.join("journal")).expect("journal");
    let mut cards = Vec::new();
    let id = "ucm/cucm-pub/install-inactive";
    let o = {
        let mut d = SshDriver::new(
            &journal,
            s.site.clone(),
            s.profiles.clone(),
            lab.options(),
            Box::new(&mut cards),
        )
        .expect("driver");
        d.start(7, step(&s.plan, id)).expect("start");
        d.wait(7, Some(ferry_exec::system_now() + 60))
            .expect("wait")
            .expect("an end")
            .1
    };
    let Outcome::Failed(why) = &o else {
        panic!("{o:?}")
    };
    assert!(why.contains("was not asked within 3 s"), "{why}");
    assert!(
        why.contains("********"),
        "the echoed password is masked: {why}"
    );
    assert!(!why.contains(PASSWORD), "{why}");
    drop(journal);
    assert!(!contains(&journal_bytes(&lab), PASSWORD));
    assert!(!contains(&cards, PASSWORD));
}

/// The fake appliance is interactive only, as the CLI is: a command sent with the connection
/// (an exec request) is refused and nothing runs.
#[test]
fn the_fake_appliance_refuses_exec_requests() {
    let lab = Lab::new("exec", &[("cucm-pub", "publisher", FROM, "")]);
    let out = Command::new("ssh")
        .arg("-i")
        .arg(lab.dir.join("client_key"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.dir.join("known_hosts").display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-p",
        ])
        .arg(lab.sshd["cucm-pub"].port.to_string())
        .arg(format!("{}@127.0.0.1", lab.user))
        .arg("utils system restart")
        .stdin(Stdio::null())
        .output()
        .expect("ssh");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interactive sessions only"), "{text}");
    assert_eq!(
        lab.commands(),
        vec![(
            "cucm-pub".to_string(),
            "EXEC utils system restart".to_string()
        )]
    );
    assert!(lab.dialogue().is_empty());
}
