//! `ferry serve`: one process that serves the team's shared view of an upgrade — a JSON API
//! under `/api/v1/`, a server-rendered dashboard with live updates, and `/metrics` — over the
//! journal of a state directory, with local users, API tokens, roles and an audit log.
//!
//! The pieces: `store` (the storage boundary: the journal's runs and the server's own tables),
//! `auth` (passwords, tokens, sessions, roles, the login rate limit), `runs` (carrying runs
//! out on blocking threads, live events), `api` and `pages` (the routes), `metrics`, and
//! `listen` (plain HTTP or TLS on one listener).

pub mod api;
pub mod auth;
pub mod listen;
pub mod metrics;
pub mod pages;
pub mod runs;
pub mod store;
pub mod webhooks;

use anyhow::{bail, Context, Result};
use auth::Role;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `ferry serve`: the dashboard, the API and the metrics of a state directory.
#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// The address to listen on (loopback by default: put a TLS certificate on anything
    /// reachable from elsewhere).
    #[arg(long, default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,
    /// The state directory: the journal the CLI uses, and the server's users, sessions,
    /// tokens and audit log (`serve.db`).
    #[arg(long, default_value = ferry_exec::DEFAULT_STATE_DIR, global = true)]
    pub state: PathBuf,
    /// A PEM certificate chain: serve HTTPS (cookies are then `Secure`).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Let the person who started a run approve its pause steps (the two-person rule is on by
    /// default: the approver must be someone else).
    #[arg(long)]
    pub no_two_person_rule: bool,
    /// Post run events to this URL (repeatable), signed as Standard Webhooks signs them.
    #[arg(long = "webhook", value_name = "URL", requires = "webhook_secret_file")]
    pub webhooks: Vec<String>,
    /// The webhooks' signing secret: a file holding `whsec_` and at least 24 bytes in base64.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// The dashboard's address as its users reach it (`https://ferry.example.net`): webhook
    /// events link to the run's page there.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The built-in example sites (`example:NAME`), given by the binary that embeds them.
    #[arg(skip)]
    pub examples: &'static [(&'static str, &'static str)],
}

