/*
 * access_log.c: prints a broker's proxy events as an access log, one line per event.
 *
 *   access_log [--count N] [--max-seconds S] EVENTS_ENDPOINT
 *
 * Subscribes (ZMQ_SUB, every event) to the ZMQ_PUB socket a broker passes to the proxy with
 * ZMQ_PROXY_STREAM_EVENTS (`broker --events EP`). Each event is one text frame (see
 * ZMQ_PROXY_STREAM_EVENTS in zmq_proxy_stream.h):
 *
 *   OPEN <pair> <client> <worker> <mechanism>
 *   CLOSE <pair> <client> <worker> <mechanism> <bytes-up> <bytes-down> <ms> <reason>
 *   REJECT <client> <reason>
 *
 * and is printed on stdout with the time it arrived (UTC) and named fields, one line per
 * event (wrapped here):
 *
 *   2026-11-25T14:00:00Z OPEN pair=3 client=127.0.0.1:5123 worker=tcp://127.0.0.1:5601
 *       mech=CURVE
 *   2026-11-25T14:00:00Z CLOSE pair=3 client=127.0.0.1:5123 worker=tcp://127.0.0.1:5601
 *       mech=CURVE up=1234 down=5678 ms=12 reason=client-closed
 *   2026-11-25T14:00:01Z REJECT client=192.0.2.7:51000 reason=banned
 *
 * Fields a newer proxy appends at the end of a line are kept, after " | ". Anything else (an
 * unknown event, a missing or non-numeric field, a byte that is not printable ASCII, an
 * overlong frame) is printed as it came, quoted, with \xNN for unprintable bytes:
 *
 *   2026-11-25T14:00:02Z RAW "HELLO\x00world"
 *
 * Status lines go to stderr ("access_log: connected to EP" once the subscription's
 * connection is up: events published before that are not seen, as with any PUB/SUB), so
 * stdout holds the log only.
 *
 * Stops cleanly (exit 0) on SIGINT/SIGTERM, after N events with --count N, or after S seconds
 * with --max-seconds S; exit 1 on a receive error, 2 on bad arguments or a setup error.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <unistd.h>

#include "common.h"

/* Longest event printed as an event; longer frames are printed raw, cut at this length. */
#define MAX_EVENT 4096
/* Most fields one event line may have (known ones plus appended ones). */
#define MAX_FIELDS 64

static void usage (FILE *out)
{
    fprintf (out,
             "usage: access_log [--count N] [--max-seconds S] EVENTS_ENDPOINT\n"
             "  EVENTS_ENDPOINT  the broker's events socket (broker --events EP)\n"
             "  --count N        exit after N events (default 0: run until SIGINT/SIGTERM)\n"
             "  --max-seconds S  exit after S seconds (default 0: no limit)\n");
}

