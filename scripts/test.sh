#!/usr/bin/env bash
# The test suite: unit and property tests of the core, then integration tests with real
# libzmq peers over TCP on 127.0.0.1 and the C examples built with the system compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
exec cargo test --release "$@"
