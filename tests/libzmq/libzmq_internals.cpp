/*
    libzmq_internals.cpp: the three functions of libzmq's internals that its
    test_security_curve calls (through src/curve_client_tools.hpp and src/random.hpp) and that
    the shared libzmq does not export. scripts/libzmq-tests.sh links this into that test so
    that it runs against the system libzmq instead of a second, in-tree copy. Written for
    streamq-proxy from the declarations alone; libzmq built with libsodium (as Debian's is)
    needs nothing more of them.

    Copyright the streamq-proxy authors. LGPL-3.0-or-later.
*/

#include <sodium.h>

#include <cstdio>
#include <cstdlib>

namespace zmq
{
void zmq_abort (const char *reason_)
{
    std::fprintf (stderr, "libzmq test helper: %s\n", reason_);
    std::abort ();
}

void random_open ()
{
    if (sodium_init () < 0)
        zmq_abort ("sodium_init failed");
}

void random_close ()
{
}
}
