//! The agent's configuration file (TOML): its name, listener, directory, TLS, tokens, trusted
//! keys and services; every path relative to the file, every problem located at its line and key.

use ferry_profiles::diagnostic::{located, InputErrors, PathSeg, Problem, SourceFile};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default `max_request_bytes`: 64 MiB, enough for a package.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 64 * 1024 * 1024;
/// Default seconds a switch waits for the service to be healthy.
pub const DEFAULT_HEALTH_DEADLINE_S: f64 = 10.0;

/// What the HTTPS listener allows a client (`[agent.limits]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Connections open at once; at the limit a new one takes the place of the one that has
    /// waited longest without a request under way.
    pub max_connections: usize,
    /// From the TCP connection to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// From the end of the handshake, or the first byte of a later request, to the end of the
    /// request's head.
    pub header_timeout: Duration,
    /// From the end of a request's head to the end of its body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request under way.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The whole configuration, paths resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file.
    pub file: PathBuf,
    pub name: String,
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Everything the agent writes is under this directory.
    pub dir: PathBuf,
    pub max_request_bytes: u64,
    pub limits: Limits,
    pub tls: TlsFiles,
    /// Bearer tokens accepted (from `tokens` and `token_file`).
    pub tokens: Vec<String>,
    /// Trusted minisign public keys (base64 key lines).
    pub public_keys: Vec<String>,
    /// The `systemctl` program for services with `supervisor = "systemd"`.
    pub systemctl: String,
    pub services: Vec<ServiceConfig>,
}

/// The agent's certificate, key and optional client CA (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// One service the agent keeps.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub name: String,
    /// Command line (templates `{slot}`, `{version}`, `{role}`, `{data}`, `{dir}`, `{config}`).
    pub run: Vec<String>,
    pub health: HealthCheck,
    /// Prints a replication state 0-4.
    pub probe: Option<Vec<String>>,
    pub health_deadline_s: f64,
    /// Seconds a stop waits after SIGTERM before SIGKILL.
    pub stop_timeout_s: f64,
    pub supervisor: SupervisorKind,
    pub ha: Option<HaConfig>,
}

/// How the agent tells that a service is healthy.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheck {
    /// A TCP connection succeeds; with `send`, that line is sent and the first line of the
    /// answer must equal `expect` (when given).
    Tcp {
        addr: String,
        send: Option<String>,
        expect: Option<String>,
    },
    /// The command exits 0.
    Command(Vec<String>),
}

/// Who runs the service's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorKind {
    /// The agent itself: starts, watches and restarts it (with back-off).
    Agent,
    /// systemd, through `systemctl` on this unit.
    Systemd { unit: String },
}

impl SupervisorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SupervisorKind::Agent => "agent",
            SupervisorKind::Systemd { .. } => "systemd",
        }
    }
}

/// The HA mode of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaMode {
    Pair,
    Pubsub,
}

impl HaMode {
    /// The roles of this mode, the leading one first.
    pub fn roles(self) -> [&'static str; 2] {
        match self {
            HaMode::Pair => ["primary", "backup"],
            HaMode::Pubsub => ["publisher", "subscriber"],
        }
    }
}

/// A service's `[service.ha]` section.
#[derive(Debug, Clone)]
pub struct HaConfig {
    pub mode: HaMode,
    /// The role the service starts with (until a `set_role` or a promotion changes it).
    pub role: String,
    /// Pair: the other agent's URL (`https://host:port`).
    pub peer: Option<String>,
    pub peer_token: Option<String>,
    pub peer_ca: Option<PathBuf>,
    pub heartbeat_s: f64,
    pub misses: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    agent: RawAgent,
    #[serde(default)]
    service: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: String,
    listen: String,
    dir: String,
    max_request_bytes: Option<u64>,
    #[serde(default)]
    limits: RawLimits,
    tls: RawTls,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    trust: RawTrust,
    systemctl: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<u64>,
    handshake_timeout_s: Option<f64>,
    header_timeout_s: Option<f64>,
    body_timeout_s: Option<f64>,
    idle_timeout_s: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
    client_ca: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    tokens: Vec<String>,
    token_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    public_keys: Vec<String>,
    #[serde(default)]
    public_key_files: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    run: Vec<String>,
    health: RawHealth,
    probe: Option<Vec<String>>,
    health_deadline_s: Option<f64>,
    stop_timeout_s: Option<f64>,
    supervisor: Option<String>,
    unit: Option<String>,
    ha: Option<RawHa>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    tcp: Option<String>,
    send: Option<String>,
    expect: Option<String>,
    command: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHa {
    mode: String,
    role: String,
    peer: Option<String>,
    peer_token: Option<String>,
    peer_token_file: Option<String>,
    peer_ca: Option<String>,
    heartbeat_s: Option<f64>,
    misses: Option<u32>,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] InputErrors),
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    Ok(parse(&path.display().to_string(), &text, &base)?)
}

