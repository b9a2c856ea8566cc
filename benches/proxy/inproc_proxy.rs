//! Brokers on a thread of this process: `zmq_proxy_stream` and `zmq_proxy_steerable`.

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

pub(crate) fn start_stream_proxy() -> Result<StreamProxy, String> {
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
