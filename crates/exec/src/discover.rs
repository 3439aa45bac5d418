//! Discovery: reading a cluster from its nodes' CLI over SSH, as the profile's `[discover]`
//! section says (`ferry discover`, `ferry check --ssh`). The engine knows no product: it runs
//! the listing command on the node it starts from, gives each listed node the role of the
//! first `[[discover.role]]` rule that matches it (within the role's `max`), then runs each
//! `[[discover.read]]` command once per node and types what it reads by the profile's fact
//! types. Connections are the ssh driver's (`ssh_driver::Conns`: the system's OpenSSH client,
//! a master connection per node, host keys checked strictly unless `accept_new`, the profile's
//! interactive shell when it declares a `prompt`); nothing is typed but the profile's reading
//! commands, and no question is ever answered.

use crate::ssh_driver::{compile, Compiled, Conns};
use crate::SshOptions;
use ferry_model::discover::{DiscoverSpec, Reading, VERSION};
use ferry_model::profile::FactType;
use ferry_model::{FactValue, Facts, Profile};
use regex::Regex;
use std::collections::BTreeMap;

/// Why discovery could not read a cluster: each names the node, command and line at fault.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("profile `{0}` has no [discover] section with a node listing: it cannot be discovered over SSH")]
    NotDiscoverable(String),
    #[error("profile `{profile}`: {message}")]
    Profile { profile: String, message: String },
    #[error("{node}: {message}")]
    Node { node: String, message: String },
    #[error("`{command}` on {node}, line {line}: {message}")]
    Listing {
        node: String,
        command: String,
        line: usize,
        message: String,
    },
    #[error("cannot start the ssh runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// A node as discovery found it.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundNode {
    pub name: String,
    pub role: String,
    pub version: String,
    /// Where it was reached.
    pub address: String,
    pub facts: Facts,
}

/// A node of the listing: its name, listed address, role, and the line it was on.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub name: String,
    pub address: Option<String>,
    pub role: String,
    pub line: usize,
}

/// Reads the listing `output` of `command` (printed by `node`): every line the row regex
/// matches is a node, given the role of the first rule that matches it and whose role has room.
pub fn parse_listing(
    profile: &Profile,
    node: &str,
    output: &str,
) -> Result<Vec<Listed>, DiscoverError> {
    let spec = &profile.discover;
    let listing = spec
        .nodes
        .as_ref()
        .ok_or_else(|| DiscoverError::NotDiscoverable(profile.profile.name.clone()))?;
    let bad_profile = |message: String| DiscoverError::Profile {
        profile: profile.profile.name.clone(),
        message,
    };
    let row =
        Regex::new(&listing.row).map_err(|e| bad_profile(format!("discover.nodes.row: {e}")))?;
    let mut rules = Vec::new();
    for r in &spec.roles {
        let mut when = Vec::new();
        for (capture, re) in &r.when {
            let re = Regex::new(re)
                .map_err(|e| bad_profile(format!("discover.role `{}`: {e}", r.role)))?;
            when.push((capture.as_str(), re));
        }
        rules.push((r, when));
    }
    let max = |role: &str| {
        profile
            .roles
            .iter()
            .find(|r| r.name == role)
            .and_then(|r| r.max)
    };
    let mut count: BTreeMap<String, u32> = BTreeMap::new();
    let mut found: Vec<Listed> = Vec::new();
    let at = |line: usize, message: String| DiscoverError::Listing {
        node: node.to_string(),
        command: listing.command.clone(),
        line,
        message,
    };
    for (n, text) in output.lines().enumerate() {
        let line = n + 1;
        let Some(c) = row.captures(text) else {
            continue;
        };
        let name = c.name("name").map(|m| m.as_str().trim().to_string());
        let Some(name) = name.filter(|s| !s.is_empty()) else {
            continue;
        };
        if found.iter().any(|f| f.name == name) {
            return Err(at(line, format!("node `{name}` is listed twice")));
        }
        let rule = rules.iter().find(|(r, when)| {
            when.iter()
                .all(|(capture, re)| c.name(capture).is_some_and(|m| re.is_match(m.as_str())))
                && max(&r.role).is_none_or(|m| count.get(&r.role).copied().unwrap_or(0) < m)
        });
        let Some((rule, _)) = rule else {
            return Err(at(
                line,
                format!(
                    "no [[discover.role]] of profile `{}` gives `{}` a role (or its role is full): `{}`",
                    profile.profile.name,
                    name,
                    text.trim()
                ),
            ));
        };
        *count.entry(rule.role.clone()).or_default() += 1;
        found.push(Listed {
            name,
            address: c.name("address").map(|m| m.as_str().to_string()),
            role: rule.role.clone(),
            line,
        });
    }
    if found.is_empty() {
        return Err(at(
            0,
            format!(
                "no line lists a node (none matches the profile's `row`): {}",
                crate::ssh_driver::tail(output)
            ),
        ));
    }
    Ok(found)
}

