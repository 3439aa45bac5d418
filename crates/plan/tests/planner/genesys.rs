//! Rules of the `genesys-framework` profile (GEN-01 ... GEN-20), checked on plans of the example
//! sites and of small sites written here.

use super::common::*;
use ferry_model::{Impact, Phase, Plan, PlannedStep, Severity, StepKind};

const MAIN: &str = "genesys-framework";
const STANDALONE: &str = "genesys-standalone-cs";
const PROXY_PAIRS: &str = "genesys-proxy-pairs";
const INHIBITORS: &str = "genesys-inhibitors";

const LCA_ROLES: [&str; 4] = [
    "lca_host",
    "lca_scs_single_host",
    "lca_scs_primary_host",
    "lca_scs_backup_host",
];

/// A one-cluster site: `facts` is the cluster's inline fact table, each node is
/// (name, role, extra keys such as `target = "..."` or `facts = { ... }`). Nodes run 8.1.3 and
/// go to 8.5.101 unless told otherwise.
fn site(facts: &str, nodes: &[(&str, &str, &str)]) -> String {
    let mut s = format!(
        "[site]\nname = \"lab\"\nwindow = {{ start = \"2026-11-14T22:00:00-05:00\", hours = 8 }}\n\n\
         [[cluster]]\nname = \"g\"\nprofile = \"genesys-framework\"\ntarget = \"8.5.101\"\nfacts = {{ {facts} }}\n"
    );
    for (name, role, extra) in nodes {
        let version = if extra.contains("version =") {
            String::new()
        } else {
            "version = \"8.1.3\"\n".to_string()
        };
        s.push_str(&format!(
            "\n[[cluster.node]]\nname = \"{name}\"\nrole = \"{role}\"\n{version}{extra}\n"
        ));
    }
    s
}

/// The steps of the rollback plan with this ID.
fn rb<'a>(plan: &'a Plan, id: &str) -> &'a PlannedStep {
    plan.rollback
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no rollback step {id}"))
}

fn rb_steps<'a>(plan: &'a Plan, actions: &[&str], roles: &[&str]) -> Vec<&'a PlannedStep> {
    plan.rollback
        .iter()
        .filter(|s| actions.contains(&s.action.as_str()))
        .filter(|s| s.role.as_deref().is_some_and(|r| roles.contains(&r)))
        .collect()
}

/// The plan holds an ordering edge `from -> to` labelled with `rule`.
fn assert_edge(edges: &[ferry_model::plan::Edge], from: &str, to: &str, rule: &str) {
    assert!(
        edges
            .iter()
            .any(|e| e.from == from && e.to == to && e.rule == rule),
        "no edge {from} -> {to} labelled {rule}; edges into {to}: {:?}",
        edges
            .iter()
            .filter(|e| e.to == to)
            .map(|e| format!("{} ({})", e.from, e.rule))
            .collect::<Vec<_>>()
    );
}

fn measure(plan: &Plan, name: &str) -> u64 {
    plan.measures
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no measure {name}: {:?}", plan.measures))
        .duration_s
}

fn window_actions(plan: &Plan, node: &str) -> Vec<String> {
    plan.steps
        .iter()
        .filter(|s| s.node.as_deref() == Some(node) && s.phase == Phase::Window)
        .map(|s| s.action.clone())
        .collect()
}

fn steps_of_roles<'a>(plan: &'a Plan, action: &str, roles: &[&str]) -> Vec<&'a PlannedStep> {
    plan.steps
        .iter()
        .filter(|s| s.action == action)
        .filter(|s| s.role.as_deref().is_some_and(|r| roles.contains(&r)))
        .collect()
}

// --- GEN-01: path and upgrade type --------------------------------------------------------------

#[test]
fn supported_path_and_upgrade_types_gen_01() {
    let p = plan(&example(MAIN));
    assert_eq!(p.clusters[0].path, vec!["8.1.3", "8.5.101"]);
    assert_eq!(p.clusters[0].upgrade_type, "software-only-ha-813");
    assert!(steps_of(&p, "migrate-schema", None).is_empty());

    let s = plan(&example(STANDALONE));
    assert_eq!(s.clusters[0].upgrade_type, "schema-upgrade");
    assert_eq!(s.clusters[0].upgrade_type_rule, "GEN-01");
    assert_eq!(steps_of(&s, "migrate-schema", None).len(), 1);

    let g = plan(&example(PROXY_PAIRS));
    assert_eq!(g.clusters[0].upgrade_type, "software-only");
    assert!(steps_of(&g, "migrate-schema", None).is_empty());
    let f = findings(&example(PROXY_PAIRS));
    assert_eq!(
        findings_of(&f, "GEN-01").len(),
        1,
        "schema kept: info GEN-01"
    );
}

#[test]
fn unsupported_source_version_is_an_inhibitor_gen_01() {
    let text = site(
        "disconnect_switchover_timeout_s = 600",
        &[("dbs", "db_server", "version = \"8.0.1\"")],
    );
    let f = findings(&text);
    let inh = inhibitors(&f);
    assert_eq!(inh.len(), 1, "{f:?}");
    assert_eq!(inh[0].rule, "GEN-01");
}

// --- GEN-02: master before proxies --------------------------------------------------------------

#[test]
fn master_before_every_proxy_and_proxies_right_after_gen_02() {
    let p = plan(&example(MAIN));
    let master_done = step(&p, "genesys/confserv-bk/cs-restart-as-backup");
    let proxies = steps_of(&p, "proxy-stop-swap-folder", None);
    assert_eq!(proxies.len(), 2);
    assert_all_before(&[master_done], &proxies);
    for px in &proxies {
        assert_edge(&p.edges, &master_done.id, &px.id, "GEN-02");
        assert!(
            px.start_s <= master_done.end_s() + 300,
            "{} waits too long after the master (GEN-02: as soon as possible)",
            px.id
        );
    }
    assert!(measure(&p, "mixed_cs_versions") > 0, "GEN-02 measure");
}

#[test]
fn proxy_left_on_another_version_is_an_inhibitor_gen_02() {
    let text = site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("confserv", "cs_standalone", ""),
            ("csproxy", "cs_proxy", "target = \"8.5.100\""),
        ],
    );
    let f = findings(&text);
    let gen02 = findings_of(&f, "GEN-02");
    assert_eq!(gen02.len(), 1, "{f:?}");
    assert_eq!(gen02[0].severity, Severity::Inhibitor);
    assert_eq!(gen02[0].node.as_deref(), Some("csproxy"));
}

#[test]
fn single_language_813_master_exception_is_reported_gen_02() {
    let nodes = [
        ("confserv", "cs_standalone", ""),
        ("csproxy", "cs_proxy", ""),
    ];
    let with = findings(&site("single_language_db = true", &nodes));
    let info = findings_of(&with, "GEN-02");
    assert_eq!(info.len(), 1, "{with:?}");
    assert_eq!(info[0].severity, Severity::Info);
    let without = findings(&site("single_language_db = false", &nodes));
    assert!(findings_of(&without, "GEN-02").is_empty());
}

// --- GEN-03: disaster recovery ------------------------------------------------------------------

