//! Engine behaviour that no single product shows well: paths through intermediate versions,
//! leg conditions and phases, tested on small profiles written for the purpose.

use ferry_model::Phase;
use ferry_plan::PlanOptions;
use ferry_profiles::{load_site, ProfileSet};

const HOP_PROFILE: &str = r#"
[profile]
name = "hop"
title = "a product with a mandatory intermediate version"

[[role]]
name = "server"

[versions]
rule = "HOP-01"

[[versions.edge]]
from = ["2"]
to = "3"
rule = "HOP-01"

[[versions.hop]]
from = ["1"]
to = "3"
via = "2.0"
rule = "HOP-02"

[[upgrade_type]]
name = "standard"
rule = "HOP-01"

[[procedure.step]]
id = "gather-media"
title = "Gather the media"
phase = "prepare"
minutes = 10
rules = ["HOP-03"]

[[procedure.step]]
id = "freeze"
title = "Freeze configuration"
scope = "cluster"
when = { first_leg = true }
minutes = 5
rules = ["HOP-04"]

[[procedure.step]]
id = "install"
title = "Install"
minutes = 30
rules = ["HOP-01"]

[[procedure.step]]
id = "release"
title = "Release the freeze"
scope = "cluster"
when = { last_leg = true }
minutes = 5
rules = ["HOP-04"]
"#;

fn plan(version: &str) -> ferry_model::Plan {
    let mut set = ProfileSet::builtin().expect("builtin");
    set.add("hop.toml", HOP_PROFILE)
        .expect("test profile loads");
    let site = format!(
        "[site]\nname = \"s\"\n\n[[cluster]]\nname = \"c\"\nprofile = \"hop\"\ntarget = \"3.0\"\n\n[[cluster.node]]\nname = \"a\"\nrole = \"server\"\nversion = \"{version}\"\n"
    );
    let site = load_site("s.toml", &site, &set).expect("site loads");
    ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        String::new(),
        &PlanOptions::default(),
    )
    .expect("plans")
}

fn ids(p: &ferry_model::Plan) -> Vec<&str> {
    p.steps.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn a_hop_repeats_the_procedure_per_leg_with_prepare_steps_before_the_window() {
    let p = plan("1.0");
    assert_eq!(p.clusters[0].path, ["1.0", "2.0", "3.0"]);
    assert_eq!(
        ids(&p),
        [
            "c/a/gather-media@2.0",
            "c/a/gather-media",
            "c/freeze@2.0",
            "c/a/install@2.0",
            "c/a/install",
            "c/release"
        ]
    );
    let prepare: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Prepare)
        .collect();
    assert_eq!(prepare.len(), 2);
    // The second leg waits for the first, by the hop's rule.
    let second = p
        .steps
        .iter()
        .find(|s| s.id == "c/a/install")
        .expect("second install");
    assert!(
        second.after.iter().any(|a| a == "c/a/install@2.0"),
        "{:?}",
        second.after
    );
    assert!(p
        .edges
        .iter()
        .any(|e| e.to == "c/a/install" && e.rule == "HOP-02"));
    assert_eq!(p.makespan_s, (5 + 30 + 30 + 5) * 60);
}

#[test]
fn a_direct_upgrade_is_one_leg_first_and_last() {
    let p = plan("2.1");
    assert_eq!(p.clusters[0].path, ["2.1", "3.0"]);
    assert_eq!(
        ids(&p),
        ["c/a/gather-media", "c/freeze", "c/a/install", "c/release"]
    );
}

#[test]
fn an_unsupported_source_is_an_inhibitor_with_the_path_rule() {
    let p = plan("0.9");
    let f: Vec<_> = p.findings.iter().filter(|f| f.rule == "HOP-01").collect();
    assert_eq!(f.len(), 1, "{:?}", p.findings);
    assert_eq!(f[0].severity, ferry_model::Severity::Inhibitor);
    assert!(
        f[0].message.contains("0.9") && f[0].message.contains("3.0"),
        "{}",
        f[0].message
    );
}

