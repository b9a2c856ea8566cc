//! Brokers on a thread of this process: `zmq_proxy_stream` (plain, or through an options
//! handle) and `zmq_proxy_steerable`.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use super::cpu::{gettid, zmq_threads_with_prefix, CpuProbe, NEXT_PREFIX};
use super::zmq_ctx::{endpoint_of, zerr, RawCtx};

/// A proxy running on a thread of this process, stopped with TERMINATE on drop.
pub(crate) struct InProcProxy {
    pub(crate) control: zmq::Socket,
    pub(crate) thread: Option<JoinHandle<()>>,
    // Last: its sockets are closed by the thread and by `control`'s drop first.
    pub(crate) _ctx: Arc<RawCtx>,
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
pub(crate) fn spawn_proxy_thread(
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

pub(crate) fn control_pair(
    ctx: &RawCtx,
    prefix: i32,
) -> Result<(zmq::Socket, zmq::Socket), String> {
    let endpoint = format!("inproc://streamq-bench-control-{prefix}");
    let theirs = ctx.socket(zmq_sys::ZMQ_PAIR)?;
    theirs.bind(&endpoint).map_err(zerr("control bind"))?;
    let ours = ctx.socket(zmq_sys::ZMQ_PAIR)?;
    ours.connect(&endpoint).map_err(zerr("control connect"))?;
    Ok((ours, theirs))
}

/// `zmq_proxy_stream` between two bound STREAM sockets of a new context.
pub(crate) struct StreamProxy {
    pub(crate) proxy: InProcProxy,
    pub(crate) probe: CpuProbe,
    pub(crate) frontend: String,
    pub(crate) backend: String,
}

/// A `zmq_proxy_stream_t` options handle, destroyed on drop. Used by one thread at a time.
struct OptionsHandle(*mut zmq_proxy_stream::ffi::zmq_proxy_stream_t);

// SAFETY: the handle is plain data owned by this value; it is made on one thread, then
// moved to the proxy thread, which alone uses it from then on.
unsafe impl Send for OptionsHandle {}

/// How an in-process `zmq_proxy_stream` runs.
#[derive(Clone, Debug)]
pub(crate) enum StreamKind {
    /// `zmq_proxy_stream()` with defaults; workers connect to the backend (arm `stream`).
    Plain,
    /// The libzmq relay (ZMQ_PROXY_STREAM_TAKEOVER 0) in its lossless mode,
    /// ZMQ_PROXY_STREAM_BACKPRESSURE 1: the data path before takeover (arm `stream-zmq`).
    LibzmqRelay,
    /// ZMQ_PROXY_STREAM_THREADS 2 (arm `stream-2t`).
    TwoThreads,
    /// ZMQ_PROXY_STREAM_WORKER_ENDPOINT: the proxy dials this bound worker (arm `stream-dial`).
    DialOut(String),
}

impl StreamKind {
    fn name(&self) -> &'static str {
        match self {
            StreamKind::Plain => "stream",
            StreamKind::LibzmqRelay => "stream-zmq",
            StreamKind::TwoThreads => "stream-2t",
            StreamKind::DialOut(_) => "stream-dial",
        }
    }
}

impl OptionsHandle {
    /// A handle with default options but one set to `value` (an int or a string).
    fn with(option: std::os::raw::c_int, value: &[u8]) -> Result<OptionsHandle, String> {
        OptionsHandle::with_all(&[(option, value)])
    }

