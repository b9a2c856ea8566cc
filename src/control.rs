//! The control protocol of zmq_proxy_steerable (plus STREAMSTATS), as pure functions.

use crate::core::Stats;

/// A command read from the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Terminate,
    Statistics,
    /// This library's own counters: one frame of native-endian uint64 values in the order
    /// of the ZMQ_PROXY_STREAM_STAT_* constants.
    StreamStats,
    /// Anything else: ignored (libzmq 4.3.4 aborts the process here; we do not).
    Unknown,
}

impl Command {
    /// Parses the first frame of a control message. The strings are exact: no NUL, no case
    /// folding, as zmq_proxy_steerable compares them.
    pub fn parse(frame: &[u8]) -> Command {
        match frame {
            b"PAUSE" => Command::Pause,
            b"RESUME" => Command::Resume,
            b"TERMINATE" => Command::Terminate,
            b"STATISTICS" => Command::Statistics,
            b"STREAMSTATS" => Command::StreamStats,
            _ => Command::Unknown,
        }
    }
}

/// What to send back on the control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    None,
    /// One empty frame (REP sockets must answer every request).
    Empty,
    /// One frame per value, each a native-endian uint64 (STATISTICS).
    Counters(Vec<u64>),
    /// One frame holding all values, native-endian uint64 each (STREAMSTATS).
    Packed(Vec<u64>),
}

/// The kind of control socket, as far as replies are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// REP: every command gets a reply, or the socket stops accepting commands.
    Rep,
    /// PAIR (and DEALER-like): only STATISTICS is answered.
    Pair,
    /// SUB, PULL: cannot send; nothing is answered.
    ReceiveOnly,
}

/// libzmq master's semantics: STATISTICS (and STREAMSTATS) answered where the socket can
/// send, an empty reply to every other command (unknown ones included) only on REP.
pub fn reply_for(kind: ControlKind, command: Command, stats: &Stats) -> Reply {
    match (kind, command) {
        (ControlKind::ReceiveOnly, _) => Reply::None,
        (_, Command::Statistics) => Reply::Counters(stats.steerable_frames().to_vec()),
        (_, Command::StreamStats) => Reply::Packed(stats.stream_counters()),
        (ControlKind::Rep, _) => Reply::Empty,
        (ControlKind::Pair, _) => Reply::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_exact_strings() {
        assert_eq!(Command::parse(b"PAUSE"), Command::Pause);
        assert_eq!(Command::parse(b"RESUME"), Command::Resume);
        assert_eq!(Command::parse(b"TERMINATE"), Command::Terminate);
        assert_eq!(Command::parse(b"STATISTICS"), Command::Statistics);
        assert_eq!(Command::parse(b"STREAMSTATS"), Command::StreamStats);
        assert_eq!(Command::parse(b"PAUSE\0"), Command::Unknown);
        assert_eq!(Command::parse(b"pause"), Command::Unknown);
        assert_eq!(Command::parse(b""), Command::Unknown);
    }

    #[test]
    fn replies_follow_socket_kind() {
        let mut st = Stats::default();
        st.frontend.msgs_in = 1;
        st.backend.bytes_out = 8;
        st.pairs_open = 3;
        let s = vec![1, 0, 0, 0, 0, 0, 0, 8];
        assert_eq!(
            reply_for(ControlKind::Rep, Command::Pause, &st),
            Reply::Empty
        );
        assert_eq!(
            reply_for(ControlKind::Rep, Command::Unknown, &st),
            Reply::Empty
        );
        assert_eq!(
            reply_for(ControlKind::Rep, Command::Statistics, &st),
            Reply::Counters(s.clone())
        );
        assert_eq!(
            reply_for(ControlKind::Pair, Command::Pause, &st),
            Reply::None
        );
        assert_eq!(
            reply_for(ControlKind::Pair, Command::Statistics, &st),
            Reply::Counters(s)
        );
        assert_eq!(
            reply_for(ControlKind::ReceiveOnly, Command::Statistics, &st),
            Reply::None
        );
        let Reply::Packed(v) = reply_for(ControlKind::Pair, Command::StreamStats, &st) else {
            panic!("STREAMSTATS is one packed frame");
        };
        assert_eq!(v.len(), crate::api::ZMQ_PROXY_STREAM_STAT_COUNT as usize);
        assert_eq!(v[crate::api::ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize], 3);
    }
}
