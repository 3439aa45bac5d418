//! The `ssh` driver: carries steps out on appliances over SSH, with the system's OpenSSH client
//! (the `openssh` crate: one multiplexed master connection per node and step). Everything it
//! runs is profile data (`ferry_model::ssh`): a step template's `ssh` table says which commands
//! run on the step's node, what to verify after them and what to poll for; the profile's
//! `[ssh]` section declares the probes that read a node's state and the output that means a
//! command failed. The driver knows no product.
//!
//! - **Steps with an `ssh` table** run as a task each, concurrently, on a tokio runtime the
//!   driver owns (the executor is synchronous; `wait` receives ends from a channel with the
//!   executor's deadline). A task connects to its node (the site's `address`, e.g.
//!   `admin@10.1.1.10` or `ssh://admin@127.0.0.1:2222`, else the node's name with `--ssh-user`),
//!   runs the commands one after another (each bounded by the step's `timeout_minutes` or the
//!   driver's command timeout; the answers of `input` written to its standard input), polls
//!   its `wait`s, then checks its `verify` tests. A command that exits non-zero, or prints
//!   output matching the profile's `fail_on`, fails the step; so does a lost connection, unless
//!   the command `reboots` the node. Polls of a `wait` that cannot reach a node (it is
//!   rebooting) are retried until the wait holds, or until its bound: the gate's timeout (the
//!   executor cancels the gate) or, for other steps, the step's `timeout_minutes`.
//! - **Pause steps** end done at once: the executor starts them only once approved.
//! - **Steps without an `ssh` table** are the operator's (work the appliance's CLI cannot do:
//!   GUI tasks, backups, announcements). Their card is printed and they end with the operator's
//!   answer in the journal (`ferry step done|failed|skip STEP --run N`), which may be given
//!   ahead of time. A gate without an `ssh` table is answered the same way.
//!
//! Host keys are checked strictly by default (`StrictHostKeyChecking=yes` against the
//! known-hosts file): an unknown or changed key refuses the connection before any command
//! runs. `accept_new` relaxes this to accept-new (a key never seen is added; a changed key is
//! still refused).
//!
//! **Idempotency** per (run, step ID): the journal's driver log `ssh/run-N` records every ssh
//! step of run N whose work ended, with its outcome, before `wait` reports the end (one entry
//! per end; a journal of an older ferry has them all in the driver state `ssh`, still read). Starting a step recorded
//! done applies nothing (its end is reported by the next `wait`); a step recorded failed is
//! begun anew (a retry). After a crash, `inspect` answers from that record; a step with
//! commands and no record was interrupted mid-command (or ended unrecorded): when its `verify`
//! tests hold on the node it took effect (`Ended(Done)`), otherwise it did not (`NotStarted`,
//! started again). A step with commands but no `verify` cannot be judged and is reported failed,
//! for the operator to look at. Steps with `skip_when_verified` check `verify` before running
//! anything, so a retried switch that had taken effect is not switched back.

use crate::driver::{system_now, Driver, DriverError, Inspection, Outcome};
use crate::journal::{Journal, RunId};
use ferry_model::ssh::{parse_template, Pick, Piece, ProbeTest, ProbeWait, SshSpec, StepSsh};
use ferry_model::{FactValue, PlannedStep, Profile, Site, StepKind};
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Key of the ssh driver's record of every run in the driver state of a journal written before
/// records were kept per run (read, never written).
pub const SSH_STATE: &str = "ssh";

/// Key of the ssh driver's log of run `run` (its ended steps) in the journal's driver log.
pub fn ssh_log_key(run: RunId) -> String {
    format!("{SSH_STATE}/run-{run}")
}

/// One entry of a run's log: a step's work ended, or (`None`) its earlier end is forgotten
/// because it is begun anew.
#[derive(serde::Serialize, serde::Deserialize)]
struct Logged {
    step: String,
    outcome: Option<Outcome>,
}

/// How the driver connects and how long it waits.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The login user for nodes whose address names none.
    pub user: Option<String>,
    /// The private key to log in with (`ssh -i`, and only that key).
    pub identity: Option<PathBuf>,
    /// The known-hosts file host keys are checked against (default: OpenSSH's own).
    pub known_hosts: Option<PathBuf>,
    /// Accept the key of a host never seen (and add it); a changed key is still refused.
    pub accept_new: bool,
    pub connect_timeout: Duration,
    /// Bound on one command when the step's `ssh` table gives none.
    pub command_timeout: Duration,
    /// Replaces every wait's `every_seconds` (tests and impatient demos).
    pub poll_every: Option<Duration>,
    /// Where OpenSSH's control sockets go (default: the system's temp directory).
    pub control_dir: Option<PathBuf>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            user: None,
            identity: None,
            known_hosts: None,
            accept_new: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(600),
            poll_every: None,
            control_dir: None,
        }
    }
}

