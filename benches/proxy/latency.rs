//! Latency: request/reply round trips, the arms taking turns.

use std::time::Instant;

use hdrhistogram::Histogram;

use super::arms::Arm;
use super::client::connect_clients;
use super::options::Plan;
use super::worker::TAG_ECHO;
use super::zmq_ctx::zerr;

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Round trips a latency run makes on one arm before the next arm takes its turn, so that a
/// disturbance of the shared machine hits all arms alike.
pub(crate) const LATENCY_SLICE: usize = 100;

/// `n` request/reply round trips of `size`-byte echoes, recorded in ns when `hist` is given.
pub(crate) fn round_trips(
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
pub(crate) type LatencyRun = (zmq::Socket, Histogram<u64>);

/// One round of latency: one client per arm, the arms taking turns every [`LATENCY_SLICE`]
/// round trips.
pub(crate) fn latency_round(
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
