//! Safe execution defaults on the command line: who gives an approval, an answer or a run
//! (`--by`, or the OS user), and the confirmation `apply` and `rollback` ask for before a real
//! driver (manual, ssh, agent) acts on a site (`--yes` for scripts).

use crate::exit::bad;
use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};

/// The name journaled with an approval, an answer or a run: `--by NAME` when given, else the
/// OS user (`USER`, `LOGNAME`, or the name of the process's uid in `/etc/passwd`).
pub fn operator(by: Option<&str>) -> Result<String> {
    if let Some(name) = by {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(bad(format!(
                "--by `{}`: give a person's name or login (1 to 200 characters, no control characters)",
                name.escape_debug()
            )));
        }
        return Ok(name.to_string());
    }
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            let v = v.trim();
            if !v.is_empty() && !v.chars().any(char::is_control) {
                return Ok(v.to_string());
            }
        }
    }
    Ok(uid_name().unwrap_or_else(|| "unknown".into()))
}

/// The name of this process's uid, from `/etc/passwd` (`uid N` when it has none there).
fn uid_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(
        passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
            .unwrap_or_else(|| format!("uid {uid}")),
    )
}

/// What the operator confirms: the summary printed before the question.
pub struct RunSummary {
    /// `apply of site acme-east (a new run)`, `rollback of run 3 (site acme-east)`.
    pub what: String,
    pub driver: &'static str,
    pub by: String,
    /// `cluster/node`, each node the run acts on.
    pub nodes: Vec<String>,
    /// Steps, and how many are in each phase (`prepare 3, window 12`).
    pub steps: usize,
    pub phases: String,
    /// The booked window with dates and zone, and what holds the run to it.
    pub window: String,
}

impl RunSummary {
    fn text(&self) -> String {
        format!(
            "about to carry out the {what} with the {driver} driver, as {by}:\n  \
nodes:  {nodes}\n  steps:  {steps}{phases}\n  window: {window}\n",
            what = self.what,
            driver = self.driver,
            by = self.by,
            nodes = if self.nodes.is_empty() {
                "(none)".to_string()
            } else {
                self.nodes.join(", ")
            },
            steps = self.steps,
            phases = if self.phases.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.phases)
            },
            window = self.window,
        )
    }
}

/// Asks the operator to confirm a run a real driver carries out: `true` to go on. With
/// `yes` (`--yes`) it goes on without asking; without a terminal on standard input it is
/// refused (bad input), since nobody could answer; on a terminal the summary is shown and
/// `y` or `yes` goes on, anything else (or the end of the input) does not.
pub fn confirm(summary: &RunSummary, yes: bool, command: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(bad(format!(
            "`ferry {command}` with the {} driver acts on the site's nodes and asks for a confirmation, \
but standard input is not a terminal: pass --yes to carry it out without asking (scripts), \
after checking what it does:\n{}",
            summary.driver,
            summary.text()
        )));
    }
    let mut err = std::io::stderr();
    write!(err, "{}carry it out? [y/N] ", summary.text())?;
    err.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let go = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !go {
        writeln!(err, "not confirmed: nothing was done")?;
    }
    Ok(go)
}
