//! avaya-cms-ha in the twin: both servers collect every ACD over their own links, archived per
//! intra-hour interval; the busy-out (3) to the verification (5) is the only time neither server
//! collects (CMS-09, CMS-10); the new HA server does not exist before step (1); single-user
//! mode and the cut-off refuse or flag administration; config_HA sets the roles up (CMS-13) and
//! reverses them (CMS-14); the secondary's heartbeat takes over from a primary that is down but
//! not from one whose CM link failed (CMS-15); a dual-IP server collects from the ESS only while
//! its main link is down (CMS-16). Each feature has one `check` helper fed by a table.

use super::common::*;
use ferry_model::{Outcome, Plan, Severity};
use ferry_twin::{impact, TraceEntry, Violation, World};

// ---- helpers --------------------------------------------------------------------------------

/// An example's text with literal edits (each `from` must be there).
fn edited(name: &str, edits: &[(&str, &str)]) -> String {
    let mut t = example(name);
    for (from, to) in edits {
        assert!(t.contains(from), "{name} has no `{from}`");
        t = t.replacen(from, to, 1);
    }
    t
}

fn case_of(name: &str, edits: &[(&str, &str)]) -> Case {
    case_with(&edited(name, edits), None)
}

/// The step of run `run` with this action (and node).
fn ran<'a>(w: &'a World, run: i64, action: &str, node: Option<&str>) -> &'a TraceEntry {
    w.trace
        .iter()
        .find(|e| {
            e.run == run && e.action == action && (node.is_none() || e.node.as_deref() == node)
        })
        .unwrap_or_else(|| panic!("run {run} has no step {action} {node:?}"))
}

fn inhibitors(v: &[Violation]) -> Vec<&Violation> {
    v.iter()
        .filter(|x| x.severity == Severity::Inhibitor)
        .collect()
}

/// Minutes from the world's start to the end of its last step (to place faults after a run).
fn end_min(w: &World) -> f64 {
    let last = w.trace.iter().map(|e| e.end).max().unwrap_or(w.start);
    (last - w.start) as f64 / 60.0
}

/// Minutes from the world's start to the start of a step of run 1.
fn start_min(w: &World, action: &str) -> f64 {
    (ran(w, 1, action, None).start - w.start) as f64 / 60.0
}

fn fault(kind: &str, node: &str, at_min: f64, extra: &str) -> String {
    format!("[[fault]]\nkind = \"{kind}\"\nnode = \"{node}\"\nat_min = {at_min}\n{extra}\n")
}

