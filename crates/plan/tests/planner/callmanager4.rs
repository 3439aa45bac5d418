//! Rules of the `cisco-callmanager4` profile (CCM-*): CallManager clusters upgraded to 4.0(1).

use super::common::*;
use ferry_model::{Impact, Plan, PlannedStep, Severity, StepKind};

/// The large example moved to 3.3(4) on OS 2000.2.4sr5: the in-place OS upgrade path.
fn large_from_33() -> String {
    example("ccm4-large")
        .replace("version = \"3.2(3)\"", "version = \"3.3(4)\"")
        .replace("os_version = \"2000.2.3\"", "os_version = \"2000.2.4sr5\"")
}

/// The large example without moving every device to the secondaries: primaries one at a time.
fn large_primaries_in_turn() -> String {
    example("ccm4-large").replace("devices_on_backups = true, ", "")
}

/// The two-server example on 3.2(3): both servers rebuilt by Same Server Recovery.
fn two_server_from_32() -> String {
    example("ccm4-two-server")
        .replace("version = \"3.3(4)\"", "version = \"3.2(3)\"")
        .replace("2000.2.4sr4", "2000.2.3")
}

/// Whether the plan has an ordering edge `from -> to` labelled with `rule`.
fn has_edge(p: &Plan, from: &str, to: &str, rule: &str) -> bool {
    p.edges
        .iter()
        .any(|e| e.from == from && e.to == to && e.rule == rule)
}

fn overlaps(a: &PlannedStep, b: &PlannedStep) -> bool {
    a.start_s < b.end_s() && b.start_s < a.end_s()
}

/// Steps of a node during which its service is down.
fn down_steps<'a>(p: &'a Plan, node: &str) -> Vec<&'a PlannedStep> {
    p.steps
        .iter()
        .filter(|s| s.node.as_deref() == Some(node) && s.impact == Impact::Down)
        .collect()
}

/// The one step of an action on a node.
fn on<'a>(p: &'a Plan, node: &str, action: &str) -> &'a PlannedStep {
    let cluster = &p
        .steps
        .iter()
        .find(|s| s.node.as_deref() == Some(node))
        .unwrap_or_else(|| panic!("no steps on {node}"))
        .cluster;
    step(p, &format!("{cluster}/{node}/{action}"))
}

/// Steps of any of these actions.
fn steps_of_any<'a>(p: &'a Plan, actions: &[&str]) -> Vec<&'a PlannedStep> {
    p.steps
        .iter()
        .filter(|s| actions.contains(&s.action.as_str()))
        .collect()
}

const CALLMANAGER_PORTION: [&str; 4] = [
    "install-publisher",
    "install-subscriber",
    "upgrade-application",
    "upgrade-to-3.2",
];

// ---------------------------------------------------------------------------------------------
// CCM-01, CCM-03: versions, hops and the OS path
// ---------------------------------------------------------------------------------------------

#[test]
fn direct_upgrade_from_32_and_33_ccm_01() {
    let large = plan(&example("ccm4-large"));
    assert_eq!(large.clusters[0].path, vec!["3.2(3)", "4.0(1)"]);
    let two = plan(&example("ccm4-two-server"));
    assert_eq!(two.clusters[0].path, vec!["3.3(4)", "4.0(1)"]);
    for e in ["ccm4-large", "ccm4-two-server", "ccm4-from-30"] {
        assert!(
            findings_of(&findings(&example(e)), "CCM-01").is_empty(),
            "{e}: a supported source must not be flagged (CCM-01)"
        );
    }
}

#[test]
fn a_30_cluster_goes_through_32_first_ccm_01() {
    let p = plan(&example("ccm4-from-30"));
    let c = &p.clusters[0];
    assert_eq!(c.path, vec!["3.0(9)", "3.2(3)", "4.0(1)"], "CCM-01 hop");
    assert_eq!(c.upgrade_type, "to-3.2 then from-3.2");
    // Every server reaches 3.2(3) before any server starts on 4.0(1).
    let window = |s: &&PlannedStep| s.phase == ferry_model::Phase::Window;
    let leg1: Vec<&PlannedStep> = p
        .steps
        .iter()
        .filter(window)
        .filter(|s| s.id.ends_with("@3.2(3)"))
        .collect();
    let leg2: Vec<&PlannedStep> = p
        .steps
        .iter()
        .filter(window)
        .filter(|s| !s.id.contains('@'))
        .collect();
    assert_eq!(
        leg1.iter().filter(|s| s.action == "upgrade-to-3.2").count(),
        4,
        "every server upgrades to 3.2(3) (CCM-01)"
    );
    assert_all_before(&leg1, &leg2);
    assert!(
        leg2.iter().any(|s| s.rules.contains(&"CCM-01".to_string())
            && s.after.iter().any(|a| a.ends_with("@3.2(3)"))),
        "the 4.0(1) leg waits for the 3.2(3) leg under CCM-01"
    );
    // The freeze is announced once, in the first leg.
    assert!(p
        .steps
        .iter()
        .all(|s| s.id != "ccm-region/freeze-configuration"));
    step(&p, "ccm-region/freeze-configuration@3.2(3)");
}

#[test]
fn unsupported_source_version_is_an_inhibitor_ccm_01() {
    let f = findings(&example("ccm4-inhibitors"));
    let path: Vec<_> = findings_of(&f, "CCM-01");
    let nodes: Vec<_> = path.iter().filter_map(|x| x.node.as_deref()).collect();
    assert_eq!(nodes, vec!["west-pub", "west-sub"], "{path:?}");
    assert!(path.iter().all(|x| x.severity == Severity::Inhibitor));
    assert!(path[0].message.contains("3.1(2)"));
}

#[test]
fn from_32_same_server_recovery_then_os_upgrade_ccm_03() {
    let p = plan(&example("ccm4-large"));
    assert_eq!(p.clusters[0].upgrade_type, "from-3.2");
    assert_eq!(p.clusters[0].upgrade_type_rule, "CCM-03");
    for node in ["hq-pub", "hq-tftp", "hq-sec1", "hq-pri1"] {
        let ssr = on(&p, node, "same-server-recovery");
        let os = on(&p, node, "upgrade-os-after-recovery");
        let install = p
            .steps
            .iter()
            .find(|s| {
                s.node.as_deref() == Some(node)
                    && (s.action == "install-publisher" || s.action == "install-subscriber")
            })
            .unwrap();
        assert!(ssr.rules.contains(&"CCM-03".to_string()));
        assert!(ssr.instructions.contains("Hardware Detection Disk"));
        assert!(
            ssr.end_s() <= os.start_s && os.end_s() <= install.start_s,
            "{node}: recovery, OS upgrade, CallManager (CCM-03)"
        );
        assert_eq!(ssr.impact, Impact::Down);
    }
    assert!(
        steps_of(&p, "upgrade-os", None).is_empty(),
        "no in-place OS upgrade from 3.2 (CCM-03)"
    );
    // Application servers follow their own documentation.
    assert!(!node_actions(&p, "hq-cer").contains(&"same-server-recovery".to_string()));
}

#[test]
fn from_33_in_place_os_upgrade_before_callmanager_ccm_03() {
    let p = plan(&example("ccm4-two-server"));
    assert_eq!(p.clusters[0].upgrade_type, "from-3.3");
    assert!(steps_of(&p, "same-server-recovery", None).is_empty());
    let os = on(&p, "ccm-pub", "upgrade-os");
    assert!(os.rules.contains(&"CCM-03".to_string()));
    assert!(os.instructions.contains("2000.2.5sr2"));
    assert!(os.end_s() <= on(&p, "ccm-pub", "install-publisher").start_s);
    assert!(
        on(&p, "ccm-sub", "upgrade-os").end_s() <= on(&p, "ccm-sub", "install-subscriber").start_s
    );
    // A server already on 2000.2.5sr2 needs no OS step.
    let done = example("ccm4-two-server").replacen(
        "os_version = \"2000.2.4sr4\"",
        "os_version = \"2000.2.5sr2\"",
        1,
    );
    let p = plan(&done);
    assert!(!node_actions(&p, "ccm-pub").contains(&"upgrade-os".to_string()));
    assert!(node_actions(&p, "ccm-sub").contains(&"upgrade-os".to_string()));
}

