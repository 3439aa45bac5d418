//! `ferry rehearse`: a plan (or a site, planned first) rehearsed against the simulated digital
//! twin of its site, once or many times (Monte Carlo), with faults if asked.

use crate::args::{parse_share, FormatFlag, Global};
use crate::exit::bad;
use crate::load::{check_strategy, load, load_carried, plan_error, read, write_out, Loaded};
use crate::runs::{read_faults, used_profiles, PolicyArg};
use anyhow::Result;
use ferry_exec::{monte_carlo, rehearse, FailurePolicy, Options, Rehearse, RunStatus};
use ferry_model::Plan;
use ferry_plan::PlanOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Rehearse a plan against the digital twin of its site (a simulation), with faults if
/// asked: service impact, broken rules, window length.
///
/// The twin simulates what the vendor documents say happens: versions installed and
/// switched, databases replicating, devices failing over and re-registering, HA pairs
/// promoting, configuration servers in read-only and upgrade modes, data collection per
/// interval. The executor carries the plan out against it in virtual time; the auditor
/// then checks every order, sequence, limit and check rule of the profile on what ran.
///
/// Faults file (TOML), one table per fault:
///   [[fault]]
///   kind = "crash"            # crash, install_failure, replication_stuck, link_failure,
///                             # slow_step, config_change, unhealthy
///   step = "ucm/ucm-sub1/switch-version"   # or "*/switch-version", or at_min = 90
///   node = "ucm-sub1"         # optional: the step's node by default
///   recover_min = 20          # crash, link_failure: back after this long
///   state = 4                 # replication_stuck: 3 or 4
///   factor = 3                # slow_step
///   probability = 0.2         # for --runs: fires in this share of the runs
///
/// Exit 0 when every run completed with every node on target and no rule broken, 1
/// otherwise (a failed step, a rehearsed rollback that failed, odds below `--min-fit`), 2
/// on bad input.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A site (path or `example:NAME`), planned first; or a plan file (`*.json`), rehearsed
    /// against the site and profiles it carries (or --site).
    target: String,
    /// The site a plan file was made from (refused if it changed since); without it, the site
    /// and profiles the plan carries.
    #[arg(long)]
    site: Option<String>,
    /// Faults to inject (see above).
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    /// Rehearse this many times, one seed each (a Monte Carlo rehearsal): median and worst
    /// window, impact percentiles, probability of finishing inside the booked window.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100000))]
    runs: u32,
    /// With --runs: exit 1 when the share of the runs that end inside the booked window is
    /// below P (0 to 1, e.g. 0.9), so a pipeline can gate on the odds.
    #[arg(long, value_name = "P", value_parser = parse_share)]
    min_fit: Option<f64>,
    /// Seed of the first run (durations and convergence times are drawn from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Planning a site: `fastest` (default), `one-at-a-time`, `balanced`, `documented`, or a profile's own strategy.
    #[arg(long)]
    strategy: Option<String>,
    /// Planning a site: run ahead of the window what the profiles let run while the nodes
    /// keep serving, even when the site books no staging period (see `ferry plan --stage`).
    #[arg(long)]
    stage: bool,
    /// What a failed step leads to: rollback-node and rollback-all rehearse the rollback too.
    #[arg(long, value_enum, default_value = "stop")]
    policy: PolicyArg,
    #[command(flatten)]
    format: FormatFlag,
    /// Make a fact name no profile declares (a typo such as `devcies`) an error, not a warning.
    #[arg(long)]
    strict: bool,
    /// Also print the timeline of every step and what the twin saw (its log).
    #[arg(long)]
    trace: bool,
    /// Write the output to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn plan_site(l: &Loaded, strategy: Option<String>, stage: bool) -> Result<Plan> {
    ferry_plan::plan(
        &l.site,
        |n| l.profiles.get(n).map(|p| &p.profile),
        l.hash.clone(),
        &PlanOptions {
            strategy,
            stage,
            ..PlanOptions::default()
        },
    )
    .map_err(|e| plan_error(l, e))
}

/// The plan to rehearse and what it was made from: a plan file with `--site`, or a site.
fn target(profile_dirs: &[PathBuf], args: &Args) -> Result<(Loaded, Plan)> {
    let is_plan = args.target.ends_with(".json");
    if !is_plan {
        if args.site.is_some() {
            return Err(bad(format!(
                "`--site` goes with a plan file; {} is a site already",
                args.target
            )));
        }
        let l = load(profile_dirs, &args.target, args.strict)?;
        check_strategy(&l, args.strategy.as_deref())?;
        let plan = plan_site(&l, args.strategy.clone(), args.stage)?;
        return Ok((l, plan));
    }
    if args.strategy.is_some() {
        return Err(bad(
            "`--strategy` goes with a site; a plan file already has its strategy",
        ));
    }
    if args.stage {
        return Err(bad(
            "`--stage` goes with a site; a plan file already says what it stages",
        ));
    }
    let text = read(Path::new(&args.target))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "{}: not a ferry plan (make one with `ferry plan SITE --format json -o PLAN.json`): {e}",
            args.target
        ))
    })?;
    // Without --site, the site and profiles the plan carries (as `ferry apply PLAN.json`).
    let (l, site) = match args.site.as_deref() {
        Some(site) => (load(profile_dirs, site, args.strict)?, site.to_string()),
        None => {
            let l = load_carried(Path::new(&args.target))?;
            let site = l.inputs.site_name.clone();
            (l, site)
        }
    };
    if l.hash != plan.input_hash {
        return Err(bad(format!(
            "{}: the site or a profile changed since this plan was made; make a new plan with `ferry plan {site} --format json -o {}`",
            args.target, args.target
        )));
    }
    Ok((l, plan))
}

