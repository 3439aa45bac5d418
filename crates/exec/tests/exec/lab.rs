//! The loopback lab of the ssh tests: one real OpenSSH server per node (`/usr/sbin/sshd -D -e
//! -f CONFIG` on 127.0.0.1 and a free port, a host key and a client key made by `ssh-keygen`
//! in a temp dir, strict host-key checking against a known_hosts file written there) whose
//! `ForceCommand` is the fake appliance CLI (`crates/exec/tests/fixtures/fake-appliance.py`),
//! answering from a per-node state file. Shared by the ssh driver's tests (here) and the CLI's
//! discovery tests (`crates/cli/tests/discover/`, which include this file by its path).
#![allow(dead_code)]

use ferry_exec::SshOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
pub const FROM: &str = "14.0.1.12900-161";
pub const TO: &str = "14.0.1.13900-155";
/// An ISO listed before the site's on the fake SFTP server: the right choice is not the first.
pub const OTHER_ISO: &str = "12.5.1.16900-48";
/// The upgrade password the tests give ferry (FERRY_UPGRADE_PASSWORD); the fake appliance
/// refuses any other.
pub const PASSWORD: &str = "not-a-real-password";

/// A running sshd, killed on drop.
pub struct Sshd {
    pub child: Child,
    pub port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The servers of one test and their files, all gone on drop.
pub struct Lab {
    pub dir: PathBuf,
    pub user: String,
    pub sshd: BTreeMap<String, Sshd>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.sshd.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ferry-test", "-f"])
        .arg(path));
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Lab {
    /// One sshd per node (name, role, active version, inactive version).
    pub fn new(tag: &str, nodes: &[(&str, &str, &str, &str)]) -> Lab {
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
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../exec/tests/fixtures/fake-appliance.py");
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

    pub fn write(&self, name: &str, v: &serde_json::Value) {
        std::fs::write(self.dir.join("state").join(name), v.to_string()).expect("state");
    }

    pub fn node(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join(format!("state/nodes/{name}.json")))
            .expect("node state");
        serde_json::from_str(&text).expect("node json")
    }

    pub fn set(&self, name: &str, key: &str, value: serde_json::Value) {
        let mut v = self.node(name);
        v[key] = value;
        self.write(&format!("nodes/{name}.json"), &v);
    }

    /// The commands each node received, in order.
    pub fn commands(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.join("state/commands.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect()
    }

    /// The known_hosts file: every server's real key, or (false) a key of another host.
    pub fn known_hosts(&self, real: bool) {
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

    pub fn options(&self) -> SshOptions {
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
    pub fn site_text(&self, nodes: &[(&str, &str)]) -> String {
        self.site_text_for(nodes, FROM, TO)
    }

    /// The same, from version `from` to `to` (the ISO the install chooses names `to`).
    pub fn site_text_for(&self, nodes: &[(&str, &str)], from: &str, to: &str) -> String {
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

    pub fn cluster(&self, key: &str, value: serde_json::Value) {
        let text =
            std::fs::read_to_string(self.dir.join("state/cluster.json")).expect("cluster state");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("cluster json");
        v[key] = value;
        self.write("cluster.json", &v);
    }

    /// What the appliances asked and were answered, in order: (node, `ASK`|`GOT`, text).
    pub fn dialogue(&self) -> Vec<(String, String, String)> {
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
    pub fn answer_to(&self, node: &str, asked: &str) -> Option<String> {
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
