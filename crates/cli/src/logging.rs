//! Logging: `tracing` events on standard error (never mixed into what a command writes on
//! standard output), filtered by `RUST_LOG` (an `EnvFilter` directive) or else by `-v`/`-q`,
//! as text or JSON lines (`--log-format`). `FERRY_LOG=LEVEL` is read as a deprecated alias of
//! `RUST_LOG=LEVEL`.

use crate::args::{Global, LogFormat};
use tracing_subscriber::EnvFilter;

/// The level `-v`/`-q` give: each `-v` one level more than the default, each `-q` one less
/// (`warn` by default; `info` for the agent daemon, which logs what it does).
fn level(verbose: u8, quiet: u8, daemon: bool) -> &'static str {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let default = if daemon { 2 } else { 1 };
    let at = (default + i16::from(verbose) - i16::from(quiet)).clamp(0, 4);
    LEVELS[at as usize]
}

/// Installs the subscriber for the rest of the process; `daemon`: the agent daemon runs.
pub fn init(g: &Global, daemon: bool) {
    let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let filter = match (from_env("RUST_LOG"), from_env("FERRY_LOG")) {
        (Some(directives), _) => EnvFilter::try_new(&directives).ok(),
        (None, Some(deprecated)) => {
            eprintln!("warning: FERRY_LOG is deprecated: use RUST_LOG={deprecated} (or -v, -q)");
            EnvFilter::try_new(&deprecated).ok()
        }
        (None, None) => None,
    }
    .unwrap_or_else(|| EnvFilter::new(level(g.verbose, g.quiet, daemon)));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    let _ = match g.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
