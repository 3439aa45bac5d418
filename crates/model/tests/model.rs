//! Integration tests for `ferry-model`: parsing, ordering, prefixes and patterns of `VendorVersion`.

use ferry_model::version::Token;
use ferry_model::{VendorVersion, VersionError, VersionPattern};
use proptest::prelude::*;
use std::cmp::Ordering::{self, Equal, Greater, Less};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

fn v(text: &str) -> VendorVersion {
    VendorVersion::parse(text).unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
}

fn hash_of(x: &VendorVersion) -> u64 {
    let mut h = DefaultHasher::new();
    x.hash(&mut h);
    h.finish()
}

/// Parses both sides and checks `a.cmp(b)`, the reverse, `==` and hashing all agree with `expected`.
fn check(a: &str, b: &str, expected: Ordering) {
    let (va, vb) = (v(a), v(b));
    assert_eq!(va.cmp(&vb), expected, "`{a}` vs `{b}`");
    assert_eq!(vb.cmp(&va), expected.reverse(), "`{b}` vs `{a}`");
    assert_eq!(va.partial_cmp(&vb), Some(expected), "`{a}` vs `{b}`");
    assert_eq!(va == vb, expected == Equal, "`{a}` == `{b}`");
    if expected == Equal {
        assert_eq!(hash_of(&va), hash_of(&vb), "hash of `{a}` and `{b}`");
    }
}

