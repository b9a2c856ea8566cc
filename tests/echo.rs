//! End-to-end echo through the proxy with each ZMTP security mechanism.
//!
//! Every test talks to real libzmq peers over TCP on 127.0.0.1: DEALER clients on the proxy's
//! frontend, ROUTER echo workers dialled into its backend (tests/common). The proxy only sees
//! the byte stream, so the mechanism's handshake and encryption run between client and worker.
mod common;
use common::monitor::Monitor;
use common::*;

use std::sync::atomic::Ordering;
use std::time::Duration;

use zmq_proxy_stream::api::{
    ZMQ_PROXY_STREAM_BACKPRESSURE, ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW,
    ZMQ_PROXY_STREAM_STAT_CLOSED_STALLED, ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL,
};

/// Clients and workers live in contexts of their own, as separate processes would: their
/// libzmq I/O threads (where CURVE's crypto runs) are not the proxy's.
struct Peers {
    clients: zmq::Context,
    workers: zmq::Context,
}

impl Peers {
    fn new() -> Peers {
        Peers {
            clients: zmq::Context::new(),
            workers: zmq::Context::new(),
        }
    }
}

/// A harness client whose sends give up after the deadline instead of blocking forever (a
/// DEALER whose session libzmq ended for good has no pipe, and a blocking send would hang).
fn bounded_client(ctx: &zmq::Context, frontend: &str, mech: &Mechanism) -> zmq::Socket {
    let socket = client(ctx, frontend, mech);
    socket.set_sndtimeo(DEADLINE.as_millis() as i32).unwrap();
    socket
}

/// The worker counts a request after sending its echo, so the client may see the echo first.
fn wait_served(worker: &Worker, n: usize) {
    wait_until(&format!("worker served {n}"), DEADLINE, || {
        worker.served.load(Ordering::SeqCst) == n
    });
}

/// Compares two large buffers without printing megabytes on failure.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got.len() != want.len() {
        panic!("{what}: got {} bytes, want {}", got.len(), want.len());
    }
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first differing byte at offset {at} of {}",
            want.len()
        );
    }
}

/// (a) The 2013 experiment: one CURVE client, one CURVE worker, 100 messages sent before any
/// reply is read (so the first ones queue behind the handshake), every odd one a 2-part
/// message. All 100 come back intact, complete and in order.
#[test]
fn curve_100_async_messages_half_multipart_echo_in_order() {
    let proxy = Proxy::start();
    let peers = Peers::new();
    let mech = curve();
    let worker = Worker::start(&peers.workers, &proxy.backend, mech.clone(), 1);
    let c = bounded_client(&peers.clients, &proxy.frontend, &mech);

    // Sizes from 0 to ~20 KB, so that messages span several STREAM chunks and chunk
    // boundaries fall inside ZMTP frames; message 3 has an empty first part.
    let messages: Vec<Vec<Vec<u8>>> = (0..100u64)
        .map(|i| {
            let len = ((i * 7919) % 20_000) as usize;
            if i % 2 == 0 {
                vec![payload(i, len)]
            } else {
                let first = if i == 3 {
                    0
                } else {
                    1 + (i as usize * 31) % 300
                };
                vec![payload(1_000 + i, first), payload(i, len)]
            }
        })
        .collect();

    for m in &messages {
        c.send_multipart(m.iter(), 0).unwrap();
    }
    for (i, want) in messages.iter().enumerate() {
        let got = recv_within(&c, DEADLINE)
            .unwrap_or_else(|| panic!("reply {i} of 100 did not come back"));
        assert_eq!(got.len(), want.len(), "reply {i}: number of parts");
        for (p, (g, w)) in got.iter().zip(want).enumerate() {
            assert_same_bytes(g, w, &format!("reply {i} part {p}"));
        }
    }
    wait_served(&worker, 100);
    assert!(
        recv_within(&c, Duration::from_millis(0)).is_none(),
        "no reply beyond the 100 requests"
    );
    drop(c);
    assert_eq!(proxy.terminate().0, 0);
}

/// (b) NULL: no security at all passes the same way.
#[test]
fn null_mechanism_echoes() {
    let proxy = Proxy::start();
    let peers = Peers::new();
    let worker = Worker::start(&peers.workers, &proxy.backend, Mechanism::Null, 1);
    let c = bounded_client(&peers.clients, &proxy.frontend, &Mechanism::Null);
    for i in 0..10u64 {
        round_trip(&c, &[&payload(i, 1 + i as usize * 900)]);
    }
    round_trip(&c, &[b"two", &payload(99, 5000)]);
    wait_served(&worker, 11);
}

