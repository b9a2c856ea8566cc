//! The smallest dial-out run, without the shared harness: one bound ROUTER CURVE worker,
//! one CURVE client, one round trip through a proxy that dials the worker.
use std::ffi::c_void;
use std::time::{Duration, Instant};
use zmq_proxy_stream::api::*;

struct SendPtr(*mut c_void);
// SAFETY: moved once into the proxy thread, its only user afterwards.
unsafe impl Send for SendPtr {}

#[test]
fn a_curve_client_is_served_by_a_bound_worker_the_proxy_dials() {
    let ctx = zmq::Context::new();
    let server = zmq::CurveKeyPair::new().unwrap();
    let worker = ctx.socket(zmq::ROUTER).unwrap();
    worker.set_linger(0).unwrap();
    worker.set_curve_server(true).unwrap();
    worker.set_curve_secretkey(&server.secret_key).unwrap();
    worker.bind("tcp://127.0.0.1:0").unwrap();
    let worker_ep = worker.get_last_endpoint().unwrap().unwrap();

    let frontend = ctx.socket(zmq::STREAM).unwrap();
    frontend.set_linger(0).unwrap();
    frontend.bind("tcp://127.0.0.1:0").unwrap();
    let fe = frontend.get_last_endpoint().unwrap().unwrap();
    let backend = ctx.socket(zmq::STREAM).unwrap();
    backend.set_linger(0).unwrap();
    let control_ep = format!("inproc://dial-smoke-{}", std::process::id());
    let proxy_control = ctx.socket(zmq::PAIR).unwrap();
    proxy_control.bind(&control_ep).unwrap();
    let control = ctx.socket(zmq::PAIR).unwrap();
    control.connect(&control_ep).unwrap();

    let (f, b, c) = (
        SendPtr(frontend.into_raw()),
        SendPtr(backend.into_raw()),
        SendPtr(proxy_control.into_raw()),
    );
    let ep = worker_ep.clone();
    let proxy = std::thread::spawn(move || {
        let (f, b, c) = (f, b, c);
        // SAFETY: the sockets are live and used by this thread only; the handle is made,
        // used and destroyed here.
        unsafe {
            let mut h = zmq_proxy_stream::ffi::zmq_proxy_stream_new();
            let rc = zmq_proxy_stream::ffi::zmq_proxy_stream_setopt(
                h,
                ZMQ_PROXY_STREAM_WORKER_ENDPOINT,
                ep.as_ptr() as *const c_void,
                ep.len(),
            );
            assert_eq!(rc, 0);
            let rc = zmq_proxy_stream::ffi::zmq_proxy_stream_run(h, f.0, b.0, c.0);
            zmq_proxy_stream::ffi::zmq_proxy_stream_destroy(&mut h);
            drop(zmq::Socket::from_raw(f.0));
            drop(zmq::Socket::from_raw(b.0));
            drop(zmq::Socket::from_raw(c.0));
            rc
        }
    });

    let client = ctx.socket(zmq::DEALER).unwrap();
    client.set_linger(0).unwrap();
    let keys = zmq::CurveKeyPair::new().unwrap();
    client.set_curve_serverkey(&server.public_key).unwrap();
    client.set_curve_publickey(&keys.public_key).unwrap();
    client.set_curve_secretkey(&keys.secret_key).unwrap();
    client.connect(&fe).unwrap();
    client.send("hello", 0).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the worker got the request");
        if worker.poll(zmq::POLLIN, 100).unwrap() > 0 {
            break;
        }
    }
    let frames = worker.recv_multipart(0).unwrap();
    assert_eq!(frames[1], b"hello");
    worker.send_multipart(&frames, 0).unwrap();
    assert!(client.poll(zmq::POLLIN, 20000).unwrap() > 0, "reply");
    assert_eq!(client.recv_bytes(0).unwrap(), b"hello");

    control.send("STREAMSTATS", 0).unwrap();
    let stats = control.recv_bytes(0).unwrap();
    let stat = |i: i32| u64::from_ne_bytes(stats[i as usize * 8..][..8].try_into().unwrap());
    assert_eq!(stat(ZMQ_PROXY_STREAM_STAT_DIALS), 1);
    assert_eq!(stat(ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN), 1);

    // The worker dies: the proxy sees its connection end and closes the client's.
    drop(worker);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        control.send("STREAMSTATS", 0).unwrap();
        let stats = control.recv_bytes(0).unwrap();
        let open = u64::from_ne_bytes(stats[..8].try_into().unwrap());
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pair ends when the worker dies"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    control.send("TERMINATE", 0).unwrap();
    assert_eq!(proxy.join().unwrap(), 0);
}

/// Runs a handle with `options` on fresh STREAM sockets; `bind_backend` binds the backend
/// first. Returns (rc, errno).
fn run_with(options: &[(i32, Vec<u8>)], bind_backend: bool) -> (i32, i32) {
    let ctx = zmq::Context::new();
    let mut f = ctx.socket(zmq::STREAM).unwrap();
    let mut b = ctx.socket(zmq::STREAM).unwrap();
    f.set_linger(0).unwrap();
    b.set_linger(0).unwrap();
    if bind_backend {
        b.bind("tcp://127.0.0.1:0").unwrap();
    }
    // SAFETY: live sockets and a handle made, used and destroyed here; a run that is
    // refused returns at once.
    unsafe {
        let mut h = zmq_proxy_stream::ffi::zmq_proxy_stream_new();
        for (option, value) in options {
            let rc = zmq_proxy_stream::ffi::zmq_proxy_stream_setopt(
                h,
                *option,
                value.as_ptr() as *const c_void,
                value.len(),
            );
            assert_eq!(rc, 0);
        }
        let rc = zmq_proxy_stream::ffi::zmq_proxy_stream_run(
            h,
            f.as_mut_ptr(),
            b.as_mut_ptr(),
            std::ptr::null_mut(),
        );
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap();
        zmq_proxy_stream::ffi::zmq_proxy_stream_destroy(&mut h);
        (rc, errno)
    }
}

#[test]
fn a_dial_out_backend_the_caller_bound_is_einval() {
    let ep = b"tcp://127.0.0.1:1".to_vec();
    assert_eq!(
        run_with(&[(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, ep)], true),
        (-1, libc::EINVAL)
    );
}

#[test]
fn an_events_socket_that_cannot_send_is_einval() {
    let ctx = zmq::Context::new();
    let mut sub = ctx.socket(zmq::SUB).unwrap();
    let ptr = sub.as_mut_ptr() as usize;
    assert_eq!(
        run_with(
            &[(ZMQ_PROXY_STREAM_EVENTS, ptr.to_ne_bytes().to_vec())],
            true
        ),
        (-1, libc::EINVAL)
    );
}
