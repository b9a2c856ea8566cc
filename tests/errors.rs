//! The C surface's errors (-1 and errno, as libzmq does), context termination, the caller's
//! sockets outliving the call, and several proxies in one process.

mod common;
mod rawnet;

use std::ffi::c_void;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use common::raw::closed_within;
use common::*;
use rawnet::*;

/// A socket pointer that may cross to the thread making the call.
#[derive(Clone, Copy)]
struct Ptr(*mut c_void);
// SAFETY: only used by one thread at a time (the caller waits for the call to finish).
unsafe impl Send for Ptr {}

const NULL: Ptr = Ptr(std::ptr::null_mut());

/// Calls zmq_proxy_stream on another thread and expects it to return at once with an error.
/// If it blocks instead (it started proxying), the test fails rather than hangs. The sockets
/// these tests pass are leaked (see `leak`), so a stuck call never sees them closed.
fn call_expecting_error(f: Ptr, b: Ptr, c: Ptr) -> (i32, i32) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (f, b, c) = (f, b, c);
        // SAFETY: the pointers are NULL, live sockets, or readable zeroed memory (see
        // not_a_socket); the caller keeps them alive until we answer.
        let rc = unsafe { zmq_proxy_stream::zmq_proxy_stream(f.0, b.0, c.0) };
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let _ = tx.send((rc, errno));
    });
    match rx.recv_timeout(LONG) {
        Ok(r) => r,
        Err(_) => {
            panic!("zmq_proxy_stream did not return an error: it is running on these sockets")
        }
    }
}

/// Sockets handed to a call that may wrongly keep running are never closed (and their
/// context never terminated): a few leaked sockets per test, instead of a use-after-free.
fn leak(s: zmq::Socket) -> &'static mut zmq::Socket {
    Box::leak(Box::new(s))
}

fn leaked_ctx() -> &'static zmq::Context {
    Box::leak(Box::new(zmq::Context::new()))
}

struct Sockets {
    stream_a: &'static mut zmq::Socket,
    stream_b: &'static mut zmq::Socket,
}

fn streams() -> Sockets {
    let ctx = leaked_ctx();
    let stream_a = leak(ctx.socket(zmq::STREAM).unwrap());
    let stream_b = leak(ctx.socket(zmq::STREAM).unwrap());
    for s in [&*stream_a, &*stream_b] {
        s.set_linger(0).unwrap();
        s.bind("tcp://127.0.0.1:0").unwrap();
    }
    Sockets { stream_a, stream_b }
}

fn ptr(s: &mut zmq::Socket) -> Ptr {
    Ptr(s.as_mut_ptr())
}

/// Checks that a socket the call was given is still open and usable.
fn still_usable(s: &zmq::Socket, kind: zmq::SocketType) {
    assert_eq!(s.get_socket_type().expect("socket still open"), kind);
}

#[test]
fn null_frontend_or_backend_is_efault() {
    let s = streams();
    let a = ptr(s.stream_a);
    let b = ptr(s.stream_b);
    assert_eq!(call_expecting_error(NULL, b, NULL), (-1, libc::EFAULT));
    assert_eq!(call_expecting_error(a, NULL, NULL), (-1, libc::EFAULT));
    assert_eq!(call_expecting_error(NULL, NULL, NULL), (-1, libc::EFAULT));
    still_usable(s.stream_a, zmq::STREAM);
    still_usable(s.stream_b, zmq::STREAM);
}

#[test]
fn non_stream_frontend_or_backend_is_einval() {
    let s = streams();
    let ctx = leaked_ctx();
    let a = ptr(s.stream_a);
    let b = ptr(s.stream_b);
    for kind in [zmq::ROUTER, zmq::DEALER, zmq::PAIR, zmq::PUB, zmq::SUB] {
        let other = leak(ctx.socket(kind).unwrap());
        let o = ptr(other);
        assert_eq!(
            call_expecting_error(o, b, NULL),
            (-1, libc::EINVAL),
            "{kind:?} frontend"
        );
        assert_eq!(
            call_expecting_error(a, o, NULL),
            (-1, libc::EINVAL),
            "{kind:?} backend"
        );
        still_usable(other, kind);
    }
    still_usable(s.stream_a, zmq::STREAM);
    still_usable(s.stream_b, zmq::STREAM);
}

#[test]
fn same_socket_as_frontend_and_backend_is_einval() {
    let s = streams();
    let a = ptr(s.stream_a);
    assert_eq!(call_expecting_error(a, a, NULL), (-1, libc::EINVAL));
    still_usable(s.stream_a, zmq::STREAM);
}