/// What a journal of an older ferry keeps: the outcome of every ssh step whose work ended, by
/// `run/step`.
type Record = BTreeMap<String, Outcome>;

/// A node as the templates see it.
#[derive(Debug, Clone)]
struct NodeCtx {
    name: String,
    cluster: String,
    role: String,
    version: String,
    target: String,
    facts: ferry_model::Facts,
    cluster_facts: ferry_model::Facts,
    dest: String,
}

/// A profile's probes and failure patterns, compiled.
struct Compiled {
    spec: SshSpec,
    fail_on: Vec<Regex>,
    probes: HashMap<String, CompiledProbe>,
}

enum CompiledProbe {
    One(Regex, Pick),
    Table {
        after: Regex,
        key: Regex,
        value: Regex,
    },
}

/// Everything a task needs to carry one ssh step out.
struct Job {
    id: String,
    ssh: StepSsh,
    gate: bool,
    node: NodeCtx,
    cluster: Vec<NodeCtx>,
    compiled: Arc<Compiled>,
    opts: Arc<SshOptions>,
}

/// How a step is carried out.
enum Work {
    Pause,
    Operator,
    Ssh(Box<Job>),
}

pub struct SshDriver<'j> {
    journal: &'j Journal,
    site: Site,
    profiles: BTreeMap<String, Profile>,
    compiled: HashMap<String, Arc<Compiled>>,
    opts: Arc<SshOptions>,
    rt: tokio::runtime::Runtime,
    tx: mpsc::Sender<(RunId, String, Outcome)>,
    rx: mpsc::Receiver<(RunId, String, Outcome)>,
    running: HashMap<String, tokio::task::JoinHandle<()>>,
    operator: BTreeSet<String>,
    to_report: VecDeque<(String, Outcome)>,
    /// Per run, read from the journal when first needed: the outcome of every step whose work
    /// ended, by step ID.
    records: HashMap<RunId, BTreeMap<String, Outcome>>,
    /// The record of every run in a journal of an older ferry.
    legacy: Record,
    out: Box<dyn Write + 'j>,
}

