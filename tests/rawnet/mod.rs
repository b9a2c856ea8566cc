//! Extra test helpers for control.rs, errors.rs and backpressure.rs (not part of the shared
//! harness in tests/common):
//! - raw TCP peers (std::net::TcpStream) for exact byte counts, with deadline-bound reads,
//!   that speak just enough ZMTP (NULL greeting and READY) to pass the proxy's screening, and
//!   the exact byte counts of that handshake (`handshake_bytes`, `raw_pair_bytes`);
//! - a position-dependent byte pattern that exposes holes, duplicates and reordering;
//! - `OwnProxy`, a harness variant that keeps the proxy thread's JoinHandle (to read its CPU
//!   clock) and hands the caller's sockets back after the proxy returns (to check they are
//!   still open and usable);
//! - process memory (VmRSS) and per-thread CPU time readers.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::raw::{greeting, greeting_with, null_ready};
use crate::common::{wait_until, ControlType, Proxy};

/// Deadline for anything the tests wait on.
pub const LONG: Duration = Duration::from_secs(20);

/// "tcp://127.0.0.1:1234" -> "127.0.0.1:1234".
pub fn tcp_addr(endpoint: &str) -> &str {
    endpoint.strip_prefix("tcp://").expect("a tcp:// endpoint")
}

/// A plain TCP connection to a proxy endpoint.
pub use crate::common::raw::connect as tcp_connect;
pub use crate::common::raw::read_exact_within;

/// A plain TCP connection whose SO_RCVBUF is set before connect (so the window is small from
/// the handshake on; Linux doubles the value and enforces a minimum).
pub fn tcp_connect_with_rcvbuf(endpoint: &str, rcvbuf: i32) -> TcpStream {
    let addr: SocketAddrV4 = tcp_addr(endpoint).parse().expect("ipv4 endpoint");
    // SAFETY: plain socket syscalls on a descriptor we own; every pointer is to a local of the
    // size passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket(): {}", std::io::Error::last_os_error());
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &rcvbuf as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect(): {}", std::io::Error::last_os_error());
        let s = TcpStream::from_raw_fd(fd);
        s.set_nodelay(true).unwrap();
        s
    }
}

/// Negative check: nothing readable on `s` during `window` (no data, no EOF).
/// Returns the number of bytes that did arrive (0 expected), panicking on EOF.
pub fn bytes_arriving_within(s: &mut TcpStream, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut buf = [0u8; 65536];
    let mut got = 0;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => panic!("unexpected EOF during the negative check"),
            Ok(k) => got += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("unexpected error during the negative check: {e}"),
        }
    }
}

/// How a connection ended, seen from a reader.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Eof,
    Reset,
}

/// Reads and discards until the connection ends (EOF or reset) within `deadline`; returns how
/// it ended and how many bytes were drained.
pub fn drain_until_closed(s: &mut TcpStream, deadline: Duration) -> (End, usize) {
    drain_until_closed_with(s, deadline, Duration::from_secs(1), || {})
}

/// Like `drain_until_closed`, calling `tick` every `every` while waiting (e.g. to keep calling
/// into a libzmq socket, which a requested close needs to complete).
pub fn drain_until_closed_with(
    s: &mut TcpStream,
    deadline: Duration,
    every: Duration,
    mut tick: impl FnMut(),
) -> (End, usize) {
    let end = Instant::now() + deadline;
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "connection not closed within {deadline:?} ({got} bytes drained)"
        );
        tick();
        s.set_read_timeout(Some(left.min(every))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (End::Eof, got),
            Ok(k) => got += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (End::Reset, got),
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
}

/// Byte `pos` of stream `seed`: every aligned 8-byte word encodes its own index, so a hole,
/// a duplicate, a reordering or a byte from another stream shows up as a mismatch.
#[inline]
fn word(seed: u64, index: u64) -> [u8; 8] {
    (index ^ seed.rotate_left(29))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .to_le_bytes()
}

/// `len` bytes of stream `seed` starting at absolute offset `start`.
pub fn pattern(seed: u64, start: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = start;
    let end = start + len as u64;
    while pos < end {
        let w = word(seed, pos / 8);
        let from = (pos % 8) as usize;
        let take = (8 - from).min((end - pos) as usize);
        out.extend_from_slice(&w[from..from + take]);
        pos += take as u64;
    }
    out
}

