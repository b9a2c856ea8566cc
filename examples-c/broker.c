/*
 * broker.c: the smallest useful program around zmq_proxy_stream().
 *
 *   broker [FRONTEND [BACKEND [CONTROL]]]
 *
 * Binds a ZMQ_STREAM frontend for clients (default tcp://127.0.0.1:5555), a ZMQ_STREAM
 * backend for workers (default tcp://127.0.0.1:5556) and a ZMQ_REP control socket (default
 * tcp://127.0.0.1:5557), then runs zmq_proxy_stream() until a TERMINATE command arrives.
 * A TCP endpoint may use port `*` to let the OS choose: the broker prints the endpoints it
 * really bound, on one line, before it starts relaying:
 *
 *   broker: listening frontend=tcp://127.0.0.1:41234 backend=... control=...
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
             "usage: broker [FRONTEND [BACKEND [CONTROL]]]\n"
             "  FRONTEND  ZMQ_STREAM endpoint clients connect to (default %s)\n"
             "  BACKEND   ZMQ_STREAM endpoint workers connect to (default %s)\n"
             "  CONTROL   ZMQ_REP endpoint for PAUSE/RESUME/STATISTICS/TERMINATE"
             " (default %s)\n"
             "A TCP port of * lets the OS pick a free port; the bound endpoints are printed.\n",
             DEFAULT_FRONTEND, DEFAULT_BACKEND, DEFAULT_CONTROL);
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
    if (argc > 1 && (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)) {
        usage (stdout);
        return 0;
    }
    if (argc > 4) {
        usage (stderr);
        return 2;
    }
    const char *frontend_ep = argc > 1 ? argv[1] : DEFAULT_FRONTEND;
    const char *backend_ep = argc > 2 ? argv[2] : DEFAULT_BACKEND;
    const char *control_ep = argc > 3 ? argv[3] : DEFAULT_CONTROL;

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
        return 2;
    }
    /* The proxy's preconditions: two distinct ZMQ_STREAM sockets, ZMQ_STREAM_NOTIFY left at
     * its default (1), and HWMs (which we leave at their defaults) set before bind. */
    void *frontend = zmq_socket (ctx, ZMQ_STREAM);
    void *backend = zmq_socket (ctx, ZMQ_STREAM);
    void *control = zmq_socket (ctx, ZMQ_REP);
    if (frontend == NULL || backend == NULL || control == NULL) {
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

    char frontend_bound[256], backend_bound[256], control_bound[256];
    if (zmq_bind (control, stopper.control_inproc) != 0
        || bind_and_resolve (frontend, "frontend", frontend_ep, frontend_bound, 256) != 0
        || bind_and_resolve (backend, "backend", backend_ep, backend_bound, 256) != 0
        || bind_and_resolve (control, "control", control_ep, control_bound, 256) != 0) {
        int linger = 0;
        zmq_setsockopt (frontend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt (backend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt (control, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (frontend);
        zmq_close (backend);
        zmq_close (control);
        zmq_ctx_term (ctx);
        return 2;
    }

    int stopper_started = pthread_create (&stopper.thread, NULL, stopper_main, &stopper) == 0;
    if (!stopper_started)
        fprintf (stderr, "broker: no signal thread: SIGINT/SIGTERM will not stop it\n");

    printf ("broker: listening frontend=%s backend=%s control=%s (libzmq %d.%d.%d, pid %ld)\n",
            frontend_bound, backend_bound, control_bound, major, minor, patch,
            (long) getpid ());

    int rc = zmq_proxy_stream (frontend, backend, control);
    int err = rc == 0 ? 0 : errno;
    printf ("broker: zmq_proxy_stream returned %d (errno %d: %s)\n", rc, err,
            err == 0 ? "none" : zmq_strerror (err));
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
    zmq_ctx_term (ctx);

    if (rc != 0)
        return 1;
    if (atomic_load (&stopper.signal) != 0)
        printf ("broker: terminated cleanly (signal %d)\n", atomic_load (&stopper.signal));
    else
        printf ("broker: terminated cleanly\n");
    return 0;
}
