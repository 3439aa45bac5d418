//! Figures of many rehearsals of one plan (a Monte Carlo rehearsal: one run per seed): the
//! window's median and worst, percentiles of each impact figure, and the share of runs that
//! finished inside the booked window.

use crate::impact::Impact;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One rehearsal's figures, flat.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct RunFigures {
    pub seed: u64,
    /// Every step done or skipped.
    pub completed: bool,
    pub on_target: bool,
    pub window_s: i64,
    /// The booked window held the work (`None` when the site books none).
    pub inside_window: Option<bool>,
    pub violations: usize,
    pub warnings: usize,
    /// Impact figures by name (summed over clusters).
    pub figures: BTreeMap<String, f64>,
}

/// Impact figures by name, summed over the clusters.
pub fn figures(i: &Impact) -> BTreeMap<String, f64> {
    let mut f: BTreeMap<String, f64> = BTreeMap::new();
    let mut add = |k: String, v: f64| *f.entry(k).or_default() += v;
    for c in &i.clusters {
        for (name, m) in &c.device_minutes_unregistered {
            add(format!("{name}: device-minutes unregistered"), *m);
        }
        add("mixed-version minutes".into(), c.mixed_version_minutes);
        add("calls attempted".into(), c.calls_attempted as f64);
        add("calls failed".into(), c.calls_failed as f64);
        for p in &c.pairs {
            add(
                "HA pairs: minutes without redundancy".into(),
                p.minutes_without_redundancy,
            );
            add(
                "HA pairs: minutes without an active member".into(),
                p.minutes_without_active,
            );
        }
        add(
            "read-only configuration minutes".into(),
            c.read_only_minutes,
        );
        add(
            "intervals not collected".into(),
            c.intervals_not_collected as f64,
        );
        add(
            "configuration changes lost".into(),
            c.config_changes_lost as f64,
        );
        add("user settings lost".into(), c.user_settings_lost as f64);
        add("client sessions lost".into(), c.client_sessions_lost as f64);
        add(
            "client-minutes disconnected".into(),
            c.client_minutes_disconnected,
        );
        for (name, m) in &c.dependency_minutes_broken {
            add(format!("{name}: minutes broken"), *m);
        }
        add("wrong switchovers".into(), c.wrong_switchovers as f64);
        if let Some(st) = &c.staging {
            add(
                "staging: configuration frozen minutes".into(),
                st.configuration_frozen_minutes,
            );
            add(
                "staging: configuration at-risk minutes".into(),
                st.configuration_at_risk_minutes,
            );
        }
    }
    f.retain(|k, v| *v != 0.0 || k == "mixed-version minutes");
    f
}

/// Percentiles of one figure over the runs (nearest rank).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Distribution {
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    pub mean: f64,
}

impl Distribution {
    pub fn of(values: &[f64]) -> Distribution {
        if values.is_empty() {
            return Distribution {
                min: 0.0,
                median: 0.0,
                p90: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let rank = |p: f64| {
            let k = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[k - 1]
        };
        Distribution {
            min: v[0],
            median: rank(0.5),
            p90: rank(0.9),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// The summary of a Monte Carlo rehearsal.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Summary {
    pub runs: usize,
    pub completed: usize,
    pub on_target: usize,
    /// Runs with at least one broken rule.
    pub with_violations: usize,
    pub window_s: Distribution,
    /// Share of runs that finished inside the booked window.
    pub inside_window: Option<f64>,
    /// The seed of the longest window.
    pub worst_seed: u64,
    pub figures: BTreeMap<String, Distribution>,
}

pub fn summarise(runs: &[RunFigures]) -> Summary {
    let windows: Vec<f64> = runs.iter().map(|r| r.window_s as f64).collect();
    let mut names: Vec<&String> = runs.iter().flat_map(|r| r.figures.keys()).collect();
    names.sort();
    names.dedup();
    let figures = names
        .into_iter()
        .map(|n| {
            let v: Vec<f64> = runs
                .iter()
                .map(|r| r.figures.get(n).copied().unwrap_or(0.0))
                .collect();
            (n.clone(), Distribution::of(&v))
        })
        .collect();
    let booked: Vec<bool> = runs.iter().filter_map(|r| r.inside_window).collect();
    Summary {
        runs: runs.len(),
        completed: runs.iter().filter(|r| r.completed).count(),
        on_target: runs.iter().filter(|r| r.on_target).count(),
        with_violations: runs.iter().filter(|r| r.violations > 0).count(),
        window_s: Distribution::of(&windows),
        inside_window: (!booked.is_empty())
            .then(|| booked.iter().filter(|b| **b).count() as f64 / booked.len() as f64),
        worst_seed: runs
            .iter()
            .max_by_key(|r| (r.window_s, std::cmp::Reverse(r.seed)))
            .map_or(0, |r| r.seed),
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[f64], expected: (f64, f64, f64, f64)) {
        let d = Distribution::of(values);
        assert_eq!((d.min, d.median, d.p90, d.max), expected, "{values:?}");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        check(&[], (0.0, 0.0, 0.0, 0.0));
        check(&[5.0], (5.0, 5.0, 5.0, 5.0));
        check(&[3.0, 1.0, 2.0], (1.0, 2.0, 3.0, 3.0));
        check(
            &(1..=10).map(f64::from).collect::<Vec<_>>(),
            (1.0, 5.0, 9.0, 10.0),
        );
    }
}
