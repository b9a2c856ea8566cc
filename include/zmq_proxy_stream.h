/*
 * zmq_proxy_stream.h: the C API of streamq-proxy.
 *
 * A drop-in for zmq_proxy_steerable() that works on two ZMQ_STREAM sockets and relays the
 * ZMTP byte stream of each client connection to one worker connection, so that CURVE (and
 * NULL, PLAIN, GSSAPI) sessions run end to end between client and worker: the broker holds
 * no secret key and never sees plaintext.
 *
 * Link with -lzmq_proxy_stream -lzmq. See the README for the topology and worker rules.
 *
 * Copyright the streamq-proxy authors. LGPL-3.0-or-later.
 */

#ifndef ZMQ_PROXY_STREAM_H
#define ZMQ_PROXY_STREAM_H

/* Generated from src/api.rs and src/ffi/ by cbindgen (build.rs). Do not edit by hand. */

#include <stddef.h>
#include <stdint.h>

/**
 * Mechanisms clients may use and workers may offer: a string of comma-separated names
 * out of NULL, PLAIN, CURVE and GSSAPI (case-insensitive), e.g. "CURVE" or "CURVE,PLAIN".
 * Default: all four.
 */
#define ZMQ_PROXY_STREAM_MECHANISMS 1

/**
 * int, milliseconds: a client must send its greeting and first handshake command within
 * this time of connecting, or it is closed (slowloris). Worker connections must send their
 * greeting within it too. 0 = no limit. Default 5000.
 */
#define ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT 2

/**
 * int, milliseconds: a screened client waits at most this long for a worker, then is
 * closed. 0 = no limit. Default 20000 (below libzmq's 30 s ZMQ_HANDSHAKE_IVL).
 */
#define ZMQ_PROXY_STREAM_WAIT_TIMEOUT 3

/**
 * int, count: screened clients waiting for a worker beyond this are closed at once.
 * Default 1024.
 */
#define ZMQ_PROXY_STREAM_MAX_WAITING 4

/**
 * int, count: pairs relaying at once; further clients wait. 0 = unlimited (default).
 */
#define ZMQ_PROXY_STREAM_MAX_PAIRS 5

/**
 * int64_t, bytes: memory one direction of one pair may hold in the proxy (beyond libzmq's
 * own pipes) while its destination does not keep up; on the libzmq relay a pair that needs
 * more is closed and counted (or, with ZMQ_PROXY_STREAM_BACKPRESSURE 1, its source socket
 * is held back).
 * At least 16384. Default 4 MiB. For a taken-over pair (ZMQ_PROXY_STREAM_TAKEOVER) it
 * bounds the relay's buffer per direction, which is at most 128 KiB anyway, and taken
 * only while bytes are in flight (an idle pair holds none); a full buffer stops reading
 * the source, so TCP pushes back on it, and the pair is never closed for it.
 */
#define ZMQ_PROXY_STREAM_PAIR_BUFFER 6

/**
 * int, milliseconds: a pair with no traffic either way for this long is closed.
 * 0 = never (default).
 */
#define ZMQ_PROXY_STREAM_IDLE_TIMEOUT 7

/**
 * int, milliseconds: idle worker connections older than this are closed, so that a dial-in
 * worker reconnects with a fresh connection before libzmq's own ZMQ_HANDSHAKE_IVL (30 s by
 * default) resets it in the middle of a pairing. 0 = never. Default 20000.
 */
#define ZMQ_PROXY_STREAM_WORKER_MAX_AGE 8

/**
 * int, 0 or 1: what happens when one direction of a pair needs more than
 * ZMQ_PROXY_STREAM_PAIR_BUFFER because its destination reads slower than its source sends.
 * 0 (default): the pair is closed and counted; other connections are never slowed down.
 * 1: the proxy stops reading the source's socket until the buffer has drained to half,
 * pushing back on every sender of that socket through libzmq and TCP, like
 * zmq_proxy_steerable does: nothing is lost, but one slow peer slows down the others on
 * its socket; a destination that takes nothing for ZMQ_PROXY_STREAM_STALL_TIMEOUT is
 * closed with its pair. Applies only to pairs relayed through libzmq
 * (ZMQ_PROXY_STREAM_TAKEOVER 0, or a pair that could not be taken over): taken-over pairs
 * always push back on their own source alone and are never closed for it.
 */
#define ZMQ_PROXY_STREAM_BACKPRESSURE 9

