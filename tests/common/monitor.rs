//! Socket events of one socket (zmq_socket_monitor), read from an inproc PAIR.
//!
//! Keep a Monitor alive for as long as its socket may emit events (declare it before the
//! socket, so that it is dropped after): libzmq 4.3.4 sends events with a blocking send, and
//! with the reading end gone the next event blocks the I/O thread of the socket's context.

use std::mem::ManuallyDrop;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Monitor {
    pub pair: zmq::Socket,
}

static NEXT_MONITOR: AtomicUsize = AtomicUsize::new(0);

impl Monitor {
    /// Must be called before `socket` connects, so that no event is missed.
    pub fn attach(ctx: &zmq::Context, socket: &zmq::Socket) -> Monitor {
        let n = NEXT_MONITOR.fetch_add(1, Ordering::Relaxed);
        let ep = format!("inproc://test-monitor-{}-{n}", std::process::id());
        socket
            .monitor(&ep, zmq::SocketEvent::ALL as i32)
            .expect("zmq_socket_monitor");
        let pair = ctx.socket(zmq::PAIR).unwrap();
        pair.connect(&ep).unwrap();
        Monitor { pair }
    }

    /// Waits for the first event that `wanted` accepts; returns it with its value. Other
    /// events are skipped (and listed on timeout).
    fn wait_event(
        &self,
        what: &str,
        deadline: Duration,
        wanted: impl Fn(zmq::SocketEvent) -> bool,
    ) -> (zmq::SocketEvent, u32) {
        let end = Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for socket event {what}; saw {seen:?}"
            );
            if let Some((event, value)) = self.next(left) {
                if wanted(event) {
                    return (event, value);
                }
                seen.push((event, value));
            }
        }
    }

    /// Waits for `want`; returns its value. Other events are skipped (and listed on timeout).
    pub fn wait_for(&self, want: zmq::SocketEvent, deadline: Duration) -> u32 {
        self.wait_event(&format!("{want:?}"), deadline, |e| e == want)
            .1
    }

    /// The next event within `timeout`, if any: (event, value).
    pub fn next(&self, timeout: Duration) -> Option<(zmq::SocketEvent, u32)> {
        if self
            .pair
            .poll(zmq::POLLIN, timeout.as_millis() as i64)
            .unwrap()
            == 0
        {
            return None;
        }
        let frames = self.pair.recv_multipart(0).unwrap();
        let head = &frames[0];
        let event = zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]]));
        let value = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
        Some((event, value))
    }

    /// Waits for CONNECTED (or ACCEPTED) and returns the local address of that connection:
    /// the address:port its peer sees.
    pub fn wait_connected_addr(&self, deadline: Duration) -> SocketAddr {
        let (_, fd) = self.wait_event("CONNECTED", deadline, |e| {
            matches!(e, zmq::SocketEvent::CONNECTED | zmq::SocketEvent::ACCEPTED)
        });
        local_addr_of_fd(fd as i32).unwrap_or_else(|| {
            panic!("the connection (fd {fd}) closed before its address was read")
        })
    }
}

/// The local address of a connected TCP socket that libzmq owns (its fd, as a socket monitor
/// reports it), or None when that fd is closed already. The fd is borrowed, never closed.
pub fn local_addr_of_fd(fd: i32) -> Option<SocketAddr> {
    // SAFETY: `fd` is a TCP socket owned by libzmq (or already closed: getsockname then
    // fails with EBADF); ManuallyDrop keeps it open.
    let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    stream.local_addr().ok()
}
