//! Events (ZMQ_PROXY_STREAM_EVENTS) read on a real socket, and the failure ban
//! (ZMQ_PROXY_STREAM_FAIL_BAN, _FAIL_BAN_TIME), with real libzmq peers on 127.0.0.1. Client
//! addresses are checked against the real connections: a libzmq client's local address comes
//! from its socket monitor (CONNECTED carries the fd), a raw client's from its TcpStream.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;
use zmq_proxy_stream::api::*;

/// Size of a CURVE HELLO command on the wire, and of a WELCOME.
const HELLO_LEN: u64 = 202;
const WELCOME_LEN: u64 = 170;
/// A ZMTP 3 greeting.
const GREETING_LEN: u64 = 64;

fn dial_out_with_events(endpoints: &[String], options: Vec<(i32, OptValue)>) -> Proxy {
    let mut config = ProxyConfig::new()
        .dial_out(endpoints)
        .events(EventsKind::Pair);
    config.options.extend(options);
    Proxy::start_config(config)
}

fn dial_in_with_events(options: Vec<(i32, OptValue)>) -> Proxy {
    let mut config = ProxyConfig::new().events(EventsKind::Pair);
    config.options.extend(options);
    Proxy::start_config(config)
}

/// A CURVE client that knows the wrong server key, without reconnection: its HELLO is well
/// formed, the worker cannot open it.
fn wrong_key_client(ctx: &zmq::Context, frontend: &str) -> (MonitoredClient, String) {
    let c = monitored_client(ctx, frontend, &curve(), |s| {
        s.set_reconnect_ivl(-1).unwrap()
    });
    let addr = c.addr.to_string();
    (c, addr)
}

fn stat_of(st: &[u64], index: i32) -> u64 {
    st[index as usize]
}

/// OPEN and CLOSE of a dial-out session: the client's real address:port, the dialed
/// endpoint, CURVE; on the client's leaving a CLOSE client-closed whose byte counts are what
/// crossed the proxy (STATISTICS, less the two 64-byte greetings the proxy answers itself).
#[test]
fn open_and_close_describe_a_dial_out_session() {
    let mech = curve();
    let wctx = zmq::Context::new();
    let worker = BoundWorker::start(&wctx, &mech);
    let proxy = dial_out_with_events(std::slice::from_ref(&worker.endpoint), vec![]);
    let cctx = zmq::Context::new();
    let started = Instant::now();
    let c = monitored_client(&cctx, &proxy.frontend, &mech, |s| {
        s.set_reconnect_ivl(-1).unwrap()
    });
    let client_addr = c.addr.to_string();
    assert!(client_addr.starts_with("127.0.0.1:"), "{client_addr}");
    let sizes = [10usize, 1000, 5000];
    for (i, n) in sizes.iter().enumerate() {
        round_trip(&c, &[&payload(i as u64, *n)]);
    }
    let open = proxy.wait_event("OPEN", DEADLINE, ProxyEvent::is_open);
    assert_eq!(
        open,
        ProxyEvent::Open {
            pair: 1,
            client: client_addr.clone(),
            worker: worker.endpoint.clone(),
            mechanism: "CURVE".into(),
        }
    );
    drop(c);
    let close = proxy.wait_event("CLOSE", DEADLINE, ProxyEvent::is_close);
    let elapsed = started.elapsed().as_millis() as u64;
    let ProxyEvent::Close {
        pair,
        client,
        worker: worker_field,
        mechanism,
        bytes_up,
        bytes_down,
        ms,
        reason,
    } = close
    else {
        unreachable!()
    };
    assert_eq!(
        (
            pair,
            client.as_str(),
            worker_field.as_str(),
            mechanism.as_str(),
            reason.as_str()
        ),
        (
            1,
            client_addr.as_str(),
            worker.endpoint.as_str(),
            "CURVE",
            "client-closed"
        )
    );
    let sent: u64 = sizes.iter().map(|n| *n as u64).sum();
    assert!(
        bytes_up > HELLO_LEN + sent,
        "up: HELLO, INITIATE and 3 messages ({sent} bytes of payload): {bytes_up}"
    );
    assert!(
        bytes_down > WELCOME_LEN + sent,
        "down: WELCOME, READY and 3 echoes: {bytes_down}"
    );
    assert!(
        ms <= elapsed,
        "the pair lasted {ms} ms, the test {elapsed} ms"
    );
    // The only connections this proxy ever had: one client, one dialed worker.
    let s = proxy.statistics();
    assert_eq!(s[1], GREETING_LEN + bytes_up, "frontend bytes in: {s:?}");
    assert_eq!(s[7], GREETING_LEN + bytes_up, "backend bytes out: {s:?}");
    assert_eq!(s[5], GREETING_LEN + bytes_down, "backend bytes in: {s:?}");
    assert_eq!(s[3], GREETING_LEN + bytes_down, "frontend bytes out: {s:?}");
    assert_eq!(
        proxy.drain_events(Duration::from_millis(200)),
        vec![],
        "nothing else happened"
    );
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED), 0);
}

