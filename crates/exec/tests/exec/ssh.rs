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

use ferry_exec::{
    apply, restrict, rollback_plan, Answer, Driver, Inspection, Journal, NewRun, Options, Outcome,
    RollbackScope, RunInputs, RunKind, RunStatus, SshDriver, SshOptions,
};
use ferry_model::{Plan, PlannedStep, Profile};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const FROM: &str = "14.0.1.12900-161";
const TO: &str = "14.0.1.13900-155";
/// An ISO listed before the site's on the fake SFTP server: the right choice is not the first.
const OTHER_ISO: &str = "12.5.1.16900-48";
/// The upgrade password the tests give ferry (FERRY_UPGRADE_PASSWORD); the fake appliance
/// refuses any other.
const PASSWORD: &str = "not-a-real-password";

/// A running sshd, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The servers of one test and their files, all gone on drop.
struct Lab {
    dir: PathBuf,
    user: String,
    sshd: BTreeMap<String, Sshd>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.sshd.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ferry-test", "-f"])
        .arg(path));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Lab {
    /// One sshd per node (name, role, active version, inactive version).
    fn new(tag: &str, nodes: &[(&str, &str, &str, &str)]) -> Lab {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: the ssh driver's tests need OpenSSH's server and client; run `.ci/run` (it installs openssh-server and openssh-client) or `apt-get install -y openssh-server openssh-client`"
        );
        for tool in ["ssh", "ssh-keygen", "python3"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                "`{tool}` is missing: run `.ci/run` (it installs what the ssh driver's tests need)"
            );
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ferry-ssh-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state/nodes")).expect("temp dir");
        let mut lab = Lab {
            dir: dir.clone(),
            user: String::from_utf8(
                Command::new("id")
                    .arg("-un")
                    .output()
                    .expect("id -un")
                    .stdout,
            )
            .expect("user name")
            .trim()
            .to_string(),
            sshd: BTreeMap::new(),
        };
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).expect("keys");
        // sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        lab.write(
            "cluster.json",
            &serde_json::json!({ "isos": [OTHER_ISO, TO], "password": PASSWORD, "setup_s": 1.0, "converge_s": 3.0, "reboot_s": 0.6, "switch_s": 0.1, "install_s": 0.3 }),
        );
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-appliance.py");
        for (i, (name, role, active, inactive)) in nodes.iter().enumerate() {
            lab.write(
                &format!("nodes/{name}.json"),
                &serde_json::json!({
                    "active": active, "inactive": inactive, "db": "cucm",
                    "publisher": *role == "publisher", "ip": format!("10.1.1.{}", 10 + i),
                }),
            );
            let port = free_port();
            let config = dir.join(format!("sshd-{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile none\n\
AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPubkeyAuthentication yes\n\
PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
PermitTTY yes\nAllowTcpForwarding no\nX11Forwarding no\nLogLevel ERROR\n\
ForceCommand /usr/bin/env python3 {fixture} {d}/state {name}\n",
                    d = dir.display(),
                    fixture = fixture.display(),
                ),
            )
            .expect("sshd config");
            let log = std::fs::File::create(dir.join(format!("sshd-{name}.log"))).expect("log");
            let child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{SSHD}: {e}"));
            lab.sshd.insert(name.to_string(), Sshd { child, port });
        }
        for (name, s) in &lab.sshd {
            let began = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err() {
                assert!(
                    began.elapsed() < Duration::from_secs(10),
                    "sshd for {name} did not listen on {}: {}",
                    s.port,
                    std::fs::read_to_string(dir.join(format!("sshd-{name}.log")))
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        lab.known_hosts(true);
        lab
    }

    fn write(&self, name: &str, v: &serde_json::Value) {
        std::fs::write(self.dir.join("state").join(name), v.to_string()).expect("state");
    }

    fn node(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join(format!("state/nodes/{name}.json")))
            .expect("node state");
        serde_json::from_str(&text).expect("node json")
    }

    fn set(&self, name: &str, key: &str, value: serde_json::Value) {
        let mut v = self.node(name);
        v[key] = value;
        self.write(&format!("nodes/{name}.json"), &v);
    }

    /// The commands each node received, in order.
    fn commands(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.join("state/commands.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect()
    }

    /// The known_hosts file: every server's real key, or (false) a key of another host.
    fn known_hosts(&self, real: bool) {
        let key_file = if real {
            self.dir.join("host_key.pub")
        } else {
            let other = self.dir.join("other_key");
            if !other.exists() {
                keygen(&other);
            }
            self.dir.join("other_key.pub")
        };
        let key = std::fs::read_to_string(key_file).expect("host key");
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let text: String = self
            .sshd
            .values()
            .map(|s| format!("[127.0.0.1]:{} {}\n", s.port, key.join(" ")))
            .collect();
        std::fs::write(self.dir.join("known_hosts"), text).expect("known_hosts");
    }

    fn options(&self) -> SshOptions {
        SshOptions {
            identity: Some(self.dir.join("client_key")),
            known_hosts: Some(self.dir.join("known_hosts")),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            poll_every: Some(Duration::from_millis(200)),
            control_dir: Some(self.dir.clone()),
            ..SshOptions::default()
        }
    }

    /// A CUCM-only site of the lab's nodes, each reached through its own sshd.
    fn site_text(&self, nodes: &[(&str, &str)]) -> String {
        self.site_text_for(nodes, FROM, TO)
    }

    /// The same, from version `from` to `to` (the ISO the install chooses names `to`).
    fn site_text_for(&self, nodes: &[(&str, &str)], from: &str, to: &str) -> String {
        let mut s = format!(
            "[site]\nname = \"ssh-lab\"\n\n[[cluster]]\nname = \"ucm\"\nprofile = \"cisco-ucm\"\ntarget = \"{to}\"\n\
facts = {{ configured_devices = 1000, upgrade_source = \"sftp\", upgrade_server = \"10.1.1.5\", upgrade_directory = \"/upgrades\", upgrade_user = \"ferry\", upgrade_iso = \"UCSInstall_UCOS_{to}.sgn.iso\" }}\n"
        );
        for (name, role) in nodes {
            s.push_str(&format!(
                "\n[[cluster.node]]\nname = \"{name}\"\nrole = \"{role}\"\nversion = \"{from}\"\naddress = \"ssh://{}@127.0.0.1:{}\"\nfacts = {{ devices = 100, replication_state = 2 }}\n",
                self.user, self.sshd[*name].port
            ));
        }
        s
    }

    fn cluster(&self, key: &str, value: serde_json::Value) {
        let text =
            std::fs::read_to_string(self.dir.join("state/cluster.json")).expect("cluster state");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("cluster json");
        v[key] = value;
        self.write("cluster.json", &v);
    }

    /// What the appliances asked and were answered, in order: (node, `ASK`|`GOT`, text).
    fn dialogue(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(self.dir.join("state/dialogue.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut p = l.splitn(3, '\t');
                Some((
                    p.next()?.to_string(),
                    p.next()?.to_string(),
                    p.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// The answer `node` gave to its last question matching `asked`.
    fn answer_to(&self, node: &str, asked: &str) -> Option<String> {
        let d = self.dialogue();
        let mine: Vec<_> = d.iter().filter(|(n, _, _)| n == node).collect();
        let at = mine
            .iter()
            .rposition(|(_, k, t)| k == "ASK" && t.contains(asked))?;
        mine.get(at + 1)
            .filter(|(_, k, _)| k == "GOT")
            .map(|(_, _, t)| t.clone())
    }
}

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
