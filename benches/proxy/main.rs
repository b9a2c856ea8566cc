//! Side-by-side benchmark of `zmq_proxy_stream` against what a broker author runs today.
//!
//! ```text
//! cargo bench --bench proxy -- [--quick | --smoke] [--json PATH] [--rounds N]
//!                                [--stat median|best] [--arms LIST]
//! ```
//!
//! Every arm is a CURVE DEALER client talking to a ROUTER worker over TCP on 127.0.0.1:
//! - `direct`: the client connects straight to a CURVE ROUTER worker (no broker: the limit);
//! - `stream`: through `zmq_proxy_stream` on a thread of this process, CURVE end to end, with
//!   defaults (pairs taken out of libzmq and relayed by one relay thread); the worker is a
//!   CURVE ROUTER connected many times to the proxy's backend (one slot each);
//! - `stream-2t`: the same with ZMQ_PROXY_STREAM_THREADS 2 (not in the memory rows);
//! - `stream-zmq`: the data path of earlier versions, through an options handle
//!   (`zmq_proxy_stream_new`/`_setopt`/`_run`) with ZMQ_PROXY_STREAM_TAKEOVER 0 and
//!   ZMQ_PROXY_STREAM_BACKPRESSURE 1 (its lossless mode): every chunk through libzmq's STREAM
//!   sockets (not in the memory rows);
//! - `stream-dial`: dial-out, through an options handle with ZMQ_PROXY_STREAM_WORKER_ENDPOINT:
//!   the worker binds a CURVE ROUTER and the proxy connects to it once per client (not in the
//!   memory rows either);
//! - `steerable`: through libzmq's `zmq_proxy_steerable` on a thread of this process with a CURVE
//!   ROUTER frontend (CURVE ends at the broker), a DEALER backend and a NULL ROUTER worker;
//! - `haproxy`: through HAProxy in TCP mode (a child process) in front of a CURVE ROUTER worker,
//!   when `haproxy` is on PATH; skipped with a note otherwise.
//!
//! Clients, each worker and each in-process proxy have their own libzmq context (so their own
//! I/O thread), as separate processes would. Arms are interleaved: every round runs each case
//! on every arm before the next case, starting each round with a different arm.
//!
//! What is measured (BENCHMARKS.md has the long form):
//! - throughput: each client streams its share of N messages one way to the worker, which
//!   counts them and acknowledges the last one (as libzmq's local_thr/remote_thr); time from
//!   the first send to the last acknowledgement; median over rounds. Clients keep at most 1 MiB
//!   unacknowledged (the worker returns a credit every 256 KiB); two extra rows stream 8 KiB
//!   and 64 KiB messages with no flow control at all, exactly like local_thr;
//! - latency: one client, request/reply echo, round-trip time, p50/p99 (hdrhistogram);
//! - set-up: a fresh client socket, from `zmq_connect` to the echo of its first request;
//! - the broker's CPU per GB of payload relayed during the throughput runs: the proxy thread
//!   plus its context's libzmq threads (in-process proxies), or all of haproxy's threads;
//! - memory per idle pair: RSS growth of a broker process (this executable run again as a
//!   child, or haproxy) holding N established idle sessions, divided by N, with a plain
//!   ZMQ_STREAM baseline (the same connections, no proxy) for the proxy's own share.
//!
//! The same program is compiled into `tests/bench_smoke.rs`, which calls [`run_cli`] in `--smoke`
//! mode; the memory children re-run the current executable with [`memory_child::CHILD_ENV`] set.

mod arms;
mod churn;
mod client;
mod cpu;
mod haproxy;
mod inproc_proxy;
mod json_report;
mod latency;
mod memory;
mod memory_child;
mod metric;
mod options;
mod results;
mod run;
mod setup;
mod stats;
mod table;
mod throughput;
mod worker;
mod zmq_ctx;

pub use memory_child::child_main_from_env;
pub use run::run_cli;

fn main() {
    child_main_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--churn") {
        let total = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        match churn::run(total) {
            Ok(table) => println!("{table}"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    match run_cli(&args) {
        Ok(report) => {
            println!("{}", report.table);
            if !report.errors.is_empty() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
