//! Backpressure and teardown under load: a stalled pair does not slow the others and is
//! closed when it exceeds its buffer bound, memory stays bounded, slow readers get every byte
//! in order, and a partner that leaves right after a large transfer does not cut its tail
//! (libzmq issue #4763).
//!
//! The tests in this file move tens of MiB and measure process memory, so they run one at a
//! time (SERIAL), which also keeps them gentle on a shared 2-core machine.

mod common;
mod rawnet;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use rawnet::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Bytes the proxy has read from clients but not yet handed to libzmq for workers (valid when
/// all other traffic is at rest and every connection is paired: per pair, the client's
/// greeting and first command in balance the proxy's opening, greeting rest and that first
/// command out to the worker; see handshake_bytes).
fn held_for_workers(s: &[u64; 8]) -> u64 {
    let h = handshake_bytes();
    assert_eq!(
        h.frontend_in, h.backend_out,
        "handshake bytes balance per pair"
    );
    s[1].checked_sub(s[7]).unwrap_or_else(|| {
        panic!("more sent to workers than read from clients (an unpaired worker?): {s:?}")
    })
}

fn wait_thread<T>(what: &str, t: JoinHandle<T>, deadline: Duration) -> T {
    wait_until(what, deadline, || t.is_finished());
    t.join()
        .unwrap_or_else(|_| panic!("{what}: thread panicked"))
}

#[test]
fn a_stalled_pair_does_not_slow_the_others_and_is_closed_past_its_bound() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let proxy = OwnProxy::start_on_libzmq_relay(&ctx, true, |_, _| {});
    let mech = curve();

    // The stalled pair first, so that its raw client is paired with its raw worker; the worker
    // reads the probe byte and then never reads again.
    let worker = tcp_connect_with_rcvbuf(&proxy.backend, 16 * KIB as i32);
    let RawPair {
        worker: mut stalled_worker,
        client: mut flood,
    } = raw_pair_from(worker, tcp_connect(&proxy.frontend));

    // Healthy CURVE pairs next to it.
    let _workers = Worker::start(&ctx, &proxy.backend, mech.clone(), 2);
    let clients: Vec<zmq::Socket> = (0..2)
        .map(|_| client(&ctx, &proxy.frontend, &mech))
        .collect();
    for c in &clients {
        round_trip(c, &[b"warm up"]);
    }
    let rss_before = vm_rss();
    let mut rss_max = rss_before;
    let base = proxy.statistics();
    assert_eq!(held_for_workers(&base), 0, "at rest: {base:?}");

    // Phase A: flood in steps, each fully read by the proxy, until the proxy itself holds
    // bytes for the stalled worker (libzmq's pipe and the kernel buffers toward it are full).
    const STEP: usize = 256 * KIB;
    let mut written = 0u64;
    let held = loop {
        flood.write_all(&pattern(0xF1, written, STEP)).unwrap();
        written += STEP as u64;
        wait_until("the proxy to read the flood step", DEADLINE, || {
            proxy.statistics()[1] - base[1] == written
        });
        rss_max = rss_max.max(vm_rss());
        let held = held_for_workers(&proxy.statistics());
        if held >= MIB as u64 {
            break held;
        }
        assert!(
            written < 64 * MIB as u64,
            "the stalled worker absorbed {written} bytes: no backpressure reached the proxy"
        );
    };

    // While the stall lasts, the other pairs relay normally.
    for round in 0..20u64 {
        for (k, c) in clients.iter().enumerate() {
            round_trip(c, &[&payload(round * 10 + k as u64, 16 * KIB)]);
        }
    }
    let s = proxy.statistics();
    assert!(
        held_for_workers(&s) >= held / 2,
        "the stall lasted through the round trips: held {held}, now {s:?}"
    );
    assert_eq!(
        bytes_arriving_within(&mut flood, Duration::ZERO),
        0,
        "the stalled pair is still open"
    );

    // Phase B: keep flooding. Past the pair's buffer bound the proxy closes the pair: the
    // flooding client's writes fail.
    let flood_thread = std::thread::spawn(move || {
        flood.set_write_timeout(Some(LONG)).unwrap();
        let block = pattern(0xF2, 0, 64 * KIB);
        let mut more = 0usize;
        loop {
            match flood.write(&block) {
                Ok(n) => more += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return (e.kind(), more),
            }
            if more > 1024 * MIB {
                return (ErrorKind::Other, more);
            }
        }
    });
    wait_until("the flooded pair to be closed", LONG, || {
        rss_max = rss_max.max(vm_rss());
        flood_thread.is_finished()
    });
    let (kind, more) = flood_thread.join().unwrap();
    assert!(
        matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "the flooding client must be closed by the proxy, got {kind:?} after {more} more bytes"
    );
    // Its worker is closed too (what it has not read is dropped with it).
    drain_until_closed(&mut stalled_worker, LONG);

    let growth = rss_max.saturating_sub(rss_before);
    eprintln!(
        "stall: phase A wrote {written} B, proxy held {held} B; phase B {more} more B until \
         {kind:?}; RSS growth {} KiB",
        growth / 1024
    );
    assert!(
        growth < 200 * MIB as u64,
        "memory grew by {} MiB under one stalled pair",
        growth / MIB as u64
    );

    // The proxy still serves the others.
    for (k, c) in clients.iter().enumerate() {
        round_trip(c, &[&payload(1000 + k as u64, 16 * KIB)]);
    }
    let c = client(&ctx, &proxy.frontend, &mech);
    drop(clients); // frees a worker connection for the newcomer after it reconnects
    round_trip(&c, &[b"new session after the stall"]);
}

