//! The HTTP endpoint's request parsing and routing (`/healthz` and friends).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| health_server::fuzz::http_request(data));
