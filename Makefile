# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test lint bench clean

setup: system-deps $(STAMP)

# The FUSE runtime (libfuse3 + fusermount3) comes from the system; installed automatically when run as root.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so' || ! command -v fusermount3 >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing fuse3 (libfuse3 + fusermount3)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 libfuse3-3 >/dev/null; \
	  else \
	    echo "zarrfs needs the FUSE runtime: install the 'fuse3' package (e.g. sudo apt-get install fuse3)"; \
	    exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m ruff check zarrfs tests scripts
	$(PY) -m ruff format --check zarrfs tests scripts
	$(PY) -m pytest

# Benchmarks against the alternatives users would pick (scripts/bench/); writes BENCHMARKS.md.
# Cost: full run ~15-20 min (plus ~4 min to generate the images the first time) and ~8 GB free disk in --workdir; --quick ~5-10 min and ~0.5 GB (longer on a busy machine: each timed read first waits up to 20 s for quiet).
bench: setup
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m scripts.bench --output BENCHMARKS.md

lint: setup
	$(PY) -m ruff check zarrfs tests scripts
	$(PY) -m ruff format --check zarrfs tests scripts

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