/* The receive time as 2026-11-25T14:00:00Z. */
static void format_timestamp (char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime (CLOCK_REALTIME, &ts);
    if (gmtime_r (&ts.tv_sec, &tm) == NULL
        || strftime (out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf (out, size, "%lld", (long long) ts.tv_sec);
}

/* One of the event's fields: a name for the output, and what the value must look like. */
typedef enum
{
    ANY,    /* one or more printable characters, no space */
    NUMBER, /* decimal digits */
} field_kind_t;

typedef struct
{
    const char *name;
    field_kind_t kind;
} field_t;

typedef struct
{
    const char *type;
    const field_t *fields;
    int count;
} event_t;

static const field_t open_fields[] = {
    {"pair", NUMBER}, {"client", ANY}, {"worker", ANY}, {"mech", ANY}};
static const field_t close_fields[] = {
    {"pair", NUMBER}, {"client", ANY}, {"worker", ANY}, {"mech", ANY},
    {"up", NUMBER},   {"down", NUMBER}, {"ms", NUMBER},  {"reason", ANY}};
static const field_t reject_fields[] = {{"client", ANY}, {"reason", ANY}};

static const event_t events[] = {
    {"OPEN", open_fields, (int) (sizeof open_fields / sizeof open_fields[0])},
    {"CLOSE", close_fields, (int) (sizeof close_fields / sizeof close_fields[0])},
    {"REJECT", reject_fields, (int) (sizeof reject_fields / sizeof reject_fields[0])},
};

static int is_number (const char *text)
{
    if (*text == '\0')
        return 0;
    for (; *text != '\0'; text++)
        if (!isdigit ((unsigned char) *text))
            return 0;
    return 1;
}

/* Prints `size` bytes of `data` raw: quoted, with \\, \" and \xNN escapes. */
static void print_raw (const char *stamp, const uint8_t *data, size_t size, int cut)
{
    printf ("%s RAW \"", stamp);
    for (size_t i = 0; i < size; i++) {
        uint8_t c = data[i];
        if (c == '\\' || c == '"')
            printf ("\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            putchar (c);
        else
            printf ("\\x%02X", c);
    }
    printf ("\"%s\n", cut ? " (cut)" : "");
}

/* Prints one event in access-log form. Returns 0, or -1 (nothing printed) when `data` is
 * not an event of the documented format. */
static int print_event (const char *stamp, const uint8_t *data, size_t size)
{
    /* Printable ASCII only; fields separated by exactly one space. */
    char text[MAX_EVENT + 1];
    if (size == 0 || size > MAX_EVENT)
        return -1;
    for (size_t i = 0; i < size; i++)
        if (data[i] < 0x20 || data[i] >= 0x7f)
            return -1;
    memcpy (text, data, size);
    text[size] = '\0';

    char *fields[MAX_FIELDS];
    int count = 0;
    char *p = text;
    for (;;) {
        if (*p == ' ' || *p == '\0' || count == MAX_FIELDS)
            return -1; /* an empty field (leading, trailing or double space), or too many */
        fields[count++] = p;
        p = strchr (p, ' ');
        if (p == NULL)
            break;
        *p++ = '\0';
    }

    const event_t *event = NULL;
    for (size_t e = 0; e < sizeof events / sizeof events[0]; e++)
        if (strcmp (fields[0], events[e].type) == 0)
            event = &events[e];
    if (event == NULL || count - 1 < event->count)
        return -1;
    for (int f = 0; f < event->count; f++)
        if (event->fields[f].kind == NUMBER && !is_number (fields[f + 1]))
            return -1;

    printf ("%s %s", stamp, event->type);
    for (int f = 0; f < event->count; f++)
        printf (" %s=%s", event->fields[f].name, fields[f + 1]);
    /* Fields a newer proxy appended: kept as they are. */
    if (count - 1 > event->count) {
        printf (" |");
        for (int f = event->count + 1; f < count; f++)
            printf (" %s", fields[f]);
    }
    printf ("\n");
    return 0;
}

int main (int argc, char **argv)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    const char *endpoint = NULL;
    long count_limit = 0;
    double max_seconds = 0.0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            usage (stdout);
            return 0;
        }
        if (strncmp (arg, "--", 2) != 0) {
            if (endpoint != NULL) {
                usage (stderr);
                return 2;
            }
            endpoint = arg;
            continue;
        }
        if (value == NULL) {
            ok = 0;
        } else if (strcmp (arg, "--count") == 0) {
            ok = parse_long (value, 0, 1000000000, &count_limit) == 0;
        } else if (strcmp (arg, "--max-seconds") == 0) {
            ok = parse_seconds (value, &max_seconds) == 0;
        } else {
            ok = 0;
        }
        if (!ok) {
            usage (stderr);
            return 2;
        }
        i++;
    }
    if (endpoint == NULL) {
        usage (stderr);
        return 2;
    }

    /* First: a signal during the set-up below then stops the loop at once. */
    install_stop_handlers ();
    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    void *monitor = NULL;
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://access-log-monitor-%ld",
              (long) getpid ());
    /* The monitor exists before the connect, so that its first events are not lost. */
    if (sub == NULL || set_int_option (sub, ZMQ_LINGER, 0, "ZMQ_LINGER") != 0
        || zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0) != 0
        || zmq_socket_monitor (sub, monitor_ep,
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED)
             != 0
        || (monitor = zmq_socket (ctx, ZMQ_PAIR)) == NULL
        || set_int_option (monitor, ZMQ_LINGER, 0, "ZMQ_LINGER") != 0
        || zmq_connect (monitor, monitor_ep) != 0) {
        fprintf (stderr, "access_log: setup: %s\n", zmq_strerror (errno));
        return 2;
    }
    if (zmq_connect (sub, endpoint) != 0) {
        fprintf (stderr, "access_log: cannot connect to %s: %s\n", endpoint,
                 zmq_strerror (errno));
        return 2;
    }
    fprintf (stderr, "access_log: subscribing to %s\n", endpoint);

    int64_t deadline = max_seconds > 0 ? now_ms () + (int64_t) (max_seconds * 1000.0) : 0;
    const char *why = "signal";
    long seen = 0, raw = 0;
    int failed = 0;
    while (!stop_signal) {
        if (count_limit > 0 && seen >= count_limit) {
            why = "count reached";
            break;
        }
        long timeout = poll_slice_ms (deadline);
        if (timeout < 0) {
            why = "max-seconds reached";
            break;
        }
        zmq_pollitem_t items[] = {{sub, 0, ZMQ_POLLIN, 0}, {monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            fprintf (stderr, "access_log: zmq_poll: %s\n", zmq_strerror (errno));
            failed = 1;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            int event = read_monitor_event (monitor);
            if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                fprintf (stderr, "access_log: connected to %s\n", endpoint);
            else if (event == ZMQ_EVENT_DISCONNECTED)
                fprintf (stderr, "access_log: disconnected from %s, reconnecting\n", endpoint);
        }
        /* Every frame is one event; a frame of a multipart message too. */
        while (!(count_limit > 0 && seen >= count_limit)) {
            zmq_msg_t msg;
            zmq_msg_init (&msg);
            if (zmq_msg_recv (&msg, sub, ZMQ_DONTWAIT) < 0) {
                int err = errno;
                zmq_msg_close (&msg);
                if (err != EAGAIN && err != EINTR) {
                    fprintf (stderr, "access_log: receive: %s\n", zmq_strerror (err));
                    failed = 1;
                }
                break;
            }
            char stamp[64];
            format_timestamp (stamp, sizeof stamp);
            const uint8_t *data = (const uint8_t *) zmq_msg_data (&msg);
            size_t size = zmq_msg_size (&msg);
            if (print_event (stamp, data, size) != 0) {
                print_raw (stamp, data, size > MAX_EVENT ? MAX_EVENT : size, size > MAX_EVENT);
                raw++;
            }
            seen++;
            zmq_msg_close (&msg);
        }
        if (failed)
            break;
    }

    zmq_socket_monitor (sub, NULL, 0);
    zmq_close (monitor);
    zmq_close (sub);
    zmq_ctx_term (ctx);
    fprintf (stderr, "access_log: stopped (%s): %ld events, %ld printed raw\n",
             failed ? "error" : why, seen, raw);
    return failed ? 1 : 0;
}
