/*
 * client.c: a CURVE client that checks an echo service through zmq_proxy_stream().
 *
 *   client --server-key Z85 [--frontend EP]... [--requests M] [--id N] [--deadline S]
 *          [--window W]
 *
 * A DEALER with a fresh CURVE key pair (zmq_curve_keypair) connects to the proxy's
 * frontend, sends M requests of varied sizes (0 bytes to 256 KiB, every third one
 * multipart), keeping up to W of them in flight, and checks that every reply is its
 * request, byte for byte and in order. It prints one line:
 *
 *   client N: M/M replies ok, B bytes each way, T ms
 *
 * or, on failure, "client N: K/M replies ok, FAILED: reason". Exit status 0 only when all
 * M replies came back correct before the deadline (default 30 s); 1 otherwise; 2 on bad
 * arguments or a setup error.
 *
 * With --frontend given several times (several brokers), the DEALER connects to each and
 * sets ZMQ_IMMEDIATE, so that requests go only to brokers it has a session through: round
 * robin while all are up, the others when one is gone. Use --window 1 then, since replies
 * are checked in order and two sessions may answer at different speeds.
 */
#define _POSIX_C_SOURCE 200809L

#include "common.h"

#define DEFAULT_FRONTEND "tcp://127.0.0.1:5555"
#define MAX_PARTS 4
#define MAX_FRONTENDS 8

/* Sizes that cross the interesting boundaries: empty frames, one byte, ZMTP's short/long
 * frame limit (255/256), libzmq's 8 KiB read batch, and a few multiples of it. */
static const size_t sizes[] = {1,    0,    7,     100,   255,   256,   1000,  4096,
                               8191, 8192, 8193,  20000, 65536, 100000, 262144};
#define SIZE_COUNT (sizeof sizes / sizeof sizes[0])

static void usage (FILE *out)
{
    fprintf (out,
             "usage: client --server-key Z85 [--frontend EP]... [--requests M] [--id N]\n"
             "              [--deadline S] [--window W]\n"
             "  --server-key Z85  the workers' CURVE public key\n"
             "  --frontend EP     the proxy's frontend (default %s); several: one session\n"
             "                    through each broker, ZMQ_IMMEDIATE (use --window 1)\n"
             "  --requests M      requests to send (default 50)\n"
             "  --id N            number used in the output and in the payloads (default 1)\n"
             "  --deadline S      seconds allowed for all replies (default 30)\n"
             "  --window W        requests in flight at once (default 4)\n",
             DEFAULT_FRONTEND);
}

/* The shape of request `index`: part count and the size of each part. */
static int request_parts (long id, long index, size_t part_sizes[MAX_PARTS])
{
    int parts = index % 3 == 2 ? 2 + (int) ((index / 3) % 3) : 1;
    for (int p = 0; p < parts; p++)
        part_sizes[p] = sizes[(size_t) (index * 7 + p * 3 + id) % SIZE_COUNT];
    return parts;
}

/* Fills `buf` with the bytes of part `part` of request `index` of client `id`: a
 * xorshift stream seeded by the three, so that any mix-up shows. */
static void fill_part (uint8_t *buf, size_t size, long id, long index, int part)
{
    uint64_t x = 0x9E3779B97F4A7C15ull ^ ((uint64_t) id << 40) ^ ((uint64_t) index << 8)
                 ^ (uint64_t) part;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t) (x >> 24);
    }
}

typedef struct
{
    void *socket;
    long id;
    uint8_t *scratch; /* room for the largest part */
    long long bytes;
} client_t;

static int send_request (client_t *c, long index)
{
    size_t part_sizes[MAX_PARTS];
    int parts = request_parts (c->id, index, part_sizes);
    for (int p = 0; p < parts; p++) {
        fill_part (c->scratch, part_sizes[p], c->id, index, p);
        if (zmq_send (c->socket, c->scratch, part_sizes[p], p + 1 < parts ? ZMQ_SNDMORE : 0)
            < 0)
            return -1;
        c->bytes += (long long) part_sizes[p];
    }
    return 0;
}

/* Receives one reply and checks it against request `index`. Returns 0 when it matches,
 * 1 on a mismatch (described in `why`), -1 on a receive error. */
