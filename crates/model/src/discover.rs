//! How `ferry discover` and `ferry check --ssh` read a cluster from its nodes' CLI: the
//! profile's `[discover]` section. Plain data: the command that lists the cluster's nodes (a
//! regex per row), the rules that give each listed node its role, and the readings that turn a
//! command's output on each node into its version or one of the profile's facts. The engine in
//! `ferry-exec` runs it over SSH; `ferry-profiles` validates it. The format is documented in
//! `docs/profiles.md` ("Discovery").

use crate::ssh::TableParser;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The name a reading gives to set the node's version rather than a fact.
pub const VERSION: &str = "version";

/// The profile's `[discover]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverSpec {
    /// The command, run on the node discovery starts from, that lists every node of the
    /// cluster, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeListing>,
    /// Which role a listed node has: the first rule whose `when` holds and whose role still
    /// has room (the role's `max`).
    #[serde(default, rename = "role", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleRule>,
    /// What is read on each node: its version and facts.
    #[serde(default, rename = "read", skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<Reading>,
}

impl DiscoverSpec {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_none() && self.roles.is_empty() && self.reads.is_empty()
    }
}

/// `nodes = { command = "...", row = '...' }`: every line of the command's output that `row`
/// matches is a node; its `name` capture is the node's name, its `address` capture (when the
/// regex has one) where it is reached, and every named capture can be tested by a role rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeListing {
    pub command: String,
    pub row: String,
}

/// `[[discover.role]]`: a listed node whose captures match every regex of `when` has `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    pub role: String,
    /// Capture name of the listing's `row` → regex its text must match.
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// `[[discover.read]]`: a command run on each node and what its output gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    /// `version` (the node's version), or a fact the profile declares; the value is typed by
    /// the fact's type.
    pub fact: String,
    /// The command (run once per node, however many readings share it).
    pub command: String,
    /// One value: the `value` capture of the first match (with `all`, of every match: a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// With `regex`: every match, for a list fact.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// A table with a row per node: the value of the row whose key is the node's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableParser>,
    /// A number fact: the value read is multiplied by this (e.g. kilobytes to gigabytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// A number fact: rounded to this many decimals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}
