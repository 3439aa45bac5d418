//! The set of profiles a run knows: the built-in ones embedded in the binary, plus any the user adds.

use crate::diagnostic::InputErrors;
use crate::validate::load_profile;
use ferry_model::Profile;
use std::collections::BTreeMap;

/// The built-in profiles: (name, TOML text).
pub const BUILTIN: [(&str, &str); 5] = [
    ("cisco-ucm", include_str!("../profiles/cisco-ucm.toml")),
    (
        "cisco-callmanager4",
        include_str!("../profiles/cisco-callmanager4.toml"),
    ),
    (
        "genesys-framework",
        include_str!("../profiles/genesys-framework.toml"),
    ),
    (
        "avaya-cms-ha",
        include_str!("../profiles/avaya-cms-ha.toml"),
    ),
    ("linux-ha", include_str!("../profiles/linux-ha.toml")),
];

/// A profile with the text it was read from (the text feeds the plan's input hash).
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    pub profile: Profile,
    /// `builtin` or the file it came from.
    pub origin: String,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    profiles: BTreeMap<String, LoadedProfile>,
}

impl ProfileSet {
    /// The built-in profiles. They are validated like any other; a failure is a bug in ferry.
    pub fn builtin() -> Result<Self, InputErrors> {
        let mut set = ProfileSet::default();
        for (name, text) in BUILTIN {
            set.add(&format!("builtin:{name}.toml"), text)?;
        }
        Ok(set)
    }

    /// Adds (or replaces, by name) a profile read from `origin`.
    pub fn add(&mut self, origin: &str, text: &str) -> Result<&LoadedProfile, InputErrors> {
        let profile = load_profile(origin, text)?;
        let name = profile.profile.name.clone();
        self.profiles.insert(
            name.clone(),
            LoadedProfile {
                profile,
                origin: origin.to_string(),
                text: text.to_string(),
            },
        );
        Ok(&self.profiles[&name])
    }

    pub fn get(&self, name: &str) -> Option<&LoadedProfile> {
        self.profiles.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.profiles.keys().map(|s| s.as_str()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &LoadedProfile> {
        self.profiles.values()
    }
}
