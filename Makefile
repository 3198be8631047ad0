# The two quick-start commands (README): `make demo` and `make test`.
# Everything installs into .venv with constraints.txt, which pins torch to the local CPU build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: setup setup-test demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -e .

setup-test: $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -e ".[test]"

## stylise the bundled photo with the bundled painting -> out.png (about 2 minutes on 2 CPU cores):
## 512 px coarse-to-fine, 80 iterations at 256 px then 40 at 512 px (the default of 300 takes ~15 min)
DEMO_ARGS ?= --iterations 40
demo: setup
	$(BIN)/impasto gatys examples/content/tubingen.jpg examples/style/starry_night.jpg -o out.png $(DEMO_ARGS)

## the whole test suite (CPU, no pretrained weights needed)
test: setup-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## speed/memory tables (short mode: BENCH_ARGS=--quick)
bench: setup-test
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
