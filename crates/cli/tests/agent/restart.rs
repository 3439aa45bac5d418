//! Restarting the agent must not restart its services: an agent stopped with SIGTERM and
//! started again on the same state directory, while a client keeps asking the service, leaves
//! the service's process running without one failed request, and the new agent adopts it
//! through its pid file; a stale pid file (a dead pid, or a pid another process has since) is
//! not adopted.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A client that keeps asking the service `PING` on the loopback, a new connection each time,
/// counting the answers and keeping every failure, until it is finished.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, want: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, n, f, want) = (
            stop.clone(),
            answered.clone(),
            failures.clone(),
            want.to_string(),
        );
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                i += 1;
                match ask(port, "PING") {
                    Some(a) if a == want => {
                        n.fetch_add(1, Ordering::SeqCst);
                    }
                    other => f
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("request {i}: {other:?}")),
                }
            }
        });
        Load {
            stop,
            answered,
            failures,
            thread: Some(thread),
        }
    }

    /// Waits until `n` more requests were answered, or one failed (`finish` tells).
    fn more(&self, n: u64, what: &str) {
        let target = self.answered.load(Ordering::SeqCst) + n;
        wait_for(what, || {
            let failed = !self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            (failed || self.answered.load(Ordering::SeqCst) >= target).then_some(())
        });
    }

    /// Stops asking: (requests answered, the failures).
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()));
        (self.answered.load(Ordering::SeqCst), failures)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The session a process leads or belongs to (field 6 of `/proc/PID/stat`).
fn session(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(3)?.parse().ok()
}

/// Agent `a` runs the demo service on `port` at 1.0.0 (staged and switched), healthy.
fn running_on_1_0_0(lab: &mut Lab, tag: &str, port: u16) -> usize {
    let a = lab.configure("kv-a", &demo_service(port, None, None), "", "");
    lab.start(a);
    let c = lab.client(a);
    let (v1, s1) = lab.package("1.0.0");
    op_ok(&c, &stage_req(&format!("{tag}/stage-1"), "1.0.0", &v1, &s1));
    op_ok(&c, &switch_req(&format!("{tag}/switch-1"), "1.0.0"));
    assert_eq!(lab.status(a).services[0].health, Health::Healthy);
    a
}

/// Issue 15 (part 4): upgrading ferry on a node restarts the agent; its services run on.
#[test]
fn agent_restarted_under_load_leaves_its_service_running_and_adopts_it() {
    let mut lab = Lab::new("restart");
    let port = free_port();
    let a = running_on_1_0_0(&mut lab, "r", port);
    let pid = lab.status(a).services[0].pid.expect("the service's pid");
    // Detached from the agent: a session of its own, its output in its log file.
    assert_eq!(
        session(pid),
        Some(pid as i32),
        "the service leads its own session"
    );
    let log = lab.service_dir(a).join("logs/service.log");
    for fd in [1, 2] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok(),
            Some(log.clone()),
            "fd {fd}"
        );
    }
    // Nothing of the agent's stays open in it: no pipe, not the agent's journal.
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .filter(|l| l.starts_with("pipe:") || l.contains("agent.sqlite"))
        .collect();
    assert_eq!(held, Vec::<String>::new());

    let load = Load::start(port, "PONG 1.0.0 primary");
    load.more(50, "requests before the restart");
    lab.terminate(a);
    load.more(50, "requests while no agent runs");
    lab.start(a);
    load.more(50, "requests after the restart");
    let (answered, failures) = load.finish();
    assert_eq!(failures, Vec::<String>::new(), "of {answered} requests");

    // The same process, adopted: the new agent reports it running and healthy.
    let st = lab.status(a);
    assert_eq!(
        (st.services[0].pid, st.services[0].health),
        (Some(pid), Health::Healthy)
    );
    let procs: Vec<i32> = processes_under(&lab.dir, true)
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(procs, vec![pid as i32], "exactly one service process");
    let agent_log = std::fs::read_to_string(lab.dir.join("kv-a.log")).unwrap_or_default();
    assert!(
        agent_log.contains("adopted the running service"),
        "{agent_log}"
    );

    // An explicit restart through the API still stops it and starts a new process.
    op_ok(&lab.client(a), &req("r/restart", OpKind::Restart));
    let st = lab.status(a);
    assert!(
        st.services[0].pid.is_some_and(|p| p != pid),
        "{:?}",
        st.services[0].pid
    );
    assert_eq!(ask(port, "PING").as_deref(), Some("PONG 1.0.0 primary"));
    // The lab's drop kills the agent and the service.
}

/// A pid file whose process is gone, or whose pid another process has now, is not adopted:
/// the agent starts the service again and leaves the other process alone.
#[test]
fn agent_does_not_adopt_a_stale_pid_file() {
    let mut lab = Lab::new("stale");
    let port = free_port();
    let a = running_on_1_0_0(&mut lab, "s", port);
    let pid_file = lab.service_dir(a).join("service.pid");
    let recorded = std::fs::read_to_string(&pid_file).expect("the pid file");
    let fields: Vec<&str> = recorded.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "PID STARTTIME SLOT: {recorded}");
    let (pid, start) = (fields[0].to_string(), fields[1].to_string());
    assert_eq!(fields[2], "a");

    // Stops the agent and every service process, then writes the pid file given.
    let stop_all = |lab: &mut Lab, pid_file_text: &str| {
        lab.terminate(a);
        for (p, _) in processes_under(&lab.dir, true) {
            kill_group(p);
        }
        wait_for("the service to be gone", || {
            processes_under(&lab.dir, true).is_empty().then_some(())
        });
        std::fs::write(&pid_file, pid_file_text).expect("pid file");
    };
    let check = |lab: &mut Lab, case: &str, not: &str| {
        lab.start(a);
        let st = lab.status(a);
        let now = st.services[0].pid.expect("a pid").to_string();
        assert_ne!(now, not, "{case}: adopted");
        assert_ne!(now, pid, "{case}");
        assert_eq!(st.services[0].health, Health::Healthy, "{case}");
        assert_eq!(
            ask(port, "PING").as_deref(),
            Some("PONG 1.0.0 primary"),
            "{case}"
        );
    };

    // The process the file names is gone.
    stop_all(&mut lab, &recorded);
    check(&mut lab, "a dead pid", &pid);

    // The file's pid is another process's now (its start time differs).
    let mut other = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");
    let other_pid = other.id().to_string();
    stop_all(&mut lab, &format!("{other_pid} {start} a\n"));
    check(&mut lab, "a reused pid", &other_pid);
    assert!(
        matches!(other.try_wait(), Ok(None)),
        "the other process was stopped"
    );
    let _ = other.kill();
    let _ = other.wait();
}
