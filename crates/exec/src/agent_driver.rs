//! The `agent` driver: carries steps out through the ferry agent on each node, over HTTPS
//! (`docs/agent-api.md`). What a step asks of an agent comes from its effects, so the driver
//! knows no product: `snapshot`, `install_inactive` (stage the package of the step's version),
//! `switch`, `revert`, `restart` are agent operations; a `healthy` gate polls the node's status,
//! a `replication` gate polls every node of its roles.
//!
//! Every operation carries the ID `run-RUN/STEP`, so starting a step again, or asking after a
//! crash (`inspect`), never applies it twice: the agent returns its first result. A node that
//! cannot be reached fails the step once the driver's patience runs out; trying the step again
//! later is safe for the same reason.

use crate::driver::{system_now, Driver, DriverError, Inspection, Outcome};
use crate::journal::RunId;
use ferry_model::agent::{AgentStatus, Health, OpKind, OpRequest, OpResult, OpState};
use ferry_model::{Effect, PlannedStep, Site, Wait};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the driver reaches and authenticates to the agents.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Bearer token for every agent.
    pub token: Option<String>,
    /// PEM of the CA that signed the agents' certificates.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM), for agents that take certificates.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Directory of packages: `SERVICE-VERSION.tar` and its `SERVICE-VERSION.tar.minisig`.
    pub packages: Option<PathBuf>,
    /// Service name on the agent when the node has no `service` fact.
    pub service: String,
    /// How long to keep trying an agent that does not answer, in seconds.
    pub patience_s: u64,
    /// Seconds between two polls of a gate.
    pub poll_s: f64,
}

#[derive(Debug, Clone)]
struct Target {
    url: String,
    service: String,
    /// The version the node ran when the plan was made (a revert to it on a node that already
    /// runs it has nothing to do).
    original: String,
    role: String,
    cluster: String,
}

struct Shared {
    http: ureq::Agent,
    opts: AgentOptions,
    nodes: BTreeMap<(String, String), Target>,
}

pub struct AgentDriver {
    shared: Arc<Shared>,
    tx: mpsc::Sender<(String, u64, Outcome)>,
    rx: mpsc::Receiver<(String, u64, Outcome)>,
    /// Steps under way, with the generation of their worker (a step cancelled and started
    /// again has a new one: the old worker's answer is dropped).
    running: BTreeMap<String, u64>,
    generation: u64,
}

fn other(e: impl std::fmt::Display) -> DriverError {
    DriverError::Other(e.to_string())
}

/// The agent's URL from a node's address: `https://HOST:PORT`, or `HOST:PORT`.
fn agent_url(address: &str) -> String {
    let a = address.trim_end_matches('/');
    if a.starts_with("https://") || a.starts_with("http://") {
        a.to_string()
    } else {
        format!("https://{a}")
    }
}

impl AgentDriver {
    /// A driver for the nodes of `site` (each node's `address` is its agent).
    pub fn new(site: &Site, opts: AgentOptions) -> Result<AgentDriver, DriverError> {
        let mut nodes = BTreeMap::new();
        for c in &site.clusters {
            for n in &c.nodes {
                let Some(address) = &n.address else {
                    return Err(DriverError::Other(format!(
                        "node {}/{} has no address: the agent driver needs each node's agent (address = \"https://host:port\")",
                        c.name, n.name
                    )));
                };
                let service = n
                    .facts
                    .get("service")
                    .or_else(|| c.facts.get("service"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| opts.service.clone());
                nodes.insert(
                    (c.name.clone(), n.name.clone()),
                    Target {
                        url: agent_url(address),
                        service,
                        original: n.version.to_string(),
                        role: n.role.clone(),
                        cluster: c.name.clone(),
                    },
                );
            }
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &opts.ca_pem {
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(ca)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.to_owned()),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(other("the agents' CA file holds no certificate"));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        if let Some((cert, key)) = &opts.client_pem {
            let chain: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(cert)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.to_owned()),
                    _ => None,
                })
                .collect();
            let key = ureq::tls::parse_pem(key)
                .find_map(|i| match i {
                    Ok(ureq::tls::PemItem::PrivateKey(k)) => Some(k.to_owned()),
                    _ => None,
                })
                .ok_or_else(|| other("the client key file holds no private key"))?;
            tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        let http: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let (tx, rx) = mpsc::channel();
        Ok(AgentDriver {
            shared: Arc::new(Shared { http, opts, nodes }),
            tx,
            rx,
            running: BTreeMap::new(),
            generation: 0,
        })
    }

