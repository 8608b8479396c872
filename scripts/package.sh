#!/usr/bin/env bash
# Builds masq's Debian package with dpkg-deb (no debhelper, no cargo-deb: the package is
# a handful of files laid out here, and dpkg-deb and dpkg-shlibdeps come with every
# Debian that builds software).
#
#   scripts/package.sh [--bin-dir DIR] [--version VERSION] [--out DIR]
#
#   --bin-dir DIR      where masqd, masqadm and masq-bench are (default: target/release,
#                      built first with cargo)
#   --version VERSION  the package's version (default: the workspace's); one that is not
#                      packaging/debian/changelog's newest gets an entry of its own
#   --out DIR          where the .deb goes (default: target/debian)
#
# Prints the path of the package it wrote. The package installs:
#   /usr/sbin/masqd, /usr/sbin/masqadm, /usr/bin/masq-bench (stripped)
#   /lib/systemd/system/masqd.service
#   /etc/default/masqd, /etc/masq/rules (conffiles: an admin's edits survive upgrades)
#   the manual pages, bash/zsh/fish completions, copyright and changelog
# and its maintainer scripts create the `masq` user the unit runs masqd as.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=$REPO/packaging

die() {
    echo "package.sh: $*" >&2
    exit 1
}

bin_dir=
version=
out=$REPO/target/debian
while [ $# -gt 0 ]; do
    case $1 in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
        --version) version=${2:?--version needs a version}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (scripts/install-deps.sh installs it)"
done

if [ -z "$version" ]; then
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n 1)
    [ -n "$version" ] || die "no version in $REPO/Cargo.toml"
fi
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "'$version' is not a native Debian version"

if [ -z "$bin_dir" ]; then
    bin_dir=$REPO/target/release
    echo "package.sh: building the release binaries (cargo build --release)" >&2
    (cd "$REPO" && cargo build --release -p masqd -p masqadm -p masq-bench) >&2 || die "cargo build failed"
fi
for b in masqd masqadm masq-bench; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing"
done

arch=$(dpkg --print-architecture)
work=$(mktemp -d "${TMPDIR:-/tmp}/masq-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
umask 022

# Files, as the package installs them.
install -d "$root/usr/sbin" "$root/usr/bin"
install -m 0755 "$bin_dir/masqd" "$bin_dir/masqadm" "$root/usr/sbin/"
install -m 0755 "$bin_dir/masq-bench" "$root/usr/bin/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$root/usr/sbin/masqd" "$root/usr/sbin/masqadm" "$root/usr/bin/masq-bench"

install -D -m 0644 "$PKG/masqd.service" "$root/lib/systemd/system/masqd.service"
install -D -m 0644 "$PKG/default-masqd" "$root/etc/default/masqd"
install -D -m 0644 "$PKG/rules" "$root/etc/masq/rules"

for page in masqd.8 masqadm.8 masq-bench.1; do
    section=${page##*.}
    install -D -m 0644 "$REPO/docs/man/$page" "$root/usr/share/man/man$section/$page"
    gzip -9n "$root/usr/share/man/man$section/$page"
done

completions=$REPO/completions
install -D -m 0644 "$completions/masqd.bash" "$root/usr/share/bash-completion/completions/masqd"
install -D -m 0644 "$completions/masqadm.bash" "$root/usr/share/bash-completion/completions/masqadm"
install -D -m 0644 "$completions/_masqd" "$root/usr/share/zsh/vendor-completions/_masqd"
install -D -m 0644 "$completions/_masqadm" "$root/usr/share/zsh/vendor-completions/_masqadm"
install -D -m 0644 "$completions/masqd.fish" "$root/usr/share/fish/vendor_completions.d/masqd.fish"
install -D -m 0644 "$completions/masqadm.fish" "$root/usr/share/fish/vendor_completions.d/masqadm.fish"

doc=$root/usr/share/doc/masq
install -D -m 0644 "$PKG/debian/copyright" "$doc/copyright"
{
    if ! head -n 1 "$PKG/debian/changelog" | grep -qF "masq ($version) "; then
        printf 'masq (%s) unstable; urgency=medium\n\n  * Built by scripts/package.sh as %s.\n\n -- %s  %s\n\n' \
            "$version" "$version" "masq developers <masq@example.invalid>" "$(LC_ALL=C date -R)"
    fi
    cat "$PKG/debian/changelog"
} >"$doc/changelog"
gzip -9n "$doc/changelog"

# The control files.
install -d "$root/DEBIAN"
install -m 0755 "$PKG/debian/postinst" "$PKG/debian/prerm" "$PKG/debian/postrm" "$root/DEBIAN/"
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"

# The libraries the binaries link (libc, libgcc), as dpkg-shlibdeps names them.
mkdir -p "$work/shlibs/debian"
printf 'Source: masq\n\nPackage: masq\nArchitecture: any\n' >"$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$root/usr/sbin/masqd" -e"$root/usr/sbin/masqadm" -e"$root/usr/bin/masq-bench" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependencies"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
    "$PKG/debian/control" >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/masq_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
