//! The scheduler: list scheduling of the step graph under its edges, concurrency limits and
//! capacity limits, longest remaining chain first. Also the two yardsticks a schedule is
//! judged by: the lower bound no schedule can beat, and the one-at-a-time total.
//!
//! Step lengths are at most `MAX_STEP_S` (the loaders' ranges and the planner's cap), so sums
//! stay far from `u64::MAX`; they saturate all the same rather than wrap.

use crate::graph::{Graph, LimitGroup};
use ferry_model::Phase;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// Errors the graph can have that make it unschedulable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("the rules form a cycle through steps {steps:?} (rules {rules:?}): no order can keep them all")]
    Cycle {
        steps: Vec<String>,
        rules: Vec<String>,
    },
    #[error("step `{to}` ({to_phase} phase) waits for step `{from}` of the later {from_phase} phase ({rule})")]
    PhaseInversion {
        from_phase: &'static str,
        to_phase: &'static str,
        from: String,
        to: String,
        rule: String,
    },
}

/// Predecessor and successor lists without duplicate edges.
pub struct Adjacency {
    pub preds: Vec<Vec<usize>>,
    pub succs: Vec<Vec<usize>>,
}

pub fn adjacency(g: &Graph) -> Adjacency {
    let n = g.insts.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (f, t, _, _) in &g.edges {
        preds[*t].push(*f);
        succs[*f].push(*t);
    }
    for list in preds.iter_mut().chain(succs.iter_mut()) {
        list.sort_unstable();
        list.dedup();
    }
    Adjacency { preds, succs }
}

/// What scheduling and bounding share: the adjacency and a topological order.
pub struct Prepared {
    pub adj: Adjacency,
    pub order: Vec<usize>,
}

/// Checks the graph (phases, cycles) and orders it once for `schedule_prepared` and `lower_bound_prepared`.
pub fn prepare(g: &Graph) -> Result<Prepared, ScheduleError> {
    check_phases(g)?;
    let adj = adjacency(g);
    let order = topo_order(g, &adj)?;
    Ok(Prepared { adj, order })
}

/// A topological order (smallest index first among ready steps), or the cycle.
pub fn topo_order(g: &Graph, adj: &Adjacency) -> Result<Vec<usize>, ScheduleError> {
    let n = g.insts.len();
    let mut indeg: Vec<usize> = adj.preds.iter().map(|p| p.len()).collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &s in &adj.succs[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.push(Reverse(s));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    let stuck: BTreeSet<usize> = (0..n).filter(|&i| indeg[i] > 0).collect();
    let mut rules: BTreeSet<String> = BTreeSet::new();
    for (f, t, r, _) in &g.edges {
        if stuck.contains(f) && stuck.contains(t) {
            rules.insert(r.clone());
        }
    }
    Err(ScheduleError::Cycle {
        steps: stuck
            .iter()
            .take(8)
            .map(|&i| g.insts[i].step.id.clone())
            .collect(),
        rules: rules.into_iter().collect(),
    })
}

fn check_phases(g: &Graph) -> Result<(), ScheduleError> {
    for (f, t, r, _) in &g.edges {
        let (pf, pt) = (g.insts[*f].step.phase, g.insts[*t].step.phase);
        if pf > pt {
            return Err(ScheduleError::PhaseInversion {
                from_phase: pf.as_str(),
                to_phase: pt.as_str(),
                from: g.insts[*f].step.id.clone(),
                to: g.insts[*t].step.id.clone(),
                rule: r.clone(),
            });
        }
    }
    Ok(())
}

/// Longest chain of durations from each step to the end of its phase (the step included).
fn tails(g: &Graph, adj: &Adjacency, order: &[usize]) -> Vec<u64> {
    let mut tail = vec![0u64; g.insts.len()];
    for &i in order.iter().rev() {
        let phase = g.insts[i].step.phase;
        let best = adj.succs[i]
            .iter()
            .filter(|&&s| g.insts[s].step.phase == phase)
            .map(|&s| tail[s])
            .max()
            .unwrap_or(0);
        tail[i] = best.saturating_add(g.insts[i].step.duration_s);
    }
    tail
}

/// What one node puts on a partition of a capacity group now: its running members, and its
/// load held there after a member of the group's `hold.from` started.
#[derive(Debug, Clone, Default)]
struct NodeLoad {
    running: usize,
    held: bool,
    weight: f64,
}

impl NodeLoad {
    fn present(&self) -> bool {
        self.running > 0 || self.held
    }
}

fn node_of(g: &Graph, i: usize) -> &str {
    g.insts[i].step.node.as_deref().unwrap_or_default()
}

struct LimitState<'a> {
    limit: &'a LimitGroup,
    running: usize,
    /// Per partition, per node: what the node puts there now.
    load: BTreeMap<String, BTreeMap<String, NodeLoad>>,
}

