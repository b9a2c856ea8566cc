//! Unit and property tests of the core, without sockets: peers, pipes and time are simulated.
use super::*;
use crate::zmtp::tests::{curve_hello, libzmq_greeting, null_ready};
use crate::zmtp::{greeting_opening, greeting_rest, MechanismSet};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const F: Side = Side::Frontend;
const B: Side = Side::Backend;
const CURVE: Mechanism = Mechanism::Curve;

fn id(n: u32) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// A simulated libzmq: records what each connection got, and can make pipes full.
pub(super) struct Sim {
    core: Core<Vec<u8>>,
    now: Instant,
    got: HashMap<(Side, Vec<u8>), Vec<u8>>,
    closed: Vec<(Side, Vec<u8>)>,
    full: HashSet<(Side, Vec<u8>)>,
    unreachable: HashSet<(Side, Vec<u8>)>,
    /// Connections whose kernel send queue is not yet empty.
    undrained: HashSet<(Side, Vec<u8>)>,
    /// What their kernel send queue holds.
    pending: usize,
    /// Liveness checks answered "alive".
    probes: usize,
    /// Peer addresses of connections, by number (default: none known).
    addrs: HashMap<u32, std::net::SocketAddr>,
    /// Dial-out: connections asked for, as (endpoint, routing id), in order.
    dials: Vec<(String, Vec<u8>)>,
    /// Endpoints whose zmq_connect fails.
    refused: HashSet<String>,
}

impl Sim {
    fn new(limits: Limits) -> Sim {
        Sim {
            core: Core::new(limits),
            now: Instant::now(),
            got: HashMap::new(),
            closed: Vec::new(),
            full: HashSet::new(),
            unreachable: HashSet::new(),
            undrained: HashSet::new(),
            pending: 1000,
            probes: 0,
            addrs: HashMap::new(),
            dials: Vec::new(),
            refused: HashSet::new(),
        }
    }

    fn recv(&mut self, side: Side, n: u32, data: &[u8]) {
        let addr = self.addrs.get(&n).copied();
        self.core
            .on_receive(self.now, side, &id(n), data.to_vec(), |_| {
                Some(PeerInfo {
                    fd: n as i32,
                    addr,
                    local: None,
                })
            });
        self.flush();
    }

    fn connect(&mut self, side: Side, n: u32) {
        self.recv(side, n, &[]);
    }

    /// A libzmq client of `m` connects, greets and sends its first command.
    fn client(&mut self, n: u32, m: Mechanism) {
        self.connect(F, n);
        assert_eq!(self.got(F, n), greeting_opening());
        self.recv(F, n, &libzmq_greeting(m, false));
        self.recv(F, n, &first_command(m));
    }

    /// A libzmq worker (server) of `m` connects and greets.
    fn worker(&mut self, n: u32, m: Mechanism) {
        self.connect(B, n);
        // libzmq 4.3 sends as-server = 0 even for servers.
        self.recv(B, n, &libzmq_greeting(m, false));
    }

    /// A client and a worker, paired, with what they got so far forgotten.
    fn pair(&mut self, c: u32, w: u32) {
        self.worker(w, CURVE);
        self.client(c, CURVE);
        let mut want_w = greeting_opening().to_vec();
        want_w.extend_from_slice(&greeting_rest(CURVE, false));
        want_w.extend_from_slice(&curve_hello());
        assert_eq!(
            self.got(B, w),
            want_w.as_slice(),
            "worker's view of the handshake"
        );
        let mut want_c = greeting_opening().to_vec();
        want_c.extend_from_slice(&greeting_rest(CURVE, true));
        assert_eq!(
            self.got(F, c),
            want_c.as_slice(),
            "client's view of the handshake"
        );
        self.got.clear();
    }

