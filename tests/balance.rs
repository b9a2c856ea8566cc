//! Dial-in: how clients are spread over workers. Real libzmq CURVE workers and clients; each
//! worker counts the sessions it served (the distinct routing ids its ROUTER saw: one per
//! connection, and a connection carries one session).
mod common;
use common::*;

use zmq_proxy_stream::api::{
    ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE,
};

/// A CURVE echo worker whose `connections` connections to the proxy's backend come from
/// source address `source` (libzmq's `tcp://SRC:0;HOST:PORT`).
fn worker_from(
    ctx: &zmq::Context,
    proxy: &Proxy,
    mech: &Mechanism,
    source: &str,
    connections: usize,
) -> Worker {
    let port = proxy.backend.rsplit(':').next().unwrap();
    let backend = format!("tcp://{source}:0;127.0.0.1:{port}");
    Worker::start(ctx, &backend, mech.clone(), connections)
}

/// Waits until the proxy holds `n` idle CURVE worker connections.
fn wait_idle(proxy: &Proxy, n: u64) {
    wait_until(&format!("{n} idle worker connections"), DEADLINE, || {
        proxy.stat(ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE) == n
    });
}

/// Worker A connects `per_worker` times from `sources[0]` and all its connections are idle
/// before worker B's from `sources[1]` arrive (what made the oldest-first pool give A every
/// client). Then `clients` CURVE clients connect at once, each holding its session open
/// until all are paired and answered. Returns the sessions each worker served, and the
/// worker address of each OPEN event (what the proxy saw).
fn spread(sources: [&str; 2], per_worker: usize, clients: usize) -> ([usize; 2], Vec<String>) {
    let proxy = Proxy::start_config(ProxyConfig::new().events(EventsKind::Pair));
    let mech = curve();
    let ctx = zmq::Context::new();
    let a = worker_from(&ctx, &proxy, &mech, sources[0], per_worker);
    wait_idle(&proxy, per_worker as u64);
    let b = worker_from(&ctx, &proxy, &mech, sources[1], per_worker);
    wait_idle(&proxy, 2 * per_worker as u64);

    let sockets: Vec<zmq::Socket> = (0..clients)
        .map(|_| client(&ctx, &proxy.frontend, &mech))
        .collect();
    for (i, s) in sockets.iter().enumerate() {
        s.send(format!("client {i}").as_bytes(), 0).unwrap();
    }
    for (i, s) in sockets.iter().enumerate() {
        let reply = recv_within(s, DEADLINE).expect("every client is paired and answered");
        assert_eq!(reply, vec![format!("client {i}").into_bytes()]);
    }
    assert_eq!(
        proxy.stat(ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN),
        clients as u64,
        "every session still open"
    );
    let hosts = (0..clients)
        .map(
            |_| match proxy.wait_event("OPEN", DEADLINE, ProxyEvent::is_open) {
                ProxyEvent::Open { worker, .. } => worker.rsplit_once(':').unwrap().0.to_owned(),
                _ => unreachable!(),
            },
        )
        .collect();
    ([a.sessions_served(), b.sessions_served()], hosts)
}

/// Two workers on their own addresses (127.0.0.2 and 127.0.0.3), 8 connections each, A's
/// all older than B's; 8 clients at once: each pairing goes to the address serving fewer
/// pairs, so exactly 4 and 4 (the oldest-first pool gave 8 and 0).
#[test]
fn workers_on_distinct_addresses_share_clients_evenly() {
    let (served, hosts) = spread(["127.0.0.2", "127.0.0.3"], 8, 8);
    assert_eq!(served, [4, 4], "sessions served by worker A and B");
    let from = |ip: &str| hosts.iter().filter(|h| *h == ip).count();
    assert_eq!(
        (from("127.0.0.2"), from("127.0.0.3")),
        (4, 4),
        "the proxy saw the workers' source addresses: {hosts:?}"
    );
}

/// Two workers on one address cannot be told apart: each client gets a random idle
/// connection, not the oldest (which were all A's). In a round, all 4 clients go to A with
/// probability 1/70 (C(4,4)/C(8,4)); over 5 rounds, with fresh seeds, B serving nothing
/// (or A nothing) has probability 70^-5 < 10^-9, while the oldest-first pool gives A all 20.
#[test]
fn workers_on_one_address_both_get_clients() {
    let mut total = [0; 2];
    for _ in 0..5 {
        let (served, _) = spread(["127.0.0.1", "127.0.0.1"], 4, 4);
        assert_eq!(served[0] + served[1], 4, "{served:?}");
        total[0] += served[0];
        total[1] += served[1];
    }
    assert!(
        total[0] > 0 && total[1] > 0,
        "sessions served by A and B over 5 rounds: {total:?}"
    );
}
