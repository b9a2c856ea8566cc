/*
    test_proxy_stream.cpp: zmq_proxy_stream (streamq-proxy) tested in libzmq's own idiom:
    Unity, libzmq's tests/testutil helpers, a fresh test context per test (setUp/tearDown).

    It covers for zmq_proxy_stream what libzmq's proxy tests cover for zmq_proxy_steerable
    (traffic through the proxy; PAUSE, RESUME, STATISTICS and TERMINATE on the control
    socket), plus STREAMSTATS and CURVE end to end between several clients and workers
    through a proxy that holds no key.

    Built next to libzmq's tests, against the system libzmq and an installed
    libzmq_proxy_stream, by scripts/libzmq-tests.sh. To add it to libzmq's own tests: copy it
    to tests/, add test_proxy_stream to the test list in tests/CMakeLists.txt (or to
    test_apps in Makefile.am) and link it with zmq_proxy_stream
    (pkg-config --libs libzmq_proxy_stream).

    Copyright the streamq-proxy authors. LGPL-3.0-or-later.
*/

#include "testutil.hpp"
#include "testutil_security.hpp"
#include "testutil_unity.hpp"

#include <zmq_proxy_stream.h>

#include <stdint.h>
#include <string.h>

void setUp ()
{
    setup_test_context ();
}

void tearDown ()
{
    teardown_test_context ();
}

static const char control_endpoint[] = "inproc://proxy-stream-control";

//  The proxy under test: its three sockets, the thread running it and what it returned.
struct proxy_t
{
    void *frontend;
    void *backend;
    void *control;
    char frontend_endpoint[MAX_SOCKET_STRING];
    char backend_endpoint[MAX_SOCKET_STRING];
    void *thread;
    int rc;
    int err;
};

static void run_proxy (void *arg_)
{
    proxy_t *proxy = static_cast<proxy_t *> (arg_);
    proxy->rc = zmq_proxy_stream (proxy->frontend, proxy->backend, proxy->control);
    proxy->err = proxy->rc == 0 ? 0 : errno;
}

//  A STREAM socket bound to a loopback port of the system's choice, with linger 0 (the
//  proxy's precondition: a vanished peer must not hold the context's end).
static void *bound_stream (char *endpoint_)
{
    void *stream = test_context_socket (ZMQ_STREAM);
    int linger = 0;
    TEST_ASSERT_SUCCESS_ERRNO (
      zmq_setsockopt (stream, ZMQ_LINGER, &linger, sizeof linger));
    bind_loopback_ipv4 (stream, endpoint_, MAX_SOCKET_STRING);
    return stream;
}

static void start_proxy (proxy_t *proxy_)
{
    memset (proxy_, 0, sizeof *proxy_);
    proxy_->frontend = bound_stream (proxy_->frontend_endpoint);
    proxy_->backend = bound_stream (proxy_->backend_endpoint);
    proxy_->control = test_context_socket (ZMQ_REP);
    TEST_ASSERT_SUCCESS_ERRNO (zmq_bind (proxy_->control, control_endpoint));
    proxy_->thread = zmq_threadstart (run_proxy, proxy_);
}

//  Sends COMMAND on the control socket and expects REP's empty reply.
static void command_expect_empty_reply (void *requester_, const char *command_)
{
    send_string_expect_success (requester_, command_, 0);
    recv_string_expect_success (requester_, "", 0);
}

//  TERMINATE: the proxy returns 0; its sockets are still ours, and closed here.
static void terminate_proxy (proxy_t *proxy_, void *requester_)
{
    command_expect_empty_reply (requester_, "TERMINATE");
    zmq_threadclose (proxy_->thread);
    TEST_ASSERT_EQUAL_INT_MESSAGE (0, proxy_->err, zmq_strerror (proxy_->err));
    TEST_ASSERT_EQUAL_INT (0, proxy_->rc);
    test_context_socket_close_zero_linger (proxy_->frontend);
    test_context_socket_close_zero_linger (proxy_->backend);
    test_context_socket_close_zero_linger (proxy_->control);
}

static void *control_requester ()
{
    void *requester = test_context_socket (ZMQ_REQ);
    TEST_ASSERT_SUCCESS_ERRNO (zmq_connect (requester, control_endpoint));
    return requester;
}

//  A worker connection: a ROUTER connected to the proxy's backend.
static void *connect_worker (const proxy_t *proxy_)
{
    void *worker = test_context_socket (ZMQ_ROUTER);
    TEST_ASSERT_SUCCESS_ERRNO (zmq_connect (worker, proxy_->backend_endpoint));
    return worker;
}

static void *connect_client (const proxy_t *proxy_)
{
    void *client = test_context_socket (ZMQ_DEALER);
    TEST_ASSERT_SUCCESS_ERRNO (zmq_connect (client, proxy_->frontend_endpoint));
    return client;
}

