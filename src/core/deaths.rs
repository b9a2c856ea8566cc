//! Telling a worker that died from a worker that refused a client (ZMQ_PROXY_STREAM_FAIL_BAN).
//!
//! A worker that refuses a client's CURVE key closes that one connection without a word;
//! a worker process that dies has the kernel close all its connections at once, and the
//! pairs mid-handshake among them look the same as refusals. So a silent close during the
//! handshake is held for [`DEATH_WINDOW`] before it becomes a strike against the client's
//! address; if within that window (before or after) the same worker ends a connection in a
//! way no client explains, its held failures are excused: the worker was lost, the clients
//! did nothing wrong. Unexplained ends: a dial-in worker connection closing while idle or
//! greeting, a pair closed by its worker after a completed handshake, a failed pair of
//! another client address that was in flight at the same time, in dial-out a connection to
//! the endpoint failing before it paired.
//!
//! A client that reconnects after a failure and fails again is no death: its new pair
//! formed after the worker had closed the old one. That confirms the address's held
//! failures at once, so a wrong-key client is banned on its second attempt as before.
//! A ZAP ERROR is an explicit refusal and never held, and nor is a failure of an address
//! already banned in its current run of offences (so repeat bans cost one connection each).
//!
//! A worker is known by its address in dial-in (the connections of one worker differ only
//! by port; workers sharing a host share it) and by its endpoint in dial-out.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Conn, Core};

/// How long a silent handshake failure waits for evidence of its worker's death. The
/// kernel closes a dead process's connections together; libzmq and the relay report them
/// within milliseconds, so this leaves a wide margin on a loaded host.
pub(super) const DEATH_WINDOW: Duration = Duration::from_millis(300);

/// Workers whose last unexplained end is remembered before the old ones are swept.
const MAX_REMEMBERED: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum WorkerId {
    /// Dial-in: the worker connections' address (None: no IP, ipc://).
    Host(Option<IpAddr>),
    /// Dial-out: the endpoint's index.
    Endpoint(usize),
}

/// A silent handshake failure not yet judged.
#[derive(Clone, Copy, Debug)]
struct Held {
    ip: IpAddr,
    worker: WorkerId,
    /// When the worker closed it.
    ended: Instant,
    dialed: bool,
}

#[derive(Default)]
pub(super) struct Deaths {
    /// Oldest first: all wait the same window, so this is deadline order too.
    held: VecDeque<Held>,
    /// When each worker last ended a connection in a way no client explains.
    unexplained: rustc_hash::FxHashMap<WorkerId, Instant>,
}

impl<P: AsRef<[u8]>> Core<P> {
    pub(super) fn worker_id(&self, w: &Conn<P>) -> WorkerId {
        match w.dial {
            Some(d) => WorkerId::Endpoint(d.endpoint),
            None => WorkerId::Host(
                w.peer
                    .and_then(|p| p.addr)
                    .map(|a| super::policy::address_key(a.ip())),
            ),
        }
    }

    /// A worker ended a connection in a way no client's address explains: its held
    /// failures, and any within the window to come, are excused.
    pub(super) fn worker_ended_unexplained(&mut self, now: Instant, worker: WorkerId) {
        let d = &mut self.deaths;
        if d.unexplained.len() >= MAX_REMEMBERED {
            d.unexplained.retain(|_, t| *t + DEATH_WINDOW > now);
        }
        d.unexplained.insert(worker, now);
        let (excused, kept): (VecDeque<Held>, VecDeque<Held>) =
            d.held.drain(..).partition(|h| h.worker == worker);
        d.held = kept;
        for h in excused {
            self.excuse(h.dialed);
        }
    }

    /// A pair's worker closed during the handshake without an ERROR.
    pub(super) fn silent_failure(
        &mut self,
        now: Instant,
        ip: Option<IpAddr>,
        worker: WorkerId,
        paired: Instant,
        dialed: bool,
    ) {
        let Some(ip) = ip else {
            // No address to ban (ipc://): a failure, nothing to judge.
            self.stats.handshakes_failed += 1;
            return;
        };
        let d = &self.deaths;
        if d.unexplained
            .get(&worker)
            .is_some_and(|t| *t + DEATH_WINDOW > now)
        {
            return self.excuse(dialed);
        }
        // Another address's pair on this worker that was still in flight when this one
        // formed, closed too: two clients' handshakes cut at once.
        if d.held
            .iter()
            .any(|h| h.worker == worker && h.ip != ip && h.ended >= paired)
        {
            self.excuse(dialed);
            return self.worker_ended_unexplained(now, worker);
        }
        // An address in a run of offences (banned before, its repeat period not over)
        // strikes at once: holding its failure would cost the workers one connection more
        // per ban (the hold, then the attempt that confirms it), and issue 11 bounds a
        // wrong-key client to 3 connections in 60 s. The price: a worker dying mid-handshake
        // within that period counts against such an address, which had a real offender.
        if self
            .failures
            .get(&ip)
            .is_some_and(|f| f.bans > 0 && f.repeat_until.is_some_and(|t| t > now))
        {
            return self.strike(now, ip);
        }
        // The address failed before this pair even formed: it came back and failed again.
        if d.held.iter().any(|h| h.ip == ip && h.ended < paired) {
            let (mine, kept): (VecDeque<Held>, VecDeque<Held>) =
                self.deaths.held.drain(..).partition(|h| h.ip == ip);
            self.deaths.held = kept;
            for _ in mine {
                self.strike(now, ip);
            }
            return self.strike(now, ip);
        }
        self.deaths.held.push_back(Held {
            ip,
            worker,
            ended: now,
            dialed,
        });
    }

    /// A failed handshake counted against the client's address.
    pub(super) fn strike(&mut self, now: Instant, ip: IpAddr) {
        self.stats.handshakes_failed += 1;
        self.count_failure(now, ip);
    }

    /// A failure put down to its worker's death: a lost worker connection, no failed
    /// handshake. In dial-in the pair's end counted the lost connection already.
    fn excuse(&mut self, dialed: bool) {
        if dialed {
            self.stats.workers_lost += 1;
        }
    }

    /// Held failures whose window passed without evidence of a death become strikes.
    pub(super) fn judge_held(&mut self, now: Instant) {
        while let Some(h) = self.deaths.held.front() {
            if h.ended + DEATH_WINDOW > now {
                return;
            }
            let h = self.deaths.held.pop_front().expect("front exists");
            self.strike(h.ended + DEATH_WINDOW, h.ip);
        }
    }

    /// When the oldest held failure is to be judged.
    pub(super) fn next_judgement(&self) -> Option<Instant> {
        self.deaths.held.front().map(|h| h.ended + DEATH_WINDOW)
    }

    /// The address completed a handshake: its held failures were failures, but its record
    /// is cleared all the same.
    pub(super) fn forgive_held(&mut self, ip: IpAddr) {
        let before = self.deaths.held.len();
        self.deaths.held.retain(|h| h.ip != ip);
        self.stats.handshakes_failed += (before - self.deaths.held.len()) as u64;
    }
}