impl ServeArgs {
    /// These arguments with the built-in example sites the binary embeds.
    pub fn with_examples(mut self, examples: &'static [(&'static str, &'static str)]) -> Self {
        self.examples = examples;
        self
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ServeCommand {
    /// Manage the server's local users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens (for scripts: `Authorization: Bearer TOKEN`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Add a user (or set the role and password of an existing one). The password is read
    /// from standard input (its first line); from a terminal, or when the input is empty, a
    /// generated password is printed.
    Add {
        name: String,
        /// viewer, operator, approver or admin.
        #[arg(long)]
        role: Role,
    },
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum TokenCommand {
    /// Make an API token for a user; it is printed once (only its hash is kept).
    Add { user: String },
}

/// Runs `ferry serve` (or its `user` and `token` subcommands).
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let store = store::SqliteStore::open(&args.state)
        .with_context(|| format!("cannot open the state directory {}", args.state.display()))?;
    let clock: auth::Clock = Arc::new(ferry_exec::system_now);
    match &args.command {
        Some(ServeCommand::User(UserCommand::Add { name, role })) => {
            let (password, generated) = password_from_stdin()?;
            auth::check_name(name)?;
            let hash = auth::hash_password(&password)?;
            use store::Store;
            store.put_user(name, *role, &hash, clock())?;
            store.audit(&store::AuditEntry::new(
                clock(),
                "ferry serve user add",
                "user.add",
                &format!("{name} as {}", role.as_str()),
            ))?;
            if generated {
                println!("user {name} ({}) password: {password}", role.as_str());
            } else {
                println!("user {name} ({}) added", role.as_str());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(ServeCommand::Token(TokenCommand::Add { user })) => {
            use store::Store;
            if store.user(user)?.is_none() {
                bail!("no user `{user}` (add one with `ferry serve user add`)");
            }
            let token = auth::new_token(&store, user, clock())?;
            store.audit(&store::AuditEntry::new(
                clock(),
                "ferry serve token add",
                "token.add",
                user,
            ))?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let webhooks = match &args.webhook_secret_file {
                Some(path) if !args.webhooks.is_empty() => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Some(webhooks::Webhooks {
                        urls: args.webhooks.clone(),
                        secret: webhooks::parse_secret(&text)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                        backoff: std::time::Duration::from_secs(2),
                        public_url: args.public_url.clone(),
                    })
                }
                _ => None,
            };
            let config = Config {
                state: args.state.clone(),
                secure_cookies: args.tls_cert.is_some(),
                two_person_rule: !args.no_two_person_rule,
                examples: args.examples,
                webhooks,
            };
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(c), Some(k)) => Some(listen::tls_config(c, k)?),
                _ => None,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(args.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", args.listen))?;
                let app = App::new(config, Arc::new(store), clock)?;
                app.start_background();
                let scheme = if tls.is_some() { "https" } else { "http" };
                eprintln!(
                    "ferry serve: {scheme}://{} (state {})",
                    listener.local_addr()?,
                    args.state.display()
                );
                listen::serve(listener, tls, api::router(app), shutdown_signal()).await;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// The password for `user add`: the first line of standard input, or a generated one (from a
/// terminal, or an empty input). Returns it and whether it was generated.
fn password_from_stdin() -> Result<(String, bool)> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if !line.is_empty() {
            if line.chars().count() < 8 {
                bail!("the password must have at least 8 characters");
            }
            return Ok((line, false));
        }
    }
    Ok((auth::random_text(18)?, true))
}

/// What a running server was started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub state: PathBuf,
    /// Cookies carry `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
    /// The approver of a pause step may not be the person who started the run.
    pub two_person_rule: bool,
    pub examples: &'static [(&'static str, &'static str)],
    /// Where run events are posted, if anywhere.
    pub webhooks: Option<webhooks::Webhooks>,
}

/// The server's shared state, cloned into every request.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<dyn store::Store>,
    pub clock: auth::Clock,
    pub limiter: Arc<auth::LoginLimiter>,
    pub runs: Arc<runs::Runner>,
    pub metrics: Arc<metrics::Metrics>,
}

impl App {
    pub fn new(config: Config, store: Arc<dyn store::Store>, clock: auth::Clock) -> Result<App> {
        let metrics = Arc::new(metrics::Metrics::new());
        let config = Arc::new(config);
        Ok(App {
            limiter: Arc::new(auth::LoginLimiter::new(clock.clone())),
            runs: Arc::new(runs::Runner::new(
                config.clone(),
                store.clone(),
                metrics.clone(),
            )),
            config,
            store,
            clock,
            metrics,
        })
    }

    /// Starts the server's background work on the current tokio runtime: the webhook
    /// deliveries.
    pub fn start_background(&self) {
        if let Some(hooks) = self.config.webhooks.clone() {
            tokio::spawn(webhooks::deliver_all(
                hooks,
                self.store.clone(),
                self.metrics.clone(),
                self.runs.subscribe(),
            ));
        }
    }
}

/// A server running on a thread of its own, until dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server for `config` over `store` on `listen` (`127.0.0.1:0`: a free port), in the
/// clear, with `clock`; returns once it accepts connections.
pub fn spawn(
    config: Config,
    store: Arc<dyn store::Store>,
    clock: auth::Clock,
    listen: SocketAddr,
) -> Result<Running> {
    let app = App::new(config, store, clock)?;
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = api::router(app.clone());
    let background = app.clone();
    let thread = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            background.start_background();
            listen::serve(listener, None, router, async {
                let _ = stopped.await;
            })
            .await;
        });
        runtime.shutdown_background();
    });
    Ok(Running {
        addr,
        app,
        stop: Some(stop),
        thread: Some(thread),
    })
}
