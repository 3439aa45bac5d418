//! What a step's effects do to the world when the step starts and when it ends.

use crate::world::{Event, World};
use ferry_model::{Effect, FactValue, Outcome, PlannedStep, VendorVersion};

/// The nodes of `roles` on the same host as node `ni`.
fn on_host(w: &World, ci: usize, ni: usize, roles: &[String]) -> Vec<usize> {
    let Some(host) = w.host_of(ci, ni) else {
        return Vec::new();
    };
    (0..w.clusters[ci].nodes.len())
        .filter(|&m| {
            roles.contains(&w.clusters[ci].nodes[m].role)
                && w.host_of(ci, m).as_ref() == Some(&host)
        })
        .collect()
}

fn stop(w: &mut World, ci: usize, ni: usize) {
    w.node_changed(ci, ni);
    let n = &mut w.clusters[ci].nodes[ni];
    if n.stopped {
        return;
    }
    n.stopped = true;
    n.upgrade_mode = false;
    n.healthy = false;
    n.gen += 1;
    let name = n.name.clone();
    w.note(ci, Some(ni), "stopped", format!("{name} stopped"));
}

/// Effects that act when the step starts.
pub(crate) fn at_start(w: &mut World, ci: usize, ni: Option<usize>, step: &PlannedStep) {
    for e in &step.effects {
        match (e, ni) {
            (Effect::Stop, Some(n)) => stop(w, ci, n),
            (Effect::StopOnHost(roles), Some(n)) => {
                for m in on_host(w, ci, n, roles) {
                    stop(w, ci, m);
                }
            }
            (Effect::AgentDown, Some(n)) => agent(w, ci, n, true),
            (Effect::FailOverDevices, Some(n)) => {
                for d in &mut w.clusters[ci].devices {
                    if d.home == n {
                        d.pinned = true;
                    }
                }
            }
            (Effect::BusyOutLinks, _) => {
                if let Some(col) = &mut w.clusters[ci].collector {
                    for l in &mut col.links {
                        l.iter_mut().for_each(|x| *x = false);
                    }
                }
                w.note(
                    ci,
                    None,
                    "links-busied-out",
                    "every data link busied out".into(),
                );
            }
            _ => {}
        }
    }
}

/// A failed step: what it started is undone where that makes sense (the agent comes back).
pub(crate) fn undo_start(w: &mut World, ci: usize, ni: Option<usize>, step: &PlannedStep) {
    for e in &step.effects {
        match (e, ni) {
            (Effect::AgentDown, Some(n)) => agent(w, ci, n, false),
            (Effect::FailOverDevices, Some(n)) => {
                for d in &mut w.clusters[ci].devices {
                    if d.home == n {
                        d.pinned = false;
                    }
                }
            }
            _ => {}
        }
    }
}

/// The node's host agent goes down (`true`) or comes back.
fn agent(w: &mut World, ci: usize, ni: usize, down: bool) {
    let Some(host) = w.host_of(ci, ni) else {
        return;
    };
    w.node_changed(ci, ni);
    w.clusters[ci].nodes[ni].agent_down = down;
    w.clusters[ci].agent_gen += 1;
    let gen = w.clusters[ci].agent_gen;
    if down {
        w.clusters[ci].agents_down.insert(host.clone(), w.now);
        w.clusters[ci].agent_down_gen.insert(host.clone(), gen);
        w.clusters[ci].hosts_declared.remove(&host);
        if let Some(ctl) = w.profile(ci).twin.controller.clone() {
            let t = w.clusters[ci]
                .options
                .get(&ctl.timeout_option)
                .copied()
                .unwrap_or(0.0);
            let at = w.now + t.round() as i64;
            w.schedule(
                at,
                Event::HostLost {
                    cluster: ci,
                    host: host.clone(),
                    gen,
                },
            );
        }
        w.note(
            ci,
            Some(ni),
            "agent-down",
            format!("agent of {host} disconnected"),
        );
    } else {
        w.clusters[ci].agents_down.remove(&host);
        w.clusters[ci].agent_down_gen.remove(&host);
        w.clusters[ci].hosts_declared.remove(&host);
        w.note(
            ci,
            Some(ni),
            "agent-up",
            format!("agent of {host} connected"),
        );
    }
}

/// The node has (re)started on its active version; `new_version` when that version changed
/// (its database replication is then set up anew).
pub(crate) fn started(w: &mut World, ci: usize, ni: usize, new_version: bool) {
    let now = w.now;
    let health = w.profile(ci).twin.health.clone();
    w.node_changed(ci, ni);
    let n = &mut w.clusters[ci].nodes[ni];
    n.last_start = now;
    n.gen += 1;
    let gen = n.gen;
    match health {
        Some(h) => {
            n.healthy = false;
            let d = w.draw(h.healthy_after_s);
            w.schedule(
                now + d.round() as i64,
                Event::Healthy {
                    cluster: ci,
                    node: ni,
                    gen,
                },
            );
        }
        None => n.healthy = !n.unhealthy_fault,
    }
    // A restart drops the node's pending replication events (they belong to its previous
    // start): a setup still under way (state 0 or 1) begins again instead of hanging.
    let setup_interrupted = w.clusters[ci].nodes[ni]
        .repl
        .values()
        .any(|&s| s == 0 || s == 1);
    if new_version || setup_interrupted {
        crate::replication::restart(w, ci, ni);
    }
    crate::config::on_start(w, ci, ni);
}

fn version_of(step: &PlannedStep, fallback: &VendorVersion) -> VendorVersion {
    step.version
        .as_deref()
        .and_then(|v| VendorVersion::parse(v).ok())
        .unwrap_or_else(|| fallback.clone())
}

/// A fact of the node, or of the cluster when the node has none by that name.
fn fact_mut<'a>(w: &'a mut World, ci: usize, ni: Option<usize>, name: &str) -> &'a mut FactValue {
    let c = &mut w.clusters[ci];
    if let Some(n) = ni {
        if c.nodes[n].facts.contains_key(name) || !c.facts.contains_key(name) {
            return c.nodes[n]
                .facts
                .entry(name.to_string())
                .or_insert(FactValue::List(Vec::new()));
        }
    }
    c.facts
        .entry(name.to_string())
        .or_insert(FactValue::List(Vec::new()))
}

/// Switches the node to its inactive version: configuration made since the install stays on
/// the other side.
fn swap(w: &mut World, ci: usize, ni: usize, why: &str) {
    let rule = w.profile(ci).twin.config_rule.clone();
    let before = crate::tallies::of_node(w, ci, ni);
    w.node_changed(ci, ni);
    let n = &mut w.clusters[ci].nodes[ni];
    let Some(next) = n.inactive.take() else {
        return;
    };
    let lost = n.config_active.difference(&n.config_inactive).count() as u64;
    let prev = std::mem::replace(&mut n.active, next);
    n.inactive = Some(prev.clone());
    std::mem::swap(&mut n.config_active, &mut n.config_inactive);
    crate::tallies::changed(w, ci, ni, before);
    let n = &w.clusters[ci].nodes[ni];
    let name = n.name.clone();
    let active = n.active.clone();
    w.note(
        ci,
        Some(ni),
        "switched",
        format!("{name} {why}: runs {active}, {prev} inactive"),
    );
    if lost > 0 {
        w.clusters[ci].acc.config_changes_lost += lost;
        if let Some(r) = rule {
            w.incident(
                ci,
                Some(ni),
                &r,
                format!("{lost} configuration change(s) made on {prev} after the install were lost when {name} {why}"),
            );
        }
    }
    started(w, ci, ni, true);
    w.user_changes_lost(ci, ni);
}

