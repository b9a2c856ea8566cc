/*
 * keygen.c: prints a fresh CURVE key pair for the workers (the "server" of CURVE).
 *
 *   keygen
 *
 * Output, two lines, Z85 (40 characters, no quotes or spaces in the alphabet):
 *
 *   public: <key>     give it to clients (client --server-key)
 *   secret: <key>     give it to workers only (STREAMQ_SERVER_SECRET or --secret-key)
 *
 * The broker needs no key at all: CURVE runs end to end between clients and workers.
 * Exit status 0, or 1 when libzmq was built without CURVE.
 */
#define _POSIX_C_SOURCE 200809L

#include "common.h"

int main (int argc, char **argv)
{
    if (argc > 1) {
        fprintf (argc == 2 && (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)
                   ? stdout
                   : stderr,
                 "usage: keygen\nprints 'public: KEY' and 'secret: KEY' (Z85)\n");
        return argc == 2 && argv[1][0] == '-' && argv[1][1] == 'h' ? 0 : 2;
    }
    if (!zmq_has ("curve")) {
        fprintf (stderr, "keygen: this libzmq has no CURVE support\n");
        return 1;
    }
    char public_key[Z85_KEY_LEN + 1], secret_key[Z85_KEY_LEN + 1];
    if (zmq_curve_keypair (public_key, secret_key) != 0) {
        fprintf (stderr, "keygen: zmq_curve_keypair: %s\n", zmq_strerror (errno));
        return 1;
    }
    printf ("public: %s\nsecret: %s\n", public_key, secret_key);
    return fflush (stdout) == 0 ? 0 : 1;
}
