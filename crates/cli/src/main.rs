//! `ferry`: the command line. Reads files, calls the pure core, writes output and exit codes.
//!
//! Exit codes: 0 success; 1 the preflight found inhibitors (`check`), or a run did not complete
//! (`apply`, `resume`, `rollback`: a step failed, or the run paused or stopped); 2 bad input (a
//! site, profile, plan, faults file or argument that cannot be used), with a message naming
//! the file and key; 3 an internal error (a bug in ferry); 4 the environment failed (a full
//! disk, a damaged journal, a state directory that cannot be written), with what to do.

mod agent;
mod apply;
mod bench;
mod confirm;
mod examples;
mod live;
mod odds;
mod rehearse;

/// The planner allocates many small strings; mimalloc handles that pattern well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use ferry_plan::{render, report, PlanOptions};
use ferry_profiles::{load_site_with_warnings, ProfileSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Plan, check and rehearse upgrades of high-availability clusters",
    long_about = "ferry checks a site before anything is touched, plans the order of every upgrade step under the \
vendor's rules, and estimates the maintenance window.\n\n\
A site file (TOML) lists clusters, their profile, target version and nodes. Built-in profiles: \
cisco-ucm, cisco-callmanager4, genesys-framework, avaya-cms-ha, linux-ha.\n\n\
Start with:  ferry demo            (check and plan a built-in example)\n\
             ferry examples        (list built-in example sites)\n\
             ferry check SITE      (preflight report; exit 1 on inhibitors)\n\
             ferry plan SITE       (the plan; --format mop for a method of procedure)\n\
             ferry apply PLAN.json --site SITE   (carry it out, step by step, journaled)\n\
             ferry status / resume / approve / rollback   (follow and steer a run)\n\n\
SITE is a path, or `example:NAME` for a built-in example.",
    after_help = "Exit codes: 0 ok, 1 inhibitors found (check) or run not complete (apply, resume, rollback), 2 bad input, \
3 internal error (a bug in ferry), 4 environment failure (disk full, journal damaged, state directory unwritable)."
)]
struct Cli {
    /// Load extra profiles from this directory (every *.toml file). Repeatable.
    #[arg(long, global = true, value_name = "DIR")]
    profiles: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// What `plan` writes.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum PlanFormat {
    /// The plan for the terminal.
    Text,
    /// The plan as JSON (what `apply` and `rehearse` read).
    Json,
    /// A method of procedure, in Markdown.
    Mop,
    /// The method of procedure and the Gantt chart as one self-contained HTML page, printable
    /// to PDF.
    Html,
    /// A Gantt chart.
    Svg,
    /// The step graph, for Graphviz.
    Dot,
}

