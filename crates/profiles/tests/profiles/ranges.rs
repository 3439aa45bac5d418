//! Every number, name and date-time of a site, profile or faults file is checked at load
//! against its documented range, with an error at its line and key; odd sites (NaN or
//! negative facts, a cluster without nodes) are refused. (UCM-17 and UCM-18 are the checks
//! whose `numbers` / `same_prefix` the huge values below break.)

use super::{builtin, check_site_error, PAIR};
use ferry_profiles::{load_faults, load_profile, load_site};

/// `text` with the first `from` replaced by `to`, and the 1-based line it is on.
fn edit(text: &str, from: &str, to: &str) -> (String, usize) {
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("`{from}` not in the text"));
    let line = text[..at].matches('\n').count() + 1;
    (text.replacen(from, to, 1), line)
}

/// Loads a built-in profile edited as `from` -> `to` and expects an error at that line whose
/// key ends with `key` and whose message contains `message`.
fn check_profile(name: &str, from: &str, to: &str, key: &str, message: &str) {
    let text = builtin().get(name).expect("built-in").text.clone();
    let (text, line) = edit(&text, from, to);
    let err = load_profile("my.toml", &text)
        .err()
        .unwrap_or_else(|| panic!("{from} -> {to}: the profile must be rejected"));
    assert_eq!(err.file, "my.toml");
    let e = err
        .errors
        .iter()
        .find(|e| e.message.contains(message))
        .unwrap_or_else(|| panic!("{to}: no error mentioning {message:?} in {err:?}"));
    assert_eq!(
        (e.line, e.key.ends_with(key)),
        (line, true),
        "{e}: {}",
        e.key
    );
}

#[test]
fn huge_numbers_in_a_profile_are_refused_at_load_ucm_17_ucm_18() {
    for (from, to, key, message) in [
        (
            "numbers = 2, with_roles",
            "numbers = 4294967296, with_roles",
            "versions_match.numbers",
            "`numbers` must be a whole number from 1 to 16",
        ),
        (
            "same_prefix = 3",
            "same_prefix = 9223372036854775807",
            "version.same_prefix",
            "`same_prefix` must be a whole number from 1 to 16",
        ),
        (
            "release_numbers = 2",
            "release_numbers = 0",
            "versions.release_numbers",
            "from 1 to 16",
        ),
    ] {
        check_profile("cisco-ucm", from, to, key, message);
    }
    for (from, to, key, message) in [
        (
            "minutes = 1\n",
            "minutes = 1e300\n",
            "minutes",
            "from 0 to 43200",
        ),
        ("minutes = 1\n", "minutes = -1\n", "minutes", "found -1"),
        ("minutes = 1\n", "minutes = nan\n", "minutes", "found NaN"),
        (
            "max = 1\n",
            "max = 100000\n",
            "role[0].max",
            "from 0 to 10000",
        ),
    ] {
        check_profile("linux-ha", from, to, key, message);
    }
    for (from, to, key, message) in [
        (
            "per = 1000, minutes = 4",
            "per = 0, minutes = 4",
            "per_fact.per",
            "not 0",
        ),
        (
            "per = 1000, minutes = 4",
            "per = 1000, minutes = inf",
            "per_fact.minutes",
            "found inf",
        ),
    ] {
        check_profile("cisco-callmanager4", from, to, key, message);
    }
}

#[test]
fn odd_numbers_in_a_site_are_refused_with_their_line_and_key() {
    for (from, to, line, key, message) in [
        // A typed number fact, NaN.
        (
            "package_mb = 40",
            "package_mb = nan",
            14,
            "facts.package_mb",
            "found NaN",
        ),
        // Negative and infinite facts, typed or not.
        (
            "package_mb = 40",
            "package_mb = -40",
            14,
            "facts.package_mb",
            "found -40",
        ),
        (
            "package_mb = 40",
            "free_mb = inf",
            14,
            "facts.free_mb",
            "found inf",
        ),
        (
            "package_mb = 40",
            "anything = -1",
            14,
            "facts.anything",
            "from 0 to 1000000000000",
        ),
        (
            "hours = 2",
            "hours = 1e300",
            3,
            "site.window.hours",
            "between 0 and 336",
        ),
    ] {
        let (text, _) = edit(PAIR, from, to);
        check_site_error(&text, line, key, message);
    }
}

#[test]
fn a_cluster_without_nodes_is_refused() {
    let text = PAIR[..PAIR.find("[[cluster.node]]").unwrap()].to_string();
    check_site_error(&text, 6, "cluster[0].name", "has no nodes");
}

#[test]
fn names_longer_than_the_limit_are_refused() {
    let long = "n".repeat(70_000);
    let (text, _) = edit(PAIR, "name = \"kv-a\"", &format!("name = \"{long}\""));
    check_site_error(
        &text,
        11,
        "cluster[0].node[0].name",
        "a name has at most 128",
    );
    let (text, _) = edit(PAIR, "name = \"lab\"", &format!("name = \"{long}\""));
    check_site_error(&text, 2, "site.name", "a name has at most 128");
}

