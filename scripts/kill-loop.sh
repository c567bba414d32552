#!/usr/bin/env bash
# The full-size kill loop (docs/reliability.md "Kill loop"): the release agent SIGKILLed 50 times
# at 1–6 s intervals (some kills with 5–10 s downtime) while `logrelay-testgen pods` writes like
# containerd at 3 MiB/s over 20 pods x 2 containers with 2 MiB rotation, gzip and pod churn; once
# with the kubelet's rename rotation and once with copytruncate. Reports and agent logs go to
# bench/kill-loop/<rotation>/. The full-size values are the defaults of `logrelay-testgen kill-loop`
# (300 s at 3 MiB/s, 50 kills, 2 tenants x 10 pods x 2 containers, 2 MiB rotation). Extra flags of `logrelay-testgen kill-loop` are passed through,
# e.g. scripts/kill-loop.sh --duration 120 --kills 20.
set -euo pipefail
cd "$(dirname "$0")/.."

ROTATIONS="${KILL_LOOP_ROTATIONS:-rename copytruncate}"
OUT="${KILL_LOOP_OUT:-bench/kill-loop}"

CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo build --release -p logrelay-agent -p logrelay-testgen

status=0
for rotation in $ROTATIONS; do
    work="$OUT/$rotation"
    rm -rf "$work"
    mkdir -p "$work"
    echo "== kill loop, $rotation rotation (work dir $work)"
    if ! target/release/logrelay-testgen kill-loop \
        --agent target/release/logrelay-agent \
        --work-dir "$work" \
        --rotation "$rotation" \
        "$@" | tee "$work/report.txt"; then
        status=1
    fi
done
exit $status
