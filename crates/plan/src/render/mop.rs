//! A Markdown method-of-procedure (MOP) that an engineer can hand to change management.

use super::{clock, clock_at, duration, phase_offset_s, wall_clock};
use ferry_model::{Finding, Phase, Plan, PlannedStep, Severity, StepKind};
use std::fmt::Write;

/// What a rehearsal of the plan found, for the MOP's risk summary. The CLI rehearses (the
/// renderer runs nothing); the figures are its Monte Carlo percentiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Risk {
    pub runs: usize,
    /// The window's length: median and 90th percentile.
    pub window_p50_s: u64,
    pub window_p90_s: u64,
    /// The share of runs that ended inside the booked window.
    pub fit_probability: Option<f64>,
    /// What the rehearsals cost the service, by name, their median (`calls failed`,
    /// `HA pairs: minutes without redundancy`).
    pub figures: Vec<(String, f64)>,
}

/// Renders `plan` as a Markdown method-of-procedure.
pub fn render_mop(plan: &Plan) -> String {
    render_mop_with(plan, None)
}

/// Renders `plan` as a Markdown method-of-procedure, with the risk summary of a rehearsal.
pub fn render_mop_with(plan: &Plan, risk: Option<&Risk>) -> String {
    let numbers = StepNumbers::new(plan);
    let mut out = format!("# Method of procedure: upgrade of {}\n", inline(&plan.site));
    out.push_str(&summary(plan));
    out.push_str(&change_record(plan));
    out.push_str(&risk_summary(plan, risk));
    out.push_str(&values(plan));
    out.push_str(&prerequisites(plan, &numbers));
    out.push_str(&phase_section(plan, Phase::Prepare, &numbers));
    out.push_str(&phase_section(plan, Phase::Staging, &numbers));
    out.push_str(&phase_section(plan, Phase::Window, &numbers));
    out.push_str(&backout_plan(plan, &numbers));
    out.push_str(&rollback(plan));
    out.push_str(&sign_off());
    out
}

