//! Defaults from configuration files: `$XDG_CONFIG_HOME/ferry/config.toml` (or
//! `~/.config/ferry/config.toml`) over `/etc/ferry/config.toml`, or the one file `--config
//! FILE` or `FERRY_CONFIG` names. Each key gives the default of the options it names, so that
//! flags > environment (`FERRY_STATE`) > the user's file > the system's file > ferry's own
//! defaults: the values found become the clap arguments' defaults (`with_defaults`), and
//! clap's own order (command line, then `env`, then the default) does the rest.
//!
//! An unknown key or a bad value is refused at its file, line and key (exit 2).

use crate::exit::bad;
use crate::load::render_diag;
use anyhow::Result;
use ferry_profiles::diagnostic::{PathSeg, SourceFile};
use ferry_profiles::{InputError, InputErrors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// The system's configuration file.
pub const SYSTEM_FILE: &str = "/etc/ferry/config.toml";

/// What a key's value must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A file or directory: relative to the configuration file's directory.
    Path,
    /// A name.
    Text,
    /// `text` or `json`: the default `--format` of every command that offers it.
    Format,
    /// A whole number from 0 to 100,000.
    Runs,
    /// An `https://` or `http://` URL.
    Url,
}

/// A key of the configuration file and the option it gives the default of.
pub struct Key {
    /// As written in the file: `state`, `agent.ca`.
    pub name: &'static str,
    /// The id of the clap arguments it sets the default of (`None`: nothing reads it yet).
    arg: Option<&'static str>,
    /// Only for these commands (empty: every command with such an argument).
    commands: &'static [&'static str],
    kind: Kind,
    /// ferry's own default, shown by `ferry config show`.
    pub builtin: Option<&'static str>,
}

/// Every key the configuration file may hold.
pub const KEYS: &[Key] = &[
    Key {
        name: "state",
        arg: Some("state"),
        commands: &[],
        kind: Kind::Path,
        builtin: Some(ferry_exec::DEFAULT_STATE_DIR),
    },
    Key {
        name: "format",
        arg: Some("format"),
        commands: &[],
        kind: Kind::Format,
        builtin: Some("text"),
    },
    Key {
        name: "runs",
        arg: Some("runs"),
        commands: &["plan", "check"],
        kind: Kind::Runs,
        builtin: Some("500"),
    },
    Key {
        name: "server_url",
        arg: None,
        commands: &[],
        kind: Kind::Url,
        builtin: None,
    },
    Key {
        name: "agent.ca",
        arg: Some("agent_ca"),
        commands: &[],
        kind: Kind::Path,
        builtin: None,
    },
    Key {
        name: "agent.cert",
        arg: Some("agent_cert"),
        commands: &[],
        kind: Kind::Path,
        builtin: None,
    },
    Key {
        name: "agent.key",
        arg: Some("agent_key"),
        commands: &[],
        kind: Kind::Path,
        builtin: None,
    },
    Key {
        name: "agent.token_file",
        arg: Some("agent_token_file"),
        commands: &[],
        kind: Kind::Path,
        builtin: None,
    },
    Key {
        name: "ssh.user",
        arg: Some("ssh_user"),
        commands: &[],
        kind: Kind::Text,
        builtin: None,
    },
    Key {
        name: "ssh.identity",
        arg: Some("ssh_identity"),
        commands: &[],
        kind: Kind::Path,
        builtin: None,
    },
    Key {
        name: "ssh.known_hosts",
        arg: Some("ssh_known_hosts"),
        commands: &[],
        kind: Kind::Path,
        builtin: None,
    },
];

/// The tables keys are grouped in (`[agent]`, `[ssh]`).
const TABLES: &[&str] = &["agent", "ssh"];

/// A value from a configuration file, and the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromFile {
    pub value: String,
    pub file: PathBuf,
}

/// How the configuration files were chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Chosen {
    /// The user's and the system's files, where they exist.
    #[default]
    Default,
    /// `--config FILE`.
    Flag,
    /// `FERRY_CONFIG`.
    Env,
}

/// The defaults the configuration files give, by key name.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The files read, the one read last (it wins) last.
    pub files: Vec<PathBuf>,
    pub chosen: Chosen,
    pub values: BTreeMap<&'static str, FromFile>,
    /// Where `--state` came from on this command line (for `ferry config show`).
    pub state_source: Option<clap::parser::ValueSource>,
}

/// The user's configuration file: `$XDG_CONFIG_HOME/ferry/config.toml`, or
/// `$HOME/.config/ferry/config.toml`.
pub fn user_file() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(base.join("ferry").join("config.toml"))
}

