//! Many CURVE clients and workers at once, with clients coming and going while others run.
mod common;
use common::*;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use zmq_proxy_stream::api::{
    ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING, ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW,
    ZMQ_PROXY_STREAM_STAT_DROPPED_BYTES, ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN,
    ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL, ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE,
};

const WORKERS: usize = 5;
const CONNECTIONS_PER_WORKER: usize = 10;
const SLOTS: usize = WORKERS * CONNECTIONS_PER_WORKER;
/// Client threads ("waves"); each runs its clients concurrently, a few at a time.
const THREADS: usize = 5;
/// Clients that do all their requests, spread over the threads.
const CLIENTS: usize = 50;
const REQUESTS: usize = 20;
/// Extra clients per thread that leave after LEAVE_AFTER requests, while the others run.
const LEAVERS_PER_THREAD: usize = 2;
const LEAVE_AFTER: usize = 10;
/// Sessions a thread keeps open at once; when one ends the next one of the thread starts.
const ACTIVE_PER_THREAD: usize = 6;
/// A ZMTP 3.x greeting: 10-byte signature, version, mechanism, as-server, filler.
const GREETING: u64 = 64;

/// A harness client whose sends give up after the deadline instead of blocking forever (a
/// DEALER whose session libzmq ended for good has no pipe, and a blocking send would hang).
fn bounded_client(ctx: &zmq::Context, frontend: &str, mech: &Mechanism) -> zmq::Socket {
    let socket = client(ctx, frontend, mech);
    socket.set_sndtimeo(DEADLINE.as_millis() as i32).unwrap();
    socket
}

/// Request `r` of client `id`: a header naming both, then bytes unique to them.
fn request(id: usize, r: usize) -> Vec<Vec<u8>> {
    let len = 1 + (id * 37 + r * 101) % 6000;
    vec![
        format!("client {id:03} request {r:02}").into_bytes(),
        payload((id * 1000 + r) as u64, len),
    ]
}