impl LimitState<'_> {
    fn holds(&self) -> bool {
        self.limit
            .capacity
            .as_ref()
            .is_some_and(|c| c.hold.is_some())
    }

    fn admits(&self, g: &Graph, i: usize) -> bool {
        if let Some(m) = self.limit.max_concurrent {
            if self.running >= m as usize {
                return false;
            }
        }
        if let Some(c) = &self.limit.capacity {
            if let Some((part, w)) = c.weight.get(&i) {
                let node = node_of(g, i);
                let loads = self.load.get(part);
                let here = loads
                    .and_then(|m| m.get(node))
                    .is_some_and(NodeLoad::present);
                let (count, load) = loads
                    .into_iter()
                    .flatten()
                    .filter(|(n, l)| n.as_str() != node && l.present())
                    .fold((0, 0.0), |(c, s), (_, l)| (c + 1, s + l.weight));
                let base = c.base.get(part).copied().unwrap_or(0.0);
                // A node whose load is there already adds nothing; a step that exceeds the
                // capacity alone still runs, alone in its partition.
                if !here && count > 0 && load + w + base > c.max {
                    return false;
                }
            }
        }
        true
    }

    fn take(&mut self, g: &Graph, i: usize, start: bool) {
        if start {
            self.running += 1;
        } else {
            self.running -= 1;
        }
        if let Some(c) = &self.limit.capacity {
            if let Some((part, w)) = c.weight.get(&i) {
                let held = *w > 0.0 && c.hold.as_ref().is_some_and(|h| h.from.contains(&i));
                let entry = self
                    .load
                    .entry(part.clone())
                    .or_default()
                    .entry(node_of(g, i).to_string())
                    .or_default();
                entry.weight = *w;
                if start {
                    entry.running += 1;
                    entry.held |= held;
                } else {
                    entry.running -= 1;
                }
            }
        }
    }

    /// Step `i` of the group's `hold.until` ended: the load its node held comes back off its
    /// partition. The partition, when a load was held.
    fn release(&mut self, g: &Graph, i: usize) -> Option<String> {
        let node = node_of(g, i);
        self.load.iter_mut().find_map(|(part, nodes)| {
            let l = nodes.get_mut(node).filter(|l| l.held)?;
            l.held = false;
            Some(part.clone())
        })
    }
}

/// A schedule: every step's start, and the ordering edges it adds where a step waited for a
/// load held by a capacity group to come back off its partition (rule and note of the group).
#[derive(Debug, Clone, Default)]
pub struct Scheduled {
    pub start: Vec<u64>,
    pub edges: Vec<(usize, usize, String, String)>,
}

/// Start times for every step. Prepare-phase steps are timed from the start of preparation,
/// staging steps from the start of staging, window steps from the start of the window.
pub fn schedule(g: &Graph) -> Result<Vec<u64>, ScheduleError> {
    Ok(schedule_prepared(g, &prepare(g)?))
}

