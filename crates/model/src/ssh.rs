//! How the `ssh` driver carries a profile's steps out on appliances reached over SSH: the
//! profile's `[ssh]` section (what failed output looks like, and the probes that read a node's
//! state) and each step template's `ssh` table (the commands to run, what to verify afterwards,
//! what to wait for). Plain data: the driver in `ferry-exec` runs it, `ferry-profiles`
//! validates it. The format is documented in `docs/profiles.md` ("The ssh driver").
//!
//! Text that goes to a node is a *template*: `{node}`, `{cluster}`, `{role}`, `{version}` (the
//! node's version before the run), `{target}` (the version the step brings it to), `{fact.NAME}`
//! (a node fact, falling back to the cluster's), `{env.FERRY_NAME}` (an environment variable of
//! the ferry process whose name starts with `FERRY_`, for secrets kept out of site files) and
//! `{probe.NAME}` (the value a probe reads on the same node) are filled in; `{{` and `}}` are
//! literal braces.

use serde::{Deserialize, Serialize};

/// The profile's `[ssh]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    /// Regexes: a command or probe whose output matches one of these failed, whatever its exit
    /// status (appliance CLIs often exit 0 after printing an error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_on: Vec<String>,
    /// The appliance's CLI is an interactive shell: this regex is its prompt (e.g.
    /// `^admin:\s*$`). Each node gets one interactive session (a pty); the prompt is awaited
    /// before every command, and a command's output is what it prints up to the next prompt.
    /// Unset: each command is a one-shot SSH exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// With `prompt`: a regex for the last, unfinished line of output that means the appliance
    /// waits for an answer. Such a line that the command's dialogue does not expect stops the
    /// step as failed (nothing is answered blindly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The probe that reads a node's running version: dialogue variants are chosen on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_probe: Option<String>,
    /// Probes: commands that read one value (or a table of values) from a node.
    #[serde(default, rename = "probe", skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
    /// Dialogues: the prompts an interactive command asks and their answers.
    #[serde(default, rename = "dialogue", skip_serializing_if = "Vec::is_empty")]
    pub dialogues: Vec<Dialogue>,
}

impl SshSpec {
    pub fn is_empty(&self) -> bool {
        self.fail_on.is_empty()
            && self.probes.is_empty()
            && self.prompt.is_none()
            && self.question.is_none()
            && self.version_probe.is_none()
            && self.dialogues.is_empty()
    }

    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }

    pub fn dialogue(&self, name: &str) -> Option<&Dialogue> {
        self.dialogues.iter().find(|d| d.name == name)
    }
}

/// The conversation of one interactive command: its variants, the first whose `when` holds on
/// the node's running version (read by `version_probe`) being the one held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialogue {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Seconds each prompt may take to appear, unless the prompt says otherwise (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    #[serde(rename = "variant")]
    pub variants: Vec<DialogueVariant>,
}

/// One version's dialogue: the prompts in the order the appliance asks them, and the text that
/// says the command succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialogueVariant {
    /// The versions this variant is for (none: every version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<VariantWhen>,
    #[serde(rename = "prompt")]
    pub prompts: Vec<DialoguePrompt>,
    /// A regex the command's output must match before the CLI's prompt returns (or, for a
    /// command that `reboots`, before the connection drops).
    pub success: String,
}

/// `when = { version = { ge = "12.0" } }`: the node's running version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantWhen {
    pub version: VersionRange,
}

/// Tests on one version, as in the profile's `version` conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRange {
    /// Matches one of these patterns (`12.x`, `11.5`).
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    /// Below this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<String>,
    /// At or above this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ge: Option<String>,
}

impl VersionRange {
    /// Whether `v` passes every test given (a limit that does not parse passes nothing).
    pub fn holds(&self, v: &crate::VendorVersion) -> bool {
        let limit =
            |l: &Option<String>, f: fn(&crate::VendorVersion, &crate::VendorVersion) -> bool| {
                l.as_ref()
                    .is_none_or(|l| crate::VendorVersion::parse(l).is_ok_and(|l| f(v, &l)))
            };
        self.one_of
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| crate::pattern_matches(p, v)))
            && limit(&self.lt, |v, l| v < l)
            && limit(&self.ge, |v, l| v >= l)
    }
}

/// One prompt of a dialogue: awaited (`expect`), then answered (`answer`, or the number
/// `choose` reads from what was printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialoguePrompt {
    /// A regex matching the end of the output when the appliance asks this.
    pub expect: String,
    /// The answer (a template; `{env.FERRY_*}` values never appear in what ferry records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The answer is the number of the listed line that names a text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choose: Option<Choice>,
    /// The appliance asks this only in some situations: it may be skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Seconds this prompt may take to appear (default: the dialogue's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

/// Reads an answer from a numbered list: the one line printed since the last answer that
/// contains `line` (a template, e.g. `{fact.upgrade_iso}`), and its `number` capture of
/// `number`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub line: String,
    pub number: String,
}

/// A command whose output is read: by a regex (one value) or as a table (a value per row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub name: String,
    /// The command (a template; it may use the values of probes declared before this one).
    pub command: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// One value: the `value` named capture of this regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// With `regex`: which match counts when the output has several.
    #[serde(default, skip_serializing_if = "Pick::is_first")]
    pub pick: Pick,
    /// A value per row of a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableParser>,
}

/// Which match of a probe's regex is its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    #[default]
    First,
    Last,
}

impl Pick {
    pub fn is_first(&self) -> bool {
        *self == Pick::First
    }
}

/// Reads a table: the rows are the lines after the first line matching `after`, up to the next
/// blank line (or the end of the output); each row gives the `key` capture of `key` and the
/// `value` capture of `value`. Rows matching neither are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableParser {
    pub after: String,
    pub key: String,
    pub value: String,
}

