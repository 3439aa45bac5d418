//! Batches that keep every device served (a `[[procedure.batch]]` rule, the `balanced`
//! strategy): the nodes the rule takes out of service, split into the fewest batches such
//! that, while one batch is out and every other server serves, every device group keeps a
//! serving server and no server carries more than its capacity. The batches also follow the
//! order the other rules put between the nodes' blocks: a node whose block comes before
//! another's is not in a later batch. Nodes the rules order both ways (their blocks interleave)
//! are left to those rules, out of the batches.
//!
//! What cannot be avoided is tolerated and reported: a group whose devices lose every server
//! when a single node (or a set the rules tie together) is out, and a node whose absence alone
//! overloads a server, which then goes in a batch of its own. The search is exact (the fewest
//! batches) within a budget of work, counted, never timed; past it the batches are a first fit.

use ferry_model::redundancy::{Redundancy, Shortfall};
use std::collections::BTreeSet;

/// What the batches are found for.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The nodes to batch, by name.
    pub nodes: &'a [String],
    /// The redundancy of every device spec the batches keep served.
    pub redundancy: &'a [Redundancy],
    /// `(a, b)`: node `a`'s block comes before node `b`'s, so `a`'s batch is not after `b`'s.
    pub before: &'a [(usize, usize)],
}

/// The batches, and what no batching avoids.
#[derive(Debug, Clone, PartialEq)]
pub struct Batching {
    /// Node indices per batch, in the order the batches go.
    pub batches: Vec<Vec<usize>>,
    /// What the smallest sets of nodes that can go out cost anyway: (redundancy, shortfall,
    /// the nodes whose absence causes it).
    pub unavoidable: Vec<(usize, Shortfall, Vec<usize>)>,
    /// Whether the batches are the fewest; false when the budget ran out (a first fit).
    pub fewest: bool,
    /// Sets of nodes the rules order both ways, left out of the batches.
    pub left_out: Vec<Vec<usize>>,
}

/// Work the exact search may do before it settles for a first fit, and the first fit before
/// it puts every further unit in a batch of its own: units of one group, server or order
/// looked at.
pub const BUDGET: usize = 4_000_000;

struct Search<'a> {
    input: Input<'a>,
    /// Sets of nodes that go out together (the rules order them both ways), in node order.
    units: Vec<Vec<usize>>,
    /// `(a, b)` between units: `a`'s batch is not after `b`'s (acyclic).
    before: Vec<(usize, usize)>,
    /// Per redundancy, per node: its server index there.
    server_of: Vec<Vec<Option<usize>>>,
    /// Groups a single unit's absence leaves unserved anyway: (redundancy, group).
    tolerated: BTreeSet<(usize, usize)>,
    /// Units that go alone.
    alone: Vec<bool>,
    /// Whether every redundancy places by list only (no fallback to the least loaded peer):
    /// then a server's load only grows with the servers out, and a batch being filled that is
    /// over capacity can be given up at once.
    monotone: bool,
    /// Work done so far.
    spent: usize,
}

