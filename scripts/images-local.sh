#!/usr/bin/env bash
# `make images-local`: container images that can be built where no base image can be pulled. Builds static
# (+crt-static) release binaries of logrelay-agent and logrelay-processor, puts each into a FROM-scratch image
# (containers/Containerfile.*.local) and runs its `--version` inside the image with `buildah run`.
#
# The production images (containers/Containerfile.agent, .processor) need their public base images; these local
# images are for the local-emulator overlays (k8s/*/overlays/local-emulator) and as a CI smoke test.
# Takes about 10 minutes on 2 cores (a release build of the whole dependency graph); not part of `make test`.
#
# Needs buildah (Debian package; installed here when running as root with CI=true). Environment:
#   IMAGE_TAG (default dev)   STORAGE_DRIVER (default vfs: works inside containers and on any filesystem)
set -euo pipefail
cd "$(dirname "$0")/.."

target="x86_64-unknown-linux-gnu"
tag="${IMAGE_TAG:-dev}"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
binaries=(logrelay-agent logrelay-processor)
work="$(mktemp -d)"
containers=()
cleanup() {
    local c
    for c in "${containers[@]}"; do buildah rm "${c}" >/dev/null 2>&1 || true; done
    rm -rf "${work}"
}
trap cleanup EXIT

log() { printf 'images-local: %s\n' "$*" >&2; }

if ! command -v buildah >/dev/null 2>&1; then
    if [[ "${CI:-}" == "true" && "$(id -u)" == "0" ]]; then
        log "installing buildah (Debian package)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
    else
        log "buildah is required: apt-get install buildah (or run with CI=true as root to install it)"
        exit 1
    fi
fi

ca_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -f "${ca_bundle}" ]] || { log "missing ${ca_bundle} (apt-get install ca-certificates)"; exit 1; }

start="$(date +%s)"
log "static release build (${target}, +crt-static)"
build_args=(build --release --locked --target "${target}")
for bin in "${binaries[@]}"; do build_args+=(--bin "${bin}"); done
RUSTFLAGS="-C target-feature=+crt-static" cargo "${build_args[@]}"
log "built in $(($(date +%s) - start)) s"

for bin in "${binaries[@]}"; do
    binary="target/${target}/release/${bin}"
    # A dynamically linked binary has an ELF interpreter (the dynamic loader), which an empty image lacks.
    if readelf -l "${binary}" | grep -q INTERP; then
        log "${binary} is dynamically linked; a FROM-scratch image needs a static binary"
        exit 1
    fi
    component="${bin#logrelay-}"
    image="localhost/${bin}:${tag}"
    context="${work}/${component}"
    mkdir -p "${context}"
    cp "${binary}" "${context}/${bin}"
    cp "${ca_bundle}" "${context}/ca-certificates.crt"
    log "building ${image}"
    buildah bud --quiet --isolation=chroot -f "${PWD}/containers/Containerfile.${component}.local" -t "${image}" \
        "${context}" >/dev/null

    container="$(buildah from --quiet "${image}")"
    containers+=("${container}")
    version="$(buildah run --isolation=chroot "${container}" -- "/usr/local/bin/${bin}" --version)"
    if [[ "${version}" != "${bin} "* ]]; then
        log "${image}: unexpected --version output: ${version}"
        exit 1
    fi
    log "${image}: ${version}"
done
log "done in $(($(date +%s) - start)) s"
buildah images --filter "reference=localhost/logrelay-*:${tag}"
