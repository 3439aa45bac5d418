//! The odds a plan states and the comparison of plans (FERRY-FIT): the Monte Carlo rehearsal
//! whatever the number of threads, the odds as `ferry rehearse --runs` gives them, spreads
//! learned from observed durations (LHA-03's staged package), the plans no other beats
//! (Pareto) and the recommendation by a site's objectives.

use super::site_inputs;
use ferry_exec::compare::{self, Costs, Figures};
use ferry_exec::{each_seed, monte_carlo_on, FailurePolicy, Rehearse, RunInputs};
use ferry_model::{Objectives, Plan, Site};
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};
use std::collections::BTreeMap;

/// A pair of database servers behind a service the ferry agent upgrades: the package is staged
/// into the inactive slot while the node serves (LHA-03), then each switches. A one-hour window.
const ORDERS_PAIR: &str = r#"
[site]
name = "orders-db"
window = { start = "2027-03-06T01:00:00+01:00", hours = 1 }

[[cluster]]
name = "orders"
profile = "linux-ha"
target = "5.2.0"

[[cluster.node]]
name = "orders-1"
role = "primary"
version = "5.1.4"
facts = { package_mb = 900 }

[[cluster.node]]
name = "orders-2"
role = "backup"
version = "5.1.4"
facts = { package_mb = 900 }
"#;

struct Case {
    site: Site,
    profiles: BTreeMap<String, ferry_model::Profile>,
    inputs: RunInputs,
    plan: Plan,
    faults: ferry_model::Faults,
}

impl Case {
    fn new(text: &str, opts: &PlanOptions, faults: &str) -> Case {
        let set = ProfileSet::builtin().expect("built-in profiles");
        let site = load_site("orders.toml", text, &set).expect("site");
        let inputs = site_inputs("orders.toml", text);
        let plan = ferry_plan::plan(
            &site,
            |n| set.get(n).map(|p| &p.profile),
            inputs.input_hash(),
            opts,
        )
        .expect("plan");
        let profiles = site
            .clusters
            .iter()
            .map(|c| {
                (
                    c.profile.clone(),
                    set.get(&c.profile).unwrap().profile.clone(),
                )
            })
            .collect();
        let faults = ferry_profiles::load_faults("f.toml", faults).expect("faults");
        Case {
            site,
            profiles,
            inputs,
            plan,
            faults,
        }
    }

    fn rehearse(&self) -> Rehearse<'_> {
        Rehearse {
            site: &self.site,
            profiles: &self.profiles,
            inputs: &self.inputs,
            plan: &self.plan,
            faults: &self.faults,
            policy: FailurePolicy::Stop,
        }
    }
}

/// Half the runs stage the package five times slower: the window spreads over the booked hour.
const SLOW_STAGE: &str =
    "[[fault]]\nkind = \"slow_step\"\nstep = \"*/stage\"\nfactor = 5\nprobability = 0.5\n";

#[test]
fn the_monte_carlo_rehearsal_gives_the_same_figures_on_any_number_of_threads_ferry_fit() {
    let case = Case::new(ORDERS_PAIR, &PlanOptions::default(), SLOW_STAGE);
    let r = case.rehearse();
    let one = monte_carlo_on(&r, 1..25, 1).expect("monte carlo");
    for workers in [2, 3, 7, 64] {
        assert_eq!(
            monte_carlo_on(&r, 1..25, workers).expect("monte carlo"),
            one,
            "{workers} threads"
        );
    }
    let windows = |w: usize| {
        each_seed(&r, &[9, 3, 5], w, |x| (x.seed, x.impact.window_s)).expect("rehearsals")
    };
    assert_eq!(windows(1), windows(3));
    assert_eq!(
        windows(2).iter().map(|x| x.0).collect::<Vec<_>>(),
        [9, 3, 5],
        "kept in the order of the seeds given"
    );
}

