//! The HTTPS API: a TLS listener (tokio-rustls), HTTP/1.1 (hyper) into an axum router;
//! authentication of every request (bearer token compared in constant time, or a client
//! certificate checked against the client CA), the body size limit, and the endpoints.

use crate::ops::{Answer, Engine};
use crate::tls::ClientAuth;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// What the connection's TLS handshake established, attached to each of its requests.
#[derive(Clone, Default)]
pub struct Peer {
    pub certs: Arc<Vec<CertificateDer<'static>>>,
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    /// SHA-256 of each accepted token.
    tokens: Arc<Vec<[u8; 32]>>,
    client_auth: Option<ClientAuth>,
    max_body: u64,
}

fn reply(a: Answer) -> Response {
    let mut r = Response::new(Body::from(a.body));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn digest(s: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(s).into()
}

/// Compares the token's digest with every accepted one, without stopping early.
fn token_ok(tokens: &[[u8; 32]], given: &[u8]) -> bool {
    let d = digest(given);
    let mut ok = 0u8;
    for t in tokens {
        let mut diff = 0u8;
        for (a, b) in t.iter().zip(d.iter()) {
            diff |= a ^ b;
        }
        ok |= std::hint::black_box(u8::from(diff == 0));
    }
    ok != 0
}

async fn authenticate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .map(|t| t.trim_ascii());
    let by_token = bearer.is_some_and(|t| !t.is_empty() && token_ok(&st.tokens, t));
    let by_cert = !by_token
        && match (&st.client_auth, req.extensions().get::<Peer>()) {
            (Some(auth), Some(peer)) if !peer.certs.is_empty() => auth.verify(&peer.certs),
            _ => false,
        };
    if !(by_token || by_cert) {
        let mut r = reply(Answer::error(
            401,
            if bearer.is_some() {
                "the token is not one of this agent's"
            } else {
                "authentication needed: a bearer token or a client certificate"
            },
        ));
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

async fn blocking<F>(st: &AppState, f: F) -> Response
where
    F: FnOnce(&Engine) -> Answer + Send + 'static,
{
    let engine = st.engine.clone();
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(a) => reply(a),
        Err(e) => reply(Answer::error(500, format!("the operation broke off: {e}"))),
    }
}

async fn status(State(st): State<AppState>) -> Response {
    blocking(&st, |e| Answer::json(200, &e.status())).await
}

async fn heartbeat(State(st): State<AppState>) -> Response {
    blocking(&st, |e| Answer::json(200, &e.heartbeat())).await
}

async fn get_op(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    blocking(&st, move |e| e.get_op(&id)).await
}

async fn post_op(State(st): State<AppState>, req: Request) -> Response {
    let too_large = || {
        reply(Answer::error(
            413,
            format!("the request is larger than {} bytes", st.max_body),
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.max_body) {
        return too_large();
    }
    let limited = http_body_util::Limited::new(req.into_body(), st.max_body as usize);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large()
        }
        Err(e) => return reply(Answer::error(400, format!("cannot read the request: {e}"))),
    };
    blocking(&st, move |e| e.post_op(&body)).await
}

async fn not_found() -> Response {
    reply(Answer::error(404, "no such endpoint"))
}

async fn not_allowed() -> Response {
    reply(Answer::error(405, "method not allowed on this endpoint"))
}

/// The API's router.
fn router(st: AppState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/heartbeat", get(heartbeat))
        .route("/v1/ops", post(post_op))
        .route("/v1/ops/{*id}", get(get_op))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            authenticate,
        ))
        .with_state(st)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    client_auth: Option<ClientAuth>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let st = AppState {
        tokens: Arc::new(
            engine
                .cfg
                .tokens
                .iter()
                .map(|t| digest(t.as_bytes()))
                .collect(),
        ),
        max_body: engine.cfg.max_request_bytes,
        client_auth,
        engine,
    };
    let app = router(st);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let peer = Peer {
                certs: Arc::new(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                        .unwrap_or_default(),
                ),
            };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer.clone());
                    app.clone().oneshot(req.map(Body::new))
                },
            );
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%remote, error = %e, "connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare() {
        let tokens = vec![
            digest(b"first-token-0123456789"),
            digest(b"second-token-0123456789"),
        ];
        for (given, ok) in [
            (&b"first-token-0123456789"[..], true),
            (b"second-token-0123456789", true),
            (b"first-token-012345678", false),
            (b"", false),
        ] {
            assert_eq!(token_ok(&tokens, given), ok, "{given:?}");
        }
        assert!(!token_ok(&[], b"x"));
    }
}