impl<'j> SshDriver<'j> {
    /// A driver for the nodes of `site`, carrying steps out as `profiles` say; operator steps'
    /// cards go to `out`.
    pub fn new(
        journal: &'j Journal,
        site: Site,
        profiles: BTreeMap<String, Profile>,
        opts: SshOptions,
        out: Box<dyn Write + 'j>,
    ) -> Result<SshDriver<'j>, DriverError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("ferry-ssh")
            .build()?;
        let legacy = match journal.driver_state(SSH_STATE)? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                DriverError::Other(format!("the ssh driver's record cannot be read: {e}"))
            })?,
            None => Record::new(),
        };
        let (tx, rx) = mpsc::channel();
        Ok(SshDriver {
            journal,
            site,
            profiles,
            compiled: HashMap::new(),
            opts: Arc::new(opts),
            rt,
            tx,
            rx,
            running: HashMap::new(),
            operator: BTreeSet::new(),
            to_report: VecDeque::new(),
            records: HashMap::new(),
            legacy,
            out,
        })
    }

    /// The record of `run`: the older ferry's entries of it, then its own log.
    fn record(&mut self, run: RunId) -> Result<&mut BTreeMap<String, Outcome>, DriverError> {
        if !self.records.contains_key(&run) {
            let prefix = format!("{run}/");
            let mut record: BTreeMap<String, Outcome> = self
                .legacy
                .iter()
                .filter_map(|(k, o)| {
                    k.strip_prefix(&prefix)
                        .map(|id| (id.to_string(), o.clone()))
                })
                .collect();
            for (_, entry) in self.journal.driver_log(&ssh_log_key(run))? {
                let l: Logged = serde_json::from_str(&entry).map_err(|e| {
                    DriverError::Other(format!("the ssh driver's record cannot be read: {e}"))
                })?;
                match l.outcome {
                    Some(o) => record.insert(l.step, o),
                    None => record.remove(&l.step),
                };
            }
            self.records.insert(run, record);
        }
        Ok(self.records.get_mut(&run).expect("just read"))
    }

    /// How step `id` of `run` ended, as recorded.
    fn recorded(&mut self, run: RunId, id: &str) -> Result<Option<Outcome>, DriverError> {
        Ok(self.record(run)?.get(id).cloned())
    }

    /// Records how step `id` of `run` ended (`None`: forgets it), in one durable commit.
    fn save(&mut self, run: RunId, id: &str, o: Option<&Outcome>) -> Result<(), DriverError> {
        let entry = serde_json::to_string(&Logged {
            step: id.to_string(),
            outcome: o.cloned(),
        })
        .map_err(|e| DriverError::Other(format!("cannot save the ssh record: {e}")))?;
        self.journal.append_driver_log(&ssh_log_key(run), &entry)?;
        let record = self.record(run)?;
        match o {
            Some(o) => record.insert(id.to_string(), o.clone()),
            None => record.remove(id),
        };
        Ok(())
    }

    fn compiled(&mut self, profile: &str) -> Result<Arc<Compiled>, String> {
        if let Some(c) = self.compiled.get(profile) {
            return Ok(c.clone());
        }
        let p = self
            .profiles
            .get(profile)
            .ok_or_else(|| format!("profile `{profile}` is not loaded"))?;
        let c = Arc::new(compile(&p.ssh)?);
        self.compiled.insert(profile.to_string(), c.clone());
        Ok(c)
    }

    /// How `step` is carried out; an error is a step that cannot be (it fails).
    fn work(&mut self, step: &PlannedStep) -> Result<Work, String> {
        let cluster = self
            .site
            .clusters
            .iter()
            .find(|c| c.name == step.cluster)
            .ok_or_else(|| format!("cluster `{}` is not in the site", step.cluster))?
            .clone();
        let profile = self
            .profiles
            .get(&cluster.profile)
            .ok_or_else(|| format!("profile `{}` is not loaded", cluster.profile))?;
        let proc = if step.rollback {
            &profile.rollback
        } else {
            &profile.procedure
        };
        let template = proc.steps.iter().find(|t| t.id == step.action);
        let ssh = match template.and_then(|t| t.ssh.clone()) {
            Some(s) => s,
            None if step.kind == StepKind::Pause => return Ok(Work::Pause),
            None => return Ok(Work::Operator),
        };
        let compiled = self.compiled(&cluster.profile)?;
        let ctx = |n: &ferry_model::Node, target: Option<&str>| NodeCtx {
            name: n.name.clone(),
            cluster: cluster.name.clone(),
            role: n.role.clone(),
            version: n.version.to_string(),
            target: target.map_or_else(|| n.target.to_string(), str::to_string),
            facts: n.facts.clone(),
            cluster_facts: cluster.facts.clone(),
            dest: destination(n),
        };
        let all: Vec<NodeCtx> = cluster.nodes.iter().map(|n| ctx(n, None)).collect();
        let node = match &step.node {
            Some(name) => {
                let n = cluster
                    .node(name)
                    .ok_or_else(|| format!("node `{name}` is not in cluster `{}`", cluster.name))?;
                ctx(n, step.version.as_deref())
            }
            None => match cluster.nodes.iter().find(|n| ssh.on.contains(&n.role)) {
                Some(n) => ctx(n, None),
                // A cluster-wide step that only waits on nodes of some roles.
                None if ssh.commands.is_empty() && ssh.verify.is_empty() => NodeCtx {
                    name: String::new(),
                    cluster: cluster.name.clone(),
                    role: String::new(),
                    version: String::new(),
                    target: cluster.target.to_string(),
                    facts: Default::default(),
                    cluster_facts: cluster.facts.clone(),
                    dest: String::new(),
                },
                None => {
                    return Err(format!(
                    "no node of the roles {} in cluster `{}` to run this step's ssh commands on",
                    ssh.on.join(", "),
                    cluster.name
                ))
                }
            },
        };
        Ok(Work::Ssh(Box::new(Job {
            id: step.id.clone(),
            gate: step.kind == StepKind::Gate,
            ssh,
            node,
            cluster: all,
            compiled,
            opts: self.opts.clone(),
        })))
    }

    fn launch(&mut self, run: RunId, job: Job) {
        let tx = self.tx.clone();
        let id = job.id.clone();
        let handle = self.rt.spawn(async move {
            let o = match carry_out(&job).await {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Failed(e),
            };
            let _ = tx.send((run, job.id.clone(), o));
        });
        self.running.insert(id, handle);
    }

    fn card(&mut self, run: RunId, step: &PlannedStep, note: &str) -> std::io::Result<()> {
        let o = &mut self.out;
        writeln!(o)?;
        writeln!(o, "── {} (run {run}){note}", step.id)?;
        writeln!(
            o,
            "node:    {}",
            step.node.as_deref().unwrap_or("(whole cluster)")
        )?;
        writeln!(o, "title:   {}", step.title)?;
        writeln!(
            o,
            "ssh:     the profile gives this step no ssh commands: it is the operator's"
        )?;
        if !step.instructions.trim().is_empty() {
            writeln!(o, "do:")?;
            for l in step.instructions.trim().lines() {
                writeln!(o, "  {l}")?;
            }
        }
        if !step.verify.trim().is_empty() {
            writeln!(o, "verify:")?;
            for l in step.verify.trim().lines() {
                writeln!(o, "  {l}")?;
            }
        }
        writeln!(
            o,
            "answer:  ferry step done|failed|skip {} --run {run}",
            step.id
        )?;
        o.flush()
    }

    /// An operator's answer in the journal for an operator step under way.
    fn answered(&mut self, run: RunId) -> Result<Option<(String, Outcome)>, DriverError> {
        if self.operator.is_empty() {
            return Ok(None);
        }
        let answers = self.journal.answers(run)?;
        let found = self
            .operator
            .iter()
            .find_map(|id| answers.get(id).map(|a| (id.clone(), a.clone())));
        Ok(found.map(|(id, a)| {
            self.operator.remove(&id);
            (id, crate::manual::outcome_of(a))
        }))
    }
}

impl Driver for SshDriver<'_> {
    fn now(&self) -> i64 {
        system_now()
    }

    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        let id = step.id.clone();
        if self.running.contains_key(&id) || self.operator.contains(&id) {
            return Ok(());
        }
        match self.recorded(run, &id)? {
            Some(o @ (Outcome::Done | Outcome::Skipped)) => {
                self.to_report.push_back((id, o));
                return Ok(());
            }
            // A retry: begun anew below, its old end forgotten (so that `inspect` after a
            // crash asks the node rather than reporting the earlier failure).
            Some(Outcome::Failed(_)) => self.save(run, &id, None)?,
            None => {}
        }
        match self.work(step) {
            Err(e) => self.to_report.push_back((id, Outcome::Failed(e))),
            Ok(Work::Pause) => self.to_report.push_back((id, Outcome::Done)),
            Ok(Work::Operator) => {
                self.operator.insert(id);
                self.card(run, step, "")?;
            }
            Ok(Work::Ssh(job)) => self.launch(run, *job),
        }
        Ok(())
    }

    fn wait(
        &mut self,
        run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        loop {
            if let Some(e) = self.to_report.pop_front() {
                return Ok(Some(e));
            }
            if let Some(found) = self.answered(run)? {
                return Ok(Some(found));
            }
            if self.running.is_empty() && self.operator.is_empty() {
                return match deadline {
                    Some(d) => {
                        // Nothing under way (the run waits for its window): sleep to the deadline.
                        crate::manual::sleep_until(&system_now, d);
                        Ok(None)
                    }
                    None => Err(DriverError::Other(
                        "the ssh driver has no step under way to wait for".into(),
                    )),
                };
            }
            let now = system_now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let mut tick = Duration::from_millis(if self.operator.is_empty() { 1000 } else { 200 });
            if let Some(d) = deadline {
                tick = tick.min(Duration::from_secs((d - now).max(1) as u64));
            }
            match self.rx.recv_timeout(tick) {
                Ok((r, id, o)) => {
                    self.running.remove(&id);
                    if r != run {
                        continue;
                    }
                    // Saved before the executor records the end.
                    self.save(run, &id, Some(&o))?;
                    return Ok(Some((id, o)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(DriverError::Other("the ssh driver's tasks stopped".into()))
                }
            }
        }
    }

    fn cancel(&mut self, _run: RunId, step_id: &str) -> Result<(), DriverError> {
        if let Some(h) = self.running.remove(step_id) {
            h.abort();
        }
        if self.operator.remove(step_id) {
            writeln!(
                self.out,
                "no longer waiting for {step_id}: it passed its timeout"
            )?;
        }
        Ok(())
    }

    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        if let Some(o) = self.recorded(run, &step.id)? {
            return Ok(Inspection::Ended(o));
        }
        match self.work(step) {
            // Nothing of it can have run: it fails again when started.
            Err(_) | Ok(Work::Pause) => Ok(Inspection::NotStarted),
            Ok(Work::Operator) => {
                if let Some(a) = self.journal.answer_for(run, &step.id)? {
                    return Ok(Inspection::Ended(crate::manual::outcome_of(a)));
                }
                self.operator.insert(step.id.clone());
                self.card(
                    run,
                    step,
                    " — shown before the interruption, not answered yet",
                )?;
                Ok(Inspection::Running)
            }
            // Only checks and polls: running them again changes nothing.
            Ok(Work::Ssh(job)) if job.ssh.commands.is_empty() => Ok(Inspection::NotStarted),
            Ok(Work::Ssh(job)) if job.ssh.verify.is_empty() => {
                let o = Outcome::Failed(format!(
                    "interrupted while its commands ran, and the profile gives no `verify` test to tell whether it took effect on {}: check the node, then `ferry resume` to run it again",
                    job.node.name
                ));
                Ok(Inspection::Ended(o))
            }
            Ok(Work::Ssh(job)) => {
                let verdict = self.rt.block_on(async {
                    let mut conns = Conns::new(&job.opts);
                    verified(&job, &mut conns).await
                });
                match verdict {
                    Ok(None) => {
                        let o = Outcome::Done;
                        self.save(run, &step.id, Some(&o))?;
                        Ok(Inspection::Ended(o))
                    }
                    Ok(Some(_)) => Ok(Inspection::NotStarted),
                    Err(e) => Err(DriverError::Other(format!(
                        "cannot tell whether {} took effect: {e}",
                        step.id
                    ))),
                }
            }
        }
    }
}

