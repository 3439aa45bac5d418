//! The ferry agent's API as plain data: the requests the executor's `agent` driver sends and
//! the answers `ferry agent` gives (see `docs/agent-api.md`). Fields may be added, never renamed.

use serde::{Deserialize, Serialize};

/// Version of the agent API's JSON.
pub const AGENT_SCHEMA_VERSION: u32 = 1;

/// An operation the agent carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Stage,
    Switch,
    Revert,
    Snapshot,
    Restore,
    SetRole,
    Restart,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Stage => "stage",
            OpKind::Switch => "switch",
            OpKind::Revert => "revert",
            OpKind::Snapshot => "snapshot",
            OpKind::Restore => "restore",
            OpKind::SetRole => "set_role",
            OpKind::Restart => "restart",
        }
    }
}

/// `POST /v1/ops`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRequest {
    /// Unique per operation; a repeated ID returns the first result.
    pub id: String,
    pub service: String,
    pub op: OpKind,
    /// `stage`: the version the package holds (its signature must be for this service and
    /// version). `switch` (required) and `revert` (optional): the version to end on, so that a
    /// repeated or concurrent request finds it done rather than switching back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `stage`: the package archive (tar), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// `stage`: the minisign signature (the `.minisig` file's text) of the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// `restore`: the snapshot ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// `set_role`: the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `switch`, `revert`: seconds to wait for the service to be healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_deadline_s: Option<f64>,
}

/// How an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    Running,
    Done,
    Failed,
}

/// A slot and the version it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotVersion {
    pub slot: String,
    pub version: String,
}

/// The answer to `POST /v1/ops` and `GET /v1/ops/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    pub schema_version: u32,
    pub id: String,
    pub service: String,
    pub op: OpKind,
    pub state: OpState,
    pub message: String,
    pub started: i64,
    pub ended: Option<i64>,
    pub active: Option<SlotVersion>,
    pub inactive: Option<SlotVersion>,
    pub snapshot: Option<String>,
}

/// A service's health as its check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    Stopped,
}

/// A configuration snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub op: String,
    pub time: i64,
}

/// One service in `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub active: Option<SlotVersion>,
    pub inactive: Option<SlotVersion>,
    pub health: Health,
    pub role: Option<String>,
    pub replication: Option<u8>,
    pub pid: Option<u32>,
    pub supervisor: String,
    pub snapshots: Vec<SnapshotInfo>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub schema_version: u32,
    pub agent: String,
    pub services: Vec<ServiceStatus>,
}

/// One service in `GET /v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    pub name: String,
    pub role: Option<String>,
    pub health: Health,
}

/// `GET /v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub schema_version: u32,
    pub agent: String,
    pub services: Vec<Beat>,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// The path of an operation's record, `GET /v1/ops/{id}`: the ID percent-encoded (everything
/// but unreserved characters).
pub fn op_path(id: &str) -> String {
    let mut out = String::from("/v1/ops/");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
