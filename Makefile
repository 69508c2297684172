# Set-up and checks. `make test` and (once the pipeline lands) `make demo` do all set-up themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lint test test-fast demo clean

install: $(STAMP)

# Re-install when the package metadata or the pinned versions change. pip compiles the installed
# modules (about 25 s): where PYTHONDONTWRITEBYTECODE is set, as on our CI machines, Python caches
# nothing itself, and each process (test workers, subprocess tests, Beam workers) would compile
# TensorFlow anew (`make test` took 470 s of pytest without, 250 s with).
$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --editable ".[test,bm3d,dask]"
	touch $(STAMP)

# Two pytest workers, one test file each at a time: many tests wait on process start-up and I/O,
# so two workers on 2 cores take about half the time of one (349 against 659 s).
PYTEST_WORKERS ?= 2

# The linter (pyflakes, pycodestyle errors, 100-character lines, import order: pyproject.toml).
lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# The suite without the tests marked slow (end-to-end runs); CI runs everything.
test-fast: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

# The main job on built-in synthetic data: prepare, classifier, Grad-CAM maps, pretrain, finetune,
# evaluate, export (cached: a second run skips finished steps).
demo: install
	$(PY) -m pipelines.local_runner --config pipelines/configs/demo.toml

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
