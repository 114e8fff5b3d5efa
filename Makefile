# politikpi — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LANDING ?= $(or $(POLITIKPI_LANDING),data/landing)
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: venv run test test-fast mutate rules lint docs bench drill fleet-drill chaos soak serve clean clean-data chromium

# uv installs the locked set (constraints.txt) in seconds where pip takes half a minute; if uv
# cannot reach the registry (an index only pip is configured for), pip does it. uv compiles the
# bytecode at install (pip does by default): where PYTHONDONTWRITEBYTECODE is set, as on CI, Python
# would otherwise compile every library from source in every process (~3 s a refresh).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]' || \
		$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# duckdb-cli 1.4.4's wheel installs its binary without the run bit
	if [ -f $(BIN)/duckdb ]; then chmod +x $(BIN)/duckdb; fi
	touch $(STAMP)

venv: $(STAMP)

## make run: install, write the 2019 sample if no landing data exists, refresh, print the overview
run: venv
	@if [ -z "$$(ls -A $(LANDING) 2>/dev/null)" ]; then \
		$(BIN)/politikpi sample --year 2019 --out $(LANDING); fi
	$(BIN)/politikpi refresh --landing $(LANDING)
	$(BIN)/politikpi overview

## make test: install or update .venv, lint (ruff), run the whole suite (TEST_WORKERS processes, a test
## file each at a time: its module fixtures are built once; each worker has its own Prefect test server)
## Three workers on CI's two cores: the slow tests mostly wait on servers and processes (7 min 40 s
## against 7 min 59 s with two and two tests fewer, docs/performance.md).
TEST_WORKERS ?= 3
test: venv chromium lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

## make test-fast: the value tests only (tests marked `fast` in tests/conftest.py: no Prefect server, no
## `politikpi` process), the tier `make mutate` runs against each mutant
test-fast: venv
	$(BIN)/python -m pytest -q -n 2 -m fast

## make mutate: plant each mutant of sql/, schemas/, disclosure and the threshold (mutate/) and run the fast
## tier against it; prints the score and every survivor (ONLY=sql/kpi to mutate some files; JOBS copies at once;
## AGAIN=1 re-runs only what the last run did not kill)
mutate: venv
	$(BIN)/python -m mutate $(if $(ONLY),--only $(ONLY)) $(if $(AGAIN),--again) --jobs $(or $(JOBS),2)

## make rules: each rule of SPEC 2.5, 4, 4.1 and 5 with its bug planted (mutate/rules.toml): its test must
## fail; writes docs/rules.md (RULE=4.1 for one section or the rules holding a word, without the doc)
rules: venv
	$(BIN)/python -m mutate --rules $(if $(RULE),--rule $(RULE),--doc)

# Debian's chromium for the report's screenshot test; where apt-get cannot, that test skips.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
		   apt-get install -y -q chromium >/dev/null 2>&1)) ) || \
		echo "chromium not installed: the report screenshot test will be skipped"

lint: venv
	$(BIN)/ruff check flows schemas sample tests bench mutate

## make docs: the table reference in docs/kpis.md, generated from the models' .toml files
docs: venv
	$(BIN)/politikpi docs

## make bench: the benchmarks (figures printed as tables); chaos and soak for the guarantees
bench: venv
	$(BIN)/python bench/run_all.py --readme
	$(BIN)/python bench/extract_bench.py

## make drill: several workers on one state (PostgreSQL server, two process workers, manual runs)
drill: venv
	$(BIN)/python bench/ops_drill.py

## make fleet-drill: the country's night (PostgreSQL server with basic auth, two process workers, the 12
## districts' 2019 samples and a new day each, a failed district, a killed worker, the national release)
fleet-drill: venv
	$(BIN)/python bench/country_drill.py

chaos: venv
	$(BIN)/python bench/chaos.py --kills 60

soak: venv
	$(BIN)/python bench/soak.py --readers 20 --releases 20

## make clean: the virtualenv and caches only; never landing data, the state or the warehouse
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis bench/out
	find flows schemas tests bench -name __pycache__ -type d -prune -exec rm -rf {} +

## make clean-data CONFIRM=yes: delete the state (archive, staged rows, quarantine) and every
## release; the landing folder is never touched. The next refresh re-ingests the landing folder.
clean-data:
	@if [ "$(CONFIRM)" != "yes" ]; then \
		echo "clean-data deletes $(or $(POLITIKPI_STATE),data/state) (with the archive of every ingested file) and every release in $(or $(POLITIKPI_WAREHOUSE),warehouse); run: make clean-data CONFIRM=yes"; exit 2; fi
	rm -rf $(or $(POLITIKPI_STATE),data/state)
	rm -rf $(addprefix $(or $(POLITIKPI_WAREHOUSE),warehouse)/,releases docs reports .building politikpi.duckdb manifest.json .lock)

## make serve: a Prefect server on 127.0.0.1 and the nightly deployment (02:00 Europe/Copenhagen)
serve: venv
	$(BIN)/politikpi serve
