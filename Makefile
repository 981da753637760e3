# The two commands a newcomer needs are `make demo` and `make test`.
# Everything is installed into .venv through pip; nothing is installed system-wide.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

HOST      ?= 127.0.0.1
PORT      ?= 1026
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv serve demo test check bench bench-pg clean

help:
	@echo "make demo      run the demo city on http://$(HOST):$(PORT)"
	@echo "make serve     run the NGSI-LD broker on the SQLite store in ./data"
	@echo "make test      format, lint, type and test checks (scripts/check)"
	@echo "make bench     HTTP load benchmark on SQLite (needs wrk)"
	@echo "make bench-pg  HTTP load benchmark on PostgreSQL (needs wrk and a local server)"
	@echo "make venv      create .venv and install the package with its test tools"

venv: $(STAMP)

# The stamp makes a second `make venv` instant; it is redone when the dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# No --store: the default is the embedded SQLite file under ./data.
serve: $(STAMP)
	@mkdir -p data
	$(BIN)/cityverse serve --host $(HOST) --port $(PORT)

# The demo city (Berkane) on its own store in ./data/demo, with its devices and story.
demo: $(STAMP)
	$(BIN)/cityverse demo --host $(HOST) --port $(PORT)

check: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/check

test: check

bench: $(STAMP)
	$(BIN)/python bench/http_load.py --store sqlite $(BENCH_ARGS)

bench-pg: $(STAMP)
	$(BIN)/python bench/http_load.py --store postgres $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis src/*.egg-info