static int check_reply (client_t *c, long index, char *why, size_t why_size)
{
    size_t part_sizes[MAX_PARTS];
    int parts = request_parts (c->id, index, part_sizes);
    int got = 0, more = 1, bad = 0;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, c->socket, got == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close (&msg);
            return -1;
        }
        more = zmq_msg_more (&msg);
        if (!bad && got >= parts) {
            snprintf (why, why_size, "reply %ld has more than %d parts", index, parts);
            bad = 1;
        } else if (!bad) {
            size_t size = zmq_msg_size (&msg);
            fill_part (c->scratch, part_sizes[got], c->id, index, got);
            if (size != part_sizes[got]) {
                snprintf (why, why_size, "reply %ld part %d: %zu bytes, expected %zu", index,
                          got, size, part_sizes[got]);
                bad = 1;
            } else if (size > 0 && memcmp (zmq_msg_data (&msg), c->scratch, size) != 0) {
                const uint8_t *data = (const uint8_t *) zmq_msg_data (&msg);
                size_t at = 0;
                while (data[at] == c->scratch[at])
                    at++;
                snprintf (why, why_size, "reply %ld part %d differs at byte %zu of %zu", index,
                          got, at, size);
                bad = 1;
            }
        }
        got++;
        zmq_msg_close (&msg);
    }
    if (!bad && got != parts) {
        snprintf (why, why_size, "reply %ld has %d parts, expected %d", index, got, parts);
        bad = 1;
    }
    return bad;
}

