//! The rules' lower bound: the shortest window any plan keeping the documents' order, gate and
//! limit rules could reach, whatever its strategy, staging allowed (UCM-02, UCM-15, LHA-03).

use crate::common::profiles;
use ferry_plan::PlanOptions;
use ferry_profiles::load_site;

/// A CUCM publisher with three subscribers and an IM&P publisher with one subscriber, 12.5 to
/// 14, standard upgrade: "The system continues to function normally while you are installing
/// the software ... you can manually switch to the new software at a later time" (UCM-02), so
/// the installs may run ahead of the window; "You can switch the subscriber nodes to the
/// upgraded partition either all at once or one at a time" (UCM-15). No staging period booked.
const BRANCH_UCM: &str = r#"
[site]
name = "branch-collab"
window = { start = "2027-01-16T19:00:00-06:00", hours = 10 }

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
facts = { devices = 0, replication_state = 2 }

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

/// Two servers of a generic service: the package is staged into the inactive slot while each
/// keeps serving (LHA-03), then they switch one after the other.
const KV_PAIR: &str = r#"
[site]
name = "kv-lab"
window = { start = "2027-02-01T21:00:00Z", hours = 1 }

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

/// Checks the rules' bound of `site` against the bound of every strategy, staged and not:
/// it is their least, and `staging_lowers_it` says whether running work ahead of the window
/// gives a shorter bound than any unstaged plan.
fn check(site: &str, staging_lowers_it: bool) {
    let set = profiles();
    let site = load_site("site.toml", site, &set).expect("site loads");
    let lookup = |n: &str| set.get(n).map(|p| &p.profile);
    let strategies = ferry_profiles::site::strategies(&site, lookup);
    assert!(strategies.len() >= 2, "{strategies:?}");
    let bound = ferry_plan::rules_lower_bound(&site, lookup, &strategies, &PlanOptions::default())
        .expect("bound");
    let mut unstaged = Vec::new();
    let mut staged = Vec::new();
    for s in &strategies {
        for stage in [false, true] {
            let p = ferry_plan::plan(
                &site,
                lookup,
                String::new(),
                &PlanOptions {
                    strategy: Some(s.clone()),
                    stage,
                    ..PlanOptions::default()
                },
            )
            .expect("plan");
            assert!(
                bound <= p.lower_bound_s,
                "{s} stage={stage}: the rules' bound {bound} is above this plan's {}",
                p.lower_bound_s
            );
            if stage {
                staged.push(p.lower_bound_s);
            } else {
                unstaged.push(p.lower_bound_s);
            }
        }
    }
    let least = |v: &[u64]| v.iter().copied().min().unwrap_or(0);
    assert_eq!(bound, least(&staged).min(least(&unstaged)), "{}", site.name);
    assert_eq!(
        bound < least(&unstaged),
        staging_lowers_it,
        "{}: rules {bound}, unstaged {unstaged:?}, staged {staged:?}",
        site.name
    );
}

#[test]
fn the_rules_bound_allows_installs_ahead_of_the_window_ucm_02_ucm_15() {
    check(BRANCH_UCM, true);
}

#[test]
fn the_rules_bound_allows_the_package_staged_ahead_lha_03() {
    check(KV_PAIR, true);
}