#[test]
fn unsupported_or_aliased_control_is_einval() {
    let s = streams();
    let ctx = leaked_ctx();
    let a = ptr(s.stream_a);
    let b = ptr(s.stream_b);
    // Sockets that cannot receive commands (PUB, PUSH, XPUB) or speak another protocol.
    for kind in [zmq::PUB, zmq::PUSH, zmq::XPUB, zmq::DEALER, zmq::STREAM] {
        let control = leak(ctx.socket(kind).unwrap());
        let c = ptr(control);
        assert_eq!(
            call_expecting_error(a, b, c),
            (-1, libc::EINVAL),
            "{kind:?} control"
        );
        still_usable(control, kind);
    }
    // The control socket must not be one of the data sockets.
    assert_eq!(call_expecting_error(a, b, a), (-1, libc::EINVAL));
    assert_eq!(call_expecting_error(a, b, b), (-1, libc::EINVAL));
    still_usable(s.stream_a, zmq::STREAM);
    still_usable(s.stream_b, zmq::STREAM);
}

#[test]
fn a_pointer_that_is_not_a_socket_is_enotsock() {
    let s = streams();
    let a = ptr(s.stream_a);
    let b = ptr(s.stream_b);
    // Zeroed, readable memory larger than a libzmq socket object: libzmq's tag check reads it
    // and rejects it.
    let fake: &'static mut [u64] = Box::leak(vec![0u64; 16 * 1024].into_boxed_slice());
    let f = Ptr(fake.as_mut_ptr() as *mut c_void);
    assert_eq!(call_expecting_error(f, b, NULL), (-1, libc::ENOTSOCK));
    assert_eq!(call_expecting_error(a, f, NULL), (-1, libc::ENOTSOCK));
    assert_eq!(call_expecting_error(a, b, f), (-1, libc::ENOTSOCK));
    assert!(
        fake.iter().all(|w| *w == 0),
        "the fake socket was written to"
    );
}

/// Terminates `ctx` from another thread (zmq_ctx_term blocks until every socket of the
/// context is closed). The context must not be dropped afterwards: zmq 0.9.2 would call
/// zmq_ctx_term a second time on freed memory, so every handle to it is forgotten.
fn terminate_context_in_thread(
    ctx: &zmq::Context,
) -> std::thread::JoinHandle<Result<(), zmq::Error>> {
    let mut ctx = ctx.clone();
    std::thread::spawn(move || {
        let r = ctx.destroy();
        std::mem::forget(ctx);
        r
    })
}

fn context_termination_case(with_control: bool, paused: bool) {
    let ctx = zmq::Context::new();
    let mut proxy = OwnProxy::start(&ctx, with_control);
    // Real traffic through it first, so the proxy holds connections and pairs.
    let mut pair = raw_pair(&proxy.frontend, &proxy.backend);
    if paused {
        proxy.send_command("PAUSE");
        proxy.statistics();
    }
    let killer = terminate_context_in_thread(&ctx);
    let exit = proxy.join_within(LONG);
    assert_eq!(
        (exit.rc, exit.errno),
        (-1, zmq_sys::errno::ETERM),
        "control: {with_control}, paused: {paused}"
    );
    // The library closed none of the caller's sockets: closing them now succeeds (zmq's
    // Socket::drop panics if zmq_close fails), and only then can the context terminate.
    drop(exit);
    proxy.control.take();
    let r = killer.join().expect("terminating thread");
    assert!(r.is_ok(), "zmq_ctx_term: {r:?}");
    std::mem::forget(ctx);
    // The relayed connections were not closed by the proxy on its way out: that is the
    // caller's business, done here by closing its sockets (libzmq then closes them).
    pair.client.write_all(b"x").ok();
    drain_until_closed(&mut pair.worker, LONG);
}

#[test]
fn context_termination_returns_eterm() {
    context_termination_case(true, false);
}

#[test]
fn context_termination_returns_eterm_without_control_socket() {
    context_termination_case(false, false);
}

#[test]
fn context_termination_returns_eterm_while_paused() {
    context_termination_case(true, true);
}

