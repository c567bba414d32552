#!/usr/bin/env bash
# Checks deploy.sh's --param handling offline (dry run, no AWS CLI on PATH): the proof of concept's parameter names
# are renamed with a deprecation line on stderr, and unknown, duplicated or flag-owned parameters are refused
# before anything is called. Run by scripts/lint-manifests.sh; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy=(cloudformation/deploy.sh -b example-templates --dry-run)
path="${PWD}/.venv/bin:/usr/bin:/bin"
failures=0

fail() {
    printf '    FAIL %s\n' "$1"
    printf '%s\n' "$2" | sed 's/^/         /'
    failures=$((failures + 1))
}

# Runs deploy.sh with the given arguments; sets out (stdout), err (stderr) and code.
run() {
    local errfile
    errfile="$(mktemp)"
    code=0
    out="$(PATH="${path}" "${deploy[@]}" "$@" 2>"${errfile}")" || code=$?
    err="$(cat "${errfile}")"
    rm -f "${errfile}"
}

run --param EksOidcIssuer=https://oidc.example.com/abc --param S3StandardIADays=45 --param S3GlacierDays=120 \
    --param S3DeepArchiveDays=400 --param S3LogRetentionDays=800 --param LambdaReservedConcurrency=20
want="ClusterOidcIssuer=oidc.example.com/abc S3TransitionToIADays=45 S3TransitionToGlacierDays=120 S3TransitionToDeepArchiveDays=400 S3ExpirationDays=800 ReservedConcurrency=20 "
[[ "${code}" == 0 && "${out}" == *"${want}"* ]] || fail "old names are renamed in the deploy command" "${code} ${out}"
for old in EksOidcIssuer S3StandardIADays S3GlacierDays S3DeepArchiveDays S3LogRetentionDays LambdaReservedConcurrency; do
    [[ "${err}" == *"--param ${old} is deprecated"* ]] || fail "a deprecation line for ${old} on stderr" "${err}"
done
[[ "${out}" != *EksOidcIssuer* && "${out}" != *S3GlacierDays* ]] || fail "no old name reaches CloudFormation" "${out}"

run --param S3ExpirationDays=400
[[ "${code}" == 0 && "${out}" == *"S3ExpirationDays=400 "* && "${err}" != *deprecated* ]] \
    || fail "new names pass without a deprecation line" "${code} ${err}"

run --param ClusterNames=a,b
[[ "${code}" == 1 && "${err}" == *"--param ClusterNames: main.yaml has no such parameter"* && "${out}" != *"cloudformation deploy"* ]] \
    || fail "a parameter main.yaml lacks is refused before deploying" "${code} ${err}"

run --param S3LogRetentionDays=800 --param S3ExpirationDays=400
[[ "${code}" == 1 && "${err}" == *"--param S3ExpirationDays is given twice"* ]] \
    || fail "an old and a new name of one parameter are refused together" "${code} ${err}"

run --param EksOidcIssuer=oidc.example.com/a --oidc-issuer oidc.example.com/b
[[ "${code}" == 1 && "${err}" == *"--oidc-issuer differ"* ]] || fail "conflicting OIDC issuers are refused" "${code} ${err}"

run --param Environment=production
[[ "${code}" == 1 && "${err}" == *"set it with its option"* ]] || fail "flag-owned parameters are refused" "${code} ${err}"

if [[ "${failures}" -gt 0 ]]; then
    exit 1
fi
echo "    deploy.sh --param: old names renamed with a deprecation line; unknown, duplicated and flag-owned refused"
