//! The agent's engine: operations (stage, switch, revert, snapshot, restore, set_role,
//! restart), one at a time per service, journaled before and after, idempotent per ID; status
//! and heartbeat answers; crash recovery at start-up; HA promotion.

use crate::config::{Config, HaMode, ServiceConfig, SupervisorKind, Vars};
use crate::journal::{Begin, Detail, Journal, JournalError, StoredOp};
use crate::package::Trust;
use crate::slots::{Layout, Slot, SlotInfo};
use crate::supervisor::{Launch, Supervisor};
use crate::{health, AgentError};
use base64::Engine as _;
use ferry_model::agent::{
    AgentStatus, ApiError, Beat, Health, Heartbeat, OpKind, OpRequest, OpResult, OpState,
    ServiceStatus, AGENT_SCHEMA_VERSION,
};
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest operation ID accepted, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Answer {
        Answer {
            status,
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }
    pub fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer::json(
            status,
            &ApiError {
                error: message.into(),
            },
        )
    }
}

/// The answer for a journaled operation: its result, with `error` added when it was refused.
fn op_answer(status: u16, result: &OpResult) -> Answer {
    let mut v = serde_json::to_value(result).unwrap_or_default();
    if status >= 400 {
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "error".into(),
                serde_json::Value::String(result.message.clone()),
            );
        }
    }
    Answer::json(status, &v)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One service the engine keeps.
pub struct Svc {
    pub cfg: ServiceConfig,
    pub layout: Layout,
    pub sup: Supervisor,
    op_lock: Mutex<()>,
}

pub struct Engine {
    pub cfg: Config,
    journal: Mutex<Journal>,
    services: BTreeMap<String, Arc<Svc>>,
    trust: Trust,
}

/// How an operation ended.
struct Outcome {
    state: OpState,
    message: String,
    http: u16,
    snapshot: Option<String>,
}

impl Outcome {
    fn done(message: impl Into<String>) -> Outcome {
        Outcome {
            state: OpState::Done,
            message: message.into(),
            http: 200,
            snapshot: None,
        }
    }
    fn failed(message: impl Into<String>) -> Outcome {
        Outcome {
            state: OpState::Failed,
            message: message.into(),
            http: 200,
            snapshot: None,
        }
    }
    fn refused(status: u16, message: impl Into<String>) -> Outcome {
        Outcome {
            http: status,
            ..Outcome::failed(message)
        }
    }
    fn with_snapshot(mut self, s: Option<String>) -> Outcome {
        self.snapshot = s;
        self
    }
}

/// What validation extracted from a request.
struct Prepared {
    package: Option<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl Engine {
    /// Opens the journal and the services' directories, settles the operations a crash
    /// interrupted, and starts (or adopts) every service that has an active version.
    pub fn open(cfg: Config) -> Result<Engine, AgentError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| AgentError::Io {
            what: format!("cannot create {}", cfg.dir.display()),
            source: e,
        })?;
        let journal = Journal::open(&cfg.dir)?;
        let mut services = BTreeMap::new();
        for s in &cfg.services {
            let layout = Layout::new(&cfg.dir, &s.name);
            layout.ensure().map_err(|e| AgentError::Io {
                what: format!("service {}", s.name),
                source: e,
            })?;
            layout.clean_leftovers();
            let sup = Supervisor::new(
                &s.name,
                s.supervisor.clone(),
                &cfg.systemctl,
                layout.clone(),
                Duration::from_secs_f64(s.stop_timeout_s),
            );
            if let Some(ha) = &s.ha {
                if journal.state(&s.name, "role")?.is_none() {
                    journal.set_state(&s.name, "role", &ha.role)?;
                }
            }
            services.insert(
                s.name.clone(),
                Arc::new(Svc {
                    cfg: s.clone(),
                    layout,
                    sup,
                    op_lock: Mutex::new(()),
                }),
            );
        }
        let engine = Engine {
            trust: Trust::new(&cfg.public_keys),
            cfg,
            journal: Mutex::new(journal),
            services,
        };
        for svc in engine.services.values() {
            let launch = svc.layout.active().and_then(|s| engine.launch(svc, s));
            svc.sup.adopt(launch.as_ref());
        }
        engine.settle()?;
        for svc in engine.services.values() {
            let demoted = engine.yield_to_primary_peer(svc);
            if let Some(slot) = svc.layout.active() {
                if let Some(l) = engine.launch(svc, slot) {
                    let r = if demoted && svc.sup.running() {
                        svc.sup.restart(l)
                    } else {
                        svc.sup.start(l)
                    };
                    if let Err(e) = r {
                        tracing::error!(service = %svc.cfg.name, error = %e, "cannot start the service");
                    }
                }
            }
        }
        Ok(engine)
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<Svc>> {
        self.services.values()
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        lock(&self.journal)
    }