/// Dial-in: the worker field is the worker connection's address:port (its real local
/// address), and a worker that leaves mid-session gives CLOSE worker-closed.
#[test]
fn dial_in_events_name_the_worker_connection_and_worker_closed() {
    let mech = curve();
    let proxy = dial_in_with_events(vec![]);
    let wctx = zmq::Context::new();
    let worker = RecoveringWorker::start(&wctx, &proxy.backend, &mech, 1);
    wait_until("the worker slot is idle", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == 1
    });
    wait_until("the worker saw its connection", DEADLINE, || {
        WorkerCounts::get(&worker.counts.connections) == 1
    });
    let worker_addr = worker.counts.local_addrs.lock().unwrap()[0].to_string();
    let cctx = zmq::Context::new();
    let c = monitored_client(&cctx, &proxy.frontend, &mech, |s| {
        s.set_reconnect_ivl(-1).unwrap()
    });
    let addr = c.addr;
    round_trip(&c, &[b"hello", &payload(3, 700)]);
    let open = proxy.wait_event("OPEN", DEADLINE, ProxyEvent::is_open);
    assert_eq!(
        open,
        ProxyEvent::Open {
            pair: 1,
            client: addr.to_string(),
            worker: worker_addr.clone(),
            mechanism: "CURVE".into(),
        }
    );
    drop(worker);
    let close = proxy.wait_event("CLOSE", DEADLINE, ProxyEvent::is_close);
    match &close {
        ProxyEvent::Close {
            pair: 1,
            client,
            worker,
            mechanism,
            bytes_up,
            bytes_down,
            reason,
            ..
        } => {
            assert_eq!(client, &addr.to_string());
            assert_eq!(worker, &worker_addr);
            assert_eq!(mechanism, "CURVE");
            assert_eq!(reason, "worker-closed", "{close:?}");
            assert!(*bytes_up > HELLO_LEN + 700, "{close:?}");
            assert!(*bytes_down > WELCOME_LEN + 700, "{close:?}");
        }
        other => panic!("expected CLOSE of pair 1, got {other:?}"),
    }
}

/// A wrong-key client in dial-out: OPEN, then CLOSE handshake-failed with exactly its HELLO
/// up and nothing down (the worker closed without a word); HANDSHAKES_FAILED counts it.
#[test]
fn a_failed_handshake_closes_as_handshake_failed() {
    let mech = curve();
    let wctx = zmq::Context::new();
    let worker = BoundWorker::start(&wctx, &mech);
    let proxy = dial_out_with_events(std::slice::from_ref(&worker.endpoint), vec![]);
    let cctx = zmq::Context::new();
    let (_bad, addr) = wrong_key_client(&cctx, &proxy.frontend);
    let open = proxy.wait_event("OPEN", DEADLINE, ProxyEvent::is_open);
    assert_eq!(open.pair(), Some(1));
    assert_eq!(open.client(), addr);
    let close = proxy.wait_event("CLOSE", DEADLINE, ProxyEvent::is_close);
    let ProxyEvent::Close { ms, .. } = close else {
        unreachable!()
    };
    assert_eq!(
        close,
        ProxyEvent::Close {
            pair: 1,
            client: addr.clone(),
            worker: worker.endpoint.clone(),
            mechanism: "CURVE".into(),
            bytes_up: HELLO_LEN,
            bytes_down: 0,
            ms,
            reason: "handshake-failed".into(),
        }
    );
    // A silent close is counted once the window for telling a worker's death from it has
    // passed (300 ms, see FAIL_BAN).
    wait_until("the failure counted", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED) == 1
    });
    // A good client is next: pair 2, and its session is not a failure.
    let good = client(&cctx, &proxy.frontend, &mech);
    round_trip(&good, &[b"fine"]);
    let open = proxy.wait_event("OPEN of pair 2", DEADLINE, ProxyEvent::is_open);
    assert_eq!(open.pair(), Some(2));
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED), 1);
}

/// Waits for the REJECT of the client at `addr` and returns its reason.
fn reject_reason_of(proxy: &Proxy, addr: &str) -> String {
    let event = proxy.wait_event(
        &format!("REJECT of {addr}"),
        DEADLINE,
        |e| matches!(e, ProxyEvent::Reject { client, .. } if client == addr),
    );
    event.reason().unwrap().to_owned()
}

