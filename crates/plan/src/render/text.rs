//! The default, human-readable rendering of a plan: plain ASCII, no colours.

use super::{clock, duration};
use ferry_model::{Estimate, Finding, Phase, Plan, PlannedStep, Severity, StepKind};
use std::fmt::Write;

/// Renders `plan` for a person reading a terminal.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for site {} (strategy {})",
        plan.site, plan.strategy
    );
    let _ = writeln!(out, "Input hash: {}", plan.input_hash);
    out.push_str(&clusters(plan));
    out.push_str(&findings(&plan.findings));
    out.push_str(&steps_section(plan, Phase::Prepare, "Before the window"));
    out.push_str(&steps_section(
        plan,
        Phase::Staging,
        "Staging, ahead of the window (the nodes keep serving)",
    ));
    out.push_str(&steps_section(plan, Phase::Window, "Maintenance window"));
    out.push_str(&step_warnings(&plan.steps));
    out.push_str(&estimate(plan));
    out.push_str(&measures(plan));
    out.push_str(&staging_costs(plan));
    out.push_str(&batches(plan));
    out.push_str(&limits(plan));
    out.push_str(&occupancy(plan));
    out.push_str(&rollback(plan));
    out
}

fn clusters(plan: &Plan) -> String {
    let mut out = String::from("\nClusters\n");
    for c in &plan.clusters {
        let _ = writeln!(
            out,
            "  {} (profile {}): {} -> {}",
            c.name, c.profile, c.from, c.target
        );
        let _ = writeln!(out, "    path:     {}", c.path.join(" -> "));
        let _ = writeln!(
            out,
            "    upgrade:  {} [{}]",
            c.upgrade_type, c.upgrade_type_rule
        );
        let _ = writeln!(out, "    strategy: {}", c.strategy);
        let _ = writeln!(out, "    window:   {}", duration(c.makespan_s));
    }
    out
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}

fn finding_line(f: &Finding) -> String {
    let place = match (&f.cluster, &f.node) {
        (Some(c), Some(n)) => format!(" {c}/{n}:"),
        (Some(c), None) => format!(" {c}:"),
        (None, Some(n)) => format!(" {n}:"),
        (None, None) => String::new(),
    };
    format!(
        "    [{}]{place} {}\n      remedy: {}\n",
        f.rule, f.message, f.remedy
    )
}

fn findings(findings: &[Finding]) -> String {
    let mut out = format!(
        "\nFindings: {} inhibitor(s), {} warning(s), {} info\n",
        count(findings, Severity::Inhibitor),
        count(findings, Severity::Warning),
        count(findings, Severity::Info)
    );
    for (severity, heading) in [
        (Severity::Inhibitor, "Inhibitors (block the upgrade)"),
        (Severity::Warning, "Warnings"),
    ] {
        if count(findings, severity) == 0 {
            continue;
        }
        let _ = writeln!(out, "  {heading}:");
        for f in findings.iter().filter(|f| f.severity == severity) {
            out.push_str(&finding_line(f));
        }
    }
    out
}

/// The step name shown in tables: the title, marked when the step waits rather than acts.
pub(crate) fn step_name(step: &PlannedStep) -> String {
    match step.kind {
        StepKind::Action => step.title.clone(),
        StepKind::Gate => format!("[gate] {}", step.title),
        StepKind::Pause => format!("[pause] {}", step.title),
        StepKind::Sync => format!("[sync] {}", step.title),
    }
}

fn step_row(step: &PlannedStep) -> Vec<String> {
    vec![
        clock(step.start_s),
        step_duration(step),
        step.node
            .clone()
            .unwrap_or_else(|| format!("({})", step.cluster)),
        step_name(step),
        step.impact.as_str().to_string(),
        step.rules.join(","),
    ]
}

/// A step's duration, marked `(observed)` when it comes from past runs rather than the profile.
fn step_duration(step: &PlannedStep) -> String {
    match step.estimate {
        Estimate::Profile => duration(step.duration_s),
        Estimate::Observed => format!("{} (observed)", duration(step.duration_s)),
    }
}

