//! Dial-out connections the proxy makes itself (ZMQ_PROXY_STREAM_WORKER_ENDPOINT).
//!
//! libzmq keeps a record of every zmq_connect() a socket ever made (about 0.3 KiB each, never
//! given back) and reconnects a dialed connection by itself when it drops. So the proxy
//! dials workers with its own non-blocking connect(2) and reads their greetings on its own
//! descriptors; libzmq never sees these connections. Towards the core nothing changes: the
//! driver feeds it what a STREAM socket would have delivered for those routing ids (a
//! connect notification, data chunks, a disconnect) and routes the core's transmits for them
//! here. Once paired, a connection leaves with its descriptor for a relay thread.

use std::collections::VecDeque;
use std::net::ToSocketAddrs;
use std::os::fd::{AsRawFd, OwnedFd};

use rustc_hash::FxHashMap;

use crate::core::{PeerInfo, SendOutcome};
use crate::relay::IoOutcome;
use crate::relay_io::{self, connect_nonblocking, socket_error, DialAddr, Epoll, Readiness};
use crate::zmq_io::{local_address, peer_address, Errno};

/// Bytes a dialed connection may have waiting to be written before sends are refused
/// (EAGAIN, retried by the core): a STREAM socket's pipe has a bound too.
const MAX_PENDING: usize = 256 << 10;
/// Reads from one connection per turn, so one busy worker does not hold the loop.
const READS_PER_TURN: usize = 16;
const READ_SIZE: usize = 64 << 10;
const EVENTS_PER_WAIT: usize = 64;

/// What happened on a dialed connection, as a STREAM socket would have said it.
pub enum DialEvent {
    /// The TCP connection is up (a STREAM socket's connect notification).
    Connected { id: Vec<u8> },
    /// Bytes from the worker.
    Data {
        id: Vec<u8>,
        bytes: Vec<u8>,
        peer: PeerInfo,
    },
    /// The connection failed or ended; it is closed and forgotten here.
    Lost { id: Vec<u8> },
}

struct DialConn {
    id: Vec<u8>,
    fd: OwnedFd,
    peer: PeerInfo,
    connecting: bool,
    readable: bool,
    writable: bool,
    hung_up: bool,
    pending: Vec<u8>,
    in_ready: bool,
}

pub struct Dialer {
    epoll: Epoll,
    by_id: FxHashMap<Vec<u8>, usize>,
    slots: Vec<Option<DialConn>>,
    free: Vec<usize>,
    ready: VecDeque<usize>,
    /// Connections with bytes to read while the core reads nothing (PAUSE, backpressure).
    parked: Vec<usize>,
    addrs: FxHashMap<String, Option<DialAddr>>,
    raw: Vec<libc::epoll_event>,
    seen: Vec<Readiness>,
}

/// "tcp://host:port" (names resolved once, when first dialed) or "ipc://path".
fn resolve(endpoint: &str) -> Option<DialAddr> {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        return Some(DialAddr::Ipc(path.into()));
    }
    let hostport = endpoint.strip_prefix("tcp://")?;
    let addr = hostport.to_socket_addrs().ok()?.next()?;
    Some(DialAddr::Tcp(addr))
}

