//! `ferry import CSV`: a site file from an inventory spreadsheet. The columns are `name`,
//! `role`, `version` and `address` (optional), then any of the profile's facts, one per
//! column, each cell typed by the fact's type (a list's items separated by `;`; an empty cell
//! states nothing). Every problem is named by its row (the header is row 1, as a spreadsheet
//! numbers them) and column (its letter and header), all of them in one run; the site written
//! is loaded back before it is given out.

use crate::cmd::discover::{emit, write_site, SiteFlags};
use crate::exit::bad;
use anyhow::Result;
use ferry_model::profile::FactType;
use ferry_model::{FactValue, Facts};
use ferry_profiles::write::NodeDraft;
use std::path::PathBuf;
use std::process::ExitCode;

/// Write a site file from an inventory spreadsheet (CSV: name, role, version, address,
/// then fact columns); every bad cell is named by its row and column.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// The inventory (CSV, with a header row).
    csv: PathBuf,
    #[command(flatten)]
    site: SiteFlags,
}

/// The most problems listed; the rest are counted.
const MAX_LISTED: usize = 50;

/// The columns ferry reads itself.
const NAME: &str = "name";
const ROLE: &str = "role";
const VERSION: &str = "version";
const ADDRESS: &str = "address";

pub fn run(g: &crate::args::Global, args: ImportArgs) -> Result<ExitCode> {
    let profile_dirs: &[PathBuf] = &g.profiles;
    let set = crate::load::load_profiles(profile_dirs)?;
    let profile = crate::cmd::discover::profile_of(&set, &args.site.profile)?;
    let text = crate::load::read(&args.csv)?;
    let file = args.csv.display().to_string();
    let (nodes, rows) = read_inventory(profile, &text).map_err(|problems| {
        let more = problems.len().saturating_sub(MAX_LISTED);
        let mut msg = problems
            .iter()
            .take(MAX_LISTED)
            .map(|p| format!("{file}: {p}"))
            .collect::<Vec<_>>()
            .join("\n");
        if more > 0 {
            msg.push_str(&format!("\n{file}: ... and {more} more"));
        }
        bad(msg)
    })?;
    let from = format!("imported by `ferry import` from {file}");
    let (site, summary) = write_site(
        &set,
        profile,
        &args.site,
        nodes,
        Vec::new(),
        &from,
        |k, _| rows.get(k).map(|r| format!("{file}: row {r}")),
    )?;
    emit(&args.site, &site, summary)
}

/// A column's letters, as a spreadsheet names it (A, B, ..., Z, AA, ...).
pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut s = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        s.push(b'A' + r as u8);
        n = (n - 1) / 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// Where a cell is: `row R, column C (header)`.
fn cell(row: usize, col: usize, header: &str) -> String {
    format!("row {row}, column {} ({header})", column_letters(col))
}