/// Text on one line of Markdown: newlines folded into spaces, `<` escaped so that nothing
/// reads as an HTML tag.
fn inline(s: &str) -> String {
    escape_tags(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn escape_tags(s: &str) -> String {
    s.replace('<', "\\<")
}

/// Text for a Markdown table cell: on one line, with `|` escaped.
fn cell(s: &str) -> String {
    inline(s).replace('|', "\\|")
}

fn code_list(ids: &[String]) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    ids.iter()
        .map(|r| format!("`{r}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Step numbers as printed: prepare, staging and window steps numbered together, in schedule
/// order.
pub(crate) struct StepNumbers<'a>(Vec<&'a str>);

impl<'a> StepNumbers<'a> {
    pub(crate) fn new(plan: &'a Plan) -> Self {
        let ids = [Phase::Prepare, Phase::Staging, Phase::Window]
            .into_iter()
            .flat_map(|p| plan.steps.iter().filter(move |s| s.phase == p))
            .map(|s| s.id.as_str())
            .collect();
        StepNumbers(ids)
    }

    pub(crate) fn of(&self, id: &str) -> Option<usize> {
        self.0.iter().position(|i| *i == id).map(|i| i + 1)
    }
}

fn summary(plan: &Plan) -> String {
    let mut out = String::from("\n## Summary\n\n| Item | Value |\n|---|---|\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    };
    let names: Vec<&str> = plan.clusters.iter().map(|c| c.name.as_str()).collect();
    row("Site", plan.site.clone());
    row("Clusters", names.join(", "));
    row("Strategy", plan.strategy.clone());
    row("Estimated window", duration(plan.makespan_s));
    if let (Some(open), Some(done)) = (wall_clock(plan, 0), wall_clock(plan, plan.makespan_s)) {
        row("Window opens (site time)", open);
        row("Work ends (site time)", done);
    }
    if let Some(w) = &plan.window {
        row(
            "Site time zone",
            match &w.zone {
                Some(z) => format!("{z} (times show the offset each moment has there)"),
                None => format!(
                    "UTC{} (the offset the window is written in)",
                    super::site_time(Some(w), w.start_epoch_s)
                        .rsplit(' ')
                        .next()
                        .unwrap_or("")
                ),
            },
        );
    }
    if let Some(pnr) = plan.point_of_no_return_s {
        row("Point of no return", point_of_no_return(plan, pnr));
    }
    row("Work before the window", duration(plan.prepare_s));
    if plan.staging_s > 0 {
        row(
            "Work ahead of the window (staging, the nodes keep serving)",
            duration(plan.staging_s),
        );
        if let Some(st) = &plan.stage {
            row(
                "Staging period (site time)",
                super::window_span(st, (st.hours * 3600.0).round() as u64),
            );
        }
    }
    row("Lower bound", duration(plan.lower_bound_s));
    row("One at a time", duration(plan.sequential_s));
    if let Some(b) = plan.rules_lower_bound_s {
        row(
            "Rules lower bound (any strategy, staging allowed)",
            duration(b),
        );
    }
    if let Some(r) = super::rehearsed_window(plan) {
        row("Rehearsed window", r);
    }
    if let Some(v) = super::window_verdict(plan) {
        row("Site window", v);
    }
    row("Rollback estimate", duration(plan.rollback_makespan_s));
    row("Input hash", format!("`{}`", plan.input_hash));
    out.push_str("\n| Cluster | Profile | From → To | Path | Upgrade type | Strategy | Window |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for c in &plan.clusters {
        let _ = writeln!(
            out,
            "| {} | {} | {} → {} | {} | {} (`{}`) | {} | {} |",
            cell(&c.name),
            cell(&c.profile),
            cell(&c.from),
            cell(&c.target),
            cell(&c.path.join(" → ")),
            cell(&c.upgrade_type),
            cell(&c.upgrade_type_rule),
            cell(&c.strategy),
            duration(c.makespan_s)
        );
    }
    out
}

fn finding_item(f: &Finding) -> String {
    let place: Vec<&str> = [f.cluster.as_deref(), f.node.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let place = if place.is_empty() {
        String::new()
    } else {
        format!(" {}:", place.join("/"))
    };
    format!(
        "- **{}** `{}`{place} {}\n  - Remedy: {}\n",
        f.severity.as_str().to_uppercase(),
        f.rule,
        inline(&f.message),
        inline(&f.remedy)
    )
}

fn prerequisites(plan: &Plan, numbers: &StepNumbers) -> String {
    let mut out = String::from("\n## Prerequisites and warnings\n\n");
    let inhibitors = plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Inhibitor)
        .count();
    if inhibitors > 0 {
        let _ = writeln!(
            out,
            "> **Blocked:** {inhibitors} inhibitor(s) must be cleared before this change goes ahead.\n"
        );
    }
    let _ = writeln!(
        out,
        "- [ ] Every inhibitor below is cleared and `ferry check` reports none."
    );
    let _ = writeln!(
        out,
        "- [ ] The plan is re-made from the current site and profiles and its input hash is still `{}`.",
        plan.input_hash
    );
    let mut sorted: Vec<&Finding> = plan.findings.iter().collect();
    sorted.sort_by_key(|f| f.severity); // stable: inhibitors first, input order kept
    if !sorted.is_empty() {
        out.push_str("\n### Findings\n\n");
        for f in sorted {
            out.push_str(&finding_item(f));
        }
    }
    let batches = super::text::batch_lines(plan);
    if !batches.is_empty() {
        out.push_str("\n### Batches\n\n");
        for l in batches {
            let _ = writeln!(out, "- {}", inline(&l));
        }
    }
    let warned: Vec<&PlannedStep> = plan.steps.iter().filter(|s| s.warning.is_some()).collect();
    if !warned.is_empty() {
        out.push_str("\n### Step warnings\n\n");
        for s in warned {
            let n = numbers
                .of(&s.id)
                .map(|n| format!("Step {n}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {n} (`{}`): {}",
                s.id,
                inline(s.warning.as_deref().unwrap_or(""))
            );
        }
    }
    out
}

fn phase_section(plan: &Plan, phase: Phase, numbers: &StepNumbers) -> String {
    let steps: Vec<&PlannedStep> = plan.steps.iter().filter(|s| s.phase == phase).collect();
    if steps.is_empty() {
        return String::new();
    }
    let (heading, mark, span) = match phase {
        Phase::Prepare => ("Prepare (before the window)", "P", plan.prepare_s),
        Phase::Staging => (
            "Staging (ahead of the window, the nodes keep serving)",
            "S",
            plan.staging_s,
        ),
        Phase::Window => ("Maintenance window", "T", plan.makespan_s),
    };
    let mut out = format!(
        "\n## {heading}\n\n{} step(s), {} in all. ",
        steps.len(),
        duration(span)
    );
    let _ = writeln!(
        out,
        "Planned starts are offsets from the start of this phase ({mark}+H:MM), with the site's date, time and UTC offset where the window is booked."
    );
    if phase == Phase::Staging {
        out.push_str(&staging_intro(plan));
    }
    let offset = phase_offset_s(plan, phase);
    let mut pnr = plan.point_of_no_return_s.filter(|_| phase == Phase::Window);
    for s in steps {
        let number = numbers.of(&s.id).unwrap_or(0);
        if let Some(at) = pnr.filter(|at| s.start_s >= *at) {
            out.push_str(&pnr_marker(plan, at));
            pnr = None;
        }
        let at = clock_at(plan, offset + s.start_s as i64);
        out.push_str(&step_block(&number.to_string(), s, mark, at, |id| {
            numbers.of(id).map(|n| n.to_string())
        }));
    }
    if let Some(at) = pnr {
        out.push_str(&pnr_marker(plan, at));
    }
    out
}

/// The point of no return as a person reads it.
fn point_of_no_return(plan: &Plan, at: u64) -> String {
    let when = wall_clock(plan, at)
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    if at == 0 && plan.window_s.is_some_and(|w| plan.rollback_makespan_s > w) {
        return format!(
            "T+0:00{when}: the rollback ({}) is longer than the booked window, so no backout ends inside it",
            duration(plan.rollback_makespan_s)
        );
    }
    format!(
        "T+{}{when}: the last moment at which the full rollback ({}) still ends inside the booked window",
        clock(at),
        duration(plan.rollback_makespan_s)
    )
}

fn pnr_marker(plan: &Plan, at: u64) -> String {
    format!(
        "\n> **Point of no return** at {}. Decide go or back out before it (`ferry apply --stop-at-point-of-no-return` pauses here for `ferry approve`).\n",
        point_of_no_return(plan, at)
    )
}

const FILL_IN: &str = "_(fill in)_";

/// The change record: ID, contacts, escalation and the vendor case, the communication plan and
/// the go/no-go checkpoints, from `[site.change]`; what is missing says what to fill in.
fn change_record(plan: &Plan) -> String {
    let empty = ferry_model::site::Change::default();
    let c = plan.change.as_ref().unwrap_or(&empty);
    let mut out = String::from("\n## Change record\n\n");
    if plan.change.is_none() {
        out.push_str("The site gives no `[site.change]`: fill in the fields below here, or in the site (see the README, \"The change record\").\n\n");
    }
    let _ = writeln!(
        out,
        "- **Change ID:** {}",
        c.id.as_deref().map_or(FILL_IN.to_string(), inline)
    );
    let _ = writeln!(
        out,
        "- **Vendor support case:** {}",
        c.vendor_case
            .as_deref()
            .map_or(format!("{FILL_IN} (open one before the window)"), inline)
    );
    let people = |title: &str, list: &[ferry_model::site::Contact], out: &mut String| {
        let _ = writeln!(
            out,
            "\n### {title}\n\n| # | Role | Name | Phone | Email |\n|---|---|---|---|---|"
        );
        if list.is_empty() {
            let _ = writeln!(out, "| 1 | {FILL_IN} | | | |");
        }
        for (i, p) in list.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                i + 1,
                cell(&p.role),
                cell(&p.name),
                cell(p.phone.as_deref().unwrap_or("")),
                cell(p.email.as_deref().unwrap_or(""))
            );
        }
    };
    people("Contacts", &c.contacts, &mut out);
    people("Escalation (in order)", &c.escalation, &mut out);
    out.push_str("\n### Communication plan\n\n| Who | When | How |\n|---|---|---|\n");
    if c.communication.is_empty() {
        let _ = writeln!(
            out,
            "| {FILL_IN} (e.g. users) | {FILL_IN} (e.g. 48 h before the window) | |"
        );
    }
    for n in &c.communication {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&n.who),
            cell(&n.when),
            cell(n.how.as_deref().unwrap_or(""))
        );
    }
    out.push_str(
        "\n### Go/no-go checkpoints\n\n| When | Go on only if | Decision |\n|---|---|---|\n",
    );
    let mut points: Vec<(i64, String)> = c
        .checkpoints
        .iter()
        .map(|k| (k.at_s, k.criteria.clone()))
        .collect();
    if let Some(pnr) = plan.point_of_no_return_s {
        points.push((
            pnr as i64,
            "point of no return: every verification so far passed; otherwise back out now"
                .to_string(),
        ));
    }
    points.sort_by_key(|p| p.0);
    if c.checkpoints.is_empty() {
        let _ = writeln!(out, "| {FILL_IN} (e.g. T-0:30) | {FILL_IN} | go / no-go |");
    }
    for (at, what) in points {
        let sign = if at < 0 { '-' } else { '+' };
        let when = match clock_at(plan, at) {
            Some(c) => format!("T{sign}{} ({c})", clock(at.unsigned_abs())),
            None => format!("T{sign}{}", clock(at.unsigned_abs())),
        };
        let _ = writeln!(out, "| {} | {} | go / no-go |", cell(&when), cell(&what));
    }
    out
}

/// The risk summary: a rehearsal's figures, or what to run to get them.
fn risk_summary(plan: &Plan, risk: Option<&Risk>) -> String {
    let mut out = String::from("\n## Risk summary\n\n");
    let Some(r) = risk else {
        let _ = writeln!(
            out,
            "No rehearsal figures: fill in from `ferry rehearse SITE --runs 200`, or render with `ferry plan SITE --format mop --runs 500` (not `--runs 0`) (P50/P90 window, P(fit), failed calls, minutes without redundancy). Planned window: {}; backout: {}.",
            duration(plan.makespan_s),
            duration(plan.rollback_makespan_s)
        );
        return out;
    };
    let _ = writeln!(
        out,
        "From {} rehearsal(s) against the digital twin (durations drawn around the plan's estimates).\n\n| Figure | Value |\n|---|---|",
        r.runs
    );
    let _ = writeln!(out, "| Window P50 | {} |", duration(r.window_p50_s));
    let _ = writeln!(out, "| Window P90 | {} |", duration(r.window_p90_s));
    let _ = writeln!(
        out,
        "| P(fit in the booked window) | {} |",
        r.fit_probability
            .map_or("no window booked".to_string(), |p| format!(
                "{:.0}%",
                p * 100.0
            ))
    );
    for (name, median) in &r.figures {
        let _ = writeln!(out, "| {} (median) | {} |", cell(name), number(*median));
    }
    out
}

fn number(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}

/// The values of the change: each cluster's versions and recorded facts, and every node with its
/// address, versions and the counts to compare after the upgrade.
fn values(plan: &Plan) -> String {
    let mut out = String::from("\n## Values of this change\n");
    for c in &plan.clusters {
        let _ = writeln!(
            out,
            "\n### Cluster {}\n\n- **Versions:** {} → {} ({})",
            inline(&c.name),
            inline(&c.from),
            inline(&c.target),
            inline(&c.path.join(" → "))
        );
        for v in &c.values {
            let _ = writeln!(
                out,
                "- **{}:** `{}` - {}",
                inline(&v.name),
                v.value.replace('`', "'"),
                inline(&v.description)
            );
        }
        if c.nodes.is_empty() {
            continue;
        }
        out.push_str("\n| Node | Role | Address | Version now | Version after | Before the upgrade (compare after) |\n|---|---|---|---|---|---|\n");
        for n in &c.nodes {
            let before: Vec<String> = n
                .before
                .iter()
                .map(|b| format!("{}: {}", b.name, b.value))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&n.name),
                cell(&n.role),
                cell(
                    n.address
                        .as_deref()
                        .unwrap_or("(fill in: no `address` in the site)")
                ),
                cell(&n.version),
                cell(&n.target),
                cell(&if before.is_empty() {
                    "-".to_string()
                } else {
                    before.join("; ")
                })
            );
        }
    }
    out
}

