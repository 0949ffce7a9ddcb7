#!/usr/bin/env bash
# Set up what is missing, build vidvar, start a private vidvard, turn one
# video into variations and list them.
#
#   packaging/quickstart.sh [VIDEO] [-n N]
#
# VIDEO defaults to a 10 s clip made with FFmpeg's test sources. Outputs go
# to ./vidvar-quickstart/; the daemon keeps its socket and database in a
# temporary directory and is stopped (SIGTERM) when the script ends.
set -euo pipefail

video=""
variations=3
while [ $# -gt 0 ]; do
  case "$1" in
    -n) [ $# -ge 2 ] || { echo "-n needs a number of variations" >&2; exit 2; }
        variations="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) video="$1"; shift ;;
  esac
done
# Paths are the caller's: resolve them before moving to the repository.
if [ -n "$video" ]; then
  [ -e "$video" ] || { echo "no such file: $video" >&2; exit 1; }
  video="$(cd "$(dirname "$video")" && pwd)/$(basename "$video")"
fi
out="$PWD/vidvar-quickstart"
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  echo "== installing FFmpeg from the system packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

echo "== building vidvar (release; the first build takes several minutes)"
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

work=$(mktemp -d -t vidvar-quickstart.XXXXXX)
mkdir -p "$out"
export VIDVAR_SOCKET="$work/vidvard.sock"

stop() {
  if [ -f "$work/vidvard.pid" ]; then
    kill -TERM "$(cat "$work/vidvard.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$work/vidvard.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$work"
}
trap stop EXIT

# vidvard runs in the background, logging to a file beside its database;
# the script goes on once it answers (or shows its log if it cannot start).
"$bin/vidvard" --foreground --socket "$VIDVAR_SOCKET" --state-dir "$work/state" \
  --pidfile "$work/vidvard.pid" 2>"$work/vidvard.log" &
for _ in $(seq 1 100); do
  "$bin/vidvarctl" ping >/dev/null 2>&1 && break
  if ! kill -0 $! 2>/dev/null; then
    echo "vidvard could not start:" >&2; cat "$work/vidvard.log" >&2; exit 1
  fi
  sleep 0.1
done
"$bin/vidvarctl" ping

if [ -z "$video" ]; then
  video="$work/testsrc.mp4"
  echo "== making a 10 s test video with FFmpeg's lavfi sources"
  ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i testsrc2=size=1280x720:rate=30:duration=10 \
    -f lavfi -i sine=frequency=440:duration=10 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac "$video"
fi

echo "== submitting $video ($variations variations)"
job=$("$bin/vidvarctl" submit -n "$variations" -o "$out" "$video")
status=0
"$bin/vidvarctl" watch "$job" || status=$?
echo "== outputs of job $job (path, bytes, input, index, effects, quality check)"
"$bin/vidvarctl" outputs "$job"
if [ "$status" -ne 0 ]; then
  echo "== job $job did not succeed for every variation: see the reasons above" >&2
fi
exit "$status"
