//! The planner's integration tests: each product's rules, checked on plans of real sites.
//!
//! One module per profile; `common` holds the helpers they share.

#[path = "planner/common.rs"]
mod common;

#[path = "planner/linux_ha.rs"]
mod linux_ha;

#[path = "planner/cisco_ucm.rs"]
mod cisco_ucm;

#[path = "planner/callmanager4.rs"]
mod callmanager4;

#[path = "planner/genesys.rs"]
mod genesys;

#[path = "planner/avaya_cms.rs"]
mod avaya_cms;

#[path = "planner/scheduler.rs"]
mod scheduler;

#[path = "planner/engine.rs"]
mod engine;

#[path = "planner/hardening.rs"]
mod hardening;

#[path = "planner/bounds.rs"]
mod bounds;

#[path = "planner/input.rs"]
mod input;

#[path = "planner/batches.rs"]
mod batches;
