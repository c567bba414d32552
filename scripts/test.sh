#!/usr/bin/env bash
# The README's test command (`make test`): sets up the dev environment, then formatting, clippy,
# the whole workspace's tests (against a real AWS emulator) and the linters for manifests/templates.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "dev environment (.venv with the AWS emulator and linters)"
./scripts/dev-env.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [[ -z "${LOGRELAY_SKIP_TESTS:-}" ]]; then
  step "cargo test --workspace"
  cargo test --workspace --locked
fi

if [[ -x scripts/lint-manifests.sh ]]; then
  step "manifests and templates"
  ./scripts/lint-manifests.sh
fi

step "all checks passed"
