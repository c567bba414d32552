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

# promtool checks the agent's and processor's /metrics text in their tests (Debian: the prometheus
# package); where it cannot be installed those checks fall back to the tests' own format checks.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing promtool (Debian package prometheus)"
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
      || true
  fi
  command -v promtool >/dev/null 2>&1
}

if [[ -z "${LOGRELAY_SKIP_TESTS:-}" ]]; then
  step "promtool"
  if ensure_promtool; then
    export LOGRELAY_REQUIRE_PROMTOOL=1
  else
    echo "promtool not available (apt-get install prometheus): metrics are checked by the tests' own rules only"
  fi
  step "cargo test --workspace"
  cargo test --workspace --locked
fi

if [[ -x scripts/lint-manifests.sh ]]; then
  step "manifests and templates"
  ./scripts/lint-manifests.sh
fi

step "all checks passed"
