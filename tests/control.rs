//! The control socket: zmq_proxy_steerable's commands (PAUSE, RESUME, TERMINATE, STATISTICS)
//! on PAIR, REP and SUB sockets, exact STATISTICS counters, unknown commands, and no busy
//! spinning while idle or paused.

mod common;
mod rawnet;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rawnet::*;

/// How long a negative check ("nothing arrives") looks. It can only ever pass wrongly, never
/// fail wrongly, so it does not have to be long.
const QUIET: Duration = Duration::from_millis(300);

fn curve() -> Mechanism {
    Mechanism::Curve(Arc::new(Keys::new().server))
}

/// The fewest chunks that can carry `bytes`: one libzmq STREAM chunk is at most 8192 bytes.
fn min_chunks(bytes: u64) -> u64 {
    bytes.div_ceil(8192)
}

#[test]
fn statistics_count_relayed_bytes_exactly() {
    let proxy = Proxy::start();
    assert_eq!(proxy.statistics(), [0; 8], "a fresh proxy counts nothing");

    // One byte each way proves the pairing (see raw_pair).
    let RawPair {
        mut worker,
        mut client,
    } = raw_pair(&proxy.frontend, &proxy.backend);

    const UP: usize = 300_001; // client -> worker
    const DOWN: usize = 200_003; // worker -> client
    client.write_all(&pattern(1, 0, UP)).unwrap();
    check_pattern(1, 0, &read_exact_within(&mut worker, UP, LONG));
    worker.write_all(&pattern(2, 0, DOWN)).unwrap();
    check_pattern(2, 0, &read_exact_within(&mut client, DOWN, LONG));

    let s = proxy.statistics();
    let up = 1 + UP as u64;
    let down = 1 + DOWN as u64;
    assert_eq!(s[1], up, "frontend bytes in: {s:?}");
    assert_eq!(s[7], up, "backend bytes out: {s:?}");
    assert_eq!(s[5], down, "backend bytes in: {s:?}");
    assert_eq!(s[3], down, "frontend bytes out: {s:?}");
    // Messages are data chunks: at most 8192 bytes each on the way in, never empty, and the
    // probe byte went alone before the bulk was written.
    for (msgs, bytes, name) in [
        (s[0], up, "frontend msgs in"),
        (s[4], down, "backend msgs in"),
    ] {
        assert!(
            msgs > min_chunks(bytes - 1) && msgs <= bytes,
            "{name} = {msgs} for {bytes} bytes: {s:?}"
        );
    }
    for (msgs, bytes, name) in [
        (s[2], down, "frontend msgs out"),
        (s[6], up, "backend msgs out"),
    ] {
        assert!(
            msgs >= 2 && msgs <= bytes,
            "{name} = {msgs} for {bytes} bytes: {s:?}"
        );
    }

    // Connections that come and go without data, and the teardown of the pair, are not
    // messages: the counters do not move.
    let lonely = tcp_connect(&proxy.frontend);
    drop(lonely);
    drop(client);
    let (end, extra) = drain_until_closed(&mut worker, LONG);
    assert_eq!(extra, 0, "no stray bytes reach the worker ({end:?})");
    assert_eq!(proxy.statistics(), s, "notifications are not counted");

    let (rc, _) = proxy.terminate();
    assert_eq!(rc, 0);
}

#[test]
fn bytes_sent_before_a_worker_exists_are_delivered_once_and_counted_once() {
    let proxy = Proxy::start();
    let mut client = tcp_connect(&proxy.frontend);
    // Like a ZMTP peer's greeting: a few bytes sent while no worker is there.
    client.write_all(&pattern(3, 0, 10)).unwrap();
    wait_until("the early bytes to be read by the proxy", DEADLINE, || {
        proxy.statistics()[1] == 10
    });
    let mut worker = tcp_connect(&proxy.backend);
    check_pattern(3, 0, &read_exact_within(&mut worker, 10, LONG));
    client.write_all(&pattern(3, 10, 5000)).unwrap();
    check_pattern(3, 10, &read_exact_within(&mut worker, 5000, LONG));
    assert_eq!(bytes_arriving_within(&mut worker, QUIET), 0, "no duplicate");
    let s = proxy.statistics();
    assert_eq!((s[1], s[7]), (5010, 5010), "{s:?}");
    assert_eq!((s[3], s[5]), (0, 0), "{s:?}");
}

