//! The core's limits and timings: what the options API sets.

use std::time::Duration;

use super::AddressPolicy;
use crate::zmtp::MechanismSet;

/// Limits and timings of the core. All have working defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Mechanisms clients may use and workers may offer.
    pub mechanisms: MechanismSet,
    /// Which client addresses are admitted, and how many connections each may hold.
    pub policy: AddressPolicy,
    /// Greeting plus first command must arrive within this time of connecting.
    pub handshake_timeout: Option<Duration>,
    /// A screened client waits at most this long for a worker.
    pub wait_timeout: Option<Duration>,
    /// Screened clients that may wait at once.
    pub max_waiting: usize,
    /// Pairs relaying at once.
    pub max_pairs: Option<usize>,
    /// Memory one direction of a pair may hold in the proxy before the pair is closed.
    pub pair_buffer: usize,
    /// Push back on the source socket instead of closing a pair whose buffer is full.
    pub backpressure: bool,
    /// With `backpressure`, a destination taking nothing for this long is closed.
    pub stall_timeout: Option<Duration>,
    /// A pair without traffic for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Quiet pairs have their connections checked at this interval.
    pub probe_interval: Option<Duration>,
    /// Idle worker connections older than this are closed (to come back fresh).
    pub worker_max_age: Option<Duration>,
    /// Bytes a screened client may send while it waits for a worker.
    pub early_buffer: usize,
    /// First wait before retrying a send that met a full pipe; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// After the last bytes to a closing connection were handed to libzmq, wait this long
    /// before asking whether they left the machine.
    pub close_settle: Duration,
    /// Give up waiting for forwarded bytes to leave, and for libzmq to accept the close,
    /// after this long.
    pub close_linger: Duration,
    /// How long ids of connections the proxy closed are remembered, to ignore their late
    /// notifications and data.
    pub tombstone_ttl: Duration,
    /// Dial-out: the worker endpoints the proxy connects to (empty: dial-in).
    pub worker_endpoints: Vec<String>,
    /// Dial-out: a worker connection must greet within this time.
    pub connect_timeout: Option<Duration>,
    /// Report pairs and refused clients as events.
    pub events: bool,
    /// Take paired connections out of libzmq and relay them directly.
    pub takeover: bool,
    /// Threads relaying taken-over pairs.
    pub relay_threads: usize,
    /// ZMQ_PROXY_STREAM_MAX_CONNECTIONS as set: -1 derived by the driver from the
    /// process's descriptor limit at run start, 0 no limit, n at most n connections.
    pub max_connections: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            mechanisms: MechanismSet::ALL,
            policy: AddressPolicy::default(),
            handshake_timeout: Some(Duration::from_millis(5000)),
            wait_timeout: Some(Duration::from_millis(20000)),
            max_waiting: 1024,
            max_pairs: None,
            pair_buffer: 4 << 20,
            backpressure: false,
            stall_timeout: Some(Duration::from_millis(2000)),
            idle_timeout: None,
            worker_max_age: Some(Duration::from_millis(20000)),
            probe_interval: Some(Duration::from_millis(10000)),
            early_buffer: 64 << 10,
            retry_min: Duration::from_millis(1),
            retry_max: Duration::from_millis(32),
            close_settle: Duration::from_millis(5),
            close_linger: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(60),
            worker_endpoints: Vec::new(),
            connect_timeout: Some(Duration::from_millis(2000)),
            events: false,
            takeover: true,
            relay_threads: 1,
            max_connections: -1,
        }
    }
}
