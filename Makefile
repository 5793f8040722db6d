# Set-up is part of every target: a fresh clone needs only Python 3.11 and gcc.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench generate lint clean qemu-user

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py
	$(PY) examples/export_demo.py

test: $(STAMP) qemu-user
	$(PY) -m generators.generate --check
	$(PY) -m pytest -n 2 tests

# The aotc cross-target tests run aarch64 builds under qemu-user (Debian package).
qemu-user:
	@command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q qemu-user >/dev/null || (apt-get update -q && apt-get install -y -q qemu-user); \
	  else echo "warning: qemu-user is missing and cannot be installed (not root); install it" \
	    "(apt-get install qemu-user) or the aarch64 aotc test fails"; fi

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