/// What `check`, `status`, `rehearse` and `bench` write.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ReportFormat {
    /// For the terminal.
    Text,
    /// JSON, for tools.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Preflight report: inhibitors, warnings and remedies (exit 1 when an inhibitor is found).
    Check {
        /// Site file, or `example:NAME`.
        site: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Make a fact name no profile declares (a typo such as `devcies`) an error, not a warning.
        #[arg(long)]
        strict: bool,
        /// Also ask each node's ferry agent (its site `address`) what it runs now: an agent
        /// that does not answer, or a version other than the site's, is an inhibitor, and the
        /// service's health is laid over the site's `healthy` fact for the profile's checks.
        /// Nothing is changed on the nodes.
        #[arg(long)]
        agents: bool,
        #[command(flatten)]
        agent: AgentFlags,
        /// Rehearse the plan this many times against the twin (seeds 1 to N) for the odds of
        /// ending inside the booked window: a warning (FERRY-FIT) when they are below the
        /// site's `[site.objectives] min_fit` (0.9 by default). 0: not rehearsed.
        #[arg(long, default_value_t = odds::DEFAULT_RUNS, value_parser = clap::value_parser!(u32).range(0..=100000))]
        runs: u32,
    },
    /// Plan the upgrade: version paths, step order with rule IDs, schedule, window estimate, rollback.
    Plan {
        /// Site file, or `example:NAME`.
        site: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        format: PlanFormat,
        /// Make a fact name no profile declares (a typo such as `devcies`) an error, not a warning.
        #[arg(long)]
        strict: bool,
        /// `fastest` (default: the shortest window the rules allow), `one-at-a-time`, `balanced` (servers out in batches that keep every device served), `documented` (the documents' task order), or a profile's own strategy.
        #[arg(long)]
        strategy: Option<String>,
        /// Run ahead of the window what the profiles let run while the nodes keep serving (a
        /// standard install, a package staged into an inactive slot), even when the site books
        /// no staging period (`[site] stage`): it is planned to end as the window opens.
        #[arg(long)]
        stage: bool,
        /// Explain why one step is where it is (its ID, as `cluster/node/action`).
        #[arg(long, value_name = "STEP")]
        explain: Option<String>,
        /// Write the output to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Use the durations observed in the runs journaled in this state directory (median
        /// per profile and step action) instead of the profiles' estimates; such steps are
        /// marked `observed`. Where a step was observed at least 5 times, the spread of its
        /// durations replaces the profile's in the rehearsals too.
        #[arg(long, value_name = "STATE")]
        estimates_from: Option<PathBuf>,
        /// Rehearse the plan this many times against the twin (seeds 1 to N, as `ferry
        /// rehearse --runs N`) and state the window's P50 and P90 and the probability of
        /// ending inside the booked window. 0: not rehearsed (the plan says so).
        #[arg(long, default_value_t = odds::DEFAULT_RUNS, value_parser = clap::value_parser!(u32).range(0..=100000))]
        runs: u32,
        /// Compare every strategy (with and without staging where the site books a staging
        /// period, or with `--stage`), each rehearsed `--runs` times: window P50 and P90,
        /// P(fit), the service costs, the plans no other beats (Pareto) and the one the site's
        /// `[site.objectives]` recommend. Text or JSON.
        #[arg(long, conflicts_with_all = ["strategy", "explain"])]
        compare: bool,
    },
    /// Carry out a plan (from `ferry plan SITE --format json -o PLAN.json`), journaled.
    ///
    /// Steps start as soon as every step they come after is done or skipped, several at once
    /// where the plan's limits allow (`--parallel` caps them). Every step is journaled in the
    /// state directory before it starts and after it ends, so `ferry resume` continues after a
    /// crash without carrying a step out twice.
    ///
    /// The `manual` driver shows each step's card (instructions, verification, rules) and waits
    /// for the operator: typed at the terminal (done / failed REASON / skip; with several steps
    /// under way, N done / N failed REASON / N skip), or, without a terminal, given with
    /// `ferry step done|failed|skip STEP_ID` from another shell.
    ///
    /// Pause steps of the profile wait for `ferry approve STEP` (or `--approve`); gates fail
    /// when they pass their timeout; a failed step with retries left is started again.
    ///
    /// One run at a time acts on a node: while another ferry process carries out a run on any
    /// of the plan's nodes, `apply` is refused; while a run there is unfinished (paused,
    /// stopped, failed or interrupted), it is refused too, naming the run to resume or roll
    /// back, unless `--supersede` says to start anyway.
    ///
    /// A plan that books a window carries out the work ahead of it (preparation, staging), then
    /// waits for the booked window to open before any window step (`ferry status` says so, with
    /// the date); `ferry approve open-window` from another shell opens it early (`--approve`
    /// does not).
    ///
    /// With a real driver (manual, ssh, agent) it first shows what it is about to do and asks
    /// for a confirmation on the terminal; `--yes` for scripts (without a terminal, refused).
    ///
    /// Exit 0 when every step is done, 1 when a step failed, the run paused or stopped, or the
    /// operator did not confirm it, 2 when the plan no longer matches the site, an argument is
    /// wrong, another run is in the way, or no terminal can confirm it without `--yes`.
    #[command(after_help = "Examples:\n  \
