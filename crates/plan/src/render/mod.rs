//! Renderers: pure functions from a [`ferry_model::Plan`] to text, Markdown, SVG and DOT.
//!
//! Every renderer is deterministic: the same plan gives byte-identical output.

pub mod dot;
pub mod mop;
pub mod svg;
pub mod text;

use ferry_model::PlannedStep;

/// Seconds as a clock offset `H:MM` (minutes truncated).
pub(crate) fn clock(secs: u64) -> String {
    format!("{}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// The site's local time `secs` after the window opens (`Sat 05 Dec 22:15`), when the plan
/// knows the window.
pub fn wall_clock(plan: &ferry_model::Plan, secs: u64) -> Option<String> {
    let w = plan.window.as_ref()?;
    let offset = jiff::tz::Offset::from_seconds(w.offset_s).ok()?;
    let at = jiff::Timestamp::from_second(w.start_epoch_s.checked_add(i64::try_from(secs).ok()?)?)
        .ok()?;
    Some(
        at.to_zoned(jiff::tz::TimeZone::fixed(offset))
            .strftime("%a %d %b %H:%M")
            .to_string(),
    )
}

/// The site's local time `secs` after the staging phase starts (`Sat 05 Dec 08:15`): in the
/// booked staging period, else just before the window opens.
pub fn staging_clock(plan: &ferry_model::Plan, secs: u64) -> Option<String> {
    let w = plan.window.as_ref()?;
    let offset = jiff::tz::Offset::from_seconds(w.offset_s).ok()?;
    let start = plan.staging_start_epoch_s()?;
    let at = jiff::Timestamp::from_second(start.checked_add(secs as i64)?).ok()?;
    Some(
        at.to_zoned(jiff::tz::TimeZone::fixed(offset))
            .strftime("%a %d %b %H:%M")
            .to_string(),
    )
}

/// Where a phase starts, in seconds from the window's opening (negative before it): staging in
/// the booked staging period (else just before the window), preparation just before that.
pub fn phase_offset_s(plan: &ferry_model::Plan, phase: ferry_model::Phase) -> i64 {
    use ferry_model::Phase;
    let staging = match (&plan.window, &plan.stage) {
        (Some(w), Some(st)) => st.start_epoch_s - w.start_epoch_s,
        _ => -(plan.staging_s as i64),
    };
    match phase {
        Phase::Window => 0,
        Phase::Staging => staging,
        Phase::Prepare if plan.staging_s > 0 => staging - plan.prepare_s as i64,
        Phase::Prepare => -(plan.prepare_s as i64),
    }
}

/// A moment (seconds since the Unix epoch) as a person reads it, with its date and zone, in
/// the zone the site's window is written in (UTC when the site books none):
/// `2026-12-05 18:00 -05:00`.
pub fn site_time(window: Option<&ferry_model::site::Window>, epoch_s: i64) -> String {
    let offset = window
        .and_then(|w| jiff::tz::Offset::from_seconds(w.offset_s).ok())
        .unwrap_or(jiff::tz::Offset::UTC);
    match jiff::Timestamp::from_second(epoch_s) {
        Ok(at) => at
            .to_zoned(jiff::tz::TimeZone::fixed(offset))
            .strftime("%Y-%m-%d %H:%M %:z")
            .to_string(),
        Err(_) => format!("{epoch_s} s after the Unix epoch"),
    }
}

/// The booked window as a person reads it: `2026-12-05 18:00 -05:00 to 2026-12-06 06:00 -05:00`.
pub fn window_span(window: &ferry_model::site::Window, len_s: u64) -> String {
    let end = window
        .start_epoch_s
        .saturating_add(i64::try_from(len_s).unwrap_or(i64::MAX));
    format!(
        "{} to {}",
        site_time(Some(window), window.start_epoch_s),
        site_time(Some(window), end)
    )
}

/// Seconds as a short duration: `45s`, `12m`, `12m 30s`, `2h 05m`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// A probability as a percentage, never rounded to 0% or 100% unless it is exactly that.
pub fn percent(p: f64) -> String {
    let pct = (p * 100.0).clamp(0.0, 100.0);
    let shown = if p > 0.0 && p < 1.0 {
        pct.round().clamp(1.0, 99.0)
    } else {
        pct.round()
    };
    format!("{shown:.0}%")
}

/// The booked window judged against the plan: what the point estimate leaves or overruns, and
/// the odds the rehearsals give (never "fits" on the estimate alone): `12h 00m: the estimate
/// ends 57m before it closes; the twin ends inside it in 35% of 500 rehearsals`.
pub fn window_verdict(plan: &ferry_model::Plan) -> Option<String> {
    let w = plan.window_s?;
    let estimate = if plan.makespan_s <= w {
        format!(
            "the estimate ends {} before it closes",
            duration(w - plan.makespan_s)
        )
    } else {
        format!(
            "the estimate runs {} past it",
            duration(plan.makespan_s - w)
        )
    };
    let odds = match (plan.rehearsed_runs, plan.fit_probability) {
        (0, _) => "the odds were not rehearsed (`--runs 0`)".to_string(),
        (n, Some(p)) => format!(
            "the twin ends inside it in {} of {n} rehearsals",
            percent(p)
        ),
        (n, None) => format!("{n} rehearsals did not say whether it ends inside"),
    };
    Some(format!("{}: {estimate}; {odds}", duration(w)))
}

/// The rehearsed window: `P50 12h 06m, P90 12h 36m (500 rehearsals against the twin)`.
pub fn rehearsed_window(plan: &ferry_model::Plan) -> Option<String> {
    let (Some(p50), Some(p90)) = (plan.window_p50_s, plan.window_p90_s) else {
        return None;
    };
    Some(format!(
        "P50 {}, P90 {} ({} rehearsals against the twin, seeds 1 to {})",
        duration(p50),
        duration(p90),
        plan.rehearsed_runs,
        plan.rehearsed_runs
    ))
}

/// The lane (or graph cluster) a step belongs to: its node, or its cluster for cluster-wide steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lane<'a> {
    pub cluster: &'a str,
    pub node: Option<&'a str>,
}

impl<'a> Lane<'a> {
    /// What a person reads: the node name, or the cluster name for cluster-wide steps.
    pub fn label(&self) -> &'a str {
        self.node.unwrap_or(self.cluster)
    }
}

