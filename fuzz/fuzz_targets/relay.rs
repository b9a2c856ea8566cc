//! The relay of taken-over pairs (`zmq_proxy_stream::relay::Relay`) against simulated TCP
//! connections with arbitrary timing: two pairs, four peers, each with bounded kernel
//! buffers; peers send, read, FIN and reset whenever the input says; readiness edges come
//! late, together or spuriously; reads and writes are short; time passes; PAUSE/RESUME;
//! the core aborts a pair. Checked throughout:
//!
//! - each peer receives a prefix of what it is owed (the bytes of the handover, then what
//!   its partner sent, in order): no byte of the other pair, no hole, no duplicate;
//! - a FIN is passed on only after the last byte its sender sent before it, and only when
//!   its sender did send one;
//! - reads ask for room (a zero-length read would look like a FIN), writes carry bytes;
//! - the relay's memory stays bounded by its per-direction buffer;
//! - a pair ends once, with one Ended event, and nothing is done to it afterwards.
//!
//! At the end every peer reads and sends nothing more: each pair still open must then have
//! delivered everything both ways.
#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

mod input;
use input::Input;
use zmq_proxy_stream::relay::{End, IoKind, IoOutcome, Relay, RelayEvent, RelayLimits};

const ECONNRESET: i32 = 104;
const MAX_OPS: usize = 4000;

#[derive(Default)]
struct Peer {
    /// What the peer sent into its connection, in order.
    sent: Vec<u8>,
    /// Kernel: sent by the peer, not yet read by the proxy.
    inbox: VecDeque<u8>,
    inbox_cap: usize,
    fin: bool,
    reset: bool,
    /// Kernel: written by the proxy, not yet read by the peer.
    outbox: VecDeque<u8>,
    outbox_cap: usize,
    received: Vec<u8>,
    /// The proxy shut this connection down for writing.
    got_fin: bool,
    /// Readiness not yet reported (readable, writable, hup).
    edge: (bool, bool, bool),
}

struct PairSim {
    slot: usize,
    tag: u64,
    /// What each end is owed first (the handover's bytes): client, worker.
    owed: [Vec<u8>; 2],
    peers: [Peer; 2],
    ended: bool,
    aborted: bool,
}

impl PairSim {
    /// Checks that `bytes`, written to `end` now, are the next ones it is owed.
    fn check_write(&self, end: End, bytes: &[u8]) {
        let p = &self.peers[end.index()];
        let owed = &self.owed[end.index()];
        let partner = &self.peers[end.other().index()].sent;
        let at = p.received.len() + p.outbox.len();
        for (i, &b) in bytes.iter().enumerate() {
            let j = at + i;
            let want = if j < owed.len() {
                owed.get(j)
            } else {
                partner.get(j - owed.len())
            };
            assert_eq!(
                Some(&b),
                want,
                "pair {} {end:?}: byte {j} is not the one it is owed",
                self.tag
            );
        }
    }

    fn owed_len(&self, end: End) -> usize {
        self.owed[end.index()].len() + self.peers[end.other().index()].sent.len()
    }
}

struct Sim {
    relay: Relay,
    now: Instant,
    pairs: Vec<PairSim>,
    buffer: usize,
}

impl Sim {
    /// Reports the pending readiness of every connection.
    fn edges(&mut self) {
        for pi in 0..self.pairs.len() {
            for end in End::BOTH {
                let slot = self.pairs[pi].slot;
                let e = std::mem::take(&mut self.pairs[pi].peers[end.index()].edge);
                if (e.0 || e.1 || e.2) && !self.pairs[pi].ended {
                    self.relay.on_ready(self.now, slot, end, e.0, e.1, e.2);
                }
            }
        }
    }

