//! Preflight checks: the profile's checks evaluated against the site, as findings.

use crate::condition::{eval, fact, Scope};
use crate::graph::Graph;
use ferry_model::profile::{Check, CheckTest, Condition, FactTest};
use ferry_model::{Cluster, FactValue, Finding, Node, Profile, Site, VendorVersion};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

/// What the clusters' checks read of the whole site, worked out once per plan rather than
/// once per cluster: for each fact a `unique_across_site` check names, per cluster, the items
/// of it that other clusters use too, with every cluster using each.
pub struct SiteFacts<'s> {
    site: &'s Site,
    shared: RefCell<HashMap<String, Rc<SharedItems<'s>>>>,
}

/// Per cluster: (item, the clusters that use it), in item order.
type SharedItems<'s> = HashMap<&'s str, Vec<(String, Rc<BTreeSet<&'s str>>)>>;

impl<'s> SiteFacts<'s> {
    pub fn new(site: &'s Site) -> SiteFacts<'s> {
        SiteFacts {
            site,
            shared: RefCell::new(HashMap::new()),
        }
    }

    /// The items of list fact `name` that `cluster` shares with other clusters.
    fn shared(&self, name: &str) -> Rc<SharedItems<'s>> {
        if let Some(s) = self.shared.borrow().get(name) {
            return Rc::clone(s);
        }
        let mut owners: BTreeMap<String, BTreeSet<&'s str>> = BTreeMap::new();
        for c in &self.site.clusters {
            let mut add = |v: Option<&FactValue>| {
                for item in v.and_then(|v| v.as_list()).unwrap_or(&[]) {
                    owners
                        .entry(item.to_string())
                        .or_default()
                        .insert(c.name.as_str());
                }
            };
            add(c.facts.get(name));
            for n in &c.nodes {
                add(n.facts.get(name));
            }
        }
        let mut shared: SharedItems<'s> = HashMap::new();
        for (value, clusters) in owners {
            if clusters.len() < 2 {
                continue;
            }
            let clusters = Rc::new(clusters);
            for c in clusters.iter() {
                shared
                    .entry(c)
                    .or_default()
                    .push((value.clone(), Rc::clone(&clusters)));
            }
        }
        let shared = Rc::new(shared);
        self.shared
            .borrow_mut()
            .insert(name.to_string(), Rc::clone(&shared));
        shared
    }
}

/// Fills `{node}`, `{cluster}`, `{role}`, `{version}`, `{target}`, `{fact.X}` (`not set` when
/// the site does not state it), `{next.X}` and `{detail}`.
pub fn fill(template: &str, cluster: &Cluster, node: Option<&Node>, detail: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &rest[open + 1..open + close];
        let value = match key {
            "node" => node.map(|n| n.name.clone()),
            "cluster" => Some(cluster.name.clone()),
            "role" => node.map(|n| n.role.clone()),
            "version" => node.map(|n| n.version.to_string()),
            "target" => Some(node.map_or(cluster.target.to_string(), |n| n.target.to_string())),
            "detail" => Some(detail.to_string()),
            // A fact the site does not state reads as such, never as the placeholder.
            k if k.starts_with("fact.") => Some(
                fact(cluster, node, &k[5..])
                    .map_or_else(|| "not set".to_string(), |v| v.to_string()),
            ),
            k if k.starts_with("next.") => Some(fact(cluster, node, &k[5..]).map_or_else(
                || "not set".to_string(),
                |v| increment_trailing(&v.to_string()),
            )),
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + close + 1]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

pub use ferry_model::fact::increment_trailing;

fn finding(
    check: &Check,
    cluster: &Cluster,
    node: Option<&Node>,
    detail: &str,
    key_extra: &str,
) -> Finding {
    let mut key = format!("{}/{}", check.id, cluster.name);
    if let Some(n) = node {
        key.push('/');
        key.push_str(&n.name);
    }
    if !key_extra.is_empty() {
        key.push('/');
        key.push_str(key_extra);
    }
    Finding {
        key,
        rule: check.rule.clone(),
        severity: check.severity,
        cluster: Some(cluster.name.clone()),
        node: node.map(|n| n.name.clone()),
        message: fill(&check.message, cluster, node, detail),
        remedy: fill(&check.remedy, cluster, node, detail),
    }
}

/// A condition judged in three ways: it holds (`Ok(true)`), it does not (`Ok(false)`), or
/// it cannot be judged because a fact it reads is missing (`Err(the fact's name)`). A test
/// that asks whether a fact is `missing` judges its absence; any other test of an absent fact
/// leaves the outcome open, unless the rest of the condition decides it (`any` with a branch
/// that holds, `all` with one that fails).
pub fn judge(c: &Condition, s: &Scope<'_>, node: Option<&Node>) -> Result<bool, String> {
    match c {
        Condition::All(cs) => {
            let mut open = None;
            for c in cs {
                match judge(c, s, node) {
                    Ok(false) => return Ok(false),
                    Ok(true) => {}
                    Err(m) => open = open.or(Some(m)),
                }
            }
            open.map_or(Ok(true), Err)
        }
        Condition::Any(cs) => {
            let mut open = None;
            for c in cs {
                match judge(c, s, node) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(m) => open = open.or(Some(m)),
                }
            }
            open.map_or(Ok(false), Err)
        }
        Condition::Not(c) => judge(c, s, node).map(|b| !b),
        Condition::Fact(t) => fact_open(t, |name| fact(s.cluster, node, name))
            .map_or_else(|| Ok(eval(c, s, node)), Err),
        Condition::ClusterFact(t) => {
            fact_open(t, |name| s.cluster.facts.get(name)).map_or_else(|| Ok(eval(c, s, node)), Err)
        }
        Condition::AnyNode(t) => {
            let mut open = None;
            for n in s
                .cluster
                .nodes
                .iter()
                .filter(|n| t.roles.is_empty() || t.roles.contains(&n.role))
            {
                match judge(&t.test, s, Some(n)) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(m) => open = open.or(Some(m)),
                }
            }
            open.map_or(Ok(false), Err)
        }
        _ => Ok(eval(c, s, node)),
    }
}