impl Drop for SshDriver<'_> {
    fn drop(&mut self) {
        for (_, h) in self.running.drain() {
            h.abort();
        }
    }
}

/// Where a node is reached: its address, else its name.
fn destination(n: &ferry_model::Node) -> String {
    n.address.clone().unwrap_or_else(|| n.name.clone())
}

fn compile(spec: &SshSpec) -> Result<Compiled, String> {
    let re = |s: &str| Regex::new(s).map_err(|e| format!("bad regex `{s}`: {e}"));
    let fail_on = spec
        .fail_on
        .iter()
        .map(|s| re(s))
        .collect::<Result<_, _>>()?;
    let mut probes = HashMap::new();
    for p in &spec.probes {
        let c = match (&p.regex, &p.table) {
            (Some(r), _) => CompiledProbe::One(re(r)?, p.pick),
            (None, Some(t)) => CompiledProbe::Table {
                after: re(&t.after)?,
                key: re(&t.key)?,
                value: re(&t.value)?,
            },
            (None, None) => return Err(format!("probe `{}` has no regex or table", p.name)),
        };
        probes.insert(p.name.clone(), c);
    }
    Ok(Compiled {
        spec: spec.clone(),
        fail_on,
        probes,
    })
}

// ------------------------------------------------------------------------------------------
// Connections and commands
// ------------------------------------------------------------------------------------------

/// The sessions of one task, one per node, opened when first needed.
struct Conns<'o> {
    opts: &'o SshOptions,
    open: HashMap<String, Session>,
}

/// Why a command did not give output.
enum RunError {
    /// The connection went away while it ran (a reboot, or a lost network).
    Lost(String),
    Other(String),
}

impl<'o> Conns<'o> {
    fn new(opts: &'o SshOptions) -> Self {
        Conns {
            opts,
            open: HashMap::new(),
        }
    }

    async fn session(&mut self, dest: &str) -> Result<&Session, String> {
        if !self.open.contains_key(dest) {
            let s = connect(self.opts, dest).await?;
            self.open.insert(dest.to_string(), s);
        }
        self.open
            .get(dest)
            .ok_or_else(|| format!("no session to {dest}"))
    }

    /// Closes the session to `dest` (after a reboot or an error: the next use reconnects).
    async fn forget(&mut self, dest: &str) {
        if let Some(s) = self.open.remove(dest) {
            let _ = s.close().await;
        }
    }

    async fn close(mut self) {
        for (_, s) in self.open.drain() {
            let _ = s.close().await;
        }
    }