/**
 * int, milliseconds: with ZMQ_PROXY_STREAM_BACKPRESSURE 1, a destination that accepts no
 * bytes for this long while the proxy waits for it is closed with its pair (a stuck peer
 * must not stall the others for ever). 0 = wait for ever. Default 2000. Not used for
 * taken-over pairs (ZMQ_PROXY_STREAM_TAKEOVER): a stuck peer there stalls only its own
 * partner, through TCP, for as long as it stays stuck.
 */
#define ZMQ_PROXY_STREAM_STALL_TIMEOUT 10

/**
 * int, milliseconds: a pair quiet for this long has its connections checked at the socket
 * level (is the TCP connection still there?). libzmq drops a disconnect notification when
 * the proxy lags a full pipe (ZMQ_RCVHWM) behind; this check finds such connections
 * instead of keeping their partner paired for ever. 0 = never. Default 10000. Not used
 * for taken-over pairs, whose endings the proxy sees on the connections themselves.
 */
#define ZMQ_PROXY_STREAM_PROBE_INTERVAL 11

/**
 * string: a client network admitted ("192.0.2.0/24", "2001:db8::/32", "127.0.0.1", "::1").
 * Each call adds one; an empty string clears the list. With a list set, clients from other
 * addresses are closed on their first bytes, before anything they send is judged or reaches a
 * worker (REJECT_DENIED); they will have received only the proxy's 11-byte greeting opening. IPv4 clients of
 * an IPv6 socket (::ffff:a.b.c.d) match IPv4 networks. Default: none (all admitted).
 */
#define ZMQ_PROXY_STREAM_ALLOW 12

/**
 * string: a client network refused, checked before ZMQ_PROXY_STREAM_ALLOW (deny wins).
 * Each call adds one; an empty string clears the list. Default: none.
 */
#define ZMQ_PROXY_STREAM_DENY 13

/**
 * int, count: open client connections one address may hold; more are closed at once
 * (REJECT_PER_ADDRESS). 0 = unlimited (default).
 */
#define ZMQ_PROXY_STREAM_MAX_PER_ADDRESS 14

/**
 * string: a worker endpoint to dial ("tcp://10.0.0.5:5600", "ipc:///run/worker.sock"), for
 * the dial-out topology. Each call adds one; an empty string clears the list. With at least
 * one endpoint set the proxy makes its own worker connections: for each screened client it
 * connects (a non-blocking connect(2) of its own; libzmq never sees these connections) to
 * the endpoint with the fewest open pairs (ties in turn). The backend socket must still be
 * a ZMQ_STREAM socket that is neither bound nor connected by the caller; connections that
 * reach it in any other way are closed and counted as rejected workers. Host names in tcp://
 * endpoints are resolved once, when first dialed (a blocking lookup on the proxy's thread:
 * prefer addresses). Workers bind a ROUTER socket (a CURVE server) there; a client with a
 * wrong server key then costs that worker one connection and nothing else. A refused
 * connection fails at once and marks the endpoint down. When the pair ends the proxy closes
 * the connection; nothing reconnects it. The proxy learns each endpoint's mechanism from the
 * greeting of every connection it makes there (the first, and again whenever it changes; an
 * endpoint that went down is learned anew): a client goes only to an endpoint that offers
 * its mechanism, or to one not known yet, which gets one connection at a time until it is;
 * a client whose mechanism no endpoint offers is refused as soon as its greeting arrives
 * (REJECT_MECHANISM, a REJECT event), before any worker is dialed for it. So a NULL or
 * PLAIN client sent to CURVE workers costs at most one connection per endpoint, once. Memory and session rate stay flat however many
 * clients the broker serves. Default: none (dial-in: workers connect to the backend).
 */
#define ZMQ_PROXY_STREAM_WORKER_ENDPOINT 15

/**
 * int, milliseconds: in dial-out, a worker endpoint must accept the connection and send its
 * ZMTP greeting within this time; otherwise the connection is dropped, the endpoint is
 * marked down (it is tried again after 500 ms, doubling up to 30 s while it keeps failing)
 * and the client is offered to another endpoint without losing a byte (CONNECT_TIMEOUTS).
 * 0 = wait for ever. Default 2000.
 */
#define ZMQ_PROXY_STREAM_CONNECT_TIMEOUT 16

