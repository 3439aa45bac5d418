//! Counts over a cluster's nodes that the twin reads at every event (the impact accounting's
//! mixed versions and configuration at risk, a replication gate's "every node in state 2"),
//! kept up to date as one node's versions or replication change instead of counted again over
//! every node: on a cluster of thousands of nodes a count per event grew with the square of
//! the nodes.

use crate::world::World;
use std::collections::HashMap;

/// What one node adds to its cluster's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NodeTally {
    /// A node to upgrade (of the profile's `version_roles`, its target not its original) that
    /// still runs its original version.
    on_original: bool,
    /// A node to upgrade that runs another version than its original.
    moved: bool,
    /// A node holding the configuration (`config_master`) with a newer version installed, not
    /// yet active.
    at_risk: bool,
    /// An existing node with a replication state other than 2 (good).
    repl_unsettled: bool,
}

/// The counts of one cluster (not saved with the world: built when the world is built or
/// loaded; until then the readers count over the nodes). Compares equal to any other, so that
/// a world loaded from JSON equals the world that was saved.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tallies {
    built: bool,
    on_original: usize,
    moved: usize,
    at_risk: usize,
    /// Per role: existing nodes whose replication is not good.
    repl_unsettled: HashMap<String, usize>,
}

impl PartialEq for Tallies {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Tallies {
    /// The counts are built.
    pub(crate) fn built(&self) -> bool {
        self.built
    }

    /// Some nodes to upgrade run their original version and some another: `None` when the
    /// counts are not built.
    pub(crate) fn mixed(&self) -> Option<bool> {
        self.built.then_some(self.on_original > 0 && self.moved > 0)
    }

    /// A node holding the configuration has a newer version installed, not yet active.
    pub(crate) fn at_risk(&self) -> Option<bool> {
        self.built.then_some(self.at_risk > 0)
    }

    /// Every existing node of `roles` has a good replication state.
    pub(crate) fn replication_good(&self, roles: &[String]) -> Option<bool> {
        self.built.then(|| {
            roles
                .iter()
                .all(|r| self.repl_unsettled.get(r).is_none_or(|&k| k == 0))
        })
    }

    fn add(&mut self, t: NodeTally, role: &str) {
        self.on_original += usize::from(t.on_original);
        self.moved += usize::from(t.moved);
        self.at_risk += usize::from(t.at_risk);
        if t.repl_unsettled {
            *self.repl_unsettled.entry(role.to_string()).or_default() += 1;
        }
    }

    fn remove(&mut self, t: NodeTally, role: &str) {
        self.on_original -= usize::from(t.on_original);
        self.moved -= usize::from(t.moved);
        self.at_risk -= usize::from(t.at_risk);
        if t.repl_unsettled {
            if let Some(k) = self.repl_unsettled.get_mut(role) {
                *k -= 1;
            }
        }
    }
}

/// What node `ni` of cluster `ci` adds to the counts now.
pub(crate) fn of_node(w: &World, ci: usize, ni: usize) -> NodeTally {
    let profile = w.profile(ci);
    let n = &w.clusters[ci].nodes[ni];
    let version_roles = &profile.profile.version_roles;
    let upgraded = n.exists
        && (version_roles.is_empty() || version_roles.contains(&n.role))
        && n.original != n.target;
    NodeTally {
        on_original: upgraded && n.active == n.original,
        moved: upgraded && n.active != n.original,
        at_risk: n.exists
            && profile.twin.config_master.contains(&n.role)
            && n.inactive.as_ref().is_some_and(|v| *v > n.active),
        repl_unsettled: n.exists && n.repl.values().any(|&s| s != 2),
    }
}

/// Counts cluster `ci` over its nodes (a world built or loaded).
pub(crate) fn build(w: &mut World, ci: usize) {
    let mut t = Tallies {
        built: true,
        ..Tallies::default()
    };
    for ni in 0..w.clusters[ci].nodes.len() {
        t.add(of_node(w, ci, ni), &w.clusters[ci].nodes[ni].role);
    }
    w.clusters[ci].tallies = t;
}

/// Node `ni` changed; `before` is what it added to the counts before the change.
pub(crate) fn changed(w: &mut World, ci: usize, ni: usize, before: NodeTally) {
    if !w.clusters[ci].tallies.built {
        return;
    }
    let after = of_node(w, ci, ni);
    if after == before {
        return;
    }
    let c = &mut w.clusters[ci];
    let role = &c.nodes[ni].role;
    c.tallies.remove(before, role);
    c.tallies.add(after, role);
}