fn node_index(w: &World, name: &str) -> usize {
    w.clusters[0]
        .nodes
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// Which servers collect from every ACD now, by name.
fn collecting(w: &World) -> Vec<String> {
    let c = &w.clusters[0];
    let col = c.collector.as_ref().expect("the profile has a collector");
    col.servers
        .iter()
        .enumerate()
        .filter(|&(vi, &v)| {
            let n = &c.nodes[v];
            (0..col.sources.len()).all(|s| {
                col.links[s][vi] && w.provides(0, v) && (!n.link_failed || col.dual_ip[vi])
            })
        })
        .map(|(_, &v)| c.nodes[v].name.clone())
        .collect()
}

/// The name of the active member of the cluster's HA pair.
fn active(w: &World) -> Option<String> {
    let p = &w.clusters[0].pairs[0];
    p.active
        .map(|a| w.clusters[0].nodes[p.members[a]].name.clone())
}

/// Log lines with this code, as (seconds since the world's start, node).
fn logged(w: &World, code: &str) -> Vec<(i64, String)> {
    w.log
        .iter()
        .filter(|l| l.code == code)
        .map(|l| (l.time - w.start, l.node.clone().unwrap_or_default()))
        .collect()
}

/// Seconds the pair had no active member providing service, so far.
fn pair_s_down(w: &World) -> f64 {
    w.clusters[0].acc.pair_s_down.values().sum()
}

/// Runs the plan's rollback steps with these actions, alone, as run `run`.
fn run_rollback_steps(w: &mut World, plan: &Plan, run: i64, actions: &[&str]) {
    let steps: Vec<_> = plan
        .rollback
        .iter()
        .filter(|s| actions.contains(&s.action.as_str()))
        .cloned()
        .collect();
    assert_eq!(steps.len(), actions.len(), "{actions:?}");
    w.mark_rollback(run);
    let out = run_steps(w, plan, run, &steps);
    assert!(failed(&out).is_empty(), "{:?}", failed(&out));
    w.finish();
}

/// A copy of the plan in which step `id` waits for `after` instead of its own predecessors.
fn with_after(plan: &Plan, edits: &[(&str, &[&str])]) -> Plan {
    let mut p = plan.clone();
    for (id, after) in edits {
        let s = p
            .steps
            .iter_mut()
            .find(|s| s.id == *id)
            .unwrap_or_else(|| panic!("no step {id}"));
        s.after = after.iter().map(|a| a.to_string()).collect();
    }
    p
}

// ---- every example --------------------------------------------------------------------------

/// The examples rehearse to their targets on every node with no inhibitor-severity violation
/// (warnings, such as a window overrun, are printed).
#[test]
fn every_cms_example_rehearses_to_the_target_without_inhibitors() {
    fn check(name: &str, nodes: &[&str]) {
        let r = rehearse(name);
        assert!(
            failed(&r.outcomes).is_empty(),
            "{name}: {:?}",
            failed(&r.outcomes)
        );
        assert_eq!(r.outcomes.len(), case(name).plan.steps.len(), "{name}");
        assert!(
            inhibitors(&r.violations).is_empty(),
            "{name}: {:#?}",
            r.violations
        );
        for v in &r.violations {
            println!("{name}: {:?} {}: {}", v.severity, v.rule, v.message);
        }
        let c = &r.impact.clusters[0];
        assert!(c.on_target, "{name}: {:?}", c.off_target);
        for n in nodes {
            let i = node_index(&r.world, n);
            let node = &r.world.clusters[0].nodes[i];
            assert!(node.exists && node.active == node.target, "{name}: {n}");
        }
    }
    check("cms-ha", &["cms-orig", "cms-ha"]);
    check("cms-base-load", &["cmsw-orig", "cmsw-ha"]);
}

/// The inhibitor example: the auditor flags the checks that held when the run started (CMS-03
/// Communication Manager 6.3 and 9 ACDs, CMS-04 mixed links, CMS-06 no OT Conn licence) and the
/// servers ending on different base loads (CMS-01).
#[test]
fn the_inhibitor_example_is_flagged_with_its_rules_cms_01_cms_03_cms_04_cms_06() {
    fn check(name: &str, expected: &[(&str, &str)]) {
        let r = rehearse(name);
        for (rule, words) in expected {
            assert!(
                r.violations
                    .iter()
                    .any(|v| v.severity == Severity::Inhibitor
                        && v.rule == *rule
                        && v.message.contains(words)),
                "{name}: no inhibitor {rule} mentioning `{words}`: {:#?}",
                r.violations
            );
        }
    }
    check(
        "cms-inhibitors",
        &[
            ("CMS-03", "too-many-acds"),
            ("CMS-03", "cm-release-unsupported"),
            ("CMS-04", "mixed-acd-links"),
            ("CMS-06", "no-ot-conn-licence"),
            ("CMS-01", "must match"),
        ],
    );
}

// ---- data collection: CMS-09, CMS-10 --------------------------------------------------------

/// Intervals not collected are counted per ACD. On a software upgrade the busy-out (3) to the
/// verification (5) is the only time neither server collects (CMS-10): every ACD loses the time
/// from the busy-out's start to the new HA server's verification, measured on the trace, and
/// one interval (the busy-out starts right after the interval archive, and lasts less than an
/// interval) or two with a 15-minute interval. On the same release (base load upgrade) the
/// original never stops collecting: nothing is lost.
#[test]
fn the_busy_out_to_verify_window_is_the_only_time_no_server_collects_cms_09_cms_10() {
    fn check(name: &str, edits: &[(&str, &str)], acds: usize, per_acd: u64) {
        let c = case_of(name, edits);
        let r = rehearse_case(&c, &Default::default(), 1);
        assert!(inhibitors(&r.violations).is_empty(), "{:#?}", r.violations);
        let ci = &r.impact.clusters[0];
        assert_eq!(ci.sources.len(), acds, "one figure per ACD");
        assert_eq!(ci.intervals_not_collected, per_acd * acds as u64);
        let window = if per_acd == 0 {
            assert!(c.plan.measures.iter().all(|m| m.rule != "CMS-10"));
            0.0
        } else {
            let busy = ran(&r.world, 1, "busy-out-links", None);
            let verify = ran(&r.world, 1, "verify-collection-ha", None);
            let measured = (verify.end - busy.start) as f64 / 60.0;
            // The plan's CMS-10 measure bounds it: the twin's window ends as soon as the new
            // server collects, which the verification's own 10 minutes then confirm.
            let m = c.plan.measures.iter().find(|m| m.rule == "CMS-10").unwrap();
            let planned = m.duration_s as f64 / 60.0;
            assert!(
                measured >= 0.5 * planned && measured <= 1.25 * planned,
                "{name}: measured {measured} min, planned {planned} min"
            );
            measured
        };
        for s in &ci.sources {
            assert_eq!(s.intervals_not_collected, per_acd, "{name}: {}", s.source);
            assert!(
                (s.minutes_not_collected - window).abs() <= 0.1,
                "{name}: {} not collected for {} min, the busy-out window is {window} min",
                s.source,
                s.minutes_not_collected
            );
        }
    }
    check("cms-ha", &[], 2, 1);
    check(
        "cms-ha",
        &[(
            "{ name = \"cm-west\", cm_release = \"10.2\", links = \"dual\" },",
            "{ name = \"cm-west\", cm_release = \"10.2\", links = \"dual\" },\n  { name = \"cm-north\", cm_release = \"7.1\", links = \"dual\" },",
        )],
        3,
        1,
    );
    check(
        "cms-ha",
        &[(
            "intrahour_interval_min = 30\n",
            "intrahour_interval_min = 15\n",
        )],
        2,
        2,
    );
    check(
        "cms-ha",
        &[(
            "intrahour_interval_min = 30\n",
            "intrahour_interval_min = 60\n",
        )],
        2,
        1,
    );
    check("cms-base-load", &[], 1, 0);
}

/// Busy-out and release (CMS-09): which servers collect after each step. On a software upgrade
/// the busy-out (3) stops both; the release (4) brings up only the new HA server's links (the
/// ACDs now speak the target release), so the original collects again only once it runs it
/// (7). On the same release the new HA server's link is released next to the original's.
#[test]
fn busy_out_and_release_move_the_ha_links_cms_09() {
    fn check(name: &str, upto: &str, expected: &[&str]) {
        let c = case(name);
        let last = c
            .plan
            .steps
            .iter()
            .position(|s| s.action == upto)
            .unwrap_or_else(|| panic!("{name} has no {upto}"));
        let mut w = world(&c, &Default::default(), 1);
        let out = run_steps(&mut w, &c.plan, 1, &c.plan.steps[..=last]);
        assert!(failed(&out).is_empty(), "{:?}", failed(&out));
        assert_eq!(collecting(&w), expected, "{name} after {upto}");
    }
    check("cms-ha", "full-maintenance-backup", &["cms-orig"]);
    check("cms-ha", "install-ha-server", &["cms-orig"]);
    check("cms-ha", "interval-archive-gate", &["cms-orig"]);
    check("cms-ha", "busy-out-links", &[]);
    check("cms-ha", "release-links", &["cms-ha"]);
    check("cms-ha", "incremental-backup", &["cms-ha"]);
    check("cms-ha", "software-upgrade", &["cms-orig", "cms-ha"]);
    check("cms-ha", "cmsadm-backup-after", &["cms-orig", "cms-ha"]);
    check("cms-base-load", "install-ha-server", &["cmsw-orig"]);
    check(
        "cms-base-load",
        "release-ha-link",
        &["cmsw-orig", "cmsw-ha"],
    );
    check(
        "cms-base-load",
        "base-load-upgrade",
        &["cmsw-orig", "cmsw-ha"],
    );
}

/// The new HA server does not exist before step (1) installs it (CMS-09): it collects nothing
/// and is not part of the pair; after the install it runs the target release. When the install
/// fails it is still missing and the rehearsal says so.
#[test]
fn the_new_ha_server_does_not_exist_before_it_is_installed_cms_09() {
    fn check(name: &str, faults_text: &str, exists: bool) {
        let c = case(name);
        let w = world(&c, &Default::default(), 1);
        let ha = c.site.clusters[0]
            .nodes
            .iter()
            .find(|n| n.role == "new_ha")
            .unwrap()
            .name
            .clone();
        assert!(
            !w.clusters[0].nodes[node_index(&w, &ha)].exists,
            "{ha} before the run"
        );
        assert_ne!(active(&w).as_deref(), Some(ha.as_str()));
        let r = rehearse_case(&c, &faults(faults_text), 1);
        let n = &r.world.clusters[0].nodes[node_index(&r.world, &ha)];
        assert_eq!(n.exists, exists, "{name} {ha}");
        if exists {
            assert_eq!(n.active, n.target);
        } else {
            assert!(
                r.impact.clusters[0]
                    .off_target
                    .iter()
                    .any(|o| o.contains(&ha) && o.contains("does not exist")),
                "{:?}",
                r.impact.clusters[0].off_target
            );
        }
    }
    check("cms-ha", "", true);
    check("cms-base-load", "", true);
    let fail = |n: &str| {
        format!("[[fault]]\nkind = \"install_failure\"\nstep = \"cms/{n}/install-ha-server\"\n")
    };
    check("cms-ha", &fail("cms-ha"), false);
    check("cms-base-load", &fail("cmsw-ha"), false);
}

/// Single-user mode and the cut-off (CMS-08, CMS-09): an administration change after the
/// cut-off breaks CMS-08 until the upgrade is verified; while the original is in single-user
/// mode (from (2) until it collects again in (8)) the change is refused, and the original still
/// collects until the busy-out.
#[test]
fn single_user_mode_refuses_administration_and_the_cut_off_flags_it_cms_08_cms_09() {
    fn check(at: &str, refused: u64, cut_off: bool) {
        let text = format!(
            "[[fault]]\nkind = \"config_change\"\nstep = \"*/{at}\"\nnode = \"cms-orig\"\n"
        );
        let r = rehearse_case(&case("cms-ha"), &faults(&text), 1);
        assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
        let ci = &r.impact.clusters[0];
        assert_eq!(ci.config_changes_made, 1, "{at}");
        assert_eq!(ci.config_changes_refused, refused, "{at}: refused");
        let flagged = r.violations.iter().any(|v| v.rule == "CMS-08");
        assert_eq!(flagged, cut_off, "{at}: CMS-08 {:#?}", r.violations);
    }
    check("decide-roles", 0, false);
    check("cmsadm-backup-before", 0, true);
    check("install-ha-server", 0, true);
    check("interval-archive-gate", 1, true);
    check("incremental-backup", 1, true);
    check("software-upgrade", 1, true);
    check("migrate-full-to-ha", 0, true);
    check("activate-echi", 0, false);
    // In single-user mode the original still collects: before the busy-out nothing is lost.
    let r = rehearse("cms-ha");
    let single = ran(&r.world, 1, "single-user-mode", None).end;
    let busy = ran(&r.world, 1, "busy-out-links", None).start;
    assert!(
        busy - single >= 60,
        "the interval archive wait runs in single-user mode"
    );
    let window = (ran(&r.world, 1, "verify-collection-ha", None).end - busy) as f64 / 60.0;
    assert!((r.impact.clusters[0].sources[0].minutes_not_collected - window).abs() <= 0.1);
}

/// A site written from CMS-08 and CMS-09 ("Back up the required system data and ACD-specific
/// administration data on the original server. After performing the backup, do not make any
/// administrative changes until the upgrade is complete." ... "(11) Use the CMS system
/// administration and ACD-specific administration data backup tape to migrate that data back
/// onto the newly upgraded original CMS server."): an original `north-orig` upgraded to
/// `target` (R19.1 to R21.0: a software upgrade, followed by step (11); 19.1.0.1 to 19.1.0.2: a
/// base load upgrade in place, without it) next to a new HA server.
fn admin_backup_site(original: &str, target: &str) -> String {
    format!(
        r#"[site]
name = "cc-north"
window = {{ start = "2027-02-13T19:00:00-06:00", hours = 14 }}

[[cluster]]
name = "cms"
profile = "avaya-cms-ha"
target = "{target}"

[cluster.facts]
acds = [{{ name = "cm-north", cm_release = "10.1", links = "dual" }}]
backup_devices_compatible = true
ot_conn_license = true
historical_data_gb = 8
intrahour_interval_min = 15
switchover = "none"

[[cluster.node]]
name = "north-orig"
role = "original"
version = "{original}"
facts = {{ ha_role = "primary", cmsadm_backup_at = "2027-02-13T08:00:00-06:00" }}

[[cluster.node]]
name = "north-ha"
role = "new_ha"
version = "{target}"
facts = {{ ha_role = "secondary" }}
"#
    )
}

/// An administration change on the original when step `at` starts: refused (single-user mode),
/// lost (made after the day-of administration backup, which step (11) migrates back onto the
/// original) and flagged as breaking the cut-off (CMS-08), as expected.
fn check_admin_change(site: &str, at: &str, refused: u64, lost: u64, flagged: bool) {
    let text =
        format!("[[fault]]\nkind = \"config_change\"\nstep = \"*/{at}\"\nnode = \"north-orig\"\n");
    let r = rehearse_case(&case_with(site, None), &faults(&text), 1);
    assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
    let ci = &r.impact.clusters[0];
    assert_eq!(ci.config_changes_made, 1, "{at}");
    assert_eq!(
        (ci.config_changes_refused, ci.config_changes_lost),
        (refused, lost),
        "a change at {at}: (refused, lost)"
    );
    let cms_08: Vec<&str> = r
        .violations
        .iter()
        .filter(|v| v.rule == "CMS-08")
        .map(|v| v.message.as_str())
        .collect();
    assert_eq!(!cms_08.is_empty(), flagged, "{at}: CMS-08 {cms_08:?}");
    let says_lost = cms_08.iter().any(|m| m.contains("lost"));
    assert_eq!(says_lost, lost > 0, "{at}: {cms_08:?}");
}

#[test]
fn administration_changed_after_the_day_of_backup_is_lost_to_step_11_cms_08_cms_09() {
    let software = admin_backup_site("R19.1", "R21.0");
    // Before the cut-off: allowed and kept.
    check_admin_change(&software, "decide-roles", 0, 0, false);
    // After the cut-off but before the administration backup: breaks the cut-off; the backup
    // holds it, so (11) brings it back.
    check_admin_change(&software, "cmsadm-backup-before", 0, 0, true);
    // After the backup, before single-user mode (2): made on the original, not in the backup.
    check_admin_change(&software, "single-user-mode", 0, 1, true);
    // Single-user mode, (2) to (8): refused.
    check_admin_change(&software, "interval-archive-gate", 1, 0, true);
    // After (8), before (11): made on the upgraded original, then overwritten by (11).
    check_admin_change(&software, "migrate-incremental-to-ha", 0, 1, true);
    check_admin_change(&software, "migrate-full-to-ha", 0, 1, true);
    // After (11), before the upgrade is complete: breaks the cut-off but stays.
    check_admin_change(&software, "stage-ha-packages", 0, 0, true);
    // After the upgrade is complete.
    check_admin_change(&software, "cmsadm-backup-after", 0, 0, false);
    // A base load upgrade keeps the original's administration in place: there is no (11).
    let base_load = admin_backup_site("19.1.0.1", "19.1.0.2");
    check_admin_change(&base_load, "single-user-mode", 0, 0, true);
    check_admin_change(&base_load, "migrate-full-to-ha", 0, 0, true);
}

// ---- roles: CMS-13, CMS-14, CMS-15 ----------------------------------------------------------

/// config_HA 1 runs on the primary (CMS-13): before it the servers are no HA pair (no heartbeat,
/// nothing takes over); after it the primary decided for the site is the active server.
#[test]
fn roles_are_set_up_on_the_primary_by_config_ha_cms_13() {
    fn check(name: &str, primary: &str) {
        let c = case(name);
        let w = world(&c, &Default::default(), 1);
        assert!(
            !w.clusters[0].pairs[0].formed,
            "{name}: no HA pair before config_HA"
        );
        let r = rehearse_case(&c, &Default::default(), 1);
        let setup = ran(&r.world, 1, "setup-ha-roles", None);
        assert_eq!(
            setup.node.as_deref(),
            Some(primary),
            "{name}: config_HA runs on the primary"
        );
        assert!(r.world.clusters[0].pairs[0].formed, "{name}");
        assert_eq!(active(&r.world).as_deref(), Some(primary), "{name}");
        assert!(
            logged(&r.world, "roles-set-up")
                .iter()
                .any(|(t, n)| n == primary && *t == setup.end - r.world.start),
            "{name}"
        );
        // IDS and CMS restart on the primary, the other server keeps collecting.
        let p = &r.impact.clusters[0].pairs[0];
        assert!(p.minutes_without_redundancy > 0.0);
    }
    check("cms-ha", "cms-orig");
    check("cms-base-load", "cmsw-ha");
}

/// The secondary sends a heartbeat to the primary every 20 s and becomes active by itself when
/// the primary is down (CMS-15), once the roles are set up (CMS-13). Before that a crash of the
/// original promotes nothing.
#[test]
fn the_secondary_takes_over_within_a_heartbeat_when_the_primary_is_down_cms_15() {
    fn check(name: &str, primary: &str, secondary: &str, after_setup: bool, seed: u64) {
        let c = case(name);
        let base = rehearse_case(&c, &Default::default(), seed);
        // After the whole run, or for 30 minutes during the historical migration (10).
        let (at, recover) = if after_setup {
            (end_min(&base.world) + 5.0, "")
        } else {
            (
                start_min(&base.world, "migrate-full-to-ha") + 5.0,
                "recover_min = 30",
            )
        };
        let r = rehearse_case(&c, &faults(&fault("crash", primary, at, recover)), seed);
        let crash = logged(&r.world, "crash");
        assert_eq!(crash.len(), 1, "{name}");
        let promoted: Vec<_> = logged(&r.world, "promoted")
            .into_iter()
            .filter(|(t, _)| *t >= crash[0].0)
            .collect();
        if after_setup {
            assert_eq!(promoted.len(), 1, "{name}: {promoted:?}");
            assert_eq!(promoted[0].1, secondary);
            let took = promoted[0].0 - crash[0].0;
            assert!(
                (1..=20).contains(&took),
                "{name} seed {seed}: took over after {took} s"
            );
            assert_eq!(active(&r.world).as_deref(), Some(secondary));
        } else {
            let setup = ran(&r.world, 1, "setup-ha-roles", None).start - r.world.start;
            assert!(
                promoted.iter().all(|(t, _)| *t >= setup),
                "{name}: no HA before config_HA: {promoted:?}"
            );
            // The original was the only server users could work on for the whole crash.
            let down = pair_s_down(&r.world) - pair_s_down(&base.world);
            assert!(
                (down - 1800.0).abs() <= 2.0,
                "{name}: {down} s without an active server"
            );
        }
    }
    for seed in 1..=5 {
        check("cms-ha", "cms-orig", "cms-ha", true, seed);
        check("cms-base-load", "cmsw-ha", "cmsw-orig", true, seed);
    }
    check("cms-ha", "cms-orig", "cms-ha", false, 1);
}

/// When only the CM link to the primary fails, the heartbeat still gets an answer: the
/// secondary is not promoted (CMS-15), the auditor says it must be made active by hand, and
/// reversing the roles does it. The secondary keeps collecting, so no interval is lost. A
/// dual-IP primary collects from its ESS instead (CMS-16): nothing to do by hand.
#[test]
fn a_failed_cm_link_to_the_primary_promotes_nothing_cms_15() {
    fn check(dual_ip: bool, flagged: bool) {
        let edits: &[(&str, &str)] = if dual_ip {
            &[(
                "ha_role = \"primary\"\n",
                "ha_role = \"primary\"\ndual_ip = true\n",
            )]
        } else {
            &[]
        };
        let c = case_of("cms-ha", edits);
        let base = rehearse_case(&c, &Default::default(), 1);
        let at = end_min(&base.world) + 5.0;
        let mut r = rehearse_case(&c, &faults(&fault("link_failure", "cms-orig", at, "")), 1);
        assert_eq!(
            active(&r.world).as_deref(),
            Some("cms-orig"),
            "nothing promoted"
        );
        assert!(logged(&r.world, "promoted")
            .iter()
            .all(|(t, _)| (*t as f64) < at * 60.0));
        let v: Vec<_> = r.violations.iter().filter(|v| v.rule == "CMS-15").collect();
        assert_eq!(v.len(), usize::from(flagged), "dual_ip {dual_ip}: {v:#?}");
        if flagged {
            assert_eq!(v[0].time - r.world.start, (at * 60.0).round() as i64);
            assert!(v[0].message.contains("by hand"), "{}", v[0].message);
        }
        assert_eq!(
            r.impact.clusters[0].intervals_not_collected,
            base.impact.clusters[0].intervals_not_collected
        );
        // By hand: config_HA 2 on the primary makes the secondary the active server.
        run_rollback_steps(&mut r.world, &c.plan, 3, &["reverse-roles"]);
        assert_eq!(active(&r.world).as_deref(), Some("cms-ha"));
    }
    check(false, true);
    check(true, false);
}

/// Reversing the roles (config_HA 2) before a planned outage of the primary hands the active
/// role over first, so the outage costs no time without an active server; without it the
/// heartbeat takes up to 20 s. Reversal needs the roles set up first (CMS-14): before, the step
/// is skipped and nothing changes.
#[test]
fn roles_are_reversed_before_a_planned_outage_once_set_up_cms_14() {
    fn check(set_up: bool, reverse: bool, active_after: &str, max_down_s: f64) {
        let c = case("cms-ha");
        let mut w = world(&c, &Default::default(), 1);
        if set_up {
            let out = run_steps(&mut w, &c.plan, 1, &c.plan.steps);
            assert!(failed(&out).is_empty());
        }
        w.finish();
        if reverse {
            let step = c
                .plan
                .rollback
                .iter()
                .find(|s| s.action == "reverse-roles")
                .unwrap();
            w.mark_rollback(3);
            let out = run_steps(&mut w, &c.plan, 3, std::slice::from_ref(step));
            let expected = if set_up {
                Outcome::Done
            } else {
                Outcome::Skipped
            };
            assert_eq!(out[&step.id], expected, "roles set up: {set_up}");
            if !set_up {
                assert_eq!(
                    active(&w).as_deref(),
                    Some(active_after),
                    "nothing to reverse"
                );
                assert!(!w.clusters[0].pairs[0].formed);
                return;
            }
        }
        let before = pair_s_down(&w);
        run_rollback_steps(&mut w, &c.plan, 4, &["stop-original"]);
        w.finish();
        assert_eq!(active(&w).as_deref(), Some(active_after));
        let down = pair_s_down(&w) - before;
        assert!(down <= max_down_s, "{down} s without an active server");
        if !reverse {
            assert!(down >= 1.0, "the heartbeat needs a moment: {down} s");
        }
    }
    check(true, true, "cms-ha", 0.0);
    check(true, false, "cms-ha", 20.0);
    check(false, true, "cms-orig", 0.0);
}

// ---- dual IP: CMS-16 ------------------------------------------------------------------------

/// A dual-IP server collects from the main CM; only while its main link is down does it collect
/// from the ESS, and it lets the ESS go when the main link is back: never both (CMS-16). With
/// the other server down, a non-dual-IP server loses the ACDs for the whole link failure. The
/// ESS links stay disconnected through the upgrade: the busy-out window is the same.
#[test]
fn a_dual_ip_server_collects_from_the_ess_only_while_its_main_link_is_down_cms_16() {
    fn check(dual_ip: bool, lost_per_acd: std::ops::RangeInclusive<u64>) {
        let edits: &[(&str, &str)] = if dual_ip {
            &[(
                "ha_role = \"primary\"\n",
                "ha_role = \"primary\"\ndual_ip = true\n",
            )]
        } else {
            &[]
        };
        let c = case_of("cms-ha", edits);
        let base = rehearse_case(&c, &Default::default(), 1);
        assert_eq!(
            base.impact.clusters[0].sources[0].intervals_not_collected, 1,
            "busy-out"
        );
        let end = end_min(&base.world);
        let text = fault("crash", "cms-ha", end + 5.0, "")
            + &fault("link_failure", "cms-orig", end + 10.0, "recover_min = 65");
        let r = rehearse_case(&c, &faults(&text), 1);
        for s in &r.impact.clusters[0].sources {
            let lost = s.intervals_not_collected - 1;
            assert!(
                lost_per_acd.contains(&lost),
                "dual_ip {dual_ip}: {} lost {lost}",
                s.source
            );
        }
        let on = logged(&r.world, "survivable-source");
        let off = logged(&r.world, "main-source");
        if dual_ip {
            let t0 = ((end + 10.0) * 60.0).round() as i64;
            assert_eq!(on, vec![(t0, "cms-orig".to_string())]);
            assert_eq!(off, vec![(t0 + 65 * 60, "cms-orig".to_string())]);
        } else {
            assert!(on.is_empty() && off.is_empty());
        }
    }
    check(true, 0..=0);
    // 65 minutes without either server: two or three 30-minute intervals per ACD.
    check(false, 2..=3);
}

// ---- the auditor: mis-ordered plans ---------------------------------------------------------

/// Plans that touch the original before the new HA server's collection is verified (CMS-09):
/// built with `swap_order` (the incremental backup (6) before the verification (5)) or by
/// editing `after` lists (the backup and the upgrade (7) right after the release, the
/// verification last). The auditor names CMS-09 on the incremental backup, at its start, before
/// the verification ended; the plans as made are clean.
#[test]
fn touching_the_original_before_the_new_server_collects_is_caught_cms_09() {
    fn check(name: &str, misorder: &dyn Fn(&Plan) -> Plan, upgrade: &str) {
        let c = case(name);
        assert!(rehearse(name).violations.iter().all(|v| v.rule != "CMS-09"));
        let bad = Case {
            plan: misorder(&c.plan),
            site: c.site.clone(),
            profiles: c.profiles.clone(),
        };
        let r = rehearse_case(&bad, &Default::default(), 1);
        let t = ran(&r.world, 1, "incremental-backup", None);
        let verify = ran(&r.world, 1, "verify-collection-ha", None);
        let up = ran(&r.world, 1, upgrade, None);
        let v: Vec<_> = r
            .violations
            .iter()
            .filter(|v| v.rule == "CMS-09" && v.step.as_deref() == Some(t.step.as_str()))
            .collect();
        assert_eq!(v.len(), 1, "{name}: {:#?}", r.violations);
        assert_eq!(v[0].time, t.start, "{name}: at the backup's start");
        assert!(v[0].time < verify.end, "{name}");
        assert!(v[0].message.contains(&verify.step), "{}", v[0].message);
        assert!(
            up.start <= verify.start,
            "{name}: the original is upgraded unverified"
        );
    }
    check(
        "cms-ha",
        &|p| {
            swap_order(
                p,
                "cms/cms-ha/verify-collection-ha",
                "cms/cms-orig/incremental-backup",
            )
        },
        "software-upgrade",
    );
    check(
        "cms-ha",
        &|p| {
            with_after(
                p,
                &[
                    ("cms/cms-orig/incremental-backup", &["cms/release-links"]),
                    (
                        "cms/cms-ha/verify-collection-ha",
                        &["cms/cms-orig/software-upgrade"],
                    ),
                ],
            )
        },
        "software-upgrade",
    );
    check(
        "cms-base-load",
        &|p| {
            with_after(
                p,
                &[
                    ("cms/cmsw-orig/incremental-backup", &["cms/release-ha-link"]),
                    (
                        "cms/cmsw-ha/verify-collection-ha",
                        &["cms/cmsw-orig/base-load-upgrade"],
                    ),
                ],
            )
        },
        "base-load-upgrade",
    );
}

/// A plan edited so that the links are busied out right after single-user mode, without waiting
/// for the intra-hour interval archive (CMS-09 step (3)): the auditor names CMS-09 at the
/// busy-out's start. The busy-out then starts anywhere in an interval and can lose two
/// intervals per ACD instead of one (CMS-10).
#[test]
fn busying_out_before_the_interval_archive_is_caught_and_costs_intervals_cms_09_cms_10() {
    fn check(seed: u64) -> u64 {
        let c = case("cms-ha");
        let good = rehearse_case(&c, &Default::default(), seed);
        assert!(good.impact.clusters[0]
            .sources
            .iter()
            .all(|s| s.intervals_not_collected == 1));
        let bad = Case {
            plan: with_after(
                &c.plan,
                &[("cms/busy-out-links", &["cms/cms-orig/single-user-mode"])],
            ),
            site: c.site.clone(),
            profiles: c.profiles.clone(),
        };
        let r = rehearse_case(&bad, &Default::default(), seed);
        assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
        let busy = ran(&r.world, 1, "busy-out-links", None);
        let gate = ran(&r.world, 1, "interval-archive-gate", None);
        let v: Vec<_> = r
            .violations
            .iter()
            .filter(|v| v.rule == "CMS-09" && v.step.as_deref() == Some("cms/busy-out-links"))
            .collect();
        assert_eq!(v.len(), 1, "seed {seed}: {:#?}", r.violations);
        assert_eq!(v[0].time, busy.start);
        assert!(busy.start < gate.end, "busied out before the archive");
        let lost = r.impact.clusters[0].sources[0].intervals_not_collected;
        assert!((1..=2).contains(&lost), "seed {seed}: {lost}");
        lost
    }
    let lost: Vec<u64> = (1..=6).map(check).collect();
    assert!(lost.contains(&2), "{lost:?}");
}

// ---- strategies -----------------------------------------------------------------------------

/// The vendor's day-of list is one chain (CMS-09): one-at-a-time only serialises the side work
/// (the administration backup next to the installation, the client switch-over, ECHI, the two
/// closing CMSADM backups), so the day is longer and the pair stays without redundancy longer,
/// but the busy-out (3) to verification (5) window and the intervals lost per ACD are the same
/// as with the fastest strategy (CMS-10).
#[test]
fn one_at_a_time_lengthens_the_day_but_not_the_no_collection_window_cms_09_cms_10() {
    fn check(name: &str, min_longer_min: f64) {
        let fast_case = case_with(&example(name), Some("fastest"));
        let slow_case = case_with(&example(name), Some("one-at-a-time"));
        let seeds = 1..=12u64;
        let (mut window, mut unprotected) = (0.0, 0.0);
        for seed in seeds.clone() {
            let fast = rehearse_case(&fast_case, &Default::default(), seed);
            let slow = rehearse_case(&slow_case, &Default::default(), seed);
            assert!(
                inhibitors(&slow.violations).is_empty(),
                "{:#?}",
                slow.violations
            );
            let (f, s) = (&fast.impact.clusters[0], &slow.impact.clusters[0]);
            window += (s.window_s - f.window_s) as f64 / 60.0;
            unprotected +=
                s.pairs[0].minutes_without_redundancy - f.pairs[0].minutes_without_redundancy;
            assert_eq!(
                s.intervals_not_collected, f.intervals_not_collected,
                "{name}"
            );
            for (a, b) in s.sources.iter().zip(&f.sources) {
                assert_eq!(a.intervals_not_collected, b.intervals_not_collected);
                assert!((a.minutes_not_collected - b.minutes_not_collected).abs() <= 10.0);
            }
            // One server worked on at a time: the side work never overlaps.
            let side = [
                "admin-data-backup",
                "install-ha-server",
                "cmsadm-backup-after",
            ];
            let mine: Vec<_> = slow
                .world
                .trace
                .iter()
                .filter(|e| side.contains(&e.action.as_str()))
                .collect();
            for a in &mine {
                for b in &mine {
                    assert!(
                        a.step == b.step || a.end <= b.start || b.end <= a.start,
                        "{} / {}",
                        a.step,
                        b.step
                    );
                }
            }
        }
        let n = seeds.count() as f64;
        assert!(
            window / n >= min_longer_min,
            "{name}: {} min longer on average",
            window / n
        );
        assert!(
            unprotected / n > 0.0,
            "{name}: {} min more without redundancy",
            unprotected / n
        );
    }
    check("cms-ha", 30.0);
    check("cms-base-load", 30.0);
}

// ---- faults and rollback --------------------------------------------------------------------

/// After a fault in the middle of the day, the plan's rollback brings every node back to the
/// version it had (the new HA server keeps the target it was installed with, or is still
/// missing) with no inhibitor-severity violation in the rollback run.
#[test]
fn rollback_after_a_mid_procedure_fault_restores_the_original_versions_cms_09_cms_11() {
    fn check(name: &str, faults_text: &str, failed_step: &str) {
        let c = case(name);
        let mut r = rehearse_case(&c, &faults(faults_text), 1);
        let f = failed(&r.outcomes);
        assert_eq!(f.len(), 1, "{name}: {f:?}");
        assert!(f[0].0.ends_with(failed_step), "{name}: {f:?}");
        let out = roll_back(&c, &mut r);
        assert!(failed(&out).is_empty(), "{name}: {:?}", failed(&out));
        assert_eq!(out.len(), c.plan.rollback.len());
        assert!(
            r.impact.clusters[0].on_target,
            "{name}: {:?}",
            r.impact.clusters[0].off_target
        );
        let start = r
            .world
            .trace
            .iter()
            .filter(|e| e.run == 2)
            .map(|e| e.start)
            .min()
            .unwrap();
        let bad: Vec<_> = inhibitors(&r.violations)
            .into_iter()
            .filter(|v| v.time >= start)
            .collect();
        assert!(bad.is_empty(), "{name}: {bad:#?}");
        // The original collects again; the new HA server's links stay busied out.
        let orig = &c.site.clusters[0]
            .nodes
            .iter()
            .find(|n| n.role == "original")
            .unwrap()
            .name;
        assert!(
            collecting(&r.world).contains(orig),
            "{name}: {:?}",
            collecting(&r.world)
        );
    }
    let at = |kind: &str, step: &str, extra: &str| {
        format!("[[fault]]\nkind = \"{kind}\"\nstep = \"{step}\"\n{extra}\n")
    };
    check(
        "cms-ha",
        &at("install_failure", "cms/cms-orig/software-upgrade", ""),
        "software-upgrade",
    );
    check(
        "cms-ha",
        &at("crash", "cms/cms-orig/software-upgrade", "recover_min = 20"),
        "software-upgrade",
    );
    check(
        "cms-ha",
        &at("install_failure", "cms/cms-ha/install-ha-server", ""),
        "install-ha-server",
    );
    check(
        "cms-ha",
        &at("crash", "cms/cms-ha/migrate-full-to-ha", "recover_min = 30"),
        "migrate-full-to-ha",
    );
    check(
        "cms-base-load",
        &at("install_failure", "cms/cmsw-orig/base-load-upgrade", ""),
        "base-load-upgrade",
    );
    check(
        "cms-base-load",
        &at(
            "crash",
            "cms/cmsw-orig/restart-collection-original",
            "recover_min = 15",
        ),
        "restart-collection-original",
    );
}

/// The impact the document warns about. During the original's upgrade the new HA server is the
/// only one collecting ("the alternate server maintains uninterrupted data collection"): if it
/// crashes then, every ACD loses the rest of the upgrade. The busy-out to verification window
/// must be as short as possible (CMS-10): a busy-out three times as slow loses a second
/// interval per ACD. A new HA server whose links do not come up stops the run at step (5),
/// before the original is touched.
#[test]
fn faults_lose_call_data_where_the_document_warns_cms_09_cms_10() {
    fn check(
        faults_of: &dyn Fn(&World) -> String,
        lost_per_acd: std::ops::RangeInclusive<u64>,
        stops_at: Option<&str>,
    ) {
        let c = case("cms-ha");
        let base = rehearse_case(&c, &Default::default(), 1);
        let r = rehearse_case(&c, &faults(&faults_of(&base.world)), 1);
        for s in &r.impact.clusters[0].sources {
            assert!(
                lost_per_acd.contains(&s.intervals_not_collected),
                "{}: {} intervals",
                s.source,
                s.intervals_not_collected
            );
        }
        match stops_at {
            Some(step) => {
                let f = failed(&r.outcomes);
                assert_eq!(f.len(), 1, "{f:?}");
                assert!(f[0].0.ends_with(step), "{f:?}");
                let orig = &r.world.clusters[0].nodes[node_index(&r.world, "cms-orig")];
                assert_eq!(orig.active, orig.original, "the original is untouched");
            }
            None => assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes)),
        }
    }
    // The new HA server crashes 30 minutes into the 3-hour software upgrade, back after 4 hours.
    check(
        &|w| {
            fault(
                "crash",
                "cms-ha",
                start_min(w, "software-upgrade") + 30.0,
                "recover_min = 240",
            )
        },
        5..=7,
        None,
    );
    // A busy-out three times as slow as planned: about an hour without collection.
    check(
        &|_| "[[fault]]\nkind = \"slow_step\"\nstep = \"cms/busy-out-links\"\nfactor = 3\n".into(),
        2..=3,
        None,
    );
    // The new HA server's CM link fails as the links are released: (5) times out.
    check(
        &|_| {
            "[[fault]]\nkind = \"link_failure\"\nstep = \"cms/release-links\"\nnode = \"cms-ha\"\n"
                .into()
        },
        2..=4,
        Some("verify-collection-ha"),
    );
}

/// `TWIN_CMS=1 cargo test -p ferry-twin debug_cms_impact -- --nocapture` prints every CMS
/// example's impact and violations under both strategies.
#[test]
fn debug_cms_impact() {
    if std::env::var("TWIN_CMS").is_err() {
        return;
    }
    for name in ["cms-ha", "cms-base-load", "cms-inhibitors"] {
        for strategy in ["fastest", "one-at-a-time"] {
            let r = rehearse_case(
                &case_with(&example(name), Some(strategy)),
                &Default::default(),
                1,
            );
            println!(
                "{name} {strategy}: {}",
                serde_json::to_string(&impact(&r.world, false)).unwrap()
            );
            for v in &r.violations {
                println!(
                    "  {:?} {} {}: {}",
                    v.severity,
                    v.rule,
                    v.time - r.world.start,
                    v.message
                );
            }
        }
    }
}