#[test]
fn dormant_copies_follow_the_master_and_the_replication_gen_03() {
    let p = plan(&example(STANDALONE));
    let master = step(&p, "genesys-branch/confserv/cs-standalone-start");
    let install = step(&p, "genesys-branch/confserv-dr/dormant-install");
    let verify = step(&p, "genesys-branch/confserv-dr/dormant-verify");
    let replicate = step(&p, "genesys-branch/replicate-db-to-dr");
    assert!(replicate.rules.contains(&"GEN-03".to_string()));
    assert_all_before(&[master], &[install]);
    assert_all_before(&[step(&p, "genesys-branch/migrate-schema")], &[replicate]);
    assert_all_before(&[replicate], &[verify]);
    assert_edge(&p.edges, &replicate.id, &verify.id, "GEN-03");
    assert!(verify.warning.as_deref().unwrap_or("").contains("GEN-03"));
}

#[test]
fn dormant_copy_left_on_another_version_is_a_warning_gen_03() {
    let f = findings(&site(
        "dr_mode = true",
        &[
            ("confserv", "cs_standalone", ""),
            ("confserv-dr", "cs_dormant", "target = \"8.5.100\""),
        ],
    ));
    let w = findings_of(&f, "GEN-03");
    assert_eq!(w.len(), 1, "{f:?}");
    assert_eq!(w[0].severity, Severity::Warning);
    assert!(
        w[0].message.contains("confserv-dr ends on 8.5.100"),
        "{}",
        w[0].message
    );
    assert!(findings_of(&findings(&example(STANDALONE)), "GEN-03").is_empty());
}

#[test]
fn dr_mode_without_dormant_copies_is_a_warning_gen_03() {
    let nodes = [("confserv", "cs_standalone", "")];
    let f = findings(&site("dr_mode = true", &nodes));
    let w = findings_of(&f, "GEN-03");
    assert_eq!(w.len(), 1, "{f:?}");
    assert_eq!(w[0].severity, Severity::Warning);
    let p = plan(&site("dr_mode = false, schema_upgrade = true", &nodes));
    assert!(steps_of(&p, "replicate-db-to-dr", None).is_empty());
}

// --- GEN-04: License Reporting Manager ----------------------------------------------------------

#[test]
fn lrm_85_present_is_an_inhibitor_gen_04() {
    let f = findings(&example(INHIBITORS));
    let lrm = findings_of(&f, "GEN-04");
    assert_eq!(lrm.len(), 1, "{f:?}");
    assert_eq!(lrm[0].severity, Severity::Inhibitor);
    assert!(lrm[0].message.contains("License Reporting Manager"));
    let nodes = [("confserv", "cs_standalone", "")];
    assert!(findings_of(
        &findings(&site("lrm_version = \"8.1.300\"", &nodes)),
        "GEN-04"
    )
    .is_empty());
}

// --- GEN-05: LCA prerequisites ------------------------------------------------------------------

#[test]
fn lca_prerequisites_are_inhibitors_gen_05() {
    let f = findings(&example(INHIBITORS));
    let gen05 = findings_of(&f, "GEN-05");
    let keys: Vec<&str> = gen05.iter().map(|x| x.key.as_str()).collect();
    assert!(gen05.iter().all(|x| x.severity == Severity::Inhibitor));
    assert!(
        keys.contains(&"lca-not-running/genesys-west/lca-cfg-b"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"scs-not-connected/genesys-west/lca-cfg-b"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"active-alarms/genesys-west/lca-cfg-a"),
        "{keys:?}"
    );
    assert_eq!(gen05.len(), 3, "{keys:?}");
}

#[test]
fn scs_upgraded_before_any_lca_gen_05() {
    let text = site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("scs-a", "scs_primary", ""),
            ("scs-b", "scs_backup", ""),
            ("lca-x", "lca_host", ""),
            ("lca-b", "lca_scs_primary_host", ""),
            ("lca-a", "lca_scs_backup_host", ""),
        ],
    );
    let p = plan(&text);
    let scs_done = step(&p, "g/scs-a/start-via-ml");
    let lca_first = [
        step(&p, "g/lca-x/upgrade-lca"),
        step(&p, "g/lca-b/stop-scs-switchover"),
    ];
    assert_all_before(&[scs_done], &lca_first);
    assert_edge(&p.edges, &scs_done.id, "g/lca-x/upgrade-lca", "GEN-05");
}

#[test]
fn lca_on_a_newer_release_than_its_scs_is_an_inhibitor_gen_05() {
    let text = site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("scs", "scs_single", "target = \"8.1.3\""),
            ("lca-x", "lca_host", ""),
        ],
    );
    let f = findings(&text);
    let gen05 = findings_of(&f, "GEN-05");
    assert_eq!(gen05.len(), 1, "{f:?}");
    assert_eq!(gen05[0].severity, Severity::Inhibitor);
    assert_eq!(gen05[0].node.as_deref(), Some("lca-x"));
}

// --- GEN-06: disconnect-switchover-timeout --------------------------------------------------------

#[test]
fn switchover_timeout_set_before_and_deleted_after_the_lca_upgrades_gen_06() {
    let p = plan(&example(MAIN));
    let set = step(&p, "genesys/set-disconnect-switchover-timeout");
    let del = step(&p, "genesys/delete-disconnect-switchover-timeout");
    let lca: Vec<&PlannedStep> = p
        .steps
        .iter()
        .filter(|s| s.role.as_deref().is_some_and(|r| LCA_ROLES.contains(&r)))
        .filter(|s| s.phase == Phase::Window)
        .collect();
    assert_eq!(lca.len(), 4 + 2 * 4, "four plain hosts, two SCS hosts");
    assert_all_before(&[set], &lca);
    assert_all_before(&lca, &[del]);
    assert_edge(&p.edges, &set.id, "genesys/lca-cfg-a/upgrade-lca", "GEN-06");
    assert_edge(
        &p.edges,
        "genesys/lca-mgmt-a/start-scs-as-backup",
        &del.id,
        "GEN-06",
    );
    assert_eq!(
        measure(&p, "raised_switchover_timeout"),
        del.end_s() - set.start_s,
        "GEN-06 measure"
    );
    // The site's value goes into the MOP.
    assert!(
        set.title.contains("disconnect-switchover-timeout = 600"),
        "{}",
        set.title
    );
    assert!(
        set.instructions
            .contains("`disconnect-switchover-timeout` = 600 (seconds)"),
        "{}",
        set.instructions
    );
    assert!(set.verify.contains("= 600"), "{}", set.verify);
    assert!(
        del.instructions.contains("set to 600"),
        "{}",
        del.instructions
    );
}

#[test]
fn missing_switchover_timeout_is_a_warning_gen_06() {
    let f = findings(&site("config_db_gb = 1", &[("lca-x", "lca_host", "")]));
    let w = findings_of(&f, "GEN-06");
    assert_eq!(w.len(), 1, "{f:?}");
    assert_eq!(w[0].severity, Severity::Warning);
}

// --- GEN-07: LCA order ----------------------------------------------------------------------------

