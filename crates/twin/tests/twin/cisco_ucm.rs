//! cisco-ucm in the twin: standard and refresh installs, switch and revert with configuration
//! lost on either side (UCM-02, UCM-03, UCM-04), replication states and services that wait for
//! them (UCM-11), user settings lost to the resync (UCM-21), COP files (UCM-05, UCM-06), an
//! IM&P failure after a successful CUCM upgrade (UCM-25), and the auditor on mis-ordered plans.

use super::common::*;
use ferry_model::{Faults, Outcome, Severity};
use ferry_twin::{impact, StepStatus, World};

const CLUSTER: &str = "ucm-hq";

fn inhibitors(v: &[ferry_twin::Violation]) -> Vec<&ferry_twin::Violation> {
    v.iter()
        .filter(|x| x.severity == Severity::Inhibitor)
        .collect()
}

/// An example planned with the documented strategy (the task lists' own order).
fn documented(name: &str) -> Case {
    case_with(&example(name), Some("documented"))
}

/// Runs `c`'s plan until `step` has started, and returns the world at that moment.
fn at_start_of(c: &Case, step: &str) -> World {
    let mut w = world(c, &Faults::default(), 1);
    run_steps_until(&mut w, &c.plan, 1, &c.plan.steps, |w| {
        w.status(1, step) == Some(StepStatus::Running)
    });
    assert_eq!(
        w.status(1, step),
        Some(StepStatus::Running),
        "{step} never started"
    );
    w
}

#[test]
fn every_example_rehearses_to_the_target_without_a_broken_rule() {
    for name in [
        "ucm-standard",
        "ucm-refresh",
        "ucm-cucm-only-standard",
        "ucm-cucm-only-refresh",
        "ucm-imp-only-standard",
        "ucm-imp-only-refresh",
        "ucm-parallel",
    ] {
        let r = rehearse(name);
        assert!(
            failed(&r.outcomes).is_empty(),
            "{name}: {:?}",
            failed(&r.outcomes)
        );
        assert!(
            inhibitors(&r.violations).is_empty(),
            "{name}: {:#?}",
            r.violations
        );
        assert!(
            r.impact.clusters.iter().all(|c| c.on_target),
            "{name}: {:?}",
            r.impact
        );
    }
}

#[test]
fn the_inhibitor_example_fails_where_the_document_says_ucm_05() {
    let r = rehearse("ucm-inhibitors");
    let (id, why) = failed(&r.outcomes)
        .into_iter()
        .next()
        .expect("a refresh without the COP file fails");
    assert!(id.ends_with("/refresh-install"), "{id}");
    assert!(
        matches!(why, Outcome::Failed(m) if m.starts_with("UCM-05")),
        "{why:?}"
    );
    let rules = rules(&r.violations);
    for rule in ["UCM-05", "UCM-10", "UCM-17"] {
        assert!(rules.contains(rule), "{rule} not reported: {rules:?}");
    }
}

/// (step that runs, node, expected: serving while it runs, inactive slot holds the target after)
fn check_install(example: &str, step: &str, node: &str, serving: bool) {
    let c = case(example);
    let cluster = &c.plan.clusters[0].name;
    let w = at_start_of(&c, step);
    assert_eq!(
        w.serving(cluster, node),
        serving,
        "{example}: {node} serving during {step}"
    );
    let mut r = rehearse(example);
    r.world.finish();
    let n = r.world.node(cluster, node).unwrap();
    assert_eq!(n.active, n.target, "{example}: {node} ends on its target");
    assert_eq!(
        n.inactive.as_ref(),
        Some(&n.original),
        "{example}: the old version stays in the inactive slot for revert"
    );
}

#[test]
fn a_standard_install_leaves_the_node_serving_ucm_02() {
    check_install(
        "ucm-standard",
        "ucm-hq/cucm-sub1/install-inactive",
        "cucm-sub1",
        true,
    );
}

#[test]
fn a_refresh_install_takes_the_node_down_throughout_ucm_03() {
    check_install(
        "ucm-refresh",
        "ucm-plant/cm-sub1/refresh-install",
        "cm-sub1",
        false,
    );
}

