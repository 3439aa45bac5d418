//! `ferry-twin`: a **simulated** digital twin of a site, for rehearsing a plan before the
//! window opens. Nothing here touches a real system.
//!
//! The twin is a discrete-event simulation in virtual time, deterministic for a given seed. It
//! composes generic behaviours that a profile's `[twin]` section selects and parameterises (no
//! product is named in this crate): nodes with an active and an inactive version, replicated
//! databases converging through states 0–4, devices registered through failover groups within
//! server capacity, HA pairs promoting by heartbeat or through a controller, configuration
//! servers with read-only and upgrade modes and their log events, client sessions, data
//! collectors fed by links and archived per interval, configuration changes that are lost when
//! the side holding them stops being active. Steps act on it through their effects.
//!
//! `audit` checks a run's trace against the profiles' rules independently of the planner;
//! `impact` reports what the run did to the service.

pub mod audit;
mod collector;
mod config;
mod devices;
mod effects;
mod gates;
pub mod impact;
mod pairs;
mod replication;
mod serde_pairs;
mod setup;
pub mod summary;
mod tallies;
mod world;

pub use audit::{audit, audit_runs, RunPlan, Violation};
pub use impact::{impact, ClusterImpact, Impact, PairImpact, SourceImpact, StagingImpact};
pub use summary::{figures, summarise, Distribution, RunFigures, Summary};
pub use world::{
    Incident, LogEvent, NodeState, Record, RunId, StepStatus, TraceEntry, TwinError, World,
};
