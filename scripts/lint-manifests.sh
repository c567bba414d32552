#!/usr/bin/env bash
# Lints and checks everything that is not Rust: CloudFormation templates, Kubernetes manifests, Containerfiles and
# shell scripts. Called by scripts/test.sh; runs on its own too. Offline; about a minute on 2 cores.
#
#   yamllint            style of every template and manifest (.yamllint)
#   cfn-lint            every CloudFormation template
#   structure.py        what linters cannot know (cloudformation/checks/structure.py), plus its self-test that
#                       breaks each guarded property in a copy and expects the check to fail
#   kustomize render    every overlay (kubectl kustomize; without kubectl the raw files are checked instead)
#   kubernetes-validate --strict against Kubernetes ${K8S_VERSION} on every rendered manifest
#   manifests.py        the agent DaemonSet properties (k8s/checks/manifests.py), plus its self-test
#   contract.py         every setting, port, probe and scrape annotation of the rendered manifests, the Lambda stack
#                       and the Containerfiles, judged by the binaries' own --check-config (scripts/contract.py; builds
#                       the debug binaries), plus its self-test
#   check_docs_flags.py every flag and environment variable of each binary's (and subcommand's) --help is named on
#                       its docs page, and no configuration table row names a flag that no binary accepts
#   checkov             one run over templates, rendered manifests and Containerfiles; accepted findings are
#                       skipped inline next to the resource, each with its reason
#   hadolint            the Containerfiles
#   shell scripts       ShellCheck on deploy.sh, scripts/*.sh, .ci/run (apt-get installs it in CI when missing)
#   deploy.sh           --help and a --dry-run without AWS; --param renames and refusals (cloudformation/checks/deploy_params.sh)
#   top_level_wiring.py deploy.sh --top-level-stacks passes each stack what main.yaml passes the nested stack
#                       (cloudformation/checks/top_level_wiring.py), plus its self-test
#   top_level_moto.py   deploy.sh --top-level-stacks --include-lambda into the moto emulator through the AWS CLI:
#                       three stacks CREATE_COMPLETE, their outputs, output wiring (about 25 s; skipped without `aws`)
#   moto_smoke.py       core + SQS stacks deployed into the moto emulator (cloudformation/checks/moto_smoke.py),
#                       the queue alarms through CloudWatch's API (moto's CloudFormation skips alarms)
#   monitoring          promtool check/test rules on monitoring/alerts.rules.yaml, and monitoring/check.py: every
#                       metric the rules and the Grafana dashboard query is exported; the queries parse
set -euo pipefail
cd "$(dirname "$0")/.."

# The newest Kubernetes release whose schemas kubernetes-validate (tools/requirements.txt) bundles.
K8S_VERSION="1.37.0"
venv=".venv/bin"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
failures=()

step() { printf '\n--> %s\n' "$*"; }
elapsed() { printf '    (%s s)\n' "$(($(date +%s) - $1))"; }
# Runs one named check; a failure is recorded and the other checks still run.
check() {
    local name="$1" start
    shift
    step "${name}"
    start="$(date +%s)"
    if "$@"; then elapsed "${start}"; else
        failures+=("${name}")
        printf '    FAILED: %s\n' "${name}"
    fi
}

for tool in yamllint cfn-lint checkov kubernetes-validate hadolint moto_server; do
    [[ -x "${venv}/${tool}" ]] || ./scripts/dev-env.sh
done

