//! HA pairs and the controller that switches them over.
//!
//! A pair has one active member. When it stops providing service the other takes over: by
//! heartbeat (the backup notices within one heartbeat period) or by the controller (which
//! notices within its detection time, but not while the agent of either member's host is
//! disconnected, until the switchover timeout passes; then it gives the host up and switches
//! over whatever was active there, even components that still run: a wrong switchover). The
//! controller also switches nothing over while it is busy with a configuration server in
//! upgrade mode (other than the pair's own). It judges the hold when it would switch over, not
//! only when it notices the failure: a hold that begins in between (the next host's LCA upgrade
//! starting the moment the failed member's own ends) defers the switchover until that hold
//! ends. A failed data link alone does not stop a member from providing service, so it
//! promotes nothing: where the pair names a `link_rule`, an incident says the partner must be
//! made active by hand. A pair that needs setting up has its roles assigned by `setup_roles`
//! (its primary becomes the active member) and cannot exchange them before.

use crate::world::{Event, World};
use ferry_model::twin::Promotion;

fn controller_serving(w: &World, ci: usize) -> bool {
    match &w.profile(ci).twin.controller {
        None => true,
        Some(c) => (0..w.clusters[ci].nodes.len())
            .any(|m| c.controllers.contains(&w.clusters[ci].nodes[m].role) && w.provides(ci, m)),
    }
}

/// The controller cannot act on node `ni` now: its host's agent is disconnected and the
/// timeout has not passed.
fn held(w: &World, ci: usize, ni: usize) -> bool {
    if w.profile(ci).twin.controller.is_none() {
        return false;
    }
    match w.host_of(ci, ni) {
        Some(h) => {
            w.clusters[ci].agents_down.contains_key(&h)
                && !w.clusters[ci].hosts_declared.contains(&h)
        }
        None => false,
    }
}

/// The active member of set-up pair `pi` still provides service but its data link failed and
/// it no longer collects every source, while its partner serves: the heartbeat still gets an
/// answer, so nothing promotes the partner. Notes one incident per failure under the pair's
/// `link_rule`.
fn link_check(w: &mut World, ci: usize, pi: usize) {
    let p = w.clusters[ci].pairs[pi].clone();
    let spec = &w.profile(ci).twin.ha_pairs[p.spec];
    let (Some(rule), Some(a)) = (spec.link_rule.clone(), p.active) else {
        return;
    };
    let name = spec.name.clone();
    let (m, o) = (p.members[a], p.members[1 - a]);
    let cut = p.formed
        && w.provides(ci, m)
        && w.clusters[ci].nodes[m].link_failed
        && !crate::collector::collects_all(w, ci, m)
        && w.provides(ci, o);
    if cut && !p.link_flagged {
        let (mn, on) = (
            w.clusters[ci].nodes[m].name.clone(),
            w.clusters[ci].nodes[o].name.clone(),
        );
        w.incident(
            ci,
            Some(m),
            &rule,
            format!("the data link of {mn}, the active {name}, failed while {mn} runs: the heartbeat from {on} still gets an answer, so {on} is not promoted and must be made active by hand"),
        );
    }
    w.clusters[ci].pairs[pi].link_flagged = cut;
}

/// The controller switches pair `members` over neither now nor while this holds: it is not
/// running, the agent of either member's host is down (GEN-09's hold: the failed member's own
/// host, or its peer's), or it is busy with a server in upgrade mode.
fn controller_withholds(w: &World, ci: usize, members: &[usize; 2]) -> bool {
    !controller_serving(w, ci)
        || held(w, ci, members[0])
        || held(w, ci, members[1])
        || crate::config::controller_busy(w, ci, members)
}

pub(crate) fn settle(w: &mut World, ci: usize) {
    for pi in 0..w.clusters[ci].pairs.len() {
        link_check(w, ci, pi);
        let p = w.clusters[ci].pairs[pi].clone();
        let spec = w.profile(ci).twin.ha_pairs[p.spec].clone();
        let ok = |w: &World, k: usize| w.provides(ci, p.members[k]);
        match p.active {
            None => {
                if let Some(k) = (0..2).find(|&k| ok(w, k)) {
                    w.clusters[ci].pairs[pi].active = Some(k);
                    let name = w.clusters[ci].nodes[p.members[k]].name.clone();
                    w.note(
                        ci,
                        Some(p.members[k]),
                        "active",
                        format!("{name} is the active {}", spec.name),
                    );
                }
            }
            Some(a) if ok(w, a) => {
                if p.promotion_pending {
                    let pm = &mut w.clusters[ci].pairs[pi];
                    pm.promotion_pending = false;
                    pm.gen += 1;
                }
            }
            Some(a) => {
                let b = 1 - a;
                if !ok(w, b) || !p.formed || p.promotion_pending {
                    continue;
                }
                let delay = match spec.promotion {
                    Promotion::Heartbeat => w.draw([1.0, spec.heartbeat_s.max(1.0)]),
                    Promotion::Controller => {
                        if controller_withholds(w, ci, &p.members) {
                            continue;
                        }
                        w.profile(ci)
                            .twin
                            .controller
                            .as_ref()
                            .map_or(1.0, |c| c.detect_s)
                    }
                };
                let pm = &mut w.clusters[ci].pairs[pi];
                pm.promotion_pending = true;
                pm.gen += 1;
                let gen = pm.gen;
                w.schedule(
                    w.now + delay.round().max(1.0) as i64,
                    Event::Promote {
                        cluster: ci,
                        pair: pi,
                        gen,
                    },
                );
            }
        }
    }
}