/// The nodes of an inventory, and the row each came from; or every problem, located.
pub fn read_inventory(
    profile: &ferry_model::Profile,
    text: &str,
) -> Result<(Vec<NodeDraft>, Vec<usize>), Vec<String>> {
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.to_string()).collect(),
        Err(e) => return Err(vec![format!("row 1: not a CSV header: {e}")]),
    };
    let find = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (name_col, role_col, version_col, address_col) =
        (find(NAME), find(ROLE), find(VERSION), find(ADDRESS));
    for (col, name) in [(name_col, NAME), (role_col, ROLE), (version_col, VERSION)] {
        if col.is_none() {
            problems.push(format!(
                "row 1: no column `{name}` (the header names {}; the columns are name, role, version, address, then facts)",
                headers.join(", ")
            ));
        }
    }
    // The fact columns: every other header, a fact the profile declares.
    let mut facts: Vec<(usize, String, FactType)> = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if [name_col, role_col, version_col, address_col].contains(&Some(i)) {
            continue;
        }
        if h.is_empty() {
            problems.push(format!("{}: the column has no name", cell(1, i, h)));
            continue;
        }
        match profile.facts.iter().find(|f| f.name == *h) {
            Some(f) if f.kind == FactType::Table => problems.push(format!(
                "{}: `{h}` is a table fact, which a cell cannot hold: state it in the site file",
                cell(1, i, h)
            )),
            Some(f) => facts.push((i, h.clone(), f.kind)),
            None => {
                let near = ferry_profiles::suggest::nearest(
                    h,
                    profile.facts.iter().map(|f| f.name.as_str()),
                );
                problems.push(format!(
                    "{}: profile `{}` declares no fact `{h}`{}",
                    cell(1, i, h),
                    profile.profile.name,
                    near.map(|n| format!(" (did you mean `{n}`?)"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (name_col, role_col, version_col) = (
        name_col.unwrap_or_default(),
        role_col.unwrap_or_default(),
        version_col.unwrap_or_default(),
    );
    let roles = profile.role_names();
    let mut nodes = Vec::new();
    let mut rows = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (k, record) in reader.records().enumerate() {
        let row = k + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("row {row}: not CSV: {e}"));
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > headers.len() {
            problems.push(format!(
                "row {row}: {} cells, the header has {} columns",
                record.len(),
                headers.len()
            ));
            continue;
        }
        let get = |c: usize| record.get(c).unwrap_or("");
        let name = get(name_col);
        if name.is_empty() {
            problems.push(format!("{}: no node name", cell(row, name_col, NAME)));
        } else if let Some(first) = seen.insert(name.to_string(), row) {
            problems.push(format!(
                "{}: node `{name}` is on row {first} already",
                cell(row, name_col, NAME)
            ));
        }
        let role = get(role_col);
        if !roles.contains(&role) {
            problems.push(format!(
                "{}: `{role}` is not a role of profile `{}` (roles: {})",
                cell(row, role_col, ROLE),
                profile.profile.name,
                roles.join(", ")
            ));
        }
        let version = get(version_col);
        if let Err(e) = ferry_model::VendorVersion::parse(version) {
            problems.push(format!(
                "{}: `{version}` is not a version: {e}",
                cell(row, version_col, VERSION)
            ));
        }
        let mut node_facts = Facts::new();
        for (c, fact, kind) in &facts {
            let t = get(*c);
            if t.is_empty() {
                continue;
            }
            match cell_value(*kind, t) {
                Ok(v) => {
                    node_facts.insert(fact.clone(), v);
                }
                Err(e) => problems.push(format!("{}: {e}", cell(row, *c, fact))),
            }
        }
        nodes.push(NodeDraft {
            name: name.to_string(),
            role: role.to_string(),
            version: version.to_string(),
            address: address_col
                .map(get)
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            facts: node_facts,
        });
        rows.push(row);
    }
    if nodes.is_empty() && problems.is_empty() {
        problems.push("row 2: no node: the inventory has a header and nothing under it".into());
    }
    if problems.is_empty() {
        Ok((nodes, rows))
    } else {
        Err(problems)
    }
}

/// A cell as a value of fact type `kind`: a list's items separated by `;`.
pub fn cell_value(kind: FactType, text: &str) -> Result<FactValue, String> {
    let t = text.trim();
    match kind {
        FactType::List => Ok(FactValue::List(
            t.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| FactValue::String(s.to_string()))
                .collect(),
        )),
        FactType::Integer => t
            .parse::<i64>()
            .map(FactValue::Int)
            .map_err(|_| format!("`{t}` is not a whole number")),
        FactType::Number => t
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(FactValue::Float)
            .ok_or_else(|| format!("`{t}` is not a number")),
        FactType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(FactValue::Bool(true)),
            "false" | "no" => Ok(FactValue::Bool(false)),
            _ => Err(format!("`{t}` is not true or false")),
        },
        FactType::String => Ok(FactValue::String(t.to_string())),
        FactType::Datetime => t
            .parse::<jiff::Timestamp>()
            .map(|_| FactValue::String(t.to_string()))
            .map_err(|_| {
                format!("`{t}` is not an RFC 3339 date-time (e.g. 2026-12-05T06:30:00-05:00)")
            }),
        FactType::Table => Err("a table fact cannot be a cell".into()),
    }
}
