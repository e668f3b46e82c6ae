//! The two Prometheus text formats a scrape may ask for: which one its
//! `Accept` header names, and a registry encoded in it. Public so that
//! every exporter of the workspace (the endpoint's `/metrics`, the
//! watcher's `/metrics` and `/probe`) negotiates alike.

use prometheus_client::registry::Registry;

/// The `Content-Type` of an OpenMetrics exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes `registry` as OpenMetrics (`openmetrics`) or the Prometheus text
/// format 0.0.4; returns the body and its `Content-Type`.
pub fn expose(registry: &Registry, openmetrics: bool) -> (String, &'static str) {
    let mut body = String::new();
    let encoded = if openmetrics {
        prometheus_client::encoding::text::encode(&mut body, registry).map(|()| OPENMETRICS)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)
            .map(|()| prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
    };
    match encoded {
        Ok(content_type) => (body, content_type),
        // Writing into a String cannot fail; say so rather than serve half.
        Err(_) => (
            String::new(),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ),
    }
}

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.trim().starts_with("application/openmetrics-text"))
}
