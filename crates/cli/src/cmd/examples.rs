//! `ferry examples [NAME]`: lists the built-in example sites, or prints one to copy and edit,
//! its window booked from a given moment if asked.

use crate::args::{FormatFlag, Global};
use crate::example_sites;
use crate::exit::bad;
use crate::load::{site_text, write_out};
use anyhow::Result;
use std::process::ExitCode;

/// List the built-in example sites, or print one (to copy and edit).
///
/// JSON: the list as `examples` (each `name` and `title`); one example as `name`, `title` and
/// `text` (the site file).
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
    #[command(flatten)]
    format: FormatFlag,
}

/// A built-in example, as `--format json` lists it.
#[derive(serde::Serialize)]
struct Example<'a> {
    name: &'a str,
    title: &'a str,
    /// The site file (when one example is printed).
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// The example's title: its first `# ` comment line.
fn title(body: &str) -> &str {
    body.lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("")
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    let json = a.format.json();
    let text = match a.name {
        Some(name) => {
            let (_, text) = site_text(&format!("example:{name}"))?;
            let text = match a.window_start {
                Some(start) => {
                    example_sites::with_window_start(&name, &text, &start).map_err(bad)?
                }
                None => text,
            };
            if json {
                let example = Example {
                    name: &name,
                    title: title(&text),
                    text: Some(text.clone()),
                };
                serde_json::to_string_pretty(&example)? + "\n"
            } else {
                text
            }
        }
        None if json => {
            let examples: Vec<Example> = example_sites::EXAMPLES
                .iter()
                .map(|(name, body)| Example {
                    name,
                    title: title(body),
                    text: None,
                })
                .collect();
            serde_json::to_string_pretty(&serde_json::json!({ "examples": examples }))? + "\n"
        }
        None => {
            let mut text = String::new();
            for (name, body) in example_sites::EXAMPLES {
                text.push_str(&format!("{name:28} {}\n", title(body)));
            }
            text
        }
    };
    write_out(None, &text)?;
    Ok(ExitCode::SUCCESS)
}