/// Reads the configuration: the file `explicit` names (`--config`, or `FERRY_CONFIG` when
/// `from_env`), which must exist; else the system's file, then the user's, where they exist.
pub fn load(explicit: Option<PathBuf>, chosen: Chosen) -> Result<Settings> {
    let paths: Vec<PathBuf> = match explicit {
        Some(p) => {
            if !p.is_file() {
                return Err(bad(format!(
                    "{}: no such configuration file ({})",
                    p.display(),
                    match chosen {
                        Chosen::Env => "FERRY_CONFIG",
                        _ => "--config",
                    }
                )));
            }
            vec![p]
        }
        None => [Some(PathBuf::from(SYSTEM_FILE)), user_file()]
            .into_iter()
            .flatten()
            .filter(|p| p.is_file())
            .collect(),
    };
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p)
            .map_err(|e| bad(format!("cannot read {}: {e}", p.display())))?;
        files.push((p, text));
    }
    let mut s = layered(&files).map_err(|e| bad(render_diag(e)))?;
    s.chosen = chosen;
    Ok(s)
}

/// The settings of `files`, read in order: a key of a later file replaces an earlier one's
/// (the system's file first, the user's last). Every problem of a file is reported at once.
pub fn layered(files: &[(PathBuf, String)]) -> Result<Settings, InputErrors> {
    let mut s = Settings::default();
    for (path, text) in files {
        for (name, value) in parse(path, text)? {
            s.values.insert(
                name,
                FromFile {
                    value,
                    file: path.clone(),
                },
            );
        }
        s.files.push(path.clone());
    }
    Ok(s)
}

/// One file's keys and values (paths made absolute against the file's directory).
fn parse(path: &Path, text: &str) -> Result<Vec<(&'static str, String)>, InputErrors> {
    let name = path.display().to_string();
    let src = SourceFile { name: &name, text };
    let fail = |errors: Vec<InputError>| InputErrors {
        file: name.clone(),
        errors,
    };
    let doc = DeTable::parse(text).map_err(|e| fail(vec![src.from_toml(&e)]))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut entries: Vec<(String, std::ops::Range<usize>, &toml::Spanned<DeValue>)> = Vec::new();
    for (k, v) in doc.get_ref() {
        match v.get_ref() {
            DeValue::Table(t) if TABLES.contains(&k.get_ref().as_ref()) => {
                for (k2, v2) in t {
                    entries.push((format!("{}.{}", k.get_ref(), k2.get_ref()), k2.span(), v2));
                }
            }
            _ => entries.push((k.get_ref().to_string(), k.span(), v)),
        }
    }
    // In file order (the document's tables are maps).
    entries.sort_by_key(|(_, span, _)| span.start);
    for (full, key_span, v) in entries {
        let seg: Vec<PathSeg> = full.split('.').map(|p| PathSeg::Key(p.into())).collect();
        let Some(key) = KEYS.iter().find(|k| k.name == full) else {
            let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
            errors.push(src.error(
                Some(key_span),
                &seg,
                format!("unknown key `{full}`"),
                Some(format!(
                    "the keys of ferry's configuration: {}",
                    known.join(", ")
                )),
            ));
            continue;
        };
        match value(key, v.get_ref(), dir) {
            Ok(value) => out.push((key.name, value)),
            Err(why) => {
                errors.push(src.error(Some(v.span()), &seg, format!("`{full}`: {why}"), None))
            }
        }
    }
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    // A client certificate goes with its key.
    let has = |n: &str| out.iter().any(|(k, _)| *k == n);
    if has("agent.cert") != has("agent.key") {
        let (given, missing) = if has("agent.cert") {
            ("agent.cert", "agent.key")
        } else {
            ("agent.key", "agent.cert")
        };
        let leaf = given.trim_start_matches("agent.");
        let span = doc
            .get_ref()
            .get("agent")
            .and_then(|v| v.get_ref().get(leaf))
            .map(|v| v.span());
        return Err(fail(vec![src.error(
            span,
            &[PathSeg::Key(given.into())],
            format!("`{given}` without `{missing}`: a client certificate needs its key"),
            None,
        )]));
    }
    Ok(out)
}

/// A key's value as the option takes it, or why it cannot be one.
fn value(key: &Key, v: &DeValue, dir: &Path) -> Result<String, String> {
    let text = || match v {
        DeValue::String(s) if !s.is_empty() => Ok(s.to_string()),
        DeValue::String(_) => Err("an empty string".to_string()),
        _ => Err(format!("a string is wanted, not {}", v.type_str())),
    };
    match key.kind {
        Kind::Text => text(),
        Kind::Path => Ok(dir.join(text()?).display().to_string()),
        Kind::Format => match text()?.as_str() {
            t @ ("text" | "json") => Ok(t.to_string()),
            t => Err(format!("`{t}` is not a format: text or json")),
        },
        Kind::Url => {
            let t = text()?;
            if t.starts_with("https://") || t.starts_with("http://") {
                Ok(t)
            } else {
                Err(format!("`{t}` is not an https:// or http:// URL"))
            }
        }
        Kind::Runs => match v {
            DeValue::Integer(i) => match i.as_str().parse::<u32>() {
                Ok(n) if n <= 100_000 => Ok(n.to_string()),
                _ => Err(format!(
                    "{} is not a number of runs from 0 to 100000",
                    i.as_str()
                )),
            },
            _ => Err(format!("a whole number is wanted, not {}", v.type_str())),
        },
    }
}