    /// The service's role: set by `set_role` or a promotion, else the configured one.
    pub fn role(&self, svc: &Svc) -> Option<String> {
        svc.cfg.ha.as_ref()?;
        self.journal()
            .state(&svc.cfg.name, "role")
            .ok()
            .flatten()
            .or_else(|| svc.cfg.ha.as_ref().map(|h| h.role.clone()))
    }

    fn vars(&self, svc: &Svc, slot: Option<Slot>) -> Vars {
        let version = slot
            .and_then(|s| svc.layout.info(s))
            .map(|i| i.version)
            .unwrap_or_default();
        Vars {
            slot: slot
                .map(|s| svc.layout.slot(s).display().to_string())
                .unwrap_or_default(),
            version,
            role: self.role(svc).unwrap_or_default(),
            data: svc.layout.data().display().to_string(),
            dir: svc.layout.root.display().to_string(),
            config: svc.layout.config().display().to_string(),
        }
    }

    fn launch(&self, svc: &Svc, slot: Slot) -> Option<Launch> {
        svc.layout.info(slot)?;
        let v = self.vars(svc, Some(slot));
        let env = vec![
            ("FERRY_AGENT".to_string(), self.cfg.name.clone()),
            ("FERRY_SERVICE".to_string(), svc.cfg.name.clone()),
            ("FERRY_SLOT".to_string(), v.slot.clone()),
            ("FERRY_VERSION".to_string(), v.version.clone()),
            ("FERRY_ROLE".to_string(), v.role.clone()),
            ("FERRY_DATA".to_string(), v.data.clone()),
            ("FERRY_DIR".to_string(), v.dir.clone()),
            ("FERRY_CONFIG".to_string(), v.config.clone()),
        ];
        Some(Launch {
            argv: crate::config::expand(&svc.cfg.run, &v),
            env,
            cwd: svc.layout.data(),
            slot: slot.as_str().to_string(),
        })
    }

    /// Waits until the service's health check passes, at most `deadline`.
    fn wait_healthy(&self, svc: &Svc, slot: Slot, deadline: Duration) -> Option<Duration> {
        let vars = self.vars(svc, Some(slot));
        let start = Instant::now();
        let mut pause = Duration::from_micros(500);
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            if health::check(&svc.cfg.health, &vars, left.min(Duration::from_secs(2))) {
                return Some(start.elapsed());
            }
            let left = deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                return None;
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }

    /// The service's health now.
    pub fn health(&self, svc: &Svc) -> Health {
        let Some(slot) = svc.layout.active() else {
            return Health::Stopped;
        };
        if !svc.sup.wanted() {
            return Health::Stopped;
        }
        let young = svc
            .sup
            .uptime()
            .is_some_and(|u| u.as_secs_f64() < svc.cfg.health_deadline_s);
        if svc.sup.running()
            && health::check(
                &svc.cfg.health,
                &self.vars(svc, Some(slot)),
                Duration::from_secs(1),
            )
        {
            Health::Healthy
        } else if young {
            Health::Starting
        } else {
            Health::Unhealthy
        }
    }

