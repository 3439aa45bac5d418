//! The journal: every run, every step event and every operator answer, in SQLite (WAL,
//! `synchronous=FULL`), so that a `kill -9` at any moment loses nothing that was reported.
//!
//! The executor writes a `started` event before a step's action begins and an end event
//! (`done`, `failed` or `skipped`) after it ends. A step whose last event is `started` was
//! interrupted; the executor asks the driver what happened to it before acting again.

use ferry_model::Plan;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the journal inside the state directory.
pub const JOURNAL_FILE: &str = "journal.sqlite";

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = ".ferry";

/// A run's number in the journal.
pub type RunId = i64;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no run {0} in the journal")]
    NoRun(RunId),
    #[error("the journal has no runs")]
    Empty,
    #[error("run {run}: the stored plan cannot be read: {message}")]
    BadPlan { run: RunId, message: String },
    #[error("run {run}: unknown {what} `{value}` in the journal")]
    BadValue {
        run: RunId,
        what: &'static str,
        value: String,
    },
}

/// What happened to a step, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Started,
    Done,
    Failed,
    Skipped,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Done => "done",
            Event::Failed => "failed",
            Event::Skipped => "skipped",
        }
    }
    fn parse(s: &str) -> Option<Event> {
        Some(match s {
            "started" => Event::Started,
            "done" => Event::Done,
            "failed" => Event::Failed,
            "skipped" => Event::Skipped,
            _ => return None,
        })
    }
}

/// A step's state, derived from its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
    /// Done or skipped: steps after it may start.
    pub fn is_settled(self) -> bool {
        matches!(self, StepState::Done | StepState::Skipped)
    }
}

impl From<Event> for StepState {
    fn from(e: Event) -> Self {
        match e {
            Event::Started => StepState::Running,
            Event::Done => StepState::Done,
            Event::Failed => StepState::Failed,
            Event::Skipped => StepState::Skipped,
        }
    }
}

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Being executed, or interrupted (a crash leaves this status).
    Running,
    /// Stopped at a pause point; `resume` continues.
    Paused,
    /// Stopped before a step that would not end inside the window, or on a driver error.
    Stopped,
    /// A step failed and the failure policy stopped the run.
    Failed,
    /// Every step is done or skipped.
    Complete,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Complete => "complete",
        }
    }
    fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "paused" => RunStatus::Paused,
            "stopped" => RunStatus::Stopped,
            "failed" => RunStatus::Failed,
            "complete" => RunStatus::Complete,
            _ => return None,
        })
    }
}

/// An operator's answer for a step (written by `ferry step` or typed at the runbook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", content = "reason", rename_all = "lowercase")]
pub enum Answer {
    Done,
    Failed(String),
    Skip,
}

/// One run as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: RunId,
    pub site: String,
    pub input_hash: String,
    pub created: i64,
    pub status: RunStatus,
}

/// One step of a run, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    pub id: String,
    pub state: StepState,
    /// Time of the last `started` event.
    pub started: Option<i64>,
    /// Time of the end event, when the step has ended.
    pub ended: Option<i64>,
    /// Detail of the last event (a failure's reason).
    pub detail: String,
}

/// One journaled event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub step: String,
    pub event: Event,
    pub time: i64,
    pub detail: String,
}

/// The journal of one state directory.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    plan TEXT NOT NULL,
    created INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    event TEXT NOT NULL,
    time INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_run_step ON events(run, step);
CREATE TABLE IF NOT EXISTS answers (
    run INTEGER NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    answer TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    time INTEGER NOT NULL,
    PRIMARY KEY (run, step)
);
";