    /// Runs `cmd` on `node` with `input` on its standard input; its output (stdout, then
    /// stderr) when it exits 0 and prints nothing `fail_on` matches.
    async fn run(
        &mut self,
        node: &NodeCtx,
        cmd: &str,
        input: &[String],
        timeout: Duration,
        fail_on: &[Regex],
    ) -> Result<String, RunError> {
        let session = self.session(&node.dest).await.map_err(RunError::Other)?;
        let mut c = session.raw_command(cmd);
        c.stdin(if input.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let work = async {
            let mut child = c.spawn().await?;
            if let Some(mut stdin) = child.stdin().take() {
                let mut text = input.join("\n");
                text.push('\n');
                // A command that exits before reading every answer closes its input: what it
                // printed says why.
                let _ = stdin.write_all(text.as_bytes()).await;
                let _ = stdin.shutdown().await;
            }
            child.wait_with_output().await
        };
        let output = match tokio::time::timeout(timeout, work).await {
            Err(_) => {
                self.forget(&node.dest).await;
                return Err(RunError::Other(format!(
                    "`{cmd}` on {} did not end within {} s",
                    node.name,
                    timeout.as_secs()
                )));
            }
            Ok(Err(
                e @ (openssh::Error::Disconnected | openssh::Error::RemoteProcessTerminated),
            )) => {
                self.forget(&node.dest).await;
                return Err(RunError::Lost(format!("`{cmd}` on {}: {e}", node.name)));
            }
            Ok(Err(e)) => {
                self.forget(&node.dest).await;
                return Err(RunError::Other(format!(
                    "`{cmd}` on {}: {}",
                    node.name,
                    error_text(&e)
                )));
            }
            Ok(Ok(o)) => o,
        };
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let all = format!("{text}\n{stderr}");
        if !output.status.success() {
            let status = output
                .status
                .code()
                .map_or("a signal".to_string(), |c| format!("status {c}"));
            if output.status.code() == Some(255) {
                self.forget(&node.dest).await;
                return Err(RunError::Lost(format!(
                    "`{cmd}` on {}: the connection ended ({status}): {}",
                    node.name,
                    tail(&all)
                )));
            }
            return Err(RunError::Other(format!(
                "`{cmd}` on {} exited with {status}: {}",
                node.name,
                tail(&all)
            )));
        }
        if fail_on.iter().any(|r| r.is_match(&all)) {
            return Err(RunError::Other(format!(
                "`{cmd}` on {} failed: {}",
                node.name,
                tail(&all)
            )));
        }
        if !stderr.trim().is_empty() {
            text.push('\n');
            text.push_str(&stderr);
        }
        Ok(text)
    }
}

async fn connect(opts: &SshOptions, dest: &str) -> Result<Session, String> {
    let mut b = SessionBuilder::default();
    b.known_hosts_check(if opts.accept_new {
        KnownHosts::Add
    } else {
        KnownHosts::Strict
    })
    .connect_timeout(opts.connect_timeout)
    .server_alive_interval(Duration::from_secs(15))
    .control_directory(opts.control_dir.clone().unwrap_or_else(std::env::temp_dir));
    if let Some(u) = &opts.user {
        b.user(u.clone());
    }
    if let Some(k) = &opts.identity {
        b.keyfile(k);
    }
    if let Some(f) = &opts.known_hosts {
        b.user_known_hosts_file(f);
    }
    b.connect(dest)
        .await
        .map_err(|e| format!("cannot connect to {dest}: {}", error_text(&e)))
}

/// An error with its causes (OpenSSH's own message is in the source).
fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(t.trim());
        }
        cur = c.source();
    }
    s
}

/// The last few lines of some output, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let from = lines.len().saturating_sub(3);
    let t = lines[from..].join(" / ");
    if t.is_empty() {
        "(no output)".into()
    } else {
        t
    }
}

// ------------------------------------------------------------------------------------------
// Templates and probes
// ------------------------------------------------------------------------------------------

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn fact_text(node: &NodeCtx, name: &str) -> Result<String, String> {
    let v = node
        .facts
        .get(name)
        .or_else(|| node.cluster_facts.get(name))
        .ok_or_else(|| {
            format!(
                "fact `{name}` is not set on node {} or its cluster {}",
                node.name, node.cluster
            )
        })?;
    Ok(match v {
        FactValue::String(s) => s.clone(),
        FactValue::Bool(b) => b.to_string(),
        FactValue::Int(n) => n.to_string(),
        FactValue::Float(x) => x.to_string(),
        FactValue::List(_) | FactValue::Table(_) => {
            return Err(format!(
                "fact `{name}` of {} is a list or table: it cannot go into a command",
                node.name
            ))
        }
    })
}

/// Fills a template in for `node`; `{probe.NAME}` runs that probe on it.
fn render<'a>(
    t: &'a str,
    node: &'a NodeCtx,
    job: &'a Job,
    conns: &'a mut Conns<'_>,
    depth: usize,
) -> Fut<'a, Result<String, String>> {
    Box::pin(async move {
        let pieces = parse_template(t).map_err(|e| format!("template `{t}`: {e}"))?;
        let mut s = String::new();
        for p in pieces {
            match p {
                Piece::Text(x) => s.push_str(&x),
                Piece::Node => s.push_str(&node.name),
                Piece::Cluster => s.push_str(&node.cluster),
                Piece::Role => s.push_str(&node.role),
                Piece::Version => s.push_str(&node.version),
                Piece::Target => s.push_str(&node.target),
                Piece::Fact(f) => s.push_str(&fact_text(node, &f)?),
                Piece::Env(e) => s.push_str(&std::env::var(&e).map_err(|_| {
                    format!(
                        "the environment variable {e} is not set (the profile uses it in `{t}`)"
                    )
                })?),
                Piece::Probe(name) => {
                    if depth > 8 {
                        return Err(format!("probes nested too deep in `{t}`"));
                    }
                    match probe(&name, node, job, conns, depth + 1).await? {
                        ProbeOut::One(v) => s.push_str(&v),
                        ProbeOut::Missing(why) => return Err(why),
                        ProbeOut::Table(_) => {
                            return Err(format!(
                                "probe `{name}` reads a table: it cannot go into `{t}`"
                            ))
                        }
                    }
                }
            }
        }
        Ok(s)
    })
}

