# newsdesk: two commands from nothing: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck quality bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/newsdesk demo

test: setup lint typecheck
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check flows transforms warehouse tests bench

typecheck: setup
	$(VENV)/bin/mypy

quality: setup
	$(PY) -m bench.extraction_quality --corpus aeb

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.duckdb.wal
