//! The routes: the JSON API under `/api/v1/` (a session cookie with its CSRF token, or
//! `Authorization: Bearer TOKEN`; every route checks the role and answers 401 or 403 with a
//! JSON error), the dashboard's pages and forms (`pages`), and `/metrics`. The actions
//! (start, approve, answer, resume) are one function each, shared by the API and the forms,
//! and each is journaled with the person's name and written to the audit log.

use crate::auth::{self, Role};
use crate::runs::{DriverChoice, RunError, RunEvent, StartRequest};
use crate::store::{AuditEntry, RunRecord, Session, StoreError, User};
use crate::App;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_exec::{Answer, AnswerGiven, RunId, StepState};
use ferry_model::StepKind;
use serde::Deserialize;
use serde_json::{json, Value};

/// The session cookie.
pub const SESSION_COOKIE: &str = "ferry_session";
/// The header that carries the session's CSRF token on a cookie API call.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An API refusal: its status and a JSON body `{"error": ..., "status": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no valid credentials: log in, or send `Authorization: Bearer TOKEN`",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": self.message, "status": self.status.as_u16()})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Journal(ferry_exec::JournalError::NoRun(r)) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("no run {r}"))
            }
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::BadSite(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            RunError::Refused(m) => ApiError::new(StatusCode::CONFLICT, m),
            RunError::Failed(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// Who makes a request, and how.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// The browser session, when the request came with its cookie (not a bearer token).
    pub session: Option<Session>,
}

impl Caller {
    /// Refuses (403) a caller whose role is below `need`.
    pub fn require(&self, need: Role) -> Result<(), ApiError> {
        if self.user.role >= need {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is {}: this needs the role {} or above",
                    self.user.name,
                    self.user.role.as_str(),
                    need.as_str()
                ),
            ))
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The caller of a request, from its bearer token or session cookie; 401 without valid ones.
/// A state-changing call made with the cookie must carry the session's CSRF token in
/// `X-CSRF-Token` (403 otherwise); a bearer-token call needs none.
pub fn caller(app: &App, headers: &HeaderMap, method: &Method) -> Result<Caller, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let token = v
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        let user = auth::token_user(app.store.as_ref(), token.trim())?
            .ok_or_else(ApiError::unauthorized)?;
        return Ok(Caller {
            user,
            session: None,
        });
    }
    let value = cookie(headers, SESSION_COOKIE).ok_or_else(ApiError::unauthorized)?;
    let (session, user) = auth::session_user(app.store.as_ref(), &value, (app.clock)())?
        .ok_or_else(ApiError::unauthorized)?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth::csrf_matches(&session, given) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the CSRF token is missing or wrong: send the session's token (GET /api/v1/me) in X-CSRF-Token",
            ));
        }
    }
    Ok(Caller {
        user,
        session: Some(session),
    })
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/runs", get(list_runs).post(start_run))
        .route("/api/v1/runs/{id}", get(show_run))
        .route("/api/v1/runs/{id}/events", get(run_events))
        .route("/api/v1/runs/{id}/approve", post(approve_run))
        .route("/api/v1/runs/{id}/answer", post(answer_run))
        .route("/api/v1/runs/{id}/resume", post(resume_run))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/users", post(add_user))
        .route("/api/v1/tokens", post(add_token))
        .route("/api/v1/webhooks/deliveries", get(webhook_deliveries))
        .route("/api/v1/{*rest}", axum::routing::any(api_fallback))
        .route("/metrics", get(metrics))
        .merge(crate::pages::routes())
        .with_state(app)
}

async fn api_fallback(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&app, &headers, &method)?;
    Err(ApiError::new(StatusCode::NOT_FOUND, "no such API route"))
}

/// Runs a short blocking store call off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn me(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&app, &headers, &method)?;
    c.require(Role::Viewer)?;
    Ok(Json(json!({
        "name": c.user.name,
        "role": c.user.role.as_str(),
        "csrf": c.session.as_ref().map(|s| s.csrf.clone()),
    })))
}

async fn list_runs(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    caller(&app, &headers, &method)?.require(Role::Viewer)?;
    let runs = blocking(move || Ok(app.store.runs()?)).await?;
    Ok(Json(json!({ "runs": runs })))
}

