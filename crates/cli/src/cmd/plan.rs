//! `ferry plan SITE`: the plan (version paths, step order with rule IDs, schedule, window,
//! rollback) in every format, its odds from rehearsals, `--explain STEP`, and `--compare` of
//! every strategy.

use crate::args::Global;
use crate::exit::bad;
use crate::load::{check_strategy, load, write_out, SavedPlan};
use crate::{odds, runs};
use anyhow::Result;
use clap::ValueEnum;
use ferry_plan::{render, PlanOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// What `plan` writes.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PlanFormat {
    /// The plan for the terminal.
    Text,
    /// The plan as JSON (what `apply` and `rehearse` read), with the site and profiles it was
    /// made from.
    Json,
    /// A method of procedure, in Markdown.
    Mop,
    /// The method of procedure and the Gantt chart as one self-contained HTML page, printable
    /// to PDF.
    Html,
    /// A Gantt chart.
    Svg,
    /// The step graph, for Graphviz.
    Dot,
}

/// Plan the upgrade: version paths, step order with rule IDs, schedule, window estimate, rollback.
#[derive(clap::Args)]
pub struct Args {
    /// Site file, or `example:NAME`.
    site: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Make a fact name no profile declares (a typo such as `devcies`) an error, not a warning.
    #[arg(long)]
    strict: bool,
    /// `fastest` (default: the shortest window the rules allow), `one-at-a-time`, `balanced` (servers out in batches that keep every device served), `documented` (the documents' task order), or a profile's own strategy.
    #[arg(long)]
    strategy: Option<String>,
    /// Run ahead of the window what the profiles let run while the nodes keep serving (a
    /// standard install, a package staged into an inactive slot), even when the site books
    /// no staging period (`[site] stage`): it is planned to end as the window opens.
    #[arg(long)]
    stage: bool,
    /// Explain why one step is where it is (its ID, as `cluster/node/action`).
    #[arg(long, value_name = "STEP")]
    explain: Option<String>,
    /// Write the output to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Use the durations observed in the runs journaled in this state directory (median
    /// per profile and step action) instead of the profiles' estimates; such steps are
    /// marked `observed`. Where a step was observed at least 5 times, the spread of its
    /// durations replaces the profile's in the rehearsals too.
    #[arg(long, value_name = "STATE")]
    estimates_from: Option<PathBuf>,
    /// Rehearse the plan this many times against the twin (seeds 1 to N, as `ferry
    /// rehearse --runs N`) and state the window's P50 and P90 and the probability of
    /// ending inside the booked window. 0: not rehearsed (the plan says so).
    #[arg(long, default_value_t = odds::DEFAULT_RUNS, value_parser = clap::value_parser!(u32).range(0..=100000))]
    runs: u32,
    /// Compare every strategy (with and without staging where the site books a staging
    /// period, or with `--stage`), each rehearsed `--runs` times: window P50 and P90,
    /// P(fit), the service costs, the plans no other beats (Pareto) and the one the site's
    /// `[site.objectives]` recommend. Text or JSON.
    #[arg(long, conflicts_with_all = ["strategy", "explain"])]
    compare: bool,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let Args {
        site,
        format,
        strict,
        strategy,
        stage,
        explain,
        output,
        estimates_from,
        runs,
        compare,
    } = a;
    let l = load(&g.profiles, &site, strict)?;
    check_strategy(&l, strategy.as_deref())?;
    let inputs = ferry_exec::RunInputs {
        strategy: strategy.clone(),
        ..l.inputs.clone()
    };
    let (estimates, spreads) = match &estimates_from {
        Some(state) => runs::observed_estimates(state)?,
        None => Default::default(),
    };
    let opts = PlanOptions {
        strategy,
        estimates,
        spreads,
        stage,
        ..PlanOptions::default()
    };
    if compare {
        if runs == 0 {
            return Err(bad(
                "`--compare` rehearses every plan: give `--runs` a number above 0",
            ));
        }
        let c = odds::compare_plans(&l, &opts, runs)?;
        let text = match format {
            PlanFormat::Text => ferry_exec::compare::compare_text(&c),
            PlanFormat::Json => serde_json::to_string_pretty(&c)? + "\n",
            _ => return Err(bad("`--compare` writes text or json")),
        };
        write_out(output.as_deref(), &text)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The odds are stated where the plan's text says whether it fits the window; the
    // graph and an explanation need none.
    let runs = if explain.is_some() || format == PlanFormat::Dot {
        0
    } else {
        runs
    };
    let (plan, plan_odds) = odds::plan_and_odds(&l, &l.site, &opts, runs)?;
    tracing::info!(steps = plan.steps.len(), strategy = %plan.strategy, rehearsals = runs, "planned");
    if let Some(id) = explain {
        let text = ferry_plan::explain(&plan, &id).ok_or_else(|| {
            let near: Vec<&str> = plan
                .steps
                .iter()
                .map(|s| s.id.as_str())
                .filter(|s| {
                    s.contains(id.as_str()) || id.contains(s.rsplit('/').next().unwrap_or(""))
                })
                .take(8)
                .collect();
            bad(format!(
                "no step `{id}` in the plan{}",
                if near.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean: {}", near.join(", "))
                }
            ))
        })?;
        write_out(output.as_deref(), &text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = match format {
        PlanFormat::Text => render::text::render_text(&plan),
        PlanFormat::Json => {
            let saved = SavedPlan {
                plan: &plan,
                inputs: &inputs,
            };
            serde_json::to_string_pretty(&saved)? + "\n"
        }
        PlanFormat::Mop | PlanFormat::Html => {
            let risk = plan_odds.as_ref().map(odds::risk);
            if format == PlanFormat::Html {
                render::html::render_html(&plan, risk.as_ref())
            } else {
                render::mop::render_mop_with(&plan, risk.as_ref())
            }
        }
        PlanFormat::Svg => render::svg::render_svg(&plan),
        PlanFormat::Dot => render::dot::render_dot(&plan),
    };
    write_out(output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
