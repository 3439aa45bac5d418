//! `ferry resume [RUN]`: continues a journaled run after a pause, a stop or a crash.

use crate::args::{Global, RunFlags};
use crate::runs;
use anyhow::Result;
use std::process::ExitCode;

/// Continue a run (the newest when RUN is omitted).
///
/// Steps started but not recorded as ended (a crash) are settled first by asking the
/// driver; done and skipped steps are never run again; failed steps are tried again.
#[derive(clap::Args)]
pub struct Args {
    /// The run's number (as `ferry status` lists them); the newest when omitted.
    run: Option<i64>,
    #[command(flatten)]
    run_flags: RunFlags,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    runs::resume(a.run, &a.run_flags.args()?)
}
