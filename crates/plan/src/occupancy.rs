//! What each partition of a capacity group with held loads carries along a schedule (a
//! secondary and the devices of its primaries), and the findings it gives: a partition over
//! its limit with the loads of several nodes at once, or carrying them longer than the limit
//! allows without a break.

use crate::graph::{CapacityGroup, Graph, HoldGroup, LimitGroup};
use crate::render::{clock, duration};
use ferry_model::plan::{Occupancy, OccupancySpan};
use ferry_model::{Finding, Phase, Site};
use std::collections::BTreeMap;

/// Per node of a partition: its load and the intervals in which it is there.
type NodeLoads<'a> = BTreeMap<&'a str, (f64, Vec<(u64, u64)>)>;

/// The occupancy of every named partition of every capacity group that holds loads, given
/// each step's start, and the findings it gives. Window steps only: the prepare phase comes
/// before the window, on a clock of its own. A load never taken back stays to the window's end.
pub fn occupancy(g: &Graph, start: &[u64], site: &Site) -> (Vec<Occupancy>, Vec<Finding>) {
    let end = |i: usize| start[i].saturating_add(g.insts[i].step.duration_s);
    let in_window = |i: usize| g.insts[i].step.phase == Phase::Window;
    let window_end = (0..g.insts.len())
        .filter(|&i| in_window(i))
        .map(end)
        .max()
        .unwrap_or(0);
    // Per (cluster, rule, partition): the group that says how to judge it (the first; a path
    // through intermediate versions has one per leg, alike) and its nodes' loads.
    type Key<'a> = (&'a str, &'a str, &'a str);
    let mut parts: BTreeMap<Key, (&LimitGroup, NodeLoads)> = BTreeMap::new();
    for l in &g.limits {
        let Some(c) = &l.capacity else { continue };
        let Some(h) = &c.hold else { continue };
        for &m in l.members.iter().filter(|&&m| in_window(m)) {
            let Some((part, w)) = c.weight.get(&m) else {
                continue;
            };
            let step = &g.insts[m].step;
            let node = step.node.as_deref().unwrap_or_default();
            if part.is_empty() || *w <= 0.0 {
                continue;
            }
            let entry = parts
                .entry((step.cluster.as_str(), l.rule.as_str(), part.as_str()))
                .or_insert_with(|| (l, BTreeMap::new()))
                .1
                .entry(node)
                .or_insert((*w, Vec::new()));
            entry.1.push((start[m], end(m)));
            if h.from.contains(&m) {
                let back = h
                    .until
                    .iter()
                    .filter(|&&u| in_window(u) && g.insts[u].step.node.as_deref() == Some(node))
                    .map(|&u| end(u))
                    .filter(|&e| e > start[m])
                    .min()
                    .unwrap_or(window_end);
                entry.1.push((start[m], back));
            }
        }
    }
    let mut out = Vec::new();
    let mut findings = Vec::new();
    for ((cluster, rule, part), (l, nodes)) in parts {
        let Some(c) = &l.capacity else { continue };
        let Some(h) = &c.hold else { continue };
        let (mut o, over) = sweep(rule, c, h, part, &nodes);
        o.cluster = cluster.to_string();
        findings.extend(judge(site, &o, over.as_ref(), c, h, &l.note));
        out.push(o);
    }
    (out, findings)
}

/// The first moment a partition carries more than its limit with the loads of several nodes:
/// (from, to, load, the nodes and their loads).
struct Over {
    start_s: u64,
    end_s: u64,
    load: f64,
    nodes: Vec<(String, f64)>,
}

