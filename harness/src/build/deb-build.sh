#!/bin/sh
# Builds Debian's source package of a component from another suite (or the stack's own) for the
# stack's suite, inside a throwaway build rootfs of the stack's suite (criu-matrix runs it, see
# harness/src/build/). `deb:SUITE` in `--with COMPONENT=deb:SUITE`.
#
# /build/env.sh sets: COMPONENT, SOURCE_PACKAGE, SOURCE_VERSION, SOURCE_SUITE, BINARY_PACKAGES,
# and OUT (the output directory). Patches are /build/patches/*, applied in order with -p1.
# Output: $OUT/tree/ (the files of the built binary packages named in BINARY_PACKAGES, at their
# paths, docs left out), $OUT/version.txt, $OUT/build.log.
#
# Build dependencies come from the stack's suite; a dependency that suite cannot satisfy (a
# version too old) is taken from SOURCE_SUITE, by name only, and the build refuses to start
# while any is unmet (dpkg-checkbuilddeps).
#
# crun: its checkpoint/restore support needs libcriu. Where the stack's suite has no libcriu
# (bookworm, bullseye), trixie's libcriu2 and libcriu-dev are registered in the build rootfs only
# (they Depend on and Break criu versions that do not matter here: libcriu is only the client of
# CRIU's RPC, the stack's own criu does the checkpoints), and libcriu.so.2 goes into the tree under
# /usr/local/lib. A crun without +CRIU is refused: that is the only reason for a crun build.
set -eu
. /build/env.sh
mkdir -p "$OUT/tree"
exec >"$OUT/build.log" 2>&1
set -x
cd /build
# A step that fails because of the source itself (a patch, the compiler) says so by its exit code:
# the harness remembers such a source as one that does not build (bisect skips it).
source_step() { "$@" || exit "$DOES_NOT_BUILD"; }

rm -f /etc/apt/sources.list.d/criu-matrix* /etc/apt/preferences.d/criu-matrix*
suite=$(sed -n 's/^deb [^ ]* \([^ ]*\) .*/\1/p' /etc/apt/sources.list | head -n 1)
mirror=$(sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list | head -n 1)
{
  printf 'deb-src %s %s main\n' "$mirror" "$SOURCE_SUITE"
  [ "$SOURCE_SUITE" = "$suite" ] || printf 'deb %s %s main\n' "$mirror" "$SOURCE_SUITE"
} >/etc/apt/sources.list.d/criu-matrix.list
# Only what is asked for by name comes from another suite.
printf 'Package: *\nPin: release n=%s\nPin-Priority: 100\n' "$SOURCE_SUITE" >/etc/apt/preferences.d/criu-matrix
[ "$SOURCE_SUITE" = "$suite" ] && rm -f /etc/apt/preferences.d/criu-matrix
export DEBIAN_FRONTEND=noninteractive
apt_opts="-o Acquire::Check-Valid-Until=false -o APT::Get::Assume-Yes=true"
apt-get $apt_opts update

rm -rf src dl && mkdir src dl && cd src
spec="$SOURCE_PACKAGE=$SOURCE_VERSION"
if ! apt-get $apt_opts source --only-source "$spec"; then
  # A partial mirror may lack the Debian part of the source package (its .dsc or
  # .debian.tar.xz). Its upstream tarball, checked against the archive's hash, is then built
  # with the upstream build (src-build.sh), and the version says so.
  cd /build/dl
  apt-get $apt_opts source --print-uris --only-source "$spec" >uris.txt
  orig=
  while read -r uri name _size hash; do
    case "$name" in
    *.orig.tar.*)
      /usr/lib/apt/apt-helper download-file "$(echo "$uri" | tr -d "'")" "$name" "$hash" && orig=$name
      ;;
    esac
  done <uris.txt
  [ -n "$orig" ] || { echo "neither the source package nor its upstream tarball can be fetched"; exit 1; }
  missing=$(sed -n "s/^'[^']*' \([^ ]*\) .*/\1/p" uris.txt | grep -v -x -F "$orig" | tr '\n' ' ')
  cd /build && rm -rf src && mkdir src
  tar -C src --strip-components=1 -xf "dl/$orig"
  sh /build/src-build.sh
  echo "$(cat "$OUT/version.txt") (the upstream tarball $orig of Debian's $SOURCE_VERSION from $SOURCE_SUITE, built with its own build: this mirror lacks ${missing% })" >"$OUT/version.txt"
  exit 0