fn steps_section(plan: &Plan, phase: Phase, heading: &str) -> String {
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .filter(|s| s.phase == phase)
        .map(step_row)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let span = match phase {
        Phase::Prepare => plan.prepare_s,
        Phase::Staging => plan.staging_s,
        Phase::Window => plan.makespan_s,
    };
    let mut out = format!("\n{heading}: {} step(s), {}\n", rows.len(), duration(span));
    if phase == Phase::Staging {
        out.push_str(&staging_period(plan));
    }
    out.push_str(&table(
        &["START", "DUR", "NODE", "STEP", "IMPACT", "RULES"],
        &rows,
    ));
    out
}

/// The widest a table column is padded to: a longer cell is written whole, unpadded (the
/// formatter refuses widths of 65,535 and more, and no terminal shows such a column).
const MAX_COLUMN: usize = 1_000;

/// A left-aligned table with two spaces between columns and a dashed rule under the header.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count()).min(MAX_COLUMN);
        }
    }
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header)
        .chain(std::iter::once(&rule))
        .chain(rows)
    {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    out
}

fn step_warnings(steps: &[PlannedStep]) -> String {
    let mut out = String::new();
    for step in steps {
        if let Some(w) = &step.warning {
            let _ = writeln!(out, "  {}: {w}", step.id);
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\nStep warnings\n{out}")
    }
}

/// `a / b` with two decimals, or `n/a` when `b` is zero.
fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "n/a".to_string()
    } else {
        format!("{:.2}", a as f64 / b as f64)
    }
}

fn estimate(plan: &Plan) -> String {
    let mut out = String::from("\nEstimate\n");
    let _ = writeln!(
        out,
        "  window (makespan):   {} ({})",
        duration(plan.makespan_s),
        clock(plan.makespan_s)
    );
    let _ = writeln!(
        out,
        "  lower bound:         {} (plan is {}x the bound)",
        duration(plan.lower_bound_s),
        ratio(plan.makespan_s, plan.lower_bound_s)
    );
    if let Some(b) = plan.rules_lower_bound_s {
        let _ = writeln!(
            out,
            "  rules lower bound:   {} (no plan keeping the documents' rules is shorter: any strategy, staging allowed)",
            duration(b)
        );
    }
    let _ = writeln!(
        out,
        "  one at a time:       {} ({}x the plan)",
        duration(plan.sequential_s),
        ratio(plan.sequential_s, plan.makespan_s)
    );
    let _ = writeln!(out, "  before the window:   {}", duration(plan.prepare_s));
    if plan.staging_s > 0 {
        let _ = writeln!(
            out,
            "  staging:             {} ahead of the window, not counted in it",
            duration(plan.staging_s)
        );
    }
    if let Some(r) = super::rehearsed_window(plan) {
        let _ = writeln!(out, "  rehearsed window:    {r}");
    }
    if let Some(v) = super::window_verdict(plan) {
        let _ = writeln!(out, "  site window:         {v}");
    }
    if let (Some(open), Some(done)) = (
        super::wall_clock(plan, 0),
        super::wall_clock(plan, plan.makespan_s),
    ) {
        let _ = writeln!(out, "  site time:           opens {open}, work ends {done}");
    }
    out
}

fn measures(plan: &Plan) -> String {
    if plan.measures.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nMeasures\n");
    for m in &plan.measures {
        let span = if m.phase == Phase::Window {
            format!(
                "from {} to {}",
                clock(m.start_s),
                clock(m.start_s.saturating_add(m.duration_s))
            )
        } else {
            // Across phases: where it starts in its phase, where it ends from the window's
            // opening (or in its own phase, when it ends before the window).
            let end = super::phase_offset_s(plan, m.phase)
                .saturating_add(m.start_s.saturating_add(m.duration_s) as i64);
            let until = if end >= 0 {
                format!("window {}", clock(end as u64))
            } else {
                format!(
                    "{} {}",
                    m.phase.as_str(),
                    clock(m.start_s.saturating_add(m.duration_s))
                )
            };
            format!("from {} {} to {until}", m.phase.as_str(), clock(m.start_s))
        };
        let _ = writeln!(
            out,
            "  {}/{} [{}]: {} ({span}) - {}",
            m.cluster,
            m.name,
            m.rule,
            duration(m.duration_s),
            m.description
        );
    }
    out
}

