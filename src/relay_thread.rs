//! The threads that relay taken-over pairs (ZMQ_PROXY_STREAM_THREADS), and the handle the
//! proxy's own thread keeps of them. Each thread runs one [`Relay`] over its own epoll set:
//! the cost of a wake-up grows with the connections that are ready, not with all of them.
//! Pairs, PAUSE and aborts go to a thread over a channel and a waker; what the relay reports
//! comes back the same way, with its counters in atomics the proxy's thread reads.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::relay::{End, IoKind, Relay, RelayEvent, RelayLimits, Totals};
use crate::relay_io::{self, Epoll, Readiness, Waker};
use crate::zmq_io::Errno;

/// Operations a relay thread performs before it looks at epoll and its channel again.
const OPS_PER_TURN: usize = 1024;
/// epoll events taken per wait.
const EVENTS_PER_WAIT: usize = 256;
/// The waker's token; connections use slot * 2 + end.
const WAKE_TOKEN: u64 = u64::MAX;

/// A pair handed to a relay thread.
pub struct NewPair {
    pub tag: u64,
    /// Client's, then worker's connection.
    pub fds: [OwnedFd; 2],
    pub to_worker: Vec<u8>,
    pub to_client: Vec<u8>,
}

enum Command {
    Add(NewPair),
    Abort(u64),
    Pause(bool),
    /// Publish the counters, then this number in `synced`: whatever the thread did before
    /// is counted.
    Sync(u64),
}

/// Counters a relay thread publishes for the proxy's thread.
#[derive(Default)]
struct SharedTotals([AtomicU64; 8]);

