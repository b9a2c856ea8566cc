//! CURVE connection set-up: a fresh client, from connect to its first reply.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::arms::Arm;
use super::client::{configure_client, ping_payload};
use super::latency::new_histogram;
use super::zmq_ctx::zerr;

/// CURVE connection set-up: a fresh client socket, from connect to the echo of its first
/// request, in ns.
pub(crate) fn setup_once(
    arm: &Arm,
    cctx: &zmq::Context,
    me: &zmq::CurveKeyPair,
) -> Result<u64, String> {
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

pub(crate) const SETUP_PAUSE: Duration = Duration::from_millis(2);

/// One round of set-ups, the arms taking turns at every set-up.
pub(crate) fn setup_round(
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