#[test]
fn pause_holds_traffic_and_resume_delivers_all_of_it() {
    let proxy = Proxy::start();
    let mech = curve();
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
    let curve_client = client(&proxy.ctx, &proxy.frontend, &mech);
    round_trip(&curve_client, &[b"before pause"]);
    let RawPair {
        mut worker,
        mut client,
    } = raw_pair(&proxy.frontend, &proxy.backend);

    proxy.send_command("PAUSE");
    // Commands are served in order: once STATISTICS is answered, PAUSE took effect.
    let paused_at = proxy.statistics();

    const UP: usize = 700_000;
    const DOWN: usize = 333_333;
    client.write_all(&pattern(10, 0, UP)).unwrap();
    worker.write_all(&pattern(11, 0, DOWN)).unwrap();
    curve_client.send("during pause", 0).unwrap();

    assert_eq!(
        bytes_arriving_within(&mut worker, QUIET),
        0,
        "relayed while paused"
    );
    assert_eq!(bytes_arriving_within(&mut client, Duration::ZERO), 0);
    assert!(
        recv_within(&curve_client, Duration::ZERO).is_none(),
        "CURVE reply while paused"
    );
    assert_eq!(
        proxy.statistics(),
        paused_at,
        "a paused proxy reads nothing"
    );

    proxy.send_command("RESUME");
    check_pattern(10, 0, &read_exact_within(&mut worker, UP, LONG));
    check_pattern(11, 0, &read_exact_within(&mut client, DOWN, LONG));
    let reply = recv_within(&curve_client, DEADLINE).expect("CURVE reply after RESUME");
    assert_eq!(reply, vec![b"during pause".to_vec()]);
    round_trip(&curve_client, &[b"after resume"]);
    assert_eq!(bytes_arriving_within(&mut worker, QUIET), 0, "no duplicate");

    let s = proxy.statistics();
    assert_eq!(
        paused_at[1], paused_at[7],
        "at rest before the pause: {paused_at:?}"
    );
    assert_eq!(
        paused_at[5], paused_at[3],
        "at rest before the pause: {paused_at:?}"
    );
    assert_eq!(s[1], s[7], "all read from clients was forwarded: {s:?}");
    assert_eq!(s[5], s[3], "all read from workers was forwarded: {s:?}");
    assert!(s[1] >= paused_at[1] + UP as u64, "{s:?} vs {paused_at:?}");
    assert!(s[5] >= paused_at[5] + DOWN as u64, "{s:?} vs {paused_at:?}");

    // Connections made while paused are paired after RESUME (raw_pair_from proves it).
    proxy.send_command("PAUSE");
    proxy.statistics();
    let late_worker = tcp_connect(&proxy.backend);
    let late_client = tcp_connect(&proxy.frontend);
    proxy.send_command("RESUME");
    raw_pair_from(late_worker, late_client);
}

/// A client that sends and leaves while the proxy is paused: after RESUME its worker gets
/// every byte, then is closed.
fn client_leaves_while_paused(chunks: usize) {
    let ctx = zmq::Context::new();
    // A small inbound pipe, set before bind as the API allows, makes "the proxy lags a full
    // pipe behind" cheap: 4 chunks instead of 1000.
    let mut proxy = OwnProxy::start_with(&ctx, true, |frontend, _| {
        frontend.set_rcvhwm(4).unwrap();
    });
    let RawPair {
        mut worker,
        mut client,
    } = raw_pair(&proxy.frontend, &proxy.backend);
    proxy.send_command("PAUSE");
    proxy.statistics();
    // One write of whole 8 KiB chunks: libzmq reads it as exactly `chunks` chunks.
    let n = chunks * 8192;
    client.write_all(&pattern(0x33, 0, n)).unwrap();
    drop(client);
    proxy.send_command("RESUME");
    check_pattern(0x33, 0, &read_exact_within(&mut worker, n, LONG));
    let (_, extra) = drain_until_closed(&mut worker, LONG);
    assert_eq!(extra, 0);
    assert_eq!(proxy.terminate().rc, 0);
}

#[test]
fn a_client_leaving_while_paused_is_noticed_after_resume() {
    client_leaves_while_paused(3);
}

/// BUG (reported): libzmq drops the disconnect notification when the connection's inbound
/// pipe is exactly full as EOF is read (libzmq-stream-facts.md). The proxy has no other way
/// to notice (no idle timeout, nothing is sent to the departed client), so the pair stays
/// open forever: the worker connection is never closed nor reused.
#[test]
#[ignore = "BUG: lost disconnect notification leaves a zombie pair (worker never closed)"]
fn a_client_leaving_while_the_proxy_lags_a_full_pipe_behind_is_noticed() {
    client_leaves_while_paused(4);
}