async fn show_run(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<RunId>,
) -> Result<Json<Value>, ApiError> {
    caller(&app, &headers, &method)?.require(Role::Viewer)?;
    let now = (app.clock)();
    let record = blocking(move || Ok(app.store.run(id)?)).await?;
    Ok(Json(run_json(&record, now)))
}

/// A run as the API shows it: its summary, each step with its state, node, times, elapsed
/// time against its estimate and rule IDs, and what waits for an approval.
pub fn run_json(r: &RunRecord, now: i64) -> Value {
    let steps: Vec<Value> = r
        .plan
        .steps
        .iter()
        .zip(&r.steps)
        .map(|(p, s)| {
            json!({
                "id": p.id,
                "title": p.title,
                "kind": p.kind,
                "action": p.action,
                "node": p.node.as_ref().map(|n| format!("{}/{n}", p.cluster)),
                "cluster": p.cluster,
                "state": s.state,
                "started": s.started,
                "ended": s.ended,
                "elapsed_s": elapsed(s, now),
                "estimate_s": p.duration_s,
                "rules": p.rules,
                "attempts": s.attempts,
                "detail": s.detail,
                "answered_by": s.answered_by,
                "approved_by": r.approvals.iter().find(|a| a.step == p.id).map(|a| a.by.clone()),
            })
        })
        .collect();
    json!({
        "run": r.summary,
        "active": r.active,
        "waiting_for_approval": crate::runs::waiting_for_approval(r).iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "steps": steps,
        "approvals": r.approvals,
    })
}

/// Seconds a step took, or has taken so far while it runs.
pub fn elapsed(s: &ferry_exec::StepStatus, now: i64) -> Option<i64> {
    match (s.started, s.ended, s.state) {
        (Some(a), Some(b), _) if b >= a => Some(b - a),
        (Some(a), _, StepState::Running) => Some((now - a).max(0)),
        _ => None,
    }
}

/// A run to start: `site` is `example:NAME`, or `site_text` the text of a site file (named
/// `site_name`).
#[derive(Debug, Deserialize)]
pub struct StartBody {
    pub site: Option<String>,
    pub site_name: Option<String>,
    pub site_text: Option<String>,
    #[serde(default)]
    pub driver: DriverChoice,
    #[serde(default)]
    pub seed: u64,
    pub speed: Option<f64>,
    #[serde(default)]
    pub ignore_window: bool,
}

async fn start_run(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<StartBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let c = caller(&app, &headers, &method)?;
    c.require(Role::Operator)?;
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let run = start(&app, &c.user, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "run": run }))).into_response())
}

/// Starts a run for `user` (an operator or above): audited, journaled with the name.
pub async fn start(app: &App, user: &User, body: StartBody) -> Result<RunId, ApiError> {
    let (site_name, site_text) = match (&body.site, &body.site_text) {
        (Some(site), None) => {
            let name = site.strip_prefix("example:").ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("site `{site}`: give `example:NAME`, or the file's text in site_text"),
                )
            })?;
            let text = app.runs.example(name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "no built-in example `{name}`; examples: {}",
                        app.runs.example_names().join(", ")
                    ),
                )
            })?;
            (site.clone(), text.to_string())
        }
        (None, Some(text)) => (
            body.site_name
                .clone()
                .unwrap_or_else(|| "uploaded.toml".into()),
            text.clone(),
        ),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give either `site` (example:NAME) or `site_text`",
            ))
        }
    };
    let req = StartRequest {
        site_name: site_name.clone(),
        site_text,
        driver: body.driver,
        seed: body.seed,
        speed: body.speed,
        ignore_window: body.ignore_window,
        by: user.name.clone(),
    };
    let runs = app.runs.clone();
    let run = blocking(move || Ok(runs.start(req)?)).await?;
    let now = (app.clock)();
    app.store.audit(&AuditEntry::new(
        now,
        &user.name,
        "run.start",
        &format!(
            "run {run}: {site_name} with the {} driver",
            body.driver.as_str()
        ),
    ))?;
    app.runs.publish(RunEvent {
        run,
        kind: "run",
        step: None,
        state: "running".into(),
        at: now,
        by: Some(user.name.clone()),
    });
    Ok(run)
}

#[derive(Debug, Deserialize)]
pub struct ApproveBody {
    pub step: String,
}

