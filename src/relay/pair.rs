//! One taken-over pair: two connections, a direction each way, each direction a buffer and
//! a flow state. Bytes and readiness in, one operation at a time out. Never owns a
//! descriptor: the relay's driver does the reads, writes and shutdowns it asks for.

use std::time::Instant;

use super::buffer::{Buffer, Pool};
use super::{End, IoOutcome, RelayEnd, Totals};
use crate::zmtp::{HandshakeState, HandshakeWatch};

/// Where one direction (named by its source) is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// The source may be read.
    Open,
    /// The source sent its FIN: what is buffered goes out, then the destination's FIN.
    SourceEof,
    /// The destination was shut down for writing after the last byte.
    FinSent,
}

/// What the pair wants done next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// Read from this end into the buffer of the direction it is the source of.
    Read(End),
    /// Write to this end from the buffer of the direction it is the destination of.
    Write(End),
    /// Shut this end down for writing (the other end's FIN, passed on).
    Shutdown(End),
    /// Close both ends; the pair is over.
    Close,
}

/// Readiness of one connection as epoll reported it (edge-triggered: kept until an
/// operation finds it gone).
#[derive(Clone, Copy, Debug, Default)]
struct Ready {
    readable: bool,
    writable: bool,
    /// The peer's FIN (or an error) was reported: reads go on until they say so, even
    /// after a short read, since no further edge will come.
    hung_up: bool,
}

pub(super) struct Pair {
    pub(super) tag: u64,
    ready: [Ready; 2],
    flow: [Flow; 2],
    /// Indexed by source end.
    buf: [Buffer; 2],
    /// Bytes read from each end since the handover.
    pub(super) bytes_read: [u64; 2],
    /// The worker's security handshake, followed in what it sends until it completes.
    watch: Option<Box<HandshakeWatch>>,
    pub(super) handshake: HandshakeState,
    pub(super) last_activity: Instant,
    /// When the first direction ended: the other then has the linger to finish.
    pub(super) linger_from: Option<Instant>,
    first_eof: Option<End>,
    pub(super) ending: Option<RelayEnd>,
    pub(super) in_ready: bool,
}

fn closed_by(end: End) -> RelayEnd {
    match end {
        End::Client => RelayEnd::ClientClosed,
        End::Worker => RelayEnd::WorkerClosed,
    }
}

impl Pair {
    pub(super) fn new(now: Instant, tag: u64, to_worker: Vec<u8>, to_client: Vec<u8>) -> Pair {
        // Writable until a write says otherwise. Not readable until epoll says so: it reports
        // a connection that is readable when registered, and a read that finds nothing
        // would have taken a buffer for nothing.
        let ready = Ready {
            readable: false,
            writable: true,
            hung_up: false,
        };
        Pair {
            tag,
            ready: [ready; 2],
            flow: [Flow::Open; 2],
            buf: [Buffer::with_bytes(to_worker), Buffer::with_bytes(to_client)],
            bytes_read: [0; 2],
            watch: Some(Box::default()),
            handshake: HandshakeState::Running,
            last_activity: now,
            linger_from: None,
            first_eof: None,
            ending: None,
            in_ready: false,
        }
    }

    pub(super) fn on_ready(
        &mut self,
        now: Instant,
        end: End,
        readable: bool,
        writable: bool,
        hung_up: bool,
    ) {
        let r = &mut self.ready[end.index()];
        r.readable |= readable || hung_up;
        r.writable |= writable || hung_up;
        r.hung_up |= hung_up;
        if hung_up {
            // The peer is going (its FIN may sit behind bytes the pair has no room to read
            // yet): from here on the pair must keep moving, as after an end read.
            self.linger_from.get_or_insert(now);
        }
    }

    /// The end that closed first, or the client when neither did.
    pub(super) fn closer(&self) -> RelayEnd {
        closed_by(self.first_eof.unwrap_or(End::Client))
    }

    /// Memory the pair's buffers hold.
    pub(super) fn buffered(&self) -> usize {
        self.buf[0].capacity() + self.buf[1].capacity()
    }

    pub(super) fn buf_data(&self, source: End) -> &[u8] {
        self.buf[source.index()].data()
    }