/// `(window start as written, Ok(offset seconds, epoch) or Err(message fragment))`.
fn check_window(start: &str, expected: Result<(i32, i64), &str>) {
    let (text, _) = edit(
        PAIR,
        "\"2026-12-05T22:00:00-05:00\"",
        &format!("\"{start}\""),
    );
    match expected {
        Ok((offset_s, epoch)) => {
            let site = load_site("site.toml", &text, &builtin())
                .unwrap_or_else(|e| panic!("{start}: {e:?}"));
            let w = site.window.expect("window");
            assert_eq!((w.offset_s, w.start_epoch_s), (offset_s, epoch), "{start}");
        }
        Err(message) => check_site_error(&text, 3, "site.window.start", message),
    }
}

#[test]
fn window_starts_with_a_zone_annotation_take_the_zone_and_refuse_an_offset_it_does_not_have() {
    // 2026-12-05T22:00:00-05:00 is 1_796_526_000.
    check_window("2026-12-05T22:00:00-05:00", Ok((-18_000, 1_796_526_000)));
    check_window(
        "2026-12-05T22:00:00-05:00[America/New_York]",
        Ok((-18_000, 1_796_526_000)),
    );
    // An offset the named zone does not have at that moment is a mistake: refused.
    check_window(
        "2026-12-05T22:00:00-05:00[Europe/Paris]",
        Err("in Europe/Paris, not the one written"),
    );
    check_window(
        "2026-12-06T03:00:00Z[Europe/London]",
        Ok((0, 1_796_526_000)),
    );
    check_window(
        "2026-12-05T22:00:00-05:00[u-ca=iso8601]",
        Ok((-18_000, 1_796_526_000)),
    );
    // A zone without an offset: the zone (from the time-zone database built into ferry) tells it.
    check_window(
        "2026-12-05T22:00:00[America/New_York]",
        Ok((-18_000, 1_796_526_000)),
    );
    check_window("2026-12-05T22:00:00", Err("no UTC offset"));
}

#[test]
fn numbers_of_a_faults_file_have_ranges() {
    for (text, line, key, message) in [
        (
            "[[fault]]\nkind = \"slow_step\"\nstep = \"*/switch\"\nfactor = 1e308\n",
            4,
            "fault[0].factor",
            "from 0 to 1000",
        ),
        (
            "[[fault]]\nkind = \"crash\"\nnode = \"a\"\nat_min = 1e300\n",
            4,
            "fault[0].at_min",
            "from 0 to 43200",
        ),
        (
            "[[fault]]\nkind = \"crash\"\nnode = \"a\"\nat_min = 1\nrecover_min = inf\n",
            5,
            "fault[0].recover_min",
            "found inf",
        ),
    ] {
        let err = load_faults("faults.toml", text).expect_err(text);
        let e = err
            .errors
            .iter()
            .find(|e| e.message.contains(message))
            .unwrap_or_else(|| panic!("{text}: {err:?}"));
        assert_eq!((e.line, e.key.as_str()), (line, key), "{e}");
        assert!(e.to_string().starts_with("faults.toml:"), "{e}");
    }
}

/// The site schema (`site_schema`, what editors check a site file against) states the range
/// of every number of a site file that the reader checks: the same bounds as `ranges::SITE`,
/// and the default range on the objectives the table does not name.
#[test]
fn the_site_schema_states_the_ranges_of_the_site_file() {
    let schema = ferry_profiles::site::site_schema();
    // The definition of each table that holds a ranged key.
    let definition = |parent: &str| match parent {
        "window" => "Period",
        "objectives" => "Objectives",
        other => panic!("no schema definition for the table `{other}`"),
    };
    let check = |parent: &str, key: &str, min: f64, above_min: bool, max: f64| {
        let p = &schema["definitions"][definition(parent)]["properties"][key];
        let lower = if above_min {
            "exclusiveMinimum"
        } else {
            "minimum"
        };
        assert_eq!(
            (p[lower].as_f64(), p["maximum"].as_f64()),
            (Some(min), Some(max)),
            "{parent}.{key}: {p}"
        );
    };
    for r in ferry_profiles::ranges::SITE {
        check(r.parent, r.key, r.min, r.above_min, r.max);
    }
    let objectives = schema["definitions"]["Objectives"]["properties"]
        .as_object()
        .expect("objectives");
    for key in objectives.keys() {
        if !ferry_profiles::ranges::SITE.iter().any(|r| r.key == key) {
            check(
                "objectives",
                key,
                0.0,
                false,
                ferry_profiles::ranges::MAX_NUMBER,
            );
        }
    }
}
