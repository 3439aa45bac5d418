//! The dashboard: server-rendered HTML pages (the login page, the runs, a run's steps live
//! over server-sent events, the audit log) and their forms, each form with the session's
//! CSRF token. Its stylesheet and its one small script are embedded in the binary.

use crate::api::{self, cookie, ApiError, SESSION_COOKIE};
use crate::auth::{self, Role};
use crate::store::{AuditEntry, RunRecord, Session, User};
use crate::App;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use ferry_exec::{RunId, RunStatus, StepState};
use ferry_model::StepKind;
use serde::Deserialize;
use std::net::SocketAddr;

const STYLE: &str = include_str!("../assets/style.css");
const LIVE_JS: &str = include_str!("../assets/live.js");
/// The login form's double-submit CSRF cookie.
const LOGIN_CSRF_COOKIE: &str = "ferry_login_csrf";

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/runs", post(start_form))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/approve", post(approve_form))
        .route("/runs/{id}/answer", post(answer_form))
        .route("/runs/{id}/resume", post(resume_form))
        .route("/audit", get(audit_page))
        .route("/assets/style.css", get(style))
        .route("/assets/live.js", get(live_js))
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn live_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        LIVE_JS,
    )
        .into_response()
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A moment with its date and zone: in the site's zone when its window names one (or the
/// offset it is written in), else UTC: `2026-12-05 22:14:09 -05:00`.
pub fn time_text(window: Option<&ferry_model::site::Window>, t: i64) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(t) else {
        return format!("{t}");
    };
    let tz = window
        .and_then(|w| {
            w.zone
                .as_deref()
                .and_then(|z| jiff::tz::TimeZone::get(z).ok())
                .or_else(|| {
                    jiff::tz::Offset::from_seconds(w.offset_s)
                        .ok()
                        .map(jiff::tz::TimeZone::fixed)
                })
        })
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let z = ts.to_zoned(tz);
    if window.is_some() {
        z.strftime("%Y-%m-%d %H:%M:%S %:z").to_string()
    } else {
        z.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

fn duration_text(s: i64) -> String {
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

fn page(title: &str, who: Option<&User>, csrf: Option<&str>, body: &str) -> Html<String> {
    let nav = match (who, csrf) {
        (Some(u), Some(csrf)) => format!(
            r#"<nav><a href="/">Runs</a>{audit}<span class="who">{name} ({role})</span>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button>Log out</button></form></nav>"#,
            audit = if u.role >= Role::Admin {
                r#" <a href="/audit">Audit log</a>"#
            } else {
                ""
            },
            name = esc(&u.name),
            role = u.role.as_str(),
            csrf = esc(csrf),
        ),
        _ => String::new(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · ferry</title><link rel="stylesheet" href="/assets/style.css"></head>
<body><header><h1>ferry</h1>{nav}</header><main>{body}</main></body></html>"#,
        title = esc(title),
    ))
}

/// The signed-in person of a page request, or a redirect to the login page.
fn viewer(app: &App, headers: &HeaderMap) -> Result<(User, Session), Box<Response>> {
    let found = cookie(headers, SESSION_COOKIE).and_then(|c| {
        auth::session_user(app.store.as_ref(), &c, (app.clock)())
            .ok()
            .flatten()
    });
    match found {
        Some((s, u)) => Ok((u, s)),
        None => Err(Box::new(Redirect::to("/login").into_response())),
    }
}

/// The person of a form post: signed in, and the form's CSRF token is the session's.
fn form_caller(
    app: &App,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(User, Session), Box<Response>> {
    let (u, s) = viewer(app, headers)?;
    if !auth::csrf_matches(&s, csrf) {
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or wrong: reload the page and try again.",
        )));
    }
    Ok((u, s))
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            "Refused",
            None,
            None,
            &format!(
                r#"<p class="error">{}</p><p><a href="/">Back</a></p>"#,
                esc(message)
            ),
        ),
    )
        .into_response()
}

fn api_error_page(e: ApiError) -> Response {
    error_page(e.status, &e.message)
}

fn session_cookie(app: &App, value: &str, max_age: i64) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if app.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    )
}

async fn login_page(State(app): State<App>) -> Response {
    login_form(&app, StatusCode::OK, None)
}

