# The README's two commands: `make run` and `make test`. Everything is installed from this repo's files.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
PORT ?= 3000
# Test processes. 1 (the default): one pytest process. More (make test TEST_WORKERS=3): pytest-xdist, a test module
# per process at a time; not the default, because in 1 of 4 such runs a worker died of a segmentation fault in a
# Hugging Face `datasets` test (README: "The test suite"). --max-worker-restart 0: a crashed worker ends the session
# with the crash reported, where replacing it makes xdist's loadfile scheduler hang (pytest-xdist issues 784, 1378).
TEST_WORKERS ?= 1
XDIST := $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --max-worker-restart 0)
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install run test dev demo-data clean

install: $(VENV)/.installed

# Bytecode is made at install: these machines set PYTHONDONTWRITEBYTECODE=1, so bytecode not made then is
# never made, and every process compiles ~800 modules again (importing the definitions: 8-14 s instead of ~2 s).
# uv's --compile-bytecode compiles only what that call installs; compileall catches up a venv made before
# (a no-op check of ~10 s when everything is compiled already).
$(VENV)/.installed: pyproject.toml setup.py requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib tqc_dagster > /dev/null
	touch $@

demo-data: install
	$(BIN)/tqc demo-data --if-absent

run: demo-data
	$(BIN)/tqc run

test: install
	bash scripts/ensure-chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST)

dev: demo-data  # make dev PORT=3001
	$(BIN)/dagster dev -h 127.0.0.1 -p $(PORT) -w workspace.yaml

clean:
	rm -rf $(VENV) data/lake