#[test]
fn lca_one_host_at_a_time_scs_hosts_last_gen_07() {
    let p = plan(&example(MAIN));
    let plain = steps_of_roles(&p, "upgrade-lca", &["lca_host"]);
    assert_eq!(plain.len(), 4);
    let all_lca: Vec<&PlannedStep> = p
        .steps
        .iter()
        .filter(|s| s.role.as_deref().is_some_and(|r| LCA_ROLES.contains(&r)))
        .filter(|s| s.phase == Phase::Window)
        .collect();
    assert_one_at_a_time(&all_lca);
    let primary_host: Vec<&PlannedStep> = all_lca
        .iter()
        .copied()
        .filter(|s| s.node.as_deref() == Some("lca-mgmt-b"))
        .collect();
    let backup_host: Vec<&PlannedStep> = all_lca
        .iter()
        .copied()
        .filter(|s| s.node.as_deref() == Some("lca-mgmt-a"))
        .collect();
    assert_all_before(&plain, &primary_host);
    assert_all_before(&primary_host, &backup_host);
    let scs_host = [
        "stop-scs-switchover",
        "scs-switchover-complete",
        "upgrade-lca",
        "start-scs-as-backup",
    ];
    assert_eq!(window_actions(&p, "lca-mgmt-b"), scs_host);
    assert_eq!(window_actions(&p, "lca-mgmt-a"), scs_host);
    assert_eq!(
        step(&p, "genesys/lca-mgmt-b/scs-switchover-complete").kind,
        StepKind::Gate
    );
    assert_edge(
        &p.edges,
        "genesys/lca-mgmt-b/start-scs-as-backup",
        "genesys/lca-mgmt-a/stop-scs-switchover",
        "GEN-07",
    );
    // Each host's steps name the host and the timeout it must stay within.
    let lca = step(&p, "genesys/lca-cfg-a/upgrade-lca");
    assert_eq!(lca.title, "Upgrade LCA on gen-cfg-a");
    assert!(
        lca.instructions.contains("On gen-cfg-a: stop LCA"),
        "{}",
        lca.instructions
    );
    assert!(
        lca.instructions.contains("(600 s from stopping LCA)"),
        "{}",
        lca.instructions
    );
    assert!(lca.verify.contains("shows gen-cfg-a Up"), "{}", lca.verify);
    let stop = step(&p, "genesys/lca-mgmt-b/stop-scs-switchover");
    assert_eq!(
        stop.title,
        "Shut down the SCS running in primary mode on gen-mgmt-b"
    );
    assert!(stop
        .instructions
        .contains("The SCS on gen-mgmt-b runs in primary mode"));
    assert_eq!(
        step(&p, "genesys/lca-mgmt-a/start-scs-as-backup").title,
        "Start the SCS on gen-mgmt-a; it runs in backup mode"
    );
}

/// An SCS pair on hosts h-a (primary) and h-b (backup), their LCAs with the given roles.
fn scs_pair_site(lca_on_a: &str, lca_on_b: &str, scs_extra: &str) -> String {
    site(
        "disconnect_switchover_timeout_s = 600",
        &[
            (
                "scs-a",
                "scs_primary",
                &format!("facts = {{ host = \"h-a\" }}{scs_extra}"),
            ),
            (
                "scs-b",
                "scs_backup",
                &format!("facts = {{ host = \"h-b\" }}{scs_extra}"),
            ),
            ("lca-a", lca_on_a, "facts = { host = \"h-a\" }"),
            ("lca-b", lca_on_b, "facts = { host = \"h-b\" }"),
        ],
    )
}

#[test]
fn scs_host_roles_follow_the_scs_pair_gen_07() {
    // After the SCS pair upgrade (backup first) the SCS configured as backup runs in primary
    // mode: its host is lca_scs_primary_host.
    let good = scs_pair_site("lca_scs_backup_host", "lca_scs_primary_host", "");
    assert!(findings_of(&findings(&good), "GEN-07").is_empty());

    let swapped = scs_pair_site("lca_scs_primary_host", "lca_scs_backup_host", "");
    let f = findings(&swapped);
    let gen07 = findings_of(&f, "GEN-07");
    let mut keys: Vec<&str> = gen07.iter().map(|x| x.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "lca-scs-backup-host-mismatch/g",
            "lca-scs-primary-host-mismatch/g"
        ],
        "{f:?}"
    );
    assert!(gen07.iter().all(|x| x.severity == Severity::Inhibitor));
    assert!(gen07[0].message.contains("h-a") && gen07[0].message.contains("h-b"));

    // An SCS pair already on the target is not switched over by this plan: no finding.
    let kept = scs_pair_site(
        "lca_scs_primary_host",
        "lca_scs_backup_host",
        "\nversion = \"8.5.101\"",
    );
    assert!(findings_of(&findings(&kept), "GEN-07").is_empty());

    // A single SCS: its LCA must be the one on its host.
    let single = site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("scs", "scs_single", "facts = { host = \"h-a\" }"),
            ("lca-a", "lca_host", "facts = { host = \"h-a\" }"),
            ("lca-b", "lca_scs_single_host", "facts = { host = \"h-b\" }"),
        ],
    );
    let f = findings(&single);
    let gen07 = findings_of(&f, "GEN-07");
    assert_eq!(gen07.len(), 1, "{f:?}");
    assert_eq!(gen07[0].key, "lca-scs-single-host-mismatch/g");
}

#[test]
fn single_scs_host_stops_its_scs_around_the_lca_upgrade_gen_07() {
    let p = plan(&example(STANDALONE));
    assert_eq!(
        window_actions(&p, "lca-core"),
        ["stop-single-scs", "upgrade-lca", "start-single-scs-os"]
    );
    let single = step(&p, "genesys-branch/lca-core/stop-single-scs");
    assert_all_before(&steps_of_roles(&p, "upgrade-lca", &["lca_host"]), &[single]);
    assert!(single.rules.contains(&"GEN-07".to_string()));
}

// --- GEN-08: LCA upgrade within the timeout ---------------------------------------------------------

#[test]
fn lca_estimate_longer_than_the_timeout_is_an_inhibitor_gen_08() {
    let f = findings(&example(INHIBITORS));
    let gen08 = findings_of(&f, "GEN-08");
    assert_eq!(gen08.len(), 5, "one per LCA host: {f:?}");
    assert!(gen08.iter().all(|x| x.severity == Severity::Inhibitor));
    assert!(gen08[0].message.contains("240"), "{}", gen08[0].message);
    assert!(findings_of(&findings(&example(MAIN)), "GEN-08").is_empty());
}

// --- GEN-09: no switchover while LCA is upgraded ------------------------------------------------------

#[test]
fn lca_upgrade_carries_the_no_switchover_annotation_gen_09() {
    let p = plan(&example(MAIN));
    let lca = steps_of(&p, "upgrade-lca", None);
    assert_eq!(lca.len(), 6);
    for s in &lca {
        assert!(s.rules.contains(&"GEN-09".to_string()), "{}", s.id);
        assert_eq!(s.impact, Impact::Degraded, "{}", s.id);
        assert!(s.impact_note.contains("do not switch over"), "{}", s.id);
    }
    // The SCS hosts' LCA upgrades stop or switch over SCS, which the Message Server pair needs
    // for its switchover: the pair is done before them.
    let ms_done = step(&p, "genesys/ms-a/start-via-ml");
    let scs_hosts: Vec<&PlannedStep> = p
        .steps
        .iter()
        .filter(|s| matches!(s.node.as_deref(), Some("lca-mgmt-a" | "lca-mgmt-b")))
        .filter(|s| s.phase == Phase::Window)
        .collect();
    assert_eq!(scs_hosts.len(), 8);
    assert_all_before(&[ms_done], &scs_hosts);
    assert_edge(
        &p.edges,
        &ms_done.id,
        "genesys/lca-mgmt-b/stop-scs-switchover",
        "GEN-09",
    );
    // The LCA upgrades of the other hosts run while the Message Server pair is upgraded...
    let plain = steps_of_roles(&p, "upgrade-lca", &["lca_host"]);
    let ms_first = step(&p, "genesys/ms-b/ml-shutdown");
    assert!(
        plain
            .iter()
            .all(|s| s.start_s >= ms_first.start_s && s.end_s() <= ms_done.start_s),
        "plain hosts' LCA alongside the Message Server pair"
    );
    // ...but never during its switchover.
    let mut apart = lca.clone();
    apart.push(step(&p, "genesys/ms-a/ml-switchover"));
    assert_one_at_a_time(&apart);
}