#[test]
fn the_odds_are_those_of_the_monte_carlo_rehearsal_with_seeds_from_one_ferry_fit() {
    let case = Case::new(ORDERS_PAIR, &PlanOptions::default(), SLOW_STAGE);
    let r = case.rehearse();
    let odds = compare::odds(&r, 40, 2).expect("odds").expect("40 runs");
    let (_, summary) = monte_carlo_on(&r, 1..41, 2).expect("monte carlo");
    assert_eq!(odds.runs, 40);
    assert_eq!(odds.fit_probability, summary.inside_window);
    assert_eq!(odds.window_p50_s as f64, summary.window_s.median);
    assert_eq!(odds.window_p90_s as f64, summary.window_s.p90);
    let fit = odds.fit_probability.expect("a booked window");
    assert!(
        fit > 0.0 && fit < 1.0,
        "the slow stage overruns in some runs: {fit}"
    );
    assert!(compare::odds(&r, 0, 2).expect("odds").is_none());
}

#[test]
fn spreads_are_learned_from_enough_observed_durations() {
    fn check(seconds: &[u64], expected: Option<[f64; 2]>) {
        let key = ("linux-ha".to_string(), "stage".to_string());
        let durations = BTreeMap::from([(key.clone(), seconds.to_vec())]);
        assert_eq!(
            ferry_exec::spreads(&durations).get(&key).copied(),
            expected,
            "{seconds:?}"
        );
    }
    // Too few to learn from: the profile's spread stays.
    check(&[50, 100, 300, 120], None);
    // Median 100; two below (down to 0.5), two above (up to 3): each end widened by (k+1)/k.
    check(&[50, 80, 100, 150, 300], Some([0.25, 4.0]));
    check(&[100, 100, 100, 100, 100], Some([1.0, 1.0]));
    // Instant steps have no spread to learn.
    check(&[0, 0, 0, 0, 0, 0], None);
    // Far below the median: the low end stops at 0.
    check(&[1, 2, 100, 100, 100, 100, 100], Some([0.0, 1.0]));
}

#[test]
fn a_learned_spread_is_where_the_twin_draws_the_step_lha_03() {
    let key = ("linux-ha".to_string(), "stage".to_string());
    let opts = PlanOptions {
        estimates: BTreeMap::from([(key.clone(), 600)]),
        spreads: BTreeMap::from([(key, [0.5, 3.0])]),
        ..PlanOptions::default()
    };
    let case = Case::new(ORDERS_PAIR, &opts, "");
    let staged: Vec<_> = case
        .plan
        .steps
        .iter()
        .filter(|s| s.action == "stage")
        .collect();
    assert!(!staged.is_empty());
    for s in &staged {
        assert_eq!(s.spread, Some([0.5, 3.0]), "{}", s.id);
    }
    let seeds: Vec<u64> = (1..=40).collect();
    let factors: Vec<f64> = each_seed(&case.rehearse(), &seeds, 2, |x| {
        x.world
            .trace
            .iter()
            .filter(|e| e.action == "stage")
            .map(|e| (e.end - e.start) as f64 / 600.0)
            .collect::<Vec<_>>()
    })
    .expect("rehearsals")
    .into_iter()
    .flatten()
    .collect();
    assert!(
        factors.iter().all(|f| (0.5..=3.0).contains(f)),
        "{factors:?}"
    );
    // The profile's spread is 0.9 to 1.25: the learned one reaches beyond it on both sides.
    assert!(factors.iter().any(|f| *f > 1.5), "{factors:?}");
    assert!(factors.iter().any(|f| *f < 0.8), "{factors:?}");
}

/// A plan's figures, by hand: P50 and P90 in hours, P(fit), calls failed, freeze in hours.
fn fig(p50_h: f64, p90_h: f64, fit: Option<f64>, calls: f64, freeze_h: f64) -> Figures {
    Figures {
        window_p50_s: (p50_h * 3600.0) as u64,
        window_p90_s: (p90_h * 3600.0) as u64,
        fit_probability: fit,
        costs: Costs {
            calls_failed: calls,
            freeze_s: (freeze_h * 3600.0) as u64,
            ..Costs::default()
        },
        unfinished: 0.0,
        clean: true,
    }
}

fn unclean(f: Figures) -> Figures {
    Figures { clean: false, ..f }
}

fn with_figure(mut f: Figures, name: &str, v: f64) -> Figures {
    f.costs.figures.insert(name.into(), v);
    f
}

