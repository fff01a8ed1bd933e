# Every target installs what it needs first, so a fresh clone works with one command.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Debian's chromium (and a CJK font, so Chinese and Japanese names render) for the report's
# screenshot and its browser test; installed when missing, which needs root.
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc

# The Airflow integration tests run from a venv of their own, so that Airflow's pins never
# constrain ours: Airflow (the version below, resolved by pip: Airflow's constraint files are
# not on PyPI) and this project, editable. Made when missing, made anew when pyproject.toml
# or the Airflow version changes.
AIRFLOW_VERSION := 3.3.2
AF_VENV  := .venv-airflow
AF_BIN   := $(AF_VENV)/bin
AF_STAMP := $(AF_VENV)/.installed-airflow-$(AIRFLOW_VERSION)

.PHONY: install browser timer postgres demo test lint test-integration airflow-venv bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

browser:
	@if command -v chromium >/dev/null && [ -e $(CJK_FONT) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; \
	else \
		echo "chromium (or its CJK font) is missing and installing it needs root: run" \
			"'sudo apt-get install chromium fonts-wqy-microhei'. Until then \`make demo\` writes no" \
			"screenshot and \`make test\` fails its browser test." >&2; \
	fi

# GNU time (/usr/bin/time -v) measures the benchmarks' wall time and peak memory.
timer:
	@if [ -x /usr/bin/time ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; \
	else \
		echo "/usr/bin/time is missing and installing it needs root: run 'sudo apt-get install time'." >&2; \
	fi

# Debian's PostgreSQL server, which the tests start (a cluster of their own on a free port) to
# load into it and check that the models give the same rows there as on DuckDB.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
		echo "PostgreSQL is missing and installing it needs root: run 'sudo apt-get install postgresql'." \
			"Until then \`make test\` fails its PostgreSQL tests." >&2; \
	fi

demo: install browser
	$(BIN)/workspace-images demo --db demo.duckdb --replace

# one pytest worker per core (pytest-xdist), a test file to a worker, so that a file's
# module-scoped fixtures (the PostgreSQL server, the report's database) start once
test: install browser timer postgres
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# ruff over the Python (the rules in pyproject.toml's [tool.ruff.lint]), mypy over the package's
# sources/ and pipelines/ ([tool.mypy]) and sqlfluff over the models (.sqlfluff, read from this
# folder); .ci/run runs it
lint: install
	$(BIN)/ruff check pipelines sources simulator bench tools tests
	$(BIN)/mypy
	$(BIN)/sqlfluff lint sql

airflow-venv: $(AF_STAMP)

$(AF_STAMP): pyproject.toml
	rm -rf $(AF_VENV)
	$(PYTHON) -m venv $(AF_VENV)
	$(AF_BIN)/python -m pip install --quiet --upgrade pip
	$(AF_BIN)/python -m pip install --quiet 'apache-airflow==$(AIRFLOW_VERSION)' 'pytest>=8' 'pytest-xdist>=3.5' -e '.[postgres]'
	touch $(AF_STAMP)

# `airflow dags test` of the DAG against the simulator (tests/integration/, which `make test` skips);
# each test has an Airflow home of its own, so they share the cores test by test
test-integration: $(AF_STAMP)
	$(AF_BIN)/python -m pytest -q -n auto --dist load tests/integration

# bench/RESULTS.md holds what this printed last; each benchmark compares against its baselines in one run
# the package's bytecode is compiled first, as pip does when it installs the wheel (an editable
# install leaves it to the first import, which PYTHONDONTWRITEBYTECODE=1 makes every import)
bench: install timer
	$(BIN)/python -m compileall -q pipelines sources simulator sql bench
	$(BIN)/python -m bench.run_load --repeat 3
	$(BIN)/python -m bench.growth
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.throttle
	$(BIN)/python -m bench.fetch_breakdown
	$(BIN)/python -m bench.row_paths
	$(BIN)/python -m bench.models_rebuild --repeat 3
	$(BIN)/python -m bench.report_export --repeat 3
	$(BIN)/python -m bench.hostile

# the generated parts of docs/ (the CLI reference, from the parser); tests/test_docs.py checks them
docs: install
	$(BIN)/python -m tools.docs

clean:
	rm -rf $(VENV) $(AF_VENV) .mypy_cache *.duckdb *.duckdb.lock *_report.html *_report.png .workspace_images build *.egg-info
