/* fuzz/capture/capture.c: records the first bytes a real libzmq peer sends, for the fuzz
 * targets' seed corpus (fuzz/seeds/captures/). For each mechanism (NULL, PLAIN, CURVE) and
 * role (client, server), a libzmq DEALER connects to a plain TCP listener made here; the
 * listener answers with a ZMTP 3.0 greeting of the same mechanism and the opposite role,
 * then records everything the libzmq peer sends within 300 ms: its greeting and, for a
 * client, its first handshake command (NULL READY, PLAIN HELLO, CURVE HELLO).
 *
 *   cc -O2 -o /tmp/capture fuzz/capture/capture.c -lzmq && /tmp/capture fuzz/seeds/captures
 *
 * writes DIR/<mech>-<role>.bin. Exits non-zero on any failure. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

static void die(const char *what) {
    fprintf(stderr, "capture: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "capture: %s: %s\n", what, zmq_strerror(zmq_errno()));
        exit(1);
    }
}

static void capture(const char *dir, const char *mech, int server) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) die("socket");
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&a, &alen))
        die("listen");

    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, one = 1;
    check(zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero), "linger");
    char server_pub[41], server_sec[41], client_pub[41], client_sec[41];
    if (strcmp(mech, "CURVE") == 0) {
        check(zmq_curve_keypair(server_pub, server_sec), "keypair");
        check(zmq_curve_keypair(client_pub, client_sec), "keypair");
        if (server) {
            check(zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one), "curve server");
            check(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, server_sec, 40), "secret");
        } else {
            check(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40), "server key");
            check(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, client_pub, 40), "public");
            check(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, client_sec, 40), "secret");
        }
    } else if (strcmp(mech, "PLAIN") == 0) {
        if (server) {
            check(zmq_setsockopt(s, ZMQ_PLAIN_SERVER, &one, sizeof one), "plain server");
        } else {
            check(zmq_setsockopt(s, ZMQ_PLAIN_USERNAME, "admin", 5), "user");
            check(zmq_setsockopt(s, ZMQ_PLAIN_PASSWORD, "secret", 6), "password");
        }
    }
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    check(zmq_connect(s, ep), "connect");
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");

    /* Our greeting: signature, 3.0, the mechanism, as-server = the opposite role. */
    unsigned char g[64] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0};
    memcpy(g + 12, mech, strlen(mech));
    g[32] = server ? 0 : 1;
    if (write(fd, g, sizeof g) != (ssize_t)sizeof g) die("write");

    unsigned char buf[4096];
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (got < sizeof buf && poll(&p, 1, 300) > 0) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < 64) {
        fprintf(stderr, "capture: %s %s: only %zu bytes\n", mech, server ? "server" : "client", got);
        exit(1);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%s.bin", dir, mech, server ? "server" : "client");
    for (char *c = path + strlen(dir); *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c += 'a' - 'A';
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, got, f) != got || fclose(f)) die(path);
    printf("%s: %zu bytes\n", path, got);
    close(fd);
    close(lfd);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: capture DIR\n");
        return 2;
    }
    const char *mechs[] = {"NULL", "PLAIN", "CURVE"};
    for (int m = 0; m < 3; m++)
        for (int server = 0; server < 2; server++) capture(argv[1], mechs[m], server);
    return 0;
}
