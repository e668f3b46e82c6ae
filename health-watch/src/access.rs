//! Who may use the watcher's HTTP listener (`http_allow`, `http_user`):
//! clients outside the allowed networks are closed at accept, with no
//! reply (as the health endpoint's allow-list does); with basic auth, a
//! request without the right user and password gets 401.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// The `user:password` every request must give.
#[derive(Debug)]
pub(crate) struct Credentials(Vec<u8>);

impl Credentials {
    pub(crate) fn new(user: &str, password: &str) -> Arc<Credentials> {
        Arc::new(Credentials(format!("{user}:{password}").into_bytes()))
    }
}

/// Compares in time that depends on the lengths only: by hand, as no
/// crate here offers it and it is four lines.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Passes a request with the right basic-auth credentials on; answers
/// any other 401.
pub(crate) async fn basic_auth(
    State(expected): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 7617, RFC 9110 11.1).
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, credentials)| credentials)
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        });
    if given.is_some_and(|g| same(&g, &expected.0)) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"health-probe watch\", charset=\"UTF-8\"",
        )],
        "authentication required\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_compare_whole() {
        assert!(same(b"a:b", b"a:b") && !same(b"a:b", b"a:c") && !same(b"a", b"a:"));
    }
}