fn make_active(w: &mut World, ci: usize, pi: usize, k: usize, why: &str) {
    let p = &mut w.clusters[ci].pairs[pi];
    p.active = Some(k);
    p.promotion_pending = false;
    p.gen += 1;
    let (m, si) = (p.members[k], p.spec);
    let spec = w.profile(ci).twin.ha_pairs[si].name.clone();
    let name = w.clusters[ci].nodes[m].name.clone();
    w.note(
        ci,
        Some(m),
        "promoted",
        format!("{name} is now the active {spec} ({why})"),
    );
}

pub(crate) fn promote(w: &mut World, ci: usize, pi: usize, gen: u64) {
    let p = w.clusters[ci].pairs[pi].clone();
    if p.gen != gen || !p.promotion_pending {
        return;
    }
    w.touch(ci);
    let Some(a) = p.active else { return };
    let b = 1 - a;
    w.clusters[ci].pairs[pi].promotion_pending = false;
    // The controller decides when it switches over, not when it noticed the failure: a hold
    // that began meanwhile (the next host's LCA upgrade started) defers it; `settle` schedules
    // it again once the hold ends.
    let spec = &w.profile(ci).twin.ha_pairs[p.spec];
    let withheld =
        spec.promotion == Promotion::Controller && controller_withholds(w, ci, &p.members);
    if !withheld && !w.provides(ci, p.members[a]) && w.provides(ci, p.members[b]) {
        make_active(w, ci, pi, b, "its partner stopped serving");
    }
    w.settle(ci);
}

/// The switchover timeout of a host whose agent is down has passed: the controller gives the
/// host up and switches over every pair whose active member runs there. The timeout is the
/// host's own: it counts from that host's disconnection, whatever other hosts' agents did since
/// (two LCA upgrades at once), and ends with it.
pub(crate) fn host_lost(w: &mut World, ci: usize, host: &str, gen: u64) {
    if w.clusters[ci].agent_down_gen.get(host) != Some(&gen)
        || !w.clusters[ci].agents_down.contains_key(host)
    {
        return;
    }
    w.touch(ci);
    w.clusters[ci].hosts_declared.insert(host.to_string());
    let Some(ctl) = w.profile(ci).twin.controller.clone() else {
        return;
    };
    let timeout = w.clusters[ci].options.get(&ctl.timeout_option).copied();
    for pi in 0..w.clusters[ci].pairs.len() {
        let p = w.clusters[ci].pairs[pi].clone();
        let spec = w.profile(ci).twin.ha_pairs[p.spec].clone();
        if spec.promotion != Promotion::Controller {
            continue;
        }
        let Some(a) = p.active else { continue };
        let (ma, mb) = (p.members[a], p.members[1 - a]);
        if w.host_of(ci, ma).as_deref() != Some(host) || !w.provides(ci, mb) {
            continue;
        }
        if w.provides(ci, ma) {
            let name = w.clusters[ci].nodes[ma].name.clone();
            let why = match timeout {
                Some(t) => format!("longer than {} ({t} s)", ctl.timeout_option),
                None => format!("and {} is not set", ctl.timeout_option),
            };
            w.incident(
                ci,
                Some(ma),
                &ctl.rule,
                format!(
                    "incorrect switchover of the {}: the agent of {host} was disconnected {why}, so the controller switched over from {name}, which was still running",
                    spec.name
                ),
            );
            w.clusters[ci].acc.wrong_switchovers += 1;
            make_active(w, ci, pi, 1 - a, "the controller lost its host");
        }
    }
    w.settle(ci);
}

/// The node's pair exchanges roles (planned, both members running). Returns false when the
/// node's pairs all need setting up and are not set up: there are no roles to exchange yet.
pub(crate) fn reverse(w: &mut World, ci: usize, ni: usize) -> bool {
    let mut any = false;
    let mut unset = false;
    for pi in 0..w.clusters[ci].pairs.len() {
        let p = w.clusters[ci].pairs[pi].clone();
        if !p.members.contains(&ni) {
            continue;
        }
        if !p.formed {
            unset = true;
            continue;
        }
        any = true;
        let Some(a) = p.active else { continue };
        if w.provides(ci, p.members[1 - a]) {
            make_active(w, ci, pi, 1 - a, "roles reversed");
        }
    }
    any || !unset
}

/// The node's pairs are set up: roles assigned (the primary, by the pair's `primary_fact` or
/// its role order, becomes the active member when it serves), heartbeat running.
pub(crate) fn set_up(w: &mut World, ci: usize, ni: usize) {
    for pi in 0..w.clusters[ci].pairs.len() {
        let p = w.clusters[ci].pairs[pi].clone();
        if !p.members.contains(&ni) {
            continue;
        }
        w.clusters[ci].pairs[pi].formed = true;
        let spec = &w.profile(ci).twin.ha_pairs[p.spec];
        let primary = match &spec.primary_fact {
            Some(f) => p
                .members
                .iter()
                .position(|&m| {
                    w.clusters[ci].nodes[m]
                        .facts
                        .get(f)
                        .and_then(|v| v.as_str())
                        == Some("primary")
                })
                .unwrap_or(0),
            None => 0,
        };
        if p.active != Some(primary) && w.provides(ci, p.members[primary]) {
            make_active(w, ci, pi, primary, "roles set up");
        }
    }
}

/// The pair of these roles has an active member, providing service, on another host than node
/// `ni` (and is not `ni`).
pub(crate) fn switched_over(w: &World, ci: usize, ni: usize, roles: &[String]) -> bool {
    let host = w.host_of(ci, ni);
    w.clusters[ci].pairs.iter().any(|p| {
        let spec = &w.profile(ci).twin.ha_pairs[p.spec];
        if !spec.roles.iter().any(|r| roles.contains(r)) {
            return false;
        }
        let Some(a) = p.active else { return false };
        let m = p.members[a];
        m != ni && w.provides(ci, m) && (host.is_none() || w.host_of(ci, m) != host)
    })
}
