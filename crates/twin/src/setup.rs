//! Builds a cluster's simulated state from the site and the profile's `[twin]` section.

use crate::impact::Accumulated;
use crate::world::{
    ClientGroup, ClusterState, CollectorState, DependencyState, DeviceHome, NodeState, PairState,
};
use ferry_model::condition::{eval, Scope};
use ferry_model::{Cluster, FactValue, Profile};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

pub(crate) fn cluster_state(
    c: &Cluster,
    profile: &Profile,
    upgrade_type: String,
    strategy: String,
    staging: bool,
    start: i64,
    _rng: &mut ChaCha8Rng,
) -> ClusterState {
    let spec = &profile.twin;
    let nodes: Vec<NodeState> = c
        .nodes
        .iter()
        .map(|n| {
            let mut repl = BTreeMap::new();
            for (g, r) in spec.replication.iter().enumerate() {
                if r.roles.contains(&n.role) {
                    let state = r
                        .state_fact
                        .as_ref()
                        .and_then(|f| n.facts.get(f))
                        .and_then(|v| v.as_f64())
                        .map(|x| x.clamp(0.0, 4.0) as u8)
                        .unwrap_or(2);
                    repl.insert(g, state);
                }
            }
            NodeState {
                name: n.name.clone(),
                role: n.role.clone(),
                original: n.version.clone(),
                target: n.target.clone(),
                active: n.version.clone(),
                inactive: None,
                backup: None,
                revert_impossible: false,
                exists: !spec.absent_roles.contains(&n.role),
                stopped: false,
                crashed: false,
                down: 0,
                agent_down: false,
                link_failed: false,
                unhealthy_fault: false,
                healthy: spec
                    .health
                    .as_ref()
                    .and_then(|h| h.healthy_fact.as_ref())
                    .and_then(|f| n.facts.get(f))
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true),
                upgrade_mode: false,
                single_user: false,
                services_pending: false,
                facts: n.facts.clone(),
                config_active: BTreeSet::new(),
                config_inactive: BTreeSet::new(),
                config_snapshot: None,
                last_start: start,
                gen: 0,
                repl,
                repl_stuck: None,
                awaiting_replication: false,
                last_logged: BTreeMap::new(),
                initialising: false,
            }
        })
        .collect();

    // Device groups as the site states them (its CM groups, or each server's own devices and
    // backups), registered at home.
    let mut devices = Vec::new();
    for (si, d) in spec.devices.iter().enumerate() {
        for g in ferry_model::redundancy::groups(d, c) {
            let index = |name: &str| c.nodes.iter().position(|n| n.name == name);
            let mut servers = g.servers.iter().filter_map(|s| index(s));
            let Some(home) = servers.next() else { continue };
            if g.count <= 0.0 {
                continue;
            }
            devices.push(DeviceHome {
                spec: si,
                home,
                count: g.count,
                backups: servers.collect(),
                any_peer: g.any_peer,
                at: Some(home),
                moving: None,
                pinned: false,
                loads: c.nodes[home].version.clone(),
                rejected: 0.0,
                gen: 0,
            });
        }
    }

    let mut pairs = Vec::new();
    for (si, h) in spec.ha_pairs.iter().enumerate() {
        if h.roles.len() != 2 {
            continue;
        }
        let firsts: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| c.nodes[i].role == h.roles[0])
            .collect();
        let seconds: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| c.nodes[i].role == h.roles[1])
            .collect();
        for (a, b) in firsts.iter().zip(&seconds) {
            let members = [*a, *b];
            let primary = match &h.primary_fact {
                Some(f) => members
                    .iter()
                    .position(|&m| {
                        c.nodes[m].facts.get(f).and_then(|v| v.as_str()) == Some("primary")
                    })
                    .unwrap_or(0),
                None => 0,
            };
            let exists = |m: usize| !spec.absent_roles.contains(&c.nodes[m].role);
            let active = if exists(members[primary]) {
                Some(primary)
            } else if exists(members[1 - primary]) {
                Some(1 - primary)
            } else {
                None
            };
            pairs.push(PairState {
                spec: si,
                members,
                active,
                formed: !h.needs_setup,
                gen: 0,
                promotion_pending: false,
                link_flagged: false,
            });
        }
    }

    let mut clients = Vec::new();
    if let Some(cs) = &spec.config_store {
        if let Some(f) = &cs.clients_fact {
            for (ni, n) in c.nodes.iter().enumerate() {
                if let Some(count) = n.facts.get(f).and_then(|v| v.as_f64()) {
                    if count > 0.0 {
                        clients.push(ClientGroup {
                            home: ni,
                            count,
                            at: Some(ni),
                            moving: None,
                            gen: 0,
                            session: None,
                        });
                    }
                }
            }
        }
    }

    let collector = spec.collector.as_ref().map(|col| {
        let sources: Vec<String> = c
            .facts
            .get(&col.sources_fact)
            .and_then(|v| v.as_list())
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| match v {
                FactValue::String(s) => Some(s.clone()),
                FactValue::Table(t) => t.get("name").map(|n| n.to_string()),
                _ => None,
            })
            .collect();
        let servers: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| col.servers.contains(&c.nodes[i].role))
            .collect();
        let links = sources
            .iter()
            .map(|_| {
                servers
                    .iter()
                    .map(|&v| col.linked_roles.contains(&c.nodes[v].role))
                    .collect()
            })
            .collect();
        let interval_min = col
            .interval_fact
            .as_ref()
            .and_then(|f| c.facts.get(f))
            .and_then(|v| v.as_f64())
            .filter(|m| *m > 0.0)
            .unwrap_or(col.interval_min);
        let dual_ip: Vec<bool> = servers
            .iter()
            .map(|&v| {
                col.dual_source_fact
                    .as_ref()
                    .and_then(|f| c.nodes[v].facts.get(f))
                    .and_then(|x| x.as_bool())
                    .unwrap_or(false)
            })
            .collect();
        CollectorState {
            gap: vec![false; sources.len()],
            sources,
            servers,
            links,
            interval_s: (interval_min * 60.0).round().max(60.0) as i64,
            survivable: vec![false; dual_ip.len()],
            dual_ip,
        }
    });

    let scope = Scope {
        cluster: c,
        profile,
        upgrade_type: Some(&upgrade_type),
        strategy: &strategy,
        leg: (0, 1),
        run: None,
        staging,
    };
    let dependencies = spec
        .dependencies
        .iter()
        .enumerate()
        .map(|(si, d)| DependencyState {
            spec: si,
            recorded: c.facts.get(&d.fact).cloned(),
            active: d.when.as_ref().is_none_or(|w| eval(w, &scope, None)),
        })
        .collect();

    ClusterState {
        name: c.name.clone(),
        profile: profile.profile.name.clone(),
        upgrade_type,
        strategy,
        staging,
        facts: c.facts.clone(),
        nodes,
        frozen: false,
        read_only: false,
        options: BTreeMap::new(),
        devices,
        pairs,
        clients,
        collector,
        dependencies,
        agents_down: BTreeMap::new(),
        hosts_declared: BTreeSet::new(),
        agent_down_gen: BTreeMap::new(),
        agent_gen: 0,
        waiting: Vec::new(),
        waiting_gates: Default::default(),
        tallies: Default::default(),
        last_logged: BTreeMap::new(),
        next_change: 0,
        acc: Accumulated::default(),
        accounted_at: start,
        first_window_start: None,
        last_end: None,
        staged_steps: 0,
    }
}
