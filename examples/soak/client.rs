//! `soak client`: many DEALER CURVE clients in one thread, one zmq_poll over their sockets
//! and socket monitors.
//!
//! Each client runs sessions one after another. A session is a fresh DEALER with a fresh key
//! pair, connected to the broker's frontend with reconnection off, so that the end of its
//! connection ends the session for good (a DEALER that reconnected would carry the session's
//! queued requests to another worker and blur what was lost where). In a session the client
//! sends requests with at most `--window` awaiting a reply, at `--rate` per second on average,
//! and checks each reply: intact (checksum, and the very bytes it sent), its own (client id
//! and session), and the next one expected (in order). A session ends:
//! - by the client's choice, after a random number of requests: the socket is closed with
//!   LINGER 0, at once (requests still in flight are "abandoned": not lost, not checked) or
//!   once every reply came;
//! - when the connection goes (the monitor's DISCONNECTED): the requests awaiting a reply are
//!   "lost and noticed"; the client reports the time, the worker of the session (the pid its
//!   replies carried) and how many, and the coordinator decides whether a kill explains it;
//! - when a request got no reply within `--reply-timeout` ms of being sent (counted from the
//!   end of the CURVE handshake when it was sent before): every request that old is "lost
//!   silently", since nothing told the client that its session ended;
//! - when the handshake has not completed `--handshake-timeout` ms after connecting and the
//!   connection is still there: "stalled".
//!
//! At `--stop-at` (Unix ms) it stops sending, waits for its replies (each still bound by the
//! reply timeout) and prints one `report` line and one `disconnect` line per session lost.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::args::Args;
use crate::payload::{self, Rng, Tag};

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

struct Pending {
    sequence: u64,
    bytes: Vec<u8>,
    sent: Instant,
}

struct Session {
    socket: zmq::Socket,
    monitor: zmq::Socket,
    number: u32,
    opened: Instant,
    handshake_done: Option<Instant>,
    pending: VecDeque<Pending>,
    next_sequence: u64,
    requests_left: u64,
    close_when_drained: bool,
    worker_pid: u32,
}

#[derive(Default)]
struct Counts {
    sessions: u64,
    sent: u64,
    ok: u64,
    corrupt: u64,
    misdelivered: u64,
    out_of_order: u64,
    abandoned: u64,
    lost_noticed: u64,
    lost_silently: u64,
    stalled: u64,
    bytes: u64,
    /// The longest wait for a reply, from sending (or the end of the handshake): shows the
    /// PAUSE held requests rather than losing them.
    max_reply_ms: u64,
}

struct Config {
    frontend: String,
    server_key: Vec<u8>,
    rate: f64,
    window: usize,
    reply_timeout: Duration,
    handshake_timeout: Duration,
    session_min: u64,
    session_max: u64,
}

struct Client {
    id: u32,
    session: Option<Session>,
    sessions_opened: u32,
    next_send: Instant,
}

/// Sockets whose sessions ended: their monitor is kept (and read) until MONITOR_STOPPED,
/// because libzmq 4.3 sends monitor events with a blocking send that would hang the I/O
/// thread once the reading end is gone.
struct Retired {
    monitor: zmq::Socket,
    until: Instant,
}