#[test]
fn os_too_old_for_the_upgrade_cd_is_an_inhibitor_ccm_03() {
    let f = findings(&example("ccm4-inhibitors"));
    let os: Vec<_> = findings_of(&f, "CCM-03");
    assert_eq!(os.len(), 1, "{os:?}");
    assert_eq!(os[0].severity, Severity::Inhibitor);
    assert_eq!(os[0].node.as_deref(), Some("east-tftp"));
    assert!(os[0].message.contains("2000.2.2") && os[0].message.contains("2000.2.3"));
    // An unknown OS version is a warning, and the plan then includes the OS steps.
    let unknown = example("ccm4-two-server").replacen("os_version = \"2000.2.4sr4\", ", "", 1);
    let f = findings(&unknown);
    let w = findings_of(&f, "CCM-03");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].severity, Severity::Warning);
    assert!(node_actions(&plan(&unknown), "ccm-pub").contains(&"upgrade-os".to_string()));
}

// ---------------------------------------------------------------------------------------------
// CCM-02, CCM-04: preparation
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_service_releases_are_a_warning_ccm_02() {
    let f = findings(&example("ccm4-inhibitors"));
    let sr = findings_of(&f, "CCM-02");
    assert_eq!(sr.len(), 1, "{sr:?}");
    assert_eq!(sr[0].severity, Severity::Warning);
    assert_eq!(sr[0].node.as_deref(), Some("east-pub"));
    assert!(sr[0].remedy.contains("SQL service releases"));
    assert!(findings_of(&findings(&example("ccm4-large")), "CCM-02").is_empty());
}

#[test]
fn disks_are_laid_out_before_any_server_is_touched_ccm_04() {
    let p = plan(&example("ccm4-large"));
    let kit = step(&p, "ccm-hq/gather-kit-disks");
    assert!(kit.rules.contains(&"CCM-04".to_string()));
    for disk in [
        "Hardware Detection Disk",
        "Installation and Recovery Disk",
        "server-specific operating system disk",
        "OS/BIOS Upgrade Disk",
        "Backup Utility Disk",
        "Subscriber Preparation Disk",
        "Disks 1 and 2",
    ] {
        assert!(
            kit.instructions.contains(disk),
            "kit list names {disk} (CCM-04)"
        );
    }
    let node_steps: Vec<&PlannedStep> = p.steps.iter().filter(|s| s.node.is_some()).collect();
    assert_all_before(&[kit], &node_steps);
    // From 3.3 there are no kit OS disks to gather.
    let p33 = plan(&example("ccm4-two-server"));
    assert!(!step(&p33, "ccm-branch/gather-disks")
        .instructions
        .contains("Hardware Detection"));
    // The Backup Utility disk starts the publisher's upgrade, ServPrep every subscriber's.
    let backup = on(&p, "hq-pub", "backup-publisher");
    assert!(backup.rules.contains(&"CCM-04".to_string()));
    assert!(backup.end_s() <= on(&p, "hq-pub", "same-server-recovery").start_s);
    for node in ["hq-tftp", "hq-moh", "hq-sec1", "hq-pri4"] {
        let prep = on(&p, node, "prepare-subscriber");
        assert!(prep.instructions.contains("Subscriber Preparation Disk"));
        assert!(prep.end_s() <= on(&p, node, "same-server-recovery").start_s);
    }
}

// ---------------------------------------------------------------------------------------------
// CCM-05, CCM-07, CCM-08: the server order
// ---------------------------------------------------------------------------------------------

#[test]
fn callmanager_portion_runs_on_one_server_at_a_time_ccm_05() {
    for e in ["ccm4-large", "ccm4-two-server", "ccm4-from-30"] {
        let p = plan(&example(e));
        assert_one_at_a_time(&steps_of_any(&p, &CALLMANAGER_PORTION));
        assert!(
            p.limits
                .iter()
                .any(|l| l.rule == "CCM-05" && l.max_concurrent == Some(1)),
            "{e}: the CallManager portion is limited to one server at a time (CCM-05)"
        );
    }
    let p = plan(&example("ccm4-large"));
    // The publisher is upgraded and rebooted before any subscriber starts; the edges say why.
    let pub_reboot = on(&p, "hq-pub", "reboot-server");
    let subs = steps_of(&p, "install-subscriber", None);
    assert_eq!(subs.len(), 8);
    assert_all_before(&[pub_reboot], &subs);
    for s in &subs {
        assert!(
            has_edge(&p, &pub_reboot.id, &s.id, "CCM-05"),
            "{} after the publisher (CCM-05)",
            s.id
        );
    }
    // Each server finishes and reboots before the next starts.
    let order = [
        "hq-pub", "hq-tftp", "hq-moh", "hq-sec1", "hq-sec2", "hq-pri1", "hq-pri2", "hq-pri3",
        "hq-pri4", "hq-cer", "hq-ccc",
    ];
    for w in order.windows(2) {
        let reboot = on(&p, w[0], "reboot-server");
        let next = p
            .steps
            .iter()
            .find(|s| {
                s.node.as_deref() == Some(w[1]) && CALLMANAGER_PORTION.contains(&s.action.as_str())
            })
            .unwrap();
        assert!(
            reboot.end_s() <= next.start_s,
            "{} rebooted before {} starts (CCM-05)",
            w[0],
            w[1]
        );
    }
}

#[test]
fn one_at_a_time_strategy_upgrades_whole_servers_in_turn_ccm_05() {
    let fast = plan(&example("ccm4-large"));
    let slow = plan_with(&example("ccm4-large"), Some("one-at-a-time"));
    assert_some_overlap(&steps_of(&fast, "same-server-recovery", None));
    assert_one_at_a_time(&steps_of(&slow, "same-server-recovery", None));
    // Every server's whole upgrade ends before the next server's first step.
    let pub_last = on(&slow, "hq-pub", "reboot-server");
    let tftp_first = on(&slow, "hq-tftp", "disable-remote-access");
    assert!(pub_last.end_s() <= tftp_first.start_s);
    assert!(has_edge(&slow, &pub_last.id, &tftp_first.id, "CCM-05"));
    assert!(slow.makespan_s > fast.makespan_s);
}

#[test]
fn every_server_must_be_functional_ccm_06() {
    let f = findings(&example("ccm4-inhibitors"));
    let bad = findings_of(&f, "CCM-06");
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].severity, Severity::Inhibitor);
    assert_eq!(bad[0].node.as_deref(), Some("east-sec"));
    assert!(bad[0].message.contains("failover will not occur"));
    // And the window opens with the check that every server runs.
    let p = plan(&example("ccm4-large"));
    let gate = step(&p, "ccm-hq/verify-cluster");
    assert_eq!(gate.kind, StepKind::Gate);
    assert!(gate.rules.contains(&"CCM-06".to_string()));
    let node_steps: Vec<&PlannedStep> = p.steps.iter().filter(|s| s.node.is_some()).collect();
    assert_all_before(&[gate], &node_steps);
}

#[test]
fn a_primary_is_never_down_while_its_secondary_is_down_ccm_06() {
    for site in [
        example("ccm4-large"),
        large_from_33(),
        large_primaries_in_turn(),
    ] {
        let p = plan(&site);
        for (pri, sec) in [
            ("hq-pri1", "hq-sec1"),
            ("hq-pri2", "hq-sec2"),
            ("hq-pri3", "hq-sec1"),
            ("hq-pri4", "hq-sec2"),
        ] {
            for a in down_steps(&p, pri) {
                for b in down_steps(&p, sec) {
                    assert!(!overlaps(a, b), "{} overlaps {} (CCM-06)", a.id, b.id);
                }
            }
        }
    }
    // From 3.3 the secondaries reboot and upgrade their OS first; the edge names CCM-06.
    let p = plan(&large_from_33());
    assert!(has_edge(
        &p,
        "ccm-hq/hq-sec1/upgrade-os",
        "ccm-hq/hq-pri1/disable-remote-access",
        "CCM-06"
    ));
    // From 3.2 the primaries reboot before the secondaries are rebuilt.
    let p = plan(&example("ccm4-large"));
    assert!(has_edge(
        &p,
        "ccm-hq/hq-pri1/disable-remote-access",
        "ccm-hq/hq-sec1/disable-remote-access",
        "CCM-06"
    ));
    // From 3.2 a primary is rebuilt only once every secondary runs 4.0(1) (CCM-08).
    let p = plan(&large_primaries_in_turn());
    assert_all_before(
        &steps_of(&p, "reboot-server", Some("secondary")),
        &steps_of(&p, "same-server-recovery", Some("primary")),
    );
    assert!(has_edge(
        &p,
        "ccm-hq/hq-sec2/reboot-server",
        "ccm-hq/hq-pri1/same-server-recovery",
        "CCM-08"
    ));
}