/// (faults, expected: changes made, lost, freeze violations)
fn check_configuration(faults_toml: &str, revert: bool, made: u64, lost: u64, frozen: usize) {
    let c = case("ucm-standard");
    let mut r = rehearse_case(&c, &faults(faults_toml), 1);
    if revert {
        roll_back(&c, &mut r);
    }
    let i = &r.impact.clusters[0];
    assert_eq!(i.config_changes_made, made, "{faults_toml}");
    assert_eq!(i.config_changes_lost, lost, "{faults_toml}");
    let ucm20 = r.violations.iter().filter(|v| v.rule == "UCM-20").count();
    assert_eq!(ucm20, frozen, "{faults_toml}: {:#?}", r.violations);
}

#[test]
fn configuration_changed_between_install_and_switch_is_lost_on_switch_ucm_04() {
    // Made on the publisher's old side after its install: the switch leaves it behind.
    check_configuration(
        "[[fault]]\nkind = \"config_change\"\nstep = \"ucm-hq/cucm-pub/switch-version\"\n",
        false,
        1,
        1,
        1,
    );
    // Made before the install: the install copies it to the new side.
    check_configuration(
        "[[fault]]\nkind = \"config_change\"\nstep = \"ucm-hq/cucm-pub/install-inactive\"\n",
        false,
        1,
        0,
        1,
    );
}

#[test]
fn configuration_changed_after_the_switch_is_lost_on_revert_ucm_04() {
    check_configuration(
        "[[fault]]\nkind = \"config_change\"\nstep = \"ucm-hq/cucm-post-upgrade\"\n",
        true,
        1,
        1,
        1,
    );
}

#[test]
fn subscriber_services_wait_for_replication_state_2_ucm_11() {
    let r = rehearse("ucm-standard");
    let log: Vec<_> = r
        .world
        .log
        .iter()
        .filter(|e| e.node.as_deref() == Some("cucm-sub1") && e.code.starts_with("replication-"))
        .collect();
    let states: Vec<&str> = log.iter().map(|e| e.code.as_str()).collect();
    // The publisher's switch puts it out of sync; its own switch sets replication up again.
    assert_eq!(
        states,
        [
            "replication-3",
            "replication-0",
            "replication-1",
            "replication-2"
        ],
        "{log:#?}"
    );
    let setup = log[1].time;
    let good = log[3].time;
    // 20-30 min, plus 10 min per 10,000 configured devices (9,400 here).
    let minutes = (good - setup) as f64 / 60.0;
    assert!(
        (21.0..=43.0).contains(&minutes),
        "converged in {minutes} min"
    );
    // Its phones are not back before replication is good: once it runs the new version, the
    // world is followed minute by minute until its replication setup runs (state 1).
    let c = case("ucm-standard");
    let mut w = world(&c, &Faults::default(), 1);
    run_steps_until(&mut w, &c.plan, 1, &c.plan.steps, |w| {
        w.node(CLUSTER, "cucm-sub1")
            .is_some_and(|n| n.active == n.target)
    });
    let setting_up = |w: &World| {
        w.node(CLUSTER, "cucm-sub1")
            .is_some_and(|n| n.repl.values().any(|&s| s == 1))
    };
    for _ in 0..120 {
        if setting_up(&w) {
            break;
        }
        let next = w.now + 60;
        while w.advance(Some(next)).is_some() {}
    }
    assert!(setting_up(&w), "cucm-sub1 never set its replication up");
    assert!(!w.serving(CLUSTER, "cucm-sub1"));
    assert_eq!(w.registered(CLUSTER, "cucm-sub1"), 0.0);
}

