//! Device redundancy read on a site: the groups of devices a profile's `[[twin.devices]]`
//! declares, the servers each group registers to in order, what each server may carry, and
//! where every group registers while some servers do not serve. The planner (the batches of a
//! `[[procedure.batch]]` rule) and the twin (where devices register) both read it, so that a
//! plan and its rehearsal agree on who backs up whom.
//!
//! Groups come from a cluster table when the profile names one (`groups_fact`, a CUCM site's
//! CM groups: `{ name, servers = [...], devices = N }`), else from each server's own devices
//! (`fact`) and its backups (`backup_fact`, one name or a list in order). Devices whose server
//! states no backup fall back to the least loaded other serving server of the spec's roles.

use crate::condition::fact;
use crate::twin::DeviceSpec;
use crate::{Cluster, FactValue};

/// Devices that register to the same servers in the same order.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceGroup {
    /// The group's own name (a CM group's), or its home server's.
    pub name: String,
    /// Node names in the order the devices register to them; the first is home.
    pub servers: Vec<String>,
    /// No backup is stated: with none of `servers` serving, the devices register to the least
    /// loaded other serving server of the spec's roles.
    pub any_peer: bool,
    pub count: f64,
}

/// The key of a group table that lists its servers.
pub const SERVERS_KEY: &str = "servers";

/// The device groups of `spec` on `cluster`, in the order the site states them (a table's rows,
/// else its nodes). Rows or servers the site cannot mean (no servers, an unknown node, a
/// negative count) are left out: loading the site reports them.
pub fn groups(spec: &DeviceSpec, cluster: &Cluster) -> Vec<DeviceGroup> {
    if let Some(rows) = spec
        .groups_fact
        .as_ref()
        .and_then(|f| cluster.facts.get(f))
        .and_then(FactValue::as_list)
    {
        return rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| table_group(spec, cluster, i, row))
            .collect();
    }
    cluster
        .nodes
        .iter()
        .filter(|n| spec.roles.contains(&n.role))
        .filter_map(|n| {
            let count = n.facts.get(&spec.fact).and_then(FactValue::as_f64)?;
            if count.is_nan() || count <= 0.0 {
                return None;
            }
            let stated = spec.backup_fact.as_ref().and_then(|f| n.facts.get(f));
            let mut servers = vec![n.name.clone()];
            for b in backups_of(stated) {
                if cluster.node(&b).is_some() && !servers.contains(&b) {
                    servers.push(b);
                }
            }
            Some(DeviceGroup {
                name: n.name.clone(),
                any_peer: servers.len() == 1,
                servers,
                count,
            })
        })
        .collect()
}

fn backups_of(v: Option<&FactValue>) -> Vec<String> {
    match v {
        Some(FactValue::String(s)) => vec![s.clone()],
        Some(FactValue::List(l)) => l
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn table_group(
    spec: &DeviceSpec,
    cluster: &Cluster,
    i: usize,
    row: &FactValue,
) -> Option<DeviceGroup> {
    let t = row.as_table()?;
    let count = t.get(&spec.fact).and_then(FactValue::as_f64)?;
    if count.is_nan() || count < 0.0 {
        return None;
    }
    let mut servers: Vec<String> = Vec::new();
    for s in t.get(SERVERS_KEY)?.as_list()? {
        let name = s.as_str()?;
        cluster.node(name)?;
        if !servers.iter().any(|x| x == name) {
            servers.push(name.to_string());
        }
    }
    if servers.is_empty() {
        return None;
    }
    let name = t
        .get("name")
        .and_then(FactValue::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("group {}", i + 1));
    Some(DeviceGroup {
        name,
        servers,
        any_peer: false,
        count,
    })
}

/// The most devices `server` may carry while it holds devices homed elsewhere: its own
/// `capacity_fact` (else the cluster's), else the spec's `capacity`. `None`: no limit.
pub fn capacity(spec: &DeviceSpec, cluster: &Cluster, server: &str) -> Option<f64> {
    spec.capacity_fact
        .as_ref()
        .and_then(|f| fact(cluster, cluster.node(server), f))
        .and_then(FactValue::as_f64)
        .or(spec.capacity)
}

/// Every server that may carry devices of `spec`: the nodes of its roles and every server a
/// group names, in site order.
pub fn servers(spec: &DeviceSpec, cluster: &Cluster, groups: &[DeviceGroup]) -> Vec<String> {
    cluster
        .nodes
        .iter()
        .filter(|n| {
            spec.roles.contains(&n.role) || groups.iter().any(|g| g.servers.contains(&n.name))
        })
        .map(|n| n.name.clone())
        .collect()
}

/// The redundancy of one device spec on a cluster, by index: what the planner's batches and
/// their property tests work on.
#[derive(Debug, Clone, PartialEq)]
pub struct Redundancy {
    /// What the devices are called (`phones`).
    pub what: String,
    /// Server names and capacities.
    pub servers: Vec<(String, Option<f64>)>,
    pub groups: Vec<Group>,
}

/// A device group by server index.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// Servers in order; the first is home.
    pub servers: Vec<usize>,
    /// Servers the devices fall back to, least loaded first, when none of `servers` serves.
    pub peers: Vec<usize>,
    pub count: f64,
}

/// Where every group registers while some servers are out, and what each server then carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Per group: its server, or `None` (unregistered).
    pub at: Vec<Option<usize>>,
    /// Per server: the devices registered to it.
    pub load: Vec<f64>,
}

