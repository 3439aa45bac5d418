//! Replicated databases: a node that restarts sets its replication up again (state 0, then 1)
//! and reaches 2 (good) after the convergence time, when it runs the master's version; a node
//! on another version than the master is out of sync (3) when it is behind and fails (4) when
//! it is ahead. A node stuck by a fault never gets past its stuck state.

use crate::world::{Event, World};

fn master(w: &World, ci: usize, g: usize) -> Option<usize> {
    let spec = &w.profile(ci).twin.replication[g];
    w.first_of_role(ci, &spec.master, |n| {
        w.clusters[ci].nodes[n].repl.contains_key(&g)
    })
}

fn converge_s(w: &mut World, ci: usize, g: usize) -> i64 {
    let spec = w.profile(ci).twin.replication[g].clone();
    let mut minutes = w.draw(spec.converge_min);
    if let Some(pf) = &spec.per_fact {
        if let Some(x) = w.clusters[ci].facts.get(&pf.fact).and_then(|v| v.as_f64()) {
            minutes += (x.max(0.0) / pf.per).ceil() * pf.minutes;
        }
    }
    (minutes * 60.0).round() as i64
}

fn set(w: &mut World, ci: usize, ni: usize, g: usize, state: u8) {
    let before = crate::tallies::of_node(w, ci, ni);
    w.node_changed(ci, ni);
    let n = &mut w.clusters[ci].nodes[ni];
    let state = match n.repl_stuck {
        Some(s) if state == 2 => s,
        _ => state,
    };
    if n.repl.get(&g) == Some(&state) {
        return;
    }
    n.repl.insert(g, state);
    if state == 2 {
        n.awaiting_replication = false;
    }
    crate::tallies::changed(w, ci, ni, before);
    let n = &w.clusters[ci].nodes[ni];
    let name = n.name.clone();
    let group = w.profile(ci).twin.replication[g].name.clone();
    let words = [
        "initializing",
        "setup running",
        "good",
        "out of sync",
        "failed",
    ];
    w.note(
        ci,
        Some(ni),
        &format!("replication-{state}"),
        format!(
            "{group} replication on {name}: {state} ({})",
            words[state as usize]
        ),
    );
}

/// Where node `ni` of group `g` goes after setup, given the master's version.
fn after_setup(w: &World, ci: usize, ni: usize, g: usize) -> u8 {
    match master(w, ci, g) {
        Some(m) if m != ni => {
            let (a, b) = (
                &w.clusters[ci].nodes[ni].active,
                &w.clusters[ci].nodes[m].active,
            );
            if a == b {
                2
            } else if a > b {
                4
            } else {
                3
            }
        }
        _ => 2,
    }
}

/// The node restarted: its replication is set up anew. When it is a master, the other nodes
/// that no longer run its version fall out of sync.
pub(crate) fn restart(w: &mut World, ci: usize, ni: usize) {
    let groups: Vec<usize> = w.clusters[ci].nodes[ni].repl.keys().copied().collect();
    for g in groups {
        w.touch(ci);
        let spec = w.profile(ci).twin.replication[g].clone();
        if spec.services_wait && w.clusters[ci].nodes[ni].role != spec.master {
            w.node_changed(ci, ni);
            w.clusters[ci].nodes[ni].awaiting_replication = true;
        }
        set(w, ci, ni, g, 0);
        let setup = w.profile(ci).twin.replication[g].setup_min;
        let d = (w.draw(setup) * 60.0).round() as i64;
        let gen = w.clusters[ci].nodes[ni].gen;
        w.schedule(
            w.now + d,
            Event::Replication {
                cluster: ci,
                node: ni,
                group: g,
                state: 1,
                gen,
            },
        );
        if master(w, ci, g) == Some(ni) {
            let others: Vec<usize> = (0..w.clusters[ci].nodes.len())
                .filter(|&m| m != ni && w.clusters[ci].nodes[m].repl.get(&g) == Some(&2))
                .collect();
            for m in others {
                if w.clusters[ci].nodes[m].active != w.clusters[ci].nodes[ni].active {
                    set(w, ci, m, g, 3);
                }
            }
        }
    }
}

pub(crate) fn on_event(w: &mut World, ci: usize, ni: usize, g: usize, state: u8, gen: u64) {
    if w.clusters[ci].nodes[ni].gen != gen {
        return;
    }
    w.touch(ci);
    match state {
        1 => {
            set(w, ci, ni, g, 1);
            let next = after_setup(w, ci, ni, g);
            let d = if next == 2 { converge_s(w, ci, g) } else { 60 };
            w.schedule(
                w.now + d,
                crate::world::Event::Replication {
                    cluster: ci,
                    node: ni,
                    group: g,
                    state: next,
                    gen,
                },
            );
        }
        2 => {
            // The master may have moved on meanwhile.
            let now_state = after_setup(w, ci, ni, g);
            set(w, ci, ni, g, now_state);
            if now_state == 2 && master(w, ci, g) == Some(ni) {
                // Nodes that were out of sync and now run the master's version converge.
                let behind: Vec<usize> = (0..w.clusters[ci].nodes.len())
                    .filter(|&m| {
                        m != ni
                            && w.clusters[ci].nodes[m].repl.get(&g) == Some(&3)
                            && after_setup(w, ci, m, g) == 2
                    })
                    .collect();
                for m in behind {
                    let d = converge_s(w, ci, g);
                    let gen_m = w.clusters[ci].nodes[m].gen;
                    w.schedule(
                        w.now + d,
                        Event::Replication {
                            cluster: ci,
                            node: m,
                            group: g,
                            state: 2,
                            gen: gen_m,
                        },
                    );
                }
            }
        }
        s => {
            set(w, ci, ni, g, s);
            if s == 4 {
                let spec = w.profile(ci).twin.replication[g].clone();
                let name = w.clusters[ci].nodes[ni].name.clone();
                let msg = match master(w, ci, g) {
                    Some(m) if m != ni => format!(
                        "{} replication failed on {name}: it runs {}, newer than the master {} ({})",
                        spec.name,
                        w.clusters[ci].nodes[ni].active,
                        w.clusters[ci].nodes[m].name,
                        w.clusters[ci].nodes[m].active
                    ),
                    _ => format!("{} replication failed on {name}", spec.name),
                };
                w.incident(ci, Some(ni), &spec.rule, msg);
            }
        }
    }
    w.settle(ci);
}

/// A fault: the node's replication never gets past `state`; when it is good now, it breaks now.
pub(crate) fn stick(w: &mut World, ci: usize, ni: usize, state: u8) {
    let groups: Vec<usize> = w.clusters[ci].nodes[ni].repl.keys().copied().collect();
    for g in groups {
        if w.clusters[ci].nodes[ni].repl.get(&g) == Some(&2) && w.now > w.start {
            set(w, ci, ni, g, state);
        }
    }
}

/// Every node of `roles` that takes part in replication reports state 2.
pub(crate) fn good(w: &World, ci: usize, roles: &[String]) -> bool {
    let counted = || {
        w.clusters[ci]
            .nodes
            .iter()
            .filter(|n| roles.contains(&n.role) && n.exists)
            .all(|n| n.repl.values().all(|&s| s == 2))
    };
    match w.clusters[ci].tallies.replication_good(roles) {
        Some(good) => {
            // The counts kept as nodes change give what counting over the nodes gives.
            debug_assert_eq!(good, counted(), "replication of {roles:?}");
            good
        }
        None => counted(),
    }
}
