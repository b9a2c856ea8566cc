//! Taking a pair's two TCP connections out of libzmq, on the proxy's thread.
//!
//! At pairing both peers are silent by protocol (the client waits for the answer to its
//! first command, the worker for the end of the proxy's greeting), so nothing is in flight
//! inside libzmq. The proxy duplicates each connection's descriptor (ZMQ_SRCFD), checks that
//! the duplicate names the connection recorded when it connected, and sends `[id][]`: libzmq
//! then removes its descriptor from its poller and closes it without a shutdown, and the
//! connection lives on in the duplicate. That close happens later, in libzmq's I/O thread,
//! and until then libzmq may still read from the connection, so the pair waits here, with
//! nothing written to either peer, until both original descriptors are gone.

use std::os::fd::{OwnedFd, RawFd};
use std::time::Instant;

use crate::core::PeerInfo;
use crate::relay::RelayEnd;
use crate::relay_io::{bytes_consumed, released_by_libzmq, take_connection};
use crate::relay_thread::NewPair;

/// A duplicate of libzmq's descriptor of a connection, checked to name that connection, or
/// None when it cannot be taken; `local_failure` is set when that is for want of a
/// descriptor (or memory) on this host rather than anything about the connection.
pub fn duplicate(p: PeerInfo, local_failure: &mut bool) -> Option<OwnedFd> {
    match take_connection(p.fd, p.addr?, p.local?) {
        Ok(fd) => fd,
        Err(e) => {
            *local_failure |= crate::descriptors::is_local(e);
            None
        }
    }
}

struct Pending {
    pair: NewPair,
    /// libzmq's descriptors, client's then worker's (None: the proxy's own, dial-out).
    originals: [Option<RawFd>; 2],
    /// Bytes libzmq delivered from each.
    received: [u64; 2],
    deadline: Instant,
}

/// Pairs whose connections libzmq was asked to let go of and has not closed yet.
#[derive(Default)]
pub struct Takeovers {
    pending: Vec<Pending>,
}

impl Takeovers {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn push(
        &mut self,
        pair: NewPair,
        originals: [Option<RawFd>; 2],
        received: [u64; 2],
        deadline: Instant,
    ) {
        self.pending.push(Pending {
            pair,
            originals,
            received,
            deadline,
        });
    }

    /// Forgets a pending pair (closing its duplicates); false if it is not pending.
    pub fn abort(&mut self, tag: u64) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.pair.tag != tag);
        self.pending.len() != before
    }

    /// Pairs libzmq has let go of, ready for a relay thread; and tags of pairs that cannot
    /// be relayed (their duplicates are closed): libzmq did not let go by their deadline, or
    /// it read bytes from a connection that it never delivered (a peer that spoke while it
    /// should have been silent), which would leave a hole in the stream.
    pub fn settle(
        &mut self,
        now: Instant,
        ready: &mut Vec<NewPair>,
        failed: &mut Vec<(u64, RelayEnd)>,
    ) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let released = (0..2).all(|e| {
                p.originals[e].is_none_or(|orig| released_by_libzmq(orig, &p.pair.fds[e]))
            });
            if released {
                let p = self.pending.swap_remove(i);
                // A kernel that does not tell (None) leaves the protocol's quiet moment as
                // the only guarantee.
                let whole = (0..2)
                    .all(|e| bytes_consumed(&p.pair.fds[e]).is_none_or(|n| n == p.received[e]));
                if whole {
                    ready.push(p.pair);
                } else {
                    failed.push((p.pair.tag, RelayEnd::Aborted));
                }
            } else if now >= p.deadline {
                failed.push((self.pending.swap_remove(i).pair.tag, RelayEnd::NotReleased));
            } else {
                i += 1;
            }
        }
    }
}
