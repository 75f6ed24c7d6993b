# IPT Care Service — the only entry point. `make help` lists the targets.
# Needs only python3 and make: uv is installed into .tools/ on first use.

SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := .tools/bin/uv
RUN := $(UV) run --frozen
# uv uses the machine's Python 3.11 and never downloads an interpreter of its own.
export UV_PYTHON_DOWNLOADS := never
# As root the embedded PostgreSQL runs as a system user that `useradd` (in /usr/sbin) creates.
export PATH := $(PATH):/usr/sbin:/sbin

.PHONY: help install run test check lint typecheck openapi openapi-check helm bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: $(UV) uv.lock pyproject.toml packages/ipt-core/pyproject.toml services/ipt-api/pyproject.toml services/ipt-worker/pyproject.toml
	$(UV) sync --frozen
	@touch $@

install: .venv/.installed ## Install everything (uv, Python packages) from the lock file

run: install ## Run the service locally: embedded PostgreSQL, migrations, API and worker
	@# Authentication on with a local dev key (`ipt dev-token` mints tokens for it); settings
	@# already in the environment win, e.g. IPT_AUTH_MODE=disabled.
	eval "$$($(RUN) ipt dev-env)" && $(RUN) ipt run

test: install ## Run the whole test suite against real PostgreSQL (embedded, or TEST_DATABASE_URL)
	$(RUN) pytest

check: lint typecheck openapi-check helm ## Lint, type-check, OpenAPI drift, Helm chart checks

lint: install ## ruff: lint and formatting
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: install ## mypy --strict over every package and the tests
	$(RUN) mypy packages/ipt-core/src services/ipt-api/src services/ipt-worker/src tests bench examples

openapi: install ## Regenerate openapi/ipt-api.json from the app
	$(RUN) ipt openapi > openapi/ipt-api.json

openapi-check: install ## Fail when openapi/ipt-api.json is stale
	$(RUN) ipt openapi --check openapi/ipt-api.json

helm: install ## Lint, render and validate the Helm chart offline
	bash deploy/check-helm.sh .venv/bin

bench: install ## Run the benchmarks (not part of `make test`)
	$(RUN) python -m bench

clean: ## Remove installed tools, the virtual environment and local data
	rm -rf .tools .venv var .bench
