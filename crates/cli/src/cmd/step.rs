//! `ferry step done|failed|skip STEP`: the manual driver's answer for a step, given from
//! another shell.

use crate::args::{FormatFlag, Global, StateDir};
use crate::{confirm, runs};
use anyhow::Result;
use clap::ValueEnum;
use std::process::ExitCode;

/// The operator's answer.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StepAnswer {
    Done,
    Failed,
    Skip,
}

/// Answer a step of a run for the manual driver: done, failed (with --reason) or skip.
///
/// A step that has not started yet is refused (exit 2) unless `--early` is given: the
/// runbook then takes the answer the moment the step starts. Early answers are journaled
/// as such, shown by `ferry status`, and never learned as durations (`--estimates-from`).
///
/// JSON: `run`, `step`, `answer` (done, failed or skip), `reason`, `by` and `early`.
#[derive(clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    answer: StepAnswer,
    /// The step's ID (`cluster/node/action`).
    step: String,
    #[command(flatten)]
    state: StateDir,
    /// The run's number (as `ferry status` lists them); the newest when omitted.
    #[arg(long)]
    run: Option<i64>,
    /// Why the step failed.
    #[arg(long)]
    reason: Option<String>,
    /// Answer a step that has not started yet (ahead of time): recorded as early.
    #[arg(long)]
    early: bool,
    /// Who gives it, journaled with it and shown by `ferry status` (default: the OS user,
    /// from USER or LOGNAME, or the name of the user id).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    #[command(flatten)]
    format: FormatFlag,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    let answer = match a.answer {
        StepAnswer::Done => ferry_exec::Answer::Done,
        StepAnswer::Skip => ferry_exec::Answer::Skip,
        StepAnswer::Failed => {
            ferry_exec::Answer::Failed(a.reason.unwrap_or_else(|| "failed by the operator".into()))
        }
    };
    let given = ferry_exec::AnswerGiven {
        by: confirm::operator(a.by.as_deref())?,
        early: a.early,
    };
    runs::answer(
        &a.state.state,
        a.run,
        &a.step,
        answer,
        &given,
        a.format.json(),
    )
}