/// Where the staging phase runs: the booked staging period, or just before the window.
fn staging_period(plan: &Plan) -> String {
    let booked = match &plan.stage {
        Some(st) => format!(
            "  booked staging period: {}; ",
            super::window_span(st, (st.hours * 3600.0).round() as u64)
        ),
        None => "  no staging period booked: planned to end as the window opens; ".to_string(),
    };
    format!(
        "{booked}`ferry apply` runs these steps, then waits for the window to open (or `ferry approve open-window`)\n"
    )
}

/// What the work run ahead of the window costs, as the profiles say.
fn staging_costs(plan: &Plan) -> String {
    if plan.staging_costs.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nStaging costs\n");
    for c in &plan.staging_costs {
        let length = match (&c.measure, c.duration_s) {
            (Some(m), Some(d)) => format!(" ({m}: {})", duration(d)),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {} [{}]{length}: {}", c.cluster, c.rule, c.text);
    }
    out
}

/// The batches of the batch rules: which nodes go out together, in order.
pub(crate) fn batch_lines(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for b in &plan.batches {
        let leg = b
            .leg
            .as_ref()
            .map(|v| format!(" (to {v})"))
            .unwrap_or_default();
        let list = b
            .batches
            .iter()
            .enumerate()
            .map(|(i, nodes)| format!("{}. {}", i + 1, nodes.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        if b.batches.is_empty() {
            lines.push(format!(
                "{}{leg} [{}]: no batch: the other rules order these nodes' steps",
                b.cluster, b.rule
            ));
            continue;
        }
        lines.push(format!(
            "{}{leg} [{}]: {} batch(es) keeping every group of {} served: {list}",
            b.cluster,
            b.rule,
            b.batches.len(),
            b.devices.join(" and "),
        ));
    }
    lines
}

fn batches(plan: &Plan) -> String {
    let lines = batch_lines(plan);
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "
Batches
",
    );
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
    out
}

fn limits(plan: &Plan) -> String {
    if plan.limits.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nLimits\n");
    for l in &plan.limits {
        let kind = match (l.max_concurrent, l.capacity) {
            (Some(1), _) => "one at a time".to_string(),
            (Some(n), _) => format!("at most {n} at a time"),
            (None, Some(c)) => format!("capacity {c:.2}"),
            (None, None) => "limited".to_string(),
        };
        let _ = writeln!(
            out,
            "  [{}] {kind}, {} step(s): {}",
            l.rule,
            l.steps.len(),
            l.note
        );
    }
    out
}

/// A number as a person reads it: no decimals when it has none.
fn amount(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}

fn occupancy(plan: &Plan) -> String {
    if plan.occupancy.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\nCapacity over time (loads stay on a partition until their node is back)\n");
    for o in &plan.occupancy {
        let what = if o.what.is_empty() { "load" } else { &o.what };
        let _ = writeln!(
            out,
            "  {}/{} [{}]: peak {} {what} (limit {}) from {} to {}",
            o.cluster,
            o.partition,
            o.rule,
            amount(o.peak),
            amount(o.max),
            clock(o.peak_start_s),
            clock(o.peak_end_s)
        );
        for s in &o.spans {
            let len = s.end_s - s.start_s;
            let over = match o.max_span_s {
                Some(m) if len > m => format!(", more than {}", duration(m)),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "    carries {} from {} to {} ({}{over}), peak {}",
                s.nodes.join(", "),
                clock(s.start_s),
                clock(s.end_s),
                duration(len),
                amount(s.peak)
            );
        }
    }
    out
}

fn rollback(plan: &Plan) -> String {
    if plan.rollback.is_empty() {
        return "\nRollback: no steps\n".to_string();
    }
    let mut out = format!(
        "\nRollback: {} step(s), {}\n",
        plan.rollback.len(),
        duration(plan.rollback_makespan_s)
    );
    let rows: Vec<Vec<String>> = plan.rollback.iter().map(step_row).collect();
    out.push_str(&table(
        &["START", "DUR", "NODE", "STEP", "IMPACT", "RULES"],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample_plan;

    #[test]
    fn shows_path_type_and_strategy_per_cluster() {
        let text = render_text(&sample_plan());
        assert!(text.contains("path:     11.5.1 -> 12.5.1 -> 14.0.1"));
        assert!(text.contains("upgrade:  refresh [CUCM-PATH-2]"));
        assert!(text.contains("strategy: fast"));
    }

    #[test]
    fn summarises_findings_and_lists_inhibitors() {
        let text = render_text(&sample_plan());
        assert!(text.contains("Findings: 1 inhibitor(s), 1 warning(s), 0 info"));
        assert!(text.contains("[CUCM-CHK-1] cucm/pub: not enough free disk"));
    }

    #[test]
    fn lists_steps_in_schedule_order_with_start_and_rules() {
        let plan = sample_plan();
        let text = render_text(&plan);
        let mut at = 0;
        for step in &plan.steps {
            let pos = text[at..].find(&step.title).map(|p| p + at);
            assert!(pos.is_some(), "{} missing or out of order", step.title);
            at = pos.unwrap();
        }
        let line = text
            .lines()
            .find(|l| l.contains("Switch pub & reboot"))
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[..3], ["1:00", "20m", "pub"], "{line}");
        assert!(
            line.contains("down") && line.contains("CUCM-ORD-3"),
            "{line}"
        );
        assert!(text.contains("[gate] Wait for replication state 2"));
    }

    #[test]
    fn gives_estimates_and_whether_the_window_fits() {
        let text = render_text(&sample_plan());
        assert!(text.contains("window (makespan):   1h 45m (1:45)"));
        assert!(text.contains("one at a time:       3h 05m (1.76x the plan)"));
        assert!(text.contains(
            "site window:         4h 00m: the estimate ends 2h 15m before it closes; the odds were not rehearsed"
        ));
        assert!(!text.contains("fits"), "{text}");
        assert!(text.contains("cucm/cdr-gap [CUCM-MEAS-1]: 20m"));
        assert!(text.contains("Rollback: 2 step(s), 30m"));
        assert!(text.contains("[CUCM-LIM-1] one at a time, 2 step(s): one switch at a time"));
    }

    /// The window is judged on the rehearsals' odds, never on the point estimate alone
    /// (FERRY-FIT).
    #[test]
    fn states_the_rehearsed_odds_beside_the_estimate_ferry_fit() {
        fn check(runs: u32, fit: Option<f64>, makespan_s: u64, expected: &[&str]) {
            let mut plan = sample_plan();
            plan.makespan_s = makespan_s;
            plan.rehearsed_runs = runs;
            if runs > 0 {
                plan.window_p50_s = Some(makespan_s + 600);
                plan.window_p90_s = Some(makespan_s + 1800);
            }
            plan.fit_probability = fit;
            plan.rules_lower_bound_s = Some(3000);
            let text = render_text(&plan);
            for e in expected {
                assert!(text.contains(e), "{e:?} in\n{text}");
            }
            assert!(!text.contains("fits"), "{text}");
        }
        check(
            500,
            Some(0.35),
            6300,
            &[
                "rehearsed window:    P50 1h 55m, P90 2h 15m (500 rehearsals against the twin, seeds 1 to 500)",
                "site window:         4h 00m: the estimate ends 2h 15m before it closes; the twin ends inside it in 35% of 500 rehearsals",
                "rules lower bound:   50m",
            ],
        );
        check(
            20,
            Some(0.999),
            15000,
            &["the estimate runs 10m past it; the twin ends inside it in 99% of 20 rehearsals"],
        );
        check(
            0,
            None,
            6300,
            &["the estimate ends 2h 15m before it closes; the odds were not rehearsed (`--runs 0`)"],
        );
        assert_eq!(
            [0.0, 0.004, 0.35, 0.996, 1.0].map(crate::render::percent),
            ["0%", "1%", "35%", "99%", "100%"]
        );
    }

    #[test]
    fn is_plain_ascii_except_for_input_text_and_deterministic() {
        let plan = sample_plan();
        let text = render_text(&plan);
        assert!(text.is_ascii());
        assert!(!text.contains('\x1b'));
        assert_eq!(text, render_text(&plan));
        assert!(text.lines().all(|l| l == l.trim_end()));
    }
}