impl SharedTotals {
    fn store(&self, t: &Totals) {
        let values = [
            t.reads[0],
            t.bytes_in[0],
            t.writes[0],
            t.bytes_out[0],
            t.reads[1],
            t.bytes_in[1],
            t.writes[1],
            t.bytes_out[1],
        ];
        for (a, v) in self.0.iter().zip(values) {
            a.store(v, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Totals {
        let v: Vec<u64> = self.0.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        Totals {
            reads: [v[0], v[4]],
            bytes_in: [v[1], v[5]],
            writes: [v[2], v[6]],
            bytes_out: [v[3], v[7]],
        }
    }
}

struct Thread {
    commands: Sender<Command>,
    /// The last Sync the thread answered.
    synced: Arc<AtomicU64>,
    waker: Arc<Waker>,
    totals: Arc<SharedTotals>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
    pairs: usize,
}

/// The relay threads, seen from the proxy's thread.
pub struct RelayThreads {
    threads: Vec<Thread>,
    reports: Receiver<RelayEvent>,
    /// Readable when the threads reported something (poll it with the sockets' ZMQ_FDs).
    reported: Arc<Waker>,
    /// Which thread relays which pair.
    placed: FxHashMap<u64, usize>,
    /// The last Sync asked for.
    sync_no: u64,
}

impl RelayThreads {
    pub fn start(count: usize, limits: RelayLimits) -> Result<RelayThreads, Errno> {
        let (report_tx, reports) = channel();
        let reported = Arc::new(Waker::new()?);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count.max(1) {
            let (commands, rx) = channel();
            let waker = Arc::new(Waker::new()?);
            let totals = Arc::new(SharedTotals::default());
            let stop = Arc::new(AtomicBool::new(false));
            let synced = Arc::new(AtomicU64::new(0));
            let epoll = Epoll::new()?;
            epoll.add_borrowed(waker.raw(), WAKE_TOKEN)?;
            let worker = Worker {
                relay: Relay::new(limits.clone()),
                epoll,
                fds: Vec::new(),
                commands: rx,
                waker: waker.clone(),
                totals: totals.clone(),
                stop: stop.clone(),
                synced: synced.clone(),
                reports: report_tx.clone(),
                reported: reported.clone(),
            };
            let join = std::thread::Builder::new()
                .name(format!("zmqps-relay-{i}"))
                .spawn(move || worker.run())
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EAGAIN))?;
            threads.push(Thread {
                synced,
                commands,
                waker,
                totals,
                stop,
                join: Some(join),
                pairs: 0,
            });
        }
        Ok(RelayThreads {
            threads,
            reports,
            reported,
            placed: FxHashMap::default(),
            sync_no: 0,
        })
    }

    /// The descriptor that becomes readable when a thread reported something.
    pub fn reported_fd(&self) -> i32 {
        self.reported.raw()
    }

    fn send(&self, i: usize, command: Command) {
        let t = &self.threads[i];
        // A thread that is gone has dropped its pairs already; nothing to tell it.
        if t.commands.send(command).is_ok() {
            t.waker.wake();
        }
    }

    /// Hands a pair to the thread relaying the fewest.
    pub fn add(&mut self, pair: NewPair) {
        let i = (0..self.threads.len())
            .min_by_key(|&i| self.threads[i].pairs)
            .expect("at least one thread");
        self.threads[i].pairs += 1;
        self.placed.insert(pair.tag, i);
        self.send(i, Command::Add(pair));
    }

    pub fn abort(&self, tag: u64) {
        if let Some(&i) = self.placed.get(&tag) {
            self.send(i, Command::Abort(tag));
        }
    }

    pub fn set_paused(&self, paused: bool) {
        for i in 0..self.threads.len() {
            self.send(i, Command::Pause(paused));
        }
    }

    /// What the threads reported since the last call.
    pub fn next_report(&mut self) -> Option<RelayEvent> {
        let event = match self.reports.try_recv() {
            Ok(e) => e,
            Err(_) => {
                self.reported.reset();
                // A report sent between the failed receive and the reset keeps its wake-up
                // lost: look once more.
                self.reports.try_recv().ok()?
            }
        };
        if let RelayEvent::Ended { tag, .. } = event {
            if let Some(i) = self.placed.remove(&tag) {
                self.threads[i].pairs -= 1;
            }
        }
        Some(event)
    }

    /// Whether every relay thread is still running (one that stopped on its own panicked: a
    /// bug, and its pairs would never end).
    pub fn all_running(&self) -> bool {
        self.threads
            .iter()
            .all(|t| t.join.as_ref().is_some_and(|j| !j.is_finished()))
    }

    /// Reads and writes of all threads so far, exactly: every thread publishes its counters
    /// and answers first (a thread preempted between a write and publishing its count would
    /// otherwise be a write behind what its peer already received). A thread that does not
    /// answer within a moment is read as it is.
    pub fn totals(&mut self) -> Totals {
        self.sync_no += 1;
        let n = self.sync_no;
        for t in &self.threads {
            if t.commands.send(Command::Sync(n)).is_ok() {
                t.waker.wake();
            }
        }
        // Polled, not a blocking channel receive: that would make std allocate a thread
        // handle for the caller's thread, which a C program's main thread never frees
        // (valgrind: "possibly lost").
        let deadline = Instant::now() + std::time::Duration::from_millis(100);
        while Instant::now() < deadline
            && self.threads.iter().any(|t| {
                t.synced.load(Ordering::Acquire) < n
                    && t.join.as_ref().is_some_and(|j| !j.is_finished())
            })
        {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
        let mut sum = Totals::default();
        for t in &self.threads {
            sum.add(&t.totals.load());
        }
        sum
    }
}

impl Drop for RelayThreads {
    /// Stops the threads; they close every taken-over connection as they go.
    fn drop(&mut self) {
        for t in &self.threads {
            t.stop.store(true, Ordering::Release);
            t.waker.wake();
        }
        for t in &mut self.threads {
            if let Some(j) = t.join.take() {
                let _ = j.join();
            }
        }
    }
}

/// One relay thread's state.
struct Worker {
    relay: Relay,
    epoll: Epoll,
    /// By slot: the pair's client and worker connections.
    fds: Vec<Option<[OwnedFd; 2]>>,
    commands: Receiver<Command>,
    waker: Arc<Waker>,
    totals: Arc<SharedTotals>,
    stop: Arc<AtomicBool>,
    synced: Arc<AtomicU64>,
    reports: Sender<RelayEvent>,
    reported: Arc<Waker>,
}

fn token(slot: usize, end: End) -> u64 {
    (slot as u64) * 2 + end.index() as u64
}

impl Worker {
    fn run(mut self) {
        let mut raw = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        let mut ready: Vec<Readiness> = Vec::with_capacity(EVENTS_PER_WAIT);
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            self.take_commands(now);
            self.relay.on_timeout(now);
            let busy = self.do_io(now);
            // Once a turn: STATISTICS asks for an exact count with Command::Sync.
            self.totals.store(self.relay.totals());
            let mut any = false;
            while let Some(e) = self.relay.next_event() {
                any = true;
                if self.reports.send(e).is_err() {
                    return;
                }
            }
            if any {
                self.reported.wake();
            }
            let timeout = if busy {
                0
            } else {
                match self.relay.next_timeout() {
                    None => -1,
                    Some(at) => at
                        .saturating_duration_since(Instant::now())
                        .as_micros()
                        .div_ceil(1000) as i64,
                }
            };
            // EINTR just means another turn.
            if self.epoll.wait(&mut raw, timeout, &mut ready).is_err() {
                continue;
            }
            let now = Instant::now();
            for r in &ready {
                if r.token == WAKE_TOKEN {
                    self.waker.reset();
                    continue;
                }
                let slot = (r.token / 2) as usize;
                let end = if r.token % 2 == 0 {
                    End::Client
                } else {
                    End::Worker
                };
                self.relay
                    .on_ready(now, slot, end, r.readable, r.writable, r.hung_up);
            }
        }
    }

    fn take_commands(&mut self, now: Instant) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Add(pair) => {
                    let slot = self
                        .relay
                        .add(now, pair.tag, pair.to_worker, pair.to_client);
                    if self.fds.len() <= slot {
                        self.fds.resize_with(slot + 1, || None);
                    }
                    let registered = End::BOTH.iter().all(|&end| {
                        self.epoll
                            .add_connection(&pair.fds[end.index()], token(slot, end))
                            .is_ok()
                    });
                    self.fds[slot] = Some(pair.fds);
                    if !registered {
                        // Out of memory for epoll: the pair cannot be relayed.
                        self.relay.abort(pair.tag);
                    }
                }
                Command::Abort(tag) => self.relay.abort(tag),
                Command::Pause(p) => self.relay.set_paused(now, p),
                Command::Sync(n) => {
                    self.totals.store(self.relay.totals());
                    self.synced.store(n, Ordering::Release);
                }
            }
        }
    }

    /// Performs the relay's operations; true when it has more than one turn's worth.
    fn do_io(&mut self, now: Instant) -> bool {
        for _ in 0..OPS_PER_TURN {
            let Some(op) = self.relay.next_io() else {
                return false;
            };
            let (slot, token) = (op.slot, op.token);
            let outcome = match op.kind {
                IoKind::Close => {
                    let fds = self.fds[slot].take().expect("live pair has descriptors");
                    for fd in &fds {
                        self.epoll.remove(fd);
                    }
                    // Dropping them closes both connections.
                    drop(fds);
                    crate::relay::IoOutcome::Done(0)
                }
                kind => {
                    let fds = self.fds[slot].as_ref().expect("live pair has descriptors");
                    match kind {
                        IoKind::Read { end, buf } => relay_io::read(&fds[end.index()], buf),
                        IoKind::Write { end, buf } => relay_io::write(&fds[end.index()], buf),
                        IoKind::Shutdown { end } => relay_io::shutdown_write(&fds[end.index()]),
                        IoKind::Close => unreachable!("handled above"),
                    }
                }
            };
            self.relay.on_io(now, token, outcome);
        }
        true
    }
}
