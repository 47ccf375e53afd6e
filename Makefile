# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= demo
# pytest on one worker more than the cores, each test file whole on one worker, the longest first (tests/conftest.py).
# The extra worker fills the time the others wait (on a kernel starting, a subprocess, TensorFlow's allocator
# retrying): on 2 cores `make test` took 8 min 44 s with 3 workers against 9 min 16 s with 2, back to back.
PYTEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print((os.cpu_count() or 1) + 1)")
PYTEST_PARALLEL ?= -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: demo smoke test test-fast lint format lab bench accel-check timings clean optional

$(STAMP): requirements.txt requirements-nodeps.txt requirements-optional.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	@$(MAKE) --no-print-directory optional PY=$(PY)
	touch $@

# pywuffs builds from source: where there is no C++ compiler (a laptop without Xcode's tools, a minimal
# container) it fails, and the install goes on without it (PNGs then decode with cv2, the same pixels).
optional:  ## try the optional extras (requirements-optional.txt) and say what they give
	@if $(PY) -m pip install -q -r requirements-optional.txt; then \
		echo "optional: pywuffs installed: PNG channel files decode with Wuffs (~1.4x faster than cv2, the same pixels)"; \
	else \
		echo "optional: pywuffs did not install (it builds from source and needs a C++ compiler); PNG channel files" \
			"decode with cv2 instead: the same pixels, ~1.4x slower. Everything else works."; \
	fi

demo: $(STAMP)  ## the whole pipeline on the embedded dataset, into runs/<timestamp>-demo/
	$(PY) -m hpa_utils run --preset $(PRESET)

smoke: $(STAMP)  ## the same in a few minutes (tiny images, one epoch)
	$(PY) -m hpa_utils run --preset smoke

test: $(STAMP)  ## every test, the smoke pipeline and the Kaggle simulation included
	$(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: $(STAMP)  ## the unit tests only (pytest -m unit: no notebook, pipeline or fresh process)
	$(PY) -m pytest $(PYTEST_PARALLEL) -m unit

lint: $(STAMP)  ## ruff: the linter, and the formatter's check; import-linter: the package's layers (pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)  ## ruff: rewrite the code as `make lint` wants it
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lab: $(STAMP)  ## open the notebooks in JupyterLab
	$(PY) -m pip install -q "jupyterlab>=4,<5"
	cd notebooks && ../$(VENV)/bin/jupyter lab

bench: $(STAMP)  ## throughput benchmarks against the public kernel's way
	$(PY) -m benchmarks.run

accel-check: $(STAMP)  ## on a lent GPU or TPU: step times, both backends, both precisions, the projected hours
	$(PY) -m benchmarks.accel_check

timings: $(STAMP)  ## the README's and docs/package.md's timings and demo table, regenerated on a fresh clone (~40 min)
	$(PY) -m benchmarks.timings --write

clean:
	rm -rf runs data
