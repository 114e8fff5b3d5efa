# politikpi — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LANDING ?= $(or $(POLITIKPI_LANDING),data/landing)
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: venv run test lint bench chaos soak serve clean chromium

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make run: install, write the 2019 sample if no landing data exists, refresh, print the overview
run: venv
	@if [ -z "$$(ls -A $(LANDING) 2>/dev/null)" ]; then \
		$(BIN)/politikpi sample --year 2019 --out $(LANDING); fi
	$(BIN)/politikpi refresh --landing $(LANDING)
	$(BIN)/politikpi overview

## make test: install or update .venv and run the whole suite
test: venv chromium
	$(BIN)/python -m pytest -q

# Debian's chromium for the report's screenshot test; where apt-get cannot, that test skips.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
		   apt-get install -y -q chromium >/dev/null 2>&1)) ) || \
		echo "chromium not installed: the report screenshot test will be skipped"

lint: venv
	$(BIN)/ruff check flows schemas tests bench

## make bench: the benchmarks (figures printed as tables); chaos and soak for the guarantees
bench: venv
	$(BIN)/python bench/run_all.py
	$(BIN)/python bench/extract_bench.py

chaos: venv
	$(BIN)/python bench/chaos.py --kills 60

soak: venv
	$(BIN)/python bench/soak.py --readers 20 --releases 20

clean:
	rm -rf $(VENV) data warehouse/releases warehouse/*.duckdb warehouse/manifest.json

## make serve: a Prefect server on 127.0.0.1 and the nightly deployment (02:00 Europe/Copenhagen)
serve: venv
	$(BIN)/politikpi serve
