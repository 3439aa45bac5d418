//! The journal: every run, every step event, every operator answer and approval, and the
//! state a driver keeps, in SQLite (WAL, `synchronous=FULL`), so that a `kill -9` at any moment
//! loses nothing that was reported.
//!
//! The executor writes a `started` event before a step's action begins and an end event
//! (`done`, `failed` or `skipped`) after it ends. A step whose last event is `started` was
//! interrupted; the executor asks the driver what happened to it before acting again.
//!
//! A journal file written by an older ferry is upgraded in place when opened, by the schema's
//! versioned migrations (rusqlite_migration, SQLite's `user_version`; see `migrations`). A database that is not a ferry
//! journal (another program's, or not SQLite at all) is refused before anything is written to
//! it. `Journal::open_read_only` reads a journal without writing anything (`ferry status` on a
//! journal it may not write). `Journal::in_memory` keeps the same schema in memory, for
//! rehearsals.

use crate::admission::RunConflicts;
use crate::executor::RollbackScope;
use ferry_model::Plan;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::{HookResult, Migrations, M};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

/// File name of the journal inside the state directory.
pub const JOURNAL_FILE: &str = "journal.sqlite";

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = ".ferry";

/// A run's number in the journal.
pub type RunId = i64;

/// SQLite's `application_id` of a ferry journal (`frry`): set when ferry creates or upgrades
/// one, so that a journal is known for what it is.
pub const APPLICATION_ID: i32 = 0x6672_7279;

/// The lock file held while a new run is admitted (see `admission`).
const ADMISSION_LOCK: &str = "admission.lock";

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
    #[error("journal {path}: cannot bring its schema up to date: {message}")]
    Migration { path: PathBuf, message: String },
    #[error("no run {0} in the journal")]
    NoRun(RunId),
    #[error("run {0}: a rehearsal's journal keeps no plan (its caller holds it)")]
    PlanNotKept(RunId),
    #[error("the journal has no runs")]
    Empty,
    #[error("run {run}: the stored plan cannot be read: {message}")]
    BadPlan { run: RunId, message: String },
    #[error("run {run}: the stored {what} cannot be read: {message}")]
    BadJson {
        run: RunId,
        what: &'static str,
        message: String,
    },
    #[error("run {run} is being carried out by another ferry process (lock {path} is held)")]
    Busy { run: RunId, path: PathBuf },
    #[error("run {run}: cannot lock {path}: {source}")]
    Lock {
        run: RunId,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run {run}: unknown {what} `{value}` in the journal")]
    BadValue {
        run: RunId,
        what: &'static str,
        value: String,
    },
    #[error("{path} is not a ferry journal: it is {what}. ferry changes nothing in it; keep each journal in a state directory of its own (`--state DIR`)")]
    NotAJournal { path: PathBuf, what: String },
    #[error("cannot lock {path}: {source}")]
    Admission {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Conflict(RunConflicts),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
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

/// What a run carries out: the upgrade plan, or a rollback of an earlier run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    #[default]
    Apply,
    Rollback,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Apply => "apply",
            RunKind::Rollback => "rollback",
        }
    }
    fn parse(s: &str) -> Option<RunKind> {
        Some(match s {
            "apply" => RunKind::Apply,
            "rollback" => RunKind::Rollback,
            _ => return None,
        })
    }
}

/// What a new run records besides its plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRun {
    pub kind: RunKind,
    /// The run this one rolls back.
    pub parent: Option<RunId>,
    /// The driver's name (`manual`, `twin`, ...).
    pub driver: String,
    /// The texts the plan was made from, so that a rollback can plan again.
    pub inputs: Option<RunInputs>,
    /// The operator carries the run out whatever the booked window says (`--ignore-window`).
    pub ignore_window: bool,
    /// The operator starts the run although earlier runs on the same nodes are unfinished
    /// (`--supersede`): they are marked as superseded by it.
    #[serde(default)]
    pub supersede: bool,
    /// Who started the run: the operator's name (`--by`, or the OS user), journaled with it.
    #[serde(default)]
    pub by: Option<String>,
}

/// The texts a plan was made from: the site file and every profile the site uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunInputs {
    /// The site's name for messages (its path, or `example:NAME`).
    pub site_name: String,
    pub site_text: String,
    /// Per profile name: the profile's TOML text.
    pub profiles: BTreeMap<String, String>,
    /// The strategy the plan was made with, when one was chosen on the command line.
    #[serde(default)]
    pub strategy: Option<String>,
}

impl RunInputs {
    /// The plan's input hash of these texts: the site, then each profile in name order.
    pub fn input_hash(&self) -> String {
        let mut parts: Vec<(&str, &str)> = vec![("site", self.site_text.as_str())];
        parts.extend(self.profiles.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        ferry_plan::input_hash(&parts)
    }
}

/// One run as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct RunSummary {
    pub id: RunId,
    pub site: String,
    pub input_hash: String,
    pub created: i64,
    pub status: RunStatus,
    pub kind: RunKind,
    /// The run this one rolls back.
    pub parent: Option<RunId>,
    /// The driver the run was started with (empty in journals older than this field).
    pub driver: String,
    /// The rollback the failure policy asked for when the run stopped.
    pub rollback_wanted: Option<RollbackScope>,
    /// Why the run stopped or paused, as the executor said when it last ended.
    pub message: Option<String>,
    /// When the operator chose to carry the run out whatever the booked window says
    /// (`--ignore-window`), seconds since the Unix epoch; `None`: the window is kept.
    pub ignore_window_since: Option<i64>,
    /// The run that was started on the same nodes while this one was unfinished
    /// (`--supersede`): this one no longer holds them.
    pub superseded_by: Option<RunId>,
    /// Who started the run (`--by`, or the OS user); `None` in journals older than this field.
    pub started_by: Option<String>,
}

