//! Capacity limits read on a site: on which partition each node's load lands, and the
//! partitions that cannot carry the loads of all their nodes at once. The planner and the
//! auditor both read them, so that an order giving way to a limit is judged alike.

use crate::condition::fact;
use crate::profile::{Capacity, LimitRule, OrderRule};
use crate::Cluster;

/// One partition of a capacity limit (the server that takes the loads) and what may land on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: String,
    /// The load it carries of its own (the named node's, with `include_named_node`).
    pub base: f64,
    /// (node, load) of every upgrading node of the limit's roles whose load lands here.
    pub loads: Vec<(String, f64)>,
}

impl Partition {
    /// Its own load and every node's at once.
    pub fn total(&self) -> f64 {
        self.base + self.loads.iter().map(|(_, w)| w).sum::<f64>()
    }
}

/// The partitions of `capacity` over the upgrading nodes of `roles` (every role when empty)
/// that have a load (their `weight_fact` above zero) and a partition, in site order.
pub fn partitions(capacity: &Capacity, roles: &[String], cluster: &Cluster) -> Vec<Partition> {
    let mut out: Vec<Partition> = Vec::new();
    for n in cluster
        .nodes
        .iter()
        .filter(|n| n.upgrading() && (roles.is_empty() || roles.contains(&n.role)))
    {
        let weight = fact(cluster, Some(n), &capacity.weight_fact)
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        if weight <= 0.0 {
            continue;
        }
        let name = match &capacity.per_fact {
            Some(f) => match fact(cluster, Some(n), f) {
                Some(v) => v.to_string(),
                None => continue,
            },
            None => String::new(),
        };
        match out.iter_mut().find(|p| p.name == name) {
            Some(p) => p.loads.push((n.name.clone(), weight)),
            None => {
                let base = if capacity.include_named_node {
                    cluster
                        .node(&name)
                        .and_then(|m| m.facts.get(&capacity.weight_fact))
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0)
                } else {
                    0.0
                };
                out.push(Partition {
                    name,
                    base,
                    loads: vec![(n.name.clone(), weight)],
                });
            }
        }
    }
    out
}

/// The partitions on which `order` gives way to its `yields_to` limit: those of the limits of
/// that rule (`applies` says which limits hold here) that cannot carry every load at once,
/// with more than one node on them. Empty when the order does not give way.
pub fn yielding(
    order: &OrderRule,
    limits: &[LimitRule],
    cluster: &Cluster,
    applies: impl Fn(&LimitRule) -> bool,
) -> Vec<(Partition, f64)> {
    let Some(y) = &order.yields_to else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for l in limits.iter().filter(|l| l.rule == y.rule && applies(l)) {
        let Some(c) = &l.capacity else { continue };
        for p in partitions(c, &l.steps.roles, cluster) {
            if p.loads.len() > 1 && p.total() > c.max {
                out.push((p, c.max));
            }
        }
    }
    out
}

/// Whether `order`'s edge from a step of node `before` to a step of node `then` gives way:
/// different nodes, and `before`'s load lands on a partition in `yielding`.
pub fn gives_way(yielding: &[(Partition, f64)], before: &str, then: &str) -> bool {
    before != then
        && yielding
            .iter()
            .any(|(p, _)| p.loads.iter().any(|(n, _)| n == before))
}
