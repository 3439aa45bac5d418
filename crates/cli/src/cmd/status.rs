//! `ferry status [RUN]`: a run from the journal, its steps and approvals, in text or JSON.

use crate::args::{FormatFlag, Global, StateDir};
use crate::runs;
use anyhow::Result;
use std::process::ExitCode;

/// Show a run from the journal (the newest when RUN is omitted): its kind, parent, driver,
/// each step's state, start, end and attempts, and the approvals given.
#[derive(clap::Args)]
pub struct Args {
    /// The run's number (as `ferry status` lists them); the newest when omitted.
    run: Option<i64>,
    #[command(flatten)]
    state: StateDir,
    #[command(flatten)]
    format: FormatFlag,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    runs::status(&a.state.state, a.run, a.format.json())
}
