//! The preflight report (`ferry check`): findings as text or JSON.

use ferry_model::plan::SCHEMA_VERSION;
use ferry_model::{Finding, Severity};
use serde::Serialize;
use std::fmt::Write;

/// The JSON layout of `ferry check --format json`. Fields may be added, never renamed.
#[derive(Serialize, schemars::JsonSchema)]
pub struct CheckReport<'a> {
    pub schema_version: u32,
    pub site: &'a str,
    pub findings: &'a [Finding],
    pub inhibitors: usize,
    pub warnings: usize,
}

pub fn inhibitors(findings: &[Finding]) -> usize {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Inhibitor)
        .count()
}

pub fn check_json(site: &str, findings: &[Finding]) -> String {
    let report = CheckReport {
        schema_version: SCHEMA_VERSION,
        site,
        findings,
        inhibitors: inhibitors(findings),
        warnings: findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count(),
    };
    serde_json::to_string_pretty(&report).expect("findings serialise") + "\n"
}

/// Text report: one block per finding, inhibitors first within each cluster, then a summary.
pub fn check_text(site: &str, findings: &[Finding]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Preflight report for site {site}");
    if findings.is_empty() {
        let _ = writeln!(out, "\nNo findings: nothing blocks the upgrade.");
        return out;
    }
    for f in findings {
        let place = match (&f.cluster, &f.node) {
            (Some(c), Some(n)) => format!("{c}/{n}"),
            (Some(c), None) => c.clone(),
            _ => "site".into(),
        };
        let _ = writeln!(
            out,
            "\n[{}] {} {} ({})",
            f.severity.as_str().to_uppercase(),
            f.rule,
            place,
            f.key
        );
        let _ = writeln!(out, "  {}", f.message);
        if !f.remedy.is_empty() {
            let _ = writeln!(out, "  remedy: {}", f.remedy);
        }
    }
    let n_inh = inhibitors(findings);
    let n_warn = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    let n_info = findings.len() - n_inh - n_warn;
    let _ = writeln!(
        out,
        "\n{n_inh} inhibitor(s), {n_warn} warning(s), {n_info} info. {}",
        if n_inh > 0 {
            "The upgrade is blocked until every inhibitor is resolved."
        } else {
            "Nothing blocks the upgrade."
        }
    );
    out
}
