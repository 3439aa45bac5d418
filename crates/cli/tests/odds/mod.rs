//! The odds a plan states and the comparison of plans (FERRY-FIT), through the binary: `ferry
//! plan` states the window's P50 and P90 and the probability of ending inside the booked window
//! as `ferry rehearse --runs` gives them; `check` warns below the site's `min_fit`; `--compare`
//! rehearses every strategy, staged and not, marks the plans no other beats and recommends one
//! by `[site.objectives]`; durations learned from past runs set the spread the twin draws in.

use super::*;

/// A CUCM publisher with three subscribers and an IM&P pair, 12.5 to 14, standard upgrade,
/// an 11-hour window. "You can switch the subscriber nodes to the upgraded partition either all
/// at once or one at a time, depending on your site requirements" (UCM-15): all at once is
/// shorter, one at a time keeps a subscriber registering the phones and fails fewer calls.
const BRANCH_UCM: &str = r#"[site]
name = "branch-collab"
window = { start = "2027-01-16T19:00:00-06:00", hours = 11 }
OBJECTIVES
[[cluster]]
name = "collab"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8", imp_subscriber = "14.0.1.13900-8" }
facts = { configured_devices = 3000, upgrade_source = "sftp" }

[[cluster.node]]
name = "pub"
role = "publisher"
version = "12.5.1.17900-64"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2027-01-16T07:00:00-06:00" }

[[cluster.node]]
name = "sub-a"
role = "subscriber"
version = "12.5.1.17900-64"
facts = { devices = 1000, replication_state = 2 }

[[cluster.node]]
name = "sub-b"
role = "subscriber"
version = "12.5.1.17900-64"
facts = { devices = 1000, replication_state = 2 }

[[cluster.node]]
name = "sub-c"
role = "subscriber"
version = "12.5.1.17900-64"
facts = { devices = 1000, replication_state = 2 }

[[cluster.node]]
name = "presence"
role = "imp_publisher"
version = "12.5.1.17900-7"
facts = { users = 900, replication_state = 2 }

[[cluster.node]]
name = "presence-2"
role = "imp_subscriber"
version = "12.5.1.17900-7"
facts = { users = 900, replication_state = 2 }
"#;

/// Two servers of a generic service behind the ferry agent, an 18-minute window (the plan's estimate): the package is
/// staged into the inactive slot while each serves (LHA-03), then they switch in turn.
const KV_PAIR: &str = r#"[site]
name = "kv-lab"
window = { start = "2027-02-01T21:00:00Z", hours = 0.3 }
OBJECTIVES
[[cluster]]
name = "kv"
profile = "linux-ha"
target = "3.0.0"

[[cluster.node]]
name = "kv-1"
role = "primary"
version = "2.9.1"
facts = { package_mb = 400 }

[[cluster.node]]
name = "kv-2"
role = "backup"
version = "2.9.1"
facts = { package_mb = 400 }
"#;