pub fn run(g: &Global, args: Args) -> Result<ExitCode> {
    let args = &args;
    let runs = args.runs as usize;
    let json = args.format.json();
    let (l, plan) = target(&g.profiles, args)?;
    ferry_exec::validate(&plan, &Options::default())
        .map_err(|e| bad(format!("{}: {e}", args.target)))?;
    let faults = read_faults(args.faults.as_deref())?;
    let profiles = used_profiles(&l.site, &l.profiles);
    let mut inputs = l.inputs.clone();
    if args.strategy.is_some() {
        inputs.strategy = args.strategy.clone();
    }
    let r = Rehearse {
        site: &l.site,
        profiles: &profiles,
        inputs: &inputs,
        plan: &plan,
        faults: &faults,
        policy: FailurePolicy::from(args.policy),
    };
    // Named by the file it comes from: a fault entry by the faults file, the rest by the plan.
    let bad_twin = |e: ferry_exec::RehearseError| match e {
        ferry_exec::RehearseError::Twin(e @ ferry_twin::TwinError::BadFault { .. }) => {
            bad(format!(
                "{}: cannot rehearse: {e}",
                args.faults
                    .as_deref()
                    .map_or_else(|| "the faults".into(), |p| p.display().to_string())
            ))
        }
        ferry_exec::RehearseError::Twin(e) => bad(format!("{}: cannot rehearse: {e}", args.target)),
        e => anyhow::Error::new(e),
    };
    if runs > 1 {
        let (runs, summary) =
            monte_carlo(&r, args.seed..args.seed + runs as u64).map_err(bad_twin)?;
        let text = if json {
            ferry_exec::RehearseReport::Runs(ferry_exec::MonteCarloReport {
                schema_version: ferry_model::plan::SCHEMA_VERSION,
                site: &plan.site,
                input_hash: &plan.input_hash,
                summary: &summary,
                runs: &runs,
            })
            .to_json()?
        } else {
            ferry_exec::rehearse::summary_text(&summary, &plan, args.seed)
        };
        write_out(args.output.as_deref(), &text)?;
        let clean = summary.completed == summary.runs
            && summary.on_target == summary.runs
            && summary.with_violations == 0;
        let fits = match (args.min_fit, summary.inside_window) {
            (None, _) => true,
            (Some(p), Some(share)) => {
                let ok = share >= p;
                if !ok {
                    eprintln!(
                        "ferry: the odds of fitting the booked window are {:.1}% ({} of {} runs end inside it), below --min-fit {:.1}%",
                        share * 100.0,
                        (share * summary.runs as f64).round(),
                        summary.runs,
                        p * 100.0
                    );
                }
                ok
            }
            (Some(_), None) => {
                return Err(bad(format!(
                    "{}: --min-fit needs a booked window (`[site] window`) to fit",
                    args.target
                )))
            }
        };
        return Ok(if clean && fits {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let rh = rehearse(&r, args.seed).map_err(bad_twin)?;
    let text = if json {
        ferry_exec::RehearseReport::Once(ferry_exec::RehearsalReport {
            schema_version: ferry_model::plan::SCHEMA_VERSION,
            site: &plan.site,
            input_hash: &plan.input_hash,
            rehearsal: &rh,
            inside_window: rh.inside_window(),
            trace: args.trace.then_some(rh.world.trace.as_slice()),
            log: args.trace.then_some(rh.world.log.as_slice()),
        })
        .to_json()?
    } else {
        ferry_exec::rehearse::rehearsal_text(&rh, &plan, args.trace)
    };
    write_out(args.output.as_deref(), &text)?;
    let f = rh.figures();
    // A rollback that failed leaves the site between versions: never a success.
    let rollback_ok = match &rh.rollback {
        Some(rb) if rb.status != RunStatus::Complete => {
            eprintln!(
                "ferry: the rehearsed rollback did not complete ({}): the site would be left between versions",
                rb.status.as_str()
            );
            false
        }
        _ => true,
    };
    Ok(
        if f.completed && f.on_target && f.violations == 0 && rollback_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
