//! What the driver sends next, and what happens after libzmq took it or refused it.

use std::time::Instant;

use super::timers::TimerKind;
use super::{Chunk, Conn, Core, Gone, Key, PeerInfo, Side, State};

/// How a send the core asked for went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// libzmq took it.
    Sent,
    /// EAGAIN: the connection's pipe is full (or it is going away). Try again later.
    WouldBlock,
    /// EHOSTUNREACH: libzmq no longer knows this connection.
    Unreachable,
    /// Close only: this many bytes handed to libzmq earlier are not acknowledged yet.
    NotDrained(usize),
    /// Close only: everything was acknowledged and the driver half-closed the TCP
    /// connection (FIN after the data); the peer closing its side ends the connection.
    HalfClosed,
    /// Connect only: this host could not make the connection (socket(2) or connect(2)
    /// failed with EMFILE, ENFILE, ENOBUFS, ENOMEM or EADDRNOTAVAIL); the endpoint is not
    /// to blame.
    LocalFailure,
}

/// What to do with a connection, named by socket and routing id.
pub enum TransmitKind<'a, P> {
    /// Send `[id][chunk]`. On success the chunk may be left empty (moved into libzmq).
    Data(&'a mut Chunk<P>),
    /// Send `[id][]`, which closes the connection. When `check_drained` is set the driver
    /// first checks that the `sent` bytes handed to libzmq for this connection so far have
    /// all been acknowledged by the peer (they may still sit in libzmq's pipe, its write
    /// buffer or the kernel) and answers [`SendOutcome::NotDrained`] if not. When `force` is set, libzmq has refused the close
    /// for longer than the linger (its pipe to a peer that reads nothing stays full,
    /// libzmq #4828): the driver shuts the TCP socket down under libzmq, which then drops
    /// the connection itself.
    Close {
        check_drained: bool,
        force: bool,
        sent: u64,
        half_closed: bool,
    },
    /// Check that the connection's TCP socket is still the one the driver reported
    /// ([`Transmit::peer`]): answer Sent if so, Unreachable if it is gone. libzmq loses
    /// disconnect notifications when its pipe is full; this finds such connections.
    Probe,
    /// Dial-out: set ZMQ_CONNECT_ROUTING_ID to the transmit's id and zmq_connect() the
    /// backend to `endpoint`. Answer Sent, or Unreachable if libzmq refused.
    Connect { endpoint: &'a str },
}

#[must_use]
pub struct Transmit<'a, P> {
    pub side: Side,
    pub id: &'a [u8],
    /// The connection's socket, if the driver reported it.
    pub peer: Option<PeerInfo>,
    pub kind: TransmitKind<'a, P>,
    pub token: TransmitToken,
}

/// Names the transmit in [`Core::on_transmit`].
#[must_use]
#[derive(Clone, Copy, Debug)]
pub struct TransmitToken {
    key: Key,
    what: What,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Data,
    Close,
    Probe,
    Connect,
}

impl<P: AsRef<[u8]>> Core<P> {
    fn has_work(conn: &Conn<P>) -> bool {
        !conn.out.is_empty()
            || conn.probe_due
            || conn.connect_due
            || matches!(conn.state, State::Closing { .. })
    }

    fn extend_linger(conn: &mut Conn<P>, until: Instant) {
        if let State::Closing {
            flush: true,
            deadline,
        } = &mut conn.state
        {
            *deadline = (*deadline).max(until);
        }
    }

    pub(super) fn mark_ready(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.in_ready || conn.blocked_until.is_some() || !Self::has_work(conn) {
            return;
        }
        conn.in_ready = true;
        self.ready.push_back(key);
    }

    /// Takes `key` (the front of the ready queue) out of the queue until its retry delay
    /// has passed; `back_off` doubles the delay for the time after.
    fn retry_later(&mut self, now: Instant, key: Key, back_off: bool) {
        let retry_max = self.limits.retry_max;
        let conn = self.conns.get_mut(key).expect("live conn");
        let retry = conn.retry;
        if back_off {
            conn.retry = (retry * 2).min(retry_max);
        }
        conn.in_ready = false;
        self.ready.pop_front();
        self.block(key, now + retry);
    }

    fn block(&mut self, key: Key, until: Instant) {
        let conn = self.conns.get_mut(key).expect("live conn");
        conn.blocked_until = Some(until);
        self.timers.arm(until, key, TimerKind::Retry);
    }

