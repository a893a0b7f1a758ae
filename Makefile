# infant-tissue developer entry points. Everything installs into ./.venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch on disk on the project machines; an unpinned torch pulls a multi-GB
# CUDA build. The Dockerfile installs a CUDA build instead. Override: make TORCH=torch==X test
TORCH  ?= torch==2.13.0

.PHONY: venv demo test lint benchmark clean

$(BIN)/.installed: pyproject.toml version
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/infant-tissue demo --out demo-output

test: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check infant_tissue tests benchmarks
	$(BIN)/ruff format --check infant_tissue tests benchmarks

benchmark: venv
	$(BIN)/pytest -q -m benchmark

clean:
	rm -rf demo-output .pytest_cache build *.egg-info
