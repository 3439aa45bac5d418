//! The agent against careless or hostile clients: a signed package replayed as another version
//! or service, switches asked twice or at once, slow clients holding connections, the
//! `Authorization` scheme in any case; and `ferry agent certs` and `keygen` asked to write over
//! files or through symbolic links.

use super::*;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

// ---- a raw TLS client, to send exactly the bytes a test wants, when it wants ----

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_client_config(lab: &Lab) -> Arc<rustls::ClientConfig> {
    let roots = ferry_agent::tls::root_store(
        ferry_agent::tls::certs_from_pem(lab.ca.cert_pem().as_bytes()).expect("CA"),
    )
    .expect("roots");
    let mut c = rustls::ClientConfig::builder_with_provider(ferry_agent::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn tcp_open(lab: &Lab, i: usize) -> TcpStream {
    let s = TcpStream::connect((lab.agents[i].host.as_str(), lab.agents[i].port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

/// A connection to agent `i` with its TLS handshake done.
fn tls_open(lab: &Lab, i: usize, cfg: &Arc<rustls::ClientConfig>) -> TlsStream {
    let name = rustls::pki_types::ServerName::try_from(lab.agents[i].host.clone()).expect("name");
    let conn = rustls::ClientConnection::new(cfg.clone(), name).expect("TLS client");
    let mut s = rustls::StreamOwned::new(conn, tcp_open(lab, i));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s
}

fn send(s: &mut impl Write, bytes: &[u8]) {
    s.write_all(bytes).expect("write");
    s.flush().expect("flush");
}

/// One HTTP response: its status and body.
fn read_response(s: &mut impl Read) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

/// A connection the test holds, plain or TLS.
trait Held: Read {
    fn tcp(&self) -> &TcpStream;
}
impl Held for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}
impl Held for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// Whether the agent closed the connection within `within` (end of stream or reset); false
/// when it is still open then. A bound, far above the agent's timeouts: not a measure.
fn closed_within(s: &mut impl Held, within: Duration) -> bool {
    s.tcp().set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// The TCP connections process `pid` holds on its local port `port` (its listener left out).
fn connections_held(pid: u32, port: u16) -> usize {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && *state != "0A" && inodes.contains(*inode) {
                n += 1;
            }
        }
    }
    n
}

/// Raises this process's open-files limit to what a test holding many connections needs.
fn allow_open_files(n: u64) {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < n {
            l.rlim_cur = n.min(l.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

// ---- 1. the signature names the service and the version ----

/// A signature binds the package to the service and the version it was signed for: an old
/// package signed as kv 1.0.0 cannot be staged as kv 9.9.9, nor as service db.
#[test]
fn agent_stage_refuses_a_package_signed_for_another_version_or_service() {
    let mut lab = Lab::new("bind");
    let (pk, pd) = (free_port(), free_port());
    let services = demo_service(pk, None, None)
        + &demo_service(pd, None, None).replace("name = \"kv\"", "name = \"db\"");
    let a = lab.configure("kv-a", &services, "", "");
    lab.start(a);
    let c = lab.client(a);
    // kv-1.0.0.tar, signed as kv 1.0.0; the same archive as db-1.0.0.tar, signed as db 1.0.0
    // (`ferry agent sign` takes both from the file's name).
    let (data, kv_sig) = lab.package("1.0.0");
    let db_file = lab.dir.join("db-1.0.0.tar");
    std::fs::write(&db_file, &data).expect("write");
    let o = ferry(&[
        "agent",
        "sign",
        db_file.to_str().unwrap_or_default(),
        "--key",
        lab.secret_key.to_str().unwrap_or_default(),
    ]);
    assert_eq!(o.status.code(), Some(0), "sign: {o:?}");
    let db_sig = std::fs::read_to_string(format!("{}.minisig", db_file.display())).expect("sig");
    let services_dir = lab.state_dir(a).join("services");
    let before = (tree(&services_dir), lab.status(a).services);
    let stage = |id: &str, service: &str, version: &str, sig: &str| OpRequest {
        service: service.into(),
        ..stage_req(id, version, &data, sig)
    };
    let check = |id: &str, service: &str, version: &str, sig: &str, says: &str| {
        let reply = post(&c, &stage(id, service, version, sig));
        let body = reply.json();
        assert_eq!(reply.status, 422, "{id}: {body}");
        let err = body["error"].as_str().unwrap_or_default();
        assert!(err.contains(says), "{id}: `{err}` lacks `{says}`");
        assert_eq!(
            (tree(&services_dir), lab.status(a).services),
            before,
            "{id}: something changed"
        );
    };
    check(
        "bind/replay-newer",
        "kv",
        "9.9.9",
        &kv_sig,
        "signed for kv 1.0.0, not for kv 9.9.9",
    );
    check(
        "bind/replay-older",
        "kv",
        "0.9.0",
        &kv_sig,
        "signed for kv 1.0.0, not for kv 0.9.0",
    );
    check(
        "bind/other-service",
        "db",
        "1.0.0",
        &kv_sig,
        "signed for kv 1.0.0, not for db 1.0.0",
    );
    check(
        "bind/db-as-kv",
        "kv",
        "1.0.0",
        &db_sig,
        "signed for db 1.0.0, not for kv 1.0.0",
    );
    // A signature that states nothing (minisign's default trusted comment, as ferry signed
    // before): refused, saying how to sign again.
    let sk = minisign::SecretKeyBox::from_string(
        &std::fs::read_to_string(&lab.secret_key).expect("secret key"),
    )
    .and_then(|b| b.into_unencrypted_secret_key())
    .expect("secret key");
    let unstated = minisign::sign(None, &sk, std::io::Cursor::new(&data), None, None)
        .expect("sign")
        .into_string();
    check(
        "bind/unstated",
        "kv",
        "1.0.0",
        &unstated,
        "does not name the service and version it was signed for",
    );
    check(
        "bind/unstated-how",
        "kv",
        "1.0.0",
        &unstated,
        "sign it again with `ferry agent sign PACKAGE --key KEY --service SERVICE --version VERSION`",
    );
    // Staged as what it was signed for: accepted.
    op_ok(&c, &stage("bind/kv", "kv", "1.0.0", &kv_sig));
    op_ok(&c, &stage("bind/db", "db", "1.0.0", &db_sig));
    let st = lab.status(a);
    for s in &st.services {
        assert_eq!(
            s.inactive.as_ref().map(|v| v.version.as_str()),
            Some("1.0.0"),
            "{}",
            s.name
        );
    }
}

// ---- 2. a switch names its target ----

/// A switch names the version it switches to: asked again with a fresh ID, or four times at
/// once, the node ends on that version after one restart, not back where it started.
#[test]
fn agent_switch_goes_to_the_version_it_names_and_a_repeat_changes_nothing() {
    let mut lab = Lab::new("target");
    let port = free_port();
    let a = lab.configure("kv-a", &demo_service(port, None, None), "", "");
    lab.start(a);
    let c = lab.client(a);
    let (v1, s1) = lab.package("1.0.0");
    let (v2, s2) = lab.package("2.0.0");
    op_ok(&c, &stage_req("g/stage-1", "1.0.0", &v1, &s1));
    op_ok(&c, &switch_req("g/switch-1", "1.0.0"));
    op_ok(&c, &stage_req("g/stage-2", "2.0.0", &v2, &s2));
    let log = lab.service_dir(a).join("logs/service.log");
    let starts = |v: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(&format!("ferry-demo-service {v} serving"))
            .count()
    };

    // Twice to 2.0.0, with fresh IDs: the second finds the node on 2.0.0 and does nothing.
    let r = op_ok(&c, &switch_req("g/to-2", "2.0.0"));
    assert!(
        r.message.starts_with("switched to 2.0.0 (slot b)"),
        "{}",
        r.message
    );
    let pid = lab.status(a).services[0].pid;
    let r = op_ok(&c, &switch_req("g/to-2-again", "2.0.0"));
    assert!(
        r.message
            .starts_with("already on 2.0.0 (slot b): nothing was switched"),
        "{}",
        r.message
    );
    assert_eq!(
        versions(&lab.status(a)),
        (Some("b:2.0.0".into()), Some("a:1.0.0".into()))
    );
    assert_eq!(lab.status(a).services[0].pid, pid, "restarted by a no-op");
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));

    // Four at once to 1.0.0: one switches, three find it done; one restart.
    let before = starts("1.0.0");
    let results: Vec<OpResult> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..4)
            .map(|k| {
                let lab = &lab;
                s.spawn(move || {
                    lab.client(a)
                        .op(&switch_req(&format!("g/at-once-{k}"), "1.0.0"))
                        .expect("switch")
                })
            })
            .collect();
        asks.into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let messages: Vec<&str> = results.iter().map(|r| r.message.as_str()).collect();
    assert!(
        results.iter().all(|r| r.state == OpState::Done),
        "{messages:?}"
    );
    assert_eq!(
        (
            messages
                .iter()
                .filter(|m| m.starts_with("switched to 1.0.0"))
                .count(),
            messages
                .iter()
                .filter(|m| m.starts_with("already on 1.0.0"))
                .count()
        ),
        (1, 3),
        "{messages:?}"
    );
    assert_eq!(
        versions(&lab.status(a)),
        (Some("a:1.0.0".into()), Some("b:2.0.0".into()))
    );
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    assert_eq!(starts("1.0.0"), before + 1, "one restart");

    // Without a version: refused, nothing switched, the ID left unused.
    let r = post(&c, &req("g/no-version", OpKind::Switch));
    assert_eq!(r.status, 422, "{}", r.json());
    let err = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("names no `version`"), "{err}");
    assert_eq!(c.op_result("g/no-version").expect("get"), None);
    // A version neither slot holds: refused, nothing switched.
    let r = post(&c, &switch_req("g/nowhere", "3.0.0"));
    assert_eq!(r.status, 409, "{}", r.json());
    let err = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("slot b of `kv` holds 2.0.0, not 3.0.0: nothing to switch to"),
        "{err}"
    );
    assert_eq!(
        versions(&lab.status(a)),
        (Some("a:1.0.0".into()), Some("b:2.0.0".into()))
    );
    // A revert may name its version too: then it is a switch back, done once.
    let revert = |id: &str| OpRequest {
        version: Some("2.0.0".into()),
        ..req(id, OpKind::Revert)
    };
    let r = op_ok(&c, &revert("g/revert"));
    assert!(r.message.starts_with("reverted to 2.0.0"), "{}", r.message);
    let r = op_ok(&c, &revert("g/revert-again"));
    assert!(r.message.starts_with("already on 2.0.0"), "{}", r.message);
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 2.0.0 primary"));
}