/// The backout plan: its triggers, the point of no return and a backout per stage.
fn backout_plan(plan: &Plan, numbers: &StepNumbers) -> String {
    let mut out = String::from("\n## Backout plan\n\n");
    out.push_str("**Triggers.** Back out when a verification a stage lists below fails and cannot be put right before the point of no return, or when an inhibitor appears during the change. A failed verification of any other step is a stop: fix it or back out under the stage it belongs to.\n\n");
    match plan.point_of_no_return_s {
        Some(at) => {
            let _ = writeln!(out, "**Point of no return:** {}.\n", point_of_no_return(plan, at));
        }
        None => out.push_str("**Point of no return:** no window is booked (`[site] window`), so none can be computed: fill in the latest time to decide.\n\n"),
    }
    if plan.backouts.is_empty() {
        out.push_str("No stage of the window has node work, so the full rollback below is the only backout.\n");
        return out;
    }
    out.push_str("| Stage | Stage ends | Back out if the verification fails of step(s) | Backout steps | Backout length | Ends inside the window |\n|---|---|---|---|---|---|\n");
    for b in &plan.backouts {
        let ends = match wall_clock(plan, b.at_s) {
            Some(c) => format!("T+{} ({c})", clock(b.at_s)),
            None => format!("T+{}", clock(b.at_s)),
        };
        let triggers: Vec<String> = b
            .triggers
            .iter()
            .map(|id| numbers.of(id).map_or_else(|| id.clone(), |n| n.to_string()))
            .collect();
        let steps: Vec<String> = b
            .steps
            .iter()
            .map(|id| {
                plan.rollback
                    .iter()
                    .position(|s| &s.id == id)
                    .map_or_else(|| id.clone(), |i| format!("R{}", i + 1))
            })
            .collect();
        let inside = match b.ends_in_window {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "no window booked",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&b.stage),
            cell(&ends),
            cell(&if triggers.is_empty() {
                "-".to_string()
            } else {
                triggers.join(", ")
            }),
            cell(&if steps.is_empty() {
                "none (nothing to undo)".to_string()
            } else {
                steps.join(", ")
            }),
            duration(b.duration_s),
            inside
        );
    }
    out
}