    /// The status of one node's agent (for tests and `ferry status`-like tools).
    pub fn status(&self, cluster: &str, node: &str) -> Result<AgentStatus, DriverError> {
        let t = self
            .shared
            .nodes
            .get(&(cluster.to_string(), node.to_string()))
            .ok_or_else(|| other(format!("no node {cluster}/{node}")))?;
        self.shared.status(t).map_err(other)
    }
}

fn op_id(run: RunId, step: &str) -> String {
    format!("run-{run}/{step}")
}

impl Shared {
    fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        let deadline = Instant::now() + Duration::from_secs(self.opts.patience_s.max(1));
        loop {
            let auth = self.opts.token.as_ref().map(|t| format!("Bearer {t}"));
            let result = match (method, body) {
                ("POST", Some(b)) => {
                    let mut r = self
                        .http
                        .post(url)
                        .header("content-type", "application/json");
                    if let Some(a) = &auth {
                        r = r.header("authorization", a);
                    }
                    r.send(b)
                }
                _ => {
                    let mut r = self.http.get(url);
                    if let Some(a) = &auth {
                        r = r.header("authorization", a);
                    }
                    r.call()
                }
            };
            match result {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let text = resp
                        .body_mut()
                        .read_to_string()
                        .map_err(|e| format!("{url}: cannot read the answer: {e}"))?;
                    return Ok((status, text));
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => {
                    return Err(format!(
                    "{url}: the agent did not answer for {} s ({e}); asking again later is safe",
                    self.opts.patience_s
                ))
                }
            }
        }
    }

    fn status(&self, t: &Target) -> Result<AgentStatus, String> {
        let url = format!("{}/v1/status", t.url);
        let (code, text) = self.request("GET", &url, None)?;
        if code != 200 {
            return Err(format!("{url}: {code} {}", error_text(&text)));
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: not an agent's status: {e}"))
    }

    fn op(&self, t: &Target, req: &OpRequest) -> Result<OpResult, String> {
        let url = format!("{}/v1/ops", t.url);
        let body = serde_json::to_string(req).map_err(|e| e.to_string())?;
        loop {
            let (code, text) = self.request("POST", &url, Some(&body))?;
            match code {
                200 | 202 => {
                    let r: OpResult = serde_json::from_str(&text)
                        .map_err(|e| format!("{url}: not an operation's result: {e}"))?;
                    if r.state != OpState::Running {
                        return Ok(r);
                    }
                    std::thread::sleep(Duration::from_secs_f64(self.opts.poll_s.max(0.05)));
                }
                _ => {
                    return Err(format!(
                        "{} refused `{}`: {code} {}",
                        t.url,
                        req.op.as_str(),
                        error_text(&text)
                    ))
                }
            }
        }
    }

    fn op_result(&self, t: &Target, id: &str) -> Result<Option<OpResult>, String> {
        let enc: String = id
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let url = format!("{}/v1/ops/{enc}", t.url);
        let (code, text) = self.request("GET", &url, None)?;
        match code {
            200 | 202 => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{url}: not an operation's result: {e}")),
            404 => Ok(None),
            _ => Err(format!("{url}: {code} {}", error_text(&text))),
        }
    }

    fn package(&self, service: &str, version: &str) -> Result<(String, String), String> {
        use base64::Engine;
        let dir = self.opts.packages.as_ref().ok_or_else(|| {
            "staging needs the packages' directory (--packages DIR, with SERVICE-VERSION.tar and its .minisig)".to_string()
        })?;
        let tar = dir.join(format!("{service}-{version}.tar"));
        let sig = dir.join(format!("{service}-{version}.tar.minisig"));
        let bytes = std::fs::read(&tar).map_err(|e| format!("{}: {e}", tar.display()))?;
        let signature =
            std::fs::read_to_string(&sig).map_err(|e| format!("{}: {e}", sig.display()))?;
        Ok((
            base64::engine::general_purpose::STANDARD.encode(bytes),
            signature,
        ))
    }

    /// Carries one step out; the outcome.
    fn carry_out(&self, run: RunId, step: &PlannedStep) -> Outcome {
        match self.try_carry_out(run, step) {
            Ok(o) => o,
            Err(e) => Outcome::Failed(e),
        }
    }

    fn try_carry_out(&self, run: RunId, step: &PlannedStep) -> Result<Outcome, String> {
        let target = step
            .node
            .as_ref()
            .map(|n| {
                self.nodes
                    .get(&(step.cluster.clone(), n.clone()))
                    .ok_or_else(|| format!("no agent for {}/{n}", step.cluster))
            })
            .transpose()?;
        let id = op_id(run, &step.id);
        let mut outcome = Outcome::Done;
        for e in &step.effects {
            let op = match e {
                Effect::Snapshot => Some(OpKind::Snapshot),
                Effect::InstallInactive | Effect::InstallInPlace => Some(OpKind::Stage),
                Effect::Switch => Some(OpKind::Switch),
                Effect::Revert => Some(OpKind::Revert),
                Effect::Restart => Some(OpKind::Restart),
                Effect::Wait(w) => {
                    self.wait_for(step, target, w)?;
                    None
                }
                Effect::If { .. } | Effect::Require { .. } => None,
                other => {
                    return Err(format!(
                        "the agent driver cannot carry out the effect `{}` of {}",
                        other.name(),
                        step.id
                    ))
                }
            };
            let Some(op) = op else { continue };
            let t = target.ok_or_else(|| format!("{} names no node", step.id))?;
            let mut req = OpRequest {
                id: format!("{id}/{}", op.as_str()),
                service: t.service.clone(),
                op,
                version: None,
                package: None,
                signature: None,
                snapshot: None,
                role: None,
                health_deadline_s: None,
            };
            match op {
                OpKind::Stage => {
                    let version = step
                        .version
                        .clone()
                        .ok_or_else(|| format!("{} has no version to stage", step.id))?;
                    let status = self.status(t)?;
                    let staged = status
                        .services
                        .iter()
                        .find(|s| s.name == t.service)
                        .and_then(|s| s.inactive.as_ref())
                        .is_some_and(|i| i.version == version);
                    if !staged {
                        let (package, signature) = self.package(&t.service, &version)?;
                        req.package = Some(package);
                        req.signature = Some(signature);
                    }
                    req.version = Some(version);
                    if staged {
                        continue;
                    }
                }
                OpKind::Revert => {
                    let status = self.status(t)?;
                    let on_original = status
                        .services
                        .iter()
                        .find(|s| s.name == t.service)
                        .and_then(|s| s.active.as_ref())
                        .is_some_and(|a| a.version == t.original);
                    if on_original {
                        outcome = Outcome::Skipped;
                        continue;
                    }
                }
                _ => {}
            }
            let r = self.op(t, &req)?;
            if r.state == OpState::Failed {
                return Ok(Outcome::Failed(format!(
                    "{} {}: {}",
                    t.url,
                    op.as_str(),
                    r.message
                )));
            }
        }
        Ok(outcome)
    }

    /// Polls until a gate's condition holds (the executor cancels it at its timeout).
    fn wait_for(
        &self,
        step: &PlannedStep,
        target: Option<&Target>,
        w: &Wait,
    ) -> Result<(), String> {
        let every = Duration::from_secs_f64(self.opts.poll_s.max(0.05));
        let deadline = Instant::now() + Duration::from_secs(step.timeout_s.unwrap_or(3600).max(1));
        loop {
            let holds = match w {
                Wait::Healthy => {
                    let t = target.ok_or_else(|| format!("{} names no node", step.id))?;
                    let s = self.status(t)?;
                    s.services
                        .iter()
                        .find(|x| x.name == t.service)
                        .is_some_and(|x| x.health == Health::Healthy)
                }
                Wait::Replication(roles) => {
                    let mut all = true;
                    for t in self
                        .nodes
                        .values()
                        .filter(|t| t.cluster == step.cluster && roles.contains(&t.role))
                    {
                        let s = self.status(t)?;
                        let good = s
                            .services
                            .iter()
                            .find(|x| x.name == t.service)
                            .is_some_and(|x| x.replication == Some(2));
                        all &= good;
                    }
                    all
                }
                other => {
                    return Err(format!(
                        "the agent driver cannot wait for {other:?} ({})",
                        step.id
                    ))
                }
            };
            if holds {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{}: the condition did not hold in time", step.id));
            }
            std::thread::sleep(every);
        }
    }

    /// What became of a step: the agent's record of its operations.
    fn inspect(&self, run: RunId, step: &PlannedStep) -> Result<Inspection, String> {
        let Some(node) = &step.node else {
            return Ok(Inspection::NotStarted);
        };
        let t = self
            .nodes
            .get(&(step.cluster.clone(), node.clone()))
            .ok_or_else(|| format!("no agent for {}/{node}", step.cluster))?;
        let ops: Vec<OpKind> = step
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Snapshot => Some(OpKind::Snapshot),
                Effect::InstallInactive | Effect::InstallInPlace => Some(OpKind::Stage),
                Effect::Switch => Some(OpKind::Switch),
                Effect::Revert => Some(OpKind::Revert),
                Effect::Restart => Some(OpKind::Restart),
                _ => None,
            })
            .collect();
        let Some(last) = ops.last() else {
            // Nothing but waits: asking again is harmless.
            return Ok(Inspection::NotStarted);
        };
        match self.op_result(t, &format!("{}/{}", op_id(run, &step.id), last.as_str()))? {
            None => Ok(Inspection::NotStarted),
            Some(r) => Ok(match r.state {
                OpState::Running => Inspection::Running,
                OpState::Done => Inspection::Ended(Outcome::Done),
                OpState::Failed => Inspection::Ended(Outcome::Failed(r.message)),
            }),
        }
    }
}

