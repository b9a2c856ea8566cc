//! Unit and property tests of the core, without sockets: peers, pipes and time are simulated.
use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const F: Side = Side::Frontend;
const B: Side = Side::Backend;

fn id(n: u32) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// A simulated libzmq: records what each connection got, and can make pipes full.
struct Sim {
    core: Core<Vec<u8>>,
    now: Instant,
    got: HashMap<(Side, Vec<u8>), Vec<u8>>,
    closed: Vec<(Side, Vec<u8>)>,
    full: HashSet<(Side, Vec<u8>)>,
    unreachable: HashSet<(Side, Vec<u8>)>,
    /// Connections whose kernel send queue is not yet empty.
    undrained: HashSet<(Side, Vec<u8>)>,
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
        }
    }

    fn recv(&mut self, side: Side, n: u32, data: &[u8]) {
        self.core
            .on_receive(self.now, side, &id(n), data.to_vec(), |_| {
                Some(PeerInfo {
                    fd: n as i32,
                    addr: None,
                })
            });
        self.flush();
    }

    fn connect(&mut self, side: Side, n: u32) {
        self.recv(side, n, &[]);
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
                        } => {
                            if check_drained && self.undrained.contains(&key) {
                                SendOutcome::NotDrained
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
        loop {
            let next = self.core.next_timeout(self.now);
            match next {
                Some(at) if at <= end => {
                    self.now = at.max(self.now);
                    self.core.on_timeout(self.now);
                    self.flush();
                }
                _ => break,
            }
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

const SIG_C: &[u8] = b"client-signature";
const SIG_W: &[u8] = b"worker-signature";

#[test]
fn early_bytes_are_delivered_when_the_pair_forms() {
    let mut s = Sim::new(Limits::default());
    s.connect(F, 1);
    s.recv(F, 1, SIG_C);
    assert_eq!(s.core.stats().clients_waiting, 1);
    s.connect(B, 10);
    s.recv(B, 10, SIG_W);
    assert_eq!(s.got(B, 10), SIG_C);
    assert_eq!(s.got(F, 1), SIG_W);
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().clients_waiting, 0);
    assert_eq!(s.core.stats().workers_idle, 0);
    s.recv(F, 1, b"hello");
    s.recv(B, 10, b"world");
    assert_eq!(s.got(B, 10), b"client-signaturehello");
    assert_eq!(s.got(F, 1), b"worker-signatureworld");
    let st = s.core.stats();
    assert_eq!(st.frontend.bytes_in, (SIG_C.len() + 5) as u64);
    assert_eq!(st.backend.bytes_out, (SIG_C.len() + 5) as u64);
    assert_eq!(st.frontend.msgs_in, 2);
    assert_eq!(st.backend.msgs_out, 2);
}

#[test]
fn clients_wait_in_fifo_order_and_workers_are_used_least_recently_first() {
    let mut s = Sim::new(Limits::default());
    for c in 1..=3 {
        s.connect(F, c);
        s.recv(F, c, &[c as u8]);
    }
    s.connect(B, 10);
    assert_eq!(s.got(B, 10), &[1]);
    s.connect(B, 11);
    assert_eq!(s.got(B, 11), &[2]);
    assert_eq!(s.core.stats().clients_waiting, 1);

    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(B, 11);
    s.connect(F, 1);
    s.recv(F, 1, b"x");
    assert_eq!(s.got(B, 10), b"x", "the worker idle longest is used first");
    assert_eq!(s.got(B, 11), b"");
}

#[test]
fn client_leaving_closes_its_worker_after_forwarded_bytes_left() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(F, 1);
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
    s.connect(B, 10);
    s.connect(F, 1);
    s.recv(F, 1, b"x");
    s.undrained.insert((B, id(10)));
    s.recv(F, 1, &[]);
    s.advance(Limits::default().close_linger + Duration::from_millis(100));
    assert!(s.is_closed(B, 10));
}

#[test]
fn idle_pair_closes_at_once_when_nothing_was_sent_recently() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(F, 1);
    s.recv(B, 10, &[]); // worker leaves before anything was sent to the client
    assert!(s.is_closed(F, 1));
}

#[test]
fn full_pipe_is_retried_in_order_without_holes() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(F, 1);
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
    s.connect(B, 10);
    s.connect(F, 1);
    s.connect(B, 11);
    s.connect(F, 2);
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
    assert!(s.core.buffered() < 64 << 10);
    // The other pair is untouched.
    s.recv(F, 2, b"fine");
    assert_eq!(s.got(B, 11), b"fine");
}

#[test]
fn unpaired_connection_sending_too_much_is_closed() {
    let limits = Limits {
        early_buffer: 1024,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.connect(F, 1);
    s.recv(F, 1, &[1u8; 2000]);
    assert!(s.is_closed(F, 1));
    assert_eq!(s.core.stats().closed_early_overflow, 1);
    assert_eq!(s.core.stats().clients_waiting, 0);
    // The pool is consistent: a new client still pairs with a new worker.
    s.connect(F, 2);
    s.connect(B, 10);
    assert_eq!(s.core.stats().pairs_open, 1);
}

#[test]
fn late_notifications_of_connections_we_closed_are_ignored() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(F, 1);
    s.recv(F, 1, &[]);
    assert!(s.is_closed(B, 10));
    // The worker's own disconnect crossed our close: it must not look like a new worker.
    s.connect(B, 10);
    assert_eq!(s.core.stats().workers_idle, 0);
    s.recv(B, 10, b"late data");
    assert_eq!(s.core.stats().stray_chunks, 1);
    assert_eq!(s.core.connections(), 0);
}

#[test]
fn unreachable_destination_ends_the_pair() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(F, 1);
    s.unreachable.insert((B, id(10)));
    s.recv(F, 1, b"to nowhere");
    assert_eq!(s.core.stats().pairs_open, 0);
    assert!(s.is_closed(F, 1));
    assert_eq!(s.core.connections(), 0);
}

#[test]
fn paused_core_sends_nothing_and_sleeps() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(F, 1);
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
fn idle_core_has_no_timer() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.connect(F, 1);
    s.recv(F, 1, b"x");
    assert_eq!(s.core.next_timeout(s.now), None);
}

#[test]
fn worker_leaving_while_idle_or_client_while_waiting_leaves_no_trace() {
    let mut s = Sim::new(Limits::default());
    s.connect(B, 10);
    s.recv(B, 10, &[]);
    s.connect(F, 1);
    s.recv(F, 1, &[]);
    assert_eq!(s.core.stats().workers_idle, 0);
    assert_eq!(s.core.stats().clients_waiting, 0);
    assert_eq!(s.core.connections(), 0);
    s.connect(F, 2);
    s.connect(B, 11);
    assert_eq!(s.core.stats().pairs_open, 1);
}

#[test]
fn pools_stay_small_under_churn() {
    let mut s = Sim::new(Limits::default());
    for n in 0..10_000 {
        s.connect(B, n);
        s.recv(B, n, &[]);
    }
    assert!(
        s.core.idle.len() <= 200,
        "idle pool holds {}",
        s.core.idle.len()
    );
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
            s.connect(F, p);
            s.connect(B, 100 + p);
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
}
