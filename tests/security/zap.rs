//! A ZAP handler (RFC 27) for one worker's context, written from the RFC: it admits the
//! good credentials of a test and can be told to misbehave, the way libzmq's ZAP tests make
//! their handler misbehave, while a bad client connects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::Background;

/// How the handler answers a request whose credentials it admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 200 OK.
    Normal,
    /// 400 for every request (libzmq's NULL test refuses by ZAP domain; a domain belongs to
    /// the server socket, so here the handler refuses while the bad client is connected).
    Refuse,
    /// 300 (temporary failure).
    Status300,
    /// 500 (internal error).
    Status500,
    /// A version other than "1.0".
    WrongVersion,
    /// A request id other than the request's.
    WrongRequestId,
    /// A status code that is not one of 200, 300, 400, 500.
    InvalidStatus,
    /// One frame more than the reply has.
    TooManyParts,
    /// No reply at all: the worker's handshake waits for ever.
    Silence,
}

/// PLAIN credentials the handler admits.
pub const PLAIN_USER: &str = "admin";
pub const PLAIN_PASSWORD: &str = "password";

/// The handler thread. It is bound when `start` returns, so a worker made afterwards in the
/// same context uses it.
pub struct Zap {
    reply: Arc<Mutex<Reply>>,
    /// ZAP requests received (answered or not).
    pub requests: Arc<AtomicUsize>,
    _thread: Background,
}

impl Zap {
    /// Admits NULL peers, PLAIN peers with `PLAIN_USER`/`PLAIN_PASSWORD` and the CURVE
    /// client key `curve_client` only.
    pub fn start(ctx: &zmq::Context, curve_client: [u8; 32]) -> Zap {
        // A ROUTER, not a REP: a request left unanswered (Reply::Silence) must not stop the
        // handler from answering the next one. libzmq sends each request with the empty
        // delimiter a REP expects, so the envelope is [peer id, "", request...].
        let socket = ctx.socket(zmq::ROUTER).unwrap();
        socket.set_linger(0).unwrap();
        socket.bind("inproc://zeromq.zap.01").unwrap();
        let reply = Arc::new(Mutex::new(Reply::Normal));
        let requests = Arc::new(AtomicUsize::new(0));
        let (reply2, requests2) = (reply.clone(), requests.clone());
        let thread = Background::spawn(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                if socket.poll(zmq::POLLIN, 20).unwrap() == 0 {
                    continue;
                }
                let frames = socket.recv_multipart(0).unwrap();
                requests2.fetch_add(1, Ordering::SeqCst);
                let mode = *reply2.lock().unwrap();
                if let Some(answer) = answer(&frames, mode, &curve_client) {
                    socket.send_multipart(answer, 0).unwrap();
                }
            }
        });
        Zap {
            reply,
            requests,
            _thread: thread,
        }
    }

    /// From now on, answer admitted requests as `reply` says.
    pub fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// The reply frames (envelope included) to one request, or None to leave it unanswered.
fn answer(frames: &[Vec<u8>], mode: Reply, curve_client: &[u8; 32]) -> Option<Vec<Vec<u8>>> {
    // [peer id, "", version, request id, domain, address, identity, mechanism, credentials...]
    let field = |i: usize| frames.get(i).map(Vec::as_slice).unwrap_or(b"");
    let admitted = match field(7) {
        b"PLAIN" => field(8) == PLAIN_USER.as_bytes() && field(9) == PLAIN_PASSWORD.as_bytes(),
        b"CURVE" => field(8) == curve_client,
        _ => true,
    };
    let mut version: &[u8] = field(2);
    let mut request_id: &[u8] = field(3);
    let mut status: &[u8] = if admitted { b"200" } else { b"400" };
    let mut extra = false;
    if admitted {
        match mode {
            Reply::Normal => {}
            Reply::Refuse => status = b"400",
            Reply::Status300 => status = b"300",
            Reply::Status500 => status = b"500",
            Reply::WrongVersion => version = b"2.0",
            Reply::WrongRequestId => request_id = b"not the request's id",
            Reply::InvalidStatus => status = b"299",
            Reply::TooManyParts => extra = true,
            Reply::Silence => return None,
        }
    }
    let mut out = vec![
        field(0).to_vec(),
        Vec::new(),
        version.to_vec(),
        request_id.to_vec(),
        status.to_vec(),
        b"test handler".to_vec(),
        b"user".to_vec(),
        Vec::new(),
    ];
    if extra {
        out.push(Vec::new());
    }
    Some(out)
}
