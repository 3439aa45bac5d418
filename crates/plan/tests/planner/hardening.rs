//! The planner on inputs at the edge of their ranges: huge numbers that skip the loaders'
//! checks (a profile built in code), the longest steps, names too long for a table column,
//! and clusters whose nodes run different versions (UCM-09, UCM-19: the publisher's place in
//! the order, which a subscriber behind it makes impossible to keep).

use super::common::{example, findings, profiles};
use ferry_model::{Plan, Profile, Severity};
use ferry_plan::render;
use ferry_plan::PlanOptions;
use ferry_profiles::load_site;

/// Plans `site` with the built-in profiles, `edit` applied to profile `name` first (values the
/// loader would refuse, to show the planner does not rely on it alone).
fn plan_edited(site: &str, name: &str, edit: impl Fn(&mut Profile)) -> Plan {
    let set = profiles();
    let site = load_site("test.toml", site, &set).expect("site loads");
    let mut profile = set.get(name).expect("profile").profile.clone();
    edit(&mut profile);
    ferry_plan::plan(
        &site,
        |n| {
            if n == name {
                Some(&profile)
            } else {
                set.get(n).map(|p| &p.profile)
            }
        },
        "test".into(),
        &PlanOptions::default(),
    )
    .expect("plans")
}

/// Every figure of `plan` consistent: each step ends after it starts, within the makespan of
/// its phase, and the text rendering shows the window the plan computed.
fn check_consistent(plan: &Plan) {
    for s in &plan.steps {
        assert!(s.end_s() >= s.start_s, "{} wraps", s.id);
        assert!(s.duration_s <= ferry_model::plan::MAX_STEP_S, "{}", s.id);
        let span = match s.phase {
            ferry_model::Phase::Prepare => plan.prepare_s,
            ferry_model::Phase::Staging => plan.staging_s,
            ferry_model::Phase::Window => plan.makespan_s,
        };
        assert!(s.end_s() <= span, "{} ends after its phase", s.id);
    }
    assert!(plan.lower_bound_s <= plan.makespan_s);
    assert!(plan.makespan_s <= plan.sequential_s.max(plan.makespan_s));
    let text = render::text::render_text(plan);
    assert!(
        text.contains(&format!(
            "window (makespan):   {}",
            render::duration(plan.makespan_s)
        )),
        "{text}"
    );
}

#[test]
fn the_longest_steps_saturate_instead_of_wrapping() {
    // A step of 10^300 minutes, and a gate whose timeout factor is as large.
    let plan = plan_edited(&example("linux-ha-pair"), "linux-ha", |p| {
        for s in &mut p.procedure.steps {
            s.minutes = 1e300;
        }
        p.twin.gate_timeout_factor = 1e300;
    });
    check_consistent(&plan);
    assert!(plan
        .steps
        .iter()
        .all(|s| s.duration_s == ferry_model::plan::MAX_STEP_S));
    for s in &plan.steps {
        if let Some(t) = s.timeout_s {
            assert!(t <= ferry_model::plan::MAX_STEP_S, "{}: {t}", s.id);
        }
    }
    // Every renderer copes.
    let _ = render::mop::render_mop(&plan);
    let svg = render::svg::render_svg(&plan);
    assert!(svg.len() < 5_000_000, "an SVG of {} bytes", svg.len());
    let _ = render::dot::render_dot(&plan);
    // A step lasting 2^64-1 s in a plan built by hand renders without wrapping either.
    let mut by_hand = plan.clone();
    by_hand.steps[0].start_s = u64::MAX - 5;
    by_hand.steps[0].duration_s = u64::MAX;
    assert_eq!(by_hand.steps[0].end_s(), u64::MAX);
    let _ = render::text::render_text(&by_hand);
    let _ = render::svg::render_svg(&by_hand);
}

#[test]
fn infinite_and_nan_per_fact_minutes_give_bounded_steps() {
    let site = example("cms-ha");
    for minutes in [f64::INFINITY, f64::NAN, -1e300] {
        let plan = plan_edited(&site, "avaya-cms-ha", |p| {
            for s in &mut p.procedure.steps {
                if let Some(pf) = &mut s.per_fact {
                    pf.minutes = minutes;
                    pf.per = 1e-300;
                }
            }
        });
        check_consistent(&plan);
    }
}

