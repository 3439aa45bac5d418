//! `ferry profiles list|show NAME|check FILE...`: the profiles ferry knows (built-in and
//! `--profiles DIR`), one's TOML source, and the validation of profile files.

use crate::args::Global;
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
    /// Names and titles of every loaded profile.
    List,
    /// Print a profile's TOML source.
    Show { name: String },
    /// Validate profile files without loading a site.
    Check { files: Vec<PathBuf> },
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let set = load_profiles(&g.profiles)?;
    match a.action.unwrap_or(ProfilesAction::List) {
        ProfilesAction::List => {
            let mut text = String::new();
            for p in set.iter() {
                text.push_str(&format!(
                    "{:20} {}  [{}]\n",
                    p.profile.profile.name, p.profile.profile.title, p.origin
                ));
            }
            write_out(None, &text)?;
        }
        ProfilesAction::Show { name } => {
            let p = set.get(&name).ok_or_else(|| {
                bad(format!(
                    "no profile `{name}`; profiles: {}",
                    set.names().join(", ")
                ))
            })?;
            write_out(None, &p.text)?;
        }
        ProfilesAction::Check { files } => {
            for f in files {
                let text = read(&f)?;
                ferry_profiles::load_profile(&f.display().to_string(), &text)
                    .map_err(|e| bad(render_diag(e)))?;
                println!("{}: ok", f.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