fn login_form(app: &App, status: StatusCode, message: Option<&str>) -> Response {
    let Ok(token) = auth::random_text(24) else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let body = format!(
        r#"<section class="login"><h2>Log in</h2>{msg}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{token}">
<label>Name <input name="name" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button class="big">Log in</button></form></section>"#,
        msg = message
            .map(|m| format!(r#"<p class="error">{}</p>"#, esc(m)))
            .unwrap_or_default(),
    );
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict{}",
        if app.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        page("Log in", None, None, &body),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(app): State<App>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Double submit: the form's token is the cookie the login page set.
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty()
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            form.csrf.as_bytes(),
        ))
    {
        return login_form(
            &app,
            StatusCode::FORBIDDEN,
            Some("The login form expired (CSRF check): log in again."),
        );
    }
    let address = remote.ip().to_string();
    let now = (app.clock)();
    if let Some(until) = app.limiter.refused_until(&form.name, &address) {
        let _ = app.store.audit(&AuditEntry::new(
            now,
            &form.name,
            "login.refused",
            &format!("rate limit, from {address}"),
        ));
        return login_form(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed logins: logins are refused until {}.",
                time_text(None, until)
            )),
        );
    }
    let store = app.store.clone();
    let (name, password) = (form.name.clone(), form.password.clone());
    let user =
        tokio::task::spawn_blocking(move || auth::check_password(store.as_ref(), &name, &password))
            .await;
    match user {
        Ok(Ok(Some(user))) => {
            app.limiter.succeeded(&user.name);
            let Ok((_, value)) = auth::new_session(app.store.as_ref(), &user.name, now) else {
                return error_page(StatusCode::INTERNAL_SERVER_ERROR, "cannot open a session");
            };
            let _ = app.store.audit(&AuditEntry::new(
                now,
                &user.name,
                "login",
                &format!("from {address}"),
            ));
            (
                StatusCode::SEE_OTHER,
                [
                    (
                        header::SET_COOKIE,
                        session_cookie(&app, &value, auth::SESSION_S),
                    ),
                    (header::LOCATION, "/".to_string()),
                ],
            )
                .into_response()
        }
        Ok(Ok(None)) => {
            app.limiter.failed(&form.name, &address);
            let _ = app.store.audit(&AuditEntry::new(
                now,
                &form.name,
                "login.failed",
                &format!("from {address}"),
            ));
            login_form(
                &app,
                StatusCode::UNAUTHORIZED,
                Some("Wrong name or password."),
            )
        }
        _ => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot check the password",
        ),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(app): State<App>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let (user, session) = match form_caller(&app, &headers, &f.csrf) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let _ = app.store.delete_session(&session.id);
    let _ = app
        .store
        .audit(&AuditEntry::new((app.clock)(), &user.name, "logout", ""));
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(&app, "", 0)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

fn status_class(s: RunStatus) -> &'static str {
    s.as_str()
}

