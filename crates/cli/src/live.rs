//! `ferry check SITE --agents`: the preflight against the nodes as their ferry agents see them
//! now, before anything is touched. Each node's agent is asked for its service's status; what
//! it says is laid over the site's facts where the node's profile declares them (`healthy`),
//! so the profile's own checks judge it, and ferry adds its own findings where the site and the
//! node disagree (an agent that does not answer, a version other than the site's).

use anyhow::Result;
use ferry_model::profile::FactType;
use ferry_model::{FactValue, Finding, Profile, Severity, Site};
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
        let declares_healthy = profiles.get(&cluster.profile).is_some_and(|p| {
            p.facts
                .iter()
                .any(|f| f.name == "healthy" && f.kind == FactType::Bool)
        });
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
                if declares_healthy {
                    node.facts.insert(
                        "healthy".into(),
                        FactValue::Bool(status.health == ferry_model::agent::Health::Healthy),
                    );
                }
            }
        }
    }
    Ok((observed, findings))
}
