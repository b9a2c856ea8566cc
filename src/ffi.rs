//! The C surface. It only converts: null checks, socket checks, the panic boundary and
//! errno. Everything else lives in the driver and the core.

use std::ffi::c_void;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::core::Limits;
use crate::driver::{check_sockets, Driver};
use crate::zmq_io::{Errno, SocketRef};

fn set_errno(value: Errno) {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe {
        *libc::__errno_location() = value;
    }
}

/// Runs `f` with panics caught: Ok gives 0, Err(errno) and panics give -1 with errno set
/// (ENOTRECOVERABLE for a panic, which is a bug in this library).
fn boundary(f: impl FnOnce() -> Result<(), Errno>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            set_errno(e);
            -1
        }
        Err(_) => {
            set_errno(libc::ENOTRECOVERABLE);
            -1
        }
    }
}

/// Relays ZMTP streams between the connections of two ZMQ_STREAM sockets, pairing each
/// client connection on `frontend` with one worker connection on `backend`, so that CURVE
/// (and NULL, PLAIN, GSSAPI) runs end to end between client and worker. Blocks until a
/// TERMINATE command arrives on `control` or an error occurs.
///
/// `frontend` and `backend` are distinct ZMQ_STREAM sockets made by the caller on its own
/// context, bound (or connected) before the call, with ZMQ_STREAM_NOTIFY left at its default
/// (1) and ZMQ_SNDHWM/ZMQ_RCVHWM set, if at all, before their bind or connect. Workers connect
/// to `backend`: each connection is one worker slot. `control` is NULL or a ZMQ_PAIR, ZMQ_REP,
/// ZMQ_SUB or ZMQ_PULL socket that receives zmq_proxy_steerable's commands:
/// "PAUSE", "RESUME", "TERMINATE" and "STATISTICS" (exact strings, one frame). STATISTICS is
/// answered (except on SUB/PULL) with 8 frames, each a native-endian uint64: frontend
/// messages in, bytes in, messages out, bytes out, then the same for the backend; a message
/// is one relayed data chunk and bytes are its payload. A REP control socket gets an empty
/// reply to every other command; unknown commands are ignored.
///
/// The library never closes the caller's sockets; while the call runs, no other thread may
/// use them. Several proxies may run at once, each on its own thread with its own sockets.
///
/// Returns 0 after TERMINATE. Returns -1 and sets errno: EFAULT when `frontend` or `backend`
/// is NULL; EINVAL when they are not distinct ZMQ_STREAM sockets, or `control` is of another
/// type or is one of them; ENOTSOCK when a pointer is not a socket; ETERM when the context
/// was terminated; EINTR when a signal interrupted the wait; ENOTRECOVERABLE on an internal
/// error (a bug: please report it).
///
/// # Safety
/// Non-NULL arguments must be libzmq sockets that stay open for the whole call.
#[no_mangle]
pub unsafe extern "C" fn zmq_proxy_stream(
    frontend: *mut c_void,
    backend: *mut c_void,
    control: *mut c_void,
) -> c_int {
    boundary(|| {
        if frontend.is_null() || backend.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: the caller promises live sockets (see the function's contract); libzmq
        // rejects non-sockets with ENOTSOCK through its tag check.
        let (f, b, c) = unsafe {
            (
                SocketRef::new(frontend),
                SocketRef::new(backend),
                (!control.is_null()).then(|| SocketRef::new(control)),
            )
        };
        let sockets = check_sockets(f, b, c)?;
        Driver::new(sockets, Limits::default()).run().map(|_| ())
    })
}