enum ProbeOut {
    One(String),
    /// The probe ran and its regex found nothing (e.g. no inactive version): why.
    Missing(String),
    Table(Vec<(String, String)>),
}

/// Runs a probe on `node` and reads its output.
fn probe<'a>(
    name: &'a str,
    node: &'a NodeCtx,
    job: &'a Job,
    conns: &'a mut Conns<'_>,
    depth: usize,
) -> Fut<'a, Result<ProbeOut, String>> {
    Box::pin(async move {
        let p = job
            .compiled
            .spec
            .probe(name)
            .ok_or_else(|| format!("no probe `{name}` in the profile"))?;
        let compiled = job
            .compiled
            .probes
            .get(name)
            .ok_or_else(|| format!("no probe `{name}` in the profile"))?;
        let cmd = render(&p.command, node, job, conns, depth).await?;
        let timeout = step_timeout(job);
        let out = conns
            .run(node, &cmd, &[], timeout, &job.compiled.fail_on)
            .await
            .map_err(|e| match e {
                RunError::Lost(m) | RunError::Other(m) => m,
            })?;
        match compiled {
            CompiledProbe::One(re, pick) => {
                let mut values = re
                    .captures_iter(&out)
                    .filter_map(|c| c.name("value").map(|m| m.as_str().trim().to_string()));
                let v = match pick {
                    Pick::First => values.next(),
                    Pick::Last => values.last(),
                };
                Ok(v.map(ProbeOut::One).unwrap_or_else(|| {
                    ProbeOut::Missing(format!(
                        "probe `{name}` on {}: `{cmd}` printed nothing it reads ({})",
                        node.name,
                        tail(&out)
                    ))
                }))
            }
            CompiledProbe::Table { after, key, value } => {
                let mut rows = Vec::new();
                let mut lines = out.lines();
                if !lines.by_ref().any(|l| after.is_match(l)) {
                    return Err(format!(
                        "probe `{name}` on {}: `{cmd}` printed no table ({})",
                        node.name,
                        tail(&out)
                    ));
                }
                for l in lines {
                    if l.trim().is_empty() {
                        break;
                    }
                    let k = key.captures(l).and_then(|c| c.name("key"));
                    let v = value.captures(l).and_then(|c| c.name("value"));
                    if let (Some(k), Some(v)) = (k, v) {
                        rows.push((k.as_str().to_string(), v.as_str().trim().to_string()));
                    }
                }
                Ok(ProbeOut::Table(rows))
            }
        }
    })
}