/// Checks that `data` is stream `seed` at offset `start`; panics at the first mismatch.
pub fn check_pattern(seed: u64, start: u64, data: &[u8]) {
    let want = pattern(seed, start, data.len());
    if want != data {
        let i = want
            .iter()
            .zip(data)
            .position(|(a, b)| a != b)
            .expect("differs");
        panic!(
            "stream {seed:#x}: byte at offset {} is {:#04x}, want {:#04x}",
            start + i as u64,
            data[i],
            want[i]
        );
    }
}

// ---- The ZMTP edge: what raw peers must say to be screened and paired ----------------------
//
// The proxy greets every new connection on either side with the opening of its greeting
// (signature and major version, `OPENING_LEN` bytes). A client must send a whole ZMTP 3.x
// greeting and a well-formed first command (here NULL's READY); the proxy answers the
// client's greeting with the rest of its own (`GREETING_REST_LEN` bytes) at once. A worker
// sends its greeting and stays silent; once a client is paired with it, it gets the rest of
// the proxy's greeting and then the client's READY, and from then on bytes are relayed
// untouched both ways. STATISTICS counts all of these bytes.

/// A whole ZMTP 3.x greeting.
pub const GREETING_LEN: usize = 64;
/// What the proxy sends every new connection at once: the 10-byte signature and major 3.
pub const OPENING_LEN: usize = 11;
/// The rest of the proxy's greeting: minor, mechanism, as-server, filler.
pub const GREETING_REST_LEN: usize = GREETING_LEN - OPENING_LEN;
/// The probe raw_pair sends each way to prove the pairing.
pub const PROBE_LEN: usize = 1;

/// The greeting a raw client or worker sends (NULL, as libzmq 4.3 sends it).
pub fn peer_greeting() -> Vec<u8> {
    let g = greeting("NULL");
    assert_eq!(g.len(), GREETING_LEN);
    g
}

/// The first command a raw client sends, and its worker receives untouched.
pub fn client_ready() -> Vec<u8> {
    null_ready("DEALER")
}

/// The proxy's whole greeting to a NULL peer: ZMTP 3.0, NULL, as-server 0.
pub fn proxy_greeting() -> Vec<u8> {
    let g = greeting_with(3, 0, b"NULL", 0);
    assert_eq!(g.len(), GREETING_LEN);
    g
}

/// Counter deltas (STATISTICS bytes, or lower bounds on STATISTICS messages) by direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Read from the client (frontend in).
    pub frontend_in: u64,
    /// Sent to the client (frontend out).
    pub frontend_out: u64,
    /// Read from the worker (backend in).
    pub backend_in: u64,
    /// Sent to the worker (backend out).
    pub backend_out: u64,
}

/// The bytes one raw pair's handshake adds to STATISTICS: the client's greeting and READY in,
/// the proxy's greeting out to the client; the worker's greeting in, and out to the worker the
/// proxy's opening, the rest of its greeting and the client's READY.
pub fn handshake_bytes() -> Counts {
    let ready = client_ready().len() as u64;
    Counts {
        frontend_in: GREETING_LEN as u64 + ready,
        frontend_out: (OPENING_LEN + GREETING_REST_LEN) as u64,
        backend_in: GREETING_LEN as u64,
        backend_out: (OPENING_LEN + GREETING_REST_LEN) as u64 + ready,
    }
}

/// The bytes `raw_pair` adds to STATISTICS: its handshake and one probe byte each way.
pub fn raw_pair_bytes() -> Counts {
    let h = handshake_bytes();
    let p = PROBE_LEN as u64;
    Counts {
        frontend_in: h.frontend_in + p,
        frontend_out: h.frontend_out + p,
        backend_in: h.backend_in + p,
        backend_out: h.backend_out + p,
    }
}

/// The fewest STATISTICS messages (chunks) `raw_pair` adds, from what must travel in separate
/// chunks because each waits for an answer to the one before it: the client's greeting, its
/// READY (sent after the proxy's greeting came back) and its probe (sent after the worker got
/// the READY); the proxy's greeting to the client and the worker's probe; the worker's
/// greeting and its probe; to the worker the opening (read before the client connects), the
/// rest of the greeting with the READY, and the client's probe.
pub fn raw_pair_min_msgs() -> Counts {
    Counts {
        frontend_in: 3,
        frontend_out: 2,
        backend_in: 2,
        backend_out: 3,
    }
}