#[test]
fn two_server_cluster_publisher_then_subscriber_ccm_07() {
    let p = plan(&example("ccm4-two-server"));
    let pub_done = on(&p, "ccm-pub", "device-reregistration");
    let sub_install = on(&p, "ccm-sub", "install-subscriber");
    assert!(pub_done.end_s() <= sub_install.start_s);
    assert!(has_edge(&p, &pub_done.id, &sub_install.id, "CCM-07"));
    // The publisher's devices fail over to the subscriber: never both down at once, from 3.3
    // (in-place OS upgrades) or from 3.2 (both servers rebuilt).
    for q in [&p, &plan(&two_server_from_32())] {
        for a in down_steps(q, "ccm-pub") {
            for b in down_steps(q, "ccm-sub") {
                assert!(!overlaps(a, b), "{} overlaps {} (CCM-07)", a.id, b.id);
            }
        }
    }
    let p32 = plan(&two_server_from_32());
    assert!(has_edge(
        &p32,
        "ccm-branch/ccm-pub/device-reregistration",
        "ccm-branch/ccm-sub/same-server-recovery",
        "CCM-07"
    ));
    assert!(has_edge(
        &p,
        "ccm-branch/ccm-sub/upgrade-os",
        "ccm-branch/ccm-pub/upgrade-os",
        "CCM-07"
    ));
    let install = on(&p, "ccm-pub", "install-publisher");
    assert!(install.rules.contains(&"CCM-07".to_string()));
    assert!(install.impact_note.contains("fail over to the subscriber"));
    // The publisher runs CallManager: its devices re-register too.
    assert!(node_actions(&p, "ccm-pub").contains(&"device-reregistration".to_string()));
    // The subscriber role belongs to the two-server layout only.
    let mixed = example("ccm4-two-server").replace(
        "[[cluster.node]]\nname = \"ccm-sub\"",
        "[[cluster.node]]\nname = \"ccm-tftp\"\nrole = \"tftp\"\nversion = \"3.3(4)\"\nfacts = { os_version = \"2000.2.4sr4\" }\n\n[[cluster.node]]\nname = \"ccm-sub\"",
    );
    let f = findings(&mixed);
    assert_eq!(findings_of(&f, "CCM-07").len(), 1, "{f:?}");
}

#[test]
fn documented_server_order_ccm_08() {
    let p = plan(&example("ccm4-large"));
    let mut installs = steps_of_any(&p, &CALLMANAGER_PORTION);
    installs.sort_by_key(|s| s.start_s);
    let nodes: Vec<&str> = installs
        .iter()
        .map(|s| s.node.as_deref().unwrap())
        .collect();
    assert_eq!(
        nodes,
        vec![
            "hq-pub", "hq-tftp", "hq-moh", "hq-sec1", "hq-sec2", "hq-pri1", "hq-pri2", "hq-pri3",
            "hq-pri4", "hq-cer", "hq-ccc"
        ],
        "publisher, TFTP, service-only, secondaries, primaries, applications (CCM-08)"
    );
    assert!(has_edge(
        &p,
        "ccm-hq/hq-moh/verify-service-only",
        "ccm-hq/hq-sec1/install-subscriber",
        "CCM-08"
    ));
    assert!(has_edge(
        &p,
        "ccm-hq/hq-pri4/device-reregistration",
        "ccm-hq/hq-cer/upgrade-application",
        "CCM-08"
    ));
    // Service-only servers: the CallManager service must not run there.
    assert!(on(&p, "hq-moh", "verify-service-only")
        .rules
        .contains(&"CCM-08".to_string()));
    let misrole = example("ccm4-large").replacen(
        "server_model = \"MCS-7835H-3.0\", terminal_services = true }\n\n[[cluster.node]]\nname = \"hq-sec1\"",
        "server_model = \"MCS-7835H-3.0\", terminal_services = true, runs_callmanager = true }\n\n[[cluster.node]]\nname = \"hq-sec1\"",
        1,
    );
    let f = findings(&misrole);
    let w = findings_of(&f, "CCM-08");
    assert_eq!(w.len(), 1, "{f:?}");
    assert_eq!(w[0].node.as_deref(), Some("hq-moh"));
}

// ---------------------------------------------------------------------------------------------
// CCM-09, CCM-10, CCM-11: devices while servers are down
// ---------------------------------------------------------------------------------------------

#[test]
fn secondary_carries_at_most_5000_devices_ccm_09() {
    // From 3.3 the primaries upgrade their OS in parallel: pri1 and pri3 share hq-sec1.
    let p = plan(&large_from_33());
    let os = |p: &Plan, n: &str| on(p, n, "upgrade-os").clone();
    assert!(
        overlaps(&os(&p, "hq-pri1"), &os(&p, "hq-pri3")),
        "4,850 devices fit on hq-sec1"
    );
    let heavy = large_from_33().replace("devices = 2450", "devices = 2700");
    let p = plan(&heavy);
    assert!(
        !overlaps(&os(&p, "hq-pri1"), &os(&p, "hq-pri3")),
        "2,400 + 2,700 devices would exceed 5,000 on hq-sec1 (CCM-09)"
    );
    assert!(
        overlaps(&os(&p, "hq-pri2"), &os(&p, "hq-pri4")),
        "hq-sec2 still takes both"
    );
    assert!(p
        .limits
        .iter()
        .any(|l| l.rule == "CCM-09" && l.capacity == Some(5000.0)));
    // One primary alone over the limit: a warning.
    let f = findings(&example("ccm4-large").replace("devices = 2400", "devices = 5200"));
    let over: Vec<_> = findings_of(&f, "CCM-09")
        .into_iter()
        .filter(|x| x.key.starts_with("capacity/"))
        .collect();
    assert!(
        !over.is_empty() && over.iter().all(|x| x.severity == Severity::Warning),
        "{f:?}"
    );
    assert!(over.iter().all(|x| x.node.as_deref() == Some("hq-pri1")));
    assert!(over[0].message.contains("5200"));
    // A primary without a named secondary cannot be checked.
    let f = findings(&example("ccm4-large").replace("backup = \"hq-sec1\", ", ""));
    let unnamed: Vec<_> = findings_of(&f, "CCM-09")
        .into_iter()
        .filter(|x| x.key.starts_with("primary-without-backup/"))
        .collect();
    assert_eq!(unnamed.len(), 2, "{unnamed:?}");
    assert!(unnamed
        .iter()
        .all(|x| x.message.contains("names no secondary")));
    // Off-peak: under 1,000 busy hour call attempts.
    let busy = findings_of(&findings(&example("ccm4-inhibitors")), "CCM-09")
        .into_iter()
        .find(|x| x.key.starts_with("busy-hour"))
        .cloned()
        .expect("busy hour warning");
    assert!(busy.message.contains("2500"));
    // The plan reports how long the secondaries carry the primaries' devices.
    let p = plan(&example("ccm4-large"));
    let m = p
        .measures
        .iter()
        .find(|m| m.rule == "CCM-09")
        .expect("measure");
    assert_eq!(m.start_s, first_start(&p, "fail-over-to-backup"));
    assert_eq!(
        m.start_s + m.duration_s,
        on(&p, "hq-pri4", "device-reregistration").end_s()
    );
}

