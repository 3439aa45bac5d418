//! The batches of the `balanced` strategy (UCM-15, CCM-06, CCM-09), as properties over generated
//! device groups and capacities: every node in one batch; while a batch is out every group keeps
//! a serving server and no server carries more than its capacity (except what a single node's
//! absence already costs, which the batches report); the order the other rules put between
//! nodes is kept; the fewest batches (checked against every partition of small sites); and the
//! same answer every time. Then the same on whole generated CUCM sites, planned: at every
//! moment of the schedule.

use super::common::*;
use ferry_model::redundancy::{Group, Redundancy, Shortfall};
use ferry_plan::batch::{batches, Batching, Input};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Generated redundancy over `n` servers: groups with ordered servers (some falling back to
/// any other server), capacities on some servers; and an order between some nodes.
fn generated() -> impl Strategy<Value = (Redundancy, Vec<(usize, usize)>)> {
    (2usize..7)
        .prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec(proptest::option::of(1000u32..9000), n),
                proptest::collection::vec(
                    (
                        proptest::sample::subsequence((0..n).collect::<Vec<_>>(), 1..=n.min(3)),
                        any::<prop::sample::Index>(),
                        0u32..4000,
                        prop::bool::weighted(0.2),
                    ),
                    1..8,
                ),
                proptest::collection::vec((0..n, 0..n), 0..3),
            )
        })
        .prop_map(|(n, caps, groups, before)| {
            let red = Redundancy {
                what: "devices".into(),
                servers: (0..n)
                    .map(|i| (format!("s{i}"), caps[i].map(f64::from)))
                    .collect(),
                groups: groups
                    .into_iter()
                    .enumerate()
                    .map(|(gi, (mut servers, rot, count, any_peer))| {
                        let r = rot.index(servers.len());
                        servers.rotate_left(r);
                        Group {
                            name: format!("g{gi}"),
                            peers: if any_peer {
                                (0..n).filter(|s| !servers.contains(s)).collect()
                            } else {
                                Vec::new()
                            },
                            servers,
                            count: f64::from(count),
                        }
                    })
                    .collect(),
            };
            let before = before.into_iter().filter(|(a, b)| a < b).collect();
            (red, before)
        })
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i}")).collect()
}

fn out(n: usize, nodes: &[usize]) -> Vec<bool> {
    let mut v = vec![false; n];
    for &m in nodes {
        v[m] = true;
    }
    v
}

/// What a single node's absence costs: the groups it leaves unserved anyway, and whether it
/// overloads a server alone (then it goes alone).
fn singles(red: &Redundancy) -> (BTreeSet<usize>, Vec<bool>) {
    let n = red.servers.len();
    let mut tolerated = BTreeSet::new();
    let mut alone = vec![false; n];
    for (m, goes_alone) in alone.iter_mut().enumerate() {
        for s in red.shortfalls(&out(n, &[m])) {
            match s {
                Shortfall::Unserved { group } => {
                    tolerated.insert(group);
                }
                Shortfall::OverCapacity { .. } => *goes_alone = true,
            }
        }
    }
    (tolerated, alone)
}

/// Whether `batch` may be out at once.
fn allowed(red: &Redundancy, batch: &[usize], tolerated: &BTreeSet<usize>, alone: &[bool]) -> bool {
    if batch.len() <= 1 {
        return true;
    }
    if batch.iter().any(|&m| alone[m]) {
        return false;
    }
    red.shortfalls(&out(red.servers.len(), batch))
        .iter()
        .all(|s| matches!(s, Shortfall::Unserved { group } if tolerated.contains(group)))
}

