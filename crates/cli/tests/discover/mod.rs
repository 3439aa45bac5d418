//! `ferry discover`, `ferry check --ssh` and `ferry import`: sites from the cluster itself and
//! from an inventory. The SSH cases run against the fake appliance CLI on real OpenSSH servers
//! on loopback (the ssh driver's lab, `crates/exec/tests/exec/lab.rs`, included by its path),
//! each site compared with one written by hand for the case.

use super::{ferry, stderr, stdout};
use std::path::{Path, PathBuf};

#[path = "../../../exec/tests/exec/lab.rs"]
mod lab;

use lab::Lab;

const CUCM: &str = "14.0.1.12900-161";
const IMP: &str = "14.0.1.12900-7";
const INACTIVE: &str = "12.5.1.16900-48";
const COP: &str = "ciscocm.enable-sha512sum-2021-signing-key-v1.0.cop.sgn";

/// A CUCM publisher and subscriber and an IM&P publisher, each on its own sshd.
fn cucm_lab(tag: &str) -> Lab {
    let lab = Lab::new(
        tag,
        &[
            ("cucm-pub", "publisher", CUCM, INACTIVE),
            ("cucm-sub1", "subscriber", CUCM, ""),
            ("imp-pub", "imp_publisher", IMP, ""),
        ],
    );
    lab.set("imp-pub", "db", serde_json::json!("imp"));
    lab.set("imp-pub", "publisher", serde_json::json!(true));
    lab.set("cucm-pub", "cops", serde_json::json!([COP]));
    lab.set("cucm-sub1", "common_free_kb", serde_json::json!(10_485_760));
    lab
}

fn dest(lab: &Lab, node: &str) -> String {
    format!("ssh://{}@127.0.0.1:{}", lab.user, lab.sshd[node].port)
}

/// The ssh options every command here takes: the lab's key and known-hosts file.
fn ssh_args(lab: &Lab) -> Vec<String> {
    vec![
        "--ssh-identity".into(),
        lab.dir.join("client_key").display().to_string(),
        "--ssh-known-hosts".into(),
        lab.dir.join("known_hosts").display().to_string(),
    ]
}

fn discover(lab: &Lab, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec![
        "discover".into(),
        dest(lab, "cucm-pub"),
        "--profile".into(),
        "cisco-ucm".into(),
    ];
    for n in ["cucm-pub", "cucm-sub1", "imp-pub"] {
        args.push("--address".into());
        args.push(format!("{n}={}", dest(lab, n)));
    }
    args.extend(ssh_args(lab));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ferry(&args)
}

fn load(name: &str, text: &str) -> ferry_model::Site {
    let set = ferry_profiles::ProfileSet::builtin().expect("profiles");
    ferry_profiles::load_site(name, text, &set).unwrap_or_else(|e| panic!("{name}: {e:?}\n{text}"))
}

