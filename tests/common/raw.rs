//! Raw TCP peers that speak just enough ZMTP to pass the proxy's screening, for tests that
//! need exact control of the bytes (and bad peers that speak it wrongly on purpose).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A ZMTP 3.1 greeting as libzmq 4.3 sends it (as-server is always 0 in libzmq).
pub fn greeting(mechanism: &str) -> Vec<u8> {
    let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 1];
    let mut field = [0u8; 20];
    field[..mechanism.len()].copy_from_slice(mechanism.as_bytes());
    g.extend_from_slice(&field);
    g.extend_from_slice(&[0u8; 32]);
    g
}

/// A NULL READY command with Socket-Type metadata.
pub fn null_ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    let mut frame = vec![0x04, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

/// A well-formed CURVE HELLO (the box is not valid crypto, but screening cannot tell).
pub fn curve_hello() -> Vec<u8> {
    let mut h = vec![0x04, 200, 5];
    h.extend_from_slice(b"HELLO");
    h.extend_from_slice(&[1, 0]);
    h.extend_from_slice(&[0u8; 72]);
    h.extend((0..120).map(|i| (i * 7 + 1) as u8));
    h
}

pub fn connect(endpoint: &str) -> TcpStream {
    let addr = endpoint.trim_start_matches("tcp://");
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

/// Reads exactly `n` bytes within `deadline` (panics on EOF, error or timeout).
pub fn read_exact_within(s: &mut TcpStream, n: usize, deadline: Duration) -> Vec<u8> {
    let end = Instant::now() + deadline;
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out: got {got} of {n} bytes within {deadline:?}"
        );
        s.set_read_timeout(Some(
            left.min(Duration::from_secs(1))
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match s.read(&mut out[got..]) {
            Ok(0) => panic!("EOF after {got} of {n} bytes"),
            Ok(k) => got += k,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("read error after {got} of {n} bytes: {e}"),
        }
    }
    out
}

/// Whether the peer closes the connection within `timeout` (EOF or reset), reading and
/// discarding whatever arrives meanwhile.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// A raw NULL client through the proxy's screening: greeting and READY sent, the proxy's
/// greeting read. After this, bytes written reach the paired worker untouched.
pub fn null_client(frontend: &str) -> TcpStream {
    let mut s = connect(frontend);
    s.write_all(&greeting("NULL")).unwrap();
    let theirs = read_exact_within(&mut s, 64, Duration::from_secs(10));
    assert_eq!(&theirs[..10], &[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F]);
    assert_eq!(&theirs[12..16], b"NULL");
    s.write_all(&null_ready("DEALER")).unwrap();
    s
}

/// A raw NULL worker connection: greets the proxy, and `await_pair` then reads the end of
/// the proxy's greeting and the client's READY once a client is paired with it.
pub struct RawWorker {
    pub stream: TcpStream,
}

impl RawWorker {
    pub fn connect(backend: &str) -> RawWorker {
        let mut s = connect(backend);
        s.write_all(&greeting("NULL")).unwrap();
        let opening = read_exact_within(&mut s, 11, Duration::from_secs(10));
        assert_eq!(opening[10], 3, "the proxy announces ZMTP 3");
        RawWorker { stream: s }
    }

    /// Waits for a client: reads the 53 remaining greeting bytes and the client's READY.
    pub fn await_pair(&mut self, timeout: Duration) {
        let rest = read_exact_within(&mut self.stream, 53, timeout);
        assert_eq!(&rest[1..5], b"NULL");
        let ready_len = null_ready("DEALER").len();
        let ready = read_exact_within(&mut self.stream, ready_len, timeout);
        assert_eq!(ready, null_ready("DEALER"));
    }
}

/// A ZMTP greeting with every field chosen: `major`.`minor`, a mechanism field (name, then
/// zeros up to 20 bytes) and the as-server byte.
pub fn greeting_with(major: u8, minor: u8, mechanism: &[u8], as_server: u8) -> Vec<u8> {
    let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, major, minor];
    let mut field = [0u8; 20];
    field[..mechanism.len()].copy_from_slice(mechanism);
    g.extend_from_slice(&field);
    g.push(as_server);
    g.extend_from_slice(&[0u8; 31]);
    g
}

/// Connects to `endpoint` and writes `bytes` at once.
pub fn connect_and_send(endpoint: &str, bytes: &[u8]) -> TcpStream {
    let mut s = connect(endpoint);
    s.write_all(bytes).unwrap();
    s
}

/// A raw CURVE client through the proxy's screening: greeting and a well-formed HELLO sent,
/// the proxy's whole greeting read and returned.
pub fn curve_client(frontend: &str) -> (TcpStream, Vec<u8>) {
    let mut s = connect(frontend);
    s.write_all(&greeting("CURVE")).unwrap();
    let theirs = read_exact_within(&mut s, 64, Duration::from_secs(10));
    s.write_all(&curve_hello()).unwrap();
    (s, theirs)
}

/// Reads whatever arrives within `timeout`, up to `max` bytes (empty on timeout or close).
pub fn read_some_within(s: &mut TcpStream, max: usize, timeout: Duration) -> Vec<u8> {
    let mut buf = vec![0u8; max];
    s.set_read_timeout(Some(timeout)).unwrap();
    match s.read(&mut buf) {
        Ok(n) => buf.truncate(n),
        Err(_) => buf.clear(),
    }
    buf
}
