//! Counters the core keeps; the control socket reports them.

/// Traffic through one socket, in zmq_proxy_steerable's terms: a message is one data chunk
/// (a routing-id frame and connect/disconnect notifications are not counted), bytes are the
/// chunk's payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideStats {
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub frontend: SideStats,
    pub backend: SideStats,
    /// Pairs relaying now.
    pub pairs_open: u64,
    /// Pairs ever formed.
    pub pairs_total: u64,
    /// Client connections waiting for a worker now.
    pub clients_waiting: u64,
    /// Worker connections waiting for a client now.
    pub workers_idle: u64,
    /// Pairs closed because one direction held more than the pair buffer.
    pub closed_buffer_overflow: u64,
    /// Unpaired connections closed because they sent more than a greeting's worth.
    pub closed_early_overflow: u64,
    /// Chunks from routing ids the proxy does not know (late data of a closed connection).
    pub stray_chunks: u64,
    /// Bytes that arrived for a partner that had already left.
    pub dropped_bytes: u64,
    /// Sends that met a full pipe (EAGAIN) and were retried later.
    pub send_retries: u64,
}

impl Stats {
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
}
