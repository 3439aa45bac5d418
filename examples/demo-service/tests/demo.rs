//! The demo service as a process: versions from the `VERSION` file beside the binary, the line
//! protocol, a replica following its primary, replication states and packages.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferry-demo-service");

/// A temporary directory and the servers started in it, removed and killed on drop.
struct World {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Runs `f` again while it fails with "text file busy": a binary just copied by one test can
/// still be open for writing in a child another test's thread is forking at that moment (the
/// descriptor is closed only when that child execs).
fn retry_busy<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn ask(port: u16, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("{cmd}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    (!line.is_empty()).then(|| line.trim_end().to_string())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl World {
    fn new(tag: &str) -> World {
        let dir = std::env::temp_dir().join(format!("ferry-demo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        World {
            dir,
            children: Vec::new(),
        }
    }

    /// A copy of the binary with its VERSION file, as a slot holds it.
    fn slot(&self, version: &str) -> PathBuf {
        let d = self.dir.join(format!("slot-{version}"));
        std::fs::create_dir_all(&d).expect("slot");
        let bin = d.join("demo-service");
        if !bin.exists() {
            std::fs::copy(BIN, &bin).expect("copy");
            std::fs::write(d.join("VERSION"), format!("{version}\n")).expect("VERSION");
        }
        bin
    }

    fn serve(&mut self, bin: &Path, port: u16, role: &str, upstream: Option<u16>) -> usize {
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--port",
            &port.to_string(),
            "--role",
            role,
            "--data",
        ])
        .arg(self.dir.join(format!("data-{port}")));
        if let Some(u) = upstream {
            cmd.args(["--upstream", &format!("127.0.0.1:{u}")]);
        }
        cmd.stderr(std::process::Stdio::null());
        self.children
            .push(retry_busy(|| cmd.spawn()).expect("serve"));
        wait_for("the server", || ask(port, "PING").is_some());
        self.children.len() - 1
    }

    fn stop(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
    }
}

fn probe(bin: &Path, port: u16) -> (i32, String) {
    let o = retry_busy(|| {
        Command::new(bin)
            .args(["probe", "--port", &port.to_string()])
            .output()
    })
    .expect("probe");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    )
}

#[test]
fn a_replica_follows_its_primary_and_reports_its_state() {
    let mut w = World::new("replica");
    let (v1, v2) = (w.slot("1.0.0"), w.slot("2.0.0"));
    let (pp, pr) = (port(), port());
    let primary = w.serve(&v1, pp, "primary", None);
    for (cmd, want) in [
        ("PING", "PONG 1.0.0 primary"),
        ("SET a 1", "OK"),
        ("SET b two words", "OK"),
        ("GET b", "VALUE two words"),
        ("GET nothing", "NONE"),
        ("STATE", "2"),
        ("HEALTH", "ok"),
        ("COUNT", "ERR unknown command COUNT"),
    ] {
        assert_eq!(ask(pp, cmd).as_deref(), Some(want), "{cmd}");
    }
    w.serve(&v1, pr, "backup", Some(pp));
    wait_for("the copy", || {
        ask(pr, "GET a").as_deref() == Some("VALUE 1")
    });
    assert_eq!(probe(&v1, pr), (0, "2".into()));
    assert_eq!(ask(pp, "SET c 3").as_deref(), Some("OK"));
    wait_for("the change stream", || {
        ask(pr, "GET c").as_deref() == Some("VALUE 3")
    });
    assert_eq!(ask(pr, "SET d 4").as_deref(), Some("ERR read-only replica"));
    // The primary goes: out of sync (3). A newer major version upstream: failed (4).
    w.stop(primary);
    wait_for("state 3", || probe(&v1, pr) == (0, "3".into()));
    let p2 = w.serve(&v2, pp, "primary", None);
    assert_eq!(ask(pp, "PING").as_deref(), Some("PONG 2.0.0 primary"));
    assert_eq!(
        ask(pp, "COUNT").as_deref(),
        Some("3"),
        "2.0.0 reads the data 1.0.0 wrote"
    );
    wait_for("state 4", || probe(&v1, pr) == (0, "4".into()));
    w.stop(p2);
    assert_eq!(probe(&v1, pr).0, 0);
    let unreachable = port();
    assert_eq!(probe(&v1, unreachable).0, 1);
}

#[test]
fn a_broken_version_answers_health_with_broken() {
    let mut w = World::new("broken");
    let b = w.slot("2.0.1-broken");
    let p = port();
    w.serve(&b, p, "primary", None);
    assert_eq!(ask(p, "HEALTH").as_deref(), Some("broken"));
    let o = Command::new(&b)
        .args(["health", "--port", &p.to_string()])
        .output()
        .expect("health");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn packages_and_bad_arguments() {
    let w = World::new("package");
    let out = w.dir.join("p.tar");
    let o = Command::new(BIN)
        .args(["package", "--version", "2.0.0", "--out"])
        .arg(&out)
        .output()
        .expect("package");
    assert!(o.status.success(), "{o:?}");
    let tar = std::fs::read(&out).expect("tar");
    assert_eq!(&tar[257..262], b"ustar");
    assert_eq!(tar.len() % 512, 0);
    for args in [
        vec!["serve", "--port", "1", "--role", "leader", "--data", "x"],
        vec!["serve", "--port", "1", "--role", "backup", "--data", "x"],
        vec!["nothing"],
        vec![],
        vec!["probe"],
    ] {
        let o = Command::new(BIN).args(&args).output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}
