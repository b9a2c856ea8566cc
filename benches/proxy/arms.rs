//! The arms: one way from a client to a worker (direct, stream, stream-2t, stream-zmq, stream-dial,
//! steerable, haproxy).

use super::client::connect_clients;
use super::cpu::CpuProbe;
use super::haproxy::{tcp_port, Haproxy};
use super::inproc_proxy::{
    start_steerable_proxy, start_stream_proxy, InProcProxy, StreamKind, StreamProxy,
};
use super::options::Plan;
use super::worker::{bound_curve_worker, curve_worker_socket, Worker};
use super::zmq_ctx::zerr;

/// One way from a client to a worker.
pub(crate) struct Arm {
    pub(crate) name: &'static str,
    /// Where clients connect.
    pub(crate) endpoint: String,
    /// The CURVE server key clients use.
    pub(crate) server_public: [u8; 32],
    pub(crate) probe: Option<CpuProbe>,
    // Dropped in this order: the broker, then the worker.
    pub(crate) _proxy: Option<InProcProxy>,
    pub(crate) _haproxy: Option<Haproxy>,
    pub(crate) worker: Worker,
}

/// An arm through an in-process `zmq_proxy_stream`, with worker socket `w`.
fn stream_arm(name: &'static str, p: StreamProxy, keys: &zmq::CurveKeyPair, w: zmq::Socket) -> Arm {
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

pub(crate) fn start_arm(
    name: &'static str,
    keys: &zmq::CurveKeyPair,
    plan: &Plan,
) -> Result<Arm, String> {
    let wctx = zmq::Context::new();
    let arm = match name {
        "direct" => {
            let (w, endpoint) = bound_curve_worker(&wctx, keys)?;
            Arm {
                name,
                endpoint,
                server_public: keys.public_key,
                probe: None,
                _proxy: None,
                _haproxy: None,
                worker: Worker::spawn(w),
            }
        }
        "stream" | "stream-zmq" | "stream-2t" => {
            let kind = match name {
                "stream-zmq" => StreamKind::LibzmqRelay,
                "stream-2t" => StreamKind::TwoThreads,
                _ => StreamKind::Plain,
            };
            let p = start_stream_proxy(kind)?;
            let w = curve_worker_socket(&wctx, keys)?;
            w.set_immediate(true).map_err(zerr("immediate"))?;
            for _ in 0..plan.stream_slots {
                w.connect(&p.backend).map_err(zerr("worker connect"))?;
            }
            stream_arm(name, p, keys, w)
        }
        "stream-dial" => {
            // A bound worker the proxy dials, one connection per client.
            let (w, endpoint) = bound_curve_worker(&wctx, keys)?;
            let p = start_stream_proxy(StreamKind::DialOut(endpoint))?;
            stream_arm(name, p, keys, w)
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
            let (w, endpoint) = bound_curve_worker(&wctx, keys)?;
            let port = tcp_port(&endpoint)?;
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