fi
dir=$(find . -maxdepth 1 -mindepth 1 -type d | head -n 1)
[ -n "$dir" ]
for p in /build/patches/*; do
  [ -f "$p" ] || continue
  source_step patch -d "$dir" -p1 --forward --batch -i "$p"
done

# crun without a libcriu in the stack's suite: trixie's, registered last (see above).
libcriu_local=
if [ "$COMPONENT" = crun ] && ! apt-cache show libcriu-dev >/dev/null 2>&1; then
  libcriu_local=1
fi

# Build dependencies: the stack's suite first; what stays unmet, from the source suite by name.
unmet() { (cd "$dir" && dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p'); }
names() {
  for n in $(echo "$1" | sed 's/([^)]*)//g; s/\[[^]]*\]//g; s/<[^>]*>//g; s/|/ /g'); do
    [ -n "$libcriu_local" ] && [ "$n" = libcriu-dev ] && continue
    echo "$n"
  done
}
if [ -n "$libcriu_local" ] || ! apt-get $apt_opts build-dep --no-install-recommends "./$dir"; then
  for dep in $(names "$(unmet)"); do
    apt-get $apt_opts install --no-install-recommends "$dep" || true
  done
  for dep in $(names "$(unmet)"); do
    apt-get $apt_opts install --no-install-recommends "$dep/$SOURCE_SUITE"
  done
fi
if [ -n "$libcriu_local" ]; then
  rm -rf /build/libcriu-debs && mkdir /build/libcriu-debs
  apt-get $apt_opts install --no-install-recommends libprotobuf-c-dev pkg-config
  printf 'deb %s trixie main\n' "$mirror" >/etc/apt/sources.list.d/criu-matrix-libcriu.list
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >/etc/apt/preferences.d/criu-matrix-libcriu
  apt-get $apt_opts update
  (cd /build/libcriu-debs && apt-get $apt_opts download libcriu2/trixie libcriu-dev/trixie)
  # Registered only: their Depends and Breaks concern criu packages this rootfs does not run.
  dpkg --force-depends --force-breaks --install /build/libcriu-debs/*.deb
fi
left=$(unmet)
[ -z "$left" ] || { echo "unmet build dependencies: $left"; exit 1; }

version="$SOURCE_VERSION+criumatrix1"
{
  echo "$SOURCE_PACKAGE ($version) $suite; urgency=medium"
  echo
  echo "  * Built by criu-matrix for $suite from $SOURCE_SUITE's $SOURCE_VERSION."
  echo
  echo " -- criu-matrix <criu-matrix@localhost>  $(date -R)"
  echo
  cat "$dir/debian/changelog"
} >changelog.new
mv changelog.new "$dir/debian/changelog"
(cd "$dir" && DEB_BUILD_OPTIONS="nocheck nodoc" DEB_BUILD_PROFILES="nocheck nodoc" dpkg-buildpackage -b -uc -us) ||
  exit "$DOES_NOT_BUILD"

for package in $BINARY_PACKAGES; do
  for deb in "${package}"_*.deb; do
    [ -f "$deb" ] || continue
    dpkg-deb -x "$deb" "$OUT/tree"
  done
done
rm -rf "$OUT/tree/usr/share/doc" "$OUT/tree/usr/share/man" "$OUT/tree/usr/share/lintian"
[ -n "$(find "$OUT/tree" -type f | head -n 1)" ]

if [ -n "$libcriu_local" ]; then
  mkdir -p "$OUT/tree/usr/local/lib"
  rm -rf libcriu && dpkg-deb -x /build/libcriu-debs/libcriu2_*.deb libcriu
  cp -P libcriu/usr/lib/*/libcriu.so.2* "$OUT/tree/usr/local/lib/"
fi
if [ "$COMPONENT" = crun ]; then
  "$OUT/tree/usr/bin/crun" --version >crun-version.txt
  source_step grep -q '+CRIU' crun-version.txt
fi
echo "$SOURCE_PACKAGE $version (Debian's $SOURCE_VERSION from $SOURCE_SUITE, built for $suite)" >"$OUT/version.txt"
