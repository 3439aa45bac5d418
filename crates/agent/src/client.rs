//! The HTTPS client of the agent's API, one for every caller: the agent driver
//! (`ferry-exec`), the `ferry agent` commands and benchmark, the tests, and an HA backup's
//! heartbeat to its primary. Blocking, on ureq (HTTP/1.1, kept-alive connections) over rustls
//! with `ring`: every caller asks from a thread of its own and waits (the executor is
//! synchronous; the agent's heartbeat task asks on tokio's blocking pool), so no runtime is
//! needed beside it. The agents' CA is the only root: there is no public root store.
//! Certificates and keys come from PEM through `rustls-pki-types` (`crate::tls`).

use crate::tls;
use ferry_model::agent::{AgentStatus, Heartbeat, OpRequest, OpResult};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad agent URL `{url}`: {why}")]
    Url { url: String, why: String },
    #[error("{0}")]
    Tls(String),
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{endpoint}: timed out after {secs} s")]
    Timeout { endpoint: String, secs: f64 },
    #[error("{endpoint}: HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("{endpoint}: unexpected answer: {message}")]
    Decode { endpoint: String, message: String },
}

impl ClientError {
    /// What went wrong, without the agent's URL (for a message that names it already).
    pub fn reason(&self) -> String {
        match self {
            ClientError::Url { why, .. } => why.clone(),
            ClientError::Tls(m) => m.clone(),
            ClientError::Transport { message, .. } | ClientError::Decode { message, .. } => {
                message.clone()
            }
            ClientError::Timeout { secs, .. } => format!("timed out after {secs} s"),
            ClientError::Status { status, body, .. } => format!("HTTP {status}: {body}"),
        }
    }
}

/// Where an agent listens: `https://HOST:PORT` (port 443 when omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, ClientError> {
        let bad = |why: &str| ClientError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("it must start with https://"))?;
        let hostport = rest.trim_end_matches('/');
        if hostport.contains('/') || hostport.is_empty() {
            return Err(bad("expected https://HOST:PORT"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => 443,
                None => return Err(bad("expected https://[ADDR]:PORT")),
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (hostport.to_string(), 443),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        ServerName::try_from(host.clone()).map_err(|_| bad("not a host name or address"))?;
        Ok(Endpoint { host, port })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "https://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "https://{}:{}", self.host, self.port)
        }
    }
}

/// How to reach an agent.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Bearer token.
    pub token: Option<String>,
    /// PEM of the CA that signed the agent's certificate.
    pub ca_pem: Vec<u8>,
    /// PEM certificate chain and key, for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Limit for one request (connection included); 30 s when zero.
    pub timeout: Duration,
    /// Limit for the connection (TCP and TLS handshake); only `timeout` when `None`.
    pub connect_timeout: Option<Duration>,
    /// Limit for the answer's head once the request is sent; only `timeout` when `None`.
    pub response_timeout: Option<Duration>,
}

/// An answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The largest answer read (an agent's answers are a few kilobytes).
const ANSWER_LIMIT: u64 = 16 << 20;

/// The TLS settings, credentials, limits and kept-alive connections that the clients of many
/// agents share (the agent driver reaches every node of a site through one).
#[derive(Clone)]
pub struct Connector {
    http: ureq::Agent,
    token: Option<Arc<str>>,
    timeout: Duration,
}