/// The acceptance test of discovery: what `show network cluster` lists on the publisher, each
/// node's `show version active|inactive`, its row of `utils dbreplication runtimestate` and
/// its common partition in `show status` (UCM-06, UCM-11, UCM-12), written as a site equal to
/// the one written here by hand, which `check` and `plan` accept.
#[test]
fn discover_writes_the_site_a_user_would_write_ucm_06_ucm_11_ucm_12() {
    let lab = cucm_lab("discover");
    let out = lab.dir.join("discovered.toml");
    let o = discover(
        &lab,
        &[
            "--target",
            "14.0.1.13900-155",
            "--target",
            "imp_publisher=14.0.1.13900-8",
            "--site-name",
            "hq",
            "--cluster",
            "ucm",
            "--output",
            &out.display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("discover: "),
        "progress on stderr: {}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&out).expect("site written");
    let by_hand = format!(
        r#"[site]
name = "hq"

[[cluster]]
name = "ucm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = {{ imp_publisher = "14.0.1.13900-8" }}

[[cluster.node]]
name = "cucm-pub"
role = "publisher"
version = "{CUCM}"
address = "{pub_}"
facts = {{ replication_state = 2, inactive_version = "{INACTIVE}", installed_cops = ["{COP}"], common_free_gb = 44.1 }}

[[cluster.node]]
name = "cucm-sub1"
role = "subscriber"
version = "{CUCM}"
address = "{sub}"
facts = {{ replication_state = 2, installed_cops = [], common_free_gb = 10.0 }}

[[cluster.node]]
name = "imp-pub"
role = "imp_publisher"
version = "{IMP}"
address = "{imp}"
facts = {{ replication_state = 2, installed_cops = [], common_free_gb = 44.1 }}
"#,
        pub_ = dest(&lab, "cucm-pub"),
        sub = dest(&lab, "cucm-sub1"),
        imp = dest(&lab, "imp-pub"),
    );
    assert_eq!(
        load("discovered.toml", &text),
        load("by-hand.toml", &by_hand),
        "{text}"
    );
    let file = out.display().to_string();
    let check = ferry(&["check", &file, "--runs", "0"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    let plan = ferry(&["plan", &file, "--runs", "0"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    // The JSON summary names every node, and carries the same site.
    let j = discover(&lab, &["--format", "json", "--target", "14.0.1.13900-155"]);
    assert_eq!(j.status.code(), Some(0), "{}", stderr(&j));
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).expect("json");
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["cucm-pub", "cucm-sub1", "imp-pub"]);
    assert!(v["site_toml"]
        .as_str()
        .is_some_and(|s| s.contains("[[cluster.node]]")));
}

/// What discovery refuses, with the node, command and line at fault (exit 2): a listed server
/// no role rule fits, and a host whose key is not the known one (strict host-key checking).
#[test]
fn discover_names_the_node_and_line_at_fault() {
    let lab = cucm_lab("discover-bad");
    lab.set("cucm-sub1", "product", serde_json::json!("unity"));
    let o = discover(&lab, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains("`show network cluster` on") && e.contains("line 2") && e.contains("cucm-sub1"),
        "{e}"
    );
    lab.set("cucm-sub1", "product", serde_json::json!("callmanager"));
    lab.known_hosts(false);
    let o = discover(&lab, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}

/// `check --ssh` judges the nodes as they are now: the site says every node runs the same
/// version with replication state 2; the subscriber really runs another version, so its
/// replication is out of sync (UCM-11: state 3). Without --ssh the site's word is taken.
#[test]
fn check_ssh_refreshes_the_facts_before_judging_ucm_11() {
    let lab = cucm_lab("check-ssh");
    lab.set("cucm-sub1", "active", serde_json::json!(INACTIVE));
    let site = lab.dir.join("site.toml");
    std::fs::write(
        &site,
        format!(
            r#"[site]
name = "hq"

[[cluster]]
name = "ucm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"

[[cluster.node]]
name = "cucm-pub"
role = "publisher"
version = "{CUCM}"
address = "{}"
facts = {{ replication_state = 2 }}

[[cluster.node]]
name = "cucm-sub1"
role = "subscriber"
version = "{CUCM}"
address = "{}"
facts = {{ replication_state = 2 }}
"#,
            dest(&lab, "cucm-pub"),
            dest(&lab, "cucm-sub1")
        ),
    )
    .expect("site");
    let file = site.display().to_string();
    let trusting = ferry(&["check", &file, "--runs", "0"]);
    assert_eq!(trusting.status.code(), Some(0), "{}", stdout(&trusting));
    let mut args = vec![
        "check".to_string(),
        file,
        "--runs".into(),
        "0".into(),
        "--ssh".into(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(ssh_args(&lab));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = ferry(&args);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let findings = v["findings"].as_array().expect("findings");
    let has = |rule: &str, node: &str, text: &str| {
        findings.iter().any(|f| {
            f["rule"] == rule
                && f["node"] == node
                && f["message"].as_str().is_some_and(|m| m.contains(text))
        })
    };
    assert!(has("FERRY-SSH", "cucm-sub1", INACTIVE), "{findings:#?}");
    assert!(
        findings.iter().any(|f| f["node"] == "cucm-sub1"
            && f["severity"] == "inhibitor"
            && f["message"]
                .as_str()
                .is_some_and(|m| m.contains("replication state 3"))),
        "{findings:#?}"
    );
}

/// A temp file, removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(name: &str, text: &str) -> Temp {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("ferry-import-{}-{n}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("temp file");
        Temp(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn import(csv: &str, extra: &[&str]) -> std::process::Output {
    let f = Temp::new("inventory.csv", csv);
    let path = f.path().display().to_string();
    let mut args = vec!["import", &path, "--profile", "cisco-ucm"];
    args.extend_from_slice(extra);
    ferry(&args)
}

/// An inventory as a spreadsheet exports it (quoted cells, a list of COP files, an empty
/// cell), written as the site a user would have typed for it.
#[test]
fn import_writes_the_site_of_an_inventory() {
    let csv = "name,role,version,address,devices,replication_state,installed_cops,common_free_gb\n\
cucm-pub,publisher,12.5.1.17900-64,10.10.1.10,0,2,,40.5\n\
cucm-sub1,subscriber,12.5.1.17900-64,10.10.1.11,2600,2,\"ciscocm.a.cop.sgn; ciscocm.b.cop.sgn\",12\n\
imp-pub,imp_publisher,12.5.1.17900-7,10.10.1.20,,2,,\n";
    let o = import(
        csv,
        &[
            "--target",
            "14.0.1.13900-155",
            "--target",
            "imp_publisher=14.0.1.13900-8",
            "--cluster",
            "hq",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let by_hand = r#"[site]
name = "hq"

[[cluster]]
name = "hq"
profile = "cisco-ucm"
target = "14.0.1.13900-155"
targets = { imp_publisher = "14.0.1.13900-8" }

[[cluster.node]]
name = "cucm-pub"
role = "publisher"
version = "12.5.1.17900-64"
address = "10.10.1.10"
facts = { devices = 0, replication_state = 2, common_free_gb = 40.5 }

[[cluster.node]]
name = "cucm-sub1"
role = "subscriber"
version = "12.5.1.17900-64"
address = "10.10.1.11"
facts = { devices = 2600, replication_state = 2, installed_cops = ["ciscocm.a.cop.sgn", "ciscocm.b.cop.sgn"], common_free_gb = 12.0 }

[[cluster.node]]
name = "imp-pub"
role = "imp_publisher"
version = "12.5.1.17900-7"
address = "10.10.1.20"
facts = { replication_state = 2 }
"#;
    assert_eq!(
        load("imported.toml", &stdout(&o)),
        load("by-hand.toml", by_hand)
    );
}

/// A bad inventory: exit 2, and the row and column of each mistake.
fn check_refused(csv: &str, expected: &[&str]) {
    let o = import(csv, &[]);
    assert_eq!(o.status.code(), Some(2), "{csv}: {}", stdout(&o));
    let e = stderr(&o);
    for x in expected {
        assert!(e.contains(x), "{csv}: no {x:?} in {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn import_names_the_row_and_column_of_each_mistake() {
    const HEAD: &str = "name,role,version,address,devices\n";
    check_refused(
        &format!("{HEAD}pub,publisher,12.5.1.17900-64,,0\nsub,subscribr,12.5.1.17900-64,,10\n"),
        &["row 3, column B (role)", "`subscribr` is not a role"],
    );
    check_refused(
        &format!("{HEAD}pub,publisher,12.5.1.17900-64,,many\n"),
        &["row 2, column E (devices)", "not a whole number"],
    );
    check_refused(
        &format!("{HEAD}pub,publisher,not-a-version,,0\n"),
        &["row 2, column C (version)"],
    );
    check_refused(
        "name,role,version,address,devcies\npub,publisher,12.5.1.17900-64,,0\n",
        &["row 1, column E (devcies)", "did you mean `devices`"],
    );
    check_refused(
        "name,role,address\npub,publisher,10.0.0.1\n",
        &["row 1: no column `version`"],
    );
    check_refused(
        &format!("{HEAD}pub,publisher,12.5.1.17900-64,,0\npub,subscriber,12.5.1.17900-64,,0\n"),
        &["row 3, column A (name)", "on row 2 already"],
    );
    check_refused(
        &format!("{HEAD}pub,publisher,12.5.1.17900-64,,0,extra\n"),
        &["row 2: 6 cells"],
    );
    // What only the site's own rules catch (one publisher, UCM-07) names the row too.
    check_refused(
        &format!("{HEAD}pub,publisher,12.5.1.17900-64,,0\npub2,publisher,12.5.1.17900-64,,0\n"),
        &["row"],
    );
}

/// A 1,000-row inventory imports (its speed is measured with a release build, README); a bad
/// row among them is named.
#[test]
fn import_of_a_thousand_rows_names_the_bad_one() {
    let mut csv = String::from("name,role,version,address,devices,replication_state\n");
    csv.push_str("pub,publisher,12.5.1.17900-64,10.0.0.1,0,2\n");
    for i in 1..1000 {
        csv.push_str(&format!(
            "sub{i},subscriber,12.5.1.17900-64,10.0.{}.{},{},2\n",
            i / 250,
            i % 250,
            i * 3
        ));
    }
    let o = import(&csv, &["--target", "14.0.1.13900-155", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(1000));
    let bad = csv.replace(
        "sub731,subscriber,12.5.1.17900-64",
        "sub731,subscriber,not-a-version",
    );
    let o = import(&bad, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("row 733, column C (version)"),
        "{}",
        stderr(&o)
    );
}