/**
 * int, count: a client address whose pairs this many times in a row ended with the worker
 * closing before the security handshake completed or refusing it with ERROR (a wrong CURVE
 * server key, a bad password) is refused for ZMQ_PROXY_STREAM_FAIL_BAN_TIME (REJECT_BANNED): its
 * connections are closed on their first bytes and reach no worker. Once banned, the
 * address's next failure bans it again at once, for twice as long each time (at most 8
 * times FAIL_BAN_TIME); a completed handshake from the address clears its record, and so
 * does a quiet spell of one ban length after its last ban ended. Clients from other
 * addresses are never affected; a client sharing the banned address (behind the same NAT)
 * is refused while the ban in force lasts, and no longer. 0 = off. Default 2.
 *
 * Why on by default: in dial-in, libzmq never reconnects a worker connection that failed a
 * handshake with a protocol error (a wrong-key CURVE HELLO is one), so each such pair
 * costs a worker one of its connections for good unless the worker calls zmq_connect()
 * again (see ZMQ_PROXY_STREAM_STAT_WORKERS_LOST). Without a ban, one wrong-key client that
 * keeps reconnecting (libzmq does so every 100 ms) takes every connection of every worker
 * within seconds. With the defaults (2 failures, 30 s, doubling) such a client fails at
 * 0 s, once more 100 ms later, then at 30 s and next at 90 s: it costs the workers at
 * most 3 connections in its first 60 s and one per ban after that, while one
 * failure alone (a typo, a key rotation caught mid-way) bans nobody.
 *
 * A worker that dies is no client's failure. A worker refusing a key closes that one
 * connection without a word; a worker process that dies has all its connections closed at
 * once. So a silent close during the handshake counts only 300 ms later, and not at all if
 * within 300 ms (before or after) the same worker (its address in dial-in, its endpoint in
 * dial-out) ends a connection no client explains: an idle connection closing, a session
 * whose handshake had completed closed by the worker, another address's pair cut at the
 * same moment, in dial-out a connection to the endpoint failing. Such pairs count in
 * ZMQ_PROXY_STREAM_STAT_WORKERS_LOST, not in HANDSHAKES_FAILED. A client whose pair
 * formed after its earlier failure and failed again confirms both at once (a wrong-key
 * client is banned on its second attempt); an ERROR (a ZAP refusal) counts at once, and so
 * does every failure of an address banned before whose repeat period is not over. A
 * worker with no idle connection that dies while handshaking with two clients of one
 * address only cannot be told from two refusals: they count.
 */
#define ZMQ_PROXY_STREAM_FAIL_BAN 17

/**
 * int, milliseconds: how long ZMQ_PROXY_STREAM_FAIL_BAN's first ban of an address lasts;
 * each repeat doubles it, up to 8 times this. At least 1. Default 30000.
 */
#define ZMQ_PROXY_STREAM_FAIL_BAN_TIME 18

/**
 * void *: a socket the caller made (ZMQ_PUB, ZMQ_PUSH or ZMQ_PAIR) on which the proxy
 * publishes one message per event; value is a pointer to the socket pointer, size
 * sizeof(void *); a NULL socket turns events off (default). The proxy never blocks on it:
 * an event that cannot be queued at once is dropped and counted (EVENTS_DROPPED). The
 * socket stays the caller's; only the proxy's thread may use it during a run.
 *
 * Each event is one frame of ASCII text, fields separated by one space (the format is
 * stable; new fields are only ever appended at the end of a line):
 *   OPEN <pair> <client> <worker> <mechanism>
 *   CLOSE <pair> <client> <worker> <mechanism> <bytes-up> <bytes-down> <ms> <reason>
 *   REJECT <client> <reason>
 *   LOST <pair> <worker> <mechanism>
 * <pair> numbers pairs from 1 in the order they opened. <client> is the client's
 * address:port ("192.0.2.7:51000", "[2001:db8::7]:51000"), "-" when unknown (ipc).
 * <worker> is the dialed endpoint in dial-out, the worker connection's address:port in
 * dial-in (spaces written as %20). <mechanism> is NULL, PLAIN, CURVE or GSSAPI.
 * <bytes-up> is what the client sent after the greeting, <bytes-down> what the worker sent,
 * <ms> how long the pair lasted. CLOSE reasons: client-closed, worker-closed,
 * handshake-failed (the worker closed before its handshake completed, or refused the
 * client with ERROR), idle-timeout,
 * buffer-overflow, stalled, takeover-violation (a peer sent while its connection was being
 * taken over), takeover-failed. REJECT reasons: denied, per-address, banned, bad-greeting,
 * mechanism, bad-command, handshake-timeout, wait-timeout, queue-full, early-overflow,
 * limit (ZMQ_PROXY_STREAM_MAX_CONNECTIONS).
 * LOST (dial-in only) follows the CLOSE handshake-failed of a pair whose worker connection
 * closed during the security handshake: that connection will not come back unless its
 * worker connects again (ZMQ_PROXY_STREAM_STAT_WORKERS_LOST). Readers should skip event
 * kinds they do not know: new kinds may be added.
 */