impl Connector {
    pub fn new(opts: ClientOptions) -> Result<Connector, ClientError> {
        let tls_error = |e: String| ClientError::Tls(e);
        let roots = tls::certs_from_pem(&opts.ca_pem).map_err(tls_error)?;
        // A CA that rustls cannot use is refused here, as is a client key that does not go
        // with its certificate: ureq would skip the one and stop at the other.
        let store = tls::root_store(roots.clone()).map_err(tls_error)?;
        let check = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(store);
        let mut config = ureq::tls::TlsConfig::builder()
            .unversioned_rustls_crypto_provider(tls::provider())
            .root_certs(ureq::tls::RootCerts::new_with_certs(
                &roots
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                    .collect::<Vec<_>>(),
            ));
        if let Some((cert, key_pem)) = &opts.identity {
            let chain = tls::certs_from_pem(cert).map_err(tls_error)?;
            let key = tls::key_from_pem(key_pem).map_err(tls_error)?;
            check
                .with_client_auth_cert(chain.clone(), key)
                .map_err(|e| ClientError::Tls(format!("client certificate and key: {e}")))?;
            let chain: Vec<_> = chain
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            // ureq takes the key as PEM (it reads it with rustls-pki-types as well).
            let key = ureq::tls::PrivateKey::from_pem(key_pem)
                .map_err(|e| ClientError::Tls(format!("client key: {e}")))?;
            config = config.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        let timeout = if opts.timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            opts.timeout
        };
        let http = ureq::Agent::config_builder()
            .tls_config(config.build())
            .https_only(true)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .timeout_connect(opts.connect_timeout)
            .timeout_recv_response(opts.response_timeout)
            .build()
            .into();
        Ok(Connector {
            http,
            token: opts.token.map(Arc::from),
            timeout,
        })
    }

    /// A client of the agent at `url` (`https://HOST:PORT`).
    pub fn client(&self, url: &str) -> Result<AgentClient, ClientError> {
        Ok(AgentClient {
            connector: self.clone(),
            endpoint: Endpoint::parse(url)?,
        })
    }
}

/// A client of one agent.
#[derive(Clone)]
pub struct AgentClient {
    connector: Connector,
    endpoint: Endpoint,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("endpoint", &self.endpoint.to_string())
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    pub fn new(url: &str, opts: ClientOptions) -> Result<AgentClient, ClientError> {
        Connector::new(opts)?.client(url)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn transport(&self, message: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            endpoint: self.endpoint.to_string(),
            message: message.to_string(),
        }
    }

    /// The error, and whether the request may be sent again at once (it broke off, but did
    /// not run out of time).
    fn error(&self, e: ureq::Error) -> (ClientError, bool) {
        match e {
            ureq::Error::Timeout(ureq::Timeout::Global) => (
                ClientError::Timeout {
                    endpoint: self.endpoint.to_string(),
                    secs: self.connector.timeout.as_secs_f64(),
                },
                false,
            ),
            ureq::Error::Timeout(t) => (self.transport(format!("no answer in time ({t})")), false),
            ureq::Error::Rustls(e) => (self.transport(format!("TLS: {e}")), false),
            // A refused handshake (the agent's certificate is not of the CA, or it refused
            // ours) is no connection to try again.
            ureq::Error::Io(e) => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
            {
                Some(tls) => (self.transport(format!("TLS: {tls}")), false),
                None => (self.transport(e), true),
            },
            e => (self.transport(e), true),
        }
    }

