//! The documented range of every number (and the longest text) ferry reads from a site,
//! profile or faults file, and the walk that checks a parsed TOML document against it.
//!
//! One table per kind of file maps a key (and, where one key means different things in
//! different tables, its parent table) to its range. Any number the tables do not name gets
//! the default range: finite, from 0 to [`MAX_NUMBER`]. The ranges keep every sum of seconds
//! the planner, the twin and the executor make far below `u64::MAX`. `docs/profiles.md`
//! ("Ranges") lists the same table; a test keeps the two in step.

use crate::diagnostic::{PathSeg, Problem};

/// The largest number any key accepts (facts, weights, thresholds, unless a key says less).
pub const MAX_NUMBER: f64 = 1e12;
/// The most characters of a name: a site, cluster, node, role, step, fact, rule or version.
pub const MAX_NAME_CHARS: usize = 128;
/// The most characters of any other text (titles, instructions, messages, fact strings).
pub const MAX_TEXT_CHARS: usize = 32_768;
/// The longest step a plan may hold, in seconds (about 31 years): the planner caps an
/// estimate there, and `ferry apply` refuses a plan whose step is longer.
pub const MAX_STEP_S: u64 = 1_000_000_000;

/// Minutes in 30 days: the longest step, wait or timeout a profile may give in minutes.
const MONTH_MIN: f64 = 43_200.0;
/// Seconds in 30 days.
const MONTH_S: f64 = 2_592_000.0;

/// The range of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// The key as written in the file.
    pub key: &'static str,
    /// The table the key must be in for this range to apply; empty: any table.
    pub parent: &'static str,
    pub min: f64,
    /// `min` itself is refused: the number must be above it.
    pub above_min: bool,
    pub max: f64,
    /// Whole numbers only.
    pub whole: bool,
    /// What the number is, for the error message and the documentation.
    pub meaning: &'static str,
}

const fn r(
    key: &'static str,
    parent: &'static str,
    min: f64,
    max: f64,
    whole: bool,
    meaning: &'static str,
) -> Range {
    Range {
        key,
        parent,
        min,
        above_min: false,
        max,
        whole,
        meaning,
    }
}

/// A range whose lower end is excluded (`per`, `heartbeat_s`: above 0).
const fn above(
    key: &'static str,
    parent: &'static str,
    min: f64,
    max: f64,
    meaning: &'static str,
) -> Range {
    Range {
        key,
        parent,
        min,
        above_min: true,
        max,
        whole: false,
        meaning,
    }
}

/// Numbers of a site file beyond the default range (facts take the default: 0 to 10^12).
pub const SITE: &[Range] = &[
    above(
        "hours",
        "window",
        0.0,
        336.0,
        "the booked window's length in hours",
    ),
    r(
        "min_fit",
        "objectives",
        0.0,
        1.0,
        false,
        "the least probability of ending inside the booked window",
    ),
    r(
        "max_freeze_hours",
        "objectives",
        0.0,
        8760.0,
        false,
        "the longest configuration freeze a plan may cost, in hours (at most a year)",
    ),
    r(
        "max_config_at_risk_hours",
        "objectives",
        0.0,
        8760.0,
        false,
        "the longest time a configuration change may be at risk, in hours (at most a year)",
    ),
];

