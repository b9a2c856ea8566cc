//! `soak worker`: a ROUTER CURVE server that checks every request's checksum and echoes it,
//! with its process id as a second frame so a client knows whose session it had.
//!
//! Dial-in (`--backend EP --connections N`): connects N times to the broker's backend and
//! follows the README's rule for worker authors: after a handshake that failed with a protocol
//! or authentication error libzmq never reconnects that connection, so connect again.
//! Dial-out (`--bind EP`): one bound ROUTER; nothing to repair.
//!
//! Prints `ready` once its connections are up (or it is bound), `corrupt ...` at once for every
//! request whose checksum is wrong (the coordinator counts those lines: a SIGKILLed worker has
//! no chance to report at exit), and its counters every 5 s. `--fault drop|corrupt|swap
//! --fault-every N` breaks every Nth reply on purpose: the soak's own check that it notices.

use std::time::{Duration, Instant};

use crate::args::Args;
use crate::payload;

pub fn run(args: &Args) -> Result<(), String> {
    let secret = std::env::var("STREAMQ_SOAK_SECRET")
        .map_err(|_| "STREAMQ_SOAK_SECRET (the server's z85 secret key) is not set")?;
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).map_err(|e| e.to_string())?;
    let monitor_ep = format!("inproc://soak-worker-monitor-{}", std::process::id());
    router
        .monitor(&monitor_ep, zmq::SocketEvent::ALL as i32)
        .map_err(|e| e.to_string())?;
    let monitor = ctx.socket(zmq::PAIR).map_err(|e| e.to_string())?;
    monitor.connect(&monitor_ep).map_err(|e| e.to_string())?;
    let set = |r: zmq::Result<()>| r.map_err(|e| e.to_string());
    set(router.set_linger(0))?;
    set(router.set_immediate(true))?;
    // A reply to a client that left fails with EHOSTUNREACH instead of vanishing, and a full
    // pipe says EAGAIN: nothing is dropped without the worker knowing.
    set(router.set_router_mandatory(true))?;
    set(router.set_curve_server(true))?;
    set(router.set_curve_secretkey(secret.as_bytes()))?;

    let backend = args.get("backend");
    let connections: usize = args.num("connections", 1);
    let mut wanted_connections = 0;
    if let Some(bind) = args.get("bind") {
        set(router.bind(&bind))?;
        println!("ready bound {bind}");
    } else {
        let backend = backend.clone().ok_or("worker: --backend or --bind")?;
        for _ in 0..connections {
            set(router.connect(&backend))?;
        }
        wanted_connections = connections;
    }

    let pid = std::process::id().to_le_bytes();
    // Fault injection, to see the soak fail as it should (scripts/soak.sh --self-check):
    // every Nth reply is dropped, damaged, or replaced by the previous request's reply.
    let fault_every: u64 = args.num("fault-every", 0);
    let fault = args.get("fault").unwrap_or_default();
    let mut previous: Vec<u8> = Vec::new();
    let (mut echoed, mut corrupt, mut unroutable, mut full, mut reconnects) = (0u64, 0, 0, 0, 0);
    let mut connected = 0usize;
    let mut ready_said = wanted_connections == 0;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    loop {
        let mut items = [
            router.as_poll_item(zmq::POLLIN),
            monitor.as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, 1000).map_err(|e| e.to_string())?;
        let (router_ready, monitor_ready) = (items[0].is_readable(), items[1].is_readable());
        if monitor_ready {
            while let Ok(frames) = monitor.recv_multipart(zmq::DONTWAIT) {
                let head = &frames[0];
                let event = zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]]));
                match event {
                    zmq::SocketEvent::CONNECTED => connected += 1,
                    zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
                    | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH => {
                        if let Some(backend) = &backend {
                            set(router.connect(backend))?;
                            reconnects += 1;
                        }
                    }
                    _ => {}
                }
            }
            if !ready_said && connected >= wanted_connections {
                println!("ready {connected} connections");
                ready_said = true;
            }
        }
        if router_ready {
            // A burst at a time, so the monitor is looked at again soon.
            for _ in 0..256 {
                let Ok(mut frames) = router.recv_multipart(zmq::DONTWAIT) else {
                    break;
                };
                if frames.len() != 2 || payload::decode(&frames[1]).is_none() {
                    corrupt += 1;
                    println!(
                        "corrupt request: {} frames, {} bytes",
                        frames.len(),
                        frames.get(1).map_or(0, Vec::len)
                    );
                }
                frames.push(pid.to_vec());
                if fault_every > 0 && (echoed + unroutable + 1) % fault_every == 0 {
                    match fault.as_str() {
                        "drop" => {
                            println!("fault: dropped a reply");
                            echoed += 1;
                            continue;
                        }
                        "corrupt" => {
                            let last = frames[1].len() - 1;
                            frames[1][last] ^= 0x20;
                        }
                        "swap" => {
                            std::mem::swap(&mut frames[1], &mut previous);
                            if frames[1].is_empty() {
                                frames[1] = previous.clone();
                            }
                        }
                        other => return Err(format!("--fault {other:?}: drop, corrupt or swap")),
                    }
                    println!("fault: {fault} reply");
                } else if fault == "swap" {
                    previous = frames[1].clone();
                }
                match router.send_multipart(frames, zmq::DONTWAIT) {
                    Ok(()) => echoed += 1,
                    Err(zmq::Error::EHOSTUNREACH) => unroutable += 1,
                    Err(zmq::Error::EAGAIN) => {
                        full += 1;
                        println!("reply dropped: the client's pipe is full");
                    }
                    Err(e) => return Err(format!("send: {e}")),
                }
            }
        }
        if Instant::now() >= next_report {
            println!(
                "echoed={echoed} corrupt={corrupt} unroutable={unroutable} full={full} \
                 reconnects={reconnects} connected_events={connected}"
            );
            next_report += Duration::from_secs(5);
        }
    }
}