#define ZMQ_PROXY_STREAM_EVENTS 19

/**
 * int, 0 or 1: take paired connections out of libzmq and relay them directly.
 * 1 (default): when a pair forms, the proxy takes both TCP connections over from libzmq
 * (their descriptors, duplicated and checked; libzmq drops its copies) and from then on
 * relays between the two connections itself: each direction reads only while its buffer
 * (at most 128 KiB, and at most ZMQ_PROXY_STREAM_PAIR_BUFFER) has room, so a slow or
 * stuck peer slows its own partner through TCP and nobody else, and no session is ever
 * closed for being fast. A FIN is passed on after the last byte, so every byte sent
 * before a close arrives. ZMQ_PROXY_STREAM_BACKPRESSURE, _STALL_TIMEOUT and
 * _PROBE_INTERVAL do not apply to such pairs (they need none of it). A connection whose
 * descriptor cannot be taken (no ZMQ_SRCFD, a transport other than TCP, a failed check)
 * stays on the libzmq relay. 0: every pair is relayed through the STREAM sockets, as
 * before version 0.2.
 */
#define ZMQ_PROXY_STREAM_TAKEOVER 20

/**
 * int, count: threads that relay taken-over pairs, each with its own epoll set; pairs are
 * spread over them (fewest pairs first). libzmq work (accepting, greeting, screening,
 * pairing, control) stays on the thread that called zmq_proxy_stream_run(). At least 1.
 * Default 1.
 */
#define ZMQ_PROXY_STREAM_THREADS 21

/**
 * int, count: connections the proxy may hold at once, each a descriptor: client
 * connections, worker connections (accepted in dial-in, dialed in dial-out), in every
 * state (handshaking, waiting, idle, paired, taken over, closing). A connection seen
 * beyond it is closed at once, before the proxy greets it: a client is counted
 * (ZMQ_PROXY_STREAM_STAT_REJECT_LIMIT) and reported (a REJECT event, reason "limit"); a
 * dial-in worker connection is counted the same way (no event), since it would cost a
 * descriptor too; but for a second after a dial-in worker connection went (libzmq
 * reconnects it after ZMQ_RECONNECT_IVL) clients leave room for it, so that clients
 * arriving at the budget never drain the pool of workers. In dial-out a client is
 * admitted only while there is room for it and the worker connection it will need, and
 * the proxy dials no worker while the budget is spent: the client waits
 * (ZMQ_PROXY_STREAM_WAIT_TIMEOUT) for a connection to close. So the process never
 * reaches EMFILE through the proxy's connections: at EMFILE libzmq cannot accept, its
 * I/O thread retries the listening socket without pause (thousands of failing accept4
 * calls a second) and the connections waiting in the kernel are never served.
 *
 * -1 (default): derived, when zmq_proxy_stream_run() starts, from the process's limit:
 *   RLIMIT_NOFILE's soft limit, minus the descriptors open at that moment (libzmq's
 *   context and sockets, the relay threads', the caller's), minus a headroom of
 *   64 + limit / 8 (the caller's later sockets; the connections libzmq accepts in a burst
 *   before the proxy sees and closes them, up to the listen backlog, ZMQ_BACKLOG, 100 by
 *   default; the second descriptor a pair holds for an instant while it is taken over).
 *   At least 1. With `ulimit -n 1024` and 30 descriptors open that is 802, with 20000 and
 *   30 open 17406. An unlimited RLIMIT_NOFILE gives no limit. Measured at `ulimit -n`
 *   256 (a headroom of 96) with 400 CURVE clients arriving at once: at most 206
 *   descriptors open.
 * 0: no limit (the proxy does not count; at EMFILE libzmq spins as above).
 * n > 0: at most n connections (n is not checked against the process's limit).
 * A pair costs 2 (its client and worker connections; a dial-in worker's idle connections
 * cost 1 each while they wait): size `ulimit -n` at about 8/7 x (descriptors open at
 * start + 64 + 2 per concurrent client + idle worker connections).
 */
#define ZMQ_PROXY_STREAM_MAX_CONNECTIONS 22

/**
 * STREAMSTATS: the reply is one frame of native-endian uint64 counters, in this order.
 * New counters are only ever appended; read the frame's size to know how many there are.
 * Pairs relaying now.
 */
#define ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN 0

/**
 * Pairs formed since the proxy started.
 */
#define ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL 1

/**
 * Screened worker connections waiting for a client, by mechanism.
 */