/// Numbers of a profile.
pub const PROFILE: &[Range] = &[
    r(
        "min",
        "role",
        0.0,
        10_000.0,
        true,
        "fewest nodes of the role",
    ),
    r("max", "role", 0.0, 10_000.0, true, "most nodes of the role"),
    r(
        "max",
        "capacity",
        0.0,
        MAX_NUMBER,
        false,
        "a capacity limit's weight",
    ),
    r(
        "release_numbers",
        "versions",
        1.0,
        16.0,
        true,
        "leading version numbers that make a release",
    ),
    r(
        "os_major",
        "os",
        0.0,
        1e6,
        true,
        "embedded OS major version",
    ),
    r(
        "minutes",
        "",
        0.0,
        MONTH_MIN,
        false,
        "a step's (or a per-fact increment's) minutes, at most 30 days",
    ),
    above(
        "per",
        "per_fact",
        0.0,
        MAX_NUMBER,
        "fact units per increment",
    ),
    r(
        "retries",
        "",
        0.0,
        100.0,
        true,
        "times a step may be tried again",
    ),
    above(
        "timeout_minutes",
        "",
        0.0,
        MONTH_MIN,
        "minutes before a gate or command fails",
    ),
    r("max_concurrent", "", 1.0, 10_000.0, true, "steps at once"),
    r(
        "numbers",
        "versions_match",
        1.0,
        16.0,
        true,
        "leading version numbers that must be equal",
    ),
    r(
        "same_prefix",
        "",
        1.0,
        16.0,
        true,
        "leading version numbers current and target share",
    ),
    r(
        "differs_within",
        "",
        1.0,
        16.0,
        true,
        "leading version numbers current and target differ within",
    ),
    r("len_gt", "", 0.0, 1e6, true, "items of a list fact"),
    above(
        "hours",
        "max_age",
        0.0,
        87_600.0,
        "how old a datetime fact may be, in hours (at most 10 years)",
    ),
    r(
        "duration_spread",
        "twin",
        0.0,
        100.0,
        false,
        "factors drawn around each estimate",
    ),
    r(
        "gate_timeout_factor",
        "twin",
        1.0,
        1_000.0,
        false,
        "a gate's timeout over its estimate",
    ),
    r(
        "setup_min",
        "",
        0.0,
        MONTH_MIN,
        false,
        "minutes, drawn in the range",
    ),
    r(
        "converge_min",
        "",
        0.0,
        MONTH_MIN,
        false,
        "minutes, drawn in the range",
    ),
    r(
        "init_min",
        "",
        0.0,
        MONTH_MIN,
        false,
        "minutes, drawn in the range",
    ),
    r(
        "reregister_min",
        "",
        0.0,
        MONTH_MIN,
        false,
        "minutes, drawn in the range",
    ),
    r("lost_within_min", "", 0.0, MONTH_MIN, false, "minutes"),
    above(
        "interval_min",
        "",
        0.0,
        1_440.0,
        "a collection interval in minutes",
    ),
    r(
        "failover_s",
        "",
        0.0,
        MONTH_S,
        false,
        "seconds, drawn in the range",
    ),
    r(
        "reconnect_s",
        "",
        0.0,
        MONTH_S,
        false,
        "seconds, drawn in the range",
    ),
    r(
        "healthy_after_s",
        "",
        0.0,
        MONTH_S,
        false,
        "seconds, drawn in the range",
    ),
    above(
        "heartbeat_s",
        "",
        0.0,
        86_400.0,
        "seconds between heartbeats",
    ),
    r(
        "detect_s",
        "",
        0.0,
        86_400.0,
        false,
        "seconds to notice a lost agent",
    ),
    r(
        "default_s",
        "",
        0.0,
        MONTH_S,
        false,
        "an option's default seconds",
    ),
    above("every_seconds", "", 0.0, 86_400.0, "seconds between polls"),
    above(
        "scale",
        "read",
        0.0,
        MAX_NUMBER,
        "factor a number read by discovery is multiplied by",
    ),
    r(
        "digits",
        "read",
        0.0,
        9.0,
        true,
        "decimals a number read by discovery is rounded to",
    ),
    r(
        "per_device_hour",
        "",
        0.0,
        1e6,
        false,
        "calls per device and hour",
    ),
    r(
        "per_hour_per_1000",
        "",
        0.0,
        1e6,
        false,
        "changes per hour per 1,000 users",
    ),
];

/// Numbers of a faults file.
pub const FAULTS: &[Range] = &[
    r(
        "at_min",
        "fault",
        0.0,
        MONTH_MIN,
        false,
        "minutes into the run (at most 30 days)",
    ),
    r(
        "recover_min",
        "fault",
        0.0,
        MONTH_MIN,
        false,
        "minutes until a crashed node is back",
    ),
    r(
        "factor",
        "fault",
        0.0,
        1_000.0,
        false,
        "how many times longer a slow step runs",
    ),
    r(
        "probability",
        "fault",
        0.0,
        1.0,
        false,
        "share of Monte Carlo runs the fault fires in",
    ),
    r(
        "state",
        "fault",
        3.0,
        4.0,
        true,
        "replication state a node is stuck at (3 or 4)",
    ),
];

