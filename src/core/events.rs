//! The event stream (ZMQ_PROXY_STREAM_EVENTS): what the core reports about pairs and refused
//! clients, and the stable text form the driver publishes.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::Reject;
use crate::zmtp::Mechanism;

/// Why a pair ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairEnd {
    ClientClosed,
    WorkerClosed,
    /// The worker closed before its side of the security handshake completed.
    HandshakeFailed,
    IdleTimeout,
    BufferOverflow,
    Stalled,
    /// A peer sent bytes while its connection was being taken over from libzmq.
    TakeoverViolation,
    /// The pair could not be taken over after libzmq was asked to let go of it (libzmq
    /// refused to let go of one connection, or did not in time).
    TakeoverFailed,
}

impl PairEnd {
    pub fn token(self) -> &'static str {
        match self {
            PairEnd::ClientClosed => "client-closed",
            PairEnd::WorkerClosed => "worker-closed",
            PairEnd::HandshakeFailed => "handshake-failed",
            PairEnd::IdleTimeout => "idle-timeout",
            PairEnd::BufferOverflow => "buffer-overflow",
            PairEnd::Stalled => "stalled",
            PairEnd::TakeoverViolation => "takeover-violation",
            PairEnd::TakeoverFailed => "takeover-failed",
        }
    }
}

impl Reject {
    /// The reason's name in REJECT events.
    pub fn token(self) -> &'static str {
        match self {
            Reject::BadGreeting => "bad-greeting",
            Reject::Mechanism => "mechanism",
            Reject::BadCommand => "bad-command",
            Reject::HandshakeTimeout => "handshake-timeout",
            Reject::WaitTimeout => "wait-timeout",
            Reject::QueueFull => "queue-full",
            Reject::BufferOverflow => "buffer-overflow",
            Reject::IdleTimeout => "idle-timeout",
            Reject::EarlyOverflow => "early-overflow",
            Reject::Stalled => "stalled",
            Reject::Denied => "denied",
            Reject::PerAddress => "per-address",
            Reject::Banned => "banned",
            Reject::Limit => "limit",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Open {
        pair: u64,
        client: Option<SocketAddr>,
        worker: String,
        mechanism: Mechanism,
    },
    Close {
        pair: u64,
        client: Option<SocketAddr>,
        worker: String,
        mechanism: Mechanism,
        bytes_up: u64,
        bytes_down: u64,
        duration: Duration,
        end: PairEnd,
    },
    Reject {
        client: Option<SocketAddr>,
        reason: Reject,
    },
    /// Dial-in: the worker connection of `pair` closed during the security handshake.
    Lost {
        pair: u64,
        worker: String,
        mechanism: Mechanism,
    },
}

fn address(out: &mut String, a: Option<SocketAddr>) {
    match a {
        // SocketAddr's Display writes "[v6]:port" for IPv6, as the format wants.
        Some(a) => {
            let _ = write!(out, "{a}");
        }
        None => out.push('-'),
    }
}

/// A field that must not break the space-separated format.
fn field(out: &mut String, text: &str) {
    if text.is_empty() {
        out.push('-');
    }
    for c in text.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '%' => out.push_str("%25"),
            c if c.is_ascii_graphic() => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
}

/// The fields OPEN and CLOSE lines start with.
fn pair_head(
    out: &mut String,
    kind: &str,
    pair: u64,
    client: Option<SocketAddr>,
    worker: &str,
    mechanism: Mechanism,
) {
    let _ = write!(out, "{kind} {pair} ");
    address(out, client);
    out.push(' ');
    field(out, worker);
    let _ = write!(out, " {}", mechanism.name());
}

impl Event {
    /// The event's line, as documented at ZMQ_PROXY_STREAM_EVENTS.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(96);
        match self {
            Event::Open {
                pair,
                client,
                worker,
                mechanism,
            } => pair_head(&mut s, "OPEN", *pair, *client, worker, *mechanism),
            Event::Close {
                pair,
                client,
                worker,
                mechanism,
                bytes_up,
                bytes_down,
                duration,
                end,
            } => {
                pair_head(&mut s, "CLOSE", *pair, *client, worker, *mechanism);
                let _ = write!(
                    s,
                    " {bytes_up} {bytes_down} {} {}",
                    duration.as_millis(),
                    end.token()
                );
            }
            Event::Lost {
                pair,
                worker,
                mechanism,
            } => {
                let _ = write!(s, "LOST {pair} ");
                field(&mut s, worker);
                let _ = write!(s, " {}", mechanism.name());
            }
            Event::Reject { client, reason } => {
                s.push_str("REJECT ");
                address(&mut s, *client);
                let _ = write!(s, " {}", reason.token());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_documented_format() {
        let v4: SocketAddr = "192.0.2.7:51000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::7]:51000".parse().unwrap();
        let open = Event::Open {
            pair: 3,
            client: Some(v4),
            worker: "tcp://10.0.0.5:5600".into(),
            mechanism: Mechanism::Curve,
        };
        assert_eq!(
            open.to_text(),
            "OPEN 3 192.0.2.7:51000 tcp://10.0.0.5:5600 CURVE"
        );
        let close = Event::Close {
            pair: 3,
            client: Some(v6),
            worker: "ipc:///run/my worker".into(),
            mechanism: Mechanism::Null,
            bytes_up: 10,
            bytes_down: 20,
            duration: Duration::from_millis(1500),
            end: PairEnd::HandshakeFailed,
        };
        assert_eq!(
            close.to_text(),
            "CLOSE 3 [2001:db8::7]:51000 ipc:///run/my%20worker NULL 10 20 1500 handshake-failed"
        );
        let reject = Event::Reject {
            client: None,
            reason: Reject::Banned,
        };
        assert_eq!(reject.to_text(), "REJECT - banned");
        let lost = Event::Lost {
            pair: 4,
            worker: "127.0.0.1:40001".into(),
            mechanism: Mechanism::Curve,
        };
        assert_eq!(lost.to_text(), "LOST 4 127.0.0.1:40001 CURVE");
    }
}