async fn approve_run(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<RunId>,
    body: Result<Json<ApproveBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&app, &headers, &method)?;
    c.require(Role::Approver)?;
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(approve(&app, &c.user, id, &body.step).await?))
}

/// `user` approves pause step `step` of run `id`: refused to the person who started the run
/// under the two-person rule; a paused run then goes on.
pub async fn approve(app: &App, user: &User, id: RunId, step: &str) -> Result<Value, ApiError> {
    user_needs(user, Role::Approver)?;
    let store = app.store.clone();
    let record = blocking(move || Ok(store.run(id)?)).await?;
    let Some(planned) = record.plan.steps.iter().find(|s| s.id == step) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run {id} has no step `{step}`"),
        ));
    };
    if planned.kind != StepKind::Pause {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("step `{step}` of run {id} is not a pause step: it waits for no approval"),
        ));
    }
    if let Some(a) = record.approvals.iter().find(|a| a.step == step) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "step `{step}` of run {id} was approved already, by {}",
                a.by
            ),
        ));
    }
    if app.config.two_person_rule && record.summary.started_by.as_deref() == Some(&user.name) {
        app.store.audit(&AuditEntry::new(
            (app.clock)(),
            &user.name,
            "approve.refused",
            &format!("run {id}, step {step}: the two-person rule"),
        ))?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "two-person rule: {} started run {id}, so another approver must approve `{step}`",
                user.name
            ),
        ));
    }
    let now = (app.clock)();
    let (store, name, s) = (app.store.clone(), user.name.clone(), step.to_string());
    blocking(move || Ok(store.approve(id, &s, &name, now)?)).await?;
    app.store.audit(&AuditEntry::new(
        now,
        &user.name,
        "run.approve",
        &format!("run {id}, step {step}"),
    ))?;
    app.runs.publish(RunEvent {
        run: id,
        kind: "approval",
        step: Some(step.into()),
        state: "approved".into(),
        at: now,
        by: Some(user.name.clone()),
    });
    let resumed = if record.summary.status == ferry_exec::RunStatus::Paused && !record.active {
        let runs = app.runs.clone();
        blocking(move || Ok(runs.resume(id)?)).await?;
        app.store.audit(&AuditEntry::new(
            now,
            &user.name,
            "run.resume",
            &format!("run {id}, after the approval of {step}"),
        ))?;
        true
    } else {
        false
    };
    Ok(json!({"run": id, "step": step, "approved_by": user.name, "resumed": resumed}))
}

fn user_needs(user: &User, role: Role) -> Result<(), ApiError> {
    Caller {
        user: user.clone(),
        session: None,
    }
    .require(role)
}

#[derive(Debug, Deserialize)]
pub struct AnswerBody {
    pub step: String,
    /// `done`, `failed` or `skip`.
    pub answer: String,
    #[serde(default)]
    pub reason: String,
    /// Answer a step that has not started yet (journaled as early).
    #[serde(default)]
    pub early: bool,
}

async fn answer_run(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<RunId>,
    body: Result<Json<AnswerBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&app, &headers, &method)?;
    c.require(Role::Operator)?;
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(answer(&app, &c.user, id, body).await?))
}

/// `user` answers a runbook step: done, failed (with a reason) or skip.
pub async fn answer(
    app: &App,
    user: &User,
    id: RunId,
    body: AnswerBody,
) -> Result<Value, ApiError> {
    user_needs(user, Role::Operator)?;
    let given = match body.answer.as_str() {
        "done" => Answer::Done,
        "skip" => Answer::Skip,
        "failed" if !body.reason.trim().is_empty() => Answer::Failed(body.reason.trim().into()),
        "failed" => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a failed answer needs its reason",
            ))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("answer `{other}`: done, failed or skip"),
            ))
        }
    };
    let store = app.store.clone();
    let record = blocking(move || Ok(store.run(id)?)).await?;
    let Some(i) = record.plan.steps.iter().position(|s| s.id == body.step) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run {id} has no step `{}`", body.step),
        ));
    };
    let state = record.steps[i].state;
    if state.is_settled() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "step `{}` of run {id} is already {}",
                body.step,
                state.as_str()
            ),
        ));
    }
    let early = state != StepState::Running;
    if early && !body.early {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "step `{}` of run {id} has not started (it is {}): answer it once it runs, or say `early`",
                body.step,
                state.as_str()
            ),
        ));
    }
    let now = (app.clock)();
    let (store, step, a, name) = (
        app.store.clone(),
        body.step.clone(),
        given.clone(),
        user.name.clone(),
    );
    blocking(move || Ok(store.answer(id, &step, &a, &AnswerGiven { by: name, early }, now)?))
        .await?;
    let word = match &given {
        Answer::Done => "done".to_string(),
        Answer::Skip => "skip".to_string(),
        Answer::Failed(r) => format!("failed: {r}"),
    };
    app.store.audit(&AuditEntry::new(
        now,
        &user.name,
        "run.answer",
        &format!("run {id}, step {}: {word}", body.step),
    ))?;
    app.runs.publish(RunEvent {
        run: id,
        kind: "answer",
        step: Some(body.step.clone()),
        state: body.answer.clone(),
        at: now,
        by: Some(user.name.clone()),
    });
    Ok(
        json!({"run": id, "step": body.step, "answer": body.answer, "by": user.name, "early": early}),
    )
}

