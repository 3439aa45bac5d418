//! `ferry rehearse` and `ferry demo`: a plan (or a site, planned first) rehearsed against the
//! simulated digital twin of its site, and the demo that checks, plans, rehearses and applies a
//! built-in example against the twin.

use crate::apply::{read_faults, used_profiles, PolicyArg};
use crate::{bad, load, plan_error, read, write_out, Loaded};
use anyhow::Result;
use ferry_exec::{
    monte_carlo, rehearse, FailurePolicy, Journal, NewRun, Options, Rehearse, RunKind, RunStatus,
    TwinDriver,
};
use ferry_model::Plan;
use ferry_plan::PlanOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct RehearseArgs {
    pub target: String,
    pub site: Option<String>,
    pub faults: Option<PathBuf>,
    pub runs: usize,
    /// With `runs`: the least share of runs that must end inside the booked window.
    pub min_fit: Option<f64>,
    /// Unknown fact names refuse the site.
    pub strict: bool,
    pub seed: u64,
    pub strategy: Option<String>,
    /// Planning a site: stage work ahead of the window even without a booked staging period.
    pub stage: bool,
    pub policy: PolicyArg,
    pub json: bool,
    pub trace: bool,
    pub output: Option<PathBuf>,
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
fn target(profile_dirs: &[PathBuf], args: &RehearseArgs) -> Result<(Loaded, Plan)> {
    let is_plan = args.target.ends_with(".json");
    if !is_plan {
        if args.site.is_some() {
            return Err(bad(format!(
                "`--site` goes with a plan file; {} is a site already",
                args.target
            )));
        }
        let l = load(profile_dirs, &args.target, args.strict)?;
        crate::check_strategy(&l, args.strategy.as_deref())?;
        let plan = plan_site(&l, args.strategy.clone(), args.stage)?;
        return Ok((l, plan));
    }
    let site = args.site.as_deref().ok_or_else(|| {
        bad(format!(
            "{}: a plan is rehearsed against a twin of its site: give the site with `--site SITE`",
            args.target
        ))
    })?;
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
    let l = load(profile_dirs, site, args.strict)?;
    if l.hash != plan.input_hash {
        return Err(bad(format!(
            "{}: the site or a profile changed since this plan was made; make a new plan with `ferry plan {site} --format json -o {}`",
            args.target, args.target
        )));
    }
    Ok((l, plan))
}

pub fn run(profile_dirs: &[PathBuf], args: &RehearseArgs) -> Result<ExitCode> {
    let (l, plan) = target(profile_dirs, args)?;
    ferry_exec::validate(&plan, &Options::default())
        .map_err(|e| bad(format!("{}: {e}", args.target)))?;
    let faults = read_faults(args.faults.as_deref())?;
    let profiles = used_profiles(&l.site, &l.profiles);
    let mut inputs = l.inputs.clone();
    inputs.strategy = args.strategy.clone();
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
    if args.runs > 1 {
        let (runs, summary) =
            monte_carlo(&r, args.seed..args.seed + args.runs as u64).map_err(bad_twin)?;
        let text = if args.json {
            serde_json::to_string_pretty(&serde_json::json!({
                "schema_version": ferry_model::plan::SCHEMA_VERSION,
                "site": plan.site,
                "input_hash": plan.input_hash,
                "summary": summary,
                "runs": runs,
            }))? + "\n"
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
    let text = if args.json {
        serde_json::to_string_pretty(&serde_json::json!({
            "schema_version": ferry_model::plan::SCHEMA_VERSION,
            "site": plan.site,
            "input_hash": plan.input_hash,
            "rehearsal": rh,
            "inside_window": rh.inside_window(),
            "trace": if args.trace { Some(&rh.world.trace) } else { None },
            "log": if args.trace { Some(&rh.world.log) } else { None },
        }))? + "\n"
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

/// `ferry demo`: check, plan, rehearse and apply a built-in example against the twin.
pub fn demo(profile_dirs: &[PathBuf], name: &str) -> Result<ExitCode> {
    let site = format!("example:{name}");
    let l = load(profile_dirs, &site, false)?;
    let plan = crate::odds::plan_with_odds(
        &l,
        &l.site,
        &PlanOptions::default(),
        crate::odds::DEFAULT_RUNS,
    )?;
    let mut text = String::new();
    text.push_str(&format!("== 1. check {site}\n\n"));
    text.push_str(&ferry_plan::report::check_text(
        &l.site.name,
        &plan.findings,
    ));
    text.push_str(&format!("\n== 2. plan {site}\n\n"));
    text.push_str(&ferry_plan::render::text::render_text(&plan));
    let profiles = used_profiles(&l.site, &l.profiles);
    let faults = ferry_model::Faults::default();
    let r = Rehearse {
        site: &l.site,
        profiles: &profiles,
        inputs: &l.inputs,
        plan: &plan,
        faults: &faults,
        policy: FailurePolicy::Stop,
    };
    let rh = rehearse(&r, 1)?;
    text.push_str(&format!("\n== 3. rehearse {site}\n\n"));
    text.push_str(&ferry_exec::rehearse::rehearsal_text(&rh, &plan, false));
    // 4. every strategy (staged and not where the site books it), rehearsed and compared.
    let compared =
        crate::odds::compare_plans(&l, &PlanOptions::default(), crate::odds::DEFAULT_RUNS)?;
    text.push_str(&format!("\n== 4. compare the plans of {site}\n\n"));
    text.push_str(&ferry_exec::compare::compare_text(&compared));
    // 5. apply through the twin driver, journaled in a state directory of its own.
    let state = std::env::temp_dir().join(format!("ferry-demo-{}", std::process::id()));
    let applied = (|| -> Result<String> {
        let journal = Journal::open(&state)?;
        let mut driver = TwinDriver::persistent(&journal, None, &l.hash, &profiles, || {
            ferry_twin::World::build(&l.site, &profiles, &plan, &faults, 1)
        })?;
        let new = NewRun {
            kind: RunKind::Apply,
            parent: None,
            driver: "twin".into(),
            inputs: Some(l.inputs.clone()),
            ignore_window: false,
            supersede: false,
            by: None,
        };
        let opts = Options {
            approve_all: true,
            window_end: ferry_exec::window_end(&plan),
            ..Options::default()
        };
        let report = ferry_exec::apply(&journal, &plan, &new, &mut driver, &opts, &mut ())?;
        let mut world = driver.into_world();
        world.finish();
        let audit = ferry_twin::audit(&world, &plan);
        let broken = audit
            .iter()
            .filter(|v| v.severity == ferry_model::Severity::Inhibitor)
            .count();
        let events = journal.events(report.run)?.len();
        Ok(format!(
            "apply run {} through the twin driver: {} — {} of {} steps done, {} journal events, auditor: {} broken rule(s)\n",
            report.run,
            report.status.as_str(),
            report.done,
            report.steps,
            events,
            broken
        ) + if report.status == RunStatus::Complete {
            ""
        } else {
            "the run did not complete: see the rehearsal above for why\n"
        })
    })();
    let _ = std::fs::remove_dir_all(&state);
    text.push_str(&format!("\n== 5. apply {site} (the twin driver)\n\n"));
    text.push_str(&applied?);
    text.push_str(&format!(
        "\nNext: `ferry plan {site} --format mop` for the method of procedure, `ferry rehearse {site} --runs 200` for each figure's percentiles, \
`ferry rehearse {site} --faults FILE` to see a fault's impact, `ferry apply PLAN.json --site {site} --driver twin` to run it journaled.\n"
    ));
    write_out(None, &text)?;
    Ok(ExitCode::SUCCESS)
}
