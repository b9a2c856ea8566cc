//! Screening at the ZMTP edge: bad clients and bad worker connections are closed at the
//! proxy, counted under the right STREAMSTATS reason, and never cost a worker connection;
//! clients pair only with workers of their own mechanism; both ends of a pair agree on the
//! ZMTP version (multipart messages and PUB/SUB subscriptions pass).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::*;
use common::*;
use zmq_proxy_stream::api::*;

/// A bounded negative check: how long something must NOT happen.
const QUIET: Duration = Duration::from_millis(300);

/// Counters that must move only when a test says so.
const WATCHED: [(i32, &str); 15] = [
    (ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL, "PAIRS_TOTAL"),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        "REJECT_BAD_GREETING",
    ),
    (ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM, "REJECT_MECHANISM"),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        "REJECT_BAD_COMMAND",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT,
        "REJECT_HANDSHAKE_TIMEOUT",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_WAIT_TIMEOUT,
        "REJECT_WAIT_TIMEOUT",
    ),
    (ZMQ_PROXY_STREAM_STAT_REJECT_QUEUE_FULL, "REJECT_QUEUE_FULL"),
    (
        ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW,
        "CLOSED_BUFFER_OVERFLOW",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_CLOSED_IDLE_TIMEOUT,
        "CLOSED_IDLE_TIMEOUT",
    ),
    (ZMQ_PROXY_STREAM_STAT_WORKERS_REJECTED, "WORKERS_REJECTED"),
    (ZMQ_PROXY_STREAM_STAT_WORKERS_RECYCLED, "WORKERS_RECYCLED"),
    (
        ZMQ_PROXY_STREAM_STAT_CLOSED_EARLY_OVERFLOW,
        "CLOSED_EARLY_OVERFLOW",
    ),
    (ZMQ_PROXY_STREAM_STAT_CLOSED_STALLED, "CLOSED_STALLED"),
    (
        ZMQ_PROXY_STREAM_STAT_BACKPRESSURE_PAUSES,
        "BACKPRESSURE_PAUSES",
    ),
    (ZMQ_PROXY_STREAM_STAT_FOUND_GONE, "FOUND_GONE"),
];

/// Asserts that between two STREAMSTATS snapshots every watched counter moved by exactly
/// the amount in `moved` (0 when not listed).
fn assert_moved(what: &str, before: &[u64], after: &[u64], moved: &[(i32, u64)]) {
    for (index, name) in WATCHED {
        let want = moved
            .iter()
            .find(|(i, _)| *i == index)
            .map_or(0, |(_, n)| *n);
        let got = after[index as usize] as i128 - before[index as usize] as i128;
        assert_eq!(
            got, want as i128,
            "{what}: {name} moved by {got}, expected {want} (before {before:?}, after {after:?})"
        );
    }
}

/// Opens a connection with `open`, asserts that the proxy closes it and that, of the watched
/// counters, exactly `counter` moved, by one. Returns STREAMSTATS after the close.
fn closed_and_counted(
    proxy: &Proxy,
    what: &str,
    counter: i32,
    open: impl FnOnce() -> TcpStream,
) -> Vec<u64> {
    let before = proxy.stream_stats();
    let mut s = open();
    assert!(
        closed_within(&mut s, DEADLINE),
        "{what}: the proxy must close the connection"
    );
    let after = proxy.stream_stats();
    assert_moved(what, &before, &after, &[(counter, 1)]);
    after
}

fn idle(proxy: &Proxy, index: i32) -> u64 {
    proxy.stat(index)
}

/// Waits until the proxy is quiet: no pair open, no client waiting, and `idle_index` shows
/// exactly `n` idle worker connections.
fn wait_quiet(proxy: &Proxy, idle_index: i32, n: u64) {
    wait_until("quiet proxy with the worker slot idle", DEADLINE, || {
        let s = proxy.stream_stats();
        s[idle_index as usize] == n
            && s[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize] == 0
            && s[ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING as usize] == 0
    });
}

/// A CURVE-only proxy (handshake timeout 300 ms) with one libzmq CURVE ROUTER worker that
/// holds ONE backend connection.
struct CurveBench {
    worker: Worker,
    mech: Mechanism,
    proxy: Proxy,
}