#[test]
fn replication_stuck_at_4_fails_the_replication_gate_ucm_10_ucm_11() {
    // The documented task list: the IM&P phase waits for the gate.
    let c = documented("ucm-standard");
    let r = rehearse_case(
        &c,
        &faults("[[fault]]\nkind = \"replication_stuck\"\nnode = \"cucm-sub2\"\nstate = 4\n"),
        1,
    );
    let f = failed(&r.outcomes);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "ucm-hq/cucm-replication-gate");
    assert!(matches!(f[0].1, Outcome::Failed(m) if m.contains("timed out")));
    // The IM&P phase never started.
    assert!(!r.outcomes.keys().any(|k| k.contains("imp-install")));
}

#[test]
fn user_settings_changed_after_a_switch_are_lost_to_the_resync_ucm_21() {
    let r = rehearse("ucm-standard");
    assert!(r.impact.clusters[0].user_settings_lost > 0);
    assert!(r.world.log.iter().any(|e| e.code == "user-settings-lost"));
}

/// A CUCM publisher with two subscribers and an IM&P pair, 12.5 to 14 (a standard upgrade),
/// written for these tests from the document's sentences; `cm-b` plans ciscocm.free_common_space.
const RIVERSIDE_FREE_COMMON_SPACE: &str = r#"[site]
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
facts = { devices = 900, replication_state = 2, planned_cops = ["ciscocm.free_common_space_v1.6.cop.sgn"] }

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

/// The document: free_common_space "removes the inactive side in the common partition ... You
/// will not be able to switch back to the inactive version after installing this file"; and
/// "When you reboot to the new software, the old software version remains on the system. This
/// allows you to revert to the old version." What goes is the version inactive when the COP is
/// installed; the upgrade then installs into the freed side, and after the switch the old
/// active version is the inactive one: the rollback switches back to it.
#[test]
fn after_free_common_space_the_upgrade_still_reverts_to_the_old_version_ucm_06() {
    let c = case_with(RIVERSIDE_FREE_COMMON_SPACE, None);
    let mut r = rehearse_case(&c, &Faults::default(), 1);
    assert!(failed(&r.outcomes).is_empty(), "{:?}", r.outcomes);
    let b = r.world.node("cm", "cm-b").unwrap();
    assert_eq!(b.active, b.target);
    assert_eq!(
        b.inactive.as_ref(),
        Some(&b.original),
        "the old version is inactive again"
    );
    let rb = roll_back(&c, &mut r);
    assert!(failed(&rb).is_empty(), "{rb:?}");
    assert_eq!(rb["cm/cm-b/revert-version"], Outcome::Done);
    let b = r.world.node("cm", "cm-b").unwrap();
    assert_eq!(b.active, b.original, "cm-b runs 12.5 again");
    assert!(
        r.impact.clusters[0].on_target,
        "{:?}",
        r.impact.clusters[0].off_target
    );
}

#[test]
fn an_imp_failure_after_a_good_cucm_upgrade_is_recovered_by_the_rollback_ucm_25() {
    // The documented task list: the IM&P publisher installs after the CUCM phase.
    let c = documented("ucm-standard");
    let mut r = rehearse_case(
        &c,
        &faults("[[fault]]\nkind = \"install_failure\"\nstep = \"ucm-hq/imp-pub/imp-install-inactive\"\n"),
        1,
    );
    // CUCM is on the new version, IM&P is not: the versions no longer match (UCM-17).
    let cucm = r.world.node(CLUSTER, "cucm-pub").unwrap();
    assert_eq!(cucm.active, cucm.target);
    assert!(
        rules(&r.violations).contains("UCM-17"),
        "{:#?}",
        r.violations
    );
    // The rollback starts with the recovery choice, then switches CUCM back.
    assert_eq!(c.plan.rollback[0].action, "imp-failure-recovery");
    assert!(c.plan.rollback[0].rules.contains(&"UCM-25".to_string()));
    let rb = roll_back(&c, &mut r);
    assert!(failed(&rb).is_empty(), "{rb:?}");
    assert!(
        r.impact.clusters[0].on_target,
        "{:?}",
        r.impact.clusters[0].off_target
    );
    assert!(inhibitors(&r.violations).is_empty(), "{:#?}", r.violations);
}

