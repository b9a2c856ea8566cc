//! The sans-IO core (`zmq_proxy_stream::core::Core`) driven by arbitrary event sequences, as
//! the driver would drive it: connections appear on either socket, send greetings (real
//! libzmq captures from fuzz/seeds/captures/), first commands, tagged data or garbage, go away;
//! sends succeed, meet full pipes or unreachable peers; closes find undrained data; time
//! passes; PAUSE/RESUME; pairs are handed over to the relay (taken, refused, not yet, broken)
//! and the relay reports them ended. After every step:
//!
//! - every connection has received the proxy's greeting (a prefix of it), then a prefix of
//!   what ONE connection of the other socket sent after its 64-byte greeting: no byte from
//!   another connection, no hole, no duplicate, nothing sent after the proxy closed the
//!   sender or took the pair over;
//! - nothing is sent to a connection the proxy closed, the peer left, or the relay owns;
//! - `Core::buffered()` stays within a bound per live connection;
//! - the core answers a full pipe by waiting, not by asking again at the same instant.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

mod input;
use input::Input;
use zmq_proxy_stream::core::{
    Chunk, Core, HandoverOutcome, Limits, PeerInfo, SendOutcome, Side, TransmitKind,
};
use zmq_proxy_stream::relay::{RelayEnd, RelayEvent};
use zmq_proxy_stream::zmtp::{
    greeting_opening, greeting_rest, HandshakeState, Mechanism, MechanismSet,
};

/// What libzmq 4.3 sends first, captured by fuzz/capture/capture.c: greeting (64 bytes),
/// then for a client its first command.
const CAPTURES: [&[u8]; 6] = [
    include_bytes!("../seeds/captures/null-client.bin"),
    include_bytes!("../seeds/captures/plain-client.bin"),
    include_bytes!("../seeds/captures/curve-client.bin"),
    include_bytes!("../seeds/captures/null-server.bin"),
    include_bytes!("../seeds/captures/plain-server.bin"),
    include_bytes!("../seeds/captures/curve-server.bin"),
];
const MAX_CONNS: u32 = 48;
const MAX_CHUNK: usize = 20_000;
const MAX_OPS: usize = 3000;

struct Conn {
    side: Side,
    id: Vec<u8>,
    n: u32,
    /// Every byte the peer sent that the proxy may pass on, in order.
    sent: Vec<u8>,
    /// Bytes it sent that must never reach anyone (after the proxy closed it, or after the
    /// pair was taken over: those belong to the relay).
    tagged: u64,
    got: Vec<u8>,
    connected: bool,
    /// When the proxy closed it.
    closed_at: Option<Instant>,
    /// Taken over, and the relay has ended the pair.
    released: bool,
    gone: bool,
    closed: bool,
    taken: bool,
    full: bool,
    unreachable: bool,
    undrained: bool,
}

struct Harness {
    core: Core<Vec<u8>>,
    now: Instant,
    conns: Vec<Conn>,
    /// Taken-over pairs: (tag, client index, worker index).
    taken: Vec<(u64, usize, usize)>,
    pair_buffer: usize,
    early_buffer: usize,
}

fn id(n: u32) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

impl Harness {
    fn find(&self, side: Side, id: &[u8]) -> usize {
        self.conns
            .iter()
            .position(|c| c.side == side && c.id == id)
            .expect("the core names only connections it was told of")
    }

