//! Webhooks: what happens to runs, posted as JSON to each configured URL and signed as
//! Standard Webhooks signs (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,` the
//! base64 HMAC-SHA256 of `ID.TIMESTAMP.BODY` under the `whsec_` secret), retried with an
//! exponential backoff, every attempt written to the delivery log.
//!
//! Events: `run.started`, `run.waiting_for_approval` (with a link to the run), `step.failed`,
//! `run.completed`, `run.stopped`, `run.failed`. They are read from the runner's live events,
//! so they follow the journal's writes.

use crate::metrics::Metrics;
use crate::runs::RunEvent;
use crate::store::{Store, WebhookDelivery};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// Attempts per event and URL.
pub const ATTEMPTS: u32 = 5;

/// Where and how events are posted.
#[derive(Clone)]
pub struct Webhooks {
    pub urls: Vec<String>,
    /// The secret's bytes (the base64 after `whsec_`).
    pub secret: Vec<u8>,
    /// The first retry's delay; each next one doubles it.
    pub backoff: Duration,
    /// The dashboard's address for links (`https://ferry.example.net`), if known.
    pub public_url: Option<String>,
}

/// Shown without its secret.
impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("urls", &self.urls)
            .field("backoff", &self.backoff)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// The bytes of a `whsec_BASE64` secret (the prefix is optional).
pub fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let b64 = t.strip_prefix("whsec_").unwrap_or(t);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the webhook secret is not `whsec_` and base64: {e}"))?;
    if bytes.len() < 24 {
        return Err("the webhook secret must have at least 24 bytes".into());
    }
    Ok(bytes)
}

/// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The webhook event type of a live event, if it is one.
fn event_type(e: &RunEvent) -> Option<&'static str> {
    Some(match (e.kind, e.state.as_str()) {
        ("run", "running") if e.by.is_some() => "run.started",
        ("run", "paused") if e.step.is_some() => "run.waiting_for_approval",
        ("run", "complete") => "run.completed",
        ("run", "stopped") => "run.stopped",
        ("run", "failed") => "run.failed",
        ("step", "failed") => "step.failed",
        _ => return None,
    })
}

/// Posts every webhook event of `events` until the channel closes.
pub async fn deliver_all(
    hooks: Webhooks,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut events: tokio::sync::broadcast::Receiver<RunEvent>,
) {
    loop {
        let e = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "webhooks missed events");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(kind) = event_type(&e) else {
            continue;
        };
        let Ok(id) = crate::auth::random_text(12).map(|r| format!("msg_{r}")) else {
            continue;
        };
        let link = hooks
            .public_url
            .as_deref()
            .map(|u| format!("{}/runs/{}", u.trim_end_matches('/'), e.run));
        let now = ferry_exec::system_now();
        let body = json!({
            "type": kind,
            "timestamp": jiff::Timestamp::from_second(now).map(|t| t.to_string()).unwrap_or_default(),
            "data": {
                "run": e.run,
                "step": e.step,
                "state": e.state,
                "by": e.by,
                "at": e.at,
                "link": link,
            }
        })
        .to_string();
        for url in &hooks.urls {
            tokio::spawn(deliver(
                hooks.clone(),
                store.clone(),
                metrics.clone(),
                url.clone(),
                id.clone(),
                kind,
                body.clone(),
            ));
        }
    }
}

/// One event to one URL: up to `ATTEMPTS` tries, the same id each time, a fresh timestamp
/// and signature per try, `backoff` doubling between them.
async fn deliver(
    hooks: Webhooks,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    url: String,
    id: String,
    kind: &'static str,
    body: String,
) {
    let mut delay = hooks.backoff;
    for attempt in 1..=ATTEMPTS {
        let timestamp = ferry_exec::system_now();
        let sig = signature(&hooks.secret, &id, timestamp, &body);
        let (u, i, b) = (url.clone(), id.clone(), body.clone());
        let result = tokio::task::spawn_blocking(move || post(&u, &i, timestamp, &sig, &b))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let (status, error) = match &result {
            Ok(s) => (Some(*s), None),
            Err(e) => (None, Some(e.clone())),
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        if !ok {
            metrics.webhook_failed();
        }
        let _ = store.log_delivery(&WebhookDelivery {
            id: id.clone(),
            url: url.clone(),
            event: kind.into(),
            attempt,
            time: timestamp,
            status,
            error: error.or_else(|| (!ok).then(|| format!("status {}", status.unwrap_or(0)))),
        });
        if ok {
            return;
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}

/// One POST; the response's status, or why there was none.
fn post(url: &str, id: &str, timestamp: i64, sig: &str, body: &str) -> Result<u16, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sig)
        .send(body)
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}