/// SCS pair on h-a and h-b; the Message Server pair on hosts without SCS (primary on h-c, backup
/// on h-d); LCA on each of these hosts and on two more.
fn ms_on_plain_hosts() -> String {
    let host = |h: &str| format!("facts = {{ host = \"{h}\" }}");
    let nodes: Vec<(String, &str, String)> = vec![
        ("scs-a".into(), "scs_primary", host("h-a")),
        ("scs-b".into(), "scs_backup", host("h-b")),
        ("ms-a".into(), "ms_primary", host("h-c")),
        ("ms-b".into(), "ms_backup", host("h-d")),
        ("lca-d".into(), "lca_host", host("h-d")),
        ("lca-c".into(), "lca_host", host("h-c")),
        ("lca-e".into(), "lca_host", host("h-e")),
        ("lca-f".into(), "lca_host", host("h-f")),
        ("lca-b".into(), "lca_scs_primary_host", host("h-b")),
        ("lca-a".into(), "lca_scs_backup_host", host("h-a")),
    ];
    let nodes: Vec<(&str, &str, &str)> = nodes
        .iter()
        .map(|(n, r, e)| (n.as_str(), *r, e.as_str()))
        .collect();
    site("disconnect_switchover_timeout_s = 600", &nodes)
}

#[test]
fn no_message_server_switchover_during_any_lca_upgrade_gen_09() {
    let p = plan(&ms_on_plain_hosts());
    let switchover = step(&p, "g/ms-a/ml-switchover");
    let lca = steps_of(&p, "upgrade-lca", None);
    assert_eq!(lca.len(), 6);
    // The switchover is due while the plain hosts' LCA upgrades still run: a limit, not an
    // order, keeps it apart from every one of them (the peer's host included).
    let backup_up = step(&p, "g/ms-b/start-via-ml");
    let last_plain = steps_of_roles(&p, "upgrade-lca", &["lca_host"])
        .iter()
        .map(|s| s.end_s())
        .max()
        .unwrap();
    assert!(backup_up.end_s() < last_plain, "the limit is exercised");
    let mut apart = lca.clone();
    apart.push(switchover);
    assert_one_at_a_time(&apart);
}

// --- GEN-10 / GEN-11: Management Layer servers --------------------------------------------------------

/// Steps that stop, start, switch over or install a server through the LCA of its host.
const ON_HOST: [&str; 11] = [
    "ml-shutdown",
    "ml-switchover",
    "install-ml",
    "start-via-ml",
    "start-scs-via-os",
    "dbs-stop",
    "dbs-install",
    "dbs-start",
    "stop-scs-switchover",
    "upgrade-lca",
    "start-scs-as-backup",
];

fn on_host<'a>(plan: &'a Plan, nodes: &[&str]) -> Vec<&'a PlannedStep> {
    plan.steps
        .iter()
        .filter(|s| s.phase == Phase::Window && ON_HOST.contains(&s.action.as_str()))
        .filter(|s| s.node.as_deref().is_some_and(|n| nodes.contains(&n)))
        .collect()
}

#[test]
fn one_step_at_a_time_on_each_host_gen_10() {
    // A Message Server shares its host with an LCA upgraded alongside the pair.
    let p = plan(&ms_on_plain_hosts());
    for nodes in [["ms-b", "lca-d"], ["ms-a", "lca-c"]] {
        let steps = on_host(&p, &nodes);
        assert_eq!(steps.len(), 4, "{nodes:?}");
        assert_one_at_a_time(&steps);
    }
    // Without the limit ms-b's installation would start while lca-d is upgraded.
    let lca_d = step(&p, "g/lca-d/upgrade-lca");
    let install = step(&p, "g/ms-b/install-ml");
    assert!(lca_d.start_s < step(&p, "g/ms-b/upload-template").end_s());
    assert_eq!(
        install.start_s,
        lca_d.end_s(),
        "waits for the LCA of its host"
    );

    // DB Server shares br-cfg with lca-cfg: it waits for that LCA, and runs alongside the LCA
    // upgrade of another host.
    let s = plan(&example(STANDALONE));
    let br_cfg = on_host(&s, &["dbs", "lca-cfg"]);
    assert_eq!(br_cfg.len(), 4);
    assert_one_at_a_time(&br_cfg);
    assert_some_overlap(&[
        step(&s, "genesys-branch/dbs/dbs-install"),
        step(&s, "genesys-branch/lca-prx/upgrade-lca"),
    ]);
}

#[test]
fn node_without_host_is_a_warning_gen_10() {
    let f = findings(&site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("lca-x", "lca_host", "facts = { host = \"h-x\" }"),
            ("lca-y", "lca_host", ""),
            ("confserv", "cs_standalone", ""),
        ],
    ));
    let gen10 = findings_of(&f, "GEN-10");
    assert_eq!(gen10.len(), 1, "{f:?}");
    assert_eq!(gen10[0].severity, Severity::Warning);
    assert_eq!(gen10[0].node.as_deref(), Some("lca-y"));
}

#[test]
fn management_layer_pair_backup_first_gen_11() {
    let p = plan(&example(MAIN));
    let backup = [
        "ml-shutdown",
        "export-options",
        "upload-template",
        "install-ml",
        "start-via-ml",
    ];
    let primary = [
        "ml-switchover",
        "export-options",
        "upload-template",
        "install-ml",
        "start-via-ml",
    ];
    assert_eq!(window_actions(&p, "scs-b"), backup);
    assert_eq!(window_actions(&p, "scs-a"), primary);
    assert_eq!(window_actions(&p, "ms-a"), primary);
    assert_eq!(
        window_actions(&p, "ms-b"),
        [
            "ml-shutdown",
            "export-options",
            "upload-template",
            "install-ml",
            "update-log-db-schema",
            "start-via-ml"
        ]
    );
    for (b, a) in [("scs-b", "scs-a"), ("ms-b", "ms-a")] {
        let up = format!("genesys/{b}/start-via-ml");
        let sw = format!("genesys/{a}/ml-switchover");
        assert_all_before(&[step(&p, &up)], &[step(&p, &sw)]);
        assert_edge(&p.edges, &up, &sw, "GEN-11");
    }
}

#[test]
fn log_database_schema_updated_once_with_the_first_message_server_gen_11() {
    // Whichever server of the pair the site marks, the update runs once, with the backup,
    // which is upgraded first.
    for marked in ["ms-a", "ms-b"] {
        let mark = |n: &str| {
            if n == marked {
                "facts = { log_db_schema_update = true }"
            } else {
                ""
            }
        };
        let p = plan(&site(
            "config_db_gb = 1",
            &[
                ("ms-a", "ms_primary", mark("ms-a")),
                ("ms-b", "ms_backup", mark("ms-b")),
            ],
        ));
        let update = steps_of(&p, "update-log-db-schema", None);
        assert_eq!(update.len(), 1, "{marked}");
        assert_eq!(update[0].node.as_deref(), Some("ms-b"), "{marked}");
    }
    // The backup already runs the target: the primary is the first upgraded.
    let p = plan(&site(
        "config_db_gb = 1",
        &[
            ("ms-a", "ms_primary", ""),
            (
                "ms-b",
                "ms_backup",
                "version = \"8.5.101\"\nfacts = { log_db_schema_update = true }",
            ),
        ],
    ));
    let update = steps_of(&p, "update-log-db-schema", None);
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].node.as_deref(), Some("ms-a"));
    // Not marked: no update.
    let p = plan(&site(
        "config_db_gb = 1",
        &[("ms-a", "ms_primary", ""), ("ms-b", "ms_backup", "")],
    ));
    assert!(steps_of(&p, "update-log-db-schema", None).is_empty());
}