    fn send_once(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Reply, (ClientError, bool)> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint));
        if let Some(t) = &self.connector.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if !body.is_empty() || method == "POST" {
            req = req.header("content-type", "application/json");
        }
        let sent = if body.is_empty() && method != "POST" {
            let req = req
                .body(ureq::SendBody::none())
                .map_err(|e| (self.transport(e), false))?;
            self.connector.http.run(req)
        } else {
            let req = req.body(body).map_err(|e| (self.transport(e), false))?;
            self.connector.http.run(req)
        };
        let mut resp = sent.map_err(|e| self.error(e))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(ANSWER_LIMIT)
            .read_to_vec()
            .map_err(|e| self.error(e))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// One request. One that breaks off before an answer (a kept connection the agent had
    /// closed) is sent once more: every agent request is safe to repeat, since operations are
    /// idempotent by ID. One that timed out is not.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Result<Reply, ClientError> {
        match self.send_once(method, path, body) {
            Err((_, true)) => self.send_once(method, path, body).map_err(|(e, _)| e),
            r => r.map_err(|(e, _)| e),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        r: Reply,
        ok: &[u16],
    ) -> Result<T, ClientError> {
        if !ok.contains(&r.status) {
            return Err(ClientError::Status {
                endpoint: self.endpoint.to_string(),
                status: r.status,
                body: String::from_utf8_lossy(&r.body).into_owned(),
            });
        }
        serde_json::from_slice(&r.body).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint.to_string(),
            message: e.to_string(),
        })
    }

    pub fn status(&self) -> Result<AgentStatus, ClientError> {
        let r = self.request("GET", "/v1/status", &[])?;
        self.decode(r, &[200])
    }

    pub fn heartbeat(&self) -> Result<Heartbeat, ClientError> {
        let r = self.request("GET", "/v1/heartbeat", &[])?;
        self.decode(r, &[200])
    }

    /// `POST /v1/ops`: the result of an operation that ended (done or failed, `200`), or is
    /// under way (`202`); a refused package (`422`) is an error.
    pub fn op(&self, req: &OpRequest) -> Result<OpResult, ClientError> {
        let body = serde_json::to_vec(req).map_err(|e| self.transport(e))?;
        let r = self.request("POST", "/v1/ops", &body)?;
        self.decode(r, &[200, 202])
    }

    /// `GET /v1/ops/{id}`: `None` when the agent has no such operation.
    pub fn op_result(&self, id: &str) -> Result<Option<OpResult>, ClientError> {
        let r = self.request("GET", &ferry_model::agent::op_path(id), &[])?;
        if r.status == 404 {
            return Ok(None);
        }
        self.decode(r, &[200]).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, Issued};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// What the loopback server saw of one request.
    #[derive(Debug)]
    struct Seen {
        connection: usize,
        head: String,
        client_cert: bool,
    }

    /// A TLS server on loopback that answers `replies` in turn (status, body), one request per
    /// reply; `close_after_each` drops each connection after its answer, without saying so.
    fn serve(
        server: &Issued,
        client_ca: Option<&Ca>,
        replies: Vec<(u16, &'static str)>,
        close_after_each: bool,
    ) -> (u16, mpsc::Receiver<Seen>) {
        let dir = std::env::temp_dir().join(format!(
            "ferry-client-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("cert.pem"), &server.cert_pem).expect("cert");
        std::fs::write(dir.join("key.pem"), &server.key_pem).expect("key");
        let ca_path = dir.join("client-ca.pem");
        if let Some(ca) = client_ca {
            std::fs::write(&ca_path, ca.cert_pem()).expect("ca");
        }
        let (config, _) = tls::server_config(
            &dir.join("cert.pem"),
            &dir.join("key.pem"),
            client_ca.map(|_| ca_path.as_path()),
        )
        .expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut replies = replies.into_iter();
            let mut connection = 0;
            while let Ok((tcp, _)) = listener.accept() {
                connection += 1;
                let conn = rustls::ServerConnection::new(config.clone()).expect("conn");
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                loop {
                    let mut head = String::new();
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        match tls.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if head.is_empty() {
                        break;
                    }
                    let mut body = vec![0; length];
                    let _ = tls.read_exact(&mut body);
                    let client_cert = tls.get_ref().conn.peer_certificates().is_some();
                    let _ = tx.send(Seen {
                        connection,
                        head,
                        client_cert,
                    });
                    let Some((status, text)) = replies.next() else {
                        return;
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = tls.get_mut().write_all(answer.as_bytes());
                    let _ = tls.get_mut().flush();
                    if close_after_each {
                        break;
                    }
                }
            }
        });
        (port, rx)
    }

    fn options(ca: &Ca) -> ClientOptions {
        ClientOptions {
            token: Some("t0ken".into()),
            ca_pem: ca.cert_pem().into_bytes(),
            timeout: Duration::from_secs(20),
            ..ClientOptions::default()
        }
    }

    /// One client for every caller: the token is sent, the agents' CA is the only root, a kept
    /// connection serves the next request, and a 404 of an operation is `None`.
    #[test]
    fn requests_over_one_kept_connection() {
        let ca = Ca::new("agents").expect("ca");
        let server = ca.server("kv-a", &["127.0.0.1".into()]).expect("server");
        let (port, seen) = serve(&server, None, vec![(200, "{}"), (404, "{}")], false);
        let c =
            AgentClient::new(&format!("https://127.0.0.1:{port}"), options(&ca)).expect("client");
        let r = c
            .request("POST", "/v1/ops", b"{\"id\":\"x\"}")
            .expect("post");
        assert_eq!((r.status, r.json()), (200, serde_json::json!({})));
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"));
        assert_eq!(c.op_result("run-1/a").expect("get"), None);
        let (first, second) = (seen.recv().expect("first"), seen.recv().expect("second"));
        assert!(
            first.head.starts_with("POST /v1/ops HTTP/1.1"),
            "{}",
            first.head
        );
        assert!(
            first
                .head
                .to_ascii_lowercase()
                .contains("authorization: bearer t0ken"),
            "{}",
            first.head
        );
        assert!(
            second.head.starts_with("GET /v1/ops/run-1%2Fa HTTP/1.1"),
            "{}",
            second.head
        );
        assert_eq!(
            (first.connection, second.connection),
            (1, 1),
            "one kept connection"
        );
        assert!(!first.client_cert);
    }

    /// A kept connection the agent closed is replaced, and the request sent again.
    #[test]
    fn a_closed_kept_connection_is_replaced() {
        let ca = Ca::new("agents").expect("ca");
        let server = ca.server("kv-a", &["127.0.0.1".into()]).expect("server");
        let (port, seen) = serve(&server, None, vec![(200, "{}"), (200, "{}")], true);
        let c =
            AgentClient::new(&format!("https://127.0.0.1:{port}"), options(&ca)).expect("client");
        assert_eq!(
            c.request("GET", "/v1/heartbeat", &[])
                .expect("first")
                .status,
            200
        );
        assert_eq!(
            c.request("GET", "/v1/heartbeat", &[])
                .expect("second")
                .status,
            200
        );
        let connections: Vec<usize> = seen.try_iter().map(|s| s.connection).collect();
        assert_eq!(connections.last(), Some(&2), "{connections:?}");
    }

    /// A certificate from another CA is refused at the handshake; a client certificate is
    /// presented; a key that does not go with its certificate is an error, not a panic.
    #[test]
    fn trust_and_identity() {
        let ca = Ca::new("agents").expect("ca");
        let server = ca.server("kv-a", &["127.0.0.1".into()]).expect("server");
        let (port, seen) = serve(&server, Some(&ca), vec![(200, "{}")], false);
        let url = format!("https://127.0.0.1:{port}");
        let other = Ca::new("someone else").expect("ca");
        let e = AgentClient::new(&url, options(&other))
            .expect("client")
            .request("GET", "/v1/status", &[])
            .expect_err("another CA");
        assert!(e.to_string().contains("TLS"), "{e}");
        let me = ca.client("ops").expect("client cert");
        let mut opts = options(&ca);
        opts.identity = Some((
            me.cert_pem.clone().into_bytes(),
            me.key_pem.clone().into_bytes(),
        ));
        let c = AgentClient::new(&url, opts.clone()).expect("client");
        assert_eq!(
            c.request("GET", "/v1/status", &[]).expect("status").status,
            200
        );
        assert!(
            seen.try_iter().any(|s| s.client_cert),
            "no client certificate presented"
        );
        let stranger = ca.client("stranger").expect("client cert");
        opts.identity = Some((me.cert_pem.into_bytes(), stranger.key_pem.into_bytes()));
        let e = AgentClient::new(&url, opts).expect_err("a key of another certificate");
        assert!(matches!(e, ClientError::Tls(_)), "{e}");
        let e = AgentClient::new(&url, ClientOptions::default()).expect_err("no CA");
        assert!(e.to_string().contains("no certificate"), "{e}");
    }

    #[test]
    fn endpoints() {
        for (url, want) in [
            ("https://127.0.0.1:7443", Some(("127.0.0.1", 7443))),
            ("https://kv-a.example:8443/", Some(("kv-a.example", 8443))),
            ("https://[::1]:7443", Some(("::1", 7443))),
            ("https://host", Some(("host", 443))),
            ("http://127.0.0.1:7443", None),
            ("https://127.0.0.1:x", None),
            ("https://h:1/path", None),
        ] {
            let got = Endpoint::parse(url).ok();
            assert_eq!(
                got.as_ref().map(|e| (e.host.as_str(), e.port)),
                want,
                "{url}"
            );
        }
    }

    #[test]
    fn ids_encode() {
        assert_eq!(
            ferry_model::agent::op_path("run-1/kv/kv-b/stage"),
            "/v1/ops/run-1%2Fkv%2Fkv-b%2Fstage"
        );
    }
}
