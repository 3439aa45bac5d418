//! The agent's journal (`DIR/agent.sqlite`, WAL, `synchronous=FULL`): every operation, written
//! before it acts and after it ends, so that a restart can settle what a crash interrupted; and
//! the state the agent keeps per service (its role).

use ferry_model::agent::{OpResult, OpState};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the journal inside the agent's directory.
pub const JOURNAL_FILE: &str = "agent.sqlite";

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    pub path: PathBuf,
    pub source: rusqlite::Error,
}

/// What an operation needs to be settled after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// Switch, revert: the slot active before (`None`: no version was active).
    #[serde(default)]
    pub from: Option<String>,
    /// Switch, revert: the slot being made active.
    #[serde(default)]
    pub to: Option<String>,
    /// Restore: the snapshot of the configuration taken before it.
    #[serde(default)]
    pub pre_snapshot: Option<String>,
}

/// One journaled operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOp {
    pub request_hash: String,
    /// The HTTP status the first request was answered with.
    pub http_status: u16,
    pub result: OpResult,
    pub detail: Detail,
}

/// What `begin` found.
pub enum Begin {
    /// Recorded as running: carry it out.
    New,
    /// Already journaled.
    Seen(Box<StoredOp>),
}

pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ops (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    op TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER
);
CREATE INDEX IF NOT EXISTS ops_state ON ops(state);
CREATE TABLE IF NOT EXISTS service_state (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (service, key)
);
";

