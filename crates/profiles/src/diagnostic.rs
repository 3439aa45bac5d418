//! Errors in input files (sites, profiles) that point at the file, line and key.

use miette::{Diagnostic, NamedSource, SourceSpan};
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A step in a key path: `cluster[1].node[0].role` is `[Key("cluster"), Index(1), Key("node"), Index(0), Key("role")]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Renders a key path the way a person reads it: `cluster[1].node[0].role`.
pub fn path_text(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// One problem in one input file.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}: {message}")]
#[diagnostic(code(ferry::input))]
pub struct InputError {
    pub file: String,
    pub line: usize,
    /// The key path of the offending value, when known (`cluster[0].node[1].role`).
    pub key: String,
    pub message: String,
    #[source_code]
    pub source_code: NamedSource<String>,
    #[label("{label}")]
    pub span: Option<SourceSpan>,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

/// Every problem found in one load, in file order.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{} problem(s) in {file}", errors.len())]
pub struct InputErrors {
    pub file: String,
    #[related]
    pub errors: Vec<InputError>,
}

/// The source text of one input file, for building located errors.
pub struct SourceFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl SourceFile<'_> {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: &[PathSeg],
        message: impl Into<String>,
        help: Option<String>,
    ) -> InputError {
        let message = message.into();
        let line = span.as_ref().map(|s| self.line_of(s.start)).unwrap_or(1);
        let key_text = path_text(key);
        InputError {
            file: self.name.to_string(),
            line,
            label: if key_text.is_empty() {
                "here".to_string()
            } else {
                key_text.clone()
            },
            key: key_text,
            message,
            source_code: NamedSource::new(self.name, self.text.to_string()),
            span: span.map(|s| SourceSpan::from(s.start..s.end.max(s.start))),
            help,
        }
    }

    /// An error from the TOML parser or from serde (syntax, wrong type, unknown key).
    pub fn from_toml(&self, err: &toml::de::Error) -> InputError {
        let msg = err.message().trim().to_string();
        self.error(err.span(), &[], msg, None)
    }
}

/// Finds the span of the value at a key path in a parsed document (the nearest ancestor
/// that exists, when the path goes further than the document).
pub fn locate(doc: &Spanned<DeTable<'_>>, path: &[PathSeg]) -> Option<Range<usize>> {
    let mut best = doc.span();
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for seg in path {
        let next = match (seg, value, table) {
            (PathSeg::Key(k), None, Some(t)) => t.get(k.as_str()),
            (PathSeg::Key(k), Some(v), _) => v.get_ref().get(k.as_str()),
            (PathSeg::Index(i), Some(v), _) => v.get_ref().get(*i),
            _ => None,
        };
        match next {
            Some(v) => {
                best = v.span();
                value = Some(v);
                table = None;
            }
            None => break,
        }
    }
    Some(best)
}

/// Parses a document for locating keys. Returns `None` when the text is not valid TOML
/// (serde's own error then carries the span).
pub fn parse_spans(text: &str) -> Option<Spanned<DeTable<'_>>> {
    DeTable::parse(text).ok()
}

/// A problem found after parsing: the key path it concerns, the message and an optional help line.
pub type Problem = (Vec<PathSeg>, String, Option<String>);

/// Turns problems into errors located at their keys' lines, in file order.
pub fn located(src: &SourceFile<'_>, problems: Vec<Problem>) -> InputErrors {
    let doc = parse_spans(src.text);
    let mut errors: Vec<InputError> = problems
        .into_iter()
        .map(|(path, msg, help)| {
            let span = doc.as_ref().and_then(|d| locate(d, &path));
            src.error(span, &path, msg, help)
        })
        .collect();
    errors.sort_by_key(|e| e.line);
    InputErrors {
        file: src.name.to_string(),
        errors,
    }
}

/// Parses a TOML document and checks every number, name and text in it against its range
/// (`crate::ranges`): a syntax error, or every value out of range, located.
pub fn checked_toml(
    src: &SourceFile<'_>,
    kind: crate::ranges::FileKind,
) -> Result<toml::Table, InputErrors> {
    let doc: toml::Table = toml::from_str(src.text).map_err(|e| InputErrors {
        file: src.name.to_string(),
        errors: vec![src.from_toml(&e)],
    })?;
    let problems = crate::ranges::check(kind, &doc);
    if problems.is_empty() {
        Ok(doc)
    } else {
        Err(located(src, problems))
    }
}
