//! `ferry apply PLAN.json --site SITE`: carries out a saved plan through a driver, journaled
//! in the state directory (`runs.rs` holds what `apply`, `resume` and `rollback` share).

use crate::args::{Global, RunFlags};
use crate::load::{load, load_carried};
use crate::runs;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

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
/// With `--format json`, progress and the runbook's cards go to standard error and the run's
/// outcome is printed at the end on standard output: `run`, `kind` (apply or rollback),
/// `state` (complete, paused, stopped, failed ...), `driver`, `steps`, `done`, `skipped`,
/// `failed`, `pending`, `failures` (each `step` and `reason`), `retried`,
/// `awaiting_approval`, `message`, and `rollback` (the outcome of the rollback the failure
/// policy started, or null). Fields may be added, never renamed.
///
/// Exit 0 when every step is done, 1 when a step failed, the run paused or stopped, or the
/// operator did not confirm it, 2 when the plan no longer matches the site, an argument is
/// wrong, another run is in the way, or no terminal can confirm it without `--yes`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
ferry plan site.toml --format json -o plan.json\n  \
ferry apply plan.json   # the site and profiles the plan carries\n  \
ferry apply plan.json --site site.toml --pause-after ucm/ucm-pub/switch-version\n  \
ferry apply plan.json --site site.toml --parallel 2 --policy rollback-node")]
pub struct Args {
    /// The plan, as JSON.
    plan: PathBuf,
    /// The site file the plan was made from (or `example:NAME`): refused if it changed since.
    /// Without it, the site and profiles the plan carries are used.
    #[arg(long)]
    site: Option<String>,
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
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let (l, site) = match &a.site {
        Some(site) => (load(&g.profiles, site, a.strict)?, site.clone()),
        None => {
            let l = load_carried(&a.plan)?;
            let site = l.inputs.site_name.clone();
            (l, site)
        }
    };
    runs::apply(&l, &a.plan, &site, &a.run.args()?, a.supersede)
}
