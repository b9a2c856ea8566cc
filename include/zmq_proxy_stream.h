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

/* Generated from src/ffi.rs by cbindgen (build.rs). Do not edit by hand. */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Relays ZMTP streams between the connections of two ZMQ_STREAM sockets, pairing each
 * client connection on `frontend` with one worker connection on `backend`, so that CURVE
 * (and NULL, PLAIN, GSSAPI) runs end to end between client and worker. Blocks until a
 * TERMINATE command arrives on `control` or an error occurs.
 *
 * `frontend` and `backend` are distinct ZMQ_STREAM sockets made by the caller on its own
 * context, bound (or connected) before the call, with ZMQ_STREAM_NOTIFY left at its default
 * (1) and ZMQ_SNDHWM/ZMQ_RCVHWM set, if at all, before their bind or connect. Workers connect
 * to `backend`: each connection is one worker slot. `control` is NULL or a ZMQ_PAIR, ZMQ_REP,
 * ZMQ_SUB or ZMQ_PULL socket that receives zmq_proxy_steerable's commands:
 * "PAUSE", "RESUME", "TERMINATE" and "STATISTICS" (exact strings, one frame). STATISTICS is
 * answered (except on SUB/PULL) with 8 frames, each a native-endian uint64: frontend
 * messages in, bytes in, messages out, bytes out, then the same for the backend; a message
 * is one relayed data chunk and bytes are its payload. A REP control socket gets an empty
 * reply to every other command; unknown commands are ignored.
 *
 * The library never closes the caller's sockets; while the call runs, no other thread may
 * use them. Several proxies may run at once, each on its own thread with its own sockets.
 *
 * Returns 0 after TERMINATE. Returns -1 and sets errno: EFAULT when `frontend` or `backend`
 * is NULL; EINVAL when they are not distinct ZMQ_STREAM sockets, or `control` is of another
 * type or is one of them; ENOTSOCK when a pointer is not a socket; ETERM when the context
 * was terminated; EINTR when a signal interrupted the wait; ENOTRECOVERABLE on an internal
 * error (a bug: please report it).
 *
 * # Safety
 * Non-NULL arguments must be libzmq sockets that stay open for the whole call.
 */
int zmq_proxy_stream(void *frontend, void *backend, void *control);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* ZMQ_PROXY_STREAM_H */
