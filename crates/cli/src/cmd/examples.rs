//! `ferry examples [NAME]`: lists the built-in example sites, or prints one to copy and edit,
//! its window booked from a given moment if asked.

use crate::args::Global;
use crate::example_sites;
use crate::exit::bad;
use crate::load::{site_text, write_out};
use anyhow::Result;
use std::process::ExitCode;

/// List the built-in example sites, or print one (to copy and edit).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
ferry examples\n  \
ferry examples ucm-standard > site.toml\n  \
ferry examples linux-ha-pair --window-start now > site.toml   # its window booked from now")]
pub struct Args {
    /// The example to print as a site file; none: list them.
    name: Option<String>,
    /// Book the printed example's window from this moment instead: `now` (rounded down to
    /// the minute, in the example's zone) or an RFC 3339 time with its offset. Its length
    /// is kept.
    #[arg(long, value_name = "WHEN", requires = "name")]
    window_start: Option<String>,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    let text = match a.name {
        Some(name) => {
            let (_, text) = site_text(&format!("example:{name}"))?;
            match a.window_start {
                Some(start) => {
                    example_sites::with_window_start(&name, &text, &start).map_err(bad)?
                }
                None => text,
            }
        }
        None => {
            let mut text = String::new();
            for (name, body) in example_sites::EXAMPLES {
                let title = body
                    .lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .unwrap_or("");
                text.push_str(&format!("{name:28} {title}\n"));
            }
            text
        }
    };
    write_out(None, &text)?;
    Ok(ExitCode::SUCCESS)
}