    fn flush(&mut self) {
        let now = self.now;
        loop {
            let (token, outcome) = {
                let Some(tx) = self.core.next_transmit(now) else {
                    return;
                };
                let key = (tx.side, tx.id.to_vec());
                let outcome = if self.unreachable.contains(&key) {
                    SendOutcome::Unreachable
                } else {
                    match tx.kind {
                        TransmitKind::Probe => {
                            self.probes += 1;
                            SendOutcome::Sent
                        }
                        TransmitKind::Connect { endpoint } => {
                            if self.refused.contains(endpoint) {
                                SendOutcome::Unreachable
                            } else {
                                self.dials.push((endpoint.to_string(), tx.id.to_vec()));
                                SendOutcome::Sent
                            }
                        }
                        TransmitKind::Data(chunk) => {
                            if self.full.contains(&key) {
                                SendOutcome::WouldBlock
                            } else {
                                let bytes = match chunk {
                                    Chunk::Held(v) => std::mem::take(v),
                                    Chunk::Copied(v) => v.clone(),
                                };
                                self.got.entry(key).or_default().extend(bytes);
                                SendOutcome::Sent
                            }
                        }
                        TransmitKind::Close {
                            check_drained,
                            force,
                            ..
                        } => {
                            if check_drained && self.undrained.contains(&key) {
                                SendOutcome::NotDrained(self.pending)
                            } else if self.full.contains(&key) && !force {
                                // libzmq #4828: even the close fails on a full pipe.
                                SendOutcome::WouldBlock
                            } else {
                                self.closed.push(key);
                                SendOutcome::Sent
                            }
                        }
                    }
                };
                (tx.token, outcome)
            };
            self.core.on_transmit(now, token, outcome);
        }
    }

    /// Lets `d` pass, firing timers on the way as the driver would.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.core.next_timeout(self.now) {
            if at > end {
                break;
            }
            self.now = at.max(self.now);
            self.core.on_timeout(self.now);
            self.flush();
        }
        self.now = end;
        self.core.on_timeout(self.now);
        self.flush();
    }

    fn got(&self, side: Side, n: u32) -> &[u8] {
        self.got
            .get(&(side, id(n)))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    fn is_closed(&self, side: Side, n: u32) -> bool {
        self.closed.contains(&(side, id(n)))
    }
}

fn first_command(m: Mechanism) -> Vec<u8> {
    match m {
        Mechanism::Curve => curve_hello(),
        Mechanism::Null => null_ready(),
        Mechanism::Plain => vec![0x04, 9, 5, b'H', b'E', b'L', b'L', b'O', 1, b'u', 0],
        Mechanism::Gssapi => vec![0x04, 9, 8, b'I', b'N', b'I', b'T', b'I', b'A', b'T', b'E'],
    }
}

#[test]
fn handshake_is_answered_and_first_command_relayed_when_the_pair_forms() {
    let mut s = Sim::new(Limits::default());
    s.client(1, CURVE);
    assert_eq!(s.core.stats().clients_waiting, 1);
    assert_eq!(s.core.stats().pairs_open, 0);
    s.worker(10, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().clients_waiting, 0);
    let mut want = greeting_opening().to_vec();
    want.extend_from_slice(&greeting_rest(CURVE, false));
    want.extend_from_slice(&curve_hello());
    assert_eq!(s.got(B, 10), want.as_slice());
    s.got.clear();
    s.recv(B, 10, b"WELCOME...");
    s.recv(F, 1, b"INITIATE...");
    assert_eq!(s.got(F, 1), b"WELCOME...");
    assert_eq!(s.got(B, 10), b"INITIATE...");
    let st = s.core.stats();
    assert_eq!(st.frontend.bytes_in, (64 + 202 + 11) as u64);
    assert_eq!(st.backend.bytes_out, (64 + 202 + 11) as u64);
}

#[test]
fn greeting_and_command_split_at_every_byte_are_accepted() {
    let mut stream = libzmq_greeting(CURVE, false);
    stream.extend_from_slice(&curve_hello());
    for split in [1, 9, 10, 11, 12, 33, 63, 64, 65, 66, 100, 265] {
        let mut s = Sim::new(Limits::default());
        s.worker(10, CURVE);
        s.connect(F, 1);
        s.recv(F, 1, &stream[..split]);
        s.recv(F, 1, &stream[split..]);
        assert_eq!(s.core.stats().pairs_open, 1, "split at {split}");
    }
}

