//! Loading of sites and profiles: every kind of bad input gets an error that names the file,
//! the line and the key; no input makes the loader panic.

use ferry_profiles::{load_profile, load_site, InputErrors, ProfileSet};
use proptest::prelude::*;

#[path = "profiles/input.rs"]
mod input;
#[path = "profiles/ranges.rs"]
mod ranges;

const PAIR: &str = r#"[site]
name = "lab"
window = { start = "2026-12-05T22:00:00-05:00", hours = 2 }

[[cluster]]
name = "kv"
profile = "linux-ha"
target = "2.1.0"

[[cluster.node]]
name = "kv-a"
role = "primary"
version = "2.0.3"
facts = { package_mb = 40 }

[[cluster.node]]
name = "kv-b"
role = "backup"
version = "2.0.3"
"#;

fn builtin() -> ProfileSet {
    ProfileSet::builtin().expect("built-in profiles load")
}

/// Loads `text` as a site and expects exactly one error at `line` whose key and message
/// contain the given fragments.
fn check_site_error(text: &str, line: usize, key: &str, message: &str) {
    let err: InputErrors =
        load_site("site.toml", text, &builtin()).expect_err("site must be rejected");
    assert_eq!(err.file, "site.toml");
    let e = err
        .errors
        .iter()
        .find(|e| e.message.contains(message))
        .unwrap_or_else(|| {
            panic!(
                "no error mentioning {message:?} in {:#?}",
                err.errors
                    .iter()
                    .map(|e| (&e.line, &e.key, &e.message))
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(e.line, line, "line of {:?}", e.message);
    assert!(
        e.key.contains(key),
        "key {:?} should contain {key:?}",
        e.key
    );
    assert!(
        e.to_string().starts_with(&format!("site.toml:{line}: ")),
        "{e}"
    );
}

#[test]
fn the_valid_site_loads() {
    let site = load_site("site.toml", PAIR, &builtin()).expect("loads");
    assert_eq!(site.clusters[0].nodes.len(), 2);
    assert_eq!(
        site.window.as_ref().map(|w| w.start_epoch_s),
        Some(1_796_526_000)
    );
}

#[test]
fn every_builtin_profile_loads() {
    let set = builtin();
    assert_eq!(
        set.names(),
        [
            "avaya-cms-ha",
            "cisco-callmanager4",
            "cisco-ucm",
            "genesys-framework",
            "linux-ha"
        ]
    );
}

#[test]
fn site_errors_name_line_and_key() {
    let cases: &[(&str, &str, usize, &str, &str)] = &[
        // (replace, with, line, key, message)
        (
            "profile = \"linux-ha\"",
            "profile = \"linux-hq\"",
            7,
            "cluster[0].profile",
            "unknown profile `linux-hq`",
        ),
        (
            "role = \"backup\"",
            "role = \"standby\"",
            18,
            "cluster[0].node[1].role",
            "unknown role `standby`",
        ),
        (
            "version = \"2.0.3\"\nfacts",
            "version = \"two\"\nfacts",
            13,
            "cluster[0].node[0].version",
            "`two` is not a version",
        ),
        (
            "name = \"kv-b\"",
            "name = \"kv-a\"",
            17,
            "cluster[0].node[1].name",
            "duplicate node name `kv-a`",
        ),
        (
            "target = \"2.1.0\"",
            "target = \"2.0.1\"",
            13,
            "cluster[0].node[0].version",
            "above its target",
        ),
        (
            "role = \"backup\"",
            "role = \"primary\"",
            18,
            "cluster[0].node[1].role",
            "allows at most 1",
        ),
        (
            "package_mb = 40",
            "package_mb = \"big\"",
            14,
            "cluster[0].node[0].facts.package_mb",
            "must be number",
        ),
        (
            "hours = 2",
            "hours = -1",
            3,
            "site.window.hours",
            "between 0 and 336",
        ),
        (
            "2026-12-05T22:00:00-05:00",
            "tomorrow",
            3,
            "site.window.start",
            "not an RFC 3339",
        ),
    ];
    for (from, to, line, key, message) in cases {
        assert!(PAIR.contains(from), "fixture lacks {from:?}");
        check_site_error(&PAIR.replacen(from, to, 1), *line, key, message);
    }
}

#[test]
fn syntax_errors_and_unknown_keys_point_at_the_line() {
    check_site_error(
        &PAIR.replace("version = \"2.0.3\"\nfacts", "verison = \"2.0.3\"\nfacts"),
        13,
        "",
        "verison",
    );
    check_site_error(&PAIR.replace("name = \"kv-b\"", "name = kv-b"), 17, "", "");
}

#[test]
fn profile_errors_name_line_and_key() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "linux-ha")
        .expect("linux-ha")
        .1;
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "then = { step = [\"switch\"], roles = [\"primary\"] }",
            "then = { step = [\"switch\"], roles = [\"primari\"] }",
            "procedure.order[2].then.roles[0]",
            "unknown role `primari`",
        ),
        (
            "before = { step = [\"stage\"] }",
            "before = { step = [\"stag\"] }",
            "procedure.order[0].before.step[0]",
            "no step `stag`",
        ),
        (
            "rule = \"LHA-07\"",
            "rule = \"lha7\"",
            "procedure.sequence[0].rule",
            "`lha7` is not a rule ID",
        ),
        (
            "name = \"free_mb\", lt = 1",
            "name = \"free_space\", lt = 1",
            "check[1].test.node.fact.name",
            "fact `free_space` is not declared",
        ),
        (
            "rules = [\"LHA-06\"]\neffects",
            "rules = []\neffects",
            "procedure.step[6].rules",
            "names no rule ID",
        ),
        (
            "replication = [\"publisher\", \"subscriber\"] }",
            "replication = [\"publisher\", \"subscribers\"] }",
            "procedure.step[7].effects[0].wait.replication[1]",
            "unknown role `subscribers`",
        ),
        (
            "master = \"publisher\"",
            "master = \"leader\"",
            "twin.replication[0].master",
            "unknown role `leader`",
        ),
        (
            "when = { strategy = [\"one-at-a-time\"] }",
            "when = { strategy = [\"slowest\"] }",
            "procedure.sequence[0].when.strategy[0]",
            "unknown strategy `slowest`",
        ),
        (
            "name = \"free_mb\", lt = 1",
            "name = \"free_mb\", lt_fact = \"free_space\"",
            "check[1].test.node.fact.lt_fact",
            "fact `free_space` is not declared",
        ),
        (
            "type = \"number\"\ndescription = \"free space",
            "type = \"number\"\nvalues = [\"lots\"]\ndescription = \"free space",
            "fact[2].values",
            "only a string fact may list its values",
        ),
        (
            "type = \"string\"\ndescription",
            "type = \"string\"\nvalues = [\"kv\", \"kv\"]\ndescription",
            "fact[1].values[1]",
            "duplicate value `kv`",
        ),
        (
            "when = { strategy = [\"one-at-a-time\"] }",
            "when = { run = { steps = \"done\" } }",
            "procedure.sequence[0].when.run",
            "only the rollback procedure may use it",
        ),
        (
            "effects = [\"snapshot\"]",
            "effects = [\"restore_snapshot\"]",
            "procedure.step[0].effects[0]",
            "no step of the profile takes one",
        ),
    ];
    for (from, to, key, message) in cases {
        check_profile_error(base, from, to, key, message);
    }
}

