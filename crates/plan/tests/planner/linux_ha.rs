//! Rules of the `linux-ha` profile (LHA-*): ferry's own rules for agent-managed services.

use super::common::*;

#[test]
fn stage_everywhere_before_any_switch_lha_03() {
    let p = plan(&example("linux-ha-pubsub"));
    assert_all_before(&steps_of(&p, "stage", None), &steps_of(&p, "switch", None));
}

#[test]
fn backup_healthy_before_primary_switches_lha_04() {
    let p = plan(&example("linux-ha-pair"));
    assert_all_before(
        &[step(&p, "kv/kv-b/health-gate")],
        &[step(&p, "kv/kv-a/switch")],
    );
}

#[test]
fn publisher_before_subscribers_and_replication_gate_last_lha_04_lha_06() {
    let p = plan(&example("linux-ha-pubsub"));
    assert_all_before(
        &[step(&p, "db/db-pub/health-gate")],
        &steps_of(&p, "switch", Some("subscriber")),
    );
    assert_all_before(
        &steps_of(&p, "health-gate", Some("subscriber")),
        &[step(&p, "db/replication-gate")],
    );
}

#[test]
fn one_at_a_time_strategy_serialises_subscribers_lha_07() {
    let fast = plan_with(&example("linux-ha-pubsub"), Some("fastest"));
    assert_some_overlap(&steps_of(&fast, "switch", Some("subscriber")));
    let slow = plan_with(&example("linux-ha-pubsub"), Some("one-at-a-time"));
    assert_one_at_a_time(&steps_of(&slow, "switch", Some("subscriber")));
    assert!(slow.makespan_s > fast.makespan_s);
}

#[test]
fn unhealthy_node_is_an_inhibitor_lha_08() {
    let site = example("linux-ha-pair").replace(
        "facts = { package_mb = 40 }\n\n[[cluster.node]]",
        "facts = { package_mb = 40, healthy = false }\n\n[[cluster.node]]",
    );
    let f = findings(&site);
    let inh = inhibitors(&f);
    assert_eq!(inh.len(), 1, "{f:?}");
    assert_eq!(inh[0].rule, "LHA-08");
    assert_eq!(inh[0].node.as_deref(), Some("kv-a"));
}

#[test]
fn supported_path_lha_02() {
    let p = plan(&example("linux-ha-pair"));
    assert_eq!(p.clusters[0].path, vec!["2.0.3", "2.1.0"]);
    assert_eq!(p.clusters[0].upgrade_type, "slot-switch");
}

#[test]
fn rollback_reverts_backup_first_lha_04() {
    let p = plan(&example("linux-ha-pair"));
    let revert_b = p
        .rollback
        .iter()
        .find(|s| s.id == "kv/kv-b/revert")
        .expect("backup revert");
    let revert_a = p
        .rollback
        .iter()
        .find(|s| s.id == "kv/kv-a/revert")
        .expect("primary revert");
    assert!(revert_b.end_s() <= revert_a.start_s);
}

#[test]
fn a_window_too_short_is_reported_lha_09() {
    let short = example("linux-ha-pubsub").replace("hours = 2", "hours = 0.25");
    let f = findings(&short);
    let w = findings_of(&f, "LHA-09");
    assert_eq!(w.len(), 1, "{f:?}");
    assert!(
        w[0].message.contains("0h18m") && w[0].message.contains("0h15m"),
        "{}",
        w[0].message
    );
    assert!(findings_of(&findings(&example("linux-ha-pubsub")), "LHA-09").is_empty());
}

#[test]
fn plans_show_site_time_when_the_window_is_booked() {
    let p = plan(&example("linux-ha-pair"));
    let text = ferry_plan::render::text::render_text(&p);
    assert!(
        text.contains("site time:           opens Sat 2026-12-05 22:00 -05:00, work ends Sat 2026-12-05 22:15 -05:00"),
        "{text}"
    );
    let mop = ferry_plan::render::mop::render_mop(&p);
    assert!(
        mop.contains("- **Planned start:** T+0:10 (Sat 2026-12-05 22:10 -05:00 site time)"),
        "{mop}"
    );
}

/// A publisher of an inventory service with `subscribers` replicas, each with a package to stage.
fn inventory_site(subscribers: usize) -> String {
    let mut site = String::from(
        "[site]\nname = \"inventory\"\n\n[[cluster]]\nname = \"inv\"\nprofile = \"linux-ha\"\ntarget = \"3.1.0\"\n\n\
         [[cluster.node]]\nname = \"inv-pub\"\nrole = \"publisher\"\nversion = \"3.0.4\"\n",
    );
    for i in 1..=subscribers {
        site.push_str(&format!(
            "\n[[cluster.node]]\nname = \"inv-r{i}\"\nrole = \"subscriber\"\nversion = \"3.0.4\"\nfacts = {{ package_mb = 120 }}\n"
        ));
    }
    site
}

