/*
 * check_api.c: checks zmq_proxy_stream()'s documented C contract from C, through the
 * installed header: argument errors, ETERM, EINTR, and the control protocol on PAIR and
 * REP sockets. It needs no network peer (tcp://127.0.0.1:* and inproc only).
 *
 *   check_api
 *
 * Prints one line per check and "check_api: N/N checks passed"; exit status 0 only when
 * every check passed.
 */
#define _POSIX_C_SOURCE 200809L

#include <sys/time.h>
#include <unistd.h>

#include "common.h"
#include "zmq_proxy_stream.h"

static int checks = 0, passed = 0;

static void check (int ok, const char *what, int rc, int err)
{
    checks++;
    passed += ok != 0;
    printf ("%s: %s (rc %d, errno %d %s)\n", ok ? "ok" : "FAIL", what, rc, err,
            err ? zmq_strerror (err) : "none");
}

/* Calls the proxy and checks that it failed with `expected_errno`. */
static void expect_error (void *f, void *b, void *c, int expected_errno, const char *what)
{
    errno = 0;
    int rc = zmq_proxy_stream (f, b, c);
    int err = errno;
    check (rc == -1 && err == expected_errno, what, rc, err);
}

static void *bound (void *ctx, int type)
{
    void *s = zmq_socket (ctx, type);
    int linger = 0;
    zmq_setsockopt (s, ZMQ_LINGER, &linger, sizeof linger);
    if (type != ZMQ_PUB && type != ZMQ_SUB && zmq_bind (s, "tcp://127.0.0.1:*") != 0)
        fprintf (stderr, "bind: %s\n", zmq_strerror (errno));
    return s;
}