    pub(super) fn buf_spare<'a>(&'a mut self, source: End, pool: &mut Pool) -> &'a mut [u8] {
        self.buf[source.index()].spare(pool)
    }

    pub(super) fn next_op(&self, paused: bool) -> Option<Op> {
        if self.ending.is_some() {
            return Some(Op::Close);
        }
        if paused {
            return None;
        }
        for src in End::BOTH {
            let dst = src.other();
            if !self.buf[src.index()].is_empty() && self.ready[dst.index()].writable {
                return Some(Op::Write(dst));
            }
        }
        for src in End::BOTH {
            if self.flow[src.index()] == Flow::SourceEof && self.buf[src.index()].is_empty() {
                return Some(Op::Shutdown(src.other()));
            }
        }
        for src in End::BOTH {
            let i = src.index();
            if self.flow[i] == Flow::Open && self.ready[i].readable && self.buf[i].has_room() {
                return Some(Op::Read(src));
            }
        }
        None
    }

    fn fail(&mut self, end: End) {
        self.ending.get_or_insert(closed_by(end));
    }

    /// Applies how `op` went; `asked` is the length of the read room or write slice.
    /// Returns true when the worker's handshake just completed.
    pub(super) fn on_outcome(
        &mut self,
        now: Instant,
        op: Op,
        asked: usize,
        outcome: IoOutcome,
        pool: &mut Pool,
        totals: &mut Totals,
    ) -> bool {
        let mut handshake_now = false;
        match (op, outcome) {
            (Op::Read(src), IoOutcome::Done(0)) => {
                let i = src.index();
                self.flow[i] = Flow::SourceEof;
                self.ready[i].readable = false;
                self.first_eof.get_or_insert(src);
                // From the first end on, the pair must keep moving: a destination that takes
                // nothing of the tail, or a partner that never ends, is given up on after the
                // linger without progress (its peer is gone; nothing more can be owed to it).
                self.linger_from.get_or_insert(now);
            }
            (Op::Read(src), IoOutcome::Done(n)) => {
                let i = src.index();
                totals.reads[i] += 1;
                totals.bytes_in[i] += n as u64;
                self.bytes_read[i] += n as u64;
                self.last_activity = now;
                self.buf[i].filled(n);
                if src == End::Worker {
                    if let Some(watch) = self.watch.as_mut() {
                        let data = self.buf[i].data();
                        let state = watch.feed(&data[data.len() - n..]);
                        if state != HandshakeState::Running {
                            self.watch = None;
                            self.handshake = state;
                            handshake_now = state == HandshakeState::Ready;
                        }
                    }
                }
                // A short read emptied the socket's queue: the next byte brings a new edge.
                if n < asked && !self.ready[i].hung_up {
                    self.ready[i].readable = false;
                }
            }
            (Op::Read(src), IoOutcome::WouldBlock) => {
                let i = src.index();
                self.ready[i].readable = false;
                self.buf[i].release(pool);
            }
            (Op::Write(dst), IoOutcome::Done(n)) => {
                let (src, d) = (dst.other().index(), dst.index());
                totals.writes[d] += 1;
                totals.bytes_out[d] += n as u64;
                self.last_activity = now;
                self.buf[src].consumed(n);
                if n < asked {
                    // The socket's send buffer is full: EPOLLOUT says when it has room.
                    self.ready[d].writable = false;
                }
                let b = &self.buf[src];
                if b.is_empty() && (b.capacity() != pool.size() || !self.ready[src].readable) {
                    self.buf[src].release(pool);
                }
            }
            (Op::Write(dst), IoOutcome::WouldBlock) => self.ready[dst.index()].writable = false,
            (Op::Shutdown(dst), IoOutcome::Done(_)) => {
                self.flow[dst.other().index()] = Flow::FinSent;
                if self.flow[dst.index()] == Flow::FinSent {
                    self.ending = Some(self.closer());
                }
            }
            (Op::Shutdown(dst), IoOutcome::WouldBlock) => self.fail(dst),
            (Op::Read(end) | Op::Write(end) | Op::Shutdown(end), IoOutcome::Failed(_)) => {
                self.fail(end)
            }
            (Op::Close, _) => {}
        }
        handshake_now
    }
}