async fn index(State(app): State<App>, headers: HeaderMap) -> Response {
    let (user, session) = match viewer(&app, &headers) {
        Ok(x) => x,
        Err(_) => return login_form(&app, StatusCode::OK, None),
    };
    let store = app.store.clone();
    let runs = match api::blocking(move || Ok(store.runs()?)).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    let mut body = String::new();
    if user.role >= Role::Operator {
        let options: String = app
            .runs
            .example_names()
            .iter()
            .map(|n| format!(r#"<option value="example:{0}">{0}</option>"#, esc(n)))
            .collect();
        body.push_str(&format!(
            r#"<section><h2>Start a run</h2><form method="post" action="/runs" class="start">
<input type="hidden" name="csrf" value="{csrf}">
<label>Built-in site <select name="site">{options}</select></label>
<label>or a site file (TOML) <textarea name="site_text" rows="4" placeholder="paste a site file here"></textarea></label>
<label>Driver <select name="driver"><option value="twin">twin (simulated)</option><option value="manual">manual runbook</option></select></label>
<label>Twin speed (virtual s per s) <input name="speed" inputmode="decimal" placeholder="as fast as it goes"></label>
<label><input type="checkbox" name="ignore_window" value="on"> ignore the booked window</label>
<button class="big">Start</button></form></section>"#,
            csrf = esc(&session.csrf),
        ));
    }
    body.push_str("<section><h2>Runs</h2>");
    if runs.is_empty() {
        body.push_str("<p>No run yet.</p>");
    } else {
        body.push_str(
            "<table class=\"runs\"><thead><tr><th>#</th><th>Status</th><th>Site</th><th>Kind</th><th>Driver</th><th>Started by</th><th>Created</th></tr></thead><tbody>",
        );
        for r in runs.iter().rev() {
            body.push_str(&format!(
                r#"<tr><td><a href="/runs/{id}">{id}</a></td><td><span class="status {cls}">{st}</span></td><td><a href="/runs/{id}">{site}</a></td><td>{kind}</td><td>{driver}</td><td>{by}</td><td>{created}</td></tr>"#,
                id = r.id,
                cls = status_class(r.status),
                st = r.status.as_str(),
                site = esc(&r.site),
                kind = r.kind.as_str(),
                driver = esc(&r.driver),
                by = esc(r.started_by.as_deref().unwrap_or("-")),
                created = time_text(None, r.created),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    page("Runs", Some(&user), Some(&session.csrf), &body).into_response()
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    site_text: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    speed: String,
    #[serde(default)]
    ignore_window: Option<String>,
}

async fn start_form(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<StartForm>,
) -> Response {
    let (user, _) = match form_caller(&app, &headers, &f.csrf) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let uploaded = !f.site_text.trim().is_empty();
    let body = api::StartBody {
        site: (!uploaded).then(|| f.site.clone()),
        site_name: uploaded.then(|| "uploaded.toml".to_string()),
        site_text: uploaded.then(|| f.site_text.clone()),
        driver: if f.driver == "manual" {
            crate::runs::DriverChoice::Manual
        } else {
            crate::runs::DriverChoice::Twin
        },
        seed: 0,
        speed: f.speed.trim().parse().ok(),
        ignore_window: f.ignore_window.is_some(),
    };
    match api::start(&app, &user, body).await {
        Ok(run) => Redirect::to(&format!("/runs/{run}")).into_response(),
        Err(e) => api_error_page(e),
    }
}

fn step_class(s: StepState) -> &'static str {
    s.as_str()
}

/// The run page: what waits for whom first, then every step.
fn run_body(app: &App, r: &RunRecord, user: &User, csrf: &str, now: i64) -> String {
    let w = r.plan.window.as_ref();
    let id = r.summary.id;
    let waiting = crate::runs::waiting_for_approval(r);
    let mut b = format!(
        r#"<section class="run" data-run="{id}" data-manual="{manual}"><h2>Run {id} · {site} <span class="status {cls}" id="run-status">{st}</span></h2>
<p class="meta">{kind} with the {driver} driver · started by <b>{by}</b> · created {created}{active}</p>"#,
        site = esc(&r.summary.site),
        cls = status_class(r.summary.status),
        st = r.summary.status.as_str(),
        kind = r.summary.kind.as_str(),
        driver = esc(&r.summary.driver),
        by = esc(r.summary.started_by.as_deref().unwrap_or("-")),
        created = time_text(None, r.summary.created),
        active = if r.active { " · <b>under way</b>" } else { "" },
        manual = u8::from(r.summary.driver == "manual"),
    );
    if let Some(m) = &r.summary.message {
        b.push_str(&format!(r#"<p class="message">{}</p>"#, esc(m)));
    }
    let may_approve = user.role >= Role::Approver
        && !(app.config.two_person_rule && r.summary.started_by.as_deref() == Some(&user.name));
    for s in &waiting {
        b.push_str(&format!(
            r#"<div class="waiting"><b>Waiting for an approver:</b> {title} (<code>{sid}</code>){button}</div>"#,
            title = esc(&s.title),
            sid = esc(&s.id),
            button = if may_approve {
                format!(
                    r#"<form method="post" action="/runs/{id}/approve" class="inline"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="step" value="{sid}"><button class="big approve">Approve</button></form>"#,
                    csrf = esc(csrf),
                    sid = esc(&s.id)
                )
            } else if user.role >= Role::Approver {
                " — the two-person rule: another approver than the run's starter must approve".into()
            } else {
                String::new()
            },
        ));
    }
    if user.role >= Role::Operator
        && !r.active
        && waiting.is_empty()
        && matches!(
            r.summary.status,
            RunStatus::Paused | RunStatus::Stopped | RunStatus::Failed | RunStatus::Running
        )
    {
        b.push_str(&format!(
            r#"<form method="post" action="/runs/{id}/resume" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button class="big">Resume</button></form>"#,
            csrf = esc(csrf)
        ));
    }
    let manual = r.summary.driver == "manual";
    b.push_str(
        r#"<table class="steps"><thead><tr><th>#</th><th>State</th><th>Step</th><th>Node</th><th>Started</th><th>Elapsed / estimate</th><th>Rules</th><th>By</th>"#,
    );
    if manual {
        b.push_str("<th>Answer</th>");
    }
    b.push_str("</tr></thead><tbody>");
    for (i, (p, s)) in r.plan.steps.iter().zip(&r.steps).enumerate() {
        let elapsed = api::elapsed(s, now)
            .map(duration_text)
            .unwrap_or_else(|| "-".into());
        let by = s
            .answered_by
            .clone()
            .or_else(|| {
                r.approvals
                    .iter()
                    .find(|a| a.step == p.id)
                    .map(|a| format!("approved by {}", a.by))
            })
            .unwrap_or_default();
        b.push_str(&format!(
            r#"<tr id="step-{i}" data-step="{sid}" class="row-{cls}"><td>{n}</td><td class="state"><span class="st {cls}">{st}</span></td><td><b>{title}</b><br><code>{sid}</code>{pause}</td><td>{node}</td><td class="started">{started}</td><td>{elapsed} / {est}</td><td>{rules}</td><td class="by">{by}</td>"#,
            n = i + 1,
            sid = esc(&p.id),
            cls = step_class(s.state),
            st = s.state.as_str(),
            title = esc(&p.title),
            pause = if p.kind == StepKind::Pause { " <em>(pause: needs an approval)</em>" } else { "" },
            node = esc(&p.node.as_ref().map(|n| format!("{}/{n}", p.cluster)).unwrap_or_else(|| p.cluster.clone())),
            started = s.started.map(|t| time_text(w, t)).unwrap_or_else(|| "-".into()),
            est = duration_text(p.duration_s as i64),
            rules = esc(&p.rules.join(", ")),
            by = esc(&by),
        ));
        if manual {
            b.push_str("<td>");
            if user.role >= Role::Operator && s.state == StepState::Running {
                b.push_str(&format!(
                    r#"<form method="post" action="/runs/{id}/answer" class="answer"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="step" value="{sid}">
<button name="answer" value="done" class="done">Done</button> <button name="answer" value="skip">Skip</button>
<input name="reason" placeholder="why it failed"> <button name="answer" value="failed" class="failed">Failed</button></form>
<details><summary>Instructions</summary><pre>{ins}</pre><p><b>Verify:</b> {verify}</p></details>"#,
                    csrf = esc(csrf),
                    sid = esc(&p.id),
                    ins = esc(&p.instructions),
                    verify = esc(&p.verify),
                ));
            }
            b.push_str("</td>");
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table></section>");
    b.push_str(r#"<script src="/assets/live.js" defer></script>"#);
    b
}

async fn run_page(State(app): State<App>, headers: HeaderMap, Path(id): Path<RunId>) -> Response {
    let (user, session) = match viewer(&app, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let store = app.store.clone();
    let record = match api::blocking(move || Ok(store.run(id)?)).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    let body = run_body(&app, &record, &user, &session.csrf, (app.clock)());
    page(
        &format!("Run {id}"),
        Some(&user),
        Some(&session.csrf),
        &body,
    )
    .into_response()
}

#[derive(Deserialize)]
struct ApproveForm {
    #[serde(default)]
    csrf: String,
    step: String,
}

async fn approve_form(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<RunId>,
    Form(f): Form<ApproveForm>,
) -> Response {
    let (user, _) = match form_caller(&app, &headers, &f.csrf) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match api::approve(&app, &user, id, &f.step).await {
        Ok(_) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(e) => api_error_page(e),
    }
}

#[derive(Deserialize)]
struct AnswerForm {
    #[serde(default)]
    csrf: String,
    step: String,
    answer: String,
    #[serde(default)]
    reason: String,
}

async fn answer_form(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<RunId>,
    Form(f): Form<AnswerForm>,
) -> Response {
    let (user, _) = match form_caller(&app, &headers, &f.csrf) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let body = api::AnswerBody {
        step: f.step,
        answer: f.answer,
        reason: f.reason,
        early: false,
    };
    match api::answer(&app, &user, id, body).await {
        Ok(_) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(e) => api_error_page(e),
    }
}

async fn resume_form(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<RunId>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (user, _) = match form_caller(&app, &headers, &f.csrf) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match api::resume(&app, &user, id).await {
        Ok(_) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(e) => api_error_page(e),
    }
}

async fn audit_page(State(app): State<App>, headers: HeaderMap) -> Response {
    let (user, session) = match viewer(&app, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if user.role < Role::Admin {
        return error_page(StatusCode::FORBIDDEN, "The audit log is for admins.");
    }
    let store = app.store.clone();
    let log = match api::blocking(move || Ok(store.audit_log(500)?)).await {
        Ok(l) => l,
        Err(e) => return api_error_page(e),
    };
    let mut b = String::from(
        "<section><h2>Audit log</h2><table><thead><tr><th>When</th><th>Who</th><th>What</th><th>Detail</th></tr></thead><tbody>",
    );
    for e in &log {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time_text(None, e.time),
            esc(&e.by),
            esc(&e.action),
            esc(&e.detail)
        ));
    }
    b.push_str("</tbody></table></section>");
    page("Audit log", Some(&user), Some(&session.csrf), &b).into_response()
}
