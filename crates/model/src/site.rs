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
    /// What the site asks of a plan (`[site.objectives]`): the odds of fitting the booked
    /// window, and the most of each service cost it accepts. `ferry check` warns below
    /// `min_fit`; `ferry plan --compare` recommends a plan by them.
    #[serde(default, skip_serializing_if = "Objectives::is_unset")]
    pub objectives: Objectives,
    pub clusters: Vec<Cluster>,
    /// The change record's own data (`[site.change]`), when the site gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// What a change board asks of a change besides its procedure (`[site.change]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Change {
    /// The change's ID in the site's change management (`CHG0012345`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The vendor support case opened for the change (`Cisco TAC SR 694512345`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_case: Option<String>,
    /// Who does the change and can be reached during it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    /// Whom to call when the change goes wrong, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<Contact>,
    /// Who is told what, when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communication: Vec<Notice>,
    /// Go/no-go decisions along the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<Checkpoint>,
}

/// A person in the change record.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Contact {
    pub role: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// One line of the communication plan: who is told, when, and how.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Notice {
    pub who: String,
    /// When, as people say it (`48 h before the window`).
    pub when: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
}

/// A go/no-go checkpoint: when the decision is taken and what must hold to go on.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Checkpoint {
    /// When, in seconds from the window's opening (negative: before it).
    pub at_s: i64,
    /// What must hold to go on.
    pub criteria: String,
}

/// The site's objectives (`[site.objectives]`). Every one is optional; a site that states none
/// gets `DEFAULT_MIN_FIT` and no cap, then the shortest window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Objectives {
    /// The least probability of ending inside the booked window (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_fit: Option<f64>,
    /// The most calls failed (median of the rehearsals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_calls: Option<f64>,
    /// The most device-minutes unregistered, every kind of device together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_device_minutes_unregistered: Option<f64>,
    /// The most minutes on mixed versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mixed_version_minutes: Option<f64>,
    /// The longest configuration freeze, in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_freeze_hours: Option<f64>,
    /// The longest time in which a configuration change would be lost on a switch, in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_config_at_risk_hours: Option<f64>,
    /// The most minutes an HA pair runs without redundancy, every pair together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes_without_redundancy: Option<f64>,
}

/// The least probability of ending inside the booked window a plan should have when the site
/// states no `min_fit`.
pub const DEFAULT_MIN_FIT: f64 = 0.9;

impl Objectives {
    pub fn is_unset(&self) -> bool {
        *self == Objectives::default()
    }

    /// `min_fit`, or the default.
    pub fn min_fit(&self) -> f64 {
        self.min_fit.unwrap_or(DEFAULT_MIN_FIT)
    }
}

/// The maintenance window the site has booked (or its staging period).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Window {
    /// RFC 3339 start, with offset, as written in the site file.
    pub start: String,
    /// Seconds since the Unix epoch of `start`.
    pub start_epoch_s: i64,
    /// The UTC offset `start` is written in, in seconds (local time of the site).
    pub offset_s: i32,
    pub hours: f64,
    /// The IANA time zone the site names (`zone = "America/New_York"`, or a `[...]` annotation
    /// of `start`): times a person reads are shown in it, with the offset each moment has there
    /// (a night that crosses a daylight-saving change shows both). `None`: every time is shown
    /// at `offset_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Cluster {
    pub name: String,
    pub profile: String,
    pub target: VendorVersion,
    /// Site choice of strategy; `None` means the planner's default (`fastest`).
    pub strategy: Option<String>,
    pub facts: Facts,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
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
