//! Configuration: operators' changes (frozen, refused while read-only, lost when the side that
//! holds them stops being active), configuration servers with their log events and upgrade
//! mode, proxies that cannot run ahead of their master, and client sessions that reconnect.

use crate::world::{Event, World};

/// An operator changes the configuration now.
pub(crate) fn change(w: &mut World, ci: usize) {
    w.touch(ci);
    let spec = w.profile(ci).twin.clone();
    let c = &mut w.clusters[ci];
    c.next_change += 1;
    let id = c.next_change;
    c.acc.config_changes_made += 1;
    if c.frozen {
        if let Some(r) = &spec.freeze_rule {
            w.incident(
                ci,
                None,
                r,
                "a configuration change was made during the configuration freeze".into(),
            );
        }
    }
    let c = &mut w.clusters[ci];
    let blocked = c.read_only || c.nodes.iter().any(|n| n.single_user);
    if blocked {
        c.acc.config_changes_refused += 1;
        w.note(
            ci,
            None,
            "change-refused",
            "a configuration change was refused: configuration is read-only".into(),
        );
        return;
    }
    let mut applied = false;
    for n in &mut c.nodes {
        if spec.config_master.contains(&n.role) && n.exists && !n.stopped && !n.crashed {
            n.config_active.insert(id);
            applied = true;
        }
    }
    let text = if applied {
        "an operator changed the configuration"
    } else {
        "an operator changed the configuration (no master holds it)"
    };
    w.note(ci, None, "config-change", text.into());
}

fn is_server(w: &World, ci: usize, ni: usize) -> bool {
    w.profile(ci)
        .twin
        .config_store
        .as_ref()
        .is_some_and(|s| s.servers.contains(&w.clusters[ci].nodes[ni].role))
}

fn is_proxy(w: &World, ci: usize, ni: usize) -> bool {
    w.profile(ci)
        .twin
        .config_store
        .as_ref()
        .is_some_and(|s| s.proxies.contains(&w.clusters[ci].nodes[ni].role))
}

/// The pair member next to `ni`, when it has one, and whether that one is active.
fn partner(w: &World, ci: usize, ni: usize) -> Option<(usize, bool)> {
    w.clusters[ci].pairs.iter().find_map(|p| {
        let k = p.members.iter().position(|&m| m == ni)?;
        let o = p.members[1 - k];
        Some((o, p.active == Some(1 - k)))
    })
}

/// The configuration master clients and proxies talk to now.
fn master(w: &World, ci: usize) -> Option<usize> {
    let n = w.clusters[ci].nodes.len();
    for p in &w.clusters[ci].pairs {
        if let Some(a) = p.active {
            let m = p.members[a];
            if is_server(w, ci, m) && w.provides(ci, m) {
                return Some(m);
            }
        }
    }
    (0..n)
        .filter(|&m| is_server(w, ci, m) && w.provides(ci, m))
        .max_by_key(|&m| (w.clusters[ci].nodes[m].upgrade_mode, std::cmp::Reverse(m)))
}

fn log_later(w: &mut World, ci: usize, ni: usize, after_s: i64, code: &str, text: String) {
    let gen = w.clusters[ci].nodes[ni].gen;
    w.schedule(
        w.now + after_s,
        Event::Log {
            cluster: ci,
            node: ni,
            code: code.to_string(),
            text,
            gen,
        },
    );
}

/// A node started: a configuration server that finds its partner running initialises as its
/// backup and says so in its log.
pub(crate) fn on_start(w: &mut World, ci: usize, ni: usize) {
    if !is_server(w, ci, ni) || w.clusters[ci].nodes[ni].upgrade_mode {
        return;
    }
    let Some(spec) = w.profile(ci).twin.config_store.clone() else {
        return;
    };
    let name = w.clusters[ci].nodes[ni].name.clone();
    let n = &w.clusters[ci].nodes[ni];
    let new = n.active != n.original;
    if new {
        if let Some(code) = &spec.events.new_instance {
            log_later(w, ci, ni, 2, code, format!("{name}: new instance starting"));
        }
    }
    if let Some((o, _)) = partner(w, ci, ni) {
        if w.provides(ci, o) {
            let init = (w.draw(spec.init_min) * 60.0).round() as i64 / 2;
            let other = w.clusters[ci].nodes[o].name.clone();
            log_later(
                w,
                ci,
                ni,
                init.max(5),
                &spec.events.backup_connected,
                format!("{name} runs as backup to {other}"),
            );
        }
    }
}

/// A configuration server started in upgrade mode: it contacts the running primary, enters
/// upgrade mode and, once initialised, reports it is ready.
pub(crate) fn start_upgrade_mode(w: &mut World, ci: usize, ni: usize) {
    let Some(spec) = w.profile(ci).twin.config_store.clone() else {
        return;
    };
    let name = w.clusters[ci].nodes[ni].name.clone();
    if let Some(code) = &spec.events.upgrade_mode_requested {
        log_later(w, ci, ni, 2, code, format!("{name}: starting"));
    }
    log_later(
        w,
        ci,
        ni,
        10,
        &spec.events.upgrade_mode,
        format!("{name} runs in upgrade mode"),
    );
    let d = (w.draw(spec.init_min) * 60.0).round() as i64;
    let gen = w.clusters[ci].nodes[ni].gen;
    w.schedule(
        w.now + d.max(20),
        Event::Ready {
            cluster: ci,
            node: ni,
            gen,
        },
    );
}

