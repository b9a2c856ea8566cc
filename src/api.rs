//! Numbers that are part of the C ABI: option names and the order of STREAMSTATS counters.
//! They only ever grow; a published value never changes meaning.

use std::os::raw::c_int;

/// Mechanisms clients may use and workers may offer: a string of comma-separated names
/// out of NULL, PLAIN, CURVE and GSSAPI (case-insensitive), e.g. "CURVE" or "CURVE,PLAIN".
/// Default: all four.
pub const ZMQ_PROXY_STREAM_MECHANISMS: c_int = 1;
/// int, milliseconds: a client must send its greeting and first handshake command within
/// this time of connecting, or it is closed (slowloris). Worker connections must send their
/// greeting within it too. 0 = no limit. Default 5000.
pub const ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT: c_int = 2;
/// int, milliseconds: a screened client waits at most this long for a worker, then is
/// closed. 0 = no limit. Default 20000 (below libzmq's 30 s ZMQ_HANDSHAKE_IVL).
pub const ZMQ_PROXY_STREAM_WAIT_TIMEOUT: c_int = 3;
/// int, count: screened clients waiting for a worker beyond this are closed at once.
/// Default 1024.
pub const ZMQ_PROXY_STREAM_MAX_WAITING: c_int = 4;
/// int, count: pairs relaying at once; further clients wait. 0 = unlimited (default).
pub const ZMQ_PROXY_STREAM_MAX_PAIRS: c_int = 5;
/// int64_t, bytes: memory one direction of one pair may hold in the proxy (beyond libzmq's
/// own pipes) while its destination does not keep up; on the libzmq relay a pair that needs
/// more is closed and counted (or, with ZMQ_PROXY_STREAM_BACKPRESSURE 1, its source socket
/// is held back).
/// At least 16384. Default 4 MiB. For a taken-over pair (ZMQ_PROXY_STREAM_TAKEOVER) it
/// bounds the relay's buffer per direction, which is at most 128 KiB anyway, and taken
/// only while bytes are in flight (an idle pair holds none); a full buffer stops reading
/// the source, so TCP pushes back on it, and the pair is never closed for it.
pub const ZMQ_PROXY_STREAM_PAIR_BUFFER: c_int = 6;
/// int, milliseconds: a pair with no traffic either way for this long is closed.
/// 0 = never (default).
pub const ZMQ_PROXY_STREAM_IDLE_TIMEOUT: c_int = 7;
/// int, milliseconds: idle worker connections older than this are closed, so that a dial-in
/// worker reconnects with a fresh connection before libzmq's own ZMQ_HANDSHAKE_IVL (30 s by
/// default) resets it in the middle of a pairing. 0 = never. Default 20000.
pub const ZMQ_PROXY_STREAM_WORKER_MAX_AGE: c_int = 8;
/// int, 0 or 1: what happens when one direction of a pair needs more than
/// ZMQ_PROXY_STREAM_PAIR_BUFFER because its destination reads slower than its source sends.
/// 0 (default): the pair is closed and counted; other connections are never slowed down.
/// 1: the proxy stops reading the source's socket until the buffer has drained to half,
/// pushing back on every sender of that socket through libzmq and TCP, like
/// zmq_proxy_steerable does: nothing is lost, but one slow peer slows down the others on
/// its socket; a destination that takes nothing for ZMQ_PROXY_STREAM_STALL_TIMEOUT is
/// closed with its pair. Applies only to pairs relayed through libzmq
/// (ZMQ_PROXY_STREAM_TAKEOVER 0, or a pair that could not be taken over): taken-over pairs
/// always push back on their own source alone and are never closed for it.
pub const ZMQ_PROXY_STREAM_BACKPRESSURE: c_int = 9;
/// int, milliseconds: with ZMQ_PROXY_STREAM_BACKPRESSURE 1, a destination that accepts no
/// bytes for this long while the proxy waits for it is closed with its pair (a stuck peer
/// must not stall the others for ever). 0 = wait for ever. Default 2000. Not used for
/// taken-over pairs (ZMQ_PROXY_STREAM_TAKEOVER): a stuck peer there stalls only its own
/// partner, through TCP, for as long as it stays stuck.
pub const ZMQ_PROXY_STREAM_STALL_TIMEOUT: c_int = 10;
/// int, milliseconds: a pair quiet for this long has its connections checked at the socket
/// level (is the TCP connection still there?). libzmq drops a disconnect notification when
/// the proxy lags a full pipe (ZMQ_RCVHWM) behind; this check finds such connections
/// instead of keeping their partner paired for ever. 0 = never. Default 10000. Not used
/// for taken-over pairs, whose endings the proxy sees on the connections themselves.
pub const ZMQ_PROXY_STREAM_PROBE_INTERVAL: c_int = 11;
/// string: a client network admitted ("192.0.2.0/24", "2001:db8::/32", "127.0.0.1", "::1").
/// Each call adds one; an empty string clears the list. With a list set, clients from other
/// addresses are closed on their first bytes, before anything they send is judged or reaches a
/// worker (REJECT_DENIED); they will have received only the proxy's 11-byte greeting opening. IPv4 clients of
/// an IPv6 socket (::ffff:a.b.c.d) match IPv4 networks. Default: none (all admitted).
pub const ZMQ_PROXY_STREAM_ALLOW: c_int = 12;
/// string: a client network refused, checked before ZMQ_PROXY_STREAM_ALLOW (deny wins).
/// Each call adds one; an empty string clears the list. Default: none.
pub const ZMQ_PROXY_STREAM_DENY: c_int = 13;
/// int, count: open client connections one address may hold; more are closed at once
/// (REJECT_PER_ADDRESS). 0 = unlimited (default).
pub const ZMQ_PROXY_STREAM_MAX_PER_ADDRESS: c_int = 14;
/// string: a worker endpoint to dial ("tcp://10.0.0.5:5600", "ipc:///run/worker.sock"), for
/// the dial-out topology. Each call adds one; an empty string clears the list. With at least
/// one endpoint set the proxy makes its own worker connections: for each screened client it
/// connects (a non-blocking connect(2) of its own; libzmq never sees these connections) to
/// the endpoint with the fewest open pairs (ties in turn). The backend socket must still be
/// a ZMQ_STREAM socket that is neither bound nor connected by the caller; connections that
/// reach it in any other way are closed and counted as rejected workers. Host names in tcp://
/// endpoints are resolved once, when first dialed (a blocking lookup on the proxy's thread:
/// prefer addresses). Workers bind a ROUTER socket (a CURVE server) there; a client with a
/// wrong server key then costs that worker one connection and nothing else. A refused
/// connection fails at once and marks the endpoint down. When the pair ends the proxy closes
/// the connection; nothing reconnects it. The proxy learns each endpoint's mechanism from the
/// greeting of every connection it makes there (the first, and again whenever it changes; an
/// endpoint that went down is learned anew): a client goes only to an endpoint that offers
/// its mechanism, or to one not known yet, which gets one connection at a time until it is;
/// a client whose mechanism no endpoint offers is refused as soon as its greeting arrives
/// (REJECT_MECHANISM, a REJECT event), before any worker is dialed for it. So a NULL or
/// PLAIN client sent to CURVE workers costs at most one connection per endpoint, once. Memory and session rate stay flat however many
/// clients the broker serves. Default: none (dial-in: workers connect to the backend).
pub const ZMQ_PROXY_STREAM_WORKER_ENDPOINT: c_int = 15;
/// int, milliseconds: in dial-out, a worker endpoint must accept the connection and send its
/// ZMTP greeting within this time; otherwise the connection is dropped, the endpoint is
/// marked down (it is tried again after 500 ms, doubling up to 30 s while it keeps failing)
/// and the client is offered to another endpoint without losing a byte (CONNECT_TIMEOUTS).
/// 0 = wait for ever. Default 2000.
pub const ZMQ_PROXY_STREAM_CONNECT_TIMEOUT: c_int = 16;
/// int, count: a client address whose pairs this many times in a row ended with the worker
/// closing before the security handshake completed or refusing it with ERROR (a wrong CURVE
/// server key, a bad password) is refused for ZMQ_PROXY_STREAM_FAIL_BAN_TIME (REJECT_BANNED): its
/// connections are closed on their first bytes and reach no worker. Once banned, the
/// address's next failure bans it again at once, for twice as long each time (at most 8
/// times FAIL_BAN_TIME); a completed handshake from the address clears its record, and so
/// does a quiet spell of one ban length after its last ban ended. Clients from other
/// addresses are never affected; a client sharing the banned address (behind the same NAT)
/// is refused while the ban in force lasts, and no longer. 0 = off. Default 2.
///
/// Why on by default: in dial-in, libzmq never reconnects a worker connection that failed a
/// handshake with a protocol error (a wrong-key CURVE HELLO is one), so each such pair
/// costs a worker one of its connections for good unless the worker calls zmq_connect()
/// again (see ZMQ_PROXY_STREAM_STAT_WORKERS_LOST). Without a ban, one wrong-key client that
/// keeps reconnecting (libzmq does so every 100 ms) takes every connection of every worker
/// within seconds. With the defaults (2 failures, 30 s, doubling) such a client fails at
/// 0 s, once more 100 ms later, then at 30 s and next at 90 s: it costs the workers at
/// most 3 connections in its first 60 s and one per ban after that, while one
/// failure alone (a typo, a key rotation caught mid-way) bans nobody.
///
/// A worker that dies is no client's failure. A worker refusing a key closes that one
/// connection without a word; a worker process that dies has all its connections closed at
/// once. So a silent close during the handshake counts only 300 ms later, and not at all if
/// within 300 ms (before or after) the same worker (its address in dial-in, its endpoint in
/// dial-out) ends a connection no client explains: an idle connection closing, a session
/// whose handshake had completed closed by the worker, another address's pair cut at the
/// same moment, in dial-out a connection to the endpoint failing. Such pairs count in
/// ZMQ_PROXY_STREAM_STAT_WORKERS_LOST, not in HANDSHAKES_FAILED. A client whose pair
/// formed after its earlier failure and failed again confirms both at once (a wrong-key
/// client is banned on its second attempt); an ERROR (a ZAP refusal) counts at once, and so
/// does every failure of an address banned before whose repeat period is not over. A
/// worker with no idle connection that dies while handshaking with two clients of one
/// address only cannot be told from two refusals: they count.
pub const ZMQ_PROXY_STREAM_FAIL_BAN: c_int = 17;
/// int, milliseconds: how long ZMQ_PROXY_STREAM_FAIL_BAN's first ban of an address lasts;
/// each repeat doubles it, up to 8 times this. At least 1. Default 30000.
pub const ZMQ_PROXY_STREAM_FAIL_BAN_TIME: c_int = 18;
/// void *: a socket the caller made (ZMQ_PUB, ZMQ_PUSH or ZMQ_PAIR) on which the proxy
/// publishes one message per event; value is a pointer to the socket pointer, size
/// sizeof(void *); a NULL socket turns events off (default). The proxy never blocks on it:
/// an event that cannot be queued at once is dropped and counted (EVENTS_DROPPED). The
/// socket stays the caller's; only the proxy's thread may use it during a run.
///
/// Each event is one frame of ASCII text, fields separated by one space (the format is
/// stable; new fields are only ever appended at the end of a line):
///   OPEN <pair> <client> <worker> <mechanism>
///   CLOSE <pair> <client> <worker> <mechanism> <bytes-up> <bytes-down> <ms> <reason>
///   REJECT <client> <reason>
///   LOST <pair> <worker> <mechanism>
/// <pair> numbers pairs from 1 in the order they opened. <client> is the client's
/// address:port ("192.0.2.7:51000", "[2001:db8::7]:51000"), "-" when unknown (ipc).
/// <worker> is the dialed endpoint in dial-out, the worker connection's address:port in
/// dial-in (spaces written as %20). <mechanism> is NULL, PLAIN, CURVE or GSSAPI.
/// <bytes-up> is what the client sent after the greeting, <bytes-down> what the worker sent,
/// <ms> how long the pair lasted. CLOSE reasons: client-closed, worker-closed,
/// handshake-failed (the worker closed before its handshake completed, or refused the
/// client with ERROR), idle-timeout,
/// buffer-overflow, stalled, takeover-violation (a peer sent while its connection was being
/// taken over), takeover-failed. REJECT reasons: denied, per-address, banned, bad-greeting,
/// mechanism, bad-command, handshake-timeout, wait-timeout, queue-full, early-overflow,
/// limit (ZMQ_PROXY_STREAM_MAX_CONNECTIONS).
/// LOST (dial-in only) follows the CLOSE handshake-failed of a pair whose worker connection
/// closed during the security handshake: that connection will not come back unless its
/// worker connects again (ZMQ_PROXY_STREAM_STAT_WORKERS_LOST). Readers should skip event
/// kinds they do not know: new kinds may be added.
pub const ZMQ_PROXY_STREAM_EVENTS: c_int = 19;

