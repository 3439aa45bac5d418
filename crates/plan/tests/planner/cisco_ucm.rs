//! Rules of the `cisco-ucm` profile (UCM-*): CUCM with IM and Presence, checked on plans of the
//! `ucm-*` example sites the way an engineer would read them.

use super::common::*;
use ferry_model::{Impact, Phase, Plan, PlannedStep, Severity, StepKind};

// ---------------------------------------------------------------------------------------------
// Helpers of this module
// ---------------------------------------------------------------------------------------------

/// The site text with `from` replaced by `to` (which must be there).
fn edit(site: &str, from: &str, to: &str) -> String {
    assert!(site.contains(from), "the site has no `{from}`");
    site.replacen(from, to, 1)
}

/// Whether the plan has an edge `from` -> `to` labelled with `rule`.
fn has_edge(p: &Plan, from: &str, to: &str, rule: &str) -> bool {
    p.edges
        .iter()
        .any(|e| e.from == from && e.to == to && e.rule == rule)
}

fn assert_edge(p: &Plan, from: &str, to: &str, rule: &str) {
    assert!(
        has_edge(p, from, to, rule),
        "expected an edge {from} -> {to} labelled {rule}; edges into {to}: {:?}",
        p.edges
            .iter()
            .filter(|e| e.to == to)
            .map(|e| (&e.from, &e.rule))
            .collect::<Vec<_>>()
    );
}

fn ids(steps: &[&PlannedStep]) -> Vec<String> {
    steps.iter().map(|s| s.id.clone()).collect()
}

fn cluster_step<'a>(p: &'a Plan, action: &str) -> &'a PlannedStep {
    p.steps
        .iter()
        .find(|s| s.action == action && s.node.is_none())
        .unwrap_or_else(|| panic!("no cluster step {action}"))
}

fn has_action(p: &Plan, action: &str) -> bool {
    p.steps.iter().any(|s| s.action == action)
}

fn first_start_of(steps: &[&PlannedStep]) -> u64 {
    steps.iter().map(|s| s.start_s).min().expect("steps")
}

fn last_end_of(steps: &[&PlannedStep]) -> u64 {
    steps.iter().map(|s| s.end_s()).max().expect("steps")
}

/// A documented task list: groups of (role, action), `None` for cluster-wide steps. Every group
/// must be in the plan, and every step of a group must end before any step of the next group
/// starts (prepare-phase steps come before the window). Steps of one group may run together.
fn assert_task_list(p: &Plan, list: &[&[(Option<&str>, &str)]]) {
    let matches = |s: &PlannedStep, (role, action): &(Option<&str>, &str)| {
        s.action == *action && s.role.as_deref() == *role
    };
    let groups: Vec<Vec<&PlannedStep>> = list
        .iter()
        .map(|g| {
            let found: Vec<&PlannedStep> = p
                .steps
                .iter()
                .filter(|s| g.iter().any(|k| matches(s, k)))
                .collect();
            assert!(!found.is_empty(), "task {g:?} is missing from the plan");
            found
        })
        .collect();
    for w in groups.windows(2) {
        assert_all_before(&w[0], &w[1]);
    }
    // And in start order the plan reads like the list.
    let mut seen: Vec<(Phase, u64, usize)> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        for s in g {
            seen.push((s.phase, s.start_s, gi));
        }
    }
    seen.sort();
    assert!(
        seen.windows(2).all(|w| w[0].2 <= w[1].2),
        "the plan's start order differs from the task list: {seen:?}"
    );
}

const UCM_EXAMPLES: [&str; 7] = [
    "ucm-standard",
    "ucm-refresh",
    "ucm-cucm-only-standard",
    "ucm-cucm-only-refresh",
    "ucm-imp-only-standard",
    "ucm-imp-only-refresh",
    "ucm-parallel",
];

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

#[test]
fn examples_check_cleanly_and_plan_at_the_lower_bound() {
    for name in UCM_EXAMPLES {
        let f = findings(&example(name));
        assert!(inhibitors(&f).is_empty(), "{name}: {f:?}");
        let p = plan(&example(name));
        assert!(
            p.findings.iter().all(|f| f.severity != Severity::Inhibitor),
            "{name}"
        );
        assert!(
            p.makespan_s as f64 <= p.lower_bound_s as f64 * 1.05,
            "{name}: makespan {} vs lower bound {}",
            p.makespan_s,
            p.lower_bound_s
        );
        let w = p.window_s.expect("examples book a window");
        assert!(p.makespan_s <= w, "{name} does not fit its window");
    }
}

#[test]
fn inhibitor_example_has_several_distinct_inhibitors() {
    let f = findings(&example("ucm-inhibitors"));
    let mut rules: Vec<&str> = inhibitors(&f).iter().map(|x| x.rule.as_str()).collect();
    rules.sort();
    rules.dedup();
    assert_eq!(rules, ["UCM-05", "UCM-10", "UCM-17", "UCM-18"], "{f:?}");
}

// ---------------------------------------------------------------------------------------------
// UCM-01: upgrade type
// ---------------------------------------------------------------------------------------------

#[test]
fn upgrade_type_follows_the_embedded_os_ucm_01() {
    let cases = [
        ("ucm-standard", "standard"),
        ("ucm-cucm-only-standard", "standard"),
        ("ucm-imp-only-standard", "standard"),
        ("ucm-refresh", "refresh"),
        ("ucm-cucm-only-refresh", "refresh"),
        ("ucm-imp-only-refresh", "refresh"),
    ];
    for (name, ty) in cases {
        let p = plan(&example(name));
        assert_eq!(p.clusters[0].upgrade_type, ty, "{name}");
        assert_eq!(p.clusters[0].upgrade_type_rule, "UCM-01", "{name}");
    }
    // 11.5 and 12.5 share RHEL 7: standard. 11.0 (RHEL 6) to 12.5: refresh.
    let site = example("ucm-cucm-only-refresh");
    let p = plan(&site.replace("10.5.2.21900-13", "11.5.1.23900-30"));
    assert_eq!(p.clusters[0].upgrade_type, "standard");
    assert_eq!(steps_of(&p, "install-inactive", None).len(), 6);
    let p = plan(&site.replace("10.5.2.21900-13", "11.0.1.24900-8"));
    assert_eq!(p.clusters[0].upgrade_type, "refresh");
}

