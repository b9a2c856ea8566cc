#!/usr/bin/env bash
# scripts/demo.sh: zmq_proxy_stream end to end, on this machine, in about ten seconds.
#
# Builds the library (cargo build --release) and the C examples (examples-c/), makes a CURVE
# server key pair, then on 127.0.0.1 runs:
#   - examples-c/broker: zmq_proxy_stream() between a STREAM frontend and a STREAM backend,
#     ports chosen by the OS (tcp://127.0.0.1:*), a REP control socket; it holds no key;
#   - 2 workers (CURVE servers, ROUTER, 4 connections each to the backend): echo; each
#     connects from its own source address (127.0.0.2, 127.0.0.3: libzmq's
#     tcp://SRC:0;HOST:PORT), because the proxy spreads clients over worker addresses and
#     cannot tell two workers on one address apart (README, "Two topologies"), so the
#     summary shows the 4 clients shared 2 and 2 whatever the order the workers connected in;
#   - 4 clients (CURVE clients, DEALER, fresh key pairs) in parallel, each sending
#     DEMO_REQUESTS requests (default 50) of 0 B .. 256 KiB, some multipart, and checking
#     every reply byte for byte;
# then asks the broker for STATISTICS, sends TERMINATE and stops the workers. Then the same in
# the dial-out topology, with the access log:
#   - 2 workers that BIND a ROUTER (CURVE server) each (worker --bind, ports chosen by the OS);
#   - a broker that binds no backend but connects to those workers, one connection per
#     client (broker --worker-endpoint EP, twice), and publishes the proxy's events on a PUB
#     socket (broker --events EP);
#   - examples-c/access_log subscribed to those events, printing one line per OPEN and CLOSE;
#   - the same 4 clients;
# and prints a summary, with the sessions each worker served in either topology (shown, not
# checked: a client done before another starts frees its worker, so 3 and 1 can happen on a
# slow machine). Exit status 0 only when every client succeeded, the access log showed
# an OPEN and a CLOSE of a CURVE session per client, and each broker returned 0.
#
# Every wait has a deadline; every process started here is stopped on any exit (trap).
# Logs go to a temporary directory, kept (and printed) when the demo fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKERS=2
SLOTS_PER_WORKER=4
CLIENTS=4
REQUESTS=${DEMO_REQUESTS:-50}
CLIENT_DEADLINE_S=${DEMO_CLIENT_DEADLINE:-60}   # each client's own deadline
STARTUP_DEADLINE_S=${DEMO_STARTUP_DEADLINE:-15}  # broker/workers ready
STOP_DEADLINE_S=${DEMO_STOP_DEADLINE:-10}        # broker/workers gone after being asked
# DEMO_WRAPPER: a command every program of the demo runs under (scripts/valgrind-demo.sh
# runs them all under valgrind this way); empty by default.
read -r -a WRAP <<<"${DEMO_WRAPPER:-}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamq-demo.XXXXXX")
declare -A LIVE=()   # pid -> name, for every process started and not yet reaped
FAILED_WHY=""

