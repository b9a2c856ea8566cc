//! streamq-proxy: `zmq_proxy_stream`, a proxy between two ZMQ_STREAM sockets that pairs each
//! client connection with one worker connection and relays the ZMTP byte stream untouched, so
//! that CURVE's handshake and encryption run end to end between client and worker.
//!
//! Layout:
//! - [`core`]: the sans-IO state machine (pairing, buffers, backpressure, teardown, counters).
//! - [`zmtp`]: ZMTP greeting and command parsing and building (pure functions).
//! - [`api`]: option names and STREAMSTATS indices (part of the C ABI).
//! - [`control`]: zmq_proxy_steerable's control commands, as pure functions.
//! - [`driver`]: the I/O loop around the core (it waits on the sockets' ZMQ_FDs).
//! - [`zmq_io`]: the few libzmq calls, over borrowed raw sockets.
//! - [`descriptors`]: the process's descriptor budget (RLIMIT_NOFILE, descriptors open).
//! - [`ffi`]: the C ABI (`include/zmq_proxy_stream.h`).

pub mod api;
pub mod control;
pub mod core;
pub mod descriptors;
pub mod dialer;
pub mod driver;
pub mod ffi;
pub mod options;
pub mod relay;
pub mod relay_io;
pub mod relay_thread;
pub mod takeover;
pub mod zmq_io;
pub mod zmtp;

pub use ffi::zmq_proxy_stream;