/// int, 0 or 1: take paired connections out of libzmq and relay them directly.
/// 1 (default): when a pair forms, the proxy takes both TCP connections over from libzmq
/// (their descriptors, duplicated and checked; libzmq drops its copies) and from then on
/// relays between the two connections itself: each direction reads only while its buffer
/// (at most 128 KiB, and at most ZMQ_PROXY_STREAM_PAIR_BUFFER) has room, so a slow or
/// stuck peer slows its own partner through TCP and nobody else, and no session is ever
/// closed for being fast. A FIN is passed on after the last byte, so every byte sent
/// before a close arrives. ZMQ_PROXY_STREAM_BACKPRESSURE, _STALL_TIMEOUT and
/// _PROBE_INTERVAL do not apply to such pairs (they need none of it). A connection whose
/// descriptor cannot be taken (no ZMQ_SRCFD, a transport other than TCP, a failed check)
/// stays on the libzmq relay. 0: every pair is relayed through the STREAM sockets, as
/// before version 0.2.
pub const ZMQ_PROXY_STREAM_TAKEOVER: c_int = 20;
/// int, count: threads that relay taken-over pairs, each with its own epoll set; pairs are
/// spread over them (fewest pairs first). libzmq work (accepting, greeting, screening,
/// pairing, control) stays on the thread that called zmq_proxy_stream_run(). At least 1.
/// Default 1.
pub const ZMQ_PROXY_STREAM_THREADS: c_int = 21;
/// int, count: connections the proxy may hold at once, each a descriptor: client
/// connections, worker connections (accepted in dial-in, dialed in dial-out), in every
/// state (handshaking, waiting, idle, paired, taken over, closing). A connection seen
/// beyond it is closed at once, before the proxy greets it: a client is counted
/// (ZMQ_PROXY_STREAM_STAT_REJECT_LIMIT) and reported (a REJECT event, reason "limit"); a
/// dial-in worker connection is counted the same way (no event), since it would cost a
/// descriptor too; but for a second after a dial-in worker connection went (libzmq
/// reconnects it after ZMQ_RECONNECT_IVL) clients leave room for it, so that clients
/// arriving at the budget never drain the pool of workers. In dial-out a client is
/// admitted only while there is room for it and the worker connection it will need, and
/// the proxy dials no worker while the budget is spent: the client waits
/// (ZMQ_PROXY_STREAM_WAIT_TIMEOUT) for a connection to close. So the process never
/// reaches EMFILE through the proxy's connections: at EMFILE libzmq cannot accept, its
/// I/O thread retries the listening socket without pause (thousands of failing accept4
/// calls a second) and the connections waiting in the kernel are never served.
///
/// -1 (default): derived, when zmq_proxy_stream_run() starts, from the process's limit:
///   RLIMIT_NOFILE's soft limit, minus the descriptors open at that moment (libzmq's
///   context and sockets, the relay threads', the caller's), minus a headroom of
///   64 + limit / 8 (the caller's later sockets; the connections libzmq accepts in a burst
///   before the proxy sees and closes them, up to the listen backlog, ZMQ_BACKLOG, 100 by
///   default; the second descriptor a pair holds for an instant while it is taken over).
///   At least 1. With `ulimit -n 1024` and 30 descriptors open that is 802, with 20000 and
///   30 open 17406. An unlimited RLIMIT_NOFILE gives no limit. Measured at `ulimit -n`
///   256 (a headroom of 96) with 400 CURVE clients arriving at once: at most 206
///   descriptors open.
/// 0: no limit (the proxy does not count; at EMFILE libzmq spins as above).
/// n > 0: at most n connections (n is not checked against the process's limit).
/// A pair costs 2 (its client and worker connections; a dial-in worker's idle connections
/// cost 1 each while they wait): size `ulimit -n` at about 8/7 x (descriptors open at
/// start + 64 + 2 per concurrent client + idle worker connections).
pub const ZMQ_PROXY_STREAM_MAX_CONNECTIONS: c_int = 22;

