//! Runs a service's process: the agent's own supervisor (start in a session of its own, output
//! to `logs/service.log`, restart with back-off when it dies, SIGTERM then SIGKILL to stop,
//! adoption after an agent restart through the pid file) or systemd through `systemctl`.
//!
//! A service outlives the agent: closing a supervisor (the agent's shutdown) stops watching and
//! leaves the process running; only `stop` and `restart` end it.

use crate::config::SupervisorKind;
use crate::slots::Layout;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How to start the service's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The slot it runs from (`a`, `b`), written to the pid file.
    pub slot: String,
}

enum Proc {
    Child(Child),
    /// A process started by an earlier agent (found through the pid file).
    Adopted {
        pid: i32,
        start_time: u64,
    },
}

impl Proc {
    fn pid(&self) -> i32 {
        match self {
            Proc::Child(c) => c.id() as i32,
            Proc::Adopted { pid, .. } => *pid,
        }
    }
    /// Whether it still runs (an exited child is reaped).
    fn alive(&mut self) -> bool {
        match self {
            Proc::Child(c) => matches!(c.try_wait(), Ok(None)),
            Proc::Adopted { pid, start_time } => alive(*pid, *start_time),
        }
    }
}

/// The start time of a process (field 22 of `/proc/PID/stat`), `None` when it is gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn alive(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Marks every descriptor above standard error close-on-exec (in the child, before `exec`).
fn close_inherited_on_exec() {
    // SAFETY: close_range(2) and fcntl(2) change descriptor flags only.
    unsafe {
        let flags = libc::CLOSE_RANGE_CLOEXEC as libc::c_long;
        if libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_long,
            libc::c_long::from(u32::MAX),
            flags,
        ) == 0
        {
            return;
        }
        // Kernels before 5.11: one descriptor at a time, up to a bound.
        for fd in 3..4096 {
            let f = libc::fcntl(fd, libc::F_GETFD);
            if f != -1 && f & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, f | libc::FD_CLOEXEC);
            }
        }
    }
}

fn signal_group(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory effects; a negative pid names the process group.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

struct State {
    /// What should run (`None`: stopped).
    desired: Option<Launch>,
    proc: Option<Proc>,
    started_at: Option<Instant>,
    /// Consecutive quick deaths, for the back-off.
    failures: u32,
    next_try: Option<Instant>,
    closing: bool,
}

struct Inner {
    service: String,
    kind: SupervisorKind,
    systemctl: String,
    layout: Layout,
    stop_timeout: Duration,
    state: Mutex<State>,
    wake: Condvar,
}

/// A service's supervisor. Cloning shares it.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// Back-off before the n-th restart in a row: 0.1 s doubling up to 10 s.
pub fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.saturating_sub(1).min(7));
    Duration::from_millis(ms.min(10_000))
}