pub(crate) fn lane_of(step: &PlannedStep) -> Lane<'_> {
    Lane {
        cluster: &step.cluster,
        node: step.node.as_deref(),
    }
}

/// Distinct lanes of `steps`, grouped by cluster in order of first appearance, and within a
/// cluster the cluster-wide lane first, then nodes in order of first appearance.
pub(crate) fn lanes<'a>(steps: &[&'a PlannedStep]) -> Vec<Lane<'a>> {
    let mut seen: Vec<Lane<'a>> = Vec::new();
    for step in steps {
        let lane = lane_of(step);
        if !seen.contains(&lane) {
            seen.push(lane);
        }
    }
    let clusters: Vec<&str> = seen.iter().fold(Vec::new(), |mut acc, l| {
        if !acc.contains(&l.cluster) {
            acc.push(l.cluster);
        }
        acc
    });
    let rank = |l: &Lane| {
        let c = clusters.iter().position(|c| *c == l.cluster).unwrap_or(0);
        (c, l.node.is_some())
    };
    seen.sort_by_key(|l| rank(l)); // stable: first appearance kept within a group
    seen
}

#[cfg(test)]
pub(crate) fn sample_plan() -> ferry_model::Plan {
    use ferry_model::plan::{Edge, LimitGroup, SCHEMA_VERSION};
    use ferry_model::{ClusterPlan, Finding, Impact, Measure, Phase, Plan, Severity, StepKind};

    #[allow(clippy::too_many_arguments)]
    fn step(
        id: &str,
        node: Option<&str>,
        action: &str,
        title: &str,
        kind: StepKind,
        phase: Phase,
        after: &[&str],
        rules: &[&str],
        start_s: u64,
        duration_s: u64,
        impact: Impact,
    ) -> PlannedStep {
        PlannedStep {
            id: id.to_string(),
            cluster: "cucm".to_string(),
            node: node.map(str::to_string),
            role: node.map(|n| {
                if n == "pub" {
                    "publisher"
                } else {
                    "subscriber"
                }
                .to_string()
            }),
            action: action.to_string(),
            title: title.to_string(),
            kind,
            phase,
            after: after.iter().map(|s| s.to_string()).collect(),
            rules: rules.iter().map(|s| s.to_string()).collect(),
            start_s,
            duration_s,
            estimate: Default::default(),
            spread: None,
            impact,
            impact_note: String::new(),
            instructions: format!("Run {action} on the node.\nWatch the console."),
            verify: format!("{action} finished without errors"),
            warning: None,
            version: None,
            effects: Vec::new(),
            retries: 0,
            timeout_s: None,
            rollback: false,
        }
    }
    fn edge(from: &str, to: &str, rule: &str) -> Edge {
        Edge {
            from: from.to_string(),
            to: to.to_string(),
            rule: rule.to_string(),
            note: String::new(),
        }
    }
    use {
        Impact::{Degraded, Down},
        Phase::*,
        StepKind::*,
    };
    let none = Impact::None;
    #[rustfmt::skip]
    let mut steps = vec![
        step("cucm/backup", None, "backup", "Back up the cluster", Action, Prepare, &[], &["CUCM-PREP-1"], 0, 1800, none),
        step("cucm/pub/install", Some("pub"), "install", "Install <new> version on pub", Action, Window, &[], &["CUCM-ORD-1"], 0, 3600, Degraded),
        step("cucm/sub1/install", Some("sub1"), "install", "Install new version on sub1", Action, Window, &[], &["CUCM-ORD-2"], 0, 3000, Degraded),
        step("cucm/pub/switch", Some("pub"), "switch", "Switch pub & reboot", Action, Window, &["cucm/pub/install", "cucm/sub1/install"], &["CUCM-ORD-3"], 3600, 1200, Down),
        step("cucm/replication", None, "replication", "Wait for replication state 2", Gate, Window, &["cucm/pub/switch"], &["CUCM-GATE-1"], 4800, 600, none),
        step("cucm/approve", None, "approve", "Approve subscriber switch", Pause, Window, &["cucm/replication"], &[], 5400, 0, none),
        step("cucm/sub1/switch", Some("sub1"), "switch", "Switch sub1 & reboot", Action, Window, &["cucm/approve"], &["CUCM-ORD-4"], 5400, 900, Down),
    ];
    steps[3].impact_note = "phones fail over to sub1".to_string();
    steps[3].warning = Some("Phones re-register \"during\" this step".to_string());
    let edges = vec![
        edge("cucm/pub/install", "cucm/pub/switch", "CUCM-ORD-3"),
        edge("cucm/sub1/install", "cucm/pub/switch", "CUCM-ORD-3"),
        edge("cucm/pub/switch", "cucm/replication", "CUCM-GATE-1"),
        edge("cucm/replication", "cucm/approve", "CUCM-PAUSE-1"),
        edge("cucm/approve", "cucm/sub1/switch", "CUCM-ORD-4"),
    ];
    #[rustfmt::skip]
    let rollback = vec![
        step("cucm/sub1/revert", Some("sub1"), "revert", "Revert sub1 to old version", Action, Window, &[], &["CUCM-RB-1"], 0, 900, Down),
        step("cucm/pub/revert", Some("pub"), "revert", "Revert pub to old version", Action, Window, &["cucm/sub1/revert"], &["CUCM-RB-2"], 900, 900, Down),
    ];
    Plan {
        schema_version: SCHEMA_VERSION,
        site: "Lab & <Test>".to_string(),
        strategy: "fast".to_string(),
        input_hash: "abc123".to_string(),
        clusters: vec![ClusterPlan {
            name: "cucm".to_string(),
            profile: "cucm-12".to_string(),
            from: "11.5.1".to_string(),
            target: "14.0.1".to_string(),
            path: vec![
                "11.5.1".to_string(),
                "12.5.1".to_string(),
                "14.0.1".to_string(),
            ],
            upgrade_type: "refresh".to_string(),
            upgrade_type_rule: "CUCM-PATH-2".to_string(),
            strategy: "fast".to_string(),
            makespan_s: 6300,
            staging: false,
        }],
        steps,
        edges,
        makespan_s: 6300,
        prepare_s: 1800,
        staging_s: 0,
        stage: None,
        staging: Vec::new(),
        staging_costs: Vec::new(),
        lower_bound_s: 6300,
        rules_lower_bound_s: None,
        rehearsed_runs: 0,
        window_p50_s: None,
        window_p90_s: None,
        fit_probability: None,
        sequential_s: 11100,
        window_s: Some(4 * 3600),
        window: None,
        measures: vec![Measure {
            cluster: "cucm".to_string(),
            name: "cdr-gap".to_string(),
            rule: "CUCM-MEAS-1".to_string(),
            description: "no server collects CDRs".to_string(),
            start_s: 3600,
            duration_s: 1200,
            phase: Window,
        }],
        occupancy: Vec::new(),
        batches: Vec::new(),
        limits: vec![LimitGroup {
            rule: "CUCM-LIM-1".to_string(),
            note: "one switch at a time".to_string(),
            steps: vec![
                "cucm/pub/switch".to_string(),
                "cucm/sub1/switch".to_string(),
            ],
            max_concurrent: Some(1),
            capacity: None,
            loads: Vec::new(),
            base: Default::default(),
        }],
        findings: vec![
            Finding {
                key: "cucm/pub/disk".to_string(),
                rule: "CUCM-CHK-1".to_string(),
                severity: Severity::Inhibitor,
                cluster: Some("cucm".to_string()),
                node: Some("pub".to_string()),
                message: "not enough free disk".to_string(),
                remedy: "free 20 GB on the common partition".to_string(),
            },
            Finding {
                key: "cucm/ntp".to_string(),
                rule: "CUCM-CHK-2".to_string(),
                severity: Severity::Warning,
                cluster: Some("cucm".to_string()),
                node: None,
                message: "NTP stratum is high".to_string(),
                remedy: "use a closer NTP server".to_string(),
            },
        ],
        rollback,
        rollback_edges: vec![edge("cucm/sub1/revert", "cucm/pub/revert", "CUCM-RB-2")],
        rollback_makespan_s: 1800,
        rollback_limits: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_clocks_read_naturally() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(9000), "2:30");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(720), "12m");
        assert_eq!(duration(750), "12m 30s");
        assert_eq!(duration(7500), "2h 05m");
    }

    #[test]
    fn lanes_put_the_cluster_lane_first_then_nodes_in_order() {
        let plan = sample_plan();
        let steps: Vec<&PlannedStep> = plan.steps.iter().collect();
        let labels: Vec<&str> = lanes(&steps).iter().map(|l| l.label()).collect();
        assert_eq!(labels, ["cucm", "pub", "sub1"]);
    }
}
