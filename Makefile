# One-word entry points: `make demo` and `make test` are the whole quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint fmt install prometheus schema clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "funnel needs Python 3.11 or newer; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: the main job on the embedded broker, with a live view (Ctrl-C stops everything)
demo: $(STAMP)
	$(BIN)/funnel demo

## test: lint, then every test (needs Prometheus' promtool: installed here when root)
test: $(STAMP) prometheus lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check stream schemas tests
	$(BIN)/ruff format --check stream schemas tests
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format stream schemas tests
	$(BIN)/ruff check --fix stream schemas tests

## prometheus: Debian's prometheus package (server and promtool) for the rule and live tests
prometheus:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's prometheus package (promtool and server)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else \
	    echo "promtool is missing: run 'sudo apt-get install prometheus', then 'make test' again"; exit 1; \
	  fi; \
	fi

schema: $(STAMP)
	$(BIN)/funnel schema

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
