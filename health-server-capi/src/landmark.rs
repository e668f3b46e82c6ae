//! What an answer says: `hs_landmark`, built with a state and a detail,
//! then a weight, components and fields; and how C text becomes Rust text.

use std::ffi::{c_char, c_int};

use hs::{Landmark, State, Weight};

use crate::status::{guard, Failure, OK};

/// Most bytes of a detail, a field's text value, or any other text read
/// from C; more is cut (on a character boundary).
pub const HS_MAX_TEXT: usize = 4096;
/// Most bytes of a component's name or a field's key.
pub const HS_MAX_NAME: usize = 128;

/// A landmark's state, as the `state` argument of every function takes it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_state {
    /// Serving normally.
    HS_STATE_OK = 0,
    /// Serving, but worse than normal: kept in the pool, or weighed down.
    HS_STATE_DEGRADED = 1,
    /// Going away: finish what is in flight, take nothing new.
    HS_STATE_DRAIN = 2,
    /// Not serving: out of the pool.
    HS_STATE_FAIL = 3,
}

/// The state `n` names.
pub(crate) fn state(n: c_int) -> Result<State, Failure> {
    match n {
        0 => Ok(State::Ok),
        1 => Ok(State::Degraded),
        2 => Ok(State::Drain),
        3 => Ok(State::Fail),
        _ => Err(Failure::invalid(format!(
            "state {n} is not one of HS_STATE_OK (0), HS_STATE_DEGRADED, HS_STATE_DRAIN, HS_STATE_FAIL (3)"
        ))),
    }
}

/// The text at `p`: up to its NUL and at most `max` bytes, invalid UTF-8
/// replaced; NULL is empty.
///
/// # Safety
/// `p` is NULL, or points to memory readable up to a NUL or `max` bytes,
/// whichever comes first.
pub(crate) unsafe fn text(p: *const c_char, max: usize) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller's promise; strnlen reads no further than `max`.
    let len = unsafe { libc::strnlen(p, max) };
    // SAFETY: `len` bytes at `p` are readable (strnlen read them).
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    let s = String::from_utf8_lossy(bytes);
    // A cut may leave half a character, which lossy decoding turned into
    // U+FFFD: the text stays valid either way.
    s.into_owned()
}

/// A name (component, field key): 1 to [`HS_MAX_NAME`] bytes.
///
/// # Safety
/// As [`text`].
unsafe fn name(p: *const c_char, what: &str) -> Result<String, Failure> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: as promised by the caller; strnlen reads at most that far.
    let len = unsafe { libc::strnlen(p, HS_MAX_NAME + 1) };
    if len == 0 || len > HS_MAX_NAME {
        return Err(Failure::invalid(format!(
            "{what} must be 1 to {HS_MAX_NAME} bytes"
        )));
    }
    // SAFETY: as above.
    Ok(unsafe { text(p, HS_MAX_NAME) })
}

/// The weight `n`: 0 to 253; -1 for none.
pub(crate) fn weight(n: c_int) -> Result<Option<Weight>, Failure> {
    if n == -1 {
        return Ok(None);
    }
    u8::try_from(n)
        .ok()
        .and_then(|w| Weight::new(w).ok())
        .map(Some)
        .ok_or_else(|| Failure::invalid(format!("weight {n} is not 0 to 253 (or -1 for none)")))
}

/// An answer being built: a state, a detail, and optionally a weight,
/// components and fields. Made by [`hs_landmark_new`], freed by
/// [`hs_landmark_free`]; answering or publishing copies it, so one
/// landmark may be used many times.
#[derive(Debug)]
pub struct hs_landmark {
    pub(crate) landmark: Landmark,
}

/// The landmark `l` points to.
///
/// # Safety
/// `l` is NULL or a live `hs_landmark`.
pub(crate) unsafe fn landmark_ref<'a>(l: *const hs_landmark) -> Result<&'a Landmark, Failure> {
    // SAFETY: the caller's promise.
    unsafe { l.as_ref() }
        .map(|l| &l.landmark)
        .ok_or_else(|| Failure::null("landmark"))
}

