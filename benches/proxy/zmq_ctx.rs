//! libzmq contexts with options the zmq crate does not expose, and zmq error helpers.

use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::Arc;

/// A libzmq context made with zmq-sys, for the options zmq 0.9.2 cannot set (thread name
/// prefix, socket limit). Its sockets do not keep it alive: close them before dropping it.
pub(crate) struct RawCtx(*mut c_void);

// SAFETY: libzmq contexts are thread-safe.
unsafe impl Send for RawCtx {}
// SAFETY: as above.
unsafe impl Sync for RawCtx {}

impl RawCtx {
    pub(crate) fn new(
        thread_name_prefix: Option<i32>,
        max_sockets: Option<i32>,
    ) -> Result<Arc<RawCtx>, String> {
        // SAFETY: plain constructor.
        let raw = unsafe { zmq_sys::zmq_ctx_new() };
        if raw.is_null() {
            return Err(format!("zmq_ctx_new: {}", std::io::Error::last_os_error()));
        }
        let ctx = RawCtx(raw);
        let options = [
            (zmq_sys::ZMQ_THREAD_NAME_PREFIX, thread_name_prefix),
            (zmq_sys::ZMQ_MAX_SOCKETS, max_sockets),
        ];
        for (option, value) in options {
            if let Some(value) = value {
                // SAFETY: live context, integer option.
                if unsafe { zmq_sys::zmq_ctx_set(ctx.0, option as c_int, value) } != 0 {
                    return Err(format!(
                        "zmq_ctx_set({option}): {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
        }
        Ok(Arc::new(ctx))
    }

    pub(crate) fn socket(&self, kind: u32) -> Result<zmq::Socket, String> {
        // SAFETY: live context.
        let raw = unsafe { zmq_sys::zmq_socket(self.0, kind as c_int) };
        if raw.is_null() {
            return Err(format!("zmq_socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: a new socket that nothing else owns; the Socket closes it on drop.
        Ok(unsafe { zmq::Socket::from_raw(raw) })
    }
}

impl Drop for RawCtx {
    fn drop(&mut self) {
        loop {
            // SAFETY: live context; all its sockets are closed by now.
            let rc = unsafe { zmq_sys::zmq_ctx_term(self.0) };
            if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return;
            }
        }
    }
}

pub(crate) fn zerr(what: &str) -> impl Fn(zmq::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

pub(crate) fn endpoint_of(socket: &zmq::Socket) -> Result<String, String> {
    socket
        .get_last_endpoint()
        .map_err(zerr("last endpoint"))?
        .map_err(|_| "endpoint is not UTF-8".to_string())
}
