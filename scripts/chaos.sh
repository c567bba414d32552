#!/usr/bin/env bash
# The full-size chaos run (`make chaos`, docs/reliability.md "Chaos runs"): the demo pipeline with
# 30 % random faults (5xx, throttling, resets, latency) on every AWS request of the agent and the
# processor, each SIGKILLed and restarted 20 times at random times, a 5-minute S3 outage and a
# customer deleting its log group mid-run; then `verify` at every destination.
#
# 1. the dev environment (.venv with the AWS emulator, scripts/dev-env.sh);
# 2. release binaries of the whole workspace (about 10 min the first time, seconds afterwards);
# 3. `logrelay-demo chaos` (12 min of generation by default, then the drain and verification)
#    with the arguments given here, e.g.
#      scripts/chaos.sh --seed 42
#      make chaos CHAOS_ARGS="--duration 8m --agent-kills 10 --processor-kills 10 --s3-outage 2m"
#
# The run directory (.run/chaos-<UTC time>/, or --work-dir) keeps every component's log, the
# ledger, the deleted log group's archive, and the summary as summary.txt and summary.json.
# Exit code: 0 nothing missing or misrouted, 1 lines missing or misrouted, 2 the run could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/dev-env.sh

echo "chaos: building release binaries (cargo build --workspace --release --bins)" >&2
cargo build --workspace --release --bins

exec "${CARGO_TARGET_DIR:-target}/release/logrelay-demo" chaos "$@"