/// A sync point is the planner's own (it keeps an order such as LHA-03 over a large cluster
/// without an edge per pair): a profile step of that kind is refused where it is written.
#[test]
fn a_profile_step_of_kind_sync_is_refused_lha_03() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "linux-ha")
        .expect("linux-ha")
        .1;
    check_profile_error(
        base,
        "kind = \"gate\"\nminutes = 1\nimpact = \"degraded\"",
        "kind = \"sync\"\nminutes = 1\nimpact = \"degraded\"",
        "procedure.step[4].kind",
        "kind `sync` is the planner's own",
    );
}

/// `base` with `from` replaced by `to` is rejected with `message` at `key`, on the changed line.
fn check_profile_error(base: &str, from: &str, to: &str, key: &str, message: &str) {
    assert!(base.contains(from), "fixture lacks {from:?}");
    let text = base.replacen(from, to, 1);
    let err = load_profile("mine.toml", &text).expect_err("profile must be rejected");
    let e = err
        .errors
        .iter()
        .find(|e| e.message.contains(message))
        .unwrap_or_else(|| {
            panic!(
                "no {message:?} in {:?}",
                err.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
            )
        });
    assert_eq!(e.key, key);
    let changed_line = text[..text.find(to).expect("replaced")].lines().count() + 1
        - usize::from(to.starts_with('\n'));
    assert!(
        e.line.abs_diff(changed_line) <= 1,
        "{message}: line {} vs {changed_line}",
        e.line
    );
}

