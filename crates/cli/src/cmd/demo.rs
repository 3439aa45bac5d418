//! `ferry demo [NAME]`: checks, plans, rehearses, compares and applies a built-in example
//! against the digital twin, and prints the reports and the service impact.

use crate::args::Global;
use crate::load::{load, write_out};
use crate::odds;
use crate::runs::used_profiles;
use anyhow::Result;
use ferry_exec::{
    rehearse, FailurePolicy, Journal, NewRun, Options, Rehearse, RunKind, RunStatus, TwinDriver,
};
use ferry_plan::PlanOptions;
use std::process::ExitCode;

/// Check, plan, rehearse and apply a built-in example against the digital twin, and print
/// the reports and the service impact.
#[derive(clap::Args)]
pub struct Args {
    /// Example name (see `ferry examples`).
    #[arg(default_value = "ucm-standard")]
    name: String,
}

/// `ferry demo`: check, plan, rehearse and apply a built-in example against the twin.
pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let site = format!("example:{}", a.name);
    let l = load(&g.profiles, &site, false)?;
    let plan = odds::plan_with_odds(&l, &l.site, &PlanOptions::default(), odds::DEFAULT_RUNS)?;
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
    let compared = odds::compare_plans(&l, &PlanOptions::default(), odds::DEFAULT_RUNS)?;
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
