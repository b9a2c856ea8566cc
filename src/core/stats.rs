//! Counters the core keeps; the control socket reports them.

use crate::api::*;
use crate::zmtp::Mechanism;

/// Traffic through one socket, in zmq_proxy_steerable's terms: a message is one data chunk
/// (routing-id frames and connect/disconnect notifications are not counted), bytes are the
/// chunk's payload. Greeting bytes the proxy itself exchanges with a peer are counted on
/// that socket too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideStats {
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
}

/// Why a client connection was refused or a pair closed early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    BadGreeting,
    Mechanism,
    BadCommand,
    HandshakeTimeout,
    WaitTimeout,
    QueueFull,
    BufferOverflow,
    IdleTimeout,
    EarlyOverflow,
    Stalled,
    Denied,
    PerAddress,
    Banned,
    /// ZMQ_PROXY_STREAM_MAX_CONNECTIONS reached.
    Limit,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub frontend: SideStats,
    pub backend: SideStats,
    pub pairs_open: u64,
    pub pairs_total: u64,
    /// Screened idle worker connections, by [`Mechanism::index`].
    pub workers_idle: [u64; 4],
    pub clients_waiting: u64,
    pub reject_bad_greeting: u64,
    pub reject_mechanism: u64,
    pub reject_bad_command: u64,
    pub reject_handshake_timeout: u64,
    pub reject_wait_timeout: u64,
    pub reject_queue_full: u64,
    pub closed_buffer_overflow: u64,
    pub closed_idle_timeout: u64,
    pub closed_early_overflow: u64,
    pub workers_rejected: u64,
    pub workers_recycled: u64,
    pub send_retries: u64,
    pub stray_chunks: u64,
    pub dropped_bytes: u64,
    pub closed_stalled: u64,
    pub backpressure_pauses: u64,
    pub found_gone: u64,
    pub reject_denied: u64,
    pub reject_per_address: u64,
    pub dials: u64,
    pub connect_timeouts: u64,
    /// As of the last [`super::Core::stats_at`]: endpoints go up again with time alone.
    pub endpoints_down: u64,
    pub reject_banned: u64,
    pub handshakes_failed: u64,
    pub events_dropped: u64,
    pub pairs_taken_over: u64,
    pub takeover_fallbacks: u64,
    pub takeover_violations: u64,
    pub workers_lost: u64,
    pub reject_limit: u64,
    pub local_failures: u64,
}

impl Stats {
    pub fn count(&mut self, reason: Reject) {
        let c = match reason {
            Reject::BadGreeting => &mut self.reject_bad_greeting,
            Reject::Mechanism => &mut self.reject_mechanism,
            Reject::BadCommand => &mut self.reject_bad_command,
            Reject::HandshakeTimeout => &mut self.reject_handshake_timeout,
            Reject::WaitTimeout => &mut self.reject_wait_timeout,
            Reject::QueueFull => &mut self.reject_queue_full,
            Reject::BufferOverflow => &mut self.closed_buffer_overflow,
            Reject::IdleTimeout => &mut self.closed_idle_timeout,
            Reject::EarlyOverflow => &mut self.closed_early_overflow,
            Reject::Stalled => &mut self.closed_stalled,
            Reject::Denied => &mut self.reject_denied,
            Reject::PerAddress => &mut self.reject_per_address,
            Reject::Banned => &mut self.reject_banned,
            Reject::Limit => &mut self.reject_limit,
        };
        *c += 1;
    }

    pub fn idle_workers(&self, m: Mechanism) -> u64 {
        self.workers_idle[m.index()]
    }

    /// The eight values of zmq_proxy_steerable's STATISTICS reply, in its order.
    pub fn steerable_frames(&self) -> [u64; 8] {
        let f = &self.frontend;
        let b = &self.backend;
        [
            f.msgs_in,
            f.bytes_in,
            f.msgs_out,
            f.bytes_out,
            b.msgs_in,
            b.bytes_in,
            b.msgs_out,
            b.bytes_out,
        ]
    }

    /// The STREAMSTATS counters, in the order of the ZMQ_PROXY_STREAM_STAT_* constants.
    pub fn stream_counters(&self) -> Vec<u64> {
        let mut v = vec![0u64; ZMQ_PROXY_STREAM_STAT_COUNT as usize];
        let mut set = |i: i32, x: u64| v[i as usize] = x;
        set(ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN, self.pairs_open);
        set(ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL, self.pairs_total);
        set(
            ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL,
            self.workers_idle[0],
        );
        set(
            ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_PLAIN,
            self.workers_idle[1],
        );
        set(
            ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE,
            self.workers_idle[2],
        );
        set(
            ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_GSSAPI,
            self.workers_idle[3],
        );
        set(ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING, self.clients_waiting);
        set(
            ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
            self.reject_bad_greeting,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM,
            self.reject_mechanism,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
            self.reject_bad_command,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT,
            self.reject_handshake_timeout,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_REJECT_WAIT_TIMEOUT,
            self.reject_wait_timeout,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_REJECT_QUEUE_FULL,
            self.reject_queue_full,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW,
            self.closed_buffer_overflow,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_CLOSED_IDLE_TIMEOUT,
            self.closed_idle_timeout,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_WORKERS_REJECTED,
            self.workers_rejected,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_WORKERS_RECYCLED,
            self.workers_recycled,
        );
        set(ZMQ_PROXY_STREAM_STAT_SEND_RETRIES, self.send_retries);
        set(ZMQ_PROXY_STREAM_STAT_STRAY_CHUNKS, self.stray_chunks);
        set(ZMQ_PROXY_STREAM_STAT_DROPPED_BYTES, self.dropped_bytes);
        set(
            ZMQ_PROXY_STREAM_STAT_CLOSED_EARLY_OVERFLOW,
            self.closed_early_overflow,
        );
        set(ZMQ_PROXY_STREAM_STAT_CLOSED_STALLED, self.closed_stalled);
        set(
            ZMQ_PROXY_STREAM_STAT_BACKPRESSURE_PAUSES,
            self.backpressure_pauses,
        );
        set(ZMQ_PROXY_STREAM_STAT_FOUND_GONE, self.found_gone);
        set(ZMQ_PROXY_STREAM_STAT_REJECT_DENIED, self.reject_denied);
        set(
            ZMQ_PROXY_STREAM_STAT_REJECT_PER_ADDRESS,
            self.reject_per_address,
        );
        set(ZMQ_PROXY_STREAM_STAT_DIALS, self.dials);
        set(
            ZMQ_PROXY_STREAM_STAT_CONNECT_TIMEOUTS,
            self.connect_timeouts,
        );
        set(ZMQ_PROXY_STREAM_STAT_ENDPOINTS_DOWN, self.endpoints_down);
        set(ZMQ_PROXY_STREAM_STAT_REJECT_BANNED, self.reject_banned);
        set(
            ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED,
            self.handshakes_failed,
        );
        set(ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED, self.events_dropped);
        set(
            ZMQ_PROXY_STREAM_STAT_PAIRS_TAKEN_OVER,
            self.pairs_taken_over,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_TAKEOVER_FALLBACKS,
            self.takeover_fallbacks,
        );
        set(
            ZMQ_PROXY_STREAM_STAT_TAKEOVER_VIOLATIONS,
            self.takeover_violations,
        );
        set(ZMQ_PROXY_STREAM_STAT_WORKERS_LOST, self.workers_lost);
        set(ZMQ_PROXY_STREAM_STAT_REJECT_LIMIT, self.reject_limit);
        set(ZMQ_PROXY_STREAM_STAT_LOCAL_FAILURES, self.local_failures);
        v
    }
}
