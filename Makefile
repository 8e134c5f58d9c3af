# ccip: VLASS Coarse Cube Imaging Pipeline on Airflow + CASA
#   make demo   set up, simulate a small field, run it through Airflow, end with the weblog's URL
#               (make demo KEEP=1: leave the Airflow UI running to look at the run)
#   make test   set up, then the whole test suite
#   make distributed-test  the DAG on CeleryExecutor/PostgreSQL/Redis with four workers: the fault drills (a worker killed, one frozen, an API outage)
#   make airflow  the Airflow UI on localhost:8080 with the project's DAGs
SHELL := /bin/bash
PYTHON ?= python3
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
FIELD ?= T10t02.J005000-023000
PRESET ?= small
KEEP ?= 0
PYTHON_NEEDED := 3.11

export AIRFLOW_HOME ?= $(ROOT)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(ROOT)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export CCIP_ARCHIVE_ROOT ?= $(ROOT)/.data/archive
export CCIP_WORK_ROOT ?= $(ROOT)/.data/work
export CCIP_CASA_DIR ?= $(ROOT)/.casa
export PYTHONUNBUFFERED := 1
# the UI's address in messages (the weblog's URL): the embedded Airflow's port
export CCIP_UI_URL ?= http://localhost:$(or $(AIRFLOW__API__PORT),8080)

.PHONY: check-python install casa-config airflow-db demo test test-fast distributed-test airflow airflow-stop simulate bench bench-parse bench-imaging bench-orchestration clean lock

# ccip needs Python 3.11 (CASA 6.7's wheels and the pinned Airflow); said before pip fails on another
check-python:
	@if [ -x $(PY) ]; then py=$(PY); else py=$(PYTHON); fi; \
	v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || { \
	  echo "ccip: no Python at '$$py': install Python $(PYTHON_NEEDED) (Debian/Ubuntu: apt-get install python3.11 python3.11-venv) and run: make PYTHON=python3.11 $(or $(MAKECMDGOALS),demo)" >&2; exit 1; }; \
	if [ "$$v" != "$(PYTHON_NEEDED)" ]; then \
	  echo "ccip: needs Python $(PYTHON_NEEDED) (casatools 6.7 and the pinned Airflow are built for it), '$$py' is Python $$v." >&2; \
	  echo "      Install python3.11 and python3.11-venv, then run: make PYTHON=python3.11 $(or $(MAKECMDGOALS),demo)" >&2; \
	  if [ -x $(PY) ]; then echo "      ($(VENV) was made with Python $$v: remove it first)" >&2; fi; exit 1; fi

$(VENV)/.installed: pyproject.toml constraints.txt | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	$(PY) -m pip install -q -c constraints.txt -e '.[test,distributed]'
	@touch $@

install: $(VENV)/.installed

casa-config: install
	$(PY) -m ccip_ops.casa_env

airflow-db: install
	@mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)

simulate: casa-config
	@if [ -d "$(CCIP_ARCHIVE_ROOT)/$(FIELD)" ]; then echo "field $(FIELD) already in $(CCIP_ARCHIVE_ROOT)"; \
	else $(VENV)/bin/ccip simulate --archive $(CCIP_ARCHIVE_ROOT) --field-id $(FIELD) --preset $(PRESET); fi

demo: casa-config airflow-db simulate
	@set -o pipefail; rc=0; $(PY) -m scripts.airflow_local run $(FIELD) || rc=$$?; \
	if [ "$(KEEP)" != 1 ]; then $(PY) -m scripts.airflow_local stop; fi; \
	run=$$(ls -td $(CCIP_WORK_ROOT)/$(FIELD)/*/ | head -1); \
	url=$$($(PY) -c "import sys; from ccip_ops.settings import weblog_url; print(weblog_url('vlass_se_cube', sys.argv[1]))" "$$(basename $$run)"); \
	echo ""; echo "Products:    $${run}products"; echo "Weblog file: $${run}html/index.html"; \
	if [ "$(KEEP)" = 1 ]; then $(PY) -m scripts.airflow_local login; echo "Airflow keeps running: make airflow-stop stops it"; \
	else echo "Airflow stopped: make airflow (or make demo KEEP=1) to browse the run"; fi; \
	echo "Weblog:      $$url"; exit $$rc

test: casa-config
	$(PY) -m pytest -ra tests

distributed-test: casa-config  # CeleryExecutor + PostgreSQL + Redis + 4 workers on loopback, the fault drills (also in make test)
	$(PY) -m pytest -ra -s tests/distributed

test-fast: casa-config
	$(PY) -m pytest -ra -m "not casa and not airflow" tests

airflow: casa-config airflow-db
	$(PY) -m scripts.airflow_local start
	@$(PY) -m scripts.airflow_local login
	@echo "Stop it with: make airflow-stop"

airflow-stop:
	$(PY) -m scripts.airflow_local stop

lock:  # regenerate the pinned dependency set from the current environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf .airflow .data .casa .pytest_cache

bench: bench-parse bench-imaging bench-orchestration  # on demand, never part of make test

bench-parse: install
	$(PY) bench/dag_parse.py

bench-imaging: casa-config
	$(PY) bench/imaging_scale.py

bench-orchestration: casa-config  # its own Airflow (AIRFLOW_HOME under bench/.work, free ports)
	$(PY) bench/orchestration.py
