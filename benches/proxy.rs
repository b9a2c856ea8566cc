//! Side-by-side benchmark of `zmq_proxy_stream` against what a broker author runs today.
//!
//! ```text
//! cargo bench --bench proxy -- [--quick | --smoke] [--json PATH] [--rounds N]
//!                                [--stat median|best] [--arms LIST]
//! ```
//!
//! Every arm is a CURVE DEALER client talking to a ROUTER worker over TCP on 127.0.0.1:
//! - `direct`: the client connects straight to a CURVE ROUTER worker (no broker: the limit);
//! - `stream`: through `zmq_proxy_stream` on a thread of this process, CURVE end to end; the
//!   worker is a CURVE ROUTER connected many times to the proxy's backend (one slot each);
//! - `steerable`: through libzmq's `zmq_proxy_steerable` on a thread of this process with a CURVE
//!   ROUTER frontend (CURVE ends at the broker), a DEALER backend and a NULL ROUTER worker;
//! - `haproxy`: through HAProxy in TCP mode (a child process) in front of a CURVE ROUTER worker,
//!   when `haproxy` is on PATH; skipped with a note otherwise.
//!
//! Clients, each worker and each in-process proxy have their own libzmq context (so their own
//! I/O thread), as separate processes would. Arms are interleaved: every round runs each case
//! on every arm before the next case, starting each round with a different arm.
//!
//! What is measured (BENCHMARKS.md has the long form):
//! - throughput: each client streams its share of N messages one way to the worker, which
//!   counts them and acknowledges the last one (as libzmq's local_thr/remote_thr); time from
//!   the first send to the last acknowledgement; median over rounds. Clients keep at most 1 MiB
//!   unacknowledged (the worker returns a credit every 256 KiB); two extra rows stream 8 KiB
//!   and 64 KiB messages with no flow control at all, exactly like local_thr;
//! - latency: one client, request/reply echo, round-trip time, p50/p99 (hdrhistogram);
//! - set-up: a fresh client socket, from `zmq_connect` to the echo of its first request;
//! - the broker's CPU per GB of payload relayed during the throughput runs: the proxy thread
//!   plus its context's libzmq threads (in-process proxies), or all of haproxy's threads;
//! - memory per idle pair: RSS growth of a broker process (this executable run again as a
//!   child, or haproxy) holding N established idle sessions, divided by N, with a plain
//!   ZMQ_STREAM baseline (the same connections, no proxy) for the proxy's own share.
//!
//! The same file is compiled into `tests/bench_smoke.rs`, which calls [`run_cli`] in `--smoke`
//! mode; the memory children re-run the current executable with [`CHILD_ENV`] set.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// All arms, in table order.
const ARMS: [&str; 4] = ["direct", "stream", "steerable", "haproxy"];
const SIZES: [usize; 4] = [64, 1024, 8192, 65536];
const CLIENT_COUNTS: [usize; 2] = [1, 16];
const LATENCY_SIZES: [usize; 2] = [64, 8192];
/// Sizes also streamed without flow control, with one client.
const UNBOUNDED_SIZES: [usize; 2] = [8192, 65536];

/// First payload byte: what the worker does with the message.
const TAG_COUNT: u8 = b'C';
const TAG_LAST: u8 = b'L';
const TAG_ECHO: u8 = b'E';
const TAG_CREDIT: u8 = b'K';
const ACK: &[u8] = b"ACK";
const CREDIT: &[u8] = b"K";

/// Set in the environment of a memory child: which broker it runs.
pub const CHILD_ENV: &str = "STREAMQ_BENCH_CHILD";
const CHILD_SECRET_ENV: &str = "STREAMQ_BENCH_CURVE_SECRET";
const CHILD_MARKER: &str = "STREAMQ-BENCH-CHILD-READY";
/// Arguments of a memory child. The benchmark binary ignores them; the smoke test's binary
/// (libtest) needs them to run only its child entry point, `mem_child_entry`.
const CHILD_ARGS: [&str; 5] = [
    "--ignored",
    "--exact",
    "mem_child_entry",
    "--nocapture",
    "--test-threads=1",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
        }
    }
}

/// How much of everything a mode does.
#[derive(Clone, Debug)]
struct Plan {
    rounds: usize,
    /// Messages of one throughput case, by size (split evenly over the clients).
    tput_msgs: [usize; 4],
    latency_warmup: usize,
    latency_iters: usize,
    setup_iters: usize,
    /// Connections the stream arm's worker makes to the proxy's backend.
    stream_slots: usize,
    mem_pairs: usize,
    deadline: Duration,
}

impl Plan {
    fn new(mode: Mode) -> Plan {
        match mode {
            Mode::Full => Plan {
                rounds: 5,
                tput_msgs: [150_000, 80_000, 16_000, 3_000],
                latency_warmup: 200,
                latency_iters: 2_000,
                setup_iters: 50,
                stream_slots: 160,
                mem_pairs: 1_000,
                deadline: Duration::from_secs(120),
            },
            Mode::Quick => Plan {
                rounds: 1,
                tput_msgs: [40_000, 20_000, 4_000, 800],
                latency_warmup: 100,
                latency_iters: 1_000,
                setup_iters: 30,
                stream_slots: 96,
                mem_pairs: 300,
                deadline: Duration::from_secs(60),
            },
            Mode::Smoke => Plan {
                rounds: 1,
                tput_msgs: [2_000, 1_000, 320, 64],
                latency_warmup: 10,
                latency_iters: 100,
                setup_iters: 5,
                stream_slots: 40,
                mem_pairs: 50,
                deadline: Duration::from_secs(30),
            },
        }
    }
}

#[derive(Debug)]
struct Opts {
    mode: Mode,
    stat: Stat,
    json: PathBuf,
    rounds: Option<usize>,
    arms: Vec<&'static str>,
}