#[test]
fn each_node_installs_by_its_own_os_change_ucm_01() {
    // IM&P-only refresh: the CUCM publisher's MR is a standard install, the IM&P nodes refresh.
    let p = plan(&example("ucm-imp-only-refresh"));
    assert_eq!(
        ids(&steps_of(&p, "install-inactive", None)),
        ["ucm-plant/cm-pub/install-inactive"]
    );
    assert!(steps_of(&p, "refresh-install", None).is_empty());
    assert_eq!(steps_of(&p, "imp-refresh-install", None).len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Behaviour annotations: UCM-02, UCM-03, UCM-04, UCM-11, UCM-21
// ---------------------------------------------------------------------------------------------

#[test]
fn standard_installs_while_serving_and_switch_takes_the_node_down_ucm_02() {
    let p = plan(&example("ucm-standard"));
    for s in steps_of(&p, "install-inactive", None) {
        assert_ne!(s.impact, Impact::Down, "{}", s.id);
        assert!(s.rules.iter().any(|r| r == "UCM-02"), "{}", s.id);
        assert!(s.impact_note.contains("keeps serving"), "{}", s.id);
        let node = s.node.as_deref().unwrap();
        let switch = step(&p, &format!("ucm-hq/{node}/switch-version"));
        assert_all_before(&[s], &[switch]);
    }
    for s in steps_of(&p, "imp-install-inactive", None) {
        assert_ne!(s.impact, Impact::Down, "{}", s.id);
        assert!(s.rules.iter().any(|r| r == "UCM-02"), "{}", s.id);
    }
    for action in ["switch-version", "imp-switch-version"] {
        for s in steps_of(&p, action, None) {
            assert_eq!(s.impact, Impact::Down, "{}", s.id);
            assert!(s.rules.iter().any(|r| r == "UCM-02"), "{}", s.id);
        }
    }
    // A standard upgrade longer than the booked window is reported.
    let short = edit(&example("ucm-standard"), "hours = 12", "hours = 8");
    let f = findings(&short);
    let w = findings_of(&f, "UCM-02");
    assert_eq!(w.len(), 1, "{f:?}");
    assert_eq!(w[0].severity, Severity::Warning);
    // The old version stays: the rollback switches back to it.
    assert!(p
        .rollback
        .iter()
        .any(|s| s.action == "revert-version" && s.rules.iter().any(|r| r == "UCM-02")));
}

#[test]
fn refresh_takes_the_node_down_for_the_whole_install_ucm_03() {
    let p = plan(&example("ucm-refresh"));
    assert!(steps_of(&p, "install-inactive", None).is_empty());
    for action in [
        "refresh-install",
        "imp-refresh-install",
        "refresh-switch",
        "imp-refresh-switch",
    ] {
        let steps = steps_of(&p, action, None);
        assert!(!steps.is_empty());
        for s in steps {
            assert_eq!(s.impact, Impact::Down, "{}", s.id);
            assert!(s.rules.iter().any(|r| r == "UCM-03"), "{}", s.id);
        }
    }
    // Must run in a maintenance window: a window too short for it is reported.
    let short = edit(&example("ucm-refresh"), "hours = 16", "hours = 6");
    let f = findings(&short);
    let w = findings_of(&f, "UCM-03");
    assert_eq!(w.len(), 1, "{f:?}");
    assert_eq!(w[0].severity, Severity::Warning);
}

#[test]
fn configuration_changes_are_frozen_because_they_would_be_lost_ucm_04() {
    let p = plan(&example("ucm-standard"));
    let freeze = cluster_step(&p, "freeze-configuration");
    assert!(freeze.rules.iter().any(|r| r == "UCM-04"));
    assert!(freeze.impact_note.contains("lost on switch"));
    for s in steps_of(&p, "switch-version", None) {
        assert!(s.rules.iter().any(|r| r == "UCM-04"), "{}", s.id);
    }
    let revert = p
        .rollback
        .iter()
        .find(|s| s.action == "revert-version")
        .unwrap();
    assert!(revert.rules.iter().any(|r| r == "UCM-04"));
    assert!(revert.warning.as_deref().unwrap_or("").contains("lost"));
}

#[test]
fn replication_gate_waits_20_to_30_minutes_and_more_for_large_databases_ucm_11() {
    let p = plan(&example("ucm-standard"));
    let gate = cluster_step(&p, "cucm-replication-gate");
    assert_eq!(gate.kind, StepKind::Gate);
    assert_eq!(gate.impact, Impact::Degraded);
    assert!(gate.rules.iter().any(|r| r == "UCM-11"));
    assert!(
        (20 * 60..=30 * 60).contains(&gate.duration_s),
        "{}",
        gate.duration_s
    );
    assert!(gate
        .instructions
        .contains("utils dbreplication runtimestate"));
    let big = plan(&edit(
        &example("ucm-standard"),
        "configured_devices = 9400",
        "configured_devices = 40000",
    ));
    assert!(cluster_step(&big, "cucm-replication-gate").duration_s > gate.duration_s);
    let imp_gate = cluster_step(&p, "imp-replication-gate");
    assert_eq!(imp_gate.kind, StepKind::Gate);
    assert!(imp_gate.rules.iter().any(|r| r == "UCM-11"));
    assert!((20 * 60..=30 * 60).contains(&imp_gate.duration_s));
    assert!(imp_gate.instructions.contains("Notifications"));
}

#[test]
fn phone_settings_may_be_lost_after_install_and_switch_ucm_21() {
    let std = plan(&example("ucm-standard"));
    let refresh = plan(&example("ucm-refresh"));
    for (p, action) in [
        (&std, "install-inactive"),
        (&std, "switch-version"),
        (&refresh, "refresh-install"),
        (&refresh, "refresh-switch"),
    ] {
        let steps = steps_of(p, action, None);
        assert!(!steps.is_empty(), "{action}");
        for s in steps {
            assert!(s.rules.iter().any(|r| r == "UCM-21"), "{}", s.id);
            assert!(s.impact_note.contains("user settings"), "{}", s.id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// COP files: UCM-05, UCM-06
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_refresh_cop_is_an_inhibitor_on_each_node_ucm_05() {
    let f = findings(&example("ucm-inhibitors"));
    let cop = findings_of(&f, "UCM-05");
    let mut nodes: Vec<&str> = cop.iter().map(|x| x.node.as_deref().unwrap()).collect();
    nodes.sort();
    // cm-pub and cm-sub3 plan it, cm-sub1 has it installed; cm-sub2 and cup-sub1 have nothing.
    assert_eq!(nodes, ["cm-sub2", "cup-sub1"], "{cop:?}");
    assert!(cop.iter().all(|x| x.severity == Severity::Inhibitor));
    assert!(cop[0].message.contains("refresh_upgrade"));

    assert!(findings_of(&findings(&example("ucm-refresh")), "UCM-05").is_empty());
    let site = edit(
        &example("ucm-refresh"),
        "facts = { devices = 1600, replication_state = 2, planned_cops = [\"ciscocm.refresh_upgrade_v1.2.cop.sgn\"] }",
        "facts = { devices = 1600, replication_state = 2 }",
    );
    let f = findings(&site);
    let cop = findings_of(&f, "UCM-05");
    assert_eq!(cop.len(), 1, "{f:?}");
    assert_eq!(cop[0].node.as_deref(), Some("cm-sub1"));
    assert_eq!(cop[0].severity, Severity::Inhibitor);
}

#[test]
fn cop_files_go_on_every_node_with_a_restart_before_the_install_ucm_06() {
    let p = plan(&example("ucm-refresh"));
    let pub_install = step(&p, "ucm-plant/cm-pub/refresh-install");
    for node in ["cm-pub", "cm-sub1", "cm-sub2", "cm-sub3"] {
        let cop = step(&p, &format!("ucm-plant/{node}/install-cop"));
        let restart = step(&p, &format!("ucm-plant/{node}/restart-after-cop"));
        assert_eq!(restart.impact, Impact::Down);
        assert!(restart.instructions.contains("utils system restart"));
        assert!(cop.rules.iter().any(|r| r == "UCM-05"));
        assert!(cop
            .instructions
            .contains("ciscocm.refresh_upgrade_v<latest_version>.cop.sgn"));
        assert_all_before(&[cop], &[restart]);
        assert_all_before(&[restart], &[pub_install]);
        assert_edge(&p, &restart.id, &pub_install.id, "UCM-06");
    }
    let imp_install = step(&p, "ucm-plant/cup-pub/imp-refresh-install");
    for node in ["cup-pub", "cup-sub1"] {
        let cop = step(&p, &format!("ucm-plant/{node}/imp-install-cop"));
        assert!(cop.rules.iter().any(|r| r == "UCM-05") && cop.rules.iter().any(|r| r == "UCM-06"));
        assert!(cop
            .instructions
            .contains("ciscocm.cup.refresh_upgrade_v<latest_version>.cop"));
        let restart = step(&p, &format!("ucm-plant/{node}/imp-restart-after-cop"));
        assert_edge(&p, &restart.id, &imp_install.id, "UCM-06");
    }
    // Fastest: the COP restarts of all nodes run together; one at a time: node by node.
    assert_some_overlap(&steps_of(&p, "restart-after-cop", None));
    let slow = plan_with(&example("ucm-refresh"), Some("one-at-a-time"));
    let restarts: Vec<&PlannedStep> = slow
        .steps
        .iter()
        .filter(|s| s.action == "restart-after-cop" || s.action == "imp-restart-after-cop")
        .collect();
    assert_eq!(restarts.len(), 6);
    assert_one_at_a_time(&restarts);
    assert_edge(
        &slow,
        "ucm-plant/cm-pub/restart-after-cop",
        "ucm-plant/cm-sub1/install-cop",
        "UCM-06",
    );
    // No COP planned, no COP step.
    assert!(!has_action(&plan(&example("ucm-standard")), "install-cop"));
}

#[test]
fn free_common_space_cop_warns_that_the_inactive_version_is_lost_ucm_06() {
    let f = findings(&example("ucm-inhibitors"));
    let w = findings_of(&f, "UCM-06");
    assert_eq!(w.len(), 1, "{f:?}");
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!(w[0].node.as_deref(), Some("cup-pub"));
    assert!(w[0].message.contains("never switch back to that version"));

    let site = edit(
        &example("ucm-standard"),
        "facts = { devices = 2600, replication_state = 2 }",
        "facts = { devices = 2600, replication_state = 2, planned_cops = [\"ciscocm.free_common_space_v1.5.cop.sgn\"] }",
    );
    let p = plan(&site);
    let cop = step(&p, "ucm-hq/cucm-sub1/install-free-common-space-cop");
    let warning = cop.warning.as_deref().expect("the step carries a warning");
    assert!(
        warning.contains("inactive on cucm-sub1 before the upgrade"),
        "{warning}"
    );
    assert!(cop.rules.iter().any(|r| r == "UCM-06"));
    assert_all_before(&[cop], &[step(&p, "ucm-hq/cucm-pub/install-inactive")]);
    assert_eq!(findings_of(&judged(&p.findings), "UCM-06").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// CUCM order: UCM-07, UCM-08, UCM-09, UCM-10
// ---------------------------------------------------------------------------------------------

#[test]
fn cucm_publisher_is_upgraded_first_ucm_07() {
    for name in ["ucm-standard", "ucm-parallel"] {
        let p = plan(&example(name));
        let pub_install = steps_of(&p, "install-inactive", Some("publisher"))[0];
        let others: Vec<&PlannedStep> = p
            .steps
            .iter()
            .filter(|s| {
                (s.action == "install-inactive" || s.action == "imp-install-inactive")
                    && s.id != pub_install.id
            })
            .collect();
        assert_all_before(&[pub_install], &others);
        for s in steps_of(&p, "install-inactive", Some("subscriber"))
            .into_iter()
            .chain(steps_of(&p, "imp-install-inactive", Some("imp_publisher")))
        {
            assert_edge(&p, &pub_install.id, &s.id, "UCM-07");
        }
    }
}

#[test]
fn subscribers_install_together_once_the_publisher_holds_the_new_version_ucm_08() {
    let p = plan(&example("ucm-standard"));
    let verified = step(&p, "ucm-hq/cucm-pub/verify-install-log");
    let subs = steps_of(&p, "install-inactive", Some("subscriber"));
    assert_eq!(subs.len(), 4);
    assert_all_before(&[verified], &subs);
    for s in &subs {
        assert_edge(&p, &verified.id, &s.id, "UCM-08");
        // Straight after the confirmation: nothing else holds them back.
        assert_eq!(s.start_s, verified.end_s(), "{}", s.id);
    }
    assert_some_overlap(&subs);
}

#[test]
fn publisher_switches_before_any_subscriber_ucm_09() {
    let p = plan(&example("ucm-standard"));
    let pub_switch = step(&p, "ucm-hq/cucm-pub/switch-version");
    let subs = steps_of(&p, "switch-version", Some("subscriber"));
    assert_all_before(&[pub_switch], &subs);
    for s in &subs {
        assert_edge(&p, &pub_switch.id, &s.id, "UCM-09");
    }
    // Refresh: the publisher's reboot into the new version comes before the subscribers'.
    let p = plan(&example("ucm-cucm-only-refresh"));
    let pub_switch = step(&p, "ucm-campus/cm1-pub/refresh-switch");
    for s in steps_of(&p, "refresh-switch", Some("subscriber")) {
        assert_edge(&p, &pub_switch.id, &s.id, "UCM-09");
        assert_all_before(&[pub_switch], &[s]);
    }
}

#[test]
fn replication_gate_after_the_switches_and_before_the_imp_phase_ucm_10() {
    // The documented task list: the IM&P phase starts after the gate.
    let p = plan_with(&example("ucm-standard"), Some("documented"));
    let gate = cluster_step(&p, "cucm-replication-gate");
    let switches: Vec<&PlannedStep> = p
        .steps
        .iter()
        .filter(|s| s.action == "switch-version")
        .collect();
    assert_all_before(&switches, &[gate]);
    for s in &switches {
        assert_edge(&p, &s.id, &gate.id, "UCM-10");
    }
    let imp_pub = step(&p, "ucm-hq/imp-pub/imp-install-inactive");
    assert_edge(&p, &gate.id, &imp_pub.id, "UCM-10");
    // No COP install before replication is complete.
    let p = plan(&example("ucm-refresh"));
    let gate = cluster_step(&p, "cucm-replication-gate");
    for s in steps_of(&p, "imp-install-cop", None) {
        assert_edge(&p, &gate.id, &s.id, "UCM-10");
        assert_all_before(&[gate], &[s]);
    }
    // Parallel option (in the fastest plan): the IM&P nodes install early but switch only
    // after the gate.
    let p = plan(&example("ucm-parallel"));
    let gate = cluster_step(&p, "cucm-replication-gate");
    for s in steps_of(&p, "imp-switch-version", None) {
        assert_edge(&p, &gate.id, &s.id, "UCM-10");
        assert_all_before(&[gate], &[s]);
    }
    // And the IM&P gate after the IM&P switches.
    let imp_gate = cluster_step(&p, "imp-replication-gate");
    let imp_switches = steps_of(&p, "imp-switch-version", None);
    assert_all_before(&imp_switches, &[imp_gate]);
    assert_edge(&p, &imp_switches[0].id, &imp_gate.id, "UCM-10");
}

#[test]
fn broken_replication_blocks_the_upgrade_ucm_10() {
    let f = findings(&example("ucm-inhibitors"));
    let r = findings_of(&f, "UCM-10");
    assert_eq!(r.len(), 1, "{f:?}");
    assert_eq!(r[0].node.as_deref(), Some("cm-sub3"));
    assert_eq!(r[0].severity, Severity::Inhibitor);
    assert!(r[0].message.contains("state 3"));
}

// ---------------------------------------------------------------------------------------------
// IM&P order: UCM-12, UCM-13, UCM-14, UCM-15, UCM-16, UCM-18, UCM-19
// ---------------------------------------------------------------------------------------------

#[test]
fn imp_publisher_is_the_first_imp_node_upgraded_ucm_12() {
    let p = plan(&example("ucm-standard"));
    let verified = step(&p, "ucm-hq/imp-pub/imp-verify-install-log");
    let subs = steps_of(&p, "imp-install-inactive", Some("imp_subscriber"));
    assert_eq!(subs.len(), 2);
    assert_all_before(&[step(&p, "ucm-hq/imp-pub/imp-install-inactive")], &subs);
    for s in &subs {
        assert_edge(&p, &verified.id, &s.id, "UCM-12");
        assert_eq!(s.start_s, verified.end_s());
    }
    assert_some_overlap(&subs);
}

#[test]
fn parallel_option_installs_the_imp_publisher_with_the_cucm_subscribers_ucm_13() {
    // The option is part of the fastest plan; the documented strategy keeps the task list's
    // order.
    let site = example("ucm-parallel");
    let par = plan(&site);
    assert_eq!(par.clusters[0].strategy, "fastest");
    let imp_pub = step(&par, "ucm-dc/dc-imp-pub/imp-install-inactive");
    let subs = steps_of(&par, "install-inactive", Some("subscriber"));
    assert!(subs.iter().all(|s| s.start_s == imp_pub.start_s));
    assert_edge(
        &par,
        "ucm-dc/dc-pub/verify-install-log",
        &imp_pub.id,
        "UCM-13",
    );
    // Without the option the IM&P publisher waits for every CUCM node and the CUCM phase.
    let documented = plan_with(&site, Some("documented"));
    let imp_pub = step(&documented, "ucm-dc/dc-imp-pub/imp-install-inactive");
    assert_all_before(
        &steps_of(&documented, "verify-install-log", Some("subscriber")),
        &[imp_pub],
    );
    assert_all_before(
        &[cluster_step(&documented, "cucm-post-upgrade")],
        &[imp_pub],
    );
    assert!(par.makespan_s < documented.makespan_s);
}

#[test]
fn cucm_switches_before_imp_and_imp_publisher_before_its_subscribers_ucm_14() {
    // The parallel option leaves only UCM-14 (and the gate) between the two clusters' switches.
    let p = plan(&example("ucm-parallel"));
    let cucm: Vec<&PlannedStep> = steps_of(&p, "switch-version", None);
    let imp_pub = step(&p, "ucm-dc/dc-imp-pub/imp-switch-version");
    let imp_subs = steps_of(&p, "imp-switch-version", Some("imp_subscriber"));
    assert_all_before(&cucm, &[imp_pub]);
    assert_all_before(&[imp_pub], &imp_subs);
    for s in &cucm {
        assert_edge(&p, &s.id, &imp_pub.id, "UCM-14");
    }
    for s in &imp_subs {
        assert_edge(&p, &imp_pub.id, &s.id, "UCM-14");
    }
    // IM&P-only: the CUCM publisher switches before the IM&P publisher.
    let p = plan(&example("ucm-imp-only-standard"));
    assert_edge(
        &p,
        "ucm-hq/cucm-pub/switch-version",
        "ucm-hq/imp-pub/imp-switch-version",
        "UCM-14",
    );
}

#[test]
fn imp_subscribers_switch_one_at_a_time_ucm_15() {
    for name in ["ucm-standard", "ucm-parallel"] {
        for strategy in ["fastest", "one-at-a-time"] {
            let p = plan_with(&example(name), Some(strategy));
            let subs = steps_of(&p, "imp-switch-version", Some("imp_subscriber"));
            assert!(subs.len() >= 2, "{name}");
            assert_one_at_a_time(&subs);
            for w in subs.windows(2) {
                assert_edge(&p, &w[0].id, &w[1].id, "UCM-15");
            }
        }
    }
    // Refresh: the next IM&P subscriber starts only once the previous one is on the new version.
    let p = plan(&example("ucm-imp-only-refresh"));
    let subs = steps_of(&p, "imp-refresh-switch", Some("imp_subscriber"));
    assert_one_at_a_time(&subs);
    assert_edge(
        &p,
        "ucm-plant/cup-sub1/imp-refresh-switch",
        "ucm-plant/cup-sub2/imp-refresh-install",
        "UCM-15",
    );
}

#[test]
fn cucm_subscriber_switching_is_a_site_choice_ucm_15() {
    let site = example("ucm-standard");
    let fast = plan_with(&site, Some("fastest"));
    assert_some_overlap(&steps_of(&fast, "switch-version", Some("subscriber")));
    let slow = plan_with(&site, Some("one-at-a-time"));
    let subs = steps_of(&slow, "switch-version", Some("subscriber"));
    assert_one_at_a_time(&subs);
    // Each waits until the one before serves again (its gate), so that no CM group is left
    // without a subscriber.
    let back = steps_of(&slow, "subscriber-serving", Some("subscriber"));
    assert_eq!(back.len(), subs.len());
    assert_edge(&slow, &back[0].id, &subs[1].id, "UCM-15");
    assert!(back[0].start_s >= subs[0].end_s() && subs[1].start_s >= back[0].end_s());
    assert!(slow.makespan_s > fast.makespan_s);
    // The site may write its choice down.
    let chosen = plan(&edit(
        &site,
        "profile = \"cisco-ucm\"",
        "profile = \"cisco-ucm\"\nstrategy = \"one-at-a-time\"",
    ));
    assert_eq!(chosen.makespan_s, slow.makespan_s);
}

#[test]
fn imp_nodes_reboot_after_a_cucm_mr_without_imp_ucm_16() {
    let p = plan(&example("ucm-cucm-only-standard"));
    let reboots = steps_of(&p, "reboot-imp-after-mr", None);
    assert_eq!(
        ids(&reboots),
        [
            "ucm-branch/imp-pub/reboot-imp-after-mr",
            "ucm-branch/imp-sub1/reboot-imp-after-mr"
        ]
    );
    for r in &reboots {
        assert_eq!(r.impact, Impact::Down);
        assert!(r.instructions.contains("Notifications"));
    }
    assert_all_before(&[cluster_step(&p, "cucm-post-upgrade")], &reboots);
    assert_all_before(
        &reboots,
        &[cluster_step(&p, "release-configuration-freeze")],
    );
    assert_edge(&p, &reboots[0].id, &reboots[1].id, "UCM-16");
    // Not when IM&P is upgraded too, nor after a CUCM upgrade that is not an MR/ES.
    assert!(!has_action(
        &plan(&example("ucm-standard")),
        "reboot-imp-after-mr"
    ));
    let major = edit(
        &example("ucm-cucm-only-standard"),
        "target = \"14.0.1.13900-155\"",
        "target = \"15.0.1.11900-23\"",
    );
    assert!(!has_action(&plan(&major), "reboot-imp-after-mr"));
}

#[test]
fn imp_only_mr_upgrades_the_cucm_publisher_first_ucm_18() {
    let p = plan(&example("ucm-imp-only-standard"));
    let pub_ok = step(&p, "ucm-hq/cucm-pub/verify-install-log");
    let imp_pub = step(&p, "ucm-hq/imp-pub/imp-install-inactive");
    assert_edge(&p, &pub_ok.id, &imp_pub.id, "UCM-18");
    assert_eq!(imp_pub.start_s, pub_ok.end_s());
    // The CUCM subscribers are not touched.
    assert!(steps_of(&p, "install-inactive", Some("subscriber")).is_empty());

    // Leaving the publisher out is an inhibitor when the first three numbers differ...
    let f = findings(&example("ucm-inhibitors"));
    let r = findings_of(&f, "UCM-18");
    let mut nodes: Vec<&str> = r
        .iter()
        .filter(|x| x.severity == Severity::Inhibitor)
        .map(|x| x.node.as_deref().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["east-imp-pub", "east-imp-sub1"]);
    // The site does not say which tool runs it: ferry says what it assumed.
    assert!(r
        .iter()
        .any(|x| x.key == "imp-only-mr-tool-unstated/ucm-east" && x.severity == Severity::Warning));
    // ...and allowed when they match.
    let site = example("ucm-inhibitors")
        .replace("target = \"10.5.1.10000-7\"", "target = \"10.5.2.20000-5\"")
        .replace(
            "version = \"10.5.1.10000-7\"",
            "version = \"10.5.2.20000-5\"",
        );
    let f = findings(&site);
    let keys: Vec<&str> = findings_of(&f, "UCM-18")
        .iter()
        .map(|x| x.key.as_str())
        .collect();
    assert_eq!(keys, ["imp-only-mr-tool-unstated/ucm-east"]);
}

#[test]
fn refresh_publisher_runs_the_new_version_before_subscribers_upgrade_ucm_19() {
    for strategy in ["fastest", "one-at-a-time"] {
        let p = plan_with(&example("ucm-refresh"), Some(strategy));
        let pub_switch = step(&p, "ucm-plant/cm-pub/refresh-switch");
        let subs = steps_of(&p, "refresh-install", Some("subscriber"));
        assert_all_before(&[pub_switch], &subs);
        for s in &subs {
            assert_edge(&p, &pub_switch.id, &s.id, "UCM-19");
        }
        let imp_switch = step(&p, "ucm-plant/cup-pub/imp-refresh-switch");
        let imp_sub = step(&p, "ucm-plant/cup-sub1/imp-refresh-install");
        assert_edge(&p, &imp_switch.id, &imp_sub.id, "UCM-19");
        assert_all_before(&[imp_switch], &[imp_sub]);
    }
    // IM&P-only refresh: the CUCM publisher runs its new version before the IM&P nodes upgrade.
    let p = plan(&example("ucm-imp-only-refresh"));
    let pub_switch = step(&p, "ucm-plant/cm-pub/switch-version");
    let imp = steps_of(&p, "imp-refresh-install", None);
    assert_all_before(&[pub_switch], &imp);
    for s in &imp {
        assert_edge(&p, &pub_switch.id, &s.id, "UCM-19");
    }
}

// ---------------------------------------------------------------------------------------------
// Checks and steps: UCM-17, UCM-20, UCM-22, UCM-23, UCM-24, UCM-25, UCM-26
// ---------------------------------------------------------------------------------------------

#[test]
fn imp_version_must_match_the_cucm_release_ucm_17() {
    let f = findings(&example("ucm-inhibitors"));
    let r = findings_of(&f, "UCM-17");
    assert!(r.iter().all(|x| x.severity == Severity::Inhibitor));
    assert!(r
        .iter()
        .any(|x| x.node.as_deref() == Some("cup-pub") && x.message.contains("10.5.1.10000-9")));
    // The IM&P nodes also disagree with each other.
    assert!(r.iter().any(|x| x.key == "imp-versions-differ/ucm-legacy"));
    assert!(findings_of(&findings(&example("ucm-standard")), "UCM-17").is_empty());
    // IM&P-only to another release than the CUCM publisher's: every IM&P node is reported.
    let site = example("ucm-imp-only-standard").replace("14.0.1.13900-8", "15.0.1.10000-11");
    let f = findings(&site);
    let r = findings_of(&f, "UCM-17");
    assert_eq!(r.len(), 3, "{f:?}");
}

#[test]
fn configuration_freeze_spans_the_whole_upgrade_ucm_20() {
    let p = plan(&example("ucm-standard"));
    let freeze = cluster_step(&p, "freeze-configuration");
    let release = cluster_step(&p, "release-configuration-freeze");
    assert!(freeze.instructions.contains("LDAP"));
    assert!(freeze
        .warning
        .as_deref()
        .unwrap_or("")
        .contains("Application Server"));
    let window: Vec<&PlannedStep> = p
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Window)
        .collect();
    assert_eq!(freeze.start_s, 0);
    for s in &window {
        if s.id != freeze.id {
            assert!(s.start_s >= freeze.end_s(), "{} before the freeze", s.id);
        }
        if s.id != release.id {
            assert!(s.end_s() <= release.start_s, "{} after the release", s.id);
        }
    }
    assert!(freeze.rules.iter().any(|r| r == "UCM-20"));
    // Both post-upgrade task lists end before the release, even when they run side by side.
    let par = plan(&example("ucm-parallel"));
    let release_par = cluster_step(&par, "release-configuration-freeze");
    assert_edge(&par, "ucm-dc/cucm-post-upgrade", &release_par.id, "UCM-20");
    assert_all_before(&[cluster_step(&par, "cucm-post-upgrade")], &[release_par]);
    let m = p
        .measures
        .iter()
        .find(|m| m.name == "configuration_freeze")
        .unwrap();
    assert_eq!(m.rule, "UCM-20");
    assert_eq!(m.duration_s, p.makespan_s);
}

#[test]
fn upgrade_source_is_staged_before_the_window_ucm_22() {
    let p = plan(&example("ucm-standard"));
    let stage = cluster_step(&p, "stage-upgrade-source");
    assert_eq!(stage.phase, Phase::Prepare);
    assert!(stage.rules.iter().any(|r| r == "UCM-22"));
    for option in [
        "sftp",
        "esxi-dvd",
        "local-datastore-iso",
        "san-datastore-iso",
    ] {
        assert!(stage.instructions.contains(option), "{option}");
    }
    assert!(findings_of(&p.findings, "UCM-22").is_empty());
    // (the cluster's facts, what the warning says the source is)
    for (bad, says) in [
        (
            "facts = { configured_devices = 9400 }",
            "(upgrade_source = not set)",
        ),
        (
            "facts = { configured_devices = 9400, upgrade_source = \"usb\" }",
            "(upgrade_source = usb)",
        ),
    ] {
        let site = edit(
            &example("ucm-standard"),
            "facts = { configured_devices = 9400, upgrade_source = \"sftp\", device_capacity",
            &bad.replace(" }", ", device_capacity"),
        );
        let f = findings(&site);
        let w = findings_of(&f, "UCM-22");
        assert_eq!(w.len(), 1, "{f:?}");
        assert_eq!(w[0].severity, Severity::Warning);
        assert!(w[0].message.ends_with(says), "{}", w[0].message);
    }
}

#[test]
fn install_log_is_checked_after_every_install_ucm_23() {
    for name in ["ucm-standard", "ucm-refresh"] {
        let p = plan(&example(name));
        let installs: Vec<&PlannedStep> = p
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s.action.as_str(),
                    "install-inactive"
                        | "refresh-install"
                        | "imp-install-inactive"
                        | "imp-refresh-install"
                )
            })
            .collect();
        assert!(!installs.is_empty());
        for i in installs {
            let node = i.node.as_deref().unwrap();
            let verify = if i.action.starts_with("imp-") {
                "imp-verify-install-log"
            } else {
                "verify-install-log"
            };
            let v = step(&p, &format!("{}/{node}/{verify}", i.cluster));
            assert_eq!(v.start_s, i.end_s(), "{}", v.id);
            assert!(v.rules.iter().any(|r| r == "UCM-23"));
            assert!(v.instructions.contains("file list install install_*"));
            assert!(v.instructions.contains("PRODUCT_VERSION"));
            assert!(i.instructions.contains("PRODUCT_VERSION"), "{}", i.id);
            assert!(i.rules.iter().any(|r| r == "UCM-23"), "{}", i.id);
        }
    }
}

#[test]
fn imp_only_refresh_asks_users_to_sign_in_again_ucm_24() {
    let p = plan(&example("ucm-imp-only-refresh"));
    let ask = cluster_step(&p, "imp-users-sign-in");
    assert!(ask.rules.iter().any(|r| r == "UCM-24"));
    assert!(ask.instructions.contains("sign out"));
    assert_all_before(&[cluster_step(&p, "imp-replication-gate")], &[ask]);
    assert_all_before(&[ask], &[cluster_step(&p, "imp-post-upgrade")]);
    for name in ["ucm-refresh", "ucm-imp-only-standard", "ucm-standard"] {
        assert!(
            !has_action(&plan(&example(name)), "imp-users-sign-in"),
            "{name}"
        );
    }
}

#[test]
fn imp_failure_after_cucm_success_has_a_recovery_path_ucm_25() {
    let p = plan(&example("ucm-standard"));
    let first = &p.rollback[0];
    assert_eq!(first.action, "imp-failure-recovery");
    assert!(first.rules.iter().any(|r| r == "UCM-25"));
    assert!(first.instructions.contains("DRS restore"));
    assert!(first.instructions.contains("upgrade both"));
    for s in steps_of(&p, "imp-install-inactive", None) {
        assert!(s.rules.iter().any(|r| r == "UCM-25"), "{}", s.id);
    }
    for s in steps_of(&plan(&example("ucm-refresh")), "imp-refresh-install", None) {
        assert!(s.rules.iter().any(|r| r == "UCM-25"), "{}", s.id);
    }
    let pre = cluster_step(&p, "pre-upgrade-tasks");
    assert!(pre.rules.iter().any(|r| r == "UCM-25"));
    assert!(pre.instructions.contains("Disaster Recovery System"));
    for name in ["ucm-cucm-only-standard", "ucm-cucm-only-refresh"] {
        let p = plan(&example(name));
        assert!(p
            .rollback
            .iter()
            .all(|s| s.action != "imp-failure-recovery"));
    }
    // The IM&P-only task lists, with the CUCM publisher upgraded first, give the same choice.
    for name in ["ucm-imp-only-standard", "ucm-imp-only-refresh"] {
        let p = plan(&example(name));
        assert_eq!(p.rollback[0].action, "imp-failure-recovery", "{name}");
    }
    // The restore needs a recent backup.
    let f = findings(&example("ucm-inhibitors"));
    let w = findings_of(&f, "UCM-25");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].node.as_deref(), Some("cm-pub"));
    assert_eq!(w[0].severity, Severity::Warning);
}

#[test]
fn parallel_refresh_outage_lasts_until_every_subscriber_runs_the_new_version_ucm_26() {
    let site = example("ucm-cucm-only-refresh");
    let p = plan(&site);
    let go = cluster_step(&p, "start-parallel-refresh");
    assert!(go.warning.as_deref().unwrap_or("").contains("outage"));
    let pub_switch = step(&p, "ucm-campus/cm1-pub/refresh-switch");
    assert_edge(&p, &pub_switch.id, &go.id, "UCM-26");
    assert_eq!(go.start_s, pub_switch.end_s());
    let subs = steps_of(&p, "refresh-install", Some("subscriber"));
    assert_eq!(subs.len(), 5);
    for s in &subs {
        assert_edge(&p, &go.id, &s.id, "UCM-26");
    }
    assert_some_overlap(&subs);
    let last = last_end_of(&steps_of(&p, "refresh-switch", Some("subscriber")));
    let m = p
        .measures
        .iter()
        .find(|m| m.name == "refresh_outage")
        .expect("the outage is measured");
    assert_eq!(m.rule, "UCM-26");
    assert_eq!(m.start_s, go.start_s);
    assert_eq!(m.start_s + m.duration_s, last);
    let w = findings_of(&p.findings, "UCM-26");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].severity, Severity::Warning);

    // One at a time: no outage, no warning, and a longer window.
    let slow = plan_with(&site, Some("one-at-a-time"));
    assert!(!has_action(&slow, "start-parallel-refresh"));
    assert!(slow.measures.iter().all(|m| m.name != "refresh_outage"));
    assert!(findings_of(&slow.findings, "UCM-26").is_empty());
    assert_one_at_a_time(&steps_of(&slow, "refresh-install", Some("subscriber")));
    assert!(slow.makespan_s > p.makespan_s);
}