impl CurveBench {
    fn start() -> CurveBench {
        let proxy = Proxy::start_opts(vec![
            (ZMQ_PROXY_STREAM_MECHANISMS, OptValue::Str("CURVE")),
            (ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT, OptValue::Int(300)),
        ]);
        let mech = curve();
        let worker = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
        wait_quiet(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE, 1);
        CurveBench {
            worker,
            mech,
            proxy,
        }
    }

    /// A good libzmq CURVE client round-trips a multipart message through the single worker
    /// slot; after it leaves, the worker's reconnected slot is idle again. Returns the
    /// STREAMSTATS snapshot taken when quiet again.
    fn good_client_is_served(&self, what: &str) -> Vec<u64> {
        let before = self.proxy.stream_stats();
        let served = self.worker.served.load(Ordering::Relaxed);
        let c = client(&self.proxy.ctx, &self.proxy.frontend, &self.mech);
        round_trip(&c, &[b"good client", &payload(1, 300)]);
        wait_until("the worker counted the echo", DEADLINE, || {
            self.worker.served.load(Ordering::Relaxed) == served + 1
        });
        drop(c);
        wait_quiet(&self.proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE, 1);
        let after = self.proxy.stream_stats();
        assert_moved(
            &format!("good client after {what}"),
            &before,
            &after,
            &[(ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL, 1)],
        );
        after
    }

    /// A raw bad client made by `bad` is closed by the proxy, counted once under `reason`
    /// and nowhere else, the single worker slot stays idle and untouched, and a good client
    /// is served through that slot afterwards.
    fn bad_client_is_screened(&self, what: &str, reason: i32, bad: impl FnOnce(&str) -> TcpStream) {
        assert_eq!(
            idle(&self.proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE),
            1
        );
        let after = closed_and_counted(&self.proxy, what, reason, || bad(&self.proxy.frontend));
        assert_eq!(
            after[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE as usize], 1,
            "{what}: the worker slot must stay idle (not consumed)"
        );
        assert_eq!(
            after[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize], 0,
            "{what}"
        );
        assert_eq!(
            after[ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING as usize], 0,
            "{what}"
        );
        self.good_client_is_served(what);
    }
}

/// Random bytes whose first byte is not the signature's 0xFF.
fn random_bytes() -> Vec<u8> {
    let mut b = payload(0xC0FFEE, 1000);
    if b[0] == 0xFF {
        b[0] = 0x42;
    }
    b
}

