//! zmq-proxy-stream: the broker command (man/zmq-proxy-stream.1.scd).
//!
//! Threads and sockets (libzmq sockets are each used by one thread only):
//! - main: binds the frontend and backend (STREAM), the control socket (REP, at a private
//!   inproc endpoint and at --control) and the events socket (PUSH, inproc), then runs the
//!   proxy on them with the library's handle until TERMINATE.
//! - signals: SIGINT/SIGTERM are blocked in every thread and taken by this one with
//!   sigwait(); it sends TERMINATE over a REQ socket of its own to the control socket.
//! - access log: a PULL socket of its own receives the events, prints them on stdout and,
//!   with --events, publishes them on a PUB socket it owns.
//! - metrics (--metrics): a std HTTP server; each scrape asks STREAMSTATS and STATISTICS
//!   over a REQ socket of its own to the control socket.
//!
//! Exit status: 0 after TERMINATE, 1 when the proxy failed, 2 for bad flags, a bad config
//! file or option value, or an endpoint that cannot be bound (one line on stderr).

mod access_log;
mod cli;
mod metrics;

use std::ffi::c_void;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::raw::c_int;
use std::os::unix::thread::JoinHandleExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use zmq_proxy_stream::ffi;

const NAME: &str = "zmq-proxy-stream";
/// How long closing the control socket may take to deliver TERMINATE's reply.
const CONTROL_LINGER_MS: i32 = 1000;

/// A setup error: one line on stderr, exit 2.
struct Fatal(String);

impl<E: std::fmt::Display> From<(&str, E)> for Fatal {
    fn from((what, e): (&str, E)) -> Fatal {
        Fatal(format!("{what}: {e}"))
    }
}

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        cli::Parsed::Run(cli) => cli,
        cli::Parsed::Print(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        cli::Parsed::Error(line) => {
            eprintln!("{NAME}: {line}");
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(Fatal(line)) => {
            eprintln!("{NAME}: {line}");
            ExitCode::from(2)
        }
    }
}

/// The library's handle: options set through the C API, released on drop.
struct Handle(*mut ffi::zmq_proxy_stream_t);

impl Handle {
    fn new() -> Result<Handle, Fatal> {
        let handle = ffi::zmq_proxy_stream_new();
        if handle.is_null() {
            return Err(Fatal("zmq_proxy_stream_new failed".to_owned()));
        }
        Ok(Handle(handle))
    }

    fn set(&mut self, option: &cli::LibOption) -> Result<(), Fatal> {
        // SAFETY: a live handle from zmq_proxy_stream_new, and `value` holds `len` bytes.
        let rc = unsafe {
            ffi::zmq_proxy_stream_setopt(
                self.0,
                option.option,
                option.value.as_ptr() as *const c_void,
                option.value.len(),
            )
        };
        if rc != 0 {
            return Err(Fatal(format!(
                "{} {}: refused ({})",
                option.flag,
                option.text,
                last_error()
            )));
        }
        Ok(())
    }

    fn set_events(&mut self, socket: *mut c_void) -> Result<(), Fatal> {
        let value = socket as usize;
        // SAFETY: a live handle; the value is a pointer-sized socket address, as the option
        // requires.
        let rc = unsafe {
            ffi::zmq_proxy_stream_setopt(
                self.0,
                zmq_proxy_stream::api::ZMQ_PROXY_STREAM_EVENTS,
                &value as *const usize as *const c_void,
                std::mem::size_of::<usize>(),
            )
        };
        if rc != 0 {
            return Err(("events socket", last_error()).into());
        }
        Ok(())
    }

    /// Runs the proxy until TERMINATE: Ok, or Err with the errno's message.
    fn run(
        &self,
        f: &mut zmq::Socket,
        b: &mut zmq::Socket,
        c: &mut zmq::Socket,
    ) -> Result<(), String> {
        // SAFETY: a live handle and three live sockets of this thread, which stay open for
        // the whole call; the library never closes them.
        let rc = unsafe {
            ffi::zmq_proxy_stream_run(self.0, f.as_mut_ptr(), b.as_mut_ptr(), c.as_mut_ptr())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(last_error())
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from zmq_proxy_stream_new and is released once.
        unsafe { ffi::zmq_proxy_stream_destroy(&mut self.0) };
    }
}

/// errno's message, without std's " (os error N)".
fn last_error() -> String {
    let text = std::io::Error::last_os_error().to_string();
    match text.split_once(" (os error") {
        Some((message, _)) => message.to_owned(),
        None => text,
    }
}

fn socket(ctx: &zmq::Context, kind: zmq::SocketType, what: &str) -> Result<zmq::Socket, Fatal> {
    let s = ctx.socket(kind).map_err(|e| Fatal::from((what, e)))?;
    s.set_linger(0).map_err(|e| Fatal::from((what, e)))?;
    Ok(s)
}

/// Binds and returns the endpoint really bound (a TCP port of * resolved).
fn bind(s: &zmq::Socket, what: &str, endpoint: &str) -> Result<String, Fatal> {
    s.bind(endpoint)
        .map_err(|e| Fatal(format!("cannot bind {what} to {endpoint}: {e}")))?;
    Ok(s.get_last_endpoint()
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| endpoint.to_owned()))
}