log() { printf '%s\n' "$*"; }
now_ms() { local t=${EPOCHREALTIME/./}; NOW_MS=$((t / 1000)); }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${!LIVE[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    now_ms
    local end=$((NOW_MS + 3000))
    for pid in "${!LIVE[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            now_ms
            if ((NOW_MS > end)); then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.05
        done
        wait "$pid" 2>/dev/null || true
    done
    if ((rc != 0)); then
        log ""
        log "demo FAILED${FAILED_WHY:+: $FAILED_WHY} (exit $rc). Logs in $WORK:"
        local f
        for f in "$WORK"/*.log; do
            [[ -e $f ]] || continue
            log "---- $(basename "$f")"
            tail -n 20 "$f"
        done
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'FAILED_WHY="interrupted"; exit 130' INT
trap 'FAILED_WHY="terminated"; exit 143' TERM

fail() {
    FAILED_WHY="$*"
    exit 1
}

# start NAME CMD...: runs CMD in the background, output to $WORK/NAME.log; sets STARTED_PID.
start() {
    local name=$1
    shift
    "${WRAP[@]}" "$@" >"$WORK/$name.log" 2>&1 &
    STARTED_PID=$!
    LIVE[$STARTED_PID]=$name
}

# wait_for_line NAME PID REGEX DEADLINE_S: polls NAME's log until a line matches REGEX.
wait_for_line() {
    local name=$1 pid=$2 regex=$3
    now_ms
    local end=$((NOW_MS + $4 * 1000))
    until grep -qE -- "$regex" "$WORK/$name.log" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || fail "$name exited before it was ready"
        now_ms
        ((NOW_MS <= end)) || fail "$name not ready within $4 s"
        sleep 0.02
    done
}

# reap PID DEADLINE_S: waits for PID to exit (TERM, then KILL, past the deadline); sets RC.
reap() {
    local pid=$1
    now_ms
    local end=$((NOW_MS + $2 * 1000)) signalled=""
    while kill -0 "$pid" 2>/dev/null; do
        now_ms
        if ((NOW_MS > end)); then
            if [[ -z $signalled ]]; then
                log "  ${LIVE[$pid]} did not exit within $2 s: sending SIGTERM"
                kill -TERM "$pid" 2>/dev/null || true
                signalled=TERM
                end=$((NOW_MS + 3000))
            else
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        sleep 0.02
    done
    RC=0
    wait "$pid" || RC=$?
    unset "LIVE[$pid]"
}

# run_clients PREFIX: the 4 clients in parallel against $FRONTEND; sets CLIENTS_OK.
# TERMINATE over $CONTROL; wait for the broker $1 (log $WORK/$2.log); SIGTERM the workers (pids
# after the 4th argument, logs $WORK/$3<n>.log, named $4<n>). Sets STOP_BROKER_RC and
# STOP_WORKERS_OK (workers that exited 0).
stop_topology() {
    local broker_pid=$1 broker_log=$2 worker_log=$3 worker_name=$4
    shift 4
    local pids=("$@") w
    "${WRAP[@]}" "$BIN/ctl" "$CONTROL" TERMINATE 5000 | sed 's/^/   /' || log "   [FAIL] no reply to TERMINATE"
    reap "$broker_pid" "$STOP_DEADLINE_S"
    STOP_BROKER_RC=$RC
    log "   $(grep -m1 '^broker: zmq_proxy_stream returned' "$WORK/$broker_log.log" || echo 'broker: no result line') -> exit $STOP_BROKER_RC"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    STOP_WORKERS_OK=0
    STOP_SHARES=()
    for ((w = 1; w <= ${#pids[@]}; w++)); do
        reap "${pids[w - 1]}" "$STOP_DEADLINE_S"
        ((RC == 0)) && STOP_WORKERS_OK=$((STOP_WORKERS_OK + 1))
        local line
        line=$(grep -m1 ': stopped ' "$WORK/$worker_log$w.log" || echo "worker $worker_name$w: no summary line")
        log "   $line -> exit $RC"
        # The sessions it served: its CURVE handshakes that succeeded, one per client paired
        # with it.
        STOP_SHARES+=("$worker_name$w=$(sed -n 's/.*, \([0-9]*\) sessions,.*/\1/p' <<<"$line")")
    done
}

run_clients() {
    local prefix=$1 c pids=()
    for ((c = 1; c <= CLIENTS; c++)); do
        start "$prefix$c" "$BIN/client" --frontend "$FRONTEND" --server-key "$SERVER_PUBLIC" \
            --id "$c" --requests "$REQUESTS" --deadline "$CLIENT_DEADLINE_S"
        pids+=("$STARTED_PID")
    done
    CLIENTS_OK=0
    for ((c = 1; c <= CLIENTS; c++)); do
        reap "${pids[c - 1]}" $((CLIENT_DEADLINE_S + 5))
        SUMMARY=$(grep -m1 "^client $c: " "$WORK/$prefix$c.log" || echo "client $c: no summary line")
        if ((RC == 0)) && [[ $SUMMARY == "client $c: $REQUESTS/$REQUESTS replies ok,"* ]]; then
            CLIENTS_OK=$((CLIENTS_OK + 1))
            log "   [ok]   $SUMMARY"
        else
            log "   [FAIL] $SUMMARY (exit $RC)"
        fi
    done
}

cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR = /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
[[ $REQUESTS =~ ^[1-9][0-9]*$ ]] || fail "DEMO_REQUESTS must be a positive number, not '$REQUESTS'"
LIBDIR="$TARGET_DIR/release"
BIN="$ROOT/examples-c/build"

log "== streamq-proxy demo: CURVE end to end through zmq_proxy_stream =="
log "-- system packages (libzmq3-dev, pkg-config, cc, make)"
bash "$ROOT/scripts/setup-deps.sh" || fail "could not install the system packages"
log "-- cargo build --release"
cargo build --release || fail "cargo build --release failed"
log "-- make -C examples-c (LIBDIR=$LIBDIR)"
make --no-print-directory -C examples-c LIBDIR="$LIBDIR" >"$WORK/make.log" 2>&1 ||
    { cat "$WORK/make.log"; fail "building the C examples failed"; }
log "   built into examples-c/build/"

# The key pair stays in shell variables: the secret is never written to disk.
KEYS=$("${WRAP[@]}" "$BIN/keygen") || fail "keygen failed"
SERVER_PUBLIC=$(sed -n 's/^public: //p' <<<"$KEYS")
SERVER_SECRET=$(sed -n 's/^secret: //p' <<<"$KEYS")
[[ ${#SERVER_PUBLIC} -eq 40 && ${#SERVER_SECRET} -eq 40 ]] || fail "keygen printed no key pair"
log "-- server key pair generated: public $SERVER_PUBLIC (the broker gets no key)"

# The OS picks free ports (port *); the broker prints what it bound once it listens.
start broker "$BIN/broker" 'tcp://127.0.0.1:*' 'tcp://127.0.0.1:*' 'tcp://127.0.0.1:*'
BROKER_PID=$STARTED_PID
wait_for_line broker "$BROKER_PID" '^broker: listening ' "$STARTUP_DEADLINE_S"
LINE=$(grep -m1 '^broker: listening ' "$WORK/broker.log")
endpoint_of() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<"$LINE"; }
FRONTEND=$(endpoint_of frontend)
BACKEND=$(endpoint_of backend)
CONTROL=$(endpoint_of control)
[[ -n $FRONTEND && -n $BACKEND && -n $CONTROL ]] || fail "cannot parse: $LINE"
log "-- broker (pid $BROKER_PID): frontend $FRONTEND, backend $BACKEND, control $CONTROL"

WORKER_PIDS=()
for ((w = 1; w <= WORKERS; w++)); do
    # The secret key goes to the workers only, through their environment, never on a
    # command line (ps shows those).
    # Worker w connects from 127.0.0.(w+1) (any 127.x address is this host's loopback).
    STREAMQ_SERVER_SECRET="$SERVER_SECRET" start "worker$w" "$BIN/worker" \
        --backend "tcp://127.0.0.$((w + 1)):0;${BACKEND#tcp://}" \
        --connections "$SLOTS_PER_WORKER" --name "w$w"
    WORKER_PIDS+=("$STARTED_PID")
done
for ((w = 1; w <= WORKERS; w++)); do
    wait_for_line "worker$w" "${WORKER_PIDS[w - 1]}" ': ready, ' "$STARTUP_DEADLINE_S"
    log "   $(grep -m1 ': ready, ' "$WORK/worker$w.log")"
done

log "-- $CLIENTS clients in parallel, $REQUESTS requests each (sizes 0 B..256 KiB, some multipart)"
run_clients client
CLIENTS_OK_IN=$CLIENTS_OK

log "-- STATISTICS (a message is one relayed chunk; bytes are ZMTP bytes, encrypted)"
STATS_OK=0
if "${WRAP[@]}" "$BIN/ctl" "$CONTROL" STATISTICS 5000 >"$WORK/stats.txt" 2>&1; then
    sed 's/^/   /' "$WORK/stats.txt"
    # Traffic both ways: bytes in and out on both sides.
    if awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] ~ /^bytes_/ && kv[2] + 0 == 0) bad = 1 } }
            END { exit bad }' "$WORK/stats.txt"; then
        STATS_OK=1
    else
        log "   [FAIL] a byte counter is zero"
    fi
