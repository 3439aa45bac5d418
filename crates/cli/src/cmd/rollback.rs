//! `ferry rollback [RUN]`: rolls a journaled run back, as a new run of kind `rollback`.

use crate::args::{Global, RunTarget};
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
///
/// With `--format json`, the rollback run's outcome is printed at the end as `ferry apply`
/// prints it (see `ferry apply --help`); progress goes to standard error.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: RunTarget,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    runs::rollback(a.target.run, &a.target.flags.args()?)
}
