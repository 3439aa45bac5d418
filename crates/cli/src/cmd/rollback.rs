//! `ferry rollback [RUN]`: rolls a journaled run back, as a new run of kind `rollback`.

use crate::args::{Global, RunFlags};
use crate::runs;
use anyhow::Result;
use std::process::ExitCode;

/// Roll back a run (the newest when RUN is omitted) as a new run of kind `rollback`.
///
/// Plans again from the site and profile texts stored with the run, with the facts the
/// driver observes now laid over the site's, and carries out the plan's rollback steps.
/// When the run's failure policy asked for the rollback of one node, only that node's
/// rollback steps (and its cluster's cluster-wide ones) run. A run that another ferry
/// process is carrying out cannot be rolled back (exit 2); an interrupted one can.
#[derive(clap::Args)]
pub struct Args {
    /// The run to roll back (its number, as `ferry status` lists them); the newest when omitted.
    run: Option<i64>,
    #[command(flatten)]
    run_flags: RunFlags,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    runs::rollback(a.run, &a.run_flags.args()?)
}
