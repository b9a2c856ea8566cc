//! The JSON report and the machine it ran on.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::haproxy::haproxy_version;
use super::metric::Metric;
use super::options::{Opts, Plan, SIZES};
use super::results::Results;
use super::stats::{merged, Rounds};
use super::table::RATIOS;
use super::throughput::{Flow, WINDOW_BYTES};

pub(crate) fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

pub(crate) fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let (ma, mi, pa) = zmq::version();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "kernel": read_trim("/proc/sys/kernel/osrelease"),
        "libzmq": format!("{ma}.{mi}.{pa}"),
        "haproxy": haproxy_version(),
        "loadavg_at_start": read_trim("/proc/loadavg"),
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn to_json(
    opts: &Opts,
    plan: &Plan,
    machine: Value,
    ran: &[&'static str],
    skipped: &BTreeMap<&'static str, String>,
    metrics: &[Metric],
    res: &Results,
    elapsed: f64,
) -> Value {
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|m| {
            let mut ratios = Map::new();
            for (a, r) in RATIOS {
                if let Some(x) = m.ratio(a, r) {
                    ratios.insert(format!("{a}/{r}"), json!(x));
                }
            }
            let mut v = json!({
                "key": m.key,
                "label": m.label,
                "unit": m.unit,
                "values": m.values,
                "ratios": ratios,
            });
            if !m.notes.is_empty() {
                v["notes"] = json!(m.notes);
            }
            if !m.mb_per_s.is_empty() {
                v["mb_per_s"] = json!(m.mb_per_s);
            }
            v
        })
        .collect();
    let tput: Vec<Value> = res
        .tput
        .iter()
        .map(|r| {
            json!({
                "round": r.round,
                "arm": r.arm,
                "size": r.size,
                "clients": r.clients,
                "flow": match r.flow {
                    Flow::Window => "window",
                    Flow::Unbounded => "unbounded",
                },
                "messages_sent": r.sent,
                "messages_received": r.received,
                "disconnects": r.disconnects,
                "seconds": r.secs,
                "msgs_per_s": r.msgs_per_s(),
                "mb_per_s": r.bytes() as f64 / r.secs / 1e6,
                "broker_cpu_ns": r.cpu.map(|c| c.total_ns),
                "proxy_thread_cpu_ns": r.cpu.map(|c| c.proxy_thread_ns),
            })
        })
        .collect();
    let hist_json = |h: &Histogram<u64>| {
        json!({
            "samples": h.len(),
            "p50_ns": h.value_at_quantile(0.5),
            "p90_ns": h.value_at_quantile(0.9),
            "p99_ns": h.value_at_quantile(0.99),
            "max_ns": h.max(),
            "mean_ns": h.mean(),
        })
    };
    let rounds_json = |rounds: &Rounds| {
        let mut v = hist_json(&merged(rounds));
        v["per_round"] = rounds
            .iter()
            .map(|(round, h)| {
                json!({
                    "round": round,
                    "p50_ns": h.value_at_quantile(0.5),
                    "p99_ns": h.value_at_quantile(0.99),
                })
            })
            .collect();
        v
    };
    let latency: Vec<Value> = res
        .latency
        .iter()
        .map(|((arm, size), rounds)| {
            let mut v = rounds_json(rounds);
            v["arm"] = json!(arm);
            v["size"] = json!(size);
            v
        })
        .collect();
    let setup: Map<String, Value> = res
        .setup
        .iter()
        .map(|(arm, rounds)| (arm.to_string(), rounds_json(rounds)))
        .collect();
    let memory: Map<String, Value> = res
        .memory
        .iter()
        .map(|(kind, r)| {
            (
                kind.to_string(),
                json!({
                    "pairs": r.pairs,
                    "rss_before_kib": r.rss_before_kib,
                    "rss_after_kib": r.rss_after_kib,
                    "per_pair_kib": r.per_pair_kib(),
                    "fds_added": r.fds_added,
                }),
            )
        })
        .collect();
    json!({
        "schema": "streamq-proxy/bench-proxy/1",
        "mode": opts.mode.name(),
        "stat": opts.stat.name(),
        "rounds": plan.rounds,
        "plan": {
            "throughput_messages": SIZES.iter().zip(plan.tput_msgs).map(|(s, n)| json!({"size": s, "messages": n})).collect::<Vec<_>>(),
            "latency_iterations_per_round": plan.latency_iters,
            "setup_iterations_per_round": plan.setup_iters,
            "stream_worker_slots": plan.stream_slots,
            "window_bytes_per_client": WINDOW_BYTES,
            "memory_pairs": plan.mem_pairs,
        },
        "elapsed_s": elapsed,
        "machine": machine,
        "loadavg_at_end": read_trim("/proc/loadavg"),
        "arms": ran,
        "skipped": skipped,
        "metrics": metrics,
        "raw": {
            "throughput": tput,
            "latency": latency,
            "setup": setup,
            "memory": memory,
        },
        "errors": res.errors,
    })
}