/// A raw worker that starts reading only when told, then reads slowly but steadily, checking
/// every byte against the pattern.
fn slow_reader(
    mut s: TcpStream,
    seed: u64,
    total: u64,
    go: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while !go.load(Ordering::Acquire) {
            assert!(Instant::now() < end, "never told to read");
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut buf = vec![0u8; 16 * KIB];
        let mut got = 0u64;
        s.set_read_timeout(Some(LONG)).unwrap();
        while got < total {
            let want = buf.len().min((total - got) as usize);
            let n = s.read(&mut buf[..want]).expect("slow reader read");
            assert!(n > 0, "EOF after {got} of {total} bytes");
            check_pattern(seed, got, &buf[..n]);
            got += n as u64;
            received.store(got, Ordering::Release);
            // Slow but steady.
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

#[test]
fn a_slow_worker_receives_a_20_mib_stream_byte_exact_under_backpressure() {
    let _serial = serial();
    // Small pipe and kernel buffer toward workers, set before bind as a caller would: the
    // proxy itself must hold and retry what does not fit.
    let ctx = zmq::Context::new();
    let proxy = OwnProxy::start_on_libzmq_relay(&ctx, true, |_, backend| {
        backend.set_sndhwm(8).unwrap();
        backend.set_sndbuf(64 * KIB as i32).unwrap();
    });
    let worker = tcp_connect_with_rcvbuf(&proxy.backend, 16 * KIB as i32);
    let RawPair { worker, client } = raw_pair_from(worker, tcp_connect(&proxy.frontend));

    const TOTAL: u64 = 20 * MIB as u64;
    // The client never has more than this in flight: well under the pair's buffer bound,
    // well over what the pipe and kernel buffers hold.
    const WINDOW: u64 = (3 * MIB / 2) as u64;
    let go = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let reader = slow_reader(worker, 0x20, TOTAL, go.clone(), received.clone());
    let rcv = received.clone();
    let writer = std::thread::spawn(move || {
        let mut client = client;
        let mut sent = 0u64;
        let block = 64 * KIB;
        while sent < TOTAL {
            let end = Instant::now() + LONG;
            while sent - rcv.load(Ordering::Acquire) + block as u64 > WINDOW {
                assert!(Instant::now() < end, "the worker stopped making progress");
                std::thread::sleep(Duration::from_millis(1));
            }
            let n = block.min((TOTAL - sent) as usize);
            client.write_all(&pattern(0x20, sent, n)).unwrap();
            sent += n as u64;
        }
        client
    });

    // Before the worker reads at all, the backlog is inside the proxy (not only in libzmq or
    // kernel buffers): the proxy's own queue and retries are what is being tested.
    wait_until(
        "the proxy to hold a backlog for the worker",
        DEADLINE,
        || held_for_workers(&proxy.statistics()) >= 512 * KIB as u64,
    );
    go.store(true, Ordering::Release);
    wait_thread(
        "the slow reader to get all 20 MiB",
        reader,
        Duration::from_secs(60),
    );
    let _client = wait_thread("the writer", writer, LONG);
    let s = proxy.statistics();
    let setup = raw_pair_bytes();
    assert_eq!(
        (s[1], s[7]),
        (setup.frontend_in + TOTAL, setup.backend_out + TOTAL),
        "{s:?}"
    );
}

#[test]
fn curve_messages_under_backpressure_arrive_intact_and_in_order() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let proxy = OwnProxy::start_with(&ctx, true, |_, backend| {
        backend.set_sndhwm(8).unwrap();
        backend.set_sndbuf(64 * KIB as i32).unwrap();
    });
    let server = Arc::new(Keys::new().server);
    let mech = Mechanism::Curve(server.clone());

    // A slow CURVE worker with small buffers, that starts reading only when told.
    let go = Arc::new(AtomicBool::new(false));
    let worker_socket = ctx.socket(zmq::ROUTER).unwrap();
    worker_socket.set_linger(0).unwrap();
    worker_socket.set_rcvhwm(4).unwrap();
    worker_socket.set_rcvbuf(16 * KIB as i32).unwrap();
    worker_socket.set_curve_server(true).unwrap();
    worker_socket
        .set_curve_secretkey(&server.secret_key)
        .unwrap();
    worker_socket.connect(&proxy.backend).unwrap();
    const N: u64 = 600;
    const SIZE: usize = 8 * KIB;
    let go2 = go.clone();
    let worker = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while !go2.load(Ordering::Acquire) {
            assert!(Instant::now() < end, "never told to read");
            std::thread::sleep(Duration::from_millis(2));
        }
        for _ in 0..N {
            assert!(
                worker_socket
                    .poll(zmq::POLLIN, LONG.as_millis() as i64)
                    .unwrap()
                    > 0,
                "worker starved"
            );
            let frames = worker_socket.recv_multipart(0).unwrap();
            worker_socket.send_multipart(frames, 0).unwrap();
            std::thread::sleep(Duration::from_micros(500));
        }
        worker_socket
    });

    let c = client(&ctx, &proxy.frontend, &mech);
    const WINDOW: u64 = 64; // 512 KiB of requests in flight at most
    let message = |n: u64| {
        let mut m = n.to_be_bytes().to_vec();
        m.extend_from_slice(&payload(n, SIZE - 8));
        m
    };
    let mut sent = 0u64;
    while sent < WINDOW {
        c.send(message(sent), 0).unwrap();
        sent += 1;
    }
    // Until the first client bytes are read, the worker's greeting opening is ahead of
    // them (held_for_workers would say "more sent than read"): not yet. A taken-over pair
    // holds at most its relay buffer (128 KiB), libzmq's relay more: 64 KiB proves a backlog
    // on both paths.
    wait_until(
        "the proxy to hold a backlog for the worker",
        DEADLINE,
        || {
            let s = proxy.statistics();
            s[1] >= s[7] && held_for_workers(&s) >= 64 * KIB as u64
        },
    );
    go.store(true, Ordering::Release);
    let mut got = 0u64;
    while got < N {
        let reply = recv_within(&c, LONG).expect("reply within the deadline");
        assert_eq!(reply.len(), 1);
        assert_eq!(
            reply[0],
            message(got),
            "reply {got} out of order or corrupt"
        );
        got += 1;
        if sent < N {
            c.send(message(sent), 0).unwrap();
            sent += 1;
        }
    }
    let _worker_socket = wait_thread("the worker", worker, LONG);
    let s = proxy.statistics();
    assert_eq!(held_for_workers(&s), 0, "{s:?}");
}

