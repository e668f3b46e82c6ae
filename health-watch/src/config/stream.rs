//! A target's `stream` key (also in `[defaults]`): whether a landmark
//! target is followed by a `watch` stream (`crate::stream`) rather than
//! polled. On by default for `kind = "landmark"` checked from here alone.

use std::ops::Range;

use health_probe::check::Kind;

use super::{Common, RawTarget};

/// Whether `t` (of `kind`, with vantage points or not) streams, `common`
/// being its settings with `[defaults]`'. Said on the target itself where
/// it cannot apply (another kind, vantage points), it is an error at the
/// key; `[defaults]`' `stream = true` applies where it can.
pub(super) fn streamed(
    t: &RawTarget,
    common: &Common,
    kind: Kind,
    vantage: bool,
    error: &mut dyn FnMut(Range<usize>, String),
) -> bool {
    if let Some(own) = t.stream.as_ref().filter(|s| *s.get_ref()) {
        if kind != Kind::Landmark {
            error(
                own.span(),
                format!(
                    "stream = true is for kind = \"landmark\", not {:?}",
                    kind.as_str()
                ),
            );
            return false;
        }
        if vantage {
            error(
                own.span(),
                "stream = true cannot be combined with source or vantage: their checks are rounds of polls"
                    .into(),
            );
            return false;
        }
    }
    let wanted = common.stream.as_ref().is_none_or(|s| *s.get_ref());
    wanted && kind == Kind::Landmark && !vantage
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::super::tests::errors;

    #[test]
    fn landmark_targets_stream_unless_told_or_checked_from_vantage_points() {
        let c = parse(
            r#"
    [[target]]
    name = "streamed"
    kind = "landmark"
    addr = "127.0.0.1:9100"

    [[target]]
    name = "polled"
    kind = "landmark"
    addr = "127.0.0.1:9100"
    stream = false

    [[target]]
    name = "sourced"
    kind = "landmark"
    addr = "127.0.0.1:9100"
    source = ["127.0.0.1"]

    [[target]]
    name = "port"
    kind = "tcp"
    addr = "127.0.0.1:25"
    "#,
        )
        .unwrap();
        let streams: Vec<bool> = c.targets.iter().map(|t| t.stream).collect();
        assert_eq!(streams, [true, false, false, false]);
        // [defaults] may turn it off for all; on, it applies where it can.
        let c = parse(
            r#"
    [defaults]
    stream = false
    [[target]]
    name = "a"
    kind = "landmark"
    addr = "127.0.0.1:9100"
    "#,
        )
        .unwrap();
        assert!(!c.targets[0].stream);
        let c = parse(
            r#"
    [defaults]
    stream = true
    [[target]]
    name = "a"
    kind = "tcp"
    addr = "127.0.0.1:25"
    "#,
        )
        .unwrap();
        assert!(!c.targets[0].stream);
        // Said on the target where it cannot be: an error at the key.
        let e = errors(
            r#"
    [[target]]
    name = "a"
    kind = "tcp"
    addr = "127.0.0.1:25"
    stream = true

    [[target]]
    name = "b"
    kind = "landmark"
    addr = "127.0.0.1:9100"
    vantage = ["local", "http://127.0.0.1:9115"]
    stream = true
    "#,
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("line 6") && e[0].contains("stream = true is for kind = \"landmark\""),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("line 13")
                && e[1].contains("cannot be combined with source or vantage"),
            "{e:?}"
        );
    }
}
