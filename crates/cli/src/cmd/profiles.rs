//! `ferry profiles list|show NAME|check FILE...`: the profiles ferry knows (built-in and
//! `--profiles DIR`), one's TOML source, and the validation of profile files.

use crate::args::{FormatFlag, Global};
use crate::exit::bad;
use crate::load::{load_profiles, read, render_diag, write_out};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// List profiles, show one, or validate profile files.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<ProfilesAction>,
}

#[derive(Subcommand)]
enum ProfilesAction {
    /// Names and titles of every loaded profile. JSON: `profiles`, each `name`, `title` and
    /// `origin` (`built-in` or the file it was read from).
    List {
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Print a profile's TOML source. JSON: `name`, `title`, `origin` and `text`.
    Show {
        name: String,
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Validate profile files without loading a site. JSON: `checked`, each `file` and `ok`.
    Check {
        files: Vec<PathBuf>,
        #[command(flatten)]
        format: FormatFlag,
    },
}

/// A profile, as `--format json` gives it.
#[derive(serde::Serialize)]
struct ProfileEntry<'a> {
    name: &'a str,
    title: &'a str,
    origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

fn entry(p: &ferry_profiles::LoadedProfile, text: bool) -> ProfileEntry<'_> {
    ProfileEntry {
        name: &p.profile.profile.name,
        title: &p.profile.profile.title,
        origin: p.origin.to_string(),
        text: text.then_some(p.text.as_str()),
    }
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let set = load_profiles(&g.profiles)?;
    let json = |v: serde_json::Value| write_out(None, &(serde_json::to_string_pretty(&v)? + "\n"));
    match a.action.unwrap_or(ProfilesAction::List {
        format: FormatFlag::default(),
    }) {
        ProfilesAction::List { format } if format.json() => {
            let profiles: Vec<ProfileEntry> = set.iter().map(|p| entry(p, false)).collect();
            json(serde_json::json!({ "profiles": profiles }))?;
        }
        ProfilesAction::List { .. } => {
            let mut text = String::new();
            for p in set.iter() {
                text.push_str(&format!(
                    "{:20} {}  [{}]\n",
                    p.profile.profile.name, p.profile.profile.title, p.origin
                ));
            }
            write_out(None, &text)?;
        }
        ProfilesAction::Show { name, format } => {
            let p = set.get(&name).ok_or_else(|| {
                bad(format!(
                    "no profile `{name}`; profiles: {}",
                    set.names().join(", ")
                ))
            })?;
            if format.json() {
                json(serde_json::to_value(entry(p, true))?)?;
            } else {
                write_out(None, &p.text)?;
            }
        }
        ProfilesAction::Check { files, format } => {
            let mut checked = Vec::new();
            for f in files {
                let text = read(&f)?;
                ferry_profiles::load_profile(&f.display().to_string(), &text)
                    .map_err(|e| bad(render_diag(e)))?;
                if !format.json() {
                    println!("{}: ok", f.display());
                }
                checked.push(serde_json::json!({ "file": f.display().to_string(), "ok": true }));
            }
            if format.json() {
                json(serde_json::json!({ "checked": checked }))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