/// The signals that stop the command, and SIGUSR1 (main's "stop waiting").
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// The signal thread: SIGINT/SIGTERM send TERMINATE (once it was answered, later signals
/// are ignored: `timeout`(1) and process-group kills may deliver the same stop twice);
/// SIGUSR1 with `done` set ends the thread.
fn signal_thread(ctx: zmq::Context, control: String, done: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let set = stop_signals();
        let mut terminated = false;
        // Made now, not when the signal comes: a socket costs a descriptor (its mailbox),
        // and a broker stopped because it ran out of them must still be able to stop.
        // REQ_RELAXED: after a TERMINATE that got no reply, the next signal can send again.
        let open = || -> zmq::Result<zmq::Socket> {
            let req = ctx.socket(zmq::REQ)?;
            req.set_linger(0)?;
            req.set_rcvtimeo(2000)?;
            req.set_req_relaxed(true)?;
            req.connect(&control)?;
            Ok(req)
        };
        let mut req = open();
        loop {
            let mut sig: c_int = 0;
            // SAFETY: a valid, initialised signal set and a place for the signal number.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            if sig == libc::SIGUSR1 {
                if done.load(Ordering::Acquire) {
                    return;
                }
                continue;
            }
            if terminated || done.load(Ordering::Acquire) {
                continue;
            }
            eprintln!("{NAME}: signal {sig}, terminating");
            if req.is_err() {
                req = open();
            }
            let terminate = |req: &zmq::Result<zmq::Socket>| -> zmq::Result<()> {
                let req = req.as_ref().map_err(|e| *e)?;
                req.send("TERMINATE", 0)?;
                req.recv_bytes(0).map(drop)
            };
            match terminate(&req) {
                Ok(()) => terminated = true,
                Err(e) => eprintln!("{NAME}: TERMINATE: {e} (a further signal tries again)"),
            }
        }
    })
}

/// The access-log thread: prints each event from `pull` and republishes it on `publish`,
/// until a frame arrives on `stop`; then prints what is still queued and returns.
fn access_log_thread(
    pull: zmq::Socket,
    stop: zmq::Socket,
    publish: Option<zmq::Socket>,
    print: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let out = std::io::stdout();
        let handle = |frame: Vec<u8>| {
            if print {
                let mut out = out.lock();
                let _ = writeln!(
                    out,
                    "{}",
                    access_log::line(&access_log::timestamp_now(), &frame)
                );
                let _ = out.flush();
            }
            if let Some(publish) = &publish {
                // A PUB never blocks: what a slow subscriber cannot take is dropped.
                let _ = publish.send(frame, zmq::DONTWAIT);
            }
        };
        loop {
            let mut items = [
                pull.as_poll_item(zmq::POLLIN),
                stop.as_poll_item(zmq::POLLIN),
            ];
            if zmq::poll(&mut items, -1).is_err() {
                break;
            }
            let stopping = items[1].is_readable();
            while let Ok(frame) = pull.recv_bytes(zmq::DONTWAIT) {
                handle(frame);
            }
            if stopping {
                break;
            }
        }
    })
}

/// Where a self-connection reaches `addr` (a wildcard address is reached on loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

