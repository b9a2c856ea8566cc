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
    /// Connects fail for want of a descriptor (EMFILE) on this host.
    out_of_descriptors: bool,
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
            out_of_descriptors: false,
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
                            if self.out_of_descriptors {
                                SendOutcome::LocalFailure
                            } else if self.refused.contains(endpoint) {
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
fn clients_wait_in_fifo_order() {
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

/// Found by the core fuzz target: after EHOSTUNREACH, libzmq's disconnect notification for
/// the same id can still be queued. It must not read as a new connection to greet.
#[test]
fn notification_after_unreachable_is_not_a_new_connection() {
    let mut s = Sim::new(Limits::default());
    s.pair(1, 10);
    s.unreachable.insert((B, id(10)));
    s.recv(F, 1, b"to nowhere");
    s.advance(Duration::from_millis(10));
    assert_eq!(s.core.connections(), 0);
    s.got.clear();
    // The worker's disconnect notification, late: [id][] on the backend. Looked at before
    // any send is tried (a send would fail again and hide the phantom).
    s.core
        .on_receive(s.now, B, &id(10), Vec::new(), |_| None::<PeerInfo>);
    assert_eq!(s.core.connections(), 0, "no phantom connection");
    assert!(s.core.next_transmit(s.now).is_none(), "nothing to send");
    // A disconnect notification is final: the client's own id, once its notification came,
    // is no longer remembered by a tombstone, and a real new connection is still a new one.
    s.connect(F, 2);
    assert_eq!(s.core.connections(), 1);
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
    assert_eq!(s.core.pools.idle.len(), 0);
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

#[path = "balance_tests.rs"]
mod balance;

#[path = "budget_tests.rs"]
mod budget;

#[path = "ban_tests.rs"]
mod ban;

// ---- The handover of a pair to the relay (ZMQ_PROXY_STREAM_TAKEOVER) -----------------------
//
// A pair is handed over only when the driver knows both connections' sockets fully (peer
// and local address, from ZMQ_SRCFD). `Sim::recv` gives no local address, so pairs made with
// it stay on the libzmq relay; the helpers below give the whole `PeerInfo`.

/// What the driver learns about connection `n` of `side`: a fixed peer and local address.
fn known_peer(side: Side, n: u32) -> PeerInfo {
    let at = |port: u32| std::net::SocketAddr::from(([127, 0, 0, 1], port as u16));
    let (peer, local) = match side {
        Side::Frontend => (at(30_000 + n), at(5555)),
        Side::Backend => (at(40_000 + n), at(5556)),
    };
    PeerInfo {
        fd: 1000 + n as i32,
        addr: Some(peer),
        local: Some(local),
    }
}

/// A [`Handover`] with its borrowed fields copied out.
#[derive(Debug)]
struct TakenHandover {
    tag: u64,
    client_id: Vec<u8>,
    client: PeerInfo,
    worker_id: Vec<u8>,
    worker: PeerInfo,
    received: [u64; 2],
    to_worker: Vec<u8>,
}

impl Sim {
    /// `recv`, with the connection's socket fully known (see `known_peer`).
    fn recv_known(&mut self, side: Side, n: u32, data: &[u8]) {
        let info = known_peer(side, n);
        self.core
            .on_receive(self.now, side, &id(n), data.to_vec(), |_| Some(info));
        self.flush();
    }

    /// `client`, with its socket fully known.
    fn known_client(&mut self, n: u32, m: Mechanism) {
        self.connect(F, n);
        assert_eq!(self.got(F, n), greeting_opening());
        self.recv_known(F, n, &libzmq_greeting(m, false));
        self.recv_known(F, n, &first_command(m));
    }

    /// `worker`, with its socket fully known.
    fn known_worker(&mut self, n: u32, m: Mechanism) {
        self.connect(B, n);
        self.recv_known(B, n, &libzmq_greeting(m, false));
    }

    /// The next pair the core wants taken out of libzmq, if any.
    fn handover(&mut self) -> Option<TakenHandover> {
        self.core.next_handover().map(|h| TakenHandover {
            tag: h.tag,
            client_id: h.client_id.to_vec(),
            client: h.client,
            worker_id: h.worker_id.to_vec(),
            worker: h.worker,
            received: h.received,
            to_worker: h.to_worker,
        })
    }

    /// Answers the pending handover, then makes the sends the core wants, as the driver does.
    fn answer(&mut self, tag: u64, outcome: HandoverOutcome) {
        self.core.on_handover(self.now, tag, outcome);
        self.flush();
    }

    /// A known CURVE worker `w` and client `c`, paired and taken over; returns the tag.
    fn taken_pair(&mut self, c: u32, w: u32) -> u64 {
        self.known_worker(w, CURVE);
        self.known_client(c, CURVE);
        let h = self
            .handover()
            .expect("a pair of known sockets is handed over");
        assert_eq!((h.client_id, h.worker_id), (id(c), id(w)));
        self.answer(h.tag, HandoverOutcome::Taken);
        h.tag
    }

    fn pair_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.core.next_event()).collect()
    }
}

fn ended(
    tag: u64,
    end: crate::relay::RelayEnd,
    up: u64,
    down: u64,
    handshake: HandshakeState,
) -> RelayEvent {
    RelayEvent::Ended {
        tag,
        end,
        bytes_up: up,
        bytes_down: down,
        handshake,
    }
}

use crate::relay::{RelayEnd, RelayEvent};
use crate::zmtp::HandshakeState;

#[test]
fn a_pair_of_known_sockets_is_handed_over_with_what_the_worker_is_owed() {
    let mut s = Sim::new(Limits::default());
    s.known_worker(10, CURVE);
    s.known_client(1, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
    assert!(s.core.wants_handover());
    // Nothing of the pair goes through libzmq: the worker has only the opening, the client
    // its whole greeting (sent while it was screened).
    assert_eq!(s.got(B, 10), greeting_opening());
    let mut to_client = greeting_opening().to_vec();
    to_client.extend_from_slice(&greeting_rest(CURVE, true));
    assert_eq!(s.got(F, 1), to_client.as_slice());

    let h = s.handover().expect("a handover");
    assert_eq!(h.client_id, id(1));
    assert_eq!(h.worker_id, id(10));
    assert_eq!(h.client, known_peer(F, 1));
    assert_eq!(h.worker, known_peer(B, 10));
    let hello = curve_hello();
    assert_eq!(h.received, [(64 + hello.len()) as u64, 64]);
    let mut owed = greeting_rest(CURVE, false).to_vec();
    owed.extend_from_slice(&hello);
    assert_eq!(h.to_worker, owed, "the end of the greeting, then the HELLO");

    s.answer(h.tag, HandoverOutcome::Taken);
    assert!(!s.core.wants_handover());
    assert!(s.handover().is_none());
    let st = s.core.stats();
    assert_eq!(
        (st.pairs_taken_over, st.takeover_fallbacks, st.pairs_open),
        (1, 0, 1)
    );
    assert_eq!(
        s.got(B, 10),
        greeting_opening(),
        "the relay, not libzmq, sends what the worker is owed"
    );
    assert!(s.closed.is_empty());
    assert_eq!(s.core.connections(), 2, "kept for counters and events");
}

#[test]
fn bytes_a_waiting_client_sent_early_are_owed_to_the_worker_after_its_first_command() {
    let mut s = Sim::new(Limits::default());
    s.known_client(1, CURVE);
    s.recv_known(F, 1, b"early ");
    s.recv_known(F, 1, b"bytes");
    assert!(!s.core.wants_handover(), "no worker yet");
    s.known_worker(10, CURVE);
    let h = s.handover().expect("a handover");
    let mut owed = greeting_rest(CURVE, false).to_vec();
    owed.extend_from_slice(&curve_hello());
    owed.extend_from_slice(b"early bytes");
    assert_eq!(h.to_worker, owed);
    assert_eq!(h.received[0], (64 + curve_hello().len() + 11) as u64);
    s.answer(h.tag, HandoverOutcome::Taken);
    assert_eq!(s.got(B, 10), greeting_opening());
}

#[test]
fn pairs_are_handed_over_one_by_one_each_with_its_own_tag() {
    let mut s = Sim::new(Limits::default());
    for c in 1..=3 {
        s.known_client(c, CURVE);
    }
    // Three workers in one go: three pairs wait for the driver, oldest first.
    for w in 10..=12 {
        s.known_worker(w, CURVE);
    }
    let mut tags = HashSet::new();
    for (c, w) in [(1, 10), (2, 11), (3, 12)] {
        let h = s.handover().expect("a handover per pair");
        assert_eq!((h.client_id, h.worker_id), (id(c), id(w)));
        assert!(tags.insert(h.tag), "tags are distinct");
        s.answer(h.tag, HandoverOutcome::Taken);
    }
    assert!(s.handover().is_none());
    assert_eq!(s.core.stats().pairs_taken_over, 3);
}

#[test]
fn data_libzmq_still_delivers_for_a_taken_over_pair_aborts_it() {
    for late_side in [F, B] {
        let mut s = Sim::new(Limits {
            events: true,
            ..Limits::default()
        });
        let tag = s.taken_pair(1, 10);
        s.taken_pair(2, 11);
        s.pair_events();
        // libzmq's disconnect notifications of the connections it let go are no data.
        s.recv(F, 1, &[]);
        s.recv(B, 10, &[]);
        assert_eq!(s.core.next_abort(), None);
        assert_eq!(s.core.stats().pairs_open, 2);

        let n = if late_side == F { 1 } else { 10 };
        s.recv(late_side, n, b"late");
        assert_eq!(
            s.core.next_abort(),
            Some(tag),
            "{late_side:?}: the pair's tag"
        );
        assert_eq!(s.core.next_abort(), None);
        assert_eq!(s.core.stats().dropped_bytes, 4);
        assert_eq!(s.got(B, 10), greeting_opening(), "never relayed");
        assert_eq!(s.got(F, 1).len(), 64, "never relayed");

        s.core.on_relay_event(
            s.now,
            ended(tag, RelayEnd::Aborted, 0, 0, HandshakeState::Running),
        );
        let st = *s.core.stats();
        assert_eq!((st.takeover_violations, st.pairs_open), (1, 1));
        assert_eq!(s.core.connections(), 2, "only the other pair is left");
        let events = s.pair_events();
        assert!(
            matches!(
                events.as_slice(),
                [Event::Close {
                    pair: 1,
                    end: PairEnd::TakeoverViolation,
                    ..
                }]
            ),
            "{events:?}"
        );
    }
}

#[test]
fn the_relay_reports_a_pair_s_end_with_counters_and_a_close_event() {
    struct Case {
        end: RelayEnd,
        handshake: HandshakeState,
        handshake_done_event: bool,
        want: PairEnd,
        idle_timeouts: u64,
        handshakes_failed: u64,
    }
    let case = |end, handshake, handshake_done_event, want, idle, failed| Case {
        end,
        handshake,
        handshake_done_event,
        want,
        idle_timeouts: idle,
        handshakes_failed: failed,
    };
    let cases = [
        case(
            RelayEnd::ClientClosed,
            HandshakeState::Ready,
            false,
            PairEnd::ClientClosed,
            0,
            0,
        ),
        case(
            RelayEnd::IdleTimeout,
            HandshakeState::Ready,
            false,
            PairEnd::IdleTimeout,
            1,
            0,
        ),
        case(
            RelayEnd::WorkerClosed,
            HandshakeState::Ready,
            false,
            PairEnd::WorkerClosed,
            0,
            0,
        ),
        // The worker closed before its side of the handshake completed.
        case(
            RelayEnd::WorkerClosed,
            HandshakeState::Running,
            false,
            PairEnd::HandshakeFailed,
            0,
            1,
        ),
        // ... unless the relay said earlier that it had.
        case(
            RelayEnd::WorkerClosed,
            HandshakeState::Running,
            true,
            PairEnd::WorkerClosed,
            0,
            0,
        ),
        // The worker refused the client with ERROR (a ZAP refusal) and libzmq's client
        // closed first: a failed handshake all the same, but no lost worker connection.
        case(
            RelayEnd::ClientClosed,
            HandshakeState::Error,
            false,
            PairEnd::HandshakeFailed,
            0,
            1,
        ),
        case(
            RelayEnd::WorkerClosed,
            HandshakeState::Error,
            false,
            PairEnd::HandshakeFailed,
            0,
            1,
        ),
    ];
    for c in cases {
        let mut s = Sim::new(Limits {
            events: true,
            ..Limits::default()
        });
        let tag = s.taken_pair(1, 10);
        let open = s.pair_events();
        assert_eq!(
            open,
            [Event::Open {
                pair: 1,
                client: known_peer(F, 1).addr,
                worker: known_peer(B, 10).addr.unwrap().to_string(),
                mechanism: CURVE,
            }]
        );
        if c.handshake_done_event {
            s.core
                .on_relay_event(s.now, RelayEvent::HandshakeDone { tag });
        }
        s.advance(Duration::from_millis(1500));
        assert_eq!(s.core.stats().pairs_open, 1, "{:?}", c.end);
        s.core
            .on_relay_event(s.now, ended(tag, c.end, 1000, 2000, c.handshake));
        s.flush();
        // A silent close in the handshake is judged once its worker's other connections
        // had their say (deaths.rs).
        s.advance(deaths::DEATH_WINDOW);
        let st = *s.core.stats();
        assert_eq!(st.pairs_open, 0, "{:?}", c.end);
        assert_eq!(st.closed_idle_timeout, c.idle_timeouts, "{:?}", c.end);
        assert_eq!(st.handshakes_failed, c.handshakes_failed, "{:?}", c.end);
        assert_eq!(st.takeover_violations, 0);
        assert_eq!(s.core.connections(), 0, "both records are gone");
        assert!(
            s.closed.is_empty(),
            "the relay closed both: no close through libzmq"
        );
        let events = s.pair_events();
        let want = Event::Close {
            pair: 1,
            client: known_peer(F, 1).addr,
            worker: known_peer(B, 10).addr.unwrap().to_string(),
            mechanism: CURVE,
            // The client's HELLO went to the worker with the handover.
            bytes_up: curve_hello().len() as u64 + 1000,
            bytes_down: 2000,
            duration: Duration::from_millis(1500),
            end: c.want,
        };
        let mut wants = vec![want];
        if c.want == PairEnd::HandshakeFailed && c.end == RelayEnd::WorkerClosed {
            // Dial-in: the worker connection closed in the handshake is a lost slot.
            wants.push(Event::Lost {
                pair: 1,
                worker: known_peer(B, 10).addr.unwrap().to_string(),
                mechanism: CURVE,
            });
        }
        assert_eq!(events, wants);
        // libzmq sends no notification for a connection it let go of at the handover (the
        // proxy asked for that close), so the ids are not remembered: nothing is kept per
        // session once it is over (dial-out churn keeps the broker's memory flat).
        assert_eq!(s.core.connections(), 0);
        // A report about a pair that is over changes nothing.
        s.core
            .on_relay_event(s.now, ended(tag, c.end, 1, 1, HandshakeState::Running));
        assert_eq!(*s.core.stats(), st);
    }
}

#[test]
fn a_fallback_relays_through_libzmq_with_greeting_rest_and_first_command() {
    let mut s = Sim::new(Limits::default());
    s.known_client(1, CURVE);
    s.recv_known(F, 1, b"early");
    s.known_worker(10, CURVE);
    let h = s.handover().expect("a handover");
    s.answer(h.tag, HandoverOutcome::Fallback);
    let st = *s.core.stats();
    assert_eq!(
        (st.takeover_fallbacks, st.pairs_taken_over, st.pairs_open),
        (1, 0, 1)
    );
    let mut want = greeting_opening().to_vec();
    want.extend_from_slice(&greeting_rest(CURVE, false));
    want.extend_from_slice(&curve_hello());
    want.extend_from_slice(b"early");
    assert_eq!(s.got(B, 10), want.as_slice(), "the worker's view");
    s.got.clear();
    s.recv(B, 10, b"WELCOME...");
    s.recv(F, 1, b"INITIATE...");
    assert_eq!(s.got(F, 1), b"WELCOME...");
    assert_eq!(s.got(B, 10), b"INITIATE...");
    assert_eq!(s.core.next_abort(), None);
    // And it ends the libzmq way: the worker is closed through libzmq.
    s.recv(F, 1, &[]);
    s.advance(Duration::from_millis(50));
    assert!(s.is_closed(B, 10));
    assert_eq!(s.core.stats().pairs_open, 0);
}

#[test]
fn a_broken_handover_closes_both_connections() {
    let mut s = Sim::new(Limits {
        events: true,
        ..Limits::default()
    });
    s.known_worker(10, CURVE);
    s.known_client(1, CURVE);
    let h = s.handover().expect("a handover");
    s.pair_events();
    s.answer(h.tag, HandoverOutcome::Broken);
    s.advance(Duration::from_millis(10));
    assert!(s.is_closed(F, 1) && s.is_closed(B, 10));
    let st = *s.core.stats();
    assert_eq!((st.pairs_open, st.pairs_taken_over), (0, 0));
    assert_eq!(s.got(B, 10), greeting_opening(), "the worker got nothing");
    let events = s.pair_events();
    assert!(
        matches!(
            events.as_slice(),
            [Event::Close {
                end: PairEnd::TakeoverFailed,
                ..
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn without_takeover_no_pair_is_ever_handed_over() {
    let mut s = Sim::new(Limits {
        takeover: false,
        ..Limits::default()
    });
    s.known_worker(10, CURVE);
    s.known_client(1, CURVE);
    assert!(!s.core.wants_handover());
    assert!(s.handover().is_none());
    let mut want = greeting_opening().to_vec();
    want.extend_from_slice(&greeting_rest(CURVE, false));
    want.extend_from_slice(&curve_hello());
    assert_eq!(s.got(B, 10), want.as_slice(), "relayed through libzmq");
    s.got.clear();
    s.recv_known(F, 1, b"INITIATE");
    assert_eq!(s.got(B, 10), b"INITIATE");
    assert_eq!(s.core.next_abort(), None);
    assert_eq!(s.core.stats().pairs_taken_over, 0);
}

#[test]
fn a_pair_with_a_socket_not_fully_known_stays_on_libzmq() {
    let mut s = Sim::new(Limits::default());
    s.known_worker(10, CURVE);
    // The client's local address is unknown (Sim::recv gives none).
    s.client(1, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
    assert!(s.handover().is_none());
    assert!(s.got(B, 10).ends_with(&curve_hello()));
}

#[test]
fn a_slot_freed_by_a_relayed_pair_s_end_is_handed_over_too() {
    let mut s = Sim::new(Limits {
        max_pairs: Some(1),
        ..Limits::default()
    });
    let tag = s.taken_pair(1, 10);
    s.known_worker(11, CURVE);
    s.known_client(2, CURVE);
    assert_eq!(s.core.stats().clients_waiting, 1);
    assert!(s.handover().is_none(), "no slot");
    s.core.on_relay_event(
        s.now,
        ended(tag, RelayEnd::ClientClosed, 0, 0, HandshakeState::Ready),
    );
    let h = s
        .handover()
        .expect("the waiting client is paired and handed over");
    assert_eq!((h.client_id, h.worker_id), (id(2), id(11)));
    s.answer(h.tag, HandoverOutcome::Taken);
    let st = *s.core.stats();
    assert_eq!((st.pairs_open, st.pairs_taken_over), (1, 2));
}

#[test]
fn a_relayed_pair_holds_its_client_s_address_slot_until_the_relay_reports_its_end() {
    let mut limits = Limits::default();
    limits.policy.max_per_address = Some(1);
    let mut s = Sim::new(limits);
    // Every known client comes from 127.0.0.1.
    let tag = s.taken_pair(1, 10);
    s.known_worker(11, CURVE);
    s.connect(F, 2);
    s.recv_known(F, 2, &libzmq_greeting(CURVE, false));
    assert!(
        s.is_closed(F, 2),
        "the address's one slot is the relayed pair's"
    );
    assert_eq!(s.core.stats().reject_per_address, 1);
    s.core.on_relay_event(
        s.now,
        ended(tag, RelayEnd::ClientClosed, 0, 0, HandshakeState::Ready),
    );
    s.known_client(3, CURVE);
    assert!(!s.is_closed(F, 3), "the slot is free again");
    assert_eq!(s.core.stats().pairs_open, 1);
    assert!(s.handover().is_some());
    assert!(s.core.per_address.len() <= 1);
}

#[test]
fn handshakes_failing_on_relayed_pairs_ban_the_client_s_address() {
    let mut limits = Limits::default();
    limits.policy.fail_ban = Some(2);
    let mut s = Sim::new(limits);
    for (c, w) in [(1, 10), (2, 11)] {
        let tag = s.taken_pair(c, w);
        // The worker closed before its side of the handshake completed.
        s.core.on_relay_event(
            s.now,
            ended(tag, RelayEnd::WorkerClosed, 202, 0, HandshakeState::Running),
        );
    }
    // Both pairs formed in the same instant, before either failed: held a moment in case
    // their worker died (deaths.rs).
    s.advance(deaths::DEATH_WINDOW);
    assert_eq!(s.core.stats().handshakes_failed, 2);
    s.connect(F, 3);
    s.recv_known(F, 3, &libzmq_greeting(CURVE, false));
    assert!(s.is_closed(F, 3), "banned");
    assert_eq!(s.core.stats().reject_banned, 1);
}

/// The default ban (FAIL_BAN 2, FAIL_BAN_TIME 30 s, doubling per repeat): a client that keeps
/// failing from one address costs 4 worker connections in its first 60 s, 6 by 95 s (two per
/// ban: a silent close alone is held for DEATH_WINDOW in case its worker died; the client's
/// next failure confirms it); another address is never refused; a completed handshake
/// clears the record.
#[test]
fn the_default_ban_grows_with_repeats_and_bounds_a_failing_client() {
    let limits = Limits::default();
    assert_eq!(limits.policy.fail_ban, Some(2));
    assert_eq!(limits.policy.fail_ban_time, Duration::from_secs(30));
    let mut s = Sim::new(limits);
    let start = s.now;
    let mut next = 1u32;
    let mut failures_at = Vec::new();
    // The wrong-key client tries every 100 ms for 95 s; a known worker is always idle (a
    // healthy worker: its idle connection stays, for the next attempt).
    let mut idle = None;
    while s.now < start + Duration::from_secs(95) {
        let (c, w) = (next, 1000 + next);
        next += 1;
        // (The proxy recycles it after WORKER_MAX_AGE: its worker connects a new one.)
        if idle.is_none_or(|w| s.is_closed(B, w)) {
            s.known_worker(w, CURVE);
            idle = Some(w);
        }
        s.connect(F, c);
        s.recv_known(F, c, &libzmq_greeting(CURVE, false));
        if s.is_closed(F, c) {
            // Banned: refused on its greeting, before any worker was touched.
        } else {
            idle = None;
            s.recv_known(F, c, &first_command(CURVE));
            let h = s.handover().expect("paired and handed over");
            s.answer(h.tag, HandoverOutcome::Taken);
            s.core.on_relay_event(
                s.now,
                ended(
                    h.tag,
                    RelayEnd::WorkerClosed,
                    202,
                    0,
                    HandshakeState::Running,
                ),
            );
            failures_at.push(s.now - start);
        }
        s.advance(Duration::from_millis(100));
    }
    let within = |secs: u64| {
        failures_at
            .iter()
            .filter(|t| **t < Duration::from_secs(secs))
            .count()
    };
    assert_eq!(within(60), 3, "{failures_at:?}");
    assert_eq!(within(95), 4, "{failures_at:?}");
    let st = s.core.stats();
    assert_eq!(st.handshakes_failed, 4);
    assert_eq!(
        st.workers_lost, 4,
        "dial-in: each failure lost a worker slot"
    );
    assert!(st.reject_banned > 800, "{}", st.reject_banned);
    // The fourth failure (at about 90 s) banned the address for 120 s: another address is
    // served at once; the banned one is refused until the ban ends.
    let other: std::net::SocketAddr = "192.0.2.7:5000".parse().unwrap();
    s.known_worker(5000, CURVE);
    s.connect(F, 5001);
    let info = PeerInfo {
        fd: 7,
        addr: Some(other),
        local: Some("127.0.0.1:5555".parse().unwrap()),
    };
    s.core.on_receive(
        s.now,
        F,
        &id(5001),
        libzmq_greeting(CURVE, false).to_vec(),
        |_| Some(info),
    );
    s.core
        .on_receive(s.now, F, &id(5001), first_command(CURVE), |_| Some(info));
    s.flush();
    assert!(!s.is_closed(F, 5001), "another address is not refused");
    let h = s.handover().expect("the other address is paired");
    s.answer(h.tag, HandoverOutcome::Taken);
    s.core
        .on_relay_event(s.now, RelayEvent::HandshakeDone { tag: h.tag });
    // A good client sharing the banned address, after the ban (120 s from ~90 s): served;
    // its completed handshake clears the record, so one failure later bans nobody.
    s.advance(Duration::from_secs(120));
    let tag = s.taken_pair(6001, 6002);
    s.core
        .on_relay_event(s.now, RelayEvent::HandshakeDone { tag });
    let tag = s.taken_pair(6003, 6004);
    s.core.on_relay_event(
        s.now,
        ended(tag, RelayEnd::WorkerClosed, 202, 0, HandshakeState::Running),
    );
    s.advance(deaths::DEATH_WINDOW);
    let banned = s.core.stats().reject_banned;
    s.known_client(6005, CURVE);
    assert!(
        !s.is_closed(F, 6005),
        "one failure after a success bans nobody"
    );
    assert_eq!(s.core.stats().reject_banned, banned);
}

/// Dial-in: a pair whose worker closed during the handshake reports CLOSE handshake-failed,
/// then LOST with the worker connection's address; WORKERS_LOST counts it. A worker closing
/// after a completed handshake is no loss.
#[test]
fn a_worker_connection_closed_in_the_handshake_is_reported_lost() {
    let limits = Limits {
        events: true,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    let tag = s.taken_pair(1, 10);
    s.core.on_relay_event(
        s.now,
        ended(tag, RelayEnd::WorkerClosed, 202, 0, HandshakeState::Running),
    );
    let texts: Vec<String> = s.pair_events().iter().map(|e| e.to_text()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[1].ends_with("handshake-failed"), "{texts:?}");
    assert_eq!(texts[2], "LOST 1 127.0.0.1:40010 CURVE");
    assert_eq!(s.core.stats().workers_lost, 1);
    let tag = s.taken_pair(2, 11);
    s.core
        .on_relay_event(s.now, RelayEvent::HandshakeDone { tag });
    s.core.on_relay_event(
        s.now,
        ended(tag, RelayEnd::WorkerClosed, 202, 170, HandshakeState::Ready),
    );
    let texts: Vec<String> = s.pair_events().iter().map(|e| e.to_text()).collect();
    assert!(
        texts.last().unwrap().ends_with("worker-closed"),
        "{texts:?}"
    );
    assert_eq!(s.core.stats().workers_lost, 1);
    assert_eq!(s.core.stats().handshakes_failed, 1);
}

/// On the libzmq relay too: a worker that refuses its client with ERROR (a ZAP refusal, after
/// which libzmq's client closes first) ends in a failed handshake, counted toward FAIL_BAN;
/// the worker connection, which the proxy then closes, is no lost slot.
#[test]
fn a_worker_s_error_then_the_client_s_close_is_a_failed_handshake() {
    let mut limits = Limits {
        events: true,
        ..Limits::default()
    };
    limits.policy.fail_ban = Some(2);
    let mut s = Sim::new(limits);
    let at = |port: u16| std::net::SocketAddr::new([10, 1, 1, 1].into(), port);
    let error = [0x04, 6, 5, b'E', b'R', b'R', b'O', b'R'];
    for (c, w) in [(1, 10), (2, 11)] {
        s.addrs.insert(c, at(2000 + c as u16));
        s.pair(c, w);
        s.recv(B, w, &error);
        assert_eq!(s.got(F, c), error, "the ERROR reaches the client");
        s.recv(F, c, &[]); // the client's libzmq closes
        s.flush();
    }
    let st = *s.core.stats();
    assert_eq!(st.handshakes_failed, 2);
    assert_eq!(st.workers_lost, 0);
    let texts: Vec<String> = s.pair_events().iter().map(|e| e.to_text()).collect();
    assert!(texts[1].ends_with("handshake-failed"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("LOST")), "{texts:?}");
    s.addrs.insert(3, at(2003));
    s.connect(F, 3);
    s.recv(F, 3, &libzmq_greeting(CURVE, false));
    assert!(s.is_closed(F, 3), "the address is banned");
    assert_eq!(s.core.stats().reject_banned, 1);
}
