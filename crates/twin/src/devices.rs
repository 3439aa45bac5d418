//! Devices registered to servers: at home while the home server provides service, otherwise on
//! the first serving server of their group's backups in order (a CM group), or, with no backup
//! stated, on the least loaded serving peer; within the capacity of the server that takes them
//! over (a server taking back its own devices is not limited). A move leaves the devices
//! unregistered for a while: seconds to fail over, and minutes to fetch new loads when the
//! server they move to runs a version they have not run.

use crate::world::{Event, World};
use ferry_model::twin::DeviceSpec;

/// The capacity of server `at` for `spec`'s devices (its fact, else the spec's number).
fn capacity_at(w: &World, ci: usize, spec: &DeviceSpec, at: usize) -> Option<f64> {
    let name = &w.clusters[ci].nodes[at].name;
    ferry_model::redundancy::capacity(spec, &w.site.clusters[ci], name)
}

/// Devices registered to server `at`, not counting group `skip` (0, not -0, when none).
fn load(w: &World, ci: usize, at: usize, skip: usize) -> f64 {
    w.clusters[ci]
        .devices
        .iter()
        .enumerate()
        .filter(|(i, d)| *i != skip && d.at == Some(at))
        .fold(0.0, |sum, (_, d)| sum + (d.count - d.rejected))
}

/// Devices registered to server `at` or on their way to it, not counting group `skip`: what
/// a group choosing the least loaded server weighs, so that groups that fail over at once
/// spread over the servers rather than all pick the one that was least loaded before.
fn expected_load(w: &World, ci: usize, at: usize, skip: usize) -> f64 {
    let moving_in: f64 = w.clusters[ci]
        .devices
        .iter()
        .enumerate()
        .filter(|(i, d)| *i != skip && d.moving.is_some_and(|(to, _)| to == at))
        .map(|(_, d)| d.count)
        .sum();
    load(w, ci, at, skip) + moving_in
}

/// Where group `di` should be registered now.
fn desired(w: &World, ci: usize, di: usize) -> Option<usize> {
    let d = &w.clusters[ci].devices[di];
    if !d.pinned && w.provides(ci, d.home) {
        return Some(d.home);
    }
    let spec = &w.profile(ci).twin.devices[d.spec];
    if !d.backups.is_empty() || !d.any_peer {
        return d.backups.iter().copied().find(|&b| w.provides(ci, b));
    }
    // A world saved before groups were kept: the backup as the node states it.
    if let Some(f) = &spec.backup_fact {
        let backup = w.clusters[ci].nodes[d.home]
            .facts
            .get(f)
            .and_then(|v| v.as_str())
            .and_then(|name| w.node_index(ci, name));
        if let Some(b) = backup {
            return w.provides(ci, b).then_some(b);
        }
    }
    (0..w.clusters[ci].nodes.len())
        .filter(|&m| {
            m != d.home && spec.roles.contains(&w.clusters[ci].nodes[m].role) && w.provides(ci, m)
        })
        .min_by(|&a, &b| {
            expected_load(w, ci, a, di)
                .partial_cmp(&expected_load(w, ci, b, di))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        })
}

/// Moves every group whose place changed; re-admits devices rejected for capacity when room
/// has been made.
pub(crate) fn route(w: &mut World, ci: usize) {
    for di in 0..w.clusters[ci].devices.len() {
        let d = Placed::of(&w.clusters[ci].devices[di]);
        let home_ok = !d.pinned && w.provides(ci, d.home);
        if !home_ok {
            // Away from home: stay where they are (or are going) while that server serves.
            let place = d.moving.map(|m| m.0).or(d.at);
            if let Some(x) = place {
                if x != d.home && w.provides(ci, x) {
                    if d.moving.is_none() && d.rejected > 0.0 {
                        readmit(w, ci, di);
                    }
                    continue;
                }
            }
        }
        let want = desired(w, ci, di);
        if d.moving.is_none() && d.at == want && want.is_some() {
            if d.rejected > 0.0 {
                readmit(w, ci, di);
            }
            continue;
        }
        if let (Some((to, _)), Some(want)) = (d.moving, want) {
            if to == want {
                continue;
            }
        }
        match want {
            None => {
                let keep = d.at.is_some_and(|x| w.provides(ci, x));
                let dm = &mut w.clusters[ci].devices[di];
                if !keep {
                    dm.at = None;
                }
                dm.moving = None;
                dm.gen += 1;
            }
            Some(to) => {
                let spec = w.profile(ci).twin.devices[d.spec].clone();
                let fetch = w.clusters[ci].nodes[to].active != w.clusters[ci].devices[di].loads;
                let delay = if fetch && spec.reregister_min[1] > 0.0 {
                    (w.draw(spec.reregister_min) * 60.0).round() as i64
                } else {
                    w.draw(spec.failover_s).round() as i64
                };
                let dm = &mut w.clusters[ci].devices[di];
                dm.at = None;
                dm.rejected = 0.0;
                dm.gen += 1;
                dm.moving = Some((to, w.now + delay));
                let gen = dm.gen;
                w.schedule(
                    w.now + delay,
                    Event::DevicesArrive {
                        cluster: ci,
                        home: di,
                        gen,
                    },
                );
            }
        }
    }
}