    fn replication(&self, svc: &Svc) -> Option<u8> {
        let probe = svc.cfg.probe.as_ref()?;
        let slot = svc.layout.active()?;
        health::probe(probe, &self.vars(svc, Some(slot)), Duration::from_secs(2))
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> AgentStatus {
        AgentStatus {
            schema_version: AGENT_SCHEMA_VERSION,
            agent: self.cfg.name.clone(),
            services: self
                .services
                .values()
                .map(|svc| {
                    let (active, inactive) = svc.layout.versions();
                    ServiceStatus {
                        name: svc.cfg.name.clone(),
                        active,
                        inactive,
                        health: self.health(svc),
                        role: self.role(svc),
                        replication: self.replication(svc),
                        pid: svc.sup.pid(),
                        supervisor: svc.cfg.supervisor.as_str().to_string(),
                        snapshots: svc.layout.snapshot_list(),
                    }
                })
                .collect(),
        }
    }

    /// `GET /v1/heartbeat`.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            schema_version: AGENT_SCHEMA_VERSION,
            agent: self.cfg.name.clone(),
            services: self
                .services
                .values()
                .map(|svc| Beat {
                    name: svc.cfg.name.clone(),
                    role: self.role(svc),
                    health: self.health(svc),
                })
                .collect(),
        }
    }

    /// `GET /v1/ops/{id}`.
    pub fn get_op(&self, id: &str) -> Answer {
        match self.journal().get(id) {
            Ok(Some(op)) => Answer::json(200, &op.result),
            Ok(None) => Answer::error(404, format!("no operation `{id}`")),
            Err(e) => Answer::error(500, e.to_string()),
        }
    }

    fn result(
        &self,
        req: &OpRequest,
        svc: &Svc,
        state: OpState,
        message: String,
        started: i64,
    ) -> OpResult {
        let (active, inactive) = svc.layout.versions();
        OpResult {
            schema_version: AGENT_SCHEMA_VERSION,
            id: req.id.clone(),
            service: req.service.clone(),
            op: req.op,
            state,
            message,
            started,
            ended: (state != OpState::Running).then(now),
            active,
            inactive,
            snapshot: None,
        }
    }

    /// The answer for an ID already journaled, or `None` when it is new.
    fn seen(&self, id: &str, hash: &str) -> Result<Option<Answer>, JournalError> {
        Ok(self.journal().get(id)?.map(|op| Self::replay(&op, hash)))
    }

    fn replay(op: &StoredOp, hash: &str) -> Answer {
        if op.request_hash != hash {
            return Answer::error(
                409,
                format!(
                    "operation ID `{}` was used for a different request",
                    op.result.id
                ),
            );
        }
        if op.result.state == OpState::Running {
            return Answer::json(202, &op.result);
        }
        op_answer(op.http_status, &op.result)
    }

    fn validate(&self, req: &OpRequest) -> Result<Prepared, Answer> {
        if req.id.trim().is_empty() {
            return Err(Answer::error(400, "the operation ID is empty"));
        }
        if req.id.len() > MAX_ID_BYTES {
            return Err(Answer::error(
                400,
                format!("the operation ID is longer than {MAX_ID_BYTES} bytes"),
            ));
        }
        let Some(svc) = self.services.get(&req.service) else {
            return Err(Answer::error(
                400,
                format!(
                    "unknown service `{}`; services: {}",
                    req.service,
                    self.services.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let mut package = None;
        match req.op {
            OpKind::Stage => {
                let Some(v) = req.version.as_deref() else {
                    return Err(Answer::error(400, "a stage needs `version`"));
                };
                if let Err(e) = ferry_model::VendorVersion::parse(v) {
                    return Err(Answer::error(400, format!("bad `version`: {e}")));
                }
                let Some(p) = req.package.as_deref() else {
                    return Err(Answer::error(400, "a stage needs `package` (base64)"));
                };
                package = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(p.trim())
                        .map_err(|e| Answer::error(400, format!("`package` is not base64: {e}")))?,
                );
            }
            OpKind::Switch | OpKind::Revert => {
                match req.version.as_deref() {
                    None if req.op == OpKind::Switch => {
                        return Err(Answer::error(
                            422,
                            "a switch names no `version`: name the version it switches to (the one staged in the inactive slot), so that a repeated or concurrent switch cannot switch back",
                        ))
                    }
                    None => {}
                    Some(v) => {
                        if let Err(e) = ferry_model::VendorVersion::parse(v) {
                            return Err(Answer::error(400, format!("bad `version`: {e}")));
                        }
                    }
                }
                if let Some(d) = req.health_deadline_s {
                    if !(d.is_finite() && d > 0.0 && d <= 3600.0) {
                        return Err(Answer::error(
                            400,
                            format!(
                                "`health_deadline_s` must be within 0 and 3600 seconds, found {d}"
                            ),
                        ));
                    }
                }
            }
            OpKind::Restore => {
                if req.snapshot.as_deref().is_none_or(|s| s.is_empty()) {
                    return Err(Answer::error(400, "a restore needs `snapshot`"));
                }
            }
            OpKind::SetRole => {
                let Some(role) = req.role.as_deref() else {
                    return Err(Answer::error(400, "a set_role needs `role`"));
                };
                let Some(ha) = &svc.cfg.ha else {
                    return Err(Answer::error(
                        400,
                        format!("service `{}` has no HA mode: it has no role", req.service),
                    ));
                };
                if !ha.mode.roles().contains(&role) {
                    let [a, b] = ha.mode.roles();
                    return Err(Answer::error(
                        400,
                        format!("`{role}` is no role of this service: `{a}` or `{b}`"),
                    ));
                }
            }
            OpKind::Snapshot | OpKind::Restart => {}
        }
        Ok(Prepared { package })
    }

    /// `POST /v1/ops`.
    pub fn post_op(&self, body: &[u8]) -> Answer {
        let req: OpRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Answer::error(400, format!("malformed request: {e}")),
        };
        let prepared = match self.validate(&req) {
            Ok(p) => p,
            Err(a) => return a,
        };
        let hash = hex(&sha2::Sha256::digest(
            serde_json::to_vec(&req).unwrap_or_default(),
        ));
        match self.seen(&req.id, &hash) {
            Ok(Some(a)) => return a,
            Ok(None) => {}
            Err(e) => return Answer::error(500, e.to_string()),
        }
        let Some(svc) = self.services.get(&req.service).cloned() else {
            return Answer::error(400, format!("unknown service `{}`", req.service));
        };
        let _one_at_a_time = lock(&svc.op_lock);
        match self.seen(&req.id, &hash) {
            Ok(Some(a)) => return a,
            Ok(None) => {}
            Err(e) => return Answer::error(500, e.to_string()),
        }
        // Preconditions answered without journaling.
        let mut detail = Detail::default();
        match req.op {
            OpKind::Switch | OpKind::Revert => {
                let active = svc.layout.active();
                let version_in =
                    |slot: Option<Slot>| slot.and_then(|s| svc.layout.info(s)).map(|i| i.version);
                let to = svc.layout.inactive();
                let to_version = version_in(Some(to));
                match req.version.as_deref() {
                    // Already there: done without switching (a repeat, a concurrent twin).
                    Some(v) if version_in(active).as_deref() == Some(v) => {
                        detail.from = active.map(|s| s.as_str().to_string());
                        detail.to = detail.from.clone();
                    }
                    Some(v) if to_version.as_deref() != Some(v) => {
                        return Answer::error(
                            409,
                            format!(
                                "slot {} of `{}` holds {}, not {v}: nothing to switch to (stage {v} first)",
                                to.as_str(),
                                req.service,
                                to_version.as_deref().unwrap_or("nothing"),
                            ),
                        );
                    }
                    _ if to_version.is_none() => {
                        return Answer::error(
                            409,
                            format!(
                                "nothing is staged in slot {} of `{}`: nothing to {}",
                                to.as_str(),
                                req.service,
                                req.op.as_str()
                            ),
                        );
                    }
                    _ => {
                        detail.from = active.map(|s| s.as_str().to_string());
                        detail.to = Some(to.as_str().to_string());
                    }
                }
            }
            OpKind::Restore => {
                let id = req.snapshot.as_deref().unwrap_or_default();
                if !svc.layout.snapshot_exists(id) {
                    return Answer::error(
                        404,
                        format!("no snapshot `{id}` of service `{}`", req.service),
                    );
                }
            }
            _ => {}
        }
        let started = now();
        let running = self.result(
            &req,
            &svc,
            OpState::Running,
            format!("{} under way", req.op.as_str()),
            started,
        );
        match self.journal().begin(&hash, &running, &detail) {
            Ok(Begin::New) => {}
            Ok(Begin::Seen(op)) => return Self::replay(&op, &hash),
            Err(e) => return Answer::error(500, e.to_string()),
        }
        tracing::info!(id = %req.id, service = %req.service, op = req.op.as_str(), "operation");
        let out = match self.execute(&req, &svc, prepared, &mut detail) {
            Ok(o) => o,
            Err(e) => Outcome::refused(500, e.to_string()),
        };
        let mut result = self.result(&req, &svc, out.state, out.message, started);
        result.snapshot = out.snapshot;
        tracing::info!(id = %req.id, state = ?result.state, message = %result.message, "operation ended");
        if let Err(e) = self.journal().finish(&result, out.http) {
            return Answer::error(500, e.to_string());
        }
        op_answer(out.http, &result)
    }

    fn execute(
        &self,
        req: &OpRequest,
        svc: &Svc,
        prepared: Prepared,
        detail: &mut Detail,
    ) -> Result<Outcome, AgentError> {
        match req.op {
            OpKind::Stage => Ok(self.stage(req, svc, prepared.package.unwrap_or_default())),
            OpKind::Switch | OpKind::Revert => self.switch(req, svc, detail),
            OpKind::Snapshot => {
                let s = svc.layout.take_snapshot(&req.id, now()).map_err(io)?;
                Ok(
                    Outcome::done(format!("configuration saved as snapshot {}", s.id))
                        .with_snapshot(Some(s.id)),
                )
            }
            OpKind::Restore => {
                let id = req.snapshot.clone().unwrap_or_default();
                let pre = svc.layout.take_snapshot(&req.id, now()).map_err(io)?;
                detail.pre_snapshot = Some(pre.id.clone());
                self.journal().set_detail(&req.id, detail)?;
                svc.layout.restore_snapshot(&id).map_err(io)?;
                let out = self.restart_and_check(svc, &format!("snapshot {id} restored"));
                Ok(out.with_snapshot(Some(pre.id)))
            }
            OpKind::SetRole => {
                let role = req.role.clone().unwrap_or_default();
                self.journal().set_state(&svc.cfg.name, "role", &role)?;
                Ok(self.restart_and_check(svc, &format!("role {role}")))
            }
            OpKind::Restart => Ok(self.restart_and_check(svc, "restarted")),
        }
    }

    fn restart_and_check(&self, svc: &Svc, what: &str) -> Outcome {
        let Some(slot) = svc.layout.active() else {
            return Outcome::done(format!("{what}; no version is active, nothing runs"));
        };
        let Some(launch) = self.launch(svc, slot) else {
            return Outcome::failed(format!("{what}; slot {} holds no version", slot.as_str()));
        };
        if let Err(e) = svc.sup.restart(launch) {
            return Outcome::failed(format!("{what}; the service did not start: {e}"));
        }
        let deadline = Duration::from_secs_f64(svc.cfg.health_deadline_s);
        match self.wait_healthy(svc, slot, deadline) {
            Some(t) => Outcome::done(format!("{what}; healthy after {}", secs(t))),
            None => Outcome::failed(format!(
                "{what}; the service is not healthy after {}",
                secs(deadline)
            )),
        }
    }

    fn stage(&self, req: &OpRequest, svc: &Svc, package: Vec<u8>) -> Outcome {
        let version = req.version.clone().unwrap_or_default();
        let signed = match self.trust.verify(&package, req.signature.as_deref()) {
            Ok(s) => s,
            Err(e) => return Outcome::refused(422, format!("package {version} refused: {e}")),
        };
        if signed.service != req.service || signed.version != version {
            return Outcome::refused(
                422,
                format!(
                    "package {version} refused: it is signed for {signed}, not for {} {version} (a signature names the service and version it may be staged as)",
                    req.service
                ),
            );
        }
        let slot = svc.layout.inactive();
        let staging = svc.layout.staging();
        let _ = std::fs::remove_dir_all(&staging);
        if let Err(e) = crate::package::unpack(&package, &staging) {
            return Outcome::refused(422, format!("package {version} refused: {e}"));
        }
        let info = SlotInfo {
            version: version.clone(),
            sha256: hex(&sha2::Sha256::digest(&package)),
            staged: now(),
        };
        match svc.layout.install(slot, &info) {
            Ok(()) => Outcome::done(format!("{version} staged in slot {}", slot.as_str())),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                let _ = svc.layout.empty(slot);
                Outcome::refused(500, format!("cannot stage {version}: {e}"))
            }
        }
    }

    fn switch(&self, req: &OpRequest, svc: &Svc, detail: &Detail) -> Result<Outcome, AgentError> {
        let from = detail.from.as_deref().and_then(Slot::parse);
        let Some(to) = detail.to.as_deref().and_then(Slot::parse) else {
            return Ok(Outcome::failed("no slot to switch to"));
        };
        if from == Some(to) {
            let v = svc.layout.info(to).map(|i| i.version).unwrap_or_default();
            return Ok(Outcome::done(format!(
                "already on {v} (slot {}): nothing was switched",
                to.as_str()
            )));
        }
        let deadline =
            Duration::from_secs_f64(req.health_deadline_s.unwrap_or(svc.cfg.health_deadline_s));
        let snap = svc.layout.take_snapshot(&req.id, now()).map_err(io)?;
        let new_version = svc.layout.info(to).map(|i| i.version).unwrap_or_default();
        svc.sup.stop().map_err(AgentError::Supervisor)?;
        svc.layout.set_active(Some(to)).map_err(io)?;
        let verb = if req.op == OpKind::Revert {
            "reverted to"
        } else {
            "switched to"
        };
        let started = match self.launch(svc, to) {
            Some(l) => svc.sup.start(l),
            None => Err("the slot holds no version".into()),
        };
        let healthy = match &started {
            Ok(()) => self.wait_healthy(svc, to, deadline),
            Err(_) => None,
        };
        let out = match healthy {
            Some(t) => Outcome::done(format!(
                "{verb} {new_version} (slot {}): healthy after {}",
                to.as_str(),
                secs(t)
            )),
            None => {
                let why = match started {
                    Err(e) => format!("did not start: {e}"),
                    Ok(()) => format!("was not healthy within {}", secs(deadline)),
                };
                let back = self.switch_back(svc, from)?;
                Outcome::failed(format!(
                    "{new_version} (slot {}) {why}: {back}",
                    to.as_str()
                ))
            }
        };
        Ok(out.with_snapshot(Some(snap.id)))
    }

    /// Puts `current` back on `from` and starts the version there again.
    fn switch_back(&self, svc: &Svc, from: Option<Slot>) -> Result<String, AgentError> {
        svc.sup.stop().map_err(AgentError::Supervisor)?;
        svc.layout.set_active(from).map_err(io)?;
        let Some(from) = from else {
            return Ok("no version was active before; none is now".into());
        };
        let old = svc.layout.info(from).map(|i| i.version).unwrap_or_default();
        let Some(launch) = self.launch(svc, from) else {
            return Ok(format!(
                "back on slot {}, which holds no version",
                from.as_str()
            ));
        };
        if let Err(e) = svc.sup.start(launch) {
            return Ok(format!(
                "switched back to {old} (slot {}), which did not start: {e}",
                from.as_str()
            ));
        }
        let deadline = Duration::from_secs_f64(svc.cfg.health_deadline_s);
        Ok(match self.wait_healthy(svc, from, deadline) {
            Some(_) => format!("switched back to {old} (slot {}), healthy", from.as_str()),
            None => format!(
                "switched back to {old} (slot {}), which is not healthy either",
                from.as_str()
            ),
        })
    }

    /// Settles the operations found running at start-up (a crash interrupted them).
    fn settle(&self) -> Result<(), AgentError> {
        let running = self.journal().running()?;
        for op in running {
            let Some(svc) = self.services.get(&op.result.service).cloned() else {
                let mut r = op.result.clone();
                r.state = OpState::Failed;
                r.message =
                    "interrupted by an agent restart; the service is no longer configured".into();
                r.ended = Some(now());
                self.journal().finish(&r, 200)?;
                continue;
            };
            let message = match op.result.op {
                OpKind::Switch | OpKind::Revert => self.settle_switch(&svc, &op)?,
                OpKind::Stage => {
                    let slot = svc.layout.inactive();
                    svc.layout.empty(slot).map_err(io)?;
                    let _ = std::fs::remove_file(svc.layout.slot(slot).join("slot.json"));
                    (
                        OpState::Failed,
                        format!(
                            "interrupted by an agent restart: slot {} was emptied",
                            slot.as_str()
                        ),
                    )
                }
                OpKind::Restore => {
                    match op.detail.pre_snapshot.as_deref() {
                        Some(pre) if svc.layout.snapshot_exists(pre) => {
                            svc.layout.restore_snapshot(pre).map_err(io)?;
                            (
                            OpState::Failed,
                            format!("interrupted by an agent restart: undone (snapshot {pre} put back)"),
                        )
                        }
                        _ => (
                            OpState::Failed,
                            "interrupted by an agent restart before it changed anything".into(),
                        ),
                    }
                }
                OpKind::Snapshot => (
                    OpState::Failed,
                    "interrupted by an agent restart: no snapshot was kept".into(),
                ),
                OpKind::SetRole | OpKind::Restart => (
                    OpState::Failed,
                    format!(
                        "interrupted by an agent restart; the service runs with role {}",
                        self.role(&svc).unwrap_or_else(|| "none".into())
                    ),
                ),
            };
            let (state, message) = message;
            let (active, inactive) = svc.layout.versions();
            let mut r = op.result.clone();
            r.state = state;
            r.message = message;
            r.ended = Some(now());
            r.active = active;
            r.inactive = inactive;
            tracing::warn!(id = %r.id, state = ?r.state, message = %r.message, "settled an interrupted operation");
            self.journal().finish(&r, 200)?;
        }
        Ok(())
    }

    fn settle_switch(&self, svc: &Svc, op: &StoredOp) -> Result<(OpState, String), AgentError> {
        let from = op.detail.from.as_deref().and_then(Slot::parse);
        let to = op.detail.to.as_deref().and_then(Slot::parse);
        if let (Some(to), true) = (to, svc.layout.active() == to) {
            if let Some(l) = self.launch(svc, to) {
                if svc.sup.start(l).is_ok() {
                    let deadline = Duration::from_secs_f64(svc.cfg.health_deadline_s);
                    if let Some(t) = self.wait_healthy(svc, to, deadline) {
                        let v = svc.layout.info(to).map(|i| i.version).unwrap_or_default();
                        return Ok((
                            OpState::Done,
                            format!(
                                "finished after an agent restart: {v} (slot {}) healthy after {}",
                                to.as_str(),
                                secs(t)
                            ),
                        ));
                    }
                }
            }
        }
        let back = self.switch_back(svc, from)?;
        Ok((
            OpState::Failed,
            format!("interrupted by an agent restart: undone; {back}"),
        ))
    }

    /// A pair's service about to start as primary while the peer's is primary takes the
    /// backup role.
    fn yield_to_primary_peer(&self, svc: &Svc) -> bool {
        let Some(ha) = &svc.cfg.ha else { return false };
        if ha.mode != HaMode::Pair || self.role(svc).as_deref() != Some("primary") {
            return false;
        }
        let Some(beat) = crate::ha::ask_peer_blocking(ha, Duration::from_secs(2)) else {
            return false;
        };
        let peer_primary = crate::ha::primary_alive(&beat, &svc.cfg.name);
        if peer_primary {
            tracing::warn!(service = %svc.cfg.name, peer = %beat.agent, "the peer's service is primary: this one takes the backup role");
            if let Err(e) = self.journal().set_state(&svc.cfg.name, "role", "backup") {
                tracing::error!(error = %e, "cannot record the role");
            }
        }
        peer_primary
    }

    /// Makes a pair's backup the primary and restarts it so (the heartbeat found the primary
    /// gone).
    pub fn promote(&self, name: &str) -> Result<String, AgentError> {
        let Some(svc) = self.services.get(name).cloned() else {
            return Ok(format!("no service {name}"));
        };
        let _one_at_a_time = lock(&svc.op_lock);
        if self.role(&svc).as_deref() != Some("backup") {
            return Ok("not a backup any more".into());
        }
        self.journal().set_state(name, "role", "primary")?;
        let out = self.restart_and_check(&svc, "promoted to primary");
        Ok(out.message)
    }

    /// Stops supervising and leaves every service running: the next agent on the same
    /// directory adopts the ones it runs itself (systemd's never depended on the agent).
    pub fn shutdown(&self) {
        for svc in self.services.values() {
            svc.sup.close();
        }
    }

    /// Stops the services the agent runs itself (an in-process agent's end: its services are
    /// its caller's, a benchmark's); systemd's are left alone.
    pub fn stop_services(&self) {
        for svc in self.services.values() {
            if svc.cfg.supervisor == SupervisorKind::Agent {
                if let Err(e) = svc.sup.stop() {
                    tracing::warn!(service = %svc.cfg.name, error = %e, "cannot stop the service");
                }
            }
        }
    }
}

fn io(e: std::io::Error) -> AgentError {
    AgentError::Io {
        what: "file system".into(),
        source: e,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
