#!/usr/bin/env bash
# scripts/soak.sh [--seconds N] [--topology dial-in|dial-out] [--self-check] [soak flags...]
#
# The soak: the real broker (target/release/zmq-proxy-stream, in its own process) under
# hundreds of CURVE clients in several processes, with sessions churning, workers SIGKILLed
# and replaced, and one PAUSE/RESUME; then one summary, and exit 1 when the run failed.
# The load is examples/soak/ (`soak run` coordinates; `soak client` and `soak worker` are the
# roles it starts). Defaults: 60 s, dial-in, 4 client processes x 60 clients (one thread and
# one zmq_poll each), 4 workers (dial-in: 100 connections each to the broker's backend,
# connecting again after a failed handshake as the README tells worker authors; dial-out: a
# bound ROUTER each, given to the broker with --worker-endpoint), each client 10 requests/s
# on average with at most 2 awaiting a reply.
#
# A request carries (client id, session number, sequence, 0-2 KiB of random bytes, 1 in 50 up
# to 64 KiB, FNV-1a 64 checksum). The worker checks the checksum and echoes it with its pid.
# A session is one DEALER (fresh CURVE key pair, reconnection off) and one connection; it
# ends by the client's choice after 5-300 requests (closed with LINGER 0, at once or once its
# replies are in), or when its connection goes, or on a reply timeout. The counts:
#   sessions         sessions opened, all clients together
#   sent, ok         requests sent; replies that were the client's own, intact, in order
#   corrupt          a reply or request whose checksum fails, or a reply not byte-for-byte
#                    the request (clients and workers)
#   misdelivered     a reply with another client's id or another session's number, or one
#                    that is not the next the session awaits (out of order, or a duplicate)
#   abandoned        awaiting a reply when the client chose to close (not lost, not checked)
#   lost_near_kill   "lost near a kill and noticed": awaiting a reply when the session's
#                    connection ended (the socket monitor's DISCONNECTED) and the session's
#                    worker (the pid on its replies) was one the killer SIGKILLed, or, for a
#                    session with no reply yet, the end came from 1 s before to 5 s after a kill
#   lost_noticed_other  the same, when no kill explains the end, with the number of sessions
#                    so ended: the broker closed a healthy session
#   lost_silently    no reply within --reply-timeout (10 s) of its sending (counted from the
#                    end of the CURVE handshake for requests queued before it) while the
#                    connection stayed up; a reply skipped (a later one came first); a
#                    reply a worker could not send (full pipe)
#   stalled          a session whose handshake had not completed after 30 s, connection up
#   rss_kib          the broker's VmRSS (/proc/PID/status), sampled every second: before the
#                    clients start, and the lowest sample of the 20 s around the middle and
#                    of the last 20 s (broker-samples.txt in the logs has every sample)
#   fds, pairs_open  its descriptors (/proc/PID/fd) and open pairs at the same points: the
#                    load is steady when they match at the middle and the end
#   streamstats      the broker's non-zero STREAMSTATS counters at the end (its --metrics)
#   access_log       the broker's access log (its stdout) counted by CLOSE and REJECT reason
# FAIL when anything is corrupt, misdelivered, lost silently or stalled, or a session ended
# with no kill to explain it; when RSS at the end is more than 10% over RSS at the middle;
# when pairs are still open 15 s after the last client left; when a process dies or the
# broker does not exit 0 on SIGTERM; when PAUSE/RESUME fails; or when there was no load.
# Requests sent during the PAUSE wait and must complete after RESUME (and the slowest reply
# must have waited at least half the pause, or the broker did not pause).
#
# --self-check runs three short soaks with workers that break every 200th reply (drop,
# damage, swap with the previous one) and checks that each one FAILs for that reason.
#
# Every wait has a deadline; every process started is killed when the run ends (the roles
# also die with the coordinator, PR_SET_PDEATHSIG); logs are in a temp dir, printed on
# failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

seconds=""
self_check=0
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --self-check) self_check=1; shift ;;
        --*) [ $# -ge 2 ] || { echo "soak.sh: $1 needs a value" >&2; exit 2; }
             pass+=("$1" "$2"); shift 2 ;;
        *) echo "soak.sh: unexpected argument $1" >&2; exit 2 ;;
    esac
done

bash scripts/setup-deps.sh >/dev/null
TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin zmq-proxy-stream --example soak
soak="$TARGET_DIR/release/examples/soak"

logs=$(mktemp -d "${TMPDIR:-/tmp}/streamq-soak.XXXXXX")
coordinator=""
cleanup() {
    if [ -n "$coordinator" ] && kill -0 "$coordinator" 2>/dev/null; then
        kill -KILL "$coordinator" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One soak run into $logs/$1; its summary on stdout; the status of `soak run`.
run() {
    local dir="$logs/$1"
    shift
    mkdir -p "$dir"
    # The coordinator's own deadline: the run, the drain (reply timeout and its margin) and
    # start-up and shutdown.
    timeout --signal=KILL "$((seconds + 150))" "$soak" run --seconds "$seconds" --logs "$dir" \
        "$@" >"$dir/summary.txt" 2>"$dir/coordinator.log" &
    coordinator=$!
    local status=0
    wait "$coordinator" || status=$?
    coordinator=""
    cat "$dir/summary.txt"
    return "$status"
}

print_logs() {
    local f
    for f in "$1"/*.log "$1"/broker-samples.txt; do
        [ -f "$f" ] || continue
        echo "---- $f (last 40 lines)"
        tail -n 40 "$f"
    done
}

if [ "$self_check" = 1 ]; then
    seconds=${seconds:-20}
    failed=0
    for fault in drop:"lost silently" corrupt:"corrupt" swap:"misdelivered"; do
        name=${fault%%:*}
        want=${fault#*:}
        echo "== self-check: workers that ${name} every 200th reply must fail the soak"
        if run "self-$name" --processes 1 --clients 40 --kill-every 8 --fault "$name" \
            --fault-every 200 "${pass[@]}"; then
            echo "self-check: the soak passed with workers that ${name} replies" >&2
            failed=1
        elif ! grep -q "soak: FAIL (.*$want" "$logs/self-$name/summary.txt"; then
            echo "self-check: the soak failed, but not for '$want'" >&2
            print_logs "$logs/self-$name"
            failed=1
        fi
    done
    [ "$failed" = 0 ] && { echo "self-check: PASS"; rm -rf "$logs"; }
    exit "$failed"
fi

seconds=${seconds:-60}
if run soak "${pass[@]}"; then
    rm -rf "$logs"
    exit 0
fi
echo "soak failed; logs in $logs/soak" >&2
print_logs "$logs/soak" >&2
exit 1
