//! Version paths (direct edges and mandatory hops) and the choice of upgrade type.

use crate::condition::{eval, Scope};
use ferry_model::profile::VersionRules;
use ferry_model::{Cluster, Profile, VendorVersion};

fn matches(pattern: &str, v: &VendorVersion) -> bool {
    ferry_model::pattern_matches(pattern, v)
}

/// The versions from `from` to `to`, both included, or `None` when no supported path exists.
/// A profile without edges accepts every upgrade directly.
pub fn version_path(
    rules: &VersionRules,
    from: &VendorVersion,
    to: &VendorVersion,
) -> Option<Vec<VendorVersion>> {
    fn walk(
        rules: &VersionRules,
        from: &VendorVersion,
        to: &VendorVersion,
        depth: usize,
    ) -> Option<Vec<VendorVersion>> {
        if from >= to {
            return Some(vec![from.clone()]);
        }
        if depth > 8 {
            return None;
        }
        if rules.edges.is_empty()
            || rules
                .edges
                .iter()
                .any(|e| e.from.iter().any(|p| matches(p, from)) && matches(&e.to, to))
        {
            return Some(vec![from.clone(), to.clone()]);
        }
        for hop in &rules.hops {
            if hop.from.iter().any(|p| matches(p, from)) && matches(&hop.to, to) {
                let via = VendorVersion::parse(&hop.via).ok()?;
                if via <= *from {
                    continue;
                }
                let mut rest = walk(rules, &via, to, depth + 1)?;
                rest.insert(0, from.clone());
                return Some(rest);
            }
        }
        None
    }
    walk(rules, from, to, 0)
}

/// The rule ID behind the hop from `from` (if any hop applies).
pub fn hop_rule(rules: &VersionRules, from: &VendorVersion, to: &VendorVersion) -> Option<String> {
    rules
        .hops
        .iter()
        .find(|h| h.from.iter().any(|p| matches(p, from)) && matches(&h.to, to))
        .map(|h| h.rule.clone())
}

/// The first upgrade type whose condition holds for this cluster, with its rule.
pub fn upgrade_type(
    profile: &Profile,
    cluster: &Cluster,
    strategy: &str,
    leg: (usize, usize),
) -> (String, String) {
    let scope = Scope {
        cluster,
        profile,
        upgrade_type: None,
        strategy,
        leg,
        run: None,
        // The upgrade type is the versions' and the product's: staging does not choose it.
        staging: false,
    };
    profile
        .upgrade_types
        .iter()
        .find(|u| u.when.as_ref().is_none_or(|c| eval(c, &scope, None)))
        .or(profile.upgrade_types.last())
        .map(|u| (u.name.clone(), u.rule.clone()))
        .unwrap_or_else(|| ("standard".into(), String::new()))
}