impl Journal {
    /// Opens the journal in `state_dir` (created when missing), in WAL mode with
    /// `synchronous=FULL`.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(state_dir).map_err(|source| JournalError::Dir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(JOURNAL_FILE);
        let conn = Connection::open(&path).map_err(|source| JournalError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let j = Journal { conn, path };
        j.wrap(j.conn.busy_timeout(std::time::Duration::from_secs(10)))?;
        j.wrap(
            j.conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)),
        )?;
        j.wrap(
            j.conn
                .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"),
        )?;
        j.wrap(j.conn.execute_batch(SCHEMA))?;
        Ok(j)
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn wrap<T>(&self, r: rusqlite::Result<T>) -> Result<T, JournalError> {
        r.map_err(|source| JournalError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// The connection's `journal_mode` and `synchronous` settings (`wal`, 2 for FULL).
    pub fn durability(&self) -> Result<(String, i64), JournalError> {
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

    /// Records a new run of `plan`, status `running`.
    pub fn start_run(&self, plan: &Plan, now: i64) -> Result<RunId, JournalError> {
        let json = serde_json::to_string(plan).expect("a plan serialises");
        self.wrap(self.conn.execute(
            "INSERT INTO runs (site, input_hash, plan, created, status) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![plan.site, plan.input_hash, json, now, RunStatus::Running.as_str()],
        ))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_status(&self, run: RunId, status: RunStatus) -> Result<(), JournalError> {
        let n = self.wrap(self.conn.execute(
            "UPDATE runs SET status = ?1 WHERE id = ?2",
            params![status.as_str(), run],
        ))?;
        if n == 0 {
            return Err(JournalError::NoRun(run));
        }
        Ok(())
    }

    /// Appends a step event. An end event `failed` also clears the step's operator answer,
    /// so that a retry waits for a new one.
    pub fn record(
        &self,
        run: RunId,
        step: &str,
        event: Event,
        time: i64,
        detail: &str,
    ) -> Result<(), JournalError> {
        let tx = self.wrap(self.conn.unchecked_transaction())?;
        self.wrap(tx.execute(
            "INSERT INTO events (run, step, event, time, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run, step, event.as_str(), time, detail],
        ))?;
        if event == Event::Failed {
            self.wrap(tx.execute(
                "DELETE FROM answers WHERE run = ?1 AND step = ?2",
                params![run, step],
            ))?;
        }
        self.wrap(tx.commit())
    }

    /// Every event of a run, in the order written.
    pub fn events(&self, run: RunId) -> Result<Vec<EventRecord>, JournalError> {
        let mut stmt =
            self.wrap(self.conn.prepare(
                "SELECT step, event, time, detail FROM events WHERE run = ?1 ORDER BY seq",
            ))?;
        let rows = self.wrap(
            stmt.query_map(params![run], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()),
        )?;
        rows.into_iter()
            .map(|(step, ev, time, detail)| {
                let event = Event::parse(&ev).ok_or(JournalError::BadValue {
                    run,
                    what: "event",
                    value: ev,
                })?;
                Ok(EventRecord {
                    step,
                    event,
                    time,
                    detail,
                })
            })
            .collect()
    }

    /// The run's summary.
    pub fn run(&self, run: RunId) -> Result<RunSummary, JournalError> {
        let row = self.wrap(
            self.conn
                .query_row(
                    "SELECT id, site, input_hash, created, status FROM runs WHERE id = ?1",
                    params![run],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )
                .optional(),
        )?;
        let (id, site, input_hash, created, status) = row.ok_or(JournalError::NoRun(run))?;
        summary(id, site, input_hash, created, status)
    }

    /// The plan a run executes.
    pub fn plan(&self, run: RunId) -> Result<Plan, JournalError> {
        let text: Option<String> = self.wrap(
            self.conn
                .query_row("SELECT plan FROM runs WHERE id = ?1", params![run], |r| {
                    r.get(0)
                })
                .optional(),
        )?;
        let text = text.ok_or(JournalError::NoRun(run))?;
        serde_json::from_str(&text).map_err(|e| JournalError::BadPlan {
            run,
            message: e.to_string(),
        })
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>, JournalError> {
        let mut stmt = self.wrap(
            self.conn
                .prepare("SELECT id, site, input_hash, created, status FROM runs ORDER BY id"),
        )?;
        let rows = self.wrap(
            stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()),
        )?;
        rows.into_iter()
            .map(|(id, site, hash, created, status)| summary(id, site, hash, created, status))
            .collect()
    }

    /// The newest run.
    pub fn latest_run(&self) -> Result<RunId, JournalError> {
        self.runs()?.last().map(|r| r.id).ok_or(JournalError::Empty)
    }

    /// Per step of the run's plan, in plan order: its state from its last event.
    pub fn steps(&self, run: RunId) -> Result<Vec<StepStatus>, JournalError> {
        let plan = self.plan(run)?;
        let mut last: std::collections::HashMap<String, StepStatus> = Default::default();
        for e in self.events(run)? {
            let s = last.entry(e.step.clone()).or_insert_with(|| StepStatus {
                id: e.step.clone(),
                state: StepState::Pending,
                started: None,
                ended: None,
                detail: String::new(),
            });
            s.state = e.event.into();
            s.detail = e.detail;
            if e.event == Event::Started {
                s.started = Some(e.time);
                s.ended = None;
            } else {
                s.ended = Some(e.time);
            }
        }
        Ok(plan
            .steps
            .iter()
            .map(|p| {
                last.remove(&p.id).unwrap_or(StepStatus {
                    id: p.id.clone(),
                    state: StepState::Pending,
                    started: None,
                    ended: None,
                    detail: String::new(),
                })
            })
            .collect())
    }

    /// Stores an operator's answer for a step, replacing an earlier one.
    pub fn answer(
        &self,
        run: RunId,
        step: &str,
        answer: &Answer,
        now: i64,
    ) -> Result<(), JournalError> {
        let (a, reason) = match answer {
            Answer::Done => ("done", ""),
            Answer::Failed(r) => ("failed", r.as_str()),
            Answer::Skip => ("skip", ""),
        };
        self.run(run)?;
        self.wrap(self.conn.execute(
            "INSERT OR REPLACE INTO answers (run, step, answer, reason, time) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run, step, a, reason, now],
        ))?;
        Ok(())
    }

    /// The operator's answer for a step, if any.
    pub fn answer_for(&self, run: RunId, step: &str) -> Result<Option<Answer>, JournalError> {
        let row: Option<(String, String)> = self.wrap(
            self.conn
                .query_row(
                    "SELECT answer, reason FROM answers WHERE run = ?1 AND step = ?2",
                    params![run, step],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional(),
        )?;
        match row {
            None => Ok(None),
            Some((a, reason)) => Ok(Some(match a.as_str() {
                "done" => Answer::Done,
                "failed" => Answer::Failed(reason),
                "skip" => Answer::Skip,
                _ => {
                    return Err(JournalError::BadValue {
                        run,
                        what: "answer",
                        value: a,
                    })
                }
            })),
        }
    }
}

fn summary(
    id: RunId,
    site: String,
    input_hash: String,
    created: i64,
    status: String,
) -> Result<RunSummary, JournalError> {
    let st = RunStatus::parse(&status).ok_or(JournalError::BadValue {
        run: id,
        what: "run status",
        value: status,
    })?;
    Ok(RunSummary {
        id,
        site,
        input_hash,
        created,
        status: st,
    })
}
