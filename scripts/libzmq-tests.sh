#!/usr/bin/env bash
# scripts/libzmq-tests.sh: zmq_proxy_stream tested alongside libzmq's own tests.
#
#   bash scripts/libzmq-tests.sh [LIBZMQ_SOURCE_DIR]
#
# Builds tests/libzmq/test_proxy_stream.cpp (Unity and libzmq's tests/testutil helpers) next
# to two of libzmq's own tests, test_proxy (zmq_proxy_steerable with its control socket;
# libzmq 4.3 has no separate test_proxy_steerable) and test_security_curve, from the source
# of the system libzmq's version, all three linked with the system libzmq (one libzmq per
# process: no in-tree copy is built), test_proxy_stream also with an installed
# libzmq_proxy_stream; then runs the three.
#
# LIBZMQ_SOURCE_DIR: a libzmq source tree of the system libzmq's version. Without it, the
# Debian source package of the installed libzmq is fetched (apt-get source), after adding a
# deb-src entry for this system's suite when there is none (needs root or sudo). Nothing of
# libzmq is committed: it lives in the work directory.
#
# Environment:
#   STREAMQ_PREFIX  an installed streamq-proxy to test (default: scripts/install.sh installs
#                   this tree into the work directory)
#   CARGO_TARGET_DIR  the work directory is $CARGO_TARGET_DIR/libzmq-tests (default
#                   target/libzmq-tests)
#
# Exit status 0 when the three tests pass. Needs cmake (for libzmq's platform.hpp), g++,
# libsodium-dev (libzmq3-dev brings it) and dpkg-dev (installed when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET = /* ]] || TARGET=$ROOT/$TARGET
WORK=$TARGET/libzmq-tests
mkdir -p "$WORK"

die() {
    echo "libzmq-tests: $*" >&2
    exit 1
}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

LIBZMQ_VERSION=$(pkg-config --modversion libzmq) || die "no libzmq (bash scripts/setup-deps.sh)"
echo "== system libzmq $LIBZMQ_VERSION"

