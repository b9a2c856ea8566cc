//! Statistics over rounds: median or best, quantiles of per-round histograms.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::latency::new_histogram;

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One histogram per round, by round.
pub(crate) type Rounds = BTreeMap<usize, Histogram<u64>>;

/// How the rounds of one figure make one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// The median round: what a typical round gave.
    Median,
    /// The best round (highest throughput, lowest latency and set-up): on a shared machine,
    /// the round that the other load disturbed least.
    Best,
}

impl Stat {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stat::Median => "median",
            Stat::Best => "best",
        }
    }

    pub(crate) fn of(self, values: Vec<f64>, higher_is_better: bool) -> Option<f64> {
        match self {
            Stat::Median => median(values),
            Stat::Best => {
                values
                    .into_iter()
                    .reduce(|a, b| if higher_is_better { a.max(b) } else { a.min(b) })
            }
        }
    }
}

pub(crate) fn quantiles(rounds: &Rounds, q: f64) -> Vec<f64> {
    rounds
        .values()
        .filter(|h| !h.is_empty())
        .map(|h| h.value_at_quantile(q) as f64)
        .collect()
}

/// One quantile over rounds: each round's quantile `q`, then `stat` over the rounds (on a
/// shared machine a disturbed round moves this less than the quantile of all samples).
pub(crate) fn quantile_over_rounds(rounds: &Rounds, q: f64, stat: Stat) -> Option<f64> {
    stat.of(quantiles(rounds, q), false)
}

/// a's p50 − b's p50: the median of the paired per-round differences, or best − best.
pub(crate) fn p50_difference(a: &Rounds, b: &Rounds, stat: Stat) -> Option<f64> {
    match stat {
        Stat::Median => median(
            a.iter()
                .filter_map(|(round, ha)| {
                    let hb = b.get(round)?;
                    (!ha.is_empty() && !hb.is_empty()).then(|| {
                        ha.value_at_quantile(0.5) as f64 - hb.value_at_quantile(0.5) as f64
                    })
                })
                .collect(),
        ),
        Stat::Best => {
            Some(quantile_over_rounds(a, 0.5, stat)? - quantile_over_rounds(b, 0.5, stat)?)
        }
    }
}

pub(crate) fn merged(rounds: &Rounds) -> Histogram<u64> {
    let mut all = new_histogram();
    for h in rounds.values() {
        all.add(h).expect("same histogram bounds");
    }
    all
}
