//! The I/O loop: turns what the STREAM sockets deliver into core events, and the core's
//! transmits into non-blocking libzmq sends. It owns no policy; the core decides.

use std::os::raw::c_int;
use std::time::{Duration, Instant};

use crate::control::{reply_for, Command, ControlKind, Reply};
use crate::core::{
    Chunk, Core, HandoverOutcome, Limits, PeerInfo, SendOutcome, Side, Stats, TransmitKind,
};
use crate::dialer::{DialEvent, Dialer};
use crate::relay::{RelayEnd, RelayEvent, RelayLimits, Totals};
use crate::relay_thread::{NewPair, RelayThreads};
use crate::takeover::{self, Takeovers};
use crate::zmq_io::{
    force_shutdown, half_close, local_address, peer_address, peer_alive, tcp_bytes_acked,
    tcp_bytes_written, wait_readable, Errno, Msg, SocketRef, EFSM, ETERM, ZMQ_DONTWAIT,
    ZMQ_SNDMORE,
};

/// Chunks read from one socket before the loop looks at the others again.
const RECV_BURST: usize = 256;
/// Largest routing id libzmq allows is 255 bytes.
const MAX_ID: usize = 255;

/// The caller's sockets, checked.
pub struct Sockets {
    pub frontend: SocketRef,
    pub backend: SocketRef,
    pub control: Option<(SocketRef, ControlKind)>,
    /// Where events are published (ZMQ_PROXY_STREAM_EVENTS).
    pub events: Option<SocketRef>,
}

/// Checks types: frontend and backend must be distinct ZMQ_STREAM sockets; control a socket
/// that can receive commands; events a socket that can send them.
pub fn check_sockets(
    frontend: SocketRef,
    backend: SocketRef,
    control: Option<SocketRef>,
    events: Option<SocketRef>,
) -> Result<Sockets, Errno> {
    let stream = zmq_sys::ZMQ_STREAM as c_int;
    if frontend.socket_type()? != stream || backend.socket_type()? != stream {
        return Err(libc::EINVAL);
    }
    if frontend == backend {
        return Err(libc::EINVAL);
    }
    let control = match control {
        None => None,
        Some(c) => {
            if c == frontend || c == backend {
                return Err(libc::EINVAL);
            }
            let kind = match c.socket_type()? as u32 {
                zmq_sys::ZMQ_REP => ControlKind::Rep,
                zmq_sys::ZMQ_PAIR => ControlKind::Pair,
                zmq_sys::ZMQ_SUB | zmq_sys::ZMQ_PULL => ControlKind::ReceiveOnly,
                _ => return Err(libc::EINVAL),
            };
            Some((c, kind))
        }
    };
    if let Some(e) = events {
        if e == frontend || e == backend || control.is_some_and(|(c, _)| c == e) {
            return Err(libc::EINVAL);
        }
        match e.socket_type()? as u32 {
            zmq_sys::ZMQ_PUB | zmq_sys::ZMQ_PUSH | zmq_sys::ZMQ_PAIR => {}
            _ => return Err(libc::EINVAL),
        }
    }
    Ok(Sockets {
        frontend,
        backend,
        control,
        events,
    })
}

impl Sockets {
    fn of(&self, side: Side) -> SocketRef {
        match side {
            Side::Frontend => self.frontend,
            Side::Backend => self.backend,
        }
    }
}

fn pollfd(fd: c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Why the loop stopped without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Terminated,
}

