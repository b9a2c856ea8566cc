//! A TCP relay between a real libzmq client and its server that alters one ZMTP command
//! the client sends (RFC 23 framing): how the tests make a malformed CURVE HELLO or
//! INITIATE around an otherwise valid handshake, without any CurveZMQ code of their own.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::Background;

/// The greeting's length (RFC 23): it passes unaltered.
const GREETING: usize = 64;

/// What happens to the client's command number `command` (0 is HELLO, 1 is INITIATE).
#[derive(Clone, Debug)]
pub enum Tamper {
    /// The whole frame (flags, size and body) is replaced by these bytes.
    Replace { command: usize, frame: Vec<u8> },
    /// The body byte at `offset` is set to `value`.
    Set {
        command: usize,
        offset: usize,
        value: u8,
    },
    /// The body byte at `offset` is inverted.
    Flip { command: usize, offset: usize },
}

impl Tamper {
    fn command(&self) -> usize {
        match self {
            Tamper::Replace { command, .. }
            | Tamper::Set { command, .. }
            | Tamper::Flip { command, .. } => *command,
        }
    }

    /// `frame` (header `header` bytes long) as it goes on.
    fn apply(&self, mut frame: Vec<u8>, header: usize) -> Vec<u8> {
        match self {
            Tamper::Replace { frame: f, .. } => return f.clone(),
            Tamper::Set { offset, value, .. } => frame[header + offset] = *value,
            Tamper::Flip { offset, .. } => frame[header + offset] ^= 0xFF,
        }
        frame
    }
}

/// The relay: listens on `endpoint`; each connection is relayed to the target, with the
/// tamper applied to what the client sends.
pub struct TamperRelay {
    pub endpoint: String,
    /// Commands altered so far (one per connection that got that far).
    pub tampered: Arc<AtomicUsize>,
    _thread: Background,
}

impl TamperRelay {
    pub fn start(target: &str, tamper: Tamper) -> TamperRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("tcp://").to_owned();
        let tampered = Arc::new(AtomicUsize::new(0));
        let tampered2 = tampered.clone();
        let thread = Background::spawn(move |stop| {
            let mut pumps = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(&target) else {
                            continue; // the client sees EOF and tries again
                        };
                        client.set_nonblocking(false).unwrap();
                        for s in [&client, &server] {
                            s.set_nodelay(true).unwrap();
                            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                        }
                        let up = Pump {
                            from: client.try_clone().unwrap(),
                            to: server.try_clone().unwrap(),
                            tamper: Some((tamper.clone(), tampered2.clone())),
                        };
                        let down = Pump {
                            from: server,
                            to: client,
                            tamper: None,
                        };
                        for pump in [up, down] {
                            let stop = stop.clone();
                            pumps.push(std::thread::spawn(move || pump.run(&stop)));
                        }
                    }
                    // Nothing to accept: look again shortly (the relay's own loop).
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for p in pumps {
                let _ = p.join();
            }
        });
        TamperRelay {
            endpoint,
            tampered,
            _thread: thread,
        }
    }
}

/// One direction of one relayed connection.
struct Pump {
    from: TcpStream,
    to: TcpStream,
    tamper: Option<(Tamper, Arc<AtomicUsize>)>,
}

impl Pump {
    fn run(mut self, stop: &AtomicBool) {
        let mut pending = Vec::new();
        // Bytes of the greeting still to pass, then commands seen (None: pass everything).
        let mut greeting_left = GREETING;
        let mut commands = self.tamper.as_ref().map(|_| 0usize);
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            let n = match self.from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => break,
            };
            pending.extend_from_slice(&buf[..n]);
            let out = self.take_ready(&mut pending, &mut greeting_left, &mut commands);
            if self.to.write_all(&out).is_err() {
                break;
            }
        }
        let _ = self.to.shutdown(Shutdown::Write);
    }

    /// What of `pending` may go on now. The greeting passes as it comes (libzmq sends it in
    /// steps and waits for the other side's in between); then whole frames, the one to
    /// tamper with altered; after it, everything as it comes.
    fn take_ready(
        &self,
        pending: &mut Vec<u8>,
        greeting_left: &mut usize,
        commands: &mut Option<usize>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let g = (*greeting_left).min(pending.len());
        out.extend(pending.drain(..g));
        *greeting_left -= g;
        if *greeting_left > 0 {
            return out;
        }
        while let (Some(seen), Some((tamper, count))) = (*commands, &self.tamper) {
            let Some((header, body)) = frame_size(pending) else {
                return out; // an incomplete frame waits for its rest
            };
            let frame: Vec<u8> = pending.drain(..header + body).collect();
            let is_command = frame[0] & 0x04 != 0;
            if is_command && seen == tamper.command() {
                out.extend(tamper.apply(frame, header));
                count.fetch_add(1, Ordering::SeqCst);
                *commands = None;
            } else {
                out.extend(frame);
                *commands = Some(seen + usize::from(is_command));
            }
        }
        out.append(pending);
        out
    }
}

/// The header and body sizes of the complete ZMTP 3 frame at the start of `bytes` (flags
/// bit 1 says an 8-byte size follows, else a 1-byte one), or None while it is incomplete.
fn frame_size(bytes: &[u8]) -> Option<(usize, usize)> {
    let flags = *bytes.first()?;
    let (header, body) = if flags & 0x02 != 0 {
        let size: [u8; 8] = bytes.get(1..9)?.try_into().unwrap();
        (9, u64::from_be_bytes(size) as usize)
    } else {
        (2, *bytes.get(1)? as usize)
    };
    (bytes.len() >= header + body).then_some((header, body))
}