/// CCM-09, written from the document: "no more than 5,000 devices that are registered to the
/// secondary server during the upgrade" and "oversubscribe the secondary server(s) for no more
/// than a few hours". A 3.3(4) cluster in the 4 primary + 2 backup spirit whose primaries
/// m-p1 (2,600 devices) and m-p3 (`p3` devices) share the secondary m-bk1, every device moved
/// to the upgraded secondaries (CCM-10); `cluster_facts` are added to the cluster's facts.
fn metro(p3: u32, cluster_facts: &str) -> String {
    let node = |name: &str, role: &str, facts: &str| {
        format!(
            "\n[[cluster.node]]\nname = \"{name}\"\nrole = \"{role}\"\nversion = \"3.3(4)\"\nfacts = {{ {facts}os_version = \"2000.2.4sr4\" }}\n"
        )
    };
    let mut s = format!(
        "[site]\nname = \"metro\"\n\n[[cluster]]\nname = \"metro\"\nprofile = \"cisco-callmanager4\"\ntarget = \"4.0(1)\"\nfacts = {{ devices_on_backups = true, busy_hour_call_attempts = 400{cluster_facts} }}\n"
    );
    s += &node("m-pub", "publisher", "");
    s += &node("m-bk1", "secondary", "devices = 0, ");
    s += &node("m-bk2", "secondary", "devices = 0, ");
    s += &node("m-p1", "primary", "devices = 2600, backup = \"m-bk1\", ");
    s += &node("m-p2", "primary", "devices = 1500, backup = \"m-bk2\", ");
    s += &node(
        "m-p3",
        "primary",
        &format!("devices = {p3}, backup = \"m-bk1\", "),
    );
    s
}

/// From a primary's fail-over to the end of its reboot: the time its devices are on its
/// secondary (they stay there after the fail-over step has ended, until the primary is back).
fn on_secondary(p: &Plan, primary: &str) -> (u64, u64) {
    (
        on(p, primary, "fail-over-to-backup").start_s,
        on(p, primary, "reboot-server").end_s(),
    )
}

/// CCM-09 counted over time: the devices a secondary holds stay on it until their primary is
/// back. Two primaries of one secondary whose devices together exceed 5,000 take turns (the
/// second fails over once the first is back, an edge the rule explains); together they fit, both
/// fail over at once as CCM-10 wants. Each secondary's peak is reported.
#[test]
fn a_secondary_holds_its_primaries_devices_until_they_are_back_ccm_09() {
    let check = |p3: u32, in_turn: bool, peak_bk1: u32| {
        let p = plan(&metro(p3, ""));
        let (a, b) = (on_secondary(&p, "m-p1"), on_secondary(&p, "m-p3"));
        let together = a.0 < b.1 && b.0 < a.1;
        assert_eq!(
            together, !in_turn,
            "p3 = {p3}: m-p1 on m-bk1 {a:?}, m-p3 {b:?}"
        );
        let edge = has_edge(
            &p,
            "metro/m-p1/reboot-server",
            "metro/m-p3/fail-over-to-backup",
            "CCM-09",
        );
        assert_eq!(edge, in_turn, "p3 = {p3}: {:#?}", p.edges);
        if in_turn {
            let why = ferry_plan::explain(&p, "metro/m-p3/fail-over-to-backup").unwrap();
            assert!(why.contains("CCM-09") && why.contains("m-bk1"), "{why}");
            // CCM-10 gives way: m-p3's devices wait on 3.3(4) while m-p1 is upgraded.
            let f = findings(&metro(p3, ""));
            let split = findings_of(&f, "CCM-10");
            assert!(
                split.iter().any(|x| x.severity == Severity::Warning
                    && x.message.contains("m-bk1")
                    && x.message.contains("m-p3")),
                "{f:#?}"
            );
        }
        // No secondary is ever over 5,000: nothing to warn about.
        let f = findings(&metro(p3, ""));
        let over: Vec<_> = findings_of(&f, "CCM-09")
            .into_iter()
            .filter(|x| !x.key.starts_with("capacity-span/"))
            .collect();
        assert!(over.is_empty(), "p3 = {p3}: {over:#?}");
        let text = ferry_plan::render::text::render_text(&p);
        assert!(
            text.contains(&format!("metro/m-bk1 [CCM-09]: peak {peak_bk1} devices")),
            "p3 = {p3}: {text}"
        );
        assert!(
            text.contains("metro/m-bk2 [CCM-09]: peak 1500 devices"),
            "{text}"
        );
    };
    check(2700, true, 2700); // 2,600 + 2,700 = 5,300: in turn
    check(2400, false, 5000); // 2,600 + 2,400: exactly 5,000, at once
    check(4000, true, 4000);
}

/// CCM-09: "for no more than a few hours". The document gives no number: the profile's default
/// is 4 hours, a site may set its own (`oversubscribe_max_hours`), and a plan that keeps a
/// secondary oversubscribed longer is warned about, naming the secondary and the times.
#[test]
fn a_secondary_oversubscribed_longer_than_a_few_hours_is_a_warning_ccm_09() {
    let check = |cluster_facts: &str, limit: Option<&str>| {
        let site = metro(2300, cluster_facts);
        let p = plan(&site);
        // m-bk1 carries m-p1's and m-p3's devices from the first fail-over to the last
        // primary's devices back home.
        let from = on(&p, "m-p1", "fail-over-to-backup")
            .start_s
            .min(on(&p, "m-p3", "fail-over-to-backup").start_s);
        let to = on(&p, "m-p1", "device-reregistration")
            .end_s()
            .max(on(&p, "m-p3", "device-reregistration").end_s());
        assert!(to - from > 4 * 3600, "the site must need more than 4 h");
        let f = findings(&site);
        let long: Vec<_> = findings_of(&f, "CCM-09")
            .into_iter()
            .filter(|x| x.key.starts_with("capacity-span/"))
            .collect();
        match limit {
            None => assert!(long.is_empty(), "{long:#?}"),
            Some(limit) => {
                assert_eq!(long.len(), 1, "{f:#?}");
                let x = long[0];
                assert_eq!(x.severity, Severity::Warning);
                assert_eq!(x.node.as_deref(), Some("m-bk1"));
                let clock = |s: u64| format!("{}:{:02}", s / 3600, s % 3600 / 60);
                let dur = format!("{}h {:02}m", (to - from) / 3600, (to - from) % 3600 / 60);
                for part in [clock(from), clock(to), dur, limit.to_string()] {
                    assert!(x.message.contains(&part), "{part} in {}", x.message);
                }
            }
        }
    };
    check("", Some("4h 00m")); // the profile's default: 4 hours
    check(", oversubscribe_max_hours = 3.5", Some("3h 30m"));
    check(", oversubscribe_max_hours = 8", None);
}

#[test]
fn every_device_on_servers_of_one_version_ccm_10() {
    let p = plan(&example("ccm4-large"));
    let failovers = steps_of(&p, "fail-over-to-backup", Some("primary"));
    assert_eq!(failovers.len(), 4);
    assert!(failovers[0].rules.contains(&"CCM-10".to_string()));
    // Devices move only to upgraded secondaries, and all of them before any primary is rebuilt.
    assert_all_before(
        &steps_of(&p, "reboot-server", Some("secondary")),
        &failovers,
    );
    assert_all_before(
        &failovers,
        &steps_of(&p, "same-server-recovery", Some("primary")),
    );
    assert!(has_edge(
        &p,
        "ccm-hq/hq-pri2/fail-over-to-backup",
        "ccm-hq/hq-pri1/same-server-recovery",
        "CCM-10"
    ));
    // From 3.3, primaries' OS upgrades end before any secondary runs 4.0(1).
    let p33 = plan(&large_from_33());
    assert_all_before(
        &steps_of(&p33, "upgrade-os", Some("primary")),
        &steps_of(&p33, "install-subscriber", Some("secondary")),
    );
    assert!(has_edge(
        &p33,
        "ccm-hq/hq-pri1/upgrade-os",
        "ccm-hq/hq-sec1/install-subscriber",
        "CCM-10"
    ));
    // The behaviour is annotated on the subscribers' upgrade.
    let inst = on(&p, "hq-tftp", "install-subscriber");
    assert!(inst.rules.contains(&"CCM-10".to_string()));
    assert!(inst.impact_note.contains("different versions"));
    // Without moving the devices, each primary goes alone and the mixed versions are reported.
    let mixed = large_primaries_in_turn();
    let f = findings(&mixed);
    let w = findings_of(&f, "CCM-10");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].severity, Severity::Warning);
    let p = plan(&mixed);
    assert!(steps_of(&p, "fail-over-to-backup", None).is_empty());
    assert_one_at_a_time(&steps_of(&p, "same-server-recovery", Some("primary")));
    assert!(findings_of(&findings(&example("ccm4-large")), "CCM-10").is_empty());
}