#define ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_NULL 2

#define ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_PLAIN 3

#define ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE 4

#define ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_GSSAPI 5

/**
 * Screened clients waiting for a worker.
 */
#define ZMQ_PROXY_STREAM_STAT_CLIENTS_WAITING 6

/**
 * Clients closed because their first bytes were not a ZMTP 3.x client greeting.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_BAD_GREETING 7

/**
 * Clients closed because their mechanism is not in ZMQ_PROXY_STREAM_MECHANISMS, or, in
 * dial-out, because no worker endpoint offers it (as learned from the endpoints' greetings).
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_MECHANISM 8

/**
 * Clients closed because their first handshake command was malformed.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_BAD_COMMAND 9

/**
 * Clients closed because greeting and first command took longer than the handshake timeout.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_HANDSHAKE_TIMEOUT 10

/**
 * Clients closed after waiting longer than the wait timeout for a worker.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_WAIT_TIMEOUT 11

/**
 * Clients closed because ZMQ_PROXY_STREAM_MAX_WAITING clients were already waiting.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_QUEUE_FULL 12

/**
 * Pairs closed because one direction needed more than ZMQ_PROXY_STREAM_PAIR_BUFFER.
 */
#define ZMQ_PROXY_STREAM_STAT_CLOSED_BUFFER_OVERFLOW 13

/**
 * Pairs closed after ZMQ_PROXY_STREAM_IDLE_TIMEOUT without traffic.
 */
#define ZMQ_PROXY_STREAM_STAT_CLOSED_IDLE_TIMEOUT 14

/**
 * Worker connections closed for a bad greeting, a wrong role, a disallowed mechanism,
 * bytes sent before pairing, or a greeting slower than the handshake timeout. In dial-out,
 * an endpoint offering another mechanism than the client's it was dialed for is not
 * counted here: the proxy learns the endpoint's mechanism and the client goes elsewhere or
 * is refused (REJECT_MECHANISM).
 */
#define ZMQ_PROXY_STREAM_STAT_WORKERS_REJECTED 15

/**
 * Idle worker connections closed at ZMQ_PROXY_STREAM_WORKER_MAX_AGE.
 */
#define ZMQ_PROXY_STREAM_STAT_WORKERS_RECYCLED 16

/**
 * Sends that met a full libzmq pipe (EAGAIN) and were retried.
 */
#define ZMQ_PROXY_STREAM_STAT_SEND_RETRIES 17

/**
 * Data chunks from connections the proxy had already closed (dropped).
 */
#define ZMQ_PROXY_STREAM_STAT_STRAY_CHUNKS 18

/**
 * Bytes that arrived for a partner that had already left (dropped with the pair).
 */
#define ZMQ_PROXY_STREAM_STAT_DROPPED_BYTES 19

/**
 * Screened clients closed for sending more than 64 KiB while waiting for a worker.
 */
#define ZMQ_PROXY_STREAM_STAT_CLOSED_EARLY_OVERFLOW 20

/**
 * Pairs closed because, with ZMQ_PROXY_STREAM_BACKPRESSURE 1, a destination accepted
 * nothing for ZMQ_PROXY_STREAM_STALL_TIMEOUT.
 */
#define ZMQ_PROXY_STREAM_STAT_CLOSED_STALLED 21

/**
 * Times reading a socket was suspended for backpressure (ZMQ_PROXY_STREAM_BACKPRESSURE 1).
 */
#define ZMQ_PROXY_STREAM_STAT_BACKPRESSURE_PAUSES 22

/**
 * Connections found gone by the liveness check (their disconnect notification was lost).
 */
#define ZMQ_PROXY_STREAM_STAT_FOUND_GONE 23

/**
 * Clients closed because their address is denied or not allowed.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_DENIED 24

/**
 * Clients closed because their address already held ZMQ_PROXY_STREAM_MAX_PER_ADDRESS.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_PER_ADDRESS 25

/**
 * Dial-out: worker connections the proxy made (zmq_connect calls).
 */
#define ZMQ_PROXY_STREAM_STAT_DIALS 26

/**
 * Dial-out: worker connections dropped for not answering within
 * ZMQ_PROXY_STREAM_CONNECT_TIMEOUT (their client was offered to another endpoint).
 */
#define ZMQ_PROXY_STREAM_STAT_CONNECT_TIMEOUTS 27

/**
 * Dial-out: endpoints marked down now (not offered clients until their retry time).
 */
#define ZMQ_PROXY_STREAM_STAT_ENDPOINTS_DOWN 28