#[test]
fn management_layer_stops_and_starts_gen_10() {
    let p = plan(&example(STANDALONE));
    assert_eq!(
        window_actions(&p, "scs"),
        [
            "ml-shutdown",
            "export-options",
            "upload-template",
            "install-ml",
            "start-scs-via-os"
        ]
    );
    assert!(steps_of_roles(&p, "start-via-ml", &["scs_single"]).is_empty());
    assert!(!steps_of_roles(&p, "start-via-ml", &["ms_single"]).is_empty());
    let scs_up = step(&p, "genesys-branch/scs/start-scs-via-os");
    let ms_down = step(&p, "genesys-branch/ms/ml-shutdown");
    assert_all_before(&[scs_up], &[ms_down]);
    assert_edge(&p.edges, &scs_up.id, &ms_down.id, "GEN-10");
    // Installation packages are delivered before the window.
    let deliver = steps_of(&p, "deliver-ip", None);
    assert_eq!(deliver.len(), 9);
    assert!(deliver.iter().all(|s| s.phase == Phase::Prepare));
    assert!(deliver[0].rules.contains(&"GEN-10".to_string()));
}

// --- GEN-12: Configuration Server prerequisites ---------------------------------------------------------

#[test]
fn configuration_server_after_db_server_latest_lca_and_scs_gen_12() {
    let p = plan(&example(MAIN));
    let first_cs = step(&p, "genesys/confserv-bk/cs-stop-swap-folder");
    let dbs = step(&p, "genesys/dbs/dbs-start");
    let lca = steps_of(&p, "upgrade-lca", None);
    let scs = steps_of_roles(&p, "start-via-ml", &["scs_primary", "scs_backup"]);
    assert_all_before(&[dbs], &[first_cs]);
    assert_all_before(&lca, &[first_cs]);
    assert_all_before(&scs, &[first_cs]);
    assert_edge(&p.edges, &dbs.id, &first_cs.id, "GEN-12");
    assert_edge(
        &p.edges,
        "genesys/lca-cfg-a/upgrade-lca",
        &first_cs.id,
        "GEN-12",
    );
    assert_edge(
        &p.edges,
        "genesys/scs-a/start-via-ml",
        &first_cs.id,
        "GEN-12",
    );
}

#[test]
fn db_server_runs_alongside_the_lca_upgrades_but_no_configuration_change_gen_12() {
    let p = plan(&example(MAIN));
    let stop = step(&p, "genesys/dbs/dbs-stop");
    let start = step(&p, "genesys/dbs/dbs-start");
    let set = step(&p, "genesys/set-disconnect-switchover-timeout");
    let del = step(&p, "genesys/delete-disconnect-switchover-timeout");
    // DB Server does not wait for the whole LCA phase, only for what shares its host...
    assert!(stop.start_s < del.start_s);
    // ...and it is stopped and started through SCS before the SCS hosts' LCA upgrades stop or
    // switch over SCS (GEN-07).
    let scs_host = step(&p, "genesys/lca-mgmt-b/stop-scs-switchover");
    assert_all_before(&[start], &[scs_host]);
    assert_edge(&p.edges, &start.id, &scs_host.id, "GEN-07");
    // Configuration changes are written through DB Server: templates and the SCS option are
    // saved before it stops, the option is deleted once it runs again.
    let mut writes = steps_of(&p, "upload-template", None);
    assert_eq!(writes.len(), 4);
    writes.push(set);
    assert_all_before(&writes, &[stop]);
    assert_all_before(&[start], &[del]);
    assert_edge(&p.edges, "genesys/ms-a/upload-template", &stop.id, "GEN-12");
    assert_edge(&p.edges, &set.id, &stop.id, "GEN-12");
    assert_edge(&p.edges, &start.id, &del.id, "GEN-12");
    // The texts name the server and its host.
    assert!(stop.verify.contains("gone on gen-cfg-a"), "{}", stop.verify);
    assert!(step(&p, "genesys/dbs/dbs-install")
        .instructions
        .contains("8.5.101 IP installer on gen-cfg-a"));
}

#[test]
fn pairs_ending_on_different_versions_are_inhibitors_gen_12() {
    let f = findings(&example(INHIBITORS));
    let pair = findings_of(&f, "GEN-12");
    assert_eq!(pair.len(), 1, "{f:?}");
    assert_eq!(pair[0].severity, Severity::Inhibitor);
    assert!(pair[0].message.contains("confserv-bk ends on 8.5.100"));

    let proxies = site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("px-b", "cs_proxy_backup", "target = \"8.5.100\""),
            ("px", "cs_proxy_primary", ""),
        ],
    );
    let f = findings(&proxies);
    assert_eq!(findings_of(&f, "GEN-12").len(), 1, "{f:?}");
}

#[test]
fn configuration_server_ahead_of_scs_is_an_inhibitor_gen_12() {
    let text = site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("scs", "scs_single", "target = \"8.1.3\""),
            ("confserv", "cs_standalone", ""),
        ],
    );
    let f = findings(&text);
    let gen12 = findings_of(&f, "GEN-12");
    assert_eq!(gen12.len(), 1, "{f:?}");
    assert_eq!(gen12[0].severity, Severity::Inhibitor);
}

#[test]
fn lca_left_behind_the_configuration_server_is_a_warning_gen_12() {
    let text = site(
        "disconnect_switchover_timeout_s = 600",
        &[
            ("confserv", "cs_standalone", ""),
            ("lca-cfg", "lca_host", "target = \"8.1.3\""),
        ],
    );
    let f = findings(&text);
    let gen12 = findings_of(&f, "GEN-12");
    assert_eq!(gen12.len(), 1, "{f:?}");
    assert_eq!(gen12[0].severity, Severity::Warning);
    assert!(gen12[0].message.contains("lca-cfg ends on 8.1.3"));
}

// --- GEN-13: legacy database --------------------------------------------------------------------------

#[test]
fn legacy_database_kept_for_rollback_gen_13() {
    let p = plan(&example(MAIN));
    let keep = step(&p, "genesys/keep-legacy-db");
    assert!(keep.rules.contains(&"GEN-13".to_string()));
    assert!(keep.warning.as_deref().unwrap_or("").contains("legacy"));
    assert_all_before(
        &[step(&p, "genesys/confserv-bk/cs-restart-as-backup")],
        &[keep],
    );
    assert!(step(&p, "genesys/backup-config-db")
        .rules
        .contains(&"GEN-13".to_string()));
}

#[test]
fn rollback_to_a_pre_85_master_stops_both_servers_first_gen_13() {
    // The main example goes back to 8.1.3: both master servers are down before an old one starts.
    let p = plan(&example(MAIN));
    let stop_remaining = rb(&p, "genesys/confserv/rb-stop-remaining");
    let start_first = rb(&p, "genesys/confserv-bk/rb-start-old-backup");
    assert!(stop_remaining.end_s() <= start_first.start_s);
    assert!(start_first.rules.contains(&"GEN-13".to_string()));
    let start_second = rb(&p, "genesys/confserv/rb-start-old-remaining");
    assert!(start_first.end_s() <= start_second.start_s);
    assert!(p
        .rollback_edges
        .iter()
        .any(|e| e.rule == "GEN-13" && e.from == start_first.id && e.to == start_second.id));
    // From 8.5 the pair goes back backup first, one server at a time.
    let g = plan(&example(PROXY_PAIRS));
    let b = rb(&g, "genesys-north/confserv-bk/rb-start-old-backup");
    let a = rb(&g, "genesys-north/confserv/rb-stop-remaining");
    assert!(b.end_s() <= a.start_s);
}

