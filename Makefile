# The two commands: `make run` and `make test`. Each sets itself up in .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
# Re-install whenever the project's dependencies change.
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
RUNS_DIR := $(or $(KERASCNN_RUNS_DIR),$(CURDIR)/runs)
UI_HOST ?= 127.0.0.1
UI_PORT ?= 5000
DASHBOARD_HOST ?= 127.0.0.1
DASHBOARD_PORT ?= 8080
export TF_CPP_MIN_LOG_LEVEL ?= 2
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: run test coverage test-fast lint ui dashboard bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# pip byte-compiles what it installs one file at a time; compileall does it on every core (files
# written for newer Pythons, such as some of PyTorch's test helpers, fail there as under pip).
INSTALL := $(PY) -m pip install --quiet --no-compile
COMPILE := $(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" > /dev/null || true

$(RUN_STAMP): pyproject.toml | $(PY)
	$(INSTALL) -e .
	@$(COMPILE)
	touch $@

# PyTorch's CPU build (the layer tests run on every Keras backend); pip finds it in the local
# wheel folder where there is one. TORCH="" leaves torch out.
TORCH ?= torch==2.13.0

$(TEST_STAMP): pyproject.toml | $(PY)
	$(INSTALL) -e ".[dev,jax,torch,sweep,ui-test,server,onnx]" $(TORCH)
	@$(COMPILE)
	touch $@ $(RUN_STAMP)

## make run: train the default job (LeNet-5 on the embedded digits data), logged to MLflow.
## Overrides pass through ARGS: make run ARGS="downsample=pnorm downsample.p=3"
run: $(RUN_STAMP)
	$(PY) -m kerascnn.train $(ARGS)

## make test: the whole suite: the TensorFlow phase, and beside it, at the lowest CPU priority
## (nice 19), the layer tests again under JAX and then PyTorch. The TensorFlow phase's end-to-end
## tests spend much of their time waiting (servers, a cluster, an install, signals), and the
## other backends' phase takes the idle cores then; its output is printed whole at the end.
## Pytest workers: TF_WORKERS in the TensorFlow phase, whose end-to-end tests often wait (a third
## worker computes meanwhile), PYTEST_WORKERS on the other backends (0: one process). In the
## TensorFlow phase a file's tests stay on one worker (its services start once), handed out in
## the suite's order: the app's long files first, the many short layer files last, where they
## fill whichever worker is free (xdist's default order, by number of tests, would hand out the
## app's few-test long files last). On JAX and PyTorch only what computes runs again (the layer
## contract and the numerical references): the argument and config checks (marked backend_free)
## need one backend.
## Under JAX most of the time is XLA compiling tiny test graphs. Three settings that leave the
## arithmetic as it is cut it: LLVM's optimisation level 0 (XLA's own passes still run), XLA's
## classic CPU fusion emitters instead of the newer MLIR ones (about 1.5x less compile time
## here), and JAX's compilation cache (fresh for every run, shared by the workers), so that a
## program several tests run compiles once.
PYTEST_WORKERS ?= 2
TF_WORKERS ?= 3
PYTEST := $(PY) -m pytest -q
OTHER_BACKENDS := -n $(PYTEST_WORKERS) --dist worksteal -m "not backend_free" tests/layers
OTHER_LOG := $(VENV)/other-backends.log
JAX_CACHE := $(VENV)/jax-compilation-cache
JAX_TEST_XLA_FLAGS := --xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false
## The package's modules are byte-compiled first: an editable install leaves that to each process,
## and where PYTHONDONTWRITEBYTECODE is set every process the suite starts would compile them again.
test: $(TEST_STAMP)
	@$(PY) -m compileall -q kerascnn hydra_plugins > /dev/null
	@rm -rf $(JAX_CACHE)
	@(KERAS_BACKEND=jax XLA_FLAGS="$(XLA_FLAGS) $(JAX_TEST_XLA_FLAGS)" \
	    JAX_COMPILATION_CACHE_DIR=$(JAX_CACHE) JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 nice -n 19 $(PYTEST) $(OTHER_BACKENDS) && \
	  KERAS_BACKEND=torch nice -n 19 $(PYTEST) $(OTHER_BACKENDS)) > $(OTHER_LOG) 2>&1 & \
	other=$$!; \
	$(PYTEST) -n $(TF_WORKERS) --dist loadfile --no-loadscope-reorder; tensorflow=$$?; \
	echo "--- the layer tests under JAX, then PyTorch (run beside the TensorFlow phase):"; \
	wait $$other; others=$$?; cat $(OTHER_LOG); \
	test $$tensorflow -eq 0 && test $$others -eq 0

## make coverage: the TensorFlow phase measured by coverage.py, with the app's own processes
## (pyproject.toml's [tool.coverage]); separate from make test, which measuring would slow.
coverage: $(TEST_STAMP)
	$(PYTEST) -n $(TF_WORKERS) --dist loadfile --no-loadscope-reorder --cov=kerascnn --cov-report=term

test-fast: $(TEST_STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

lint: $(TEST_STAMP)
	$(PY) -m ruff check kerascnn tests benchmarks

## make ui: the MLflow UI over the default store (runs/, or $$KERASCNN_RUNS_DIR), on $(UI_HOST):$(UI_PORT)
## (kerascnn-ui, which a wheel install has too).
ui: $(RUN_STAMP)
	@$(VENV)/bin/kerascnn-ui --runs-dir "$(RUNS_DIR)" --host "$(UI_HOST)" --port "$(UI_PORT)"

## make dashboard: optuna-dashboard over the default study storage ($(RUNS_DIR)/optuna.db), on
## $(DASHBOARD_HOST):$(DASHBOARD_PORT); hyper-parameter searches (hparams_search=optuna) show live.
$(VENV)/bin/optuna-dashboard: | $(PY)
	$(PY) -m pip install --quiet -e ".[sweep]"

dashboard: $(RUN_STAMP) $(VENV)/bin/optuna-dashboard
	@mkdir -p "$(RUNS_DIR)"
	@echo "Optuna dashboard: http://$(DASHBOARD_HOST):$(DASHBOARD_PORT)/dashboard/ (studies in $(RUNS_DIR)/optuna.db)"
	$(VENV)/bin/optuna-dashboard --host $(DASHBOARD_HOST) --port $(DASHBOARD_PORT) \
	    "sqlite:///$(RUNS_DIR)/optuna.db"

bench: $(TEST_STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .coverage .coverage.*