impl Supervisor {
    pub fn new(
        service: &str,
        kind: SupervisorKind,
        systemctl: &str,
        layout: Layout,
        stop_timeout: Duration,
    ) -> Supervisor {
        let sup = Supervisor {
            inner: Arc::new(Inner {
                service: service.to_string(),
                kind,
                systemctl: systemctl.to_string(),
                layout,
                stop_timeout,
                state: Mutex::new(State {
                    desired: None,
                    proc: None,
                    started_at: None,
                    failures: 0,
                    next_try: None,
                    closing: false,
                }),
                wake: Condvar::new(),
            }),
        };
        if sup.inner.kind == SupervisorKind::Agent {
            let s = sup.clone();
            std::thread::Builder::new()
                .name(format!("supervise-{service}"))
                .spawn(move || s.watch())
                .ok();
        }
        sup
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn kind(&self) -> &SupervisorKind {
        &self.inner.kind
    }

    /// Takes over a process an earlier agent started, when the pid file names one that still
    /// runs from `slot`; one that runs from another slot is stopped. Returns whether it adopted.
    pub fn adopt(&self, launch: Option<&Launch>) -> bool {
        if self.inner.kind != SupervisorKind::Agent {
            return false;
        }
        let Some((pid, start, slot)) = self.read_pid_file() else {
            if self.inner.layout.pid_file().exists() {
                tracing::warn!(service = %self.inner.service, "the pid file cannot be read: not adopted");
                let _ = std::fs::remove_file(self.inner.layout.pid_file());
            }
            return false;
        };
        if !alive(pid, start) {
            tracing::warn!(service = %self.inner.service, pid, "the pid file's process is gone (or its pid is another process's now): not adopted");
            let _ = std::fs::remove_file(self.inner.layout.pid_file());
            return false;
        }
        match launch {
            Some(l) if l.slot == slot => {
                let mut st = self.lock();
                st.proc = Some(Proc::Adopted {
                    pid,
                    start_time: start,
                });
                st.desired = Some(l.clone());
                st.started_at = Some(Instant::now());
                tracing::info!(service = %self.inner.service, pid, slot = %slot, "adopted the running service");
                true
            }
            _ => {
                tracing::info!(service = %self.inner.service, pid, slot = %slot, "stopping a process left by an earlier agent");
                let mut p = Proc::Adopted {
                    pid,
                    start_time: start,
                };
                self.terminate(&mut p);
                let _ = std::fs::remove_file(self.inner.layout.pid_file());
                false
            }
        }
    }

    fn read_pid_file(&self) -> Option<(i32, u64, String)> {
        let text = std::fs::read_to_string(self.inner.layout.pid_file()).ok()?;
        let mut it = text.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start = it.next()?.parse().ok()?;
        let slot = it.next().unwrap_or("").to_string();
        Some((pid, start, slot))
    }

    /// Starts the service (it is then kept running until `stop`).
    pub fn start(&self, launch: Launch) -> Result<(), String> {
        match &self.inner.kind {
            SupervisorKind::Agent => {
                let mut st = self.lock();
                st.desired = Some(launch.clone());
                st.failures = 0;
                st.next_try = None;
                if st.proc.as_mut().is_some_and(|p| p.alive()) {
                    return Ok(());
                }
                let r = self.spawn(&mut st, &launch);
                if r.is_err() {
                    st.failures = 1;
                    st.next_try = Some(Instant::now() + backoff(1));
                }
                self.inner.wake.notify_all();
                r
            }
            SupervisorKind::Systemd { unit } => {
                self.write_env(&launch)?;
                self.systemctl(&["start", unit])
            }
        }
    }

    fn write_env(&self, launch: &Launch) -> Result<(), String> {
        let mut text = String::new();
        for (k, v) in &launch.env {
            text.push_str(&format!("{k}={}\n", v.replace('\n', " ")));
        }
        let path = self.inner.layout.env_file();
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn systemctl(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new(&self.inner.systemctl)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.inner.systemctl))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {}: {}",
                self.inner.systemctl,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn spawn(&self, st: &mut State, launch: &Launch) -> Result<(), String> {
        let (prog, args) = launch
            .argv
            .split_first()
            .ok_or_else(|| "an empty command line".to_string())?;
        let log_path = self.inner.layout.log_file();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let mut command = Command::new(prog);
        command
            .args(args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // A session of its own (and so a process group whose id is its pid): no signal sent to
        // the agent, its process group or its terminal reaches the service, which outlives it.
        // Descriptors the agent inherited without close-on-exec (a pipe of whatever started
        // it) are not passed on: the service holds nothing of the agent's.
        // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
        // (setsid, close_range, fcntl) and touches no memory.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                close_inherited_on_exec();
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {prog}: {e}"))?;
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap_or(0);
        self.write_pid_file(pid, start, &launch.slot);
        tracing::info!(service = %self.inner.service, pid, slot = %launch.slot, "started");
        st.proc = Some(Proc::Child(child));
        st.started_at = Some(Instant::now());
        Ok(())
    }

    /// Writes `PID STARTTIME SLOT` to a new file renamed over the pid file, so that an agent
    /// killed in the middle leaves the old file or the new one, never half of one.
    fn write_pid_file(&self, pid: i32, start: u64, slot: &str) {
        let path = self.inner.layout.pid_file();
        let tmp = self.inner.layout.pid_file_new();
        let written = std::fs::write(&tmp, format!("{pid} {start} {slot}\n"))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::error!(service = %self.inner.service, pid, error = %e, "cannot write {}: a restarted agent will not adopt the service", path.display());
        }
    }

    /// Stops the service: SIGTERM to its process group, SIGKILL after the stop timeout.
    pub fn stop(&self) -> Result<(), String> {
        match &self.inner.kind {
            SupervisorKind::Agent => {
                let proc = {
                    let mut st = self.lock();
                    st.desired = None;
                    st.started_at = None;
                    st.proc.take()
                };
                if let Some(mut p) = proc {
                    self.terminate(&mut p);
                }
                let _ = std::fs::remove_file(self.inner.layout.pid_file());
                Ok(())
            }
            SupervisorKind::Systemd { unit } => self.systemctl(&["stop", unit]),
        }
    }

    fn terminate(&self, p: &mut Proc) {
        let pid = p.pid();
        signal_group(pid, libc::SIGTERM);
        let deadline = Instant::now() + self.inner.stop_timeout;
        let mut pause = Duration::from_micros(200);
        while p.alive() {
            if Instant::now() >= deadline {
                tracing::warn!(service = %self.inner.service, pid, "did not stop on SIGTERM: killing it");
                signal_group(pid, libc::SIGKILL);
                if let Proc::Child(c) = p {
                    let _ = c.wait();
                }
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        // Whatever else of its group is left.
        signal_group(pid, libc::SIGKILL);
    }

    /// Stops and starts again.
    pub fn restart(&self, launch: Launch) -> Result<(), String> {
        match &self.inner.kind {
            SupervisorKind::Agent => {
                self.stop()?;
                self.start(launch)
            }
            SupervisorKind::Systemd { unit } => {
                self.write_env(&launch)?;
                self.systemctl(&["restart", unit])
            }
        }
    }

    /// Whether the process runs, and since when (agent supervisor).
    pub fn running(&self) -> bool {
        match &self.inner.kind {
            SupervisorKind::Agent => {
                let mut st = self.lock();
                st.proc.as_mut().is_some_and(|p| p.alive())
            }
            SupervisorKind::Systemd { unit } => {
                self.systemctl(&["is-active", "--quiet", unit]).is_ok()
            }
        }
    }

    /// Whether the service should run (it was started and not stopped).
    pub fn wanted(&self) -> bool {
        match &self.inner.kind {
            SupervisorKind::Agent => self.lock().desired.is_some(),
            SupervisorKind::Systemd { .. } => self.running(),
        }
    }

    /// How long ago the process was (re)started.
    pub fn uptime(&self) -> Option<Duration> {
        self.lock().started_at.map(|t| t.elapsed())
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.inner.kind {
            SupervisorKind::Agent => {
                let mut st = self.lock();
                let p = st.proc.as_mut()?;
                p.alive().then(|| p.pid() as u32)
            }
            SupervisorKind::Systemd { unit } => {
                let out = Command::new(&self.inner.systemctl)
                    .args(["show", "--property=MainPID", "--value", unit])
                    .stdin(Stdio::null())
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p > 0)
            }
        }
    }

    /// Stops watching; the service runs on (the next agent adopts it).
    pub fn close(&self) {
        self.lock().closing = true;
        self.inner.wake.notify_all();
    }

    /// The agent supervisor's loop: restarts a service that died, with back-off.
    fn watch(&self) {
        let mut st = self.lock();
        loop {
            if st.closing {
                return;
            }
            let now = Instant::now();
            let died = match st.proc.as_mut() {
                Some(p) => !p.alive(),
                None => false,
            };
            if died {
                let ran = st.started_at.map(|t| t.elapsed()).unwrap_or_default();
                let status = match st.proc.take() {
                    Some(Proc::Child(mut c)) => c
                        .try_wait()
                        .ok()
                        .flatten()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "gone".into()),
                    _ => "gone".into(),
                };
                st.started_at = None;
                if st.desired.is_some() {
                    st.failures = if ran >= Duration::from_secs(10) {
                        1
                    } else {
                        st.failures + 1
                    };
                    let wait = backoff(st.failures);
                    tracing::warn!(service = %self.inner.service, %status, restart_in_ms = wait.as_millis() as u64, "the service exited");
                    st.next_try = Some(now + wait);
                }
            }
            if st.proc.is_none() {
                if let (Some(launch), Some(at)) = (st.desired.clone(), st.next_try) {
                    if now >= at {
                        if let Err(e) = self.spawn(&mut st, &launch) {
                            st.failures += 1;
                            let wait = backoff(st.failures);
                            tracing::warn!(service = %self.inner.service, error = %e, "cannot restart");
                            st.next_try = Some(now + wait);
                        } else {
                            st.next_try = None;
                        }
                    }
                }
            }
            let (g, _) = self
                .inner
                .wake
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner());
            st = g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoffs() {
        let got: Vec<u64> = (1..=10).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            got,
            vec![100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
    }

    /// Adoption through the pid file (issue 15, part 4): only the process it names, alive with
    /// the start time it records; and closing the supervisor (the agent's shutdown) leaves an
    /// adopted process running.
    #[test]
    fn adopts_only_the_live_process_the_pid_file_names_and_leaves_it_running_on_close() {
        let dir = std::env::temp_dir().join(format!("ferry-adopt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let layout = Layout::new(&dir, "t");
        layout.ensure().expect("layout");
        let mut live = Command::new("sleep").arg("1000").spawn().expect("sleep");
        let pid = live.id() as i32;
        let start = start_time(pid).expect("its start time");
        let mut dead = Command::new("true").spawn().expect("true");
        let _ = dead.wait();
        let dead = dead.id() as i32;
        let launch = Launch {
            argv: vec!["unused".into()],
            env: vec![],
            cwd: dir.clone(),
            slot: "a".into(),
        };
        let check = |case: &str, pid_file: Option<String>, want: bool| {
            let sup = Supervisor::new(
                "t",
                SupervisorKind::Agent,
                "systemctl",
                layout.clone(),
                Duration::from_secs(5),
            );
            match &pid_file {
                Some(text) => std::fs::write(layout.pid_file(), text).expect("pid file"),
                None => {
                    let _ = std::fs::remove_file(layout.pid_file());
                }
            }
            let adopted = sup.adopt(Some(&launch));
            let got = (adopted, sup.pid(), layout.pid_file().exists());
            sup.close();
            let kept = want.then_some(pid as u32);
            assert_eq!(got, (want, kept, want), "{case}");
            assert!(
                start_time(pid) == Some(start),
                "{case}: the live process was stopped"
            );
        };
        check("no pid file", None, false);
        check("a garbled pid file", Some("not a pid\n".into()), false);
        check("a dead pid", Some(format!("{dead} {start} a\n")), false);
        check(
            "a pid another process has now",
            Some(format!("{pid} {} a\n", start + 1)),
            false,
        );
        check("the live process", Some(format!("{pid} {start} a\n")), true);
        let _ = live.kill();
        let _ = live.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id() as i32).is_some());
        assert!(start_time(i32::MAX).is_none());
    }
}