//  The worker receives REQUEST from a client (ROUTER: routing id, then the data) and
//  answers REPLY to that client.
static void worker_echo (void *worker_, const char *request_, const char *reply_)
{
    zmq_msg_t routing_id;
    TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_init (&routing_id));
    TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_recv (&routing_id, worker_, 0));
    TEST_ASSERT_TRUE (zmq_msg_more (&routing_id));
    recv_string_expect_success (worker_, request_, 0);
    TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_send (&routing_id, worker_, ZMQ_SNDMORE));
    send_string_expect_success (worker_, reply_, 0);
}

static void bounce_through (void *client_, void *worker_, const char *request_)
{
    send_string_expect_success (client_, request_, 0);
    worker_echo (worker_, request_, request_);
    recv_string_expect_success (client_, request_, 0);
}

//  Reads a reply of FRAMES frames of native-endian uint64 counters (STATISTICS) or one
//  frame of them (STREAMSTATS) into VALUES; returns how many counters came.
static size_t recv_counters (void *requester_, uint64_t *values_, size_t max_)
{
    size_t count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t frame;
        TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_init (&frame));
        TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_recv (&frame, requester_, 0));
        const size_t size = zmq_msg_size (&frame);
        TEST_ASSERT_EQUAL_INT (0, (int) (size % sizeof (uint64_t)));
        for (size_t at = 0; at < size && count < max_; at += sizeof (uint64_t))
            memcpy (&values_[count++],
                    static_cast<const char *> (zmq_msg_data (&frame)) + at,
                    sizeof (uint64_t));
        more = zmq_msg_more (&frame);
        TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_close (&frame));
    }
    return count;
}

static void test_traffic_through_proxy ()
{
    proxy_t proxy;
    start_proxy (&proxy);
    void *requester = control_requester ();
    void *worker = connect_worker (&proxy);
    void *client = connect_client (&proxy);

    bounce_through (client, worker, "first");
    bounce_through (client, worker, "second");

    test_context_socket_close_zero_linger (client);
    test_context_socket_close_zero_linger (worker);
    terminate_proxy (&proxy, requester);
    test_context_socket_close (requester);
}

static void test_pause_and_resume ()
{
    proxy_t proxy;
    start_proxy (&proxy);
    void *requester = control_requester ();
    void *worker = connect_worker (&proxy);
    void *client = connect_client (&proxy);
    bounce_through (client, worker, "paired");

    //  Paused, the proxy forwards nothing; nothing is lost either.
    command_expect_empty_reply (requester, "PAUSE");
    send_string_expect_success (client, "while paused", 0);
    zmq_pollitem_t item = {worker, 0, ZMQ_POLLIN, 0};
    TEST_ASSERT_EQUAL_INT (0, zmq_poll (&item, 1, SETTLE_TIME));
    command_expect_empty_reply (requester, "RESUME");
    worker_echo (worker, "while paused", "after resume");
    recv_string_expect_success (client, "after resume", 0);

    test_context_socket_close_zero_linger (client);
    test_context_socket_close_zero_linger (worker);
    terminate_proxy (&proxy, requester);
    test_context_socket_close (requester);
}

static void test_statistics_and_streamstats ()
{
    proxy_t proxy;
    start_proxy (&proxy);
    void *requester = control_requester ();
    void *worker = connect_worker (&proxy);
    void *client = connect_client (&proxy);
    bounce_through (client, worker, "counted");

    //  8 frames: frontend msgs in, bytes in, msgs out, bytes out, then the backend's.
    uint64_t stats[16];
    send_string_expect_success (requester, "STATISTICS", 0);
    TEST_ASSERT_EQUAL_INT (8, (int) recv_counters (requester, stats, 16));
    TEST_ASSERT_TRUE (stats[0] > 0 && stats[1] > 0); //  frontend received
    TEST_ASSERT_TRUE (stats[2] > 0 && stats[3] > 0); //  frontend sent
    TEST_ASSERT_TRUE (stats[4] > 0 && stats[5] > 0); //  backend received
    TEST_ASSERT_TRUE (stats[6] > 0 && stats[7] > 0); //  backend sent

    //  One frame of counters indexed by ZMQ_PROXY_STREAM_STAT_*.
    uint64_t counters[256];
    send_string_expect_success (requester, "STREAMSTATS", 0);
    const size_t count = recv_counters (requester, counters, 256);
    TEST_ASSERT_TRUE (count >= ZMQ_PROXY_STREAM_STAT_COUNT);
    TEST_ASSERT_EQUAL_UINT64 (1, counters[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN]);
    TEST_ASSERT_EQUAL_UINT64 (1, counters[ZMQ_PROXY_STREAM_STAT_PAIRS_TOTAL]);

    //  Unknown commands get an empty reply on REP, and change nothing.
    command_expect_empty_reply (requester, "NO SUCH COMMAND");

    test_context_socket_close_zero_linger (client);
    test_context_socket_close_zero_linger (worker);
    terminate_proxy (&proxy, requester);
    test_context_socket_close (requester);
}