const FEATURES_PROFILE: &str = r#"
[profile]
name = "features"
title = "engine features"

[[role]]
name = "app"

[[role]]
name = "db"

[[fact]]
name = "host"
type = "string"

[[fact]]
name = "links"
type = "list"

[[fact]]
name = "storage"
type = "table"

[[fact]]
name = "platform_ok"
type = "bool"

[[upgrade_type]]
name = "platform"
rule = "FEA-01"
when = { any_node = { roles = ["db"], test = { fact = { name = "platform_ok", eq = false } } } }

[[upgrade_type]]
name = "software"
rule = "FEA-01"

[[procedure.step]]
id = "upgrade"
title = "Upgrade {node} on {fact.host}"
minutes = 10
rules = ["FEA-02"]
instructions = "Log in to {fact.host} and upgrade {node}."

[[procedure.limit]]
rule = "FEA-03"
steps = { step = ["upgrade"] }
max_concurrent = 1
per_fact = "host"
note = "One upgrade at a time per host"

[[check]]
id = "old-link"
rule = "FEA-04"
severity = "inhibitor"
test.cluster = { cluster_fact = { name = "links", any_item = { name = "release", version_lt = "7" } } }
message = "a link runs a release below 7"

[[check]]
id = "storage-differs"
rule = "FEA-05"
severity = "inhibitor"
test.facts_match = { fact = "storage", roles = ["db"] }
message = "storage differs: {detail}"
"#;

fn features(site_body: &str) -> ferry_model::Plan {
    let mut set = ProfileSet::builtin().expect("builtin");
    set.add("features.toml", FEATURES_PROFILE)
        .expect("test profile loads");
    let site = format!(
        "[site]\nname = \"s\"\n\n[[cluster]]\nname = \"c\"\nprofile = \"features\"\ntarget = \"2.0\"\n{site_body}"
    );
    let site =
        load_site("s.toml", &site, &set).unwrap_or_else(|e| panic!("{:?}", miette::Report::new(e)));
    ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        String::new(),
        &PlanOptions::default(),
    )
    .expect("plans")
}

const NODES: &str = r#"
[[cluster.node]]
name = "a1"
role = "app"
version = "1.0"
facts = { host = "h1" }

[[cluster.node]]
name = "a2"
role = "app"
version = "1.0"
facts = { host = "h1" }

[[cluster.node]]
name = "a3"
role = "app"
version = "1.0"
facts = { host = "h2" }

[[cluster.node]]
name = "d1"
role = "db"
version = "1.0"
facts = { host = "h3", storage = { days = 31, intervals = 15 } }

[[cluster.node]]
name = "d2"
role = "db"
version = "1.0"
facts = { host = "h4", storage = { days = 31, intervals = 15 }, platform_ok = true }
"#;

#[test]
fn limits_per_fact_value_and_facts_in_step_texts() {
    let p = features(NODES);
    let at = |id: &str| p.steps.iter().find(|s| s.id == id).expect(id);
    // a1 and a2 share host h1: one after the other; a3 runs beside them.
    let (a1, a2, a3) = (at("c/a1/upgrade"), at("c/a2/upgrade"), at("c/a3/upgrade"));
    assert!(a1.end_s() <= a2.start_s || a2.end_s() <= a1.start_s);
    assert_eq!(a3.start_s, 0);
    assert_eq!(p.makespan_s, 20 * 60);
    assert_eq!(a1.title, "Upgrade a1 on h1");
    assert_eq!(a3.instructions, "Log in to h2 and upgrade a3.");
    assert_eq!(p.clusters[0].upgrade_type, "software");
    assert!(
        crate::common::judged(&p.findings).is_empty(),
        "{:?}",
        p.findings
    );
}