impl Journal {
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let err = |source| JournalError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .map_err(err)?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Journal { conn, path })
    }

    fn wrap<T>(&self, r: rusqlite::Result<T>) -> Result<T, JournalError> {
        r.map_err(|source| JournalError {
            path: self.path.clone(),
            source,
        })
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, u16, String, String)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    }

    fn decode(&self, raw: (String, u16, String, String)) -> Result<StoredOp, JournalError> {
        let (request_hash, http_status, result, detail) = raw;
        let bad = |e: serde_json::Error| JournalError {
            path: self.path.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        };
        Ok(StoredOp {
            request_hash,
            http_status,
            result: serde_json::from_str(&result).map_err(bad)?,
            detail: serde_json::from_str(&detail).map_err(bad)?,
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<StoredOp>, JournalError> {
        let raw = self.wrap(
            self.conn
                .query_row(
                    "SELECT request_hash, http_status, result, detail FROM ops WHERE id = ?1",
                    params![id],
                    Self::row,
                )
                .optional(),
        )?;
        raw.map(|r| self.decode(r)).transpose()
    }

    /// Records an operation as running, unless its ID is journaled already.
    pub fn begin(
        &self,
        hash: &str,
        result: &OpResult,
        detail: &Detail,
    ) -> Result<Begin, JournalError> {
        if let Some(seen) = self.get(&result.id)? {
            return Ok(Begin::Seen(Box::new(seen)));
        }
        self.wrap(self.conn.execute(
            "INSERT INTO ops (id, service, op, request_hash, state, http_status, result, detail, started)
             VALUES (?1, ?2, ?3, ?4, 'running', 202, ?5, ?6, ?7)",
            params![
                result.id,
                result.service,
                result.op.as_str(),
                hash,
                serde_json::to_string(result).unwrap_or_default(),
                serde_json::to_string(detail).unwrap_or_default(),
                result.started
            ],
        ))?;
        Ok(Begin::New)
    }

    /// Updates what a running operation needs for its recovery.
    pub fn set_detail(&self, id: &str, detail: &Detail) -> Result<(), JournalError> {
        self.wrap(self.conn.execute(
            "UPDATE ops SET detail = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(detail).unwrap_or_default()],
        ))?;
        Ok(())
    }

    /// Records an operation's end.
    pub fn finish(&self, result: &OpResult, http_status: u16) -> Result<(), JournalError> {
        let state = match result.state {
            OpState::Running => "running",
            OpState::Done => "done",
            OpState::Failed => "failed",
        };
        self.wrap(self.conn.execute(
            "UPDATE ops SET state = ?2, http_status = ?3, result = ?4, ended = ?5 WHERE id = ?1",
            params![
                result.id,
                state,
                http_status,
                serde_json::to_string(result).unwrap_or_default(),
                result.ended
            ],
        ))?;
        Ok(())
    }

    /// Operations recorded as running (interrupted by a crash when read at start-up), in the
    /// order they began.
    pub fn running(&self) -> Result<Vec<StoredOp>, JournalError> {
        self.select(
            "SELECT request_hash, http_status, result, detail FROM ops WHERE state = 'running'
             ORDER BY started, rowid",
        )
    }

    fn select(&self, sql: &str) -> Result<Vec<StoredOp>, JournalError> {
        let mut stmt = self.wrap(self.conn.prepare(sql))?;
        let rows = self.wrap(
            stmt.query_map([], Self::row)
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()),
        )?;
        rows.into_iter().map(|r| self.decode(r)).collect()
    }

    /// Every journaled operation, in the order they began (for tools and tests that read what
    /// an agent did).
    pub fn all(&self) -> Result<Vec<StoredOp>, JournalError> {
        self.select(
            "SELECT request_hash, http_status, result, detail FROM ops ORDER BY started, rowid",
        )
    }

    pub fn state(&self, service: &str, key: &str) -> Result<Option<String>, JournalError> {
        self.wrap(
            self.conn
                .query_row(
                    "SELECT value FROM service_state WHERE service = ?1 AND key = ?2",
                    params![service, key],
                    |r| r.get(0),
                )
                .optional(),
        )
    }

    pub fn set_state(&self, service: &str, key: &str, value: &str) -> Result<(), JournalError> {
        self.wrap(self.conn.execute(
            "INSERT INTO service_state (service, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(service, key) DO UPDATE SET value = excluded.value",
            params![service, key, value],
        ))?;
        Ok(())
    }

    /// The journal's `journal_mode` and `synchronous` settings (tests).
    pub fn pragmas(&self) -> Result<(String, i64), JournalError> {
        let mode = self.wrap(
            self.conn
                .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)),
        )?;
        let sync = self.wrap(
            self.conn
                .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)),
        )?;
        Ok((mode, sync))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_model::agent::{OpKind, AGENT_SCHEMA_VERSION};

    fn result(id: &str, state: OpState) -> OpResult {
        OpResult {
            schema_version: AGENT_SCHEMA_VERSION,
            id: id.into(),
            service: "kv".into(),
            op: OpKind::Switch,
            state,
            message: String::new(),
            started: 1,
            ended: None,
            active: None,
            inactive: None,
            snapshot: None,
        }
    }

    #[test]
    fn operations_are_journaled_durably_once() {
        let dir = std::env::temp_dir().join(format!("ferry-agent-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let j = Journal::open(&dir).unwrap();
        assert_eq!(j.pragmas().unwrap(), ("wal".to_string(), 2));
        let detail = Detail {
            from: Some("a".into()),
            to: Some("b".into()),
            pre_snapshot: None,
        };
        assert!(matches!(
            j.begin("h1", &result("x", OpState::Running), &detail)
                .unwrap(),
            Begin::New
        ));
        assert!(matches!(
            j.begin("h2", &result("x", OpState::Running), &detail).unwrap(),
            Begin::Seen(op) if op.request_hash == "h1" && op.detail == detail
        ));
        drop(j);
        let j = Journal::open(&dir).unwrap();
        let running = j.running().unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].detail, detail);
        j.finish(&result("x", OpState::Done), 200).unwrap();
        assert!(j.running().unwrap().is_empty());
        assert_eq!(j.get("x").unwrap().unwrap().result.state, OpState::Done);
        j.set_state("kv", "role", "backup").unwrap();
        j.set_state("kv", "role", "primary").unwrap();
        assert_eq!(j.state("kv", "role").unwrap().as_deref(), Some("primary"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
