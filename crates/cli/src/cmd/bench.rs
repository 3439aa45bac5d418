//! `ferry bench`: plans a generated fleet and every example, and reports time, peak memory
//! and plan quality (window against the lower bound and the one-at-a-time order).

use crate::args::{FormatFlag, Global};
use crate::example_sites::EXAMPLES;
use crate::load::{load_profiles, write_out};
use anyhow::Result;
use ferry_model::{Cluster, Site};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};
use serde::Serialize;
use std::time::Instant;

/// One example rehearsed against the twin (seed 1), with each strategy.
#[derive(Serialize)]
struct RehearsedExample {
    example: String,
    strategy: String,
    completed: bool,
    on_target: bool,
    window_s: i64,
    planned_s: u64,
    inside_window: Option<bool>,
    broken_rules: usize,
    warnings: usize,
    figures: std::collections::BTreeMap<String, f64>,
}

fn rehearse_example(
    name: &str,
    text: &str,
    site: &Site,
    profiles: &ProfileSet,
    strategy: &str,
) -> Result<RehearsedExample> {
    let map = used(site, profiles);
    let inputs = ferry_exec::RunInputs {
        site_name: format!("example:{name}"),
        site_text: text.to_string(),
        profiles: site
            .clusters
            .iter()
            .filter_map(|c| {
                profiles
                    .get(&c.profile)
                    .map(|p| (c.profile.clone(), p.text.clone()))
            })
            .collect(),
        strategy: Some(strategy.to_string()),
    };
    let plan = ferry_plan::plan(
        site,
        |n| profiles.get(n).map(|p| &p.profile),
        inputs.input_hash(),
        &PlanOptions {
            strategy: Some(strategy.to_string()),
            ..Default::default()
        },
    )?;
    let faults = ferry_model::Faults::default();
    let r = ferry_exec::Rehearse {
        site,
        profiles: &map,
        inputs: &inputs,
        plan: &plan,
        faults: &faults,
        policy: ferry_exec::FailurePolicy::Stop,
    };
    let rh = ferry_exec::rehearse(&r, 1)?;
    let f = rh.figures();
    Ok(RehearsedExample {
        example: name.to_string(),
        strategy: strategy.to_string(),
        completed: f.completed,
        on_target: f.on_target,
        window_s: f.window_s,
        planned_s: plan.makespan_s,
        inside_window: f.inside_window,
        broken_rules: f.violations,
        warnings: f.warnings,
        figures: f.figures,
    })
}

#[derive(Serialize)]
struct ExampleFigures {
    example: String,
    nodes: usize,
    steps: usize,
    makespan_s: u64,
    lower_bound_s: u64,
    sequential_s: u64,
    makespan_over_lower_bound: f64,
    sequential_over_makespan: f64,
    /// Window of the `one-at-a-time` strategy over the `fastest` one, planned side by side.
    one_at_a_time_over_fastest: f64,
    /// Window of the `balanced` strategy over the `fastest` one, where a profile of the example
    /// offers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    balanced_over_fastest: Option<f64>,
}

/// The strategies an example is rehearsed with: fastest, the shared strategies a profile of
/// the example offers (documented, balanced), and one at a time.
fn strategies_of(site: &Site, profiles: &ProfileSet) -> Vec<&'static str> {
    let offered = |s: &str| {
        site.clusters.iter().any(|c| {
            profiles
                .get(&c.profile)
                .is_some_and(|p| p.profile.profile.strategies.iter().any(|x| x == s))
        })
    };
    let mut v = vec!["fastest"];
    v.extend(
        ferry_model::profile::SHARED_STRATEGIES
            .iter()
            .copied()
            .filter(|s| offered(s)),
    );
    v.push("one-at-a-time");
    v
}

/// Rehearsal and executor figures, measured side by side in one run.
#[derive(Serialize)]
struct RunFiguresBench {
    /// The fleet rehearsed against the twin (build, execute, audit, impact).
    rehearse_ms: f64,
    rehearse_steps: usize,
    /// Steps done or skipped: fewer than `rehearse_steps` when a step failed and the run
    /// stopped (policy stop), and then the figures cover less work.
    rehearse_done: usize,
    /// Why the run stopped early, when it did.
    rehearse_halted: Option<String>,
    rehearse_broken_rules: usize,
    /// Broken rules by rule ID (the rehearsal fleet leaves out the inhibitor examples, whose
    /// rules are broken by design).
    rehearse_broken_by_rule: std::collections::BTreeMap<String, usize>,
    /// Per step, over the fleet: the executor with a driver whose steps end at once and an
    /// in-memory journal (the executor's own work); with the twin instead; with the twin and
    /// the journal on disk (WAL, synchronous=FULL), on the largest example.
    executor_us_per_step: f64,
    executor_twin_us_per_step: f64,
    durable_example: String,
    durable_steps: usize,
    executor_twin_durable_us_per_step: f64,
    executor_twin_memory_us_per_step_same_example: f64,
    /// `apply` through the twin with its world in a journal on disk (`--driver twin`), on
    /// generated fleets of growing size, measured side by side: the cost per step must not
    /// grow with the run's length.
    twin_journal_scaling: Vec<ScalingPoint>,
    peak_rss_mb: Option<f64>,
}

