# `make demo` shows the stack working; `make test` is the one command CI runs (.ci/run): it builds the environments it needs from
# scratch, checks formatting and types, and runs the whole test suite.
PYTHON ?= python3
VENV := .venv
CHECKOV_VENV := .venv-checkov
PY := $(VENV)/bin/python

.PHONY: demo check test lint format typecheck mariadb clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

# Deploy the dev stack on the embedded emulator, try it, rotate its password, destroy it.
demo: $(VENV)/.installed mariadb
	$(PY) -m loanstack demo

# Every judge of the template (cfn-lint, checkov, own checks, Control Tower rules); builds the
# checkov environment first, so it works right after `make demo`.
check: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m loanstack check

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench lib/functions
	$(VENV)/bin/ruff format --check src tests bench lib/functions

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests bench lib/functions
	$(VENV)/bin/ruff check --fix src tests bench lib/functions

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

mariadb:
	./scripts/ensure-mariadb.sh

test: $(VENV)/.installed $(CHECKOV_VENV)/.installed mariadb lint typecheck
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache
