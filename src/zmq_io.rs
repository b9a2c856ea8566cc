//! The few libzmq calls the driver makes, over borrowed raw sockets, with errors as errno
//! values (never as Rust panics, and never through the `zmq` crate's error enum, which panics
//! on errnos it does not know).

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::os::raw::c_int;

use zmq_sys::zmq_msg_t;

pub(crate) const ZMQ_DONTWAIT: c_int = zmq_sys::ZMQ_DONTWAIT as c_int;
pub(crate) const ZMQ_SNDMORE: c_int = zmq_sys::ZMQ_SNDMORE as c_int;

pub type Errno = c_int;

/// zmq_msg_get property: the source file descriptor (deprecated in libzmq, still served).
const ZMQ_SRCFD: c_int = 2;
/// libzmq's own errno values.
pub(crate) const ETERM: Errno = zmq_sys::errno::ETERM;
pub(crate) const EFSM: Errno = zmq_sys::errno::EFSM;

pub fn errno() -> Errno {
    // SAFETY: zmq_errno only reads the calling thread's errno.
    unsafe { zmq_sys::zmq_errno() }
}

/// A `zmq_msg_t` owned by Rust: initialised on creation, closed on drop.
pub struct Msg(zmq_msg_t);

impl Msg {
    pub fn new() -> Msg {
        let mut raw = MaybeUninit::<zmq_msg_t>::uninit();
        // SAFETY: zmq_msg_init fully initialises the message and cannot fail.
        unsafe {
            zmq_sys::zmq_msg_init(raw.as_mut_ptr());
            Msg(raw.assume_init())
        }
    }

    /// A message holding a copy of `bytes` (for bytes the proxy read itself).
    pub fn from_slice(bytes: &[u8]) -> Msg {
        let mut raw = MaybeUninit::<zmq_msg_t>::uninit();
        // SAFETY: zmq_msg_init_size initialises the message with a buffer of that size, or
        // fails (ENOMEM) leaving nothing to close; its data is then valid for bytes.len()
        // writes.
        unsafe {
            if zmq_sys::zmq_msg_init_size(raw.as_mut_ptr(), bytes.len()) != 0 {
                std::alloc::handle_alloc_error(
                    std::alloc::Layout::array::<u8>(bytes.len()).expect("size"),
                );
            }
            let mut msg = Msg(raw.assume_init());
            let data = zmq_sys::zmq_msg_data(msg.as_mut_ptr()) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
            msg
        }
    }

    /// The descriptor of the TCP connection this message came from, if libzmq knows it.
    pub fn source_fd(&self) -> Option<i32> {
        // SAFETY: the message is initialised; ZMQ_SRCFD is a read-only integer property.
        let fd = unsafe {
            zmq_sys::zmq_msg_get(&self.0 as *const zmq_msg_t as *mut zmq_msg_t, ZMQ_SRCFD)
        };
        (fd >= 0).then_some(fd)
    }

    fn as_mut_ptr(&mut self) -> *mut zmq_msg_t {
        &mut self.0
    }
}

impl Default for Msg {
    fn default() -> Self {
        Msg::new()
    }
}

impl AsRef<[u8]> for Msg {
    fn as_ref(&self) -> &[u8] {
        let ptr = &self.0 as *const zmq_msg_t as *mut zmq_msg_t;
        // SAFETY: the message is initialised; data/size describe its buffer, which lives as
        // long as the message and is not mutated while borrowed.
        unsafe {
            let len = zmq_sys::zmq_msg_size(ptr);
            if len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(zmq_sys::zmq_msg_data(ptr) as *const u8, len)
        }
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        // SAFETY: the message was initialised in `new` and is closed exactly once here.
        unsafe {
            zmq_sys::zmq_msg_close(&mut self.0);
        }
    }
}

/// A socket the caller owns and lends to us: never closed here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SocketRef(*mut c_void);

impl SocketRef {
    /// # Safety
    /// `raw` must be a libzmq socket (or garbage that libzmq's tag check rejects with
    /// ENOTSOCK) that stays open, and is used by no other thread, while this value is used.
    pub unsafe fn new(raw: *mut c_void) -> SocketRef {
        SocketRef(raw)
    }

    pub fn as_ptr(&self) -> *mut c_void {
        self.0
    }

    fn check(rc: c_int) -> Result<c_int, Errno> {
        if rc < 0 {
            Err(errno())
        } else {
            Ok(rc)
        }
    }

