#!/usr/bin/env bash
# scripts/valgrind-demo.sh: the demo (scripts/demo.sh) with every program in it (broker,
# workers, clients, keygen, ctl, access_log) run under valgrind's memcheck, in both
# topologies. Any memory error, or any byte definitely or indirectly lost, makes that program
# exit 9, and the demo fails on it. scripts/valgrind.supp holds the only suppressions: known
# reports of libzmq's and the C runtime's own, each with its reason.
#
# Fewer requests than the plain demo (valgrind is ~20-50 times slower), longer deadlines.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v valgrind >/dev/null 2>&1 || { echo "valgrind is not installed" >&2; exit 1; }
# One line: demo.sh reads it with `read -a`, which stops at the first newline.
vg=(valgrind -q --error-exitcode=9 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect "--suppressions=$ROOT/scripts/valgrind.supp")
export DEMO_WRAPPER="${vg[*]}"
export DEMO_REQUESTS=${DEMO_REQUESTS:-5}
export DEMO_CLIENT_DEADLINE=${DEMO_CLIENT_DEADLINE:-120}
export DEMO_STARTUP_DEADLINE=${DEMO_STARTUP_DEADLINE:-60}
export DEMO_STOP_DEADLINE=${DEMO_STOP_DEADLINE:-30}
exec bash "$ROOT/scripts/demo.sh"
