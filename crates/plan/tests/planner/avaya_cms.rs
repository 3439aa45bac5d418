//! Rules of the `avaya-cms-ha` profile (CMS-*): Avaya CMS 21.0 High Availability, an original
//! server joined by a new HA server, checked on plans and reports of the CMS example sites.

use super::common::*;
use ferry_model::{Finding, Impact, Phase, Plan, PlannedStep, Severity, StepKind};

/// The example with one line replaced (the line must be there, so a changed example fails loudly).
fn example_with(name: &str, edits: &[(&str, &str)]) -> String {
    let mut site = example(name);
    for (from, to) in edits {
        assert!(site.contains(from), "{name} has no `{from}`");
        site = site.replacen(from, to, 1);
    }
    site
}

fn cms_ha_with(edits: &[(&str, &str)]) -> String {
    example_with("cms-ha", edits)
}

/// The example with lines replaced in the facts of one node only (from its `name = ...` line
/// to the next node).
fn node_with(name: &str, node: &str, edits: &[(&str, &str)]) -> String {
    let site = example(name);
    let at = site
        .find(&format!("name = \"{node}\"\n"))
        .unwrap_or_else(|| panic!("{name} has no node {node}"));
    let end = site[at..]
        .find("[[cluster.node]]")
        .map_or(site.len(), |i| at + i);
    let mut part = site[at..end].to_string();
    for (from, to) in edits {
        assert!(part.contains(from), "{node} of {name} has no `{from}`");
        part = part.replacen(from, to, 1);
    }
    format!("{}{part}{}", &site[..at], &site[end..])
}

/// The ACD list of `cms-ha`, as written there.
const CMS_HA_ACDS: &str = "acds = [
  { name = \"cm-east\", cm_release = \"8.1.3\", links = \"dual\" },
  { name = \"cm-west\", cm_release = \"10.2\", links = \"dual\" },
]";

/// `cms-ha` with its ACD list replaced by these (name, cm_release, links) ACDs.
fn cms_ha_with_acds(acds: &[(&str, &str, &str)]) -> String {
    let items: String = acds
        .iter()
        .map(|(n, r, l)| {
            format!("  {{ name = \"{n}\", cm_release = \"{r}\", links = \"{l}\" }},\n")
        })
        .collect();
    cms_ha_with(&[(CMS_HA_ACDS, &format!("acds = [\n{items}]"))])
}

fn keys_of<'a>(f: &'a [Finding], rule: &str) -> Vec<&'a str> {
    let mut keys: Vec<&str> = findings_of(f, rule)
        .iter()
        .map(|x| x.key.split('/').next().unwrap_or(""))
        .collect();
    keys.sort();
    keys
}

/// The steps of these actions, in the order given, each found once.
fn chain<'a>(plan: &'a Plan, actions: &[&str]) -> Vec<&'a PlannedStep> {
    actions
        .iter()
        .map(|a| {
            let s = steps_of(plan, a, None);
            assert_eq!(s.len(), 1, "expected exactly one `{a}` step");
            s[0]
        })
        .collect()
}

/// Each step ends before the next one starts.
fn assert_in_order(steps: &[&PlannedStep], why: &str) {
    for w in steps.windows(2) {
        assert!(
            w[0].phase < w[1].phase || w[0].end_s() <= w[1].start_s,
            "{why}: {} (ends {}) must end before {} starts ({})",
            w[0].id,
            w[0].end_s(),
            w[1].id,
            w[1].start_s
        );
    }
}

fn has_rule(s: &PlannedStep, rule: &str) -> bool {
    s.rules.iter().any(|r| r == rule)
}

fn severities_of(site: &str, rule: &str) -> Vec<Severity> {
    findings_of(&findings(site), rule)
        .iter()
        .map(|f| f.severity)
        .collect()
}

fn load_error(site: &str) -> String {
    match ferry_profiles::load_site("test.toml", site, &profiles()) {
        Ok(_) => panic!("the site must be rejected"),
        Err(e) => format!("{e:?}"),
    }
}

const DAY_OF_SOFTWARE: [&str; 12] = [
    "install-ha-server",           // (1)
    "single-user-mode",            // (2)
    "busy-out-links",              // (3)
    "release-links",               // (4)
    "verify-collection-ha",        // (5)
    "incremental-backup",          // (6)
    "software-upgrade",            // (7)
    "restart-collection-original", // (8)
    "migrate-incremental-to-ha",   // (9)
    "migrate-full-to-ha",          // (10)
    "migrate-admin-to-original",   // (11)
    "cmsadm-backup-after",         // closing backups (only the first instance is used here)
];

// ---- the examples -------------------------------------------------------------------------

#[test]
fn cms_examples_check_cleanly_and_inhibitor_example_is_blocked() {
    for name in ["cms-ha", "cms-base-load"] {
        let f = findings(&example(name));
        assert!(inhibitors(&f).is_empty(), "{name}: {f:?}");
        assert!(
            f.iter().all(|x| x.severity != Severity::Warning),
            "{name} should check without warnings: {f:?}"
        );
    }
    let f = findings(&example("cms-inhibitors"));
    let mut rules: Vec<&str> = inhibitors(&f).iter().map(|x| x.rule.as_str()).collect();
    rules.sort();
    rules.dedup();
    assert_eq!(
        rules,
        ["CMS-01", "CMS-03", "CMS-04", "CMS-06", "CMS-11", "CMS-12"],
        "{f:?}"
    );
}

#[test]
fn cms_plans_are_as_short_as_the_vendor_order_allows() {
    for name in ["cms-ha", "cms-base-load"] {
        let p = plan(&example(name));
        assert!(
            p.makespan_s as f64 <= p.lower_bound_s as f64 * 1.05,
            "{name}: makespan {} vs lower bound {}",
            p.makespan_s,
            p.lower_bound_s
        );
        assert!(p.makespan_s < p.sequential_s, "{name}: some work overlaps");
        assert!(
            p.window_s.is_some_and(|w| p.makespan_s <= w),
            "{name}: the plan fits the site's window"
        );
    }
}

