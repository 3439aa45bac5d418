//! `VendorVersion`: one version type that reads and orders every vendor scheme ferry meets.
//!
//! Schemes seen in the field: `12.5.1.11900-146`, `4.0(1)`, `3.3(4)sr2`, `2000.2.5sr2`,
//! `8.5.101.12`, `R19.1`, `19.1.0.1`. A version is read as a sequence of numbers and
//! letter tags; separators (`.`, `-`, `(`, `)`, `_`, space) only split. Ordering compares
//! token by token: numbers numerically, tags alphabetically, a number above a tag (a service
//! release tag follows its base), and a shorter version below a longer one that extends it
//! (`2000.2.5` < `2000.2.5sr2`, `R19.1` < `R19.1.0.1`). A leading `R`/`r`/`v` marks a release
//! and is not part of the order. Semver cannot do this: it would reject most of these strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("empty version")]
    Empty,
    #[error("`{0}` is not a version: expected numbers such as 12.5.1.11900-146, 4.0(1), 2000.2.5sr2 or R19.1")]
    NoNumber(String),
    #[error("`{text}` is not a version: unexpected character `{ch}`")]
    BadChar { text: String, ch: char },
    #[error("`{0}` has a number too large to be a version part")]
    TooLarge(String),
}

/// One token of a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Token {
    /// A tag such as `sr` or `es`. Orders below numbers.
    Tag(String),
    Num(u64),
}

/// A vendor version. Equality and ordering follow the tokens, so `4.0(1)` equals `4.0.1`;
/// `Display` shows the text as written.
#[derive(Debug, Clone)]
pub struct VendorVersion {
    raw: String,
    tokens: Vec<Token>,
}

fn tokenize(text: &str) -> Result<Vec<Token>, VersionError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(VersionError::Empty);
    }
    let body = match trimmed.chars().next() {
        Some('R' | 'r' | 'v' | 'V') if trimmed[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            &trimmed[1..]
        }
        _ => trimmed,
    };
    let mut tokens = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut n: u64 = 0;
            while let Some(&d) = chars.peek() {
                let Some(v) = d.to_digit(10) else { break };
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(v as u64))
                    .ok_or_else(|| VersionError::TooLarge(text.to_string()))?;
                chars.next();
            }
            tokens.push(Token::Num(n));
        } else if c.is_ascii_alphabetic() {
            let mut s = String::new();
            while let Some(&a) = chars.peek() {
                if !a.is_ascii_alphabetic() {
                    break;
                }
                s.push(a.to_ascii_lowercase());
                chars.next();
            }
            tokens.push(Token::Tag(s));
        } else if matches!(c, '.' | '-' | '(' | ')' | '_' | ' ' | '+') {
            chars.next();
        } else {
            return Err(VersionError::BadChar {
                text: text.to_string(),
                ch: c,
            });
        }
    }
    if !tokens.iter().any(|t| matches!(t, Token::Num(_))) {
        return Err(VersionError::NoNumber(text.to_string()));
    }
    if !matches!(tokens.first(), Some(Token::Num(_))) {
        return Err(VersionError::NoNumber(text.to_string()));
    }
    Ok(tokens)
}

impl VendorVersion {
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        Ok(VendorVersion {
            raw: text.trim().to_string(),
            tokens: tokenize(text)?,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The leading numbers, up to the first tag (`3.3(4)sr2` gives `[3, 3, 4]`).
    pub fn numbers(&self) -> Vec<u64> {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Num(n) => Some(*n),
                Token::Tag(_) => None,
            })
            .collect()
    }

    /// The first number: the major version.
    pub fn major(&self) -> u64 {
        self.numbers().first().copied().unwrap_or(0)
    }

    /// The first `n` numbers, padded with zeros (`release(2)` of `R19.1.0.1` is `[19, 1]`).
    pub fn prefix(&self, n: usize) -> Vec<u64> {
        let mut v = self.numbers();
        v.resize(n, 0);
        v
    }

    /// Whether the first `n` numbers of both versions are equal.
    pub fn same_prefix(&self, other: &VendorVersion, n: usize) -> bool {
        let (a, b) = (self.numbers(), other.numbers());
        // Past both versions' numbers the padding is zeros on both sides: equal.
        (0..n.min(a.len().max(b.len())))
            .all(|i| a.get(i).copied().unwrap_or(0) == b.get(i).copied().unwrap_or(0))
    }
}

impl PartialEq for VendorVersion {
    fn eq(&self, other: &Self) -> bool {
        self.tokens == other.tokens
    }
}
impl Eq for VendorVersion {}

impl Hash for VendorVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.tokens.hash(state)
    }
}

impl Ord for VendorVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // Lexicographic on tokens; a prefix is smaller. Token's derived order puts tags below numbers.
        self.tokens.cmp(&other.tokens)
    }
}
impl PartialOrd for VendorVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for VendorVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for VendorVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VendorVersion::parse(s)
    }
}

impl Serialize for VendorVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

/// In JSON and TOML a version is its text as the vendor writes it (`14.0.1.13900-155`).
impl schemars::JsonSchema for VendorVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VendorVersion".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "A vendor version as the vendor writes it (`14.0.1.13900-155`, `8.1.301.08`)."
        })
    }
}

impl<'de> Deserialize<'de> for VendorVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VendorVersion::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A version pattern: `*` (any), `3.2` or `3.2.x` (any version whose numbers start 3, 2),
/// `10.x`. A pattern matches a version when its numbers are a prefix of the version's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionPattern {
    raw: String,
    prefix: Vec<Token>,
}

impl VersionPattern {
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let t = text.trim();
        if t == "*" {
            return Ok(VersionPattern {
                raw: t.to_string(),
                prefix: Vec::new(),
            });
        }
        let stem = t
            .strip_suffix(".x")
            .or_else(|| t.strip_suffix(".*"))
            .unwrap_or(t);
        Ok(VersionPattern {
            raw: t.to_string(),
            prefix: tokenize(stem)?,
        })
    }

    pub fn matches(&self, v: &VendorVersion) -> bool {
        v.tokens.starts_with(&self.prefix)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for VersionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Whether `pattern` (as `VersionPattern::parse` reads it) matches `v`, without allocating:
/// for hot paths that test the same few patterns against many versions. An invalid pattern
/// matches nothing.
pub fn pattern_matches(pattern: &str, v: &VendorVersion) -> bool {
    let t = pattern.trim();
    if t == "*" {
        return true;
    }
    let stem = t
        .strip_suffix(".x")
        .or_else(|| t.strip_suffix(".*"))
        .unwrap_or(t);
    let body = match stem.chars().next() {
        Some('R' | 'r' | 'v' | 'V') if stem[1..].starts_with(|c: char| c.is_ascii_digit()) => {
            &stem[1..]
        }
        _ => stem,
    };
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut k = 0;
    let mut any_number = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            let mut n: u64 = 0;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                n = match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add((bytes[i] - b'0') as u64))
                {
                    Some(n) => n,
                    None => return false,
                };
                i += 1;
            }
            if v.tokens.get(k) != Some(&Token::Num(n)) {
                return false;
            }
            any_number = true;
            k += 1;
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            match v.tokens.get(k) {
                Some(Token::Tag(tag)) if tag.eq_ignore_ascii_case(&body[start..i]) => {}
                _ => return false,
            }
            k += 1;
        } else if matches!(c, b'.' | b'-' | b'(' | b')' | b'_' | b' ' | b'+') {
            i += 1;
        } else {
            return false;
        }
    }
    any_number && matches!(v.tokens.first(), Some(Token::Num(_)))
}
