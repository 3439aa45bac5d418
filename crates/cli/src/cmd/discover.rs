//! `ferry discover`: a site file from the cluster itself, instead of typed by hand. Over SSH,
//! the node it starts from lists the cluster (the profile's `[discover] nodes` command), and
//! every node listed is read on its own CLI (the profile's `[[discover.read]]` commands), with
//! the ssh driver's connections and strict host-key checking (`ferry_exec::discover`). With
//! `--agents`, each ferry agent says what its node runs (the `check --agents` survey). The
//! site written is loaded back before it is given out, so it is one `check` and `plan` accept.
//!
//! Also `ferry check --ssh` (`refresh`): the site's facts read live over SSH before judging.

use crate::args::SshFlags;
use crate::exit::bad;
use anyhow::Result;
use ferry_model::{Facts, Finding, Profile, Severity, Site};
use ferry_profiles::write::{site_toml, ClusterDraft, NodeDraft, SiteDraft};
use ferry_profiles::ProfileSet;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// The rule ID of ferry's own findings about nodes read over SSH (not a vendor rule).
const RULE: &str = "FERRY-SSH";

/// What `discover` and `import` print.
#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum SiteFormat {
    /// The site file (TOML).
    Toml,
    /// A summary for scripts: the nodes found, the notes, and the site file's text.
    Json,
}

/// What names the site and its targets (`discover` and `import`).
#[derive(clap::Args)]
pub struct SiteFlags {
    /// The profile the cluster is upgraded under (`ferry profiles list`).
    #[arg(long, value_name = "NAME")]
    pub profile: String,
    /// The target version (`--target VERSION`), or a role's (`--target ROLE=VERSION`, for
    /// roles with builds of their own). Repeatable. Without it, the running version (nothing
    /// to upgrade): edit the site's `target`.
    #[arg(long, value_name = "[ROLE=]VERSION")]
    pub target: Vec<String>,
    /// The site's name (default: the cluster's).
    #[arg(long, value_name = "NAME")]
    pub site_name: Option<String>,
    /// The cluster's name (default: its first node's).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Write the site to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// What to print: the site (toml), or a summary with it (json).
    #[arg(long, short, value_enum, default_value = "toml")]
    pub format: SiteFormat,
}

/// Write a site file from the cluster itself: over SSH from the node that lists it (the
/// profile's `[discover]`), or from the nodes' ferry agents (--agents).
#[derive(clap::Args)]
pub struct DiscoverArgs {
    /// The node to start from over SSH, `[ssh://][USER@]HOST[:PORT]`: the one whose listing
    /// names every node (the CUCM publisher). Not with --agents.
    #[arg(
        value_name = "START",
        required_unless_present = "agents",
        conflicts_with = "agents"
    )]
    start: Option<String>,
    #[command(flatten)]
    site: SiteFlags,
    /// Where a listed node is reached, `NAME=[ssh://][USER@]HOST[:PORT]` (default: its listed
    /// address, with START's user). Repeatable.
    #[arg(long, value_name = "NAME=DEST")]
    address: Vec<String>,
    /// Ask these ferry agents (`https://HOST:PORT` or `HOST:PORT`, comma-separated) instead:
    /// each names its node, its role and its version.
    #[arg(long, value_name = "URL", value_delimiter = ',', num_args = 1..)]
    agents: Vec<String>,
    #[command(flatten)]
    ssh: SshFlags,
    #[command(flatten)]
    agent: crate::args::AgentFlags,
}

/// Progress lines, on standard error.
fn progress(line: &str) {
    eprintln!("discover: {line}");
}