/// Whether batches (node -> batch) can go in some order that keeps `before`.
fn orderable(assign: &[usize], k: usize, before: &[(usize, usize)]) -> bool {
    let edges: BTreeSet<(usize, usize)> = before
        .iter()
        .filter(|(a, b)| assign[*a] != assign[*b])
        .map(|(a, b)| (assign[*a], assign[*b]))
        .collect();
    let mut done = vec![false; k];
    for _ in 0..k {
        let Some(next) =
            (0..k).find(|&b| !done[b] && !edges.iter().any(|&(x, y)| y == b && !done[x]))
        else {
            return false;
        };
        done[next] = true;
    }
    true
}

/// The fewest batches any partition keeping the rules has, by trying them all.
fn fewest_by_brute_force(red: &Redundancy, before: &[(usize, usize)]) -> usize {
    let n = red.servers.len();
    let (tolerated, alone) = singles(red);
    for k in 1..=n {
        let mut assign = vec![0usize; n];
        loop {
            let ok = (0..k).all(|b| {
                let batch: Vec<usize> = (0..n).filter(|&m| assign[m] == b).collect();
                allowed(red, &batch, &tolerated, &alone)
            }) && orderable(&assign, k, before);
            if ok {
                return k;
            }
            // Next assignment in base k.
            let mut i = 0;
            while i < n {
                assign[i] += 1;
                if assign[i] < k {
                    break;
                }
                assign[i] = 0;
                i += 1;
            }
            if i == n {
                break;
            }
        }
    }
    n
}

fn check_batching(red: &Redundancy, before: &[(usize, usize)], b: &Batching) {
    let n = red.servers.len();
    // Every node in exactly one batch, no empty batch.
    let mut seen: Vec<usize> = b.batches.iter().flatten().copied().collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "{:?}", b.batches);
    assert!(b.batches.iter().all(|x| !x.is_empty()));
    // While a batch is out: every group served, every server within capacity, but for what a
    // single node costs anyway (reported).
    let (tolerated, alone) = singles(red);
    for batch in &b.batches {
        assert!(
            allowed(red, batch, &tolerated, &alone),
            "batch {batch:?} of {:?}: {:?}",
            b.batches,
            red.shortfalls(&out(n, batch))
        );
    }
    for g in &tolerated {
        assert!(
            b.unavoidable
                .iter()
                .any(|(_, s, _)| *s == Shortfall::Unserved { group: *g }),
            "group {g} unserved but not reported"
        );
    }
    for (m, a) in alone.iter().enumerate() {
        if *a {
            assert!(
                b.batches.iter().any(|x| x == &vec![m]),
                "{m} should go alone"
            );
        }
    }
    // The order between nodes.
    let index = |m: usize| b.batches.iter().position(|x| x.contains(&m)).unwrap();
    for &(a, c) in before {
        assert!(index(a) <= index(c), "{a} before {c}: {:?}", b.batches);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batches_keep_every_group_served_within_capacity_in_the_fewest_batches_ucm_15_ccm_09(
        (red, before) in generated()
    ) {
        let nodes = names(red.servers.len());
        let input = Input { nodes: &nodes, redundancy: std::slice::from_ref(&red), before: &before };
        let b = batches(input);
        check_batching(&red, &before, &b);
        prop_assert!(b.fewest);
        prop_assert_eq!(b.batches.len(), fewest_by_brute_force(&red, &before));
        prop_assert_eq!(batches(input), b);
    }
}

// ---------------------------------------------------------------------------------------------
// Whole sites
// ---------------------------------------------------------------------------------------------

/// A generated CUCM standard upgrade: `subs` subscribers, CM groups over them (two or three
/// servers each, in order), and a device capacity on some subscribers.
/// A generated site's text, its CM groups (servers in order, phones) and its subscribers'
/// device capacities.
type GeneratedSite = (String, Vec<(Vec<String>, f64)>, Vec<Option<u32>>);

