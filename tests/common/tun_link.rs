//! A point-to-point link with delay and loss made in user space, for kernels without
//! `tc netem` (no sch_netem built in and no module to load): one TUN device in the root
//! namespace and one in a host's namespace, and a thread per direction that reads each packet
//! from one device and writes it to the other `delay` later, dropping each with probability
//! `loss`, in order (as netem with a fixed delay and no jitter does), at most LIMIT packets in
//! flight per direction (netem's default limit).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LIMIT: usize = 1000;

/// Opens the TUN device `name` (made now, in the namespace of the calling thread; it lives as
/// long as the file), non-blocking, without packet information: one read or write is one IP
/// packet.
pub fn open_tun(name: &str) -> Result<File, String> {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("open /dev/net/tun: {e}"))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays out (name, then the
    // flags at the start of the 24-byte union); both live through the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc != 0 {
        return Err(format!(
            "TUNSETIFF {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fcntl on an open descriptor.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Ok(file)
}

/// The two forwarding threads of a link; dropping it stops them (the devices go when their
/// files close).
pub struct TunLink {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TunLink {
    /// Forwards between `a` and `b` (TUN devices from `open_tun`) both ways, each way with
    /// `delay` and `loss` (0.0 to 1.0).
    pub fn start(a: File, b: File, delay: Duration, loss: f64) -> Result<TunLink, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let clone = |f: &File| f.try_clone().map_err(|e| format!("dup a TUN device: {e}"));
        let ways = [(clone(&a)?, clone(&b)?, 1), (b, a, 2)];
        let threads = ways
            .into_iter()
            .map(|(from, to, seed)| {
                let stop = stop.clone();
                std::thread::spawn(move || forward(from, to, delay, loss, seed, &stop))
            })
            .collect();
        Ok(TunLink { stop, threads })
    }
}

impl Drop for TunLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One direction: packets read from `from` are written to `to` once `delay` has passed.
fn forward(mut from: File, mut to: File, delay: Duration, loss: f64, seed: u64, stop: &AtomicBool) {
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let threshold = (loss * u32::MAX as f64) as u64;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while queue.front().is_some_and(|(due, _)| *due <= now) {
            let (_, packet) = queue.pop_front().unwrap();
            // An error means the far device is going away with its namespace: the packet is
            // lost, as it would be on a link being taken down.
            let _ = to.write(&packet);
        }
        // Wake for the next packet due, and at least every 10 ms to see `stop`.
        let wait = queue
            .front()
            .map_or(Duration::from_millis(10), |(due, _)| {
                due.saturating_duration_since(now)
            })
            .min(Duration::from_millis(10));
        let mut pfd = libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        loop {
            match from.read(&mut buf) {
                Ok(n) => {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if (rng >> 32) >= threshold && queue.len() < LIMIT {
                        queue.push_back((Instant::now() + delay, buf[..n].to_vec()));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
    }
}
