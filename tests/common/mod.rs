//! Shared harness for the integration tests: a proxy on its own thread with real STREAM
//! sockets on 127.0.0.1, and real libzmq CURVE/NULL/PLAIN peers made with the `zmq` crate.
#![allow(dead_code)]

pub mod monitor;
pub mod raw;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or `deadline` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A raw socket pointer that may cross to the proxy thread. libzmq sockets may migrate
/// between threads with a full memory barrier, which spawn/join provide.
struct SendPtr(*mut c_void);
// SAFETY: only moved once into the proxy thread, which is the sole user afterwards.
unsafe impl Send for SendPtr {}

pub struct Proxy {
    pub ctx: zmq::Context,
    pub frontend: String,
    pub backend: String,
    control: zmq::Socket,
    thread: Option<JoinHandle<(i32, i32)>>,
}

pub fn endpoint_of(socket: &zmq::Socket) -> String {
    socket.get_last_endpoint().unwrap().unwrap()
}

/// Which control socket the proxy gets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ControlType {
    Pair,
    Rep,
    Sub,
}

impl Proxy {
    pub fn start() -> Proxy {
        Proxy::start_with(ControlType::Pair, |_, _| {})
    }

    /// Starts a proxy; `configure` may set options on frontend and backend before bind.
    pub fn start_with(
        control_type: ControlType,
        configure: impl FnOnce(&zmq::Socket, &zmq::Socket),
    ) -> Proxy {
        Proxy::start_full(control_type, configure, Vec::new())
    }

    /// Starts a proxy through a zmq_proxy_stream_t handle with these options set.
    pub fn start_opts(options: Vec<(i32, OptValue)>) -> Proxy {
        Proxy::start_full(ControlType::Pair, |_, _| {}, options)
    }

    pub fn start_full(
        control_type: ControlType,
        configure: impl FnOnce(&zmq::Socket, &zmq::Socket),
        options: Vec<(i32, OptValue)>,
    ) -> Proxy {
        let ctx = zmq::Context::new();
        let frontend = ctx.socket(zmq::STREAM).unwrap();
        let backend = ctx.socket(zmq::STREAM).unwrap();
        // A finite linger, as the header asks: a peer that stops reading must not make
        // zmq_ctx_term wait for ever.
        frontend.set_linger(0).unwrap();
        backend.set_linger(0).unwrap();
        configure(&frontend, &backend);
        frontend.bind("tcp://127.0.0.1:0").unwrap();
        backend.bind("tcp://127.0.0.1:0").unwrap();
        let fe = endpoint_of(&frontend);
        let be = endpoint_of(&backend);
        let n = NEXT_CONTROL.fetch_add(1, Ordering::Relaxed);
        let control_ep = format!("inproc://control-{}-{n}", std::process::id());
        let (ours, theirs) = match control_type {
            ControlType::Pair => (zmq::PAIR, zmq::PAIR),
            ControlType::Rep => (zmq::REQ, zmq::REP),
            ControlType::Sub => (zmq::PUB, zmq::SUB),
        };
        let proxy_control = ctx.socket(theirs).unwrap();
        if control_type == ControlType::Sub {
            proxy_control.set_subscribe(b"").unwrap();
        }
        proxy_control.bind(&control_ep).unwrap();
        let control = ctx.socket(ours).unwrap();
        control.connect(&control_ep).unwrap();
        let f = SendPtr(frontend.into_raw());
        let b = SendPtr(backend.into_raw());
        let c = SendPtr(proxy_control.into_raw());
        let thread = std::thread::spawn(move || {
            let (f, b, c) = (f, b, c);
            // SAFETY: the three sockets are live and used only by this thread from now on;
            // the handle is made, used and destroyed here.
            let rc = unsafe {
                if options.is_empty() {
                    zmq_proxy_stream::zmq_proxy_stream(f.0, b.0, c.0)
                } else {
                    let mut h = zmq_proxy_stream::ffi::zmq_proxy_stream_new();
                    for (option, value) in &options {
                        let bytes = value.bytes();
                        let rc = zmq_proxy_stream::ffi::zmq_proxy_stream_setopt(
                            h,
                            *option,
                            bytes.as_ptr() as *const c_void,
                            bytes.len(),
                        );
                        assert_eq!(rc, 0, "setopt {option} {value:?}");
                    }
                    let rc = zmq_proxy_stream::ffi::zmq_proxy_stream_run(h, f.0, b.0, c.0);
                    zmq_proxy_stream::ffi::zmq_proxy_stream_destroy(&mut h);
                    rc
                }
            };
            let errno = if rc == 0 { 0 } else { last_errno() };
            // The proxy never closes our sockets: close them here.
            // SAFETY: each pointer is a live socket owned by this thread; from_raw takes it.
            unsafe {
                drop(zmq::Socket::from_raw(f.0));
                drop(zmq::Socket::from_raw(b.0));
                drop(zmq::Socket::from_raw(c.0));
            }
            (rc, errno)
        });
        Proxy {
            ctx,
            frontend: fe,
            backend: be,
            control,
            thread: Some(thread),
        }
    }

