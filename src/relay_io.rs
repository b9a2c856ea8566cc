//! Every system call of the relay path: epoll, eventfd, read, write and shutdown on taken-over
//! connections, and taking a connection's descriptor out of libzmq. Errors are errno
//! values; EINTR is retried here, in one place, except where the caller must see it.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::relay::IoOutcome;
use crate::zmq_io::{local_address, peer_address, Errno};

fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Runs `f` again while it fails with EINTR (a signal arrived mid-call).
fn retry_if_interrupted(mut f: impl FnMut() -> isize) -> Result<usize, Errno> {
    loop {
        let rc = f();
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

fn outcome(r: Result<usize, Errno>) -> IoOutcome {
    match r {
        Ok(n) => IoOutcome::Done(n),
        Err(e) if e == libc::EAGAIN || e == libc::EWOULDBLOCK => IoOutcome::WouldBlock,
        Err(e) => IoOutcome::Failed(e),
    }
}

/// read(2) from a taken-over connection.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> IoOutcome {
    // SAFETY: buf is valid for writes of buf.len() bytes; fd is an open descriptor we own.
    outcome(retry_if_interrupted(|| unsafe {
        libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
    }))
}

/// Writes to a taken-over connection. send(2) with MSG_NOSIGNAL rather than write(2): a
/// peer that went away gives EPIPE here, not a SIGPIPE that would kill the caller's process.
pub fn write(fd: &OwnedFd, buf: &[u8]) -> IoOutcome {
    // SAFETY: buf is valid for reads of buf.len() bytes; fd is an open descriptor we own.
    outcome(retry_if_interrupted(|| unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    }))
}

/// shutdown(SHUT_WR): the peer reads what was written, then the end of the stream.
pub fn shutdown_write(fd: &OwnedFd) -> IoOutcome {
    // SAFETY: shutdown has no memory effects; fd is an open descriptor we own.
    outcome(retry_if_interrupted(|| unsafe {
        libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) as isize
    }))
}

/// An epoll set. Taken-over connections are registered edge-triggered for reading, writing
/// and the peer's FIN (EPOLLRDHUP); descriptors of others (libzmq's ZMQ_FD, a waker) are
/// registered level-triggered for reading and never closed here.
pub struct Epoll {
    fd: OwnedFd,
}

/// What epoll said about one registration.
#[derive(Clone, Copy, Debug)]
pub struct Readiness {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// The peer's FIN, a reset or an error: read until the read says what it is.
    pub hung_up: bool,
}

const CONN_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

impl Epoll {
    pub fn new() -> Result<Epoll, Errno> {
        // SAFETY: epoll_create1 has no memory effects.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> Result<(), Errno> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: ev is a valid epoll_event; the kernel only reads it.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    /// Registers a taken-over connection (edge-triggered).
    pub fn add_connection(&self, fd: &OwnedFd, token: u64) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), CONN_EVENTS, token)
    }

    /// Registers a descriptor someone else owns, level-triggered, for reading.
    pub fn add_borrowed(&self, fd: RawFd, token: u64) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
    }

    /// The epoll set's own descriptor: readable while a registration is ready, so another
    /// wait (poll) can include the whole set.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Deregisters a connection before it is closed.
    pub fn remove(&self, fd: &OwnedFd) {
        // Fails only if it was not registered, which changes nothing.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0);
    }

    /// Waits up to `timeout_ms` (-1: no limit) and fills `events`. EINTR is returned to the
    /// caller, which decides whether a signal ends its loop.
    pub fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout_ms: i64,
        out: &mut Vec<Readiness>,
    ) -> Result<(), Errno> {
        let timeout = timeout_ms.clamp(-1, libc::c_int::MAX as i64) as libc::c_int;
        // SAFETY: events is valid for writes of events.len() entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                timeout,
            )
        };
        if n < 0 {
            return Err(errno());
        }
        out.clear();
        for ev in &events[..n as usize] {
            let bits = ev.events;
            let hung_up = bits & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
            out.push(Readiness {
                token: ev.u64,
                readable: bits & libc::EPOLLIN as u32 != 0,
                writable: bits & libc::EPOLLOUT as u32 != 0,
                hung_up,
            });
        }
        Ok(())
    }
}

