# lossland — set-up and everyday commands. `make demo` and `make test` install first if needed.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch is pinned to the CPU wheel that lies on this disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
CURVLINOPS ?= curvlinops-for-pytorch==3.0.1
STAMP := $(VENV)/.installed

.PHONY: install demo test test-ray test-slurm rehearsal papers smoke lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[dev,scale]"
	# --no-deps: curvlinops' backpack dependency would pull torchvision, which breaks lightning here.
	$(PIP) install -q --no-deps "$(CURVLINOPS)"
	-$(PIP) uninstall -y -q torchvision 2>/dev/null
	touch $(STAMP)

install: $(STAMP)

# The main job in a few minutes (README.md, "A first five minutes"): study S's elr sweep at a small scale
# (conf/experiment/demo.yaml: FSI ConvNet on 2,000 mnist5k digits, sphere SGD, 400 steps per elr), two jobs at a time
# (joblib), then its report: phase 1 / 2 / 3 across the elr grid and the phase diagram. Run again: the finished
# jobs are skipped and the report rewritten.
DEMO ?= multirun/demo
DEMO_ELRS ?= 1e-3,3e-3,1e-2,1e-1
demo: $(STAMP)  ## an elr sweep on the sphere that shows the three regimes, its report and phase diagram
	$(BIN)/lossland train -m experiment=demo "elr=$(DEMO_ELRS)" hydra/launcher=joblib "hydra.sweep.dir=$(DEMO)"
	$(BIN)/lossland report "$(DEMO)"
	@echo
	@echo "Phase diagram: $(DEMO)/report/phase_diagram.png   (figures and tables: $(DEMO)/report/index.html)"

# Two pytest workers (pytest-xdist), one thread each: two torch processes with their default threads on 2 cores run
# 5x slower each (OpenMP threads spin). Each worker takes the next test when it ends one (--maxschedchunk=1), the
# longest first (tests/conftest.py), so both end together. TEST_WORKERS=0 runs the tests in one process.
TEST_WORKERS ?= 2
test: $(STAMP)  ## the default test run (includes the CI smoke sweep); slow tests: make test ARGS="-m slow"
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --maxschedchunk=1 $(ARGS)

# The Ray launcher in its own environment: hydra-ray-launcher pins cloudpickle<3, which the scale extra's joblib
# excludes (docs/scale.md). A local Ray cluster is started by the test.
RAY_VENV ?= .venv-ray
$(RAY_VENV)/.installed: pyproject.toml Makefile
	$(PY) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/python -m pip install -q --upgrade pip
	$(RAY_VENV)/bin/python -m pip install -q "$(TORCH)"
	$(RAY_VENV)/bin/python -m pip install -q -e ".[dev,ray]"
	$(RAY_VENV)/bin/python -m pip install -q --no-deps "$(CURVLINOPS)"
	touch $(RAY_VENV)/.installed

test-ray: $(RAY_VENV)/.installed  ## the Ray sweep test (pytest -m ray) in its own environment
	LOSSLAND_REQUIRE_RAY=1 $(RAY_VENV)/bin/python -m pytest -m ray tests/test_launchers.py

# Sweeps through a real single-node SLURM cluster (tests/slurm_cluster.py: installs slurm-wlm and munge with
# apt-get if missing, root only; starts munged, slurmctld and slurmd in a temporary directory and stops them at the
# end). LOSSLAND_REQUIRE_SLURM=1: a cluster that cannot be brought up fails the run instead of skipping it.
test-slurm: $(STAMP)  ## the SLURM tests (pytest -m slurm) against a single-node cluster brought up for them
	LOSSLAND_REQUIRE_SLURM=1 $(BIN)/python -m pytest -m slurm -rs --durations=0 tests/test_slurm.py

rehearsal: $(STAMP)  ## every study at the paper's scale on synthetic full-size data, one step per experiment, on the CPU
	$(BIN)/python -m pytest -m rehearsal -s tests/test_rehearsal.py

# Every study's embedded results, one `lossland paper <study>` each (sweeps/papers.sh; 69 min on 2 cores, each
# study ≤ 20 min); PAPERS_DOCS=1 also rewrites docs/results/ and the docs' result blocks from them.
PAPERS ?= multirun/papers/run
PAPERS_DOCS ?= 0
papers: $(STAMP)  ## all five studies' embedded results (docs/paper.md#all-five-studies), wall time of each
	PY=$(BIN)/python LOSSLAND=$(BIN)/lossland OUT=$(PAPERS) DOCS=$(PAPERS_DOCS) bash sweeps/papers.sh

smoke: $(STAMP)  ## the CI smoke sweep alone, into multirun/smoke
	$(BIN)/lossland train -m experiment=smoke elr=1e-4,1e-3,1e-2 logger=csv hydra.sweep.dir=multirun/smoke
	$(BIN)/lossland collect multirun/smoke

lint: $(STAMP)  ## style (ruff) and the import layering contracts in pyproject.toml (import-linter)
	$(BIN)/ruff check lossland hydra_plugins tests benchmarks train.py connect.py lab.py nas.py
	$(BIN)/lint-imports

bench: $(STAMP)  ## speed ratios: loop overhead vs a raw loop; curvature vs PyHessian; vectorized grid; joblib vs basic
	$(BIN)/python benchmarks/step_overhead.py
	$(PIP) install -q --no-deps pyhessian
	$(BIN)/python benchmarks/curvature.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/grid.py
	$(BIN)/python benchmarks/launchers.py

clean:
	rm -rf $(VENV) $(RAY_VENV) multirun outputs