/// The `[discover]` section (issue 15): each mistake is named at its line and key, as the
/// ssh section's are: a role or fact the profile lacks, a regex without the capture read, a
/// role rule testing a capture the listing has not, a reading that does not fit its fact.
#[test]
fn discover_errors_name_line_and_key() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "cisco-ucm")
        .expect("cisco-ucm")
        .1;
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "role = \"imp_subscriber\"\nwhen = { product",
            "role = \"imp_subscribr\"\nwhen = { product",
            "discover.role[3].role",
            "unknown role `imp_subscribr`",
        ),
        (
            "when = { product = '^callmanager$', db = '^DBPub$' }",
            "when = { product = '^callmanager$', database = '^DBPub$' }",
            "discover.role[0].when.database",
            "no capture `database`",
        ),
        (
            "(?P<name>\\S+)\\s+(?P<kind>",
            "(?P<host>\\S+)\\s+(?P<kind>",
            "discover.nodes.row",
            "no named capture `name`",
        ),
        (
            "fact = \"inactive_version\"",
            "fact = \"inactive_versions\"",
            "discover.read[1].fact",
            "fact `inactive_versions` is not declared",
        ),
        (
            "regex = 'Inactive Master Version:[ \\t]*(?P<value>\\S+)'\n\n[[discover.read]]",
            "regex = 'Inactive Master Version:[ \\t]*(?P<v>\\S+)'\n\n[[discover.read]]",
            "discover.read[1].regex",
            "no named capture `value`",
        ),
        (
            "(?:\\.sgn)?)[ \\t]*$'\nall = true",
            "(?:\\.sgn)?)[ \\t]*$'",
            "discover.read[2].regex",
            "is a list fact",
        ),
        (
            "digits = 1\n",
            "digits = 1\nall = true\n",
            "discover.read[4].all",
            "not a list fact",
        ),
        (
            "fact = \"replication_state\"\ncommand",
            "fact = \"replication_state\"\nscale = 2.0\ncommand",
            "discover.read[3].scale",
            "for number facts",
        ),
    ];
    for (from, to, key, message) in cases {
        check_profile_error(base, from, to, key, message);
    }
}

/// CCM-16: the rule of a `fails_on_config_change` effect is checked where it is written.
#[test]
fn fails_on_config_change_rule_errors_name_line_and_key() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "cisco-callmanager4")
        .expect("cisco-callmanager4")
        .1;
    let effect = "{ fails_on_config_change = \"CCM-16\" }";
    // The step that carries it first: the install of the publisher, its seventh effect.
    let step = base[..base.find(effect).expect("the effect")]
        .matches("[[procedure.step]]")
        .count()
        - 1;
    check_profile_error(
        base,
        effect,
        "{ fails_on_config_change = \"ccm16\" }",
        &format!("procedure.step[{step}].effects[6].fails_on_config_change"),
        "`ccm16` is not a rule ID",
    );
}