    /// STREAMSTATS over a PAIR or REP control socket: the counters by ZMQ_PROXY_STREAM_STAT_*.
    pub fn stream_stats(&self) -> Vec<u64> {
        self.send_command("STREAMSTATS");
        let frames = self
            .recv_control(Duration::from_secs(10))
            .expect("STREAMSTATS reply");
        assert_eq!(frames.len(), 1, "STREAMSTATS replies one frame");
        frames[0]
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8-byte counters")))
            .collect()
    }

    /// One STREAMSTATS counter.
    pub fn stat(&self, index: i32) -> u64 {
        self.stream_stats()[index as usize]
    }

    /// STATISTICS over a PAIR or REP control socket.
    pub fn statistics(&self) -> [u64; 8] {
        self.send_command("STATISTICS");
        let frames = self
            .recv_control(Duration::from_secs(10))
            .expect("STATISTICS reply");
        assert_eq!(frames.len(), 8, "STATISTICS replies 8 frames");
        let mut out = [0u64; 8];
        for (i, f) in frames.iter().enumerate() {
            out[i] = u64::from_ne_bytes(f.as_slice().try_into().expect("8-byte frame"));
        }
        out
    }

    pub fn send_command(&self, command: &str) {
        self.control
            .send(command, zmq::DONTWAIT)
            .expect("the proxy's control socket takes commands");
    }

    pub fn recv_control(&self, timeout: Duration) -> Option<Vec<Vec<u8>>> {
        if self
            .control
            .poll(zmq::POLLIN, timeout.as_millis() as i64)
            .unwrap()
            == 0
        {
            return None;
        }
        Some(self.control.recv_multipart(0).unwrap())
    }

    /// Sends TERMINATE and returns the proxy's (rc, errno).
    pub fn terminate(mut self) -> (i32, i32) {
        self.send_command("TERMINATE");
        assert!(
            wait_finished(&self, DEADLINE),
            "the proxy returns after TERMINATE"
        );
        self.join()
    }

    /// Whether the proxy thread has returned.
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    pub fn join(&mut self) -> (i32, i32) {
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("proxy thread panicked")
    }
}

/// A value for zmq_proxy_stream_setopt.
#[derive(Clone, Debug)]
pub enum OptValue {
    Int(i32),
    I64(i64),
    Str(&'static str),
}

impl OptValue {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            OptValue::Int(v) => v.to_ne_bytes().to_vec(),
            OptValue::I64(v) => v.to_ne_bytes().to_vec(),
            OptValue::Str(s) => s.as_bytes().to_vec(),
        }
    }
}

static NEXT_CONTROL: AtomicUsize = AtomicUsize::new(0);

pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Never block here: the proxy may have returned already (a failing test).
            let _ = self.control.send("TERMINATE", zmq::DONTWAIT);
            if self.finished() || wait_finished(self, DEADLINE) {
                let _ = self.join();
            }
        }
    }
}

