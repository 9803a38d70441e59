# The README's two commands: `make run` and `make test`. Everything is installed from this repo's files.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install run test dev demo-data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

demo-data: install
	$(BIN)/tqc demo-data --if-absent

run: demo-data
	$(BIN)/tqc run

test: install
	bash scripts/ensure-chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider

dev: demo-data
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

clean:
	rm -rf $(VENV) data/lake
