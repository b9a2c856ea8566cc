// broker.cpp: zmq_proxy_stream from C++ with cppzmq.
//
//   broker [--mechanisms LIST] [--worker-endpoint EP]... FRONTEND BACKEND CONTROL
//
// Binds a ZMQ_STREAM frontend, a ZMQ_STREAM backend (BACKEND `-` with --worker-endpoint:
// dial-out, not bound) and a ZMQ_REP control socket, prints the endpoints it really bound
// (a TCP port of * lets the system choose) and runs the proxy until TERMINATE arrives on the
// control socket. cppzmq owns the sockets; the proxy borrows them through socket.handle().
//
// Exit status: 0 after TERMINATE, 1 when the proxy failed, 2 on bad arguments or setup.
#include <zmq.hpp>
#include <zmq_proxy_stream.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace
{
// The handle, released however main() returns.
struct handle_deleter
{
    void operator() (zmq_proxy_stream_t *proxy) const { zmq_proxy_stream_destroy (&proxy); }
};
using handle_t = std::unique_ptr<zmq_proxy_stream_t, handle_deleter>;

bool set_string (zmq_proxy_stream_t *proxy, int option, const std::string &value)
{
    if (zmq_proxy_stream_setopt (proxy, option, value.data (), value.size ()) != 0) {
        std::cerr << "broker: option " << option << " '" << value
                  << "' refused: " << zmq_strerror (errno) << "\n";
        return false;
    }
    return true;
}
} // namespace

int main (int argc, char **argv)
{
    std::vector<std::string> positional, workers;
    std::string mechanisms;
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if ((arg == "--mechanisms" || arg == "--worker-endpoint") && i + 1 < argc) {
            (arg == "--mechanisms" ? mechanisms : workers.emplace_back ()) = argv[++i];
        } else if (arg.rfind ("--", 0) == 0 || positional.size () == 3) {
            std::cerr << "usage: broker [--mechanisms LIST] [--worker-endpoint EP]..."
                         " FRONTEND BACKEND CONTROL\n";
            return 2;
        } else {
            positional.push_back (arg);
        }
    }
    if (positional.size () != 3) {
        std::cerr << "broker: FRONTEND, BACKEND and CONTROL are needed\n";
        return 2;
    }

    handle_t proxy (zmq_proxy_stream_new ());
    if (!proxy) {
        std::cerr << "broker: zmq_proxy_stream_new: " << zmq_strerror (errno) << "\n";
        return 2;
    }
    if (!mechanisms.empty ()
        && !set_string (proxy.get (), ZMQ_PROXY_STREAM_MECHANISMS, mechanisms))
        return 2;
    for (const auto &endpoint : workers)
        if (!set_string (proxy.get (), ZMQ_PROXY_STREAM_WORKER_ENDPOINT, endpoint))
            return 2;

    zmq::context_t ctx;
    zmq::socket_t frontend (ctx, zmq::socket_type::stream);
    zmq::socket_t backend (ctx, zmq::socket_type::stream);
    zmq::socket_t control (ctx, zmq::socket_type::rep);
    // The proxy's preconditions: finite linger on the STREAM sockets, options before bind.
    frontend.set (zmq::sockopt::linger, 0);
    backend.set (zmq::sockopt::linger, 0);
    control.set (zmq::sockopt::linger, 1000);
    std::string backend_bound = "dial-out";
    try {
        frontend.bind (positional[0]);
        if (workers.empty ()) {
            backend.bind (positional[1]);
            backend_bound = backend.get (zmq::sockopt::last_endpoint);
        }
        control.bind (positional[2]);
    }
    catch (const zmq::error_t &e) {
        std::cerr << "broker: cannot bind: " << e.what () << "\n";
        return 2;
    }
    int major, minor, patch;
    zmq_proxy_stream_version (&major, &minor, &patch);
    std::cout << "broker: listening frontend=" << frontend.get (zmq::sockopt::last_endpoint)
              << " backend=" << backend_bound
              << " control=" << control.get (zmq::sockopt::last_endpoint)
              << " (zmq_proxy_stream " << major << "." << minor << "." << patch << ")"
              << std::endl;

    const int rc = zmq_proxy_stream_run (proxy.get (), frontend.handle (), backend.handle (),
                                         control.handle ());
    const int err = rc == 0 ? 0 : errno;
    std::cout << "broker: zmq_proxy_stream returned " << rc << " ("
              << (err == 0 ? "none" : zmq_strerror (err)) << ")" << std::endl;
    return rc == 0 ? 0 : 1;
}
