# `make test` installs whatever is missing (system servers, the venv) and runs lint + tests.
PYTHON ?= python3
VENV := .venv
# Re-install when the project's dependencies change.
STAMP := $(VENV)/.installed

.PHONY: venv deps lint test demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

deps:
	bash deploy/install-deps.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: deps venv lint
	$(VENV)/bin/python -m pytest

demo: deps venv
	$(VENV)/bin/python deploy/demo.py

clean:
	rm -rf $(VENV) .demo build *.egg-info .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