/// (b) PLAIN: the worker's ZAP handler (user/pass) authenticates clients through the proxy.
/// A client with a wrong password is refused by the worker (its libzmq reports a ZAP 400
/// from the ERROR command the worker sent through the proxy) and gets no reply; the good
/// clients before and after it are served.
#[test]
fn plain_mechanism_echoes_and_wrong_password_gets_no_reply() {
    let proxy = Proxy::start();
    let peers = Peers::new();
    // Three connections: one each for the good client, the bad one and a later good one, so
    // that the test does not depend on whether libzmq reconnects after a failed handshake.
    let worker = Worker::start(&peers.workers, &proxy.backend, Mechanism::Plain, 3);

    let good = bounded_client(&peers.clients, &proxy.frontend, &Mechanism::Plain);
    round_trip(&good, &[b"good-1", &payload(1, 300)]);
    wait_served(&worker, 1);

    let bad = peers.clients.socket(zmq::DEALER).unwrap();
    bad.set_linger(0).unwrap();
    bad.set_sndtimeo(DEADLINE.as_millis() as i32).unwrap();
    bad.set_plain_username(Some("user")).unwrap();
    bad.set_plain_password(Some("not-the-password")).unwrap();
    let monitor = Monitor::attach(&peers.clients, &bad);
    bad.connect(&proxy.frontend).unwrap();
    bad.send("let me in", 0).unwrap();
    // The worker's ERROR command crossed the proxy: the client knows it was refused.
    let status = monitor.wait_for(zmq::SocketEvent::HANDSHAKE_FAILED_AUTH, DEADLINE);
    assert_eq!(status, 400, "ZAP status code relayed from the worker");
    assert!(
        recv_within(&bad, Duration::from_millis(500)).is_none(),
        "a client with a wrong password must get no reply"
    );
    assert_eq!(
        worker.served.load(Ordering::SeqCst),
        1,
        "the worker never saw the refused client's request"
    );

    // The good session is untouched, and a new good client is served too.
    round_trip(&good, &[b"good-2"]);
    let good2 = bounded_client(&peers.clients, &proxy.frontend, &Mechanism::Plain);
    round_trip(&good2, &[b"good-3", &payload(3, 10_000)]);
    wait_served(&worker, 3);
}

/// (c) One 16 MiB message to the worker and its 16 MiB echo back, through CURVE, byte-exact;
/// the session stays in step afterwards.
///
/// The proxy runs with ZMQ_PROXY_STREAM_BACKPRESSURE 1, the mode the header documents as
/// losing nothing: with the default (0) a pair whose destination falls more than
/// ZMQ_PROXY_STREAM_PAIR_BUFFER (4 MiB) behind its source is closed, and a single 16 MiB
/// message does that whenever the receiving peer's libzmq is briefly starved of CPU (6 of
/// 30 runs with 3 busy loops and a cargo build on 2 cores, STREAMSTATS showing
/// CLOSED_BUFFER_OVERFLOW 1).
#[test]
fn curve_16_mib_message_each_way_byte_exact() {
    let proxy = Proxy::start_opts(vec![(ZMQ_PROXY_STREAM_BACKPRESSURE, OptValue::Int(1))]);
    let peers = Peers::new();
    let mech = curve();
    let worker = Worker::start(&peers.workers, &proxy.backend, mech.clone(), 1);
    let c = bounded_client(&peers.clients, &proxy.frontend, &mech);

    let big = payload(16, 16 << 20);
    c.send(&big[..], 0).unwrap();
    let reply = recv_within(&c, DEADLINE).expect("16 MiB echo within the deadline");
    assert_eq!(reply.len(), 1, "one part");
    assert_same_bytes(&reply[0], &big, "16 MiB echo");

    round_trip(&c, &[b"after", &payload(17, 100)]);
    wait_served(&worker, 2);

    let st = proxy.stream_stats();
    assert_eq!(
        st[ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW as usize], 0,
        "{st:?}"
    );
    assert_eq!(
        st[ZMQ_PROXY_STREAM_STAT_CLOSED_STALLED as usize], 0,
        "{st:?}"
    );
    assert_eq!(st[ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL as usize], 1, "{st:?}");

    // Both directions went through the proxy: at least 16 MiB in and out on each side.
    let s = proxy.statistics();
    let mib16 = 16u64 << 20;
    assert!(
        s[1] > mib16 && s[3] > mib16 && s[5] > mib16 && s[7] > mib16,
        "STATISTICS shows 16 MiB each way: {s:?}"
    );
}