#[test]
fn a_rollback_after_a_crash_returns_every_node_to_its_version() {
    for (example, step) in [
        ("ucm-standard", "ucm-hq/cucm-sub3/switch-version"),
        ("ucm-refresh", "ucm-plant/cm-sub2/refresh-install"),
    ] {
        let c = case(example);
        let mut r = rehearse_case(
            &c,
            &faults(&format!(
                "[[fault]]\nkind = \"crash\"\nstep = \"{step}\"\nrecover_min = 20\n"
            )),
            1,
        );
        assert_eq!(failed(&r.outcomes).len(), 1, "{example}");
        let rb = roll_back(&c, &mut r);
        assert!(failed(&rb).is_empty(), "{example}: {rb:?}");
        let i = impact(&r.world, true);
        assert!(
            i.clusters[0].on_target,
            "{example}: {:?}",
            i.clusters[0].off_target
        );
        assert!(
            inhibitors(&r.violations).is_empty(),
            "{example}: {:#?}",
            r.violations
        );
    }
}

#[test]
fn the_auditor_catches_a_subscriber_switched_before_its_publisher_ucm_09() {
    let mut c = case("ucm-standard");
    c.plan = swap_order(
        &c.plan,
        "ucm-hq/cucm-pub/switch-version",
        "ucm-hq/cucm-sub1/switch-version",
    );
    let r = rehearse_case(&c, &Faults::default(), 1);
    let v: Vec<_> = r.violations.iter().filter(|v| v.rule == "UCM-09").collect();
    assert_eq!(v.len(), 1, "{:#?}", r.violations);
    assert_eq!(
        v[0].step.as_deref(),
        Some("ucm-hq/cucm-sub1/switch-version")
    );
    let sub1 = r
        .world
        .trace
        .iter()
        .find(|e| e.step == "ucm-hq/cucm-sub1/switch-version")
        .unwrap();
    assert_eq!(v[0].time, sub1.start);
    // And the world shows why: the subscriber, ahead of its publisher, fails replication.
    assert!(r
        .world
        .incidents
        .iter()
        .any(|i| i.rule == "UCM-11" && i.node.as_deref() == Some("cucm-sub1")));
}

#[test]
fn the_auditor_catches_imp_switched_before_cucm_replication_ucm_10() {
    let mut c = documented("ucm-standard");
    c.plan = swap_order(
        &c.plan,
        "ucm-hq/cucm-replication-gate",
        "ucm-hq/imp-pub/imp-switch-version",
    );
    let r = rehearse_case(&c, &Faults::default(), 1);
    // Both the order (the gate had not run) and the world (replication was not good) say so.
    let v: Vec<_> = r
        .violations
        .iter()
        .filter(|v| {
            v.rule == "UCM-10" && v.step.as_deref() == Some("ucm-hq/imp-pub/imp-switch-version")
        })
        .collect();
    assert_eq!(v.len(), 2, "{:#?}", r.violations);
    assert!(v.iter().any(|v| v
        .message
        .contains("before ucm-hq/cucm-replication-gate had run")));
    assert!(v.iter().any(|v| v.message.contains("did not hold")));
}

#[test]
fn one_subscriber_at_a_time_keeps_phones_registered_all_at_once_shortens_mixed_versions_ucm_15() {
    let fast = rehearse_case(
        &case_with(&example("ucm-standard"), Some("fastest")),
        &Faults::default(),
        1,
    );
    let slow = rehearse_case(
        &case_with(&example("ucm-standard"), Some("one-at-a-time")),
        &Faults::default(),
        1,
    );
    let (f, s) = (&fast.impact.clusters[0], &slow.impact.clusters[0]);
    assert!(
        f.mixed_version_minutes * 2.0 < s.mixed_version_minutes,
        "mixed: {} vs {}",
        f.mixed_version_minutes,
        s.mixed_version_minutes
    );
    let (fp, sp) = (
        f.device_minutes_unregistered["phones"],
        s.device_minutes_unregistered["phones"],
    );
    assert!(sp * 3.0 < fp, "phone-minutes unregistered: {fp} vs {sp}");
    assert!(s.calls_failed < f.calls_failed);
}