#[test]
fn pareto_marks_the_plans_no_other_plan_beats_on_every_figure_ferry_fit() {
    fn check(plans: &[Figures], expected: &[bool]) {
        assert_eq!(compare::pareto(plans), expected, "{plans:#?}");
    }
    let fast = fig(12.0, 12.6, Some(0.35), 3600.0, 12.0);
    let cautious = fig(13.4, 14.0, Some(0.05), 580.0, 13.4);
    check(std::slice::from_ref(&fast), &[true]);
    // A trade-off: shorter but more failed calls; both stay.
    check(&[fast.clone(), cautious.clone()], &[true, true]);
    // As good on every figure and better on one: the other is beaten.
    let better = fig(12.0, 12.6, Some(0.35), 3000.0, 12.0);
    check(&[fast.clone(), better.clone()], &[false, true]);
    // The odds count: a higher P(fit) alone beats.
    let likelier = fig(12.0, 12.6, Some(0.5), 3600.0, 12.0);
    check(&[fast.clone(), likelier], &[false, true]);
    // Equal on every figure: neither beats the other.
    check(&[fast.clone(), fast.clone()], &[true, true]);
    // A figure of the product only one plan shows counts too.
    check(
        &[
            with_figure(better.clone(), "user settings lost", 17.0),
            fast.clone(),
        ],
        &[true, true],
    );
    // Runs that stop on a failed step count against a plan, as a figure of its own: it stays
    // marked alone, and an otherwise equal plan whose runs all complete beats it.
    let stops = Figures {
        unfinished: 0.014,
        ..fast.clone()
    };
    check(std::slice::from_ref(&stops), &[true]);
    check(&[stops.clone(), fast.clone()], &[false, true]);
    check(&[stops, cautious.clone()], &[true, true]);
    // A plan with a rehearsal that broke a rule is never marked, and beats no one.
    check(&[fast.clone(), unclean(better)], &[true, false]);
    check(&[unclean(fast), unclean(cautious)], &[false, false]);
}

#[test]
fn a_plan_is_recommended_by_the_site_objectives_then_the_shortest_window_ferry_fit() {
    fn check(objectives: Objectives, plans: &[Figures], expected: Option<usize>) {
        assert_eq!(
            compare::recommend(&objectives, plans),
            expected,
            "{objectives:?} {plans:#?}"
        );
    }
    let none = Objectives::default;
    let fast = fig(4.8, 5.1, Some(0.97), 3300.0, 15.5);
    let cautious = fig(6.4, 6.9, Some(0.92), 670.0, 17.2);
    let unstaged = fig(12.1, 12.6, Some(0.35), 3600.0, 12.0);
    let plans = [unstaged.clone(), cautious.clone(), fast.clone()];
    // No objectives stated: P(fit) at least 0.9, then the shortest P90.
    check(none(), &plans, Some(2));
    // At most 1,000 failed calls: the cautious plan, though longer.
    let calls = Objectives {
        max_failed_calls: Some(1000.0),
        ..none()
    };
    check(calls.clone(), &plans, Some(1));
    // A freeze of at most 13 hours: only the unstaged plan meets it, though it rarely fits;
    // none meets both, so the fewest missed, then the likeliest to fit.
    let freeze = Objectives {
        max_freeze_hours: Some(13.0),
        ..none()
    };
    check(freeze.clone(), &plans, Some(2));
    assert_eq!(compare::unmet(&freeze, &unstaged), ["min_fit (35% < 90%)"]);
    assert_eq!(
        compare::unmet(&freeze, &fast),
        ["max_freeze_hours (15h 30m > 13h 00m)"]
    );
    // The site asks for a lower fit: then the unstaged plan meets everything.
    let lenient = Objectives {
        min_fit: Some(0.3),
        max_freeze_hours: Some(13.0),
        ..none()
    };
    check(lenient, &plans, Some(0));
    // Nothing fits often enough: the likeliest to fit.
    check(
        none(),
        &[
            fig(12.1, 12.6, Some(0.35), 3600.0, 12.0),
            fig(13.4, 14.0, Some(0.05), 580.0, 13.4),
        ],
        Some(0),
    );
    // No window booked: no odds to judge, the shortest P90.
    check(
        none(),
        &[
            fig(2.0, 2.5, None, 10.0, 0.0),
            fig(1.9, 2.2, None, 900.0, 0.0),
        ],
        Some(1),
    );
    // Only plans no other beats are recommended, and only clean ones.
    check(none(), &[unclean(fast.clone()), cautious.clone()], Some(1));
    check(none(), &[unclean(fast), unclean(cautious)], None);
    check(calls, &[], None);
}
