//! The `agent` driver: carries steps out through the ferry agent on each node, over HTTPS
//! (`docs/agent-api.md`). What a step asks of an agent comes from its effects, so the driver
//! knows no product: `snapshot`, `install_inactive` (stage the package of the step's version),
//! `switch` (to the step's version), `revert` (to the node's original version), `restart` are
//! agent operations; a `healthy` gate polls the node's status, a `replication` gate polls
//! every node of its roles.
//!
//! Every operation carries the ID `run-RUN/STEP`, so starting a step again, or asking after a
//! crash (`inspect`), never applies it twice: the agent returns its first result. A node that
//! cannot be reached fails the step once the driver's patience runs out; trying the step again
//! later is safe for the same reason.

use crate::driver::{system_now, Driver, DriverError, Inspection, Outcome};
use crate::journal::{Journal, RunId};
use ferry_agent::client::{AgentClient, ClientOptions, Connector};
use ferry_model::agent::{AgentStatus, Health, OpKind, OpRequest, OpResult, OpState};
use ferry_model::{Effect, PlannedStep, Profile, Site, Wait};
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
    name: String,
    url: String,
    /// The client of the node's agent (its connections shared with every other node's).
    client: AgentClient,
    service: String,
    /// The version the node ran when the plan was made (a revert to it on a node that already
    /// runs it has nothing to do).
    original: String,
    role: String,
    cluster: String,
}

struct Shared {
    opts: AgentOptions,
    nodes: BTreeMap<(String, String), Target>,
    /// HA pairs by (cluster, node): from the profiles' `[[twin.ha_pair]]` tables.
    pairs: BTreeMap<(String, String), Pair>,
    /// The nodes in the site's order.
    order: Vec<(String, String)>,
    /// This journal's own prefix of operation IDs (random, made once and kept in the journal),
    /// so that runs of two journals (two state directories, two operators) never share an ID
    /// on an agent, while a resumed run keeps its IDs.
    prefix: String,
}

/// Where the journal keeps its prefix of operation IDs.
const ID_PREFIX_KEY: &str = "agent.op_id_prefix";

/// 12 random hex digits, for operation IDs no other client chose, from the operating system's
/// random source (`getrandom`).
pub fn random_hex() -> Result<String, String> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The journal's prefix of operation IDs, made on first use: `ferry-` and 12 random hex digits.
fn id_prefix(journal: &Journal) -> Result<String, DriverError> {
    if let Some(p) = journal.driver_state(ID_PREFIX_KEY).map_err(other)? {
        return Ok(p);
    }
    let p = format!("ferry-{}", random_hex().map_err(other)?);
    journal.put_driver_state(ID_PREFIX_KEY, &p).map_err(other)?;
    Ok(p)
}