// ---- CMS-01: same release and base load on both servers ----------------------------------

#[test]
fn servers_ending_on_different_base_loads_is_an_inhibitor_cms_01() {
    let f = findings(&example("cms-inhibitors"));
    let hits = findings_of(&f, "CMS-01");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Inhibitor);
    assert!(
        hits[0].message.contains("cmss-orig ends on 21.0.0.0")
            && hits[0].message.contains("cmss-ha ends on 21.0.0.1"),
        "{}",
        hits[0].message
    );
    assert!(findings_of(&findings(&example("cms-ha")), "CMS-01").is_empty());
}

#[test]
fn dissimilar_capacity_is_a_warning_cms_01() {
    // The capacity of each server is a node fact; the check compares the two servers.
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[(
            "capacity = \"ASP 130 large\"",
            "capacity = \"ASP 130 small\"",
        )],
    );
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-01");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Warning);
    assert!(hits[0].key.starts_with("capacity-differs/"));
    assert!(
        hits[0]
            .message
            .contains("cms-orig has capacity = ASP 130 large")
            && hits[0]
                .message
                .contains("cms-ha has capacity = ASP 130 small"),
        "{}",
        hits[0].message
    );
    // Not recorded for one server: it cannot be shown similar.
    let site = node_with(
        "cms-ha",
        "cms-orig",
        &[("capacity = \"ASP 130 large\"\n", "")],
    );
    assert_eq!(severities_of(&site, "CMS-01"), [Severity::Warning]);
}

#[test]
fn a_second_original_server_is_rejected_cms_01() {
    let site = example("cms-ha").replace("role = \"new_ha\"", "role = \"original\"");
    let err = load_error(&site);
    assert!(err.contains("CMS-01"), "{err}");
}

#[test]
fn new_ha_server_is_installed_on_the_target_release_cms_01() {
    let p = plan(&example("cms-ha"));
    let install = step(&p, "cms/cms-ha/install-ha-server");
    assert!(has_rule(install, "CMS-01"), "CMS-01 on the installation");
    assert!(has_rule(step(&p, "cms/verify-ha"), "CMS-01"));
}

// ---- CMS-02: upgrade type of the original -------------------------------------------------

#[test]
fn older_release_is_a_software_upgrade_cms_02() {
    let p = plan(&example("cms-ha"));
    assert_eq!(p.clusters[0].path, ["R19.1", "R21.0"]);
    assert_eq!(p.clusters[0].upgrade_type, "software", "CMS-02");
    assert_eq!(p.clusters[0].upgrade_type_rule, "CMS-02");
    assert_eq!(steps_of(&p, "software-upgrade", Some("original")).len(), 1);
    assert!(steps_of(&p, "base-load-upgrade", None).is_empty());
    assert!(steps_of(&p, "platform-upgrade", None).is_empty());
}

#[test]
fn same_release_older_base_load_is_a_base_load_upgrade_cms_02() {
    let p = plan(&example("cms-base-load"));
    assert_eq!(p.clusters[0].path, ["21.0.0.0", "21.0.0.1"]);
    assert_eq!(p.clusters[0].upgrade_type, "base-load", "CMS-02");
    let up = step(&p, "cms/cmsw-orig/base-load-upgrade");
    assert_eq!(up.duration_s, 60 * 60);
    assert!(steps_of(&p, "software-upgrade", None).is_empty());
    // An in-place base load upgrade keeps the administration data: no step (11).
    assert!(steps_of(&p, "migrate-admin-to-original", None).is_empty());
}

#[test]
fn unsupported_platform_is_a_platform_upgrade_cms_02() {
    // The original's own node fact decides.
    let site = node_with(
        "cms-ha",
        "cms-orig",
        &[("platform_supported = true", "platform_supported = false")],
    );
    let p = plan(&site);
    assert_eq!(p.clusters[0].upgrade_type, "platform", "CMS-02");
    let up = step(&p, "cms/cms-orig/platform-upgrade");
    assert!(
        up.instructions.contains("Replace the original cms-orig")
            && up.instructions.contains("supports R21.0"),
        "{}",
        up.instructions
    );
    assert!(steps_of(&p, "software-upgrade", None).is_empty());
    assert_eq!(steps_of(&p, "migrate-admin-to-original", None).len(), 1);
    // The same fact on the new HA server does not make the original's upgrade a platform one.
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[(
            "ha_role = \"secondary\"\n",
            "ha_role = \"secondary\"\nplatform_supported = false\n",
        )],
    );
    assert_eq!(plan(&site).clusters[0].upgrade_type, "software", "CMS-02");
}

#[test]
fn servers_already_on_the_same_load_need_no_software_installation_cms_02() {
    let site = example_with(
        "cms-base-load",
        &[("version = \"21.0.0.0\"", "version = \"21.0.0.1\"")],
    );
    let p = plan(&site);
    assert_eq!(p.clusters[0].upgrade_type, "same-load", "CMS-02");
    for a in [
        "base-load-upgrade",
        "software-upgrade",
        "platform-upgrade",
        "restart-collection-original",
    ] {
        assert!(steps_of(&p, a, None).is_empty(), "no `{a}` step");
    }
    // Still the backups and restores between the two servers.
    assert_eq!(steps_of(&p, "incremental-backup", None).len(), 1);
    assert_eq!(steps_of(&p, "migrate-full-to-ha", None).len(), 1);
}

// ---- CMS-03: supported ACDs --------------------------------------------------------------

#[test]
fn more_than_eight_acds_is_an_inhibitor_cms_03() {
    let names = ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"];
    let acds: Vec<_> = names.iter().map(|n| (*n, "10.2", "dual")).collect();
    let f = findings(&cms_ha_with_acds(&acds));
    let hits = findings_of(&f, "CMS-03");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Inhibitor);
    assert!(hits[0].key.starts_with("too-many-acds/"));
    assert!(findings_of(&findings(&cms_ha_with_acds(&acds[..8])), "CMS-03").is_empty());
}