// ---------------------------------------------------------------------------------------------
// UCM-27: the seven task lists
// ---------------------------------------------------------------------------------------------

const P: Option<&str> = Some("publisher");
const S: Option<&str> = Some("subscriber");
const IP: Option<&str> = Some("imp_publisher");
const IS: Option<&str> = Some("imp_subscriber");
const C: Option<&str> = None;

#[test]
fn task_list_standard_cucm_and_imp_ucm_27() {
    let p = plan_with(&example("ucm-standard"), Some("documented"));
    assert_task_list(
        &p,
        &[
            &[(C, "pre-upgrade-tasks")],
            &[(C, "freeze-configuration")],
            &[(P, "install-inactive")],
            &[(S, "install-inactive")],
            &[(P, "switch-version")],
            &[(S, "switch-version")],
            &[(C, "cucm-replication-gate")],
            &[(C, "cucm-post-upgrade")],
            &[(IP, "imp-install-inactive")],
            &[(IS, "imp-install-inactive")],
            &[(IP, "imp-switch-version")],
            &[(IS, "imp-switch-version")],
            &[(C, "imp-replication-gate")],
            &[(C, "imp-post-upgrade")],
            &[(C, "release-configuration-freeze")],
        ],
    );
    // Step 5 of the list: the publisher switches when all subscribers are installed.
    assert_edge(
        &p,
        "ucm-hq/cucm-sub1/verify-install-log",
        "ucm-hq/cucm-pub/switch-version",
        "UCM-27",
    );
    assert_edge(
        &p,
        "ucm-hq/cucm-post-upgrade",
        "ucm-hq/imp-pub/imp-install-inactive",
        "UCM-27",
    );
    assert_edge(
        &p,
        "ucm-hq/imp-sub1/imp-verify-install-log",
        "ucm-hq/imp-pub/imp-switch-version",
        "UCM-27",
    );
}