/// The ssh driver's data (cisco-ucm): unknown probes, bad regexes and templates are located.
#[test]
fn ssh_errors_name_line_and_key() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "cisco-ucm")
        .expect("cisco-ucm")
        .1;
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "verify = [{ probe = \"version_inactive\", equals = \"{target}\" }]",
            "verify = [{ probe = \"version_inactiv\", equals = \"{target}\" }]",
            "procedure.step[7].ssh.verify[0].probe",
            "unknown probe `version_inactiv`",
        ),
        (
            "verify = [{ probe = \"version_inactive\", equals = \"{target}\" }]",
            "verify = [{ probe = \"version_inactive\", equals = \"{targt}\" }]",
            "procedure.step[7].ssh.verify[0].equals",
            "unknown placeholder `{targt}`",
        ),
        (
            "regex = 'Active Master Version:[ \\t]*(?P<value>\\S+)'",
            "regex = 'Active Master Version:[ \\t]*(?P<value>\\S+'",
            "ssh.probe[0].regex",
            "bad regex",
        ),
        (
            "regex = 'Active Master Version:[ \\t]*(?P<value>\\S+)'",
            "regex = 'Active Master Version:[ \\t]*(?P<val>\\S+)'",
            "ssh.probe[0].regex",
            "no named capture `value`",
        ),
        (
            "command = \"file search install {probe.install_log} PRODUCT_VERSION\"",
            "command = \"file search install {probe.replication_log} PRODUCT_VERSION\"",
            "ssh.probe[3].command",
            "unknown probe `replication_log`",
        ),
        (
            "\"{fact.upgrade_server}\"",
            "\"{fact.upgrade_host}\"",
            "ssh.dialogue[0].variant[0].prompt[4].answer",
            "fact `upgrade_host` is not declared",
        ),
        // Dialogues (issue 13): the command's dialogue, a choice's capture, a variant's version,
        // blind answers in an interactive shell.
        (
            "dialogue = \"upgrade-keep-version\"",
            "dialogue = \"upgrade-keep-versio\"",
            "procedure.step[7].ssh.commands[0].dialogue",
            "unknown dialogue `upgrade-keep-versio`",
        ),
        (
            "number = '^\\s*(?P<number>\\d+)\\)'",
            "number = '^\\s*(?P<n>\\d+)\\)'",
            "ssh.dialogue[0].variant[0].prompt[10].choose.number",
            "no named capture `number`",
        ),
        (
            "when = { version = { ge = \"12.0\" } }",
            "when = { version = { ge = \"twelve\" } }",
            "ssh.dialogue[0].variant[0].when.version.ge",
            "`twelve` is not a version",
        ),
        (
            "{ run = \"utils system restart\", dialogue = \"restart\", reboots = true }",
            "{ run = \"utils system restart\", input = [\"yes\"], reboots = true }",
            "procedure.step[5].ssh.commands[0].input",
            "answers prompts blindly",
        ),
        (
            "{ expect = 'Directory:', answer = \"{fact.upgrade_directory}\" },",
            "{ expect = 'Directory:', answer = \"{fact.upgrade_directory}\", choose = { line = \"x\", number = '(?P<number>1)' } },",
            "ssh.dialogue[0].variant[0].prompt[3]",
            "exactly one of `answer` and `choose`",
        ),
        (
            "from = [\"publisher\"], roles",
            "from = [\"publishr\"], roles",
            "procedure.step[21].ssh.wait[0].from[0]",
            "unknown role `publishr`",
        ),
    ];
    for (from, to, key, message) in cases {
        assert!(base.contains(from), "fixture lacks {from:?}");
        let text = base.replacen(from, to, 1);
        let err = load_profile("mine.toml", &text).expect_err("profile must be rejected");
        let e = err
            .errors
            .iter()
            .find(|e| e.message.contains(message))
            .unwrap_or_else(|| {
                panic!(
                    "no {message:?} in {:?}",
                    err.errors
                        .iter()
                        .map(|e| (&e.message, &e.key))
                        .collect::<Vec<_>>()
                )
            });
        assert_eq!(e.key, *key);
        let changed_line = text[..text.find(to).expect("replaced")].lines().count() + 1;
        assert!(
            e.line.abs_diff(changed_line) <= 1,
            "{message}: line {} vs {changed_line}",
            e.line
        );
    }
}

/// The configuration store of the twin (genesys-framework): its condition, its event codes.
#[test]
fn config_store_errors_name_line_and_key() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "genesys-framework")
        .expect("genesys-framework")
        .1;
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "forced_upgrade_mode = { fact = { name = \"upgrade_mode_forced\", eq = true } }",
            "forced_upgrade_mode = { fact = { name = \"upgrade_mode_force\", eq = true } }",
            "twin.config_store.forced_upgrade_mode.fact.name",
            "fact `upgrade_mode_force` is not declared",
        ),
        (
            "upgrade_mode_requested = \"21-25300\"",
            "upgrade_mode_requested = \" \"",
            "twin.config_store.events.upgrade_mode_requested",
            "an event code is empty",
        ),
        (
            "upgrade_mode_requested = \"21-25300\"",
            "# no forced-mode event",
            "twin.config_store.forced_upgrade_mode",
            "a forced upgrade mode needs `events.upgrade_mode_requested`",
        ),
    ];
    for (from, to, key, message) in cases {
        assert!(base.contains(from), "fixture lacks {from:?}");
        let text = base.replacen(from, to, 1);
        let err = load_profile("mine.toml", &text).expect_err("profile must be rejected");
        let e = err
            .errors
            .iter()
            .find(|e| e.message.contains(message))
            .unwrap_or_else(|| {
                panic!(
                    "no {message:?} in {:?}",
                    err.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
                )
            });
        assert_eq!(e.key, *key);
        let want = &if key.ends_with("forced_upgrade_mode") {
            "forced_upgrade_mode ="
        } else {
            to
        };
        let line = text[..text.find(want).expect("present")].lines().count() + 1;
        assert!(
            e.line.abs_diff(line) <= 1,
            "{message}: line {} vs {line}",
            e.line
        );
    }
}

