#!/usr/bin/env bash
# Soak run (docs/reliability.md#soak): dev environment (+ matplotlib for the plot), release binaries,
# then scripts/soak.py with the arguments given here (default: 30 min at 200 lines/s into bench/soak/).
#   scripts/soak.sh
#   scripts/soak.sh --duration 5m --rate 500 --out bench/soak-short
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/dev-env.sh
# Only the soak plots need matplotlib: installed on demand, not part of CI's tool set.
.venv/bin/python -c "import matplotlib" 2>/dev/null || .venv/bin/pip install --quiet "matplotlib==3.10.*"

cargo build --workspace --release --bins
exec .venv/bin/python scripts/soak.py "$@"