/// A minimal TLS 1.2 ClientHello record (what a TLS client or an HTTPS probe sends first).
fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03]; // client_version TLS 1.2
    hello.extend_from_slice(&payload(99, 32)); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x04, 0xC0, 0x2F, 0x00, 0x9C]); // 2 cipher suites
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let sni = b"example.org";
    let mut ext = vec![0x00, 0x00]; // server_name
    let list_len = (sni.len() + 3) as u16;
    ext.extend_from_slice(&(list_len + 2).to_be_bytes());
    ext.extend_from_slice(&list_len.to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(sni);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// A raw CURVE client: greeting, then `command` as its first command.
fn curve_greeting_then(command: Vec<u8>) -> impl FnOnce(&str) -> TcpStream {
    move |frontend| {
        let mut s = connect_and_send(frontend, &greeting("CURVE"));
        // The proxy answers the greeting only once it has judged it: read it whole first,
        // as libzmq does, so the command is judged as a command.
        let theirs = read_exact_within(&mut s, 64, DEADLINE);
        assert_eq!(&theirs[12..17], b"CURVE");
        s.write_all(&command).unwrap();
        s
    }
}

#[test]
fn random_bytes_are_closed_as_bad_greeting() {
    let b = CurveBench::start();
    b.bad_client_is_screened(
        "random bytes",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        |fe| connect_and_send(fe, &random_bytes()),
    );
    // Random bytes after a correct first byte: the signature's last byte gives them away.
    b.bad_client_is_screened(
        "0xFF then random bytes",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        |fe| {
            let mut bytes = payload(0xBAD, 64);
            bytes[0] = 0xFF;
            if bytes[9] == 0x7F {
                bytes[9] = 0x7E;
            }
            connect_and_send(fe, &bytes)
        },
    );
}

#[test]
fn http_request_is_closed_as_bad_greeting() {
    let b = CurveBench::start();
    b.bad_client_is_screened(
        "HTTP request",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        |fe| {
            connect_and_send(
                fe,
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
            )
        },
    );
}

#[test]
fn tls_client_hello_is_closed_as_bad_greeting() {
    let b = CurveBench::start();
    b.bad_client_is_screened(
        "TLS ClientHello",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        |fe| connect_and_send(fe, &tls_client_hello()),
    );
}

#[test]
fn zmtp_2_0_greeting_is_closed_as_bad_greeting() {
    let b = CurveBench::start();
    // ZMTP 2.0: signature, revision 0x01, socket type (DEALER), empty identity frame.
    b.bad_client_is_screened(
        "ZMTP 2.0 greeting",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        |fe| {
            connect_and_send(
                fe,
                &[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 0x01, 0x05, 0x00, 0x00],
            )
        },
    );
    // A ZMTP 3 shaped greeting claiming major version 2.
    b.bad_client_is_screened(
        "greeting with major 2",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        |fe| connect_and_send(fe, &greeting_with(2, 0, b"CURVE", 0)),
    );
}

#[test]
fn client_claiming_to_be_the_curve_server_is_closed_as_bad_greeting() {
    let b = CurveBench::start();
    b.bad_client_is_screened(
        "CURVE greeting with as-server = 1",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        |fe| {
            let mut s = connect_and_send(fe, &greeting_with(3, 1, b"CURVE", 1));
            s.write_all(&curve_hello()).unwrap();
            s
        },
    );
}

#[test]
fn silent_client_is_closed_at_the_handshake_timeout() {
    let b = CurveBench::start();
    b.bad_client_is_screened(
        "valid greeting, then silence",
        ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT,
        |fe| connect_and_send(fe, &greeting("CURVE")),
    );
    b.bad_client_is_screened(
        "half a greeting, then silence",
        ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT,
        |fe| connect_and_send(fe, &greeting("CURVE")[..20]),
    );
    b.bad_client_is_screened(
        "greeting and half a HELLO, then silence",
        ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT,
        |fe| {
            let mut bytes = greeting("CURVE");
            bytes.extend_from_slice(&curve_hello()[..100]);
            connect_and_send(fe, &bytes)
        },
    );
}

#[test]
fn libzmq_null_client_is_refused_by_a_curve_only_proxy() {
    let b = CurveBench::start();
    let before = b.proxy.stream_stats();
    let c = b.proxy.ctx.socket(zmq::DEALER).unwrap();
    c.set_linger(0).unwrap();
    // No reconnection, so that the count is exact.
    c.set_reconnect_ivl(-1).unwrap();
    c.connect(&b.proxy.frontend).unwrap();
    // Without DONTWAIT this send could block for ever: once the proxy has closed the
    // connection (and reconnection is off) the DEALER has no pipe left to queue on.
    match c.send("anyone there?", zmq::DONTWAIT) {
        Ok(()) | Err(zmq::Error::EAGAIN) => {}
        Err(e) => panic!("send: {e}"),
    }
    wait_until("REJECT_MECHANISM moves", DEADLINE, || {
        b.proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM)
            > before[ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM as usize]
    });
    assert!(
        recv_within(&c, QUIET).is_none(),
        "a refused NULL client must never get a reply"
    );
    let after = b.proxy.stream_stats();
    assert_moved(
        "libzmq NULL client",
        &before,
        &after,
        &[(ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM, 1)],
    );
    assert_eq!(after[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE as usize], 1);
    assert_eq!(b.worker.served.load(Ordering::Relaxed), 0);
    b.good_client_is_served("libzmq NULL client");
    drop(c);
}

#[test]
fn curve_hello_with_bad_padding_is_closed_as_bad_command() {
    let b = CurveBench::start();
    let mut hello = curve_hello();
    hello[10 + 40] = 1; // one non-zero byte in the 72 bytes of padding
    b.bad_client_is_screened(
        "CURVE HELLO with non-zero padding",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        curve_greeting_then(hello),
    );
    let mut hello = curve_hello();
    hello[10 + 71] = 0x80; // the last padding byte
    b.bad_client_is_screened(
        "CURVE HELLO with its last padding byte set",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        curve_greeting_then(hello),
    );
}

#[test]
fn curve_hello_with_bad_length_is_closed_as_bad_command() {
    let b = CurveBench::start();
    let mut short = curve_hello();
    short[1] = 199;
    short.pop();
    b.bad_client_is_screened(
        "CURVE HELLO of 199 bytes",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        curve_greeting_then(short),
    );
    let mut long = curve_hello();
    long[1] = 201;
    long.push(0);
    b.bad_client_is_screened(
        "CURVE HELLO of 201 bytes",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        curve_greeting_then(long),
    );
}

