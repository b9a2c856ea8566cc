#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine with Rust lacks to build and test this project:
# libzmq3-dev (the system libzmq the library links), pkg-config, a C compiler and make; and
# for scripts/install.sh and its tests (tests/install.rs, tests/man_pages.rs): binutils
# (strip, readelf, nm), cmake, scdoc (the man pages' source format) and groff; and for
# examples-cpp/, a C++ compiler and cppzmq.
# Does nothing when they are present. Uses sudo when not run as root.
set -euo pipefail

need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists libzmq 2>/dev/null || need+=(libzmq3-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || need+=(make)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v scdoc >/dev/null 2>&1 || need+=(scdoc)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v c++ >/dev/null 2>&1 || need+=(g++)
[ -e /usr/include/zmq.hpp ] || need+=(cppzmq-dev)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "== installing: ${need[*]}"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${need[@]}"
fi