/// LHA-03 over a large cluster: every node stages before any switches, through one sync point
/// instead of an edge from every stage to every switch, so the plan grows with the nodes, not
/// with their square; the sync point passes when the last stage ends, and `--explain` of a
/// switch names the stage it waited for through it.
#[test]
fn a_large_cluster_stages_before_any_switch_through_one_sync_point_lha_03() {
    let p = plan(&inventory_site(60));
    let stages = steps_of(&p, "stage", None);
    let switches = steps_of(&p, "switch", None);
    assert_eq!((stages.len(), switches.len()), (61, 61));
    assert_all_before(&stages, &switches);
    let syncs: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.kind == ferry_model::StepKind::Sync)
        .collect();
    assert_eq!(syncs.len(), 1, "one sync point");
    let sync = syncs[0];
    assert_eq!(sync.id, "inv/sync-LHA-03");
    assert_eq!(sync.rules, vec!["LHA-03"]);
    assert_eq!(sync.duration_s, 0);
    assert_eq!(sync.after.len(), 61);
    assert!(stages.iter().all(|s| sync.after.contains(&s.id)));
    assert_eq!(
        sync.start_s,
        stages.iter().map(|s| s.end_s()).max().expect("stages")
    );
    assert!(switches
        .iter()
        .all(|s| s.after.iter().any(|a| a == &sync.id)));
    assert!(
        p.edges.len() < 10 * 62,
        "{} edges for 62 nodes",
        p.edges.len()
    );
    let why = ferry_plan::explain(&p, "inv/inv-r7/switch").expect("explain");
    assert!(
        why.contains("inv/sync-LHA-03 (ends +")
            && why.contains("a sync point after 61 step(s); the last of them to end is inv/"),
        "{why}"
    );
}

/// LHA-03: the plan of a cluster twice as large has about twice as many edges (not four times).
#[test]
fn the_edges_of_a_cluster_grow_with_its_nodes_lha_03() {
    let small = plan(&inventory_site(100)).edges.len();
    let large = plan(&inventory_site(200)).edges.len();
    assert!(
        large * 10 <= small * 21,
        "{small} edges for 101 nodes, {large} for 201"
    );
}

#[test]
fn balanced_and_documented_plan_as_fastest_where_no_device_redundancy_is_declared_lha_07() {
    // linux-ha declares no devices to keep served (and its documented order is its only one):
    // both shared strategies plan as fastest, and the plan says so.
    let site = r#"[site]
name = "cache-pair"

[[cluster]]
name = "cache"
profile = "linux-ha"
target = "3.1.0"

[[cluster.node]]
name = "cache-1"
role = "publisher"
version = "3.0.2"

[[cluster.node]]
name = "cache-2"
role = "subscriber"
version = "3.0.2"

[[cluster.node]]
name = "cache-3"
role = "subscriber"
version = "3.0.2"
"#;
    for s in ["balanced", "documented"] {
        assert_planned_as_fastest(site, s);
    }
}

/// linux-ha's rule LHA-03: "stage everywhere while serving": the agent unpacks the package
/// into the inactive slot while the service runs from the active one. A pair that books the
/// afternoon for staging and the evening for the switches.
const STAGED_PAIR: &str = r#"
[site]
name = "cache-pair"
window = { start = "2027-02-13T19:00:00+00:00", hours = 1 }
stage = { start = "2027-02-13T13:00:00+00:00", hours = 4 }

[[cluster]]
name = "cache"
profile = "linux-ha"
target = "3.4.0"

[[cluster.node]]
name = "cache-1"
role = "primary"
version = "3.3.2"
facts = { package_mb = 120 }

[[cluster.node]]
name = "cache-2"
role = "backup"
version = "3.3.2"
facts = { package_mb = 120 }
"#;

#[test]
fn packages_are_staged_ahead_of_the_window_and_every_switch_stays_in_it_lha_03_lha_04() {
    let p = plan(STAGED_PAIR);
    assert_eq!(
        in_phase(&p, "staging"),
        vec![
            "cache-1/snapshot-config",
            "cache-1/stage",
            "cache-2/snapshot-config",
            "cache-2/stage",
        ]
    );
    // The switch takes the node down, and what follows it on the node waits for it.
    assert_eq!(
        in_phase(&p, "window"),
        vec![
            "cache-1/health-gate",
            "cache-1/switch",
            "cache-1/switchback",
            "cache-1/switchover",
            "cache-2/health-gate",
            "cache-2/switch",
        ]
    );
    for s in steps_of(&p, "stage", None) {
        assert!(s.rules.iter().any(|r| r == "LHA-03"), "{:?}", s.rules);
    }
    assert_edges_go_forward(&p);
    let unstaged = plan(&STAGED_PAIR.replace(
        "stage = { start = \"2027-02-13T13:00:00+00:00\", hours = 4 }\n",
        "",
    ));
    assert!(p.makespan_s < unstaged.makespan_s);
    assert_eq!(p.makespan_s, p.lower_bound_s);
}