#[test]
fn task_list_refresh_cucm_and_imp_ucm_27() {
    let p = plan(&example("ucm-refresh"));
    assert_task_list(
        &p,
        &[
            &[(C, "pre-upgrade-tasks")],
            &[(C, "freeze-configuration")],
            &[
                (P, "install-cop"),
                (S, "install-cop"),
                (P, "restart-after-cop"),
                (S, "restart-after-cop"),
            ],
            &[(P, "refresh-install")],
            &[(P, "refresh-switch")],
            &[(S, "refresh-install")],
            &[(S, "refresh-switch")],
            &[(C, "cucm-replication-gate")],
            &[(C, "cucm-post-upgrade")],
            &[
                (IP, "imp-install-cop"),
                (IS, "imp-install-cop"),
                (IP, "imp-restart-after-cop"),
                (IS, "imp-restart-after-cop"),
            ],
            &[(IP, "imp-refresh-install")],
            &[(IP, "imp-refresh-switch")],
            &[(IS, "imp-refresh-install"), (IS, "imp-refresh-switch")],
            &[(C, "imp-replication-gate")],
            &[(C, "imp-post-upgrade")],
            &[(C, "release-configuration-freeze")],
        ],
    );
    assert_edge(
        &p,
        "ucm-plant/cucm-post-upgrade",
        "ucm-plant/cup-pub/imp-install-cop",
        "UCM-27",
    );
}

#[test]
fn task_list_standard_cucm_only_ucm_27() {
    let p = plan(&example("ucm-cucm-only-standard"));
    assert_task_list(
        &p,
        &[
            &[(C, "pre-upgrade-tasks")],
            &[(C, "freeze-configuration")],
            &[(P, "install-inactive")],
            &[(S, "install-inactive")],
            &[(P, "switch-version")],
            &[(S, "switch-version")],
            &[(C, "cucm-replication-gate")],
            &[(C, "cucm-post-upgrade")],
            &[(IP, "reboot-imp-after-mr"), (IS, "reboot-imp-after-mr")],
            &[(C, "release-configuration-freeze")],
        ],
    );
    assert!(!has_action(&p, "imp-install-inactive"));
    assert!(!has_action(&p, "imp-post-upgrade"));
}

#[test]
fn task_list_refresh_cucm_only_ucm_27() {
    let p = plan(&example("ucm-cucm-only-refresh"));
    assert_task_list(
        &p,
        &[
            &[(C, "pre-upgrade-tasks")],
            &[(C, "freeze-configuration")],
            &[
                (P, "install-cop"),
                (S, "install-cop"),
                (P, "restart-after-cop"),
                (S, "restart-after-cop"),
            ],
            &[(P, "refresh-install")],
            &[(P, "refresh-switch")],
            &[(S, "refresh-install")],
            &[(S, "refresh-switch")],
            &[(C, "cucm-replication-gate")],
            &[(C, "cucm-post-upgrade")],
            &[(C, "release-configuration-freeze")],
        ],
    );
}

