//! Entry points for the cargo-fuzz targets in `fuzz/`: the parsers that take
//! network input, driven without sockets. Hidden from the documentation; not
//! a stable API.

use crate::http;

/// Feeds `data` to the HTTP endpoint's request parsing and routing as if it
/// had arrived on a connection, in the chunks the reader would see. Panics
/// only if an invariant breaks.
pub fn http_request(data: &[u8]) {
    // The reader parses after every chunk it receives: try each prefix that
    // ends on a 1 KiB boundary, then the whole input.
    let ends = (1..=data.len() / 1024)
        .map(|k| k * 1024)
        .chain(std::iter::once(data.len()));
    for end in ends {
        match http::parse_head(&data[..end]) {
            Ok(Some(head)) => {
                if let Ok(route) = http::route(&head) {
                    assert!(
                        !route.healthy.is_empty(),
                        "a route answers 200 for some state"
                    );
                    assert!(route.component.as_deref() != Some(""));
                }
                return;
            }
            Ok(None) => assert!(end < http::MAX_HEAD, "incomplete head over the limit"),
            Err(_) => return,
        }
    }
}
