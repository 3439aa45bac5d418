//! A Markdown method-of-procedure (MOP) that an engineer can hand to change management.

use super::{clock, duration, wall_clock};
use ferry_model::{Finding, Phase, Plan, PlannedStep, Severity, StepKind};
use std::fmt::Write;

/// Renders `plan` as a Markdown method-of-procedure.
pub fn render_mop(plan: &Plan) -> String {
    let numbers = StepNumbers::new(plan);
    let mut out = format!("# Method of procedure: upgrade of {}\n", inline(&plan.site));
    out.push_str(&summary(plan));
    out.push_str(&prerequisites(plan, &numbers));
    out.push_str(&phase_section(plan, Phase::Prepare, &numbers));
    out.push_str(&phase_section(plan, Phase::Staging, &numbers));
    out.push_str(&phase_section(plan, Phase::Window, &numbers));
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
struct StepNumbers<'a>(Vec<&'a str>);

impl<'a> StepNumbers<'a> {
    fn new(plan: &'a Plan) -> Self {
        let ids = [Phase::Prepare, Phase::Staging, Phase::Window]
            .into_iter()
            .flat_map(|p| plan.steps.iter().filter(move |s| s.phase == p))
            .map(|s| s.id.as_str())
            .collect();
        StepNumbers(ids)
    }

    fn of(&self, id: &str) -> Option<usize> {
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
        "Planned starts are offsets from the start of this phase ({mark}+H:MM)."
    );
    if phase == Phase::Staging {
        out.push_str(&staging_intro(plan));
    }
    for s in steps {
        let number = numbers.of(&s.id).unwrap_or(0);
        let at = match phase {
            Phase::Window => wall_clock(plan, s.start_s),
            Phase::Staging => super::staging_clock(plan, s.start_s),
            Phase::Prepare => None,
        };
        out.push_str(&step_block(&number.to_string(), s, mark, at, |id| {
            numbers.of(id).map(|n| n.to_string())
        }));
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