    /// The next send to make, if any. Call [`Core::on_transmit`] with its token before asking
    /// again.
    pub fn next_transmit(&mut self, now: Instant) -> Option<Transmit<'_, P>> {
        if self.paused {
            return None;
        }
        self.fire_timers(now);
        loop {
            let key = *self.ready.front()?;
            let settle = self.limits.close_settle;
            let conn = match self.conns.get_mut(key) {
                Some(c) if c.in_ready && c.blocked_until.is_none() && Self::has_work(c) => c,
                Some(c) => {
                    c.in_ready = false;
                    self.ready.pop_front();
                    continue;
                }
                None => {
                    self.ready.pop_front();
                    continue;
                }
            };
            if let State::Closing {
                flush: true,
                deadline,
            } = conn.state
            {
                if now >= deadline && !conn.out.is_empty() {
                    // The peer stopped reading; what it never took is dropped with it.
                    conn.out.clear();
                }
            }
            if conn.connect_due {
                let conn = self.conns.get(key).expect("checked above");
                let endpoint = conn.dial.expect("only dialed connections connect").endpoint;
                return Some(Transmit {
                    side: conn.side,
                    id: conn.id.as_bytes(),
                    peer: None,
                    kind: TransmitKind::Connect {
                        endpoint: self.endpoints.addr(endpoint),
                    },
                    token: TransmitToken {
                        key,
                        what: What::Connect,
                    },
                });
            }
            if !conn.out.is_empty() {
                let conn = self.conns.get_mut(key).expect("checked above");
                return Some(Transmit {
                    side: conn.side,
                    id: conn.id.as_bytes(),
                    peer: conn.peer,
                    kind: TransmitKind::Data(conn.out.front_mut().expect("not empty")),
                    token: TransmitToken {
                        key,
                        what: What::Data,
                    },
                });
            }
            if conn.probe_due {
                let conn = self.conns.get_mut(key).expect("checked above");
                return Some(Transmit {
                    side: conn.side,
                    id: conn.id.as_bytes(),
                    peer: conn.peer,
                    kind: TransmitKind::Probe,
                    token: TransmitToken {
                        key,
                        what: What::Probe,
                    },
                });
            }
            let State::Closing { flush, deadline } = conn.state else {
                unreachable!("has_work without data or probe means closing");
            };
            // Give libzmq's I/O thread a moment to move what we handed it into the kernel
            // before asking whether it left (libzmq #4763 cuts the tail of a close that
            // follows data too closely).
            if flush {
                if let Some(last) = conn.last_sent {
                    if now < last + settle {
                        conn.in_ready = false;
                        self.ready.pop_front();
                        self.block(key, last + settle);
                        continue;
                    }
                }
            }
            let conn = self.conns.get_mut(key).expect("checked above");
            return Some(Transmit {
                side: conn.side,
                id: conn.id.as_bytes(),
                peer: conn.peer,
                kind: TransmitKind::Close {
                    check_drained: flush && now < deadline && conn.last_sent.is_some(),
                    force: now >= deadline,
                    sent: conn.bytes_sent,
                    half_closed: conn.half_closed,
                },
                token: TransmitToken {
                    key,
                    what: What::Close,
                },
            });
        }
    }

    /// Reports how the transmit named by `token` went.
    pub fn on_transmit(&mut self, now: Instant, token: TransmitToken, outcome: SendOutcome) {
        let key = token.key;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if token.what == What::Connect {
            self.ready.pop_front();
            conn.in_ready = false;
            conn.connect_due = false;
            if outcome == SendOutcome::Sent {
                self.mark_ready(key);
            } else if outcome == SendOutcome::LocalFailure {
                self.dial_failed_locally(now, key);
            } else {
                // libzmq refused the endpoint: no pipe exists, nothing to close. If its
                // worker died, the pairs it cut mid-handshake are no client's fault.
                let worker = self.worker_id(self.conns.get(key).expect("live conn"));
                self.worker_ended_unexplained(now, worker);
                self.abandon_dial(now, key);
                self.forget(key, false, now);
            }
            return;
        }
        if token.what == What::Probe {
            self.ready.pop_front();
            conn.in_ready = false;
            conn.probe_due = false;
            if outcome == SendOutcome::Unreachable {
                self.stats.found_gone += 1;
                self.on_gone(now, key, Gone::Unreachable);
            } else {
                if let Some(t) = self.limits.probe_interval {
                    self.timers.arm(now + t, key, TimerKind::Probe);
                }
                self.mark_ready(key);
            }
            return;
        }
        match (token.what == What::Close, outcome) {
            (false, SendOutcome::Sent) => {
                let len = conn.out.pop_sent();
                conn.last_sent = Some(now);
                conn.last_activity = now;
                conn.bytes_sent += len as u64;
                // A peer that takes bytes is alive: a pending close waits for it anew.
                Self::extend_linger(conn, now + self.limits.close_linger);
                if conn.over {
                    conn.last_progress = now;
                    if conn.out.charge() <= self.limits.pair_buffer / 2 {
                        self.release(key);
                    }
                }
                let conn = self.conns.get_mut(key).expect("live");
                conn.retry = self.limits.retry_min;
                let side = conn.side;
                let more = Self::has_work(conn);
                if !more {
                    conn.in_ready = false;
                }
                let s = self.side_stats(side);
                s.msgs_out += 1;
                s.bytes_out += len as u64;
                let front = self.ready.pop_front();
                debug_assert_eq!(front, Some(key));
                if more {
                    // To the back, so that one busy connection cannot starve the others.
                    self.ready.push_back(key);
                }
            }
            // LocalFailure answers only a connect; anything else saying it is a broken send.
            (true, SendOutcome::Sent)
            | (true, SendOutcome::Unreachable)
            | (true, SendOutcome::LocalFailure) => {
                self.ready.pop_front();
                self.forget(key, true, now);
            }
            (false, SendOutcome::Unreachable) | (false, SendOutcome::LocalFailure) => {
                self.ready.pop_front();
                conn.in_ready = false;
                self.on_gone(now, key, Gone::Unreachable);
            }
            (_, SendOutcome::HalfClosed) => {
                // The peer now reads what is left in its buffers, sees the end of the stream
                // and closes; closing from our side first could reset the connection and
                // destroy data the peer's kernel acknowledged but its program had not read.
                conn.half_closed = true;
                conn.drain_pending = 0;
                Self::extend_linger(conn, now + self.limits.close_linger);
                self.retry_later(now, key, false);
            }
            (_, SendOutcome::WouldBlock) | (_, SendOutcome::NotDrained(_)) => {
                if let SendOutcome::NotDrained(pending) = outcome {
                    // Any change means the connection moves: the peer read, or libzmq moved
                    // more of what it holds into the kernel because the peer read. A peer
                    // still reading gets the linger anew; one that stopped does not.
                    if pending != conn.drain_pending {
                        conn.drain_pending = pending;
                        Self::extend_linger(conn, now + self.limits.close_linger);
                    }
                } else {
                    self.stats.send_retries += 1;
                }
                self.retry_later(now, key, true);
            }
        }
    }
}
