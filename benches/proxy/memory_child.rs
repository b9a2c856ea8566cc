//! The broker process of a memory run: this executable run again with [`CHILD_ENV`] set.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::inproc_proxy::control_pair;
use super::zmq_ctx::{endpoint_of, zerr, RawCtx};

/// Set in the environment of a memory child: which broker it runs.
pub const CHILD_ENV: &str = "STREAMQ_BENCH_CHILD";
pub(crate) const CHILD_SECRET_ENV: &str = "STREAMQ_BENCH_CURVE_SECRET";
/// The worker endpoint a `stream-dial` child dials.
pub(crate) const CHILD_ENDPOINT_ENV: &str = "STREAMQ_BENCH_WORKER_ENDPOINT";
pub(crate) const CHILD_MARKER: &str = "STREAMQ-BENCH-CHILD-READY";
/// Arguments of a memory child. The benchmark binary ignores them; the smoke test's binary
/// (libtest) needs them to run only its child entry point, `mem_child_entry`.
pub(crate) const CHILD_ARGS: [&str; 5] = [
    "--ignored",
    "--exact",
    "mem_child_entry",
    "--nocapture",
    "--test-threads=1",
];

/// This executable run again as a broker process (see [`child_main_from_env`]).
pub(crate) struct ChildBroker {
    pub(crate) child: Child,
    pub(crate) frontend: String,
    pub(crate) backend: String,
}

impl ChildBroker {
    pub(crate) fn spawn(kind: &str, secret: Option<&[u8; 32]>) -> Result<ChildBroker, String> {
        ChildBroker::spawn_with(kind, secret, None)
    }

    /// `spawn`, for a `stream-dial` child that dials `endpoint`.
    pub(crate) fn spawn_with(
        kind: &str,
        secret: Option<&[u8; 32]>,
        endpoint: Option<&str>,
    ) -> Result<ChildBroker, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        if let Some(ep) = endpoint {
            cmd.env(CHILD_ENDPOINT_ENV, ep);
        }
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

pub(crate) fn child_main(kind: &str) -> Result<(), String> {
    let ctx = RawCtx::new(None, None)?;
    let (frontend, backend) = match kind {
        "stream" | "stream-baseline" | "stream-dial" => (
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
    }
    frontend.bind("tcp://127.0.0.1:0").map_err(zerr("bind"))?;
    let dial_to = std::env::var(CHILD_ENDPOINT_ENV).ok();
    // Dial-out: the backend stays unbound; the proxy dials the worker itself.
    if kind != "stream-dial" {
        backend.bind("tcp://127.0.0.1:0").map_err(zerr("bind"))?;
    }
    let fe = endpoint_of(&frontend)?;
    let be = if kind == "stream-dial" {
        dial_to
            .clone()
            .ok_or("a stream-dial child needs a worker endpoint")?
    } else {
        endpoint_of(&backend)?
    };
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
            "stream-dial" => {
                use zmq_proxy_stream::ffi::*;
                let ep = dial_to.unwrap_or_default();
                // SAFETY: three live sockets, used by this thread only; the handle is made,
                // used and destroyed here; ep's bytes are readable for their length.
                unsafe {
                    let mut h = zmq_proxy_stream_new();
                    zmq_proxy_stream_setopt(
                        h,
                        zmq_proxy_stream::api::ZMQ_PROXY_STREAM_WORKER_ENDPOINT,
                        ep.as_ptr().cast(),
                        ep.len(),
                    );
                    zmq_proxy_stream_run(
                        h,
                        frontend.as_mut_ptr(),
                        backend.as_mut_ptr(),
                        theirs.as_mut_ptr(),
                    );
                    zmq_proxy_stream_destroy(&mut h);
                }
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
pub(crate) fn drain(frontend: &zmq::Socket, backend: &zmq::Socket) {
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