/// Wakes a thread blocked in epoll or poll from another thread (an eventfd).
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> Result<Waker, Errno> {
        // SAFETY: eventfd has no memory effects.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: one is valid for reads of 8 bytes. A full counter (EAGAIN) is still a
        // pending wake-up, so the result does not matter.
        let _ = retry_if_interrupted(|| unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8)
        });
    }

    /// Clears pending wake-ups.
    pub fn reset(&self) {
        let mut n: u64 = 0;
        // SAFETY: n is valid for writes of 8 bytes; EAGAIN means none was pending.
        let _ = retry_if_interrupted(|| unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8)
        });
    }
}

/// Duplicates libzmq's descriptor `fd` of a connection recorded as `peer` (remote) and
/// `local`, and checks that the duplicate names that very connection: descriptor numbers
/// are reused at once, so a number alone proves nothing. Ok(None) when it is not that
/// connection, Err when the duplicate could not be made (EMFILE: no descriptor left).
pub fn take_connection(
    fd: RawFd,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Option<OwnedFd>, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC only reads fd; a closed fd fails with EBADF.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(errno());
    }
    // SAFETY: dup is a new descriptor that nothing else owns.
    let dup = unsafe { OwnedFd::from_raw_fd(dup) };
    let same = peer_address(dup.as_raw_fd()) == Some(peer)
        && local_address(dup.as_raw_fd()) == Some(local);
    if !same {
        return Ok(None);
    }
    // libzmq's sockets are non-blocking already (the flag lives in the shared open file);
    // set it anyway, so the relay never blocks whatever libzmq did.
    // SAFETY: fcntl on a descriptor we own, with no memory effects.
    let ok = unsafe {
        let flags = libc::fcntl(dup.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(dup.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    Ok(ok.then_some(dup))
}

/// Bytes of the connection that have been read from its kernel receive queue, by anyone,
/// since it opened: what the kernel received minus what is still queued. Compared with what
/// libzmq handed the proxy, it tells whether libzmq read bytes it then dropped. None when the
/// kernel does not say (not Linux, not TCP).
pub fn bytes_consumed(fd: &OwnedFd) -> Option<u64> {
    let queued = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; fd is an open descriptor we own.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
        (rc == 0).then_some(n as u64)
    };
    for _ in 0..8 {
        // Bytes may arrive meanwhile: the queue measured on both sides of the total must agree.
        let before = queued()?;
        let info = crate::zmq_io::tcp_info(fd.as_raw_fd())?;
        if queued()? == before {
            // The peer's FIN takes a sequence number: tcpi_bytes_received counts it as one
            // byte and FIONREAD does not. Without this, a peer that closed during the takeover
            // (a worker killed then) looked like one that had sent a byte libzmq dropped.
            // These states say for sure that the FIN arrived (CLOSE does not: a reset, too).
            const TCP_TIME_WAIT: u8 = 6;
            const TCP_CLOSE_WAIT: u8 = 8;
            const TCP_LAST_ACK: u8 = 9;
            const TCP_CLOSING: u8 = 11;
            let fin = matches!(
                info.tcpi_state,
                TCP_TIME_WAIT | TCP_CLOSE_WAIT | TCP_LAST_ACK | TCP_CLOSING
            );
            return Some(
                info.tcpi_bytes_received
                    .saturating_sub(before + u64::from(fin)),
            );
        }
    }
    None
}

/// Hands memory the allocator holds free back to the system. At a takeover libzmq frees
/// its objects of both connections (engine, session, pipes, 8 KiB buffers: about 30 KiB a
/// pair), but glibc keeps freed memory in the heaps of the threads that freed it; without
/// this, an idle taken-over pair would still cost the broker's RSS what libzmq once held.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no other effect.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn inode(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes; a closed fd fails with EBADF.
    let rc = unsafe { libc::fstat(fd, &mut st) };
    (rc == 0).then_some((st.st_dev, st.st_ino))
}