// ---- 3. slow clients ----

/// Limits short enough for a test to see them act (the bounds below are far above them).
const QUICK_LIMITS: &str = "[agent.limits]\nmax_connections = 64\nhandshake_timeout_s = 1\nheader_timeout_s = 1\nbody_timeout_s = 1\nidle_timeout_s = 1\n";

/// Each kind of slow client is cut off by its timeout: no TLS handshake, no request after it,
/// a request's head begun and never finished or sent a byte at a time, a body that stops
/// coming (408), a kept-alive connection left idle. A client that keeps to them is answered.
#[test]
fn agent_closes_slow_clients_after_its_timeouts() {
    let mut lab = Lab::new("slow");
    let a = lab.configure("kv-a", "", QUICK_LIMITS, "");
    lab.start(a);
    let cfg = tls_client_config(&lab);
    let bound = Duration::from_secs(15);
    let token = lab.token.clone();

    let mut raw = tcp_open(&lab, a);
    assert!(
        closed_within(&mut raw, bound),
        "a connection without a TLS handshake is still open"
    );
    let mut quiet = tls_open(&lab, a, &cfg);
    assert!(
        closed_within(&mut quiet, bound),
        "a connection that sends no request is still open"
    );
    let mut partial = tls_open(&lab, a, &cfg);
    send(&mut partial, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n");
    assert!(
        closed_within(&mut partial, bound),
        "a connection whose request head never ends is still open"
    );
    // A byte every 100 ms: the head's timeout is for the whole head, not for each byte.
    let mut trickle = tls_open(&lab, a, &cfg);
    let head = format!(
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(200)
    );
    let mut cut = false;
    for b in head.bytes() {
        if trickle
            .write_all(&[b])
            .and_then(|()| trickle.flush())
            .is_err()
            || closed_within(&mut trickle, Duration::from_millis(100))
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a request head sent a byte at a time was read to its end"
    );
    // A body that stops coming: 408, and the connection closed.
    let mut body = tls_open(&lab, a, &cfg);
    send(
        &mut body,
        format!("POST /v1/ops HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"id\":\"sl").as_bytes(),
    );
    let answer = read_response(&mut body);
    assert_eq!(
        answer.as_ref().map(|a| a.0),
        Some(408),
        "a stalled body: {answer:?}"
    );
    assert!(
        closed_within(&mut body, bound),
        "a connection whose body stopped is still open"
    );
    // Idle after an answered request.
    let mut idle = tls_open(&lab, a, &cfg);
    send(
        &mut idle,
        format!("GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    );
    let answer = read_response(&mut idle);
    assert_eq!(answer.as_ref().map(|a| a.0), Some(200), "{answer:?}");
    assert!(
        closed_within(&mut idle, bound),
        "an idle kept-alive connection is still open"
    );
    lab.client(a).status().expect("a prompt client is answered");
}

/// 1,000 slow connections (200 with a TLS handshake and half a request head, 800 that never
/// start their handshake) are held open while a legitimate client asks: it is answered, and
/// the agent holds no more connections than its limit. Its timeouts are long here: the limit,
/// not a timeout, keeps room.
#[test]
fn agent_answers_while_a_thousand_slow_connections_are_held() {
    allow_open_files(4096);
    let mut lab = Lab::new("crowd");
    let limits = "[agent.limits]\nmax_connections = 64\nhandshake_timeout_s = 600\nheader_timeout_s = 600\nbody_timeout_s = 600\nidle_timeout_s = 600\n";
    let a = lab.configure("kv-a", "", limits, "");
    lab.start(a);
    let pid = lab.agents[a].child.as_ref().expect("the agent runs").id();
    let port = lab.agents[a].port;
    let cfg = tls_client_config(&lab);
    let mut held_tls = Vec::new();
    for _ in 0..200 {
        let mut s = tls_open(&lab, a, &cfg);
        send(&mut s, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n");
        held_tls.push(s);
    }
    let held_raw: Vec<TcpStream> = (0..800).map(|_| tcp_open(&lab, a)).collect();
    let c = AgentClient::new(
        &lab.url(a),
        ClientOptions {
            token: Some(lab.token.clone()),
            ca_pem: lab.ca.cert_pem().into_bytes(),
            identity: None,
            timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        },
    )
    .expect("client");
    let st = c
        .status()
        .expect("answered while 1,000 slow connections are held");
    assert_eq!(st.agent, "kv-a");
    let start = Instant::now();
    let mut held = connections_held(pid, port);
    while held > 64 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        held = connections_held(pid, port);
    }
    assert!(
        held <= 64,
        "the agent holds {held} connections, over its limit of 64"
    );
    c.status().expect("answered again");
    assert_eq!(held_tls.len() + held_raw.len(), 1000);
}

// ---- 4. files written by `ferry agent certs` and `keygen` ----

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// `certs` and `keygen` never write over a file unasked (`--force` asks), write private keys
/// 0600 whatever mode an old file had, and never write through a symbolic link.
#[test]
fn ferry_agent_certs_and_keygen_refuse_to_overwrite_and_never_follow_links() {
    let lab = Lab::new("files");
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    let outside = lab.dir.join("outside");
    std::fs::create_dir_all(&outside).expect("dir");
    std::fs::write(outside.join("victim.pem"), "precious\n").expect("victim");

    // certs
    let tls = lab.dir.join("certs");
    let t = tls.display().to_string();
    let certs = |out: &str, extra: &[&str]| {
        let mut args = vec!["agent", "certs", "--out", out, "--name", "kv-a"];
        args.extend_from_slice(extra);
        ferry(&args)
    };
    let o = certs(&t, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    for (f, m) in [
        ("ca.pem", 0o644),
        ("kv-a.pem", 0o644),
        ("kv-a-key.pem", 0o600),
        ("client.pem", 0o644),
        ("client-key.pem", 0o600),
    ] {
        assert_eq!(mode(&tls.join(f)), m, "{f}");
    }
    let first = tree(&tls);
    let o = certs(&t, &[]);
    assert_eq!(o.status.code(), Some(2), "written over: {}", err(&o));
    assert!(
        err(&o).contains("exists already") && err(&o).contains("--force"),
        "{}",
        err(&o)
    );
    assert_eq!(tree(&tls), first, "a refused certs changed files");
    // A key file left readable by all: --force writes new files, the keys 0600.
    std::fs::set_permissions(
        tls.join("kv-a-key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let o = certs(&t, &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(mode(&tls.join("kv-a-key.pem")), 0o600);
    assert_ne!(tree(&tls), first, "--force wrote nothing new");
    // Links where files would go (one dangling, one to a file): refused with and without
    // --force, and nothing is written through them, nor beside them.
    let linked = lab.dir.join("linked");
    std::fs::create_dir_all(&linked).expect("dir");
    std::os::unix::fs::symlink(outside.join("stolen-key.pem"), linked.join("kv-a-key.pem"))
        .expect("link");
    std::os::unix::fs::symlink(outside.join("victim.pem"), linked.join("ca.pem")).expect("link");
    let l = linked.display().to_string();
    for extra in [&[][..], &["--force"][..]] {
        let o = certs(&l, extra);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", err(&o));
        assert!(err(&o).contains("symbolic link"), "{extra:?}: {}", err(&o));
        assert!(
            !outside.join("stolen-key.pem").exists(),
            "{extra:?}: a key was written through a link"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("victim.pem"))
                .ok()
                .as_deref(),
            Some("precious\n"),
            "{extra:?}"
        );
        assert_eq!(
            std::fs::read_dir(&linked).expect("dir").count(),
            2,
            "{extra:?}: files written beside the links"
        );
    }

    // keygen
    let keys = lab.dir.join("keys-2");
    let k = keys.display().to_string();
    let keygen = |out: &str, extra: &[&str]| {
        let mut args = vec!["agent", "keygen", "--out", out];
        args.extend_from_slice(extra);
        ferry(&args)
    };
    let o = keygen(&k, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(mode(&keys.join("ferry-agent.key")), 0o600);
    assert_eq!(mode(&keys.join("ferry-agent.pub")), 0o644);
    let first = tree(&keys);
    let o = keygen(&k, &[]);
    assert_eq!(o.status.code(), Some(2), "written over: {}", err(&o));
    assert!(err(&o).contains("--force"), "{}", err(&o));
    assert_eq!(tree(&keys), first);
    std::fs::set_permissions(
        keys.join("ferry-agent.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let o = keygen(&k, &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(mode(&keys.join("ferry-agent.key")), 0o600);
    assert_ne!(tree(&keys), first, "--force wrote no new key");
    let linked = lab.dir.join("linked-keys");
    std::fs::create_dir_all(&linked).expect("dir");
    std::os::unix::fs::symlink(outside.join("stolen.pub"), linked.join("ferry-agent.pub"))
        .expect("link");
    let l = linked.display().to_string();
    for extra in [&[][..], &["--force"][..]] {
        let o = keygen(&l, extra);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", err(&o));
        assert!(err(&o).contains("symbolic link"), "{extra:?}: {}", err(&o));
        assert!(
            !outside.join("stolen.pub").exists(),
            "{extra:?}: written through a link"
        );
        assert_eq!(
            std::fs::read_dir(&linked).expect("dir").count(),
            1,
            "{extra:?}: a key written beside the link"
        );
    }
}

// ---- 5. the authentication scheme in any case ----

/// RFC 9110 §11.1: the authentication scheme is case-insensitive (`bearer`, `BEARER`), and
/// one or more spaces separate it from the token.
#[test]
fn agent_takes_the_bearer_scheme_in_any_case() {
    let mut lab = Lab::new("scheme");
    let a = lab.configure("kv-a", "", "", "");
    lab.start(a);
    let cfg = tls_client_config(&lab);
    let check = |authorization: &str, expected: u16| {
        let mut s = tls_open(&lab, a, &cfg);
        send(
            &mut s,
            format!("GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let answer = read_response(&mut s);
        assert_eq!(
            answer.as_ref().map(|a| a.0),
            Some(expected),
            "{authorization}: {answer:?}"
        );
    };
    let t = lab.token.clone();
    check(&format!("Bearer {t}"), 200);
    check(&format!("bearer {t}"), 200);
    check(&format!("BEARER {t}"), 200);
    check(&format!("bEaReR   {t}"), 200);
    check("bearer not-the-token-0123456789", 401);
    check(&format!("Basic {t}"), 401);
    check(&format!("Bearer{t}"), 401);
    check("bearer", 401);
}
