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
    let plan = plan_site(&l, None, false)?;
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
    // The same site with the cautious strategy, side by side.
    let cautious = plan_site(&l, Some("one-at-a-time".into()), false)?;
    let mut inputs = l.inputs.clone();
    inputs.strategy = Some("one-at-a-time".into());
    let rc = rehearse(
        &Rehearse {
            plan: &cautious,
            inputs: &inputs,
            ..r
        },
        1,
    )?;
    let (fast, slow) = (rh.figures(), rc.figures());
    text.push_str(&format!(
        "\nthe same rehearsal with --strategy one-at-a-time ({} against {}):\n",
        ferry_plan::render::duration(slow.window_s.max(0) as u64),
        ferry_plan::render::duration(fast.window_s.max(0) as u64)
    ));
    for (k, v) in &fast.figures {
        let w = slow.figures.get(k).copied().unwrap_or(0.0);
        if (w - v).abs() >= 1.0 {
            text.push_str(&format!("  {k:44} {v:>12.0} -> {w:>12.0}\n"));
        }
    }
    // 4. apply through the twin driver, journaled in a state directory of its own.
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
    text.push_str(&format!("\n== 4. apply {site} (the twin driver)\n\n"));
    text.push_str(&applied?);
    text.push_str(&format!(
        "\nNext: `ferry plan {site} --format mop` for the method of procedure, `ferry rehearse {site} --runs 200` for the odds, \
`ferry rehearse {site} --faults FILE` to see a fault's impact, `ferry apply PLAN.json --site {site} --driver twin` to run it journaled.\n"
    ));
    write_out(None, &text)?;
    Ok(ExitCode::SUCCESS)
}

/// The risk summary of a method of procedure: `runs` Monte Carlo rehearsals of `plan` against
/// the twin (seeds 0..runs, so the same inputs give the same figures).
pub fn risk(l: &Loaded, plan: &Plan, runs: u64) -> Result<ferry_plan::render::mop::Risk> {
    let profiles = used_profiles(&l.site, &l.profiles);
    let faults = ferry_model::Faults::default();
    let r = Rehearse {
        site: &l.site,
        profiles: &profiles,
        inputs: &l.inputs,
        plan,
        faults: &faults,
        policy: FailurePolicy::Stop,
    };
    let (_, summary) = ferry_exec::rehearse::monte_carlo(&r, 0..runs)
        .map_err(|e| bad(format!("cannot rehearse for the risk summary: {e}")))?;
    let secs = |x: f64| x.max(0.0).round() as u64;
    let wanted = ["calls failed", "HA pairs: minutes without redundancy"];
    let mut figures: Vec<(String, f64, f64)> = summary
        .figures
        .iter()
        .filter(|(k, _)| wanted.contains(&k.as_str()) || k.ends_with("device-minutes unregistered"))
        .map(|(k, d)| (k.clone(), d.median, d.p90))
        .collect();
    for w in wanted {
        if !figures.iter().any(|f| f.0 == w) {
            figures.push((w.to_string(), 0.0, 0.0));
        }
    }
    Ok(ferry_plan::render::mop::Risk {
        runs: summary.runs,
        window_p50_s: secs(summary.window_s.median),
        window_p90_s: secs(summary.window_s.p90),
        fit_probability: summary.inside_window,
        figures,
    })
}
