//! Service impact: figures integrated over virtual time from the world's state, per cluster, and
//! the report a rehearsal prints.

use crate::world::World;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Running totals of one cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulated {
    /// Per device group name: device-seconds unregistered.
    pub device_s_unregistered: BTreeMap<String, f64>,
    pub mixed_s: f64,
    pub calls_attempted: f64,
    pub calls_failed: f64,
    /// Per pair (name and members): seconds without redundancy, and without an active member.
    pub pair_s_unprotected: BTreeMap<String, f64>,
    pub pair_s_down: BTreeMap<String, f64>,
    pub read_only_s: f64,
    pub intervals_lost: u64,
    /// Per data source: intervals lost, and seconds in which no server collected it.
    #[serde(default)]
    pub source_intervals_lost: BTreeMap<String, u64>,
    #[serde(default)]
    pub source_s_uncollected: BTreeMap<String, f64>,
    pub config_changes_made: u64,
    pub config_changes_lost: u64,
    pub config_changes_refused: u64,
    pub user_settings_lost: u64,
    pub sessions_lost: u64,
    pub client_s_disconnected: f64,
    pub dependency_s_broken: BTreeMap<String, f64>,
    pub wrong_switchovers: u64,
    /// Seconds under the configuration freeze.
    #[serde(default)]
    pub frozen_s: f64,
    /// Seconds in which a configuration change would be lost on a switch: a node that holds
    /// the configuration (`config_master`) has a newer version installed, not yet active.
    #[serde(default)]
    pub config_at_risk_s: f64,
}

fn pair_name(w: &World, ci: usize, pi: usize) -> String {
    let p = &w.clusters[ci].pairs[pi];
    let spec = &w.profile(ci).twin.ha_pairs[p.spec];
    let n = &w.clusters[ci].nodes;
    format!(
        "{} {}/{}",
        spec.name, n[p.members[0]].name, n[p.members[1]].name
    )
}

