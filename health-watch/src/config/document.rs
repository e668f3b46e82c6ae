//! Reading the config's TOML so that one run finds every problem: all the
//! syntax errors the parser recovers from, then, table by table, every
//! unknown key and every value of the wrong type, each at its line and
//! column.
//!
//! serde's derive stops at the first error of a table, and `toml` offers no
//! "collect all" mode, so this is done by hand: a table that fails to read
//! is read again without the key at fault, until it reads or no key is left
//! to blame (at most one retry per key).

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::ConfigError;

/// Byte offsets to lines and columns, in O(log lines): a config of 100,000
/// targets has 500,000 lines and may have an error on every one.
pub(super) struct Lines<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(super) fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// 1-based line and column of byte offset `at`.
    pub(super) fn error(&self, at: usize, message: impl Into<String>) -> ConfigError {
        let at = health_proto::text::truncate(self.text, at).len();
        let line = self.starts.partition_point(|&s| s <= at);
        let start = self.starts[line - 1];
        ConfigError {
            line,
            column: self.text[start..at].chars().count() + 1,
            message: message.into(),
        }
    }

    pub(super) fn line(&self, at: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= at.min(self.text.len()))
    }
}

/// The parsed document, or every syntax error in it.
pub(super) fn parse<'i>(
    text: &'i str,
    lines: &Lines<'_>,
) -> Result<Spanned<DeTable<'i>>, Vec<ConfigError>> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        Ok(doc)
    } else {
        // What follows a syntax error is guesswork: report the syntax alone.
        Err(errors.iter().map(|e| error_of(e, lines)).collect())
    }
}

fn error_of(e: &toml::de::Error, lines: &Lines<'_>) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start);
    lines.error(at, e.message().trim().to_string())
}

/// Reads `table` as a `T`, pushing every problem onto `errors`. With bad
/// keys, the `T` read without them (so that its other values are still
/// checked), or `None` when even that fails.
pub(super) fn read<T: DeserializeOwned>(
    table: Spanned<DeTable<'_>>,
    lines: &Lines<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let span = table.span();
    let mut table = table.into_inner();
    let mut removed: Vec<String> = Vec::new();
    // One try per key and one more: each failed try removes a key.
    for _ in 0..=table.len() {
        let value = Spanned::new(span.clone(), DeValue::Table(table.clone()));
        let e = match T::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        // A required key removed for its bad value is missing now: that
        // was said already.
        if removed
            .iter()
            .any(|k| e.message().starts_with(&format!("missing field `{k}`")))
        {
            return None;
        }
        errors.push(error_of(&e, lines));
        match e.span().and_then(|at| key_at(&table, at)) {
            Some(key) => {
                table.remove(key.as_str());
                removed.push(key);
            }
            None => return None,
        }
    }
    None
}

/// The key whose name or value covers `at`.
fn key_at(table: &DeTable<'_>, at: Range<usize>) -> Option<String> {
    let covers = |s: Range<usize>| s.start <= at.start && at.start < s.end.max(s.start + 1);
    table
        .iter()
        .find(|(k, v)| covers(k.span()) || covers(v.span()))
        .map(|(k, _)| k.get_ref().to_string())
}

/// Takes `key` out of `table` as a table, or as an array of tables
/// (`[[key]]`); anything else is an error, reported.
pub(super) fn take_tables<'i>(
    table: &mut DeTable<'i>,
    key: &str,
    lines: &Lines<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Spanned<DeTable<'i>>> {
    let Some(value) = table.remove(key) else {
        return Vec::new();
    };
    let span = value.span();
    let items = match value.into_inner() {
        DeValue::Table(t) => vec![Spanned::new(span, DeValue::Table(t))],
        DeValue::Array(a) => a.into_iter().collect(),
        other => {
            errors.push(lines.error(
                span.start,
                format!("{key} must be a table, not a {}", other.type_str()),
            ));
            return Vec::new();
        }
    };
    let mut tables = Vec::with_capacity(items.len());
    for item in items {
        let span = item.span();
        match item.into_inner() {
            DeValue::Table(t) => tables.push(Spanned::new(span, t)),
            other => errors.push(lines.error(
                span.start,
                format!("{key} must hold tables, not a {}", other.type_str()),
            )),
        }
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
        fall: Option<u32>,
        rise: Option<u32>,
    }

    fn read_all(text: &str) -> (Option<T>, Vec<String>) {
        let lines = Lines::new(text);
        let doc = parse(text, &lines).unwrap();
        let mut errors = Vec::new();
        let t = read::<T>(doc, &lines, &mut errors);
        (t, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn every_bad_key_of_a_table_is_reported() {
        let (t, e) = read_all("name = \"a\"\nflal = 2\nrise = \"x\"\nrsie = 1\nfall = 3\n");
        // What remains is read, for its own checks.
        assert_eq!(t.unwrap().fall, Some(3));
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e
            .iter()
            .any(|e| e.starts_with("line 2, column 1:") && e.contains("flal")));
        assert!(e.iter().any(|e| e.starts_with("line 3,")));
        assert!(e
            .iter()
            .any(|e| e.starts_with("line 4, column 1:") && e.contains("rsie")));
    }

    #[test]
    fn a_bad_required_key_is_one_error_not_two() {
        let (t, e) = read_all("name = 5\nfall = 1\n");
        assert!(t.is_none());
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("line 1,"), "{e:?}");
        let (t, e) = read_all("fall = 1\n");
        assert!(t.is_none());
        assert!(e[0].contains("missing field `name`"), "{e:?}");
    }

    #[test]
    fn a_good_table_reads() {
        let (t, e) = read_all("name = \"a\"\nfall = 1\n");
        assert!(e.is_empty());
        assert_eq!(t.unwrap().fall, Some(1));
    }

    #[test]
    fn lines_and_columns_count_characters() {
        let text = "a = 1\nb = \"é\" x\n";
        let lines = Lines::new(text);
        let at = text.find('x').unwrap();
        let e = lines.error(at, "m");
        assert_eq!((e.line, e.column), (2, 9));
        assert_eq!(lines.error(0, "m").line, 1);
        assert_eq!(lines.error(text.len(), "m").line, 3);
    }
}