/// Where the staging phase runs, what waits for the window, and what staging costs.
fn staging_intro(plan: &Plan) -> String {
    let mut out = String::new();
    match &plan.stage {
        Some(st) => {
            let _ = writeln!(
                out,
                "\nBooked staging period: {}.",
                super::window_span(st, (st.hours * 3600.0).round() as u64)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "\nNo staging period is booked: these steps are planned to end as the window opens."
            );
        }
    }
    let _ = writeln!(
        out,
        "`ferry apply` carries these steps out, then waits for the window to open before any window step (`ferry approve open-window` opens it early)."
    );
    if !plan.staging_costs.is_empty() {
        out.push_str("\n**What staging costs:**\n\n");
        for c in &plan.staging_costs {
            let length = match (&c.measure, c.duration_s) {
                (Some(m), Some(d)) => format!(" ({m}: {})", duration(d)),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "- `{}` {}{length}: {}",
                c.rule,
                cell(&c.cluster),
                inline(&c.text)
            );
        }
    }
    out
}

fn kind_note(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Action => "",
        StepKind::Gate => " (gate: wait until the condition holds)",
        StepKind::Pause => " (pause: wait for approval)",
        StepKind::Sync => " (sync point: nothing to do)",
    }
}

/// One numbered step: node, action, start, estimate, rules, instructions and a verify checkbox.
fn step_block(
    number: &str,
    s: &PlannedStep,
    mark: &str,
    at: Option<String>,
    number_of: impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = format!("\n### Step {number}. {}\n\n", inline(&s.title));
    let node = match (&s.node, &s.role) {
        (Some(n), Some(r)) => format!("{n} ({r}), cluster {}", s.cluster),
        (Some(n), None) => format!("{n}, cluster {}", s.cluster),
        (None, _) => format!("cluster {} (cluster-wide)", s.cluster),
    };
    let _ = writeln!(out, "- **Node:** {}", inline(&node));
    let _ = writeln!(
        out,
        "- **Action:** `{}`{} - step ID `{}`",
        s.action,
        kind_note(s.kind),
        s.id
    );
    let when = at.map(|a| format!(" ({a} site time)")).unwrap_or_default();
    let _ = writeln!(
        out,
        "- **Planned start:** {mark}+{}{when}",
        clock(s.start_s)
    );
    let observed = match s.estimate {
        ferry_model::Estimate::Observed => " (observed in past runs)",
        ferry_model::Estimate::Profile => "",
    };
    let _ = writeln!(out, "- **Estimate:** {}{observed}", duration(s.duration_s));
    let note = if s.impact_note.is_empty() {
        String::new()
    } else {
        format!(" - {}", inline(&s.impact_note))
    };
    let _ = writeln!(out, "- **Service impact:** {}{note}", s.impact.as_str());
    let _ = writeln!(out, "- **Rules:** {}", code_list(&s.rules));
    if !s.after.is_empty() {
        let after: Vec<String> = s
            .after
            .iter()
            .map(|id| number_of(id).unwrap_or_else(|| format!("`{id}`")))
            .collect();
        let _ = writeln!(out, "- **After step(s):** {}", after.join(", "));
    }
    if let Some(w) = &s.warning {
        let _ = writeln!(out, "\n> **Warning:** {}", inline(w));
    }
    if !s.instructions.trim().is_empty() {
        out.push_str("\n**Instructions:**\n\n");
        out.push_str(&paragraphs(&s.instructions));
    }
    let verify = if s.verify.trim().is_empty() {
        "step completed as described"
    } else {
        s.verify.as_str()
    };
    let _ = writeln!(out, "\n- [ ] **Verify:** {}", inline(verify));
    out
}

