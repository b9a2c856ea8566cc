/*
 * worker.c: a CURVE echo worker behind zmq_proxy_stream(), in either topology.
 *
 *   worker [--backend EP] [--connections N] [--secret-key Z85] [--max-seconds S]
 *          [--name NAME] [--verbose]                        dial-in: connects to the proxy
 *   worker --bind EP [--secret-key Z85] [--max-seconds S]
 *          [--name NAME] [--verbose]                        dial-out: the proxy connects here
 *
 * The server's secret key comes from --secret-key or, better (it then stays out of `ps`),
 * from the environment variable STREAMQ_SERVER_SECRET. Every message received is sent back
 * unchanged: all frames, routing id first.
 *
 * It follows the rules for workers behind the proxy (see the README):
 *  - a ROUTER socket, never a DEALER: each new connection gets a new routing id, so a late
 *    reply meant for a departed client is dropped instead of reaching the next client that
 *    the proxy pairs with that connection;
 *  - ZMQ_IMMEDIATE=1, so nothing is queued for a connection that is not up;
 *  - one zmq_connect() per worker slot (N of them to the same backend endpoint);
 *  - a socket monitor: when a client makes a handshake fail with a protocol or
 *    authentication error (a wrong server key, garbage, ...), libzmq ends that connection
 *    for good and never reconnects it. The worker sees ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
 *    or ZMQ_EVENT_HANDSHAKE_FAILED_AUTH and calls zmq_connect() again, so it keeps N slots.
 *    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL is only logged: it reports a connection or
 *    timeout error (the proxy closed the connection mid-handshake, or ZMQ_HANDSHAKE_IVL ran
 *    out while the slot waited for a client), after which libzmq reconnects by itself, so a
 *    zmq_connect() there would add a slot each time.
 *
 * Dial-out (--bind EP): one ROUTER, a CURVE server, bound at EP, for a broker run with
 * ZMQ_PROXY_STREAM_WORKER_ENDPOINT EP (broker --worker-endpoint EP). The proxy makes one
 * connection per client and closes it when that client leaves. A client with a wrong server
 * key costs this worker that one connection and nothing else: the ROUTER keeps listening,
 * so there is nothing to watch or reconnect (the monitor only counts sessions). A TCP port
 * of * lets the OS choose; the endpoint really bound is printed.
 *
 * Prints "worker NAME: ready, N/N connections up ..." once N connections are established
 * (dial-in) or "worker NAME: ready, bound to EP" (dial-out), and a summary line when it
 * stops. Stops cleanly (exit 0) on SIGINT/SIGTERM or when
 * --max-seconds have passed; exit 2 on bad arguments or a setup error.
 */
#define _POSIX_C_SOURCE 200809L

#include <unistd.h>

#include "common.h"

#define DEFAULT_BACKEND "tcp://127.0.0.1:5556"
#define SECRET_ENV "STREAMQ_SERVER_SECRET"
/* Messages echoed before the loop looks at the monitor again. */
#define ECHO_BURST 256

typedef struct
{
    const char *name;
    int verbose;
    void *router;
    const char *backend;
    int bound;  /* dial-out: `backend` is the endpoint bound; no slots to keep */
    long slots; /* connections to keep: N */
    long connected, accepted, disconnected, handshakes_ok;
    long failed_protocol, failed_auth, failed_no_detail, reconnects;
    long messages, frames;
    long long bytes;
    int ready_printed;
} worker_t;

static void usage (FILE *out)
{
    fprintf (out,
             "usage: worker [--backend EP] [--connections N] [--secret-key Z85]\n"
             "              [--max-seconds S] [--name NAME] [--verbose]\n"
             "       worker --bind EP [--secret-key Z85] [--max-seconds S] [--name NAME]\n"
             "              [--verbose]\n"
             "  --backend EP       dial-in: the proxy's backend to connect to (default %s)\n"
             "  --connections N    dial-in: worker slots, connections to EP (default 1)\n"
             "  --bind EP          dial-out: bind here and let the proxy connect\n"
             "                     (broker --worker-endpoint EP); port * picks a free port\n"
             "  --secret-key Z85   CURVE server secret key (or env %s)\n"
             "  --max-seconds S    stop after S seconds (default 0: run until SIGINT/SIGTERM)\n"
             "  --name NAME        name used in the output (default worker-PID)\n"
             "  --verbose          log every monitor event\n",
             DEFAULT_BACKEND, SECRET_ENV);
}

