# Set-up is part of every target: a fresh clone needs only Python 3.11 and gcc.
# `make demo` installs what the demo needs (the package and its examples extra);
# `make test` everything (the test extra: onnx, hf, cross, examples, torch, pytest...).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.created
DEMO_STAMP := $(VENV)/.installed-examples
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test onnx-conformance bench generate lint clean qemu-user chromium

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(DEMO_STAMP): pyproject.toml $(VENV_STAMP)
	$(PY) -m pip install --quiet -e ".[examples]"
	touch $@

# The test extra holds the examples extra, so the demo's stamp is fresh after it too.
$(TEST_STAMP): pyproject.toml $(VENV_STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(DEMO_STAMP)

# Each target first builds the c backend's runtime unit (GEMM, conv) unless it is built for
# this runtime and CPU (`python -m aot.build.prebuild`): the first model then compiles only
# its own kernels.
demo: $(DEMO_STAMP)
	$(PY) -m aot.build.prebuild >/dev/null
	$(PY) examples/demo.py
	$(PY) examples/export_demo.py

test: $(TEST_STAMP) qemu-user chromium
	$(PY) -m aot.build.prebuild >/dev/null
	$(PY) -m generators.generate --check
	$(PY) -m mypy
	$(PY) -m pytest -n 2 tests

# ONNX's whole backend test suite on both backends (`make test` runs one node test per
# operator): every supported node test plus the simple and pytorch model tests.
onnx-conformance: $(TEST_STAMP)
	MLF_ONNX_CONFORMANCE=full $(PY) -m pytest -n 2 -q tests/models/onnx/test_conformance.py

# The aotc cross-target tests run aarch64 builds under qemu-user (Debian package).
qemu-user:
	@command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q qemu-user >/dev/null || (apt-get update -q && apt-get install -y -q qemu-user); \
	  else echo "warning: qemu-user is missing and cannot be installed (not root); install it" \
	    "(apt-get install qemu-user) or the aarch64 aotc test fails"; fi

# The `aotc inspect` page is tested in headless Chromium (Debian package).
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium); \
	  else echo "warning: chromium is missing and cannot be installed (not root); install it" \
	    "(apt-get install chromium) or the aotc inspect browser test fails"; fi

bench: $(TEST_STAMP)
	$(PY) -m aot.build.prebuild >/dev/null
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=median,iqr,ops

generate: $(DEMO_STAMP)
	$(PY) -m generators.generate

lint: $(DEMO_STAMP)
	$(PY) -m pip install --quiet -e ".[lint]"
	$(PY) -m generators.generate --check
	$(PY) -m ruff check mlframework aot generators tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info
