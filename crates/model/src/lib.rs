//! Plain data shared by every part of ferry: sites, profiles, plans, findings and vendor versions.
//!
//! Nothing here does IO. Types serialise with serde so that they can cross every boundary
//! (files, JSON output, the journal) unchanged.

pub mod agent;
pub mod capacity;
pub mod condition;
pub mod discover;
pub mod effect;
pub mod fact;
pub mod fault;
pub mod finding;
pub mod plan;
pub mod profile;
pub mod redundancy;
pub mod run;
pub mod site;
pub mod ssh;
pub mod twin;
pub mod version;

pub use effect::{Effect, Wait};
pub use fact::{FactValue, Facts};
pub use fault::{Fault, FaultKind, Faults};
pub use finding::{Finding, Severity};
pub use plan::{ClusterPlan, Estimate, Impact, Measure, Phase, Plan, PlannedStep, StepKind};
pub use profile::Profile;
pub use run::{Outcome, ProgressState, RunProgress, StepProgress};
pub use site::{Cluster, Node, Objectives, Site};
pub use version::{pattern_matches, VendorVersion, VersionError, VersionPattern};