pub struct Driver {
    sockets: Sockets,
    core: Core<Msg>,
    /// Per socket (frontend, backend, control): whether a receive might succeed. Cleared
    /// only by a receive that met EAGAIN; set by a readable ZMQ_FD and by any other libzmq
    /// call on the socket, since a send may process the very command that made input
    /// readable and leave ZMQ_FD quiet.
    unprobed: [bool; 3],
    /// The threads relaying taken-over pairs (started by `run` when TAKEOVER is on).
    relays: Option<RelayThreads>,
    /// Pairs whose connections libzmq is letting go of.
    takeovers: Takeovers,
    /// When to hand memory libzmq freed at takeovers back to the system.
    trim_due: Option<Instant>,
    /// Dial-out: the worker connections the proxy makes itself.
    dialer: Option<Dialer>,
    /// Pairs wait to be handed over until libzmq has sent what it holds for them.
    handovers_waiting: bool,
}

const CONTROL: usize = 2;
/// The poll slot of the dialer's epoll set.
const DIALER: usize = 4;
/// How often, while libzmq is letting go of connections, the loop looks whether it has.
const TAKEOVER_TICK: Duration = Duration::from_micros(50);
/// Memory freed by libzmq at takeovers goes back to the system at most this often.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// A seed for the core's choice among equally loaded workers, different in every run: std
/// keys `RandomState`s from the OS's random source (once per thread, then a new key for each).
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u64)
}

fn slot(side: Side) -> usize {
    match side {
        Side::Frontend => 0,
        Side::Backend => 1,
    }
}

/// Rounds of receive bursts over both sides before the loop looks at control and timers.
const READ_ROUNDS: usize = 4;

impl Driver {
    pub fn new(sockets: Sockets, limits: Limits) -> Driver {
        Driver {
            sockets,
            core: Core::with_seed(limits, random_seed()),
            unprobed: [true; 3],
            relays: None,
            takeovers: Takeovers::default(),
            trim_due: None,
            dialer: None,
            handovers_waiting: false,
        }
    }

    /// The counters, with the relay threads' reads and writes added as messages and bytes.
    fn stats(&mut self, now: Instant) -> Stats {
        let mut stats = *self.core.stats_at(now);
        if let Some(relays) = self.relays.as_mut() {
            add_relayed(&mut stats, &relays.totals());
        }
        stats
    }

    fn socket(&self, side: Side) -> SocketRef {
        self.sockets.of(side)
    }

    /// Whether `side` is read and might have input waiting.
    fn readable(&self, side: Side) -> bool {
        self.unprobed[slot(side)] && self.core.reading(side)
    }