pub fn run(args: &Args) -> Result<(), String> {
    let first_id: u32 = args.num("first-id", 0);
    let count: u32 = args.num("count", 60);
    let stop_at: u64 = args.num("stop-at", unix_ms() + 10_000);
    let config = Config {
        frontend: args.get("frontend").ok_or("client: --frontend")?,
        server_key: zmq::z85_decode(&args.get("server-key").ok_or("client: --server-key")?)
            .map_err(|e| format!("--server-key: {e:?}"))?,
        rate: args.num("rate", 10.0),
        window: args.num("window", 2),
        reply_timeout: Duration::from_millis(args.num("reply-timeout", 10_000)),
        handshake_timeout: Duration::from_millis(args.num("handshake-timeout", 30_000)),
        session_min: args.num("session-min", 5),
        session_max: args.num("session-max", 300),
    };
    let ctx = zmq::Context::new();
    let mut rng = Rng::new(u64::from(first_id).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ unix_ms());
    let mut counts = Counts::default();
    let mut disconnects = Vec::new();
    let mut retired: Vec<Retired> = Vec::new();
    let now = Instant::now();
    let mut clients: Vec<Client> = (0..count)
        .map(|i| Client {
            id: first_id + i,
            session: None,
            sessions_opened: 0,
            next_send: now,
        })
        .collect();
    for client in &mut clients {
        open_session(&ctx, &config, client, &mut rng, &mut counts)?;
    }

    let stop = Instant::now() + Duration::from_millis(stop_at.saturating_sub(unix_ms()));
    // After the stop the replies still due have the reply timeout to come, and a little more.
    let give_up = stop + config.reply_timeout + Duration::from_secs(5);
    loop {
        let now = Instant::now();
        let stopping = now >= stop;
        if stopping
            && clients
                .iter()
                .all(|c| c.session.as_ref().is_none_or(|s| s.pending.is_empty()))
        {
            break;
        }
        if now >= give_up {
            return Err("client: replies still due past the drain deadline".into());
        }
        // Send what is due, and find the next wake-up.
        let mut wake = now + Duration::from_millis(50);
        for client in clients.iter_mut() {
            let session = client.session.as_mut().expect("every client has a session");
            if !stopping
                && session.requests_left > 0
                && session.pending.len() < config.window
                && now >= client.next_send
            {
                send_request(client.id, session, &mut rng, &mut counts)?;
                let gap = rng.range(0, (2000.0 / config.rate) as u64);
                client.next_send = now + Duration::from_millis(gap);
            }
            if session.requests_left > 0 && session.pending.len() < config.window {
                wake = wake.min(client.next_send);
            }
        }
        let timeout = wake.saturating_duration_since(Instant::now()).as_millis() as i64;
        let mut items: Vec<zmq::PollItem> = Vec::with_capacity(clients.len() * 2 + retired.len());
        for client in &clients {
            let session = client.session.as_ref().expect("every client has a session");
            items.push(session.socket.as_poll_item(zmq::POLLIN));
            items.push(session.monitor.as_poll_item(zmq::POLLIN));
        }
        for r in &retired {
            items.push(r.monitor.as_poll_item(zmq::POLLIN));
        }
        zmq::poll(&mut items, timeout.max(0)).map_err(|e| format!("poll: {e}"))?;
        let readable: Vec<bool> = items.iter().map(|i| i.is_readable()).collect();
        drop(items);

        let now = Instant::now();
        // Sessions ending below retire their monitors after those that were polled.
        let polled_retired = retired.len();
        for (i, client) in clients.iter_mut().enumerate() {
            let mut ended = None;
            {
                let session = client.session.as_mut().expect("every client has a session");
                if readable[2 * i] {
                    take_replies(client.id, session, &mut counts);
                }
                if readable[2 * i + 1] {
                    ended = read_monitor(session, now);
                }
                if ended.is_none() {
                    ended = check_deadlines(session, &config, now, &mut counts);
                }
                if ended.is_none() && session.requests_left == 0 {
                    if !session.close_when_drained {
                        counts.abandoned += session.pending.len() as u64;
                        ended = Some(End::Chosen);
                    } else if session.pending.is_empty() {
                        ended = Some(End::Chosen);
                    }
                }
            }
            let Some(end) = ended else { continue };
            let session = client.session.take().expect("every client has a session");
            if end == End::Disconnected {
                counts.lost_noticed += session.pending.len() as u64;
                disconnects.push(format!(
                    "disconnect at_ms={} worker_pid={} outstanding={} handshake_done={}",
                    unix_ms(),
                    session.worker_pid,
                    session.pending.len(),
                    session.handshake_done.is_some()
                ));
            }
            // LINGER 0: the close is abrupt, whatever is queued goes with it.
            drop(session.socket);
            retired.push(Retired {
                monitor: session.monitor,
                until: now + Duration::from_secs(5),
            });
            open_session(&ctx, &config, client, &mut rng, &mut counts)?;
        }
        let offset = clients.len() * 2;
        let mut keep = Vec::with_capacity(retired.len());
        for (i, r) in retired.drain(..).enumerate() {
            let stopped = i < polled_retired && readable[offset + i] && monitor_stopped(&r.monitor);
            if !stopped && now < r.until {
                keep.push(r);
            }
        }
        retired = keep;
    }
    let c = &counts;
    println!(
        "report sessions={} sent={} ok={} corrupt={} misdelivered={} out_of_order={} \
         abandoned={} lost_noticed={} lost_silently={} stalled={} bytes={} max_reply_ms={}",
        c.sessions,
        c.sent,
        c.ok,
        c.corrupt,
        c.misdelivered,
        c.out_of_order,
        c.abandoned,
        c.lost_noticed,
        c.lost_silently,
        c.stalled,
        c.bytes,
        c.max_reply_ms
    );
    for line in disconnects {
        println!("{line}");
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    Chosen,
    Disconnected,
    TimedOut,
}

fn open_session(
    ctx: &zmq::Context,
    config: &Config,
    client: &mut Client,
    rng: &mut Rng,
    counts: &mut Counts,
) -> Result<(), String> {
    client.sessions_opened += 1;
    counts.sessions += 1;
    let number = client.sessions_opened;
    let e = |what: &str, err: zmq::Error| format!("session of client {}: {what}: {err}", client.id);
    let socket = ctx.socket(zmq::DEALER).map_err(|x| e("socket", x))?;
    let keys = zmq::CurveKeyPair::new().map_err(|x| e("keys", x))?;
    socket.set_linger(0).map_err(|x| e("linger", x))?;
    // -1: never reconnect; the session ends with its connection.
    socket
        .set_reconnect_ivl(-1)
        .map_err(|x| e("reconnect", x))?;
    socket
        .set_curve_serverkey(&config.server_key)
        .map_err(|x| e("serverkey", x))?;
    socket
        .set_curve_publickey(&keys.public_key)
        .map_err(|x| e("publickey", x))?;
    socket
        .set_curve_secretkey(&keys.secret_key)
        .map_err(|x| e("secretkey", x))?;
    let monitor_ep = format!("inproc://soak-client-{}-{number}", client.id);
    let events = zmq::SocketEvent::DISCONNECTED as i32
        | zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32
        | zmq::SocketEvent::MONITOR_STOPPED as i32;
    socket
        .monitor(&monitor_ep, events)
        .map_err(|x| e("monitor", x))?;
    let monitor = ctx.socket(zmq::PAIR).map_err(|x| e("pair", x))?;
    monitor
        .connect(&monitor_ep)
        .map_err(|x| e("monitor connect", x))?;
    socket
        .connect(&config.frontend)
        .map_err(|x| e("connect", x))?;
    client.session = Some(Session {
        socket,
        monitor,
        number,
        opened: Instant::now(),
        handshake_done: None,
        pending: VecDeque::new(),
        next_sequence: 0,
        requests_left: rng.range(config.session_min, config.session_max),
        close_when_drained: rng.next() % 2 == 0,
        worker_pid: 0,
    });
    Ok(())
}

fn send_request(
    client: u32,
    session: &mut Session,
    rng: &mut Rng,
    counts: &mut Counts,
) -> Result<(), String> {
    // Mostly small, now and then up to 64 KiB: several chunks on the relay's path.
    let len = if rng.next() % 50 == 0 {
        rng.range(2049, 65536)
    } else {
        rng.range(0, 2048)
    } as usize;
    let mut body = vec![0; len];
    rng.fill(&mut body);
    let tag = Tag {
        client,
        session: session.number,
        sequence: session.next_sequence,
    };
    let bytes = payload::encode(tag, &body);
    match session.socket.send(&bytes[..], zmq::DONTWAIT) {
        Ok(()) => {}
        // No pipe: the connection is gone (reconnection is off) and the monitor's
        // DISCONNECTED is on its way; the session ends when it is read.
        Err(zmq::Error::EAGAIN) => return Ok(()),
        Err(e) => return Err(format!("client {client}: send: {e}")),
    }
    counts.sent += 1;
    session.pending.push_back(Pending {
        sequence: session.next_sequence,
        bytes,
        sent: Instant::now(),
    });
    session.next_sequence += 1;
    session.requests_left -= 1;
    Ok(())
}

fn take_replies(client: u32, session: &mut Session, counts: &mut Counts) {
    while let Ok(frames) = session.socket.recv_multipart(zmq::DONTWAIT) {
        let [reply, pid] = frames.as_slice() else {
            counts.corrupt += 1;
            eprintln!("client {client}: a reply of {} frames", frames.len());
            continue;
        };
        if let Ok(pid) = <[u8; 4]>::try_from(pid.as_slice()) {
            session.worker_pid = u32::from_le_bytes(pid);
        }
        // A damaged or foreign reply takes the place of the one awaited (which is gone or
        // damaged), so one fault is counted once and not again for every reply after it.
        let Some(tag) = payload::decode(reply) else {
            counts.corrupt += 1;
            eprintln!("client {client}: a reply that fails its checksum");
            session.pending.pop_front();
            continue;
        };
        if tag.client != client || tag.session != session.number {
            counts.misdelivered += 1;
            eprintln!(
                "client {client} session {}: got the reply of client {} session {}",
                session.number, tag.client, tag.session
            );
            session.pending.pop_front();
            continue;
        }
        let Some(at) = session
            .pending
            .iter()
            .position(|p| p.sequence == tag.sequence)
        else {
            // Not awaited: a duplicate, or a reply of a request never sent.
            counts.out_of_order += 1;
            eprintln!(
                "client {client} session {}: reply {} was not awaited",
                session.number, tag.sequence
            );
            continue;
        };
        if at > 0 {
            // The replies of the requests before it were skipped: lost, since a DEALER's
            // replies come in order. (Should one come later after all, it is not awaited
            // any more and counts as out of order.)
            counts.lost_silently += at as u64;
            eprintln!(
                "client {client} session {}: reply {} came before {at} earlier one(s)",
                session.number, tag.sequence
            );
            session.pending.drain(..at);
        }
        let p = session.pending.pop_front().expect("found above");
        let since = session
            .handshake_done
            .map_or(p.sent, |done| p.sent.max(done));
        counts.max_reply_ms = counts.max_reply_ms.max(since.elapsed().as_millis() as u64);
        if p.bytes == *reply {
            counts.ok += 1;
            counts.bytes += reply.len() as u64;
        } else {
            counts.corrupt += 1;
            eprintln!(
                "client {client}: reply {} differs from the request",
                p.sequence
            );
        }
    }
}

/// Reads the session's socket events; the session ends when its connection went.
fn read_monitor(session: &mut Session, now: Instant) -> Option<End> {
    let mut end = None;
    while let Ok(frames) = session.monitor.recv_multipart(zmq::DONTWAIT) {
        let head = &frames[0];
        match zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]])) {
            zmq::SocketEvent::HANDSHAKE_SUCCEEDED => session.handshake_done = Some(now),
            zmq::SocketEvent::DISCONNECTED
            | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
            | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH => end = Some(End::Disconnected),
            _ => {}
        }
    }
    end
}

fn check_deadlines(
    session: &mut Session,
    config: &Config,
    now: Instant,
    counts: &mut Counts,
) -> Option<End> {
    let Some(done) = session.handshake_done else {
        if now.duration_since(session.opened) > config.handshake_timeout {
            counts.stalled += 1;
            eprintln!("a session's handshake did not complete in time");
            return Some(End::TimedOut);
        }
        return None;
    };
    let overdue = |p: &Pending| now.duration_since(p.sent.max(done)) > config.reply_timeout;
    if !session.pending.iter().any(overdue) {
        return None;
    }
    let lost = session.pending.iter().filter(|p| overdue(p)).count() as u64;
    counts.lost_silently += lost;
    counts.abandoned += session.pending.len() as u64 - lost;
    eprintln!(
        "session {}: {lost} request(s) without a reply after {:?}, connection still up",
        session.number, config.reply_timeout
    );
    Some(End::TimedOut)
}

fn monitor_stopped(monitor: &zmq::Socket) -> bool {
    while let Ok(frames) = monitor.recv_multipart(zmq::DONTWAIT) {
        let head = &frames[0];
        if zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]]))
            == zmq::SocketEvent::MONITOR_STOPPED
        {
            return true;
        }
    }
    false
}