/// `schedule` on a graph already prepared.
pub fn schedule_prepared(g: &Graph, prep: &Prepared) -> Vec<u64> {
    schedule_holding(g, prep).start
}

/// The schedule of a prepared graph, with the edges that carry its held loads: a step that
/// waited until a load held on its partition came back off it follows the step that took the
/// load back, so that whoever carries the plan out keeps the same order. When nothing runs and
/// every ready step waits for held loads that only later steps take back, the first of them
/// starts anyway (the plan then reports the partition over its limit).
pub fn schedule_holding(g: &Graph, prep: &Prepared) -> Scheduled {
    let (adj, order) = (&prep.adj, &prep.order);
    let tail = tails(g, adj, order);
    let n = g.insts.len();
    let mut member_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut until_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (li, l) in g.limits.iter().enumerate() {
        for &m in &l.members {
            member_of[m].push(li);
        }
        if let Some(h) = l.capacity.as_ref().and_then(|c| c.hold.as_ref()) {
            for &u in &h.until {
                until_of[u].push(li);
            }
        }
    }
    let mut start = vec![0u64; n];
    let mut edges = Vec::new();
    for phase in [Phase::Prepare, Phase::Staging, Phase::Window] {
        let in_phase: Vec<usize> = (0..n).filter(|&i| g.insts[i].step.phase == phase).collect();
        let mut waiting: Vec<usize> = vec![0; n];
        for &i in &in_phase {
            waiting[i] = adj.preds[i]
                .iter()
                .filter(|&&p| g.insts[p].step.phase == phase)
                .count();
        }
        let mut states: Vec<LimitState> = g
            .limits
            .iter()
            .map(|l| LimitState {
                limit: l,
                running: 0,
                load: BTreeMap::new(),
            })
            .collect();
        // Ready steps ordered by longest tail first, then by index.
        let mut ready: BTreeSet<(Reverse<u64>, usize)> = in_phase
            .iter()
            .filter(|&&i| waiting[i] == 0)
            .map(|&i| (Reverse(tail[i]), i))
            .collect();
        let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        // Since when a ready step waits for a held load; the loads taken back: (time, step, limit, partition).
        let mut blocked_since: BTreeMap<usize, u64> = BTreeMap::new();
        let mut releases: Vec<(u64, usize, usize, String)> = Vec::new();
        let mut now = 0u64;
        let mut done = 0usize;
        while done < in_phase.len() {
            let mut started = Vec::new();
            let mut launch =
                |i: usize,
                 states: &mut Vec<LimitState>,
                 running: &mut BinaryHeap<Reverse<(u64, usize)>>| {
                    for &l in &member_of[i] {
                        states[l].take(g, i, true);
                    }
                    start[i] = now;
                    running.push(Reverse((now.saturating_add(g.insts[i].step.duration_s), i)));
                };
            for &(key, i) in ready.iter() {
                let refused: Vec<usize> = member_of[i]
                    .iter()
                    .copied()
                    .filter(|&l| !states[l].admits(g, i))
                    .collect();
                if refused.is_empty() {
                    launch(i, &mut states, &mut running);
                    started.push((key, i));
                } else if refused.iter().any(|&l| states[l].holds()) {
                    blocked_since.entry(i).or_insert(now);
                }
            }
            if started.is_empty() && running.is_empty() {
                // Every ready step waits for loads held by steps that come later: the first
                // starts anyway.
                if let Some(&(key, i)) = ready.iter().next() {
                    launch(i, &mut states, &mut running);
                    started.push((key, i));
                }
            }
            for (key, i) in started {
                ready.remove(&(key, i));
                if let Some(since) = blocked_since.remove(&i) {
                    edges.extend(hold_edges(g, &member_of[i], i, since, now, &releases));
                }
            }
            let Some(Reverse((t, _))) = running.peek().copied() else {
                // Nothing runs and nothing can start: only possible with an empty phase.
                break;
            };
            now = t;
            while let Some(Reverse((t, i))) = running.peek().copied() {
                if t != now {
                    break;
                }
                running.pop();
                done += 1;
                for &l in &member_of[i] {
                    states[l].take(g, i, false);
                }
                for &l in &until_of[i] {
                    if let Some(part) = states[l].release(g, i) {
                        releases.push((now, i, l, part));
                    }
                }
                for &s in &adj.succs[i] {
                    if g.insts[s].step.phase == phase {
                        waiting[s] -= 1;
                        if waiting[s] == 0 {
                            ready.insert((Reverse(tail[s]), s));
                        }
                    }
                }
            }
        }
    }
    Scheduled { start, edges }
}

