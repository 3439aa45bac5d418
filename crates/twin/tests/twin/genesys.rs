//! genesys-framework in the twin. SCS is the controller of the HA pairs, through the LCA of each
//! host (GEN-07, GEN-08, GEN-09); the master Configuration Server logs the events of GEN-15 ..
//! GEN-17, runs in upgrade mode, keeps the configuration read-only and loses client sessions as
//! the document says (GEN-14); proxies do not start against an older master (GEN-02); the
//! rollback goes back to the old folders (GEN-19).
//!
//! Every feature has one `check` helper and a table of cases.

use super::common::*;
use ferry_model::{Faults, Outcome, Plan, Severity};
use ferry_twin::Violation;

const EXAMPLES: [&str; 3] = [
    "genesys-framework",
    "genesys-proxy-pairs",
    "genesys-standalone-cs",
];

/// The Configuration Server log events of GEN-15 .. GEN-17.
const CODES: [&str; 8] = [
    "21-25303", "21-22172", "21-22911", "21-25301", "21-25300", "21-22902", "21-22170", "21-22171",
];

/// An example with some of its text replaced (`(from, to)` pairs, each must match).
fn edited(example_name: &str, edits: &[(&str, &str)]) -> String {
    let mut text = example(example_name);
    for (from, to) in edits {
        assert!(text.contains(from), "{example_name}: no `{from}`");
        text = text.replacen(from, to, 1);
    }
    text
}

fn case_of(example_name: &str, edits: &[(&str, &str)]) -> Case {
    case_with(&edited(example_name, edits), None)
}

fn run(c: &Case, f: &Faults) -> Rehearsal {
    rehearse_case(c, f, 1)
}

/// Runs the case with a different plan (a hand-edited copy).
fn run_plan(c: &Case, plan: Plan, f: &Faults) -> Rehearsal {
    let c = Case {
        site: c.site.clone(),
        profiles: c.profiles.clone(),
        plan,
    };
    run(&c, f)
}

/// The trace entry of a step (`cluster/node/action` or its `node/action` end).
fn step<'a>(r: &'a Rehearsal, id: &str) -> &'a ferry_twin::TraceEntry {
    r.world
        .trace
        .iter()
        .find(|e| e.step == id || e.step.ends_with(&format!("/{id}")))
        .unwrap_or_else(|| panic!("no step {id} in the trace"))
}

fn step_id(c: &Case, suffix: &str) -> String {
    c.plan
        .steps
        .iter()
        .find(|s| s.id.ends_with(&format!("/{suffix}")))
        .unwrap_or_else(|| panic!("no step {suffix} in the plan"))
        .id
        .clone()
}

/// Minutes from the start of the run to `t` (for a fault's `at_min`).
fn minutes_into(r: &Rehearsal, t: i64) -> f64 {
    (t - r.world.start) as f64 / 60.0
}

/// Times at which `node` logged `code`.
fn logged(r: &Rehearsal, node: &str, code: &str) -> Vec<i64> {
    r.world
        .log
        .iter()
        .filter(|l| l.node.as_deref() == Some(node) && l.code == code)
        .map(|l| l.time)
        .collect()
}

fn first_after(times: &[i64], t: i64) -> Option<i64> {
    times.iter().copied().find(|&x| x >= t)
}

fn inhibitors(v: &[Violation]) -> Vec<&Violation> {
    v.iter()
        .filter(|x| x.severity == Severity::Inhibitor)
        .collect()
}

fn pair<'a>(r: &'a Rehearsal, name: &str) -> &'a ferry_twin::PairImpact {
    r.impact.clusters[0]
        .pairs
        .iter()
        .find(|p| p.pair.starts_with(name))
        .unwrap_or_else(|| panic!("no pair {name}: {:?}", r.impact.clusters[0].pairs))
}

fn crash(node: &str, at_min: f64, recover_min: Option<f64>) -> String {
    let recover = recover_min
        .map(|m| format!("recover_min = {m}\n"))
        .unwrap_or_default();
    format!("[[fault]]\nkind = \"crash\"\nnode = \"{node}\"\nat_min = {at_min}\n{recover}")
}

fn slow(step: &str, factor: f64) -> String {
    format!("[[fault]]\nkind = \"slow_step\"\nstep = \"{step}\"\nfactor = {factor}\n")
}

// ---------------------------------------------------------------------------------------------
// Every example rehearses to its target
// ---------------------------------------------------------------------------------------------

/// The example runs every step, ends on target and breaks no rule of inhibitor severity; its
/// warnings are returned (window overruns are allowed).
fn check_rehearsal(name: &str) -> Vec<String> {
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
    assert!(
        r.impact.clusters[0].on_target,
        "{name}: {:?}",
        r.impact.clusters[0].off_target
    );
    r.violations
        .iter()
        .map(|v| format!("{}: {}", v.rule, v.message))
        .collect()
}

#[test]
fn every_example_rehearses_to_the_target_without_inhibitor_violations() {
    for name in EXAMPLES {
        let warnings = check_rehearsal(name);
        // Only running past the booked window may be reported (a warning).
        assert!(
            warnings
                .iter()
                .all(|w| w.contains("past the end of the booked window")),
            "{name}: {warnings:?}"
        );
    }
}

/// The inhibitor example is not clean: the twin and the auditor flag each of its problems.
fn check_flagged(name: &str, expected: &[(&str, &str)]) {
    let r = rehearse(name);
    for (rule, text) in expected {
        assert!(
            r.violations.iter().any(|v| v.rule == *rule
                && v.severity == Severity::Inhibitor
                && v.message.contains(text)),
            "{name}: no {rule} violation mentioning `{text}`: {:#?}",
            r.violations
        );
    }
}

