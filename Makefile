# `make demo` shows the stack working; `make test` is the one command CI runs (.ci/run): it builds the environments it needs from
# scratch, checks formatting and types, and runs the whole test suite.
PYTHON ?= python3
VENV := .venv
CHECKOV_VENV := .venv-checkov
PY := $(VENV)/bin/python
GUARD := .cache/cfn-guard/cfn-guard

.PHONY: demo check test lint format typecheck mariadb clean

# Python caches compiled bytecode unless PYTHONDONTWRITEBYTECODE is set (some CI images set it):
# the suite starts its test workers, every `loanstack` subprocess, emulators and sandboxes from
# the same sources, and without the cache each one compiles them again (collection alone: 10.9 s
# of CPU per worker instead of 5.9 s). __pycache__/ is ignored by git.
unexport PYTHONDONTWRITEBYTECODE

# Every install takes its exact versions from a constraints file (moto above all: the emulator
# patches it, src/loanstack/emulator/patches.py), so CI builds the same environments each time.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,emulator]'
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt constraints-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -c constraints-checkov.txt --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -c constraints-checkov.txt -r requirements-checkov.txt
	touch $@

# AWS Control Tower's Guard rules and cfn-guard: the wheel pinned with its hash in
# constraints-guard.txt, downloaded once here (never at test time), unpacked under .cache/.
$(GUARD): constraints-guard.txt $(VENV)/.installed
	$(PY) -m loanstack.compliance.control_tower

# Deploy the dev stack on the embedded emulator, try it, rotate its password, destroy it.
demo: $(VENV)/.installed mariadb
	$(PY) -m loanstack demo

# Every judge of the template (cfn-lint, checkov, own checks, Control Tower rules); builds the
# checkov environment first, so it works right after `make demo`.
check: $(VENV)/.installed $(CHECKOV_VENV)/.installed $(GUARD)
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m loanstack check

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench lib/functions
	$(VENV)/bin/ruff format --check src tests bench lib/functions

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests bench lib/functions
	$(VENV)/bin/ruff check --fix src tests bench lib/functions

# mypy --strict (pyproject's [tool.mypy]) on the tool, then on each Lambda function on its own:
# they are top-level modules all named `index`, so one run cannot hold two of them.
typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy
	for f in lib/functions/*/index.py; do $(VENV)/bin/mypy "$$f" || exit 1; done

mariadb:
	./scripts/ensure-mariadb.sh

# pytest runs on three workers (pyproject's addopts: -n 3 --dist loadgroup; docs/testing.md).
test: $(VENV)/.installed $(CHECKOV_VENV)/.installed $(GUARD) mariadb lint typecheck
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .cache/cfn-guard .pytest_cache .mypy_cache .ruff_cache
