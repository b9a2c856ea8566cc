//! The arms and cases, the modes and what each does, and the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::stats::Stat;

/// All arms, in table order.
pub(crate) const ARMS: [&str; 7] = [
    "direct",
    "stream",
    "stream-2t",
    "stream-zmq",
    "stream-dial",
    "steerable",
    "haproxy",
];
pub(crate) const SIZES: [usize; 4] = [64, 1024, 8192, 65536];
pub(crate) const CLIENT_COUNTS: [usize; 2] = [1, 16];
pub(crate) const LATENCY_SIZES: [usize; 2] = [64, 8192];
/// Sizes also streamed without flow control, with one client.
pub(crate) const UNBOUNDED_SIZES: [usize; 2] = [8192, 65536];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
        }
    }
}

/// How much of everything a mode does.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) rounds: usize,
    /// Messages of one throughput case, by size (split evenly over the clients).
    pub(crate) tput_msgs: [usize; 4],
    pub(crate) latency_warmup: usize,
    pub(crate) latency_iters: usize,
    pub(crate) setup_iters: usize,
    /// Connections the stream arm's worker makes to the proxy's backend.
    pub(crate) stream_slots: usize,
    pub(crate) mem_pairs: usize,
    pub(crate) deadline: Duration,
}

impl Plan {
    pub(crate) fn new(mode: Mode) -> Plan {
        match mode {
            Mode::Full => Plan {
                rounds: 5,
                tput_msgs: [150_000, 80_000, 16_000, 3_000],
                latency_warmup: 200,
                latency_iters: 2_000,
                setup_iters: 50,
                stream_slots: 160,
                mem_pairs: 1_000,
                deadline: Duration::from_secs(120),
            },
            Mode::Quick => Plan {
                rounds: 1,
                tput_msgs: [40_000, 20_000, 4_000, 800],
                latency_warmup: 100,
                latency_iters: 1_000,
                setup_iters: 30,
                stream_slots: 96,
                mem_pairs: 300,
                deadline: Duration::from_secs(60),
            },
            Mode::Smoke => Plan {
                rounds: 1,
                tput_msgs: [2_000, 1_000, 320, 64],
                latency_warmup: 10,
                latency_iters: 100,
                setup_iters: 5,
                stream_slots: 40,
                mem_pairs: 50,
                deadline: Duration::from_secs(30),
            },
        }
    }
}

#[derive(Debug)]
pub(crate) struct Opts {
    pub(crate) mode: Mode,
    pub(crate) stat: Stat,
    pub(crate) json: PathBuf,
    pub(crate) rounds: Option<usize>,
    pub(crate) arms: Vec<&'static str>,
}

pub(crate) const USAGE: &str =
    "usage: cargo bench --bench proxy -- [--quick | --smoke] [--json PATH] \
[--rounds N] [--stat median|best] [--arms direct,stream,stream-2t,stream-zmq,stream-dial,steerable,haproxy]";

pub(crate) fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        mode: Mode::Full,
        stat: Stat::Median,
        json: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-proxy.json"),
        rounds: None,
        arms: ARMS.to_vec(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.mode = Mode::Quick,
            "--smoke" => opts.mode = Mode::Smoke,
            "--full" => opts.mode = Mode::Full,
            // cargo bench adds --bench to every harness = false benchmark.
            "--bench" => {}
            "--stat" => {
                opts.stat = match it.next().map(String::as_str) {
                    Some("median") => Stat::Median,
                    Some("best") => Stat::Best,
                    other => return Err(format!("--stat median|best, not {other:?}")),
                };
            }
            "--json" => {
                let path = it.next().ok_or("--json needs a path")?;
                opts.json = PathBuf::from(path);
            }
            "--rounds" => {
                let n = it.next().ok_or("--rounds needs a number")?;
                let n: usize = n.parse().map_err(|_| format!("bad --rounds {n}"))?;
                opts.rounds = Some(n.max(1));
            }
            "--arms" => {
                let list = it.next().ok_or("--arms needs a list")?;
                let mut arms = Vec::new();
                for name in list.split(',').filter(|s| !s.is_empty()) {
                    let arm = ARMS
                        .iter()
                        .find(|a| **a == name)
                        .ok_or_else(|| format!("unknown arm {name}; arms: {}", ARMS.join(",")))?;
                    arms.push(*arm);
                }
                // Table order, whatever the order given.
                opts.arms = ARMS.iter().copied().filter(|a| arms.contains(a)).collect();
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(opts)
}
