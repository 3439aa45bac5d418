//! `ferry serve` over HTTP on loopback: a real server (started in this process on a free
//! port, with its own threads) and a plain HTTP client. Every role against every endpoint,
//! CSRF refused, a wrong password rate-limited, twin runs started, approved under the
//! two-person rule and completed, the manual runbook answered, live events, metrics.

use ferry_serve::auth::Role;
use ferry_serve::store::{SqliteStore, Store};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXAMPLES: &[(&str, &str)] = &[
    (
        "linux-ha-pair",
        include_str!("../../../examples/linux-ha-pair.toml"),
    ),
    (
        "ucm-imp-only-refresh",
        include_str!("../../../examples/ucm-imp-only-refresh.toml"),
    ),
];

/// A site of these tests' own: a primary/backup pair of a generic service, its window booked
/// on a fixed date.
const PAIR_SITE: &str = r#"
[site]
name = "test-pair"
window = { start = "2026-03-01T01:00:00+01:00", hours = 3 }

[[cluster]]
name = "cache"
profile = "linux-ha"
target = "3.0.1"

[[cluster.node]]
name = "cache-1"
role = "primary"
version = "3.0.0"
address = "127.0.0.1:7501"
facts = { package_mb = 12 }

[[cluster.node]]
name = "cache-2"
role = "backup"
version = "3.0.0"
address = "127.0.0.1:7502"
facts = { package_mb = 12 }
"#;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("ferry-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server with a user of each role (`viewer`, `operator`, `approver`, `approver2`,
/// `admin`, each with the password `NAME-password`) and a token for each.
struct Server {
    running: ferry_serve::Running,
    dir: Scratch,
    tokens: std::collections::BTreeMap<String, String>,
    now: Arc<AtomicI64>,
}

fn server(name: &str, two_person_rule: bool) -> Server {
    server_with(name, two_person_rule, None)
}

fn server_with(
    name: &str,
    two_person_rule: bool,
    webhooks: Option<ferry_serve::webhooks::Webhooks>,
) -> Server {
    let dir = Scratch::new(name);
    let store = Arc::new(SqliteStore::open(&dir.0).unwrap());
    let now = Arc::new(AtomicI64::new(1_800_000_000));
    let n = now.clone();
    let clock: ferry_serve::auth::Clock = Arc::new(move || n.load(Ordering::SeqCst));
    let mut tokens = std::collections::BTreeMap::new();
    for (user, role) in [
        ("viewer", Role::Viewer),
        ("operator", Role::Operator),
        ("approver", Role::Approver),
        ("approver2", Role::Approver),
        ("admin", Role::Admin),
    ] {
        let hash = ferry_serve::auth::hash_password(&format!("{user}-password")).unwrap();
        store.put_user(user, role, &hash, 0).unwrap();
        tokens.insert(
            user.to_string(),
            ferry_serve::auth::new_token(store.as_ref(), user, 0).unwrap(),
        );
    }
    let config = ferry_serve::Config {
        state: dir.0.clone(),
        secure_cookies: false,
        two_person_rule,
        examples: EXAMPLES,
        webhooks,
    };
    let running = ferry_serve::spawn(config, store, clock, "127.0.0.1:0".parse().unwrap()).unwrap();
    Server {
        running,
        dir,
        tokens,
        now,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A response's status, its `Set-Cookie` headers and its body as text.
struct Reply {
    status: u16,
    cookies: Vec<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find_map(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("request");
    let cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    Reply {
        status: r.status().as_u16(),
        cookies,
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// Headers of a request: none, a bearer token, or a session cookie with or without CSRF.
#[derive(Clone, Default)]
struct Auth {
    bearer: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    fn as_user(&self, user: &str) -> Auth {
        Auth {
            bearer: Some(self.tokens[user].clone()),
            ..Auth::default()
        }
    }

    fn call(&self, method: &str, path: &str, auth: &Auth, body: Option<&Value>) -> Reply {
        let a = agent();
        let url = self.url(path);
        let add = |mut h: Vec<(&'static str, String)>| {
            if let Some(t) = &auth.bearer {
                h.push(("Authorization", format!("Bearer {t}")));
            }
            if let Some(c) = &auth.cookie {
                h.push(("Cookie", c.clone()));
            }
            if let Some(c) = &auth.csrf {
                h.push(("X-CSRF-Token", c.clone()));
            }
            h
        };
        let headers = add(Vec::new());
        if method == "GET" {
            let mut r = a.get(&url);
            for (k, v) in &headers {
                r = r.header(*k, v);
            }
            reply(r.call())
        } else {
            let mut r = a.post(&url);
            for (k, v) in &headers {
                r = r.header(*k, v);
            }
            reply(r.send_json(body.cloned().unwrap_or(json!({}))))
        }
    }

    fn get(&self, path: &str, auth: &Auth) -> Reply {
        self.call("GET", path, auth, None)
    }

    fn post(&self, path: &str, auth: &Auth, body: Value) -> Reply {
        self.call("POST", path, auth, Some(&body))
    }

    /// The login page's CSRF cookie and token, then the login form posted.
    fn login(&self, user: &str, password: &str) -> Reply {
        let page = reply(agent().get(&self.url("/login")).call());
        let token = page.cookie("ferry_login_csrf").expect("login csrf cookie");
        reply(
            agent()
                .post(&self.url("/login"))
                .header("Cookie", format!("ferry_login_csrf={token}"))
                .send_form([("name", user), ("password", password), ("csrf", &token)]),
        )
    }

    /// A browser session of `user`: its cookie and CSRF token.
    fn session(&self, user: &str) -> Auth {
        let r = self.login(user, &format!("{user}-password"));
        assert_eq!(r.status, 303, "{}", r.body);
        let cookie = format!("ferry_session={}", r.cookie("ferry_session").unwrap());
        let me = self.get(
            "/api/v1/me",
            &Auth {
                cookie: Some(cookie.clone()),
                ..Auth::default()
            },
        );
        Auth {
            cookie: Some(cookie),
            csrf: me.json()["csrf"].as_str().map(str::to_string),
            bearer: None,
        }
    }

    /// Polls run `id` until `done` says so (at most 60 s).
    fn wait_for_run(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/api/v1/runs/{id}"), &self.as_user("viewer"));
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            if done(&v) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "run {id} never got {what}: {v:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start(&self, user: &str, body: Value) -> i64 {
        let r = self.post("/api/v1/runs", &self.as_user(user), body);
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["run"].as_i64().unwrap()
    }
}

fn status(v: &Value) -> &str {
    v["run"]["status"].as_str().unwrap_or("")
}

/// Every role against every endpoint: without credentials 401, with a wrong token 401, with a
/// role below the endpoint's 403, at or above it neither; every refusal a JSON error.
#[test]
fn every_role_against_every_endpoint_is_allowed_or_refused_with_401_or_403() {
    let s = server("roles", true);
    let run = s.start("operator", json!({"site": "example:linux-ha-pair"}));
    s.wait_for_run(run, "complete", |v| status(v) == "complete");
    let endpoints: Vec<(&str, String, Value, Role)> = vec![
        ("GET", "/api/v1/me".into(), json!(null), Role::Viewer),
        ("GET", "/api/v1/runs".into(), json!(null), Role::Viewer),
        (
            "GET",
            format!("/api/v1/runs/{run}"),
            json!(null),
            Role::Viewer,
        ),
        (
            "POST",
            "/api/v1/runs".into(),
            json!({"site": "example:nope"}),
            Role::Operator,
        ),
        (
            "POST",
            format!("/api/v1/runs/{run}/answer"),
            json!({"step": "nope", "answer": "done"}),
            Role::Operator,
        ),
        (
            "POST",
            format!("/api/v1/runs/{run}/resume"),
            json!({}),
            Role::Operator,
        ),
        (
            "POST",
            format!("/api/v1/runs/{run}/approve"),
            json!({"step": "nope"}),
            Role::Approver,
        ),
        ("GET", "/api/v1/audit".into(), json!(null), Role::Admin),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"name": "x", "role": "nobody", "password": "long enough"}),
            Role::Admin,
        ),
        ("POST", "/api/v1/tokens".into(), json!({}), Role::Viewer),
        (
            "GET",
            "/api/v1/no-such-route".into(),
            json!(null),
            Role::Viewer,
        ),
    ];
    let bad = Auth {
        bearer: Some("ferry_0000_wrong".into()),
        ..Auth::default()
    };
    for (method, path, body, need) in &endpoints {
        for (who, auth) in [("nobody", Auth::default()), ("a wrong token", bad.clone())] {
            let r = s.call(method, path, &auth, Some(body));
            assert_eq!(r.status, 401, "{method} {path} by {who}: {}", r.body);
            assert!(r.json()["error"].is_string(), "{method} {path}: {}", r.body);
        }
        for (user, role) in [
            ("viewer", Role::Viewer),
            ("operator", Role::Operator),
            ("approver", Role::Approver),
            ("admin", Role::Admin),
        ] {
            let r = s.call(method, path, &s.as_user(user), Some(body));
            if role >= *need {
                assert!(
                    r.status != 401 && r.status != 403,
                    "{method} {path} by {user}: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(r.status, 403, "{method} {path} by {user}: {}", r.body);
                assert!(
                    r.json()["error"].as_str().unwrap().contains(need.as_str()),
                    "{}",
                    r.body
                );
            }
        }
    }
    // The dashboard without a session is the login page.
    let page = reply(agent().get(&s.url("/")).call());
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Log in"), "{}", page.body);
}

/// A state-changing call with the session cookie and no (or a wrong) CSRF token is refused
/// with 403; with the session's token it is carried out; a form without it is refused too.
#[test]
fn a_cookie_call_without_its_csrf_token_is_refused() {
    let s = server("csrf", true);
    let session = s.session("operator");
    let start = json!({"site": "example:linux-ha-pair"});
    for csrf in [None, Some("wrong".to_string())] {
        let r = s.post(
            "/api/v1/runs",
            &Auth {
                csrf,
                ..session.clone()
            },
            start.clone(),
        );
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains("CSRF"),
            "{}",
            r.body
        );
    }
    let runs = s.get("/api/v1/runs", &session).json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0, "nothing started");
    let r = s.post("/api/v1/runs", &session, start);
    assert_eq!(r.status, 201, "{}", r.body);
    // The dashboard's form, without the token.
    let form = reply(
        agent()
            .post(&s.url("/runs"))
            .header("Cookie", session.cookie.clone().unwrap())
            .send_form([("site", "example:linux-ha-pair"), ("driver", "twin")]),
    );
    assert_eq!(form.status, 403, "{}", form.body);
    // The login form without its double-submit cookie.
    let login = reply(agent().post(&s.url("/login")).send_form([
        ("name", "operator"),
        ("password", "operator-password"),
        ("csrf", "made-up"),
    ]));
    assert_eq!(login.status, 403, "{}", login.body);
}

/// Five wrong passwords for a user: the sixth login, with the right password, is refused
/// (429); the lockout ends LOCKOUT_S later on the server's clock (moved, not waited for).
#[test]
fn a_wrong_password_is_rate_limited() {
    let s = server("rate-limit", true);
    for _ in 0..ferry_serve::auth::MAX_FAILURES {
        let r = s.login("approver", "not-the-password");
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.cookie("ferry_session").is_none());
    }
    let r = s.login("approver", "approver-password");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
    assert!(r.cookie("ferry_session").is_none());
    s.now
        .fetch_add(ferry_serve::auth::LOCKOUT_S, Ordering::SeqCst);
    let r = s.login("approver", "approver-password");
    assert_eq!(r.status, 303, "{}", r.body);
    let audit = s.get("/api/v1/audit", &s.as_user("admin")).json();
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"login.refused"), "{actions:?}");
    assert!(actions.contains(&"login.failed"), "{actions:?}");
}