static const char *event_name (uint16_t event)
{
    switch (event) {
        case ZMQ_EVENT_CONNECTED: return "CONNECTED";
        case ZMQ_EVENT_ACCEPTED: return "ACCEPTED";
        case ZMQ_EVENT_CONNECT_DELAYED: return "CONNECT_DELAYED";
        case ZMQ_EVENT_CONNECT_RETRIED: return "CONNECT_RETRIED";
        case ZMQ_EVENT_CLOSED: return "CLOSED";
        case ZMQ_EVENT_DISCONNECTED: return "DISCONNECTED";
        case ZMQ_EVENT_MONITOR_STOPPED: return "MONITOR_STOPPED";
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: return "HANDSHAKE_SUCCEEDED";
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: return "HANDSHAKE_FAILED_NO_DETAIL";
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: return "HANDSHAKE_FAILED_PROTOCOL";
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: return "HANDSHAKE_FAILED_AUTH";
        default: return "OTHER";
    }
}

/* Replaces a connection that libzmq ended for good (dial-in only: a bound worker loses
 * only the one accepted connection, and the proxy dials a new one for its next client). */
static void replace_slot (worker_t *w, const char *why, uint32_t value)
{
    if (w->bound) {
        printf ("worker %s: handshake failed (%s, 0x%x): that connection is gone,"
                " still bound to %s\n",
                w->name, why, (unsigned) value, w->backend);
        return;
    }
    if (zmq_connect (w->router, w->backend) == 0) {
        w->reconnects++;
        printf ("worker %s: handshake failed (%s, 0x%x): connection ended for good,"
                " connected again (%ld slots)\n",
                w->name, why, (unsigned) value, w->slots);
    } else {
        w->slots--;
        fprintf (stderr, "worker %s: handshake failed (%s) and zmq_connect failed: %s\n",
                 w->name, why, zmq_strerror (errno));
    }
}

/* Reads one monitor event (two frames: 6 bytes of event and value, then the endpoint).
 * Returns 1 when an event was handled, 0 when none was waiting, -1 on error. */
static int handle_monitor_event (worker_t *w, void *monitor)
{
    zmq_msg_t head, address;
    zmq_msg_init (&head);
    if (zmq_msg_recv (&head, monitor, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&head);
        return errno == EAGAIN ? 0 : -1;
    }
    int more = zmq_msg_more (&head);
    zmq_msg_init (&address);
    if (more)
        zmq_msg_recv (&address, monitor, 0); /* the second frame is already queued */

    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size (&head) >= 6) {
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&head);
        memcpy (&event, data, sizeof event);
        memcpy (&value, data + 2, sizeof value);
    }
    if (w->verbose)
        printf ("worker %s: event %s value %u endpoint %.*s\n", w->name, event_name (event),
                (unsigned) value, (int) zmq_msg_size (&address),
                (const char *) zmq_msg_data (&address));
    zmq_msg_close (&head);
    zmq_msg_close (&address);

    switch (event) {
        case ZMQ_EVENT_CONNECTED:
            w->connected++;
            if (!w->ready_printed && w->connected >= w->slots) {
                w->ready_printed = 1;
                printf ("worker %s: ready, %ld/%ld connections up to %s\n", w->name,
                        w->connected, w->slots, w->backend);
            }
            break;
        case ZMQ_EVENT_ACCEPTED: w->accepted++; break;
        case ZMQ_EVENT_DISCONNECTED: w->disconnected++; break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: w->handshakes_ok++; break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            /* Connection or timeout error: libzmq reconnects this session by itself. */
            w->failed_no_detail++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            w->failed_protocol++;
            replace_slot (w, "protocol error", value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            w->failed_auth++;
            replace_slot (w, "authentication failure", value);
            break;
        default: break;
    }
    return 1;
}

