//! Configuration: operators' changes (frozen, refused while read-only, lost when the side that
//! holds them stops being active), configuration servers with their log events, initialisation
//! and upgrade mode, proxies that cannot run ahead of their master, and client sessions that
//! reconnect (and are lost in upgrade mode, or across versions after a schema upgrade).

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
    w.fail_steps_broken_by_config_change(ci);
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

/// A node started: a configuration server initialises (it serves once that is done), as backup
/// of its partner when that one runs, and says so in its log. A server that is down (stopped
/// while its folder is swapped, or crashed) logs nothing.
pub(crate) fn on_start(w: &mut World, ci: usize, ni: usize) {
    let n = &w.clusters[ci].nodes[ni];
    if !is_server(w, ci, ni) || n.upgrade_mode || n.stopped || n.crashed {
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
    let init = ((w.draw(spec.init_min) * 60.0).round() as i64 / 2).max(5);
    if let Some((o, _)) = partner(w, ci, ni) {
        let older = w.clusters[ci].nodes[o].active < w.clusters[ci].nodes[ni].active;
        if w.provides(ci, o) && older {
            if let Some(code) = &spec.events.backup_to_older {
                let other = w.clusters[ci].nodes[o].name.clone();
                let v = w.clusters[ci].nodes[o].active.clone();
                log_later(
                    w,
                    ci,
                    ni,
                    (launched(w) + init / 2 - w.now).max(3),
                    code,
                    format!("{name} runs as backup to {other}, which runs the older {v}"),
                );
            }
        }
    }
    w.node_changed(ci, ni);
    w.clusters[ci].nodes[ni].initialising = true;
    let gen = w.clusters[ci].nodes[ni].gen;
    w.schedule(
        (launched(w) + init).max(w.now + 5),
        Event::Ready {
            cluster: ci,
            node: ni,
            gen,
        },
    );
}

/// A configuration server started in upgrade mode: it contacts the running primary, enters
/// upgrade mode (by itself, or forced by an option where the profile says so) and, once
/// initialised, reports it is ready.
pub(crate) fn start_upgrade_mode(w: &mut World, ci: usize, ni: usize) {
    let Some(spec) = w.profile(ci).twin.config_store.clone() else {
        return;
    };
    if w.clusters[ci].nodes[ni].crashed {
        return;
    }
    let name = w.clusters[ci].nodes[ni].name.clone();
    if let Some(code) = &spec.events.new_instance {
        log_later(w, ci, ni, 2, code, format!("{name}: new instance starting"));
    }
    let forced = spec
        .forced_upgrade_mode
        .as_ref()
        .is_some_and(|c| w.holds(ci, Some(ni), c));
    match (&spec.events.upgrade_mode_requested, forced) {
        (Some(code), true) => log_later(
            w,
            ci,
            ni,
            10,
            code,
            format!("{name} runs in upgrade mode (forced by its option)"),
        ),
        _ => log_later(
            w,
            ci,
            ni,
            10,
            &spec.events.upgrade_mode,
            format!("{name} detected an incompatible peer and runs in upgrade mode"),
        ),
    }
    let d = ((w.draw(spec.init_min) * 60.0).round() as i64).max(20);
    let since = launched(w);
    if let Some(code) = &spec.events.initialized {
        log_later(
            w,
            ci,
            ni,
            (since + d / 2 - w.now).max(15),
            code,
            format!("{name} initialised its configuration"),
        );
    }
    w.node_changed(ci, ni);
    w.clusters[ci].nodes[ni].initialising = true;
    let gen = w.clusters[ci].nodes[ni].gen;
    w.schedule(
        (since + d).max(w.now + 20),
        Event::Ready {
            cluster: ci,
            node: ni,
            gen,
        },
    );
}

/// A configuration server finished initialising: it serves from now on. In upgrade mode it
/// reports which database it is ready on; otherwise it reports that it runs as backup of its
/// running partner (after `initialized` when the partner is not older), or `initialized` alone.
pub(crate) fn ready(w: &mut World, ci: usize, ni: usize, gen: u64) {
    if w.clusters[ci].nodes[ni].gen != gen {
        return;
    }
    let Some(spec) = w.profile(ci).twin.config_store.clone() else {
        return;
    };
    w.touch(ci);
    w.node_changed(ci, ni);
    w.clusters[ci].nodes[ni].initialising = false;
    let name = w.clusters[ci].nodes[ni].name.clone();
    if w.clusters[ci].nodes[ni].upgrade_mode {
        let (code, text) = if schema_upgraded(w, ci) {
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
    } else {
        let running = partner(w, ci, ni).filter(|&(o, _)| w.provides(ci, o));
        let older = running
            .is_some_and(|(o, _)| w.clusters[ci].nodes[o].active < w.clusters[ci].nodes[ni].active);
        if !older {
            if let Some(code) = &spec.events.initialized {
                w.note(ci, Some(ni), code, format!("{name} initialised"));
            }
        }
        if let Some((o, _)) = running {
            let other = w.clusters[ci].nodes[o].name.clone();
            w.note(
                ci,
                Some(ni),
                &spec.events.backup_connected,
                format!("{name} runs as backup to {other}"),
            );
        }
    }
    w.settle(ci);
}

/// When the server now starting was launched: at the start of the step that starts it (its
/// initialisation runs while the step does), or now.
fn launched(w: &World) -> i64 {
    w.step_began.unwrap_or(w.now)
}

fn schema_upgraded(w: &World, ci: usize) -> bool {
    w.profile(ci)
        .twin
        .config_store
        .as_ref()
        .and_then(|s| s.schema_fact.as_ref())
        .and_then(|f| w.clusters[ci].facts.get(f))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The controller is busy with two primaries: a configuration server outside `members` runs in
/// upgrade mode. It switches no other pair over meanwhile.
pub(crate) fn controller_busy(w: &World, ci: usize, members: &[usize; 2]) -> bool {
    (0..w.clusters[ci].nodes.len()).any(|m| {
        !members.contains(&m)
            && w.clusters[ci].nodes[m].upgrade_mode
            && w.up(ci, m)
            && is_server(w, ci, m)
    })
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
        if let Some(at) = g.at {
            w.clusters[ci].clients[gi].session = Some(w.clusters[ci].nodes[at].active.clone());
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
    let name = w.clusters[ci].nodes[to].name.clone();
    let home = w.clusters[ci].nodes[g.home].name.clone();
    let to_v = w.clusters[ci].nodes[to].active.clone();
    if w.clusters[ci].nodes[to].upgrade_mode {
        // A server in upgrade mode does not restore sessions: clients re-read the configuration.
        w.clusters[ci].acc.sessions_lost += g.count.round() as u64;
        w.note(
            ci,
            Some(to),
            "sessions-lost",
            format!(
                "{} clients of {home} reconnected to {name} in upgrade mode without their sessions ({rule}): they re-read the configuration",
                g.count
            ),
        );
    } else if let Some(from) = g
        .session
        .as_ref()
        .filter(|v| **v != to_v && schema_upgraded(w, ci))
    {
        // Sessions are not kept between versions when the database schema was upgraded.
        w.clusters[ci].acc.sessions_lost += g.count.round() as u64;
        w.note(
            ci,
            Some(to),
            "sessions-lost",
            format!(
                "{} clients of {home} reconnected to {name} ({to_v}, upgraded database) without the sessions they held on {from} ({rule})",
                g.count
            ),
        );
    }
    let gm = &mut w.clusters[ci].clients[gi];
    gm.at = Some(to);
    gm.moving = None;
    gm.session = None;
    w.settle(ci);
}

/// No client session is connected to, or on its way to, node `ni`, and the node's own clients
/// are connected to another server (they have finished migrating, not merely left).
pub(crate) fn clients_moved(w: &World, ci: usize, ni: usize) -> bool {
    w.clusters[ci].clients.iter().all(|g| {
        g.at != Some(ni) && g.moving.is_none_or(|m| m.0 != ni) && (g.home != ni || g.at.is_some())
    })
}
