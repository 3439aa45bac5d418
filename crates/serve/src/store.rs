//! The storage boundary of `ferry serve`: the `Store` trait (the runs of the journal, and the
//! server's own users, sessions, API tokens and audit log), and `SqliteStore`, its
//! implementation over a state directory: the executor's SQLite journal (`journal.db`, shared
//! with the CLI) and the server's own SQLite file beside it (`serve.db`). A PostgreSQL store
//! implements the same trait.

use crate::auth::Role;
use ferry_exec::{Answer, AnswerGiven, Approval, Journal, RunId, RunSummary, StepStatus};
use ferry_model::Plan;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The server's own SQLite file in the state directory.
pub const SERVE_FILE: &str = "serve.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Journal(#[from] ferry_exec::JournalError),
    #[error("{path}: unknown role `{value}` of user `{user}`")]
    BadRole {
        path: PathBuf,
        user: String,
        value: String,
    },
}

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The argon2id PHC string.
    pub password_hash: String,
    pub created: i64,
}

/// A browser session: the cookie holds `id.secret`; only the secret's SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub secret_sha256: Vec<u8>,
    pub user: String,
    /// The synchronizer token every state-changing form and cookie API call carries.
    pub csrf: String,
    pub created: i64,
    pub expires: i64,
}

/// An API token: `ferry_ID_SECRET`; only the secret's SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub secret_sha256: Vec<u8>,
    pub user: String,
    pub created: i64,
}

/// One line of the audit log: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub time: i64,
    pub by: String,
    pub action: String,
    pub detail: String,
}

impl AuditEntry {
    pub fn new(time: i64, by: &str, action: &str, detail: &str) -> AuditEntry {
        AuditEntry {
            time,
            by: by.into(),
            action: action.into(),
            detail: detail.into(),
        }
    }
}

/// One attempt to deliver a webhook event to one URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDelivery {
    /// The event's `webhook-id` (the same for every attempt).
    pub id: String,
    pub url: String,
    pub event: String,
    /// From 1.
    pub attempt: u32,
    pub time: i64,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// Why the attempt failed, if it did.
    pub error: Option<String>,
}

/// One run as the server shows it: its summary, plan, steps, approvals and answers.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub summary: RunSummary,
    pub plan: Plan,
    pub steps: Vec<StepStatus>,
    pub approvals: Vec<Approval>,
    /// Whether a process carries the run out now.
    pub active: bool,
}

/// What `ferry serve` keeps and reads. Every method is short and blocking.
pub trait Store: Send + Sync {
    /// Adds a user, or sets the role and password of an existing one.
    fn put_user(&self, name: &str, role: Role, hash: &str, now: i64) -> Result<(), StoreError>;
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    fn put_session(&self, session: &Session) -> Result<(), StoreError>;
    fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;
    fn delete_session(&self, id: &str) -> Result<(), StoreError>;
    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The latest `limit` entries, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    fn log_delivery(&self, d: &WebhookDelivery) -> Result<(), StoreError>;
    /// The latest `limit` webhook delivery attempts, newest first.
    fn deliveries(&self, limit: usize) -> Result<Vec<WebhookDelivery>, StoreError>;

    /// The journal's state directory: where the executor carries runs out.
    fn journal_dir(&self) -> &Path;
    fn runs(&self) -> Result<Vec<RunSummary>, StoreError>;
    fn run(&self, run: RunId) -> Result<RunRecord, StoreError>;
    /// Journals `by`'s approval of pause step `step`.
    fn approve(&self, run: RunId, step: &str, by: &str, now: i64) -> Result<(), StoreError>;
    /// Journals `by`'s answer to a runbook step (`early`: before it started).
    fn answer(
        &self,
        run: RunId,
        step: &str,
        answer: &Answer,
        given: &AnswerGiven,
        now: i64,
    ) -> Result<(), StoreError>;
}

/// The state directory's journal and `serve.db`.
pub struct SqliteStore {
    dir: PathBuf,
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// The server's schema, version by version: `user_version` says how many are applied.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    secret_sha256 BLOB NOT NULL,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 BLOB NOT NULL,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created INTEGER NOT NULL
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    by TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
",
    "
CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    time INTEGER NOT NULL,
    status INTEGER,
    error TEXT
);
",
];

