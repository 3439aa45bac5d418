//! Data collection: each data source feeds the collecting servers over links; an interval in
//! which, at some moment, no server collected a source's data is an interval lost for it.
//! A server with a survivable second source keeps collecting from it when its main link fails,
//! and never from both at once: the log says when it moves to the survivable source and back.
//! The figures are kept per source: intervals lost and the time no server collected it.

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

/// Server `vi` collects from its survivable source now: its main link failed, it has one, and
/// it collects.
fn on_survivable(w: &World, ci: usize, vi: usize) -> bool {
    let Some(col) = &w.clusters[ci].collector else {
        return false;
    };
    let n = &w.clusters[ci].nodes[col.servers[vi]];
    col.dual_ip[vi] && n.link_failed && (0..col.sources.len()).any(|s| collecting(w, ci, s, vi))
}

/// After a change: sources that nobody collects now mark their interval as lost; servers that
/// move to or from their survivable source say so.
pub(crate) fn settle(w: &mut World, ci: usize) {
    let Some(col) = &w.clusters[ci].collector else {
        return;
    };
    let n = col.sources.len();
    let gaps: Vec<bool> = (0..n).map(|s| !anyone(w, ci, s)).collect();
    let survivable: Vec<bool> = (0..col.servers.len())
        .map(|vi| on_survivable(w, ci, vi))
        .collect();
    let mut moved = Vec::new();
    if let Some(col) = &mut w.clusters[ci].collector {
        for (g, now) in col.gap.iter_mut().zip(gaps) {
            *g |= now;
        }
        col.survivable.resize(survivable.len(), false);
        for (vi, now) in survivable.into_iter().enumerate() {
            if col.survivable[vi] != now {
                col.survivable[vi] = now;
                moved.push((col.servers[vi], now));
            }
        }
    }
    let rule = w
        .profile(ci)
        .twin
        .collector
        .as_ref()
        .and_then(|c| c.dual_source_rule.clone())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    for (v, now) in moved {
        let name = w.clusters[ci].nodes[v].name.clone();
        let (code, text) = if now {
            ("survivable-source", format!("{name} lost its main link and collects from its survivable source instead, never from both{rule}"))
        } else {
            (
                "main-source",
                format!("{name} no longer collects from its survivable source{rule}"),
            )
        };
        w.note(ci, Some(v), code, text);
    }
}

/// Interval boundaries crossed between `from` (exclusive) and `to` (inclusive).
pub(crate) fn boundaries(interval_s: i64, from: i64, to: i64) -> i64 {
    if interval_s <= 0 || to <= from {
        return 0;
    }
    to.div_euclid(interval_s) - from.div_euclid(interval_s)
}

/// Accounts the intervals that ended between `from` and `to`, and the time no server collected
/// each source, with the state as it was.
pub(crate) fn account(w: &mut World, ci: usize, from: i64, to: i64) {
    let Some(col) = &w.clusters[ci].collector else {
        return;
    };
    let crossed = boundaries(col.interval_s, from, to);
    let n = col.sources.len();
    let now_gap: Vec<bool> = (0..n).map(|s| !anyone(w, ci, s)).collect();
    let c = &mut w.clusters[ci];
    let col = c.collector.as_mut().expect("checked");
    for (s, now) in now_gap.iter().enumerate() {
        if *now && to > from {
            *c.acc
                .source_s_uncollected
                .entry(col.sources[s].clone())
                .or_default() += (to - from) as f64;
        }
    }
    if crossed == 0 {
        return;
    }
    for (s, (gap, now)) in col.gap.iter_mut().zip(now_gap).enumerate() {
        let mut lost = u64::from(*gap);
        // Every further interval passed entirely in the present state.
        if crossed > 1 && now {
            lost += (crossed - 1) as u64;
        }
        c.acc.intervals_lost += lost;
        *c.acc
            .source_intervals_lost
            .entry(col.sources[s].clone())
            .or_default() += lost;
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