/// Integrates cluster `ci` from `from` to `to` with its present state.
pub(crate) fn account(w: &mut World, ci: usize, from: i64, to: i64) {
    let dt = (to - from) as f64;
    crate::collector::account(w, ci, from, to);
    let profile = w.profile_arc(ci);
    let spec = &profile.twin;
    let c = &w.clusters[ci];
    let mut unreg: BTreeMap<&str, f64> = BTreeMap::new();
    let mut by_version: BTreeMap<String, f64> = BTreeMap::new();
    let mut total: BTreeMap<usize, f64> = BTreeMap::new();
    for d in &c.devices {
        let name = &spec.devices[d.spec].name;
        let registered = if d.at.is_some() {
            d.count - d.rejected
        } else {
            0.0
        };
        *unreg.entry(name.as_str()).or_default() += d.count - registered;
        *total.entry(d.spec).or_default() += d.count;
        if let Some(at) = d.at {
            if spec.devices[d.spec].calls.is_some() {
                *by_version
                    .entry(c.nodes[at].active.to_string())
                    .or_default() += registered;
            }
        }
    }
    let mut calls = (0.0, 0.0);
    for (si, ds) in spec.devices.iter().enumerate() {
        let Some(cs) = &ds.calls else { continue };
        let devices = total.get(&si).copied().unwrap_or(0.0);
        if devices <= 0.0 {
            continue;
        }
        let per_hour = cs
            .per_hour_fact
            .as_ref()
            .and_then(|f| c.facts.get(f))
            .and_then(|v| v.as_f64())
            .unwrap_or(cs.per_device_hour * devices);
        let attempts = per_hour * dt / 3600.0;
        let p_ok = if cs.fail_across_versions {
            by_version
                .values()
                .map(|r| (r / devices).powi(2))
                .sum::<f64>()
        } else {
            (by_version.values().sum::<f64>() / devices).powi(2)
        };
        calls.0 += attempts;
        calls.1 += attempts * (1.0 - p_ok.clamp(0.0, 1.0));
    }
    let version_roles = &profile.profile.version_roles;
    // Mixed: of the nodes to upgrade, some still run their original version and some not.
    let counted_mixed =
        || {
            let (mut on_original, mut moved) = (false, false);
            for n in c.nodes.iter().filter(|n| {
                n.exists && (version_roles.is_empty() || version_roles.contains(&n.role))
            }) {
                if n.original == n.target {
                    continue;
                }
                if n.active == n.original {
                    on_original = true;
                } else {
                    moved = true;
                }
                if on_original && moved {
                    break;
                }
            }
            on_original && moved
        };
    // The counts kept as nodes change give what counting over the nodes gives.
    let mixed = match c.tallies.mixed() {
        Some(m) => {
            debug_assert_eq!(m, counted_mixed(), "mixed versions in {}", c.name);
            m
        }
        None => counted_mixed(),
    };
    let mut unprotected = Vec::new();
    for pi in 0..c.pairs.len() {
        let p = &c.pairs[pi];
        // A member in upgrade mode is a second primary, no one's backup.
        let both = p.formed
            && p.members
                .iter()
                .all(|&m| w.provides(ci, m) && !c.nodes[m].upgrade_mode);
        let active = p.active.is_some_and(|a| w.provides(ci, p.members[a]));
        unprotected.push((pair_name(w, ci, pi), !both, !active));
    }
    let disconnected: f64 = c
        .clients
        .iter()
        .filter(|g| g.at.is_none())
        .map(|g| g.count)
        .sum();
    let mut broken = Vec::new();
    for d in &c.dependencies {
        if !d.active {
            continue;
        }
        let ds = &spec.dependencies[d.spec];
        if c.facts.get(&ds.fact) != d.recorded.as_ref() {
            broken.push(ds.name.clone());
        }
    }
    let read_only = c.read_only;
    let frozen = c.frozen;
    let counted_at_risk = || {
        c.nodes.iter().any(|n| {
            n.exists
                && spec.config_master.contains(&n.role)
                && n.inactive.as_ref().is_some_and(|v| *v > n.active)
        })
    };
    let at_risk = match c.tallies.at_risk() {
        Some(r) => {
            debug_assert_eq!(r, counted_at_risk(), "configuration at risk in {}", c.name);
            r
        }
        None => counted_at_risk(),
    };
    let acc = &mut w.clusters[ci].acc;
    if frozen {
        acc.frozen_s += dt;
    }
    if at_risk {
        acc.config_at_risk_s += dt;
    }
    for (k, v) in unreg {
        match acc.device_s_unregistered.get_mut(k) {
            Some(s) => *s += v * dt,
            None => {
                acc.device_s_unregistered.insert(k.to_string(), v * dt);
            }
        }
    }
    if mixed {
        acc.mixed_s += dt;
    }
    acc.calls_attempted += calls.0;
    acc.calls_failed += calls.1;
    for (name, unp, down) in unprotected {
        *acc.pair_s_unprotected.entry(name.clone()).or_default() += if unp { dt } else { 0.0 };
        *acc.pair_s_down.entry(name).or_default() += if down { dt } else { 0.0 };
    }
    if read_only {
        acc.read_only_s += dt;
    }
    acc.client_s_disconnected += disconnected * dt;
    for b in broken {
        *acc.dependency_s_broken.entry(b).or_default() += dt;
    }
}

/// An HA pair's figures.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct PairImpact {
    pub pair: String,
    pub minutes_without_redundancy: f64,
    pub minutes_without_active: f64,
}

/// One data source's collection figures.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct SourceImpact {
    pub source: String,
    /// Intervals in which, at some moment, no server collected the source's data.
    pub intervals_not_collected: u64,
    /// How long no server collected it.
    pub minutes_not_collected: f64,
}

/// What running work ahead of the window cost a cluster (a run that staged some).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct StagingImpact {
    /// Steps carried out ahead of the window.
    pub staged_steps: u64,
    /// How long the configuration freeze lasted (from the staging period to its release).
    pub configuration_frozen_minutes: f64,
    /// How long a configuration change would have been lost on a switch: from an install on a
    /// node holding the configuration to its switch.
    pub configuration_at_risk_minutes: f64,
}

/// One cluster's service impact over a run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct ClusterImpact {
    pub cluster: String,
    /// From the first window step's start to the last step's end.
    pub window_s: i64,
    /// Per device group (phones, users): device-minutes unregistered.
    pub device_minutes_unregistered: BTreeMap<String, f64>,
    pub mixed_version_minutes: f64,
    pub calls_attempted: u64,
    pub calls_failed: u64,
    pub pairs: Vec<PairImpact>,
    pub read_only_minutes: f64,
    pub intervals_not_collected: u64,
    /// The same per data source, with the time no server collected it.
    pub sources: Vec<SourceImpact>,
    pub config_changes_made: u64,
    pub config_changes_lost: u64,
    pub config_changes_refused: u64,
    pub user_settings_lost: u64,
    pub client_sessions_lost: u64,
    pub client_minutes_disconnected: f64,
    pub dependency_minutes_broken: BTreeMap<String, f64>,
    pub wrong_switchovers: u64,
    /// Every node runs the version it should end on.
    pub on_target: bool,
    /// Nodes that do not, with what they run and what they should.
    pub off_target: Vec<String>,
    /// What the work run ahead of the window cost, when the run staged some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<StagingImpact>,
}