/// A node's HA partner, and the pair's roles (the primary's, then the backup's).
#[derive(Debug, Clone)]
struct Pair {
    partner: String,
    roles: [String; 2],
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
    /// A driver for the nodes of `site` (each node's `address` is its agent). The profiles
    /// say which nodes form HA pairs (for steps that set or reverse roles).
    pub fn new(
        journal: &Journal,
        site: &Site,
        profiles: &BTreeMap<String, Profile>,
        opts: AgentOptions,
    ) -> Result<AgentDriver, DriverError> {
        if opts.token.is_none() && opts.client_pem.is_none() {
            return Err(other(
                "the agent driver needs credentials the agents accept: a bearer token (--agent-token-file FILE) or a client certificate (--agent-cert FILE --agent-key FILE)",
            ));
        }
        let ca_pem = opts
            .ca_pem
            .clone()
            .ok_or_else(|| other("the agent driver needs the CA that signed the agents' certificates (--agent-ca FILE)"))?;
        let connector = Connector::new(ClientOptions {
            token: opts.token.clone(),
            ca_pem,
            identity: opts.client_pem.clone(),
            // An agent answers at once (long operations answer 202 and are asked again), so a
            // node that stops answering is noticed within the patience; only a package's
            // upload may take long.
            timeout: Duration::from_secs(3600),
            connect_timeout: Some(Duration::from_secs(5)),
            response_timeout: Some(Duration::from_secs(opts.patience_s.clamp(5, 60))),
        })
        .map_err(|e| other(format!("the agents' TLS settings: {e}")))?;
        let mut nodes = BTreeMap::new();
        let mut pairs = BTreeMap::new();
        let order: Vec<(String, String)> = site
            .clusters
            .iter()
            .flat_map(|c| c.nodes.iter().map(|n| (c.name.clone(), n.name.clone())))
            .collect();
        for c in &site.clusters {
            for spec in profiles
                .get(&c.profile)
                .map(|p| p.twin.ha_pairs.as_slice())
                .unwrap_or_default()
            {
                let [primary, backup] = spec.roles.as_slice() else {
                    continue;
                };
                let of = |role: &str| {
                    c.nodes
                        .iter()
                        .filter(|n| n.role == role)
                        .collect::<Vec<_>>()
                };
                if let ([p], [b]) = (of(primary).as_slice(), of(backup).as_slice()) {
                    let roles = [primary.clone(), backup.clone()];
                    for (n, partner) in [(p, b), (b, p)] {
                        pairs.insert(
                            (c.name.clone(), n.name.clone()),
                            Pair {
                                partner: partner.name.clone(),
                                roles: roles.clone(),
                            },
                        );
                    }
                }
            }
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
                let url = agent_url(address);
                let client = connector
                    .client(&url)
                    .map_err(|e| DriverError::Other(format!("node {}/{}: {e}", c.name, n.name)))?;
                nodes.insert(
                    (c.name.clone(), n.name.clone()),
                    Target {
                        name: n.name.clone(),
                        url,
                        client,
                        service,
                        original: n.version.to_string(),
                        role: n.role.clone(),
                        cluster: c.name.clone(),
                    },
                );
            }
        }
        let (tx, rx) = mpsc::channel();
        Ok(AgentDriver {
            shared: Arc::new(Shared {
                opts,
                nodes,
                pairs,
                order,
                prefix: id_prefix(journal)?,
            }),
            tx,
            rx,
            running: BTreeMap::new(),
            generation: 0,
        })
    }

    /// The package files the stage steps among `steps` need and that cannot be read (or the
    /// reason there is no packages' directory): checked before a run starts anything.
    pub fn missing_packages(&self, steps: &[PlannedStep]) -> Vec<String> {
        let mut missing = std::collections::BTreeSet::new();
        for step in steps {
            let stages = step
                .effects
                .iter()
                .any(|e| matches!(e, Effect::InstallInactive | Effect::InstallInPlace));
            let (Some(node), Some(version), true) = (&step.node, &step.version, stages) else {
                continue;
            };
            let Ok(t) = self.shared.target(&step.cluster, node) else {
                continue;
            };
            let Some(dir) = &self.shared.opts.packages else {
                missing.insert("the packages' directory (--packages DIR, with SERVICE-VERSION.tar and its .minisig)".to_string());
                continue;
            };
            for f in [
                format!("{}-{version}.tar", t.service),
                format!("{}-{version}.tar.minisig", t.service),
            ] {
                let p = dir.join(f);
                if !p.is_file() {
                    missing.insert(p.display().to_string());
                }
            }
        }
        missing.into_iter().collect()
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

    /// What every node's agent says of the node's service now (all asked at once; one that
    /// does not answer is asked again for the patience), in the site's order.
    pub fn survey(&self) -> Vec<NodeSurvey> {
        let shared = &self.shared;
        let mut out: Vec<NodeSurvey> = std::thread::scope(|scope| {
            let asks: Vec<_> = shared
                .nodes
                .values()
                .map(|t| scope.spawn(move || (t, shared.agent_and_service(t))))
                .collect();
            asks.into_iter()
                .filter_map(|h| h.join().ok())
                .map(|(t, answer)| {
                    let (agent, service) = match answer {
                        Ok((a, s)) => (Some(a), Ok(s)),
                        Err(e) => (None, Err(e)),
                    };
                    NodeSurvey {
                        cluster: t.cluster.clone(),
                        node: t.name.clone(),
                        url: t.url.clone(),
                        agent,
                        service,
                    }
                })
                .collect()
        });
        let order: BTreeMap<(String, String), usize> = self
            .shared
            .order
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        out.sort_by_key(|s| order.get(&(s.cluster.clone(), s.node.clone())).copied());
        out
    }
}