#[test]
fn communication_manager_6_is_an_inhibitor_cms_03() {
    // Every ACD is read, not only the first.
    for acds in [
        [("cm-east", "6.3", "dual"), ("cm-west", "10.2", "dual")],
        [("cm-east", "8.1.3", "dual"), ("cm-west", "6.3", "dual")],
    ] {
        let f = findings(&cms_ha_with_acds(&acds));
        let hits = findings_of(&f, "CMS-03");
        assert_eq!(hits.len(), 1, "{f:?}");
        assert_eq!(hits[0].severity, Severity::Inhibitor);
        assert!(hits[0].key.starts_with("cm-release-unsupported/"));
        assert!(hits[0].message.contains("Communication Manager release"));
    }
    for ok in ["7.1.3", "8.1", "10.2.1", "R10.1"] {
        let site = cms_ha_with_acds(&[("cm-east", ok, "dual"), ("cm-west", "10.2", "dual")]);
        assert!(findings_of(&findings(&site), "CMS-03").is_empty(), "{ok}");
    }
}

#[test]
fn communication_manager_releases_cms_does_not_know_are_inhibitors_cms_03() {
    for bad in ["9.0", "11.1"] {
        let site = cms_ha_with_acds(&[("cm-east", "8.1.3", "dual"), ("cm-west", bad, "dual")]);
        assert_eq!(
            severities_of(&site, "CMS-03"),
            [Severity::Inhibitor],
            "{bad}"
        );
    }
}

#[test]
fn unrecorded_communication_manager_releases_are_a_warning_cms_03() {
    let site = cms_ha_with(&[("cm_release = \"10.2\", ", "")]);
    let f = findings(&site);
    assert_eq!(severities_of(&site, "CMS-03"), [Severity::Warning]);
    assert_eq!(keys_of(&f, "CMS-03"), ["cm-release-not-recorded"]);
    // ACDs written by name only: neither release nor links are known.
    let site = cms_ha_with(&[(CMS_HA_ACDS, "acds = [\"cm-east\", \"cm-west\"]")]);
    let f = findings(&site);
    assert_eq!(keys_of(&f, "CMS-03"), ["cm-release-not-recorded"]);
    assert_eq!(keys_of(&f, "CMS-04"), ["acd-links-not-recorded"]);
    // No ACD list at all.
    let site = cms_ha_with(&[(&format!("{CMS_HA_ACDS}\n"), "")]);
    let f = findings(&site);
    assert_eq!(keys_of(&f, "CMS-03"), ["acds-not-recorded"]);
    assert_eq!(severities_of(&site, "CMS-03"), [Severity::Warning]);
}

#[test]
fn communication_manager_is_upgraded_and_administered_first_cms_03() {
    let p = plan(&example("cms-ha"));
    let admin = step(&p, "cms/administer-acd");
    assert_eq!(admin.phase, Phase::Prepare);
    assert!(has_rule(admin, "CMS-03"));
    assert!(steps_of(&p, "upgrade-acd", None).is_empty());
    // One ACD to be upgraded is enough for the step.
    let site = cms_ha_with(&[(
        "cm_release = \"10.2\", links",
        "cm_release = \"10.2\", cm_upgrade = true, links",
    )]);
    let p = plan(&site);
    let upgrade = step(&p, "cms/upgrade-acd");
    assert!(has_rule(upgrade, "CMS-03") && has_rule(upgrade, "CMS-08"));
    assert!(upgrade.instructions.contains("cm_upgrade"));
    assert_in_order(
        &[upgrade, step(&p, "cms/administer-acd")],
        "CMS-03: upgrade CM, then administer it",
    );
}

// ---- CMS-04: no mixed ACD links -----------------------------------------------------------

#[test]
fn mixed_acd_links_are_an_inhibitor_cms_04() {
    // One ACD left on a single link next to an ACD on dual links.
    let site = cms_ha_with_acds(&[("cm-east", "8.1.3", "dual"), ("cm-west", "10.2", "single")]);
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-04");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Inhibitor);
    assert!(hits[0]
        .message
        .contains("mix single ACD links with HA dual links"));
    assert!(hits[0].key.starts_with("mixed-acd-links/"));
    assert!(findings_of(&findings(&example("cms-ha")), "CMS-04").is_empty());
    let f = findings(&example("cms-inhibitors"));
    assert_eq!(keys_of(&f, "CMS-04"), ["mixed-acd-links"]);
}

#[test]
fn single_acd_links_are_an_inhibitor_cms_04() {
    let site = cms_ha_with_acds(&[
        ("cm-east", "8.1.3", "single"),
        ("cm-west", "10.2", "single"),
    ]);
    let f = findings(&site);
    assert_eq!(severities_of(&site, "CMS-04"), [Severity::Inhibitor]);
    assert_eq!(keys_of(&f, "CMS-04"), ["single-acd-links"]);
}

#[test]
fn unrecorded_acd_links_are_a_warning_cms_04() {
    for (from, to) in [
        (", links = \"dual\" }", " }"),
        ("links = \"dual\"", "links = \"duel\""),
    ] {
        let site = cms_ha_with(&[(from, to)]);
        let f = findings(&site);
        assert_eq!(severities_of(&site, "CMS-04"), [Severity::Warning], "{to}");
        assert_eq!(keys_of(&f, "CMS-04"), ["acd-links-not-recorded"]);
    }
}

#[test]
fn links_are_re_administered_as_dual_links_cms_04() {
    let p = plan(&example("cms-ha"));
    let busy = step(&p, "cms/busy-out-links");
    assert!(has_rule(busy, "CMS-04"));
    assert!(busy.instructions.contains("dual ACD links"));
    // Same release: the dual links are administered 24 hours before, new link busied out.
    let p = plan(&example("cms-base-load"));
    let dual = step(&p, "cms/administer-dual-links");
    assert_eq!(dual.phase, Phase::Prepare);
    assert!(has_rule(dual, "CMS-04"));
}

// ---- CMS-05: UPS and Ethernet ports -------------------------------------------------------

