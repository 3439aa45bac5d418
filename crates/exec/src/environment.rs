//! Failures of the environment rather than of the input or of ferry: a full disk, a damaged
//! journal, a state directory that cannot be written. The command line reports them with
//! their own exit code and says what to do.

use crate::journal::JournalError;
use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong around ferry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The disk holding the journal is full.
    DiskFull,
    /// The journal file is damaged (a corrupted page, not a database, unreadable contents).
    Damaged,
    /// Reading or writing failed otherwise (permissions, a read-only or failing disk, a lock).
    Io,
}

/// An environment failure, with the file it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFailure {
    pub kind: FailureKind,
    /// The journal or state directory (empty when unknown).
    pub path: PathBuf,
    /// The underlying error, as the system or SQLite said it.
    pub detail: String,
    /// Whether `path` is the journal (or its state directory) rather than a file written once.
    pub journal: bool,
}

impl fmt::Display for EnvironmentFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.kind {
            FailureKind::DiskFull if !self.journal => write!(
                f,
                "the disk holding {path} is full ({}): free space there, then run the command again",
                self.detail
            ),
            FailureKind::Damaged | FailureKind::Io if !self.journal => write!(
                f,
                "cannot write {path} ({}): check that its disk is healthy and writable, then run the command again",
                self.detail
            ),
            FailureKind::DiskFull => write!(
                f,
                "the disk holding {path} is full ({}). Nothing after the last journaled event was \
recorded. Free space on that disk, then carry on with `ferry resume` (it asks the driver what \
became of the steps under way)",
                self.detail
            ),
            FailureKind::Damaged => write!(
                f,
                "the journal {path} is damaged ({}), so ferry cannot tell from it what ran. Keep a \
copy of the state directory, check the disk, and find out what the nodes run now (`ferry check \
SITE`, or `ferry check SITE --agents`) before going on; a new run needs a new state directory \
(`--state DIR`)",
                self.detail
            ),
            FailureKind::Io => write!(
                f,
                "cannot use {path} ({}). Check that the state directory is on a healthy disk that \
ferry may write to, then run the command again",
                self.detail
            ),
        }
    }
}

impl std::error::Error for EnvironmentFailure {}

fn failure(kind: FailureKind, path: &Path, detail: impl fmt::Display) -> EnvironmentFailure {
    EnvironmentFailure {
        kind,
        path: path.to_path_buf(),
        detail: detail.to_string(),
        journal: true,
    }
}

/// The environment failure behind a journal error, if it is one. `None` for what the command
/// line asked wrongly (no such run, a run locked by another process).
pub fn journal_failure(e: &JournalError) -> Option<EnvironmentFailure> {
    use rusqlite::ErrorCode as C;
    match e {
        JournalError::Sqlite { path, source } => {
            let kind = match source.sqlite_error_code() {
                Some(C::DiskFull) => FailureKind::DiskFull,
                Some(C::DatabaseCorrupt | C::NotADatabase) => FailureKind::Damaged,
                Some(
                    C::SystemIoFailure
                    | C::CannotOpen
                    | C::ReadOnly
                    | C::PermissionDenied
                    | C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::FileLockingProtocolFailed
                    | C::NoLargeFileSupport,
                ) => FailureKind::Io,
                // Anything else from the journal's own queries means its contents are not
                // what ferry wrote (a column of the wrong type, a row missing).
                _ => FailureKind::Damaged,
            };
            Some(failure(kind, path, source))
        }
        JournalError::Dir { path, source }
        | JournalError::Lock { path, source, .. }
        | JournalError::Admission { path, source } => {
            let kind = if source.kind() == std::io::ErrorKind::StorageFull {
                FailureKind::DiskFull
            } else {
                FailureKind::Io
            };
            Some(failure(kind, path, source))
        }
        JournalError::Migration { path, message } => {
            Some(failure(FailureKind::Damaged, path, message))
        }
        JournalError::BadPlan { .. }
        | JournalError::BadJson { .. }
        | JournalError::BadValue { .. } => Some(failure(
            FailureKind::Damaged,
            Path::new(crate::JOURNAL_FILE),
            e,
        )),
        // What the command line asked wrongly: another program's file, a run on nodes another
        // run holds.
        JournalError::NoRun(_)
        | JournalError::PlanNotKept(_)
        | JournalError::Empty
        | JournalError::Busy { .. }
        | JournalError::NotAJournal { .. }
        | JournalError::Conflict(_) => None,
    }
}

/// The environment failure behind an I/O error writing the file `path`: a full disk, or any
/// other.
pub fn io_failure(path: &Path, e: &std::io::Error) -> EnvironmentFailure {
    let kind = if e.kind() == std::io::ErrorKind::StorageFull {
        FailureKind::DiskFull
    } else {
        FailureKind::Io
    };
    EnvironmentFailure {
        journal: false,
        ..failure(kind, path, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> JournalError {
        JournalError::Sqlite {
            path: PathBuf::from("state/journal.sqlite"),
            source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
        }
    }

    /// `(error, expected kind or None, words the message must hold)`.
    fn check(e: JournalError, kind: Option<FailureKind>, words: &[&str]) {
        let got = journal_failure(&e);
        assert_eq!(got.as_ref().map(|f| f.kind), kind, "{e}");
        if let Some(f) = got {
            let text = f.to_string();
            for w in words {
                assert!(text.contains(w), "{text} lacks {w}");
            }
        }
    }

    #[test]
    fn journal_errors_are_told_apart_with_what_to_do() {
        check(
            sqlite(rusqlite::ffi::SQLITE_FULL),
            Some(FailureKind::DiskFull),
            &["state/journal.sqlite is full", "Free space", "ferry resume"],
        );
        check(
            sqlite(rusqlite::ffi::SQLITE_CORRUPT),
            Some(FailureKind::Damaged),
            &["journal state/journal.sqlite is damaged", "--state DIR"],
        );
        check(
            sqlite(rusqlite::ffi::SQLITE_IOERR),
            Some(FailureKind::Io),
            &["cannot use state/journal.sqlite", "healthy disk"],
        );
        check(JournalError::NoRun(7), None, &[]);
        check(JournalError::Empty, None, &[]);
    }
}