#[test]
fn a_user_profile_replaces_a_builtin_of_the_same_name() {
    let mut set = builtin();
    let text = ferry_profiles::registry::BUILTIN[4].1.replace(
        "title = \"Generic HA Linux service (ferry agent)\"",
        "title = \"Ours\"",
    );
    set.add("ours/linux-ha.toml", &text).expect("loads");
    assert_eq!(
        set.get("linux-ha")
            .map(|p| p.profile.profile.title.as_str()),
        Some("Ours")
    );
    assert_eq!(
        set.get("linux-ha").map(|p| p.origin.as_str()),
        Some("ours/linux-ha.toml")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text: an error or a site, never a panic.
    #[test]
    fn site_parser_never_panics_on_any_text(text in "\\PC*") {
        let _ = load_site("fuzz.toml", &text, &builtin());
    }

    /// A valid site with a few bytes changed: an error or a site, never a panic.
    #[test]
    fn site_parser_never_panics_on_mutated_sites(edits in proptest::collection::vec((0usize..PAIR.len(), any::<char>()), 1..6)) {
        let mut chars: Vec<char> = PAIR.chars().collect();
        for (pos, c) in edits {
            let i = pos % chars.len();
            chars[i] = c;
        }
        let text: String = chars.into_iter().collect();
        let _ = load_site("fuzz.toml", &text, &builtin());
    }

    /// Profiles too.
    #[test]
    fn profile_parser_never_panics_on_mutated_profiles(edits in proptest::collection::vec((0usize..8000, any::<char>()), 1..6)) {
        let base = ferry_profiles::registry::BUILTIN[4].1;
        let mut chars: Vec<char> = base.chars().collect();
        for (pos, c) in edits {
            let i = pos % chars.len();
            chars[i] = c;
        }
        let text: String = chars.into_iter().collect();
        let _ = load_profile("fuzz.toml", &text);
    }
}

/// CCM-09's held capacity, the order that gives way to it and the rule's one severity
/// (cisco-callmanager4): every mistake located at its line and key.
#[test]
fn capacity_hold_errors_name_line_and_key_ccm_09() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "cisco-callmanager4")
        .expect("cisco-callmanager4")
        .1;
    let check = |from: &str, to: &str, key: &str, message: &str| {
        assert!(base.contains(from), "fixture lacks {from:?}");
        let text = base.replacen(from, to, 1);
        let err = load_profile("mine.toml", &text).expect_err("profile must be rejected");
        let e = err
            .errors
            .iter()
            .find(|e| e.message.contains(message))
            .unwrap_or_else(|| {
                panic!(
                    "no {message:?} in {:?}",
                    err.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
                )
            });
        assert_eq!(e.key, key);
        let changed_line = text[..text.find(to).expect("replaced")].lines().count() + 1;
        assert!(
            e.line.abs_diff(changed_line) <= 1,
            "{message}: line {} vs {changed_line}",
            e.line
        );
    };
    check(
        "until = [\"reboot-server\"]",
        "until = [\"reboot\"]",
        "procedure.limit[1].capacity.hold.until[0]",
        "no step `reboot`",
    );
    check(
        "hold = { from = [\"fail-over-to-backup\",",
        "hold = { from = [\"verify-cluster\",",
        "procedure.limit[1].capacity.hold.from[0]",
        "`verify-cluster` is not one of the limit's steps",
    );
    check(
        "max_hours = 4,",
        "max_hours = 0,",
        "procedure.limit[1].capacity.hold.max_hours",
        "max_hours must be a positive number",
    );
    check(
        "max_hours_fact = \"oversubscribe_max_hours\"",
        "max_hours_fact = \"devices_on_backups\"",
        "procedure.limit[1].capacity.hold.max_hours_fact",
        "fact `devices_on_backups` is a bool, not a number",
    );
    check(
        "yields_to = { rule = \"CCM-09\"",
        "yields_to = { rule = \"CCM-11\"",
        "procedure.order[5].yields_to.rule",
        "no limit of rule `CCM-11` with a capacity",
    );
    check(
        "capacity_severity = \"warning\"",
        "capacity_severity = \"inhibitor\"",
        "twin.devices[0].capacity_severity",
        "the rehearsal would report CCM-09 as inhibitor, the plan as warning",
    );
}

