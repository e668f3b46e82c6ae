//! Untrusted text on its way to a terminal or a log line: a server's detail,
//! component names and fields, a TCP banner, a connection report's service
//! names, anything read from the network.
//!
//! Every control character (C0, DEL, C1) is written as a visible escape
//! (`\n`, `\r`, `\t`, `\e`, `\0`, `\x7f`, `\u{9b}`), and a backslash as
//! `\\`, so a server cannot move the cursor, set a window title, clear the
//! screen or start a forged line of output; and the text is cut at
//! [`MAX_SHOWN`] bytes with a mark saying how much was left out. JSON and
//! CSV output carry the exact text instead: their encoders escape it.

use std::borrow::Cow;
use std::fmt::Write;

/// The most bytes of one untrusted text shown (before escaping).
pub const MAX_SHOWN: usize = 1024;

/// `s` escaped for a terminal and cut at [`MAX_SHOWN`] bytes.
pub fn shown(s: &str) -> Cow<'_, str> {
    shown_within(s, MAX_SHOWN)
}

/// `s` escaped for a terminal and cut at `max` bytes (on a character
/// boundary), with `...(N more bytes)` when cut.
pub fn shown_within(s: &str, max: usize) -> Cow<'_, str> {
    let cut = floor_boundary(s, max);
    let kept = &s[..cut];
    if cut == s.len() && !kept.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(kept.len() + 16);
    for c in kept.chars() {
        push_escaped(&mut out, c);
    }
    if cut < s.len() {
        let _ = write!(out, "...({} more bytes)", s.len() - cut);
    }
    Cow::Owned(out)
}

/// `s` as it is, cut at `max` bytes (on a character boundary) with
/// `...(N more bytes)` when cut: for text kept rather than shown (the
/// watcher's history), escaped later where it is shown.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    let at = floor_boundary(s, max);
    if at == s.len() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(format!("{}...({} more bytes)", &s[..at], s.len() - at))
}

/// `s` shown in double quotes, with `"` escaped too: `detail="..."`.
pub fn quoted(s: &str) -> String {
    let shown = shown(s);
    let mut out = String::with_capacity(shown.len() + 2);
    out.push('"');
    for c in shown.chars() {
        if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\\'
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        '\x1b' => out.push_str("\\e"),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// The largest index `<= max` on a character boundary of `s`.
fn floor_boundary(s: &str, max: usize) -> usize {
    health_proto::text::truncate(s, max).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_visible_and_nothing_else_changes() {
        assert!(matches!(shown("serving 12 clients"), Cow::Borrowed(_)));
        assert_eq!(shown("naïve – ok"), "naïve – ok");
        assert_eq!(
            shown("\x1b]0;pwned\x07\x1b[2J\r\x08\0\x7f\u{9b}31m"),
            "\\e]0;pwned\\x07\\e[2J\\r\\x08\\0\\x7f\\u{9b}31m"
        );
        assert_eq!(
            shown("ok\nLANDMARK OK - x|time=0s"),
            "ok\\nLANDMARK OK - x|time=0s"
        );
        assert_eq!(
            shown("a\\nb"),
            "a\\\\nb",
            "a literal backslash is not an escape"
        );
        assert_eq!(quoted("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    }

    #[test]
    fn long_text_is_cut_and_marked() {
        let long = "é".repeat(1000); // 2000 bytes
        let s = shown(&long);
        assert!(s.ends_with("...(976 more bytes)"), "{s}");
        assert!(s.len() < MAX_SHOWN + 32);
        assert_eq!(cut("a\0bcd", 3), "a\0b...(2 more bytes)");
        assert!(matches!(cut("abc", 3), Cow::Borrowed("abc")));
    }
}