impl SqliteStore {
    /// Opens (creating when absent) the journal and `serve.db` of `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        // The journal is created now, so that the runs list of a new directory is empty
        // rather than an error, and `ferry status` finds it.
        Journal::open(dir)?;
        let path = dir.join(SERVE_FILE);
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            conn.execute_batch(&format!(
                "BEGIN; {m} PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))
            .map_err(sql)?;
        }
        // Password hashes and session secrets: readable by the server's user only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(SqliteStore {
            dir: dir.to_path_buf(),
            path,
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    fn journal(&self) -> Result<Journal, StoreError> {
        Ok(Journal::open(&self.dir)?)
    }
}

impl Store for SqliteStore {
    fn put_user(&self, name: &str, role: Role, hash: &str, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO users (name, role, password_hash, created) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET role = excluded.role,
                 password_hash = excluded.password_hash",
                params![name, role.as_str(), hash, now],
            )
            .map(|_| ())
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT name, role, password_hash, created FROM users WHERE name = ?1",
                params![name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        row.map(|(name, role, password_hash, created)| {
            let role = Role::parse(&role).ok_or_else(|| StoreError::BadRole {
                path: self.path.clone(),
                user: name.clone(),
                value: role,
            })?;
            Ok(User {
                name,
                role,
                password_hash,
                created,
            })
        })
        .transpose()
    }

    fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (id, secret_sha256, user, csrf, created, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.id, s.secret_sha256, s.user, s.csrf, s.created, s.expires],
            )
            .map(|_| ())
        })
    }

    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, secret_sha256, user, csrf, created, expires FROM sessions WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Session {
                        id: r.get(0)?,
                        secret_sha256: r.get(1)?,
                        user: r.get(2)?,
                        csrf: r.get(3)?,
                        created: r.get(4)?,
                        expires: r.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE id = ?1", params![id])
                .map(|_| ())
        })
    }

    fn put_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (id, secret_sha256, user, created) VALUES (?1, ?2, ?3, ?4)",
                params![t.id, t.secret_sha256, t.user, t.created],
            )
            .map(|_| ())
        })
    }

    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, secret_sha256, user, created FROM tokens WHERE id = ?1",
                params![id],
                |r| {
                    Ok(TokenRecord {
                        id: r.get(0)?,
                        secret_sha256: r.get(1)?,
                        user: r.get(2)?,
                        created: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit (time, by, action, detail) VALUES (?1, ?2, ?3, ?4)",
                params![e.time, e.by, e.action, e.detail],
            )
            .map(|_| ())
        })
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT time, by, action, detail FROM audit ORDER BY seq DESC LIMIT ?1")?;
            let rows = st.query_map(params![limit as i64], |r| {
                Ok(AuditEntry {
                    time: r.get(0)?,
                    by: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    fn log_delivery(&self, d: &WebhookDelivery) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO webhook_deliveries (id, url, event, attempt, time, status, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![d.id, d.url, d.event, d.attempt, d.time, d.status, d.error],
            )
            .map(|_| ())
        })
    }

    fn deliveries(&self, limit: usize) -> Result<Vec<WebhookDelivery>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, url, event, attempt, time, status, error FROM webhook_deliveries
                 ORDER BY seq DESC LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit as i64], |r| {
                Ok(WebhookDelivery {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    event: r.get(2)?,
                    attempt: r.get(3)?,
                    time: r.get(4)?,
                    status: r.get(5)?,
                    error: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    fn journal_dir(&self) -> &Path {
        &self.dir
    }

    fn runs(&self) -> Result<Vec<RunSummary>, StoreError> {
        Ok(self.journal()?.runs()?)
    }

    fn run(&self, run: RunId) -> Result<RunRecord, StoreError> {
        let j = self.journal()?;
        let summary = j.run(run)?;
        let plan = j.plan(run)?;
        let steps = j.steps_of(run, &plan)?;
        Ok(RunRecord {
            approvals: j.approvals(run)?,
            active: j.run_is_active(run)?,
            summary,
            plan,
            steps,
        })
    }

    fn approve(&self, run: RunId, step: &str, by: &str, now: i64) -> Result<(), StoreError> {
        Ok(self.journal()?.approve(run, step, by, now)?)
    }

    fn answer(
        &self,
        run: RunId,
        step: &str,
        answer: &Answer,
        given: &AnswerGiven,
        now: i64,
    ) -> Result<(), StoreError> {
        Ok(self
            .journal()?
            .answer_given(run, step, answer, now, given)?)
    }
}