#[test]
fn curve_hello_with_bad_version_is_closed_as_bad_command() {
    let b = CurveBench::start();
    for (major, minor) in [(2u8, 0u8), (1, 1), (0, 0)] {
        let mut hello = curve_hello();
        hello[8] = major;
        hello[9] = minor;
        b.bad_client_is_screened(
            &format!("CURVE HELLO version {major}.{minor}"),
            ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
            curve_greeting_then(hello),
        );
    }
}

#[test]
fn curve_client_whose_first_command_is_not_hello_is_closed_as_bad_command() {
    let b = CurveBench::start();
    b.bad_client_is_screened(
        "CURVE greeting, then a NULL READY",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        curve_greeting_then(null_ready("DEALER")),
    );
    // A message frame (flags 0x00) where a command must be.
    let mut message = vec![0x00, 200];
    message.extend_from_slice(&curve_hello()[2..]);
    b.bad_client_is_screened(
        "CURVE greeting, then a message frame",
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        curve_greeting_then(message),
    );
}

#[test]
fn null_and_plain_first_commands_are_screened() {
    // Default mechanisms; one libzmq NULL worker with one connection.
    let proxy = Proxy::start_opts(vec![(
        ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT,
        OptValue::Int(300),
    )]);
    let worker = Worker::start(&proxy.ctx, &proxy.backend, Mechanism::Null, 1);
    wait_quiet(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL, 1);
    let mut bad_metadata = null_ready("DEALER");
    // Claim a property value longer than the command holds.
    let value_len_pos = 2 + 6 + 1 + 11;
    bad_metadata[value_len_pos + 3] = 200;
    let mut plain_bad = vec![0x04, 12, 5];
    plain_bad.extend_from_slice(b"HELLO");
    plain_bad.extend_from_slice(&[4, b'u', b's', b'e', b'r', 9, b'p']); // password cut short
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("NULL READY with bad metadata", "NULL", bad_metadata),
        ("NULL greeting, then HELLO", "NULL", curve_hello()),
        ("PLAIN HELLO with a bad password length", "PLAIN", plain_bad),
        ("PLAIN greeting, then READY", "PLAIN", null_ready("DEALER")),
    ];
    for (what, mechanism, command) in cases {
        let after = closed_and_counted(
            &proxy,
            what,
            ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
            || {
                let mut s = connect_and_send(&proxy.frontend, &greeting(mechanism));
                read_exact_within(&mut s, 64, DEADLINE);
                s.write_all(&command).unwrap();
                s
            },
        );
        assert_eq!(
            after[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL as usize], 1,
            "{what}"
        );
    }
    // The NULL worker's single slot still serves a good NULL client.
    let c = client(&proxy.ctx, &proxy.frontend, &Mechanism::Null);
    round_trip(&c, &[b"still here"]);
    wait_until("served", DEADLINE, || {
        worker.served.load(Ordering::Relaxed) == 1
    });
}

