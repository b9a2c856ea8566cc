#!/usr/bin/env bash
# The test suite: unit and property tests of the core and the relay, then integration tests
# with real libzmq peers over TCP on 127.0.0.1 and the C examples built with the system
# compiler; then the integration tests again with every pair on the libzmq relay
# (ZMQ_PROXY_STREAM_TAKEOVER 0), so that both data paths are tested.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cargo test --release "$@"

# The second pass: every test file whose proxies take STREAMQ_TEST_TAKEOVER (those started
# through tests/common's harness, and the command's in descriptor_budget.rs). The files
# below start no such proxy (the C examples' broker, the installed library, the header, the
# man pages, the command's flags, the benchmark's smoke run, dial_smoke's bare proxy), so a
# second run of theirs would repeat the first exactly; they are listed by name, so that a
# new test file runs in both passes unless it is added here on purpose.
SAME_BOTH_WAYS=" bench_smoke c_examples command dial_smoke header install man_pages "
second=()
for f in tests/*.rs tests/*/main.rs; do
    name=$(basename "$f" .rs)
    [[ $name == main ]] && name=$(basename "$(dirname "$f")")
    [[ $SAME_BOTH_WAYS == *" $name "* ]] || second+=(--test "$name")
done
echo "== integration tests again, on the libzmq relay (STREAMQ_TEST_TAKEOVER=0)"
STREAMQ_TEST_TAKEOVER=0 cargo test --release "${second[@]}" "$@"