static void close_all (void *ctx, void **sockets, int n)
{
    int linger = 0;
    for (int i = 0; i < n; i++) {
        zmq_setsockopt (sockets[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (sockets[i]);
    }
    zmq_ctx_term (ctx);
}

static void argument_errors (void)
{
    void *ctx = zmq_ctx_new ();
    void *s[6] = {bound (ctx, ZMQ_STREAM), bound (ctx, ZMQ_STREAM), bound (ctx, ZMQ_ROUTER),
                  bound (ctx, ZMQ_DEALER), bound (ctx, ZMQ_PUB), bound (ctx, ZMQ_REP)};
    void *stream1 = s[0], *stream2 = s[1], *router = s[2], *dealer = s[3], *pub = s[4];
    /* Zeroed memory is not a socket: libzmq's tag check reports ENOTSOCK. */
    static uint64_t not_a_socket[8192];

    expect_error (NULL, NULL, NULL, EFAULT, "NULL, NULL, NULL gives EFAULT");
    expect_error (stream1, NULL, NULL, EFAULT, "STREAM, NULL gives EFAULT");
    expect_error (NULL, stream2, NULL, EFAULT, "NULL, STREAM gives EFAULT");
    expect_error (router, dealer, NULL, EINVAL, "ROUTER, DEALER gives EINVAL");
    expect_error (stream1, router, NULL, EINVAL, "STREAM, ROUTER gives EINVAL");
    expect_error (stream1, stream1, NULL, EINVAL, "the same STREAM twice gives EINVAL");
    expect_error (stream1, stream2, pub, EINVAL, "a PUB control socket gives EINVAL");
    expect_error (stream1, stream2, stream1, EINVAL, "control == frontend gives EINVAL");
    expect_error (not_a_socket, stream2, NULL, ENOTSOCK, "a non-socket gives ENOTSOCK");
    close_all (ctx, s, 6);
}

static void context_terminated (void)
{
    void *ctx = zmq_ctx_new ();
    void *s[2] = {bound (ctx, ZMQ_STREAM), bound (ctx, ZMQ_STREAM)};
    zmq_ctx_shutdown (ctx);
    expect_error (s[0], s[1], NULL, ETERM, "a shut-down context gives ETERM");
    close_all (ctx, s, 2);
}

static volatile sig_atomic_t alarms = 0;

static void on_alarm (int sig)
{
    (void) sig;
    alarms++;
    if (alarms > 25) {
        static const char msg[] = "check_api: FAIL: EINTR never returned, giving up\n";
        if (write (STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        }
        _exit (3);
    }
}

static void interrupted (void)
{
    void *ctx = zmq_ctx_new ();
    void *s[2] = {bound (ctx, ZMQ_STREAM), bound (ctx, ZMQ_STREAM)};
    struct sigaction sa, old;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGALRM, &sa, &old);
    struct itimerval every_200ms = {{0, 200000}, {0, 200000}}, off;
    memset (&off, 0, sizeof off);
    setitimer (ITIMER_REAL, &every_200ms, NULL);
    expect_error (s[0], s[1], NULL, EINTR, "a signal gives EINTR");
    setitimer (ITIMER_REAL, &off, NULL);
    sigaction (SIGALRM, &old, NULL);
    close_all (ctx, s, 2);
}

/* Commands queued on a PAIR before the call: STATISTICS is answered, TERMINATE returns 0. */
static void pair_control (void)
{
    void *ctx = zmq_ctx_new ();
    void *s[4] = {bound (ctx, ZMQ_STREAM), bound (ctx, ZMQ_STREAM), zmq_socket (ctx, ZMQ_PAIR),
                  zmq_socket (ctx, ZMQ_PAIR)};
    zmq_bind (s[2], "inproc://check-api-pair");
    zmq_connect (s[3], "inproc://check-api-pair");
    zmq_send (s[3], "PAUSE", 5, 0);
    zmq_send (s[3], "STATISTICS", 10, 0);
    zmq_send (s[3], "TERMINATE", 9, 0);
    errno = 0;
    int rc = zmq_proxy_stream (s[0], s[1], s[2]);
    int err = rc == 0 ? 0 : errno;
    check (rc == 0, "TERMINATE on a PAIR control socket returns 0", rc, err);

    int frames = 0, zeros = 0, more = 1, timeout = 1000;
    zmq_setsockopt (s[3], ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    while (more) {
        uint64_t value = 1;
        int n = zmq_recv (s[3], &value, sizeof value, 0);
        if (n < 0)
            break;
        frames++;
        zeros += n == 8 && value == 0;
        size_t size = sizeof more;
        zmq_getsockopt (s[3], ZMQ_RCVMORE, &more, &size);
    }
    check (frames == 8 && zeros == 8, "PAIR: STATISTICS answered with 8 zero counters, PAUSE not",
           frames, 0);
    close_all (ctx, s, 4);
}

/* A REP control socket answers every command, unknown ones included, with an empty frame
 * (STATISTICS with 8 frames). A DEALER stands in for several REQ peers so that all
 * commands can be queued before the call. */
static void rep_control (void)
{
    void *ctx = zmq_ctx_new ();
    void *s[4] = {bound (ctx, ZMQ_STREAM), bound (ctx, ZMQ_STREAM), zmq_socket (ctx, ZMQ_REP),
                  zmq_socket (ctx, ZMQ_DEALER)};
    zmq_bind (s[2], "inproc://check-api-rep");
    zmq_connect (s[3], "inproc://check-api-rep");
    const char *commands[] = {"PAUSE", "RESUME", "NO-SUCH-COMMAND", "STATISTICS", "TERMINATE"};
    for (int i = 0; i < 5; i++) {
        zmq_send (s[3], "", 0, ZMQ_SNDMORE);
        zmq_send (s[3], commands[i], strlen (commands[i]), 0);
    }
    errno = 0;
    int rc = zmq_proxy_stream (s[0], s[1], s[2]);
    int err = rc == 0 ? 0 : errno;
    check (rc == 0, "TERMINATE on a REP control socket returns 0", rc, err);

    int timeout = 1000;
    zmq_setsockopt (s[3], ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    int expected[] = {1, 1, 1, 8, 1};
    int all_ok = 1;
    for (int i = 0; i < 5; i++) {
        char buf[16];
        int frames = 0, more = 1, sizes_ok = 1;
        int n = zmq_recv (s[3], buf, sizeof buf, 0); /* the empty delimiter */
        if (n != 0) {
            all_ok = 0;
            break;
        }
        while (more) {
            n = zmq_recv (s[3], buf, sizeof buf, 0);
            if (n < 0)
                break;
            frames++;
            sizes_ok &= n == (expected[i] == 8 ? 8 : 0);
            size_t size = sizeof more;
            zmq_getsockopt (s[3], ZMQ_RCVMORE, &more, &size);
        }
        if (frames != expected[i] || !sizes_ok) {
            printf ("  reply to %s: %d frames\n", commands[i], frames);
            all_ok = 0;
        }
    }
    check (all_ok, "REP: PAUSE, RESUME, unknown, TERMINATE get an empty reply, STATISTICS 8",
           all_ok, 0);
    close_all (ctx, s, 4);
}

int main (void)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    argument_errors ();
    context_terminated ();
    interrupted ();
    pair_control ();
    rep_control ();
    printf ("check_api: %d/%d checks passed\n", passed, checks);
    return passed == checks ? 0 : 1;
}
