//! Writing a site file: the TOML a user would have typed (the layout of `examples/*.toml`), from
//! what `ferry discover` found or `ferry import` read. Pure: data in, text out; the text is
//! meant to be loaded back with `load_site`, which judges it.

use ferry_model::{FactValue, Facts};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A site to write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteDraft {
    pub name: String,
    pub clusters: Vec<ClusterDraft>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterDraft {
    pub name: String,
    pub profile: String,
    pub target: String,
    /// Targets of the roles with builds of their own (`targets.<role>`).
    pub targets: BTreeMap<String, String>,
    pub facts: Facts,
    pub nodes: Vec<NodeDraft>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeDraft {
    pub name: String,
    pub role: String,
    pub version: String,
    pub address: Option<String>,
    pub facts: Facts,
}

/// The site as TOML, `header` (comment lines, without `#`) first. Also the 1-based line of
/// each node's `[[cluster.node]]` header, by cluster and node index, so that an error found
/// when the text is loaded back can be traced to the input the node came from.
pub fn site_toml(site: &SiteDraft, header: &[String]) -> (String, Vec<Vec<usize>>) {
    let mut s = String::new();
    for h in header {
        let _ = writeln!(s, "# {h}");
    }
    let _ = writeln!(s, "[site]\nname = {}", string(&site.name));
    let mut lines = Vec::new();
    let (mut lines_so_far, mut counted) = (0, 0);
    for c in &site.clusters {
        let _ = writeln!(
            s,
            "\n[[cluster]]\nname = {}\nprofile = {}\ntarget = {}",
            string(&c.name),
            string(&c.profile),
            string(&c.target)
        );
        if !c.targets.is_empty() {
            let items: Vec<String> = c
                .targets
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), string(v)))
                .collect();
            let _ = writeln!(s, "targets = {{ {} }}", items.join(", "));
        }
        if !c.facts.is_empty() {
            let _ = writeln!(s, "facts = {}", table(&c.facts));
        }
        let mut at = Vec::new();
        for n in &c.nodes {
            // Lines so far, counted as the text grows (a count of the whole text per node
            // made a large inventory quadratic).
            lines_so_far += s[counted..].matches('\n').count();
            counted = s.len();
            at.push(lines_so_far + 2);
            let _ = writeln!(
                s,
                "\n[[cluster.node]]\nname = {}\nrole = {}\nversion = {}",
                string(&n.name),
                string(&n.role),
                string(&n.version)
            );
            if let Some(a) = &n.address {
                let _ = writeln!(s, "address = {}", string(a));
            }
            if !n.facts.is_empty() {
                let _ = writeln!(s, "facts = {}", table(&n.facts));
            }
        }
        lines.push(at);
    }
    (s, lines)
}

/// A TOML basic string (JSON's escapes are TOML's).
fn string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        string(k)
    }
}

fn table(t: &BTreeMap<String, FactValue>) -> String {
    let items: Vec<String> = t
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), value(v)))
        .collect();
    if items.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// A fact value as TOML; a whole float keeps its point (`44.0`), so it stays a float.
pub fn value(v: &FactValue) -> String {
    match v {
        FactValue::Bool(b) => b.to_string(),
        FactValue::Int(i) => i.to_string(),
        FactValue::Float(x) if x.is_finite() && x.fract() == 0.0 => format!("{x:.1}"),
        FactValue::Float(x) if x.is_finite() => format!("{x}"),
        FactValue::Float(_) => "0.0".into(),
        FactValue::String(s) => string(s),
        FactValue::List(l) => format!("[{}]", l.iter().map(value).collect::<Vec<_>>().join(", ")),
        FactValue::Table(t) => table(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value as written.
    fn check(v: FactValue, expected: &str) {
        assert_eq!(value(&v), expected);
    }

    #[test]
    fn values_keep_their_toml_type() {
        check(FactValue::Float(44.0), "44.0");
        check(FactValue::Float(44.09), "44.09");
        check(FactValue::Int(2), "2");
        check(FactValue::String("a \"b\"\n".into()), "\"a \\\"b\\\"\\n\"");
        check(
            FactValue::List(vec![FactValue::String("x.cop".into())]),
            "[\"x.cop\"]",
        );
        check(FactValue::List(vec![]), "[]");
    }
}
