#!/usr/bin/env bash
# Reruns every measurement docs/BENCHMARKS.md cites, writing its JSON and
# SVG charts into docs/bench/, and renders each chart to PNG under
# target/bench-png/ to be looked at.
#
#   docs/bench/regen.sh                 everything (about 45 minutes on 2 vCPUs)
#   docs/bench/regen.sh one-writer raft only those
#   docs/bench/regen.sh --list          the names
#
# WAL_BENCH_DIR is the data directory (default /tmp/wal-bench): it must be
# on the device to measure, a file system with O_DIRECT (ext4, xfs), not
# tmpfs. Run nothing else meanwhile: only figures of the same run are
# compared, and a build beside a benchmark moves them.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=docs/bench
PNG=target/bench-png
DATA=${WAL_BENCH_DIR:-/tmp/wal-bench}

ALL=(one-writer tail-rewrites one-writer-60s durability-modes many-writers suite raft raft-groups random-reads)

if [[ ${1:-} == --list ]]; then
    printf '%s\n' "${ALL[@]}"
    exit 0
fi
WANTED=("$@")
[[ ${#WANTED[@]} -eq 0 ]] && WANTED=("${ALL[@]}")
for name in "${WANTED[@]}"; do
    [[ " ${ALL[*]} " == *" $name "* ]] || { echo "unknown measurement $name (--list names them)" >&2; exit 2; }
done

# rsvg-convert renders the charts to PNG (Debian's librsvg2-bin).
if ! command -v rsvg-convert >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq librsvg2-bin >/dev/null
    else
        echo "rsvg-convert is missing: install librsvg2-bin to render the charts" >&2
        exit 1
    fi
fi

cargo build --release -p bench-harness --features peers
H=target/release/bench-harness
mkdir -p "$OUT" "$PNG" "$DATA"

# bench NAME ARGS...: one harness run writing $OUT/NAME.json and its charts
# (`bench-harness report $OUT/NAME.json` prints its tables again).
bench() {
    local name=$1
    shift
    echo "== $name: bench-harness $*" >&2
    "$H" --dir "$DATA" --json "$OUT/$name.json" --svg "$OUT/$name.svg" "$@"
}

for name in "${WANTED[@]}"; do
    case $name in
    one-writer)
        bench one-writer latency --warmup 0 --duration 4s --repeat 5 --baseline raw:dsync \
            --backend raw:fdatasync,raw:dsync,uring-wal,uring-wal:v1,uring-wal:dsync,okaywal,raft-engine,raft-log-nowait
        ;;
    tail-rewrites)
        bench tail-rewrites latency --warmup 0 --duration 4s --repeat 12 --baseline uring-wal:v1 \
            --backend uring-wal,uring-wal:v1,raw:dsync
        ;;
    one-writer-60s)
        bench one-writer-60s latency --warmup 0 --duration 60s --interval 1s --baseline raw:dsync \
            --backend raw:dsync,uring-wal,uring-wal:v1,okaywal,raft-engine
        ;;
    durability-modes)
        bench durability-modes sweep --writers 1,16 --duration 3s --repeat 3 \
            --backend uring-wal:group-sync,uring-wal:dsync,uring-wal:periodic,uring-wal:none
        ;;
    many-writers)
        bench many-writers throughput --writers 1,4,16,64 --record-bytes 256,4096 --duration 2s --repeat 3 \
            --baseline okaywal \
            --backend uring-wal,uring-wal:dsync,uring-wal:threaded,uring-wal:dsync:threaded,okaywal,raft-engine,raft-log,raft-log-nowait
        ;;
    suite)
        bench suite run
        ;;
    raft)
        bench raft raft --clients 1,16,64 --duration 3s --repeat 3
        ;;
    raft-groups)
        bench raft-groups raft --groups 1,16,256 --clients 64 --duration 3s --repeat 3 \
            --store memory,shared,group-sync,raft-log,raft-log-nowait
        ;;
    random-reads)
        echo "== random-reads: cargo bench --bench read" >&2
        cargo bench --bench read 2>&1 | tee "$OUT/random-reads.txt"
        ;;
    esac
done

for svg in "$OUT"/*.svg; do
    rsvg-convert "$svg" -o "$PNG/$(basename "${svg%.svg}").png"
done
echo "charts rendered to $PNG/ (look at them)" >&2
