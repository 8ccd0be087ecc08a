# Two commands do all the set-up on a machine with only Python 3.10+:
#   make demo   -> virtual environment, install, run `ecgcnn demo`
#   make test   -> virtual environment, install, lint, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# one stamp per torch version: `make TORCH_VERSION=x.y.z test` reinstalls into an existing .venv
STAMP := $(VENV)/.installed-torch-$(TORCH_VERSION)

.PHONY: install demo test lint format clean

$(STAMP): pyproject.toml src/ecgcnn/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel on these machines; an unpinned torch pulls a CUDA build.
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-torch-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/ecgcnn demo --out runs/demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: install lint
	$(BIN)/python -m pytest -q

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
