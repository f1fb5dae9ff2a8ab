# orders — developer entry points. `make test` and `make dev` install what they need first.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .tools/venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CARGO_TERM_COLOR := never
export SAM_CLI_TELEMETRY := 0

# PROFILE=debug (default: the first build and each reload on save are fastest) or release: how the
# functions and devkit are built for dev/invoke/token. make package, bench and chaos build release.
PROFILE ?= debug
BIN_DIR := target/$(PROFILE)
CARGO_PROFILE := $(if $(filter release,$(PROFILE)),--release,)
PORT ?= 3000
# CPU_SHARE=memory|off|<MB>: each local environment's CPU, as Lambda gives it by MemorySize (on by
# default for release binaries; debug builds are too slow for the share to mean anything).
CPU_SHARE ?= $(if $(filter release,$(PROFILE)),memory,off)
DEV_PREFIX ?= dev
# The chaos switches of `make dev` (the fault proxies' control endpoint; 0: any free port).
CHAOS_PORT ?= 3001
# The web console of `make dev` (an order's timeline, invocations, queues, replay, switches, tables).
CONSOLE_PORT ?= 3002
# PARAMS="ReservationMinutes=1 OrdersPerMinute=100": template parameters instead of their defaults
# (as `sam deploy --parameter-overrides` takes them), for dev and invoke.
PARAMS ?=
DEVKIT = $(BIN_DIR)/devkit --bin-dir $(BIN_DIR) $(foreach p,$(PARAMS),--parameter $(p))
SUB ?= alice
SCOPES ?= orders:write orders:read

.PHONY: help bootstrap build lint test dev token invoke package bench bench-dev chaos fmt clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## Install what make dev needs: emulators, aws-lambda-rie, moto (idempotent, into git-ignored folders)
	@infra/bootstrap.sh

lint: ## cargo fmt --check, clippy -D warnings, cfn-lint, sam validate --lint, checkov
	@infra/bootstrap.sh --lint
	cargo fmt --all -- --check --color never
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cfn-lint template.yaml
	.tools/sam/bin/sam validate --lint --template template.yaml --region us-east-1
	.tools/checkov/bin/checkov --file template.yaml --config-file infra/checkov.yaml

test: lint ## Lint, then every test, with DynamoDB Local started on a free port
	@infra/bootstrap.sh --bench --browser
	infra/with-emulators.sh cargo test --workspace --locked --no-fail-fast

build: ## Build every function and devkit (the default members), not the bench or chaos tools (PROFILE=debug|release)
	@cargo build --locked $(CARGO_PROFILE)

dev: bootstrap build ## The whole app on http://127.0.0.1:$(PORT): emulators, functions under aws-lambda-rie, API, triggers
	@infra/with-emulators.sh $(DEVKIT) --prefix $(DEV_PREFIX) dev --port $(PORT) --cpu-share $(CPU_SHARE) --chaos-port $(CHAOS_PORT) --console-port $(CONSOLE_PORT)

token: build ## Print a bearer token for the local API (SUB=alice SCOPES="orders:write orders:read")
	@$(DEVKIT) token --sub "$(SUB)" --scopes "$(SCOPES)"

invoke: bootstrap build ## Run one function's binary with an event: make invoke FN=CreateOrderFunction EVENT=events/create-order.json
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<logical id> EVENT=events/<file>.json" >&2; exit 2; }
	@infra/with-emulators.sh $(DEVKIT) --prefix "invoke-$$RANDOM$$RANDOM" invoke --function "$(FN)" --event "$(EVENT)"

package: ## sam build (arm64, cargo-lambda + zig) and each bootstrap's zipped size
	@infra/bootstrap.sh --package
	PATH="$(CURDIR)/.tools/sam/bin:$$PATH" .tools/sam/bin/sam build
	python3 infra/package-sizes.py .aws-sam/build

# BENCH_ARGS: say `--starts 5 --runs 1 --requests 100` for a quick look (see target/release/bench --help).
# BASE: a git revision (say HEAD~1) built in a worktree and measured in the same run, for before/after.
BENCH_ARGS ?=
BASE ?=
bench: package ## Cold start, warm latency/throughput, event latency, size and cost vs floor and Python peer (and BASE=<rev>) → BENCHMARKS.md
	@infra/bootstrap.sh --bench
	@cargo build --workspace --locked --release
	@baseline=$$(infra/bench/build-baseline.sh "$(BASE)"); \
	  infra/with-emulators.sh target/release/bench --root . $${baseline:+--baseline "$$baseline"} $(BENCH_ARGS)

bench-dev: ## A fresh clone's first make dev to its first 201, then a reload on save → BENCHMARKS.md's Developer loop
	@infra/bench/dev-loop.sh

# CHAOS_ARGS: say `--orders 1000 --users 200` for a shorter run (see target/release/chaos --help).
CHAOS_ARGS ?=
chaos: bootstrap ## 5,000 orders from 200 customers under a fault schedule, then the ledger → RELIABILITY.md (fails on any violation)
	@cargo build --workspace --locked --release
	target/release/chaos --bin-dir target/release --report RELIABILITY.md $(CHAOS_ARGS)

fmt: ## Format the code
	cargo fmt --all

clean: ## Remove build output and installed tools
	rm -rf target .tools infra/node_modules .aws-sam
