//! Loading of ferry's inputs: the built-in product profiles, user profiles and site files,
//! each validated with diagnostics that name the file, line and key.
//!
//! Pure: callers pass text in; reading files is the CLI's job.

pub mod diagnostic;
pub mod facts;
pub mod faults;
pub mod ranges;
pub mod registry;
pub mod site;
pub mod suggest;
pub mod validate;
pub mod write;

pub use diagnostic::{InputError, InputErrors};
pub use faults::load_faults;
pub use registry::{LoadedProfile, ProfileSet};
pub use site::{load_site, load_site_with_warnings};
pub use validate::load_profile;
