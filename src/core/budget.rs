//! The descriptor budget (ZMQ_PROXY_STREAM_MAX_CONNECTIONS): how many connections the proxy
//! may hold, and when dial-out may dial. The core counts connections; the driver measures
//! the process's descriptor limit and passes the budget in as a number.

use std::time::{Duration, Instant};

use super::Side;

/// After a dial failed for a reason of this host (EMFILE, EADDRNOTAVAIL, ...), no dial
/// before this long: retrying at once would only fail again, in a loop.
pub(super) const LOCAL_RETRY: Duration = Duration::from_millis(100);

/// What the proxy may still open.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Budget {
    /// Connections the proxy may hold at once; None: no limit.
    max: Option<usize>,
    /// A local failure holds dials back until then.
    dials_held_until: Option<Instant>,
}

impl Budget {
    pub(super) fn new(max: Option<usize>) -> Budget {
        Budget {
            max,
            dials_held_until: None,
        }
    }

    pub(super) fn max(&self) -> Option<usize> {
        self.max
    }

    /// Whether a connection that just appeared on `side` may stay, with `held` connections
    /// held already, `clients` of them clients. In dial-out a client will need a worker
    /// connection of its own: it is admitted only with room for both, counting every other
    /// client's worker connection as made, so that admitted clients never wait for a dial
    /// that the budget forbids.
    pub(super) fn admits(&self, side: Side, held: usize, clients: usize, dial_out: bool) -> bool {
        let Some(max) = self.max else {
            return true;
        };
        match side {
            Side::Frontend if dial_out => held.max(2 * clients) + 2 <= max,
            _ => held < max,
        }
    }

    /// Whether dial-out may make one more connection now, with `held` held.
    pub(super) fn may_dial(&self, now: Instant, held: usize) -> bool {
        self.max.is_none_or(|max| held < max) && self.dials_held_until.is_none_or(|t| t <= now)
    }

    /// When a dial that may not go now should be tried again: when the hold ends, or
    /// shortly, for connections to close.
    pub(super) fn next_try(&self, now: Instant) -> Instant {
        self.dials_held_until
            .filter(|&t| t > now)
            .unwrap_or(now + LOCAL_RETRY)
    }

    /// A dial failed for a reason of this host: hold dials back for [`LOCAL_RETRY`].
    /// Returns when they may go again.
    pub(super) fn hold_dials(&mut self, now: Instant) -> Instant {
        let until = now + LOCAL_RETRY;
        self.dials_held_until = Some(until);
        until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_admits_everything() {
        let b = Budget::new(None);
        assert!(b.admits(Side::Frontend, usize::MAX - 3, usize::MAX / 4, true));
        assert!(b.admits(Side::Backend, usize::MAX - 1, 0, false));
        assert!(b.may_dial(Instant::now(), usize::MAX - 1));
    }

    #[test]
    fn dial_in_counts_one_per_connection_on_either_side() {
        let b = Budget::new(Some(10));
        assert!(b.admits(Side::Frontend, 9, 5, false));
        assert!(!b.admits(Side::Frontend, 10, 5, false));
        assert!(b.admits(Side::Backend, 9, 0, false));
        assert!(!b.admits(Side::Backend, 10, 0, false));
    }

    #[test]
    fn dial_out_keeps_room_for_each_client_s_worker_connection() {
        let b = Budget::new(Some(10));
        // 4 clients, none dialed yet: 8 reserved, room for one more client (and its worker).
        assert!(b.admits(Side::Frontend, 4, 4, true));
        assert!(!b.admits(Side::Frontend, 5, 5, true));
        // Worker connections lingering after their clients left count as held.
        assert!(!b.admits(Side::Frontend, 9, 2, true));
        assert!(b.may_dial(Instant::now(), 9));
        assert!(!b.may_dial(Instant::now(), 10));
    }

    #[test]
    fn a_local_failure_holds_dials_back_for_a_while() {
        let mut b = Budget::new(None);
        let now = Instant::now();
        let until = b.hold_dials(now);
        assert_eq!(until, now + LOCAL_RETRY);
        assert!(!b.may_dial(now, 0));
        assert!(!b.may_dial(now + LOCAL_RETRY / 2, 0));
        assert!(b.may_dial(until, 0));
        // A dial that waits is tried again when the hold ends, not later.
        assert_eq!(b.next_try(now + LOCAL_RETRY / 2), until);
        assert_eq!(b.next_try(until), until + LOCAL_RETRY);
    }
}