/// The distinct commands of the readings, in order.
pub fn reading_commands(spec: &DiscoverSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &spec.reads {
        if !out.contains(&r.command) {
            out.push(r.command.clone());
        }
    }
    out
}

/// What the readings give for `node` from the output of each command: its version (when a
/// reading of `version` found one) and its facts. A reading that finds nothing sets nothing
/// (a note says so); a value of the wrong type is an error naming node, command and fact.
pub fn read_node(
    profile: &Profile,
    node: &str,
    outputs: &BTreeMap<String, String>,
) -> Result<(Option<String>, Facts, Vec<String>), DiscoverError> {
    let mut version = None;
    let mut facts = Facts::new();
    let mut notes = Vec::new();
    for r in &profile.discover.reads {
        let Some(out) = outputs.get(&r.command) else {
            continue;
        };
        let kind = if r.fact == VERSION {
            FactType::String
        } else {
            match profile.facts.iter().find(|f| f.name == r.fact) {
                Some(f) => f.kind,
                None => continue,
            }
        };
        let err = |message: String| DiscoverError::Node {
            node: node.to_string(),
            message: format!("`{}` (fact `{}`): {message}", r.command, r.fact),
        };
        let texts = extract(r, node, out).map_err(err)?;
        let value = match (kind, texts) {
            (FactType::List, Some(items)) => Some(FactValue::List(
                items.into_iter().map(FactValue::String).collect(),
            )),
            (_, Some(items)) => match items.into_iter().next() {
                Some(t) => Some(typed(kind, &t, r).map_err(err)?),
                None => None,
            },
            (_, None) => None,
        };
        match value {
            None => notes.push(format!(
                "{node}: `{}` printed nothing for `{}`; it is not set",
                r.command, r.fact
            )),
            Some(FactValue::String(v)) if r.fact == VERSION => version = Some(v),
            Some(v) => {
                facts.insert(r.fact.clone(), v);
            }
        }
    }
    Ok((version, facts, notes))
}

/// The texts a reading finds in `out`: every match with `all`, else the first; the node's row
/// for a table. `None`: nothing found.
fn extract(r: &Reading, node: &str, out: &str) -> Result<Option<Vec<String>>, String> {
    let re = |s: &str| Regex::new(s).map_err(|e| format!("bad regex: {e}"));
    if let Some(t) = &r.table {
        let (after, key, value) = (re(&t.after)?, re(&t.key)?, re(&t.value)?);
        let mut lines = out.lines();
        if !lines.by_ref().any(|l| after.is_match(l)) {
            return Ok(None);
        }
        for l in lines {
            if l.trim().is_empty() {
                break;
            }
            let k = key.captures(l).and_then(|c| c.name("key"));
            let v = value.captures(l).and_then(|c| c.name("value"));
            if let (Some(k), Some(v)) = (k, v) {
                if k.as_str().eq_ignore_ascii_case(node) {
                    return Ok(Some(vec![v.as_str().trim().to_string()]));
                }
            }
        }
        return Ok(None);
    }
    let Some(regex) = &r.regex else {
        return Ok(None);
    };
    let regex = re(regex)?;
    let mut values = regex
        .captures_iter(out)
        .filter_map(|c| c.name("value").map(|m| m.as_str().trim().to_string()));
    if r.all {
        return Ok(Some(values.collect()));
    }
    Ok(values.next().map(|v| vec![v]))
}