templates=(cloudformation/*.yaml)
containerfiles=(containers/Containerfile.agent containers/Containerfile.processor
    containers/Containerfile.agent.local containers/Containerfile.processor.local)
overlays=(agent/base agent/overlays/openshift agent/overlays/local-emulator agent/overlays/prometheus-operator
    processor/base processor/overlays/local-emulator processor/overlays/keda processor/overlays/prometheus-operator)

render_manifests() {
    mkdir -p "${work}/k8s"
    if command -v kubectl >/dev/null 2>&1; then
        local o
        for o in "${overlays[@]}"; do
            kubectl kustomize "k8s/${o}" >"${work}/k8s/${o//\//-}.yaml" || return 1
            printf '    rendered k8s/%s\n' "${o}"
        done
    else
        echo "    kubectl not found: checking the raw manifests (kustomizations and patches excluded), not the overlays"
        find k8s -name '*.yaml' ! -name kustomization.yaml ! -name '*-selinux.yaml' ! -name 'emulator-env.yaml' \
            -exec cp --parents {} "${work}/k8s" \;
    fi
}

validate_manifests() {
    local files
    mapfile -t files < <(find "${work}/k8s" -name '*.yaml' | sort)
    # Custom resources (OpenShift SCC, KEDA, PodMonitor) have no bundled schema: reported as WARN, not validated
    # (k8s/checks/manifests.py checks the PodMonitors' structure).
    "${venv}/kubernetes-validate" --strict --quiet -k "${K8S_VERSION}" "${files[@]}"
}

agent_daemonset_checks() {
    local files
    mapfile -t files < <(find "${work}/k8s" -name '*.yaml' | sort)
    "${venv}/python" k8s/checks/manifests.py "${files[@]}" \
        && "${venv}/python" k8s/checks/manifests.py --self-test "${files[@]}"
}

contract_checks() {
    # The binaries judge what the shipped files set: a debug build of the workspace's binaries (cargo's cache makes a
    # repeated run cheap).
    local files bin="${CARGO_TARGET_DIR:-target}/debug"
    cargo build --workspace --bins --locked --quiet || return 1
    mapfile -t files < <(find "${work}/k8s" -name '*.yaml' | sort)
    local bins=(--agent "${bin}/logrelay-agent" --processor "${bin}/logrelay-processor")
    "${venv}/python" scripts/contract.py "${bins[@]}" "${files[@]}" \
        && "${venv}/python" scripts/contract.py --self-test "${bins[@]}" "${files[@]}"
}

docs_flags_checks() {
    # Every flag and variable each binary's --help lists is named on its docs page; no table row names a gone flag.
    cargo build --workspace --bins --locked --quiet || return 1
    "${venv}/python" scripts/check_docs_flags.py "${CARGO_TARGET_DIR:-target}/debug"
}

run_checkov() {
    # One scan root (one report per framework): the templates, the rendered manifests and the Containerfiles,
    # renamed to Dockerfile because checkov recognises Dockerfiles by name only.
    local f
    mkdir -p "${work}/cloudformation"
    cp "${templates[@]}" "${work}/cloudformation/"
    for f in containers/Containerfile.agent containers/Containerfile.processor; do
        mkdir -p "${work}/containers/${f##*.}"
        cp "${f}" "${work}/containers/${f##*.}/Dockerfile"
    done
    "${venv}/checkov" --quiet --compact --skip-download \
        --framework cloudformation kubernetes dockerfile -d "${work}"
}

run_shellcheck() {
    if ! command -v shellcheck >/dev/null 2>&1; then
        if [[ "${CI:-}" == "true" && "$(id -u)" == "0" ]]; then
            echo "    installing shellcheck (Debian package)"
            apt-get install -y -qq shellcheck >/dev/null 2>&1 \
                || { apt-get update -qq >/dev/null && apt-get install -y -qq shellcheck >/dev/null; }
        else
            echo "    SKIPPED: shellcheck not installed (apt-get install shellcheck); CI installs it"
            return 0
        fi
    fi
    shellcheck cloudformation/deploy.sh cloudformation/checks/*.sh scripts/*.sh .ci/run
}

run_monitoring_checks() {
    if ! command -v promtool >/dev/null 2>&1; then
        if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
            echo "    installing promtool (Debian package prometheus)"
            apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
                || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
        else
            echo "    SKIPPED: promtool not installed (apt-get install prometheus)"
            return 0
        fi
    fi
    promtool check rules monitoring/alerts.rules.yaml \
        && promtool test rules monitoring/alerts.test.yaml \
        && "${venv}/python" monitoring/check.py
}

smoke_deploy_script() {
    # No AWS CLI on this PATH: the dry run must work offline and print the deploy command with our parameters.
    local out
    PATH="${PWD}/${venv}:/usr/bin:/bin" cloudformation/deploy.sh --help >/dev/null
    out="$(PATH="${PWD}/${venv}:/usr/bin:/bin" cloudformation/deploy.sh -b example-templates --include-lambda \
        --ecr-image-uri 111111111111.dkr.ecr.us-east-1.amazonaws.com/logrelay-processor:0.1.0 \
        --oidc-issuer oidc.example.com/abc --dry-run 2>&1)"
    if ! grep -q 'cloudformation deploy .*IncludeSQSStack=true IncludeLambdaStack=true' <<<"${out}" \
        || ! grep -q 'RandomSuffix=[a-f0-9]\{8\} ' <<<"${out}"; then
        echo "${out}"
        return 1
    fi
    echo "    deploy.sh --dry-run prints the expected deploy command"
}

start_all="$(date +%s)"
check "yamllint" "${venv}/yamllint" --strict cloudformation k8s monitoring .yamllint
check "cfn-lint (${#templates[@]} templates)" "${venv}/cfn-lint" "${templates[@]}"
check "template structure" "${venv}/python" cloudformation/checks/structure.py
check "template structure self-test" "${venv}/python" cloudformation/checks/structure.py --self-test
check "render kustomize overlays" render_manifests
check "kubernetes-validate --strict -k ${K8S_VERSION}" validate_manifests
check "agent DaemonSet properties" agent_daemonset_checks
check "settings, ports and probes against the binaries (--check-config)" contract_checks
check "docs configuration tables against every binary's --help" docs_flags_checks
check "checkov (templates, manifests, Containerfiles)" run_checkov
check "hadolint" "${venv}/hadolint" "${containerfiles[@]}"
check "shellcheck" run_shellcheck
check "deploy.sh dry run" smoke_deploy_script
check "deploy.sh --param names" cloudformation/checks/deploy_params.sh
check "deploy.sh --top-level-stacks wiring equals main.yaml's" "${venv}/python" cloudformation/checks/top_level_wiring.py
check "deploy.sh --top-level-stacks wiring, self-test" "${venv}/python" cloudformation/checks/top_level_wiring.py --self-test
check "deploy.sh --top-level-stacks into moto (core, SQS, Lambda stacks)" "${venv}/python" cloudformation/checks/top_level_moto.py
check "moto smoke deploy (core + SQS stacks, queue alarms)" "${venv}/python" cloudformation/checks/moto_smoke.py
check "alert rules (promtool check + test rules) and dashboard queries" run_monitoring_checks

printf '\nmanifests and templates: %s s\n' "$(($(date +%s) - start_all))"
if ((${#failures[@]})); then
    printf 'FAILED: %s\n' "${failures[@]}"
    exit 1
fi
echo "all manifest and template checks passed"
