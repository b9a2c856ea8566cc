//! The control protocol of zmq_proxy_steerable, as pure functions.

/// A command read from the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Terminate,
    Statistics,
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
    /// One frame per value, each a native-endian uint64.
    Counters(Vec<u64>),
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

/// libzmq master's semantics: STATISTICS answered where the socket can send, an empty reply
/// to every other command (unknown ones included) only on REP.
pub fn reply_for(kind: ControlKind, command: Command, stats: [u64; 8]) -> Reply {
    match (kind, command) {
        (ControlKind::ReceiveOnly, _) => Reply::None,
        (_, Command::Statistics) => Reply::Counters(stats.to_vec()),
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
        assert_eq!(Command::parse(b"PAUSE\0"), Command::Unknown);
        assert_eq!(Command::parse(b"pause"), Command::Unknown);
        assert_eq!(Command::parse(b""), Command::Unknown);
    }

    #[test]
    fn replies_follow_socket_kind() {
        let s = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(reply_for(ControlKind::Rep, Command::Pause, s), Reply::Empty);
        assert_eq!(
            reply_for(ControlKind::Rep, Command::Unknown, s),
            Reply::Empty
        );
        assert_eq!(
            reply_for(ControlKind::Rep, Command::Statistics, s),
            Reply::Counters(s.to_vec())
        );
        assert_eq!(reply_for(ControlKind::Pair, Command::Pause, s), Reply::None);
        assert_eq!(
            reply_for(ControlKind::Pair, Command::Statistics, s),
            Reply::Counters(s.to_vec())
        );
        assert_eq!(
            reply_for(ControlKind::ReceiveOnly, Command::Statistics, s),
            Reply::None
        );
    }
}