#[test]
fn shared_ups_and_single_ethernet_port_are_warnings_cms_05() {
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[
            ("own_ups = true", "own_ups = false"),
            ("ethernet_ports = 2", "ethernet_ports = 1"),
        ],
    );
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-05");
    assert_eq!(hits.len(), 2, "{f:?}");
    assert!(hits
        .iter()
        .all(|h| h.severity == Severity::Warning && h.node.as_deref() == Some("cms-ha")));
    assert!(hits.iter().any(|h| h.key.starts_with("no-own-ups/")));
    assert!(hits
        .iter()
        .any(|h| h.key.starts_with("single-ethernet-port/")));
}

/// A site written from the CMS basic configuration rules (CMS-05: "All link connections operate
/// through the TCP/IP over Ethernet LAN protocol. Ensure that connections run over LAN
/// facilities that are local to the Communication Manager system."): two ACDs, the original
/// `south-orig` and the new HA server `south-ha` in another city, each with `acd_links_local`
/// as given (`""`: not recorded; otherwise the TOML value written into its facts).
fn link_locality_site(orig: &str, ha: &str) -> String {
    let fact = |v: &str| {
        if v.is_empty() {
            String::new()
        } else {
            format!("acd_links_local = {v}\n")
        }
    };
    format!(
        r#"[site]
name = "cc-south"
window = {{ start = "2027-04-10T20:00:00-03:00", hours = 14 }}

[[cluster]]
name = "cms"
profile = "avaya-cms-ha"
target = "R21.0"

[cluster.facts]
acds = [
  {{ name = "cm-sp", cm_release = "10.2", links = "dual" }},
  {{ name = "cm-rio", cm_release = "8.1.3", links = "dual" }},
]

[[cluster.node]]
name = "south-orig"
role = "original"
version = "R19.1"

[cluster.node.facts]
ha_role = "primary"
{}
[[cluster.node]]
name = "south-ha"
role = "new_ha"
version = "R21.0"

[cluster.node.facts]
ha_role = "secondary"
{}"#,
        fact(orig),
        fact(ha)
    )
}

/// The CMS-05 link-locality findings of the site: (node, severity), sorted.
fn check_link_locality(orig: &str, ha: &str, expected: &[(&str, Severity)]) {
    let site = link_locality_site(orig, ha);
    let f = findings(&site);
    let mut got: Vec<(&str, Severity)> = findings_of(&f, "CMS-05")
        .into_iter()
        .filter(|x| x.key.starts_with("acd-links-not-local/"))
        .map(|x| {
            assert!(
                x.message.contains("local to the Communication Manager")
                    && x.remedy
                        .contains("LAN facilities local to the Communication Manager"),
                "{x:?}"
            );
            (x.node.as_deref().unwrap_or(""), x.severity)
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got, expected, "orig {orig:?}, ha {ha:?}");
}

#[test]
fn acd_links_not_over_lan_facilities_local_to_communication_manager_are_a_warning_cms_05() {
    check_link_locality("true", "true", &[]);
    check_link_locality("", "", &[]);
    // The new HA server may be in another city, but not its ACD link connections.
    check_link_locality("true", "false", &[("south-ha", Severity::Warning)]);
    check_link_locality(
        "false",
        "false",
        &[
            ("south-ha", Severity::Warning),
            ("south-orig", Severity::Warning),
        ],
    );
    // The fact is typed: a yes/no, not a description.
    let err = load_error(&link_locality_site("\"same campus\"", "true"));
    assert!(
        err.contains("acd_links_local") && err.contains("bool"),
        "{err}"
    );
}

// ---- CMS-06: Admin-Sync and the OT Conn licence -------------------------------------------

#[test]
fn missing_ot_conn_licence_is_an_inhibitor_cms_06() {
    let site = cms_ha_with(&[("ot_conn_license = true", "ot_conn_license = false")]);
    assert_eq!(severities_of(&site, "CMS-06"), [Severity::Inhibitor]);
    let site = cms_ha_with(&[("ot_conn_license = true\n", "")]);
    assert_eq!(severities_of(&site, "CMS-06"), [Severity::Warning]);
}

#[test]
fn admin_sync_is_verified_and_administration_stays_on_the_primary_cms_06() {
    let p = plan(&example("cms-ha"));
    let verify = step(&p, "cms/verify-ha");
    assert!(has_rule(verify, "CMS-06"));
    assert!(verify.instructions.contains("Admin-Sync"));
    assert!(verify.impact_note.contains("primary"));
    let decide = step(&p, "cms/decide-roles");
    assert!(has_rule(decide, "CMS-06"));
}

// ---- CMS-07: ECHI -------------------------------------------------------------------------

#[test]
fn echi_runs_on_the_primary_only_without_custom_reporting_cms_07() {
    let p = plan(&example("cms-ha"));
    let echi = steps_of(&p, "activate-echi", None);
    assert_eq!(echi.len(), 1, "CMS-07: ECHI on the primary only");
    assert_eq!(echi[0].node.as_deref(), Some("cms-orig"));
    assert!(has_rule(echi[0], "CMS-07"));
    let site = cms_ha_with(&[(
        "echi_custom_reporting = false",
        "echi_custom_reporting = true",
    )]);
    let p = plan(&site);
    assert_eq!(
        steps_of(&p, "activate-echi", None).len(),
        2,
        "CMS-07: custom reporting keeps ECHI active on both"
    );
}

#[test]
fn echi_missing_or_misplaced_is_a_warning_cms_07() {
    // Not installed on the new server.
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[("echi_installed = true", "echi_installed = false")],
    );
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-07");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Warning);
    assert!(hits[0].key.starts_with("echi-not-installed/"));
    // Active on the secondary without custom reporting.
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[("echi_active = false", "echi_active = true")],
    );
    let f = findings(&site);
    assert!(findings_of(&f, "CMS-07")
        .iter()
        .any(|h| h.key.starts_with("echi-on-secondary/")));
    // Off on the primary.
    let site = node_with(
        "cms-ha",
        "cms-orig",
        &[("echi_active = true", "echi_active = false")],
    );
    let f = findings(&site);
    assert!(findings_of(&f, "CMS-07")
        .iter()
        .any(|h| h.key.starts_with("echi-off-where-needed/")
            && h.node.as_deref() == Some("cms-orig")));
}

