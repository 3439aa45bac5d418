//! Errors at the command line's edge: bad input (exit 2), an environment failure (4) and
//! anything else, a bug (3), told apart from the error's causes (README, "Exit codes").

/// Bad input: the message is already a rendered diagnostic. Exit code 2.
#[derive(Debug)]
pub struct BadInput(String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

pub fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

// Exit codes (README, "Exit codes"): every code `ferry` can end with, besides 0 and 1.
/// Bad input: a site, profile, plan, faults file, journal entry asked for, or argument.
pub const BAD_INPUT: u8 = 2;
/// A bug in ferry: an error no input should cause, or a panic.
pub const INTERNAL: u8 = 3;
/// The environment failed: a full disk, a damaged journal, a file that cannot be written.
pub const ENVIRONMENT: u8 = 4;

/// The exit code and message of an error that ends a command: bad input (2), an environment
/// failure (4, with what to do), or else an internal error (3).
pub fn classify(e: &anyhow::Error) -> (u8, String) {
    use ferry_exec::environment::{io_failure, journal_failure};
    for cause in e.chain() {
        if let Some(b) = cause.downcast_ref::<BadInput>() {
            return (BAD_INPUT, b.to_string());
        }
        if let Some(f) = cause.downcast_ref::<ferry_exec::environment::EnvironmentFailure>() {
            return (ENVIRONMENT, format!("ferry: {f}"));
        }
        if let Some(j) = journal_error(cause) {
            return match journal_failure(j) {
                Some(f) => (ENVIRONMENT, format!("ferry: {f}")),
                None => (BAD_INPUT, format!("ferry: {j}")),
            };
        }
        if let Some(x) = cause.downcast_ref::<ferry_exec::ExecError>() {
            if let ferry_exec::ExecError::BadPlan(_) = x {
                return (BAD_INPUT, format!("ferry: {x}"));
            }
        }
        if let Some(r) = cause.downcast_ref::<ferry_exec::RollbackError>() {
            return (BAD_INPUT, format!("ferry: {r}"));
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            let f = io_failure(std::path::Path::new("the output"), io);
            return (ENVIRONMENT, format!("ferry: {f}"));
        }
    }
    (
        INTERNAL,
        format!("ferry: internal error (a bug in ferry; please report it with the command that led to it): {e:#}"),
    )
}

/// The journal error an error is, or wraps transparently (so it is no cause of its own).
fn journal_error<'a>(
    cause: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ferry_exec::JournalError> {
    use ferry_exec::{DriverError, ExecError, RehearseError};
    let exec = |x: &'a ExecError| match x {
        ExecError::Journal(j)
        | ExecError::Driver {
            source: DriverError::Journal(j),
            ..
        } => Some(j),
        _ => None,
    };
    if let Some(j) = cause.downcast_ref::<ferry_exec::JournalError>() {
        return Some(j);
    }
    if let Some(x) = cause.downcast_ref::<ExecError>() {
        return exec(x);
    }
    if let Some(DriverError::Journal(j)) = cause.downcast_ref::<DriverError>() {
        return Some(j);
    }
    match cause.downcast_ref::<RehearseError>()? {
        RehearseError::Journal(j) => Some(j),
        RehearseError::Exec(x) => exec(x),
        _ => None,
    }
}
