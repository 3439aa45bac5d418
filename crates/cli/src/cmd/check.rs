//! `ferry check SITE`: the preflight report (inhibitors, warnings, remedies), optionally
//! against the nodes' agents (`--agents`) or their CLI over SSH (`--ssh`) as they are now, with the odds of fitting the booked
//! window.

use crate::args::{AgentFlags, FormatFlag, Global};
use crate::exit::bad;
use crate::load::{load, write_out};
use crate::{live, odds, runs};
use anyhow::Result;
use ferry_plan::{report, PlanOptions};
use std::process::ExitCode;

/// Preflight report: inhibitors, warnings and remedies (exit 1 when an inhibitor is found).
#[derive(clap::Args)]
pub struct Args {
    /// Site file, or `example:NAME`.
    site: String,
    #[command(flatten)]
    format: FormatFlag,
    /// Make a fact name no profile declares (a typo such as `devcies`) an error, not a warning.
    #[arg(long)]
    strict: bool,
    /// Also ask each node's ferry agent (its site `address`) what it runs now: an agent
    /// that does not answer, or a version other than the site's, is an inhibitor, and the
    /// service's health is laid over the site's `healthy` fact for the profile's checks.
    /// Nothing is changed on the nodes.
    #[arg(long, conflicts_with = "ssh")]
    agents: bool,
    #[command(flatten)]
    agent: AgentFlags,
    /// Also read each node over SSH now (its site `address`), as its profile's
    /// `[discover]` readings say: its facts are laid over the site's before judging; a node
    /// that cannot be read, or runs a version other than the site's, is an inhibitor
    /// (FERRY-SSH). Nothing is changed on the nodes.
    #[arg(long)]
    ssh: bool,
    #[command(flatten)]
    ssh_flags: crate::args::SshFlags,
    /// Rehearse the plan this many times against the twin (seeds 1 to N) for the odds of
    /// ending inside the booked window: a warning (FERRY-FIT) when they are below the
    /// site's `[site.objectives] min_fit` (0.9 by default). 0: not rehearsed.
    #[arg(long, default_value_t = odds::DEFAULT_RUNS, value_parser = clap::value_parser!(u32).range(0..=100000))]
    runs: u32,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let l = load(&g.profiles, &a.site, a.strict)?;
    let (observed, mut live) = if a.agents {
        live::survey(
            &l.site,
            &runs::used_profiles(&l.site, &l.profiles),
            a.agent.options()?,
        )?
    } else if a.ssh {
        let used = runs::used_profiles(&l.site, &l.profiles);
        crate::cmd::discover::refresh(&l.site, &used, &a.ssh_flags)?
    } else {
        (l.site.clone(), Vec::new())
    };
    let mut findings =
        odds::plan_with_odds(&l, &observed, &PlanOptions::default(), a.runs)?.findings;
    findings.append(&mut live);
    findings.extend(ferry_plan::checks::window_closed_findings(
        &l.site,
        check_now()?,
    ));
    let text = if a.format.json() {
        report::check_json(&l.site.name, &findings)
    } else {
        report::check_text(&l.site.name, &findings)
    };
    write_out(None, &text)?;
    Ok(if report::inhibitors(&findings) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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
