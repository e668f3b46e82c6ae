//! Text cut to a byte bound without splitting a character: what every
//! crate of the workspace does to details, names and messages before they
//! go into a frame, a label, a log line or a terminal. One copy here, the
//! crate they all depend on (`str::floor_char_boundary` is newer than the
//! workspace's minimum Rust).

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("日本", 4), "日");
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("abc", 0), "");
    }
}
