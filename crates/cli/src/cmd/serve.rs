//! `ferry serve`: the team's shared view of an upgrade (the `ferry-serve` crate), with the
//! example sites built into this binary.

use crate::args::Global;
use anyhow::Result;
use std::process::ExitCode;

/// The web dashboard, the JSON API, approvals by role and the metrics of a state directory
/// (docs/serve.md).
pub type Args = ferry_serve::ServeArgs;

pub fn run(_g: &Global, a: Args) -> Result<ExitCode> {
    ferry_serve::run(a.with_examples(crate::example_sites::EXAMPLES))
}
