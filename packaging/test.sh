#!/usr/bin/env bash
# Install what the test suite needs when it is missing (as root: the tests
# create users, mount a tmpfs and install the .deb; see README.md, the
# first lines), then run it and say how long it took.
#
#   packaging/test.sh [ARGS...]     ARGS go to `cargo nextest run --locked`
#                                   (`cargo test --locked` without cargo-nextest)
#
# cargo-nextest runs the tests of all test binaries side by side, one
# process per test, as .config/nextest.toml says (the tests that run
# alone, the time after which a hung test fails); it does not run doc
# tests, so without ARGS `cargo test --locked --doc` runs them afterwards.
# Without cargo-nextest, `cargo test --locked` runs everything, one test
# binary after the other (slower).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

if [ "$(id -u)" -ne 0 ]; then
  echo "packaging/test.sh: the tests run as root (they create users, mount a tmpfs," >&2
  echo "install the .deb); run it as root, e.g. sudo packaging/test.sh" >&2
  exit 1
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

# ffmpeg for the integration tests, groff (groff-base) for the man page
# checks.
packages=()
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  packages+=(ffmpeg)
fi
if ! command -v groff >/dev/null; then
  packages+=(groff-base)
fi
# The confused-deputy tests create users (useradd) and act as them (setpriv).
if ! command -v useradd >/dev/null; then
  packages+=(passwd)
fi
# pkill: what a test user still runs is killed before userdel.
if ! command -v pkill >/dev/null; then
  packages+=(procps)
fi
if ! command -v setpriv >/dev/null || ! command -v unshare >/dev/null; then
  packages+=(util-linux)
fi
# The shared-queue tests start private PostgreSQL clusters (initdb, pg_ctl),
# one with TLS certificates made by openssl.
if ! command -v openssl >/dev/null; then
  packages+=(openssl)
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  packages+=(postgresql)
fi
# The packaging tests: systemd's tools check the units, lintian the .deb,
# which dpkg installs (with its dependencies adduser and
# init-system-helpers) and purges.
if ! command -v systemd-analyze >/dev/null || ! command -v systemctl >/dev/null; then
  packages+=(systemd)
fi
if ! command -v lintian >/dev/null; then
  packages+=(lintian)
fi
# strace: the system calls of vidvard and FFmpeg against the unit's filter.
if ! command -v strace >/dev/null; then
  packages+=(strace)
fi
if ! command -v adduser >/dev/null; then
  packages+=(adduser)
fi
# promtool (Debian's prometheus package) checks the metrics' text format.
if ! command -v promtool >/dev/null; then
  packages+=(prometheus)
fi
# tmux runs `vidvarctl top` in a pseudo-terminal for its tests.
if ! command -v tmux >/dev/null; then
  packages+=(tmux)
fi
if ! command -v deb-systemd-helper >/dev/null; then
  packages+=(init-system-helpers)
fi
if ((${#packages[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
# cargo-deb builds the .deb (packaging/build-deb.sh); the version whose
# options and output build-deb.sh was written against.
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install --locked --version 3.8.0 cargo-deb
fi

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked "$@" || status=$?
  if (($# == 0)); then
    cargo test --locked --doc || status=$?
  fi
else
  echo "packaging/test.sh: cargo-nextest not found (cargo install --locked cargo-nextest);" \
    "running cargo test, one test binary after the other" >&2
  cargo test --locked "$@" || status=$?
fi
elapsed=$((SECONDS - started))
printf 'packaging/test.sh: the suite took %dm%02ds (setup included)\n' $((elapsed / 60)) $((elapsed % 60))
exit "$status"