/// Keys whose strings are names (at most [`MAX_NAME_CHARS`]), in every kind of file.
pub const NAME_KEYS: &[&str] = &[
    "name",
    "id",
    "role",
    "roles",
    "profile",
    "target",
    "version",
    "address",
    "strategy",
    "strategies",
    "step",
    "steps",
    "rule",
    "rules",
    "node",
    "fact",
    "from_step",
    "to_step",
];

/// The kinds of TOML files the walk knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Site,
    Profile,
    Faults,
}

impl FileKind {
    pub fn table(self) -> &'static [Range] {
        match self {
            FileKind::Site => SITE,
            FileKind::Profile => PROFILE,
            FileKind::Faults => FAULTS,
        }
    }
}

/// The range of `key` in table `parent` (the default range when the table names neither).
pub fn range_of(kind: FileKind, parent: &str, key: &str) -> Range {
    let table = kind.table();
    table
        .iter()
        .find(|r| r.key == key && r.parent == parent)
        .or_else(|| {
            table
                .iter()
                .find(|r| r.key == key && (r.parent.is_empty() || r.parent == parent))
        })
        .copied()
        .unwrap_or(Range {
            key: "",
            parent: "",
            min: 0.0,
            above_min: false,
            max: MAX_NUMBER,
            whole: false,
            meaning: "facts, weights and thresholds",
        })
}

fn show(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

impl Range {
    /// Whether `x` lies in the range.
    pub fn admits(&self, x: f64) -> bool {
        x.is_finite()
            && (if self.above_min {
                x > self.min
            } else {
                x >= self.min
            })
            && x <= self.max
            && (!self.whole || x.fract() == 0.0)
    }

    /// `a whole number from 1 to 16` / `a number between 0 and 336, not 0`.
    pub fn describe(&self) -> String {
        let kind = if self.whole {
            "a whole number"
        } else {
            "a number"
        };
        if self.above_min {
            format!(
                "{kind} between {} and {}, not {}",
                show(self.min),
                show(self.max),
                show(self.min)
            )
        } else {
            format!("{kind} from {} to {}", show(self.min), show(self.max))
        }
    }
}

/// Every number out of its range, and every name or text too long, in a parsed document.
pub fn check(kind: FileKind, doc: &toml::Table) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk_table(kind, doc, &mut Vec::new(), "", &mut problems);
    problems
}

fn walk_table(
    kind: FileKind,
    table: &toml::Table,
    path: &mut Vec<PathSeg>,
    parent: &str,
    out: &mut Vec<Problem>,
) {
    for (key, value) in table {
        path.push(PathSeg::Key(key.clone()));
        if key.chars().count() > MAX_NAME_CHARS {
            out.push((
                path.clone(),
                format!(
                    "a key of {} characters: keys and names have at most {MAX_NAME_CHARS}",
                    key.chars().count()
                ),
                None,
            ));
        } else {
            walk_value(kind, value, path, parent, key, out);
        }
        path.pop();
    }
}

fn walk_value(
    kind: FileKind,
    value: &toml::Value,
    path: &mut Vec<PathSeg>,
    parent: &str,
    key: &str,
    out: &mut Vec<Problem>,
) {
    match value {
        toml::Value::Integer(i) => number(kind, *i as f64, &i.to_string(), path, parent, key, out),
        toml::Value::Float(f) => number(kind, *f, &f.to_string(), path, parent, key, out),
        toml::Value::String(s) => {
            let chars = s.chars().count();
            let (limit, what) = if NAME_KEYS.contains(&key) {
                (MAX_NAME_CHARS, "a name")
            } else {
                (MAX_TEXT_CHARS, "a text")
            };
            if chars > limit {
                out.push((
                    path.clone(),
                    format!("`{key}` is {chars} characters long: {what} has at most {limit}"),
                    None,
                ));
            }
        }
        toml::Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                path.push(PathSeg::Index(n));
                walk_value(kind, item, path, parent, key, out);
                path.pop();
            }
        }
        toml::Value::Table(t) => walk_table(kind, t, path, key, out),
        toml::Value::Boolean(_) | toml::Value::Datetime(_) => {}
    }
}

