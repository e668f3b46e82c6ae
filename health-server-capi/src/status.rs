//! Status codes, the calling thread's last error, and the boundary every
//! exported function goes through ([`guard`]).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a function returns: `HS_OK`, or why it failed (negative).
/// [`hs_last_error`] gives the details.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_status {
    /// Done.
    HS_OK = 0,
    /// A pointer that must not be NULL was NULL.
    HS_E_NULL = -1,
    /// An argument is out of range or cannot be read: an address, a state,
    /// a weight, a name.
    HS_E_INVALID = -2,
    /// A listener could not be opened (address in use, no permission).
    HS_E_BIND = -3,
    /// The call does not fit the server's mode: asks in publish mode, or
    /// publishing in ask mode.
    HS_E_MODE = -4,
    /// The system refused a resource: an eventfd, a thread, memory.
    HS_E_SYSTEM = -5,
    /// An internal error was caught at the boundary (debug builds).
    HS_E_PANIC = -6,
}

/// A failed call: its status and what [`hs_last_error`] will say.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: hs_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: hs_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(hs_status::HS_E_NULL, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(hs_status::HS_E_INVALID, message)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message holds no NUL (they come from this crate and from error
    // types' Display); should one, it is cut there.
    let text = message.split('\0').next().unwrap_or_default();
    let c = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs an exported function's body: its `Ok` value is returned as is, a
/// failure becomes its status with the message kept for [`hs_last_error`],
/// and a panic (where panics unwind) becomes `HS_E_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> Result<c_int, Failure>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status as c_int
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(&format!("internal error: {why}"));
            hs_status::HS_E_PANIC as c_int
        }
    }
}

/// `HS_OK`, as the `Ok` of a [`guard`]ed body.
pub(crate) const OK: Result<c_int, Failure> = Ok(hs_status::HS_OK as c_int);

/// Why the last call that failed on this thread failed: a NUL-terminated
/// UTF-8 message, empty if none has failed. It belongs to the library and
/// stays valid until the next call on this thread fails; do not free it.
///
/// Thread-safe: each thread has its own.
#[no_mangle]
pub extern "C" fn hs_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