// --- GEN-14: Configuration Server behaviour during the upgrade ------------------------------------------

#[test]
fn configuration_server_steps_carry_their_impact_gen_14() {
    let p = plan(&example(PROXY_PAIRS));
    let ro = step(&p, "genesys-north/confserv/force-read-only");
    assert!(ro.rules.contains(&"GEN-14".to_string()));
    assert!(ro.impact_note.contains("read-only"));
    let stop = step(&p, "genesys-north/confserv-bk/cs-stop-swap-folder");
    assert!(stop.rules.contains(&"GEN-14".to_string()));
    assert_eq!(stop.impact, Impact::Down);
    assert!(stop.impact_note.contains("not redundant"));
    let old = step(&p, "genesys-north/confserv/cs-stop-old-primary");
    assert!(old.impact_note.contains("sessions are not preserved"));
    assert_eq!(
        measure(&p, "master_not_redundant"),
        step(&p, "genesys-north/confserv-bk/cs-restart-as-backup").end_s() - stop.start_s
    );
    let f = findings(&example(STANDALONE));
    let info = findings_of(&f, "GEN-14");
    assert_eq!(info.len(), 1, "{f:?}");
    assert_eq!(info[0].severity, Severity::Info);
}

#[test]
fn no_management_layer_switchover_during_the_configuration_server_upgrade_gen_14() {
    let text = site(
        "config_db_gb = 1",
        &[
            ("ms-a", "ms_primary", ""),
            ("ms-b", "ms_backup", ""),
            ("dbs", "db_server", ""),
            ("confserv", "cs_standalone", ""),
        ],
    );
    let p = plan(&text);
    let ms = steps_of(&p, "start-via-ml", None);
    assert_all_before(&ms, &[step(&p, "g/confserv/cs-standalone-stop")]);
    assert_edge(
        &p.edges,
        "g/ms-a/start-via-ml",
        "g/confserv/cs-standalone-stop",
        "GEN-14",
    );
}

// --- GEN-15: standalone Configuration Server -------------------------------------------------------------

#[test]
fn standalone_configuration_server_procedure_gen_15() {
    let p = plan(&example(STANDALONE));
    assert_eq!(
        window_actions(&p, "confserv"),
        [
            "cs-install-new-instance",
            "cs-standalone-stop",
            "cs-standalone-swap-folder",
            "cs-standalone-start"
        ]
    );
    let backup = step(&p, "genesys-branch/backup-config-db");
    let install = step(&p, "genesys-branch/confserv/cs-install-new-instance");
    let migrate = step(&p, "genesys-branch/migrate-schema");
    let stop = step(&p, "genesys-branch/confserv/cs-standalone-stop");
    let start = step(&p, "genesys-branch/confserv/cs-standalone-start");
    assert_all_before(&[backup], &[install, migrate]);
    assert_all_before(&[install, migrate], &[stop]);
    assert_edge(&p.edges, &backup.id, &install.id, "GEN-15");
    assert_edge(&p.edges, &migrate.id, &stop.id, "GEN-15");
    assert_eq!(
        measure(&p, "configuration_server_downtime"),
        start.end_s() - stop.start_s
    );
    // GEN-02: mixed versions from the master's stop until the proxy runs the new version.
    assert_eq!(
        measure(&p, "mixed_cs_versions_standalone"),
        step(&p, "genesys-branch/csproxy/proxy-start-new").end_s() - stop.start_s
    );
    // The backup follows the window's other configuration changes (templates, SCS options).
    assert_all_before(
        &[step(
            &p,
            "genesys-branch/delete-disconnect-switchover-timeout",
        )],
        &[backup],
    );
    assert_all_before(&steps_of(&p, "upload-template", None), &[backup]);
}

// --- GEN-16: HA pair 8.1.3 -> 8.5.101, same schema ----------------------------------------------------------

#[test]
fn ha_pair_813_same_schema_procedure_gen_16() {
    let p = plan(&example(MAIN));
    assert_eq!(
        window_actions(&p, "confserv-bk"),
        [
            "cs-install-new-instance",
            "cs-stop-swap-folder",
            "cs-start-new-backup-813",
            "gate-running-as-backup",
            "cs-stop-upgrade-mode-primary",
            "cs-restart-as-backup"
        ]
    );
    assert_eq!(
        window_actions(&p, "confserv"),
        [
            "cs-stop-old-primary",
            "gate-clients-migrated",
            "cs-install-on-old-primary-host",
            "cs-start-new-as-backup",
            "gate-new-backup-initialized"
        ]
    );
    let gate = step(&p, "genesys/confserv-bk/gate-running-as-backup");
    assert_eq!(gate.kind, StepKind::Gate);
    assert!(gate.instructions.contains("21-25303") && gate.instructions.contains("21-22172"));
    let stop_old = step(&p, "genesys/confserv/cs-stop-old-primary");
    assert_all_before(&[gate], &[stop_old]);
    assert_edge(&p.edges, &gate.id, &stop_old.id, "GEN-16");
    assert_all_before(
        &[step(&p, "genesys/confserv/gate-new-backup-initialized")],
        &[step(&p, "genesys/confserv-bk/cs-stop-upgrade-mode-primary")],
    );
    assert!(steps_of(&p, "force-read-only", None).is_empty());
}

#[test]
fn ha_pair_813_needs_the_811_schema_gen_16() {
    let text = example(MAIN).replace(
        "config_db_schema = \"8.1.1\"",
        "config_db_schema = \"8.1.2\"",
    );
    let p = plan(&text);
    assert_eq!(p.clusters[0].upgrade_type, "software-only");
    assert!(steps_of(&p, "gate-running-as-backup", None).is_empty());
    assert_eq!(steps_of(&p, "gate-upgrade-mode-ready", None).len(), 1);
}

// --- GEN-17: HA pair, general procedure with upgrade mode ------------------------------------------------

#[test]
fn ha_pair_upgrade_mode_gates_gen_17() {
    let p = plan(&example(PROXY_PAIRS));
    let ro = step(&p, "genesys-north/confserv/force-read-only");
    let install = step(&p, "genesys-north/confserv-bk/cs-install-new-instance");
    let stop_bk = step(&p, "genesys-north/confserv-bk/cs-stop-swap-folder");
    let start = step(&p, "genesys-north/confserv-bk/cs-start-upgrade-mode");
    let ready = step(&p, "genesys-north/confserv-bk/gate-upgrade-mode-ready");
    let stop_old = step(&p, "genesys-north/confserv/cs-stop-old-primary");
    let new_backup = step(&p, "genesys-north/confserv/gate-new-backup-initialized");
    let promote = step(&p, "genesys-north/confserv-bk/cs-stop-upgrade-mode-primary");
    assert_eq!(ready.kind, StepKind::Gate);
    assert_eq!(new_backup.kind, StepKind::Gate);
    assert!(ready.instructions.contains("21-22170") && ready.instructions.contains("21-22171"));
    assert!(
        start.instructions.contains("21-25301") && start.instructions.contains("upgrade-mode=1")
    );
    assert_all_before(&[install], &[ro]);
    assert_all_before(&[ro], &[stop_bk]);
    assert_all_before(&[ready], &[stop_old]);
    assert_all_before(&[new_backup], &[promote]);
    assert_edge(&p.edges, &install.id, &ro.id, "GEN-17");
    assert_edge(&p.edges, &ro.id, &stop_bk.id, "GEN-17");
    assert_edge(&p.edges, &ready.id, &stop_old.id, "GEN-17");
    assert_edge(&p.edges, &new_backup.id, &promote.id, "GEN-17");
    assert_eq!(
        measure(&p, "configuration_read_only"),
        promote.end_s() - ro.start_s
    );
}