else
    log "   [FAIL] no STATISTICS reply: $(cat "$WORK/stats.txt")"
fi

log "-- TERMINATE, stopping workers (SIGTERM)"
stop_topology "$BROKER_PID" broker worker w "${WORKER_PIDS[@]}"
BROKER_RC=$STOP_BROKER_RC
WORKERS_OK=$STOP_WORKERS_OK
SHARES_IN="${STOP_SHARES[*]}"

log ""
log "== dial-out: the broker connects to bound workers, one connection per client; access log"
DIAL_WORKER_PIDS=()
WORKER_ENDPOINTS=()
for ((w = 1; w <= WORKERS; w++)); do
    STREAMQ_SERVER_SECRET="$SERVER_SECRET" start "dworker$w" "$BIN/worker" \
        --bind 'tcp://127.0.0.1:*' --name "d$w"
    DIAL_WORKER_PIDS+=("$STARTED_PID")
done
for ((w = 1; w <= WORKERS; w++)); do
    wait_for_line "dworker$w" "${DIAL_WORKER_PIDS[w - 1]}" ': ready, bound to ' "$STARTUP_DEADLINE_S"
    WORKER_ENDPOINTS+=("$(sed -n 's/^worker [^ ]*: ready, bound to //p' "$WORK/dworker$w.log" | head -n1)")
    log "   $(grep -m1 ': ready, bound to ' "$WORK/dworker$w.log")"
