//! Prometheus metrics: the STREAMSTATS and STATISTICS counters in the text exposition
//! format (rendering is pure), and a tiny HTTP/1.1 server for GET /metrics on its own
//! thread. The numbers come from the proxy's control socket, asked over a REQ socket that
//! this thread makes for each scrape: the proxy's sockets stay on the proxy's thread.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zmq_proxy_stream::api::*;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Type {
    Counter,
    Gauge,
}

/// Every STREAMSTATS index: its metric's name (after `zmq_proxy_stream_`), type and help.
pub const STREAMSTATS: &[(c_int, &str, Type, &str)] = &[
    (
        ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN,
        "pairs_open",
        Type::Gauge,
        "Pairs relaying now.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL,
        "pairs_total",
        Type::Counter,
        "Pairs formed since the proxy started.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL,
        "workers_idle_null",
        Type::Gauge,
        "Screened NULL worker connections waiting for a client.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_PLAIN,
        "workers_idle_plain",
        Type::Gauge,
        "Screened PLAIN worker connections waiting for a client.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE,
        "workers_idle_curve",
        Type::Gauge,
        "Screened CURVE worker connections waiting for a client.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_GSSAPI,
        "workers_idle_gssapi",
        Type::Gauge,
        "Screened GSSAPI worker connections waiting for a client.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING,
        "clients_waiting",
        Type::Gauge,
        "Screened clients waiting for a worker.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING,
        "reject_bad_greeting_total",
        Type::Counter,
        "Clients closed because their first bytes were not a ZMTP 3.x greeting.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM,
        "reject_mechanism_total",
        Type::Counter,
        "Clients closed because their mechanism is not allowed.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND,
        "reject_bad_command_total",
        Type::Counter,
        "Clients closed because their first handshake command was malformed.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT,
        "reject_handshake_timeout_total",
        Type::Counter,
        "Clients closed for being slower than the handshake timeout.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_WAIT_TIMEOUT,
        "reject_wait_timeout_total",
        Type::Counter,
        "Clients closed after waiting longer than the wait timeout.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_QUEUE_FULL,
        "reject_queue_full_total",
        Type::Counter,
        "Clients closed because MAX_WAITING clients were waiting.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW,
        "closed_buffer_overflow_total",
        Type::Counter,
        "Pairs closed because one direction needed more than PAIR_BUFFER.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_CLOSED_IDLE_TIMEOUT,
        "closed_idle_timeout_total",
        Type::Counter,
        "Pairs closed after IDLE_TIMEOUT without traffic.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_WORKERS_REJECTED,
        "workers_rejected_total",
        Type::Counter,
        "Worker connections refused.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_WORKERS_RECYCLED,
        "workers_recycled_total",
        Type::Counter,
        "Idle worker connections closed at WORKER_MAX_AGE.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_SEND_RETRIES,
        "send_retries_total",
        Type::Counter,
        "Sends that met a full libzmq pipe and were retried.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_STRAY_CHUNKS,
        "stray_chunks_total",
        Type::Counter,
        "Chunks from connections already closed (dropped).",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_DROPPED_BYTES,
        "dropped_bytes_total",
        Type::Counter,
        "Bytes for a partner that had already left (dropped).",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_CLOSED_EARLY_OVERFLOW,
        "closed_early_overflow_total",
        Type::Counter,
        "Waiting clients closed for sending more than 64 KiB.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_CLOSED_STALLED,
        "closed_stalled_total",
        Type::Counter,
        "Pairs closed after STALL_TIMEOUT with BACKPRESSURE 1.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_BACKPRESSURE_PAUSES,
        "backpressure_pauses_total",
        Type::Counter,
        "Times reading a socket was suspended for backpressure.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_FOUND_GONE,
        "found_gone_total",
        Type::Counter,
        "Connections found gone by the liveness check.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_DENIED,
        "reject_denied_total",
        Type::Counter,
        "Clients closed because their address is denied or not allowed.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_PER_ADDRESS,
        "reject_per_address_total",
        Type::Counter,
        "Clients closed because their address held MAX_PER_ADDRESS connections.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_DIALS,
        "dials_total",
        Type::Counter,
        "Dial-out: worker connections made.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_CONNECT_TIMEOUTS,
        "connect_timeouts_total",
        Type::Counter,
        "Dial-out: worker connections dropped after CONNECT_TIMEOUT.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_ENDPOINTS_DOWN,
        "endpoints_down",
        Type::Gauge,
        "Dial-out: endpoints marked down now.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_BANNED,
        "reject_banned_total",
        Type::Counter,
        "Clients refused because their address is banned (FAIL_BAN).",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED,
        "handshakes_failed_total",
        Type::Counter,
        "Pairs the worker closed before its security handshake completed (not by dying), or refused with ERROR.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED,
        "events_dropped_total",
        Type::Counter,
        "Events the events socket could not take at once.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_PAIRS_TAKEN_OVER,
        "pairs_taken_over_total",
        Type::Counter,
        "Pairs whose connections were taken out of libzmq and relayed directly.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_TAKEOVER_FALLBACKS,
        "takeover_fallbacks_total",
        Type::Counter,
        "Pairs left on the libzmq relay although TAKEOVER is on.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_TAKEOVER_VIOLATIONS,
        "takeover_violations_total",
        Type::Counter,
        "Pairs closed because a peer sent while its connection was being taken over.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_WORKERS_LOST,
        "workers_lost_total",
        Type::Counter,
        "Dial-in: worker connections closed during a security handshake; dial-out: pairs cut by a dying worker.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_REJECT_LIMIT,
        "reject_limit_total",
        Type::Counter,
        "Connections closed at once because MAX_CONNECTIONS were held.",
    ),
    (
        ZMQ_PROXY_STREAM_STAT_LOCAL_FAILURES,
        "local_failures_total",
        Type::Counter,
        "Dials and takeovers that failed for want of descriptors, buffers or ports here.",
    ),
];

