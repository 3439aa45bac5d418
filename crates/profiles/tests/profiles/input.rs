//! Input that catches mistakes (issue 14, point 6): unknown fact names, vendor marketing
//! notation, IM&P targets and every structural error of a site in one run. Each site here is
//! written for its case.

use super::builtin;
use ferry_profiles::{load_site, load_site_with_warnings, ProfileSet};

/// A CUCM cluster with an IM&P publisher: `{cluster}` and `{imp}` are filled per case.
const UCM: &str = r#"[site]
name = "branch"

[[cluster]]
name = "cm"
profile = "cisco-ucm"
{cluster}

[[cluster.node]]
name = "pub"
role = "publisher"
version = "12.5.1.17900-64"
facts = { devices = 0, replication_state = 2 }

[[cluster.node]]
name = "sub"
role = "subscriber"
version = "12.5.1.17900-64"
facts = { devcies = 1200, replication_state = 2 }

[[cluster.node]]
name = "cup"
role = "imp_publisher"
version = "12.5.1.17900-7"
{imp}
"#;

fn site(cluster: &str, imp: &str) -> String {
    UCM.replace("{cluster}", cluster).replace("{imp}", imp)
}

/// Loads `text` and expects, among its errors, one at `line` for `key` whose message contains
/// every fragment of `message`.
fn check_error(profiles: &ProfileSet, text: &str, line: usize, key: &str, message: &[&str]) {
    let err = load_site("site.toml", text, profiles).expect_err("refused");
    let all: Vec<String> = err
        .errors
        .iter()
        .map(|e| {
            format!(
                "{}:{} [{}] {} / {:?}",
                e.file, e.line, e.key, e.message, e.help
            )
        })
        .collect();
    assert!(
        err.errors.iter().any(|e| {
            e.line == line
                && e.key == key
                && message.iter().all(|m| {
                    e.message.contains(m) || e.help.as_deref().is_some_and(|h| h.contains(m))
                })
        }),
        "no error at line {line} for `{key}` with {message:?} in {all:#?}"
    );
}

/// A fact no profile declares is a warning at its line, with the declared name it most
/// resembles (UCM-26 reads `devices`; `devcies` would go unread).
#[test]
fn an_unknown_fact_is_a_warning_with_did_you_mean_ucm_26() {
    let text = site(
        r#"target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8" }"#,
        "",
    );
    let (site, warnings) =
        load_site_with_warnings("site.toml", &text, &builtin()).expect("a warning is no error");
    assert_eq!(site.clusters[0].nodes.len(), 3);
    let w: Vec<(usize, &str, &str)> = warnings
        .errors
        .iter()
        .map(|e| (e.line, e.key.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].0, 20);
    assert_eq!(w[0].1, "cluster[0].node[1].facts.devcies");
    assert!(
        w[0].2.contains("unknown fact `devcies`") && w[0].2.contains("did you mean `devices`?"),
        "{}",
        w[0].2
    );
}

/// Every built-in example names only facts its profiles declare: no warning.
#[test]
fn the_examples_name_only_declared_facts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let (_, warnings) = load_site_with_warnings(&path.display().to_string(), &text, &builtin())
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        assert!(
            warnings.errors.is_empty(),
            "{}: {:#?}",
            path.display(),
            warnings
                .errors
                .iter()
                .map(|e| &e.message)
                .collect::<Vec<_>>()
        );
        seen += 1;
    }
    assert!(seen > 10);
}

/// `14SU3` and `12.5(1)SU6` are release names, not builds: refused with the build-number
/// form (the versions UCM-17 compares are build numbers).
#[test]
fn marketing_notation_is_refused_with_the_build_form_ucm_17() {
    let text = site(
        r#"target = "14SU3"
targets = { imp_publisher = "14.0.1.13900-8" }"#,
        "",
    )
    .replacen(
        "version = \"12.5.1.17900-64\"",
        "version = \"12.5(1)SU6\"",
        1,
    );
    check_error(
        &builtin(),
        &text,
        7,
        "cluster[0].target",
        &[
            "`14SU3` is the vendor's marketing name",
            "build number such as 14.0.1.13900-155",
        ],
    );
    check_error(
        &builtin(),
        &text,
        13,
        "cluster[0].node[0].version",
        &["`12.5(1)SU6` is the vendor's marketing name"],
    );
}