/// One size of the twin journal's scaling figure.
#[derive(Serialize, Clone)]
struct ScalingPoint {
    /// Steps the plan has.
    steps: usize,
    /// Steps the run carried out.
    ran: usize,
    us_per_step: f64,
}

/// Plan sizes of the twin journal's scaling figure (approximately: whole clusters).
const SCALING_STEPS: [usize; 3] = [1_000, 5_000, 20_000];

/// The example whose clusters, replicated, make the scaling figure's plans: its fleets of 13 to
/// 260 copies complete against the twin with seed 1, so every step of them runs.
const SCALING_EXAMPLE: &str = "genesys-framework";

#[derive(Serialize)]
struct FleetFigures {
    clusters: usize,
    nodes: usize,
    steps: usize,
    /// Median over `runs`.
    plan_ms: f64,
    plan_ms_min: f64,
    runs: usize,
    peak_rss_mb: Option<f64>,
}

/// Peak resident memory of this process, from the kernel's accounting.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A fleet of `clusters` clusters built by replicating the example sites round-robin, with
/// nodes of roles the profiles do not cap added until the fleet averages `nodes` nodes a cluster.
fn build_fleet(examples: &[Site], profiles: &ProfileSet, clusters: usize, nodes: usize) -> Site {
    let pool: Vec<&Cluster> = examples.iter().flat_map(|s| &s.clusters).collect();
    let mut out = Vec::with_capacity(clusters);
    for i in 0..clusters {
        let mut c = pool[i % pool.len()].clone();
        c.name = format!("{}-{i:05}", c.name);
        c.facts.remove("h323_trunks");
        for n in &mut c.nodes {
            n.facts.remove("h323_trunks");
        }
        out.push(c);
    }
    // Pad clusters that may grow, round-robin, until the fleet has `clusters * nodes` nodes.
    let want = clusters * nodes;
    let mut have: usize = out.iter().map(|c| c.nodes.len()).sum();
    let growable: Vec<(usize, ferry_model::Node)> = out
        .iter()
        .enumerate()
        .filter_map(|(i, c)| growable_node(c, profiles).map(|n| (i, n)))
        .collect();
    let mut round = 0;
    while have < want && !growable.is_empty() {
        for (i, template) in &growable {
            if have >= want {
                break;
            }
            let mut n = template.clone();
            n.name = format!("{}-x{round}", n.name);
            out[*i].nodes.push(n);
            have += 1;
        }
        round += 1;
    }
    Site {
        name: "generated-fleet".into(),
        window: None,
        stage: None,
        objectives: Default::default(),
        clusters: out,
        change: None,
    }
}

/// A node whose role the profile lets a cluster have any number of, preferring the most common;
/// roles that a capacity limit weighs are left alone, so that padding does not oversubscribe
/// the servers their load lands on.
fn growable_node(c: &Cluster, profiles: &ProfileSet) -> Option<ferry_model::Node> {
    let profile = &profiles.get(&c.profile)?.profile;
    let weighed = |role: &str| {
        profile
            .procedure
            .limits
            .iter()
            .any(|l| l.capacity.is_some() && l.steps.roles.iter().any(|r| r == role))
    };
    let unlimited = |role: &str| {
        !weighed(role)
            && profile
                .roles
                .iter()
                .any(|r| r.name == role && r.max.is_none())
    };
    let mut best: Option<(usize, &ferry_model::Node)> = None;
    for n in c.nodes.iter().filter(|n| unlimited(&n.role)) {
        let count = c.nodes.iter().filter(|m| m.role == n.role).count();
        if best.is_none_or(|(b, _)| count > b) {
            best = Some((count, n));
        }
    }
    best.map(|(_, n)| n.clone())
}

/// Benchmark the planner on a generated fleet and on every example.
#[derive(clap::Args)]
pub struct Args {
    /// Clusters in the generated fleet.
    #[arg(long, default_value_t = 1000)]
    clusters: usize,
    /// Nodes per cluster (approximately; examples are replicated and padded).
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Times to plan the fleet; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[command(flatten)]
    format: FormatFlag,
    /// Write the benchmark's sites as site files into this folder instead of measuring: the
    /// fleet (`fleet-all.toml`), the fleet without the inhibitor examples (`fleet-clean.toml`)
    /// and one cluster of 500, 1,000, 2,000 and 5,000 nodes (`one-N.toml`), so that other
    /// builds of ferry can be measured on the same input (`scripts/bench-against.sh`).
    #[arg(long, value_name = "DIR")]
    write_sites: Option<std::path::PathBuf>,
}

