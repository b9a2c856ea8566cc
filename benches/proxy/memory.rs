//! Memory per idle pair: RSS growth of a broker process holding idle sessions.

use std::time::{Duration, Instant};

use super::client::{configure_client, ping_all};
use super::haproxy::{tcp_port, Haproxy};
use super::memory_child::ChildBroker;
use super::options::Plan;
use super::worker::{bound_curve_worker, curve_worker_socket, Worker};
use super::zmq_ctx::{zerr, RawCtx};

pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("status of {pid}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no VmRSS for {pid}"))
}

pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub(crate) fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A broker process of a memory run.
pub(crate) enum Broker {
    Child(ChildBroker),
    Haproxy(Haproxy),
}

#[derive(Clone, Debug)]
pub(crate) struct MemRecord {
    pub(crate) pairs: usize,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    pub(crate) fds_added: usize,
}

impl MemRecord {
    pub(crate) fn per_pair_kib(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) / self.pairs as f64
    }
}

/// RSS growth of a broker process holding `n` established, idle client sessions.
pub(crate) fn memory(
    kind: &'static str,
    n: usize,
    keys: &zmq::CurveKeyPair,
    plan: &Plan,
) -> Result<MemRecord, String> {
    let wctx = zmq::Context::new();
    let me = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    // The broker process: this executable run again, or haproxy; killed when this returns.
    let broker: Broker;
    // The worker socket, and the endpoint it connects to how many times (None: it binds).
    let worker: (zmq::Socket, Option<(String, usize)>);
    match kind {
        "stream" | "stream-baseline" | "steerable" => {
            let secret = (kind == "steerable").then_some(&keys.secret_key);
            let child = ChildBroker::spawn(kind, secret)?;
            worker = if kind == "steerable" {
                let w = wctx.socket(zmq::ROUTER).map_err(zerr("worker"))?;
                w.set_linger(0).map_err(zerr("linger"))?;
                (w, Some((child.backend.clone(), 1)))
            } else {
                let w = curve_worker_socket(&wctx, keys)?;
                w.set_immediate(true).map_err(zerr("immediate"))?;
                (w, Some((child.backend.clone(), n)))
            };
            broker = Broker::Child(child);
        }
        "haproxy" => {
            let (w, endpoint) = bound_curve_worker(&wctx, keys)?;
            broker = Broker::Haproxy(Haproxy::start(tcp_port(&endpoint)?)?);
            worker = (w, None);
        }
        other => return Err(format!("unknown memory arm {other}")),
    }
    let (pid, frontend) = match &broker {
        Broker::Child(child) => (child.child.id(), child.frontend.clone()),
        Broker::Haproxy(h) => (h.pid(), format!("tcp://127.0.0.1:{}", h.port)),
    };
    std::thread::sleep(Duration::from_millis(300));
    let rss_before_kib = rss_kib(pid)?;
    let fd0 = fd_count(pid);

    let (wsock, connects) = worker;
    if let Some((backend, count)) = connects {
        for _ in 0..count {
            wsock.connect(&backend).map_err(zerr("worker connect"))?;
        }
    }
    let _worker = Worker::spawn(wsock);
    let cctx = RawCtx::new(None, Some(n as i32 + 64))?;
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let s = cctx.socket(zmq_sys::ZMQ_DEALER)?;
        configure_client(&s, &keys.public_key, &me)?;
        s.connect(&frontend).map_err(zerr("client connect"))?;
        clients.push(s);
    }
    let expected_fds = match kind {
        "steerable" => n,
        _ => 2 * n,
    };
    let result = (|| {
        if kind != "stream-baseline" {
            ping_all(&clients, plan.deadline)?;
        }
        let end = Instant::now() + plan.deadline;
        while fd_count(pid) < fd0 + expected_fds {
            if Instant::now() > end {
                return Err(format!(
                    "{kind}: {} of {expected_fds} connections after {:?}",
                    fd_count(pid).saturating_sub(fd0),
                    plan.deadline
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the handshakes' buffers and the proxy's queues settle.
        std::thread::sleep(Duration::from_millis(500));
        Ok(MemRecord {
            pairs: n,
            rss_before_kib,
            rss_after_kib: rss_kib(pid)?,
            fds_added: fd_count(pid).saturating_sub(fd0),
        })
    })();
    drop(clients);
    drop(cctx);
    drop(broker);
    result
}
