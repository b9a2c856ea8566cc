#!/usr/bin/env bash
# scripts/install.sh: installs streamq-proxy the way a C library is installed.
#
#   bash scripts/install.sh [install|uninstall|list]
#
#   install (default)  cargo build --release, then copy into the prefix:
#     lib/libzmq_proxy_stream.so.X.Y.Z (SONAME libzmq_proxy_stream.so.X) and the links
#       libzmq_proxy_stream.so.X and libzmq_proxy_stream.so
#     lib/libzmq_proxy_stream.a
#     include/zmq_proxy_stream.h
#     lib/pkgconfig/libzmq_proxy_stream.pc            (Requires: libzmq)
#     lib/cmake/zmq_proxy_stream/*.cmake              (find_package(zmq_proxy_stream))
#     share/man/man{1,3,7}/...                        (generated from man/*.scd by scdoc)
#     bin/zmq-proxy-stream                            (the broker command)
#   uninstall          removes exactly the files `install` makes (and the package's own
#                      lib/cmake/zmq_proxy_stream directory); shared directories such as
#                      lib/pkgconfig stay
#   list               prints the paths `install` makes, one a line, DESTDIR included
#
# Environment:
#   PREFIX   where to install (default /usr/local)
#   BINDIR   where the command goes (default $PREFIX/bin)
#   LIBDIR   where the libraries go (default $PREFIX/lib)
#   MANDIR   where the man pages go (default $PREFIX/share/man)
#   DESTDIR  staging root for packagers: files go to $DESTDIR$PREFIX/..., while every path
#            written into them (pkg-config, CMake) is the final one, $PREFIX/...
#   STREAMQ_ARTIFACTS  a directory that already holds libzmq_proxy_stream.so,
#            libzmq_proxy_stream.a and zmq-proxy-stream: nothing is built (packagers, and tests/install.rs, which
#            runs inside `cargo test`)
#   STRIP    1 (default): installed binaries lose their debug information, which names the
#            build tree; 0 keeps it
#
# Needs: cargo (unless STREAMQ_ARTIFACTS), install, ln, strip (binutils), scdoc.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ACTION=${1:-install}
PREFIX=${PREFIX:-/usr/local}
PREFIX=${PREFIX%/}
LIBDIR=${LIBDIR:-$PREFIX/lib}
LIBDIR=${LIBDIR%/}
INCLUDEDIR=$PREFIX/include
BINDIR=${BINDIR:-$PREFIX/bin}
BINDIR=${BINDIR%/}
MANDIR=${MANDIR:-$PREFIX/share/man}
MANDIR=${MANDIR%/}
DESTDIR=${DESTDIR:-}
STRIP=${STRIP:-1}

die() {
    echo "install.sh: $*" >&2
    exit 2
}