fn describe(frames: &[Vec<u8>]) -> String {
    frames
        .iter()
        .map(|f| match std::str::from_utf8(f) {
            Ok(s) if s.len() < 40 => format!("{s:?}"),
            _ => format!("<{} bytes>", f.len()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

struct Session {
    id: usize,
    socket: zmq::Socket,
    done: usize,
    quota: usize,
}

/// One thread's clients: up to ACTIVE_PER_THREAD sessions in lockstep rounds (each sends its
/// next request, then each reads and checks its reply). A session that reached its quota is
/// closed (linger 0) and the next waiting one connects, so clients leave and arrive while
/// the others are mid-way. Returns the number of requests answered.
fn run_wave(thread: usize, frontend: String, mech: Mechanism) -> usize {
    let ctx = zmq::Context::new();
    let full: Vec<usize> = (thread..CLIENTS).step_by(THREADS).collect();
    let mut pending: VecDeque<(usize, usize)> = VecDeque::new();
    for (k, id) in full.iter().enumerate() {
        // Leavers go among the first sessions, so they leave while the others still run.
        if k == 1 || k == 3 {
            let leaver = 100 + thread * LEAVERS_PER_THREAD + pending.len() % LEAVERS_PER_THREAD;
            pending.push_back((leaver, LEAVE_AFTER));
        }
        pending.push_back((*id, REQUESTS));
    }
    assert_eq!(pending.len(), full.len() + LEAVERS_PER_THREAD);

    let mut answered = 0;
    let mut active: Vec<Session> = Vec::new();
    loop {
        while active.len() < ACTIVE_PER_THREAD {
            let Some((id, quota)) = pending.pop_front() else {
                break;
            };
            active.push(Session {
                id,
                socket: bounded_client(&ctx, &frontend, &mech),
                done: 0,
                quota,
            });
        }
        if active.is_empty() {
            break;
        }
        for s in &active {
            s.socket.send_multipart(request(s.id, s.done), 0).unwrap();
        }
        for s in &mut active {
            let want = request(s.id, s.done);
            let got = recv_within(&s.socket, DEADLINE)
                .unwrap_or_else(|| panic!("client {} got no reply to request {}", s.id, s.done));
            assert!(
                got == want,
                "client {} request {}: reply [{}] is not the request [{}]",
                s.id,
                s.done,
                describe(&got),
                describe(&want)
            );
            s.done += 1;
            answered += 1;
        }
        // Dropping a session closes its socket at once (linger 0): the client leaves.
        active.retain(|s| s.done < s.quota);
    }
    answered
}

/// 50 CURVE clients (plus 10 that leave half-way) over 5 workers of 10 backend connections
/// each, 20 requests per client, every reply checked against its request. Sessions end and
/// new ones start while others run (60 sessions for 50 worker connections, so worker
/// connections the proxy closed must come back and be reused). Returns the STATISTICS reply
/// once all is quiet: every client gone and every worker connection back in the pool.
fn fifty_clients_with_churn() -> [u64; 8] {
    let proxy = Proxy::start();
    let mech = curve();
    let worker_ctx = zmq::Context::new();
    let mut connected = Vec::new();
    let workers: Vec<Worker> = (0..WORKERS)
        .map(|w| {
            Worker::start_with(
                &worker_ctx,
                &proxy.backend,
                mech.clone(),
                CONNECTIONS_PER_WORKER,
                |socket| {
                    let ep = format!("inproc://many-worker-{w}-connected");
                    socket
                        .monitor(&ep, zmq::SocketEvent::CONNECTED as i32)
                        .unwrap();
                    let events = worker_ctx.socket(zmq::PAIR).unwrap();
                    events.connect(&ep).unwrap();
                    connected.push(events);
                },
            )
        })
        .collect();
    // All worker connections are up before the first client comes, so that every worker is
    // in the pool from the start.
    for events in &connected {
        for _ in 0..CONNECTIONS_PER_WORKER {
            assert!(
                events
                    .poll(zmq::POLLIN, DEADLINE.as_millis() as i64)
                    .unwrap()
                    > 0,
                "worker connections come up"
            );
            events.recv_multipart(0).unwrap();
        }
    }

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (fe, mech) = (proxy.frontend.clone(), mech.clone());
            std::thread::spawn(move || run_wave(t, fe, mech))
        })
        .collect();
    let mut answered = 0;
    for t in threads {
        match t.join() {
            Ok(n) => answered += n,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    let expected = CLIENTS * REQUESTS + THREADS * LEAVERS_PER_THREAD * LEAVE_AFTER;
    assert_eq!(answered, expected);
    let served = || {
        workers
            .iter()
            .map(|w| w.served.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    wait_until("workers counted every request", DEADLINE, || {
        served() == expected
    });
    // All workers connect from 127.0.0.1, so each session gets a random idle connection
    // (src/core/idle.rs): a worker holding a fifth of them is left out of all 60 sessions
    // with a probability near (4/5)^60, under 2 in a million.
    for (i, w) in workers.iter().enumerate() {
        assert!(
            w.served.load(Ordering::SeqCst) > 0,
            "worker {i} served nothing"
        );
    }

    // Every session's end closed its worker connection, which came back: one more connect
    // per session, so all 50 worker connections are in the pool again.
    let sessions = CLIENTS + THREADS * LEAVERS_PER_THREAD;
    let mut reconnects = 0;
    let end = Instant::now() + DEADLINE;
    while reconnects < sessions {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{reconnects} worker connections came back after {sessions} sessions ended"
        );
        let mut items: Vec<zmq::PollItem> = connected
            .iter()
            .map(|e| e.as_poll_item(zmq::POLLIN))
            .collect();
        zmq::poll(&mut items, left.as_millis() as i64).unwrap();
        for (events, item) in connected.iter().zip(&items) {
            if item.is_readable() {
                events.recv_multipart(0).unwrap();
                reconnects += 1;
            }
        }
    }

    // Quiet: no pair open, no client waiting, every worker connection screened and idle.
    wait_until(
        "all quiet: 50 idle worker connections, no pair",
        DEADLINE,
        || {
            let st = proxy.stream_stats();
            st[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize] == 0
                && st[ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING as usize] == 0
                && st[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE as usize] == SLOTS as u64
        },
    );
    let st = proxy.stream_stats();
    assert_eq!(
        st[ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL as usize],
        (CLIENTS + THREADS * LEAVERS_PER_THREAD) as u64,
        "one pair per session"
    );
    assert_eq!(st[ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW as usize], 0);
    assert_eq!(st[ZMQ_PROXY_STREAM_STAT_DROPPED_BYTES as usize], 0);
    proxy.statistics()
}

/// What STATISTICS must show once all is quiet, given that it counts the greeting bytes the
/// proxy exchanges itself (include/zmq_proxy_stream.h): everything a pair carried balances
/// (per pair, the client's greeting to the proxy matches the proxy's greeting to the worker,
/// and the worker's greeting matches the proxy's greeting to the client); what is left over
/// is the greeting exchange with the idle worker connections alone: each idle worker has
/// sent its whole 64-byte ZMTP greeting (the proxy needs it to know the worker's mechanism)
/// and has had at most a greeting's worth from the proxy.
fn check_statistics_balance(s: [u64; 8], idle: u64) {
    let (fe_in, fe_out, be_in, be_out) = (s[1], s[3], s[5], s[7]);
    assert!(
        be_out >= fe_in && (be_out - fe_in) % idle == 0 && (be_out - fe_in) / idle <= GREETING,
        "client-to-worker bytes do not balance: frontend in {fe_in}, backend out {be_out} \
         ({idle} idle workers): {s:?}"
    );
    assert_eq!(
        be_in,
        fe_out + GREETING * idle,
        "worker-to-client bytes do not balance: backend in {be_in}, frontend out {fe_out} \
         ({idle} idle workers x {GREETING}-byte greeting): {s:?}"
    );
}

/// The 50-client run: every client served and its every reply its own, all workers used,
/// one pair per session, nothing dropped; at the end STATISTICS balances both ways (see
/// `check_statistics_balance`).
#[test]
fn fifty_curve_clients_with_churn_all_served() {
    let s = fifty_clients_with_churn();
    check_statistics_balance(s, SLOTS as u64);
    assert!(s[1] > (CLIENTS * REQUESTS) as u64, "{s:?}");
}
