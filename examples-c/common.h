/*
 * common.h: small helpers shared by the C examples (time, signals, argument parsing).
 *
 * Every helper is `static inline` so that a program that does not use one gets no
 * -Wunused-function warning. Each .c file defines _POSIX_C_SOURCE before including this.
 */
#ifndef STREAMQ_EXAMPLES_COMMON_H
#define STREAMQ_EXAMPLES_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

/* Length of a Z85-encoded CURVE key, without the terminating NUL. */
#define Z85_KEY_LEN 40

/* Milliseconds on the monotonic clock. */
static inline int64_t now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set by SIGINT/SIGTERM once install_stop_handlers() ran; 0 otherwise. */
static volatile sig_atomic_t stop_signal = 0;

static inline void on_stop_signal (int sig)
{
    stop_signal = sig;
}

/* SIGINT and SIGTERM set stop_signal. No SA_RESTART: a blocking zmq_poll() returns -1/EINTR,
 * so the program notices at once. */
static inline void install_stop_handlers (void)
{
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset (&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
}

/* Parses a whole decimal number in [min, max]; returns 0 on success, -1 otherwise. */
static inline int parse_long (const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol (text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

/* Parses a non-negative number of seconds (fractions allowed); returns 0 or -1. */
static inline int parse_seconds (const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod (text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value >= 0.0) || value > 1e9)
        return -1;
    *out = value;
    return 0;
}

/* 1 when `key` is a 40-character Z85 string that decodes to 32 bytes. */
static inline int is_z85_key (const char *key)
{
    uint8_t raw[32];
    return key != NULL && strlen (key) == Z85_KEY_LEN
           && zmq_z85_decode (raw, key) != NULL;
}

/* Sets an int socket option or reports which one failed. */
static inline int set_int_option (void *socket, int option, int value, const char *name)
{
    if (zmq_setsockopt (socket, option, &value, sizeof value) != 0) {
        fprintf (stderr, "zmq_setsockopt(%s): %s\n", name, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

/* How long the next zmq_poll() of a loop that runs until `deadline` (0: none) may wait:
 * at most a second, so that a signal landing between the check of stop_signal and
 * zmq_poll() (so no EINTR) is still noticed soon. -1 once the deadline has passed. */
static inline long poll_slice_ms (int64_t deadline)
{
    long timeout = 1000;
    if (deadline != 0) {
        int64_t left = deadline - now_ms ();
        if (left <= 0)
            return -1;
        timeout = left < timeout ? (long) left : timeout;
    }
    return timeout;
}

/* Reads one socket-monitor event (6 bytes: event, value; then the endpoint frame, skipped);
 * returns the event, or 0 when none was waiting. */
static inline int read_monitor_event (void *monitor)
{
    uint8_t head[6];
    uint16_t event = 0;
    int more = 0;
    size_t more_size = sizeof more;
    if (zmq_recv (monitor, head, sizeof head, ZMQ_DONTWAIT) >= 2)
        memcpy (&event, head, sizeof event);
    zmq_getsockopt (monitor, ZMQ_RCVMORE, &more, &more_size);
    while (more) {
        char skip[1];
        zmq_recv (monitor, skip, sizeof skip, 0);
        zmq_getsockopt (monitor, ZMQ_RCVMORE, &more, &more_size);
    }
    return event;
}

#endif /* STREAMQ_EXAMPLES_COMMON_H */
