//! The relay driven against two simulated TCP connections: bounded kernel buffers, short
//! reads and writes, EAGAIN, FIN, resets and edge-triggered readiness, with a clock moved by
//! hand. No descriptors: the same machine runs over real sockets in the driver.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

/// A tiny deterministic generator, so every case replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One peer and the kernel between it and the proxy.
struct Peer {
    /// What the peer program will send, and how much of it it has.
    to_send: Vec<u8>,
    sent: usize,
    /// Sends FIN after the last byte.
    closes: bool,
    fin_sent: bool,
    /// Resets the connection after this many bytes were sent.
    resets_after: Option<usize>,
    reset: bool,
    /// Kernel: bytes the peer sent that the proxy has not read.
    inbox: VecDeque<u8>,
    inbox_cap: usize,
    /// Kernel: bytes the proxy wrote that the peer program has not read.
    outbox: VecDeque<u8>,
    outbox_cap: usize,
    /// What the peer program received, and whether it saw the proxy's FIN.
    received: Vec<u8>,
    got_fin: bool,
    /// Bytes received when the FIN came.
    fin_at: Option<usize>,
    /// The peer reads only while this is set.
    reading: bool,
    closed_by_proxy: bool,
}

impl Peer {
    fn new(to_send: Vec<u8>, closes: bool, inbox_cap: usize, outbox_cap: usize) -> Peer {
        Peer {
            to_send,
            sent: 0,
            closes,
            fin_sent: false,
            resets_after: None,
            reset: false,
            inbox: VecDeque::new(),
            inbox_cap,
            outbox: VecDeque::new(),
            outbox_cap,
            received: Vec::new(),
            got_fin: false,
            fin_at: None,
            reading: true,
            closed_by_proxy: false,
        }
    }
}

struct RelaySim {
    relay: Relay,
    now: Instant,
    slot: usize,
    peers: [Peer; 2],
    rng: Rng,
    ended: Option<RelayEvent>,
    handshake_done: bool,
    max_buffered: usize,
}

