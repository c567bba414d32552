#!/usr/bin/env bash
# Runs the benchmarks recorded in BENCHMARKS.md, in release mode, at low priority (the build takes
# about 10 minutes the first time on a 2-core machine). Arguments after the bench name go to the
# bench binary.
#
# Usage: scripts/bench.sh [processor|agent|all] [ARGS...]   (default: all; an unknown first
#        argument is passed to the processor bench, as before)
# Environment: processor: BENCH_SIZES_MIB (64,256,960), BENCH_RUNS (3),
#              BENCH_INIT_RUNS (21); agent: LOGRELAY_BENCH_AGENT_MIB (256; the issue's 1 GiB is 1024),
#              LOGRELAY_BENCH_BUSY_KIB (1024 per file of the 1,000-busy-file case; 0 skips it),
#              LOGRELAY_BENCH_IDLE_SECS (20), LOGRELAY_BENCH_DIR ($TMPDIR)
set -euo pipefail
cd "$(dirname "$0")/.."

processor() {
  ./scripts/dev-env.sh   # the AWS emulator (moto) the processor bench stores its objects in
  nice -n 10 cargo bench --workspace --bench processor -- "$@"
}

agent() {
  # Starts the release logrelay-agent binary (built by cargo bench) with the file sink; no emulator.
  nice -n 10 cargo bench --workspace --bench agent -- "$@"
}

case "${1:-all}" in
  processor) shift; processor "$@" ;;
  agent) shift; agent "$@" ;;
  all) shift $(( $# > 0 ? 1 : 0 )); processor "$@"; agent ;;
  *) processor "$@" ;;
esac
