//! Dial-out under session churn: does the broker's memory and session rate stay flat as
//! sessions come and go? `cargo bench --bench proxy -- --churn [SESSIONS]` (default 100,000).
//!
//! A dial-out broker (this executable run again as a child) dials one bound CURVE worker of
//! this process for every client; client threads open a CURVE session, make one round trip
//! and close it, over and over. At checkpoints the broker's RSS and the session rate since
//! the previous checkpoint are printed; the last lines compare the end with the 10,000th
//! session.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::{configure_client, ping_all};
use super::memory::rss_kib;
use super::memory_child::ChildBroker;
use super::worker::{bound_curve_worker, Worker};
use super::zmq_ctx::zerr;

const CLIENT_THREADS: usize = 8;
/// Sessions each client thread opens at once before closing them all.
const BATCH: usize = 4;

pub(crate) fn run(total: u64) -> Result<String, String> {
    let keys = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    let wctx = zmq::Context::new();
    let (w, endpoint) = bound_curve_worker(&wctx, &keys)?;
    let _worker = Worker::spawn(w);
    let broker = ChildBroker::spawn_with("stream-dial", None, Some(&endpoint))?;
    let pid = broker.child.id();
    let frontend = broker.frontend.clone();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|_| {
            let (done, stop, failures) = (done.clone(), stop.clone(), failures.clone());
            let (frontend, public) = (frontend.clone(), keys.public_key);
            std::thread::spawn(move || {
                let ctx = zmq::Context::new();
                let me = zmq::CurveKeyPair::new().expect("keypair");
                while !stop.load(Ordering::Relaxed) {
                    let clients: Vec<zmq::Socket> = (0..BATCH)
                        .map(|_| {
                            let s = ctx.socket(zmq::DEALER).expect("socket");
                            configure_client(&s, &public, &me).expect("options");
                            s.connect(&frontend).expect("connect");
                            s
                        })
                        .collect();
                    match ping_all(&clients, Duration::from_secs(20)) {
                        Ok(()) => done.fetch_add(BATCH as u64, Ordering::Relaxed),
                        Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let checkpoints: Vec<u64> = [10_000u64, 25_000, 50_000, 75_000, 100_000]
        .iter()
        .map(|c| c * total / 100_000)
        .collect();
    let mut out = String::from(
        "| sessions | broker RSS over the interval: min · median · max | sessions/s since previous |\n|---:|---:|---:|\n",
    );
    let (mut last_n, mut last_t) = (0u64, Instant::now());
    // RSS moves by megabytes within seconds (libzmq's and the relay's buffers come and go,
    // malloc_trim runs at most once a second), so one reading per checkpoint says little:
    // each interval is sampled every 20 ms and summarised.
    let mut rows: Vec<(Summary, f64)> = Vec::new();
    for &cp in &checkpoints {
        let mut samples = Vec::new();
        while done.load(Ordering::Relaxed) < cp {
            std::thread::sleep(Duration::from_millis(20));
            samples.push(rss_kib(pid)?);
            if failures.load(Ordering::Relaxed) > 100 {
                stop.store(true, Ordering::Relaxed);
                return Err("more than 100 failed sessions".into());
            }
        }
        samples.push(rss_kib(pid)?);
        let n = done.load(Ordering::Relaxed);
        let rate = (n - last_n) as f64 / last_t.elapsed().as_secs_f64();
        let rss = Summary::of(samples);
        out.push_str(&format!(
            "| {n} | {} · {} · {} KiB | {rate:.0} |\n",
            rss.min, rss.median, rss.max
        ));
        eprintln!(
            "churn: {n} sessions, broker RSS {} / {} / {} KiB (min/median/max), {rate:.0} sessions/s",
            rss.min, rss.median, rss.max
        );
        rows.push((rss, rate));
        (last_n, last_t) = (n, Instant::now());
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let (first, last) = (&rows[0].0, &rows[rows.len() - 1].0);
    let rates: Vec<f64> = rows[1..].iter().map(|r| r.1).collect();
    out.push_str(&format!(
        "\nBroker RSS, last interval / interval up to {}: median {:.3}, max {:.3}; session rate of the last interval / of the first after it: {:.3}; failed batches: {}\n",
        checkpoints[0],
        last.median as f64 / first.median as f64,
        last.max as f64 / first.max as f64,
        rates[rates.len() - 1] / rates[0],
        failures.load(Ordering::Relaxed),
    ));
    Ok(out)
}

/// Minimum, median and maximum of an interval's RSS samples (KiB).
struct Summary {
    min: u64,
    median: u64,
    max: u64,
}

impl Summary {
    fn of(mut samples: Vec<u64>) -> Summary {
        samples.sort_unstable();
        Summary {
            min: samples[0],
            median: samples[samples.len() / 2],
            max: samples[samples.len() - 1],
        }
    }
}