#[test]
fn ha_pair_schema_upgrade_migrates_while_read_only_gen_17() {
    let text = example(MAIN).replace("schema_upgrade = false", "schema_upgrade = true");
    let p = plan(&text);
    assert_eq!(p.clusters[0].upgrade_type, "schema-upgrade");
    let ro = step(&p, "genesys/confserv/force-read-only");
    let migrate = step(&p, "genesys/migrate-schema");
    let point = step(&p, "genesys/confserv-bk/point-to-new-db");
    let stop_bk = step(&p, "genesys/confserv-bk/cs-stop-swap-folder");
    assert_all_before(&[ro], &[migrate]);
    assert_all_before(&[migrate], &[point]);
    assert_all_before(&[point], &[stop_bk]);
    assert_edge(&p.edges, &ro.id, &migrate.id, "GEN-17");
    assert_edge(&p.edges, &migrate.id, &point.id, "GEN-17");
}

// --- GEN-18: proxies ---------------------------------------------------------------------------------

#[test]
fn proxy_procedure_and_pairs_backup_first_gen_18() {
    let p = plan(&example(PROXY_PAIRS));
    assert_eq!(
        window_actions(&p, "prx-east-bk"),
        [
            "proxy-export-options",
            "proxy-install-new-instance",
            "proxy-stop-swap-folder",
            "proxy-start-new"
        ]
    );
    assert_eq!(
        window_actions(&p, "prx-east"),
        [
            "proxy-export-options",
            "proxy-install-new-instance",
            "proxy-stop-swap-folder",
            "proxy-clients-migrated",
            "proxy-start-new"
        ]
    );
    for (b, a) in [("prx-east-bk", "prx-east"), ("prx-west-bk", "prx-west")] {
        let up = format!("genesys-north/{b}/proxy-start-new");
        let down = format!("genesys-north/{a}/proxy-stop-swap-folder");
        assert_all_before(&[step(&p, &up)], &[step(&p, &down)]);
        assert_edge(&p.edges, &up, &down, "GEN-18");
    }
    let confirm = step(&p, "genesys-north/confirm-no-pending-updates");
    assert_eq!(confirm.kind, StepKind::Gate);
    assert_all_before(&[confirm], &steps_of(&p, "proxy-stop-swap-folder", None));
    assert_edge(
        &p.edges,
        &confirm.id,
        "genesys-north/prx-east-bk/proxy-stop-swap-folder",
        "GEN-18",
    );
    // Checked once the upgraded master serves, no longer read-only.
    let promoted = step(&p, "genesys-north/confserv-bk/cs-stop-upgrade-mode-primary");
    assert_all_before(&[promoted], &[confirm]);
    assert_edge(&p.edges, &promoted.id, &confirm.id, "GEN-18");
    // Like every Configuration Server procedure, the proxies start from the database backup.
    let backup = step(&p, "genesys-north/backup-config-db");
    assert_all_before(&[backup], &steps_of(&p, "proxy-export-options", None));
    assert_edge(
        &p.edges,
        &backup.id,
        "genesys-north/prx-west/proxy-export-options",
        "GEN-18",
    );
    // No read-only mode for proxies, no .conf copying.
    let ro = steps_of(&p, "force-read-only", None);
    assert!(ro.iter().all(|s| s.role.as_deref() == Some("cs_primary")));
    assert!(
        step(&p, "genesys-north/prx-east/proxy-install-new-instance")
            .instructions
            .contains("Copy no `*.conf`")
    );
    // Pairs of different regions run side by side; the one-at-a-time strategy serialises them.
    assert_some_overlap(&steps_of(&p, "proxy-stop-swap-folder", None));
    let slow = plan_with(&example(PROXY_PAIRS), Some("one-at-a-time"));
    let proxy_steps: Vec<&PlannedStep> = slow
        .steps
        .iter()
        .filter(|s| s.action == "proxy-stop-swap-folder" || s.action == "proxy-start-new")
        .collect();
    assert_one_at_a_time(&proxy_steps);
}

// --- GEN-19 / GEN-20: rollback ----------------------------------------------------------------------------

const MASTER: [&str; 3] = ["cs_primary", "cs_backup", "cs_standalone"];
const PROXIES: [&str; 3] = ["cs_proxy", "cs_proxy_primary", "cs_proxy_backup"];
const RB_START: [&str; 2] = ["rb-start-old-backup", "rb-start-old-remaining"];
const RB_STOP: [&str; 2] = ["rb-stop-backup", "rb-stop-remaining"];

#[test]
fn rollback_with_operational_master_proxies_first_backup_first_gen_19() {
    let p = plan(&example(PROXY_PAIRS));
    assert_all_before(
        &rb_steps(&p, &RB_START, &PROXIES),
        &rb_steps(&p, &RB_STOP, &MASTER),
    );
    let b = rb(&p, "genesys-north/prx-east-bk/rb-start-old-backup");
    let a = rb(&p, "genesys-north/prx-east/rb-stop-remaining");
    assert!(b.end_s() <= a.start_s);
    assert!(a.rules.contains(&"GEN-19".to_string()));
    let verify = rb(&p, "genesys-north/rb-verify-folders");
    assert!(p
        .rollback
        .iter()
        .all(|s| s.id == verify.id || s.end_s() <= verify.start_s));
    assert!(p
        .rollback_edges
        .iter()
        .any(|e| e.rule == "GEN-19" && e.to == "genesys-north/confserv-bk/rb-stop-backup"));
}

#[test]
fn rollback_with_master_down_master_first_gen_20() {
    let text = example(PROXY_PAIRS).replace(
        "config_db_gb = 3",
        "config_db_gb = 3, master_operational = false",
    );
    let p = plan(&text);
    assert_all_before(
        &rb_steps(&p, &RB_START, &MASTER),
        &rb_steps(&p, &RB_STOP, &PROXIES),
    );
    let b = rb(&p, "genesys-north/confserv-bk/rb-start-old-backup");
    let a = rb(&p, "genesys-north/confserv/rb-stop-remaining");
    assert!(
        b.end_s() <= a.start_s,
        "legacy 8.5 master pair: backup first"
    );
    assert!(p
        .rollback_edges
        .iter()
        .any(|e| e.rule == "GEN-20" && e.from == b.id && e.to == a.id));
    let ro = rb(&p, "genesys-north/rb-force-read-only");
    assert_all_before(&[ro], &rb_steps(&p, &RB_STOP, &MASTER));
    assert!(p
        .rollback_edges
        .iter()
        .any(|e| e.rule == "GEN-20" && e.to == "genesys-north/prx-east-bk/rb-stop-backup"));

    // With a database restore: DB Servers stop and the DBMS is restored first; the old backup
    // starts only once the DB Servers run again.
    let restore = example(PROXY_PAIRS).replace(
        "config_db_gb = 3",
        "config_db_gb = 3, master_operational = false, db_restore = true",
    );
    let p = plan(&restore);
    assert!(p.rollback.iter().all(|s| s.action != "rb-force-read-only"));
    let db = rb(&p, "genesys-north/rb-restore-config-db");
    let dbs_up = rb(&p, "genesys-north/rb-start-db-servers");
    let stop = rb(&p, "genesys-north/confserv-bk/rb-stop-backup");
    let start = rb(&p, "genesys-north/confserv-bk/rb-start-old-backup");
    assert!(db.end_s() <= stop.start_s);
    assert!(dbs_up.end_s() <= start.start_s);
    assert!(rb(&p, "genesys-north/confserv-bk/rb-repoint-backup").end_s() <= dbs_up.start_s);
}

