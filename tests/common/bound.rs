//! Worker-side peers for dial-out (a bound ROUTER worker, an endpoint that accepts and stays
//! silent, a refused endpoint) and a dial-in worker that replaces the connections libzmq ends
//! for good after a handshake protocol error.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::monitor::{local_addr_of_fd, Monitor};
use super::{endpoint_of, start_zap_handler, Background, Mechanism};

/// Counters a worker thread keeps, readable from the test.
#[derive(Default, Debug)]
pub struct WorkerCounts {
    /// Messages received and echoed (counted before the echo is sent).
    pub served: AtomicUsize,
    /// Connections accepted (bound) or established (connected).
    pub connections: AtomicUsize,
    pub handshakes_ok: AtomicUsize,
    /// HANDSHAKE_FAILED_PROTOCOL and HANDSHAKE_FAILED_AUTH seen on the monitor.
    pub handshakes_failed: AtomicUsize,
    /// Connections the worker made again after a failed handshake (RecoveringWorker).
    pub replaced: AtomicUsize,
    /// The local address of each connection made (dial-in: the address:port the proxy
    /// sees), in order.
    pub local_addrs: Mutex<Vec<SocketAddr>>,
}

impl WorkerCounts {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// A ROUTER server socket for `mech` (linger 0, ZMQ_IMMEDIATE as the worker rules ask).
pub fn server_socket(ctx: &zmq::Context, mech: &Mechanism) -> zmq::Socket {
    let socket = ctx.socket(zmq::ROUTER).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_immediate(true).unwrap();
    match mech {
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
    socket
}

/// The echo loop shared by the workers here: echoes every message on `socket`, and hands
/// every monitor event to `on_event`, until `stop`.
fn echo_loop(
    socket: zmq::Socket,
    monitor: Monitor,
    stop: Arc<AtomicBool>,
    counts: Arc<WorkerCounts>,
    mut on_event: impl FnMut(&zmq::Socket, zmq::SocketEvent),
) {
    while !stop.load(Ordering::Relaxed) {
        let mut items = [
            socket.as_poll_item(zmq::POLLIN),
            monitor.pair.as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, 20).unwrap();
        let (data, events) = (items[0].is_readable(), items[1].is_readable());
        if events {
            while let Some((event, value)) = monitor.next(Duration::ZERO) {
                match event {
                    zmq::SocketEvent::ACCEPTED => {
                        counts.connections.fetch_add(1, Ordering::SeqCst);
                    }
                    zmq::SocketEvent::CONNECTED => {
                        // Before counting it, so that a test that saw the count sees it. A
                        // connection that is already gone again has no address to record.
                        if let Some(addr) = local_addr_of_fd(value as i32) {
                            counts.local_addrs.lock().unwrap().push(addr);
                        }
                        counts.connections.fetch_add(1, Ordering::SeqCst);
                    }
                    zmq::SocketEvent::HANDSHAKE_SUCCEEDED => {
                        counts.handshakes_ok.fetch_add(1, Ordering::SeqCst);
                    }
                    zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
                    | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH => {
                        counts.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                on_event(&socket, event);
            }
        }
        if data {
            while let Ok(frames) = socket.recv_multipart(zmq::DONTWAIT) {
                // Counted before the echo leaves, so that a client holding its reply sees
                // the count.
                counts.served.fetch_add(1, Ordering::SeqCst);
                // A ROUTER drops a reply to a peer that left: never blocks.
                socket.send_multipart(frames, 0).unwrap();
            }
        }
    }
    // Stop the monitor before closing the socket: a socket closed while its monitor's peer
    // is already gone may keep its connections open (seen with libzmq 4.3.4).
    let mut socket = socket;
    // SAFETY: `socket` is live; a NULL endpoint stops monitoring.
    unsafe {
        zmq_sys::zmq_socket_monitor(socket.as_mut_ptr(), std::ptr::null(), 0);
    }
    // Closed now (linger 0): every connection of this worker ends at once.
    drop(socket);
    drop(monitor);
}

/// A dial-out worker: a ROUTER server (CURVE, PLAIN or NULL) bound on tcp://127.0.0.1:0,
/// echoing every message on its own thread. Dropping it kills it: its socket is closed and
/// every connection to it ends.
pub struct BoundWorker {
    pub endpoint: String,
    pub counts: Arc<WorkerCounts>,
    _thread: Background,
}

impl BoundWorker {
    pub fn start(ctx: &zmq::Context, mech: &Mechanism) -> BoundWorker {
        BoundWorker::start_at(ctx, mech, "tcp://127.0.0.1:0")
    }

    /// The same, bound at `endpoint` (e.g. an ipc:// path).
    pub fn start_at(ctx: &zmq::Context, mech: &Mechanism, endpoint: &str) -> BoundWorker {
        BoundWorker::start_configured(ctx, mech, endpoint, |_| {})
    }

    /// The same, with `configure` called on the socket before it binds (a ZAP domain, a
    /// routing id).
    pub fn start_configured(
        ctx: &zmq::Context,
        mech: &Mechanism,
        endpoint: &str,
        configure: impl FnOnce(&zmq::Socket),
    ) -> BoundWorker {
        let socket = server_socket(ctx, mech);
        configure(&socket);
        let monitor = Monitor::attach(ctx, &socket);
        socket.bind(endpoint).unwrap();
        let endpoint = endpoint_of(&socket);
        let counts = Arc::new(WorkerCounts::default());
        let counts2 = counts.clone();
        let thread =
            Background::spawn(move |stop| echo_loop(socket, monitor, stop, counts2, |_, _| {}));
        BoundWorker {
            endpoint,
            counts,
            _thread: thread,
        }
    }

    pub fn served(&self) -> usize {
        self.counts.served.load(Ordering::SeqCst)
    }

    /// Kills the worker now (same as dropping it).
    pub fn kill(self) {}
}

/// A dial-in worker like `Worker`, with the recovery the README asks of worker authors:
/// it watches its socket monitor and, on HANDSHAKE_FAILED_PROTOCOL or _AUTH (after which
/// libzmq never reconnects that connection), calls zmq_connect() again to keep its slots.
pub struct RecoveringWorker {
    pub counts: Arc<WorkerCounts>,
    _thread: Background,
}

impl RecoveringWorker {
    pub fn start(
        ctx: &zmq::Context,
        backend: &str,
        mech: &Mechanism,
        connections: usize,
    ) -> RecoveringWorker {
        RecoveringWorker::start_configured(ctx, backend, mech, connections, |_| {})
    }

    /// The same, with `configure` called on the socket before it connects.
    pub fn start_configured(
        ctx: &zmq::Context,
        backend: &str,
        mech: &Mechanism,
        connections: usize,
        configure: impl FnOnce(&zmq::Socket),
    ) -> RecoveringWorker {
        let socket = server_socket(ctx, mech);
        configure(&socket);
        // Before the first connect, so that no event is missed.
        let monitor = Monitor::attach(ctx, &socket);
        for _ in 0..connections {
            socket.connect(backend).unwrap();
        }
        let counts = Arc::new(WorkerCounts::default());
        let counts2 = counts.clone();
        let backend = backend.to_owned();
        let thread = Background::spawn(move |stop| {
            let replaced = counts2.clone();
            echo_loop(socket, monitor, stop, counts2, move |socket, event| {
                if matches!(
                    event,
                    zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
                        | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH
                ) {
                    socket.connect(&backend).unwrap();
                    replaced.replaced.fetch_add(1, Ordering::SeqCst);
                }
            })
        });
        RecoveringWorker {
            counts,
            _thread: thread,
        }
    }
}

/// A TCP endpoint that accepts connections and never sends a byte (a hung worker host):
/// it holds every connection until dropped, and counts those it accepted.
pub struct SilentListener {
    pub endpoint: String,
    pub accepted: Arc<AtomicUsize>,
    _thread: Background,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let accepted2 = accepted.clone();
        let thread = Background::spawn(move |stop| {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        held.push(s);
                        accepted2.fetch_add(1, Ordering::SeqCst);
                    }
                    // Nothing to accept: look again shortly (this is the listener's own
                    // loop, not a test waiting for a condition).
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentListener {
            endpoint,
            accepted,
            _thread: thread,
        }
    }
}

/// A tcp:// endpoint on 127.0.0.1 where nothing listens (connections are refused): a port
/// the kernel gave a listener that is closed again.
pub fn refused_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("tcp://{addr}")
}
