//! `ferry-demo-service`: a small replicated key-value store over a TCP line protocol, for trying
//! the ferry agent (A/B slots, switches, health checks, HA roles, replication states).
//!
//! `serve` runs the store. A primary (or publisher) takes writes; a backup (or subscriber)
//! connects to its `--upstream`, loads a full copy and then follows the stream of changes, and
//! refuses writes. The protocol, one command per line:
//!
//! ```text
//! PING        → PONG <version> <role>
//! GET k       → VALUE v | NONE
//! SET k v     → OK | ERR read-only replica
//! STATE       → 0..4 (replication: 0 not connected yet, 1 loading the copy, 2 in sync,
//!               3 upstream unreachable, 4 upstream runs an incompatible newer major version)
//! HEALTH      → ok | broken
//! COUNT       → the number of keys (version 2 and later)
//! SYNC <ver>  → a replica's request: HELLO <version>, FULL <n>, n lines `k v`, END, then SET lines
//! ```
//!
//! The version is read from the `VERSION` file next to the binary, so each slot the agent
//! stages runs its own version. A version containing `-broken` (or `--fail-health`) answers
//! `HEALTH` with `broken`, to try automatic reverts. `package` writes a package the agent can
//! stage: a tar holding this binary as `demo-service` and a `VERSION` file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USAGE: &str = "usage:
  ferry-demo-service serve --port P --role primary|backup|publisher|subscriber --data DIR [--upstream HOST:PORT] [--host ADDR] [--fail-health]
  ferry-demo-service probe --port P [--host ADDR]      prints the replication state (0-4)
  ferry-demo-service health --port P [--host ADDR]     exit 0 when HEALTH answers ok
  ferry-demo-service package --version V --out FILE.tar
  ferry-demo-service version";

/// Runs the command line `args` (without the program name) and returns the exit code:
/// 0 success, 1 failure (an unreachable service, an unhealthy one), 2 bad arguments.
pub fn main_with(args: &[String]) -> u8 {
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let opts = match Opts::parse(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ferry-demo-service: {e}\n{USAGE}");
            return 2;
        }
    };
    let result = match cmd.as_str() {
        "serve" => serve(&opts),
        "probe" => probe(&opts),
        "health" => health(&opts),
        "package" => package_cmd(&opts),
        "version" => {
            println!("{}", own_version());
            Ok(0)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(Bad(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(code) => code,
        Err(Bad(msg)) => {
            eprintln!("ferry-demo-service: {msg}");
            2
        }
    }
}

/// A bad argument or an impossible request (exit 2).
#[derive(Debug)]
struct Bad(String);

#[derive(Default)]
struct Opts {
    port: Option<u16>,
    host: Option<String>,
    role: Option<String>,
    data: Option<PathBuf>,
    upstream: Option<String>,
    version: Option<String>,
    out: Option<PathBuf>,
    fail_health: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--port" => {
                    let v = value("--port")?;
                    o.port = Some(v.parse().map_err(|_| format!("bad port `{v}`"))?);
                }
                "--host" => o.host = Some(value("--host")?),
                "--role" => {
                    let v = value("--role")?;
                    if !["primary", "backup", "publisher", "subscriber"].contains(&v.as_str()) {
                        return Err(format!(
                            "bad role `{v}`: primary, backup, publisher or subscriber"
                        ));
                    }
                    o.role = Some(v);
                }
                "--data" => o.data = Some(PathBuf::from(value("--data")?)),
                "--upstream" => o.upstream = Some(value("--upstream")?),
                "--version" => o.version = Some(value("--version")?),
                "--out" => o.out = Some(PathBuf::from(value("--out")?)),
                "--fail-health" => o.fail_health = true,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(o)
    }

    fn port(&self) -> Result<u16, Bad> {
        self.port.ok_or_else(|| Bad("--port is required".into()))
    }

    fn addr(&self) -> Result<String, Bad> {
        Ok(format!(
            "{}:{}",
            self.host.as_deref().unwrap_or("127.0.0.1"),
            self.port()?
        ))
    }
}

/// The version in the `VERSION` file next to the running binary (`0.0.0` without one).
pub fn own_version() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("VERSION")))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "0.0.0".to_string())
}

/// The major number of a version (`2` of `2.0.1-broken`), 0 when it has none.
pub fn major(version: &str) -> u64 {
    let digits: String = version
        .trim_start_matches(['v', 'V', 'R', 'r'])
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
}

fn is_replica(role: &str) -> bool {
    role == "backup" || role == "subscriber"
}

struct Store {
    map: BTreeMap<String, String>,
    /// Replicas following this store's changes.
    followers: Vec<TcpStream>,
    log: Option<std::fs::File>,
}

struct Shared {
    version: String,
    role: String,
    healthy: bool,
    data: PathBuf,
    store: Mutex<Store>,
    state: AtomicU8,
}

