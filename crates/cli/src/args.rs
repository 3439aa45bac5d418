//! The option groups several commands share: the global options, the output format of the
//! commands that write text or JSON, the state directory, how a run is carried out (the
//! drivers' options) and how the agents are reached.

use crate::load::{read, read_bytes};
use crate::{confirm, runs};
use anyhow::Result;
use clap::ValueEnum;
use std::path::PathBuf;

/// The options every command takes.
#[derive(clap::Args)]
pub struct Global {
    /// Load extra profiles from this directory (every *.toml file). Repeatable.
    #[arg(long, global = true, value_name = "DIR")]
    pub profiles: Vec<PathBuf>,
    /// More log lines on standard error (-v: debug, -vv: trace); RUST_LOG, when set, decides
    /// instead.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Fewer log lines (-q: warnings and errors, -qq: errors only).
    #[arg(long, short, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Log lines as text, or as JSON (one object a line); always on standard error.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// What `check`, `status`, `rehearse` and `bench` write.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    /// For the terminal.
    Text,
    /// JSON, for tools.
    Json,
}

/// The journal's state directory, for the commands that read a run (`status`, `approve`, `step`).
#[derive(clap::Args)]
pub struct StateDir {
    /// State directory holding the journal (where `apply` was run with the same `--state`).
    #[arg(long, value_name = "DIR", default_value = ferry_exec::DEFAULT_STATE_DIR)]
    pub state: PathBuf,
}

/// A share from 0 to 1 (`--min-fit`).
pub fn parse_share(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number from 0 to 1"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "`{text}` is not a share from 0 to 1 (0.9: nine runs in ten)"
        ))
    }
}

/// How `apply`, `resume` and `rollback` carry out a run.
#[derive(clap::Args)]
pub struct RunFlags {
    /// State directory holding the journal (created if missing; `status`, `step`, `approve`,
    /// `resume` and `rollback` read the same one).
    #[arg(long, value_name = "DIR", default_value = ferry_exec::DEFAULT_STATE_DIR)]
    state: PathBuf,
    /// How steps are carried out (resume and rollback: the run's own driver by default).
    #[arg(long, value_enum)]
    driver: Option<runs::DriverKind>,
    /// Pause after this step is done (`ferry resume` continues). Repeatable.
    #[arg(long, value_name = "STEP")]
    pause_after: Vec<String>,
    /// At most this many steps at once (default: as many as the plan's limits allow).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: Option<u16>,
    /// What a failed step (after its retries) leads to.
    #[arg(long, value_enum, default_value = "stop")]
    policy: runs::PolicyArg,
    /// Approve every pause step (rehearsals and demos); the approvals are journaled.
    #[arg(long)]
    approve: bool,
    /// Who carries out the run, journaled with it (and with the answers typed at the runbook)
    /// and shown by `ferry status` (default: the OS user, from USER or LOGNAME, or the name of
    /// the user id).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Carry it out without asking for a confirmation (scripts). Without it, `apply` and
    /// `rollback` with a real driver (manual, ssh, agent) show what the run does (site, driver,
    /// nodes, steps, the booked window) and ask on the terminal, and are refused (exit 2)
    /// without one. The twin driver touches nothing and never asks; nor does `resume`, which
    /// continues a run already confirmed.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Go on knowingly outside the site's booked window: a closed window, or one too short for
    /// the work left, no longer stops the run. Journaled with the run (its later resumes keep
    /// it) and shown by `ferry status`.
    #[arg(long)]
    ignore_window: bool,
    /// Pause when the run reaches the plan's point of no return (the last moment at which the
    /// full rollback still ends inside the booked window) until `ferry approve
    /// point-of-no-return`; without it the run only warns there.
    #[arg(long)]
    stop_at_point_of_no_return: bool,
    /// Twin driver: seed of the simulation's randomness (durations, convergence times).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Twin driver: pace the simulation, SPEED virtual seconds per real second (e.g. 600 runs a
    /// ten-minute step in one second). Default: as fast as possible.
    #[arg(long, value_name = "SPEED")]
    speed: Option<f64>,
    /// Twin driver: faults to inject (a TOML file of [[fault]] tables; see `ferry rehearse --help`).
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    #[command(flatten)]
    agent: AgentFlags,
    /// Ssh driver: the login user for nodes whose site `address` names none.
    #[arg(long, value_name = "USER")]
    ssh_user: Option<String>,
    /// Ssh driver: the private key to log in with (only that key is offered).
    #[arg(long, value_name = "FILE")]
    ssh_identity: Option<PathBuf>,
    /// Ssh driver: the known-hosts file host keys are checked against (default: OpenSSH's).
    #[arg(long, value_name = "FILE")]
    ssh_known_hosts: Option<PathBuf>,
    /// Ssh driver: accept (and record) the key of a host never seen. Host keys are checked
    /// strictly otherwise; a changed key is refused either way.
    #[arg(long)]
    ssh_accept_new: bool,
    /// Ssh driver: seconds to wait for a connection.
    #[arg(long, value_name = "S", default_value_t = 10)]
    ssh_connect_timeout: u64,
    /// Ssh driver: seconds one command may take when the profile's step gives no timeout.
    #[arg(long, value_name = "S", default_value_t = 600)]
    ssh_command_timeout: u64,
}