case $PREFIX in /*) ;; *) die "PREFIX must be an absolute path, not '$PREFIX'" ;; esac
case $LIBDIR in /*) ;; *) die "LIBDIR must be an absolute path, not '$LIBDIR'" ;; esac
case $MANDIR in /*) ;; *) die "MANDIR must be an absolute path, not '$MANDIR'" ;; esac
case $BINDIR in /*) ;; *) die "BINDIR must be an absolute path, not '$BINDIR'" ;; esac

VERSION=$(sed -n 's/^version = "\([0-9][0-9.]*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n1)
[[ $VERSION =~ ^([0-9]+)\.[0-9]+\.[0-9]+$ ]] || die "no version in Cargo.toml"
MAJOR=${BASH_REMATCH[1]}
LIB=libzmq_proxy_stream
REAL=$LIB.so.$VERSION
SONAME=$LIB.so.$MAJOR
CMAKEDIR=$LIBDIR/cmake/zmq_proxy_stream

# The man pages' sources: man/NAME.SECTION.scd.
man_sources() {
    local src
    for src in "$ROOT"/man/*.scd; do
        [[ -e $src ]] && basename "$src" .scd
    done
}

# NAME.SECTION -> its installed path.
man_path() {
    echo "$MANDIR/man${1##*.}/$1"
}

# Every path `install` makes, without DESTDIR.
manifest() {
    local page
    while IFS= read -r page; do
        man_path "$page"
    done < <(man_sources)
    printf '%s\n' \
        "$LIBDIR/$REAL" "$LIBDIR/$SONAME" "$LIBDIR/$LIB.so" "$LIBDIR/$LIB.a" \
        "$INCLUDEDIR/zmq_proxy_stream.h" \
        "$LIBDIR/pkgconfig/$LIB.pc" \
        "$CMAKEDIR/zmq_proxy_stream-config.cmake" \
        "$CMAKEDIR/zmq_proxy_stream-config-version.cmake" \
        "$BINDIR/zmq-proxy-stream"
}

write_pc() {
    cat <<EOF
# pkg-config file of streamq-proxy's zmq_proxy_stream (written by scripts/install.sh)
prefix=$PREFIX
libdir=$LIBDIR
includedir=$INCLUDEDIR

Name: libzmq_proxy_stream
Description: zmq_proxy_stream: a ZMQ_STREAM proxy that relays ZMTP end to end, so CURVE runs between client and worker
Version: $VERSION
Requires: libzmq
Libs: -L\${libdir} -lzmq_proxy_stream
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
Cflags: -I\${includedir}
EOF
}

# The CMake package finds itself from where it is installed: no absolute path inside, so a
# DESTDIR tree can move.
write_cmake_config() {
    local include_rel
    include_rel=$(realpath -m --relative-to="$LIBDIR" "$INCLUDEDIR")
    cat <<EOF
# CMake package of streamq-proxy's zmq_proxy_stream (written by scripts/install.sh).
#
#   find_package(zmq_proxy_stream 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE zmq_proxy_stream::zmq_proxy_stream)
#
# Imported targets: zmq_proxy_stream::zmq_proxy_stream (the shared library) and
# zmq_proxy_stream::static (libzmq_proxy_stream.a). Both bring the system libzmq (found with
# pkg-config, as PkgConfig::ZMQ_PROXY_STREAM_LIBZMQ) and the include directory.
include(CMakeFindDependencyMacro)
find_dependency(PkgConfig)
pkg_check_modules(ZMQ_PROXY_STREAM_LIBZMQ QUIET IMPORTED_TARGET libzmq)
if(NOT ZMQ_PROXY_STREAM_LIBZMQ_FOUND)
  set(zmq_proxy_stream_FOUND FALSE)
  set(zmq_proxy_stream_NOT_FOUND_MESSAGE "zmq_proxy_stream needs libzmq (pkg-config libzmq)")
  return()
endif()

get_filename_component(_zmq_proxy_stream_libdir "\${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
get_filename_component(_zmq_proxy_stream_includedir
  "\${_zmq_proxy_stream_libdir}/$include_rel" ABSOLUTE)

if(NOT TARGET zmq_proxy_stream::zmq_proxy_stream)
  add_library(zmq_proxy_stream::zmq_proxy_stream SHARED IMPORTED)
  set_target_properties(zmq_proxy_stream::zmq_proxy_stream PROPERTIES
    IMPORTED_LOCATION "\${_zmq_proxy_stream_libdir}/$REAL"
    IMPORTED_SONAME "$SONAME"
    INTERFACE_INCLUDE_DIRECTORIES "\${_zmq_proxy_stream_includedir}"
    INTERFACE_LINK_LIBRARIES PkgConfig::ZMQ_PROXY_STREAM_LIBZMQ)
endif()
if(NOT TARGET zmq_proxy_stream::static)
  add_library(zmq_proxy_stream::static STATIC IMPORTED)
  set_target_properties(zmq_proxy_stream::static PROPERTIES
    IMPORTED_LOCATION "\${_zmq_proxy_stream_libdir}/$LIB.a"
    INTERFACE_INCLUDE_DIRECTORIES "\${_zmq_proxy_stream_includedir}"
    INTERFACE_LINK_LIBRARIES "PkgConfig::ZMQ_PROXY_STREAM_LIBZMQ;gcc_s;util;rt;pthread;m;dl;c")
endif()
unset(_zmq_proxy_stream_libdir)
unset(_zmq_proxy_stream_includedir)
EOF
}

write_cmake_version() {
    cat <<EOF
# Version check of the zmq_proxy_stream CMake package: compatible within one SONAME
# ($SONAME), so within major $MAJOR (and for 0.x, within that minor's successors).
set(PACKAGE_VERSION "$VERSION")
if(PACKAGE_FIND_VERSION_MAJOR STREQUAL "$MAJOR"
   AND NOT PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_VERSION VERSION_EQUAL PACKAGE_FIND_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
else()
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
endif()
EOF
}

artifacts() {
    if [[ -n ${STREAMQ_ARTIFACTS:-} ]]; then
        ARTIFACTS=$STREAMQ_ARTIFACTS
    else
        local target=${CARGO_TARGET_DIR:-$ROOT/target}
        [[ $target = /* ]] || target=$ROOT/$target
        echo "== cargo build --release" >&2
        (cd "$ROOT" && cargo build --release --locked) >&2
        ARTIFACTS=$target/release
    fi
    local f
    for f in "$LIB.so" "$LIB.a" zmq-proxy-stream; do
        [[ -f $ARTIFACTS/$f ]] || die "no $f in $ARTIFACTS"
    done
}

# install_file MODE SRC DEST: DEST under DESTDIR; binaries stripped of debug info.
install_file() {
    local mode=$1 src=$2 dest=$DESTDIR$3
    install -D -m "$mode" "$src" "$dest"
    if [[ $STRIP == 1 ]]; then
        case $dest in *.so.* | *.a | */zmq-proxy-stream) strip --strip-debug "$dest" ;; esac
    fi
}