fn number(
    kind: FileKind,
    x: f64,
    text: &str,
    path: &[PathSeg],
    parent: &str,
    key: &str,
    out: &mut Vec<Problem>,
) {
    let range = range_of(kind, parent, key);
    if !range.admits(x) {
        out.push((
            path.to_vec(),
            format!(
                "`{key}` must be {}: {}; found {text}",
                range.describe(),
                range.meaning
            ),
            Some("every number ferry reads has a range: see \"Ranges\" in docs/profiles.md".into()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(kind, document, expected problems as "key path: message start")`.
    fn check_doc(kind: FileKind, text: &str, expected: &[&str]) {
        let doc: toml::Table = toml::from_str(text).unwrap();
        let got: Vec<String> = check(kind, &doc)
            .into_iter()
            .map(|(p, m, _)| format!("{}: {m}", crate::diagnostic::path_text(&p)))
            .collect();
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (g, e) in got.iter().zip(expected) {
            assert!(g.starts_with(e), "{g} does not start with {e}");
        }
    }

    #[test]
    fn numbers_out_of_range_are_named_with_their_key_path() {
        check_doc(
            FileKind::Profile,
            "[[check]]\ntest.versions_match = { roles = [], numbers = 4294967296 }\n",
            &["check[0].test.versions_match.numbers: `numbers` must be a whole number from 1 to 16"],
        );
        check_doc(
            FileKind::Profile,
            "[[role]]\nmax = 2.5\n[[procedure.limit]]\ncapacity = { max = 2.5 }\n",
            &["role[0].max: `max` must be a whole number from 0 to 10000"],
        );
        check_doc(
            FileKind::Site,
            "[site]\nwindow = { hours = 0 }\n[[cluster]]\nfacts = { a = nan, b = -1, c = inf, hours = 500 }\n",
            &[
                "cluster[0].facts.a: `a` must be a number from 0 to 1000000000000",
                "cluster[0].facts.b: `b` must be",
                "cluster[0].facts.c: `c` must be",
                "site.window.hours: `hours` must be a number between 0 and 336, not 0",
            ],
        );
        check_doc(
            FileKind::Faults,
            "[[fault]]\nfactor = 1e308\nprobability = 2\nduration_spread = [1, 2]\n",
            &[
                "fault[0].factor: `factor` must be a number from 0 to 1000",
                "fault[0].probability: `probability` must be a number from 0 to 1",
            ],
        );
    }

    /// The "Ranges" table of docs/profiles.md lists every key of the code's tables, with the
    /// same table, whole-ness and bounds.
    #[test]
    fn the_documented_table_lists_every_key() {
        let doc = include_str!("../../../docs/profiles.md");
        let section = &doc[doc.find("## Ranges").expect("a Ranges section")..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
        let rows: Vec<Vec<String>> = section
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| file") && !l.starts_with("| ---"))
            .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
            .collect();
        let number = |x: f64| {
            if x == MAX_NUMBER {
                "10^12".to_string()
            } else if x == 1e6 {
                "10^6".to_string()
            } else {
                show(x)
            }
        };
        let mut listed = 0;
        for (file, kind) in [
            ("site", FileKind::Site),
            ("profile", FileKind::Profile),
            ("faults", FileKind::Faults),
        ] {
            for r in kind.table() {
                let table = if r.parent.is_empty() {
                    "any".to_string()
                } else {
                    format!("`{}`", r.parent)
                };
                let range = if r.above_min {
                    format!("above {}, at most {}", number(r.min), number(r.max))
                } else {
                    format!("{} to {}", number(r.min), number(r.max))
                };
                let want = [
                    file.to_string(),
                    format!("`{}`", r.key),
                    table,
                    range,
                    if r.whole { "yes".into() } else { String::new() },
                ];
                assert!(
                    rows.iter().any(|row| row.len() > 6 && row[1..6] == want),
                    "docs/profiles.md, Ranges, lacks the row {want:?}"
                );
                listed += 1;
            }
        }
        assert_eq!(
            rows.len(),
            listed,
            "the documented table has rows the code does not"
        );
    }

    #[test]
    fn long_names_and_keys_are_refused() {
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        check_doc(
            FileKind::Site,
            &format!("[[cluster]]\nname = \"{long}\"\ndescription = \"{long}\"\nfacts = {{ {long} = 1 }}\n"),
            &[
                "cluster[0].facts.nnnn",
                "cluster[0].name: `name` is 129 characters long: a name has at most 128",
            ],
        );
    }
}