/// A CUCM site whose phones are in CM groups (UCM-15): the groups must name the cluster's nodes,
/// in order, with a number of phones; each mistake is located at its line and key.
const GROUPS: &str = r#"[site]
name = "pier"

[[cluster]]
name = "cm"
profile = "cisco-ucm"
target = "14.0.1.13900-155"

[cluster.facts]
upgrade_source = "sftp"
cm_groups = [
    { name = "Pier-1", servers = ["cm-1", "cm-2"], devices = 1200 },
    { name = "Pier-2", servers = ["cm-2", "cm-1"], devices = 900 },
]

[[cluster.node]]
name = "cm-pub"
role = "publisher"
version = "12.5.1.16900-48"

[[cluster.node]]
name = "cm-1"
role = "subscriber"
version = "12.5.1.16900-48"

[[cluster.node]]
name = "cm-2"
role = "subscriber"
version = "12.5.1.16900-48"
"#;

#[test]
fn cm_group_errors_name_line_and_key_ucm_15() {
    load_site("site.toml", GROUPS, &builtin()).expect("the groups load");
    let cases = [
        (
            "servers = [\"cm-1\", \"cm-2\"], devices = 1200",
            "servers = [\"cm-1\", \"cm-3\"], devices = 1200",
            "cluster[0].facts.cm_groups[0].servers[1]",
            "`cm-3` is not a node of cluster `cm`",
        ),
        (
            "servers = [\"cm-2\", \"cm-1\"], devices = 900",
            "servers = [], devices = 900",
            "cluster[0].facts.cm_groups[1].servers",
            "must list the group's servers in order",
        ),
        (
            "servers = [\"cm-2\", \"cm-1\"], devices = 900",
            "servers = [\"cm-2\", \"cm-2\"], devices = 900",
            "cluster[0].facts.cm_groups[1].servers[1]",
            "server `cm-2` is listed twice",
        ),
        (
            "devices = 900",
            "devices = \"many\"",
            "cluster[0].facts.cm_groups[1].devices",
            "must be a number of phones",
        ),
        (
            ", devices = 900",
            ", phones = 900",
            "cluster[0].facts.cm_groups[1].phones",
            "unknown key `phones` in a group of `cm_groups`",
        ),
        (
            "{ name = \"Pier-2\", servers = [\"cm-2\", \"cm-1\"], devices = 900 }",
            "\"Pier-2\"",
            "cluster[0].facts.cm_groups[1]",
            "each item of `cm_groups` must be a table",
        ),
    ];
    for (from, to, key, message) in cases {
        assert!(GROUPS.contains(from), "fixture lacks {from:?}");
        let text = GROUPS.replacen(from, to, 1);
        let line = text[..text.find(to).unwrap()].split('\n').count();
        check_site_error(&text, line, key, message);
    }
}

