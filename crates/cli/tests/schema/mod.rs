//! The JSON Schemas (`ferry schema NAME`, `docs/schema/`): the committed files are what ferry
//! prints, and the real outputs of every built-in example — its plan (and `--compare`), its
//! check report, its rehearsals (one and a Monte Carlo), the status of a twin run — and every
//! site file of `examples/` validate against them with a JSON Schema validator (boon). The
//! outputs are validated twice: against the published schema, and against the same schema
//! closed (no property it does not name), so that a field ferry writes and its schema does not
//! describe fails here. A wrong field type is refused.

use super::{examples, ferry, stderr, stdout, Scratch};
use serde_json::Value;
use std::path::PathBuf;

/// Every schema `ferry schema` prints.
const NAMES: [&str; 6] = ["site", "plan", "compare", "check", "rehearsal", "status"];

/// `ferry schema NAME`, parsed.
fn schema_of(name: &str) -> Value {
    let o = ferry(&["schema", name]);
    assert_eq!(o.status.code(), Some(0), "schema {name}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("schema {name}: not JSON: {e}"))
}

/// The schema with every object that names its properties closed to others.
fn closed(mut schema: Value) -> Value {
    fn close(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                    o.insert("additionalProperties".into(), false.into());
                }
                o.values_mut().for_each(close);
            }
            Value::Array(a) => a.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut schema);
    schema
}

/// A compiled schema. Compiling checks the schema itself against the draft-7 meta-schema.
struct Validator {
    name: String,
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new(name: &str, schema: Value) -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V7);
        let location = format!("file:///ferry/docs/schema/{name}.schema.json");
        compiler
            .add_resource(&location, schema)
            .unwrap_or_else(|e| panic!("schema {name}: {e:#}"));
        let index = compiler
            .compile(&location, &mut schemas)
            .unwrap_or_else(|e| panic!("schema {name} does not compile: {e:#}"));
        Validator {
            name: name.to_string(),
            schemas,
            index,
        }
    }

    /// What the validator says of `instance`: nothing, or the error as it prints it.
    fn errors(&self, instance: &Value) -> Option<String> {
        self.schemas
            .validate(instance, self.index)
            .err()
            .map(|e| e.to_string())
    }
}

/// The published schema and the closed one.
fn validators(name: &str) -> [Validator; 2] {
    let schema = schema_of(name);
    [
        Validator::new(name, schema.clone()),
        Validator::new(&format!("{name}-closed"), closed(schema)),
    ]
}

/// `what` (an output of ferry, or a site) validates against both.
fn assert_valid(vs: &[Validator; 2], what: &str, instance: &Value) {
    for v in vs {
        if let Some(e) = v.errors(instance) {
            panic!(
                "{what} does not validate against the {} schema:\n{e}",
                v.name
            );
        }
    }
}

/// Standard output of a ferry run as JSON, the run having exited with one of `codes`.
fn output(args: &[&str], codes: &[i32]) -> Value {
    let o = ferry(args);
    assert!(
        o.status.code().is_some_and(|c| codes.contains(&c)),
        "ferry {}: exit {:?}: {}",
        args.join(" "),
        o.status.code(),
        stderr(&o)
    );
    serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("ferry {}: not JSON ({e}): {}", args.join(" "), stdout(&o)))
}

/// A site file's TOML as the JSON an editor validates (TOML date-times as their text).
fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

fn site_json(text: &str) -> Value {
    toml_to_json(toml::Value::Table(
        toml::from_str(text).expect("a site file is TOML"),
    ))
}

fn docs_schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema")
}

/// `docs/schema/NAME.schema.json` is what `ferry schema NAME` prints, for every schema
/// (`FERRY_UPDATE_SAMPLES=1` writes them).
#[test]
fn the_published_schemas_are_what_ferry_prints() {
    for name in NAMES {
        let printed = stdout(&ferry(&["schema", name]));
        let path = docs_schema_dir().join(format!("{name}.schema.json"));
        if std::env::var_os("FERRY_UPDATE_SAMPLES").is_some() {
            std::fs::write(&path, &printed).expect("write the schema");
        }
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == printed,
            "docs/schema/{name}.schema.json is out of date: FERRY_UPDATE_SAMPLES=1 cargo test -p ferry-cli --test cli -- schema:: (or ferry schema {name} -o docs/schema/{name}.schema.json)"
        );
        let schema: Value = serde_json::from_str(&committed).expect("JSON");
        assert_eq!(
            schema["$id"],
            format!("urn:ferry:schema:{name}:1"),
            "{name}: its $id"
        );
    }
}

/// Every site file of `examples/`, converted from TOML, is a site file by the site schema.
#[test]
fn every_example_site_file_validates() {
    let vs = validators("site");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for name in examples() {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("example");
        assert_valid(&vs, &format!("examples/{name}.toml"), &site_json(&text));
    }
}

