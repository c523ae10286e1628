# Two commands for a fresh machine (README "Quick start"):
#   make reproduce   set up .venv and run the main job on embedded defaults
#   make test        set up .venv and run the test suite
# TORCH pins the PyTorch build pip installs first (a CPU build here; set TORCH=torch for your CUDA build).
# TRITON: the Triton beside it, whose interpreter runs the project's own kernels in the CPU tests
# (a CUDA build of torch brings its own Triton: set TRITON= then).

PYTHON ?= python3
TORCH ?= torch==2.13.0
TRITON ?= triton==3.7.1
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: setup reproduce test lint lab clean

$(BIN)/oryx: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(TRITON)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/oryx

reproduce: setup
	$(BIN)/oryx reproduce --preset smoke

test: setup
	$(BIN)/python -m pytest -n auto -q

# JupyterLab on notebooks/ with the project installed (the `lab` extra; 127.0.0.1 only)
lab: setup
	$(BIN)/python -m pip install --quiet -e ".[dev,lab]"
	$(BIN)/jupyter lab --ip 127.0.0.1 notebooks/

lint: setup
	$(BIN)/ruff check oryx evals analysis tests benchmarks

clean:
	rm -rf $(VENV) runs/mlruns runs/mlflow.db runs/out