#[test]
fn task_list_standard_imp_only_ucm_27() {
    let p = plan(&example("ucm-imp-only-standard"));
    assert_task_list(
        &p,
        &[
            &[(C, "pre-upgrade-tasks")],
            &[(C, "freeze-configuration")],
            &[(P, "install-inactive")],
            &[(IP, "imp-install-inactive")],
            &[(IS, "imp-install-inactive")],
            &[(P, "switch-version")],
            &[(IP, "imp-switch-version")],
            &[(IS, "imp-switch-version")],
            &[(C, "imp-replication-gate")],
            &[(C, "imp-post-upgrade")],
            &[(C, "release-configuration-freeze")],
        ],
    );
    // Step 6: every node is installed before the switches begin.
    for s in steps_of(&p, "imp-verify-install-log", None) {
        assert_edge(&p, &s.id, "ucm-hq/cucm-pub/switch-version", "UCM-27");
    }
    assert!(!has_action(&p, "cucm-replication-gate"));
    assert!(!has_action(&p, "cucm-post-upgrade"));
}

#[test]
fn task_list_refresh_imp_only_ucm_27() {
    let p = plan(&example("ucm-imp-only-refresh"));
    assert_task_list(
        &p,
        &[
            &[(C, "pre-upgrade-tasks")],
            &[(C, "freeze-configuration")],
            &[
                (IP, "imp-install-cop"),
                (IS, "imp-install-cop"),
                (IP, "imp-restart-after-cop"),
                (IS, "imp-restart-after-cop"),
            ],
            &[(P, "install-inactive")],
            &[(P, "switch-version")],
            &[(IP, "imp-refresh-install")],
            &[(IP, "imp-refresh-switch")],
            &[(IS, "imp-refresh-install"), (IS, "imp-refresh-switch")],
            &[(C, "imp-replication-gate")],
            &[(C, "imp-users-sign-in")],
            &[(C, "imp-post-upgrade")],
            &[(C, "release-configuration-freeze")],
        ],
    );
    assert_edge(
        &p,
        "ucm-plant/cup-sub2/imp-restart-after-cop",
        "ucm-plant/cm-pub/install-inactive",
        "UCM-27",
    );
}

#[test]
fn task_list_parallel_upgrade_ucm_27() {
    let p = plan(&example("ucm-parallel"));
    assert_task_list(
        &p,
        &[
            &[(C, "pre-upgrade-tasks")],
            &[(C, "freeze-configuration")],
            &[(P, "install-inactive")],
            &[(P, "verify-install-log")],
            &[(S, "install-inactive")],
            &[(P, "switch-version")],
            &[(S, "switch-version")],
        ],
    );
    // Six subscribers work in parallel: the window is far shorter than one node at a time.
    assert!(p.sequential_s >= 2 * p.makespan_s);
    let subs = steps_of(&p, "install-inactive", Some("subscriber"));
    assert_eq!(subs.len(), 6);
    assert!(subs.iter().all(|s| s.start_s == first_start_of(&subs)));
}

// ---------------------------------------------------------------------------------------------
// Rollback
// ---------------------------------------------------------------------------------------------

#[test]
fn rollback_switches_back_in_the_switch_order_ucm_09_ucm_14() {
    let p = plan(&example("ucm-standard"));
    let rb = |id: &str| {
        p.rollback
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no rollback step {id}"))
    };
    let pub_revert = rb("ucm-hq/cucm-pub/revert-version");
    let imp_pub = rb("ucm-hq/imp-pub/imp-revert-version");
    let subs: Vec<&PlannedStep> = p
        .rollback
        .iter()
        .filter(|s| s.action == "revert-version" && s.role.as_deref() == Some("subscriber"))
        .collect();
    let imp_subs: Vec<&PlannedStep> = p
        .rollback
        .iter()
        .filter(|s| s.action == "imp-revert-version" && s.role.as_deref() == Some("imp_subscriber"))
        .collect();
    assert_all_before(&[pub_revert], &subs);
    assert_all_before(&subs, &[imp_pub]);
    assert_all_before(&[imp_pub], &imp_subs);
    assert_one_at_a_time(&imp_subs);
    let gate = rb("ucm-hq/revert-replication-gate");
    assert_all_before(&imp_subs, &[gate]);
    assert!(p
        .rollback_edges
        .iter()
        .any(|e| e.from == pub_revert.id && e.rule == "UCM-09"));
    assert!(p
        .rollback_edges
        .iter()
        .any(|e| e.to == imp_pub.id && e.rule == "UCM-14"));
    let release = p.rollback.last().unwrap();
    assert_eq!(release.action, "release-configuration-freeze");
    assert!(release.rules.iter().any(|r| r == "UCM-20"));
    assert_eq!(release.end_s(), p.rollback_makespan_s);
    // CUCM subscribers go back together, or one at a time with that strategy.
    assert_some_overlap(&subs);
    let slow = plan_with(&example("ucm-standard"), Some("one-at-a-time"));
    let slow_subs: Vec<&PlannedStep> = slow
        .rollback
        .iter()
        .filter(|s| s.action == "revert-version" && s.role.as_deref() == Some("subscriber"))
        .collect();
    assert_one_at_a_time(&slow_subs);
    assert!(slow
        .rollback_edges
        .iter()
        .any(|e| e.from == slow_subs[0].id && e.to == slow_subs[1].id && e.rule == "UCM-15"));
}

#[test]
fn the_cluster_version_is_the_cucm_version_not_the_imp_one_ucm_01() {
    let p = plan(&example("ucm-standard"));
    let c = &p.clusters[0];
    assert_eq!(c.from, "12.5.1.17900-64");
    assert_eq!(c.path, ["12.5.1.17900-64", "14.0.1.13900-155"]);
}

// ---------------------------------------------------------------------------------------------
// Sites of this module's own, written from the document's sentences (not from `examples/`)
// ---------------------------------------------------------------------------------------------

/// "Riverside": a CUCM publisher with two subscribers and an IM&P publisher with one subscriber,
/// going from 12.5 to 14 (the same embedded OS: a standard upgrade).
const RIVERSIDE: &str = r#"[site]
name = "riverside"
window = { start = "2027-03-06T21:00:00+01:00", hours = 10 }

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8", imp_subscriber = "14.0.1.13900-8" }
facts = { configured_devices = 1800, upgrade_source = "sftp" }

[[cluster.node]]
name = "cm-a"
role = "publisher"
version = "12.5.1.14900-63"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2027-03-06T08:00:00+01:00" }

[[cluster.node]]
name = "cm-b"
role = "subscriber"
version = "12.5.1.14900-63"
facts = { devices = 900, replication_state = 2 }

[[cluster.node]]
name = "cm-c"
role = "subscriber"
version = "12.5.1.14900-63"
facts = { devices = 900, replication_state = 2 }

[[cluster.node]]
name = "pres-a"
role = "imp_publisher"
version = "12.5.1.14900-4"
facts = { users = 600, replication_state = 2 }

[[cluster.node]]
name = "pres-b"
role = "imp_subscriber"
version = "12.5.1.14900-4"
facts = { users = 600, replication_state = 2 }
"#;

/// Riverside going from 11.0 to 12.5 instead: the embedded OS changes, a refresh upgrade.
fn riverside_refresh() -> String {
    RIVERSIDE
        .replace("14.0.1.13900-155", "12.5.1.14900-63")
        .replace("14.0.1.13900-8", "12.5.1.14900-4")
        .replace(
            "version = \"12.5.1.14900-63\"",
            "version = \"11.0.1.21900-11\"",
        )
        .replace(
            "version = \"12.5.1.14900-4\"",
            "version = \"11.0.1.10000-6\"",
        )
}