/// The findings of one partition: over its limit with several nodes' loads at once (a single
/// node's load over the limit is reported with its steps), and every span longer than the
/// limit's `max_hours`.
fn judge(
    site: &Site,
    o: &Occupancy,
    over: Option<&Over>,
    c: &CapacityGroup,
    h: &HoldGroup,
    note: &str,
) -> Vec<Finding> {
    let node = site
        .clusters
        .iter()
        .find(|x| x.name == o.cluster)
        .and_then(|x| x.node(&o.partition))
        .map(|n| n.name.clone());
    let what = if o.what.is_empty() { "load" } else { &o.what };
    let mut out = Vec::new();
    if let Some(x) = over {
        let who = x
            .nodes
            .iter()
            .map(|(n, w)| format!("{} of {n}", amount(*w)))
            .collect::<Vec<_>>()
            .join(", ");
        let own = if o.base > 0.0 {
            format!(" and {} of its own", amount(o.base))
        } else {
            String::new()
        };
        out.push(Finding {
            key: format!("capacity-peak/{}/{}", o.cluster, o.partition),
            rule: o.rule.clone(),
            severity: c.severity,
            cluster: Some(o.cluster.clone()),
            node: node.clone(),
            message: format!(
                "{} would carry {} {what} from {} to {} into the window, more than {}: {who}{own} ({note})",
                o.partition,
                amount(x.load),
                clock(x.start_s),
                clock(x.end_s),
                amount(o.max),
            ),
            remedy: format!(
                "Home some of these {what} on other servers so that {} never carries more than {} at once, or give the nodes whose {what} it takes no order that keeps them there together.",
                o.partition,
                amount(o.max)
            ),
        });
    }
    if let Some((max_s, why)) = &h.max_span {
        for s in o.spans.iter().filter(|s| s.end_s - s.start_s > *max_s) {
            out.push(Finding {
                key: format!("capacity-span/{}/{}/{}", o.cluster, o.partition, s.start_s),
                rule: o.rule.clone(),
                severity: c.severity,
                cluster: Some(o.cluster.clone()),
                node: node.clone(),
                message: format!(
                    "{} carries the {what} of {} for {} without a break, from {} to {} into the window (peak {}): longer than {} ({why}). {note}",
                    o.partition,
                    s.nodes.join(", "),
                    duration(s.end_s - s.start_s),
                    clock(s.start_s),
                    clock(s.end_s),
                    amount(s.peak),
                    duration(*max_s),
                ),
                remedy: match &h.max_span_fact {
                    Some(f) => format!(
                        "Bring these {what} back sooner (fewer of these nodes away at once), or set the cluster fact {f} to the hours the site accepts."
                    ),
                    None => format!("Bring these {what} back sooner (fewer of these nodes away at once)."),
                },
            });
        }
    }
    out
}

/// The load of one partition over time, from each node's intervals.
fn sweep(
    rule: &str,
    c: &CapacityGroup,
    h: &HoldGroup,
    part: &str,
    nodes: &NodeLoads,
) -> (Occupancy, Option<Over>) {
    let base = c.base.get(part).copied().unwrap_or(0.0);
    // (time, arrives?, node), in time order.
    let mut events: Vec<(u64, bool, &str)> = Vec::new();
    for (node, (_, intervals)) in nodes {
        for (a, b) in merged(intervals) {
            events.push((a, true, node));
            events.push((b, false, node));
        }
    }
    events.sort_by_key(|&(t, arrive, node)| (t, arrive, node));
    let mut present: Vec<&str> = Vec::new();
    let mut peak = (base, 0u64, 0u64);
    let mut spans: Vec<OccupancySpan> = Vec::new();
    let mut over: Option<Over> = None;
    let mut k = 0;
    while k < events.len() {
        let t = events[k].0;
        let was_empty = present.is_empty();
        let mut arrived = Vec::new();
        // Everything at `t` at once: a node leaving as another arrives is no break.
        while k < events.len() && events[k].0 == t {
            let (_, arrive, node) = events[k];
            if arrive {
                present.push(node);
                arrived.push(node);
            } else {
                present.retain(|n| *n != node);
            }
            k += 1;
        }
        match (was_empty, present.is_empty()) {
            (true, false) => spans.push(OccupancySpan {
                start_s: t,
                end_s: t,
                peak: base,
                nodes: Vec::new(),
            }),
            (false, true) => {
                if let Some(s) = spans.last_mut() {
                    s.end_s = t;
                }
            }
            _ => {}
        }
        if let Some(s) = spans.last_mut().filter(|_| !present.is_empty()) {
            for node in arrived {
                if !s.nodes.iter().any(|n| n == node) {
                    s.nodes.push(node.to_string());
                }
            }
        }
        let load = base + present.iter().map(|n| nodes[n].0).sum::<f64>();
        let next = events.get(k).map_or(t, |e| e.0);
        if let Some(s) = spans.last_mut() {
            s.peak = s.peak.max(load);
        }
        if load > peak.0 {
            peak = (load, t, next);
        }
        if over.is_none() && present.len() > 1 && load > c.max {
            over = Some(Over {
                start_s: t,
                end_s: next,
                load,
                nodes: present
                    .iter()
                    .map(|n| (n.to_string(), nodes[n].0))
                    .collect(),
            });
        }
    }
    let o = Occupancy {
        cluster: String::new(),
        rule: rule.to_string(),
        partition: part.to_string(),
        what: c.what.clone(),
        max: c.max,
        base,
        peak: peak.0,
        peak_start_s: peak.1,
        peak_end_s: peak.2,
        spans,
        max_span_s: h.max_span.as_ref().map(|(s, _)| *s),
    };
    (o, over)
}

/// Intervals merged where they overlap or touch.
fn merged(intervals: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = intervals.iter().copied().filter(|(a, b)| b > a).collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// A number as a person reads it: no decimals when it has none.
fn amount(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}