    /// A handle with default options but these set.
    fn with_all(options: &[(std::os::raw::c_int, &[u8])]) -> Result<OptionsHandle, String> {
        let h = OptionsHandle(zmq_proxy_stream::ffi::zmq_proxy_stream_new());
        if h.0.is_null() {
            return Err(format!(
                "zmq_proxy_stream_new: {}",
                std::io::Error::last_os_error()
            ));
        }
        for &(option, value) in options {
            // SAFETY: a live handle; `value` is readable for the size given.
            let rc = unsafe {
                zmq_proxy_stream::ffi::zmq_proxy_stream_setopt(
                    h.0,
                    option,
                    value.as_ptr().cast(),
                    value.len(),
                )
            };
            if rc != 0 {
                return Err(format!(
                    "setopt {option}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(h)
    }

    fn as_ptr(&self) -> *mut zmq_proxy_stream::ffi::zmq_proxy_stream_t {
        self.0
    }
}

impl Drop for OptionsHandle {
    fn drop(&mut self) {
        // SAFETY: a live handle from zmq_proxy_stream_new, released once; no run is going on.
        unsafe { zmq_proxy_stream::ffi::zmq_proxy_stream_destroy(&mut self.0) };
    }
}

/// Starts `zmq_proxy_stream` as `kind` says: plain (arm `stream`), or through an options
/// handle (arms `stream-zmq` and `stream-dial`; the latter's backend is not bound).
pub(crate) fn start_stream_proxy(kind: StreamKind) -> Result<StreamProxy, String> {
    use zmq_proxy_stream::api::{
        ZMQ_PROXY_STREAM_BACKPRESSURE, ZMQ_PROXY_STREAM_TAKEOVER, ZMQ_PROXY_STREAM_THREADS,
        ZMQ_PROXY_STREAM_WORKER_ENDPOINT,
    };
    let name = kind.name();
    let handle = match &kind {
        StreamKind::Plain => None,
        StreamKind::LibzmqRelay => Some(OptionsHandle::with_all(&[
            (ZMQ_PROXY_STREAM_TAKEOVER, &0i32.to_ne_bytes()),
            (ZMQ_PROXY_STREAM_BACKPRESSURE, &1i32.to_ne_bytes()),
        ])?),
        StreamKind::TwoThreads => Some(OptionsHandle::with(
            ZMQ_PROXY_STREAM_THREADS,
            &2i32.to_ne_bytes(),
        )?),
        StreamKind::DialOut(ep) => Some(OptionsHandle::with(
            ZMQ_PROXY_STREAM_WORKER_ENDPOINT,
            ep.as_bytes(),
        )?),
    };
    let prefix = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
    let ctx = RawCtx::new(Some(prefix), None)?;
    let frontend = ctx.socket(zmq_sys::ZMQ_STREAM)?;
    let backend = ctx.socket(zmq_sys::ZMQ_STREAM)?;
    frontend
        .bind("tcp://127.0.0.1:0")
        .map_err(zerr("frontend bind"))?;
    let be = if let StreamKind::DialOut(ep) = &kind {
        ep.clone()
    } else {
        backend
            .bind("tcp://127.0.0.1:0")
            .map_err(zerr("backend bind"))?;
        endpoint_of(&backend)?
    };
    let fe = endpoint_of(&frontend)?;
    let (ours, mut theirs) = control_pair(&ctx, prefix)?;
    let (mut frontend, mut backend) = (frontend, backend);
    // The sockets (and the handle) move to the proxy thread (the zmq crate's sockets are
    // Send; spawn is the memory barrier libzmq asks for) and are closed there when the proxy
    // returns.
    let (proxy, probe) = spawn_proxy_thread(name, ctx.clone(), prefix, ours, move || {
        let (f, b, c) = (
            frontend.as_mut_ptr(),
            backend.as_mut_ptr(),
            theirs.as_mut_ptr(),
        );
        let rc = match &handle {
            // SAFETY: a live handle and three live sockets, used by this thread only; the
            // proxy never closes them.
            Some(h) => unsafe { zmq_proxy_stream::ffi::zmq_proxy_stream_run(h.as_ptr(), f, b, c) },
            // SAFETY: as above, without a handle.
            None => unsafe { zmq_proxy_stream::zmq_proxy_stream(f, b, c) },
        };
        if rc != 0 {
            eprintln!(
                "{} returned {rc}: {}",
                if handle.is_some() {
                    "zmq_proxy_stream_run"
                } else {
                    "zmq_proxy_stream"
                },
                std::io::Error::last_os_error()
            );
        }
        drop((frontend, backend, theirs, handle));
    })?;
    Ok(StreamProxy {
        proxy,
        probe,
        frontend: fe,
        backend: be,
    })
}

/// `zmq_proxy_steerable` with a CURVE ROUTER frontend and a DEALER backend.
pub(crate) fn start_steerable_proxy(
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