    /// Performs up to `max` operations the relay asks for; `limit` caps each read or write
    /// (short writes; reads are short when the kernel holds less). Returns how many were done.
    fn pump(&mut self, max: usize, limit: usize) -> usize {
        let mut done = 0;
        while done < max {
            let now = self.now;
            let Some(op) = self.relay.next_io() else {
                break;
            };
            done += 1;
            let slot = op.slot;
            let token = op.token;
            let pair = self
                .pairs
                .iter_mut()
                .find(|p| p.slot == slot && !p.ended)
                .expect("an operation names a live pair");
            let outcome = match op.kind {
                IoKind::Read { end, buf } => {
                    assert!(!buf.is_empty(), "a read with no room looks like a FIN");
                    let p = &mut pair.peers[end.index()];
                    if p.reset {
                        IoOutcome::Failed(ECONNRESET)
                    } else if p.inbox.is_empty() {
                        if p.fin {
                            IoOutcome::Done(0)
                        } else {
                            IoOutcome::WouldBlock
                        }
                    } else {
                        // A read takes all the kernel has, up to the room: a short read
                        // means the queue is empty (the relay relies on it, as edge-triggered
                        // epoll code does). Short writes are the input's choice.
                        let n = buf.len().min(p.inbox.len());
                        for (b, x) in buf[..n].iter_mut().zip(p.inbox.drain(..n)) {
                            *b = x;
                        }
                        IoOutcome::Done(n)
                    }
                }
                IoKind::Write { end, buf } => {
                    assert!(!buf.is_empty(), "a write of nothing");
                    let (room, reset) = {
                        let p = &pair.peers[end.index()];
                        let room = (p.outbox_cap - p.outbox.len()).min(limit).min(buf.len());
                        (room, p.reset)
                    };
                    if !reset {
                        pair.check_write(end, &buf[..room]);
                    }
                    let p = &mut pair.peers[end.index()];
                    assert!(!p.got_fin, "a write after the FIN");
                    if p.reset {
                        IoOutcome::Failed(ECONNRESET)
                    } else {
                        let n = buf.len().min(p.outbox_cap - p.outbox.len()).min(limit);
                        if n == 0 {
                            IoOutcome::WouldBlock
                        } else {
                            p.outbox.extend(&buf[..n]);
                            IoOutcome::Done(n)
                        }
                    }
                }
                IoKind::Shutdown { end } => {
                    let other = &pair.peers[end.other().index()];
                    assert!(
                        other.fin,
                        "a FIN passed on to {end:?} that its partner never sent"
                    );
                    let sent = other.sent.len();
                    let want = pair.owed_len(end);
                    let p = &mut pair.peers[end.index()];
                    assert!(!p.got_fin, "a second FIN");
                    assert_eq!(
                        p.received.len() + p.outbox.len(),
                        want,
                        "FIN to {end:?} before the last byte (partner sent {sent})"
                    );
                    if p.reset {
                        IoOutcome::Failed(ECONNRESET)
                    } else {
                        p.got_fin = true;
                        IoOutcome::Done(0)
                    }
                }
                IoKind::Close => {
                    pair.ended = true;
                    IoOutcome::Done(0)
                }
            };
            self.relay.on_io(now, token, outcome);
            let bound = 4 * self.buffer.min(zmq_proxy_stream::relay::MAX_BUFFER)
                + self
                    .pairs
                    .iter()
                    .map(|p| p.owed[0].len() + p.owed[1].len())
                    .sum::<usize>();
            assert!(
                self.relay.buffered() <= bound * self.pairs.len(),
                "relay holds {} bytes, over {}",
                self.relay.buffered(),
                bound * self.pairs.len()
            );
        }
        while let Some(ev) = self.relay.next_event() {
            if let RelayEvent::Ended { tag, .. } = ev {
                let p = self
                    .pairs
                    .iter()
                    .find(|p| p.tag == tag)
                    .expect("an event names a pair");
                assert!(p.ended, "Ended for pair {tag} before its Close");
            }
        }
        done
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let cfg = input.byte();
    let buffer = [64, 1000, 4096, 1 << 20][cfg as usize & 3];
    let idle = (cfg & 4 != 0).then(|| Duration::from_millis(5000));
    let mut sim = Sim {
        relay: Relay::new(RelayLimits {
            buffer,
            idle_timeout: idle,
            linger: Duration::from_millis(2000),
        }),
        now: Instant::now(),
        pairs: Vec::new(),
        buffer,
    };
    for tag in [11u64, 22] {
        let w = input.byte() as usize;
        let c = input.byte() as usize & 0x7f;
        let owed_worker: Vec<u8> = (0..w).map(|i| (tag as u8) ^ (i as u8)).collect();
        let owed_client: Vec<u8> = (0..c).map(|i| (tag as u8) ^ !(i as u8)).collect();
        let slot = sim
            .relay
            .add(sim.now, tag, owed_worker.clone(), owed_client.clone());
        let caps = input.byte() as usize;
        let peer = |shift: usize| Peer {
            inbox_cap: 1 + ((caps >> shift) & 3) * 3000,
            outbox_cap: 1 + ((caps >> (shift + 2)) & 3) * 3000,
            ..Peer::default()
        };
        sim.pairs.push(PairSim {
            slot,
            tag,
            owed: [owed_client, owed_worker],
            peers: [peer(0), peer(4)],
            ended: false,
            aborted: false,
        });
    }
    let mut ops = 0;
    while !input.0.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = input.byte();
        let who = input.byte() as usize;
        let pi = who & 1;
        let end = End::BOTH[(who >> 1) & 1];
        let tag = sim.pairs[pi].tag;
        let p = &mut sim.pairs[pi].peers[end.index()];
        match op % 12 {
            // The peer sends: tagged with pair, end and position.
            0 | 1 => {
                if !p.fin && !p.reset {
                    let n = (input.u16() as usize).min(p.inbox_cap - p.inbox.len());
                    let mark = (tag as u8) << 1 | end.index() as u8;
                    let start = p.sent.len();
                    let bytes: Vec<u8> = (start..start + n)
                        .map(|i| if i % 2 == 0 { mark } else { (i / 2) as u8 })
                        .collect();
                    p.sent.extend_from_slice(&bytes);
                    p.inbox.extend(bytes);
                    if n > 0 {
                        p.edge.0 = true;
                    }
                }
            }
            // The peer reads.
            2 | 3 => {
                let n = (input.u16() as usize).min(p.outbox.len());
                if n > 0 && !p.reset {
                    p.received.extend(p.outbox.drain(..n));
                    p.edge.1 = true;
                }
            }
            4 => {
                if !p.fin && !p.reset {
                    p.fin = true;
                    p.edge.0 = true;
                    p.edge.2 = true;
                }
            }
            5 => {
                if !p.reset {
                    p.reset = true;
                    p.inbox.clear();
                    p.edge = (true, true, true);
                }
            }
            6 => sim.edges(),
            7 | 8 => {
                let max = 1 + input.byte() as usize;
                let limit = 1 + input.u16() as usize;
                sim.pump(max, limit);
            }
            9 => {
                sim.now += Duration::from_millis(u64::from(input.u16()));
                sim.relay.on_timeout(sim.now);
            }
            10 => {
                // Spurious or duplicated readiness.
                let f = input.byte();
                let slot = sim.pairs[pi].slot;
                if !sim.pairs[pi].ended {
                    sim.relay
                        .on_ready(sim.now, slot, end, f & 1 != 0, f & 2 != 0, f & 4 != 0);
                }
            }
            _ => {
                if input.byte() & 1 == 0 {
                    let paused = input.byte() & 1 == 0;
                    sim.relay.set_paused(sim.now, paused);
                } else {
                    sim.pairs[pi].aborted = true;
                    sim.relay.abort(tag);
                }
            }
        }
    }

    // The end: no pause, every peer reads all it is given, every edge is reported.
    sim.relay.set_paused(sim.now, false);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 100_000, "the relay does not settle");
        for pair in &mut sim.pairs {
            for p in &mut pair.peers {
                if !p.outbox.is_empty() && !p.reset {
                    p.received.extend(p.outbox.drain(..));
                    p.edge.1 = true;
                }
            }
        }
        sim.edges();
        if sim.pump(usize::MAX, usize::MAX) == 0
            && sim
                .pairs
                .iter()
                .all(|p| p.peers.iter().all(|q| q.outbox.is_empty() || q.reset))
        {
            break;
        }
    }
    for pair in &sim.pairs {
        let broken = pair.aborted || pair.peers.iter().any(|p| p.reset);
        if pair.ended || broken {
            continue;
        }
        for end in End::BOTH {
            let p = &pair.peers[end.index()];
            assert_eq!(
                p.received.len(),
                pair.owed_len(end),
                "pair {} still open, {end:?} did not get all it is owed",
                pair.tag
            );
        }
    }
});
