//! CURVE DEALER clients: their options, and the echo that proves a path works.

use std::time::{Duration, Instant};

use super::arms::Arm;
use super::worker::TAG_ECHO;
use super::zmq_ctx::zerr;

/// Client receive timeout: no single reply of this benchmark takes that long.
pub(crate) const CLIENT_RCVTIMEO_MS: i32 = 10_000;

pub(crate) fn configure_client(
    s: &zmq::Socket,
    server_public: &[u8; 32],
    me: &zmq::CurveKeyPair,
) -> Result<(), String> {
    s.set_linger(0).map_err(zerr("linger"))?;
    s.set_rcvtimeo(CLIENT_RCVTIMEO_MS)
        .map_err(zerr("rcvtimeo"))?;
    s.set_curve_serverkey(server_public)
        .map_err(zerr("curve serverkey"))?;
    s.set_curve_publickey(&me.public_key)
        .map_err(zerr("curve publickey"))?;
    s.set_curve_secretkey(&me.secret_key)
        .map_err(zerr("curve secretkey"))?;
    Ok(())
}

pub(crate) fn ping_payload() -> Vec<u8> {
    let mut p = vec![0x5a; 16];
    p[0] = TAG_ECHO;
    p
}

/// Sends one echo request on every client and waits for all the replies.
pub(crate) fn ping_all(clients: &[zmq::Socket], deadline: Duration) -> Result<(), String> {
    let ping = ping_payload();
    for c in clients {
        c.send(&ping[..], 0).map_err(zerr("ping send"))?;
    }
    let end = Instant::now() + deadline;
    let mut answered = vec![false; clients.len()];
    let mut left = clients.len();
    let mut msg = zmq::Message::new();
    while left > 0 {
        if Instant::now() > end {
            return Err(format!(
                "{left} of {} clients got no echo within {deadline:?}",
                clients.len()
            ));
        }
        let pending: Vec<usize> = (0..clients.len()).filter(|i| !answered[*i]).collect();
        let mut items: Vec<zmq::PollItem> = pending
            .iter()
            .map(|i| clients[*i].as_poll_item(zmq::POLLIN))
            .collect();
        zmq::poll(&mut items, 100).map_err(zerr("poll"))?;
        let ready: Vec<usize> = pending
            .iter()
            .zip(&items)
            .filter(|(_, item)| item.is_readable())
            .map(|(i, _)| *i)
            .collect();
        for i in ready {
            while clients[i].recv(&mut msg, zmq::DONTWAIT).is_ok() {
                if msg[..] != ping[..] {
                    return Err("echo differs from the request".into());
                }
                if !answered[i] {
                    answered[i] = true;
                    left -= 1;
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn connect_clients(
    arm: &Arm,
    cctx: &zmq::Context,
    me: &zmq::CurveKeyPair,
    n: usize,
    deadline: Duration,
) -> Result<Vec<zmq::Socket>, String> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let s = cctx.socket(zmq::DEALER).map_err(zerr("client socket"))?;
        configure_client(&s, &arm.server_public, me)?;
        s.connect(&arm.endpoint).map_err(zerr("client connect"))?;
        clients.push(s);
    }
    // The echo proves the CURVE handshake (and, through the stream proxy, the pairing) done.
    ping_all(&clients, deadline)?;
    Ok(clients)
}