/// `text` as a value of fact type `kind` (with a number's `scale` and `digits`).
pub fn typed(kind: FactType, text: &str, r: &Reading) -> Result<FactValue, String> {
    let t = text.trim();
    match kind {
        FactType::Integer => t
            .parse::<i64>()
            .map(FactValue::Int)
            .map_err(|_| format!("`{t}` is not a whole number")),
        FactType::Number => {
            let x: f64 = t
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite())
                .ok_or_else(|| format!("`{t}` is not a number"))?;
            let mut x = x * r.scale.unwrap_or(1.0);
            if let Some(d) = r.digits {
                let p = 10f64.powi(d as i32);
                x = (x * p).round() / p;
            }
            Ok(FactValue::Float(x))
        }
        FactType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" => Ok(FactValue::Bool(true)),
            "false" | "no" | "n" => Ok(FactValue::Bool(false)),
            _ => Err(format!("`{t}` is not yes or no")),
        },
        FactType::String | FactType::Datetime => Ok(FactValue::String(t.to_string())),
        FactType::List => Ok(FactValue::List(vec![FactValue::String(t.to_string())])),
        FactType::Table => Err("a table fact cannot be read".into()),
    }
}

/// Where a node is reached when no address is given for it: the node discovery started from
/// (its listed address or name is the start's host), else its listed address (or name) with
/// the start's user.
pub fn destination(start: &str, listed: &Listed) -> String {
    let (user, host) = split_destination(start);
    let own = listed.address.as_deref().unwrap_or(&listed.name);
    if own == host || listed.name == host {
        return start.to_string();
    }
    match user {
        Some(u) => format!("{u}@{own}"),
        None => own.to_string(),
    }
}

/// The user and host of `[ssh://][user@]host[:port]`.
fn split_destination(d: &str) -> (Option<&str>, &str) {
    let rest = d.strip_prefix("ssh://").unwrap_or(d);
    let (user, host) = match rest.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let host = if d.starts_with("ssh://") {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    } else {
        host
    };
    (user, host)
}

/// Runs discovery's readings and the listing over SSH: one tokio runtime, the nodes read at
/// the same time (each on a thread of its own with its own connections).
pub struct Discoverer {
    rt: tokio::runtime::Runtime,
    opts: SshOptions,
}

/// A node to read: its name and where it is reached.
#[derive(Debug, Clone)]
pub struct ToRead {
    pub name: String,
    pub dest: String,
}

/// What was read on one node.
#[derive(Debug, Clone)]
pub struct NodeReading {
    pub name: String,
    pub version: Option<String>,
    pub facts: Facts,
    pub notes: Vec<String>,
}

