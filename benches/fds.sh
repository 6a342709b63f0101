#!/usr/bin/env bash
# fds() on a process with ~8,000 sockets, side by side with lsof and ss, in
# the same run: `reach -p PID -e 'fds().len()'` (every descriptor, TCP with
# its tcp_info) vs `lsof -nP -p PID -a -i` and `ss -tanpi` (every TCP
# socket of the namespace, with its process and tcp_info).
#
# Usage: benches/fds.sh [SOCKETS]   (default 8000; run as root)
# Needs python3; installs hyperfine and lsof with apt-get if missing.
# Goal (issues 3 and 12): reach at least 4x faster than lsof. Not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8000}

need() {
    command -v "$1" >/dev/null && return
    echo "installing $1" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq "$1" >/dev/null
}
need lsof
need hyperfine || true

cargo build --release --quiet
reach=$PWD/target/x86_64-unknown-linux-gnu/release/reach

dir=$(mktemp -d)
mkfifo "$dir/in"
python3 benches/many_sockets.py "$n" <"$dir/in" >"$dir/out" &
pid=$!
exec 3>"$dir/in"
cleanup() { exec 3>&-; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
# Ready handshake: the fixture prints "ready" once every socket is open.
for _ in $(seq 600); do grep -q ready "$dir/out" && break; sleep 0.1; done
grep -q ready "$dir/out" || { echo "fixture did not get ready" >&2; exit 1; }

echo "target pid $pid: $("$reach" -p "$pid" -e 'fds().len()') descriptors," \
    "$(lsof -nP -p "$pid" -a -i | tail -n +2 | wc -l) internet sockets per lsof," \
    "$(wc -l </proc/"$pid"/net/tcp) rows in its /proc/net/tcp"

if command -v hyperfine >/dev/null; then
    hyperfine --warmup 3 --runs "${RUNS:-20}" -N \
        "$reach -p $pid -e 'fds().len()'" \
        "lsof -nP -p $pid -a -i" \
        "ss -tanpi"
else
    # No hyperfine: medians of interleaved runs.
    runs=${RUNS:-20}
    for tool in reach lsof; do : >"$dir/$tool"; done
    for _ in $(seq "$runs"); do
        t0=$(date +%s%N); "$reach" -p "$pid" -e 'fds().len()' >/dev/null; t1=$(date +%s%N)
        lsof -nP -p "$pid" -a -i >/dev/null; t2=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) >>"$dir/reach"
        echo $(((t2 - t1) / 1000)) >>"$dir/lsof"
    done
    median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    r=$(median "$dir/reach"); l=$(median "$dir/lsof")
    echo "reach fds(): median ${r} us over $runs runs"
    echo "lsof -i:     median ${l} us over $runs runs"
    awk -v r="$r" -v l="$l" 'BEGIN {printf "reach is %.1fx faster\n", l / r}'
fi
