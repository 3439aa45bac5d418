//! The option groups several commands share: the global options, the output format of the
//! commands that write text or JSON, the state directory, how a run is carried out (the
//! drivers' options), how the agents are reached and how nodes are reached over SSH.
//!
//! One name for one thing: `--state` (env `FERRY_STATE`), `--agent-ca`, `--agent-token-file`,
//! `--agent-cert`, `--agent-key`, `--ssh-*`, `--format text|json`. The names some commands used
//! before are hidden aliases (`--ca`, `--token-file`, `--cert`, `--key`, `--json`). The
//! configuration files give these options their defaults (`config.rs`).

use crate::load::{read, read_bytes};
use crate::{confirm, runs};
use anyhow::Result;
use clap::ValueEnum;
use std::path::PathBuf;

/// The options every command takes.
#[derive(clap::Args)]
pub struct Global {
    /// Read the defaults from this configuration file only (instead of
    /// ~/.config/ferry/config.toml over /etc/ferry/config.toml); given before the command.
    #[arg(long, value_name = "FILE", env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// The defaults the configuration files gave (filled in by `main` after parsing).
    #[arg(skip)]
    pub settings: crate::config::Settings,
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

/// What the commands that print a report write (`--format`, in `FormatFlag`).
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    /// For the terminal.
    Text,
    /// JSON, for tools.
    Json,
}

/// `--format text|json` of the commands that print a report: text for people, JSON for
/// scripts (`--json`, which some commands had, is a hidden alias of `--format json`).
#[derive(clap::Args)]
pub struct FormatFlag {
    /// Output format: text for the terminal, or JSON for scripts (its fields are listed in
    /// the command's help and in docs/config.md; fields may be added, never renamed).
    #[arg(long, short, value_enum, value_name = "FORMAT", default_value = "text")]
    format: ReportFormat,
    /// The same as --format json (kept for scripts written before --format).
    #[arg(long, hide = true)]
    json: bool,
}

impl Default for FormatFlag {
    fn default() -> Self {
        FormatFlag {
            format: ReportFormat::Text,
            json: false,
        }
    }
}

impl FormatFlag {
    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.json || self.format == ReportFormat::Json
    }
}

/// The journal's state directory, for the commands that read a run (`status`, `approve`, `step`).
#[derive(clap::Args)]
pub struct StateDir {
    /// State directory holding the journal (where `apply` was run with the same `--state`).
    #[arg(long, value_name = "DIR", env = "FERRY_STATE", default_value = ferry_exec::DEFAULT_STATE_DIR)]
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
    #[arg(long, value_name = "DIR", env = "FERRY_STATE", default_value = ferry_exec::DEFAULT_STATE_DIR)]
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
    #[command(flatten)]
    ssh: SshFlags,
    #[command(flatten)]
    format: FormatFlag,
}

/// How to authenticate to the ferry agents and trust them: every command that asks agents
/// (the agent driver, `check --agents`, `discover --agents`, `ferry agent status` ...).
#[derive(clap::Args, Clone)]
pub struct AgentAuth {
    /// Agents: a file holding the bearer token the agents accept.
    #[arg(long, value_name = "FILE", alias = "token-file")]
    pub agent_token_file: Option<PathBuf>,
    /// Agents: the CA (PEM) that signed the agents' certificates.
    #[arg(long, value_name = "FILE", alias = "ca")]
    pub agent_ca: Option<PathBuf>,
    /// Agents: a client certificate (PEM) for agents that take certificates (with --agent-key).
    #[arg(long, value_name = "FILE", alias = "cert")]
    pub agent_cert: Option<PathBuf>,
    /// Agents: the client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", alias = "key")]
    pub agent_key: Option<PathBuf>,
}

/// The agents' credentials and trust, read from the files `AgentAuth` names.
pub struct AgentCredentials {
    pub token: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate and its key (PEM).
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl AgentAuth {
    /// The token, the CA and the client certificate and key, read.
    pub fn read(&self) -> Result<AgentCredentials> {
        let token = self
            .agent_token_file
            .as_deref()
            .map(|p| read(p).map(|t| t.trim().to_string()))
            .transpose()?;
        let ca_pem = self.agent_ca.as_deref().map(read_bytes).transpose()?;
        let client_pem = match (&self.agent_cert, &self.agent_key) {
            (Some(c), Some(k)) => Some((read_bytes(c)?, read_bytes(k)?)),
            (None, None) => None,
            _ => return Err(crate::exit::bad(
                "a client certificate needs its key: give --agent-cert and --agent-key together",
            )),
        };
        Ok(AgentCredentials {
            token,
            ca_pem,
            client_pem,
        })
    }
}

/// How to reach the ferry agents (the `agent` driver, and `check --agents`).
#[derive(clap::Args)]
pub struct AgentFlags {
    #[command(flatten)]
    auth: AgentAuth,
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

/// How to reach nodes over SSH: the ssh driver (`apply`, `resume`, `rollback`), `discover`
/// and `check --ssh`.
#[derive(clap::Args)]
pub struct SshFlags {
    /// Ssh: the login user for nodes whose site `address` names none.
    #[arg(long, value_name = "USER")]
    ssh_user: Option<String>,
    /// Ssh: the private key to log in with (only that key is offered).
    #[arg(long, value_name = "FILE")]
    ssh_identity: Option<PathBuf>,
    /// Ssh: the known-hosts file host keys are checked against (default: OpenSSH's).
    #[arg(long, value_name = "FILE")]
    ssh_known_hosts: Option<PathBuf>,
    /// Ssh: accept (and record) the key of a host never seen. Host keys are checked strictly
    /// otherwise; a changed key is refused either way.
    #[arg(long)]
    ssh_accept_new: bool,
    /// Ssh: seconds to wait for a connection.
    #[arg(long, value_name = "S", default_value_t = 10)]
    ssh_connect_timeout: u64,
    /// Ssh: seconds one command may take (the ssh driver: when the profile's step gives no
    /// timeout, default 600; discover and check --ssh: default 120).
    #[arg(long, value_name = "S")]
    ssh_command_timeout: Option<u64>,
}

impl SshFlags {
    /// The connection options; `command_timeout_s` when `--ssh-command-timeout` is not given.
    pub fn options(&self, command_timeout_s: u64) -> ferry_exec::SshOptions {
        ferry_exec::SshOptions {
            user: self.ssh_user.clone(),
            identity: self.ssh_identity.clone(),
            known_hosts: self.ssh_known_hosts.clone(),
            accept_new: self.ssh_accept_new,
            connect_timeout: std::time::Duration::from_secs(self.ssh_connect_timeout),
            command_timeout: std::time::Duration::from_secs(
                self.ssh_command_timeout.unwrap_or(command_timeout_s),
            ),
            ..Default::default()
        }
    }
}

/// What `resume` and `rollback` take: the run, and how to carry it out.
#[derive(clap::Args)]
pub struct RunTarget {
    /// The run's number (as `ferry status` lists them); the newest when omitted.
    pub run: Option<i64>,
    #[command(flatten)]
    pub flags: RunFlags,
}

impl AgentFlags {
    pub fn options(self) -> Result<ferry_exec::AgentOptions> {
        let c = self.auth.read()?;
        Ok(ferry_exec::AgentOptions {
            token: c.token,
            ca_pem: c.ca_pem,
            client_pem: c.client_pem,
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
            json: self.format.json(),
            agent: self.agent.options()?,
            ssh: self.ssh.options(600),
        })
    }
}