/// A profile that maps a marketing name to its build number lets the site use the name.
#[test]
fn marketing_notation_a_profile_maps_is_read_as_its_build_ucm_17() {
    let mut set = builtin();
    let ucm = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "cisco-ucm")
        .expect("cisco-ucm")
        .1;
    let ours = ucm.replacen(
        "build_form = \"14.0.1.13900-155\"",
        "build_form = \"14.0.1.13900-155\"\naliases = { \"14SU3\" = \"14.0.1.13900-155\", \"14SU3-IMP\" = \"14.0.1.13900-8\" }",
        1,
    );
    assert_ne!(ours, ucm);
    set.add("ours/cisco-ucm.toml", &ours).expect("loads");
    let text = site(
        r#"target = "14su3"
targets = { imp_publisher = "14SU3-IMP" }"#,
        "",
    );
    let s = load_site("site.toml", &text, &set).expect("mapped");
    let c = &s.clusters[0];
    assert_eq!(c.target.to_string(), "14.0.1.13900-155");
    assert_eq!(c.nodes[2].target.to_string(), "14.0.1.13900-8");
    // A mapping to another marketing name is refused where the profile says it.
    let bad = ucm.replacen(
        "build_form = \"14.0.1.13900-155\"",
        "build_form = \"14.0.1.13900-155\"\naliases = { \"14SU3\" = \"14SU3\" }",
        1,
    );
    let err = ferry_profiles::load_profile("bad.toml", &bad).expect_err("refused");
    assert!(
        err.errors.iter().any(
            |e| e.key == "versions.aliases.14SU3" && e.message.contains("marketing name again")
        ),
        "{err:?}"
    );
}

