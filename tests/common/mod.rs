//! Shared harness for the integration tests: a proxy on its own thread with real STREAM
//! sockets on 127.0.0.1, and real libzmq CURVE/NULL/PLAIN peers made with the `zmq` crate.
#![allow(dead_code)]

pub mod bound;
pub mod events;
pub mod monitor;
pub mod netns;
pub mod raw;
pub mod tun_link;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use bound::{refused_endpoint, BoundWorker, RecoveringWorker, SilentListener, WorkerCounts};
#[allow(unused_imports)]
pub use events::{EventsKind, ProxyConfig, ProxyEvent};

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::ffi::c_void;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or `deadline` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
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
    /// Empty in dial-out mode (the backend is not bound).
    pub backend: String,
    /// The test's end of the proxy's events socket (ZMQ_PROXY_STREAM_EVENTS), when asked for
    /// with `EventsKind::Pair` or `EventsKind::Pub`.
    pub events: Option<zmq::Socket>,
    /// Events received but not yet matched by `wait_event`, in arrival order.
    event_backlog: RefCell<VecDeque<String>>,
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
        let mut config = ProxyConfig::new();
        config.control = control_type;
        config.options = options;
        Proxy::start_config_with(config, configure)
    }

    /// A dial-out proxy: the backend STREAM socket is made (linger 0) but not bound, and the
    /// proxy dials `endpoints` (ZMQ_PROXY_STREAM_WORKER_ENDPOINT, in this order) itself;
    /// `options` come after them. `proxy.backend` is empty.
    pub fn start_dial_out(endpoints: &[String], options: Vec<(i32, OptValue)>) -> Proxy {
        let mut config = ProxyConfig::new().dial_out(endpoints);
        config.options.extend(options);
        Proxy::start_config(config)
    }

    pub fn start_config(config: ProxyConfig) -> Proxy {
        Proxy::start_config_with(config, |_, _| {})
    }

    /// Starts a proxy as `config` says; `configure` may set options on frontend and backend
    /// before bind.
    pub fn start_config_with(
        config: ProxyConfig,
        configure: impl FnOnce(&zmq::Socket, &zmq::Socket),
    ) -> Proxy {
        let ProxyConfig {
            control: control_type,
            frontend_bind,
            backend_bind,
            ipv6,
            dial_out,
            events: events_kind,
            mut options,
        } = config;
        // The suite runs on both relay paths: STREAMQ_TEST_TAKEOVER=0 puts every proxy on
        // the libzmq relay (a test's own TAKEOVER option, set later, still wins).
        if let Ok(v) = std::env::var("STREAMQ_TEST_TAKEOVER") {
            let v: i32 = v.parse().expect("STREAMQ_TEST_TAKEOVER is 0 or 1");
            options.insert(
                0,
                (
                    zmq_proxy_stream::api::ZMQ_PROXY_STREAM_TAKEOVER,
                    OptValue::Int(v),
                ),
            );
        }
        let ctx = zmq::Context::new();
        let frontend = ctx.socket(zmq::STREAM).unwrap();
        let backend = ctx.socket(zmq::STREAM).unwrap();
        // A finite linger, as the header asks: a peer that stops reading must not make
        // zmq_ctx_term wait for ever.
        frontend.set_linger(0).unwrap();
        backend.set_linger(0).unwrap();
        if ipv6 {
            frontend.set_ipv6(true).unwrap();
        }
        configure(&frontend, &backend);
        frontend
            .bind(&frontend_bind)
            .unwrap_or_else(|e| panic!("frontend bind {frontend_bind}: {e}"));
        let fe = endpoint_of(&frontend);
        let be = if dial_out {
            String::new()
        } else {
            backend
                .bind(&backend_bind)
                .unwrap_or_else(|e| panic!("backend bind {backend_bind}: {e}"));
            endpoint_of(&backend)
        };
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
        // The events socket: the proxy's end is made here in the proxy's context and handed
        // over by pointer (ZMQ_PROXY_STREAM_EVENTS); the test keeps the other end.
        let (events, proxy_events) = match events_kind {
            None => (None, None),
            Some(kind) => {
                let events_ep = format!("inproc://events-{}-{n}", std::process::id());
                let (ours, theirs) = match kind {
                    EventsKind::Pair => (Some(zmq::PAIR), zmq::PAIR),
                    EventsKind::Pub => (Some(zmq::SUB), zmq::PUB),
                    EventsKind::PushToNobody => (None, zmq::PUSH),
                };
                let test_side = ours.map(|t| {
                    let s = ctx.socket(t).unwrap();
                    s.set_linger(0).unwrap();
                    if t == zmq::SUB {
                        s.set_subscribe(b"").unwrap();
                    }
                    s.bind(&events_ep).unwrap();
                    s
                });
                let proxy_side = ctx.socket(theirs).unwrap();
                proxy_side.set_linger(0).unwrap();
                if let Some(t) = &test_side {
                    proxy_side.connect(&events_ep).unwrap();
                    // Let the test's end take the new pipe now (a SUB then sends its
                    // subscription), so that the proxy's first event is not lost.
                    t.poll(zmq::POLLIN, 0).unwrap();
                }
                let raw = proxy_side.into_raw();
                options.push((
                    zmq_proxy_stream::api::ZMQ_PROXY_STREAM_EVENTS,
                    OptValue::Ptr(raw as usize),
                ));
                (test_side, Some(SendPtr(raw)))
            }
        };
        // Options are set here, in the test's thread, so that a refused option fails the
        // test at once, with every socket closed (a socket left open would make the
        // context's termination wait for ever).
        let handle = if options.is_empty() {
            None
        } else {
            // The handle is destroyed here on error, else by the proxy thread.
            let mut h = zmq_proxy_stream::ffi::zmq_proxy_stream_new();
            for (option, value) in &options {
                let bytes = value.bytes();
                // SAFETY: `bytes` is valid for its length; `h` is a live handle.
                let rc = unsafe {
                    zmq_proxy_stream::ffi::zmq_proxy_stream_setopt(
                        h,
                        *option,
                        bytes.as_ptr() as *const c_void,
                        bytes.len(),
                    )
                };
                if rc != 0 {
                    let errno = last_errno();
                    // SAFETY: `h` is live; the events socket pointer is still ours.
                    unsafe {
                        zmq_proxy_stream::ffi::zmq_proxy_stream_destroy(&mut h);
                        if let Some(e) = &proxy_events {
                            drop(zmq::Socket::from_raw(e.0));
                        }
                    }
                    panic!("zmq_proxy_stream_setopt({option}, {value:?}) failed: errno {errno}");
                }
            }
            Some(SendPtr(h as *mut c_void))
        };
        let f = SendPtr(frontend.into_raw());
        let b = SendPtr(backend.into_raw());
        let c = SendPtr(proxy_control.into_raw());
        let thread = std::thread::spawn(move || {
            let (f, b, c, e, h) = (f, b, c, proxy_events, handle);
            // SAFETY: the sockets and the handle are live and used only by this thread from
            // now on; the handle is destroyed here.
            let rc = unsafe {
                match h {
                    None => zmq_proxy_stream::zmq_proxy_stream(f.0, b.0, c.0),
                    Some(h) => {
                        let mut h = h.0 as *mut zmq_proxy_stream::ffi::zmq_proxy_stream_t;
                        let rc = zmq_proxy_stream::ffi::zmq_proxy_stream_run(h, f.0, b.0, c.0);
                        zmq_proxy_stream::ffi::zmq_proxy_stream_destroy(&mut h);
                        rc
                    }
                }
            };
            let errno = if rc == 0 { 0 } else { last_errno() };
            // The proxy never closes our sockets: close them here.
            // SAFETY: each pointer is a live socket owned by this thread; from_raw takes it.
            unsafe {
                drop(zmq::Socket::from_raw(f.0));
                drop(zmq::Socket::from_raw(b.0));
                drop(zmq::Socket::from_raw(c.0));
                if let Some(e) = e {
                    drop(zmq::Socket::from_raw(e.0));
                }
            }
            (rc, errno)
        });
        Proxy {
            ctx,
            frontend: fe,
            backend: be,
            events,
            event_backlog: RefCell::new(VecDeque::new()),
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

    /// The next event from the events socket (the backlog first), or None after `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<ProxyEvent> {
        if let Some(text) = self.event_backlog.borrow_mut().pop_front() {
            return Some(ProxyEvent::parse(&text));
        }
        self.recv_event_text(timeout)
            .map(|text| ProxyEvent::parse(&text))
    }

    fn recv_event_text(&self, timeout: Duration) -> Option<String> {
        let socket = self
            .events
            .as_ref()
            .expect("this proxy was started without an events socket to read");
        let frames = recv_within(socket, timeout)?;
        assert_eq!(frames.len(), 1, "an event is one frame: {frames:?}");
        Some(String::from_utf8(frames[0].clone()).expect("events are ASCII text"))
    }

    /// Waits for the first event that `matches` (looking at events not yet taken first) and
    /// takes it; the others stay in the backlog in order. Panics after `deadline`, listing
    /// the events seen.
    pub fn wait_event(
        &self,
        what: &str,
        deadline: Duration,
        mut matches: impl FnMut(&ProxyEvent) -> bool,
    ) -> ProxyEvent {
        {
            let mut backlog = self.event_backlog.borrow_mut();
            if let Some(i) = backlog.iter().position(|t| matches(&ProxyEvent::parse(t))) {
                return ProxyEvent::parse(&backlog.remove(i).unwrap());
            }
        }
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out waiting for event: {what}; events not taken: {:?}",
                    self.event_backlog.borrow()
                );
            }
            if let Some(text) = self.recv_event_text(left) {
                let event = ProxyEvent::parse(&text);
                if matches(&event) {
                    return event;
                }
                self.event_backlog.borrow_mut().push_back(text);
            }
        }
    }

    /// Every event not yet taken, including those arriving within `quiet` of the last one.
    pub fn drain_events(&self, quiet: Duration) -> Vec<ProxyEvent> {
        let mut out: Vec<ProxyEvent> = self
            .event_backlog
            .borrow_mut()
            .drain(..)
            .map(|t| ProxyEvent::parse(&t))
            .collect();
        while let Some(text) = self.recv_event_text(quiet) {
            out.push(ProxyEvent::parse(&text));
        }
        out
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
    /// An owned string (a worker endpoint made at run time).
    String(String),
    /// A socket pointer (ZMQ_PROXY_STREAM_EVENTS): the value passed is a pointer to it.
    Ptr(usize),
}

