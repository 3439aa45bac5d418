//! Data collection: each data source feeds the collecting servers over links; an interval in
//! which, at some moment, no server collected a source's data is an interval lost for it.
//! A server with a survivable second source keeps collecting from it when its main link fails,
//! and never from both at once.

use crate::world::World;

/// Server `vi` (index into the collector's servers) collects source `s` now.
pub(crate) fn collecting(w: &World, ci: usize, s: usize, vi: usize) -> bool {
    let Some(col) = &w.clusters[ci].collector else {
        return false;
    };
    let v = col.servers[vi];
    let n = &w.clusters[ci].nodes[v];
    col.links[s][vi] && w.provides(ci, v) && (!n.link_failed || col.dual_ip[vi])
}

fn anyone(w: &World, ci: usize, s: usize) -> bool {
    let Some(col) = &w.clusters[ci].collector else {
        return false;
    };
    (0..col.servers.len()).any(|vi| collecting(w, ci, s, vi))
}

/// After a change: sources that nobody collects now mark their interval as lost.
pub(crate) fn settle(w: &mut World, ci: usize) {
    let Some(col) = &w.clusters[ci].collector else {
        return;
    };
    let n = col.sources.len();
    let gaps: Vec<bool> = (0..n).map(|s| !anyone(w, ci, s)).collect();
    if let Some(col) = &mut w.clusters[ci].collector {
        for (g, now) in col.gap.iter_mut().zip(gaps) {
            *g |= now;
        }
    }
}

/// Interval boundaries crossed between `from` (exclusive) and `to` (inclusive).
pub(crate) fn boundaries(interval_s: i64, from: i64, to: i64) -> i64 {
    if interval_s <= 0 || to <= from {
        return 0;
    }
    to.div_euclid(interval_s) - from.div_euclid(interval_s)
}

/// Accounts the intervals that ended between `from` and `to`, with the state as it was.
pub(crate) fn account(w: &mut World, ci: usize, from: i64, to: i64) {
    let Some(col) = &w.clusters[ci].collector else {
        return;
    };
    let crossed = boundaries(col.interval_s, from, to);
    if crossed == 0 {
        return;
    }
    let n = col.sources.len();
    let now_gap: Vec<bool> = (0..n).map(|s| !anyone(w, ci, s)).collect();
    let c = &mut w.clusters[ci];
    let col = c.collector.as_mut().expect("checked");
    for (gap, now) in col.gap.iter_mut().zip(now_gap) {
        let mut lost = u64::from(*gap);
        // Every further interval passed entirely in the present state.
        if crossed > 1 && now {
            lost += (crossed - 1) as u64;
        }
        c.acc.intervals_lost += lost;
        *gap = now;
    }
}

/// The server collects every source.
pub(crate) fn collects_all(w: &World, ci: usize, ni: usize) -> bool {
    let Some(col) = &w.clusters[ci].collector else {
        return false;
    };
    let Some(vi) = col.servers.iter().position(|&v| v == ni) else {
        return false;
    };
    (0..col.sources.len()).all(|s| collecting(w, ci, s, vi))
}

/// The end of the first interval after `t`, plus the archive's own minute.
pub(crate) fn next_archive(w: &World, ci: usize, t: i64) -> Option<i64> {
    let col = w.clusters[ci].collector.as_ref()?;
    let i = col.interval_s;
    Some((t.div_euclid(i) + 1) * i + 60)
}
