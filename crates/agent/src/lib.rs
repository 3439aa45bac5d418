//! `ferry-agent`: the node daemon behind `ferry agent --config agent.toml`. It keeps each
//! service in two slots (A/B), stages signed packages into the inactive one, switches between
//! them atomically with a health check and an automatic revert, snapshots configuration,
//! supervises the service's process and runs an HA pair's heartbeat and promotion, behind an
//! authenticated HTTPS API (`docs/agent-api.md`; its types are `ferry_model::agent`).
//!
//! The agent knows no product: services are command lines, health checks and probes.

pub mod client;
pub mod config;
pub mod files;
pub mod ha;
pub mod health;
pub mod journal;
pub mod keys;
pub mod ops;
pub mod package;
pub mod pki;
pub mod server;
pub mod slots;
pub mod supervisor;
pub mod tls;

pub use config::{load as load_config, Config, ConfigError};
pub use ops::Engine;

use std::net::SocketAddr;
use std::sync::Arc;

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("supervisor: {0}")]
    Supervisor(String),
}

/// Everything up to serving: TLS loaded, the port bound, the engine open (crash recovery
/// done, services started).
struct Prepared {
    engine: Arc<Engine>,
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    client_auth: Option<tls::ClientAuth>,
}

fn prepare(cfg: Config) -> Result<Prepared, AgentError> {
    let (tls, client_auth) =
        tls::server_config(&cfg.tls.cert, &cfg.tls.key, cfg.tls.client_ca.as_deref())?;
    let listener =
        std::net::TcpListener::bind(cfg.listen).map_err(|source| AgentError::Listen {
            addr: cfg.listen,
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| AgentError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let engine = Arc::new(Engine::open(cfg)?);
    Ok(Prepared {
        engine,
        listener,
        tls,
        client_auth,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, AgentError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ferry-agent")
        .enable_all()
        .build()
        .map_err(|source| AgentError::Io {
            what: "cannot start the runtime".into(),
            source,
        })
}

async fn serve(
    p: Prepared,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let addr = p.listener.local_addr().ok();
    let listener =
        tokio::net::TcpListener::from_std(p.listener).map_err(|source| AgentError::Io {
            what: "cannot listen".into(),
            source,
        })?;
    ha::spawn_heartbeats(p.engine.clone());
    tracing::info!(agent = %p.engine.cfg.name, addr = ?addr, "listening (HTTPS)");
    server::serve(p.engine, listener, p.tls, p.client_auth, shutdown).await;
    Ok(())
}

/// Runs the agent until SIGTERM or SIGINT, then exits and leaves the services running (the next
/// agent on the same directory adopts them): restarting the agent is no outage.
pub fn run(cfg: Config) -> Result<(), AgentError> {
    let p = prepare(cfg)?;
    let engine = p.engine.clone();
    let rt = runtime()?;
    let r = rt.block_on(serve(p, async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
        tracing::info!("stopping");
    }));
    engine.shutdown();
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    r
}

/// An agent running in this process (benchmarks, tools): it serves until `stop`, which (unlike
/// the daemon's end) also stops its services: they are its caller's.
pub struct RunningAgent {
    addr: SocketAddr,
    engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), AgentError>>>,
}

impl RunningAgent {
    /// The address it listens on (a port chosen by the system when the configuration says 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Stops serving and stops the services it runs.
    pub fn stop(mut self) -> Result<(), AgentError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), AgentError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let r = match self.thread.take() {
            Some(t) => t.join().unwrap_or(Ok(())),
            None => Ok(()),
        };
        self.engine.shutdown();
        self.engine.stop_services();
        r
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Starts an agent in this process, on a thread of its own.
pub fn start(cfg: Config) -> Result<RunningAgent, AgentError> {
    let p = prepare(cfg)?;
    let addr = p.listener.local_addr().map_err(|source| AgentError::Io {
        what: "cannot read the listening address".into(),
        source,
    })?;
    let engine = p.engine.clone();
    let rt = runtime()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ferry-agent".into())
        .spawn(move || {
            let r = rt.block_on(serve(p, async {
                let _ = rx.await;
            }));
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            r
        })
        .map_err(|source| AgentError::Io {
            what: "cannot start a thread".into(),
            source,
        })?;
    Ok(RunningAgent {
        addr,
        engine,
        stop: Some(tx),
        thread: Some(thread),
    })
}