/// A person's approval of a pause step (`ferry approve STEP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Approval {
    pub step: String,
    pub time: i64,
    /// Who approved: the operator's name (`--by`, or the OS user; `operator` in journals
    /// older than names), or `--approve` for a run that approves every pause.
    pub by: String,
}

/// Held while a process carries out a run; released when the last guard of it is dropped or
/// when the process dies.
pub struct RunLock {
    _file: Option<Rc<std::fs::File>>,
}

/// Held while a new run is admitted: one process at a time decides whether its run may start.
pub struct AdmissionLock {
    _file: Option<std::fs::File>,
}

/// One step of a run, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct StepStatus {
    pub id: String,
    pub state: StepState,
    /// Time of the last `started` event.
    pub started: Option<i64>,
    /// Time of the end event, when the step has ended.
    pub ended: Option<i64>,
    /// Detail of the last event (a failure's reason).
    pub detail: String,
    /// How many times the step was started.
    pub attempts: u32,
    /// Who gave the step's last operator answer (`ferry step`, or typed at the runbook), when
    /// one was given and the journal knows the name.
    #[serde(default)]
    pub answered_by: Option<String>,
    /// Whether that answer was given before the step started (`ferry step ... --early`): its
    /// duration is never learned (`--estimates-from`).
    #[serde(default)]
    pub early: bool,
}

/// Who gave an operator answer, and whether it came before the step started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerGiven {
    /// The operator's name; empty when unknown.
    pub by: String,
    /// Given before the step started (`--early`).
    pub early: bool,
}

/// A step event to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEvent {
    pub step: String,
    pub event: Event,
    pub time: i64,
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

/// The journal of one state directory (or of memory, for rehearsals).
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// The state directory; `None` for an in-memory journal.
    dir: Option<PathBuf>,
    /// An in-memory journal keeps its runs' plans as they are, not as JSON.
    plans: std::cell::RefCell<HashMap<RunId, Plan>>,
    /// An in-memory journal of one rehearsal keeps no copy of its runs' plans: the caller
    /// holds them (`Journal::for_rehearsal`).
    keeps_plans: bool,
    /// What the file has: every table and column of ferry's schema, except in a journal of an
    /// older ferry opened read-only (nothing is upgraded then).
    schema: Schema,
    /// Run locks this handle holds: `lock_run` of a run it holds already shares the lock.
    held: std::cell::RefCell<HashMap<RunId, Weak<std::fs::File>>>,
    /// Driver log entries (key, entry) to write with the next step events.
    staged: std::cell::RefCell<Vec<(String, String)>>,
}

/// The tables and `runs` columns a journal file has.
#[derive(Debug, Clone, Default)]
struct Schema {
    tables: BTreeSet<String>,
    run_columns: BTreeSet<String>,
    /// Opened for reading only: nothing is written.
    read_only: bool,
}

impl Schema {
    fn has(&self, table: &str) -> bool {
        self.tables.contains(table)
    }

