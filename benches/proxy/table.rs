//! The markdown table and its legend.

use std::collections::BTreeMap;

use super::metric::Metric;
use super::options::ARMS;
use super::stats::Stat;

pub(crate) const RATIOS: [(&str, &str); 10] = [
    ("stream", "direct"),
    ("stream", "haproxy"),
    ("stream-2t", "haproxy"),
    ("stream", "steerable"),
    ("stream-zmq", "steerable"),
    ("stream-dial", "direct"),
    ("stream-dial", "steerable"),
    ("steerable", "direct"),
    ("haproxy", "direct"),
    ("haproxy", "steerable"),
];

pub(crate) fn render_table(
    metrics: &[Metric],
    ran: &[&'static str],
    skipped: &BTreeMap<&'static str, String>,
) -> String {
    let mut t = String::new();
    t.push_str("| metric |");
    for arm in ARMS {
        t.push_str(&format!(" {arm} |"));
    }
    for (a, r) in RATIOS {
        t.push_str(&format!(" {a} ÷ {r} |"));
    }
    t.push_str("\n|---|");
    for _ in 0..ARMS.len() {
        t.push_str("---:|");
    }
    for _ in RATIOS {
        t.push_str("---:|");
    }
    t.push('\n');
    for m in metrics {
        t.push_str(&format!("| {} |", m.label));
        for arm in ARMS {
            let cell = if skipped.contains_key(arm) {
                "skipped".to_string()
            } else if !ran.contains(&arm) {
                "not run".to_string()
            } else {
                m.cell(arm).unwrap_or_else(|| "–".to_string())
            };
            t.push_str(&format!(" {cell} |"));
        }
        for (a, r) in RATIOS {
            let cell = m
                .ratio(a, r)
                .map_or_else(|| "–".to_string(), |x| format!("{x:.2}×"));
            t.push_str(&format!(" {cell} |"));
        }
        t.push('\n');
    }
    t
}

pub(crate) fn legend(stat: Stat) -> String {
    format!(
        "Each figure is the {} of the rounds (every round's figure is in the JSON). \
Throughput = messages/s (and MB/s of payload, 1 MB = 10^6 B) of one-way streaming from the clients \
to the worker, each client keeping at most 1 MiB unacknowledged (credit-based flow control); \
\"without flow control\" = the same with no credits (local_thr style), where a broker that cannot \
push back on one connection must buffer or close; latency = request/reply round trip of one \
client; set-up = fresh CURVE client from connect to its first reply; broker CPU per GB = CPU \
seconds of the broker (proxy thread + its libzmq I/O threads; all of haproxy) per 10^9 payload \
bytes relayed in the throughput runs of that size (all rounds); memory = RSS growth of the broker \
process per established idle session (stream: client and worker connection pair). Ratios divide \
the left arm's figure by the right arm's: above 1 is better for throughput, worse for latency, \
set-up, CPU and memory.",
        stat.name()
    )
}
