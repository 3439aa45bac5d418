//! An HTTPS client of the agent's API (rustls with `ring`, HTTP/1.1, one kept-alive
//! connection): async for the agent's own heartbeat, blocking for tools and tests.

use crate::tls;
use bytes::Bytes;
use ferry_model::agent::{AgentStatus, Heartbeat, OpRequest, OpResult};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

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

    fn server_name(&self) -> ServerName<'static> {
        ServerName::try_from(self.host.clone()).unwrap_or_else(|_| {
            ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
        })
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

/// The async client.
pub struct AgentClient {
    endpoint: Endpoint,
    connector: tokio_rustls::TlsConnector,
    token: Option<String>,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl AgentClient {
    pub fn new(url: &str, opts: ClientOptions) -> Result<AgentClient, ClientError> {
        let endpoint = Endpoint::parse(url)?;
        let roots = tls::root_store(tls::certs_from_pem(&opts.ca_pem).map_err(ClientError::Tls)?)
            .map_err(ClientError::Tls)?;
        let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &opts.identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    tls::certs_from_pem(cert).map_err(ClientError::Tls)?,
                    tls::key_from_pem(key).map_err(ClientError::Tls)?,
                )
                .map_err(|e| ClientError::Tls(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(AgentClient {
            endpoint,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            token: opts.token,
            timeout: if opts.timeout.is_zero() {
                Duration::from_secs(30)
            } else {
                opts.timeout
            },
            conn: tokio::sync::Mutex::new(None),
        })
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

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|e| self.transport(e))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.endpoint.server_name(), tcp)
            .await
            .map_err(|e| self.transport(format!("TLS: {e}")))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.transport(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    async fn send_once(
        &self,
        send: &mut SendRequest<Full<Bytes>>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Reply, ClientError> {
        let mut req = hyper::Request::builder().method(method).uri(path).header(
            "host",
            format!("{}:{}", self.endpoint.host, self.endpoint.port),
        );
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if !body.is_empty() || method == "POST" {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| self.transport(e))?;
        send.ready().await.map_err(|e| self.transport(e))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| self.transport(e))?;
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
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// One request; a kept connection that fails is replaced once (every agent request is
    /// safe to repeat: operations are idempotent by ID).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Reply, ClientError> {
        let work = async {
            let mut slot = self.conn.lock().await;
            let reused = slot.as_ref().is_some_and(|s| !s.is_closed());
            let mut send = match slot.take() {
                Some(s) if reused => s,
                _ => self.connect().await?,
            };
            match self.send_once(&mut send, method, path, body).await {
                Ok(r) => {
                    *slot = Some(send);
                    Ok(r)
                }
                Err(_) if reused => {
                    let mut fresh = self.connect().await?;
                    let r = self.send_once(&mut fresh, method, path, body).await?;
                    *slot = Some(fresh);
                    Ok(r)
                }
                Err(e) => Err(e),
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                *self.conn.lock().await = None;
                Err(ClientError::Timeout {
                    endpoint: self.endpoint.to_string(),
                    secs: self.timeout.as_secs_f64(),
                })
            }
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

    pub async fn status(&self) -> Result<AgentStatus, ClientError> {
        let r = self.request("GET", "/v1/status", &[]).await?;
        self.decode(r, &[200])
    }

    pub async fn heartbeat(&self) -> Result<Heartbeat, ClientError> {
        let r = self.request("GET", "/v1/heartbeat", &[]).await?;
        self.decode(r, &[200])
    }

    /// `POST /v1/ops`: the result of an operation that ended (done or failed, `200`), or is
    /// under way (`202`); a refused package (`422`) is an error.
    pub async fn op(&self, req: &OpRequest) -> Result<OpResult, ClientError> {
        let body = serde_json::to_vec(req).map_err(|e| self.transport(e))?;
        let r = self.request("POST", "/v1/ops", &body).await?;
        self.decode(r, &[200, 202])
    }

    /// `GET /v1/ops/{id}`: `None` when the agent has no such operation.
    pub async fn op_result(&self, id: &str) -> Result<Option<OpResult>, ClientError> {
        let r = self
            .request("GET", &ferry_model::agent::op_path(id), &[])
            .await?;
        if r.status == 404 {
            return Ok(None);
        }
        self.decode(r, &[200]).map(Some)
    }
}

/// The same client, blocking (it runs its own single-threaded runtime).
pub struct BlockingClient {
    rt: tokio::runtime::Runtime,
    inner: AgentClient,
}

impl BlockingClient {
    pub fn new(url: &str, opts: ClientOptions) -> Result<BlockingClient, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Tls(format!("cannot start a runtime: {e}")))?;
        Ok(BlockingClient {
            rt,
            inner: AgentClient::new(url, opts)?,
        })
    }
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Result<Reply, ClientError> {
        self.rt.block_on(self.inner.request(method, path, body))
    }
    pub fn status(&self) -> Result<AgentStatus, ClientError> {
        self.rt.block_on(self.inner.status())
    }
    pub fn heartbeat(&self) -> Result<Heartbeat, ClientError> {
        self.rt.block_on(self.inner.heartbeat())
    }
    pub fn op(&self, req: &OpRequest) -> Result<OpResult, ClientError> {
        self.rt.block_on(self.inner.op(req))
    }
    pub fn op_result(&self, id: &str) -> Result<Option<OpResult>, ClientError> {
        self.rt.block_on(self.inner.op_result(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