/// How to reach the ferry agents (the `agent` driver, and `check --agents`).
#[derive(clap::Args)]
pub struct AgentFlags {
    /// Agent driver: a file holding the bearer token the agents accept.
    #[arg(long, value_name = "FILE")]
    agent_token_file: Option<PathBuf>,
    /// Agent driver: the CA (PEM) that signed the agents' certificates.
    #[arg(long, value_name = "FILE")]
    agent_ca: Option<PathBuf>,
    /// Agent driver: a client certificate (PEM) for agents that take certificates (with --agent-key).
    #[arg(long, value_name = "FILE", requires = "agent_key")]
    agent_cert: Option<PathBuf>,
    /// Agent driver: the client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "agent_cert")]
    agent_key: Option<PathBuf>,
    /// Agent driver: the directory of signed packages (SERVICE-VERSION.tar and SERVICE-VERSION.tar.minisig).
    #[arg(long, value_name = "DIR")]
    packages: Option<PathBuf>,
    /// Agent driver: the service's name on the agents when a node has no `service` fact.
    #[arg(long, value_name = "NAME", default_value = "service")]
    agent_service: String,
    /// Agent driver: how long to keep trying an agent that does not answer, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    agent_patience: u64,
}

impl AgentFlags {
    pub fn options(self) -> Result<ferry_exec::AgentOptions> {
        Ok(ferry_exec::AgentOptions {
            token: self
                .agent_token_file
                .as_deref()
                .map(|p| read(p).map(|t| t.trim().to_string()))
                .transpose()?,
            ca_pem: self.agent_ca.as_deref().map(read_bytes).transpose()?,
            client_pem: match (&self.agent_cert, &self.agent_key) {
                (Some(c), Some(k)) => Some((read_bytes(c)?, read_bytes(k)?)),
                _ => None,
            },
            packages: self.packages,
            service: self.agent_service,
            patience_s: self.agent_patience,
            poll_s: 0.2,
        })
    }
}

impl RunFlags {
    pub fn args(self) -> Result<runs::RunArgs> {
        Ok(runs::RunArgs {
            by: confirm::operator(self.by.as_deref())?,
            yes: self.yes,
            state: self.state,
            driver: self.driver,
            pause_after: self.pause_after,
            parallel: self.parallel.map(usize::from),
            policy: self.policy,
            approve_all: self.approve,
            ignore_window: self.ignore_window,
            stop_at_point_of_no_return: self.stop_at_point_of_no_return,
            seed: self.seed,
            speed: self.speed,
            faults: self.faults,
            agent: self.agent.options()?,
            ssh: ferry_exec::SshOptions {
                user: self.ssh_user,
                identity: self.ssh_identity,
                known_hosts: self.ssh_known_hosts,
                accept_new: self.ssh_accept_new,
                connect_timeout: std::time::Duration::from_secs(self.ssh_connect_timeout),
                command_timeout: std::time::Duration::from_secs(self.ssh_command_timeout),
                ..Default::default()
            },
        })
    }
}
