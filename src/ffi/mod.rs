//! The C surface (`include/zmq_proxy_stream.h`). It only converts: null checks, socket
//! checks, the panic boundary and errno. Everything else lives in the driver and the core.

mod handle;
mod proxy;

pub use handle::*;
pub use proxy::*;

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::zmq_io::Errno;

/// This library's version. Also returned by zmq_proxy_stream_version().
pub const ZMQ_PROXY_STREAM_VERSION_MAJOR: c_int = 0;
pub const ZMQ_PROXY_STREAM_VERSION_MINOR: c_int = 1;
pub const ZMQ_PROXY_STREAM_VERSION_PATCH: c_int = 0;

fn set_errno(value: Errno) {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe {
        *libc::__errno_location() = value;
    }
}

/// Runs `f` with panics caught: Ok gives its value, Err(errno) and panics give `failed`
/// with errno set (ENOTRECOVERABLE for a panic, which is a bug in this library).
fn boundary<T>(failed: T, f: impl FnOnce() -> Result<T, Errno>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e);
            failed
        }
        Err(_) => {
            set_errno(libc::ENOTRECOVERABLE);
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_constants_match_the_package() {
        assert_eq!(
            super::ZMQ_PROXY_STREAM_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            super::ZMQ_PROXY_STREAM_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            super::ZMQ_PROXY_STREAM_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
    }
}