pub fn run(g: &crate::args::Global, args: DiscoverArgs) -> Result<ExitCode> {
    let profile_dirs: &[PathBuf] = &g.profiles;
    let set = crate::load::load_profiles(profile_dirs)?;
    let profile = profile_of(&set, &args.site.profile)?;
    let (nodes, notes) = if args.agents.is_empty() {
        let start = args.start.as_deref().unwrap_or_default();
        let mut addresses = BTreeMap::new();
        for a in &args.address {
            let (name, dest) = a.split_once('=').ok_or_else(|| {
                bad(format!(
                    "--address {a}: write NAME=DEST (e.g. sub1=admin@10.1.1.11)"
                ))
            })?;
            addresses.insert(name.to_string(), dest.to_string());
        }
        let d = ferry_exec::Discoverer::new(args.ssh.options(120))?;
        let (found, notes) = d
            .discover(profile, start, &addresses, &progress)
            .map_err(|e| bad(format!("ferry discover: {e}")))?;
        let nodes = found
            .into_iter()
            .map(|n| NodeDraft {
                name: n.name,
                role: n.role,
                version: n.version,
                address: Some(n.address),
                facts: n.facts,
            })
            .collect();
        (nodes, notes)
    } else {
        (
            from_agents(profile, &args.agents, args.agent.options()?)?,
            Vec::new(),
        )
    };
    let from = match &args.start {
        Some(s) => format!("discovered by `ferry discover` from {s}"),
        None => format!(
            "discovered by `ferry discover` from the agents {}",
            args.agents.join(", ")
        ),
    };
    let (text, summary) = write_site(&set, profile, &args.site, nodes, notes, &from, |_, _| None)?;
    emit(&args.site, &text, summary)
}

pub fn profile_of<'s>(set: &'s ProfileSet, name: &str) -> Result<&'s Profile> {
    set.get(name).map(|p| &p.profile).ok_or_else(|| {
        let names: Vec<&str> = set.names();
        bad(format!(
            "--profile {name}: no such profile (profiles: {})",
            names.join(", ")
        ))
    })
}

/// Each agent's node: its name, the role its service holds, the version it runs, and the
/// facts of its status the profile declares (as `check --agents` lays them).
fn from_agents(
    profile: &Profile,
    urls: &[String],
    opts: ferry_exec::AgentOptions,
) -> Result<Vec<NodeDraft>> {
    let placeholder = ferry_model::VendorVersion::parse("0").map_err(|e| bad(e.to_string()))?;
    let role = profile
        .roles
        .first()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let skeleton = Site {
        name: "agents".into(),
        window: None,
        stage: None,
        objectives: Default::default(),
        change: None,
        clusters: vec![ferry_model::Cluster {
            name: "agents".into(),
            profile: profile.profile.name.clone(),
            target: placeholder.clone(),
            strategy: None,
            facts: Facts::new(),
            nodes: urls
                .iter()
                .enumerate()
                .map(|(i, u)| ferry_model::Node {
                    name: format!("agent-{i}"),
                    role: role.clone(),
                    version: placeholder.clone(),
                    target: placeholder.clone(),
                    address: Some(u.clone()),
                    facts: Facts::new(),
                })
                .collect(),
        }],
    };
    let profiles = [(profile.profile.name.clone(), profile.clone())].into();
    let journal = ferry_exec::Journal::in_memory()?;
    let driver = ferry_exec::AgentDriver::new(&journal, &skeleton, &profiles, opts)
        .map_err(|e| bad(e.to_string()))?;
    progress(&format!("asking {} agent(s)", urls.len()));
    let mut nodes = Vec::new();
    for (s, url) in driver.survey().into_iter().zip(urls) {
        let at = |m: String| bad(format!("ferry discover: the agent at {url}: {m}"));
        // The survey's own message names the agent's address.
        let status = s.service.map_err(|m| bad(format!("ferry discover: {m}")))?;
        let name = s.agent.unwrap_or_default();
        let role = status.role.clone().ok_or_else(|| {
            at(format!(
                "its service `{}` holds no role: give it one (ferry agent set-role)",
                status.name
            ))
        })?;
        if !profile.roles.iter().any(|r| r.name == role) {
            return Err(at(format!(
                "its service holds the role `{role}`, which profile `{}` does not have (roles: {})",
                profile.profile.name,
                profile.role_names().join(", ")
            )));
        }
        let version = status
            .active
            .as_ref()
            .map(|a| a.version.clone())
            .ok_or_else(|| at(format!("its service `{}` runs no version yet", status.name)))?;
        progress(&format!("{name} ({url}): {role}, {version}"));
        nodes.push(NodeDraft {
            name,
            role,
            version,
            address: Some(url.clone()),
            facts: {
                let mut facts = crate::live::agent_facts(profile, &status);
                // The agent driver finds the node's service by this fact: written when the
                // profile declares it, so that `apply` reaches the service discovered here.
                if profile.facts.iter().any(|f| f.name == "service") {
                    facts.insert(
                        "service".into(),
                        ferry_model::FactValue::String(status.name.clone()),
                    );
                }
                facts
            },
        });
    }
    Ok(nodes)
}