/// A worker connection that sends bytes the proxy refuses is closed and counted under
/// WORKERS_REJECTED only; the real worker's slot keeps serving.
#[test]
fn bad_worker_connections_are_closed_and_counted() {
    let proxy = Proxy::start_opts(vec![(
        ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT,
        OptValue::Int(300),
    )]);
    let mech = curve();
    let worker = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
    wait_quiet(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE, 1);

    type MakeBad = Box<dyn Fn(&Proxy) -> TcpStream>;
    let cases: Vec<(&str, MakeBad)> = vec![
        (
            "garbage",
            Box::new(|p: &Proxy| connect_and_send(&p.backend, &random_bytes())),
        ),
        (
            "HTTP response",
            Box::new(|p: &Proxy| connect_and_send(&p.backend, b"HTTP/1.1 200 OK\r\n\r\n")),
        ),
        (
            "ZMTP 2.0 greeting",
            Box::new(|p: &Proxy| {
                connect_and_send(
                    &p.backend,
                    &[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 1, 5, 0, 0],
                )
            }),
        ),
        (
            "greeting and READY at once (speaks before pairing)",
            Box::new(|p: &Proxy| {
                let mut bytes = greeting("NULL");
                bytes.extend_from_slice(&null_ready("ROUTER"));
                connect_and_send(&p.backend, &bytes)
            }),
        ),
        (
            "idle, then speaks before pairing",
            Box::new(|p: &Proxy| {
                let w = RawWorker::connect(&p.backend);
                wait_until("raw worker idle", DEADLINE, || {
                    p.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL) == 1
                });
                let mut s = w.stream;
                s.write_all(&null_ready("ROUTER")).unwrap();
                s
            }),
        ),
        (
            "silent past the handshake timeout",
            Box::new(|p: &Proxy| connect(&p.backend)),
        ),
        (
            "half a greeting past the handshake timeout",
            Box::new(|p: &Proxy| connect_and_send(&p.backend, &greeting("CURVE")[..30])),
        ),
    ];
    for (what, make) in cases {
        let after =
            closed_and_counted(&proxy, what, ZMQ_PROXY_STREAM_STAT_WORKERS_REJECTED, || {
                make(&proxy)
            });
        assert_eq!(
            after[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL as usize], 0,
            "{what}"
        );
        assert_eq!(
            after[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE as usize], 1,
            "{what}"
        );
    }
    let c = client(&proxy.ctx, &proxy.frontend, &mech);
    round_trip(&c, &[b"workers screened"]);
    wait_until("served", DEADLINE, || {
        worker.served.load(Ordering::Relaxed) == 1
    });
}

#[test]
fn worker_of_a_disallowed_mechanism_is_rejected() {
    let proxy = Proxy::start_opts(vec![(ZMQ_PROXY_STREAM_MECHANISMS, OptValue::Str("CURVE"))]);
    let after = closed_and_counted(
        &proxy,
        "NULL worker on a CURVE-only proxy",
        ZMQ_PROXY_STREAM_STAT_WORKERS_REJECTED,
        || RawWorker::connect(&proxy.backend).stream,
    );
    assert_eq!(after[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL as usize], 0);
}

/// NULL, PLAIN and CURVE clients are each served by the worker of their own mechanism.
#[test]
fn clients_pair_only_with_workers_of_their_mechanism() {
    let proxy = Proxy::start();
    let curve = curve();
    let null_w = Worker::start(&proxy.ctx, &proxy.backend, Mechanism::Null, 1);
    let plain_w = Worker::start(&proxy.ctx, &proxy.backend, Mechanism::Plain, 1);
    let curve_w = Worker::start(&proxy.ctx, &proxy.backend, curve.clone(), 1);
    let all_idle = |p: &Proxy| {
        let s = p.stream_stats();
        s[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL as usize] == 1
            && s[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_PLAIN as usize] == 1
            && s[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE as usize] == 1
            && s[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize] == 0
    };
    wait_until("three idle workers", DEADLINE, || all_idle(&proxy));
    let served = |w: &Worker| w.served.load(Ordering::Relaxed);

    for (n, mech) in [
        (1usize, curve.clone()),
        (2, Mechanism::Null),
        (3, Mechanism::Plain),
    ] {
        let c = client(&proxy.ctx, &proxy.frontend, &mech);
        round_trip(&c, &[b"which worker?", &payload(n as u64, 64)]);
        let expected = match n {
            1 => (0, 0, 1),
            2 => (1, 0, 1),
            _ => (1, 1, 1),
        };
        wait_until("served counters", DEADLINE, || {
            (served(&null_w), served(&plain_w), served(&curve_w)) == expected
        });
        drop(c);
        wait_until("workers idle again", DEADLINE, || all_idle(&proxy));
        // No echo went astray meanwhile.
        assert_eq!(
            (served(&null_w), served(&plain_w), served(&curve_w)),
            expected
        );
    }
}

/// A NULL client never takes an idle CURVE worker: it waits until a NULL worker comes.
#[test]
fn client_waits_for_a_worker_of_its_mechanism() {
    let proxy = Proxy::start();
    let curve = curve();
    let curve_w = Worker::start(&proxy.ctx, &proxy.backend, curve, 1);
    wait_quiet(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE, 1);
    let c = client(&proxy.ctx, &proxy.frontend, &Mechanism::Null);
    c.send("for a NULL worker", 0).unwrap();
    wait_until("NULL client waiting", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING) == 1
    });
    assert!(recv_within(&c, QUIET).is_none(), "no NULL worker yet");
    let s = proxy.stream_stats();
    assert_eq!(s[ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL as usize], 0);
    assert_eq!(s[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE as usize], 1);
    let null_w = Worker::start(&proxy.ctx, &proxy.backend, Mechanism::Null, 1);
    let reply = recv_within(&c, DEADLINE).expect("served once a NULL worker came");
    assert_eq!(reply, vec![b"for a NULL worker".to_vec()]);
    wait_until("NULL worker served", DEADLINE, || {
        null_w.served.load(Ordering::Relaxed) == 1
    });
    assert_eq!(curve_w.served.load(Ordering::Relaxed), 0);
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE), 1);
}

