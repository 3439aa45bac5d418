//! `ferry agent status|stage|switch|revert|set-role --url URL`: ask a running agent from the
//! command line, over the same authenticated HTTPS API the agent driver uses — for a first
//! install of a service, a look at a node, or a repair by hand.

use crate::args::AgentAuth;
use crate::exit::bad;
use anyhow::Result;
use ferry_agent::client::{AgentClient, ClientOptions};
use ferry_model::agent::{AgentStatus, OpKind, OpRequest, OpResult, OpState};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How to reach an agent: its URL, and the same `--agent-*` options as every command that
/// asks agents (`--token-file`, `--ca`, `--cert` and `--key` are hidden aliases).
#[derive(clap::Args, Clone)]
pub struct Connection {
    /// The agent (`https://HOST:PORT`, or `HOST:PORT`).
    #[arg(long, value_name = "URL")]
    pub url: String,
    #[command(flatten)]
    pub auth: AgentAuth,
    /// How long to wait for an answer, in seconds (a switch waits for its health check).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
}

/// An operation asked from the command line.
pub enum Remote {
    Status,
    Stage {
        package: PathBuf,
        version: String,
    },
    /// A switch or revert, with the version it goes to.
    Op(OpKind, Option<String>),
    SetRole(String),
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

fn client(c: &Connection) -> Result<AgentClient> {
    let creds = c.auth.read()?;
    let (token, ca, identity) = (creds.token, creds.ca_pem, creds.client_pem);
    if token.is_none() && identity.is_none() {
        return Err(bad(
            "an agent answers only authenticated requests: give --agent-token-file FILE or --agent-cert FILE --agent-key FILE (or `[agent] token_file` in the configuration file)",
        ));
    }
    let ca = ca.ok_or_else(|| {
        bad("give the CA that signed the agent's certificate: --agent-ca FILE (or `[agent] ca` in the configuration file)")
    })?;
    let url = if c.url.contains("://") {
        c.url.clone()
    } else {
        format!("https://{}", c.url)
    };
    AgentClient::new(
        &url,
        ClientOptions {
            token,
            ca_pem: ca,
            identity,
            timeout: Duration::from_secs(c.timeout.max(1)),
            ..ClientOptions::default()
        },
    )
    .map_err(|e| bad(format!("{}: {e}", c.url)))
}

/// A fresh operation ID for a command-line request: `cli-` and 12 random hex digits.
fn fresh_id(op: OpKind) -> Result<String> {
    let hex = ferry_exec::random_hex().map_err(bad)?;
    Ok(format!("cli-{hex}/{}", op.as_str()))
}

fn status_text(st: &AgentStatus) -> String {
    let mut out = format!("agent {}\n", st.agent);
    for s in &st.services {
        let slot = |v: &Option<ferry_model::agent::SlotVersion>| match v {
            Some(v) => format!("{} (slot {})", v.version, v.slot),
            None => "-".to_string(),
        };
        out.push_str(&format!(
            "  {}: active {}, inactive {}, {}{}{}\n",
            s.name,
            slot(&s.active),
            slot(&s.inactive),
            serde_json::to_value(s.health)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            s.role
                .as_ref()
                .map(|r| format!(", role {r}"))
                .unwrap_or_default(),
            s.replication
                .map(|r| format!(", replication {r}"))
                .unwrap_or_default(),
        ));
    }
    out
}

fn result_text(r: &OpResult) -> String {
    format!(
        "{} {} on {}: {} — {}\n",
        r.op.as_str(),
        r.id,
        r.service,
        match r.state {
            OpState::Done => "done",
            OpState::Failed => "failed",
            OpState::Running => "under way",
        },
        r.message
    )
}

/// Carries out `what` on the agent; exit 0 when it is done, 1 when it failed.
pub fn run(
    conn: &Connection,
    service: Option<&str>,
    id: Option<String>,
    what: Remote,
    json: bool,
) -> Result<ExitCode> {
    let c = client(conn)?;
    // The agent's refusals and a wrong URL or CA are the request's fault: bad input (exit 2);
    // an agent that cannot be reached did not do it (exit 1).
    use ferry_agent::client::ClientError;
    let fail = |e: ClientError| -> Result<ExitCode> {
        match e {
            e @ (ClientError::Status { .. } | ClientError::Url { .. } | ClientError::Tls(_)) => {
                Err(bad(e.to_string()))
            }
            e => {
                eprintln!("ferry: {e}");
                Ok(ExitCode::from(1))
            }
        }
    };
    let (kind, version, package, signature, role) = match what {
        Remote::Status => {
            let st = match c.status() {
                Ok(st) => st,
                Err(e) => return fail(e),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", status_text(&st));
            }
            return Ok(ExitCode::SUCCESS);
        }
        Remote::Stage { package, version } => {
            use base64::Engine as _;
            let data = read(&package)?;
            let sig_path = PathBuf::from(format!("{}.minisig", package.display()));
            let sig = String::from_utf8_lossy(&read(&sig_path)?).to_string();
            (
                OpKind::Stage,
                Some(version),
                Some(base64::engine::general_purpose::STANDARD.encode(data)),
                Some(sig),
                None,
            )
        }
        Remote::Op(k, version) => (k, version, None, None, None),
        Remote::SetRole(r) => (OpKind::SetRole, None, None, None, Some(r)),
    };
    let service = match service {
        Some(s) => s.to_string(),
        None => {
            let st = match c.status() {
                Ok(st) => st,
                Err(e) => return fail(e),
            };
            match st.services.as_slice() {
                [only] => only.name.clone(),
                many => {
                    return Err(bad(format!(
                        "{} manages {} services ({}): name one with --service",
                        conn.url,
                        many.len(),
                        many.iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
    };
    let req = OpRequest {
        id: match id {
            Some(id) => id,
            None => fresh_id(kind)?,
        },
        service,
        op: kind,
        version,
        package,
        signature,
        snapshot: None,
        role,
        health_deadline_s: None,
    };
    let body = serde_json::to_vec(&req)?;
    let reply = match c.request("POST", "/v1/ops", &body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let r = match serde_json::from_slice::<OpResult>(&reply.body) {
        // Done, failed (a refused package is a journaled failure: 422) or under way.
        Ok(r) => r,
        // Refused before anything was journaled: the request is wrong (credentials, an
        // unknown service, nothing staged …).
        Err(_) => {
            let why = reply.json()["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).to_string());
            return Err(bad(format!(
                "{} refused `{}`: {} {why}",
                conn.url,
                kind.as_str(),
                reply.status
            )));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if r.state == OpState::Failed {
        eprint!("ferry: {}", result_text(&r));
    } else {
        print!("{}", result_text(&r));
    }
    Ok(if r.state == OpState::Done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