/// What `--format json` prints.
#[derive(serde::Serialize)]
pub struct Summary {
    schema_version: u32,
    site: String,
    profile: String,
    nodes: Vec<SummaryNode>,
    notes: Vec<String>,
    output: Option<String>,
    site_toml: String,
}

#[derive(serde::Serialize)]
struct SummaryNode {
    name: String,
    role: String,
    version: String,
    address: Option<String>,
    facts: Facts,
}

/// The site of `nodes` as TOML, loaded back to check it (with the targets asked for, or the
/// running versions), and its summary. `locate` names the input a node came from, for an
/// error the loaded site reports at its line (`import`: the CSV row).
pub fn write_site(
    set: &ProfileSet,
    profile: &Profile,
    flags: &SiteFlags,
    nodes: Vec<NodeDraft>,
    mut notes: Vec<String>,
    from: &str,
    locate: impl Fn(usize, &NodeDraft) -> Option<String>,
) -> Result<(String, Summary)> {
    let Some(first) = nodes.first() else {
        return Err(bad("no node found: nothing to write"));
    };
    let cluster = flags.cluster.clone().unwrap_or_else(|| first.name.clone());
    let site_name = flags.site_name.clone().unwrap_or_else(|| cluster.clone());
    let mut target = None;
    let mut targets = BTreeMap::new();
    for t in &flags.target {
        match t.split_once('=') {
            None => target = Some(t.clone()),
            Some((role, v)) => {
                let Some(r) = profile.roles.iter().find(|r| r.name == role) else {
                    return Err(bad(format!(
                        "--target {t}: profile `{}` has no role `{role}`",
                        profile.profile.name
                    )));
                };
                if !r.own_target {
                    return Err(bad(format!(
                        "--target {t}: role `{role}` takes the cluster's target: write --target {v}"
                    )));
                }
                targets.insert(role.to_string(), v.to_string());
            }
        }
    }
    let own = |role: &str| profile.roles.iter().any(|r| r.name == role && r.own_target);
    let target = match target {
        Some(t) => t,
        None => {
            let v = nodes
                .iter()
                .find(|n| !own(&n.role))
                .unwrap_or(first)
                .version
                .clone();
            notes.push(format!(
                "no --target: the cluster's target is the running version {v} (nothing to upgrade): edit `target`"
            ));
            v
        }
    };
    for n in &nodes {
        if own(&n.role) && !targets.contains_key(&n.role) {
            notes.push(format!(
                "no --target {}=VERSION: its target is the running version {} (nothing to upgrade): edit `targets.{}`",
                n.role, n.version, n.role
            ));
            targets.insert(n.role.clone(), n.version.clone());
        }
    }
    let draft = SiteDraft {
        name: site_name.clone(),
        clusters: vec![ClusterDraft {
            name: cluster,
            profile: profile.profile.name.clone(),
            target,
            targets,
            facts: Facts::new(),
            nodes,
        }],
    };
    let (text, lines) = site_toml(&draft, &[from.to_string()]);
    let name = flags.output.as_ref().map_or_else(
        || "the site written".to_string(),
        |p| p.display().to_string(),
    );
    if let Err(e) = ferry_profiles::load_site(&name, &text, set) {
        let nodes = &draft.clusters[0].nodes;
        let at = &lines[0];
        let mut msgs = Vec::new();
        for err in &e.errors {
            // The node whose table holds the line.
            let k = at.iter().rposition(|&l| l <= err.line);
            let whence = k
                .and_then(|k| {
                    locate(k, &nodes[k]).or_else(|| Some(format!("node {}", nodes[k].name)))
                })
                .unwrap_or_else(|| "the site".into());
            msgs.push(format!(
                "{whence}: {}{}",
                err.message,
                err.help
                    .as_ref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            ));
        }
        return Err(bad(format!(
            "the site cannot be written: {}\n{}",
            msgs.len(),
            msgs.join("\n")
        )));
    }
    for n in &notes {
        eprintln!("note: {n}");
    }
    let summary = Summary {
        schema_version: 1,
        site: site_name,
        profile: profile.profile.name.clone(),
        nodes: draft.clusters[0]
            .nodes
            .iter()
            .map(|n| SummaryNode {
                name: n.name.clone(),
                role: n.role.clone(),
                version: n.version.clone(),
                address: n.address.clone(),
                facts: n.facts.clone(),
            })
            .collect(),
        notes,
        output: flags.output.as_ref().map(|p| p.display().to_string()),
        site_toml: text.clone(),
    };
    Ok((text, summary))
}