    /// The select list of a run's summary: a column this file lacks reads as its default.
    fn run_fields(&self) -> String {
        RUN_FIELDS
            .iter()
            .map(|&(name, default)| {
                if self.run_columns.contains(name) {
                    name.to_string()
                } else {
                    format!("{default} AS {name}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
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
CREATE TABLE IF NOT EXISTS approvals (
    run INTEGER NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    time INTEGER NOT NULL,
    by TEXT NOT NULL DEFAULT 'operator',
    PRIMARY KEY (run, step)
);
CREATE TABLE IF NOT EXISTS driver_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_plans (
    run INTEGER PRIMARY KEY REFERENCES runs(id),
    plan TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS driver_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS driver_log_key ON driver_log(key, seq);
CREATE TABLE IF NOT EXISTS answer_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    answer TEXT NOT NULL,
    time INTEGER NOT NULL,
    by TEXT NOT NULL DEFAULT '',
    early INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS answer_log_run ON answer_log(run, step);
";

/// The `runs` columns of the first ferry journal: a file whose `runs` table has them (and
/// whose `events` table has `EVENT_COLUMNS`) is a journal of an older ferry.
const FIRST_RUN_COLUMNS: [&str; 6] = ["id", "site", "input_hash", "plan", "created", "status"];
const EVENT_COLUMNS: [&str; 5] = ["seq", "run", "step", "event", "time"];

/// Columns added to `runs` before schema versions began: (name, declaration). A journal of
/// that time that lacks one gets it with `ALTER TABLE` in version 1 (`adopt_unversioned`).
const RUN_COLUMNS: [(&str, &str); 9] = [
    ("kind", "TEXT NOT NULL DEFAULT 'apply'"),
    ("parent", "INTEGER"),
    ("driver", "TEXT NOT NULL DEFAULT ''"),
    ("inputs", "TEXT"),
    ("rollback", "TEXT"),
    ("message", "TEXT"),
    ("ignore_window", "INTEGER"),
    ("superseded_by", "INTEGER"),
    ("started_by", "TEXT"),
];

/// The journal's schema versions (SQLite's `user_version`), applied in order by
/// rusqlite_migration; a new version of the schema is a new `M::up` at the end, never an edit
/// of one already released.
///
/// Version 1 is the schema as it stood when versions began. It also adopts the journals
/// written before then (`user_version` 0, each with the `runs` columns of the ferry that wrote
/// it): their missing tables are created and their missing `runs` columns added (`adopt`).
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up_with_hook(SCHEMA, adopt_unversioned)])
}

/// Version 1's hook: the `runs` columns a journal of an older ferry lacks, added with their
/// defaults, and the file marked as a ferry journal (`application_id`).
fn adopt_unversioned(tx: &rusqlite::Transaction) -> HookResult {
    let have: Vec<String> = {
        let mut stmt = tx.prepare("PRAGMA table_info(runs)")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        names
    };
    for (name, decl) in RUN_COLUMNS {
        if !have.iter().any(|h| h == name) {
            tx.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {name} {decl}"))?;
        }
    }
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
    Ok(())
}

/// The columns of a run's summary, in `summary_row`'s order, with the value a journal that
/// lacks one reads.
const RUN_FIELDS: [(&str, &str); 13] = [
    ("id", "NULL"),
    ("site", "''"),
    ("input_hash", "''"),
    ("created", "0"),
    ("status", "''"),
    ("kind", "'apply'"),
    ("parent", "NULL"),
    ("driver", "''"),
    ("rollback", "NULL"),
    ("message", "NULL"),
    ("ignore_window", "NULL"),
    ("superseded_by", "NULL"),
    ("started_by", "NULL"),
];

/// What a database file turned out to be.
enum Found {
    /// No table at all: a journal being created.
    Empty,
    /// A ferry journal (of this ferry or an older one).
    Ferry,
}

/// Reads (without writing anything) what the database at `path` is: a ferry journal, an empty
/// database, or something else (refused).
fn identify(conn: &Connection, path: &Path) -> Result<(Found, Schema), JournalError> {
    let not_a_journal = |what: String| JournalError::NotAJournal {
        path: path.to_path_buf(),
        what,
    };
    let sqlite = |source: rusqlite::Error| match source {
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::NotADatabase => {
            not_a_journal("not an SQLite database".into())
        }
        source => JournalError::Sqlite {
            path: path.to_path_buf(),
            source,
        },
    };
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite)?;
    let mut schema = Schema::default();
    {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(sqlite)?;
        schema.tables = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|it| it.collect::<rusqlite::Result<_>>())
            .map_err(sqlite)?;
    }
    let columns = |table: &str| -> Result<BTreeSet<String>, JournalError> {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .map_err(sqlite)?;
        stmt.query_map([], |r| r.get::<_, String>(1))
            .and_then(|it| it.collect::<rusqlite::Result<_>>())
            .map_err(sqlite)
    };
    schema.run_columns = columns("runs")?;
    let event_columns = columns("events")?;
    let ours = FIRST_RUN_COLUMNS
        .iter()
        .all(|c| schema.run_columns.contains(*c))
        && EVENT_COLUMNS.iter().all(|c| event_columns.contains(*c));
    let user_tables: Vec<&str> = schema
        .tables
        .iter()
        .map(String::as_str)
        .filter(|t| !t.starts_with("sqlite_"))
        .collect();
    if app != 0 && app != APPLICATION_ID {
        return Err(not_a_journal(format!(
            "the SQLite database of another application (application_id {app:#x})"
        )));
    }
    if user_tables.is_empty() && app == 0 {
        return Ok((Found::Empty, schema));
    }
    if ours {
        return Ok((Found::Ferry, schema));
    }
    Err(not_a_journal(if user_tables.is_empty() {
        "an SQLite database marked as a ferry journal, without its tables".into()
    } else {
        format!(
            "an SQLite database with the tables {}",
            user_tables.join(", ")
        )
    }))
}

/// `path` as an SQLite URI (`file:` and the path with `%`, `?` and `#` escaped).
fn sqlite_uri(path: &Path, query: &str) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

impl Journal {
    /// Opens the journal in `state_dir` (created when missing), in WAL mode with
    /// `synchronous=FULL`, upgrading an older schema in place. A file there that is not a
    /// ferry journal is refused (`NotAJournal`) before anything is written to it.
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
        let (_, schema) = identify(&conn, &path)?;
        let mut j = Journal {
            conn,
            path,
            dir: Some(state_dir.to_path_buf()),
            plans: Default::default(),
            keeps_plans: true,
            schema,
            held: Default::default(),
            staged: Default::default(),
        };
        j.wrap(j.conn.busy_timeout(std::time::Duration::from_secs(10)))?;
        j.wrap(
            j.conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)),
        )?;
        j.wrap(
            j.conn
                .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"),
        )?;
        j.migrate()?;
        Ok(j)
    }

    /// Opens the journal in `state_dir` for reading only: nothing is written, not the schema,
    /// not a lock (SQLite's `query_only`). A journal this user may not write, in a directory
    /// that cannot take SQLite's shared-memory file, is read as it is on disk when no
    /// write-ahead log is beside it (every commit is then in the file). For `ferry status` on a
    /// journal it may not write. A journal of an older ferry is read as it is (what it lacks
    /// reads as empty).
    pub fn open_read_only(state_dir: &Path) -> Result<Journal, JournalError> {
        let path = state_dir.join(JOURNAL_FILE);
        let sqlite = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        // Read-write when the file allows it (SQLite falls back to reading otherwise), so
        // that the last connection to close still tidies the write-ahead log away as before.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(sqlite)?;
        let reading = |conn: &Connection| {
            conn.execute_batch("PRAGMA query_only = ON")
                .map_err(sqlite)?;
            identify(conn, &path)
        };
        let found = reading(&conn);
        let cannot_open = |e: &JournalError| {
            matches!(e, JournalError::Sqlite {
                source: rusqlite::Error::SqliteFailure(f, _), ..
            } if matches!(f.code, rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly))
        };
        let wal = state_dir.join(format!("{JOURNAL_FILE}-wal"));
        let (conn, (_, mut schema)) = match found {
            Err(e) if cannot_open(&e) && !wal.exists() => {
                drop(conn);
                let conn = Connection::open_with_flags(
                    sqlite_uri(&path, "immutable=1"),
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_URI
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sqlite)?;
                let found = reading(&conn)?;
                (conn, found)
            }
            found => (conn, found?),
        };
        schema.read_only = true;
        let j = Journal {
            conn,
            path,
            dir: Some(state_dir.to_path_buf()),
            plans: Default::default(),
            keeps_plans: true,
            schema,
            held: Default::default(),
            staged: Default::default(),
        };
        j.wrap(j.conn.busy_timeout(std::time::Duration::from_secs(10)))?;
        Ok(j)
    }

    /// A journal in memory for one rehearsal, whose caller holds the plans it carries out:
    /// as `in_memory`, but it keeps no copy of a run's plan (on a large fleet, as much memory
    /// as the plan itself), so `plan` of its runs is an error (`steps_of` takes the plan).
    pub fn for_rehearsal() -> Result<Journal, JournalError> {
        let mut j = Journal::in_memory()?;
        j.keeps_plans = false;
        Ok(j)
    }

    /// A journal in memory with the same schema, for rehearsals: nothing is written to disk.
    pub fn in_memory() -> Result<Journal, JournalError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| JournalError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let mut j = Journal {
            conn,
            path,
            dir: None,
            plans: Default::default(),
            keeps_plans: true,
            schema: Schema::default(),
            held: Default::default(),
            staged: Default::default(),
        };
        // Nothing to recover from in memory: no rollback journal.
        j.wrap(
            j.conn
                .query_row("PRAGMA journal_mode=OFF", [], |r| r.get::<_, String>(0)),
        )?;
        j.wrap(j.conn.execute_batch("PRAGMA foreign_keys=ON;"))?;
        j.migrate()?;
        Ok(j)
    }

    /// Brings the schema to the latest version with `MIGRATIONS` (rusqlite_migration: the
    /// version is SQLite's `user_version`; see `migrations`), in one `BEGIN IMMEDIATE` transaction: a process
    /// killed meanwhile leaves the file as it was (empty, or the older journal), never half a
    /// journal that `identify` would refuse.
    fn migrate(&mut self) -> Result<(), JournalError> {
        self.conn
            .set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        use rusqlite_migration::{Error as E, MigrationDefinitionError as Ahead};
        migrations()
            .to_latest(&mut self.conn)
            .map_err(|e| match e {
                E::RusqliteError { err, .. } => JournalError::Sqlite {
                    path: self.path.clone(),
                    source: err,
                },
                E::MigrationDefinition(Ahead::DatabaseTooFarAhead) => JournalError::Migration {
                    path: self.path.clone(),
                    message: "it was written by a newer ferry (its schema version is higher than this ferry knows); open it with that ferry".into(),
                },
                e => JournalError::Migration {
                    path: self.path.clone(),
                    message: e.to_string(),
                },
            })?;
        let (_, schema) = identify(&self.conn, &self.path)?;
        self.schema = schema;
        Ok(())
    }

    /// Whether this handle was opened for reading only.
    pub fn is_read_only(&self) -> bool {
        self.schema.read_only
    }

    /// The state directory, for a journal on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Marks `run` as being carried out by this process: a lock file beside the journal, held
    /// until the last guard is dropped or the process ends (even by `kill -9`). Fails with
    /// `Busy` when another process holds it; a run this handle holds already is shared. A
    /// process that merely looks (`run_is_active`) holds it for a moment: that is waited out.
    /// In-memory journals need no lock.
    pub fn lock_run(&self, run: RunId) -> Result<RunLock, JournalError> {
        let Some(dir) = &self.dir else {
            return Ok(RunLock { _file: None });
        };
        if let Some(file) = self.held.borrow().get(&run).and_then(Weak::upgrade) {
            return Ok(RunLock { _file: Some(file) });
        }
        let path = dir.join(format!("run-{run}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| JournalError::Lock {
                run,
                path: path.clone(),
                source,
            })?;
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                // Another process holds it, or looks at it for a moment (`run_is_active`).
                Err(std::fs::TryLockError::WouldBlock) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(4));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(JournalError::Busy { run, path })
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(JournalError::Lock { run, path, source })
                }
            }
        }
        let file = Rc::new(file);
        self.held.borrow_mut().insert(run, Rc::downgrade(&file));
        Ok(RunLock { _file: Some(file) })
    }

    /// Whether a process carries out `run` now (holds its lock): another process, or this
    /// handle itself. A run whose status is `running` but that no process holds was
    /// interrupted. Looks without creating anything (a read-only journal can be asked).
    pub fn run_is_active(&self, run: RunId) -> Result<bool, JournalError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        if self.holds(run) {
            return Ok(true);
        }
        let path = dir.join(format!("run-{run}.lock"));
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Never locked: no process carries it out.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(JournalError::Lock { run, path, source }),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(source)) => {
                Err(JournalError::Lock { run, path, source })
            }
        }
    }

    /// Whether this handle holds the lock of `run`.
    pub fn holds(&self, run: RunId) -> bool {
        self.held
            .borrow()
            .get(&run)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// Waits for, and holds, the state directory's admission lock: one process at a time
    /// decides whether its run may start (`admission`). In-memory journals need none.
    pub fn lock_admission(&self) -> Result<AdmissionLock, JournalError> {
        let Some(dir) = &self.dir else {
            return Ok(AdmissionLock { _file: None });
        };
        let path = dir.join(ADMISSION_LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|source| JournalError::Admission { path, source })?;
        Ok(AdmissionLock { _file: Some(file) })
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

    /// Records a new run of `plan`, status `running`, kind `apply`, without stored inputs.
    pub fn start_run(&self, plan: &Plan, now: i64) -> Result<RunId, JournalError> {
        self.create_run(plan, now, &NewRun::default())
    }

    /// Records a new run of `plan`, status `running`, with its kind, parent, driver and inputs.
    pub fn create_run(&self, plan: &Plan, now: i64, new: &NewRun) -> Result<RunId, JournalError> {
        self.create_run_superseding(plan, now, new, &[])
    }

    /// As `create_run`, marking the runs in `superseded` as superseded by the new one, in the
    /// same commit.
    pub fn create_run_superseding(
        &self,
        plan: &Plan,
        now: i64,
        new: &NewRun,
        superseded: &[RunId],
    ) -> Result<RunId, JournalError> {
        let inputs = new
            .inputs
            .as_ref()
            .map(|i| serde_json::to_string(i).expect("inputs serialise"));
        // One commit: a run is never journaled without its plan.
        let tx = self.wrap(self.conn.unchecked_transaction())?;
        self.wrap(tx.execute(
            "INSERT INTO runs (site, input_hash, plan, created, status, kind, parent, driver, inputs, \
             ignore_window, started_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                plan.site,
                plan.input_hash,
                "",
                now,
                RunStatus::Running.as_str(),
                new.kind.as_str(),
                new.parent,
                new.driver,
                inputs,
                new.ignore_window.then_some(now),
                new.by
            ],
        ))?;
        let run = tx.last_insert_rowid();
        // The plan lives in a table of its own, so that the run's row stays small (a status
        // update rewrites the whole row).
        if self.dir.is_none() {
            if self.keeps_plans {
                self.plans.borrow_mut().insert(run, plan.clone());
            }
        } else {
            let json = serde_json::to_string(plan).expect("a plan serialises");
            self.wrap(tx.execute(
                "INSERT INTO run_plans (run, plan) VALUES (?1, ?2)",
                params![run, json],
            ))?;
        }
        for old in superseded {
            self.wrap(tx.execute(
                "UPDATE runs SET superseded_by = ?1 WHERE id = ?2",
                params![run, old],
            ))?;
        }
        self.wrap(tx.commit())?;
        Ok(run)
    }

    /// The texts the run's plan was made from, when they were stored.
    pub fn inputs(&self, run: RunId) -> Result<Option<RunInputs>, JournalError> {
        if !self.schema.run_columns.contains("inputs") {
            self.run(run)?;
            return Ok(None);
        }
        let text: Option<Option<String>> = self.wrap(
            self.conn
                .query_row("SELECT inputs FROM runs WHERE id = ?1", params![run], |r| {
                    r.get(0)
                })
                .optional(),
        )?;
        match text.ok_or(JournalError::NoRun(run))? {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| JournalError::BadJson {
                    run,
                    what: "inputs",
                    message: e.to_string(),
                }),
        }
    }

    /// Records the rollback the failure policy asks for (or clears it).
    pub fn set_rollback_wanted(
        &self,
        run: RunId,
        scope: Option<&RollbackScope>,
    ) -> Result<(), JournalError> {
        let json = scope.map(|s| serde_json::to_string(s).expect("a scope serialises"));
        let n = self.wrap(self.conn.execute(
            "UPDATE runs SET rollback = ?1 WHERE id = ?2",
            params![json, run],
        ))?;
        if n == 0 {
            return Err(JournalError::NoRun(run));
        }
        Ok(())
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

    /// Sets the run's status and why it stopped or paused (`None`: nothing to say, as for a
    /// run under way or complete), in one write.
    pub fn set_outcome(
        &self,
        run: RunId,
        status: RunStatus,
        message: Option<&str>,
    ) -> Result<(), JournalError> {
        let n = self.wrap(self.conn.execute(
            "UPDATE runs SET status = ?1, message = ?2 WHERE id = ?3",
            params![status.as_str(), message, run],
        ))?;
        if n == 0 {
            return Err(JournalError::NoRun(run));
        }
        Ok(())
    }

    /// Records that `run` was superseded by `by`: a run started on its nodes while it was
    /// unfinished (`--supersede`).
    pub fn set_superseded(&self, run: RunId, by: RunId) -> Result<(), JournalError> {
        let n = self.wrap(self.conn.execute(
            "UPDATE runs SET superseded_by = ?1 WHERE id = ?2",
            params![by, run],
        ))?;
        if n == 0 {
            return Err(JournalError::NoRun(run));
        }
        Ok(())
    }

    /// Records that the operator chose, at `now`, to carry the run out whatever the booked
    /// window says (`--ignore-window`). The first such moment is kept.
    pub fn set_ignore_window(&self, run: RunId, now: i64) -> Result<(), JournalError> {
        let n = self.wrap(self.conn.execute(
            "UPDATE runs SET ignore_window = COALESCE(ignore_window, ?1) WHERE id = ?2",
            params![now, run],
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
        self.record_all(
            run,
            &[StepEvent {
                step: step.to_string(),
                event,
                time,
                detail: detail.to_string(),
            }],
        )
    }

    /// Appends step events, in order, in one durable commit (as `record` does each), with the
    /// driver log entries staged since the last one (`stage_driver_log`).
    pub fn record_all(&self, run: RunId, events: &[StepEvent]) -> Result<(), JournalError> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = self.wrap(self.conn.unchecked_transaction())?;
        self.write_staged(&tx)?;
        {
            let mut insert = self.wrap(tx.prepare_cached(
                "INSERT INTO events (run, step, event, time, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            ))?;
            for e in events {
                self.wrap(insert.execute(params![
                    run,
                    e.step,
                    e.event.as_str(),
                    e.time,
                    e.detail
                ]))?;
            }
        }
        for e in events {
            if e.event == Event::Failed {
                self.wrap(tx.execute(
                    "DELETE FROM answers WHERE run = ?1 AND step = ?2",
                    params![run, e.step],
                ))?;
            }
        }
        self.wrap(tx.commit())?;
        self.staged.borrow_mut().clear();
        Ok(())
    }

    /// Keeps an entry for a driver's log under `key`, to be written in the same commit as the
    /// next step events the executor records (one durable commit for both): for a driver whose
    /// log must be durable by the time the executor records what it reported, and need not be
    /// before. A handle that ends without that commit loses them, as a crash would.
    pub fn stage_driver_log(&self, key: &str, entry: String) {
        self.staged.borrow_mut().push((key.to_string(), entry));
    }

    /// Forgets the staged entries of `key` (a driver that ends without them reaching the
    /// journal: what it did after its last commit is lost, as in a crash).
    pub fn discard_staged(&self, key: &str) {
        self.staged.borrow_mut().retain(|(k, _)| k != key);
    }

    fn write_staged(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), JournalError> {
        let staged = self.staged.borrow();
        if staged.is_empty() {
            return Ok(());
        }
        let mut insert =
            self.wrap(tx.prepare_cached("INSERT INTO driver_log (key, entry) VALUES (?1, ?2)"))?;
        for (key, entry) in staged.iter() {
            self.wrap(insert.execute(params![key, entry]))?;
        }
        Ok(())
    }

    /// Every event of a run, in the order written.
    pub fn events(&self, run: RunId) -> Result<Vec<EventRecord>, JournalError> {
        if !self.schema.has("events") {
            return Ok(Vec::new());
        }
        let rows = self.run_rows(
            "SELECT step, event, time, detail FROM events WHERE run = ?1 ORDER BY seq",
            run,
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
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
        if !self.schema.has("runs") {
            return Err(JournalError::NoRun(run));
        }
        let row = self.wrap(
            self.conn
                .query_row(
                    &format!(
                        "SELECT {} FROM runs WHERE id = ?1",
                        self.schema.run_fields()
                    ),
                    params![run],
                    summary_row,
                )
                .optional(),
        )?;
        summary(row.ok_or(JournalError::NoRun(run))?)
    }

    /// The plan a run executes.
    pub fn plan(&self, run: RunId) -> Result<Plan, JournalError> {
        if let Some(p) = self.plans.borrow().get(&run) {
            return Ok(p.clone());
        }
        if !self.keeps_plans {
            return Err(JournalError::PlanNotKept(run));
        }
        // Journals written before plans had their own table keep them in the run's row.
        let query = if self.schema.has("run_plans") {
            "SELECT COALESCE((SELECT plan FROM run_plans WHERE run = runs.id), plan) \
             FROM runs WHERE id = ?1"
        } else {
            "SELECT plan FROM runs WHERE id = ?1"
        };
        let text: Option<String> = self.wrap(
            self.conn
                .query_row(query, params![run], |r| r.get(0))
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
        if !self.schema.has("runs") {
            return Ok(Vec::new());
        }
        let mut stmt = self.wrap(self.conn.prepare(&format!(
            "SELECT {} FROM runs ORDER BY id",
            self.schema.run_fields()
        )))?;
        let rows = self.wrap(
            stmt.query_map([], summary_row)
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()),
        )?;
        rows.into_iter().map(summary).collect()
    }

    /// The newest run.
    pub fn latest_run(&self) -> Result<RunId, JournalError> {
        self.runs()?.last().map(|r| r.id).ok_or(JournalError::Empty)
    }

    /// Per step of the run's plan, in plan order: its state from its last event.
    pub fn steps(&self, run: RunId) -> Result<Vec<StepStatus>, JournalError> {
        let plan = self.plan(run)?;
        self.steps_of(run, &plan)
    }

    /// As `steps`, for a caller that holds the run's plan already.
    pub fn steps_of(&self, run: RunId, plan: &Plan) -> Result<Vec<StepStatus>, JournalError> {
        let mut last: HashMap<String, StepStatus> = HashMap::new();
        for e in self.events(run)? {
            let s = last
                .entry(e.step.clone())
                .or_insert_with(|| pending(&e.step));
            s.state = e.event.into();
            s.detail = e.detail;
            if e.event == Event::Started {
                s.started = Some(e.time);
                s.ended = None;
                s.attempts += 1;
            } else {
                s.ended = Some(e.time);
            }
        }
        let mut given = self.answers_given(run)?;
        Ok(plan
            .steps
            .iter()
            .map(|p| {
                let mut s = last.remove(&p.id).unwrap_or_else(|| pending(&p.id));
                if let Some(g) = given.remove(&p.id) {
                    s.answered_by = (!g.by.is_empty()).then_some(g.by);
                    s.early = g.early;
                }
                s
            })
            .collect())
    }

    /// Stores an operator's answer for a step, replacing an earlier one (given by nobody
    /// named, while the step is under way).
    pub fn answer(
        &self,
        run: RunId,
        step: &str,
        answer: &Answer,
        now: i64,
    ) -> Result<(), JournalError> {
        self.answer_given(run, step, answer, now, &AnswerGiven::default())
    }

    /// Stores an operator's answer for a step, replacing an earlier one, and logs who gave it
    /// and whether it came before the step started, in the same commit.
    pub fn answer_given(
        &self,
        run: RunId,
        step: &str,
        answer: &Answer,
        now: i64,
        given: &AnswerGiven,
    ) -> Result<(), JournalError> {
        let (a, reason) = match answer {
            Answer::Done => ("done", ""),
            Answer::Failed(r) => ("failed", r.as_str()),
            Answer::Skip => ("skip", ""),
        };
        self.run(run)?;
        let tx = self.wrap(self.conn.unchecked_transaction())?;
        self.wrap(tx.execute(
            "INSERT OR REPLACE INTO answers (run, step, answer, reason, time) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run, step, a, reason, now],
        ))?;
        self.wrap(tx.execute(
            "INSERT INTO answer_log (run, step, answer, time, by, early) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, step, a, now, given.by, given.early],
        ))?;
        self.wrap(tx.commit())
    }

    /// Per step of a run: who gave its last operator answer and whether it was early (empty
    /// for a journal older than the answer log).
    pub fn answers_given(&self, run: RunId) -> Result<BTreeMap<String, AnswerGiven>, JournalError> {
        if !self.schema.has("answer_log") {
            return Ok(BTreeMap::new());
        }
        let rows = self.run_rows(
            "SELECT step, by, early FROM answer_log WHERE run = ?1 ORDER BY seq",
            run,
            |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(rows
            .into_iter()
            .map(|(step, by, early)| (step, AnswerGiven { by, early }))
            .collect())
    }

    /// The rows `sql` (a query of one run's rows, the run as `?1`) selects, each read by `row`.
    fn run_rows<T>(
        &self,
        sql: &str,
        run: RunId,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, JournalError> {
        let mut stmt = self.wrap(self.conn.prepare(sql))?;
        self.wrap(
            stmt.query_map(params![run], row)
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()),
        )
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
        row.map(|(a, reason)| parse_answer_row(run, a, reason))
            .transpose()
    }

    /// Records an approval of pause step `step` (replacing an earlier one).
    pub fn approve(&self, run: RunId, step: &str, by: &str, now: i64) -> Result<(), JournalError> {
        self.run(run)?;
        self.wrap(self.conn.execute(
            "INSERT OR REPLACE INTO approvals (run, step, time, by) VALUES (?1, ?2, ?3, ?4)",
            params![run, step, now, by],
        ))?;
        Ok(())
    }

    /// The approval of a pause step, if it has one.
    pub fn approval(&self, run: RunId, step: &str) -> Result<Option<Approval>, JournalError> {
        self.wrap(
            self.conn
                .query_row(
                    "SELECT step, time, by FROM approvals WHERE run = ?1 AND step = ?2",
                    params![run, step],
                    |r| {
                        Ok(Approval {
                            step: r.get(0)?,
                            time: r.get(1)?,
                            by: r.get(2)?,
                        })
                    },
                )
                .optional(),
        )
    }

    /// Every approval of a run, oldest first.
    pub fn approvals(&self, run: RunId) -> Result<Vec<Approval>, JournalError> {
        if !self.schema.has("approvals") {
            return Ok(Vec::new());
        }
        self.run_rows(
            "SELECT step, time, by FROM approvals WHERE run = ?1 ORDER BY time, step",
            run,
            |r| {
                Ok(Approval {
                    step: r.get(0)?,
                    time: r.get(1)?,
                    by: r.get(2)?,
                })
            },
        )
    }

    /// Every operator answer of a run, per step ID.
    pub fn answers(&self, run: RunId) -> Result<BTreeMap<String, Answer>, JournalError> {
        let rows = self.run_rows(
            "SELECT step, answer, reason FROM answers WHERE run = ?1",
            run,
            |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)),
        )?;
        rows.into_iter()
            .map(|(step, a, reason)| Ok((step, parse_answer_row(run, a, reason)?)))
            .collect()
    }

    /// Stores a driver's state under `key`, replacing the old value, in one transaction.
    pub fn put_driver_state(&self, key: &str, text: &str) -> Result<(), JournalError> {
        self.wrap(self.conn.execute(
            "INSERT OR REPLACE INTO driver_state (key, value) VALUES (?1, ?2)",
            params![key, text],
        ))?;
        Ok(())
    }

    /// Stores a driver's state under `key` unless there is one already; `false`: there was
    /// (another process stored it first), and it is kept.
    pub fn put_driver_state_if_absent(&self, key: &str, text: &str) -> Result<bool, JournalError> {
        let n = self.wrap(self.conn.execute(
            "INSERT OR IGNORE INTO driver_state (key, value) VALUES (?1, ?2)",
            params![key, text],
        ))?;
        Ok(n == 1)
    }

    /// Replaces a driver's state under `key` and, in the same commit, forgets the entries of
    /// its log under `key` up to `log_upto` (those the new state includes).
    pub fn checkpoint_driver_state(
        &self,
        key: &str,
        text: &str,
        log_upto: Option<i64>,
    ) -> Result<(), JournalError> {
        let tx = self.wrap(self.conn.unchecked_transaction())?;
        self.wrap(tx.execute(
            "INSERT OR REPLACE INTO driver_state (key, value) VALUES (?1, ?2)",
            params![key, text],
        ))?;
        if let Some(upto) = log_upto {
            self.wrap(tx.execute(
                "DELETE FROM driver_log WHERE key = ?1 AND seq <= ?2",
                params![key, upto],
            ))?;
        }
        self.wrap(tx.commit())
    }

    /// Forgets a driver's state under `key` and its log.
    pub fn delete_driver_state(&self, key: &str) -> Result<(), JournalError> {
        let tx = self.wrap(self.conn.unchecked_transaction())?;
        self.wrap(tx.execute("DELETE FROM driver_state WHERE key = ?1", params![key]))?;
        self.wrap(tx.execute("DELETE FROM driver_log WHERE key = ?1", params![key]))?;
        self.wrap(tx.commit())
    }

    /// Appends an entry to a driver's log under `key`, in one durable commit: what a driver
    /// records as it goes, at a cost that does not grow with what it recorded before.
    pub fn append_driver_log(&self, key: &str, entry: &str) -> Result<(), JournalError> {
        self.wrap(self.conn.execute(
            "INSERT INTO driver_log (key, entry) VALUES (?1, ?2)",
            params![key, entry],
        ))?;
        Ok(())
    }

    /// A driver's log under `key`, oldest first: (sequence number, entry).
    pub fn driver_log(&self, key: &str) -> Result<Vec<(i64, String)>, JournalError> {
        if !self.schema.has("driver_log") {
            return Ok(Vec::new());
        }
        let mut stmt = self.wrap(
            self.conn
                .prepare_cached("SELECT seq, entry FROM driver_log WHERE key = ?1 ORDER BY seq"),
        )?;
        self.wrap(
            stmt.query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()),
        )
    }

    /// A driver's state stored under `key`.
    pub fn driver_state(&self, key: &str) -> Result<Option<String>, JournalError> {
        if !self.schema.has("driver_state") {
            return Ok(None);
        }
        self.wrap(
            self.conn
                .query_row(
                    "SELECT value FROM driver_state WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional(),
        )
    }

    /// Observed durations of done steps, per (profile, action): the seconds from a step's last
    /// `started` event to its `done` event, in every run of the journal, sorted. A step's
    /// profile is its cluster's in the run's plan; skipped and failed attempts do not count,
    /// nor steps answered before they started (`ferry step ... --early`).
    pub fn durations(&self) -> Result<BTreeMap<(String, String), Vec<u64>>, JournalError> {
        let mut stmt = self.wrap(self.conn.prepare(
            "SELECT run, step, event, time FROM events WHERE event IN ('started', 'done') \
             ORDER BY run, seq",
        ))?;
        let rows = self.wrap(
            stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()),
        )?;
        // Per run: step ID -> seconds it took to be done.
        let mut per_run: BTreeMap<RunId, Vec<(String, u64)>> = BTreeMap::new();
        let mut started: HashMap<(RunId, String), i64> = HashMap::new();
        for (run, step, event, time) in rows {
            if event == "started" {
                started.insert((run, step), time);
            } else if let Some(t0) = started.remove(&(run, step.clone())) {
                per_run
                    .entry(run)
                    .or_default()
                    .push((step, time.saturating_sub(t0).max(0) as u64));
            }
        }
        let mut out: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        for (run, done) in per_run {
            // A step answered before it started took no time of its own: not learned.
            let early: BTreeSet<String> = self
                .answers_given(run)?
                .into_iter()
                .filter(|(_, g)| g.early)
                .map(|(s, _)| s)
                .collect();
            let done: Vec<(String, u64)> = done
                .into_iter()
                .filter(|(s, _)| !early.contains(s))
                .collect();
            let plan = self.plan(run)?;
            let profile_of: HashMap<&str, &str> = plan
                .clusters
                .iter()
                .map(|c| (c.name.as_str(), c.profile.as_str()))
                .collect();
            let steps: HashMap<&str, &ferry_model::PlannedStep> = plan
                .steps
                .iter()
                .chain(&plan.rollback)
                .map(|s| (s.id.as_str(), s))
                .collect();
            for (id, secs) in done {
                let Some(s) = steps.get(id.as_str()) else {
                    continue;
                };
                let Some(profile) = profile_of.get(s.cluster.as_str()) else {
                    continue;
                };
                out.entry((profile.to_string(), s.action.clone()))
                    .or_default()
                    .push(secs);
            }
        }
        for v in out.values_mut() {
            v.sort_unstable();
        }
        Ok(out)
    }
}

/// The median of each list of observed seconds: the estimates `ferry plan --estimates-from`
/// uses. Empty lists are left out.
pub fn medians(
    durations: &BTreeMap<(String, String), Vec<u64>>,
) -> BTreeMap<(String, String), u64> {
    durations
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let mut v = v.clone();
            v.sort_unstable();
            let m = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]).div_ceil(2)
            };
            (k.clone(), m)
        })
        .collect()
}