fn local(s: &TcpStream) -> String {
    s.local_addr().unwrap().to_string()
}

/// Every screening refusal gives REJECT with the raw client's own address:port and the
/// reason; the matching counter moves with it.
#[test]
fn rejects_name_the_client_and_the_reason() {
    let proxy = dial_in_with_events(vec![
        (ZMQ_PROXY_STREAM_MECHANISMS, OptValue::Str("CURVE")),
        (ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT, OptValue::Int(300)),
        (ZMQ_PROXY_STREAM_WAIT_TIMEOUT, OptValue::Int(500)),
        (ZMQ_PROXY_STREAM_MAX_WAITING, OptValue::Int(1)),
    ]);
    // No worker: screened clients wait.
    let check = |what: &str, s: &mut TcpStream, reason: &str, counter: i32| {
        let addr = local(s);
        assert_eq!(reject_reason_of(&proxy, &addr), reason, "{what}");
        assert!(closed_within(s, DEADLINE), "{what}: closed");
        assert_eq!(proxy.stat(counter), 1, "{what}: counted once");
    };
    let mut garbage = connect_and_send(&proxy.frontend, b"GET / HTTP/1.1\r\n\r\n");
    check(
        "HTTP",
        &mut garbage,
        "bad-greeting",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
    );
    let mut null = connect_and_send(&proxy.frontend, &greeting("NULL"));
    check(
        "NULL client",
        &mut null,
        "mechanism",
        ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM,
    );
    let mut bad_hello = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    read_exact_within(&mut bad_hello, 64, DEADLINE);
    let mut hello = curve_hello();
    hello[10 + 40] = 1; // non-zero padding
    bad_hello.write_all(&hello).unwrap();
    check(
        "bad HELLO",
        &mut bad_hello,
        "bad-command",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
    );
    let mut silent = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    check(
        "silent after greeting",
        &mut silent,
        "handshake-timeout",
        ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT,
    );
    // One screened client waits (the queue holds one); a second is refused at once, the
    // first when its wait times out.
    let (mut first, _) = curve_client(&proxy.frontend);
    wait_until("one client waiting", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING) == 1
    });
    let (mut second, _) = curve_client(&proxy.frontend);
    check(
        "second waiting client",
        &mut second,
        "queue-full",
        ZMQ_PROXY_STREAM_STAT_REJECT_QUEUE_FULL,
    );
    check(
        "waited too long",
        &mut first,
        "wait-timeout",
        ZMQ_PROXY_STREAM_STAT_REJECT_WAIT_TIMEOUT,
    );
    assert_eq!(proxy.drain_events(Duration::from_millis(200)), vec![]);
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED), 0);
}

/// Address policy refusals are events too: REJECT denied, REJECT per-address.
#[test]
fn address_policy_rejects_are_events() {
    let proxy = dial_in_with_events(vec![(ZMQ_PROXY_STREAM_DENY, OptValue::Str("127.0.0.1"))]);
    let mut s = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    assert_eq!(reject_reason_of(&proxy, &local(&s)), "denied");
    assert!(closed_within(&mut s, DEADLINE));
    drop(proxy);

    let proxy = dial_in_with_events(vec![(ZMQ_PROXY_STREAM_MAX_PER_ADDRESS, OptValue::Int(1))]);
    let mut held = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    read_exact_within(&mut held, 64, DEADLINE);
    let mut s = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    assert_eq!(reject_reason_of(&proxy, &local(&s)), "per-address");
    assert!(closed_within(&mut s, DEADLINE));
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_PER_ADDRESS), 1);
}

