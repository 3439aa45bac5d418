//! cisco-callmanager4 in the twin (CCM-*): in-place upgrades one server at a time, devices on
//! their primaries failing over to the secondaries, calls across versions, services left
//! inactive, service parameters migrated, the database renamed under third-party CDR triggers.

use super::common::*;
use ferry_model::{Faults, Outcome, Plan, PlannedStep, Severity};
use ferry_twin::{Violation, World};
use std::collections::{BTreeMap, BTreeSet};

const EXAMPLES: [&str; 3] = ["ccm4-from-30", "ccm4-large", "ccm4-two-server"];

/// The large example without moving every device to the secondaries: primaries one at a time.
fn large_primaries_in_turn() -> String {
    example("ccm4-large").replace("devices_on_backups = true, ", "")
}

/// The two-server example with third-party CDR software and customised service parameters.
fn two_server_with(cluster_facts: &str) -> String {
    example("ccm4-two-server").replace(
        "facts = { db_name = \"CCM0300\",",
        &format!("facts = {{ db_name = \"CCM0300\", {cluster_facts}"),
    )
}

fn inhibitors(v: &[Violation]) -> Vec<&Violation> {
    v.iter()
        .filter(|x| x.severity == Severity::Inhibitor)
        .collect()
}

fn node(w: &World, name: &str) -> usize {
    w.clusters[0]
        .nodes
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// `target` and every step it waits for, directly or not, in plan order.
fn up_to(plan: &Plan, target: &str) -> Vec<PlannedStep> {
    let mut need: BTreeSet<String> = [target.to_string()].into();
    loop {
        let before = need.len();
        let more: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| need.contains(&s.id))
            .flat_map(|s| s.after.iter().cloned())
            .collect();
        need.extend(more);
        if need.len() == before {
            break;
        }
    }
    assert!(
        plan.steps.iter().any(|s| s.id == target),
        "no step {target}"
    );
    plan.steps
        .iter()
        .filter(|s| need.contains(&s.id))
        .cloned()
        .collect()
}

/// The plan without the steps of these actions.
fn without(plan: &Plan, actions: &[&str]) -> Plan {
    let mut p = plan.clone();
    p.steps.retain(|s| !actions.contains(&s.action.as_str()));
    p
}