impl Search<'_> {
    fn out(&self, r: usize, units: &[usize]) -> Vec<bool> {
        let mut out = vec![false; self.input.redundancy[r].servers.len()];
        for &u in units {
            for &m in &self.units[u] {
                if let Some(s) = self.server_of[r][m] {
                    out[s] = true;
                }
            }
        }
        out
    }

    /// Whether `units` may be out together; `partial` judges a batch still being filled (only
    /// what more members cannot mend).
    fn feasible(&mut self, units: &[usize], partial: bool) -> bool {
        self.spent += 1 + units.len();
        if units.len() <= 1 {
            return true;
        }
        if units.iter().any(|&u| self.alone[u]) {
            return false;
        }
        for r in 0..self.input.redundancy.len() {
            let red = &self.input.redundancy[r];
            self.spent += red.groups.len() + red.servers.len();
            let out = self.out(r, units);
            for s in red.shortfalls(&out) {
                match s {
                    Shortfall::Unserved { group } if self.tolerated.contains(&(r, group)) => {}
                    Shortfall::Unserved { .. } => return false,
                    Shortfall::OverCapacity { .. } if partial && !self.monotone => {}
                    Shortfall::OverCapacity { .. } => return false,
                }
            }
        }
        true
    }

    /// Whether the batches of `assign` (unit -> batch) can be ordered.
    fn orderable(&mut self, assign: &[Option<usize>], count: usize) -> bool {
        self.spent += 1 + self.before.len() + count * count;
        order_batches(&self.before, assign, count).is_some()
    }

    /// Assigns `order[pos..]` to at most `k` batches; `assign` and `members` hold the rest.
    fn dfs(
        &mut self,
        order: &[usize],
        pos: usize,
        k: usize,
        assign: &mut Vec<Option<usize>>,
        members: &mut Vec<Vec<usize>>,
    ) -> bool {
        if self.spent > BUDGET {
            return false;
        }
        let Some(&u) = order.get(pos) else {
            return (0..members.len()).all(|b| {
                let m = members[b].clone();
                self.feasible(&m, false)
            }) && self.orderable(assign, members.len());
        };
        let existing = if self.alone[u] { 0 } else { members.len() };
        for b in 0..existing {
            members[b].push(u);
            assign[u] = Some(b);
            let ok = {
                let m = members[b].clone();
                self.feasible(&m, true)
            } && self.orderable(assign, members.len());
            if ok && self.dfs(order, pos + 1, k, assign, members) {
                return true;
            }
            members[b].pop();
            assign[u] = None;
        }
        if members.len() < k {
            members.push(vec![u]);
            assign[u] = Some(members.len() - 1);
            if self.orderable(assign, members.len()) && self.dfs(order, pos + 1, k, assign, members)
            {
                return true;
            }
            members.pop();
            assign[u] = None;
        }
        false
    }

    /// Each unit, in order, into the first batch it may join, else a batch of its own.
    fn first_fit(&mut self, order: &[usize]) -> (Vec<Option<usize>>, usize) {
        let mut assign = vec![None; self.units.len()];
        let mut members: Vec<Vec<usize>> = Vec::new();
        for &u in order {
            let mut placed = false;
            if !self.alone[u] && self.spent <= BUDGET {
                for b in 0..members.len() {
                    let mut trial = members[b].clone();
                    trial.push(u);
                    assign[u] = Some(b);
                    if self.feasible(&trial, false) && self.orderable(&assign, members.len()) {
                        members[b] = trial;
                        placed = true;
                        break;
                    }
                    assign[u] = None;
                }
            }
            if !placed {
                members.push(vec![u]);
                assign[u] = Some(members.len() - 1);
            }
        }
        (assign, members.len())
    }
}

/// The batches of `assign` in the order they can go: a batch goes once every batch holding a
/// unit that comes before one of its own has gone; ties by the batch's first unit. `None` when
/// they cannot be ordered.
fn order_batches(
    before: &[(usize, usize)],
    assign: &[Option<usize>],
    count: usize,
) -> Option<Vec<usize>> {
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    for &(a, b) in before {
        if let (Some(x), Some(y)) = (assign[a], assign[b]) {
            if x != y {
                edges.insert((x, y));
            }
        }
    }
    let mut indeg = vec![0usize; count];
    for &(_, y) in &edges {
        indeg[y] += 1;
    }
    let first: Vec<usize> = (0..count)
        .map(|b| {
            assign
                .iter()
                .position(|a| *a == Some(b))
                .unwrap_or(usize::MAX)
        })
        .collect();
    let mut done = vec![false; count];
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let next = (0..count)
            .filter(|&b| !done[b] && indeg[b] == 0)
            .min_by_key(|&b| first[b])?;
        done[next] = true;
        out.push(next);
        for &(x, y) in &edges {
            if x == next {
                indeg[y] -= 1;
            }
        }
    }
    Some(out)
}