/// FAIL_BAN 2, FAIL_BAN_TIME 1000 ms: two wrong-key clients in a row from 127.0.0.1 get the
/// address banned: the next connection is refused (REJECT banned, REJECT_BANNED) and costs
/// no worker; a good client is served once the ban is over, not before; its completed
/// handshake resets the count, so one more failure does not ban again.
#[test]
fn failed_handshakes_ban_the_address_for_the_ban_time() {
    let mech = curve();
    let wctx = zmq::Context::new();
    let worker = BoundWorker::start(&wctx, &mech);
    let proxy = dial_out_with_events(
        std::slice::from_ref(&worker.endpoint),
        vec![
            (ZMQ_PROXY_STREAM_FAIL_BAN, OptValue::Int(2)),
            (ZMQ_PROXY_STREAM_FAIL_BAN_TIME, OptValue::Int(1000)),
        ],
    );
    let cctx = zmq::Context::new();
    let mut bad_clients = Vec::new();
    let mut second_failure_from = Instant::now();
    for i in 1..=2u64 {
        second_failure_from = Instant::now();
        let (bad, addr) = wrong_key_client(&cctx, &proxy.frontend);
        let close = proxy.wait_event("CLOSE of a wrong-key client", DEADLINE, |e| {
            e.is_close() && e.client() == addr
        });
        assert_eq!(close.reason(), Some("handshake-failed"), "{close:?}");
        assert_eq!(close.pair(), Some(i));
        bad_clients.push(bad);
    }
    // The first silent close is held up to 300 ms in case its worker died; the second,
    // on a pair made after it, confirms it (or the window passes): both count, and ban.
    wait_until("both failures counted", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED) == 2
    });
    // Banned now: refused on its first bytes, before any worker is dialed.
    let mut probe = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    let probe_addr = local(&probe);
    assert!(
        closed_within(&mut probe, DEADLINE),
        "a banned client is closed"
    );
    assert_eq!(reject_reason_of(&proxy, &probe_addr), "banned");
    let st = proxy.stream_stats();
    assert!(
        second_failure_from.elapsed() < Duration::from_millis(1000),
        "the probe must run within the ban (the machine is too slow)"
    );
    assert_eq!(
        stat_of(&st, ZMQ_PROXY_STREAM_STAT_REJECT_BANNED),
        1,
        "{st:?}"
    );
    assert_eq!(stat_of(&st, ZMQ_PROXY_STREAM_STAT_DIALS), 2, "{st:?}");
    assert_eq!(stat_of(&st, ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL), 2);

    // A good client: libzmq retries while the address is banned; it is served after the
    // ban, never before.
    let good = client(&cctx, &proxy.frontend, &mech);
    round_trip(&good, &[b"after the ban"]);
    let waited = second_failure_from.elapsed();
    assert!(
        waited >= Duration::from_millis(990),
        "served {waited:?} after the second failure began: inside the 1000 ms ban"
    );
    let open = proxy.wait_event("OPEN of the good client", DEADLINE, |e| {
        e.is_open() && e.pair() > Some(2)
    });
    assert_eq!(open.pair(), Some(3), "{open:?}");
    let banned_before = proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_BANNED);

    // The completed handshake reset the count: one more failure alone does not ban.
    let (_bad3, addr3) = wrong_key_client(&cctx, &proxy.frontend);
    let close = proxy.wait_event("CLOSE of the third wrong-key client", DEADLINE, |e| {
        e.is_close() && e.client() == addr3
    });
    assert_eq!(close.reason(), Some("handshake-failed"));
    let good2 = client(&cctx, &proxy.frontend, &mech);
    round_trip(&good2, &[b"not banned"]);
    let st = proxy.stream_stats();
    assert_eq!(
        stat_of(&st, ZMQ_PROXY_STREAM_STAT_REJECT_BANNED),
        banned_before,
        "no new ban after one failure: {st:?}"
    );
    assert_eq!(stat_of(&st, ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED), 3);
    assert_eq!(worker.served(), 2);
}

/// An events socket that cannot take an event (a PUSH with no peer) never slows the
/// proxy: sessions are served, and every event is dropped and counted.
#[test]
fn undeliverable_events_are_dropped_and_counted() {
    let mech = curve();
    let wctx = zmq::Context::new();
    let worker = BoundWorker::start(&wctx, &mech);
    let proxy = Proxy::start_config(
        ProxyConfig::new()
            .dial_out(std::slice::from_ref(&worker.endpoint))
            .events(EventsKind::PushToNobody),
    );
    assert!(proxy.events.is_none());
    let cctx = zmq::Context::new();
    let c = client(&cctx, &proxy.frontend, &mech);
    round_trip(&c, &[b"one"]);
    round_trip(&c, &[b"two"]);
    drop(c);
    wait_until("the pair closed", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN) == 0
    });
    wait_until("OPEN and CLOSE dropped", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED) >= 2
    });
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED), 2);
    assert_eq!(worker.served(), 2);
    assert_eq!(proxy.terminate().0, 0);
}

/// A PUB events socket works too: a subscriber sees the events.
#[test]
fn events_reach_a_subscriber_over_pub() {
    let proxy = Proxy::start_config(ProxyConfig::new().events(EventsKind::Pub));
    let mut s = connect_and_send(&proxy.frontend, &[0x42; 20]);
    let addr = local(&s);
    assert!(closed_within(&mut s, DEADLINE));
    assert_eq!(reject_reason_of(&proxy, &addr), "bad-greeting");
}