const USAGE: &str = "usage: cargo bench --bench proxy -- [--quick | --smoke] [--json PATH] \
[--rounds N] [--stat median|best] [--arms direct,stream,steerable,haproxy]";

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        mode: Mode::Full,
        stat: Stat::Median,
        json: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-proxy.json"),
        rounds: None,
        arms: ARMS.to_vec(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.mode = Mode::Quick,
            "--smoke" => opts.mode = Mode::Smoke,
            "--full" => opts.mode = Mode::Full,
            // cargo bench adds --bench to every harness = false benchmark.
            "--bench" => {}
            "--stat" => {
                opts.stat = match it.next().map(String::as_str) {
                    Some("median") => Stat::Median,
                    Some("best") => Stat::Best,
                    other => return Err(format!("--stat median|best, not {other:?}")),
                };
            }
            "--json" => {
                let path = it.next().ok_or("--json needs a path")?;
                opts.json = PathBuf::from(path);
            }
            "--rounds" => {
                let n = it.next().ok_or("--rounds needs a number")?;
                let n: usize = n.parse().map_err(|_| format!("bad --rounds {n}"))?;
                opts.rounds = Some(n.max(1));
            }
            "--arms" => {
                let list = it.next().ok_or("--arms needs a list")?;
                let mut arms = Vec::new();
                for name in list.split(',').filter(|s| !s.is_empty()) {
                    let arm = ARMS
                        .iter()
                        .find(|a| **a == name)
                        .ok_or_else(|| format!("unknown arm {name}; arms: {}", ARMS.join(",")))?;
                    arms.push(*arm);
                }
                // Table order, whatever the order given.
                opts.arms = ARMS.iter().copied().filter(|a| arms.contains(a)).collect();
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------------------------
// libzmq contexts with options the zmq crate does not expose

/// A libzmq context made with zmq-sys, for the options zmq 0.9.2 cannot set (thread name
/// prefix, socket limit). Its sockets do not keep it alive: close them before dropping it.
struct RawCtx(*mut c_void);

// SAFETY: libzmq contexts are thread-safe.
unsafe impl Send for RawCtx {}
// SAFETY: as above.
unsafe impl Sync for RawCtx {}

impl RawCtx {
    fn new(
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

    fn socket(&self, kind: u32) -> Result<zmq::Socket, String> {
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

fn zerr(what: &str) -> impl Fn(zmq::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn endpoint_of(socket: &zmq::Socket) -> Result<String, String> {
    socket
        .get_last_endpoint()
        .map_err(zerr("last endpoint"))?
        .map_err(|_| "endpoint is not UTF-8".to_string())
}

// ---------------------------------------------------------------------------------------------
// CPU time of threads and processes

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// CPU time a thread has used, in ns: schedstat when the kernel has it, else utime + stime.
fn task_cpu_ns(pid: &str, tid: i32) -> u64 {
    let base = format!("/proc/{pid}/task/{tid}");
    if let Ok(s) = std::fs::read_to_string(format!("{base}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return ns;
        }
    }
    let Ok(stat) = std::fs::read_to_string(format!("{base}/stat")) else {
        return 0;
    };
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

fn tasks_of(pid: &str) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Where a broker's CPU time is read.
#[derive(Clone, Debug)]
enum CpuProbe {
    /// A proxy on a thread of this process: that thread plus its context's libzmq threads.
    Threads { proxy_tid: i32, zmq_tids: Vec<i32> },
    /// A proxy process: all its threads.
    Process { pid: u32 },
}

#[derive(Clone, Copy, Debug, Default)]
struct CpuSample {
    /// The broker: proxy thread + libzmq I/O threads, or the whole process.
    total_ns: u64,
    /// The proxy thread alone (the whole process for haproxy).
    proxy_thread_ns: u64,
}

impl CpuSample {
    fn since(self, earlier: CpuSample) -> CpuSample {
        CpuSample {
            total_ns: self.total_ns.saturating_sub(earlier.total_ns),
            proxy_thread_ns: self.proxy_thread_ns.saturating_sub(earlier.proxy_thread_ns),
        }
    }
}

impl CpuProbe {
    fn sample(&self) -> CpuSample {
        match self {
            CpuProbe::Threads {
                proxy_tid,
                zmq_tids,
            } => {
                let proxy = task_cpu_ns("self", *proxy_tid);
                let io: u64 = zmq_tids.iter().map(|t| task_cpu_ns("self", *t)).sum();
                CpuSample {
                    total_ns: proxy + io,
                    proxy_thread_ns: proxy,
                }
            }
            CpuProbe::Process { pid } => {
                let pid = pid.to_string();
                let total = tasks_of(&pid).iter().map(|t| task_cpu_ns(&pid, *t)).sum();
                CpuSample {
                    total_ns: total,
                    proxy_thread_ns: total,
                }
            }
        }
    }
}

/// Each in-process proxy context gets its own thread name prefix, so that its libzmq threads
/// ("<prefix>/ZMQbg/IO/0", "<prefix>/ZMQbg/Reaper") can be found in /proc/self/task.
static NEXT_PREFIX: AtomicI32 = AtomicI32::new(70);

fn zmq_threads_with_prefix(prefix: i32) -> Vec<i32> {
    let want = format!("{prefix}/ZMQbg");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found: Vec<i32> = tasks_of("self")
            .into_iter()
            .filter(|tid| {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                    .is_ok_and(|c| c.trim_end().starts_with(&want))
            })
            .collect();
        // The I/O thread and the reaper name themselves once they run.
        if found.len() >= 2 || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Workers and clients

/// A ROUTER worker on its own thread: counts every message, echoes those tagged E, returns
/// a credit for those tagged K and acknowledges those tagged L.
struct Worker {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(socket: zmq::Socket) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), received.clone());
        let thread = std::thread::Builder::new()
            .name("bench-worker".into())
            .spawn(move || serve(&socket, &s, &r))
            .expect("spawn worker thread");
        Worker {
            stop,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &zmq::Socket, stop: &AtomicBool, received: &AtomicU64) {
    let mut frames: Vec<zmq::Message> = Vec::with_capacity(4);
    while !stop.load(Ordering::Relaxed) {
        match socket.poll(zmq::POLLIN, 50) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        loop {
            frames.clear();
            let mut first = zmq::Message::new();
            match socket.recv(&mut first, zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) => break,
                Err(_) => return,
            }
            let mut more = first.get_more();
            frames.push(first);
            while more {
                let mut part = zmq::Message::new();
                if socket.recv(&mut part, 0).is_err() {
                    return;
                }
                more = part.get_more();
                frames.push(part);
            }
            received.fetch_add(1, Ordering::SeqCst);
            // [routing id(s)...][payload]: a ROUTER worker behind a DEALER backend also gets
            // the broker's client id; the reply goes back with the whole envelope.
            let envelope = frames.len() - 1;
            match frames[envelope].first().copied() {
                Some(TAG_ECHO) => {
                    for (i, frame) in frames.drain(..).enumerate() {
                        let flags = if i < envelope { zmq::SNDMORE } else { 0 };
                        let _ = socket.send(frame, flags);
                    }
                }
                Some(tag @ (TAG_LAST | TAG_CREDIT)) => {
                    for frame in frames.drain(..envelope) {
                        let _ = socket.send(frame, zmq::SNDMORE);
                    }
                    let _ = socket.send(if tag == TAG_LAST { ACK } else { CREDIT }, 0);
                }
                _ => {}
            }
        }
    }
}

fn curve_worker_socket(
    ctx: &zmq::Context,
    keys: &zmq::CurveKeyPair,
) -> Result<zmq::Socket, String> {
    let s = ctx.socket(zmq::ROUTER).map_err(zerr("worker socket"))?;
    s.set_linger(0).map_err(zerr("linger"))?;
    s.set_curve_server(true).map_err(zerr("curve server"))?;
    s.set_curve_secretkey(&keys.secret_key)
        .map_err(zerr("curve secret"))?;
    Ok(s)
}

/// Client receive timeout: no single reply of this benchmark takes that long.
const CLIENT_RCVTIMEO_MS: i32 = 10_000;

fn configure_client(
    s: &zmq::Socket,
    server_public: &[u8; 32],
    me: &zmq::CurveKeyPair,
) -> Result<(), String> {
    s.set_linger(0).map_err(zerr("linger"))?;
    s.set_rcvtimeo(CLIENT_RCVTIMEO_MS)
        .map_err(zerr("rcvtimeo"))?;
    s.set_curve_serverkey(server_public)
        .map_err(zerr("curve serverkey"))?;
    s.set_curve_publickey(&me.public_key)
        .map_err(zerr("curve publickey"))?;
    s.set_curve_secretkey(&me.secret_key)
        .map_err(zerr("curve secretkey"))?;
    Ok(())
}

fn ping_payload() -> Vec<u8> {
    let mut p = vec![0x5a; 16];
    p[0] = TAG_ECHO;
    p
}

/// Sends one echo request on every client and waits for all the replies.
fn ping_all(clients: &[zmq::Socket], deadline: Duration) -> Result<(), String> {
    let ping = ping_payload();
    for c in clients {
        c.send(&ping[..], 0).map_err(zerr("ping send"))?;
    }
    let end = Instant::now() + deadline;
    let mut answered = vec![false; clients.len()];
    let mut left = clients.len();
    let mut msg = zmq::Message::new();
    while left > 0 {
        if Instant::now() > end {
            return Err(format!(
                "{left} of {} clients got no echo within {deadline:?}",
                clients.len()
            ));
        }
        let pending: Vec<usize> = (0..clients.len()).filter(|i| !answered[*i]).collect();
        let mut items: Vec<zmq::PollItem> = pending
            .iter()
            .map(|i| clients[*i].as_poll_item(zmq::POLLIN))
            .collect();
        zmq::poll(&mut items, 100).map_err(zerr("poll"))?;
        let ready: Vec<usize> = pending
            .iter()
            .zip(&items)
            .filter(|(_, item)| item.is_readable())
            .map(|(i, _)| *i)
            .collect();
        for i in ready {
            while clients[i].recv(&mut msg, zmq::DONTWAIT).is_ok() {
                if msg[..] != ping[..] {
                    return Err("echo differs from the request".into());
                }
                if !answered[i] {
                    answered[i] = true;
                    left -= 1;
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Brokers

/// A proxy running on a thread of this process, stopped with TERMINATE on drop.
struct InProcProxy {
    control: zmq::Socket,
    thread: Option<JoinHandle<()>>,
    // Last: its sockets are closed by the thread and by `control`'s drop first.
    _ctx: Arc<RawCtx>,
}

impl Drop for InProcProxy {
    fn drop(&mut self) {
        let _ = self.control.send("TERMINATE", 0);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts `body` (which runs a proxy until TERMINATE) on its own thread and finds the CPU
/// probe of that thread and of `ctx`'s libzmq threads.
fn spawn_proxy_thread(
    name: &str,
    ctx: Arc<RawCtx>,
    prefix: i32,
    control: zmq::Socket,
    body: impl FnOnce() + Send + 'static,
) -> Result<(InProcProxy, CpuProbe), String> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("bench-{name}"))
        .spawn(move || {
            let _ = tx.send(gettid());
            body();
        })
        .map_err(|e| format!("spawn: {e}"))?;
    let proxy = InProcProxy {
        control,
        thread: Some(thread),
        _ctx: ctx,
    };
    let proxy_tid = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| format!("{name} proxy thread did not start"))?;
    let zmq_tids = zmq_threads_with_prefix(prefix);
    if zmq_tids.is_empty() {
        eprintln!("note: libzmq threads of the {name} proxy not found; its CPU excludes them");
    }
    Ok((
        proxy,
        CpuProbe::Threads {
            proxy_tid,
            zmq_tids,
        },
    ))
}

fn control_pair(ctx: &RawCtx, prefix: i32) -> Result<(zmq::Socket, zmq::Socket), String> {
    let endpoint = format!("inproc://streamq-bench-control-{prefix}");
    let theirs = ctx.socket(zmq_sys::ZMQ_PAIR)?;
    theirs.bind(&endpoint).map_err(zerr("control bind"))?;
    let ours = ctx.socket(zmq_sys::ZMQ_PAIR)?;
    ours.connect(&endpoint).map_err(zerr("control connect"))?;
    Ok((ours, theirs))
}

/// `zmq_proxy_stream` between two bound STREAM sockets of a new context.
struct StreamProxy {
    proxy: InProcProxy,
    probe: CpuProbe,
    frontend: String,
    backend: String,
}

fn start_stream_proxy() -> Result<StreamProxy, String> {
    let prefix = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
    let ctx = RawCtx::new(Some(prefix), None)?;
    let frontend = ctx.socket(zmq_sys::ZMQ_STREAM)?;
    let backend = ctx.socket(zmq_sys::ZMQ_STREAM)?;
    frontend
        .bind("tcp://127.0.0.1:0")
        .map_err(zerr("frontend bind"))?;
    backend
        .bind("tcp://127.0.0.1:0")
        .map_err(zerr("backend bind"))?;
    let (fe, be) = (endpoint_of(&frontend)?, endpoint_of(&backend)?);
    let (ours, mut theirs) = control_pair(&ctx, prefix)?;
    let (mut frontend, mut backend) = (frontend, backend);
    // The sockets move to the proxy thread (the zmq crate's sockets are Send; spawn is the
    // memory barrier libzmq asks for) and are closed there when the proxy returns.
    let (proxy, probe) = spawn_proxy_thread("stream", ctx.clone(), prefix, ours, move || {
        // SAFETY: three live sockets, used by this thread only; the proxy never closes them.
        let rc = unsafe {
            zmq_proxy_stream::zmq_proxy_stream(
                frontend.as_mut_ptr(),
                backend.as_mut_ptr(),
                theirs.as_mut_ptr(),
            )
        };
        if rc != 0 {
            eprintln!(
                "zmq_proxy_stream returned {rc}: {}",
                std::io::Error::last_os_error()
            );
        }
        drop((frontend, backend, theirs));
    })?;
    Ok(StreamProxy {
        proxy,
        probe,
        frontend: fe,
        backend: be,
    })
}

/// `zmq_proxy_steerable` with a CURVE ROUTER frontend and a DEALER backend.
fn start_steerable_proxy(
    keys: &zmq::CurveKeyPair,
) -> Result<(InProcProxy, CpuProbe, String, String), String> {
    let prefix = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
    let ctx = RawCtx::new(Some(prefix), None)?;
    let mut frontend = ctx.socket(zmq_sys::ZMQ_ROUTER)?;
    frontend.set_linger(0).map_err(zerr("linger"))?;
    frontend
        .set_curve_server(true)
        .map_err(zerr("curve server"))?;
    frontend
        .set_curve_secretkey(&keys.secret_key)
        .map_err(zerr("curve secret"))?;
    let mut backend = ctx.socket(zmq_sys::ZMQ_DEALER)?;
    backend.set_linger(0).map_err(zerr("linger"))?;
    frontend
        .bind("tcp://127.0.0.1:0")
        .map_err(zerr("frontend bind"))?;
    backend
        .bind("tcp://127.0.0.1:0")
        .map_err(zerr("backend bind"))?;
    let (fe, be) = (endpoint_of(&frontend)?, endpoint_of(&backend)?);
    let (ours, mut theirs) = control_pair(&ctx, prefix)?;
    let (proxy, probe) = spawn_proxy_thread("steerable", ctx.clone(), prefix, ours, move || {
        if let Err(e) = zmq::proxy_steerable(&mut frontend, &mut backend, &mut theirs) {
            eprintln!("zmq_proxy_steerable: {e}");
        }
    })?;
    Ok((proxy, probe, fe, be))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

static NEXT_TEMP: AtomicI32 = AtomicI32::new(0);

/// HAProxy in TCP mode, in the foreground as a child process, killed on drop.
struct Haproxy {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Haproxy {
    fn start(server_port: u16) -> Result<Haproxy, String> {
        let exe = find_on_path("haproxy").ok_or("haproxy is not on PATH")?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "streamq-bench-haproxy-{}-{}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let config = format!(
            "global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    \
             timeout client 1h\n    timeout server 1h\n\nfrontend fe\n    bind 127.0.0.1:{port}\n    \
             default_backend be\n\nbackend be\n    server worker 127.0.0.1:{server_port}\n"
        );
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).map_err(|e| format!("write config: {e}"))?;
        let log_path = dir.join("haproxy.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let child = Command::new(exe)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn haproxy: {e}"))?;
        let mut h = Haproxy { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = h.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("haproxy exited ({status}): {}", log.trim()));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(h);
            }
            if Instant::now() > deadline {
                return Err("haproxy did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn haproxy_version() -> Option<String> {
    let exe = find_on_path("haproxy")?;
    let out = Command::new(exe).arg("-v").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

fn tcp_port(endpoint: &str) -> Result<u16, String> {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no port in {endpoint}"))
}

/// One way from a client to a worker.
struct Arm {
    name: &'static str,
    /// Where clients connect.
    endpoint: String,
    /// The CURVE server key clients use.
    server_public: [u8; 32],
    probe: Option<CpuProbe>,
    // Dropped in this order: the broker, then the worker.
    _proxy: Option<InProcProxy>,
    _haproxy: Option<Haproxy>,
    worker: Worker,
}

fn start_arm(name: &'static str, keys: &zmq::CurveKeyPair, plan: &Plan) -> Result<Arm, String> {
    let wctx = zmq::Context::new();
    let arm = match name {
        "direct" => {
            let w = curve_worker_socket(&wctx, keys)?;
            w.bind("tcp://127.0.0.1:0").map_err(zerr("worker bind"))?;
            Arm {
                name,
                endpoint: endpoint_of(&w)?,
                server_public: keys.public_key,
                probe: None,
                _proxy: None,
                _haproxy: None,
                worker: Worker::spawn(w),
            }
        }
        "stream" => {
            let p = start_stream_proxy()?;
            let w = curve_worker_socket(&wctx, keys)?;
            w.set_immediate(true).map_err(zerr("immediate"))?;
            for _ in 0..plan.stream_slots {
                w.connect(&p.backend).map_err(zerr("worker connect"))?;
            }
            Arm {
                name,
                endpoint: p.frontend,
                server_public: keys.public_key,
                probe: Some(p.probe),
                _proxy: Some(p.proxy),
                _haproxy: None,
                worker: Worker::spawn(w),
            }
        }
        "steerable" => {
            let (proxy, probe, fe, be) = start_steerable_proxy(keys)?;
            let w = wctx.socket(zmq::ROUTER).map_err(zerr("worker socket"))?;
            w.set_linger(0).map_err(zerr("linger"))?;
            w.connect(&be).map_err(zerr("worker connect"))?;
            Arm {
                name,
                endpoint: fe,
                server_public: keys.public_key,
                probe: Some(probe),
                _proxy: Some(proxy),
                _haproxy: None,
                worker: Worker::spawn(w),
            }
        }
        "haproxy" => {
            let w = curve_worker_socket(&wctx, keys)?;
            w.bind("tcp://127.0.0.1:0").map_err(zerr("worker bind"))?;
            let port = tcp_port(&endpoint_of(&w)?)?;
            let worker = Worker::spawn(w);
            let h = Haproxy::start(port)?;
            Arm {
                name,
                endpoint: format!("tcp://127.0.0.1:{}", h.port),
                server_public: keys.public_key,
                probe: Some(CpuProbe::Process { pid: h.pid() }),
                _proxy: None,
                _haproxy: Some(h),
                worker,
            }
        }
        other => return Err(format!("unknown arm {other}")),
    };
    // One round trip proves the path works before anything is timed.
    let cctx = zmq::Context::new();
    let me = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    let c = connect_clients(&arm, &cctx, &me, 1, plan.deadline);
    c.map_err(|e| format!("first round trip failed: {e}"))?;
    Ok(arm)
}

fn connect_clients(
    arm: &Arm,
    cctx: &zmq::Context,
    me: &zmq::CurveKeyPair,
    n: usize,
    deadline: Duration,
) -> Result<Vec<zmq::Socket>, String> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let s = cctx.socket(zmq::DEALER).map_err(zerr("client socket"))?;
        configure_client(&s, &arm.server_public, me)?;
        s.connect(&arm.endpoint).map_err(zerr("client connect"))?;
        clients.push(s);
    }
    // The echo proves the CURVE handshake (and, through the stream proxy, the pairing) done.
    ping_all(&clients, deadline)?;
    Ok(clients)
}

// ---------------------------------------------------------------------------------------------
// The measurements

#[derive(Clone, Debug)]
struct TputRecord {
    round: usize,
    arm: &'static str,
    flow: Flow,
    size: usize,
    clients: usize,
    sent: u64,
    received: u64,
    secs: f64,
    cpu: Option<CpuSample>,
    disconnects: usize,
}

impl TputRecord {
    /// Payload bytes that reached the worker.
    fn bytes(&self) -> u64 {
        self.received * self.size as u64
    }
    fn msgs_per_s(&self) -> f64 {
        self.received as f64 / self.secs
    }
    /// Every message arrived over the connection it was sent on.
    fn complete(&self) -> bool {
        self.received == self.sent && self.disconnects == 0
    }
}

/// How a throughput client paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// At most [`WINDOW_BYTES`] of payload unacknowledged per client: the worker returns a
    /// credit every quarter window. What a real streaming application does (credit-based flow
    /// control), and far more than the bandwidth-delay product of loopback.
    Window,
    /// No flow control at all, like libzmq's local_thr/remote_thr: the client sends as fast as
    /// its socket takes messages and only TCP and the HWMs hold it back.
    Unbounded,
}

const WINDOW_BYTES: usize = 1 << 20;

/// What one throughput run gave.
struct TputOutcome {
    sent: u64,
    received: u64,
    secs: f64,
    cpu: Option<CpuSample>,
    /// Times a client's connection was closed under it during the run.
    disconnects: usize,
}

struct ClientState {
    sent: usize,
    credited: usize,
    acked: bool,
}

/// One-way streaming: every client sends its share of `total` messages of `size` bytes as
/// fast as `flow` lets it; the worker counts them, returns credits (Window) and acknowledges
/// each client's last message. Timed from the first send to the last acknowledgement.
#[allow(clippy::too_many_arguments)]
fn throughput(
    arm: &Arm,
    cctx: &zmq::Context,
    me: &zmq::CurveKeyPair,
    size: usize,
    nclients: usize,
    total: usize,
    flow: Flow,
    deadline: Duration,
) -> Result<TputOutcome, String> {
    let per_client = (total / nclients).max(1);
    let (window, step) = match flow {
        Flow::Window => {
            let window = (WINDOW_BYTES / size.max(1)).max(4);
            (window, (window / 4).max(1))
        }
        Flow::Unbounded => (usize::MAX, usize::MAX),
    };
    let clients = connect_clients(arm, cctx, me, nclients, deadline)?;
    let monitors = watch_disconnects(cctx, &clients)?;
    let mut buf = vec![0x5au8; size.max(1)];
    let mut states: Vec<ClientState> = (0..nclients)
        .map(|_| ClientState {
            sent: 0,
            credited: 0,
            acked: false,
        })
        .collect();
    let mut done = 0;
    let mut disconnects = 0;
    let mut msg = zmq::Message::new();
    let received0 = arm.worker.received();
    let mut last_count = (received0, Instant::now());
    let cpu0 = arm.probe.as_ref().map(CpuProbe::sample);
    let t0 = Instant::now();
    let end = t0 + deadline;

    while done < nclients {
        let mut progressed = false;
        for (c, st) in clients.iter().zip(states.iter_mut()) {
            let mut burst = 0;
            while st.sent < per_client && st.sent - st.credited < window && burst < 64 {
                let j = st.sent;
                buf[0] = if j + 1 == per_client {
                    TAG_LAST
                } else if (j + 1) % step == 0 {
                    TAG_CREDIT
                } else {
                    TAG_COUNT
                };
                match c.send(&buf[..], zmq::DONTWAIT) {
                    Ok(()) => {
                        st.sent += 1;
                        burst += 1;
                    }
                    Err(zmq::Error::EAGAIN) => break,
                    Err(e) => return Err(format!("send: {e}")),
                }
            }
            progressed |= burst > 0;
            while c.recv(&mut msg, zmq::DONTWAIT).is_ok() {
                progressed = true;
                if &msg[..] == ACK {
                    if !st.acked {
                        st.acked = true;
                        done += 1;
                    }
                } else if &msg[..] == CREDIT {
                    st.credited += step;
                }
            }
        }
        if progressed || done == nclients {
            continue;
        }
        let now = Instant::now();
        if now > end {
            return Err(format!("no end after {deadline:?}"));
        }
        disconnects += count_disconnects(&monitors);
        let count = arm.worker.received();
        if count != last_count.0 {
            last_count = (count, now);
        } else if disconnects > 0 && now - last_count.1 > Duration::from_secs(1) {
            // A connection was closed under a client and what it had in flight is gone:
            // the acknowledgement may never come.
            break;
        }
        let mut items: Vec<zmq::PollItem> = clients
            .iter()
            .zip(&states)
            .filter(|(_, st)| !st.acked)
            .map(|(c, st)| {
                let can_send = st.sent < per_client && st.sent - st.credited < window;
                let events = if can_send {
                    zmq::POLLIN | zmq::POLLOUT
                } else {
                    zmq::POLLIN
                };
                c.as_poll_item(events)
            })
            .collect();
        zmq::poll(&mut items, 100).map_err(zerr("poll"))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = match (&arm.probe, cpu0) {
        (Some(p), Some(c0)) => Some(p.sample().since(c0)),
        _ => None,
    };
    let sent: u64 = states.iter().map(|s| s.sent as u64).sum();
    let received = arm.worker.received() - received0;
    disconnects += count_disconnects(&monitors);
    drop(clients);
    Ok(TputOutcome {
        sent,
        received,
        secs,
        cpu,
        disconnects,
    })
}

static NEXT_MONITOR: AtomicU64 = AtomicU64::new(0);

/// A monitor per client that reports when its connection is closed under it.
fn watch_disconnects(
    cctx: &zmq::Context,
    clients: &[zmq::Socket],
) -> Result<Vec<zmq::Socket>, String> {
    let mut monitors = Vec::with_capacity(clients.len());
    for c in clients {
        let n = NEXT_MONITOR.fetch_add(1, Ordering::Relaxed);
        let endpoint = format!("inproc://streamq-bench-monitor-{}-{n}", std::process::id());
        c.monitor(&endpoint, zmq_sys::ZMQ_EVENT_DISCONNECTED as i32)
            .map_err(zerr("monitor"))?;
        let m = cctx.socket(zmq::PAIR).map_err(zerr("monitor socket"))?;
        m.set_linger(0).map_err(zerr("linger"))?;
        m.connect(&endpoint).map_err(zerr("monitor connect"))?;
        monitors.push(m);
    }
    Ok(monitors)
}

/// Disconnect events seen so far (each event is two frames).
fn count_disconnects(monitors: &[zmq::Socket]) -> usize {
    let mut msg = zmq::Message::new();
    let mut events = 0;
    for m in monitors {
        while m.recv(&mut msg, zmq::DONTWAIT).is_ok() {
            if !msg.get_more() {
                events += 1;
            }
        }
    }
    events
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Round trips a latency run makes on one arm before the next arm takes its turn, so that a
/// disturbance of the shared machine hits all arms alike.
const LATENCY_SLICE: usize = 100;

/// `n` request/reply round trips of `size`-byte echoes, recorded in ns when `hist` is given.
fn round_trips(
    c: &zmq::Socket,
    buf: &[u8],
    n: usize,
    mut hist: Option<&mut Histogram<u64>>,
) -> Result<(), String> {
    let mut reply = zmq::Message::new();
    for _ in 0..n {
        let t = Instant::now();
        c.send(buf, 0).map_err(zerr("send"))?;
        c.recv(&mut reply, 0).map_err(zerr("recv"))?;
        let ns = t.elapsed().as_nanos() as u64;
        if reply.len() != buf.len() {
            return Err(format!("echo of {} bytes for {}", reply.len(), buf.len()));
        }
        if let Some(h) = hist.as_deref_mut() {
            h.saturating_record(ns.max(1));
        }
    }
    Ok(())
}

/// A latency client and what it measured.
type LatencyRun = (zmq::Socket, Histogram<u64>);

/// One round of latency: one client per arm, the arms taking turns every [`LATENCY_SLICE`]
/// round trips.
fn latency_round(
    order: &[&Arm],
    cctx: &zmq::Context,
    me: &zmq::CurveKeyPair,
    size: usize,
    plan: &Plan,
) -> Vec<(&'static str, Result<Histogram<u64>, String>)> {
    let mut buf = vec![0x5au8; size.max(1)];
    buf[0] = TAG_ECHO;
    let mut runs: Vec<(&'static str, Result<LatencyRun, String>)> = order
        .iter()
        .map(|arm| {
            let run = connect_clients(arm, cctx, me, 1, plan.deadline).and_then(|mut c| {
                let c = c.pop().expect("one client");
                round_trips(&c, &buf, plan.latency_warmup, None)?;
                Ok((c, new_histogram()))
            });
            (arm.name, run)
        })
        .collect();
    let mut done = 0;
    while done < plan.latency_iters {
        let n = LATENCY_SLICE.min(plan.latency_iters - done);
        for (_, run) in runs.iter_mut() {
            if let Ok((c, h)) = run {
                if let Err(e) = round_trips(c, &buf, n, Some(h)) {
                    *run = Err(e);
                }
            }
        }
        done += n;
    }
    runs.into_iter()
        .map(|(name, run)| (name, run.map(|(_, h)| h)))
        .collect()
}

/// CURVE connection set-up: a fresh client socket, from connect to the echo of its first
/// request, in ns.
fn setup_once(arm: &Arm, cctx: &zmq::Context, me: &zmq::CurveKeyPair) -> Result<u64, String> {
    let ping = ping_payload();
    let mut reply = zmq::Message::new();
    let s = cctx.socket(zmq::DEALER).map_err(zerr("client socket"))?;
    configure_client(&s, &arm.server_public, me)?;
    let t0 = Instant::now();
    s.connect(&arm.endpoint).map_err(zerr("connect"))?;
    s.send(&ping[..], 0).map_err(zerr("send"))?;
    s.recv(&mut reply, 0).map_err(zerr("first reply"))?;
    let ns = (t0.elapsed().as_nanos() as u64).max(1);
    drop(s);
    // Let the close finish (client, broker and worker side) before the next set-up is timed.
    std::thread::sleep(SETUP_PAUSE);
    Ok(ns)
}

const SETUP_PAUSE: Duration = Duration::from_millis(2);

/// One round of set-ups, the arms taking turns at every set-up.
fn setup_round(
    order: &[&Arm],
    cctx: &zmq::Context,
    me: &zmq::CurveKeyPair,
    iters: usize,
) -> Vec<(&'static str, Result<Histogram<u64>, String>)> {
    let mut runs: Vec<(&'static str, Result<Histogram<u64>, String>)> = order
        .iter()
        .map(|arm| (arm.name, Ok(new_histogram())))
        .collect();
    for _ in 0..iters {
        for (arm, (_, run)) in order.iter().zip(runs.iter_mut()) {
            if let Ok(h) = run {
                match setup_once(arm, cctx, me) {
                    Ok(ns) => h.saturating_record(ns),
                    Err(e) => *run = Err(e),
                }
            }
        }
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// Memory per idle pair: brokers in a process of their own

fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("status of {pid}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no VmRSS for {pid}"))
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// This executable run again as a broker process (see [`child_main_from_env`]).
struct ChildBroker {
    child: Child,
    frontend: String,
    backend: String,
}

impl ChildBroker {
    fn spawn(kind: &str, secret: Option<&[u8; 32]>) -> Result<ChildBroker, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args(CHILD_ARGS)
            .env(CHILD_ENV, kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(secret) = secret {
            cmd.env(
                CHILD_SECRET_ENV,
                zmq::z85_encode(secret).map_err(|e| format!("z85: {e:?}"))?,
            );
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn child: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // Anywhere in the line: libtest prints "test mem_child_entry ... " first.
                if let Some(at) = line.find(CHILD_MARKER) {
                    let _ = tx.send(line[at + CHILD_MARKER.len()..].trim().to_string());
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(20));
        let mut broker = ChildBroker {
            child,
            frontend: String::new(),
            backend: String::new(),
        };
        let line = ready.map_err(|_| format!("the {kind} child did not start"))?;
        let mut parts = line.split_whitespace();
        broker.frontend = parts.next().unwrap_or_default().to_string();
        broker.backend = parts.next().unwrap_or_default().to_string();
        Ok(broker)
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Entry point of a memory child: when [`CHILD_ENV`] names a broker, runs it until stdin
/// closes and exits the process; otherwise returns at once.
pub fn child_main_from_env() {
    let Ok(kind) = std::env::var(CHILD_ENV) else {
        return;
    };
    match child_main(&kind) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("bench child {kind}: {e}");
            std::process::exit(2);
        }
    }
}

fn child_main(kind: &str) -> Result<(), String> {
    let ctx = RawCtx::new(None, None)?;
    let (frontend, backend) = match kind {
        "stream" | "stream-baseline" => (
            ctx.socket(zmq_sys::ZMQ_STREAM)?,
            ctx.socket(zmq_sys::ZMQ_STREAM)?,
        ),
        "steerable" => {
            let secret = std::env::var(CHILD_SECRET_ENV).map_err(|_| "no secret key")?;
            let secret = zmq::z85_decode(&secret).map_err(|e| format!("z85: {e:?}"))?;
            let fe = ctx.socket(zmq_sys::ZMQ_ROUTER)?;
            fe.set_curve_server(true).map_err(zerr("curve server"))?;
            fe.set_curve_secretkey(&secret)
                .map_err(zerr("curve secret"))?;
            (fe, ctx.socket(zmq_sys::ZMQ_DEALER)?)
        }
        other => return Err(format!("unknown child kind {other}")),
    };
    for s in [&frontend, &backend] {
        s.set_linger(0).map_err(zerr("linger"))?;
        s.bind("tcp://127.0.0.1:0").map_err(zerr("bind"))?;
    }
    let (fe, be) = (endpoint_of(&frontend)?, endpoint_of(&backend)?);
    let (ours, mut theirs) = control_pair(&ctx, 0)?;
    let (mut frontend, mut backend) = (frontend, backend);
    let kind = kind.to_string();
    // The sockets move to the broker thread, their only user from now on. They are never
    // closed: the process exits when the parent is done.
    std::thread::spawn(move || {
        match kind.as_str() {
            "stream" => {
                // SAFETY: three live sockets, used by this thread only.
                unsafe {
                    zmq_proxy_stream::zmq_proxy_stream(
                        frontend.as_mut_ptr(),
                        backend.as_mut_ptr(),
                        theirs.as_mut_ptr(),
                    )
                };
            }
            "steerable" => {
                let _ = zmq::proxy_steerable(&mut frontend, &mut backend, &mut theirs);
            }
            _ => drain(&frontend, &backend),
        }
        std::mem::forget((frontend, backend, theirs));
    });
    println!("{CHILD_MARKER} {fe} {be}");
    let _ = std::io::stdout().flush();
    // Until the parent closes our stdin (or kills us).
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    drop(ours);
    std::process::exit(0);
}

/// The baseline: the same STREAM sockets, read and discarded, nothing relayed.
fn drain(frontend: &zmq::Socket, backend: &zmq::Socket) {
    let mut msg = zmq::Message::new();
    loop {
        let mut items = [
            frontend.as_poll_item(zmq::POLLIN),
            backend.as_poll_item(zmq::POLLIN),
        ];
        if zmq::poll(&mut items, -1).is_err() {
            return;
        }
        for s in [frontend, backend] {
            while s.recv(&mut msg, zmq::DONTWAIT).is_ok() {}
        }
    }
}

/// A broker process of a memory run.
enum Broker {
    Child(ChildBroker),
    Haproxy(Haproxy),
}

#[derive(Clone, Debug)]
struct MemRecord {
    pairs: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    fds_added: usize,
}

impl MemRecord {
    fn per_pair_kib(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) / self.pairs as f64
    }
}

/// RSS growth of a broker process holding `n` established, idle client sessions.
fn memory(
    kind: &'static str,
    n: usize,
    keys: &zmq::CurveKeyPair,
    plan: &Plan,
) -> Result<MemRecord, String> {
    let wctx = zmq::Context::new();
    let me = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    // The broker process: this executable run again, or haproxy; killed when this returns.
    let broker: Broker;
    // The worker socket, and the endpoint it connects to how many times (None: it binds).
    let worker: (zmq::Socket, Option<(String, usize)>);
    match kind {
        "stream" | "stream-baseline" | "steerable" => {
            let secret = (kind == "steerable").then_some(&keys.secret_key);
            let child = ChildBroker::spawn(kind, secret)?;
            worker = if kind == "steerable" {
                let w = wctx.socket(zmq::ROUTER).map_err(zerr("worker"))?;
                w.set_linger(0).map_err(zerr("linger"))?;
                (w, Some((child.backend.clone(), 1)))
            } else {
                let w = curve_worker_socket(&wctx, keys)?;
                w.set_immediate(true).map_err(zerr("immediate"))?;
                (w, Some((child.backend.clone(), n)))
            };
            broker = Broker::Child(child);
        }
        "haproxy" => {
            let w = curve_worker_socket(&wctx, keys)?;
            w.bind("tcp://127.0.0.1:0").map_err(zerr("worker bind"))?;
            broker = Broker::Haproxy(Haproxy::start(tcp_port(&endpoint_of(&w)?)?)?);
            worker = (w, None);
        }
        other => return Err(format!("unknown memory arm {other}")),
    }
    let (pid, frontend) = match &broker {
        Broker::Child(child) => (child.child.id(), child.frontend.clone()),
        Broker::Haproxy(h) => (h.pid(), format!("tcp://127.0.0.1:{}", h.port)),
    };
    std::thread::sleep(Duration::from_millis(300));
    let rss_before_kib = rss_kib(pid)?;
    let fd0 = fd_count(pid);

    let (wsock, connects) = worker;
    if let Some((backend, count)) = connects {
        for _ in 0..count {
            wsock.connect(&backend).map_err(zerr("worker connect"))?;
        }
    }
    let _worker = Worker::spawn(wsock);
    let cctx = RawCtx::new(None, Some(n as i32 + 64))?;
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let s = cctx.socket(zmq_sys::ZMQ_DEALER)?;
        configure_client(&s, &keys.public_key, &me)?;
        s.connect(&frontend).map_err(zerr("client connect"))?;
        clients.push(s);
    }
    let expected_fds = match kind {
        "steerable" => n,
        _ => 2 * n,
    };
    let result = (|| {
        if kind != "stream-baseline" {
            ping_all(&clients, plan.deadline)?;
        }
        let end = Instant::now() + plan.deadline;
        while fd_count(pid) < fd0 + expected_fds {
            if Instant::now() > end {
                return Err(format!(
                    "{kind}: {} of {expected_fds} connections after {:?}",
                    fd_count(pid).saturating_sub(fd0),
                    plan.deadline
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the handshakes' buffers and the proxy's queues settle.
        std::thread::sleep(Duration::from_millis(500));
        Ok(MemRecord {
            pairs: n,
            rss_before_kib,
            rss_after_kib: rss_kib(pid)?,
            fds_added: fd_count(pid).saturating_sub(fd0),
        })
    })();
    drop(clients);
    drop(cctx);
    drop(broker);
    result
}

// ---------------------------------------------------------------------------------------------
// Results, the table and the JSON

/// One row of the table: a figure per arm.
struct Metric {
    key: String,
    label: String,
    unit: &'static str,
    values: BTreeMap<&'static str, f64>,
    /// Throughput rows also carry MB/s.
    mb_per_s: BTreeMap<&'static str, f64>,
    /// Said in the cell after the figure (or instead of it).
    notes: BTreeMap<&'static str, String>,
}

impl Metric {
    fn new(key: String, label: String, unit: &'static str) -> Metric {
        Metric {
            key,
            label,
            unit,
            values: BTreeMap::new(),
            mb_per_s: BTreeMap::new(),
            notes: BTreeMap::new(),
        }
    }

    fn ratio(&self, arm: &str, reference: &str) -> Option<f64> {
        let a = *self.values.get(arm)?;
        let r = *self.values.get(reference)?;
        (r != 0.0 && a.is_finite() && r.is_finite()).then(|| a / r)
    }

    fn cell(&self, arm: &str) -> Option<String> {
        let figure = self.figure(arm);
        match (figure, self.notes.get(arm)) {
            (Some(f), Some(n)) => Some(format!("{f}; {n}")),
            (Some(f), None) => Some(f),
            (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        }
    }

    fn figure(&self, arm: &str) -> Option<String> {
        let v = *self.values.get(arm)?;
        let main = match self.unit {
            "msg/s" => format_rate(v),
            "us" => format!("{v:.0} µs"),
            "ms" => format!("{v:.2} ms"),
            "s/GB" => format!("{v:.2} s/GB"),
            "KiB" => format!("{v:.1} KiB"),
            _ => format!("{v}"),
        };
        Some(match self.mb_per_s.get(arm) {
            Some(mb) => format!("{main} · {mb:.1} MB/s"),
            None => main,
        })
    }
}

fn format_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M msg/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k msg/s", v / 1e3)
    } else {
        format!("{v:.0} msg/s")
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One histogram per round, by round.
type Rounds = BTreeMap<usize, Histogram<u64>>;

/// How the rounds of one figure make one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// The median round: what a typical round gave.
    Median,
    /// The best round (highest throughput, lowest latency and set-up): on a shared machine,
    /// the round that the other load disturbed least.
    Best,
}

impl Stat {
    fn name(self) -> &'static str {
        match self {
            Stat::Median => "median",
            Stat::Best => "best",
        }
    }

    fn of(self, values: Vec<f64>, higher_is_better: bool) -> Option<f64> {
        match self {
            Stat::Median => median(values),
            Stat::Best => {
                values
                    .into_iter()
                    .reduce(|a, b| if higher_is_better { a.max(b) } else { a.min(b) })
            }
        }
    }
}

fn quantiles(rounds: &Rounds, q: f64) -> Vec<f64> {
    rounds
        .values()
        .filter(|h| !h.is_empty())
        .map(|h| h.value_at_quantile(q) as f64)
        .collect()
}

/// One quantile over rounds: each round's quantile `q`, then `stat` over the rounds (on a
/// shared machine a disturbed round moves this less than the quantile of all samples).
fn quantile_over_rounds(rounds: &Rounds, q: f64, stat: Stat) -> Option<f64> {
    stat.of(quantiles(rounds, q), false)
}

/// a's p50 − b's p50: the median of the paired per-round differences, or best − best.
fn p50_difference(a: &Rounds, b: &Rounds, stat: Stat) -> Option<f64> {
    match stat {
        Stat::Median => median(
            a.iter()
                .filter_map(|(round, ha)| {
                    let hb = b.get(round)?;
                    (!ha.is_empty() && !hb.is_empty()).then(|| {
                        ha.value_at_quantile(0.5) as f64 - hb.value_at_quantile(0.5) as f64
                    })
                })
                .collect(),
        ),
        Stat::Best => {
            Some(quantile_over_rounds(a, 0.5, stat)? - quantile_over_rounds(b, 0.5, stat)?)
        }
    }
}

fn merged(rounds: &Rounds) -> Histogram<u64> {
    let mut all = new_histogram();
    for h in rounds.values() {
        all.add(h).expect("same histogram bounds");
    }
    all
}

#[derive(Default)]
struct Results {
    tput: Vec<TputRecord>,
    /// Per arm (and size), one histogram per round.
    latency: BTreeMap<(&'static str, usize), Rounds>,
    setup: BTreeMap<&'static str, Rounds>,
    memory: BTreeMap<&'static str, MemRecord>,
    errors: Vec<String>,
}

fn build_metrics(res: &Results, arms: &[&'static str], stat: Stat) -> Vec<Metric> {
    let mut out = Vec::new();
    for &size in &SIZES {
        for &n in &CLIENT_COUNTS {
            let mut m = Metric::new(
                format!("throughput_{size}B_{n}c"),
                format!(
                    "throughput {}, {n} client{}",
                    size_name(size),
                    if n == 1 { "" } else { "s" }
                ),
                "msg/s",
            );
            for &arm in arms {
                let rates: Vec<f64> = res
                    .tput
                    .iter()
                    .filter(|r| {
                        r.flow == Flow::Window && r.arm == arm && r.size == size && r.clients == n
                    })
                    .map(TputRecord::msgs_per_s)
                    .collect();
                if let Some(v) = stat.of(rates, true) {
                    m.values.insert(arm, v);
                    m.mb_per_s.insert(arm, v * size as f64 / 1e6);
                }
            }
            out.push(m);
        }
    }
    for &size in &UNBOUNDED_SIZES {
        let mut m = Metric::new(
            format!("throughput_unbounded_{size}B_1c"),
            format!(
                "throughput without flow control (local_thr style), {}, 1 client",
                size_name(size)
            ),
            "msg/s",
        );
        for &arm in arms {
            let runs: Vec<&TputRecord> = res
                .tput
                .iter()
                .filter(|r| r.flow == Flow::Unbounded && r.arm == arm && r.size == size)
                .collect();
            let complete: Vec<f64> = runs
                .iter()
                .filter(|r| r.complete())
                .map(|r| r.msgs_per_s())
                .collect();
            let closed = runs.len() - complete.len();
            if let Some(v) = stat.of(complete, true) {
                m.values.insert(arm, v);
                m.mb_per_s.insert(arm, v * size as f64 / 1e6);
            }
            if closed > 0 {
                let lost: u64 = runs.iter().map(|r| r.sent - r.received).sum();
                m.notes.insert(
                    arm,
                    format!(
                        "connection closed by the broker in {closed} of {} runs ({lost} messages lost)",
                        runs.len()
                    ),
                );
            }
        }
        out.push(m);
    }
    for &size in &LATENCY_SIZES {
        for (q, qn) in [(0.5, "p50"), (0.99, "p99")] {
            let mut m = Metric::new(
                format!("latency_{qn}_{size}B"),
                format!("latency {qn}, {}", size_name(size)),
                "us",
            );
            for &arm in arms {
                if let Some(v) = res
                    .latency
                    .get(&(arm, size))
                    .and_then(|r| quantile_over_rounds(r, q, stat))
                {
                    m.values.insert(arm, v / 1e3);
                }
            }
            out.push(m);
        }
        let mut added = Metric::new(
            format!("latency_added_p50_{size}B"),
            format!("added p50 latency over direct, {}", size_name(size)),
            "us",
        );
        if let Some(direct) = res.latency.get(&("direct", size)) {
            for &arm in arms {
                if let Some(v) = res
                    .latency
                    .get(&(arm, size))
                    .and_then(|r| p50_difference(r, direct, stat))
                {
                    added.values.insert(arm, v / 1e3);
                }
            }
        }
        out.push(added);
    }
    for (q, qn) in [(0.5, "p50"), (0.99, "p99")] {
        let mut m = Metric::new(
            format!("setup_{qn}"),
            format!("CURVE set-up {qn} (connect to first reply)"),
            "ms",
        );
        for &arm in arms {
            if let Some(v) = res
                .setup
                .get(arm)
                .and_then(|r| quantile_over_rounds(r, q, stat))
            {
                m.values.insert(arm, v / 1e6);
            }
        }
        out.push(m);
    }
    for (thread_only, key, what) in [
        (false, "cpu_per_gb", "broker CPU per GB"),
        (true, "cpu_thread_per_gb", "… of which the proxy thread"),
    ] {
        for &size in &SIZES {
            let mut m = Metric::new(
                format!("{key}_{size}B"),
                format!("{what}, {}", size_name(size)),
                "s/GB",
            );
            for &arm in arms {
                let (mut ns, mut bytes) = (0u64, 0u64);
                let windowed = res
                    .tput
                    .iter()
                    .filter(|r| r.flow == Flow::Window && r.arm == arm && r.size == size);
                for r in windowed {
                    if let Some(cpu) = r.cpu {
                        ns += if thread_only {
                            cpu.proxy_thread_ns
                        } else {
                            cpu.total_ns
                        };
                        bytes += r.bytes();
                    }
                }
                // haproxy has no separate proxy thread.
                if bytes > 0 && !(thread_only && arm == "haproxy") {
                    m.values.insert(arm, ns as f64 / 1e9 / (bytes as f64 / 1e9));
                }
            }
            out.push(m);
        }
    }
    let mut mem = Metric::new(
        "memory_per_idle_pair".into(),
        "memory per idle pair (broker RSS)".into(),
        "KiB",
    );
    for (&kind, rec) in &res.memory {
        if kind != "stream-baseline" {
            mem.values.insert(kind, rec.per_pair_kib());
        }
    }
    out.push(mem);
    if let Some(base) = res.memory.get("stream-baseline") {
        let mut m = Metric::new(
            "memory_stream_baseline".into(),
            "… plain STREAM sockets, same connections, no proxy".into(),
            "KiB",
        );
        m.values.insert("stream", base.per_pair_kib());
        out.push(m);
        if let Some(s) = res.memory.get("stream") {
            let mut own = Metric::new(
                "memory_proxy_own".into(),
                "… the proxy's own share (stream − baseline)".into(),
                "KiB",
            );
            own.values
                .insert("stream", s.per_pair_kib() - base.per_pair_kib());
            out.push(own);
        }
    }
    out
}

const RATIOS: [(&str, &str); 5] = [
    ("stream", "direct"),
    ("stream", "steerable"),
    ("steerable", "direct"),
    ("haproxy", "direct"),
    ("haproxy", "steerable"),
];

fn render_table(
    metrics: &[Metric],
    ran: &[&'static str],
    skipped: &BTreeMap<&'static str, String>,
) -> String {
    let mut t = String::new();
    t.push_str("| metric |");
    for arm in ARMS {
        t.push_str(&format!(" {arm} |"));
    }
    for (a, r) in RATIOS {
        t.push_str(&format!(" {a} ÷ {r} |"));
    }
    t.push_str("\n|---|");
    for _ in 0..ARMS.len() {
        t.push_str("---:|");
    }
    for _ in RATIOS {
        t.push_str("---:|");
    }
    t.push('\n');
    for m in metrics {
        t.push_str(&format!("| {} |", m.label));
        for arm in ARMS {
            let cell = if skipped.contains_key(arm) {
                "skipped".to_string()
            } else if !ran.contains(&arm) {
                "not run".to_string()
            } else {
                m.cell(arm).unwrap_or_else(|| "–".to_string())
            };
            t.push_str(&format!(" {cell} |"));
        }
        for (a, r) in RATIOS {
            let cell = m
                .ratio(a, r)
                .map_or_else(|| "–".to_string(), |x| format!("{x:.2}×"));
            t.push_str(&format!(" {cell} |"));
        }
        t.push('\n');
    }
    t
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let (ma, mi, pa) = zmq::version();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "kernel": read_trim("/proc/sys/kernel/osrelease"),
        "libzmq": format!("{ma}.{mi}.{pa}"),
        "haproxy": haproxy_version(),
        "loadavg_at_start": read_trim("/proc/loadavg"),
    })
}

/// What one run produced.
pub struct Report {
    /// The markdown table (with its legend) that the benchmark prints.
    pub table: String,
    pub json: Value,
    /// Arms that ran, and arms skipped with the reason.
    pub arms_run: Vec<String>,
    pub skipped: Vec<(String, String)>,
    /// Cases that failed (their figures are missing from the table).
    pub errors: Vec<String>,
}

fn legend(stat: Stat) -> String {
    format!(
        "Each figure is the {} of the rounds (every round's figure is in the JSON). \
Throughput = messages/s (and MB/s of payload, 1 MB = 10^6 B) of one-way streaming from the clients \
to the worker, each client keeping at most 1 MiB unacknowledged (credit-based flow control); \
\"without flow control\" = the same with no credits (local_thr style), where a broker that cannot \
push back on one connection must buffer or close; latency = request/reply round trip of one \
client; set-up = fresh CURVE client from connect to its first reply; broker CPU per GB = CPU \
seconds of the broker (proxy thread + its libzmq I/O threads; all of haproxy) per 10^9 payload \
bytes relayed in the throughput runs of that size (all rounds); memory = RSS growth of the broker \
process per established idle session (stream: client and worker connection pair). Ratios divide \
the left arm's figure by the right arm's: above 1 is better for throughput, worse for latency, \
set-up, CPU and memory.",
        stat.name()
    )
}

/// Runs the benchmark as the command line says.
pub fn run_cli(args: &[String]) -> Result<Report, String> {
    let opts = parse_opts(args)?;
    let mut plan = Plan::new(opts.mode);
    if let Some(r) = opts.rounds {
        plan.rounds = r;
    }
    raise_fd_limit();
    let started = Instant::now();
    let machine = machine();
    let keys = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    let me = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    let cctx = zmq::Context::new();

    let mut arms: Vec<Arm> = Vec::new();
    let mut skipped: BTreeMap<&'static str, String> = BTreeMap::new();
    for &name in &opts.arms {
        if name == "haproxy" && find_on_path("haproxy").is_none() {
            let note = "haproxy is not on PATH (Debian: apt-get install haproxy)".to_string();
            eprintln!("note: arm haproxy skipped: {note}");
            skipped.insert(name, note);
            continue;
        }
        match start_arm(name, &keys, &plan) {
            Ok(arm) => arms.push(arm),
            Err(e) => {
                eprintln!("note: arm {name} skipped: {e}");
                skipped.insert(name, e);
            }
        }
    }
    let ran: Vec<&'static str> = arms.iter().map(|a| a.name).collect();
    let probes: BTreeMap<&'static str, String> = arms
        .iter()
        .filter_map(|a| Some((a.name, format!("{:?}", a.probe.as_ref()?))))
        .collect();
    eprintln!(
        "mode {}, {} round(s), {} of rounds, arms: {}",
        opts.mode.name(),
        plan.rounds,
        opts.stat.name(),
        ran.join(", ")
    );

    let mut res = Results::default();
    for round in 0..plan.rounds {
        // Each round starts with a different arm, so that no arm always runs first.
        let order: Vec<&Arm> = (0..arms.len())
            .map(|i| &arms[(i + round) % arms.len()])
            .collect();
        for (si, &size) in SIZES.iter().enumerate() {
            let mut cases: Vec<(Flow, usize)> =
                CLIENT_COUNTS.iter().map(|&n| (Flow::Window, n)).collect();
            if UNBOUNDED_SIZES.contains(&size) {
                cases.push((Flow::Unbounded, 1));
            }
            for (flow, n) in cases {
                for arm in &order {
                    let total = plan.tput_msgs[si];
                    let what = format!(
                        "throughput{} {} x{n} {}",
                        if flow == Flow::Unbounded {
                            " (unbounded)"
                        } else {
                            ""
                        },
                        size_name(size),
                        arm.name
                    );
                    let rec =
                        throughput(arm, &cctx, &me, size, n, total, flow, plan.deadline).map(|o| {
                            TputRecord {
                                round,
                                arm: arm.name,
                                flow,
                                size,
                                clients: n,
                                sent: o.sent,
                                received: o.received,
                                secs: o.secs,
                                cpu: o.cpu,
                                disconnects: o.disconnects,
                            }
                        });
                    match rec {
                        Ok(rec) if rec.complete() || flow == Flow::Unbounded => {
                            eprintln!(
                                "[{}/{}] {what:<38} {:>16}{}{}",
                                round + 1,
                                plan.rounds,
                                format_rate(rec.msgs_per_s()),
                                rec.cpu.map_or(String::new(), |c| format!(
                                    "  broker CPU {:.2} s/GB",
                                    c.total_ns as f64 / rec.bytes().max(1) as f64
                                )),
                                if rec.complete() {
                                    String::new()
                                } else {
                                    format!(
                                        "  CLOSED: {} connection(s) dropped, {} of {} delivered",
                                        rec.disconnects, rec.received, rec.sent
                                    )
                                }
                            );
                            res.tput.push(rec);
                        }
                        Ok(rec) => {
                            let e = format!(
                                "round {} {what}: the worker received {} of {} messages; {} \
                                 client connection(s) closed during the run",
                                round + 1,
                                rec.received,
                                rec.sent,
                                rec.disconnects
                            );
                            eprintln!("error: {e}");
                            res.errors.push(e);
                        }
                        Err(e) => {
                            let e = format!("round {} {what}: {e}", round + 1);
                            eprintln!("error: {e}");
                            res.errors.push(e);
                        }
                    }
                }
            }
        }
        for &size in &LATENCY_SIZES {
            for (name, run) in latency_round(&order, &cctx, &me, size, &plan) {
                match run {
                    Ok(h) => {
                        eprintln!(
                            "[{}/{}] latency {:>6} {:<9} p50 {:.0} µs p99 {:.0} µs",
                            round + 1,
                            plan.rounds,
                            size_name(size),
                            name,
                            h.value_at_quantile(0.5) as f64 / 1e3,
                            h.value_at_quantile(0.99) as f64 / 1e3
                        );
                        res.latency
                            .entry((name, size))
                            .or_default()
                            .insert(round, h);
                    }
                    Err(e) => res.errors.push(format!(
                        "round {} latency {} {name}: {e}",
                        round + 1,
                        size_name(size),
                    )),
                }
            }
        }
        for (name, run) in setup_round(&order, &cctx, &me, plan.setup_iters) {
            match run {
                Ok(h) => {
                    eprintln!(
                        "[{}/{}] set-up {:<9} p50 {:.2} ms p99 {:.2} ms",
                        round + 1,
                        plan.rounds,
                        name,
                        h.value_at_quantile(0.5) as f64 / 1e6,
                        h.value_at_quantile(0.99) as f64 / 1e6
                    );
                    res.setup.entry(name).or_default().insert(round, h);
                }
                Err(e) => res
                    .errors
                    .push(format!("round {} set-up {name}: {e}", round + 1)),
            }
        }
    }
    // The brokers of the timed runs stop here, before the memory runs.
    drop(arms);

    let mut mem_kinds: Vec<&'static str> = Vec::new();
    if ran.contains(&"stream") {
        mem_kinds.extend(["stream", "stream-baseline"]);
    }
    for k in ["steerable", "haproxy"] {
        if ran.contains(&k) {
            mem_kinds.push(k);
        }
    }
    for kind in mem_kinds {
        match memory(kind, plan.mem_pairs, &keys, &plan) {
            Ok(rec) => {
                eprintln!(
                    "memory {kind:<15} {} pairs: RSS {} -> {} KiB, {:.1} KiB per pair ({} fds)",
                    rec.pairs,
                    rec.rss_before_kib,
                    rec.rss_after_kib,
                    rec.per_pair_kib(),
                    rec.fds_added
                );
                res.memory.insert(kind, rec);
            }
            Err(e) => {
                let e = format!("memory {kind}: {e}");
                eprintln!("error: {e}");
                res.errors.push(e);
            }
        }
    }

    let metrics = build_metrics(&res, &ran, opts.stat);
    let mut table = render_table(&metrics, &ran, &skipped);
    table.push('\n');
    table.push_str(&legend(opts.stat));
    table.push('\n');
    for (arm, why) in &skipped {
        table.push_str(&format!("\nNote: arm {arm} skipped: {why}"));
    }
    for e in &res.errors {
        table.push_str(&format!("\nError: {e}"));
    }
    if !skipped.is_empty() || !res.errors.is_empty() {
        table.push('\n');
    }

    let elapsed = started.elapsed().as_secs_f64();
    let mut json = to_json(
        &opts, &plan, machine, &ran, &skipped, &metrics, &res, elapsed,
    );
    json["cpu_probes"] = json!(probes);
    if let Some(dir) = opts.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| format!("json: {e}"))?;
    std::fs::write(&opts.json, text).map_err(|e| format!("write {}: {e}", opts.json.display()))?;
    eprintln!(
        "done in {elapsed:.0} s; JSON written to {}",
        opts.json.display()
    );
    Ok(Report {
        table,
        json,
        arms_run: ran.iter().map(|s| s.to_string()).collect(),
        skipped: skipped
            .iter()
            .map(|(a, w)| (a.to_string(), w.clone()))
            .collect(),
        errors: res.errors,
    })
}

#[allow(clippy::too_many_arguments)]
fn to_json(
    opts: &Opts,
    plan: &Plan,
    machine: Value,
    ran: &[&'static str],
    skipped: &BTreeMap<&'static str, String>,
    metrics: &[Metric],
    res: &Results,
    elapsed: f64,
) -> Value {
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|m| {
            let mut ratios = Map::new();
            for (a, r) in RATIOS {
                if let Some(x) = m.ratio(a, r) {
                    ratios.insert(format!("{a}/{r}"), json!(x));
                }
            }
            let mut v = json!({
                "key": m.key,
                "label": m.label,
                "unit": m.unit,
                "values": m.values,
                "ratios": ratios,
            });
            if !m.notes.is_empty() {
                v["notes"] = json!(m.notes);
            }
            if !m.mb_per_s.is_empty() {
                v["mb_per_s"] = json!(m.mb_per_s);
            }
            v
        })
        .collect();
    let tput: Vec<Value> = res
        .tput
        .iter()
        .map(|r| {
            json!({
                "round": r.round,
                "arm": r.arm,
                "size": r.size,
                "clients": r.clients,
                "flow": match r.flow {
                    Flow::Window => "window",
                    Flow::Unbounded => "unbounded",
                },
                "messages_sent": r.sent,
                "messages_received": r.received,
                "disconnects": r.disconnects,
                "seconds": r.secs,
                "msgs_per_s": r.msgs_per_s(),
                "mb_per_s": r.bytes() as f64 / r.secs / 1e6,
                "broker_cpu_ns": r.cpu.map(|c| c.total_ns),
                "proxy_thread_cpu_ns": r.cpu.map(|c| c.proxy_thread_ns),
            })
        })
        .collect();
    let hist_json = |h: &Histogram<u64>| {
        json!({
            "samples": h.len(),
            "p50_ns": h.value_at_quantile(0.5),
            "p90_ns": h.value_at_quantile(0.9),
            "p99_ns": h.value_at_quantile(0.99),
            "max_ns": h.max(),
            "mean_ns": h.mean(),
        })
    };
    let rounds_json = |rounds: &Rounds| {
        let mut v = hist_json(&merged(rounds));
        v["per_round"] = rounds
            .iter()
            .map(|(round, h)| {
                json!({
                    "round": round,
                    "p50_ns": h.value_at_quantile(0.5),
                    "p99_ns": h.value_at_quantile(0.99),
                })
            })
            .collect();
        v
    };
    let latency: Vec<Value> = res
        .latency
        .iter()
        .map(|((arm, size), rounds)| {
            let mut v = rounds_json(rounds);
            v["arm"] = json!(arm);
            v["size"] = json!(size);
            v
        })
        .collect();
    let setup: Map<String, Value> = res
        .setup
        .iter()
        .map(|(arm, rounds)| (arm.to_string(), rounds_json(rounds)))
        .collect();
    let memory: Map<String, Value> = res
        .memory
        .iter()
        .map(|(kind, r)| {
            (
                kind.to_string(),
                json!({
                    "pairs": r.pairs,
                    "rss_before_kib": r.rss_before_kib,
                    "rss_after_kib": r.rss_after_kib,
                    "per_pair_kib": r.per_pair_kib(),
                    "fds_added": r.fds_added,
                }),
            )
        })
        .collect();
    json!({
        "schema": "streamq-proxy/bench-proxy/1",
        "mode": opts.mode.name(),
        "stat": opts.stat.name(),
        "rounds": plan.rounds,
        "plan": {
            "throughput_messages": SIZES.iter().zip(plan.tput_msgs).map(|(s, n)| json!({"size": s, "messages": n})).collect::<Vec<_>>(),
            "latency_iterations_per_round": plan.latency_iters,
            "setup_iterations_per_round": plan.setup_iters,
            "stream_worker_slots": plan.stream_slots,
            "window_bytes_per_client": WINDOW_BYTES,
            "memory_pairs": plan.mem_pairs,
        },
        "elapsed_s": elapsed,
        "machine": machine,
        "loadavg_at_end": read_trim("/proc/loadavg"),
        "arms": ran,
        "skipped": skipped,
        "metrics": metrics,
        "raw": {
            "throughput": tput,
            "latency": latency,
            "setup": setup,
            "memory": memory,
        },
        "errors": res.errors,
    })
}

fn main() {
    child_main_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_cli(&args) {
        Ok(report) => {
            println!("{}", report.table);
            if !report.errors.is_empty() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