fn key(parts: &[&str]) -> Vec<PathSeg> {
    parts.iter().map(|p| PathSeg::Key(p.to_string())).collect()
}

fn svc_key(i: usize, parts: &[&str]) -> Vec<PathSeg> {
    let mut v = vec![PathSeg::Key("service".into()), PathSeg::Index(i)];
    v.extend(parts.iter().map(|p| PathSeg::Key(p.to_string())));
    v
}

/// A name the agent uses as a directory: letters, digits, `-`, `_`, `.`, not starting with `.`.
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks a configuration's text. `origin` names the file in errors; relative paths are
/// resolved against `base`.
pub fn parse(origin: &str, text: &str, base: &Path) -> Result<Config, InputErrors> {
    let src = SourceFile { name: origin, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| InputErrors {
        file: origin.to_string(),
        errors: vec![src.from_toml(&e)],
    })?;
    let mut problems: Vec<Problem> = Vec::new();
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let a = &raw.agent;
    if !is_plain_name(&a.name) {
        problems.push((
            key(&["agent", "name"]),
            format!("`{}` is not a usable agent name", a.name),
            Some("letters, digits, `-`, `_` and `.`, at most 64".into()),
        ));
    }
    let listen = match a.listen.parse::<SocketAddr>() {
        Ok(l) => l,
        Err(_) => {
            problems.push((
                key(&["agent", "listen"]),
                format!("`{}` is not an address and port", a.listen),
                Some("for example `127.0.0.1:7443` or `[::]:7443`".into()),
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    };
    if a.dir.trim().is_empty() {
        problems.push((key(&["agent", "dir"]), "an empty directory".into(), None));
    }
    let max_request_bytes = a.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
    if max_request_bytes < 1024 {
        problems.push((
            key(&["agent", "max_request_bytes"]),
            format!("{max_request_bytes} bytes is too small for any request"),
            Some("at least 1024; the default is 67108864 (64 MiB)".into()),
        ));
    }
    let limits = limits(&a.limits, &mut problems);
    let mut check_file = |k: Vec<PathSeg>, p: &str| -> PathBuf {
        let path = resolve(p);
        if !path.is_file() {
            problems.push((
                k,
                format!("no file {}", path.display()),
                Some("paths are relative to the configuration file".into()),
            ));
        }
        path
    };
    let tls = TlsFiles {
        cert: check_file(key(&["agent", "tls", "cert"]), &a.tls.cert),
        key: check_file(key(&["agent", "tls", "key"]), &a.tls.key),
        client_ca: a
            .tls
            .client_ca
            .as_deref()
            .map(|p| check_file(key(&["agent", "tls", "client_ca"]), p)),
    };
    let mut tokens: Vec<String> = Vec::new();
    for (i, t) in a.auth.tokens.iter().enumerate() {
        if t.trim().len() < 16 {
            problems.push((
                vec![
                    PathSeg::Key("agent".into()),
                    PathSeg::Key("auth".into()),
                    PathSeg::Key("tokens".into()),
                    PathSeg::Index(i),
                ],
                "a token shorter than 16 characters".into(),
                Some("use a long random string, e.g. `openssl rand -hex 32`".into()),
            ));
        }
        tokens.push(t.trim().to_string());
    }
    if let Some(f) = &a.auth.token_file {
        let path = resolve(f);
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                for line in t.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    if line.len() < 16 {
                        problems.push((
                            key(&["agent", "auth", "token_file"]),
                            format!("{}: a token shorter than 16 characters", path.display()),
                            None,
                        ));
                    }
                    tokens.push(line.to_string());
                }
            }
            Err(e) => problems.push((
                key(&["agent", "auth", "token_file"]),
                format!("cannot read {}: {e}", path.display()),
                None,
            )),
        }
    }
    if tokens.is_empty() && tls.client_ca.is_none() {
        problems.push((
            key(&["agent"]),
            "no way to authenticate: no token and no client CA".into(),
            Some("set `[agent.auth] tokens` or `token_file`, or `[agent.tls] client_ca`".into()),
        ));
    }
    let mut public_keys = Vec::new();
    for (i, k) in a.trust.public_keys.iter().enumerate() {
        let at = vec![
            PathSeg::Key("agent".into()),
            PathSeg::Key("trust".into()),
            PathSeg::Key("public_keys".into()),
            PathSeg::Index(i),
        ];
        match crate::package::parse_public_key(k) {
            Ok(_) => public_keys.push(k.trim().to_string()),
            Err(e) => problems.push((at, format!("not a minisign public key: {e}"), None)),
        }
    }
    for (i, f) in a.trust.public_key_files.iter().enumerate() {
        let at = vec![
            PathSeg::Key("agent".into()),
            PathSeg::Key("trust".into()),
            PathSeg::Key("public_key_files".into()),
            PathSeg::Index(i),
        ];
        let path = resolve(f);
        match std::fs::read_to_string(&path) {
            Ok(t) => match crate::package::parse_public_key(&t) {
                Ok(line) => public_keys.push(line),
                Err(e) => problems.push((
                    at,
                    format!("{}: not a minisign public key: {e}", path.display()),
                    None,
                )),
            },
            Err(e) => problems.push((at, format!("cannot read {}: {e}", path.display()), None)),
        }
    }
    if public_keys.is_empty() {
        problems.push((
            key(&["agent", "trust"]),
            "no trusted public key: no package could ever be staged".into(),
            Some("add `[agent.trust] public_keys = [\"RW...\"]` (see `ferry agent keygen`)".into()),
        ));
    }
    let mut services = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in raw.service.iter().enumerate() {
        if !is_plain_name(&s.name) {
            problems.push((
                svc_key(i, &["name"]),
                format!("`{}` is not a usable service name", s.name),
                Some("letters, digits, `-`, `_` and `.`, at most 64".into()),
            ));
        } else if !names.insert(s.name.clone()) {
            problems.push((
                svc_key(i, &["name"]),
                format!("a second service `{}`", s.name),
                None,
            ));
        }
        check_templates(&mut problems, i, "run", &s.run);
        if s.run.is_empty() {
            problems.push((svc_key(i, &["run"]), "an empty command line".into(), None));
        }
        if let Some(p) = &s.probe {
            check_templates(&mut problems, i, "probe", p);
            if p.is_empty() {
                problems.push((svc_key(i, &["probe"]), "an empty command line".into(), None));
            }
        }
        let health = match (&s.health.tcp, &s.health.command) {
            (Some(addr), None) => {
                if addr
                    .rsplit_once(':')
                    .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                {
                    problems.push((
                        svc_key(i, &["health", "tcp"]),
                        format!("`{addr}` is not HOST:PORT"),
                        None,
                    ));
                }
                if s.health.expect.is_some() && s.health.send.is_none() {
                    problems.push((
                        svc_key(i, &["health", "expect"]),
                        "`expect` needs `send`".into(),
                        None,
                    ));
                }
                HealthCheck::Tcp {
                    addr: addr.clone(),
                    send: s.health.send.clone(),
                    expect: s.health.expect.clone(),
                }
            }
            (None, Some(cmd)) => {
                check_templates(&mut problems, i, "health", cmd);
                if cmd.is_empty() {
                    problems.push((
                        svc_key(i, &["health", "command"]),
                        "an empty command line".into(),
                        None,
                    ));
                }
                if s.health.send.is_some() || s.health.expect.is_some() {
                    problems.push((
                        svc_key(i, &["health"]),
                        "`send` and `expect` go with `tcp`".into(),
                        None,
                    ));
                }
                HealthCheck::Command(cmd.clone())
            }
            _ => {
                problems.push((
                    svc_key(i, &["health"]),
                    "a health check needs exactly one of `tcp` and `command`".into(),
                    Some("`health = { tcp = \"127.0.0.1:7101\" }` or `{ command = [...] }`".into()),
                ));
                HealthCheck::Command(Vec::new())
            }
        };
        let mut seconds = |k: &str, v: Option<f64>, default: f64| -> f64 {
            let x = v.unwrap_or(default);
            if !(x.is_finite() && x > 0.0 && x <= 86400.0) {
                problems.push((
                    svc_key(i, &[k]),
                    format!("{k} must be a number of seconds above 0, found {x}"),
                    None,
                ));
                return default;
            }
            x
        };
        let health_deadline_s = seconds(
            "health_deadline_s",
            s.health_deadline_s,
            DEFAULT_HEALTH_DEADLINE_S,
        );
        let stop_timeout_s = seconds("stop_timeout_s", s.stop_timeout_s, 10.0);
        let supervisor = match (s.supervisor.as_deref().unwrap_or("agent"), &s.unit) {
            ("agent", None) => SupervisorKind::Agent,
            ("agent", Some(_)) => {
                problems.push((
                    svc_key(i, &["unit"]),
                    "`unit` goes with `supervisor = \"systemd\"`".into(),
                    None,
                ));
                SupervisorKind::Agent
            }
            ("systemd", Some(u)) => {
                if u.is_empty() || u.starts_with('-') || u.contains(char::is_whitespace) {
                    problems.push((
                        svc_key(i, &["unit"]),
                        format!("`{u}` is not a unit name"),
                        None,
                    ));
                }
                SupervisorKind::Systemd { unit: u.clone() }
            }
            ("systemd", None) => {
                problems.push((
                    svc_key(i, &["supervisor"]),
                    "`supervisor = \"systemd\"` needs `unit = \"NAME.service\"`".into(),
                    None,
                ));
                SupervisorKind::Agent
            }
            (other, _) => {
                problems.push((
                    svc_key(i, &["supervisor"]),
                    format!("unknown supervisor `{other}`"),
                    Some("`agent` or `systemd`".into()),
                ));
                SupervisorKind::Agent
            }
        };
        let ha = s.ha.as_ref().map(|h| {
            let ha_key = |k: &str| svc_key(i, &["ha", k]);
            let mode = match h.mode.as_str() {
                "pair" => HaMode::Pair,
                "pubsub" => HaMode::Pubsub,
                other => {
                    problems.push((
                        ha_key("mode"),
                        format!("unknown HA mode `{other}`"),
                        Some("`pair` or `pubsub`".into()),
                    ));
                    HaMode::Pair
                }
            };
            if !mode.roles().contains(&h.role.as_str()) {
                problems.push((
                    ha_key("role"),
                    format!("`{}` is no role of mode {}", h.role, h.mode),
                    Some(format!("`{}` or `{}`", mode.roles()[0], mode.roles()[1])),
                ));
            }
            let mut peer_token = h.peer_token.clone();
            if let Some(f) = &h.peer_token_file {
                let path = resolve(f);
                match std::fs::read_to_string(&path) {
                    Ok(t) => peer_token = t.lines().next().map(|l| l.trim().to_string()),
                    Err(e) => problems.push((
                        ha_key("peer_token_file"),
                        format!("cannot read {}: {e}", path.display()),
                        None,
                    )),
                }
            }
            let peer_ca = h.peer_ca.as_deref().map(|p| {
                let path = resolve(p);
                if !path.is_file() {
                    problems.push((
                        ha_key("peer_ca"),
                        format!("no file {}", path.display()),
                        None,
                    ));
                }
                path
            });
            if mode == HaMode::Pair {
                match &h.peer {
                    None => problems.push((
                        svc_key(i, &["ha"]),
                        "a pair needs `peer`, the other agent's URL".into(),
                        None,
                    )),
                    Some(p) => {
                        if let Err(e) = crate::client::Endpoint::parse(p) {
                            problems.push((ha_key("peer"), e.to_string(), None));
                        }
                    }
                }
                if peer_token.is_none() {
                    problems.push((
                        svc_key(i, &["ha"]),
                        "a pair needs `peer_token` (or `peer_token_file`) for the peer's API"
                            .into(),
                        None,
                    ));
                }
                if peer_ca.is_none() {
                    problems.push((
                        svc_key(i, &["ha"]),
                        "a pair needs `peer_ca`, the CA that signed the peer's certificate".into(),
                        None,
                    ));
                }
            }
            let heartbeat_s = h.heartbeat_s.unwrap_or(20.0);
            if !(heartbeat_s.is_finite() && (0.05..=3600.0).contains(&heartbeat_s)) {
                problems.push((
                    ha_key("heartbeat_s"),
                    format!(
                        "heartbeat_s must be within 0.05 and 3600 seconds, found {heartbeat_s}"
                    ),
                    None,
                ));
            }
            let misses = h.misses.unwrap_or(3);
            if misses == 0 {
                problems.push((ha_key("misses"), "misses must be at least 1".into(), None));
            }
            HaConfig {
                mode,
                role: h.role.clone(),
                peer: h.peer.clone(),
                peer_token,
                peer_ca,
                heartbeat_s: heartbeat_s.clamp(0.05, 3600.0),
                misses: misses.max(1),
            }
        });
        services.push(ServiceConfig {
            name: s.name.clone(),
            run: s.run.clone(),
            health,
            probe: s.probe.clone(),
            health_deadline_s,
            stop_timeout_s,
            supervisor,
            ha,
        });
    }
    if !problems.is_empty() {
        return Err(located(&src, problems));
    }
    Ok(Config {
        file: PathBuf::from(origin),
        name: a.name.clone(),
        listen,
        dir: resolve(&a.dir),
        max_request_bytes,
        limits,
        tls,
        tokens,
        public_keys,
        systemctl: a.systemctl.clone().unwrap_or_else(|| "systemctl".into()),
        services,
    })
}