/// The 8 STATISTICS counters: (name, help), each with a socket="frontend"|"backend" label.
const STATISTICS: [(&str, &str); 4] = [
    (
        "messages_received_total",
        "Chunks received on the socket (one ZMQ_STREAM receive each).",
    ),
    (
        "bytes_received_total",
        "Payload bytes received on the socket.",
    ),
    (
        "messages_sent_total",
        "Chunks sent on the socket (one ZMQ_STREAM send each).",
    ),
    ("bytes_sent_total", "Payload bytes sent on the socket."),
];

/// The exposition text for one STREAMSTATS frame and the 8 STATISTICS numbers. Counters a
/// newer library appends beyond this table are exported by index.
pub fn render(streamstats: &[u64], statistics: &[u64; 8]) -> String {
    fn family(out: &mut String, name: &str, kind: &str, help: &str) {
        out.push_str(&format!(
            "# HELP zmq_proxy_stream_{name} {help}\n# TYPE zmq_proxy_stream_{name} {kind}\n"
        ));
    }
    let mut out = String::new();
    for &(index, name, kind, help) in STREAMSTATS {
        let Some(value) = streamstats.get(index as usize) else {
            continue;
        };
        let kind = match kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
        };
        family(&mut out, name, kind, help);
        out.push_str(&format!("zmq_proxy_stream_{name} {value}\n"));
    }
    if streamstats.len() > STREAMSTATS.len() {
        family(
            &mut out,
            "streamstats",
            "untyped",
            "STREAMSTATS counters this command does not know by name, by index.",
        );
        for (index, value) in streamstats.iter().enumerate().skip(STREAMSTATS.len()) {
            out.push_str(&format!(
                "zmq_proxy_stream_streamstats{{index=\"{index}\"}} {value}\n"
            ));
        }
    }
    for (i, (name, help)) in STATISTICS.iter().enumerate() {
        family(&mut out, name, "counter", help);
        for (side, offset) in [("frontend", 0), ("backend", 4)] {
            out.push_str(&format!(
                "zmq_proxy_stream_{name}{{socket=\"{side}\"}} {}\n",
                statistics[offset + i]
            ));
        }
    }
    out
}