impl Shared {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn data_file(dir: &Path) -> PathBuf {
    dir.join("kv.log")
}

fn load(dir: &Path) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(data_file(dir)) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(' ') {
                map.insert(k.to_string(), v.to_string());
            }
        }
    }
    map
}

fn open_log(dir: &Path) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_file(dir))
        .ok()
}

/// Replaces the data file with a full copy (a replica's load), atomically.
fn rewrite(dir: &Path, map: &BTreeMap<String, String>) -> std::io::Result<()> {
    let tmp = dir.join("kv.log.tmp");
    let mut text = String::new();
    for (k, v) in map {
        text.push_str(k);
        text.push(' ');
        text.push_str(v);
        text.push('\n');
    }
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, data_file(dir))
}

fn serve(o: &Opts) -> Result<u8, Bad> {
    let addr = o.addr()?;
    let role = o
        .role
        .clone()
        .ok_or_else(|| Bad("--role is required".into()))?;
    let data = o
        .data
        .clone()
        .ok_or_else(|| Bad("--data is required".into()))?;
    if is_replica(&role) && o.upstream.is_none() {
        return Err(Bad(format!("a {role} needs --upstream HOST:PORT")));
    }
    if let Err(e) = std::fs::create_dir_all(&data) {
        return Err(Bad(format!("cannot create {}: {e}", data.display())));
    }
    let version = own_version();
    let healthy = !(o.fail_health || version.contains("-broken"));
    let shared = Arc::new(Shared {
        healthy,
        state: AtomicU8::new(if is_replica(&role) { 0 } else { 2 }),
        store: Mutex::new(Store {
            map: load(&data),
            followers: Vec::new(),
            log: open_log(&data),
        }),
        version,
        role: role.clone(),
        data,
    });
    // The previous process may still hold the port for a moment: try for a few seconds.
    let started = Instant::now();
    let listener = loop {
        match TcpListener::bind(&addr) {
            Ok(l) => break l,
            Err(e) if started.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                eprintln!("ferry-demo-service: cannot listen on {addr}: {e}");
                return Ok(1);
            }
        }
    };
    eprintln!(
        "ferry-demo-service {} serving on {addr} as {role}",
        shared.version
    );
    if is_replica(&role) {
        let s = shared.clone();
        let upstream = o.upstream.clone().unwrap_or_default();
        std::thread::spawn(move || follow(&s, &upstream));
    }
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let s = shared.clone();
        std::thread::spawn(move || {
            let _ = client(&s, stream);
        });
    }
    Ok(0)
}

fn client(s: &Shared, stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone()?;
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line?;
        let line = line.trim_end_matches('\r');
        let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
        let answer = match cmd.to_ascii_uppercase().as_str() {
            "PING" => format!("PONG {} {}", s.version, s.role),
            "HEALTH" => if s.healthy { "ok" } else { "broken" }.to_string(),
            "STATE" => s.state.load(Ordering::SeqCst).to_string(),
            "GET" => match s.store().map.get(arg.trim()) {
                Some(v) => format!("VALUE {v}"),
                None => "NONE".to_string(),
            },
            "SET" => set(s, arg),
            "COUNT" if major(&s.version) >= 2 => s.store().map.len().to_string(),
            "SYNC" if !is_replica(&s.role) => {
                let peer = out.try_clone()?;
                return offer_copy(s, peer);
            }
            "SYNC" => "ERR a replica is no upstream".to_string(),
            "QUIT" => return Ok(()),
            "" => continue,
            other => format!("ERR unknown command {other}"),
        };
        out.write_all(answer.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn set(s: &Shared, arg: &str) -> String {
    if is_replica(&s.role) {
        return "ERR read-only replica".to_string();
    }
    let Some((k, v)) = arg.trim_start().split_once(' ') else {
        return "ERR usage: SET key value".to_string();
    };
    if k.is_empty() {
        return "ERR usage: SET key value".to_string();
    }
    let mut st = s.store();
    st.map.insert(k.to_string(), v.to_string());
    if let Some(f) = st.log.as_mut() {
        let _ = writeln!(f, "{k} {v}");
    }
    let line = format!("SET {k} {v}\n");
    st.followers
        .retain_mut(|f| f.write_all(line.as_bytes()).is_ok());
    "OK".to_string()
}

/// An upstream's side of `SYNC`: the full copy, then the follower joins the change stream
/// (under the store's lock, so no change falls between the copy and the stream).
fn offer_copy(s: &Shared, mut peer: TcpStream) -> std::io::Result<()> {
    let _ = peer.set_write_timeout(Some(Duration::from_secs(2)));
    let mut st = s.store();
    let mut text = format!("HELLO {}\nFULL {}\n", s.version, st.map.len());
    for (k, v) in &st.map {
        text.push_str(&format!("{k} {v}\n"));
    }
    text.push_str("END\n");
    peer.write_all(text.as_bytes())?;
    st.followers.push(peer);
    Ok(())
}

/// A replica's loop: connect to the upstream, load the copy, follow the changes; on a lost
/// connection, state 3 and try again.
fn follow(s: &Shared, upstream: &str) {
    loop {
        match follow_once(s, upstream) {
            Ok(()) | Err(_) => {
                let st = s.state.load(Ordering::SeqCst);
                if st != 4 {
                    s.state.store(3, Ordering::SeqCst);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(
            if s.state.load(Ordering::SeqCst) == 4 {
                1000
            } else {
                100
            },
        ));
    }
}

fn follow_once(s: &Shared, upstream: &str) -> std::io::Result<()> {
    let addr = upstream
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    let _ = stream.set_nodelay(true);
    stream.write_all(format!("SYNC {}\n", s.version).as_bytes())?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let up_version = line
        .trim()
        .strip_prefix("HELLO ")
        .ok_or_else(|| std::io::Error::other(format!("unexpected answer {line:?}")))?
        .to_string();
    if major(&up_version) > major(&s.version) {
        s.state.store(4, Ordering::SeqCst);
        let _ = stream.shutdown(Shutdown::Both);
        return Ok(());
    }
    s.state.store(1, Ordering::SeqCst);
    line.clear();
    reader.read_line(&mut line)?;
    let n: usize = line
        .trim()
        .strip_prefix("FULL ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected answer {line:?}")))?;
    let mut map = BTreeMap::new();
    for _ in 0..n {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("copy cut short"));
        }
        if let Some((k, v)) = line.trim_end_matches(['\n', '\r']).split_once(' ') {
            map.insert(k.to_string(), v.to_string());
        }
    }
    line.clear();
    reader.read_line(&mut line)?;
    if line.trim() != "END" {
        return Err(std::io::Error::other("copy without its end"));
    }
    let _ = rewrite(&s.data, &map);
    {
        let mut st = s.store();
        st.map = map;
        st.log = open_log(&s.data);
    }
    s.state.store(2, Ordering::SeqCst);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if let Some(rest) = line.trim_end_matches(['\n', '\r']).strip_prefix("SET ") {
            if let Some((k, v)) = rest.split_once(' ') {
                let mut st = s.store();
                st.map.insert(k.to_string(), v.to_string());
                if let Some(f) = st.log.as_mut() {
                    let _ = writeln!(f, "{k} {v}");
                }
            }
        }
    }
}