unsafe fn landmark_mut<'a>(l: *mut hs_landmark) -> Result<&'a mut Landmark, Failure> {
    // SAFETY: the caller's promise.
    unsafe { l.as_mut() }
        .map(|l| &mut l.landmark)
        .ok_or_else(|| Failure::null("landmark"))
}

/// Makes a landmark with `state` (an `hs_state`) and `detail` (may be
/// NULL), and stores it in `*out`. Free it with [`hs_landmark_free`].
///
/// # Safety
/// `out` is writable; `detail` is NULL or NUL-terminated (or readable for
/// `HS_MAX_TEXT` bytes).
#[no_mangle]
pub unsafe extern "C" fn hs_landmark_new(
    state: c_int,
    detail: *const c_char,
    out: *mut *mut hs_landmark,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let state = self::state(state)?;
        // SAFETY: the caller's promise.
        let detail = unsafe { text(detail, HS_MAX_TEXT) };
        let l = Box::new(hs_landmark {
            landmark: Landmark::new(state, detail),
        });
        // SAFETY: `out` is writable (checked non-NULL; the caller's promise).
        unsafe { *out = Box::into_raw(l) };
        OK
    })
}

/// Sets the weight HAProxy's agent-check and the probe read: 0 to 253, or
/// -1 for none.
///
/// # Safety
/// `l` is NULL or a live `hs_landmark` no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn hs_landmark_set_weight(l: *mut hs_landmark, weight: c_int) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let l = unsafe { landmark_mut(l) }?;
        l.weight = self::weight(weight)?;
        OK
    })
}

/// Adds (or replaces) the component `name` with its own state and detail
/// (`health-probe --component NAME` checks it alone).
///
/// # Safety
/// `l` is NULL or a live `hs_landmark` no other thread is using; `name`
/// and `detail` as in [`hs_landmark_new`].
#[no_mangle]
pub unsafe extern "C" fn hs_landmark_add_component(
    l: *mut hs_landmark,
    name: *const c_char,
    state: c_int,
    detail: *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let l = unsafe { landmark_mut(l) }?;
        // SAFETY: the caller's promise.
        let name = unsafe { self::name(name, "component name") }?;
        let state = self::state(state)?;
        // SAFETY: the caller's promise.
        let detail = unsafe { text(detail, HS_MAX_TEXT) };
        l.components.insert(name, hs::Component { state, detail });
        OK
    })
}

/// Adds (or replaces) the field `key` with a number.
///
/// # Safety
/// As [`hs_landmark_add_component`].
#[no_mangle]
pub unsafe extern "C" fn hs_landmark_add_field_int(
    l: *mut hs_landmark,
    key: *const c_char,
    value: i64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let l = unsafe { landmark_mut(l) }?;
        // SAFETY: the caller's promise.
        let key = unsafe { name(key, "field key") }?;
        l.fields.insert(key, value.into());
        OK
    })
}

/// Adds (or replaces) the field `key` with a text (NULL: empty).
///
/// # Safety
/// As [`hs_landmark_add_component`].
#[no_mangle]
pub unsafe extern "C" fn hs_landmark_add_field_str(
    l: *mut hs_landmark,
    key: *const c_char,
    value: *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let l = unsafe { landmark_mut(l) }?;
        // SAFETY: the caller's promise.
        let key = unsafe { name(key, "field key") }?;
        // SAFETY: the caller's promise.
        let value = unsafe { text(value, HS_MAX_TEXT) };
        l.fields.insert(key, value.into());
        OK
    })
}

/// Frees a landmark made by [`hs_landmark_new`]. NULL is ignored.
///
/// # Safety
/// `l` is NULL or a live `hs_landmark`, not used again after.
#[no_mangle]
pub unsafe extern "C" fn hs_landmark_free(l: *mut hs_landmark) {
    guard(|| {
        if !l.is_null() {
            // SAFETY: made by Box::into_raw in hs_landmark_new, freed once.
            drop(unsafe { Box::from_raw(l) });
        }
        OK
    });
}