/// The findings of `rule` as (key, severity), sorted.
fn keyed(f: &[ferry_model::Finding], rule: &str) -> Vec<(String, Severity)> {
    let mut v: Vec<(String, Severity)> = findings_of(f, rule)
        .iter()
        .map(|x| (x.key.clone(), x.severity))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// UCM-06: free_common_space costs the version inactive before the upgrade, not the revert
// ---------------------------------------------------------------------------------------------

/// The document: "This COP file removes the inactive side in the common partition ... You will
/// not be able to switch back to the inactive version after installing this file." The version
/// lost is the one inactive when the COP goes on; after the switch the old active version is
/// the inactive one, and the revert to it (UCM-02) stays possible. The step's warning and the
/// check say exactly that, for the node they are about.
#[test]
fn free_common_space_warning_names_the_version_it_costs_ucm_06() {
    let site = edit(
        RIVERSIDE,
        "facts = { devices = 900, replication_state = 2 }",
        "facts = { devices = 900, replication_state = 2, planned_cops = [\"ciscocm.free_common_space_v1.6.cop.sgn\"] }",
    );
    let p = plan(&site);
    let cop = step(&p, "cm/cm-b/install-free-common-space-cop");
    let warning = cop.warning.as_deref().expect("the step carries a warning");
    let judged = judged(&p.findings);
    let finding = findings_of(&judged, "UCM-06");
    assert_eq!(finding.len(), 1, "{:?}", p.findings);
    assert_eq!(finding[0].severity, Severity::Warning);
    for text in [warning, finding[0].message.as_str()] {
        // What is lost: the version inactive on cm-b before the upgrade...
        assert!(
            text.contains("inactive on cm-b before the upgrade"),
            "{text}"
        );
        // ...not the one it runs, which the rollback still switches back to.
        assert!(text.contains("12.5.1.14900-63"), "{text}");
        assert!(
            !text.contains("revert to the inactive version is impossible"),
            "{text}"
        );
        assert!(!text.contains("{"), "unfilled placeholder: {text}");
    }
    assert!(
        !finding[0].remedy.contains("the only way back"),
        "{}",
        finding[0].remedy
    );
}

// ---------------------------------------------------------------------------------------------
// UCM-06: disk space for the upgrade, and which COP file gives it
// ---------------------------------------------------------------------------------------------

/// The document: vmware-disk-size-reallocation "expands the vDisk size ... if you need to
/// increase the vDisk space to meet the space requirements of a refresh upgrade. This option
/// requires a reboot"; free_common_space "removes the inactive side in the common partition to
/// increase available disk space ... as required to perform an upgrade ... as an alternative to
/// the COP file listed above, or in conjunction with it." The document gives no sizes: the site
/// states the node's vDisk and free common-partition space and what its target release needs.
#[test]
fn disk_space_recommends_the_cop_file_that_gives_it_ucm_06() {
    /// (site, cm-b's extra facts, expected UCM-06 findings: (key, severity, text in the remedy)).
    type Case<'a> = (String, &'a str, &'a [(&'a str, Severity, &'a str)]);
    fn check(site: &str, facts: &str, expected: &[(&str, Severity, &str)]) {
        let site = edit(
            &site.replace(
                "upgrade_source = \"sftp\" }",
                "upgrade_source = \"sftp\", vdisk_required_gb = 110, common_free_required_gb = 25 }",
            ),
            "facts = { devices = 900, replication_state = 2 }",
            &format!("facts = {{ devices = 900, replication_state = 2{facts} }}"),
        );
        let f = findings(&site);
        let got = keyed(&f, "UCM-06");
        let want: Vec<(String, Severity)> = expected
            .iter()
            .map(|(k, s, _)| (k.to_string(), *s))
            .collect();
        assert_eq!(got, want, "facts{facts}: {f:#?}");
        for (key, _, remedy) in expected {
            let x = f.iter().find(|x| x.key == *key).expect("found");
            assert!(
                x.remedy.contains(remedy) || x.message.contains(remedy),
                "{key}: {remedy:?} not in {x:#?}"
            );
            assert!(
                !x.message.contains('{') && !x.remedy.contains('{'),
                "{x:#?}"
            );
        }
    }
    use Severity::{Inhibitor, Warning};
    let refresh = riverside_refresh();
    let cases: Vec<Case> = vec![
        // Refresh, vDisk too small: expand it (a reboot; the inactive version stays).
        (
            refresh.clone(),
            ", vdisk_gb = 80, common_free_gb = 40",
            &[("refresh-vdisk-too-small/cm/cm-b", Inhibitor, "vmware-disk-size-reallocation")],
        ),
        // ... planned: nothing to add.
        (
            refresh.clone(),
            ", vdisk_gb = 80, common_free_gb = 40, planned_cops = [\"ciscocm.vmware-disk-size-reallocation-1.0.cop.sgn\"]",
            &[],
        ),
        // vDisk large enough, common partition too full: free the inactive side (no reboot),
        // at the cost of the version inactive before the upgrade.
        (
            refresh.clone(),
            ", vdisk_gb = 110, common_free_gb = 12",
            &[("common-partition-too-full/cm/cm-b", Inhibitor, "free_common_space")],
        ),
        (
            RIVERSIDE.to_string(),
            ", vdisk_gb = 110, common_free_gb = 12",
            &[("common-partition-too-full/cm/cm-b", Inhibitor, "inactive on cm-b before the upgrade")],
        ),
        // ... planned: the space is there, and the warning says what it costs.
        (
            RIVERSIDE.to_string(),
            ", vdisk_gb = 110, common_free_gb = 12, planned_cops = [\"ciscocm.free_common_space_v1.6.cop.sgn\"]",
            &[("free-common-space-cop/cm/cm-b", Warning, "")],
        ),
        // A refresh may use the vDisk reallocation instead ("an alternative").
        (
            refresh.clone(),
            ", vdisk_gb = 80, common_free_gb = 12, planned_cops = [\"ciscocm.vmware-disk-size-reallocation-1.0.cop.sgn\"]",
            &[],
        ),
        // Both short, nothing planned: both files are named.
        (
            refresh.clone(),
            ", vdisk_gb = 80, common_free_gb = 12",
            &[
                ("common-partition-too-full/cm/cm-b", Inhibitor, "free_common_space"),
                ("refresh-vdisk-too-small/cm/cm-b", Inhibitor, "vmware-disk-size-reallocation"),
            ],
        ),
        // The vDisk size is a refresh's requirement only.
        (RIVERSIDE.to_string(), ", vdisk_gb = 80, common_free_gb = 40", &[]),
        // Enough of both, or nothing stated: nothing to say.
        (refresh.clone(), ", vdisk_gb = 110, common_free_gb = 25", &[]),
        (refresh.clone(), "", &[]),
    ];
    for (site, facts, expected) in &cases {
        check(site, facts, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// UCM-18: which tool runs an IM&P-only MR/ES
// ---------------------------------------------------------------------------------------------

/// The document, for IM&P-only MR/ES upgrades: "For upgrades using the Unified CM OS Admin
/// interface, you must upgrade the Unified Communications Manager publisher node and then upgrade
/// the IM and Presence Service nodes"; "If you are using the Prime Collaboration Deployment
/// migration task, you must select the Unified Communications Manager publisher node in addition
/// to the IM and Presence Service nodes"; "If you are using the Prime Collaboration Deployment
/// upgrade task, you do not need to select the Unified Communications Manager publisher node as
/// long as the first 3 digits of new version of IM and Presence Service match the first 3 digits
/// of the currently installed version of Unified Communications Manager."
#[test]
fn the_upgrade_tool_decides_whether_the_cucm_publisher_goes_first_ucm_18() {
    // Riverside on 14.0.1.13900-155 (CUCM) and 14.0.1.13900-8 (IM&P), taking an IM&P MR only:
    // the first three numbers match the CUCM publisher's.
    let base = RIVERSIDE
        .replace(
            "version = \"12.5.1.14900-63\"",
            "version = \"14.0.1.13900-155\"",
        )
        .replace(
            "version = \"12.5.1.14900-4\"",
            "version = \"14.0.1.13900-8\"",
        )
        .replace(
            "imp_publisher = \"14.0.1.13900-8\", imp_subscriber = \"14.0.1.13900-8\"",
            "imp_publisher = \"14.0.1.14900-11\", imp_subscriber = \"14.0.1.14900-11\"",
        );
    fn check(site: &str, tool: &str, expected: &[(&str, Severity)]) {
        let site = edit(
            site,
            "upgrade_source = \"sftp\" }",
            &format!("upgrade_source = \"sftp\"{tool} }}"),
        );
        let f = findings(&site);
        let want: Vec<(String, Severity)> =
            expected.iter().map(|(k, s)| (k.to_string(), *s)).collect();
        assert_eq!(keyed(&f, "UCM-18"), want, "{tool}: {f:#?}");
    }
    use Severity::{Inhibitor, Warning};
    let needs_pub = "imp-only-mr-tool-needs-cucm-publisher/cm";
    check(&base, ", upgrade_tool = \"pcd-upgrade\"", &[]);
    check(
        &base,
        ", upgrade_tool = \"os-admin\"",
        &[(needs_pub, Inhibitor)],
    );
    check(
        &base,
        ", upgrade_tool = \"pcd-migration\"",
        &[(needs_pub, Inhibitor)],
    );
    // Not stated: ferry assumes the PCD upgrade task, and says so.
    check(&base, "", &[("imp-only-mr-tool-unstated/cm", Warning)]);
    // With the CUCM publisher upgraded first, every tool is satisfied, and the plan puts it
    // before the IM&P nodes.
    let with_pub = edit(
        &base.replace(
            "target = \"14.0.1.13900-155\"",
            "target = \"14.0.1.14900-20\"",
        ),
        "targets = { imp_publisher",
        "targets = { subscriber = \"14.0.1.13900-155\", imp_publisher",
    );
    for tool in ["os-admin", "pcd-migration", "pcd-upgrade"] {
        check(&with_pub, &format!(", upgrade_tool = \"{tool}\""), &[]);
    }
    let p = plan(&edit(
        &with_pub,
        "upgrade_source = \"sftp\" }",
        "upgrade_source = \"sftp\", upgrade_tool = \"os-admin\" }",
    ));
    assert_edge(
        &p,
        "cm/cm-a/verify-install-log",
        "cm/pres-a/imp-install-inactive",
        "UCM-18",
    );
    // A tool ferry does not know is bad input, located at its key.
    let set = profiles();
    let bad = edit(
        &base,
        "upgrade_source = \"sftp\" }",
        "upgrade_source = \"sftp\", upgrade_tool = \"pcd_upgrade\" }",
    );
    let err = ferry_profiles::load_site("site.toml", &bad, &set).expect_err("rejected");
    let e = &err.errors[0];
    assert_eq!(e.line, 10, "{e}");
    assert!(e.key.ends_with("facts.upgrade_tool"), "{e}");
    assert!(
        e.message.contains("os-admin, pcd-migration, pcd-upgrade"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// UCM-25: the recovery choice, only when the CUCM upgrade succeeded and IM&P failed
// ---------------------------------------------------------------------------------------------

/// The document: "If the upgrade of Unified Communications Manager nodes is successful but the
/// upgrade of IM and Presence nodes fails, you must either: perform another upgrade of both ...
/// or perform a DRS restore". The rollback planned after a run has the choice in that case only;
/// the plan made before any run lists it as what a rollback may need.
#[test]
fn the_rollback_offers_the_imp_recovery_choice_only_after_cucm_succeeded_ucm_25() {
    use ferry_model::{ProgressState, RunProgress, StepProgress};
    let upgrade = plan(RIVERSIDE);
    /// The run: each upgrade step's state, given by the step's ID.
    fn check(upgrade: &Plan, state: Option<&dyn Fn(&str) -> ProgressState>, offered: bool) {
        let progress = state.map(|state| RunProgress {
            steps: upgrade
                .steps
                .iter()
                .map(|s| StepProgress {
                    id: s.id.clone(),
                    cluster: s.cluster.clone(),
                    role: s.role.clone(),
                    state: state(&s.id),
                })
                .collect(),
        });
        let set = profiles();
        let site = ferry_profiles::load_site("riverside.toml", RIVERSIDE, &set).expect("site");
        let p = ferry_plan::plan(
            &site,
            |n| set.get(n).map(|p| &p.profile),
            "test".into(),
            &ferry_plan::PlanOptions {
                progress,
                ..Default::default()
            },
        )
        .expect("plan");
        assert_eq!(
            p.rollback
                .iter()
                .any(|s| s.action == "imp-failure-recovery"),
            offered,
            "{:?}",
            p.rollback.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
        // The revert steps are there either way.
        assert!(p.rollback.iter().any(|s| s.action == "revert-version"));
    }
    use ProgressState::{Done, Failed, Open};
    // Before any run: listed.
    check(&upgrade, None, true);
    // CUCM done, an IM&P install failed: the documented case.
    check(
        &upgrade,
        Some(&|id| match id {
            "cm/pres-a/imp-install-inactive" => Failed,
            id if id.starts_with("cm/pres-") => Open,
            _ => Done,
        }),
        true,
    );
    // A CUCM subscriber's install failed: CUCM did not succeed.
    check(
        &upgrade,
        Some(&|id| match id {
            "cm/cm-c/install-inactive" => Failed,
            "cm/pre-upgrade-tasks" | "cm/stage-upgrade-source" | "cm/freeze-configuration" => Done,
            id if id.starts_with("cm/cm-a/") => Done,
            _ => Open,
        }),
        false,
    );
    // CUCM done, then an IM&P step failed while a CUCM step never ran: not the case either.
    check(
        &upgrade,
        Some(&|id| match id {
            "cm/cm-c/switch-version" => Open,
            "cm/pres-b/imp-switch-version" => Failed,
            _ => Done,
        }),
        false,
    );
    // Every node step done, a cluster-wide step failed: no IM&P node failed.
    check(
        &upgrade,
        Some(&|id| {
            if id == "cm/imp-replication-gate" {
                Failed
            } else {
                Done
            }
        }),
        false,
    );
}

// ---------------------------------------------------------------------------------------------
// Strategies: fastest, documented, balanced (batches by CM group), one-at-a-time
// ---------------------------------------------------------------------------------------------

/// A CUCM and IM&P standard upgrade whose phones are in CallManager groups: North's phones try
/// cm-n1, then cm-n2, then cm-s1; the south subscribers back each other up in a ring, so no
/// two of them may switch together.
const HARBOUR: &str = r#"[site]
name = "harbour"
window = { start = "2027-03-06T21:00:00+01:00", hours = 14 }

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8", imp_subscriber = "14.0.1.13900-8" }

[cluster.facts]
configured_devices = 6000
upgrade_source = "sftp"
cm_groups = [
    { name = "North", servers = ["cm-n1", "cm-n2", "cm-s1"], devices = 1500 },
    { name = "North-2", servers = ["cm-n2", "cm-n1"], devices = 1200 },
    { name = "South", servers = ["cm-s1", "cm-s2"], devices = 1400 },
    { name = "South-2", servers = ["cm-s2", "cm-s3"], devices = 900 },
    { name = "South-3", servers = ["cm-s3", "cm-s1"], devices = 1000 },
]

[[cluster.node]]
name = "cm-pub"
role = "publisher"
version = "12.5.1.16900-48"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2027-03-06T08:00:00+01:00" }

[[cluster.node]]
name = "cm-n1"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 1500, replication_state = 2 }

[[cluster.node]]
name = "cm-n2"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 1200, replication_state = 2 }

[[cluster.node]]
name = "cm-s1"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 1400, replication_state = 2 }

[[cluster.node]]
name = "cm-s2"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 900, replication_state = 2 }

[[cluster.node]]
name = "cm-s3"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 1000, replication_state = 2 }

[[cluster.node]]
name = "pres-a"
role = "imp_publisher"
version = "12.5.1.16900-5"
facts = { users = 900, replication_state = 2 }

[[cluster.node]]
name = "pres-b"
role = "imp_subscriber"
version = "12.5.1.16900-5"
facts = { users = 800, replication_state = 2 }
"#;

/// HARBOUR's CM groups, as `assert_every_group_served` reads them.
const HARBOUR_GROUPS: [(&[&str], f64); 5] = [
    (&["cm-n1", "cm-n2", "cm-s1"], 1500.0),
    (&["cm-n2", "cm-n1"], 1200.0),
    (&["cm-s1", "cm-s2"], 1400.0),
    (&["cm-s2", "cm-s3"], 900.0),
    (&["cm-s3", "cm-s1"], 1000.0),
];

/// The distinct moments the subscribers' switches start: one per batch.
fn switch_waves(p: &Plan) -> Vec<u64> {
    let mut starts: Vec<u64> = steps_of(p, "switch-version", Some("subscriber"))
        .iter()
        .map(|s| s.start_s)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
}

#[test]
fn balanced_switches_subscribers_in_the_fewest_batches_that_keep_every_cm_group_served_ucm_15() {
    // UCM-15: "CUCM subscribers may switch all at once or one at a time (site choice)"; UCM-11:
    // a subscriber serves again only once its replication is good. Balanced switches them in
    // batches in between, each batch once the one before serves again.
    let p = plan_with(HARBOUR, Some("balanced"));
    assert_eq!(p.clusters[0].strategy, "balanced");
    let out = ["switch-version", "subscriber-serving"];
    assert_every_group_served(&p, &out, &HARBOUR_GROUPS, None);
    // cm-s1, cm-s2, cm-s3 back each other up in a ring: three batches, and no fewer.
    assert_eq!(switch_waves(&p).len(), 3, "{:?}", out_spans(&p, &out));
    // Each batch waits for the gates of the one before (rule UCM-15).
    let s2 = step(&p, "cm/cm-s2/switch-version");
    let s1_back = step(&p, "cm/cm-s1/subscriber-serving");
    assert!(s1_back.kind == StepKind::Gate && s2.start_s >= s1_back.end_s());
    assert!(p.edges.iter().any(|e| e.rule == "UCM-15"
        && e.to == s2.id
        && e.note.contains("batch")
        && e.note
            .contains("every group of phones keeps a serving server")));
    // All at once leaves every group without a subscriber.
    let fast = plan_with(HARBOUR, Some("fastest"));
    assert_eq!(switch_waves(&fast).len(), 1);
    let all = std::panic::catch_unwind(|| {
        assert_every_group_served(&fast, &["switch-version"], &HARBOUR_GROUPS, None)
    });
    assert!(all.is_err(), "all at once cannot keep the groups served");
    // Between the two: longer than all at once, shorter than one at a time.
    let slow = plan_with(HARBOUR, Some("one-at-a-time"));
    assert!(fast.makespan_s < p.makespan_s && p.makespan_s < slow.makespan_s);
}

#[test]
fn balanced_keeps_every_subscriber_within_its_device_capacity_ucm_15() {
    // Three subscribers with no CM group stated: a subscriber's phones fall back to the least
    // loaded other one. Two out together would put 8,000 phones on the third.
    let base = r#"[site]
name = "quay"

[[cluster]]
name = "q"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
facts = { configured_devices = 12000, upgrade_source = "sftp"CAPACITY }

[[cluster.node]]
name = "q-pub"
role = "publisher"
version = "12.5.1.16900-48"
facts = { devices = 0 }

[[cluster.node]]
name = "q-a"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 4000 }

[[cluster.node]]
name = "q-b"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 4000 }

[[cluster.node]]
name = "q-c"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 4000 }
"#;
    let groups: [(&[&str], f64); 3] = [
        (&["q-a", "q-b", "q-c"], 4000.0),
        (&["q-b", "q-a", "q-c"], 4000.0),
        (&["q-c", "q-a", "q-b"], 4000.0),
    ];
    let out = ["switch-version", "subscriber-serving"];
    // No capacity stated: two batches, and the plan says what it assumed.
    let p = plan_with(&base.replace("CAPACITY", ""), Some("balanced"));
    assert_eq!(switch_waves(&p).len(), 2);
    assert!(
        p.findings
            .iter()
            .any(|f| f.rule == "UCM-15" && f.message.contains("no capacity is stated")),
        "{:#?}",
        p.findings
    );
    // 9,000 phones at most on a subscriber: one at a time, each within it.
    let p = plan_with(
        &base.replace("CAPACITY", ", device_capacity = 9000"),
        Some("balanced"),
    );
    assert_eq!(switch_waves(&p).len(), 3);
    assert_every_group_served(&p, &out, &groups, Some(9000.0));
    // 12,000: two again.
    let p = plan_with(
        &base.replace("CAPACITY", ", device_capacity = 12000"),
        Some("balanced"),
    );
    assert_eq!(switch_waves(&p).len(), 2);
    assert_every_group_served(&p, &out, &groups, Some(12000.0));
}

