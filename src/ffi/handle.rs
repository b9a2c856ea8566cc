//! The tuning handle: zmq_proxy_stream_new/setopt/getopt/run/destroy, in libzmq's idiom.

use std::ffi::c_void;
use std::os::raw::c_int;

use super::{boundary, proxy::run_checked};
use crate::options::Options;

/// A proxy's configuration. Opaque: made by zmq_proxy_stream_new(), released by
/// zmq_proxy_stream_destroy().
#[allow(non_camel_case_types)] // the C name, as libzmq spells its types
pub struct zmq_proxy_stream_t {
    options: Options,
}

/// Makes a handle with default options. Returns NULL and sets errno (ENOMEM) on failure.
/// A handle may be used by one thread at a time; it may run any number of proxies one
/// after the other, each with the options set when its run started.
#[no_mangle]
pub extern "C" fn zmq_proxy_stream_new() -> *mut zmq_proxy_stream_t {
    boundary(std::ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(zmq_proxy_stream_t {
            options: Options::default(),
        })))
    })
}

/// Sets one ZMQ_PROXY_STREAM_* option, like zmq_setsockopt(): `value` points to an `int`
/// (size sizeof(int)), an `int64_t` (ZMQ_PROXY_STREAM_PAIR_BUFFER, size 8), a `void *`
/// socket (ZMQ_PROXY_STREAM_EVENTS, size sizeof(void *)) or the characters of a string
/// (size its length; a trailing NUL is allowed). Returns 0, or -1
/// with errno EFAULT (NULL handle, or NULL value with non-zero size) or EINVAL (unknown
/// option, wrong size, value out of range); a refused call changes nothing.
///
/// # Safety
/// `proxy` is NULL or a live handle; `value` points to `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn zmq_proxy_stream_setopt(
    proxy: *mut zmq_proxy_stream_t,
    option: c_int,
    value: *const c_void,
    size: usize,
) -> c_int {
    boundary(-1, || {
        // SAFETY: the caller passes NULL or a handle from zmq_proxy_stream_new.
        let proxy = unsafe { proxy.as_mut() }.ok_or(libc::EFAULT)?;
        let value: &[u8] = if size == 0 {
            &[]
        } else if value.is_null() {
            return Err(libc::EFAULT);
        } else {
            // SAFETY: the caller promises `size` readable bytes at `value`.
            unsafe { std::slice::from_raw_parts(value as *const u8, size) }
        };
        proxy.options.set(option, value)?;
        Ok(0)
    })
}

/// Reads one ZMQ_PROXY_STREAM_* option, like zmq_getsockopt(): `*size` says how many bytes
/// `value` can take and is set to how many were written (strings include their NUL).
/// Returns 0, or -1 with errno EFAULT (a NULL pointer) or EINVAL (unknown option, buffer
/// too small).
///
/// # Safety
/// `proxy` is NULL or a live handle; `value` points to `*size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn zmq_proxy_stream_getopt(
    proxy: *mut zmq_proxy_stream_t,
    option: c_int,
    value: *mut c_void,
    size: *mut usize,
) -> c_int {
    boundary(-1, || {
        // SAFETY: the caller passes NULL or a handle from zmq_proxy_stream_new.
        let proxy = unsafe { proxy.as_ref() }.ok_or(libc::EFAULT)?;
        // SAFETY: the caller passes NULL or a valid size_t.
        let size = unsafe { size.as_mut() }.ok_or(libc::EFAULT)?;
        if value.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: the caller promises `*size` writable bytes at `value`.
        let out = unsafe { std::slice::from_raw_parts_mut(value as *mut u8, *size) };
        *size = proxy.options.get(option, out)?;
        Ok(0)
    })
}

/// Runs a proxy with the handle's options: everything zmq_proxy_stream() says holds, and
/// also -1 with errno EFAULT for a NULL handle; EINVAL when a ZMQ_PROXY_STREAM_EVENTS
/// socket is not ZMQ_PUB, ZMQ_PUSH or ZMQ_PAIR (or is one of the other sockets), or when
/// ZMQ_PROXY_STREAM_WORKER_ENDPOINT is set and the backend was bound or connected by the
/// caller; ENOTSOCK when the events socket is not a socket.
///
/// # Safety
/// `proxy` is NULL or a live handle; the sockets as for zmq_proxy_stream().
#[no_mangle]
pub unsafe extern "C" fn zmq_proxy_stream_run(
    proxy: *mut zmq_proxy_stream_t,
    frontend: *mut c_void,
    backend: *mut c_void,
    control: *mut c_void,
) -> c_int {
    boundary(-1, || {
        // SAFETY: the caller passes NULL or a handle from zmq_proxy_stream_new.
        let proxy = unsafe { proxy.as_ref() }.ok_or(libc::EFAULT)?;
        run_checked(&proxy.options, frontend, backend, control)
    })
}

/// Releases the handle `*proxy_p` and sets `*proxy_p` to NULL. NULL and `*proxy_p == NULL`
/// are accepted and do nothing. Must not be called while a run on the handle is going on.
///
/// # Safety
/// `proxy_p` is NULL or points to NULL or to a live handle.
#[no_mangle]
pub unsafe extern "C" fn zmq_proxy_stream_destroy(proxy_p: *mut *mut zmq_proxy_stream_t) {
    boundary((), || {
        // SAFETY: the caller passes NULL or a valid pointer to a handle pointer.
        let Some(slot) = (unsafe { proxy_p.as_mut() }) else {
            return Ok(());
        };
        if !slot.is_null() {
            // SAFETY: a non-NULL handle came from Box::into_raw in zmq_proxy_stream_new and
            // is released exactly once, as the slot is cleared.
            drop(unsafe { Box::from_raw(*slot) });
            *slot = std::ptr::null_mut();
        }
        Ok(())
    })
}

/// Writes this library's version into the non-NULL arguments.
///
/// # Safety
/// Each argument is NULL or points to a writable int.
#[no_mangle]
pub unsafe extern "C" fn zmq_proxy_stream_version(
    major: *mut c_int,
    minor: *mut c_int,
    patch: *mut c_int,
) {
    use super::{
        ZMQ_PROXY_STREAM_VERSION_MAJOR, ZMQ_PROXY_STREAM_VERSION_MINOR,
        ZMQ_PROXY_STREAM_VERSION_PATCH,
    };
    for (p, v) in [
        (major, ZMQ_PROXY_STREAM_VERSION_MAJOR),
        (minor, ZMQ_PROXY_STREAM_VERSION_MINOR),
        (patch, ZMQ_PROXY_STREAM_VERSION_PATCH),
    ] {
        // SAFETY: the caller passes NULL or a writable int.
        if let Some(p) = unsafe { p.as_mut() } {
            *p = v;
        }
    }
}