// ---- CMS-08: 24 hours before ---------------------------------------------------------------

#[test]
fn preparation_24_hours_before_in_documented_order_cms_08() {
    let p = plan(&example("cms-ha"));
    let prep = chain(
        &p,
        &[
            "administer-acd",
            "check-backup-devices",
            "decide-roles",
            "admin-cutoff",
            "cmsadm-backup-before",
            "full-maintenance-backup",
        ],
    );
    for s in &prep {
        assert_eq!(s.phase, Phase::Prepare, "{} is done 24 hours before", s.id);
        assert!(has_rule(s, "CMS-08"), "{} carries CMS-08", s.id);
    }
    assert_in_order(&prep, "CMS-08");
    assert!(p.prepare_s >= prep.iter().map(|s| s.duration_s).sum::<u64>());
    let cutoff = step(&p, "cms/admin-cutoff");
    assert!(cutoff.warning.as_deref().is_some_and(
        |w| w.contains("No CMS administration") || w.contains("no CMS administration")
    ));
    let full = step(&p, "cms/cms-orig/full-maintenance-backup");
    assert_eq!(full.duration_s, (20 + 3 * 20) * 60, "grows with the data");
}

#[test]
fn undecided_roles_and_incompatible_backup_devices_are_found_cms_08() {
    let site = cms_ha_with(&[
        ("ha_role = \"secondary\"\n", ""),
        (
            "backup_devices_compatible = true",
            "backup_devices_compatible = false",
        ),
    ]);
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-08");
    assert_eq!(hits.len(), 2, "{f:?}");
    assert!(hits.iter().any(|h| h.severity == Severity::Warning
        && h.key.starts_with("roles-undecided/")
        && h.node.as_deref() == Some("cms-ha")));
    assert!(hits
        .iter()
        .any(|h| h.severity == Severity::Inhibitor
            && h.key.starts_with("backup-devices-incompatible/")));
}

// ---- CMS-09: the day of the upgrade ---------------------------------------------------------

#[test]
fn day_of_steps_1_to_11_run_in_documented_order_cms_09() {
    let p = plan(&example("cms-ha"));
    let mut actions = DAY_OF_SOFTWARE.to_vec();
    actions.pop();
    let day = chain(&p, &actions);
    for s in &day {
        assert_eq!(s.phase, Phase::Window);
        assert!(has_rule(s, "CMS-09"), "{} carries CMS-09", s.id);
    }
    assert_in_order(&day, "CMS-09 day-of order");
    // Who does what: (1), (5), (9), (10) on the new server; (2), (6), (7), (8), (11) on the original.
    for (a, node) in [
        ("install-ha-server", "cms-ha"),
        ("verify-collection-ha", "cms-ha"),
        ("migrate-incremental-to-ha", "cms-ha"),
        ("migrate-full-to-ha", "cms-ha"),
        ("single-user-mode", "cms-orig"),
        ("incremental-backup", "cms-orig"),
        ("software-upgrade", "cms-orig"),
        ("restart-collection-original", "cms-orig"),
        ("migrate-admin-to-original", "cms-orig"),
    ] {
        assert_eq!(steps_of(&p, a, None)[0].node.as_deref(), Some(node), "{a}");
    }
    assert!(steps_of(&p, "busy-out-links", None)[0].node.is_none());
}

#[test]
fn step_texts_name_the_server_and_its_versions_cms_09() {
    let p = plan(&example("cms-ha"));
    let up = step(&p, "cms/cms-orig/software-upgrade");
    assert!(up.title.contains("from R19.1 to R21.0"), "{}", up.title);
    assert!(
        up.instructions
            .contains("Upgrade cms-orig from R19.1 to R21.0"),
        "{}",
        up.instructions
    );
    let install = step(&p, "cms/cms-ha/install-ha-server");
    assert!(install.instructions.contains("Install CMS R21.0 on cms-ha"));
    assert!(install.verify.contains("cms-ha runs CMS R21.0"));
    let p = plan(&example("cms-base-load"));
    let up = step(&p, "cms/cmsw-orig/base-load-upgrade");
    assert!(
        up.title.contains("from 21.0.0.0 to 21.0.0.1"),
        "{}",
        up.title
    );
    // Every placeholder is filled, in every variant, in the plan and in the rollback.
    let sites = [
        example("cms-ha"),
        example("cms-base-load"),
        example("cms-inhibitors"),
        node_with(
            "cms-ha",
            "cms-orig",
            &[("platform_supported = true", "platform_supported = false")],
        ),
        example_with(
            "cms-base-load",
            &[("version = \"21.0.0.0\"", "version = \"21.0.0.1\"")],
        ),
        cms_ha_with(&[(
            "links = \"dual\" }",
            "links = \"dual\", cm_upgrade = true }",
        )]),
    ];
    for site in &sites {
        let p = plan(site);
        for s in p.steps.iter().chain(&p.rollback) {
            for text in [&s.title, &s.instructions, &s.verify, &s.impact_note]
                .into_iter()
                .chain(&s.warning)
            {
                assert!(
                    !text.contains('{'),
                    "{}: unfilled placeholder in `{text}`",
                    s.id
                );
            }
        }
    }
}

#[test]
fn administration_backup_comes_before_the_day_and_feeds_step_11_cms_09() {
    let p = plan(&example("cms-ha"));
    let backup = step(&p, "cms/cms-orig/admin-data-backup");
    assert_eq!(
        backup.start_s, 0,
        "first thing on the day, alongside step (1)"
    );
    assert_all_before(
        &[backup],
        &[
            step(&p, "cms/cms-orig/single-user-mode"),
            step(&p, "cms/cms-orig/migrate-admin-to-original"),
        ],
    );
    assert_some_overlap(&[backup, step(&p, "cms/cms-ha/install-ha-server")]);
}

