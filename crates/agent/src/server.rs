//! The HTTPS API: a TLS listener (tokio-rustls), HTTP/1.1 (hyper) into an axum router;
//! authentication of every request (bearer token compared in constant time, or a client
//! certificate checked against the client CA), the body size limit, and the endpoints.
//!
//! Slow clients are cut off (`[agent.limits]`): a TLS handshake, a request's head, its body
//! and a kept-alive connection's idle time each have a timeout, and the connections open at
//! once are limited. At the limit a new connection takes the place of the one that has waited
//! longest without a request under way (in its handshake, its head, or idle), so connections
//! that send nothing useful can never keep a client out; only when every connection has a
//! request under way is the new one closed at once.

use crate::config::Limits;
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
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use subtle::{Choice, ConstantTimeEq};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
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
    body_timeout: Duration,
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

/// Compares the token's digest with every accepted one in constant time (`subtle`), without
/// stopping at the first match.
fn token_ok(tokens: &[[u8; 32]], given: &[u8]) -> bool {
    let d = digest(given);
    tokens
        .iter()
        .fold(Choice::from(0), |ok, t| ok | t.ct_eq(&d))
        .into()
}

/// The token of an `Authorization: Bearer TOKEN` header: the scheme in any case (RFC 9110
/// §11.1), one or more spaces before the token.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

async fn authenticate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()));
    let by_token = bearer.is_some_and(|t| token_ok(&st.tokens, t));
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
    let body = match tokio::time::timeout(st.body_timeout, limited.collect()).await {
        Err(_) => {
            return reply(Answer::error(
                408,
                format!(
                    "the request's body did not arrive within {} s (body_timeout_s)",
                    st.body_timeout.as_secs_f64()
                ),
            ))
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large()
        }
        Ok(Err(e)) => return reply(Answer::error(400, format!("cannot read the request: {e}"))),
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

/// Where a connection stands, for its timeouts and for making room at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The TLS handshake.
    Handshake,
    /// Reading a request's head (from the handshake's end, or a later request's first byte).
    Head,
    /// A request under way: its body, its operation, its answer (the body has its own timeout).
    Serving,
    /// Kept alive between requests.
    Idle,
}

/// One open connection: its phase and since when, and the signals of its watchdog.
struct Connection {
    phase: Mutex<(Phase, Instant)>,
    /// Its phase changed: the watchdog takes the new deadline.
    changed: Notify,
    /// It was closed to make room for a new connection.
    evicted: Notify,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            phase: Mutex::new((Phase::Handshake, Instant::now())),
            changed: Notify::new(),
            evicted: Notify::new(),
        }
    }

    fn phase(&self) -> (Phase, Instant) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = (phase, Instant::now());
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle connection, a new request's head begins.
    fn bytes_arrived(&self) {
        let mut p = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if p.0 == Phase::Idle {
            *p = (Phase::Head, Instant::now());
            drop(p);
            self.changed.notify_one();
        }
    }

    /// When its phase times out (a request under way has no deadline here).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let (phase, since) = self.phase();
        match phase {
            Phase::Handshake => Some(since + limits.handshake_timeout),
            Phase::Head => Some(since + limits.header_timeout),
            Phase::Idle => Some(since + limits.idle_timeout),
            Phase::Serving => None,
        }
    }
}

/// The open connections, within `max_connections`.
struct Connections {
    limits: Limits,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
}

/// A connection's place among the open ones, given back when its task ends.
struct Admitted {
    all: Arc<Connections>,
    id: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.all
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Connections {
    /// A place for a new connection: at the limit, the one that has waited longest without a
    /// request under way is closed to make room; `None` when every one has a request under way.
    fn admit(self: &Arc<Self>) -> Option<(Admitted, Arc<Connection>)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= self.limits.max_connections {
            let victim = open
                .iter()
                .map(|(id, c)| (*id, c.phase()))
                .filter(|(_, (phase, _))| *phase != Phase::Serving)
                .min_by_key(|(id, (_, since))| (*since, *id))
                .map(|(id, _)| id)?;
            if let Some(c) = open.remove(&victim) {
                c.evicted.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Connection::new());
        open.insert(id, c.clone());
        Some((
            Admitted {
                all: self.clone(),
                id,
            },
            c,
        ))
    }
}

/// The TLS stream, telling its connection when bytes arrive.
struct Watched<T> {
    inner: T,
    conn: Arc<Connection>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.bytes_arrived();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One connection: the TLS handshake, then HTTP/1.1 requests, each phase within its timeout,
/// until the client closes, a timeout, or the connection is closed to make room.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    limits: Limits,
    conn: Arc<Connection>,
    admitted: Admitted,
) {
    let _admitted = admitted;
    let tls = tokio::select! {
        r = acceptor.accept(tcp) => match r {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                return;
            }
        },
        _ = tokio::time::sleep(limits.handshake_timeout) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            return;
        }
        _ = conn.evicted.notified() => {
            tracing::debug!(%remote, "closed in its handshake to make room");
            return;
        }
    };
    conn.set(Phase::Head);
    let peer = Peer {
        certs: Arc::new(
            tls.get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        ),
    };
    let on_request = conn.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            let (app, c) = (app.clone(), on_request.clone());
            async move {
                c.set(Phase::Serving);
                let r = app.oneshot(req.map(Body::new)).await;
                c.set(Phase::Idle);
                r
            }
        });
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(Watched {
                inner: tls,
                conn: conn.clone(),
            }),
            service,
        );
    tokio::pin!(http);
    loop {
        let deadline = conn.deadline(&limits);
        tokio::select! {
            r = &mut http => {
                if let Err(e) = r {
                    tracing::debug!(%remote, error = %e, "connection ended");
                }
                return;
            }
            _ = sleep_until(deadline) => {
                if conn.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%remote, phase = ?conn.phase().0, "connection timed out");
                    return;
                }
            }
            _ = conn.changed.notified() => {}
            _ = conn.evicted.notified() => {
                tracing::debug!(%remote, "closed to make room");
                return;
            }
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    client_auth: Option<ClientAuth>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = engine.cfg.limits.clone();
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
        body_timeout: limits.body_timeout,
        client_auth,
        engine,
    };
    let app = router(st);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let connections = Arc::new(Connections {
        limits: limits.clone(),
        next: AtomicU64::new(0),
        open: Mutex::new(HashMap::new()),
    });
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
        let Some((admitted, conn)) = connections.admit() else {
            tracing::warn!(%remote, max = limits.max_connections, "every connection has a request under way: a new one is closed");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(
            tcp,
            remote,
            acceptor.clone(),
            app.clone(),
            limits.clone(),
            conn,
            admitted,
        ));
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

    /// RFC 9110 §11.1: the scheme is case-insensitive; one or more spaces before the token.
    #[test]
    fn bearer_tokens() {
        for (header, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("bEaReR   abc ", Some("abc")),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearerabc", None),
            ("Basic abc", None),
            ("bearers abc", None),
        ] {
            assert_eq!(
                bearer_token(header.as_bytes()),
                token.map(str::as_bytes),
                "{header:?}"
            );
        }
    }
}