#[test]
fn huge_version_prefixes_do_not_allocate_ucm_17_ucm_18() {
    // `numbers = 2^32` used to make a vector of 2^32 numbers per node (32 GiB), and
    // `same_prefix = 2^63 - 1` a capacity overflow.
    let plan = plan_edited(&example("ucm-imp-only-standard"), "cisco-ucm", |p| {
        for c in &mut p.checks {
            if let ferry_model::profile::CheckTest::VersionsMatch { numbers, .. } = &mut c.test {
                *numbers = Some(1 << 32);
            }
        }
        fn widen(c: &mut ferry_model::profile::Condition) {
            use ferry_model::profile::Condition as C;
            match c {
                C::All(cs) | C::Any(cs) => cs.iter_mut().for_each(widen),
                C::Not(c) => widen(c),
                C::Version(t) => {
                    if t.same_prefix.is_some() {
                        t.same_prefix = Some(usize::MAX);
                    }
                    if t.differs_within.is_some() {
                        t.differs_within = Some(usize::MAX);
                    }
                }
                C::AnyNode(t) => widen(&mut t.test),
                _ => {}
            }
        }
        for u in &mut p.upgrade_types {
            if let Some(w) = &mut u.when {
                widen(w);
            }
        }
        for c in &mut p.checks {
            if let Some(w) = &mut c.when {
                widen(w);
            }
        }
    });
    check_consistent(&plan);
}

#[test]
fn table_columns_wider_than_the_formatter_allows_do_not_panic() {
    let mut plan = plan_edited(&example("linux-ha-pair"), "linux-ha", |_| {});
    let long = "n".repeat(70_000);
    plan.steps[0].node = Some(long.clone());
    plan.steps[0].title = long.clone();
    if let Some(s) = plan.rollback.first_mut() {
        s.title = long.clone();
    }
    let text = render::text::render_text(&plan);
    assert!(text.contains(&long));
    // The other rows are padded to the capped width, not to 70,000 characters.
    assert!(text
        .lines()
        .filter(|l| !l.contains(&long))
        .all(|l| l.len() < 6 * 1_000 + 20));
    let _ = render::mop::render_mop(&plan);
    let _ = render::svg::render_svg(&plan);
    let _ = render::dot::render_dot(&plan);
}

/// The CUCM site of a publisher on 12.5 and one subscriber a release behind, on `sub`.
fn behind(sub: &str) -> String {
    format!(
        r#"[site]
name = "branch"
window = {{ start = "2026-12-05T22:00:00-05:00", hours = 8 }}

[[cluster]]
name = "ucm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
facts = {{ upgrade_source = "sftp" }}

[[cluster.node]]
name = "pub"
role = "publisher"
version = "12.5.1.17900-64"
facts = {{ replication_state = 2, drs_backup_at = "2026-12-05T06:30:00-05:00" }}

[[cluster.node]]
name = "sub"
role = "subscriber"
version = "{sub}"
facts = {{ replication_state = 2 }}
"#
    )
}

/// `(subscriber's version, expected severity of the mixed-versions finding, if any)`.
fn check_mixed(sub: &str, expected: Option<Severity>) {
    let f = findings(&behind(sub));
    let mixed: Vec<_> = f
        .iter()
        .filter(|x| x.rule == ferry_plan::MIXED_VERSIONS_RULE)
        .collect();
    match expected {
        None => assert!(mixed.is_empty(), "{sub}: {mixed:#?}"),
        Some(sev) => {
            assert_eq!(mixed.len(), 1, "{sub}: {f:#?}");
            let m = mixed[0];
            assert_eq!(m.severity, sev, "{sub}: {}", m.message);
            assert_eq!(m.cluster.as_deref(), Some("ucm"));
            for words in [
                "pub (publisher) runs 12.5.1.17900-64",
                &format!("sub (subscriber) runs {sub}"),
            ] {
                assert!(m.message.contains(words), "{}", m.message);
            }
            assert!(
                m.remedy.contains("Bring") || m.remedy.contains("bringing"),
                "{}",
                m.remedy
            );
            if sev == Severity::Inhibitor {
                // Which rules cannot be kept: the publisher's place in the order.
                assert!(m.message.contains("UCM-09"), "{}", m.message);
            }
        }
    }
}

#[test]
fn a_subscriber_behind_its_publisher_is_a_finding_not_a_scheduling_error_ucm_09_ucm_19() {
    check_mixed("12.5.1.17900-64", None);
    // Schedulable: each node from its own version; said as a warning.
    check_mixed("11.5.1.17900-64", Some(Severity::Warning));
    // Not schedulable under the refresh rules: an inhibitor, and no steps for the cluster.
    check_mixed("10.5.2.10000-5", Some(Severity::Inhibitor));
    check_mixed("9.1.2.10000-28", Some(Severity::Inhibitor));
    let plan = super::common::plan(&behind("10.5.2.10000-5"));
    assert!(plan.steps.iter().all(|s| s.cluster != "ucm"));
}