/// The fewest observed durations of one (profile, action) from which their spread is learned;
/// with fewer, the twin keeps the profile's `duration_spread`.
pub const MIN_SPREAD_SAMPLES: usize = 5;

/// The spread of each list of observed seconds with at least [`MIN_SPREAD_SAMPLES`] and a
/// median above zero: `[low, high]`, factors of the median (the estimate `medians` gives) that
/// the twin draws the step's duration between, half of the draws uniformly below the median,
/// half above, as it does with a profile's `duration_spread`. Each end is the unbiased estimate
/// of a uniform draw's far end from the `k` observations on its side: `1 - (1 - min/median) ×
/// (k + 1) / k` below, `1 + (max/median - 1) × (k + 1) / k` above (1 when no observation lies
/// on that side), kept within 0 to 100 like `duration_spread`.
pub fn spreads(
    durations: &BTreeMap<(String, String), Vec<u64>>,
) -> BTreeMap<(String, String), [f64; 2]> {
    let medians = medians(durations);
    durations
        .iter()
        .filter(|(_, v)| v.len() >= MIN_SPREAD_SAMPLES)
        .filter_map(|(k, v)| {
            let m = *medians.get(k)? as f64;
            if m <= 0.0 {
                return None;
            }
            let below: Vec<f64> = v
                .iter()
                .map(|&d| d as f64 / m)
                .filter(|f| *f < 1.0)
                .collect();
            let above: Vec<f64> = v
                .iter()
                .map(|&d| d as f64 / m)
                .filter(|f| *f > 1.0)
                .collect();
            let widen = |n: usize| (n as f64 + 1.0) / n as f64;
            let low = below
                .iter()
                .copied()
                .reduce(f64::min)
                .map_or(1.0, |min| 1.0 - (1.0 - min) * widen(below.len()));
            let high = above
                .iter()
                .copied()
                .reduce(f64::max)
                .map_or(1.0, |max| 1.0 + (max - 1.0) * widen(above.len()));
            Some((k.clone(), [low.clamp(0.0, 1.0), high.clamp(1.0, 100.0)]))
        })
        .collect()
}

