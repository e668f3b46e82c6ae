//! Bytes a tcp check sends or expects, written as text with escapes
//! (`--send`, `--expect-banner`, and the watcher's `send` and
//! `expect_banner`): `\r`, `\n`, `\t` and `\\`; any other backslash
//! sequence is an error, so a typo is not sent. Also the regular
//! expression an answer must match (`--expect-regex`, `expect_regex`).

/// Bytes given as text, with escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl Payload {
    /// `s` with its escapes resolved.
    pub fn parse(s: &str) -> Result<Payload, String> {
        unescape(s).map(Payload)
    }
}

/// Parses an answer's regular expression: byte-oriented and ASCII-only
/// (`\w`, `\d`, `.` over bytes), because banners are bytes, and without
/// Unicode tables the probe starts as fast as before (their relocations
/// cost every run, regex or not). The error is regex's last line.
pub fn regex(s: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(s)
        .unicode(false)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string()
        })
}

/// Parses `--send` / `--expect-banner` text: `\r`, `\n`, `\t` and `\\` are
/// escapes; any other backslash sequence is an error, so a typo is not sent.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some(other) => return Err(format!("unknown escape \\{other} (use \\r \\n \\t \\\\)")),
            None => return Err("trailing backslash (use \\\\ for one)".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"PING\r\n").unwrap(), b"PING\r\n");
        assert_eq!(unescape(r"a\tb\\c").unwrap(), b"a\tb\\c");
        assert_eq!(unescape("é").unwrap(), "é".as_bytes());
        assert!(unescape(r"\x41").is_err());
        assert!(unescape("a\\").is_err());
    }
}
