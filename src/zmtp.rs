//! ZMTP 3.x knowledge (RFC 23/37, CurveZMQ RFC 26): the greeting and the first handshake
//! command of each mechanism, as pure parsing and building functions.
//!
//! The proxy answers the greeting on each side itself (the greeting is not covered by any
//! mechanism's cryptography) and relays everything from the first command on, byte for byte.

/// Signature (10 bytes) as libzmq sends it: 0xFF, 8 bytes of padding, 0x7F.
pub(crate) const SIGNATURE: [u8; 10] = [0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F];
pub(crate) const SIGNATURE_LEN: usize = 10;
pub(crate) const GREETING_LEN: usize = 64;
const MAJOR_POS: usize = 10;
const MINOR_POS: usize = 11;
const MECHANISM_POS: usize = 12;
const MECHANISM_LEN: usize = 20;
const AS_SERVER_POS: usize = 32;

/// The version the proxy announces to both sides. Announcing ZMTP 3.0 to everyone makes both
/// ends of a pair settle on 3.0 whatever they speak themselves (each side uses the lower of
/// its own and the announced version), so the two ends always agree. In libzmq the only
/// difference is how SUBSCRIBE/CANCEL are encoded, and every 3.x peer understands 3.0's way.
pub(crate) const ANNOUNCED_MINOR: u8 = 0;

/// Largest first handshake command accepted (NULL READY metadata, PLAIN credentials,
/// GSSAPI tokens). CURVE's HELLO is always 202 bytes.
pub(crate) const MAX_FIRST_COMMAND: usize = 8192;

/// A security mechanism, in the order of STREAMSTATS' per-mechanism counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Null = 0,
    Plain = 1,
    Curve = 2,
    Gssapi = 3,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Null,
        Mechanism::Plain,
        Mechanism::Curve,
        Mechanism::Gssapi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Null => "NULL",
            Mechanism::Plain => "PLAIN",
            Mechanism::Curve => "CURVE",
            Mechanism::Gssapi => "GSSAPI",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a name as a user writes it (case-insensitive).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Parses the greeting's 20-byte mechanism field: the name, then zeros.
    fn from_field(field: &[u8]) -> Option<Mechanism> {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        if field[end..].iter().any(|&b| b != 0) {
            return None;
        }
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().as_bytes() == &field[..end])
    }

    /// Whether the mechanism has client and server roles (NULL has none).
    pub fn has_roles(self) -> bool {
        self != Mechanism::Null
    }
}

/// A set of mechanisms, as a bit mask over [`Mechanism`]'s discriminants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MechanismSet(u8);

impl MechanismSet {
    pub const ALL: MechanismSet = MechanismSet(0b1111);

    pub fn contains(self, m: Mechanism) -> bool {
        self.0 & (1 << m as u8) != 0
    }

    /// Parses "CURVE,PLAIN" (comma-separated, case-insensitive, spaces allowed). Empty
    /// lists and unknown names are errors.
    pub fn parse(list: &str) -> Option<MechanismSet> {
        let mut bits = 0u8;
        for name in list.split(',') {
            bits |= 1 << Mechanism::from_name(name.trim())? as u8;
        }
        (bits != 0).then_some(MechanismSet(bits))
    }

    /// The canonical comma-separated form.
    pub fn to_list(self) -> String {
        Mechanism::ALL
            .into_iter()
            .filter(|m| self.contains(*m))
            .map(Mechanism::name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a peer's greeting says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting {
    pub major: u8,
    pub minor: u8,
    pub mechanism: Mechanism,
    pub as_server: bool,
}

/// Why bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Not a ZMTP 3.x greeting (garbage, HTTP, TLS, ZMTP 1.0/2.0, unknown mechanism).
    BadGreeting,
    /// The first command is malformed or not the one the mechanism starts with.
    BadCommand,
}

/// Result of parsing a prefix of a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Valid so far; more bytes are needed.
    Incomplete,
    /// Complete; `len` bytes were used.
    Done {
        value: T,
        len: usize,
    },
    Invalid(Violation),
}