impl RelaySim {
    fn new(seed: u64, peers: [Peer; 2], to_worker: Vec<u8>, buffer: usize) -> RelaySim {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits {
            buffer,
            idle_timeout: None,
            linger: Duration::from_secs(2),
        });
        let slot = relay.add(now, 7, to_worker, Vec::new());
        RelaySim {
            relay,
            now,
            slot,
            peers,
            rng: Rng(seed | 1),
            ended: None,
            handshake_done: false,
            max_buffered: 0,
        }
    }

    /// The peers' programs and kernels move on a little; readiness edges are reported.
    fn peers_step(&mut self) {
        for end in End::BOTH {
            let i = end.index();
            let (mut readable, mut writable, mut hup) = (false, false, false);
            let rng = &mut self.rng;
            let p = &mut self.peers[i];
            if p.closed_by_proxy || p.reset {
                continue;
            }
            let room = p.inbox_cap - p.inbox.len();
            let n = rng.below(room.min(p.to_send.len() - p.sent) + 1);
            if n > 0 {
                p.inbox.extend(&p.to_send[p.sent..p.sent + n]);
                p.sent += n;
                readable = true;
            }
            if p.resets_after.is_some_and(|r| p.sent >= r) {
                p.reset = true;
                hup = true;
            } else if p.sent == p.to_send.len() && p.closes && !p.fin_sent {
                p.fin_sent = true;
                hup = true;
            }
            if p.reading && !p.outbox.is_empty() {
                let n = 1 + rng.below(p.outbox.len());
                p.received.extend(p.outbox.drain(..n));
                writable = true;
            }
            if readable || writable || hup {
                self.relay
                    .on_ready(self.now, self.slot, end, readable, writable, hup);
            }
        }
    }

    /// The proxy performs up to a few operations.
    fn relay_step(&mut self) {
        self.relay.on_timeout(self.now);
        for _ in 0..1 + self.rng.below(8) {
            let Some(op) = self.relay.next_io() else {
                break;
            };
            let token = op.token;
            let outcome = match op.kind {
                IoKind::Read { end, buf } => {
                    let p = &mut self.peers[end.index()];
                    // A TCP read returns what is there, up to the room given.
                    let n = buf.len().min(p.inbox.len());
                    if p.reset && p.inbox.is_empty() {
                        IoOutcome::Failed(libc::ECONNRESET)
                    } else if n > 0 {
                        for (d, s) in buf.iter_mut().zip(p.inbox.drain(..n)) {
                            *d = s;
                        }
                        IoOutcome::Done(n)
                    } else if p.fin_sent && p.inbox.is_empty() {
                        IoOutcome::Done(0)
                    } else {
                        IoOutcome::WouldBlock
                    }
                }
                IoKind::Write { end, buf } => {
                    let p = &mut self.peers[end.index()];
                    assert!(!p.got_fin, "a write after the FIN");
                    if p.reset {
                        IoOutcome::Failed(libc::EPIPE)
                    } else {
                        let room = p.outbox_cap - p.outbox.len();
                        // A TCP write takes what fits in the send buffer.
                        let n = buf.len().min(room);
                        if n == 0 {
                            IoOutcome::WouldBlock
                        } else {
                            p.outbox.extend(&buf[..n]);
                            IoOutcome::Done(n)
                        }
                    }
                }
                IoKind::Shutdown { end } => {
                    let p = &mut self.peers[end.index()];
                    p.got_fin = true;
                    p.fin_at = Some(p.received.len() + p.outbox.len());
                    IoOutcome::Done(0)
                }
                IoKind::Close => {
                    for p in &mut self.peers {
                        p.closed_by_proxy = true;
                    }
                    IoOutcome::Done(0)
                }
            };
            self.relay.on_io(self.now, token, outcome);
            self.max_buffered = self.max_buffered.max(self.relay.buffered());
        }
        while let Some(e) = self.relay.next_event() {
            match e {
                RelayEvent::HandshakeDone { .. } => self.handshake_done = true,
                RelayEvent::Ended { .. } => {
                    assert!(self.ended.is_none(), "ended twice");
                    self.ended = Some(e);
                }
            }
        }
    }

    /// What the peer at `end` got: read by its program or still in its kernel buffer (a
    /// close after the last write still delivers it).
    fn delivered(&self, end: End) -> Vec<u8> {
        let p = &self.peers[end.index()];
        let mut all = p.received.clone();
        all.extend(p.outbox.iter());
        all
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            if self.ended.is_some() {
                break;
            }
            self.peers_step();
            self.relay_step();
            self.now += Duration::from_millis(1);
        }
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Both streams arrive whole and in order, the FIN comes after the last byte, and the
    /// buffers stay within their bound.
    #[test]
    fn streams_arrive_whole_then_fin(
        seed in any::<u64>(),
        up in 0usize..200_000,
        down in 0usize..200_000,
        caps in (1usize..70_000, 1usize..70_000, 1usize..70_000, 1usize..70_000),
        buffer in 16_384usize..300_000,
        handover in 0usize..2000,
    ) {
        let to_worker = pattern(9, handover);
        let client = Peer::new(pattern(1, up), true, caps.0, caps.1);
        let worker = Peer::new(pattern(2, down), true, caps.2, caps.3);
        let mut sim = RelaySim::new(seed, [client, worker], to_worker.clone(), buffer);
        sim.run(200_000);
        let mut expected_at_worker = to_worker.clone();
        expected_at_worker.extend(pattern(1, up));
        let [c, w] = &sim.peers;
        prop_assert_eq!(w.received.len() + w.outbox.len(), expected_at_worker.len());
        let mut at_worker = w.received.clone();
        at_worker.extend(w.outbox.iter());
        prop_assert!(at_worker == expected_at_worker, "client to worker stream differs");
        let mut at_client = c.received.clone();
        at_client.extend(c.outbox.iter());
        prop_assert!(at_client == pattern(2, down), "worker to client stream differs");
        prop_assert_eq!(w.fin_at, Some(expected_at_worker.len()));
        prop_assert_eq!(c.fin_at, Some(down));
        let counted = matches!(sim.ended, Some(RelayEvent::Ended { bytes_up, bytes_down, .. })
            if bytes_up == up as u64 && bytes_down == down as u64);
        prop_assert!(counted);
        let bound = 2 * buffer.min(MAX_BUFFER) + handover + POOL_KEEP * buffer.min(MAX_BUFFER);
        prop_assert!(sim.max_buffered <= bound);
    }

    /// A reset on either side ends the pair at once; nothing is ever written after a FIN.
    #[test]
    fn a_reset_ends_the_pair(
        seed in any::<u64>(),
        worker_resets in any::<bool>(),
        after in 0usize..50_000,
    ) {
        let mut client = Peer::new(pattern(1, 100_000), false, 30_000, 30_000);
        let mut worker = Peer::new(pattern(2, 100_000), false, 30_000, 30_000);
        if worker_resets {
            worker.resets_after = Some(after);
        } else {
            client.resets_after = Some(after);
        }
        let mut sim = RelaySim::new(seed, [client, worker], Vec::new(), 65536);
        sim.run(100_000);
        let want = if worker_resets { RelayEnd::WorkerClosed } else { RelayEnd::ClientClosed };
        let ended = matches!(sim.ended, Some(RelayEvent::Ended { end, .. }) if end == want);
        prop_assert!(ended);
    }
}

