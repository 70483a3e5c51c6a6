# Fleet platform. `make run` and `make test` bootstrap everything they need:
# uv comes from PyPI when missing; the machine's python3 (>= 3.11) is used, never a download.

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export UV_PYTHON := $(shell command -v $(PYTHON))
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test lint format typecheck check bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found: installing it from PyPI into .tools/"
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.tools uv

install: $(UV) ## Create .venv with every package of the workspace and the dev tools
	@$(UV) sync --locked --all-packages

run: install ## Start the whole platform in one process (embedded: SQLite, in-memory bus)
	@$(UV) run --frozen fleet run --host $(HOST) --port $(PORT)

test: install ## Run the whole test suite (needs PostgreSQL, RabbitMQ, Redis; see .ci/run)
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: install ## ruff: lint and format check
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .

format: install ## ruff: fix and format
	@$(UV) run --frozen ruff check --fix .
	@$(UV) run --frozen ruff format .

typecheck: install ## mypy --strict on the service kit and the services' domains
	@$(UV) run --frozen mypy libs/common/src $(wildcard services/*/src/fleet/*/domain)

check: lint typecheck test ## Everything CI runs

bench: install ## Benchmarks (figures printed; see docs/performance.md)
	@for b in bench/*.py; do echo "== $$b"; $(UV) run --frozen python $$b || exit 1; done

clean: ## Remove the virtualenv, caches and embedded data
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache data
