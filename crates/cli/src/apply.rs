//! `ferry apply`, `resume`, `status` and `step`: carrying out a plan through a driver, with
//! the journal in a state directory.

use crate::{bad, load, read, write_out};
use anyhow::Result;
use ferry_exec::{
    Answer, ExecError, Input, Journal, ManualDriver, Options, Report, RunId, RunStatus, StepState,
    SystemClock,
};
use ferry_model::Plan;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Settings shared by `apply` and `resume`.
pub struct RunArgs {
    pub state: PathBuf,
    pub pause_after: Vec<String>,
    pub parallel: usize,
    pub ignore_window: bool,
}

fn open(state: &Path) -> Result<Journal> {
    Journal::open(state).map_err(|e| bad(format!("cannot open the journal: {e}")))
}

fn options(plan: &Plan, args: &RunArgs) -> Options {
    Options {
        parallel: args.parallel.max(1),
        pause_after: args.pause_after.clone(),
        window_end: if args.ignore_window {
            None
        } else {
            ferry_exec::window_end(plan)
        },
        ..Options::default()
    }
}

fn now() -> i64 {
    use ferry_exec::Clock;
    SystemClock.now()
}

fn manual<'a>(journal: &'a Journal, plan: &Plan) -> ManualDriver<'a> {
    let input = if std::io::stdin().is_terminal() {
        Input::Lines(Box::new(std::io::stdin().lock()))
    } else {
        Input::Journal {
            every: Duration::from_millis(200),
            max_wait: None,
        }
    };
    ManualDriver::new(
        journal,
        plan,
        input,
        Box::new(std::io::stdout()),
        Box::new(now),
    )
}

fn finish(result: Result<Report, ExecError>, state: &Path) -> Result<ExitCode> {
    match result {
        Ok(r) => {
            let mut text = format!(
                "\nrun {}: {} — {} of {} steps done, {} skipped, {} pending",
                r.run,
                r.status.as_str(),
                r.done,
                r.steps,
                r.skipped,
                r.pending
            );
            for (id, reason) in &r.failed {
                text.push_str(&format!("\nfailed: {id}: {reason}"));
            }
            if let Some(m) = &r.message {
                text.push_str(&format!("\n{m}"));
            }
            if r.status != RunStatus::Complete {
                text.push_str(&format!(
                    "\nsee `ferry status --state {} {}`; continue with `ferry resume --state {} {}`",
                    state.display(),
                    r.run,
                    state.display(),
                    r.run
                ));
            }
            text.push('\n');
            write_out(None, &text)?;
            Ok(if r.status == RunStatus::Complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(ExecError::BadPlan(m)) => Err(bad(format!("the plan cannot be executed: {m}"))),
        Err(e @ ExecError::Driver { .. }) => {
            eprintln!("ferry: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn apply(
    profile_dirs: &[PathBuf],
    plan_path: &Path,
    site: &str,
    args: &RunArgs,
) -> Result<ExitCode> {
    let text = read(plan_path)?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "{}: not a ferry plan (make one with `ferry plan SITE --format json -o PLAN.json`): {e}",
            plan_path.display()
        ))
    })?;
    let l = load(profile_dirs, site)?;
    if l.hash != plan.input_hash {
        return Err(bad(format!(
            "{}: the site or a profile changed since this plan was made (plan input hash {}, now {}); \
make a new plan with `ferry plan {site} --format json -o {}`",
            plan_path.display(),
            short(&plan.input_hash),
            short(&l.hash),
            plan_path.display()
        )));
    }
    let opts = options(&plan, args);
    ferry_exec::validate(&plan, &opts).map_err(|e| bad(e.to_string()))?;
    let journal = open(&args.state)?;
    let mut driver = manual(&journal, &plan);
    let result = ferry_exec::apply(&journal, &plan, &mut driver, &SystemClock, &opts);
    drop(driver);
    finish(result, &args.state)
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

fn pick_run(journal: &Journal, run: Option<RunId>, state: &Path) -> Result<RunId> {
    match run {
        Some(r) => {
            journal
                .run(r)
                .map_err(|e| bad(format!("{}: {e}", state.display())))?;
            Ok(r)
        }
        None => journal
            .latest_run()
            .map_err(|e| bad(format!("{}: {e}", state.display()))),
    }
}

pub fn resume(run: Option<RunId>, args: &RunArgs) -> Result<ExitCode> {
    let journal = open(&args.state)?;
    let run = pick_run(&journal, run, &args.state)?;
    let plan = journal.plan(run)?;
    let opts = options(&plan, args);
    ferry_exec::validate(&plan, &opts).map_err(|e| bad(e.to_string()))?;
    let mut driver = manual(&journal, &plan);
    let result = ferry_exec::resume(&journal, run, &mut driver, &SystemClock, &opts);
    drop(driver);
    finish(result, &args.state)
}

fn time(t: Option<i64>) -> String {
    t.and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn status(state: &Path, run: Option<RunId>, json: bool) -> Result<ExitCode> {
    let journal = open(state)?;
    let runs = journal.runs()?;
    let run = pick_run(&journal, run, state)?;
    let summary = journal.run(run)?;
    let steps = journal.steps(run)?;
    let text = if json {
        serde_json::to_string_pretty(&serde_json::json!({
            "schema_version": ferry_model::plan::SCHEMA_VERSION,
            "run": summary,
            "steps": steps,
            "runs": runs,
        }))? + "\n"
    } else {
        let mut t = String::new();
        if runs.len() > 1 {
            t.push_str("runs:\n");
            for r in &runs {
                t.push_str(&format!(
                    "  {:>4}  {:9} {}  {}\n",
                    r.id,
                    r.status.as_str(),
                    time(Some(r.created)),
                    r.site
                ));
            }
            t.push('\n');
        }
        t.push_str(&format!(
            "run {}  site {}  status {}  created {}  plan {}\n",
            summary.id,
            summary.site,
            summary.status.as_str(),
            time(Some(summary.created)),
            short(&summary.input_hash)
        ));
        let count = |s: StepState| steps.iter().filter(|x| x.state == s).count();
        t.push_str(&format!(
            "{} steps: {} done, {} skipped, {} failed, {} running, {} pending\n\n",
            steps.len(),
            count(StepState::Done),
            count(StepState::Skipped),
            count(StepState::Failed),
            count(StepState::Running),
            count(StepState::Pending)
        ));
        for (i, s) in steps.iter().enumerate() {
            t.push_str(&format!(
                "{:>4}  {:8} {:20} {:20} {}{}\n",
                i + 1,
                s.state.as_str(),
                time(s.started),
                time(s.ended),
                s.id,
                if s.detail.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", s.detail)
                }
            ));
        }
        t
    };
    write_out(None, &text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn answer(state: &Path, run: Option<RunId>, step: &str, answer: Answer) -> Result<ExitCode> {
    let journal = open(state)?;
    let run = pick_run(&journal, run, state)?;
    let steps = journal.steps(run)?;
    let Some(s) = steps.iter().find(|s| s.id == step) else {
        return Err(bad(format!("run {run} has no step `{step}`")));
    };
    if s.state.is_settled() {
        return Err(bad(format!(
            "step `{step}` of run {run} is already {}; the answer would change nothing",
            s.state.as_str()
        )));
    }
    journal.answer(run, step, &answer, now())?;
    let word = match &answer {
        Answer::Done => "done".to_string(),
        Answer::Failed(r) => format!("failed: {r}"),
        Answer::Skip => "skip".to_string(),
    };
    write_out(None, &format!("run {run}, step {step}: {word}\n"))?;
    Ok(ExitCode::SUCCESS)
}