/// The value of `out` for `node`: a one-value probe's value, or the node's row of a table.
async fn value_for(
    out: &ProbeOut,
    row: Option<&str>,
    probe: &str,
    node: &NodeCtx,
    job: &Job,
    conns: &mut Conns<'_>,
) -> Result<String, String> {
    match out {
        ProbeOut::One(v) => Ok(v.clone()),
        ProbeOut::Missing(_) => Ok(String::new()),
        ProbeOut::Table(rows) => {
            let key = render(row.unwrap_or("{node}"), node, job, conns, 0).await?;
            rows.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    format!(
                        "probe `{probe}` lists no row `{key}` (rows: {})",
                        rows.iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        }
    }
}

/// `None` when the test holds on the step's node, else what was found.
async fn test(t: &ProbeTest, job: &Job, conns: &mut Conns<'_>) -> Result<Option<String>, String> {
    let node = &job.node;
    let out = probe(&t.probe, node, job, conns, 0).await?;
    let got = value_for(&out, t.row.as_deref(), &t.probe, node, job, conns).await?;
    let want = render(&t.equals, node, job, conns, 0).await?;
    Ok((got.trim() != want.trim()).then(|| {
        format!(
            "probe `{}` on {} reads {}, not `{want}`",
            t.probe,
            node.name,
            shown(&got)
        )
    }))
}

/// `None` when every verify test holds, else the first that does not.
async fn verified(job: &Job, conns: &mut Conns<'_>) -> Result<Option<String>, String> {
    for t in &job.ssh.verify {
        if let Some(miss) = test(t, job, conns).await? {
            return Ok(Some(miss));
        }
    }
    Ok(None)
}

/// One poll of a wait: `None` when it holds, else why not (a value or an unreachable node).
async fn poll(w: &ProbeWait, job: &Job, conns: &mut Conns<'_>) -> Option<String> {
    let nodes: Vec<&NodeCtx> = if w.roles.is_empty() {
        vec![&job.node]
    } else {
        job.cluster
            .iter()
            .filter(|n| w.roles.contains(&n.role))
            .collect()
    };
    let from_out = if w.from.is_empty() {
        None
    } else {
        let Some(src) = job.cluster.iter().find(|n| w.from.contains(&n.role)) else {
            // No node of those roles (e.g. no IM&P cluster): nothing to wait for.
            return None;
        };
        match probe(&w.probe, src, job, conns, 0).await {
            Ok(o) => Some((src, o)),
            Err(e) => {
                conns.forget(&src.dest).await;
                return Some(e);
            }
        }
    };
    for n in nodes {
        let got = match &from_out {
            Some((_, out)) => value_for(out, w.row.as_deref(), &w.probe, n, job, conns).await,
            None => match probe(&w.probe, n, job, conns, 0).await {
                Ok(out) => value_for(&out, w.row.as_deref(), &w.probe, n, job, conns).await,
                Err(e) => {
                    conns.forget(&n.dest).await;
                    Err(e)
                }
            },
        };
        let want = match render(&w.equals, n, job, conns, 0).await {
            Ok(w) => w,
            Err(e) => return Some(e),
        };
        match got {
            Err(e) => return Some(e),
            Ok(v) if v.trim() != want.trim() => {
                let seen = match &from_out {
                    Some((src, _)) => format!(" (as {} sees it)", src.name),
                    None => String::new(),
                };
                return Some(format!(
                    "probe `{}` for {}{seen} reads {}, waiting for `{want}`",
                    w.probe,
                    n.name,
                    shown(&v)
                ));
            }
            Ok(_) => {}
        }
    }
    None
}

fn shown(v: &str) -> String {
    if v.trim().is_empty() {
        "nothing".into()
    } else {
        format!("`{}`", v.trim())
    }
}

fn step_timeout(job: &Job) -> Duration {
    job.ssh
        .timeout_minutes
        .map(|m| Duration::from_secs_f64(m * 60.0))
        .unwrap_or(job.opts.command_timeout)
}

/// Carries one ssh step out: commands, waits, verification.
async fn carry_out(job: &Job) -> Result<(), String> {
    let mut conns = Conns::new(&job.opts);
    let r = carry_out_with(job, &mut conns).await;
    conns.close().await;
    r
}

async fn carry_out_with(job: &Job, conns: &mut Conns<'_>) -> Result<(), String> {
    let timeout = step_timeout(job);
    if job.ssh.skip_when_verified && matches!(verified(job, conns).await, Ok(None)) {
        return Ok(());
    }
    for c in &job.ssh.commands {
        let cmd = render(&c.run, &job.node, job, conns, 0).await?;
        let mut input = Vec::new();
        for line in &c.input {
            input.push(render(line, &job.node, job, conns, 0).await?);
        }
        match conns
            .run(&job.node, &cmd, &input, timeout, &job.compiled.fail_on)
            .await
        {
            Ok(_) => {}
            Err(RunError::Lost(_)) if c.reboots => {}
            Err(RunError::Lost(m) | RunError::Other(m)) => return Err(m),
        }
    }
    if !job.ssh.wait.is_empty() {
        let every = job.opts.poll_every.unwrap_or_else(|| {
            let s = job
                .ssh
                .wait
                .iter()
                .filter_map(|w| w.every_seconds)
                .fold(f64::INFINITY, f64::min);
            Duration::from_secs_f64(if s.is_finite() { s } else { 30.0 })
        });
        // A gate's bound is its own timeout (the executor cancels it); other steps' is theirs.
        let bound = (!job.gate).then_some(timeout);
        let began = Instant::now();
        'polls: loop {
            let mut why = None;
            for w in &job.ssh.wait {
                if let Some(w) = poll(w, job, conns).await {
                    why = Some(w);
                    break;
                }
            }
            let Some(why) = why else {
                break 'polls;
            };
            if bound.is_some_and(|b| began.elapsed() >= b) {
                return Err(format!(
                    "still waiting after {} s: {why}",
                    began.elapsed().as_secs()
                ));
            }
            tokio::time::sleep(every).await;
        }
    }
    match verified(job, conns).await? {
        None => Ok(()),
        Some(miss) => Err(format!("verify: {miss}")),
    }
}
