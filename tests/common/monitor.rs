//! Socket events of one socket (zmq_socket_monitor), read from an inproc PAIR.

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

    /// Waits for `want`; returns its value. Other events are skipped (and listed on timeout).
    pub fn wait_for(&self, want: zmq::SocketEvent, deadline: Duration) -> u32 {
        let end = Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for socket event {want:?}; saw {seen:?}"
            );
            if self
                .pair
                .poll(zmq::POLLIN, left.as_millis() as i64)
                .unwrap()
                == 0
            {
                continue;
            }
            let frames = self.pair.recv_multipart(0).unwrap();
            let head = &frames[0];
            let event = zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]]));
            let value = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
            if event == want {
                return value;
            }
            seen.push((event, value));
        }
    }
}