#[test]
fn primary_reregistration_interrupts_up_to_30_minutes_ccm_11() {
    let p = plan(&example("ccm4-large"));
    let rereg = on(&p, "hq-pri1", "device-reregistration");
    assert_eq!(rereg.kind, StepKind::Gate);
    assert_eq!(rereg.impact, Impact::Degraded);
    assert!(rereg.rules.contains(&"CCM-11".to_string()));
    assert!(rereg.impact_note.contains("up to 30 minutes"));
    // 2,400 devices: 10 min plus 3 x 4 min.
    assert_eq!(rereg.duration_s, 22 * 60);
    let full = plan(&example("ccm4-large").replace("devices = 2400", "devices = 5000"));
    assert_eq!(
        on(&full, "hq-pri1", "device-reregistration").duration_s,
        30 * 60
    );
    // The next primary starts only when the devices are back.
    assert!(rereg.end_s() <= on(&p, "hq-pri2", "install-subscriber").start_s);
    // Servers without devices of their own have no such wait.
    assert!(!node_actions(&p, "hq-tftp").contains(&"device-reregistration".to_string()));
}

// ---------------------------------------------------------------------------------------------
// CCM-12 to CCM-19: window, services, remote access, server checks
// ---------------------------------------------------------------------------------------------

#[test]
fn whole_cluster_in_one_window_ccm_12() {
    for e in ["ccm4-large", "ccm4-two-server", "ccm4-from-30"] {
        let p = plan(&example(e));
        let m = p
            .measures
            .iter()
            .find(|m| m.rule == "CCM-12")
            .expect("window measure");
        assert_eq!(
            m.duration_s, p.clusters[0].makespan_s,
            "{e}: the estimate covers the whole cluster"
        );
        assert!(p.makespan_s <= p.window_s.unwrap(), "{e} fits its window");
        assert!(findings_of(&findings(&example(e)), "CCM-12").is_empty());
    }
    // Application servers are part of the same window.
    let p = plan(&example("ccm4-large"));
    assert!(
        on(&p, "hq-ccc", "upgrade-application").end_s()
            <= step(&p, "ccm-hq/post-upgrade-tasks").start_s
    );
    let short = example("ccm4-two-server").replace("hours = 8", "hours = 6");
    let f = findings(&short);
    let w = findings_of(&f, "CCM-12");
    assert_eq!(w.len(), 1);
    assert!(
        w[0].message.contains("7h18m") && w[0].message.contains("6h00m"),
        "{}",
        w[0].message
    );
}

#[test]
fn services_activated_by_hand_after_the_upgrade_ccm_13() {
    let p = plan(&example("ccm4-large"));
    let activate = steps_of(&p, "activate-services", None);
    assert_eq!(activate.len(), 11, "on every server (CCM-13)");
    assert!(activate[0].instructions.contains("Service Activation"));
    assert!(activate
        .iter()
        .all(|s| s.rules.contains(&"CCM-13".to_string())));
    assert_all_before(&steps_of(&p, "reboot-server", None), &activate);
    let install = on(&p, "hq-pub", "install-publisher");
    assert!(install.rules.contains(&"CCM-13".to_string()));
    assert!(install.impact_note.contains("activated by hand"));
    // Not between the legs of a hop: only once the cluster runs 4.0(1).
    let hop = plan(&example("ccm4-from-30"));
    assert!(hop
        .steps
        .iter()
        .all(|s| !(s.action == "activate-services" && s.id.contains('@'))));
}

#[test]
fn terminal_services_off_before_and_back_on_after_ccm_14() {
    let f = findings(&example("ccm4-large"));
    let ts = findings_of(&f, "CCM-14");
    assert_eq!(ts.len(), 9, "every server with Terminal Services enabled");
    assert!(ts.iter().all(|x| x.severity == Severity::Warning));
    let p = plan(&example("ccm4-large"));
    for node in ["hq-pub", "hq-sec1", "hq-pri3", "hq-cer"] {
        let actions = node_actions(&p, node);
        assert_eq!(
            actions.first().map(String::as_str),
            Some("disable-remote-access"),
            "{node}"
        );
        assert_eq!(
            actions.last().map(String::as_str),
            Some("enable-terminal-services"),
            "{node}"
        );
    }
    let disable = on(&p, "hq-pub", "disable-remote-access");
    assert!(disable.rules.contains(&"CCM-14".to_string()));
    assert!(disable
        .instructions
        .contains("Reboot the server immediately"));
    assert!(disable.instructions.contains("ILO"));
    assert_all_before(
        &steps_of(&p, "reboot-server", None),
        &steps_of(&p, "enable-terminal-services", None),
    );
    // VNC not used for the upgrade, and ILO for upgrade tasks, are reported.
    let f = findings(&example("ccm4-inhibitors"));
    let keys: Vec<&str> = findings_of(&f, "CCM-14")
        .iter()
        .map(|x| x.key.as_str())
        .collect();
    assert!(
        keys.contains(&"vnc-installed/ccm-east/east-tftp"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"ilo-for-upgrade/ccm-east/east-pri2"),
        "{keys:?}"
    );
}

#[test]
fn domain_controller_is_an_inhibitor_ccm_15() {
    let f = findings(&example("ccm4-inhibitors"));
    let dc = findings_of(&f, "CCM-15");
    assert_eq!(dc.len(), 1);
    assert_eq!(dc[0].severity, Severity::Inhibitor);
    assert_eq!(dc[0].node.as_deref(), Some("east-pub"));
    assert!(dc[0].message.contains("Domain Controller"));
}

#[test]
fn configuration_freeze_and_user_notice_open_the_window_ccm_16() {
    let p = plan(&example("ccm4-two-server"));
    let freeze = step(&p, "ccm-branch/freeze-configuration");
    assert_eq!(freeze.start_s, 0);
    assert!(freeze.rules.contains(&"CCM-16".to_string()));
    assert!(freeze.instructions.contains("Notify all users"));
    assert!(freeze.instructions.contains("Stop all configuration tasks"));
    assert_all_before(
        &[freeze],
        &p.steps
            .iter()
            .filter(|s| s.id != freeze.id && s.phase == ferry_model::Phase::Window)
            .collect::<Vec<_>>(),
    );
    // Remote administration is disabled on every server.
    assert!(on(&p, "ccm-sub", "disable-remote-access")
        .rules
        .contains(&"CCM-16".to_string()));
}

#[test]
fn drive_removal_only_where_possible_ccm_17() {
    let f = findings(&example("ccm4-inhibitors"));
    let drive = findings_of(&f, "CCM-17");
    assert_eq!(drive.len(), 1);
    assert_eq!(drive[0].severity, Severity::Inhibitor);
    assert!(drive[0].message.contains("MCS-7825H-2.2"));
    // On an MCS-7845 the drive comes out after the backup and before the OS procedures.
    let site = example("ccm4-large").replacen(
        "server_model = \"MCS-7845H-3.0\", terminal_services = true,",
        "server_model = \"MCS-7845H-3.0\", drive_removal_planned = true, terminal_services = true,",
        1,
    );
    assert!(findings_of(&findings(&site), "CCM-17").is_empty());
    let p = plan(&site);
    let remove = on(&p, "hq-pub", "remove-drive");
    assert!(remove.rules.contains(&"CCM-17".to_string()));
    assert!(on(&p, "hq-pub", "backup-publisher").end_s() <= remove.start_s);
    assert!(remove.end_s() <= on(&p, "hq-pub", "same-server-recovery").start_s);
}

