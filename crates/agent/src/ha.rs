//! HA pairs: the backup's heartbeat to its primary's agent (`GET /v1/heartbeat` every
//! `heartbeat_s`), promotion after `misses` missed or unhealthy beats in a row (counted while
//! the backup itself runs healthy), and the start-up question a primary asks its peer before
//! it starts.

use crate::client::{AgentClient, ClientOptions};
use crate::config::{HaConfig, HaMode};
use crate::ops::Engine;
use ferry_model::agent::{Health, Heartbeat};
use std::sync::Arc;
use std::time::Duration;

fn options(ha: &HaConfig, timeout: Duration) -> Option<ClientOptions> {
    let ca_pem = std::fs::read(ha.peer_ca.as_ref()?).ok()?;
    Some(ClientOptions {
        token: ha.peer_token.clone(),
        ca_pem,
        identity: None,
        timeout,
        ..ClientOptions::default()
    })
}

/// The peer's heartbeat, or `None` when it does not answer.
pub fn ask_peer_blocking(ha: &HaConfig, timeout: Duration) -> Option<Heartbeat> {
    let client = AgentClient::new(ha.peer.as_deref()?, options(ha, timeout)?).ok()?;
    client.heartbeat().ok()
}

/// Whether a heartbeat shows the peer's `service` alive as primary.
pub fn primary_alive(beat: &Heartbeat, service: &str) -> bool {
    beat.services.iter().any(|b| {
        b.name == service
            && b.role.as_deref() == Some("primary")
            && matches!(b.health, Health::Healthy | Health::Starting)
    })
}

/// Starts one heartbeat task per pair service (it acts only while the service is the backup).
pub fn spawn_heartbeats(engine: Arc<Engine>) {
    for svc in engine.services() {
        let Some(ha) = svc.cfg.ha.clone() else {
            continue;
        };
        if ha.mode != HaMode::Pair {
            continue;
        }
        let period = Duration::from_secs_f64(ha.heartbeat_s);
        let timeout = period.clamp(Duration::from_millis(200), Duration::from_secs(10));
        let Some(client) = ha
            .peer
            .as_deref()
            .zip(options(&ha, timeout))
            .and_then(|(url, o)| AgentClient::new(url, o).ok())
        else {
            tracing::error!(service = %svc.cfg.name, "cannot reach the peer (its URL or CA): no heartbeat");
            continue;
        };
        let name = svc.cfg.name.clone();
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut misses = 0u32;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(svc) = engine.services().find(|s| s.cfg.name == name).cloned() else {
                    return;
                };
                if engine.role(&svc).as_deref() != Some("backup") {
                    misses = 0;
                    continue;
                }
                // A backup that does not run healthy itself has nothing to take over with.
                let e = engine.clone();
                let s = svc.clone();
                let own = tokio::task::spawn_blocking(move || e.health(&s)).await;
                if !matches!(own, Ok(Health::Healthy)) {
                    misses = 0;
                    continue;
                }
                let c = client.clone();
                let beat = tokio::task::spawn_blocking(move || c.heartbeat()).await;
                let alive = match beat {
                    Ok(Ok(beat)) => primary_alive(&beat, &name),
                    Ok(Err(e)) => {
                        tracing::debug!(service = %name, error = %e, "no heartbeat");
                        false
                    }
                    Err(e) => {
                        tracing::debug!(service = %name, error = %e, "no heartbeat");
                        false
                    }
                };
                if alive {
                    misses = 0;
                    continue;
                }
                misses += 1;
                tracing::warn!(service = %name, misses, of = ha.misses, "the primary missed a heartbeat");
                if misses >= ha.misses {
                    misses = 0;
                    let e = engine.clone();
                    let n = name.clone();
                    match tokio::task::spawn_blocking(move || e.promote(&n)).await {
                        Ok(Ok(msg)) => tracing::warn!(service = %name, "{msg}"),
                        Ok(Err(err)) => {
                            tracing::error!(service = %name, error = %err, "promotion failed")
                        }
                        Err(err) => {
                            tracing::error!(service = %name, error = %err, "promotion broke off")
                        }
                    }
                }
            }
        });
    }
}