/// Multi-line text with its line breaks kept: each line its own paragraph, except that list
/// items stay together as a list.
fn paragraphs(text: &str) -> String {
    let is_item = |l: &str| {
        let l = l.trim_start();
        l.starts_with("- ")
            || l.starts_with("* ")
            || l.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut out = String::new();
    let mut prev_item = true;
    for line in text
        .trim()
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
    {
        let item = is_item(line);
        if !(out.is_empty() || (item && prev_item)) {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", escape_tags(line));
        prev_item = item;
    }
    out
}

fn rollback(plan: &Plan) -> String {
    let mut out = String::from("\n## Rollback\n\n");
    if plan.rollback.is_empty() {
        out.push_str("This plan has no rollback steps.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "If the change must be backed out, run these {} step(s) in order ({} in all). \
         Planned starts are offsets from the start of the rollback (R+H:MM).",
        plan.rollback.len(),
        duration(plan.rollback_makespan_s)
    );
    let number_of = |id: &str| {
        plan.rollback
            .iter()
            .position(|s| s.id == id)
            .map(|i| format!("R{}", i + 1))
    };
    for (i, s) in plan.rollback.iter().enumerate() {
        out.push_str(&step_block(&format!("R{}", i + 1), s, "R", None, number_of));
    }
    out
}

fn sign_off() -> String {
    let mut out =
        String::from("\n## Sign-off\n\n| Role | Name | Signature | Date |\n|---|---|---|---|\n");
    for role in ["Change owner", "Implementer", "Verifier"] {
        let _ = writeln!(out, "| {role} | | | |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample_plan;

    #[test]
    fn has_a_summary_with_versions_type_window_and_hash() {
        let mop = render_mop(&sample_plan());
        assert!(mop.starts_with("# Method of procedure: upgrade of Lab & \\<Test>\n"));
        assert!(mop.contains("| Estimated window | 1h 45m |"));
        assert!(mop.contains("| Input hash | `abc123` |"));
        assert!(mop.contains("| 11.5.1 → 14.0.1 |"));
        assert!(mop.contains("| refresh (`CUCM-PATH-2`) |"));
    }

    #[test]
    fn lists_every_step_title_in_order_prepare_first() {
        let plan = sample_plan();
        let mop = render_mop(&plan);
        let prepare = mop.find("## Prepare (before the window)").unwrap();
        let window = mop.find("## Maintenance window").unwrap();
        assert!(prepare < window);
        let mut at = 0;
        for (i, step) in plan.steps.iter().enumerate() {
            let heading = format!("### Step {}. {}", i + 1, inline(&step.title));
            let pos = mop[at..].find(&heading).map(|p| p + at);
            assert!(pos.is_some(), "{heading} missing or out of order");
            at = pos.unwrap();
        }
        assert!(mop.find("### Step 1. Back up the cluster").unwrap() < window);
    }

    #[test]
    fn each_step_has_node_start_estimate_rules_and_a_verify_checkbox() {
        let mop = render_mop(&sample_plan());
        let block = &mop[mop.find("### Step 4. Switch pub & reboot").unwrap()..];
        let block = &block[..block[4..].find("### Step").unwrap() + 4];
        assert!(block.contains("- **Node:** pub (publisher), cluster cucm"));
        assert!(block.contains("- **Planned start:** T+1:00"));
        assert!(block.contains("- **Estimate:** 20m"));
        assert!(block.contains("- **Rules:** `CUCM-ORD-3`"));
        assert!(block.contains("- **After step(s):** 2, 3"));
        assert!(block.contains("> **Warning:** Phones re-register"));
        assert!(block.contains("Run switch on the node.\n\nWatch the console.\n"));
        assert!(block.contains("- [ ] **Verify:** switch finished without errors"));
    }

    #[test]
    fn warns_about_inhibitors_before_the_steps() {
        let mop = render_mop(&sample_plan());
        let blocked = mop.find("**Blocked:** 1 inhibitor(s)").unwrap();
        let inhibitor = mop
            .find("- **INHIBITOR** `CUCM-CHK-1` cucm/pub: not enough free disk")
            .unwrap();
        assert!(blocked < inhibitor && inhibitor < mop.find("## Prepare").unwrap());
        assert!(mop.contains("- Step 4 (`cucm/pub/switch`): Phones re-register"));
    }

    #[test]
    fn ends_with_numbered_rollback_and_a_sign_off_table() {
        let mop = render_mop(&sample_plan());
        let rollback = mop.find("## Rollback").unwrap();
        assert!(mop[rollback..].contains("### Step R1. Revert sub1 to old version"));
        assert!(mop[rollback..].contains("- **After step(s):** R1"));
        let sign = mop.find("## Sign-off").unwrap();
        assert!(rollback < sign);
        for role in ["Change owner", "Implementer", "Verifier"] {
            assert!(mop[sign..].contains(&format!("| {role} | | | |")));
        }
        assert!(mop.contains("| Role | Name | Signature | Date |"));
    }

    #[test]
    fn instructions_keep_their_line_breaks_and_lists() {
        let text = "Log in.\nRun:\n1. stop\n2. start\n\n- check <host>";
        assert_eq!(
            paragraphs(text),
            "Log in.\n\nRun:\n\n1. stop\n2. start\n- check \\<host>\n"
        );
    }

    #[test]
    fn table_cells_escape_pipes() {
        let mut plan = sample_plan();
        plan.clusters[0].profile = "a|b".to_string();
        assert!(render_mop(&plan).contains("| a\\|b |"));
    }
}