# The libzmq source: given, or Debian's source package of the installed libzmq.
if [[ $# -ge 1 ]]; then
    SRC=$(cd "$1" && pwd)
else
    SRC=$WORK/libzmq-$LIBZMQ_VERSION
    if [[ ! -f $SRC/tests/testutil.cpp ]]; then
        command -v dpkg-source >/dev/null 2>&1 || {
            $sudo apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dpkg-dev >/dev/null
        }
        package=$(dpkg-query -W -f '${source:Package}' libzmq5)
        version=$(dpkg-query -W -f '${source:Version}' libzmq5)
        if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            # shellcheck disable=SC1091
            . /etc/os-release
            case $ID in
            debian) uri=http://deb.debian.org/debian components=main
                keyring=/usr/share/keyrings/debian-archive-keyring.gpg ;;
            ubuntu) uri=http://archive.ubuntu.com/ubuntu components="main universe"
                keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg ;;
            *) die "no deb-src entry and not Debian or Ubuntu: give LIBZMQ_SOURCE_DIR" ;;
            esac
            echo "== adding a deb-src entry for $ID $VERSION_CODENAME (for apt-get source)"
            printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: %s\n' \
                "$uri" "$VERSION_CODENAME" "$components" "$keyring" |
                $sudo tee /etc/apt/sources.list.d/streamq-deb-src.sources >/dev/null
        fi
        $sudo apt-get update -qq
        echo "== apt-get source $package=$version"
        download=$WORK/download
        rm -rf "$download" "$SRC"
        mkdir -p "$download"
        (cd "$download" && apt-get source -qq --download-only "$package=$version" 2>/dev/null)
        dpkg-source -x "$download"/*.dsc "$SRC" >/dev/null
    fi
fi
[[ -f $SRC/tests/testutil.cpp && -f $SRC/external/unity/unity.c ]] ||
    die "$SRC is not a libzmq source tree (no tests/testutil.cpp, external/unity/)"
src_version=$(awk '/#define ZMQ_VERSION_(MAJOR|MINOR|PATCH) /{printf "%s%s", sep, $3; sep="."}' \
    "$SRC/include/zmq.h")
[[ $src_version == "$LIBZMQ_VERSION" ]] ||
    die "the source is libzmq $src_version, the system's $LIBZMQ_VERSION: the tests must match"

# platform.hpp, which libzmq's test helpers include, from libzmq's own CMake configuration
# (nothing of libzmq itself is built).
CFG=$WORK/platform
if [[ ! -f $CFG/platform.hpp ]]; then
    echo "== configuring libzmq for its platform.hpp"
    cmake -S "$SRC" -B "$CFG" -DWITH_LIBSODIUM=ON -DENABLE_DRAFTS=OFF -DBUILD_TESTS=OFF \
        -DWITH_DOCS=OFF -DBUILD_SHARED=OFF -DBUILD_STATIC=OFF >"$WORK/cmake.log" 2>&1 ||
        { cat "$WORK/cmake.log"; die "cmake could not configure libzmq"; }
fi

# The installed library under test.
if [[ -n ${STREAMQ_PREFIX:-} ]]; then
    PREFIX=$STREAMQ_PREFIX
else
    PREFIX=$WORK/prefix
    echo "== scripts/install.sh into $PREFIX"
    PREFIX=$PREFIX DESTDIR="" bash "$ROOT/scripts/install.sh" install 2>"$WORK/install.log" ||
        { cat "$WORK/install.log"; die "install failed"; }
fi
PC="$PREFIX/lib/pkgconfig"
[[ -f $PC/libzmq_proxy_stream.pc ]] || die "no libzmq_proxy_stream.pc in $PC"

echo "== building test_proxy_stream, test_proxy, test_security_curve (system libzmq)"
BUILD=$WORK/build
mkdir -p "$BUILD"
# libzmq's files as libzmq builds them; ours with -Wall -Wextra -Werror.
CXXFLAGS=(-std=c++11 -O1 -g -pthread -DZMQ_CUSTOM_PLATFORM_HPP -I"$CFG"
    -I"$SRC/include" -I"$SRC/tests" -I"$SRC/external/unity")
read -ra ZMQ_LIBS <<<"$(pkg-config --libs libzmq)"
helpers=()
for f in tests/testutil tests/testutil_unity tests/testutil_security tests/testutil_monitoring; do
    g++ "${CXXFLAGS[@]}" -c "$SRC/$f.cpp" -o "$BUILD/$(basename "$f").o" &
    helpers+=("$BUILD/$(basename "$f").o")
done
gcc -O1 -g -I"$SRC/external/unity" -c "$SRC/external/unity/unity.c" -o "$BUILD/unity.o" &
g++ -O1 -g -Wall -Wextra -Werror -c "$ROOT/tests/libzmq/libzmq_internals.cpp" -o "$BUILD/libzmq_internals.o" &
wait
helpers+=("$BUILD/unity.o")
read -ra PROXY_CFLAGS <<<"$(PKG_CONFIG_PATH=$PC pkg-config --cflags libzmq_proxy_stream)"
read -ra PROXY_LIBS <<<"$(PKG_CONFIG_PATH=$PC pkg-config --libs libzmq_proxy_stream)"
g++ "${CXXFLAGS[@]}" -Wall -Wextra -Werror "${PROXY_CFLAGS[@]}" "$ROOT/tests/libzmq/test_proxy_stream.cpp" \
    "${helpers[@]}" -o "$BUILD/test_proxy_stream" "${PROXY_LIBS[@]}" "${ZMQ_LIBS[@]}" \
    -Wl,-rpath,"$PREFIX/lib" &
g++ "${CXXFLAGS[@]}" "$SRC/tests/test_proxy.cpp" "${helpers[@]}" -o "$BUILD/test_proxy" \
    "${ZMQ_LIBS[@]}" &
g++ "${CXXFLAGS[@]}" "$SRC/tests/test_security_curve.cpp" "${helpers[@]}" \
    "$BUILD/libzmq_internals.o" -o "$BUILD/test_security_curve" "${ZMQ_LIBS[@]}" -lsodium &
for job in $(jobs -p); do wait "$job" || die "a test did not build"; done

# Ours runs once. libzmq's own two get a second run when the first fails, said out loud:
# test_security_curve once hung waiting for a monitor event on a loaded machine (libzmq's
# test, libzmq's 60 s alarm) and passed on every run before and after.
passed=0 failed=0
for t in test_proxy_stream test_proxy test_security_curve; do
    # Each binary must use the system's libzmq, and only one.
    ldd_out=$(ldd "$BUILD/$t")
    [[ $(grep -c 'libzmq\.so' <<<"$ldd_out") == 1 ]] || die "$t does not link exactly one libzmq"
    runs=2
    [[ $t == test_proxy_stream ]] && runs=1
    for ((run = 1; run <= runs; run++)); do
        if ((run == 1)); then echo "== $t"; fi
        if (cd "$BUILD" && timeout 300 "./$t") >"$BUILD/$t.log" 2>&1; then
            passed=$((passed + 1))
            tail -n 3 "$BUILD/$t.log" | sed 's/^/   /'
            break
        fi
        grep -v '^Still waiting for monitor event' "$BUILD/$t.log" | tail -n 40
        if ((run < runs)); then
            echo "== $t (libzmq's own test) failed: running it once more"
        else
            failed=$((failed + 1))
        fi
    done
done
echo "libzmq-tests: $passed passed, $failed failed"
((failed == 0))
