//! `ferry agent`: runs the node agent (`--config FILE`), checks its configuration, makes
//! package signing keys and signatures, lab certificates, asks a running agent (status, stage,
//! switch, revert, set-role), and benchmarks a switch and a fleet's rolling upgrade.

use crate::args::{FormatFlag, Global};
use crate::exit::bad;
use crate::load::render_diag;
use anyhow::Result;
use ferry_agent::client::{AgentClient, ClientOptions};
use ferry_agent::ConfigError;
use ferry_model::agent::{OpKind, OpRequest, OpState};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod fleet;
mod remote;

/// Run the node agent (`--config agent.toml`: a daemon logging to standard error), or
/// check its configuration, make signing keys, sign packages, make lab certificates, ask a
/// running agent (status, stage, switch, revert, set-role), or benchmark a switch and a
/// fleet's rolling upgrade.
///
/// The agent keeps each service in two slots, stages signed packages into the inactive
/// one, switches with a health check and an automatic revert, snapshots configuration,
/// supervises the service and runs HA pairs' heartbeats, behind an authenticated HTTPS
/// API (docs/agent-api.md). SIGTERM or SIGINT stops the agent; its services run on, and the
/// next agent adopts them.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// The agent's configuration file: runs the agent.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Option<AgentAction>,
}

