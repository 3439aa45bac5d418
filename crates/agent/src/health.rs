//! Health checks (a TCP connection, optionally a line sent and its answer compared, or a
//! command that exits 0) and replication probes (a command that prints a state 0-4).

use crate::config::{expand, HealthCheck, Vars};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the check once; `timeout` bounds it.
pub fn check(h: &HealthCheck, vars: &Vars, timeout: Duration) -> bool {
    match h {
        HealthCheck::Tcp { addr, send, expect } => {
            tcp(addr, send.as_deref(), expect.as_deref(), timeout)
        }
        HealthCheck::Command(cmd) => {
            matches!(run(&expand(cmd, vars), timeout), Some((true, _)))
        }
    }
}

fn tcp(addr: &str, send: Option<&str>, expect: Option<&str>, timeout: Duration) -> bool {
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, timeout) else {
        return false;
    };
    let Some(line) = send else { return true };
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.write_all(format!("{line}\n").as_bytes()).is_err()
    {
        return false;
    }
    let mut answer = String::new();
    match BufReader::new(stream).read_line(&mut answer) {
        Ok(n) if n > 0 => expect.is_none_or(|e| answer.trim() == e),
        _ => false,
    }
}

/// Runs a probe: its output's first number, when it is a replication state (0-4).
pub fn probe(cmd: &[String], vars: &Vars, timeout: Duration) -> Option<u8> {
    let (ok, out) = run(&expand(cmd, vars), timeout)?;
    if !ok {
        return None;
    }
    out.split_whitespace()
        .next()
        .and_then(|w| w.parse::<u8>().ok())
        .filter(|s| *s <= 4)
}

/// Runs a command with a time limit: (exited 0, its standard output), or `None` when it could
/// not start or overran (it is then killed).
pub fn run(argv: &[String], timeout: Duration) -> Option<(bool, String)> {
    let (prog, args) = argv.split_first()?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                return Some((status.success(), out));
            }
            Ok(None) if start.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
