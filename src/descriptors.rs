//! The process's descriptor budget, measured when a run starts: RLIMIT_NOFILE, the
//! descriptors already open, and the headroom kept for what the proxy does not count. The
//! core gets the result as a number (ZMQ_PROXY_STREAM_MAX_CONNECTIONS); these are the only
//! system calls behind it.

use crate::zmq_io::Errno;

/// Descriptors kept free whatever the limit: the caller's own later sockets, the second
/// descriptor a pair holds for an instant while it is taken over, a dial-out resolver's.
const HEADROOM_FIXED: usize = 64;
/// And a share of the limit, for the connections libzmq accepts in a burst before the
/// proxy sees and closes them: the kernel completes up to the listen backlog (ZMQ_BACKLOG,
/// 100 by default) of handshakes on its own, and libzmq accepts them all at once.
const HEADROOM_DIVISOR: usize = 8;

/// Whether `e`, from socket(2), connect(2), dup(2) or epoll_ctl(2), says this host ran out
/// of something (descriptors, buffers, memory, ephemeral ports) rather than that the peer
/// failed.
pub fn is_local(e: Errno) -> bool {
    matches!(
        e,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL
    )
}

/// RLIMIT_NOFILE's soft limit; None when unlimited or unknown.
pub fn soft_limit() -> Option<usize> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is valid for writes of its size.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    if rc != 0 || rl.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    usize::try_from(rl.rlim_cur).ok()
}

/// Descriptors open in the process now (the entries of /proc/self/fd, less the one the
/// listing itself holds). None when /proc is not there.
pub fn open_now() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(entries.saturating_sub(1))
}

/// The budget for a soft limit of `limit` descriptors with `open` already open: what is
/// left after the headroom (64 + limit / 8), at least 1.
pub fn budget_for(limit: usize, open: usize) -> usize {
    let headroom = HEADROOM_FIXED + limit / HEADROOM_DIVISOR;
    limit.saturating_sub(open).saturating_sub(headroom).max(1)
}

/// ZMQ_PROXY_STREAM_MAX_CONNECTIONS -1: the budget derived from this process's limit now;
/// None (no limit) when the limit is unlimited.
pub fn default_budget() -> Option<usize> {
    let limit = soft_limit()?;
    // Without /proc, assume the lowest free descriptor is a fair count of those open.
    let open = open_now().unwrap_or_else(lowest_free);
    Some(budget_for(limit, open))
}

/// The lowest descriptor number not in use.
fn lowest_free() -> usize {
    // SAFETY: F_DUPFD_CLOEXEC on stdin's number only reads it; the new descriptor is
    // closed at once. A closed stdin fails with EBADF: then 0 is free.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return 0;
    }
    // SAFETY: fd is ours, just made, used by nothing else.
    unsafe { libc::close(fd) };
    fd as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_headroom_and_is_never_zero() {
        assert_eq!(budget_for(1024, 30), 1024 - 30 - 64 - 128);
        assert_eq!(budget_for(20000, 30), 20000 - 30 - 64 - 2500);
        assert_eq!(budget_for(256, 20), 256 - 20 - 64 - 32);
        assert_eq!(budget_for(64, 20), 1);
    }

    #[test]
    fn open_descriptors_are_counted() {
        let extra: Vec<std::fs::File> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        // Other test threads open and close files meanwhile: at least ours are seen, and
        // the listing's own descriptor is not.
        let open = open_now().expect("/proc on Linux");
        assert!(open >= 5, "{open}");
        assert!(lowest_free() <= open);
        drop(extra);
        assert!(soft_limit().is_some_and(|l| l > 0));
        assert!(is_local(libc::EMFILE) && is_local(libc::EADDRNOTAVAIL));
        assert!(!is_local(libc::ECONNREFUSED) && !is_local(libc::ETIMEDOUT));
    }
}
