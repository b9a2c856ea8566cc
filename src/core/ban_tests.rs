//! FAIL_BAN against a worker's death: a worker that dies mid-handshake bans nobody, a worker
//! that refuses a client still does. Without sockets.
use super::*;

const CLIENT_HOST: &str = "192.0.2.7";

fn ban_limits() -> Limits {
    let mut limits = Limits::default();
    limits.policy.fail_ban = Some(2);
    limits
}

/// Worker connections `ws`, each from `host` (its own port).
fn workers_at(s: &mut Sim, host: &str, ws: impl IntoIterator<Item = u32>) {
    for w in ws {
        s.addrs.insert(
            w,
            std::net::SocketAddr::new(host.parse().unwrap(), 4000 + w as u16),
        );
        s.worker(w, CURVE);
    }
}

/// A CURVE client `c` from `host` connects and sends its HELLO; whether it was refused.
fn client_at(s: &mut Sim, c: u32, host: &str) -> bool {
    s.addrs.insert(
        c,
        std::net::SocketAddr::new(host.parse().unwrap(), 50000 + c as u16),
    );
    s.client(c, CURVE);
    s.is_closed(F, c)
}

/// The worker connection among `ws` that got client HELLOs: the ones paired.
fn paired(s: &Sim, ws: std::ops::Range<u32>) -> Vec<u32> {
    ws.filter(|&w| s.got(B, w).ends_with(&curve_hello()))
        .collect()
}

/// A worker with 4 connections: 2 paired with clients of one address mid-handshake, 2 idle.
/// The worker dies: the kernel closes all 4 (in either order, as libzmq may report them).
/// No strike, no ban: the address's next client is served by another worker; the pairs
/// count as lost worker connections, not failed handshakes.
#[test]
fn a_worker_dying_mid_handshake_bans_no_client() {
    for pairs_first in [true, false] {
        let mut s = Sim::new(ban_limits());
        workers_at(&mut s, "10.0.0.1", 10..14);
        assert!(!client_at(&mut s, 1, CLIENT_HOST));
        assert!(!client_at(&mut s, 2, CLIENT_HOST));
        let busy = paired(&s, 10..14);
        assert_eq!(busy.len(), 2);
        let idle: Vec<u32> = (10..14).filter(|w| !busy.contains(w)).collect();
        let dying: Vec<u32> = if pairs_first {
            busy.iter().chain(&idle).copied().collect()
        } else {
            idle.iter().chain(&busy).copied().collect()
        };
        for w in dying {
            s.recv(B, w, &[]);
        }
        s.advance(deaths::DEATH_WINDOW * 2);
        let st = *s.core.stats();
        assert_eq!(st.handshakes_failed, 0, "pairs first: {pairs_first}");
        assert_eq!(st.workers_lost, 2, "pairs first: {pairs_first}");
        s.got.clear();
        workers_at(&mut s, "10.0.0.2", [20]);
        assert!(!client_at(&mut s, 3, CLIENT_HOST), "not banned");
        assert_eq!(paired(&s, 20..21), [20], "served by the other worker");
        assert_eq!(s.core.stats().reject_banned, 0);
    }
}

/// Without idle connections: two clients of different addresses cut at the same moment by
/// one worker is a death too. One client's lone silent failure, with nothing else from its
/// worker, becomes a strike once the window has passed (FAIL_BAN 1 here: a ban).
#[test]
fn pairs_of_two_addresses_cut_at_once_are_a_death_and_a_lone_close_a_strike() {
    let mut s = Sim::new(ban_limits());
    workers_at(&mut s, "10.0.0.1", 10..12);
    assert!(!client_at(&mut s, 1, CLIENT_HOST));
    assert!(!client_at(&mut s, 2, "198.51.100.9"));
    s.recv(B, 10, &[]);
    s.recv(B, 11, &[]);
    s.advance(deaths::DEATH_WINDOW * 2);
    assert_eq!(s.core.stats().handshakes_failed, 0);
    assert_eq!(s.core.stats().workers_lost, 2);

    let mut limits = ban_limits();
    limits.policy.fail_ban = Some(1);
    let mut s = Sim::new(limits);
    workers_at(&mut s, "10.0.0.1", 10..11);
    assert!(!client_at(&mut s, 1, CLIENT_HOST));
    s.recv(B, 10, &[]);
    assert_eq!(s.core.stats().handshakes_failed, 0, "held");
    s.advance(deaths::DEATH_WINDOW / 2);
    assert!(!client_at(&mut s, 2, CLIENT_HOST), "not banned while held");
    s.recv(F, 2, &[]);
    s.advance(deaths::DEATH_WINDOW);
    assert_eq!(s.core.stats().handshakes_failed, 1, "a strike");
    assert!(client_at(&mut s, 3, CLIENT_HOST), "banned");
}

