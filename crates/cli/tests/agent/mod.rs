//! `ferry agent` as a node runs it: real agent processes over HTTPS on the loopback, the demo
//! service staged from signed packages, switched, reverted, snapshotted, killed and promoted.
//!
//! Each test builds a `Lab` (a temporary directory with a CA, keys, packages and agents); its
//! `Drop` kills every agent and every service process it started and removes the directory,
//! even when the test fails. The demo service binary is `ferry-demo-service` next to `ferry`
//! in the target directory (`cargo test --workspace` builds it: its crate has tests of its own).

use base64::Engine as _;
use ferry_agent::client::{AgentClient, ClientOptions, Reply};
use ferry_agent::pki::Ca;
use ferry_model::agent::{AgentStatus, Health, OpKind, OpRequest, OpResult, OpState};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod e2e;
mod hosts;
mod restart;
mod security;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn demo_bin() -> PathBuf {
    let p = Path::new(FERRY).with_file_name("ferry-demo-service");
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p ferry-demo-service` (cargo test --workspace does)",
        p.display()
    );
    p
}

/// Ports handed out in this process, so that two tests never get the same one.
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if PORTS.lock().unwrap_or_else(|e| e.into_inner()).insert(p) {
            return p;
        }
    }
}

/// Waits for a condition (at most two minutes: a bound against hanging, not a timed assertion).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One line of the demo service's protocol.
fn ask(port: u16, command: &str) -> Option<String> {
    ask_at("127.0.0.1", port, command)
}

/// One line of the demo service's protocol, to the service on `host:port`.
fn ask_at(host: &str, port: u16, command: &str) -> Option<String> {
    let addr: std::net::SocketAddr = format!("{host}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("{command}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    (!line.is_empty()).then(|| line.trim_end().to_string())
}

fn kill_group(pid: i32) {
    // SAFETY: kill(2) has no memory effects.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Processes whose executable lies under `dir` (the demo services a lab's agents started;
/// with `only_serving`, the servers alone, not health checks or probes under way).
fn processes_under(dir: &Path, only_serving: bool) -> Vec<(i32, PathBuf)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let serving = cmdline.split(|b| *b == 0).any(|a| a == b"serve");
            if exe.starts_with(dir) && (serving || !only_serving) {
                let zombie = std::fs::read_to_string(e.path().join("stat"))
                    .map(|s| {
                        s.rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('Z')
                    })
                    .unwrap_or(false);
                if !zombie {
                    v.push((pid, exe));
                }
            }
        }
    }
    v
}

struct AgentProc {
    name: String,
    /// The address it listens on (and its certificate names).
    host: String,
    port: u16,
    /// The network namespace it runs in (an end-to-end test's host), if any.
    netns: Option<String>,
    config: PathBuf,
    child: Option<Child>,
}

/// A temporary world of agents; dropping it kills everything it started.
struct Lab {
    dir: PathBuf,
    ca: Ca,
    token: String,
    public_key: String,
    secret_key: PathBuf,
    agents: Vec<AgentProc>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for a in &mut self.agents {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for (pid, _) in processes_under(&self.dir, false) {
            kill_group(pid);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            for a in &self.agents {
                let log = self.dir.join(format!("{}.log", a.name));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!("--- {} (last lines)", log.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(FERRY)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ferry")
}

/// A `[[service]]` running the demo service on `port`.
fn demo_service(port: u16, role: Option<&str>, upstream: Option<u16>) -> String {
    demo_service_at(
        "127.0.0.1",
        port,
        role,
        upstream.map(|u| format!("127.0.0.1:{u}")).as_deref(),
    )
}

/// A `[[service]]` running the demo service on `host:port`, following `upstream` (HOST:PORT).
fn demo_service_at(host: &str, port: u16, role: Option<&str>, upstream: Option<&str>) -> String {
    demo_service_with(host, port, role.is_some(), upstream, None, 5)
}

/// The same, its role the agent's HA role when `ha_role` (else primary), with `health` (a
/// `health = …` line) instead of the TCP check, and `deadline_s` for a switch's health wait.
fn demo_service_with(
    host: &str,
    port: u16,
    ha_role: bool,
    upstream: Option<&str>,
    health: Option<&str>,
    deadline_s: u32,
) -> String {
    let mut run = format!(
        r#""{{slot}}/demo-service", "serve", "--host", "{host}", "--port", "{port}", "--role", "{}", "--data", "{{data}}""#,
        if ha_role { "{role}" } else { "primary" }
    );
    if let Some(u) = upstream {
        run.push_str(&format!(r#", "--upstream", "{u}""#));
    }
    format!(
        r#"
[[service]]
name = "kv"
run = [{run}]
{health}
probe = ["{{slot}}/demo-service", "probe", "--host", "{host}", "--port", "{port}"]
health_deadline_s = {deadline_s}
stop_timeout_s = 5
"#,
        health = health.map(str::to_string).unwrap_or_else(|| format!(
            r#"health = {{ tcp = "{host}:{port}", send = "HEALTH", expect = "ok" }}"#
        )),
    )
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let dir = std::env::temp_dir().join(format!(
            "ferry-agent-test-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tls")).expect("lab dir");
        let ca = Ca::new("test CA").expect("CA");
        std::fs::write(dir.join("tls/ca.pem"), ca.cert_pem()).expect("ca.pem");
        let keys = dir.join("keys");
        let o = ferry(&[
            "agent",
            "keygen",
            "--out",
            keys.to_str().unwrap_or_default(),
        ]);
        assert_eq!(o.status.code(), Some(0), "keygen: {o:?}");
        let public_key = String::from_utf8_lossy(&o.stdout).trim().to_string();
        Lab {
            secret_key: keys.join("ferry-agent.key"),
            token: format!("test-token-{tag}-0123456789abcdef"),
            dir,
            ca,
            public_key,
            agents: Vec::new(),
        }
    }

    /// Writes an agent's certificate and configuration; `extra_agent` goes into `[agent]`.
    fn configure(
        &mut self,
        name: &str,
        services: &str,
        extra_agent: &str,
        extra_tls: &str,
    ) -> usize {
        let port = free_port();
        self.configure_at(name, port, services, extra_agent, extra_tls)
    }

    fn configure_at(
        &mut self,
        name: &str,
        port: u16,
        services: &str,
        extra_agent: &str,
        extra_tls: &str,
    ) -> usize {
        self.configure_on(
            name,
            "127.0.0.1",
            None,
            port,
            services,
            extra_agent,
            extra_tls,
        )
    }

    /// An agent listening on `host:port`, run in network namespace `netns` when given.
    #[allow(clippy::too_many_arguments)]
    fn configure_on(
        &mut self,
        name: &str,
        host: &str,
        netns: Option<&str>,
        port: u16,
        services: &str,
        extra_agent: &str,
        extra_tls: &str,
    ) -> usize {
        let tls = self.dir.join("tls");
        let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        if !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
        let s = self.ca.server(name, &names).expect("server cert");
        std::fs::write(tls.join(format!("{name}.pem")), s.cert_pem).expect("cert");
        std::fs::write(tls.join(format!("{name}-key.pem")), s.key_pem).expect("key");
        let config = self.dir.join(format!("{name}.toml"));
        let text = format!(
            r#"[agent]
name = "{name}"
listen = "{host}:{port}"
dir = "state/{name}"
{extra_agent}
[agent.tls]
cert = "tls/{name}.pem"
key = "tls/{name}-key.pem"
{extra_tls}
[agent.auth]
tokens = ["{token}"]
[agent.trust]
public_keys = ["{key}"]
{services}"#,
            token = self.token,
            key = self.public_key,
        );
        std::fs::write(&config, text).expect("config");
        self.agents.push(AgentProc {
            name: name.to_string(),
            host: host.to_string(),
            port,
            netns: netns.map(str::to_string),
            config,
            child: None,
        });
        self.agents.len() - 1
    }

    fn state_dir(&self, i: usize) -> PathBuf {
        self.dir.join("state").join(&self.agents[i].name)
    }

    fn service_dir(&self, i: usize) -> PathBuf {
        self.state_dir(i).join("services/kv")
    }

    /// Starts (or restarts) agent `i` and waits until it answers.
    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", self.agents[i].name)))
            .expect("log");
        let mut command = match &self.agents[i].netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, FERRY]);
                c
            }
            None => Command::new(FERRY),
        };
        let child = command
            .arg("agent")
            .arg("--config")
            .arg(&self.agents[i].config)
            .env("FERRY_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ferry agent");
        self.agents[i].child = Some(child);
        let c = self.client(i);
        wait_for("the agent to answer", || {
            if let Some(ch) = self.agents[i].child.as_mut() {
                if let Ok(Some(st)) = ch.try_wait() {
                    panic!("the agent exited: {st}");
                }
            }
            c.status().ok()
        });
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: the agent exits and leaves its services running.
    fn terminate(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            // SAFETY: kill(2) has no memory effects.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let st = c.wait().expect("wait");
            assert!(st.success(), "the agent exited with {st}");
        }
    }

    fn url(&self, i: usize) -> String {
        format!("https://{}:{}", self.agents[i].host, self.agents[i].port)
    }

    fn client_with(
        &self,
        i: usize,
        token: Option<&str>,
        identity: Option<(Vec<u8>, Vec<u8>)>,
    ) -> AgentClient {
        AgentClient::new(
            &self.url(i),
            ClientOptions {
                token: token.map(str::to_string),
                ca_pem: self.ca.cert_pem().into_bytes(),
                identity,
                timeout: Duration::from_secs(120),
                ..ClientOptions::default()
            },
        )
        .expect("client")
    }

    fn client(&self, i: usize) -> AgentClient {
        self.client_with(i, Some(&self.token), None)
    }

    /// A signed package of the demo service for service `kv`, `kv-VERSION.tar` (so signed for
    /// that service and version): (archive, signature text).
    fn package(&self, version: &str) -> (Vec<u8>, String) {
        let out = self.dir.join(format!("kv-{version}.tar"));
        if !out.exists() {
            let o = Command::new(demo_bin())
                .args(["package", "--version", version, "--out"])
                .arg(&out)
                .output()
                .expect("demo package");
            assert!(o.status.success(), "package: {o:?}");
            let o = ferry(&[
                "agent",
                "sign",
                out.to_str().unwrap_or_default(),
                "--key",
                self.secret_key.to_str().unwrap_or_default(),
            ]);
            assert_eq!(o.status.code(), Some(0), "sign: {o:?}");
        }
        let data = std::fs::read(&out).expect("package");
        let sig = std::fs::read_to_string(format!("{}.minisig", out.display())).expect("signature");
        (data, sig)
    }

    fn status(&self, i: usize) -> AgentStatus {
        self.client(i).status().expect("status")
    }
}

fn req(id: &str, op: OpKind) -> OpRequest {
    OpRequest {
        id: id.to_string(),
        service: "kv".into(),
        op,
        version: None,
        package: None,
        signature: None,
        snapshot: None,
        role: None,
        health_deadline_s: None,
    }
}

/// A switch to `version` (the version the inactive slot holds).
fn switch_req(id: &str, version: &str) -> OpRequest {
    OpRequest {
        version: Some(version.into()),
        ..req(id, OpKind::Switch)
    }
}

fn stage_req(id: &str, version: &str, data: &[u8], sig: &str) -> OpRequest {
    OpRequest {
        version: Some(version.into()),
        package: Some(base64::engine::general_purpose::STANDARD.encode(data)),
        signature: Some(sig.into()),
        ..req(id, OpKind::Stage)
    }
}

fn post(c: &AgentClient, r: &OpRequest) -> Reply {
    c.request("POST", "/v1/ops", &serde_json::to_vec(r).expect("json"))
        .expect("request")
}

fn op_ok(c: &AgentClient, r: &OpRequest) -> OpResult {
    let res = c.op(r).expect("op");
    assert_eq!(res.state, OpState::Done, "{}: {}", r.id, res.message);
    res
}

fn versions(st: &AgentStatus) -> (Option<String>, Option<String>) {
    let s = &st.services[0];
    (
        s.active
            .as_ref()
            .map(|v| format!("{}:{}", v.slot, v.version)),
        s.inactive
            .as_ref()
            .map(|v| format!("{}:{}", v.slot, v.version)),
    )
}

/// Every file under a directory with its content, to tell that nothing changed.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// A tar with one entry written as given (hostile names included).
fn raw_tar(path: &str, kind: tar::EntryType, link: &str, body: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o755);
    h.set_size(body.len() as u64);
    let old = h.as_old_mut();
    old.name[..path.len()].copy_from_slice(path.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, body).expect("append");
    b.into_inner().expect("tar")
}

/// `data` signed with `key` for service kv and `version`.
fn sign(lab: &Lab, data: &[u8], version: &str, key: &Path) -> String {
    let dir = lab.dir.join(format!("blob-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join(format!("kv-{version}.tar"));
    std::fs::write(&f, data).expect("write");
    let o = ferry(&[
        "agent",
        "sign",
        f.to_str().unwrap_or_default(),
        "--key",
        key.to_str().unwrap_or_default(),
    ]);
    assert_eq!(o.status.code(), Some(0), "sign: {o:?}");
    std::fs::read_to_string(format!("{}.minisig", f.display())).expect("sig")
}

#[test]
fn agent_stage_refuses_bad_packages_and_changes_nothing() {
    let mut lab = Lab::new("stage");
    let port = free_port();
    let a = lab.configure("kv-a", &demo_service(port, None, None), "", "");
    lab.start(a);
    let c = lab.client(a);
    // Nothing staged yet: a switch has nothing to switch to.
    let r = post(&c, &switch_req("t/switch-early", "1.0.0"));
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    let (good, good_sig) = lab.package("1.0.0");
    let res = op_ok(&c, &stage_req("t/stage-1", "1.0.0", &good, &good_sig));
    assert_eq!(res.message, "1.0.0 staged in slot a");
    assert_eq!(versions(&lab.status(a)), (None, Some("a:1.0.0".into())));
    let slots = lab.service_dir(a).join("slots");
    let before = tree(&slots);

    let other_keys = lab.dir.join("other-keys");
    let o = ferry(&[
        "agent",
        "keygen",
        "--out",
        other_keys.to_str().unwrap_or_default(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let untrusted_sig = sign(&lab, &good, "1.0.0", &other_keys.join("ferry-agent.key"));
    let (v2, _) = lab.package("2.0.0");
    let other_sig = sign(&lab, &v2, "2.0.0", &lab.secret_key);
    let mut tampered = good.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    let escape = raw_tar("../evil", tar::EntryType::Regular, "", b"x");
    let absolute = raw_tar(
        "/tmp/ferry-agent-test-evil",
        tar::EntryType::Regular,
        "",
        b"x",
    );
    let link_out = raw_tar("out", tar::EntryType::Symlink, "/etc", b"");
    let link_up = raw_tar("out", tar::EntryType::Symlink, "../../../../..", b"");

    let check = |id: &str, r: OpRequest, status: u16, message: &str| {
        let reply = post(&c, &r);
        let body = reply.json();
        assert_eq!(reply.status, status, "{id}: {body}");
        let err = body["error"].as_str().unwrap_or_default();
        assert!(err.contains(message), "{id}: `{err}` lacks `{message}`");
        assert_eq!(tree(&slots), before, "{id}: the slots changed");
        assert_eq!(
            versions(&lab.status(a)),
            (None, Some("a:1.0.0".into())),
            "{id}"
        );
        if status == 422 {
            // Journaled: the same request answers the same, GET tells the failure.
            let again = post(&c, &r);
            assert_eq!(
                (again.status, again.json()["error"].clone()),
                (status, body["error"].clone()),
                "{id}"
            );
            let rec = c.op_result(&r.id).expect("get").expect("recorded");
            assert_eq!(rec.state, OpState::Failed, "{id}");
        }
    };
    let mut no_sig = stage_req("t/no-sig", "1.0.1", &good, "");
    no_sig.signature = None;
    check("no signature", no_sig, 422, "no signature");
    check(
        "bad signature",
        stage_req("t/bad-sig", "2.0.0", &good, &other_sig),
        422,
        "does not verify",
    );
    check(
        "untrusted key",
        stage_req("t/untrusted", "1.0.0", &good, &untrusted_sig),
        422,
        "does not trust",
    );
    check(
        "tampered",
        stage_req("t/tampered", "1.0.0", &tampered, &good_sig),
        422,
        "does not verify",
    );
    check(
        "garbled signature",
        stage_req(
            "t/garbled",
            "1.0.0",
            &good,
            "untrusted comment: x\nnot base64\n",
        ),
        422,
        "cannot be read",
    );
    let s = sign(&lab, &escape, "9.0.0", &lab.secret_key);
    check(
        "path escape",
        stage_req("t/escape", "9.0.0", &escape, &s),
        422,
        "goes up with `..`",
    );
    let s = sign(&lab, &absolute, "9.0.0", &lab.secret_key);
    check(
        "absolute path",
        stage_req("t/absolute", "9.0.0", &absolute, &s),
        422,
        "is absolute",
    );
    let s = sign(&lab, &link_out, "9.0.0", &lab.secret_key);
    check(
        "link out",
        stage_req("t/link-out", "9.0.0", &link_out, &s),
        422,
        "leads out of the slot",
    );
    let s = sign(&lab, &link_up, "9.0.0", &lab.secret_key);
    check(
        "link up",
        stage_req("t/link-up", "9.0.0", &link_up, &s),
        422,
        "leads out of the slot",
    );
    let s = sign(&lab, b"not a tar at all", "9.0.0", &lab.secret_key);
    check(
        "not an archive",
        stage_req("t/not-tar", "9.0.0", b"not a tar at all", &s),
        422,
        "archive",
    );
    let mut bad64 = stage_req("t/b64", "1.0.0", &good, &good_sig);
    bad64.package = Some("***".into());
    check("bad base64", bad64, 400, "not base64");
    check(
        "bad version",
        stage_req("t/version", "", &good, &good_sig),
        400,
        "version",
    );
    assert!(!lab.dir.join("state/kv-a/services/kv/slots/evil").exists());
    assert!(!lab.dir.join("state/kv-a/services/kv/evil").exists());
    assert!(!Path::new("/tmp/ferry-agent-test-evil").exists());
    // The journal is SQLite in WAL mode.
    assert!(
        lab.state_dir(a).join("agent.sqlite-wal").exists()
            || lab.state_dir(a).join("agent.sqlite").exists()
    );
}

#[test]
fn agent_switches_reverts_and_answers_repeated_ids_with_the_first_result() {
    let mut lab = Lab::new("switch");
    let port = free_port();
    let a = lab.configure("kv-a", &demo_service(port, None, None), "", "");
    lab.start(a);
    let c = lab.client(a);
    let (v1, s1) = lab.package("1.0.0");
    let (v2, s2) = lab.package("2.0.0");
    let (broken, sb) = lab.package("2.0.1-broken");
    op_ok(&c, &stage_req("s/stage-1", "1.0.0", &v1, &s1));
    let r = op_ok(&c, &switch_req("s/switch-1", "1.0.0"));
    assert!(
        r.message
            .starts_with("switched to 1.0.0 (slot a): healthy after"),
        "{}",
        r.message
    );
    assert!(
        r.snapshot.is_some(),
        "a switch snapshots the configuration first"
    );
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    assert_eq!(ask(port, "SET colour blue").as_deref(), Some("OK"));
    assert_eq!(
        ask(port, "COUNT").as_deref(),
        Some("ERR unknown command COUNT")
    );

    op_ok(&c, &stage_req("s/stage-2", "2.0.0", &v2, &s2));
    let r = op_ok(&c, &switch_req("s/switch-2", "2.0.0"));
    assert_eq!(
        (
            r.active.clone().map(|v| v.version),
            r.inactive.clone().map(|v| v.version)
        ),
        (Some("2.0.0".into()), Some("1.0.0".into()))
    );
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
    assert_eq!(
        ask(port, "GET colour").as_deref(),
        Some("VALUE blue"),
        "data survives the switch"
    );
    assert_eq!(ask(port, "COUNT").as_deref(), Some("1"));
    let st = lab.status(a);
    assert_eq!(st.services[0].health, Health::Healthy);
    assert_eq!(st.services[0].replication, Some(2));
    assert_eq!(st.services[0].supervisor, "agent");
    assert!(st.services[0].pid.is_some());

    // The same ID again: the first result, nothing done again.
    let again = c.op(&switch_req("s/switch-2", "2.0.0")).expect("repeat");
    assert_eq!(again, r);
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
    // The same ID with another body: 409.
    let mut other = switch_req("s/switch-2", "2.0.0");
    other.health_deadline_s = Some(3.0);
    assert_eq!(post(&c, &other).status, 409);
    let mut other = req("s/switch-2", OpKind::Revert);
    other.service = "kv".into();
    assert_eq!(post(&c, &other).status, 409);
    assert_eq!(c.op_result("s/switch-2").expect("get"), Some(r));
    assert_eq!(c.op_result("s/never").expect("get"), None);

    let r = op_ok(&c, &req("s/revert-1", OpKind::Revert));
    assert!(
        r.message.starts_with("reverted to 1.0.0 (slot a)"),
        "{}",
        r.message
    );
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 1.0.0 primary"));

    // A broken package: not healthy within the deadline, switched back automatically.
    op_ok(
        &c,
        &stage_req("s/stage-broken", "2.0.1-broken", &broken, &sb),
    );
    let mut sw = switch_req("s/switch-broken", "2.0.1-broken");
    sw.health_deadline_s = Some(1.0);
    let r = c.op(&sw).expect("switch");
    assert_eq!(r.state, OpState::Failed);
    assert!(
        r.message.contains("2.0.1-broken (slot b) was not healthy within 1.00 s: switched back to 1.0.0 (slot a), healthy"),
        "{}",
        r.message
    );
    assert_eq!(
        versions(&lab.status(a)),
        (Some("a:1.0.0".into()), Some("b:2.0.1-broken".into()))
    );
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    assert_eq!(ask(port, "GET colour").as_deref(), Some("VALUE blue"));
    let procs = processes_under(&lab.dir, true);
    assert_eq!(procs.len(), 1, "one service process: {procs:?}");
    assert!(procs[0].1.starts_with(lab.service_dir(a).join("slots/a")));
    // A restart op and the supervisor's log.
    op_ok(&c, &req("s/restart", OpKind::Restart));
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    let log =
        std::fs::read_to_string(lab.service_dir(a).join("logs/service.log")).unwrap_or_default();
    assert!(
        log.contains("ferry-demo-service 2.0.1-broken serving"),
        "{log}"
    );
}

#[test]
fn agent_authenticates_every_request_and_limits_bodies() {
    let mut lab = Lab::new("auth");
    let port = free_port();
    let a = lab.configure(
        "kv-a",
        &demo_service(port, None, None),
        "max_request_bytes = 8192",
        r#"client_ca = "tls/ca.pem""#,
    );
    lab.start(a);
    let client_cert = lab.ca.client("ferry-driver").expect("client cert");
    let other_ca = Ca::new("another CA").expect("CA");
    let foreign = other_ca.client("ferry-driver").expect("client cert");
    let ident = |i: &ferry_agent::pki::Issued| {
        Some((
            i.cert_pem.clone().into_bytes(),
            i.key_pem.clone().into_bytes(),
        ))
    };
    let check =
        |what: &str, token: Option<&str>, identity: Option<(Vec<u8>, Vec<u8>)>, expected: u16| {
            let c = lab.client_with(a, token, identity);
            let r = c
                .request("GET", "/v1/status", &[])
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                r.status,
                expected,
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
            if expected == 401 {
                assert!(r.json()["error"].is_string(), "{what}");
                // Nothing is carried out either.
                let op = c
                    .request(
                        "POST",
                        "/v1/ops",
                        &serde_json::to_vec(&req("auth/restart", OpKind::Restart)).expect("json"),
                    )
                    .expect("post");
                assert_eq!(op.status, 401, "{what}");
            }
        };
    check("no credentials", None, None, 401);
    check("wrong token", Some("not-the-token-0123456789"), None, 401);
    check("valid token", Some(&lab.token), None, 200);
    check("valid client certificate", None, ident(&client_cert), 200);
    check("certificate from another CA", None, ident(&foreign), 401);
    check(
        "wrong token, valid certificate",
        Some("not-the-token-0123456789"),
        ident(&client_cert),
        200,
    );
    check(
        "valid token, foreign certificate",
        Some(&lab.token),
        ident(&foreign),
        200,
    );
    let c = lab.client(a);
    assert_eq!(
        c.op_result("auth/restart").expect("get"),
        None,
        "the unauthenticated op was not journaled"
    );
    // No credentials: 401 with `WWW-Authenticate: Bearer`.
    let raw = lab.client_with(a, None, None);
    let r = raw.request("GET", "/v1/heartbeat", &[]).expect("heartbeat");
    assert_eq!(r.status, 401);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v == "Bearer"),
        "{:?}",
        r.headers
    );

    let check_body = |what: &str, path: &str, body: &[u8], expected: u16| {
        let r = c.request("POST", path, body).expect("post");
        assert_eq!(
            r.status,
            expected,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["error"].is_string(), "{what}: errors are JSON");
    };
    check_body("too large", "/v1/ops", &vec![b' '; 20_000], 413);
    check_body("malformed", "/v1/ops", b"{not json", 400);
    check_body(
        "unknown op",
        "/v1/ops",
        br#"{"id":"x","service":"kv","op":"explode"}"#,
        400,
    );
    check_body(
        "unknown service",
        "/v1/ops",
        br#"{"id":"x","service":"db","op":"restart"}"#,
        400,
    );
    check_body(
        "empty id",
        "/v1/ops",
        br#"{"id":"","service":"kv","op":"restart"}"#,
        400,
    );
    let long = format!(
        r#"{{"id":"{}","service":"kv","op":"restart"}}"#,
        "x".repeat(513)
    );
    check_body("long id", "/v1/ops", long.as_bytes(), 400);
    check_body(
        "unknown field",
        "/v1/ops",
        br#"{"id":"x","service":"kv","op":"restart","path":"/etc"}"#,
        400,
    );
    check_body(
        "set_role without HA",
        "/v1/ops",
        br#"{"id":"x","service":"kv","op":"set_role","role":"primary"}"#,
        400,
    );
    check_body(
        "restore of no snapshot",
        "/v1/ops",
        br#"{"id":"x","service":"kv","op":"restore","snapshot":"../../etc"}"#,
        404,
    );
    check_body("no endpoint", "/v1/nothing", b"{}", 404);
    // Plain HTTP gets no answer: the agent speaks TLS only.
    let mut s = TcpStream::connect(("127.0.0.1", lab.agents[a].port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "plain HTTP answered"
    );
}

#[test]
fn agent_killed_during_a_switch_ends_on_exactly_one_working_version() {
    let mut lab = Lab::new("kill");
    let port = free_port();
    // The new slot's health check passes only once the file `go` exists: the test holds the
    // switch in its health wait, kills the agent there, and decides what the restart finds.
    let service = format!(
        r#"
[[service]]
name = "kv"
run = ["{{slot}}/demo-service", "serve", "--port", "{port}", "--role", "primary", "--data", "{{data}}"]
health = {{ command = ["sh", "-c", "case {{slot}} in */slots/b) test -e {{dir}}/go || exit 1;; esac; exec {{slot}}/demo-service health --port {port}"] }}
health_deadline_s = 3
stop_timeout_s = 5
"#
    );
    let a = lab.configure("kv-a", &service, "", "");
    lab.start(a);
    let c = lab.client(a);
    let (v1, s1) = lab.package("1.0.0");
    let (v2, s2) = lab.package("2.0.0");
    op_ok(&c, &stage_req("k/stage-1", "1.0.0", &v1, &s1));
    op_ok(&c, &switch_req("k/switch-1", "1.0.0"));
    let svc_dir = lab.service_dir(a);
    let go = svc_dir.join("go");

    let check =
        |lab: &mut Lab, round: &str, release: bool, want: OpState, message: &str, active: &str| {
            let id = format!("k/{round}/switch");
            let c = lab.client(a);
            op_ok(
                &c,
                &stage_req(&format!("k/{round}/stage"), "2.0.0", &v2, &s2),
            );
            let mut sw = switch_req(&id, "2.0.0");
            sw.health_deadline_s = Some(600.0);
            let url = lab.url(a);
            let opts = ClientOptions {
                token: Some(lab.token.clone()),
                ca_pem: lab.ca.cert_pem().into_bytes(),
                identity: None,
                timeout: Duration::from_secs(600),
                ..ClientOptions::default()
            };
            let t = std::thread::spawn(move || {
                let c = AgentClient::new(&url, opts).expect("client");
                let _ = c.op(&sw);
            });
            // In the middle: journaled as running, `current` on slot b, the new process started.
            wait_for("the switch to wait for its health check", || {
                let rec = c.op_result(&id).ok().flatten()?;
                let link = std::fs::read_link(svc_dir.join("current")).ok()?;
                let pid = std::fs::read_to_string(svc_dir.join("service.pid")).ok()?;
                (rec.state == OpState::Running
                    && link.ends_with("slots/b")
                    && pid.trim_end().ends_with(" b"))
                .then_some(())
            });
            lab.kill(a);
            let _ = t.join();
            if release {
                std::fs::write(&go, "").expect("go");
            }
            lab.start(a);
            let c = lab.client(a);
            let rec = c.op_result(&id).expect("get").expect("recorded");
            assert_eq!(rec.state, want, "{round}: {}", rec.message);
            assert!(rec.message.contains(message), "{round}: {}", rec.message);
            let st = lab.status(a);
            assert_eq!(
                st.services[0]
                    .active
                    .as_ref()
                    .map(|v| format!("{}:{}", v.slot, v.version))
                    .as_deref(),
                Some(active),
                "{round}"
            );
            assert_eq!(st.services[0].health, Health::Healthy, "{round}");
            let version = active.split(':').nth(1).unwrap_or_default();
            assert_eq!(
                ask(port, "PING"),
                Some(format!("PONG {version} primary")),
                "{round}"
            );
            let procs = processes_under(&lab.dir, true);
            assert_eq!(
                procs.len(),
                1,
                "{round}: exactly one service process: {procs:?}"
            );
            let slot = active.split(':').next().unwrap_or_default();
            assert!(
                procs[0].1.starts_with(svc_dir.join("slots").join(slot)),
                "{round}: {procs:?}"
            );
            // Asking again gives the same settled answer.
            assert_eq!(c.op_result(&id).expect("get"), Some(rec));
        };
    check(
        &mut lab,
        "undone",
        false,
        OpState::Failed,
        "interrupted by an agent restart: undone; switched back to 1.0.0 (slot a), healthy",
        "a:1.0.0",
    );
    check(
        &mut lab,
        "finished",
        true,
        OpState::Done,
        "finished after an agent restart: 2.0.0 (slot b) healthy",
        "b:2.0.0",
    );
}

#[test]
fn agent_snapshots_and_restores_configuration() {
    let mut lab = Lab::new("snap");
    let port = free_port();
    let a = lab.configure("kv-a", &demo_service(port, None, None), "", "");
    lab.start(a);
    let c = lab.client(a);
    let (v1, s1) = lab.package("1.0.0");
    op_ok(&c, &stage_req("n/stage", "1.0.0", &v1, &s1));
    op_ok(&c, &switch_req("n/switch", "1.0.0"));
    let conf = lab.service_dir(a).join("config");
    std::fs::create_dir_all(conf.join("sub")).expect("config dir");
    std::fs::write(conf.join("app.conf"), "limit = 1\n").expect("conf");
    std::fs::write(conf.join("sub/extra.conf"), "x\n").expect("conf");
    let snap = op_ok(&c, &req("n/snapshot", OpKind::Snapshot))
        .snapshot
        .expect("snapshot id");
    std::fs::write(conf.join("app.conf"), "limit = 2\n").expect("conf");
    std::fs::remove_file(conf.join("sub/extra.conf")).expect("rm");
    std::fs::write(conf.join("new.conf"), "y\n").expect("conf");
    let mut restore = req("n/restore", OpKind::Restore);
    restore.snapshot = Some(snap.clone());
    let r = op_ok(&c, &restore);
    assert!(
        r.message
            .starts_with(&format!("snapshot {snap} restored; healthy after")),
        "{}",
        r.message
    );
    let pre = r
        .snapshot
        .clone()
        .expect("the snapshot taken before the restore");
    assert_eq!(
        std::fs::read_to_string(conf.join("app.conf"))
            .ok()
            .as_deref(),
        Some("limit = 1\n")
    );
    assert!(conf.join("sub/extra.conf").exists());
    assert!(!conf.join("new.conf").exists());
    let st = lab.status(a);
    let ids: Vec<(&str, &str)> = st.services[0]
        .snapshots
        .iter()
        .map(|s| (s.id.as_str(), s.op.as_str()))
        .collect();
    for (id, op) in [(snap.as_str(), "n/snapshot"), (pre.as_str(), "n/restore")] {
        assert!(ids.contains(&(id, op)), "{ids:?} lacks {id} of {op}");
    }
    // Back to what it was before the restore.
    let mut undo = req("n/restore-pre", OpKind::Restore);
    undo.snapshot = Some(pre);
    op_ok(&c, &undo);
    assert_eq!(
        std::fs::read_to_string(conf.join("app.conf"))
            .ok()
            .as_deref(),
        Some("limit = 2\n")
    );
    assert!(conf.join("new.conf").exists());
    let mut missing = req("n/restore-missing", OpKind::Restore);
    missing.snapshot = Some("20000101T000000-0000".into());
    assert_eq!(post(&c, &missing).status, 404);
}

#[test]
fn agent_pair_promotes_the_backup_when_the_primary_dies() {
    let mut lab = Lab::new("pair");
    let (pa, pb) = (free_port(), free_port());
    let token = lab.token.clone();
    let ha = |role: &str, peer: u16| {
        format!(
            "[service.ha]\nmode = \"pair\"\nrole = \"{role}\"\npeer = \"https://127.0.0.1:{peer}\"\npeer_token = \"{token}\"\npeer_ca = \"tls/ca.pem\"\nheartbeat_s = 0.2\nmisses = 3\n"
        )
    };
    let (a_port, b_port) = (free_port(), free_port());
    let a = lab.configure_at(
        "kv-a",
        a_port,
        &(demo_service(pa, Some("x"), Some(pb)) + &ha("primary", b_port)),
        "",
        "",
    );
    let b = lab.configure_at(
        "kv-b",
        b_port,
        &(demo_service(pb, Some("x"), Some(pa)) + &ha("backup", a_port)),
        "",
        "",
    );
    lab.start(a);
    lab.start(b);
    let (v1, s1) = lab.package("1.0.0");
    for i in [a, b] {
        let c = lab.client(i);
        op_ok(&c, &stage_req("p/stage", "1.0.0", &v1, &s1));
        op_ok(&c, &switch_req("p/switch", "1.0.0"));
    }
    assert_eq!(ask(pa, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    assert_eq!(ask(pb, "PING").as_deref(), Some("PONG 1.0.0 backup"));
    assert_eq!(ask(pa, "SET city lyon").as_deref(), Some("OK"));
    assert_eq!(
        ask(pb, "SET city paris").as_deref(),
        Some("ERR read-only replica")
    );
    wait_for("the backup to replicate", || {
        (ask(pb, "GET city").as_deref() == Some("VALUE lyon")).then_some(())
    });
    let st = lab.status(b);
    assert_eq!(
        (st.services[0].role.as_deref(), st.services[0].replication),
        (Some("backup"), Some(2))
    );
    let beat = lab.client(a).heartbeat().expect("heartbeat");
    assert_eq!(
        (beat.services[0].role.as_deref(), beat.services[0].health),
        (Some("primary"), Health::Healthy)
    );

    // The primary's agent and service die.
    lab.kill(a);
    for (pid, _) in processes_under(&lab.state_dir(a), false) {
        kill_group(pid);
    }
    wait_for("the backup's promotion", || {
        let st = lab.status(b);
        (st.services[0].role.as_deref() == Some("primary")
            && st.services[0].health == Health::Healthy)
            .then_some(())
    });
    assert_eq!(ask(pb, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    assert_eq!(
        ask(pb, "GET city").as_deref(),
        Some("VALUE lyon"),
        "the promoted backup kept the data"
    );
    assert_eq!(ask(pb, "SET city paris").as_deref(), Some("OK"));

    // The old primary comes back: its peer is primary, so it takes the backup role.
    lab.start(a);
    let st = lab.status(a);
    assert_eq!(st.services[0].role.as_deref(), Some("backup"));
    wait_for("the old primary to follow the new one", || {
        (ask(pa, "GET city").as_deref() == Some("VALUE paris")).then_some(())
    });
    assert_eq!(ask(pa, "PING").as_deref(), Some("PONG 1.0.0 backup"));
    // Role reversal through the API.
    let mut sr = req("p/role-a", OpKind::SetRole);
    sr.role = Some("primary".into());
    op_ok(&lab.client(a), &sr);
    let mut sr = req("p/role-b", OpKind::SetRole);
    sr.role = Some("backup".into());
    op_ok(&lab.client(b), &sr);
    assert_eq!(ask(pa, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    wait_for("the roles to settle", || {
        (ask(pb, "PING").as_deref() == Some("PONG 1.0.0 backup")).then_some(())
    });
    let mut bad = req("p/role-bad", OpKind::SetRole);
    bad.role = Some("publisher".into());
    assert_eq!(post(&lab.client(a), &bad).status, 400);
}

#[test]
fn agent_pubsub_replication_state_through_the_probe() {
    let mut lab = Lab::new("pubsub");
    let (pp, ps) = (free_port(), free_port());
    let ha = |role: &str| format!("[service.ha]\nmode = \"pubsub\"\nrole = \"{role}\"\n");
    let p = lab.configure(
        "pub",
        &(demo_service(pp, Some("x"), None) + &ha("publisher")),
        "",
        "",
    );
    let s = lab.configure(
        "sub",
        &(demo_service(ps, Some("x"), Some(pp)) + &ha("subscriber")),
        "",
        "",
    );
    lab.start(p);
    lab.start(s);
    let (v1, s1) = lab.package("1.0.0");
    let (v2, s2) = lab.package("2.0.0");
    for i in [p, s] {
        let c = lab.client(i);
        op_ok(&c, &stage_req("ps/stage-1", "1.0.0", &v1, &s1));
        op_ok(&c, &switch_req("ps/switch-1", "1.0.0"));
    }
    let replication = |lab: &Lab, want: u8| {
        wait_for(&format!("replication state {want}"), || {
            (lab.status(s).services[0].replication == Some(want)).then_some(())
        })
    };
    let check = |lab: &mut Lab, step: &str, want: u8| {
        replication(lab, want);
        let st = lab.status(s);
        assert_eq!(st.services[0].role.as_deref(), Some("subscriber"), "{step}");
        if step != "publisher stopped" {
            assert_eq!(lab.status(p).services[0].replication, Some(2), "{step}");
        }
    };
    check(&mut lab, "both on 1.0.0", 2);
    assert_eq!(ask(pp, "SET k v").as_deref(), Some("OK"));
    wait_for("the subscriber to follow", || {
        (ask(ps, "GET k").as_deref() == Some("VALUE v")).then_some(())
    });
    // The publisher moves to a newer major version: the subscriber cannot follow it.
    let c = lab.client(p);
    op_ok(&c, &stage_req("ps/stage-2", "2.0.0", &v2, &s2));
    op_ok(&c, &switch_req("ps/switch-2", "2.0.0"));
    check(&mut lab, "publisher on 2.0.0", 4);
    let c = lab.client(s);
    op_ok(&c, &stage_req("ps/stage-2", "2.0.0", &v2, &s2));
    op_ok(&c, &switch_req("ps/switch-2", "2.0.0"));
    check(&mut lab, "both on 2.0.0", 2);
    assert_eq!(ask(ps, "GET k").as_deref(), Some("VALUE v"));
    // The publisher's agent stops (its service runs on), then its service is killed: out of
    // sync.
    let publisher = lab.status(p).services[0].pid.expect("the publisher's pid");
    lab.terminate(p);
    kill_group(publisher as i32);
    check(&mut lab, "publisher stopped", 3);
}

#[test]
fn agent_configuration_errors_name_the_file_line_and_key() {
    let lab = Lab::new("config");
    let cfg = lab.dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "[agent]\nname = \"kv-a\"\nlisten = \"nowhere\"\ndir = \"state\"\n[agent.tls]\ncert = \"tls/none.pem\"\nkey = \"tls/none-key.pem\"\n[agent.auth]\ntokens = [\"0123456789abcdef0123\"]\n[agent.trust]\npublic_keys = [\"RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\"]\n",
    )
    .expect("config");
    let path = cfg.to_str().unwrap_or_default();
    for args in [
        vec!["agent", "check", "--config", path],
        vec!["agent", "--config", path],
    ] {
        let o = ferry(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        for want in [
            &format!("{path}:3: `nowhere` is not an address and port") as &str,
            &format!("{path}:6: no file"),
        ] {
            assert!(err.contains(want), "{args:?}: {err} lacks {want}");
        }
    }
    let o = ferry(&["agent"]);
    assert_eq!(o.status.code(), Some(2));
    let o = ferry(&[
        "agent",
        "sign",
        "/nonexistent/package.tar",
        "--key",
        "/nonexistent/key",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn agent_runs_a_systemd_service_through_systemctl() {
    let mut lab = Lab::new("systemd");
    let port = free_port();
    // A stand-in for systemctl: runs the unit's command (the active slot through `current`,
    // with the agent's environment file) and answers is-active and MainPID.
    let fake = lab.dir.join("systemctl");
    let state = lab.dir.join("unit.pid");
    std::fs::write(
        &fake,
        format!(
            r#"#!/bin/sh
pidfile={state}
running() {{ [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }}
case "$1" in
  start)
    running && exit 0
    set -a; . "$2"; set +a
    "$FERRY_DIR/current/demo-service" serve --port {port} --role primary --data "$FERRY_DATA" >/dev/null 2>&1 &
    echo $! > "$pidfile" ;;
  stop)
    if running; then p=$(cat "$pidfile"); kill "$p"; while kill -0 "$p" 2>/dev/null; do sleep 0.01; done; fi
    rm -f "$pidfile" ;;
  restart) "$0" stop "$2"; "$0" start "$2" ;;
  is-active) running ;;
  show) if running; then cat "$pidfile"; else echo 0; fi ;;
  *) exit 1 ;;
esac
"#,
            state = state.display()
        ),
    )
    .expect("fake systemctl");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let a = lab.configure_at(
        "kv-a",
        free_port(),
        "",
        &format!("systemctl = \"{}\"", fake.display()),
        "",
    );
    // The unit's name is the environment file's path, so the stand-in can read it.
    let env_file = lab.service_dir(a).join("service.env");
    let service = format!(
        r#"
[[service]]
name = "kv"
run = ["unused-under-systemd"]
health = {{ tcp = "127.0.0.1:{port}", send = "HEALTH", expect = "ok" }}
health_deadline_s = 5
supervisor = "systemd"
unit = "{}"
"#,
        env_file.display()
    );
    let cfg = std::fs::read_to_string(&lab.agents[a].config).expect("config") + &service;
    std::fs::write(&lab.agents[a].config, cfg).expect("config");
    lab.start(a);
    let c = lab.client(a);
    let (v1, s1) = lab.package("1.0.0");
    let (v2, s2) = lab.package("2.0.0");
    let (broken, sb) = lab.package("2.0.1-broken");
    for (i, (v, data, sig)) in [("1.0.0", &v1, &s1), ("2.0.0", &v2, &s2)]
        .into_iter()
        .enumerate()
    {
        op_ok(&c, &stage_req(&format!("sd/stage-{i}"), v, data, sig));
        op_ok(&c, &switch_req(&format!("sd/switch-{i}"), v));
        assert_eq!(ask(port, "PING"), Some(format!("PONG {v} primary")));
    }
    let env = std::fs::read_to_string(&env_file).expect("env file");
    assert!(env.contains("FERRY_VERSION=2.0.0"), "{env}");
    let st = lab.status(a);
    assert_eq!(
        (st.services[0].supervisor.as_str(), st.services[0].health),
        ("systemd", Health::Healthy)
    );
    assert!(st.services[0].pid.is_some());
    op_ok(
        &c,
        &stage_req("sd/stage-broken", "2.0.1-broken", &broken, &sb),
    );
    let mut sw = switch_req("sd/switch-broken", "2.0.1-broken");
    sw.health_deadline_s = Some(1.0);
    let r = c.op(&sw).expect("switch");
    assert_eq!(r.state, OpState::Failed, "{}", r.message);
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
    // systemd's services outlive the agent.
    lab.terminate(a);
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
}

#[test]
fn ferry_agent_status_stage_switch_and_revert_from_the_command_line() {
    let mut lab = Lab::new("remote");
    let port = free_port();
    let a = lab.configure("kv-a", &demo_service(port, None, None), "", "");
    lab.start(a);
    std::fs::write(lab.dir.join("token"), &lab.token).expect("token");
    let url = lab.url(a);
    let (token, ca) = (
        lab.dir.join("token").display().to_string(),
        lab.dir.join("tls/ca.pem").display().to_string(),
    );
    let conn = [
        "--url",
        &url,
        "--agent-token-file",
        &token,
        "--agent-ca",
        &ca,
    ];
    let run = |args: &[&str]| {
        let mut all = vec!["agent"];
        all.extend_from_slice(args);
        all.extend_from_slice(&conn);
        ferry(&all)
    };
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    lab.package("1.0.0");
    lab.package("2.0.0");
    let pkg = |v: &str| lab.dir.join(format!("kv-{v}.tar")).display().to_string();
    for v in ["1.0.0", "2.0.0"] {
        let o = run(&["stage", &pkg(v), "--version", v]);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        assert!(
            out(&o).contains(&format!("done — {v} staged in slot")),
            "{}",
            out(&o)
        );
        let o = run(&["switch", "--version", v]);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        assert_eq!(ask(port, "PING"), Some(format!("PONG {v} primary")));
    }
    let o = run(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        out(&o),
        "agent kv-a\n  kv: active 2.0.0 (slot b), inactive 1.0.0 (slot a), healthy, replication 2\n"
    );
    // `--json`, the flag before `--format json`, still works.
    let o = run(&["revert", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let r: OpResult = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((r.op, r.state), (OpKind::Revert, OpState::Done));
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    // The same ID twice: the first result, nothing done again.
    let first = run(&[
        "switch",
        "--version",
        "2.0.0",
        "--id",
        "by-hand/switch-1",
        "--format",
        "json",
    ]);
    let again = run(&[
        "switch",
        "--version",
        "2.0.0",
        "--id",
        "by-hand/switch-1",
        "--format",
        "json",
    ]);
    assert_eq!(first.stdout, again.stdout);
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
    // A package whose signature does not verify: refused (exit 1), nothing changes.
    let before = tree(&lab.service_dir(a).join("slots"));
    std::fs::write(lab.dir.join("other.tar"), b"not the signed archive").expect("write");
    std::fs::copy(
        format!("{}.minisig", pkg("2.0.0")),
        lab.dir.join("other.tar.minisig"),
    )
    .expect("copy");
    let other = lab.dir.join("other.tar").display().to_string();
    let o = run(&["stage", &other, "--version", "9.9.9"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("signature does not verify"),
        "{o:?}"
    );
    assert_eq!(tree(&lab.service_dir(a).join("slots")), before);
    // No agent there: it did not happen (exit 1). (`--token-file` and `--ca`: the names
    // before `--agent-token-file` and `--agent-ca`, still accepted.)
    let nobody = format!("127.0.0.1:{}", free_port());
    let o = ferry(&[
        "agent",
        "status",
        "--url",
        &nobody,
        "--token-file",
        &token,
        "--ca",
        &ca,
        "--timeout",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // A service the agent does not manage: refused, bad input.
    let o = run(&["switch", "--version", "2.0.0", "--service", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
    // A wrong token: refused by the agent, bad input.
    std::fs::write(lab.dir.join("wrong"), "not-the-token-0123456789").expect("token");
    let wrong = lab.dir.join("wrong").display().to_string();
    let o = ferry(&[
        "agent",
        "switch",
        "--version",
        "1.0.0",
        "--url",
        &url,
        "--token-file",
        &wrong,
        "--ca",
        &ca,
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"), "{o:?}");
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
    // Without credentials: bad input, before anything is asked.
    let o = ferry(&["agent", "status", "--url", &url, "--ca", &ca]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--agent-token-file"),
        "{o:?}"
    );
}
