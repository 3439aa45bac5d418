//! The conventions every command keeps (issue 15, part 2): `--format text|json` on every
//! command that prints something (the old `--json` still accepted), the same option names for
//! the same things (`--agent-ca`, `--agent-token-file`, `--agent-cert`, `--agent-key`, the old
//! names hidden aliases), defaults from `FERRY_STATE` and the configuration files with flags >
//! env > config file > built-in defaults, configuration errors at their file, line and key
//! (exit 2), and `ferry rehearse PLAN.json` with the site the plan carries.

use super::{stderr, stdout, Scratch};
use std::path::Path;
use std::process::{Command, Output};

/// Runs ferry with its own home (`HOME` and `XDG_CONFIG_HOME` under `dir`, so that no
/// configuration of the machine's user is read), no `FERRY_STATE` or `FERRY_CONFIG` unless
/// `env` sets them, and in `dir` (the default state directory `.ferry` is made there).
fn ferry_at(dir: &Scratch, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args)
        .current_dir(&dir.0)
        .env("NO_COLOR", "1")
        .env("FERRY_NOW", "2026-06-01T00:00:00Z")
        .env("HOME", dir.path("home"))
        .env("XDG_CONFIG_HOME", dir.path("home/.config"))
        .env_remove("FERRY_STATE")
        .env_remove("FERRY_CONFIG")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run ferry")
}

/// The user's configuration file under `dir`'s home.
fn user_config(dir: &Scratch, text: &str) -> String {
    let path = dir.path("home/.config/ferry/config.toml");
    std::fs::create_dir_all(Path::new(&path).parent().expect("parent")).expect("config dir");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The one check of a printing command: it exits with `code`, its standard output is one JSON
/// document (progress, if any, went to standard error), and each of `fields` is there:
/// `name` present, `name=value` with that value (a string, or a number written as one), and a
/// dotted name looks into objects (`settings.state.source`).
fn check(dir: &Scratch, env: &[(&str, &str)], args: &[&str], code: i32, fields: &[&str]) {
    let o = ferry_at(dir, env, args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}):\n{}", stdout(&o)));
    for f in fields {
        let (name, want) = match f.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (*f, None),
        };
        let mut v = &j;
        for part in name.split('.') {
            v = v
                .get(part)
                .unwrap_or_else(|| panic!("{args:?}: no field `{name}` in {j:#}"));
        }
        if let Some(want) = want {
            let got = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(got, want, "{args:?}: field `{name}` in {j:#}");
        }
    }
}