#[test]
fn historical_migration_waits_for_the_incremental_backup_and_the_original_cms_09() {
    let p = plan(&example("cms-ha"));
    let explained = ferry_plan::explain(&p, "cms/cms-ha/migrate-incremental-to-ha")
        .expect("explain works on any step");
    assert!(explained.contains("CMS-09"), "{explained}");
    let edges: Vec<_> = p
        .edges
        .iter()
        .filter(|e| e.to == "cms/cms-ha/migrate-incremental-to-ha" && e.rule == "CMS-09")
        .map(|e| e.from.as_str())
        .collect();
    assert!(
        edges.contains(&"cms/cms-orig/incremental-backup"),
        "{edges:?}"
    );
    assert!(
        edges.contains(&"cms/cms-orig/restart-collection-original"),
        "{edges:?}"
    );
}

#[test]
fn same_release_releases_only_the_new_servers_link_cms_09() {
    let p = plan(&example("cms-base-load"));
    assert!(steps_of(&p, "busy-out-links", None).is_empty());
    assert!(steps_of(&p, "interval-archive-gate", None).is_empty());
    let day = chain(
        &p,
        &[
            "install-ha-server",
            "single-user-mode",
            "release-ha-link",
            "verify-collection-ha",
            "incremental-backup",
            "base-load-upgrade",
            "restart-collection-original",
            "migrate-incremental-to-ha",
            "migrate-full-to-ha",
        ],
    );
    assert_in_order(&day, "CMS-09 (base load)");
    assert!(has_rule(step(&p, "cms/release-ha-link"), "CMS-09"));
}

// ---- CMS-10: the no-collection window -------------------------------------------------------

#[test]
fn no_collection_window_is_reported_and_kept_tight_cms_10() {
    let p = plan(&example("cms-ha"));
    let m: Vec<_> = p.measures.iter().filter(|m| m.rule == "CMS-10").collect();
    assert_eq!(m.len(), 1, "the plan reports the no-collection window");
    assert_eq!(m[0].name, "no_collection");
    let [busy, release, verify] = chain(
        &p,
        &["busy-out-links", "release-links", "verify-collection-ha"],
    )[..] else {
        unreachable!()
    };
    assert_eq!(m[0].start_s, busy.start_s);
    // Nothing else between (3) and (5): the window is exactly their durations.
    assert_eq!(
        m[0].duration_s,
        busy.duration_s + release.duration_s + verify.duration_s,
        "CMS-10: steps (3) to (5) back to back"
    );
    assert_eq!(m[0].duration_s, 30 * 60);
    assert_eq!(verify.kind, StepKind::Gate);
    assert!(has_rule(busy, "CMS-10") && has_rule(verify, "CMS-10"));
    assert_eq!(busy.impact, Impact::Down);
}

#[test]
fn busy_out_waits_for_the_interval_archive_outside_the_window_cms_10() {
    let p = plan(&example("cms-ha"));
    let gate = step(&p, "cms/cms-orig/interval-archive-gate");
    assert_eq!(gate.kind, StepKind::Gate);
    assert!(has_rule(gate, "CMS-10"));
    // 3 minutes plus half of the 30-minute interval.
    assert_eq!(gate.duration_s, 18 * 60);
    assert_all_before(&[gate], &[step(&p, "cms/busy-out-links")]);
    let m = p.measures.iter().find(|m| m.rule == "CMS-10").unwrap();
    assert!(
        gate.end_s() <= m.start_s,
        "the wait is not part of CMS-10's window"
    );
}

#[test]
fn same_release_has_no_no_collection_window_cms_10() {
    let p = plan(&example("cms-base-load"));
    assert!(
        p.measures.iter().all(|m| m.rule != "CMS-10"),
        "CMS-10: the original keeps collecting while the new server's link is released"
    );
}

// ---- CMS-11: CMSADM backups -----------------------------------------------------------------

#[test]
fn cmsadm_backup_older_than_24_hours_is_an_inhibitor_cms_11() {
    let f = findings(&example("cms-inhibitors"));
    let hits = findings_of(&f, "CMS-11");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Inhibitor);
    assert_eq!(hits[0].node.as_deref(), Some("cmss-orig"));
    assert!(
        hits[0].message.contains("105.0 hours"),
        "{}",
        hits[0].message
    );
    // 20.5 hours before the window is fine; missing is not.
    assert!(findings_of(&findings(&example("cms-ha")), "CMS-11").is_empty());
    let site = cms_ha_with(&[("cmsadm_backup_at = \"2026-12-04T21:30:00-05:00\"\n", "")]);
    assert_eq!(severities_of(&site, "CMS-11"), [Severity::Inhibitor]);
}

#[test]
fn cmsadm_backups_before_and_on_both_servers_when_done_cms_11() {
    let p = plan(&example("cms-ha"));
    let before = step(&p, "cms/cms-orig/cmsadm-backup-before");
    assert_eq!(before.phase, Phase::Prepare);
    assert!(has_rule(before, "CMS-11"));
    let after = steps_of(&p, "cmsadm-backup-after", None);
    let mut nodes: Vec<_> = after.iter().filter_map(|s| s.node.as_deref()).collect();
    nodes.sort();
    assert_eq!(nodes, ["cms-ha", "cms-orig"], "CMS-11: both servers");
    assert!(after.iter().all(|s| has_rule(s, "CMS-11")));
    assert_all_before(
        &[
            step(&p, "cms/cms-orig/migrate-admin-to-original"),
            step(&p, "cms/cms-ha/migrate-full-to-ha"),
            step(&p, "cms/cms-orig/setup-ha-roles"),
        ],
        &after,
    );
    assert_some_overlap(&after);
    let last = p.steps.iter().map(|s| s.end_s()).max().unwrap();
    assert!(
        after.iter().any(|s| s.end_s() == last),
        "they close the window"
    );
}

// ---- CMS-12: data storage parameters ------------------------------------------------------

