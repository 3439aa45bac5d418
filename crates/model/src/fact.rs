//! Free-form node and cluster facts (device counts, installed COP files, options) as plain values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A fact value from a site file. TOML datetimes arrive as strings (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
/// becomes after the upgrade, when it changes. Non-numeric or at the old suggested value: the
/// new suggested value. Custom within [min, max]: kept. Outside: clamped to the nearest bound.
pub fn migrate_parameter(p: &FactValue) -> Option<ParameterChange> {
    let t = p.as_table()?;
    let name = t.get("name")?.to_string();
    let value = t.get("value")?;
    let min = t.get("min").and_then(|v| v.as_f64());
    let max = t.get("max").and_then(|v| v.as_f64());
    let suggested = t.get("suggested").and_then(|v| v.as_f64());
    let new_suggested = t
        .get("new_suggested")
        .and_then(|v| v.as_f64())
        .or(suggested);
    let num = value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse::<f64>().ok()));
    let (new, why) = match num {
        None => (new_suggested?, "not numeric: takes the new suggested value"),
        Some(x) if Some(x) == suggested => {
            let ns = new_suggested?;
            if ns == x {
                return None;
            }
            (
                ns,
                "at the suggested value: follows the new suggested value",
            )
        }
        Some(x) => {
            if let Some(lo) = min.filter(|lo| x < *lo) {
                (lo, "below the minimum: clamped")
            } else if let Some(hi) = max.filter(|hi| x > *hi) {
                (hi, "above the maximum: clamped")
            } else {
                return None;
            }
        }
    };
    let (new_value, shown) = if new.fract() == 0.0 {
        (FactValue::Int(new as i64), format!("{}", new as i64))
    } else {
        (FactValue::Float(new), format!("{new}"))
    };
    Some(ParameterChange {
        text: format!("{name}: {value} -> {shown} ({why})"),
        name,
        new_value,
    })
}