impl OptValue {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            OptValue::Int(v) => v.to_ne_bytes().to_vec(),
            OptValue::I64(v) => v.to_ne_bytes().to_vec(),
            OptValue::Str(s) => s.as_bytes().to_vec(),
            OptValue::String(s) => s.as_bytes().to_vec(),
            OptValue::Ptr(p) => p.to_ne_bytes().to_vec(),
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

/// A thread that runs until its owner drops it: `body` gets the stop flag, looks at it
/// often and returns once it is set; dropping sets it and joins the thread.
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn spawn(body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        Background {
            stop,
            thread: Some(std::thread::spawn(move || body(flag))),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A worker: one ROUTER socket (a CURVE/PLAIN/NULL server) connected `connections` times
/// to the proxy's backend, echoing every message on its own thread until dropped.
pub struct Worker {
    /// Messages echoed.
    pub served: Arc<AtomicUsize>,
    /// The routing ids messages came from: one per connection, and a connection carries
    /// one session.
    pub sessions: Arc<Mutex<HashSet<Vec<u8>>>>,
    _thread: Background,
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
        let socket = bound::server_socket(ctx, &mech);
        configure(&socket);
        for _ in 0..connections {
            socket.connect(backend).unwrap();
        }
        let served = Arc::new(AtomicUsize::new(0));
        let sessions = Arc::new(Mutex::new(HashSet::new()));
        let (served2, sessions2) = (served.clone(), sessions.clone());
        let thread = Background::spawn(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                if socket.poll(zmq::POLLIN, 20).unwrap() == 0 {
                    continue;
                }
                let frames = socket.recv_multipart(0).unwrap();
                // Recorded before the echo: a client holding its reply was counted.
                sessions2.lock().unwrap().insert(frames[0].clone());
                socket.send_multipart(frames, 0).unwrap();
                served2.fetch_add(1, Ordering::Relaxed);
            }
        });
        Worker {
            served,
            sessions,
            _thread: thread,
        }
    }

