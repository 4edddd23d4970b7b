#!/bin/sh
# Builds a component from an upstream source tree (a git commit or a directory) with its own
# build system, inside a throwaway build rootfs of the stack's suite (criu-matrix runs it, see
# harness/src/build/). `src:DIR[@REV]` in `--with COMPONENT=src:DIR[@REV]`.
#
# /build/env.sh sets COMPONENT, DESCRIBE (git describe, or empty) and OUT. The source is
# /build/src (unpacked from /build/src.tar when that exists); patches are /build/patches/*, applied
# in order with -p1. Output: $OUT/tree/ (the built program at the path Debian installs it),
# $OUT/version.txt, $OUT/build.log. The build dependencies are named here, per component, from
# the stack's suite (a suite without the component's own package has no build-dep to ask for).
set -eu
. /build/env.sh
mkdir -p "$OUT/tree"
exec >>"$OUT/build.log" 2>&1
set -x
cd /build
# A step that fails because of the source itself (a patch, the compiler) says so by its exit code:
# the harness remembers such a source as one that does not build (bisect skips it).
source_step() { "$@" || exit "$DOES_NOT_BUILD"; }
if [ -f src.tar ]; then
  rm -rf src && mkdir src && tar -C src -xf src.tar && rm -f src.tar
fi
for p in /build/patches/*; do
  [ -f "$p" ] || continue
  source_step patch -d src -p1 --forward --batch -i "$p"
done
export DEBIAN_FRONTEND=noninteractive
apt_opts="-o Acquire::Check-Valid-Until=false -o APT::Get::Assume-Yes=true"
apt-get $apt_opts update
install() { apt-get $apt_opts install --no-install-recommends "$@"; }
# Packages a suite may lack (older ones): installed when it has them.
maybe() { for p in "$@"; do apt-cache show "$p" >/dev/null 2>&1 && install "$p" || true; done; }
jobs=$(nproc)

case "$COMPONENT" in
criu)
  install build-essential pkg-config python3 python3-protobuf libprotobuf-dev libprotobuf-c-dev \
    protobuf-c-compiler protobuf-compiler libnl-3-dev libnet1-dev libcap-dev libbsd-dev uuid-dev
  maybe libnftables-dev libgnutls28-dev libaio-dev libdrm-dev
  # CRIU's Makefile names its version from git when it can; the tree here has no .git.
  source_step make -C src -j"$jobs" criu
  mkdir -p "$OUT/tree/usr/sbin"
  cp src/criu/criu "$OUT/tree/usr/sbin/criu"
  "$OUT/tree/usr/sbin/criu" --version | head -n 1 >"$OUT/version.txt"
  ;;
crun)
  install build-essential pkg-config automake autoconf libtool gperf python3 libcap-dev libseccomp-dev \
    libsystemd-dev
  maybe libyajl-dev libjson-c-dev go-md2man libprotobuf-c-dev
  if apt-cache show libcriu-dev >/dev/null 2>&1; then
    install libcriu-dev
  else
    mirror=$(sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list | head -n 1)
    printf 'deb %s trixie main\n' "$mirror" >/etc/apt/sources.list.d/criu-matrix-libcriu.list
    apt-get $apt_opts update
    rm -rf libcriu-debs && mkdir libcriu-debs
    (cd libcriu-debs && apt-get $apt_opts download libcriu2/trixie libcriu-dev/trixie)
    dpkg --force-depends --force-breaks --install libcriu-debs/*.deb
    mkdir -p "$OUT/tree/usr/local/lib"
    cp -P /usr/lib/x86_64-linux-gnu/libcriu.so.2* "$OUT/tree/usr/local/lib/"
  fi
  cd src
  # Without .git the build needs the version header it would make from git.
  [ -d .git ] || [ -f git-version.h ] || printf '#define GIT_VERSION "%s"\n' "${DESCRIBE:-unknown}" >git-version.h
  [ -x configure ] || source_step ./autogen.sh
  source_step ./configure --prefix=/usr
  source_step make -j"$jobs" crun
  cd ..
  mkdir -p "$OUT/tree/usr/bin"
  cp src/crun "$OUT/tree/usr/bin/crun"
  "$OUT/tree/usr/bin/crun" --version >crun-version.txt
  source_step grep -q '+CRIU' crun-version.txt
  head -n 1 crun-version.txt >"$OUT/version.txt"
  ;;
conmon)
  install build-essential pkg-config libglib2.0-dev libseccomp-dev libsystemd-dev
  source_step make -C src -j"$jobs" bin/conmon
  mkdir -p "$OUT/tree/usr/bin"
  cp src/bin/conmon "$OUT/tree/usr/bin/conmon"
  "$OUT/tree/usr/bin/conmon" --version | head -n 1 >"$OUT/version.txt"
  ;;
runc)
  install build-essential pkg-config golang-go libseccomp-dev git
  export GOPATH=/build/go GOCACHE=/build/go-cache GOFLAGS=-mod=vendor GOTOOLCHAIN=local
  source_step make -C src runc COMMIT="${DESCRIBE:-unknown}"
  mkdir -p "$OUT/tree/usr/sbin"
  cp src/runc "$OUT/tree/usr/sbin/runc"
  "$OUT/tree/usr/sbin/runc" --version | head -n 1 >"$OUT/version.txt"
  ;;
*)
  echo "no upstream build known for $COMPONENT"
  exit 1
  ;;
esac
