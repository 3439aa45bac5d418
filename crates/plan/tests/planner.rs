//! The planner's integration tests: each product's rules, checked on plans of real sites.
//!
//! One module per profile; `common` holds the helpers they share.

#[path = "planner/common.rs"]
mod common;

#[path = "planner/linux_ha.rs"]
mod linux_ha;