    /// One receive from a STREAM socket, as the driver would do it (only while the core
    /// reads that socket).
    fn recv(&mut self, k: usize, data: Vec<u8>) {
        let c = &mut self.conns[k];
        // Once the relay ended a taken-over pair, libzmq has long let go of its connections:
        // nothing more comes for their ids.
        if c.gone || c.released || !self.core.reading(c.side) {
            return;
        }
        // After the proxy closed a connection, libzmq may still deliver what was already in
        // its pipe, for a moment (the core keeps tombstones for that); nothing after.
        if c.closed_at
            .is_some_and(|t| self.now > t + Duration::from_secs(1))
        {
            return;
        }
        if data.is_empty() {
            // libzmq's connect notification, then its disconnect notification.
            if c.connected {
                c.gone = true;
            }
            c.connected = true;
        } else if !c.closed && !c.taken {
            c.sent.extend_from_slice(&data);
        }
        let (side, n) = (c.side, c.n);
        let id = c.id.clone();
        self.core.on_receive(self.now, side, &id, data, |_| {
            Some(PeerInfo {
                fd: 100 + n as i32,
                addr: Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(10, 0, (n / 8) as u8, 1)),
                    1000 + n as u16,
                )),
                // A connection without its own address (n of 7 modulo 8) cannot be taken
                // over: its pairs stay on the libzmq relay.
                local: (n % 8 != 7).then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5555)),
            })
        });
    }

    /// The driver's send loop.
    fn flush(&mut self) {
        let mut sends = 0u32;
        loop {
            let now = self.now;
            let Some(tx) = self.core.next_transmit(now) else {
                break;
            };
            sends += 1;
            assert!(
                sends < 200_000,
                "the core keeps asking to send at one instant"
            );
            let side = tx.side;
            let k = self
                .conns
                .iter()
                .position(|c| c.side == side && c.id == tx.id)
                .expect("a transmit names a known connection");
            let c = &mut self.conns[k];
            let token = tx.token;
            let outcome = if c.unreachable {
                SendOutcome::Unreachable
            } else {
                match tx.kind {
                    TransmitKind::Data(chunk) => {
                        assert!(!c.closed, "data for a connection the proxy closed");
                        assert!(!c.taken, "data through libzmq for a taken-over connection");
                        if c.full {
                            SendOutcome::WouldBlock
                        } else {
                            match chunk {
                                Chunk::Held(v) => c.got.append(v),
                                Chunk::Copied(v) => c.got.extend_from_slice(v),
                            }
                            SendOutcome::Sent
                        }
                    }
                    TransmitKind::Close {
                        check_drained,
                        force,
                        ..
                    } => {
                        if check_drained && c.undrained {
                            SendOutcome::NotDrained(100)
                        } else if c.full && !force {
                            SendOutcome::WouldBlock
                        } else {
                            c.closed = true;
                            c.closed_at = Some(now);
                            SendOutcome::Sent
                        }
                    }
                    TransmitKind::Probe => {
                        if c.gone {
                            SendOutcome::Unreachable
                        } else {
                            SendOutcome::Sent
                        }
                    }
                    TransmitKind::Connect { .. } => SendOutcome::Unreachable,
                }
            };
            self.core.on_transmit(now, token, outcome);
        }
        while self.core.next_event().is_some() {}
    }

    fn handover(&mut self, outcome: HandoverOutcome) {
        let Some(h) = self.core.next_handover() else {
            return;
        };
        let tag = h.tag;
        let (client_id, worker_id) = (h.client_id.to_vec(), h.worker_id.to_vec());
        let (to_worker, to_client) = (h.to_worker, h.to_client);
        let c = self.find(Side::Frontend, &client_id);
        let w = self.find(Side::Backend, &worker_id);
        if outcome == HandoverOutcome::Taken {
            // The relay sends what the pair is owed first: it reaches the peers as if the
            // core had sent it.
            self.conns[w].got.extend_from_slice(&to_worker);
            self.conns[c].got.extend_from_slice(&to_client);
            self.conns[c].taken = true;
            self.conns[w].taken = true;
            self.taken.push((tag, c, w));
        }
        self.core.on_handover(self.now, tag, outcome);
    }

    fn check(&self) {
        let opening = greeting_opening();
        for (k, c) in self.conns.iter().enumerate() {
            let got = &c.got;
            let head = got.len().min(11);
            assert_eq!(&got[..head], &opening[..head], "conn {k}: greeting opening");
            if got.len() <= 11 {
                continue;
            }
            // Its mechanism and role (NULL has no roles) are the connection's business.
            let rest_len = (got.len() - 11).min(53);
            assert!(
                Mechanism::ALL.iter().any(|&m| {
                    [false, true]
                        .iter()
                        .any(|&s| greeting_rest(m, s)[..rest_len] == got[11..11 + rest_len])
                }),
                "conn {k} ({:?}): the rest of the proxy's greeting: {:?}",
                c.side,
                &got[..got.len().min(80)]
            );
            if got.len() <= 64 {
                continue;
            }
            let relayed = &got[64..];
            let from = self.conns.iter().position(|o| {
                o.side != c.side && o.sent.len() >= 64 && o.sent[64..].starts_with(relayed)
            });
            assert!(
                from.is_some(),
                "conn {k} ({:?}) got {} relayed bytes that are no prefix of any peer's stream",
                c.side,
                relayed.len()
            );
        }
        let live =
            self.conns.iter().filter(|c| !c.closed && !c.gone).count() + self.core.connections();
        let per_conn = 2 * self.pair_buffer + 2 * self.early_buffer + 6 * (MAX_CHUNK + 8192);
        assert!(
            self.core.buffered() <= live * per_conn,
            "buffered {} over {} for {} connections",
            self.core.buffered(),
            live * per_conn,
            live
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let cfg = input.byte();
    let cfg2 = input.byte();
    let pair_buffer = [4096, 16 << 10, 64 << 10, 1 << 20][cfg as usize & 3];
    let early_buffer = [1024, 64 << 10][(cfg >> 2) as usize & 1];
    let ms = |n: u64| Some(Duration::from_millis(n));
    let limits = Limits {
        mechanisms: MechanismSet::parse(
            ["CURVE", "NULL,PLAIN,CURVE,GSSAPI", "CURVE,PLAIN", "NULL"][cfg2 as usize & 3],
        )
        .expect("valid list"),
        backpressure: cfg & 0x08 != 0,
        takeover: cfg & 0x10 != 0,
        events: cfg & 0x20 != 0,
        idle_timeout: if cfg & 0x40 != 0 { ms(3000) } else { None },
        max_pairs: if cfg & 0x80 != 0 { Some(2) } else { None },
        max_waiting: 1 + (cfg2 as usize >> 2 & 7),
        pair_buffer,
        early_buffer,
        ..Limits::default()
    };
    let mut h = Harness {
        core: Core::new(limits),
        now: Instant::now(),
        conns: Vec::new(),
        taken: Vec::new(),
        pair_buffer,
        early_buffer,
    };
    let mut ops = 0;
    while !input.0.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = input.byte();
        let pick = input.byte() as usize;
        let k = if h.conns.is_empty() {
            None
        } else {
            Some(pick % h.conns.len())
        };
        match (op % 16, k) {
            (0 | 1, _) => {
                if (h.conns.len() as u32) < MAX_CONNS {
                    let n = h.conns.len() as u32;
                    let side = if op % 2 == 0 {
                        Side::Frontend
                    } else {
                        Side::Backend
                    };
                    h.conns.push(Conn {
                        side,
                        id: id(n),
                        n,
                        sent: Vec::new(),
                        tagged: 0,
                        got: Vec::new(),
                        connected: false,
                        closed_at: None,
                        released: false,
                        gone: false,
                        closed: false,
                        taken: false,
                        full: false,
                        unreachable: false,
                        undrained: false,
                    });
                    h.recv(h.conns.len() - 1, Vec::new());
                }
            }
            // The capture of a libzmq peer's first bytes, whole or cut at a chosen length.
            (2 | 3, Some(k)) => {
                let cap = CAPTURES[input.byte() as usize % CAPTURES.len()];
                let from = (h.conns[k].sent.len()).min(cap.len());
                let len = match input.byte() {
                    0 => cap.len() - from,
                    n => (n as usize).min(cap.len() - from),
                };
                if len > 0 {
                    h.recv(k, cap[from..from + len].to_vec());
                }
            }
            // Data tagged with the sender's number and its position in the stream.
            (4 | 5, Some(k)) => {
                let len = 1 + input.u16() as usize % MAX_CHUNK;
                let n = h.conns[k].n as u8;
                let start = h.conns[k].tagged;
                h.conns[k].tagged += len as u64;
                let data = (start..start + len as u64)
                    .map(|p| if p % 2 == 0 { n ^ 0xA5 } else { (p / 2) as u8 })
                    .collect();
                h.recv(k, data);
            }
            // Raw bytes from the input.
            (6, Some(k)) => {
                let len = input.byte() as usize;
                let data = input.bytes(len).to_vec();
                if !data.is_empty() {
                    h.recv(k, data);
                }
            }
            (7, Some(k)) => {
                if input.byte() & 1 == 0 {
                    h.recv(k, Vec::new());
                } else if !h.conns[k].gone {
                    h.conns[k].gone = true;
                    let (side, id) = (h.conns[k].side, h.conns[k].id.clone());
                    h.core.on_disconnected(h.now, side, &id);
                }
            }
            (8, _) => {
                let step = Duration::from_millis(u64::from(input.u16()) % 30_000);
                let end = h.now + step;
                // As the driver: wake at each deadline on the way.
                let mut wakes = 0;
                while let Some(at) = h.core.next_timeout(h.now) {
                    if at > end || wakes > 10_000 {
                        break;
                    }
                    wakes += 1;
                    h.now = at.max(h.now);
                    h.core.on_timeout(h.now);
                    h.flush();
                }
                h.now = end;
                h.core.on_timeout(h.now);
            }
            (9, Some(k)) => h.conns[k].full ^= true,
            // libzmq forgets the connection (EHOSTUNREACH from now on); it never knows it again.
            (10, Some(k)) => h.conns[k].unreachable = true,
            (11, Some(k)) => h.conns[k].undrained ^= true,
            (12, _) => {
                let paused = !h.core.is_paused();
                h.core.set_paused(paused);
            }
            (13, _) => {
                let outcome = [
                    HandoverOutcome::Taken,
                    HandoverOutcome::Fallback,
                    HandoverOutcome::NotYet,
                    HandoverOutcome::Broken,
                ][input.byte() as usize & 3];
                h.handover(outcome);
            }
            (14, _) if !h.taken.is_empty() => {
                let i = pick % h.taken.len();
                let (tag, c, w) = h.taken[i];
                let kind = input.byte();
                let event = if kind % 6 == 5 {
                    RelayEvent::HandshakeDone { tag }
                } else {
                    h.taken.swap_remove(i);
                    h.conns[c].released = true;
                    h.conns[w].released = true;
                    let end = [
                        RelayEnd::ClientClosed,
                        RelayEnd::WorkerClosed,
                        RelayEnd::IdleTimeout,
                        RelayEnd::Aborted,
                        RelayEnd::NotReleased,
                    ][kind as usize % 5];
                    RelayEvent::Ended {
                        tag,
                        end,
                        bytes_up: u64::from(input.u16()),
                        bytes_down: u64::from(input.u16()),
                        handshake: [
                            HandshakeState::Running,
                            HandshakeState::Ready,
                            HandshakeState::Error,
                        ][usize::from(kind >> 6) % 3],
                    }
                };
                h.core.on_relay_event(h.now, event);
            }
            _ => {}
        }
        // The driver passes the core's aborts to the relay, which ends those pairs.
        while let Some(tag) = h.core.next_abort() {
            if let Some(i) = h.taken.iter().position(|t| t.0 == tag) {
                let (_, c, w) = h.taken.swap_remove(i);
                h.conns[c].released = true;
                h.conns[w].released = true;
                h.core.on_relay_event(
                    h.now,
                    RelayEvent::Ended {
                        tag,
                        end: RelayEnd::Aborted,
                        bytes_up: 0,
                        bytes_down: 0,
                        handshake: HandshakeState::Running,
                    },
                );
            }
        }
        h.flush();
        h.check();
    }
    // STREAMQ_FUZZ_DEBUG=1: what a run reached (to see what the seeds cover).
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *DEBUG.get_or_init(|| std::env::var_os("STREAMQ_FUZZ_DEBUG").is_some()) {
        let s = h.core.stats();
        eprintln!(
            "ops {ops}, connections {}, pairs {}, taken over {}, relayed to each: {:?} {s:?}",
            h.conns.len(),
            s.pairs_total,
            s.pairs_taken_over,
            h.conns
                .iter()
                .map(|c| c.got.len().saturating_sub(64))
                .collect::<Vec<_>>()
        );
    }
});