fn parse_answer_row(run: RunId, a: String, reason: String) -> Result<Answer, JournalError> {
    Ok(match a.as_str() {
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
    })
}

fn pending(id: &str) -> StepStatus {
    StepStatus {
        id: id.to_string(),
        state: StepState::Pending,
        started: None,
        ended: None,
        detail: String::new(),
        attempts: 0,
        answered_by: None,
        early: false,
    }
}

type SummaryRow = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SummaryRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn summary(row: SummaryRow) -> Result<RunSummary, JournalError> {
    let (
        id,
        site,
        input_hash,
        created,
        status,
        kind,
        parent,
        driver,
        rollback,
        message,
        ignore_window_since,
        superseded_by,
        started_by,
    ) = row;
    let st = RunStatus::parse(&status).ok_or(JournalError::BadValue {
        run: id,
        what: "run status",
        value: status,
    })?;
    let kind = RunKind::parse(&kind).ok_or(JournalError::BadValue {
        run: id,
        what: "run kind",
        value: kind,
    })?;
    let rollback_wanted = rollback
        .map(|t| {
            serde_json::from_str(&t).map_err(|e| JournalError::BadJson {
                run: id,
                what: "rollback scope",
                message: e.to_string(),
            })
        })
        .transpose()?;
    Ok(RunSummary {
        id,
        site,
        input_hash,
        created,
        status: st,
        kind,
        parent,
        driver,
        rollback_wanted,
        message,
        ignore_window_since,
        superseded_by,
        started_by,
    })
}