#[test]
fn rollback_of_dormant_copies_follows_the_master_gen_03() {
    let p = plan(&example(STANDALONE));
    let master = rb(&p, "genesys-branch/confserv/rb-start-old-backup");
    let dormant = rb(&p, "genesys-branch/confserv-dr/rb-dormant-restore");
    assert!(master.end_s() <= dormant.start_s);
    assert!(dormant.rules.contains(&"GEN-03".to_string()));
}

#[test]
fn rollback_of_management_layer_servers_after_configuration_servers_gen_11() {
    let p = plan(&example(MAIN));
    let cs = rb_steps(&p, &RB_START, &MASTER);
    let ml: Vec<&PlannedStep> = p
        .rollback
        .iter()
        .filter(|s| s.action.starts_with("rb-ml-"))
        .collect();
    assert_eq!(
        ml.len(),
        5 * 3,
        "SCS pair, MS pair, DB Server: stop, restore, start"
    );
    assert_all_before(&cs, &ml);
    // Each pair: the backup goes back first.
    for (b, a) in [("scs-b", "scs-a"), ("ms-b", "ms-a")] {
        let up = rb(&p, &format!("genesys/{b}/rb-ml-start"));
        let sw = rb(&p, &format!("genesys/{a}/rb-ml-switchover"));
        assert!(up.end_s() <= sw.start_s, "{b} before {a}");
        assert!(p
            .rollback_edges
            .iter()
            .any(|e| e.rule == "GEN-11" && e.from == up.id && e.to == sw.id));
    }
    // SCS goes back last: the others are stopped and started through it (GEN-10).
    let others: Vec<&PlannedStep> = ml
        .iter()
        .copied()
        .filter(|s| s.action == "rb-ml-start")
        .filter(|s| !s.role.as_deref().unwrap_or("").starts_with("scs"))
        .collect();
    let scs_stop = rb(&p, "genesys/scs-b/rb-ml-stop");
    assert_all_before(&others, &[scs_stop]);
    assert!(p
        .rollback_edges
        .iter()
        .any(|e| e.rule == "GEN-10" && e.to == scs_stop.id));
}

// --- Examples: clean checks and plan quality -----------------------------------------------------------------

#[test]
fn examples_check_cleanly_and_the_inhibitor_example_does_not() {
    for name in [MAIN, STANDALONE, PROXY_PAIRS] {
        let f = findings(&example(name));
        assert!(inhibitors(&f).is_empty(), "{name}: {f:?}");
        assert!(
            f.iter().all(|x| x.severity != Severity::Warning),
            "{name}: {f:?}"
        );
    }
    let f = findings(&example(INHIBITORS));
    let mut rules: Vec<&str> = inhibitors(&f).iter().map(|x| x.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(rules, ["GEN-02", "GEN-04", "GEN-05", "GEN-08", "GEN-12"]);
}

#[test]
fn examples_plan_within_five_percent_of_the_lower_bound() {
    for name in [MAIN, STANDALONE, PROXY_PAIRS, INHIBITORS] {
        let p = plan(&example(name));
        assert!(
            p.makespan_s as f64 <= p.lower_bound_s as f64 * 1.05,
            "{name}: makespan {} vs lower bound {}",
            p.makespan_s,
            p.lower_bound_s
        );
        assert!(
            p.sequential_s > p.makespan_s,
            "{name}: some work runs in parallel"
        );
        if let Some(w) = p.window_s {
            assert!(p.makespan_s <= w, "{name}: the plan fits the booked window");
        }
    }
}

#[test]
fn balanced_plans_as_fastest_where_no_device_redundancy_is_declared_gen_02() {
    // Genesys servers come in HA pairs the rules already keep served; no devices fail over
    // between them: balanced plans as fastest.
    let site = r#"[site]
name = "queue-room"

[[cluster]]
name = "routing"
profile = "genesys-framework"
target = "8.5.101"
facts = { disconnect_switchover_timeout_s = 600 }

[[cluster.node]]
name = "lca-east"
role = "lca_scs_primary_host"
version = "8.1.3"
facts = { host = "east", lca_running = true, scs_connected = true, active_alarms = [] }

[[cluster.node]]
name = "lca-west"
role = "lca_scs_backup_host"
version = "8.1.3"
facts = { host = "west", lca_running = true, scs_connected = true, active_alarms = [] }

[[cluster.node]]
name = "scs-east"
role = "scs_primary"
version = "8.1.3"
facts = { host = "east" }

[[cluster.node]]
name = "scs-west"
role = "scs_backup"
version = "8.1.3"
facts = { host = "west" }
"#;
    assert_planned_as_fastest(site, "balanced");
}

/// Seed 002 installs each new Configuration Server "(but do not start)" only after "1. Back
/// up your Configuration Database", which the profile takes after the window's other
/// configuration changes (GEN-15); Management Layer servers are installed after they are shut
/// down (GEN-11) and LCA is upgraded on its stopped host (GEN-09). Nothing keeps serving while
/// it is installed ahead of the window, so a staging period changes nothing.
#[test]
fn nothing_of_a_genesys_upgrade_runs_ahead_of_the_window_gen_15_gen_11_gen_09() {
    let site = r#"
[site]
name = "cc-annex"
window = { start = "2027-05-22T22:00:00+02:00", hours = 6 }
stage = { start = "2027-05-22T09:00:00+02:00", hours = 10 }

[[cluster]]
name = "annex"
profile = "genesys-framework"
target = "8.5.101"
facts = { disconnect_switchover_timeout_s = 600, config_db_gb = 1 }

[[cluster.node]]
name = "scs"
role = "scs_single"
version = "8.1.3"
facts = { host = "ax-core" }

[[cluster.node]]
name = "dbs"
role = "db_server"
version = "8.1.3"
facts = { host = "ax-cfg" }

[[cluster.node]]
name = "confserv"
role = "cs_standalone"
version = "8.1.3"
facts = { host = "ax-cfg", clients = 30 }

[[cluster.node]]
name = "lca-cfg"
role = "lca_host"
version = "8.1.3"
facts = { host = "ax-cfg", lca_running = true, scs_connected = true, active_alarms = [] }

[[cluster.node]]
name = "lca-core"
role = "lca_scs_single_host"
version = "8.1.3"
facts = { host = "ax-core", lca_running = true, scs_connected = true, active_alarms = [] }
"#;
    let p = plan(site);
    assert!(
        in_phase(&p, "staging").is_empty(),
        "{:?}",
        in_phase(&p, "staging")
    );
    for action in [
        "cs-install-new-instance",
        "install-ml",
        "upgrade-lca",
        "dbs-install",
    ] {
        let found = steps_of(&p, action, None);
        assert!(!found.is_empty(), "{action}");
        for s in found {
            assert_eq!(phase_name(s), "window", "{}", s.id);
        }
    }
    let unstaged = plan(&site.replace(
        "stage = { start = \"2027-05-22T09:00:00+02:00\", hours = 10 }\n",
        "",
    ));
    assert_eq!(p.makespan_s, unstaged.makespan_s);
}