/**
 * Clients closed because their address is banned (ZMQ_PROXY_STREAM_FAIL_BAN).
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_BANNED 29

/**
 * Pairs the worker closed before its security handshake completed, or refused with an
 * ERROR command (a ZAP refusal: a bad password, a CURVE key it does not admit). A silent
 * close is counted up to 300 ms late, and not at all when its worker died (see
 * ZMQ_PROXY_STREAM_FAIL_BAN; WORKERS_LOST counts those).
 */
#define ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED 30

/**
 * Events dropped because the events socket could not take them at once.
 */
#define ZMQ_PROXY_STREAM_STAT_EVENTS_DROPPED 31

/**
 * Pairs whose connections were taken out of libzmq and relayed directly
 * (ZMQ_PROXY_STREAM_TAKEOVER).
 */
#define ZMQ_PROXY_STREAM_STAT_PAIRS_TAKEN_OVER 32

/**
 * Pairs that could not be taken over although ZMQ_PROXY_STREAM_TAKEOVER is on: left on the
 * libzmq relay (no descriptor, a failed check, libzmq holding bytes for a peer too long),
 * or, rarely, closed (CLOSE reason takeover-failed) because libzmq let go of one connection
 * and not the other, or did not let go in time.
 */
#define ZMQ_PROXY_STREAM_STAT_TAKEOVER_FALLBACKS 33

/**
 * Pairs closed because a peer sent bytes while its connection was being taken over (a
 * ZMTP peer is silent then; such bytes may be lost inside libzmq, so the pair is closed
 * rather than relayed with a hole).
 */
#define ZMQ_PROXY_STREAM_STAT_TAKEOVER_VIOLATIONS 34

/**
 * Dial-in: worker connections that closed during a pair's security handshake (the CLOSE
 * reason handshake-failed, a LOST event each). libzmq never reconnects a connection that
 * failed a handshake with a protocol error (a client's wrong CURVE server key), so each is
 * a slot its worker has lost unless it calls zmq_connect() again: a count that rises while
 * WORKERS_IDLE falls shows capacity eroding before clients queue. In dial-out too: pairs
 * cut mid-handshake by a worker that died (see ZMQ_PROXY_STREAM_FAIL_BAN).
 */
#define ZMQ_PROXY_STREAM_STAT_WORKERS_LOST 35

/**
 * Connections closed at once, before any greeting, because the proxy held
 * ZMQ_PROXY_STREAM_MAX_CONNECTIONS connections already: clients (each a REJECT event,
 * reason "limit") and, in dial-in, worker connections.
 */
#define ZMQ_PROXY_STREAM_STAT_REJECT_LIMIT 36

/**
 * Dial-out connections and takeovers that failed for a reason of this host, not of the
 * worker: connect(2) or socket(2) failing with EMFILE, ENFILE, ENOBUFS, ENOMEM or
 * EADDRNOTAVAIL (no ephemeral port left), and dup(2) failing at a takeover. Such a failure
 * never marks an endpoint down and is not a connect timeout: the client waits and the dial
 * is retried after 100 ms (within ZMQ_PROXY_STREAM_WAIT_TIMEOUT); a pair whose descriptor
 * could not be duplicated stays on the libzmq relay (also counted in TAKEOVER_FALLBACKS).
 */
#define ZMQ_PROXY_STREAM_STAT_LOCAL_FAILURES 37

/**
 * Number of counters in this version's STREAMSTATS frame.
 */
#define ZMQ_PROXY_STREAM_STAT_COUNT 38

/**
 * ZMQ_PROXY_STREAM_FAIL_BAN's default: two failed handshakes in a row (one is a typo or a
 * key rotation caught mid-way; two is a client that will keep failing).
 */
#define DEFAULT_FAIL_BAN 2

/**
 * This library's version. Also returned by zmq_proxy_stream_version().
 */
#define ZMQ_PROXY_STREAM_VERSION_MAJOR 0

#define ZMQ_PROXY_STREAM_VERSION_MINOR 1

#define ZMQ_PROXY_STREAM_VERSION_PATCH 0

/**
 * Largest buffer one direction of one pair holds (further bounded by PAIR_BUFFER).
 */
#define MAX_BUFFER (128 << 10)

/**
 * One of a pair's two connections.
 */
typedef struct End End;

/**
 * A proxy's configuration. Opaque: made by zmq_proxy_stream_new(), released by
 * zmq_proxy_stream_destroy().
 */
typedef struct zmq_proxy_stream_t zmq_proxy_stream_t;







#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Makes a handle with default options. Returns NULL and sets errno (ENOMEM) on failure.
 * A handle may be used by one thread at a time; it may run any number of proxies one
 * after the other, each with the options set when its run started.
 */
