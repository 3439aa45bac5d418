//! Checks on ferry's own source tree, as rust-analyzer keeps a tidy test: the invariants that
//! ARCHITECTURE.md states ("Invariants"), read from the files themselves. Each check takes a
//! file's path (relative to the workspace) and text and returns what breaks the invariant, so
//! the checks can be tested on snippets (`tests/tidy.rs`) as well as run on the tree.

use std::fmt;

/// Something in a file that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The file, relative to the workspace root.
    pub path: String,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.message)
    }
}

/// The product names engine code may not contain (word-boundary, case-insensitive).
pub const PRODUCT_NAMES: [&str; 7] = [
    "cisco",
    "ucm",
    "cucm",
    "callmanager",
    "genesys",
    "avaya",
    "cms",
];

/// Lines of code that may name a product, each with the reason: (file, text on the line, why).
/// An entry that no longer matches anything is itself reported, so the list stays true.
pub const PRODUCT_NAME_ALLOWED: &[(&str, &str, &str)] = &[
    (
        "crates/profiles/src/registry.rs",
        "cisco-ucm",
        "the built-in profiles' data files, embedded by their names",
    ),
    (
        "crates/profiles/src/registry.rs",
        "cisco-callmanager4",
        "the built-in profiles' data files, embedded by their names",
    ),
    (
        "crates/profiles/src/registry.rs",
        "genesys-framework",
        "the built-in profiles' data files, embedded by their names",
    ),
    (
        "crates/profiles/src/registry.rs",
        "avaya-cms-ha",
        "the built-in profiles' data files, embedded by their names",
    ),
    (
        "crates/cli/src/main.rs",
        "cisco-ucm, cisco-callmanager4, genesys-framework, avaya-cms-ha, linux-ha",
        "`ferry --help` lists the built-in profiles",
    ),
    (
        "crates/cli/src/cmd/apply.rs",
        "--pause-after ucm/ucm-pub/switch-version",
        "an example command line in `ferry apply --help`",
    ),
    (
        "crates/cli/src/cmd/examples.rs",
        "ferry examples ucm-standard > site.toml",
        "an example command line in `ferry examples --help`",
    ),
    (
        "crates/cli/src/cmd/demo.rs",
        "default_value = \"ucm-standard\"",
        "`ferry demo` shows a built-in example by default",
    ),
    (
        "crates/cli/src/cmd/bench.rs",
        "SCALING_EXAMPLE: &str = \"genesys-framework\"",
        "the planner benchmark scales one built-in example's profile",
    ),
];

/// Crates whose library code is the pure core: no file system, clock, network, process,
/// environment or unseeded randomness (ARCHITECTURE.md, "Determinism").
pub const PURE_CORE: [&str; 4] = [
    "crates/model",
    "crates/profiles",
    "crates/plan",
    "crates/twin",
];

/// What pure core code may not use: (text, what it is).
pub const IMPURE: &[(&str, &str)] = &[
    ("std::fs", "the file system"),
    ("File::", "the file system"),
    ("read_dir", "the file system"),
    ("std::net", "the network"),
    ("TcpStream", "the network"),
    ("UdpSocket", "the network"),
    ("std::env", "the environment"),
    ("env::var", "the environment"),
    ("std::process", "processes"),
    ("std::thread", "threads and sleeping"),
    ("SystemTime", "the clock"),
    ("Instant", "the clock"),
    ("::now(", "the clock"),
    ("TimeZone::system", "the machine's time zone"),
    ("tokio", "an async runtime (network, clock, files)"),
    ("reqwest", "the network"),
    ("ureq", "the network"),
    ("hyper", "the network"),
    ("rusqlite", "a database file"),
    ("thread_rng", "unseeded randomness"),
    ("OsRng", "unseeded randomness"),
    ("from_entropy", "unseeded randomness"),
    ("from_os_rng", "unseeded randomness"),
    ("rand::rng(", "unseeded randomness"),
    ("getrandom", "unseeded randomness"),
    ("println!", "the terminal"),
    ("eprintln!", "the terminal"),
    ("print!(", "the terminal"),
    ("eprint!(", "the terminal"),
    ("stdout(", "the terminal"),
    ("stderr(", "the terminal"),
    ("stdin(", "the terminal"),
];

/// Dependencies the pure core crates may not have (their `[dependencies]`; dev-dependencies
/// are for tests).
pub const IMPURE_DEPENDENCIES: [&str; 10] = [
    "tokio",
    "reqwest",
    "ureq",
    "hyper",
    "rusqlite",
    "getrandom",
    "openssh",
    "rustls",
    "mio",
    "socket2",
];

/// A file's code, line by line, as the compiler sees it: comments blanked out (line, block
/// and doc comments), string and character literals kept, and the items under `#[cfg(test)]`
/// (unit tests and their helpers) blanked out too.
pub fn code_lines(text: &str) -> Vec<String> {
    let stripped = strip_comments(text);
    let mut out = Vec::new();
    // Inside a `#[cfg(test)]` item: the brace depth, and whether its body has opened.
    let mut test_item: Option<(i32, bool)> = None;
    for line in stripped.lines() {
        if test_item.is_none() && line.contains("#[cfg(test)]") {
            test_item = Some((0, false));
        }
        match &mut test_item {
            None => out.push(line.to_string()),
            Some((depth, opened)) => {
                out.push(String::new());
                for c in braces_outside_literals(line) {
                    match c {
                        '{' => {
                            *depth += 1;
                            *opened = true;
                        }
                        '}' => *depth -= 1,
                        _ => {}
                    }
                }
                let ended_without_body =
                    !*opened && line.trim_end().ends_with(';') && line.trim() != "#[cfg(test)]";
                if (*opened && *depth <= 0) || ended_without_body {
                    test_item = None;
                }
            }
        }
    }
    out
}

