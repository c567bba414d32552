# logrelay — the two commands of the README, and a few conveniences.
.PHONY: demo chaos soak kill-loop test lint build bench clean-venv images-local

## The local end-to-end demo: emulated AWS accounts, fake cluster, agent, processor, verification.
## Flags of `logrelay-demo run` go in DEMO_ARGS, e.g. make demo DEMO_ARGS="--duration 30s --keep".
DEMO_ARGS ?=
demo:
	./scripts/demo.sh $(DEMO_ARGS)

## The full-size chaos run (about 20 min; docs/reliability.md "Chaos runs"): 30 % AWS faults, agent and
## processor SIGKILLed 20 times each, a 5-minute S3 outage, a deleted log group; then verification.
## Flags of `logrelay-demo chaos` go in CHAOS_ARGS, e.g. make chaos CHAOS_ARGS="--seed 42".
CHAOS_ARGS ?=
chaos:
	./scripts/chaos.sh $(CHAOS_ARGS)

## The soak run (30 min at 200 lines/s; docs/reliability.md "Soak"): RSS and CPU of agent and processor
## over time into bench/soak/ (CSV, PNG, summary). Flags of scripts/soak.py go in SOAK_ARGS.
SOAK_ARGS ?=
soak:
	./scripts/soak.sh $(SOAK_ARGS)

## The full-size kill loop (about 15 min; docs/reliability.md "Kill loop"): the release agent SIGKILLed
## 50 times while a containerd-like writer writes 3 MiB/s with rename, then copytruncate rotation.
## Flags of `logrelay-testgen kill-loop` go in KILL_LOOP_ARGS, e.g. make kill-loop KILL_LOOP_ARGS="--seed 7".
KILL_LOOP_ARGS ?=
kill-loop:
	./scripts/kill-loop.sh $(KILL_LOOP_ARGS)

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
