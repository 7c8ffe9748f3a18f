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

.PHONY: setup reproduce test goldens lab export docs clean

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

test: setup
	$(BIN)/python -m pytest

goldens: setup
	$(BIN)/alta-nb reproduce --profile smoke
	$(BIN)/alta-nb goldens --profile smoke

# The offline docs site from the executed notebooks (_runs/teach if it exists, else _runs/smoke).
docs: setup
	$(BIN)/alta-nb docs

lab: setup
	$(BIN)/jupyter lab nbs/

# nbdev-clean with clear_all=false keeps the papermill `parameters` tag; nbconvert clears the outputs.
export: setup
	$(BIN)/nbdev-export
	$(BIN)/jupyter nbconvert --log-level=WARN --clear-output --inplace nbs/*.ipynb
	$(BIN)/nbdev-clean

clean:
	rm -rf _runs _docs
