//! End-to-end runs across hosts: `ferry apply`, `rollback` and `resume` with the agent driver,
//! one `ferry agent` per host, the demo service as an HA pair and as a publisher with
//! subscribers, and failures made for real: an agent killed in a switch, a host cut off from
//! the network in a step, the orchestrator killed mid-run, bad credentials, a tampered package.
//!
//! Each host is a network namespace with its own address on a bridge (`hosts.rs`), or, where
//! namespaces cannot be made, a loopback address of its own; every test prints which it used.
//! The orchestrator (`ferry apply`) runs in the machine's own namespace, as it would on an
//! operator's workstation, and reaches the agents over the bridge.
//!
//! The health check of every node passes only while no file `hold-VERSION` lies in its service
//! directory: the tests hold a switch in its health wait that way, and let it go.

use super::hosts::{Hosts, Isolation};
use super::*;

const AGENT_PORT: u16 = 7443;
const SERVICE_PORT: u16 = 7101;
const FROM: &str = "2.0.3";
const TO: &str = "2.1.0";

/// A node of a test site.
#[derive(Clone, Copy)]
struct NodeSpec {
    cluster: &'static str,
    name: &'static str,
    role: &'static str,
    /// The node whose service this one follows (a backup, a subscriber; the primary follows its
    /// backup once the roles are reversed).
    upstream: Option<&'static str>,
}

const PAIR: [NodeSpec; 2] = [
    NodeSpec {
        cluster: "kv",
        name: "kv-a",
        role: "primary",
        upstream: Some("kv-b"),
    },
    NodeSpec {
        cluster: "kv",
        name: "kv-b",
        role: "backup",
        upstream: Some("kv-a"),
    },
];

const PUBSUB: [NodeSpec; 3] = [
    NodeSpec {
        cluster: "db",
        name: "db-pub",
        role: "publisher",
        upstream: None,
    },
    NodeSpec {
        cluster: "db",
        name: "db-sub1",
        role: "subscriber",
        upstream: Some("db-pub"),
    },
    NodeSpec {
        cluster: "db",
        name: "db-sub2",
        role: "subscriber",
        upstream: Some("db-pub"),
    },
];

/// A site of agents on hosts, with its site file, plan and signed packages. Dropping it stops
/// every agent and service (the lab) before the hosts go.
struct Site {
    lab: Lab,
    hosts: Hosts,
    nodes: Vec<NodeSpec>,
    dir: PathBuf,
}

impl Site {
    /// Agents on one host per node, every node's service on `FROM` (staged and switched to
    /// through the agents' API), a site file and a plan to `TO`. `deadline_s`: how long a
    /// switch waits for its health check.
    fn new(tag: &str, nodes: &[NodeSpec], deadline_s: u32) -> Site {
        let hosts = Hosts::new(tag, nodes.len());
        eprintln!(
            "e2e {tag}: {} hosts as {}",
            nodes.len(),
            match hosts.isolation {
                Isolation::Namespaces => "network namespaces on a bridge",
                Isolation::Loopback => "loopback addresses (no network namespaces here)",
            }
        );
        let mut lab = Lab::new(&format!("e2e-{tag}"));
        let dir = lab.dir.clone();
        let index = |name: &str| nodes.iter().position(|n| n.name == name).expect("node");
        for (i, n) in nodes.iter().enumerate() {
            let host = hosts.addr(i).to_string();
            let upstream = n
                .upstream
                .map(|u| format!("{}:{SERVICE_PORT}", hosts.addr(index(u))));
            let health = format!(
                r#"health = {{ command = ["sh", "-c", "test -e {{dir}}/hold-$(cat {{slot}}/VERSION) && exit 1; exec {{slot}}/demo-service health --host {host} --port {SERVICE_PORT}"] }}"#
            );
            let service = demo_service_with(
                &host,
                SERVICE_PORT,
                true,
                upstream.as_deref(),
                Some(&health),
                deadline_s,
            );
            let ha = match n.role {
                "primary" | "backup" => {
                    let peer = nodes
                        .iter()
                        .position(|m| m.cluster == n.cluster && m.name != n.name)
                        .expect("a partner");
                    format!(
                        "\n[service.ha]\nmode = \"pair\"\nrole = \"{}\"\npeer = \"https://{}:{AGENT_PORT}\"\npeer_token = \"{}\"\npeer_ca = \"tls/ca.pem\"\nheartbeat_s = 1\nmisses = 3\n",
                        n.role,
                        hosts.addr(peer),
                        lab.token
                    )
                }
                role => format!("\n[service.ha]\nmode = \"pubsub\"\nrole = \"{role}\"\n"),
            };
            let netns =
                (hosts.isolation == Isolation::Namespaces).then(|| hosts.hosts[i].0.clone());
            lab.configure_on(
                n.name,
                &host,
                netns.as_deref(),
                AGENT_PORT,
                &(service + &ha),
                "",
                // Client certificates from the lab's CA are accepted too.
                r#"client_ca = "tls/ca.pem""#,
            );
        }
        for i in 0..nodes.len() {
            lab.start(i);
        }
        // Every node on FROM, the publishers and primaries first (their followers copy them).
        let (data, sig) = lab.package(FROM);
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| nodes[i].upstream.is_some() && nodes[i].role != "primary");
        for i in order {
            let c = lab.client(i);
            op_ok(&c, &stage_req("setup/stage", FROM, &data, &sig));
            op_ok(&c, &switch_req("setup/switch", FROM));
        }
        // The packages directory the driver reads, and the token and CA files.
        let packages = dir.join("packages");
        std::fs::create_dir_all(&packages).expect("packages");
        for v in [FROM, TO] {
            let (data, sig) = lab.package(v);
            std::fs::write(packages.join(format!("kv-{v}.tar")), data).expect("package");
            std::fs::write(packages.join(format!("kv-{v}.tar.minisig")), sig).expect("sig");
        }
        std::fs::write(dir.join("token"), format!("{}\n", lab.token)).expect("token");
        let mut site = String::from("[site]\nname = \"e2e\"\n");
        let mut clusters: Vec<&str> = nodes.iter().map(|n| n.cluster).collect();
        clusters.dedup();
        for c in clusters {
            site.push_str(&format!(
                "\n[[cluster]]\nname = \"{c}\"\nprofile = \"linux-ha\"\ntarget = \"{TO}\"\nfacts = {{ service = \"kv\", package_mb = 1 }}\n"
            ));
            for (i, n) in nodes.iter().enumerate().filter(|(_, n)| n.cluster == c) {
                site.push_str(&format!(
                    "\n[[cluster.node]]\nname = \"{}\"\nrole = \"{}\"\nversion = \"{FROM}\"\naddress = \"https://{}:{AGENT_PORT}\"\n",
                    n.name,
                    n.role,
                    hosts.addr(i)
                ));
            }
        }
        std::fs::write(dir.join("site.toml"), site).expect("site");
        let s = Site {
            lab,
            hosts,
            nodes: nodes.to_vec(),
            dir,
        };
        let o = ferry(&[
            "plan",
            &s.path("site.toml"),
            "--format",
            "json",
            "-o",
            &s.path("plan.json"),
        ]);
        assert_eq!(o.status.code(), Some(0), "plan: {}", text(&o));
        s
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn node(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .expect("node")
    }