impl Discoverer {
    pub fn new(opts: SshOptions) -> Result<Discoverer, DiscoverError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("ferry-discover")
            .build()?;
        Ok(Discoverer { rt, opts })
    }

    fn compiled(profile: &Profile) -> Result<Compiled, DiscoverError> {
        compile(&profile.ssh).map_err(|message| DiscoverError::Profile {
            profile: profile.profile.name.clone(),
            message,
        })
    }

    /// Runs the profile's listing on `start` and reads every node it lists. `addresses`
    /// overrides where a node is reached; `progress` hears what is done.
    pub fn discover(
        &self,
        profile: &Profile,
        start: &str,
        addresses: &BTreeMap<String, String>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(Vec<FoundNode>, Vec<String>), DiscoverError> {
        let listing = profile
            .discover
            .nodes
            .as_ref()
            .ok_or_else(|| DiscoverError::NotDiscoverable(profile.profile.name.clone()))?;
        let compiled = Self::compiled(profile)?;
        progress(&format!("{start}: {}", listing.command));
        let output = self.rt.block_on(async {
            let mut conns = Conns::new(&self.opts);
            let out = conns
                .read(
                    start,
                    start,
                    &listing.command,
                    self.opts.command_timeout,
                    &compiled,
                )
                .await;
            conns.close().await;
            out
        });
        let output = output.map_err(|message| DiscoverError::Node {
            node: start.to_string(),
            message,
        })?;
        let listed = parse_listing(profile, start, &output)?;
        for name in addresses.keys() {
            if !listed.iter().any(|l| &l.name == name) {
                return Err(DiscoverError::Node {
                    node: name.clone(),
                    message: format!(
                        "an address is given for it, but `{}` on {start} does not list it (it lists {})",
                        listing.command,
                        listed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        let nodes: Vec<ToRead> = listed
            .iter()
            .map(|l| ToRead {
                name: l.name.clone(),
                dest: addresses
                    .get(&l.name)
                    .cloned()
                    .unwrap_or_else(|| destination(start, l)),
            })
            .collect();
        let readings = self.read(profile, &nodes, progress);
        let mut found = Vec::new();
        let mut notes = Vec::new();
        for ((l, to), r) in listed.iter().zip(&nodes).zip(readings) {
            let r = r?;
            let version = r.version.ok_or_else(|| DiscoverError::Node {
                node: l.name.clone(),
                message: format!(
                    "no reading of `{VERSION}` found its version (commands: {})",
                    reading_commands(&profile.discover).join(", ")
                ),
            })?;
            notes.extend(r.notes);
            found.push(FoundNode {
                name: l.name.clone(),
                role: l.role.clone(),
                version,
                address: to.dest.clone(),
                facts: r.facts,
            });
        }
        Ok((found, notes))
    }

    /// Runs every reading command on each node (at the same time), and reads them.
    pub fn read(
        &self,
        profile: &Profile,
        nodes: &[ToRead],
        progress: &(dyn Fn(&str) + Sync),
    ) -> Vec<Result<NodeReading, DiscoverError>> {
        let compiled = match Self::compiled(profile) {
            Ok(c) => c,
            Err(e) => {
                let message = e.to_string();
                return nodes
                    .iter()
                    .map(|_| {
                        Err(DiscoverError::Profile {
                            profile: profile.profile.name.clone(),
                            message: message.clone(),
                        })
                    })
                    .collect();
            }
        };
        let commands = reading_commands(&profile.discover);
        std::thread::scope(|scope| {
            let asks: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let (commands, compiled) = (&commands, &compiled);
                    scope.spawn(move || self.read_one(profile, n, commands, compiled, progress))
                })
                .collect();
            asks.into_iter()
                .zip(nodes)
                .map(|(h, n)| {
                    h.join().unwrap_or_else(|_| {
                        Err(DiscoverError::Node {
                            node: n.name.clone(),
                            message: "its reading stopped".into(),
                        })
                    })
                })
                .collect()
        })
    }

    fn read_one(
        &self,
        profile: &Profile,
        n: &ToRead,
        commands: &[String],
        compiled: &Compiled,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<NodeReading, DiscoverError> {
        let outputs = self.rt.block_on(async {
            let mut conns = Conns::new(&self.opts);
            let mut outputs = BTreeMap::new();
            let mut failed = None;
            for c in commands {
                progress(&format!("{} ({}): {c}", n.name, n.dest));
                match conns
                    .read(&n.name, &n.dest, c, self.opts.command_timeout, compiled)
                    .await
                {
                    Ok(o) => {
                        outputs.insert(c.clone(), o);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            conns.close().await;
            match failed {
                Some(e) => Err(e),
                None => Ok(outputs),
            }
        });
        let outputs = outputs.map_err(|message| DiscoverError::Node {
            node: n.name.clone(),
            message,
        })?;
        let (version, facts, notes) = read_node(profile, &n.name, &outputs)?;
        Ok(NodeReading {
            name: n.name.clone(),
            version,
            facts,
            notes,
        })
    }
}