pub fn run(g: &Global, a: Args) -> Result<std::process::ExitCode> {
    let profiles = load_profiles(&g.profiles)?;
    if let Some(dir) = &a.write_sites {
        write_sites(dir, &profiles, a.clusters, a.nodes)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let text = report(&profiles, a.clusters, a.nodes, a.runs, a.format.json())?;
    write_out(None, &text)?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Writes the fleets and the one-cluster sites the benchmark measures as site files in `dir`.
fn write_sites(
    dir: &std::path::Path,
    profiles: &ProfileSet,
    clusters: usize,
    nodes: usize,
) -> Result<()> {
    let mut all = Vec::new();
    let mut clean = Vec::new();
    for (name, text) in EXAMPLES {
        let Ok(site) = load_site(name, text, profiles) else {
            continue;
        };
        if !name.contains("inhibitor") {
            clean.push(site.clone());
        }
        all.push(site);
    }
    std::fs::create_dir_all(dir)?;
    for (file, sites) in [("fleet-all.toml", &all), ("fleet-clean.toml", &clean)] {
        let fleet = build_fleet(sites, profiles, clusters, nodes);
        std::fs::write(dir.join(file), fleet_toml(&fleet))?;
    }
    for n in [500, 1000, 2000, 5000] {
        let (text, _) = one_cluster_site(n, profiles)?;
        std::fs::write(dir.join(format!("one-{n}.toml")), text)?;
    }
    Ok(())
}

/// A generated fleet as a site file: every node with its own target, so that the file reads
/// the same whatever the reader's defaults for a role's target.
fn fleet_toml(site: &Site) -> String {
    use ferry_profiles::write::value;
    use std::fmt::Write;
    let string = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut s = format!("[site]\nname = {}\n", string(&site.name));
    let table = |facts: &ferry_model::Facts| value(&ferry_model::FactValue::Table(facts.clone()));
    for c in &site.clusters {
        let _ = writeln!(
            s,
            "\n[[cluster]]\nname = {}\nprofile = {}\ntarget = {}",
            string(&c.name),
            string(&c.profile),
            string(&c.target.to_string())
        );
        if let Some(st) = &c.strategy {
            let _ = writeln!(s, "strategy = {}", string(st));
        }
        if !c.facts.is_empty() {
            let _ = writeln!(s, "facts = {}", table(&c.facts));
        }
        for n in &c.nodes {
            let _ = writeln!(
                s,
                "\n[[cluster.node]]\nname = {}\nrole = {}\nversion = {}\ntarget = {}",
                string(&n.name),
                string(&n.role),
                string(&n.version.to_string()),
                string(&n.target.to_string())
            );
            if let Some(a) = &n.address {
                let _ = writeln!(s, "address = {}", string(a));
            }
            if !n.facts.is_empty() {
                let _ = writeln!(s, "facts = {}", table(&n.facts));
            }
        }
    }
    s
}

/// The benchmark's report: text, or JSON with `json`.
fn report(
    profiles: &ProfileSet,
    clusters: usize,
    nodes: usize,
    runs: usize,
    json: bool,
) -> Result<String> {
    let mut sites = Vec::new();
    let mut clean = Vec::new();
    let mut per_example = Vec::new();
    let mut rehearsed = Vec::new();
    for (name, text) in EXAMPLES {
        let Ok(site) = load_site(name, text, profiles) else {
            continue;
        };
        let plan = ferry_plan::plan(
            &site,
            |n| profiles.get(n).map(|p| &p.profile),
            String::new(),
            &PlanOptions::default(),
        )?;
        let cautious = ferry_plan::plan(
            &site,
            |n| profiles.get(n).map(|p| &p.profile),
            String::new(),
            &PlanOptions {
                strategy: Some("one-at-a-time".into()),
                ..Default::default()
            },
        )?;
        let strategies = strategies_of(&site, profiles);
        let balanced = if strategies.contains(&"balanced") {
            Some(ferry_plan::plan(
                &site,
                |n| profiles.get(n).map(|p| &p.profile),
                String::new(),
                &PlanOptions {
                    strategy: Some("balanced".into()),
                    ..Default::default()
                },
            )?)
        } else {
            None
        };
        let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        per_example.push(ExampleFigures {
            example: name.to_string(),
            nodes: site.clusters.iter().map(|c| c.nodes.len()).sum(),
            steps: plan.steps.len(),
            makespan_s: plan.makespan_s,
            lower_bound_s: plan.lower_bound_s,
            sequential_s: plan.sequential_s,
            makespan_over_lower_bound: ratio(plan.makespan_s, plan.lower_bound_s),
            sequential_over_makespan: ratio(plan.sequential_s, plan.makespan_s),
            one_at_a_time_over_fastest: ratio(cautious.makespan_s, plan.makespan_s),
            balanced_over_fastest: balanced
                .as_ref()
                .map(|b| ratio(b.makespan_s, plan.makespan_s)),
        });
        if !name.contains("inhibitor") {
            clean.push(site.clone());
        }
        for strategy in strategies {
            rehearsed.push(rehearse_example(name, text, &site, profiles, strategy)?);
        }
        sites.push(site);
    }
    let fleet = build_fleet(&sites, profiles, clusters, nodes);
    let node_count = fleet.clusters.iter().map(|c| c.nodes.len()).sum();
    eprintln!(
        "planning a fleet of {} clusters, {node_count} nodes ...",
        fleet.clusters.len()
    );
    let mut times = Vec::with_capacity(runs);
    let mut steps = 0;
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let plan = ferry_plan::plan(
            &fleet,
            |n| profiles.get(n).map(|p| &p.profile),
            String::new(),
            &PlanOptions::default(),
        )?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        steps = plan.steps.len();
    }
    times.sort_by(f64::total_cmp);
    let plan_ms = times[times.len() / 2];
    let figures = FleetFigures {
        clusters: fleet.clusters.len(),
        nodes: node_count,
        steps,
        plan_ms,
        plan_ms_min: times[0],
        runs: times.len(),
        peak_rss_mb: peak_rss_mb(),
    };
    eprintln!("rehearsing a fleet without the inhibitor examples against the twin ...");
    let clean_fleet = build_fleet(&clean, profiles, clusters, nodes);
    // The median of `runs` measurements of each figure (this machine's timings vary run to run).
    let scaling_example = EXAMPLES
        .iter()
        .find(|(name, _)| *name == SCALING_EXAMPLE)
        .map(|(name, text)| load_site(name, text, profiles))
        .ok_or_else(|| anyhow::anyhow!("no example {SCALING_EXAMPLE}"))??;
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        all.push(run_figures(
            profiles,
            &clean_fleet,
            &sites,
            &scaling_example,
        )?);
    }
    let runs_fig = median_figures(all);
    eprintln!("checking, planning and rehearsing one cluster of each size ...");
    let one_cluster = one_cluster_scaling(profiles, runs)?;
    if json {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({
            "fleet": figures,
            "execution": runs_fig,
            "one_cluster": one_cluster,
            "examples": per_example,
            "rehearsals": rehearsed,
        }))? + "\n");
    }
    let mut out = format!(
        "fleet: {} clusters, {} nodes, {} steps planned in {:.0} ms (median of {}, fastest {:.0} ms), peak memory {} MB\n\n",
        figures.clusters,
        figures.nodes,
        figures.steps,
        figures.plan_ms,
        figures.runs,
        figures.plan_ms_min,
        figures
            .peak_rss_mb
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "?".into())
    );
    let r = &runs_fig;
    out.push_str(&format!(
        "rehearsal of a fleet of the same size without the inhibitor examples, against the twin: {} steps{} in {:.0} ms (median of the runs; {} broken rules{}), peak memory {} MB\n",
        r.rehearse_steps,
        match &r.rehearse_halted {
            Some(why) if r.rehearse_done < r.rehearse_steps => {
                format!(" ({} done: {why})", r.rehearse_done)
            }
            _ => String::new(),
        },
        r.rehearse_ms,
        r.rehearse_broken_rules,
        if r.rehearse_broken_by_rule.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                r.rehearse_broken_by_rule
                    .iter()
                    .map(|(k, v)| format!("{k} x{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        r.peak_rss_mb
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "?".into())
    ));
    out.push_str(&format!(
        "executor per step over the fleet: {:.1} us with instant steps, {:.1} us against the twin ({:.2}x)\n",
        r.executor_us_per_step,
        r.executor_twin_us_per_step,
        r.executor_twin_us_per_step / r.executor_us_per_step.max(1e-9)
    ));
    out.push_str(&format!(
        "executor per step against the twin, {} ({} steps): {:.1} us journal in memory, {:.1} us journal on disk ({:.1}x)\n",
        r.durable_example,
        r.durable_steps,
        r.executor_twin_memory_us_per_step_same_example,
        r.executor_twin_durable_us_per_step,
        r.executor_twin_durable_us_per_step / r.executor_twin_memory_us_per_step_same_example.max(1e-9)
    ));
    if let (Some(first), Some(last)) = (
        r.twin_journal_scaling.first(),
        r.twin_journal_scaling.last(),
    ) {
        let points: Vec<String> = r
            .twin_journal_scaling
            .iter()
            .map(|p| {
                let ran = if p.ran == p.steps {
                    String::new()
                } else {
                    format!(", {} ran", p.ran)
                };
                format!("{} steps{ran}: {:.1} us", p.steps, p.us_per_step)
            })
            .collect();
        out.push_str(&format!(
            "executor per step against the twin, journal on disk, by the run's length: {} ({} over {} steps: {:.2}x)\n\n",
            points.join("; "),
            last.steps,
            first.steps,
            last.us_per_step / first.us_per_step.max(1e-9)
        ));
    } else {
        out.push('\n');
    }
    out.push_str(&one_cluster_table(&one_cluster));
    out.push('\n');
    out.push_str(&format!(
        "{:28} {:>5} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}\n",
        "example",
        "nodes",
        "window_s",
        "bound_s",
        "serial_s",
        "win/bound",
        "serial/win",
        "1aat/win",
        "bal/win"
    ));
    for e in &per_example {
        out.push_str(&format!(
            "{:28} {:>5} {:>9} {:>9} {:>9} {:>10.3} {:>10.2} {:>10.2} {:>10}\n",
            e.example,
            e.nodes,
            e.makespan_s,
            e.lower_bound_s,
            e.sequential_s,
            e.makespan_over_lower_bound,
            e.sequential_over_makespan,
            e.one_at_a_time_over_fastest,
            e.balanced_over_fastest
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    out.push_str(&rehearsal_table(&rehearsed));
    Ok(out)
}

/// A driver whose steps end as soon as they start: what is left is the executor's own work.
struct InstantDriver {
    now: i64,
    ended: std::collections::VecDeque<String>,
}

impl ferry_exec::Driver for InstantDriver {
    fn now(&self) -> i64 {
        self.now
    }
    fn start(
        &mut self,
        _: ferry_exec::RunId,
        step: &ferry_model::PlannedStep,
    ) -> Result<(), ferry_exec::DriverError> {
        self.ended.push_back(step.id.clone());
        Ok(())
    }
    fn wait(
        &mut self,
        _: ferry_exec::RunId,
        _: Option<i64>,
    ) -> Result<Option<(String, ferry_exec::Outcome)>, ferry_exec::DriverError> {
        self.now += 1;
        Ok(self
            .ended
            .pop_front()
            .map(|id| (id, ferry_exec::Outcome::Done)))
    }
    fn cancel(&mut self, _: ferry_exec::RunId, _: &str) -> Result<(), ferry_exec::DriverError> {
        Ok(())
    }
    fn inspect(
        &mut self,
        _: ferry_exec::RunId,
        _: &ferry_model::PlannedStep,
    ) -> Result<ferry_exec::Inspection, ferry_exec::DriverError> {
        Ok(ferry_exec::Inspection::NotStarted)
    }
}

fn used(
    site: &Site,
    profiles: &ProfileSet,
) -> std::collections::BTreeMap<String, ferry_model::Profile> {
    crate::runs::used_profiles(site, profiles)
}

/// Times `apply` of `plan` against the twin, with the journal (and the twin's world) in memory,
/// or in `dir` as `ferry apply --driver twin` keeps them.
fn time_twin_apply(
    site: &Site,
    profiles: &ProfileSet,
    plan: &ferry_model::Plan,
    dir: Option<&std::path::Path>,
) -> Result<(f64, ferry_exec::Report)> {
    let map = used(site, profiles);
    let build = || ferry_twin::World::build(site, &map, plan, &Default::default(), 1);
    let opts = ferry_exec::Options {
        approve_all: true,
        ..Default::default()
    };
    let new = ferry_exec::NewRun {
        driver: "twin".into(),
        ..Default::default()
    };
    match dir {
        Some(d) => {
            let journal = ferry_exec::Journal::open(d)?;
            let t0 = Instant::now();
            let mut driver =
                ferry_exec::TwinDriver::persistent(&journal, None, &plan.input_hash, &map, build)?;
            let report = ferry_exec::apply(&journal, plan, &new, &mut driver, &opts, &mut ())?;
            Ok((t0.elapsed().as_secs_f64(), report))
        }
        None => {
            let journal = ferry_exec::Journal::for_rehearsal()?;
            let t0 = Instant::now();
            let mut driver = ferry_exec::TwinDriver::new(build()?);
            let report = ferry_exec::apply(&journal, plan, &new, &mut driver, &opts, &mut ())?;
            Ok((t0.elapsed().as_secs_f64(), report))
        }
    }
}

/// `apply` through the twin with the journal on disk, on fleets of about each of `sizes` steps
/// made of copies of `example`'s clusters: per step, side by side.
fn twin_journal_scaling(
    profiles: &ProfileSet,
    example: &Site,
    sizes: &[usize],
    dir: &std::path::Path,
) -> Result<Vec<ScalingPoint>> {
    let examples = std::slice::from_ref(example);
    let per_cluster =
        plan_of(example, profiles)?.steps.len() as f64 / example.clusters.len().max(1) as f64;
    let mut out = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let clusters = ((size as f64 / per_cluster).round() as usize).max(1);
        let fleet = build_fleet(examples, profiles, clusters, 0);
        let plan = plan_of(&fleet, profiles)?;
        let d = dir.join(format!("scaling-{i}"));
        let (secs, report) = time_twin_apply(&fleet, profiles, &plan, Some(&d))?;
        let _ = std::fs::remove_dir_all(&d);
        out.push(ScalingPoint {
            steps: plan.steps.len(),
            ran: report.ran.len(),
            us_per_step: secs * 1e6 / report.ran.len().max(1) as f64,
        });
    }
    Ok(out)
}

fn plan_of(site: &Site, profiles: &ProfileSet) -> Result<ferry_model::Plan> {
    Ok(ferry_plan::plan(
        site,
        |n| profiles.get(n).map(|p| &p.profile),
        String::new(),
        &PlanOptions::default(),
    )?)
}

fn median_figures(mut all: Vec<RunFiguresBench>) -> RunFiguresBench {
    fn med(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    let pick = |f: fn(&RunFiguresBench) -> f64| med(&mut all.iter().map(f).collect::<Vec<_>>());
    let rehearse_ms = pick(|r| r.rehearse_ms);
    let executor = pick(|r| r.executor_us_per_step);
    let twin = pick(|r| r.executor_twin_us_per_step);
    let durable = pick(|r| r.executor_twin_durable_us_per_step);
    let memory = pick(|r| r.executor_twin_memory_us_per_step_same_example);
    let scaling: Vec<ScalingPoint> = (0..all[0].twin_journal_scaling.len())
        .map(|i| {
            let mut p = all[0].twin_journal_scaling[i].clone();
            p.us_per_step = med(&mut all
                .iter()
                .map(|r| r.twin_journal_scaling[i].us_per_step)
                .collect::<Vec<_>>());
            p
        })
        .collect();
    let mut r = all.swap_remove(0);
    r.twin_journal_scaling = scaling;
    r.rehearse_ms = rehearse_ms;
    r.executor_us_per_step = executor;
    r.executor_twin_us_per_step = twin;
    r.executor_twin_durable_us_per_step = durable;
    r.executor_twin_memory_us_per_step_same_example = memory;
    r
}

fn run_figures(
    profiles: &ProfileSet,
    fleet: &Site,
    examples: &[Site],
    scaling_example: &Site,
) -> Result<RunFiguresBench> {
    let plan = ferry_plan::plan(
        fleet,
        |n| profiles.get(n).map(|p| &p.profile),
        String::new(),
        &PlanOptions::default(),
    )?;
    let steps = plan.steps.len();
    // The executor on its own.
    let journal = ferry_exec::Journal::for_rehearsal()?;
    let mut instant = InstantDriver {
        now: 1_800_000_000,
        ended: Default::default(),
    };
    let opts = ferry_exec::Options {
        approve_all: true,
        ..Default::default()
    };
    let t0 = Instant::now();
    ferry_exec::apply(
        &journal,
        &plan,
        &ferry_exec::NewRun::default(),
        &mut instant,
        &opts,
        &mut (),
    )?;
    let executor_s = t0.elapsed().as_secs_f64();
    drop(journal);
    // The whole rehearsal: twin built, plan carried out, audited, measured.
    let map = used(fleet, profiles);
    let t0 = Instant::now();
    let world = ferry_twin::World::build(fleet, &map, &plan, &Default::default(), 1)?;
    let journal = ferry_exec::Journal::for_rehearsal()?;
    let mut driver = ferry_exec::TwinDriver::new(world);
    let t_exec = Instant::now();
    let report = ferry_exec::apply(
        &journal,
        &plan,
        &ferry_exec::NewRun::default(),
        &mut driver,
        &opts,
        &mut (),
    )?;
    let twin_exec_s = t_exec.elapsed().as_secs_f64();
    let mut world = driver.into_world();
    world.finish();
    let mut by_rule = std::collections::BTreeMap::new();
    for v in ferry_twin::audit(&world, &plan)
        .iter()
        .filter(|v| v.severity == ferry_model::Severity::Inhibitor)
    {
        *by_rule.entry(v.rule.clone()).or_insert(0) += 1;
    }
    let broken = by_rule.values().sum();
    let _impact = ferry_twin::impact(&world, false);
    let rehearse_s = t0.elapsed().as_secs_f64();
    let peak = peak_rss_mb();
    drop(world);
    drop(journal);
    // Durable journal against in-memory, on the largest example.
    let biggest = examples
        .iter()
        .filter(|s| !s.name.contains("inhibitor"))
        .max_by_key(|s| s.clusters.iter().map(|c| c.nodes.len()).sum::<usize>())
        .expect("examples");
    let ex_plan = ferry_plan::plan(
        biggest,
        |n| profiles.get(n).map(|p| &p.profile),
        String::new(),
        &PlanOptions::default(),
    )?;
    let dir = std::env::temp_dir().join(format!("ferry-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut durable = Vec::new();
    let mut memory = Vec::new();
    for i in 0..5 {
        let d = dir.join(i.to_string());
        durable.push(time_twin_apply(biggest, profiles, &ex_plan, Some(&d))?.0);
        memory.push(time_twin_apply(biggest, profiles, &ex_plan, None)?.0);
    }
    let scaling = twin_journal_scaling(profiles, scaling_example, &SCALING_STEPS, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    durable.sort_by(f64::total_cmp);
    memory.sort_by(f64::total_cmp);
    let n = ex_plan.steps.len().max(1) as f64;
    Ok(RunFiguresBench {
        rehearse_ms: rehearse_s * 1000.0,
        rehearse_steps: steps,
        rehearse_done: report.done + report.skipped,
        rehearse_halted: report.message.clone(),
        rehearse_broken_rules: broken,
        rehearse_broken_by_rule: by_rule,
        executor_us_per_step: executor_s * 1e6 / steps.max(1) as f64,
        executor_twin_us_per_step: twin_exec_s * 1e6 / steps.max(1) as f64,
        durable_example: biggest.name.clone(),
        durable_steps: ex_plan.steps.len(),
        executor_twin_durable_us_per_step: durable[2] * 1e6 / n,
        executor_twin_memory_us_per_step_same_example: memory[2] * 1e6 / n,
        twin_journal_scaling: scaling,
        peak_rss_mb: peak,
    })
}

/// Sizes of the one-cluster figure: nodes in the cluster.
const ONE_CLUSTER_NODES: [usize; 4] = [500, 1_000, 2_000, 5_000];

/// One size of the one-cluster figure: check, plan and rehearsal of one cluster of `nodes`
/// nodes, each with its time (median of the runs) and the process's peak resident memory
/// while it ran (the kernel's high-water mark, reset before each).
#[derive(Serialize)]
struct OneClusterPoint {
    nodes: usize,
    steps: usize,
    edges: usize,
    check_ms: f64,
    check_peak_rss_mb: Option<f64>,
    plan_ms: f64,
    plan_peak_rss_mb: Option<f64>,
    rehearse_ms: f64,
    rehearse_peak_rss_mb: Option<f64>,
    rehearse_completed: bool,
}

extern "C" {
    /// mimalloc (ferry's allocator): returns the memory it holds free to the system.
    fn mi_collect(force: bool);
}

/// Resets the process's peak resident memory to what it holds now (Linux), after the
/// allocator gave back the memory it kept free, so that the next reading of `peak_rss_mb` is
/// the peak of what runs in between. False where it cannot.
fn reset_peak_rss() -> bool {
    // SAFETY: mi_collect takes no pointers; it only frees pages mimalloc holds unused.
    unsafe { mi_collect(true) };
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One large cluster: a linux-ha publisher with `nodes - 1` subscribers, each with a
/// package to stage, as a site file states it.
fn one_cluster_site(nodes: usize, profiles: &ProfileSet) -> Result<(String, Site)> {
    let mut text = String::from(
        "[site]\nname = \"one-cluster\"\n\n[[cluster]]\nname = \"inventory\"\nprofile = \"linux-ha\"\n\
         target = \"3.1.0\"\n\n[[cluster.node]]\nname = \"inv-pub\"\nrole = \"publisher\"\nversion = \"3.0.4\"\n",
    );
    for i in 1..nodes {
        text.push_str(&format!(
            "\n[[cluster.node]]\nname = \"inv-r{i}\"\nrole = \"subscriber\"\nversion = \"3.0.4\"\n\
             facts = {{ package_mb = 120 }}\n"
        ));
    }
    let site = load_site("one-cluster", &text, profiles)?;
    Ok((text, site))
}

/// Times `f` `runs` times; the median in ms, the peak resident memory of the runs, and the
/// last result.
fn measured<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, Option<f64>, T)> {
    let mut times = Vec::with_capacity(runs);
    let reset = reset_peak_rss();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let r = f()?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        last = Some(r);
    }
    times.sort_by(f64::total_cmp);
    let peak = if reset { peak_rss_mb() } else { None };
    Ok((
        times[times.len() / 2],
        peak,
        last.expect("at least one run"),
    ))
}

/// How check, plan and rehearsal of one cluster grow with its nodes.
fn one_cluster_scaling(profiles: &ProfileSet, runs: usize) -> Result<Vec<OneClusterPoint>> {
    let mut out = Vec::new();
    for nodes in ONE_CLUSTER_NODES {
        let (text, site) = one_cluster_site(nodes, profiles)?;
        let by_name = |n: &str| profiles.get(n).map(|p| &p.profile);
        let (check_ms, check_peak, _) = measured(runs, || {
            Ok(ferry_plan::check(&site, by_name, &PlanOptions::default())?)
        })?;
        let (plan_ms, plan_peak, plan) = measured(runs, || {
            Ok(ferry_plan::plan(
                &site,
                by_name,
                String::new(),
                &PlanOptions::default(),
            )?)
        })?;
        let map = used(&site, profiles);
        let inputs = ferry_exec::RunInputs {
            site_name: "one-cluster".into(),
            site_text: text,
            profiles: Default::default(),
            strategy: None,
        };
        let faults = ferry_model::Faults::default();
        let r = ferry_exec::Rehearse {
            site: &site,
            profiles: &map,
            inputs: &inputs,
            plan: &plan,
            faults: &faults,
            policy: ferry_exec::FailurePolicy::Stop,
        };
        let (rehearse_ms, rehearse_peak, completed) = measured(runs, || {
            Ok(ferry_exec::rehearse(&r, 1)?.figures().completed)
        })?;
        out.push(OneClusterPoint {
            nodes,
            steps: plan.steps.len(),
            edges: plan.edges.len(),
            check_ms,
            check_peak_rss_mb: check_peak,
            plan_ms,
            plan_peak_rss_mb: plan_peak,
            rehearse_ms,
            rehearse_peak_rss_mb: rehearse_peak,
            rehearse_completed: completed,
        });
    }
    Ok(out)
}

/// The one-cluster figure as text: a row per size, then the growth from the first to the last.
fn one_cluster_table(points: &[OneClusterPoint]) -> String {
    let mb = |m: Option<f64>| m.map_or_else(|| "?".into(), |m| format!("{m:.0}"));
    let mut out = String::from(
        "one cluster (linux-ha: a publisher and its subscribers), by its nodes: time (median of the runs) and peak memory of the process\n",
    );
    out.push_str(&format!(
        "{:>6} {:>6} {:>6} {:>9} {:>8} {:>9} {:>8} {:>12} {:>11}\n",
        "nodes",
        "steps",
        "edges",
        "check_ms",
        "check_MB",
        "plan_ms",
        "plan_MB",
        "rehearse_ms",
        "rehearse_MB"
    ));
    for p in points {
        out.push_str(&format!(
            "{:>6} {:>6} {:>6} {:>9.0} {:>8} {:>9.0} {:>8} {:>12.0} {:>11}{}\n",
            p.nodes,
            p.steps,
            p.edges,
            p.check_ms,
            mb(p.check_peak_rss_mb),
            p.plan_ms,
            mb(p.plan_peak_rss_mb),
            p.rehearse_ms,
            mb(p.rehearse_peak_rss_mb),
            if p.rehearse_completed {
                ""
            } else {
                "  (rehearsal stopped)"
            }
        ));
    }
    if let (Some(a), Some(b)) = (points.first(), points.last()) {
        let x = |p: f64, q: f64| if p > 0.0 { q / p } else { 0.0 };
        out.push_str(&format!(
            "{} over {} nodes ({:.0}x): steps {:.1}x, edges {:.1}x, check {:.1}x, plan {:.1}x, rehearse {:.1}x the time\n",
            b.nodes,
            a.nodes,
            b.nodes as f64 / a.nodes as f64,
            x(a.steps as f64, b.steps as f64),
            x(a.edges as f64, b.edges as f64),
            x(a.check_ms, b.check_ms),
            x(a.plan_ms, b.plan_ms),
            x(a.rehearse_ms, b.rehearse_ms),
        ));
    }
    out
}

fn hm(s: i64) -> String {
    format!("{}h{:02}", s / 3600, s % 3600 / 60)
}

/// The examples' rehearsals: window against the plan, rules, and the service impact.
fn rehearsal_table(rows: &[RehearsedExample]) -> String {
    let mut out = String::from(
        "\nrehearsals against the twin (seed 1): window rehearsed / planned, broken rules, warnings, impact\n",
    );
    out.push_str(&format!(
        "{:24} {:13} {:>6} {:>6} {:>3} {:>3}  impact\n",
        "example", "strategy", "twin", "plan", "br", "wa"
    ));
    for r in rows {
        let end = if !r.completed {
            "  NOT COMPLETE"
        } else if !r.on_target {
            "  NOT ON TARGET"
        } else {
            ""
        };
        let figures: Vec<String> = r
            .figures
            .iter()
            .filter(|(k, v)| **v != 0.0 && k.as_str() != "calls attempted")
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect();
        out.push_str(&format!(
            "{:24} {:13} {:>6} {:>6} {:>3} {:>3}  {}{end}\n",
            r.example,
            r.strategy,
            hm(r.window_s),
            hm(r.planned_s as i64),
            r.broken_rules,
            r.warnings,
            figures.join("; ")
        ));
    }
    out
}