/// The node's configuration is put back from its last snapshot: changes made on it since are
/// lost (counted, and an incident under the profile's `config_rule`). Without a snapshot there
/// is nothing to put back.
fn restore_snapshot(w: &mut World, ci: usize, ni: usize, step: &str) {
    let rule = w.profile(ci).twin.config_rule.clone();
    w.node_changed(ci, ni);
    let n = &mut w.clusters[ci].nodes[ni];
    let name = n.name.clone();
    let Some(snapshot) = n.config_snapshot.clone() else {
        w.note(
            ci,
            Some(ni),
            "restored",
            format!("{name}: no configuration snapshot to restore ({step})"),
        );
        return;
    };
    let lost = n.config_active.difference(&snapshot).count() as u64;
    n.config_active = snapshot;
    w.note(
        ci,
        Some(ni),
        "restored",
        format!("{name}: configuration restored from its snapshot ({step})"),
    );
    if lost > 0 {
        w.clusters[ci].acc.config_changes_lost += lost;
        if let Some(r) = rule {
            w.step_incident(
                ci,
                Some(ni),
                step,
                &r,
                format!("{lost} configuration change(s) made on {name} after its snapshot were lost when {step} restored it"),
            );
        }
    }
}

/// Effects that act when the step ends. Returns how the step ended.
pub(crate) fn at_end(w: &mut World, ci: usize, ni: Option<usize>, step: &PlannedStep) -> Outcome {
    let mut outcome = Outcome::Done;
    for e in &step.effects {
        match (e, ni) {
            (Effect::InstallInactive, Some(n)) => {
                let v = version_of(step, &w.clusters[ci].nodes[n].target);
                let before = crate::tallies::of_node(w, ci, n);
                w.node_changed(ci, n);
                let node = &mut w.clusters[ci].nodes[n];
                node.inactive = Some(v.clone());
                node.config_inactive = node.config_active.clone();
                let name = node.name.clone();
                crate::tallies::changed(w, ci, n, before);
                w.note(
                    ci,
                    Some(n),
                    "installed",
                    format!("{name}: {v} installed in the inactive slot"),
                );
                w.user_changes_lost(ci, n);
            }
            (Effect::InstallInPlace, Some(n)) => {
                let v = version_of(step, &w.clusters[ci].nodes[n].target);
                let services = w.profile(ci).twin.services.is_some();
                let before = crate::tallies::of_node(w, ci, n);
                w.node_changed(ci, n);
                let node = &mut w.clusters[ci].nodes[n];
                if node.exists {
                    node.backup = Some(std::mem::replace(&mut node.active, v.clone()));
                    node.services_pending = services;
                } else {
                    node.exists = true;
                    node.stopped = false;
                    node.active = v.clone();
                }
                let name = node.name.clone();
                crate::tallies::changed(w, ci, n, before);
                w.note(ci, Some(n), "installed", format!("{name} now runs {v}"));
                started(w, ci, n, true);
            }
            (Effect::Switch, Some(n)) => {
                if w.clusters[ci].nodes[n].inactive.is_none() {
                    return Outcome::Failed(format!(
                        "{} has no inactive version to switch to",
                        w.clusters[ci].nodes[n].name
                    ));
                }
                swap(w, ci, n, "switched versions");
            }
            (Effect::Revert, Some(n)) => {
                let node = &w.clusters[ci].nodes[n];
                if node.active == node.original {
                    outcome = Outcome::Skipped;
                } else if node.inactive.as_ref() == Some(&node.original) {
                    // Also after a `remove_inactive` before the install: what it removed was
                    // another version, and the switch made the original the inactive one.
                    swap(w, ci, n, "switched back");
                } else if node.backup.as_ref() == Some(&node.original) {
                    let before = crate::tallies::of_node(w, ci, n);
                    w.node_changed(ci, n);
                    let node = &mut w.clusters[ci].nodes[n];
                    node.active = node.backup.take().expect("checked");
                    node.services_pending = false;
                    let (name, v) = (node.name.clone(), node.active.clone());
                    crate::tallies::changed(w, ci, n, before);
                    w.note(ci, Some(n), "restored", format!("{name} restored to {v}"));
                    started(w, ci, n, true);
                } else if node.revert_impossible {
                    return Outcome::Failed(format!(
                        "{} cannot switch back to {}: its inactive slot was removed",
                        node.name, node.original
                    ));
                } else {
                    return Outcome::Failed(format!(
                        "{} has no copy of {} to go back to",
                        node.name, node.original
                    ));
                }
            }
            (Effect::RemoveInactive, Some(n)) => {
                let before = crate::tallies::of_node(w, ci, n);
                w.node_changed(ci, n);
                let node = &mut w.clusters[ci].nodes[n];
                let removed = node.inactive.take();
                node.revert_impossible = true;
                let name = node.name.clone();
                crate::tallies::changed(w, ci, n, before);
                let text = match removed {
                    Some(v) => format!(
                        "{name}: inactive slot removed; {v} is gone, no switching back to it"
                    ),
                    None => format!("{name}: inactive slot removed (it held no version)"),
                };
                w.note(ci, Some(n), "inactive-removed", text);
            }
            (Effect::Start, Some(n)) => {
                if let Some(reason) = crate::config::refuses_start(w, ci, n) {
                    return Outcome::Failed(reason);
                }
                start(w, ci, n, false);
            }
            (Effect::StartUpgradeMode, Some(n)) => start(w, ci, n, true),
            (Effect::StartOnHost(roles), Some(n)) => {
                for m in on_host(w, ci, n, roles) {
                    start(w, ci, m, false);
                }
            }
            (Effect::Restart, Some(n)) => started(w, ci, n, false),
            (Effect::AgentDown, Some(n)) => agent(w, ci, n, false),
            (Effect::SetFact { name, value }, _) => *fact_mut(w, ci, ni, name) = value.clone(),
            (Effect::CopyItems { from, to }, _) => {
                let items: Vec<FactValue> = {
                    let c = &w.clusters[ci];
                    ni.and_then(|n| c.nodes[n].facts.get(from))
                        .or_else(|| c.facts.get(from))
                        .and_then(|v| v.as_list())
                        .map(|l| l.to_vec())
                        .unwrap_or_default()
                };
                let target = fact_mut(w, ci, ni, to);
                if !matches!(target, FactValue::List(_)) {
                    *target = FactValue::List(Vec::new());
                }
                if let FactValue::List(list) = target {
                    for i in items {
                        if !list.contains(&i) {
                            list.push(i);
                        }
                    }
                }
            }
            (Effect::IncrementFact(name), _) => {
                let f = fact_mut(w, ci, ni, name);
                if let FactValue::String(s) = f {
                    *s = ferry_model::fact::increment_trailing(s);
                }
            }
            (Effect::ClampParameters(name), Some(n)) => {
                let node_name = w.clusters[ci].nodes[n].name.clone();
                let f = fact_mut(w, ci, ni, name);
                let mut changes = Vec::new();
                if let FactValue::List(params) = f {
                    for p in params.iter_mut() {
                        if let Some(change) = ferry_model::fact::migrate_parameter(p) {
                            changes.push(change.text.clone());
                            if let FactValue::Table(t) = p {
                                t.insert("value".into(), change.new_value);
                            }
                        }
                    }
                }
                for c in changes {
                    w.note(ci, Some(n), "parameter-changed", c.clone());
                    w.parameter_changes.push((node_name.clone(), c));
                }
            }
            (Effect::Snapshot, Some(n)) => {
                w.node_changed(ci, n);
                let node = &mut w.clusters[ci].nodes[n];
                node.config_snapshot = Some(node.config_active.clone());
                let name = node.name.clone();
                w.note(
                    ci,
                    Some(n),
                    "snapshot",
                    format!("{name}: configuration snapshot taken ({})", step.id),
                );
            }
            (Effect::RestoreSnapshot, Some(n)) => restore_snapshot(w, ci, n, &step.id),
            (Effect::ActivateServices, Some(n)) => {
                w.node_changed(ci, n);
                w.clusters[ci].nodes[n].services_pending = false;
            }
            (Effect::Freeze(on), _) => w.clusters[ci].frozen = *on,
            (Effect::ReadOnly(on), _) => {
                w.clusters[ci].read_only = *on;
                let text = if *on {
                    "configuration is read-only"
                } else {
                    "configuration is writable again"
                };
                w.note(ci, ni, "read-only", text.into());
            }
            (
                Effect::SetOption {
                    name,
                    seconds_fact,
                    default_s,
                },
                _,
            ) => {
                let c = &w.clusters[ci];
                let v = ni
                    .and_then(|n| c.nodes[n].facts.get(seconds_fact))
                    .or_else(|| c.facts.get(seconds_fact))
                    .and_then(|v| v.as_f64())
                    .or(*default_s);
                if let Some(v) = v {
                    w.clusters[ci].options.insert(name.clone(), v);
                    w.note(ci, ni, "option-set", format!("{name} = {v}"));
                }
            }
            (Effect::DeleteOption(name), _) => {
                w.clusters[ci].options.remove(name);
                w.note(ci, ni, "option-deleted", format!("{name} deleted"));
            }
            (Effect::Repoint(name), _) => {
                let spec = w.profile(ci).twin.dependencies.clone();
                let c = &mut w.clusters[ci];
                for d in &mut c.dependencies {
                    if spec[d.spec].name == *name {
                        d.recorded = c.facts.get(&spec[d.spec].fact).cloned();
                    }
                }
            }
            (Effect::ReleaseLinks { roles }, _) => {
                let c = &mut w.clusters[ci];
                if let Some(col) = &mut c.collector {
                    for (vi, &v) in col.servers.iter().enumerate() {
                        if roles.is_empty() || roles.contains(&c.nodes[v].role) {
                            for l in &mut col.links {
                                l[vi] = true;
                            }
                        }
                    }
                }
                w.note(ci, None, "links-released", "data links released".into());
            }
            (Effect::SingleUser(on), Some(n)) => {
                w.node_changed(ci, n);
                w.clusters[ci].nodes[n].single_user = *on;
            }
            (Effect::SetupRoles, Some(n)) => {
                crate::pairs::set_up(w, ci, n);
                w.note(
                    ci,
                    Some(n),
                    "roles-set-up",
                    "HA roles set up; heartbeat running".into(),
                );
            }
            (Effect::ReverseRoles, Some(n)) => {
                // No roles to exchange before they are set up: the step is skipped.
                let reversed = crate::pairs::reverse(w, ci, n);
                if !reversed {
                    outcome = Outcome::Skipped;
                }
            }
            (Effect::ExpectInactiveTarget, Some(n)) => {
                let want = version_of(step, &w.clusters[ci].nodes[n].target);
                let node = &w.clusters[ci].nodes[n];
                if node.inactive.as_ref() != Some(&want) {
                    return Outcome::Failed(format!(
                        "{}: the inactive slot holds {}, not {want}",
                        node.name,
                        node.inactive
                            .as_ref()
                            .map_or("nothing".to_string(), |v| v.to_string())
                    ));
                }
            }
            (Effect::ExpectActiveTarget, Some(n)) => {
                let want = version_of(step, &w.clusters[ci].nodes[n].target);
                let node = &w.clusters[ci].nodes[n];
                if node.active != want {
                    return Outcome::Failed(format!(
                        "{} runs {}, not {want}",
                        node.name, node.active
                    ));
                }
            }
            _ => {}
        }
    }
    let _ = step.kind;
    outcome
}

fn start(w: &mut World, ci: usize, ni: usize, upgrade_mode: bool) {
    w.node_changed(ci, ni);
    let n = &mut w.clusters[ci].nodes[ni];
    if !n.exists {
        return;
    }
    n.stopped = false;
    n.upgrade_mode = upgrade_mode;
    let name = n.name.clone();
    let mode = if upgrade_mode { " in upgrade mode" } else { "" };
    w.note(ci, Some(ni), "started", format!("{name} started{mode}"));
    started(w, ci, ni, false);
    if upgrade_mode {
        crate::config::start_upgrade_mode(w, ci, ni);
    }
}
