//! Faults files (`ferry rehearse --faults FILE`): TOML into `Faults`, each problem located at
//! its line and key.

use crate::diagnostic::{located, InputErrors, PathSeg, Problem, SourceFile};
use ferry_model::{FaultKind, Faults};

/// Parses and checks a faults file. `origin` is how errors name the file.
pub fn load_faults(origin: &str, text: &str) -> Result<Faults, InputErrors> {
    let src = SourceFile { name: origin, text };
    crate::diagnostic::checked_toml(&src, crate::ranges::FileKind::Faults)?;
    let faults: Faults = toml::from_str(text).map_err(|e| InputErrors {
        file: origin.to_string(),
        errors: vec![src.from_toml(&e)],
    })?;
    let mut problems: Vec<Problem> = Vec::new();
    for (i, f) in faults.faults.iter().enumerate() {
        let at = |key: &str| {
            vec![
                PathSeg::Key("fault".into()),
                PathSeg::Index(i),
                PathSeg::Key(key.into()),
            ]
        };
        if f.step.is_none() && f.at_min.is_none() && f.kind != FaultKind::ReplicationStuck {
            problems.push((
                at("kind"),
                format!("a `{}` fault needs `step` or `at_min`", f.kind.as_str()),
                Some("name the step it fires at (`step = \"cluster/node/action\"` or `\"*/action\"`), or the minute".into()),
            ));
        }
        if f.step.is_none() && f.node.is_none() {
            problems.push((
                at("kind"),
                format!("a `{}` fault without a step needs `node`", f.kind.as_str()),
                None,
            ));
        }
        if let Some(p) = f.probability {
            if !(0.0..=1.0).contains(&p) {
                problems.push((
                    at("probability"),
                    format!("probability must be within 0 and 1, found {p}"),
                    None,
                ));
            }
        }
        if let Some(s) = f.state {
            if !(3..=4).contains(&s) {
                problems.push((
                    at("state"),
                    format!("replication can be stuck at 3 (out of sync) or 4 (failed), not {s}"),
                    None,
                ));
            }
        }
        for (key, v) in [
            ("factor", f.factor),
            ("at_min", f.at_min),
            ("recover_min", f.recover_min),
        ] {
            if let Some(x) = v {
                if !(x.is_finite() && x >= 0.0) {
                    problems.push((
                        at(key),
                        format!("{key} must be a non-negative number, found {x}"),
                        None,
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(faults)
    } else {
        Err(located(&src, problems))
    }
}
