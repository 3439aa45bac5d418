//! The tidy test: ARCHITECTURE.md's invariants checked on ferry's source tree (no product name
//! in engine code, no IO or clock in the pure core, a `//!` line opening every module), and
//! each check shown to catch what it is for on a snippet.

use ferry_tidy::{
    code_lines, module_doc, product_names, pure_core_dependencies, pure_core_io, Violation,
    PRODUCT_NAME_ALLOWED, PURE_CORE,
};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir` (relative to the workspace), sorted, `target/` left out.
fn rust_files(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![workspace().join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                let rel = p
                    .strip_prefix(workspace())
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                let rel = rel.trim_start_matches("./").to_string();
                let text = std::fs::read_to_string(&p).expect("a source file reads");
                out.push((rel, text));
            }
        }
    }
    out.sort();
    out
}

/// The crates' library and binary code: `crates/*/src/**` and `crates/*/build.rs` (the tidy
/// crate left out: it names what it looks for).
fn engine_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .collect();
    crates.sort();
    for c in crates {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tidy" {
            continue;
        }
        files.extend(rust_files(&format!("crates/{name}/src")));
        let build = c.join("build.rs");
        if build.is_file() {
            files.push((
                format!("crates/{name}/build.rs"),
                std::fs::read_to_string(build).unwrap(),
            ));
        }
    }
    files
}

fn report(what: &str, v: &[Violation]) {
    assert!(
        v.is_empty(),
        "{what}: {} violation(s)\n{}",
        v.len(),
        v.iter().map(|v| format!("  {v}\n")).collect::<String>()
    );
}

#[test]
fn no_product_name_in_engine_code() {
    let files = engine_files();
    assert!(files.len() > 50, "the tidy test sees the source tree");
    let mut violations = Vec::new();
    let mut used = vec![false; PRODUCT_NAME_ALLOWED.len()];
    for (path, text) in &files {
        let (v, u) = product_names(path, text);
        violations.extend(v);
        for i in u {
            used[i] = true;
        }
    }
    for (i, (path, needle, _)) in PRODUCT_NAME_ALLOWED.iter().enumerate() {
        if !used[i] {
            violations.push(Violation {
                path: path.to_string(),
                line: 0,
                message: format!(
                    "allowed product name `{needle}` no longer occurs: remove it from PRODUCT_NAME_ALLOWED"
                ),
            });
        }
    }
    report("product names", &violations);
}

#[test]
fn no_io_clock_or_network_in_the_pure_core() {
    let mut violations = Vec::new();
    for krate in PURE_CORE {
        let files = rust_files(&format!("{krate}/src"));
        assert!(!files.is_empty(), "{krate}/src has files");
        for (path, text) in files {
            violations.extend(pure_core_io(&path, &text));
        }
        let manifest = format!("{krate}/Cargo.toml");
        let text = std::fs::read_to_string(workspace().join(&manifest)).unwrap();
        violations.extend(pure_core_dependencies(&manifest, &text));
    }
    report("pure core", &violations);
}

#[test]
fn every_module_opens_with_a_doc_line() {
    let mut files = rust_files("crates");
    files.extend(rust_files("examples"));
    files.extend(rust_files("fuzz"));
    assert!(files.len() > 100, "the tidy test sees the source tree");
    let violations: Vec<Violation> = files
        .iter()
        .filter_map(|(path, text)| module_doc(path, text))
        .collect();
    report("module docs", &violations);
}

// Each check catches what it is for: a snippet in, the lines it reports out.

/// The lines `check` reports in `text`.
fn lines_of(v: &[Violation]) -> Vec<usize> {
    v.iter().map(|v| v.line).collect()
}

fn check_products(path: &str, text: &str, expected: &[usize]) {
    let (v, _) = product_names(path, text);
    assert_eq!(lines_of(&v), expected, "{v:#?}");
}

#[test]
fn product_names_are_found_in_code_and_not_in_comments_tests_or_rule_ids() {
    let path = "crates/plan/src/x.rs";
    check_products(
        path,
        "//! Plans (Cisco UCM's rules, from the profile).\nfn f(p: &str) -> bool { p == \"cisco-ucm\" }\n",
        &[2, 2],
    );
    check_products(path, "if role == \"CUCM publisher\" {}\n", &[1]);
    check_products(path, "let genesys = 1;\n", &[1]);
    check_products(path, "let s = \"Avaya\"; // avaya\n", &[1]);
    // Comments, block comments and doc comments are documentation.
    check_products(
        path,
        "/* the CMS\n   and UCM */ let x = 1;\n/// Genesys\n",
        &[],
    );
    // Rule IDs cite the documents.
    check_products(
        path,
        "let rule = \"UCM-07\"; let r = \"CUCM-PATH-2\";\n",
        &[],
    );
    check_products(path, "let rule = \"ucm-07\";\n", &[1]);
    // A word that contains a name is no name.
    check_products(path, "let cmsg = cms_like; let ucms = 1;\n", &[]);
    // Unit tests may use any name.
    check_products(
        path,
        "fn f() {}\n#[cfg(test)]\nmod tests {\n    const P: &str = \"cisco-ucm\";\n    fn g() { let c = '{'; }\n}\nfn h() -> &'static str { \"ucm\" }\n",
        &[7],
    );
    // A line allowed in one file is not allowed in another.
    check_products(
        "crates/profiles/src/registry.rs",
        "(\"cisco-ucm\", include_str!(\"../profiles/cisco-ucm.toml\")),\n",
        &[],
    );
    check_products(
        "crates/plan/src/registry.rs",
        "(\"cisco-ucm\", include_str!(\"../profiles/cisco-ucm.toml\")),\n",
        &[1, 1, 1, 1],
    );
}

fn check_io(text: &str, expected: &[usize]) {
    let v = pure_core_io("crates/twin/src/x.rs", text);
    assert_eq!(lines_of(&v), expected, "{v:#?}");
}

#[test]
fn io_and_the_clock_are_found_in_the_pure_core() {
    check_io(
        "use std::fs;\nfn f() { let t = std::time::SystemTime::now(); }\n",
        &[1, 2, 2],
    );
    check_io("let t = jiff::Timestamp::now();\n", &[1]);
    check_io(
        "let r = rand::rng();\nlet e = std::env::var(\"X\");\n",
        &[1, 2, 2],
    );
    check_io("println!(\"x\");\n", &[1]);
    // Embedding a file at compile time reads nothing at run time; comments and tests are free.
    check_io(
        "const P: &str = include_str!(\"../p.toml\"); // not std::fs\n#[cfg(test)]\nmod tests {\n    fn t() { std::fs::read(\"x\"); }\n}\n",
        &[],
    );
    let manifest = "[dependencies]\nserde = \"1\"\ntokio = { version = \"1\" }\n[dev-dependencies]\nrusqlite = \"0.3\"\n";
    let v = pure_core_dependencies("crates/twin/Cargo.toml", manifest);
    assert_eq!(lines_of(&v), [3], "{v:#?}");
}

#[test]
fn a_module_without_a_doc_line_is_found() {
    assert!(module_doc("a.rs", "//! What this is.\nfn f() {}\n").is_none());
    assert!(module_doc("a.rs", "/// An item.\nfn f() {}\n").is_some());
    assert!(module_doc("a.rs", "").is_some());
}

#[test]
fn comments_are_blanked_and_literals_kept() {
    let code = code_lines(
        "let a = \"// not a comment\"; // a comment\nlet b = r#\"/* raw */\"#; /* gone\n still gone */ let c = '\"';\n",
    );
    assert_eq!(code[0].trim_end(), "let a = \"// not a comment\";");
    assert_eq!(code[1].trim_end(), "let b = r#\"/* raw */\"#;");
    assert_eq!(code[2].trim(), "let c = '\"';");
}
