# Fleet platform. `make run` and `make test` bootstrap everything they need:
# uv comes from PyPI when missing; the machine's python3 (>= 3.11) is used, never a download.

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
# The interpreter itself, not a pyenv shim: uv would otherwise see another Python and rebuild .venv.
export UV_PYTHON := $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
export UV_PYTHON_DOWNLOADS := never
# Trust the machine's certificate store (corporate or sandbox CAs live there, not in uv's bundle).
export UV_SYSTEM_CERTS ?= 1
export UV_LINK_MODE := copy

HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
BENCH_REPORT_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run run-distributed test lint format typecheck check bench bench-compare bench-report clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found: installing it from PyPI into .tools/"
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.tools uv

install: $(UV) ## Create .venv with every package of the workspace and the dev tools
	@$(UV) sync --locked --all-packages

run: install ## Start the whole platform in one process (embedded: SQLite, in-memory bus)
	@$(UV) run --locked fleet run --host $(HOST) --port $(PORT)

run-distributed: install ## One process per service + gateway on $(PORT) (PostgreSQL, RabbitMQ, Redis)
	@DATABASE_URL=$${DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/fleet} \
	 AMQP_URL=$${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/} \
	 REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	 $(UV) run --locked fleet run --distributed --host $(HOST) --port $(PORT)

test: install ## Run the whole test suite (needs PostgreSQL, RabbitMQ, Redis; see .ci/run)
	@$(UV) run --locked pytest $(PYTEST_ARGS)

lint: install ## ruff: lint and format check
	@$(UV) run --locked ruff check .
	@$(UV) run --locked ruff format --check .

format: install ## ruff: fix and format
	@$(UV) run --locked ruff check --fix .
	@$(UV) run --locked ruff format .

typecheck: install ## mypy --strict on the service kit, the services' domains, the benchmarks and the tests
	@$(UV) run --locked mypy libs/common/src libs/contracts/src apps/fleet/src $(wildcard services/*/src/fleet/*/domain) bench \
	  conftest.py tests $(wildcard libs/*/tests apps/*/tests services/*/tests)

check: lint typecheck test ## Everything CI runs

bench: install ## Benchmarks (figures printed; see docs/performance.md)
	@for b in $(filter-out bench/report.py bench/compare.py,$(wildcard bench/*.py)); do \
	  echo "== $$b"; $(UV) run --locked python $$b || exit 1; done

bench-compare: install ## Booking benchmark of this checkout vs AGAINST (a git revision), both at once
	@PATH="$(dir $(UV)):$$PATH" $(UV) run --locked python bench/compare.py --against $(or $(AGAINST),HEAD~1) $(if $(BENCH_ARGS),-- $(BENCH_ARGS))

bench-report: install ## Markdown report of the latest benchmark results (BENCH_REPORT_ARGS="--all --output FILE")
	@$(UV) run --locked python bench/report.py $(BENCH_REPORT_ARGS)

clean: ## Remove the virtualenv, caches and embedded data
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache data
