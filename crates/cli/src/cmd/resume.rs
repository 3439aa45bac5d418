//! `ferry resume [RUN]`: continues a journaled run after a pause, a stop or a crash.

use crate::args::{Global, RunTarget};
use crate::runs;
use anyhow::Result;
use std::process::ExitCode;

/// Continue a run (the newest when RUN is omitted).
///
/// Steps started but not recorded as ended (a crash) are settled first by asking the
/// driver; done and skipped steps are never run again; failed steps are tried again.
///
/// With `--format json`, the run's outcome is printed at the end as `ferry apply` prints it
/// (see `ferry apply --help`); progress goes to standard error.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: RunTarget,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    runs::resume(a.target.run, &a.target.flags.args()?)
}