/// `[agent.limits]`, each missing key its default.
fn limits(raw: &RawLimits, problems: &mut Vec<Problem>) -> Limits {
    let d = Limits::default();
    let at = |k: &str| key(&["agent", "limits", k]);
    let max_connections = match raw.max_connections {
        None => d.max_connections,
        Some(n) if (1..=65536).contains(&n) => n as usize,
        Some(n) => {
            problems.push((
                at("max_connections"),
                format!("{n} connections: the limit must be within 1 and 65536"),
                Some(format!("the default is {}", d.max_connections)),
            ));
            d.max_connections
        }
    };
    let mut seconds = |k: &str, v: Option<f64>, default: Duration| -> Duration {
        match v {
            None => default,
            Some(x) if x.is_finite() && x > 0.0 && x <= 86400.0 => Duration::from_secs_f64(x),
            Some(x) => {
                problems.push((
                    at(k),
                    format!("{k} must be a number of seconds above 0 and at most 86400, found {x}"),
                    Some(format!("the default is {}", default.as_secs())),
                ));
                default
            }
        }
    };
    Limits {
        max_connections,
        handshake_timeout: seconds(
            "handshake_timeout_s",
            raw.handshake_timeout_s,
            d.handshake_timeout,
        ),
        header_timeout: seconds("header_timeout_s", raw.header_timeout_s, d.header_timeout),
        body_timeout: seconds("body_timeout_s", raw.body_timeout_s, d.body_timeout),
        idle_timeout: seconds("idle_timeout_s", raw.idle_timeout_s, d.idle_timeout),
    }
}

