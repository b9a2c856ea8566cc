//! The benchmark program (`benches/proxy/`) runs end to end in its smallest mode: every arm
//! that is not skipped appears in its table with positive figures, and its JSON is written.
//! No timing is asserted: the figures of such a short run mean nothing.

#[allow(dead_code)]
#[path = "../benches/proxy/main.rs"]
mod proxy_bench;

/// Arms whose figure a row must have (of the arms that ran).
fn arms_with_figures<'a>(key: &str, ran: &[&'a str]) -> Vec<&'a str> {
    let brokers: Vec<&str> = ran.iter().copied().filter(|a| *a != "direct").collect();
    if key.starts_with("cpu_thread_per_gb") {
        // haproxy has no separate proxy thread.
        brokers.into_iter().filter(|a| *a != "haproxy").collect()
    } else if key.starts_with("cpu_per_gb") {
        brokers
    } else if key == "memory_per_idle_pair" {
        // The memory measurement skips stream-zmq and stream-dial (their cells say so).
        brokers
            .into_iter()
            .filter(|a| !["stream-2t", "stream-zmq", "stream-dial"].contains(a))
            .collect()
    } else if key == "memory_stream_baseline" {
        vec!["stream"]
    } else if key.starts_with("latency_added")
        || key == "memory_proxy_own"
        || key.starts_with("throughput_unbounded")
    {
        // Differences may be zero or negative; without flow control a broker may close.
        vec![]
    } else {
        ran.to_vec()
    }
}

fn leading_number(cell: &str) -> Option<f64> {
    let end = cell
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(cell.len());
    cell[..end].parse().ok()
}

#[test]
fn benchmark_runs_in_smoke_mode() {
    let json_path =
        std::env::temp_dir().join(format!("streamq-bench-smoke-{}.json", std::process::id()));
    let args = vec![
        "--smoke".to_string(),
        "--json".to_string(),
        json_path.display().to_string(),
    ];
    let report = proxy_bench::run_cli(&args).expect("the benchmark runs");
    println!("{}", report.table);
    assert!(report.errors.is_empty(), "errors: {:#?}", report.errors);

    let ran: Vec<&str> = report.arms_run.iter().map(String::as_str).collect();
    for arm in [
        "direct",
        "stream",
        "stream-2t",
        "stream-zmq",
        "stream-dial",
        "steerable",
    ] {
        assert!(
            ran.contains(&arm),
            "arm {arm} ran; skipped: {:?}",
            report.skipped
        );
    }
    assert!(
        ran.contains(&"haproxy") || report.skipped.iter().any(|(a, _)| a == "haproxy"),
        "haproxy either runs or is skipped with a note"
    );
    for (arm, why) in &report.skipped {
        assert!(
            report.table.contains(&format!("arm {arm} skipped: {why}")),
            "the table notes why {arm} was skipped"
        );
    }

    // The JSON on disk: every figure that must be there is positive.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON written"))
            .expect("valid JSON");
    let _ = std::fs::remove_file(&json_path);
    let metrics = json["metrics"].as_array().expect("metrics");
    assert!(metrics.len() >= 25, "{} metrics", metrics.len());

    // The table: a header naming every arm, then one row per metric with a positive figure
    // in the column of every arm that must have one.
    let mut lines = report.table.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .split('|')
        .map(str::trim)
        .collect();
    let column = |arm: &str| header.iter().position(|h| *h == arm).expect("arm column");
    for arm in [
        "direct",
        "stream",
        "stream-2t",
        "stream-zmq",
        "stream-dial",
        "steerable",
        "haproxy",
    ] {
        column(arm);
    }
    let rows: Vec<Vec<&str>> = lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), metrics.len(), "one table row per metric");

    for (m, row) in metrics.iter().zip(&rows) {
        let key = m["key"].as_str().expect("key");
        assert_eq!(row[1], m["label"].as_str().expect("label"), "row order");
        for arm in arms_with_figures(key, &ran) {
            let value = m["values"][arm].as_f64();
            assert!(
                value.is_some_and(|v| v.is_finite() && v > 0.0),
                "{key} of {arm}: {value:?}"
            );
            let cell = row[column(arm)];
            assert!(
                leading_number(cell).is_some_and(|v| v > 0.0),
                "{key} of {arm} in the table: {cell:?}"
            );
        }
    }
}

/// Not a test: the memory runs of the benchmark start this binary again with
/// the benchmark's `CHILD_ENV` set to run a broker in a process of its own.
#[test]
#[ignore = "entry point of the benchmark's memory child processes"]
fn mem_child_entry() {
    proxy_bench::child_main_from_env();
}