/// `cmd` with the settings' values as its arguments' defaults, in every subcommand: clap then
/// takes a flag given, else its environment variable, else this default. A `format` default
/// goes only where `--format` offers text and json; `runs` only to the commands the key names.
pub fn with_defaults(cmd: clap::Command, s: &Settings) -> clap::Command {
    let pairs: Vec<(&Key, String)> = KEYS
        .iter()
        .filter_map(|k| s.values.get(k.name).map(|v| (k, v.value.clone())))
        .filter(|(k, _)| k.arg.is_some())
        .collect();
    if pairs.is_empty() {
        return cmd;
    }
    walk(cmd, &pairs)
}

fn walk(cmd: clap::Command, pairs: &[(&Key, String)]) -> clap::Command {
    let name = cmd.get_name().to_string();
    cmd.mut_args(|a| {
        let id = a.get_id().as_str().to_string();
        let Some((key, value)) = pairs.iter().find(|(k, _)| k.arg == Some(id.as_str())) else {
            return a;
        };
        let here = key.commands.is_empty() || key.commands.contains(&name.as_str());
        // `format` only where `--format` offers text and json (not `discover`'s toml|json).
        let offered = key.kind != Kind::Format || {
            let values = a.get_possible_values();
            let offers = |v: &str| values.iter().any(|p| p.get_name() == v);
            offers("text") && offers(value)
        };
        if here && offered {
            a.default_value(value.clone())
        } else {
            a
        }
    })
    .mut_subcommands(|sub| walk(sub, pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `files` (name, text) read in order: the value and file each key ends with, or the
    /// errors (`FILE:LINE: message`).
    fn check(files: &[(&str, &str)], expected: &[(&str, &str, &str)]) {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(n, t)| (PathBuf::from(n), t.to_string()))
            .collect();
        match layered(&files) {
            Ok(s) => {
                let got: Vec<(&str, String, String)> = s
                    .values
                    .iter()
                    .map(|(k, v)| (*k, v.value.clone(), v.file.display().to_string()))
                    .collect();
                let want: Vec<(&str, String, String)> = expected
                    .iter()
                    .map(|(k, v, f)| (*k, v.to_string(), f.to_string()))
                    .collect();
                assert_eq!(got, want);
            }
            Err(e) => {
                let got: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
                let want: Vec<String> = expected.iter().map(|(_, m, _)| m.to_string()).collect();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn the_users_file_wins_over_the_systems_key_by_key() {
        check(
            &[
                (
                    "/etc/ferry/config.toml",
                    "state = \"/var/lib/ferry\"\nruns = 200\n[ssh]\nuser = \"admin\"\n",
                ),
                (
                    "/home/u/.config/ferry/config.toml",
                    "runs = 50\n[agent]\nca = \"ca.pem\"\n",
                ),
            ],
            &[
                (
                    "agent.ca",
                    "/home/u/.config/ferry/ca.pem",
                    "/home/u/.config/ferry/config.toml",
                ),
                ("runs", "50", "/home/u/.config/ferry/config.toml"),
                ("ssh.user", "admin", "/etc/ferry/config.toml"),
                ("state", "/var/lib/ferry", "/etc/ferry/config.toml"),
            ],
        );
    }

    #[test]
    fn bad_keys_and_values_are_named_at_their_line() {
        check(
            &[(
                "/c.toml",
                "format = \"yaml\"\n[agent]\ncert = \"c.pem\"\nkey = \"k.pem\"\nca = 3\ntoken = \"t\"\nrunz = 1\n",
            )],
            &[
                ("", "/c.toml:1: `format`: `yaml` is not a format: text or json", ""),
                ("", "/c.toml:5: `agent.ca`: a string is wanted, not integer", ""),
                ("", "/c.toml:6: unknown key `agent.token`", ""),
                ("", "/c.toml:7: unknown key `agent.runz`", ""),
            ],
        );
        check(
            &[("/c.toml", "[agent]\ncert = \"c.pem\"\n")],
            &[(
                "",
                "/c.toml:2: `agent.cert` without `agent.key`: a client certificate needs its key",
                "",
            )],
        );
    }
}
