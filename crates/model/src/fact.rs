//! Free-form node and cluster facts (device counts, installed COP files, options) as plain values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A fact value from a site file. TOML datetimes arrive as strings (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(untagged)]
pub enum FactValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<FactValue>),
    Table(BTreeMap<String, FactValue>),
}

/// Facts of one node or cluster, ordered by key so output is deterministic.
pub type Facts = BTreeMap<String, FactValue>;

impl FactValue {
    /// The name of this value's type as a site file author would call it.
    pub fn type_name(&self) -> &'static str {
        match self {
            FactValue::Bool(_) => "bool",
            FactValue::Int(_) => "integer",
            FactValue::Float(_) => "float",
            FactValue::String(_) => "string",
            FactValue::List(_) => "list",
            FactValue::Table(_) => "table",
        }
    }

    /// The value as a number, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FactValue::Int(i) => Some(*i as f64),
            FactValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FactValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FactValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[FactValue]> {
        match self {
            FactValue::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&BTreeMap<String, FactValue>> {
        match self {
            FactValue::Table(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for FactValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactValue::Bool(b) => write!(f, "{b}"),
            FactValue::Int(i) => write!(f, "{i}"),
            FactValue::Float(x) => write!(f, "{x}"),
            FactValue::String(s) => write!(f, "{s}"),
            FactValue::List(l) => {
                write!(f, "[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            FactValue::Table(t) => {
                write!(f, "{{")?;
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k} = {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// `CCM0300` becomes `CCM0301`: the trailing number incremented, its width kept.
pub fn increment_trailing(s: &str) -> String {
    let digits = s.chars().rev().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return s.to_string();
    }
    let (head, num) = s.split_at(s.len() - digits);
    match num.parse::<u128>() {
        Ok(n) => format!("{head}{:0width$}", n + 1, width = digits),
        Err(_) => s.to_string(),
    }
}

/// A service parameter's value for the new version.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterChange {
    pub name: String,
    pub new_value: FactValue,
    /// `name: old -> new (why)`.
    pub text: String,
}

/// What a service parameter (a table `{ name, value, min, max, suggested, new_suggested }`)
/// becomes after the upgrade, when it changes. Non-numeric: the new suggested value (numeric or
/// not), unless it already has it. At the old suggested value: the new suggested value. Custom
/// within [min, max]: kept. Outside: clamped to the nearest bound. `new_suggested` defaults to
/// `suggested`.
pub fn migrate_parameter(p: &FactValue) -> Option<ParameterChange> {
    let t = p.as_table()?;
    let name = t.get("name")?.to_string();
    let value = t.get("value")?;
    let min = t.get("min").and_then(|v| v.as_f64());
    let max = t.get("max").and_then(|v| v.as_f64());
    let suggested = t.get("suggested").and_then(numeric);
    let new_suggested = t.get("new_suggested").or_else(|| t.get("suggested"));
    let (new_value, why) = match numeric(value) {
        None => {
            let ns = new_suggested?;
            if same_setting(value, ns) {
                return None;
            }
            (normalised(ns), "not numeric: takes the new suggested value")
        }
        Some(x) if Some(x) == suggested => {
            let ns = new_suggested?;
            if numeric(ns) == Some(x) {
                return None;
            }
            (
                normalised(ns),
                "at the suggested value: follows the new suggested value",
            )
        }
        Some(x) => {
            if let Some(lo) = min.filter(|lo| x < *lo) {
                (number(lo), "below the minimum: clamped")
            } else if let Some(hi) = max.filter(|hi| x > *hi) {
                (number(hi), "above the maximum: clamped")
            } else {
                return None;
            }
        }
    };
    Some(ParameterChange {
        text: format!("{name}: {value} -> {new_value} ({why})"),
        name,
        new_value,
    })
}

/// A parameter value as a number: a number, or a string that reads as one.
fn numeric(v: &FactValue) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
}

/// Two non-numeric settings are the same when equal, or written alike but for case (`True`
/// in the administration pages, `true` in a site file).
fn same_setting(a: &FactValue, b: &FactValue) -> bool {
    a == b
        || a.to_string()
            .trim()
            .eq_ignore_ascii_case(b.to_string().trim())
}

/// A number as a fact: an integer when it is whole.
fn number(x: f64) -> FactValue {
    if x.fract() == 0.0 {
        FactValue::Int(x as i64)
    } else {
        FactValue::Float(x)
    }
}

/// A suggested value as the parameter will hold it: numbers as `number` makes them, other
/// values as they are.
fn normalised(v: &FactValue) -> FactValue {
    numeric(v).map_or_else(|| v.clone(), number)
}