/// The real outputs of every built-in example validate: `plan --format json` (with its odds),
/// `plan --compare`, `check`, `rehearse` once and as a Monte Carlo, and `status` of the run
/// `apply --driver twin` journals (complete, or paused at an approval).
#[test]
fn every_example_s_outputs_validate() {
    let [plan, compare, check, rehearsal, status] =
        ["plan", "compare", "check", "rehearsal", "status"].map(validators);
    let dir = Scratch::new("schema-outputs");
    for name in examples() {
        let site = format!("example:{name}");
        let site = site.as_str();
        let what = |output: &str| format!("{name}: {output}");
        let saved = dir.path(&format!("{name}.plan.json"));
        let o = ferry(&[
            "plan", site, "--format", "json", "--runs", "2", "-o", &saved,
        ]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let plan_json: Value =
            serde_json::from_str(&std::fs::read_to_string(&saved).expect("plan")).expect("JSON");
        assert_valid(&plan, &what("plan"), &plan_json);
        assert_valid(
            &compare,
            &what("plan --compare"),
            &output(
                &["plan", site, "--compare", "--format", "json", "--runs", "1"],
                &[0],
            ),
        );
        assert_valid(
            &check,
            &what("check"),
            &output(&["check", site, "--format", "json", "--runs", "2"], &[0, 1]),
        );
        for runs in ["1", "2"] {
            assert_valid(
                &rehearsal,
                &what(&format!("rehearse --runs {runs}")),
                &output(
                    &["rehearse", site, "--format", "json", "--runs", runs],
                    &[0, 1],
                ),
            );
        }
        let state = dir.path(&format!("{name}.state"));
        let o = ferry(&[
            "apply",
            &saved,
            "--state",
            &state,
            "--driver",
            "twin",
            "--ignore-window",
        ]);
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{name}: apply: {}",
            stderr(&o)
        );
        assert_valid(
            &status,
            &what("status"),
            &output(&["status", "--state", &state, "--format", "json"], &[0, 1]),
        );
    }
}

/// A rehearsal with `--trace` (the twin's timeline and log) validates too.
#[test]
fn a_traced_rehearsal_validates() {
    let vs = validators("rehearsal");
    let j = output(
        &[
            "rehearse",
            "example:linux-ha-pair",
            "--format",
            "json",
            "--trace",
        ],
        &[0],
    );
    assert!(j["trace"].is_array() && j["log"].is_array(), "{j}");
    assert_valid(&vs, "rehearse --trace", &j);
}

/// A site of the form every site file has: a booked window (a TOML date-time), one
/// cluster of one node.
const SITE: &str = r#"
[site]
name = "lab"
window = { start = 2030-03-02T21:00:00+01:00, hours = 4 }

[[cluster]]
name = "kv"
profile = "linux-ha"
target = "2.0.0"

[[cluster.node]]
name = "kv-a"
role = "primary"
version = "1.0.0"
"#;

/// A site that names its schema on its first line, as taplo reads it, is read by ferry as
/// before (a TOML comment) and is valid by the schema it names.
#[test]
fn a_site_naming_its_schema_loads() {
    let dir = Scratch::new("schema-comment");
    let text = format!(
        "#:schema {}\n{SITE}",
        docs_schema_dir().join("site.schema.json").display()
    );
    let path = dir.path("site.toml");
    std::fs::write(&path, &text).expect("write the site");
    let o = ferry(&["check", &path, "--runs", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_valid(
        &validators("site"),
        "a site with `#:schema`",
        &site_json(&text),
    );
}

/// What the validator says of `instance` against schema `name`: `None` (valid) or every part
/// of `expected` in its message.
fn check(name: &str, instance: &Value, expected: Option<&[&str]>) {
    let v = Validator::new(name, schema_of(name));
    match (v.errors(instance), expected) {
        (None, None) => {}
        (Some(e), Some(parts)) => {
            for part in parts {
                assert!(e.contains(part), "{name}: no `{part}` in:\n{e}");
            }
        }
        (None, Some(_)) => panic!("{name}: accepted what it must refuse: {instance}"),
        (Some(e), None) => panic!("{name}: refused what it must accept:\n{e}"),
    }
}

/// The schemas can fail: a field of the wrong type (a plan's window length as text, a check
/// report's severity no ferry writes, a booked window's hours as text, a node's version as a
/// number) and a misspelt key of a site file are refused, each at its place.
#[test]
fn a_wrong_field_type_is_refused() {
    let mut plan = output(
        &[
            "plan",
            "example:linux-ha-pair",
            "--format",
            "json",
            "--runs",
            "0",
        ],
        &[0],
    );
    check("plan", &plan, None);
    // A field the schema does not name: the published schema lets it pass (outputs only grow),
    // the closed one used on the examples' outputs does not.
    let mut grown = plan.clone();
    grown["steps"][0]["surprise"] = 1.into();
    let [open, closed] = validators("plan");
    assert_eq!(open.errors(&grown), None);
    let e = closed
        .errors(&grown)
        .expect("the closed schema refuses a field it does not name");
    assert!(e.contains("'/steps/0'") && e.contains("surprise"), "{e}");
    plan["makespan_s"] = "two hours".into();
    check(
        "plan",
        &plan,
        Some(&["'/makespan_s'", "want integer, but got string"]),
    );

    let mut report = output(
        &["check", "example:ucm-inhibitors", "--format", "json"],
        &[1],
    );
    check("check", &report, None);
    report["findings"][0]["severity"] = "fatal".into();
    check(
        "check",
        &report,
        Some(&[
            "'/findings/0/severity'",
            "must be one of 'inhibitor', 'warning', 'info'",
        ]),
    );

    let site = SITE;
    check("site", &site_json(site), None);
    check(
        "site",
        &site_json(&site.replace("hours = 4", "hours = \"four\"")),
        Some(&["'/site/window/hours'", "want number, but got string"]),
    );
    check(
        "site",
        &site_json(&site.replace("version = \"1.0.0\"", "version = 1")),
        Some(&["'/cluster/0/node/0/version'", "want string, but got number"]),
    );
    check(
        "site",
        &site_json(&site.replace("role = ", "rol = ")),
        Some(&["'/cluster/0/node/0'", "rol"]),
    );
    check(
        "site",
        &site_json(&site.replace("hours = 4", "hours = 400")),
        Some(&["'/site/window/hours'", "336"]),
    );
}