/// Sends a worker's greeting and reads the proxy's opening: the worker connection is then
/// idle in the proxy's pool.
pub fn worker_greet(worker: &mut TcpStream) {
    worker.write_all(&peer_greeting()).unwrap();
    worker_read_opening(worker);
}

fn worker_read_opening(worker: &mut TcpStream) {
    assert_eq!(
        read_exact_within(worker, OPENING_LEN, LONG),
        proxy_greeting()[..OPENING_LEN],
        "the proxy's opening to a worker"
    );
}

/// An idle raw worker: connected to `backend` and greeted.
pub fn raw_worker(backend: &str) -> TcpStream {
    let mut w = tcp_connect(backend);
    worker_greet(&mut w);
    w
}

/// A greeted worker waits for its client: the rest of the proxy's greeting, then the client's
/// READY, exactly.
pub fn worker_await_pair(worker: &mut TcpStream) {
    assert_eq!(
        read_exact_within(worker, GREETING_REST_LEN, LONG),
        proxy_greeting()[OPENING_LEN..],
        "the end of the proxy's greeting, once paired"
    );
    let ready = client_ready();
    assert_eq!(
        read_exact_within(worker, ready.len(), LONG),
        ready,
        "the client's READY, untouched"
    );
}

/// After the client's greeting was sent: reads the proxy's whole greeting and sends READY.
fn client_finish_screening(client: &mut TcpStream) {
    assert_eq!(
        read_exact_within(client, GREETING_LEN, LONG),
        proxy_greeting(),
        "the proxy's greeting to a client"
    );
    client.write_all(&client_ready()).unwrap();
}

/// Screens a raw client: greeting, the proxy's greeting back, READY. It then waits for (or
/// is paired with) a NULL worker.
pub fn client_screen(client: &mut TcpStream) {
    client.write_all(&peer_greeting()).unwrap();
    client_finish_screening(client);
}

/// A screened raw client, connected to `frontend`.
pub fn raw_client(frontend: &str) -> TcpStream {
    let mut c = tcp_connect(frontend);
    client_screen(&mut c);
    c
}

/// A raw worker and a raw client paired by the proxy, proven by one byte each way.
pub struct RawPair {
    pub worker: TcpStream,
    pub client: TcpStream,
}

/// Connects a raw worker to `backend`, then a raw client to `frontend`, takes both through
/// the proxy's handshake and proves they were paired with each other by sending one byte
/// client->worker and one byte worker->client. Counters move by exactly `raw_pair_bytes()`.
pub fn raw_pair(frontend: &str, backend: &str) -> RawPair {
    let worker = tcp_connect(backend);
    let client = tcp_connect(frontend);
    raw_pair_from(worker, client)
}

/// `raw_pair` on connections the caller made (fresh: nothing sent or read yet).
pub fn raw_pair_from(worker: TcpStream, client: TcpStream) -> RawPair {
    greet_both(worker, client).finish()
}

/// A fresh worker and client that have sent their greetings and read nothing yet: a proxy
/// that is paused has these bytes waiting for it.
pub struct Greeted {
    worker: TcpStream,
    client: TcpStream,
}

/// Sends both greetings (writes only: works while the proxy is paused).
pub fn greet_both(mut worker: TcpStream, mut client: TcpStream) -> Greeted {
    worker.write_all(&peer_greeting()).unwrap();
    client.write_all(&peer_greeting()).unwrap();
    Greeted { worker, client }
}

impl Greeted {
    /// Completes the handshake (worker idle first, then the client screened and paired with
    /// it) and proves the pairing with one byte each way.
    pub fn finish(self) -> RawPair {
        let Greeted {
            mut worker,
            mut client,
        } = self;
        worker_read_opening(&mut worker);
        client_finish_screening(&mut client);
        worker_await_pair(&mut worker);
        client.write_all(b"c").unwrap();
        assert_eq!(read_exact_within(&mut worker, PROBE_LEN, LONG), b"c");
        worker.write_all(b"w").unwrap();
        assert_eq!(read_exact_within(&mut client, PROBE_LEN, LONG), b"w");
        RawPair { worker, client }
    }
}

