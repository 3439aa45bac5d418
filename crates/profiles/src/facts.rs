//! Conversion of TOML fact tables into plain fact values.

use ferry_model::{FactValue, Facts};

/// A TOML value as a fact. Datetimes become their RFC 3339 text.
pub fn fact_from_toml(v: &toml::Value) -> FactValue {
    match v {
        toml::Value::String(s) => FactValue::String(s.clone()),
        toml::Value::Integer(i) => FactValue::Int(*i),
        toml::Value::Float(f) => FactValue::Float(*f),
        toml::Value::Boolean(b) => FactValue::Bool(*b),
        toml::Value::Datetime(d) => FactValue::String(d.to_string()),
        toml::Value::Array(a) => FactValue::List(a.iter().map(fact_from_toml).collect()),
        toml::Value::Table(t) => FactValue::Table(
            t.iter()
                .map(|(k, v)| (k.clone(), fact_from_toml(v)))
                .collect(),
        ),
    }
}

pub fn facts_from_toml(t: &toml::Table) -> Facts {
    t.iter()
        .map(|(k, v)| (k.clone(), fact_from_toml(v)))
        .collect()
}