#[test]
fn the_inhibitor_example_is_flagged_with_its_rules_gen_04_gen_05_gen_08_gen_12() {
    check_flagged(
        "genesys-inhibitors",
        &[
            ("GEN-04", "lrm-85-present"),
            ("GEN-05", "active-alarms"),
            ("GEN-05", "lca-not-running"),
            ("GEN-05", "scs-not-connected"),
            // 240 s is shorter than every LCA upgrade: the limit, and the switchover it causes.
            (
                "GEN-08",
                "longer than disconnect_switchover_timeout_s (240 s)",
            ),
            (
                "GEN-08",
                "incorrect switchover of the master Configuration Server pair",
            ),
            ("GEN-12", "cs-pair-versions-differ"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// GEN-15, GEN-16, GEN-17: the log events of the new Configuration Servers, and the gates
// ---------------------------------------------------------------------------------------------

/// The Configuration Server events `node` logs over the run, in order.
fn check_events(c: &Case, node: &str, expected: &[&str]) {
    let r = run(c, &Faults::default());
    assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
    let got: Vec<&str> = r
        .world
        .log
        .iter()
        .filter(|l| l.node.as_deref() == Some(node) && CODES.contains(&l.code.as_str()))
        .map(|l| l.code.as_str())
        .collect();
    assert_eq!(got, expected, "{node}");
}

#[test]
fn ha_pair_813_new_backup_logs_21_25303_then_21_22172_gen_16() {
    let c = case("genesys-framework");
    // The new backup runs as backup to the old primary; restarted after the switchover, it
    // initialises next to a peer on its own version.
    check_events(
        &c,
        "confserv-bk",
        &[
            "21-22911", "21-25303", "21-22172", "21-22911", "21-22902", "21-22172",
        ],
    );
    // Installed on the old primary's host, it recognises its upgraded peer.
    check_events(&c, "confserv", &["21-22911", "21-22902", "21-22172"]);
}

#[test]
fn ha_pair_upgrade_mode_logs_21_22911_21_25301_21_22902_then_21_22170_or_21_22171_gen_17() {
    let same_db = case("genesys-proxy-pairs");
    check_events(
        &same_db,
        "confserv-bk",
        &[
            "21-22911", "21-25301", "21-22902", "21-22170", // upgrade mode, same database
            "21-22911", "21-22902", "21-22172", // restarted as backup
        ],
    );
    check_events(&same_db, "confserv", &["21-22911", "21-22902", "21-22172"]);
    let upgraded_db = case_of(
        "genesys-proxy-pairs",
        &[("schema_upgrade = false", "schema_upgrade = true")],
    );
    check_events(
        &upgraded_db,
        "confserv-bk",
        &[
            "21-22911", "21-25301", "21-22902", "21-22171", // the database was upgraded
            "21-22911", "21-22902", "21-22172",
        ],
    );
    // Forced with upgrade-mode=1 where it would not detect upgrade mode by itself: 21-25300.
    let forced = case_of(
        "genesys-proxy-pairs",
        &[(
            "config_db_gb = 3 }",
            "config_db_gb = 3, upgrade_mode_forced = true }",
        )],
    );
    check_events(
        &forced,
        "confserv-bk",
        &[
            "21-22911", "21-25300", "21-22902", "21-22170", //
            "21-22911", "21-22902", "21-22172",
        ],
    );
}

#[test]
fn standalone_server_logs_its_start_and_initialisation_gen_15() {
    check_events(
        &case("genesys-standalone-cs"),
        "confserv",
        &["21-22911", "21-22902"],
    );
}

/// A gate ends when the last event it waits for is logged by its node, not on its estimate.
fn check_gate_waits(c: &Case, gate: &str, node: &str, last_event: &str) {
    let r = run(c, &Faults::default());
    let g = step(&r, gate);
    let at = first_after(&logged(&r, node, last_event), g.start)
        .unwrap_or_else(|| panic!("{node} never logged {last_event} after {gate} started"));
    assert_eq!(
        g.end, at,
        "{gate} ended at {} but {last_event} came at {at}",
        g.end
    );
    let planned = c.plan.steps.iter().find(|s| s.id == g.step).unwrap();
    assert_ne!(
        g.end - g.start,
        planned.duration_s as i64,
        "{gate} ran its estimate instead of waiting"
    );
}

#[test]
fn gates_wait_for_the_configuration_server_events_gen_16_gen_17() {
    let framework = case("genesys-framework");
    check_gate_waits(
        &framework,
        "confserv-bk/gate-running-as-backup",
        "confserv-bk",
        "21-22172",
    );
    check_gate_waits(
        &framework,
        "confserv/gate-new-backup-initialized",
        "confserv",
        "21-22172",
    );
    let pairs = case("genesys-proxy-pairs");
    check_gate_waits(
        &pairs,
        "confserv-bk/gate-upgrade-mode-ready",
        "confserv-bk",
        "21-22170",
    );
    check_gate_waits(
        &pairs,
        "confserv/gate-new-backup-initialized",
        "confserv",
        "21-22172",
    );
    let upgraded_db = case_of(
        "genesys-proxy-pairs",
        &[("schema_upgrade = false", "schema_upgrade = true")],
    );
    check_gate_waits(
        &upgraded_db,
        "confserv-bk/gate-upgrade-mode-ready",
        "confserv-bk",
        "21-22171",
    );
}

#[test]
fn upgrade_mode_gate_fails_when_the_new_instance_never_gets_ready_gen_17() {
    // The new instance crashes during its initialisation: no 21-22170 comes, the gate times out
    // and the original primary is never shut down.
    let c = case("genesys-proxy-pairs");
    let base = run(&c, &Faults::default());
    let g = step(&base, "confserv-bk/gate-upgrade-mode-ready");
    let r = run(
        &c,
        &faults(&crash(
            "confserv-bk",
            minutes_into(&base, g.start) + 2.0,
            None,
        )),
    );
    let gate = step_id(&c, "confserv-bk/gate-upgrade-mode-ready");
    match &r.outcomes[&gate] {
        Outcome::Failed(why) => {
            assert!(
                why.contains("timed out") && why.contains("21-22170"),
                "{why}"
            )
        }
        o => panic!("{gate}: {o:?}"),
    }
    assert!(!r
        .outcomes
        .contains_key(&step_id(&c, "confserv/cs-stop-old-primary")));
    assert!(logged(&r, "confserv-bk", "21-22170").is_empty());
}

// ---------------------------------------------------------------------------------------------
// GEN-14: read-only configuration, redundancy, client sessions, SCS switchovers
// ---------------------------------------------------------------------------------------------

/// An operator changes the configuration when `at_step` (a node's step) starts: refused while
/// read-only.
fn check_config_change(c: &Case, at_step: &str, refused: bool) {
    let f = faults(&format!(
        "[[fault]]\nkind = \"config_change\"\nstep = \"{}\"\n",
        step_id(c, at_step)
    ));
    let r = run(c, &f);
    let ci = &r.impact.clusters[0];
    assert_eq!(ci.config_changes_made, 1, "{at_step}");
    assert_eq!(ci.config_changes_refused, u64::from(refused), "{at_step}");
}

#[test]
fn configuration_is_read_only_during_the_configuration_server_upgrade_gen_14() {
    let pairs = case("genesys-proxy-pairs");
    check_config_change(&pairs, "confserv-bk/cs-install-new-instance", false);
    check_config_change(&pairs, "confserv-bk/cs-stop-swap-folder", true);
    check_config_change(&pairs, "confserv-bk/cs-start-upgrade-mode", true);
    check_config_change(&pairs, "confserv/cs-install-on-old-primary-host", true);
    check_config_change(&pairs, "confserv-bk/cs-restart-as-backup", false);
    // 8.1.3 pair on the same schema (GEN-16): backup functionality is kept, nothing is forced
    // read-only.
    check_config_change(
        &case("genesys-framework"),
        "confserv-bk/cs-stop-swap-folder",
        false,
    );
    let r = rehearse("genesys-proxy-pairs");
    let ro = r.impact.clusters[0].read_only_minutes * 60.0;
    let from = step(&r, "confserv/force-read-only").end;
    let to = step(&r, "confserv-bk/cs-stop-upgrade-mode-primary").end;
    assert!(
        (ro - (to - from) as f64).abs() <= 6.0,
        "{ro} s vs {}",
        to - from
    );
}

/// A copy of the plan in which the operator waits `minutes` after `after` before `before`
/// starts (an extra step that does nothing in the twin).
fn with_pause(c: &Case, after: &str, before: &str, minutes: u64) -> Plan {
    let mut plan = c.plan.clone();
    let mut pause = plan
        .steps
        .iter()
        .find(|s| s.id == step_id(c, after))
        .unwrap()
        .clone();
    pause.id = format!("{}/operator-pause", pause.cluster);
    pause.action = "operator-pause".into();
    pause.kind = ferry_model::StepKind::Action;
    pause.effects.clear();
    pause.duration_s = minutes * 60;
    pause.after = vec![step_id(c, after)];
    let next = step_id(c, before);
    plan.steps
        .iter_mut()
        .find(|s| s.id == next)
        .unwrap()
        .after
        .push(pause.id.clone());
    plan.steps.push(pause);
    plan
}

/// The master pair is without redundancy exactly while one member is down or not yet
/// initialised as backup (until it logs 21-22172): a server in upgrade mode is no one's backup.
fn check_redundancy(c: &Case, plan: Plan, name: &str) {
    let r = run_plan(c, plan, &Faults::default());
    assert!(
        failed(&r.outcomes).is_empty(),
        "{name}: {:?}",
        failed(&r.outcomes)
    );
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for node in ["confserv", "confserv-bk"] {
        let backup = logged(&r, node, "21-22172");
        for stop in logged(&r, node, "stopped") {
            let back = first_after(&backup, stop).expect("initialised again");
            spans.push((stop, back));
        }
    }
    spans.sort();
    let mut total = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in spans {
        match cur {
            Some((s, e)) if a <= e => cur = Some((s, e.max(b))),
            Some((s, e)) => {
                total += e - s;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((s, e)) = cur {
        total += e - s;
    }
    let got = pair(&r, "master Configuration Server pair").minutes_without_redundancy;
    assert!(
        (got - total as f64 / 60.0).abs() <= 0.15,
        "{name}: {got} min without redundancy, expected {} min",
        total as f64 / 60.0
    );
}

#[test]
fn master_is_not_redundant_until_the_new_server_has_initialised_gen_14() {
    // Upgrade mode (GEN-17): from the backup's stop to its restart as backup, continuously,
    // also when the operator waits before shutting the original primary down.
    let pairs = case("genesys-proxy-pairs");
    check_redundancy(&pairs, pairs.plan.clone(), "upgrade mode");
    let paused = with_pause(
        &pairs,
        "confserv-bk/gate-upgrade-mode-ready",
        "confserv/cs-stop-old-primary",
        10,
    );
    check_redundancy(&pairs, paused, "upgrade mode, 10 minutes before the stop");
    // 8.1.3 pair (GEN-16): three gaps, each closed by 21-22172; in between the new backup
    // backs the old primary up, also through a pause.
    let framework = case("genesys-framework");
    check_redundancy(&framework, framework.plan.clone(), "8.1.3 pair");
    let paused = with_pause(
        &framework,
        "confserv-bk/gate-running-as-backup",
        "confserv/cs-stop-old-primary",
        10,
    );
    check_redundancy(&framework, paused, "8.1.3 pair, 10 minutes before the stop");
    let r = rehearse("genesys-proxy-pairs");
    let swap = step(&r, "confserv-bk/cs-stop-swap-folder").start;
    let restart = step(&r, "confserv-bk/cs-restart-as-backup").end;
    let got = pair(&r, "master Configuration Server pair").minutes_without_redundancy;
    assert!(got * 60.0 > (restart - swap) as f64, "{got}");
}

/// Client sessions lost over the run, and on which servers.
fn check_sessions(c: &Case, expected: u64, on: &[&str]) {
    let r = run(c, &Faults::default());
    assert_eq!(r.impact.clusters[0].client_sessions_lost, expected);
    let lost: Vec<&str> = r
        .world
        .log
        .iter()
        .filter(|l| l.code == "sessions-lost")
        .filter_map(|l| l.node.as_deref())
        .collect();
    assert_eq!(lost, on);
}

#[test]
fn client_sessions_are_lost_in_upgrade_mode_and_across_a_database_upgrade_gen_14() {
    // 8.1.3 pair on the same schema: clients restore their sessions (GEN-16).
    check_sessions(&case("genesys-framework"), 0, &[]);
    // Upgrade mode: the 40 clients of the master re-read the configuration (GEN-17).
    check_sessions(&case("genesys-proxy-pairs"), 40, &["confserv-bk"]);
    // And with the database upgraded, the proxies' clients lose theirs too.
    check_sessions(
        &case_of(
            "genesys-proxy-pairs",
            &[("schema_upgrade = false", "schema_upgrade = true")],
        ),
        40 + 250 + 200,
        &["confserv-bk", "prx-west-bk", "prx-east-bk"],
    );
    // Standalone server and proxy on an upgraded database (GEN-15).
    check_sessions(
        &case("genesys-standalone-cs"),
        60 + 40,
        &["confserv", "csproxy"],
    );
}

#[test]
fn standalone_downtime_ends_when_the_new_server_has_initialised_gen_15() {
    let r = rehearse("genesys-standalone-cs");
    let stop = step(&r, "confserv/cs-standalone-stop").start;
    let start = step(&r, "confserv/cs-standalone-start").end;
    let init = first_after(&logged(&r, "confserv", "21-22902"), start).unwrap();
    let back = r
        .world
        .log
        .iter()
        .find(|l| {
            l.time > stop && l.code == "sessions-lost" && l.node.as_deref() == Some("confserv")
        })
        .map(|l| l.time)
        .unwrap();
    assert!(
        init > start && back >= init,
        "start {start} init {init} back {back}"
    );
    // 60 clients without a server from the stop until they reconnect after initialisation; the
    // proxy's 40 clients add their own downtime.
    let disconnected = r.impact.clusters[0].client_minutes_disconnected;
    assert!(
        disconnected >= 60.0 * (back - stop) as f64 / 60.0 - 1.0,
        "{disconnected}"
    );
}

/// `node` (the active member of a pair) crashes `after_s` into `anchor`; its partner takes over
/// within SCS's detection time (5 s) of the crash, or, with `release`, of that step's start.
fn check_takeover(
    c: &Case,
    node: &str,
    partner: &str,
    anchor: &str,
    after_s: i64,
    release: Option<&str>,
) {
    let base = run(c, &Faults::default());
    let at = step(&base, anchor).start + after_s;
    let r = run(
        c,
        &faults(&crash(node, minutes_into(&base, at), Some(90.0))),
    );
    let promoted = first_after(&logged(&r, partner, "promoted"), at)
        .unwrap_or_else(|| panic!("{partner} never took over"));
    let from = release.map_or(at, |s| step(&r, s).start);
    assert!(from >= at);
    assert!(
        (promoted - from - 5).abs() <= 1,
        "{partner} took over {} s after the crash of {node}, expected {} s",
        promoted - at,
        from + 5 - at
    );
}

#[test]
fn scs_switches_nothing_else_over_while_a_configuration_server_runs_in_upgrade_mode_gen_14() {
    let c = case("genesys-proxy-pairs");
    // Before the Configuration Server upgrade: SCS notices within its detection time.
    check_takeover(
        &c,
        "prx-west",
        "prx-west-bk",
        "confserv-bk/cs-install-new-instance",
        60,
        None,
    );
    // In upgrade mode: the proxy pair waits until the upgrade-mode server is shut down.
    check_takeover(
        &c,
        "prx-west",
        "prx-west-bk",
        "confserv-bk/gate-upgrade-mode-ready",
        60,
        Some("confserv-bk/cs-stop-upgrade-mode-primary"),
    );
}

// ---------------------------------------------------------------------------------------------
// GEN-09 (and GEN-08): no switchover while a host's LCA is upgraded
// ---------------------------------------------------------------------------------------------

enum Takeover {
    /// Within SCS's detection time.
    AtOnce,
    /// When the new LCA runs (the step ends), plus the detection time.
    WhenLcaRuns,
    /// When disconnect-switchover-timeout (600 s) has elapsed since the LCA stopped.
    AfterTimeout,
}

/// `node` crashes 60 s into the LCA upgrade `lca` (slowed by `slow_factor`); when does
/// `partner` take over?
fn check_hold(lca: &str, node: &str, partner: &str, slow_factor: Option<f64>, expected: Takeover) {
    let c = case("genesys-framework");
    let lca_id = step_id(&c, lca);
    let slow_text = slow_factor.map(|f| slow(&lca_id, f)).unwrap_or_default();
    let base = run(&c, &faults(&slow_text));
    let up = step(&base, lca);
    let at = up.start + 60;
    let r = run(
        &c,
        &faults(&format!(
            "{slow_text}{}",
            crash(node, minutes_into(&base, at), Some(120.0))
        )),
    );
    let up = step(&r, lca);
    assert!(up.start < at && at < up.end);
    let promoted = first_after(&logged(&r, partner, "promoted"), at)
        .unwrap_or_else(|| panic!("{partner} never took over"));
    let want = match expected {
        Takeover::AtOnce => at + 5,
        Takeover::WhenLcaRuns => up.end + 5,
        Takeover::AfterTimeout => up.start + 600 + 5,
    };
    assert!(
        (promoted - want).abs() <= 2,
        "{partner} took over at +{} s of the LCA upgrade (which took {} s), expected +{} s",
        promoted - up.start,
        up.end - up.start,
        want - up.start
    );
}

#[test]
fn no_switchover_on_a_host_while_its_lca_is_upgraded_gen_09() {
    // The active Message Server runs on the host whose LCA is upgraded.
    check_hold(
        "lca-mgmt-b/upgrade-lca",
        "ms-b",
        "ms-a",
        None,
        Takeover::WhenLcaRuns,
    );
    // "... or their peers fail": the active master runs elsewhere, its backup's host LCA is
    // being upgraded.
    check_hold(
        "lca-cfg-b/upgrade-lca",
        "confserv",
        "confserv-bk",
        None,
        Takeover::WhenLcaRuns,
    );
    // The same crash while another host's LCA is upgraded: SCS switches over at once.
    check_hold(
        "lca-prx-1/upgrade-lca",
        "confserv",
        "confserv-bk",
        None,
        Takeover::AtOnce,
    );
    // An LCA upgrade longer than disconnect-switchover-timeout: the hold ends at the timeout.
    check_hold(
        "lca-mgmt-b/upgrade-lca",
        "ms-b",
        "ms-a",
        Some(3.0),
        Takeover::AfterTimeout,
    );
}

/// A Genesys environment written from the document's limitation of the LCA upgrade (GEN-09):
/// "There is no switchover of HA components on the host where LCA being upgraded if any of them
/// or their peers fail, until one of the following occurs: A new LCA is installed and running,
/// or The timeout defined by the disconnect-switchover-timeout option has elapsed." The master
/// Configuration Server pair runs its primary `cfgsrv-1` on ops-cfg-1 and its backup `cfgsrv-2`
/// on ops-cfg-2; ops-rpt runs no HA component. The LCAs of these three hosts (no SCS there) are
/// upgraded one at a time, in `lca_order`, each starting the moment the one before ends; then
/// the LCA of ops-db, the DB Server's host.
fn lca_hold_site(lca_order: &[&str]) -> String {
    let mut site = String::from(
        r#"[site]
name = "ops-center"
window = { start = "2027-03-06T21:00:00+01:00", hours = 8 }

[[cluster]]
name = "fw"
profile = "genesys-framework"
target = "8.5.101"
facts = { disconnect_switchover_timeout_s = 600, schema_upgrade = false, config_db_gb = 1, dr_mode = false }

[[cluster.node]]
name = "scs-1"
role = "scs_primary"
version = "8.1.3"
facts = { host = "ops-mgmt-1" }

[[cluster.node]]
name = "scs-2"
role = "scs_backup"
version = "8.1.3"
facts = { host = "ops-mgmt-2" }

[[cluster.node]]
name = "dbs-1"
role = "db_server"
version = "8.1.3"
facts = { host = "ops-db" }

[[cluster.node]]
name = "cfgsrv-1"
role = "cs_primary"
version = "8.1.3"
facts = { host = "ops-cfg-1", clients = 40 }

[[cluster.node]]
name = "cfgsrv-2"
role = "cs_backup"
version = "8.1.3"
facts = { host = "ops-cfg-2" }
"#,
    );
    let lca = |name: &str, role: &str, host: &str| {
        format!(
            "\n[[cluster.node]]\nname = \"{name}\"\nrole = \"{role}\"\nversion = \"8.1.3\"\nfacts = {{ host = \"{host}\", lca_running = true, scs_connected = true, active_alarms = [] }}\n"
        )
    };
    for host in lca_order.iter().chain(&["db"]) {
        site += &lca(&format!("lca-{host}"), "lca_host", &format!("ops-{host}"));
    }
    site += &lca("lca-mgmt-2", "lca_scs_primary_host", "ops-mgmt-2");
    site += &lca("lca-mgmt-1", "lca_scs_backup_host", "ops-mgmt-1");
    site
}

/// When the backup of a failed master may take over (GEN-09).
enum Hold {
    /// Nothing holds it: within SCS's detection time (5 s) of the crash.
    AtOnce,
    /// When the new LCA of this host runs (its upgrade ends), plus the detection time.
    UntilLcaRuns(&'static str),
    /// When disconnect-switchover-timeout (600 s) has elapsed since this host's LCA stopped.
    UntilTimeout(&'static str),
}

/// The active master `cfgsrv-1` crashes 60 s into the LCA upgrade of host `during` (LCA hosts
/// upgraded in `order`, those in `slow` taking three times their estimate): `cfgsrv-2` takes
/// over as `expected` says, and the pair is without an active master at least that long.
fn check_lca_hold(order: &[&str], slow_hosts: &[&str], during: &str, expected: Hold) {
    let c = case_with(&lca_hold_site(order), None);
    let slow_text: String = slow_hosts
        .iter()
        .map(|h| slow(&step_id(&c, &format!("lca-{h}/upgrade-lca")), 3.0))
        .collect();
    let base = run(&c, &faults(&slow_text));
    let lca = |h: &str| format!("lca-{h}/upgrade-lca");
    let at = step(&base, &lca(during)).start + 60;
    let r = run(
        &c,
        &faults(&format!(
            "{slow_text}{}",
            crash("cfgsrv-1", minutes_into(&base, at), Some(30.0))
        )),
    );
    let up = step(&r, &lca(during));
    assert!(
        up.start < at && at < up.end,
        "the crash falls in {during}'s LCA upgrade"
    );
    for w in order.windows(2) {
        let (first, next) = (step(&r, &lca(w[0])), step(&r, &lca(w[1])));
        assert_eq!(first.end, next.start, "{} follows {} at once", w[1], w[0]);
    }
    let promoted = first_after(&logged(&r, "cfgsrv-2", "promoted"), at)
        .unwrap_or_else(|| panic!("cfgsrv-2 never took over"));
    let (want, why) = match expected {
        Hold::AtOnce => (at + 5, "at once".to_string()),
        Hold::UntilLcaRuns(h) => (
            step(&r, &lca(h)).end + 5,
            format!("when the new LCA of {h} runs"),
        ),
        Hold::UntilTimeout(h) => (
            step(&r, &lca(h)).start + 600 + 5,
            format!("when {h}'s disconnect-switchover-timeout elapses"),
        ),
    };
    assert!(
        (promoted - want).abs() <= 2,
        "order {order:?}, crash during {during}: cfgsrv-2 took over {} s after the crash, expected {} s ({why})",
        promoted - at,
        want - at
    );
    let name = "master Configuration Server pair";
    let without = pair(&r, name).minutes_without_active - pair(&base, name).minutes_without_active;
    let held = (want - at) as f64 / 60.0;
    assert!(
        without >= held - 0.1,
        "order {order:?}, crash during {during}: {without:.2} min without an active master, held {held:.2} min"
    );
}

#[test]
fn no_switchover_until_the_new_lca_runs_on_the_own_host_the_peer_host_and_back_to_back_gen_09() {
    // Own host: the primary fails while its host's LCA is upgraded; the next LCA is on a host
    // without HA components.
    let apart = ["cfg-1", "rpt", "cfg-2"];
    check_lca_hold(&apart, &[], "cfg-1", Hold::UntilLcaRuns("cfg-1"));
    check_lca_hold(&apart, &["cfg-1"], "cfg-1", Hold::UntilTimeout("cfg-1"));
    // Peer host: the primary fails while the LCA of its backup's host is upgraded.
    check_lca_hold(&apart, &[], "cfg-2", Hold::UntilLcaRuns("cfg-2"));
    check_lca_hold(&apart, &["cfg-2"], "cfg-2", Hold::UntilTimeout("cfg-2"));
    // Neither host: nothing holds the switchover.
    check_lca_hold(&apart, &[], "rpt", Hold::AtOnce);
    // Back to back: the primary fails during its own host's LCA upgrade and the peer host's
    // starts the moment it ends; the backup is now on a host whose LCA is being upgraded.
    let back_to_back = ["cfg-1", "cfg-2", "rpt"];
    check_lca_hold(&back_to_back, &[], "cfg-1", Hold::UntilLcaRuns("cfg-2"));
    check_lca_hold(
        &back_to_back,
        &["cfg-2"],
        "cfg-1",
        Hold::UntilTimeout("cfg-2"),
    );
    // Back to back the other way: the primary fails during its peer's host LCA upgrade, and its
    // own host's follows at once.
    let peer_first = ["cfg-2", "cfg-1", "rpt"];
    check_lca_hold(&peer_first, &[], "cfg-2", Hold::UntilLcaRuns("cfg-1"));
}

/// Two hosts' LCAs upgraded at the same time (a hand-edited plan: the profile keeps them one at
/// a time): the active master `cfgsrv-1` crashes 60 s into the LCA upgrade of its host
/// ops-cfg-1, which takes three times its estimate, while ops-rpt's LCA is upgraded alongside.
/// The other host's agent going down and up does not stop ops-cfg-1's own timeout: `cfgsrv-2`
/// takes over when it elapses.
#[test]
fn each_host_keeps_its_own_timeout_when_two_lcas_are_upgraded_at_once_gen_09() {
    let c = case_with(&lca_hold_site(&["cfg-1", "rpt", "cfg-2"]), None);
    let (first, beside) = (
        step_id(&c, "lca-cfg-1/upgrade-lca"),
        step_id(&c, "lca-rpt/upgrade-lca"),
    );
    let mut plan = c.plan.clone();
    let after = plan
        .steps
        .iter()
        .find(|s| s.id == first)
        .unwrap()
        .after
        .clone();
    plan.steps
        .iter_mut()
        .find(|s| s.id == beside)
        .unwrap()
        .after = after;
    for g in &mut plan.limits {
        g.steps.retain(|s| *s != beside);
    }
    let slow_text = slow(&first, 3.0);
    let base = run_plan(&c, plan.clone(), &faults(&slow_text));
    let (up, other) = (step(&base, &first), step(&base, &beside));
    assert_eq!(up.start, other.start, "both LCA upgrades start together");
    assert!(
        other.end < up.start + 600,
        "{beside} ends before {first}'s timeout"
    );
    let at = up.start + 60;
    let r = run_plan(
        &c,
        plan,
        &faults(&format!(
            "{slow_text}{}",
            crash("cfgsrv-1", minutes_into(&base, at), Some(30.0))
        )),
    );
    let up = step(&r, &first);
    let promoted = first_after(&logged(&r, "cfgsrv-2", "promoted"), at)
        .unwrap_or_else(|| panic!("cfgsrv-2 never took over"));
    assert!(
        (promoted - (up.start + 605)).abs() <= 2,
        "cfgsrv-2 took over {} s into the LCA upgrade of ops-cfg-1 (which took {} s), expected 605 s",
        promoted - up.start,
        up.end - up.start
    );
}

/// The incorrect switchovers of a run (GEN-08): (pair, host, seconds after that host's LCA
/// upgrade started).
fn check_wrong_switchovers(c: &Case, plan: Plan, f: &Faults, expected: &[(&str, &str, i64)]) {
    let r = run_plan(c, plan, f);
    let got: Vec<&Violation> = r
        .violations
        .iter()
        .filter(|v| v.rule == "GEN-08" && v.message.contains("incorrect switchover"))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (v, (pair_name, lca, after)) in got.iter().zip(expected) {
        assert!(v.message.contains(pair_name), "{}", v.message);
        assert_eq!(v.severity, Severity::Inhibitor);
        let up = step(&r, lca);
        assert_eq!(v.time - up.start, *after, "{}", v.message);
    }
    assert_eq!(
        r.impact.clusters[0].wrong_switchovers,
        expected.len() as u64
    );
}

#[test]
fn lca_upgrade_longer_than_the_timeout_causes_an_incorrect_switchover_gen_08() {
    let c = case("genesys-framework");
    // Planned as it is: every LCA upgrade ends within 600 s.
    check_wrong_switchovers(&c, c.plan.clone(), &Faults::default(), &[]);
    // disconnect-switchover-timeout never set: SCS switches over at once from every component
    // still running on the disconnected host, and back again when the peer's host follows.
    let mut unset = c.plan.clone();
    unset
        .steps
        .retain(|s| s.action != "set-disconnect-switchover-timeout");
    check_wrong_switchovers(
        &c,
        unset,
        &Faults::default(),
        &[
            (
                "master Configuration Server pair",
                "lca-cfg-a/upgrade-lca",
                0,
            ),
            (
                "master Configuration Server pair",
                "lca-cfg-b/upgrade-lca",
                0,
            ),
            ("Message Server pair", "lca-mgmt-b/upgrade-lca", 0),
            ("Message Server pair", "lca-mgmt-a/upgrade-lca", 0),
        ],
    );
    // One LCA upgrade takes 2.5 times its estimate (about 15 minutes): the switchover comes at
    // the timeout, and the auditor reports the limit broken at the same moment.
    let lca = step_id(&c, "lca-cfg-a/upgrade-lca");
    let f = faults(&slow(&lca, 2.5));
    check_wrong_switchovers(
        &c,
        c.plan.clone(),
        &f,
        &[(
            "master Configuration Server pair",
            "lca-cfg-a/upgrade-lca",
            600,
        )],
    );
    let r = run(&c, &f);
    let limit = r
        .violations
        .iter()
        .find(|v| v.rule == "GEN-08" && v.message.contains("longer than"))
        .expect("the limit is reported");
    assert_eq!(limit.time, step(&r, "lca-cfg-a/upgrade-lca").start + 600);
}

// ---------------------------------------------------------------------------------------------
// Mis-ordered plans: the auditor and the twin catch them
// ---------------------------------------------------------------------------------------------

/// A hand-edited plan breaks `rule`: the auditor's first violation of that rule is at
/// `at_step`'s start (or end, `true`), and, when given, the twin fails `failing`.
fn check_misordered(
    c: &Case,
    plan: Plan,
    rule: &str,
    at_step: Option<(&str, bool)>,
    failing: Option<&str>,
) -> Rehearsal {
    let r = run_plan(c, plan, &Faults::default());
    if let Some((at, end)) = at_step {
        let v = r
            .violations
            .iter()
            .find(|v| v.rule == rule)
            .unwrap_or_else(|| panic!("no {rule} violation: {:#?}", r.violations));
        assert_eq!(v.severity, Severity::Inhibitor);
        let e = step(&r, at);
        let t = if end { e.end } else { e.start };
        assert_eq!(v.time, t, "{rule}: {}", v.message);
    }
    if let Some(f) = failing {
        assert!(
            matches!(r.outcomes.get(&step_id(c, f)), Some(Outcome::Failed(_))),
            "{f}: {:?}",
            r.outcomes.get(&step_id(c, f))
        );
    }
    r
}

#[test]
fn proxy_upgraded_before_its_master_does_not_start_gen_02() {
    let c = case("genesys-framework");
    let plan = swap_order(
        &c.plan,
        &step_id(&c, "confserv-bk/cs-install-new-instance"),
        &step_id(&c, "csproxy-1/proxy-stop-swap-folder"),
    );
    // The auditor reports the order at the proxy's swap (the master's upgrade had not run);
    // then the proxy (8.5.101) refuses to start against the 8.1.3 master: the run stops there.
    let r = check_misordered(
        &c,
        plan.clone(),
        "GEN-02",
        Some(("csproxy-1/proxy-stop-swap-folder", false)),
        Some("csproxy-1/proxy-start-new"),
    );
    assert!(r
        .violations
        .iter()
        .any(|v| v.message.contains("cannot start against its master")));
    // The 8.1.3 master on a single-language database lets 8.5 proxies start: the twin runs on,
    // and only the plan's own order rule (master first) is reported.
    let single = case_of(
        "genesys-framework",
        &[(
            "dr_mode = false }",
            "dr_mode = false, single_language_db = true }",
        )],
    );
    let plan = swap_order(
        &single.plan,
        &step_id(&single, "confserv-bk/cs-install-new-instance"),
        &step_id(&single, "csproxy-1/proxy-stop-swap-folder"),
    );
    let r = check_misordered(
        &single,
        plan,
        "GEN-02",
        Some(("csproxy-1/proxy-stop-swap-folder", false)),
        None,
    );
    assert!(failed(&r.outcomes).is_empty(), "{:?}", failed(&r.outcomes));
    assert!(!r
        .violations
        .iter()
        .any(|v| v.message.contains("cannot start")));
    // The exception is for a master 8.1.3 only: an 8.5.000 master refuses a newer proxy.
    let north = case_of(
        "genesys-proxy-pairs",
        &[(
            "config_db_gb = 3 }",
            "config_db_gb = 3, single_language_db = true }",
        )],
    );
    let plan = swap_order(
        &north.plan,
        &step_id(&north, "confserv-bk/cs-install-new-instance"),
        &step_id(&north, "prx-east-bk/proxy-stop-swap-folder"),
    );
    check_misordered(
        &north,
        plan,
        "GEN-02",
        Some(("prx-east-bk/proxy-stop-swap-folder", false)),
        Some("prx-east-bk/proxy-start-new"),
    );
}

#[test]
fn lca_of_the_primary_scs_host_before_the_other_hosts_is_caught_gen_07() {
    let c = case("genesys-framework");
    let first = step_id(&c, "lca-cfg-a/upgrade-lca");
    let mut plan = swap_order(
        &c.plan,
        &first,
        &step_id(&c, "lca-mgmt-b/stop-scs-switchover"),
    );
    // The whole block of the primary SCS host goes first.
    let last = step_id(&c, "lca-mgmt-b/start-scs-as-backup");
    plan.steps
        .iter_mut()
        .find(|s| s.id == first)
        .unwrap()
        .after
        .push(last);
    let r = check_misordered(
        &c,
        plan,
        "GEN-07",
        Some(("lca-mgmt-b/stop-scs-switchover", false)),
        None,
    );
    assert!(step(&r, "lca-mgmt-b/upgrade-lca").end <= step(&r, "lca-cfg-a/upgrade-lca").start);
}

#[test]
fn lca_upgraded_before_its_scs_is_refused_by_the_twin_gen_05() {
    let c = case("genesys-framework");
    let plan = swap_order(
        &c.plan,
        &step_id(&c, "scs-b/ml-shutdown"),
        &step_id(&c, "lca-cfg-a/upgrade-lca"),
    );
    // The twin refuses the LCA upgrade; the run stops before SCS is touched.
    let r = check_misordered(&c, plan, "GEN-05", None, Some("lca-cfg-a/upgrade-lca"));
    match &r.outcomes[&step_id(&c, "lca-cfg-a/upgrade-lca")] {
        Outcome::Failed(why) => assert!(why.starts_with("GEN-05"), "{why}"),
        o => panic!("{o:?}"),
    }
    let lca = r.world.clusters[0]
        .nodes
        .iter()
        .find(|n| n.name == "lca-cfg-a")
        .unwrap();
    assert_eq!(lca.active, lca.original);
}

#[test]
fn upgrade_mode_primary_stopped_before_the_new_backup_initialised_leaves_no_master_gen_17() {
    let c = case("genesys-proxy-pairs");
    // The upgrade-mode primary is shut down while the new backup is being launched.
    let mut plan = c.plan.clone();
    let (stop, gate) = (
        step_id(&c, "confserv-bk/cs-stop-upgrade-mode-primary"),
        step_id(&c, "confserv/gate-new-backup-initialized"),
    );
    let s = plan.steps.iter_mut().find(|s| s.id == stop).unwrap();
    s.after.retain(|a| *a != gate);
    s.after
        .push(step_id(&c, "confserv/cs-install-on-old-primary-host"));
    // The gate watch and the auditor both name GEN-17 when the stop starts.
    let r = check_misordered(
        &c,
        plan,
        "GEN-17",
        Some(("confserv-bk/cs-stop-upgrade-mode-primary", false)),
        None,
    );
    // The new backup has not initialised: SCS has nothing to promote until it has.
    let stop = step(&r, "confserv-bk/cs-stop-upgrade-mode-primary").start;
    let init = first_after(&logged(&r, "confserv", "21-22902"), stop).unwrap();
    let promoted = first_after(&logged(&r, "confserv", "promoted"), stop).unwrap();
    assert!(
        promoted >= init && init > stop + 60,
        "stop {stop} init {init} promoted {promoted}"
    );
    let base = rehearse("genesys-proxy-pairs");
    let without = pair(&r, "master Configuration Server pair").minutes_without_active;
    let normal = pair(&base, "master Configuration Server pair").minutes_without_active;
    assert!(without > normal + 1.0, "{without} vs {normal}");
}

#[test]
fn original_primary_stopped_before_the_new_instance_is_ready_leaves_clients_without_a_master_gen_17(
) {
    let c = case("genesys-proxy-pairs");
    // The original primary is shut down as soon as the new instance is launched, without
    // waiting for 21-22170.
    let mut plan = c.plan.clone();
    let (stop, gate) = (
        step_id(&c, "confserv/cs-stop-old-primary"),
        step_id(&c, "confserv-bk/gate-upgrade-mode-ready"),
    );
    let s = plan.steps.iter_mut().find(|s| s.id == stop).unwrap();
    s.after.retain(|a| *a != gate);
    s.after
        .push(step_id(&c, "confserv-bk/cs-start-upgrade-mode"));
    let r = check_misordered(
        &c,
        plan,
        "GEN-17",
        Some(("confserv/cs-stop-old-primary", false)),
        None,
    );
    // The master's clients wait for the instance to initialise, then reconnect without their
    // sessions; the gate waits until they have arrived.
    let ready = logged(&r, "confserv-bk", "21-22170")[0];
    let stopped = step(&r, "confserv/cs-stop-old-primary").start;
    let migrated = step(&r, "confserv/gate-clients-migrated").end;
    assert!(
        migrated > ready && ready > stopped + 60,
        "{stopped} {ready} {migrated}"
    );
    assert_eq!(r.impact.clusters[0].client_sessions_lost, 40);
    let base = rehearse("genesys-proxy-pairs");
    let d = r.impact.clusters[0].client_minutes_disconnected
        - base.impact.clusters[0].client_minutes_disconnected;
    assert!(d >= 40.0 * (ready - stopped) as f64 / 60.0 - 1.0, "{d}");
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// From the moment the master runs the new version (its last server started) until the last
/// proxy does: the migration phase the document wants as short as possible (GEN-02).
fn mixed_phase_s(r: &Rehearsal) -> i64 {
    let master = r
        .world
        .trace
        .iter()
        .filter(|e| e.action == "cs-restart-as-backup" || e.action == "cs-standalone-start")
        .map(|e| e.end)
        .max()
        .unwrap();
    let proxies = r
        .world
        .trace
        .iter()
        .filter(|e| e.action == "proxy-start-new")
        .map(|e| e.end)
        .max()
        .unwrap();
    proxies - master
}

/// Compares the strategies' rehearsals of an example: one proxy at a time lengthens the
/// migration phase by about one proxy upgrade per extra proxy (`extra_s` at least); clients
/// lose the same sessions either way and, with `clients_within`, about the same client-minutes
/// (every standalone proxy is down for its own upgrade in both).
fn check_strategies(name: &str, extra_s: i64, clients_within: Option<f64>) {
    let fastest = rehearse_case(
        &case_with(&example(name), Some("fastest")),
        &Faults::default(),
        1,
    );
    let one = rehearse_case(
        &case_with(&example(name), Some("one-at-a-time")),
        &Faults::default(),
        1,
    );
    for r in [&fastest, &one] {
        assert!(failed(&r.outcomes).is_empty() && inhibitors(&r.violations).is_empty());
    }
    let (f, o) = (&fastest.impact.clusters[0], &one.impact.clusters[0]);
    let (pf, po) = (mixed_phase_s(&fastest), mixed_phase_s(&one));
    assert!(po >= pf + extra_s, "{name}: mixed phase {po} s vs {pf} s");
    assert!(
        o.window_s >= f.window_s + extra_s,
        "{name}: window {} vs {}",
        o.window_s,
        f.window_s
    );
    assert!(
        o.mixed_version_minutes >= f.mixed_version_minutes + extra_s as f64 / 60.0,
        "{name}: {} vs {}",
        o.mixed_version_minutes,
        f.mixed_version_minutes
    );
    assert_eq!(o.client_sessions_lost, f.client_sessions_lost, "{name}");
    if let Some(k) = clients_within {
        let (cf, co) = (f.client_minutes_disconnected, o.client_minutes_disconnected);
        assert!(
            (co - cf).abs() <= k * cf,
            "{name}: {co} vs {cf} client-minutes"
        );
    }
}

/// GEN-02 asks for the proxies "as soon as possible" after the master: `fastest` upgrades them
/// together, `one-at-a-time` one after the other, and only the length of the mixed-version
/// phase (and of the window) differs.
#[test]
fn one_at_a_time_prolongs_the_mixed_version_phase_fastest_upgrades_the_proxies_together_gen_02() {
    // Two standalone proxies (about 14 minutes each).
    check_strategies("genesys-framework", 600, Some(0.1));
    // Two proxy pairs (two proxies each, about 17 minutes per proxy).
    check_strategies("genesys-proxy-pairs", 1800, None);
}

// ---------------------------------------------------------------------------------------------
// Faults, and the rollback
// ---------------------------------------------------------------------------------------------

/// After `fault` the upgrade stops; the plan's rollback brings every node back to its original
/// version, without an inhibitor-severity violation in the rollback run.
fn check_rollback(name: &str, fault: &str, failing: &str) {
    let c = case(name);
    let mut r = run(&c, &faults(fault));
    assert!(
        matches!(
            r.outcomes.get(&step_id(&c, failing)),
            Some(Outcome::Failed(_))
        ),
        "{failing}: {:?}",
        r.outcomes.get(&step_id(&c, failing))
    );
    let started = r.world.now;
    let out = roll_back(&c, &mut r);
    assert!(failed(&out).is_empty(), "{name}: {:?}", failed(&out));
    let ci = &r.impact.clusters[0];
    assert!(ci.on_target, "{name}: {:?}", ci.off_target);
    let bad: Vec<&Violation> = inhibitors(&r.violations)
        .into_iter()
        .filter(|v| v.time >= started)
        .collect();
    assert!(bad.is_empty(), "{name}: {bad:#?}");
    // Every server runs again.
    let w = &r.world;
    for (ni, n) in w.clusters[0].nodes.iter().enumerate() {
        if n.role != "cs_dormant" {
            assert!(w.provides(0, ni), "{name}: {} does not serve", n.name);
        }
    }
}

#[test]
fn rollback_after_a_failed_management_layer_upgrade_restores_every_node_gen_19_gen_11() {
    // The SCS primary's install fails after the pair switched over to the upgraded backup.
    check_rollback(
        "genesys-framework",
        "[[fault]]\nkind = \"install_failure\"\nstep = \"genesys/scs-a/install-ml\"\n",
        "scs-a/install-ml",
    );
    check_rollback(
        "genesys-proxy-pairs",
        "[[fault]]\nkind = \"install_failure\"\nstep = \"genesys-north/scs-1/install-ml\"\n",
        "scs-1/install-ml",
    );
    // The single SCS crashes as it is started again (it comes back 10 minutes later).
    check_rollback(
        "genesys-standalone-cs",
        "[[fault]]\nkind = \"crash\"\nstep = \"genesys-branch/scs/start-scs-via-os\"\nrecover_min = 10\n",
        "scs/start-scs-via-os",
    );
}

#[test]
fn rollback_after_a_failed_upgrade_mode_start_restores_the_configuration_servers_gen_19() {
    // The new instance fails to start in upgrade mode: the configuration is read-only and the
    // master has no backup. The rollback brings the old backup back, makes the configuration
    // writable again and restores every server; LCA stays on its new release (the plan does not
    // roll LCA back, GEN-07).
    let c = case("genesys-proxy-pairs");
    let mut r = run(
        &c,
        &faults("[[fault]]\nkind = \"install_failure\"\nstep = \"genesys-north/confserv-bk/cs-start-upgrade-mode\"\n"),
    );
    assert!(r.world.clusters[0].read_only);
    let started = r.world.now;
    let out = roll_back(&c, &mut r);
    assert!(failed(&out).is_empty(), "{:?}", failed(&out));
    assert!(!r.world.clusters[0].read_only);
    let off = &r.impact.clusters[0].off_target;
    assert!(off.iter().all(|o| o.starts_with("lca-")), "{off:?}");
    assert_eq!(off.len(), 8, "{off:?}");
    let bad: Vec<&Violation> = inhibitors(&r.violations)
        .into_iter()
        .filter(|v| v.time >= started)
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    // Swapped to the new folder, and back.
    assert_eq!(logged(&r, "confserv-bk", "switched").len(), 2);
}

#[test]
fn crash_of_the_active_message_server_during_the_lca_upgrade_of_its_host_leaves_no_active_server_gen_09(
) {
    // The document's limitation in figures: the pair has no active Message Server until the
    // new LCA runs, where a crash elsewhere costs seconds.
    let c = case("genesys-framework");
    let base = run(&c, &Faults::default());
    let lca = step(&base, "lca-mgmt-b/upgrade-lca");
    let during = run(
        &c,
        &faults(&crash(
            "ms-b",
            minutes_into(&base, lca.start + 30),
            Some(120.0),
        )),
    );
    let cfg = step(&base, "backup-config-db");
    let later = run(
        &c,
        &faults(&crash(
            "ms-b",
            minutes_into(&base, cfg.start + 30),
            Some(120.0),
        )),
    );
    let normal = pair(&base, "Message Server pair").minutes_without_active;
    let d = pair(&during, "Message Server pair").minutes_without_active - normal;
    let l = pair(&later, "Message Server pair").minutes_without_active - normal;
    let remaining = (lca.end - lca.start - 30) as f64 / 60.0;
    assert!(
        d >= remaining - 0.2,
        "{d} min without an active Message Server"
    );
    assert!(l <= 0.2, "{l}");
}

/// A complete upgrade rolled back: every Configuration Server returns to its old folder, with
/// the master without an active server for at least `outage_min` more minutes than in the upgrade
/// (at most `max_min`); `flagged` inhibitor violations after the rollback started. The LCAs the
/// plan does not roll back stay on the new version: the rollback's end state shows them off
/// their original version (the auditor's end checks judge where an upgrade ends, not a
/// rollback).
fn check_full_rollback(name: &str, outage_min: f64, max_min: f64, flagged: usize) {
    let c = case(name);
    let mut r = rehearse_case(&c, &Faults::default(), 1);
    let upgrade = pair(&r, "master Configuration Server pair").minutes_without_active;
    let (started, lost) = (r.world.now, r.impact.clusters[0].client_sessions_lost);
    let out = roll_back(&c, &mut r);
    assert!(failed(&out).is_empty(), "{name}: {:?}", failed(&out));
    for n in &r.world.clusters[0].nodes {
        if n.role.starts_with("lca_") {
            // The plan does not roll LCA back (GEN-07: it would go host by host again).
            assert_eq!(n.active, n.target, "{name}: {}", n.name);
        } else {
            assert_eq!(n.active, n.original, "{name}: {}", n.name);
        }
        if n.role.starts_with("cs_") {
            assert_eq!(
                n.inactive.as_ref(),
                Some(&n.target),
                "{name}: {} keeps the new folder aside",
                n.name
            );
        }
    }
    // Old servers on the same database: clients keep their sessions.
    assert_eq!(r.impact.clusters[0].client_sessions_lost, lost, "{name}");
    let d = pair(&r, "master Configuration Server pair").minutes_without_active - upgrade;
    assert!(
        d >= outage_min && d <= max_min,
        "{name}: {d} min without an active master"
    );
    let bad: Vec<&Violation> = inhibitors(&r.violations)
        .into_iter()
        .filter(|v| v.time >= started)
        .collect();
    assert_eq!(bad.len(), flagged, "{name}: {bad:#?}");
    let back = ferry_twin::impact(&r.world, true);
    let lcas = c.site.clusters[0]
        .nodes
        .iter()
        .filter(|n| n.role.starts_with("lca_") && n.version != n.target)
        .count();
    assert_eq!(
        back.clusters[0].off_target.len(),
        lcas,
        "{name}: {:?}",
        back.clusters[0].off_target
    );
}

#[test]
fn rollback_of_a_complete_upgrade_returns_to_the_old_folders_gen_19_gen_13() {
    // Legacy 8.5 master: backup first, then the other; only the planned switchovers (GEN-19).
    check_full_rollback("genesys-proxy-pairs", 0.0, 0.5, 0);
    // Legacy 8.1.3 master: both servers are shut down before the old version starts (GEN-13),
    // so the master has no server until the old backup has initialised. LCA stays on 8.5 above
    // the rolled-back 8.1 SCS: the auditor reports every LCA/SCS pair under GEN-05.
    check_full_rollback("genesys-framework", 10.0, 30.0, 0);
}
