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
//! - **Interactive CLIs** (the profile's `[ssh] prompt`): each task opens one interactive
//!   session per node (`ssh -S CONTROL -tt` through the master: a pty on the appliance), waits
//!   for the prompt, types each command and probe, and reads its output up to the next prompt.
//!   A command's questions are answered by its dialogue (`[[ssh.dialogue]]`), each once its
//!   prompt regex matches the end of what was printed since the last answer: optional prompts
//!   may come, a `choose` answer is the number of the listed line naming a fact's text, and the
//!   variant is chosen on the node's running version (the profile's `version_probe`). A
//!   question the dialogue does not expect (the `question` regex on the last line, the output
//!   quiet), a prompt not asked in time, or a missing success text fails the step, and the shell
//!   is closed: nothing is answered blindly. The values of the `{env.FERRY_*}` variables the
//!   profile reads are masked in every failure message (so in the journal and the output).
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

/// A profile's probes, failure patterns, shell and dialogues, compiled.
pub(crate) struct Compiled {
    spec: SshSpec,
    fail_on: Vec<Regex>,
    probes: HashMap<String, CompiledProbe>,
    /// The CLI is an interactive shell (`prompt` in `[ssh]`).
    shell: Option<ShellSpec>,
    dialogues: HashMap<String, CompiledDialogue>,
    /// The environment variables the profile's templates read (`{env.FERRY_*}`): their
    /// values are secrets, kept out of every message the driver gives.
    secrets: Vec<String>,
}

/// How an interactive CLI looks: its prompt, and what a question looks like.
struct ShellSpec {
    prompt: Regex,
    question: Option<Regex>,
}

struct CompiledDialogue {
    variants: Vec<CompiledVariant>,
}

struct CompiledVariant {
    when: Option<ferry_model::ssh::VersionRange>,
    prompts: Vec<CompiledPrompt>,
    success: Regex,
}

struct CompiledPrompt {
    expect: Regex,
    answer: Option<String>,
    choose: Option<(String, Regex)>,
    optional: bool,
    timeout: Duration,
}

/// A dialogue made ready for one command on one node: its answers filled in.
struct Conversation {
    name: String,
    turns: Vec<Turn>,
    success: Regex,
}

struct Turn {
    expect: Regex,
    reply: Reply,
    optional: bool,
    timeout: Duration,
}