/// A whole run's service impact.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Impact {
    /// From the first window step's start to the last step's end, over every cluster.
    pub window_s: i64,
    pub clusters: Vec<ClusterImpact>,
}

fn minutes(s: f64) -> f64 {
    (s / 60.0 * 10.0).round() / 10.0
}

/// The impact of the run so far. `expect_original`: the nodes should be back on the versions
/// they had (after a rollback) instead of on their targets.
pub fn impact(w: &World, expect_original: bool) -> Impact {
    let mut clusters = Vec::new();
    let mut first: Option<i64> = None;
    let mut last: Option<i64> = None;
    for (ci, c) in w.clusters.iter().enumerate() {
        let a = &c.acc;
        let mut off = Vec::new();
        for n in &c.nodes {
            let want = if expect_original {
                &n.original
            } else {
                &n.target
            };
            if !n.exists && !expect_original {
                off.push(format!("{} does not exist (should run {want})", n.name));
            } else if n.exists && &n.active != want {
                off.push(format!("{} runs {} (should run {want})", n.name, n.active));
            }
        }
        let window_s = match (c.first_window_start, c.last_end) {
            (Some(a), Some(b)) => (b - a).max(0),
            _ => 0,
        };
        if let Some(s) = c.first_window_start {
            first = Some(first.map_or(s, |f| f.min(s)));
        }
        if let Some(e) = c.last_end {
            last = Some(last.map_or(e, |l| l.max(e)));
        }
        let _ = ci;
        clusters.push(ClusterImpact {
            cluster: c.name.clone(),
            window_s,
            device_minutes_unregistered: a
                .device_s_unregistered
                .iter()
                .map(|(k, v)| (k.clone(), minutes(*v)))
                .collect(),
            mixed_version_minutes: minutes(a.mixed_s),
            calls_attempted: a.calls_attempted.round() as u64,
            calls_failed: a.calls_failed.round() as u64,
            pairs: a
                .pair_s_unprotected
                .iter()
                .map(|(k, v)| PairImpact {
                    pair: k.clone(),
                    minutes_without_redundancy: minutes(*v),
                    minutes_without_active: minutes(a.pair_s_down.get(k).copied().unwrap_or(0.0)),
                })
                .collect(),
            read_only_minutes: minutes(a.read_only_s),
            intervals_not_collected: a.intervals_lost,
            sources: c
                .collector
                .iter()
                .flat_map(|col| col.sources.iter())
                .map(|s| SourceImpact {
                    source: s.clone(),
                    intervals_not_collected: a.source_intervals_lost.get(s).copied().unwrap_or(0),
                    minutes_not_collected: minutes(
                        a.source_s_uncollected.get(s).copied().unwrap_or(0.0),
                    ),
                })
                .collect(),
            config_changes_made: a.config_changes_made,
            config_changes_lost: a.config_changes_lost,
            config_changes_refused: a.config_changes_refused,
            user_settings_lost: a.user_settings_lost,
            client_sessions_lost: a.sessions_lost,
            client_minutes_disconnected: minutes(a.client_s_disconnected),
            dependency_minutes_broken: a
                .dependency_s_broken
                .iter()
                .map(|(k, v)| (k.clone(), minutes(*v)))
                .collect(),
            wrong_switchovers: a.wrong_switchovers,
            on_target: off.is_empty(),
            off_target: off,
            staging: (c.staged_steps > 0).then(|| StagingImpact {
                staged_steps: c.staged_steps,
                configuration_frozen_minutes: minutes(a.frozen_s),
                configuration_at_risk_minutes: minutes(a.config_at_risk_s),
            }),
        });
    }
    Impact {
        window_s: match (first, last) {
            (Some(a), Some(b)) => (b - a).max(0),
            _ => 0,
        },
        clusters,
    }
}
