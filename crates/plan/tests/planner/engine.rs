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