/// An IM&P node with no target of its own is refused: its build is never the CUCM one
/// (10.0.1.10000-1 goes with 10.0.1.30000-2, UCM-17).
#[test]
fn a_missing_imp_target_is_an_error_ucm_17() {
    let text = site(r#"target = "14.0.1.13900-155""#, "");
    check_error(
        &builtin(),
        &text,
        23,
        "cluster[0].node[2].role",
        &[
            "node `cup` (imp_publisher) has no target",
            "cluster's target 14.0.1.13900-155 is not theirs",
            "targets = { imp_publisher = \"BUILD\" }",
        ],
    );
    // Its own target on the node, or the role's on the cluster, is enough.
    let own = site(
        r#"target = "14.0.1.13900-155""#,
        r#"target = "14.0.1.13900-8""#,
    );
    let s = load_site("site.toml", &own, &builtin()).expect("node target");
    assert_eq!(s.clusters[0].nodes[2].target.to_string(), "14.0.1.13900-8");
}

/// Every structural and type error of a site comes out of one load, each at its line: an
/// unknown key (with the key meant), a missing key, a wrong type, in three tables.
#[test]
fn every_structural_error_is_reported_in_one_run() {
    let text = r#"[site]
name = "two-mistakes"
window = { start = "2026-12-05T20:00:00-05:00", hours = "twelve" }

[[cluster]]
name = "kv"
profile = "linux-ha"
target = "2.1.0"
stratgy = "fastest"

[[cluster.node]]
name = "kv-a"
role = "primary"

[[cluster.node]]
name = "kv-b"
role = "backup"
version = 2
"#;
    let err = load_site("site.toml", text, &builtin()).expect_err("refused");
    let got: Vec<(usize, &str, &str)> = err
        .errors
        .iter()
        .map(|e| (e.line, e.key.as_str(), e.message.as_str()))
        .collect();
    let want: &[(usize, &str, &str)] = &[
        (
            3,
            "site.window.hours",
            "`hours` must be a number, found string",
        ),
        (9, "cluster[0].stratgy", "unknown key `stratgy`"),
        (11, "cluster[0].node[0]", "`version` is missing"),
        (
            18,
            "cluster[0].node[1].version",
            "`version` must be a string, found integer",
        ),
    ];
    for (line, key, message) in want {
        assert!(
            got.iter()
                .any(|(l, k, m)| l.abs_diff(*line) <= 1 && k == key && m.contains(message)),
            "missing ({line}, {key}, {message}) in {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let stratgy = err.errors.iter().find(|e| e.key == "cluster[0].stratgy");
    assert!(stratgy
        .and_then(|e| e.help.as_deref())
        .is_some_and(|h| h.contains("did you mean `strategy`?")));
}

/// With only unknown keys wrong, the site's meaning is checked in the same run too.
#[test]
fn unknown_keys_and_meaning_errors_come_together() {
    let text = r#"[site]
name = "both"

[[cluster]]
name = "kv"
profile = "linux-ha"
target = "2.1.0"
colour = "blue"

[[cluster.node]]
name = "kv-a"
role = "primery"
version = "2.0.3"
"#;
    check_error(
        &builtin(),
        text,
        8,
        "cluster[0].colour",
        &["unknown key `colour`"],
    );
    check_error(
        &builtin(),
        text,
        12,
        "cluster[0].node[0].role",
        &["unknown role `primery`"],
    );
}

/// A site in a named time zone: `{window}` filled per case.
const ZONED: &str = r#"[site]
name = "zoned"
{window}

[[cluster]]
name = "kv"
profile = "linux-ha"
target = "2.1.0"

[[cluster.node]]
name = "kv-a"
role = "primary"
version = "2.0.3"
"#;

/// Issue 14, point 4: a site may name its IANA zone; the offsets come from it, and what the zone
/// cannot mean is refused at its line and key (an unknown zone, an offset the zone does not
/// have then, a local time a daylight-saving change skips).
#[test]
fn a_window_in_a_named_zone_takes_its_offsets_and_refuses_what_it_cannot_mean() {
    let set = builtin();
    let with = |w: &str| ZONED.replace("{window}", w);
    // Good: a local time with the zone key, and an offset with an annotation.
    for (w, offset) in [
        (
            r#"window = { start = "2026-07-04T22:00", zone = "America/New_York", hours = 4 }"#,
            -4 * 3600,
        ),
        (
            r#"window = { start = "2026-12-05T22:00:00-05:00[America/New_York]", hours = 4 }"#,
            -5 * 3600,
        ),
        (
            r#"window = { start = 2026-03-29T00:30:00, zone = "Europe/Berlin", hours = 4 }"#,
            3600,
        ),
    ] {
        let site = load_site("site.toml", &with(w), &set).unwrap_or_else(|e| panic!("{w}: {e:?}"));
        let win = site.window.expect("window");
        assert_eq!(win.offset_s, offset, "{w}");
        assert!(win.zone.is_some(), "{w}");
    }
    check_error(
        &set,
        &with(r#"window = { start = "2026-12-05T22:00", zone = "America/Nwe_York", hours = 4 }"#),
        3,
        "site.window.zone",
        &[
            "not an IANA time-zone name",
            "did you mean `America/New_York`",
        ],
    );
    check_error(
        &set,
        &with(
            r#"window = { start = "2026-07-04T22:00:00-05:00", zone = "America/New_York", hours = 4 }"#,
        ),
        3,
        "site.window.start",
        &["has the offset -04", "in America/New_York"],
    );
    // 02:30 on 8 March 2026 does not exist in New York (the clocks go from 02:00 to 03:00).
    check_error(
        &set,
        &with(r#"window = { start = "2026-03-08T02:30", zone = "America/New_York", hours = 4 }"#),
        3,
        "site.window.start",
        &["skipped or repeated"],
    );
    // Without a zone, a local time is still refused: it could be any moment.
    check_error(
        &set,
        &with(r#"window = { start = "2026-12-05T22:00", hours = 4 }"#),
        3,
        "site.window.start",
        &["no UTC offset"],
    );
}
