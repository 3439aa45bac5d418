//! Evaluation of profile conditions and fact tests against a cluster (and a node).

use crate::profile::{Condition, FactTest, RunSteps, RunTest, VersionSide, VersionTest};
use crate::run::{ProgressState, RunProgress};
use crate::{pattern_matches, Cluster, FactValue, Node, Profile, VendorVersion};

/// What a condition is evaluated against.
pub struct Scope<'a> {
    pub cluster: &'a Cluster,
    pub profile: &'a Profile,
    /// `None` while the upgrade type itself is being chosen.
    pub upgrade_type: Option<&'a str>,
    pub strategy: &'a str,
    /// Which leg of the version path is planned: (index, count).
    pub leg: (usize, usize),
    /// The run whose rollback is planned (`None`: no run is known).
    pub run: Option<&'a RunProgress>,
    /// The plan stages work ahead of the window.
    pub staging: bool,
}

/// The embedded OS major version of a product version, from the profile's `[[versions.os]]` table.
pub fn os_major(profile: &Profile, v: &VendorVersion) -> Option<u32> {
    profile
        .versions
        .os
        .iter()
        .find(|o| pattern_matches(&o.versions, v))
        .map(|o| o.os_major)
}

/// A node's fact, falling back to the cluster's.
pub fn fact<'a>(cluster: &'a Cluster, node: Option<&'a Node>, name: &str) -> Option<&'a FactValue> {
    node.and_then(|n| n.facts.get(name))
        .or_else(|| cluster.facts.get(name))
}

pub fn eval(c: &Condition, s: &Scope<'_>, node: Option<&Node>) -> bool {
    match c {
        Condition::All(cs) => cs.iter().all(|c| eval(c, s, node)),
        Condition::Any(cs) => cs.iter().any(|c| eval(c, s, node)),
        Condition::Not(c) => !eval(c, s, node),
        Condition::UpgradeType(names) => {
            s.upgrade_type.is_some_and(|t| names.iter().any(|n| n == t))
        }
        Condition::Strategy(names) => names.iter().any(|n| n == s.strategy),
        Condition::Upgrading(roles) => s
            .cluster
            .nodes
            .iter()
            .any(|n| roles.contains(&n.role) && n.upgrading()),
        Condition::Roles(roles) => node.is_some_and(|n| roles.contains(&n.role)),
        Condition::Fact(t) => fact_test(t, fact(s.cluster, node, &t.name), &|name| {
            fact(s.cluster, node, name)
        }),
        Condition::ClusterFact(t) => fact_test(t, s.cluster.facts.get(&t.name), &|name| {
            s.cluster.facts.get(name)
        }),
        Condition::Version(t) => version_test(t, s, node),
        Condition::AnyNode(t) => s
            .cluster
            .nodes
            .iter()
            .filter(|n| t.roles.is_empty() || t.roles.contains(&n.role))
            .any(|n| eval(&t.test, s, Some(n))),
        Condition::FirstLeg(want) => (s.leg.0 == 0) == *want,
        Condition::LastLeg(want) => (s.leg.0 + 1 >= s.leg.1) == *want,
        Condition::Run(t) => s.run.is_none_or(|p| run_test(t, p, &s.cluster.name)),
        Condition::Staging(want) => s.staging == *want,
    }
}

fn run_test(t: &RunTest, p: &RunProgress, cluster: &str) -> bool {
    let mut steps = p
        .steps
        .iter()
        .filter(|x| {
            x.cluster == cluster
                && (t.roles.is_empty() || x.role.as_ref().is_some_and(|r| t.roles.contains(r)))
        })
        .peekable();
    match t.steps {
        RunSteps::Done => steps.peek().is_some() && steps.all(|x| x.state == ProgressState::Done),
        RunSteps::Failed => steps.any(|x| x.state == ProgressState::Failed),
    }
}

fn item_contains(v: &FactValue, needle: &str) -> bool {
    match v {
        FactValue::String(s) => s.contains(needle),
        FactValue::List(items) => items.iter().any(|i| item_contains(i, needle)),
        _ => false,
    }
}

fn as_version(v: &FactValue) -> Option<VendorVersion> {
    match v {
        FactValue::String(s) => VendorVersion::parse(s).ok(),
        FactValue::Int(i) => VendorVersion::parse(&i.to_string()).ok(),
        FactValue::Float(f) => VendorVersion::parse(&f.to_string()).ok(),
        _ => None,
    }
}

fn matches_any(v: &VendorVersion, patterns: &[String]) -> bool {
    patterns.iter().any(|p| pattern_matches(p, v))
}