/// The placeholders a command line may hold.
pub const TEMPLATES: [&str; 6] = ["slot", "version", "role", "data", "dir", "config"];

fn check_templates(problems: &mut Vec<Problem>, i: usize, what: &str, args: &[String]) {
    for (j, a) in args.iter().enumerate() {
        let mut rest = a.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            if !TEMPLATES.contains(&name) {
                let mut at = svc_key(i, &[what]);
                if what == "health" {
                    at.push(PathSeg::Key("command".into()));
                }
                at.push(PathSeg::Index(j));
                problems.push((
                    at,
                    format!("unknown placeholder `{{{name}}}`"),
                    Some(format!(
                        "placeholders: {}",
                        TEMPLATES.map(|t| format!("{{{t}}}")).join(", ")
                    )),
                ));
            }
            rest = &after[close + 1..];
        }
    }
}

/// What the placeholders of a command line stand for.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub slot: String,
    pub version: String,
    pub role: String,
    pub data: String,
    pub dir: String,
    pub config: String,
}

/// A command line with its placeholders filled in.
pub fn expand(args: &[String], v: &Vars) -> Vec<String> {
    args.iter()
        .map(|a| {
            a.replace("{slot}", &v.slot)
                .replace("{version}", &v.version)
                .replace("{role}", &v.role)
                .replace("{data}", &v.data)
                .replace("{dir}", &v.dir)
                .replace("{config}", &v.config)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[&str]) {
        let dir = std::env::temp_dir().join(format!("ferry-agent-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        for f in ["tls/a.pem", "tls/a-key.pem", "tls/ca.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        match parse("agent.toml", text, &dir) {
            Ok(_) => assert!(expected.is_empty(), "expected errors {expected:?}"),
            Err(e) => {
                let got: Vec<String> = e
                    .errors
                    .iter()
                    .map(|x| format!("{}:{}: {}", x.line, x.key, x.message))
                    .collect();
                assert!(!expected.is_empty(), "unexpected errors {got:?}");
                for want in expected {
                    assert!(
                        got.iter().any(|g| g.contains(want)),
                        "no error like {want:?} in {got:?}"
                    );
                }
            }
        }
    }

    const HEAD: &str = r#"[agent]
name = "kv-a"
listen = "127.0.0.1:7443"
dir = "state"
[agent.tls]
cert = "tls/a.pem"
key = "tls/a-key.pem"
[agent.auth]
tokens = ["0123456789abcdef0123"]
[agent.trust]
public_keys = ["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"]
"#;

    #[test]
    fn configurations() {
        check(HEAD, &[]);
        check(
            &format!(
                "{HEAD}[[service]]\nname = \"kv\"\nrun = [\"{{slot}}/x\"]\nhealth = {{ tcp = \"127.0.0.1:7101\", send = \"HEALTH\", expect = \"ok\" }}\n"
            ),
            &[],
        );
        check(
            &HEAD.replace("127.0.0.1:7443", "nowhere"),
            &["3:agent.listen: `nowhere` is not an address"],
        );
        check(
            &HEAD.replace("tls/a.pem", "tls/missing.pem"),
            &["6:agent.tls.cert: no file"],
        );
        check(
            &HEAD.replace("0123456789abcdef0123", "short"),
            &["9:agent.auth.tokens[0]: a token shorter"],
        );
        check(
            &HEAD.replace(
                "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
                "nope",
            ),
            &["11:agent.trust.public_keys[0]: not a minisign public key"],
        );
        check(
            &format!("{HEAD}[[service]]\nname = \"kv\"\nrun = [\"{{nope}}/x\"]\nhealth = {{ command = [\"true\"] }}\n"),
            &["14:service[0].run[0]: unknown placeholder `{nope}`"],
        );
        check(
            &format!("{HEAD}[[service]]\nname = \"../kv\"\nrun = [\"x\"]\nhealth = {{ tcp = \"h:1\" }}\nsupervisor = \"systemd\"\n"),
            &[
                "13:service[0].name: `../kv` is not a usable service name",
                "16:service[0].supervisor: `supervisor = \"systemd\"` needs `unit",
            ],
        );
        check(
            &format!("{HEAD}[[service]]\nname = \"kv\"\nrun = [\"x\"]\nhealth = {{ tcp = \"h:1\" }}\n[service.ha]\nmode = \"pair\"\nrole = \"leader\"\n"),
            &["18:service[0].ha.role: `leader` is no role", "a pair needs `peer`"],
        );
        check(&format!("{HEAD}unknown = 1\n"), &["unknown field"]);
        check(
            &HEAD.replace(
                "[agent.tls]",
                "[agent.limits]\nmax_connections = 64\nheader_timeout_s = 0.5\n[agent.tls]",
            ),
            &[],
        );
        check(
            &HEAD.replace(
                "[agent.tls]",
                "[agent.limits]\nmax_connections = 0\nhandshake_timeout_s = 0\nheader_timeout_s = -1\nbody_timeout_s = 1e9\nidle_timeout_s = nan\nsoon = 1\n[agent.tls]",
            ),
            &["unknown field `soon`"],
        );
        check(
            &HEAD.replace(
                "[agent.tls]",
                "[agent.limits]\nmax_connections = 0\nhandshake_timeout_s = 0\nheader_timeout_s = -1\nbody_timeout_s = 1e9\nidle_timeout_s = nan\n[agent.tls]",
            ),
            &[
                "6:agent.limits.max_connections: 0 connections: the limit must be within 1 and 65536",
                "7:agent.limits.handshake_timeout_s: handshake_timeout_s must be a number of seconds above 0",
                "8:agent.limits.header_timeout_s: header_timeout_s must be",
                "9:agent.limits.body_timeout_s: body_timeout_s must be",
                "10:agent.limits.idle_timeout_s: idle_timeout_s must be",
            ],
        );
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("ferry-agent-config-{}", std::process::id())),
        );
    }

    #[test]
    fn templates_expand() {
        let v = Vars {
            slot: "/s/a".into(),
            role: "backup".into(),
            ..Default::default()
        };
        assert_eq!(
            expand(&["{slot}/bin".into(), "--role={role}".into()], &v),
            vec!["/s/a/bin".to_string(), "--role=backup".to_string()]
        );
    }
}
