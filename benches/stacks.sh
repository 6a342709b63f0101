#!/usr/bin/env bash
# stacks() on a 64-thread process, side by side with eu-stack and gdb in
# the same run: wall time of each tool (hyperfine), and the longest gap a
# spinning thread of the target saw while each ran (the time it was held).
#
# Usage: benches/stacks.sh [THREADS]   (default 64; run as root)
# The target is tests/fixtures/backtrace.c built -O2 -g: THREADS threads
# blocked in four call chains, one spinning, the main thread in read().
# Needs a C compiler; uses eu-stack (elfutils), gdb and hyperfine where
# installed. Goal (issue 14): faster than both, and no gap larger than one
# thread's copy. Not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-64}
runs=${RUNS:-10}

cargo build --release --quiet
reach=$PWD/target/x86_64-unknown-linux-gnu/release/reach

dir=$(mktemp -d)
cc -O2 -g -pthread -o "$dir/backtrace" tests/fixtures/backtrace.c
mkfifo "$dir/in"
"$dir/backtrace" "$n" <"$dir/in" >"$dir/out" &
pid=$!
exec 3>"$dir/in"
cleanup() { exec 3>&-; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q ready "$dir/out" && break; sleep 0.1; done
grep -q ready "$dir/out" || { echo "fixture did not get ready" >&2; exit 1; }

# The spinner's longest gap since the last ask, in microseconds.
gap() {
    local before
    before=$(grep -c '^gap' "$dir/out" || true)
    echo >&3
    for _ in $(seq 100); do
        [ "$(grep -c '^gap' "$dir/out")" -gt "$before" ] && break
        sleep 0.01
    done
    echo $(( $(grep '^gap' "$dir/out" | tail -n 1 | cut -d' ' -f2) / 1000 ))
}

tools=("$reach -p $pid stacks")
command -v eu-stack >/dev/null && tools+=("eu-stack -p $pid" "eu-stack -s -p $pid")
command -v gdb >/dev/null && tools+=("gdb -batch -nx -p $pid -ex 'thread apply all bt'")

# Median and largest of the spinner's longest gap over runs of `cmd` (an
# idle run: nothing but the same wait).
gaps() {
    local cmd=$1 all=()
    for _ in $(seq "$runs"); do
        gap >/dev/null
        bash -c "$cmd" >/dev/null 2>&1
        all+=("$(gap)")
    done
    printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %6d us  max %6d us", a[int((NR+1)/2)], a[NR]}'
}

echo "target pid $pid: $(ls /proc/$pid/task | wc -l) threads"
echo "the spinning thread's longest gap during one run, over $runs runs (scheduler noise included):"
printf '  %s  %s\n' "$(gaps "sleep 0.05")" "(idle: sleep 0.05)"
for tool in "${tools[@]}"; do
    printf '  %s  %s\n' "$(gaps "$tool")" "$tool"
done
echo "reach's longest hold of one thread (REACH_TIMING):" \
    "$(REACH_TIMING=1 "$reach" -p "$pid" stacks 2>&1 >/dev/null | grep -o '[0-9]* us' | sort -n | tail -n 1)"

if command -v hyperfine >/dev/null; then
    hyperfine --warmup 2 --runs "$runs" -N "${tools[@]}"
fi