#[test]
fn bad_clients_are_refused_and_counted_without_touching_a_worker() {
    type Counter = fn(&Stats) -> u64;
    let cases: Vec<(Vec<u8>, Counter)> = vec![
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), |st| {
            st.reject_bad_greeting
        }),
        (vec![0x16, 3, 1, 0, 0xa5, 1, 0, 0], |st| {
            st.reject_bad_greeting
        }),
        (libzmq_greeting(CURVE, true), |st| st.reject_bad_greeting),
        (
            {
                let mut v = libzmq_greeting(CURVE, false);
                let mut bad = curve_hello();
                bad[20] = 9; // padding must be zero
                v.extend(bad);
                v
            },
            |st| st.reject_bad_command,
        ),
        (
            {
                let mut v = libzmq_greeting(CURVE, false);
                v.extend_from_slice(&null_ready());
                v
            },
            |st| st.reject_bad_command,
        ),
    ];
    for (bytes, counter) in cases {
        let mut s = Sim::new(Limits::default());
        s.worker(10, CURVE);
        s.connect(F, 1);
        s.recv(F, 1, &bytes);
        assert!(s.is_closed(F, 1), "{bytes:?}");
        assert_eq!(counter(s.core.stats()), 1);
        assert_eq!(
            s.core.stats().idle_workers(CURVE),
            1,
            "the worker is untouched"
        );
        assert_eq!(s.got(B, 10), greeting_opening(), "the worker saw nothing");
    }
}