    pub fn get_int(&self, option: u32) -> Result<c_int, Errno> {
        let mut value: c_int = 0;
        let mut size = std::mem::size_of::<c_int>();
        // SAFETY: value and size are valid for writes and size is value's size.
        let rc = unsafe {
            zmq_sys::zmq_getsockopt(
                self.0,
                option as c_int,
                &mut value as *mut c_int as *mut c_void,
                &mut size,
            )
        };
        Self::check(rc).map(|_| value)
    }

    /// Whether the socket was ever bound or connected (ZMQ_LAST_ENDPOINT is set).
    pub fn has_endpoint(&self) -> Result<bool, Errno> {
        let mut value = [0u8; 256];
        let mut size = value.len();
        // SAFETY: value and size are valid for writes and size is value's size.
        let rc = unsafe {
            zmq_sys::zmq_getsockopt(
                self.0,
                zmq_sys::ZMQ_LAST_ENDPOINT as c_int,
                value.as_mut_ptr() as *mut c_void,
                &mut size,
            )
        };
        Self::check(rc)?;
        // An empty endpoint is a lone NUL.
        Ok(size > 1)
    }

    pub fn socket_type(&self) -> Result<c_int, Errno> {
        self.get_int(zmq_sys::ZMQ_TYPE)
    }

    pub fn has_more(&self) -> Result<bool, Errno> {
        self.get_int(zmq_sys::ZMQ_RCVMORE).map(|v| v != 0)
    }

    /// Receives one frame into `buf`; returns the frame's full length (may exceed buf).
    pub fn recv_into(&self, buf: &mut [u8], flags: c_int) -> Result<usize, Errno> {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let rc =
            unsafe { zmq_sys::zmq_recv(self.0, buf.as_mut_ptr() as *mut c_void, buf.len(), flags) };
        Self::check(rc).map(|n| n as usize)
    }

    pub fn recv_msg(&self, msg: &mut Msg, flags: c_int) -> Result<usize, Errno> {
        // SAFETY: msg is an initialised message owned by the caller.
        let rc = unsafe { zmq_sys::zmq_msg_recv(msg.as_mut_ptr(), self.0, flags) };
        Self::check(rc).map(|n| n as usize)
    }

    pub fn send_bytes(&self, data: &[u8], flags: c_int) -> Result<(), Errno> {
        // SAFETY: data is valid for reads of data.len() bytes; libzmq copies it.
        let rc =
            unsafe { zmq_sys::zmq_send(self.0, data.as_ptr() as *const c_void, data.len(), flags) };
        Self::check(rc).map(|_| ())
    }

    /// Sends `msg`; on success its content moved into libzmq and `msg` is left empty.
    pub fn send_msg(&self, msg: &mut Msg, flags: c_int) -> Result<(), Errno> {
        // SAFETY: msg is initialised; on failure libzmq leaves it untouched.
        let rc = unsafe { zmq_sys::zmq_msg_send(msg.as_mut_ptr(), self.0, flags) };
        Self::check(rc).map(|_| ())
    }

    /// zmq_connect() to `endpoint` with `id` as the new connection's routing id
    /// (ZMQ_CONNECT_ROUTING_ID, which applies to the next connect only).
    pub fn connect_with_id(&self, id: &[u8], endpoint: &std::ffi::CStr) -> Result<(), Errno> {
        // SAFETY: id is valid for reads of id.len() bytes; libzmq copies it.
        let rc = unsafe {
            zmq_sys::zmq_setsockopt(
                self.0,
                zmq_sys::ZMQ_CONNECT_ROUTING_ID as c_int,
                id.as_ptr() as *const c_void,
                id.len(),
            )
        };
        Self::check(rc)?;
        // SAFETY: endpoint is a NUL-terminated string that outlives the call.
        let rc = unsafe { zmq_sys::zmq_connect(self.0, endpoint.as_ptr()) };
        Self::check(rc).map(|_| ())
    }

    /// The socket's ZMQ_FD: readable while the socket has unprocessed libzmq commands, which is
    /// how a receive that would block becomes possible. It is edge-like: any libzmq call on
    /// the socket (a send too) may process the commands and clear it, so readiness must be
    /// probed with a receive before waiting on it again.
    pub fn signal_fd(&self) -> Result<c_int, Errno> {
        self.get_int(zmq_sys::ZMQ_FD)
    }

