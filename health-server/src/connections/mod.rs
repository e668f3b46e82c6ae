//! Who is connected to the service, in what TCP state, over time
//! (opt-in).
//!
//! - [`collect`](collect()): one reading of the kernel's sockets for the
//!   service's ports, through netlink sock_diag.
//! - [`history`]: snapshots stamped with their time in a bounded ring, and
//!   the queries over them (a past moment, a time range, filters,
//!   aggregation by state, client, subnet or port, top clients).

mod collect;
pub mod history;

pub use collect::{collect, CollectError, Collected, Connection, TcpState, READ_TIMEOUT};