#[test]
fn a_site_may_still_say_parallel_or_name_a_shared_strategy_ucm_13() {
    // `parallel` (renamed to fastest) and the shared strategies load for every profile; an
    // unknown name is an error that lists what to write.
    for (profile_site, s) in [
        (GROUPS, "parallel"),
        (GROUPS, "balanced"),
        (PAIR, "balanced"),
    ] {
        let text = profile_site.replacen(
            "\ntarget = ",
            &format!("\nstrategy = \"{s}\"\ntarget = "),
            1,
        );
        load_site("site.toml", &text, &builtin()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    let text = GROUPS.replacen("\ntarget = ", "\nstrategy = \"parralel\"\ntarget = ", 1);
    check_site_error(
        &text,
        7,
        "cluster[0].strategy",
        "unknown strategy `parralel`",
    );
}

/// The `balanced` strategy's batch rules and the renamed strategies of cisco-ucm: every
/// mistake located at its line and key.
#[test]
fn batch_and_renamed_strategy_errors_name_line_and_key_ucm_15() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "cisco-ucm")
        .expect("cisco-ucm")
        .1;
    let cases = [
        (
            "steps = [\"switch-version\", \"subscriber-serving\"]\ndevices = [\"phones\"]",
            "steps = [\"switch-version\", \"subscriber-back\"]\ndevices = [\"phones\"]",
            "procedure.batch[0].steps[1]",
            "no step `subscriber-back` in this procedure",
        ),
        (
            "steps = [\"switch-version\", \"subscriber-serving\"]\ndevices = [\"phones\"]",
            "steps = [\"switch-version\", \"subscriber-serving\"]\ndevices = [\"handsets\"]",
            "procedure.batch[0].devices[0]",
            "no [[twin.devices]] named `handsets`",
        ),
        (
            "roles = [\"subscriber\"]\nsteps = [\"switch-version\", \"subscriber-serving\"]\ndevices",
            "roles = [\"subscribers\"]\nsteps = [\"switch-version\", \"subscriber-serving\"]\ndevices",
            "procedure.batch[0].roles[0]",
            "unknown role `subscribers`",
        ),
        (
            "now = \"fastest\"",
            "now = \"quickest\"",
            "profile.renamed_strategy[0].now",
            "unknown strategy `quickest`",
        ),
        (
            "name = \"parallel\"\nnow",
            "name = \"balanced\"\nnow",
            "profile.renamed_strategy[0].name",
            "strategy `balanced` is offered",
        ),
        (
            "groups_fact = \"cm_groups\"",
            "groups_fact = \"configured_devices\"",
            "twin.devices[0].groups_fact",
            "fact `configured_devices` is a integer, not a list",
        ),
        (
            "capacity_fact = \"device_capacity\"",
            "capacity_fact = \"upgrade_source\"",
            "twin.devices[0].capacity_fact",
            "fact `upgrade_source` is a string, not a number",
        ),
    ];
    for (from, to, key, message) in cases {
        check_profile_error(base, from, to, key, message);
    }
}

/// A staging period (`[site] stage`) is a period of its own before the booked window: its
/// errors name the line and key like the window's.
#[test]
fn staging_period_errors_name_line_and_key() {
    let staged = PAIR.replacen(
        "window = { start = \"2026-12-05T22:00:00-05:00\", hours = 2 }\n",
        "window = { start = \"2026-12-05T22:00:00-05:00\", hours = 2 }\nstage = { start = \"2026-12-05T08:00:00-05:00\", hours = 10 }\n",
        1,
    );
    let set = builtin();
    let site =
        load_site("site.toml", &staged, &set).expect("a staging period before the window loads");
    let stage = &serde_json::to_value(&site).expect("json")["stage"];
    assert_eq!(stage["hours"], 10.0, "{stage}");
    assert_eq!(stage["offset_s"], -5 * 3600, "{stage}");
    let cases: &[(&str, &str, usize, &str, &str)] = &[
        (
            "hours = 10",
            "hours = 15",
            4,
            "site.stage",
            "ends after the window opens",
        ),
        (
            "hours = 10",
            "hours = 0",
            4,
            "site.stage.hours",
            "between 0 and 336",
        ),
        (
            "2026-12-05T08:00:00-05:00",
            "this morning",
            4,
            "site.stage.start",
            "not an RFC 3339",
        ),
    ];
    for (from, to, line, key, message) in cases {
        check_site_error(&staged.replacen(from, to, 1), *line, key, message);
    }
    // Staging is ahead of a window: a site without one cannot book it.
    check_site_error(
        &staged.replacen(
            "window = { start = \"2026-12-05T22:00:00-05:00\", hours = 2 }\n",
            "",
            1,
        ),
        3,
        "site.stage",
        "but no window",
    );
}

