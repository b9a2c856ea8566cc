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

/// The value a quarter of the way up the sorted samples.
pub fn lower_quartile(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 4).copied().unwrap_or(0)
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
        assert_eq!(lower_quartile(vec![8, 1, 9, 5, 7, 6, 4, 3]), 4);
    }
}
