# One-word entry points: `make demo` and `make test` are the whole quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint fmt install lock system-packages schema bench soak clean

# Every install is constrained by the lock file, requirements.txt (make lock): the same
# versions here, in CI and in the Dockerfile. The venv's own pip is used as it is.
# The install also compiles the modules stream/compiled.py names (setup.py, mypyc): an edit to
# one of them makes the next `make` compile them again.
COMPILED := $(shell $(PYTHON) stream/compiled.py)

$(STAMP): pyproject.toml requirements.txt setup.py stream/compiled.py $(COMPILED)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "funnel needs Python 3.11 or newer; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.txt -e '.[dev,bench]'
	@touch $(STAMP)

install: $(STAMP)

## demo: the main job on the embedded broker, with a live view (Ctrl-C stops everything);
## configured by examples/funnel.toml unless FUNNEL_CONFIG names another file
demo: $(STAMP)
	FUNNEL_CONFIG="$${FUNNEL_CONFIG:-examples/funnel.toml}" $(BIN)/funnel demo

## lock: resolve pyproject.toml's dependencies (all extras) again into requirements.txt;
## pins already there are kept unless `make lock LOCK_FLAGS=--upgrade`
LOCK_FLAGS ?=
lock: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
	  --custom-compile-command 'make lock' --quiet $(LOCK_FLAGS) -o requirements.txt

# uv alone, at its locked version, so `make lock` works even while the lock is out of date
$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.txt uv

## test: lint, then every test (needs Debian's prometheus, chromium and docker-compose), two
## at a time: a test mostly waits on its processes and the broker (the whole run used about
## half of the wall time in CPU when it ran one at a time), and each of the two pytest-xdist
## workers has its own embedded broker (tests/conftest.py). TEST_WORKERS=0 runs one at a time.
TEST_WORKERS ?= 2
test: $(STAMP) system-packages lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check stream schemas tests bench setup.py
	$(BIN)/ruff format --check stream schemas tests bench setup.py
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format stream schemas tests bench
	$(BIN)/ruff check --fix stream schemas tests bench

## system-packages: what the tests run for real: Prometheus (server, promtool) for the rule and
## live checks, amtool for alert routing, Chromium for the HTML report, stunnel4 and openssl
## for the TLS test, docker-compose to validate the compose file.
SYSTEM_TOOLS := promtool:prometheus amtool:prometheus-alertmanager chromium:chromium \
                stunnel4:stunnel4 openssl:openssl docker-compose:docker-compose
system-packages:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Run 'sudo apt-get install -y$$missing', then 'make test' again"; exit 1; \
	  fi; \
	fi

## bench: the benchmark harness (docs/performance.md); not part of make test
bench: $(STAMP)
	$(BIN)/python -m bench

## soak: one worker for SOAK_MINUTES at 5,000 events/s with 200,000 open leads and Prometheus
## scraping it; exits non-zero when a criterion fails (docs/reliability.md); not part of make test
SOAK_MINUTES ?= 20
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

schema: $(STAMP)
	$(BIN)/funnel schema

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache build stream/compiled.json
	rm -f *__mypyc*.so stream/*/*.so
