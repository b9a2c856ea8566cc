//! Real networks: clients on hosts of their own (network namespaces joined to the proxy's by
//! veth links, see tests/common/netns.rs), so that the per-address rules (ALLOW, DENY,
//! MAX_PER_ADDRESS, FAIL_BAN) meet clients on distinct real addresses, not loopback
//! aliases. Served clients are real CURVE DEALERs doing round trips; refused ones are real
//! CURVE DEALERs too, which libzmq keeps reconnecting: the proxy's REJECT counters move,
//! the REJECT events name the host's address, and nothing of theirs reaches a worker.
//!
//! Needs root and iproute2; otherwise each test prints "netns: skipped: <reason>" (or fails
//! with STREAMQ_REQUIRE_NETNS=1). Run just these: `cargo test --release --test netns`.
mod common;

use common::netns::{hosts_or_skip, Host};
use common::*;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use zmq_proxy_stream::api::*;

/// A proxy with events whose frontend listens on the root end of `host`'s link (every host
/// reaches it through its own link); the workers connect over loopback as usual.
fn proxy_on(host: &Host, options: Vec<(i32, OptValue)>) -> Proxy {
    let mut config = ProxyConfig::new().events(EventsKind::Pair);
    config.frontend_bind = format!("tcp://{}:0", host.gateway);
    config.options.extend(options);
    Proxy::start_config(config)
}

/// A CURVE client made in `ctx` (a host's context), checked to connect from `host`'s
/// address: the proof that its connection really lives in the host's namespace.
fn client_on(host: &Host, ctx: &zmq::Context, proxy: &Proxy, mech: &Mechanism) -> MonitoredClient {
    let c = monitored_client(ctx, &proxy.frontend, mech, |_| {});
    assert_eq!(
        c.addr.ip(),
        IpAddr::V4(host.addr),
        "the client's connection is made from {}",
        host.name
    );
    c
}

/// `c` (from `host`) is served: a round trip, and the proxy's OPEN names its address.
fn assert_served(proxy: &Proxy, c: &MonitoredClient, tag: &str) {
    round_trip(c, &[tag.as_bytes(), &payload(7, 5000)]);
    let addr = c.addr.to_string();
    let open = proxy.wait_event("the client's OPEN", DEADLINE, |e| {
        e.is_open() && e.client() == addr
    });
    assert_eq!(open.client(), addr);
}

/// `c` is refused for `reason`, its REJECT event naming its address; libzmq reconnects it by
/// itself and it is refused again (counted in `counter` each time), and its request never
/// comes back. Call once per client, with no other client of its host being refused.
fn assert_refused(proxy: &Proxy, c: &MonitoredClient, counter: i32, reason: &str) {
    let before = proxy.stat(counter);
    c.send("this must reach no worker", zmq::DONTWAIT).unwrap();
    let addr = c.addr.to_string();
    let reject = proxy.wait_event("the client's REJECT", DEADLINE, |e| e.client() == addr);
    assert_eq!(reject.reason(), Some(reason), "{reject:?}");
    let host = c.addr.ip().to_string();
    proxy.wait_event("the client's REJECT after it reconnected", DEADLINE, |e| {
        e.reason() == Some(reason)
            && e.client().starts_with(&format!("{host}:"))
            && e.client() != addr
    });
    assert!(proxy.stat(counter) >= before + 2);
    assert!(
        recv_within(c, Duration::ZERO).is_none(),
        "a refused client got a reply"
    );
}

/// An address rule that admits `hosts[0]` and refuses `hosts[1]`.
fn admits_the_first_and_denies_the_second(option: i32, value: impl Fn(&[Host]) -> String) {
    let Some(hosts) = hosts_or_skip(&["a", "b"]) else {
        return;
    };
    let rule = value(&hosts);
    let proxy = proxy_on(&hosts[0], vec![(option, OptValue::String(rule.clone()))]);
    let mech = curve();
    let worker = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 2);
    let (ctx_a, ctx_b) = (hosts[0].context(), hosts[1].context());
    let a = client_on(&hosts[0], &ctx_a, &proxy, &mech);
    assert_served(&proxy, &a, &format!("admitted by {rule}"));
    let b = client_on(&hosts[1], &ctx_b, &proxy, &mech);
    assert_refused(&proxy, &b, ZMQ_PROXY_STREAM_STAT_REJECT_DENIED, "denied");
    assert_eq!(worker.served.load(Ordering::SeqCst), 1, "only A's request");
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL), 1);
}

