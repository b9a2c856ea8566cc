//! zmq_proxy_stream(): the drop-in for zmq_proxy_steerable().

use std::ffi::c_void;
use std::os::raw::c_int;

use super::boundary;
use crate::driver::{check_sockets, Driver};
use crate::options::Options;
use crate::zmq_io::{Errno, SocketRef};

/// Checks the caller's sockets and runs the proxy with `options` until TERMINATE or error.
pub(super) fn run_checked(
    options: &Options,
    frontend: *mut c_void,
    backend: *mut c_void,
    control: *mut c_void,
) -> Result<c_int, Errno> {
    if frontend.is_null() || backend.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: the caller promises live sockets (see the functions' contracts); libzmq
    // rejects non-sockets with ENOTSOCK through its tag check.
    let (f, b, c) = unsafe {
        (
            SocketRef::new(frontend),
            SocketRef::new(backend),
            (!control.is_null()).then(|| SocketRef::new(control)),
        )
    };
    // SAFETY: as for the other sockets: the caller gave a live socket with
    // ZMQ_PROXY_STREAM_EVENTS, or 0 for none.
    let events =
        (options.events != 0).then(|| unsafe { SocketRef::new(options.events as *mut c_void) });
    let sockets = check_sockets(f, b, c, events)?;
    if !options.limits.worker_endpoints.is_empty() && b.has_endpoint()? {
        // Dial-out: connections the caller made would be refused one by one; say so at once.
        return Err(libc::EINVAL);
    }
    let mut limits = options.limits.clone();
    limits.events = events.is_some();
    Driver::new(sockets, limits).run()?;
    Ok(0)
}

/// Relays ZMTP sessions between two ZMQ_STREAM sockets: each client connection on
/// `frontend` is paired with one worker connection on `backend`, and from the client's first
/// handshake command on, their bytes are relayed untouched both ways, so that CURVE (and
/// NULL, PLAIN, GSSAPI) runs end to end between client and worker: this proxy never holds a
/// secret key and never sees plaintext. The proxy answers the ZMTP greeting on each side
/// itself (the greeting is not covered by any mechanism's cryptography) and screens clients
/// before they cost a worker anything. Blocks until TERMINATE arrives on `control` or an
/// error occurs. Same as zmq_proxy_stream_run() on a handle with default options.
///
/// Preconditions (the caller's):
/// - `frontend` and `backend` are two distinct ZMQ_STREAM sockets made by the caller on its
///   own libzmq context and already bound (workers and clients connect to them). In the
///   dial-out topology (zmq_proxy_stream_run() with ZMQ_PROXY_STREAM_WORKER_ENDPOINT) the
///   backend is left unbound and the proxy connects it to the workers itself.
/// - ZMQ_STREAM_NOTIFY is left at its default (1): the proxy learns of connections and
///   disconnections only through it.
/// - ZMQ_SNDHWM, ZMQ_RCVHWM and other socket options are set before zmq_bind(): libzmq
///   applies them only to later binds and connects.
/// - Set a finite ZMQ_LINGER on `frontend` and `backend` (0 or a few seconds): when a peer
///   stops reading, libzmq may hold bytes for it that can never leave, and with the default
///   linger (-1) zmq_ctx_term() would wait for them for ever.
/// - While the call runs no other thread uses the three sockets. The library never closes
///   them; they remain the caller's and usable after the call returns.
///
/// The data path: libzmq accepts, greets and screens connections and pairs them; when a pair
/// forms (both peers are silent then, by protocol) the proxy takes both TCP connections out
/// of libzmq (ZMQ_SRCFD, duplicated and checked, then released by libzmq) and relays between
/// them itself on a relay thread (ZMQ_PROXY_STREAM_TAKEOVER, _THREADS): per-pair flow
/// control through TCP, so a slow peer slows only its partner and no session is closed for
/// being fast; a FIN is passed on after the last byte. A pair whose connections cannot be
/// taken (no descriptor, not TCP) is relayed through the STREAM sockets instead. A peer that
/// sends while its connection is being taken over (which no ZMTP peer does) has its pair
/// closed (STREAMSTATS TAKEOVER_VIOLATIONS), never relayed with a hole.
///
/// `control` is NULL or a ZMQ_PAIR, ZMQ_REP, ZMQ_SUB or ZMQ_PULL socket receiving
/// zmq_proxy_steerable's commands, exact strings in one frame:
/// - "PAUSE": stop reading and forwarding, on the STREAM sockets and on taken-over pairs
///   (nothing is lost: libzmq and TCP hold the bytes; the proxy sleeps, it does not spin).
///   "RESUME": continue.
/// - "TERMINATE": return 0. Taken-over connections are the proxy's and are closed; those
///   still in libzmq stay the caller's sockets'.
/// - "STATISTICS": reply 8 frames, each a native-endian uint64: frontend messages in, bytes
///   in, messages out, bytes out, then the same four for the backend. A message is one data
///   chunk as one ZMQ_STREAM receive or send carries it, or, for a taken-over pair, one
///   read(2) or write(2) on its connection; bytes are the payload (routing ids not
///   counted); greeting bytes the proxy exchanges itself are included. The reply counts
///   every read and write the relay threads made before the command arrived.
/// - "STREAMSTATS": reply one frame of native-endian uint64 counters indexed by the
///   ZMQ_PROXY_STREAM_STAT_* constants; its size tells how many there are.
///
/// On ZMQ_REP every other command gets an empty reply (REP must answer); on ZMQ_SUB and
/// ZMQ_PULL nothing is ever answered. Unknown commands are ignored.
///
/// Rules for worker authors: workers connect to the backend (each connection is one worker
/// slot; connect several times for several slots) with a ZMQ_ROUTER socket (a DEALER can
/// deliver a late reply to the next client on the same connection), ZMQ_IMMEDIATE=1, as
/// the mechanism's server (ZMQ_CURVE_SERVER=1 etc.). The proxy closes a worker connection
/// when its client leaves; libzmq reconnects it by itself (ZMQ_RECONNECT_IVL). After a
/// protocol error that screening cannot catch (a client using the wrong server key), libzmq
/// never reconnects that connection: watch the socket monitor for
/// ZMQ_EVENT_HANDSHAKE_FAILED_* and call zmq_connect() again. Idle worker connections are
/// recycled before libzmq's ZMQ_HANDSHAKE_IVL (30 s) expires (ZMQ_PROXY_STREAM_WORKER_MAX_AGE).
/// Through the proxy, a worker's ZAP handler sees the proxy's address, not the client's:
/// address policy belongs to the proxy (ZMQ_PROXY_STREAM_ALLOW, _DENY, _MAX_PER_ADDRESS,
/// _FAIL_BAN). In dial-out, workers instead bind a ZMQ_ROUTER (the mechanism's server) at
/// the endpoints the proxy dials; nothing else is asked of them: a client with a wrong key
/// costs them one connection, which the bound socket simply drops.
///
/// Returns 0 after TERMINATE. Returns -1 and sets errno: EFAULT when `frontend` or `backend`
/// is NULL; EINVAL when they are not two distinct ZMQ_STREAM sockets, or `control` is of
/// another type or is one of them; ENOTSOCK when a pointer is not a socket; ETERM when the
/// context was terminated; EINTR when a signal interrupted the wait; ENOTRECOVERABLE on an
/// internal error (a bug: please report it).
///
/// Thread safety: several proxies may run at once, each on its own thread with its own
/// sockets.
///
/// # Safety
/// Non-NULL arguments must be libzmq sockets that stay open for the whole call.
#[no_mangle]
pub unsafe extern "C" fn zmq_proxy_stream(
    frontend: *mut c_void,
    backend: *mut c_void,
    control: *mut c_void,
) -> c_int {
    boundary(-1, || {
        run_checked(&Options::default(), frontend, backend, control)
    })
}
