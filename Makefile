# Two commands for a fresh machine: `make report` and `make test` (see README.md).
PYTHON      ?= python3
VENV        ?= .venv
# CPU PyTorch by default; GPU users: make TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
PY          := $(VENV)/bin/python
LOCK        := requirements.lock
STAMP       := $(VENV)/.installed
REPORT_ARGS ?=
PYTEST_ARGS ?=
# Two test processes (pytest-xdist), one file each at a time: 12 instead of 14 minutes on 2 cores.
TEST_WORKERS ?= 2

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install lock report test test-slow test-real lint docs screenshots bench sample-data clean

install: $(STAMP)

# Every package at the version the suite last passed with (requirements.lock, written by
# `make lock`); torch stays with TORCH_SPEC so a GPU build can replace the CPU one.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC) $(TORCH_INDEX)
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

# Refresh the lock from the installed environment after changing pyproject.toml's dependencies
# (or `pip install -U` of a package you chose to move): then `make test` before committing it.
lock:
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable | grep -v -i -E '^(torch|nvidia-|triton|ticket-workbench)([=<> ]|-)' > $(LOCK)
	@echo "wrote $(LOCK): $$(wc -l < $(LOCK)) packages"

report: install
	$(VENV)/bin/workbench report --name sample $(REPORT_ARGS)

# The default suite: every unit and page test, tiny real fine-tunes, under 15 minutes on 2 cores.
test: install
	$(VENV)/bin/pytest -m "not real_data and not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The end-to-end tier (marked slow): default-profile reports with every export, sweeps, Optuna
# searches, an MLflow server, Ray, two-process training, JupyterLab. CI runs it after `make test`.
test-slow: install
	$(VENV)/bin/pytest -m "slow and not real_data" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-real: install
	$(VENV)/bin/pytest -m real_data $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check workbench tests bench docs/tools
	$(VENV)/bin/ruff format --check workbench tests bench docs/tools
	$(PY) -m workbench.architecture  # layers (workbench/ARCHITECTURE.md): no cycles, short functions

# The docs site (mkdocs.yml), offline, into site/: a dead link or missing page fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "wrote site/index.html"

# The README's and docs' pictures (docs/images/), from a fresh report on the bundled sample,
# in headless Chromium (SCREENSHOT_ARGS="--run reports/<run>" reuses a finished run instead).
SCREENSHOT_ARGS ?=
screenshots: install
	$(PY) docs/tools/screenshots.py $(SCREENSHOT_ARGS)

bench: install
	$(PY) bench/bench_exploration.py
	$(PY) bench/bench_embeddings.py
	$(PY) bench/bench_training.py baselines
	$(PY) bench/bench_training.py ratio --pairs 4000 --test-limit 2000
	$(PY) bench/bench_training.py recipe --recipe fusion
	$(PY) bench/bench_sweep.py

sample-data: install
	$(PY) -m workbench.sample_data --out data/sample/tickets.csv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