ferry plan site.toml --format json -o plan.json\n  \
ferry apply plan.json --site site.toml --pause-after ucm/ucm-pub/switch-version\n  \
ferry apply plan.json --site site.toml --parallel 2 --policy rollback-node")]
    Apply {
        /// The plan, as JSON.
        plan: PathBuf,
        /// The site file the plan was made from (or `example:NAME`): refused if it changed.
        #[arg(long)]
        site: String,
        /// Start although an earlier run on some of the same nodes is unfinished (paused,
        /// stopped, failed or interrupted, and not rolled back): that run is marked as
        /// superseded by this one and no longer holds its nodes. A run another ferry process
        /// carries out is never superseded.
        #[arg(long)]
        supersede: bool,
        /// Make a fact name no profile declares (a typo such as `devcies`) an error, not a warning.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Show a run from the journal (the newest when RUN is omitted): its kind, parent, driver,
    /// each step's state, start, end and attempts, and the approvals given.
    Status {
        /// The run's number (as `ferry status` lists them); the newest when omitted.
        run: Option<i64>,
        /// State directory holding the journal (where `apply` was run with the same `--state`).
        #[arg(long, value_name = "DIR", default_value = ferry_exec::DEFAULT_STATE_DIR)]
        state: PathBuf,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        format: ReportFormat,
    },
    /// Continue a run (the newest when RUN is omitted).
    ///
    /// Steps started but not recorded as ended (a crash) are settled first by asking the
    /// driver; done and skipped steps are never run again; failed steps are tried again.
    Resume {
        /// The run's number (as `ferry status` lists them); the newest when omitted.
        run: Option<i64>,
        #[command(flatten)]
        run_flags: RunFlags,
    },
    /// Roll back a run (the newest when RUN is omitted) as a new run of kind `rollback`.
    ///
    /// Plans again from the site and profile texts stored with the run, with the facts the
    /// driver observes now laid over the site's, and carries out the plan's rollback steps.
    /// When the run's failure policy asked for the rollback of one node, only that node's
    /// rollback steps (and its cluster's cluster-wide ones) run. A run that another ferry
    /// process is carrying out cannot be rolled back (exit 2); an interrupted one can.
    Rollback {
        /// The run to roll back (its number, as `ferry status` lists them); the newest when omitted.
        run: Option<i64>,
        #[command(flatten)]
        run_flags: RunFlags,
    },
    /// Approve a pause step of a run, so that `ferry resume` may start it; or open the booked
    /// window early for a run that waits for it after its staging (`ferry approve open-window`).
    Approve {
        /// The pause step's ID (`cluster/node/action` or `cluster/action`), or `open-window`.
        step: String,
        /// The run's number (as `ferry status` lists them); the newest when omitted.
        #[arg(long)]
        run: Option<i64>,
        /// Who gives it, journaled with it and shown by `ferry status` (default: the OS user,
        /// from USER or LOGNAME, or the name of the user id).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// State directory holding the journal (where `apply` was run with the same `--state`).
        #[arg(long, value_name = "DIR", default_value = ferry_exec::DEFAULT_STATE_DIR)]
        state: PathBuf,
    },
    /// Answer a step of a run for the manual driver: done, failed (with --reason) or skip.
    ///
    /// A step that has not started yet is refused (exit 2) unless `--early` is given: the
    /// runbook then takes the answer the moment the step starts. Early answers are journaled
    /// as such, shown by `ferry status`, and never learned as durations (`--estimates-from`).
    Step {
        #[arg(value_enum)]
        answer: StepAnswer,
        /// The step's ID (`cluster/node/action`).
        step: String,
        /// State directory holding the journal (where `apply` was run with the same `--state`).
        #[arg(long, value_name = "DIR", default_value = ferry_exec::DEFAULT_STATE_DIR)]
        state: PathBuf,
        /// The run's number (as `ferry status` lists them); the newest when omitted.
        #[arg(long)]
        run: Option<i64>,
        /// Why the step failed.
        #[arg(long)]
        reason: Option<String>,
        /// Answer a step that has not started yet (ahead of time): recorded as early.
        #[arg(long)]
        early: bool,
        /// Who gives it, journaled with it and shown by `ferry status` (default: the OS user,
        /// from USER or LOGNAME, or the name of the user id).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Rehearse a plan against the digital twin of its site (a simulation), with faults if
    /// asked: service impact, broken rules, window length.
    ///
    /// The twin simulates what the vendor documents say happens: versions installed and
    /// switched, databases replicating, devices failing over and re-registering, HA pairs
    /// promoting, configuration servers in read-only and upgrade modes, data collection per
    /// interval. The executor carries the plan out against it in virtual time; the auditor
    /// then checks every order, sequence, limit and check rule of the profile on what ran.
    ///
    /// Faults file (TOML), one table per fault:
    ///   [[fault]]
    ///   kind = "crash"            # crash, install_failure, replication_stuck, link_failure,
    ///                             # slow_step, config_change, unhealthy
    ///   step = "ucm/ucm-sub1/switch-version"   # or "*/switch-version", or at_min = 90
    ///   node = "ucm-sub1"         # optional: the step's node by default
    ///   recover_min = 20          # crash, link_failure: back after this long
    ///   state = 4                 # replication_stuck: 3 or 4
    ///   factor = 3                # slow_step
    ///   probability = 0.2         # for --runs: fires in this share of the runs
    ///
    /// Exit 0 when every run completed with every node on target and no rule broken, 1
    /// otherwise (a failed step, a rehearsed rollback that failed, odds below `--min-fit`), 2
    /// on bad input.
    #[command(verbatim_doc_comment)]
    Rehearse {
        /// A site (path or `example:NAME`), planned first; or a plan file (`*.json`, with --site).
        target: String,
        /// The site a plan file was made from (refused if it changed since).
        #[arg(long)]
        site: Option<String>,
        /// Faults to inject (see above).
        #[arg(long, value_name = "FILE")]
        faults: Option<PathBuf>,
        /// Rehearse this many times, one seed each (a Monte Carlo rehearsal): median and worst
        /// window, impact percentiles, probability of finishing inside the booked window.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100000))]
        runs: u32,
        /// With --runs: exit 1 when the share of the runs that end inside the booked window is
        /// below P (0 to 1, e.g. 0.9), so a pipeline can gate on the odds.
        #[arg(long, value_name = "P", value_parser = parse_share)]
        min_fit: Option<f64>,
        /// Seed of the first run (durations and convergence times are drawn from it).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Planning a site: `fastest` (default), `one-at-a-time`, `balanced`, `documented`, or a profile's own strategy.
        #[arg(long)]
        strategy: Option<String>,
        /// Planning a site: run ahead of the window what the profiles let run while the nodes
        /// keep serving, even when the site books no staging period (see `ferry plan --stage`).
        #[arg(long)]
        stage: bool,
        /// What a failed step leads to: rollback-node and rollback-all rehearse the rollback too.
        #[arg(long, value_enum, default_value = "stop")]
        policy: apply::PolicyArg,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Make a fact name no profile declares (a typo such as `devcies`) an error, not a warning.
        #[arg(long)]
        strict: bool,
        /// Also print the timeline of every step and what the twin saw (its log).
        #[arg(long)]
        trace: bool,
        /// Write the output to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check, plan, rehearse and apply a built-in example against the digital twin, and print
    /// the reports and the service impact.
    Demo {
        /// Example name (see `ferry examples`).
        #[arg(default_value = "ucm-standard")]
        name: String,
    },
    /// List the built-in example sites, or print one (to copy and edit).
    #[command(after_help = "Examples:\n  \
ferry examples\n  \
ferry examples ucm-standard > site.toml\n  \
ferry examples linux-ha-pair --window-start now > site.toml   # its window booked from now")]
    Examples {
        /// The example to print as a site file; none: list them.
        name: Option<String>,
        /// Book the printed example's window from this moment instead: `now` (rounded down to
        /// the minute, in the example's zone) or an RFC 3339 time with its offset. Its length
        /// is kept.
        #[arg(long, value_name = "WHEN", requires = "name")]
        window_start: Option<String>,
    },
    /// List profiles, show one, or validate profile files.
    Profiles {
        #[command(subcommand)]
        action: Option<ProfilesAction>,
    },
    /// Run the node agent (`--config agent.toml`: a daemon logging to standard error), or
    /// check its configuration, make signing keys, sign packages, make lab certificates, ask a
    /// running agent (status, stage, switch, revert, set-role), or benchmark a switch and a
    /// fleet's rolling upgrade.
    ///
    /// The agent keeps each service in two slots, stages signed packages into the inactive
    /// one, switches with a health check and an automatic revert, snapshots configuration,
    /// supervises the service and runs HA pairs' heartbeats, behind an authenticated HTTPS
    /// API (docs/agent-api.md). SIGTERM or SIGINT stops it and the services it runs.
    #[command(args_conflicts_with_subcommands = true)]
    Agent {
        /// The agent's configuration file: runs the agent.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<agent::AgentAction>,
    },
    /// The team's shared view of an upgrade: web dashboard, JSON API, approvals by role,
    /// metrics (docs/serve.md).
    Serve(ferry_serve::ServeArgs),
    /// Benchmark the planner on a generated fleet and on every example.
    Bench {
        /// Clusters in the generated fleet.
        #[arg(long, default_value_t = 1000)]
        clusters: usize,
        /// Nodes per cluster (approximately; examples are replicated and padded).
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        /// Times to plan the fleet; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        format: ReportFormat,
    },
}

/// A share from 0 to 1 (`--min-fit`).
fn parse_share(text: &str) -> Result<f64, String> {
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
struct RunFlags {
    /// State directory holding the journal (created if missing; `status`, `step`, `approve`,
    /// `resume` and `rollback` read the same one).
    #[arg(long, value_name = "DIR", default_value = ferry_exec::DEFAULT_STATE_DIR)]
    state: PathBuf,
    /// How steps are carried out (resume and rollback: the run's own driver by default).
    #[arg(long, value_enum)]
    driver: Option<apply::DriverKind>,
    /// Pause after this step is done (`ferry resume` continues). Repeatable.
    #[arg(long, value_name = "STEP")]
    pause_after: Vec<String>,
    /// At most this many steps at once (default: as many as the plan's limits allow).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: Option<u16>,
    /// What a failed step (after its retries) leads to.
    #[arg(long, value_enum, default_value = "stop")]
    policy: apply::PolicyArg,
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
struct AgentFlags {
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
    fn options(self) -> Result<ferry_exec::AgentOptions> {
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
    fn args(self) -> Result<apply::RunArgs> {
        Ok(apply::RunArgs {
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

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum StepAnswer {
    Done,
    Failed,
    Skip,
}

#[derive(Subcommand)]
enum ProfilesAction {
    /// Names and titles of every loaded profile.
    List,
    /// Print a profile's TOML source.
    Show { name: String },
    /// Validate profile files without loading a site.
    Check { files: Vec<PathBuf> },
}

/// Bad input: the message is already a rendered diagnostic. Exit code 2.
#[derive(Debug)]
struct BadInput(String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// Exit codes (README, "Exit codes"): every code `ferry` can end with.
mod exit {
    /// Bad input: a site, profile, plan, faults file, journal entry asked for, or argument.
    pub const BAD_INPUT: u8 = 2;
    /// A bug in ferry: an error no input should cause, or a panic.
    pub const INTERNAL: u8 = 3;
    /// The environment failed: a full disk, a damaged journal, a file that cannot be written.
    pub const ENVIRONMENT: u8 = 4;
}

/// The exit code and message of an error that ends a command: bad input (2), an environment
/// failure (4, with what to do), or else an internal error (3).
fn classify(e: &anyhow::Error) -> (u8, String) {
    use ferry_exec::environment::{io_failure, journal_failure};
    for cause in e.chain() {
        if let Some(b) = cause.downcast_ref::<BadInput>() {
            return (exit::BAD_INPUT, b.to_string());
        }
        if let Some(f) = cause.downcast_ref::<ferry_exec::environment::EnvironmentFailure>() {
            return (exit::ENVIRONMENT, format!("ferry: {f}"));
        }
        if let Some(j) = journal_error(cause) {
            return match journal_failure(j) {
                Some(f) => (exit::ENVIRONMENT, format!("ferry: {f}")),
                None => (exit::BAD_INPUT, format!("ferry: {j}")),
            };
        }
        if let Some(x) = cause.downcast_ref::<ferry_exec::ExecError>() {
            if let ferry_exec::ExecError::BadPlan(_) = x {
                return (exit::BAD_INPUT, format!("ferry: {x}"));
            }
        }
        if let Some(r) = cause.downcast_ref::<ferry_exec::RollbackError>() {
            return (exit::BAD_INPUT, format!("ferry: {r}"));
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            let f = io_failure(std::path::Path::new("the output"), io);
            return (exit::ENVIRONMENT, format!("ferry: {f}"));
        }
    }
    (
        exit::INTERNAL,
        format!("ferry: internal error (a bug in ferry; please report it with the command that led to it): {e:#}"),
    )
}

/// The journal error an error is, or wraps transparently (so it is no cause of its own).
fn journal_error<'a>(
    cause: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ferry_exec::JournalError> {
    use ferry_exec::{DriverError, ExecError, RehearseError};
    let exec = |x: &'a ExecError| match x {
        ExecError::Journal(j)
        | ExecError::Driver {
            source: DriverError::Journal(j),
            ..
        } => Some(j),
        _ => None,
    };
    if let Some(j) = cause.downcast_ref::<ferry_exec::JournalError>() {
        return Some(j);
    }
    if let Some(x) = cause.downcast_ref::<ExecError>() {
        return exec(x);
    }
    if let Some(DriverError::Journal(j)) = cause.downcast_ref::<DriverError>() {
        return Some(j);
    }
    match cause.downcast_ref::<RehearseError>()? {
        RehearseError::Journal(j) => Some(j),
        RehearseError::Exec(x) => exec(x),
        _ => None,
    }
}

/// A planning error as the command line reports it: the site file, and the profile (with
/// the file it was read from) whose rules could not be scheduled.
fn plan_error(l: &Loaded, e: ferry_plan::PlanError) -> anyhow::Error {
    let profile = match &e {
        ferry_plan::PlanError::Schedule { profile, .. } => l
            .profiles
            .get(profile)
            .map(|p| format!("; profile `{profile}` was read from {}", p.origin)),
        _ => None,
    };
    bad(format!(
        "{}: {e}{}",
        l.inputs.site_name,
        profile.unwrap_or_default()
    ))
}

/// A diagnostic with its source excerpt; when the renderer cannot draw the excerpt (miette
/// panics on some very long lines), the plain located messages (file:line: message, help).
fn render_diag(err: impl miette::Diagnostic + Send + Sync + 'static) -> String {
    let plain = plain_diag(&err);
    let report = miette::Report::new(err);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| format!("{report:?}")));
    std::panic::set_hook(hook);
    drawn.unwrap_or(plain)
}

fn plain_diag(err: &dyn miette::Diagnostic) -> String {
    let mut out = err.to_string();
    for e in err.related().into_iter().flatten() {
        out.push_str(&format!("\n  {e}"));
        if let Some(h) = e.help() {
            out.push_str(&format!("\n    help: {h}"));
        }
    }
    out
}

fn load_profiles(dirs: &[PathBuf]) -> Result<ProfileSet> {
    let mut set = ProfileSet::builtin().map_err(|e| bad(render_diag(e)))?;
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            bad(format!(
                "cannot read profile directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = read(&f)?;
            set.add(&f.display().to_string(), &text)
                .map_err(|e| bad(render_diag(e)))?;
        }
    }
    Ok(set)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

/// The site's name for messages and its text.
fn site_text(arg: &str) -> Result<(String, String)> {
    if let Some(name) = arg.strip_prefix("example:") {
        let text = examples::get(name).ok_or_else(|| {
            bad(format!(
                "no built-in example `{name}`; examples: {}",
                examples::names().join(", ")
            ))
        })?;
        return Ok((format!("example:{name}"), text.to_string()));
    }
    Ok((arg.to_string(), read(Path::new(arg))?))
}

struct Loaded {
    profiles: ProfileSet,
    site: ferry_model::Site,
    hash: String,
    /// The site text and the texts of the profiles it uses (journaled with a run).
    inputs: ferry_exec::RunInputs,
}

/// Loads a site and its profiles. Warnings (fact names no profile declares) go to standard
/// error, located, or refuse the site with `strict` (exit 2).
fn load(profile_dirs: &[PathBuf], site_arg: &str, strict: bool) -> Result<Loaded> {
    let profiles = load_profiles(profile_dirs)?;
    let (name, text) = site_text(site_arg)?;
    let (site, warnings) =
        load_site_with_warnings(&name, &text, &profiles).map_err(|e| bad(render_diag(e)))?;
    if !warnings.errors.is_empty() {
        if strict {
            return Err(bad(format!(
                "{}\n(--strict: a warning refuses the site)",
                render_diag(warnings)
            )));
        }
        for w in &warnings.errors {
            eprintln!(
                "warning: {w}{}",
                w.help
                    .as_ref()
                    .map(|h| format!("\n  help: {h}"))
                    .unwrap_or_default()
            );
        }
    }
    let used: std::collections::BTreeSet<&str> =
        site.clusters.iter().map(|c| c.profile.as_str()).collect();
    let inputs = ferry_exec::RunInputs {
        site_name: name,
        site_text: text,
        profiles: used
            .into_iter()
            .filter_map(|p| profiles.get(p).map(|lp| (p.to_string(), lp.text.clone())))
            .collect(),
        strategy: None,
    };
    let hash = inputs.input_hash();
    Ok(Loaded {
        profiles,
        site,
        hash,
        inputs,
    })
}

fn write_out(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(p) => std::fs::write(p, text).map_err(|e| {
            use std::io::ErrorKind as K;
            match e.kind() {
                // A path that cannot be a file to write: the argument is wrong.
                K::NotFound | K::PermissionDenied | K::IsADirectory | K::InvalidInput => {
                    bad(format!("cannot write {}: {e}", p.display()))
                }
                // A full disk, a failing one: the environment.
                _ => anyhow::Error::new(ferry_exec::environment::io_failure(p, &e)),
            }
        }),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).or_else(|e| {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            Ok(())
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check {
            site,
            format,
            strict,
            agents,
            agent,
            runs,
        } => {
            let l = load(&cli.profiles, &site, strict)?;
            let (observed, mut live) = if agents {
                live::survey(
                    &l.site,
                    &apply::used_profiles(&l.site, &l.profiles),
                    agent.options()?,
                )?
            } else {
                (l.site.clone(), Vec::new())
            };
            let mut findings =
                odds::plan_with_odds(&l, &observed, &PlanOptions::default(), runs)?.findings;
            findings.append(&mut live);
            findings.extend(ferry_plan::checks::window_closed_findings(
                &l.site,
                check_now()?,
            ));
            let text = match format {
                ReportFormat::Json => report::check_json(&l.site.name, &findings),
                ReportFormat::Text => report::check_text(&l.site.name, &findings),
            };
            write_out(None, &text)?;
            Ok(if report::inhibitors(&findings) > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Plan {
            site,
            format,
            strict,
            strategy,
            stage,
            explain,
            output,
            estimates_from,
            runs,
            compare,
        } => {
            let l = load(&cli.profiles, &site, strict)?;
            check_strategy(&l, strategy.as_deref())?;
            let (estimates, spreads) = match &estimates_from {
                Some(state) => apply::observed_estimates(state)?,
                None => Default::default(),
            };
            let opts = PlanOptions {
                strategy,
                estimates,
                spreads,
                stage,
                ..PlanOptions::default()
            };
            if compare {
                if runs == 0 {
                    return Err(bad(
                        "`--compare` rehearses every plan: give `--runs` a number above 0",
                    ));
                }
                let c = odds::compare_plans(&l, &opts, runs)?;
                let text = match format {
                    PlanFormat::Text => ferry_exec::compare::compare_text(&c),
                    PlanFormat::Json => serde_json::to_string_pretty(&c)? + "\n",
                    _ => return Err(bad("`--compare` writes text or json")),
                };
                write_out(output.as_deref(), &text)?;
                return Ok(ExitCode::SUCCESS);
            }
            // The odds are stated where the plan's text says whether it fits the window; the
            // graph and an explanation need none.
            let runs = if explain.is_some() || format == PlanFormat::Dot {
                0
            } else {
                runs
            };
            let (plan, plan_odds) = odds::plan_and_odds(&l, &l.site, &opts, runs)?;
            if let Some(id) = explain {
                let text = ferry_plan::explain(&plan, &id).ok_or_else(|| {
                    let near: Vec<&str> = plan
                        .steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .filter(|s| {
                            s.contains(id.as_str())
                                || id.contains(s.rsplit('/').next().unwrap_or(""))
                        })
                        .take(8)
                        .collect();
                    bad(format!(
                        "no step `{id}` in the plan{}",
                        if near.is_empty() {
                            String::new()
                        } else {
                            format!("; did you mean: {}", near.join(", "))
                        }
                    ))
                })?;
                write_out(output.as_deref(), &text)?;
                return Ok(ExitCode::SUCCESS);
            }
            let text = match format {
                PlanFormat::Text => render::text::render_text(&plan),
                PlanFormat::Json => serde_json::to_string_pretty(&plan)? + "\n",
                PlanFormat::Mop | PlanFormat::Html => {
                    let risk = plan_odds.as_ref().map(odds::risk);
                    if format == PlanFormat::Html {
                        render::html::render_html(&plan, risk.as_ref())
                    } else {
                        render::mop::render_mop_with(&plan, risk.as_ref())
                    }
                }
                PlanFormat::Svg => render::svg::render_svg(&plan),
                PlanFormat::Dot => render::dot::render_dot(&plan),
            };
            write_out(output.as_deref(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply {
            plan,
            site,
            supersede,
            strict,
            run,
        } => {
            let l = load(&cli.profiles, &site, strict)?;
            apply::apply(&l, &plan, &site, &run.args()?, supersede)
        }
        Command::Resume { run, run_flags } => apply::resume(run, &run_flags.args()?),
        Command::Rollback { run, run_flags } => apply::rollback(run, &run_flags.args()?),
        Command::Approve {
            step,
            run,
            state,
            by,
        } => apply::approve(&state, run, &step, &confirm::operator(by.as_deref())?),
        Command::Status { run, state, format } => {
            apply::status(&state, run, format == ReportFormat::Json)
        }
        Command::Step {
            answer,
            step,
            state,
            run,
            reason,
            early,
            by,
        } => {
            let a = match answer {
                StepAnswer::Done => ferry_exec::Answer::Done,
                StepAnswer::Skip => ferry_exec::Answer::Skip,
                StepAnswer::Failed => ferry_exec::Answer::Failed(
                    reason.unwrap_or_else(|| "failed by the operator".into()),
                ),
            };
            let given = ferry_exec::AnswerGiven {
                by: confirm::operator(by.as_deref())?,
                early,
            };
            apply::answer(&state, run, &step, a, &given)
        }
        Command::Demo { name } => rehearse::demo(&cli.profiles, &name),
        Command::Rehearse {
            target,
            site,
            faults,
            runs,
            min_fit,
            seed,
            strategy,
            stage,
            policy,
            format,
            strict,
            trace,
            output,
        } => rehearse::run(
            &cli.profiles,
            &rehearse::RehearseArgs {
                target,
                site,
                faults,
                runs: runs as usize,
                min_fit,
                strict,
                seed,
                strategy,
                stage,
                policy,
                json: format == ReportFormat::Json,
                trace,
                output,
            },
        ),
        Command::Examples {
            name: Some(name),
            window_start,
        } => {
            let (_, text) = site_text(&format!("example:{name}"))?;
            let text = match window_start {
                Some(start) => examples::with_window_start(&name, &text, &start).map_err(bad)?,
                None => text,
            };
            write_out(None, &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Examples { name: None, .. } => {
            let mut text = String::new();
            for (name, body) in examples::EXAMPLES {
                let title = body
                    .lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .unwrap_or("");
                text.push_str(&format!("{name:28} {title}\n"));
            }
            write_out(None, &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Profiles { action } => {
            let set = load_profiles(&cli.profiles)?;
            match action.unwrap_or(ProfilesAction::List) {
                ProfilesAction::List => {
                    let mut text = String::new();
                    for p in set.iter() {
                        text.push_str(&format!(
                            "{:20} {}  [{}]\n",
                            p.profile.profile.name, p.profile.profile.title, p.origin
                        ));
                    }
                    write_out(None, &text)?;
                }
                ProfilesAction::Show { name } => {
                    let p = set.get(&name).ok_or_else(|| {
                        bad(format!(
                            "no profile `{name}`; profiles: {}",
                            set.names().join(", ")
                        ))
                    })?;
                    write_out(None, &p.text)?;
                }
                ProfilesAction::Check { files } => {
                    for f in files {
                        let text = read(&f)?;
                        ferry_profiles::load_profile(&f.display().to_string(), &text)
                            .map_err(|e| bad(render_diag(e)))?;
                        println!("{}: ok", f.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent { config, action } => agent::run(config, action),
        Command::Serve(args) => ferry_serve::run(args.with_examples(examples::EXAMPLES)),
        Command::Bench {
            clusters,
            nodes,
            runs,
            format,
        } => {
            let profiles = load_profiles(&cli.profiles)?;
            let text = bench::run(
                &profiles,
                clusters,
                nodes,
                runs,
                format == ReportFormat::Json,
            )?;
            write_out(None, &text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The moment `check` judges the booked window against: now, or `FERRY_NOW` (an RFC 3339
/// time) to report as of another moment (the test suite reports the built-in examples, whose
/// windows have dates, as of a moment before them).
fn check_now() -> Result<i64> {
    match std::env::var("FERRY_NOW") {
        Ok(t) => ferry_profiles::site::parse_datetime(&t)
            .map(|(at, _)| at)
            .map_err(|(m, h)| bad(format!("FERRY_NOW `{t}`: {m}; {h}"))),
        Err(_) => Ok(ferry_exec::system_now()),
    }
}

/// The strategy names `--strategy` accepts for a site: the base and shared strategies, and
/// every strategy (or renamed one) of the site's profiles.
fn known_strategies(l: &Loaded) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in &l.site.clusters {
        if let Some(p) = l.profiles.get(&c.profile) {
            for s in ferry_profiles::site::known_strategies(&p.profile) {
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
    }
    v
}

/// `--strategy` must name a strategy of the site's profiles (exit 2 otherwise, listing them);
/// a renamed one is planned under its new name, with a warning on standard error.
pub(crate) fn check_strategy(l: &Loaded, strategy: Option<&str>) -> Result<()> {
    let Some(s) = strategy else { return Ok(()) };
    let known = known_strategies(l);
    if !known.iter().any(|k| k == s) {
        return Err(bad(format!(
            "unknown strategy `{s}`; known: {}",
            known.join(", ")
        )));
    }
    for c in &l.site.clusters {
        let Some(p) = l.profiles.get(&c.profile) else {
            continue;
        };
        let meta = &p.profile.profile;
        if let Some(r) = meta.renamed_strategies.iter().find(|r| r.name == s) {
            let why = if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.note)
            };
            eprintln!(
                "warning: `--strategy {s}` is deprecated: profile `{}` renamed it to `{}`{why}; planning with `--strategy {}`",
                meta.name, r.now, r.now
            );
            break;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Diagnostics keep file:line on one line, whatever the terminal width, so tools can read them.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // A panic is a bug like any internal error: exit code 3, not the runtime's 101.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let (code, message) = classify(&e);
            eprintln!("{message}");
            ExitCode::from(code)
        }
        Err(_) => {
            eprintln!("ferry: internal error (a bug in ferry; please report it with the command that led to it)");
            ExitCode::from(exit::INTERNAL)
        }
    }
}
