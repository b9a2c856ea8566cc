//! How a test proxy is set up (`ProxyConfig`), and the proxy's text events
//! (ZMQ_PROXY_STREAM_EVENTS) parsed into `ProxyEvent`.

use super::{ControlType, OptValue};
use zmq_proxy_stream::api::ZMQ_PROXY_STREAM_WORKER_ENDPOINT;

/// Which events socket the proxy gets (ZMQ_PROXY_STREAM_EVENTS).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventsKind {
    /// A PAIR in the proxy's context, connected over inproc to a PAIR the test keeps
    /// (`proxy.events`).
    Pair,
    /// A PUB connected over inproc to a SUB (subscribed to everything) the test keeps.
    Pub,
    /// A PUSH connected to nothing: every event meets EAGAIN and is dropped.
    PushToNobody,
}

/// Everything about a test proxy that is chosen before it starts.
#[derive(Debug)]
pub struct ProxyConfig {
    pub control: ControlType,
    /// Where the frontend binds (default tcp://127.0.0.1:0).
    pub frontend_bind: String,
    /// Where the backend binds, unless dial-out (default tcp://127.0.0.1:0).
    pub backend_bind: String,
    /// ZMQ_IPV6 on the frontend (needed to bind tcp://[::1]:0).
    pub ipv6: bool,
    /// Dial-out: the backend is not bound (the proxy zmq_connect()s it to worker endpoints).
    pub dial_out: bool,
    pub events: Option<EventsKind>,
    /// Options set with zmq_proxy_stream_setopt, in order (the events socket comes last).
    pub options: Vec<(i32, OptValue)>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig::new()
    }
}

impl ProxyConfig {
    pub fn new() -> ProxyConfig {
        ProxyConfig {
            control: ControlType::Pair,
            frontend_bind: "tcp://127.0.0.1:0".to_owned(),
            backend_bind: "tcp://127.0.0.1:0".to_owned(),
            ipv6: false,
            dial_out: false,
            events: None,
            options: Vec::new(),
        }
    }

    /// Dial-out to these worker endpoints (one ZMQ_PROXY_STREAM_WORKER_ENDPOINT each, in order).
    pub fn dial_out(mut self, endpoints: &[String]) -> ProxyConfig {
        assert!(!endpoints.is_empty(), "dial-out needs an endpoint");
        self.dial_out = true;
        for ep in endpoints {
            self.options.push((
                ZMQ_PROXY_STREAM_WORKER_ENDPOINT,
                OptValue::String(ep.clone()),
            ));
        }
        self
    }

    pub fn events(mut self, kind: EventsKind) -> ProxyConfig {
        self.events = Some(kind);
        self
    }

    /// The frontend on the IPv6 loopback, tcp://[::1]:0 (ZMQ_IPV6 on). Fails loudly when the
    /// machine has no ::1.
    pub fn ipv6_loopback(mut self) -> ProxyConfig {
        if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
            panic!(
                "the IPv6 tests need the loopback address ::1, which this machine does not \
                 offer ({e}); enable IPv6 on lo (sysctl net.ipv6.conf.lo.disable_ipv6=0)"
            );
        }
        self.frontend_bind = "tcp://[::1]:0".to_owned();
        self.ipv6 = true;
        self
    }

    pub fn opt(mut self, option: i32, value: OptValue) -> ProxyConfig {
        self.options.push((option, value));
        self
    }
}

/// One event, as ZMQ_PROXY_STREAM_EVENTS documents them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyEvent {
    Open {
        pair: u64,
        client: String,
        worker: String,
        mechanism: String,
    },
    Close {
        pair: u64,
        client: String,
        worker: String,
        mechanism: String,
        bytes_up: u64,
        bytes_down: u64,
        ms: u64,
        reason: String,
    },
    Reject {
        client: String,
        reason: String,
    },
    /// Dial-in: the worker connection of `pair` closed during the security handshake.
    Lost {
        pair: u64,
        worker: String,
        mechanism: String,
    },
}

impl ProxyEvent {
    /// Parses one event frame; panics (quoting it) when it is not in the documented format.
    pub fn parse(text: &str) -> ProxyEvent {
        assert!(
            text.is_ascii() && !text.contains("  ") && !text.ends_with(' '),
            "an event is ASCII, fields separated by one space: {text:?}"
        );
        let f: Vec<&str> = text.split(' ').collect();
        let num = |i: usize| -> u64 {
            f[i].parse()
                .unwrap_or_else(|_| panic!("field {i} of {text:?} is not a number"))
        };
        match f[0] {
            "OPEN" => {
                assert_eq!(f.len(), 5, "OPEN has 5 fields: {text:?}");
                ProxyEvent::Open {
                    pair: num(1),
                    client: f[2].to_owned(),
                    worker: f[3].to_owned(),
                    mechanism: f[4].to_owned(),
                }
            }
            "CLOSE" => {
                assert_eq!(f.len(), 9, "CLOSE has 9 fields: {text:?}");
                ProxyEvent::Close {
                    pair: num(1),
                    client: f[2].to_owned(),
                    worker: f[3].to_owned(),
                    mechanism: f[4].to_owned(),
                    bytes_up: num(5),
                    bytes_down: num(6),
                    ms: num(7),
                    reason: f[8].to_owned(),
                }
            }
            "REJECT" => {
                assert_eq!(f.len(), 3, "REJECT has 3 fields: {text:?}");
                ProxyEvent::Reject {
                    client: f[1].to_owned(),
                    reason: f[2].to_owned(),
                }
            }
            "LOST" => {
                assert_eq!(f.len(), 4, "LOST has 4 fields: {text:?}");
                ProxyEvent::Lost {
                    pair: num(1),
                    worker: f[2].to_owned(),
                    mechanism: f[3].to_owned(),
                }
            }
            other => panic!("unknown event kind {other:?} in {text:?}"),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, ProxyEvent::Open { .. })
    }

    pub fn is_close(&self) -> bool {
        matches!(self, ProxyEvent::Close { .. })
    }

    /// The pair number of an OPEN or CLOSE.
    pub fn pair(&self) -> Option<u64> {
        match self {
            ProxyEvent::Open { pair, .. }
            | ProxyEvent::Close { pair, .. }
            | ProxyEvent::Lost { pair, .. } => Some(*pair),
            ProxyEvent::Reject { .. } => None,
        }
    }

    pub fn client(&self) -> &str {
        match self {
            ProxyEvent::Open { client, .. }
            | ProxyEvent::Close { client, .. }
            | ProxyEvent::Reject { client, .. } => client,
            ProxyEvent::Lost { .. } => "-",
        }
    }

    /// The reason of a CLOSE or REJECT.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ProxyEvent::Close { reason, .. } | ProxyEvent::Reject { reason, .. } => Some(reason),
            ProxyEvent::Open { .. } | ProxyEvent::Lost { .. } => None,
        }
    }
}