/// Every version in `chain` is strictly below every later one.
fn check_chain(chain: &[&str]) {
    for (i, a) in chain.iter().enumerate() {
        check(a, a, Equal);
        for b in &chain[i + 1..] {
            check(a, b, Less);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and ordering, table-driven
// ---------------------------------------------------------------------------------------------

#[test]
fn ordering_pairs_across_vendor_schemes() {
    let table: &[(&str, &str, Ordering)] = &[
        // CUCM
        ("12.5.1.11900-146", "14.0.1.13900-155", Less),
        ("10.0.1.10000-1", "10.0.1.30000-2", Less),
        ("12.5.1.11900-146", "12.5.1.11900-146", Equal),
        ("12.5.1.11900-146", "12.5.1.11900-145", Greater),
        ("12.5.1.11900-146", "12.5(1)11900.146", Equal),
        // CallManager
        ("3.2(3)", "3.3(4)", Less),
        ("3.3(4)", "3.3(4)sr2", Less),
        ("3.3(4)sr2", "4.0(1)", Less),
        ("3.3(4)sr2", "3.3(4)SR2", Equal),
        ("3.3(4)sr2", "3.3(4)sr10", Less),
        ("4.0(1)", "4.0.1", Equal),
        ("2.4", "3.0", Less),
        ("3.0", "3.2(3)", Less),
        // Cisco OS
        ("2000.2.3", "2000.2.4", Less),
        ("2000.2.5", "2000.2.5sr2", Less),
        ("2000.2.5sr2", "2000.2.6", Less),
        // Genesys
        ("8.1.3", "8.5.101", Less),
        ("8.5.101", "8.5.101.12", Less),
        ("8.5.101.12", "8.5.102", Less),
        ("8.5.9", "8.5.101", Less),
        // CMS
        ("R19.1", "19.1", Equal),
        ("r19.1", "R19.1", Equal),
        ("19.1", "R19.1.0.1", Less),
        ("R19.1", "R19.1.0.1", Less),
        ("19.1.0.0", "19.1.0.1", Less),
        ("R19.1", "R21.0", Less),
        ("R19.1.0.1", "R21.0", Less),
        // Communication Manager
        ("7.1.3", "10.1", Less),
        ("10.1", "10.1.0.1", Less),
        // Surrounding whitespace and `v` prefix are not part of the version
        ("  8.5.101 ", "8.5.101", Equal),
        ("v8.5", "8.5", Equal),
        // Leading zeros are numbers, not text
        ("2000.02.05", "2000.2.5", Equal),
    ];
    for &(a, b, expected) in table {
        check(a, b, expected);
    }
}

#[test]
fn ordering_chains_per_scheme() {
    check_chain(&[
        "10.0.1.10000-1",
        "10.0.1.30000-2",
        "12.5.1.11900-146",
        "14.0.1.13900-155",
    ]);
    check_chain(&["2.4", "3.0", "3.2(3)", "3.3(4)", "3.3(4)sr2", "4.0(1)"]);
    check_chain(&[
        "2000.2.3",
        "2000.2.4",
        "2000.2.5",
        "2000.2.5sr2",
        "2000.2.6",
    ]);
    check_chain(&["8.1.3", "8.5.101", "8.5.101.12", "8.5.102"]);
    check_chain(&["R19.1", "19.1.0.0", "19.1.0.1", "R21.0"]);
    check_chain(&["7.1.3", "8.0", "10.1"]);
}

#[test]
fn sorting_a_mixed_list() {
    let mut list: Vec<VendorVersion> = ["4.0(1)", "3.3(4)sr2", "2.4", "3.3(4)", "3.2(3)", "3.0"]
        .into_iter()
        .map(v)
        .collect();
    list.sort();
    let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["2.4", "3.0", "3.2(3)", "3.3(4)", "3.3(4)sr2", "4.0(1)"]
    );
}

#[test]
fn display_keeps_the_text_as_written() {
    for text in [
        "4.0(1)",
        "3.3(4)SR2",
        "R19.1",
        "12.5.1.11900-146",
        "2000.2.5sr2",
    ] {
        assert_eq!(v(text).to_string(), text);
        assert_eq!(v(text).as_str(), text);
    }
    assert_eq!(v("  R19.1\t").to_string(), "R19.1");
}

#[test]
fn equal_versions_deduplicate_in_hash_sets() {
    let set: HashSet<VendorVersion> = ["R19.1", "19.1", "4.0(1)", "4.0.1", "3.3(4)sr2"]
        .into_iter()
        .map(v)
        .collect();
    assert_eq!(set.len(), 3);
}

#[test]
fn tokens_of_a_service_release() {
    assert_eq!(
        v("3.3(4)sr2").tokens(),
        [
            Token::Num(3),
            Token::Num(3),
            Token::Num(4),
            Token::Tag("sr".into()),
            Token::Num(2)
        ]
    );
}

#[test]
fn parse_results() {
    // Separators only split, so a doubled separator is harmless.
    let ok: &[(&str, &[u64])] = &[
        ("1..2", &[1, 2]),
        ("1.2.", &[1, 2]),
        ("(1)", &[1]),
        ("1_2+3 4", &[1, 2, 3, 4]),
        ("R7", &[7]),
        ("18446744073709551615", &[u64::MAX]),
    ];
    for &(text, numbers) in ok {
        assert_eq!(v(text).numbers(), numbers, "`{text}`");
    }

    let bad_char = |text: &str, ch: char| VersionError::BadChar {
        text: text.to_string(),
        ch,
    };
    let errors: &[(&str, VersionError)] = &[
        ("", VersionError::Empty),
        ("   ", VersionError::Empty),
        ("abc", VersionError::NoNumber("abc".into())),
        ("R", VersionError::NoNumber("R".into())),
        ("sr2", VersionError::NoNumber("sr2".into())),
        ("Rsr2", VersionError::NoNumber("Rsr2".into())),
        ("...", VersionError::NoNumber("...".into())),
        ("12.5#1", bad_char("12.5#1", '#')),
        ("1,2", bad_char("1,2", ',')),
        ("1.٣", bad_char("1.٣", '٣')),
        (
            "18446744073709551616",
            VersionError::TooLarge("18446744073709551616".into()),
        ),
    ];
    for (text, expected) in errors {
        assert_eq!(
            VendorVersion::parse(text).map(|x| x.to_string()),
            Err(expected.clone()),
            "`{text}`"
        );
        assert_eq!(text.parse::<VendorVersion>().err().as_ref(), Some(expected));
    }
}

#[test]
fn error_messages_name_the_input() {
    let msg = VendorVersion::parse("12.5#1").unwrap_err().to_string();
    assert!(msg.contains("12.5#1") && msg.contains('#'), "{msg}");
    let msg = VendorVersion::parse("abc").unwrap_err().to_string();
    assert!(msg.contains("abc"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// numbers, major, prefix, same_prefix, patterns
// ---------------------------------------------------------------------------------------------

#[test]
fn numbers_and_major() {
    let table: &[(&str, &[u64], u64)] = &[
        ("12.5.1.11900-146", &[12, 5, 1, 11900, 146], 12),
        ("3.3(4)sr2", &[3, 3, 4], 3),
        ("4.0(1)", &[4, 0, 1], 4),
        ("2000.2.5sr2", &[2000, 2, 5], 2000),
        ("8.5.101.12", &[8, 5, 101, 12], 8),
        ("R19.1", &[19, 1], 19),
        ("R19.1.0.1", &[19, 1, 0, 1], 19),
        ("7.1.3", &[7, 1, 3], 7),
        ("10", &[10], 10),
    ];
    for &(text, numbers, major) in table {
        assert_eq!(v(text).numbers(), numbers, "numbers of `{text}`");
        assert_eq!(v(text).major(), major, "major of `{text}`");
    }
}

#[test]
fn prefixes() {
    let table: &[(&str, usize, &[u64])] = &[
        ("R19.1.0.1", 2, &[19, 1]),
        ("R19.1", 4, &[19, 1, 0, 0]),
        ("12.5.1.11900-146", 3, &[12, 5, 1]),
        ("12.5.1.11900-146", 0, &[]),
        ("3.3(4)sr2", 5, &[3, 3, 4, 0, 0]),
        ("10.1", 1, &[10]),
    ];
    for &(text, n, expected) in table {
        assert_eq!(v(text).prefix(n), expected, "prefix({n}) of `{text}`");
    }
}

#[test]
fn same_prefix_table() {
    let table: &[(&str, &str, usize, bool)] = &[
        // UCM-17: same first two and three numbers, different fourth.
        ("10.0.1.10000-1", "10.0.1.30000-2", 0, true),
        ("10.0.1.10000-1", "10.0.1.30000-2", 1, true),
        ("10.0.1.10000-1", "10.0.1.30000-2", 2, true),
        ("10.0.1.10000-1", "10.0.1.30000-2", 3, true),
        ("10.0.1.10000-1", "10.0.1.30000-2", 4, false),
        ("10.0.1.10000-1", "10.0.1.30000-2", 5, false),
        ("12.5.1.11900-146", "14.0.1.13900-155", 1, false),
        // CMS release is two numbers.
        ("R19.1", "R19.1.0.1", 2, true),
        ("R19.1", "R21.0", 2, false),
        // Padding with zeros.
        ("19.1", "19.1.0.0", 4, true),
        ("3.3(4)", "3.3(4)sr2", 3, true),
        ("7.1.3", "17.1.3", 1, false),
    ];
    for &(a, b, n, expected) in table {
        assert_eq!(v(a).same_prefix(&v(b), n), expected, "`{a}` ~{n} `{b}`");
        assert_eq!(v(b).same_prefix(&v(a), n), expected, "`{b}` ~{n} `{a}`");
    }
}

#[test]
fn pattern_table() {
    let table: &[(&str, &str, bool)] = &[
        ("*", "3.2(3)", true),
        ("*", "R19.1", true),
        ("*", "12.5.1.11900-146", true),
        ("3.2", "3.2(3)", true),
        ("3.2", "3.2", true),
        ("3.2", "3.3(4)", false),
        ("3.2", "3.20", false),
        ("3.2", "13.2", false),
        ("3.2.x", "3.2(3)", true),
        ("3.2.x", "3.2.3", true),
        ("3.2.x", "3.3(4)sr2", false),
        ("3.2.*", "3.2(3)", true),
        ("10.x", "10.0.1.10000-1", true),
        ("10.x", "10.5", true),
        ("10.x", "1.0", false),
        ("10.x", "100.1", false),
        ("2000.2.5", "2000.2.5", true),
        ("2000.2.5", "2000.2.5sr2", true),
        ("2000.2.5", "2000.2.4", false),
        ("2000.2.5", "2000.2.6", false),
        ("3.3(4)", "3.3(4)sr2", true),
        ("7.x", "7.1.3", true),
        ("7.x", "17.0", false),
        ("7.x", "10.1", false),
        ("R19.x", "19.1.0.1", true),
        ("19.1", "R19.1.0.1", true),
        ("19.1", "R21.0", false),
    ];
    for &(pattern, version, expected) in table {
        let p = VersionPattern::parse(pattern).unwrap_or_else(|e| panic!("`{pattern}`: {e}"));
        assert_eq!(
            p.matches(&v(version)),
            expected,
            "`{pattern}` vs `{version}`"
        );
        assert_eq!(p.to_string(), pattern);
        assert_eq!(p.as_str(), pattern);
    }
}

#[test]
fn pattern_errors() {
    assert_eq!(VersionPattern::parse(""), Err(VersionError::Empty));
    assert!(matches!(
        VersionPattern::parse("abc"),
        Err(VersionError::NoNumber(_))
    ));
    assert!(matches!(
        VersionPattern::parse("3.2#"),
        Err(VersionError::BadChar { ch: '#', .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// A generated version in parts, so that tests can change one part and re-render it.
#[derive(Debug, Clone)]
struct Parts {
    release: &'static str,
    nums: Vec<u64>,
    seps: Vec<&'static str>,
    sr: Option<(&'static str, u64)>,
}

impl Parts {
    fn render(&self) -> String {
        let mut s = self.release.to_string();
        for (i, n) in self.nums.iter().enumerate() {
            if i > 0 {
                s.push_str(self.seps[i - 1]);
            }
            s.push_str(&n.to_string());
        }
        if let Some((tag, n)) = self.sr {
            s.push_str(tag);
            s.push_str(&n.to_string());
        }
        s
    }

    fn version(&self) -> VendorVersion {
        v(&self.render())
    }
}

fn number() -> impl Strategy<Value = u64> {
    // Mostly small, so that generated versions often share prefixes or are equal.
    prop_oneof![4 => 0..3u64, 2 => 0..20u64, 1 => 0..1_000_000u64]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("."), Just("-"), Just("("), Just(")"), Just(").")]
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        prop_oneof![3 => Just(""), 1 => Just("R"), 1 => Just("r")],
        prop::collection::vec(number(), 1..6),
        prop::collection::vec(separator(), 5),
        prop::option::weighted(0.3, (prop_oneof![Just("sr"), Just("SR")], number())),
    )
        .prop_map(|(release, nums, seps, sr)| Parts {
            release,
            nums,
            seps,
            sr,
        })
}

fn version() -> impl Strategy<Value = VendorVersion> {
    parts().prop_map(|p| p.version())
}

proptest! {
    /// The allocation-free matcher agrees with the parsed pattern on every input.
    #[test]
    fn pattern_matches_agrees_with_version_pattern(
        v in version(),
        p in prop_oneof![
            version().prop_map(|v| v.to_string()),
            version().prop_map(|v| format!("{v}.x")),
            Just("*".to_string()),
            "[0-9.xrR*()a-z-]{0,10}",
        ],
    ) {
        let parsed = VersionPattern::parse(&p).map(|pat| pat.matches(&v)).unwrap_or(false);
        prop_assert_eq!(ferry_model::pattern_matches(&p, &v), parsed, "pattern {:?} version {}", p, v);
    }

    #[test]
    fn reflexive(a in version()) {
        prop_assert_eq!(a.cmp(&a), Equal);
        prop_assert!(a == a.clone());
        prop_assert!(a <= a);
    }

    #[test]
    fn antisymmetric(a in version(), b in version()) {
        if a <= b && b <= a {
            prop_assert_eq!(&a, &b);
        }
    }

    #[test]
    fn transitive(a in version(), b in version(), c in version()) {
        let mut s = [a, b, c];
        s.sort();
        let [a, b, c] = s;
        prop_assert!(a <= b && b <= c);
        prop_assert!(a <= c);
        if a < b || b < c {
            prop_assert!(a < c);
        }
    }

    #[test]
    fn cmp_is_total_and_consistent_with_eq_and_hash(a in version(), b in version()) {
        let ord = a.cmp(&b);
        prop_assert_eq!(b.cmp(&a), ord.reverse());
        prop_assert_eq!(a.partial_cmp(&b), Some(ord));
        prop_assert_eq!(ord == Equal, a == b);
        prop_assert_eq!(a < b, ord == Less);
        prop_assert_eq!(a > b, ord == Greater);
        if a == b {
            prop_assert_eq!(hash_of(&a), hash_of(&b));
        }
    }

    #[test]
    fn equal_values_hash_equal(p in parts(), release in prop_oneof![Just(""), Just("R"), Just("v")]) {
        // The same numbers written with other separators and prefix are equal and hash equal.
        let a = p.version();
        let respelled = Parts { release, seps: vec!["."; 5], sr: p.sr.map(|(_, n)| ("sr", n)), ..p };
        let b = respelled.version();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(hash_of(&a), hash_of(&b));
    }

    #[test]
    fn display_round_trips(p in parts()) {
        let a = p.version();
        prop_assert_eq!(a.to_string(), p.render());
        let back = VendorVersion::parse(&a.to_string()).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.to_string(), a.to_string());
    }

    #[test]
    fn serde_round_trips(p in parts()) {
        let a = p.version();
        let json = serde_json::to_string(&a).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&p.render()).unwrap());
        let back: VendorVersion = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.to_string(), a.to_string());
    }

    #[test]
    fn appending_a_number_is_greater(a in version(), n in number(), sep in separator()) {
        let longer = v(&format!("{a}{sep}{n}"));
        prop_assert!(longer > a, "{} > {}", longer, a);
        let dotted = v(&format!("{a}.{n}"));
        prop_assert!(dotted > a, "{} > {}", dotted, a);
    }

    #[test]
    fn appending_a_service_release_is_greater(mut p in parts(), n in number()) {
        p.sr = None;
        let base = p.version();
        let sr = v(&format!("{base}sr{n}"));
        prop_assert!(sr > base, "{} > {}", sr, base);
        // ... but below the next base.
        let last = p.nums.len() - 1;
        p.nums[last] += 1;
        prop_assert!(sr < p.version(), "{} < {}", sr, p.render());
    }

    #[test]
    fn incrementing_any_number_is_greater(p in parts(), i in any::<prop::sample::Index>()) {
        let base = p.version();
        let mut up = p.clone();
        let k = i.index(p.nums.len() + usize::from(p.sr.is_some()));
        if k < up.nums.len() {
            up.nums[k] += 1;
        } else if let Some((_, n)) = up.sr.as_mut() {
            *n += 1;
        }
        prop_assert!(up.version() > base, "{} > {}", up.render(), p.render());
    }

    #[test]
    fn pattern_of_a_prefix_matches(p in parts(), keep in 1usize..6) {
        let a = p.version();
        let keep = keep.min(p.nums.len());
        let stem: Vec<String> = p.nums[..keep].iter().map(u64::to_string).collect();
        let stem = stem.join(".");
        for text in [stem.clone(), format!("{stem}.x"), format!("{stem}.*")] {
            let pat = VersionPattern::parse(&text).unwrap();
            prop_assert!(pat.matches(&a), "`{}` should match `{}`", text, a);
        }
        prop_assert!(VersionPattern::parse("*").unwrap().matches(&a));
        // Bumping the last number of the stem makes the pattern miss.
        let mut bumped = p.nums[..keep].to_vec();
        bumped[keep - 1] += 1;
        let bumped: Vec<String> = bumped.iter().map(u64::to_string).collect();
        let pat = VersionPattern::parse(&bumped.join(".")).unwrap();
        prop_assert!(!pat.matches(&a), "`{}` should not match `{}`", pat, a);
    }

    #[test]
    fn parsing_any_string_never_panics(s in ".*") {
        parse_anything(&s)?;
    }

    #[test]
    fn parsing_any_unicode_never_panics(s in any::<String>()) {
        parse_anything(&s)?;
    }

    #[test]
    fn parsing_version_like_strings_never_panics(s in "[0-9Rrvsx.()_+ #*-]{0,30}") {
        parse_anything(&s)?;
    }
}

/// Parses `s` as a version and a pattern; whatever parses must round-trip and answer queries.
fn parse_anything(s: &str) -> Result<(), TestCaseError> {
    if let Ok(a) = VendorVersion::parse(s) {
        let back = VendorVersion::parse(&a.to_string());
        prop_assert_eq!(back.as_ref(), Ok(&a));
        let json = serde_json::to_string(&a).unwrap();
        prop_assert_eq!(
            serde_json::from_str::<VendorVersion>(&json).ok(),
            Some(a.clone())
        );
        prop_assert!(!a.numbers().is_empty());
        prop_assert_eq!(a.major(), a.numbers()[0]);
        prop_assert_eq!(a.prefix(3).len(), 3);
        prop_assert!(a.same_prefix(&a, 8));
        prop_assert_eq!(a.cmp(&a), Equal);
    }
    if let Ok(p) = VersionPattern::parse(s) {
        let _ = p.to_string();
        if let Ok(a) = VendorVersion::parse(s) {
            let _ = p.matches(&a);
        }
    }
    let _ = s.parse::<VendorVersion>();
    Ok(())
}