fn wait_finished(proxy: &Proxy, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    while !proxy.finished() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A CURVE server key pair for workers, and a fresh client pair per client.
pub struct Keys {
    pub server: zmq::CurveKeyPair,
}

impl Keys {
    pub fn new() -> Keys {
        Keys {
            server: zmq::CurveKeyPair::new().unwrap(),
        }
    }
}

/// The security a peer uses.
#[derive(Clone)]
pub enum Mechanism {
    Null,
    Plain,
    Curve(Arc<zmq::CurveKeyPair>),
}

/// A worker: one ROUTER socket (a CURVE/PLAIN/NULL server) connected `connections` times
/// to the proxy's backend, echoing every message on its own thread until dropped.
pub struct Worker {
    stop: Arc<AtomicBool>,
    pub served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn start(ctx: &zmq::Context, backend: &str, mech: Mechanism, connections: usize) -> Worker {
        Worker::start_with(ctx, backend, mech, connections, |_| {})
    }

    pub fn start_with(
        ctx: &zmq::Context,
        backend: &str,
        mech: Mechanism,
        connections: usize,
        configure: impl FnOnce(&zmq::Socket),
    ) -> Worker {
        let socket = ctx.socket(zmq::ROUTER).unwrap();
        socket.set_linger(0).unwrap();
        socket.set_immediate(true).unwrap();
        match &mech {
            Mechanism::Null => {}
            Mechanism::Plain => {
                socket.set_plain_server(true).unwrap();
                start_zap_handler(ctx);
            }
            Mechanism::Curve(server) => {
                socket.set_curve_server(true).unwrap();
                socket.set_curve_secretkey(&server.secret_key).unwrap();
            }
        }
        configure(&socket);
        for _ in 0..connections {
            socket.connect(backend).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (stop2, served2) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if socket.poll(zmq::POLLIN, 20).unwrap() == 0 {
                    continue;
                }
                let frames = socket.recv_multipart(0).unwrap();
                socket.send_multipart(frames, 0).unwrap();
                served2.fetch_add(1, Ordering::Relaxed);
            }
        });
        Worker {
            stop,
            served,
            thread: Some(thread),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A ZAP handler that accepts every PLAIN user "user" with password "pass" and NULL/CURVE
/// peers, once per context.
pub fn start_zap_handler(ctx: &zmq::Context) {
    let handler = ctx.socket(zmq::REP).unwrap();
    if handler.bind("inproc://zeromq.zap.01").is_err() {
        return; // already running in this context
    }
    std::thread::spawn(move || loop {
        let Ok(frames) = handler.recv_multipart(0) else {
            return;
        };
        // version, request id, domain, address, identity, mechanism, credentials...
        let ok = frames.get(5).map(|m| m.as_slice()) != Some(b"PLAIN")
            || (frames.get(6).map(|u| u.as_slice()) == Some(b"user")
                && frames.get(7).map(|p| p.as_slice()) == Some(b"pass"));
        let (code, text): (&[u8], &[u8]) = if ok {
            (b"200", b"OK")
        } else {
            (b"400", b"denied")
        };
        let reply: Vec<&[u8]> = vec![b"1.0", &frames[1], code, text, b"user", b""];
        if handler.send_multipart(reply, 0).is_err() {
            return;
        }
    });
}

/// CURVE with a fresh server key pair.
pub fn curve() -> Mechanism {
    Mechanism::Curve(Arc::new(Keys::new().server))
}

/// A client socket of the given mechanism (DEALER), connected to `frontend`.
pub fn client(ctx: &zmq::Context, frontend: &str, mech: &Mechanism) -> zmq::Socket {
    let socket = ctx.socket(zmq::DEALER).unwrap();
    socket.set_linger(0).unwrap();
    match mech {
        Mechanism::Null => {}
        Mechanism::Plain => {
            socket.set_plain_username(Some("user")).unwrap();
            socket.set_plain_password(Some("pass")).unwrap();
        }
        Mechanism::Curve(server) => {
            let me = zmq::CurveKeyPair::new().unwrap();
            socket.set_curve_serverkey(&server.public_key).unwrap();
            socket.set_curve_publickey(&me.public_key).unwrap();
            socket.set_curve_secretkey(&me.secret_key).unwrap();
        }
    }
    socket.connect(frontend).unwrap();
    socket
}

/// Receives one multipart message within `timeout`, or None.
pub fn recv_within(socket: &zmq::Socket, timeout: Duration) -> Option<Vec<Vec<u8>>> {
    if socket
        .poll(zmq::POLLIN, timeout.as_millis() as i64)
        .unwrap()
        == 0
    {
        return None;
    }
    Some(socket.recv_multipart(0).unwrap())
}

/// Sends `request` and checks the echo comes back intact.
pub fn round_trip(socket: &zmq::Socket, request: &[&[u8]]) {
    socket.send_multipart(request.iter().copied(), 0).unwrap();
    let reply = recv_within(socket, DEADLINE).expect("echo within the deadline");
    let want: Vec<Vec<u8>> = request.iter().map(|p| p.to_vec()).collect();
    assert_eq!(reply, want, "echo must match the request byte for byte");
}

/// Deterministic payload bytes for message `n` of length `len`.
pub fn payload(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
