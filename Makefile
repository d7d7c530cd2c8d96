# A fresh machine needs only these targets: `make demo` and `make test` bootstrap .venv first.
# More extras: `make install EXTRAS=lite,onnx,timm,torchvision,hf` (the default list is below).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --constraint constraints.txt
STAMP  := $(VENV)/.installed
EXTRAS ?= lite,onnx,photos,robustness,dev,docs

.PHONY: install demo test test-all lint format docs mutation clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build; everything after it sees torch as satisfied, and the
	# constraints (torch, torchvision) keep the extras (timm, torchvision, transformers in dev) from replacing it
	$(PIP) torch==2.13.0
	$(PIP) torch==2.13.0 -e '.[$(EXTRAS)]'
	# data-only packages: their files are read, their code (and its dependencies) never imported
	$(PIP) --no-deps foolbox==3.3.4
	# torchattacks declares torchvision (a CUDA build here) but its code never imports it
	$(PIP) --no-deps torchattacks==3.5.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## EfficientNet-Lite0 on the 20 bundled ImageNet images, M = 8 (5120 forward passes)
	$(BIN)/iaside run --model efficientnet-lite0 --data samples:imagenet --out runs/demo

test: $(STAMP)  ## the default suite (fast, CPU)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)  ## including the slow studies
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)  ## ruff (lint + format check) and mypy, as in CI
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(STAMP)  ## the documentation site with the API reference, into build/site (strict: warnings fail)
	$(BIN)/mkdocs build --strict

mutation: $(STAMP)  ## mutmut per module, one worker (1-10 min a module on a quiet machine, about 2 h for all); MODULES="summary snr" for some
	$(BIN)/python benchmarks/mutation.py $(MODULES)

clean:
	rm -rf $(VENV) runs .pytest_cache
