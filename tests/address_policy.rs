//! Client address policy (ZMQ_PROXY_STREAM_ALLOW, _DENY, _MAX_PER_ADDRESS) with real peers
//! on 127.0.0.1: refused clients are closed on their first bytes (having received only the
//! proxy's 11-byte greeting opening), counted, and cost no worker anything.
mod common;

use common::raw::*;
use common::*;
use std::io::Read;
use std::time::{Duration, Instant};
use zmq_proxy_stream::api::*;

/// A raw client sends a CURVE greeting; returns whether the proxy closed it, and how many
/// bytes it had sent the client first.
fn refused_after_opening(frontend: &str) -> (bool, usize) {
    let mut s = connect_and_send(frontend, &greeting("CURVE"));
    let mut got = 0;
    let mut buf = [0u8; 256];
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got += n,
            Err(_) => return (true, got),
        }
    }
}

#[test]
fn a_denied_address_is_closed_before_any_byte_and_costs_no_worker() {
    let proxy = Proxy::start_opts(vec![(ZMQ_PROXY_STREAM_DENY, OptValue::Str("127.0.0.0/8"))]);
    let mech = curve();
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech, 1);
    wait_until("worker idle", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == 1
    });
    let (closed, got) = refused_after_opening(&proxy.frontend);
    assert!(closed, "the denied client is closed");
    assert_eq!(got, 11, "a denied client gets only the greeting opening");
    wait_until("counted", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED) == 1
    });
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE), 1);
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL), 0);
}

#[test]
fn an_allow_list_admits_only_its_networks() {
    let mech = curve();
    // Loopback is outside the list: refused.
    let proxy = Proxy::start_opts(vec![(ZMQ_PROXY_STREAM_ALLOW, OptValue::Str("10.0.0.0/8"))]);
    let (closed, got) = refused_after_opening(&proxy.frontend);
    assert!(closed && got == 11);
    wait_until("counted", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED) == 1
    });
    drop(proxy);
    // Loopback is in the list (next to another network): a real CURVE client is served.
    let proxy = Proxy::start_opts(vec![
        (ZMQ_PROXY_STREAM_ALLOW, OptValue::Str("10.0.0.0/8")),
        (ZMQ_PROXY_STREAM_ALLOW, OptValue::Str("127.0.0.1")),
    ]);
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
    let c = client(&proxy.ctx, &proxy.frontend, &mech);
    round_trip(&c, &[b"admitted"]);
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED), 0);
}

#[test]
fn connections_per_address_are_bounded_and_freed_when_one_leaves() {
    let proxy = Proxy::start_opts(vec![(ZMQ_PROXY_STREAM_MAX_PER_ADDRESS, OptValue::Int(2))]);
    // Two clients held in the handshake (greeting sent, no command yet).
    let mut first = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    let _second = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    read_exact_within(&mut first, 64, DEADLINE);
    let (closed, got) = refused_after_opening(&proxy.frontend);
    assert!(
        closed && got == 11,
        "the third connection from 127.0.0.1 is refused after the opening alone"
    );
    wait_until("counted", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_PER_ADDRESS) == 1
    });
    drop(first);
    // Once the proxy saw the first leave, a new connection is admitted (greeted).
    wait_until("a slot frees", DEADLINE, || {
        let mut s = connect_and_send(&proxy.frontend, &greeting("CURVE"));
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if n > 0)
    });
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED), 0);
}

#[test]
fn policy_options_read_back_and_refuse_bad_networks() {
    use std::ffi::c_void;
    use zmq_proxy_stream::ffi::*;
    // SAFETY: the handle is made, used and destroyed here; buffers are valid for their sizes.
    unsafe {
        let mut h = zmq_proxy_stream_new();
        for net in ["192.0.2.0/24", "::1"] {
            let rc = zmq_proxy_stream_setopt(
                h,
                ZMQ_PROXY_STREAM_ALLOW,
                net.as_ptr() as *const c_void,
                net.len(),
            );
            assert_eq!(rc, 0);
        }
        let bad = "10.0.0.0/33";
        let rc = zmq_proxy_stream_setopt(
            h,
            ZMQ_PROXY_STREAM_ALLOW,
            bad.as_ptr() as *const c_void,
            bad.len(),
        );
        assert_eq!((rc, last_errno()), (-1, zmq::Error::EINVAL.to_raw()));
        let mut buf = [0u8; 128];
        let mut size = buf.len();
        let rc = zmq_proxy_stream_getopt(
            h,
            ZMQ_PROXY_STREAM_ALLOW,
            buf.as_mut_ptr() as *mut c_void,
            &mut size,
        );
        assert_eq!(rc, 0);
        assert_eq!(&buf[..size], b"192.0.2.0/24,::1/128\0");
        let clear = "";
        let rc = zmq_proxy_stream_setopt(
            h,
            ZMQ_PROXY_STREAM_ALLOW,
            clear.as_ptr() as *const c_void,
            0,
        );
        assert_eq!(rc, 0);
        size = buf.len();
        zmq_proxy_stream_getopt(
            h,
            ZMQ_PROXY_STREAM_ALLOW,
            buf.as_mut_ptr() as *mut c_void,
            &mut size,
        );
        assert_eq!(&buf[..size], b"\0", "an empty string clears the list");
        let mut n = 0i32;
        size = 4;
        zmq_proxy_stream_getopt(
            h,
            ZMQ_PROXY_STREAM_MAX_PER_ADDRESS,
            &mut n as *mut i32 as *mut c_void,
            &mut size,
        );
        assert_eq!(n, 0, "unlimited by default");
        zmq_proxy_stream_destroy(&mut h);
    }
}

