//! Throughput: one-way streaming, with or without flow control.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::arms::Arm;
use super::client::connect_clients;
use super::cpu::{CpuProbe, CpuSample};
use super::worker::{ACK, CREDIT, TAG_COUNT, TAG_CREDIT, TAG_LAST};
use super::zmq_ctx::zerr;

#[derive(Clone, Debug)]
pub(crate) struct TputRecord {
    pub(crate) round: usize,
    pub(crate) arm: &'static str,
    pub(crate) flow: Flow,
    pub(crate) size: usize,
    pub(crate) clients: usize,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) secs: f64,
    pub(crate) cpu: Option<CpuSample>,
    pub(crate) disconnects: usize,
}

impl TputRecord {
    /// Payload bytes that reached the worker.
    pub(crate) fn bytes(&self) -> u64 {
        self.received * self.size as u64
    }
    pub(crate) fn msgs_per_s(&self) -> f64 {
        self.received as f64 / self.secs
    }
    /// Every message arrived over the connection it was sent on.
    pub(crate) fn complete(&self) -> bool {
        self.received == self.sent && self.disconnects == 0
    }
}

/// How a throughput client paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// At most [`WINDOW_BYTES`] of payload unacknowledged per client: the worker returns a
    /// credit every quarter window. What a real streaming application does (credit-based flow
    /// control), and far more than the bandwidth-delay product of loopback.
    Window,
    /// No flow control at all, like libzmq's local_thr/remote_thr: the client sends as fast as
    /// its socket takes messages and only TCP and the HWMs hold it back.
    Unbounded,
}

pub(crate) const WINDOW_BYTES: usize = 1 << 20;

/// What one throughput run gave.
pub(crate) struct TputOutcome {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) secs: f64,
    pub(crate) cpu: Option<CpuSample>,
    /// Times a client's connection was closed under it during the run.
    pub(crate) disconnects: usize,
}

pub(crate) struct ClientState {
    pub(crate) sent: usize,
    pub(crate) credited: usize,
    pub(crate) acked: bool,
}

/// One-way streaming: every client sends its share of `total` messages of `size` bytes as
/// fast as `flow` lets it; the worker counts them, returns credits (Window) and acknowledges
/// each client's last message. Timed from the first send to the last acknowledgement.
#[allow(clippy::too_many_arguments)]
pub(crate) fn throughput(
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

pub(crate) static NEXT_MONITOR: AtomicU64 = AtomicU64::new(0);

/// A monitor per client that reports when its connection is closed under it.
pub(crate) fn watch_disconnects(
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
pub(crate) fn count_disconnects(monitors: &[zmq::Socket]) -> usize {
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
