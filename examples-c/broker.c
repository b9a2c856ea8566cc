/*
 * broker.c: the smallest useful program around zmq_proxy_stream().
 *
 *   broker [OPTIONS] [FRONTEND [BACKEND [CONTROL]]]
 *
 * Binds a ZMQ_STREAM frontend for clients (default tcp://127.0.0.1:5555), a ZMQ_STREAM
 * backend for workers (default tcp://127.0.0.1:5556) and a ZMQ_REP control socket (default
 * tcp://127.0.0.1:5557), then runs the proxy until a TERMINATE command arrives.
 * A TCP endpoint may use port `*` to let the OS choose: the broker prints the endpoints it
 * really bound, on one line, before it starts relaying:
 *
 *   broker: listening frontend=tcp://127.0.0.1:41234 backend=... control=...
 *
 * Options (anywhere on the command line):
 *   --worker-endpoint EP   dial-out: the proxy connects to a worker that bound a ROUTER
 *                          (CURVE server) at EP, one connection per client; repeat it for
 *                          several workers (ZMQ_PROXY_STREAM_WORKER_ENDPOINT). The backend
 *                          is then not bound: leave BACKEND out or give it as `-`. The
 *                          listening line then says backend=dial-out workers=EP,EP,...
 *   --connect-timeout MS   dial-out: a worker must answer within MS (default 2000)
 *   --events EP            binds a ZMQ_PUB socket at EP and has the proxy publish one text
 *                          frame per OPEN/CLOSE/REJECT event there (ZMQ_PROXY_STREAM_EVENTS);
 *                          `access_log EP` prints them. The listening line adds events=EP.
 *   --fail-ban N           refuse a client address for a while after N handshakes in a row
 *                          that its worker ended (a wrong server key...) (FAIL_BAN)
 *   --fail-ban-time MS     how long such an address is refused (default 60000)
 *
 * Talk to the control socket with `ctl CONTROL STATISTICS` or `ctl CONTROL TERMINATE`.
 * The broker holds no CURVE key: the CURVE sessions run between clients and workers.
 *
 * SIGINT and SIGTERM stop it cleanly too. A signal handler that only sets a flag cannot stop
 * a blocking zmq_proxy_stream() reliably (the signal may land while the proxy is busy outside
 * zmq_poll, and then no EINTR ever comes), so the broker blocks those signals and a small
 * thread waits for them with sigwait() and sends TERMINATE to the control socket, which is
 * also bound at an inproc endpoint for that purpose. A second signal exits at once.
 *
 * Exit status: 0 when zmq_proxy_stream() returned 0 (after TERMINATE, or after SIGINT/SIGTERM
 * turned into TERMINATE), 1 when it failed, 2 on a setup error or bad arguments.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "common.h"
#include "zmq_proxy_stream.h"

#define DEFAULT_FRONTEND "tcp://127.0.0.1:5555"
#define DEFAULT_BACKEND "tcp://127.0.0.1:5556"
#define DEFAULT_CONTROL "tcp://127.0.0.1:5557"
/* The BACKEND argument that means "not bound" (dial-out). */
#define NO_BACKEND "-"
#define MAX_WORKER_ENDPOINTS 64
#define ENDPOINT_SIZE 256

/* How long closing the control socket may take to deliver TERMINATE's empty reply. */
#define CONTROL_LINGER_MS 1000
/* How long the signal thread waits for the reply to its TERMINATE. */
#define STOPPER_REPLY_MS 2000

/* The signal thread: turns the first SIGINT/SIGTERM into a TERMINATE command. */
typedef struct
{
    void *ctx;
    char control_inproc[64];
    pthread_t thread;
    atomic_int signal;    /* the signal that stopped the broker, 0 if none */
    atomic_int main_done; /* set by main before its SIGUSR1 */
} stopper_t;

/* SIGINT, SIGTERM, and SIGUSR1 (main's "the proxy returned, quit"). */
static void stop_signals (sigset_t *set)
{
    sigemptyset (set);
    sigaddset (set, SIGINT);
    sigaddset (set, SIGTERM);
    sigaddset (set, SIGUSR1);
}