/// A shared-harness proxy whose data sockets have linger 0, so that the test's context can
/// always terminate (libzmq's zmq_ctx_term waits for undelivered data at the default -1).
pub fn proxy_linger0(control: ControlType) -> Proxy {
    Proxy::start_with(control, |frontend, backend| {
        frontend.set_linger(0).unwrap();
        backend.set_linger(0).unwrap();
    })
}

/// Resident memory of this process, in bytes.
pub fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// CPU time (user + system) consumed so far by a live thread.
pub fn thread_cpu_time<T>(handle: &JoinHandle<T>) -> Duration {
    let pthread = handle.as_pthread_t();
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive (the caller holds its unjoined handle); the out-pointers are
    // to locals.
    unsafe {
        let rc = libc::pthread_getcpuclockid(pthread as libc::pthread_t, &mut clock);
        assert_eq!(rc, 0, "pthread_getcpuclockid");
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let rc = libc::clock_gettime(clock, &mut ts);
        assert_eq!(rc, 0, "clock_gettime");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// What the proxy thread of an `OwnProxy` returns: rc, errno, and the caller's sockets, still
/// open (the library must never close them).
pub struct Exit {
    pub rc: i32,
    pub errno: i32,
    pub frontend: zmq::Socket,
    pub backend: zmq::Socket,
    pub control: Option<zmq::Socket>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A proxy on a thread whose handle we keep, on a context the test supplies, with a PAIR
/// control socket (or none). All sockets have linger 0 so that a context can be terminated.
pub struct OwnProxy {
    pub frontend: String,
    pub backend: String,
    pub control: Option<zmq::Socket>,
    thread: Option<JoinHandle<Exit>>,
}

impl OwnProxy {
    pub fn start(ctx: &zmq::Context, with_control: bool) -> OwnProxy {
        OwnProxy::start_with(ctx, with_control, |_, _| {})
    }

    pub fn start_with(
        ctx: &zmq::Context,
        with_control: bool,
        configure: impl FnOnce(&zmq::Socket, &zmq::Socket),
    ) -> OwnProxy {
        OwnProxy::start_inner(ctx, with_control, configure, false)
    }

    /// `start_with`, with every pair relayed through libzmq (ZMQ_PROXY_STREAM_TAKEOVER 0):
    /// for tests of what only that path has (BACKPRESSURE, the stall bound, connections that
    /// stay the caller's after TERMINATE).
    pub fn start_on_libzmq_relay(
        ctx: &zmq::Context,
        with_control: bool,
        configure: impl FnOnce(&zmq::Socket, &zmq::Socket),
    ) -> OwnProxy {
        OwnProxy::start_inner(ctx, with_control, configure, true)
    }

    fn start_inner(
        ctx: &zmq::Context,
        with_control: bool,
        configure: impl FnOnce(&zmq::Socket, &zmq::Socket),
        libzmq_relay: bool,
    ) -> OwnProxy {
        let mut frontend = ctx.socket(zmq::STREAM).unwrap();
        let mut backend = ctx.socket(zmq::STREAM).unwrap();
        frontend.set_linger(0).unwrap();
        backend.set_linger(0).unwrap();
        configure(&frontend, &backend);
        frontend.bind("tcp://127.0.0.1:0").unwrap();
        backend.bind("tcp://127.0.0.1:0").unwrap();
        let fe = frontend.get_last_endpoint().unwrap().unwrap();
        let be = backend.get_last_endpoint().unwrap().unwrap();
        let (mut theirs, ours) = if with_control {
            let ep = format!(
                "inproc://own-control-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let theirs = ctx.socket(zmq::PAIR).unwrap();
            theirs.set_linger(0).unwrap();
            theirs.bind(&ep).unwrap();
            let ours = ctx.socket(zmq::PAIR).unwrap();
            ours.set_linger(0).unwrap();
            ours.connect(&ep).unwrap();
            (Some(theirs), Some(ours))
        } else {
            (None, None)
        };
        let thread = std::thread::spawn(move || {
            let c = theirs
                .as_mut()
                .map_or(std::ptr::null_mut(), |s| s.as_mut_ptr());
            // SAFETY: the sockets are live and used only by this thread during the call; the
            // handle is made, used and destroyed here.
            let rc = unsafe {
                if libzmq_relay {
                    use zmq_proxy_stream::ffi::*;
                    let mut h = zmq_proxy_stream_new();
                    let off: i32 = 0;
                    let set = zmq_proxy_stream_setopt(
                        h,
                        zmq_proxy_stream::api::ZMQ_PROXY_STREAM_TAKEOVER,
                        (&off as *const i32).cast(),
                        4,
                    );
                    assert_eq!(set, 0);
                    let rc =
                        zmq_proxy_stream_run(h, frontend.as_mut_ptr(), backend.as_mut_ptr(), c);
                    let errno = std::io::Error::last_os_error();
                    zmq_proxy_stream_destroy(&mut h);
                    if let Some(e) = errno.raw_os_error() {
                        libc::__errno_location().write(e);
                    }
                    rc
                } else {
                    zmq_proxy_stream::zmq_proxy_stream(
                        frontend.as_mut_ptr(),
                        backend.as_mut_ptr(),
                        c,
                    )
                }
            };
            let errno = if rc == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            };
            Exit {
                rc,
                errno,
                frontend,
                backend,
                control: theirs,
            }
        });
        OwnProxy {
            frontend: fe,
            backend: be,
            control: ours,
            thread: Some(thread),
        }
    }

    /// CPU time the proxy thread has used so far (the thread must still be running).
    pub fn cpu_time(&self) -> Duration {
        thread_cpu_time(self.thread.as_ref().expect("running"))
    }

    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Sends a command without blocking: a PAIR whose peer is gone (the proxy returned and
    /// its socket was closed) would block a plain send forever.
    pub fn send_command(&self, command: &str) {
        assert!(!self.finished(), "the proxy returned before {command:?}");
        self.control
            .as_ref()
            .expect("has control")
            .send(command, zmq::DONTWAIT)
            .unwrap_or_else(|e| panic!("sending {command:?}: {e}"));
    }

    /// STATISTICS over the PAIR control socket.
    pub fn statistics(&self) -> [u64; 8] {
        let c = self.control.as_ref().expect("has control");
        self.send_command("STATISTICS");
        assert!(
            c.poll(zmq::POLLIN, LONG.as_millis() as i64).unwrap() > 0,
            "STATISTICS reply within the deadline"
        );
        let frames = c.recv_multipart(0).unwrap();
        assert_eq!(frames.len(), 8, "STATISTICS replies 8 frames");
        let mut out = [0u64; 8];
        for (i, f) in frames.iter().enumerate() {
            out[i] = u64::from_ne_bytes(f.as_slice().try_into().expect("8-byte frame"));
        }
        out
    }

    /// STREAMSTATS over the PAIR control socket: the counters by ZMQ_PROXY_STREAM_STAT_*.
    pub fn stream_stats(&self) -> Vec<u64> {
        let c = self.control.as_ref().expect("has control");
        self.send_command("STREAMSTATS");
        assert!(
            c.poll(zmq::POLLIN, LONG.as_millis() as i64).unwrap() > 0,
            "STREAMSTATS reply within the deadline"
        );
        let frames = c.recv_multipart(0).unwrap();
        assert_eq!(frames.len(), 1, "STREAMSTATS replies one frame");
        frames[0]
            .chunks(8)
            .map(|f| u64::from_ne_bytes(f.try_into().expect("8-byte counters")))
            .collect()
    }

    /// Waits (with a deadline) for the proxy thread to return and gives back what it returned.
    pub fn join_within(&mut self, deadline: Duration) -> Exit {
        wait_until("the proxy thread to return", deadline, || self.finished());
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("proxy thread panicked")
    }

    /// TERMINATE, then join.
    pub fn terminate(&mut self) -> Exit {
        self.send_command("TERMINATE");
        self.join_within(LONG)
    }
}

impl Drop for OwnProxy {
    fn drop(&mut self) {
        if let (Some(_), Some(control)) = (&self.thread, &self.control) {
            if !self.finished() {
                let _ = control.send("TERMINATE", zmq::DONTWAIT);
            }
            // Join only a thread that returned: if a test failed because the proxy does not
            // stop, the failure must not turn into a hang here.
            let end = Instant::now() + LONG;
            while !self.finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.finished() {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
        }
        // A proxy that is still running (no control socket, or it ignored TERMINATE) is left
        // to the process exit, with its sockets.
    }
}