#[test]
fn the_same_seed_gives_the_same_rehearsal_and_another_seed_another() {
    let c = case("ucm-standard");
    let a = rehearse_case(&c, &Faults::default(), 7);
    let b = rehearse_case(&c, &Faults::default(), 7);
    let d = rehearse_case(&c, &Faults::default(), 8);
    assert_eq!(a.world.trace, b.world.trace);
    assert_eq!(a.impact, b.impact);
    assert_ne!(a.world.trace, d.world.trace);
    assert_eq!(
        serde_json::to_string(&a.world).unwrap(),
        serde_json::to_string(&b.world).unwrap()
    );
}

#[test]
fn a_saved_world_carries_on_exactly_as_the_original() {
    let c = case("ucm-standard");
    let mut w = world(&c, &Faults::default(), 3);
    run_steps_until(&mut w, &c.plan, 1, &c.plan.steps, |w| {
        w.status(1, "ucm-hq/cucm-pub/switch-version") == Some(StepStatus::Running)
    });
    let mut saved: World = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    saved.attach(&c.profiles).unwrap();
    let mut a = w;
    let mut b = saved;
    let mut ea = Vec::new();
    let mut eb = Vec::new();
    while let Some(x) = a.advance(None) {
        ea.push(x);
    }
    while let Some(x) = b.advance(None) {
        eb.push(x);
    }
    assert!(!ea.is_empty());
    assert_eq!(ea, eb);
}

// ---------------------------------------------------------------------------------------------
// CM groups and the balanced strategy
// ---------------------------------------------------------------------------------------------

/// Three subscribers whose phones are in CM groups that do not follow the least loaded server:
/// Dock's phones try cm-a, then cm-c.
const DOCKS: &str = r#"[site]
name = "docks"

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"

[cluster.facts]
configured_devices = 3000
upgrade_source = "sftp"
cm_groups = [
    { name = "Dock", servers = ["cm-a", "cm-c"], devices = 1000 },
    { name = "Yard", servers = ["cm-b", "cm-a"], devices = 800 },
    { name = "Gate", servers = ["cm-c", "cm-b"], devices = 600 },
]

[[cluster.node]]
name = "cm-pub"
role = "publisher"
version = "12.5.1.16900-48"

[[cluster.node]]
name = "cm-a"
role = "subscriber"
version = "12.5.1.16900-48"

[[cluster.node]]
name = "cm-b"
role = "subscriber"
version = "12.5.1.16900-48"

[[cluster.node]]
name = "cm-c"
role = "subscriber"
version = "12.5.1.16900-48"CAPACITY
"#;

/// The world 12 minutes into `node`'s switch: its phones have failed over (and fetched a new
/// load, if their backup runs the new version).
fn during_switch_of(c: &Case, node: &str) -> World {
    let mut w = at_start_of(c, &format!("cm/{node}/switch-version"));
    let later = w.now + 12 * 60;
    while w.advance(Some(later)).is_some() {}
    w
}

#[test]
fn phones_fail_over_to_the_next_server_of_their_cm_group_ucm_15() {
    // UCM-15 lets the site switch subscribers one at a time: while cm-a switches, Dock's
    // phones register to cm-c, the next server of their group, although cm-b carries fewer.
    let c = case_with(&DOCKS.replace("CAPACITY", ""), Some("one-at-a-time"));
    let w = during_switch_of(&c, "cm-a");
    assert_eq!(w.registered("cm", "cm-a"), 0.0);
    assert_eq!(w.registered("cm", "cm-b"), 800.0);
    assert_eq!(w.registered("cm", "cm-c"), 1600.0);
    // While cm-b switches (cm-a serves again, on the new version), Yard's phones are on cm-a.
    let w = during_switch_of(&c, "cm-b");
    assert_eq!(w.registered("cm", "cm-a"), 1800.0);
    assert_eq!(w.registered("cm", "cm-c"), 600.0);
}