/// The fact a test needs and the site does not state (`None`: it can be judged).
fn fact_open<'a>(t: &FactTest, get: impl Fn(&str) -> Option<&'a FactValue>) -> Option<String> {
    if t.missing.is_some() {
        return None;
    }
    if get(&t.name).is_none() {
        return Some(t.name.clone());
    }
    t.lt_fact.as_ref().filter(|o| get(o).is_none()).cloned()
}

/// The finding of a check that cannot be judged because the fact it needs is not stated: one
/// per check, cluster and fact, naming the nodes (none: the cluster's own fact).
fn unknown(check: &Check, cluster: &Cluster, nodes: &[&Node], fact_name: &str) -> Finding {
    let mut key = format!("{}/{}", check.id, cluster.name);
    if let [n] = nodes {
        key.push('/');
        key.push_str(&n.name);
    }
    key.push_str("/unknown/");
    key.push_str(fact_name);
    let names = || {
        nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let whose = match nodes {
        [] => format!("cluster `{}`", cluster.name),
        [n] => format!("node `{}`", n.name),
        _ => format!("{} nodes of `{}` ({})", nodes.len(), cluster.name, names()),
    };
    Finding {
        key,
        rule: check.rule.clone(),
        severity: ferry_model::Severity::Info,
        cluster: Some(cluster.name.clone()),
        node: match nodes {
            [n] => Some(n.name.clone()),
            _ => None,
        },
        message: format!(
            "unknown: cannot judge check `{}` ({}) on {whose} without fact `{fact_name}`",
            check.id, check.rule
        ),
        remedy: format!(
            "state `{fact_name}` in the site (the node's `facts`, or the cluster's); `ferry profiles show` says what it holds"
        ),
    }
}

/// The booked window has already closed at `now`: an inhibitor per cluster, under ferry's own
/// rule `FERRY-WINDOW` (no run can start in it, whatever the vendor's rules). Pure: the caller
/// gives the moment.
pub fn window_closed_findings(site: &Site, now: i64) -> Vec<Finding> {
    let Some(w) = &site.window else {
        return Vec::new();
    };
    let end = w.start_epoch_s + (w.hours * 3600.0).round() as i64;
    if now < end {
        return Vec::new();
    }
    let span = format!(
        "{} to {}",
        crate::render::site_time(Some(w), w.start_epoch_s),
        crate::render::site_time(Some(w), end)
    );
    site.clusters
        .iter()
        .map(|cluster| Finding {
            key: format!("window/{}/closed", cluster.name),
            rule: crate::WINDOW_CLOSED_RULE.to_string(),
            severity: ferry_model::Severity::Inhibitor,
            cluster: Some(cluster.name.clone()),
            node: None,
            message: format!(
                "the booked window ({span}) has already closed (it is now {}): no run can start in it",
                crate::render::site_time(Some(w), now)
            ),
            remedy: "book a new window in the site (`[site] window`), then plan again".into(),
        })
        .collect()
}

/// Runs one cluster's checks. `graph` gives step estimates for `step_within_fact`; `site_facts`
/// what the site's clusters share.
pub fn run(
    site: &Site,
    site_facts: &SiteFacts<'_>,
    cluster: &Cluster,
    profile: &Profile,
    scope: &Scope<'_>,
    graph: &Graph,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for check in &profile.checks {
        if !check.when.as_ref().is_none_or(|c| eval(c, scope, None)) {
            continue;
        }
        match &check.test {
            CheckTest::Node(cond) => {
                let mut open: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
                for n in &cluster.nodes {
                    // What the condition says as written stands (a profile may mean a
                    // missing fact, under `not`, as a finding); only its silence is
                    // questioned.
                    if eval(cond, scope, Some(n)) {
                        out.push(finding(check, cluster, Some(n), "", ""));
                    } else if let Err(missing) = judge(cond, scope, Some(n)) {
                        open.entry(missing).or_default().push(n);
                    }
                }
                for (missing, nodes) in open {
                    out.push(unknown(check, cluster, &nodes, &missing));
                }
            }
            CheckTest::Cluster(cond) => {
                if eval(cond, scope, None) {
                    out.push(finding(check, cluster, None, "", ""));
                } else if let Err(missing) = judge(cond, scope, None) {
                    out.push(unknown(check, cluster, &[], &missing));
                }
            }
            CheckTest::VersionsMatch {
                roles,
                numbers,
                with_roles,
            } => {
                let same = |a: &VendorVersion, b: &VendorVersion| match numbers {
                    Some(k) => a.same_prefix(b, *k),
                    None => a == b,
                };
                let nodes: Vec<&Node> = cluster
                    .nodes
                    .iter()
                    .filter(|n| roles.contains(&n.role))
                    .collect();
                if with_roles.is_empty() {
                    if let Some(first) = nodes.first() {
                        if nodes.iter().any(|n| !same(&n.target, &first.target)) {
                            let detail = nodes
                                .iter()
                                .map(|n| format!("{} ends on {}", n.name, n.target))
                                .collect::<Vec<_>>()
                                .join(", ");
                            out.push(finding(check, cluster, None, &detail, ""));
                        }
                    }
                } else {
                    let others: Vec<&Node> = cluster
                        .nodes
                        .iter()
                        .filter(|n| with_roles.contains(&n.role))
                        .collect();
                    for n in &nodes {
                        if let Some(o) = others.iter().find(|o| !same(&n.target, &o.target)) {
                            let detail = format!(
                                "{} ends on {}, {} ends on {}",
                                n.name, n.target, o.name, o.target
                            );
                            out.push(finding(check, cluster, Some(n), &detail, ""));
                        }
                    }
                }
            }
            CheckTest::UniqueAcrossSite { fact: name } => {
                let shared = site_facts.shared(name);
                for (value, clusters) in shared.get(cluster.name.as_str()).into_iter().flatten() {
                    let detail = format!(
                        "`{value}` is used in clusters {}",
                        clusters.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                    out.push(finding(check, cluster, None, &detail, value));
                }
            }
            CheckTest::ClampedParameters { fact: name } => {
                for n in std::iter::once(None).chain(cluster.nodes.iter().map(Some)) {
                    let v = match n {
                        Some(n) => n.facts.get(name),
                        None => cluster.facts.get(name),
                    };
                    for p in v.and_then(|v| v.as_list()).unwrap_or(&[]) {
                        if let Some((pname, detail)) = clamp_change(p) {
                            out.push(finding(check, cluster, n, &detail, &pname));
                        }
                    }
                }
            }
            CheckTest::StepWithinFact { step, fact: name } => {
                for inst in graph.insts.iter().filter(|i| &i.step.action == step) {
                    let node = inst.step.node.as_deref().and_then(|n| cluster.node(n));
                    let Some(limit) = fact(cluster, node, name).and_then(|v| v.as_f64()) else {
                        out.push(unknown(check, cluster, &Vec::from_iter(node), name));
                        continue;
                    };
                    if inst.step.duration_s as f64 > limit {
                        let detail = format!(
                            "`{}` is estimated at {} s, longer than {name} = {limit} s",
                            inst.step.title, inst.step.duration_s
                        );
                        out.push(finding(check, cluster, node, &detail, ""));
                    }
                }
            }
            // Needs the schedule: see `window_findings`.
            CheckTest::FitsWindow {} => {}
            CheckTest::FactsMatch { fact: name, roles } => {
                let nodes: Vec<&Node> = cluster
                    .nodes
                    .iter()
                    .filter(|n| roles.contains(&n.role))
                    .collect();
                let values: Vec<Option<&FactValue>> =
                    nodes.iter().map(|n| n.facts.get(name)).collect();
                if nodes.len() > 1 && values.iter().any(|v| v.is_none() || *v != values[0]) {
                    let detail = nodes
                        .iter()
                        .zip(&values)
                        .map(|(n, v)| match v {
                            Some(v) => format!("{} has {name} = {v}", n.name),
                            None => format!("{} has no {name}", n.name),
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    out.push(finding(check, cluster, None, &detail, ""));
                }
            }
            CheckTest::MaxAge {
                fact: name,
                hours,
                roles,
            } => {
                for n in cluster
                    .nodes
                    .iter()
                    .filter(|n| roles.is_empty() || roles.contains(&n.role))
                {
                    let detail = match (fact(cluster, Some(n), name), &site.window) {
                        (None, _) => format!("no `{name}` is recorded"),
                        (Some(v), Some(w)) => {
                            match v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
                                Some(ts) => {
                                    let age_h = (w.start_epoch_s - ts.as_second()) as f64 / 3600.0;
                                    if age_h <= *hours && age_h >= 0.0 {
                                        continue;
                                    }
                                    format!("`{name}` = {v} is {age_h:.1} hours before the window start")
                                }
                                None => format!("`{name}` = {v} is not a date-time"),
                            }
                        }
                        (Some(_), None) => {
                            format!(
                                "the site has no window, so the age of `{name}` cannot be checked"
                            )
                        }
                    };
                    out.push(finding(check, cluster, Some(n), &detail, ""));
                }
            }
        }
    }
    out
}

/// What a service parameter becomes after the upgrade, when it changes: its name and a
/// description of the change.
pub fn clamp_change(p: &FactValue) -> Option<(String, String)> {
    ferry_model::fact::migrate_parameter(p).map(|c| (c.name, c.text))
}

/// `fits_window` checks: the cluster's scheduled window against the site's booked window.
pub fn window_findings(
    site: &Site,
    cluster: &Cluster,
    profile: &Profile,
    scope: &Scope<'_>,
    makespan_s: u64,
) -> Vec<Finding> {
    let Some(w) = &site.window else {
        return Vec::new();
    };
    let booked = (w.hours * 3600.0).round() as u64;
    profile
        .checks
        .iter()
        .filter(|c| matches!(c.test, CheckTest::FitsWindow {}))
        .filter(|c| c.when.as_ref().is_none_or(|cond| eval(cond, scope, None)))
        .filter(|_| makespan_s > booked)
        .map(|c| {
            let detail = format!(
                "the plan needs {}h{:02}m, the site books {}h{:02}m",
                makespan_s / 3600,
                (makespan_s / 60) % 60,
                booked / 3600,
                (booked / 60) % 60
            );
            finding(c, cluster, None, &detail, "")
        })
        .collect()
}
