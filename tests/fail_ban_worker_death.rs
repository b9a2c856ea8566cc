//! FAIL_BAN and a worker process that dies (SIGKILL) while CURVE handshakes of clients from
//! one address (127.0.0.1) are in flight on its connections: the kernel closes all of its
//! connections at once, and the proxy must not count the cut handshakes as the clients'
//! failures. The worker is a real process (examples-c/worker.c, compiled with the system
//! cc); it is stopped (SIGSTOP) so that the clients' HELLOs wait on it unanswered, then
//! killed. The next client from that address must be served by another worker.
mod common;
mod programs;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use programs::{KeyPair, Proc, STARTUP};
use zmq_proxy_stream::api::*;

/// Worker connections of the doomed worker, and how many of them get a client.
const CONNECTIONS: u32 = 4;
const IN_FLIGHT: usize = 2;

#[test]
fn a_worker_killed_mid_handshake_gets_no_client_banned() {
    let dir = programs::scratch_dir("fail_ban_worker_death");
    let peers = programs::build_peers(&dir);
    let server = Arc::new(Keys::new().server);
    let keys = KeyPair {
        public: zmq::z85_encode(&server.public_key).unwrap(),
        secret: zmq::z85_encode(&server.secret_key).unwrap(),
    };
    let mech = Mechanism::Curve(server.clone());
    // The defaults: FAIL_BAN 2, FAIL_BAN_TIME 30 s.
    let proxy = Proxy::start();
    let ctx = zmq::Context::new();

    let mut doomed: Proc = peers.worker(&keys, &proxy.backend, "doomed", CONNECTIONS);
    wait_until("the doomed worker's connections idle", STARTUP, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == CONNECTIONS as u64
    });
    // Stopped, its connections stay open but it answers no HELLO: the handshakes of the
    // clients paired with it are in flight until it dies.
    doomed.signal(libc::SIGSTOP);
    let clients: Vec<zmq::Socket> = (0..IN_FLIGHT)
        .map(|_| client(&ctx, &proxy.frontend, &mech))
        .collect();
    for c in &clients {
        c.send("request", zmq::DONTWAIT).unwrap();
    }
    wait_until(
        "the clients paired with the stopped worker",
        DEADLINE,
        || proxy.stat(ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN) == IN_FLIGHT as u64,
    );
    assert_eq!(
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE),
        (CONNECTIONS as usize - IN_FLIGHT) as u64,
        "idle connections remain with the doomed worker"
    );

    doomed.signal(libc::SIGKILL);
    doomed.wait_exit(STARTUP);
    wait_until("the cut pairs ended", DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_LOST) >= IN_FLIGHT as u64
            && proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == 0
    });
    // Past the window in which the proxy tells a death from refusals, with a wide margin:
    // nothing of the proxy is to change during it, so this waits on no condition.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        proxy.stat(ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED),
        0,
        "a worker's death is no failed handshake"
    );

    // Another worker; a new client from the same address is served, not banned.
    // Room for the newcomer and the cut clients, which reconnect meanwhile.
    let healthy = Worker::start(&ctx, &proxy.backend, mech.clone(), 1 + IN_FLIGHT);
    let newcomer = client(&ctx, &proxy.frontend, &mech);
    round_trip(&newcomer, &[b"after the death"]);
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_REJECT_BANNED), 0);
    // The cut clients' libzmq reconnects too; their queued requests get answered.
    for c in &clients {
        assert_eq!(
            recv_within(c, DEADLINE),
            Some(vec![b"request".to_vec()]),
            "a cut client is served after reconnecting"
        );
    }
    assert!(
        healthy.sessions_served() > IN_FLIGHT,
        "the newcomer and the cut clients each had a session"
    );
    assert_eq!(proxy.stat(ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED), 0);
}
