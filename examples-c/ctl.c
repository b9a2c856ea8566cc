/*
 * ctl.c: sends one command to a broker's ZMQ_REP control socket and prints the reply.
 *
 *   ctl CONTROL_ENDPOINT COMMAND [TIMEOUT_MS]
 *
 * COMMAND is one of zmq_proxy_steerable's: PAUSE, RESUME, STATISTICS, TERMINATE (sent as
 * is, one frame, no NUL; anything else is sent too, and the proxy ignores it). A REP
 * control socket answers STATISTICS with 8 frames of native-endian uint64, printed as
 *
 *   frontend: msgs_in=N bytes_in=N msgs_out=N bytes_out=N
 *   backend: msgs_in=N bytes_in=N msgs_out=N bytes_out=N
 *
 * and every other command with one empty frame, printed as "COMMAND: empty reply".
 * Exit status 0 when a well-formed reply came within TIMEOUT_MS (default 5000), 1 when
 * none came or it was malformed, 2 on bad arguments or a setup error.
 */
#define _POSIX_C_SOURCE 200809L

#include "common.h"

#define STAT_FRAMES 8
#define MAX_FRAMES 16

int main (int argc, char **argv)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    long timeout_ms = 5000;
    if (argc < 3 || argc > 4 || (argc == 4 && parse_long (argv[3], 1, 3600000, &timeout_ms) != 0)) {
        fprintf (stderr, "usage: ctl CONTROL_ENDPOINT PAUSE|RESUME|STATISTICS|TERMINATE"
                         " [TIMEOUT_MS]\n");
        return 2;
    }
    const char *endpoint = argv[1], *command = argv[2];

    void *ctx = zmq_ctx_new ();
    void *req = zmq_socket (ctx, ZMQ_REQ);
    if (req == NULL || set_int_option (req, ZMQ_LINGER, 0, "ZMQ_LINGER") != 0
        || zmq_connect (req, endpoint) != 0) {
        fprintf (stderr, "ctl: cannot connect to %s: %s\n", endpoint, zmq_strerror (errno));
        return 2;
    }
    int status = 1;
    int64_t deadline = now_ms () + timeout_ms;
    if (zmq_send (req, command, strlen (command), 0) < 0) {
        fprintf (stderr, "ctl: send: %s\n", zmq_strerror (errno));
        goto done;
    }
    zmq_pollitem_t item = {req, 0, ZMQ_POLLIN, 0};
    int rc;
    do {
        int64_t left = deadline - now_ms ();
        rc = zmq_poll (&item, 1, left > 0 ? (long) left : 0);
    } while (rc < 0 && errno == EINTR && now_ms () < deadline);
    if (rc <= 0) {
        fprintf (stderr, "ctl: no reply to %s from %s within %ld ms\n", command, endpoint,
                 timeout_ms);
        goto done;
    }

    uint64_t values[MAX_FRAMES];
    size_t frames = 0, eight_byte_frames = 0, empty_frames = 0;
    int more = 1;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, req, 0) < 0) {
            fprintf (stderr, "ctl: receive: %s\n", zmq_strerror (errno));
            zmq_msg_close (&msg);
            goto done;
        }
        more = zmq_msg_more (&msg);
        size_t size = zmq_msg_size (&msg);
        if (size == sizeof (uint64_t) && frames < MAX_FRAMES) {
            memcpy (&values[frames], zmq_msg_data (&msg), sizeof (uint64_t));
            eight_byte_frames++;
        }
        empty_frames += size == 0;
        frames++;
        zmq_msg_close (&msg);
    }

    if (strcmp (command, "STATISTICS") == 0) {
        if (frames != STAT_FRAMES || eight_byte_frames != STAT_FRAMES) {
            fprintf (stderr, "ctl: STATISTICS reply has %zu frames, expected 8 of 8 bytes\n",
                     frames);
            goto done;
        }
        const char *side[2] = {"frontend", "backend"};
        for (int s = 0; s < 2; s++)
            printf ("%s: msgs_in=%llu bytes_in=%llu msgs_out=%llu bytes_out=%llu\n", side[s],
                    (unsigned long long) values[s * 4], (unsigned long long) values[s * 4 + 1],
                    (unsigned long long) values[s * 4 + 2],
                    (unsigned long long) values[s * 4 + 3]);
        status = 0;
    } else if (frames == 1 && empty_frames == 1) {
        printf ("%s: empty reply\n", command);
        status = 0;
    } else {
        fprintf (stderr, "ctl: unexpected reply to %s: %zu frames\n", command, frames);
    }

done:
    zmq_close (req);
    zmq_ctx_term (ctx);
    return status;
}
