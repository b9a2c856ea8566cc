//! One run of the benchmark as the command line says: every arm, every round, the report.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::arms::{start_arm, Arm};
use super::haproxy::find_on_path;
use super::json_report::{machine, to_json};
use super::latency::latency_round;
use super::memory::{memory, raise_fd_limit};
use super::metric::{format_rate, size_name};
use super::options::{parse_opts, Plan, CLIENT_COUNTS, LATENCY_SIZES, SIZES, UNBOUNDED_SIZES};
use super::results::{build_metrics, Results};
use super::setup::setup_round;
use super::table::{legend, render_table};
use super::throughput::{throughput, Flow, TputRecord};
use super::zmq_ctx::zerr;

/// What one run produced.
pub struct Report {
    /// The markdown table (with its legend) that the benchmark prints.
    pub table: String,
    pub json: Value,
    /// Arms that ran, and arms skipped with the reason.
    pub arms_run: Vec<String>,
    pub skipped: Vec<(String, String)>,
    /// Cases that failed (their figures are missing from the table).
    pub errors: Vec<String>,
}

/// Runs the benchmark as the command line says.
pub fn run_cli(args: &[String]) -> Result<Report, String> {
    let opts = parse_opts(args)?;
    let mut plan = Plan::new(opts.mode);
    if let Some(r) = opts.rounds {
        plan.rounds = r;
    }
    raise_fd_limit();
    let started = Instant::now();
    let machine = machine();
    let keys = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    let me = zmq::CurveKeyPair::new().map_err(zerr("keypair"))?;
    let cctx = zmq::Context::new();

    let mut arms: Vec<Arm> = Vec::new();
    let mut skipped: BTreeMap<&'static str, String> = BTreeMap::new();
    for &name in &opts.arms {
        if name == "haproxy" && find_on_path("haproxy").is_none() {
            let note = "haproxy is not on PATH (Debian: apt-get install haproxy)".to_string();
            eprintln!("note: arm haproxy skipped: {note}");
            skipped.insert(name, note);
            continue;
        }
        match start_arm(name, &keys, &plan) {
            Ok(arm) => arms.push(arm),
            Err(e) => {
                eprintln!("note: arm {name} skipped: {e}");
                skipped.insert(name, e);
            }
        }
    }
    let ran: Vec<&'static str> = arms.iter().map(|a| a.name).collect();
    let probes: BTreeMap<&'static str, String> = arms
        .iter()
        .filter_map(|a| Some((a.name, format!("{:?}", a.probe.as_ref()?))))
        .collect();
    eprintln!(
        "mode {}, {} round(s), {} of rounds, arms: {}",
        opts.mode.name(),
        plan.rounds,
        opts.stat.name(),
        ran.join(", ")
    );

    let mut res = Results::default();
    for round in 0..plan.rounds {
        // Each round starts with a different arm, so that no arm always runs first.
        let order: Vec<&Arm> = (0..arms.len())
            .map(|i| &arms[(i + round) % arms.len()])
            .collect();
        for (si, &size) in SIZES.iter().enumerate() {
            let mut cases: Vec<(Flow, usize)> =
                CLIENT_COUNTS.iter().map(|&n| (Flow::Window, n)).collect();
            if UNBOUNDED_SIZES.contains(&size) {
                cases.push((Flow::Unbounded, 1));
            }
            for (flow, n) in cases {
                for arm in &order {
                    let total = plan.tput_msgs[si];
                    let what = format!(
                        "throughput{} {} x{n} {}",
                        if flow == Flow::Unbounded {
                            " (unbounded)"
                        } else {
                            ""
                        },
                        size_name(size),
                        arm.name
                    );
                    let rec =
                        throughput(arm, &cctx, &me, size, n, total, flow, plan.deadline).map(|o| {
                            TputRecord {
                                round,
                                arm: arm.name,
                                flow,
                                size,
                                clients: n,
                                sent: o.sent,
                                received: o.received,
                                secs: o.secs,
                                cpu: o.cpu,
                                disconnects: o.disconnects,
                            }
                        });
                    match rec {
                        Ok(rec) if rec.complete() || flow == Flow::Unbounded => {
                            eprintln!(
                                "[{}/{}] {what:<38} {:>16}{}{}",
                                round + 1,
                                plan.rounds,
                                format_rate(rec.msgs_per_s()),
                                rec.cpu.map_or(String::new(), |c| format!(
                                    "  broker CPU {:.2} s/GB",
                                    c.total_ns as f64 / rec.bytes().max(1) as f64
                                )),
                                if rec.complete() {
                                    String::new()
                                } else {
                                    format!(
                                        "  CLOSED: {} connection(s) dropped, {} of {} delivered",
                                        rec.disconnects, rec.received, rec.sent
                                    )
                                }
                            );
                            res.tput.push(rec);
                        }
                        Ok(rec) => {
                            let e = format!(
                                "round {} {what}: the worker received {} of {} messages; {} \
                                 client connection(s) closed during the run",
                                round + 1,
                                rec.received,
                                rec.sent,
                                rec.disconnects
                            );
                            eprintln!("error: {e}");
                            res.errors.push(e);
                        }
                        Err(e) => {
                            let e = format!("round {} {what}: {e}", round + 1);
                            eprintln!("error: {e}");
                            res.errors.push(e);
                        }
                    }
                }
            }
        }
        for &size in &LATENCY_SIZES {
            for (name, run) in latency_round(&order, &cctx, &me, size, &plan) {
                match run {
                    Ok(h) => {
                        eprintln!(
                            "[{}/{}] latency {:>6} {:<9} p50 {:.0} µs p99 {:.0} µs",
                            round + 1,
                            plan.rounds,
                            size_name(size),
                            name,
                            h.value_at_quantile(0.5) as f64 / 1e3,
                            h.value_at_quantile(0.99) as f64 / 1e3
                        );
                        res.latency
                            .entry((name, size))
                            .or_default()
                            .insert(round, h);
                    }
                    Err(e) => res.errors.push(format!(
                        "round {} latency {} {name}: {e}",
                        round + 1,
                        size_name(size),
                    )),
                }
            }
        }
        for (name, run) in setup_round(&order, &cctx, &me, plan.setup_iters) {
            match run {
                Ok(h) => {
                    eprintln!(
                        "[{}/{}] set-up {:<9} p50 {:.2} ms p99 {:.2} ms",
                        round + 1,
                        plan.rounds,
                        name,
                        h.value_at_quantile(0.5) as f64 / 1e6,
                        h.value_at_quantile(0.99) as f64 / 1e6
                    );
                    res.setup.entry(name).or_default().insert(round, h);
                }
                Err(e) => res
                    .errors
                    .push(format!("round {} set-up {name}: {e}", round + 1)),
            }
        }
    }
    // The brokers of the timed runs stop here, before the memory runs.
    drop(arms);

    let mut mem_kinds: Vec<&'static str> = Vec::new();
    if ran.contains(&"stream") {
        mem_kinds.extend(["stream", "stream-baseline"]);
    }
    for k in ["steerable", "haproxy"] {
        if ran.contains(&k) {
            mem_kinds.push(k);
        }
    }
    for kind in mem_kinds {
        match memory(kind, plan.mem_pairs, &keys, &plan) {
            Ok(rec) => {
                eprintln!(
                    "memory {kind:<15} {} pairs: RSS {} -> {} KiB, {:.1} KiB per pair ({} fds)",
                    rec.pairs,
                    rec.rss_before_kib,
                    rec.rss_after_kib,
                    rec.per_pair_kib(),
                    rec.fds_added
                );
                res.memory.insert(kind, rec);
            }
            Err(e) => {
                let e = format!("memory {kind}: {e}");
                eprintln!("error: {e}");
                res.errors.push(e);
            }
        }
    }

    let metrics = build_metrics(&res, &ran, opts.stat);
    let mut table = render_table(&metrics, &ran, &skipped);
    table.push('\n');
    table.push_str(&legend(opts.stat));
    table.push('\n');
    for (arm, why) in &skipped {
        table.push_str(&format!("\nNote: arm {arm} skipped: {why}"));
    }
    let skip_note = ["stream-2t", "stream-zmq", "stream-dial"]
        .iter()
        .any(|a| ran.contains(a));
    if skip_note {
        table.push_str(
            "\nNote: the memory measurement is made for arm stream (taken-over pairs); it skips \
stream-2t (the same pairs on two relay threads), stream-zmq (the libzmq relay of earlier \
versions, TAKEOVER 0) and stream-dial (the same pairs, with connections the proxy made \
instead of ones it accepted).",
        );
    }
    for e in &res.errors {
        table.push_str(&format!("\nError: {e}"));
    }
    if skip_note || !skipped.is_empty() || !res.errors.is_empty() {
        table.push('\n');
    }

    let elapsed = started.elapsed().as_secs_f64();
    let mut json = to_json(
        &opts, &plan, machine, &ran, &skipped, &metrics, &res, elapsed,
    );
    json["cpu_probes"] = json!(probes);
    if let Some(dir) = opts.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| format!("json: {e}"))?;
    std::fs::write(&opts.json, text).map_err(|e| format!("write {}: {e}", opts.json.display()))?;
    eprintln!(
        "done in {elapsed:.0} s; JSON written to {}",
        opts.json.display()
    );
    Ok(Report {
        table,
        json,
        arms_run: ran.iter().map(|s| s.to_string()).collect(),
        skipped: skipped
            .iter()
            .map(|(a, w)| (a.to_string(), w.clone()))
            .collect(),
        errors: res.errors,
    })
}