zmq_proxy_stream_t *zmq_proxy_stream_new(void);

/**
 * Sets one ZMQ_PROXY_STREAM_* option, like zmq_setsockopt(): `value` points to an `int`
 * (size sizeof(int)), an `int64_t` (ZMQ_PROXY_STREAM_PAIR_BUFFER, size 8), a `void *`
 * socket (ZMQ_PROXY_STREAM_EVENTS, size sizeof(void *)) or the characters of a string
 * (size its length; a trailing NUL is allowed). Returns 0, or -1
 * with errno EFAULT (NULL handle, or NULL value with non-zero size) or EINVAL (unknown
 * option, wrong size, value out of range); a refused call changes nothing.
 *
 * # Safety
 * `proxy` is NULL or a live handle; `value` points to `size` readable bytes.
 */
int zmq_proxy_stream_setopt(zmq_proxy_stream_t *proxy, int option, const void *value, size_t size);

/**
 * Reads one ZMQ_PROXY_STREAM_* option, like zmq_getsockopt(): `*size` says how many bytes
 * `value` can take and is set to how many were written (strings include their NUL).
 * Returns 0, or -1 with errno EFAULT (a NULL pointer) or EINVAL (unknown option, buffer
 * too small).
 *
 * # Safety
 * `proxy` is NULL or a live handle; `value` points to `*size` writable bytes.
 */
int zmq_proxy_stream_getopt(zmq_proxy_stream_t *proxy, int option, void *value, size_t *size);

/**
 * Runs a proxy with the handle's options: everything zmq_proxy_stream() says holds, and
 * also -1 with errno EFAULT for a NULL handle; EINVAL when a ZMQ_PROXY_STREAM_EVENTS
 * socket is not ZMQ_PUB, ZMQ_PUSH or ZMQ_PAIR (or is one of the other sockets), or when
 * ZMQ_PROXY_STREAM_WORKER_ENDPOINT is set and the backend was bound or connected by the
 * caller; ENOTSOCK when the events socket is not a socket.
 *
 * # Safety
 * `proxy` is NULL or a live handle; the sockets as for zmq_proxy_stream().
 */
int zmq_proxy_stream_run(zmq_proxy_stream_t *proxy, void *frontend, void *backend, void *control);

/**
 * Releases the handle `*proxy_p` and sets `*proxy_p` to NULL. NULL and `*proxy_p == NULL`
 * are accepted and do nothing. Must not be called while a run on the handle is going on.
 *
 * # Safety
 * `proxy_p` is NULL or points to NULL or to a live handle.
 */
void zmq_proxy_stream_destroy(zmq_proxy_stream_t **proxy_p);

/**
 * Writes this library's version into the non-NULL arguments.
 *
 * # Safety
 * Each argument is NULL or points to a writable int.
 */
void zmq_proxy_stream_version(int *major, int *minor, int *patch);

