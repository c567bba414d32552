#!/usr/bin/env bash
# The README's demo command (`make demo`): the local end-to-end pipeline (docs/demo.md).
#
# 1. the dev environment (.venv with the AWS emulator, scripts/dev-env.sh);
# 2. release binaries of the whole workspace (about 10 min the first time, seconds afterwards);
# 3. `logrelay-demo run` with the arguments given here, e.g.
#      scripts/demo.sh --duration 30s --keep
#      make demo DEMO_ARGS="--processor lambda --json"
# Exit code: 0 nothing missing or misrouted, 1 lines missing or misrouted, 2 the demo could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/dev-env.sh

echo "demo: building release binaries (cargo build --workspace --release --bins)" >&2
cargo build --workspace --release --bins

exec "${CARGO_TARGET_DIR:-target}/release/logrelay-demo" run "$@"