#[test]
fn the_callers_sockets_stay_open_and_usable_after_terminate() {
    let ctx = zmq::Context::new();
    let mut proxy = OwnProxy::start_on_libzmq_relay(&ctx, true, |_, _| {});
    let mut pair = raw_pair(&proxy.frontend, &proxy.backend);
    let exit = proxy.terminate();
    assert_eq!((exit.rc, exit.errno), (0, 0));

    // The frontend still accepts and serves connections, now for the caller.
    let mut late = tcp_connect(&proxy.frontend);
    late.write_all(b"ping").unwrap();
    let id = loop {
        assert!(
            exit.frontend
                .poll(zmq::POLLIN, LONG.as_millis() as i64)
                .unwrap()
                > 0,
            "frontend delivers after the proxy returned"
        );
        let frames = exit.frontend.recv_multipart(0).unwrap();
        assert_eq!(frames.len(), 2, "STREAM delivers [id][data]");
        if frames[1] == b"ping" {
            break frames[0].clone();
        }
    };
    exit.frontend.send(&id, zmq::SNDMORE).unwrap();
    exit.frontend.send("pong", 0).unwrap();
    assert_eq!(read_exact_within(&mut late, 4, LONG), b"pong");
    exit.frontend.send(&id, zmq::SNDMORE).unwrap();
    exit.frontend.send("", 0).unwrap();
    // libzmq completes a requested close only while the application calls into the socket.
    let frontend = &exit.frontend;
    let closed = drain_until_closed_with(&mut late, LONG, Duration::from_millis(10), || {
        let _ = frontend.poll(zmq::POLLIN, 0);
    });
    assert_eq!(closed, (End::Eof, 0));

    // The connections the proxy relayed are still open: the caller's socket owns them.
    pair.worker.write_all(b"after").unwrap();
    let frames = loop {
        assert!(
            exit.backend
                .poll(zmq::POLLIN, LONG.as_millis() as i64)
                .unwrap()
                > 0
        );
        let frames = exit.backend.recv_multipart(0).unwrap();
        if !frames[1].is_empty() {
            break frames;
        }
    };
    assert_eq!(frames[1], b"after");
    assert_eq!(
        bytes_arriving_within(&mut pair.client, Duration::from_millis(100)),
        0,
        "a returned proxy relays nothing"
    );

    // The control socket too.
    proxy.control.as_ref().unwrap().send("hello", 0).unwrap();
    let control = exit.control.as_ref().unwrap();
    assert!(control.poll(zmq::POLLIN, LONG.as_millis() as i64).unwrap() > 0);
    assert_eq!(control.recv_bytes(0).unwrap(), b"hello");
}

#[test]
fn the_same_sockets_can_run_a_proxy_again_after_terminate() {
    restart_rounds(true);
}

#[test]
fn the_same_sockets_can_run_a_libzmq_relay_proxy_again_after_terminate() {
    restart_rounds(false);
}

/// Start/stop/start on the same caller sockets, as a C program restarting its broker.
fn restart_rounds(takeover: bool) {
    let ctx = zmq::Context::new();
    let mut frontend = ctx.socket(zmq::STREAM).unwrap();
    let mut backend = ctx.socket(zmq::STREAM).unwrap();
    let mut control = ctx.socket(zmq::PAIR).unwrap();
    let ours = ctx.socket(zmq::PAIR).unwrap();
    for s in [&frontend, &backend, &control, &ours] {
        s.set_linger(0).unwrap();
    }
    frontend.bind("tcp://127.0.0.1:0").unwrap();
    backend.bind("tcp://127.0.0.1:0").unwrap();
    let fe = frontend.get_last_endpoint().unwrap().unwrap();
    let be = backend.get_last_endpoint().unwrap().unwrap();
    control.bind("inproc://errors-restart").unwrap();
    ours.connect("inproc://errors-restart").unwrap();
    for round in 0..3u64 {
        let (f, b, c) = (ptr(&mut frontend), ptr(&mut backend), ptr(&mut control));
        let t = std::thread::spawn(move || {
            let (f, b, c) = (f, b, c);
            use zmq_proxy_stream::ffi::*;
            let on = takeover as i32;
            // SAFETY: live sockets, used by this thread only until it returns (joined below);
            // the handle is made, used and destroyed here.
            unsafe {
                let mut h = zmq_proxy_stream_new();
                let opt = zmq_proxy_stream::api::ZMQ_PROXY_STREAM_TAKEOVER;
                assert_eq!(
                    zmq_proxy_stream_setopt(h, opt, (&on as *const i32).cast(), 4),
                    0
                );
                let rc = zmq_proxy_stream_run(h, f.0, b.0, c.0);
                zmq_proxy_stream_destroy(&mut h);
                rc
            }
        });
        let mut pair = raw_pair(&fe, &be);
        pair.client.write_all(&pattern(round, 0, 10_000)).unwrap();
        check_pattern(round, 0, &read_exact_within(&mut pair.worker, 10_000, LONG));
        ours.send("TERMINATE", 0).unwrap();
        assert_eq!(t.join().unwrap(), 0, "round {round}");
        if takeover {
            // TERMINATE closed the taken-over connections: libzmq had let go of them, so
            // no notification of theirs is left for the next run.
            assert!(closed_within(&mut pair.client, LONG));
            assert!(closed_within(&mut pair.worker, LONG));
        } else {
            // Connections of the previous round are closed by the caller, as it would.
            drop(pair);
            // Take the old connections' disconnect notifications, so that the next run does
            // not see them (a proxy cannot tell an unknown id's disconnect from a connect).
            wait_for_disconnect(&frontend);
            wait_for_disconnect(&backend);
        }
    }
}

