#!/bin/sh
# Rebuilds the suite's crun with CRIU support, inside a build rootfs of that suite (criu-matrix
# runs it; see stack/variant.rs). Debian's crun in bookworm is built without CRIU (no +CRIU in
# `crun --version`) because bookworm has no libcriu package, so:
#   1. libcriu comes from trixie's binary packages (libcriu2, libcriu-dev 4.1.1), which need
#      nothing newer than bookworm has (libc6 >= 2.14, libprotobuf-c1 >= 1.0.1). libcriu is only
#      the client of CRIU's RPC: the stack's own criu (3.17.1) does every checkpoint and restore.
#      (bookworm's criu source cannot be rebuilt for it from every mirror: some lack its orig
#      tarball.)
#   2. the suite's crun source package is built as Debian builds it (its rules, patches and
#      configure flags: dpkg-buildpackage) with libcriu installed, so configure enables
#      checkpoint/restore; the package version gets a `+criu1` suffix.
# $1: the output directory: the crun binary, libcriu.so.2*, versions.txt, build.log.
set -eu
out=$1
mkdir -p "$out" /build
cd /build
exec >"$out/build.log" 2>&1
set -x

rm -f /etc/apt/sources.list.d/criu-matrix* /etc/apt/preferences.d/criu-matrix*
suite=$(sed -n 's/^deb [^ ]* \([^ ]*\) .*/\1/p' /etc/apt/sources.list | head -n 1)
mirror=$(sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list | head -n 1)
printf 'deb-src %s %s main\ndeb %s trixie main\n' "$mirror" "$suite" "$mirror" \
  >/etc/apt/sources.list.d/criu-matrix.list
# Only what is asked for by name comes from trixie.
printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >/etc/apt/preferences.d/criu-matrix
# A snapshot mirror may serve a Release file past its validity; signatures are still checked.
apt-get -o Acquire::Check-Valid-Until=false update
export DEBIAN_FRONTEND=noninteractive
apt-get build-dep -y --no-install-recommends crun
apt-get install -y --no-install-recommends libprotobuf-c-dev pkg-config
rm -rf debs && mkdir debs
(cd debs && apt-get download libcriu2/trixie libcriu-dev/trixie)
# Registered with dpkg (dpkg-shlibdeps needs an owner for libcriu.so.2), but without trixie's
# criu that libcriu2 depends on and that breaks bookworm's: this rootfs only builds.
dpkg --force-depends --force-breaks --install debs/*.deb

rm -rf crun-* crun_*
apt-get source crun
crun_src=$(find . -maxdepth 1 -type d -name 'crun-*' | head -n 1)
debian_version=$(cd "$crun_src" && dpkg-parsechangelog -S Version)
version="$debian_version+criu1"
{
  echo "crun ($version) $suite; urgency=medium"
  echo
  echo "  * Rebuilt by criu-matrix with libcriu (trixie's libcriu-dev) for checkpoint/restore."
  echo
  echo " -- criu-matrix <criu-matrix@localhost>  $(date -R)"
  echo
  cat "$crun_src/debian/changelog"
} >changelog.new
mv changelog.new "$crun_src/debian/changelog"
(cd "$crun_src" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -b -uc -us)

rm -rf unpacked && dpkg-deb -x "crun_${version}_amd64.deb" unpacked
cp unpacked/usr/bin/crun "$out/crun"
rm -rf libcriu && dpkg-deb -x debs/libcriu2_*.deb libcriu
cp -P libcriu/usr/lib/*/libcriu.so.2* "$out/"
"$out/crun" --version >"$out/crun-version.txt"
# Refuse a build without checkpoint/restore: that is the only reason for it.
grep -q '+CRIU' "$out/crun-version.txt"
{
  echo "crun: $version (Debian's $debian_version source rebuilt with libcriu)"
  echo "libcriu: $(dpkg-query -W -f '${Version}' libcriu2) (trixie's libcriu2)"
  echo "crun --version: $(tr '\n' ' ' <"$out/crun-version.txt")"
} >"$out/versions.txt"