fn error_text(body: &str) -> String {
    serde_json::from_str::<ferry_model::agent::ApiError>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| body.chars().take(200).collect())
}

impl Driver for AgentDriver {
    fn now(&self) -> i64 {
        system_now()
    }

    fn start(&mut self, run: RunId, step: &PlannedStep) -> Result<(), DriverError> {
        if self.running.contains_key(&step.id) {
            return Ok(());
        }
        self.generation += 1;
        let gen = self.generation;
        self.running.insert(step.id.clone(), gen);
        let shared = Arc::clone(&self.shared);
        let tx = self.tx.clone();
        let step = step.clone();
        std::thread::spawn(move || {
            let outcome = shared.carry_out(run, &step);
            let _ = tx.send((step.id.clone(), gen, outcome));
        });
        Ok(())
    }

    fn wait(
        &mut self,
        _run: RunId,
        deadline: Option<i64>,
    ) -> Result<Option<(String, Outcome)>, DriverError> {
        loop {
            let (id, gen, outcome) = match deadline {
                Some(d) => {
                    let left = (d - system_now()).max(0) as u64;
                    match self.rx.recv_timeout(Duration::from_secs(left)) {
                        Ok(x) => x,
                        Err(mpsc::RecvTimeoutError::Timeout) => return Ok(None),
                        Err(e) => return Err(other(e)),
                    }
                }
                None => {
                    if self.running.is_empty() {
                        return Err(other("nothing is under way to wait for"));
                    }
                    self.rx.recv().map_err(other)?
                }
            };
            if self.running.get(&id) == Some(&gen) {
                self.running.remove(&id);
                return Ok(Some((id, outcome)));
            }
        }
    }

    fn cancel(&mut self, _run: RunId, step_id: &str) -> Result<(), DriverError> {
        self.running.remove(step_id);
        Ok(())
    }

    fn inspect(&mut self, run: RunId, step: &PlannedStep) -> Result<Inspection, DriverError> {
        self.shared.inspect(run, step).map_err(other)
    }
}