/// Sends one command and reads one line of answer.
pub fn ask(addr: &str, command: &str) -> std::io::Result<String> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::other("connection closed without an answer"));
    }
    Ok(line.trim_end().to_string())
}

fn probe(o: &Opts) -> Result<u8, Bad> {
    let addr = o.addr()?;
    match ask(&addr, "STATE") {
        Ok(state) => {
            println!("{state}");
            Ok(0)
        }
        Err(e) => {
            eprintln!("ferry-demo-service: {addr}: {e}");
            Ok(1)
        }
    }
}

fn health(o: &Opts) -> Result<u8, Bad> {
    let addr = o.addr()?;
    match ask(&addr, "HEALTH") {
        Ok(a) if a == "ok" => Ok(0),
        Ok(a) => {
            eprintln!("ferry-demo-service: {addr}: {a}");
            Ok(1)
        }
        Err(e) => {
            eprintln!("ferry-demo-service: {addr}: {e}");
            Ok(1)
        }
    }
}

fn package_cmd(o: &Opts) -> Result<u8, Bad> {
    let version = o
        .version
        .clone()
        .ok_or_else(|| Bad("--version is required".into()))?;
    let out = o
        .out
        .clone()
        .ok_or_else(|| Bad("--out is required".into()))?;
    let exe = std::env::current_exe()
        .and_then(std::fs::read)
        .map_err(|e| Bad(format!("cannot read my own binary: {e}")))?;
    let tar = package(&exe, &version);
    std::fs::write(&out, tar).map_err(|e| Bad(format!("cannot write {}: {e}", out.display())))?;
    println!("{}: ferry-demo-service {version}", out.display());
    Ok(0)
}

/// A package: a tar archive holding `binary` as `demo-service` (mode 755) and a `VERSION` file.
pub fn package(binary: &[u8], version: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(binary.len() + 4096);
    tar_entry(&mut out, "demo-service", 0o755, binary);
    tar_entry(
        &mut out,
        "VERSION",
        0o644,
        format!("{version}\n").as_bytes(),
    );
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// One regular file in ustar format.
fn tar_entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = len - 1);
        h[at..at + len].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, data.len() as u64);
    octal(&mut h, 136, 12, 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors() {
        for (v, m) in [("2.0.1-broken", 2), ("1.0.0", 1), ("v3", 3), ("x", 0)] {
            assert_eq!(major(v), m, "{v}");
        }
    }

    #[test]
    fn package_is_a_tar_of_two_files() {
        let t = package(b"binary", "2.0.0");
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[257..262], b"ustar");
        assert_eq!(&t[..12], b"demo-service");
    }
}