/// Where a device group is, without its loads: what `route` decides from.
struct Placed {
    spec: usize,
    home: usize,
    at: Option<usize>,
    moving: Option<(usize, i64)>,
    pinned: bool,
    rejected: f64,
}

impl Placed {
    fn of(d: &crate::world::DeviceHome) -> Placed {
        Placed {
            spec: d.spec,
            home: d.home,
            at: d.at,
            moving: d.moving,
            pinned: d.pinned,
            rejected: d.rejected,
        }
    }
}

fn readmit(w: &mut World, ci: usize, di: usize) {
    let spec = w.profile(ci).twin.devices[w.clusters[ci].devices[di].spec].clone();
    let d = &w.clusters[ci].devices[di];
    let Some(at) = d.at else { return };
    // The capacity limits a server taking over others' devices, not one taking back its own.
    let cap = match capacity_at(w, ci, &spec, at) {
        Some(cap) if at != d.home => cap,
        _ => {
            w.clusters[ci].devices[di].rejected = 0.0;
            return;
        }
    };
    let room = (cap - load(w, ci, at, di)).max(0.0);
    let rejected = (d.count - room).max(0.0);
    w.clusters[ci].devices[di].rejected = rejected;
}

pub(crate) fn arrive(w: &mut World, ci: usize, di: usize, gen: u64) {
    let d = w.clusters[ci].devices[di].clone();
    if d.gen != gen {
        return;
    }
    let Some((to, _)) = d.moving else { return };
    w.touch(ci);
    let spec = w.profile(ci).twin.devices[d.spec].clone();
    let mut rejected = 0.0;
    // The capacity limits a server taking over others' devices (a backup), not a server
    // taking back its own.
    if let Some(cap) = capacity_at(w, ci, &spec, to).filter(|_| to != d.home) {
        let already = load(w, ci, to, di);
        if already + d.count > cap {
            rejected = (already + d.count - cap).min(d.count);
            let name = w.clusters[ci].nodes[to].name.clone();
            let home = w.clusters[ci].nodes[d.home].name.clone();
            let rule = spec.capacity_rule.clone().unwrap_or(spec.rule.clone());
            w.incident_of(
                ci,
                Some(to),
                &rule,
                spec.capacity_severity,
                format!(
                    "{} {} of {home} fail over to {name}, which already holds {}: {} cannot register (capacity {})",
                    d.count, spec.name, already, rejected, cap
                ),
            );
        }
    }
    let loads = w.clusters[ci].nodes[to].active.clone();
    let dm = &mut w.clusters[ci].devices[di];
    dm.at = Some(to);
    dm.moving = None;
    dm.rejected = rejected;
    dm.loads = loads;
    w.settle(ci);
}

/// The node's own devices are registered to it.
pub(crate) fn home(w: &World, ci: usize, ni: usize) -> bool {
    w.clusters[ci]
        .devices
        .iter()
        .filter(|d| d.home == ni)
        .all(|d| d.at == Some(ni) && d.moving.is_none() && d.rejected == 0.0)
}

/// A `registered` gate on the node starts: its devices may come home.
pub(crate) fn release(w: &mut World, ci: usize, ni: usize) {
    for d in &mut w.clusters[ci].devices {
        if d.home == ni {
            d.pinned = false;
        }
    }
}