#[test]
fn any_node_any_item_and_facts_match() {
    let body = NODES.replace("platform_ok = true", "platform_ok = false").replace("days = 31, intervals = 15 }, platform", "days = 62, intervals = 15 }, platform")
        + "\n[cluster.facts]\nlinks = [{ name = \"cm1\", release = \"8.1\" }, { name = \"cm2\", release = \"6.3\" }]\n";
    // [cluster.facts] after nodes belongs to the cluster table.
    let p = features(&body);
    assert_eq!(
        p.clusters[0].upgrade_type, "platform",
        "any_node saw d2's fact"
    );
    let rules: Vec<&str> = p.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["FEA-04", "FEA-05"], "{:?}", p.findings);
    assert!(
        p.findings[1]
            .message
            .contains("d2 has storage = {days = 62"),
        "{}",
        p.findings[1].message
    );
}

#[test]
fn observed_estimates_replace_profile_durations_and_are_marked() {
    use ferry_model::Estimate;
    let set = super::common::profiles();
    let text = super::common::example("linux-ha-pair");
    let site = load_site("linux-ha-pair", &text, &set).expect("site");
    let plan = |estimates| {
        ferry_plan::plan(
            &site,
            |n| set.get(n).map(|p| &p.profile),
            "h".into(),
            &PlanOptions {
                estimates,
                ..PlanOptions::default()
            },
        )
        .expect("plan")
    };
    let before = plan(Default::default());
    let action = before.steps[0].action.clone();
    let after = plan([(("linux-ha".to_string(), action.clone()), 4321)].into());
    for (b, a) in before.steps.iter().zip(&after.steps) {
        assert_eq!(b.estimate, Estimate::Profile);
        if a.action == action {
            assert_eq!((a.duration_s, a.estimate), (4321, Estimate::Observed));
        } else {
            assert_eq!(
                (a.duration_s, a.estimate),
                (b.duration_s, Estimate::Profile)
            );
        }
    }
    assert!(ferry_plan::render::text::render_text(&after).contains("(observed)"));
}

/// Workers that hand their load to a shared spare while they are rebuilt; the load stays on the
/// spare from the hand-over until the worker's return (a capacity `hold`). `{yield}` lets the
/// order give way to the spare's capacity.
const SPARE_PROFILE: &str = r#"
[profile]
name = "spare"
title = "workers handing their load to a shared spare while they are rebuilt"

[[role]]
name = "worker"

[[role]]
name = "spare"

[[fact]]
name = "load"
type = "integer"

[[fact]]
name = "spare"
type = "string"

[[fact]]
name = "max_away_hours"
type = "number"

[versions]
rule = "SPR-01"

[[versions.edge]]
from = ["1"]
to = "2"
rule = "SPR-01"

[[upgrade_type]]
name = "standard"
rule = "SPR-01"

[[procedure.step]]
id = "hand-over"
title = "Hand the load to the spare"
roles = ["worker"]
minutes = 10
rules = ["SPR-02"]

[[procedure.step]]
id = "rebuild"
title = "Rebuild"
roles = ["worker"]
minutes = 120
rules = ["SPR-03"]

[[procedure.step]]
id = "take-back"
title = "Take the load back"
roles = ["worker"]
minutes = 10
rules = ["SPR-02"]

[[procedure.order]]
rule = "SPR-04"
before = { step = ["hand-over"] }
then = { step = ["rebuild"] }
note = "Every load is on the spare before any worker is rebuilt."
{yield}

[[procedure.limit]]
rule = "SPR-05"
steps = { step = ["hand-over", "rebuild", "take-back"] }
capacity = { weight_fact = "load", max = 100, per_fact = "spare", hold = { from = ["hand-over"], until = ["take-back"], max_hours = 3, max_hours_fact = "max_away_hours" } }
note = "The spare takes at most 100."
"#;