    /// The agent driver's arguments.
    fn driver_args(&self, patience: u32) -> Vec<String> {
        [
            "--driver",
            "agent",
            "--yes",
            "--state",
            &self.path("orchestrator"),
            "--agent-token-file",
            &self.path("token"),
            "--agent-ca",
            &self.path("tls/ca.pem"),
            "--packages",
            &self.path("packages"),
            "--agent-patience",
            &patience.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `ferry apply` of the plan with the agent driver and `extra` arguments.
    fn apply_command(&self, patience: u32, extra: &[&str]) -> Command {
        let mut c = Command::new(FERRY);
        c.args([
            "apply",
            &self.path("plan.json"),
            "--site",
            &self.path("site.toml"),
        ])
        .args(self.driver_args(patience))
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
        c
    }

    /// `ferry apply` started in the background, its output captured.
    fn spawn_apply(&self, patience: u32, extra: &[&str]) -> std::process::Child {
        self.apply_command(patience, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry apply")
    }

    /// Whether agent `i` journaled a switch of this test's runs (not the set-up) in `state`.
    fn switch_in(&self, i: usize, state: OpState) -> bool {
        self.journal(i)
            .iter()
            .any(|r| r.op == OpKind::Switch && r.state == state && !r.id.starts_with("setup/"))
    }

    /// Waits until agent `i` journaled a switch in `state`.
    fn wait_switch(&self, i: usize, state: OpState, what: &str) {
        wait_for(what, || self.switch_in(i, state).then_some(()));
    }

    fn apply(&self, patience: u32, extra: &[&str]) -> std::process::Output {
        self.apply_command(patience, extra)
            .output()
            .expect("ferry apply")
    }

    /// `ferry resume` or `ferry rollback` (the run's own driver, given its options again).
    fn run_command(&self, command: &str, patience: u32, extra: &[&str]) -> std::process::Output {
        Command::new(FERRY)
            .arg(command)
            .args(extra)
            .args(self.driver_args(patience))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("ferry")
    }

    fn status_json(&self, run: &str) -> serde_json::Value {
        let o = ferry(&[
            "status",
            run,
            "--state",
            &self.path("orchestrator"),
            "--format",
            "json",
        ]);
        assert_eq!(o.status.code(), Some(0), "status: {}", text(&o));
        serde_json::from_slice(&o.stdout).expect("status json")
    }

    /// Asserts run `run`'s kind and status (`ferry status`); its JSON.
    fn assert_run(&self, run: &str, kind: &str, status: &str) -> serde_json::Value {
        let st = self.status_json(run);
        assert_eq!(
            (st["run"]["kind"].as_str(), st["run"]["status"].as_str()),
            (Some(kind), Some(status)),
            "{st}"
        );
        st
    }

    fn ask(&self, i: usize, command: &str) -> Option<String> {
        ask_at(self.hosts.addr(i), SERVICE_PORT, command)
    }

    fn hold(&self, i: usize, version: &str, on: bool) {
        let f = self.lab.service_dir(i).join(format!("hold-{version}"));
        if on {
            std::fs::write(f, "").expect("hold");
        } else {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Every operation agent `i` journaled, read from its journal file (also while the agent
    /// is down or cut off).
    fn journal(&self, i: usize) -> Vec<OpResult> {
        let j = ferry_agent::journal::Journal::open(&self.lab.state_dir(i)).expect("journal");
        j.all()
            .expect("journal")
            .into_iter()
            .map(|o| o.result)
            .collect()
    }

    /// The operations of kind `op` that agent `i` carried out to the end, for this test's runs
    /// (not the set-up).
    fn done(&self, i: usize, op: OpKind) -> Vec<String> {
        self.journal(i)
            .into_iter()
            .filter(|r| r.op == op && r.state == OpState::Done && !r.id.starts_with("setup/"))
            .map(|r| r.id)
            .collect()
    }

    /// Asserts every node carried out `count` operations of each kind in `ops` (this test's
    /// runs, not the set-up).
    fn assert_done_on_each(&self, ops: &[OpKind], count: usize) {
        for (i, n) in self.nodes.iter().enumerate() {
            for op in ops {
                assert_eq!(self.done(i, *op).len(), count, "{}: {op:?}", n.name);
            }
        }
    }

    /// What a user checks on node `i`: its active and inactive versions and health (agent
    /// status), and the version and role its service answers with.
    fn node_state(&self, i: usize) -> (Option<String>, Option<String>, Health, Option<String>) {
        let st = self.lab.status(i);
        let (active, inactive) = versions(&st);
        (
            active.map(|v| v.split(':').nth(1).unwrap_or_default().to_string()),
            inactive.map(|v| v.split(':').nth(1).unwrap_or_default().to_string()),
            st.services[0].health,
            self.ask(i, "PING"),
        )
    }

    /// Asserts every node runs `version` (and holds `other` in its inactive slot), healthy, in
    /// the role the site gives it, exactly one service process each, and the followers in sync.
    fn assert_all_on(&self, version: &str, other: Option<&str>, when: &str) {
        for (i, n) in self.nodes.iter().enumerate() {
            wait_for(&format!("{when}: {} in sync", n.name), || {
                let st = self.lab.status(i);
                let s = &st.services[0];
                let in_sync = n.role == "primary" || s.replication.is_none_or(|r| r == 2);
                (s.health == Health::Healthy && in_sync).then_some(())
            });
            assert_eq!(
                self.node_state(i),
                (
                    Some(version.to_string()),
                    other.map(str::to_string),
                    Health::Healthy,
                    Some(format!("PONG {version} {}", n.role)),
                ),
                "{when}: {}",
                n.name
            );
            let procs = processes_under(&self.lab.state_dir(i), true);
            assert_eq!(procs.len(), 1, "{when}: {}: {procs:?}", n.name);
        }
    }
}

/// A step's state in `ferry status --format json`.
fn step_state(status: &serde_json::Value, id: &str) -> String {
    status["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .and_then(|s| s["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `key = value` on the primary (or publisher) of a cluster, and asserts every node of
/// it reads the value back once replicated.
fn write_and_read_back(site: &Site, writer: usize, key: &str, value: &str) {
    assert_eq!(
        site.ask(writer, &format!("SET {key} {value}")).as_deref(),
        Some("OK")
    );
    let cluster = site.nodes[writer].cluster;
    for (i, n) in site.nodes.iter().enumerate() {
        if n.cluster == cluster {
            wait_for(&format!("{} to read {key}", n.name), || {
                (site.ask(i, &format!("GET {key}")) == Some(format!("VALUE {value}"))).then_some(())
            });
        }
    }
}

#[test]
fn e2e_apply_and_rollback_of_a_pair_and_a_publisher_with_subscribers() {
    let nodes: Vec<NodeSpec> = PAIR.iter().chain(PUBSUB.iter()).copied().collect();
    let site = Site::new("full", &nodes, 10);
    site.assert_all_on(FROM, None, "before");
    let (kv_a, db_pub) = (site.node("kv-a"), site.node("db-pub"));
    write_and_read_back(&site, kv_a, "city", "lyon");
    write_and_read_back(&site, db_pub, "fleet", "ferries");

    let o = site.apply(30, &[]);
    assert_eq!(o.status.code(), Some(0), "apply: {}", text(&o));
    site.assert_run("1", "apply", "complete");
    site.assert_all_on(TO, Some(FROM), "after apply");
    // The data came through; the pair ends with its roles as the site gives them, and each
    // node was switched exactly once.
    for (i, n) in site.nodes.iter().enumerate() {
        let (key, value) = if n.cluster == "kv" {
            ("city", "lyon")
        } else {
            ("fleet", "ferries")
        };
        assert_eq!(
            site.ask(i, &format!("GET {key}")),
            Some(format!("VALUE {value}")),
            "{}",
            n.name
        );
        assert_eq!(site.done(i, OpKind::Switch).len(), 1, "{}", n.name);
        assert_eq!(site.done(i, OpKind::Stage).len(), 1, "{}", n.name);
    }
    // The switchover: the backup served as primary while the primary switched, then gave the
    // role back (two set_role operations on each member of the pair).
    for i in [kv_a, site.node("kv-b")] {
        assert_eq!(site.done(i, OpKind::SetRole).len(), 2, "{}", nodes[i].name);
    }
    write_and_read_back(&site, kv_a, "city", "nantes");
    write_and_read_back(&site, db_pub, "fleet", "ships");

    let o = site.run_command("rollback", 30, &["1"]);
    assert_eq!(o.status.code(), Some(0), "rollback: {}", text(&o));
    site.assert_run("2", "rollback", "complete");
    site.assert_all_on(FROM, Some(TO), "after rollback");
    site.assert_done_on_each(&[OpKind::Revert], 1);
    write_and_read_back(&site, kv_a, "city", "brest");
    write_and_read_back(&site, db_pub, "fleet", "barges");

    // The same plan again from a fresh state directory (another workstation, say): its run 1
    // is not the first journal's run 1 on the agents, so every node really switches again.
    std::fs::rename(
        site.dir.join("orchestrator"),
        site.dir.join("orchestrator-old"),
    )
    .expect("move the journal away");
    let o = site.apply(30, &[]);
    assert_eq!(o.status.code(), Some(0), "apply again: {}", text(&o));
    site.assert_all_on(TO, Some(FROM), "after the second apply");
    site.assert_done_on_each(&[OpKind::Switch], 2);
}

#[test]
fn e2e_an_agent_killed_in_a_switch_leaves_one_working_version_and_the_node_is_rolled_back() {
    let mut site = Site::new("kill", &PAIR, 8);
    let kv_b = site.node("kv-b");
    // The backup's new version never passes its health check: its switch waits, and the
    // agent is killed there.
    site.hold(kv_b, TO, true);
    let apply = site.spawn_apply(60, &["--policy", "rollback-node"]);
    site.wait_switch(
        kv_b,
        OpState::Running,
        "the backup's switch to wait for its health check",
    );
    site.lab.kill(kv_b);
    // Restarted, the agent finds the switch half done and the new version unhealthy: it
    // switches back to the old one.
    site.lab.start(kv_b);
    let o = apply.wait_with_output().expect("ferry apply");
    assert_eq!(o.status.code(), Some(1), "apply: {}", text(&o));
    let switch = site
        .journal(kv_b)
        .into_iter()
        .find(|r| r.op == OpKind::Switch && !r.id.starts_with("setup/"))
        .expect("the switch");
    assert_eq!(switch.state, OpState::Failed, "{}", switch.message);
    assert!(
        switch.message.contains("interrupted by an agent restart"),
        "{}",
        switch.message
    );
    let st = site.assert_run("1", "apply", "failed");
    assert_eq!(step_state(&st, "kv/kv-b/switch"), "failed", "{st}");
    assert_eq!(step_state(&st, "kv/kv-a/switchover"), "pending", "{st}");
    // Policy rollback-node: the failed node's rollback ran, and the node is on its old
    // version; the primary was never touched beyond staging.
    site.assert_run("2", "rollback", "complete");
    site.assert_all_on(FROM, Some(TO), "after the rollback");
    let kv_a = site.node("kv-a");
    assert!(site.done(kv_a, OpKind::Switch).is_empty());
    assert!(site.done(kv_a, OpKind::SetRole).is_empty());
}

#[test]
fn e2e_a_host_cut_off_in_a_step_stops_the_run_and_resume_finishes_it_once() {
    let site = Site::new("cut", &PUBSUB, 60);
    let sub2 = site.node("db-sub2");
    site.hold(sub2, TO, true);
    let apply = site.spawn_apply(3, &["--policy", "stop"]);
    site.wait_switch(
        sub2,
        OpState::Running,
        "db-sub2's switch to wait for its health check",
    );
    let agent_pid = site.lab.agents[sub2].child.as_ref().map(|c| c.id() as i32);
    match site.hosts.isolation {
        Isolation::Namespaces => site.hosts.cut_off(sub2, true).expect("cut off"),
        // Without namespaces, the host "drops off the network" by its agent freezing.
        // SAFETY: kill(2) has no memory effects.
        Isolation::Loopback => unsafe {
            libc::kill(agent_pid.expect("pid"), libc::SIGSTOP);
        },
    }
    // The orchestrator loses the host: the step fails once its patience is spent, and policy
    // stop ends the run.
    let o = apply.wait_with_output().expect("ferry apply");
    assert_eq!(o.status.code(), Some(1), "apply: {}", text(&o));
    let st = site.assert_run("1", "apply", "failed");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("policy stop"), "{}", text(&o));
    assert!(
        out.contains("continue with `ferry resume --state")
            && out.contains("and the same --agent-* and --packages options"),
        "{}",
        text(&o)
    );
    // Policy stop: nothing after the failed step started.
    assert_eq!(step_state(&st, "db/db-sub2/switch"), "failed", "{st}");
    assert_eq!(step_state(&st, "db/db-sub1/switch"), "done", "{st}");
    for later in ["db/db-sub2/health-gate", "db/replication-gate"] {
        assert_eq!(step_state(&st, later), "pending", "{st}");
    }
    // Meanwhile, on the host, the switch finishes once its health check passes (without
    // namespaces: once the agent runs again).
    site.hold(sub2, TO, false);
    match site.hosts.isolation {
        Isolation::Namespaces => {
            site.wait_switch(
                sub2,
                OpState::Done,
                "the switch to finish on the cut-off host",
            );
            site.hosts.cut_off(sub2, false).expect("back on");
        }
        Isolation::Loopback => {
            // SAFETY: kill(2) has no memory effects.
            unsafe {
                libc::kill(agent_pid.expect("pid"), libc::SIGCONT);
            }
            site.wait_switch(sub2, OpState::Done, "the switch to finish");
        }
    }
    // Back on the network: exactly one working version on the node.
    wait_for("db-sub2 to answer again", || {
        site.lab.client(sub2).status().ok().map(|_| ())
    });
    let (active, _, health, _) = site.node_state(sub2);
    assert_eq!((active.as_deref(), health), (Some(TO), Health::Healthy));
    assert_eq!(processes_under(&site.lab.state_dir(sub2), true).len(), 1);
    // Resume finishes the run; the switch that went through while the host was cut off is not
    // carried out again.
    let o = site.run_command("resume", 30, &[]);
    assert_eq!(o.status.code(), Some(0), "resume: {}", text(&o));
    site.assert_run("1", "apply", "complete");
    site.assert_all_on(TO, Some(FROM), "after resume");
    site.assert_done_on_each(&[OpKind::Switch, OpKind::Stage], 1);
}

/// The state a refused run must leave untouched on a node: its slots, its `current` link and
/// configuration, and what its agent reports.
fn untouched(site: &Site, i: usize) -> (Vec<(String, Vec<u8>)>, PathBuf, AgentStatus) {
    let dir = site.lab.service_dir(i);
    let mut st = site.lab.status(i);
    for s in &mut st.services {
        s.snapshots.clear();
    }
    (
        tree(&dir.join("slots")),
        std::fs::read_link(dir.join("current")).expect("current"),
        st,
    )
}

#[test]
fn e2e_no_token_a_wrong_token_and_a_tampered_package_are_refused_and_change_nothing() {
    let site = Site::new("auth", &PUBSUB, 10);
    let before: Vec<_> = (0..site.nodes.len()).map(|i| untouched(&site, i)).collect();
    let unchanged = |what: &str| {
        for (i, b) in before.iter().enumerate() {
            assert_eq!(&untouched(&site, i), b, "{what}: {}", site.nodes[i].name);
        }
        for i in 0..site.nodes.len() {
            assert!(site.done(i, OpKind::Stage).is_empty(), "{what}");
            assert!(site.done(i, OpKind::Switch).is_empty(), "{what}");
        }
    };
    let check = |what: &str, o: std::process::Output, says: &str| {
        assert_ne!(o.status.code(), Some(0), "{what}: {}", text(&o));
        assert!(text(&o).contains(says), "{what}: {}", text(&o));
        unchanged(what);
        let _ = std::fs::remove_dir_all(site.dir.join("orchestrator"));
    };
    // No credentials at all: ferry refuses to start (bad input), and an agent asked without
    // any answers 401 to every request.
    let mut c = Command::new(FERRY);
    c.args([
        "apply",
        &site.path("plan.json"),
        "--site",
        &site.path("site.toml"),
    ])
    .args([
        "--driver",
        "agent",
        "--yes",
        "--state",
        &site.path("orchestrator"),
    ])
    .args(["--agent-ca", &site.path("tls/ca.pem")])
    .args([
        "--packages",
        &site.path("packages"),
        "--agent-patience",
        "3",
    ])
    .stdin(Stdio::null());
    let o = c.output().expect("ferry");
    assert_eq!(o.status.code(), Some(2), "no credentials: {}", text(&o));
    check("no credentials", o, "needs credentials");
    // (A small body: an agent answers 401 before it reads a request's body, and may close
    // the connection while a large one is still being sent.)
    let (_, sig) = site.lab.package(TO);
    let data = b"a package body";
    for i in 0..site.nodes.len() {
        let anonymous = site.lab.client_with(i, None, None);
        assert_eq!(
            anonymous
                .request("GET", "/v1/status", &[])
                .expect("status")
                .status,
            401
        );
        assert_eq!(
            post(&anonymous, &stage_req("anon/stage", TO, data, &sig)).status,
            401
        );
        assert_eq!(post(&anonymous, &switch_req("anon/switch", TO)).status, 401);
    }
    unchanged("requests without credentials");
    // A wrong token.
    std::fs::write(site.dir.join("token"), "not-the-token-0123456789\n").expect("token");
    check("a wrong token", site.apply(3, &[]), "401");
    std::fs::write(site.dir.join("token"), format!("{}\n", site.lab.token)).expect("token");
    // A package missing from the packages' directory: refused before anything starts.
    let p = site.dir.join(format!("packages/kv-{TO}.tar"));
    let sig = site.dir.join(format!("packages/kv-{TO}.tar.minisig"));
    let away = site.dir.join("away.minisig");
    std::fs::rename(&sig, &away).expect("move the signature away");
    let o = site.apply(3, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    check("a missing signature", o, &format!("kv-{TO}.tar.minisig"));
    std::fs::rename(&away, &sig).expect("put the signature back");
    // A tampered package: one byte of the archive changed after signing.
    let mut data = std::fs::read(&p).expect("package");
    let k = data.len() / 2;
    data[k] ^= 0x55;
    std::fs::write(&p, data).expect("package");
    check("a tampered package", site.apply(3, &[]), "signature");
}

#[test]
fn e2e_the_orchestrator_killed_mid_run_resumes_and_applies_nothing_twice() {
    let site = Site::new("resume", &PUBSUB, 60);
    let (publisher, sub1) = (site.node("db-pub"), site.node("db-sub1"));
    // Killed twice: while the publisher's switch waits for its health check (an operation
    // under way on an agent), and again while a subscriber's does.
    for (i, round) in [(publisher, "publisher"), (sub1, "subscriber")] {
        site.hold(i, TO, true);
        let mut child = if round == "publisher" {
            site.apply_command(30, &[])
        } else {
            let mut c = Command::new(FERRY);
            c.arg("resume")
                .args(site.driver_args(30))
                .stdin(Stdio::null());
            c
        }
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry");
        site.wait_switch(
            i,
            OpState::Running,
            &format!("the {round}'s switch to be under way"),
        );
        let _ = child.kill();
        let _ = child.wait();
        site.hold(i, TO, false);
        let st = site.status_json("1");
        assert_ne!(st["run"]["status"], "complete", "{round}: {st}");
    }
    let o = site.run_command("resume", 30, &[]);
    assert_eq!(o.status.code(), Some(0), "resume: {}", text(&o));
    site.assert_run("1", "apply", "complete");
    site.assert_all_on(TO, Some(FROM), "after resume");
    site.assert_done_on_each(&[OpKind::Switch, OpKind::Stage, OpKind::Snapshot], 1);
}

/// One fleet benchmark at a time: each takes its ports below the ephemeral range by trying to
/// bind them, so two at once can pick the same port (one then fails with "address in use",
/// or a service replicates from the other fleet's).
static FLEET_BENCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn fleet_benchmark_upgrades_every_agent_both_ways_and_reports_json() {
    let _one_fleet = FLEET_BENCH.lock().unwrap_or_else(|e| e.into_inner());
    // The benchmark's own checks (every node on the new version after each upgrade) make it
    // fail otherwise; this asserts what it reports, not how fast.
    let o = ferry(&[
        "agent",
        "bench",
        "--fleet",
        "4",
        "--cluster-size",
        "2",
        "--json",
        "--demo",
        demo_bin().to_str().unwrap_or_default(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        (j["agents"].as_u64(), j["clusters"].as_u64()),
        (Some(4), Some(2))
    );
    let upgrades = j["upgrades"].as_array().expect("upgrades");
    let modes: Vec<&str> = upgrades.iter().filter_map(|u| u["mode"].as_str()).collect();
    assert_eq!(modes, ["as the plan allows", "one step at a time"]);
    // Per node: snapshot, stage, switch, health gate; per publisher a replication gate; per
    // cluster one more.
    for u in upgrades {
        assert_eq!(u["steps"].as_u64(), Some(4 * 4 + 2 + 2), "{u}");
        assert!(u["seconds"].as_f64().is_some_and(|s| s > 0.0), "{u}");
    }
    assert!(j["one_at_a_time_over_parallel"].as_f64().is_some());
    // Bad input is refused before anything starts.
    let o = ferry(&["agent", "bench", "--fleet", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// `ferry agent bench --fleet N --hand-over PROGRAM` (issue 15, part 7: the comparison with
/// ansible-core on the same hosts): PROGRAM gets the live fleet's directory — an inventory of
/// the agents, the token, the CA, the signed packages of two more versions — and the bench
/// fails unless every node runs the last of them when PROGRAM ends.
fn check_hand_over(name: &str, upgrade: bool, expected_exit: i32, expected: &[&str]) {
    let dir = std::env::temp_dir().join(format!("ferry-hand-over-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    // What a user's orchestrator does with the directory, with ferry's own commands (agent
    // URLs from the inventory, publishers listed before subscribers).
    let program = dir.join("hand-over.sh");
    let steps = if upgrade {
        format!(
            r#"for url in $(grep -o 'https://127.0.0.1:[0-9]*' "$d/inventory.yml"); do
  for v in 1.3.0 1.4.0; do
    ask="--url $url --agent-token-file $d/token --agent-ca $d/tls/ca.pem"
    {ferry} agent stage "$d/packages/kv-$v.tar" --version $v $ask >/dev/null
    {ferry} agent switch --version $v $ask >/dev/null
  done
done
"#,
            ferry = FERRY
        )
    } else {
        String::new()
    };
    std::fs::write(
        &program,
        format!(
            "#!/usr/bin/env bash\nset -euo pipefail\nd=$1\ncp \"$d/inventory.yml\" {}\n{steps}",
            dir.join("inventory.yml").display()
        ),
    )
    .expect("program");
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let o = ferry(&[
        "agent",
        "bench",
        "--fleet",
        "4",
        "--cluster-size",
        "2",
        "--demo",
        demo_bin().to_str().unwrap_or_default(),
        "--hand-over",
        program.to_str().unwrap_or_default(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(expected_exit), "{name}: {out}");
    for e in expected {
        assert!(out.contains(e), "{name}: no `{e}` in:\n{out}");
    }
    // The inventory: the hosts by role and by cluster, each with its agent's URL.
    let inv: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("inventory.yml")).expect("inventory copied"),
    )
    .expect("inventory is JSON (and so YAML)");
    let groups = &inv["all"]["children"];
    let hosts = |g: &str| -> Vec<String> {
        groups[g]["hosts"]
            .as_object()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(hosts("publishers"), ["n000", "n002"], "{name}: {inv}");
    assert_eq!(hosts("subscribers"), ["n001", "n003"], "{name}: {inv}");
    assert_eq!(hosts("c00"), ["n000", "n001"], "{name}: {inv}");
    assert_eq!(hosts("c01"), ["n002", "n003"], "{name}: {inv}");
    let url = groups["subscribers"]["hosts"]["n003"]["agent_url"].as_str();
    assert!(
        url.is_some_and(|u| u.starts_with("https://127.0.0.1:")),
        "{name}: {inv}"
    );
    assert_eq!(
        inv["all"]["vars"]["versions"],
        serde_json::json!(["1.2.0", "1.3.0", "1.4.0"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fleet_benchmark_hands_the_live_fleet_over_and_checks_it_was_upgraded() {
    let _one_fleet = FLEET_BENCH.lock().unwrap_or_else(|e| e.into_inner());
    check_hand_over("upgraded", true, 0, &["as the plan allows:"]);
    // A program that leaves the fleet as it is fails the bench, naming a node.
    check_hand_over(
        "left-alone",
        false,
        1,
        &["n000: on Some(\"1.2.0\")", "(it was to end on 1.4.0)"],
    );
}

/// The README's walkthrough, run as a user would (bash, `set -euo pipefail`), with the test's
/// own binaries, a directory of its own and free ports, so that it stays true.
#[test]
fn readme_walkthrough_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let at = readme
        .find("#### Walkthrough: a real upgrade on one machine")
        .expect("the walkthrough section");
    let start = at + readme[at..].find("```sh\n").expect("its script") + "```sh\n".len();
    let end = start + readme[start..].find("\n```\n").expect("the script's end");
    let mut script = readme[start..end].to_string();
    let dir = std::env::temp_dir().join(format!("ferry-walkthrough-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = Path::new(FERRY).parent().expect("bin dir");
    let build = "cargo build --release -p ferry-cli -p ferry-demo-service\n";
    assert!(script.contains(build), "{script}");
    script = script.replace(build, "");
    script = script.replace(
        r#"export PATH="$PWD/target/release:$PATH""#,
        &format!(r#"export PATH="{}:$PATH""#, bin.display()),
    );
    script = script.replace("/tmp/ferry-try", &dir.display().to_string());
    for port in ["7441", "7442", "7101", "7102"] {
        assert!(script.contains(port), "{port}");
        script = script.replace(port, &free_port().to_string());
    }
    use std::os::unix::process::CommandExt as _;
    // Output to a file: agents the script starts in the background would hold a pipe open.
    let log_path =
        std::env::temp_dir().join(format!("ferry-walkthrough-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("log");
    let mut bash = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{script}\nwait\n")])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("bash");
    let status = bash.wait().expect("bash");
    // Whatever happened, nothing it started stays behind: its process group (the agents it
    // started in the background), and the services under its directory.
    kill_group(bash.id() as i32);
    for (pid, _) in processes_under(&dir, false) {
        kill_group(pid);
    }
    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(0), "{out}");
    for line in [
        "apply run 1: complete — 10 of 10 steps done",
        "kv: active 2.1.0 (slot b), inactive 2.0.3 (slot a), healthy, role primary",
        "rollback run 2: complete",
        "kv: active 2.0.3 (slot a), inactive 2.1.0 (slot b), healthy, role primary",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
}

#[test]
fn e2e_nodes_changed_by_hand_mid_run_are_not_switched_blindly() {
    let site = Site::new("hand", &PUBSUB, 10);
    let (publisher, sub1) = (site.node("db-pub"), site.node("db-sub1"));
    let o = site.apply(30, &["--pause-after", "db/db-pub/stage"]);
    assert_eq!(o.status.code(), Some(1), "apply: {}", text(&o));
    let st = site.assert_run("1", "apply", "paused");
    for n in ["db-pub", "db-sub1", "db-sub2"] {
        assert_eq!(step_state(&st, &format!("db/{n}/stage")), "done", "{st}");
    }
    // While the run is paused: db-sub1 is switched by hand, and another version is staged by
    // hand on the publisher.
    op_ok(&site.lab.client(sub1), &switch_req("hand/switch", TO));
    let (data, sig) = site.lab.package("2.0.9");
    op_ok(
        &site.lab.client(publisher),
        &stage_req("hand/stage", "2.0.9", &data, &sig),
    );
    // The publisher's switch would bring 2.0.9: refused, nothing switched.
    let o = site.run_command("resume", 30, &[]);
    assert_eq!(o.status.code(), Some(1), "resume: {}", text(&o));
    assert!(
        text(&o).contains("the inactive slot holds 2.0.9, not 2.1.0: nothing was switched"),
        "{}",
        text(&o)
    );
    let st = site.assert_run("1", "apply", "failed");
    assert_eq!(step_state(&st, "db/db-pub/switch"), "failed", "{st}");
    assert_eq!(
        site.node_state(publisher),
        (
            Some(FROM.to_string()),
            Some("2.0.9".to_string()),
            Health::Healthy,
            Some(format!("PONG {FROM} publisher"))
        )
    );
    // The operator stages the target again, and the run goes on; db-sub1, already on it, is
    // not switched again.
    let (data, sig) = site.lab.package(TO);
    op_ok(
        &site.lab.client(publisher),
        &stage_req("hand/stage-again", TO, &data, &sig),
    );
    let o = site.run_command("resume", 30, &[]);
    assert_eq!(o.status.code(), Some(0), "resume: {}", text(&o));
    let st = site.assert_run("1", "apply", "complete");
    assert_eq!(step_state(&st, "db/db-sub1/switch"), "skipped", "{st}");
    site.assert_all_on(TO, Some(FROM), "after resume");
    site.assert_done_on_each(&[OpKind::Switch], 1);
}

#[test]
fn check_with_agents_reports_the_nodes_as_they_are() {
    let mut site = Site::new("check", &PAIR, 5);
    let (kv_a, kv_b) = (site.node("kv-a"), site.node("kv-b"));
    let check = |site: &Site| {
        let o = ferry(&[
            "check",
            &site.path("site.toml"),
            "--agents",
            "--agent-token-file",
            &site.path("token"),
            "--agent-ca",
            &site.path("tls/ca.pem"),
            "--agent-patience",
            "1",
            "--format",
            "json",
        ]);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let keys: Vec<(String, String)> = j["findings"]
            .as_array()
            .expect("findings")
            .iter()
            // Checks the site's facts cannot judge (no `free_mb` stated) are not what this
            // test is about.
            .filter(|f| !f["key"].as_str().unwrap_or_default().contains("/unknown/"))
            .map(|f| {
                (
                    f["rule"].as_str().unwrap_or_default().to_string(),
                    f["key"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        (o.status.code(), keys)
    };
    assert_eq!(check(&site), (Some(0), vec![]));
    // The backup's service fails its health check: the profile's own check (LHA-08) sees it.
    site.hold(kv_b, FROM, true);
    let (code, keys) = check(&site);
    assert_eq!(code, Some(1), "{keys:?}");
    assert!(
        keys.iter()
            .any(|(rule, key)| rule == "LHA-08" && key.contains("kv-b")),
        "{keys:?}"
    );
    site.hold(kv_b, FROM, false);
    // The site says another version than the node runs, and an agent is down.
    let text = std::fs::read_to_string(site.dir.join("site.toml")).expect("site");
    let changed = text.replacen(&format!("version = \"{FROM}\""), "version = \"2.0.2\"", 1);
    std::fs::write(site.dir.join("site.toml"), changed).expect("site");
    site.lab.kill(kv_b);
    let (code, keys) = check(&site);
    assert_eq!(code, Some(1));
    assert_eq!(
        keys,
        vec![
            (
                "FERRY-AGENT".to_string(),
                "agent-version-differs:kv/kv-a".to_string()
            ),
            (
                "FERRY-AGENT".to_string(),
                "agent-unreachable:kv/kv-b".to_string()
            ),
        ]
    );
    // Nothing was changed on the node that answered.
    assert!(site
        .journal(kv_a)
        .iter()
        .all(|r| r.id.starts_with("setup/")));
}

/// The nodes of a site file as (name, role, version, address), in file order.
fn site_nodes(text: &str) -> Vec<(String, String, String, String)> {
    let doc: toml::Table = text.parse().expect("site TOML");
    let mut nodes = Vec::new();
    for c in doc["cluster"].as_array().expect("clusters") {
        for n in c["node"].as_array().expect("nodes") {
            let field = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            nodes.push((
                field("name"),
                field("role"),
                field("version"),
                field("address"),
            ));
        }
    }
    nodes
}

#[test]
fn discover_from_the_agents_writes_the_site_that_check_and_plan_accept() {
    let site = Site::new("disc", &PUBSUB, 5);
    let urls: Vec<String> = (0..PUBSUB.len()).map(|i| site.lab.url(i)).collect();
    // `ferry discover --agents AGENTS` writing `output`, with `extra` arguments.
    let discover = |agents: &str, output: &str, extra: &[&str]| {
        let (token, ca, out) = (
            site.path("token"),
            site.path("tls/ca.pem"),
            site.path(output),
        );
        let mut args = vec![
            "discover",
            "--agents",
            agents,
            "--profile",
            "linux-ha",
            "--agent-service",
            "kv",
            "--agent-token-file",
            &token,
            "--agent-ca",
            &ca,
            "-o",
            &out,
        ];
        args.extend_from_slice(extra);
        ferry(&args)
    };
    let o = discover(
        &urls.join(","),
        "discovered.toml",
        &["--target", TO, "--cluster", "db"],
    );
    assert_eq!(o.status.code(), Some(0), "discover: {}", text(&o));
    let discovered = std::fs::read_to_string(site.dir.join("discovered.toml")).expect("site");
    let by_hand = std::fs::read_to_string(site.dir.join("site.toml")).expect("site");
    // Every node as the hand-written site states it: its name, the role its service holds, the
    // version it runs and where its agent answers.
    assert_eq!(
        site_nodes(&discovered),
        site_nodes(&by_hand),
        "{discovered}"
    );
    for command in ["check", "plan"] {
        let o = ferry(&[command, &site.path("discovered.toml"), "--runs", "0"]);
        assert_eq!(o.status.code(), Some(0), "{command}: {}", text(&o));
    }
    // An agent that does not answer is named, and no site is written.
    let o = discover(
        &format!("{},https://127.0.0.1:1", urls[0]),
        "none.toml",
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "discover: {}", text(&o));
    assert!(text(&o).contains("https://127.0.0.1:1"), "{}", text(&o));
    assert!(!site.dir.join("none.toml").exists());
}

#[test]
fn e2e_apply_with_a_client_certificate_instead_of_a_token() {
    let site = Site::new("mtls", &PUBSUB, 10);
    let write = |name: &str, issued: ferry_agent::pki::Issued| {
        std::fs::write(site.dir.join(format!("{name}.pem")), issued.cert_pem).expect("cert");
        std::fs::write(site.dir.join(format!("{name}-key.pem")), issued.key_pem).expect("key");
    };
    write(
        "operator",
        site.lab.ca.client("operator").expect("client cert"),
    );
    let other_ca = Ca::new("another CA").expect("CA");
    write(
        "stranger",
        other_ca.client("stranger").expect("client cert"),
    );
    let apply = |who: &str| {
        Command::new(FERRY)
            .args([
                "apply",
                &site.path("plan.json"),
                "--site",
                &site.path("site.toml"),
            ])
            .args([
                "--driver",
                "agent",
                "--yes",
                "--state",
                &site.path(&format!("orchestrator-{who}")),
            ])
            .args(["--agent-ca", &site.path("tls/ca.pem")])
            .args(["--agent-cert", &site.path(&format!("{who}.pem"))])
            .args(["--agent-key", &site.path(&format!("{who}-key.pem"))])
            .args([
                "--packages",
                &site.path("packages"),
                "--agent-patience",
                "3",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("ferry apply")
    };
    // A certificate from another CA: every agent refuses it, nothing is done.
    let o = apply("stranger");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("401"), "{}", text(&o));
    for i in 0..site.nodes.len() {
        assert!(site.done(i, OpKind::Snapshot).is_empty());
    }
    site.assert_all_on(FROM, None, "after the stranger");
    // The lab CA's client certificate, and no token: the upgrade goes through.
    let o = apply("operator");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    site.assert_all_on(TO, Some(FROM), "after apply");
}

#[test]
fn e2e_a_switch_longer_than_the_patience_is_waited_for_while_its_agent_answers() {
    // The patience bounds how long an agent may stay silent, not how long an operation may
    // take: a service that needs longer than the patience to become healthy is waited for.
    let site = Site::new("slow", &PAIR, 60);
    let kv_b = site.node("kv-b");
    site.hold(kv_b, TO, true);
    let apply = site.spawn_apply(5, &[]);
    site.wait_switch(
        kv_b,
        OpState::Running,
        "the backup's switch to wait for its health check",
    );
    // Three times the patience (and the driver's 5-second response timeout).
    std::thread::sleep(Duration::from_secs(15));
    site.hold(kv_b, TO, false);
    let o = apply.wait_with_output().expect("ferry apply");
    assert_eq!(o.status.code(), Some(0), "apply: {}", text(&o));
    site.assert_all_on(TO, Some(FROM), "after apply");
    site.assert_done_on_each(&[OpKind::Switch], 1);
}