    /// Sessions served so far (see `sessions`).
    pub fn sessions_served(&self) -> usize {
        self.sessions.lock().unwrap().len()
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
    client_with(ctx, frontend, mech, |_| {})
}

/// `client`, with `configure` called on the socket before it connects (options, a monitor).
/// An IPv6 endpoint ("tcp://[::1]:port") turns ZMQ_IPV6 on.
pub fn client_with(
    ctx: &zmq::Context,
    frontend: &str,
    mech: &Mechanism,
    configure: impl FnOnce(&zmq::Socket),
) -> zmq::Socket {
    let socket = ctx.socket(zmq::DEALER).unwrap();
    socket.set_linger(0).unwrap();
    if frontend.contains('[') {
        socket.set_ipv6(true).unwrap();
    }
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
    configure(&socket);
    socket.connect(frontend).unwrap();
    socket
}

/// A client socket with a socket monitor, and the local address of its first TCP
/// connection (what the proxy sees as the client's address:port). Use it as the socket.
///
/// The monitor must outlive the socket's activity: libzmq 4.3.4 sends monitor events with a
/// blocking send, so a monitor whose reading end is gone blocks the context's I/O thread at
/// the next event (every socket of that context stalls). Dropping this stops the monitor
/// first, then closes the socket, then the monitor's reading end.
pub struct MonitoredClient {
    // Field order is drop order: the socket before its monitor.
    pub socket: zmq::Socket,
    pub monitor: monitor::Monitor,
    pub addr: SocketAddr,
}

impl std::ops::Deref for MonitoredClient {
    type Target = zmq::Socket;
    fn deref(&self) -> &zmq::Socket {
        &self.socket
    }
}

impl Drop for MonitoredClient {
    fn drop(&mut self) {
        // SAFETY: the socket is live (closed only after this); NULL stops monitoring.
        unsafe {
            zmq_sys::zmq_socket_monitor(self.socket.as_mut_ptr(), std::ptr::null(), 0);
        }
    }
}

/// A client connected to `frontend` with a socket monitor (see `MonitoredClient`);
/// `configure` runs before it connects.
pub fn monitored_client(
    ctx: &zmq::Context,
    frontend: &str,
    mech: &Mechanism,
    configure: impl FnOnce(&zmq::Socket),
) -> MonitoredClient {
    let mut mon = None;
    let socket = client_with(ctx, frontend, mech, |s| {
        configure(s);
        mon = Some(monitor::Monitor::attach(ctx, s));
    });
    let monitor = mon.unwrap();
    let addr = monitor.wait_connected_addr(DEADLINE);
    MonitoredClient {
        socket,
        monitor,
        addr,
    }
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
