//! A site: the clusters that exist, what each runs now, and the version it should reach.
//!
//! This is the validated form. Parsing with line-accurate diagnostics lives in `ferry-profiles`.

use crate::fact::Facts;
use crate::version::VendorVersion;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub name: String,
    pub window: Option<Window>,
    /// The staging period the site books before its window: work the profiles let run while
    /// the nodes keep serving is planned in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Window>,
    pub clusters: Vec<Cluster>,
}

/// The maintenance window the site has booked (or its staging period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// RFC 3339 start, with offset, as written in the site file.
    pub start: String,
    /// Seconds since the Unix epoch of `start`.
    pub start_epoch_s: i64,
    /// The UTC offset `start` is written in, in seconds (local time of the site).
    pub offset_s: i32,
    pub hours: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    pub profile: String,
    pub target: VendorVersion,
    /// Site choice of strategy; `None` means the planner's default (`fastest`).
    pub strategy: Option<String>,
    pub facts: Facts,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub role: String,
    pub version: VendorVersion,
    /// The version this node must reach (node `target`, else the cluster's `targets.<role>`, else the cluster target).
    pub target: VendorVersion,
    pub address: Option<String>,
    pub facts: Facts,
}

impl Node {
    /// Whether the plan has work to do on this node.
    pub fn upgrading(&self) -> bool {
        self.version < self.target
    }
}

impl Cluster {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