/**
 * Relays ZMTP sessions between two ZMQ_STREAM sockets: each client connection on
 * `frontend` is paired with one worker connection on `backend`, and from the client's first
 * handshake command on, their bytes are relayed untouched both ways, so that CURVE (and
 * NULL, PLAIN, GSSAPI) runs end to end between client and worker: this proxy never holds a
 * secret key and never sees plaintext. The proxy answers the ZMTP greeting on each side
 * itself (the greeting is not covered by any mechanism's cryptography) and screens clients
 * before they cost a worker anything. Blocks until TERMINATE arrives on `control` or an
 * error occurs. Same as zmq_proxy_stream_run() on a handle with default options.
 *
 * Preconditions (the caller's):
 * - `frontend` and `backend` are two distinct ZMQ_STREAM sockets made by the caller on its
 *   own libzmq context and already bound (workers and clients connect to them). In the
 *   dial-out topology (zmq_proxy_stream_run() with ZMQ_PROXY_STREAM_WORKER_ENDPOINT) the
 *   backend is left unbound and the proxy connects it to the workers itself.
 * - ZMQ_STREAM_NOTIFY is left at its default (1): the proxy learns of connections and
 *   disconnections only through it.
 * - ZMQ_SNDHWM, ZMQ_RCVHWM and other socket options are set before zmq_bind(): libzmq
 *   applies them only to later binds and connects.
 * - Set a finite ZMQ_LINGER on `frontend` and `backend` (0 or a few seconds): when a peer
 *   stops reading, libzmq may hold bytes for it that can never leave, and with the default
 *   linger (-1) zmq_ctx_term() would wait for them for ever.
 * - While the call runs no other thread uses the three sockets. The library never closes
 *   them; they remain the caller's and usable after the call returns.
 *
 * The data path: libzmq accepts, greets and screens connections and pairs them; when a pair
 * forms (both peers are silent then, by protocol) the proxy takes both TCP connections out
 * of libzmq (ZMQ_SRCFD, duplicated and checked, then released by libzmq) and relays between
 * them itself on a relay thread (ZMQ_PROXY_STREAM_TAKEOVER, _THREADS): per-pair flow
 * control through TCP, so a slow peer slows only its partner and no session is closed for
 * being fast; a FIN is passed on after the last byte. A pair whose connections cannot be
 * taken (no descriptor, not TCP) is relayed through the STREAM sockets instead. A peer that
 * sends while its connection is being taken over (which no ZMTP peer does) has its pair
 * closed (STREAMSTATS TAKEOVER_VIOLATIONS), never relayed with a hole.
 *
 * `control` is NULL or a ZMQ_PAIR, ZMQ_REP, ZMQ_SUB or ZMQ_PULL socket receiving
 * zmq_proxy_steerable's commands, exact strings in one frame:
 * - "PAUSE": stop reading and forwarding, on the STREAM sockets and on taken-over pairs
 *   (nothing is lost: libzmq and TCP hold the bytes; the proxy sleeps, it does not spin).
 *   "RESUME": continue.
 * - "TERMINATE": return 0. Taken-over connections are the proxy's and are closed; those
 *   still in libzmq stay the caller's sockets'.
 * - "STATISTICS": reply 8 frames, each a native-endian uint64: frontend messages in, bytes
 *   in, messages out, bytes out, then the same four for the backend. A message is one data
 *   chunk as one ZMQ_STREAM receive or send carries it, or, for a taken-over pair, one
 *   read(2) or write(2) on its connection; bytes are the payload (routing ids not
 *   counted); greeting bytes the proxy exchanges itself are included. The reply counts
 *   every read and write the relay threads made before the command arrived.
 * - "STREAMSTATS": reply one frame of native-endian uint64 counters indexed by the
 *   ZMQ_PROXY_STREAM_STAT_* constants; its size tells how many there are.
 *
 * On ZMQ_REP every other command gets an empty reply (REP must answer); on ZMQ_SUB and
 * ZMQ_PULL nothing is ever answered. Unknown commands are ignored.
 *
 * Rules for worker authors: workers connect to the backend (each connection is one worker
 * slot; connect several times for several slots) with a ZMQ_ROUTER socket (a DEALER can
 * deliver a late reply to the next client on the same connection), ZMQ_IMMEDIATE=1, as
 * the mechanism's server (ZMQ_CURVE_SERVER=1 etc.). The proxy closes a worker connection
 * when its client leaves; libzmq reconnects it by itself (ZMQ_RECONNECT_IVL). After a
 * protocol error that screening cannot catch (a client using the wrong server key), libzmq
 * never reconnects that connection: watch the socket monitor for
 * ZMQ_EVENT_HANDSHAKE_FAILED_* and call zmq_connect() again. Idle worker connections are
 * recycled before libzmq's ZMQ_HANDSHAKE_IVL (30 s) expires (ZMQ_PROXY_STREAM_WORKER_MAX_AGE).
 * Through the proxy, a worker's ZAP handler sees the proxy's address, not the client's:
 * address policy belongs to the proxy (ZMQ_PROXY_STREAM_ALLOW, _DENY, _MAX_PER_ADDRESS,
 * _FAIL_BAN). In dial-out, workers instead bind a ZMQ_ROUTER (the mechanism's server) at
 * the endpoints the proxy dials; nothing else is asked of them: a client with a wrong key
 * costs them one connection, which the bound socket simply drops.
 *
 * Returns 0 after TERMINATE. Returns -1 and sets errno: EFAULT when `frontend` or `backend`
 * is NULL; EINVAL when they are not two distinct ZMQ_STREAM sockets, or `control` is of
 * another type or is one of them; ENOTSOCK when a pointer is not a socket; ETERM when the
 * context was terminated; EINTR when a signal interrupted the wait; ENOTRECOVERABLE on an
 * internal error (a bug: please report it).
 *
 * Thread safety: several proxies may run at once, each on its own thread with its own
 * sockets.
 *
 * # Safety
 * Non-NULL arguments must be libzmq sockets that stay open for the whole call.
 */
int zmq_proxy_stream(void *frontend, void *backend, void *control);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* ZMQ_PROXY_STREAM_H */