static void test_bad_sockets ()
{
    void *router = test_context_socket (ZMQ_ROUTER);
    void *dealer = test_context_socket (ZMQ_DEALER);
    TEST_ASSERT_FAILURE_ERRNO (EINVAL, zmq_proxy_stream (router, dealer, NULL));
    TEST_ASSERT_FAILURE_ERRNO (EFAULT, zmq_proxy_stream (NULL, dealer, NULL));
    test_context_socket_close (router);
    test_context_socket_close (dealer);
}

//  CURVE end to end: the workers are CURVE servers, the clients CURVE clients with keys
//  of their own, and the proxy between them holds no key at all.
static void test_curve_end_to_end_several_clients_and_workers ()
{
    setup_testutil_security_curve ();
    proxy_t proxy;
    start_proxy (&proxy);
    void *requester = control_requester ();

    const int workers = 2, clients = 4;
    //  One connection per client: each worker connects twice (two slots).
    void *worker[2];
    for (int w = 0; w < workers; w++) {
        worker[w] = test_context_socket (ZMQ_ROUTER);
        socket_config_curve_server (worker[w], valid_server_secret);
        for (int slot = 0; slot < clients / workers; slot++)
            TEST_ASSERT_SUCCESS_ERRNO (
              zmq_connect (worker[w], proxy.backend_endpoint));
    }
    void *client[4];
    char client_public[4][41], client_secret[4][41];
    for (int c = 0; c < clients; c++) {
        TEST_ASSERT_SUCCESS_ERRNO (
          zmq_curve_keypair (client_public[c], client_secret[c]));
        curve_client_data_t keys = {valid_server_public, client_public[c],
                                    client_secret[c]};
        client[c] = test_context_socket (ZMQ_DEALER);
        socket_config_curve_client (client[c], &keys);
        TEST_ASSERT_SUCCESS_ERRNO (zmq_connect (client[c], proxy.frontend_endpoint));
    }

    //  Every client sends; whichever worker holds its session answers it.
    char request[32];
    for (int c = 0; c < clients; c++) {
        snprintf (request, sizeof request, "request of client %d", c);
        send_string_expect_success (client[c], request, 0);
    }
    for (int answered = 0; answered < clients;) {
        zmq_pollitem_t items[2] = {{worker[0], 0, ZMQ_POLLIN, 0},
                                   {worker[1], 0, ZMQ_POLLIN, 0}};
        TEST_ASSERT_SUCCESS_ERRNO (zmq_poll (items, 2, 10000));
        for (int w = 0; w < workers; w++) {
            if (!(items[w].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t routing_id;
            TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_init (&routing_id));
            TEST_ASSERT_SUCCESS_ERRNO (zmq_msg_recv (&routing_id, worker[w], 0));
            char text[64];
            const int size = TEST_ASSERT_SUCCESS_ERRNO (
              zmq_recv (worker[w], text, sizeof text - 1, 0));
            text[size] = '\0';
            TEST_ASSERT_EQUAL_INT (0, strncmp (text, "request of client ", 18));
            TEST_ASSERT_SUCCESS_ERRNO (
              zmq_msg_send (&routing_id, worker[w], ZMQ_SNDMORE));
            send_string_expect_success (worker[w], text, 0); //  echo
            answered++;
        }
    }
    for (int c = 0; c < clients; c++) {
        snprintf (request, sizeof request, "request of client %d", c);
        recv_string_expect_success (client[c], request, 0);
    }

    uint64_t counters[256];
    send_string_expect_success (requester, "STREAMSTATS", 0);
    recv_counters (requester, counters, 256);
    TEST_ASSERT_EQUAL_UINT64 (clients, counters[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN]);

    for (int c = 0; c < clients; c++)
        test_context_socket_close_zero_linger (client[c]);
    for (int w = 0; w < workers; w++)
        test_context_socket_close_zero_linger (worker[w]);
    terminate_proxy (&proxy, requester);
    test_context_socket_close (requester);
}

int main ()
{
    setup_test_environment ();

    UNITY_BEGIN ();
    RUN_TEST (test_traffic_through_proxy);
    RUN_TEST (test_pause_and_resume);
    RUN_TEST (test_statistics_and_streamstats);
    RUN_TEST (test_bad_sockets);
    RUN_TEST (test_curve_end_to_end_several_clients_and_workers);
    return UNITY_END ();
}
