# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= demo
# pytest on every core, each test file whole on one worker, the longest first (tests/conftest.py)
PYTEST_PARALLEL ?= -n auto --dist loadfile --no-loadscope-reorder

.PHONY: demo smoke test test-fast lint format lab bench clean

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

demo: $(STAMP)  ## the whole pipeline on the embedded dataset, into runs/<timestamp>-demo/
	$(PY) -m hpa_utils run --preset $(PRESET)

smoke: $(STAMP)  ## the same in a few minutes (tiny images, one epoch)
	$(PY) -m hpa_utils run --preset smoke

test: $(STAMP)  ## every test, the smoke pipeline and the Kaggle simulation included
	$(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: $(STAMP)  ## unit and contract tests only
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow"

lint: $(STAMP)  ## ruff: the linter, and the formatter's check (pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)  ## ruff: rewrite the code as `make lint` wants it
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lab: $(STAMP)  ## open the notebooks in JupyterLab
	$(PY) -m pip install -q "jupyterlab>=4,<5"
	cd notebooks && ../$(VENV)/bin/jupyter lab

bench: $(STAMP)  ## throughput benchmarks against the public kernel's way
	$(PY) -m benchmarks.run

clean:
	rm -rf runs data
