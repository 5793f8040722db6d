# Set-up is part of every target: a fresh clone needs only Python 3.11 and gcc.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench generate lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m generators.generate --check
	$(PY) -m pytest -n 2 tests

bench: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=median,iqr,ops

generate: $(STAMP)
	$(PY) -m generators.generate

lint: $(STAMP)
	$(PY) -m pip install --quiet -e ".[lint]"
	$(PY) -m generators.generate --check
	$(PY) -m ruff check mlframework aot generators tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info
