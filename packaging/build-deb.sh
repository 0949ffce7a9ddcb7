#!/bin/sh
# Build the .deb with cargo-deb, then add the md5sums control file
# (deb-md5sums(5)) that cargo-deb 3 does not write; debsums(1) and
# "dpkg --verify" check the installed files against it. Conffiles are left
# out, as dh_md5sums does: dpkg tracks them on its own.
#
# Usage: packaging/build-deb.sh [cargo-deb options...]
# Prints the path of the .deb (by default target/debian/vidvar_*.deb).
set -eu

deb=$(cargo deb "$@" | tail -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --raw-extract "$deb" "$work/pkg"
(
	cd "$work/pkg"
	sed 's|^/||' DEBIAN/conffiles 2>/dev/null >"$work/conffiles" || true
	find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' |
		grep -vxF -f "$work/conffiles" | LC_ALL=C sort |
		while IFS= read -r file; do md5sum "$file"; done
) >"$work/md5sums"
install -m 0644 "$work/md5sums" "$work/pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group --build "$work/pkg" "$deb" >/dev/null
echo "$deb"