/// Like `run_steps`, but looks at the world every `every_s` seconds of virtual time.
fn run_sampled(
    w: &mut World,
    plan: &Plan,
    steps: &[PlannedStep],
    every_s: i64,
    mut look: impl FnMut(&World),
) -> BTreeMap<String, Outcome> {
    let mut outcome: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut running: BTreeSet<String> = BTreeSet::new();
    let mut failed = false;
    loop {
        if !failed {
            for s in steps {
                if outcome.contains_key(&s.id) || running.contains(&s.id) {
                    continue;
                }
                let prepare_pending = s.phase == ferry_model::Phase::Window
                    && steps.iter().any(|x| {
                        x.phase == ferry_model::Phase::Prepare
                            && !matches!(
                                outcome.get(&x.id),
                                Some(Outcome::Done) | Some(Outcome::Skipped)
                            )
                    });
                let ready = !prepare_pending
                    && s.after.iter().all(|a| {
                        matches!(outcome.get(a), Some(Outcome::Done) | Some(Outcome::Skipped))
                            || !steps.iter().any(|x| &x.id == a)
                    });
                if ready && fits_limits(plan, &running, &s.id) {
                    running.insert(s.id.clone());
                    w.begin(1, s);
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let next = w.now + every_s;
        match w.advance(Some(next)) {
            Some((_, id, o)) => {
                running.remove(&id);
                failed |= matches!(o, Outcome::Failed(_));
                outcome.insert(id, o);
            }
            None => look(w),
        }
    }
    w.finish();
    outcome
}

// ---------------------------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------------------------

/// Rehearses `name` with `seed`: every step done, every node on its target, no violation of
/// inhibitor severity. Returns the warnings (window overruns, CCM-12).
fn check_example(name: &str, seed: u64) -> Vec<String> {
    let r = if seed == 1 {
        rehearse(name)
    } else {
        rehearse_case(&case(name), &Faults::default(), seed)
    };
    assert!(
        failed(&r.outcomes).is_empty(),
        "{name} seed {seed}: {:?}",
        failed(&r.outcomes)
    );
    assert_eq!(
        r.outcomes.len(),
        case(name).plan.steps.len(),
        "{name}: every step ran"
    );
    for c in &r.impact.clusters {
        assert!(c.on_target, "{name} seed {seed}: {:?}", c.off_target);
    }
    assert!(
        inhibitors(&r.violations).is_empty(),
        "{name} seed {seed}: {:#?}",
        inhibitors(&r.violations)
    );
    r.violations
        .iter()
        .map(|v| {
            assert_eq!(
                v.rule, "CCM-12",
                "{name}: only window overruns may warn: {v:?}"
            );
            format!("{name} seed {seed}: {}", v.message)
        })
        .collect()
}

#[test]
fn every_example_rehearses_to_the_target_without_inhibitor_violations() {
    let mut warnings = Vec::new();
    for name in EXAMPLES {
        for seed in 1..=6 {
            warnings.extend(check_example(name, seed));
        }
    }
    println!("window overruns (CCM-12, warnings): {warnings:#?}");
}

/// The inhibitor example: the twin stops at the functional check (CCM-06) and the auditor
/// flags every inhibitor check that held when the run started.
#[test]
fn inhibitor_example_fails_at_the_functional_check_and_is_flagged() {
    let r = rehearse("ccm4-inhibitors");
    let f = failed(&r.outcomes);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "ccm-east/verify-cluster");
    assert!(
        matches!(f[0].1, Outcome::Failed(m) if m.starts_with("CCM-06:")),
        "{f:?}"
    );
    let check = |rule: &str, node: Option<&str>| {
        assert!(
            r.violations.iter().any(|v| v.rule == rule
                && v.severity == Severity::Inhibitor
                && v.node.as_deref() == node),
            "{rule} on {node:?} not flagged: {:#?}",
            r.violations
        );
    };
    check("CCM-06", Some("east-sec")); // not functional: failover will not occur
    check("CCM-15", Some("east-pub")); // Domain Controller
    check("CCM-17", Some("east-pub")); // drive removal on an MCS-7825
    check("CCM-18", Some("east-pri1")); // Unity co-resident
    check("CCM-03", Some("east-tftp")); // OS too old for the upgrade CD
    check("CCM-22", None); // misdirected dial-peers
    assert!(!r.impact.clusters.iter().any(|c| c.on_target));
}

/// CCM-01: the 3.1 cluster of the inhibitor example, on its own, gets as far as the publisher's
/// install, which the twin fails: 3.1 is not on the compatibility matrix.
#[test]
fn unsupported_source_version_fails_the_install_ccm_01() {
    let text = example("ccm4-inhibitors");
    let west = &text[text.find("# A second cluster").unwrap()..];
    let site = format!(
        "[site]\nname = \"west\"\nwindow = {{ start = \"2026-12-05T20:00:00-05:00\", hours = 16 }}\n\n{}",
        west.replace("facts = { h323_trunks = [\"ICT-CAMPUS\"] }", "facts = { db_name = \"CCM0300\" }")
    );
    let r = rehearse_case(&case_with(&site, None), &Faults::default(), 1);
    let f = failed(&r.outcomes);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "ccm-west/west-pub/install-publisher");
    assert!(
        matches!(f[0].1, Outcome::Failed(m) if m.starts_with("CCM-01:")),
        "{f:?}"
    );
    assert!(!r.impact.clusters[0].on_target);
}

// ---------------------------------------------------------------------------------------------
// CCM-05, CCM-08: the auditor catches mis-ordered plans
// ---------------------------------------------------------------------------------------------

/// `later` runs before `earlier` (a hand-edited plan): the auditor reports `rule` when `later`
/// starts; the replication model adds `replication_rule` when a subscriber ends up ahead of the
/// publisher.
fn check_misordered(
    site: &str,
    earlier: &str,
    later: &str,
    rule: &str,
    replication_incident: bool,
) {
    let mut c = case_with(site, None);
    c.plan = swap_order(&c.plan, earlier, later);
    let r = rehearse_case(&c, &Faults::default(), 1);
    let started = r
        .world
        .trace
        .iter()
        .find(|e| e.step == later)
        .unwrap_or_else(|| panic!("{later} did not run"))
        .start;
    let earlier_start = r
        .world
        .trace
        .iter()
        .find(|e| e.step == earlier)
        .map(|e| e.start);
    assert!(
        earlier_start.is_none_or(|t| t >= started),
        "{later} ran first"
    );
    let v = r
        .violations
        .iter()
        .find(|v| v.rule == rule && v.severity == Severity::Inhibitor && v.time == started)
        .unwrap_or_else(|| panic!("no {rule} at the start of {later}: {:#?}", r.violations));
    assert!(
        v.step.as_deref() == Some(later)
            || v.node.as_deref()
                == c.plan
                    .steps
                    .iter()
                    .find(|s| s.id == later)
                    .and_then(|s| s.node.as_deref()),
        "{v:?}"
    );
    let repl = r
        .violations
        .iter()
        .any(|v| v.rule == "CCM-05" && v.message.contains("replication failed"));
    assert_eq!(repl, replication_incident, "{:#?}", r.violations);
}

#[test]
fn misordered_plans_are_caught_by_the_auditor_ccm_05_ccm_08() {
    let large = example("ccm4-large");
    let from_30 = example("ccm4-from-30");
    // CCM-05: the TFTP server installs 4.0(1) while the publisher still runs 3.2(3); its replica
    // cannot come from an older publisher (replication fails).
    check_misordered(
        &large,
        "ccm-hq/hq-pub/install-publisher",
        "ccm-hq/hq-tftp/install-subscriber",
        "CCM-05",
        true,
    );
    // CCM-05: a subscriber of the two-server cluster installs before the publisher has rebooted.
    check_misordered(
        &example("ccm4-two-server"),
        "ccm-branch/ccm-pub/reboot-server",
        "ccm-branch/ccm-sub/install-subscriber",
        "CCM-05",
        true,
    );
    // CCM-08: a primary goes to 3.2(3) before its secondary (the 3.0 leg).
    check_misordered(
        &from_30,
        "ccm-region/rg-sec/upgrade-to-3.2@3.2(3)",
        "ccm-region/rg-pri1/upgrade-to-3.2@3.2(3)",
        "CCM-08",
        false,
    );
}

// ---------------------------------------------------------------------------------------------
// CCM-07, CCM-09, CCM-10, CCM-11: devices and calls
// ---------------------------------------------------------------------------------------------

/// Runs the plan of `site` up to and including `step`, lets the devices settle for 45 min,
/// then measures the share of call attempts that fail over the next hour.
fn failing_share_after(site: &str, step: &str) -> f64 {
    let c = case_with(site, None);
    let mut w = world(&c, &Faults::default(), 1);
    let out = run_steps(&mut w, &c.plan, 1, &up_to(&c.plan, step));
    assert!(failed(&out).is_empty(), "{:?}", failed(&out));
    let t = w.now + 45 * 60;
    w.advance(Some(t));
    w.finish();
    let (a0, f0) = (
        w.clusters[0].acc.calls_attempted,
        w.clusters[0].acc.calls_failed,
    );
    assert!(
        w.clusters[0]
            .devices
            .iter()
            .all(|d| d.at.is_some() && d.moving.is_none()),
        "devices still moving after {step}"
    );
    w.advance(Some(t + 3600));
    w.finish();
    let (a1, f1) = (
        w.clusters[0].acc.calls_attempted,
        w.clusters[0].acc.calls_failed,
    );
    (f1 - f0) / (a1 - a0)
}

/// CCM-10: with every device registered, a call fails exactly when its two ends are on servers
/// of different versions: the failing share is 1 - sum over versions of (share of devices)².
#[test]
fn calls_fail_between_devices_on_servers_of_different_versions_ccm_10() {
    let check = |site: &str, step: &str, expected: f64| {
        let share = failing_share_after(site, step);
        assert!(
            (share - expected).abs() < 0.005,
            "after {step}: {share:.4} of the calls fail, expected {expected:.4}"
        );
    };
    let (pri1, rest) = (2400.0, 2300.0 + 2450.0 + 2200.0);
    let split = 1.0 - ((pri1 / 9350.0f64).powi(2) + (rest / 9350.0f64).powi(2));
    // Before the primaries: every device on 3.2(3).
    check(&example("ccm4-large"), "ccm-hq/hq-sec2/reboot-server", 0.0);
    // 4 primary + 2 backup layout, every device moved to the upgraded secondaries: one version.
    // (hq-pri1's recovery starts once every primary has failed over.)
    check(
        &example("ccm4-large"),
        "ccm-hq/hq-pri1/same-server-recovery",
        0.0,
    );
    // Primaries in turn: hq-pri1's devices on 4.0(1) while the others' are on 3.2(3).
    check(
        &large_primaries_in_turn(),
        "ccm-hq/hq-pri1/device-reregistration",
        split,
    );
    // Two-server cluster: the publisher runs 4.0(1), the subscriber 3.3(4): 450 against 350.
    let two = 1.0 - ((450.0 / 800.0f64).powi(2) + (350.0 / 800.0f64).powi(2));
    check(
        &example("ccm4-two-server"),
        "ccm-branch/ccm-pub/device-reregistration",
        two,
    );
}

/// CCM-10 over whole rehearsals: keeping every device on one version (the 4 primary + 2 backup
/// layout with `devices_on_backups`) fails far fewer calls than upgrading the primaries in turn.
#[test]
fn devices_on_backups_keep_calls_working_ccm_10() {
    let on_backups = rehearse("ccm4-large");
    let in_turn = rehearse_case(
        &case_with(&large_primaries_in_turn(), None),
        &Faults::default(),
        1,
    );
    let share = |r: &Rehearsal| {
        let c = &r.impact.clusters[0];
        c.calls_failed as f64 / c.calls_attempted as f64
    };
    assert!(
        share(&in_turn) > 4.0 * share(&on_backups),
        "in turn {:.3}, on backups {:.3}",
        share(&in_turn),
        share(&on_backups)
    );
}

/// CCM-09: a secondary takes at most 5,000 devices; the devices beyond cannot register (a
/// warning: the document "strongly recommends"). With every device moved to the secondaries,
/// hq-sec1 takes hq-pri1's 2,400 and hq-pri3's devices at once when they fit; when they do not,
/// the plan moves them in turn (CCM-10 gives way), so none is refused; a primary whose own
/// devices exceed 5,000 still overfills its secondary.
#[test]
fn a_secondary_registers_at_most_5000_devices_ccm_09() {
    let check = |pri3_devices: u32, rejected: Option<u32>| {
        let site =
            example("ccm4-large").replace("devices = 2450,", &format!("devices = {pri3_devices},"));
        let r = rehearse_case(&case_with(&site, None), &Faults::default(), 1);
        let over: Vec<&Violation> = r.violations.iter().filter(|v| v.rule == "CCM-09").collect();
        match rejected {
            None => assert!(over.is_empty(), "{over:#?}"),
            Some(n) => {
                let failover = r
                    .world
                    .trace
                    .iter()
                    .filter(|e| e.action == "fail-over-to-backup")
                    .map(|e| e.start)
                    .min()
                    .unwrap();
                assert!(
                    over.iter().any(|v| v.node.as_deref() == Some("hq-sec1")
                        && v.severity == Severity::Warning
                        && v.time >= failover
                        && v.message
                            .contains(&format!(": {n} cannot register (capacity 5000)"))),
                    "{over:#?}"
                );
            }
        }
    };
    check(2450, None); // hq-sec1 carries 2,400 + 2,450 = 4,850
    check(2600, None); // exactly 5,000
    check(2700, None); // 5,100 together: in turn
    check(5200, Some(200)); // more than 5,000 alone
}

/// A 3.3(4) cluster written from CCM-09's sentences ("no more than 5,000 devices that are
/// registered to the secondary server during the upgrade"): a publisher, the secondary s-bk and
/// the primaries `primaries` (name, devices), each backed by s-bk, and a second secondary with a
/// primary of its own. `cluster_facts` are added to the cluster's facts.
fn shared_secondary(primaries: &[(&str, u32)], cluster_facts: &str) -> String {
    let node = |name: &str, role: &str, facts: &str| {
        format!(
            "\n[[cluster.node]]\nname = \"{name}\"\nrole = \"{role}\"\nversion = \"3.3(4)\"\nfacts = {{ {facts}os_version = \"2000.2.4sr4\" }}\n"
        )
    };
    let mut s = format!(
        "[site]\nname = \"plant\"\n\n[[cluster]]\nname = \"plant\"\nprofile = \"cisco-callmanager4\"\ntarget = \"4.0(1)\"\nfacts = {{ busy_hour_call_attempts = 400{cluster_facts} }}\n"
    );
    s += &node("s-pub", "publisher", "");
    s += &node("s-bk", "secondary", "devices = 0, ");
    s += &node("s-bk2", "secondary", "devices = 0, ");
    for (name, devices) in primaries {
        s += &node(
            name,
            "primary",
            &format!("devices = {devices}, backup = \"s-bk\", "),
        );
    }
    s += &node("s-other", "primary", "devices = 1500, backup = \"s-bk2\", ");
    s
}

/// The rehearsal completes: every step done, every node on its target.
fn completes(r: &Rehearsal, what: &str) {
    assert!(
        failed(&r.outcomes).is_empty(),
        "{what}: {:?}",
        failed(&r.outcomes)
    );
    for c in &r.impact.clusters {
        assert!(c.on_target, "{what}: {:?}", c.off_target);
    }
}

/// CCM-09 counted over time, rehearsed: with every device moved to the secondaries (CCM-10),
/// two primaries of one secondary whose 2,600 + 2,700 devices exceed 5,000 together fail over
/// in turn, so the secondary never holds more than 5,000 and no device is refused.
#[test]
fn a_secondary_never_holds_more_than_5000_devices_in_a_rehearsal_ccm_09() {
    let check = |p2: u32| {
        let site = shared_secondary(
            &[("s-p1", 2600), ("s-p2", p2)],
            ", devices_on_backups = true",
        );
        let r = rehearse_case(&case_with(&site, None), &Faults::default(), 1);
        completes(&r, &format!("s-p2 = {p2}"));
        let over: Vec<&Violation> = r.violations.iter().filter(|v| v.rule == "CCM-09").collect();
        assert!(over.is_empty(), "s-p2 = {p2}: {over:#?}");
        // The auditor reads CCM-10's order giving way as the planner does: nothing broken.
        assert!(
            inhibitors(&r.violations).is_empty(),
            "s-p2 = {p2}: {:#?}",
            inhibitors(&r.violations)
        );
    };
    check(2700);
    check(2400);
}

/// CCM-09 limits what a *secondary* takes during the upgrade, not a primary taking back its own
/// devices: a primary that normally serves 6,000 devices (a site's choice) gets all of them back
/// after its upgrade, the run goes on to the next primary, and only its secondary, which cannot
/// take more than 5,000 of them meanwhile, is reported.
#[test]
fn a_primary_takes_back_its_own_6000_devices_after_its_upgrade_ccm_09() {
    let check = |big: u32, refused: u32| {
        let site = shared_secondary(&[("s-big", big), ("s-next", 1000)], "");
        let r = rehearse_case(&case_with(&site, None), &Faults::default(), 1);
        completes(&r, &format!("s-big = {big}"));
        let next = r
            .world
            .trace
            .iter()
            .find(|e| e.step == "plant/s-next/install-subscriber")
            .expect("the next primary is upgraded");
        let back = r
            .world
            .trace
            .iter()
            .find(|e| e.step == "plant/s-big/device-reregistration")
            .unwrap();
        assert!(back.end <= next.start);
        let over: Vec<&Violation> = r.violations.iter().filter(|v| v.rule == "CCM-09").collect();
        assert!(
            over.iter().all(|v| v.node.as_deref() == Some("s-bk")),
            "only the secondary is oversubscribed: {over:#?}"
        );
        assert_eq!(over.is_empty(), refused == 0, "{over:#?}");
        assert!(
            over.iter()
                .all(|v| v.message.contains(&format!(": {refused} cannot register"))),
            "{over:#?}"
        );
    };
    check(6000, 1000);
    check(5000, 0);
}

/// CCM-09: the twin reports what a secondary already held when devices failing over to it are
/// refused, as a number ("holds 0", never "holds -0").
#[test]
fn a_refused_failover_says_what_the_secondary_already_held_ccm_09() {
    let check = |big: u32, expected: &str| {
        let site = shared_secondary(&[("s-big", big)], "");
        let r = rehearse_case(&case_with(&site, None), &Faults::default(), 1);
        let over: Vec<&str> = r
            .violations
            .iter()
            .filter(|v| v.rule == "CCM-09")
            .map(|v| v.message.as_str())
            .collect();
        assert!(!over.is_empty());
        assert!(over.iter().all(|m| *m == expected), "{over:#?}");
    };
    check(
        6000,
        "6000 devices of s-big fail over to s-bk, which already holds 0: 1000 cannot register (capacity 5000)",
    );
    check(
        5200,
        "5200 devices of s-big fail over to s-bk, which already holds 0: 200 cannot register (capacity 5000)",
    );
}

/// CCM-09 is a strong recommendation ("Cisco strongly recommends that you have no more than
/// 5,000 devices ..."): a warning, in `check` and in the rehearsal alike.
#[test]
fn check_and_rehearsal_report_ccm_09_as_a_warning() {
    let check = |site: &str| {
        let c = case_with(site, None);
        let planned: BTreeSet<Severity> = c
            .plan
            .findings
            .iter()
            .filter(|f| f.rule == "CCM-09" && f.key.starts_with("capacity"))
            .map(|f| f.severity)
            .collect();
        let r = rehearse_case(&c, &Faults::default(), 1);
        let rehearsed: BTreeSet<Severity> = r
            .violations
            .iter()
            .filter(|v| v.rule == "CCM-09")
            .map(|v| v.severity)
            .collect();
        assert_eq!(planned, [Severity::Warning].into());
        assert_eq!(rehearsed, [Severity::Warning].into());
    };
    check(&shared_secondary(&[("s-big", 6000)], ""));
    check(&shared_secondary(
        &[("s-big", 5300), ("s-next", 100)],
        ", devices_on_backups = true",
    ));
}

/// CCM-11: moving to a server of a version whose loads they do not have, devices fetch the
/// loads and register within 30 minutes; moving between servers of their own version, within
/// the failover time. Each move is timed from when it is first seen (every 30 s) to the arrival.
#[test]
fn reregistration_takes_up_to_30_minutes_ccm_11() {
    let check = |name: &str, strategy: Option<&str>| {
        let c = case_with(&example(name), strategy);
        let mut w = world(&c, &Faults::default(), 1);
        // (group, move) -> (first seen, arrival)
        let mut moves: BTreeMap<(usize, u64), (i64, i64)> = BTreeMap::new();
        let out = run_sampled(&mut w, &c.plan, &c.plan.steps, 30, |w| {
            for (i, d) in w.clusters[0].devices.iter().enumerate() {
                if let Some((_, arrive)) = d.moving {
                    moves.entry((i, d.gen)).or_insert((w.now, arrive));
                }
            }
        });
        assert!(failed(&out).is_empty(), "{:?}", failed(&out));
        let longest = moves
            .values()
            .map(|(seen, arrive)| arrive - seen)
            .max()
            .unwrap();
        assert!(
            longest <= 30 * 60 + 90,
            "{name} {strategy:?}: a move took {longest} s"
        );
        assert!(
            longest >= 5 * 60 - 30,
            "{name} {strategy:?}: no loads fetched ({longest} s)"
        );
    };
    for name in EXAMPLES {
        check(name, None);
        check(name, Some("one-at-a-time"));
    }
}

// ---------------------------------------------------------------------------------------------
// CCM-13: services
// ---------------------------------------------------------------------------------------------

/// CCM-13: during its upgrade a server's services are inactive; the migrated ones (call
/// processing) start after the reboot; the others stay inactive until activated by hand.
#[test]
fn services_inactive_during_the_upgrade_start_after_reboot_or_by_hand_ccm_13() {
    // (run the plan up to this step, then this many more minutes) -> (serving, services pending)
    let check = |step: &str, extra_min: i64, serving: bool, pending: bool| {
        let c = case("ccm4-two-server");
        let mut w = world(&c, &Faults::default(), 1);
        let mut steps = up_to(&c.plan, step);
        if extra_min > 0 {
            // Stop inside `step`: run what it needs, then begin it and let time pass.
            let last = steps.pop().unwrap();
            run_steps(&mut w, &c.plan, 1, &steps);
            w.begin(1, &last);
            let t = w.now + extra_min * 60;
            w.advance(Some(t));
        } else {
            run_steps(&mut w, &c.plan, 1, &steps);
        }
        let p = node(&w, "ccm-pub");
        assert_eq!(
            w.provides(0, p),
            serving,
            "{step} +{extra_min} min: serving"
        );
        assert_eq!(
            w.clusters[0].nodes[p].services_pending, pending,
            "{step} +{extra_min} min: services waiting for activation"
        );
    };
    check("ccm-branch/ccm-pub/upgrade-os", 0, true, false);
    check("ccm-branch/ccm-pub/install-publisher", 30, false, false);
    check("ccm-branch/ccm-pub/install-publisher", 0, false, true);
    check("ccm-branch/ccm-pub/reboot-server", 0, true, true);
    check("ccm-branch/ccm-pub/activate-services", 0, true, false);
}

/// CCM-13: a plan without the activation step leaves every upgraded server without its other
/// services: the auditor names each at the end of the run.
#[test]
fn services_never_activated_are_a_violation_ccm_13() {
    let mut c = case("ccm4-two-server");
    c.plan = without(&c.plan, &["activate-services"]);
    let r = rehearse_case(&c, &Faults::default(), 1);
    let left: BTreeSet<&str> = r
        .violations
        .iter()
        .filter(|v| v.rule == "CCM-13" && v.severity == Severity::Inhibitor)
        .filter_map(|v| v.node.as_deref())
        .collect();
    assert_eq!(left, ["ccm-pub", "ccm-sub"].into(), "{:#?}", r.violations);
}

// ---------------------------------------------------------------------------------------------
// CCM-20, CCM-23: what the upgrade changes in the database
// ---------------------------------------------------------------------------------------------

/// CCM-20: the publisher's install migrates the service parameters the way the planner's
/// findings announce them (same changes, same texts), and the values change in the twin.
#[test]
fn service_parameters_migrate_as_the_planner_reports_ccm_20() {
    let check = |param: &str, new_value: Option<&str>| {
        let site = two_server_with(&format!("service_parameters = [{param}],"));
        let c = case_with(&site, None);
        let r = rehearse_case(&c, &Faults::default(), 1);
        let planned: Vec<&str> = c
            .plan
            .findings
            .iter()
            .filter(|f| f.rule == "CCM-20")
            .map(|f| f.message.as_str())
            .collect();
        let twin: Vec<&str> = r
            .world
            .parameter_changes
            .iter()
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(
            planned.len(),
            twin.len(),
            "planner {planned:?}, twin {twin:?}"
        );
        for (p, t) in planned.iter().zip(&twin) {
            assert!(p.ends_with(t), "planner `{p}`, twin `{t}`");
        }
        assert!(r
            .world
            .parameter_changes
            .iter()
            .all(|(n, _)| n == "ccm-pub"));
        let value = r.world.clusters[0].facts["service_parameters"]
            .as_list()
            .unwrap()[0]
            .as_table()
            .unwrap()["value"]
            .to_string();
        let before = r.world.site.clusters[0].facts["service_parameters"]
            .as_list()
            .unwrap()[0]
            .as_table()
            .unwrap()["value"]
            .to_string();
        assert_eq!(value, new_value.map_or(before, str::to_string), "{param}");
    };
    // Custom value above the maximum: clamped (the document's example, max 10, value 12).
    check("{ name = \"Max Cdr Records\", value = 12, min = 1, max = 10, suggested = 5, new_suggested = 5 }", Some("10"));
    check(
        "{ name = \"Timer\", value = 2, min = 5, max = 60, suggested = 30, new_suggested = 30 }",
        Some("5"),
    );
    // At the suggested value: follows the new suggested value.
    check("{ name = \"H225 TCP Timer\", value = 30, min = 5, max = 60, suggested = 30, new_suggested = 25 }", Some("25"));
    // Not numeric: the new suggested value.
    check("{ name = \"Digit Analysis Complexity\", value = \"TranslationAndAlternatePatternAnalysis\", suggested = 0, new_suggested = 0 }", Some("0"));
    check("{ name = \"CDR Enabled Flag\", value = \"False\", suggested = \"False\", new_suggested = \"True\" }", Some("True"));
    // Custom within [min, max]: kept.
    check("{ name = \"Status Enquiry Poll Flag\", value = 15, min = 0, max = 60, suggested = 30, new_suggested = 30 }", None);
}

/// CCM-23: the publisher's install renames the database (CCM0300 to CCM0301); third-party CDR
/// triggers naming the old one are broken from then until they are re-pointed.
#[test]
fn database_name_increments_and_cdr_triggers_break_until_repointed_ccm_23() {
    let check = |cdr: bool, repoint: bool, broken_until: Option<&str>| {
        let c0 = case_with(&two_server_with(&format!("third_party_cdr = {cdr},")), None);
        let mut c = c0;
        if !repoint {
            c.plan = without(&c.plan, &["repoint-cdr-triggers"]);
        }
        let r = rehearse_case(&c, &Faults::default(), 1);
        assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
        assert_eq!(r.world.clusters[0].facts["db_name"].to_string(), "CCM0301");
        let broken = r.impact.clusters[0]
            .dependency_minutes_broken
            .get("third-party CDR triggers")
            .copied()
            .unwrap_or(0.0);
        let end_of = |step: &str| r.world.trace.iter().find(|e| e.step == step).unwrap().end;
        let renamed = end_of("ccm-branch/ccm-pub/install-publisher");
        match broken_until {
            None => assert_eq!(broken, 0.0),
            Some(step) => {
                let until = if step == "end" {
                    r.world.now
                } else {
                    end_of(step)
                };
                let expected = (until - renamed) as f64 / 60.0;
                assert!(
                    (broken - expected).abs() < 0.2,
                    "{broken} min broken, expected {expected}"
                );
            }
        }
    };
    check(true, true, Some("ccm-branch/repoint-cdr-triggers"));
    check(true, false, Some("end"));
    check(false, true, None);
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// One-at-a-time upgrades each primary on its own while the others keep their devices on the
/// old version: devices split over two versions for longer and more calls fail (CCM-10), and
/// the cluster needs a longer window (CCM-12); `fastest` moves every device to the upgraded
/// secondaries at once.
#[test]
fn one_at_a_time_splits_devices_over_versions_longer_and_fails_more_calls_than_fastest_ccm_10() {
    let check = |name: &str| {
        let fast = rehearse_case(&case_with(&example(name), None), &Faults::default(), 1);
        let one = rehearse_case(
            &case_with(&example(name), Some("one-at-a-time")),
            &Faults::default(),
            1,
        );
        let (f, o) = (&fast.impact.clusters[0], &one.impact.clusters[0]);
        assert!(one.impact.window_s > fast.impact.window_s, "{name}: window");
        assert!(
            o.mixed_version_minutes > f.mixed_version_minutes,
            "{name}: mixed versions"
        );
        let share =
            |c: &ferry_twin::ClusterImpact| c.calls_failed as f64 / c.calls_attempted as f64;
        assert!(
            share(o) > share(f),
            "{name}: failed calls {} vs {}",
            share(o),
            share(f)
        );
        assert!(failed(&fast.outcomes).is_empty() && failed(&one.outcomes).is_empty());
    };
    for name in EXAMPLES {
        check(name);
    }
}

// ---------------------------------------------------------------------------------------------
// Faults and rollback
// ---------------------------------------------------------------------------------------------

/// A fault stops the upgrade at `step`; the rollback then puts every server back on the
/// version it ran, without any violation of inhibitor severity in the rollback run.
fn check_rollback(name: &str, fault: &str) {
    let c = case(name);
    let mut r = rehearse_case(&c, &faults(fault), 1);
    assert!(
        !failed(&r.outcomes).is_empty(),
        "{name}: the fault stops the run"
    );
    assert!(!r.impact.clusters[0].on_target, "{name}: stopped midway");
    let from = r.world.now;
    let out = roll_back(&c, &mut r);
    assert!(failed(&out).is_empty(), "{name}: {:?}", failed(&out));
    assert!(
        r.impact.clusters[0].on_target,
        "{name}: {:?}",
        r.impact.clusters[0].off_target
    );
    let late: Vec<&Violation> = inhibitors(&r.violations)
        .into_iter()
        .filter(|v| v.time >= from)
        .collect();
    assert!(late.is_empty(), "{name}: {late:#?}");
    let w = &r.world;
    for n in &w.clusters[0].nodes {
        let i = node(w, &n.name);
        assert!(
            w.provides(0, i) || n.crashed,
            "{name}: {} does not serve",
            n.name
        );
        assert!(!n.services_pending, "{name}: {}", n.name);
    }
}

#[test]
fn rollback_after_a_fault_puts_every_server_back_on_its_version() {
    check_rollback(
        "ccm4-large",
        "[[fault]]\nkind = \"install_failure\"\nstep = \"ccm-hq/hq-sec1/install-subscriber\"\n",
    );
    check_rollback(
        "ccm4-large",
        "[[fault]]\nkind = \"crash\"\nstep = \"ccm-hq/hq-pri2/install-subscriber\"\nrecover_min = 20\n",
    );
    check_rollback(
        "ccm4-two-server",
        "[[fault]]\nkind = \"install_failure\"\nstep = \"ccm-branch/ccm-sub/install-subscriber\"\n",
    );
    check_rollback(
        "ccm4-from-30",
        "[[fault]]\nkind = \"crash\"\nstep = \"ccm-region/rg-pri1/upgrade-to-3.2@3.2(3)\"\nrecover_min = 10\n",
    );
}

/// CCM-16, from the document: "Performing configuration tasks during the upgrade causes an
/// upgrade failure." A cluster of publisher, secondary and primary on 3.3(4); an operator
/// changes the configuration when step `at` starts. `fails`: the step whose upgrade fails then
/// (the run stops there, the failure policy being `stop`), or `None` when the change touches
/// no server's upgrade and the run completes on target.
fn check_config_change_during_upgrade(at: &str, fails: Option<(&str, &str)>) {
    let site = r#"
[site]
name = "change-during-upgrade"

[[cluster]]
name = "ccm"
profile = "cisco-callmanager4"
target = "4.0(1)"
facts = { busy_hour_call_attempts = 200 }

[[cluster.node]]
name = "pub"
role = "publisher"
version = "3.3(4)"
facts = { os_version = "2000.2.5sr2", terminal_services = false }

[[cluster.node]]
name = "sec"
role = "secondary"
version = "3.3(4)"
facts = { devices = 0, os_version = "2000.2.5sr2", terminal_services = false }

[[cluster.node]]
name = "pri"
role = "primary"
version = "3.3(4)"
facts = { devices = 600, backup = "sec", os_version = "2000.2.5sr2", terminal_services = false }
"#;
    let c = case_with(site, None);
    let r = rehearse_case(
        &c,
        &faults(&format!(
            "[[fault]]\nkind = \"config_change\"\nstep = \"{at}\"\n"
        )),
        1,
    );
    let ci = &r.impact.clusters[0];
    assert_eq!(ci.config_changes_made, 1, "{at}");
    // The freeze is broken either way.
    assert!(
        r.violations.iter().any(|v| v.rule == "CCM-16"),
        "{at}: {:#?}",
        r.violations
    );
    match fails {
        Some((step, node)) => {
            let failed = failed(&r.outcomes);
            assert_eq!(failed.len(), 1, "{at}: {failed:?}");
            assert_eq!(failed[0].0, step, "{at}");
            let Outcome::Failed(reason) = failed[0].1 else {
                unreachable!()
            };
            assert!(
                reason.starts_with("CCM-16:") && reason.contains(node),
                "{at}: {reason}"
            );
            assert!(
                !ci.on_target,
                "{at}: the failed upgrade leaves {node} behind"
            );
            assert!(
                ci.off_target.iter().any(|o| o.contains(node)),
                "{at}: {:?}",
                ci.off_target
            );
            // The failed install applied nothing: the server still runs its old version.
            let n = &r.world.clusters[0].nodes[self::node(&r.world, node)];
            assert_eq!(n.active.to_string(), "3.3(4)", "{at}");
        }
        None => {
            assert!(
                failed(&r.outcomes).is_empty(),
                "{at}: {:?}",
                failed(&r.outcomes)
            );
            assert!(ci.on_target, "{at}: {:?}", ci.off_target);
        }
    }
}

#[test]
fn a_configuration_change_during_a_servers_upgrade_makes_it_fail_ccm_16() {
    // During the CallManager upgrade of the secondary, of the primary, of the publisher.
    check_config_change_during_upgrade(
        "ccm/sec/install-subscriber",
        Some(("ccm/sec/install-subscriber", "sec")),
    );
    check_config_change_during_upgrade(
        "ccm/pri/install-subscriber",
        Some(("ccm/pri/install-subscriber", "pri")),
    );
    check_config_change_during_upgrade(
        "ccm/pub/install-publisher",
        Some(("ccm/pub/install-publisher", "pub")),
    );
    // Outside every server's upgrade (the services activated by hand afterwards): the freeze
    // is broken, but no upgrade fails.
    check_config_change_during_upgrade("ccm/pri/activate-services", None);
}

/// Faults the document warns about, and what they do.
#[test]
fn faults_show_the_impact_the_document_warns_about() {
    // CCM-16: a configuration change during the upgrade (which makes it fail): an incident.
    let r = rehearse_case(
        &case("ccm4-two-server"),
        &faults("[[fault]]\nkind = \"config_change\"\nstep = \"ccm-branch/ccm-sub/install-subscriber\"\n"),
        1,
    );
    let start = r
        .world
        .trace
        .iter()
        .find(|e| e.step == "ccm-branch/ccm-sub/install-subscriber")
        .unwrap()
        .start;
    assert!(
        r.violations
            .iter()
            .any(|v| v.rule == "CCM-16" && v.time == start),
        "{:#?}",
        r.violations
    );

    // CCM-06, CCM-07: the subscriber of a two-server cluster crashes for two hours while the
    // publisher upgrades: failover will not occur, none of the 800 devices can register.
    let unreg = |r: &Rehearsal| r.impact.clusters[0].device_minutes_unregistered["devices"];
    let base = rehearse("ccm4-two-server");
    let r = rehearse_case(
        &case("ccm4-two-server"),
        &faults(
            "[[fault]]\nkind = \"crash\"\nnode = \"ccm-sub\"\nat_min = 160\nrecover_min = 120\n",
        ),
        1,
    );
    let install = r
        .world
        .trace
        .iter()
        .find(|e| e.step == "ccm-branch/ccm-pub/install-publisher")
        .unwrap();
    let crash = r.world.start + 160 * 60;
    assert!(
        install.start < crash && install.end > crash + 7200,
        "{install:?}"
    );
    assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
    assert!(
        unreg(&r) >= unreg(&base) + 800.0 * 100.0,
        "{} vs {}",
        unreg(&r),
        unreg(&base)
    );
    assert!(r.impact.clusters[0].calls_failed > 2 * base.impact.clusters[0].calls_failed);

    // CCM-06, CCM-09: a secondary carrying its primaries' devices crashes: the 4,850 devices of
    // hq-pri1 and hq-pri3 are unregistered until their primaries are back.
    let base = rehearse("ccm4-large");
    let r = rehearse_case(
        &case("ccm4-large"),
        &faults("[[fault]]\nkind = \"crash\"\nnode = \"hq-sec1\"\nat_min = 700\n"),
        1,
    );
    let stopped = r
        .world
        .trace
        .iter()
        .find(|e| e.step == "ccm-hq/hq-pri1/fail-over-to-backup")
        .unwrap()
        .end;
    assert!(stopped < r.world.start + 700 * 60);
    assert!(
        unreg(&r) > unreg(&base) + 4850.0 * 120.0,
        "{} vs {}",
        unreg(&r),
        unreg(&base)
    );
    assert!(r.impact.clusters[0].calls_failed > 5 * base.impact.clusters[0].calls_failed);

    // CCM-05: the publisher's install fails: the run stops with every server on 3.2(3), and no
    // subscriber has started its install.
    let r = rehearse_case(
        &case("ccm4-large"),
        &faults(
            "[[fault]]\nkind = \"install_failure\"\nstep = \"ccm-hq/hq-pub/install-publisher\"\n",
        ),
        1,
    );
    assert!(r
        .world
        .trace
        .iter()
        .all(|e| e.action != "install-subscriber"));
    assert!(r.world.clusters[0]
        .nodes
        .iter()
        .all(|n| n.active == n.original));
}