/// The proxy tells client and worker the same ZMTP version, whatever each announced.
#[test]
fn both_ends_are_told_the_same_zmtp_version() {
    let proxy = Proxy::start();
    // A 3.0 worker and a 3.1 client.
    let mut w = connect_and_send(&proxy.backend, &greeting_with(3, 0, b"NULL", 0));
    let opening = read_exact_within(&mut w, 11, DEADLINE);
    assert_eq!(&opening[..10], &[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F]);
    wait_until("raw worker idle", DEADLINE, || {
        idle(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL) == 1
    });
    let mut c = connect_and_send(&proxy.frontend, &greeting_with(3, 1, b"NULL", 0));
    let to_client = read_exact_within(&mut c, 64, DEADLINE);
    c.write_all(&null_ready("DEALER")).unwrap();
    let rest = read_exact_within(&mut w, 53, DEADLINE);
    let to_worker: Vec<u8> = opening.iter().chain(rest.iter()).copied().collect();
    assert_eq!(to_client[10], 3, "major to the client");
    assert_eq!(to_worker[10], 3, "major to the worker");
    assert_eq!(
        to_client[11], to_worker[11],
        "client and worker must be told the same minor version"
    );
    assert_eq!(
        to_client[11], 0,
        "a 3.0 worker must not be told more than 3.0"
    );
    assert_eq!(&to_worker[12..16], b"NULL");
    // From here the client's READY reaches the worker untouched.
    assert_eq!(
        read_exact_within(&mut w, null_ready("DEALER").len(), DEADLINE),
        null_ready("DEALER")
    );
}

#[test]
fn libzmq_multipart_messages_pass_both_ways() {
    let proxy = Proxy::start();
    let curve = curve();
    let _cw = Worker::start(&proxy.ctx, &proxy.backend, curve.clone(), 1);
    let _nw = Worker::start(&proxy.ctx, &proxy.backend, Mechanism::Null, 1);
    let big = payload(7, 70_000);
    let mid = payload(8, 300);
    for mech in [curve, Mechanism::Null] {
        let c = client(&proxy.ctx, &proxy.frontend, &mech);
        round_trip(&c, &[b"", b"a", &mid, b"", &big, b"z"]);
        let many: Vec<Vec<u8>> = (0..50).map(|i| payload(i, i as usize * 7)).collect();
        let refs: Vec<&[u8]> = many.iter().map(|v| v.as_slice()).collect();
        round_trip(&c, &refs);
    }
}