/// A wrong-key client reconnecting every 100 ms to a healthy worker: each attempt is refused
/// on another of its connections, which the worker closes one by one (libzmq does not
/// reconnect them). The second attempt confirms the first: banned after 2 attempts.
#[test]
fn a_wrong_key_client_reconnecting_is_banned_after_two_attempts() {
    let mut s = Sim::new(ban_limits());
    workers_at(&mut s, "10.0.0.1", 10..14);
    for c in 1..=2 {
        assert!(!client_at(&mut s, c, CLIENT_HOST), "attempt {c} served");
        let w = paired(&s, 10..14)[0];
        s.got.clear();
        s.recv(B, w, &[]); // the worker cannot open the HELLO: a silent close
        s.advance(Duration::from_millis(100));
    }
    assert_eq!(s.core.stats().handshakes_failed, 2);
    assert!(
        client_at(&mut s, 3, CLIENT_HOST),
        "the third attempt is banned"
    );
    assert_eq!(s.core.stats().reject_banned, 1);
    assert_eq!(paired(&s, 10..14), Vec::<u32>::new(), "no worker touched");
}

/// A ZAP refusal (ERROR, then libzmq's client closes) is a strike at once, and stays one
/// even if the worker's other connections close right after.
#[test]
fn a_zap_error_counts_even_when_its_worker_dies_next() {
    let mut s = Sim::new(ban_limits());
    workers_at(&mut s, "10.0.0.1", 10..14);
    let error = [0x04, 6, 5, b'E', b'R', b'R', b'O', b'R'];
    for c in 1..=2 {
        assert!(!client_at(&mut s, c, CLIENT_HOST));
        let w = paired(&s, 10..14)[0];
        s.got.clear();
        s.recv(B, w, &error);
        s.recv(F, c, &[]);
        assert_eq!(s.core.stats().handshakes_failed, c as u64, "at once");
    }
    for w in 10..14 {
        s.recv(B, w, &[]);
    }
    s.advance(deaths::DEATH_WINDOW * 2);
    assert_eq!(s.core.stats().handshakes_failed, 2);
    assert!(client_at(&mut s, 3, CLIENT_HOST), "banned");
}

/// Taken-over pairs report their end through the relay: the same rule holds.
#[test]
fn relayed_pairs_cut_by_a_dying_worker_ban_no_client() {
    let mut s = Sim::new(ban_limits());
    // known_peer: every connection is from 127.0.0.1, workers included.
    let tags = [s.taken_pair(1, 10), s.taken_pair(2, 11)];
    s.known_worker(12, CURVE); // idle
    for tag in tags {
        s.core.on_relay_event(
            s.now,
            ended(tag, RelayEnd::WorkerClosed, 202, 0, HandshakeState::Running),
        );
    }
    s.recv(B, 12, &[]);
    s.advance(deaths::DEATH_WINDOW * 2);
    assert_eq!(s.core.stats().handshakes_failed, 0);
    s.known_worker(13, CURVE);
    s.known_client(3, CURVE);
    assert!(!s.is_closed(F, 3), "not banned");
    assert!(s.handover().is_some(), "served");
}

/// Dial-out: two pairs cut mid-handshake by their endpoint, whose next dial fails: a death,
/// counted as lost worker connections; the address is not banned.
#[test]
fn a_dial_out_endpoint_dying_mid_handshake_bans_no_client() {
    let mut limits = ban_limits();
    limits.worker_endpoints = vec!["tcp://10.0.0.1:5600".to_string()];
    let mut s = Sim::new(limits);
    let mut wids = Vec::new();
    for c in 1..=2 {
        assert!(!client_at(&mut s, c, CLIENT_HOST));
        wids.push(s.dials[c as usize - 1].1.clone());
        s.recv_id(B, &wids[c as usize - 1], &[]);
        s.recv_id(B, &wids[c as usize - 1], &libzmq_greeting(CURVE, false));
    }
    assert_eq!(s.core.stats().pairs_open, 2);
    for wid in &wids {
        s.recv_id(B, wid, &[]);
    }
    // The endpoint refuses the next client's dial (a moment later: a dial made in the
    // same instant as the last greeting would not mark the endpoint down).
    s.advance(Duration::from_millis(1));
    s.refused.insert("tcp://10.0.0.1:5600".to_string());
    assert!(!client_at(&mut s, 3, CLIENT_HOST));
    s.advance(deaths::DEATH_WINDOW * 2);
    let st = *s.core.stats();
    assert_eq!(st.handshakes_failed, 0);
    assert_eq!(st.workers_lost, 2);
    assert!(!client_at(&mut s, 4, CLIENT_HOST), "not banned");
    assert_eq!(s.core.stats().reject_banned, 0);
}
