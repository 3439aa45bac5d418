//! `--explain`: why a step is where it is in the plan, rule by rule.

use ferry_model::Plan;
use std::fmt::Write;

fn hms(s: u64) -> String {
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// A paragraph on one step: its estimate, the steps it waits for and the rule behind each wait,
/// the limits it shares, and the steps that wait for it. `None` when no step has that ID.
pub fn explain(plan: &Plan, id: &str) -> Option<String> {
    let step = plan
        .steps
        .iter()
        .chain(&plan.rollback)
        .find(|s| s.id == id)?;
    let is_rollback = plan.rollback.iter().any(|s| s.id == id);
    let edges = if is_rollback {
        &plan.rollback_edges
    } else {
        &plan.edges
    };
    let all = if is_rollback {
        &plan.rollback
    } else {
        &plan.steps
    };
    let by_id: std::collections::HashMap<&str, &ferry_model::PlannedStep> =
        all.iter().rev().map(|s| (s.id.as_str(), s)).collect();
    let end_of = |sid: &str| by_id.get(sid).map(|s| s.end_s()).unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}", step.id, step.title);
    let _ = writeln!(
        out,
        "  {} phase, starts at +{}, takes {} ({} step, service impact: {}), rules: {}",
        step.phase.as_str(),
        hms(step.start_s),
        hms(step.duration_s),
        match step.kind {
            ferry_model::StepKind::Action => "action",
            ferry_model::StepKind::Gate => "gate",
            ferry_model::StepKind::Pause => "pause",
            ferry_model::StepKind::Sync => "sync",
        },
        step.impact.as_str(),
        step.rules.join(", ")
    );
    if let Some(d) = plan.staging.iter().find(|d| d.step == id) {
        let note = if d.note.is_empty() {
            String::new()
        } else {
            format!(": {}", d.note)
        };
        if d.staged {
            let _ = writeln!(
                out,
                "  Runs ahead of the window, while its node keeps serving, by {}{note}",
                d.rule
            );
        } else {
            let _ = writeln!(
                out,
                "  May run ahead of the window by {}{note}; stays in the window because {}",
                d.rule, d.kept_by
            );
        }
    }
    let incoming: Vec<_> = edges.iter().filter(|e| e.to == id).collect();
    if incoming.is_empty() {
        let _ = writeln!(
            out,
            "  Waits for nothing: it can start as soon as its phase begins."
        );
    } else {
        let _ = writeln!(out, "  Waits for:");
        for e in &incoming {
            let end = end_of(&e.from);
            let binding = if end == step.start_s {
                "  <- this is what sets its start"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} (ends +{}) by {}: {}{binding}",
                e.from,
                hms(end),
                e.rule,
                e.note
            );
            // A sync point stands for the steps before it: say which of them ended last.
            if let Some(sync) = by_id
                .get(e.from.as_str())
                .filter(|s| s.kind == ferry_model::StepKind::Sync)
            {
                let last = sync
                    .after
                    .iter()
                    .map(|a| (end_of(a), a))
                    .max_by(|x, y| x.0.cmp(&y.0).then_with(|| y.1.cmp(x.1)));
                if let Some((last_end, last)) = last {
                    let _ = writeln!(
                        out,
                        "      a sync point after {} step(s); the last of them to end is {last} (+{})",
                        sync.after.len(),
                        hms(last_end)
                    );
                }
            }
        }
    }
    let groups: Vec<_> = plan
        .limits
        .iter()
        .filter(|l| l.steps.iter().any(|s| s == id))
        .collect();
    for l in groups {
        let width = match (l.max_concurrent, l.capacity) {
            (Some(1), _) => "one at a time".to_string(),
            (Some(m), _) => format!("at most {m} at a time"),
            (None, Some(c)) => format!("within a capacity of {c}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "  Shares a limit ({width}) with {} step(s) by {}: {}",
            l.steps.len() - 1,
            l.rule,
            l.note
        );
    }
    let outgoing: Vec<_> = edges.iter().filter(|e| e.from == id).collect();
    if !outgoing.is_empty() {
        let _ = writeln!(out, "  These wait for it:");
        for e in outgoing {
            let _ = writeln!(out, "    {} by {}: {}", e.to, e.rule, e.note);
        }
    }
    if let Some(w) = &step.warning {
        let _ = writeln!(out, "  Warning: {w}");
    }
    Some(out)
}
