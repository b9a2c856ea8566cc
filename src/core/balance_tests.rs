//! Dial-in: which idle worker connection a client gets, without sockets.
use super::*;

/// Worker connections `ws`, each from `host` (its own port).
fn workers_from(s: &mut Sim, host: &str, ws: std::ops::Range<u32>) {
    for w in ws {
        let addr = std::net::SocketAddr::new(host.parse().unwrap(), 4000 + w as u16);
        s.addrs.insert(w, addr);
        s.worker(w, CURVE);
    }
}

/// How many of the worker connections `ws` got a client's first command.
fn served(s: &Sim, ws: std::ops::Range<u32>) -> usize {
    ws.filter(|&w| s.got(B, w).ends_with(&curve_hello()))
        .count()
}

fn host(ip: &str) -> Option<std::net::IpAddr> {
    Some(ip.parse().unwrap())
}

#[test]
fn clients_go_to_the_worker_address_serving_fewest_pairs() {
    let mut s = Sim::new(Limits::default());
    // All of A's connections arrive before B's (what made the oldest-first pool give A
    // every client).
    workers_from(&mut s, "10.0.0.1", 10..14);
    workers_from(&mut s, "10.0.0.2", 14..18);
    for c in 1..=4 {
        s.client(c, CURVE);
    }
    assert_eq!((served(&s, 10..14), served(&s, 14..18)), (2, 2));
    assert_eq!(s.core.pools.idle.open_pairs(host("10.0.0.1")), 2);

    // One of A's pairs ends (its worker connection closes): A serves 1, B 2, so the next
    // client goes to A.
    let a = (10..14)
        .find(|&w| s.got(B, w).ends_with(&curve_hello()))
        .unwrap();
    s.recv(B, a, &[]);
    assert_eq!(s.core.pools.idle.open_pairs(host("10.0.0.1")), 1);
    s.got.clear();
    s.client(5, CURVE);
    assert_eq!((served(&s, 10..14), served(&s, 14..18)), (1, 0));
}

#[test]
fn open_pairs_count_until_the_pair_ends_on_either_relay() {
    let mut s = Sim::new(Limits::default());
    // On the libzmq relay: counted from pairing to the client's leaving.
    workers_from(&mut s, "10.0.0.1", 10..11);
    s.client(1, CURVE);
    assert_eq!(s.core.pools.idle.open_pairs(host("10.0.0.1")), 1);
    s.recv(F, 1, &[]);
    assert_eq!(s.core.pools.idle.open_pairs(host("10.0.0.1")), 0);

    // Taken over: counted until the relay reports the end.
    let tag = s.taken_pair(2, 20);
    let worker_host = Some(known_peer(B, 20).addr.unwrap().ip());
    assert_eq!(s.core.pools.idle.open_pairs(worker_host), 1);
    s.core.on_relay_event(
        s.now,
        ended(tag, RelayEnd::ClientClosed, 1, 1, HandshakeState::Ready),
    );
    assert_eq!(s.core.pools.idle.open_pairs(worker_host), 0);
    assert_eq!(s.core.stats().pairs_open, 0);
    assert_eq!(
        s.core.pools.idle.addresses(),
        0,
        "no record outlives its connections"
    );
}

#[test]
fn idle_connections_that_leave_are_never_handed_out() {
    let mut s = Sim::new(Limits {
        worker_max_age: Some(Duration::from_secs(10)),
        ..Limits::default()
    });
    workers_from(&mut s, "10.0.0.1", 10..13);
    s.recv(B, 10, &[]); // gone
    s.recv(B, 11, b"x"); // spoke before its greeting was complete: refused
    s.advance(Duration::from_secs(11)); // 12 recycled
    assert_eq!(s.core.stats().workers_recycled, 1);
    assert_eq!(s.core.pools.idle.addresses(), 0);
    workers_from(&mut s, "10.0.0.1", 13..14);
    s.got.clear();
    s.client(1, CURVE);
    assert_eq!(served(&s, 10..14), 1);
    assert!(s.got(B, 13).ends_with(&curve_hello()));
}

/// Workers on one address cannot be told apart, so the choice among their connections is
/// random: over 40 seeded cores with worker A's 4 connections all older than B's 4, the
/// first client goes to B in some and to A in some (a run is replayed by its seed; with a
/// fair choice the chance of 40 in a row either way is 2^-39).
#[test]
fn on_one_address_the_oldest_connection_is_not_always_chosen() {
    let mut to_first_worker = 0;
    for seed in 0..40 {
        let mut s = Sim::new(Limits::default());
        s.core = Core::with_seed(Limits::default(), seed);
        workers_from(&mut s, "127.0.0.1", 10..18);
        s.client(1, CURVE);
        assert_eq!(served(&s, 10..18), 1);
        to_first_worker += served(&s, 10..14);
    }
    assert!(
        (1..40).contains(&to_first_worker),
        "first worker chosen {to_first_worker} times of 40"
    );
}