    /// Processes the socket's pending commands (what ZMQ_EVENTS does as a side effect), which
    /// clears its ZMQ_FD.
    pub fn process_commands(&self) -> Result<(), Errno> {
        self.get_int(zmq_sys::ZMQ_EVENTS).map(|_| ())
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (None: no limit). Sets each
/// entry's revents. A signal gives EINTR, as zmq_poll would. ppoll rather than poll: a
/// takeover waits on libzmq in steps of tens of microseconds, not milliseconds.
pub fn wait_readable(
    fds: &mut [libc::pollfd],
    timeout: Option<std::time::Duration>,
) -> Result<(), Errno> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: fds is a valid, writable array of pollfd of the length given; ts_ptr is NULL
    // or points at a timespec that outlives the call; no signal mask is changed.
    let rc = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Bytes the peer of TCP socket `fd` has acknowledged since the connection began
/// (TCP_INFO's tcpi_bytes_acked). The STREAM socket writes exactly the bytes it is given, so
/// comparing this with what was handed to libzmq tells whether everything left libzmq's pipe,
/// its write buffer and the kernel, and reached the peer. None when unknown (not Linux, not
/// TCP, or the descriptor is gone).
pub fn tcp_bytes_acked(fd: i32) -> Option<u64> {
    tcp_info(fd).map(|info| info.tcpi_bytes_acked)
}

/// Bytes written to the TCP socket `fd` since it opened: acknowledged by the peer, or in its
/// send queue (SIOCOUTQ). Compared with what was handed to libzmq for the connection, it
/// tells whether libzmq still holds some. None when unknown.
pub fn tcp_bytes_written(fd: i32) -> Option<u64> {
    let acked = tcp_bytes_acked(fd)?;
    let mut queued: c_int = 0;
    // SAFETY: TIOCOUTQ writes one int; a closed or non-TCP descriptor just fails.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
    (rc == 0).then_some(acked + queued.max(0) as u64)
}

/// TCP_INFO of the TCP socket `fd`, when the kernel gives one that includes the byte
/// counters (Linux 4.2 and later).
#[cfg(target_os = "linux")]
pub fn tcp_info(fd: i32) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are valid for writes and len is info's size; a closed or
    // non-TCP descriptor just fails.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        )
    };
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8;
    (rc == 0 && len as usize >= needed).then_some(info)
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_info(_fd: i32) -> Option<()> {
    None
}

/// The remote address of the TCP socket `fd`, if it is one.
pub fn peer_address(fd: i32) -> Option<std::net::SocketAddr> {
    socket_address(fd, libc::getpeername)
}

/// The local address of the TCP socket `fd`, if it is one.
pub fn local_address(fd: i32) -> Option<std::net::SocketAddr> {
    socket_address(fd, libc::getsockname)
}

type NameCall =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn socket_address(fd: i32, call: NameCall) -> Option<std::net::SocketAddr> {
    let mut storage: libc::sockaddr_storage = unsafe_zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage is large enough for any address and len says how large it is; call is
    // getpeername or getsockname, which only write there.
    let rc = unsafe {
        call(
            fd,
            &mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr,
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let a = unsafe { *(&storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some((ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let a = unsafe { *(&storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some((ip, u16::from_be(a.sin6_port)).into())
        }
        _ => None,
    }
}

fn unsafe_zeroed() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Whether the TCP connection behind `peer` is still there: its descriptor still names a
/// connected socket with the same remote and local addresses. A descriptor closed by libzmq, or reused for
/// another connection, answers false. Unknown (no address recorded) counts as alive.
pub fn peer_alive(peer: crate::core::PeerInfo) -> bool {
    match peer.addr {
        None => true,
        Some(addr) => {
            peer_address(peer.fd) == Some(addr)
                && (peer.local.is_none() || local_address(peer.fd) == peer.local)
        }
    }
}

/// Half-closes the TCP connection under a libzmq connection whose bytes have all been
/// acknowledged: the peer reads the rest, sees the end of the stream and closes, and libzmq
/// then reports the disconnect. Returns false (and does nothing) when the descriptor no
/// longer belongs to that peer or has no address to check.
pub fn half_close(peer: crate::core::PeerInfo) -> bool {
    if peer.addr.is_none() || !peer_alive(peer) {
        return false;
    }
    // SAFETY: shutdown on a live socket descriptor has no memory effects; the descriptor
    // stays libzmq's and is not closed here.
    unsafe { libc::shutdown(peer.fd, libc::SHUT_WR) == 0 }
}

/// Shuts down the TCP socket under a libzmq connection that libzmq will not close (its pipe
/// is full), so that libzmq sees EOF and drops the connection itself. The descriptor stays
/// libzmq's: it is never closed here. It is only touched if it still belongs to the same
/// peer, so a descriptor number reused by another connection is left alone.
pub fn force_shutdown(peer: crate::core::PeerInfo) {
    if peer.addr.is_none() || !peer_alive(peer) {
        return;
    }
    // SAFETY: shutdown on a live socket descriptor has no memory effects.
    unsafe {
        libc::shutdown(peer.fd, libc::SHUT_RDWR);
    }
}