/// Parses a greeting from the start of `buf`, failing as early as the bytes allow (a port
/// scanner or an HTTP request is refused on its first byte).
pub fn parse_greeting(buf: &[u8]) -> Parsed<Greeting> {
    use Parsed::*;
    if buf.first().is_some_and(|&b| b != 0xFF) {
        return Invalid(Violation::BadGreeting);
    }
    if buf.len() > 9 && buf[9] != 0x7F {
        return Invalid(Violation::BadGreeting);
    }
    if buf.len() > MAJOR_POS && buf[MAJOR_POS] < 3 {
        return Invalid(Violation::BadGreeting);
    }
    if buf.len() < GREETING_LEN {
        return Incomplete;
    }
    let Some(mechanism) = Mechanism::from_field(&buf[MECHANISM_POS..MECHANISM_POS + MECHANISM_LEN])
    else {
        return Invalid(Violation::BadGreeting);
    };
    let as_server = match buf[AS_SERVER_POS] {
        0 => false,
        1 => true,
        _ => return Invalid(Violation::BadGreeting),
    };
    Done {
        value: Greeting {
            major: buf[MAJOR_POS],
            minor: buf[MINOR_POS],
            mechanism,
            as_server,
        },
        len: GREETING_LEN,
    }
}

/// The first 11 bytes the proxy sends on a new connection: signature and major version.
/// A libzmq peer answers them with the rest of its greeting.
pub fn greeting_opening() -> [u8; 11] {
    let mut out = [0u8; 11];
    out[..SIGNATURE_LEN].copy_from_slice(&SIGNATURE);
    out[MAJOR_POS] = 3;
    out
}

/// The remaining 53 bytes of the proxy's greeting: minor version, mechanism, as-server and
/// filler.
pub fn greeting_rest(mechanism: Mechanism, as_server: bool) -> [u8; GREETING_LEN - 11] {
    let mut out = [0u8; GREETING_LEN - 11];
    out[0] = ANNOUNCED_MINOR;
    let name = mechanism.name().as_bytes();
    out[1..1 + name.len()].copy_from_slice(name);
    out[1 + MECHANISM_LEN] = as_server as u8;
    out
}

/// A command frame: its name and the bytes after the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub name: &'a [u8],
    pub body: &'a [u8],
}

/// Parses one command frame (flags 0x04 short or 0x06 long) from the start of `buf`.
pub fn parse_command(buf: &[u8], max_len: usize) -> Parsed<Command<'_>> {
    use Parsed::*;
    let Some(&flags) = buf.first() else {
        return Incomplete;
    };
    let (header, size) = match flags {
        0x04 => match buf.get(1) {
            None => return Incomplete,
            Some(&n) => (2, n as u64),
        },
        0x06 => {
            if buf.len() < 9 {
                return Incomplete;
            }
            let size = u64::from_be_bytes(buf[1..9].try_into().expect("8 bytes"));
            (9, size)
        }
        _ => return Invalid(Violation::BadCommand),
    };
    if size == 0 || size > max_len as u64 {
        return Invalid(Violation::BadCommand);
    }
    let size = size as usize;
    let name_len = match buf.get(header) {
        None => return Incomplete,
        Some(&n) => n as usize,
    };
    if name_len == 0 || name_len + 1 > size {
        return Invalid(Violation::BadCommand);
    }
    if buf.len() < header + size {
        return Incomplete;
    }
    let frame = &buf[header..header + size];
    Done {
        value: Command {
            name: &frame[1..1 + name_len],
            body: &frame[1 + name_len..],
        },
        len: header + size,
    }
}

/// Checks that `cmd` is a well-formed first command of a client of `mechanism`.
pub fn check_first_command(mechanism: Mechanism, cmd: &Command<'_>) -> Result<(), Violation> {
    let ok = match mechanism {
        Mechanism::Null => cmd.name == b"READY" && metadata_is_valid(cmd.body),
        Mechanism::Plain => cmd.name == b"HELLO" && plain_hello_is_valid(cmd.body),
        Mechanism::Curve => cmd.name == b"HELLO" && curve_hello_is_valid(cmd.body),
        // GSSAPI's first token is opaque; a well-formed command frame is all we can check.
        Mechanism::Gssapi => !cmd.name.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(Violation::BadCommand)
    }
}

/// CurveZMQ HELLO after its name: version 1.0, 72 zero bytes of anti-amplification padding,
/// the client's 32-byte short-term key, an 8-byte nonce and an 80-byte box: 194 bytes.
fn curve_hello_is_valid(body: &[u8]) -> bool {
    body.len() == 194 && body[0] == 1 && body[1] == 0 && body[2..74].iter().all(|&b| b == 0)
}

/// PLAIN HELLO: username and password, each a length byte and that many bytes.
fn plain_hello_is_valid(body: &[u8]) -> bool {
    let Some(&user_len) = body.first() else {
        return false;
    };
    let rest = &body[1..];
    if rest.len() < user_len as usize + 1 {
        return false;
    }
    let pass_len = rest[user_len as usize] as usize;
    rest.len() == user_len as usize + 1 + pass_len
}

