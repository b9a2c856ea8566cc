//! CPU time of threads and processes: where a broker's CPU time is read.

use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// CPU time a thread has used, in ns: schedstat when the kernel has it, else utime + stime.
pub(crate) fn task_cpu_ns(pid: &str, tid: i32) -> u64 {
    let base = format!("/proc/{pid}/task/{tid}");
    if let Ok(s) = std::fs::read_to_string(format!("{base}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return ns;
        }
    }
    let Ok(stat) = std::fs::read_to_string(format!("{base}/stat")) else {
        return 0;
    };
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

pub(crate) fn tasks_of(pid: &str) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Where a broker's CPU time is read.
#[derive(Clone, Debug)]
pub(crate) enum CpuProbe {
    /// A proxy on a thread of this process: that thread, its relay threads, and its
    /// context's libzmq threads.
    Threads { proxy_tid: i32, zmq_tids: Vec<i32> },
    /// A proxy process: all its threads.
    Process { pid: u32 },
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuSample {
    /// The broker: proxy thread + libzmq I/O threads, or the whole process.
    pub(crate) total_ns: u64,
    /// The proxy thread alone (the whole process for haproxy).
    pub(crate) proxy_thread_ns: u64,
}

impl CpuSample {
    pub(crate) fn since(self, earlier: CpuSample) -> CpuSample {
        CpuSample {
            total_ns: self.total_ns.saturating_sub(earlier.total_ns),
            proxy_thread_ns: self.proxy_thread_ns.saturating_sub(earlier.proxy_thread_ns),
        }
    }
}

impl CpuProbe {
    pub(crate) fn sample(&self) -> CpuSample {
        match self {
            CpuProbe::Threads {
                proxy_tid,
                zmq_tids,
            } => {
                // The proxy's relay threads relay taken-over pairs: part of the proxy's cost.
                // The benchmark runs one in-process proxy at a time, so all of them are its.
                let proxy = task_cpu_ns("self", *proxy_tid)
                    + relay_threads()
                        .iter()
                        .map(|t| task_cpu_ns("self", *t))
                        .sum::<u64>();
                let io: u64 = zmq_tids.iter().map(|t| task_cpu_ns("self", *t)).sum();
                CpuSample {
                    total_ns: proxy + io,
                    proxy_thread_ns: proxy,
                }
            }
            CpuProbe::Process { pid } => {
                let pid = pid.to_string();
                let total = tasks_of(&pid).iter().map(|t| task_cpu_ns(&pid, *t)).sum();
                CpuSample {
                    total_ns: total,
                    proxy_thread_ns: total,
                }
            }
        }
    }
}

/// The relay threads of in-process proxies ("zmqps-relay-N").
fn relay_threads() -> Vec<i32> {
    tasks_of("self")
        .into_iter()
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .is_ok_and(|c| c.starts_with("zmqps-relay"))
        })
        .collect()
}

/// Each in-process proxy context gets its own thread name prefix, so that its libzmq threads
/// ("<prefix>/ZMQbg/IO/0", "<prefix>/ZMQbg/Reaper") can be found in /proc/self/task.
pub(crate) static NEXT_PREFIX: AtomicI32 = AtomicI32::new(70);

pub(crate) fn zmq_threads_with_prefix(prefix: i32) -> Vec<i32> {
    let want = format!("{prefix}/ZMQbg");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found: Vec<i32> = tasks_of("self")
            .into_iter()
            .filter(|tid| {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                    .is_ok_and(|c| c.trim_end().starts_with(&want))
            })
            .collect();
        // The I/O thread and the reaper name themselves once they run.
        if found.len() >= 2 || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