fn run(cli: &cli::Cli) -> Result<ExitCode, Fatal> {
    let frontend_ep = cli
        .frontend
        .as_deref()
        .ok_or_else(|| Fatal("--frontend EP is required (or frontend in --config)".to_owned()))?;
    let dial_out = !cli.worker_endpoint.is_empty();
    match (&cli.backend, dial_out) {
        (None, false) => {
            return Err(Fatal(
                "give --backend EP (dial-in) or --worker-endpoint EP (dial-out)".to_owned(),
            ))
        }
        (Some(_), true) => {
            return Err(Fatal(
                "--backend and --worker-endpoint exclude each other (dial-in or dial-out)"
                    .to_owned(),
            ))
        }
        _ => {}
    }

    // The options first: a bad value stops us before anything is bound.
    let mut handle = Handle::new()?;
    for option in cli.lib_options() {
        handle.set(&option)?;
    }
    let metrics_listener = match &cli.metrics {
        Some(addr) => {
            let listener = TcpListener::bind(addr.as_str())
                .map_err(|e| Fatal(format!("cannot listen for --metrics on {addr}: {e}")))?;
            let bound = listener
                .local_addr()
                .map_err(|e| Fatal::from(("--metrics", e)))?;
            Some((listener, bound))
        }
        None => None,
    };

    // Block the stop signals before any thread exists: every thread, libzmq's included,
    // inherits the mask, and only the signal thread's sigwait() takes them.
    let set = stop_signals();
    // SAFETY: a valid signal set; the old mask is not needed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };

    let ctx = zmq::Context::new();
    let pid = std::process::id();
    let control_inproc = format!("inproc://zmq-proxy-stream-control-{pid}");
    let events_inproc = format!("inproc://zmq-proxy-stream-events-{pid}");
    let stop_inproc = format!("inproc://zmq-proxy-stream-log-stop-{pid}");

    let mut frontend = socket(&ctx, zmq::STREAM, "frontend")?;
    let mut backend = socket(&ctx, zmq::STREAM, "backend")?;
    // HWMs before bind: libzmq applies them to later binds and connects only.
    for s in [&frontend, &backend] {
        if let Some(n) = cli.sndhwm {
            s.set_sndhwm(n).map_err(|e| Fatal::from(("--sndhwm", e)))?;
        }
        if let Some(n) = cli.rcvhwm {
            s.set_rcvhwm(n).map_err(|e| Fatal::from(("--rcvhwm", e)))?;
        }
    }
    let mut control = socket(&ctx, zmq::REP, "control")?;
    control
        .set_linger(CONTROL_LINGER_MS)
        .map_err(|e| Fatal::from(("control", e)))?;
    bind(&control, "control", &control_inproc)?;
    let frontend_bound = bind(&frontend, "frontend", frontend_ep)?;
    let backend_bound = match &cli.backend {
        Some(ep) => bind(&backend, "backend", ep)?,
        None => "dial-out".to_owned(),
    };
    let control_bound = match &cli.control {
        Some(ep) => bind(&control, "control", ep)?,
        None => control_inproc.clone(),
    };

    // Events: the proxy PUSHes them to the access-log thread, which prints them and
    // republishes them on --events. Every fallible step comes before the thread starts: an
    // error return with the thread's sockets open would leave the context's end waiting.
    let print = !cli.no_access_log;
    let mut events_line = String::new();
    let mut log_thread = None;
    let mut stop_sender = None;
    let events_push = if print || cli.events.is_some() {
        let mut push = socket(&ctx, zmq::PUSH, "events")?;
        bind(&push, "events", &events_inproc)?;
        // The socket stays ours; the proxy uses it on this thread, during the run only.
        handle.set_events(push.as_mut_ptr())?;
        let pull = socket(&ctx, zmq::PULL, "access log")?;
        pull.connect(&events_inproc)
            .map_err(|e| Fatal::from(("access log", e)))?;
        let publish = match &cli.events {
            Some(ep) => {
                let publish = socket(&ctx, zmq::PUB, "events")?;
                events_line = format!(" events={}", bind(&publish, "events", ep)?);
                Some(publish)
            }
            None => None,
        };
        let stop = socket(&ctx, zmq::PAIR, "access log")?;
        bind(&stop, "access log", &stop_inproc)?;
        let sender = socket(&ctx, zmq::PAIR, "access log")?;
        sender
            .connect(&stop_inproc)
            .map_err(|e| Fatal::from(("access log", e)))?;
        stop_sender = Some(sender);
        log_thread = Some(access_log_thread(pull, stop, publish, print));
        Some(push)
    } else {
        None
    };
    let done = Arc::new(AtomicBool::new(false));
    let signals = signal_thread(ctx.clone(), control_inproc.clone(), done.clone());
    let mut metrics_line = String::new();
    let metrics_thread = match metrics_listener {
        Some((listener, addr)) => {
            metrics_line = format!(" metrics={addr}");
            let server = metrics::Server {
                listener,
                ctx: ctx.clone(),
                control: control_inproc.clone(),
                stop: done.clone(),
            };
            Some((std::thread::spawn(move || server.run()), addr))
        }
        None => None,
    };

    let (major, minor, patch) = zmq::version();
    let workers = if dial_out {
        format!(" workers={}", cli.worker_endpoint.join(","))
    } else {
        String::new()
    };
    eprintln!(
        "{NAME}: listening frontend={frontend_bound} backend={backend_bound} \
         control={control_bound}{events_line}{metrics_line}{workers} \
         (libzmq {major}.{minor}.{patch}, pid {pid})"
    );

    let result = handle.run(&mut frontend, &mut backend, &mut control);
    drop(handle);

    // Stop the threads, so that every socket is closed before the context ends.
    done.store(true, Ordering::Release);
    if let Some(sender) = stop_sender {
        let _ = sender.send("", 0);
        if let Some(t) = log_thread {
            let _ = t.join();
        }
    }
    if let Some((thread, addr)) = metrics_thread {
        // The server only looks at `done` when a connection arrives: make one.
        let _ = TcpStream::connect(wake_address(addr));
        let _ = thread.join();
    }
    // SAFETY: the signal thread has not been joined, so its pthread_t is live.
    unsafe { libc::pthread_kill(signals.as_pthread_t(), libc::SIGUSR1) };
    let _ = signals.join();
    drop((frontend, backend, control, events_push));
    drop(ctx);

    match result {
        Ok(()) => {
            eprintln!("{NAME}: terminated");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{NAME}: the proxy failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
