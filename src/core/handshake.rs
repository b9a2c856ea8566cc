//! Screening: the proxy's side of each ZMTP greeting, and the judgement of a client's first
//! handshake command, before a connection may cost a worker anything.

use std::time::Instant;

use super::{Conn, Core, Key, Reject, Side, State};
use crate::zmtp::{self, Parsed, Violation, MAX_FIRST_COMMAND};

impl<P: AsRef<[u8]>> Core<P> {
    /// Bytes from a connection that is still being screened (or an idle worker, which must
    /// stay silent until the proxy completes its greeting).
    pub(super) fn on_handshake_bytes(&mut self, now: Instant, key: Key, bytes: &[u8]) {
        let conn = self.conns.get_mut(key).expect("live conn");
        if matches!(conn.state, State::Idle(_)) {
            // A worker speaks only after the greeting's end, which it has not had yet.
            self.reject(now, key, Reject::BadGreeting);
            return;
        }
        conn.handshake.extend_from_slice(bytes);
        match conn.side {
            Side::Frontend => self.screen_client(now, key),
            Side::Backend => self.screen_worker(now, key),
        }
    }

    fn screen_client(&mut self, now: Instant, key: Key) {
        let conn = self.conns.get_mut(key).expect("live conn");
        let State::ClientHandshake { greeting } = conn.state else {
            unreachable!("screening a client in state {:?}", conn.state);
        };
        let greeting = match greeting {
            Some(g) => g,
            None => match zmtp::parse_greeting(&conn.handshake) {
                Parsed::Incomplete => return,
                Parsed::Invalid(_) => return self.reject(now, key, Reject::BadGreeting),
                Parsed::Done { value: g, len } => {
                    if g.as_server && g.mechanism.has_roles() {
                        return self.reject(now, key, Reject::BadGreeting);
                    }
                    // In dial-out, also a mechanism that every worker endpoint is known not
                    // to offer: refused here, before any worker is dialed for it.
                    if !self.limits.mechanisms.contains(g.mechanism)
                        || self.endpoints.refuses(g.mechanism)
                    {
                        return self.reject(now, key, Reject::Mechanism);
                    }
                    conn.handshake.drain(..len);
                    conn.state = State::ClientHandshake { greeting: Some(g) };
                    let rest = zmtp::greeting_rest(g.mechanism, g.mechanism.has_roles());
                    self.send_owned(key, rest.to_vec());
                    g
                }
            },
        };
        let conn = self.conns.get_mut(key).expect("live conn");
        let verdict = match zmtp::parse_command(&conn.handshake, MAX_FIRST_COMMAND) {
            Parsed::Incomplete => return,
            Parsed::Invalid(v) => Err(v),
            Parsed::Done { value, .. } => zmtp::check_first_command(greeting.mechanism, &value),
        };
        if let Err(Violation::BadCommand | Violation::BadGreeting) = verdict {
            return self.reject(now, key, Reject::BadCommand);
        }
        // Only a client that would really wait counts against the queue's bound.
        let worker_at_hand = if self.endpoints.active() {
            self.endpoints.any_up(now)
        } else {
            self.stats.workers_idle[greeting.mechanism.index()] > 0
        };
        let served_at_once = worker_at_hand && self.pair_slots_left();
        if !served_at_once && self.stats.clients_waiting as usize >= self.limits.max_waiting {
            return self.reject(now, key, Reject::QueueFull);
        }
        let conn = self.conns.get_mut(key).expect("live conn");
        // The first command and anything after it go to the worker, untouched.
        let bytes = std::mem::take(&mut conn.handshake);
        conn.early.push_owned(bytes);
        conn.state = State::Waiting(greeting.mechanism);
        self.enter_waiting(now, key, greeting.mechanism);
    }

    fn screen_worker(&mut self, now: Instant, key: Key) {
        let conn: &mut Conn<P> = self.conns.get_mut(key).expect("live conn");
        match zmtp::parse_greeting(&conn.handshake) {
            Parsed::Incomplete => {}
            Parsed::Invalid(_) => self.reject(now, key, Reject::BadGreeting),
            Parsed::Done { value: g, len } => {
                // The as-server flag is not checked: libzmq 4.3 leaves it 0 on servers too
                // (it zero-fills everything after the mechanism name).
                if conn.handshake.len() > len {
                    return self.reject(now, key, Reject::BadGreeting);
                }
                if !self.limits.mechanisms.contains(g.mechanism) {
                    return self.reject(now, key, Reject::Mechanism);
                }
                conn.handshake = Vec::new();
                if conn.dial.is_some() {
                    return self.on_dialed_greeting(now, key, g.mechanism);
                }
                conn.state = State::Idle(g.mechanism);
                self.enter_idle(now, key, g.mechanism);
            }
        }
    }
}