/// The edges from every step that took a held load back off the partition of step `i`
/// (in a group `i` belongs to) while `i` waited, from `since` to `now`, to `i`.
fn hold_edges(
    g: &Graph,
    groups: &[usize],
    i: usize,
    since: u64,
    now: u64,
    releases: &[(u64, usize, usize, String)],
) -> Vec<(usize, usize, String, String)> {
    let mut out = Vec::new();
    for &l in groups {
        let limit = &g.limits[l];
        let Some(c) = &limit.capacity else { continue };
        let Some((part, w)) = c.weight.get(&i) else {
            continue;
        };
        for (t, s, rl, rpart) in releases {
            if *rl != l
                || rpart != part
                || *t <= since
                || *t > now
                || node_of(g, *s) == node_of(g, i)
            {
                continue;
            }
            let what = if c.what.is_empty() { "load" } else { &c.what };
            let note = format!(
                "the {what} of {} are back off {part} (its `{}` ended) before the {w} {what} of {} go there: together they would exceed {}. {}",
                node_of(g, *s),
                g.insts[*s].step.action,
                node_of(g, i),
                c.max,
                limit.note
            );
            out.push((*s, i, limit.rule.clone(), note.trim_end().to_string()));
        }
    }
    out
}

/// No schedule keeping the rules is shorter than this, for the given phase: the longer of the
/// longest chain of dependent steps and, for every concurrency group, its total work divided
/// by its width. Computed from the graph alone, independently of `schedule`.
pub fn lower_bound(g: &Graph, phase: Phase) -> Result<u64, ScheduleError> {
    Ok(lower_bound_prepared(g, &prepare(g)?, phase))
}

/// `lower_bound` on a graph already prepared.
pub fn lower_bound_prepared(g: &Graph, prep: &Prepared, phase: Phase) -> u64 {
    let (adj, order) = (&prep.adj, &prep.order);
    let mut finish = vec![0u64; g.insts.len()];
    let mut chain = 0;
    for &i in order {
        if g.insts[i].step.phase != phase {
            continue;
        }
        let ready = adj.preds[i]
            .iter()
            .filter(|&&p| g.insts[p].step.phase == phase)
            .map(|&p| finish[p])
            .max()
            .unwrap_or(0);
        finish[i] = ready.saturating_add(g.insts[i].step.duration_s);
        chain = chain.max(finish[i]);
    }
    let groups = g
        .limits
        .iter()
        .filter_map(|l| {
            let width = l.max_concurrent? as u64;
            let work: u64 = l
                .members
                .iter()
                .filter(|&&m| g.insts[m].step.phase == phase)
                .map(|&m| g.insts[m].step.duration_s)
                .fold(0u64, u64::saturating_add);
            Some(work.div_ceil(width))
        })
        .max()
        .unwrap_or(0);
    chain.max(groups)
}

/// Every step of the phase one at a time: the sum of their durations.
pub fn sequential(g: &Graph, phase: Phase) -> u64 {
    g.insts
        .iter()
        .filter(|i| i.step.phase == phase)
        .map(|i| i.step.duration_s)
        .fold(0, u64::saturating_add)
}