/// A proxy whose frontend listens on the IPv6 loopback tcp://[::1]:0, with events.
fn ipv6_proxy(options: Vec<(i32, OptValue)>) -> Proxy {
    let mut config = ProxyConfig::new().ipv6_loopback().events(EventsKind::Pair);
    config.options.extend(options);
    let proxy = Proxy::start_config(config);
    assert!(
        proxy.frontend.starts_with("tcp://[::1]:"),
        "{}",
        proxy.frontend
    );
    proxy
}

#[test]
fn ipv6_a_denied_loopback_is_refused() {
    let proxy = ipv6_proxy(vec![(ZMQ_PROXY_STREAM_DENY, OptValue::Str("::1"))]);
    let mech = curve();
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech, 1);
    wait_until("worker idle", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == 1
    });
    let mut s = connect_and_send(&proxy.frontend, &greeting("CURVE"));
    let addr = s.local_addr().unwrap();
    assert!(addr.is_ipv6(), "{addr}");
    let mut got = 0;
    let mut buf = [0u8; 256];
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    while let Ok(n @ 1..) = s.read(&mut buf) {
        got += n;
    }
    assert_eq!(got, 11, "a denied client gets only the greeting opening");
    let reject = proxy.wait_event("REJECT", DEADLINE, |e| e.reason().is_some());
    assert_eq!(
        reject,
        ProxyEvent::Reject {
            client: format!("[::1]:{}", addr.port()),
            reason: "denied".into()
        }
    );
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED), 1);
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL), 0);
}

#[test]
fn ipv6_an_allowed_loopback_is_served_and_others_are_not() {
    let mech = curve();
    // ::1 is not in an IPv4 list.
    let proxy = ipv6_proxy(vec![(ZMQ_PROXY_STREAM_ALLOW, OptValue::Str("127.0.0.0/8"))]);
    let (closed, got) = refused_after_opening(&proxy.frontend);
    assert!(closed && got == 11, "::1 refused by an IPv4 allow list");
    drop(proxy);

    let proxy = ipv6_proxy(vec![
        (ZMQ_PROXY_STREAM_ALLOW, OptValue::Str("10.0.0.0/8")),
        (ZMQ_PROXY_STREAM_ALLOW, OptValue::Str("::1/128")),
    ]);
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
    let cctx = zmq::Context::new();
    let c = monitored_client(&cctx, &proxy.frontend, &mech, |_| {});
    let addr = c.addr;
    assert_eq!(addr.ip(), "::1".parse::<std::net::IpAddr>().unwrap());
    round_trip(&c, &[b"over IPv6", &payload(6, 3000)]);
    let open = proxy.wait_event("OPEN", DEADLINE, ProxyEvent::is_open);
    assert_eq!(open.client(), format!("[::1]:{}", addr.port()));
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED), 0);
}

/// `frontend` (tcp://127.0.0.1:PORT) reached from the source address `source`, in libzmq's
/// "tcp://SOURCE:0;HOST:PORT" connect syntax.
fn from_source(frontend: &str, source: &str) -> String {
    let target = frontend.strip_prefix("tcp://").expect("a tcp:// frontend");
    format!("tcp://{source}:0;{target}")
}