fn wait_for_disconnect(s: &zmq::Socket) {
    loop {
        assert!(
            s.poll(zmq::POLLIN, LONG.as_millis() as i64).unwrap() > 0,
            "disconnect notification within the deadline"
        );
        let frames = s.recv_multipart(0).unwrap();
        if frames.len() == 2 && frames[1].is_empty() {
            return;
        }
    }
}

#[test]
fn several_proxies_run_at_once_on_their_own_threads() {
    const N: usize = 4;
    // Two on their own contexts (the shared harness), two sharing one context.
    let shared = zmq::Context::new();
    let own: Vec<Proxy> = (0..2).map(|_| proxy_linger0(ControlType::Pair)).collect();
    let on_shared: Vec<OwnProxy> = (0..2).map(|_| OwnProxy::start(&shared, true)).collect();
    let ends: Vec<(String, String)> = own
        .iter()
        .map(|p| (p.frontend.clone(), p.backend.clone()))
        .chain(
            on_shared
                .iter()
                .map(|p| (p.frontend.clone(), p.backend.clone())),
        )
        .collect();
    assert_eq!(ends.len(), N);

    // Each proxy relays its own raw stream; the exact counters show nothing leaked across.
    let mut pairs: Vec<RawPair> = ends.iter().map(|(f, b)| raw_pair(f, b)).collect();
    for (i, p) in pairs.iter_mut().enumerate() {
        p.client
            .write_all(&pattern(100 + i as u64, 0, (i + 1) * 10_000))
            .unwrap();
    }
    for (i, p) in pairs.iter_mut().enumerate() {
        let n = (i + 1) * 10_000;
        check_pattern(
            100 + i as u64,
            0,
            &read_exact_within(&mut p.worker, n, LONG),
        );
    }
    let stats: Vec<[u64; 8]> = own
        .iter()
        .map(|p| p.statistics())
        .chain(on_shared.iter().map(|p| p.statistics()))
        .collect();
    let setup = raw_pair_bytes();
    for (i, s) in stats.iter().enumerate() {
        let n = (i as u64 + 1) * 10_000;
        assert_eq!(
            (s[1], s[7]),
            (setup.frontend_in + n, setup.backend_out + n),
            "proxy {i}: {s:?}"
        );
        assert_eq!(
            (s[3], s[5]),
            (setup.frontend_out, setup.backend_in),
            "proxy {i}: {s:?}"
        );
    }

    // CURVE sessions through all of them at the same time.
    let mech = curve();
    let worker_ctx = zmq::Context::new();
    let _workers: Vec<Worker> = ends
        .iter()
        .map(|(_, b)| Worker::start(&worker_ctx, b, mech.clone(), 2))
        .collect();
    let threads: Vec<_> = ends
        .iter()
        .enumerate()
        .flat_map(|(i, (f, _))| (0..2).map(move |k| (i, k, f.clone())))
        .map(|(i, k, f)| {
            let (mech, ctx) = (mech.clone(), worker_ctx.clone());
            std::thread::spawn(move || {
                let c = client(&ctx, &f, &mech);
                for n in 0..20u64 {
                    round_trip(&c, &[&payload(i as u64 * 1000 + k * 100 + n, 3000)]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("CURVE client through one of the proxies");
    }

    for p in own {
        assert_eq!(p.terminate().0, 0);
    }
    for mut p in on_shared {
        assert_eq!(p.terminate().rc, 0);
    }
}
