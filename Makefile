# logrelay — the two commands of the README, and a few conveniences.
.PHONY: demo test lint build bench clean-venv images-local

## The local end-to-end demo: emulated AWS accounts, fake cluster, agent, processor, verification.
## Flags of `logrelay-demo run` go in DEMO_ARGS, e.g. make demo DEMO_ARGS="--duration 30s --keep".
DEMO_ARGS ?=
demo:
	./scripts/demo.sh $(DEMO_ARGS)

## Everything CI runs: dev environment, formatting, clippy, the whole test suite, linters.
test:
	./scripts/test.sh

## Only the linters (fmt, clippy, manifests and templates).
lint:
	LOGRELAY_SKIP_TESTS=1 ./scripts/test.sh

build:
	cargo build --workspace --all-targets

clean-venv:
	rm -rf .venv

## Static binaries in FROM-scratch images, each smoke-tested with --version (needs buildah; ~10 min).
images-local:
	./scripts/images-local.sh

## Benchmarks (release builds; see BENCHMARKS.md). BENCH=agent|processor|all
BENCH ?= all
bench:
	./scripts/bench.sh $(BENCH)
