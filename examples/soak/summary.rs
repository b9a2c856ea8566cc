//! What a soak run measured, how the clients' reports add up, and the verdict.

use std::collections::HashSet;

/// One session that ended because its connection went (a client's `disconnect` line).
pub struct Disconnect {
    pub at_ms: u64,
    pub worker_pid: u32,
    pub outstanding: u64,
}

/// A worker the killer SIGKILLed.
pub struct Kill {
    pub at_ms: u64,
    pub pid: u32,
}

/// A disconnect is explained by a kill when its session's replies came from a killed
/// worker, or, for a session that had no reply yet (so no known worker), when it came
/// between 1 s before and 5 s after a kill.
pub fn near_a_kill(d: &Disconnect, kills: &[Kill], killed: &HashSet<u32>) -> bool {
    if d.worker_pid != 0 {
        return killed.contains(&d.worker_pid);
    }
    kills
        .iter()
        .any(|k| d.at_ms + 1000 >= k.at_ms && d.at_ms <= k.at_ms + 5000)
}

/// The clients' `report` lines added up by key (`max_*` keys: the largest).
#[derive(Default)]
pub struct Totals(pub std::collections::BTreeMap<String, u64>);

impl Totals {
    pub fn add_report(&mut self, line: &str) {
        for pair in line.split_whitespace().skip(1) {
            if let Some((k, v)) = pair.split_once('=') {
                let v = v.parse::<u64>().unwrap_or(0);
                let total = self.0.entry(k.to_owned()).or_default();
                *total = if k.starts_with("max_") {
                    (*total).max(v)
                } else {
                    *total + v
                };
            }
        }
    }

    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

pub fn parse_disconnect(line: &str) -> Option<Disconnect> {
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(Disconnect {
        at_ms: field("at_ms")?,
        worker_pid: field("worker_pid")? as u32,
        outstanding: field("outstanding")?,
    })
}

/// The median of a few samples: one sample can catch a burst of relay buffers in use.
pub fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Everything a run measured; `print` writes the summary and judges it.
pub struct Outcome {
    pub title: String,
    pub load: String,
    /// Clients in all processes: each must have had more than one session (churn).
    pub clients: u64,
    pub totals: Totals,
    pub worker_corrupt: u64,
    /// Replies a worker could not send (the client's pipe was full): lost without a trace.
    pub worker_dropped: u64,
    pub lost_near_kill: u64,
    pub lost_other: u64,
    /// Sessions whose connection ended with no kill to explain it.
    pub ended_unexplained: u64,
    /// The PAUSE's length, when it was PAUSEd and RESUMEd.
    pub pause_ms: Option<u64>,
    /// KiB at the start, middle, end, and the largest sample.
    pub rss: [u64; 4],
    pub rss_window: f64,
    /// At the start, middle, end, and once the clients were gone.
    pub fds: [u64; 4],
    /// At the middle and the end.
    pub pairs_open: [u64; 2],
    pub streamstats: Vec<String>,
    /// The access log's CLOSE and REJECT lines counted by reason.
    pub endings: Vec<String>,
    /// What went wrong besides the counts (a process that died, a broker that failed to stop).
    pub problems: Vec<String>,
}

impl Outcome {
    /// Prints the summary and its last line, `soak: PASS` or `soak: FAIL (why)`; true on PASS.
    pub fn print(self) -> bool {
        let t = |k: &str| self.totals.get(k);
        let corrupt = t("corrupt") + self.worker_corrupt;
        let misdelivered = t("misdelivered") + t("out_of_order");
        let lost_silently = t("lost_silently") + self.worker_dropped;
        let [start, mid, end, max] = self.rss;
        let growth = if mid > 0 {
            (end as f64 / mid as f64 - 1.0) * 100.0
        } else {
            0.0
        };
        let [fds_start, fds_mid, fds_end, fds_after] = self.fds;
        let lines = [
            ("load", self.load.clone()),
            ("sessions", t("sessions").to_string()),
            ("sent", t("sent").to_string()),
            (
                "ok",
                format!("{} ({} MiB echoed)", t("ok"), t("bytes") >> 20),
            ),
            (
                "corrupt",
                format!(
                    "{corrupt} (clients {}, workers {})",
                    t("corrupt"),
                    self.worker_corrupt
                ),
            ),
            (
                "misdelivered",
                format!(
                    "{misdelivered} (another's reply {}, out of order {})",
                    t("misdelivered"),
                    t("out_of_order")
                ),
            ),
            (
                "abandoned",
                format!(
                    "{} (in flight when a client chose to close)",
                    t("abandoned")
                ),
            ),
            (
                "lost_near_kill",
                format!(
                    "{} (noticed: the session's connection ended with its worker)",
                    self.lost_near_kill
                ),
            ),
            (
                "lost_noticed_other",
                format!(
                    "{} (connection ended, no kill explains it; {} sessions ended so)",
                    self.lost_other, self.ended_unexplained
                ),
            ),
            (
                "lost_silently",
                format!("{lost_silently} (no reply, connection still up)"),
            ),
            (
                "stalled",
                format!("{} (handshake never completed)", t("stalled")),
            ),
            (
                "slowest_reply_ms",
                format!(
                    "{} (requests sent in the PAUSE wait for RESUME)",
                    t("max_reply_ms")
                ),
            ),
            (
                "rss_kib",
                format!(
                    "start={start} middle={mid} end={end} max={max} (second half {growth:+.1}%; \
                     lowest of {:.0} s)",
                    self.rss_window
                ),
            ),
            (
                "fds",
                format!(
                    "start={fds_start} middle={fds_mid} end={fds_end} after_clients={fds_after}"
                ),
            ),
            (
                "pairs_open",
                format!("middle={} end={}", self.pairs_open[0], self.pairs_open[1]),
            ),
            ("streamstats", self.streamstats.join(" ")),
            ("access_log", self.endings.join(" ")),
        ];
        println!("== soak summary ({})", self.title);
        for (name, value) in lines {
            println!("{name:<18} {value}");
        }

        let mut why = self.problems;
        let mut fail_if = |bad: bool, reason: String| {
            if bad {
                why.push(reason);
            }
        };
        fail_if(corrupt > 0, format!("{corrupt} corrupt"));
        fail_if(
            misdelivered > 0,
            format!("{misdelivered} misdelivered or out of order"),
        );
        fail_if(lost_silently > 0, format!("{lost_silently} lost silently"));
        fail_if(
            self.ended_unexplained > 0,
            format!(
                "{} sessions ended with no kill to explain it ({} requests lost)",
                self.ended_unexplained, self.lost_other
            ),
        );
        fail_if(
            t("stalled") > 0,
            format!("{} sessions stalled", t("stalled")),
        );
        fail_if(
            growth > 10.0,
            format!("RSS grew {growth:.1}% over the second half"),
        );
        fail_if(
            t("ok") == 0 || t("sessions") <= self.clients,
            "no load: nothing echoed or no session churn".into(),
        );
        match self.pause_ms {
            None => fail_if(true, "PAUSE/RESUME did not happen".into()),
            Some(pause) => fail_if(
                t("max_reply_ms") < pause / 2,
                format!(
                    "no reply waited for even half the PAUSE ({} ms): the broker did not pause",
                    t("max_reply_ms")
                ),
            ),
        }
        if why.is_empty() {
            println!("soak: PASS");
            true
        } else {
            println!("soak: FAIL ({})", why.join("; "));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_is_explained_by_its_workers_kill_or_by_time() {
        let kills = [Kill {
            at_ms: 10_000,
            pid: 42,
        }];
        let killed: HashSet<u32> = [42].into();
        let d = |at_ms, worker_pid| Disconnect {
            at_ms,
            worker_pid,
            outstanding: 1,
        };
        assert!(near_a_kill(&d(30_000, 42), &kills, &killed));
        assert!(!near_a_kill(&d(10_100, 43), &kills, &killed));
        assert!(near_a_kill(&d(9_500, 0), &kills, &killed));
        assert!(near_a_kill(&d(14_000, 0), &kills, &killed));
        assert!(!near_a_kill(&d(16_000, 0), &kills, &killed));
    }

    #[test]
    fn reports_add_up_and_disconnects_parse() {
        let mut t = Totals::default();
        t.add_report("report sent=3 ok=2 max_reply_ms=30");
        t.add_report("report sent=4 ok=4 corrupt=0 max_reply_ms=20");
        assert_eq!((t.get("sent"), t.get("ok"), t.get("lost")), (7, 6, 0));
        assert_eq!(t.get("max_reply_ms"), 30);
        let d =
            parse_disconnect("disconnect at_ms=5 worker_pid=7 outstanding=2 handshake_done=true")
                .unwrap();
        assert_eq!((d.at_ms, d.worker_pid, d.outstanding), (5, 7, 2));
        assert_eq!(median(vec![5, 1, 9]), 5);
    }
}
