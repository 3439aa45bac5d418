//! `ferry`: the command line. Parses the arguments and hands them to the command's module
//! (`cmd/`, one module per command: its clap arguments and its `run`); the command reads
//! files, calls the pure core, and writes output. Here: exit codes and panics.
//!
//! Exit codes: 0 success; 1 the preflight found inhibitors (`check`), or a run did not complete
//! (`apply`, `resume`, `rollback`: a step failed, or the run paused or stopped); 2 bad input (a
//! site, profile, plan, faults file or argument that cannot be used), with a message naming
//! the file and key; 3 an internal error (a bug in ferry); 4 the environment failed (a full
//! disk, a damaged journal, a state directory that cannot be written), with what to do.

mod args;
mod cmd;
mod config;
mod confirm;
mod example_sites;
mod exit;
mod live;
mod load;
mod logging;
mod odds;
mod runs;

/// The planner allocates many small strings; mimalloc handles that pattern well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    #[command(flatten)]
    global: args::Global,
    #[command(subcommand)]
    command: Command,
}

/// Every command: one line here, one module in `cmd/` (its arguments and its `run`).
#[derive(Subcommand)]
enum Command {
    Check(cmd::check::Args),
    Discover(cmd::discover::DiscoverArgs),
    Import(cmd::import::ImportArgs),
    Plan(cmd::plan::Args),
    Apply(cmd::apply::Args),
    Status(cmd::status::Args),
    Resume(cmd::resume::Args),
    Rollback(cmd::rollback::Args),
    Approve(cmd::approve::Args),
    Step(cmd::step::Args),
    Rehearse(cmd::rehearse::Args),
    Demo(cmd::demo::Args),
    Examples(cmd::examples::Args),
    Profiles(cmd::profiles::Args),
    Agent(cmd::agent::Args),
    Serve(cmd::serve::Args),
    Bench(cmd::bench::Args),
    Config(cmd::config::Args),
    Completions(cmd::completions::Args),
    Man(cmd::man::Args),
    Schema(cmd::schema::Args),
}

/// The whole command line, as clap describes it (for completions and the manual page).
pub fn command() -> clap::Command {
    Cli::command()
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Check(a) => cmd::check::run(g, a),
        Command::Discover(a) => cmd::discover::run(g, a),
        Command::Import(a) => cmd::import::run(g, a),
        Command::Plan(a) => cmd::plan::run(g, a),
        Command::Apply(a) => cmd::apply::run(g, a),
        Command::Status(a) => cmd::status::run(g, a),
        Command::Resume(a) => cmd::resume::run(g, a),
        Command::Rollback(a) => cmd::rollback::run(g, a),
        Command::Approve(a) => cmd::approve::run(g, a),
        Command::Step(a) => cmd::step::run(g, a),
        Command::Rehearse(a) => cmd::rehearse::run(g, a),
        Command::Demo(a) => cmd::demo::run(g, a),
        Command::Examples(a) => cmd::examples::run(g, a),
        Command::Profiles(a) => cmd::profiles::run(g, a),
        Command::Agent(a) => cmd::agent::run(g, a),
        Command::Serve(a) => cmd::serve::run(g, a),
        Command::Bench(a) => cmd::bench::run(g, a),
        Command::Config(a) => cmd::config::run(g, a),
        Command::Completions(a) => cmd::completions::run(g, a),
        Command::Man(a) => cmd::man::run(g, a),
        Command::Schema(a) => cmd::schema::run(g, a),
    }
}

/// Why the command line could not be taken.
enum Parsed {
    Clap(clap::Error),
    /// A configuration file that cannot be read or used (exit 2, at its file, line and key).
    Config(anyhow::Error),
}

/// Parses the command line with the configuration files' defaults: a first, lenient pass
/// finds which files to read (`--config`, `FERRY_CONFIG`, or the user's and the system's),
/// their values become the arguments' defaults (`config::with_defaults`), and the second pass
/// is the real one — so a flag beats its environment variable, which beats the files, which
/// beat ferry's own defaults.
fn parse(argv: Vec<std::ffi::OsString>) -> Result<Cli, Parsed> {
    let first = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&argv);
    let (explicit, chosen) = match &first {
        Ok(m) => match (
            m.get_one::<std::path::PathBuf>("config"),
            m.value_source("config"),
        ) {
            (Some(p), Some(clap::parser::ValueSource::EnvVariable)) => {
                (Some(p.clone()), config::Chosen::Env)
            }
            (Some(p), _) => (Some(p.clone()), config::Chosen::Flag),
            (None, _) => (None, config::Chosen::Default),
        },
        // `--help`, `--version`: FERRY_CONFIG still chooses the file.
        Err(_) => match std::env::var_os("FERRY_CONFIG").filter(|v| !v.is_empty()) {
            Some(p) => (Some(p.into()), config::Chosen::Env),
            None => (None, config::Chosen::Default),
        },
    };
    let settings = config::load(explicit, chosen).map_err(Parsed::Config)?;
    let matches = config::with_defaults(Cli::command(), &settings)
        .try_get_matches_from(&argv)
        .map_err(Parsed::Clap)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(Parsed::Clap)?;
    // Where `--state` came from, for `ferry config show`: the innermost command's matches.
    let mut leaf = &matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let state_source = leaf
        .ids()
        .any(|id| id == "state")
        .then(|| leaf.value_source("state"))
        .flatten();
    cli.global.settings = config::Settings {
        state_source,
        ..settings
    };
    Ok(cli)
}

fn main() -> ExitCode {
    // Diagnostics keep file:line on one line, whatever the terminal width, so tools can read them.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    let cli = match parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(Parsed::Clap(e)) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
        Err(Parsed::Config(e)) => {
            let (code, message) = exit::classify(&e);
            eprintln!("{message}");
            return ExitCode::from(code);
        }
    };
    logging::init(
        &cli.global,
        matches!(&cli.command, Command::Agent(a) if a.runs_the_daemon()),
    );
    // A panic is a bug like any internal error: exit code 3, not the runtime's 101.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let (code, message) = exit::classify(&e);
            eprintln!("{message}");
            ExitCode::from(code)
        }
        Err(_) => {
            eprintln!("ferry: internal error (a bug in ferry; please report it with the command that led to it)");
            ExitCode::from(exit::INTERNAL)
        }
    }
}
