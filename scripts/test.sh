#!/usr/bin/env bash
# The test suite: unit and property tests of the core and the relay, then integration tests
# with real libzmq peers over TCP on 127.0.0.1 and the C examples built with the system
# compiler; then the integration tests again with every pair on the libzmq relay
# (ZMQ_PROXY_STREAM_TAKEOVER 0), so that both data paths are tested.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cargo test --release "$@"
echo "== integration tests again, on the libzmq relay (STREAMQ_TEST_TAKEOVER=0)"
STREAMQ_TEST_TAKEOVER=0 cargo test --release --tests "$@"
