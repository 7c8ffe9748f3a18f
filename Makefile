# The README's two commands are `make reproduce` and `make test`; each sets everything up itself.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.alta-installed
PROFILE ?= smoke

# No downloads at run time: the hub is off for everything make starts.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
ifeq ($(CI),true)
export TQDM_DISABLE := 1
endif

.PHONY: setup reproduce test goldens lab export docs clean vs-official

setup: $(STAMP)

# torch/torchvision first (exact versions, wheels on disk), then the kit pinned to them, then the kernel.
$(STAMP): pyproject.toml .ci/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -c .ci/constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name alta_nb --display-name "alta_nb (.venv)" >/dev/null
	@touch $@

reproduce: setup
	$(BIN)/alta-nb reproduce --profile $(PROFILE)

# The tests run two smoke runs beside the rest on purpose (a loaded machine): OpenMP workers sleep at once there
# (training adapts its thread count, the other paths do not; bench/cpu_load.py)
test: setup
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BIN)/python -m pytest

# Smoke natively, under each platform perturbation and each deliberate change (96_goldens), two at a time;
# writes tests/goldens with measured tolerances and prints the margin table.
goldens: setup
	$(BIN)/alta-nb goldens --calibrate

# The offline docs site from the executed notebooks (_runs/teach if it exists, else _runs/smoke).
docs: setup
	$(BIN)/alta-nb docs

# PROFILE=teach: every notebook opened there runs on the teach run's cache ($ALTA_PROFILE, 00_core)
lab: setup
	ALTA_PROFILE=$(PROFILE) $(BIN)/jupyter lab nbs/

# nbdev-clean with clear_all=false keeps the papermill `parameters` tag; nbconvert clears the outputs.
export: setup
	$(BIN)/nbdev-export
	$(BIN)/jupyter nbconvert --log-level=WARN --clear-output --inplace nbs/*.ipynb
	$(BIN)/nbdev-clean

clean:
	rm -rf _runs _docs

# The kit beside the official ALTA code (issue #14): a second venv with the official pins, kept in a cache folder outside
# the working tree (git status stays clean); the checkout is yours (the kit never downloads it):
#   make vs-official ALTA_OFFICIAL_REPO=/path/to/ALTA [VS_ARGS=--small | VS_ARGS="--small --mutate all"]
# (scikit-learn: engine_pretrain.py imports it; the harness runs its train_one_epoch)
OFFICIAL_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/alta_nb/venv_official
$(OFFICIAL_VENV)/.alta-official-installed:
	@test -x $(OFFICIAL_VENV)/bin/python || { mkdir -p $(dir $(OFFICIAL_VENV)) && $(PYTHON) -m venv $(OFFICIAL_VENV); }
	$(OFFICIAL_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(OFFICIAL_VENV)/bin/python -m pip install -q timm==0.6.13 transformers==4.33.3 einops pandas safetensors numpy scikit-learn
	@touch $@

vs-official: setup $(OFFICIAL_VENV)/.alta-official-installed
	@test -n "$(ALTA_OFFICIAL_REPO)" || { echo "set ALTA_OFFICIAL_REPO to your checkout of github.com/DopamineLcy/ALTA"; exit 2; }
	ALTA_OFFICIAL_REPO=$(ALTA_OFFICIAL_REPO) $(BIN)/python bench/vs_official.py --device cpu --official-python $(OFFICIAL_VENV)/bin/python $(VS_ARGS)