fn sites() -> impl Strategy<Value = GeneratedSite> {
    (2usize..6)
        .prop_flat_map(|subs| {
            (
                Just(subs),
                proptest::collection::vec(
                    (
                        proptest::sample::subsequence(
                            (0..subs).collect::<Vec<_>>(),
                            2..=subs.min(3),
                        ),
                        any::<prop::sample::Index>(),
                        100u32..3000,
                    ),
                    1..7,
                ),
                proptest::collection::vec(proptest::option::of(2000u32..9000), subs),
            )
        })
        .prop_map(|(_, groups, caps)| {
            let groups: Vec<(Vec<String>, f64)> = groups
                .into_iter()
                .map(|(mut servers, rot, count)| {
                    let r = rot.index(servers.len());
                    servers.rotate_left(r);
                    (
                        servers.iter().map(|s| format!("sub{s}")).collect(),
                        f64::from(count),
                    )
                })
                .collect();
            let rows = groups
                .iter()
                .enumerate()
                .map(|(i, (servers, count))| {
                    format!(
                        "    {{ name = \"G{i}\", servers = [{}], devices = {count} }},",
                        servers
                            .iter()
                            .map(|s| format!("\"{s}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let mut site = format!(
                "[site]\nname = \"gen\"\n\n[[cluster]]\nname = \"c\"\nprofile = \"cisco-ucm\"\ntarget = \"14.0.1.13900-155\"\n\n[cluster.facts]\nconfigured_devices = 5000\nupgrade_source = \"sftp\"\ncm_groups = [\n{rows}\n]\n\n[[cluster.node]]\nname = \"pub\"\nrole = \"publisher\"\nversion = \"12.5.1.16900-48\"\n"
            );
            for (i, cap) in caps.iter().enumerate() {
                site.push_str(&format!(
                    "\n[[cluster.node]]\nname = \"sub{i}\"\nrole = \"subscriber\"\nversion = \"12.5.1.16900-48\"\n"
                ));
                if let Some(c) = cap {
                    site.push_str(&format!("facts = {{ device_capacity = {c} }}\n"));
                }
            }
            (site, groups, caps)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn at_every_moment_of_a_balanced_plan_every_cm_group_keeps_a_subscriber_within_capacity_ucm_15(
        (site, groups, caps) in sites()
    ) {
        let p = plan_with(&site, Some("balanced"));
        let mut spans = out_spans(&p, &["switch-version", "subscriber-serving"]);
        spans.retain(|(n, _, _)| n != "pub");
        let cap = |s: &str| {
            s.strip_prefix("sub")
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| caps[i])
                .map(f64::from)
        };
        for (_, at, _) in &spans {
            let out: Vec<&str> = spans
                .iter()
                .filter(|(_, s, e)| s <= at && at < e)
                .map(|(n, _, _)| n.as_str())
                .collect();
            let mut load: std::collections::BTreeMap<&str, (f64, bool)> = Default::default();
            for (servers, count) in &groups {
                let serving = servers.iter().find(|s| !out.contains(&s.as_str()));
                // Every group has two servers or more: batches of one always keep it served.
                prop_assert!(serving.is_some(), "at {} every server of {:?} is out: {:?}", at, servers, out);
                let serving = serving.unwrap();
                let e = load.entry(serving.as_str()).or_default();
                e.0 += count;
                e.1 |= serving != &servers[0];
            }
            for (server, (l, foreign)) in load {
                if let Some(c) = cap(server).filter(|_| foreign) {
                    // Over capacity only while a single subscriber is out, and then reported.
                    if l > c {
                        // (subscribers that serve no group go out when they will)
                        let serving_out: Vec<&str> = out
                            .iter()
                            .copied()
                            .filter(|n| groups.iter().any(|(g, _)| g.iter().any(|s| s == n)))
                            .collect();
                        prop_assert_eq!(serving_out.len(), 1, "at {} {} carries {} > {} while {:?} are out", at, server, l, c, out);
                        let alone = serving_out[0];
                        prop_assert!(
                            p.findings.iter().any(|f| f.key.starts_with("batch/") && f.node.as_deref() == Some(alone)),
                            "{} overloads {} alone and the plan does not say so", alone, server
                        );
                    }
                }
            }
        }
    }
}