/// Writes the site (to `--output` or standard output) and, with `--format json`, the summary.
pub fn emit(flags: &SiteFlags, text: &str, summary: Summary) -> Result<ExitCode> {
    if let Some(p) = &flags.output {
        crate::load::write_out(Some(p), text)?;
        eprintln!("wrote {} ({} nodes)", p.display(), summary.nodes.len());
    }
    match flags.format {
        SiteFormat::Json => {
            let mut json = serde_json::to_string_pretty(&summary)?;
            json.push('\n');
            crate::load::write_out(None, &json)?;
        }
        SiteFormat::Toml if flags.output.is_none() => crate::load::write_out(None, text)?,
        SiteFormat::Toml => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry check --ssh`: every node of a cluster whose profile can be read over SSH is read
/// now; its facts are laid over the site's, and ferry adds its own findings where the node
/// and the site disagree (a node that cannot be read, a version other than the site's).
pub fn refresh(
    site: &Site,
    profiles: &BTreeMap<String, Profile>,
    flags: &SshFlags,
) -> Result<(Site, Vec<Finding>)> {
    let d = ferry_exec::Discoverer::new(flags.options(120))?;
    let mut observed = site.clone();
    let mut findings = Vec::new();
    for c in observed.clusters.iter_mut() {
        let Some(profile) = profiles.get(&c.profile) else {
            continue;
        };
        if profile.discover.reads.is_empty() {
            eprintln!(
                "note: --ssh: profile `{}` declares no [[discover.read]]: cluster {} is judged on the site's facts",
                c.profile, c.name
            );
            continue;
        }
        let to_read: Vec<ferry_exec::ToRead> = c
            .nodes
            .iter()
            .map(|n| ferry_exec::ToRead {
                name: n.name.clone(),
                dest: n.address.clone().unwrap_or_else(|| n.name.clone()),
            })
            .collect();
        let readings = d.read(profile, &to_read, &|l| eprintln!("check --ssh: {l}"));
        for (node, r) in c.nodes.iter_mut().zip(readings) {
            let finding = |key: &str, message: String, remedy: &str| Finding {
                key: format!("{key}:{}/{}", c.name, node.name),
                rule: RULE.into(),
                severity: Severity::Inhibitor,
                cluster: Some(c.name.clone()),
                node: Some(node.name.clone()),
                message,
                remedy: remedy.into(),
            };
            match r {
                Err(e) => findings.push(finding(
                    "ssh-unreadable",
                    format!("{} could not be read over SSH: {e}", node.name),
                    "Correct the node's `address`, the user (--ssh-user), key (--ssh-identity) or known-hosts file (--ssh-known-hosts), then check again.",
                )),
                Ok(reading) => {
                    for n in reading.notes {
                        eprintln!("note: {n}");
                    }
                    let site_version = node.version.to_string();
                    if let Some(v) = reading.version.filter(|v| *v != site_version) {
                        findings.push(finding(
                            "ssh-version-differs",
                            format!("the site says {} runs {site_version}; the node runs {v}", node.name),
                            "Correct the node's `version` in the site (or finish the change made by hand), then plan again.",
                        ));
                    }
                    node.facts.extend(reading.facts);
                }
            }
        }
    }
    Ok((observed, findings))
}
