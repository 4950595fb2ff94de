# The README's commands (`make docs` builds the documentation site). Everything installs into .venv; nothing relies on packages installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned first so that the package's `torch>=2.4` is already satisfied by the CPU build;
# an unpinned resolve would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test test-fast lint docs docs-serve bench general-model clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[dev,tensorflow]"
# ptychodus is a test-only dependency: the tests check our ptychodus/CXI files against its own
# readers, writers and forward model. --no-deps: its declared dependencies include GUI and
# reconstruction stacks its api/ and plugins/cxi_file modules do not import (they need only
# numpy, scipy, h5py, hdf5plugin, scikit-image and pydantic, which are installed above;
# api/visualize.py alone needs colorcet, and the tests do not import it)
	$(BIN)/python -m pip install -q --no-deps ptychodus==1.7.0
	touch $(STAMP)

demo: install
	$(BIN)/ptychopinn demo --output-dir demo_output

test: install
	$(BIN)/python -m pytest -q -ra

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks

# the documentation site (MkDocs) into site/; --strict fails on broken links and missing API references
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

bench: install
	$(BIN)/python benchmarks/train_infer.py

# the shipped general model: the one command that made it (docs/model-card.md), then the copy into
# the package; an interrupted run continues with RESUME=runs/general-64/checkpoints/last.ckpt
GENERAL_RUN ?= runs/general-64
GENERAL_EPOCHS ?= 14
general-model: install
	$(BIN)/ptychopinn pretrain --output-dir $(GENERAL_RUN) --epochs $(GENERAL_EPOCHS) --seed 0 --phase-activation pi_tanh $(if $(RESUME),--resume $(RESUME))
	cp $(GENERAL_RUN)/model.pinn src/ptychopinn/model/shipped/general-64.pinn

clean:
	rm -rf $(VENV) demo_output site .pytest_cache