#[test]
fn a_destination_that_stops_reading_holds_back_its_source_only() {
    let client = Peer::new(pattern(1, 10 << 20), false, 65536, 65536);
    let mut worker = Peer::new(Vec::new(), false, 65536, 65536);
    worker.reading = false;
    let mut sim = RelaySim::new(42, [client, worker], Vec::new(), 65536);
    sim.run(20_000);
    // The worker's kernel buffer and the pair's buffer are full; the client's kernel buffer
    // too; the rest waits in the client program. Nothing is lost and nothing is closed.
    assert!(sim.ended.is_none());
    let w = &sim.peers[1];
    assert_eq!(w.outbox.len(), 65536);
    assert!(sim.relay.buffered() <= 65536 + POOL_KEEP * 65536);
    assert!(sim.peers[0].sent < 10 << 20);
    sim.peers[1].reading = true;
    sim.peers[0].closes = true;
    sim.run(2_000_000);
    let got = sim.delivered(End::Worker);
    assert_eq!(
        got.len(),
        10 << 20,
        "ended: {:?}, sent {}",
        sim.ended,
        sim.peers[0].sent
    );
    assert!(got == pattern(1, 10 << 20));
    assert!(matches!(
        sim.ended,
        Some(RelayEvent::Ended {
            end: RelayEnd::ClientClosed,
            ..
        })
    ));
}

#[test]
fn paused_pairs_do_no_io_and_resume_where_they_were() {
    let client = Peer::new(pattern(1, 100_000), true, 8192, 8192);
    let worker = Peer::new(pattern(2, 100_000), true, 8192, 8192);
    let mut sim = RelaySim::new(5, [client, worker], Vec::new(), 16384);
    sim.relay.set_paused(sim.now, true);
    for _ in 0..1000 {
        sim.peers_step();
        assert!(sim.relay.next_io().is_none(), "I/O while paused");
    }
    sim.relay.set_paused(sim.now, false);
    sim.run(200_000);
    assert!(sim.delivered(End::Worker) == pattern(1, 100_000));
    assert!(sim.delivered(End::Client) == pattern(2, 100_000));
    assert!(sim.ended.is_some());
}

#[test]
fn an_idle_pair_is_closed_at_the_idle_timeout_and_a_busy_one_is_not() {
    let now = Instant::now();
    let mut relay = Relay::new(RelayLimits {
        buffer: 65536,
        idle_timeout: Some(Duration::from_secs(10)),
        linger: Duration::from_secs(2),
    });
    let slot = relay.add(now, 1, Vec::new(), Vec::new());
    // Drain the optimistic first reads.
    while let Some(op) = relay.next_io() {
        let t = op.token;
        relay.on_io(now, t, IoOutcome::WouldBlock);
    }
    relay.on_timeout(now + Duration::from_secs(5));
    assert!(relay.next_io().is_none());
    // Activity at 8 s moves the deadline to 18 s.
    relay.on_ready(now, slot, End::Client, true, false, false);
    let op = relay.next_io().expect("a read");
    let t = op.token;
    relay.on_io(now + Duration::from_secs(8), t, IoOutcome::Done(1));
    while let Some(op) = relay.next_io() {
        let t = op.token;
        relay.on_io(now, t, IoOutcome::WouldBlock);
    }
    relay.on_timeout(now + Duration::from_secs(11));
    assert!(relay.next_io().is_none(), "closed although busy 3 s ago");
    relay.on_timeout(now + Duration::from_secs(18));
    let op = relay.next_io().expect("the close");
    assert!(matches!(op.kind, IoKind::Close));
    let t = op.token;
    relay.on_io(now + Duration::from_secs(18), t, IoOutcome::Done(0));
    assert!(matches!(
        relay.next_event(),
        Some(RelayEvent::Ended {
            tag: 1,
            end: RelayEnd::IdleTimeout,
            bytes_up: 1,
            ..
        })
    ));
    assert!(relay.is_empty());
}