/// libzmq #4763: the partner leaves right after sending a large transfer, while the reader's
/// kernel buffers are full. The reader must still get every byte, then EOF.
fn close_after_flush(reply_to_client: bool) {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let proxy = OwnProxy::start(&ctx, true);
    const TOTAL: usize = 8 * MIB;
    let (sender, mut reader) = if reply_to_client {
        let w = tcp_connect(&proxy.backend);
        let c = tcp_connect_with_rcvbuf(&proxy.frontend, 4 * KIB as i32);
        let p = raw_pair_from(w, c);
        (p.worker, p.client)
    } else {
        let w = tcp_connect_with_rcvbuf(&proxy.backend, 4 * KIB as i32);
        let c = tcp_connect(&proxy.frontend);
        let p = raw_pair_from(w, c);
        (p.client, p.worker)
    };
    // Counter of the sender's side, bytes in, and what raw_pair put there (handshake, probe).
    let setup = raw_pair_bytes();
    let (sender_in, sender_setup) = if reply_to_client {
        (5, setup.backend_in)
    } else {
        (1, setup.frontend_in)
    };

    let seed = 0x4763;
    let send_thread = std::thread::spawn(move || {
        let mut sender = sender;
        sender.write_all(&pattern(seed, 0, TOTAL)).unwrap();
        sender.shutdown(std::net::Shutdown::Write).unwrap();
        // Keep the socket until the proxy closes its side (so nothing here resets it).
        drain_until_closed(&mut sender, LONG)
    });

    // Slow at first: until the sender is gone and the proxy has read all it sent, and a while
    // longer, so that the proxy's close of the reader meets full buffers.
    let mut got = Vec::with_capacity(TOTAL);
    let mut buf = vec![0u8; 64 * KIB];
    let mut slow_read = |reader: &mut TcpStream, got: &mut Vec<u8>| {
        reader
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        match reader.read(&mut buf[..4 * KIB]) {
            Ok(0) => panic!("EOF after {} of {TOTAL} bytes in the slow phase", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let end = Instant::now() + LONG;
    while proxy.statistics()[sender_in] < sender_setup + TOTAL as u64 {
        assert!(Instant::now() < end, "the proxy did not read the transfer");
        slow_read(&mut reader, &mut got);
    }
    let sender_end = wait_thread("the sender to be closed", send_thread, LONG);
    let slow_until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < slow_until {
        slow_read(&mut reader, &mut got);
    }
    let slow = got.len();

    // Then fast, to the end.
    let fast_started = Instant::now();
    let end = Instant::now() + LONG;
    let how = loop {
        assert!(
            Instant::now() < end,
            "not closed: {} of {TOTAL} bytes",
            got.len()
        );
        reader
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        match reader.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => panic!("read: {e}"),
        }
    };
    let fast = fast_started.elapsed();
    eprintln!(
        "close after flush (to client: {reply_to_client}): {slow} B slow, rest in {fast:?}, \
         {how:?}"
    );
    assert_eq!(
        got.len(),
        TOTAL,
        "the reader got {} of {TOTAL} bytes ({slow} in the slow phase, fast phase {fast:?}), \
         then {how:?}; sender saw {sender_end:?}",
        got.len()
    );
    check_pattern(seed, 0, &got);
    assert_eq!(how, End::Eof, "an orderly close after the last byte");
}

/// libzmq #4763's shape: small chunks, a small kernel send buffer toward the reader, and a
/// reader that stays slow to the very end, so the kernel buffer is full whenever libzmq writes,
/// its last batch included. The reader must still get every byte, then an orderly EOF.
/// (Plain libzmq loses ~2 KiB in this shape when the close is requested right after the
/// data; through the proxy the cut did not show even with its drain check disabled, so this
/// guards the outcome, not that particular mechanism.)
#[test]
fn a_reader_slow_to_the_very_end_still_gets_the_tail() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    // A small kernel send buffer toward the client (a caller's option, set before bind), as
    // in the #4763 reproduction: libzmq then holds its last batch while the kernel is full.
    let proxy = OwnProxy::start_with(&ctx, true, |frontend, _| {
        frontend.set_sndbuf(4 * KIB as i32).unwrap();
    });
    const TOTAL: usize = 256 * KIB;
    let worker = tcp_connect(&proxy.backend);
    let client = tcp_connect_with_rcvbuf(&proxy.frontend, 4 * KIB as i32);
    let RawPair { worker, mut client } = raw_pair_from(worker, client);
    let sender = std::thread::spawn(move || {
        let mut worker = worker;
        // Small, spaced writes make small chunks: libzmq copies several into one 8 KiB batch,
        // the batch #4763 drops (whole 8 KiB chunks go out zero-copy and are not cut).
        let data = pattern(0x4764, 0, TOTAL);
        for piece in data.chunks(1000) {
            worker.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        worker.shutdown(std::net::Shutdown::Write).unwrap();
        drain_until_closed(&mut worker, LONG)
    });
    let mut got = Vec::with_capacity(TOTAL);
    let mut buf = vec![0u8; 64 * KIB];
    let end = Instant::now() + LONG;
    client.set_read_timeout(Some(LONG)).unwrap();
    // Slow (small reads, pauses) to the very end, about 1.6 MB/s: the kernel buffer toward
    // the reader is full whenever libzmq writes, the last batch included.
    let how = loop {
        assert!(Instant::now() < end, "reader not done: {} bytes", got.len());
        match client.read(&mut buf[..8 * KIB]) {
            Ok(0) => break End::Eof,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => panic!("read: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let sender_end = wait_thread("the worker", sender, LONG);
    assert_eq!(
        got.len(),
        TOTAL,
        "got {} of {TOTAL} bytes, then {how:?} (worker: {sender_end:?})",
        got.len()
    );
    check_pattern(0x4764, 0, &got);
    assert_eq!(how, End::Eof);
}

#[test]
fn a_worker_leaving_right_after_a_large_reply_does_not_cut_its_tail() {
    close_after_flush(true);
}

#[test]
fn a_client_leaving_right_after_a_large_request_does_not_cut_its_tail() {
    close_after_flush(false);
}

#[test]
fn a_stalled_pair_does_not_make_the_proxy_spin() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let mut proxy = OwnProxy::start_on_libzmq_relay(&ctx, true, |_, _| {});
    let worker = tcp_connect_with_rcvbuf(&proxy.backend, 16 * KIB as i32);
    let RawPair {
        worker: _stalled_worker,
        mut client,
    } = raw_pair_from(worker, tcp_connect(&proxy.frontend));
    let mut written = 0u64;
    loop {
        client.write_all(&pattern(7, written, 256 * KIB)).unwrap();
        written += 256 * KIB as u64;
        wait_until("the proxy to read the step", LONG, || {
            proxy.statistics()[1] == raw_pair_bytes().frontend_in + written
        });
        if held_for_workers(&proxy.statistics()) >= 256 * KIB as u64 {
            break;
        }
        assert!(
            written < 64 * MIB as u64,
            "no backpressure reached the proxy"
        );
    }
    // The proxy now retries sends to the stalled worker on a timer: that must not be a spin.
    let before = proxy.cpu_time();
    std::thread::sleep(Duration::from_secs(1)); // the measurement window
    let cpu = proxy.cpu_time() - before;
    eprintln!("stalled pair: proxy CPU {cpu:?} in 1 s");
    assert!(
        cpu < Duration::from_millis(100),
        "stalled pair: {cpu:?} of CPU in 1 s"
    );
    assert!(
        held_for_workers(&proxy.statistics()) >= 128 * KIB as u64,
        "the stall ended during the window: the proxy had nothing to retry"
    );
    assert_eq!(proxy.terminate().rc, 0);
}

/// The worker sends `total` bytes and leaves; the client (small receive buffer) reads at a
/// slow but steady pace, far from stuck, to EOF. Returns what it got and how it ended.
fn slow_reader_after_worker_left(proxy: &OwnProxy, total: usize) -> (Vec<u8>, End) {
    let worker = tcp_connect(&proxy.backend);
    let client = tcp_connect_with_rcvbuf(&proxy.frontend, 4 * KIB as i32);
    let RawPair { worker, mut client } = raw_pair_from(worker, client);
    let sender = std::thread::spawn(move || {
        let mut worker = worker;
        worker.write_all(&pattern(0xB1, 0, total)).unwrap();
        worker.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = drain_until_closed(&mut worker, LONG);
    });
    let mut got = Vec::with_capacity(total);
    let mut buf = vec![0u8; 64 * KIB];
    let end = Instant::now() + Duration::from_secs(60);
    client.set_read_timeout(Some(LONG)).unwrap();
    let how = loop {
        assert!(Instant::now() < end, "reader not done: {} bytes", got.len());
        match client.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => panic!("read: {e}"),
        }
        // About 2 MB/s with this receive buffer: slow, but always making progress.
        std::thread::sleep(Duration::from_millis(2));
    };
    wait_thread("the worker", sender, LONG);
    (got, how)
}

/// A partner still reading when the other side left gets everything, however long it takes:
/// the close linger restarts whenever the connection moves (it used to be counted from the
/// moment the other side left, and cut a slow reader off with a clean EOF).
#[test]
fn a_slow_but_steady_reader_gets_the_whole_reply_after_its_worker_left() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let proxy = OwnProxy::start(&ctx, true);
    const TOTAL: usize = 8 * MIB;
    let (got, how) = slow_reader_after_worker_left(&proxy, TOTAL);
    check_pattern(0xB1, 0, &got);
    assert_eq!(
        got.len(),
        TOTAL,
        "the reader got {} of {TOTAL} bytes, then {how:?}",
        got.len()
    );
    assert_eq!(how, End::Eof);
}

/// With the caller's sockets at the default ZMQ_LINGER (-1), zmq_ctx_term returns after a
/// slow reader was served to the end (no forced close happens to a reader making progress).
/// libzmq alone can still hang here when a peer stops reading for good with data pending,
/// which is why the header asks for a finite linger.
#[test]
fn the_context_terminates_after_a_forced_close_with_default_linger() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let mut proxy = OwnProxy::start_with(&ctx, true, |f, b| {
        // The caller's defaults (OwnProxy sets 0; a C program usually leaves -1).
        f.set_linger(-1).unwrap();
        b.set_linger(-1).unwrap();
    });
    let (got, how) = slow_reader_after_worker_left(&proxy, 8 * MIB);
    eprintln!("reader got {} bytes, then {how:?}", got.len());
    let exit = proxy.terminate();
    assert_eq!(exit.rc, 0);
    drop(exit);
    drop(proxy);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(ctx); // the last handle: zmq_ctx_term
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(LONG).is_ok(),
        "zmq_ctx_term did not return: a libzmq session is stuck with undeliverable data"
    );
}