#[test]
fn balanced_refresh_has_no_outage_ucm_26() {
    // UCM-26: "If you are performing a refresh upgrade, there will be a temporary server outage
    // until all subscriber nodes get upgraded" — in parallel. Balanced refreshes them in
    // batches instead: no go/no-go for an outage, and every CM group keeps a subscriber.
    let site = HARBOUR
        .replace("12.5.1.16900-48", "11.0.1.21900-5")
        .replace("12.5.1.16900-5", "11.0.1.21900-2")
        .replace("14.0.1.13900-155", "12.5.1.16900-48")
        .replace("14.0.1.13900-8", "12.5.1.16900-5");
    let fast = plan_with(&site, Some("fastest"));
    assert_eq!(fast.clusters[0].upgrade_type, "refresh");
    assert!(has_action(&fast, "start-parallel-refresh"));
    let p = plan_with(&site, Some("balanced"));
    assert!(!has_action(&p, "start-parallel-refresh"));
    assert!(
        findings_of(&p.findings, "UCM-26")
            .iter()
            .all(|f| f.severity == Severity::Info),
        "{:#?}",
        p.findings
    );
    assert!(findings_of(&fast.findings, "UCM-26")
        .iter()
        .any(|f| f.severity == Severity::Warning));
    assert_every_group_served(
        &p,
        &["refresh-install", "refresh-switch", "subscriber-serving"],
        &HARBOUR_GROUPS,
        None,
    );
}

#[test]
fn one_at_a_time_waits_for_each_subscriber_to_serve_again_ucm_11_ucm_15() {
    // One at a time keeps a subscriber for every CM group only if the next one switches once
    // the one before serves again (UCM-11: not before its replication is good).
    let p = plan_with(HARBOUR, Some("one-at-a-time"));
    let out = ["switch-version", "subscriber-serving"];
    assert_every_group_served(&p, &out, &HARBOUR_GROUPS, None);
    let mut spans = out_spans(&p, &out);
    spans.retain(|(n, _, _)| n != "cm-pub");
    assert_eq!(spans.len(), 5);
    for w in spans.windows(2) {
        assert!(w[0].2 <= w[1].1, "{spans:?}");
    }
    // Every switch has its gate.
    for s in steps_of(&p, "switch-version", Some("subscriber")) {
        let gate = step(&p, &s.id.replace("switch-version", "subscriber-serving"));
        assert_eq!(gate.start_s, s.end_s());
    }
}

#[test]
fn fastest_is_the_shortest_plan_and_takes_the_parallel_imp_install_ucm_13() {
    // UCM-13: the IM&P publisher install "may wait until all CUCM nodes hold the inactive
    // version, or run in parallel with the CUCM subscribers' installs". The shortest plan the
    // rules allow takes the parallel install; `documented` keeps the task list's order.
    let fast = plan_with(HARBOUR, Some("fastest"));
    let documented = plan_with(HARBOUR, Some("documented"));
    assert_eq!(documented.clusters[0].strategy, "documented");
    let imp = step(&fast, "cm/pres-a/imp-install-inactive");
    assert_eq!(
        imp.start_s,
        step(&fast, "cm/cm-n1/install-inactive").start_s
    );
    assert_edge(&fast, "cm/cm-pub/verify-install-log", &imp.id, "UCM-13");
    let imp = step(&documented, "cm/pres-a/imp-install-inactive");
    assert_all_before(&[cluster_step(&documented, "cucm-post-upgrade")], &[imp]);
    assert!(fast.makespan_s < documented.makespan_s);
    for s in ["documented", "balanced", "one-at-a-time"] {
        let other = plan_with(HARBOUR, Some(s));
        assert!(fast.makespan_s <= other.makespan_s, "{s}");
        assert_eq!(fast.makespan_s, fast.lower_bound_s);
    }
}

#[test]
fn a_site_that_still_says_parallel_is_planned_as_fastest_and_told_what_to_write_ucm_13() {
    let fast = plan_with(HARBOUR, None);
    // In the site file.
    let site = edit(
        HARBOUR,
        "profile = \"cisco-ucm\"",
        "profile = \"cisco-ucm\"\nstrategy = \"parallel\"",
    );
    let p = plan(&site);
    assert_eq!(p.clusters[0].strategy, "fastest");
    assert_eq!(p.strategy, "fastest");
    let f = findings_of(&p.findings, "FERRY-STRATEGY");
    assert_eq!(f.len(), 1, "{:#?}", p.findings);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(
        f[0].message
            .contains("`strategy = \"parallel\"` in the site file")
            && f[0]
                .message
                .contains("renamed strategy `parallel` to `fastest`")
            && f[0].message.contains("UCM-13"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].remedy.contains("Remove the cluster's `strategy`"),
        "{}",
        f[0].remedy
    );
    assert_eq!(p.steps, fast.steps);
    // On the command line.
    let p = plan_with(HARBOUR, Some("parallel"));
    assert_eq!(p.strategy, "fastest");
    assert_eq!(p.clusters[0].strategy, "fastest");
    let f = findings_of(&p.findings, "FERRY-STRATEGY");
    assert!(
        f[0].message.starts_with("`--strategy parallel`"),
        "{}",
        f[0].message
    );
    assert!(f[0].remedy.contains("--strategy"), "{}", f[0].remedy);
    assert_eq!(p.steps, fast.steps);
}

#[test]
fn balanced_and_documented_are_offered_by_cisco_ucm_ucm_15() {
    let set = profiles();
    let meta = &set.get("cisco-ucm").unwrap().profile.profile;
    for s in ["documented", "balanced"] {
        assert!(meta.strategies.iter().any(|x| x == s), "{s}");
    }
    assert!(!meta.strategies.iter().any(|x| x == "parallel"));
}

// ---------------------------------------------------------------------------------------------
// Staging: installs ahead of the window, switches in it (UCM-02, UCM-04, UCM-21)
// ---------------------------------------------------------------------------------------------

/// Seed 004, standard upgrades: "The system continues to function normally while you are
/// installing the software ... you can manually switch to the new software at a later time."
/// A small CUCM + IM&P cluster, 12.5 to 14 (same OS: standard), that books the day for the
/// installs and the night for the switches.
const STAGED_STANDARD: &str = r#"
[site]
name = "harbour-collab"
window = { start = "2027-03-06T21:00:00+01:00", hours = 6 }
stage = { start = "2027-03-06T08:00:00+01:00", hours = 9 }

[[cluster]]
name = "uc"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8", imp_subscriber = "14.0.1.13900-8" }
facts = { configured_devices = 3000, upgrade_source = "sftp" }

[[cluster.node]]
name = "uc-pub"
role = "publisher"
version = "12.5.1.17900-64"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2027-03-05T22:00:00+01:00" }

[[cluster.node]]
name = "uc-sub1"
role = "subscriber"
version = "12.5.1.17900-64"
facts = { devices = 1200, replication_state = 2 }

[[cluster.node]]
name = "uc-sub2"
role = "subscriber"
version = "12.5.1.17900-64"
facts = { devices = 900, replication_state = 2 }

