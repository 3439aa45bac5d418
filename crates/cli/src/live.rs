//! `ferry check SITE --agents`: the preflight against the nodes as their ferry agents see them
//! now, before anything is touched. Each node's agent is asked for its service's status; what
//! it says is laid over the site's facts where the node's profile declares them (`healthy`),
//! so the profile's own checks judge it, and ferry adds its own findings where the site and the
//! node disagree (an agent that does not answer, a version other than the site's).

use anyhow::Result;
use ferry_model::profile::FactType;
use ferry_model::{FactValue, Facts, Finding, Profile, Severity, Site};
use std::collections::BTreeMap;

/// The rule ID of ferry's own findings about the agents (not a vendor rule).
const RULE: &str = "FERRY-AGENT";

/// Asks every node's agent; the site with the observed facts laid over, and ferry's findings.
pub fn survey(
    site: &Site,
    profiles: &BTreeMap<String, Profile>,
    opts: ferry_exec::AgentOptions,
) -> Result<(Site, Vec<Finding>)> {
    let journal = ferry_exec::Journal::in_memory()?;
    let driver = ferry_exec::AgentDriver::new(&journal, site, profiles, opts)
        .map_err(|e| crate::exit::bad(e.to_string()))?;
    let mut observed = site.clone();
    let mut findings = Vec::new();
    for s in driver.survey() {
        let Some(cluster) = observed.clusters.iter_mut().find(|c| c.name == s.cluster) else {
            continue;
        };
        let Some(node) = cluster.nodes.iter_mut().find(|n| n.name == s.node) else {
            continue;
        };
        let finding = |key: &str, message: String, remedy: &str| Finding {
            key: format!("{key}:{}/{}", s.cluster, s.node),
            rule: RULE.into(),
            severity: Severity::Inhibitor,
            cluster: Some(s.cluster.clone()),
            node: Some(s.node.clone()),
            message,
            remedy: remedy.into(),
        };
        match &s.service {
            Err(e) => findings.push(finding(
                "agent-unreachable",
                format!("the agent of {} could not tell its state: {e}", s.node),
                "Start the node's agent, or correct its address, the token (--agent-token-file) or the CA (--agent-ca).",
            )),
            Ok(status) => {
                let site_version = node.version.to_string();
                match status.active.as_ref().map(|a| a.version.as_str()) {
                    None => findings.push(finding(
                        "agent-no-version",
                        format!(
                            "the site says {} runs {site_version}; its agent runs no version of `{}` (nothing switched to yet)",
                            s.node, status.name
                        ),
                        "Install the site's version through the agent first (ferry agent stage, then switch).",
                    )),
                    Some(v) if v != site_version => findings.push(finding(
                        "agent-version-differs",
                        format!(
                            "the site says {} runs {site_version}; its agent runs {v}",
                            s.node
                        ),
                        "Correct the node's `version` in the site (or finish the change made by hand), then plan again.",
                    )),
                    Some(_) => {}
                }
                if let Some(profile) = profiles.get(&cluster.profile) {
                    node.facts.extend(agent_facts(profile, status));
                }
            }
        }
    }
    Ok((observed, findings))
}

/// The facts an agent's status gives, where the profile declares them with that type:
/// `healthy` (bool, the health check passes), `replication_state` (integer, 0 to 4) and
/// `inactive_version` (string, the inactive slot's version). `check --agents` lays them over
/// the site's facts; `discover --agents` writes them.
pub fn agent_facts(profile: &Profile, status: &ferry_model::agent::ServiceStatus) -> Facts {
    let declares = |name: &str, kind: FactType| {
        profile
            .facts
            .iter()
            .any(|f| f.name == name && f.kind == kind)
    };
    let mut facts = Facts::new();
    if declares("healthy", FactType::Bool) {
        facts.insert(
            "healthy".into(),
            FactValue::Bool(status.health == ferry_model::agent::Health::Healthy),
        );
    }
    if let Some(r) = status.replication {
        if declares("replication_state", FactType::Integer) {
            facts.insert("replication_state".into(), FactValue::Int(i64::from(r)));
        }
    }
    if let Some(v) = &status.inactive {
        if declares("inactive_version", FactType::String) {
            facts.insert(
                "inactive_version".into(),
                FactValue::String(v.version.clone()),
            );
        }
    }
    facts
}