/// The units: nodes that reach each other through `before` (the rules order them both ways)
/// go out together. Returns the units (each in node order, units by their first node) and the
/// order between units.
fn units(n: usize, before: &[(usize, usize)]) -> (Vec<Vec<usize>>, Vec<(usize, usize)>) {
    let mut succ = vec![Vec::new(); n];
    for &(a, b) in before {
        if a < n && b < n && a != b {
            succ[a].push(b);
        }
    }
    let reach: Vec<Vec<bool>> = (0..n)
        .map(|a| {
            let mut seen = vec![false; n];
            let mut stack = vec![a];
            while let Some(x) = stack.pop() {
                for &y in &succ[x] {
                    if !seen[y] {
                        seen[y] = true;
                        stack.push(y);
                    }
                }
            }
            seen
        })
        .collect();
    let mut unit_of = vec![usize::MAX; n];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for a in 0..n {
        if unit_of[a] != usize::MAX {
            continue;
        }
        let members: Vec<usize> = (a..n)
            .filter(|&b| b == a || (reach[a][b] && reach[b][a]))
            .collect();
        for &m in &members {
            unit_of[m] = out.len();
        }
        out.push(members);
    }
    let mut between = BTreeSet::new();
    for &(a, b) in before {
        if a < n && b < n && unit_of[a] != unit_of[b] {
            between.insert((unit_of[a], unit_of[b]));
        }
    }
    (out, between.into_iter().collect())
}

/// A topological order of `count` units through `before` (smallest index first).
fn unit_order(count: usize, before: &[(usize, usize)]) -> Vec<usize> {
    let mut indeg = vec![0usize; count];
    for &(_, b) in before {
        indeg[b] += 1;
    }
    let mut ready: BTreeSet<usize> = (0..count).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::with_capacity(count);
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for &(a, b) in before {
            if a == i {
                indeg[b] -= 1;
                if indeg[b] == 0 {
                    ready.insert(b);
                }
            }
        }
    }
    out
}

/// The fewest batches of `input.nodes` that keep every device group served within capacity.
pub fn batches(input: Input<'_>) -> Batching {
    let n = input.nodes.len();
    let server_of: Vec<Vec<Option<usize>>> = input
        .redundancy
        .iter()
        .map(|r| {
            input
                .nodes
                .iter()
                .map(|name| r.servers.iter().position(|(s, _)| s == name))
                .collect()
        })
        .collect();
    let (units, before) = units(n, input.before);
    let mut search = Search {
        input,
        alone: vec![false; units.len()],
        units,
        before,
        server_of,
        tolerated: BTreeSet::new(),
        monotone: input
            .redundancy
            .iter()
            .all(|r| r.groups.iter().all(|g| g.peers.is_empty())),
        spent: 0,
    };
    // What each unit alone costs: tolerated from then on, or it goes alone.
    let mut unavoidable = Vec::new();
    for u in 0..search.units.len() {
        for r in 0..input.redundancy.len() {
            let out = search.out(r, &[u]);
            for s in input.redundancy[r].shortfalls(&out) {
                match &s {
                    Shortfall::Unserved { group } => {
                        search.tolerated.insert((r, *group));
                    }
                    Shortfall::OverCapacity { .. } => search.alone[u] = true,
                }
                unavoidable.push((r, s, search.units[u].clone()));
            }
        }
    }
    let count = search.units.len();
    // Interleaved nodes stay out of the batches (and of the search).
    let left_out: Vec<Vec<usize>> = search
        .units
        .iter()
        .filter(|u| u.len() > 1)
        .cloned()
        .collect();
    let order: Vec<usize> = unit_order(count, &search.before)
        .into_iter()
        .filter(|&u| search.units[u].len() == 1)
        .collect();
    let mut found: Option<(Vec<Option<usize>>, usize)> = None;
    for k in 1..=order.len() {
        let mut assign = vec![None; count];
        let mut members = Vec::new();
        if search.dfs(&order, 0, k, &mut assign, &mut members) {
            found = Some((assign, members.len()));
            break;
        }
        if search.spent > BUDGET {
            break;
        }
    }
    let fewest = found.is_some() || order.is_empty();
    let (assign, batch_count) = found.unwrap_or_else(|| {
        search.spent = 0;
        search.first_fit(&order)
    });
    let sequence = order_batches(&search.before, &assign, batch_count)
        .unwrap_or_else(|| (0..batch_count).collect());
    let batches = sequence
        .into_iter()
        .map(|b| {
            let mut nodes: Vec<usize> = (0..count)
                .filter(|&u| assign[u] == Some(b))
                .flat_map(|u| search.units[u].iter().copied())
                .collect();
            nodes.sort_unstable();
            nodes
        })
        .filter(|b: &Vec<usize>| !b.is_empty())
        .collect();
    unavoidable.retain(|(_, _, set)| set.len() == 1);
    Batching {
        batches,
        unavoidable,
        fewest,
        left_out,
    }
}