do_install() {
    # Everything needed, before anything is installed.
    command -v scdoc >/dev/null 2>&1 || die "scdoc is needed for the man pages (apt-get install scdoc)"
    if [[ $STRIP == 1 ]]; then
        command -v strip >/dev/null 2>&1 || die "strip is needed (apt-get install binutils), or STRIP=0"
    fi
    artifacts
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/streamq-install.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    install_file 0755 "$ARTIFACTS/$LIB.so" "$LIBDIR/$REAL"
    ln -sfn "$REAL" "$DESTDIR$LIBDIR/$SONAME"
    ln -sfn "$SONAME" "$DESTDIR$LIBDIR/$LIB.so"
    install_file 0644 "$ARTIFACTS/$LIB.a" "$LIBDIR/$LIB.a"
    install_file 0755 "$ARTIFACTS/zmq-proxy-stream" "$BINDIR/zmq-proxy-stream"
    install_file 0644 "$ROOT/include/zmq_proxy_stream.h" "$INCLUDEDIR/zmq_proxy_stream.h"
    write_pc >"$tmp/$LIB.pc"
    install_file 0644 "$tmp/$LIB.pc" "$LIBDIR/pkgconfig/$LIB.pc"
    write_cmake_config >"$tmp/config.cmake"
    write_cmake_version >"$tmp/config-version.cmake"
    install_file 0644 "$tmp/config.cmake" "$CMAKEDIR/zmq_proxy_stream-config.cmake"
    install_file 0644 "$tmp/config-version.cmake" "$CMAKEDIR/zmq_proxy_stream-config-version.cmake"
    # The pages' date: the last commit's, so that the same sources give the same pages.
    if [[ -z ${SOURCE_DATE_EPOCH:-} ]] && git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct)
        export SOURCE_DATE_EPOCH
    fi
    local page
    while IFS= read -r page; do
        scdoc <"$ROOT/man/$page.scd" >"$tmp/$page"
        install_file 0644 "$tmp/$page" "$(man_path "$page")"
    done < <(man_sources)
    refresh_loader_cache
    echo "installed streamq-proxy $VERSION into ${DESTDIR}$PREFIX:" >&2
    manifest | sed "s|^|  $DESTDIR|" >&2
}

# After a change in a directory the dynamic loader caches (/usr/local/lib on Debian), the
# cache must learn the new SONAME: run ldconfig when installing there for real as root.
refresh_loader_cache() {
    if [[ -z $DESTDIR && $(id -u) == 0 ]] && command -v ldconfig >/dev/null 2>&1 &&
        grep -rqsx -- "$LIBDIR" /etc/ld.so.conf /etc/ld.so.conf.d/; then
        ldconfig
    fi
}

do_uninstall() {
    local path
    while IFS= read -r path; do
        rm -f -- "$DESTDIR$path"
    done < <(manifest)
    rmdir -- "$DESTDIR$CMAKEDIR" 2>/dev/null || true
    refresh_loader_cache
    echo "removed streamq-proxy $VERSION from ${DESTDIR}$PREFIX" >&2
}

case $ACTION in
install) do_install ;;
uninstall) do_uninstall ;;
list) manifest | sed "s|^|$DESTDIR|" ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
*) die "unknown action '$ACTION' (install, uninstall or list)" ;;
esac