fn loose_eq(a: &FactValue, b: &FactValue) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Every test given must hold; a missing fact fails all tests but `missing = true`. `other`
/// gives the facts that `lt_fact` names.
pub fn fact_test<'a>(
    t: &FactTest,
    v: Option<&FactValue>,
    other: &dyn Fn(&str) -> Option<&'a FactValue>,
) -> bool {
    if let Some(want_missing) = t.missing {
        if want_missing != v.is_none() {
            return false;
        }
    }
    let Some(v) = v else {
        return t.missing == Some(true);
    };
    if let Some(item) = &t.any_item {
        let items = v.as_list().unwrap_or(&[]);
        let field = |i: &'_ FactValue| -> Option<FactValue> {
            if item.name.is_empty() {
                Some(i.clone())
            } else {
                i.as_table().and_then(|t| t.get(&item.name)).cloned()
            }
        };
        if !items
            .iter()
            .any(|i| fact_test(item, field(i).as_ref(), other))
        {
            return false;
        }
    }
    let num = v.as_f64();
    let needs_version =
        t.version_lt.is_some() || t.version_in.is_some() || t.version_not_in.is_some();
    let ver = if needs_version { as_version(v) } else { None };
    let cmp = |limit: Option<f64>, f: fn(f64, f64) -> bool| {
        limit.is_none_or(|l| num.is_some_and(|x| f(x, l)))
    };
    t.eq.as_ref().is_none_or(|e| loose_eq(v, e))
        && t.ne.as_ref().is_none_or(|e| !loose_eq(v, e))
        && cmp(t.gt, |x, l| x > l)
        && cmp(t.ge, |x, l| x >= l)
        && cmp(t.lt, |x, l| x < l)
        && cmp(t.le, |x, l| x <= l)
        && t.lt_fact.as_ref().is_none_or(|name| {
            let limit = other(name).and_then(|o| o.as_f64());
            num.zip(limit).is_some_and(|(x, l)| x < l)
        })
        && t.one_of
            .as_ref()
            .is_none_or(|l| l.iter().any(|e| loose_eq(v, e)))
        && t.not_in
            .as_ref()
            .is_none_or(|l| !l.iter().any(|e| loose_eq(v, e)))
        && t.contains.as_ref().is_none_or(|n| item_contains(v, n))
        && t.not_contains.as_ref().is_none_or(|n| !item_contains(v, n))
        && t.len_gt
            .is_none_or(|n| v.as_list().is_some_and(|l| l.len() > n))
        && t.version_lt.as_ref().is_none_or(|lim| {
            ver.as_ref()
                .zip(VendorVersion::parse(lim).ok())
                .is_some_and(|(a, b)| *a < b)
        })
        && t.version_in
            .as_ref()
            .is_none_or(|ps| ver.as_ref().is_some_and(|a| matches_any(a, ps)))
        && t.version_not_in
            .as_ref()
            .is_none_or(|ps| ver.as_ref().is_some_and(|a| !matches_any(a, ps)))
}

fn version_test(t: &VersionTest, s: &Scope<'_>, node: Option<&Node>) -> bool {
    let nodes: Vec<&Node> = if t.roles.is_empty() {
        match node {
            Some(n) => vec![n],
            // The nodes the upgrade touches (all nodes when none is upgrading).
            None => {
                let up: Vec<&Node> = s.cluster.nodes.iter().filter(|n| n.upgrading()).collect();
                if up.is_empty() {
                    s.cluster.nodes.iter().collect()
                } else {
                    up
                }
            }
        }
    } else {
        s.cluster
            .nodes
            .iter()
            .filter(|n| t.roles.contains(&n.role))
            .collect()
    };
    !nodes.is_empty()
        && nodes.iter().all(|n| {
            let v = match t.side {
                VersionSide::Current => &n.version,
                VersionSide::Target => &n.target,
            };
            t.one_of.as_ref().is_none_or(|ps| matches_any(v, ps))
                && t.lt
                    .as_ref()
                    .is_none_or(|l| VendorVersion::parse(l).is_ok_and(|l| *v < l))
                && t.ge
                    .as_ref()
                    .is_none_or(|l| VendorVersion::parse(l).is_ok_and(|l| *v >= l))
                && t.same_prefix
                    .is_none_or(|k| n.version.same_prefix(&n.target, k))
                && t.differs_within
                    .is_none_or(|k| !n.version.same_prefix(&n.target, k))
                && t.upgrading.is_none_or(|want| n.upgrading() == want)
                && t.os_major_changes.is_none_or(|want| {
                    let change = os_major(s.profile, &n.version) != os_major(s.profile, &n.target);
                    change == want
                })
        })
}
