//! Findings that catch mistakes in the input (issue 14, point 6): a check whose fact the site
//! does not state says so, and no message or remedy of any profile keeps a placeholder.

use crate::common::*;
use ferry_model::{Cluster, FactValue, Node, Severity, VendorVersion};

/// A CUCM cluster whose second subscriber states no replication state.
const SILENT_SUB: &str = r#"[site]
name = "quiet"

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
facts = { upgrade_source = "sftp", configured_devices = 800 }

[[cluster.node]]
name = "pub"
role = "publisher"
version = "14.0.1.12900-161"
facts = { devices = 0, replication_state = 2, drs_backup_at = "2026-12-05T06:30:00-05:00" }

[[cluster.node]]
name = "sub-a"
role = "subscriber"
version = "14.0.1.12900-161"
facts = { devices = 400, replication_state = 2 }

[[cluster.node]]
name = "sub-b"
role = "subscriber"
version = "14.0.1.12900-161"
facts = { devices = 400 }
"#;

/// UCM-10 needs each node's replication state: a node that states none is a finding that
/// says the check could not be judged, never silence.
#[test]
fn a_check_whose_fact_is_missing_says_it_cannot_judge_ucm_10() {
    let f = all_findings(SILENT_SUB);
    let unknown: Vec<_> = findings_of(&f, "UCM-10")
        .into_iter()
        .filter(|x| x.key.contains("/unknown/"))
        .collect();
    assert_eq!(unknown.len(), 1, "{f:#?}");
    let u = unknown[0];
    assert_eq!(u.node.as_deref(), Some("sub-b"));
    assert_eq!(u.severity, Severity::Info);
    assert!(
        u.message.starts_with("unknown: cannot judge check `replication-not-good` (UCM-10) on node `sub-b` without fact `replication_state`"),
        "{}",
        u.message
    );
    // A node that states it is judged: no finding for sub-a.
    assert!(!f
        .iter()
        .any(|x| x.node.as_deref() == Some("sub-a") && x.rule == "UCM-10"));
}

/// Every message and remedy of every built-in profile's checks, filled for a node of every
/// role of a cluster that states no fact at all, keeps no `{placeholder}`: a placeholder never reaches a
/// person (CCM-23's message names the next database, `{next.db_name}`, which it once left).
#[test]
fn every_message_and_remedy_renders_without_placeholders_ccm_23() {
    let set = profiles();
    let mut rendered = 0;
    for p in set.iter() {
        let profile = &p.profile;
        let v = VendorVersion::parse("1.0").unwrap();
        let nodes: Vec<Node> = profile
            .roles
            .iter()
            .map(|r| Node {
                name: format!("n-{}", r.name),
                role: r.name.clone(),
                version: v.clone(),
                target: v.clone(),
                address: None,
                facts: Default::default(),
            })
            .collect();
        let mut cluster = Cluster {
            name: "c".into(),
            profile: profile.profile.name.clone(),
            target: v.clone(),
            strategy: None,
            facts: Default::default(),
            nodes,
        };
        for facts in [false, true] {
            if facts {
                // With every declared fact stated, too.
                for f in &profile.facts {
                    cluster
                        .facts
                        .insert(f.name.clone(), FactValue::String("x".into()));
                }
            }
            for check in &profile.checks {
                // The node a finding of this test is filled for, as `checks::run` fills it.
                use ferry_model::profile::CheckTest as T;
                let (cluster_wide, per_node) = match &check.test {
                    T::Node(_) | T::MaxAge { .. } => (false, true),
                    T::VersionsMatch { with_roles, .. } => {
                        (with_roles.is_empty(), !with_roles.is_empty())
                    }
                    T::ClampedParameters { .. } => (true, true),
                    T::StepWithinFact { .. } => (false, true),
                    _ => (true, false),
                };
                let whole = cluster_wide.then_some(None);
                let each = cluster.nodes.iter().map(Some).filter(|_| per_node);
                for node in whole.into_iter().chain(each) {
                    for text in [&check.message, &check.remedy] {
                        let out = ferry_plan::checks::fill(text, &cluster, node, "detail");
                        // A placeholder is `{name}` or `{kind.name}`; a TOML example in a
                        // remedy (`targets = { publisher = ... }`) is text.
                        let placeholder = out.split('{').skip(1).any(|rest| {
                            rest.split_once('}').is_some_and(|(inside, _)| {
                                !inside.is_empty()
                                    && inside
                                        .chars()
                                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                            })
                        });
                        assert!(
                            !placeholder,
                            "{} check `{}`: {out}",
                            profile.profile.name, check.id
                        );
                        rendered += 1;
                    }
                }
            }
        }
    }
    assert!(rendered > 500, "{rendered}");
}