static void *stopper_main (void *arg)
{
    stopper_t *stopper = (stopper_t *) arg;
    sigset_t set;
    stop_signals (&set);
    for (;;) {
        int sig = 0;
        if (sigwait (&set, &sig) != 0)
            return NULL;
        if (sig == SIGUSR1) {
            if (atomic_load (&stopper->main_done))
                return NULL;
            continue; /* someone else's SIGUSR1: ignore it */
        }
        if (atomic_load (&stopper->signal) != 0) {
            static const char msg[] = "broker: second signal, exiting at once\n";
            if (write (STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            }
            _exit (1);
        }
        atomic_store (&stopper->signal, sig);
        void *req = zmq_socket (stopper->ctx, ZMQ_REQ);
        if (req == NULL)
            continue;
        set_int_option (req, ZMQ_LINGER, 0, "ZMQ_LINGER");
        set_int_option (req, ZMQ_RCVTIMEO, STOPPER_REPLY_MS, "ZMQ_RCVTIMEO");
        if (zmq_connect (req, stopper->control_inproc) == 0
            && zmq_send (req, "TERMINATE", 9, 0) == 9) {
            char reply[1];
            zmq_recv (req, reply, sizeof reply, 0); /* the empty reply, or a timeout */
        }
        zmq_close (req);
    }
}

static void usage (FILE *out)
{
    fprintf (out,
             "usage: broker [OPTIONS] [FRONTEND [BACKEND [CONTROL]]]\n"
             "  FRONTEND  ZMQ_STREAM endpoint clients connect to (default %s)\n"
             "  BACKEND   ZMQ_STREAM endpoint workers connect to (default %s);\n"
             "            `-` (or left out) with --worker-endpoint: not bound\n"
             "  CONTROL   ZMQ_REP endpoint for PAUSE/RESUME/STATISTICS/STREAMSTATS/TERMINATE"
             " (default %s)\n"
             "options:\n"
             "  --worker-endpoint EP  dial-out to a worker bound at EP (repeatable)\n"
             "  --connect-timeout MS  dial-out: a worker must answer within MS (default 2000)\n"
             "  --events EP           bind a PUB socket at EP and publish OPEN/CLOSE/REJECT"
             " events\n"
             "  --fail-ban N          refuse an address after N failed handshakes in a row"
             " (default 0: off)\n"
             "  --fail-ban-time MS    how long it is refused (default 60000)\n"
             "A TCP port of * lets the OS pick a free port; the bound endpoints are printed.\n",
             DEFAULT_FRONTEND, DEFAULT_BACKEND, DEFAULT_CONTROL);
}

/* Sets one option on the proxy handle, or says which one was refused. */
static int set_proxy_option (zmq_proxy_stream_t *proxy, int option, const void *value,
                             size_t size, const char *flag, const char *text)
{
    if (zmq_proxy_stream_setopt (proxy, option, value, size) != 0) {
        fprintf (stderr, "broker: %s %s refused: %s\n", flag, text, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

/* Binds `socket` and stores the endpoint it really got (port * resolved) in `bound`. */
static int bind_and_resolve (void *socket, const char *what, const char *endpoint,
                             char *bound, size_t bound_size)
{
    if (zmq_bind (socket, endpoint) != 0) {
        fprintf (stderr, "broker: cannot bind %s to %s: %s\n", what, endpoint,
                 zmq_strerror (errno));
        return -1;
    }
    size_t size = bound_size;
    if (zmq_getsockopt (socket, ZMQ_LAST_ENDPOINT, bound, &size) != 0) {
        fprintf (stderr, "broker: ZMQ_LAST_ENDPOINT of %s: %s\n", what, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

int main (int argc, char **argv)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    const char *positional[3] = {NULL, NULL, NULL};
    int positionals = 0;
    const char *worker_eps[MAX_WORKER_ENDPOINTS];
    int worker_count = 0;
    const char *events_ep = NULL;
    long connect_timeout = -1, fail_ban = -1, fail_ban_time = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            usage (stdout);
            return 0;
        }
        if (strncmp (arg, "--", 2) != 0 || strcmp (arg, "--") == 0) {
            if (strcmp (arg, "--") == 0 || positionals == 3) {
                usage (stderr);
                return 2;
            }
            positional[positionals++] = arg;
            continue;
        }
        int ok = 1;
        if (value == NULL) {
            ok = 0;
        } else if (strcmp (arg, "--worker-endpoint") == 0) {
            ok = worker_count < MAX_WORKER_ENDPOINTS && value[0] != '\0';
            if (ok)
                worker_eps[worker_count++] = value;
        } else if (strcmp (arg, "--events") == 0) {
            events_ep = value;
        } else if (strcmp (arg, "--connect-timeout") == 0) {
            ok = parse_long (value, 0, 86400000, &connect_timeout) == 0;
        } else if (strcmp (arg, "--fail-ban") == 0) {
            ok = parse_long (value, 0, 1000000, &fail_ban) == 0;
        } else if (strcmp (arg, "--fail-ban-time") == 0) {
            ok = parse_long (value, 1, 86400000, &fail_ban_time) == 0;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf (stderr, "broker: bad option %s%s%s\n", arg, value ? " " : "",
                     value ? value : "");
            usage (stderr);
            return 2;
        }
        i++;
    }
    const char *frontend_ep = positional[0] ? positional[0] : DEFAULT_FRONTEND;
    const char *backend_ep = positional[1] ? positional[1] : DEFAULT_BACKEND;
    const char *control_ep = positional[2] ? positional[2] : DEFAULT_CONTROL;
    int dial_out = worker_count > 0;
    if (dial_out) {
        /* The proxy makes the backend's connections itself: it must not be bound. */
        if (positional[1] != NULL && strcmp (positional[1], NO_BACKEND) != 0) {
            fprintf (stderr, "broker: with --worker-endpoint the backend is not bound:"
                             " give BACKEND as %s, not %s\n",
                     NO_BACKEND, positional[1]);
            return 2;
        }
        backend_ep = NULL;
    } else if (strcmp (backend_ep, NO_BACKEND) == 0) {
        fprintf (stderr, "broker: BACKEND %s needs --worker-endpoint\n", NO_BACKEND);
        return 2;
    } else if (connect_timeout >= 0) {
        fprintf (stderr, "broker: --connect-timeout needs --worker-endpoint\n");
        return 2;
    }

    /* The options, on a handle: the proxy checks every value before anything is bound. */
    zmq_proxy_stream_t *proxy = zmq_proxy_stream_new ();
    if (proxy == NULL) {
        fprintf (stderr, "broker: zmq_proxy_stream_new: %s\n", zmq_strerror (errno));
        return 2;
    }
    int options_ok = 1;
    for (int i = 0; i < worker_count && options_ok; i++)
        options_ok = set_proxy_option (proxy, ZMQ_PROXY_STREAM_WORKER_ENDPOINT, worker_eps[i],
                                       strlen (worker_eps[i]), "--worker-endpoint",
                                       worker_eps[i])
                     == 0;
    const struct
    {
        long value;
        int option;
        const char *flag;
    } ints[] = {
        {connect_timeout, ZMQ_PROXY_STREAM_CONNECT_TIMEOUT, "--connect-timeout"},
        {fail_ban, ZMQ_PROXY_STREAM_FAIL_BAN, "--fail-ban"},
        {fail_ban_time, ZMQ_PROXY_STREAM_FAIL_BAN_TIME, "--fail-ban-time"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && options_ok; i++) {
        if (ints[i].value < 0)
            continue; /* not given: the library's default */
        int value = (int) ints[i].value;
        char text[32];
        snprintf (text, sizeof text, "%d", value);
        options_ok = set_proxy_option (proxy, ints[i].option, &value, sizeof value,
                                       ints[i].flag, text)
                     == 0;
    }
    if (!options_ok) {
        zmq_proxy_stream_destroy (&proxy);
        return 2;
    }

    int major, minor, patch;
    zmq_version (&major, &minor, &patch);

    /* Block the stop signals before any thread exists, so that every thread (libzmq's and
     * ours) inherits the mask and only the signal thread's sigwait() receives them. */
    sigset_t stop_set;
    stop_signals (&stop_set);
    pthread_sigmask (SIG_BLOCK, &stop_set, NULL);

    void *ctx = zmq_ctx_new ();
    if (ctx == NULL) {
        fprintf (stderr, "broker: zmq_ctx_new: %s\n", zmq_strerror (errno));
        zmq_proxy_stream_destroy (&proxy);
        return 2;
    }
    /* The proxy's preconditions: two distinct ZMQ_STREAM sockets, ZMQ_STREAM_NOTIFY left at
     * its default (1), and HWMs (which we leave at their defaults) set before bind. */
    void *frontend = zmq_socket (ctx, ZMQ_STREAM);
    void *backend = zmq_socket (ctx, ZMQ_STREAM);
    void *control = zmq_socket (ctx, ZMQ_REP);
    /* The events socket: a PUB, so that any number of access logs may subscribe, and none
     * of them can slow the proxy down (PUB drops what a slow subscriber cannot take). */
    void *events = events_ep != NULL ? zmq_socket (ctx, ZMQ_PUB) : NULL;
    if (frontend == NULL || backend == NULL || control == NULL
        || (events_ep != NULL && events == NULL)) {
        fprintf (stderr, "broker: zmq_socket: %s\n", zmq_strerror (errno));
        return 2;
    }

    stopper_t stopper;
    memset (&stopper, 0, sizeof stopper);
    atomic_init (&stopper.signal, 0);
    atomic_init (&stopper.main_done, 0);
    stopper.ctx = ctx;
    snprintf (stopper.control_inproc, sizeof stopper.control_inproc,
              "inproc://broker-control-%ld", (long) getpid ());

    char frontend_bound[ENDPOINT_SIZE], backend_bound[ENDPOINT_SIZE];
    char control_bound[ENDPOINT_SIZE], events_bound[ENDPOINT_SIZE];
    /* Dial-out: the listening line names the worker endpoints instead of a bound backend. */
    char workers_list[4096] = ""; /* cut short if it ever gets longer */
    size_t listed = 0;
    for (int i = 0; i < worker_count && listed < sizeof workers_list; i++)
        listed += (size_t) snprintf (workers_list + listed, sizeof workers_list - listed,
                                     "%s%s", i == 0 ? " workers=" : ",", worker_eps[i]);
    int setup_ok =
      zmq_bind (control, stopper.control_inproc) == 0
      && bind_and_resolve (frontend, "frontend", frontend_ep, frontend_bound, ENDPOINT_SIZE) == 0
      && (backend_ep == NULL
          || bind_and_resolve (backend, "backend", backend_ep, backend_bound, ENDPOINT_SIZE)
               == 0)
      && bind_and_resolve (control, "control", control_ep, control_bound, ENDPOINT_SIZE) == 0
      && (events == NULL
          || bind_and_resolve (events, "events", events_ep, events_bound, ENDPOINT_SIZE) == 0);
    if (setup_ok && events != NULL) {
        /* The value is the address of the socket pointer, its size that of a pointer. */
        setup_ok = set_proxy_option (proxy, ZMQ_PROXY_STREAM_EVENTS, &events, sizeof events,
                                     "--events", events_bound)
                   == 0;
    }
    if (backend_ep == NULL)
        snprintf (backend_bound, sizeof backend_bound, "dial-out");
    if (!setup_ok) {
        int linger = 0;
        zmq_setsockopt (frontend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt (backend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt (control, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (frontend);
        zmq_close (backend);
        zmq_close (control);
        if (events != NULL) {
            zmq_setsockopt (events, ZMQ_LINGER, &linger, sizeof linger);
            zmq_close (events);
        }
        zmq_ctx_term (ctx);
        zmq_proxy_stream_destroy (&proxy);
        return 2;
    }

    int stopper_started = pthread_create (&stopper.thread, NULL, stopper_main, &stopper) == 0;
    if (!stopper_started)
        fprintf (stderr, "broker: no signal thread: SIGINT/SIGTERM will not stop it\n");

    printf ("broker: listening frontend=%s backend=%s control=%s%s%s%s"
            " (libzmq %d.%d.%d, pid %ld)\n",
            frontend_bound, backend_bound, control_bound, events ? " events=" : "",
            events ? events_bound : "", workers_list, major, minor, patch, (long) getpid ());

    /* Same as zmq_proxy_stream (frontend, backend, control) when no option was given. */
    int rc = zmq_proxy_stream_run (proxy, frontend, backend, control);
    int err = rc == 0 ? 0 : errno;
    printf ("broker: zmq_proxy_stream returned %d (errno %d: %s)\n", rc, err,
            err == 0 ? "none" : zmq_strerror (err));
    zmq_proxy_stream_destroy (&proxy);
    if (stopper_started) {
        atomic_store (&stopper.main_done, 1);
        pthread_kill (stopper.thread, SIGUSR1);
        pthread_join (stopper.thread, NULL);
    }

    /* The library never closes our sockets. Drop relayed data at once, but give TERMINATE's
     * empty reply a moment to reach the REQ peer that asked. */
    int linger = 0;
    zmq_setsockopt (frontend, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (backend, ZMQ_LINGER, &linger, sizeof linger);
    linger = CONTROL_LINGER_MS;
    zmq_setsockopt (control, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (frontend);
    zmq_close (backend);
    zmq_close (control);
    if (events != NULL) {
        /* Events still queued for a subscriber are of no use once the proxy stopped. */
        linger = 0;
        zmq_setsockopt (events, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (events);
    }
    zmq_ctx_term (ctx);

    if (rc != 0)
        return 1;
    if (atomic_load (&stopper.signal) != 0)
        printf ("broker: terminated cleanly (signal %d)\n", atomic_load (&stopper.signal));
    else
        printf ("broker: terminated cleanly\n");
    return 0;
}