/// The `stage` key of a step (the rule that lets it run ahead of the window) and the profile's
/// `[[staging_cost]]` are checked where they are written.
#[test]
fn stage_errors_name_line_and_key() {
    let base = ferry_profiles::registry::BUILTIN
        .iter()
        .find(|(n, _)| *n == "linux-ha")
        .expect("linux-ha")
        .1;
    let switch = "rules = [\"LHA-04\"]\neffects = [\"switch\"]\n";
    let cases: &[(&str, &str, &str, &str)] = &[
        // A step that takes its node down never runs ahead of the window.
        (
            switch,
            "stage = { rule = \"LHA-03\" }\nrules = [\"LHA-04\"]\neffects = [\"switch\"]\n",
            "procedure.step[3].stage",
            "takes its node down",
        ),
        (
            switch,
            "stage = { rule = \"lha3\" }\nrules = [\"LHA-04\"]\neffects = [\"switch\"]\n",
            "procedure.step[3].stage.rule",
            "`lha3` is not a rule ID",
        ),
        (
            "stage = { rule = \"LHA-03\", note = \"a snapshot changes nothing on the service\" }",
            "stage = { rule = \"LHA-03\", with = [\"stag\"] }",
            "procedure.step[0].stage.with[0]",
            "no step `stag`",
        ),
        // A rollback is never staged.
        (
            "rules = [\"LHA-04\"]\neffects = [\"revert\"]\n",
            "stage = { rule = \"LHA-03\" }\nrules = [\"LHA-04\"]\neffects = [\"revert\"]\n",
            "rollback.step[1].stage",
            "rollback",
        ),
    ];
    for (from, to, key, message) in cases {
        check_profile_error(base, from, to, key, message);
    }
    // What staging costs names the measure that says how long: one of the profile's.
    let text = format!(
        "{base}\n[[staging_cost]]\nrule = \"LHA-03\"\nmeasure = \"slot_time\"\ntext = \"The slot holds the new version for hours.\"\n"
    );
    let err = load_profile("mine.toml", &text).expect_err("an unknown measure is rejected");
    let e = err
        .errors
        .iter()
        .find(|e| e.message.contains("no measure `slot_time`"))
        .unwrap_or_else(|| {
            panic!(
                "{:?}",
                err.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
            )
        });
    assert_eq!(e.key, "staging_cost[0].measure");
    assert_eq!(e.line, text.lines().count() - 1);
}

/// `[site.objectives]` (FERRY-FIT): what a site asks of a plan, read as written and checked
/// with the line and key of the offending value.
#[test]
fn site_objectives_are_read_and_checked_ferry_fit() {
    fn check(objectives: &str, expected: Result<ferry_model::Objectives, (usize, &str, &str)>) {
        let text = PAIR.replace(
            "\n[[cluster]]",
            &format!("\n[site.objectives]\n{objectives}\n\n[[cluster]]"),
        );
        match expected {
            Ok(want) => {
                let site = load_site("site.toml", &text, &builtin())
                    .unwrap_or_else(|e| panic!("{objectives}: {:?}", miette::Report::new(e)));
                assert_eq!(site.objectives, want, "{objectives}");
            }
            Err((line, key, message)) => check_site_error(&text, line, key, message),
        }
    }
    check(
        "min_fit = 0.95\nmax_failed_calls = 200\nmax_freeze_hours = 12",
        Ok(ferry_model::Objectives {
            min_fit: Some(0.95),
            max_failed_calls: Some(200.0),
            max_freeze_hours: Some(12.0),
            ..Default::default()
        }),
    );
    check(
        "max_mixed_version_minutes = 30\nmax_device_minutes_unregistered = 5000\nmax_config_at_risk_hours = 2\nmax_minutes_without_redundancy = 15",
        Ok(ferry_model::Objectives {
            max_mixed_version_minutes: Some(30.0),
            max_device_minutes_unregistered: Some(5000.0),
            max_config_at_risk_hours: Some(2.0),
            max_minutes_without_redundancy: Some(15.0),
            ..Default::default()
        }),
    );
    check(
        "min_fit = 1.5",
        Err((6, "site.objectives.min_fit", "from 0 to 1")),
    );
    check(
        "max_failed_calls = -3",
        Err((6, "site.objectives.max_failed_calls", "from 0 to")),
    );
    check(
        "max_freeze_hours = 9000",
        Err((6, "site.objectives.max_freeze_hours", "from 0 to 8760")),
    );
    check(
        "min_fit = 0.9\nmax_fail_calls = 3",
        // A misspelt objective is named with its line and key.
        Err((
            7,
            "site.objectives.max_fail_calls",
            "unknown key `max_fail_calls`",
        )),
    );
    // The odds are judged against the booked window: without one, `min_fit` cannot be.
    let text = PAIR
        .replace(
            "window = { start = \"2026-12-05T22:00:00-05:00\", hours = 2 }\n",
            "",
        )
        .replace(
            "\n[[cluster]]",
            "\n[site.objectives]\nmin_fit = 0.8\n\n[[cluster]]",
        );
    check_site_error(
        &text,
        5,
        "site.objectives.min_fit",
        "the site books no window",
    );
}