#[test]
fn a_subscriber_takes_over_phones_only_up_to_its_device_capacity_ucm_15() {
    // cm-c may carry 1,200 phones while it takes over others': 400 of Dock's cannot register.
    let c = case_with(
        &DOCKS.replace("CAPACITY", "\nfacts = { device_capacity = 1200 }"),
        Some("one-at-a-time"),
    );
    let w = during_switch_of(&c, "cm-a");
    assert_eq!(w.registered("cm", "cm-c"), 1200.0);
    let i = w
        .incidents
        .iter()
        .find(|i| i.rule == "UCM-15" && i.node.as_deref() == Some("cm-c"))
        .unwrap_or_else(|| panic!("{:#?}", w.incidents));
    assert_eq!(i.severity, Severity::Warning);
    assert!(
        i.message.contains("400 cannot register (capacity 1200)"),
        "{}",
        i.message
    );
}

/// Four subscribers in two pairs that back each other up, as the field lays CM groups out.
const QUAYSIDE: &str = r#"[site]
name = "quayside"
window = { start = "2027-05-08T20:00:00+02:00", hours = 14 }

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8", imp_subscriber = "14.0.1.13900-8" }

[cluster.facts]
configured_devices = 8000
upgrade_source = "sftp"
device_capacity = 7500
cm_groups = [
    { name = "East-1", servers = ["cm-e1", "cm-e2"], devices = 2200 },
    { name = "East-2", servers = ["cm-e2", "cm-e1"], devices = 2000 },
    { name = "West-1", servers = ["cm-w1", "cm-w2"], devices = 1800 },
    { name = "West-2", servers = ["cm-w2", "cm-w1"], devices = 2000 },
]

[[cluster.node]]
name = "cm-pub"
role = "publisher"
version = "12.5.1.16900-48"
facts = { drs_backup_at = "2027-05-08T09:00:00+02:00" }

[[cluster.node]]
name = "cm-e1"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 2200 }

[[cluster.node]]
name = "cm-e2"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 2000 }

[[cluster.node]]
name = "cm-w1"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 1800 }

[[cluster.node]]
name = "cm-w2"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 2000 }

[[cluster.node]]
name = "pres-1"
role = "imp_publisher"
version = "12.5.1.16900-5"
facts = { users = 1500 }

[[cluster.node]]
name = "pres-2"
role = "imp_subscriber"
version = "12.5.1.16900-5"
facts = { users = 1500 }
"#;

#[test]
fn balanced_costs_the_calls_of_one_at_a_time_in_the_window_of_the_fastest_ucm_15() {
    // UCM-15: CUCM subscribers all at once or one at a time. The twin shows both ends and
    // balanced between them: over five seeds, balanced fails at most 1.2 times the calls of one
    // at a time, in at most 1.2 times the window of the fastest plan.
    let median = |strategy: &str| {
        let c = case_with(QUAYSIDE, Some(strategy));
        let mut calls = Vec::new();
        let mut windows = Vec::new();
        let mut phones = Vec::new();
        for seed in 1..=5 {
            let r = rehearse_case(&c, &Faults::default(), seed);
            assert!(
                failed(&r.outcomes).is_empty(),
                "{strategy}: {:?}",
                r.outcomes
            );
            assert!(
                inhibitors(&r.violations).is_empty(),
                "{strategy}: {:#?}",
                r.violations
            );
            let i = &r.impact.clusters[0];
            assert!(i.on_target, "{strategy}: {:?}", i.off_target);
            calls.push(i.calls_failed as f64);
            windows.push(i.window_s as f64);
            phones.push(i.device_minutes_unregistered["phones"]);
        }
        let mid = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        (mid(&mut calls), mid(&mut windows), mid(&mut phones))
    };
    let (fast_calls, fast_window, fast_phones) = median("fastest");
    let (slow_calls, slow_window, _) = median("one-at-a-time");
    let (calls, window, phones) = median("balanced");
    assert!(
        calls <= 1.2 * slow_calls,
        "balanced {calls} calls failed, one at a time {slow_calls}"
    );
    assert!(
        window <= 1.2 * fast_window,
        "balanced {window} s, fastest {fast_window} s"
    );
    assert!(window < slow_window);
    assert!(
        phones * 5.0 < fast_phones,
        "balanced {phones}, fastest {fast_phones} device-minutes"
    );
    assert!(calls * 3.0 < fast_calls);
}