/// Writes `site` with `objectives` (the lines of `[site.objectives]`, or nothing) into `dir`.
fn site_file(dir: &Scratch, name: &str, site: &str, objectives: &str) -> String {
    let text = site.replace(
        "OBJECTIVES\n",
        &if objectives.is_empty() {
            String::new()
        } else {
            format!("\n[site.objectives]\n{objectives}\n")
        },
    );
    let path = dir.path(name);
    std::fs::write(&path, text).expect("site");
    path
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let o = ferry(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    json(&o)
}

#[test]
fn the_odds_plan_states_are_those_rehearse_gives_with_the_same_seeds_ferry_fit() {
    let dir = Scratch::new("odds-stated");
    let branch = site_file(&dir, "branch.toml", BRANCH_UCM, "");
    for site in [branch.as_str(), "example:ucm-standard"] {
        let plan = ok_json(&["plan", site, "--runs", "40", "--format", "json"]);
        let rehearsed = ok_json(&["rehearse", site, "--runs", "40", "--format", "json"]);
        let summary = &rehearsed["summary"];
        assert_eq!(plan["rehearsed_runs"], 40, "{site}");
        assert_eq!(plan["fit_probability"], summary["inside_window"], "{site}");
        assert_eq!(
            plan["window_p50_s"].as_f64(),
            summary["window_s"]["median"].as_f64(),
            "{site}"
        );
        assert_eq!(
            plan["window_p90_s"].as_f64(),
            summary["window_s"]["p90"].as_f64(),
            "{site}"
        );
        // The estimate is biased low: the rehearsals' median ends later.
        assert!(
            plan["window_p50_s"].as_u64() > plan["makespan_s"].as_u64(),
            "{site}: {} against {}",
            plan["window_p50_s"],
            plan["makespan_s"]
        );
        let text = stdout(&ferry(&["plan", site, "--runs", "40"]));
        let p = plan["fit_probability"].as_f64().expect("a booked window");
        assert!(
            text.contains(&format!(
                "the twin ends inside it in {:.0}% of 40 rehearsals",
                p * 100.0
            )),
            "{site}: {text}"
        );
        assert!(!text.contains("fits"), "{site}: {text}");
    }
    // `--runs 0`: no odds, and the plan says so.
    let text = stdout(&ferry(&["plan", &branch, "--runs", "0"]));
    assert!(
        text.contains("the odds were not rehearsed (`--runs 0`)"),
        "{text}"
    );
    let j = ok_json(&["plan", &branch, "--runs", "0", "--format", "json"]);
    for key in [
        "window_p50_s",
        "window_p90_s",
        "fit_probability",
        "rehearsed_runs",
    ] {
        assert!(j.get(key).is_none(), "{key} without rehearsals: {}", j[key]);
    }
    assert!(j["rules_lower_bound_s"].as_u64().is_some());
}

#[test]
fn check_warns_when_the_odds_are_below_the_site_min_fit_ferry_fit() {
    let dir = Scratch::new("odds-check");
    // (objectives, runs, warned)
    let cases: &[(&str, &str, bool)] = &[
        // An 18-minute window the pair ends in two times out of three: below the default 0.9.
        ("", "60", true),
        ("min_fit = 0.99", "60", true),
        ("min_fit = 0.0", "60", false),
        // Not rehearsed: nothing to judge.
        ("min_fit = 0.99", "0", false),
    ];
    let mut odds = None;
    for (objectives, runs, warned) in cases {
        let site = site_file(&dir, "kv.toml", KV_PAIR, objectives);
        let o = ferry(&["check", &site, "--runs", runs, "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "a warning: {}", stderr(&o));
        let j = json(&o);
        let fit: Vec<&serde_json::Value> = j["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["rule"] == "FERRY-FIT")
            .collect();
        assert_eq!(fit.len(), usize::from(*warned), "{objectives} {runs}: {j}");
        if let Some(f) = fit.first() {
            assert_eq!(f["severity"], "warning");
            let m = f["message"].as_str().unwrap();
            assert!(m.contains("of 60 rehearsals against the twin"), "{m}");
            assert!(f["remedy"].as_str().unwrap().contains("--compare"));
            odds = Some(m.to_string());
        }
    }
    let text = stdout(&ferry(&[
        "check",
        &site_file(&dir, "kv.toml", KV_PAIR, ""),
        "--runs",
        "60",
    ]));
    assert!(text.contains("FERRY-FIT"), "{text}");
    assert!(text.contains("below 90% (ferry's default"), "{text}");
    assert!(
        odds.is_some_and(|m| m.contains("below 99% (the site's `[site.objectives] min_fit`)")),
        "the last case warned with the site's own threshold"
    );
}

#[test]
fn compare_keeps_its_json_contract_and_lists_every_strategy_staged_or_not_ucm_02() {
    let dir = Scratch::new("odds-compare");
    let branch = site_file(&dir, "branch.toml", BRANCH_UCM, "");
    // The strategies cisco-ucm offers: fastest and one-at-a-time (every profile's), then its
    // own; `parallel`, renamed to fastest, is no plan of its own.
    let offered = ["fastest", "one-at-a-time", "documented", "balanced"];
    let staged_site = dir.path("staged.toml");
    std::fs::write(
        &staged_site,
        std::fs::read_to_string(&branch).unwrap().replace(
            "hours = 11 }\n",
            "hours = 11 }\nstage = { start = \"2027-01-16T08:00:00-06:00\", hours = 10 }\n",
        ),
    )
    .unwrap();
    // (site, staged plans too)
    for (site, staging) in [(branch.as_str(), false), (staged_site.as_str(), true)] {
        let j = ok_json(&[
            "plan",
            site,
            "--compare",
            "--runs",
            "20",
            "--format",
            "json",
        ]);
        for key in ["schema_version", "site", "plans", "rules_lower_bound_s"] {
            assert!(j.get(key).is_some(), "{site}: lacks {key}");
        }
        let plans = j["plans"].as_array().expect("plans");
        let rules = j["rules_lower_bound_s"].as_u64().unwrap();
        for p in plans {
            for key in [
                "strategy",
                "staged",
                "window_s",
                "window_p50_s",
                "window_p90_s",
                "fit_probability",
                "impact",
                "pareto",
                "recommended",
            ] {
                assert!(p.get(key).is_some(), "{site}: a plan lacks {key}: {p}");
            }
            for key in [
                "calls_failed",
                "device_minutes_unregistered",
                "mixed_version_minutes",
                "freeze_s",
                "config_at_risk_s",
                "minutes_without_redundancy",
            ] {
                assert!(
                    p["impact"][key].is_number(),
                    "{site}: impact lacks {key}: {p}"
                );
            }
            assert!(rules <= p["lower_bound_s"].as_u64().unwrap(), "{site}: {p}");
            assert!(p["impact"]["freeze_s"].as_u64().unwrap() > 0, "UCM-04: {p}");
        }
        let mut listed: Vec<(String, bool)> = plans
            .iter()
            .map(|p| {
                (
                    p["strategy"].as_str().unwrap().to_string(),
                    p["staged"] == true,
                )
            })
            .collect();
        let mut want: Vec<(String, bool)> = offered
            .iter()
            .map(|s| s.to_string())
            .flat_map(|s| {
                let staged = staging.then(|| (s.clone(), true));
                std::iter::once((s, false)).chain(staged)
            })
            .collect();
        listed.sort();
        want.sort();
        assert_eq!(listed, want, "{site}");
        let recommended: Vec<_> = plans.iter().filter(|p| p["recommended"] == true).collect();
        assert_eq!(recommended.len(), 1, "{site}");
        assert_eq!(recommended[0]["pareto"], true, "{site}");
        // Staging takes the installs out of the window (UCM-02): its plans are shorter.
        if staging {
            let window = |staged: bool| {
                plans
                    .iter()
                    .filter(|p| p["staged"] == staged)
                    .map(|p| p["window_p50_s"].as_u64().unwrap())
                    .min()
                    .unwrap()
            };
            assert!(window(true) < window(false), "{site}");
        }
    }
}

#[test]
fn compare_recommends_by_the_site_objectives_ucm_15() {
    let dir = Scratch::new("odds-objectives");
    let recommended = |objectives: &str| -> (String, serde_json::Value) {
        let site = site_file(&dir, "branch.toml", BRANCH_UCM, objectives);
        let j = ok_json(&[
            "plan",
            &site,
            "--compare",
            "--runs",
            "20",
            "--format",
            "json",
        ]);
        let p = j["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["recommended"] == true)
            .cloned()
            .expect("a recommendation");
        (p["strategy"].as_str().unwrap().to_string(), j)
    };
    // Nothing stated: the shortest window that fits often enough; all subscribers at once
    // fail more calls.
    let (fast, j) = recommended("min_fit = 0.0");
    assert_ne!(fast, "one-at-a-time", "{j}");
    // At most 500 failed calls: the subscribers switch in batches that keep every CM group
    // served (one at a time does too, but the batches beat it on every figure).
    let (cautious, j) = recommended("min_fit = 0.0\nmax_failed_calls = 500");
    assert_eq!(cautious, "balanced", "{j}");
    let text = stdout(&ferry(&[
        "plan",
        &site_file(
            &dir,
            "branch.toml",
            BRANCH_UCM,
            "min_fit = 0.0\nmax_failed_calls = 500",
        ),
        "--compare",
        "--runs",
        "20",
    ]));
    assert!(
        text.contains("objectives: min_fit = 0, max_failed_calls = 500 ([site.objectives])"),
        "{text}"
    );
    assert!(
        text.contains("recommended: balanced: it meets every objective"),
        "{text}"
    );
    // `--runs 0` cannot compare; a format other than text or JSON neither.
    let site = site_file(&dir, "branch.toml", BRANCH_UCM, "");
    let o = ferry(&["plan", &site, "--compare", "--runs", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = ferry(&["plan", &site, "--compare", "--format", "mop"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn the_compare_table_of_a_few_examples() {
    for name in ["linux-ha-pair", "genesys-framework", "ucm-staged"] {
        let site = format!("example:{name}");
        let a = ferry(&["plan", &site, "--compare"]);
        assert_eq!(a.status.code(), Some(0), "{name}: {}", stderr(&a));
        insta::assert_snapshot!(format!("{name}-compare"), stdout(&a));
        if name == "linux-ha-pair" {
            let b = ferry(&["plan", &site, "--compare"]);
            assert_eq!(a.stdout, b.stdout, "{name}: two runs differ");
        }
    }
}

/// The README's comparison of `linux-ha-pair` is the command's output.
#[test]
fn the_readme_compare_table_is_the_command_s_output() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let name = "linux-ha-pair";
    let out = stdout(&ferry(&["plan", &format!("example:{name}"), "--compare"]));
    let marker = format!("$ ferry plan example:{name} --compare\n");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md lacks `{}`", marker.trim()));
    let table = &readme[at + marker.len()..];
    let table = &table[..table.find("```").expect("the end of the block")];
    assert_eq!(table.trim_end(), out.trim_end());
}

#[test]
fn the_demo_shows_the_comparison() {
    let o = ferry(&["demo", "linux-ha-pair"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("Pareto (no plan beats it on every figure)"),
        "{text}"
    );
    assert!(text.contains("recommended:"), "{text}");
}

/// Durations learned from past runs (`--estimates-from`) set the spread the twin draws in
/// where a step was seen often enough: a staged package that was often slow (LHA-03) widens the
/// rehearsed window.
#[test]
fn learned_durations_set_the_spread_of_the_odds_lha_03() {
    let dir = Scratch::new("odds-learned");
    let site = site_file(
        &dir,
        "kv.toml",
        &KV_PAIR.replace("hours = 0.3", "hours = 2"),
        "",
    );
    let plan = dir.path("plan.json");
    let o = ferry(&[
        "plan", &site, "--runs", "0", "--format", "json", "-o", &plan,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let faults = dir.path("slow.toml");
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"slow_step\"\nstep = \"*/stage\"\nfactor = 4\n",
    )
    .unwrap();
    let state = dir.path("state");
    for seed in 1..=6 {
        let seed = seed.to_string();
        let mut args = vec![
            "apply",
            &plan,
            "--site",
            &site,
            "--state",
            &state,
            "--driver",
            "twin",
            "--approve",
            "--seed",
            &seed,
        ];
        // Every other run stages the package four times slower.
        if seed.parse::<u32>().unwrap() % 2 == 0 {
            args.extend(["--faults", faults.as_str()]);
        }
        let o = ferry(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let learned = ok_json(&[
        "plan",
        &site,
        "--estimates-from",
        &state,
        "--runs",
        "60",
        "--format",
        "json",
    ]);
    let profile = ok_json(&["plan", &site, "--runs", "60", "--format", "json"]);
    let stage: Vec<&serde_json::Value> = learned["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "stage")
        .collect();
    assert!(!stage.is_empty());
    for s in &stage {
        assert_eq!(s["estimate"], "observed", "{s}");
        let high = s["spread"][1]
            .as_f64()
            .unwrap_or_else(|| panic!("a spread: {s}"));
        assert!(high > 1.25, "the profile's spread ends at 1.25: {s}");
    }
    assert!(
        learned["window_p90_s"].as_u64() > profile["window_p90_s"].as_u64(),
        "learned {} against the profile's {}",
        learned["window_p90_s"],
        profile["window_p90_s"]
    );
}

/// The plan's figures of `example:ucm-standard` made with `--stage` and `--strategy S`.
fn staged_ucm_standard(strategy: &str) -> serde_json::Value {
    ok_json(&[
        "plan",
        "example:ucm-standard",
        "--stage",
        "--strategy",
        strategy,
        "--runs",
        "0",
        "--format",
        "json",
    ])
}

/// ucm-standard with its installs staged (UCM-02): the window holds the switches, the
/// replication waits and the post-upgrade tasks, at most 4h 50m, and the plan states the
/// configuration freeze that staging lengthens (UCM-04). Balanced (UCM-15, UCM-11): the CM
/// groups pair the subscribers, so two batches are the fewest; the second adds to the fastest
/// plan exactly its own switch and the wait for the first batch to serve again, and fails at
/// most 1.2 times the calls of one at a time.
#[test]
fn staged_ucm_standard_window_freeze_and_balanced_against_the_others_ucm_02_ucm_04_ucm_15() {
    let fastest = staged_ucm_standard("fastest");
    let window = fastest["makespan_s"].as_u64().unwrap();
    assert!(window <= 4 * 3600 + 50 * 60, "staged window {window} s");
    let freeze = fastest["staging_costs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "UCM-04")
        .expect("the freeze's cost");
    assert!(
        freeze["duration_s"].as_u64().unwrap() > window,
        "the freeze lasts from the first install to the end: {freeze}"
    );
    let text = stdout(&ferry(&[
        "plan",
        "example:ucm-standard",
        "--stage",
        "--runs",
        "0",
    ]));
    assert!(
        text.contains("ucm-hq [UCM-04] (configuration_freeze: 9h 08m)"),
        "{text}"
    );

    let balanced = staged_ucm_standard("balanced");
    let steps = balanced["steps"].as_array().unwrap();
    let subscriber_steps = |action: &str| -> Vec<(u64, u64)> {
        steps
            .iter()
            .filter(|s| {
                s["phase"] == "window"
                    && s["action"] == action
                    && s["node"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("cucm-sub"))
            })
            .map(|s| {
                (
                    s["start_s"].as_u64().unwrap(),
                    s["duration_s"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let switches = subscriber_steps("switch-version");
    let mut batches: Vec<u64> = switches.iter().map(|s| s.0).collect();
    batches.sort();
    batches.dedup();
    assert_eq!(batches.len(), 2, "two batches: {switches:?}");
    let longest = |v: &[(u64, u64)], at: &dyn Fn(u64) -> bool| {
        v.iter().filter(|s| at(s.0)).map(|s| s.1).max().unwrap()
    };
    let second_switch = longest(&switches, &|t| t == batches[1]);
    let first_back = longest(&subscriber_steps("subscriber-serving"), &|t| t < batches[1]);
    assert_eq!(
        balanced["makespan_s"].as_u64().unwrap(),
        window + first_back + second_switch,
        "balanced = fastest + the first batch's return + the second batch's switch"
    );

    let j = ok_json(&[
        "plan",
        "example:ucm-standard",
        "--stage",
        "--compare",
        "--runs",
        "100",
        "--format",
        "json",
    ]);
    let staged = |strategy: &str| -> serde_json::Value {
        j["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["strategy"] == strategy && p["staged"] == true)
            .cloned()
            .unwrap_or_else(|| panic!("{strategy}, staged: {j}"))
    };
    let calls = |p: &serde_json::Value| p["impact"]["calls_failed"].as_f64().unwrap();
    let (b, one) = (staged("balanced"), staged("one-at-a-time"));
    assert!(
        calls(&b) <= 1.2 * calls(&one),
        "balanced {} against one at a time {}",
        calls(&b),
        calls(&one)
    );
    for p in j["plans"].as_array().unwrap() {
        assert_eq!(p["clean_runs"], 100, "every rehearsal clean: {p}");
    }
}