    /// Runs until TERMINATE (Ok) or a libzmq error such as ETERM or EINTR (Err(errno)).
    ///
    /// The loop waits on the sockets' ZMQ_FDs itself rather than through zmq_poll: zmq_poll
    /// asks every socket for ZMQ_EVENTS before and after sleeping, two system calls each in
    /// libzmq, and at about one chunk per wake-up that was a third of the proxy thread's
    /// system calls (perf trace of a benchmark run: 226k with zmq_poll, 152k without).
    pub fn run(&mut self) -> Result<Stop, Errno> {
        let limits = self.core.limits();
        if limits.takeover {
            let relay_limits = RelayLimits {
                buffer: limits.pair_buffer,
                idle_timeout: limits.idle_timeout,
                linger: limits.close_linger,
            };
            self.relays = Some(RelayThreads::start(limits.relay_threads, relay_limits)?);
        }
        if !self.core.limits().worker_endpoints.is_empty() {
            self.dialer = Some(Dialer::new()?);
        }
        // Measured now, with libzmq's context, the sockets, the relay threads and the
        // dialer already holding theirs.
        let budget = match self.core.limits().max_connections {
            -1 => crate::descriptors::default_budget(),
            n => usize::try_from(n).ok().filter(|&n| n > 0),
        };
        self.core.set_connection_budget(budget);
        let mut id_buf = [0u8; MAX_ID + 1];
        let mut fds = [
            pollfd(self.sockets.frontend.signal_fd()?),
            pollfd(self.sockets.backend.signal_fd()?),
            pollfd(match self.sockets.control {
                Some((c, _)) => c.signal_fd()?,
                None => -1,
            }),
            pollfd(self.relays.as_ref().map_or(-1, |r| r.reported_fd())),
            pollfd(self.dialer.as_ref().map_or(-1, |d| d.wait_fd())),
        ];
        let mut dialed = Vec::new();
        loop {
            let now = Instant::now();
            self.core.on_timeout(now);
            self.take_reports(now)?;
            if fds[DIALER].revents != 0 {
                fds[DIALER].revents = 0;
                if let Some(d) = self.dialer.as_mut() {
                    d.take_readiness();
                }
            }
            self.serve_dialed(now, &mut dialed);
            self.settle_takeovers(now);
            if self.trim_due.is_some_and(|t| now >= t) {
                self.trim_due = None;
                crate::relay_io::return_freed_memory();
            }
            self.flush(now)?;
            self.publish_events()?;

            if self.unprobed[CONTROL] {
                if let Some(stop) = self.serve_control()? {
                    return Ok(stop);
                }
            }
            for _ in 0..READ_ROUNDS {
                let mut read = false;
                for side in [Side::Frontend, Side::Backend] {
                    if self.readable(side) {
                        read = true;
                        self.receive_burst(side, &mut id_buf)?;
                    }
                }
                if !read {
                    break;
                }
            }

            // What the reads just did (a refused client, a pair that ended) is published
            // before the loop may sleep for long.
            self.publish_events()?;
            self.core.prune_timers();
            let dial_work = self.dialer.as_ref().is_some_and(|d| d.has_work())
                && self.core.reading(Side::Backend);
            let more_input =
                self.readable(Side::Frontend) || self.readable(Side::Backend) || dial_work;
            let mut timeout = if more_input || self.core.wants_transmit() {
                Some(Duration::ZERO)
            } else {
                let next = [self.core.next_timeout(now), self.trim_due]
                    .into_iter()
                    .flatten()
                    .min();
                next.map(|at| at.saturating_duration_since(now))
            };
            let letting_go = !self.takeovers.is_empty() || self.handovers_waiting;
            if letting_go {
                timeout = Some(timeout.map_or(TAKEOVER_TICK, |t| t.min(TAKEOVER_TICK)));
            }
            wait_readable(&mut fds, timeout)?;
            if letting_go {
                // libzmq closes what it lets go of only while we call into its sockets.
                for side in [Side::Frontend, Side::Backend] {
                    self.socket(side).process_commands()?;
                    self.unprobed[slot(side)] = true;
                }
            }
            for side in [Side::Frontend, Side::Backend] {
                if fds[slot(side)].revents == 0 {
                    continue;
                }
                self.unprobed[slot(side)] = true;
                if !self.core.reading(side) {
                    // Not read now (paused, or held back): process the commands anyway, which
                    // clears ZMQ_FD so that the wait does not spin, and notices ETERM.
                    self.socket(side).process_commands()?;
                }
            }
            if fds[CONTROL].revents != 0 {
                self.unprobed[CONTROL] = true;
            }
        }
    }