/// The braces and semicolons of a line that are code (not in a string or character literal).
fn braces_outside_literals(line: &str) -> Vec<char> {
    let mut v = Vec::new();
    let mut in_str = false;
    let mut escaped = false;
    let line = line.replace("'{'", "   ").replace("'}'", "   ");
    for c in line.chars() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '{' || c == '}' {
            v.push(c);
        }
    }
    v
}

/// The text with every comment replaced by spaces (newlines kept, so lines keep their numbers).
/// Knows string literals (with escapes), raw strings (`r#"…"#`), character literals and
/// lifetimes, and nested block comments.
pub fn strip_comments(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !(i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let mut k = j + 1;
            while k < b.len() && !b[k..].starts_with(&close) {
                k += 1;
            }
            let end = (k + close.len()).min(b.len());
            out.extend(&b[i..end]);
            i = end;
        } else if c == '"' {
            out.push(c);
            i += 1;
            while i < b.len() {
                out.push(b[i]);
                if b[i] == '\\' && i + 1 < b.len() {
                    out.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                i += 1;
                if b[i - 1] == '"' {
                    break;
                }
            }
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}', '"') or a lifetime ('a).
            let lit_end = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&k| b[k] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match lit_end {
                Some(e) => {
                    out.extend(&b[i..=e]);
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether `word` occurs in `line` on word boundaries (letters, digits and `_` make a word),
/// ignoring case; the columns where it does.
fn word_at(line: &str, word: &str) -> Vec<usize> {
    let lower = line.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(p) = lower[from..].find(word) {
        let at = from + p;
        let end = at + word.len();
        let before = at == 0 || !is_word(bytes[at - 1]);
        let after = end >= bytes.len() || !is_word(bytes[end]);
        if before && after {
            found.push(at);
        }
        from = at + 1;
    }
    found
}

/// A rule ID at `at`: the name written in capitals, then `-` and a capital or digit (`UCM-07`,
/// `CMS-05`, `CUCM-PATH-2`). Rule IDs cite the vendor's documents; they are not product logic.
fn is_rule_id(line: &str, at: usize, word: &str) -> bool {
    let original = &line[at..at + word.len()];
    let rest = &line.as_bytes()[at + word.len()..];
    original.chars().all(|c| c.is_ascii_uppercase())
        && rest.first() == Some(&b'-')
        && rest
            .get(1)
            .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// No product name in engine code (`crates/*/src`, `build.rs`): outside comments, unit tests,
/// rule IDs and the lines of [`PRODUCT_NAME_ALLOWED`]. Returns the violations and the allowed
/// entries it used (by index).
pub fn product_names(path: &str, text: &str) -> (Vec<Violation>, Vec<usize>) {
    let mut violations = Vec::new();
    let mut used = Vec::new();
    for (n, line) in code_lines(text).iter().enumerate() {
        for word in PRODUCT_NAMES {
            for at in word_at(line, word) {
                if is_rule_id(line, at, word) {
                    continue;
                }
                let allowed = PRODUCT_NAME_ALLOWED
                    .iter()
                    .position(|(p, needle, _)| *p == path && line.contains(needle));
                match allowed {
                    Some(i) => used.push(i),
                    None => violations.push(Violation {
                        path: path.to_string(),
                        line: n + 1,
                        message: format!(
                            "product name `{}` in engine code (product knowledge belongs in crates/profiles/profiles/*.toml): {}",
                            &line[at..at + word.len()],
                            line.trim()
                        ),
                    }),
                }
            }
        }
    }
    (violations, used)
}

/// No file system, clock, network, process, environment, terminal or unseeded randomness in
/// the pure core's library code (outside comments and unit tests). `include_str!` is allowed:
/// the compiler reads the file, the program does not.
pub fn pure_core_io(path: &str, text: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (n, line) in code_lines(text).iter().enumerate() {
        for (needle, what) in IMPURE {
            if line.contains(needle) {
                violations.push(Violation {
                    path: path.to_string(),
                    line: n + 1,
                    message: format!(
                        "`{needle}` ({what}) in the pure core (model, profiles, plan, twin do no IO, read no clock, draw no unseeded randomness): {}",
                        line.trim()
                    ),
                });
            }
        }
    }
    violations
}

/// The pure core's `[dependencies]` (a Cargo.toml's text) hold none of [`IMPURE_DEPENDENCIES`].
pub fn pure_core_dependencies(path: &str, manifest: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut in_deps = false;
    for (n, line) in manifest.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[dependencies]";
            continue;
        }
        if !in_deps {
            continue;
        }
        let name = t.split(['=', '.', ' ']).next().unwrap_or("").trim();
        if IMPURE_DEPENDENCIES.contains(&name) {
            violations.push(Violation {
                path: path.to_string(),
                line: n + 1,
                message: format!("the pure core depends on `{name}`"),
            });
        }
    }
    violations
}

/// Every module opens with a `//!` line saying what it is.
pub fn module_doc(path: &str, text: &str) -> Option<Violation> {
    let first = text.lines().next().unwrap_or("");
    (!first.starts_with("//!")).then(|| Violation {
        path: path.to_string(),
        line: 1,
        message: "a module opens with a `//!` line saying what it is".into(),
    })
}