enum Reply {
    Text(String),
    /// The number (`number` capture) of the one line printed since the last answer that
    /// contains this text.
    Choose(String, Regex),
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
        let mut c = compile(&p.ssh)?;
        let env = Regex::new(r"\{env\.(FERRY_[A-Za-z0-9_]+)\}").expect("a valid regex");
        let all = serde_json::to_string(p).unwrap_or_default();
        let mut names: Vec<String> = env.captures_iter(&all).map(|c| c[1].to_string()).collect();
        names.sort();
        names.dedup();
        c.secrets = names;
        let c = Arc::new(c);
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
                Err(e) => Outcome::Failed(redact(e, &job.compiled.secrets)),
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
                    let v = verified(&job, &mut conns).await;
                    conns.close().await;
                    v
                });
                match verdict {
                    Ok(None) => {
                        let o = Outcome::Done;
                        self.save(run, &step.id, Some(&o))?;
                        Ok(Inspection::Ended(o))
                    }
                    Ok(Some(_)) => Ok(Inspection::NotStarted),
                    Err(e) => Err(DriverError::Other(format!(
                        "cannot tell whether {} took effect: {}",
                        step.id,
                        redact(e, &job.compiled.secrets)
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

pub(crate) fn compile(spec: &SshSpec) -> Result<Compiled, String> {
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
    let shell = match &spec.prompt {
        Some(p) => Some(ShellSpec {
            prompt: re(p)?,
            question: spec.question.as_deref().map(re).transpose()?,
        }),
        None => None,
    };
    let mut dialogues = HashMap::new();
    for d in &spec.dialogues {
        let default = d.timeout_seconds.unwrap_or(120.0);
        let mut variants = Vec::new();
        for v in &d.variants {
            let mut prompts = Vec::new();
            for p in &v.prompts {
                prompts.push(CompiledPrompt {
                    expect: re(&p.expect)?,
                    answer: p.answer.clone(),
                    choose: match &p.choose {
                        Some(c) => Some((c.line.clone(), re(&c.number)?)),
                        None => None,
                    },
                    optional: p.optional,
                    timeout: Duration::from_secs_f64(p.timeout_seconds.unwrap_or(default)),
                });
            }
            variants.push(CompiledVariant {
                when: v.when.as_ref().map(|w| w.version.clone()),
                prompts,
                success: re(&v.success)?,
            });
        }
        dialogues.insert(d.name.clone(), CompiledDialogue { variants });
    }
    Ok(Compiled {
        spec: spec.clone(),
        fail_on,
        probes,
        shell,
        dialogues,
        secrets: Vec::new(),
    })
}

/// `text` with the value of every secret environment variable in `names` masked.
fn redact(text: String, names: &[String]) -> String {
    let mut text = text;
    for n in names {
        if let Ok(v) = std::env::var(n) {
            if !v.is_empty() {
                text = text.replace(&v, "********");
            }
        }
    }
    text
}

// ------------------------------------------------------------------------------------------
// Connections and commands
// ------------------------------------------------------------------------------------------

/// The sessions of one task, one per node, opened when first needed: an SSH master connection,
/// and on a profile whose CLI is an interactive shell, that shell (a pty).
pub(crate) struct Conns<'o> {
    opts: &'o SshOptions,
    open: HashMap<String, Session>,
    shells: HashMap<String, Shell>,
}

/// Why a command did not give output.
enum RunError {
    /// The connection went away while it ran (a reboot, or a lost network).
    Lost(String),
    Other(String),
}

impl RunError {
    fn text(self) -> String {
        match self {
            RunError::Lost(m) | RunError::Other(m) => m,
        }
    }
}

impl<'o> Conns<'o> {
    pub(crate) fn new(opts: &'o SshOptions) -> Self {
        Conns {
            opts,
            open: HashMap::new(),
            shells: HashMap::new(),
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

    /// Runs `cmd` on the node `name` reached at `dest` (as `run`, with no input or dialogue:
    /// discovery reads, it answers nothing); its output, or why not.
    pub(crate) async fn read(
        &mut self,
        name: &str,
        dest: &str,
        cmd: &str,
        timeout: Duration,
        compiled: &Compiled,
    ) -> Result<String, String> {
        let node = NodeCtx {
            name: name.to_string(),
            cluster: String::new(),
            role: String::new(),
            version: String::new(),
            target: String::new(),
            facts: Default::default(),
            cluster_facts: Default::default(),
            dest: dest.to_string(),
        };
        self.run(&node, cmd, &[], None, timeout, compiled)
            .await
            .map_err(RunError::text)
    }

    /// Closes the session to `dest` (after a reboot or an error: the next use reconnects).
    async fn forget(&mut self, dest: &str) {
        if let Some(sh) = self.shells.remove(dest) {
            sh.close().await;
        }
        if let Some(s) = self.open.remove(dest) {
            let _ = s.close().await;
        }
    }

    pub(crate) async fn close(mut self) {
        for (_, sh) in self.shells.drain() {
            sh.close().await;
        }
        for (_, s) in self.open.drain() {
            let _ = s.close().await;
        }
    }

    /// Runs `cmd` on `node` and returns its output, when it succeeds and prints nothing
    /// `fail_on` matches. On an interactive CLI it is typed at the prompt in the node's shell
    /// and its questions are answered by `talk` (nothing else is answered); otherwise it is a
    /// one-shot exec with `input` on its standard input.
    async fn run(
        &mut self,
        node: &NodeCtx,
        cmd: &str,
        input: &[String],
        talk: Option<&Conversation>,
        timeout: Duration,
        compiled: &Compiled,
    ) -> Result<String, RunError> {
        let Some(spec) = &compiled.shell else {
            return self
                .exec(node, cmd, input, timeout, &compiled.fail_on)
                .await;
        };
        let began = Instant::now();
        if !self.shells.contains_key(&node.dest) {
            let session = connect(self.opts, &node.dest)
                .await
                .map_err(RunError::Other)?;
            match Shell::open(session, spec, began + timeout, &node.name).await {
                Ok(sh) => {
                    self.shells.insert(node.dest.clone(), sh);
                }
                Err(e) => return Err(e),
            }
        }
        let shell = self.shells.get_mut(&node.dest).expect("just opened");
        let r = shell
            .converse(
                cmd,
                talk,
                spec,
                &compiled.fail_on,
                began + timeout,
                timeout,
                &node.name,
            )
            .await;
        if r.is_err() {
            // Nothing more goes to a shell whose command failed: it is closed.
            self.forget(&node.dest).await;
        }
        r
    }

    /// Runs `cmd` on `node` as a one-shot exec with `input` on its standard input; its output
    /// (stdout, then stderr) when it exits 0 and prints nothing `fail_on` matches.
    async fn exec(
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

// ------------------------------------------------------------------------------------------
// The interactive shell
// ------------------------------------------------------------------------------------------

/// How long output must stay quiet, its last line looking like a question that no prompt of the
/// dialogue matches, before the question is taken as one the dialogue does not expect.
const QUIET: Duration = Duration::from_secs(1);

/// A node's interactive CLI: the system's OpenSSH client run with `-tt` through the master
/// connection (a pty on the appliance; host keys checked by the master), its prompt seen.
struct Shell {
    session: Session,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

/// The text of `re`'s last match in `text` when it reaches the end of `text` (trailing white
/// space aside): what the appliance shows as it waits.
fn at_end<'t>(re: &Regex, text: &'t str) -> Option<regex::Match<'t>> {
    let end = text.trim_end().len();
    re.find_iter(text)
        .last()
        .filter(|m| m.end() >= end && end > 0)
}

/// The unfinished last line of `text` (empty when it ends with a newline).
fn last_line(text: &str) -> &str {
    text.rsplit('\n').next().unwrap_or("")
}

impl Shell {
    /// Opens the shell on `session` and waits for the CLI's first prompt.
    async fn open(
        session: Session,
        spec: &ShellSpec,
        deadline: Instant,
        node: &str,
    ) -> Result<Shell, RunError> {
        let mut c = tokio::process::Command::new("ssh");
        c.arg("-S")
            .arg(session.control_socket())
            .args(["-o", "BatchMode=yes", "-q", "-tt", "-p", "9", "none"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = match c.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = session.close().await;
                return Err(RunError::Other(format!("cannot run ssh: {e}")));
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = session.close().await;
            return Err(RunError::Other("ssh gave no pipes".into()));
        };
        let mut sh = Shell {
            session,
            child,
            stdin,
            stdout,
        };
        let mut text = String::new();
        loop {
            if at_end(&spec.prompt, &text).is_some() {
                return Ok(sh);
            }
            match sh.read(deadline.into()).await {
                Ok(Some(t)) => text.push_str(&t),
                Ok(None) => {
                    sh.close().await;
                    return Err(RunError::Other(format!(
                        "{node}: the CLI showed no prompt: {}",
                        tail(&text)
                    )));
                }
                Err(()) => {
                    sh.close().await;
                    return Err(RunError::Lost(format!(
                        "{node}: the connection ended before the CLI's prompt: {}",
                        tail(&text)
                    )));
                }
            }
        }
    }

    /// Output until `until`: `Ok(None)` when it passed, `Err(())` when the connection ended.
    async fn read(&mut self, until: tokio::time::Instant) -> Result<Option<String>, ()> {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(until, self.stdout.read(&mut buf)).await {
            Err(_) => Ok(None),
            Ok(Ok(0)) | Ok(Err(_)) => Err(()),
            Ok(Ok(n)) => Ok(Some(String::from_utf8_lossy(&buf[..n]).replace('\r', ""))),
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), RunError> {
        let mut text = line.to_string();
        text.push('\n');
        self.stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| RunError::Lost(format!("the connection ended: {e}")))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| RunError::Lost(format!("the connection ended: {e}")))
    }

    async fn close(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = self.session.close().await;
    }

    /// Types `cmd` at the prompt and reads until the prompt comes back, answering each
    /// question of `talk` once it is asked. A question `talk` does not expect (or any, without
    /// `talk`), a prompt not asked in time, `fail_on` output, a missing success text or a
    /// prompt the dialogue still waited for fail the command; the connection's end is `Lost`.
    #[allow(clippy::too_many_arguments)]
    async fn converse(
        &mut self,
        cmd: &str,
        talk: Option<&Conversation>,
        spec: &ShellSpec,
        fail_on: &[Regex],
        bound: Instant,
        bound_len: Duration,
        node: &str,
    ) -> Result<String, RunError> {
        self.send(cmd).await?;
        let turns: &[Turn] = talk.map_or(&[], |t| &t.turns);
        let mut answered = vec![false; turns.len()];
        // The next turn that must be asked; optional turns before it may be.
        let mut next = 0;
        let mut text = String::new();
        // Where the text since the last answer begins.
        let mut from = 0;
        let mut waiting_since = Instant::now();
        let mut last_read = Instant::now();
        let waited_for = |next: usize| turns[next..].iter().find(|t| !t.optional);
        'reading: loop {
            let pending = &text[from..];
            if fail_on.iter().any(|r| r.is_match(pending)) {
                return Err(RunError::Other(format!(
                    "`{cmd}` on {node} failed: {}",
                    tail(pending)
                )));
            }
            if let Some(m) = at_end(&spec.prompt, pending) {
                let end = from + m.start();
                let mut out = text[..end].to_string();
                // The pty echoes the command: its line is not output.
                if let Some((first, rest)) = out.split_once('\n') {
                    if first.trim().ends_with(cmd.trim()) {
                        out = rest.to_string();
                    }
                }
                if let Some(t) = talk {
                    if let Some(w) = waited_for(next) {
                        return Err(RunError::Other(format!(
                            "`{cmd}` on {node} ended before the dialogue `{}` was through: `{}` was not asked ({})",
                            t.name,
                            w.expect.as_str(),
                            tail(&out)
                        )));
                    }
                    if !t.success.is_match(&out) {
                        return Err(RunError::Other(format!(
                            "`{cmd}` on {node} ended without `{}`: {}",
                            t.success.as_str(),
                            tail(&out)
                        )));
                    }
                }
                return Ok(out);
            }
            // The turns that may be asked now: optional ones, up to the next required one.
            let mut found = None;
            for (j, t) in turns.iter().enumerate().skip(next) {
                if answered[j] {
                    continue;
                }
                if at_end(&t.expect, pending).is_some() {
                    found = Some(j);
                    break;
                }
                if !t.optional {
                    break;
                }
            }
            if let Some(j) = found {
                let reply = match &turns[j].reply {
                    Reply::Text(a) => a.clone(),
                    Reply::Choose(line, number) => {
                        choose(pending, line, number).map_err(|why| {
                            RunError::Other(format!(
                                "`{cmd}` on {node}: cannot answer `{}`: {why}",
                                last_line(pending).trim()
                            ))
                        })?
                    }
                };
                self.send(&reply).await?;
                answered[j] = true;
                if !turns[j].optional {
                    next = j + 1;
                }
                from = text.len();
                waiting_since = Instant::now();
                continue 'reading;
            }
            let line = last_line(pending).trim();
            let asks = !line.is_empty()
                && spec
                    .question
                    .as_ref()
                    .is_some_and(|q| q.is_match(last_line(pending)));
            if asks && last_read.elapsed() >= QUIET {
                let what = match (talk, waited_for(next)) {
                    (Some(t), Some(w)) => format!(
                        "which the dialogue `{}` does not expect (it waits for `{}`)",
                        t.name,
                        w.expect.as_str()
                    ),
                    (Some(t), None) => {
                        format!("after the last prompt of the dialogue `{}`", t.name)
                    }
                    (None, _) => "and the profile gives this command no dialogue".into(),
                };
                return Err(RunError::Other(format!(
                    "`{cmd}` on {node} asked `{line}`, {what}: nothing was answered"
                )));
            }
            // How long to read: the prompt awaited has its own timeout, within the command's.
            let (mut until, why) = match waited_for(next) {
                Some(w) if waiting_since + w.timeout < bound => (
                    waiting_since + w.timeout,
                    format!(
                        "`{cmd}` on {node}: `{}` was not asked within {} s",
                        w.expect.as_str(),
                        w.timeout.as_secs()
                    ),
                ),
                _ => (
                    bound,
                    format!(
                        "`{cmd}` on {node} did not end within {} s",
                        bound_len.as_secs()
                    ),
                ),
            };
            let quiet = asks.then(|| last_read + QUIET);
            if let Some(q) = quiet {
                until = until.min(q);
            }
            match self.read(until.into()).await {
                Ok(Some(t)) => {
                    text.push_str(&t);
                    last_read = Instant::now();
                }
                Ok(None)
                    if quiet.is_some_and(|q| Instant::now() >= q) && Instant::now() < bound =>
                {
                    // Quiet after a question: judged above.
                }
                Ok(None) => {
                    return Err(RunError::Other(format!(
                        "{why} (last printed: {})",
                        tail(&text)
                    )))
                }
                Err(()) => {
                    let through = waited_for(next).is_none();
                    let why = format!("`{cmd}` on {node}: the connection ended ({})", tail(&text));
                    return Err(match talk {
                        // A dialogue cut short is a failure even for a command that reboots.
                        Some(t) if !through || !t.success.is_match(&text) => RunError::Other(
                            format!("{why} before the dialogue `{}` was through", t.name),
                        ),
                        _ => RunError::Lost(why),
                    });
                }
            }
        }
    }
}

/// The answer to a numbered list: the `number` of the one line of `text` containing `line`.
fn choose(text: &str, line: &str, number: &Regex) -> Result<String, String> {
    let found: Vec<&str> = text.lines().filter(|l| l.contains(line)).collect();
    match found.as_slice() {
        [one] => number
            .captures(one)
            .and_then(|c| c.name("number"))
            .map(|m| m.as_str().to_string())
            .ok_or_else(|| format!("the line naming `{line}` has no number: `{}`", one.trim())),
        [] => Err(format!("no listed line names `{line}` ({})", tail(text))),
        _ => Err(format!("{} listed lines name `{line}`", found.len())),
    }
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
pub(crate) fn tail(text: &str) -> String {
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
            .run(node, &cmd, &[], None, timeout, &job.compiled)
            .await
            .map_err(RunError::text)?;
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

/// Dialogue `name` made ready for the step's node: the variant for the version it runs (read by
/// the profile's `version_probe` when a variant depends on it), its answers filled in before
/// the command is typed.
async fn conversation(
    name: &str,
    job: &Job,
    conns: &mut Conns<'_>,
) -> Result<Conversation, String> {
    let node = &job.node;
    let d = job
        .compiled
        .dialogues
        .get(name)
        .ok_or_else(|| format!("no dialogue `{name}` in the profile"))?;
    let version = if d.variants.iter().any(|v| v.when.is_some()) {
        let probe_name = job.compiled.spec.version_probe.as_deref().ok_or_else(|| {
            format!("dialogue `{name}` has variants by version and the profile names no `version_probe`")
        })?;
        let v = match probe(probe_name, node, job, conns, 0).await? {
            ProbeOut::One(v) => v,
            ProbeOut::Missing(why) => return Err(why),
            ProbeOut::Table(_) => return Err(format!("probe `{probe_name}` reads a table")),
        };
        Some(ferry_model::VendorVersion::parse(&v).map_err(|e| {
            format!("{} runs `{v}`, which is not a version ({e}): no variant of dialogue `{name}` can be chosen", node.name)
        })?)
    } else {
        None
    };
    let variant = d
        .variants
        .iter()
        .find(|v| match (&v.when, &version) {
            (None, _) => true,
            (Some(w), Some(ver)) => w.holds(ver),
            (Some(_), None) => false,
        })
        .ok_or_else(|| {
            format!(
                "no variant of dialogue `{name}` is for the version {} runs ({})",
                node.name,
                version.as_ref().map_or("unknown".into(), |v| v.to_string())
            )
        })?;
    let mut turns = Vec::new();
    for p in &variant.prompts {
        let reply = match (&p.answer, &p.choose) {
            (Some(a), _) => Reply::Text(render(a, node, job, conns, 0).await?),
            (None, Some((line, number))) => {
                Reply::Choose(render(line, node, job, conns, 0).await?, number.clone())
            }
            (None, None) => return Err(format!("a prompt of dialogue `{name}` has no answer")),
        };
        turns.push(Turn {
            expect: p.expect.clone(),
            reply,
            optional: p.optional,
            timeout: p.timeout,
        });
    }
    Ok(Conversation {
        name: name.to_string(),
        turns,
        success: variant.success.clone(),
    })
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
        let talk = match &c.dialogue {
            Some(name) => Some(conversation(name, job, conns).await?),
            None => None,
        };
        match conns
            .run(
                &job.node,
                &cmd,
                &input,
                talk.as_ref(),
                timeout,
                &job.compiled,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer `choose` reads from a listing, or the start of why it cannot.
    fn check(listing: &str, line: &str, expected: Result<&str, &str>) {
        let number = Regex::new(r"^\s*(?P<number>\d+)\)").expect("regex");
        match (choose(listing, line, &number), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{listing}"),
            (Err(got), Err(want)) => assert!(got.starts_with(want), "{got}"),
            (got, want) => panic!("{listing}: {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn the_choice_is_the_number_of_the_one_line_naming_the_file() {
        let listing = "Available options and upgrades in \"10.1.1.5:/upgrades\":\n\n  1) UCSInstall_UCOS_12.5.1.16900-48.sgn.iso\n  2) UCSInstall_UCOS_14.0.1.13900-155.sgn.iso\n  q) quit\n";
        check(listing, "UCSInstall_UCOS_14.0.1.13900-155.sgn.iso", Ok("2"));
        check(listing, "UCSInstall_UCOS_12.5.1.16900-48.sgn.iso", Ok("1"));
        check(
            listing,
            "UCSInstall_UCOS_15.0.1.10000-1.sgn.iso",
            Err("no listed line names"),
        );
        check(listing, "UCSInstall_UCOS_", Err("2 listed lines name"));
        check(
            "  x) UCSInstall_A.iso\n",
            "UCSInstall_A.iso",
            Err("the line naming"),
        );
    }

    #[test]
    fn a_prompt_counts_only_at_the_end_of_the_output() {
        let prompt = Regex::new(r"(?m)^admin:[ \t]*$").expect("regex");
        assert!(at_end(&prompt, "Active Master Version: 14\nadmin:").is_some());
        assert!(at_end(&prompt, "Active Master Version: 14\nadmin: ").is_some());
        assert!(at_end(&prompt, "admin:\nstill printing").is_none());
        assert!(at_end(&prompt, "").is_none());
        let dir = Regex::new("Directory:").expect("regex");
        assert!(at_end(&dir, "1\nDirectory: ").is_some());
        assert!(at_end(&dir, "Directory: /upgrades\nServer: ").is_none());
    }
}
