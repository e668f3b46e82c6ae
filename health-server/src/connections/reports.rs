//! Computing connection reports without letting their askers take the
//! service's CPU (docs/PROTOCOL.md §8.5): one report at a time per source
//! (an IPv4 address or IPv6 /64; a second one while the first is computed
//! is answered `busy`), [`MAX_COMPUTING`] computed at once on the blocking
//! pool, and concurrent identical requests sharing one computation.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use health_proto::{ConnectionsRequest, ErrorCode, ErrorReply, Response};
use tokio::sync::{OnceCell, Semaphore};

use super::{query, Recorder};
use crate::admission::Source;

/// Reports computed at once. Each is a pass over the snapshots it asks
/// for, up to the whole history for a range: one at a time keeps their
/// cost within one core, however many ask.
pub(crate) const MAX_COMPUTING: usize = 1;

/// One computation, shared by the requests that ask the same while it runs.
type Shared = Arc<OnceCell<Response>>;

/// The reports being computed and who asked.
pub(crate) struct Reports {
    computing: Semaphore,
    in_flight: Mutex<HashMap<String, Shared>>,
    asking: Mutex<HashSet<Source>>,
}

impl Reports {
    pub(crate) fn new() -> Reports {
        Reports {
            computing: Semaphore::new(MAX_COMPUTING),
            in_flight: Mutex::new(HashMap::new()),
            asking: Mutex::new(HashSet::new()),
        }
    }

    /// The response to `request` from `peer`.
    pub(crate) async fn answer(
        &self,
        peer: IpAddr,
        recorder: &Arc<Recorder>,
        request: ConnectionsRequest,
        max_payload: usize,
    ) -> Response {
        let source = Source::of(peer);
        if !lock(&self.asking).insert(source) {
            return Response::Error(ErrorReply::new(
                ErrorCode::Busy,
                "a connection report for this source is already being computed; one at a time",
            ));
        }
        let _asking = Asking {
            reports: self,
            source,
        };
        // The request's canonical JSON names the computation: identical
        // requests (same members, same values) share one.
        let key = serde_json::to_string(&request).unwrap_or_default();
        let shared = Arc::clone(lock(&self.in_flight).entry(key.clone()).or_default());
        let response = shared
            .get_or_init(|| async {
                let Ok(_permit) = self.computing.acquire().await else {
                    return Response::Error(ErrorReply::new(ErrorCode::Busy, "shutting down"));
                };
                let recorder = Arc::clone(recorder);
                let computed = tokio::task::spawn_blocking(move || {
                    query::answer(&recorder, &request, max_payload)
                })
                .await;
                match computed {
                    Ok(Ok(report)) => Response::ConnectionReport(report),
                    Ok(Err(e)) => Response::Error(e),
                    Err(e) => Response::Error(ErrorReply::new(
                        ErrorCode::Busy,
                        format!("connection report failed: {e}"),
                    )),
                }
            })
            .await
            .clone();
        // Done: the next identical request computes afresh (the history
        // moves on).
        let mut in_flight = lock(&self.in_flight);
        if in_flight.get(&key).is_some_and(|s| Arc::ptr_eq(s, &shared)) {
            in_flight.remove(&key);
        }
        response
    }
}

/// A source's report in progress; dropping it lets the source ask again.
struct Asking<'a> {
    reports: &'a Reports,
    source: Source,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        lock(&self.reports.asking).remove(&self.source);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