pub(crate) fn ready(w: &mut World, ci: usize, ni: usize, gen: u64) {
    if w.clusters[ci].nodes[ni].gen != gen {
        return;
    }
    let Some(spec) = w.profile(ci).twin.config_store.clone() else {
        return;
    };
    w.touch(ci);
    let upgraded = spec
        .schema_fact
        .as_ref()
        .and_then(|f| w.clusters[ci].facts.get(f))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let name = w.clusters[ci].nodes[ni].name.clone();
    let (code, text) = if upgraded {
        (
            spec.events.ready_db_upgraded.clone(),
            format!("{name} initialised in upgrade mode on the upgraded database"),
        )
    } else {
        (
            spec.events.ready_same_db.clone(),
            format!("{name} initialised in upgrade mode on the same database"),
        )
    };
    w.note(ci, Some(ni), &code, text);
    w.settle(ci);
}

/// A proxy does not start against a master older than itself (unless the profile's exception
/// holds); returns why.
pub(crate) fn refuses_start(w: &mut World, ci: usize, ni: usize) -> Option<String> {
    if !is_proxy(w, ci, ni) {
        return None;
    }
    let spec = w.profile(ci).twin.config_store.clone()?;
    let m = master(w, ci)?;
    let (proxy_v, master_v) = (
        w.clusters[ci].nodes[ni].active.clone(),
        w.clusters[ci].nodes[m].active.clone(),
    );
    if proxy_v <= master_v {
        return None;
    }
    if let Some(e) = &spec.proxy_exception {
        if w.holds(ci, Some(ni), e) {
            return None;
        }
    }
    let (pn, mn) = (
        w.clusters[ci].nodes[ni].name.clone(),
        w.clusters[ci].nodes[m].name.clone(),
    );
    let msg = format!("{pn} ({proxy_v}) cannot start against its master {mn} ({master_v})");
    if let Some(r) = &spec.proxy_rule {
        w.incident(ci, Some(ni), r, msg.clone());
    }
    Some(msg)
}

/// Where client group `gi` should be connected now.
fn desired(w: &World, ci: usize, gi: usize) -> Option<usize> {
    let g = &w.clusters[ci].clients[gi];
    if is_proxy(w, ci, g.home) {
        if w.provides(ci, g.home) {
            return Some(g.home);
        }
        return partner(w, ci, g.home).and_then(|(o, _)| w.provides(ci, o).then_some(o));
    }
    master(w, ci)
}

pub(crate) fn route_clients(w: &mut World, ci: usize) {
    let Some(spec) = w.profile(ci).twin.config_store.clone() else {
        return;
    };
    for gi in 0..w.clusters[ci].clients.len() {
        let want = desired(w, ci, gi);
        let g = w.clusters[ci].clients[gi].clone();
        if g.moving.is_none() && g.at == want && want.is_some() {
            continue;
        }
        if let (Some((to, _)), Some(want)) = (g.moving, want) {
            if to == want {
                continue;
            }
        }
        // Connected to a server that still serves: stay until it stops.
        if let Some(at) = g.at {
            if w.provides(ci, at) && g.moving.is_none() {
                continue;
            }
        }
        let gm = &mut w.clusters[ci].clients[gi];
        gm.at = None;
        gm.gen += 1;
        match want {
            None => gm.moving = None,
            Some(to) => {
                let gen = gm.gen;
                let d = w.draw(spec.reconnect_s).round() as i64;
                w.clusters[ci].clients[gi].moving = Some((to, w.now + d));
                w.schedule(
                    w.now + d,
                    Event::ClientsArrive {
                        cluster: ci,
                        group: gi,
                        gen,
                    },
                );
            }
        }
    }
}

pub(crate) fn clients_arrive(w: &mut World, ci: usize, gi: usize, gen: u64) {
    let g = w.clusters[ci].clients[gi].clone();
    if g.gen != gen {
        return;
    }
    let Some((to, _)) = g.moving else { return };
    w.touch(ci);
    let rule = w
        .profile(ci)
        .twin
        .config_store
        .as_ref()
        .map(|s| s.rule.clone())
        .unwrap_or_default();
    if w.clusters[ci].nodes[to].upgrade_mode {
        // A server in upgrade mode does not restore sessions: clients re-read the configuration.
        w.clusters[ci].acc.sessions_lost += g.count.round() as u64;
        let name = w.clusters[ci].nodes[to].name.clone();
        let home = w.clusters[ci].nodes[g.home].name.clone();
        w.note(
            ci,
            Some(to),
            "sessions-lost",
            format!(
                "{} clients of {home} reconnected to {name} in upgrade mode without their sessions ({rule}): they re-read the configuration",
                g.count
            ),
        );
    }
    let gm = &mut w.clusters[ci].clients[gi];
    gm.at = Some(to);
    gm.moving = None;
    w.settle(ci);
}

/// No client session is connected to, or on its way to, node `ni`.
pub(crate) fn clients_moved(w: &World, ci: usize, ni: usize) -> bool {
    w.clusters[ci]
        .clients
        .iter()
        .all(|g| g.at != Some(ni) && g.moving.is_none_or(|m| m.0 != ni))
}
