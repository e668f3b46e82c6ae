//! Who is connected to the service, in what TCP state, over time
//! (opt-in, with [`crate::Builder::connections`]).
//!
//! - `collect`: one reading of the kernel's sockets for the service's
//!   ports, through netlink sock_diag.
//! - `history`: snapshots stamped with their time in a bounded ring, and
//!   the queries over them (a past moment, a time range, filters,
//!   aggregation by state, client, subnet or port, top clients).
//! - [`Config`] and the recorder: what is collected and kept, the task
//!   taking a snapshot every period, and the thresholds that flag the
//!   landmark's `connections` component (and optionally degrade it).
//! - `query`: answering the protocol's `connections` request
//!   (docs/PROTOCOL.md section 5.4) within the frame limit.
//! - `reports`: one report per source at a time, one computed at once,
//!   identical requests sharing one computation.

mod collect;
// The snapshot history and one reading of the kernel are the recorder's
// insides; public (hidden) for the benchmark and the tests that measure
// and check them directly.
#[doc(hidden)]
pub mod history;
pub(crate) mod query;
mod recorder;
pub(crate) mod reports;

#[doc(hidden)]
pub use collect::{collect, CollectError, Collected, Connection, TcpState, READ_TIMEOUT};
pub(crate) use recorder::Recorder;
pub use recorder::{Config, COMPONENT};