/// A twin run of a site file of the tests' own, started by an operator, completes; each of its
/// steps is in the API with its state, node, times, estimate and rule IDs; the journal names
/// the operator (what `ferry status` shows).
#[test]
fn a_twin_run_started_by_an_operator_completes_with_its_steps_in_the_api() {
    let s = server("twin-run", true);
    let run = s.start(
        "operator",
        json!({"site_name": "test-pair.toml", "site_text": PAIR_SITE, "driver": "twin"}),
    );
    let v = s.wait_for_run(run, "complete", |v| status(v) == "complete");
    assert_eq!(v["run"]["started_by"], "operator");
    assert_eq!(v["run"]["driver"], "twin");
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.len() > 3, "{v:#}");
    for st in steps {
        assert!(st["state"] == "done" || st["state"] == "skipped", "{st:#}");
        assert!(st["started"].is_i64() && st["ended"].is_i64(), "{st:#}");
        assert!(
            st["elapsed_s"].is_i64() && st["estimate_s"].is_u64(),
            "{st:#}"
        );
        assert!(st["rules"].is_array(), "{st:#}");
    }
    assert!(
        steps.iter().any(|st| st["node"] == "cache/cache-1"),
        "steps name their node: {v:#}"
    );
    assert!(
        steps
            .iter()
            .any(|st| st["rules"].as_array().is_some_and(|r| !r.is_empty())),
        "steps carry rule IDs: {v:#}"
    );
    // The journal the CLI reads says who started it.
    let journal = ferry_exec::Journal::open_read_only(&s.dir.0).unwrap();
    assert_eq!(
        journal.run(run).unwrap().started_by.as_deref(),
        Some("operator")
    );
    // A site with a mistake: refused with its file, line and key.
    let bad = PAIR_SITE.replace("role = \"backup\"", "role = \"bakcup\"");
    let r = s.post(
        "/api/v1/runs",
        &s.as_user("operator"),
        json!({"site_name": "test-pair.toml", "site_text": bad}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(e.contains("test-pair.toml:") && e.contains("bakcup"), "{e}");
}

/// A twin run that pauses at a pause step (a go/no-go call in the UCM profile): the approver
/// who started it is refused by the two-person rule (403), another approver approves, the run
/// goes on to its end; the approval is journaled with the approver's name; a live event
/// stream of the run receives the approval and step updates.
#[test]
fn another_approver_approves_the_pause_and_the_starter_is_refused() {
    let s = server("two-person", true);
    let run = s.start(
        "approver",
        json!({"site": "example:ucm-imp-only-refresh", "ignore_window": true}),
    );
    let v = s.wait_for_run(run, "paused", |v| {
        status(v) == "paused" && v["active"] == false
    });
    let waiting: Vec<String> = v["waiting_for_approval"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(waiting.len(), 1, "{v:#}");
    let step = &waiting[0];
    // The starter: refused.
    let r = s.post(
        &format!("/api/v1/runs/{run}/approve"),
        &s.as_user("approver"),
        json!({ "step": step }),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("two-person rule"));
    // An operator: below the role.
    let r = s.post(
        &format!("/api/v1/runs/{run}/approve"),
        &s.as_user("operator"),
        json!({ "step": step }),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // The live stream of the run, opened before the approval.
    let stream = agent()
        .get(&s.url(&format!("/api/v1/runs/{run}/events")))
        .header("Authorization", format!("Bearer {}", s.tokens["viewer"]))
        .call()
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let reader = BufReader::new(stream.into_body().into_reader());
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Another approver: approved, and the run goes on.
    let r = s.post(
        &format!("/api/v1/runs/{run}/approve"),
        &s.as_user("approver2"),
        json!({ "step": step }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resumed"], true);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(seen.iter().any(|l: &String| l == "event: approval")
        && seen.iter().any(|l| l == "event: step"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no approval and step events on the stream: {seen:?}"),
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("data: ") && l.contains(&format!("\"run\":{run}"))),
        "{seen:?}"
    );
    let v = s.wait_for_run(run, "complete", |v| status(v) == "complete");
    let approvals = v["approvals"].as_array().unwrap();
    assert!(
        approvals
            .iter()
            .any(|a| a["step"] == step.as_str() && a["by"] == "approver2"),
        "{v:#}"
    );
    let journal = ferry_exec::Journal::open_read_only(&s.dir.0).unwrap();
    assert_eq!(
        journal.approval(run, step).unwrap().unwrap().by,
        "approver2"
    );
}

/// With the two-person rule turned off, the starter may approve.
#[test]
fn without_the_two_person_rule_the_starter_approves() {
    let s = server("one-person", false);
    let run = s.start(
        "approver",
        json!({"site": "example:ucm-imp-only-refresh", "ignore_window": true}),
    );
    let v = s.wait_for_run(run, "paused", |v| {
        status(v) == "paused" && v["active"] == false
    });
    let step = v["waiting_for_approval"][0].as_str().unwrap().to_string();
    let r = s.post(
        &format!("/api/v1/runs/{run}/approve"),
        &s.as_user("approver"),
        json!({ "step": step }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    s.wait_for_run(run, "complete", |v| status(v) == "complete");
}

/// A manual runbook run answered from the API step by step to its end; each answer is
/// journaled with the operator's name; the dashboard's run page shows the steps and, to a
/// viewer, no answer or approve button.
#[test]
fn the_manual_runbook_is_answered_to_its_end() {
    let s = server("manual", true);
    let run = s.start(
        "operator",
        json!({"site_name": "test-pair.toml", "site_text": PAIR_SITE, "driver": "manual", "ignore_window": true}),
    );
    let start = Instant::now();
    loop {
        let v = s
            .get(&format!("/api/v1/runs/{run}"), &s.as_user("viewer"))
            .json();
        if status(&v) == "complete" {
            assert!(
                v["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|st| st["answered_by"] == "operator"),
                "{v:#}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v:#}");
        for st in v["steps"].as_array().unwrap() {
            if st["state"] == "running" {
                let r = s.post(
                    &format!("/api/v1/runs/{run}/answer"),
                    &s.as_user("operator"),
                    json!({"step": st["id"], "answer": "done"}),
                );
                assert!(r.status == 200 || r.status == 409, "{}", r.body);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let viewer = s.session("viewer");
    let page = reply(
        agent()
            .get(&s.url(&format!("/runs/{run}")))
            .header("Cookie", viewer.cookie.unwrap())
            .call(),
    );
    assert_eq!(page.status, 200);
    assert!(page.body.contains("cache/cache-1"), "{}", page.body);
    assert!(!page.body.contains("value=\"done\""), "{}", page.body);
    assert!(!page.body.contains("Approve</button>"), "{}", page.body);
}

/// `/metrics`: runs by state, step durations by profile, action and outcome, approvals
/// pending; no label carries a run's number.
#[test]
fn metrics_count_runs_steps_and_pending_approvals() {
    let s = server("metrics", true);
    let a = s.start("operator", json!({"site": "example:linux-ha-pair"}));
    s.wait_for_run(a, "complete", |v| status(v) == "complete");
    let b = s.start(
        "approver",
        json!({"site": "example:ucm-imp-only-refresh", "ignore_window": true}),
    );
    s.wait_for_run(b, "paused", |v| {
        status(v) == "paused" && v["active"] == false
    });
    let text = reply(agent().get(&s.url("/metrics")).call());
    assert_eq!(text.status, 200);
    let t = &text.body;
    assert!(t.contains("ferry_runs{state=\"complete\"} 1"), "{t}");
    assert!(t.contains("ferry_runs{state=\"paused\"} 1"), "{t}");
    assert!(t.contains("ferry_approvals_pending 1"), "{t}");
    assert!(
        t.contains("ferry_step_duration_seconds_bucket{")
            && t.contains("profile=\"linux-ha\"")
            && t.contains("outcome=\"done\""),
        "{t}"
    );
    assert!(!t.contains("run=\""), "{t}");
}

/// A request the test's webhook receiver got: its headers (lower-case names) and body.
struct Received {
    headers: std::collections::BTreeMap<String, String>,
    body: String,
}

/// An HTTP receiver on loopback that answers 500 to its first `fail_first` requests and 200
/// to the others, keeping every request.
fn webhook_receiver(fail_first: usize) -> (String, Arc<std::sync::Mutex<Vec<Received>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = std::collections::BTreeMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let n = {
                let mut g = keep.lock().unwrap();
                g.push(Received {
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                g.len()
            };
            let status = if n <= fail_first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

/// Run events posted to a webhook, signed as Standard Webhooks signs them (each signature
/// verified here with the secret, independently of the server's code), the first attempt
/// answered 500 and retried with the same webhook-id, every attempt in the delivery log.
#[test]
fn run_events_reach_a_webhook_signed_and_retried() {
    use base64::Engine as _;
    use hmac::Mac;
    let (url, got) = webhook_receiver(1);
    let secret: Vec<u8> = (0u8..32).collect();
    let hooks = ferry_serve::webhooks::Webhooks {
        urls: vec![url.clone()],
        secret: secret.clone(),
        backoff: Duration::from_millis(10),
        public_url: Some("https://ferry.example.net".into()),
    };
    let s = server_with("webhooks", true, Some(hooks));
    let run = s.start("operator", json!({"site": "example:linux-ha-pair"}));
    s.wait_for_run(run, "complete", |v| status(v) == "complete");
    let types = |g: &Vec<Received>| -> Vec<String> {
        g.iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let start = Instant::now();
    loop {
        let g = got.lock().unwrap();
        let t = types(&g);
        if t.iter().filter(|t| *t == "run.started").count() == 2
            && t.contains(&"run.completed".to_string())
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{t:?}");
        drop(g);
        std::thread::sleep(Duration::from_millis(20));
    }
    let g = got.lock().unwrap();
    for r in g.iter() {
        let id = &r.headers["webhook-id"];
        let ts = &r.headers["webhook-timestamp"];
        let sig = r.headers["webhook-signature"].strip_prefix("v1,").unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, expected, "the signature of {}", r.body);
    }
    // The first request (run.started) was answered 500, and tried again with its id.
    let first = &g[0];
    assert_eq!(types(&g)[0], "run.started");
    let tries = g
        .iter()
        .filter(|r| r.headers["webhook-id"] == first.headers["webhook-id"])
        .count();
    assert_eq!(tries, 2, "the refused event is tried again, with its id");
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["data"]["run"], run);
    assert_eq!(body["data"]["by"], "operator");
    assert_eq!(
        body["data"]["link"],
        format!("https://ferry.example.net/runs/{run}")
    );
    let log = s
        .get("/api/v1/webhooks/deliveries", &s.as_user("admin"))
        .json();
    let attempts: Vec<(u64, Option<u64>)> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["id"] == first.headers["webhook-id"].as_str())
        .map(|d| (d["attempt"].as_u64().unwrap(), d["status"].as_u64()))
        .collect();
    assert!(attempts.contains(&(1, Some(500))), "{log:#}");
    assert!(attempts.contains(&(2, Some(200))), "{log:#}");
    let metrics = reply(agent().get(&s.url("/metrics")).call()).body;
    assert!(
        metrics.contains("ferry_webhook_deliveries_failed_total 1"),
        "{metrics}"
    );
}

/// The server process of the kill test (only when `FERRY_SERVE_TEST_STATE` names a state
/// directory: otherwise it does nothing): serves that directory on a free port, prints
/// `listening ADDR`, and runs until it is killed or its standard input closes.
#[test]
fn server_process_of_the_kill_test() {
    let Ok(state) = std::env::var("FERRY_SERVE_TEST_STATE") else {
        return;
    };
    let state = PathBuf::from(state);
    let store = Arc::new(SqliteStore::open(&state).unwrap());
    let config = ferry_serve::Config {
        state,
        secure_cookies: false,
        two_person_rule: true,
        examples: EXAMPLES,
        webhooks: None,
    };
    let running = ferry_serve::spawn(
        config,
        store,
        Arc::new(ferry_exec::system_now),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    println!("listening {}", running.addr);
    use std::io::{Read, Write};
    std::io::stdout().flush().unwrap();
    // Until killed, or until the test that started it is gone (its end of the pipe closed).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(0);
}

/// A server process of its own (this test binary, running the test above) on `state`, and
/// its address.
fn server_process(state: &std::path::Path) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "server_process_of_the_kill_test",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FERRY_SERVE_TEST_STATE", state)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server process says where it listens")
            .unwrap();
        // After the test harness's `test NAME ... ` on the same line.
        if let Some((_, a)) = line.split_once("listening ") {
            break a.trim().to_string();
        }
    };
    (child, addr)
}

/// How many times each step of `run` took effect in the twin, from the twin's own record
/// replayed from the journal (the witness), with each step's outcome there.
fn twin_applications(state: &std::path::Path, run: i64) -> Vec<(String, u32, String)> {
    let journal = ferry_exec::Journal::open_read_only(state).unwrap();
    let world = ferry_exec::run_world(&journal, run)
        .unwrap()
        .expect("the twin is saved");
    world
        .records
        .iter()
        .filter(|((r, _), _)| *r == run)
        .map(|((_, id), rec)| (id.clone(), rec.applications, format!("{:?}", rec.outcome)))
        .collect()
}

/// The server process killed with SIGKILL in the middle of a paced twin run, and started
/// again on the same state directory: the run is left `running` and not active, is resumed
/// from the journal through the API, completes, and the twin's own record shows every step
/// applied exactly once.
#[test]
fn a_server_killed_mid_run_resumes_the_run_from_the_journal_with_no_step_applied_twice() {
    let dir = Scratch::new("kill");
    let token = {
        let store = SqliteStore::open(&dir.0).unwrap();
        let hash = ferry_serve::auth::hash_password("operator-password").unwrap();
        store
            .put_user("operator", Role::Operator, &hash, 0)
            .unwrap();
        ferry_serve::auth::new_token(&store, "operator", 0).unwrap()
    };
    let call = |addr: &str, method: &str, path: &str, body: Value| -> Reply {
        let url = format!("http://{addr}{path}");
        let auth = format!("Bearer {token}");
        if method == "GET" {
            reply(agent().get(&url).header("Authorization", &auth).call())
        } else {
            reply(
                agent()
                    .post(&url)
                    .header("Authorization", &auth)
                    .send_json(body),
            )
        }
    };
    let (mut first, addr) = server_process(&dir.0);
    // 900 virtual seconds at 200 per second: about 4.5 s.
    let r = call(
        &addr,
        "POST",
        "/api/v1/runs",
        json!({"site": "example:linux-ha-pair", "speed": 200.0}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let run = r.json()["run"].as_i64().unwrap();
    let start = Instant::now();
    loop {
        let v = call(&addr, "GET", &format!("/api/v1/runs/{run}"), json!(null)).json();
        let done = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "done")
            .count();
        let running = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["state"] == "running");
        assert_ne!(
            status(&v),
            "complete",
            "the run ended before the kill: {v:#}"
        );
        // Killed with a step under way: its recovery asks the twin what became of it.
        if done >= 2 && running {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    {
        let journal = ferry_exec::Journal::open_read_only(&dir.0).unwrap();
        assert_eq!(
            journal.run(run).unwrap().status,
            ferry_exec::RunStatus::Running
        );
        assert!(!journal.run_is_active(run).unwrap(), "no process holds it");
    }
    let (mut second, addr) = server_process(&dir.0);
    let r = call(
        &addr,
        "POST",
        &format!("/api/v1/runs/{run}/resume"),
        json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let start = Instant::now();
    let v = loop {
        let v = call(&addr, "GET", &format!("/api/v1/runs/{run}"), json!(null)).json();
        if status(&v) == "complete" && v["active"] == false {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v:#}");
        std::thread::sleep(Duration::from_millis(20));
    };
    second.kill().unwrap();
    second.wait().unwrap();
    let steps = v["steps"].as_array().unwrap();
    let record = twin_applications(&dir.0, run);
    for st in steps.iter().filter(|s| s["state"] == "done") {
        let id = st["id"].as_str().unwrap();
        let (_, applied, outcome) = record
            .iter()
            .find(|(r, _, _)| r == id)
            .unwrap_or_else(|| panic!("{id} is not in the twin's record: {record:?}"));
        assert_eq!(*applied, 1, "{id} applied {applied} times ({outcome})");
    }
}
