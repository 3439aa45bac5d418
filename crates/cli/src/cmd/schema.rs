//! `ferry schema NAME`: the JSON Schema (draft 7) of a site file or of one of ferry's JSON
//! outputs, derived from the types ferry reads and writes (schemars). `docs/schema/` holds
//! the same texts, which a test keeps equal to what this command prints.

use crate::args::Global;
use crate::load::{write_out, SavedPlan};
use anyhow::Result;
use clap::ValueEnum;
use ferry_model::plan::SCHEMA_VERSION;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Which schema.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaName {
    /// A site file (TOML), as its author writes it: for editors (taplo's `#:schema`).
    Site,
    /// `ferry plan --format json`: the plan and the texts it was made from.
    Plan,
    /// `ferry plan --compare --format json`: every strategy rehearsed and compared.
    Compare,
    /// `ferry check --format json`: the preflight report.
    Check,
    /// `ferry rehearse --format json`: one rehearsal, or a Monte Carlo one (`--runs N`).
    Rehearsal,
    /// `ferry status --format json`: a run of the journal.
    Status,
}

impl SchemaName {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaName::Site => "site",
            SchemaName::Plan => "plan",
            SchemaName::Compare => "compare",
            SchemaName::Check => "check",
            SchemaName::Rehearsal => "rehearsal",
            SchemaName::Status => "status",
        }
    }

    fn title(self) -> &'static str {
        match self {
            SchemaName::Site => "ferry site file",
            SchemaName::Plan => "ferry plan --format json",
            SchemaName::Compare => "ferry plan --compare --format json",
            SchemaName::Check => "ferry check --format json",
            SchemaName::Rehearsal => "ferry rehearse --format json",
            SchemaName::Status => "ferry status --format json",
        }
    }
}

/// Print the JSON Schema of a site file or of a JSON output.
///
/// The schemas are JSON Schema draft 7, derived from the types ferry reads and writes, and
/// published in docs/schema/ (NAME.schema.json). The site's schema is for editors: taplo
/// (Even Better TOML) reads a first line `#:schema PATH` in a site file. The outputs' schemas
/// are open (a later ferry may add fields, never rename them) and pin `schema_version`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
ferry schema site -o site.schema.json\n  \
ferry schema plan > plan.schema.json")]
pub struct Args {
    /// The schema.
    #[arg(value_enum)]
    name: SchemaName,
    /// Write the schema to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(_: &Global, a: Args) -> Result<ExitCode> {
    write_out(a.output.as_deref(), &text(a.name))?;
    Ok(ExitCode::SUCCESS)
}

/// The schema as `ferry schema NAME` prints it (and `docs/schema/NAME.schema.json` holds it).
pub fn text(name: SchemaName) -> String {
    serde_json::to_string_pretty(&schema(name)).expect("a schema serialises") + "\n"
}

/// The schema of `name`, with its `$id` (`urn:ferry:schema:NAME:VERSION`, VERSION being the
/// outputs' `schema_version`) and title.
pub fn schema(name: SchemaName) -> Value {
    let mut schema = match name {
        SchemaName::Site => ferry_profiles::site::site_schema(),
        SchemaName::Plan => output::<SavedPlan<'static>>(),
        SchemaName::Compare => output::<ferry_exec::compare::Comparison>(),
        SchemaName::Check => output::<ferry_plan::report::CheckReport<'static>>(),
        SchemaName::Rehearsal => output::<ferry_exec::RehearseReport<'static>>(),
        SchemaName::Status => output::<crate::runs::StatusReport<'static>>(),
    };
    if let Value::Object(o) = &mut schema {
        o.insert(
            "$id".into(),
            format!("urn:ferry:schema:{}:{SCHEMA_VERSION}", name.as_str()).into(),
        );
        o.insert("title".into(), name.title().into());
    }
    unwrap_descriptions(&mut schema);
    schema
}

/// Descriptions come from doc comments: their lines are joined into paragraphs, as an editor
/// shows them on hover.
fn unwrap_descriptions(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(d)) = o.get_mut("description") {
                *d = d
                    .split("\n\n")
                    .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            o.values_mut().for_each(unwrap_descriptions);
        }
        Value::Array(a) => a.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// The schema of an output type: what it serialises to, `schema_version` pinned.
fn output<T: schemars::JsonSchema>() -> Value {
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    pin_schema_version(&mut schema);
    schema
}

/// Every object schema with a `schema_version` property: it is this ferry's.
fn pin_schema_version(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(p)) = o
                .get_mut("properties")
                .and_then(|p| p.get_mut("schema_version"))
            {
                p.insert("const".into(), SCHEMA_VERSION.into());
            }
            o.values_mut().for_each(pin_schema_version);
        }
        Value::Array(a) => a.iter_mut().for_each(pin_schema_version),
        _ => {}
    }
}