/// ZMTP metadata: properties of a name (length byte, 1..255 bytes) and a value (4-byte
/// big-endian length, then bytes), filling the body exactly.
fn metadata_is_valid(mut body: &[u8]) -> bool {
    while !body.is_empty() {
        let name_len = body[0] as usize;
        if name_len == 0 || body.len() < 1 + name_len + 4 {
            return false;
        }
        body = &body[1 + name_len..];
        let value_len = u32::from_be_bytes(body[..4].try_into().expect("4 bytes")) as usize;
        body = &body[4..];
        if body.len() < value_len {
            return false;
        }
        body = &body[value_len..];
    }
    true
}

#[cfg(test)]
pub(crate) mod tests;

/// The start of the ERROR command a libzmq 4.3 PLAIN server sends: its "\x05ERROR" in C
/// reads "\x05E" as one hex escape, so the name's length byte and first letter come out as
/// one byte, 0x5E, then "RROR" (libzmq src/plain_common.hpp). libzmq's own client reads it
/// as a malformed command and closes.
const LIBZMQ_PLAIN_ERROR: [u8; 5] = [0x5E, b'R', b'R', b'O', b'R'];

/// What a [`HandshakeWatch`] has seen of a peer's security handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeState {
    Running,
    /// The peer sent READY: its side of the mechanism completed.
    Ready,
    /// The peer sent ERROR.
    Error,
}

/// Follows the ZMTP frames a server sends after its greeting, reading only frame headers and
/// command names, until it sends READY (the mechanism completed) or ERROR. Bytes arrive in
/// arbitrary chunks; nothing is kept beyond a few header bytes.
#[derive(Clone, Debug)]
pub struct HandshakeWatch {
    state: HandshakeState,
    /// Header bytes of the frame being read (flags, then 1 or 8 size bytes).
    header: [u8; 9],
    header_len: usize,
    /// Body bytes of the current frame still to come.
    body_left: u64,
    is_command: bool,
    /// The start of a command body: name length and up to 5 name bytes.
    name: [u8; 6],
    name_len: usize,
}

impl Default for HandshakeWatch {
    fn default() -> Self {
        HandshakeWatch {
            state: HandshakeState::Running,
            header: [0; 9],
            header_len: 0,
            body_left: 0,
            is_command: false,
            name: [0; 6],
            name_len: 0,
        }
    }
}

impl HandshakeWatch {
    pub fn state(&self) -> HandshakeState {
        self.state
    }

    /// Reads more of the peer's stream; returns the state after it.
    pub fn feed(&mut self, mut bytes: &[u8]) -> HandshakeState {
        while !bytes.is_empty() && self.state == HandshakeState::Running {
            if self.body_left == 0 && !self.in_header_done() {
                self.header[self.header_len] = bytes[0];
                self.header_len += 1;
                bytes = &bytes[1..];
                if self.in_header_done() {
                    self.start_body();
                }
                continue;
            }
            let take = (self.body_left.min(bytes.len() as u64)) as usize;
            if self.is_command && self.name_len < self.name.len() {
                let n = take.min(self.name.len() - self.name_len);
                self.name[self.name_len..self.name_len + n].copy_from_slice(&bytes[..n]);
                self.name_len += n;
            }
            self.body_left -= take as u64;
            bytes = &bytes[take..];
            if self.body_left == 0 {
                self.end_frame();
            }
        }
        self.state
    }

    fn header_needed(&self) -> usize {
        if self.header_len == 0 {
            return 1;
        }
        if self.header[0] & 0x02 != 0 {
            9
        } else {
            2
        }
    }

    fn in_header_done(&self) -> bool {
        self.header_len > 0 && self.header_len == self.header_needed()
    }

    fn start_body(&mut self) {
        let flags = self.header[0];
        self.is_command = flags & 0x04 != 0;
        self.body_left = if flags & 0x02 != 0 {
            u64::from_be_bytes(self.header[1..9].try_into().expect("8 size bytes"))
        } else {
            u64::from(self.header[1])
        };
        self.name_len = 0;
        if self.body_left == 0 {
            self.end_frame();
        }
    }

    fn end_frame(&mut self) {
        if self.is_command && self.name_len >= 1 {
            let len = self.name[0] as usize;
            let name = &self.name[1..self.name_len];
            if len == 5 && name == b"READY" {
                self.state = HandshakeState::Ready;
            } else if (len == 5 && name == b"ERROR")
                || (self.name_len >= 5 && self.name[..5] == LIBZMQ_PLAIN_ERROR)
            {
                self.state = HandshakeState::Error;
            }
        } else if !self.is_command {
            // A message frame: the mechanism must have completed (a peer sends none before).
            self.state = HandshakeState::Ready;
        }
        self.header_len = 0;
        self.body_left = 0;
        self.is_command = false;
        self.name_len = 0;
    }
}