#[test]
fn mechanisms_outside_the_allowed_set_are_refused_on_both_sides() {
    let limits = Limits {
        mechanisms: MechanismSet::parse("CURVE").unwrap(),
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.connect(F, 1);
    s.recv(F, 1, &libzmq_greeting(Mechanism::Null, false));
    assert!(s.is_closed(F, 1));
    assert_eq!(s.core.stats().reject_mechanism, 1);
    s.worker(10, Mechanism::Null);
    assert!(s.is_closed(B, 10));
    assert_eq!(s.core.stats().workers_rejected, 1);
}

#[test]
fn clients_pair_only_with_workers_of_their_mechanism() {
    let mut s = Sim::new(Limits::default());
    s.worker(10, Mechanism::Null);
    s.client(1, CURVE);
    assert_eq!(s.core.stats().pairs_open, 0);
    assert_eq!(s.core.stats().idle_workers(Mechanism::Null), 1);
    s.worker(11, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
    s.client(2, Mechanism::Null);
    assert_eq!(s.core.stats().pairs_open, 2);
    s.client(3, Mechanism::Plain);
    s.worker(12, Mechanism::Plain);
    s.client(4, Mechanism::Gssapi);
    s.worker(13, Mechanism::Gssapi);
    assert_eq!(s.core.stats().pairs_open, 4);
}

#[test]
fn workers_must_greet_well_and_stay_silent_until_paired() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.recv(B, 10, &[0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // signature without 0x7f
    assert!(s.is_closed(B, 10));
    s.worker(11, CURVE);
    s.recv(B, 11, b"unsolicited");
    assert!(s.is_closed(B, 11));
    assert_eq!(s.core.stats().workers_rejected, 2);
    assert_eq!(s.core.stats().idle_workers(CURVE), 0);
}

#[test]
fn slow_handshakes_time_out() {
    let mut s = Sim::new(Limits::default());
    s.connect(F, 1);
    s.recv(F, 1, &libzmq_greeting(CURVE, false)); // then silence
    s.connect(B, 10); // a worker that never greets
    s.advance(Duration::from_millis(4900));
    assert!(!s.is_closed(F, 1));
    s.advance(Duration::from_millis(200));
    assert!(s.is_closed(F, 1));
    assert!(s.is_closed(B, 10));
    assert_eq!(s.core.stats().reject_handshake_timeout, 1);
    assert_eq!(s.core.stats().workers_rejected, 1);
}

#[test]
fn waiting_clients_time_out_and_the_queue_is_bounded() {
    let limits = Limits {
        max_waiting: 2,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.client(1, CURVE);
    s.client(2, CURVE);
    s.client(3, CURVE);
    assert!(s.is_closed(F, 3));
    assert_eq!(s.core.stats().reject_queue_full, 1);
    assert_eq!(s.core.stats().clients_waiting, 2);
    s.advance(Duration::from_millis(20_100));
    assert!(s.is_closed(F, 1) && s.is_closed(F, 2));
    assert_eq!(s.core.stats().reject_wait_timeout, 2);
    assert_eq!(s.core.stats().clients_waiting, 0);
    // A worker arriving now finds nobody: the departed clients left no trace.
    s.worker(10, CURVE);
    assert_eq!(s.core.stats().idle_workers(CURVE), 1);
}

#[test]
fn a_full_queue_does_not_refuse_a_client_that_is_paired_at_once() {
    let limits = Limits {
        max_waiting: 0,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.worker(10, CURVE);
    s.client(1, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().reject_queue_full, 0);
    s.client(2, CURVE);
    assert!(s.is_closed(F, 2), "no worker, no room to wait");
    assert_eq!(s.core.stats().reject_queue_full, 1);
}

#[test]
fn max_pairs_makes_clients_wait_for_a_slot() {
    let limits = Limits {
        max_pairs: Some(1),
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.pair(1, 10);
    s.worker(11, CURVE);
    s.client(2, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().clients_waiting, 1);
    s.recv(F, 1, &[]); // the first client leaves
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().clients_waiting, 0);
}

#[test]
fn idle_pairs_are_closed_after_the_idle_timeout() {
    let limits = Limits {
        idle_timeout: Some(Duration::from_millis(1000)),
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.pair(1, 10);
    s.advance(Duration::from_millis(600));
    s.recv(B, 10, b"still here");
    s.advance(Duration::from_millis(600));
    assert!(!s.is_closed(F, 1), "traffic reset the clock");
    s.advance(Duration::from_millis(600));
    assert!(s.is_closed(F, 1) && s.is_closed(B, 10));
    assert_eq!(s.core.stats().closed_idle_timeout, 1);
}

#[test]
fn old_idle_workers_are_recycled() {
    let mut s = Sim::new(Limits::default());
    s.worker(10, CURVE);
    s.advance(Duration::from_millis(19_000));
    s.worker(11, CURVE);
    s.advance(Duration::from_millis(1_100));
    assert!(s.is_closed(B, 10));
    assert!(!s.is_closed(B, 11));
    assert_eq!(s.core.stats().workers_recycled, 1);
    assert_eq!(s.core.stats().idle_workers(CURVE), 1);
    s.client(1, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
}

#[test]
fn clients_wait_in_fifo_order_and_workers_are_used_least_recently_first() {
    let mut s = Sim::new(Limits::default());
    for c in 1..=3 {
        s.client(c, CURVE);
    }
    s.worker(10, CURVE);
    s.got.clear();
    s.recv(B, 10, b"a");
    assert_eq!(
        s.got(F, 1),
        b"a",
        "the first client waiting is served first"
    );
    s.worker(11, CURVE);
    s.got.clear();
    s.recv(B, 11, b"b");
    assert_eq!(s.got(F, 2), b"b");

    let mut s = Sim::new(Limits::default());
    s.worker(10, CURVE);
    s.worker(11, CURVE);
    s.client(1, CURVE);
    assert!(
        s.got(B, 10).ends_with(&curve_hello()),
        "idle longest goes first"
    );
    assert_eq!(s.got(B, 11), greeting_opening());
}

#[test]
fn client_leaving_closes_its_worker_after_forwarded_bytes_left() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.recv(F, 1, b"last words");
    s.undrained.insert((B, id(10)));
    s.recv(F, 1, &[]); // client disconnects
    assert_eq!(s.core.stats().pairs_open, 0);
    assert_eq!(s.got(B, 10), b"last words");
    assert!(!s.is_closed(B, 10), "not before the settle time");
    s.advance(Duration::from_millis(50));
    assert!(
        !s.is_closed(B, 10),
        "not while the kernel still holds bytes"
    );
    s.undrained.clear();
    s.advance(Duration::from_millis(50));
    assert!(s.is_closed(B, 10));
    assert_eq!(s.core.connections(), 0);
}

#[test]
fn close_gives_up_waiting_for_the_kernel_after_the_linger() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.recv(F, 1, b"x");
    s.undrained.insert((B, id(10)));
    s.recv(F, 1, &[]);
    s.advance(Limits::default().close_linger + Duration::from_millis(100));
    assert!(s.is_closed(B, 10));
}

#[test]
fn a_peer_still_reading_keeps_its_close_waiting_past_the_linger() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.recv(F, 1, b"big reply");
    s.undrained.insert((B, id(10)));
    s.recv(F, 1, &[]);
    let linger = Limits::default().close_linger;
    for _ in 0..5 {
        s.advance(linger / 2);
        s.pending -= 100; // the peer reads a little
    }
    assert!(
        !s.is_closed(B, 10),
        "a reader making progress is not cut off"
    );
    s.advance(linger + Duration::from_millis(100));
    assert!(
        s.is_closed(B, 10),
        "one that stops reading is, after the linger"
    );
}

#[test]
fn full_pipe_is_retried_in_order_without_holes() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.full.insert((B, id(10)));
    let mut sent = Vec::new();
    for i in 0..100u32 {
        let chunk = vec![i as u8; 1 + (i as usize * 37) % 9000];
        sent.extend_from_slice(&chunk);
        s.recv(F, 1, &chunk);
    }
    assert_eq!(s.got(B, 10), b"");
    assert!(s.core.stats().send_retries >= 1);
    assert!(s.core.next_timeout(s.now).is_some(), "a retry is scheduled");
    s.full.clear();
    s.advance(Duration::from_millis(100));
    assert_eq!(s.got(B, 10), sent.as_slice());
    assert_eq!(s.core.buffered(), 0);
}

#[test]
fn a_pair_over_its_buffer_bound_is_closed_and_counted() {
    let limits = Limits {
        pair_buffer: 64 << 10,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.pair(1, 10);
    s.pair(2, 11);
    s.full.insert((B, id(10)));
    for _ in 0..20 {
        s.recv(F, 1, &[7u8; 8192]);
    }
    assert_eq!(s.core.stats().closed_buffer_overflow, 1);
    assert!(s.is_closed(F, 1));
    // The stalled worker's pipe is full, so libzmq refuses even the close until the
    // linger passes and the close is forced.
    assert!(!s.is_closed(B, 10));
    s.advance(Limits::default().close_linger + Duration::from_millis(100));
    assert!(s.is_closed(B, 10));
    assert_eq!(s.core.connections(), 2);
    // The other pair is untouched.
    s.recv(F, 2, b"fine");
    assert_eq!(s.got(B, 11), b"fine");
}

#[test]
fn a_waiting_client_sending_too_much_is_closed() {
    let limits = Limits {
        early_buffer: 1024,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.client(1, CURVE);
    s.recv(F, 1, &[1u8; 2000]);
    assert!(s.is_closed(F, 1));
    assert_eq!(s.core.stats().closed_early_overflow, 1);
    assert_eq!(s.core.stats().clients_waiting, 0);
    s.pair(2, 10);
    assert_eq!(s.core.stats().pairs_open, 1);
}

#[test]
fn late_notifications_of_connections_we_closed_are_ignored() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.recv(F, 1, &[]);
    s.advance(Duration::from_millis(10));
    assert!(s.is_closed(B, 10));
    // The worker's own disconnect crossed our close: it must not look like a new worker.
    s.connect(B, 10);
    assert_eq!(s.core.connections(), 0);
    s.recv(B, 10, b"late data");
    assert_eq!(s.core.stats().stray_chunks, 1);
    assert_eq!(s.core.connections(), 0);
}

#[test]
fn unreachable_destination_ends_the_pair() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.unreachable.insert((B, id(10)));
    s.recv(F, 1, b"to nowhere");
    s.advance(Duration::from_millis(10));
    assert_eq!(s.core.stats().pairs_open, 0);
    assert!(s.is_closed(F, 1));
    assert_eq!(s.core.connections(), 0);
}

#[test]
fn paused_core_sends_nothing_and_sleeps() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.full.insert((B, id(10)));
    s.recv(F, 1, b"queued");
    s.core.set_paused(true);
    assert_eq!(s.core.next_timeout(s.now), None, "paused: no wake-ups");
    s.full.clear();
    s.advance(Duration::from_secs(1));
    assert_eq!(s.got(B, 10), b"");
    s.core.set_paused(false);
    s.advance(Duration::from_millis(100));
    assert_eq!(s.got(B, 10), b"queued");
}

#[test]
fn leaving_while_screening_waiting_or_idle_leaves_no_trace() {
    let mut s = Sim::new(Limits::default());
    s.worker(10, CURVE);
    s.recv(B, 10, &[]);
    s.client(1, CURVE);
    s.recv(F, 1, &[]);
    s.connect(F, 2);
    s.recv(F, 2, &[]);
    assert_eq!(s.core.stats().idle_workers(CURVE), 0);
    assert_eq!(s.core.stats().clients_waiting, 0);
    assert_eq!(s.core.connections(), 0);
    s.pair(3, 11);
    assert_eq!(s.core.stats().pairs_open, 1);
}

#[test]
fn pools_stay_small_under_churn() {
    let mut s = Sim::new(Limits::default());
    for n in 0..10_000 {
        s.worker(n, CURVE);
        s.recv(B, n, &[]);
    }
    let biggest = s.core.pools.idle.iter().map(|q| q.len()).max().unwrap();
    assert!(biggest <= 200, "idle pool holds {biggest}");
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        pair: usize,
        to_worker: bool,
        len: usize,
    },
    Block {
        pair: usize,
        worker: bool,
    },
    Unblock {
        pair: usize,
        worker: bool,
    },
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, any::<bool>(), 1..10_000usize)
            .prop_map(|(pair, to_worker, len)| Op::Send { pair, to_worker, len }),
        1 => (0..4usize, any::<bool>()).prop_map(|(pair, worker)| Op::Block { pair, worker }),
        1 => (0..4usize, any::<bool>()).prop_map(|(pair, worker)| Op::Unblock { pair, worker }),
        1 => (0..40u64).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Invariant 1: whatever the chunk sizes and however pipes fill and drain, each side
    /// receives exactly its partner's bytes, in order, and nothing from another pair.
    #[test]
    fn streams_arrive_whole_and_in_order(ops in proptest::collection::vec(op(), 1..200)) {
        let mut s = Sim::new(Limits { pair_buffer: usize::MAX, ..Limits::default() });
        let mut expect: HashMap<(Side, Vec<u8>), Vec<u8>> = HashMap::new();
        let mut counter = 0u8;
        for p in 0..4u32 {
            s.pair(p, 100 + p);
        }
        for op in ops {
            match op {
                Op::Send { pair, to_worker, len } => {
                    let p = pair as u32;
                    let bytes: Vec<u8> = (0..len).map(|i| counter.wrapping_add(i as u8)).collect();
                    counter = counter.wrapping_add(1);
                    if to_worker {
                        expect.entry((B, id(100 + p))).or_default().extend(&bytes);
                        s.recv(F, p, &bytes);
                    } else {
                        expect.entry((F, id(p))).or_default().extend(&bytes);
                        s.recv(B, 100 + p, &bytes);
                    }
                }
                Op::Block { pair, worker } => {
                    let k = if worker { (B, id(100 + pair as u32)) } else { (F, id(pair as u32)) };
                    s.full.insert(k);
                }
                Op::Unblock { pair, worker } => {
                    let k = if worker { (B, id(100 + pair as u32)) } else { (F, id(pair as u32)) };
                    s.full.remove(&k);
                }
                Op::Wait(ms) => s.advance(Duration::from_millis(ms)),
            }
        }
        s.full.clear();
        s.advance(Duration::from_secs(1));
        for (k, v) in &expect {
            prop_assert_eq!(s.got.get(k).map(|g| g.as_slice()).unwrap_or(&[]), v.as_slice());
        }
        prop_assert_eq!(s.core.buffered(), 0);
    }

    /// Arbitrary bytes from a client, split arbitrarily, never reach a worker unless they
    /// begin with a valid greeting and first command; the core never panics.
    #[test]
    fn arbitrary_client_bytes_never_reach_a_worker(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        cut in 0usize..400,
    ) {
        let mut s = Sim::new(Limits::default());
        s.worker(10, CURVE);
        s.connect(F, 1);
        let cut = cut.min(bytes.len());
        s.recv(F, 1, &bytes[..cut]);
        s.recv(F, 1, &bytes[cut..]);
        prop_assert_eq!(s.core.stats().pairs_open, 0);
        prop_assert_eq!(s.got(B, 10), &greeting_opening()[..]);
    }
}