#[test]
fn terminate_returns_zero_with_live_pairs() {
    let proxy = Proxy::start();
    let mech = curve();
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
    let c = client(&proxy.ctx, &proxy.frontend, &mech);
    round_trip(&c, &[b"x"]);
    let _raw = raw_pair(&proxy.frontend, &proxy.backend);
    let (rc, errno) = proxy.terminate();
    assert_eq!((rc, errno), (0, 0));
}

#[test]
fn rep_control_replies_to_every_command_and_keeps_accepting() {
    let mut proxy = Proxy::start_with(ControlType::Rep, |_, _| {});
    let empty_reply = |proxy: &Proxy, command: &str| {
        proxy.send_command(command);
        let reply = proxy
            .recv_control(DEADLINE)
            .unwrap_or_else(|| panic!("REP must reply to {command}"));
        assert_eq!(reply, vec![Vec::<u8>::new()], "reply to {command}");
    };
    let RawPair {
        mut worker,
        mut client,
    } = raw_pair(&proxy.frontend, &proxy.backend);

    empty_reply(&proxy, "PAUSE");
    let paused = proxy.statistics();
    assert_eq!(paused[1], 1, "{paused:?}");
    client.write_all(b"held").unwrap();
    assert_eq!(
        bytes_arriving_within(&mut worker, QUIET),
        0,
        "PAUSE over REP"
    );
    empty_reply(&proxy, "RESUME");
    assert_eq!(read_exact_within(&mut worker, 4, LONG), b"held");
    empty_reply(&proxy, "NO-SUCH-COMMAND");
    empty_reply(&proxy, "pause");
    let s = proxy.statistics();
    assert_eq!(s[1], 5, "{s:?}");
    client.write_all(b"still relaying").unwrap();
    assert_eq!(read_exact_within(&mut worker, 14, LONG), b"still relaying");
    empty_reply(&proxy, "PAUSE");
    empty_reply(&proxy, "RESUME");
    assert_eq!(proxy.statistics()[1], 19);

    // TERMINATE is answered too (REP must answer every request), then the call returns 0.
    empty_reply(&proxy, "TERMINATE");
    wait_until("the proxy to return", DEADLINE, || proxy.finished());
    let (rc, _) = proxy.join();
    assert_eq!(rc, 0);
}

#[test]
fn pair_control_answers_statistics_only() {
    let proxy = Proxy::start();
    let mut pair = raw_pair(&proxy.frontend, &proxy.backend);
    for command in ["PAUSE", "RESUME", "BOGUS"] {
        proxy.send_command(command);
    }
    // Were any of those answered, this would read that answer instead of the counters.
    let s = proxy.statistics();
    assert_eq!((s[1], s[5]), (1, 1), "{s:?}");
    assert!(
        proxy.recv_control(QUIET).is_none(),
        "PAIR gets no reply to non-STATISTICS commands"
    );
    pair.client.write_all(b"resumed").unwrap();
    assert_eq!(read_exact_within(&mut pair.worker, 7, LONG), b"resumed");
}

#[test]
fn sub_control_terminate_returns_zero() {
    let mut proxy = Proxy::start_with(ControlType::Sub, |_, _| {});
    let mut pair = raw_pair(&proxy.frontend, &proxy.backend);
    pair.client
        .write_all(b"relay works under SUB control")
        .unwrap();
    assert_eq!(
        read_exact_within(&mut pair.worker, 29, LONG),
        b"relay works under SUB control"
    );
    // PUB drops what it sends before the subscription arrived: repeat until it lands.
    wait_until("TERMINATE over SUB to stop the proxy", DEADLINE, || {
        if proxy.finished() {
            return true;
        }
        proxy.send_command("TERMINATE");
        std::thread::sleep(Duration::from_millis(20));
        proxy.finished()
    });
    let (rc, errno) = proxy.join();
    assert_eq!((rc, errno), (0, 0));
}