/// One node's answer in `AgentDriver::survey`.
#[derive(Debug, Clone)]
pub struct NodeSurvey {
    pub cluster: String,
    pub node: String,
    pub url: String,
    /// The agent's own name (its configuration's `name`), when it answered.
    pub agent: Option<String>,
    /// The service's status, or why the agent could not tell (unreachable, refused, no such
    /// service).
    pub service: Result<ferry_model::agent::ServiceStatus, String>,
}

/// The ID of one operation of a step: `run-RUN/STEP/KEY` for its first attempt, with `/try-N`
/// for the attempts after a failure.
impl AgentDriver {
    /// A worker thread that carries the step out and reports its end.
    fn spawn(&mut self, run: RunId, step: &PlannedStep) {
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
    }
}

fn op_id(prefix: &str, run: RunId, step: &str, key: &str, attempt: u32) -> String {
    if attempt <= 1 {
        format!("{prefix}/run-{run}/{step}/{key}")
    } else {
        format!("{prefix}/run-{run}/{step}/{key}/try-{attempt}")
    }
}

/// What a step asks, in order: operations on agents, or waits.
enum Action<'a> {
    Op {
        node: &'a Target,
        kind: OpKind,
        /// `set_role`: the role to give.
        role: Option<String>,
        /// The operation's part of its ID (unique within the step).
        key: String,
    },
    Wait(&'a Wait),
}

