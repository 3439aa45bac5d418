//! One module per command: each holds its clap arguments (`Args`, with its own `--format`
//! values where it has them) and its `run`, which `main` dispatches to.

pub mod agent;
pub mod apply;
pub mod approve;
pub mod bench;
pub mod check;
pub mod completions;
pub mod config;
pub mod demo;
pub mod discover;
pub mod examples;
pub mod import;
pub mod man;
pub mod plan;
pub mod profiles;
pub mod rehearse;
pub mod resume;
pub mod rollback;
pub mod schema;
pub mod serve;
pub mod status;
pub mod step;