#[test]
fn a_half_closed_pair_ends_after_the_linger_without_progress() {
    // The client closes; the worker never answers with its own FIN.
    let client = Peer::new(pattern(1, 1000), true, 8192, 8192);
    let worker = Peer::new(Vec::new(), false, 8192, 8192);
    let mut sim = RelaySim::new(3, [client, worker], Vec::new(), 16384);
    sim.run(1900);
    assert!(sim.ended.is_none());
    assert_eq!(sim.peers[1].fin_at, Some(1000));
    sim.run(1000);
    assert!(matches!(
        sim.ended,
        Some(RelayEvent::Ended {
            end: RelayEnd::ClientClosed,
            ..
        })
    ));
}

#[test]
fn abort_closes_at_once_and_unknown_tags_are_ignored() {
    let now = Instant::now();
    let mut relay = Relay::new(RelayLimits {
        buffer: 65536,
        idle_timeout: None,
        linger: Duration::from_secs(2),
    });
    relay.add(now, 1, b"abc".to_vec(), Vec::new());
    relay.abort(99);
    relay.abort(1);
    let op = relay.next_io().expect("the close");
    assert!(matches!(op.kind, IoKind::Close));
    let t = op.token;
    relay.on_io(now, t, IoOutcome::Done(0));
    assert!(matches!(
        relay.next_event(),
        Some(RelayEvent::Ended {
            end: RelayEnd::Aborted,
            ..
        })
    ));
}

#[test]
fn a_tail_nobody_takes_is_given_up_after_the_linger() {
    // The client sends and closes; the worker never reads again: the tail cannot leave, and
    // the pair ends after the linger without progress instead of waiting for ever.
    let client = Peer::new(pattern(1, 150_000), true, 65536, 65536);
    let mut worker = Peer::new(Vec::new(), false, 65536, 65536);
    worker.reading = false;
    let mut sim = RelaySim::new(11, [client, worker], Vec::new(), 65536);
    sim.run(1500);
    assert!(sim.ended.is_none(), "still within the linger");
    assert!(sim.peers[0].fin_sent, "the client's FIN is in");
    sim.run(1500);
    assert!(matches!(
        sim.ended,
        Some(RelayEvent::Ended {
            end: RelayEnd::ClientClosed,
            ..
        })
    ));
}

/// A ZMTP command frame holding just `name` (what the handshake watch reads).
fn command(name: &str) -> Vec<u8> {
    let mut frame = vec![0x04, name.len() as u8 + 1, name.len() as u8];
    frame.extend_from_slice(name.as_bytes());
    frame
}

/// The pair's end reports what the worker's handshake came to: READY (also announced at
/// once), ERROR (a worker that refused its client, e.g. by ZAP), or neither; a client that
/// closes first after the ERROR does not hide it.
#[test]
fn the_end_says_what_the_worker_s_handshake_came_to() {
    for (sent, want, announced) in [
        (command("READY"), HandshakeState::Ready, true),
        (command("ERROR"), HandshakeState::Error, false),
        (Vec::new(), HandshakeState::Running, false),
    ] {
        // The worker answers and keeps its connection; the client then leaves.
        let client = Peer::new(Vec::new(), true, 10_000, 10_000);
        let worker = Peer::new(sent, false, 10_000, 10_000);
        let mut sim = RelaySim::new(5, [client, worker], Vec::new(), 65536);
        sim.run(10_000);
        let Some(RelayEvent::Ended { handshake, end, .. }) = sim.ended else {
            panic!("the pair ends: {:?}", sim.ended);
        };
        assert_eq!(handshake, want);
        assert_eq!(end, RelayEnd::ClientClosed, "{want:?}");
        assert_eq!(sim.handshake_done, announced, "{want:?}");
    }
}