int main (int argc, char **argv)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    const char *frontends[MAX_FRONTENDS] = {DEFAULT_FRONTEND};
    int frontend_count = 0;
    const char *server_key = NULL;
    long requests = 50, id = 1, window = 4;
    double deadline_s = 30.0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            usage (stdout);
            return 0;
        } else if (value == NULL) {
            ok = 0;
        } else if (strcmp (arg, "--frontend") == 0) {
            ok = frontend_count < MAX_FRONTENDS;
            if (ok)
                frontends[frontend_count++] = value;
        } else if (strcmp (arg, "--server-key") == 0) {
            server_key = value;
        } else if (strcmp (arg, "--requests") == 0) {
            ok = parse_long (value, 1, 10000000, &requests) == 0;
        } else if (strcmp (arg, "--id") == 0) {
            ok = parse_long (value, 0, 1000000, &id) == 0;
        } else if (strcmp (arg, "--window") == 0) {
            ok = parse_long (value, 1, 1000, &window) == 0;
        } else if (strcmp (arg, "--deadline") == 0) {
            ok = parse_seconds (value, &deadline_s) == 0 && deadline_s > 0;
        } else {
            ok = 0;
        }
        if (!ok) {
            usage (stderr);
            return 2;
        }
        i++;
    }
    if (frontend_count == 0)
        frontend_count = 1; /* the default */
    if (!is_z85_key (server_key)) {
        fprintf (stderr, "client: need --server-key, the workers' Z85 public key\n");
        return 2;
    }

    char public_key[Z85_KEY_LEN + 1], secret_key[Z85_KEY_LEN + 1];
    if (zmq_curve_keypair (public_key, secret_key) != 0) {
        fprintf (stderr, "client: zmq_curve_keypair: %s (is libzmq built with CURVE?)\n",
                 zmq_strerror (errno));
        return 2;
    }
    size_t largest = 0;
    for (size_t i = 0; i < SIZE_COUNT; i++)
        largest = sizes[i] > largest ? sizes[i] : largest;

    client_t c = {NULL, id, malloc (largest + 1), 0};
    void *ctx = zmq_ctx_new ();
    c.socket = zmq_socket (ctx, ZMQ_DEALER);
    int64_t start = now_ms ();
    int64_t deadline = start + (int64_t) (deadline_s * 1000.0);
    if (c.scratch == NULL || c.socket == NULL
        || zmq_setsockopt (c.socket, ZMQ_CURVE_SERVERKEY, server_key, Z85_KEY_LEN) != 0
        || zmq_setsockopt (c.socket, ZMQ_CURVE_PUBLICKEY, public_key, Z85_KEY_LEN) != 0
        || zmq_setsockopt (c.socket, ZMQ_CURVE_SECRETKEY, secret_key, Z85_KEY_LEN) != 0
        || set_int_option (c.socket, ZMQ_LINGER, 0, "ZMQ_LINGER") != 0
        || set_int_option (c.socket, ZMQ_SNDTIMEO, (int) (deadline_s * 1000.0), "ZMQ_SNDTIMEO")
             != 0
        || (frontend_count > 1
            && set_int_option (c.socket, ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE") != 0)) {
        fprintf (stderr, "client %ld: setup: %s\n", id, zmq_strerror (errno));
        return 2;
    }

    /* A monitor tells a lost session (fail at once) from a slow one (wait for the deadline). */
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://client-monitor-%ld", id);
    void *monitor = NULL;
    if (zmq_socket_monitor (c.socket, monitor_ep,
                            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED)
          != 0
        || (monitor = zmq_socket (ctx, ZMQ_PAIR)) == NULL
        || set_int_option (monitor, ZMQ_LINGER, 0, "ZMQ_LINGER") != 0
        || zmq_connect (monitor, monitor_ep) != 0) {
        fprintf (stderr, "client %ld: monitor: %s\n", id, zmq_strerror (errno));
        return 2;
    }
    for (int f = 0; f < frontend_count; f++) {
        if (zmq_connect (c.socket, frontends[f]) != 0) {
            fprintf (stderr, "client %ld: connect %s: %s\n", id, frontends[f],
                     zmq_strerror (errno));
            return 2;
        }
    }

    long sent = 0, ok = 0, sessions = 0;
    int lost = 0;
    char why[200] = "";
    while (ok < requests && why[0] == '\0') {
        while (sent < requests && sent - ok < window) {
            if (send_request (&c, sent) != 0) {
                snprintf (why, sizeof why, "send of request %ld: %s", sent,
                          zmq_strerror (errno));
                break;
            }
            sent++;
        }
        if (why[0] != '\0')
            break;
        int64_t left = deadline - now_ms ();
        if (left <= 0) {
            snprintf (why, sizeof why, "no reply %ld within the %.1f s deadline", ok,
                      deadline_s);
            break;
        }
        zmq_pollitem_t items[] = {{c.socket, 0, ZMQ_POLLIN, 0}, {monitor, 0, ZMQ_POLLIN, 0}};
        /* Once the session is lost, only look at what already arrived. */
        int rc = zmq_poll (items, 2, lost ? 0 : (long) left);
        if (rc < 0) {
            snprintf (why, sizeof why, "zmq_poll: %s", zmq_strerror (errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            int event = read_monitor_event (monitor);
            if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                sessions++;
            /* Before the CURVE handshake completes nothing has been sent, and libzmq simply
             * reconnects; after it, a lost connection loses the requests in flight. */
            if (event == ZMQ_EVENT_DISCONNECTED && sessions > 0)
                lost = 1;
        }
        if (!(items[0].revents & ZMQ_POLLIN)) {
            int events = 0;
            size_t events_size = sizeof events;
            zmq_getsockopt (c.socket, ZMQ_EVENTS, &events, &events_size);
            /* Lost, and every reply that made it is read: fail now, not at the deadline. */
            if (lost && !(events & ZMQ_POLLIN))
                snprintf (why, sizeof why, "connection lost with replies %ld..%ld outstanding",
                          ok, sent - 1);
            continue; /* the deadline check above reports a timeout */
        }
        rc = check_reply (&c, ok, why, sizeof why);
        if (rc < 0)
            snprintf (why, sizeof why, "receive of reply %ld: %s", ok, zmq_strerror (errno));
        else if (rc == 0)
            ok++;
    }
    long long elapsed = (long long) (now_ms () - start);

    zmq_socket_monitor (c.socket, NULL, 0);
    zmq_close (monitor);
    zmq_close (c.socket);
    zmq_ctx_term (ctx);
    free (c.scratch);
    if (why[0] == '\0' && ok == requests) {
        printf ("client %ld: %ld/%ld replies ok, %lld bytes each way, %lld ms\n", id, ok,
                requests, c.bytes, elapsed);
        return 0;
    }
    printf ("client %ld: %ld/%ld replies ok, FAILED: %s (after %lld ms)\n", id, ok, requests,
            why, elapsed);
    return 1;
}