/// Asks the proxy for STREAMSTATS and STATISTICS over a fresh REQ socket connected to its
/// control socket's inproc endpoint.
fn scrape(ctx: &zmq::Context, control: &str) -> Result<String, String> {
    let req = ctx.socket(zmq::REQ).map_err(|e| e.to_string())?;
    req.set_linger(0).map_err(|e| e.to_string())?;
    req.set_rcvtimeo(2000).map_err(|e| e.to_string())?;
    req.set_sndtimeo(2000).map_err(|e| e.to_string())?;
    req.connect(control).map_err(|e| e.to_string())?;
    let ask = |command: &str| -> Result<Vec<Vec<u8>>, String> {
        req.send(command, 0)
            .map_err(|e| format!("{command}: {e}"))?;
        req.recv_multipart(0).map_err(|e| format!("{command}: {e}"))
    };
    let frames = ask("STREAMSTATS")?;
    let [frame] = frames.as_slice() else {
        return Err(format!("STREAMSTATS: {} frames", frames.len()));
    };
    let streamstats: Vec<u64> = frame
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect();
    let frames = ask("STATISTICS")?;
    let statistics: Vec<u64> = frames
        .iter()
        .filter_map(|f| Some(u64::from_ne_bytes(f.as_slice().try_into().ok()?)))
        .collect();
    let statistics: [u64; 8] = statistics
        .try_into()
        .map_err(|_| "STATISTICS: not 8 uint64 frames".to_owned())?;
    Ok(render(&streamstats, &statistics))
}

/// The metrics server: serves until `stop` is set and a connection wakes it.
pub struct Server {
    pub listener: TcpListener,
    pub ctx: zmq::Context,
    pub control: String,
    pub stop: Arc<AtomicBool>,
}

impl Server {
    pub fn run(self) {
        for stream in self.listener.incoming() {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if let Ok(stream) = stream {
                // One bad client must not stop the metrics: its errors are its own.
                let _ = self.serve(stream);
            }
        }
    }

    fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let request = String::from_utf8_lossy(&head);
        let mut words = request.lines().next().unwrap_or("").split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
            ("GET", "/metrics") => match scrape(&self.ctx, &self.control) {
                Ok(text) => ("200 OK", text),
                Err(e) => (
                    "503 Service Unavailable",
                    format!("proxy did not answer: {e}\n"),
                ),
            },
            ("GET", _) => ("404 Not Found", "only /metrics is here\n".to_owned()),
            _ => ("405 Method Not Allowed", "GET only\n".to_owned()),
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_streamstats_counter_once_in_order() {
        let indices: Vec<c_int> = STREAMSTATS.iter().map(|s| s.0).collect();
        let expected: Vec<c_int> = (0..ZMQ_PROXY_STREAM_STAT_COUNT).collect();
        assert_eq!(
            indices, expected,
            "every ZMQ_PROXY_STREAM_STAT_* of src/api.rs needs a line in metrics::STREAMSTATS"
        );
        for (_, name, kind, _) in STREAMSTATS {
            assert_eq!(name.ends_with("_total"), *kind == Type::Counter, "{name}");
        }
    }

    #[test]
    fn exposition_format() {
        let stats: Vec<u64> = (0..ZMQ_PROXY_STREAM_STAT_COUNT as u64).collect();
        let text = render(&stats, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(text.starts_with(
            "# HELP zmq_proxy_stream_pairs_open Pairs relaying now.\n\
             # TYPE zmq_proxy_stream_pairs_open gauge\nzmq_proxy_stream_pairs_open 0\n"
        ));
        assert!(text.contains("\nzmq_proxy_stream_events_dropped_total 31\n"));
        assert!(text.contains("\nzmq_proxy_stream_bytes_sent_total{socket=\"backend\"} 8\n"));
        assert!(!text.contains("streamstats{"));
        let newer = render(&[0; 40], &[0; 8]);
        assert!(newer.contains("zmq_proxy_stream_streamstats{index=\"39\"} 0\n"));
    }
}
