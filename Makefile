# orders — developer entry points. `make test` and `make dev` install what they need first.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .tools/venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CARGO_TERM_COLOR := never

.PHONY: help bootstrap lint test dev fmt clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## Install the emulators and Python tools (idempotent, into git-ignored folders)
	@infra/bootstrap.sh

lint: bootstrap ## cargo fmt --check, clippy -D warnings, cfn-lint
	cargo fmt --all -- --check --color never
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cfn-lint template.yaml

test: lint ## Lint, then every test, with DynamoDB Local started on a free port
	infra/with-emulators.sh cargo test --workspace --locked --no-fail-fast

dev: bootstrap ## Run the whole app locally (not yet: the local app runner comes with issue 4)
	@echo "make dev: the local app runner is not built yet; run 'make test' for the emulator-backed suite." >&2
	@exit 1

fmt: ## Format the code
	cargo fmt --all

clean: ## Remove build output and installed tools
	rm -rf target .tools infra/node_modules
