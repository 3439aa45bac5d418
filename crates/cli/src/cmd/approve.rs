//! `ferry approve STEP`: approves a pause step of a run, or opens its booked window early.

use crate::args::{FormatFlag, Global, StateDir};
use crate::{confirm, runs};
use anyhow::Result;
use std::process::ExitCode;

/// Approve a pause step of a run, so that `ferry resume` may start it; or open the booked
/// window early for a run that waits for it after its staging (`ferry approve open-window`).
///
/// JSON: `run`, `step`, `by` and `message` (what the approval means, as the text says it).
#[derive(clap::Args)]
pub struct Args {
    /// The pause step's ID (`cluster/node/action` or `cluster/action`), or `open-window`.
    step: String,
    /// The run's number (as `ferry status` lists them); the newest when omitted.
    #[arg(long)]
    run: Option<i64>,
    /// Who gives it, journaled with it and shown by `ferry status` (default: the OS user,
    /// from USER or LOGNAME, or the name of the user id).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    #[command(flatten)]
    state: StateDir,
    #[command(flatten)]
    format: FormatFlag,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    runs::approve(
        &a.state.state,
        a.run,
        &a.step,
        &confirm::operator(a.by.as_deref())?,
        a.format.json(),
    )
}