/// What a set of servers out of service costs.
#[derive(Debug, Clone, PartialEq)]
pub enum Shortfall {
    /// A group with no serving server: its devices are unregistered.
    Unserved { group: usize },
    /// A server carrying devices homed elsewhere beyond its capacity.
    OverCapacity {
        server: usize,
        load: f64,
        capacity: f64,
    },
}

impl Redundancy {
    /// The redundancy of `spec` on `cluster`.
    pub fn of(spec: &DeviceSpec, cluster: &Cluster) -> Redundancy {
        let groups = groups(spec, cluster);
        let names = servers(spec, cluster, &groups);
        let index = |n: &str| names.iter().position(|x| x == n);
        let peers: Vec<usize> = cluster
            .nodes
            .iter()
            .filter(|n| spec.roles.contains(&n.role))
            .filter_map(|n| index(&n.name))
            .collect();
        Redundancy {
            what: spec.name.clone(),
            servers: names
                .iter()
                .map(|n| (n.clone(), capacity(spec, cluster, n)))
                .collect(),
            groups: groups
                .iter()
                .map(|g| {
                    let servers: Vec<usize> = g.servers.iter().filter_map(|s| index(s)).collect();
                    Group {
                        name: g.name.clone(),
                        peers: if g.any_peer {
                            peers
                                .iter()
                                .copied()
                                .filter(|p| !servers.contains(p))
                                .collect()
                        } else {
                            Vec::new()
                        },
                        servers,
                        count: g.count,
                    }
                })
                .collect(),
        }
    }

    /// Where the groups register while the servers `out` says do not serve: each to the first
    /// serving server of its list, else to the least loaded serving peer (ties by index), in
    /// group order.
    pub fn place(&self, out: &[bool]) -> Placement {
        let mut load = vec![0.0; self.servers.len()];
        let mut at = vec![None; self.groups.len()];
        let serving = |s: usize| !out.get(s).copied().unwrap_or(false);
        for (gi, g) in self.groups.iter().enumerate() {
            let first = g.servers.iter().copied().find(|&s| serving(s));
            let chosen = first.or_else(|| {
                g.peers
                    .iter()
                    .copied()
                    .filter(|&s| serving(s))
                    .min_by(|&a, &b| {
                        load[a]
                            .partial_cmp(&load[b])
                            .unwrap_or(std::cmp::Ordering::Equal)
                            .then(a.cmp(&b))
                    })
            });
            if let Some(s) = chosen {
                load[s] += g.count;
            }
            at[gi] = chosen;
        }
        Placement { at, load }
    }

    /// What taking the servers `out` out of service costs: groups left without a server, and
    /// servers over their capacity with devices homed elsewhere (a server carrying only its own
    /// devices is never over).
    pub fn shortfalls(&self, out: &[bool]) -> Vec<Shortfall> {
        let p = self.place(out);
        let mut v = Vec::new();
        for (gi, g) in self.groups.iter().enumerate() {
            if p.at[gi].is_none() && g.count > 0.0 {
                v.push(Shortfall::Unserved { group: gi });
            }
        }
        for (s, (_, cap)) in self.servers.iter().enumerate() {
            let Some(cap) = *cap else { continue };
            let foreign = self.groups.iter().enumerate().any(|(gi, g)| {
                p.at[gi] == Some(s) && g.servers.first() != Some(&s) && g.count > 0.0
            });
            if foreign && p.load[s] > cap + 1e-9 {
                v.push(Shortfall::OverCapacity {
                    server: s,
                    load: p.load[s],
                    capacity: cap,
                });
            }
        }
        v
    }
}