#[test]
fn unknown_commands_are_ignored_and_the_proxy_keeps_working() {
    // OwnProxy: if junk wrongly stopped the proxy, this fails instead of hanging.
    let ctx = zmq::Context::new();
    let mut proxy = OwnProxy::start(&ctx, true);
    let mech = curve();
    let _w = Worker::start(&ctx, &proxy.backend, mech.clone(), 1);
    let c = client(&ctx, &proxy.frontend, &mech);
    round_trip(&c, &[b"first"]);

    let long_terminate = format!("TERMINATE{}", "x".repeat(40));
    let long_statistics = format!("STATISTICS{}", " ".repeat(100));
    let junk: Vec<&str> = vec![
        "",
        "pause",
        "PAUSE\0",
        "TERMINATE\0",
        "TERMINATEX",
        "STATISTICSX",
        " RESUME",
        "\u{1}\u{2}",
        &long_terminate,
        &long_statistics,
    ];
    for command in &junk {
        proxy.send_command(command);
    }
    // The first (and only) reply is the counters of this STATISTICS: none of the junk was
    // answered or taken for STATISTICS, PAUSE or TERMINATE.
    let s = proxy.statistics();
    assert!(s[0] > 0, "{s:?}");
    let control = proxy.control.as_ref().unwrap();
    assert_eq!(
        control.poll(zmq::POLLIN, QUIET.as_millis() as i64).unwrap(),
        0,
        "junk was answered"
    );
    assert!(!proxy.finished(), "junk terminated the proxy");
    // Not paused, not terminated: traffic still flows both ways.
    for i in 0..20u64 {
        round_trip(&c, &[&payload(i, 2000)]);
    }
    assert_eq!(proxy.terminate().rc, 0);
}

/// CPU the proxy thread may use in one second of doing nothing. An idle proxy waits in
/// zmq_poll and uses ~0; a spinning one uses ~1 s.
const IDLE_CPU_BUDGET: Duration = Duration::from_millis(100);
const IDLE_WINDOW: Duration = Duration::from_secs(1);

fn cpu_over_window(proxy: &OwnProxy) -> Duration {
    let before = proxy.cpu_time();
    // The measurement window itself: not a wait for a condition.
    std::thread::sleep(IDLE_WINDOW);
    let cpu = proxy.cpu_time() - before;
    eprintln!("proxy CPU {cpu:?} over {IDLE_WINDOW:?}");
    cpu
}

#[test]
fn no_spin_when_idle() {
    let ctx = zmq::Context::new();
    let mut proxy = OwnProxy::start(&ctx, true);
    proxy.statistics(); // the loop is up
    let cpu = cpu_over_window(&proxy);
    assert!(cpu < IDLE_CPU_BUDGET, "idle proxy, no connections: {cpu:?}");

    // Idle with state: a pair that went quiet, a worker in the pool, then the pool drained by
    // a waiting client and a client waiting for a worker.
    let mut pair = raw_pair(&proxy.frontend, &proxy.backend);
    let _idle_worker = tcp_connect(&proxy.backend);
    pair.client.write_all(&pattern(5, 0, 100_000)).unwrap();
    check_pattern(5, 0, &read_exact_within(&mut pair.worker, 100_000, LONG));
    let _waiting_a = tcp_connect(&proxy.frontend);
    let _waiting_b = tcp_connect(&proxy.frontend);
    drop(pair.client); // a pair torn down: the worker is closed after flushing
    drain_until_closed(&mut pair.worker, LONG);
    proxy.statistics();
    let cpu = cpu_over_window(&proxy);
    assert!(
        cpu < IDLE_CPU_BUDGET,
        "idle proxy with connections: {cpu:?}"
    );
    let exit = proxy.terminate();
    assert_eq!(exit.rc, 0);
}

#[test]
fn no_spin_when_paused_with_traffic_waiting() {
    let ctx = zmq::Context::new();
    let mut proxy = OwnProxy::start(&ctx, true);
    let mut pair = raw_pair(&proxy.frontend, &proxy.backend);
    proxy.send_command("PAUSE");
    let paused_at = proxy.statistics();
    // Traffic queued inside libzmq on both sockets, and new connections, while paused: the
    // sockets are readable the whole time.
    pair.client.write_all(&pattern(6, 0, 200_000)).unwrap();
    pair.worker.write_all(&pattern(7, 0, 50_000)).unwrap();
    let mut late = raw_pair_parts(&proxy);
    let cpu = cpu_over_window(&proxy);
    assert!(cpu < IDLE_CPU_BUDGET, "paused proxy: {cpu:?}");
    assert_eq!(proxy.statistics(), paused_at, "paused proxy read data");

    proxy.send_command("RESUME");
    check_pattern(6, 0, &read_exact_within(&mut pair.worker, 200_000, LONG));
    check_pattern(7, 0, &read_exact_within(&mut pair.client, 50_000, LONG));
    late.1.write_all(b"late").unwrap();
    assert_eq!(read_exact_within(&mut late.0, 4, LONG), b"late");
    let exit = proxy.terminate();
    assert_eq!(exit.rc, 0);
}

fn raw_pair_parts(proxy: &OwnProxy) -> (std::net::TcpStream, std::net::TcpStream) {
    (tcp_connect(&proxy.backend), tcp_connect(&proxy.frontend))
}
