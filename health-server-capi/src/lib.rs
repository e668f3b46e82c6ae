//! The landmark health endpoint for C and C++ services: `health_server.h`.
//!
//! A service written around an epoll, libevent or libuv loop embeds the
//! same endpoint as a Rust service does (`health-server`): a listener that,
//! on each check, asks the service's main loop for its landmark and waits
//! a bounded time for the answer. Here the ask arrives through a file
//! descriptor: [`hs_server_fd`] is an eventfd that becomes readable when an
//! ask is waiting, so the loop registers it once, takes the ask with
//! [`hs_server_next_ask`] and answers it with [`hs_answer`] or
//! [`hs_answer_landmark`]. A loop that would rather push its state sets
//! `publish` and calls [`hs_publish`].
//!
//! The rules every function keeps (docs/C.md gives them with examples):
//!
//! - **Errors** are return codes: `HS_OK` (0), or a negative `hs_status`;
//!   [`hs_last_error`] then says why, for the calling thread.
//! - **No panic crosses the boundary.** Debug builds catch one and return
//!   `HS_E_PANIC`; release builds of this workspace abort instead
//!   (`panic = "abort"`): never unwinding into C.
//! - **Ownership**: what `hs_*_new` makes, the matching `hs_*_free`
//!   frees; an `hs_ask` is freed by whichever of [`hs_answer`],
//!   [`hs_answer_landmark`] or [`hs_ask_drop`] is given it, whatever that
//!   returns; strings passed in are copied, never kept; the string
//!   [`hs_last_error`] returns belongs to the library.
//! - **Text** is read up to its NUL, and at most `HS_MAX_TEXT` bytes of
//!   it (`HS_MAX_NAME` for names); invalid UTF-8 becomes U+FFFD. A NULL
//!   detail is an empty one.
//! - **Threads**: every function may be called from any thread; one
//!   `hs_server` may be used from several at once, except
//!   [`hs_server_free`], which must be the last call on it.
//!
//! The modules: `status` (codes, the last error, the boundary), `landmark`
//! (what an answer says) and `server` (settings, the endpoint, asks,
//! publishing, drain).

#![allow(non_camel_case_types)]

mod landmark;
mod server;
mod status;

pub use landmark::{
    hs_landmark, hs_landmark_add_component, hs_landmark_add_field_int, hs_landmark_add_field_str,
    hs_landmark_free, hs_landmark_new, hs_landmark_set_weight, hs_state, HS_MAX_NAME, HS_MAX_TEXT,
};
pub use server::{
    hs_answer, hs_answer_landmark, hs_ask, hs_ask_drop, hs_publish, hs_publish_touch, hs_server,
    hs_server_drain, hs_server_fd, hs_server_free, hs_server_new, hs_server_next_ask,
    hs_server_port, hs_server_resume, hs_settings, hs_settings_init,
};
pub use status::{hs_last_error, hs_status};

#[cfg(test)]
mod tests;