done

# The backend is not bound ("-"): the proxy connects it to the workers itself.
DIAL_ARGS=()
for ep in "${WORKER_ENDPOINTS[@]}"; do DIAL_ARGS+=(--worker-endpoint "$ep"); done
start dbroker "$BIN/broker" "${DIAL_ARGS[@]}" --events 'tcp://127.0.0.1:*' \
    'tcp://127.0.0.1:*' - 'tcp://127.0.0.1:*'
DIAL_BROKER_PID=$STARTED_PID
wait_for_line dbroker "$DIAL_BROKER_PID" '^broker: listening ' "$STARTUP_DEADLINE_S"
LINE=$(grep -m1 '^broker: listening ' "$WORK/dbroker.log")
FRONTEND=$(endpoint_of frontend)
CONTROL=$(endpoint_of control)
EVENTS=$(endpoint_of events)
[[ -n $FRONTEND && -n $CONTROL && -n $EVENTS && $(endpoint_of backend) == dial-out ]] ||
    fail "cannot parse: $LINE"
log "-- broker (pid $DIAL_BROKER_PID): frontend $FRONTEND, no backend, dials ${WORKER_ENDPOINTS[*]}"
log "   control $CONTROL, events (PUB) $EVENTS"

# One OPEN and one CLOSE per client: the access log exits by itself after them. Events
# published before its subscription is connected are not seen (PUB/SUB): wait for that first.
start access_log "$BIN/access_log" --count $((2 * CLIENTS)) "$EVENTS"
ACCESS_LOG_PID=$STARTED_PID
wait_for_line access_log "$ACCESS_LOG_PID" '^access_log: connected to ' "$STARTUP_DEADLINE_S"

log "-- $CLIENTS clients in parallel again, $REQUESTS requests each"
run_clients dclient
DIAL_CLIENTS_OK=$CLIENTS_OK

log "-- access log (examples-c/access_log $EVENTS)"
reap "$ACCESS_LOG_PID" "$STOP_DEADLINE_S"
ACCESS_LOG_RC=$RC
grep -v '^access_log: ' "$WORK/access_log.log" | sed 's/^/   /' || true
OPENS=$(grep -cE '^[0-9TZ:-]+ OPEN .* mech=CURVE$' "$WORK/access_log.log" || true)
CLOSES=$(grep -cE '^[0-9TZ:-]+ CLOSE .* mech=CURVE .* reason=client-closed$' "$WORK/access_log.log" || true)
ACCESS_OK=0
if ((ACCESS_LOG_RC == 0 && OPENS == CLIENTS && CLOSES == CLIENTS)); then
    ACCESS_OK=1
else
    log "   [FAIL] expected $CLIENTS OPEN and $CLIENTS CLOSE (client-closed) lines of CURVE sessions," \
        "got $OPENS and $CLOSES (access_log exit $ACCESS_LOG_RC)"
fi

log "-- TERMINATE, stopping workers (SIGTERM)"
stop_topology "$DIAL_BROKER_PID" dbroker dworker d "${DIAL_WORKER_PIDS[@]}"
DIAL_BROKER_RC=$STOP_BROKER_RC
DIAL_WORKERS_OK=$STOP_WORKERS_OK
SHARES_OUT="${STOP_SHARES[*]}"

log ""
log "== summary, dial-in: clients $CLIENTS_OK_IN/$CLIENTS ok, statistics $([[ $STATS_OK == 1 ]] && echo ok || echo FAIL)," \
    "broker exit $BROKER_RC, workers $WORKERS_OK/$WORKERS stopped cleanly, sessions per worker $SHARES_IN"
log "== summary, dial-out: clients $DIAL_CLIENTS_OK/$CLIENTS ok, access log $([[ $ACCESS_OK == 1 ]] && echo ok || echo FAIL)," \
    "broker exit $DIAL_BROKER_RC, workers $DIAL_WORKERS_OK/$WORKERS stopped cleanly, sessions per worker $SHARES_OUT"
if ((CLIENTS_OK_IN == CLIENTS && BROKER_RC == 0 && STATS_OK == 1 && WORKERS_OK == WORKERS)) &&
    ((DIAL_CLIENTS_OK == CLIENTS && ACCESS_OK == 1 && DIAL_BROKER_RC == 0 && DIAL_WORKERS_OK == WORKERS)); then
    log "== PASS"
    exit 0
fi
fail "see above"