/* Receives one whole message from the ROUTER and sends it back frame by frame as it is
 * read (a message's frames arrive together, so this never waits). Returns 1 when a message
 * was echoed, 0 when none was waiting, -1 on error. */
static int echo_one (worker_t *w)
{
    zmq_msg_t frame;
    int more = 1, sending = 1;
    long count = 0;
    while (more) {
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, w->router, count == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            int err = errno;
            zmq_msg_close (&frame);
            if (count == 0 && err == EAGAIN)
                return 0;
            errno = err;
            return -1;
        }
        more = zmq_msg_more (&frame);
        w->bytes += (long long) zmq_msg_size (&frame);
        count++;
        /* The first frame is the routing id: ROUTER drops the reply if that client left.
         * zmq_msg_send takes the frame on success; after a failure the rest is dropped. */
        if (sending
            && zmq_msg_send (&frame, w->router, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
            sending = 0;
        zmq_msg_close (&frame);
    }
    w->messages++;
    w->frames += count - 1;
    return 1;
}

int main (int argc, char **argv)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    worker_t w;
    memset (&w, 0, sizeof w);
    w.backend = DEFAULT_BACKEND;
    w.slots = 1;
    const char *bind_ep = NULL;
    int backend_given = 0, connections_given = 0;
    const char *secret = getenv (SECRET_ENV);
    double max_seconds = 0.0;
    char default_name[32];
    snprintf (default_name, sizeof default_name, "worker-%ld", (long) getpid ());
    w.name = default_name;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            usage (stdout);
            return 0;
        } else if (strcmp (arg, "--verbose") == 0) {
            w.verbose = 1;
            continue;
        } else if (value == NULL) {
            usage (stderr);
            return 2;
        } else if (strcmp (arg, "--backend") == 0) {
            w.backend = value;
            backend_given = 1;
        } else if (strcmp (arg, "--connections") == 0) {
            if (parse_long (value, 1, 10000, &w.slots) != 0) {
                fprintf (stderr, "worker: bad --connections %s\n", value);
                return 2;
            }
            connections_given = 1;
        } else if (strcmp (arg, "--bind") == 0) {
            bind_ep = value;
        } else if (strcmp (arg, "--secret-key") == 0) {
            secret = value;
        } else if (strcmp (arg, "--max-seconds") == 0) {
            if (parse_seconds (value, &max_seconds) != 0) {
                fprintf (stderr, "worker: bad --max-seconds %s\n", value);
                return 2;
            }
        } else if (strcmp (arg, "--name") == 0) {
            w.name = value;
        } else {
            usage (stderr);
            return 2;
        }
        i++;
    }
    if (bind_ep != NULL && (backend_given || connections_given)) {
        fprintf (stderr, "worker: --bind (dial-out) excludes --backend and --connections"
                         " (dial-in)\n");
        return 2;
    }
    if (!is_z85_key (secret)) {
        fprintf (stderr, "worker: need a Z85 CURVE secret key (--secret-key or %s)\n",
                 SECRET_ENV);
        return 2;
    }
    char public_key[Z85_KEY_LEN + 1];
    if (zmq_curve_public (public_key, secret) != 0) {
        fprintf (stderr, "worker: zmq_curve_public: %s (is libzmq built with CURVE?)\n",
                 zmq_strerror (errno));
        return 2;
    }

    void *ctx = zmq_ctx_new ();
    w.router = zmq_socket (ctx, ZMQ_ROUTER);
    if (w.router == NULL) {
        fprintf (stderr, "worker: zmq_socket: %s\n", zmq_strerror (errno));
        return 2;
    }
    if (set_int_option (w.router, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER") != 0
        || zmq_setsockopt (w.router, ZMQ_CURVE_SECRETKEY, secret, Z85_KEY_LEN) != 0
        || set_int_option (w.router, ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE") != 0
        || set_int_option (w.router, ZMQ_LINGER, 0, "ZMQ_LINGER") != 0) {
        fprintf (stderr, "worker: socket options: %s\n", zmq_strerror (errno));
        return 2;
    }

    /* The monitor must exist before the first connect, or early events are lost. */
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://worker-monitor-%ld", (long) getpid ());
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                 | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                 | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (bind_ep != NULL)
        events |= ZMQ_EVENT_ACCEPTED;
    if (w.verbose)
        events |= ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CLOSED;
    if (zmq_socket_monitor (w.router, monitor_ep, events) != 0) {
        fprintf (stderr, "worker: zmq_socket_monitor: %s\n", zmq_strerror (errno));
        return 2;
    }
    void *monitor = zmq_socket (ctx, ZMQ_PAIR);
    if (monitor == NULL || zmq_connect (monitor, monitor_ep) != 0) {
        fprintf (stderr, "worker: monitor socket: %s\n", zmq_strerror (errno));
        return 2;
    }
    set_int_option (monitor, ZMQ_LINGER, 0, "ZMQ_LINGER");

    /* Dial-out: the endpoint really bound (port * resolved), for the output and the
     * broker's --worker-endpoint. */
    char bound[256];
    if (bind_ep != NULL) {
        size_t size = sizeof bound;
        if (zmq_bind (w.router, bind_ep) != 0
            || zmq_getsockopt (w.router, ZMQ_LAST_ENDPOINT, bound, &size) != 0) {
            fprintf (stderr, "worker: cannot bind %s: %s\n", bind_ep, zmq_strerror (errno));
            return 2;
        }
        w.bound = 1;
        w.backend = bound;
        w.slots = 0;
    }
    for (long i = 0; i < w.slots; i++) {
        if (zmq_connect (w.router, w.backend) != 0) {
            fprintf (stderr, "worker: zmq_connect %s: %s\n", w.backend, zmq_strerror (errno));
            return 2;
        }
    }
    install_stop_handlers ();
    if (w.bound) {
        printf ("worker %s: CURVE server %s, bound to %s\n", w.name, public_key, w.backend);
        printf ("worker %s: ready, bound to %s\n", w.name, w.backend);
        w.ready_printed = 1;
    } else {
        printf ("worker %s: CURVE server %s, %ld connections to %s\n", w.name, public_key,
                w.slots, w.backend);
    }

    int64_t deadline = max_seconds > 0 ? now_ms () + (int64_t) (max_seconds * 1000.0) : 0;
    const char *why = "signal";
    int failed = 0;
    while (!stop_signal) {
        long timeout = poll_slice_ms (deadline);
        if (timeout < 0) {
            why = "max-seconds reached";
            break;
        }
        zmq_pollitem_t items[] = {{w.router, 0, ZMQ_POLLIN, 0}, {monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            fprintf (stderr, "worker %s: zmq_poll: %s\n", w.name, zmq_strerror (errno));
            failed = 1;
            break;
        }
        while (handle_monitor_event (&w, monitor) > 0) {
        }
        for (int n = 0; n < ECHO_BURST; n++) {
            int rc = echo_one (&w);
            if (rc == 0)
                break;
            if (rc < 0 && errno != EINTR) {
                fprintf (stderr, "worker %s: receive: %s\n", w.name, zmq_strerror (errno));
                failed = 1;
                break;
            }
        }
        if (failed)
            break;
    }

    zmq_socket_monitor (w.router, NULL, 0);
    zmq_close (monitor);
    zmq_close (w.router);
    zmq_ctx_term (ctx);
    printf ("worker %s: stopped (%s): echoed %ld messages (%ld frames, %lld bytes incl. ids),"
            " %ld sessions, handshake failures protocol=%ld auth=%ld no_detail=%ld,"
            " reconnects=%ld",
            w.name, failed ? "error" : why, w.messages, w.frames, w.bytes, w.handshakes_ok,
            w.failed_protocol, w.failed_auth, w.failed_no_detail, w.reconnects);
    if (w.bound)
        printf (", accepted=%ld", w.accepted);
    printf ("\n");
    return failed ? 1 : 0;
}