/// CCM-17, from the document: "Before you begin the operating system installation, make sure
/// that you have all drives in the server and verify that the drives are functional. For
/// example, insert two drives for the MCS-7835 and four drives for the MCS-7845." and "you must
/// insert a replacement drive into the server before you begin the operating system
/// procedures". A two-server cluster whose publisher has the given facts: the CCM-17 findings
/// (check ID, node) expected. The subscriber, an MCS-7835 with both drives, finds nothing.
fn check_drives(version: &str, publisher_facts: &str, expected: &[(&str, &str)]) {
    let site = format!(
        r#"
[site]
name = "drive-check"

[[cluster]]
name = "ccm"
profile = "cisco-callmanager4"
target = "4.0(1)"

[[cluster.node]]
name = "pub"
role = "publisher"
version = "{version}"
facts = {{ runs_callmanager = true, devices = 300, backup = "sub", os_version = "2000.2.3", {publisher_facts} }}

[[cluster.node]]
name = "sub"
role = "subscriber"
version = "{version}"
facts = {{ devices = 200, os_version = "2000.2.3", server_model = "MCS-7835H-2.4", drives_installed = 2, drives_functional = true }}
"#
    );
    let f = findings(&site);
    let found: Vec<(&str, &str)> = findings_of(&f, "CCM-17")
        .iter()
        .map(|x| {
            assert_eq!(x.severity, Severity::Inhibitor, "{x:?}");
            (
                x.key.split('/').next().unwrap_or(""),
                x.node.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(found, expected, "{version}: {publisher_facts}");
}

#[test]
fn every_drive_in_the_server_and_functional_before_the_os_installation_ccm_17() {
    // The document's drive counts: four drives in an MCS-7845, two in an MCS-7835.
    check_drives(
        "3.2(3)",
        "server_model = \"MCS-7845H-3.0\", drives_installed = 3",
        &[("drives-below-model-count", "pub")],
    );
    check_drives(
        "3.2(3)",
        "server_model = \"MCS-7835H-2.4\", drives_installed = 1",
        &[("drives-below-model-count", "pub")],
    );
    check_drives(
        "3.2(3)",
        "server_model = \"MCS-7845H-3.0\", drives_installed = 4",
        &[],
    );
    // Any model: a drive the server takes is not in it, or a drive is not functional.
    check_drives(
        "3.2(3)",
        "server_model = \"MCS-7830\", all_drives_installed = false",
        &[("drives-not-all-installed", "pub")],
    );
    check_drives(
        "3.2(3)",
        "server_model = \"MCS-7845H-3.0\", drives_installed = 4, drives_functional = false",
        &[("drives-not-functional", "pub")],
    );
    // A drive removed to keep the data needs its replacement before the OS procedures.
    check_drives(
        "3.2(3)",
        "server_model = \"MCS-7835H-2.4\", drive_removal_planned = true, replacement_drive = false",
        &[("replacement-drive-missing", "pub")],
    );
    check_drives(
        "3.2(3)",
        "server_model = \"MCS-7835H-2.4\", drive_removal_planned = true, replacement_drive = true",
        &[],
    );
    // From 2.4 or 3.0 the cluster goes through 3.2(3), and the same OS installation.
    check_drives(
        "3.0(9)",
        "server_model = \"MCS-7835H-2.4\", drives_functional = false",
        &[("drives-not-functional", "pub")],
    );
    // From 3.3 the OS is upgraded in place, and the document lets a server upgrade with one
    // drive in it (interim recovery mode): no inhibitor.
    check_drives(
        "3.3(4)",
        "server_model = \"MCS-7835H-2.4\", drives_installed = 1, drive_removal_planned = true",
        &[],
    );
}

/// CCM-20, from the document: "Cisco CallManager always updates service parameters with
/// non-numeric values to the suggested value." Service parameters of a node (a table as the
/// fact describes them): the finding expected (its node and text), or none.
fn check_non_numeric_parameter(parameter: &str, expected: Option<&str>) {
    let site = format!(
        r#"
[site]
name = "parameters"

[[cluster]]
name = "ccm"
profile = "cisco-callmanager4"
target = "4.0(1)"

[[cluster.node]]
name = "pub"
role = "publisher"
version = "3.3(4)"
facts = {{ runs_callmanager = true, devices = 300, backup = "sub", os_version = "2000.2.5sr2", service_parameters = [{parameter}] }}

[[cluster.node]]
name = "sub"
role = "subscriber"
version = "3.3(4)"
facts = {{ devices = 200, os_version = "2000.2.5sr2" }}
"#
    );
    let f = findings(&site);
    let found = findings_of(&f, "CCM-20");
    match expected {
        None => assert!(found.is_empty(), "{parameter}: {found:?}"),
        Some(text) => {
            assert_eq!(found.len(), 1, "{parameter}: {found:?}");
            assert_eq!(found[0].node.as_deref(), Some("pub"), "{parameter}");
            assert!(
                found[0].message.contains(text),
                "{parameter}: `{}` lacks `{text}`",
                found[0].message
            );
        }
    }
}

#[test]
fn non_numeric_service_parameters_take_the_new_suggested_value_ccm_20() {
    // A non-numeric value that differs from the new suggested value: old, new, parameter, node.
    check_non_numeric_parameter(
        "{ name = \"CallManager: CDR Enabled Flag\", value = \"False\", suggested = \"False\", new_suggested = \"True\" }",
        Some("CallManager: CDR Enabled Flag: False -> True (not numeric: takes the new suggested value)"),
    );
    check_non_numeric_parameter(
        "{ name = \"CallManager: Call Park Display Timer Enabled\", value = false, new_suggested = true }",
        Some("CallManager: Call Park Display Timer Enabled: false -> true"),
    );
    check_non_numeric_parameter(
        "{ name = \"CallManager: Digit Analysis Complexity\", value = \"TranslationAndAlternatePatternAnalysis\", suggested = \"StandardAnalysis\", new_suggested = \"StandardAnalysis\" }",
        Some("TranslationAndAlternatePatternAnalysis -> StandardAnalysis"),
    );
    // Already the new suggested value: nothing changes, nothing is reported.
    check_non_numeric_parameter(
        "{ name = \"Cisco TFTP: Enable Caching\", value = \"True\", suggested = \"True\", new_suggested = \"True\" }",
        None,
    );
    // Without a new suggested value ferry cannot say what it becomes: the old one stands in.
    check_non_numeric_parameter(
        "{ name = \"CallManager: CDR Enabled Flag\", value = \"False\", suggested = \"True\" }",
        Some("CallManager: CDR Enabled Flag: False -> True"),
    );
}

#[test]
fn forbidden_and_unverified_applications_ccm_18() {
    let f = findings(&example("ccm4-inhibitors"));
    let apps = findings_of(&f, "CCM-18");
    let by_key = |k: &str| {
        apps.iter()
            .find(|x| x.key.starts_with(k))
            .unwrap_or_else(|| panic!("{k}: {apps:?}"))
    };
    let unity = by_key("forbidden-coresident-application/ccm-east/east-pri1");
    assert_eq!(unity.severity, Severity::Inhibitor);
    assert!(unity.message.contains("Unity"));
    assert_eq!(by_key("netscape-navigator").severity, Severity::Warning);
    assert_eq!(
        by_key("unverified-applications").severity,
        Severity::Warning
    );
    assert_eq!(by_key("no-security-agent").severity, Severity::Info);
    // Emergency Responder on its own application server is fine.
    let f = findings(&example("ccm4-large"));
    assert!(inhibitors(&f).is_empty());
    assert!(findings_of(&f, "CCM-18").is_empty(), "{f:?}");
    // But not on a CallManager server.
    let coresident = example("ccm4-large").replacen(
        "installed_apps = [\"Cisco Security Agent for Cisco CallManager\"]",
        "installed_apps = [\"Cisco Security Agent for Cisco CallManager\", \"Cisco Emergency Responder\"]",
        1,
    );
    let f = findings(&coresident);
    assert_eq!(inhibitors(&f).len(), 1);
    assert_eq!(inhibitors(&f)[0].rule, "CCM-18");
    // A compatible CRS may share the server: the finding points at the CRS documentation.
    let crs = example("ccm4-large").replacen(
        "installed_apps = [\"Cisco Security Agent for Cisco CallManager\"]",
        "installed_apps = [\"Cisco Security Agent for Cisco CallManager\", \"Cisco Customer Response Solutions 3.5\"]",
        1,
    );
    let f = findings(&crs);
    assert!(inhibitors(&f).is_empty());
    let info = findings_of(&f, "CCM-18");
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].severity, Severity::Info);
    assert!(info[0].remedy.contains("CRS documentation"));
}

#[test]
fn changed_security_policies_are_a_warning_ccm_19() {
    let f = findings(&example("ccm4-inhibitors"));
    let pol = findings_of(&f, "CCM-19");
    assert_eq!(pol.len(), 1);
    assert_eq!(pol[0].severity, Severity::Warning);
    assert_eq!(pol[0].node.as_deref(), Some("east-pub"));
    assert!(pol[0].message.contains("may fail"));
}

// ---------------------------------------------------------------------------------------------
// CCM-20 to CCM-24: configuration the upgrade changes
// ---------------------------------------------------------------------------------------------

#[test]
fn service_parameter_changes_are_reported_with_old_and_new_value_ccm_20() {
    let f = findings(&example("ccm4-inhibitors"));
    let params = findings_of(&f, "CCM-20");
    let messages: Vec<&str> = params.iter().map(|x| x.message.as_str()).collect();
    assert_eq!(params.len(), 3, "{messages:?}");
    assert!(messages
        .iter()
        .any(|m| m.contains("Max Cdr Records: 12 -> 10 (above the maximum: clamped)")));
    assert!(messages
        .iter()
        .any(|m| m.contains("H225 TCP Timer: 30 -> 25")));
    assert!(messages
        .iter()
        .any(|m| m.contains("Digit Analysis Complexity") && m.contains("not numeric")));
    assert!(
        !messages
            .iter()
            .any(|m| m.contains("Status Enquiry Poll Flag")),
        "a custom value within [min, max] is kept"
    );
    let p = plan(&example("ccm4-large"));
    let install = on(&p, "hq-pub", "install-publisher");
    assert!(install.rules.contains(&"CCM-20".to_string()));
    assert!(install.impact_note.contains("clamped"));
}

#[test]
fn h323_trunk_names_unique_across_clusters_ccm_21() {
    let f = findings(&example("ccm4-inhibitors"));
    let dup = findings_of(&f, "CCM-21");
    assert_eq!(dup.len(), 2, "one per cluster sharing the name");
    assert!(dup
        .iter()
        .all(|x| x.severity == Severity::Inhibitor && x.message.contains("ICT-CAMPUS")));
    let clusters: Vec<_> = dup.iter().filter_map(|x| x.cluster.as_deref()).collect();
    assert_eq!(clusters, vec!["ccm-east", "ccm-west"]);
    assert!(findings_of(&findings(&example("ccm4-large")), "CCM-21").is_empty());
}

#[test]
fn h323_gateway_session_targets_ccm_22() {
    let f = findings(&example("ccm4-inhibitors"));
    let gw = findings_of(&f, "CCM-22");
    assert_eq!(gw.len(), 2);
    let dial = gw
        .iter()
        .find(|x| x.key.starts_with("dial-peer-session-targets"))
        .unwrap();
    assert_eq!(dial.severity, Severity::Inhibitor);
    assert!(dial.message.contains("dial-peer voice 100"));
    let h225 = gw
        .iter()
        .find(|x| x.key.starts_with("h225d-on-every-node"))
        .unwrap();
    assert_eq!(h225.severity, Severity::Warning);
    assert!(h225.message.contains("Run H.225D On Every Node"));
}

#[test]
fn database_rename_warning_names_old_and_new_ccm_23() {
    let f = findings(&example("ccm4-inhibitors"));
    let db = findings_of(&f, "CCM-23");
    assert_eq!(db.len(), 1);
    assert_eq!(db[0].severity, Severity::Warning);
    assert!(
        db[0].message.contains("from CCM0300 to CCM0301"),
        "{}",
        db[0].message
    );
    assert!(db[0].message.contains("BAD directory"));
    // Without a recorded name, the warning still comes, with the documented example.
    let f = findings(
        &example("ccm4-two-server").replace("db_name = \"CCM0300\"", "third_party_cdr = true"),
    );
    let db = findings_of(&f, "CCM-23");
    assert_eq!(db.len(), 1);
    assert!(db[0].message.contains("CCM0300 to CCM0301"));
    // No third-party CDR: nothing to say; the plan still annotates the rename.
    assert!(findings_of(&findings(&example("ccm4-large")), "CCM-23").is_empty());
    let p = plan(&example("ccm4-large"));
    assert!(on(&p, "hq-pub", "install-publisher")
        .impact_note
        .contains("CCM0301"));
    // With CDR triggers, the plan repoints them after every server.
    let cdr = example("ccm4-large").replace(
        "db_name = \"CCM0300\"",
        "db_name = \"CCM0300\", third_party_cdr = true",
    );
    let p = plan(&cdr);
    let repoint = step(&p, "ccm-hq/repoint-cdr-triggers");
    assert!(repoint.rules.contains(&"CCM-23".to_string()));
    assert_all_before(&steps_of(&p, "reboot-server", None), &[repoint]);
}

#[test]
fn extension_mobility_from_32_needs_configuration_afterwards_ccm_24() {
    let p = plan(&example("ccm4-large"));
    let em = step(&p, "ccm-hq/configure-extension-mobility");
    assert!(em.rules.contains(&"CCM-24".to_string()));
    assert!(em.instructions.contains("Features and Services Guide"));
    assert_all_before(&steps_of(&p, "device-reregistration", None), &[em]);
    // Not from 3.3, and not without Extension Mobility.
    let p33 = plan(&example("ccm4-two-server").replace(
        "db_name = \"CCM0300\"",
        "db_name = \"CCM0300\", extension_mobility = true",
    ));
    assert!(steps_of(&p33, "configure-extension-mobility", None).is_empty());
    let none = plan(&example("ccm4-large").replace("extension_mobility = true, ", ""));
    assert!(steps_of(&none, "configure-extension-mobility", None).is_empty());
}

// ---------------------------------------------------------------------------------------------
// CCM-25, CCM-26: after the upgrade, and when it goes wrong
// ---------------------------------------------------------------------------------------------

#[test]
fn post_upgrade_tasks_only_after_every_server_ccm_25() {
    let p = plan(&example("ccm4-large"));
    let last = steps_of_any(
        &p,
        &[
            "reboot-server",
            "verify-service-only",
            "device-reregistration",
        ],
    );
    let post = steps_of_any(
        &p,
        &[
            "activate-services",
            "enable-terminal-services",
            "configure-extension-mobility",
            "post-upgrade-tasks",
        ],
    );
    assert_all_before(&last, &post);
    let post_tasks = step(&p, "ccm-hq/post-upgrade-tasks");
    assert!(post_tasks.rules.contains(&"CCM-25".to_string()));
    assert!(has_edge(
        &p,
        "ccm-hq/hq-ccc/reboot-server",
        "ccm-hq/hq-pub/activate-services",
        "CCM-25"
    ));
    assert!(has_edge(
        &p,
        "ccm-hq/hq-pri4/device-reregistration",
        "ccm-hq/post-upgrade-tasks",
        "CCM-25"
    ));
    assert_eq!(
        p.steps.last().map(|s| s.id.as_str()),
        Some("ccm-hq/post-upgrade-tasks")
    );
}

#[test]
fn rollback_collects_logs_then_reverts_publisher_first_ccm_26() {
    let p = plan(&example("ccm4-large"));
    let logs = p
        .rollback
        .iter()
        .find(|s| s.action == "collect-logs")
        .expect("collect-logs");
    assert_eq!(logs.start_s, 0);
    assert!(logs.rules.contains(&"CCM-26".to_string()));
    assert!(logs.instructions.contains("Error Messages"));
    assert!(logs
        .instructions
        .contains("C:\\Program Files\\Common Files\\Cisco\\Logs"));
    assert!(logs.instructions.find("Error Messages") < logs.instructions.find("log files"));
    let revert_pub = p
        .rollback
        .iter()
        .find(|s| s.id == "ccm-hq/hq-pub/revert-publisher")
        .unwrap();
    assert!(logs.end_s() <= revert_pub.start_s);
    let subs: Vec<&PlannedStep> = p
        .rollback
        .iter()
        .filter(|s| s.action == "revert-subscriber")
        .collect();
    assert_eq!(subs.len(), 10);
    assert_all_before(&[revert_pub], &subs);
    assert_one_at_a_time(&subs);
    let ts: Vec<&PlannedStep> = p
        .rollback
        .iter()
        .filter(|s| s.action == "enable-terminal-services")
        .collect();
    assert_all_before(&subs, &ts);
}

// ---------------------------------------------------------------------------------------------
// Every step can go into a method of procedure; the examples plan close to their bound
// ---------------------------------------------------------------------------------------------

#[test]
fn every_step_has_instructions_verification_and_rules_ccm_05() {
    for e in [
        "ccm4-large",
        "ccm4-two-server",
        "ccm4-from-30",
        "ccm4-inhibitors",
    ] {
        let p = plan(&example(e));
        for s in p.steps.iter().chain(&p.rollback) {
            assert!(
                !s.instructions.is_empty(),
                "{e}: {} has no instructions",
                s.id
            );
            assert!(!s.verify.is_empty(), "{e}: {} has no verification", s.id);
            assert!(
                s.rules.iter().any(|r| r.starts_with("CCM-")),
                "{e}: {}",
                s.id
            );
        }
    }
}

#[test]
fn examples_plan_within_5_percent_of_the_bound_ccm_05() {
    for e in [
        "ccm4-large",
        "ccm4-two-server",
        "ccm4-from-30",
        "ccm4-inhibitors",
    ] {
        for strategy in [None, Some("one-at-a-time")] {
            let p = plan_with(&example(e), strategy);
            assert!(
                p.makespan_s as f64 <= p.lower_bound_s as f64 * 1.05,
                "{e} {strategy:?}: {} vs bound {}",
                p.makespan_s,
                p.lower_bound_s
            );
        }
    }
    // The OS portion runs in parallel where the rules allow it.
    let p = plan(&example("ccm4-large"));
    assert!(
        p.sequential_s as f64 >= 1.8 * p.makespan_s as f64,
        "{} vs {}",
        p.sequential_s,
        p.makespan_s
    );
}

#[test]
fn clean_examples_check_without_inhibitors_and_the_inhibitor_example_has_many() {
    for e in ["ccm4-large", "ccm4-two-server", "ccm4-from-30"] {
        assert!(inhibitors(&findings(&example(e))).is_empty(), "{e}");
    }
    let f = findings(&example("ccm4-inhibitors"));
    let rules: std::collections::BTreeSet<&str> =
        inhibitors(&f).iter().map(|x| x.rule.as_str()).collect();
    assert_eq!(
        rules.into_iter().collect::<Vec<_>>(),
        vec!["CCM-01", "CCM-03", "CCM-06", "CCM-15", "CCM-17", "CCM-18", "CCM-21", "CCM-22"]
    );
}

/// From 3.3: four primaries whose devices fail over to two secondaries; hq-sec1 cannot take
/// both of its primaries at once (5,500 devices).
const WAREHOUSE: &str = r#"[site]
name = "warehouse"

[[cluster]]
name = "wh"
profile = "cisco-callmanager4"
target = "4.0(1)"
facts = { db_name = "CCM0301", busy_hour_call_attempts = 400 }

[[cluster.node]]
name = "wh-pub"
role = "publisher"
version = "3.3(3)"
facts = { os_version = "2000.2.4", server_model = "MCS-7845H-3.0" }

[[cluster.node]]
name = "wh-sec1"
role = "secondary"
version = "3.3(3)"
facts = { devices = 0, os_version = "2000.2.4", server_model = "MCS-7845H-3.0" }

[[cluster.node]]
name = "wh-sec2"
role = "secondary"
version = "3.3(3)"
facts = { devices = 0, os_version = "2000.2.4", server_model = "MCS-7845H-3.0" }

[[cluster.node]]
name = "wh-pri1"
role = "primary"
version = "3.3(3)"
facts = { devices = 3000, backup = "wh-sec1", os_version = "2000.2.4", server_model = "MCS-7845H-3.0" }

[[cluster.node]]
name = "wh-pri2"
role = "primary"
version = "3.3(3)"
facts = { devices = 2500, backup = "wh-sec1", os_version = "2000.2.4", server_model = "MCS-7845H-3.0" }

[[cluster.node]]
name = "wh-pri3"
role = "primary"
version = "3.3(3)"
facts = { devices = 1800, backup = "wh-sec2", os_version = "2000.2.4", server_model = "MCS-7845H-3.0" }

[[cluster.node]]
name = "wh-pri4"
role = "primary"
version = "3.3(3)"
facts = { devices = 1700, backup = "wh-sec2", os_version = "2000.2.4", server_model = "MCS-7845H-3.0" }
"#;

#[test]
fn balanced_reboots_servers_in_batches_that_keep_every_device_on_a_server_ccm_06_ccm_09() {
    // CCM-06: a primary is never down while its secondary is; CCM-09: "at most 5,000 devices
    // registered to" a secondary. Balanced batches the reboots and in-place OS upgrades by the
    // primaries' `backup` facts and the 5,000.
    let set = profiles();
    let meta = &set.get("cisco-callmanager4").unwrap().profile.profile;
    assert!(meta.strategies.iter().any(|s| s == "balanced"));
    let p = plan_with(WAREHOUSE, Some("balanced"));
    assert_eq!(p.clusters[0].strategy, "balanced");
    let groups: [(&[&str], f64); 4] = [
        (&["wh-pri1", "wh-sec1"], 3000.0),
        (&["wh-pri2", "wh-sec1"], 2500.0),
        (&["wh-pri3", "wh-sec2"], 1800.0),
        (&["wh-pri4", "wh-sec2"], 1700.0),
    ];
    let block = ["disable-remote-access", "prepare-subscriber", "upgrade-os"];
    assert_every_group_served(&p, &block, &groups, Some(5000.0));
    // Three batches: the secondaries, then every primary but one of wh-sec1's, then the other.
    let into = |node: &str| {
        p.edges
            .iter()
            .filter(|e| {
                e.rule == "CCM-06"
                    && e.to == format!("wh/{node}/disable-remote-access")
                    && e.note.starts_with("batch")
            })
            .count()
    };
    assert!(into("wh-pri1") > 0 && into("wh-pri2") > 0, "{:#?}", p.edges);
    let s = |node: &str| on(&p, node, "disable-remote-access").start_s;
    assert_eq!(s("wh-pri1"), s("wh-pri3"));
    assert!(s("wh-pri2") >= on(&p, "wh-pri1", "upgrade-os").end_s());
    // The rules already order the reboots this way: no longer than the fastest plan.
    assert_eq!(
        p.makespan_s,
        plan_with(WAREHOUSE, Some("fastest")).makespan_s
    );
}

/// Seed 001: the CallManager 4.0(1) installation runs on the server itself ("finish and reboot
/// one server before starting the next", CCM-05), and the OS upgrades before it reboot it: no
/// step takes place while the server keeps serving, so a staging period changes nothing.
#[test]
fn nothing_of_a_callmanager_upgrade_runs_ahead_of_the_window_ccm_05() {
    let site = r#"
[site]
name = "depot"
window = { start = "2027-01-16T20:00:00-06:00", hours = 10 }
stage = { start = "2027-01-16T08:00:00-06:00", hours = 10 }

[[cluster]]
name = "ccm-depot"
profile = "cisco-callmanager4"
target = "4.0(1)"
facts = { db_name = "CCM0300", busy_hour_call_attempts = 200, h323_trunks = ["ICT-DEPOT"] }

[[cluster.node]]
name = "depot-pub"
role = "publisher"
version = "3.3(3)"
facts = { runs_callmanager = true, devices = 300, backup = "depot-sub", os_version = "2000.2.4sr4", server_model = "MCS-7835H-2.4", terminal_services = false, installed_apps = [] }

[[cluster.node]]
name = "depot-sub"
role = "subscriber"
version = "3.3(3)"
facts = { devices = 200, os_version = "2000.2.4sr4", server_model = "MCS-7835H-2.4", terminal_services = false, installed_apps = [] }
"#;
    let p = plan(site);
    assert!(
        in_phase(&p, "staging").is_empty(),
        "{:?}",
        in_phase(&p, "staging")
    );
    for action in ["install-publisher", "install-subscriber", "upgrade-os"] {
        for s in steps_of(&p, action, None) {
            assert_eq!(phase_name(s), "window", "{}", s.id);
        }
    }
    let unstaged = plan(&site.replace(
        "stage = { start = \"2027-01-16T08:00:00-06:00\", hours = 10 }\n",
        "",
    ));
    assert_eq!(p.makespan_s, unstaged.makespan_s);
}