/// A SUB client connected through the proxy to a PUB worker receives the topic it
/// subscribed to, and only that: its subscription reached the PUB in a form the PUB
/// understood, which needs both to speak the same ZMTP version.
#[test]
fn pub_worker_serves_a_subscribed_topic_to_a_sub_client() {
    let proxy = Proxy::start();
    let publisher = proxy.ctx.socket(zmq::PUB).unwrap();
    publisher.set_linger(0).unwrap();
    publisher.connect(&proxy.backend).unwrap();
    wait_quiet(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let pub_thread = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            for topic in [&b"topic-b"[..], b"topic-a", b"topic-c"] {
                let body = n.to_be_bytes();
                publisher.send_multipart([topic, &body[..]], 0).unwrap();
            }
            n += 1;
            // The publishing rate, not a wait for a condition.
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let sub = proxy.ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    sub.set_subscribe(b"topic-a").unwrap();
    sub.connect(&proxy.frontend).unwrap();
    let mut last = None;
    for _ in 0..20 {
        let msg = recv_within(&sub, DEADLINE).expect("a message on the subscribed topic");
        assert_eq!(msg.len(), 2, "multipart publication kept whole: {msg:?}");
        assert_eq!(msg[0], b"topic-a", "only the subscribed topic arrives");
        let n = u64::from_be_bytes(msg[1].as_slice().try_into().unwrap());
        assert!(last.is_none_or(|l| n > l), "publications in order");
        last = Some(n);
    }
    stop.store(true, Ordering::Relaxed);
    pub_thread.join().unwrap();
}

/// An XPUB worker sees the SUB client's subscribe and unsubscribe exactly as ZMTP 3.0
/// encodes them (a message 0x01/0x00 + topic), since both ends were told 3.0.
#[test]
fn xpub_worker_sees_subscriptions_from_a_sub_client() {
    let proxy = Proxy::start();
    let xpub = proxy.ctx.socket(zmq::XPUB).unwrap();
    xpub.set_linger(0).unwrap();
    xpub.connect(&proxy.backend).unwrap();
    wait_quiet(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL, 1);
    let sub = proxy.ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    sub.set_subscribe(b"news").unwrap();
    sub.connect(&proxy.frontend).unwrap();
    let m = recv_within(&xpub, DEADLINE).expect("subscription reaches the worker");
    assert_eq!(m, vec![b"\x01news".to_vec()]);
    xpub.send_multipart([&b"news"[..], b"today"], 0).unwrap();
    xpub.send_multipart([&b"sport"[..], b"today"], 0).unwrap();
    xpub.send_multipart([&b"news"[..], b"tomorrow"], 0).unwrap();
    assert_eq!(
        recv_within(&sub, DEADLINE).expect("news"),
        vec![b"news".to_vec(), b"today".to_vec()]
    );
    assert_eq!(
        recv_within(&sub, DEADLINE).expect("news"),
        vec![b"news".to_vec(), b"tomorrow".to_vec()]
    );
    sub.set_unsubscribe(b"news").unwrap();
    let m = recv_within(&xpub, DEADLINE).expect("unsubscription reaches the worker");
    assert_eq!(m, vec![b"\x00news".to_vec()]);
}

/// Reads one ZMTP frame (flags, size, body) from a raw peer.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let head = read_exact_within(s, 2, DEADLINE);
    let size = if head[0] & 0x02 != 0 {
        let rest = read_exact_within(s, 7, DEADLINE);
        let mut be = [0u8; 8];
        be[0] = head[1];
        be[1..].copy_from_slice(&rest);
        u64::from_be_bytes(be) as usize
    } else {
        head[1] as usize
    };
    (head[0], read_exact_within(s, size, DEADLINE))
}

/// A libzmq SUB client encodes its subscription the way the version the proxy told it
/// requires, and that is the version the worker was told: a worker that announced 3.0 (and
/// was told 3.0) gets the subscription as a 3.0 message (0x01 + topic), not as a 3.1
/// SUBSCRIBE command it would not understand.
#[test]
fn sub_client_subscribes_in_the_encoding_the_worker_was_told() {
    let proxy = Proxy::start();
    let mut w = connect_and_send(&proxy.backend, &greeting_with(3, 0, b"NULL", 0));
    read_exact_within(&mut w, 11, DEADLINE);
    wait_quiet(&proxy, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL, 1);
    let sub = proxy.ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    sub.set_subscribe(b"topic-a").unwrap();
    sub.connect(&proxy.frontend).unwrap();
    let rest = read_exact_within(&mut w, 53, DEADLINE);
    let minor_told_to_worker = rest[0];
    assert_eq!(
        minor_told_to_worker, 0,
        "a 3.0 worker must not be told more than 3.0"
    );
    let (flags, ready) = read_frame(&mut w);
    assert_eq!(flags & 0x04, 0x04, "the client's READY is a command");
    assert_eq!(&ready[..6], b"\x05READY");
    w.write_all(&null_ready("PUB")).unwrap();
    let (flags, body) = read_frame(&mut w);
    assert_eq!(
        (flags, body.as_slice()),
        (0x00, &b"\x01topic-a"[..]),
        "ZMTP 3.0 subscription: a message 0x01 + topic (flags {flags:#x}, body {body:?})"
    );
    // And a publication the worker sends in 3.0 framing reaches the subscriber.
    let mut msg = vec![0x00, 7];
    msg.extend_from_slice(b"topic-a");
    w.write_all(&msg).unwrap();
    assert_eq!(
        recv_within(&sub, DEADLINE).expect("publication"),
        vec![b"topic-a".to_vec()]
    );
}