/// Whether libzmq has closed its descriptor `original` of the connection we hold as `dup`:
/// the number is free, or names another file now.
pub fn released_by_libzmq(original: RawFd, dup: &OwnedFd) -> bool {
    match (inode(original), inode(dup.as_raw_fd())) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

/// Where the proxy dials a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialAddr {
    Tcp(SocketAddr),
    Ipc(std::path::PathBuf),
}

/// Starts a non-blocking connect(2) to `addr`; the connection is made (or failed) when the
/// descriptor becomes writable: [`socket_error`] tells which. Like libzmq, TCP_NODELAY is set.
pub fn connect_nonblocking(addr: &DialAddr) -> Result<OwnedFd, Errno> {
    let family = match addr {
        DialAddr::Tcp(SocketAddr::V4(_)) => libc::AF_INET,
        DialAddr::Tcp(SocketAddr::V6(_)) => libc::AF_INET6,
        DialAddr::Ipc(_) => libc::AF_UNIX,
    };
    // SAFETY: socket has no memory effects.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        DialAddr::Tcp(SocketAddr::V4(a)) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: storage is large enough and suitably aligned for any sockaddr.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        DialAddr::Tcp(SocketAddr::V6(a)) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: storage is large enough and suitably aligned for any sockaddr.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
        DialAddr::Ipc(path) => {
            use std::os::unix::ffi::OsStrExt;
            // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
            let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_os_str().as_bytes();
            if bytes.len() >= sun.sun_path.len() {
                return Err(libc::ENAMETOOLONG);
            }
            for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
                *d = *s as libc::c_char;
            }
            // SAFETY: storage is large enough and suitably aligned for any sockaddr.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_un>()
                    .write(sun)
            };
            std::mem::size_of::<libc::sockaddr_un>()
        }
    };
    if matches!(addr, DialAddr::Tcp(_)) {
        let one: libc::c_int = 1;
        // SAFETY: one is valid for reads of its size; a failure only loses the option.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    // SAFETY: storage holds a valid address of `len` bytes for the socket's family.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(fd);
    }
    match errno() {
        libc::EINPROGRESS | libc::EINTR | libc::EAGAIN => Ok(fd),
        e => Err(e),
    }
}

/// The pending error of a socket (SO_ERROR): 0 once a non-blocking connect succeeded.
pub fn socket_error(fd: &OwnedFd) -> Errno {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid for writes and len is err's size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        errno()
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// Real loopback TCP: what was read counts, what is queued does not, and neither does
    /// the peer's FIN (the kernel counts it in tcpi_bytes_received).
    #[test]
    fn bytes_consumed_counts_bytes_read_and_not_the_fin() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut ours, _) = listener.accept().unwrap();
        peer.write_all(b"0123456789").unwrap();
        let mut buf = [0u8; 4];
        ours.read_exact(&mut buf).unwrap();
        let fd = OwnedFd::from(ours.try_clone().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while bytes_consumed(&fd) != Some(4) {
            assert!(Instant::now() < deadline, "got {:?}", bytes_consumed(&fd));
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut rest = [0u8; 6];
        ours.read_exact(&mut rest).unwrap();
        assert_eq!(bytes_consumed(&fd), Some(10));
        peer.shutdown(Shutdown::Write).unwrap();
        // The FIN has arrived when a read returns end of stream.
        assert_eq!(ours.read(&mut rest).unwrap(), 0);
        assert_eq!(bytes_consumed(&fd), Some(10));
    }
}