impl Shared {
    /// One request to a node's agent, asked again every half second while it does not
    /// answer, for the patience: (status, body).
    fn request(
        &self,
        t: &Target,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        let deadline = Instant::now() + Duration::from_secs(self.opts.patience_s.max(1));
        let body = body.unwrap_or_default().as_bytes();
        loop {
            match t.client.request(method, path, body) {
                Ok(reply) => {
                    return Ok((
                        reply.status,
                        String::from_utf8_lossy(&reply.body).into_owned(),
                    ))
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => {
                    return Err(format!(
                    "{}{path}: the agent did not answer for {} s ({}); asking again later is safe",
                    t.url,
                    self.opts.patience_s,
                    e.reason()
                ))
                }
            }
        }
    }

    fn status(&self, t: &Target) -> Result<AgentStatus, String> {
        let url = format!("{}/v1/status", t.url);
        let (code, text) = self.request(t, "GET", "/v1/status", None)?;
        if code != 200 {
            return Err(format!("{url}: {code} {}", error_text(&text)));
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: not an agent's status: {e}"))
    }

    /// Asks for an operation and waits for its end. The agent answers a POST when the
    /// operation has ended, so a long one (a slow health check) outlasts the response
    /// timeout: then, and while it is under way, its record is asked for (`GET`, answered at
    /// once) until it has ended. The patience bounds how long the agent stays silent, not how
    /// long the operation takes.
    fn op(&self, t: &Target, req: &OpRequest) -> Result<OpResult, String> {
        let url = format!("{}/v1/ops", t.url);
        let body = serde_json::to_string(req).map_err(|e| e.to_string())?;
        let poll = || std::thread::sleep(Duration::from_secs_f64(self.opts.poll_s.max(0.05)));
        let mut unanswered = 0;
        loop {
            match self.request(t, "POST", "/v1/ops", Some(&body)) {
                Ok((200 | 202, text)) => {
                    let r: OpResult = serde_json::from_str(&text)
                        .map_err(|e| format!("{url}: not an operation's result: {e}"))?;
                    if r.state != OpState::Running {
                        return Ok(r);
                    }
                }
                Ok((code, text)) => {
                    return Err(format!(
                        "{} refused `{}`: {code} {}",
                        t.url,
                        req.op.as_str(),
                        error_text(&text)
                    ))
                }
                // No answer in time: the operation may just be long. An agent that does not
                // answer this either fails the step.
                Err(silent) => match self.op_result(t, &req.id)? {
                    Some(r) if r.state != OpState::Running => return Ok(r),
                    Some(_) => {}
                    // It never arrived: asking again is safe (the same ID), a few times.
                    None => {
                        unanswered += 1;
                        if unanswered >= 3 {
                            return Err(silent);
                        }
                        continue;
                    }
                },
            }
            // Under way: follow its record.
            loop {
                poll();
                match self.op_result(t, &req.id)? {
                    Some(r) if r.state != OpState::Running => return Ok(r),
                    Some(_) => {}
                    None => break,
                }
            }
        }
    }

    fn op_result(&self, t: &Target, id: &str) -> Result<Option<OpResult>, String> {
        let path = ferry_model::agent::op_path(id);
        let url = format!("{}{path}", t.url);
        let (code, text) = self.request(t, "GET", &path, None)?;
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

    fn target(&self, cluster: &str, node: &str) -> Result<&Target, String> {
        self.nodes
            .get(&(cluster.to_string(), node.to_string()))
            .ok_or_else(|| format!("no agent for {cluster}/{node}"))
    }

    /// The operations and waits of a step, from its effects.
    fn actions<'a>(&'a self, step: &'a PlannedStep) -> Result<Vec<Action<'a>>, String> {
        let target = step
            .node
            .as_ref()
            .map(|n| self.target(&step.cluster, n))
            .transpose()?;
        let node = || target.ok_or_else(|| format!("{} names no node", step.id));
        let mut out = Vec::new();
        let simple = |kind: OpKind, out: &mut Vec<Action<'a>>| -> Result<(), String> {
            out.push(Action::Op {
                node: node()?,
                kind,
                role: None,
                key: kind.as_str().to_string(),
            });
            Ok(())
        };
        for e in &step.effects {
            match e {
                Effect::Snapshot => simple(OpKind::Snapshot, &mut out)?,
                Effect::InstallInactive | Effect::InstallInPlace => {
                    simple(OpKind::Stage, &mut out)?
                }
                Effect::Switch => simple(OpKind::Switch, &mut out)?,
                Effect::Revert => simple(OpKind::Revert, &mut out)?,
                Effect::Restart => simple(OpKind::Restart, &mut out)?,
                Effect::ReverseRoles | Effect::SetupRoles => {
                    let n = node()?;
                    let pair = self
                        .pairs
                        .get(&(n.cluster.clone(), n.name.clone()))
                        .ok_or_else(|| {
                            format!(
                            "{}: {} is in no HA pair of its profile, so there are no roles to set",
                            step.id, n.name
                        )
                        })?;
                    let partner = self.target(&n.cluster, &pair.partner)?;
                    // The node that becomes primary first, then the other backup.
                    let n_primary = n.role == pair.roles[0];
                    let n_becomes_primary = match e {
                        Effect::ReverseRoles => !n_primary,
                        _ => n_primary,
                    };
                    let (first, second) = if n_becomes_primary {
                        (n, partner)
                    } else {
                        (partner, n)
                    };
                    for (t, role) in [(first, "primary"), (second, "backup")] {
                        out.push(Action::Op {
                            node: t,
                            kind: OpKind::SetRole,
                            role: Some(role.to_string()),
                            key: format!("set_role@{}", t.name),
                        });
                    }
                }
                Effect::Wait(w) => out.push(Action::Wait(w)),
                Effect::If { .. } | Effect::Require { .. } | Effect::FailsOnConfigChange(_) => {}
                other => {
                    return Err(format!(
                        "the agent driver cannot carry out the effect `{}` of {}",
                        other.name(),
                        step.id
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The records of one attempt's operations on their agents (`None`: never asked).
    fn attempt_records(
        &self,
        run: RunId,
        step: &PlannedStep,
        actions: &[Action],
        attempt: u32,
    ) -> Result<Vec<Option<OpResult>>, String> {
        let mut out = Vec::new();
        for a in actions {
            if let Action::Op { node, key, .. } = a {
                out.push(self.op_result(node, &op_id(&self.prefix, run, &step.id, key, attempt))?);
            }
        }
        Ok(out)
    }

    /// The attempt a start of the step carries on: the first one no operation of which failed.
    /// A step that failed (here, or in a run before a crash) is tried with new operation IDs;
    /// one whose operations went through, or are under way, keeps its IDs, and the agents
    /// answer what they already did.
    fn attempt(&self, run: RunId, step: &PlannedStep, actions: &[Action]) -> Result<u32, String> {
        let mut k = 1;
        loop {
            let records = self.attempt_records(run, step, actions, k)?;
            let failed = records.iter().flatten().any(|r| r.state == OpState::Failed);
            if !failed || k >= 1000 {
                return Ok(k);
            }
            k += 1;
        }
    }

    /// The service's status on a node.
    /// The agent's name and its service's status.
    fn agent_and_service(
        &self,
        t: &Target,
    ) -> Result<(String, ferry_model::agent::ServiceStatus), String> {
        let status = self.status(t)?;
        let agent = status.agent.clone();
        let service = status
            .services
            .into_iter()
            .find(|s| s.name == t.service)
            .ok_or_else(|| format!("{}: the agent manages no service `{}`", t.url, t.service))?;
        Ok((agent, service))
    }

    fn service_status(&self, t: &Target) -> Result<ferry_model::agent::ServiceStatus, String> {
        let status = self.status(t)?;
        status
            .services
            .into_iter()
            .find(|s| s.name == t.service)
            .ok_or_else(|| format!("{}: the agent manages no service `{}`", t.url, t.service))
    }

    /// Carries one step out; the outcome.
    fn carry_out(&self, run: RunId, step: &PlannedStep) -> Outcome {
        match self.try_carry_out(run, step) {
            Ok(o) => o,
            Err(e) => Outcome::Failed(e),
        }
    }

    fn try_carry_out(&self, run: RunId, step: &PlannedStep) -> Result<Outcome, String> {
        let actions = self.actions(step)?;
        let attempt = self.attempt(run, step, &actions)?;
        let mut asked = 0;
        let mut skipped = 0;
        for a in &actions {
            let (t, kind, role, key) = match a {
                Action::Wait(w) => {
                    let target = step
                        .node
                        .as_ref()
                        .map(|n| self.target(&step.cluster, n))
                        .transpose()?;
                    self.wait_for(step, target, w)?;
                    continue;
                }
                Action::Op {
                    node,
                    kind,
                    role,
                    key,
                } => (*node, *kind, role, key),
            };
            asked += 1;
            let mut req = OpRequest {
                id: op_id(&self.prefix, run, &step.id, key, attempt),
                service: t.service.clone(),
                op: kind,
                version: None,
                package: None,
                signature: None,
                snapshot: None,
                role: role.clone(),
                health_deadline_s: None,
            };
            // Operations whose end state already holds are not asked for (unless this attempt
            // asked already: then the agent answers its record).
            let recorded = self.op_result(t, &req.id)?.is_some();
            match kind {
                OpKind::Stage => {
                    let version = step
                        .version
                        .clone()
                        .ok_or_else(|| format!("{} has no version to stage", step.id))?;
                    if !recorded {
                        let s = self.service_status(t)?;
                        let staged = s.inactive.as_ref().is_some_and(|i| i.version == version)
                            || s.active.as_ref().is_some_and(|a| a.version == version);
                        if staged {
                            skipped += 1;
                            continue;
                        }
                    }
                    // A repeated ID must come with the same request: the same package.
                    let (package, signature) = self.package(&t.service, &version)?;
                    req.package = Some(package);
                    req.signature = Some(signature);
                    req.version = Some(version);
                }
                // A switch goes to the version the step brings: already there (switched by
                // hand, say) it is skipped; with another version in the inactive slot (staged
                // by hand since the stage step) nothing is switched and the step fails.
                OpKind::Switch => {
                    let version = step
                        .version
                        .clone()
                        .ok_or_else(|| format!("{} has no version to switch to", step.id))?;
                    req.version = Some(version.clone());
                    if !recorded {
                        let s = self.service_status(t)?;
                        if s.active.as_ref().is_some_and(|a| a.version == version) {
                            skipped += 1;
                            continue;
                        }
                        let inactive = s.inactive.as_ref().map(|i| i.version.as_str());
                        if inactive != Some(version.as_str()) {
                            return Ok(Outcome::Failed(format!(
                                "{}: the inactive slot holds {}, not {version}: nothing was switched (stage {version} again, then resume)",
                                t.url,
                                inactive.unwrap_or("nothing")
                            )));
                        }
                    }
                }
                // A revert goes back to the version the node ran when the plan was made.
                OpKind::Revert => {
                    req.version = Some(t.original.clone());
                    if !recorded {
                        let s = self.service_status(t)?;
                        if s.active.as_ref().is_some_and(|a| a.version == t.original) {
                            skipped += 1;
                            continue;
                        }
                    }
                }
                OpKind::SetRole if !recorded => {
                    let s = self.service_status(t)?;
                    if s.role.as_deref() == role.as_deref() {
                        skipped += 1;
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
                    kind.as_str(),
                    r.message
                )));
            }
        }
        Ok(if asked > 0 && skipped == asked {
            Outcome::Skipped
        } else {
            Outcome::Done
        })
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
                    self.service_status(t)?.health == Health::Healthy
                }
                Wait::Replication(roles) => {
                    let mut all = true;
                    for t in self
                        .nodes
                        .values()
                        .filter(|t| t.cluster == step.cluster && roles.contains(&t.role))
                    {
                        all &= self.service_status(t)?.replication == Some(2);
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

    /// What became of a step: the agents' records of its latest attempt's operations.
    fn inspect(&self, run: RunId, step: &PlannedStep) -> Result<Inspection, String> {
        let actions = self.actions(step)?;
        let mut latest = None;
        for k in 1..1000 {
            let records = self.attempt_records(run, step, &actions, k)?;
            if records.iter().all(Option::is_none) {
                break;
            }
            latest = Some(records);
        }
        let Some(records) = latest else {
            // Nothing asked of any agent (or nothing but waits): starting again is harmless.
            return Ok(Inspection::NotStarted);
        };
        if let Some(r) = records
            .iter()
            .flatten()
            .find(|r| r.state == OpState::Failed)
        {
            return Ok(Inspection::Ended(Outcome::Failed(r.message.clone())));
        }
        if records
            .iter()
            .flatten()
            .any(|r| r.state == OpState::Running)
        {
            return Ok(Inspection::Running);
        }
        let waits = actions.iter().any(|a| matches!(a, Action::Wait(_)));
        match records.last() {
            Some(Some(r)) if r.state == OpState::Done && !waits => {
                Ok(Inspection::Ended(Outcome::Done))
            }
            // Part of the step went through: starting it again carries on from there.
            _ => Ok(Inspection::NotStarted),
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
        if !self.running.contains_key(&step.id) {
            self.spawn(run, step);
        }
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
        let found = self.shared.inspect(run, step).map_err(other)?;
        if found == Inspection::Running {
            // The executor waits for it: a worker asks the agents until it ends (the same
            // operation IDs, so nothing is done again).
            self.spawn(run, step);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operation-ID prefixes: 12 hex digits from the system's random source, never twice the
    /// same (two journals must not share IDs on an agent).
    #[test]
    fn random_prefixes() {
        let a = random_hex().expect("random");
        let b = random_hex().expect("random");
        for x in [&a, &b] {
            assert_eq!(x.len(), 12, "{x}");
            assert!(x.bytes().all(|c| c.is_ascii_hexdigit()), "{x}");
        }
        assert_ne!(a, b);
    }
}