/// A linux-ha pair's site (its window booked from now) and its plan, saved in `dir`.
fn site_and_plan(dir: &Scratch) -> (String, String) {
    let o = ferry_at(
        dir,
        &[],
        &["examples", "linux-ha-pair", "--window-start", "now"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let site = dir.path("site.toml");
    std::fs::write(&site, &o.stdout).expect("write site");
    let plan = dir.path("plan.json");
    let o = ferry_at(
        dir,
        &[],
        &[
            "plan", &site, "--format", "json", "-o", &plan, "--runs", "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (site, plan)
}

#[test]
fn every_printing_command_writes_json_with_its_fields() {
    let dir = Scratch::new("conv-json");
    let (site, plan) = site_and_plan(&dir);
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("plan json");
    let first = first["steps"][0]["id"]
        .as_str()
        .expect("a step")
        .to_string();
    let state = dir.path("state");
    let run = &["--state", state.as_str(), "--driver", "twin", "--approve"];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .chain(run.iter())
            .chain(tail.iter())
            .map(|s| s.to_string())
            .collect()
    };
    // In order: the apply pauses after its first step, resume ends it, rollback backs it out.
    let cases: Vec<(Vec<String>, i32, Vec<&str>)> = vec![
        (
            with(
                &["apply", &plan],
                &["--pause-after", &first, "--format", "json"],
            ),
            1,
            vec![
                "run=1",
                "kind=apply",
                "state=paused",
                "steps",
                "done",
                "skipped",
                "failed",
                "pending",
                "failures",
                "message",
            ],
        ),
        (
            with(&["resume"], &["--format", "json"]),
            0,
            vec!["run=1", "kind=apply", "state=complete", "pending=0"],
        ),
        (
            vec!["status", "--state", &state, "--format", "json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec!["run.id=1", "run.status=complete", "steps", "approvals"],
        ),
        (
            with(&["rollback"], &["--format", "json"]),
            0,
            vec![
                "run=2",
                "kind=rollback",
                "state=complete",
                "done",
                "failures",
            ],
        ),
        (
            vec![
                "rehearse".into(),
                plan.clone(),
                "--format".into(),
                "json".into(),
            ],
            0,
            vec!["site", "input_hash", "rehearsal"],
        ),
        (
            vec!["examples", "--format", "json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec!["examples"],
        ),
        (
            vec!["examples", "linux-ha-pair", "--format", "json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec!["name=linux-ha-pair", "title", "text"],
        ),
        (
            vec!["profiles", "list", "--format", "json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec!["profiles"],
        ),
        (
            vec!["profiles", "show", "linux-ha", "--format", "json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec!["name=linux-ha", "title", "origin", "text"],
        ),
        (
            vec!["config", "show", "--format", "json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec![
                "settings.state.value=.ferry",
                "settings.state.source=default",
            ],
        ),
        // The old flag of the commands that had one, still accepted everywhere.
        (
            vec!["examples", "--json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec!["examples"],
        ),
        (
            vec!["profiles", "list", "--json"]
                .into_iter()
                .map(String::from)
                .collect(),
            0,
            vec!["profiles"],
        ),
    ];
    let _ = site;
    for (args, code, fields) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&dir, &[], &args, code, &fields);
    }
}

#[test]
fn the_state_directory_comes_from_the_flag_then_ferry_state_then_the_config_files() {
    let dir = Scratch::new("conv-state");
    let other = dir.path("other.toml");
    std::fs::write(&other, "state = \"/from/other-config\"\n").expect("other config");
    // (the user's config file, FERRY_STATE, FERRY_CONFIG, --state, the directory `status` reads)
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    let cases: &[Case] = &[
        (None, None, None, None, ".ferry"),
        (
            Some("/from/user-config"),
            None,
            None,
            None,
            "/from/user-config",
        ),
        (
            Some("/from/user-config"),
            Some("/from/env"),
            None,
            None,
            "/from/env",
        ),
        (
            Some("/from/user-config"),
            Some("/from/env"),
            None,
            Some("/from/flag"),
            "/from/flag",
        ),
        (
            Some("/from/user-config"),
            None,
            Some(other.as_str()),
            None,
            "/from/other-config",
        ),
    ];
    for (user, env_state, env_config, flag, want) in cases {
        let _ = std::fs::remove_file(dir.path("home/.config/ferry/config.toml"));
        if let Some(u) = user {
            user_config(&dir, &format!("state = \"{u}\"\n"));
        }
        let mut env = Vec::new();
        if let Some(s) = env_state {
            env.push(("FERRY_STATE", *s));
        }
        if let Some(c) = env_config {
            env.push(("FERRY_CONFIG", *c));
        }
        let mut args = vec!["status"];
        if let Some(f) = flag {
            args.extend(["--state", f]);
        }
        let o = ferry_at(&dir, &env, &args);
        assert_eq!(o.status.code(), Some(2), "{cases:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{want}: no journal here")),
            "{user:?} {env_state:?} {env_config:?} {flag:?}: want {want}: {}",
            stderr(&o)
        );
        // `ferry config show` says the same, and where it came from.
        let mut show = vec!["config", "show", "--format", "json"];
        if let Some(f) = flag {
            show.extend(["--state", f]);
        }
        let source = match (flag, env_state, env_config, user) {
            (Some(_), ..) => "flag".to_string(),
            (None, Some(_), ..) => "env FERRY_STATE".to_string(),
            (None, None, Some(c), _) => (*c).to_string(),
            (None, None, None, Some(_)) => dir.path("home/.config/ferry/config.toml"),
            _ => "default".to_string(),
        };
        check(
            &dir,
            &env,
            &show,
            0,
            &[
                &format!("settings.state.value={want}"),
                &format!("settings.state.source={source}"),
            ],
        );
    }
    // `--config FILE` before the command selects the file over FERRY_CONFIG.
    let chosen = dir.path("chosen.toml");
    std::fs::write(&chosen, "state = \"/from/chosen\"\n").expect("chosen config");
    let o = ferry_at(
        &dir,
        &[("FERRY_CONFIG", other.as_str())],
        &["--config", &chosen, "status"],
    );
    assert!(
        stderr(&o).contains("/from/chosen: no journal here"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_configuration_is_refused_at_its_file_line_and_key() {
    let dir = Scratch::new("conv-bad");
    // (the file's text, the line and key the error names)
    let cases = [
        (
            "state = \"s\"\n\n[agent]\ncax = \"ca.pem\"\n",
            4,
            "agent.cax",
        ),
        ("statedir = \"s\"\n", 1, "statedir"),
        ("state = \"s\"\nformat = \"xml\"\n", 2, "format"),
        ("runs = -3\n", 1, "runs"),
        ("[ssh]\nuser = 7\n", 2, "ssh.user"),
    ];
    for (text, line, key) in cases {
        let path = user_config(&dir, text);
        let o = ferry_at(&dir, &[], &["status"]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{path}:{line}")) && err.contains(key),
            "{text}: want {path}:{line} and `{key}` in:\n{err}"
        );
    }
}

#[test]
fn rehearse_takes_a_saved_plan_without_its_site() {
    let dir = Scratch::new("conv-rehearse");
    let (site, plan) = site_and_plan(&dir);
    let alone = ferry_at(&dir, &[], &["rehearse", &plan]);
    assert_eq!(alone.status.code(), Some(0), "{}", stderr(&alone));
    let with_site = ferry_at(&dir, &[], &["rehearse", &plan, "--site", &site]);
    assert_eq!(with_site.status.code(), Some(0), "{}", stderr(&with_site));
    assert_eq!(stdout(&alone), stdout(&with_site));
}

#[test]
fn the_agents_ca_token_and_client_certificate_have_one_name_everywhere() {
    let dir = Scratch::new("conv-names");
    // Every command that reaches agents names their options the same way.
    let commands: &[&[&str]] = &[
        &["agent", "status"],
        &["agent", "switch"],
        &["agent", "stage"],
        &["check"],
        &["apply"],
        &["resume"],
        &["rollback"],
        &["discover"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let help = stdout(&ferry_at(&dir, &[], &args));
        for name in [
            "--agent-ca",
            "--agent-token-file",
            "--agent-cert",
            "--agent-key",
        ] {
            assert!(help.contains(name), "{c:?} --help lacks {name}:\n{help}");
        }
        for old in ["--ca ", "--token-file ", "--cert ", "--key "] {
            assert!(
                !help.contains(old),
                "{c:?} --help still shows {old}:\n{help}"
            );
        }
    }
    // The old names still work: an agent that is not there is not reached (exit 1), by
    // either name; not an unknown argument (exit 2).
    let o = ferry_at(
        &dir,
        &[],
        &["agent", "certs", "--out", "lab", "--name", "a"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(dir.path("token"), "a-token-of-enough-length-0123").expect("token");
    let (ca, token) = (dir.path("lab/ca.pem"), dir.path("token"));
    let nobody = "127.0.0.1:9";
    for (ca_flag, token_flag) in [
        ("--agent-ca", "--agent-token-file"),
        ("--ca", "--token-file"),
    ] {
        let o = ferry_at(
            &dir,
            &[],
            &[
                "agent",
                "status",
                "--url",
                nobody,
                ca_flag,
                &ca,
                token_flag,
                &token,
                "--timeout",
                "2",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{ca_flag}: {}", stderr(&o));
    }
    // The agent's CA from the configuration file.
    user_config(
        &dir,
        &format!("[agent]\nca = \"{ca}\"\ntoken_file = \"{token}\"\n"),
    );
    let o = ferry_at(
        &dir,
        &[],
        &["agent", "status", "--url", nobody, "--timeout", "2"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