    fn receive_burst(&mut self, side: Side, id_buf: &mut [u8]) -> Result<(), Errno> {
        let socket = self.socket(side);
        for _ in 0..RECV_BURST {
            let id_len = match socket.recv_into(id_buf, ZMQ_DONTWAIT) {
                Ok(n) => n,
                Err(libc::EAGAIN) => {
                    self.unprobed[slot(side)] = false;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let mut data = Msg::new();
            // A STREAM receive is always [id][data]; the data frame is already queued.
            socket.recv_msg(&mut data, ZMQ_DONTWAIT)?;
            let now = Instant::now();
            let id = &id_buf[..id_len.min(id_buf.len())];
            self.core.on_receive(now, side, id, data, |msg| {
                msg.source_fd().map(|fd| PeerInfo {
                    fd,
                    addr: peer_address(fd),
                    local: local_address(fd),
                })
            });
            // Forward at once: the common case is one chunk in, one chunk out, zero-copy.
            self.flush(now)?;
            if !self.core.reading(side) {
                break;
            }
        }
        Ok(())
    }

    /// Hands pairs over, passes aborts on, and makes every send the core wants now.
    fn flush(&mut self, now: Instant) -> Result<(), Errno> {
        loop {
            self.hand_over(now)?;
            while let Some(tag) = self.core.next_abort() {
                self.abort(now, tag);
            }
            self.send_transmits(now)?;
            // Handovers left waiting are asked about again at the next turn, not here.
            if !self.core.wants_handover() || self.handovers_waiting {
                return Ok(());
            }
        }
    }

    /// Takes newly formed pairs out of libzmq, or leaves them on its relay. A pair whose
    /// connections libzmq still holds bytes for (the proxy's greeting to a peer that did not
    /// wait for it) waits, and is asked about again at the next turn.
    fn hand_over(&mut self, now: Instant) -> Result<(), Errno> {
        let linger = self.core.limits().close_linger;
        self.handovers_waiting = false;
        for _ in 0..self.core.handovers_pending() {
            let Some(h) = self.core.next_handover() else {
                return Ok(());
            };
            let tag = h.tag;
            // A worker the proxy dialed itself is already its own: nothing to take from libzmq.
            let dialed = self.dialer.as_ref().is_some_and(|d| d.owns(h.worker_id));
            let mut local_failure = false;
            let client = self
                .relays
                .as_ref()
                .and_then(|_| takeover::duplicate(h.client, &mut local_failure));
            let worker = match (&client, dialed) {
                (Some(_), false) => takeover::duplicate(h.worker, &mut local_failure),
                _ => None,
            };
            let taken = client.is_some() && (dialed || worker.is_some());
            if !taken {
                // Out of descriptors: the pair stays on the libzmq relay, which needs none.
                self.core.on_handover(now, tag, HandoverOutcome::Fallback);
                if local_failure {
                    self.core.local_failure();
                }
                continue;
            }
            // libzmq drops what its pipe still holds when it lets go: everything handed to it
            // must have reached the kernel first.
            let left_libzmq = |fd: &Option<std::os::fd::OwnedFd>, sent: u64| {
                fd.as_ref().is_none_or(|fd| {
                    tcp_bytes_written(std::os::fd::AsRawFd::as_raw_fd(fd)).is_none_or(|w| w >= sent)
                })
            };
            if !(left_libzmq(&client, h.sent[0]) && left_libzmq(&worker, h.sent[1])) {
                let outcome = if now >= h.paired_at + linger {
                    HandoverOutcome::Fallback
                } else {
                    self.handovers_waiting = true;
                    HandoverOutcome::NotYet
                };
                self.core.on_handover(now, tag, outcome);
                continue;
            }
            let client = client.expect("checked");
            let originals = [Some(h.client.fd), (!dialed).then_some(h.worker.fd)];
            let received = h.received;
            let (client_id, worker_id) = (h.client_id.to_vec(), h.worker_id.to_vec());
            let (mut to_worker, to_client) = (h.to_worker, h.to_client);
            self.unprobed[0] = true;
            if send_close(self.sockets.frontend, &client_id)? == SendOutcome::WouldBlock {
                self.core.on_handover(now, tag, HandoverOutcome::Fallback);
                continue;
            }
            let worker = if dialed {
                let dialer = self.dialer.as_mut().expect("dialed");
                let (fd, mut unsent) = dialer.take(&worker_id).expect("owned");
                // What the worker was owed before the pair formed goes first.
                unsent.append(&mut to_worker);
                to_worker = unsent;
                Some(fd)
            } else {
                self.unprobed[1] = true;
                match send_close(self.sockets.backend, &worker_id)? {
                    SendOutcome::WouldBlock => None,
                    _ => worker,
                }
            };
            let Some(worker) = worker else {
                self.core.on_handover(now, tag, HandoverOutcome::Broken);
                continue;
            };
            let pair = NewPair {
                tag,
                fds: [client, worker],
                to_worker,
                to_client,
            };
            self.takeovers.push(pair, originals, received, now + linger);
            self.core.on_handover(now, tag, HandoverOutcome::Taken);
        }
        Ok(())
    }

    /// Ends a taken-over pair at once: a peer sent bytes while libzmq let go of it.
    fn abort(&mut self, now: Instant, tag: u64) {
        if self.takeovers.abort(tag) {
            self.core
                .on_relay_event(now, never_relayed(tag, RelayEnd::Aborted));
        } else if let Some(relays) = &self.relays {
            relays.abort(tag);
        }
    }

    /// Pairs libzmq has let go of go to a relay thread.
    fn settle_takeovers(&mut self, now: Instant) {
        if self.takeovers.is_empty() {
            return;
        }
        let (mut ready, mut failed) = (Vec::new(), Vec::new());
        self.takeovers.settle(now, &mut ready, &mut failed);
        let relays = self.relays.as_mut().expect("takeovers need relay threads");
        if !ready.is_empty() && self.trim_due.is_none() {
            self.trim_due = Some(now + TRIM_INTERVAL);
        }
        for pair in ready {
            relays.add(pair);
        }
        for (tag, end) in failed {
            self.core.on_relay_event(now, never_relayed(tag, end));
        }
    }

    /// What the relay threads reported: pairs that ended, handshakes that completed.
    fn take_reports(&mut self, now: Instant) -> Result<(), Errno> {
        let Some(relays) = self.relays.as_mut() else {
            return Ok(());
        };
        while let Some(event) = relays.next_report() {
            self.core.on_relay_event(now, event);
        }
        if !relays.all_running() {
            return Err(libc::ENOTRECOVERABLE);
        }
        Ok(())
    }

    /// What happened on the connections the proxy dialed, told to the core as a STREAM
    /// socket would have told it.
    fn serve_dialed(&mut self, now: Instant, events: &mut Vec<DialEvent>) {
        let Some(dialer) = self.dialer.as_mut() else {
            return;
        };
        if !dialer.has_work() {
            return;
        }
        dialer.turn(self.core.reading(Side::Backend), events);
        for event in events.drain(..) {
            match event {
                DialEvent::Connected { id } => {
                    self.core
                        .on_receive(now, Side::Backend, &id, Msg::new(), |_| None);
                }
                DialEvent::Data { id, bytes, peer } => {
                    let msg = Msg::from_slice(&bytes);
                    self.core
                        .on_receive(now, Side::Backend, &id, msg, |_| Some(peer));
                }
                DialEvent::Lost { id } => self.core.on_disconnected(now, Side::Backend, &id),
            }
        }
    }

    /// Makes every send the core wants now.
    fn send_transmits(&mut self, now: Instant) -> Result<(), Errno> {
        loop {
            let (token, outcome) = {
                let Some(tx) = self.core.next_transmit(now) else {
                    return Ok(());
                };
                let socket = self.sockets.of(tx.side);
                self.unprobed[slot(tx.side)] = true;
                // Dial-out connections are the dialer's, not the backend socket's.
                let dialer = match self.dialer.as_mut() {
                    Some(d) if tx.side == Side::Backend => {
                        let ours = matches!(tx.kind, TransmitKind::Connect { .. }) || d.owns(tx.id);
                        ours.then_some(d)
                    }
                    _ => None,
                };
                let outcome = match (tx.kind, dialer) {
                    (TransmitKind::Connect { endpoint }, Some(d)) => d.connect(tx.id, endpoint),
                    (TransmitKind::Data(chunk), Some(d)) => {
                        let bytes: &[u8] = match &*chunk {
                            Chunk::Held(msg) => msg.as_ref(),
                            Chunk::Copied(bytes) => bytes,
                        };
                        d.send(tx.id, bytes)
                    }
                    (TransmitKind::Data(chunk), None) => send_chunk(socket, tx.id, chunk)?,
                    (TransmitKind::Connect { endpoint }, None) => connect(socket, tx.id, endpoint)?,
                    (TransmitKind::Probe, _) => match tx.peer {
                        Some(peer) if !peer_alive(peer) => SendOutcome::Unreachable,
                        _ => SendOutcome::Sent,
                    },
                    (
                        TransmitKind::Close {
                            check_drained,
                            force,
                            sent,
                            half_closed,
                        },
                        dialer,
                    ) => {
                        let acked = tx.peer.and_then(|p| tcp_bytes_acked(p.fd));
                        let pending = acked.map_or(0, |a| sent.saturating_sub(a));
                        if check_drained && pending > 0 {
                            SendOutcome::NotDrained(pending as usize)
                        } else if check_drained && half_closed {
                            SendOutcome::NotDrained(0)
                        } else if check_drained && tx.peer.is_some_and(half_close) {
                            SendOutcome::HalfClosed
                        } else {
                            if force {
                                if let Some(peer) = tx.peer {
                                    force_shutdown(peer);
                                }
                            }
                            match dialer {
                                Some(d) => d.close(tx.id),
                                None => send_close(socket, tx.id)?,
                            }
                        }
                    }
                };
                (tx.token, outcome)
            };
            self.core.on_transmit(now, token, outcome);
        }
    }

    /// Publishes what the core reported, never blocking: what the socket cannot take at once
    /// is dropped and counted.
    fn publish_events(&mut self) -> Result<(), Errno> {
        let Some(socket) = self.sockets.events else {
            return Ok(());
        };
        while let Some(event) = self.core.next_event() {
            match socket.send_bytes(event.to_text().as_bytes(), ZMQ_DONTWAIT) {
                Ok(()) => {}
                Err(e) if ends_the_proxy(e) => return Err(e),
                Err(_) => self.core.event_dropped(),
            }
        }
        Ok(())
    }

    fn serve_control(&mut self) -> Result<Option<Stop>, Errno> {
        let Some((control, kind)) = self.sockets.control else {
            return Ok(None);
        };
        let mut frame = [0u8; 32];
        loop {
            let len = match control.recv_into(&mut frame, ZMQ_DONTWAIT) {
                Ok(n) => n,
                Err(libc::EAGAIN) => {
                    self.unprobed[CONTROL] = false;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            // Commands are one frame; drain any further frames of the same message.
            while control.has_more()? {
                control.recv_into(&mut [0u8; 1], ZMQ_DONTWAIT)?;
            }
            let command = if len > frame.len() {
                Command::Unknown
            } else {
                Command::parse(&frame[..len])
            };
            let paused = match command {
                Command::Pause => Some(true),
                Command::Resume => Some(false),
                _ => None,
            };
            if let Some(paused) = paused {
                self.core.set_paused(paused);
                if let Some(relays) = &self.relays {
                    relays.set_paused(paused);
                }
            }
            let stats = self.stats(Instant::now());
            match reply_for(kind, command, &stats) {
                Reply::None => {}
                Reply::Empty => send_ignoring_full(control, &[], 0)?,
                Reply::Packed(values) => {
                    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
                    send_ignoring_full(control, &bytes, 0)?;
                }
                Reply::Counters(values) => {
                    let last = values.len() - 1;
                    for (i, v) in values.iter().enumerate() {
                        let flags = if i < last { ZMQ_SNDMORE } else { 0 };
                        send_ignoring_full(control, &v.to_ne_bytes(), flags)?;
                    }
                }
            }
            if command == Command::Terminate {
                return Ok(Some(Stop::Terminated));
            }
        }
    }
}

/// A pair's end when it could not be relayed after all.
fn never_relayed(tag: u64, end: RelayEnd) -> RelayEvent {
    RelayEvent::Ended {
        tag,
        end,
        bytes_up: 0,
        bytes_down: 0,
        handshake: crate::zmtp::HandshakeState::Running,
    }
}

/// Adds the relay's reads and writes to the STATISTICS counters: a read is a message in, a
/// write a message out.
fn add_relayed(stats: &mut Stats, t: &Totals) {
    for (side, i) in [(&mut stats.frontend, 0), (&mut stats.backend, 1)] {
        side.msgs_in += t.reads[i];
        side.bytes_in += t.bytes_in[i];
        side.msgs_out += t.writes[i];
        side.bytes_out += t.bytes_out[i];
    }
}

/// Control replies never block the proxy: a reply nobody reads is dropped.
fn send_ignoring_full(socket: SocketRef, data: &[u8], flags: c_int) -> Result<(), Errno> {
    match socket.send_bytes(data, flags | ZMQ_DONTWAIT) {
        Ok(()) | Err(libc::EAGAIN) | Err(EFSM) | Err(libc::EHOSTUNREACH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Errors of a send or connect that end the proxy rather than one connection: the context
/// is gone, the socket is gone, or a signal arrived.
fn ends_the_proxy(e: Errno) -> bool {
    e == ETERM || e == libc::ENOTSOCK || e == libc::EINTR
}

/// Maps a send error to an outcome; errors that end the proxy (ETERM, ENOTSOCK) propagate.
fn outcome_of(err: Errno) -> Result<SendOutcome, Errno> {
    match err {
        libc::EAGAIN => Ok(SendOutcome::WouldBlock),
        libc::EHOSTUNREACH => Ok(SendOutcome::Unreachable),
        e if ends_the_proxy(e) => Err(e),
        _ => Ok(SendOutcome::Unreachable),
    }
}

fn send_chunk(socket: SocketRef, id: &[u8], chunk: &mut Chunk<Msg>) -> Result<SendOutcome, Errno> {
    // The id frame must carry SNDMORE, or libzmq silently drops the next frame. A full pipe
    // fails here, on the id frame, before anything is consumed.
    if let Err(e) = socket.send_bytes(id, ZMQ_SNDMORE | ZMQ_DONTWAIT) {
        return outcome_of(e);
    }
    let sent = match chunk {
        Chunk::Held(msg) => socket.send_msg(msg, ZMQ_DONTWAIT),
        Chunk::Copied(bytes) => socket.send_bytes(bytes, ZMQ_DONTWAIT),
    };
    match sent {
        Ok(()) => Ok(SendOutcome::Sent),
        // After the id frame was taken a failure cannot be retried without libzmq's state
        // machine going astray; the pair is closed so the stream never has a hole.
        Err(e) => outcome_of(e).map(|_| SendOutcome::Unreachable),
    }
}

fn connect(socket: SocketRef, id: &[u8], endpoint: &str) -> Result<SendOutcome, Errno> {
    let Ok(endpoint) = std::ffi::CString::new(endpoint) else {
        return Ok(SendOutcome::Unreachable);
    };
    match socket.connect_with_id(id, &endpoint) {
        Ok(()) => Ok(SendOutcome::Sent),
        Err(e) if ends_the_proxy(e) => Err(e),
        Err(e) if crate::descriptors::is_local(e) => Ok(SendOutcome::LocalFailure),
        Err(_) => Ok(SendOutcome::Unreachable),
    }
}

fn send_close(socket: SocketRef, id: &[u8]) -> Result<SendOutcome, Errno> {
    if let Err(e) = socket.send_bytes(id, ZMQ_SNDMORE | ZMQ_DONTWAIT) {
        return outcome_of(e);
    }
    match socket.send_bytes(&[], ZMQ_DONTWAIT) {
        Ok(()) => Ok(SendOutcome::Sent),
        Err(e) => outcome_of(e).map(|_| SendOutcome::Unreachable),
    }
}