fn spare_plan(yields: bool, cluster_facts: &str) -> ferry_model::Plan {
    let mut set = ProfileSet::builtin().expect("builtin");
    let profile = SPARE_PROFILE.replace(
        "{yield}",
        if yields {
            "yields_to = { rule = \"SPR-05\", note = \"A worker waiting for its turn keeps its load.\" }"
        } else {
            ""
        },
    );
    set.add("spare.toml", &profile).expect("test profile loads");
    let node = |name: &str, facts: &str| {
        format!("\n[[cluster.node]]\nname = \"{name}\"\nrole = \"worker\"\nversion = \"1.0\"\nfacts = {{ {facts} }}\n")
    };
    let site = format!(
        "[site]\nname = \"s\"\n\n[[cluster]]\nname = \"c\"\nprofile = \"spare\"\ntarget = \"2.0\"\nfacts = {{ {cluster_facts} }}\n\n[[cluster.node]]\nname = \"sp\"\nrole = \"spare\"\nversion = \"2.0\"\n{}{}",
        node("w1", "load = 60, spare = \"sp\""),
        node("w2", "load = 70, spare = \"sp\""),
    );
    let site = load_site("s.toml", &site, &set).expect("site loads");
    ferry_plan::plan(
        &site,
        |n| set.get(n).map(|p| &p.profile),
        String::new(),
        &PlanOptions::default(),
    )
    .expect("plans")
}

/// A capacity `hold`: a load stays on its partition after the step that put it there. Where
/// the rules leave no other order (every hand-over before any rebuild), the spare is reported
/// over its limit with the nodes and times; where the order gives way (`yields_to`), the second
/// worker hands over once the first has taken its load back, an edge of the limit's rule, and
/// the order's rule reports what giving way costs. A spare carrying loads longer than
/// `max_hours` (or the site's `max_hours_fact`) is warned about.
#[test]
fn held_loads_are_counted_until_taken_back() {
    let check = |yields: bool, facts: &str, peak: &str, findings: &[(&str, &[&str])]| {
        let p = spare_plan(yields, facts);
        let got: Vec<(&str, &str)> = p
            .findings
            .iter()
            .filter(|f| f.rule.starts_with("SPR-"))
            .map(|f| {
                (
                    f.key.split('/').next().unwrap_or_default(),
                    f.message.as_str(),
                )
            })
            .collect();
        assert_eq!(got.len(), findings.len(), "{got:#?}");
        for (kind, parts) in findings {
            let m = got
                .iter()
                .find(|(k, _)| k == kind)
                .unwrap_or_else(|| panic!("no {kind} in {got:#?}"))
                .1;
            for part in *parts {
                assert!(m.contains(part), "{part:?} in {m}");
            }
        }
        let text = ferry_plan::render::text::render_text(&p);
        assert!(text.contains(peak), "{peak:?} in {text}");
        let edge = p
            .edges
            .iter()
            .any(|e| e.from == "c/w1/take-back" && e.to == "c/w2/hand-over" && e.rule == "SPR-05");
        assert_eq!(edge, yields, "{:#?}", p.edges);
    };
    // No other order: both loads on the spare from the second hand-over until the first is taken back.
    check(
        false,
        "",
        "c/sp [SPR-05]: peak 130 load (limit 100) from 0:10 to 2:30",
        &[(
            "capacity-peak",
            &[
                "sp would carry 130 load from 0:10 to 2:30",
                "60 of w1, 70 of w2",
            ],
        )],
    );
    // The order gives way: in turn, 4h 40m on the spare without a break.
    let in_turn: &[(&str, &[&str])] = &[
        (
            "capacity-yield",
            &[
                "sp cannot take the load of every node",
                "130: 60 of w1, 70 of w2",
                "A worker waiting",
            ],
        ),
        (
            "capacity-span",
            &[
                "for 4h 40m without a break, from 0:00 to 4:40",
                "longer than 3h 00m",
            ],
        ),
    ];
    check(true, "", "c/sp [SPR-05]: peak 70 load (limit 100)", in_turn);
    check(
        true,
        "max_away_hours = 5",
        "c/sp [SPR-05]: peak 70 load (limit 100)",
        &in_turn[..1],
    );
}
