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

.PHONY: help install run test check lint layers typecheck openapi openapi-check helm bench bench-memory clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: $(UV) uv.lock pyproject.toml packages/ipt-core/pyproject.toml services/ipt-api/pyproject.toml services/ipt-worker/pyproject.toml
	$(UV) sync --frozen
	@touch $@

# sekmet-fhir, the third-party FHIR server the EHR sync tests run against, pins its own FastAPI and
# pydantic: it lives in a virtual environment of its own, from a hash-pinned requirements file.
SEKMET := .tools/sekmet
$(SEKMET)/.installed: $(UV) tests/peers/sekmet-requirements.txt
	$(UV) venv --quiet --allow-existing $(SEKMET)
	$(UV) pip install --quiet --python $(SEKMET)/bin/python --require-hashes -r tests/peers/sekmet-requirements.txt
	@touch $@


# The contract tests drive a JavaScript FHIR client too: installed here from its lock file, never
# during the tests. Without npm this step is skipped (and so is that test, saying why).
NODE_CLIENTS := tests/contract/node
$(NODE_CLIENTS)/node_modules/.package-lock.json: $(NODE_CLIENTS)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(NODE_CLIENTS) --no-audit --no-fund --silent; \
	else echo "npm not found: the Medplum client contract test will be skipped"; fi


install: .venv/.installed $(SEKMET)/.installed $(NODE_CLIENTS)/node_modules/.package-lock.json ## Install everything (uv, Python packages, sekmet, npm test clients) from the lock files

run: install ## Run the service locally: embedded PostgreSQL, migrations, API and worker
	@# Authentication on with a local dev key (`ipt dev-token` mints tokens for it); settings
	@# already in the environment win, e.g. IPT_AUTH_MODE=disabled.
	eval "$$($(RUN) ipt dev-env)" && $(RUN) ipt run

test: install ## Run the whole test suite against real PostgreSQL (embedded, or TEST_DATABASE_URL)
	$(RUN) pytest

check: lint layers typecheck openapi-check helm ## Lint, import layers, type-check, OpenAPI drift, Helm chart checks

lint: install ## ruff: lint and formatting
	$(RUN) ruff check .
	$(RUN) ruff format --check .

layers: install ## import-linter: the layering contracts in pyproject.toml (docs/architecture.md)
	$(RUN) lint-imports

typecheck: install ## mypy --strict over every package and the tests
	$(RUN) mypy packages/ipt-core/src services/ipt-api/src services/ipt-worker/src tests bench examples

openapi: install ## Regenerate openapi/ipt-api.json from the app
	$(RUN) ipt openapi > openapi/ipt-api.json

openapi-check: install ## Fail when openapi/ipt-api.json is stale
	$(RUN) ipt openapi --check openapi/ipt-api.json

helm: install ## Lint, render and validate the Helm chart offline
	bash deploy/check-helm.sh .venv/bin

# ARGS selects scenarios and servers, e.g. ARGS="--scenarios read,search --servers ours,limit".
bench: install ## Benchmark ours vs a peer FHIR server vs the bare stack (bench/results/)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
		|| { echo "wrk is missing: sudo apt-get install -y wrk (Debian/Ubuntu)"; exit 1; }
	$(RUN) python -m bench $(ARGS)

bench-memory: install ## The API's RSS over 1,000,000 reads after warm-up (bench/results/memory.md)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
		|| { echo "wrk is missing: sudo apt-get install -y wrk (Debian/Ubuntu)"; exit 1; }
	$(RUN) python -m bench memory $(ARGS)

clean: ## Remove installed tools, the virtual environment and local data
	rm -rf .tools .venv var .bench
