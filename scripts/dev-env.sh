#!/usr/bin/env bash
# Creates <repo>/.venv with the pinned Python tools from tools/requirements.txt (moto server, cfn-lint,
# checkov, kubernetes-validate, yamllint). Needs only python3 (>= 3.11) with the venv module and pip.
#
# Idempotent: a stamp file inside the venv holds the hash of the requirements and the Python version;
# when both match, the script exits at once. Delete .venv (or run with --force) to rebuild from scratch.
#
# Usage: scripts/dev-env.sh [--force]      Environment: PYTHON (default python3)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
requirements="${repo_root}/tools/requirements.txt"
stamp="${venv}/.logrelay-requirements.sha256"
python="${PYTHON:-python3}"

log() { printf 'dev-env: %s\n' "$*" >&2; }

if [[ "${1:-}" == "--force" ]]; then
    log "--force: removing ${venv}"
    rm -rf "${venv}"
fi

command -v "${python}" >/dev/null || { log "error: ${python} not found; install Python >= 3.11"; exit 1; }
"${python}" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { log "error: $("${python}" --version 2>&1) is too old; need Python >= 3.11"; exit 1; }

want="$(
    {
        sha256sum "${requirements}" | cut -d' ' -f1
        "${python}" -c 'import sys; print(sys.version.split()[0])'
    } | sha256sum | cut -d' ' -f1
)"

if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" && -x "${venv}/bin/moto_server" ]]; then
    log "${venv} is up to date with tools/requirements.txt"
    exit 0
fi

# A venv left by a failed creation (no ensurepip: Debian/Ubuntu without python3-venv) has a python but
# no pip; every later run would fail with "No module named pip". Such a venv is rebuilt.
if [[ -x "${venv}/bin/python" ]] && ! "${venv}/bin/python" -m pip --version >/dev/null 2>&1; then
    log "${venv} has no working pip (an earlier creation failed); rebuilding it"
    rm -rf "${venv}"
fi
if [[ ! -x "${venv}/bin/python" ]]; then
    log "creating virtualenv ${venv} with $("${python}" --version 2>&1)"
    if ! "${python}" -m venv "${venv}"; then
        rm -rf "${venv}"
        log "error: '${python} -m venv' failed; on Debian/Ubuntu install the venv module" \
            "(apt-get install python3-venv), then run this again"
        exit 1
    fi
fi

# Remove the stamp first so an interrupted install is redone next time.
rm -f "${stamp}"
log "installing tools/requirements.txt into ${venv} (about 1 min on a clean machine: checkov has many deps)"
start="$(date +%s)"
"${venv}/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip
"${venv}/bin/python" -m pip install --disable-pip-version-check --quiet -r "${requirements}"
echo "${want}" > "${stamp}"
log "done in $(( $(date +%s) - start )) s; tools are in ${venv}/bin (moto_server, cfn-lint, checkov, kubernetes-validate, yamllint)"