#[derive(clap::Subcommand)]
pub enum AgentAction {
    /// Check a configuration file (exit 2 with the file, line and key of each problem).
    ///
    /// JSON: `config`, `agent`, `services`, `tokens`, `trusted_keys`, `client_certificates`.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Write a minisign key pair for signing packages: DIR/ferry-agent.pub and
    /// DIR/ferry-agent.key (unencrypted, mode 600, for automation); prints the public key for
    /// `[agent.trust] public_keys`. Existing files are kept unless --force; a symbolic link in
    /// their place is refused.
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Write over existing key files.
        #[arg(long)]
        force: bool,
        /// JSON: `public_key`, `secret_key` (the files) and `public_line`.
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Sign a package with a secret key from `keygen` for one service and version (the
    /// signature states them; an agent stages the package as nothing else): writes
    /// PACKAGE.minisig. Without --service and --version they come from the file's name,
    /// SERVICE-VERSION.tar.
    Sign {
        package: PathBuf,
        #[arg(long, value_name = "SECRET_KEY")]
        key: PathBuf,
        /// The service the package is for (default: from the file's name).
        #[arg(long)]
        service: Option<String>,
        /// The version it holds (default: from the file's name).
        #[arg(long)]
        version: Option<String>,
        /// JSON: `package`, `signature` (the file written) and `statement`.
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Write a lab CA and certificates (ca.pem, NAME.pem, NAME-key.pem per agent, client.pem,
    /// client-key.pem), for trying the agent; use your own CA in production.
    Certs {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// An agent's name (repeatable): its certificate is valid for it and for every --host.
        #[arg(long = "name", value_name = "NAME", required = true)]
        names: Vec<String>,
        /// A host name or address the agents' certificates are valid for (repeatable;
        /// default 127.0.0.1 and localhost).
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// Write over existing files (a symbolic link in their place is refused even so).
        #[arg(long)]
        force: bool,
        /// JSON: `files`, the files written.
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Ask a running agent for its status: each service's active and inactive versions,
    /// health, role and replication state.
    ///
    /// JSON: the agent's answer (`agent`, `services`: each with `name`, `active`, `inactive`,
    /// `health`, `role`, `replication`), as docs/agent-api.md describes `GET /v1/status`.
    Status {
        #[command(flatten)]
        conn: remote::Connection,
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Stage a signed package (PACKAGE, with PACKAGE.minisig beside it) into a service's
    /// inactive slot: the agent refuses it, and changes nothing, unless the signature verifies.
    Stage {
        package: PathBuf,
        /// The version the package holds.
        #[arg(long)]
        version: String,
        #[command(flatten)]
        op: RemoteOp,
    },
    /// Switch a service to VERSION, staged in its inactive slot: restart, health check, and
    /// back by itself when the new version is not healthy in time (exit 1 then). A service
    /// already on VERSION is left as it is (reported).
    Switch {
        /// The version to switch to.
        #[arg(long)]
        version: String,
        #[command(flatten)]
        op: RemoteOp,
    },
    /// Switch a service back to the other slot (the version before the last switch); with
    /// --version, only to that version (a service already on it is left as it is).
    Revert {
        /// The version to go back to.
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        op: RemoteOp,
    },
    /// Give a service a role (primary|backup for a pair, publisher|subscriber) and restart it.
    SetRole {
        role: String,
        #[command(flatten)]
        op: RemoteOp,
    },
    /// Measure switch + restart + health check of the demo service through a local agent
    /// (HTTPS), back and forth between two versions: median and p90 in ms; or, with --fleet,
    /// a rolling upgrade of many agents through `ferry apply`.
    Bench {
        /// The demo service binary (default: `ferry-demo-service` next to `ferry`).
        #[arg(long, value_name = "FILE")]
        demo: Option<PathBuf>,
        /// Switches to time.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10000))]
        switches: u32,
        /// Instead: time a rolling upgrade of a fleet of this many agents on the loopback
        /// (each with a demo service, in clusters of a publisher and subscribers), `ferry apply`
        /// with the agent driver as the plan allows and one step at a time, side by side.
        #[arg(long, value_name = "AGENTS", value_parser = clap::value_parser!(u32).range(2..=500))]
        fleet: Option<u32>,
        /// With --fleet: agents per cluster (a publisher and its subscribers).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=100))]
        cluster_size: u32,
        /// With --fleet: after ferry's upgrades, hand the live fleet to PROGRAM (run with the
        /// fleet's directory as its argument, before the agents stop) to upgrade it another
        /// way: the directory holds an Ansible inventory of the agents (`inventory.yml`), the
        /// token, the lab CA, the signed packages of two more versions and ferry's figures
        /// (`ferry.json`); every node must run the last of them when PROGRAM ends.
        #[arg(long, value_name = "PROGRAM", requires = "fleet")]
        hand_over: Option<PathBuf>,
        #[command(flatten)]
        format: FormatFlag,
    },
}

/// An operation's options: the agent, the service, the ID. With `--format json`, the
/// operation's result as the agent gives it (`id`, `service`, `op`, `state`, `message`, ...:
/// docs/agent-api.md, `POST /v1/ops`).
#[derive(clap::Args)]
pub struct RemoteOp {
    #[command(flatten)]
    conn: remote::Connection,
    /// The service on the agent (default: the only one it manages).
    #[arg(long)]
    service: Option<String>,
    /// The operation's ID (asking again with the same ID returns the first result and does
    /// nothing again). Default: a fresh one.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    format: FormatFlag,
}

fn remote_op(op: RemoteOp, what: remote::Remote) -> Result<ExitCode> {
    remote::run(
        &op.conn,
        op.service.as_deref(),
        op.id,
        what,
        op.format.json(),
    )
}

fn existing(force: bool) -> ferry_agent::files::Existing {
    if force {
        ferry_agent::files::Existing::Replace
    } else {
        ferry_agent::files::Existing::Refuse
    }
}

fn config_error(e: ConfigError) -> anyhow::Error {
    match e {
        ConfigError::Input(errs) => bad(render_diag(errs)),
        other => bad(other.to_string()),
    }
}

impl Args {
    /// Whether this runs the agent daemon (`--config` without a subcommand).
    pub fn runs_the_daemon(&self) -> bool {
        self.config.is_some() && self.action.is_none()
    }
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    match (a.config, a.action) {
        (Some(path), None) => {
            let cfg = ferry_agent::load_config(&path).map_err(config_error)?;
            match ferry_agent::run(cfg) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(ferry_agent::AgentError::Tls(e)) => {
                    Err(bad(format!("{}: {e}", path.display())))
                }
                Err(e) => Err(anyhow::anyhow!(e)),
            }
        }
        (None, Some(AgentAction::Check { config, format })) => {
            let cfg = ferry_agent::load_config(&config).map_err(config_error)?;
            ferry_agent::tls::server_config(
                &cfg.tls.cert,
                &cfg.tls.key,
                cfg.tls.client_ca.as_deref(),
            )
            .map_err(|e| bad(format!("{}: {e}", config.display())))?;
            let checked = CheckedConfig {
                config: config.display().to_string(),
                agent: cfg.name.clone(),
                services: cfg.services.len(),
                tokens: cfg.tokens.len(),
                trusted_keys: cfg.public_keys.len(),
                client_certificates: cfg.tls.client_ca.is_some(),
            };
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&checked)?);
            } else {
                println!(
                    "{}: ok (agent {}, {} service(s), {} token(s), {} trusted key(s){})",
                    checked.config,
                    checked.agent,
                    checked.services,
                    checked.tokens,
                    checked.trusted_keys,
                    if checked.client_certificates {
                        ", client certificates"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(AgentAction::Keygen { out, force, format })) => {
            let k =
                ferry_agent::keys::keygen(&out, existing(force)).map_err(|e| bad(e.to_string()))?;
            eprintln!(
                "wrote {} and {} (unencrypted: keep it private)",
                k.public_key.display(),
                k.secret_key.display()
            );
            if format.json() {
                print_json(&serde_json::json!({
                    "public_key": k.public_key.display().to_string(),
                    "secret_key": k.secret_key.display().to_string(),
                    "public_line": k.public_line,
                }))?;
            } else {
                println!("{}", k.public_line);
            }
            Ok(ExitCode::SUCCESS)
        }
        (
            None,
            Some(AgentAction::Sign {
                package,
                key,
                service,
                version,
                format,
            }),
        ) => {
            let statement =
                ferry_agent::keys::statement_for(&package, service.as_deref(), version.as_deref())
                    .map_err(|e| bad(e.to_string()))?;
            let out = ferry_agent::keys::sign_file(&package, &key, &statement)
                .map_err(|e| bad(e.to_string()))?;
            eprintln!("signed {} for {statement}", package.display());
            if format.json() {
                print_json(&serde_json::json!({
                    "package": package.display().to_string(),
                    "signature": out.display().to_string(),
                    "statement": statement.to_string(),
                }))?;
            } else {
                println!("{}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        (
            None,
            Some(AgentAction::Certs {
                out,
                names,
                hosts,
                force,
                format,
            }),
        ) => {
            for n in &names {
                if !ferry_agent::config::is_plain_name(n) {
                    return Err(bad(format!("`{n}` is not a usable agent name")));
                }
            }
            let hosts = if hosts.is_empty() {
                vec!["127.0.0.1".to_string(), "localhost".to_string()]
            } else {
                hosts
            };
            let files = ferry_agent::pki::lab(&out, &names, &hosts, existing(force))
                .map_err(|e| bad(e.to_string()))?;
            if format.json() {
                let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                print_json(&serde_json::json!({ "files": files }))?;
            } else {
                for f in files {
                    println!("{}", f.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        (
            None,
            Some(AgentAction::Bench {
                demo,
                switches,
                fleet: size,
                cluster_size,
                format,
                hand_over,
            }),
        ) => {
            let json = format.json();
            let demo = demo_binary(demo)?;
            let text = match size {
                Some(n) => match fleet::fleet(
                    &demo,
                    n as usize,
                    cluster_size as usize,
                    hand_over.as_deref(),
                    json,
                ) {
                    Ok(text) => text,
                    Err(e) => match e.downcast_ref::<fleet::HandOverFailed>() {
                        Some(h) => {
                            eprintln!("ferry: {h}");
                            return Ok(ExitCode::from(1));
                        }
                        None => return Err(e),
                    },
                },
                None => bench(&demo, switches as usize, json)?,
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(AgentAction::Status { conn, format })) => {
            remote::run(&conn, None, None, remote::Remote::Status, format.json())
        }
        (
            None,
            Some(AgentAction::Stage {
                package,
                version,
                op,
            }),
        ) => remote_op(op, remote::Remote::Stage { package, version }),
        (None, Some(AgentAction::Switch { version, op })) => {
            remote_op(op, remote::Remote::Op(OpKind::Switch, Some(version)))
        }
        (None, Some(AgentAction::Revert { version, op })) => {
            remote_op(op, remote::Remote::Op(OpKind::Revert, version))
        }
        (None, Some(AgentAction::SetRole { role, op })) => {
            remote_op(op, remote::Remote::SetRole(role))
        }
        (None, None) => Err(bad(
            "ferry agent needs --config FILE to run, or a subcommand (see `ferry agent --help`)",
        )),
        (Some(_), Some(_)) => Err(bad("--config runs the agent: give it without a subcommand")),
    }
}

/// Prints a JSON document on standard output.
fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// What `ferry agent check --format json` prints: the configuration file and what it sets up.
#[derive(serde::Serialize)]
struct CheckedConfig {
    config: String,
    agent: String,
    services: usize,
    tokens: usize,
    trusted_keys: usize,
    client_certificates: bool,
}

/// The benchmarks' trust: a temporary directory with a lab CA and one server certificate for
/// 127.0.0.1 (`tls/ca.pem`, `tls/agent.pem`, `tls/agent-key.pem`), a signing key pair and a
/// token.
struct BenchLab {
    dir: TempDir,
    ca: ferry_agent::pki::Ca,
    secret: String,
    public: String,
    token: String,
}

impl BenchLab {
    fn new(tag: &str) -> Result<BenchLab> {
        let dir = TempDir(std::env::temp_dir().join(format!("ferry-{tag}-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&dir.0);
        std::fs::create_dir_all(dir.0.join("tls"))?;
        let ca = ferry_agent::pki::Ca::new("ferry bench CA")?;
        let server = ca.server("bench", &["127.0.0.1".to_string()])?;
        std::fs::write(dir.0.join("tls/ca.pem"), ca.cert_pem())?;
        std::fs::write(dir.0.join("tls/agent.pem"), &server.cert_pem)?;
        std::fs::write(dir.0.join("tls/agent-key.pem"), &server.key_pem)?;
        let (_, secret, public) = ferry_agent::keys::generate()?;
        let token = format!("bench-token-{}-0123456789", std::process::id());
        Ok(BenchLab {
            dir,
            ca,
            secret,
            public,
            token,
        })
    }
}

/// A benchmark agent: one demo service on `port` of the loopback.
struct BenchAgent<'a> {
    name: &'a str,
    listen: &'a str,
    token: &'a str,
    public: &'a str,
    port: u16,
    /// The port of the service it follows.
    upstream: Option<u16>,
    /// `publisher` or `subscriber`: a pubsub service (else a lone primary).
    pubsub_role: Option<&'a str>,
    deadline_s: u32,
}

fn bench_agent_config(a: &BenchAgent) -> String {
    let BenchAgent {
        name,
        listen,
        token,
        public,
        port,
        deadline_s,
        ..
    } = a;
    let upstream = a
        .upstream
        .map(|u| format!(r#", "--upstream", "127.0.0.1:{u}""#))
        .unwrap_or_default();
    let (role, ha) = match a.pubsub_role {
        Some(r) => (
            "{role}",
            format!("[service.ha]\nmode = \"pubsub\"\nrole = \"{r}\"\n"),
        ),
        None => ("primary", String::new()),
    };
    format!(
        r#"[agent]
name = "{name}"
listen = "{listen}"
dir = "state/{name}"
[agent.tls]
cert = "tls/agent.pem"
key = "tls/agent-key.pem"
[agent.auth]
tokens = ["{token}"]
[agent.trust]
public_keys = ["{public}"]
[[service]]
name = "kv"
run = ["{{slot}}/demo-service", "serve", "--port", "{port}", "--role", "{role}", "--data", "{{data}}"{upstream}]
health = {{ tcp = "127.0.0.1:{port}", send = "HEALTH", expect = "ok" }}
probe = ["{{slot}}/demo-service", "probe", "--port", "{port}"]
health_deadline_s = {deadline_s}
stop_timeout_s = 5
{ha}"#
    )
}

/// Removes a directory when dropped.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free on the loopback now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A demo package of `version` for service `kv`, signed for it: (base64 archive, signature).
fn make_package(demo: &Path, dir: &Path, version: &str, secret: &str) -> Result<(String, String)> {
    use base64::Engine as _;
    let out = dir.join(format!("demo-{version}.tar"));
    let o = std::process::Command::new(demo)
        .args(["package", "--version", version, "--out"])
        .arg(&out)
        .output()
        .map_err(|e| bad(format!("cannot run {}: {e}", demo.display())))?;
    if !o.status.success() {
        return Err(bad(format!(
            "{} package failed: {}",
            demo.display(),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    let data = std::fs::read(&out)?;
    let statement = ferry_agent::package::Statement::new("kv", version).map_err(bad)?;
    let sig = ferry_agent::keys::sign_bytes(&data, secret, Path::new("bench key"), &statement)?;
    Ok((base64::engine::general_purpose::STANDARD.encode(&data), sig))
}

/// The demo service binary: the given one, or `ferry-demo-service` next to `ferry`.
fn demo_binary(demo: Option<PathBuf>) -> Result<PathBuf> {
    let demo = match demo {
        Some(d) => d,
        None => std::env::current_exe()?.with_file_name("ferry-demo-service"),
    };
    if !demo.is_file() {
        return Err(bad(format!(
            "no demo service at {}: build it (`cargo build --release -p ferry-demo-service`) or pass --demo FILE",
            demo.display()
        )));
    }
    Ok(demo)
}

fn bench(demo: &Path, switches: usize, json: bool) -> Result<String> {
    let BenchLab {
        dir,
        ca,
        secret,
        public,
        token,
    } = BenchLab::new("agent-bench")?;
    let port = free_port()?;
    let config = bench_agent_config(&BenchAgent {
        name: "bench",
        listen: "127.0.0.1:0",
        token: &token,
        public: &public,
        port,
        upstream: None,
        pubsub_role: None,
        deadline_s: 10,
    });
    let cfg_path = dir.0.join("agent.toml");
    std::fs::write(&cfg_path, config)?;
    let cfg = ferry_agent::load_config(&cfg_path).map_err(config_error)?;
    let agent = ferry_agent::start(cfg)?;
    let client = AgentClient::new(
        &format!("https://127.0.0.1:{}", agent.addr().port()),
        ClientOptions {
            token: Some(token),
            ca_pem: ca.cert_pem().into_bytes(),
            identity: None,
            timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        },
    )?;
    let op = |id: String,
              kind: OpKind,
              version: &str,
              pkg: Option<&(String, String)>|
     -> Result<Duration> {
        let req = OpRequest {
            id,
            service: "kv".into(),
            op: kind,
            version: Some(version.to_string()),
            package: pkg.map(|p| p.0.clone()),
            signature: pkg.map(|p| p.1.clone()),
            snapshot: None,
            role: None,
            health_deadline_s: None,
        };
        let t = Instant::now();
        let r = client.op(&req)?;
        let took = t.elapsed();
        if r.state != OpState::Done {
            return Err(anyhow::anyhow!(
                "{} {}: {}",
                req.op.as_str(),
                req.id,
                r.message
            ));
        }
        Ok(took)
    };
    let v1 = make_package(demo, &dir.0, "1.0.0", &secret)?;
    let v2 = make_package(demo, &dir.0, "2.0.0", &secret)?;
    op("bench/stage-1".into(), OpKind::Stage, "1.0.0", Some(&v1))?;
    op("bench/switch-1".into(), OpKind::Switch, "1.0.0", None)?;
    op("bench/stage-2".into(), OpKind::Stage, "2.0.0", Some(&v2))?;
    let mut times = Vec::with_capacity(switches);
    for i in 0..switches {
        // Back and forth: each switch names the version it goes to.
        let to = if i % 2 == 0 { "2.0.0" } else { "1.0.0" };
        times.push(
            op(format!("bench/switch-{}", i + 2), OpKind::Switch, to, None)?.as_secs_f64() * 1000.0,
        );
    }
    agent.stop()?;
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = percentile(&sorted, 50.0);
    let p90 = percentile(&sorted, 90.0);
    let max = sorted.last().copied().unwrap_or(0.0);
    if json {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({
            "schema_version": 1,
            "switches": switches,
            "median_ms": median,
            "p90_ms": p90,
            "max_ms": max,
            "target_ms": 100,
            "times_ms": times,
        }))? + "\n");
    }
    Ok(format!(
        "agent switch: stop, switch the `current` link, start and health-check the demo service,\n\
         through a local agent over HTTPS, {switches} switches between 1.0.0 and 2.0.0\n  \
         median {median:.1} ms, p90 {p90:.1} ms, max {max:.1} ms (target: under 100 ms) {}\n",
        if p90 < 100.0 { "ok" } else { "OVER TARGET" }
    ))
}