/// Issue 11, item 2: with the default FAIL_BAN (2) a wrong-key CURVE client that keeps
/// reconnecting costs the dial-in workers at most 3 connections over the time the claim
/// covers, clients from other addresses are never refused, and a client sharing the address
/// is refused at most for the ban in force.
///
/// The product claim is 60 s of reconnecting with the default FAIL_BAN_TIME of 30 s (fails
/// at 0 s and 100 ms later, banned until 30 s, fails at 30 s, banned for 60 s: 3
/// connections; a first silent close waits 300 ms in case its worker died, and the client's
/// next failure confirms it; once banned, an address's failures strike at once).
/// Scaled down 30 times here to keep the test short: FAIL_BAN_TIME 1000 ms and 2 s of
/// reconnecting. libzmq's reconnect interval (100 ms) is not scaled, so this client tries
/// relatively more often than the claim's: a harder case, not an easier one.
#[test]
fn a_wrong_key_client_costs_dial_in_workers_at_most_3_connections() {
    const BAN_MS: u64 = 1000;
    const RECONNECTING: Duration = Duration::from_millis(2 * BAN_MS);
    const CONNECTIONS: u64 = 8;
    let proxy = Proxy::start_config(
        ProxyConfig::new()
            .events(EventsKind::Pair)
            .opt(ZMQ_PROXY_STREAM_FAIL_BAN_TIME, OptValue::Int(BAN_MS as i32)),
    );
    let mech = curve();
    let wctx = zmq::Context::new();
    // A worker without the README's recovery: each connection that fails a handshake with a
    // protocol error is gone for good (what the issue measured: 4 of 4 in 2 s, unbanned).
    let _worker = Worker::start(&wctx, &proxy.backend, mech.clone(), CONNECTIONS as usize);
    wait_until("every worker connection idle", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == CONNECTIONS
    });

    // The wrong-key client: libzmq reconnects it by itself (100 ms) each time the proxy
    // closes it, for RECONNECTING.
    let cctx = zmq::Context::new();
    let start = Instant::now();
    let bad = client(&cctx, &proxy.frontend, &curve());
    bad.send("let me in", zmq::DONTWAIT).unwrap();
    let mut lost = 0;
    let mut last_loss_seen = start;
    while start.elapsed() < RECONNECTING {
        let st = proxy.stream_stats();
        let now_lost = st[ZMQ_PROXY_STREAM_STAT_WORKERS_LOST as usize];
        if now_lost != lost {
            lost = now_lost;
            last_loss_seen = Instant::now();
        }
        assert!(
            lost <= 3,
            "{lost} connections lost after {:?}",
            start.elapsed()
        );
        if let Some(m) = recv_within(&bad, Duration::from_millis(20)) {
            panic!("the wrong-key client got {m:?}");
        }
    }
    drop(bad);
    let st = proxy.stream_stats();
    let banned = st[ZMQ_PROXY_STREAM_STAT_REJECT_BANNED as usize];
    assert!(
        (2..=3).contains(&lost),
        "FAIL_BAN 2 bans after 2; one repeat at most in 2 ban times: {st:?}"
    );
    assert!(banned > 0, "its reconnections met the ban: {st:?}");
    // The last failure may still be held (300 ms) when the loop ends.
    wait_until("every failure counted", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED) == lost
    });
    wait_until("the lost connections are not idle", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == CONNECTIONS - lost
    });

    // 3 good clients from another address (127.0.0.2), while the address 127.0.0.1 is
    // still banned: all served at once, none refused.
    let others: Vec<MonitoredClient> = (0..3)
        .map(|_| {
            monitored_client(
                &cctx,
                &from_source(&proxy.frontend, "127.0.0.2"),
                &mech,
                |_| {},
            )
        })
        .collect();
    for c in &others {
        assert_eq!(c.addr.ip().to_string(), "127.0.0.2");
    }
    for (i, c) in others.iter().enumerate() {
        c.send_multipart(
            [format!("other {i}").into_bytes(), payload(i as u64, 500)],
            0,
        )
        .unwrap();
    }
    for (i, c) in others.iter().enumerate() {
        let reply = recv_within(c, DEADLINE).expect("served");
        assert_eq!(
            reply,
            [format!("other {i}").into_bytes(), payload(i as u64, 500)]
        );
    }
    let st = proxy.stream_stats();
    assert_eq!(st[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize], 3, "{st:?}");
    assert_eq!(
        st[ZMQ_PROXY_STREAM_STAT_REJECT_BANNED as usize], banned,
        "another address is never refused"
    );

    // A good client sharing the banned address: refused while the ban lasts (the ban after
    // the last failure is at most 2 ban times), served after it, and no later.
    let shared = client(&cctx, &proxy.frontend, &mech);
    round_trip(&shared, &[b"sharing the address"]);
    let waited = last_loss_seen.elapsed();
    assert!(
        waited < Duration::from_millis(2 * BAN_MS + 1000),
        "served {waited:?} after the last failure: longer than the ban"
    );
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_LOST), lost);
    println!(
        "wrong-key client for {RECONNECTING:?}: {lost} worker connections lost, {banned} \
         reconnections refused; a client sharing the address served {waited:?} after the \
         last failure"
    );

    // Events: a LOST after each CLOSE handshake-failed, naming the worker connection.
    let events = proxy.drain_events(Duration::from_millis(100));
    let losts: Vec<&ProxyEvent> = events
        .iter()
        .filter(|e| matches!(e, ProxyEvent::Lost { .. }))
        .collect();
    assert_eq!(losts.len() as u64, lost, "{events:?}");
    for l in &losts {
        let ProxyEvent::Lost {
            pair,
            worker,
            mechanism,
        } = l
        else {
            unreachable!()
        };
        assert_eq!(mechanism, "CURVE");
        assert!(worker.starts_with("127.0.0.1:"), "{l:?}");
        let close = events
            .iter()
            .find(|e| e.is_close() && e.pair() == Some(*pair))
            .expect("the pair's CLOSE");
        assert_eq!(close.reason(), Some("handshake-failed"), "{close:?}");
    }
}
