#!/usr/bin/env bash
# Run the whole test suite N times in a row, with every CPU kept busy by a
# load generator, and say how many runs failed and which tests failed.
#
#   scripts/stress-tests.sh [RUNS] [LOAD]
#
# RUNS defaults to 5. LOAD is the number of busy workers (default: one per
# CPU); 0 runs the suite on an idle machine. The load comes from
# `stress-ng --cpu LOAD` (installed with apt-get if missing and possible),
# else from plain busy shell loops. Run as root, like the suite itself.
# Each run's output is kept in target/stress-tests/run-N.log.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
load=${2:-$(nproc)}
logs=target/stress-tests
mkdir -p "$logs"

if [ "$load" -gt 0 ] && ! command -v stress-ng >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng) >/dev/null 2>&1 \
            || echo "stress-tests: could not install stress-ng; using shell loops" >&2
    fi
fi

# Build everything first, so the load falls on the tests, not the compiler.
cargo test --no-run --quiet 2>&1 | tail -n 3 || exit 1

loaders=()
stop_load() {
    for p in "${loaders[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap stop_load EXIT
if [ "$load" -gt 0 ]; then
    if command -v stress-ng >/dev/null; then
        stress-ng --cpu "$load" --quiet &
        loaders+=($!)
    else
        for _ in $(seq "$load"); do
            (while :; do :; done) &
            loaders+=($!)
        done
    fi
fi

failed=0
for i in $(seq "$runs"); do
    start=$(date +%s)
    cargo test --no-fail-fast >"$logs/run-$i.log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    load_avg=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ $rc -eq 0 ]; then
        echo "run $i/$runs: passed in ${secs}s (load average $load_avg)"
    else
        failed=$((failed + 1))
        echo "run $i/$runs: FAILED in ${secs}s (load average $load_avg); log: $logs/run-$i.log"
        grep -E '^    [A-Za-z_:0-9]+$|^test .* FAILED$' "$logs/run-$i.log" | sort -u | sed 's/^/    /'
    fi
done
echo "$failed of $runs runs failed (load: $load busy workers on $(nproc) CPUs)"
[ "$failed" -eq 0 ]