#[test]
fn phones_failing_over_at_once_spread_over_the_least_loaded_subscribers_ucm_15() {
    // No CM group stated: a switching subscriber's phones go to the least loaded other one.
    // When two switch together (a balanced batch within 5,000 phones a subscriber), each
    // group weighs the phones already on their way, so the two groups take one subscriber each.
    let site = r#"[site]
name = "wharf"

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
facts = { configured_devices = 8000, upgrade_source = "sftp", device_capacity = 5000 }

[[cluster.node]]
name = "cm-pub"
role = "publisher"
version = "12.5.1.16900-48"

[[cluster.node]]
name = "cm-a"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 2000 }

[[cluster.node]]
name = "cm-b"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 2000 }

[[cluster.node]]
name = "cm-c"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 2000 }

[[cluster.node]]
name = "cm-d"
role = "subscriber"
version = "12.5.1.16900-48"
facts = { devices = 2000 }
"#;
    let c = case_with(site, Some("balanced"));
    let s = |node: &str| {
        c.plan
            .steps
            .iter()
            .find(|s| s.id == format!("cm/{node}/switch-version"))
            .unwrap()
            .start_s
    };
    assert_eq!(s("cm-a"), s("cm-b"), "cm-a and cm-b switch together");
    let mut w = world(&c, &Faults::default(), 1);
    let running = |w: &World, node: &str| {
        w.status(1, &format!("cm/{node}/switch-version")) == Some(StepStatus::Running)
    };
    run_steps_until(&mut w, &c.plan, 1, &c.plan.steps, |w| {
        running(w, "cm-a") && running(w, "cm-b")
    });
    assert!(running(&w, "cm-a") && running(&w, "cm-b"));
    let later = w.now + 5 * 60;
    while w.advance(Some(later)).is_some() {}
    assert_eq!(w.registered("cm", "cm-c"), 4000.0);
    assert_eq!(w.registered("cm", "cm-d"), 4000.0);
    assert!(
        !w.incidents.iter().any(|i| i.rule == "UCM-15"),
        "{:#?}",
        w.incidents
    );
}

/// Seed 004: "You must perform all refresh upgrades during a maintenance window because the
/// system will not be available during the upgrade." A plan edited by hand to run a refresh
/// install ahead of the window (in the staging phase) is caught by the auditor, whatever the
/// planner would have done: the profile gives `refresh-install` no `stage` rule.
#[test]
fn the_auditor_catches_a_refresh_install_run_ahead_of_the_window_ucm_03() {
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
    let mut c = case_with(site, None);
    // As planned nothing runs ahead: the auditor finds nothing to say about staging.
    let r = rehearse_case(&c, &Faults::default(), 1);
    assert!(inhibitors(&r.violations).is_empty(), "{:#?}", r.violations);
    // The publisher's refresh install and what precedes it moved ahead by hand.
    for s in &mut c.plan.steps {
        if s.id == "uc/freeze-configuration" || s.id == "uc/q-pub/refresh-install" {
            s.phase = ferry_model::Phase::Staging;
        }
    }
    let r = rehearse_case(&c, &Faults::default(), 1);
    let v: Vec<_> = inhibitors(&r.violations)
        .into_iter()
        .filter(|v| v.step.as_deref() == Some("uc/q-pub/refresh-install"))
        .collect();
    assert_eq!(v.len(), 1, "{:#?}", r.violations);
    assert_eq!(v[0].rule, "UCM-03");
    assert!(
        v[0].message.contains("ahead of the window"),
        "{}",
        v[0].message
    );
    // The freeze may go ahead (UCM-04): it is not reported.
    assert!(!r
        .violations
        .iter()
        .any(|v| v.step.as_deref() == Some("uc/freeze-configuration")));
}
