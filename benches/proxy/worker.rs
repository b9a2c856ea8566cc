//! The ROUTER worker behind every arm, and the tags that tell it what to do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::zmq_ctx::{endpoint_of, zerr};

/// First payload byte: what the worker does with the message.
pub(crate) const TAG_COUNT: u8 = b'C';
pub(crate) const TAG_LAST: u8 = b'L';
pub(crate) const TAG_ECHO: u8 = b'E';
pub(crate) const TAG_CREDIT: u8 = b'K';
pub(crate) const ACK: &[u8] = b"ACK";
pub(crate) const CREDIT: &[u8] = b"K";

/// A ROUTER worker on its own thread: counts every message, echoes those tagged E, returns
/// a credit for those tagged K and acknowledges those tagged L.
pub(crate) struct Worker {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) received: Arc<AtomicU64>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub(crate) fn spawn(socket: zmq::Socket) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), received.clone());
        let thread = std::thread::Builder::new()
            .name("bench-worker".into())
            .spawn(move || serve(&socket, &s, &r))
            .expect("spawn worker thread");
        Worker {
            stop,
            received,
            thread: Some(thread),
        }
    }

    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn serve(socket: &zmq::Socket, stop: &AtomicBool, received: &AtomicU64) {
    let mut frames: Vec<zmq::Message> = Vec::with_capacity(4);
    while !stop.load(Ordering::Relaxed) {
        match socket.poll(zmq::POLLIN, 50) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        loop {
            frames.clear();
            let mut first = zmq::Message::new();
            match socket.recv(&mut first, zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) => break,
                Err(_) => return,
            }
            let mut more = first.get_more();
            frames.push(first);
            while more {
                let mut part = zmq::Message::new();
                if socket.recv(&mut part, 0).is_err() {
                    return;
                }
                more = part.get_more();
                frames.push(part);
            }
            received.fetch_add(1, Ordering::SeqCst);
            // [routing id(s)...][payload]: a ROUTER worker behind a DEALER backend also gets
            // the broker's client id; the reply goes back with the whole envelope.
            let envelope = frames.len() - 1;
            match frames[envelope].first().copied() {
                Some(TAG_ECHO) => {
                    for (i, frame) in frames.drain(..).enumerate() {
                        let flags = if i < envelope { zmq::SNDMORE } else { 0 };
                        let _ = socket.send(frame, flags);
                    }
                }
                Some(tag @ (TAG_LAST | TAG_CREDIT)) => {
                    for frame in frames.drain(..envelope) {
                        let _ = socket.send(frame, zmq::SNDMORE);
                    }
                    let _ = socket.send(if tag == TAG_LAST { ACK } else { CREDIT }, 0);
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn curve_worker_socket(
    ctx: &zmq::Context,
    keys: &zmq::CurveKeyPair,
) -> Result<zmq::Socket, String> {
    let s = ctx.socket(zmq::ROUTER).map_err(zerr("worker socket"))?;
    s.set_linger(0).map_err(zerr("linger"))?;
    s.set_curve_server(true).map_err(zerr("curve server"))?;
    s.set_curve_secretkey(&keys.secret_key)
        .map_err(zerr("curve secret"))?;
    Ok(s)
}

/// A CURVE worker socket bound on 127.0.0.1, with the endpoint it got.
pub(crate) fn bound_curve_worker(
    ctx: &zmq::Context,
    keys: &zmq::CurveKeyPair,
) -> Result<(zmq::Socket, String), String> {
    let s = curve_worker_socket(ctx, keys)?;
    s.bind("tcp://127.0.0.1:0").map_err(zerr("worker bind"))?;
    let endpoint = endpoint_of(&s)?;
    Ok((s, endpoint))
}
