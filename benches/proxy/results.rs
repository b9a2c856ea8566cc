//! What the runs gave, and the table rows (metrics) made from it.

use std::collections::BTreeMap;

use super::memory::MemRecord;
use super::metric::{size_name, Metric};
use super::options::{CLIENT_COUNTS, LATENCY_SIZES, SIZES, UNBOUNDED_SIZES};
use super::stats::{p50_difference, quantile_over_rounds, Rounds, Stat};
use super::throughput::{Flow, TputRecord};

#[derive(Default)]
pub(crate) struct Results {
    pub(crate) tput: Vec<TputRecord>,
    /// Per arm (and size), one histogram per round.
    pub(crate) latency: BTreeMap<(&'static str, usize), Rounds>,
    pub(crate) setup: BTreeMap<&'static str, Rounds>,
    pub(crate) memory: BTreeMap<&'static str, MemRecord>,
    pub(crate) errors: Vec<String>,
}

/// Said in the memory row's stream-zmq and stream-dial cells (and a note under the table).
pub(crate) const MEMORY_SKIPPED_STREAM_BP: &str = "not measured";

pub(crate) fn build_metrics(res: &Results, arms: &[&'static str], stat: Stat) -> Vec<Metric> {
    let mut out = Vec::new();
    for &size in &SIZES {
        for &n in &CLIENT_COUNTS {
            let mut m = Metric::new(
                format!("throughput_{size}B_{n}c"),
                format!(
                    "throughput {}, {n} client{}",
                    size_name(size),
                    if n == 1 { "" } else { "s" }
                ),
                "msg/s",
            );
            for &arm in arms {
                let rates: Vec<f64> = res
                    .tput
                    .iter()
                    .filter(|r| {
                        r.flow == Flow::Window && r.arm == arm && r.size == size && r.clients == n
                    })
                    .map(TputRecord::msgs_per_s)
                    .collect();
                if let Some(v) = stat.of(rates, true) {
                    m.values.insert(arm, v);
                    m.mb_per_s.insert(arm, v * size as f64 / 1e6);
                }
            }
            out.push(m);
        }
    }
    for &size in &UNBOUNDED_SIZES {
        let mut m = Metric::new(
            format!("throughput_unbounded_{size}B_1c"),
            format!(
                "throughput without flow control (local_thr style), {}, 1 client",
                size_name(size)
            ),
            "msg/s",
        );
        for &arm in arms {
            let runs: Vec<&TputRecord> = res
                .tput
                .iter()
                .filter(|r| r.flow == Flow::Unbounded && r.arm == arm && r.size == size)
                .collect();
            let complete: Vec<f64> = runs
                .iter()
                .filter(|r| r.complete())
                .map(|r| r.msgs_per_s())
                .collect();
            let closed = runs.len() - complete.len();
            if let Some(v) = stat.of(complete, true) {
                m.values.insert(arm, v);
                m.mb_per_s.insert(arm, v * size as f64 / 1e6);
            }
            if closed > 0 {
                let lost: u64 = runs.iter().map(|r| r.sent - r.received).sum();
                m.notes.insert(
                    arm,
                    format!(
                        "connection closed by the broker in {closed} of {} runs ({lost} messages lost)",
                        runs.len()
                    ),
                );
            }
        }
        out.push(m);
    }
    for &size in &LATENCY_SIZES {
        for (q, qn) in [(0.5, "p50"), (0.99, "p99")] {
            let mut m = Metric::new(
                format!("latency_{qn}_{size}B"),
                format!("latency {qn}, {}", size_name(size)),
                "us",
            );
            for &arm in arms {
                if let Some(v) = res
                    .latency
                    .get(&(arm, size))
                    .and_then(|r| quantile_over_rounds(r, q, stat))
                {
                    m.values.insert(arm, v / 1e3);
                }
            }
            out.push(m);
        }
        let mut added = Metric::new(
            format!("latency_added_p50_{size}B"),
            format!("added p50 latency over direct, {}", size_name(size)),
            "us",
        );
        if let Some(direct) = res.latency.get(&("direct", size)) {
            for &arm in arms {
                if let Some(v) = res
                    .latency
                    .get(&(arm, size))
                    .and_then(|r| p50_difference(r, direct, stat))
                {
                    added.values.insert(arm, v / 1e3);
                }
            }
        }
        out.push(added);
    }
    for (q, qn) in [(0.5, "p50"), (0.99, "p99")] {
        let mut m = Metric::new(
            format!("setup_{qn}"),
            format!("CURVE set-up {qn} (connect to first reply)"),
            "ms",
        );
        for &arm in arms {
            if let Some(v) = res
                .setup
                .get(arm)
                .and_then(|r| quantile_over_rounds(r, q, stat))
            {
                m.values.insert(arm, v / 1e6);
            }
        }
        out.push(m);
    }
    for (thread_only, key, what) in [
        (false, "cpu_per_gb", "broker CPU per GB"),
        (true, "cpu_thread_per_gb", "… of which the proxy thread"),
    ] {
        for &size in &SIZES {
            let mut m = Metric::new(
                format!("{key}_{size}B"),
                format!("{what}, {}", size_name(size)),
                "s/GB",
            );
            for &arm in arms {
                let (mut ns, mut bytes) = (0u64, 0u64);
                let windowed = res
                    .tput
                    .iter()
                    .filter(|r| r.flow == Flow::Window && r.arm == arm && r.size == size);
                for r in windowed {
                    if let Some(cpu) = r.cpu {
                        ns += if thread_only {
                            cpu.proxy_thread_ns
                        } else {
                            cpu.total_ns
                        };
                        bytes += r.bytes();
                    }
                }
                // haproxy has no separate proxy thread.
                if bytes > 0 && !(thread_only && arm == "haproxy") {
                    m.values.insert(arm, ns as f64 / 1e9 / (bytes as f64 / 1e9));
                }
            }
            out.push(m);
        }
    }
    let mut mem = Metric::new(
        "memory_per_idle_pair".into(),
        "memory per idle pair (broker RSS)".into(),
        "KiB",
    );
    for (&kind, rec) in &res.memory {
        if kind != "stream-baseline" {
            mem.values.insert(kind, rec.per_pair_kib());
        }
    }
    for arm in ["stream-2t", "stream-zmq", "stream-dial"] {
        if arms.contains(&arm) {
            mem.notes.insert(arm, MEMORY_SKIPPED_STREAM_BP.into());
        }
    }
    out.push(mem);
    if let Some(base) = res.memory.get("stream-baseline") {
        let mut m = Metric::new(
            "memory_stream_baseline".into(),
            "… plain STREAM sockets, same connections, no proxy".into(),
            "KiB",
        );
        m.values.insert("stream", base.per_pair_kib());
        out.push(m);
        if let Some(s) = res.memory.get("stream") {
            let mut own = Metric::new(
                "memory_proxy_own".into(),
                "… the proxy's own share (stream − baseline)".into(),
                "KiB",
            );
            own.values
                .insert("stream", s.per_pair_kib() - base.per_pair_kib());
            out.push(own);
        }
    }
    out
}
