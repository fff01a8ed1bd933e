# Every target installs what it needs first, so a fresh clone works with one command.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/workspace-images demo --db demo.duckdb --replace

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench.run_load --repeat 3

clean:
	rm -rf $(VENV) *.duckdb .workspace_images build *.egg-info
