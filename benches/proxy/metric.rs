//! One row of the table, and how its figures are written.

use std::collections::BTreeMap;

/// One row of the table: a figure per arm.
pub(crate) struct Metric {
    pub(crate) key: String,
    pub(crate) label: String,
    pub(crate) unit: &'static str,
    pub(crate) values: BTreeMap<&'static str, f64>,
    /// Throughput rows also carry MB/s.
    pub(crate) mb_per_s: BTreeMap<&'static str, f64>,
    /// Said in the cell after the figure (or instead of it).
    pub(crate) notes: BTreeMap<&'static str, String>,
}

impl Metric {
    pub(crate) fn new(key: String, label: String, unit: &'static str) -> Metric {
        Metric {
            key,
            label,
            unit,
            values: BTreeMap::new(),
            mb_per_s: BTreeMap::new(),
            notes: BTreeMap::new(),
        }
    }

    pub(crate) fn ratio(&self, arm: &str, reference: &str) -> Option<f64> {
        let a = *self.values.get(arm)?;
        let r = *self.values.get(reference)?;
        (r != 0.0 && a.is_finite() && r.is_finite()).then(|| a / r)
    }

    pub(crate) fn cell(&self, arm: &str) -> Option<String> {
        let figure = self.figure(arm);
        match (figure, self.notes.get(arm)) {
            (Some(f), Some(n)) => Some(format!("{f}; {n}")),
            (Some(f), None) => Some(f),
            (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        }
    }

    pub(crate) fn figure(&self, arm: &str) -> Option<String> {
        let v = *self.values.get(arm)?;
        let main = match self.unit {
            "msg/s" => format_rate(v),
            "us" => format!("{v:.0} µs"),
            "ms" => format!("{v:.2} ms"),
            "s/GB" => format!("{v:.2} s/GB"),
            "KiB" => format!("{v:.1} KiB"),
            _ => format!("{v}"),
        };
        Some(match self.mb_per_s.get(arm) {
            Some(mb) => format!("{main} · {mb:.1} MB/s"),
            None => main,
        })
    }
}

pub(crate) fn format_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M msg/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k msg/s", v / 1e3)
    } else {
        format!("{v:.0} msg/s")
    }
}

pub(crate) fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}