/// A step template's `ssh` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSsh {
    /// Cluster-scope steps: the commands and checks run on the first node (in site order) of
    /// these roles. Node-scope steps run on their own node and leave this empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<String>,
    /// Run one after another; the first that fails fails the step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<SshCommand>,
    /// Bound on each command (default: the driver's command timeout), and on the `wait` of a
    /// step that is not a gate (a gate's bound is its own timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_minutes: Option<f64>,
    /// After the commands (and the waits): every test must hold, or the step fails. They also
    /// tell, after a crash, whether a step interrupted mid-command took effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<ProbeTest>,
    /// The `verify` tests are also checked before the commands run: when they hold already
    /// (a retry of a switch that did take effect), the step is done without running them again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_when_verified: bool,
    /// After the commands: poll until every wait holds (a gate's condition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait: Vec<ProbeWait>,
}

/// One command: a bare string, or a table with the lines to answer its prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "CommandForm")]
pub struct SshCommand {
    pub run: String,
    /// Lines written to the command's standard input, one per prompt (templates; one-shot
    /// exec only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<String>,
    /// The dialogue (`[[ssh.dialogue]]`) that answers the command's prompts (interactive
    /// shells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialogue: Option<String>,
    /// The command restarts the node: a connection lost while it runs is not a failure (a
    /// `wait` or `verify` then tells whether it worked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reboots: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CommandForm {
    Line(String),
    Full(FullCommand),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullCommand {
    run: String,
    #[serde(default)]
    input: Vec<String>,
    #[serde(default)]
    dialogue: Option<String>,
    #[serde(default)]
    reboots: bool,
}

impl From<CommandForm> for SshCommand {
    fn from(c: CommandForm) -> Self {
        match c {
            CommandForm::Line(run) => SshCommand {
                run,
                input: Vec::new(),
                dialogue: None,
                reboots: false,
            },
            CommandForm::Full(f) => SshCommand {
                run: f.run,
                input: f.input,
                dialogue: f.dialogue,
                reboots: f.reboots,
            },
        }
    }
}

/// A probe's value on the step's node must equal `equals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTest {
    pub probe: String,
    /// A template, compared with the value (surrounding white space ignored).
    pub equals: String,
    /// Table probes: the row read (a template; default `{node}`; rows match case-insensitively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
}

/// Polls a probe until its value on every node of `roles` equals `equals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeWait {
    pub probe: String,
    /// The nodes whose values must hold: every node of these roles in the step's cluster
    /// (empty: the step's own node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Table probes: run the probe once per poll on the first node of these roles and read each
    /// node's row there (e.g. a database publisher's view of its cluster). Empty: run it on
    /// every node of `roles`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// A template, filled in for each node whose value is tested.
    pub equals: String,
    /// Table probes: the row of each node (a template filled in for it; default `{node}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// Seconds between polls (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_seconds: Option<f64>,
}

/// A piece of a template: literal text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Node,
    Cluster,
    Role,
    Version,
    Target,
    Fact(String),
    Env(String),
    Probe(String),
}

/// Splits a template into pieces, or says what is wrong with it.
pub fn parse_template(t: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = t.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let rest = &t[at + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(format!("unclosed `{{` at column {}", at + 1));
                };
                let name = &rest[..end];
                for _ in 0..=name.chars().count() {
                    chars.next();
                }
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(placeholder(name)?);
            }
            '}' => {
                return Err(format!(
                    "`}}` at column {} closes nothing (write `}}}}` for a literal brace)",
                    at + 1
                ))
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn placeholder(name: &str) -> Result<Piece, String> {
    let named = |prefix: &str| {
        name.strip_prefix(prefix)
            .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
            .map(str::to_string)
    };
    Ok(match name {
        "node" => Piece::Node,
        "cluster" => Piece::Cluster,
        "role" => Piece::Role,
        "version" => Piece::Version,
        "target" => Piece::Target,
        _ => {
            if let Some(f) = named("fact.") {
                Piece::Fact(f)
            } else if let Some(p) = named("probe.") {
                Piece::Probe(p)
            } else if let Some(e) = named("env.") {
                if !e.starts_with("FERRY_") {
                    return Err(format!(
                        "`{{env.{e}}}`: only environment variables named FERRY_* may be used"
                    ));
                }
                Piece::Env(e)
            } else {
                return Err(format!(
                    "unknown placeholder `{{{name}}}` (known: {{node}}, {{cluster}}, {{role}}, {{version}}, {{target}}, {{fact.NAME}}, {{env.FERRY_NAME}}, {{probe.NAME}})"
                ));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            parse_template("show {node} {{x}} {fact.a_b}").unwrap(),
            vec![
                Piece::Text("show ".into()),
                Piece::Node,
                Piece::Text(" {x} ".into()),
                Piece::Fact("a_b".into())
            ]
        );
        assert!(parse_template("a {nod}").is_err());
        assert!(parse_template("a {node").is_err());
        assert!(parse_template("a }").is_err());
        assert!(parse_template("{env.HOME}").is_err());
        assert_eq!(
            parse_template("{env.FERRY_PW}").unwrap(),
            vec![Piece::Env("FERRY_PW".into())]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
    }

    #[test]
    fn commands_are_strings_or_tables() {
        #[derive(Deserialize)]
        struct T {
            c: Vec<SshCommand>,
        }
        let t: T = toml_like(r#"{"c": ["a", {"run": "b", "input": ["yes"], "reboots": true}]}"#);
        assert_eq!(t.c[0].run, "a");
        assert!(t.c[1].reboots && t.c[1].input == ["yes"]);
    }

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }
}