async fn resume_run(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<RunId>,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&app, &headers, &method)?;
    c.require(Role::Operator)?;
    Ok(Json(resume(&app, &c.user, id).await?))
}

/// `user` carries a stopped, failed or paused run on.
pub async fn resume(app: &App, user: &User, id: RunId) -> Result<Value, ApiError> {
    user_needs(user, Role::Operator)?;
    let runs = app.runs.clone();
    blocking(move || Ok(runs.resume(id)?)).await?;
    app.store.audit(&AuditEntry::new(
        (app.clock)(),
        &user.name,
        "run.resume",
        &format!("run {id}"),
    ))?;
    Ok(json!({"run": id, "resumed": true}))
}

async fn run_events(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<RunId>,
) -> Result<Response, ApiError> {
    caller(&app, &headers, &method)?.require(Role::Viewer)?;
    let rx = app.runs.subscribe();
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) if ev.run == id => {
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    let event = Event::default().event(ev.kind).data(data);
                    return Some((Ok::<_, std::convert::Infallible>(event), rx));
                }
                Ok(_) => continue,
                // Some events were missed: the page reads the run again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let event = Event::default().event("lagged").data("{}");
                    return Some((Ok(event), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn audit_log(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    caller(&app, &headers, &method)?.require(Role::Admin)?;
    let log = blocking(move || Ok(app.store.audit_log(1000)?)).await?;
    Ok(Json(json!({ "audit": log })))
}

async fn webhook_deliveries(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    caller(&app, &headers, &method)?.require(Role::Admin)?;
    let log = blocking(move || Ok(app.store.deliveries(1000)?)).await?;
    Ok(Json(json!({ "deliveries": log })))
}

#[derive(Debug, Deserialize)]
struct UserBody {
    name: String,
    role: String,
    password: String,
}

async fn add_user(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<UserBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let c = caller(&app, &headers, &method)?;
    c.require(Role::Admin)?;
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("role `{}`: viewer, operator, approver or admin", body.role),
        )
    })?;
    auth::check_name(&body.name)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    if body.password.chars().count() < 8 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the password must have at least 8 characters",
        ));
    }
    let now = (app.clock)();
    let store = app.store.clone();
    let name = body.name.clone();
    blocking(move || {
        let hash = auth::hash_password(&body.password)?;
        Ok(store.put_user(&name, role, &hash, now)?)
    })
    .await?;
    app.store.audit(&AuditEntry::new(
        now,
        &c.user.name,
        "user.add",
        &format!("{} as {}", body.name, role.as_str()),
    ))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": body.name, "role": role.as_str()})),
    )
        .into_response())
}

async fn add_token(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = caller(&app, &headers, &method)?;
    c.require(Role::Viewer)?;
    let now = (app.clock)();
    let token = auth::new_token(app.store.as_ref(), &c.user.name, now)?;
    app.store.audit(&AuditEntry::new(
        now,
        &c.user.name,
        "token.add",
        &c.user.name,
    ))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "user": c.user.name})),
    )
        .into_response())
}

async fn metrics(State(app): State<App>) -> Response {
    let text = blocking(move || {
        app.metrics
            .render(app.store.as_ref())
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
    })
    .await;
    match text {
        Ok(t) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            t,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
