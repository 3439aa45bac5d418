//! The step graph as Graphviz DOT: one box per step, grouped per node, edges labelled with the
//! rule that orders them.

use super::svg::impact_colour;
use super::{clock, duration, lane_of, lanes};
use ferry_model::{Phase, Plan, PlannedStep, StepKind};
use std::fmt::Write;

/// Renders the steps and ordering edges of `plan` as a Graphviz digraph.
pub fn render_dot(plan: &Plan) -> String {
    let mut out = String::from("digraph \"plan\" {\n");
    let _ = writeln!(
        out,
        "  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label={}];",
        quote(&format!(
            "{}: estimated window {}",
            plan.site,
            duration(plan.makespan_s)
        ))
    );
    out.push_str(
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n",
    );
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n");
    let steps: Vec<&PlannedStep> = plan.steps.iter().collect();
    for (i, lane) in lanes(&steps).iter().enumerate() {
        let full = match lane.node {
            Some(n) => format!("{}/{n}", lane.cluster),
            None => format!("{} (cluster-wide)", lane.cluster),
        };
        let _ = writeln!(out, "  subgraph \"cluster_{i}\" {{");
        let _ = writeln!(
            out,
            "    label={}; tooltip={}; style=\"rounded\"; color=\"#8a94a3\";",
            quote(lane.label()),
            quote(&full)
        );
        for s in steps.iter().filter(|s| lane_of(s) == *lane) {
            let _ = writeln!(out, "    {}", node(s));
        }
        out.push_str("  }\n");
    }
    for e in &plan.edges {
        let tooltip = if e.note.is_empty() {
            String::new()
        } else {
            format!(", tooltip={}", quote(&e.note))
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}{tooltip}];",
            quote(&e.from),
            quote(&e.to),
            quote(&e.rule)
        );
    }
    out.push_str("}\n");
    out
}

/// A DOT quoted string: backslashes and double quotes escaped, newlines as `\n`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn node(s: &PlannedStep) -> String {
    let shape = match s.kind {
        StepKind::Action => "box",
        StepKind::Gate => "hexagon",
        StepKind::Pause => "octagon",
        StepKind::Sync => "diamond",
    };
    let (mark, style) = match s.phase {
        Phase::Prepare => ("P", "rounded,filled,dashed"),
        Phase::Staging => ("S", "rounded,filled,dotted"),
        Phase::Window => ("T", "rounded,filled"),
    };
    let mut label = format!(
        "{}\n{mark}+{}, {}",
        s.title,
        clock(s.start_s),
        duration(s.duration_s)
    );
    if !s.rules.is_empty() {
        let _ = write!(label, "\n{}", s.rules.join(", "));
    }
    format!(
        "{} [label={}, tooltip={}, shape={shape}, style=\"{style}\", fillcolor=\"{}\"];",
        quote(&s.id),
        quote(&label),
        quote(&s.id),
        impact_colour(s.impact)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample_plan;

    #[test]
    fn is_a_digraph_with_every_step() {
        let plan = sample_plan();
        let dot = render_dot(&plan);
        assert!(dot.starts_with("digraph \"plan\" {\n"));
        assert!(dot.ends_with("}\n"));
        for s in &plan.steps {
            assert!(
                dot.contains(&format!("    \"{}\" [label=", s.id)),
                "{}",
                s.id
            );
        }
    }

    #[test]
    fn has_every_edge_with_its_rule() {
        let plan = sample_plan();
        let dot = render_dot(&plan);
        for e in &plan.edges {
            let line = format!("  \"{}\" -> \"{}\" [label=\"{}\"];", e.from, e.to, e.rule);
            assert!(dot.contains(&line), "{line}");
        }
        assert_eq!(dot.matches(" -> ").count(), plan.edges.len());
    }

    #[test]
    fn groups_steps_in_one_cluster_subgraph_per_node() {
        let dot = render_dot(&sample_plan());
        assert_eq!(dot.matches("subgraph \"cluster_").count(), 3);
        for label in ["label=\"cucm\";", "label=\"pub\";", "label=\"sub1\";"] {
            assert_eq!(dot.matches(label).count(), 1, "{label}");
        }
        let pub_group = &dot[dot.find("label=\"pub\";").unwrap()..];
        let pub_group = &pub_group[..pub_group.find("  }").unwrap()];
        assert!(pub_group.contains("\"cucm/pub/install\""));
        assert!(pub_group.contains("\"cucm/pub/switch\""));
        assert!(!pub_group.contains("\"cucm/sub1/switch\" ["));
    }

    #[test]
    fn escapes_quotes_backslashes_and_newlines() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        let mut plan = sample_plan();
        plan.edges[0].rule = "R\"1\\".to_string();
        assert!(render_dot(&plan).contains("[label=\"R\\\"1\\\\\"];"));
    }

    #[test]
    fn marks_gates_pauses_and_prepare_steps() {
        let dot = render_dot(&sample_plan());
        assert!(dot.contains("shape=hexagon"));
        assert!(dot.contains("shape=octagon"));
        assert!(dot.contains("style=\"rounded,filled,dashed\""));
    }
}