/// STREAMSTATS: the reply is one frame of native-endian uint64 counters, in this order.
/// New counters are only ever appended; read the frame's size to know how many there are.
/// Pairs relaying now.
pub const ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN: c_int = 0;
/// Pairs formed since the proxy started.
pub const ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL: c_int = 1;
/// Screened worker connections waiting for a client, by mechanism.
pub const ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL: c_int = 2;
pub const ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_PLAIN: c_int = 3;
pub const ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE: c_int = 4;
pub const ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_GSSAPI: c_int = 5;
/// Screened clients waiting for a worker.
pub const ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING: c_int = 6;
/// Clients closed because their first bytes were not a ZMTP 3.x client greeting.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING: c_int = 7;
/// Clients closed because their mechanism is not in ZMQ_PROXY_STREAM_MECHANISMS, or, in
/// dial-out, because no worker endpoint offers it (as learned from the endpoints' greetings).
pub const ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM: c_int = 8;
/// Clients closed because their first handshake command was malformed.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND: c_int = 9;
/// Clients closed because greeting and first command took longer than the handshake timeout.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT: c_int = 10;
/// Clients closed after waiting longer than the wait timeout for a worker.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_WAIT_TIMEOUT: c_int = 11;
/// Clients closed because ZMQ_PROXY_STREAM_MAX_WAITING clients were already waiting.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_QUEUE_FULL: c_int = 12;
/// Pairs closed because one direction needed more than ZMQ_PROXY_STREAM_PAIR_BUFFER.
pub const ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW: c_int = 13;
/// Pairs closed after ZMQ_PROXY_STREAM_IDLE_TIMEOUT without traffic.
pub const ZMQ_PROXY_STREAM_STAT_CLOSED_IDLE_TIMEOUT: c_int = 14;
/// Worker connections closed for a bad greeting, a wrong role, a disallowed mechanism,
/// bytes sent before pairing, or a greeting slower than the handshake timeout. In dial-out,
/// an endpoint offering another mechanism than the client's it was dialed for is not
/// counted here: the proxy learns the endpoint's mechanism and the client goes elsewhere or
/// is refused (REJECT_MECHANISM).
pub const ZMQ_PROXY_STREAM_STAT_WORKERS_REJECTED: c_int = 15;
/// Idle worker connections closed at ZMQ_PROXY_STREAM_WORKER_MAX_AGE.
pub const ZMQ_PROXY_STREAM_STAT_WORKERS_RECYCLED: c_int = 16;
/// Sends that met a full libzmq pipe (EAGAIN) and were retried.
pub const ZMQ_PROXY_STREAM_STAT_SEND_RETRIES: c_int = 17;
/// Data chunks from connections the proxy had already closed (dropped).
pub const ZMQ_PROXY_STREAM_STAT_STRAY_CHUNKS: c_int = 18;
/// Bytes that arrived for a partner that had already left (dropped with the pair).
pub const ZMQ_PROXY_STREAM_STAT_DROPPED_BYTES: c_int = 19;
/// Screened clients closed for sending more than 64 KiB while waiting for a worker.
pub const ZMQ_PROXY_STREAM_STAT_CLOSED_EARLY_OVERFLOW: c_int = 20;
/// Pairs closed because, with ZMQ_PROXY_STREAM_BACKPRESSURE 1, a destination accepted
/// nothing for ZMQ_PROXY_STREAM_STALL_TIMEOUT.
pub const ZMQ_PROXY_STREAM_STAT_CLOSED_STALLED: c_int = 21;
/// Times reading a socket was suspended for backpressure (ZMQ_PROXY_STREAM_BACKPRESSURE 1).
pub const ZMQ_PROXY_STREAM_STAT_BACKPRESSURE_PAUSES: c_int = 22;
/// Connections found gone by the liveness check (their disconnect notification was lost).
pub const ZMQ_PROXY_STREAM_STAT_FOUND_GONE: c_int = 23;
/// Clients closed because their address is denied or not allowed.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_DENIED: c_int = 24;
/// Clients closed because their address already held ZMQ_PROXY_STREAM_MAX_PER_ADDRESS.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_PER_ADDRESS: c_int = 25;
/// Dial-out: worker connections the proxy made (zmq_connect calls).
pub const ZMQ_PROXY_STREAM_STAT_DIALS: c_int = 26;
/// Dial-out: worker connections dropped for not answering within
/// ZMQ_PROXY_STREAM_CONNECT_TIMEOUT (their client was offered to another endpoint).
pub const ZMQ_PROXY_STREAM_STAT_CONNECT_TIMEOUTS: c_int = 27;
/// Dial-out: endpoints marked down now (not offered clients until their retry time).
pub const ZMQ_PROXY_STREAM_STAT_ENDPOINTS_DOWN: c_int = 28;
/// Clients closed because their address is banned (ZMQ_PROXY_STREAM_FAIL_BAN).
pub const ZMQ_PROXY_STREAM_STAT_REJECT_BANNED: c_int = 29;
/// Pairs the worker closed before its security handshake completed, or refused with an
/// ERROR command (a ZAP refusal: a bad password, a CURVE key it does not admit). A silent
/// close is counted up to 300 ms late, and not at all when its worker died (see
/// ZMQ_PROXY_STREAM_FAIL_BAN; WORKERS_LOST counts those).
pub const ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED: c_int = 30;
/// Events dropped because the events socket could not take them at once.
pub const ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED: c_int = 31;
/// Pairs whose connections were taken out of libzmq and relayed directly
/// (ZMQ_PROXY_STREAM_TAKEOVER).
pub const ZMQ_PROXY_STREAM_STAT_PAIRS_TAKEN_OVER: c_int = 32;
/// Pairs that could not be taken over although ZMQ_PROXY_STREAM_TAKEOVER is on: left on the
/// libzmq relay (no descriptor, a failed check, libzmq holding bytes for a peer too long),
/// or, rarely, closed (CLOSE reason takeover-failed) because libzmq let go of one connection
/// and not the other, or did not let go in time.
pub const ZMQ_PROXY_STREAM_STAT_TAKEOVER_FALLBACKS: c_int = 33;
/// Pairs closed because a peer sent bytes while its connection was being taken over (a
/// ZMTP peer is silent then; such bytes may be lost inside libzmq, so the pair is closed
/// rather than relayed with a hole).
pub const ZMQ_PROXY_STREAM_STAT_TAKEOVER_VIOLATIONS: c_int = 34;
/// Dial-in: worker connections that closed during a pair's security handshake (the CLOSE
/// reason handshake-failed, a LOST event each). libzmq never reconnects a connection that
/// failed a handshake with a protocol error (a client's wrong CURVE server key), so each is
/// a slot its worker has lost unless it calls zmq_connect() again: a count that rises while
/// WORKERS_IDLE falls shows capacity eroding before clients queue. In dial-out too: pairs
/// cut mid-handshake by a worker that died (see ZMQ_PROXY_STREAM_FAIL_BAN).
pub const ZMQ_PROXY_STREAM_STAT_WORKERS_LOST: c_int = 35;
/// Connections closed at once, before any greeting, because the proxy held
/// ZMQ_PROXY_STREAM_MAX_CONNECTIONS connections already: clients (each a REJECT event,
/// reason "limit") and, in dial-in, worker connections.
pub const ZMQ_PROXY_STREAM_STAT_REJECT_LIMIT: c_int = 36;
/// Dial-out connections and takeovers that failed for a reason of this host, not of the
/// worker: connect(2) or socket(2) failing with EMFILE, ENFILE, ENOBUFS, ENOMEM or
/// EADDRNOTAVAIL (no ephemeral port left), and dup(2) failing at a takeover. Such a failure
/// never marks an endpoint down and is not a connect timeout: the client waits and the dial
/// is retried after 100 ms (within ZMQ_PROXY_STREAM_WAIT_TIMEOUT); a pair whose descriptor
/// could not be duplicated stays on the libzmq relay (also counted in TAKEOVER_FALLBACKS).
pub const ZMQ_PROXY_STREAM_STAT_LOCAL_FAILURES: c_int = 37;
/// Number of counters in this version's STREAMSTATS frame.
pub const ZMQ_PROXY_STREAM_STAT_COUNT: c_int = 38;