impl Dialer {
    pub fn new() -> Result<Dialer, Errno> {
        Ok(Dialer {
            epoll: Epoll::new()?,
            by_id: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            ready: VecDeque::new(),
            parked: Vec::new(),
            addrs: FxHashMap::default(),
            raw: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT],
            seen: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    /// Readable while one of the connections is ready: the driver waits on it with the
    /// sockets' ZMQ_FDs.
    pub fn wait_fd(&self) -> i32 {
        self.epoll.raw()
    }

    /// Whether `id` is one of the connections made here.
    pub fn owns(&self, id: &[u8]) -> bool {
        self.by_id.contains_key(id)
    }

    /// Whether there is work to do without waiting.
    pub fn has_work(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Starts a connection to `endpoint` for the routing id `id`. Unreachable when the
    /// endpoint cannot be dialed at all (unknown transport, unresolvable name, refused at
    /// once); LocalFailure when this host lacks a descriptor, buffer or port for it.
    pub fn connect(&mut self, id: &[u8], endpoint: &str) -> SendOutcome {
        let addr = self
            .addrs
            .entry(endpoint.to_string())
            .or_insert_with(|| resolve(endpoint))
            .clone();
        let Some(addr) = addr else {
            return SendOutcome::Unreachable;
        };
        // A failure of this host (no descriptor, buffer or ephemeral port) is not the
        // endpoint's: the core retries later without marking it down.
        let failed = |e| {
            if crate::descriptors::is_local(e) {
                SendOutcome::LocalFailure
            } else {
                SendOutcome::Unreachable
            }
        };
        let fd = match connect_nonblocking(&addr) {
            Ok(fd) => fd,
            Err(e) => return failed(e),
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        if let Err(e) = self.epoll.add_connection(&fd, slot as u64) {
            self.free.push(slot);
            return failed(e);
        }
        let raw = fd.as_raw_fd();
        self.slots[slot] = Some(DialConn {
            id: id.to_vec(),
            fd,
            peer: PeerInfo {
                fd: raw,
                addr: None,
                local: None,
            },
            connecting: true,
            readable: false,
            writable: false,
            hung_up: false,
            pending: Vec::new(),
            in_ready: false,
        });
        self.by_id.insert(id.to_vec(), slot);
        SendOutcome::Sent
    }

    /// Queues bytes for `id` and writes what the connection takes at once.
    pub fn send(&mut self, id: &[u8], bytes: &[u8]) -> SendOutcome {
        let Some(&slot) = self.by_id.get(id) else {
            return SendOutcome::Unreachable;
        };
        let c = self.slots[slot].as_mut().expect("mapped slot is live");
        if c.pending.len() >= MAX_PENDING {
            return SendOutcome::WouldBlock;
        }
        c.pending.extend_from_slice(bytes);
        if !c.connecting && c.writable {
            self.mark_ready(slot);
        }
        SendOutcome::Sent
    }

    /// Closes `id` (a STREAM socket's `[id][]`): no notification follows.
    pub fn close(&mut self, id: &[u8]) -> SendOutcome {
        match self.remove(id) {
            Some(_) => SendOutcome::Sent,
            None => SendOutcome::Unreachable,
        }
    }

    /// Hands `id`'s connection over (to a relay thread), with bytes not yet written to it.
    pub fn take(&mut self, id: &[u8]) -> Option<(OwnedFd, Vec<u8>)> {
        self.remove(id)
    }

    fn remove(&mut self, id: &[u8]) -> Option<(OwnedFd, Vec<u8>)> {
        let slot = self.by_id.remove(id)?;
        let c = self.slots[slot].take().expect("mapped slot is live");
        self.epoll.remove(&c.fd);
        self.free.push(slot);
        Some((c.fd, c.pending))
    }

    fn mark_ready(&mut self, slot: usize) {
        if let Some(Some(c)) = self.slots.get_mut(slot) {
            if !c.in_ready {
                c.in_ready = true;
                self.ready.push_back(slot);
            }
        }
    }

    /// Takes what epoll reported (call when [`Dialer::wait_fd`] is readable).
    pub fn take_readiness(&mut self) {
        if self.epoll.wait(&mut self.raw, 0, &mut self.seen).is_ok() {
            for i in 0..self.seen.len() {
                let r = self.seen[i];
                let slot = r.token as usize;
                if let Some(Some(c)) = self.slots.get_mut(slot) {
                    c.readable |= r.readable || r.hung_up;
                    c.writable |= r.writable || r.hung_up;
                    c.hung_up |= r.hung_up;
                    self.mark_ready(slot);
                }
            }
        }
    }

    /// Does the work of the ready connections: finishes connects, writes what is queued,
    /// and (while `reading`) reads. Appends what happened to `out`.
    pub fn turn(&mut self, reading: bool, out: &mut Vec<DialEvent>) {
        if reading {
            for slot in std::mem::take(&mut self.parked) {
                self.mark_ready(slot);
            }
        }
        let mut scratch = Vec::new();
        for _ in 0..self.ready.len() {
            let Some(slot) = self.ready.pop_front() else {
                break;
            };
            let Some(Some(c)) = self.slots.get_mut(slot) else {
                continue;
            };
            c.in_ready = false;
            if let Some(lost) = Self::work(c, reading, &mut scratch, out) {
                if lost {
                    let id = c.id.clone();
                    self.remove(&id);
                    out.push(DialEvent::Lost { id });
                }
                continue;
            }
            let c = self.slots[slot].as_mut().expect("live");
            let more_reads = c.readable && !c.connecting;
            let more_writes = c.writable && !c.pending.is_empty() && !c.connecting;
            if more_writes || (more_reads && reading) {
                self.mark_ready(slot);
            } else if more_reads {
                self.parked.push(slot);
            }
        }
    }

    /// One connection's work; Some(true) when it is lost.
    fn work(
        c: &mut DialConn,
        reading: bool,
        scratch: &mut Vec<u8>,
        out: &mut Vec<DialEvent>,
    ) -> Option<bool> {
        if c.connecting {
            if !(c.writable || c.hung_up) {
                return None;
            }
            if socket_error(&c.fd) != 0 {
                return Some(true);
            }
            c.connecting = false;
            let raw = c.fd.as_raw_fd();
            c.peer = PeerInfo {
                fd: raw,
                addr: peer_address(raw),
                local: local_address(raw),
            };
            out.push(DialEvent::Connected { id: c.id.clone() });
        }
        if c.writable && !c.pending.is_empty() {
            match relay_io::write(&c.fd, &c.pending) {
                IoOutcome::Done(n) => {
                    c.pending.drain(..n);
                    if !c.pending.is_empty() {
                        c.writable = false;
                    }
                }
                IoOutcome::WouldBlock => c.writable = false,
                IoOutcome::Failed(_) => return Some(true),
            }
        }
        if !reading {
            return None;
        }
        for _ in 0..READS_PER_TURN {
            if !c.readable {
                break;
            }
            scratch.resize(READ_SIZE, 0);
            match relay_io::read(&c.fd, scratch) {
                IoOutcome::Done(0) | IoOutcome::Failed(_) => return Some(true),
                IoOutcome::Done(n) => {
                    if n < scratch.len() && !c.hung_up {
                        c.readable = false;
                    }
                    out.push(DialEvent::Data {
                        id: c.id.clone(),
                        bytes: scratch[..n].to_vec(),
                        peer: c.peer,
                    });
                }
                IoOutcome::WouldBlock => c.readable = false,
            }
        }
        None
    }
}
