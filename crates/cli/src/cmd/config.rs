//! `ferry config [show]`: the effective defaults — each setting's value and where it came
//! from (a flag, the environment, a configuration file, or ferry's own default).

use crate::args::{FormatFlag, Global, StateDir};
use crate::config::{Chosen, KEYS};
use crate::load::write_out;
use anyhow::Result;
use clap::parser::ValueSource;
use std::process::ExitCode;

/// Show the effective settings and where each came from.
///
/// Precedence: a flag, then the environment (`FERRY_STATE`), then the user's configuration
/// file ($XDG_CONFIG_HOME/ferry/config.toml, by default ~/.config/ferry/config.toml), then the
/// system's (/etc/ferry/config.toml), then ferry's own default. `ferry --config FILE` (or
/// `FERRY_CONFIG`) reads that one file instead of both. See docs/config.md.
///
/// JSON: `files` (the configuration files read), `chosen_by` (`default`, `--config` or
/// `FERRY_CONFIG`), and `settings`, by key (`state`, `format`, `runs`, `server_url`,
/// `agent.ca`, `agent.cert`, `agent.key`, `agent.token_file`, `ssh.user`, `ssh.identity`,
/// `ssh.known_hosts`), each with `value` (null when unset) and `source` (`flag`,
/// `env FERRY_STATE`, the configuration file's path, or `default`).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    show: ShowArgs,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Show the effective settings and where each came from (the default action).
    Show(ShowArgs),
}

#[derive(clap::Args)]
struct ShowArgs {
    #[command(flatten)]
    state: StateDir,
    #[command(flatten)]
    format: FormatFlag,
}

/// One setting as `ferry config show` prints it.
#[derive(serde::Serialize)]
struct Shown {
    value: Option<String>,
    source: String,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let show = match a.action {
        Some(Action::Show(s)) => s,
        None => a.show,
    };
    let s = &g.settings;
    let mut settings = Vec::new();
    for key in KEYS {
        let from_file = s.values.get(key.name);
        let shown = if key.name == "state" {
            let value = Some(show.state.state.display().to_string());
            let source = match s.state_source {
                Some(ValueSource::CommandLine) => "flag".to_string(),
                Some(ValueSource::EnvVariable) => "env FERRY_STATE".to_string(),
                _ => match from_file {
                    Some(f) => f.file.display().to_string(),
                    None => "default".to_string(),
                },
            };
            Shown { value, source }
        } else {
            match from_file {
                Some(f) => Shown {
                    value: Some(f.value.clone()),
                    source: f.file.display().to_string(),
                },
                None => Shown {
                    value: key.builtin.map(str::to_string),
                    source: "default".to_string(),
                },
            }
        };
        settings.push((key.name, shown));
    }
    let chosen_by = match s.chosen {
        Chosen::Default => "default",
        Chosen::Flag => "--config",
        Chosen::Env => "FERRY_CONFIG",
    };
    let files: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
    let text = if show.format.json() {
        serde_json::to_string_pretty(&serde_json::json!({
            "files": files,
            "chosen_by": chosen_by,
            "settings": settings.iter().map(|(k, v)| (k.to_string(), v)).collect::<std::collections::BTreeMap<_, _>>(),
        }))? + "\n"
    } else {
        let mut t = String::new();
        if files.is_empty() {
            t.push_str(&format!(
                "configuration files: none ({} and {} do not exist)\n",
                crate::config::user_file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.config/ferry/config.toml".into()),
                crate::config::SYSTEM_FILE
            ));
        } else {
            t.push_str(&format!(
                "configuration files ({}; the last one read wins): {}\n",
                match s.chosen {
                    Chosen::Default => "the system's, then the user's",
                    Chosen::Flag => "--config",
                    Chosen::Env => "FERRY_CONFIG",
                },
                files.join(", ")
            ));
        }
        t.push('\n');
        for (name, shown) in &settings {
            t.push_str(&format!(
                "{name:18} {:40} {}\n",
                shown.value.as_deref().unwrap_or("-"),
                shown.source
            ));
        }
        t
    };
    write_out(None, &text)?;
    Ok(ExitCode::SUCCESS)
}