#[test]
fn different_data_storage_parameters_are_an_inhibitor_cms_12() {
    // Each server's parameters are a node fact; the check compares them.
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[("intrahour_days = 31", "intrahour_days = 62")],
    );
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-12");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Inhibitor);
    assert!(hits[0].key.starts_with("storage-parameters-differ/"));
    assert!(
        hits[0].message.contains("cms-orig has storage_parameters")
            && hits[0].message.contains("intrahour_days = 62"),
        "{}",
        hits[0].message
    );
    assert_eq!(keys_of(&f, "CMS-12"), ["storage-parameters-differ"]);
    let f = findings(&example("cms-inhibitors"));
    assert_eq!(keys_of(&f, "CMS-12"), ["storage-parameters-differ"]);
    assert!(findings_of(&findings(&example("cms-ha")), "CMS-12").is_empty());
}

#[test]
fn unrecorded_data_storage_parameters_are_a_warning_not_an_inhibitor_cms_12() {
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[("storage_parameters = {", "# storage_parameters = {")],
    );
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-12");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Warning);
    assert!(hits[0].key.starts_with("storage-parameters-not-recorded/"));
    assert_eq!(hits[0].node.as_deref(), Some("cms-ha"));
}

#[test]
fn the_new_server_gets_the_originals_storage_parameters_cms_12() {
    let p = plan(&example("cms-ha"));
    let install = step(&p, "cms/cms-ha/install-ha-server");
    assert!(has_rule(install, "CMS-12"));
    assert!(install.instructions.contains("Data Storage Allocation"));
}

// ---- CMS-13: setting up the roles -----------------------------------------------------------

#[test]
fn roles_are_set_up_on_the_primary_after_the_migrations_cms_13() {
    let p = plan(&example("cms-ha"));
    let setup = steps_of(&p, "setup-ha-roles", None);
    assert_eq!(setup.len(), 1, "config_HA runs once, on the primary");
    let setup = setup[0];
    assert_eq!(setup.node.as_deref(), Some("cms-orig"));
    assert!(has_rule(setup, "CMS-13"));
    assert_eq!(setup.impact, Impact::Down, "service affecting");
    assert!(setup.instructions.contains("config_HA"));
    assert!(setup.instructions.contains("FQDN"));
    assert!(setup
        .warning
        .as_deref()
        .is_some_and(|w| w.contains(".zdt_")));
    let stage = step(&p, "cms/cms-orig/stage-ha-packages");
    assert!(stage.instructions.contains("/etc/hosts") && stage.instructions.contains("WebLM"));
    assert_all_before(
        &[
            step(&p, "cms/cms-ha/migrate-full-to-ha"),
            step(&p, "cms/cms-orig/migrate-admin-to-original"),
        ],
        &[stage],
    );
    assert_all_before(&[stage], &[setup]);
    // The new HA server is the primary in the base load example.
    let p = plan(&example("cms-base-load"));
    assert_eq!(
        steps_of(&p, "setup-ha-roles", None)[0].node.as_deref(),
        Some("cmsw-ha")
    );
    // With the original as primary, its staging still waits for the new server's migrations.
    let site = example_with(
        "cms-base-load",
        &[
            ("ha_role = \"secondary\"", "ha_role = \"PRIMARY\""),
            ("ha_role = \"primary\"", "ha_role = \"secondary\""),
            ("ha_role = \"PRIMARY\"", "ha_role = \"primary\""),
        ],
    );
    let p = plan(&site);
    let stage = step(&p, "cms/cmsw-orig/stage-ha-packages");
    assert_all_before(&[step(&p, "cms/cmsw-ha/migrate-full-to-ha")], &[stage]);
}

#[test]
fn different_time_zones_need_an_ntp_server_cms_13() {
    let site = cms_ha_with(&[("time_zones_differ = false", "time_zones_differ = true")]);
    assert_eq!(severities_of(&site, "CMS-13"), [Severity::Warning]);
    assert!(findings_of(&findings(&example("cms-base-load")), "CMS-13").is_empty());
}

// ---- CMS-14: reversing the roles ------------------------------------------------------------

#[test]
fn rollback_reverses_roles_before_the_primary_goes_down_cms_14() {
    let p = plan(&example("cms-ha"));
    let reverse = p
        .rollback
        .iter()
        .find(|s| s.id == "cms/cms-orig/reverse-roles")
        .expect("CMS-14: the original is the primary, so roles are reversed first");
    assert!(has_rule(reverse, "CMS-14"));
    assert!(reverse.instructions.contains("config_HA"));
    let stop = p
        .rollback
        .iter()
        .find(|s| s.id == "cms/cms-orig/stop-original")
        .unwrap();
    assert!(reverse.end_s() <= stop.start_s);
    // The original is the secondary in the base load example: nothing to reverse.
    let p = plan(&example("cms-base-load"));
    assert!(p.rollback.iter().all(|s| s.action != "reverse-roles"));
}

#[test]
fn a_third_server_is_rejected_cms_14() {
    let site = format!(
        "{}\n[[cluster.node]]\nname = \"cms-3\"\nrole = \"new_ha\"\nversion = \"R21.0\"\n",
        example("cms-ha")
    );
    let err = load_error(&site);
    assert!(err.contains("CMS-14"), "{err}");
}

// ---- CMS-15, CMS-16: behaviour annotations ---------------------------------------------------

#[test]
fn heartbeat_and_failover_are_annotated_on_the_role_set_up_cms_15() {
    let p = plan(&example("cms-ha"));
    let setup = step(&p, "cms/cms-orig/setup-ha-roles");
    assert!(has_rule(setup, "CMS-15"));
    assert!(setup.impact_note.contains("every 20 s"));
    assert!(setup.impact_note.contains("by hand"));
    assert!(has_rule(step(&p, "cms/verify-ha"), "CMS-15"));
    let stop = p
        .rollback
        .iter()
        .find(|s| s.action == "stop-original")
        .unwrap();
    assert!(has_rule(stop, "CMS-15"));
}