[[cluster.node]]
name = "im-pub"
role = "imp_publisher"
version = "12.5.1.17900-7"
facts = { users = 800, replication_state = 2 }

[[cluster.node]]
name = "im-sub"
role = "imp_subscriber"
version = "12.5.1.17900-7"
facts = { users = 700, replication_state = 2 }
"#;

#[test]
fn standard_installs_run_ahead_of_the_window_and_the_switches_stay_in_it_ucm_02() {
    let p = plan(STAGED_STANDARD);
    assert_eq!(
        in_phase(&p, "staging"),
        vec![
            "-/freeze-configuration",
            "im-pub/imp-install-inactive",
            "im-pub/imp-verify-install-log",
            "im-sub/imp-install-inactive",
            "im-sub/imp-verify-install-log",
            "uc-pub/install-inactive",
            "uc-pub/verify-install-log",
            "uc-sub1/install-inactive",
            "uc-sub1/verify-install-log",
            "uc-sub2/install-inactive",
            "uc-sub2/verify-install-log",
        ],
        "the node keeps serving while these run (UCM-02); the freeze starts with the first install (UCM-04)"
    );
    assert_eq!(
        in_phase(&p, "window"),
        vec![
            "-/cucm-post-upgrade",
            "-/cucm-replication-gate",
            "-/imp-post-upgrade",
            "-/imp-replication-gate",
            "-/release-configuration-freeze",
            "im-pub/imp-switch-version",
            "im-sub/imp-switch-version",
            "uc-pub/switch-version",
            "uc-sub1/switch-version",
            "uc-sub2/switch-version",
        ],
        "switches, replication waits and post-upgrade tasks stay in the window"
    );
    for s in p.steps.iter().filter(|s| phase_name(s) == "staging") {
        assert!(
            s.rules.iter().any(|r| r == "UCM-02" || r == "UCM-04"),
            "{} names the rule that lets it run ahead: {:?}",
            s.id,
            s.rules
        );
    }
    assert_edges_go_forward(&p);
    // The window is the chain of switches, replication waits and post-upgrade tasks, and the
    // plan's lower bound is still one.
    let d = |id: &str| step(&p, id).duration_s;
    let sub_switch = d("uc/uc-sub1/switch-version").max(d("uc/uc-sub2/switch-version"));
    let chain = d("uc/uc-pub/switch-version")
        + sub_switch
        + d("uc/cucm-replication-gate")
        + d("uc/cucm-post-upgrade")
        + d("uc/im-pub/imp-switch-version")
        + d("uc/im-sub/imp-switch-version")
        + d("uc/imp-replication-gate")
        + d("uc/imp-post-upgrade")
        + d("uc/release-configuration-freeze");
    assert_eq!(p.makespan_s, chain);
    assert_eq!(p.lower_bound_s, chain);
    // Without the staging period the same site keeps every install in the window.
    let unstaged = plan(&STAGED_STANDARD.replace(
        "stage = { start = \"2027-03-06T08:00:00+01:00\", hours = 9 }\n",
        "",
    ));
    assert!(in_phase(&unstaged, "staging").is_empty());
    assert!(
        unstaged.makespan_s > p.makespan_s + d("uc/uc-pub/install-inactive"),
        "{} vs {}",
        unstaged.makespan_s,
        p.makespan_s
    );
    // Staged work is timed inside the booked staging period, from its start.
    let j = plan_json(&p);
    let staging_s = j["staging_s"].as_u64().expect("staging_s");
    assert!(staging_s > 0 && staging_s <= 9 * 3600, "{staging_s}");
    assert_eq!(step(&p, "uc/freeze-configuration").start_s, 0);
}

#[test]
fn staged_imp_installs_wait_for_every_cucm_install_and_imp_switches_for_the_cucm_phase_ucm_13_ucm_10(
) {
    // The fastest plan takes UCM-13's parallel option in the staging phase too: the IM&P
    // publisher installs with the CUCM subscribers, once the publisher holds the new version.
    let fastest = plan(STAGED_STANDARD);
    assert_edge(
        &fastest,
        "uc/uc-pub/verify-install-log",
        "uc/im-pub/imp-install-inactive",
        "UCM-13",
    );
    assert_eq!(
        phase_name(step(&fastest, "uc/im-pub/imp-install-inactive")),
        "staging"
    );
    assert!(
        step(&fastest, "uc/im-pub/imp-install-inactive").start_s
            < step(&fastest, "uc/uc-sub2/verify-install-log").end_s()
    );
    // In the task lists' order, the IM&P publisher installs once every CUCM node holds the new
    // version inactive (UCM-13's first option), before any switch.
    let p = plan_with(STAGED_STANDARD, Some("documented"));
    assert_all_before(
        &steps_of(&p, "verify-install-log", None),
        &[step(&p, "uc/im-pub/imp-install-inactive")],
    );
    assert_edge(
        &p,
        "uc/uc-sub2/verify-install-log",
        "uc/im-pub/imp-install-inactive",
        "UCM-13",
    );
    // No IM&P node switches before CUCM replication is complete (UCM-10) and the CUCM
    // post-upgrade tasks are done (UCM-27).
    assert_edge(
        &p,
        "uc/cucm-replication-gate",
        "uc/im-pub/imp-switch-version",
        "UCM-10",
    );
    assert_edge(
        &p,
        "uc/cucm-post-upgrade",
        "uc/im-pub/imp-switch-version",
        "UCM-27",
    );
    assert_all_before(
        &[step(&p, "uc/cucm-post-upgrade")],
        &steps_of(&p, "imp-switch-version", None),
    );
}

#[test]
fn the_freeze_lasts_from_the_first_install_to_the_end_and_the_plan_states_what_staging_costs_ucm_04_ucm_21(
) {
    let p = plan(STAGED_STANDARD);
    let freeze = step(&p, "uc/freeze-configuration");
    let first_install = steps_of(&p, "install-inactive", None)
        .iter()
        .map(|s| s.start_s)
        .min()
        .expect("installs");
    assert_eq!(phase_name(freeze), "staging");
    assert!(freeze.end_s() <= first_install);
    let release = step(&p, "uc/release-configuration-freeze");
    assert_eq!(phase_name(release), "window");
    // From 08:00 (the staging period opens with the freeze) to the release at the end of the
    // window: thirteen hours before the window opens, then the window's work.
    let expected = 13 * 3600 + release.end_s();
    let j = plan_json(&p);
    let measure = j["measures"]
        .as_array()
        .expect("measures")
        .iter()
        .find(|m| m["name"] == "configuration_freeze")
        .expect("the freeze is measured");
    assert_eq!(measure["duration_s"].as_u64(), Some(expected), "{measure}");
    let costs = j["staging_costs"].as_array().expect("staging_costs");
    let rules: Vec<&str> = costs.iter().filter_map(|c| c["rule"].as_str()).collect();
    assert!(
        rules.contains(&"UCM-04") && rules.contains(&"UCM-21"),
        "{costs:?}"
    );
    let freeze_cost = costs
        .iter()
        .find(|c| c["rule"] == "UCM-04")
        .expect("UCM-04");
    assert_eq!(freeze_cost["duration_s"].as_u64(), Some(expected));
    let text = ferry_plan::render::text::render_text(&p);
    assert!(text.contains("Staging"), "{text}");
    assert!(text.contains("Staging costs"), "{text}");
}

#[test]
fn refresh_installs_take_the_node_down_and_never_leave_the_window_ucm_03() {
    // Seed 004: "You must perform all refresh upgrades during a maintenance window because the
    // system will not be available during the upgrade." 11.0 to 12.5 changes the OS major.
    let site = r#"
[site]
name = "quarry-collab"
window = { start = "2027-04-10T20:00:00-04:00", hours = 16 }
stage = { start = "2027-04-10T07:00:00-04:00", hours = 12 }

[[cluster]]
name = "uc"
profile = "cisco-ucm"
target = "12.5.1.17900-64"
facts = { configured_devices = 2000, upgrade_source = "sftp" }

[[cluster.node]]
name = "q-pub"
role = "publisher"
version = "11.0.1.10000-10"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2027-04-10T06:00:00-04:00" }

[[cluster.node]]
name = "q-sub"
role = "subscriber"
version = "11.0.1.10000-10"
facts = { devices = 800, replication_state = 2 }
"#;
    let p = plan(site);
    assert_eq!(p.clusters[0].upgrade_type, "refresh");
    assert!(
        in_phase(&p, "staging").is_empty(),
        "nothing of a refresh runs ahead, not even the freeze that goes with the installs: {:?}",
        in_phase(&p, "staging")
    );
    for s in steps_of(&p, "refresh-install", None) {
        assert_eq!(phase_name(s), "window", "{}", s.id);
    }
    assert_eq!(phase_name(step(&p, "uc/freeze-configuration")), "window");
}

#[test]
fn a_cop_file_that_restarts_the_node_keeps_the_installs_after_it_in_the_window_ucm_06() {
    // "After you install a COP file, you must restart the node": the restart takes the node
    // down, so it stays in the window, and the installs that follow it with it.
    let site = STAGED_STANDARD.replacen(
        "facts = { devices = 1200, replication_state = 2 }",
        "facts = { devices = 1200, replication_state = 2, planned_cops = [\"ciscocm.vmware-disk-size-reallocation-1.0.cop.sgn\"] }",
        1,
    );
    let p = plan(&site);
    assert_eq!(
        phase_name(step(&p, "uc/uc-sub1/restart-after-cop")),
        "window"
    );
    for s in steps_of(&p, "install-inactive", None) {
        assert_eq!(phase_name(s), "window", "{}", s.id);
    }
    // Every CUCM node installs its COP files before any installs the new version (UCM-06),
    // and the IM&P nodes install after the CUCM nodes (UCM-13): nothing is left to run ahead,
    // so the freeze, which goes with the first install (UCM-04), stays in the window too.
    assert!(
        in_phase(&p, "staging").is_empty(),
        "{:?}",
        in_phase(&p, "staging")
    );
    assert_eq!(phase_name(step(&p, "uc/freeze-configuration")), "window");
    assert_edges_go_forward(&p);
    // `--explain` says what keeps a stageable step in the window.
    let e = ferry_plan::explain(&p, "uc/uc-pub/install-inactive").expect("step");
    assert!(
        e.contains("May run ahead of the window by UCM-02")
            && e.contains("stays in the window because it waits for `uc/uc-sub1/")
            && e.contains("(UCM-06), which stays in the window"),
        "{e}"
    );
    let e = ferry_plan::explain(&p, "uc/freeze-configuration").expect("step");
    assert!(
        e.contains("it goes ahead only with `install-inactive` or `imp-install-inactive`"),
        "{e}"
    );
}

/// A staging period too short for the work staged in it: the plan says so, under the rule that
/// lets the work run ahead, and the rest still waits for it when the window opens (UCM-02).
#[test]
fn staged_work_longer_than_the_booked_staging_period_is_a_warning_ucm_02() {
    let short = STAGED_STANDARD.replace(
        "stage = { start = \"2027-03-06T08:00:00+01:00\", hours = 9 }",
        "stage = { start = \"2027-03-06T15:00:00+01:00\", hours = 2 }",
    );
    let p = plan(&short);
    let f: Vec<_> = p
        .findings
        .iter()
        .filter(|f| f.key == "staging-overrun/uc")
        .collect();
    assert_eq!(f.len(), 1, "{:?}", p.findings);
    assert_eq!(f[0].rule, "UCM-04");
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(
        f[0].message
            .contains("longer than the booked staging period (2h 00m"),
        "{}",
        f[0].message
    );
    // Booked long enough: no warning.
    assert!(!plan(STAGED_STANDARD)
        .findings
        .iter()
        .any(|f| f.key.starts_with("staging-overrun")));
}
