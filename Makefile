# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-deps test-deps bench-deps demo test lint bench clean

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

# Tools tests use as root (setpriv and unshare from util-linux, mount), libvips's vips (to write a TIFF as libvips
# does), chromium, node and npm for the HTTP front end's browser and JavaScript client tests, and the bench's
# HTTP load generator and reference server (wrk, nginx; tests/test_bench.py runs the bench; the remote-source
# tests serve their files with nginx, and with moto's S3 server from the test extra): installed
# automatically when run as root. Where they are missing, those tests fail rather than skip (tests/mounting.py,
# tests/devtools.py, tests/node_clients.py, scripts/bench/servers.py).

# $(call require_tools,TOOLS,PACKAGES,WHO NEED): when a tool is missing, install the packages as root, else say
# which to install and fail. (nginx lives in /usr/sbin, which other users may not have on their PATH.)
define require_tools
@missing=; for tool in $(1); do PATH="$$PATH:/usr/sbin:/sbin" command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
    echo "installing $(2) (for:$$missing)"; \
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
  else \
    echo "$(3)$$missing: install $(2) (e.g. sudo apt-get install $(2))"; \
    exit 1; \
  fi; \
fi
endef

BENCH_TOOLS := wrk nginx
BENCH_PACKAGES := wrk nginx-light
TEST_TOOLS := setpriv unshare mount vips chromium node npm $(BENCH_TOOLS)
TEST_PACKAGES := util-linux mount libvips-tools chromium nodejs npm $(BENCH_PACKAGES)
# The npm packages of tests/js (zarrita), installed once into a cache that outlives test runs.
NODE_CACHE ?= $(HOME)/.cache/zarrfs-tests/node
test-deps:
	$(call require_tools,$(TEST_TOOLS),$(TEST_PACKAGES),tests need)
	@mkdir -p $(NODE_CACHE)
	@if ! cmp -s tests/js/package.json $(NODE_CACHE)/package.json || [ ! -d $(NODE_CACHE)/node_modules ]; then \
	  cp tests/js/package.json $(NODE_CACHE)/package.json && \
	  (cd $(NODE_CACHE) && npm install --no-audit --no-fund --loglevel=error); \
	fi

demo: setup
	$(PY) scripts/demo.py

# Tests that need FUSE (or the tools above) fail where they cannot run; ZARRFS_REQUIRE_FUSE=0 skips them instead,
# and the run ends with their count. Any non-zero pytest exit fails the target, 5 (no test collected) included.
test: lint test-deps
	$(PY) -m pytest

# The bench's HTTP rows need wrk and nginx (Debian packages wrk, nginx-light): installed automatically as root.
bench-deps:
	$(call require_tools,$(BENCH_TOOLS),$(BENCH_PACKAGES),the bench needs)

# Benchmarks against the alternatives users would pick (scripts/bench/); writes BENCHMARKS.md.
# Cost: full run ~20-27 min (plus ~6 min to generate the images the first time) and ~11 GB free disk in --workdir; --quick ~8-14 min and ~0.7 GB (longer on a busy machine: each timed read first waits up to 20 s for quiet).
bench: setup bench-deps
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m scripts.bench --output BENCHMARKS.md

lint: setup
	$(PY) -m ruff check zarrfs tests scripts
	$(PY) -m ruff format --check zarrfs tests scripts
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
