//! Durations users write (`500ms`, `2s`, `10d`) on the command line and in
//! the watch config: humantime's syntax, within bounds that every later
//! computation (deadlines on the monotonic clock, moments counted back from
//! now) can hold. Without them `--timeout 9223372036854775807s` overflowed
//! a deadline and aborted the probe, an exit code keepalived's
//! `misc_dynamic` would have read as healthy.

use std::time::Duration;

/// The longest wait: a timeout, interval or threshold.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The longest span of history (`report --since`, `keep_history`).
pub const MAX_SPAN: Duration = Duration::from_secs(50 * 365 * 24 * 3600);

/// Parses a wait: greater than zero and at most [`MAX_WAIT`].
pub fn wait(s: &str) -> Result<Duration, String> {
    let d = within(s, MAX_WAIT, "1d")?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Parses a span of history: greater than zero and at most [`MAX_SPAN`].
pub fn span(s: &str) -> Result<Duration, String> {
    let d = within(s, MAX_SPAN, "50 years")?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Parses a duration of at most `max` (named `max_text` in the error).
pub fn within(s: &str, max: Duration, max_text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write durations like 500ms, 2s, 1m)"))?;
    if d > max {
        return Err(format!("{s:?} is too long: at most {max_text}"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(wait("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(wait("1d"), Ok(MAX_WAIT));
        assert!(wait("1d 1s").unwrap_err().contains("too long: at most 1d"));
        assert!(wait("9223372036854775807s")
            .unwrap_err()
            .contains("too long"));
        assert!(wait("0s").unwrap_err().contains("greater than zero"));
        assert!(wait("soon").unwrap_err().contains("500ms"));
        assert_eq!(span("10d"), Ok(Duration::from_secs(864_000)));
        assert!(span("51y").unwrap_err().contains("at most 50 years"));
        // humantime's own overflow is an error too, never a panic.
        assert!(wait("99999999999999999999999s").is_err());
    }
}