#[test]
fn allow_admits_its_network_and_refuses_another_host() {
    admits_the_first_and_denies_the_second(ZMQ_PROXY_STREAM_ALLOW, |h| h[0].network());
}

#[test]
fn deny_refuses_its_host_and_admits_another() {
    admits_the_first_and_denies_the_second(ZMQ_PROXY_STREAM_DENY, |h| h[1].addr.to_string());
}

/// MAX_PER_ADDRESS 1: a second client from A is refused while A's first is paired; a client
/// from B is served meanwhile; once A's first leaves, A's second gets in, and the request it
/// queued while refused is answered.
#[test]
fn max_per_address_counts_each_host_apart() {
    let Some(hosts) = hosts_or_skip(&["a", "b"]) else {
        return;
    };
    let proxy = proxy_on(
        &hosts[0],
        vec![(ZMQ_PROXY_STREAM_MAX_PER_ADDRESS, OptValue::Int(1))],
    );
    let mech = curve();
    let worker = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 3);
    let (ctx_a, ctx_b) = (hosts[0].context(), hosts[1].context());
    let a1 = client_on(&hosts[0], &ctx_a, &proxy, &mech);
    assert_served(&proxy, &a1, "A's first");
    let a2 = client_on(&hosts[0], &ctx_a, &proxy, &mech);
    assert_refused(
        &proxy,
        &a2,
        ZMQ_PROXY_STREAM_STAT_REJECT_PER_ADDRESS,
        "per-address",
    );
    let b = client_on(&hosts[1], &ctx_b, &proxy, &mech);
    assert_served(&proxy, &b, "B, while A is at its limit");
    assert_eq!(worker.served.load(Ordering::SeqCst), 2);
    drop(a1);
    let reply = recv_within(&a2, DEADLINE).expect("A's second is served once the first left");
    assert_eq!(reply, [b"this must reach no worker".to_vec()]);
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED), 0);
}

/// FAIL_BAN (default 2): a wrong-key client on A fails two handshakes and A is banned; a
/// good client from A is then refused too, and a good client from B is served.
#[test]
fn fail_ban_bans_the_failing_host_only() {
    let Some(hosts) = hosts_or_skip(&["a", "b"]) else {
        return;
    };
    // A ban far longer than the test, so that A is still banned at its end.
    let proxy = proxy_on(
        &hosts[0],
        vec![(ZMQ_PROXY_STREAM_FAIL_BAN_TIME, OptValue::Int(600_000))],
    );
    let mech = curve();
    // Each failed handshake costs this worker one connection for good (libzmq does not
    // reconnect after a protocol error): two are lost, the others stay.
    let worker = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 4);
    wait_until("every worker connection idle", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == 4
    });
    let (ctx_a, ctx_b) = (hosts[0].context(), hosts[1].context());
    let wrong_key = client_on(&hosts[0], &ctx_a, &proxy, &curve());
    wrong_key.send("let me in", zmq::DONTWAIT).unwrap();
    let from_a = format!("{}:", hosts[0].addr);
    proxy.wait_event("A banned", DEADLINE, |e| {
        e.reason() == Some("banned") && e.client().starts_with(&from_a)
    });
    drop(wrong_key);
    // The events so far (the wrong-key client's pairs and refusals), so that what follows
    // is about the next client only.
    let events = proxy.drain_events(Duration::from_millis(200));
    let failed: Vec<&ProxyEvent> = events
        .iter()
        .filter(|e| e.reason() == Some("handshake-failed"))
        .collect();
    assert_eq!(failed.len(), 2, "FAIL_BAN 2 bans after two: {events:?}");
    assert!(failed.iter().all(|e| e.client().starts_with(&from_a)));
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED), 2);
    let good_a = client_on(&hosts[0], &ctx_a, &proxy, &mech);
    assert_refused(
        &proxy,
        &good_a,
        ZMQ_PROXY_STREAM_STAT_REJECT_BANNED,
        "banned",
    );
    let b = client_on(&hosts[1], &ctx_b, &proxy, &mech);
    assert_served(&proxy, &b, "B, while A is banned");
    assert_eq!(worker.served.load(Ordering::SeqCst), 1, "only B's request");
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_LOST), 2);
}