#[test]
fn backpressure_holds_the_source_socket_back_and_loses_nothing() {
    let limits = Limits {
        pair_buffer: 64 << 10,
        backpressure: true,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.pair(1, 10);
    s.pair(2, 11);
    s.full.insert((B, id(10)));
    let mut sent = Vec::new();
    let mut i = 0u8;
    while s.core.reading(F) {
        let chunk = vec![i; 8192];
        i = i.wrapping_add(1);
        sent.extend_from_slice(&chunk);
        s.recv(F, 1, &chunk);
    }
    assert!(!s.core.reading(F), "the frontend is held back");
    assert!(s.core.reading(B), "the other direction still flows");
    assert_eq!(s.core.stats().closed_buffer_overflow, 0);
    assert_eq!(s.core.stats().backpressure_pauses, 1);
    s.advance(Duration::from_millis(500));
    assert!(!s.core.reading(F));
    s.full.clear();
    s.advance(Duration::from_millis(100));
    assert!(s.core.reading(F), "reading resumes once drained");
    assert_eq!(s.got(B, 10), sent.as_slice());
    assert!(!s.is_closed(F, 1));
}

#[test]
fn backpressure_closes_a_destination_that_takes_nothing_for_the_stall_timeout() {
    let limits = Limits {
        pair_buffer: 64 << 10,
        backpressure: true,
        stall_timeout: Some(Duration::from_millis(1000)),
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.pair(1, 10);
    s.full.insert((B, id(10)));
    while s.core.reading(F) {
        s.recv(F, 1, &[1u8; 8192]);
    }
    s.advance(Duration::from_millis(900));
    assert!(!s.is_closed(F, 1));
    s.advance(Duration::from_millis(200));
    assert!(s.is_closed(F, 1));
    assert_eq!(s.core.stats().closed_stalled, 1);
    assert!(s.core.reading(F), "the others are read again");
}

#[test]
fn quiet_pairs_are_checked_and_a_vanished_connection_ends_its_pair() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.pair(2, 11);
    // Pair 2 keeps talking: it is never probed.
    for _ in 0..5 {
        s.advance(Duration::from_millis(3000));
        s.recv(F, 2, b"ping");
    }
    assert!(
        s.probes >= 2,
        "pair 1 was checked, and found alive ({})",
        s.probes
    );
    assert_eq!(s.core.stats().pairs_open, 2);
    // Client 1 vanished without a notification (libzmq dropped it at a full pipe).
    s.unreachable.insert((F, id(1)));
    s.advance(Duration::from_millis(10_100));
    assert_eq!(s.core.stats().found_gone, 1);
    s.advance(Duration::from_millis(100));
    assert!(s.is_closed(B, 10), "its worker is closed");
    assert_eq!(s.core.stats().pairs_open, 1);
}

#[test]
fn address_policy_refuses_clients_before_sending_them_a_byte() {
    let mut limits = Limits::default();
    limits.policy.allow.push(Cidr::parse("10.0.0.0/8").unwrap());
    limits.policy.deny.push(Cidr::parse("10.9.9.9").unwrap());
    limits.policy.max_per_address = Some(2);
    let mut s = Sim::new(limits);
    let at = |ip: &str, port: u16| std::net::SocketAddr::new(ip.parse().unwrap(), port);
    s.addrs.insert(1, at("192.0.2.1", 1000));
    s.addrs.insert(2, at("10.9.9.9", 1000));
    s.connect(F, 1);
    s.recv(F, 1, &libzmq_greeting(CURVE, false));
    s.connect(F, 2);
    s.recv(F, 2, &libzmq_greeting(CURVE, false));
    assert!(s.is_closed(F, 1) && s.is_closed(F, 2));
    assert_eq!(
        s.got(F, 1),
        greeting_opening(),
        "a refused client gets only the opening"
    );
    assert_eq!(s.core.stats().reject_denied, 2);
    for n in 3..=5 {
        s.addrs.insert(n, at("10.1.1.1", 2000 + n as u16));
        s.connect(F, n);
        s.recv(F, n, &libzmq_greeting(CURVE, false));
    }
    assert!(
        !s.is_closed(F, 3) && !s.is_closed(F, 4),
        "{:?} {:?}",
        s.closed,
        s.core.stats()
    );
    assert!(
        s.is_closed(F, 5),
        "a third connection from one address is refused"
    );
    assert_eq!(s.core.stats().reject_per_address, 1);
    s.recv(F, 3, &[]); // one leaves: its slot frees
    s.addrs.insert(6, at("10.1.1.1", 3000));
    s.connect(F, 6);
    s.recv(F, 6, &libzmq_greeting(CURVE, false));
    assert!(!s.is_closed(F, 6));
    assert_eq!(s.core.per_address.len(), 1);
}

#[path = "dial_tests.rs"]
mod dial;