#[test]
fn main_cm_and_ess_never_both_active_is_annotated_on_the_link_steps_cms_16() {
    let p = plan(&example("cms-ha"));
    for a in ["busy-out-links", "release-links"] {
        let s = steps_of(&p, a, None)[0];
        assert!(has_rule(s, "CMS-16"), "{a}");
        assert!(s.impact_note.contains("ESS"), "{a}");
        assert_eq!(s.impact, Impact::Down);
    }
    let site = node_with(
        "cms-ha",
        "cms-ha",
        &[(
            "ha_role = \"secondary\"\n",
            "ha_role = \"secondary\"\ndual_ip = true\n",
        )],
    );
    let f = findings(&site);
    let hits = findings_of(&f, "CMS-16");
    assert_eq!(hits.len(), 1, "{f:?}");
    assert_eq!(hits[0].severity, Severity::Info);
    assert_eq!(hits[0].node.as_deref(), Some("cms-ha"));
}

// ---- CMS-17: switch-over options ------------------------------------------------------------

#[test]
fn manual_switch_over_moves_clients_once_the_new_server_collects_cms_17() {
    let p = plan(&example("cms-ha"));
    let sw = step(&p, "cms/switch-over-clients");
    assert!(has_rule(sw, "CMS-17"));
    assert!(sw.instructions.contains("Supervisor"));
    assert_all_before(&[step(&p, "cms/cms-ha/verify-collection-ha")], &[sw]);
    // Off the critical path: it runs while the original is backed up and upgraded.
    assert_some_overlap(&[sw, step(&p, "cms/cms-orig/incremental-backup")]);
    let up = step(&p, "cms/cms-orig/software-upgrade");
    assert!(has_rule(up, "CMS-17") && up.impact_note.contains("switch-over none"));
    // No switch-over: no client step.
    let p = plan(&example("cms-base-load"));
    assert!(steps_of(&p, "switch-over-clients", None).is_empty());
}

// ---- rollback ---------------------------------------------------------------------------------

#[test]
fn rollback_restores_the_original_then_moves_the_links_back_briefly_cms_10_cms_11() {
    let p = plan(&example("cms-ha"));
    let rb = |a: &str| {
        p.rollback
            .iter()
            .find(|s| s.action == a)
            .unwrap_or_else(|| panic!("no rollback step {a}"))
    };
    let order = [
        rb("reverse-roles"),
        rb("stop-original"),
        rb("restore-cmsadm"),
        rb("restore-maintenance-backup"),
        rb("backup-ha-data"),
        rb("busy-out-links"),
        rb("release-links"),
        rb("verify-collection-original"),
        rb("migrate-ha-data-to-original"),
        rb("cmsadm-backup"),
    ];
    assert_in_order(&order, "rollback order");
    assert!(has_rule(rb("restore-cmsadm"), "CMS-11"));
    assert!(has_rule(rb("busy-out-links"), "CMS-10"));
    assert_eq!(rb("backup-ha-data").node.as_deref(), Some("cms-ha"));
}

#[test]
fn balanced_plans_as_fastest_where_no_device_redundancy_is_declared_cms_10() {
    // The CMS pair has no devices that fail over between servers: balanced plans as fastest.
    let site = r#"[site]
name = "reporting-room"

[[cluster]]
name = "stats"
profile = "avaya-cms-ha"
target = "21.0.0.1"
facts = { acds = [{ name = "acd-1", cm_release = "10.2.1", links = "dual" }], switchover = "none" }

[[cluster.node]]
name = "stats-old"
role = "original"
version = "21.0.0.0"
facts = { ha_role = "primary" }

[[cluster.node]]
name = "stats-new"
role = "new_ha"
version = "21.0.0.1"
"#;
    assert_planned_as_fastest(site, "balanced");
}

/// Seed 000, day of the upgrade: "1. Install and configure the new HA server. 2. Ensure that
/// you put CMS into single-user mode." The new server serves nothing before the ACD links are
/// re-administered (3), and the original keeps collecting meanwhile: its installation may run
/// ahead of the window (CMS-09). Everything from single-user mode on stays in the window.
#[test]
fn the_new_ha_server_is_installed_ahead_and_the_original_stays_in_the_window_cms_09() {
    let site = r#"
[site]
name = "contact-center-north"
window = { start = "2027-06-12T18:00:00-05:00", hours = 12 }
stage = { start = "2027-06-12T08:00:00-05:00", hours = 8 }

[[cluster]]
name = "cms-n"
profile = "avaya-cms-ha"
target = "R21.0"

[cluster.facts]
acds = [ { name = "cm-n1", cm_release = "10.2", links = "dual" } ]
backup_devices_compatible = true
ot_conn_license = true
historical_data_gb = 8
intrahour_interval_min = 30
switchover = "none"
echi_in_use = false
time_zones_differ = false

[[cluster.node]]
name = "n-orig"
role = "original"
version = "R19.1"

[cluster.node.facts]
ha_role = "primary"
cmsadm_backup_at = "2027-06-11T20:00:00-05:00"
platform_supported = true
capacity = "ASP 130"
storage_parameters = { intrahour_interval_min = 30, intrahour_days = 31 }
own_ups = true
ethernet_ports = 2

[[cluster.node]]
name = "n-ha"
role = "new_ha"
version = "R21.0"

[cluster.node.facts]
ha_role = "secondary"
capacity = "ASP 130"
storage_parameters = { intrahour_interval_min = 30, intrahour_days = 31 }
own_ups = true
ethernet_ports = 2
"#;
    let p = plan(site);
    assert_eq!(in_phase(&p, "staging"), vec!["n-ha/install-ha-server"]);
    let staged = step(&p, "cms-n/n-ha/install-ha-server");
    assert!(
        staged.rules.iter().any(|r| r == "CMS-09"),
        "{:?}",
        staged.rules
    );
    for action in [
        "single-user-mode",
        "busy-out-links",
        "software-upgrade",
        "admin-data-backup",
    ] {
        for s in steps_of(&p, action, None) {
            assert_eq!(phase_name(s), "window", "{}", s.id);
        }
    }
    assert_edges_go_forward(&p);
    let unstaged = plan(&site.replace(
        "stage = { start = \"2027-06-12T08:00:00-05:00\", hours = 8 }\n",
        "",
    ));
    assert!(p.makespan_s < unstaged.makespan_s);
}
